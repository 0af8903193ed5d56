//! [`Db`]: the node's RocksDB database and its column families.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};

use crate::faults::Faults;

/// Raft log entries, keyed by big-endian index.
pub const CF_RAFT_LOG: &str = "raft_log";
/// Raft metadata: hard state, snapshot, node identity.
pub const CF_RAFT_META: &str = "raft_meta";
/// Key-value state: key → stored value with its revisions.
pub const CF_KV: &str = "kv";
/// Key-value metadata: applied index, current revision, compaction point.
pub const CF_KV_META: &str = "kv_meta";
/// The change log for watches, keyed by big-endian revision.
pub const CF_KV_CHANGES: &str = "kv_changes";

const COLUMN_FAMILIES: [&str; 5] = [CF_RAFT_LOG, CF_RAFT_META, CF_KV, CF_KV_META, CF_KV_CHANGES];

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB could not open the data directory.
    #[error("cannot open the data directory {path}: {source}")]
    Open {
        /// The data directory.
        path: PathBuf,
        /// RocksDB's error.
        source: rocksdb::Error,
    },
    /// A read failed.
    #[error("storage read failed: {0}")]
    Read(rocksdb::Error),
    /// A synced write batch failed.
    #[error("storage write failed: {0}")]
    WriteBatch(rocksdb::Error),
    /// Stored data cannot be decoded or is inconsistent.
    #[error("the data directory is corrupt: {0}")]
    Corrupt(String),
    /// The data directory belongs to another node or cluster.
    #[error("the data directory belongs to another {0}")]
    Foreign(String),
    /// The caller asked to record an identity that is not valid.
    #[error("invalid node identity: {0}")]
    InvalidIdentity(String),
}

/// The most write-ahead log RocksDB keeps before flushing memtables.
const MAX_TOTAL_WAL_BYTES: u64 = 256 << 20;

/// The memory all memtables together may hold.
const MEMTABLES_BYTES: usize = 128 << 20;

/// The node's database, shared by the Raft log store and the key-value state.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DB>,
    faults: Faults,
}

impl Db {
    /// Opens (creating if needed) the database in `path`.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::open_with(path, Faults::default())
    }

    /// Opens the database in `path` with `faults` planted (tests only).
    pub fn open_with(path: &Path, faults: Faults) -> Result<Self, StorageError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Unsynced writes wait in the write-ahead log's buffer in memory
        // until a synced write flushes it, so kill -9 drops them.
        options.set_manual_wal_flush(faults.simulates_power_loss());
        // Bounded, so table files can never take the descriptors the
        // process budgets for connections (see `fd_budget`).
        options.set_max_open_files(crate::fd_budget::ROCKSDB_MAX_OPEN_FILES);
        // Memtables are flushed once the write-ahead log holds this much, so
        // a restart after kill -9 replays at most this much of it (by
        // default it may grow to several times all memtables together).
        options.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
        // One budget for the memtables of every column family, so large
        // values (written to the log, the state and the change log alike)
        // cannot grow the process by a few hundred MiB of memtables.
        options.set_db_write_buffer_size(MEMTABLES_BYTES);
        let families = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, families).map_err(|source| {
            StorageError::Open {
                path: path.to_owned(),
                source,
            }
        })?;
        Ok(Self {
            inner: Arc::new(db),
            faults,
        })
    }

    /// A column family by name (one of the `CF_*` constants).
    pub fn cf(&self, name: &str) -> &ColumnFamily {
        self.inner
            .cf_handle(name)
            .unwrap_or_else(|| panic!("column family {name} is created at open"))
    }

    /// The value of `key` in column family `cf`.
    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner
            .get_cf(self.cf(cf), key)
            .map_err(StorageError::Read)
    }

    /// The faults the database was opened with.
    pub fn faults(&self) -> Faults {
        self.faults
    }

    /// Writes `batch` atomically and syncs it to disk before returning,
    /// with every earlier write.
    pub fn write_synced(&self, batch: WriteBatch) -> Result<(), StorageError> {
        if self.faults.simulates_power_loss() {
            self.inner.write(batch).map_err(StorageError::WriteBatch)?;
            return self.inner.flush_wal(true).map_err(StorageError::WriteBatch);
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.inner
            .write_opt(batch, &options)
            .map_err(StorageError::WriteBatch)
    }

    /// Writes `batch` atomically without waiting for the disk. A crash may
    /// lose it, and every later unsynced batch, but never part of it; the
    /// next synced write makes it durable too (one write-ahead log).
    pub fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.inner.write(batch).map_err(StorageError::WriteBatch)
    }

    /// The underlying RocksDB handle, for iteration.
    pub fn raw(&self) -> &DB {
        &self.inner
    }
}
