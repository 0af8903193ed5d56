//! The register model: what one key's operations do to its value, and which
//! of them a value allows. Values are small numbers ([`Value`]) that the
//! checker assigns to the strings of one key's history, so a model state is
//! one `u32`.

use super::{OpKind, Operation, Outcome};

/// A register value: [`ABSENT`] or a number standing for one string.
pub(crate) type Value = u32;

/// The value of a key that does not exist, which every register starts with.
pub(crate) const ABSENT: Value = 0;

/// An operation as the model sees it, with its values numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RegisterOp {
    /// A read that returned `saw`: allowed only when the register holds it.
    Read { saw: Value },
    /// A write (that happened, or may have happened).
    Write { value: Value },
    /// A compare-and-swap that succeeded, or whose outcome is unknown: allowed
    /// only when the register holds `from` (an unknown cas that finds
    /// another value changes nothing, which is the same as never happening).
    Cas { from: Value, to: Value },
    /// A compare-and-swap that failed: allowed only when the register holds
    /// something other than `from`; changes nothing.
    FailedCas { from: Value },
}

impl RegisterOp {
    /// The model's view of `op`, numbering values with `number`; `None` if
    /// the operation constrains nothing and is left out (a failed or
    /// unknown read, a failed write).
    pub(crate) fn of<'a>(
        op: &'a Operation,
        mut number: impl FnMut(Option<&'a str>) -> Value,
    ) -> Option<Self> {
        match (&op.kind, op.outcome) {
            (OpKind::Read { value }, Outcome::Ok) => Some(Self::Read {
                saw: number(value.as_deref()),
            }),
            (OpKind::Read { .. }, Outcome::Fail | Outcome::Unknown) => None,
            (OpKind::Write { value }, Outcome::Ok | Outcome::Unknown) => Some(Self::Write {
                value: number(Some(value)),
            }),
            (OpKind::Write { .. }, Outcome::Fail) => None,
            (OpKind::Cas { from, to }, Outcome::Ok | Outcome::Unknown) => Some(Self::Cas {
                from: number(from.as_deref()),
                to: number(Some(to)),
            }),
            (OpKind::Cas { from, .. }, Outcome::Fail) => Some(Self::FailedCas {
                from: number(from.as_deref()),
            }),
        }
    }

    /// The register's value after this operation takes effect on `state`, or
    /// `None` if it cannot take effect there.
    pub(crate) fn apply(self, state: Value) -> Option<Value> {
        match self {
            Self::Read { saw } => (state == saw).then_some(state),
            Self::Write { value } => Some(value),
            Self::Cas { from, to } => (state == from).then_some(to),
            Self::FailedCas { from } => (state != from).then_some(state),
        }
    }
}

/// The register's value after `op` took effect on one holding `state`,
/// assuming it was allowed to: the strings themselves, for explanations.
pub(crate) fn value_after<'a>(op: &'a Operation, state: Option<&'a str>) -> Option<&'a str> {
    match (&op.kind, op.outcome) {
        (OpKind::Write { value }, _) => Some(value),
        (OpKind::Cas { to, .. }, Outcome::Ok | Outcome::Unknown) => Some(to),
        (OpKind::Read { .. } | OpKind::Cas { .. }, _) => state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_needs_the_value_it_saw() {
        assert_eq!(RegisterOp::Read { saw: 1 }.apply(1), Some(1));
        assert_eq!(RegisterOp::Read { saw: 1 }.apply(ABSENT), None);
    }

    #[test]
    fn a_write_is_always_allowed() {
        assert_eq!(RegisterOp::Write { value: 2 }.apply(ABSENT), Some(2));
    }

    #[test]
    fn a_cas_needs_its_from_value_and_a_failed_cas_any_other() {
        assert_eq!(RegisterOp::Cas { from: 1, to: 2 }.apply(1), Some(2));
        assert_eq!(RegisterOp::Cas { from: 1, to: 2 }.apply(3), None);
        assert_eq!(RegisterOp::FailedCas { from: 1 }.apply(3), Some(3));
        assert_eq!(RegisterOp::FailedCas { from: 1 }.apply(1), None);
    }
}
