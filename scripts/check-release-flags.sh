#!/usr/bin/env bash
# The `raftcfg` users build (without the test-only `fault-injection`
# feature) must refuse the flags that plant bugs or simulate power loss.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build -q -p raftcfg-node --bin raftcfg
bin="${CARGO_TARGET_DIR:-target}/debug/raftcfg"
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
for flag in "--planted-bug stale-reads" "--simulate-power-loss"; do
    # Were the flag taken, the node would start: stop it after 10 s.
    # shellcheck disable=SC2086 # the flag and its value are two words
    if output=$(timeout 10 "$bin" serve --name check --data-dir "$data" \
        --listen-client 127.0.0.1:0 --listen-peer 127.0.0.1:0 $flag 2>&1) \
        || ! grep -q "unexpected argument" <<<"$output"; then
        echo "release flags: FAILED (raftcfg serve did not refuse $flag: $output)" >&2
        exit 1
    fi
done
echo "release flags: ok"
