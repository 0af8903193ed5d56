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
    /// The write-ahead log files made at open could not be written.
    #[error(
        "cannot write the two {bytes}-byte write-ahead log files made at start (--wal-file-bytes \
         sets their size, 0 makes none): {source}"
    )]
    PrepareWal {
        /// The size of each file.
        bytes: u64,
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

/// Write-ahead log files RocksDB keeps for reuse once obsolete, instead of
/// deleting them (see [`DbOptions::wal_file_bytes`]).
const RECYCLED_WAL_FILES: usize = 2;

/// The key in the default column family (used for nothing else) whose
/// write and flush make RocksDB switch to another write-ahead log file.
const WAL_SWITCH_KEY: &[u8] = b"raftcfg/wal-switch";

/// How the node's RocksDB is set up: its memory, and the write-ahead log
/// files made ready at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DbOptions {
    /// What RocksDB may hold in memory.
    pub memory: MemoryBudget,
    /// The size of the write-ahead log files made at open for RocksDB to
    /// overwrite (`--wal-file-bytes`; 0 makes none). An `fdatasync` after
    /// writing inside a file's size is cheaper than after an append,
    /// which grows the file: the file system must then commit its journal
    /// too. RocksDB overwrites only recycled log files, and recycles only
    /// the files of the current open, so each open fills
    /// `RECYCLED_WAL_FILES` files of this size and has RocksDB switch past
    /// them. Later files are recycled as they become obsolete.
    pub wal_file_bytes: u64,
}

impl Default for DbOptions {
    /// No log files made at open: for tests and tools, which open many
    /// short-lived databases. `raftcfg serve` makes them
    /// ([`DbOptions::SERVE_WAL_FILE_BYTES`]).
    fn default() -> Self {
        Self {
            memory: MemoryBudget::default(),
            wal_file_bytes: 0,
        }
    }
}

impl DbOptions {
    /// `raftcfg serve`'s default `--wal-file-bytes`.
    pub const SERVE_WAL_FILE_BYTES: u64 = 64 << 20;
    /// The smallest `--wal-file-bytes` accepted but 0.
    pub const MIN_WAL_FILE_BYTES: u64 = 1 << 20;
    /// The largest `--wal-file-bytes` accepted.
    pub const MAX_WAL_FILE_BYTES: u64 = 1 << 30;

    /// Why these options cannot run a node, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        self.memory.check()?;
        let bytes = self.wal_file_bytes;
        if bytes != 0 && !(Self::MIN_WAL_FILE_BYTES..=Self::MAX_WAL_FILE_BYTES).contains(&bytes) {
            return Err(format!(
                "--wal-file-bytes must be 0 or between {} and {}; got {bytes}",
                Self::MIN_WAL_FILE_BYTES,
                Self::MAX_WAL_FILE_BYTES
            ));
        }
        Ok(())
    }
}

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

/// The size of the write-ahead log files to make at open: `wanted`, but
/// at most an eighth of the `free` bytes (the two files then take a
/// quarter), and none if that is below the smallest size. A small volume
/// then still starts, with smaller files or none.
fn fitting_wal_file_bytes(wanted: u64, free: u64) -> u64 {
    let bytes = wanted.min(free / 8);
    if bytes < DbOptions::MIN_WAL_FILE_BYTES {
        0
    } else {
        bytes
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
        Self::open_with(path, DbOptions::default(), Faults::default())
    }

    /// Opens the database in `path` as `config` says, with `faults`
    /// planted (tests only).
    pub fn open_with(path: &Path, config: DbOptions, faults: Faults) -> Result<Self, StorageError> {
        let memory = config.memory;
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
        // Recovery still stops at the first record of an older use of a
        // recycled file: each record carries its file's number.
        options.set_recycle_log_file_num(RECYCLED_WAL_FILES);
        // Every column family flushed at once, with one switch of log
        // files: flushed one after another, they left a file of a few
        // writes between two switches, and a file is reused at the size it
        // was written to (appends beyond it cost a journal commit again).
        options.set_atomic_flush(true);
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
        let opened = Self {
            inner: Arc::new(db),
            faults,
        };
        // A leader's writes may wait for a sync (see `LeaderSync`). After a
        // crash of the process alone they are still in the system's cache,
        // readable but not durable: sync them before the log counts them.
        opened.sync_wal()?;
        let bytes = match rustix::fs::statvfs(path) {
            Ok(space) => fitting_wal_file_bytes(
                config.wal_file_bytes,
                space.f_bavail.saturating_mul(space.f_frsize),
            ),
            Err(_) => config.wal_file_bytes,
        };
        if bytes < config.wal_file_bytes {
            tracing::warn!(
                wanted = config.wal_file_bytes,
                bytes,
                "the disk has little free space: smaller write-ahead log files made at start \
                 (--wal-file-bytes)"
            );
        }
        if bytes > 0 {
            opened
                .prepare_wal_files(bytes)
                .map_err(|source| StorageError::PrepareWal { bytes, source })?;
        }
        Ok(opened)
    }

    /// Leaves RocksDB writing into a recycled log file of at least `bytes`,
    /// with another waiting (see [`DbOptions::wal_file_bytes`]): fills the
    /// current file with log-only records (which reach no memtable), then
    /// switches to the next, twice.
    fn prepare_wal_files(&self, bytes: u64) -> Result<(), rocksdb::Error> {
        const CHUNK: usize = 1 << 20;
        let filler = vec![0u8; CHUNK];
        for _ in 0..RECYCLED_WAL_FILES {
            let mut written = 0;
            while written < bytes {
                let mut batch = WriteBatch::default();
                batch.put_log_data(&filler);
                self.inner.write(batch)?;
                written += CHUNK as u64;
            }
            self.inner.put(WAL_SWITCH_KEY, b"")?;
            // Flushing the default column family's memtable starts another
            // log file; the full one, obsolete once every column family it
            // holds writes of is flushed (all of them are, after open), is
            // kept for reuse.
            self.inner.flush()?;
        }
        Ok(())
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

    const WAL_FILE_BYTES: u64 = DbOptions::MIN_WAL_FILE_BYTES;

    fn open_prepared(dir: &Path) -> Db {
        let config = DbOptions {
            wal_file_bytes: WAL_FILE_BYTES,
            ..DbOptions::default()
        };
        Db::open_with(dir, config, Faults::default()).unwrap()
    }

    /// The sizes of the write-ahead log files in `dir`, oldest number first.
    fn log_file_sizes(dir: &Path) -> Vec<u64> {
        let mut logs: Vec<(String, u64)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap())
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
            .map(|entry| {
                let size = entry.metadata().unwrap().len();
                (entry.file_name().to_string_lossy().into_owned(), size)
            })
            .collect();
        logs.sort();
        logs.into_iter().map(|(_, size)| size).collect()
    }

    fn put_synced(db: &Db, keys: std::ops::Range<u32>) {
        for i in keys {
            let mut batch = WriteBatch::default();
            batch.put_cf(db.cf(CF_KV), i.to_be_bytes(), [i as u8; 300]);
            db.write_synced(batch).unwrap();
        }
    }

    #[test]
    fn a_prepared_database_writes_inside_a_recycled_log_file_with_another_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_prepared(dir.path());
        let sizes = log_file_sizes(dir.path());
        assert!(
            sizes.iter().filter(|size| **size >= WAL_FILE_BYTES).count() >= 2,
            "two full files, the current one and one waiting: {sizes:?}"
        );
        let current = *sizes.last().unwrap();
        assert!(
            current >= WAL_FILE_BYTES,
            "the current file is a full one: {sizes:?}"
        );
        put_synced(&db, 0..100);
        let after = log_file_sizes(dir.path());
        assert_eq!(
            after.last(),
            Some(&current),
            "synced writes went inside the file, which did not grow: {sizes:?} then {after:?}"
        );
    }

    #[test]
    fn an_unprepared_database_appends_to_its_log_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let before = *log_file_sizes(dir.path()).last().unwrap();
        put_synced(&db, 0..100);
        let after = *log_file_sizes(dir.path()).last().unwrap();
        assert!(after > before, "{before} then {after}");
    }

    #[test]
    fn writes_in_a_recycled_log_file_are_recovered_and_its_older_records_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_prepared(dir.path());
        // Past the recycled file's size too: the file grows beyond it.
        let keys = 0..5_000u32;
        put_synced(&db, keys.clone());
        // Closed with the writes only in the log (memtables not flushed):
        // the reopen replays the log, written over the filler of the
        // previous use of its file.
        drop(db);
        let db = open_prepared(dir.path());
        for i in keys.clone() {
            assert_eq!(
                db.get(CF_KV, &i.to_be_bytes()).unwrap(),
                Some(vec![i as u8; 300]),
                "key {i}"
            );
        }
        assert_eq!(db.get(CF_KV, &keys.end.to_be_bytes()).unwrap(), None);
        // And again, with fewer writes than the file holds.
        put_synced(&db, 10_000..10_010);
        drop(db);
        let db = open_prepared(dir.path());
        for i in (0..5_000u32).chain(10_000..10_010) {
            assert!(
                db.get(CF_KV, &i.to_be_bytes()).unwrap().is_some(),
                "key {i}"
            );
        }
    }

    #[test]
    fn a_record_from_a_log_files_previous_use_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_prepared(dir.path());
        let put_k = |value: &[u8]| {
            let mut batch = WriteBatch::default();
            batch.put_cf(db.cf(CF_KV), b"k", value);
            db.write_synced(batch).unwrap();
        };
        // Each flush switches log files: this file is reused two switches
        // on, with k = v1 right behind its first record.
        put_synced(&db, 100..101);
        put_k(b"v1");
        db.raw().flush_cf(db.cf(CF_KV)).unwrap();
        put_k(b"v2");
        db.raw().flush_cf(db.cf(CF_KV)).unwrap();
        // A record of the same size as the first, over it: k = v1 of the
        // previous use follows it intact.
        put_synced(&db, 0..1);
        drop(db);
        let db = open_prepared(dir.path());
        assert_eq!(db.get(CF_KV, b"k").unwrap(), Some(b"v2".to_vec()));
        assert!(db.get(CF_KV, &0u32.to_be_bytes()).unwrap().is_some());
    }

    #[test]
    fn the_log_files_made_at_open_take_at_most_a_quarter_of_the_free_space() {
        let wanted = DbOptions::SERVE_WAL_FILE_BYTES;
        assert_eq!(fitting_wal_file_bytes(wanted, 100 << 30), wanted);
        assert_eq!(fitting_wal_file_bytes(wanted, 80 << 20), 10 << 20);
        assert_eq!(fitting_wal_file_bytes(wanted, 8 << 20), 1 << 20);
        assert_eq!(
            fitting_wal_file_bytes(wanted, (8 << 20) - 1),
            0,
            "below 1 MiB: none"
        );
        assert_eq!(fitting_wal_file_bytes(0, 100 << 30), 0);
    }

    #[test]
    fn the_log_file_size_is_zero_or_within_bounds() {
        let with = |wal_file_bytes| DbOptions {
            wal_file_bytes,
            ..DbOptions::default()
        };
        assert!(with(0).check().is_ok());
        assert!(with(DbOptions::MIN_WAL_FILE_BYTES).check().is_ok());
        assert!(with(DbOptions::MAX_WAL_FILE_BYTES).check().is_ok());
        let error = with(DbOptions::MIN_WAL_FILE_BYTES - 1).check().unwrap_err();
        assert!(error.contains("--wal-file-bytes"), "{error}");
        assert!(with(DbOptions::MAX_WAL_FILE_BYTES + 1).check().is_err());
    }

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
        let config = DbOptions {
            memory,
            ..DbOptions::default()
        };
        let db = Db::open_with(dir.path(), config, Faults::default()).unwrap();
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
