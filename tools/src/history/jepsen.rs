//! Jepsen register logs, as written by Jepsen's etcd test:
//!
//! ```text
//! INFO  jepsen.util - 2  :invoke  :cas    [3 0]
//! INFO  jepsen.util - 2  :fail    :cas    [3 0]
//! INFO  jepsen.util - 0  :invoke  :write  4
//! INFO  jepsen.util - 0  :info    :write  :timed-out
//! ```
//!
//! After `jepsen.util -` come the client process, the event type, the
//! function and its value, separated by tabs or spaces. `:invoke` starts a
//! process's operation; `:ok` completes it, `:fail` completes it without
//! effect (a cas whose comparison did not hold) and `:info` leaves its
//! outcome unknown, as does a log that ends before the completion. Values
//! are integers or `nil` (absent); a cas's is `[from to]`. The time of an
//! event is its line number (from 1). Every operation is on one register,
//! the key [`JEPSEN_KEY`]. Lines that are not client operation events (other
//! log output, the nemesis's events) are ignored.

use std::collections::HashMap;

use super::{History, HistoryError, OpKind, Operation, Outcome};

/// The key of every operation of a Jepsen log.
pub const JEPSEN_KEY: &str = "register";

/// Parses a Jepsen log.
pub(super) fn parse(text: &str) -> Result<History, HistoryError> {
    let mut operations: Vec<Operation> = Vec::new();
    // Process → index in `operations` of its operation in progress.
    let mut pending: HashMap<u64, usize> = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        let Some(event) = Event::of(line) else {
            continue;
        };
        let error = |reason: String| HistoryError::ParseJepsen {
            line: number,
            reason,
        };
        let time = number as u64;
        if event.kind == ":invoke" {
            if pending.contains_key(&event.process) {
                return Err(error(format!(
                    "process {} invokes while its previous operation is in progress",
                    event.process
                )));
            }
            let kind = match event.function {
                ":read" => OpKind::Read { value: None },
                ":write" => OpKind::Write {
                    value: integer(&event.value).map_err(error)?,
                },
                ":cas" => {
                    let (from, to) = pair(&event.value).map_err(error)?;
                    OpKind::Cas {
                        from,
                        to: to.ok_or_else(|| error("a cas cannot set nil".into()))?,
                    }
                }
                other => return Err(error(format!("unsupported function {other}"))),
            };
            pending.insert(event.process, operations.len());
            operations.push(Operation {
                process: event.process,
                key: JEPSEN_KEY.to_owned(),
                kind,
                call_time: time,
                return_time: None,
                outcome: Outcome::Unknown,
            });
            continue;
        }
        let Some(index) = pending.remove(&event.process) else {
            return Err(error(format!(
                "process {} completes an operation it never invoked",
                event.process
            )));
        };
        let op = &mut operations[index];
        let invoked = match op.kind {
            OpKind::Read { .. } => ":read",
            OpKind::Write { .. } => ":write",
            OpKind::Cas { .. } => ":cas",
        };
        if event.function != invoked {
            return Err(error(format!(
                "process {} invoked {invoked} but completes {}",
                event.process, event.function
            )));
        }
        match event.kind {
            ":ok" => {
                if let OpKind::Read { value } = &mut op.kind {
                    *value = optional_integer(&event.value).map_err(error)?;
                }
                op.outcome = Outcome::Ok;
                op.return_time = Some(time);
            }
            ":fail" => {
                op.outcome = Outcome::Fail;
                op.return_time = Some(time);
            }
            // `:info`: the outcome stays unknown.
            _ => {}
        }
    }
    History::new(operations)
}

/// The parts of an operation event line.
struct Event<'a> {
    process: u64,
    /// `:invoke`, `:ok`, `:fail` or `:info`.
    kind: &'a str,
    /// `:read`, `:write`, `:cas`…
    function: &'a str,
    /// The rest of the line, words joined by one space.
    value: String,
}

impl<'a> Event<'a> {
    /// The event on `line`, if it is a client operation event.
    fn of(line: &'a str) -> Option<Self> {
        let mut words = line
            .split_whitespace()
            .skip_while(|&word| word != "jepsen.util")
            .skip(1);
        if words.next() != Some("-") {
            return None;
        }
        let process = words.next()?.parse().ok()?;
        let kind = words
            .next()
            .filter(|kind| [":invoke", ":ok", ":fail", ":info"].contains(kind))?;
        let function = words.next().unwrap_or("");
        let value = words.collect::<Vec<_>>().join(" ");
        Some(Self {
            process,
            kind,
            function,
            value,
        })
    }
}

/// An integer value, in its canonical form.
fn integer(text: &str) -> Result<String, String> {
    optional_integer(text)?.ok_or_else(|| "expected an integer, found nil".to_owned())
}

/// An integer value or `nil`.
fn optional_integer(text: &str) -> Result<Option<String>, String> {
    if text == "nil" {
        return Ok(None);
    }
    text.parse::<i64>()
        .map(|value| Some(value.to_string()))
        .map_err(|_| format!("expected an integer or nil, found {text:?}"))
}

/// A cas's `[from to]`.
fn pair(text: &str) -> Result<(Option<String>, Option<String>), String> {
    let inner = text
        .strip_prefix('[')
        .and_then(|text| text.strip_suffix(']'))
        .ok_or_else(|| format!("expected [from to], found {text:?}"))?;
    let mut parts = inner.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(from), Some(to), None) => Ok((optional_integer(from)?, optional_integer(to)?)),
        _ => Err(format!("expected [from to], found {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_with_tabs_or_spaces_and_other_lines_ignored() {
        let log = "INFO  jepsen.util - 2\t:invoke\t:cas\t[3 0]\n\
                   INFO  jepsen.core - Worker 2 starting\n\
                   INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
                   INFO  jepsen.util - 0   :invoke :read   nil\n\
                   INFO  jepsen.util - 2\t:fail\t:cas\t[3 0]\n\
                   INFO  jepsen.util - 0   :ok     :read   007\n\
                   INFO  jepsen.util - 1   :invoke :write  4\n\
                   INFO  jepsen.util - 1   :info   :write  :timed-out\n\
                   INFO  jepsen.util - 3   :invoke :write  5\n";
        let history = History::from_jepsen(log).unwrap();
        let ops = history.operations();
        assert_eq!(ops.len(), 4);
        assert_eq!(
            ops[0].kind,
            OpKind::Cas {
                from: Some("3".into()),
                to: "0".into()
            }
        );
        assert_eq!(
            (ops[0].call_time, ops[0].return_time, ops[0].outcome),
            (1, Some(5), Outcome::Fail)
        );
        assert_eq!(
            ops[1].kind,
            OpKind::Read {
                value: Some("7".into())
            }
        );
        assert_eq!(
            (ops[1].call_time, ops[1].return_time, ops[1].outcome),
            (4, Some(6), Outcome::Ok)
        );
        assert_eq!(
            (ops[2].process, ops[2].outcome, ops[2].return_time),
            (1, Outcome::Unknown, None)
        );
        assert_eq!(
            (ops[3].process, ops[3].outcome, ops[3].return_time),
            (3, Outcome::Unknown, None)
        );
        assert!(ops.iter().all(|op| op.key == JEPSEN_KEY));
    }

    #[test]
    fn malformed_events_are_refused_with_their_line() {
        for (log, error) in [
            (
                "INFO jepsen.util - 1 :ok :read nil",
                "line 1: process 1 completes an operation it never invoked",
            ),
            (
                "INFO jepsen.util - 1 :invoke :read nil\nINFO jepsen.util - 1 :invoke :read nil",
                "line 2: process 1 invokes",
            ),
            (
                "INFO jepsen.util - 1 :invoke :read nil\nINFO jepsen.util - 1 :ok :write 1",
                "invoked :read but completes :write",
            ),
            (
                "INFO jepsen.util - 1 :invoke :write x",
                "expected an integer or nil",
            ),
            (
                "INFO jepsen.util - 1 :invoke :cas [1]",
                "expected [from to]",
            ),
            (
                "INFO jepsen.util - 1 :invoke :add 1",
                "unsupported function :add",
            ),
        ] {
            let message = History::from_jepsen(log).unwrap_err().to_string();
            assert!(message.contains(error), "{log}: {message}");
        }
    }
}
