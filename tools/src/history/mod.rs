//! Linearizability of client histories: is there one order of all the
//! operations, consistent with when each was called and returned, in which
//! every key behaves as a single register?
//!
//! ```text
//!  Jepsen log ──History::from_jepsen──┐
//!                                     ├─► History ──check(timeout)──► Verdict
//!  JSON file ───History::from_json────┘     per key: checker + model
//! ```
//!
//! A [`History`] holds what clients observed: each [`Operation`] with its
//! call and return times and its [`Outcome`]. [`check`] partitions it by key
//! (linearizability is local: the whole history is linearizable exactly when
//! every key's part is), searches each key for a linearization
//! (`checker`, over the register `model`) and returns a [`Verdict`]. `json`
//! and `jepsen` parse the two input formats.
//!
//! This module owns the types, the parsers, the model and the search. It
//! does no I/O (the `raftcfg check-history` command reads the file) and has
//! no global state: a history gets the same verdict every time, unless the
//! time allowed runs out, which gives [`Verdict::Unknown`] and never a pass.

mod checker;
mod jepsen;
mod json;
mod model;

use std::fmt;

pub use checker::{check, check_report};
pub use jepsen::JEPSEN_KEY;

/// One client operation on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The client process that issued it.
    pub process: u64,
    /// The key it acted on; every key is a register of its own.
    pub key: String,
    /// What it did, with its arguments and, for a read, the value it saw.
    pub kind: OpKind,
    /// When it was called. In JSON histories nanoseconds since the run
    /// began, in Jepsen logs the line number; only the order matters.
    pub call_time: u64,
    /// When it returned, in the unit of `call_time`; `None` if it never did.
    /// Ignored when the outcome is [`Outcome::Unknown`].
    pub return_time: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
}

/// What an operation did to its key's register. `None` is the absent value
/// (the key does not exist), which every register starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// Read the register; `value` is what was seen (meaningful only if the
    /// read succeeded).
    Read { value: Option<String> },
    /// Set the register to `value`.
    Write { value: String },
    /// Compare-and-swap: set the register to `to` if it holds `from`.
    Cas { from: Option<String>, to: String },
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It took effect (a read saw its value, a cas found `from`).
    Ok,
    /// It definitely did not take effect. A failed read or write is
    /// ignored; a failed cas observed a value other than `from`.
    Fail,
    /// Nobody knows (timeout, lost connection): it may take effect at any
    /// time after its call, or never. Unknown reads are ignored.
    Unknown,
}

/// The operations clients performed, in any order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    operations: Vec<Operation>,
}

/// Why a history could not be built or parsed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The JSON text is malformed, or has a missing or unknown field.
    #[error("invalid JSON history: {0}")]
    ParseJson(serde_json::Error),
    /// A Jepsen log line looks like an operation event but is not a valid one.
    #[error("Jepsen log, line {line}: {reason}")]
    ParseJepsen { line: usize, reason: String },
    /// An operation is inconsistent (counted from 0 in the input).
    #[error("operation {index}: {reason}")]
    ValidateOperation { index: usize, reason: String },
}

impl History {
    /// A history of these operations, after checking that each is
    /// consistent: a completed (ok or failed) operation has a return time,
    /// and no operation returns before it is called.
    pub fn new(operations: Vec<Operation>) -> Result<Self, HistoryError> {
        for (index, op) in operations.iter().enumerate() {
            let invalid = |reason: &str| HistoryError::ValidateOperation {
                index,
                reason: reason.to_owned(),
            };
            match (op.outcome, op.return_time) {
                (Outcome::Ok | Outcome::Fail, None) => {
                    return Err(invalid("a completed operation needs a return time"));
                }
                (_, Some(ret)) if ret < op.call_time => {
                    return Err(invalid("returns before it is called"));
                }
                _ => {}
            }
        }
        Ok(Self { operations })
    }

    /// The operations, in the order they were given.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// Parses the project's JSON history format (see the `json` module).
    pub fn from_json(text: &str) -> Result<Self, HistoryError> {
        json::parse(text)
    }

    /// The history in the project's JSON format.
    pub fn to_json(&self) -> String {
        json::render(self)
    }

    /// Parses a Jepsen register log (`INFO jepsen.util - 2 :invoke :cas [3 0]`
    /// lines; see the `jepsen` module). All its operations are on the key
    /// [`JEPSEN_KEY`].
    pub fn from_jepsen(text: &str) -> Result<Self, HistoryError> {
        jepsen::parse(text)
    }
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key has a linearization.
    Linearizable,
    /// Some key has none; this explains where the search got stuck.
    NotLinearizable(Counterexample),
    /// The checker ran out of time before deciding; says where.
    Unknown(String),
}

/// Why a key's history has no linearization: the furthest point the search
/// reached, in real time. The `prefix` is a valid order of operations that
/// includes every operation returning before `stuck_at` returns, but no
/// order of the `unplaced` operations (which were pending at that point) can
/// extend any such prefix up to `stuck_at`'s return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterexample {
    /// The key concerned.
    pub key: String,
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<Placed>,
    /// The register's value after the prefix.
    pub state: Option<String>,
    /// The operation whose return could not be reached.
    pub stuck_at: usize,
    /// The operations pending at that point, `stuck_at` among them, in call
    /// order: each with its index in the history.
    pub unplaced: Vec<(usize, Operation)>,
}

/// An operation placed in a linearization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// Its index in the history.
    pub index: usize,
    /// The operation.
    pub operation: Operation,
    /// The register's value after it.
    pub state_after: Option<String>,
}

/// What a check found, with figures for each key searched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The verdict on the whole history.
    pub verdict: Verdict,
    /// One entry per key searched, in key order. Keys after the first that
    /// is not linearizable, or after the time ran out, are not searched.
    pub keys: Vec<KeyStats>,
}

/// Figures for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStats {
    /// The key.
    pub key: String,
    /// Operations the search had to order (failed or unknown reads and
    /// failed writes, which constrain nothing, are not counted).
    pub operations: usize,
    /// States the search entered (a measure of its work).
    pub states: usize,
}

/// The most prefix operations [`Counterexample`]'s `Display` shows.
const SHOWN_PREFIX_OPERATIONS: usize = 10;

/// The most unplaced operations of unknown outcome it shows.
const SHOWN_UNKNOWN_OPERATIONS: usize = 5;

impl fmt::Display for Verdict {
    /// The first line is `linearizable`, `not linearizable` or `unknown`;
    /// the explanation, if any, follows on the next lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Linearizable => write!(f, "linearizable"),
            Self::NotLinearizable(counterexample) => {
                write!(f, "not linearizable\n{counterexample}")
            }
            Self::Unknown(why) => write!(f, "unknown\n{why}"),
        }
    }
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stuck = self
            .unplaced
            .iter()
            .find(|(index, _)| *index == self.stuck_at);
        write!(
            f,
            "key {:?}: no order of the operations reaches the return of #{}",
            self.key, self.stuck_at
        )?;
        if let Some((_, op)) = stuck
            && let Some(ret) = op.return_time
        {
            write!(f, " at {ret}")?;
        }
        writeln!(f)?;
        let omitted = self.prefix.len().saturating_sub(SHOWN_PREFIX_OPERATIONS);
        write!(
            f,
            "longest linearizable prefix found: {} operations",
            self.prefix.len()
        )?;
        if omitted > 0 {
            write!(f, ", the last {SHOWN_PREFIX_OPERATIONS} shown")?;
        }
        writeln!(f)?;
        for placed in &self.prefix[omitted..] {
            writeln!(
                f,
                "  #{:<5} {}  => {}",
                placed.index,
                placed.operation,
                ValueDisplay(placed.state_after.as_deref())
            )?;
        }
        writeln!(
            f,
            "register after the prefix: {}",
            ValueDisplay(self.state.as_deref())
        )?;
        write!(
            f,
            "operations that could not be placed next (pending at that point):"
        )?;
        // Unknown operations stay pending forever: show the latest few.
        let unknown = self
            .unplaced
            .iter()
            .filter(|(_, op)| op.outcome == Outcome::Unknown);
        let older_unknown = unknown.count().saturating_sub(SHOWN_UNKNOWN_OPERATIONS);
        let mut skipped = 0;
        for (index, op) in &self.unplaced {
            if op.outcome == Outcome::Unknown && skipped < older_unknown {
                skipped += 1;
                continue;
            }
            write!(f, "\n  #{index:<5} {op}")?;
        }
        if older_unknown > 0 {
            write!(
                f,
                "\n  and {older_unknown} earlier operations of unknown outcome"
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Operation {
    /// `process 2  cas 3 -> 0  ok  call 17  return 20`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process {}  ", self.process)?;
        match &self.kind {
            OpKind::Read { value } if self.outcome == Outcome::Ok => {
                write!(f, "read {}", ValueDisplay(value.as_deref()))?;
            }
            OpKind::Read { .. } => write!(f, "read")?,
            OpKind::Write { value } => write!(f, "write {}", ValueDisplay(Some(value)))?,
            OpKind::Cas { from, to } => write!(
                f,
                "cas {} -> {}",
                ValueDisplay(from.as_deref()),
                ValueDisplay(Some(to))
            )?,
        }
        let outcome = match self.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        };
        write!(f, "  {outcome}  call {}", self.call_time)?;
        match (self.outcome, self.return_time) {
            (_, None) => write!(f, "  never returned"),
            (Outcome::Unknown, Some(ret)) => write!(f, "  gave up {ret}"),
            (_, Some(ret)) => write!(f, "  return {ret}"),
        }
    }
}

/// A register value for people: `nil` when absent, bare when it is a plain
/// word, quoted otherwise.
struct ValueDisplay<'a>(Option<&'a str>);

impl fmt::Display for ValueDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => write!(f, "nil"),
            Some(value)
                if value != "nil"
                    && !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b)) =>
            {
                write!(f, "{value}")
            }
            Some(value) => write!(f, "{value:?}"),
        }
    }
}
