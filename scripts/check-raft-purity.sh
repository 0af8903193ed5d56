#!/usr/bin/env bash
# Checks that the Raft core (raftcfg-raft) stays free of I/O: no I/O crates in
# its normal dependency tree and no clocks, threads, files, sockets or
# thread-local randomness in raft/src/. Comment lines are not checked.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

forbidden_crates=(tokio async-std smol mio socket2 hyper axum reqwest rocksdb librocksdb-sys)
forbidden_code=('std::net' 'Instant::now' 'SystemTime::now' 'thread_rng' 'rand::rng()' 'std::fs' 'std::thread' 'tokio')

failed=0

if [[ ! -d raft/src ]]; then
    echo "raft purity: raft/src not found in $(pwd)" >&2
    exit 1
fi

# One crate name per line, for every target platform.
tree=$(cargo tree -p raftcfg-raft -e normal --target all --prefix none --format '{p}' | awk '{print $1}' | sort -u)

for crate in "${forbidden_crates[@]}"; do
    if grep -qxF -- "$crate" <<<"$tree"; then
        echo "raft purity: raftcfg-raft depends on '$crate':" >&2
        cargo tree -p raftcfg-raft -e normal --target all -i "$crate" >&2 || true
        failed=1
    fi
done

for pattern in "${forbidden_code[@]}"; do
    # Lines that mention the pattern, minus those that are only a comment.
    hits=$(grep -rnF --include='*.rs' -- "$pattern" raft/src | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' || true)
    if [[ -n "$hits" ]]; then
        echo "raft purity: raft/src uses '$pattern':" >&2
        echo "$hits" >&2
        failed=1
    fi
done

if [[ $failed -ne 0 ]]; then
    echo "raft purity: FAILED (the Raft core must not do I/O; see docs/design.md §1)" >&2
    exit 1
fi

echo "raft purity: ok"
