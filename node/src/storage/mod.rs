//! Durable storage of one node: one RocksDB database holding the Raft log,
//! the Raft metadata (hard state, snapshot, identity) and the key-value
//! state with its metadata, each in its own column family.
//!
//! `db` opens the database; `log_store` implements the Raft core's
//! `LogStore` on it; `identity` is who the data directory belongs to;
//! `checksum` seals every Raft record with a CRC32. This module knows
//! nothing of HTTP or of the protocol's rules: it stores what it is given,
//! durably, and refuses to start on data that is corrupt or belongs to
//! another node or cluster.
//!
//! Start-up, as `serve` does it:
//!
//! ```no_run
//! # use raftcfg_node::storage::{Db, ExpectedIdentity, RocksLogStore};
//! # use raftcfg_raft::{Config, NodeId, RawNode};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let db = Db::open("data/n1".as_ref())?;
//! let fresh_id = NodeId(0x5eed); // drawn at random by the caller
//! let store = RocksLogStore::open(db.clone(), &ExpectedIdentity::new("n1", fresh_id))?;
//! let identity = store.identity(); // the stored id on every later start
//! let node = RawNode::new(Config::new(identity.node_id), store)?;
//! # Ok(()) }
//! ```

pub mod checksum;
pub mod db;
pub mod identity;
pub mod log_store;
pub mod terms;

pub use db::{Db, DbOptions, MemoryBudget, StorageError};
pub use identity::{ExpectedIdentity, Identity};
pub use log_store::RocksLogStore;

/// Creates the data directory `path` (and missing parents) open to this
/// user only (mode 0700): it holds every value, secrets included.
pub fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// The permission bits of `path` if users other than its owner may enter
/// or read it.
pub fn open_to_others(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}
