//! The `raftcfg` command-line tool: runs a node and talks to a cluster.

/// jemalloc instead of glibc's allocator. glibc keeps up to eight arenas
/// per core, and each keeps the large buffers freed in it (request bodies,
/// values, peer batches of up to 4 MiB) for reuse: with 1 MiB values that
/// held about 85 MiB more per process (`make bench-state`,
/// docs/benchmarks.md). jemalloc returns freed memory to the system over
/// time.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    raftcfg_node::cli::main()
}
