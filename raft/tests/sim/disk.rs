//! [`SimDisk`]: a node's disk, the crate's `MemStorage` behind the faults a
//! real disk and process have: a write that reports an error (having landed
//! or not), a process that dies part-way through a `Ready` ([`Fuse`]), and
//! writes stored without a sync, which a crash loses.

use std::cell::Cell;
use std::rc::Rc;

use raftcfg_raft::{
    Entry, HardState, LogIndex, LogStorage, LogStore, LogWrite, MemStorage, Snapshot,
    SnapshotMetadata, StorageError, Term,
};

/// How many more effects of the current `Ready` the process lives to carry
/// out: the write, each message sent, the snapshot installed, each entry
/// applied, the reads released. The disk and the application of one node
/// share it; once it has burnt down, nothing more takes effect and the
/// world crashes the node after the `Ready`. Unarmed, it never burns down.
#[derive(Clone, Debug, Default)]
pub struct Fuse(Rc<Cell<Option<u32>>>);

impl Fuse {
    pub fn arm(&self, effects: u32) {
        self.0.set(Some(effects));
    }

    pub fn disarm(&self) {
        self.0.set(None);
    }

    /// Whether the process is still alive to carry out one more effect.
    pub fn spend(&self) -> bool {
        match self.0.get() {
            None => true,
            Some(0) => false,
            Some(n) => {
                self.0.set(Some(n - 1));
                true
            }
        }
    }
}

/// How the next write fails. Either way the node must stop (the `Ready`
/// contract) and restart from what its disk holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteFault {
    /// An error, and nothing of the write is durable.
    Lost,
    /// An error although the write is durable (the sync failed after the
    /// data reached the disk).
    Landed,
}

/// A node's disk. Writes are atomic, as `LogStore` requires: a crash during
/// one (the fuse burning down at the write) loses it whole.
#[derive(Clone, Debug)]
pub struct SimDisk {
    /// What is durable.
    store: MemStorage,
    /// What is stored, if some of it is not synced yet.
    unsynced: Option<MemStorage>,
    fuse: Fuse,
    /// The fault of the next write, if any.
    pub fault: Option<WriteFault>,
}

impl SimDisk {
    pub fn new(store: MemStorage, fuse: Fuse) -> Self {
        Self {
            store,
            unsynced: None,
            fuse,
            fault: None,
        }
    }

    /// What survives a crash.
    pub fn durable(&self) -> &MemStorage {
        &self.store
    }

    /// Whether some of what is stored is not durable yet.
    pub fn has_unsynced(&self) -> bool {
        self.unsynced.is_some()
    }

    /// The process died: what was not synced is gone.
    pub fn lose_unsynced(&mut self) {
        self.unsynced = None;
    }

    /// What the process reads: everything stored.
    fn current(&self) -> &MemStorage {
        self.unsynced.as_ref().unwrap_or(&self.store)
    }

    /// Carries out `write` on what is stored, with the planned fault; if
    /// `sync`, everything stored becomes durable. A process already dead
    /// (the fuse burnt down) writes nothing durable, but the rest of its
    /// `Ready` reads what it believes it wrote; the node crashes after it.
    fn write(&mut self, write: LogWrite<'_>, sync: bool) -> Result<(), StorageError> {
        let alive = self.fuse.spend();
        let fault = if alive { self.fault.take() } else { None };
        if fault == Some(WriteFault::Lost) {
            return Err(StorageError::Failed(
                "simulated write error: nothing written".into(),
            ));
        }
        match self.unsynced.take() {
            // The common case: straight to disk, nothing to copy.
            None if alive && sync => self.store.persist(write)?,
            unsynced => {
                let mut stored = unsynced.unwrap_or_else(|| self.store.clone());
                stored.persist(write)?;
                if alive && sync {
                    self.store = stored;
                } else {
                    self.unsynced = Some(stored);
                }
            }
        }
        if fault == Some(WriteFault::Landed) {
            return Err(StorageError::Failed(
                "simulated sync error after the write landed".into(),
            ));
        }
        Ok(())
    }
}

impl LogStorage for SimDisk {
    fn hard_state(&self) -> Result<HardState, StorageError> {
        self.current().hard_state()
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        self.current().snapshot()
    }

    fn snapshot_metadata(&self) -> Result<SnapshotMetadata, StorageError> {
        self.current().snapshot_metadata()
    }

    fn first_index(&self) -> Result<LogIndex, StorageError> {
        self.current().first_index()
    }

    fn last_index(&self) -> Result<LogIndex, StorageError> {
        self.current().last_index()
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        self.current().term(index)
    }

    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.current().entries(low, high, max_bytes)
    }
}

impl LogStore for SimDisk {
    fn persist(&mut self, write: LogWrite<'_>) -> Result<(), StorageError> {
        self.write(write, true)
    }

    fn store(&mut self, write: LogWrite<'_>) -> Result<(), StorageError> {
        self.write(write, false)
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        if self.fuse.spend()
            && let Some(stored) = self.unsynced.take()
        {
            self.store = stored;
        }
        Ok(())
    }
}
