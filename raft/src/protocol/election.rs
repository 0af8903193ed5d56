//! Elections: PreVote rounds, real votes, and winning or losing them.

use crate::config::PlantedBug;
use crate::entry::EntryPayload;
use crate::ids::{LogIndex, NodeId, Term};
use crate::message::MessageBody;
use crate::progress::Progress;
use crate::storage::LogStorage;

use super::{Raft, Role};

/// The kinds of campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Campaign {
    /// Ask whether an election could be won, without changing term.
    PreVote,
    /// A real election, after a PreVote round was won.
    Election,
    /// A real election at the leader's request (leadership transfer).
    Transfer,
}

impl<S: LogStorage> Raft<S> {
    /// Starts a PreVote round, or an election (`Campaign::Election` after a
    /// PreVote round was won, `Campaign::Transfer` when the leader handed
    /// over leadership, which voters grant despite their leader lease).
    pub(super) fn campaign(&mut self, kind: Campaign) {
        if !self.may_campaign() {
            return;
        }
        let pre_vote = kind == Campaign::PreVote;
        let vote_term = if pre_vote {
            self.become_pre_candidate();
            self.term.next()
        } else {
            self.become_candidate();
            self.term
        };
        self.votes.insert(self.id, true);
        if self.election_won() {
            self.won_round(pre_vote);
            return;
        }
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        let me = self.id;
        let voters: Vec<NodeId> = self.configs.current().voters.iter().copied().collect();
        for voter in voters.into_iter().filter(|v| *v != me) {
            self.send_with_term(
                voter,
                vote_term,
                MessageBody::RequestVote {
                    pre_vote,
                    last_log_index,
                    last_log_term,
                    leadership_transfer: kind == Campaign::Transfer,
                },
            );
        }
    }

    fn become_pre_candidate(&mut self) {
        // Neither the term nor the vote changes: a PreVote round that fails
        // leaves no trace.
        self.fail_pending_reads();
        self.role = Role::PreCandidate;
        self.leader_id = None;
        self.votes.clear();
        self.progress.clear();
        self.transfer = None;
    }

    fn become_candidate(&mut self) {
        self.reset(self.term.next());
        self.role = Role::Candidate;
        self.vote = Some(self.id);
    }

    fn won_round(&mut self, pre_vote: bool) {
        if pre_vote {
            self.campaign(Campaign::Election);
        } else {
            self.become_leader();
        }
    }

    fn election_won(&self) -> bool {
        let granted = self.votes.iter().filter(|(_, g)| **g).map(|(id, _)| id);
        self.configs.current().is_quorum(granted)
    }

    fn election_lost(&self) -> bool {
        let rejected = self.votes.iter().filter(|(_, g)| !**g).map(|(id, _)| id);
        self.configs.current().is_quorum(rejected)
    }

    pub(super) fn become_leader(&mut self) {
        let term = self.term;
        self.reset(term);
        self.role = Role::Leader;
        self.leader_id = Some(self.id);
        self.sync_progress_with_config();
        // Committing this entry commits every earlier one (Raft §5.4.2).
        self.append_own([EntryPayload::Noop]);
    }

    /// Keeps one progress record per other member of the current configuration.
    pub(super) fn sync_progress_with_config(&mut self) {
        let next = self.log.last_index().next();
        let me = self.id;
        let members: Vec<NodeId> = self.configs.current().members().collect();
        self.progress.retain(|id, _| members.contains(id));
        for member in members.into_iter().filter(|m| *m != me) {
            self.progress
                .entry(member)
                .or_insert_with(|| Progress::new(next));
        }
    }

    pub(super) fn handle_vote_request(
        &mut self,
        from: NodeId,
        term: Term,
        pre_vote: bool,
        last_log_index: LogIndex,
        last_log_term: Term,
    ) {
        let free_to_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader_id.is_none())
            || (pre_vote && term > self.term);
        let log_ok = self.log.is_up_to_date(last_log_index, last_log_term)
            || self.config.planted(PlantedBug::VoteWithoutLogCheck);
        // A learner answers too: it may have been promoted in the
        // candidate's log without having received that entry yet. Its vote
        // counts only where the candidate's configuration makes it a voter.
        let granted = free_to_vote && log_ok;
        if granted && !pre_vote {
            self.vote = Some(from);
            self.election_elapsed = 0;
        }
        // A granted PreVote answers in the term asked about, so the
        // pre-candidate counts it; a refusal tells it our term.
        let reply_term = if granted { term } else { self.term };
        self.send_with_term(
            from,
            reply_term,
            MessageBody::RequestVoteResponse { pre_vote, granted },
        );
    }

    pub(super) fn handle_vote_response(&mut self, from: NodeId, pre_vote: bool, granted: bool) {
        let expected = match self.role {
            Role::PreCandidate => true,
            Role::Candidate => false,
            _ => {
                self.drops.stale += 1;
                return;
            }
        };
        if pre_vote != expected {
            self.drops.stale += 1;
            return;
        }
        self.votes.entry(from).or_insert(granted);
        if self.election_won() {
            self.won_round(pre_vote);
        } else if self.election_lost() {
            self.become_follower(self.term, None);
        }
    }

    pub(super) fn handle_timeout_now(&mut self, from: NodeId) {
        if self.role == Role::Leader || self.leader_id != Some(from) {
            self.drops.stale += 1;
            return;
        }
        self.campaign(Campaign::Transfer);
    }
}
