//! An in-memory [`LogStore`], for tests, the simulator and benchmarks.
//! Everything `persist` accepts counts as durable; nothing else is kept, so
//! dropping the Raft node and keeping the store models a crash.

use crate::entry::Entry;
use crate::ids::{LogIndex, Term};
use crate::snapshot::{Snapshot, SnapshotMetadata};
use crate::storage::{HardState, LogStorage, LogStore, LogWrite, StorageError};

/// Log storage held in memory.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    snapshot: Snapshot,
    /// Entries after the snapshot index, contiguous.
    entries: Vec<Entry>,
}

impl MemStorage {
    /// An empty store: a node that is not yet a member of any cluster.
    pub fn new() -> Self {
        Self::default()
    }

    fn snapshot_index(&self) -> LogIndex {
        self.snapshot.metadata.index
    }

    fn offset(&self, index: LogIndex) -> usize {
        (index.get() - self.snapshot_index().get() - 1) as usize
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let last = self.snapshot_index().plus(self.entries.len() as u64);
        if first.index <= self.snapshot_index() || first.index > last.next() {
            return Err(StorageError::Failed(format!(
                "append at {} leaves a gap or overwrites the snapshot (snapshot {}, last {last})",
                first.index,
                self.snapshot_index(),
            )));
        }
        self.entries.truncate(self.offset(first.index));
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    fn install(&mut self, snapshot: &Snapshot) {
        self.entries.clear();
        self.snapshot = snapshot.clone();
    }

    fn compact(&mut self, snapshot: &Snapshot) {
        let index = snapshot.metadata.index;
        if index <= self.snapshot_index() {
            return;
        }
        let keep_from = self.offset(index.next()).min(self.entries.len());
        self.entries.drain(..keep_from);
        self.snapshot = snapshot.clone();
    }
}

impl LogStorage for MemStorage {
    fn hard_state(&self) -> Result<HardState, StorageError> {
        Ok(self.hard_state)
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        Ok(self.snapshot.clone())
    }

    fn snapshot_metadata(&self) -> Result<SnapshotMetadata, StorageError> {
        Ok(self.snapshot.metadata.clone())
    }

    fn first_index(&self) -> Result<LogIndex, StorageError> {
        Ok(self.snapshot_index().next())
    }

    fn last_index(&self) -> Result<LogIndex, StorageError> {
        Ok(self.snapshot_index().plus(self.entries.len() as u64))
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        let snapshot_index = self.snapshot_index();
        if index == snapshot_index {
            return Ok(self.snapshot.metadata.term);
        }
        if index < snapshot_index {
            return Err(StorageError::Compacted(index));
        }
        self.entries
            .get(self.offset(index))
            .map(|entry| entry.term)
            .ok_or(StorageError::Unavailable(index))
    }

    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low <= self.snapshot_index() {
            return Err(StorageError::Compacted(low));
        }
        if low >= high {
            return Ok(Vec::new());
        }
        if high > self.last_index()?.next() {
            return Err(StorageError::Unavailable(high.prev()));
        }
        let mut out = Vec::new();
        let mut size = 0;
        for entry in &self.entries[self.offset(low)..self.offset(high)] {
            size += entry.size_bytes();
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(entry.clone());
        }
        Ok(out)
    }
}

impl LogStore for MemStorage {
    fn persist(&mut self, write: LogWrite<'_>) -> Result<(), StorageError> {
        if let Some(snapshot) = write.snapshot {
            self.install(snapshot);
        }
        self.append(write.entries)?;
        if let Some(hard_state) = write.hard_state {
            self.hard_state = *hard_state;
        }
        if let Some(snapshot) = write.compaction {
            self.compact(snapshot);
        }
        Ok(())
    }
}
