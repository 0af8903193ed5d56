//! The peer port's routes: `POST /raft/v1/stream` (a peer's stream of Raft
//! messages, see `stream`), `POST /raft/v1/propose` (a write forwarded by a
//! follower, answered with a [`ForwardReply`]), `POST /raft/v1/cluster` (a
//! relayed [`ClusterRequest`], answered with a [`ClusterReply`]) and
//! `POST /raft/v1/snapshot` (a streamed snapshot, see `snapshots`). Each
//! body and frame is bounded by what a legitimate one can be under the
//! configured limits ([`PeerLimits`]), and all those being buffered at once
//! by a byte budget, so junk sent to the peer port cannot make the node
//! hold more than that.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{SemaphorePermit, watch};

use axum::Router;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::forward::{ClusterReply, ClusterRequest, ForwardError, ForwardReply};
use super::new_member::{CheckScope, check_new_member};
use super::sender::MAX_BATCH_ENTRY_BYTES;
use super::snapshots::{self, SNAPSHOT_PATH, SnapshotReceiver};
use super::stream::{self, STREAM_PATH};
use super::{CLUSTER_PATH, PROPOSE_PATH};
use crate::auth::{Caller, USER_HEADER};
use crate::codec;
use crate::driver::{DriverError, NodeHandle};
use crate::kv::{Command, Limits, MAX_ADDRESS_FIELD_BYTES};
use raftcfg_raft::MembershipChange;

/// Bytes of message framing allowed on top of the entries a request
/// carries (headers of up to 512 messages and their entries).
const FRAMING_BYTES: usize = 1 << 20;

/// How large each kind of peer request may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerLimits {
    /// A batch of Raft messages.
    pub messages_bytes: usize,
    /// A forwarded write.
    pub propose_bytes: usize,
}

impl PeerLimits {
    /// The limits that fit `limits` (the largest write) and the Raft
    /// core's largest append: a batch holds entries up to the transport's
    /// batch size, or one append of the largest entry, plus framing.
    pub fn for_limits(limits: &Limits, max_append_bytes: u64) -> Self {
        let largest_entry = limits.max_command_bytes();
        let largest_append = (max_append_bytes as usize).max(largest_entry);
        Self {
            messages_bytes: (MAX_BATCH_ENTRY_BYTES as usize).max(largest_append) + FRAMING_BYTES,
            propose_bytes: largest_entry + 1024,
        }
    }
}

/// Bytes of request bodies the peer port buffers at once, at least: room
/// for a batch from each of several peers and a forwarded write or two.
const MIN_BUFFER_BYTES: usize = 64 << 20;
/// Peer streams open at once: one from each other member, with room for
/// reconnections whose old streams have not timed out yet.
const MAX_STREAMS: usize = 64;

/// What the peer routes share.
#[derive(Clone)]
pub struct PeerState {
    /// The driver.
    pub node: NodeHandle,
    /// Body limits.
    pub limits: PeerLimits,
    /// Where received snapshots go.
    pub snapshots: SnapshotReceiver,
    /// KiB of request bodies and stream frames that may be buffered at
    /// once.
    buffers: Arc<tokio::sync::Semaphore>,
    /// Slots for peer streams.
    pub(super) streams: Arc<tokio::sync::Semaphore>,
    /// Turns true (or its sender is dropped) when the node stops; open
    /// streams end then.
    pub(super) stopping: watch::Receiver<bool>,
    /// The client port's TLS files, for asking a new member's client port
    /// who it is.
    pub client_tls: Option<crate::tls::TlsFiles>,
}

impl PeerState {
    /// The state of a peer port with these limits, until `stopping` turns
    /// true or its sender is dropped.
    pub fn new(
        node: NodeHandle,
        limits: PeerLimits,
        snapshots: SnapshotReceiver,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        let budget = MIN_BUFFER_BYTES.max(2 * limits.messages_bytes);
        Self {
            node,
            limits,
            snapshots,
            buffers: Arc::new(tokio::sync::Semaphore::new(kib(budget))),
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
            stopping,
            client_tls: None,
        }
    }

    /// Waits until the buffer budget has room for `bytes` more, and holds
    /// that room until the permit is dropped.
    pub(super) async fn reserve_buffer(&self, bytes: usize) -> SemaphorePermit<'_> {
        let reserve = u32::try_from(kib(bytes)).unwrap_or(u32::MAX);
        self.buffers
            .acquire_many(reserve)
            .await
            .expect("the buffer budget is never closed")
    }

    /// Reads a whole body of at most `limit` bytes, waiting first until the
    /// buffer budget has room for it (its declared length, or `limit`).
    async fn read_body(
        &self,
        headers: &HeaderMap,
        body: Body,
        limit: usize,
    ) -> Result<Bytes, Response> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
        if let Some(declared) = declared
            && declared > limit
        {
            return Err(too_large(declared, limit));
        }
        let _permit = self.reserve_buffer(declared.unwrap_or(limit)).await;
        axum::body::to_bytes(body, limit).await.map_err(|e| {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body could not be read within {limit} bytes: {e}"),
            )
                .into_response()
        })
    }
}

/// Whole KiB needed for `bytes`.
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024).max(1)
}

fn too_large(declared: usize, limit: usize) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is {declared} bytes, more than the {limit} a peer request may be"),
    )
        .into_response()
}

/// How long a forwarded write or cluster operation may wait for its entry
/// to be applied (or leadership to move).
const FORWARDED_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest cluster request: a tag, an id and a member address.
const CLUSTER_REQUEST_BYTES: usize = 64 + 3 * (4 + MAX_ADDRESS_FIELD_BYTES);

/// The peer port's router. The server wraps it in
/// [`crate::http_metrics::tracked`], which counts its requests and makes
/// its error answers JSON envelopes.
pub fn peer_router(state: PeerState) -> Router {
    Router::new()
        .route(STREAM_PATH, post(open_stream))
        .route(PROPOSE_PATH, post(propose))
        .route(CLUSTER_PATH, post(cluster))
        // Streamed to disk and bounded by --max-snapshot-bytes there.
        .route(SNAPSHOT_PATH, post(snapshot))
        .fallback(not_a_client_port)
        .with_state(state)
}

/// Any other path: most likely a client sent to the peer port by mistake.
async fn not_a_client_port(uri: axum::http::Uri) -> Response {
    crate::http_errors::error_response(
        StatusCode::NOT_FOUND,
        "peer_port",
        format!(
            "{} is not served here: this is a raftcfg peer port, for members only; \
             clients use the client port (7379 unless --listen-client says otherwise)",
            uri.path()
        ),
    )
}

async fn snapshot(
    State(state): State<PeerState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    snapshots::receive(state.snapshots, headers, body).await
}

async fn open_stream(State(state): State<PeerState>, request: Request) -> Response {
    stream::accept(&state, request)
}

async fn propose(State(state): State<PeerState>, headers: HeaderMap, body: Body) -> Response {
    if let Some(gone) = super::removed_sender(&state.node, &headers) {
        return gone;
    }
    let body = match state
        .read_body(&headers, body, state.limits.propose_bytes)
        .await
    {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let node = state.node;
    let command = match codec::decode::<Command>(body.clone()) {
        Ok(command @ (Command::Put { .. } | Command::Delete { .. } | Command::Auth(_))) => command,
        Ok(Command::SetMember { .. }) => {
            return (
                StatusCode::BAD_REQUEST,
                "member records are not forwarded writes",
            )
                .into_response();
        }
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("undecodable command: {e}")).into_response();
        }
    };
    // The leader's own auth state decides, for the user the follower
    // signed in.
    let caller = Caller::forwarded(node.auth(), forwarded_user(&headers));
    let answer = match caller.check_command(&command) {
        Err(denied) => Err(DriverError::Forbidden(format!("on the leader: {denied}"))),
        Ok(()) => {
            match tokio::time::timeout(FORWARDED_REQUEST_TIMEOUT, node.propose(command)).await {
                Ok(answer) => answer,
                Err(_) => Err(DriverError::Unknown),
            }
        }
    };
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        codec::encode(&ForwardReply(answer.map_err(ForwardError::from))),
    )
        .into_response()
}

/// A cluster operation relayed by a follower: done here as if asked of this
/// node's API, and answered with a [`ClusterReply`].
async fn cluster(State(state): State<PeerState>, headers: HeaderMap, body: Body) -> Response {
    if let Some(gone) = super::removed_sender(&state.node, &headers) {
        return gone;
    }
    let body = match state.read_body(&headers, body, CLUSTER_REQUEST_BYTES).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let request = match codec::decode::<ClusterRequest>(body) {
        Ok(request) => request,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("undecodable request: {e}")).into_response();
        }
    };
    // The follower's API checked the request; a peer is checked again.
    if let Err(reason) = request.check() {
        return (
            StatusCode::BAD_REQUEST,
            format!("invalid request: {reason}"),
        )
            .into_response();
    }
    let node = state.node;
    let tls = state.client_tls;
    let caller = Caller::forwarded(node.auth(), forwarded_user(&headers));
    let done = async {
        if let Err(denied) = caller.check_root() {
            return Err(DriverError::Forbidden(format!("on the leader: {denied}")));
        }
        match request {
            ClusterRequest::AddLearner { id, address } => {
                let view = node.view();
                check_new_member(
                    &view,
                    id,
                    &address.client_url,
                    CheckScope::Full,
                    tls.as_ref(),
                )
                .await?;
                node.change_membership(MembershipChange::AddLearner(id), Some(address))
                    .await
                    .map(|index| index.get())
            }
            ClusterRequest::Promote(id) => node
                .change_membership(MembershipChange::PromoteLearner(id), None)
                .await
                .map(|index| index.get()),
            ClusterRequest::Remove(id) => node
                .change_membership(MembershipChange::Remove(id), None)
                .await
                .map(|index| index.get()),
            ClusterRequest::TransferLeader { to } => {
                node.transfer_leader(to).await.map(|leader| leader.get())
            }
            ClusterRequest::UpdateMember {
                id,
                peer_url,
                client_url,
            } => node
                .update_member(id, peer_url, client_url)
                .await
                .map(|index| index.get()),
        }
    };
    let answer = match tokio::time::timeout(FORWARDED_REQUEST_TIMEOUT, done).await {
        Ok(answer) => answer,
        Err(_) => Err(DriverError::Unknown),
    };
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        codec::encode(&ClusterReply(answer.map_err(ForwardError::from))),
    )
        .into_response()
}

/// The user a follower forwarded a request for, if it named one.
fn forwarded_user(headers: &HeaderMap) -> Option<String> {
    headers
        .get(USER_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}
