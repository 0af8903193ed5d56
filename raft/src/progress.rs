//! The leader's view of one follower's replication: how far it matches,
//! what to send next, and how much is in flight.

use std::collections::VecDeque;

use crate::ids::LogIndex;

/// How the leader is currently replicating to a follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicationState {
    /// Unknown match: one `AppendEntries` at a time until one succeeds.
    Probe,
    /// Known match: appends are pipelined up to the in-flight limits.
    Replicate,
    /// The follower was sent the snapshot at `index` and has not taken it
    /// yet.
    Snapshot {
        /// The snapshot's index.
        index: LogIndex,
        /// Ticks since it was sent.
        ticks: u32,
    },
}

/// Replication progress of one member, as tracked by the leader.
#[derive(Clone, Debug)]
pub struct Progress {
    /// The highest index known to match the leader's log.
    pub matched: LogIndex,
    /// The next index to send.
    pub next: LogIndex,
    /// The replication mode.
    pub state: ReplicationState,
    /// In `Probe`: an append was sent and not yet answered.
    pub(crate) probe_sent: bool,
    /// Whether the member was heard from in the current CheckQuorum window.
    pub(crate) recently_active: bool,
    /// The highest ReadIndex round the member acknowledged.
    pub(crate) read_round_acked: u64,
    /// The highest commit index a message sent to the member lets it
    /// learn (see [`crate::Config::defer_commit_notices`]).
    pub(crate) commit_sent: LogIndex,
    /// Unacknowledged appends: (last index, bytes).
    inflight: VecDeque<(LogIndex, u64)>,
    inflight_bytes: u64,
}

impl Progress {
    pub(crate) fn new(next: LogIndex) -> Self {
        Self {
            matched: LogIndex(0),
            next,
            state: ReplicationState::Probe,
            probe_sent: false,
            recently_active: false,
            read_round_acked: 0,
            commit_sent: LogIndex(0),
            inflight: VecDeque::new(),
            inflight_bytes: 0,
        }
    }

    /// Whether the leader must hold back appends.
    pub(crate) fn is_paused(&self, max_appends: usize, max_bytes: u64) -> bool {
        match self.state {
            ReplicationState::Probe => self.probe_sent,
            ReplicationState::Replicate => {
                self.inflight.len() >= max_appends || self.inflight_bytes >= max_bytes
            }
            ReplicationState::Snapshot { .. } => true,
        }
    }

    /// Whether the member holds entries it was not told are committed, and
    /// an append may go to it now (see
    /// [`crate::Config::defer_commit_notices`]). A paused member learns
    /// the commit index from the append that follows its next answer, or
    /// from a heartbeat.
    pub(crate) fn commit_notice_due(
        &self,
        committed: LogIndex,
        max_appends: usize,
        max_bytes: u64,
    ) -> bool {
        !self.is_paused(max_appends, max_bytes) && self.matched.min(committed) > self.commit_sent
    }

    /// Records an append carrying entries up to `last` with `bytes` of data.
    pub(crate) fn sent_entries(&mut self, last: LogIndex, bytes: u64) {
        match self.state {
            ReplicationState::Replicate => {
                self.next = last.next();
                self.inflight.push_back((last, bytes));
                self.inflight_bytes += bytes;
            }
            ReplicationState::Probe => self.probe_sent = true,
            ReplicationState::Snapshot { .. } => {}
        }
    }

    /// A success reply up to `index`. Returns whether `matched` advanced.
    pub(crate) fn acknowledge(&mut self, index: LogIndex) -> bool {
        let advanced = index > self.matched;
        if advanced {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next = self.next.max(index.next());
        while let Some(&(last, bytes)) = self.inflight.front() {
            if last > index {
                break;
            }
            self.inflight.pop_front();
            self.inflight_bytes -= bytes;
        }
        advanced
    }

    /// A rejection of the append after `rejected`; `probe_from` is where the
    /// leader and follower logs may match. Returns false for a stale rejection.
    pub(crate) fn reject(&mut self, rejected: LogIndex, probe_from: LogIndex) -> bool {
        match self.state {
            ReplicationState::Replicate => {
                if rejected <= self.matched {
                    return false;
                }
                self.become_probe();
                self.next = self.matched.next().max(probe_from.next().min(rejected));
                true
            }
            ReplicationState::Probe => {
                if rejected != self.next.prev() {
                    return false;
                }
                self.next = self.matched.next().max(probe_from.next().min(rejected));
                self.probe_sent = false;
                true
            }
            ReplicationState::Snapshot { .. } => false,
        }
    }

    /// Forgets the oldest unacknowledged append (it may have been lost).
    pub(crate) fn free_oldest_inflight(&mut self) {
        if let Some((_, bytes)) = self.inflight.pop_front() {
            self.inflight_bytes -= bytes;
        }
    }

    pub(crate) fn become_probe(&mut self) {
        let next = match self.state {
            ReplicationState::Snapshot { index, .. } => self.matched.max(index).next(),
            _ => self.matched.next(),
        };
        self.state = ReplicationState::Probe;
        self.next = next;
        self.probe_sent = false;
        self.clear_inflight();
    }

    pub(crate) fn become_replicate(&mut self) {
        self.state = ReplicationState::Replicate;
        self.next = self.matched.next();
        self.probe_sent = false;
        self.clear_inflight();
    }

    /// The snapshot sent did not arrive: probe from the last known match,
    /// which sends it again if the follower still needs it.
    pub(crate) fn snapshot_failed(&mut self) {
        self.state = ReplicationState::Probe;
        self.next = self.matched.next();
        self.probe_sent = false;
        self.clear_inflight();
    }

    pub(crate) fn become_snapshot(&mut self, index: LogIndex) {
        self.state = ReplicationState::Snapshot { index, ticks: 0 };
        self.probe_sent = false;
        self.clear_inflight();
    }

    fn clear_inflight(&mut self) {
        self.inflight.clear();
        self.inflight_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_notice_is_due_for_held_entries_not_told_committed_unless_appends_are_paused() {
        let mut progress = Progress::new(LogIndex(6));
        progress.matched = LogIndex(5);
        progress.become_replicate();
        progress.commit_sent = LogIndex(3);
        assert!(progress.commit_notice_due(LogIndex(10), 1, u64::MAX));
        assert!(progress.commit_notice_due(LogIndex(4), 1, u64::MAX));
        assert!(
            !progress.commit_notice_due(LogIndex(3), 1, u64::MAX),
            "told"
        );
        // A full pipeline: the append after its next answer carries it.
        progress.sent_entries(LogIndex(7), 100);
        assert!(!progress.commit_notice_due(LogIndex(10), 1, u64::MAX));
        // So does a probe's answer.
        progress.become_probe();
        progress.sent_entries(LogIndex(7), 100);
        assert!(!progress.commit_notice_due(LogIndex(10), 1, u64::MAX));
    }
}
