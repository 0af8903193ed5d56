//! Who is waiting for what: proposers by log index and term, linearizable
//! reads by ReadIndex context and then by the index they must see applied.

use std::collections::BTreeMap;

use raftcfg_raft::{LogIndex, ReadContext, ReadState, Term};
use tokio::sync::oneshot;

use super::handle::{DriverError, Query, QueryResult};
use crate::kv::{Applied, KvStore, Outcome};

/// Someone waiting for a proposed entry to be applied.
pub(super) enum Waiter {
    /// A client's write.
    Write(oneshot::Sender<Result<Outcome, DriverError>>),
    /// A membership change: answered with the entry's index.
    Membership(oneshot::Sender<Result<LogIndex, DriverError>>),
    /// The leader's own `SetMember`; nobody to answer.
    Announce,
}

impl Waiter {
    fn answer(self, index: LogIndex, result: Result<Outcome, DriverError>) {
        match self {
            Self::Write(reply) => {
                let _ = reply.send(result);
            }
            Self::Membership(reply) => {
                let _ = reply.send(result.map(|_| index));
            }
            Self::Announce => {}
        }
    }

    fn abandoned(&self) -> bool {
        match self {
            Self::Write(reply) => reply.is_closed(),
            Self::Membership(reply) => reply.is_closed(),
            Self::Announce => false,
        }
    }
}

/// A linearizable read waiting for its ReadIndex and then for the state.
pub(super) struct PendingRead {
    pub(super) query: Query,
    pub(super) reply: oneshot::Sender<Result<QueryResult, DriverError>>,
}

/// Everything the driver must still answer.
#[derive(Default)]
pub(super) struct Waiters {
    proposals: BTreeMap<LogIndex, (Term, Waiter)>,
    reads_awaiting_index: BTreeMap<ReadContext, Vec<PendingRead>>,
    reads_awaiting_apply: BTreeMap<LogIndex, Vec<PendingRead>>,
}

impl Waiters {
    /// Whether no proposal or read waits for an answer.
    pub(super) fn is_empty(&self) -> bool {
        self.proposals.is_empty()
            && self.reads_awaiting_index.is_empty()
            && self.reads_awaiting_apply.is_empty()
    }

    /// Whether one proposal waits, and nothing else.
    pub(super) fn one_proposal_only(&self) -> bool {
        self.proposals.len() == 1
            && self.reads_awaiting_index.is_empty()
            && self.reads_awaiting_apply.is_empty()
    }

    /// Waits for the entry proposed at `index` in `term`.
    pub(super) fn add_proposal(&mut self, index: LogIndex, term: Term, waiter: Waiter) {
        self.proposals.insert(index, (term, waiter));
    }

    /// Whether a leader's own `SetMember` is still pending.
    pub(super) fn announcement_pending(&self) -> bool {
        self.proposals
            .values()
            .any(|(_, waiter)| matches!(waiter, Waiter::Announce))
    }

    /// Answers the proposers of `applied` entries: their outcome if the
    /// entry is theirs (same term), `Lost` if another leader's entry took
    /// the index. Proposals at or below `applied_index` that no applied
    /// entry answered were covered by a snapshot: `Unknown`. Returns how
    /// many failed.
    pub(super) fn resolve_applied(&mut self, applied: &[Applied], applied_index: LogIndex) -> u64 {
        let mut failed = 0;
        for entry in applied {
            if let Some((term, waiter)) = self.proposals.remove(&entry.index) {
                if term == entry.term {
                    waiter.answer(entry.index, Ok(entry.outcome.clone()));
                } else {
                    failed += 1;
                    waiter.answer(entry.index, Err(DriverError::Lost));
                }
            }
        }
        while let Some(entry) = self.proposals.first_entry() {
            if *entry.key() > applied_index {
                break;
            }
            let (index, (_, waiter)) = entry.remove_entry();
            failed += 1;
            waiter.answer(index, Err(DriverError::Unknown));
        }
        failed
    }

    /// Waits for the ReadIndex answer to `context`.
    pub(super) fn add_reads(&mut self, context: ReadContext, reads: Vec<PendingRead>) {
        self.reads_awaiting_index.insert(context, reads);
    }

    /// Moves reads whose index is known to wait for the state to reach it;
    /// answers dropped ones with `Lost` (safe to retry).
    pub(super) fn release_reads(&mut self, ready: &[ReadState], dropped: &[ReadContext]) {
        for state in ready {
            if let Some(reads) = self.reads_awaiting_index.remove(&state.context) {
                self.reads_awaiting_apply
                    .entry(state.index)
                    .or_default()
                    .extend(reads);
            }
        }
        for context in dropped {
            for read in self
                .reads_awaiting_index
                .remove(context)
                .unwrap_or_default()
            {
                let _ = read.reply.send(Err(DriverError::Lost));
            }
        }
    }

    /// Serves every read whose index the state has reached.
    pub(super) fn serve_reads(
        &mut self,
        kv: &KvStore,
        applied_index: LogIndex,
        run: impl Fn(&KvStore, Query) -> Result<QueryResult, DriverError>,
    ) {
        while let Some(entry) = self.reads_awaiting_apply.first_entry() {
            if *entry.key() > applied_index {
                break;
            }
            for read in entry.remove() {
                if !read.reply.is_closed() {
                    let _ = read.reply.send(run(kv, read.query));
                }
            }
        }
    }

    /// Drops waiters whose caller gave up (it answered them `Unknown`
    /// itself), so a stuck request does not hold memory forever.
    pub(super) fn forget_abandoned(&mut self) {
        self.proposals.retain(|_, (_, waiter)| !waiter.abandoned());
        self.reads_awaiting_index.retain(|_, reads| {
            reads.retain(|read| !read.reply.is_closed());
            !reads.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Revision;

    fn written(index: u64, term: u64, revision: u64) -> Applied {
        Applied {
            index: LogIndex(index),
            term: Term(term),
            outcome: Outcome::Written {
                revision: Revision(revision),
            },
        }
    }

    #[test]
    fn a_proposal_is_answered_by_its_own_entry_only() {
        let mut waiters = Waiters::default();
        let (ours, mut ours_rx) = oneshot::channel();
        let (lost, mut lost_rx) = oneshot::channel();
        waiters.add_proposal(LogIndex(5), Term(2), Waiter::Write(ours));
        waiters.add_proposal(LogIndex(6), Term(2), Waiter::Write(lost));
        // Index 6 was overwritten by a term-3 leader's entry.
        let failed = waiters.resolve_applied(&[written(5, 2, 1), written(6, 3, 2)], LogIndex(6));
        assert_eq!(failed, 1);
        assert_eq!(
            ours_rx.try_recv().unwrap(),
            Ok(Outcome::Written {
                revision: Revision(1)
            })
        );
        assert_eq!(lost_rx.try_recv().unwrap(), Err(DriverError::Lost));
    }

    #[test]
    fn a_proposal_passed_by_a_snapshot_has_an_unknown_outcome() {
        let mut waiters = Waiters::default();
        let (reply, mut rx) = oneshot::channel();
        waiters.add_proposal(LogIndex(5), Term(2), Waiter::Write(reply));
        waiters.resolve_applied(&[], LogIndex(4));
        assert!(rx.try_recv().is_err(), "not yet applied: still waiting");
        waiters.resolve_applied(&[], LogIndex(9));
        assert_eq!(rx.try_recv().unwrap(), Err(DriverError::Unknown));
    }

    #[test]
    fn abandoned_proposals_are_forgotten_but_announcements_kept() {
        let mut waiters = Waiters::default();
        let (reply, rx) = oneshot::channel();
        waiters.add_proposal(LogIndex(1), Term(1), Waiter::Write(reply));
        waiters.add_proposal(LogIndex(2), Term(1), Waiter::Announce);
        drop(rx);
        waiters.forget_abandoned();
        assert_eq!(waiters.proposals.len(), 1);
        assert!(waiters.announcement_pending());
    }
}
