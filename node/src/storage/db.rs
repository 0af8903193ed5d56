//! [`Db`]: the node's RocksDB database and its column families.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, Options, ReadOptions,
    WriteBatch, WriteOptions,
};

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
    /// Another process holds the data directory's lock.
    #[error(
        "another raftcfg is using the data directory {path} (it holds its LOCK file): stop \
         it, or give this node another --data-dir"
    )]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
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

/// The memory RocksDB may hold for writes and reads, whatever the state's
/// size (`--memtables-bytes`, `--block-cache-bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBudget {
    /// What all memtables together may hold. One column family's memtable
    /// is switched and flushed at half of it, so that no one column family
    /// (the state, while a new member restores a snapshot, say) holds the
    /// whole budget.
    pub memtables_bytes: usize,
    /// The block cache every column family shares. Left alone, RocksDB
    /// gives each column family a cache of its own, which with six of them
    /// and large values grows the process by a few hundred MiB.
    pub block_cache_bytes: usize,
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self {
            memtables_bytes: 64 << 20,
            block_cache_bytes: 32 << 20,
        }
    }
}

impl MemoryBudget {
    /// The smallest memtable budget accepted: below it RocksDB flushes a
    /// table file every few writes.
    pub const MIN_MEMTABLES_BYTES: usize = 4 << 20;
    /// The smallest block cache accepted.
    pub const MIN_BLOCK_CACHE_BYTES: usize = 1 << 20;

    /// Why this budget cannot run a node, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.memtables_bytes < Self::MIN_MEMTABLES_BYTES {
            return Err(format!(
                "--memtables-bytes must be at least {}",
                Self::MIN_MEMTABLES_BYTES
            ));
        }
        if self.block_cache_bytes < Self::MIN_BLOCK_CACHE_BYTES {
            return Err(format!(
                "--block-cache-bytes must be at least {}",
                Self::MIN_BLOCK_CACHE_BYTES
            ));
        }
        Ok(())
    }
}

/// The node's database, shared by the Raft log store and the key-value state.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DB>,
    faults: Faults,
}

impl Db {
    /// Opens (creating if needed) the database in `path`.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::open_with(path, MemoryBudget::default(), Faults::default())
    }

    /// Opens the database in `path` within `memory`, with `faults` planted
    /// (tests only).
    pub fn open_with(
        path: &Path,
        memory: MemoryBudget,
        faults: Faults,
    ) -> Result<Self, StorageError> {
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
        options.set_db_write_buffer_size(memory.memtables_bytes);
        let mut tables = BlockBasedOptions::default();
        tables.set_block_cache(&Cache::new_lru_cache(memory.block_cache_bytes));
        options.set_block_based_table_factory(&tables);
        let families = COLUMN_FAMILIES.iter().map(|name| {
            let mut family = Options::default();
            family.set_block_based_table_factory(&tables);
            family.set_write_buffer_size(memory.memtables_bytes / 2);
            ColumnFamilyDescriptor::new(*name, family)
        });
        let db = DB::open_cf_descriptors(&options, path, families).map_err(|source| {
            // RocksDB says "IO error: While lock file: DIR/LOCK: Resource
            // temporarily unavailable" when another process has it open.
            if source.to_string().contains("While lock file") {
                StorageError::Locked {
                    path: path.to_owned(),
                }
            } else {
                StorageError::Open {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        let db = Self {
            inner: Arc::new(db),
            faults,
        };
        // A leader's writes may wait for a sync (see `LeaderSync`). After a
        // crash of the process alone they are still in the system's cache,
        // readable but not durable: sync them before the log counts them.
        db.sync_wal()?;
        Ok(db)
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

    /// Makes every write so far durable (the write-ahead log synced).
    pub fn sync_wal(&self) -> Result<(), StorageError> {
        if self.faults.skips_log_sync() {
            return Ok(());
        }
        self.inner.flush_wal(true).map_err(StorageError::WriteBatch)
    }

    /// The underlying RocksDB handle, for iteration.
    pub fn raw(&self) -> &DB {
        &self.inner
    }

    /// Read options for a scan over much of a column family (writing a
    /// snapshot, checking the log at start): the blocks it reads once do
    /// not push the ones reads need out of the block cache.
    pub fn scan_options() -> ReadOptions {
        let mut options = ReadOptions::default();
        options.fill_cache(false);
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_property(db: &Db, cf: &str, name: &str) -> u64 {
        db.raw()
            .property_int_value_cf(db.cf(cf), name)
            .unwrap()
            .unwrap_or_else(|| panic!("no {name} for {cf}"))
    }

    #[test]
    fn every_column_family_shares_one_block_cache_of_the_set_size() {
        let dir = tempfile::tempdir().unwrap();
        let memory = MemoryBudget {
            block_cache_bytes: 8 << 20,
            ..MemoryBudget::default()
        };
        let db = Db::open_with(dir.path(), memory, Faults::default()).unwrap();
        let mut batch = WriteBatch::default();
        for i in 0..1_000u32 {
            batch.put_cf(db.cf(CF_KV), i.to_be_bytes(), [7u8; 1024]);
        }
        db.write_synced(batch).unwrap();
        db.raw().flush_cf(db.cf(CF_KV)).unwrap();
        // Read from a table file, so its blocks enter the cache.
        for i in 0..1_000u32 {
            assert!(db.get(CF_KV, &i.to_be_bytes()).unwrap().is_some());
        }
        let usage = int_property(&db, CF_KV, "rocksdb.block-cache-usage");
        assert!(usage > 0, "reads filled the cache");
        for cf in COLUMN_FAMILIES {
            assert_eq!(
                int_property(&db, cf, "rocksdb.block-cache-capacity"),
                8 << 20,
                "{cf}"
            );
            assert_eq!(
                int_property(&db, cf, "rocksdb.block-cache-usage"),
                usage,
                "{cf} sees the blocks read from {CF_KV}"
            );
        }
    }
}
