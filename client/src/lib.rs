//! The client side of the raftcfg HTTP API (docs/design.md §3).
//!
//! `wire` holds the JSON bodies the node sends and accepts, shared by the
//! server in `raftcfg-node` and by clients (the CLI, the operator). `http`
//! is a typed async client of that API ([`http::Client`]) with endpoint
//! failover that never repeats a write whose outcome is unknown. This crate
//! does not link the Raft core or RocksDB.

pub mod http;
pub mod wire;
