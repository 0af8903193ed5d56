#!/usr/bin/env bash
# Two builds of raftcfg against each other, for a change's before and after:
#
#   bench/ab-builds.sh BEFORE_BINARY AFTER_BINARY
#
# Each repetition starts a fresh 3-member cluster of separate `raftcfg serve`
# processes for each build in turn (the first build alternates), runs every
# load of AB_LOADS against its leader with `raftcfg-tools bench` (256-byte
# values over 1,000 keys), and removes it. Every run prints one line: rep,
# build, workload, clients, throughput, p50 and p99 (ms), server CPU µs per
# operation, and the share of CPU time the host stole (`steal` in
# /proc/stat). At the end it prints each build's mean per load over the runs
# the host left alone (steal at most AB_MAX_STEAL percent). On a shared
# 2-core machine runs vary by ±15%, so compare at least 6 repetitions.
#
#   AB_REPS (6), AB_LOADS ("write:1 write:16"), AB_DURATION (5 s),
#   AB_MAX_STEAL (1), AB_PORT (23000: three client ports 100 apart, each
#   peer port the next)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

[ $# = 2 ] || { echo "usage: $0 BEFORE_BINARY AFTER_BINARY" >&2; exit 2; }
for bin in "$@"; do
    [ -x "$bin" ] || { echo "$bin is not an executable raftcfg build" >&2; exit 2; }
done
REPS=${AB_REPS:-6}
LOADS=${AB_LOADS:-"write:1 write:16"}
DURATION=${AB_DURATION:-5}
MAX_STEAL=${AB_MAX_STEAL:-1}
PORT=${AB_PORT:-23000}
[[ $REPS =~ ^[1-9][0-9]*$ ]] || { echo "AB_REPS must be 1 or more; got '$REPS'" >&2; exit 2; }
[[ $MAX_STEAL =~ ^[0-9]+([.][0-9]+)?$ ]] \
    || { echo "AB_MAX_STEAL must be a percentage; got '$MAX_STEAL'" >&2; exit 2; }
for load in $LOADS; do
    [[ $load =~ ^(write|read|serializable-read):[1-9][0-9]*$ ]] \
        || { echo "AB_LOADS takes WORKLOAD:CLIENTS items such as write:1; got '$load'" >&2; exit 2; }
done

cargo build --release -p raftcfg-tools --bin raftcfg-tools >&2
TOOLS=target/release/raftcfg-tools
WORK=$(mktemp -d)
PIDS=()
stop_cluster() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
}
trap 'stop_cluster; rm -rf "$WORK"' EXIT

wait_until() { # wait_until DESCRIPTION COMMAND...
    local what=$1; shift
    for _ in $(seq 1 300); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for $what; the servers' logs end:" >&2
    tail -n 15 "$WORK"/cluster/*.log >&2
    exit 1
}

start_cluster() { # start_cluster BINARY: sets LEADER to the leader's client URL
    local bin=$1 i client peer id founder="http://127.0.0.1:$PORT"
    rm -rf "$WORK/cluster"; mkdir -p "$WORK/cluster"
    for i in 0 1 2; do
        client=$((PORT + 100 * i)); peer=$((client + 1))
        "$bin" serve --name "r$i" --data-dir "$WORK/cluster/r$i" \
            --listen-client "127.0.0.1:$client" --listen-peer "127.0.0.1:$peer" \
            >"$WORK/cluster/r$i.log" 2>&1 &
        PIDS+=($!)
        wait_until "r$i" curl -sf "http://127.0.0.1:$client/v1/node"
    done
    curl -sf -X POST "$founder/v1/cluster/bootstrap" >/dev/null
    wait_until "a leader" curl -sf "$founder/readyz"
    for i in 1 2; do
        client=$((PORT + 100 * i)); peer=$((client + 1))
        id=$(curl -sf "http://127.0.0.1:$client/v1/node" \
            | python3 -c 'import json, sys; print(json.load(sys.stdin)["node_id"])')
        "$bin" member add --endpoints "$founder" --node-id "$id" --name "r$i" \
            --peer-url "http://127.0.0.1:$peer" --client-url "http://127.0.0.1:$client" >/dev/null
        wait_until "r$i to be promoted" "$bin" member promote --endpoints "$founder" "$id"
    done
    LEADER=$(curl -sf "$founder/v1/cluster/members" | python3 -c '
import json, sys
print(next(m["client_url"] for m in json.load(sys.stdin)["members"] if m["leader"]))')
}

server_ticks() { # user + system clock ticks of the cluster's processes
    local total=0 pid stat
    for pid in "${PIDS[@]}"; do
        read -r -a stat <"/proc/$pid/stat"
        total=$((total + stat[13] + stat[14]))
    done
    echo "$total"
}
host_ticks() { # ticks stolen by the host, and all ticks, so far
    local cpu user nice system idle iowait irq softirq steal rest
    read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
    echo "$steal $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

RESULTS="$WORK/results.txt"
BUILDS=("$1" "$2")
echo "rep build workload clients ops/s p50_ms p99_ms cpu_us/op steal%"
for rep in $(seq 1 "$REPS"); do
    if [ $((rep % 2)) = 1 ]; then order=(0 1); else order=(1 0); fi
    for which in "${order[@]}"; do
        bin=${BUILDS[$which]}
        name=$([ "$which" = 0 ] && echo before || echo after)
        start_cluster "$bin"
        for load in $LOADS; do
            workload=${load%%:*}; clients=${load##*:}
            cpu_before=$(server_ticks); host_before=$(host_ticks)
            "$TOOLS" bench --target raftcfg --workload "$workload" --concurrency "$clients" \
                --value-size 256 --keys 1000 --duration "$DURATION" --warmup 1 --json \
                --endpoints "$LEADER" >"$WORK/run.json"
            python3 - "$WORK/run.json" "$rep" "$name" "$workload" "$clients" \
                "$(( $(server_ticks) - cpu_before ))" "$(getconf CLK_TCK)" "$DURATION" \
                "$host_before" "$(host_ticks)" <<'PY' | tee -a "$RESULTS"
import json, sys
run = json.load(open(sys.argv[1]))
rep, name, workload, clients = sys.argv[2:6]
ticks, per_sec, duration = int(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8])
s0, t0 = map(int, sys.argv[9].split()); s1, t1 = map(int, sys.argv[10].split())
requests = run["throughput"] * (duration + 1)
cpu_us = 1e6 * ticks / per_sec / requests if requests else float("nan")
steal = 100 * (s1 - s0) / max(1, t1 - t0)
print(rep, name, workload, clients, round(run["throughput"]), run["p50_ms"], run["p99_ms"],
      round(cpu_us), round(steal, 1), flush=True)
PY
        done
        stop_cluster
    done
done

python3 - "$RESULTS" "$MAX_STEAL" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
dropped = 0
for line in open(sys.argv[1]):
    rep, name, workload, clients, thr, p50, p99, cpu, steal = line.split()
    kept = runs[(workload, int(clients), name)]
    if float(steal) > float(sys.argv[2]):
        dropped += 1
        continue
    kept.append((int(thr), float(p99), int(cpu)))
print(f"\nmeans over the runs in which the host stole at most {sys.argv[2]}% ({dropped} left out):")
print(f"{'workload':<18} {'clients':>7} {'build':<7} {'runs':>4} {'ops/s':>8} {'p99 ms':>7} {'cpu us/op':>9}")
for (workload, clients, name), kept in sorted(runs.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "before")):
    if not kept:
        print(f"{workload:<18} {clients:>7} {name:<7} {0:>4} {'-':>8} {'-':>7} {'-':>9}")
        continue
    mean = lambda i: statistics.mean(k[i] for k in kept)
    print(f"{workload:<18} {clients:>7} {name:<7} {len(kept):>4} {mean(0):>8.0f} {mean(1):>7.2f} {mean(2):>9.0f}")
PY
