//! This node: `/v1/node` (status and state digest), `/v1/snapshot` (a
//! consistent backup), `/healthz`, `/readyz`, `/metrics`, and the JSON 404
//! for unknown paths.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use raftcfg_client::wire::NodeStatus;
use raftcfg_raft::{ClusterId, NodeId, Role};

use super::ApiState;
use super::error::ApiError;
use super::params::Params;

/// `GET /v1/node`.
pub async fn status(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Json<NodeStatus>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let (applied, digest) = state.node.digest().await?;
    let view = state.node.view();
    let status = &view.status;
    Ok(Json(NodeStatus {
        node_id: view.identity.node_id.get(),
        cluster_id: status.cluster_id.map(ClusterId::get),
        name: view.identity.name.clone(),
        role: role_name(status.role).to_owned(),
        term: status.term.get(),
        commit: status.commit.get(),
        // The digest's index, so the two always belong together.
        applied: applied.get(),
        last_index: status.last_index.get(),
        snapshot_index: status.snapshot_index.get(),
        leader_id: status.leader_id.map(NodeId::get),
        state_digest: digest.to_string(),
    }))
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre_candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// `GET /v1/snapshot`: the whole state as of one applied index.
pub async fn snapshot(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let backup = state.node.backup().await?;
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        ),
        (
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"raftcfg.snapshot\""),
        ),
        (
            header::HeaderName::from_static("x-raftcfg-applied-index"),
            HeaderValue::from(backup.applied.get()),
        ),
        (
            header::HeaderName::from_static("x-raftcfg-revision"),
            HeaderValue::from(backup.revision.get()),
        ),
    ];
    Ok((headers, backup.data).into_response())
}

/// `GET /healthz`: the process serves and its driver runs.
pub async fn healthz(State(state): State<ApiState>) -> Result<&'static str, ApiError> {
    match state.node.view().stopped {
        None => Ok("ok\n"),
        Some(reason) => Err(ApiError::unavailable(
            "stopped",
            format!("the node stopped: {reason}"),
        )),
    }
}

/// `GET /readyz`: a member that knows its leader and has applied what it
/// knows to be committed.
pub async fn readyz(State(state): State<ApiState>) -> Result<&'static str, ApiError> {
    let view = state.node.view();
    let status = &view.status;
    let reason = if let Some(reason) = &view.stopped {
        format!("the node stopped: {reason}")
    } else if !view.initialized() {
        "not part of a cluster yet".to_owned()
    } else if !status.membership.contains(view.identity.node_id) {
        "not a member of the cluster".to_owned()
    } else if status.leader_id.is_none() {
        "no known leader".to_owned()
    } else if status.applied < status.commit {
        format!(
            "catching up: applied {} of {} committed entries",
            status.applied, status.commit
        )
    } else {
        return Ok("ready\n");
    };
    Err(ApiError::unavailable("not_ready", reason))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<ApiState>) -> Response {
    let text = state.metrics.render(&state.node.view());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Any path the API does not have.
pub async fn no_route(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_endpoint",
        format!("there is no endpoint {}", uri.path()),
    )
}

/// A known path with a method it does not take.
pub async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}
