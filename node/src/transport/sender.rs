//! The sending side of the peer transport: per-peer queues and the tasks
//! that write them to each peer's stream, and forwarding a write or a
//! cluster operation to the leader.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raftcfg_raft::{Message, NodeId};
use tokio::runtime::Handle;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::forward::{ClusterReply, ClusterRequest, ForwardReply};
use super::snapshots::{self, SNAPSHOT_PATH};
use super::stream::{OutgoingStream, SENDER_IDLE_CLOSE, StreamError};
use super::{CLUSTER_PATH, PROPOSE_PATH, SENDER_URL_HEADER};
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
const MAX_ANSWER_BYTES: usize = 64 << 10;
/// A frame whose write takes longer than this (the peer stopped reading)
/// breaks its stream.
const FRAME_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends peer messages and forwards writes.
pub struct Transport {
    client: reqwest::Client,
    own_url: String,
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
    queue: UnboundedSender<Vec<Message>>,
}

impl Transport {
    /// A transport for the member whose peer URL is `own_url`, streaming
    /// snapshots from `snapshots`; its tasks run on `runtime`.
    pub fn new(
        own_url: String,
        runtime: Handle,
        metrics: Arc<Metrics>,
        snapshots: SnapshotDir,
    ) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .expect("the HTTP client's settings are valid");
        Arc::new(Self {
            client,
            own_url,
            runtime,
            metrics,
            peers: Mutex::new(HashMap::new()),
            snapshots,
            transfers: Mutex::new(HashMap::new()),
        })
    }

    /// Forwards a write to the leader at `leader_peer_url` and relays its
    /// answer. A failure before the request was sent is `LeaderUnreachable`
    /// (nothing happened); after, the outcome is `Unknown`.
    pub async fn forward_propose(
        &self,
        leader_peer_url: &str,
        command: &Command,
        timeout: Duration,
    ) -> Result<Outcome, DriverError> {
        let url = format!("{leader_peer_url}{PROPOSE_PATH}");
        let reply: ForwardReply = self.forward(url, codec::encode(command), timeout).await?;
        reply.0.map_err(DriverError::from)
    }

    /// Relays a cluster operation to the leader at `leader_peer_url`, as
    /// [`Transport::forward_propose`] does a write: the answer is the
    /// membership change's log index or the new leader's id.
    pub async fn forward_cluster(
        &self,
        leader_peer_url: &str,
        request: &ClusterRequest,
        timeout: Duration,
    ) -> Result<u64, DriverError> {
        let url = format!("{leader_peer_url}{CLUSTER_PATH}");
        let reply: ClusterReply = self.forward(url, codec::encode(request), timeout).await?;
        reply.0.map_err(DriverError::from)
    }

    /// Posts a forwarded request's body to `url` and decodes the answer.
    async fn forward<T: Decode>(
        &self,
        url: String,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<T, DriverError> {
        let response = self
            .client
            .post(url)
            .header(SENDER_URL_HEADER, &self.own_url)
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
        let body = read_bounded(response, MAX_ANSWER_BYTES).await?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(DriverError::Remote(format!("{status}: {text}")));
        }
        codec::decode::<T>(body)
            .map_err(|e| DriverError::Remote(format!("undecodable answer: {e}")))
    }

    fn queue_for(&self, to: NodeId, url: &str) -> UnboundedSender<Vec<Message>> {
        let mut peers = self.peers.lock().expect("peer map lock is never poisoned");
        if let Some(peer) = peers.get(&to)
            && peer.url == url
            && !peer.queue.is_closed()
        {
            return peer.queue.clone();
        }
        let (queue, pending) = unbounded_channel();
        let task = PeerTask {
            url: url.to_owned(),
            own_url: self.own_url.clone(),
            stats: self.metrics.peer(to),
        };
        self.runtime.spawn(task.run(pending));
        peers.insert(
            to,
            PeerQueue {
                url: url.to_owned(),
                queue: queue.clone(),
            },
        );
        queue
    }
}

impl Outbox for Arc<Transport> {
    fn send(&self, to: NodeId, peer_url: &str, messages: Vec<Message>) {
        // A closed queue means the task ended; the next send starts another.
        let _ = self.queue_for(to, peer_url).send(messages);
    }

    /// A new snapshot for a peer replaces any transfer still going to it:
    /// the core sends one only after the last one failed or timed out.
    fn send_snapshot(&self, to: NodeId, peer_url: &str, message: Message, done: SnapshotDone) {
        let task = self.runtime.spawn(snapshots::send(
            self.client.clone(),
            format!("{peer_url}{SNAPSHOT_PATH}"),
            self.own_url.clone(),
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

/// The next request's messages, in order: at most
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
    /// Messages to send, or `None` once the transport dropped the queue.
    Queued(Option<Vec<Message>>),
    /// The peer closed the open stream (or it broke).
    PeerClosed,
    /// Nothing to send for [`SENDER_IDLE_CLOSE`].
    Idle,
}

/// The task that delivers one peer's queue, in order, on a stream it opens
/// when there is something to send.
struct PeerTask {
    /// The peer's URL.
    url: String,
    own_url: String,
    stats: Arc<PeerStats>,
}

impl PeerTask {
    async fn run(self, mut pending: UnboundedReceiver<Vec<Message>>) {
        let mut backoff = MIN_BACKOFF;
        let mut queued: VecDeque<Message> = VecDeque::new();
        let mut stream: Option<OutgoingStream> = None;
        loop {
            let mut outcome = Ok(());
            if queued.is_empty() {
                let woken = match stream.as_mut() {
                    None => Woken::Queued(pending.recv().await),
                    Some(open) => tokio::select! {
                        next = pending.recv() => Woken::Queued(next),
                        () = open.closed() => Woken::PeerClosed,
                        () = tokio::time::sleep(SENDER_IDLE_CLOSE) => Woken::Idle,
                    },
                };
                match woken {
                    Woken::Queued(Some(messages)) => queued.extend(messages),
                    Woken::Queued(None) => return,
                    Woken::Idle => {
                        stream = None;
                        continue;
                    }
                    // The receiver ends a stream only when it refuses it or
                    // stops: a failure, like a failed write.
                    Woken::PeerClosed => outcome = Err(StreamError::ClosedByPeer),
                }
            }
            if outcome.is_ok() {
                while let Ok(more) = pending.try_recv() {
                    queued.extend(more);
                }
                outcome = self.deliver(&mut stream, &mut queued).await;
            }
            match outcome {
                Ok(()) => backoff = MIN_BACKOFF,
                Err(error) => {
                    tracing::debug!(url = %self.url, %error, "peer stream failed");
                    self.stats.failures.inc();
                    stream = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    // Raft resends what matters; a backlog from while the
                    // peer was away would only arrive stale and in a burst.
                    queued.clear();
                    while pending.try_recv().is_ok() {}
                }
            }
        }
    }

    /// Writes everything queued to the peer's stream, opening one first if
    /// there is none.
    async fn deliver(
        &self,
        stream: &mut Option<OutgoingStream>,
        queued: &mut VecDeque<Message>,
    ) -> Result<(), StreamError> {
        let open = match stream {
            Some(open) => open,
            None => {
                let opened = OutgoingStream::open(&self.url, &self.own_url).await?;
                self.stats.streams_opened.inc();
                stream.insert(opened)
            }
        };
        while !queued.is_empty() {
            let batch = take_batch(queued);
            let started = Instant::now();
            tokio::time::timeout(FRAME_WRITE_TIMEOUT, open.send(batch))
                .await
                .map_err(|_| StreamError::Write(std::io::ErrorKind::TimedOut.into()))??;
            self.stats.write.observe(started.elapsed());
        }
        Ok(())
    }
}

/// The body of `response`, read up to `limit` bytes. A longer one, or one
/// cut off in transit, leaves the outcome unknown (the leader may have
/// carried the request out).
async fn read_bounded(
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
