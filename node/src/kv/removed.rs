//! The members this node saw removed: their ids, kept so that a removed
//! member that still calls is told it was removed (the leader stops
//! sending to a member as soon as it removes it, so the member may never
//! see its own removal in the log). Node ids are random and never reused,
//! so an id once removed stays removed.
//!
//! Rows live in `kv_meta` under `removed/` + the u64 big-endian node id,
//! with an empty sealed value; they are written with the applied
//! `Remove` entry. They are this node's own knowledge, not replicated
//! state: snapshots and digests leave them out, and a member restored from
//! a snapshot knows only of removals applied after it.

use std::collections::BTreeSet;

use raftcfg_raft::NodeId;
use rocksdb::{Direction, IteratorMode};

use crate::storage::checksum::unseal;
use crate::storage::db::CF_KV_META;
use crate::storage::{Db, StorageError};

const ROW_PREFIX: &[u8] = b"removed/";

/// The `kv_meta` key of removed node `id`.
pub(crate) fn row_key(id: NodeId) -> Vec<u8> {
    let mut key = ROW_PREFIX.to_vec();
    key.extend_from_slice(&id.get().to_be_bytes());
    key
}

/// Every removed node recorded in `db`.
pub(crate) fn read_removed(db: &Db) -> Result<BTreeSet<NodeId>, StorageError> {
    let mut removed = BTreeSet::new();
    let rows = db.raw().iterator_cf(
        db.cf(CF_KV_META),
        IteratorMode::From(ROW_PREFIX, Direction::Forward),
    );
    for row in rows {
        let (key, value) = row.map_err(StorageError::Read)?;
        let Some(id) = key.strip_prefix(ROW_PREFIX) else {
            break;
        };
        let id: [u8; 8] = id
            .try_into()
            .map_err(|_| StorageError::Corrupt("removed member row: bad key".into()))?;
        unseal(&value).map_err(|e| StorageError::Corrupt(format!("removed member row: {e}")))?;
        removed.insert(NodeId(u64::from_be_bytes(id)));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_keys_sort_after_member_rows_and_by_id() {
        assert!(super::super::member::row_key_end() < row_key(NodeId(1)));
        assert!(row_key(NodeId(1)) < row_key(NodeId(256)));
    }
}
