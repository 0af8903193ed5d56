#!/usr/bin/env bash
# Makes sure the tools the build and tests need are present: cargo, clang
# with libclang (rocksdb's bindings are generated with bindgen), the `kill`
# command (procps; the process tests send SIGTERM/SIGSTOP/SIGCONT) and
# python3 (scripts/check-shared-rocksdb-build.sh reads cargo's plan with it).
# Installs what is missing with apt-get when run as root; otherwise prints
# the command.
set -euo pipefail

if ! command -v cargo >/dev/null && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null; then
    echo "install-build-deps: cargo not found; install Rust from https://rustup.rs" >&2
    exit 1
fi

have_libclang() {
    compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null ||
        compgen -G '/usr/lib/*/libclang-[0-9]*.so*' >/dev/null ||
        compgen -G '/usr/lib/*/libclang.so*' >/dev/null
}

# A fresh `make test` writes 4.6 GB to the target directory without
# incremental compilation (as .ci/run builds), a few GB more with it. A
# linker that runs out of disk dies of SIGBUS without a word about space,
# so say it first.
fresh_build_gb=8
target_dir=${CARGO_TARGET_DIR:-target}
probe=$target_dir
while [[ ! -d $probe ]]; do probe=$(dirname "$probe"); done
free_gb=$(($(df --output=avail -k "$probe" | tail -1) / 1024 / 1024))
if [[ ! -d $target_dir/debug && $free_gb -lt $fresh_build_gb ]]; then
    echo "install-build-deps: warning: $free_gb GB free for $target_dir; a fresh build needs about $fresh_build_gb GB" >&2
fi

missing=()
if ! command -v clang >/dev/null || ! have_libclang; then
    missing+=(libclang-dev clang)
fi
if [[ ! -x /bin/kill && ! -x /usr/bin/kill ]]; then
    missing+=(procps)
fi
if ! command -v python3 >/dev/null; then
    missing+=(python3)
fi
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "install-build-deps: installing ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
else
    echo "install-build-deps: ${missing[*]} are needed to build and test. Run:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
