#!/usr/bin/env bash
# raftcfg against etcd on this machine, as users run both: three separate
# `raftcfg serve` processes (release build) and three etcd members (Debian's
# etcd-server), fsync on, on 127.0.0.1. One load generator
# (`raftcfg-tools bench`) sends all load to each cluster's leader: 256-byte
# values over 1,000 keys, for writes, linearizable reads and serializable
# reads at each concurrency level.
#
# The two systems are interleaved: each repetition runs every level on
# both, alternating which goes first, so machine noise falls on both alike.
# For each run it records throughput, p99, server CPU per operation (user +
# system time of the three server processes over the run, divided by the
# requests of the run, warm-up included), and the share of the machine's
# CPU time the host stole over the run (`steal` in /proc/stat: time a
# virtual machine's CPUs waited for the host). A pair of runs in which the
# host stole more than BENCH_MAX_STEAL percent (default 2) is run again, up
# to BENCH_ATTEMPTS times in all (default 3), the last kept whatever its
# steal. At the end it records each process's peak RSS. It prints the
# medians over the repetitions as one table with raftcfg/etcd ratios and
# the most steal of any run kept behind each row (each run's own figures
# are in its progress line on stderr), and, when `wrk` is
# installed (Debian's `wrk`), one cross-check of the load generator at 16
# connections. When writes are measured, each repetition also runs
# `raftcfg-tools floor` (the least a write synced on two of three members
# takes here, with no HTTP, consensus or database) in the same work
# directory, to set both systems against.
#
#   bench/compare-etcd.sh                 # the full comparison (~17 min)
#   BENCH_REPS=1 BENCH_DURATION=3 BENCH_CONCURRENCY="1 16" BENCH_WORKLOADS=write bench/compare-etcd.sh
#
# Needs etcd on PATH (installed with apt-get when run as root, with wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-1}
REPS=${BENCH_REPS:-3}
LEVELS=${BENCH_CONCURRENCY:-"1 16 64 256"}
WORKLOADS=${BENCH_WORKLOADS:-"write read serializable-read"}
RAFTCFG_BASE=${BENCH_RAFTCFG_PORT:-17379}
ETCD_BASE=${BENCH_ETCD_PORT:-22379}
MAX_STEAL=${BENCH_MAX_STEAL:-2}
ATTEMPTS=${BENCH_ATTEMPTS:-3}
[[ $MAX_STEAL =~ ^[0-9]+([.][0-9]+)?$ ]] \
    || { echo "BENCH_MAX_STEAL must be a percentage such as 2 or 0.5; got '$MAX_STEAL'" >&2; exit 2; }
[[ $ATTEMPTS =~ ^[1-9][0-9]*$ ]] \
    || { echo "BENCH_ATTEMPTS must be a whole number of 1 or more; got '$ATTEMPTS'" >&2; exit 2; }

missing=()
command -v etcd >/dev/null || missing+=(etcd-server)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null
    elif ! command -v etcd >/dev/null; then
        echo "etcd is not installed: sudo apt-get install -y etcd-server" >&2
        exit 1
    fi
fi
command -v python3 >/dev/null || { echo "python3 is needed to print the table" >&2; exit 1; }

cargo build --release -p raftcfg-node --bin raftcfg
cargo build --release -p raftcfg-tools --bin raftcfg-tools
BIN=target/release/raftcfg
TOOLS=target/release/raftcfg-tools
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_until() { # wait_until DESCRIPTION COMMAND...
    local what=$1; shift
    for _ in $(seq 1 300); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "timed out waiting for $what; the last lines of each server's log:" >&2
    for log in "$WORK"/*.log; do
        [ -e "$log" ] && { echo "== $log" >&2; tail -n 15 "$log" >&2; }
    done
    exit 1
}

json_field() { # json_field FIELD: reads JSON on stdin
    python3 -c "import json, sys; print(json.load(sys.stdin)$1)"
}

# raftcfg: three `raftcfg serve` processes; r0 founds the cluster.
RAFTCFG_PIDS=()
for i in 0 1 2; do
    client=$((RAFTCFG_BASE + 100 * i)); peer=$((client + 1))
    "$BIN" serve --name "r$i" --data-dir "$WORK/raftcfg/r$i" \
        --listen-client "127.0.0.1:$client" --listen-peer "127.0.0.1:$peer" \
        >"$WORK/raftcfg-$i.log" 2>&1 &
    PIDS+=($!); RAFTCFG_PIDS+=($!)
    wait_until "raftcfg r$i" curl -sf "http://127.0.0.1:$client/v1/node"
done
FOUNDER="http://127.0.0.1:$RAFTCFG_BASE"
curl -sf -X POST "$FOUNDER/v1/cluster/bootstrap" >/dev/null
wait_until "raftcfg to lead" curl -sf "$FOUNDER/readyz"
for i in 1 2; do
    client=$((RAFTCFG_BASE + 100 * i)); peer=$((client + 1))
    id=$(curl -sf "http://127.0.0.1:$client/v1/node" | json_field '["node_id"]')
    "$BIN" member add --endpoints "$FOUNDER" --node-id "$id" --name "r$i" \
        --peer-url "http://127.0.0.1:$peer" --client-url "http://127.0.0.1:$client" >/dev/null
    wait_until "r$i to be promoted" "$BIN" member promote --endpoints "$FOUNDER" "$id"
done
RAFTCFG_LEADER=$(curl -sf "$FOUNDER/v1/cluster/members" | python3 -c '
import json, sys
members = json.load(sys.stdin)
print(next(m["client_url"] for m in members["members"] if m["leader"]))')

# etcd: three members.
INITIAL=""
for i in 0 1 2; do
    INITIAL+="e$i=http://127.0.0.1:$((ETCD_BASE + 100 * i + 1)),"
done
INITIAL=${INITIAL%,}
ETCD_PIDS=()
for i in 0 1 2; do
    client=$((ETCD_BASE + 100 * i)); peer=$((client + 1))
    etcd --name "e$i" --data-dir "$WORK/etcd/e$i" \
        --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "$INITIAL" --initial-cluster-state new --initial-cluster-token raftcfg-bench \
        >"$WORK/etcd-$i.log" 2>&1 &
    PIDS+=($!); ETCD_PIDS+=($!)
done
wait_until "etcd" curl -sf "http://127.0.0.1:$ETCD_BASE/health"
ETCD_LEADER=""
for i in 0 1 2; do
    url="http://127.0.0.1:$((ETCD_BASE + 100 * i))"
    if curl -sf -X POST "$url/v3/maintenance/status" -d '{}' | python3 -c '
import json, sys
status = json.load(sys.stdin)
sys.exit(0 if status["leader"] == status["header"]["member_id"] else 1)'; then
        ETCD_LEADER=$url
    fi
done
[ -n "$ETCD_LEADER" ] || { echo "etcd has no leader" >&2; exit 1; }
echo "bench: raftcfg leader $RAFTCFG_LEADER, etcd leader $ETCD_LEADER" >&2

cpu_ticks() { # cpu_ticks PID...: user + system clock ticks of the processes
    local total=0
    for pid in "$@"; do
        read -r -a stat <"/proc/$pid/stat"
        total=$((total + stat[13] + stat[14]))
    done
    echo "$total"
}
TICKS_PER_SEC=$(getconf CLK_TCK)

host_ticks() { # host_ticks: ticks stolen by the host, and all ticks, of the machine's CPUs so far
    local cpu user nice system idle iowait irq softirq steal rest
    read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
    echo "$steal $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

steal_pct() { # steal_pct BEFORE AFTER: the share of CPU time stolen between two host_ticks
    local s0 t0 s1 t1
    read -r s0 t0 <<<"$1"; read -r s1 t1 <<<"$2"
    python3 -c 'import sys; s, t = int(sys.argv[1]), int(sys.argv[2]); print(round(100 * s / t, 1) if t else 0)' \
        "$((s1 - s0))" "$((t1 - t0))"
}

RESULTS="$WORK/results.jsonl"
DISCARDED="$WORK/discarded.jsonl"
touch "$DISCARDED"
run() { # run REP TARGET WORKLOAD CONCURRENCY
    local rep=$1 target=$2 workload=$3 c=$4 endpoint pids before after host_before
    if [ "$target" = raftcfg ]; then
        endpoint=$RAFTCFG_LEADER; pids=("${RAFTCFG_PIDS[@]}")
    else
        endpoint=$ETCD_LEADER; pids=("${ETCD_PIDS[@]}")
    fi
    echo "bench: rep $rep $target $workload concurrency $c" >&2
    before=$(cpu_ticks "${pids[@]}"); host_before=$(host_ticks)
    "$TOOLS" bench --target "$target" --workload "$workload" --concurrency "$c" \
        --value-size 256 --keys 1000 --duration "$DURATION" --warmup "$WARMUP" --json \
        --endpoints "$endpoint" >"$WORK/run.json"
    after=$(cpu_ticks "${pids[@]}")
    python3 - "$WORK/run.json" "$rep" "$((after - before))" "$TICKS_PER_SEC" "$DURATION" "$WARMUP" \
        "$(steal_pct "$host_before" "$(host_ticks)")" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
rep, ticks, per_sec, duration, warmup = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
requests = run["throughput"] * (duration + warmup)
run["rep"] = rep
run["steal_pct"] = float(sys.argv[7])
run["cpu_ms_per_op"] = 1000.0 * ticks / per_sec / requests if requests else float("nan")
print(json.dumps(run))
print(f"bench:   {run['throughput']:,.0f}/s, p99 {run['p99_ms']:.2f} ms, "
      f"{run['cpu_ms_per_op']:.3f} CPU ms/op, steal {run['steal_pct']}%", file=sys.stderr)
PY
}

run_floor() { # run_floor REP
    local host_before
    echo "bench: rep $1 floor write concurrency 1" >&2
    host_before=$(host_ticks)
    "$TOOLS" floor --dir "$WORK" --duration "$DURATION" --warmup "$WARMUP" --json >"$WORK/run.json"
    python3 -c 'import json, sys; run = json.load(open(sys.argv[3])); run.update(target="floor", workload="write", concurrency=1, rep=int(sys.argv[1]), steal_pct=float(sys.argv[2])); print(json.dumps(run))' \
        "$1" "$(steal_pct "$host_before" "$(host_ticks)")" "$WORK/run.json" >>"$RESULTS"
}

run_pair() { # run_pair REP WORKLOAD CONCURRENCY ORDER: both systems, again while the host steals
    local rep=$1 workload=$2 c=$3 order=$4 attempt target rows steal
    for attempt in $(seq 1 "$ATTEMPTS"); do
        rows=""
        for target in $order; do rows+="$(run "$rep" "$target" "$workload" "$c")"$'\n'; done
        steal=$(printf '%s' "$rows" | python3 -c 'import json, sys; print(max(json.loads(l)["steal_pct"] for l in sys.stdin if l.strip()))')
        if python3 -c 'import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))' "$steal" "$MAX_STEAL" \
            || [ "$attempt" = "$ATTEMPTS" ]; then
            printf '%s' "$rows" >>"$RESULTS"
            return
        fi
        echo "bench: the host stole $steal% of the CPU time: running the pair again" >&2
        printf '%s' "$rows" >>"$DISCARDED"
    done
}

for rep in $(seq 1 "$REPS"); do
    if [ $((rep % 2)) = 1 ]; then order="raftcfg etcd"; else order="etcd raftcfg"; fi
    for workload in $WORKLOADS; do
        for c in $LEVELS; do
            run_pair "$rep" "$workload" "$c" "$order"
        done
    done
    case " $WORKLOADS " in *" write "*) run_floor "$rep" ;; esac
done

RSS="$WORK/rss.txt"
for pid in "${RAFTCFG_PIDS[@]}"; do echo "raftcfg $(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"; done >"$RSS"
for pid in "${ETCD_PIDS[@]}"; do echo "etcd $(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"; done >>"$RSS"

python3 - "$RESULTS" "$RSS" "$DISCARDED" "$MAX_STEAL" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
runs = {}
for r in rows:
    runs.setdefault((r["target"], r["workload"], r["concurrency"]), []).append(r)
med = lambda key, field: statistics.median(r[field] for r in runs[key])
most_steal = lambda *keys: max(r["steal_pct"] for key in keys for r in runs[key])
print(f"{'workload':<16} {'conc':>4} {'raftcfg/s':>10} {'etcd/s':>9} {'ratio':>6} "
      f"{'raftcfg p99':>11} {'etcd p99':>9} {'p99 ratio':>9} {'cpu ms/op r|e':>15} {'steal %':>7}")
ok = True
for (target, workload, c) in sorted(runs, key=lambda k: (k[1], k[2])):
    if target != "raftcfg" or ("etcd", workload, c) not in runs:
        continue
    r, e = (target, workload, c), ("etcd", workload, c)
    ratio = med(r, "throughput") / med(e, "throughput")
    p99 = med(r, "p99_ms") / med(e, "p99_ms")
    ok &= ratio >= 2.0 and p99 <= 1.0
    print(f"{workload:<16} {c:>4} {med(r, 'throughput'):>10.0f} {med(e, 'throughput'):>9.0f} "
          f"{ratio:>6.2f} {med(r, 'p99_ms'):>9.2f}ms {med(e, 'p99_ms'):>7.2f}ms {p99:>9.2f} "
          f"{med(r, 'cpu_ms_per_op'):>7.3f}|{med(e, 'cpu_ms_per_op'):.3f} {most_steal(r, e):>7.1f}")
floor, etcd_write = ("floor", "write", 1), ("etcd", "write", 1)
if floor in runs:
    line = f"floor (writes, 1 client, no HTTP/consensus/database): {med(floor, 'throughput'):.0f}/s, p99 {med(floor, 'p99_ms'):.2f}ms"
    if etcd_write in runs:
        line += f", {med(floor, 'throughput') / med(etcd_write, 'throughput'):.2f}x etcd"
    print(line + f", steal up to {most_steal(floor):.1f}%")
discarded = sum(1 for line in open(sys.argv[3]) if line.strip()) // 2
if discarded:
    print(f"{discarded} pair(s) of runs run again: the host stole more than {sys.argv[4]}% of the CPU time")
steal = max(r["steal_pct"] for r in rows)
if steal > float(sys.argv[4]):
    print(f"the host stole up to {steal:.1f}% of the CPU time in a run kept: figures from such runs are noisy")
for line in open(sys.argv[2]):
    target, kib = line.split()
    print(f"peak RSS {target}: {int(kib) / 1024:.0f} MiB")
print("raftcfg at 2x etcd or more, p99 no worse, everywhere" if ok
      else "raftcfg is below 2x etcd, or its p99 above etcd's, somewhere")
PY

# The load generator against an independent one (wrk), once: writes at 16
# connections to each leader.
if command -v wrk >/dev/null; then
    value=$(head -c 256 /dev/zero | tr '\0' v)
    cat >"$WORK/raftcfg.lua" <<EOF
wrk.method = "PUT"
wrk.body = "$value"
request = function() return wrk.format(nil, "/v1/kv/wrk/" .. math.random(0, 999)) end
EOF
    b64=$(printf '%s' "$value" | base64 -w0)
    cat >"$WORK/etcd.lua" <<EOF
wrk.method = "POST"
request = function()
    local key = "wrk/" .. math.random(0, 999)
    return wrk.format(nil, "/v3/kv/put", nil, '{"key":"' .. base64(key) .. '","value":"$b64"}')
end
EOF
    cat >>"$WORK/etcd.lua" <<'EOF'
local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
function base64(data)
    return ((data:gsub('.', function(x)
        local r, b = '', x:byte()
        for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
        return r
    end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
        if #x < 6 then return '' end
        local c = 0
        for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
        return chars:sub(c + 1, c + 1)
    end) .. ({ '', '==', '=' })[#data % 3 + 1])
end
EOF
    for target in raftcfg etcd; do
        if [ "$target" = raftcfg ]; then url=$RAFTCFG_LEADER; else url=$ETCD_LEADER; fi
        rate=$(wrk -t2 -c16 -d"${DURATION}s" -s "$WORK/$target.lua" "$url" | awk '/Requests\/sec/ {print $2}')
        echo "wrk cross-check: $target writes at 16 connections: $rate/s"
    done
fi
