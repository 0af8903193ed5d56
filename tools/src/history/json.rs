//! The project's JSON history format, which the fault-injection harness
//! writes and `raftcfg-tools check-history --format json` reads:
//!
//! ```json
//! {"operations": [
//!   {"process": 1, "key": "a", "op": "write", "value": "v1",
//!    "call": 1200, "return": 5400, "outcome": "ok"},
//!   {"process": 2, "key": "a", "op": "read", "value": null,
//!    "call": 1300, "return": 2100, "outcome": "ok"},
//!   {"process": 3, "key": "a", "op": "cas", "from": "v1", "to": "v2",
//!    "call": 6000, "return": null, "outcome": "unknown"}
//! ]}
//! ```
//!
//! One object with one field, `operations`, in any order. Each operation:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `process` | integer ≥ 0 | the client process that issued it |
//! | `key` | string | the key (each key is a register of its own) |
//! | `op` | `"read"`, `"write"` or `"cas"` | what it did |
//! | `value` | string or `null` | write: the value written (a string); read: the value seen, `null` if the key was absent (required when the outcome is `ok`); absent for cas |
//! | `from` | string or `null` | cas only (required): the value expected, `null` for absent |
//! | `to` | string | cas only (required): the value to set |
//! | `call` | integer ≥ 0 | when it was called, nanoseconds since the run began |
//! | `return` | integer or `null` | when it returned; `null` or absent if it never did; required when the outcome is `ok` or `fail` |
//! | `outcome` | `"ok"`, `"fail"` or `"unknown"` | took effect; definitely did not (a failed cas observed another value than `from`); may or may not have, at any time after its call |
//!
//! Any other field, at either level, is an error. With outcome `unknown` a
//! `return` (when the client gave up) is allowed and ignored.

use serde::{Deserialize, Deserializer, Serialize};

use super::{History, HistoryError, OpKind, Operation, Outcome};

/// The whole file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonHistory {
    operations: Vec<JsonOperation>,
}

/// One operation as written in the file; `None` means the field is absent,
/// `Some(None)` that it is `null`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonOperation {
    process: u64,
    key: String,
    op: JsonOp,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    value: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    from: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    call: u64,
    #[serde(rename = "return", default)]
    return_time: Option<u64>,
    outcome: JsonOutcome,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum JsonOp {
    Read,
    Write,
    Cas,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum JsonOutcome {
    Ok,
    Fail,
    Unknown,
}

/// Deserializes a field that is present (possibly `null`) as `Some`, so that
/// with `default` an absent field stays `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Parses a JSON history.
pub(super) fn parse(text: &str) -> Result<History, HistoryError> {
    let parsed: JsonHistory = serde_json::from_str(text).map_err(HistoryError::ParseJson)?;
    let operations = parsed
        .operations
        .into_iter()
        .enumerate()
        .map(|(index, op)| {
            operation(op).map_err(|reason| HistoryError::ValidateOperation {
                index,
                reason: reason.to_owned(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    History::new(operations)
}

/// The operation a JSON operation describes, or why it is inconsistent.
fn operation(op: JsonOperation) -> Result<Operation, &'static str> {
    let outcome = match op.outcome {
        JsonOutcome::Ok => Outcome::Ok,
        JsonOutcome::Fail => Outcome::Fail,
        JsonOutcome::Unknown => Outcome::Unknown,
    };
    let kind = match op.op {
        JsonOp::Read => {
            if op.from.is_some() || op.to.is_some() {
                return Err("a read has no \"from\" or \"to\"");
            }
            match op.value {
                Some(value) => OpKind::Read { value },
                None if outcome == Outcome::Ok => {
                    return Err("a successful read needs \"value\" (null if absent)");
                }
                None => OpKind::Read { value: None },
            }
        }
        JsonOp::Write => {
            if op.from.is_some() || op.to.is_some() {
                return Err("a write has no \"from\" or \"to\"");
            }
            match op.value {
                Some(Some(value)) => OpKind::Write { value },
                _ => return Err("a write needs \"value\", a string"),
            }
        }
        JsonOp::Cas => {
            if op.value.is_some() {
                return Err("a cas has \"from\" and \"to\", not \"value\"");
            }
            match (op.from, op.to) {
                (Some(from), Some(to)) => OpKind::Cas { from, to },
                _ => return Err("a cas needs \"from\" (a string or null) and \"to\" (a string)"),
            }
        }
    };
    Ok(Operation {
        process: op.process,
        key: op.key,
        kind,
        call_time: op.call,
        return_time: op.return_time,
        outcome,
    })
}

/// Renders a history as JSON (one operation per line).
pub(super) fn render(history: &History) -> String {
    let mut text = String::from("{\"operations\": [");
    for (i, op) in history.operations().iter().enumerate() {
        let (json_op, value, from, to) = match &op.kind {
            OpKind::Read { value } => (JsonOp::Read, Some(value.clone()), None, None),
            OpKind::Write { value } => (JsonOp::Write, Some(Some(value.clone())), None, None),
            OpKind::Cas { from, to } => (JsonOp::Cas, None, Some(from.clone()), Some(to.clone())),
        };
        let outcome = match op.outcome {
            Outcome::Ok => JsonOutcome::Ok,
            Outcome::Fail => JsonOutcome::Fail,
            Outcome::Unknown => JsonOutcome::Unknown,
        };
        let json = JsonOperation {
            process: op.process,
            key: op.key.clone(),
            op: json_op,
            value,
            from,
            to,
            call: op.call_time,
            return_time: op.return_time,
            outcome,
        };
        text.push_str(if i == 0 { "\n  " } else { ",\n  " });
        text.push_str(&serde_json::to_string(&json).expect("plain data serializes"));
    }
    text.push_str("\n]}\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(text: &str) -> String {
        History::from_json(text).unwrap_err().to_string()
    }

    #[test]
    fn a_history_survives_rendering_and_parsing() {
        let history = History::new(vec![
            Operation {
                process: 1,
                key: "a".into(),
                kind: OpKind::Read { value: None },
                call_time: 1,
                return_time: Some(2),
                outcome: Outcome::Ok,
            },
            Operation {
                process: 2,
                key: "a".into(),
                kind: OpKind::Cas {
                    from: None,
                    to: "x \"y\"".into(),
                },
                call_time: 3,
                return_time: None,
                outcome: Outcome::Unknown,
            },
            Operation {
                process: 3,
                key: "b".into(),
                kind: OpKind::Write { value: "1".into() },
                call_time: 3,
                return_time: Some(4),
                outcome: Outcome::Fail,
            },
        ])
        .unwrap();
        assert_eq!(History::from_json(&history.to_json()).unwrap(), history);
        assert_eq!(
            History::from_json(&History::default().to_json()).unwrap(),
            History::default()
        );
    }

    #[test]
    fn unknown_fields_are_refused_at_both_levels() {
        assert!(parse_error(r#"{"operations": [], "extra": 1}"#).contains("extra"));
        let op = r#"{"process": 1, "key": "a", "op": "write", "value": "v", "call": 1,
                     "return": 2, "outcome": "ok", "colour": "red"}"#;
        assert!(parse_error(&format!(r#"{{"operations": [{op}]}}"#)).contains("colour"));
    }

    #[test]
    fn a_successful_read_needs_a_value_but_null_is_one() {
        let read = |value: &str| {
            format!(
                r#"{{"operations": [{{"process": 1, "key": "a", "op": "read", {value}
                   "call": 1, "return": 2, "outcome": "ok"}}]}}"#
            )
        };
        assert!(parse_error(&read("")).contains("operation 0: a successful read needs"));
        let history = History::from_json(&read(r#""value": null,"#)).unwrap();
        assert_eq!(history.operations()[0].kind, OpKind::Read { value: None });
    }

    #[test]
    fn inconsistent_operations_are_refused() {
        let one =
            |fields: &str| format!(r#"{{"operations": [{{"process": 1, "key": "a", {fields}}}]}}"#);
        for (fields, error) in [
            (
                r#""op": "write", "value": null, "call": 1, "return": 2, "outcome": "ok""#,
                "a write needs",
            ),
            (
                r#""op": "cas", "to": "b", "call": 1, "return": 2, "outcome": "ok""#,
                "a cas needs",
            ),
            (
                r#""op": "cas", "from": null, "to": "b", "value": "c", "call": 1, "outcome": "unknown""#,
                "not \"value\"",
            ),
            (
                r#""op": "read", "value": "v", "call": 1, "outcome": "ok""#,
                "needs a return time",
            ),
            (
                r#""op": "read", "value": "v", "call": 3, "return": 2, "outcome": "ok""#,
                "returns before",
            ),
            (
                r#""op": "delete", "call": 1, "outcome": "ok""#,
                "unknown variant",
            ),
        ] {
            let message = parse_error(&one(fields));
            assert!(message.contains(error), "{fields}: {message}");
        }
    }
}
