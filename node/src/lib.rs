//! The raftcfg node: the server that runs one member of a cluster.
//!
//! ```text
//!  clients ──HTTP──► api ──────────┐            peers ──HTTP──► transport (server)
//!                                  ▼                                  │
//!                     driver (one thread) ◄───────────────────────────┘
//!                        │ owns replica = Raft core + storage + kv
//!                        └─► outbox ──► transport (per-peer queues) ──► peers
//! ```
//!
//! `storage` keeps the Raft log and Raft metadata in one RocksDB database
//! (`codec` is their binary encoding, and the peer wire format); `kv` is the
//! key-value state machine kept in the same database; `replica` joins them
//! to the Raft core; `driver` runs a replica on its own thread; `transport`
//! carries peer messages and forwarded writes; `api` is the client HTTP
//! API; `metrics` counts; `ids` draws new node and cluster ids; `server` starts all of it; `faults` are what the
//! fault-injection tests plant (test builds only); `cli` is the `raftcfg`
//! command, a thin wrapper around this library. The linearizability checker
//! and the load generator are in the `raftcfg-tools` crate (`tools/`).

pub mod api;
pub mod auth;
pub mod cli;
pub mod codec;
pub mod driver;
pub mod faults;
pub mod fd_budget;
pub mod fuzz;
pub mod http_errors;
pub mod http_metrics;
pub mod http_serve;
pub mod ids;
pub mod kv;
pub mod metrics;
pub mod replica;
pub mod repoll;
pub mod server;
pub mod storage;
pub mod tls;
pub mod transport;
