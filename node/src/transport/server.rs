//! The peer port's routes: `POST /raft/v1/messages` (a [`MessageBatch`]
//! for the driver) and `POST /raft/v1/propose` (a write forwarded by a
//! follower, answered with a [`ForwardReply`]).

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{MESSAGES_PATH, PROPOSE_PATH, SENDER_URL_HEADER};
use crate::codec::{self, ForwardReply, MessageBatch};
use crate::driver::{DriverError, NodeHandle};
use crate::kv::Command;

/// The largest peer request accepted (a batch of appends or a snapshot
/// chunk plus framing).
const MAX_PEER_BODY_BYTES: usize = 64 * 1024 * 1024;

/// How long a forwarded write may wait for its entry to be applied.
const FORWARDED_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The peer port's router.
pub fn peer_router(node: NodeHandle) -> Router {
    Router::new()
        .route(MESSAGES_PATH, post(messages))
        .route(PROPOSE_PATH, post(propose))
        .layer(DefaultBodyLimit::max(MAX_PEER_BODY_BYTES))
        .with_state(node)
}

async fn messages(State(node): State<NodeHandle>, headers: HeaderMap, body: Bytes) -> Response {
    let batch = match codec::decode::<MessageBatch>(body) {
        Ok(batch) => batch,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("undecodable messages: {e}"),
            )
                .into_response();
        }
    };
    let sender_url = headers
        .get(SENDER_URL_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|url| url.starts_with("http://") || url.starts_with("https://"))
        .map(str::to_owned);
    match node.step(batch.0, sender_url) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

async fn propose(State(node): State<NodeHandle>, body: Bytes) -> Response {
    let command = match Command::decode(&body) {
        Ok(command @ (Command::Put { .. } | Command::Delete { .. })) => command,
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
    let answer = match tokio::time::timeout(FORWARDED_WRITE_TIMEOUT, node.propose(command)).await {
        Ok(answer) => answer,
        Err(_) => Err(DriverError::Unknown),
    };
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        codec::encode(&ForwardReply(answer)),
    )
        .into_response()
}
