//! The log storage contract: what the core reads ([`LogStorage`]) and what the
//! application writes when it carries out a `Ready` ([`LogStore`]).

use crate::entry::Entry;
use crate::ids::{ClusterId, LogIndex, NodeId, Term};
use crate::membership::Membership;
use crate::snapshot::{Snapshot, SnapshotMetadata};

/// The state that must be durable before messages that depend on it are sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// Whom this node voted for in `term`.
    pub vote: Option<NodeId>,
    /// The highest index known to be committed.
    pub commit: LogIndex,
    /// The cluster this node belongs to, once it knows.
    pub cluster_id: Option<ClusterId>,
}

/// Why storage could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The requested index is at or before the snapshot point.
    #[error("log index {0} has been compacted")]
    Compacted(LogIndex),
    /// The requested index is past the end of the log.
    #[error("log index {0} is not in the log")]
    Unavailable(LogIndex),
    /// The storage itself failed (I/O, corruption). The core treats this as fatal.
    #[error("storage failed: {0}")]
    Failed(String),
}

/// Read access to the durable log. The core never writes through this trait.
///
/// The log holds entries `first_index()..=last_index()`; the entry just
/// before `first_index()` is described by the snapshot's metadata.
pub trait LogStorage {
    /// The durable hard state.
    fn hard_state(&self) -> Result<HardState, StorageError>;
    /// The latest snapshot (the empty snapshot at index 0 if none).
    fn snapshot(&self) -> Result<Snapshot, StorageError>;
    /// The latest snapshot's metadata, without its data.
    fn snapshot_metadata(&self) -> Result<SnapshotMetadata, StorageError>;
    /// The first index still in the log.
    fn first_index(&self) -> Result<LogIndex, StorageError>;
    /// The last index in the log (the snapshot index if the log is empty).
    fn last_index(&self) -> Result<LogIndex, StorageError>;
    /// The term of the entry at `index` (also answers for the snapshot index).
    fn term(&self, index: LogIndex) -> Result<Term, StorageError>;
    /// Entries in `low..high`, stopping early once `max_bytes` is exceeded
    /// (at least one entry is returned when any exists).
    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError>;
}

/// One durable write: everything a `Ready` asks to persist, applied in the
/// order of the fields (received snapshot, entries, hard state, compaction).
#[derive(Clone, Copy, Debug)]
pub struct LogWrite<'a> {
    /// A snapshot received from the leader: the log is replaced by it.
    pub snapshot: Option<&'a Snapshot>,
    /// Entries to append; an entry overwrites any entry at its index and
    /// everything after it.
    pub entries: &'a [Entry],
    /// The new hard state, if it changed.
    pub hard_state: Option<&'a HardState>,
    /// The application's own snapshot: store it and discard entries up to its index.
    pub compaction: Option<&'a Snapshot>,
}

impl LogWrite<'_> {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.entries.is_empty()
            && self.hard_state.is_none()
            && self.compaction.is_none()
    }
}

/// Durable log storage: `persist` must make the whole write durable (one
/// synced batch) before it returns — with one allowance: a write that only
/// raises the commit index (no entries, snapshot or compaction, same term
/// and vote) may skip the sync, or be kept in memory and written with the
/// next write, as long as [`LogStorage::hard_state`] returns it at once. A
/// commit index lost in a crash is learnt again from the leader; nothing
/// the node promised depends on it. An application that applied entries
/// past the stored commit index must start the node with the commit index
/// raised to its applied index (a [`Config::applied`] past it is refused).
///
/// [`Config::applied`]: crate::Config::applied
pub trait LogStore: LogStorage {
    /// Make `write` durable, atomically.
    fn persist(&mut self, write: LogWrite<'_>) -> Result<(), StorageError>;

    /// Write `write` atomically without waiting for the disk: what it holds
    /// is read back at once, and made durable by the next [`LogStore::sync`]
    /// or `persist`, or by a sync the application runs elsewhere (see
    /// [`crate::LeaderSync::Deferred`]). A crash may lose it and every later
    /// unsynced write, never part of one. A store that cannot defer syncs
    /// persists instead.
    fn store(&mut self, write: LogWrite<'_>) -> Result<(), StorageError> {
        self.persist(write)
    }

    /// Make every earlier write durable.
    fn sync(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// Makes an empty store a founding member of a new cluster: the founding
/// voters as the configuration at index 0, and the cluster id. Every founder
/// is bootstrapped with the same voters (usually just one, which then adds
/// the others). Refuses a store that already holds state.
pub fn bootstrap<S: LogStore>(
    store: &mut S,
    voters: impl IntoIterator<Item = NodeId>,
    cluster_id: ClusterId,
) -> Result<(), BootstrapError> {
    let hard_state = store.hard_state()?;
    if hard_state != HardState::default()
        || store.last_index()? != LogIndex(0)
        || store.snapshot_metadata()? != SnapshotMetadata::default()
    {
        return Err(BootstrapError::AlreadyInitialized);
    }
    let snapshot = Snapshot {
        metadata: SnapshotMetadata {
            index: LogIndex(0),
            term: Term(0),
            membership: Membership::with_voters(voters),
        },
        data: bytes::Bytes::new(),
    };
    let hard_state = HardState {
        cluster_id: Some(cluster_id),
        ..HardState::default()
    };
    store.persist(LogWrite {
        snapshot: Some(&snapshot),
        entries: &[],
        hard_state: Some(&hard_state),
        compaction: None,
    })?;
    Ok(())
}

/// Why a store could not be bootstrapped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    /// The store already holds Raft state: it is (or was) a cluster member.
    #[error("the store already holds Raft state; a member is never bootstrapped again")]
    AlreadyInitialized,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}
