//! The client side of the raftcfg HTTP API (DESIGN.md §3).
//!
//! `wire` holds the JSON bodies the node sends and accepts, shared by the
//! server in `raftcfg-node` and by clients (the CLI, the operator). A typed
//! async client is added with the node's API (issue 3). This crate does not
//! link the Raft core or RocksDB.

pub mod wire;
