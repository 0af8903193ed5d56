//! [`RocksLogStore`]: the Raft core's durable log ([`LogStorage`],
//! [`LogStore`]) on the node's RocksDB database.
//!
//! Layout. `CF_RAFT_LOG` maps each entry's big-endian `u64` index to the
//! entry. `CF_RAFT_META` holds the hard state, the latest snapshot's
//! metadata and its data, the node's identity, and the log's last index as
//! of the last write (a check against a log that lost its tail). Every
//! value is the codec's encoding sealed with a CRC32 ([`checksum`]).
//!
//! Compaction may keep a tail: with [`RocksLogStore::set_compaction_tail`]
//! set to `n`, a compaction at snapshot index `s` discards entries only up
//! to `s - n`, so a follower a little behind is still sent entries rather
//! than the whole snapshot. The log then starts at or before `s + 1`.
//!
//! The snapshot's data is one RocksDB value, read and written whole; the
//! node keeps only a small reference there (the state itself is a file,
//! see `kv::snapshot_files`).
//!
//! [`RocksLogStore::open`] checks the whole log before it answers anything:
//! a directory that is corrupt, has lost entries, or belongs to another node
//! or cluster is refused, never started with a shorter log.
//!
//! [`checksum`]: super::checksum

use std::time::{Duration, Instant};

use std::fmt::Display;

use bytes::Bytes;
use raftcfg_raft::{
    Entry, HardState, LogIndex, LogStorage, LogStore, LogWrite, NodeId, Snapshot, SnapshotMetadata,
    StorageError as RaftStorageError, Term,
};
use rocksdb::{ColumnFamily, Direction, IteratorMode, ReadOptions, WriteBatch};

use super::checksum::{seal, unseal};
use super::db::{CF_RAFT_LOG, CF_RAFT_META, Db, StorageError};
use super::identity::{ExpectedIdentity, Identity};
use super::terms::TermRuns;
use crate::codec::{Decode, Encode, decode, encode};

/// Key of the hard state in `CF_RAFT_META`.
pub const HARD_STATE_KEY: &[u8] = b"hard_state";
/// Key of the latest snapshot's metadata in `CF_RAFT_META`.
pub const SNAPSHOT_METADATA_KEY: &[u8] = b"snapshot_metadata";
/// Key of the latest snapshot's data in `CF_RAFT_META`.
pub const SNAPSHOT_DATA_KEY: &[u8] = b"snapshot_data";
/// Key of the identity record (node id and name) in `CF_RAFT_META`.
pub const IDENTITY_KEY: &[u8] = b"identity";
/// Key of the log's last index, written with every batch, in `CF_RAFT_META`.
pub const LAST_INDEX_KEY: &[u8] = b"last_index";

/// The key of the log entry at `index` in `CF_RAFT_LOG`.
pub fn log_key(index: LogIndex) -> [u8; 8] {
    index.get().to_be_bytes()
}

/// A value as stored: the codec's encoding of `value`, sealed.
pub fn stored_value<T: Encode>(value: &T) -> Vec<u8> {
    seal(&encode(value))
}

/// The Raft log, hard state, snapshot and identity of one node, in RocksDB.
///
/// The hard state, the snapshot's metadata, the last index and every
/// entry's term ([`TermRuns`]) are cached in memory and updated only after
/// a write succeeds (but a commit index that alone rose, which waits for
/// the next write); entries and snapshot data are read from the database.
pub struct RocksLogStore {
    db: Db,
    node_id: NodeId,
    name: String,
    hard_state: HardState,
    /// Whether `hard_state`'s commit index was raised after the hard state
    /// last written (see [`RocksLogStore::write`]); the next write that
    /// stores anything stores it too.
    commit_unwritten: bool,
    snapshot: SnapshotMetadata,
    /// The first entry held; at most `snapshot.index + 1` (less with a tail).
    first_index: LogIndex,
    last_index: LogIndex,
    /// The term of each entry from `first_index` to `last_index`.
    terms: TermRuns,
    /// Entries kept behind the snapshot index at compaction.
    compaction_tail: u64,
    /// How long each synced write took, since the last
    /// [`RocksLogStore::take_sync_latencies`] (for the fsync histogram).
    sync_latencies: Vec<Duration>,
}

impl RocksLogStore {
    /// Opens the Raft state in `db`, checking all of it, and the identity
    /// against `expected`. An empty directory gets the identity
    /// (`expected.new_node_id`, `expected.name`) and no Raft state.
    ///
    /// Refuses with [`StorageError::Corrupt`] data that fails its checksum or
    /// cannot be decoded, a log with a gap or that does not start right after
    /// the snapshot, a log shorter than last written, and a commit index past
    /// the last entry; with [`StorageError::Foreign`] a directory of another
    /// node (id or name) or cluster.
    pub fn open(db: Db, expected: &ExpectedIdentity) -> Result<Self, StorageError> {
        if expected.new_node_id.get() == 0 {
            return Err(StorageError::InvalidIdentity(
                "node id 0 is reserved".into(),
            ));
        }
        let identity = read_meta::<Identity>(&db, IDENTITY_KEY, "the identity record")?;
        let hard_state = read_meta::<HardState>(&db, HARD_STATE_KEY, "the hard state")?;
        let snapshot =
            read_meta::<SnapshotMetadata>(&db, SNAPSHOT_METADATA_KEY, "the snapshot metadata")?;
        let snapshot_data = db.get(CF_RAFT_META, SNAPSHOT_DATA_KEY)?;
        let recorded_last = read_meta::<LogIndex>(&db, LAST_INDEX_KEY, "the last index record")?;

        if let Some(data) = &snapshot_data {
            unseal(data).map_err(|e| StorageError::Corrupt(format!("the snapshot data: {e}")))?;
        }
        if snapshot.is_some() != snapshot_data.is_some() {
            return Err(StorageError::Corrupt(
                "the snapshot's metadata and data are not both present".into(),
            ));
        }
        let snapshot = snapshot.unwrap_or_default();
        let scanned = check_log(&db, &snapshot)?;
        let holds_raft_state = hard_state.is_some() || snapshot_data.is_some() || scanned.is_some();
        let (first_index, last_index, terms) =
            scanned.unwrap_or_else(|| (snapshot.index.next(), snapshot.index, TermRuns::default()));
        match recorded_last {
            Some(recorded) if recorded > last_index => {
                return Err(StorageError::Corrupt(format!(
                    "the log ends at {last_index} but was written up to {recorded}: entries are missing"
                )));
            }
            Some(recorded) if recorded < last_index => {
                return Err(StorageError::Corrupt(format!(
                    "the log holds entries up to {last_index} but was written only up to {recorded}"
                )));
            }
            None if holds_raft_state => {
                return Err(StorageError::Corrupt(
                    "Raft state without its last index record".into(),
                ));
            }
            _ => {}
        }
        let hard_state = hard_state.unwrap_or_default();
        if hard_state.commit > last_index {
            return Err(StorageError::Corrupt(format!(
                "the commit index {} is past the last log entry {last_index}: the log was truncated",
                hard_state.commit
            )));
        }

        let identity = match identity {
            Some(identity) => {
                check_identity(&identity, &hard_state, expected)?;
                identity
            }
            None if holds_raft_state => {
                return Err(StorageError::Corrupt(
                    "Raft state without an identity record".into(),
                ));
            }
            None => {
                let identity = Identity {
                    node_id: expected.new_node_id,
                    cluster_id: None,
                    name: expected.name.clone(),
                };
                let mut batch = WriteBatch::default();
                batch.put_cf(db.cf(CF_RAFT_META), IDENTITY_KEY, stored_value(&identity));
                db.write_synced(batch)?;
                identity
            }
        };
        if let (Some(want), Some(have)) = (expected.cluster_id, hard_state.cluster_id)
            && want != have
        {
            return Err(StorageError::Foreign(format!(
                "cluster: it belongs to cluster {have}, not {want}"
            )));
        }

        Ok(Self {
            db,
            node_id: identity.node_id,
            name: identity.name,
            hard_state,
            commit_unwritten: false,
            snapshot,
            first_index,
            last_index,
            terms,
            compaction_tail: 0,
            sync_latencies: Vec::new(),
        })
    }

    /// Raises the commit index to `applied`, the index the state was
    /// applied to, if it is behind it: the commit index a write only raised
    /// is not stored until the next write (see [`RocksLogStore::write`]), so
    /// after a crash or a reopen the state may be ahead of the stored one.
    /// Refuses an index past the log's end: the log then lost entries the
    /// state was built from.
    pub fn commit_at_least(&mut self, applied: LogIndex) -> Result<(), StorageError> {
        if applied <= self.hard_state.commit {
            return Ok(());
        }
        if applied > self.last_index {
            return Err(StorageError::Corrupt(format!(
                "the state was applied up to {applied} but the log ends at {}: entries are missing",
                self.last_index
            )));
        }
        self.hard_state.commit = applied;
        self.commit_unwritten = true;
        Ok(())
    }

    /// Keeps `entries` entries behind the snapshot index when compacting,
    /// for followers that are only a little behind.
    pub fn set_compaction_tail(&mut self, entries: u64) {
        self.compaction_tail = entries;
    }

    /// How many entries the log holds.
    pub fn entry_count(&self) -> u64 {
        (self.last_index.get() + 1).saturating_sub(self.first_index.get())
    }

    /// Replaces the stored snapshot's data, keeping its metadata (used once,
    /// to move a snapshot stored inline by an earlier build into a file).
    pub fn replace_snapshot_data(&mut self, data: bytes::Bytes) -> Result<(), RaftStorageError> {
        let mut batch = WriteBatch::default();
        put_snapshot(
            &mut batch,
            self.db.cf(CF_RAFT_META),
            &Snapshot {
                metadata: self.snapshot.clone(),
                data,
            },
        );
        self.db
            .write_synced(batch)
            .map_err(|e| failed("replace the snapshot data", e))
    }

    /// The durations of the synced writes since the last call.
    pub fn take_sync_latencies(&mut self) -> Vec<Duration> {
        std::mem::take(&mut self.sync_latencies)
    }

    /// This node's identity; the cluster id comes from the hard state.
    pub fn identity(&self) -> Identity {
        Identity {
            node_id: self.node_id,
            cluster_id: self.hard_state.cluster_id,
            name: self.name.clone(),
        }
    }

    /// The database, shared with the key-value state.
    pub fn db(&self) -> &Db {
        &self.db
    }

    fn log_cf(&self) -> &ColumnFamily {
        self.db.cf(CF_RAFT_LOG)
    }

    /// The entry at `index`, which the caller has checked is in the log.
    fn read_entry(&self, index: LogIndex) -> Result<Entry, RaftStorageError> {
        let value = self
            .db
            .get(CF_RAFT_LOG, &log_key(index))
            .map_err(|e| failed(format_args!("read log entry {index}"), e))?
            .ok_or_else(|| failed(format_args!("read log entry {index}"), "it is missing"))?;
        decode_entry(index, &value).map_err(|e| failed(format_args!("read log entry {index}"), e))
    }
}

/// Checks the stored identity against the hard state and the caller's expectations.
fn check_identity(
    identity: &Identity,
    hard_state: &HardState,
    expected: &ExpectedIdentity,
) -> Result<(), StorageError> {
    if identity.node_id.get() == 0 {
        return Err(StorageError::Corrupt(
            "the identity record holds node id 0".into(),
        ));
    }
    if identity.cluster_id.is_some() && identity.cluster_id != hard_state.cluster_id {
        return Err(StorageError::Corrupt(
            "the identity record and the hard state disagree on the cluster id".into(),
        ));
    }
    if let Some(want) = expected.node_id
        && want != identity.node_id
    {
        return Err(StorageError::Foreign(format!(
            "node: it holds node {} ({:?}), not node {want}",
            identity.node_id, identity.name
        )));
    }
    if identity.name != expected.name {
        return Err(StorageError::Foreign(format!(
            "node: it was created for {:?} (node {}), not {:?}",
            identity.name, identity.node_id, expected.name
        )));
    }
    Ok(())
}

/// Reads every log entry and checks that the log is whole: each value
/// passes its checksum and decodes to the entry its key names, the entries
/// start right after the snapshot, leave no gap and never go back in term.
/// Returns the last index, or `None` if the log holds no entries.
fn check_log(
    db: &Db,
    snapshot: &SnapshotMetadata,
) -> Result<Option<(LogIndex, LogIndex, TermRuns)>, StorageError> {
    let mut bounds: Option<(LogIndex, LogIndex)> = None;
    let mut terms = TermRuns::default();
    let mut previous_term = Term(0);
    for item in
        db.raw()
            .iterator_cf_opt(db.cf(CF_RAFT_LOG), Db::scan_options(), IteratorMode::Start)
    {
        let (key, value) = item.map_err(StorageError::Read)?;
        let index = key_index(&key)
            .ok_or_else(|| StorageError::Corrupt(format!("a log key of {} bytes", key.len())))?;
        match bounds {
            None if index > snapshot.index.next() => {
                return Err(StorageError::Corrupt(format!(
                    "the log starts at {index}, after the snapshot at {}: entries are missing",
                    snapshot.index
                )));
            }
            Some((_, last)) if index != last.next() => {
                return Err(StorageError::Corrupt(format!(
                    "the log has a gap: entry {} is missing before {index}",
                    last.next()
                )));
            }
            _ => {}
        }
        let entry = decode_entry(index, &value)
            .map_err(|e| StorageError::Corrupt(format!("log entry {index}: {e}")))?;
        if entry.term < previous_term {
            return Err(StorageError::Corrupt(format!(
                "log entry {index} has term {}, before the term {previous_term} of the entry before it",
                entry.term
            )));
        }
        if index == snapshot.index && entry.term != snapshot.term {
            return Err(StorageError::Corrupt(format!(
                "log entry {index} has term {}, but the snapshot at that index has term {}",
                entry.term, snapshot.term
            )));
        }
        previous_term = entry.term;
        terms.record(index, entry.term);
        bounds = Some((bounds.map_or(index, |(first, _)| first), index));
    }
    if let Some((_, last)) = bounds
        && last < snapshot.index
    {
        return Err(StorageError::Corrupt(format!(
            "the log ends at {last}, before the snapshot at {}",
            snapshot.index
        )));
    }
    Ok(bounds.map(|(first, last)| (first, last, terms)))
}

/// The index a log key names, if it is one.
fn key_index(key: &[u8]) -> Option<LogIndex> {
    Some(LogIndex(u64::from_be_bytes(key.try_into().ok()?)))
}

/// Opens and decodes the stored entry at `index`.
fn decode_entry(index: LogIndex, value: &[u8]) -> Result<Entry, String> {
    let encoding = unseal(value).map_err(|e| e.to_string())?;
    let entry = decode::<Entry>(encoding).map_err(|e| format!("cannot be decoded: {e}"))?;
    if entry.index != index {
        return Err(format!("it holds the entry of index {}", entry.index));
    }
    Ok(entry)
}

/// Reads and decodes the sealed value of `key` in `CF_RAFT_META`.
fn read_meta<T: Decode>(db: &Db, key: &[u8], what: &str) -> Result<Option<T>, StorageError> {
    let Some(value) = db.get(CF_RAFT_META, key)? else {
        return Ok(None);
    };
    let encoding = unseal(&value).map_err(|e| StorageError::Corrupt(format!("{what}: {e}")))?;
    decode(encoding)
        .map(Some)
        .map_err(|e| StorageError::Corrupt(format!("{what} cannot be decoded: {e}")))
}

/// A fatal storage failure for the core, with what was being done.
fn failed(context: impl Display, error: impl Display) -> RaftStorageError {
    RaftStorageError::Failed(format!("{context}: {error}"))
}

/// Adds a snapshot's metadata and data to `batch`.
fn put_snapshot(batch: &mut WriteBatch, meta: &ColumnFamily, snapshot: &Snapshot) {
    batch.put_cf(
        meta,
        SNAPSHOT_METADATA_KEY,
        stored_value(&snapshot.metadata),
    );
    batch.put_cf(meta, SNAPSHOT_DATA_KEY, seal(&snapshot.data));
}

impl LogStorage for RocksLogStore {
    fn hard_state(&self) -> Result<HardState, RaftStorageError> {
        Ok(self.hard_state)
    }

    fn snapshot(&self) -> Result<Snapshot, RaftStorageError> {
        let data = match self.db.get(CF_RAFT_META, SNAPSHOT_DATA_KEY) {
            Ok(Some(value)) => Bytes::copy_from_slice(
                unseal(&value).map_err(|e| failed("read the snapshot data", e))?,
            ),
            Ok(None) => Bytes::new(),
            Err(e) => return Err(failed("read the snapshot data", e)),
        };
        Ok(Snapshot {
            metadata: self.snapshot.clone(),
            data,
        })
    }

    fn snapshot_metadata(&self) -> Result<SnapshotMetadata, RaftStorageError> {
        Ok(self.snapshot.clone())
    }

    fn first_index(&self) -> Result<LogIndex, RaftStorageError> {
        Ok(self.first_index)
    }

    fn last_index(&self) -> Result<LogIndex, RaftStorageError> {
        Ok(self.last_index)
    }

    fn term(&self, index: LogIndex) -> Result<Term, RaftStorageError> {
        if index == self.snapshot.index {
            return Ok(self.snapshot.term);
        }
        if index < self.first_index {
            return Err(RaftStorageError::Compacted(index));
        }
        if index > self.last_index {
            return Err(RaftStorageError::Unavailable(index));
        }
        match self.terms.term(index) {
            Some(term) => Ok(term),
            None => Ok(self.read_entry(index)?.term),
        }
    }

    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, RaftStorageError> {
        if low < self.first_index {
            return Err(RaftStorageError::Compacted(low));
        }
        if high > self.last_index.next() {
            return Err(RaftStorageError::Unavailable(high.prev()));
        }
        if low >= high {
            return Ok(Vec::new());
        }
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(log_key(high));
        let start = log_key(low);
        let iterator = self.db.raw().iterator_cf_opt(
            self.log_cf(),
            options,
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut out = Vec::new();
        let mut size = 0;
        let mut next = low;
        for item in iterator {
            let (key, value) =
                item.map_err(|e| failed(format_args!("read log entry {next}"), e))?;
            if key_index(&key) != Some(next) {
                return Err(failed(
                    format_args!("read log entry {next}"),
                    "it is missing",
                ));
            }
            let entry = decode_entry(next, &value)
                .map_err(|e| failed(format_args!("read log entry {next}"), e))?;
            size += entry.size_bytes();
            if !out.is_empty() && size > max_bytes {
                return Ok(out);
            }
            out.push(entry);
            next = next.next();
        }
        if next != high {
            return Err(failed(
                format_args!("read log entry {next}"),
                "it is missing",
            ));
        }
        Ok(out)
    }
}

impl LogStore for RocksLogStore {
    /// Writes everything in one synced batch, in the order of the write's
    /// fields; the cached bounds change only once the batch is durable.
    fn persist(&mut self, write: LogWrite<'_>) -> Result<(), RaftStorageError> {
        self.write(write, true)
    }

    /// Like `persist`, without the sync.
    fn store(&mut self, write: LogWrite<'_>) -> Result<(), RaftStorageError> {
        self.write(write, false)
    }

    fn sync(&mut self) -> Result<(), RaftStorageError> {
        let started = Instant::now();
        self.db
            .sync_wal()
            .map_err(|e| failed("sync the Raft log", e))?;
        self.sync_latencies.push(started.elapsed());
        Ok(())
    }
}

impl RocksLogStore {
    /// Writes everything in one batch, in the order of the write's fields,
    /// synced if `sync`; the cached bounds change only once the batch is
    /// written.
    ///
    /// A write that only raises the commit index writes nothing: the new
    /// index is kept in memory and stored with the next write (see
    /// `LogStore`). A leader commits in a round of its own, whose other
    /// write (the state applied) must come before its answer; a second
    /// write there cost every lone write about 15 µs. The state's applied
    /// index, written with the state, is the commit index a restart
    /// starts from when it is ahead ([`RocksLogStore::commit_at_least`]).
    fn write(&mut self, write: LogWrite<'_>, sync: bool) -> Result<(), RaftStorageError> {
        if write.is_empty() {
            return Ok(());
        }
        if let Some(raised) = write.hard_state.filter(|_| self.only_raises_commit(&write)) {
            if raised.commit > self.last_index {
                return Err(RaftStorageError::Failed(format!(
                    "the commit index {} would be past the last log entry {}",
                    raised.commit, self.last_index
                )));
            }
            self.hard_state = *raised;
            self.commit_unwritten = true;
            return Ok(());
        }
        let log = self.db.cf(CF_RAFT_LOG);
        let meta = self.db.cf(CF_RAFT_META);
        let mut batch = WriteBatch::default();
        let mut snapshot = &self.snapshot;
        let mut first = self.first_index;
        let mut last = self.last_index;

        if let Some(received) = write.snapshot {
            batch.delete_range_cf(log, log_key(first), log_key(last.next()));
            put_snapshot(&mut batch, meta, received);
            snapshot = &received.metadata;
            first = snapshot.index.next();
            last = snapshot.index;
        }

        if let (Some(first), Some(new_last)) = (write.entries.first(), write.entries.last()) {
            if first.index <= snapshot.index || first.index > last.next() {
                return Err(RaftStorageError::Failed(format!(
                    "append at {} would leave a gap or overwrite the snapshot (snapshot {}, last {last})",
                    first.index, snapshot.index
                )));
            }
            for (offset, entry) in (0..).zip(write.entries) {
                if entry.index != first.index.plus(offset) {
                    return Err(RaftStorageError::Failed(format!(
                        "entries to append are not consecutive: {} follows {}",
                        entry.index,
                        first.index.plus(offset).prev()
                    )));
                }
                batch.put_cf(log, log_key(entry.index), stored_value(entry));
            }
            if last > new_last.index {
                batch.delete_range_cf(log, log_key(new_last.index.next()), log_key(last.next()));
            }
            last = new_last.index;
        }

        if let Some(hard_state) = write
            .hard_state
            .or(self.commit_unwritten.then_some(&self.hard_state))
        {
            batch.put_cf(meta, HARD_STATE_KEY, stored_value(hard_state));
        }

        if let Some(compaction) = write.compaction
            && compaction.metadata.index > snapshot.index
        {
            let index = compaction.metadata.index;
            // Keep the tail only if the log reaches the snapshot index.
            let keep_from = if index <= last {
                LogIndex(index.get().saturating_sub(self.compaction_tail)).next()
            } else {
                last.next()
            };
            if keep_from > first {
                batch.delete_range_cf(log, log_key(first), log_key(keep_from));
                first = keep_from;
            }
            put_snapshot(&mut batch, meta, compaction);
            snapshot = &compaction.metadata;
            if index > last {
                first = index.next();
                last = index;
            }
        }

        let commit = write.hard_state.unwrap_or(&self.hard_state).commit;
        if commit > last {
            return Err(RaftStorageError::Failed(format!(
                "the commit index {commit} would be past the last log entry {last}"
            )));
        }
        batch.put_cf(meta, LAST_INDEX_KEY, stored_value(&last));

        if !sync {
            self.db
                .write_unsynced(batch)
                .map_err(|e| failed("store the Raft log", e))?;
        } else {
            let started = Instant::now();
            if self.db.faults().skips_log_sync() {
                self.db
                    .write_unsynced(batch)
                    .map_err(|e| failed("persist the Raft log", e))?;
            } else {
                self.db
                    .write_synced(batch)
                    .map_err(|e| failed("persist the Raft log", e))?;
            }
            self.sync_latencies.push(started.elapsed());
        }
        self.snapshot = snapshot.clone();
        self.first_index = first;
        self.last_index = last;
        if write.snapshot.is_some() {
            self.terms.clear();
        }
        if let Some(appended) = write.entries.first() {
            self.terms.truncate_from(appended.index);
            for entry in write.entries {
                self.terms.record(entry.index, entry.term);
            }
        }
        if first > last {
            self.terms.clear();
        } else {
            self.terms.discard_before(first);
        }
        if let Some(hard_state) = write.hard_state {
            self.hard_state = *hard_state;
        }
        self.commit_unwritten = false;
        Ok(())
    }

    /// Whether `write` changes nothing but the commit index.
    fn only_raises_commit(&self, write: &LogWrite<'_>) -> bool {
        write.snapshot.is_none()
            && write.entries.is_empty()
            && write.compaction.is_none()
            && write.hard_state.is_some_and(|new| {
                (new.term, new.vote, new.cluster_id)
                    == (
                        self.hard_state.term,
                        self.hard_state.vote,
                        self.hard_state.cluster_id,
                    )
            })
    }
}
