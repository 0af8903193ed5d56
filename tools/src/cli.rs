//! The `raftcfg-tools` command line: argument parsing and dispatch; every
//! error reaches the user as one line on stderr and a non-zero exit status.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{bench, check_history, floor};

/// raftcfg-tools: check client histories, generate load, and measure the
/// floor of a replicated, synced write.
#[derive(Debug, Parser)]
#[command(name = "raftcfg-tools", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate load against raftcfg (or etcd) and print throughput and latency.
    Bench(bench::BenchArgs),
    /// Check a recorded client history for linearizability; the exit status
    /// is the verdict: 0 linearizable, 1 not linearizable, 2 unknown.
    CheckHistory(check_history::CheckHistoryArgs),
    /// Measure the least time a write synced on two of three members can
    /// take on this machine (no HTTP, consensus or database).
    Floor(floor::FloorArgs),
    /// One member of `floor`'s pipeline (started by `floor` itself).
    #[command(hide = true)]
    FloorMember(floor::MemberArgs),
}

/// Parses the arguments, runs the command and turns its error into one line.
pub fn main() -> ExitCode {
    let result = match Cli::parse().command {
        // The only command whose success has more than one exit status.
        Command::CheckHistory(args) => check_history::run(&args),
        Command::Bench(args) => bench_runtime(args.concurrency)
            .and_then(|runtime| runtime.block_on(bench::run(args)))
            .map(|()| ExitCode::SUCCESS),
        Command::Floor(args) => floor::run(&args).map(|()| ExitCode::SUCCESS),
        Command::FloorMember(args) => floor::run_member(&args).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("raftcfg-tools: error: {e:#}");
        ExitCode::FAILURE
    })
}

/// The load generator's runtime: a thread per request in flight, at most
/// one per core. Threads beyond the requests in flight would only wake
/// one another (each wake-up of a sleeping thread costs several µs on a
/// small virtual machine, on the CPUs the measured servers need).
fn bench_runtime(concurrency: u32) -> anyhow::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = (concurrency as usize).clamp(1, cores);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_generator_runs_a_thread_per_request_in_flight_up_to_the_cores() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let workers = |concurrency| bench_runtime(concurrency).unwrap().metrics().num_workers();
        assert_eq!(workers(1), 1);
        assert_eq!(workers(0), 1, "never fewer than one");
        assert_eq!(workers(u32::MAX), cores);
    }
}
