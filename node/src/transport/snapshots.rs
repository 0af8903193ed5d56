//! Snapshots over the peer port, streamed at both ends: the leader sends
//! the snapshot file an `InstallSnapshot` message names, the follower
//! writes it to disk as it arrives and steps the message into its driver
//! only once the file is whole and durable. Neither end holds the state in
//! memory, and the transfer has its own connection, so heartbeats and
//! appends to this and other peers are not held up behind it.
//!
//! `POST /raft/v1/snapshot`, body:
//!
//! ```text
//! u32 length | the encoded InstallSnapshot message | the snapshot file
//! ```
//!
//! The message's snapshot data is a `SnapshotRef` (index, size, digest);
//! the receiver checks the file against it as it arrives.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::StreamExt as _;
use raftcfg_raft::{Message, MessageBody};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::SENDER_URL_HEADER;
use crate::codec;
use crate::driver::{NodeHandle, SnapshotDone};
use crate::kv::{SYNC_EVERY_BYTES, SnapshotDir, SnapshotRef};

/// Path of the snapshot endpoint on the peer port.
pub const SNAPSHOT_PATH: &str = "/raft/v1/snapshot";
/// The largest encoded `InstallSnapshot` message (its data is a reference).
const MAX_MESSAGE_BYTES: usize = 64 << 10;
/// Bytes read from the file per body chunk.
const CHUNK_BYTES: usize = 256 << 10;
/// A transfer that makes no progress for this long fails.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A transfer may take this long plus a second per 8 MiB.
const BASE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the receiving end needs.
#[derive(Clone)]
pub struct SnapshotReceiver {
    /// The driver, to step the message into once the file is whole.
    pub node: NodeHandle,
    /// Where received files go.
    pub dir: SnapshotDir,
    /// The largest snapshot accepted, in bytes.
    pub max_bytes: u64,
    /// Transfers received at once at most.
    pub slots: Arc<tokio::sync::Semaphore>,
}

/// Streams the file named by `message` (an `InstallSnapshot`) to the peer
/// at `url` and calls `done` with whether the peer took it.
pub async fn send(
    client: reqwest::Client,
    url: String,
    own_url: String,
    dir: SnapshotDir,
    message: Message,
    done: SnapshotDone,
) {
    let delivered = match stream_to(&client, &url, &own_url, &dir, &message).await {
        Ok(()) => true,
        Err(why) => {
            tracing::warn!(peer = %url, to = %message.to, "sending a snapshot failed: {why}");
            false
        }
    };
    done(delivered);
}

async fn stream_to(
    client: &reqwest::Client,
    url: &str,
    own_url: &str,
    dir: &SnapshotDir,
    message: &Message,
) -> Result<(), String> {
    let MessageBody::InstallSnapshot { snapshot } = &message.body else {
        return Err("not an InstallSnapshot message".into());
    };
    let reference = SnapshotRef::decode(&snapshot.data)
        .map_err(|e| format!("the snapshot's data is not a file reference: {e}"))?;
    let path = dir.path_of(&reference);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let encoded = codec::encode(message);
    let mut prefix = BytesMut::with_capacity(4 + encoded.len());
    prefix.put_u32(encoded.len() as u32);
    prefix.put_slice(&encoded);
    let length = prefix.len() as u64 + reference.size;
    let body = futures::stream::once(async move { Ok::<Bytes, std::io::Error>(prefix.freeze()) })
        .chain(file_chunks(file, reference.size));
    let timeout = BASE_TIMEOUT + Duration::from_secs(reference.size / (8 << 20));
    tracing::info!(to = %message.to, index = %reference.index, bytes = reference.size, "sending a snapshot");
    let response = client
        .post(url)
        .header(SENDER_URL_HEADER, own_url)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .header(reqwest::header::CONTENT_LENGTH, length)
        .timeout(timeout)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        Err(format!(
            "{status}: {}",
            crate::http_errors::message_of(&body)
        ))
    }
}

/// The first `size` bytes of `file`, in chunks.
fn file_chunks(
    file: tokio::fs::File,
    size: u64,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold((file, size), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut chunk = vec![0; CHUNK_BYTES.min(left as usize)];
        match file.read_exact(&mut chunk).await {
            Ok(_) => Some((
                Ok(Bytes::from(chunk)),
                (file, left - CHUNK_BYTES.min(left as usize) as u64),
            )),
            Err(e) => Some((Err(e), (file, 0))),
        }
    })
}

/// `POST /raft/v1/snapshot`.
pub async fn receive(receiver: SnapshotReceiver, headers: HeaderMap, body: Body) -> Response {
    let Ok(_slot) = receiver.slots.clone().try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "another snapshot is being received; retry later",
        );
    };
    match receive_file(&receiver, body).await {
        Ok(message) => {
            let sender_url = headers
                .get(SENDER_URL_HEADER)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            match receiver.node.step(vec![message], sender_url) {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            }
        }
        Err((status, why)) => {
            tracing::warn!("refused a snapshot: {why}");
            refuse(status, &why)
        }
    }
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, why.to_owned()).into_response()
}

type Refusal = (StatusCode, String);

/// Reads the message, then the file into the snapshot folder; returns the
/// message once the file is whole, checked and durable.
async fn receive_file(receiver: &SnapshotReceiver, body: Body) -> Result<Message, Refusal> {
    let bad = |why: String| (StatusCode::BAD_REQUEST, why);
    let mut stream = body.into_data_stream();
    let mut buffered = BytesMut::new();
    // The message.
    let message_len = loop {
        if buffered.len() >= 4 {
            let len = (&buffered[..4]).get_u32() as usize;
            if len > MAX_MESSAGE_BYTES {
                return Err(bad(format!("a snapshot message of {len} bytes")));
            }
            if buffered.len() >= 4 + len {
                break len;
            }
        }
        match next_chunk(&mut stream).await? {
            Some(chunk) => buffered.extend_from_slice(&chunk),
            None => return Err(bad("the body ended inside the message".into())),
        }
    };
    buffered.advance(4);
    let encoded = buffered.split_to(message_len);
    let message: Message =
        codec::decode(encoded.freeze()).map_err(|e| bad(format!("undecodable message: {e}")))?;
    let MessageBody::InstallSnapshot { snapshot } = &message.body else {
        return Err(bad("not an InstallSnapshot message".into()));
    };
    let reference = SnapshotRef::decode(&snapshot.data)
        .map_err(|e| bad(format!("the snapshot's data is not a file reference: {e}")))?;
    check_addressed(&receiver.node, &message)?;
    if reference.size > receiver.max_bytes {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the snapshot is {} bytes, more than this node accepts ({}; see --max-snapshot-bytes)",
                reference.size, receiver.max_bytes
            ),
        ));
    }
    // The file.
    let partial = receiver
        .dir
        .create_partial()
        .map_err(|e| internal(format!("cannot create a snapshot file: {e}")))?;
    let std_file = partial
        .file
        .try_clone()
        .map_err(|e| internal(format!("cannot write the snapshot file: {e}")))?;
    let mut incoming = Incoming {
        file: tokio::fs::File::from_std(std_file),
        hasher: Sha256::new(),
        received: 0,
        size: reference.size,
        unsynced: 0,
    };
    incoming.write(&buffered).await?;
    while let Some(chunk) = next_chunk(&mut stream).await? {
        incoming.write(&chunk).await?;
    }
    incoming.finish(&reference).await?;
    let dir = receiver.dir.clone();
    tokio::task::spawn_blocking(move || dir.commit(partial, &reference))
        .await
        .map_err(|e| internal(format!("cannot store the snapshot file: {e}")))?
        .map_err(|e| internal(format!("cannot store the snapshot file: {e}")))?;
    tracing::info!(from = %message.from, index = %reference.index, bytes = reference.size, "received a snapshot");
    Ok(message)
}

/// A snapshot file being received: its bytes so far and their hash.
struct Incoming {
    file: tokio::fs::File,
    hasher: Sha256,
    received: u64,
    size: u64,
    /// Bytes written since the file's data was last synced (see
    /// `PartialFile::paced`).
    unsynced: u64,
}

impl Incoming {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), Refusal> {
        let start = self.received;
        self.received += bytes.len() as u64;
        if self.received > self.size {
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "the body holds more than the snapshot's {} bytes",
                    self.size
                ),
            ));
        }
        // The trailer is the digest of what precedes it: hash all but it.
        let body_end = self.size.saturating_sub(32);
        if start < body_end {
            let hashed = ((body_end - start) as usize).min(bytes.len());
            self.hasher.update(&bytes[..hashed]);
        }
        self.file
            .write_all(bytes)
            .await
            .map_err(|e| internal(format!("cannot write the snapshot file: {e}")))?;
        self.unsynced += bytes.len() as u64;
        if self.unsynced >= SYNC_EVERY_BYTES {
            self.file
                .sync_data()
                .await
                .map_err(|e| internal(format!("cannot write the snapshot file: {e}")))?;
            self.unsynced = 0;
        }
        Ok(())
    }

    /// Checks the size and digest against `reference` and flushes.
    async fn finish(mut self, reference: &SnapshotRef) -> Result<(), Refusal> {
        if self.received != self.size {
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "the body ended after {} of the snapshot's {} bytes",
                    self.received, self.size
                ),
            ));
        }
        self.file
            .flush()
            .await
            .map_err(|e| internal(format!("cannot write the snapshot file: {e}")))?;
        let digest: [u8; 32] = self.hasher.finalize().into();
        if digest != reference.digest.0 {
            return Err((
                StatusCode::BAD_REQUEST,
                "the snapshot's bytes do not match its digest".into(),
            ));
        }
        Ok(())
    }
}

fn internal(why: String) -> Refusal {
    (StatusCode::INTERNAL_SERVER_ERROR, why)
}

/// The next body chunk, failing if none comes within [`IDLE_TIMEOUT`].
async fn next_chunk(stream: &mut axum::body::BodyDataStream) -> Result<Option<Bytes>, Refusal> {
    match tokio::time::timeout(IDLE_TIMEOUT, stream.next()).await {
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            format!("no snapshot bytes for {IDLE_TIMEOUT:?}"),
        )),
        Ok(None) => Ok(None),
        Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
        Ok(Some(Err(e))) => Err((
            StatusCode::BAD_REQUEST,
            format!("reading the body failed: {e}"),
        )),
    }
}

/// Refuses, before any byte of the file is written, a snapshot meant for
/// another node or cluster or from an older term.
fn check_addressed(node: &NodeHandle, message: &Message) -> Result<(), Refusal> {
    let view = node.view();
    let refused = |why: String| Err((StatusCode::CONFLICT, why));
    if message.to != view.identity.node_id {
        return refused(format!(
            "the snapshot is for node {}, this is node {}",
            message.to, view.identity.node_id
        ));
    }
    if let Some(cluster) = view.status.cluster_id
        && cluster != message.cluster_id
    {
        return refused(format!(
            "the snapshot is from cluster {}, this node is in cluster {cluster}",
            message.cluster_id
        ));
    }
    if message.term < view.status.term {
        return refused(format!(
            "the snapshot is from term {}, this node is in term {}",
            message.term, view.status.term
        ));
    }
    Ok(())
}
