//! The configurations in the log, newest last, so a node knows the
//! configuration in force (the latest appended one) and can roll back to an
//! earlier one when a conflicting suffix of its log is overwritten.

use crate::entry::EntryPayload;
use crate::ids::LogIndex;
use crate::membership::Membership;
use crate::storage::{LogStorage, StorageError};

/// Entries read at a time while loading the history.
const LOAD_BATCH_BYTES: u64 = 8 << 20;

/// Configurations at or after the snapshot point, each with the index of the
/// entry that introduced it. The first one is the snapshot's.
#[derive(Clone, Debug)]
pub(crate) struct ConfigHistory {
    configs: Vec<(LogIndex, Membership)>,
}

impl ConfigHistory {
    pub(crate) fn new(snapshot_index: LogIndex, membership: Membership) -> Self {
        Self {
            configs: vec![(snapshot_index, membership)],
        }
    }

    /// The history `storage` holds: its snapshot's configuration, then
    /// each configuration entry after the snapshot.
    pub(crate) fn load<S: LogStorage>(storage: &S) -> Result<Self, StorageError> {
        let snapshot = storage.snapshot_metadata()?;
        let last = storage.last_index()?;
        let mut configs = Self::new(snapshot.index, snapshot.membership);
        let mut next = snapshot.index.next();
        while next <= last {
            let batch = storage.entries(next, last.next(), LOAD_BATCH_BYTES)?;
            for entry in &batch {
                if let EntryPayload::Config(change) = &entry.payload {
                    configs.push(entry.index, change.config.clone());
                }
            }
            next = next.plus(batch.len().max(1) as u64);
        }
        Ok(configs)
    }

    /// The configuration in force: the latest one appended.
    pub(crate) fn current(&self) -> &Membership {
        &self.configs.last().expect("history is never empty").1
    }

    /// The index of the entry that introduced the current configuration.
    pub(crate) fn current_index(&self) -> LogIndex {
        self.configs.last().expect("history is never empty").0
    }

    /// The configuration in force at `index`.
    pub(crate) fn at(&self, index: LogIndex) -> &Membership {
        self.configs
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map(|(_, m)| m)
            .unwrap_or(&self.configs[0].1)
    }

    pub(crate) fn push(&mut self, index: LogIndex, membership: Membership) {
        self.configs.push((index, membership));
    }

    /// Forgets configurations introduced at or after `index` (their entries
    /// were overwritten).
    pub(crate) fn truncate_from(&mut self, index: LogIndex) {
        while self.configs.len() > 1 && self.configs.last().is_some_and(|(i, _)| *i >= index) {
            self.configs.pop();
        }
    }

    /// Drops configurations superseded at or before the new snapshot point.
    pub(crate) fn compact_to(&mut self, index: LogIndex) {
        let keep_from = self
            .configs
            .iter()
            .rposition(|(i, _)| *i <= index)
            .unwrap_or(0);
        self.configs.drain(..keep_from);
    }
}
