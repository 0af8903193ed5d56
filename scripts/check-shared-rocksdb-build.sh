#!/usr/bin/env bash
# RocksDB's C++ build takes 10-15 minutes here, so every way of building the
# node must reuse one build of it: the workspace, the node alone, its tests,
# its examples. Cargo compiles librocksdb-sys again whenever a crate in its
# build closure (bindgen, nom, memchr, ...) is resolved with other features,
# which happens when another member's build dependencies enable more of them.
# This compares that closure across the ways we build, without building:
# cargo's unit graph (unstable, read through RUSTC_BOOTSTRAP) names each unit
# with its features. A difference is fixed in node/Cargo.toml's
# [build-dependencies].
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The units librocksdb-sys's build script run depends on, one per line:
# package, mode and features (the profile name differs between `build` and
# `test` but both share the dev profile's artifacts).
rocksdb_closure() {
    RUSTC_BOOTSTRAP=1 cargo "$@" -Z unstable-options --unit-graph 2>/dev/null | python3 -c '
import json, sys
units = json.load(sys.stdin)["units"]
roots = [i for i, u in enumerate(units)
         if "#librocksdb-sys@" in u["pkg_id"] and u["mode"] == "run-custom-build"]
if not roots:
    sys.exit("no librocksdb-sys build script in this build")
seen, todo = set(), roots
while todo:
    i = todo.pop()
    if i not in seen:
        seen.add(i)
        todo += [d["index"] for d in units[i]["dependencies"]]
for line in sorted({"%s %s %s" % (units[i]["pkg_id"].split("#")[-1], units[i]["mode"],
                                  ",".join(units[i]["features"])) for i in seen}):
    print(line)
'
}

reference=$(rocksdb_closure build --workspace)
failed=0
for build in "test --workspace --no-run" "build -p raftcfg-node --bin raftcfg" \
    "test -p raftcfg-node --no-run" "build -p raftcfg-node --examples" \
    "build --release -p raftcfg-node --bin raftcfg"; do
    # shellcheck disable=SC2086 # the words are cargo's arguments
    closure=$(rocksdb_closure $build)
    if [[ $build == *--release* ]]; then
        compare=$(rocksdb_closure build --release --workspace)
    else
        compare=$reference
    fi
    if [[ $closure != "$compare" ]]; then
        echo "shared rocksdb build: 'cargo $build' would compile RocksDB again:" >&2
        diff <(echo "$compare") <(echo "$closure") >&2 || true
        failed=1
    fi
done
[[ $failed -eq 0 ]] && echo "shared rocksdb build: ok"
exit $failed
