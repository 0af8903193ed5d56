//! ReadIndex bookkeeping on the leader: reads wait until the leader has
//! committed an entry of its term, then until a quorum of voters has
//! acknowledged a heartbeat round sent after the read arrived.

use std::collections::VecDeque;

use crate::ids::{LogIndex, NodeId};
use crate::message::ReadContext;

/// A read waiting for its leadership confirmation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingRead {
    pub(crate) context: ReadContext,
    /// Who asked: the leader itself or a follower.
    pub(crate) requester: NodeId,
    /// The commit index when the read arrived.
    pub(crate) index: LogIndex,
    /// The heartbeat round that must be acknowledged by a quorum.
    pub(crate) round: u64,
}

/// Reads in flight on the leader.
#[derive(Debug, Default)]
pub(crate) struct ReadQueue {
    /// The latest heartbeat round.
    pub(crate) round: u64,
    /// Reads waiting for a quorum round, oldest first.
    pending: VecDeque<PendingRead>,
    /// Reads that arrived before the leader committed an entry of its term.
    waiting_for_term_commit: Vec<(ReadContext, NodeId)>,
}

impl ReadQueue {
    pub(crate) fn wait_for_term_commit(&mut self, context: ReadContext, requester: NodeId) {
        self.waiting_for_term_commit.push((context, requester));
    }

    pub(crate) fn take_waiting(&mut self) -> Vec<(ReadContext, NodeId)> {
        std::mem::take(&mut self.waiting_for_term_commit)
    }

    /// Queues a read behind a new heartbeat round; returns the round.
    pub(crate) fn start_round(
        &mut self,
        context: ReadContext,
        requester: NodeId,
        index: LogIndex,
    ) -> u64 {
        self.round += 1;
        self.pending.push_back(PendingRead {
            context,
            requester,
            index,
            round: self.round,
        });
        self.round
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Removes and returns the reads whose round is at most `confirmed`.
    pub(crate) fn release_up_to(&mut self, confirmed: u64) -> Vec<PendingRead> {
        let mut released = Vec::new();
        while self.pending.front().is_some_and(|r| r.round <= confirmed) {
            released.extend(self.pending.pop_front());
        }
        released
    }

    /// Removes every read: the leader lost its leadership.
    pub(crate) fn drain_all(&mut self) -> Vec<(ReadContext, NodeId)> {
        let mut all: Vec<_> = self
            .pending
            .drain(..)
            .map(|r| (r.context, r.requester))
            .collect();
        all.append(&mut self.waiting_for_term_commit);
        self.round = 0;
        all
    }
}
