# cargo may not be on PATH in a fresh shell (rustup installs it here).
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: deps test fmt lint bench sim

# Build prerequisites: cargo, clang and libclang (for rocksdb's bindgen).
deps:
	scripts/install-build-deps.sh

test: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	scripts/check-raft-purity.sh
	cargo test --workspace

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings
	scripts/check-raft-purity.sh

bench:
	cargo bench -p raftcfg-raft

# Many simulation seeds, in release.
sim:
	RAFT_SIM_SEEDS=20000 cargo test --release -p raftcfg-raft --test simulation -- --nocapture
