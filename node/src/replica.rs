//! [`Replica`]: one cluster member without its network — the Raft core on
//! RocksDB storage plus the key-value state machine, every `Ready` carried
//! out synchronously by the core's `handle_ready` (persist, send, apply).
//! The driver (`driver`) owns one: it feeds ticks, peer messages,
//! proposals and reads in, ships the outbox and answers the proposers whose
//! entries were applied. Nothing here does network I/O; the clock is read
//! only to time storage writes for the metrics.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;

use raftcfg_raft::{
    BootstrapError, ClusterId, Config, Entry, HardState, LogIndex, LogStorage, LogStore, LogWrite,
    Membership, MembershipChange, Message, NodeId, ProposalError, RawNode, ReadContext, ReadState,
    ReadyHandler, Snapshot, SnapshotMetadata, StartError, Status, Term, bootstrap, handle_ready,
};

use crate::kv::{Applied, Command, KvStore, RestoreError, Revision};
use crate::storage::{Db, ExpectedIdentity, Identity, RocksLogStore, StorageError, StorageOptions};

/// Why a replica could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The data directory could not be used.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The Raft core refused the stored state or the configuration.
    #[error("cannot start the Raft node: {0}")]
    Start(#[from] StartError),
    /// Writing the Raft log failed; the replica must stop.
    #[error("persisting the Raft log failed: {0}")]
    Persist(raftcfg_raft::StorageError),
    /// Bootstrapping was refused.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// The driver thread could not be started.
    #[error("cannot start the driver thread: {0}")]
    Thread(String),
    /// A snapshot could not be installed into the key-value state.
    #[error("installing a snapshot failed: {0}")]
    Restore(#[from] RestoreError),
}

/// What carrying out `Ready`s produced, for the driver to act on.
#[derive(Debug, Default)]
pub struct Effects {
    /// Messages to send to peers.
    pub outbox: Vec<Message>,
    /// Outcomes of applied commands, by log index.
    pub applied: Vec<Applied>,
    /// ReadIndex requests that may be served once the key-value state has
    /// applied up to their index (on a follower it may still be behind).
    pub reads: Vec<ReadState>,
    /// ReadIndex requests that failed and must be retried.
    pub dropped_reads: Vec<ReadContext>,
    /// How long each synced write of the Raft log took.
    pub persist_latencies: Vec<Duration>,
    /// How long each batch of committed entries took to apply.
    pub apply_latencies: Vec<Duration>,
    /// Snapshots installed from the leader.
    pub snapshots_installed: u64,
}

/// The `ReadyHandler` of a replica: applies to the key-value state, hands
/// messages to `send` (at once: a leader's appends go out before its own
/// fsync) and collects the other effects. A storage failure is kept and
/// reported after the Ready.
struct Applier<'a> {
    kv: &'a mut KvStore,
    effects: &'a mut Effects,
    send: &'a mut dyn FnMut(Vec<Message>),
    failure: Option<ReplicaError>,
}

impl ReadyHandler for Applier<'_> {
    fn send(&mut self, messages: Vec<Message>) {
        (self.send)(messages);
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) {
        if self.failure.is_some() {
            return;
        }
        match self.kv.restore(&snapshot.data, snapshot.metadata.index) {
            Ok(()) => self.effects.snapshots_installed += 1,
            Err(e) => self.failure = Some(e.into()),
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        if self.failure.is_some() {
            return;
        }
        let started = Instant::now();
        match self.kv.apply(&entries) {
            Ok(applied) => {
                self.effects.apply_latencies.push(started.elapsed());
                self.effects.applied.extend(applied);
            }
            Err(e) => self.failure = Some(e.into()),
        }
    }

    fn release_reads(&mut self, ready: Vec<ReadState>, dropped: Vec<ReadContext>) {
        self.effects.reads.extend(ready);
        self.effects.dropped_reads.extend(dropped);
    }
}

/// One member: Raft node, log store and key-value state.
pub struct Replica {
    db: Db,
    node: RawNode<RocksLogStore>,
    kv: KvStore,
    config: Config,
    /// Snapshot the state and compact the log every this many applied
    /// entries (0: never).
    snapshot_threshold_entries: u64,
    /// Revisions of the change log (for watches) kept behind the current
    /// one when a snapshot is taken.
    change_log_retention: u64,
    /// Log entries kept behind a snapshot at compaction.
    compaction_tail: u64,
    effects: Effects,
}

impl Replica {
    /// Opens (or creates) the data directory `dir` for the member `name`.
    /// `fresh_node_id` is used only if the directory is new. `config` gives
    /// the timings and limits; its id and applied index are filled in.
    pub fn open(
        dir: &Path,
        name: &str,
        fresh_node_id: NodeId,
        config: Config,
    ) -> Result<Self, ReplicaError> {
        Self::open_with(dir, name, fresh_node_id, config, StorageOptions::default())
    }

    /// [`Replica::open`] with storage options (tests simulate power loss).
    pub fn open_with(
        dir: &Path,
        name: &str,
        fresh_node_id: NodeId,
        mut config: Config,
        storage: StorageOptions,
    ) -> Result<Self, ReplicaError> {
        let db = Db::open_with(dir, storage)?;
        let store = RocksLogStore::open(db.clone(), &ExpectedIdentity::new(name, fresh_node_id))?;
        let mut kv = KvStore::open(db.clone())?;
        // A crash between storing a received snapshot and installing it
        // leaves the key-value state behind the log: install it now.
        let snapshot = store.snapshot().map_err(ReplicaError::Persist)?;
        if kv.applied_index() < snapshot.metadata.index {
            kv.restore(&snapshot.data, snapshot.metadata.index)?;
        }
        config.id = store.identity().node_id;
        config.applied = kv.applied_index();
        let node = RawNode::new(config.clone(), store)?;
        Ok(Self {
            db,
            node,
            kv,
            config,
            snapshot_threshold_entries: 0,
            change_log_retention: u64::MAX,
            compaction_tail: 0,
            effects: Effects::default(),
        })
    }

    /// Snapshots the key-value state and compacts the log behind it once
    /// this many entries were applied since the last snapshot (0: never).
    pub fn with_snapshot_threshold(mut self, entries: u64) -> Self {
        self.snapshot_threshold_entries = entries;
        self
    }

    /// Keeps this many entries behind each snapshot when the log is
    /// compacted, so a follower a little behind gets entries, not a snapshot.
    pub fn with_compaction_tail(mut self, entries: u64) -> Self {
        self.compaction_tail = entries;
        self.node.storage_mut().set_compaction_tail(entries);
        self
    }

    /// Keeps this many revisions of the change log behind the current one
    /// each time a snapshot is taken; older ones are compacted (watches
    /// from there get `Compacted`).
    pub fn with_change_log_retention(mut self, revisions: u64) -> Self {
        self.change_log_retention = revisions;
        self
    }

    /// Founds a new cluster with `voters` (usually this node alone).
    /// Refused unless the data directory holds no Raft state; on a refusal
    /// the replica is unchanged.
    pub fn bootstrap(
        &mut self,
        voters: impl IntoIterator<Item = NodeId>,
        cluster_id: ClusterId,
    ) -> Result<(), ReplicaError> {
        let identity = self.node.storage().identity();
        let expected = ExpectedIdentity::new(identity.name, identity.node_id);
        let mut store = RocksLogStore::open(self.db.clone(), &expected)?;
        bootstrap(&mut store, voters, cluster_id)?;
        store.set_compaction_tail(self.compaction_tail);
        self.node = RawNode::new(self.config.clone(), store)?;
        Ok(())
    }

    /// Founds a new one-member cluster whose state is `backup` (a snapshot
    /// of another cluster's state, from `GET /v1/snapshot`): the backup
    /// becomes the Raft snapshot at index 1. Refused unless the data
    /// directory holds no Raft state, or if the backup is damaged.
    pub fn restore_backup(
        &mut self,
        backup: Bytes,
        cluster_id: ClusterId,
    ) -> Result<(), ReplicaError> {
        KvStore::check_snapshot(&backup)?;
        let identity = self.node.storage().identity();
        let id = identity.node_id;
        let expected = ExpectedIdentity::new(identity.name, id);
        let mut store = RocksLogStore::open(self.db.clone(), &expected)?;
        bootstrap(&mut store, [id], cluster_id)?;
        let snapshot = Snapshot {
            metadata: SnapshotMetadata {
                index: LogIndex(1),
                term: Term(1),
                membership: Membership::with_voters([id]),
            },
            data: backup,
        };
        let hard_state = HardState {
            term: Term(1),
            vote: None,
            commit: LogIndex(1),
            cluster_id: Some(cluster_id),
        };
        store
            .persist(LogWrite {
                snapshot: Some(&snapshot),
                entries: &[],
                hard_state: Some(&hard_state),
                compaction: None,
            })
            .map_err(ReplicaError::Persist)?;
        self.kv.restore(&snapshot.data, LogIndex(1))?;
        self.config.applied = LogIndex(1);
        store.set_compaction_tail(self.compaction_tail);
        self.node = RawNode::new(self.config.clone(), store)?;
        Ok(())
    }

    /// Who this member is.
    pub fn identity(&self) -> Identity {
        let mut identity = self.node.storage().identity();
        identity.cluster_id = self.node.status().cluster_id;
        identity
    }

    /// The Raft node's state.
    pub fn status(&self) -> Status {
        self.node.status()
    }

    /// The key-value state, for reads.
    pub fn kv(&self) -> &KvStore {
        &self.kv
    }

    /// Advances the Raft clock by one tick.
    pub fn tick(&mut self) {
        self.node.tick();
    }

    /// Hands a peer's message to the Raft node.
    pub fn step(&mut self, message: Message) {
        self.node.step(message);
    }

    /// Proposes a command; its outcome appears in [`Effects::applied`] under
    /// the returned index once applied (a different entry at that index
    /// means the proposal was lost to a leader change).
    pub fn propose(&mut self, command: &Command) -> Result<LogIndex, ProposalError> {
        self.node.propose(command.encode())
    }

    /// Proposes a single-server membership change; `context` travels with
    /// it in the log (the node will put the member's addresses there).
    pub fn propose_membership(
        &mut self,
        change: MembershipChange,
        context: Bytes,
    ) -> Result<LogIndex, ProposalError> {
        self.node.propose_membership(change, context)
    }

    /// Starts handing leadership to `target` (a caught-up voter).
    pub fn transfer_leadership(&mut self, target: NodeId) -> Result<(), ProposalError> {
        self.node.transfer_leadership(target)
    }

    /// Asks for a linearizable read; see [`Effects::reads`].
    pub fn read_index(&mut self, context: ReadContext) -> Result<(), ProposalError> {
        self.node.read_index(context)
    }

    /// Carries out every pending `Ready`, collecting the messages to send
    /// in [`Effects::outbox`]. On `Err` the replica must stop; reopening the
    /// data directory resumes from what was made durable.
    pub fn process(&mut self) -> Result<(), ReplicaError> {
        let mut outbox = Vec::new();
        let result = self.process_sending(&mut |messages| outbox.extend(messages));
        self.effects.outbox.extend(outbox);
        result
    }

    /// Like [`Replica::process`], but hands each batch of messages to `send`
    /// as soon as the Ready allows, so a leader's appends reach followers
    /// while its own write is still being synced.
    pub fn process_sending(
        &mut self,
        send: &mut dyn FnMut(Vec<Message>),
    ) -> Result<(), ReplicaError> {
        loop {
            let mut applier = Applier {
                kv: &mut self.kv,
                effects: &mut self.effects,
                send: &mut *send,
                failure: None,
            };
            let handled =
                handle_ready(&mut self.node, &mut applier).map_err(ReplicaError::Persist)?;
            let failure = applier.failure;
            let persisted = self.node.storage_mut().take_sync_latencies();
            self.effects.persist_latencies.extend(persisted);
            if let Some(failure) = failure {
                return Err(failure);
            }
            if !handled {
                return Ok(());
            }
            self.snapshot_if_due()?;
        }
    }

    /// Hands the core a snapshot of the state at the applied index once
    /// enough entries were applied since the last one; the next `Ready`
    /// stores it and compacts the log. Followers behind it are sent it.
    fn snapshot_if_due(&mut self) -> Result<(), ReplicaError> {
        let threshold = self.snapshot_threshold_entries;
        let status = self.node.status();
        // The stored snapshot's index, not the log's start: with a tail
        // kept, the log starts before it.
        let snapshot_index = self
            .node
            .storage()
            .snapshot_metadata()
            .map_err(ReplicaError::Persist)?
            .index;
        if threshold == 0 || status.applied.get() < snapshot_index.get() + threshold {
            return Ok(());
        }
        let data = self.kv.snapshot()?;
        // The only refusals are for an index not applied or already
        // compacted, which the check above rules out.
        self.node
            .compact(status.applied, data)
            .expect("the applied index is past the snapshot");
        let keep_from = self
            .kv
            .revision()
            .get()
            .saturating_sub(self.change_log_retention);
        self.kv.compact_changes(Revision(keep_from))?;
        Ok(())
    }

    /// Takes what processing produced since the last call.
    pub fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.effects)
    }
}
