//! The Raft log as the core sees it: durable entries in [`LogStorage`]
//! followed by unstable entries (and possibly a received snapshot) that the
//! next `Ready` will ask the application to persist.

use crate::entry::Entry;
use crate::ids::{LogIndex, Term};
use crate::snapshot::Snapshot;
use crate::storage::{LogStorage, StorageError};

/// Entries and a snapshot not yet durable.
#[derive(Debug)]
struct Unstable {
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
    /// The index of `entries[0]` (or where it would be).
    offset: LogIndex,
}

impl Unstable {
    fn last_index(&self) -> Option<LogIndex> {
        match self.entries.last() {
            Some(entry) => Some(entry.index),
            None => self.snapshot.as_ref().map(|s| s.metadata.index),
        }
    }

    fn term(&self, index: LogIndex) -> Option<Term> {
        if index >= self.offset {
            let position = (index.get() - self.offset.get()) as usize;
            return self.entries.get(position).map(|e| e.term);
        }
        match &self.snapshot {
            Some(s) if s.metadata.index == index => Some(s.metadata.term),
            _ => None,
        }
    }

    fn truncate_and_append(&mut self, entries: Vec<Entry>) {
        let first = entries[0].index;
        let end = self.offset.plus(self.entries.len() as u64);
        if first == end {
            self.entries.extend(entries);
        } else if first <= self.offset {
            self.offset = first;
            self.entries = entries;
        } else {
            self.entries
                .truncate((first.get() - self.offset.get()) as usize);
            self.entries.extend(entries);
        }
    }
}

/// The log: durable storage plus what is still to be persisted.
#[derive(Debug)]
pub(crate) struct RaftLog<S> {
    pub(crate) storage: S,
    unstable: Unstable,
    /// The highest index known to be committed.
    pub(crate) committed: LogIndex,
    /// The highest index the application has applied.
    pub(crate) applied: LogIndex,
    /// The highest index known to be durable in this node's storage.
    pub(crate) persisted: LogIndex,
}

fn fatal(error: StorageError) -> ! {
    panic!("log storage failed; the node cannot continue: {error}")
}

impl<S: LogStorage> RaftLog<S> {
    pub(crate) fn new(
        storage: S,
        committed: LogIndex,
        applied: LogIndex,
    ) -> Result<Self, StorageError> {
        let last = storage.last_index()?;
        Ok(Self {
            storage,
            unstable: Unstable {
                snapshot: None,
                entries: Vec::new(),
                offset: last.next(),
            },
            committed,
            applied,
            persisted: last,
        })
    }

    /// The index just before the first entry the log holds.
    pub(crate) fn snapshot_index(&self) -> LogIndex {
        match &self.unstable.snapshot {
            Some(s) => s.metadata.index,
            None => self
                .storage
                .first_index()
                .unwrap_or_else(|e| fatal(e))
                .prev(),
        }
    }

    /// The index of the latest snapshot, received or stored. With a
    /// compaction tail kept the log starts before it, so this may be above
    /// [`RaftLog::snapshot_index`].
    pub(crate) fn latest_snapshot_index(&self) -> LogIndex {
        match &self.unstable.snapshot {
            Some(s) => s.metadata.index,
            None => {
                self.storage
                    .snapshot_metadata()
                    .unwrap_or_else(|e| fatal(e))
                    .index
            }
        }
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        match self.unstable.last_index() {
            Some(index) => index,
            None => self.storage.last_index().unwrap_or_else(|e| fatal(e)),
        }
    }

    pub(crate) fn last_term(&self) -> Term {
        self.term(self.last_index())
            .unwrap_or_else(|e| panic!("the last entry has no term: {e}"))
    }

    /// The term of the entry at `index`; `Compacted` or `Unavailable` if the
    /// log does not hold it. Other storage failures are fatal.
    pub(crate) fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        if let Some(term) = self.unstable.term(index) {
            return Ok(term);
        }
        let snapshot_index = self.snapshot_index();
        if index < snapshot_index {
            return Err(StorageError::Compacted(index));
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable(index));
        }
        match self.storage.term(index) {
            Ok(term) => Ok(term),
            Err(e @ (StorageError::Compacted(_) | StorageError::Unavailable(_))) => Err(e),
            Err(e) => fatal(e),
        }
    }

    /// Whether the log holds an entry at `index` with `term`.
    pub(crate) fn matches(&self, index: LogIndex, term: Term) -> bool {
        self.term(index) == Ok(term)
    }

    /// Entries in `low..high`, up to `max_bytes` (at least one).
    pub(crate) fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low >= high {
            return Ok(Vec::new());
        }
        if low <= self.snapshot_index() {
            return Err(StorageError::Compacted(low));
        }
        let offset = self.unstable.offset;
        let mut out = Vec::new();
        let mut size = 0;
        if low < offset {
            let stored = match self.storage.entries(low, high.min(offset), max_bytes) {
                Ok(stored) => stored,
                Err(e @ StorageError::Compacted(_)) => return Err(e),
                Err(e) => fatal(e),
            };
            size = stored.iter().map(Entry::size_bytes).sum();
            let complete = stored.len() as u64 == high.min(offset).get() - low.get();
            out = stored;
            if !complete {
                return Ok(out);
            }
        }
        if high > offset {
            let start = (low.max(offset).get() - offset.get()) as usize;
            let end = (high.get() - offset.get()) as usize;
            for entry in &self.unstable.entries[start..end.min(self.unstable.entries.len())] {
                size += entry.size_bytes();
                if !out.is_empty() && size > max_bytes {
                    break;
                }
                out.push(entry.clone());
            }
        }
        Ok(out)
    }

    /// Whether a log ending at (`last_index`, `last_term`) is at least as
    /// up to date as this one (Raft §5.4.1).
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        let my_term = self.last_term();
        last_term > my_term || (last_term == my_term && last_index >= self.last_index())
    }

    /// Appends entries at the end of the log or over a conflicting suffix.
    /// Returns the new last index.
    pub(crate) fn append(&mut self, entries: Vec<Entry>) -> LogIndex {
        let Some(first) = entries.first() else {
            return self.last_index();
        };
        assert!(
            first.index > self.committed,
            "entry {} would overwrite the committed log (commit {})",
            first.index,
            self.committed
        );
        if first.index <= self.persisted {
            self.persisted = first.index.prev();
        }
        self.unstable.truncate_and_append(entries);
        self.last_index()
    }

    /// The first entry of `entries` that is missing from the log or
    /// conflicts with it, skipping entries the log already holds.
    pub(crate) fn first_new(&self, entries: &[Entry]) -> usize {
        entries
            .iter()
            .position(|e| !self.matches(e.index, e.term))
            .unwrap_or(entries.len())
    }

    pub(crate) fn commit_to(&mut self, index: LogIndex) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit {index} is past the last log index {}",
                self.last_index()
            );
            self.committed = index;
        }
    }

    /// Replaces the log by a snapshot received from the leader.
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        let index = snapshot.metadata.index;
        assert!(
            index > self.committed,
            "snapshot {index} would roll back commit"
        );
        self.committed = index;
        self.unstable.entries.clear();
        self.unstable.offset = index.next();
        self.unstable.snapshot = Some(snapshot);
        self.persisted = self.persisted.min(index.prev());
    }

    pub(crate) fn unstable_entries(&self) -> &[Entry] {
        &self.unstable.entries
    }

    pub(crate) fn unstable_snapshot(&self) -> Option<&Snapshot> {
        self.unstable.snapshot.as_ref()
    }

    /// Marks everything handed out for persistence as durable, with every
    /// entry stored before it.
    pub(crate) fn persisted_all(&mut self) {
        self.stored_all();
        self.persisted = self.stored_last();
    }

    /// Marks everything handed out for persistence as stored but not yet
    /// durable: it is read from storage from now on, and counts as this
    /// node's own copy only once [`RaftLog::synced_to`] says so.
    pub(crate) fn stored_all(&mut self) {
        if let Some(s) = self.unstable.snapshot.take() {
            self.unstable.offset = self.unstable.offset.max(s.metadata.index.next());
        }
        if let Some(last) = self.unstable.entries.last() {
            self.unstable.offset = last.index.next();
            self.unstable.entries.clear();
        }
    }

    /// The last index in storage, durable or not (before a received
    /// snapshot still to be written, the durable index: storage is about
    /// to be replaced).
    pub(crate) fn stored_last(&self) -> LogIndex {
        if !self.unstable.entries.is_empty() {
            self.unstable.offset.prev()
        } else if self.unstable.snapshot.is_some() {
            self.persisted
        } else {
            self.storage.last_index().unwrap_or_else(|e| fatal(e))
        }
    }

    /// Whether storage holds entries a sync has yet to make durable.
    pub(crate) fn has_unsynced(&self) -> bool {
        self.stored_last() > self.persisted
    }

    /// A sync made the stored log durable up to the entry (`index`, `term`):
    /// raises the durable index if that entry is still in the log (an entry
    /// overwritten since is not what was synced). Returns whether it rose.
    pub(crate) fn synced_to(&mut self, index: LogIndex, term: Term) -> bool {
        if index <= self.persisted || index > self.stored_last() {
            return false;
        }
        if self.term(index) != Ok(term) {
            return false;
        }
        self.persisted = index;
        true
    }

    /// Committed entries the application has not applied, up to `max_bytes`.
    pub(crate) fn next_committed_entries(&self, max_bytes: u64) -> Vec<Entry> {
        let low = self.applied.max(self.snapshot_index()).next();
        let high = self.committed.min(self.last_index()).next();
        self.entries(low, high, max_bytes)
            .unwrap_or_else(|e| panic!("committed entries {low}..{high} are missing: {e}"))
    }

    pub(crate) fn has_committed_entries(&self) -> bool {
        self.committed.min(self.last_index()) > self.applied.max(self.snapshot_index())
    }
}
