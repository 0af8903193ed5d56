#!/usr/bin/env bash
# Makes sure the tools the build needs are present: cargo, and clang with
# libclang (rocksdb's bindings are generated with bindgen). Installs clang and
# libclang-dev with apt-get when run as root; otherwise prints the command.
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

if command -v clang >/dev/null && have_libclang; then
    exit 0
fi

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "install-build-deps: installing clang and libclang-dev"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y libclang-dev clang
else
    echo "install-build-deps: clang and libclang are needed to build rocksdb. Run:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y libclang-dev clang" >&2
    exit 1
fi
