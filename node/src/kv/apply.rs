//! Applying committed entries: [`KvStore::apply`] and its [`Outcome`]s.
//!
//! A call applies a run of committed entries in one `WriteBatch`: the key
//! rows, the change-log rows, the new revision and the new applied index
//! reach disk together or not at all, so after a crash the store's applied
//! index says exactly which entries to apply again.
//!
//! The batch is not synced: the entries are already durable in the Raft log,
//! so a batch lost in a crash is applied again from there. It cannot be
//! lost while the log no longer holds its entries, because the log is only
//! compacted by a synced write, which (one write-ahead log) makes every
//! earlier batch durable first. This saves an fsync per round.

use std::collections::BTreeMap;
use std::sync::Arc;

use raftcfg_raft::{ConfigChange, Entry, EntryPayload, LogIndex, MembershipChange, NodeId, Term};
use rocksdb::WriteBatch;

use super::auth::{AuthChange, AuthState};
use super::command::{Command, Precondition};
use super::key::Key;
use super::member::{self, MemberAddress};
use super::record::{Change, ChangeKind, KeyRecord};
use super::revision::Revision;
use super::store::{KvStore, Meta, revision_key};
use crate::codec::{self, DecodeError};
use crate::storage::checksum::seal;
use crate::storage::db::{CF_KV, CF_KV_CHANGES, CF_KV_META};
use crate::storage::{Db, StorageError};

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The put or delete happened at `revision`.
    Written {
        /// The write's revision (the key's new mod_revision for a put).
        revision: Revision,
    },
    /// The precondition did not hold (HTTP 412); nothing changed and no
    /// revision was used.
    PreconditionFailed {
        /// The key's mod_revision, or `None` if it does not exist.
        current_mod_revision: Option<Revision>,
    },
    /// A delete without a precondition found no key (HTTP 404); nothing
    /// changed and no revision was used.
    NotFound,
    /// The entry's bytes are not a command this build understands; it was
    /// skipped (only the applied index advanced).
    Invalid(DecodeError),
    /// A member's address was recorded in the member directory.
    MemberRecorded,
    /// A membership change (configuration entry) was applied.
    MembershipChanged,
    /// The auth state changed.
    AuthChanged,
    /// The auth change was refused (the reason); nothing changed.
    AuthRefused(String),
}

/// The outcome of the command at one log index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The entry's log index, which with its term identifies the proposal.
    pub index: LogIndex,
    /// The entry's term: a proposer whose entry had another term at this
    /// index lost its proposal to a leader change.
    pub term: Term,
    /// What the command did.
    pub outcome: Outcome,
}

impl KvStore {
    /// Applies committed `entries`, in log order, in one write, and
    /// returns the outcome of each command and configuration entry (Noop
    /// entries have none; a Config entry also updates the member directory).
    ///
    /// Entries at or below [`KvStore::applied_index`] are skipped, so
    /// entries delivered again after a restart are harmless. The rest must
    /// continue the log without a gap: a gap is a bug of the caller and
    /// panics, since skipping committed entries would fork the state.
    ///
    /// On `Err` nothing was written and the store is unchanged: the same
    /// entries may be applied again.
    pub fn apply(&mut self, entries: &[Entry]) -> Result<Vec<Applied>, StorageError> {
        Ok(self.apply_with_changes(entries)?.0)
    }

    /// [`KvStore::apply`], also returning the changes it made to keys, in
    /// revision order (what it added to the change log).
    pub fn apply_with_changes(
        &mut self,
        entries: &[Entry],
    ) -> Result<(Vec<Applied>, Vec<Change>), StorageError> {
        let mut batch = Batch::new(&self.db, self.meta.revision, self.auth.clone());
        let mut applied = Vec::new();
        let mut last = self.meta.applied_index;
        for entry in entries {
            if entry.index <= self.meta.applied_index {
                continue;
            }
            assert_eq!(
                entry.index,
                last.next(),
                "committed entries must be applied in order without gaps \
                 (applied through {last}, given {})",
                entry.index,
            );
            last = entry.index;
            match &entry.payload {
                EntryPayload::Command(data) => {
                    let outcome = match codec::decode::<Command>(data.clone()) {
                        Ok(command) => batch.execute(command)?,
                        Err(error) => Outcome::Invalid(error),
                    };
                    applied.push(Applied {
                        index: entry.index,
                        term: entry.term,
                        outcome,
                    });
                }
                EntryPayload::Config(change) => {
                    batch.record_membership(change);
                    applied.push(Applied {
                        index: entry.index,
                        term: entry.term,
                        outcome: Outcome::MembershipChanged,
                    });
                }
                EntryPayload::Noop => {}
            }
        }
        if last == self.meta.applied_index {
            return Ok((applied, Vec::new()));
        }
        let meta = Meta {
            applied_index: last,
            revision: batch.revision,
            compacted: self.meta.compacted,
        };
        let mut write = batch.write;
        meta.put(&self.db, &mut write);
        self.db.write_unsynced(write)?;
        self.meta = meta;
        for (id, address) in batch.members {
            match address {
                Some(address) => self.members.insert(id, address),
                None => self.members.remove(&id),
            };
        }
        self.removed.extend(batch.removed);
        self.auth = batch.auth;
        Ok((applied, batch.changes))
    }
}

/// The writes of one `apply` call, not yet on disk.
struct Batch<'a> {
    db: &'a Db,
    /// The revision of the last write in the batch.
    revision: Revision,
    /// What the batch has done to each key it touched (`None` = deleted), so
    /// later commands in the batch see earlier ones.
    touched: BTreeMap<Key, Option<KeyRecord>>,
    /// Member directory changes (`None` = removed), in order.
    members: Vec<(NodeId, Option<MemberAddress>)>,
    /// Members removed.
    removed: Vec<NodeId>,
    /// The changes logged, in revision order.
    changes: Vec<Change>,
    /// The auth state as of the commands so far.
    auth: Arc<AuthState>,
    write: WriteBatch,
}

impl<'a> Batch<'a> {
    fn new(db: &'a Db, revision: Revision, auth: Arc<AuthState>) -> Self {
        Self {
            db,
            revision,
            auth,
            touched: BTreeMap::new(),
            members: Vec::new(),
            removed: Vec::new(),
            changes: Vec::new(),
            write: WriteBatch::default(),
        }
    }

    /// The key's record as of the commands before this one.
    fn current(&self, key: &Key) -> Result<Option<KeyRecord>, StorageError> {
        if let Some(record) = self.touched.get(key) {
            return Ok(record.clone());
        }
        self.db
            .get(CF_KV, key.as_bytes())?
            .map(|row| super::store::decode_kv_row(key.as_bytes(), &row))
            .transpose()
    }

    /// Records the address an `AddLearner` entry carries, or forgets a
    /// removed member. A context that is not an address (e.g. empty) is
    /// ignored: the membership itself is the Raft core's business.
    fn record_membership(&mut self, change: &ConfigChange) {
        match change.change {
            MembershipChange::AddLearner(id) => {
                if let Ok(address) = codec::decode::<MemberAddress>(&change.context[..]) {
                    self.set_member(id, Some(address));
                }
            }
            MembershipChange::Remove(id) => {
                self.set_member(id, None);
                let cf = self.db.cf(CF_KV_META);
                self.write
                    .put_cf(cf, super::removed::row_key(id), seal(&[]));
                self.removed.push(id);
            }
            MembershipChange::PromoteLearner(_) => {}
        }
    }

    fn set_member(&mut self, id: NodeId, address: Option<MemberAddress>) {
        let cf = self.db.cf(CF_KV_META);
        match &address {
            Some(address) => {
                self.write
                    .put_cf(cf, member::row_key(id), seal(&codec::encode(address)))
            }
            None => self.write.delete_cf(cf, member::row_key(id)),
        }
        self.members.push((id, address));
    }

    fn execute(&mut self, command: Command) -> Result<Outcome, StorageError> {
        let (key, precondition) = match &command {
            Command::Put {
                key, precondition, ..
            }
            | Command::Delete { key, precondition } => (key, *precondition),
            Command::SetMember { node_id, address } => {
                self.set_member(*node_id, Some(address.clone()));
                return Ok(Outcome::MemberRecorded);
            }
            Command::Auth(change) => return Ok(self.change_auth(change.clone())),
        };
        let current = self.current(key)?;
        let holds = match precondition {
            Precondition::None => true,
            Precondition::ModRevision(expected) => current
                .as_ref()
                .is_some_and(|record| record.mod_revision == expected),
            Precondition::Absent => current.is_none(),
        };
        if !holds {
            return Ok(Outcome::PreconditionFailed {
                current_mod_revision: current.map(|record| record.mod_revision),
            });
        }
        match command {
            Command::Put { key, value, .. } => {
                let revision = self.revision.next();
                let record = KeyRecord {
                    key,
                    value,
                    create_revision: current
                        .as_ref()
                        .map_or(revision, |record| record.create_revision),
                    mod_revision: revision,
                    version: current.as_ref().map_or(1, |record| record.version + 1),
                };
                self.write.put_cf(
                    self.db.cf(CF_KV),
                    record.key.as_bytes(),
                    seal(&record.encode_row()),
                );
                self.log(Change {
                    revision,
                    key: record.key.clone(),
                    kind: ChangeKind::Put {
                        value: record.value.clone(),
                        create_revision: record.create_revision,
                        version: record.version,
                    },
                });
                self.touched.insert(record.key.clone(), Some(record));
                self.revision = revision;
                Ok(Outcome::Written { revision })
            }
            Command::Delete { key, .. } => {
                if current.is_none() {
                    return Ok(Outcome::NotFound);
                }
                let revision = self.revision.next();
                self.write.delete_cf(self.db.cf(CF_KV), key.as_bytes());
                self.log(Change {
                    revision,
                    key: key.clone(),
                    kind: ChangeKind::Delete,
                });
                self.touched.insert(key, None);
                self.revision = revision;
                Ok(Outcome::Written { revision })
            }
            Command::SetMember { .. } | Command::Auth(_) => unreachable!("handled above"),
        }
    }

    /// Applies an auth change to the batch's auth state and its row.
    fn change_auth(&mut self, change: AuthChange) -> Outcome {
        let mut next = AuthState::clone(&self.auth);
        match next.apply(change) {
            Ok(()) => {
                self.write.put_cf(
                    self.db.cf(CF_KV_META),
                    super::store::AUTH_KEY,
                    seal(&codec::encode(&next)),
                );
                self.auth = Arc::new(next);
                Outcome::AuthChanged
            }
            Err(reason) => Outcome::AuthRefused(reason),
        }
    }

    fn log(&mut self, change: Change) {
        self.write.put_cf(
            self.db.cf(CF_KV_CHANGES),
            revision_key(change.revision),
            seal(&change.encode_row()),
        );
        self.changes.push(change);
    }
}
