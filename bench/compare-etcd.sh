#!/usr/bin/env bash
# Measures raftcfg against etcd on this machine with one load generator
# (`raftcfg-tools bench`): a `raftcfg dev` cluster (3 nodes, fsync on) and a
# 3-member etcd cluster (Debian's etcd-server, fsync on), both on 127.0.0.1,
# 256-byte values over 1,000 keys, writes and linearizable reads at each
# concurrency level. Prints one table of raftcfg/etcd ratios.
#
#   bench/compare-etcd.sh                 # the full comparison (~4 min)
#   BENCH_DURATION=3 BENCH_CONCURRENCY="1 16" bench/compare-etcd.sh
#
# Needs etcd on PATH (installed with apt-get when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

DURATION=${BENCH_DURATION:-10}
LEVELS=${BENCH_CONCURRENCY:-"1 16 64 256"}
WORKLOADS=${BENCH_WORKLOADS:-"write read"}
RAFTCFG_BASE=${BENCH_RAFTCFG_PORT:-17379}
ETCD_BASE=${BENCH_ETCD_PORT:-22379}

if ! command -v etcd >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server >/dev/null
    else
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
    echo "timed out waiting for $what" >&2
    exit 1
}

# raftcfg: the dev cluster, release build.
"$BIN" dev --data-dir "$WORK/raftcfg" --base-port "$RAFTCFG_BASE" >"$WORK/raftcfg.log" 2>&1 &
PIDS+=($!)
wait_until "raftcfg dev" grep -q "3-node cluster ready" "$WORK/raftcfg.log"
RAFTCFG_ENDPOINTS="http://127.0.0.1:$RAFTCFG_BASE,http://127.0.0.1:$((RAFTCFG_BASE + 100)),http://127.0.0.1:$((RAFTCFG_BASE + 200))"

# etcd: three members.
INITIAL=""
for i in 0 1 2; do
    INITIAL+="e$i=http://127.0.0.1:$((ETCD_BASE + 100 * i + 1)),"
done
INITIAL=${INITIAL%,}
ETCD_ENDPOINTS=""
for i in 0 1 2; do
    client=$((ETCD_BASE + 100 * i)); peer=$((client + 1))
    etcd --name "e$i" --data-dir "$WORK/etcd/e$i" \
        --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "$INITIAL" --initial-cluster-state new --initial-cluster-token raftcfg-bench \
        >"$WORK/etcd-$i.log" 2>&1 &
    PIDS+=($!)
    ETCD_ENDPOINTS+="http://127.0.0.1:$client,"
done
ETCD_ENDPOINTS=${ETCD_ENDPOINTS%,}
wait_until "etcd" curl -sf "http://127.0.0.1:$ETCD_BASE/health"

RESULTS="$WORK/results.jsonl"
for workload in $WORKLOADS; do
    for c in $LEVELS; do
        for target in raftcfg etcd; do
            if [ "$target" = raftcfg ]; then endpoints=$RAFTCFG_ENDPOINTS; else endpoints=$ETCD_ENDPOINTS; fi
            echo "bench: $target $workload concurrency $c" >&2
            "$TOOLS" bench --target "$target" --workload "$workload" --concurrency "$c" \
                --value-size 256 --keys 1000 --duration "$DURATION" --json \
                --endpoints "$endpoints" >>"$RESULTS"
        done
    done
done

python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = {(r["target"], r["workload"], r["concurrency"]): r for r in rows}
print(f"{'workload':<10} {'conc':>5} {'raftcfg ops/s':>14} {'etcd ops/s':>11} {'ratio':>6} "
      f"{'raftcfg p99':>12} {'etcd p99':>9} {'p99 ratio':>9}")
ok = True
for (target, workload, c), r in sorted(by.items(), key=lambda k: (k[0][1], k[0][2])):
    if target != "raftcfg":
        continue
    e = by[("etcd", workload, c)]
    ratio = r["throughput"] / e["throughput"] if e["throughput"] else float("inf")
    p99 = r["p99_ms"] / e["p99_ms"] if e["p99_ms"] else float("inf")
    ok &= ratio >= 1.0 and p99 <= 1.0
    print(f"{workload:<10} {c:>5} {r['throughput']:>14.0f} {e['throughput']:>11.0f} {ratio:>6.2f} "
          f"{r['p99_ms']:>10.2f}ms {e['p99_ms']:>7.2f}ms {p99:>9.2f}")
print("raftcfg at least as fast as etcd everywhere" if ok else "raftcfg is slower than etcd somewhere")
PY
