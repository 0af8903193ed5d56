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
        Command::Bench(args) => tokio::runtime::Runtime::new()
            .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
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
