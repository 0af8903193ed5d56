//! [`RawNode`]: the public face of the core. Inputs go in through its
//! methods; everything the application must do comes out as a [`Ready`].

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::config::{Config, PlantedBug};
use crate::entry::Entry;
use crate::error::{CompactError, ProposalError, StartError};
use crate::ids::{ClusterId, LogIndex, NodeId, Term};
use crate::membership::{Membership, MembershipChange};
use crate::message::{Message, ReadContext};
use crate::progress::ReplicationState;
use crate::protocol::{DropCounters, Raft, ReadState, Role};
use crate::snapshot::Snapshot;
use crate::storage::{HardState, LogStorage};

/// What the application must carry out, in this order: persist `snapshot`,
/// `entries`, `hard_state` and `compaction` durably; send `messages`;
/// install `snapshot` and apply `committed_entries`; serve `read_states`
/// once applied up to their index; then call [`RawNode::advance`].
#[derive(Debug, Default)]
pub struct Ready {
    /// The hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// A snapshot received from the leader: it replaces the log and the
    /// application state.
    pub snapshot: Option<Snapshot>,
    /// Entries to append durably (overwriting any from the first one's index on).
    pub entries: Vec<Entry>,
    /// The application's own snapshot to store; entries up to its index may go.
    pub compaction: Option<Snapshot>,
    /// Messages to send, after the writes above are durable.
    pub messages: Vec<Message>,
    /// Entries to apply, in order.
    pub committed_entries: Vec<Entry>,
    /// ReadIndex requests that may be served once applied up to their index.
    pub read_states: Vec<ReadState>,
    /// ReadIndex requests that failed (leadership changed); retry them.
    pub dropped_reads: Vec<ReadContext>,
}

/// A member's replication as seen by the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberProgress {
    /// The highest index known to match the leader's log.
    pub matched: LogIndex,
    /// The next index the leader will send.
    pub next: LogIndex,
    /// Whether the member is being sent a snapshot.
    pub snapshotting: bool,
}

/// A point-in-time view of a node, for status endpoints and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Its cluster, once known.
    pub cluster_id: Option<ClusterId>,
    /// Its role.
    pub role: Role,
    /// Its term.
    pub term: Term,
    /// The leader it follows (itself when leading), if known.
    pub leader_id: Option<NodeId>,
    /// Commit index.
    pub commit: LogIndex,
    /// Applied index.
    pub applied: LogIndex,
    /// Last log index.
    pub last_index: LogIndex,
    /// The term of the last log entry (with `last_index`, how up to date
    /// the log is, as elections compare it).
    pub last_term: Term,
    /// The index the log is compacted to.
    pub snapshot_index: LogIndex,
    /// The configuration in force.
    pub membership: Membership,
    /// Whether a configuration entry is appended but not committed.
    pub membership_change_pending: bool,
    /// The target of a leadership transfer in progress.
    pub transferring_to: Option<NodeId>,
    /// Replication of every other member (leader only).
    pub progress: BTreeMap<NodeId, MemberProgress>,
    /// Inputs the core dropped.
    pub drops: DropCounters,
}

/// What `ready()` handed out, so `advance()` can record it as done.
#[derive(Debug)]
struct Outstanding {
    hard_state: HardState,
    snapshot_index: Option<LogIndex>,
    applied_to: Option<LogIndex>,
}

/// A Raft node without I/O.
#[derive(Debug)]
pub struct RawNode<S> {
    raft: Raft<S>,
    persisted_hard_state: HardState,
    outstanding: Option<Outstanding>,
}

impl<S: LogStorage> RawNode<S> {
    /// Starts a node from its durable storage. `config.applied` is the
    /// index the application has applied.
    pub fn new(config: Config, storage: S) -> Result<Self, StartError> {
        let raft = Raft::new(config, storage)?;
        let persisted_hard_state = raft.hard_state();
        Ok(Self {
            raft,
            persisted_hard_state,
            outstanding: None,
        })
    }

    /// Advances the node's clock by one tick.
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Handles a message from a peer. Misaddressed, malformed and stale
    /// messages are dropped and counted in [`Status::drops`].
    pub fn step(&mut self, message: Message) {
        self.raft.step(message);
    }

    /// Proposes an application command; returns the index it will have if
    /// it commits. Only the leader accepts proposals.
    pub fn propose(&mut self, command: Bytes) -> Result<LogIndex, ProposalError> {
        self.raft.propose(command)
    }

    /// Proposes a single-server membership change carrying `context`.
    pub fn propose_membership(
        &mut self,
        change: MembershipChange,
        context: Bytes,
    ) -> Result<LogIndex, ProposalError> {
        self.raft.propose_membership(change, context)
    }

    /// Asks for a linearizable read; its [`ReadState`] arrives in a later `Ready`.
    pub fn read_index(&mut self, context: ReadContext) -> Result<(), ProposalError> {
        self.raft.read_index(context)
    }

    /// Hands leadership to `target` once it holds the whole log.
    pub fn transfer_leadership(&mut self, target: NodeId) -> Result<(), ProposalError> {
        self.raft.transfer_leadership(target)
    }

    /// The application's transport says how sending the snapshot to `to`
    /// ended: `delivered = false` makes the leader send it again once the
    /// follower answers (a lost report is covered by
    /// [`Config::snapshot_timeout_ticks`]).
    pub fn report_snapshot(&mut self, to: NodeId, delivered: bool) {
        self.raft.report_snapshot(to, delivered);
    }

    /// The application has a snapshot of its state at `index` (applied):
    /// the next `Ready` asks to store it and compact the log behind it.
    pub fn compact(&mut self, index: LogIndex, data: Bytes) -> Result<(), CompactError> {
        let applied = self.raft.log.applied;
        if index > applied {
            return Err(CompactError::NotApplied { index, applied });
        }
        let snapshot = self
            .raft
            .pending_compaction
            .as_ref()
            .map_or(self.raft.log.latest_snapshot_index(), |s| s.metadata.index);
        if index <= snapshot {
            return Err(CompactError::AlreadyCompacted { index, snapshot });
        }
        let snapshot = self.raft.snapshot_at(index, data);
        self.raft.pending_compaction = Some(snapshot);
        Ok(())
    }

    /// Whether [`RawNode::ready`] has anything to hand out.
    pub fn has_ready(&self) -> bool {
        let raft = &self.raft;
        raft.broadcast_pending
            || !raft.messages.is_empty()
            || !raft.log.unstable_entries().is_empty()
            || raft.log.unstable_snapshot().is_some()
            || raft.hard_state() != self.persisted_hard_state
            || raft.log.has_committed_entries()
            || !raft.read_states.is_empty()
            || !raft.dropped_reads.is_empty()
            || raft.pending_compaction.is_some()
    }

    /// Takes what the application must do now.
    ///
    /// # Panics
    /// If the previous `Ready` was not yet acknowledged with `advance()`.
    pub fn ready(&mut self) -> Ready {
        assert!(
            self.outstanding.is_none(),
            "ready() called before advance() acknowledged the previous Ready"
        );
        let raft = &mut self.raft;
        if raft.broadcast_pending {
            raft.broadcast_pending = false;
            raft.broadcast_append(false);
        }
        let hard_state = raft.hard_state();
        let snapshot = raft.log.unstable_snapshot().cloned();
        let committed_entries = raft.log.next_committed_entries(raft.config.max_apply_bytes);
        self.outstanding = Some(Outstanding {
            hard_state,
            snapshot_index: snapshot.as_ref().map(|s| s.metadata.index),
            applied_to: committed_entries.last().map(|e| e.index),
        });
        Ready {
            hard_state: (hard_state != self.persisted_hard_state).then_some(hard_state),
            snapshot,
            entries: raft.log.unstable_entries().to_vec(),
            compaction: raft.pending_compaction.take(),
            messages: std::mem::take(&mut raft.messages),
            committed_entries,
            read_states: std::mem::take(&mut raft.read_states),
            dropped_reads: std::mem::take(&mut raft.dropped_reads),
        }
    }

    /// Acknowledges that the last `Ready` was carried out.
    ///
    /// # Panics
    /// If there is no outstanding `Ready`.
    pub fn advance(&mut self) {
        self.advance_with(true);
    }

    /// Like [`RawNode::advance`], for a `Ready` whose log write was stored
    /// without a sync (a leader deferring its syncs, see
    /// [`crate::LeaderSync::Deferred`]): its entries count as this node's
    /// own copy only once [`RawNode::synced`] reports them durable.
    pub fn advance_unsynced(&mut self) {
        self.advance_with(false);
    }

    /// Whether storage holds entries a sync has yet to make durable.
    pub fn has_unsynced(&self) -> bool {
        self.raft.log.has_unsynced()
    }

    /// The last entry stored but not yet durable, as (index, term), if
    /// any: what a sync run now would make durable.
    pub fn unsynced(&self) -> Option<(LogIndex, Term)> {
        let log = &self.raft.log;
        if !log.has_unsynced() {
            return None;
        }
        let last = log.stored_last();
        let term = log
            .term(last)
            .unwrap_or_else(|e| panic!("the last stored entry has no term: {e}"));
        Some((last, term))
    }

    /// A sync made the log durable up to the entry (`index`, `term`), which
    /// [`RawNode::unsynced`] named: a leader may now count its own copy,
    /// and commit.
    pub fn synced(&mut self, index: LogIndex, term: Term) {
        let raft = &mut self.raft;
        if raft.log.synced_to(index, term) && raft.role == Role::Leader && raft.maybe_commit() {
            raft.broadcast_commit();
        }
    }

    fn advance_with(&mut self, synced: bool) {
        let done = self
            .outstanding
            .take()
            .expect("advance() called without an outstanding Ready");
        let raft = &mut self.raft;
        if synced {
            raft.log.persisted_all();
        } else {
            raft.log.stored_all();
        }
        self.persisted_hard_state = done.hard_state;
        if let Some(index) = done.snapshot_index {
            raft.log.applied_to(index);
        }
        if let Some(index) = done.applied_to {
            raft.log.applied_to(index);
        }
        if raft.role == Role::Leader && raft.maybe_commit() {
            raft.broadcast_commit();
        }
    }

    /// Whether this leader holds back a commit index some follower has yet
    /// to learn (see [`Config::defer_commit_notices`]).
    pub fn commit_notices_due(&self) -> bool {
        self.raft.commit_notices_due()
    }

    /// Sends each follower the commit index it has yet to learn; the next
    /// `Ready` carries the messages.
    pub fn send_commit_notices(&mut self) {
        self.raft.send_commit_notices();
    }

    /// The current term (cheaper than [`RawNode::status`]).
    pub fn term(&self) -> Term {
        self.raft.term
    }

    /// The current role (cheaper than [`RawNode::status`]).
    pub fn role(&self) -> Role {
        self.raft.role
    }

    /// The leader this node knows of (cheaper than [`RawNode::status`]).
    pub fn leader_id(&self) -> Option<NodeId> {
        self.raft.leader_id
    }

    /// The cluster this node belongs to, once it knows.
    pub fn cluster_id(&self) -> Option<ClusterId> {
        self.raft.cluster_id
    }

    /// The highest applied index.
    pub fn applied(&self) -> LogIndex {
        self.raft.log.applied
    }

    /// The index of the latest stored snapshot. With a compaction tail
    /// kept, the log starts before it ([`Status::snapshot_index`] is where
    /// the log is compacted to).
    pub fn snapshot_index(&self) -> LogIndex {
        self.raft.log.latest_snapshot_index()
    }

    /// The node's current state.
    pub fn status(&self) -> Status {
        let raft = &self.raft;
        Status {
            id: raft.id,
            cluster_id: raft.cluster_id,
            role: raft.role,
            term: raft.term,
            leader_id: raft.leader_id,
            commit: raft.log.committed,
            applied: raft.log.applied,
            last_index: raft.log.last_index(),
            last_term: raft.log.last_term(),
            snapshot_index: raft.log.snapshot_index(),
            membership: raft.configs.current().clone(),
            membership_change_pending: raft.configs.current_index() > raft.log.committed,
            transferring_to: raft.transfer.map(|(to, _)| to),
            progress: raft
                .progress
                .iter()
                .map(|(id, p)| {
                    (
                        *id,
                        MemberProgress {
                            matched: p.matched,
                            next: p.next,
                            snapshotting: matches!(p.state, ReplicationState::Snapshot { .. }),
                        },
                    )
                })
                .collect(),
            drops: raft.drops,
        }
    }

    pub(crate) fn planted(&self, bug: PlantedBug) -> bool {
        self.raft.config.planted(bug)
    }

    /// The log storage.
    pub fn storage(&self) -> &S {
        &self.raft.log.storage
    }

    /// The log storage, for carrying out a `Ready`.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.raft.log.storage
    }

    /// Stops the node and returns its storage (e.g. to bootstrap it and
    /// start again from what it now holds).
    pub fn into_storage(self) -> S {
        self.raft.log.storage
    }
}
