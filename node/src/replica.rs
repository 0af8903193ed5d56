//! [`Replica`]: one cluster member without its network — the Raft core on
//! RocksDB storage plus the key-value state machine, every `Ready` carried
//! out synchronously by the core's `handle_ready` (persist, send, apply).
//! The tokio driver (to come) owns one: it feeds ticks, peer messages,
//! proposals and reads in, ships the outbox and answers the proposers whose
//! entries were applied. Nothing here does network I/O or reads a clock.

use std::path::Path;

use bytes::Bytes;

use raftcfg_raft::{
    BootstrapError, ClusterId, Config, Entry, LogIndex, LogStorage, MembershipChange, Message,
    NodeId, ProposalError, RawNode, ReadContext, ReadState, ReadyHandler, Snapshot, StartError,
    Status, bootstrap, handle_ready,
};

use crate::kv::{Applied, Command, KvStore, RestoreError};
use crate::storage::{Db, ExpectedIdentity, Identity, RocksLogStore, StorageError};

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
}

/// The `ReadyHandler` of a replica: applies to the key-value state and
/// collects effects. A storage failure is kept and reported after the Ready.
struct Applier<'a> {
    kv: &'a mut KvStore,
    effects: &'a mut Effects,
    failure: Option<ReplicaError>,
}

impl ReadyHandler for Applier<'_> {
    fn send(&mut self, messages: Vec<Message>) {
        self.effects.outbox.extend(messages);
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) {
        if self.failure.is_none()
            && let Err(e) = self.kv.restore(&snapshot.data, snapshot.metadata.index)
        {
            self.failure = Some(e.into());
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        if self.failure.is_some() {
            return;
        }
        match self.kv.apply(&entries) {
            Ok(applied) => self.effects.applied.extend(applied),
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
    node: RawNode<RocksLogStore>,
    kv: KvStore,
    config: Config,
    /// Snapshot the state and compact the log every this many applied
    /// entries (0: never).
    snapshot_threshold_entries: u64,
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
        mut config: Config,
    ) -> Result<Self, ReplicaError> {
        let db = Db::open(dir)?;
        let store = RocksLogStore::open(db.clone(), &ExpectedIdentity::new(name, fresh_node_id))?;
        let mut kv = KvStore::open(db)?;
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
            node,
            kv,
            config,
            snapshot_threshold_entries: 0,
            effects: Effects::default(),
        })
    }

    /// Snapshots the key-value state and compacts the log behind it once
    /// this many entries were applied since the last snapshot (0: never).
    pub fn with_snapshot_threshold(mut self, entries: u64) -> Self {
        self.snapshot_threshold_entries = entries;
        self
    }

    /// Founds a new cluster with `voters` (usually this node alone).
    /// Refused unless the data directory holds no Raft state.
    pub fn bootstrap(
        self,
        voters: impl IntoIterator<Item = NodeId>,
        cluster_id: ClusterId,
    ) -> Result<Self, ReplicaError> {
        let Self {
            node,
            kv,
            config,
            snapshot_threshold_entries,
            ..
        } = self;
        let mut store = node.into_storage();
        bootstrap(&mut store, voters, cluster_id)?;
        let node = RawNode::new(config.clone(), store)?;
        Ok(Self {
            node,
            kv,
            config,
            snapshot_threshold_entries,
            effects: Effects::default(),
        })
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

    /// Asks for a linearizable read; see [`Effects::reads`].
    pub fn read_index(&mut self, context: ReadContext) -> Result<(), ProposalError> {
        self.node.read_index(context)
    }

    /// Carries out every pending `Ready`. On `Err` the replica must stop;
    /// reopening the data directory resumes from what was made durable.
    pub fn process(&mut self) -> Result<(), ReplicaError> {
        loop {
            let mut applier = Applier {
                kv: &mut self.kv,
                effects: &mut self.effects,
                failure: None,
            };
            let handled =
                handle_ready(&mut self.node, &mut applier).map_err(ReplicaError::Persist)?;
            if let Some(failure) = applier.failure {
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
        if threshold == 0 || status.applied.get() < status.snapshot_index.get() + threshold {
            return Ok(());
        }
        let data = self.kv.snapshot()?;
        // The only refusals are for an index not applied or already
        // compacted, which the check above rules out.
        self.node
            .compact(status.applied, data)
            .expect("the applied index is past the snapshot");
        Ok(())
    }

    /// Takes what processing produced since the last call.
    pub fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.effects)
    }
}
