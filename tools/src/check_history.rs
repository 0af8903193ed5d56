//! `raftcfg-tools check-history`: whether a recorded client history is
//! linearizable. Reads the file, runs [`crate::history::check`] and prints
//! the verdict; the exit status is the verdict too: 0 linearizable, 1 not
//! linearizable, 2 unknown (the checker ran out of time), 3 the file could
//! not be read or parsed (so a typo is never taken for a violation).

use std::io::{ErrorKind, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::history::{self, History, Verdict};

/// Options of `raftcfg-tools check-history`.
#[derive(Debug, clap::Args)]
pub struct CheckHistoryArgs {
    /// The file's format.
    #[arg(long, value_enum, default_value_t = HistoryFormat::Json)]
    pub format: HistoryFormat,
    /// Seconds the checker may take; after that the verdict is unknown.
    #[arg(long = "timeout", value_name = "SECS", default_value_t = 60.0)]
    pub timeout_secs: f64,
    /// The history to check.
    pub file: PathBuf,
}

/// The format of a history file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HistoryFormat {
    /// The JSON that raftcfg's fault-injection tests record.
    Json,
    /// A Jepsen register log (`INFO jepsen.util - 2 :invoke :cas [3 0]`).
    Jepsen,
}

/// Exit status for a file that cannot be read or parsed.
const EXIT_BAD_INPUT: u8 = 3;

/// Checks the history and prints the verdict; returns the exit status it
/// stands for. An unreadable or malformed file is one line on stderr and
/// exit status 3.
pub fn run(args: &CheckHistoryArgs) -> anyhow::Result<ExitCode> {
    match check_file(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("raftcfg-tools: error: {e:#}");
            Ok(ExitCode::from(EXIT_BAD_INPUT))
        }
    }
}

fn check_file(args: &CheckHistoryArgs) -> anyhow::Result<ExitCode> {
    let timeout = Duration::try_from_secs_f64(args.timeout_secs)
        .context("--timeout must be a number of seconds, 0 or more")?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let history = match args.format {
        HistoryFormat::Json => History::from_json(&text),
        HistoryFormat::Jepsen => History::from_jepsen(&text),
    }
    .with_context(|| format!("cannot parse {}", args.file.display()))?;
    let verdict = history::check(&history, timeout);
    // The first line alone is the verdict: `| head -1` must not fail.
    match writeln!(std::io::stdout(), "{verdict}") {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => {
            return Err(e).context("cannot print the verdict");
        }
        _ => {}
    }
    Ok(ExitCode::from(match verdict {
        Verdict::Linearizable => 0,
        Verdict::NotLinearizable(_) => 1,
        Verdict::Unknown(_) => 2,
    }))
}
