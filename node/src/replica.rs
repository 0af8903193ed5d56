//! [`Replica`]: one cluster member without its network — the Raft core on
//! RocksDB storage plus the key-value state machine, every `Ready` carried
//! out synchronously by the core's `handle_ready` (persist, send, apply).
//! The driver (`driver`) owns one: it feeds ticks, peer messages,
//! proposals and reads in, ships the outbox and answers the proposers whose
//! entries were applied. Nothing here does network I/O; the clock is read
//! only to time storage writes for the metrics.
//!
//! Snapshots are files (`kv::SnapshotDir`); the Raft log store keeps a
//! `SnapshotRef` to one. Taking a snapshot costs the state's size, so the
//! replica only says when one is due ([`Replica::snapshot_due`]); the
//! driver writes the file on another thread and hands it back with
//! [`Replica::adopt_snapshot`].

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

use raftcfg_raft::{
    BootstrapError, ClusterId, Config, Entry, ForceError, ForcedCluster, HardState, LeaderSync,
    LogIndex, LogStorage, LogStore, LogWrite, Membership, MembershipChange, Message, NodeId,
    ProposalError, RawNode, ReadContext, ReadState, ReadyHandler, Snapshot, SnapshotMetadata,
    StartError, Status, Term, bootstrap, force_new_cluster, handle_ready_with,
};

use crate::codec;
use crate::faults::Faults;
use crate::kv::{
    Applied, Change, Command, KvStore, RestoreError, Revision, SnapshotDir, SnapshotError,
    SnapshotRef, write_snapshot_file,
};
use crate::storage::{Db, DbOptions, ExpectedIdentity, Identity, RocksLogStore, StorageError};

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
    /// Forcing a new cluster was refused.
    #[error(transparent)]
    Force(#[from] ForceError),
    /// The driver thread could not be started.
    #[error("cannot start the driver thread: {0}")]
    Thread(String),
    /// Syncing a leader's log (stored unsynced) failed.
    #[error("syncing the Raft log failed: {0}")]
    Sync(String),
    /// A snapshot could not be installed into the key-value state.
    #[error("installing a snapshot failed: {0}")]
    Restore(#[from] RestoreError),
    /// A snapshot of the state could not be written.
    #[error("taking a snapshot failed: {0}")]
    Snapshot(#[from] SnapshotError),
    /// The snapshot folder could not be used.
    #[error("the snapshot folder {path} cannot be used: {source}")]
    SnapshotDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A Raft snapshot's data is not a reference to a snapshot file.
    #[error("the stored snapshot at index {index} does not name a snapshot file: {reason}")]
    SnapshotData {
        /// The snapshot's index.
        index: LogIndex,
        /// Why.
        reason: String,
    },
}

/// What carrying out `Ready`s produced, for the driver to act on.
#[derive(Debug, Default)]
pub struct Effects {
    /// Messages to send to peers.
    pub outbox: Vec<Message>,
    /// Outcomes of applied commands, by log index.
    pub applied: Vec<Applied>,
    /// The changes applied commands made to keys, in revision order.
    pub changes: Vec<Change>,
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
    snapshots: &'a SnapshotDir,
    effects: &'a mut Effects,
    send: &'a mut dyn FnMut(Vec<Message>),
    /// The payload size of each entry applied.
    entry_bytes: Vec<u64>,
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
        let started = Instant::now();
        match install(self.kv, self.snapshots, snapshot) {
            Ok(()) => {
                self.effects.snapshots_installed += 1;
                tracing::info!(
                    index = %snapshot.metadata.index,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "installed a snapshot from the leader"
                );
            }
            Err(e) => self.failure = Some(e),
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        if self.failure.is_some() {
            return;
        }
        let started = Instant::now();
        self.entry_bytes
            .extend(entries.iter().map(Entry::size_bytes));
        match self.kv.apply_with_changes(&entries) {
            Ok((applied, changes)) => {
                self.effects.apply_latencies.push(started.elapsed());
                self.effects.applied.extend(applied);
                self.effects.changes.extend(changes);
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
    snapshots: SnapshotDir,
    config: Config,
    /// Snapshot the state and compact the log once this many entries were
    /// applied since the last snapshot (0: never), plus this member's
    /// stagger (see [`Replica::with_snapshot_threshold`]).
    snapshot_threshold_entries: u64,
    /// Also snapshot once the entries applied since the last snapshot hold
    /// this many bytes (0: no such bound), so large values do not pile up
    /// gigabytes of log between snapshots.
    snapshot_threshold_bytes: u64,
    /// Bytes of the entries applied since the last snapshot was adopted.
    bytes_since_snapshot: u64,
    /// Revisions of the change log (for watches) kept behind the current
    /// one when a snapshot is taken.
    change_log_retention: u64,
    /// Log entries kept behind a snapshot at compaction.
    compaction_tail: u64,
    /// At most this many bytes of them.
    compaction_tail_bytes: u64,
    /// The sizes of the last `compaction_tail` entries applied, oldest
    /// first, to turn `compaction_tail_bytes` into a number of entries.
    recent_entry_bytes: VecDeque<u64>,
    /// The snapshot index the files were last cleaned up for.
    cleaned_for: LogIndex,
    /// When a leader's log writes are synced.
    leader_sync: LeaderSync,
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
        let db = DbOptions::default();
        Self::open_with(dir, name, fresh_node_id, config, db, Faults::default())
    }

    /// [`Replica::open`] with RocksDB set up as `db` says, and `faults`
    /// planted (tests simulate power loss). Each step of the start is
    /// logged with how long it took.
    pub fn open_with(
        dir: &Path,
        name: &str,
        fresh_node_id: NodeId,
        mut config: Config,
        db: DbOptions,
        faults: Faults,
    ) -> Result<Self, ReplicaError> {
        let step = Instant::now();
        let db = Db::open_with(dir, db, faults)?;
        tracing::info!(elapsed_ms = ms(step), "opened RocksDB in {}", dir.display());
        let snapshots = SnapshotDir::open(dir).map_err(|source| ReplicaError::SnapshotDir {
            path: dir.join("snapshots"),
            source,
        })?;
        let step = Instant::now();
        let mut store =
            RocksLogStore::open(db.clone(), &ExpectedIdentity::new(name, fresh_node_id))?;
        let mut kv = KvStore::open(db.clone())?;
        tracing::info!(
            elapsed_ms = ms(step),
            log_entries = store.entry_count(),
            applied = %kv.applied_index(),
            "read the Raft log and the state's metadata"
        );
        migrate_inline_snapshot(&mut store, &snapshots)?;
        // A crash between storing a received snapshot and installing it, or
        // in the middle of installing it, leaves the key-value state behind
        // the log or incomplete: install it now.
        let snapshot = store.snapshot().map_err(ReplicaError::Persist)?;
        if kv.restore_pending().is_some() || kv.applied_index() < snapshot.metadata.index {
            let step = Instant::now();
            install(&mut kv, &snapshots, &snapshot)?;
            tracing::info!(
                elapsed_ms = ms(step),
                index = %snapshot.metadata.index,
                "installed the stored snapshot, which the state had not caught up with"
            );
        }
        config.id = store.identity().node_id;
        // Each member draws its own election timeouts: a config made for a
        // placeholder id would give every member the same sequence, and
        // members timing out together split their votes.
        config.seed = config.id.get();
        config.applied = kv.applied_index();
        store.commit_at_least(config.applied)?;
        let step = Instant::now();
        let node = RawNode::new(config.clone(), store)?;
        tracing::info!(elapsed_ms = ms(step), "started the Raft node");
        let mut replica = Self {
            db,
            node,
            kv,
            snapshots,
            config,
            snapshot_threshold_entries: 0,
            snapshot_threshold_bytes: 0,
            bytes_since_snapshot: 0,
            change_log_retention: u64::MAX,
            compaction_tail: 0,
            compaction_tail_bytes: u64::MAX,
            recent_entry_bytes: VecDeque::new(),
            cleaned_for: LogIndex(0),
            leader_sync: LeaderSync::Inline,
            effects: Effects::default(),
        };
        replica.clean_up_snapshot_files()?;
        Ok(replica)
    }

    /// Takes a snapshot once this many entries were applied since the last
    /// one (0: never). Each member adds a stagger of up to half the
    /// threshold, drawn from its node id, so the members of a cluster do
    /// not all take their snapshots at the same index.
    pub fn with_snapshot_threshold(mut self, entries: u64) -> Self {
        self.snapshot_threshold_entries = entries.saturating_add(self.stagger(entries));
        self
    }

    /// Also takes a snapshot once the entries applied since the last one
    /// hold this many bytes (0: no such bound), staggered like the
    /// threshold in entries.
    pub fn with_snapshot_threshold_bytes(mut self, bytes: u64) -> Self {
        self.snapshot_threshold_bytes = bytes.saturating_add(self.stagger(bytes));
        self
    }

    /// Up to half of `threshold`, drawn from this member's id.
    fn stagger(&self, threshold: u64) -> u64 {
        match threshold / 2 {
            0 => 0,
            half => self.node.storage().identity().node_id.get() % (half + 1),
        }
    }

    /// Syncs a leader's log writes as `sync` says. With
    /// [`LeaderSync::Deferred`], whoever runs the replica syncs what
    /// [`Replica::unsynced`] names and reports it with [`Replica::synced`].
    pub fn with_leader_sync(mut self, sync: LeaderSync) -> Self {
        self.leader_sync = sync;
        self
    }

    /// The last entry stored but not yet synced, as (index, term).
    pub fn unsynced(&self) -> Option<(LogIndex, Term)> {
        self.node.unsynced()
    }

    /// The log is durable up to the entry (`index`, `term`).
    pub fn synced(&mut self, index: LogIndex, term: Term) {
        self.node.synced(index, term);
    }

    /// Keeps this many entries behind each snapshot when the log is
    /// compacted, so a follower a little behind gets entries, not a snapshot.
    pub fn with_compaction_tail(mut self, entries: u64) -> Self {
        self.compaction_tail = entries;
        self.node.storage_mut().set_compaction_tail(entries);
        self
    }

    /// Keeps at most this many bytes of entries behind each snapshot (fewer
    /// entries than the compaction tail when they are large).
    pub fn with_compaction_tail_bytes(mut self, bytes: u64) -> Self {
        self.compaction_tail_bytes = bytes;
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

    /// Makes this member its cluster's only voter, keeping its log, its
    /// state and its cluster id ([`force_new_cluster`]): the way back for
    /// a cluster whose other voters are lost for good. The Raft node
    /// starts again from the rewritten log and elects itself. A member
    /// already alone is left running as it is (its election under way).
    pub fn force_new_cluster(&mut self) -> Result<ForcedCluster, ReplicaError> {
        let identity = self.node.storage().identity();
        let expected = ExpectedIdentity::new(identity.name, identity.node_id);
        let mut store = RocksLogStore::open(self.db.clone(), &expected)?;
        store.commit_at_least(self.kv.applied_index())?;
        let forced = force_new_cluster(&mut store, identity.node_id)?;
        if forced.removed.is_empty() {
            return Ok(forced);
        }
        store.set_compaction_tail(self.compaction_tail);
        self.config.applied = self.kv.applied_index();
        self.node = RawNode::new(self.config.clone(), store)?;
        Ok(forced)
    }

    /// Founds a new one-member cluster whose state is the backup in the
    /// file `backup` (a snapshot of another cluster's state, from
    /// `GET /v1/snapshot`): the backup becomes the Raft snapshot at index 1.
    /// Refused unless the data directory holds no Raft state, or if the
    /// backup is not a whole, well-formed snapshot.
    pub fn restore_backup(
        &mut self,
        backup: &Path,
        cluster_id: ClusterId,
    ) -> Result<(), ReplicaError> {
        let summary = crate::kv::verify_state_file(backup, None)?;
        let identity = self.node.storage().identity();
        let id = identity.node_id;
        let expected = ExpectedIdentity::new(identity.name, id);
        let mut store = RocksLogStore::open(self.db.clone(), &expected)?;
        bootstrap(&mut store, [id], cluster_id)?;
        let reference = SnapshotRef {
            index: LogIndex(1),
            size: summary.size,
            digest: summary.digest,
        };
        let mut partial = self.snapshots.create_partial().map_err(snapshot_io)?;
        std::io::copy(
            &mut std::fs::File::open(backup).map_err(RestoreError::Read)?,
            &mut partial.file,
        )
        .map_err(snapshot_io)?;
        self.snapshots
            .commit(partial, &reference)
            .map_err(snapshot_io)?;
        let snapshot = Snapshot {
            metadata: SnapshotMetadata {
                index: LogIndex(1),
                term: Term(1),
                membership: Membership::with_voters([id]),
            },
            data: reference.encode(),
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
        install(&mut self.kv, &self.snapshots, &snapshot)?;
        self.config.applied = LogIndex(1);
        store.set_compaction_tail(self.compaction_tail);
        self.node = RawNode::new(self.config.clone(), store)?;
        Ok(())
    }

    /// Who this member is.
    pub fn identity(&self) -> Identity {
        let mut identity = self.node.storage().identity();
        identity.cluster_id = self.node.cluster_id();
        identity
    }

    /// The Raft node's state (see also the cheap getters of [`RawNode`]
    /// through [`Replica::raft`]).
    pub fn status(&self) -> Status {
        self.node.status()
    }

    /// The Raft node, for its cheap getters (term, role, leader).
    pub fn raft(&self) -> &RawNode<RocksLogStore> {
        &self.node
    }

    /// Records, durably, that member `id` was removed (this member, told
    /// so by a peer).
    pub fn record_removed(&mut self, id: NodeId) -> Result<(), ReplicaError> {
        Ok(self.kv.record_removed(id)?)
    }

    /// The key-value state, for reads.
    pub fn kv(&self) -> &KvStore {
        &self.kv
    }

    /// Advances the Raft clock by one tick.
    pub fn tick(&mut self) {
        self.node.tick();
    }

    /// Sends followers the commit index a leader held back from them.
    pub fn send_commit_notices(&mut self) {
        self.node.send_commit_notices();
    }

    /// Hands a peer's message to the Raft node.
    pub fn step(&mut self, message: Message) {
        self.node.step(message);
    }

    /// Tells the Raft node how sending a snapshot to `to` ended.
    pub fn report_snapshot(&mut self, to: NodeId, delivered: bool) {
        self.node.report_snapshot(to, delivered);
    }

    /// Proposes a command; its outcome appears in [`Effects::applied`] under
    /// the returned index once applied (a different entry at that index
    /// means the proposal was lost to a leader change).
    pub fn propose(&mut self, command: &Command) -> Result<LogIndex, ProposalError> {
        self.node.propose(codec::encode(command).into())
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
                snapshots: &self.snapshots,
                effects: &mut self.effects,
                send: &mut *send,
                entry_bytes: Vec::new(),
                failure: None,
            };
            let handled = handle_ready_with(&mut self.node, &mut applier, self.leader_sync)
                .map_err(ReplicaError::Persist)?;
            let failure = applier.failure;
            let entry_bytes = applier.entry_bytes;
            self.remember_entry_sizes(entry_bytes);
            let persisted = self.node.storage_mut().take_sync_latencies();
            self.effects.persist_latencies.extend(persisted);
            if let Some(failure) = failure {
                return Err(failure);
            }
            if !handled {
                return Ok(());
            }
            self.clean_up_snapshot_files()?;
        }
    }

    /// Whether enough entries (or bytes of entries) were applied since the
    /// last snapshot that the next should be taken.
    pub fn snapshot_due(&self) -> bool {
        let threshold = self.snapshot_threshold_entries;
        // The stored snapshot's index, not the log's start: with a tail
        // kept, the log starts before it.
        let by_entries = threshold != 0
            && self.node.applied().get()
                >= self.node.snapshot_index().get().saturating_add(threshold);
        let by_bytes = self.snapshot_threshold_bytes != 0
            && self.bytes_since_snapshot >= self.snapshot_threshold_bytes;
        by_entries || by_bytes
    }

    /// Records the sizes of entries just applied.
    fn remember_entry_sizes(&mut self, sizes: Vec<u64>) {
        for size in sizes {
            self.bytes_since_snapshot = self.bytes_since_snapshot.saturating_add(size);
            self.recent_entry_bytes.push_back(size);
            if self.recent_entry_bytes.len() as u64 > self.compaction_tail {
                self.recent_entry_bytes.pop_front();
            }
        }
    }

    /// How many entries to keep behind a snapshot: the compaction tail, or
    /// fewer if the latest entries hold more than the tail's bytes.
    fn compaction_tail_now(&self) -> u64 {
        let mut bytes = 0u64;
        let within = self
            .recent_entry_bytes
            .iter()
            .rev()
            .take_while(|size| {
                bytes = bytes.saturating_add(**size);
                bytes <= self.compaction_tail_bytes
            })
            .count() as u64;
        if within == self.recent_entry_bytes.len() as u64 {
            // Every entry seen (fewer than the tail since a restart, say)
            // fits in the tail's bytes: keep the whole tail.
            return self.compaction_tail;
        }
        within
    }

    /// What a snapshot is written from: the database and the snapshot
    /// folder, for [`write_snapshot_file`] on another thread.
    pub fn snapshot_source(&self) -> (Db, SnapshotDir) {
        (self.db.clone(), self.snapshots.clone())
    }

    /// Writes a snapshot file of the state now, on this thread, and adopts
    /// it (for tests and tools; the driver writes it elsewhere).
    pub fn snapshot_now(&mut self) -> Result<bool, ReplicaError> {
        let snapshot = write_snapshot_file(&self.db, &self.snapshots)?;
        self.adopt_snapshot(snapshot)
    }

    /// Hands the core a snapshot file written from this member's state:
    /// the next `Ready` stores it and compacts the log behind it, and
    /// followers behind it are sent it. A snapshot no newer than the stored
    /// one (a snapshot from the leader overtook it) is deleted instead.
    /// Returns whether it was adopted.
    pub fn adopt_snapshot(&mut self, snapshot: SnapshotRef) -> Result<bool, ReplicaError> {
        let tail = self.compaction_tail_now();
        self.node.storage_mut().set_compaction_tail(tail);
        match self.node.compact(snapshot.index, snapshot.encode()) {
            Ok(()) => self.bytes_since_snapshot = 0,
            Err(e) => {
                tracing::debug!(index = %snapshot.index, error = %e, "a snapshot was overtaken");
                let stored = self
                    .node
                    .storage()
                    .snapshot()
                    .map_err(ReplicaError::Persist)?;
                if stored.data != snapshot.encode() {
                    self.snapshots.remove(&snapshot).map_err(snapshot_io)?;
                }
                return Ok(false);
            }
        }
        let keep_from = self
            .kv
            .revision()
            .get()
            .saturating_sub(self.change_log_retention);
        self.kv.compact_changes(Revision(keep_from))?;
        Ok(true)
    }

    /// Deletes the files of snapshots older than the stored one, once it
    /// has changed.
    fn clean_up_snapshot_files(&mut self) -> Result<(), ReplicaError> {
        let stored = self.node.snapshot_index();
        if stored > self.cleaned_for {
            self.snapshots.remove_before(stored).map_err(snapshot_io)?;
            self.cleaned_for = stored;
        }
        Ok(())
    }

    /// Where the file of the stored snapshot is (none before the first).
    pub fn stored_snapshot_file(&self) -> Result<Option<(SnapshotRef, PathBuf)>, ReplicaError> {
        let snapshot = self
            .node
            .storage()
            .snapshot()
            .map_err(ReplicaError::Persist)?;
        if snapshot.data.is_empty() {
            return Ok(None);
        }
        let reference = snapshot_ref(&snapshot)?;
        Ok(Some((reference, self.snapshots.path_of(&reference))))
    }

    /// The snapshot folder.
    pub fn snapshot_dir(&self) -> &SnapshotDir {
        &self.snapshots
    }

    /// Takes what processing produced since the last call.
    pub fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.effects)
    }
}

/// Milliseconds since `started`, for the start-up log.
fn ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

fn snapshot_io(source: std::io::Error) -> ReplicaError {
    ReplicaError::Snapshot(SnapshotError::Write(source))
}

/// The file reference a Raft snapshot's data holds.
fn snapshot_ref(snapshot: &Snapshot) -> Result<SnapshotRef, ReplicaError> {
    SnapshotRef::decode(&snapshot.data).map_err(|e| ReplicaError::SnapshotData {
        index: snapshot.metadata.index,
        reason: e.to_string(),
    })
}

/// Replaces the key-value state with the Raft snapshot's file.
fn install(
    kv: &mut KvStore,
    snapshots: &SnapshotDir,
    snapshot: &Snapshot,
) -> Result<(), ReplicaError> {
    let reference = snapshot_ref(snapshot)?;
    let path = snapshots.path_of(&reference);
    crate::kv::verify_state_file(&path, Some(&reference))?;
    kv.restore_file(&path, snapshot.metadata.index)?;
    Ok(())
}

/// Earlier builds stored the state itself as the Raft snapshot's data:
/// move it into a snapshot file and store the reference instead.
fn migrate_inline_snapshot(
    store: &mut RocksLogStore,
    snapshots: &SnapshotDir,
) -> Result<(), ReplicaError> {
    let snapshot = store.snapshot().map_err(ReplicaError::Persist)?;
    if snapshot.data.is_empty() || SnapshotRef::is_reference(&snapshot.data) {
        return Ok(());
    }
    let summary = crate::kv::verify_state(&snapshot.data[..])?;
    let reference = SnapshotRef {
        index: snapshot.metadata.index,
        size: summary.size,
        digest: summary.digest,
    };
    let mut partial = snapshots.create_partial().map_err(snapshot_io)?;
    std::io::Write::write_all(&mut partial.file, &snapshot.data).map_err(snapshot_io)?;
    snapshots.commit(partial, &reference).map_err(snapshot_io)?;
    store
        .replace_snapshot_data(reference.encode())
        .map_err(ReplicaError::Persist)?;
    tracing::info!(
        index = %snapshot.metadata.index,
        bytes = summary.size,
        "moved the stored snapshot into a snapshot file"
    );
    Ok(())
}
