//! Newtypes for the protocol's numbers, so a term is never mistaken for an
//! index or a node id across a module boundary.

use std::fmt;

macro_rules! protocol_number {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw number.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl From<u64> for $name {
            fn from(value: u64) -> Self {
                Self(value)
            }
        }
    };
}

protocol_number!(
    /// A node's identity: random at first start, never reused.
    NodeId
);
protocol_number!(
    /// The identity of a cluster, chosen when it is bootstrapped.
    ClusterId
);
protocol_number!(
    /// A Raft term (election epoch). Term 0 precedes every election.
    Term
);
protocol_number!(
    /// A position in the replicated log. Index 0 is the empty log's origin.
    LogIndex
);

impl Term {
    /// The term after this one. Terms grow by one per election from 0 and
    /// messages at the largest term are dropped, so overflow is a broken
    /// invariant: it panics, also in release builds, instead of wrapping
    /// to 0.
    pub const fn next(self) -> Self {
        match self.0.checked_add(1) {
            Some(next) => Self(next),
            None => panic!("the Raft term overflowed"),
        }
    }
}

impl LogIndex {
    /// The index after this one (overflow panics, as for [`Term::next`]).
    pub const fn next(self) -> Self {
        match self.0.checked_add(1) {
            Some(next) => Self(next),
            None => panic!("a Raft log index overflowed"),
        }
    }

    /// The index before this one (index 0 stays 0).
    pub const fn prev(self) -> Self {
        Self(self.0.saturating_sub(1))
    }

    /// This index moved forward by `n` positions (overflow panics).
    pub const fn plus(self, n: u64) -> Self {
        match self.0.checked_add(n) {
            Some(moved) => Self(moved),
            None => panic!("a Raft log index overflowed"),
        }
    }
}
