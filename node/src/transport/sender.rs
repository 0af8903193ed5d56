//! The sending side of the peer transport: per-peer queues and the tasks
//! that write them to each peer's stream (when the driver did not write a
//! frame itself, see `link`), and forwarding a write or a cluster
//! operation to the leader.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use raftcfg_raft::{Message, NodeId};
use tokio::runtime::Handle;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_rustls::TlsConnector;

use super::forward::{ClusterReply, ClusterRequest, ForwardReply};
use super::link::{Idle, PeerLink, Queued};
use super::snapshots::{self, SNAPSHOT_PATH};
use super::stream::{OutgoingStream, SENDER_IDLE_CLOSE, StreamError};
use super::{CLUSTER_PATH, PROPOSE_PATH, SENDER_ID_HEADER, SENDER_URL_HEADER};
use crate::codec::{self, Decode};
use crate::driver::{DriverError, Outbox, SnapshotDone};
use crate::kv::{Command, Outcome, SnapshotDir};
use crate::metrics::{Metrics, PeerStats};

/// At most this many messages go in one frame.
const MAX_BATCH_MESSAGES: usize = 512;
/// A batch stops growing once its messages' entries hold this many bytes
/// (a single larger message still goes, alone), so one frame stays well
/// below the peer port's limit (see `server::PeerLimits`).
pub(super) const MAX_BATCH_ENTRY_BYTES: u64 = 4 << 20;
/// The first wait after a stream failed; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The largest answer to a forwarded request read (a refusal's message is
/// the longest part; a real one is well under a KiB).
pub(super) const MAX_ANSWER_BYTES: usize = 64 << 10;
/// A frame whose write takes longer than this (the peer stopped reading)
/// breaks its stream.
const FRAME_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// This member as its peer requests name it, and what peers said of it.
pub(super) struct Local {
    /// Its peer URL.
    pub(super) url: String,
    /// Its node id, once the data directory is open.
    id: OnceLock<NodeId>,
    /// Whether a peer answered that it was removed from the cluster.
    removed: AtomicBool,
}

impl Local {
    /// Its node id, if known yet.
    pub(super) fn id(&self) -> Option<NodeId> {
        self.id.get().copied()
    }

    /// Records that `peer_url` answered `410 Gone`: this member was removed.
    fn told_removed(&self, peer_url: &str) {
        if !self.removed.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                peer = peer_url,
                "a peer says this member was removed from the cluster"
            );
        }
    }
}

/// Sends peer messages and forwards writes.
pub struct Transport {
    client: reqwest::Client,
    /// Mutual TLS to peers, if the peer port uses it.
    tls: Option<TlsConnector>,
    local: Arc<Local>,
    runtime: Handle,
    metrics: Arc<Metrics>,
    peers: Mutex<HashMap<NodeId, PeerQueue>>,
    /// Where snapshot files are, to stream them.
    snapshots: SnapshotDir,
    /// The snapshot transfer in progress to each peer.
    transfers: Mutex<HashMap<NodeId, tokio::task::AbortHandle>>,
}

struct PeerQueue {
    url: String,
    queue: UnboundedSender<Queued>,
    link: Arc<PeerLink>,
    stats: Arc<PeerStats>,
}

impl Transport {
    /// A transport for the member whose peer URL is `own_url`, streaming
    /// snapshots from `snapshots`; its tasks run on `runtime`. With `tls`,
    /// every peer is dialled over mutual TLS, and only at `https://` URLs.
    pub fn new(
        own_url: String,
        runtime: Handle,
        metrics: Arc<Metrics>,
        snapshots: SnapshotDir,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Arc<Self> {
        let mut client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true);
        if let Some(config) = &tls {
            client = client
                .tls_backend_preconfigured(rustls::ClientConfig::clone(config))
                .https_only(true);
        }
        let client = client
            .build()
            .expect("the HTTP client's settings are valid");
        Arc::new(Self {
            client,
            tls: tls.map(TlsConnector::from),
            local: Arc::new(Local {
                url: own_url,
                id: OnceLock::new(),
                removed: AtomicBool::new(false),
            }),
            runtime,
            metrics,
            peers: Mutex::new(HashMap::new()),
            snapshots,
            transfers: Mutex::new(HashMap::new()),
        })
    }

    /// Whether peers are dialled over TLS (their URLs are then `https://`).
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Names this member's node id in every peer request from now on.
    pub fn set_own_id(&self, id: NodeId) {
        let _ = self.local.id.set(id);
    }

    /// Forwards a write to the leader at `leader_peer_url` and relays its
    /// answer. A failure before the request was sent is `LeaderUnreachable`
    /// (nothing happened); after, the outcome is `Unknown`.
    pub async fn forward_propose(
        &self,
        leader_peer_url: &str,
        command: &Command,
        user: Option<&str>,
        timeout: Duration,
    ) -> Result<Outcome, DriverError> {
        let url = format!("{leader_peer_url}{PROPOSE_PATH}");
        let reply: ForwardReply = self
            .forward(url, codec::encode(command), user, timeout)
            .await?;
        reply.0.map_err(DriverError::from)
    }

    /// Relays a cluster operation to the leader at `leader_peer_url`, as
    /// [`Transport::forward_propose`] does a write: the answer is the
    /// membership change's log index or the new leader's id.
    pub async fn forward_cluster(
        &self,
        leader_peer_url: &str,
        request: &ClusterRequest,
        user: Option<&str>,
        timeout: Duration,
    ) -> Result<u64, DriverError> {
        let url = format!("{leader_peer_url}{CLUSTER_PATH}");
        let reply: ClusterReply = self
            .forward(url, codec::encode(request), user, timeout)
            .await?;
        reply.0.map_err(DriverError::from)
    }

    /// Posts a forwarded request's body to `url`, for `user` if auth is
    /// on, and decodes the answer.
    async fn forward<T: Decode>(
        &self,
        url: String,
        body: Vec<u8>,
        user: Option<&str>,
        timeout: Duration,
    ) -> Result<T, DriverError> {
        let mut request = self
            .client
            .post(url)
            .header(SENDER_URL_HEADER, &self.local.url);
        if let Some(user) = user {
            request = request.header(crate::auth::USER_HEADER, user);
        }
        if let Some(id) = self.local.id() {
            request = request.header(SENDER_ID_HEADER, id.get());
        }
        let response = request
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    DriverError::LeaderUnreachable
                } else {
                    DriverError::Unknown
                }
            })?;
        let status = response.status();
        if status == reqwest::StatusCode::GONE {
            self.local.told_removed(response.url().as_str());
            return Err(DriverError::Removed);
        }
        let body = read_bounded(response, MAX_ANSWER_BYTES).await?;
        if !status.is_success() {
            let text = crate::http_errors::message_of(&body);
            return Err(DriverError::Remote(format!("{status}: {text}")));
        }
        codec::decode::<T>(body)
            .map_err(|e| DriverError::Remote(format!("undecodable answer: {e}")))
    }

    /// The queue to peer `to` at `url`, with a task to deliver it: the one
    /// running, or a new one if the peer moved or its task ended.
    fn peer<'a>(
        &self,
        peers: &'a mut HashMap<NodeId, PeerQueue>,
        to: NodeId,
        url: &str,
    ) -> &'a PeerQueue {
        let current = peers
            .get(&to)
            .is_some_and(|peer| peer.url == url && !peer.queue.is_closed());
        if !current {
            let (queue, pending) = unbounded_channel();
            let link = Arc::new(PeerLink::default());
            let stats = self.metrics.peer(to);
            let task = PeerTask {
                url: url.to_owned(),
                local: self.local.clone(),
                tls: self.tls.clone(),
                stats: stats.clone(),
                link: link.clone(),
            };
            self.runtime.spawn(task.run(pending));
            peers.insert(
                to,
                PeerQueue {
                    url: url.to_owned(),
                    queue,
                    link,
                    stats,
                },
            );
        }
        &peers[&to]
    }
}

impl Outbox for Arc<Transport> {
    fn send(&self, to: NodeId, peer_url: &str, messages: Vec<Message>) {
        let mut peers = self.peers.lock().expect("peer map lock is never poisoned");
        let peer = self.peer(&mut peers, to, peer_url);
        peer.link.send(messages, &peer.queue, &peer.stats);
    }

    fn told_removed(&self) -> bool {
        self.local.removed.load(Ordering::Relaxed)
    }

    /// A new snapshot for a peer replaces any transfer still going to it:
    /// the core sends one only after the last one failed or timed out.
    fn send_snapshot(&self, to: NodeId, peer_url: &str, message: Message, done: SnapshotDone) {
        let task = self.runtime.spawn(snapshots::send(
            self.client.clone(),
            format!("{peer_url}{SNAPSHOT_PATH}"),
            self.local.url.clone(),
            self.snapshots.clone(),
            message,
            done,
        ));
        let mut transfers = self
            .transfers
            .lock()
            .expect("transfer map lock is never poisoned");
        if let Some(previous) = transfers.insert(to, task.abort_handle()) {
            previous.abort();
        }
    }
}

/// Whether `messages` go in one frame (see [`take_batch`]).
pub(super) fn fits_one_frame(messages: &[Message]) -> bool {
    messages.len() == 1
        || (messages.len() <= MAX_BATCH_MESSAGES
            && messages.iter().map(entry_bytes).sum::<u64>() <= MAX_BATCH_ENTRY_BYTES)
}

/// The next frame's messages, in order: at most
/// [`MAX_BATCH_MESSAGES`], and no more once their entries reach
/// [`MAX_BATCH_ENTRY_BYTES`] (the first message always goes).
fn take_batch(queued: &mut VecDeque<Message>) -> Vec<Message> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(message) = queued.front() {
        let size = entry_bytes(message);
        if !batch.is_empty()
            && (batch.len() >= MAX_BATCH_MESSAGES || bytes + size > MAX_BATCH_ENTRY_BYTES)
        {
            break;
        }
        bytes += size;
        batch.extend(queued.pop_front());
    }
    batch
}

/// The bytes of entries `message` carries.
fn entry_bytes(message: &Message) -> u64 {
    match &message.body {
        raftcfg_raft::MessageBody::AppendEntries { entries, .. } => {
            entries.iter().map(raftcfg_raft::Entry::size_bytes).sum()
        }
        _ => 0,
    }
}

/// What an idle [`PeerTask`] woke up to.
enum Woken {
    /// Something to write, or `None` once the transport dropped the queue.
    Queued(Option<Queued>),
    /// The peer closed the open stream (or it broke).
    PeerClosed,
    /// The stream may have carried nothing for [`SENDER_IDLE_CLOSE`].
    Idle,
}

/// An open stream and its number (which [`Queued::Rest`] names).
struct OpenStream {
    number: u64,
    stream: OutgoingStream,
}

/// The task that delivers what the driver queued for one peer, in order,
/// on a stream it opens when there is something to send. While it is idle
/// the driver may write to the stream itself (see `link`).
struct PeerTask {
    /// The peer's URL.
    url: String,
    local: Arc<Local>,
    tls: Option<TlsConnector>,
    stats: Arc<PeerStats>,
    link: Arc<PeerLink>,
}

impl PeerTask {
    async fn run(self, mut pending: UnboundedReceiver<Queued>) {
        let mut backoff = MIN_BACKOFF;
        let mut work: VecDeque<Queued> = VecDeque::new();
        let mut stream: Option<OpenStream> = None;
        let mut streams_opened = 0;
        loop {
            let mut outcome = Ok(());
            if work.is_empty() {
                let woken = match self.link.try_idle(&mut pending) {
                    Idle::Busy(queued) => Woken::Queued(Some(queued)),
                    Idle::Ended => Woken::Queued(None),
                    Idle::Yes => match stream.as_mut() {
                        None => Woken::Queued(pending.recv().await),
                        Some(open) => tokio::select! {
                            next = pending.recv() => Woken::Queued(next),
                            () = open.stream.closed() => Woken::PeerClosed,
                            () = tokio::time::sleep(self.link.idle_left(SENDER_IDLE_CLOSE)) => {
                                Woken::Idle
                            }
                        },
                    },
                };
                match woken {
                    Woken::Queued(Some(queued)) => work.push_back(queued),
                    Woken::Queued(None) => {
                        self.link.detach();
                        return;
                    }
                    Woken::Idle => {
                        if self.link.detach_if_idle(SENDER_IDLE_CLOSE) {
                            stream = None;
                        }
                        continue;
                    }
                    // The receiver ends a stream only when it refuses it or
                    // stops: a failure, like a failed write.
                    Woken::PeerClosed => outcome = Err(StreamError::ClosedByPeer),
                }
            }
            if outcome.is_ok() {
                while let Ok(more) = pending.try_recv() {
                    work.push_back(more);
                }
                outcome = self
                    .deliver(&mut stream, &mut streams_opened, &mut work)
                    .await;
            }
            match outcome {
                Ok(()) => backoff = MIN_BACKOFF,
                Err(error) => {
                    if let StreamError::Refused(reqwest::StatusCode::GONE) = error {
                        self.local.told_removed(&self.url);
                    }
                    tracing::debug!(url = %self.url, %error, "peer stream failed");
                    self.stats.failures.inc();
                    self.link.detach();
                    stream = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    // Raft resends what matters; a backlog from while the
                    // peer was away would only arrive stale and in a burst.
                    work.clear();
                    while pending.try_recv().is_ok() {}
                }
            }
        }
    }

    /// Writes everything in `work` to the peer's stream, opening one first
    /// if there is none.
    async fn deliver(
        &self,
        stream: &mut Option<OpenStream>,
        streams_opened: &mut u64,
        work: &mut VecDeque<Queued>,
    ) -> Result<(), StreamError> {
        let open = match stream {
            Some(open) => open,
            None => {
                let mut opened =
                    OutgoingStream::open(&self.url, &self.local, self.tls.as_ref()).await?;
                self.stats.streams_opened.inc();
                *streams_opened += 1;
                if let Some(socket) = opened.take_socket() {
                    self.link.attach(*streams_opened, socket);
                }
                stream.insert(OpenStream {
                    number: *streams_opened,
                    stream: opened,
                })
            }
        };
        let mut messages = VecDeque::new();
        while let Some(queued) = work.pop_front() {
            match queued {
                // The end of a frame the driver began on another stream
                // went with that stream.
                Queued::Rest { stream, bytes } if stream == open.number => {
                    timed(open.stream.write(&bytes)).await?;
                }
                Queued::Rest { .. } => {}
                Queued::Messages(queued) => {
                    messages.extend(queued);
                    while let Some(Queued::Messages(more)) = work.front_mut() {
                        messages.extend(std::mem::take(more));
                        work.pop_front();
                    }
                    while !messages.is_empty() {
                        let batch = take_batch(&mut messages);
                        let started = Instant::now();
                        timed(open.stream.send(&batch)).await?;
                        crate::metrics::observe(&self.stats.write, started.elapsed());
                    }
                }
            }
        }
        self.link.wrote();
        Ok(())
    }
}

/// `write`, or a timeout error once it took [`FRAME_WRITE_TIMEOUT`] (the
/// peer stopped reading).
async fn timed(
    write: impl std::future::Future<Output = Result<(), StreamError>>,
) -> Result<(), StreamError> {
    tokio::time::timeout(FRAME_WRITE_TIMEOUT, write)
        .await
        .map_err(|_| StreamError::Write(std::io::ErrorKind::TimedOut.into()))?
}

/// The body of `response`, read up to `limit` bytes. A longer one, or one
/// cut off in transit, leaves the outcome unknown (the leader may have
/// carried the request out).
pub(super) async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<bytes::Bytes, DriverError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|_| DriverError::Unknown)? {
        if body.len() + chunk.len() > limit {
            tracing::warn!("a leader's answer is longer than {limit} bytes; not read");
            return Err(DriverError::Unknown);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}
