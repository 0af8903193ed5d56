//! Snapshots of the key-value state for Raft, and its [`Digest`].
//!
//! Encoding, version [`SNAPSHOT_VERSION`]:
//!
//! ```text
//! body:    u8 version | u64 revision | record* | member* | u8 0
//! record:  u8 1 | key | u64 create_revision | u64 mod_revision | u64 version | value
//! member:  u8 2 | u64 node_id | member address (see `member.rs`)
//! trailer: 32 bytes, SHA-256 of the body
//! ```
//!
//! Records are in key order, so the body is a canonical form of the state
//! and its SHA-256 — the trailer — is the state's [`Digest`]: members that
//! applied the same commands have equal digests. The body holds what is
//! replicated (keys, values, their revisions and versions, the revision, the
//! member directory) and
//! nothing local to a member: not the applied index (the caller's, with the
//! Raft snapshot metadata), not the change log or its compaction point.

use std::fmt;

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes};
use raftcfg_raft::{LogIndex, NodeId};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use sha2::{Digest as _, Sha256};

use super::format::{FormatError, check_version, get_bytes, get_key, get_revision, put_key};
use super::member::{self, MemberAddress};
use super::record::KeyRecord;
use super::revision::Revision;
use super::store::{KvStore, Meta, decode_kv_row};
use crate::storage::checksum::seal;
use crate::storage::db::{CF_KV, CF_KV_CHANGES, CF_KV_META};
use crate::storage::{Db, StorageError};

/// The version byte snapshots start with.
pub const SNAPSHOT_VERSION: u8 = 2;

const RECORD: u8 = 1;
const MEMBER: u8 = 2;
const END: u8 = 0;
const DIGEST_BYTES: usize = 32;

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

/// Why a snapshot could not be restored. The store is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The snapshot is shorter than its trailer.
    #[error("the snapshot is {0} bytes, too short to be one")]
    TooShort(usize),
    /// The bytes do not match their SHA-256 trailer.
    #[error("the snapshot's bytes do not match its checksum")]
    Checksum,
    /// The body is malformed.
    #[error("the snapshot is malformed: {0}")]
    Invalid(#[from] FormatError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl KvStore {
    /// The whole state at [`KvStore::applied_index`], for a Raft snapshot
    /// (or a backup). It is read from one RocksDB snapshot, so it is
    /// consistent even if the store is written meanwhile by another handle.
    pub fn snapshot(&self) -> Result<Bytes, StorageError> {
        let mut out = Vec::new();
        let mut hasher = Sha256::new();
        self.visit_state(|bytes| {
            out.extend_from_slice(bytes);
            hasher.update(bytes);
        })?;
        out.extend_from_slice(&hasher.finalize());
        Ok(out.into())
    }

    /// The digest of the state at [`KvStore::applied_index`]: the SHA-256
    /// of the canonical form [`KvStore::snapshot`] writes (which is also its
    /// trailer). It reads the whole state; callers that show it often should
    /// cache it by applied index.
    pub fn digest(&self) -> Result<Digest, StorageError> {
        let mut hasher = Sha256::new();
        self.visit_state(|bytes| hasher.update(bytes))?;
        Ok(Digest(hasher.finalize().into()))
    }

    /// Checks that `snapshot` is a whole, well-formed snapshot (checksum and
    /// body) without writing anything.
    pub fn check_snapshot(snapshot: &[u8]) -> Result<(), RestoreError> {
        let Some(body_len) = snapshot.len().checked_sub(DIGEST_BYTES) else {
            return Err(RestoreError::TooShort(snapshot.len()));
        };
        let (body, trailer) = snapshot.split_at(body_len);
        if Sha256::digest(body)[..] != *trailer {
            return Err(RestoreError::Checksum);
        }
        decode_body(body)?;
        Ok(())
    }

    /// Replaces the whole state with `snapshot`, taken at `applied_index`,
    /// in one synced write. The change log is cleared and its compaction
    /// point set to the snapshot's revision, so watches from before it get
    /// `Compacted`. On `Err` the store is unchanged.
    pub fn restore(
        &mut self,
        snapshot: &[u8],
        applied_index: LogIndex,
    ) -> Result<(), RestoreError> {
        let Some(body_len) = snapshot.len().checked_sub(DIGEST_BYTES) else {
            return Err(RestoreError::TooShort(snapshot.len()));
        };
        let (body, trailer) = snapshot.split_at(body_len);
        if Sha256::digest(body)[..] != *trailer {
            return Err(RestoreError::Checksum);
        }
        let state = decode_body(body)?;
        let meta = Meta {
            applied_index,
            revision: state.revision,
            compacted: state.revision,
        };
        let batch = replace_all(&self.db, &state, meta);
        self.db.write_synced(batch)?;
        self.meta = meta;
        self.members = state.members;
        Ok(())
    }

    /// Feeds the canonical body to `emit`, piece by piece.
    fn visit_state(&self, mut emit: impl FnMut(&[u8])) -> Result<(), StorageError> {
        let snapshot = self.db.raw().snapshot();
        let meta = match snapshot
            .get_cf(self.db.cf(CF_KV_META), super::store::META_KEY)
            .map_err(StorageError::Read)?
        {
            Some(row) => Meta::decode(&row)?,
            None => Meta::default(),
        };
        let mut piece = Vec::new();
        piece.put_u8(SNAPSHOT_VERSION);
        piece.put_u64(meta.revision.get());
        emit(&piece);
        for row in snapshot.iterator_cf(self.db.cf(CF_KV), IteratorMode::Start) {
            let (key, value) = row.map_err(StorageError::Read)?;
            let record = decode_kv_row(&key, &value)?;
            piece.clear();
            piece.put_u8(RECORD);
            put_key(&mut piece, &record.key);
            piece.put_u64(record.create_revision.get());
            piece.put_u64(record.mod_revision.get());
            piece.put_u64(record.version);
            emit(&piece);
            // The value goes out as-is rather than copied into `piece`.
            let len = u32::try_from(record.value.len()).expect("a value is shorter than 4 GiB");
            emit(&len.to_be_bytes());
            emit(&record.value);
        }
        let members = snapshot.iterator_cf(
            self.db.cf(CF_KV_META),
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
                crate::storage::checksum::unseal(&value)
                    .map_err(|e| StorageError::Corrupt(format!("member row: {e}")))?,
            );
            emit(&piece);
        }
        emit(&[END]);
        Ok(())
    }
}

/// A decoded snapshot body.
struct State {
    revision: Revision,
    records: Vec<KeyRecord>,
    members: BTreeMap<NodeId, MemberAddress>,
}

/// Reads and checks a snapshot body.
fn decode_body(body: &[u8]) -> Result<State, FormatError> {
    let mut input = Bytes::copy_from_slice(body);
    check_version(&mut input, "snapshot", SNAPSHOT_VERSION)?;
    let revision = get_revision(&mut input)?;
    let mut records: Vec<KeyRecord> = Vec::new();
    let mut members = BTreeMap::new();
    loop {
        match input.try_get_u8()? {
            END => break,
            RECORD if members.is_empty() => {}
            MEMBER => {
                let id = NodeId(input.try_get_u64()?);
                let address = MemberAddress::get(&mut input)?;
                if members
                    .last_key_value()
                    .is_some_and(|(last, _)| *last >= id)
                {
                    return Err(FormatError::Invalid(
                        "snapshot members are not in strictly ascending id order",
                    ));
                }
                members.insert(id, address);
                continue;
            }
            tag => {
                return Err(FormatError::UnknownTag {
                    what: "snapshot record",
                    tag,
                });
            }
        }
        let record = KeyRecord {
            key: get_key(&mut input)?,
            create_revision: get_revision(&mut input)?,
            mod_revision: get_revision(&mut input)?,
            version: input.try_get_u64()?,
            value: get_bytes(&mut input)?,
        };
        record.check()?;
        if record.mod_revision > revision {
            return Err(FormatError::Invalid(
                "a record was modified after the snapshot's revision",
            ));
        }
        if records.last().is_some_and(|last| last.key >= record.key) {
            return Err(FormatError::Invalid(
                "snapshot records are not in strictly ascending key order",
            ));
        }
        records.push(record);
    }
    super::format::check_end(&input)?;
    Ok(State {
        revision,
        records,
        members,
    })
}

/// A batch that replaces the key rows, the member directory and the change
/// log with `state` and `meta`.
fn replace_all(db: &Db, state: &State, meta: Meta) -> WriteBatch {
    let mut batch = WriteBatch::default();
    // Keys are UTF-8, which never contains the byte 0xff, so ["", "\xff")
    // covers every key; the change log's keys are 8 bytes, all below nine
    // 0xff bytes. Later writes in a batch take effect after earlier ones.
    batch.delete_range_cf(db.cf(CF_KV), &b""[..], &b"\xff"[..]);
    batch.delete_range_cf(db.cf(CF_KV_CHANGES), &[0u8; 8][..], &[0xffu8; 9][..]);
    batch.delete_range_cf(
        db.cf(CF_KV_META),
        member::row_key_start().to_vec(),
        member::row_key_end(),
    );
    for (id, address) in &state.members {
        batch.put_cf(
            db.cf(CF_KV_META),
            member::row_key(*id),
            seal(&address.encode()),
        );
    }
    for record in &state.records {
        batch.put_cf(
            db.cf(CF_KV),
            record.key.as_bytes(),
            seal(&record.encode_row()),
        );
    }
    meta.put(db, &mut batch);
    batch
}
