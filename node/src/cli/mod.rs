//! The `raftcfg` command line: argument parsing and dispatch. Each
//! subcommand lives in its own module; every error reaches the user as one
//! line on stderr and a non-zero exit status.

mod client_commands;
mod dev;
mod restore;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// raftcfg: a replicated configuration store.
#[derive(Debug, Parser)]
#[command(name = "raftcfg", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one node.
    Serve(Box<serve::ServeArgs>),
    /// Run a three-node cluster on 127.0.0.1 for development (data in ./data/dev).
    Dev(dev::DevArgs),
    /// Talk to a running cluster.
    #[command(flatten)]
    Client(client_commands::ClientCommand),
}

/// Parses the arguments, runs the command and turns its error into one line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("raftcfg: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Dev(args) => dev::run(args).await,
            Command::Client(command) => client_commands::run(command).await,
        }
        .map(|()| ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("raftcfg: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
