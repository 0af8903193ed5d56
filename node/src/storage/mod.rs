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

pub use db::{Db, MemoryBudget, StorageError};
pub use identity::{ExpectedIdentity, Identity};
pub use log_store::RocksLogStore;
