//! Log entries: what the leader replicates and the application applies.

use bytes::Bytes;

use crate::ids::{LogIndex, Term};
use crate::membership::ConfigChange;

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: LogIndex,
    /// What the entry carries.
    pub payload: EntryPayload,
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryPayload {
    /// The empty entry every new leader appends, so that it can commit
    /// entries of earlier terms (Raft §5.4.2).
    Noop,
    /// An application command, opaque to the core.
    Command(Bytes),
    /// A membership change; it takes effect on a node when appended.
    Config(ConfigChange),
}

impl Entry {
    /// Approximate size in bytes, used for batching and flow control.
    pub fn size_bytes(&self) -> u64 {
        const HEADER: u64 = 24;
        let body = match &self.payload {
            EntryPayload::Noop => 0,
            EntryPayload::Command(data) => data.len(),
            EntryPayload::Config(change) => 32 + change.context.len(),
        };
        HEADER + body as u64
    }

    /// Whether the entry changes membership.
    pub fn is_config(&self) -> bool {
        matches!(self.payload, EntryPayload::Config(_))
    }
}
