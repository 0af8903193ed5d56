//! The `raftcfg` command line: argument parsing and dispatch. Each
//! subcommand lives in its own module; every error reaches the user as one
//! line on stderr and a non-zero exit status.

mod auth_commands;
mod client_commands;
mod dev;
mod output;
mod restore;
mod serve;
mod status;

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

/// The subcommands. (Made once per process: the size of its variants
/// does not matter.)
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
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

/// Prints help or the version as clap does, and a usage mistake as one
/// line (exit status 2).
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    eprintln!("raftcfg: error: {}", one_line(&error.to_string()));
    ExitCode::from(2)
}

/// The first paragraph of clap's message on one line, without its
/// `error: ` prefix, and where to read more.
fn one_line(message: &str) -> String {
    let paragraph: Vec<&str> = message
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty())
        .collect();
    let text = paragraph.join(" ");
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    format!("{text} (see raftcfg --help, or raftcfg COMMAND --help)")
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn a_usage_mistake_is_one_line_naming_it() {
        for args in [
            &["raftcfg", "get"][..],
            &["raftcfg", "get", "k", "--bogus"],
            &[
                "raftcfg",
                "put",
                "k",
                "v",
                "--if-absent",
                "--if-mod-revision",
                "3",
            ],
            &["raftcfg", "nonsense"],
            &["raftcfg", "get", "k", "--timeout", "soon"],
        ] {
            let error = Cli::try_parse_from(args).unwrap_err();
            let line = one_line(&error.to_string());
            assert!(!line.contains('\n'), "{args:?}: {line}");
            assert!(line.len() > 40, "{args:?}: {line}");
            assert!(!line.starts_with("error:"), "{args:?}: {line}");
        }
        let error = Cli::try_parse_from(["raftcfg", "get", "k", "--bogus"]).unwrap_err();
        assert!(one_line(&error.to_string()).contains("--bogus"));
        let error = Cli::try_parse_from(["raftcfg", "get"]).unwrap_err();
        assert!(one_line(&error.to_string()).contains("<KEY>"));
    }
}
