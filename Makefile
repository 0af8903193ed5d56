# cargo may not be on PATH in a fresh shell (rustup installs it here).
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: deps test fmt lint chart crds check-release-flags bench bench-etcd bench-tls-auth bench-state sim dev

# Build prerequisites: cargo, clang and libclang (for rocksdb's bindgen).
deps:
	scripts/install-build-deps.sh

test: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	scripts/check-raft-purity.sh
	scripts/check-shared-rocksdb-build.sh
	scripts/check-release-flags.sh
	scripts/check-chart.sh
	cargo test --workspace --no-fail-fast

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings
	scripts/check-raft-purity.sh

# Lint, render and validate the operator's Helm chart (needs helm and
# kubernetes-validate: ../shared/tools/install-k8s-tools; skipped without).
chart:
	scripts/check-chart.sh

# A normal build of `raftcfg` must refuse the test-only fault-injection
# flags (also part of `test`).
check-release-flags: deps
	scripts/check-release-flags.sh

# Regenerate the RaftCluster CRD from operator/src/crd.rs (and the chart's
# copy); `make test` fails while either differs from crdgen's output.
crds:
	cargo run -q -p raftcfg-operator --bin crdgen > crds/raftcluster.yaml
	cp crds/raftcluster.yaml charts/raftcfg-operator/crds/raftcluster.yaml

bench:
	cargo bench -p raftcfg-raft

# Three `raftcfg serve` processes against a 3-member etcd cluster, interleaved
# (docs/benchmarks.md); BENCH_REPS, BENCH_DURATION, ... shorten it.
bench-etcd: deps
	bench/compare-etcd.sh

# What TLS on both ports and auth cost: a plain and a secure 3-process
# cluster, interleaved (docs/benchmarks.md); BENCH_REPS, ... shorten it.
bench-tls-auth: deps
	bench/tls-auth-cost.sh

# A 3-process cluster filled to 1 GiB of state: latency in and between
# snapshot windows, a fourth member's catch-up, restart after kill -9
# (docs/benchmarks.md). BENCH_STATE_ARGS adds options (e.g. --state-mib 256).
bench-state: deps
	cargo build --release -p raftcfg-node --bin raftcfg --example bench-state
	cargo run --release -q -p raftcfg-node --example bench-state -- --shape keys $(BENCH_STATE_ARGS)
	cargo run --release -q -p raftcfg-node --example bench-state -- --shape values $(BENCH_STATE_ARGS)

# A 3-node development cluster on 127.0.0.1, data in ./data/dev.
dev: deps
	cargo run --release -p raftcfg-node --bin raftcfg -- dev

# Many simulation seeds, in release.
sim:
	RAFT_SIM_SEEDS=20000 cargo test --release -p raftcfg-raft --test simulation -- --nocapture
