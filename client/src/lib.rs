//! The client side of the raftcfg HTTP API (docs/design.md §3).
//!
//! [`wire`] holds the JSON bodies the node sends and accepts, shared by the
//! server in `raftcfg-node` and by clients (the CLI, the operator), and the
//! newtypes of the ids and indexes in them ([`wire::NodeId`],
//! [`wire::ClusterId`], [`wire::Term`], [`wire::LogIndex`],
//! [`wire::EntryCount`]). [`Client`] is a typed async client of that API
//! with endpoint failover that never repeats a write whose outcome is
//! unknown. This crate does not link the Raft core or RocksDB.
//!
//! The client is split by job:
//!
//! | module | owns |
//! |---|---|
//! | `client` | [`Client`] and its one method per API operation |
//! | `auth` | [`Credentials`], signing in, and the user and role operations |
//! | `options` | [`ClientOptions`], the timeouts and their defaults |
//! | `request` | one request described apart from its endpoint; [`Precondition`], [`Consistency`] |
//! | `endpoint` | parsing, checking and showing endpoint URLs |
//! | `failover` | sending a request to the endpoints, and when to move on |
//! | `error` | [`ClientError`] and how failures are told |
//! | `watch` | the watch stream's reconnecting state machine |
//! | `sse` | the Server-Sent Events parser |
//!
//! Everything public is re-exported here and, for existing users, under
//! [`http`].

mod auth;
mod client;
mod endpoint;
mod error;
mod failover;
mod options;
mod request;
mod sse;
mod watch;
pub mod wire;

pub use auth::Credentials;
pub use client::{Client, Value};
pub use endpoint::{parse_endpoint, show as show_endpoint};
pub use error::ClientError;
pub use options::{
    ClientOptions, ClientTls, DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_FAILOVER_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_STREAM_IDLE_TIMEOUT, DEFAULT_WATCH_RECONNECT_TIMEOUT,
};
pub use request::{Consistency, Precondition};
pub use reqwest::StatusCode;

/// The client's public items under their original path,
/// `raftcfg_client::http::...`, kept so that users of the crate compile
/// unchanged.
pub mod http {
    pub use crate::{
        Client, ClientError, ClientOptions, ClientTls, Consistency, Credentials,
        DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_FAILOVER_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
        DEFAULT_STREAM_IDLE_TIMEOUT, DEFAULT_WATCH_RECONNECT_TIMEOUT, Precondition, StatusCode,
        Value,
    };
}
