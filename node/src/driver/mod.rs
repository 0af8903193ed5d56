//! The driver: the one place where the rest of the node meets the Raft
//! core. Its state (the [`Replica`] and what goes with it) is run in
//! rounds: take every request queued meanwhile (so many proposals share
//! one write — group commit), carry out the resulting `Ready`s in the
//! core's order, then ship the outbox, answer the proposers whose entries
//! were applied and the reads whose index was reached, and publish a fresh
//! [`NodeView`].
//!
//! A round runs on the thread of the request that finds the state free
//! (`queue`), or on the driver's own thread, which waits for queued
//! requests and ticks. Rounds block on storage (a follower's fsync), so
//! a task of the node's runtime may block for one. Work that costs the
//! state's size stays off tasks: a snapshot to install waits for the
//! driver thread (unless queued before a task's own request), a second
//! thread writes the snapshot files (`snapshotter`), and the transport
//! streams them. Everything else talks to the driver through a
//! [`NodeHandle`].

mod config;
mod directory;
mod doorbell;
mod handle;
mod notices;
mod queue;
mod snapshotter;
mod syncer;
mod transfer;
mod waiters;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::TryRecvError;
use raftcfg_raft::{
    ForceError, ForcedCluster, LeaderSync, MembershipChange, Message, MessageBody, NodeId,
    ProposalError, ReadContext, Role,
};
use tokio::sync::watch;

pub use config::{DriverConfig, SnapshotPolicy, Timing};
use doorbell::Doorbell;
use handle::Request;
use notices::CommitNotices;
use queue::{Queue, Rounds};

use directory::AddressBook;
pub use handle::{
    AppliedChanges, ChangeBatch, Consistency, DriverError, MemberRefusal, NodeHandle, NodeView,
    Query, QueryResult,
};
use snapshotter::Snapshotter;
use syncer::Syncer;
use transfer::Transfers;
use waiters::{PendingRead, Waiter, Waiters};

use crate::codec;
use crate::kv::{Change, ChangesError, Command, KvStore, MemberAddress, SnapshotDir, SnapshotRef};
use crate::metrics::Metrics;
use crate::replica::{Replica, ReplicaError};
use crate::storage::Db;

/// Requests taken in one round at most (bounds the latency of a round).
const MAX_REQUESTS_PER_ROUND: usize = 4096;
/// The wait before another snapshot after one failed (a full disk, say).
const SNAPSHOT_RETRY: Duration = Duration::from_secs(10);
/// Rounds of applied changes the watch feed holds for a slow watcher.
const CHANGE_FEED_BATCHES: usize = 256;
/// Values a round may publish on the feed, in bytes; a round that wrote
/// more publishes only its revisions. The feed holds at most
/// `CHANGE_FEED_BATCHES` times this.
const CHANGE_FEED_BATCH_BYTES: usize = 256 << 10;

/// Where the driver sends peer messages: the transport.
pub trait Outbox: Send + 'static {
    /// Queues `messages` for `to`, reached at `peer_url`. Never blocks.
    fn send(&self, to: NodeId, peer_url: &str, messages: Vec<Message>);

    /// Whether a peer answered that this member was removed from the
    /// cluster.
    fn told_removed(&self) -> bool {
        false
    }

    /// Sends `to` an `InstallSnapshot` message whose snapshot data is a
    /// [`SnapshotRef`]: the transport streams the file it names, then calls
    /// `done` with whether the peer took it. Never blocks.
    fn send_snapshot(&self, to: NodeId, peer_url: &str, message: Message, done: SnapshotDone);
}

/// How a snapshot transfer ended: called once, from any thread.
pub type SnapshotDone = Box<dyn FnOnce(bool) + Send>;

/// What other threads of the node tell the driver (never refused, unlike
/// requests: losing one would leave the driver waiting).
enum Internal {
    /// The snapshotter wrote a snapshot file, or failed to.
    SnapshotWritten(Result<SnapshotRef, crate::kv::SnapshotError>),
    /// A snapshot transfer to `to` ended.
    SnapshotSent { to: NodeId, delivered: bool },
}

/// A running driver: its handle and its thread.
pub struct Driver {
    /// The handle to give out.
    pub handle: NodeHandle,
    /// The node's database, for reads that need no driver (backups,
    /// digests).
    pub db: Db,
    /// Where the snapshot files are.
    pub snapshots: SnapshotDir,
    /// The thread; it ends when every handle is dropped, or with the
    /// storage failure that stopped it.
    pub thread: JoinHandle<Result<(), ReplicaError>>,
}

/// Opens the data directory `dir` and starts the driver thread.
pub fn start(
    dir: &Path,
    config: DriverConfig,
    outbox: Box<dyn Outbox>,
    metrics: Arc<Metrics>,
) -> Result<Driver, ReplicaError> {
    let fresh_id = crate::ids::fresh_node_id();
    let policy = config.snapshots;
    let replica = Replica::open_with(
        dir,
        &config.name,
        fresh_id,
        config.raft_config(fresh_id),
        config.db,
        config.faults,
    )?
    .with_snapshot_threshold(policy.threshold_entries)
    .with_snapshot_threshold_bytes(policy.threshold_bytes)
    .with_compaction_tail_bytes(policy.compaction_tail_bytes)
    .with_change_log_retention(policy.watch_history_revisions)
    .with_compaction_tail(policy.compaction_tail_entries);
    let (db, snapshots) = replica.snapshot_source();
    let (requests, inbox) = crossbeam_channel::bounded(config.queue_capacity);
    let (internal_tx, internal) = channel();
    let snapshotter = Snapshotter::start(db.clone(), snapshots.clone(), {
        let internal_tx = internal_tx.clone();
        move |written| {
            let _ = internal_tx.send(Internal::SnapshotWritten(written));
        }
    })
    .map_err(|e| ReplicaError::Thread(e.to_string()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let replica = replica.with_leader_sync(LeaderSync::Deferred);
    let tick = config.timing.tick;
    // Rings the driver thread: for a commit index held back, or a request
    // queued for it.
    let doorbell = Arc::new(Doorbell::default());
    let notices = CommitNotices::new(config.timing.commit_notice_delay, doorbell.clone());
    let mut state = Loop::new(replica, config, outbox, metrics, stop.clone(), notices);
    state.inbox = Some(inbox.clone());
    state.internal = Some((internal_tx, internal));
    state.snapshotter = Some(snapshotter);
    let (view_tx, view) = watch::channel(state.view());
    state.published = Some(view_tx);
    let (failed_tx, failed) = watch::channel(false);
    state.failed = Some(failed_tx);
    let (changes, _) = tokio::sync::broadcast::channel(CHANGE_FEED_BATCHES);
    state.change_feed = Some(changes.clone());
    let span = state.span.clone();
    let rounds = Arc::new(Rounds::new(state, doorbell));
    let requests = Arc::new(Queue::new(requests, rounds.clone()));
    let syncer = Syncer::start(db.clone(), Arc::downgrade(&requests))
        .map_err(|e| ReplicaError::Thread(e.to_string()))?;
    rounds.lock()?.as_mut().expect("not stopped yet").syncer = Some(syncer);
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("raftcfg-driver".into())
            .spawn(move || span.in_scope(|| run(&rounds, inbox, tick, &stop)))
            .map_err(|e| ReplicaError::Thread(e.to_string()))?
    };
    Ok(Driver {
        handle: NodeHandle {
            requests,
            view,
            failed,
            changes,
            stop,
        },
        db,
        snapshots,
        thread,
    })
}

/// The driver's state.
struct Loop {
    replica: Replica,
    config: DriverConfig,
    outbox: Box<dyn Outbox>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    published: Option<watch::Sender<NodeView>>,
    /// Told when the driver stops on a failure.
    failed: Option<watch::Sender<bool>>,
    /// Where each round's applied changes go, for watchers.
    change_feed: Option<tokio::sync::broadcast::Sender<ChangeBatch>>,
    waiters: Waiters,
    /// Linearizable reads taken this round, sent as one ReadIndex.
    new_reads: Vec<PendingRead>,
    next_read_context: u64,
    transfers: Transfers,
    /// Addresses beyond the replicated directory.
    address_book: AddressBook,
    last_heard: BTreeMap<NodeId, Instant>,
    known_leader: Option<NodeId>,
    /// Whether this leader's own `SetMember` is pending.
    announcing: bool,
    /// Messages from the node's other threads, and a sender for them.
    internal: Option<(Sender<Internal>, Receiver<Internal>)>,
    /// Writes snapshot files.
    snapshotter: Option<Snapshotter>,
    /// Syncs what the leader stored without a sync.
    syncer: Option<Syncer>,
    /// When a commit index held back from followers is sent.
    notices: CommitNotices,
    /// When the snapshotter began the file it is writing, if it is.
    snapshot_started: Option<Instant>,
    /// No new snapshot is started before this (after a failed one).
    next_snapshot_attempt: Instant,
    /// Whether this node was removed from its cluster (see
    /// [`Loop::notice_removal`]).
    removed: bool,
    /// The queue's receiving end, for each round to take what waits.
    inbox: Option<crossbeam_channel::Receiver<Request>>,
    /// Whether the last round left requests queued (it took as many as
    /// one round may).
    backlog: bool,
    /// Whether every handle is gone (the driver then stops).
    queue_closed: bool,
    /// The failure a round met on another thread, for the driver thread
    /// to stop on.
    failure: Option<ReplicaError>,
    /// The span every round runs in, whichever thread runs it.
    span: tracing::Span,
}

impl Loop {
    fn new(
        replica: Replica,
        config: DriverConfig,
        outbox: Box<dyn Outbox>,
        metrics: Arc<Metrics>,
        stop: Arc<AtomicBool>,
        notices: CommitNotices,
    ) -> Self {
        let known_leader = replica.status().leader_id;
        let identity = replica.identity();
        let removed = replica.kv().removed().contains(&identity.node_id);
        let address_book = AddressBook::new(identity.node_id, config.address.clone());
        Self {
            replica,
            config,
            outbox,
            metrics,
            stop,
            published: None,
            failed: None,
            change_feed: None,
            waiters: Waiters::default(),
            new_reads: Vec::new(),
            next_read_context: 1,
            transfers: Transfers::default(),
            address_book,
            last_heard: BTreeMap::new(),
            known_leader,
            announcing: false,
            internal: None,
            snapshotter: None,
            syncer: None,
            notices,
            snapshot_started: None,
            next_snapshot_attempt: Instant::now(),
            removed,
            inbox: None,
            backlog: false,
            queue_closed: false,
            failure: None,
            // The span holds what never changes: a recorded field would be
            // appended to the span's fields again at every change.
            span: tracing::info_span!("node", id = %identity.node_id, member = %identity.name),
        }
    }

    /// One round: the requests waiting in the queue, then `own` (the
    /// calling thread's), a tick if `tick`, a late commit index (see
    /// [`CommitNotices`]), then the Readys, the outbox, the answers and a
    /// fresh view. A round with none of these does nothing (another thread
    /// took what woke the driver).
    fn round(&mut self, own: Option<Request>, tick: bool) -> Result<(), ReplicaError> {
        let idle = !self.answers_pending();
        let mut handled = 0;
        self.backlog = false;
        while handled < MAX_REQUESTS_PER_ROUND {
            let Some(inbox) = &self.inbox else { break };
            match inbox.try_recv() {
                Ok(request) => self.handle(request)?,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.queue_closed = true;
                    break;
                }
            }
            handled += 1;
        }
        self.backlog = handled == MAX_REQUESTS_PER_ROUND;
        if let Some(request) = own {
            self.handle(request)?;
            handled += 1;
        }
        // A removed member no longer times out into elections.
        if tick && !self.removed {
            self.tick();
        }
        let notices_late = self.notices.late(Instant::now());
        if notices_late {
            self.replica.send_commit_notices();
            self.notices.sent();
        }
        if handled == 0 && !tick && !notices_late {
            return Ok(());
        }
        self.handle_internal()?;
        self.send_read_index();
        self.process()?;
        // A write that came while nothing else was pending, alone.
        let lone_write = idle && self.new_reads.is_empty() && self.waiters.one_proposal_only();
        self.sync_leader_log(lone_write)?;
        let due = self.replica.raft().commit_notices_due();
        self.notices.after_round(due, Instant::now());
        self.after_round()?;
        self.notice_removal()?;
        self.start_snapshot_if_due();
        Ok(())
    }

    fn handle(&mut self, request: Request) -> Result<(), ReplicaError> {
        if self.removed {
            self.refuse_removed(request);
            return Ok(());
        }
        match request {
            Request::Propose { command, reply } => {
                let result = self.replica.propose(&command);
                // A follower's refusal is no proposal: the API forwards the
                // write to the leader, which counts it.
                if !matches!(result, Err(ProposalError::NotLeader { .. })) {
                    self.metrics.proposals.inc();
                }
                match result {
                    Ok(_) if self.config.faults.acks_early() => {
                        let _ = reply.send(Ok(crate::kv::Outcome::Written {
                            revision: crate::kv::Revision(0),
                        }));
                    }
                    Ok(index) => {
                        let term = self.replica.raft().term();
                        self.waiters.add_proposal(index, term, Waiter::Write(reply));
                    }
                    Err(e @ ProposalError::NotLeader { .. }) => {
                        let _ = reply.send(Err(self.refusal(e)));
                    }
                    Err(e) => {
                        self.metrics.proposals_failed.inc();
                        let _ = reply.send(Err(self.refusal(e)));
                    }
                }
            }
            Request::Read {
                query,
                consistency,
                reply,
            } => {
                if !self.initialized() {
                    let _ = reply.send(Err(DriverError::NotInitialized));
                } else if consistency == Consistency::Serializable
                    || self.config.faults.serves_stale_reads()
                {
                    let _ = reply.send(run_query(self.replica.kv(), query));
                } else {
                    self.new_reads.push(PendingRead { query, reply });
                }
            }
            Request::Step {
                messages,
                sender_url,
            } => {
                let now = Instant::now();
                for message in messages {
                    if let Some(url) = &sender_url {
                        self.address_book.learned(message.from, url);
                    }
                    self.last_heard.insert(message.from, now);
                    self.replica.step(message);
                }
            }
            Request::ChangeMembership {
                change,
                address,
                reply,
            } => self.change_membership(change, address, reply),
            Request::TransferLeader { to, reply } => self.transfer_leader(to, reply),
            Request::UpdateMember {
                id,
                peer_url,
                client_url,
                reply,
            } => self.update_member(id, peer_url, client_url, reply),
            Request::Bootstrap { reply } => {
                if self.initialized() {
                    let _ = reply.send(Err(DriverError::AlreadyInitialized));
                } else {
                    let cluster_id = crate::ids::fresh_cluster_id();
                    let id = self.replica.identity().node_id;
                    self.replica.bootstrap([id], cluster_id)?;
                    tracing::info!(%cluster_id, "bootstrapped a new cluster");
                    // The caller may ask at once what the node is now.
                    self.publish();
                    let _ = reply.send(Ok(cluster_id));
                }
            }
            Request::ForceNewCluster { reply } => {
                let answer = self.force_new_cluster()?;
                let _ = reply.send(answer);
            }
            Request::Barrier { reply } => {
                let _ = reply.send(Ok(()));
            }
            Request::Synced {
                index,
                term,
                outcome,
            } => {
                let took = outcome.map_err(ReplicaError::Sync)?;
                crate::metrics::observe(&self.metrics.fsync_seconds, took);
                self.replica.synced(index, term);
            }
        }
        Ok(())
    }

    /// Whether a proposal or a read taken earlier waits for its answer.
    fn answers_pending(&self) -> bool {
        !self.waiters.is_empty() || !self.new_reads.is_empty()
    }

    /// Makes durable what the leader stored unsynced: for a lone write, on
    /// this thread and now, after the round sent the entries to the
    /// followers; otherwise it asks the syncer thread.
    fn sync_leader_log(&mut self, lone_write: bool) -> Result<(), ReplicaError> {
        let (Some(syncer), Some((index, term))) = (&mut self.syncer, self.replica.unsynced())
        else {
            return Ok(());
        };
        if !lone_write {
            syncer.request(index, term);
            return Ok(());
        }
        let took = syncer
            .sync_here()
            .map_err(|e| ReplicaError::Sync(e.to_string()))?;
        crate::metrics::observe(&self.metrics.fsync_seconds, took);
        self.replica.synced(index, term);
        // Commits if a follower's copy was counted already.
        self.process()
    }

    /// Makes this node its cluster's only voter if it may be: it belongs
    /// to a cluster, knows no leader (a quorum would have one), and votes.
    /// The outer error is a storage failure, which stops the driver.
    fn force_new_cluster(&mut self) -> Result<Result<ForcedCluster, DriverError>, ReplicaError> {
        let status = self.replica.status();
        if !self.initialized() {
            return Ok(Err(DriverError::NotInitialized));
        }
        if let Some(leader) = status.leader_id {
            return Ok(Err(DriverError::HasLeader(leader)));
        }
        if !status.membership.is_voter(status.id) {
            return Ok(Err(DriverError::NotAVoter));
        }
        let forced = match self.replica.force_new_cluster() {
            Ok(forced) => forced,
            // Checked above; a refusal here changed nothing either.
            Err(ReplicaError::Force(ForceError::NotAVoter(_))) => {
                return Ok(Err(DriverError::NotAVoter));
            }
            Err(ReplicaError::Force(ForceError::NotInitialized)) => {
                return Ok(Err(DriverError::NotInitialized));
            }
            Err(error) => return Err(error),
        };
        tracing::warn!(
            cluster = %forced.cluster_id,
            removed = ?forced.removed,
            last_index = %forced.last_index,
            commit = %forced.commit,
            "forced a new cluster: this node is its only voter, keeping every entry up to the last index"
        );
        self.known_leader = None;
        self.last_heard.clear();
        self.publish();
        Ok(Ok(forced))
    }

    /// Answers a request to a removed member: nothing is done, and peer
    /// messages are dropped.
    fn refuse_removed(&self, request: Request) {
        let removed = DriverError::Removed;
        match request {
            Request::Propose { reply, .. } => drop(reply.send(Err(removed))),
            Request::Read { reply, .. } => drop(reply.send(Err(removed))),
            Request::ChangeMembership { reply, .. } => drop(reply.send(Err(removed))),
            Request::TransferLeader { reply, .. } => drop(reply.send(Err(removed))),
            Request::UpdateMember { reply, .. } => drop(reply.send(Err(removed))),
            Request::Bootstrap { reply } => drop(reply.send(Err(removed))),
            Request::ForceNewCluster { reply } => drop(reply.send(Err(removed))),
            Request::Barrier { reply } => drop(reply.send(Ok(()))),
            Request::Step { .. } | Request::Synced { .. } => {}
        }
    }

    /// Turns this member into a removed one once it learns it was removed:
    /// from its own `Remove` entry applied (a leader removing itself), or
    /// from a peer that answered its request `410 Gone`. Recorded durably,
    /// so it stays removed after a restart.
    fn notice_removal(&mut self) -> Result<(), ReplicaError> {
        if self.removed {
            return Ok(());
        }
        let id = self.replica.identity().node_id;
        let applied = self.replica.kv().removed().contains(&id);
        if !applied && !self.outbox.told_removed() {
            return Ok(());
        }
        if !applied {
            self.replica.record_removed(id)?;
        }
        self.removed = true;
        tracing::error!(
            cluster = ?self.replica.raft().cluster_id(),
            "this member was removed from its cluster: it serves nothing from now on; \
             to add it again, wipe its data directory and add it under its new id"
        );
        self.publish();
        Ok(())
    }

    /// Sends the view to the API's handlers.
    fn publish(&mut self) {
        let view = self.view();
        if let Some(published) = &self.published {
            published.send_replace(view);
        }
    }

    fn initialized(&self) -> bool {
        self.replica.raft().cluster_id().is_some()
    }

    /// Adopts snapshot files the snapshotter wrote and passes on how
    /// snapshot transfers ended.
    fn handle_internal(&mut self) -> Result<(), ReplicaError> {
        let Some((_, internal)) = &self.internal else {
            return Ok(());
        };
        let events: Vec<Internal> = internal.try_iter().collect();
        for event in events {
            match event {
                Internal::SnapshotWritten(written) => {
                    let started = self.snapshot_started.take();
                    self.metrics.snapshot_writing.set(0);
                    match written {
                        Ok(snapshot) => {
                            self.metrics.snapshots_taken.inc();
                            if let Some(started) = started {
                                crate::metrics::observe(
                                    &self.metrics.snapshot_seconds,
                                    started.elapsed(),
                                );
                            }
                            self.replica.adopt_snapshot(snapshot)?;
                        }
                        Err(crate::kv::SnapshotError::Restoring) => {}
                        Err(e) => {
                            tracing::error!(error = %e, "taking a snapshot failed; retrying in 10 s");
                            self.next_snapshot_attempt = Instant::now() + SNAPSHOT_RETRY;
                        }
                    }
                }
                Internal::SnapshotSent { to, delivered } => {
                    if !delivered {
                        self.metrics.snapshots_failed.inc();
                    }
                    self.replica.report_snapshot(to, delivered);
                }
            }
        }
        Ok(())
    }

    /// Asks the snapshotter for a snapshot file once one is due.
    fn start_snapshot_if_due(&mut self) {
        if self.snapshot_started.is_some()
            || Instant::now() < self.next_snapshot_attempt
            || !self.replica.snapshot_due()
        {
            return;
        }
        if let Some(snapshotter) = &self.snapshotter
            && snapshotter.request()
        {
            self.snapshot_started = Some(Instant::now());
            self.metrics.snapshot_writing.set(1);
        }
    }

    /// The driver error for a refusal of the core.
    fn refusal(&self, error: ProposalError) -> DriverError {
        match error {
            ProposalError::NotLeader { leader_hint } => {
                if self.initialized() {
                    DriverError::NotLeader {
                        leader: leader_hint,
                    }
                } else {
                    DriverError::NotInitialized
                }
            }
            other => DriverError::Refused(other),
        }
    }

    fn change_membership(
        &mut self,
        change: MembershipChange,
        address: Option<MemberAddress>,
        reply: tokio::sync::oneshot::Sender<Result<raftcfg_raft::LogIndex, DriverError>>,
    ) {
        if let (MembershipChange::AddLearner(id), Some(address)) = (change, &address)
            && let Some(clash) = self.clash(id, address)
        {
            let _ = reply.send(Err(DriverError::MemberRefused {
                refusal: MemberRefusal::Duplicate,
                message: clash,
            }));
            return;
        }
        let context = address
            .as_ref()
            .map_or_else(Bytes::new, |address| codec::encode(address).into());
        match self.replica.propose_membership(change, context) {
            Ok(index) => {
                if let (MembershipChange::AddLearner(id), Some(address)) = (change, address) {
                    self.address_book.adding(id, address);
                }
                let term = self.replica.raft().term();
                self.waiters
                    .add_proposal(index, term, Waiter::Membership(reply));
            }
            Err(e) => {
                let _ = reply.send(Err(self.refusal(e)));
            }
        }
    }

    /// Records member `id`'s new URLs under its recorded name, unless `id`
    /// is no member or another member uses them. (A leader re-announces
    /// the address it was started with, so its own is changed by
    /// restarting it with new flags.)
    fn update_member(
        &mut self,
        id: NodeId,
        peer_url: String,
        client_url: String,
        reply: tokio::sync::oneshot::Sender<Result<raftcfg_raft::LogIndex, DriverError>>,
    ) {
        let not_a_member = ProposalError::Membership(raftcfg_raft::MembershipError::NotAMember(id));
        if !self.replica.status().membership.contains(id) {
            let _ = reply.send(Err(self.refusal(not_a_member)));
            return;
        }
        let Some(known) = self.addresses().remove(&id) else {
            let _ = reply.send(Err(self.refusal(not_a_member)));
            return;
        };
        let address = MemberAddress {
            name: known.name,
            peer_url,
            client_url,
        };
        if let Some(clash) = self.clash(id, &address) {
            let _ = reply.send(Err(DriverError::MemberRefused {
                refusal: MemberRefusal::Duplicate,
                message: clash,
            }));
            return;
        }
        match self.replica.propose(&Command::SetMember {
            node_id: id,
            address,
        }) {
            Ok(index) => {
                let term = self.replica.raft().term();
                self.waiters
                    .add_proposal(index, term, Waiter::Membership(reply));
            }
            Err(e) => {
                let _ = reply.send(Err(self.refusal(e)));
            }
        }
    }

    /// What another member already uses of `address`, if anything: two
    /// members with one name or one URL would answer for each other.
    fn clash(&self, id: NodeId, address: &MemberAddress) -> Option<String> {
        let membership = self.replica.status().membership;
        self.addresses()
            .into_iter()
            .filter(|(other, _)| *other != id && membership.contains(*other))
            .find_map(|(other, known)| {
                let reused = if known.name == address.name {
                    format!("the name '{}'", address.name)
                } else if known.peer_url == address.peer_url {
                    format!("the peer URL {}", address.peer_url)
                } else if known.client_url == address.client_url {
                    format!("the client URL {}", address.client_url)
                } else {
                    return None;
                };
                Some(format!("{reused} is already member {other}'s; a node is added under its own name and URLs"))
            })
    }

    fn transfer_leader(
        &mut self,
        to: Option<NodeId>,
        reply: tokio::sync::oneshot::Sender<Result<NodeId, DriverError>>,
    ) {
        let status = self.replica.status();
        if status.role != Role::Leader {
            let _ = reply.send(Err(self.refusal(ProposalError::NotLeader {
                leader_hint: status.leader_id,
            })));
            return;
        }
        if self.transfers.busy() {
            let _ = reply.send(Err(DriverError::TransferInProgress));
            return;
        }
        let Some(target) = transfer::choose_target(&status, to) else {
            let _ = reply.send(Err(DriverError::NoTransferTarget));
            return;
        };
        if target == status.id {
            let _ = reply.send(Ok(target));
            return;
        }
        match self.replica.transfer_leadership(target) {
            Ok(()) => {
                let ticks = 3 * self.config.timing.election_ticks;
                self.transfers.start(target, ticks, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(self.refusal(e)));
            }
        }
    }

    fn tick(&mut self) {
        self.replica.tick();
        self.transfers.tick();
        self.waiters.forget_abandoned();
    }

    /// Sends one ReadIndex request for every linearizable read of the round.
    fn send_read_index(&mut self) {
        if self.new_reads.is_empty() {
            return;
        }
        let reads = std::mem::take(&mut self.new_reads);
        let context = ReadContext(self.next_read_context);
        self.next_read_context += 1;
        match self.replica.read_index(context) {
            Ok(()) => self.waiters.add_reads(context, reads),
            Err(e) => {
                let error = self.refusal(e);
                for read in reads {
                    let _ = read.reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Carries out the Readys, shipping messages as soon as each allows.
    fn process(&mut self) -> Result<(), ReplicaError> {
        let addresses = self.address_book.current(self.replica.kv().members());
        let reports = self.internal.as_ref().map(|(tx, _)| tx.clone());
        let Self {
            replica,
            outbox,
            metrics,
            ..
        } = self;
        replica.process_sending(&mut |messages| {
            ship(
                outbox.as_ref(),
                metrics,
                messages,
                &addresses,
                reports.as_ref(),
            )
        })
    }

    fn after_round(&mut self) -> Result<(), ReplicaError> {
        let effects = self.replica.take_effects();
        for latency in &effects.persist_latencies {
            crate::metrics::observe(&self.metrics.fsync_seconds, *latency);
        }
        for latency in &effects.apply_latencies {
            crate::metrics::observe(&self.metrics.apply_seconds, *latency);
        }
        self.metrics
            .snapshots_received
            .inc_by(effects.snapshots_installed);

        let leader_id = self.replica.raft().leader_id();
        if leader_id != self.known_leader {
            if leader_id.is_some() {
                self.metrics.leader_changes.inc();
            }
            let term = self.replica.raft().term();
            tracing::info!(leader = ?leader_id, %term, "leader changed");
            self.known_leader = leader_id;
        }
        self.address_book
            .forget_recorded(self.replica.kv().members());
        if effects
            .applied
            .iter()
            .any(|applied| matches!(applied.outcome, crate::kv::Outcome::MembershipChanged))
        {
            let membership = self.replica.status().membership;
            self.metrics.keep_peers(|peer| membership.contains(peer));
        }
        // Publish before answering anyone, so that a caller who got its
        // answer sees (at least) this round's state in the view.
        self.publish();
        if let Some(feed) = &self.change_feed
            && let (Some(first), Some(last)) = (effects.changes.first(), effects.changes.last())
        {
            let (first, last) = (first.revision, last.revision);
            let bytes: usize = effects.changes.iter().map(Change::value_bytes).sum();
            let changes = (bytes <= CHANGE_FEED_BATCH_BYTES).then_some(effects.changes);
            // No receiver (no watch open) is not an error.
            let _ = feed.send(Arc::new(AppliedChanges {
                first,
                last,
                changes,
            }));
        }

        let applied_index = self.replica.kv().applied_index();
        let failed = self
            .waiters
            .resolve_applied(&effects.applied, applied_index);
        self.metrics.proposals_failed.inc_by(failed);
        self.waiters
            .release_reads(&effects.reads, &effects.dropped_reads);
        self.waiters
            .serve_reads(self.replica.kv(), applied_index, run_query);
        self.transfers.leader_is(leader_id);
        // Proposes at most one entry: it shows in the next round's view.
        self.announce_if_needed();
        Ok(())
    }

    /// A leader makes sure the directory holds its own address (a founding
    /// member is in no `AddLearner` entry; a restarted one may have moved).
    fn announce_if_needed(&mut self) {
        self.announcing &= self.waiters.announcement_pending();
        if self.replica.raft().role() != Role::Leader || self.announcing {
            return;
        }
        let id = self.replica.identity().node_id;
        if self.replica.kv().members().get(&id) == Some(&self.config.address) {
            return;
        }
        let command = Command::SetMember {
            node_id: id,
            address: self.config.address.clone(),
        };
        if let Ok(index) = self.replica.propose(&command) {
            let term = self.replica.raft().term();
            self.waiters.add_proposal(index, term, Waiter::Announce);
            self.announcing = true;
        }
    }

    /// Every member's address (see [`AddressBook`]).
    fn addresses(&self) -> BTreeMap<NodeId, MemberAddress> {
        self.address_book.addresses(self.replica.kv().members())
    }

    fn view(&mut self) -> NodeView {
        let timeout = self.config.timing.election_timeout();
        let now = Instant::now();
        NodeView {
            identity: self.replica.identity(),
            status: self.replica.status(),
            addresses: self.address_book.current(self.replica.kv().members()),
            revision: self.replica.kv().revision(),
            healthy_peers: self
                .last_heard
                .iter()
                .filter(|(_, at)| now.duration_since(**at) <= timeout)
                .map(|(id, _)| *id)
                .collect::<BTreeSet<_>>(),
            stopped: None,
            removed: self.removed,
            removed_members: Arc::new(self.replica.kv().removed().clone()),
            auth: self.replica.kv().auth().clone(),
        }
    }
}

/// The driver thread: runs rounds for queued requests and ticks until the
/// node stops, then closes the queue and reports how it ended.
fn run(
    rounds: &Rounds,
    inbox: crossbeam_channel::Receiver<Request>,
    tick: Duration,
    stop: &AtomicBool,
) -> Result<(), ReplicaError> {
    let result = drive(rounds, tick, stop);
    // No round runs after this. The syncer may wait to hand in a sync:
    // closing the queue first lets it stop.
    let Some(mut state) = rounds.take() else {
        return result;
    };
    drop(inbox);
    state.inbox = None;
    state.syncer = None;
    if let Err(e) = &result {
        tracing::error!(error = %e, "the driver stopped");
        if let Some(view) = &state.published {
            view.send_modify(|view| view.stopped = Some(e.to_string()));
        }
        if let Some(failed) = &state.failed {
            failed.send_replace(true);
        }
    }
    result
}

/// Waits for a ring (see `queue`), the next tick or a held-back commit
/// index's deadline, then runs a round, until a stop, a failure (of a
/// round here or on another thread) or the last handle's drop.
fn drive(rounds: &Rounds, tick: Duration, stop: &AtomicBool) -> Result<(), ReplicaError> {
    let mut next_tick = Instant::now() + tick;
    let mut wake_at = next_tick;
    loop {
        // Rung or timed out, the round below finds out which.
        rounds.doorbell().wait_until(wake_at);
        let mut guard = rounds.lock()?;
        let Some(state) = guard.as_mut() else {
            return Ok(());
        };
        // Stopping from here on: no thread but this one runs a round on a
        // failed node while it is taken down.
        if let Some(failure) = state.failure.take() {
            stop.store(true, Ordering::Relaxed);
            return Err(failure);
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let now = Instant::now();
        let tick_due = now >= next_tick;
        if tick_due {
            next_tick += tick;
            // After a long stall, do not replay the missed ticks in a
            // burst (that would look like an instant election timeout).
            if now >= next_tick {
                next_tick = now + tick;
            }
        }
        state.notices.driver_awake();
        if let Err(failure) = state.round(None, tick_due) {
            stop.store(true, Ordering::Relaxed);
            return Err(failure);
        }
        if state.queue_closed {
            return Ok(());
        }
        wake_at = state.notices.driver_sleeps_until(next_tick, Instant::now());
        rounds.release(guard);
    }
}

/// Sends `messages`, grouped by destination, to the addresses known; a
/// snapshot goes on its own, streamed, and its end is reported to
/// `reports`.
fn ship(
    outbox: &dyn Outbox,
    metrics: &Metrics,
    messages: Vec<Message>,
    addresses: &BTreeMap<NodeId, MemberAddress>,
    reports: Option<&Sender<Internal>>,
) {
    let mut by_peer: BTreeMap<NodeId, Vec<Message>> = BTreeMap::new();
    for message in messages {
        if let MessageBody::InstallSnapshot { .. } = message.body {
            let to = message.to;
            match addresses.get(&to) {
                Some(address) if !address.peer_url.is_empty() => {
                    metrics.snapshots_sent.inc();
                    let reports = reports.cloned();
                    let done: SnapshotDone = Box::new(move |delivered| {
                        if let Some(reports) = reports {
                            let _ = reports.send(Internal::SnapshotSent { to, delivered });
                        }
                    });
                    outbox.send_snapshot(to, &address.peer_url, message, done);
                }
                _ => {
                    metrics.messages_unroutable.inc();
                }
            }
            continue;
        }
        by_peer.entry(message.to).or_default().push(message);
    }
    for (to, messages) in by_peer {
        match addresses.get(&to) {
            Some(address) if !address.peer_url.is_empty() => {
                outbox.send(to, &address.peer_url, messages);
            }
            _ => {
                metrics.messages_unroutable.inc_by(messages.len() as u64);
            }
        }
    }
}

/// Runs a read against the applied state.
fn run_query(kv: &KvStore, query: Query) -> Result<QueryResult, DriverError> {
    let storage = |e: crate::storage::StorageError| DriverError::Storage(e.to_string());
    let revision = kv.revision();
    Ok(match query {
        Query::Get(key) => QueryResult::Get(kv.get(&key).map_err(storage)?, revision),
        Query::List {
            prefix,
            start_after,
            limit,
        } => QueryResult::List(
            kv.list(&prefix, limit, start_after.as_ref())
                .map_err(storage)?,
            revision,
        ),
        Query::Changes {
            prefix,
            from,
            limit,
        } => match kv.changes_since(&prefix, from, limit) {
            Ok(page) => QueryResult::Changes(Ok(page), revision),
            Err(ChangesError::Compacted { compacted_to }) => {
                QueryResult::Changes(Err(compacted_to), revision)
            }
            Err(ChangesError::Storage(e)) => return Err(storage(e)),
        },
    })
}
