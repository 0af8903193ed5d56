//! This node: `/v1/node` (status, and the state digest when asked for),
//! `/v1/snapshot` (a consistent backup, streamed), `/healthz`, `/readyz`,
//! `/metrics`, and the JSON 404 for unknown paths. The digest and the
//! backup read the whole state, so they read a RocksDB snapshot on a
//! blocking thread, never on the driver's.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use raftcfg_client::wire::{self, NodeStatus};
use raftcfg_raft::{LogIndex, Role};

use super::ApiState;
use super::error::ApiError;
use super::params::Params;
use crate::kv::{Digest, SnapshotError, write_state, write_state_with};
use crate::metrics::{self, DiskUsage};

/// `GET /v1/node[?digest=true]`.
pub async fn status(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Result<Json<NodeStatus>, ApiError> {
    let params = Params::parse(query.as_deref(), &["digest"])?;
    let digest = if params.flag("digest")? {
        Some(state_digest(&state).await?)
    } else {
        None
    };
    let view = state.node.view();
    let status = &view.status;
    Ok(Json(NodeStatus {
        node_id: wire::NodeId(view.identity.node_id.get()),
        cluster_id: status.cluster_id.map(|id| wire::ClusterId(id.get())),
        name: view.identity.name.clone(),
        role: if view.removed {
            "removed"
        } else {
            role_name(status.role)
        }
        .to_owned(),
        term: wire::Term(status.term.get()),
        commit: wire::LogIndex(status.commit.get()),
        // With a digest, the digest's index, so the two belong together.
        applied: wire::LogIndex(digest.map_or(status.applied, |(applied, _)| applied).get()),
        last_index: wire::LogIndex(status.last_index.get()),
        last_term: wire::Term(status.last_term.get()),
        snapshot_index: wire::LogIndex(status.snapshot_index.get()),
        leader_id: status.leader_id.map(|id| wire::NodeId(id.get())),
        state_digest: digest.map(|(_, digest)| digest.to_string()),
    }))
}

/// The digest of the state and the applied index it is at, computed at most
/// once per applied index (callers that ask together share one).
async fn state_digest(state: &ApiState) -> Result<(LogIndex, Digest), ApiError> {
    let mut cached = state.digest.lock().await;
    let applied = state.node.view().status.applied;
    if let Some((at, digest)) = *cached
        && at == applied
    {
        return Ok((at, digest));
    }
    let db = state.db.clone();
    let summary = tokio::task::spawn_blocking(move || write_state(&db, &mut std::io::sink()))
        .await
        .map_err(|e| ApiError::internal(format!("the digest task failed: {e}")))?
        .map_err(snapshot_error)?;
    *cached = Some((summary.applied_index, summary.digest));
    Ok((summary.applied_index, summary.digest))
}

fn snapshot_error(error: SnapshotError) -> ApiError {
    match error {
        SnapshotError::Restoring => ApiError::unavailable(
            "restoring",
            "this node is installing a snapshot from the leader; retry shortly",
        ),
        other => ApiError::internal(other.to_string()),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre_candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// `GET /v1/snapshot`: the whole state as of one applied index, streamed
/// from a RocksDB snapshot with a bounded buffer.
pub async fn snapshot(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    if !state.node.view().initialized() {
        return Err(ApiError::from(crate::driver::DriverError::NotInitialized));
    }
    let (chunks, body) = tokio::sync::mpsc::channel(BACKUP_CHUNKS_IN_FLIGHT);
    let (started, start) = tokio::sync::oneshot::channel();
    let db = state.db.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            chunks: chunks.clone(),
            buffer: Vec::with_capacity(BACKUP_CHUNK_BYTES),
        };
        let result = write_state_with(&db, &mut out, |applied, revision| {
            let _ = started.send((applied, revision));
        })
        .and_then(|summary| {
            out.send_buffer()?;
            Ok(summary)
        });
        if let Err(e) = result {
            // Fails the response mid-body (the client sees a broken
            // stream and a backup without its checksum), or, before any
            // byte, the request: see below.
            let _ = chunks.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let Ok((applied, revision)) = start.await else {
        // The state could not be read at all: the task said why.
        let mut body = body;
        let why = match body.recv().await {
            Some(Err(e)) => e.to_string(),
            _ => "the backup could not be started".to_owned(),
        };
        return Err(if why.contains("being installed") {
            snapshot_error(SnapshotError::Restoring)
        } else {
            ApiError::internal(why)
        });
    };
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
            HeaderValue::from(applied.get()),
        ),
        (
            header::HeaderName::from_static("x-raftcfg-revision"),
            HeaderValue::from(revision.get()),
        ),
    ];
    let stream = tokio_stream::wrappers::ReceiverStream::new(body);
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// Bytes per chunk of a streamed backup, and chunks buffered at most: the
/// memory a backup takes, whatever the state's size.
const BACKUP_CHUNK_BYTES: usize = 64 << 10;
const BACKUP_CHUNKS_IN_FLIGHT: usize = 4;

/// Hands what is written to the response body in chunks; blocks while the
/// body is [`BACKUP_CHUNKS_IN_FLIGHT`] chunks behind, and fails once the
/// client is gone.
struct ChunkWriter {
    chunks: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

impl ChunkWriter {
    fn send_buffer(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(BACKUP_CHUNK_BYTES),
        ));
        self.chunks
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= BACKUP_CHUNK_BYTES {
            self.send_buffer()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /healthz`: the process serves and its driver runs.
pub async fn healthz(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Result<&'static str, ApiError> {
    Params::parse(query.as_deref(), &[])?;
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
pub async fn readyz(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Result<&'static str, ApiError> {
    Params::parse(query.as_deref(), &[])?;
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
pub async fn metrics(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let data_dir = state.db.raw().path().to_owned();
    let (disk, process) =
        tokio::task::spawn_blocking(move || (disk_usage(&data_dir), metrics::process_usage()))
            .await
            .map_err(|e| ApiError::internal(format!("measuring the data directory failed: {e}")))?;
    let view = state.node.view();
    let text = state
        .metrics
        .render(&view.status, view.revision.get(), disk, process);
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The bytes of the files in `data_dir`: those in its snapshot folder, and
/// the rest (RocksDB's). Files that vanish while it is walked are skipped.
fn disk_usage(data_dir: &std::path::Path) -> DiskUsage {
    fn bytes_under(path: &std::path::Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(path) else {
            return 0;
        };
        entries
            .flatten()
            .map(|entry| match entry.metadata() {
                Ok(meta) if meta.is_dir() => bytes_under(&entry.path()),
                Ok(meta) => meta.len(),
                Err(_) => 0,
            })
            .sum()
    }
    let snapshot_bytes = bytes_under(&data_dir.join(crate::kv::SNAPSHOT_FOLDER));
    DiskUsage {
        rocksdb_bytes: bytes_under(data_dir).saturating_sub(snapshot_bytes),
        snapshot_bytes,
    }
}

/// `/v1/kv/` with nothing after it: a key cannot be empty.
pub async fn empty_key() -> ApiError {
    ApiError::bad_request("bad_key", "the key is empty: give one after /v1/kv/")
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
