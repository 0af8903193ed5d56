//! The raftcfg node: the server that runs one member of a cluster.
//!
//! `storage` keeps the Raft log and Raft metadata in one RocksDB database
//! (`codec` is their binary encoding); `kv` is the key-value state machine
//! kept in the same database; `replica` joins them to the Raft core and
//! carries out its `Ready` batches synchronously. Still to come (issue 3):
//! the tokio driver around a replica, the peer transport and the HTTP API. The `raftcfg` binary is a thin wrapper around
//! this library.

pub mod codec;
pub mod kv;
pub mod replica;
pub mod storage;
