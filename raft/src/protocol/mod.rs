//! The Raft state machine: roles, terms, and the dispatch of every input.
//! It owns no I/O: it reads the log through [`LogStorage`], and queues the
//! messages, reads and entries that `RawNode` hands out in a `Ready`.
//!
//! The protocol is split by concern: `election` (PreVote, votes, terms),
//! `leader` (replication, commit, membership, transfer, ReadIndex) and
//! `follower` (appending, heartbeats, whole snapshots).

mod election;
mod follower;
mod leader;

use std::collections::BTreeMap;

use bytes::Bytes;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::{Config, PlantedBug};
use crate::config_history::ConfigHistory;
use crate::entry::{Entry, EntryPayload};
use crate::error::StartError;
use crate::ids::{ClusterId, LogIndex, NodeId, Term};
use crate::log::RaftLog;
use crate::message::{Message, MessageBody, ReadContext};
use crate::progress::Progress;
use crate::read_index::ReadQueue;
use crate::snapshot::{Snapshot, SnapshotMetadata};
use crate::storage::LogStorage;

/// A node's role in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks whether it could win an election, without changing term.
    PreCandidate,
    /// Campaigns in a new term.
    Candidate,
    /// Leads the cluster in its term.
    Leader,
}

/// A ReadIndex request that may be served once the application has applied
/// up to `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The request's tag.
    pub context: ReadContext,
    /// Serve the read once applied up to here.
    pub index: LogIndex,
}

/// Counters of inputs the core refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    /// Messages for another node or another cluster.
    pub misaddressed: u64,
    /// Messages that contradict themselves (e.g. non-contiguous entries).
    pub malformed: u64,
    /// Messages from an older term or for a role this node no longer has.
    pub stale: u64,
    /// Messages carrying a term or log index at the largest value, which
    /// could never be followed by another (only a broken or hostile sender
    /// sends one; taking it would stop the cluster for good).
    pub overflowing: u64,
}

/// The protocol state of one node.
#[derive(Debug)]
pub(crate) struct Raft<S> {
    pub(crate) config: Config,
    pub(crate) id: NodeId,
    pub(crate) cluster_id: Option<ClusterId>,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) log: RaftLog<S>,
    pub(crate) role: Role,
    pub(crate) leader_id: Option<NodeId>,
    pub(crate) configs: ConfigHistory,
    /// Replication progress of every other member (leader only).
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    votes: BTreeMap<NodeId, bool>,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_election_timeout: u32,
    /// The target of a leadership transfer and the ticks it has taken.
    pub(crate) transfer: Option<(NodeId, u32)>,
    reads: ReadQueue,
    pub(crate) pending_compaction: Option<Snapshot>,
    /// New entries wait for the next `Ready` to be sent, so that proposals
    /// made between two `Ready`s travel in one `AppendEntries`.
    pub(crate) broadcast_pending: bool,
    pub(crate) messages: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) dropped_reads: Vec<ReadContext>,
    pub(crate) drops: DropCounters,
    rng: ChaCha8Rng,
}

impl<S: LogStorage> Raft<S> {
    pub(crate) fn new(config: Config, storage: S) -> Result<Self, StartError> {
        config.validate()?;
        let hard_state = storage.hard_state()?;
        let snapshot = storage.snapshot_metadata()?;
        let last = storage.last_index()?;
        if hard_state.commit > last || hard_state.commit < snapshot.index {
            return Err(StartError::Corrupt(format!(
                "commit index {} is outside the log {}..={}",
                hard_state.commit, snapshot.index, last
            )));
        }
        if config.applied > hard_state.commit || config.applied < snapshot.index {
            return Err(StartError::AppliedOutOfRange {
                applied: config.applied,
                snapshot: snapshot.index,
                commit: hard_state.commit,
            });
        }
        let configs = ConfigHistory::load(&storage)?;
        let log = RaftLog::new(storage, hard_state.commit, config.applied)?;
        let mut raft = Self {
            id: config.id,
            cluster_id: hard_state.cluster_id,
            term: hard_state.term,
            vote: hard_state.vote,
            log,
            role: Role::Follower,
            leader_id: None,
            configs,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: 0,
            transfer: None,
            reads: ReadQueue::default(),
            pending_compaction: None,
            broadcast_pending: false,
            messages: Vec::new(),
            read_states: Vec::new(),
            dropped_reads: Vec::new(),
            drops: DropCounters::default(),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
        };
        raft.randomize_election_timeout();
        Ok(raft)
    }

    pub(crate) fn hard_state(&self) -> crate::storage::HardState {
        crate::storage::HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
            cluster_id: self.cluster_id,
        }
    }

    /// Whether this node may campaign: it is a voter in its configuration.
    pub(crate) fn is_voter(&self) -> bool {
        self.configs.current().is_voter(self.id)
    }

    /// Whether this node may start an election: it votes in its latest
    /// configuration, or in the committed one. The second case is a node
    /// whose own removal is appended but not committed: the others may still
    /// count on it, and only it can finish committing the removal.
    pub(crate) fn may_campaign(&self) -> bool {
        self.is_voter() || self.configs.at(self.log.committed).is_voter(self.id)
    }

    fn randomize_election_timeout(&mut self) {
        let base = self.config.election_timeout_ticks;
        self.randomized_election_timeout =
            rand::RngExt::random_range(&mut self.rng, base..2 * base);
    }

    pub(crate) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_with_term(to, self.term, body);
    }

    fn send_with_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        self.messages.push(Message {
            cluster_id: self.cluster_id.unwrap_or_default(),
            from: self.id,
            to,
            term,
            body,
        });
    }

    // ---- role transitions ----

    fn reset(&mut self, term: Term) {
        assert!(
            term >= self.term,
            "term would go back from {} to {term}",
            self.term
        );
        self.fail_pending_reads();
        if self.term != term {
            self.term = term;
            self.vote = None;
        }
        self.leader_id = None;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomize_election_timeout();
        self.transfer = None;
        self.votes.clear();
        self.progress.clear();
        self.broadcast_pending = false;
    }

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        self.reset(term);
        self.role = Role::Follower;
        self.leader_id = leader;
    }

    /// Drops reads the leader can no longer confirm: its own are reported
    /// as dropped, followers' are answered with no index.
    fn fail_pending_reads(&mut self) {
        for (context, requester) in self.reads.drain_all() {
            if requester == self.id {
                self.dropped_reads.push(context);
            } else {
                self.send(
                    requester,
                    MessageBody::ReadIndexResponse {
                        context,
                        index: None,
                    },
                );
            }
        }
    }

    // ---- inputs ----

    pub(crate) fn tick(&mut self) {
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.election_elapsed += 1;
            if self.may_campaign() && self.election_elapsed >= self.randomized_election_timeout {
                self.election_elapsed = 0;
                self.campaign(election::Campaign::PreVote);
            }
        }
    }

    /// Whether a leader was heard from within the minimum election timeout.
    fn in_leader_lease(&self) -> bool {
        self.leader_id.is_some() && self.election_elapsed < self.config.election_timeout_ticks
    }

    pub(crate) fn step(&mut self, message: Message) {
        if !self.accept_identity(&message) {
            self.drops.misaddressed += 1;
            return;
        }
        if is_overflowing(&message) {
            self.drops.overflowing += 1;
            return;
        }
        if !is_well_formed(&message) {
            self.drops.malformed += 1;
            return;
        }
        if message.term > self.term {
            if !self.step_higher_term(&message) {
                return;
            }
        } else if message.term < self.term {
            self.step_lower_term(&message);
            return;
        }
        let Message {
            from, term, body, ..
        } = message;
        match body {
            MessageBody::RequestVote {
                pre_vote,
                last_log_index,
                last_log_term,
                ..
            } => self.handle_vote_request(from, term, pre_vote, last_log_index, last_log_term),
            MessageBody::RequestVoteResponse { pre_vote, granted } => {
                self.handle_vote_response(from, pre_vote, granted)
            }
            body @ (MessageBody::AppendEntries { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. }) => self.step_from_leader(from, body),
            MessageBody::AppendEntriesResponse {
                success,
                match_index,
                hint_index,
                hint_term,
            } => self.handle_append_response(from, success, match_index, hint_index, hint_term),
            MessageBody::HeartbeatResponse { read_round } => {
                self.handle_heartbeat_response(from, read_round)
            }
            MessageBody::TimeoutNow => self.handle_timeout_now(from),
            MessageBody::ReadIndexRequest { context } => self.handle_read_request(from, context),
            MessageBody::ReadIndexResponse { context, index } => {
                if self.role == Role::Leader {
                    self.drops.stale += 1;
                    return;
                }
                match index {
                    Some(index) => self.read_states.push(ReadState { context, index }),
                    None => self.dropped_reads.push(context),
                }
            }
        }
    }

    /// Checks `to` and the cluster id; a node without a cluster adopts the
    /// cluster of the first leader that addresses it.
    fn accept_identity(&mut self, message: &Message) -> bool {
        if message.to != self.id {
            return false;
        }
        match self.cluster_id {
            Some(id) => id == message.cluster_id,
            None if asserts_leadership(&message.body) && message.cluster_id.get() != 0 => {
                self.cluster_id = Some(message.cluster_id);
                true
            }
            None => false,
        }
    }

    /// A message from a later term. Returns whether to go on handling it.
    fn step_higher_term(&mut self, message: &Message) -> bool {
        if self.role == Role::Leader && self.config.planted(PlantedBug::LeaderIgnoresHigherTerm) {
            self.drops.stale += 1;
            return false;
        }
        match &message.body {
            MessageBody::RequestVote {
                pre_vote,
                leadership_transfer,
                ..
            } => {
                if !leadership_transfer && self.in_leader_lease() {
                    // A leader is alive: a disruptive candidate is ignored.
                    self.drops.stale += 1;
                    return false;
                }
                if !pre_vote || self.config.planted(PlantedBug::PreVoteMovesTerm) {
                    self.become_follower(message.term, None);
                }
            }
            MessageBody::RequestVoteResponse {
                pre_vote: true,
                granted: true,
            } => {}
            body if asserts_leadership(body) => {
                self.become_follower(message.term, Some(message.from));
            }
            _ => self.become_follower(message.term, None),
        }
        true
    }

    /// A message from an earlier term: tell a stale leader or pre-candidate
    /// the current term, ignore anything else.
    fn step_lower_term(&mut self, message: &Message) {
        self.drops.stale += 1;
        match message.body {
            ref body if asserts_leadership(body) => self.send(
                message.from,
                MessageBody::AppendEntriesResponse {
                    success: false,
                    match_index: LogIndex(0),
                    hint_index: LogIndex(0),
                    hint_term: Term(0),
                },
            ),
            MessageBody::RequestVote { pre_vote: true, .. } => self.send(
                message.from,
                MessageBody::RequestVoteResponse {
                    pre_vote: true,
                    granted: false,
                },
            ),
            _ => {}
        }
    }

    /// AppendEntries, Heartbeat or InstallSnapshot in the current term.
    fn step_from_leader(&mut self, from: NodeId, body: MessageBody) {
        match self.role {
            Role::Leader => {
                // Two leaders in one term cannot happen; the sender is confused.
                self.drops.malformed += 1;
                return;
            }
            Role::PreCandidate | Role::Candidate => self.become_follower(self.term, Some(from)),
            Role::Follower => {}
        }
        self.leader_id = Some(from);
        self.election_elapsed = 0;
        match body {
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => self.handle_append(from, prev_log_index, prev_log_term, entries, leader_commit),
            MessageBody::Heartbeat { commit, read_round } => {
                self.handle_heartbeat(from, commit, read_round)
            }
            MessageBody::InstallSnapshot { snapshot } => self.handle_snapshot(from, snapshot),
            _ => unreachable!("step_from_leader takes only leader messages"),
        }
    }

    /// Appends entries created by this node as leader.
    pub(crate) fn append_own(
        &mut self,
        payloads: impl IntoIterator<Item = EntryPayload>,
    ) -> LogIndex {
        let mut index = self.log.last_index();
        let term = self.term;
        let entries: Vec<Entry> = payloads
            .into_iter()
            .map(|payload| {
                index = index.next();
                Entry {
                    term,
                    index,
                    payload,
                }
            })
            .collect();
        self.record_configs(&entries);
        let last = self.log.append(entries);
        self.broadcast_pending = true;
        last
    }

    /// Configurations take effect as soon as their entry is appended.
    fn record_configs(&mut self, entries: &[Entry]) {
        for entry in entries {
            if let EntryPayload::Config(change) = &entry.payload {
                self.configs.push(entry.index, change.config.clone());
                if self.role == Role::Leader {
                    self.sync_progress_with_config();
                }
            }
        }
    }

    /// Replaces the log with a snapshot from the leader, unless the log
    /// already holds its last entry. Returns whether it was installed.
    fn restore(&mut self, snapshot: Snapshot) -> bool {
        let metadata = &snapshot.metadata;
        let discard = self
            .config
            .planted(PlantedBug::SnapshotDiscardsMatchingEntries);
        if self.log.matches(metadata.index, metadata.term) && !discard {
            self.log.commit_to(metadata.index);
            return false;
        }
        self.configs = ConfigHistory::new(metadata.index, metadata.membership.clone());
        self.pending_compaction = None;
        self.log.restore(snapshot);
        true
    }

    /// Builds the application's snapshot at `index` for compacting the log.
    pub(crate) fn snapshot_at(&mut self, index: LogIndex, data: Bytes) -> Snapshot {
        let term = self
            .log
            .term(index)
            .unwrap_or_else(|e| panic!("applied entry {index} has no term: {e}"));
        let membership = self.configs.at(index).clone();
        self.configs.compact_to(index);
        Snapshot {
            metadata: SnapshotMetadata {
                index,
                term,
                membership,
            },
            data,
        }
    }
}

/// Whether only a current leader sends this message.
fn asserts_leadership(body: &MessageBody) -> bool {
    matches!(
        body,
        MessageBody::AppendEntries { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. }
    )
}

/// Whether a message carries a term or log index that has no successor.
/// Terms and indexes only grow by one at a time from 0, so such a number
/// never comes from a correct member; adopting it would leave no next term
/// to campaign in or no next index to append at.
fn is_overflowing(message: &Message) -> bool {
    let at_max = |index: &LogIndex| index.get() == u64::MAX;
    if message.term.get() == u64::MAX {
        return true;
    }
    match &message.body {
        MessageBody::RequestVote {
            last_log_index,
            last_log_term,
            ..
        } => at_max(last_log_index) || last_log_term.get() == u64::MAX,
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => {
            at_max(prev_log_index)
                || prev_log_term.get() == u64::MAX
                || at_max(leader_commit)
                || entries
                    .iter()
                    .any(|e| at_max(&e.index) || e.term.get() == u64::MAX)
        }
        MessageBody::AppendEntriesResponse {
            match_index,
            hint_index,
            hint_term,
            ..
        } => at_max(match_index) || at_max(hint_index) || hint_term.get() == u64::MAX,
        MessageBody::Heartbeat { commit, .. } => at_max(commit),
        MessageBody::InstallSnapshot { snapshot } => {
            at_max(&snapshot.metadata.index) || snapshot.metadata.term.get() == u64::MAX
        }
        MessageBody::ReadIndexResponse { index, .. } => index.as_ref().is_some_and(at_max),
        MessageBody::RequestVoteResponse { .. }
        | MessageBody::HeartbeatResponse { .. }
        | MessageBody::TimeoutNow
        | MessageBody::ReadIndexRequest { .. } => false,
    }
}

/// Rejects messages that contradict themselves.
fn is_well_formed(message: &Message) -> bool {
    if message.term == Term(0) || message.from == message.to || message.from == NodeId(0) {
        return false;
    }
    match &message.body {
        MessageBody::RequestVote { last_log_term, .. } => *last_log_term <= message.term,
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            ..
        } => {
            let mut expected = prev_log_index.next();
            let mut term = *prev_log_term;
            for entry in entries {
                if entry.index != expected || entry.term < term || entry.term > message.term {
                    return false;
                }
                expected = expected.next();
                term = entry.term;
            }
            *prev_log_term <= message.term
        }
        MessageBody::InstallSnapshot { snapshot } => {
            snapshot.metadata.index > LogIndex(0) && snapshot.metadata.term <= message.term
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests;
