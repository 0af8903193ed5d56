//! [`KvStore`]: the key-value state in RocksDB, its metadata, and its reads.
//!
//! Column families (see `storage::db`):
//!
//! - `kv`: key bytes → sealed key record (`record.rs`);
//! - `kv_changes`: u64 big-endian revision → sealed change;
//! - `kv_meta`: `state` → sealed
//!   `u8 version | u64 applied_index | u64 revision | u64 compacted_revision`,
//!   and the member directory's rows (`member.rs`).
//!
//! Every value is sealed with the storage layer's CRC32, so a damaged row is
//! reported as corrupt instead of being served. Writing is in `apply.rs`
//! (commands; one unsynced batch, see there) and `snapshot.rs` (restore); each write is one batch
//! that includes the metadata row.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::{Buf, BufMut};
use raftcfg_raft::{LogIndex, NodeId};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::auth::AuthState;
use super::key::Key;
use super::member::{self, MemberAddress};
use super::prefix::KeyPrefix;
use super::record::{Change, KeyRecord};
use super::revision::Revision;
use crate::codec::{self, Decode, DecodeError};
use crate::storage::checksum::{seal, unseal};
use crate::storage::db::{CF_KV, CF_KV_CHANGES, CF_KV_META};
use crate::storage::{Db, StorageError};

pub(crate) const META_KEY: &[u8] = b"state";
/// The `kv_meta` row of the auth state (see `auth.rs`).
pub(crate) const AUTH_KEY: &[u8] = b"auth";

/// The key-value state machine over the node's database.
///
/// Reads take `&self` and writes `&mut self`; a caller that shares the store
/// (e.g. behind a `RwLock`) therefore reads a state, its revision and its
/// applied index that belong together.
pub struct KvStore {
    pub(crate) db: Db,
    pub(crate) meta: Meta,
    /// The member directory, as stored.
    pub(crate) members: BTreeMap<NodeId, MemberAddress>,
    /// The members this node saw removed (see `removed.rs`).
    pub(crate) removed: BTreeSet<NodeId>,
    /// The index of a snapshot whose restore began and did not finish.
    pub(crate) restore_pending: Option<LogIndex>,
    /// Users, roles and whether auth is on, as stored.
    pub(crate) auth: Arc<AuthState>,
}

/// The state's metadata, kept in memory and written with every change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// The last log index applied.
    pub(crate) applied_index: LogIndex,
    /// The revision of the last successful write.
    pub(crate) revision: Revision,
    /// Changes up to and including this revision are gone from the log.
    pub(crate) compacted: Revision,
}

/// A page of [`KvStore::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The records, in key order.
    pub records: Vec<KeyRecord>,
    /// Whether more keys match after the last record: ask again with
    /// `start_after` = the last record's key.
    pub more: bool,
}

/// A page of [`KvStore::changes_since`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangePage {
    /// The matching changes, in revision order.
    pub changes: Vec<Change>,
    /// Where to continue: every change before this revision has been
    /// scanned, including those the prefix filtered out.
    pub next_revision: Revision,
}

/// Why [`KvStore::changes_since`] could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    /// The changes asked for were compacted away (the watch API's 410 Gone):
    /// the earliest revision still available is `compacted_to + 1`.
    #[error("revisions up to {compacted_to} have been compacted")]
    Compacted {
        /// The last revision removed from the change log.
        compacted_to: Revision,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl KvStore {
    /// Opens the key-value state in `db`, reading back its applied index,
    /// revision and compaction point (all zero in a new database).
    pub fn open(db: Db) -> Result<Self, StorageError> {
        let meta = match db.get(CF_KV_META, META_KEY)? {
            Some(row) => Meta::decode(&row)?,
            None => Meta::default(),
        };
        let members = read_members(&db)?;
        let auth = Arc::new(read_auth(&db)?);
        let removed = super::removed::read_removed(&db)?;
        let restore_pending = match db.get(CF_KV_META, super::snapshot::RESTORING_KEY)? {
            Some(row) => {
                let bytes: [u8; 8] = unseal_row("restore marker", &row)?
                    .try_into()
                    .map_err(|_| corrupt("restore marker", "not 8 bytes"))?;
                Some(LogIndex(u64::from_be_bytes(bytes)))
            }
            None => None,
        };
        Ok(Self {
            db,
            meta,
            members,
            removed,
            restore_pending,
            auth,
        })
    }

    /// Users, roles and whether auth is on.
    pub fn auth(&self) -> &Arc<AuthState> {
        &self.auth
    }

    /// The members this node saw removed from the cluster.
    pub fn removed(&self) -> &BTreeSet<NodeId> {
        &self.removed
    }

    /// Records, durably, that `id` was removed (told by a peer, when it is
    /// this node).
    pub fn record_removed(&mut self, id: NodeId) -> Result<(), StorageError> {
        let mut write = WriteBatch::default();
        write.put_cf(
            self.db.cf(CF_KV_META),
            super::removed::row_key(id),
            seal(&[]),
        );
        self.db.write_synced(write)?;
        self.removed.insert(id);
        Ok(())
    }

    /// The index of a snapshot whose restore began and did not finish: the
    /// state is incomplete until that snapshot is restored again.
    pub fn restore_pending(&self) -> Option<LogIndex> {
        self.restore_pending
    }

    /// The member directory: every member's name and URLs that the applied
    /// log recorded.
    pub fn members(&self) -> &BTreeMap<NodeId, MemberAddress> {
        &self.members
    }

    /// The last log index whose entry is reflected in the state.
    pub fn applied_index(&self) -> LogIndex {
        self.meta.applied_index
    }

    /// The revision of the last successful write (0 if none).
    pub fn revision(&self) -> Revision {
        self.meta.revision
    }

    /// The last revision removed from the change log (0 if none).
    pub fn compacted_revision(&self) -> Revision {
        self.meta.compacted
    }

    /// The record of `key`, if it exists.
    pub fn get(&self, key: &Key) -> Result<Option<KeyRecord>, StorageError> {
        self.db
            .get(CF_KV, key.as_bytes())?
            .map(|row| decode_kv_row(key.as_bytes(), &row))
            .transpose()
    }

    /// Up to `limit` records whose keys start with `prefix`, in key order,
    /// starting after `start_after` if given.
    pub fn list(
        &self,
        prefix: &KeyPrefix,
        limit: usize,
        start_after: Option<&Key>,
    ) -> Result<Page, StorageError> {
        let start = match start_after {
            Some(after) if after.as_bytes() > prefix.as_bytes() => after.as_bytes(),
            _ => prefix.as_bytes(),
        };
        let rows = self.db.raw().iterator_cf(
            self.db.cf(CF_KV),
            IteratorMode::From(start, Direction::Forward),
        );
        let mut records = Vec::new();
        for row in rows {
            let (key, value) = row.map_err(StorageError::Read)?;
            if start_after.is_some_and(|after| after.as_bytes() == &key[..]) {
                continue;
            }
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            if records.len() == limit {
                return Ok(Page {
                    records,
                    more: true,
                });
            }
            records.push(decode_kv_row(&key, &value)?);
        }
        Ok(Page {
            records,
            more: false,
        })
    }

    /// Up to `limit` changes to keys under `prefix`, from revision
    /// `from_revision` (inclusive; 0 counts as 1) onwards, in revision order.
    /// Fails with [`ChangesError::Compacted`] if changes from there on are no
    /// longer all in the log.
    pub fn changes_since(
        &self,
        prefix: &KeyPrefix,
        from_revision: Revision,
        limit: usize,
    ) -> Result<ChangePage, ChangesError> {
        let from = from_revision.max(Revision(1));
        if from <= self.meta.compacted {
            return Err(ChangesError::Compacted {
                compacted_to: self.meta.compacted,
            });
        }
        let mut changes = Vec::new();
        if limit == 0 {
            return Ok(ChangePage {
                changes,
                next_revision: from,
            });
        }
        let start = from.get().to_be_bytes();
        let rows = self.db.raw().iterator_cf(
            self.db.cf(CF_KV_CHANGES),
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut scanned = self.meta.revision;
        for row in rows {
            let (key, value) = row.map_err(StorageError::Read)?;
            let revision = decode_revision_key(&key)?;
            let change = Change::decode_row(revision, unseal_row("change", &value)?)
                .map_err(|e| corrupt("change", e))?;
            if prefix.matches(&change.key) {
                changes.push(change);
                if changes.len() == limit {
                    return Ok(ChangePage {
                        changes,
                        next_revision: revision.next(),
                    });
                }
            }
            scanned = scanned.max(revision);
        }
        Ok(ChangePage {
            changes,
            next_revision: scanned.next().max(from),
        })
    }

    /// Removes the changes up to and including `up_to` (at most the current
    /// revision) from the change log, in one synced write; a later
    /// [`KvStore::changes_since`] from there fails with `Compacted`. Returns
    /// the compaction point, which never moves back. This is local
    /// housekeeping, not part of the replicated state.
    pub fn compact_changes(&mut self, up_to: Revision) -> Result<Revision, StorageError> {
        let target = up_to.min(self.meta.revision);
        if target <= self.meta.compacted {
            return Ok(self.meta.compacted);
        }
        let meta = Meta {
            compacted: target,
            ..self.meta
        };
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.db.cf(CF_KV_CHANGES),
            0u64.to_be_bytes(),
            target.next().get().to_be_bytes(),
        );
        meta.put(&self.db, &mut batch);
        self.db.write_synced(batch)?;
        self.meta = meta;
        Ok(target)
    }
}

impl Meta {
    /// Adds this metadata to `batch`.
    pub(crate) fn put(&self, db: &Db, batch: &mut WriteBatch) {
        let mut row = Vec::with_capacity(25);
        row.put_u8(codec::FORMAT_VERSION);
        row.put_u64(self.applied_index.get());
        row.put_u64(self.revision.get());
        row.put_u64(self.compacted.get());
        batch.put_cf(db.cf(CF_KV_META), META_KEY, seal(&row));
    }

    pub(crate) fn decode(sealed: &[u8]) -> Result<Self, StorageError> {
        let input = unseal_row("key-value metadata", sealed)?;
        let meta = codec::decode_with(input, |input| {
            Ok(Self {
                applied_index: LogIndex(input.try_get_u64()?),
                revision: Revision::decode_from(input)?,
                compacted: Revision::decode_from(input)?,
            })
        });
        match meta {
            Ok(meta) if meta.compacted > meta.revision => Err(corrupt(
                "key-value metadata",
                DecodeError::invalid("compacted beyond the revision"),
            )),
            Ok(meta) => Ok(meta),
            Err(e) => Err(corrupt("key-value metadata", e)),
        }
    }
}

/// The key of a change-log row: its revision, big-endian.
pub(crate) fn revision_key(revision: Revision) -> [u8; 8] {
    revision.get().to_be_bytes()
}

fn decode_revision_key(key: &[u8]) -> Result<Revision, StorageError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("a change-log key is {} bytes", key.len())))?;
    Ok(Revision(u64::from_be_bytes(bytes)))
}

/// Decodes a stored `kv` row.
pub(crate) fn decode_kv_row(key: &[u8], sealed: &[u8]) -> Result<KeyRecord, StorageError> {
    let text = std::str::from_utf8(key).map_err(|e| corrupt("stored key", e))?;
    let key = Key::parse_replicated(text).map_err(|e| corrupt("stored key", e))?;
    KeyRecord::decode_row(key, unseal_row("key record", sealed)?)
        .map_err(|e| corrupt("key record", e))
}

fn unseal_row<'a>(what: &str, sealed: &'a [u8]) -> Result<&'a [u8], StorageError> {
    unseal(sealed).map_err(|e| corrupt(what, e))
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("{what}: {error}"))
}

/// Reads the auth state's row (the default state if there is none).
pub(crate) fn read_auth(db: &Db) -> Result<AuthState, StorageError> {
    match db.get(CF_KV_META, AUTH_KEY)? {
        None => Ok(AuthState::default()),
        Some(row) => codec::decode::<AuthState>(unseal_row("auth state", &row)?)
            .map_err(|e| corrupt("auth state", e)),
    }
}

/// Reads the member directory's rows.
pub(crate) fn read_members(db: &Db) -> Result<BTreeMap<NodeId, MemberAddress>, StorageError> {
    let mut members = BTreeMap::new();
    let rows = db.raw().iterator_cf(
        db.cf(CF_KV_META),
        IteratorMode::From(member::row_key_start(), Direction::Forward),
    );
    for row in rows {
        let (key, value) = row.map_err(StorageError::Read)?;
        let Some(id) = member::parse_row_key(&key) else {
            break;
        };
        let address = codec::decode::<MemberAddress>(unseal_row("member", &value)?)
            .map_err(|e| corrupt("member", e))?;
        members.insert(id, address);
    }
    Ok(members)
}
