//! Snapshots: the application's state at a log index, opaque to the core.

use bytes::Bytes;

use crate::ids::{LogIndex, Term};
use crate::membership::Membership;

/// Where a snapshot sits in the log and the configuration in force there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMetadata {
    /// The last log index the snapshot covers.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
    /// The configuration in force at `index`.
    pub membership: Membership,
}

/// A snapshot: metadata plus the application's serialized state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Where the snapshot sits in the log.
    pub metadata: SnapshotMetadata,
    /// The application state, opaque to the core.
    pub data: Bytes,
}
