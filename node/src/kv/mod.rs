//! The key-value state machine: what the cluster replicates, applied to
//! RocksDB.
//!
//! It owns the key-value column families of the node's database (`kv`,
//! `kv_meta`, `kv_changes`) and the formats written there, the replicated
//! [`Command`] encoding, the replicated users and roles ([`AuthState`]), key validation, and snapshots of the state. It must
//! not do Raft, networking or HTTP: the driver hands it committed entries in
//! log order and it hands back one [`Outcome`] per command; the API asks it
//! for reads. It never reads a clock or a per-node setting while applying, so
//! every member that applies the same entries reaches the same state (and the
//! same [`Digest`]).
//!
//! ```text
//!  API: Key::parse / KeyPrefix::parse / Limits::check_value   (admission)
//!        │  codec::encode(Command) ──► Raft log ──► committed entries
//!        ▼                                       │
//!  KvStore::apply(&[Entry]) ─ one WriteBatch per call (unsynced: the log is durable):
//!        │                     kv rows + change log + revision + applied index
//!        ├─► Vec<Applied { index, outcome }>     (driver answers proposals)
//!  reads: get, list (pages in key order), changes_since (watch; Compacted = 410)
//!  Raft:  write_snapshot_file (any thread, a RocksDB snapshot) / restore_file(path, index)
//!  status: digest()
//! ```
//!
//! Revisions follow etcd: one cluster-wide counter that each successful put
//! or delete advances by one; each key keeps the revision that created it, the
//! revision that last changed it and its version (modifications since
//! creation, restarting at 1 after a delete and re-create). A failed
//! precondition or a delete of an absent key consumes no revision.

mod apply;
mod auth;
mod command;
mod key;
mod limits;
mod member;
mod prefix;
mod record;
mod removed;
mod revision;
mod snapshot;
mod snapshot_files;
mod store;

pub use apply::{Applied, Outcome};
pub use auth::{
    Access, AuthChange, AuthState, MAX_NAME_BYTES, ROOT_ROLE, ROOT_USER, Role, User, check_name,
};
pub use command::{Command, Precondition};
pub use key::{Key, KeyError};
pub use limits::{Limits, ValueTooLarge};
pub use member::{
    MAX_FIELD_BYTES as MAX_ADDRESS_FIELD_BYTES, MemberAddress, check_member_name, check_member_url,
};
pub use prefix::KeyPrefix;
pub use record::{Change, ChangeKind, KeyRecord};
pub use revision::Revision;
pub use snapshot::{
    Digest, RestoreError, SNAPSHOT_VERSION, SnapshotError, StateSummary, verify_state,
    verify_state_file, write_snapshot_file, write_state, write_state_with,
};
pub use snapshot_files::{
    PacedWriter, PartialFile, SNAPSHOT_FOLDER, SYNC_EVERY_BYTES, SnapshotDir, SnapshotRef,
};
pub use store::{ChangePage, ChangesError, KvStore, Page};
