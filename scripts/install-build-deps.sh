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
