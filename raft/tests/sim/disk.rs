//! [`SimDisk`]: a node's disk, the crate's `MemStorage` behind the faults a
//! real disk and process have: a write that reports an error (having landed
//! or not), and a process that dies part-way through a `Ready` ([`Fuse`]).

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
    store: MemStorage,
    fuse: Fuse,
    /// The fault of the next write, if any.
    pub fault: Option<WriteFault>,
}

impl SimDisk {
    pub fn new(store: MemStorage, fuse: Fuse) -> Self {
        Self {
            store,
            fuse,
            fault: None,
        }
    }

    pub fn store(&self) -> &MemStorage {
        &self.store
    }
}

impl LogStorage for SimDisk {
    fn hard_state(&self) -> Result<HardState, StorageError> {
        self.store.hard_state()
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        self.store.snapshot()
    }

    fn snapshot_metadata(&self) -> Result<SnapshotMetadata, StorageError> {
        self.store.snapshot_metadata()
    }

    fn first_index(&self) -> Result<LogIndex, StorageError> {
        self.store.first_index()
    }

    fn last_index(&self) -> Result<LogIndex, StorageError> {
        self.store.last_index()
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        self.store.term(index)
    }

    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.store.entries(low, high, max_bytes)
    }
}

impl LogStore for SimDisk {
    fn persist(&mut self, write: LogWrite<'_>) -> Result<(), StorageError> {
        if !self.fuse.spend() {
            // The process died before the write: what `handle_ready` does
            // next has no effect, so any answer will do.
            return Ok(());
        }
        match self.fault.take() {
            None => self.store.persist(write),
            Some(WriteFault::Lost) => Err(StorageError::Failed(
                "simulated write error: nothing written".into(),
            )),
            Some(WriteFault::Landed) => {
                self.store.persist(write)?;
                Err(StorageError::Failed(
                    "simulated sync error after the write landed".into(),
                ))
            }
        }
    }
}
