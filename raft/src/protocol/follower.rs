//! The follower's side of replication: appending the leader's entries,
//! following its commit index, and taking the leader's snapshot.

use crate::config::PlantedBug;
use crate::entry::Entry;
use crate::ids::{LogIndex, NodeId, Term};
use crate::message::MessageBody;
use crate::snapshot::Snapshot;
use crate::storage::LogStorage;

use super::Raft;

impl<S: LogStorage> Raft<S> {
    fn reply_appended(&mut self, to: NodeId, match_index: LogIndex) {
        self.send(
            to,
            MessageBody::AppendEntriesResponse {
                success: true,
                match_index,
                hint_index: LogIndex(0),
                hint_term: Term(0),
            },
        );
    }

    pub(super) fn handle_append(
        &mut self,
        from: NodeId,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: LogIndex,
    ) {
        let committed = self.log.committed;
        if prev_log_index < committed {
            // Everything up to our commit index already matches the leader.
            self.reply_appended(from, committed);
            return;
        }
        if !self.log.matches(prev_log_index, prev_log_term) {
            let (hint_index, hint_term) = self.rejection_hint(prev_log_index, prev_log_term);
            self.send(
                from,
                MessageBody::AppendEntriesResponse {
                    success: false,
                    match_index: prev_log_index,
                    hint_index,
                    hint_term,
                },
            );
            return;
        }
        let last_new = prev_log_index.plus(entries.len() as u64);
        let first_new = if self.config.planted(PlantedBug::StaleAppendTruncates) {
            0
        } else {
            self.log.first_new(&entries)
        };
        if first_new < entries.len() {
            let mut entries = entries;
            let new: Vec<Entry> = entries.drain(first_new..).collect();
            self.configs.truncate_from(new[0].index);
            self.record_configs(&new);
            self.log.append(new);
        }
        self.log.commit_to(leader_commit.min(last_new));
        self.reply_appended(from, last_new);
    }

    /// The last index at or before the rejected one whose term is at most
    /// the rejected term, and its term: the leader can resume from there.
    fn rejection_hint(&self, rejected: LogIndex, rejected_term: Term) -> (LogIndex, Term) {
        let mut index = rejected.min(self.log.last_index());
        loop {
            match self.log.term(index) {
                Ok(term) if term > rejected_term && index > self.log.committed => {
                    index = index.prev()
                }
                Ok(term) => return (index, term),
                Err(_) => return (index, Term(0)),
            }
        }
    }

    pub(super) fn handle_heartbeat(&mut self, from: NodeId, commit: LogIndex, read_round: u64) {
        // The leader caps `commit` at what it knows we hold.
        self.log.commit_to(commit.min(self.log.last_index()));
        self.send(from, MessageBody::HeartbeatResponse { read_round });
    }

    /// Takes the leader's snapshot unless the log already holds its last
    /// entry, and answers with how far the log now matches.
    pub(super) fn handle_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        if snapshot.metadata.index > self.log.committed {
            self.restore(snapshot);
        }
        let matched = self.log.committed;
        self.reply_appended(from, matched);
    }
}
