//! The raftcfg node: the server that runs one member of a cluster.
//!
//! This crate will own RocksDB storage for the Raft log and the key-value
//! state, the key-value state machine with revisions and watches, the tokio
//! driver that feeds the Raft core from `raftcfg-raft` and carries out its
//! `Ready` batches, the peer transport, and the HTTP API whose wire types live
//! in `raftcfg-client`. The `raftcfg` binary is a thin wrapper around it.
