//! The leader's work: proposals, replication to each follower, commit,
//! heartbeats and CheckQuorum, membership changes, leadership transfer,
//! snapshot sending and ReadIndex confirmation.

use bytes::Bytes;

use crate::config::PlantedBug;
use crate::entry::{Entry, EntryPayload};
use crate::error::ProposalError;
use crate::ids::{LogIndex, NodeId, Term};
use crate::membership::{ConfigChange, MembershipChange};
use crate::message::{MessageBody, ReadContext};
use crate::progress::{Progress, ReplicationState};
use crate::storage::{LogStorage, StorageError};

use super::{Raft, ReadState, Role};

/// The most entries a learner may trail the commit index by and still be
/// promoted (about one pipeline of appends in flight).
pub(crate) const PROMOTABLE_LAG_ENTRIES: u64 = 256;

impl<S: LogStorage> Raft<S> {
    fn ensure_leader(&self) -> Result<(), ProposalError> {
        if self.role != Role::Leader {
            return Err(ProposalError::NotLeader {
                leader_hint: self.leader_id,
            });
        }
        if let Some((to, _)) = self.transfer {
            return Err(ProposalError::TransferInProgress { to });
        }
        Ok(())
    }

    /// Whether the leader has committed an entry of its own term.
    pub(crate) fn committed_in_term(&self) -> bool {
        self.log.term(self.log.committed) == Ok(self.term)
    }

    pub(crate) fn propose(&mut self, data: Bytes) -> Result<LogIndex, ProposalError> {
        self.ensure_leader()?;
        Ok(self.append_own([EntryPayload::Command(data)]))
    }

    pub(crate) fn propose_membership(
        &mut self,
        change: MembershipChange,
        context: Bytes,
    ) -> Result<LogIndex, ProposalError> {
        self.ensure_leader()?;
        let second_allowed = self.config.planted(PlantedBug::SecondPendingConfig);
        if self.configs.current_index() > self.log.committed && !second_allowed {
            return Err(ProposalError::MembershipChangeInProgress);
        }
        if !self.committed_in_term() {
            return Err(ProposalError::LeaderNotReady);
        }
        let config = self.configs.current().apply(change)?;
        if let MembershipChange::PromoteLearner(id) = change {
            // Caught up: streaming appends (not probing, not installing a
            // snapshot) and at most a pipeline's worth behind the commit
            // index. Under steady writes a learner is always a few entries
            // behind, so "has every committed entry" would rarely hold.
            let progress = self.progress.get(&id);
            let matched = progress.map_or(LogIndex(0), |p| p.matched);
            let streaming =
                progress.is_some_and(|p| matches!(p.state, ReplicationState::Replicate));
            let lag = self.log.committed.get().saturating_sub(matched.get());
            if !streaming || lag > PROMOTABLE_LAG_ENTRIES {
                return Err(ProposalError::LearnerNotCaughtUp {
                    id,
                    matched,
                    commit: self.log.committed,
                });
            }
        }
        Ok(self.append_own([EntryPayload::Config(ConfigChange {
            change,
            config,
            context,
        })]))
    }

    pub(crate) fn transfer_leadership(&mut self, target: NodeId) -> Result<(), ProposalError> {
        if self.role != Role::Leader {
            return Err(ProposalError::NotLeader {
                leader_hint: self.leader_id,
            });
        }
        if target == self.id {
            return Ok(());
        }
        if !self.configs.current().is_voter(target) {
            return Err(ProposalError::NotAVoter(target));
        }
        if self.transfer.is_some_and(|(to, _)| to == target) {
            return Ok(());
        }
        self.transfer = Some((target, 0));
        self.continue_transfer(target);
        Ok(())
    }

    /// Sends TimeoutNow once the target holds the whole log; until then
    /// keeps replicating to it.
    fn continue_transfer(&mut self, target: NodeId) {
        let caught_up = self
            .progress
            .get(&target)
            .is_some_and(|p| p.matched == self.log.last_index());
        if caught_up || self.config.planted(PlantedBug::TimeoutNowToLaggingTarget) {
            self.send(target, MessageBody::TimeoutNow);
        } else {
            self.send_append(target, true);
        }
    }

    pub(crate) fn read_index(&mut self, context: ReadContext) -> Result<(), ProposalError> {
        match (self.role, self.leader_id) {
            (Role::Leader, _) => {
                self.leader_read(context, self.id);
                Ok(())
            }
            (Role::Follower, Some(leader)) => {
                self.send(leader, MessageBody::ReadIndexRequest { context });
                Ok(())
            }
            _ => Err(ProposalError::NotLeader {
                leader_hint: self.leader_id,
            }),
        }
    }

    pub(super) fn handle_read_request(&mut self, from: NodeId, context: ReadContext) {
        if self.role == Role::Leader {
            self.leader_read(context, from);
        } else {
            self.send(
                from,
                MessageBody::ReadIndexResponse {
                    context,
                    index: None,
                },
            );
        }
    }

    fn leader_read(&mut self, context: ReadContext, requester: NodeId) {
        if !self.committed_in_term() {
            // The commit index is not known to be current until an entry of
            // this term commits.
            self.reads.wait_for_term_commit(context, requester);
            return;
        }
        let index = self.log.committed;
        let alone = self.configs.current().voters.len() == 1 && self.is_voter();
        if alone || self.config.planted(PlantedBug::ReadIndexWithoutQuorum) {
            self.deliver_read(context, requester, index);
            return;
        }
        self.reads.start_round(context, requester, index);
        self.broadcast_heartbeat();
    }

    fn deliver_read(&mut self, context: ReadContext, requester: NodeId, index: LogIndex) {
        if requester == self.id {
            self.read_states.push(ReadState { context, index });
        } else {
            self.send(
                requester,
                MessageBody::ReadIndexResponse {
                    context,
                    index: Some(index),
                },
            );
        }
    }

    /// Releases reads whose heartbeat round a quorum of voters acknowledged.
    fn release_confirmed_reads(&mut self) {
        if !self.reads.has_pending() {
            return;
        }
        let config = self.configs.current();
        let mut acked: Vec<u64> = config
            .voters
            .iter()
            .map(|v| match self.progress.get(v) {
                _ if *v == self.id => self.reads.round,
                Some(p) => p.read_round_acked,
                None => 0,
            })
            .collect();
        acked.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = acked[config.quorum() - 1];
        for read in self.reads.release_up_to(confirmed) {
            self.deliver_read(read.context, read.requester, read.index);
        }
    }

    // ---- time ----

    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        let timeout = self.config.election_timeout_ticks;
        if self.election_elapsed >= timeout {
            self.election_elapsed = 0;
            if !self.quorum_recently_active() {
                self.become_follower(self.term, None);
                return;
            }
        }
        if let Some((target, elapsed)) = self.transfer {
            if elapsed + 1 >= timeout {
                self.transfer = None;
            } else {
                self.transfer = Some((target, elapsed + 1));
            }
        }
        self.tick_snapshot_transfers();
        if self.heartbeat_elapsed >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    /// CheckQuorum: whether a quorum of voters was heard from since the
    /// last check. Learners never count. Starts a new window.
    fn quorum_recently_active(&mut self) -> bool {
        let mut active = Vec::new();
        if self.is_voter() {
            active.push(self.id);
        }
        for (id, progress) in self.progress.iter_mut() {
            if progress.recently_active {
                active.push(*id);
            }
            progress.recently_active = false;
        }
        self.configs.current().is_quorum(&active)
    }

    /// A snapshot neither taken nor reported within the snapshot timeout
    /// is taken for lost: the follower is probed again, which sends it anew
    /// if it is still needed.
    fn tick_snapshot_transfers(&mut self) {
        let timeout = self.config.snapshot_timeout_ticks;
        for progress in self.progress.values_mut() {
            if let ReplicationState::Snapshot { ticks, .. } = &mut progress.state {
                *ticks += 1;
                if *ticks >= timeout {
                    progress.snapshot_failed();
                }
            }
        }
    }

    fn broadcast_heartbeat(&mut self) {
        let round = self.reads.round;
        let targets: Vec<(NodeId, LogIndex)> = self
            .progress
            .iter()
            .map(|(id, p)| (*id, p.matched))
            .collect();
        for (id, matched) in targets {
            let commit = matched.min(self.log.committed);
            self.commit_sent_to(id, commit);
            self.send(
                id,
                MessageBody::Heartbeat {
                    commit,
                    read_round: round,
                },
            );
        }
    }

    // ---- replication ----

    /// Records that `to` was sent a message that lets it learn `commit`.
    fn commit_sent_to(&mut self, to: NodeId, commit: LogIndex) {
        if let Some(progress) = self.progress.get_mut(&to) {
            progress.commit_sent = progress.commit_sent.max(commit);
        }
    }

    /// Whether a commit notice may go to the member behind `progress`.
    fn commit_notice_due(&self, progress: &Progress) -> bool {
        progress.commit_notice_due(
            self.log.committed,
            self.config.max_inflight_appends,
            self.config.max_inflight_bytes,
        )
    }

    /// Whether a held-back commit index is due to some follower (see
    /// [`crate::Config::defer_commit_notices`]).
    pub(crate) fn commit_notices_due(&self) -> bool {
        self.role == Role::Leader
            && self
                .progress
                .values()
                .any(|progress| self.commit_notice_due(progress))
    }

    /// Sends the commit index to each follower it is due to, in an append
    /// without entries if there are none to send.
    pub(crate) fn send_commit_notices(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let due: Vec<NodeId> = self
            .progress
            .iter()
            .filter(|(_, progress)| self.commit_notice_due(progress))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.send_append(id, true);
        }
    }

    /// What a leader sends when its commit index advances: new entries to
    /// every follower, and the commit index alone unless it is held back.
    pub(crate) fn broadcast_commit(&mut self) {
        self.broadcast_append(!self.config.defer_commit_notices);
    }

    /// Sends new entries (and, with `with_commit`, the commit index even
    /// without entries) to every other member.
    pub(crate) fn broadcast_append(&mut self, with_commit: bool) {
        let targets: Vec<NodeId> = self.progress.keys().copied().collect();
        for id in targets {
            self.send_append(id, with_commit);
        }
    }

    /// Sends the next entries to `to`: while replicating, as many appends as
    /// the in-flight limits allow; while probing, one. With `allow_empty`,
    /// an append without entries carries the commit index.
    pub(super) fn send_append(&mut self, to: NodeId, allow_empty: bool) {
        let mut allow_empty = allow_empty;
        while self.send_one_append(to, allow_empty) {
            allow_empty = false;
            let replicating = self
                .progress
                .get(&to)
                .is_some_and(|p| p.state == ReplicationState::Replicate);
            if !replicating {
                return;
            }
        }
    }

    /// Sends one append; returns whether it carried entries.
    fn send_one_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let (max_appends, max_bytes) = (
            self.config.max_inflight_appends,
            self.config.max_inflight_bytes,
        );
        let Some(progress) = self.progress.get(&to) else {
            return false;
        };
        if progress.is_paused(max_appends, max_bytes) {
            return false;
        }
        let next = progress.next;
        let prev_log_index = next.prev();
        let last = self.log.last_index();
        let prev_log_term = match self.log.term(prev_log_index) {
            Ok(term) => term,
            Err(StorageError::Compacted(_)) => {
                self.start_snapshot(to);
                return false;
            }
            Err(e) => panic!("leader log has no term at {prev_log_index} (last {last}): {e}"),
        };
        let entries = match self
            .log
            .entries(next, last.next(), self.config.max_append_bytes)
        {
            Ok(entries) => entries,
            Err(StorageError::Compacted(_)) => {
                self.start_snapshot(to);
                return false;
            }
            Err(e) => panic!("leader log lacks entries from {next}: {e}"),
        };
        if entries.is_empty() && !allow_empty {
            return false;
        }
        let carried_entries = !entries.is_empty();
        let bytes: u64 = entries.iter().map(Entry::size_bytes).sum();
        let sent_to = prev_log_index.plus(entries.len() as u64);
        if let Some(progress) = self.progress.get_mut(&to) {
            progress.sent_entries(sent_to, bytes.max(1));
        }
        let leader_commit = self.log.committed;
        // The follower takes the commit index up to the last entry sent.
        self.commit_sent_to(to, leader_commit.min(sent_to));
        self.send(
            to,
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            },
        );
        carried_entries
    }

    pub(super) fn handle_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        match_index: LogIndex,
        hint_index: LogIndex,
        hint_term: Term,
    ) {
        if self.role != Role::Leader {
            self.drops.stale += 1;
            return;
        }
        let probe_from = if success {
            LogIndex(0)
        } else {
            self.probe_point(hint_index, hint_term)
        };
        let Some(progress) = self.progress.get_mut(&from) else {
            self.drops.stale += 1;
            return;
        };
        progress.recently_active = true;
        if !success {
            if progress.reject(match_index, probe_from) {
                self.send_append(from, false);
            }
            return;
        }
        if match_index > self.log.last_index() {
            // The follower claims entries the leader never sent.
            self.drops.malformed += 1;
            return;
        }
        let advanced = progress.acknowledge(match_index);
        match progress.state {
            ReplicationState::Probe if advanced => progress.become_replicate(),
            ReplicationState::Snapshot { index, .. } if progress.matched >= index => {
                progress.become_replicate()
            }
            _ => {}
        }
        if advanced && self.maybe_commit() {
            self.broadcast_commit();
        } else {
            self.send_append(from, false);
        }
        if self.role == Role::Leader && self.transfer.is_some_and(|(to, _)| to == from) {
            self.continue_transfer(from);
        }
    }

    /// Where the leader's log may match a follower that rejected an append
    /// with the hint (`hint_index`, `hint_term`): the last index at or before
    /// the hint whose term is at most the hint's term.
    fn probe_point(&self, hint_index: LogIndex, hint_term: Term) -> LogIndex {
        let mut index = hint_index.min(self.log.last_index());
        loop {
            match self.log.term(index) {
                Ok(term) if term > hint_term && index > LogIndex(0) => index = index.prev(),
                _ => return index,
            }
        }
    }

    pub(super) fn handle_heartbeat_response(&mut self, from: NodeId, read_round: u64) {
        if self.role != Role::Leader {
            self.drops.stale += 1;
            return;
        }
        let last = self.log.last_index();
        let Some(progress) = self.progress.get_mut(&from) else {
            self.drops.stale += 1;
            return;
        };
        progress.recently_active = true;
        progress.read_round_acked = progress
            .read_round_acked
            .max(read_round.min(self.reads.round));
        // The follower is reachable: let one more append through even if
        // earlier ones were lost, and probe with an empty one if need be,
        // so a lost append is noticed by its rejection.
        progress.probe_sent = false;
        progress.free_oldest_inflight();
        if progress.matched < last {
            self.send_append(from, true);
        }
        self.release_confirmed_reads();
    }

    /// Commits the highest index replicated on a quorum of voters, if it is
    /// from the current term (Raft §5.4.2). Returns whether commit advanced.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let config = self.configs.current();
        if config.voters.is_empty() {
            return false;
        }
        let mut matched: Vec<LogIndex> = config
            .voters
            .iter()
            .map(|v| match self.progress.get(v) {
                _ if *v == self.id => self.log.persisted,
                Some(p) => p.matched,
                None => LogIndex(0),
            })
            .collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[config.quorum() - 1];
        if candidate <= self.log.committed {
            return false;
        }
        let current_term = self.log.term(candidate) == Ok(self.term);
        if !current_term
            && !self
                .config
                .planted(PlantedBug::CommitPreviousTermByCounting)
        {
            return false;
        }
        let was_committed_in_term = self.committed_in_term();
        self.log.commit_to(candidate);
        if !was_committed_in_term && self.committed_in_term() {
            for (context, requester) in self.reads.take_waiting() {
                self.leader_read(context, requester);
            }
        }
        self.step_down_if_removed();
        true
    }

    /// A leader whose own removal is committed hands over and steps down.
    fn step_down_if_removed(&mut self) {
        let removal_committed = self.configs.current_index() <= self.log.committed;
        if !removal_committed || self.configs.current().contains(self.id) {
            return;
        }
        let successor = self
            .progress
            .iter()
            .filter(|(id, _)| self.configs.current().is_voter(**id))
            .max_by_key(|(_, p)| p.matched)
            .map(|(id, _)| *id);
        self.broadcast_append(true);
        if let Some(successor) = successor {
            self.send(successor, MessageBody::TimeoutNow);
        }
        self.become_follower(self.term, None);
    }

    // ---- snapshots ----

    fn start_snapshot(&mut self, to: NodeId) {
        let snapshot = match self.log.storage.snapshot() {
            Ok(snapshot) => snapshot,
            Err(e) => panic!("cannot read the snapshot to send to {to}: {e}"),
        };
        let Some(progress) = self.progress.get_mut(&to) else {
            return;
        };
        progress.become_snapshot(snapshot.metadata.index);
        self.send(to, MessageBody::InstallSnapshot { snapshot });
    }

    /// The application says how sending the snapshot to `to` ended: a
    /// failed transfer is sent again (after a probe); a finished one waits
    /// for the follower's answer.
    pub(crate) fn report_snapshot(&mut self, to: NodeId, delivered: bool) {
        if self.role != Role::Leader || delivered {
            return;
        }
        if let Some(progress) = self.progress.get_mut(&to)
            && matches!(progress.state, ReplicationState::Snapshot { .. })
        {
            progress.snapshot_failed();
        }
    }
}
