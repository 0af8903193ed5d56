//! Snapshots of the key-value state — for Raft, for backups and for the
//! state's [`Digest`] — written and read as streams, so that neither side
//! ever holds the state in memory.
//!
//! Encoding, version [`SNAPSHOT_VERSION`]:
//!
//! ```text
//! body:    u8 version | u64 revision | record* | member* | auth? | u8 0
//! record:  u8 1 | key | u64 create_revision | u64 mod_revision | u64 version | value
//! member:  u8 2 | u64 node_id | member address (see `member.rs`)
//! auth:    u8 3 | u32 length | auth state (see `auth.rs`), only once it was changed
//! trailer: 32 bytes, SHA-256 of the body
//! ```
//!
//! Records are in key order, so the body is a canonical form of the state
//! and its SHA-256 — the trailer — is the state's [`Digest`]: members that
//! applied the same commands have equal digests. The body holds what is
//! replicated (keys, values, their revisions and versions, the revision, the
//! member directory, users and roles) and nothing local to a member: not the applied index
//! (the caller's, with the Raft snapshot metadata), not the change log or
//! its compaction point.
//!
//! [`write_state`] reads one RocksDB snapshot, so it may run on any thread
//! while the driver goes on applying: the state it writes is the one at the
//! applied index stored with it. [`KvStore::restore_file`] replaces the
//! state in bounded batches; a marker row says a restore is under way, so a
//! crash in the middle is finished at the next start (see `Replica::open`)
//! and a reader on another thread never takes a half-restored state for a
//! whole one.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::{BufMut, Bytes};
use raftcfg_raft::{LogIndex, NodeId};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use sha2::{Digest as _, Sha256};

use super::auth::AuthState;
use super::key::Key;
use super::limits::Limits;
use super::member::{self, MemberAddress};
use super::record::KeyRecord;
use super::revision::Revision;
use super::snapshot_files::{SnapshotDir, SnapshotRef};
use super::store::{AUTH_KEY, KvStore, META_KEY, Meta, decode_kv_row};
use crate::codec::{self, DecodeError, Encode};
use crate::storage::checksum::{seal, unseal};
use crate::storage::db::{CF_KV, CF_KV_CHANGES, CF_KV_META};
use crate::storage::{Db, StorageError};

/// The version byte snapshots start with.
pub const SNAPSHOT_VERSION: u8 = 2;

const RECORD: u8 = 1;
const MEMBER: u8 = 2;
const AUTH: u8 = 3;
const END: u8 = 0;
/// The largest auth state a snapshot may carry.
const MAX_AUTH_BYTES: usize = 64 << 20;
const DIGEST_BYTES: usize = 32;
/// The row of `kv_meta` that exists while a restore is under way; it holds
/// the index being restored.
pub(crate) const RESTORING_KEY: &[u8] = b"restoring";
/// Bytes of key rows written in one batch while restoring.
const RESTORE_BATCH_BYTES: usize = 4 << 20;
/// Buffer sizes for reading and writing snapshot files.
const IO_BUFFER_BYTES: usize = 256 << 10;

/// The SHA-256 of the key-value state's canonical form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; DIGEST_BYTES]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// What was written by [`write_state`] or found by [`verify_state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateSummary {
    /// The applied index the state is at (0 for a backup read back, which
    /// does not record it).
    pub applied_index: LogIndex,
    /// The state's revision.
    pub revision: Revision,
    /// Bytes in the snapshot, trailer included.
    pub size: u64,
    /// The state's digest (the trailer).
    pub digest: Digest,
}

/// Why a snapshot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading the state failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Writing the snapshot out failed.
    #[error("writing the snapshot failed: {0}")]
    Write(#[from] io::Error),
    /// A snapshot from the leader is being installed: the state is not
    /// whole until it is done.
    #[error("a snapshot is being installed; the state is incomplete until it is done")]
    Restoring,
}

/// Why a snapshot could not be read or restored. A restore that fails
/// before it starts writing leaves the store unchanged.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The snapshot ended early.
    #[error("the snapshot is truncated")]
    Truncated,
    /// The bytes do not match their SHA-256 trailer.
    #[error("the snapshot's bytes do not match its checksum")]
    Checksum,
    /// The body is malformed.
    #[error("the snapshot is malformed: {0}")]
    Invalid(#[from] DecodeError),
    /// The snapshot is not the one expected (size or digest).
    #[error("the snapshot is not the one expected: {0}")]
    Unexpected(String),
    /// Reading the file failed.
    #[error("reading the snapshot failed: {0}")]
    Read(io::Error),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<io::Error> for RestoreError {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            Self::Truncated
        } else {
            Self::Read(error)
        }
    }
}

/// Writes the state as stored in `db` now — one RocksDB snapshot, so it is
/// consistent while others write — to `out`, and says what it wrote.
pub fn write_state(db: &Db, out: &mut impl Write) -> Result<StateSummary, SnapshotError> {
    write_state_with(db, out, |_, _| {})
}

/// [`write_state`], telling `on_start` the applied index and revision of the
/// state before the first byte is written (a backup sends them as headers).
pub fn write_state_with(
    db: &Db,
    out: &mut impl Write,
    on_start: impl FnOnce(LogIndex, Revision),
) -> Result<StateSummary, SnapshotError> {
    let snapshot = db.raw().snapshot();
    let meta_cf = db.cf(CF_KV_META);
    if snapshot
        .get_cf(meta_cf, RESTORING_KEY)
        .map_err(StorageError::Read)?
        .is_some()
    {
        return Err(SnapshotError::Restoring);
    }
    let meta = match snapshot
        .get_cf(meta_cf, META_KEY)
        .map_err(StorageError::Read)?
    {
        Some(row) => Meta::decode(&row)?,
        None => Meta::default(),
    };
    on_start(meta.applied_index, meta.revision);
    let mut out = HashingWriter {
        inner: out,
        hasher: Sha256::new(),
        written: 0,
    };
    let mut piece = Vec::new();
    piece.put_u8(SNAPSHOT_VERSION);
    piece.put_u64(meta.revision.get());
    out.write_all(&piece)?;
    for row in snapshot.iterator_cf_opt(db.cf(CF_KV), Db::scan_options(), IteratorMode::Start) {
        let (key, value) = row.map_err(StorageError::Read)?;
        let record = decode_kv_row(&key, &value)?;
        piece.clear();
        piece.put_u8(RECORD);
        record.key.encode_to(&mut piece);
        piece.put_u64(record.create_revision.get());
        piece.put_u64(record.mod_revision.get());
        piece.put_u64(record.version);
        let len = u32::try_from(record.value.len()).expect("a value is shorter than 4 GiB");
        piece.put_u32(len);
        out.write_all(&piece)?;
        out.write_all(&record.value)?;
    }
    let members = snapshot.iterator_cf(
        meta_cf,
        IteratorMode::From(member::row_key_start(), Direction::Forward),
    );
    for row in members {
        let (key, value) = row.map_err(StorageError::Read)?;
        let Some(id) = member::parse_row_key(&key) else {
            break;
        };
        piece.clear();
        piece.put_u8(MEMBER);
        piece.put_u64(id.get());
        piece.extend_from_slice(
            unseal(&value).map_err(|e| StorageError::Corrupt(format!("member row: {e}")))?,
        );
        out.write_all(&piece)?;
    }
    if let Some(row) = snapshot
        .get_cf(meta_cf, AUTH_KEY)
        .map_err(StorageError::Read)?
    {
        let auth = unseal(&row).map_err(|e| StorageError::Corrupt(format!("auth row: {e}")))?;
        piece.clear();
        piece.put_u8(AUTH);
        piece.put_u32(u32::try_from(auth.len()).expect("the auth state is far below 4 GiB"));
        out.write_all(&piece)?;
        out.write_all(auth)?;
    }
    out.write_all(&[END])?;
    let digest = Digest(out.hasher.finalize_reset().into());
    out.inner.write_all(&digest.0)?;
    out.inner.flush()?;
    Ok(StateSummary {
        applied_index: meta.applied_index,
        revision: meta.revision,
        size: out.written + DIGEST_BYTES as u64,
        digest,
    })
}

/// Writes the state in `db` now into a new file of `dir` and returns the
/// reference the Raft log store keeps for it.
pub fn write_snapshot_file(db: &Db, dir: &SnapshotDir) -> Result<SnapshotRef, SnapshotError> {
    let partial = dir.create_partial()?;
    let mut out = BufWriter::with_capacity(IO_BUFFER_BYTES, partial.paced());
    let summary = write_state(db, &mut out)?;
    drop(out);
    let snapshot = SnapshotRef {
        index: summary.applied_index,
        size: summary.size,
        digest: summary.digest,
    };
    dir.commit(partial, &snapshot)?;
    Ok(snapshot)
}

/// Reads a whole snapshot from `input` and checks it (format, rules,
/// checksum) without writing anything.
pub fn verify_state(input: impl Read) -> Result<StateSummary, RestoreError> {
    let mut reader = StateReader::new(input)?;
    while reader.next_item()?.is_some() {}
    reader.finish()
}

/// [`verify_state`] of a file, which must also be `expected` (its size and
/// digest) if given.
pub fn verify_state_file(
    path: &Path,
    expected: Option<&SnapshotRef>,
) -> Result<StateSummary, RestoreError> {
    let file = File::open(path).map_err(RestoreError::Read)?;
    let summary = verify_state(BufReader::with_capacity(IO_BUFFER_BYTES, file))?;
    if let Some(expected) = expected
        && (expected.size, expected.digest) != (summary.size, summary.digest)
    {
        return Err(RestoreError::Unexpected(format!(
            "{} holds {} bytes with digest {}, not {} bytes with digest {}",
            path.display(),
            summary.size,
            summary.digest,
            expected.size,
            expected.digest
        )));
    }
    Ok(summary)
}

impl KvStore {
    /// The digest of the state at [`KvStore::applied_index`] (the trailer
    /// [`write_state`] would write). It reads the whole state; callers that
    /// show it often should cache it by applied index.
    pub fn digest(&self) -> Result<Digest, SnapshotError> {
        Ok(write_state(&self.db, &mut io::sink())?.digest)
    }

    /// Replaces the whole state with the snapshot in the file at `path`,
    /// taken at `applied_index`. The file is checked first; if it is not a
    /// whole, well-formed snapshot the store is unchanged. The state is then
    /// replaced in bounded batches under a marker row (see the module doc):
    /// if this fails or the process dies part-way, the store says so (see
    /// [`KvStore::restore_pending`]) and the same file must be restored
    /// again. The change log is cleared and its compaction point set to the
    /// snapshot's revision, so watches from before it get `Compacted`.
    pub fn restore_file(
        &mut self,
        path: &Path,
        applied_index: LogIndex,
    ) -> Result<(), RestoreError> {
        verify_state_file(path, None)?;
        let file = File::open(path).map_err(RestoreError::Read)?;
        let mut reader = StateReader::new(BufReader::with_capacity(IO_BUFFER_BYTES, file))?;

        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.db.cf(CF_KV_META),
            RESTORING_KEY,
            seal(&applied_index.get().to_be_bytes()),
        );
        // Keys are UTF-8, which never contains the byte 0xff, so ["", "\xff")
        // covers every key; the change log's keys are 8 bytes, all below nine
        // 0xff bytes.
        batch.delete_range_cf(self.db.cf(CF_KV), &b""[..], &b"\xff"[..]);
        batch.delete_range_cf(self.db.cf(CF_KV_CHANGES), &[0u8; 8][..], &[0xffu8; 9][..]);
        batch.delete_range_cf(
            self.db.cf(CF_KV_META),
            member::row_key_start().to_vec(),
            member::row_key_end(),
        );
        batch.delete_cf(self.db.cf(CF_KV_META), AUTH_KEY);
        self.db.write_synced(batch)?;
        self.restore_pending = Some(applied_index);

        let mut batch = WriteBatch::default();
        let mut members = BTreeMap::new();
        let mut auth = AuthState::default();
        while let Some(item) = reader.next_item()? {
            match item {
                Item::Record(record) => {
                    batch.put_cf(
                        self.db.cf(CF_KV),
                        record.key.as_bytes(),
                        seal(&record.encode_row()),
                    );
                    if batch.size_in_bytes() >= RESTORE_BATCH_BYTES {
                        self.db
                            .write_unsynced(std::mem::take(&mut batch))
                            .map_err(RestoreError::Storage)?;
                    }
                }
                Item::Member(id, address) => {
                    batch.put_cf(
                        self.db.cf(CF_KV_META),
                        member::row_key(id),
                        seal(&codec::encode(&address)),
                    );
                    members.insert(id, address);
                }
                Item::Auth(state) => {
                    batch.put_cf(
                        self.db.cf(CF_KV_META),
                        AUTH_KEY,
                        seal(&codec::encode(&state)),
                    );
                    auth = state;
                }
            }
        }
        let summary = reader.finish()?;
        let meta = Meta {
            applied_index,
            revision: summary.revision,
            compacted: summary.revision,
        };
        meta.put(&self.db, &mut batch);
        batch.delete_cf(self.db.cf(CF_KV_META), RESTORING_KEY);
        // Synced: it also makes every earlier batch of the restore durable.
        self.db.write_synced(batch)?;
        self.meta = meta;
        self.members = members;
        self.auth = Arc::new(auth);
        self.restore_pending = None;
        Ok(())
    }
}

/// One item of a snapshot body.
enum Item {
    Record(KeyRecord),
    Member(NodeId, MemberAddress),
    Auth(AuthState),
}

/// Reads a snapshot item by item, hashing what it reads, holding at most
/// one record in memory.
struct StateReader<R> {
    input: R,
    hasher: Sha256,
    read: u64,
    revision: Revision,
    last_key: Option<Key>,
    last_member: Option<NodeId>,
    /// Whether the auth item was read (it comes last, once).
    auth_read: bool,
    ended: bool,
}

impl<R: Read> StateReader<R> {
    fn new(input: R) -> Result<Self, RestoreError> {
        let mut reader = Self {
            input,
            hasher: Sha256::new(),
            read: 0,
            revision: Revision(0),
            last_key: None,
            last_member: None,
            auth_read: false,
            ended: false,
        };
        let version = reader.u8()?;
        if version != SNAPSHOT_VERSION {
            return Err(DecodeError::UnknownVersion {
                version,
                expected: SNAPSHOT_VERSION,
            }
            .into());
        }
        reader.revision = Revision(reader.u64()?);
        Ok(reader)
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RestoreError> {
        self.input.read_exact(buf)?;
        self.hasher.update(&*buf);
        self.read += buf.len() as u64;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, RestoreError> {
        let mut buf = [0; 1];
        self.fill(&mut buf)?;
        Ok(buf[0])
    }

    fn u64(&mut self) -> Result<u64, RestoreError> {
        let mut buf = [0; 8];
        self.fill(&mut buf)?;
        Ok(u64::from_be_bytes(buf))
    }

    /// A length-prefixed byte string of at most `max` bytes (checked
    /// before anything is allocated).
    fn bytes(&mut self, max: usize, what: &'static str) -> Result<Vec<u8>, RestoreError> {
        let mut len = [0; 4];
        self.fill(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > max {
            return Err(DecodeError::invalid(what).into());
        }
        let mut out = vec![0; len];
        self.fill(&mut out)?;
        Ok(out)
    }

    /// The next item, or `None` at the end of the body.
    fn next_item(&mut self) -> Result<Option<Item>, RestoreError> {
        if self.ended {
            return Ok(None);
        }
        match self.u8()? {
            END => {
                self.ended = true;
                Ok(None)
            }
            RECORD if self.last_member.is_none() && !self.auth_read => {
                self.record().map(|r| Some(Item::Record(r)))
            }
            AUTH if !self.auth_read => {
                self.auth_read = true;
                let encoded = self.bytes(MAX_AUTH_BYTES, "the auth state is too long")?;
                Ok(Some(Item::Auth(codec::decode::<AuthState>(&encoded[..])?)))
            }
            MEMBER if !self.auth_read => {
                let id = NodeId(self.u64()?);
                if self.last_member.is_some_and(|last| last >= id) {
                    return Err(DecodeError::invalid(
                        "snapshot members are not in strictly ascending id order",
                    )
                    .into());
                }
                self.last_member = Some(id);
                // The address, re-assembled from its fields to decode it.
                let mut encoded = vec![self.u8()?];
                for _ in 0..3 {
                    let field =
                        self.bytes(member::MAX_FIELD_BYTES, "a member field is too long")?;
                    encoded.put_u32(field.len() as u32);
                    encoded.extend_from_slice(&field);
                }
                let address = codec::decode::<MemberAddress>(&encoded[..])?;
                Ok(Some(Item::Member(id, address)))
            }
            tag => Err(DecodeError::UnknownTag {
                what: "snapshot record",
                tag,
            }
            .into()),
        }
    }

    fn record(&mut self) -> Result<KeyRecord, RestoreError> {
        let key = self.bytes(Limits::MAX_KEY_BYTES_CEILING, "a key is too long")?;
        let key = String::from_utf8(key).map_err(|_| DecodeError::InvalidUtf8)?;
        let key =
            Key::parse_replicated(&key).map_err(|e| DecodeError::invalid(format!("key: {e}")))?;
        let record = KeyRecord {
            key,
            create_revision: Revision(self.u64()?),
            mod_revision: Revision(self.u64()?),
            version: self.u64()?,
            value: Bytes::from(self.bytes(Limits::MAX_VALUE_BYTES_CEILING, "a value is too long")?),
        };
        record.check()?;
        if record.mod_revision > self.revision {
            return Err(DecodeError::invalid(
                "a record was modified after the snapshot's revision",
            )
            .into());
        }
        if self
            .last_key
            .as_ref()
            .is_some_and(|last| *last >= record.key)
        {
            return Err(DecodeError::invalid(
                "snapshot records are not in strictly ascending key order",
            )
            .into());
        }
        self.last_key = Some(record.key.clone());
        Ok(record)
    }

    /// Checks the trailer against what was read and that nothing follows.
    fn finish(mut self) -> Result<StateSummary, RestoreError> {
        if !self.ended {
            return Err(DecodeError::invalid("the snapshot body did not end").into());
        }
        let digest = Digest(self.hasher.finalize_reset().into());
        let mut trailer = [0; DIGEST_BYTES];
        self.input.read_exact(&mut trailer)?;
        if trailer != digest.0 {
            return Err(RestoreError::Checksum);
        }
        let mut rest = [0; 1];
        if self.input.read(&mut rest)? != 0 {
            return Err(DecodeError::invalid("bytes follow the snapshot's checksum").into());
        }
        Ok(StateSummary {
            applied_index: LogIndex(0),
            revision: self.revision,
            size: self.read + DIGEST_BYTES as u64,
            digest,
        })
    }
}

/// Hashes and counts what goes through it.
struct HashingWriter<'a, W> {
    inner: &'a mut W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
