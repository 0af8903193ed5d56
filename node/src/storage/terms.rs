//! The terms of the entries in the Raft log, kept in memory as runs, so
//! the core's many questions about an entry's term (matching a follower's
//! log, checking that a commit index is of the current term) never read
//! the log from the database.
//!
//! Terms never decrease along a log (the log store refuses one that does
//! at open), so the whole log's terms are one entry per term: the index
//! where each term's run of entries begins.

use std::collections::VecDeque;

use raftcfg_raft::{LogIndex, Term};

/// The term of every entry from some first index to some last one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TermRuns {
    /// (first index of the run, its term), by index.
    runs: VecDeque<(LogIndex, Term)>,
}

impl TermRuns {
    /// The term of the entry at `index`, which the caller knows is in the
    /// log; `None` if it is before every run recorded.
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        let after = self.runs.partition_point(|&(start, _)| start <= index);
        after.checked_sub(1).map(|run| self.runs[run].1)
    }

    /// Records that the entry at `index`, the one after the last recorded,
    /// has `term`.
    pub fn record(&mut self, index: LogIndex, term: Term) {
        if self.runs.back().is_none_or(|&(_, last)| last != term) {
            self.runs.push_back((index, term));
        }
    }

    /// Forgets the entries from `index` on (they are being overwritten).
    pub fn truncate_from(&mut self, index: LogIndex) {
        while self.runs.back().is_some_and(|&(start, _)| start >= index) {
            self.runs.pop_back();
        }
    }

    /// Forgets the runs that end before `first` (compacted away).
    pub fn discard_before(&mut self, first: LogIndex) {
        while self.runs.get(1).is_some_and(|&(start, _)| start <= first) {
            self.runs.pop_front();
        }
    }

    /// Forgets everything (the log was replaced by a snapshot).
    pub fn clear(&mut self) {
        self.runs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(terms: &[(u64, u64)]) -> TermRuns {
        let mut runs = TermRuns::default();
        for &(index, term) in terms {
            runs.record(LogIndex(index), Term(term));
        }
        runs
    }

    #[test]
    fn every_recorded_index_has_its_term_and_runs_are_one_per_term() {
        let runs = runs(&[(5, 1), (6, 1), (7, 2), (8, 2), (9, 2), (10, 4)]);
        assert_eq!(runs.runs.len(), 3);
        let terms: Vec<_> = (5..=12)
            .map(|i| runs.term(LogIndex(i)).unwrap().0)
            .collect();
        assert_eq!(terms, [1, 1, 2, 2, 2, 4, 4, 4]);
        assert_eq!(runs.term(LogIndex(4)), None);
    }

    #[test]
    fn an_overwritten_suffix_takes_its_new_terms() {
        let mut runs = runs(&[(1, 1), (2, 1), (3, 2), (4, 2), (5, 3)]);
        runs.truncate_from(LogIndex(4));
        runs.record(LogIndex(4), Term(5));
        assert_eq!(runs.term(LogIndex(3)), Some(Term(2)));
        assert_eq!(runs.term(LogIndex(4)), Some(Term(5)));
        // Overwriting from the start of a run drops the whole run.
        runs.truncate_from(LogIndex(3));
        runs.record(LogIndex(3), Term(6));
        assert_eq!(runs.term(LogIndex(2)), Some(Term(1)));
        assert_eq!(runs.term(LogIndex(3)), Some(Term(6)));
    }

    #[test]
    fn compaction_keeps_the_run_holding_the_new_first_entry() {
        let mut runs = runs(&[(1, 1), (2, 1), (3, 2), (4, 2), (5, 3)]);
        runs.discard_before(LogIndex(4));
        assert_eq!(runs.runs.len(), 2);
        assert_eq!(runs.term(LogIndex(4)), Some(Term(2)));
        assert_eq!(runs.term(LogIndex(5)), Some(Term(3)));
        runs.discard_before(LogIndex(5));
        assert_eq!(runs.term(LogIndex(5)), Some(Term(3)));
        runs.clear();
        assert_eq!(runs.term(LogIndex(5)), None);
    }
}
