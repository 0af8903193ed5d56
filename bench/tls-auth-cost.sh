#!/usr/bin/env bash
# What TLS and auth cost: two 3-member clusters of `raftcfg serve`
# processes (release build) on 127.0.0.1, one plain and one with TLS on
# both ports (mutual on the peer port) and auth on, loaded in turn by
# `raftcfg-tools bench` (all load to the leader, 256-byte values over 1,000
# keys). The secure cluster's load signs in as a user with a role on the
# benchmark's keys, by bearer token (checked on every request). The two
# are interleaved: each repetition runs every level on both, alternating
# which goes first. Prints the medians and the secure/plain ratio. Both
# runs use the generator's pooled client (`--pooled`), which TLS needs, so
# the generator costs both the same.
#
#   bench/tls-auth-cost.sh                                   # ~6 min
#   BENCH_REPS=1 BENCH_DURATION=3 bench/tls-auth-cost.sh
#
# Needs openssl (to make the certificates) and python3 (the table).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-1}
REPS=${BENCH_REPS:-3}
LEVELS=${BENCH_CONCURRENCY:-"1 64"}
WORKLOADS=${BENCH_WORKLOADS:-"write read"}
PLAIN_BASE=${BENCH_PLAIN_PORT:-18379}
SECURE_BASE=${BENCH_SECURE_PORT:-19379}
for tool in openssl python3 curl; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done

cargo build --release -p raftcfg-node --bin raftcfg
cargo build --release -p raftcfg-tools --bin raftcfg-tools
BIN=$PWD/target/release/raftcfg
TOOLS=$PWD/target/release/raftcfg-tools
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

# A CA and one certificate for every member, for 127.0.0.1, usable as
# server and client (members present it to each other).
PKI=$WORK/pki
mkdir -p "$PKI"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=bench CA" -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$PKI/ext"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=member" \
    -keyout "$PKI/member.key" -out "$PKI/member.csr" 2>/dev/null
openssl x509 -req -in "$PKI/member.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 2 -extfile "$PKI/ext" -out "$PKI/member.crt" 2>/dev/null

# start_cluster NAME BASE SCHEME EXTRA...: three members, founded and joined.
start_cluster() {
    local name=$1 base=$2 scheme=$3; shift 3
    local cli=("$BIN")
    local curl_tls=()
    if [ "$scheme" = https ]; then curl_tls=(--cacert "$PKI/ca.crt"); fi
    for i in 0 1 2; do
        local client=$((base + 100 * i)) peer=$((base + 100 * i + 1))
        "$BIN" serve --name "$name$i" --data-dir "$WORK/$name/$i" \
            --listen-client "127.0.0.1:$client" --listen-peer "127.0.0.1:$peer" \
            --advertise-client "$scheme://127.0.0.1:$client" --advertise-peer "$scheme://127.0.0.1:$peer" \
            "$@" >"$WORK/$name-$i.log" 2>&1 &
        PIDS+=($!)
        wait_until "$name$i" curl -sf "${curl_tls[@]}" "$scheme://127.0.0.1:$client/v1/node"
    done
    local founder="$scheme://127.0.0.1:$base"
    curl -sf "${curl_tls[@]}" -X POST "$founder/v1/cluster/bootstrap" >/dev/null
    wait_until "$name to lead" curl -sf "${curl_tls[@]}" "$founder/readyz"
    for i in 1 2; do
        local client=$((base + 100 * i)) peer=$((base + 100 * i + 1))
        local id
        id=$(curl -sf "${curl_tls[@]}" "$scheme://127.0.0.1:$client/v1/node" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["node_id"])')
        "$BIN" member add --endpoints "$founder" --cacert "$PKI/ca.crt" --node-id "$id" \
            --name "$name$i" --peer-url "$scheme://127.0.0.1:$peer" \
            --client-url "$scheme://127.0.0.1:$client" >/dev/null
        wait_until "$name$i to be promoted" "$BIN" member promote --endpoints "$founder" \
            --cacert "$PKI/ca.crt" "$id"
    done
}

start_cluster plain "$PLAIN_BASE" http
start_cluster secure "$SECURE_BASE" https \
    --cert-file "$PKI/member.crt" --key-file "$PKI/member.key" --trusted-ca-file "$PKI/ca.crt" \
    --peer-cert-file "$PKI/member.crt" --peer-key-file "$PKI/member.key" \
    --peer-trusted-ca-file "$PKI/ca.crt" --auth-token-ttl 86400

SECURE="https://127.0.0.1:$SECURE_BASE"
export RAFTCFG_CACERT=$PKI/ca.crt
export RAFTCFG_NEW_PASSWORD=bench-password
"$BIN" user add root --endpoints "$SECURE" >/dev/null
"$BIN" user grant-role root root --endpoints "$SECURE" >/dev/null
"$BIN" role add bench --endpoints "$SECURE" >/dev/null
"$BIN" role grant bench bench/ readwrite --endpoints "$SECURE" >/dev/null
"$BIN" user add bench --endpoints "$SECURE" >/dev/null
"$BIN" user grant-role bench bench --endpoints "$SECURE" >/dev/null
"$BIN" auth enable --endpoints "$SECURE" >/dev/null
TOKEN=$("$BIN" auth token --user bench --password bench-password --endpoints "$SECURE")
unset RAFTCFG_NEW_PASSWORD

leader_of() { # leader_of URL: the leader's client URL
    curl -sf --cacert "$PKI/ca.crt" -H "Authorization: Bearer $TOKEN" "$1/v1/cluster/members" |
        python3 -c 'import json,sys; print(next(m["client_url"] for m in json.load(sys.stdin)["members"] if m["leader"]))'
}
PLAIN_LEADER=$(leader_of "http://127.0.0.1:$PLAIN_BASE")
SECURE_LEADER=$(leader_of "$SECURE")
echo "bench: plain leader $PLAIN_LEADER, secure leader $SECURE_LEADER" >&2

RESULTS=$WORK/results.jsonl
run() { # run REP SETUP WORKLOAD CONCURRENCY
    local rep=$1 setup=$2 workload=$3 level=$4
    local args=(bench --workload "$workload" --concurrency "$level" --duration "$DURATION"
        --warmup "$WARMUP" --pooled --json)
    if [ "$setup" = plain ]; then
        args+=(--endpoints "$PLAIN_LEADER")
    else
        args+=(--endpoints "$SECURE_LEADER" --cacert "$PKI/ca.crt" --token "$TOKEN")
    fi
    "$TOOLS" "${args[@]}" | python3 -c "
import json, sys
r = json.load(sys.stdin)
r.update(rep=$rep, setup='$setup', workload='$workload', level=$level)
print(json.dumps(r))" >>"$RESULTS"
}

for rep in $(seq 1 "$REPS"); do
    for workload in $WORKLOADS; do
        for level in $LEVELS; do
            if [ $((rep % 2)) = 1 ]; then order="plain secure"; else order="secure plain"; fi
            for setup in $order; do
                echo "bench: rep $rep $workload x$level $setup" >&2
                run "$rep" "$setup" "$workload" "$level"
            done
        done
    done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
def med(setup, workload, level, field):
    return statistics.median(r[field] for r in rows
        if r["setup"] == setup and r["workload"] == workload and r["level"] == level)
print("| workload | clients | plain ops/s | TLS+auth ops/s | ratio | plain p99 | TLS+auth p99 |")
print("|---|---:|---:|---:|---:|---:|---:|")
for workload in dict.fromkeys(r["workload"] for r in rows):
    for level in sorted({r["level"] for r in rows}):
        p, s = med("plain", workload, level, "throughput"), med("secure", workload, level, "throughput")
        pp = med("plain", workload, level, "p99_ms"); sp = med("secure", workload, level, "p99_ms")
        print(f"| {workload} | {level} | {p:,.0f} | {s:,.0f} | {s/p:.2f} | {pp:.2f} ms | {sp:.2f} ms |")
PY
