//! Peer transport: Raft messages, and writes and cluster operations a
//! follower forwards to the leader, between members over HTTP on the peer
//! port, in the binary codec (never JSON).
//!
//! - `sender`: the [`Transport`] the driver ships its outbox through — one
//!   queue and one task per peer, writing whatever queued up as one frame
//!   of the peer's stream, reconnecting with exponential backoff — and the
//!   client side of forwarding.
//! - `link`: what the driver's rounds and a peer's task share, so that a
//!   round writes a frame itself when nothing is queued before it.
//! - `stream`: the long-lived, one-way streams of Raft messages between
//!   members (an HTTP/1.1 upgrade on the peer port, then length-prefixed
//!   frames), both ends.
//! - `server`: the peer port's routes, which accept streams, propose
//!   forwarded writes and carry out relayed cluster operations.
//! - `forward`: what forwarding sends and answers, with its wire-only
//!   error type.
//! - `new_member`: asking a node about to be added who it is.
//! - `snapshots`: snapshots streamed from file to file, on a connection of
//!   their own.
//!
//! Every request and stream names its sender's peer URL in
//! [`SENDER_URL_HEADER`], so a new member can answer a leader it has no
//! directory entry for yet, and its node id in [`SENDER_ID_HEADER`], so a
//! member that was removed is told so (`410 Gone`) and stops.
//! Fencing by cluster and node id is the core's: it drops messages of
//! another cluster or for another node.

mod forward;
mod link;
mod new_member;
mod sender;
mod server;
mod snapshots;
mod stream;

pub use forward::{ClusterReply, ClusterRequest, ForwardError, ForwardReply};
pub use new_member::{CheckScope, check_new_member};
pub use sender::Transport;
pub use server::{PeerLimits, PeerState, peer_router};
pub use snapshots::{SNAPSHOT_PATH, SnapshotReceiver};
pub use stream::{STREAM_PATH, STREAM_PROTOCOL};

/// The header carrying the sending member's peer URL.
pub const SENDER_URL_HEADER: &str = "x-raftcfg-sender-url";
/// The header carrying the sending member's node id, so that a member that
/// was removed is answered `410 Gone` (see [`removed_sender`]).
pub const SENDER_ID_HEADER: &str = "x-raftcfg-sender-id";

/// The answer to a peer request from a member this node saw removed, if
/// the request names one in [`SENDER_ID_HEADER`].
pub(crate) fn removed_sender(
    node: &crate::driver::NodeHandle,
    headers: &axum::http::HeaderMap,
) -> Option<axum::response::Response> {
    use axum::response::IntoResponse;
    let id = headers
        .get(SENDER_ID_HEADER)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()?;
    let id = raftcfg_raft::NodeId(id);
    node.saw_removed(id).then(|| {
        (
            axum::http::StatusCode::GONE,
            format!("node {id} was removed from this cluster"),
        )
            .into_response()
    })
}

/// Path of the write-forwarding endpoint on the peer port.
pub const PROPOSE_PATH: &str = "/raft/v1/propose";

/// Path of the endpoint for cluster operations relayed by a follower.
pub const CLUSTER_PATH: &str = "/raft/v1/cluster";
