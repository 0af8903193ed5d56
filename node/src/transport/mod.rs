//! Peer transport: Raft messages, and writes and cluster operations a
//! follower forwards to the leader, between members over HTTP on the peer
//! port, in the binary codec (never JSON).
//!
//! - `sender`: the [`Transport`] the driver ships its outbox through — one
//!   queue and one task per peer, writing whatever queued up as one frame
//!   of the peer's stream, reconnecting with exponential backoff — and the
//!   client side of forwarding.
//! - `link`: what the driver thread and a peer's task share, so that the
//!   driver writes a frame itself when nothing is queued before it.
//! - `stream`: the long-lived, one-way streams of Raft messages between
//!   members (an HTTP/1.1 upgrade on the peer port, then length-prefixed
//!   frames), both ends.
//! - `server`: the peer port's routes, which accept streams, propose
//!   forwarded writes and carry out relayed cluster operations.
//! - `forward`: what forwarding sends and answers, with its wire-only
//!   error type.
//! - `snapshots`: snapshots streamed from file to file, on a connection of
//!   their own.
//!
//! Every request and stream names its sender's peer URL in [`SENDER_URL_HEADER`], so a
//! new member can answer a leader it has no directory entry for yet.
//! Fencing by cluster and node id is the core's: it drops messages of
//! another cluster or for another node.

mod forward;
mod link;
mod sender;
mod server;
mod snapshots;
mod stream;

pub use forward::{ClusterReply, ClusterRequest, ForwardError, ForwardReply};
pub use sender::Transport;
pub use server::{PeerLimits, PeerState, peer_router};
pub use snapshots::{SNAPSHOT_PATH, SnapshotReceiver};
pub use stream::{STREAM_PATH, STREAM_PROTOCOL};

/// The header carrying the sending member's peer URL.
pub const SENDER_URL_HEADER: &str = "x-raftcfg-sender-url";

/// Path of the write-forwarding endpoint on the peer port.
pub const PROPOSE_PATH: &str = "/raft/v1/propose";

/// Path of the endpoint for cluster operations relayed by a follower.
pub const CLUSTER_PATH: &str = "/raft/v1/cluster";
