//! The client side of the raftcfg HTTP API.
//!
//! This crate will own the wire types of the node's HTTP API (requests,
//! responses and errors, shared with the server in `raftcfg-node`) and a typed
//! async client for it. It does not link the Raft core or RocksDB.
