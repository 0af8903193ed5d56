//! The Raft log as the core sees it: durable entries in [`LogStorage`]
//! followed by unstable entries (and possibly a received snapshot) that the
//! next `Ready` will ask the application to persist. The entries stored
//! but not yet applied stay in memory too (up to [`RECENT_MAX_BYTES`]), so
//! applying them reads no storage.

use std::collections::VecDeque;

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

/// The most bytes of stored entries [`Recent`] holds; older ones are read
/// from storage.
pub(crate) const RECENT_MAX_BYTES: u64 = 8 << 20;

/// Entries stored but not yet applied, each the entry storage holds at its
/// index: contiguous, and ending just before the unstable entries.
#[derive(Debug, Default)]
struct Recent {
    entries: VecDeque<Entry>,
    /// Their [`Entry::size_bytes`], summed.
    bytes: u64,
}

impl Recent {
    /// Keeps `entries`, which were just stored after those kept.
    fn keep(&mut self, entries: Vec<Entry>) {
        if let (Some(last), Some(first)) = (self.entries.back(), entries.first())
            && last.index.next() != first.index
        {
            self.clear();
        }
        for entry in entries {
            self.bytes += entry.size_bytes();
            self.entries.push_back(entry);
        }
        while self.bytes > RECENT_MAX_BYTES {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(entry) = self.entries.pop_front() {
            self.bytes -= entry.size_bytes();
        }
    }

    /// Forgets the entries up to `index` (applied).
    fn forget_through(&mut self, index: LogIndex) {
        while self.entries.front().is_some_and(|e| e.index <= index) {
            self.pop_front();
        }
    }

    /// Forgets the entries from `index` on (about to be overwritten).
    fn forget_from(&mut self, index: LogIndex) {
        while let Some(entry) = self.entries.back()
            && entry.index >= index
        {
            self.bytes -= entry.size_bytes();
            self.entries.pop_back();
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Where in `low..high` the entries held begin, if they reach to the
    /// end of it; `high` if they do not.
    fn held_from(&self, low: LogIndex, high: LogIndex) -> LogIndex {
        match (self.entries.front(), self.entries.back()) {
            (Some(first), Some(last)) if first.index < high && last.index >= high.prev() => {
                first.index.max(low)
            }
            _ => high,
        }
    }

    /// The entries in `low..high`: none if it is empty, else all held.
    fn range(&self, low: LogIndex, high: LogIndex) -> impl Iterator<Item = &Entry> {
        let count = high.get().saturating_sub(low.get()) as usize;
        let skip = match self.entries.front() {
            Some(first) if count > 0 => (low.get() - first.index.get()) as usize,
            _ => 0,
        };
        self.entries.iter().skip(skip).take(count)
    }
}

/// The log: durable storage plus what is still to be persisted.
#[derive(Debug)]
pub(crate) struct RaftLog<S> {
    pub(crate) storage: S,
    unstable: Unstable,
    /// Stored entries not yet applied, also held in memory.
    recent: Recent,
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
            recent: Recent::default(),
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
            let stored_high = high.min(offset);
            let held_from = self.recent.held_from(low, stored_high);
            if low < held_from {
                let stored = match self.storage.entries(low, held_from, max_bytes) {
                    Ok(stored) => stored,
                    Err(e @ StorageError::Compacted(_)) => return Err(e),
                    Err(e) => fatal(e),
                };
                size = stored.iter().map(Entry::size_bytes).sum();
                let complete = stored.len() as u64 == held_from.get() - low.get();
                out = stored;
                if !complete {
                    return Ok(out);
                }
            }
            for entry in self.recent.range(held_from, stored_high) {
                size += entry.size_bytes();
                if !out.is_empty() && size > max_bytes {
                    return Ok(out);
                }
                out.push(entry.clone());
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
        self.recent.forget_from(first.index);
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
        self.recent.clear();
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
            self.recent.clear();
        }
        if let Some(last) = self.unstable.entries.last() {
            self.unstable.offset = last.index.next();
            let stored = std::mem::take(&mut self.unstable.entries);
            self.recent.keep(stored);
        }
    }

    /// The application applied the log up to `index`.
    pub(crate) fn applied_to(&mut self, index: LogIndex) {
        self.applied = self.applied.max(index);
        self.recent.forget_through(self.applied);
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use bytes::Bytes;

    use super::*;
    use crate::entry::EntryPayload;
    use crate::mem_storage::MemStorage;
    use crate::snapshot::{Snapshot, SnapshotMetadata};
    use crate::storage::{HardState, LogStore, LogWrite};

    /// A [`MemStorage`] that counts the reads of entries.
    #[derive(Default)]
    struct Counted {
        inner: MemStorage,
        entry_reads: Cell<u32>,
    }

    impl LogStorage for Counted {
        fn hard_state(&self) -> Result<HardState, StorageError> {
            self.inner.hard_state()
        }
        fn snapshot(&self) -> Result<Snapshot, StorageError> {
            self.inner.snapshot()
        }
        fn snapshot_metadata(&self) -> Result<SnapshotMetadata, StorageError> {
            self.inner.snapshot_metadata()
        }
        fn first_index(&self) -> Result<LogIndex, StorageError> {
            self.inner.first_index()
        }
        fn last_index(&self) -> Result<LogIndex, StorageError> {
            self.inner.last_index()
        }
        fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
            self.inner.term(index)
        }
        fn entries(
            &self,
            low: LogIndex,
            high: LogIndex,
            max_bytes: u64,
        ) -> Result<Vec<Entry>, StorageError> {
            self.entry_reads.set(self.entry_reads.get() + 1);
            self.inner.entries(low, high, max_bytes)
        }
    }

    fn entry(index: u64, term: u64, bytes: usize) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            payload: EntryPayload::Command(Bytes::from(vec![b'x'; bytes])),
        }
    }

    fn entries(indexes: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        indexes.map(|index| entry(index, term, 10)).collect()
    }

    /// Appends `new` and stores it, as carrying out a `Ready` does.
    fn append_and_store(log: &mut RaftLog<Counted>, new: Vec<Entry>) {
        log.append(new.clone());
        let write = LogWrite {
            snapshot: None,
            entries: &new,
            hard_state: None,
            compaction: None,
        };
        log.storage.inner.persist(write).unwrap();
        log.persisted_all();
    }

    fn all(log: &RaftLog<Counted>) -> Vec<Entry> {
        log.entries(LogIndex(1), log.last_index().next(), u64::MAX)
            .unwrap()
    }

    fn new_log() -> RaftLog<Counted> {
        RaftLog::new(Counted::default(), LogIndex(0), LogIndex(0)).unwrap()
    }

    #[test]
    fn entries_stored_since_the_last_apply_are_applied_from_memory() {
        let mut log = new_log();
        append_and_store(&mut log, entries(1..=5, 1));
        log.commit_to(LogIndex(5));
        assert_eq!(log.next_committed_entries(u64::MAX), entries(1..=5, 1));
        assert_eq!(log.storage.entry_reads.get(), 0);
    }

    #[test]
    fn applied_entries_are_read_from_storage_and_the_rest_from_memory() {
        let mut log = new_log();
        append_and_store(&mut log, entries(1..=5, 1));
        log.applied_to(LogIndex(3));
        assert_eq!(all(&log), entries(1..=5, 1));
        assert_eq!(log.storage.entry_reads.get(), 1);
        // A range below everything held.
        let below = log.entries(LogIndex(1), LogIndex(3), u64::MAX).unwrap();
        assert_eq!(below, entries(1..=2, 1));
        // A byte limit holds across the two.
        let three = 3 * entry(1, 1, 10).size_bytes();
        let limited = log.entries(LogIndex(1), LogIndex(6), three).unwrap();
        assert_eq!(limited, entries(1..=3, 1));
        let limited = log.entries(LogIndex(4), LogIndex(6), 1).unwrap();
        assert_eq!(limited, entries(4..=4, 1));
    }

    #[test]
    fn overwritten_entries_are_never_read_from_memory() {
        let mut log = new_log();
        append_and_store(&mut log, entries(1..=5, 1));
        let mut expected = entries(1..=3, 1);
        expected.extend(entries(4..=6, 2));
        log.append(entries(4..=6, 2));
        assert_eq!(all(&log), expected, "before the new entries are stored");
        let write = LogWrite {
            snapshot: None,
            entries: &entries(4..=6, 2),
            hard_state: None,
            compaction: None,
        };
        log.storage.inner.persist(write).unwrap();
        log.persisted_all();
        assert_eq!(all(&log), expected, "after");
        assert_eq!(log.storage.entry_reads.get(), 0);
    }

    #[test]
    fn the_memory_held_is_bounded_and_storage_serves_the_rest() {
        let mut log = new_log();
        let big = (RECENT_MAX_BYTES / 2) as usize;
        let stored: Vec<Entry> = (1..=3).map(|index| entry(index, 1, big)).collect();
        append_and_store(&mut log, stored.clone());
        assert!(log.recent.bytes <= RECENT_MAX_BYTES);
        assert_eq!(log.recent.entries.len(), 1);
        assert_eq!(all(&log), stored);
        assert_eq!(log.storage.entry_reads.get(), 1);
    }

    #[test]
    fn a_received_snapshot_clears_what_is_held() {
        let mut log = new_log();
        append_and_store(&mut log, entries(1..=5, 1));
        let mut snapshot = Snapshot::default();
        snapshot.metadata.index = LogIndex(8);
        snapshot.metadata.term = Term(2);
        log.restore(snapshot);
        assert!(log.recent.entries.is_empty());
        assert_eq!(log.recent.bytes, 0);
    }
}
