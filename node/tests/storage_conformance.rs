//! The log storage conformance suite: every behaviour of the Raft core's
//! `LogStorage`/`LogStore` contract, written once as a generic function and
//! run against the in-memory reference store (`MemStorage`) and RocksDB
//! (`RocksLogStore`), the latter twice: once as is, and once restarted from
//! disk at each checkpoint, to prove that what `persist` accepted survives.
//!
//! The tests after the suite are RocksDB's own: start-up refuses a data
//! directory that is corrupt, has lost entries, or belongs to another node or
//! cluster.
//!
//! Run it with `cargo test -p raftcfg-node --test storage_conformance`.

use std::path::Path;

use bytes::Bytes;
use raftcfg_node::codec::encode;
use raftcfg_node::storage::checksum::seal;
use raftcfg_node::storage::db::{CF_RAFT_LOG, CF_RAFT_META};
use raftcfg_node::storage::log_store::{HARD_STATE_KEY, IDENTITY_KEY, log_key, stored_value};
use raftcfg_node::storage::{Db, ExpectedIdentity, RocksLogStore, StorageError};
use raftcfg_raft::{
    BootstrapError, ClusterId, ConfigChange, Entry, EntryPayload, HardState, LogIndex, LogStorage,
    LogStore, LogWrite, MemStorage, Membership, MembershipChange, NodeId, Snapshot,
    SnapshotMetadata, StorageError as RaftStorageError, Term, bootstrap,
};
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// The stores under test.

/// A log store under test, and a way to restart it from what it persisted.
trait Subject {
    type Store: LogStore;

    /// The store.
    fn store(&mut self) -> &mut Self::Store;

    /// A point where the node may crash and restart: the restarting runs
    /// reopen the store from disk here, the others carry on.
    fn checkpoint(&mut self);
}

/// The in-memory reference store. Keeping it is what a crash keeps.
struct Memory(MemStorage);

impl Subject for Memory {
    type Store = MemStorage;

    fn store(&mut self) -> &mut MemStorage {
        &mut self.0
    }

    fn checkpoint(&mut self) {}
}

/// A RocksDB store in a temporary directory.
struct Rocks {
    dir: TempDir,
    store: Option<RocksLogStore>,
    restart_at_checkpoints: bool,
}

impl Rocks {
    fn new(restart_at_checkpoints: bool) -> Self {
        let dir = TempDir::new().expect("create a temporary directory");
        let store = open(dir.path(), &expected()).expect("open a new data directory");
        Self {
            dir,
            store: Some(store),
            restart_at_checkpoints,
        }
    }
}

impl Subject for Rocks {
    type Store = RocksLogStore;

    fn store(&mut self) -> &mut RocksLogStore {
        self.store.as_mut().expect("the store is open")
    }

    fn checkpoint(&mut self) {
        if self.restart_at_checkpoints {
            // Close the database before opening it again.
            self.store = None;
            self.store =
                Some(open(self.dir.path(), &expected()).expect("reopen the data directory"));
        }
    }
}

const NODE: NodeId = NodeId(0x5eed_0001);
const CLUSTER: ClusterId = ClusterId(0xc105_7e12);

fn expected() -> ExpectedIdentity {
    ExpectedIdentity::new("n1", NODE)
}

fn open(path: &Path, expected: &ExpectedIdentity) -> Result<RocksLogStore, StorageError> {
    RocksLogStore::open(Db::open(path)?, expected)
}

/// Generates one test per behaviour and store.
macro_rules! conformance {
    ($($behaviour:ident),* $(,)?) => {
        mod in_memory {
            $(#[test]
            fn $behaviour() {
                super::$behaviour(&mut super::Memory(raftcfg_raft::MemStorage::new()));
            })*
        }

        mod in_rocksdb {
            $(#[test]
            fn $behaviour() {
                super::$behaviour(&mut super::Rocks::new(false));
            })*
        }

        mod in_rocksdb_across_restarts {
            $(#[test]
            fn $behaviour() {
                super::$behaviour(&mut super::Rocks::new(true));
            })*
        }
    };
}

conformance!(
    an_empty_store_holds_no_state,
    bootstrap_founds_a_cluster_at_index_zero,
    bootstrap_refuses_a_store_that_holds_state,
    appended_entries_are_read_back,
    reads_stop_at_max_bytes_but_return_at_least_one_entry,
    an_overwritten_suffix_drops_the_later_entries,
    an_overwrite_that_extends_the_log_replaces_its_tail,
    the_hard_state_round_trips,
    compaction_discards_entries_up_to_the_snapshot,
    compaction_at_or_below_the_snapshot_changes_nothing,
    entries_hard_state_and_compaction_in_one_write_apply_in_order,
    a_received_snapshot_replaces_the_whole_log,
    a_received_snapshot_behind_the_last_entry_still_replaces_the_log,
    entries_after_a_received_snapshot_in_one_write_follow_it,
    reads_past_the_end_are_unavailable,
);

// ---------------------------------------------------------------------------
// Helpers.

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: EntryPayload::Command(Bytes::from(format!("command {index}"))),
    }
}

/// Entries `first..=last` of `term`, with a no-op and a configuration
/// change among them so every payload is stored.
fn entries(first: u64, last: u64, term: u64) -> Vec<Entry> {
    (first..=last)
        .map(|index| {
            let mut entry = entry(index, term);
            match index % 5 {
                0 => entry.payload = EntryPayload::Noop,
                3 => {
                    entry.payload = EntryPayload::Config(ConfigChange {
                        change: MembershipChange::AddLearner(NodeId(index)),
                        config: membership(),
                        context: Bytes::from_static(b"http://peer:7380"),
                    })
                }
                _ => {}
            }
            entry
        })
        .collect()
}

fn membership() -> Membership {
    let mut membership = Membership::with_voters([NODE, NodeId(2), NodeId(3)]);
    membership.learners.insert(NodeId(4));
    membership
}

fn write<'a>() -> LogWrite<'a> {
    LogWrite {
        snapshot: None,
        entries: &[],
        hard_state: None,
        compaction: None,
    }
}

fn append<S: LogStore>(store: &mut S, entries: &[Entry]) {
    store
        .persist(LogWrite { entries, ..write() })
        .expect("append entries");
}

fn commit<S: LogStore>(store: &mut S, index: u64) -> HardState {
    let hard_state = HardState {
        term: Term(3),
        vote: Some(NODE),
        commit: LogIndex(index),
        cluster_id: Some(CLUSTER),
    };
    store
        .persist(LogWrite {
            hard_state: Some(&hard_state),
            ..write()
        })
        .expect("persist the hard state");
    hard_state
}

fn snapshot(index: u64, term: u64, data: &'static [u8]) -> Snapshot {
    Snapshot {
        metadata: SnapshotMetadata {
            index: LogIndex(index),
            term: Term(term),
            membership: membership(),
        },
        data: Bytes::from_static(data),
    }
}

fn compact<S: LogStore>(store: &mut S, snapshot: &Snapshot) {
    store
        .persist(LogWrite {
            compaction: Some(snapshot),
            ..write()
        })
        .expect("compact");
}

fn install<S: LogStore>(store: &mut S, snapshot: &Snapshot) {
    store
        .persist(LogWrite {
            snapshot: Some(snapshot),
            ..write()
        })
        .expect("install a snapshot");
}

fn all_entries<S: LogStorage>(store: &S) -> Vec<Entry> {
    let first = store.first_index().unwrap();
    let last = store.last_index().unwrap();
    store.entries(first, last.next(), u64::MAX).unwrap()
}

fn bounds<S: LogStorage>(store: &S) -> (u64, u64) {
    (
        store.first_index().unwrap().get(),
        store.last_index().unwrap().get(),
    )
}

// ---------------------------------------------------------------------------
// The behaviours.

fn an_empty_store_holds_no_state(subject: &mut impl Subject) {
    for _ in 0..2 {
        let store = subject.store();
        assert_eq!(store.hard_state(), Ok(HardState::default()));
        assert_eq!(store.snapshot(), Ok(Snapshot::default()));
        assert_eq!(store.snapshot_metadata(), Ok(SnapshotMetadata::default()));
        assert_eq!(bounds(store), (1, 0));
        assert_eq!(store.term(LogIndex(0)), Ok(Term(0)));
        assert_eq!(
            store.term(LogIndex(1)),
            Err(RaftStorageError::Unavailable(LogIndex(1)))
        );
        assert_eq!(store.entries(LogIndex(1), LogIndex(1), 0), Ok(vec![]));
        assert_eq!(
            store.entries(LogIndex(1), LogIndex(2), u64::MAX),
            Err(RaftStorageError::Unavailable(LogIndex(1)))
        );
        assert_eq!(
            store.entries(LogIndex(0), LogIndex(1), u64::MAX),
            Err(RaftStorageError::Compacted(LogIndex(0)))
        );
        subject.checkpoint();
    }
}

fn bootstrap_founds_a_cluster_at_index_zero(subject: &mut impl Subject) {
    bootstrap(subject.store(), [NODE, NodeId(2)], CLUSTER).expect("bootstrap");
    subject.checkpoint();
    let store = subject.store();
    assert_eq!(
        store.hard_state(),
        Ok(HardState {
            cluster_id: Some(CLUSTER),
            ..HardState::default()
        })
    );
    let metadata = store.snapshot_metadata().unwrap();
    assert_eq!(metadata.index, LogIndex(0));
    assert_eq!(metadata.term, Term(0));
    assert_eq!(
        metadata.membership,
        Membership::with_voters([NODE, NodeId(2)])
    );
    assert_eq!(store.snapshot().unwrap().metadata, metadata);
    assert_eq!(bounds(store), (1, 0));
    assert_eq!(store.term(LogIndex(0)), Ok(Term(0)));
}

fn bootstrap_refuses_a_store_that_holds_state(subject: &mut impl Subject) {
    bootstrap(subject.store(), [NODE], CLUSTER).expect("bootstrap");
    subject.checkpoint();
    assert!(matches!(
        bootstrap(subject.store(), [NODE], ClusterId(99)),
        Err(BootstrapError::AlreadyInitialized)
    ));
    assert_eq!(
        subject.store().hard_state().unwrap().cluster_id,
        Some(CLUSTER)
    );

    append(subject.store(), &entries(1, 1, 1));
    let founded = subject.store().snapshot_metadata().unwrap();
    subject.checkpoint();
    assert!(bootstrap(subject.store(), [NodeId(7)], ClusterId(99)).is_err());
    assert_eq!(subject.store().snapshot_metadata(), Ok(founded));
}

fn appended_entries_are_read_back(subject: &mut impl Subject) {
    let written = entries(1, 7, 1);
    append(subject.store(), &written[..3]);
    append(subject.store(), &written[3..]);
    subject.checkpoint();
    let store = subject.store();
    assert_eq!(bounds(store), (1, 7));
    assert_eq!(all_entries(store), written);
    assert_eq!(
        store.entries(LogIndex(2), LogIndex(5), u64::MAX),
        Ok(written[1..4].to_vec())
    );
    for entry in &written {
        assert_eq!(store.term(entry.index), Ok(entry.term));
    }
}

fn reads_stop_at_max_bytes_but_return_at_least_one_entry(subject: &mut impl Subject) {
    let written = entries(1, 6, 2);
    append(subject.store(), &written);
    subject.checkpoint();
    let store = subject.store();
    let (low, high) = (LogIndex(1), LogIndex(7));
    assert_eq!(store.entries(low, high, 0), Ok(written[..1].to_vec()));
    let two = written[0].size_bytes() + written[1].size_bytes();
    assert_eq!(store.entries(low, high, two), Ok(written[..2].to_vec()));
    assert_eq!(store.entries(low, high, two + 1), Ok(written[..2].to_vec()));
    assert_eq!(
        store.entries(LogIndex(4), high, 1),
        Ok(written[3..4].to_vec())
    );
}

fn an_overwritten_suffix_drops_the_later_entries(subject: &mut impl Subject) {
    append(subject.store(), &entries(1, 6, 1));
    let replacement = entries(3, 4, 2);
    append(subject.store(), &replacement);
    subject.checkpoint();
    let store = subject.store();
    assert_eq!(bounds(store), (1, 4));
    let mut expected = entries(1, 2, 1);
    expected.extend(replacement);
    assert_eq!(all_entries(store), expected);
    assert_eq!(store.term(LogIndex(3)), Ok(Term(2)));
    assert_eq!(
        store.term(LogIndex(5)),
        Err(RaftStorageError::Unavailable(LogIndex(5)))
    );
    assert_eq!(
        store.entries(LogIndex(5), LogIndex(6), u64::MAX),
        Err(RaftStorageError::Unavailable(LogIndex(5)))
    );

    // The log grows again from its new end.
    append(subject.store(), &entries(5, 5, 2));
    subject.checkpoint();
    assert_eq!(bounds(subject.store()), (1, 5));
    assert_eq!(subject.store().term(LogIndex(5)), Ok(Term(2)));
}

fn an_overwrite_that_extends_the_log_replaces_its_tail(subject: &mut impl Subject) {
    append(subject.store(), &entries(1, 4, 1));
    append(subject.store(), &entries(2, 9, 3));
    subject.checkpoint();
    let mut expected = entries(1, 1, 1);
    expected.extend(entries(2, 9, 3));
    assert_eq!(all_entries(subject.store()), expected);
}

fn the_hard_state_round_trips(subject: &mut impl Subject) {
    append(subject.store(), &entries(1, 3, 1));
    let hard_state = commit(subject.store(), 2);
    subject.checkpoint();
    assert_eq!(subject.store().hard_state(), Ok(hard_state));

    let voted = HardState {
        term: Term(4),
        vote: None,
        commit: LogIndex(3),
        cluster_id: Some(CLUSTER),
    };
    subject
        .store()
        .persist(LogWrite {
            hard_state: Some(&voted),
            ..write()
        })
        .unwrap();
    subject.checkpoint();
    assert_eq!(subject.store().hard_state(), Ok(voted));
    assert_eq!(bounds(subject.store()), (1, 3));
}

fn compaction_discards_entries_up_to_the_snapshot(subject: &mut impl Subject) {
    let written = entries(1, 10, 2);
    append(subject.store(), &written);
    commit(subject.store(), 10);
    let compacted = snapshot(6, 2, b"state at 6");
    compact(subject.store(), &compacted);
    subject.checkpoint();
    let store = subject.store();
    assert_eq!(bounds(store), (7, 10));
    assert_eq!(store.term(LogIndex(6)), Ok(Term(2)));
    assert_eq!(
        store.term(LogIndex(5)),
        Err(RaftStorageError::Compacted(LogIndex(5)))
    );
    assert_eq!(
        store.entries(LogIndex(6), LogIndex(8), u64::MAX),
        Err(RaftStorageError::Compacted(LogIndex(6)))
    );
    assert_eq!(all_entries(store), written[6..].to_vec());
    assert_eq!(store.snapshot(), Ok(compacted.clone()));
    assert_eq!(store.snapshot_metadata(), Ok(compacted.metadata));

    // Compacting the whole log leaves it empty after the snapshot.
    let everything = snapshot(10, 2, b"state at 10");
    compact(subject.store(), &everything);
    subject.checkpoint();
    let store = subject.store();
    assert_eq!(bounds(store), (11, 10));
    assert_eq!(store.term(LogIndex(10)), Ok(Term(2)));
    assert_eq!(store.snapshot(), Ok(everything));
    append(store, &entries(11, 11, 3));
    subject.checkpoint();
    assert_eq!(all_entries(subject.store()), entries(11, 11, 3));
}

fn compaction_at_or_below_the_snapshot_changes_nothing(subject: &mut impl Subject) {
    append(subject.store(), &entries(1, 8, 1));
    commit(subject.store(), 8);
    let compacted = snapshot(5, 1, b"state at 5");
    compact(subject.store(), &compacted);
    compact(subject.store(), &snapshot(5, 1, b"again at 5"));
    compact(subject.store(), &snapshot(3, 1, b"older"));
    subject.checkpoint();
    let store = subject.store();
    assert_eq!(bounds(store), (6, 8));
    assert_eq!(store.snapshot(), Ok(compacted));
}

fn entries_hard_state_and_compaction_in_one_write_apply_in_order(subject: &mut impl Subject) {
    let written = entries(1, 6, 1);
    let hard_state = HardState {
        term: Term(1),
        vote: Some(NODE),
        commit: LogIndex(6),
        cluster_id: Some(CLUSTER),
    };
    let compacted = snapshot(4, 1, b"state at 4");
    subject
        .store()
        .persist(LogWrite {
            snapshot: None,
            entries: &written,
            hard_state: Some(&hard_state),
            compaction: Some(&compacted),
        })
        .unwrap();
    subject.checkpoint();
    let store = subject.store();
    assert_eq!(bounds(store), (5, 6));
    assert_eq!(all_entries(store), written[4..].to_vec());
    assert_eq!(store.hard_state(), Ok(hard_state));
    assert_eq!(store.snapshot(), Ok(compacted));
}

fn a_received_snapshot_replaces_the_whole_log(subject: &mut impl Subject) {
    append(subject.store(), &entries(1, 5, 1));
    let received = snapshot(8, 3, b"leader state at 8");
    install(subject.store(), &received);
    subject.checkpoint();
    let store = subject.store();
    assert_eq!(bounds(store), (9, 8));
    assert_eq!(store.term(LogIndex(8)), Ok(Term(3)));
    assert_eq!(
        store.term(LogIndex(5)),
        Err(RaftStorageError::Compacted(LogIndex(5)))
    );
    assert_eq!(
        store.entries(LogIndex(9), LogIndex(10), u64::MAX),
        Err(RaftStorageError::Unavailable(LogIndex(9)))
    );
    assert_eq!(store.snapshot(), Ok(received));

    append(store, &entries(9, 10, 3));
    subject.checkpoint();
    assert_eq!(bounds(subject.store()), (9, 10));
    assert_eq!(all_entries(subject.store()), entries(9, 10, 3));
}

fn a_received_snapshot_behind_the_last_entry_still_replaces_the_log(subject: &mut impl Subject) {
    append(subject.store(), &entries(1, 6, 1));
    let received = snapshot(3, 2, b"leader state at 3");
    install(subject.store(), &received);
    subject.checkpoint();
    let store = subject.store();
    assert_eq!(bounds(store), (4, 3));
    assert_eq!(store.term(LogIndex(3)), Ok(Term(2)));
    assert_eq!(
        store.term(LogIndex(4)),
        Err(RaftStorageError::Unavailable(LogIndex(4)))
    );
    assert_eq!(store.snapshot(), Ok(received));
}

fn entries_after_a_received_snapshot_in_one_write_follow_it(subject: &mut impl Subject) {
    append(subject.store(), &entries(1, 9, 1));
    let received = snapshot(5, 2, b"leader state at 5");
    let following = entries(6, 7, 2);
    let hard_state = HardState {
        term: Term(2),
        vote: None,
        commit: LogIndex(7),
        cluster_id: Some(CLUSTER),
    };
    subject
        .store()
        .persist(LogWrite {
            snapshot: Some(&received),
            entries: &following,
            hard_state: Some(&hard_state),
            compaction: None,
        })
        .unwrap();
    subject.checkpoint();
    let store = subject.store();
    assert_eq!(bounds(store), (6, 7));
    assert_eq!(all_entries(store), following);
    assert_eq!(store.hard_state(), Ok(hard_state));
    assert_eq!(store.snapshot(), Ok(received));
}

fn reads_past_the_end_are_unavailable(subject: &mut impl Subject) {
    append(subject.store(), &entries(1, 3, 1));
    subject.checkpoint();
    let store = subject.store();
    assert_eq!(
        store.term(LogIndex(4)),
        Err(RaftStorageError::Unavailable(LogIndex(4)))
    );
    assert_eq!(
        store.entries(LogIndex(1), LogIndex(5), u64::MAX),
        Err(RaftStorageError::Unavailable(LogIndex(4)))
    );
    assert_eq!(
        store.entries(LogIndex(4), LogIndex(6), u64::MAX),
        Err(RaftStorageError::Unavailable(LogIndex(5)))
    );
    assert_eq!(
        store.entries(LogIndex(4), LogIndex(4), u64::MAX),
        Ok(vec![])
    );
}

// ---------------------------------------------------------------------------
// RocksDB only: identity and refusing damaged directories at start-up.

/// A directory holding entries 1..=5 (committed up to 3) of node `n1`, closed.
fn directory_with_a_log() -> TempDir {
    let dir = TempDir::new().unwrap();
    let mut store = open(dir.path(), &expected()).unwrap();
    bootstrap(&mut store, [NODE], CLUSTER).unwrap();
    append(&mut store, &entries(1, 5, 1));
    commit(&mut store, 3);
    dir
}

/// Changes the closed database in `dir` directly, bypassing the store.
fn tamper(dir: &TempDir, change: impl FnOnce(&Db)) {
    let db = Db::open(dir.path()).unwrap();
    change(&db);
}

fn corruption(result: Result<RocksLogStore, StorageError>) -> String {
    match result {
        Err(StorageError::Corrupt(reason)) => reason,
        Err(other) => panic!("expected a corruption error, got {other}"),
        Ok(_) => panic!("a damaged directory was opened"),
    }
}

fn foreign(result: Result<RocksLogStore, StorageError>) -> String {
    match result {
        Err(error @ StorageError::Foreign(_)) => error.to_string(),
        Err(other) => panic!("expected a foreign-directory error, got {other}"),
        Ok(_) => panic!("a foreign directory was opened"),
    }
}

#[test]
fn terms_are_known_after_a_restart_as_before_it() {
    let dir = TempDir::new().unwrap();
    let mut store = open(dir.path(), &expected()).unwrap();
    bootstrap(&mut store, [NODE], CLUSTER).unwrap();
    append(&mut store, &entries(1, 3, 1));
    append(&mut store, &entries(4, 6, 2));
    append(&mut store, &entries(5, 8, 3)); // overwrites 5 and 6
    let before: Vec<_> = (1..=8).map(|i| store.term(LogIndex(i)).unwrap()).collect();
    assert_eq!(
        before,
        [1, 1, 1, 2, 3, 3, 3, 3].map(Term).to_vec(),
        "terms as written"
    );
    drop(store);
    let store = open(dir.path(), &expected()).unwrap();
    let after: Vec<_> = (1..=8).map(|i| store.term(LogIndex(i)).unwrap()).collect();
    assert_eq!(after, before);
    assert_eq!(
        all_entries(&store)
            .iter()
            .map(|e| e.term)
            .collect::<Vec<_>>(),
        before,
        "the terms answered are the stored entries' terms"
    );
}

#[test]
fn a_new_directory_records_the_callers_node_id_and_name() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path(), &expected()).unwrap();
    let identity = store.identity();
    assert_eq!((identity.node_id, identity.name.as_str()), (NODE, "n1"));
    assert_eq!(identity.cluster_id, None);
    drop(store);

    // Later starts draw another fresh id; the stored one wins.
    let store = open(dir.path(), &ExpectedIdentity::new("n1", NodeId(12345))).unwrap();
    assert_eq!(store.identity().node_id, NODE);
}

#[test]
fn the_identity_reports_the_cluster_id_of_the_hard_state() {
    let dir = directory_with_a_log();
    let store = open(dir.path(), &expected()).unwrap();
    assert_eq!(store.identity().cluster_id, Some(CLUSTER));
}

#[test]
fn node_id_zero_is_never_recorded() {
    let dir = TempDir::new().unwrap();
    let result = open(dir.path(), &ExpectedIdentity::new("n1", NodeId(0)));
    assert!(matches!(result, Err(StorageError::InvalidIdentity(_))));
}

#[test]
fn a_directory_of_another_name_is_refused() {
    let dir = directory_with_a_log();
    let message = foreign(open(dir.path(), &ExpectedIdentity::new("n2", NodeId(77))));
    assert!(message.contains("node"), "{message}");
}

#[test]
fn a_directory_of_another_node_id_is_refused() {
    let dir = directory_with_a_log();
    let message = foreign(open(dir.path(), &expected().with_node_id(NodeId(77))));
    assert!(message.contains("node"), "{message}");
    assert!(open(dir.path(), &expected().with_node_id(NODE)).is_ok());
}

#[test]
fn a_directory_of_another_cluster_is_refused() {
    let dir = directory_with_a_log();
    let message = foreign(open(dir.path(), &expected().with_cluster_id(ClusterId(8))));
    assert!(message.contains("cluster"), "{message}");
    assert!(open(dir.path(), &expected().with_cluster_id(CLUSTER)).is_ok());
}

#[test]
fn a_directory_of_no_cluster_yet_is_accepted_when_a_cluster_is_expected() {
    let dir = TempDir::new().unwrap();
    drop(open(dir.path(), &expected()).unwrap());
    let store = open(dir.path(), &expected().with_cluster_id(CLUSTER)).unwrap();
    assert_eq!(store.identity().cluster_id, None);
}

#[test]
fn a_corrupted_entry_is_refused_at_open() {
    let dir = directory_with_a_log();
    tamper(&dir, |db| {
        let cf = db.cf(CF_RAFT_LOG);
        let mut value = db.get(CF_RAFT_LOG, &log_key(LogIndex(3))).unwrap().unwrap();
        let last = value.len() - 1;
        value[last] ^= 0x01;
        db.raw().put_cf(cf, log_key(LogIndex(3)), value).unwrap();
    });
    let reason = corruption(open(dir.path(), &expected()));
    assert!(
        reason.contains("entry 3") && reason.contains("checksum"),
        "{reason}"
    );
}

#[test]
fn an_entry_overwritten_with_garbage_is_refused_at_open() {
    let dir = directory_with_a_log();
    tamper(&dir, |db| {
        let cf = db.cf(CF_RAFT_LOG);
        db.raw().put_cf(cf, log_key(LogIndex(2)), b"gar").unwrap();
    });
    let reason = corruption(open(dir.path(), &expected()));
    assert!(reason.contains("entry 2"), "{reason}");
}

#[test]
fn an_entry_that_checksums_but_does_not_decode_is_refused_at_open() {
    let dir = directory_with_a_log();
    tamper(&dir, |db| {
        let cf = db.cf(CF_RAFT_LOG);
        db.raw()
            .put_cf(cf, log_key(LogIndex(4)), seal(b"\x01not an entry"))
            .unwrap();
    });
    let reason = corruption(open(dir.path(), &expected()));
    assert!(reason.contains("cannot be decoded"), "{reason}");
}

#[test]
fn an_entry_stored_under_the_wrong_index_is_refused_at_open() {
    let dir = directory_with_a_log();
    tamper(&dir, |db| {
        let cf = db.cf(CF_RAFT_LOG);
        db.raw()
            .put_cf(cf, log_key(LogIndex(4)), stored_value(&entry(5, 1)))
            .unwrap();
    });
    corruption(open(dir.path(), &expected()));
}

#[test]
fn a_corrupted_hard_state_is_refused_at_open() {
    let dir = directory_with_a_log();
    tamper(&dir, |db| {
        let cf = db.cf(CF_RAFT_META);
        db.raw()
            .put_cf(cf, HARD_STATE_KEY, b"\0\0\0\0\x01")
            .unwrap();
    });
    let reason = corruption(open(dir.path(), &expected()));
    assert!(reason.contains("hard state"), "{reason}");
}

#[test]
fn a_gap_in_the_middle_of_the_log_is_refused_at_open() {
    let dir = directory_with_a_log();
    tamper(&dir, |db| {
        let cf = db.cf(CF_RAFT_LOG);
        db.raw().delete_cf(cf, log_key(LogIndex(3))).unwrap();
    });
    let reason = corruption(open(dir.path(), &expected()));
    assert!(reason.contains("gap") && reason.contains('3'), "{reason}");
}

#[test]
fn a_log_that_does_not_start_after_the_snapshot_is_refused_at_open() {
    let dir = directory_with_a_log();
    tamper(&dir, |db| {
        let cf = db.cf(CF_RAFT_LOG);
        db.raw().delete_cf(cf, log_key(LogIndex(1))).unwrap();
    });
    let reason = corruption(open(dir.path(), &expected()));
    assert!(reason.contains("starts at 2"), "{reason}");
}

#[test]
fn a_log_that_lost_its_last_entries_is_refused_at_open() {
    let dir = directory_with_a_log();
    tamper(&dir, |db| {
        let cf = db.cf(CF_RAFT_LOG);
        db.raw().delete_cf(cf, log_key(LogIndex(5))).unwrap();
    });
    let reason = corruption(open(dir.path(), &expected()));
    assert!(reason.contains("entries are missing"), "{reason}");
}

#[test]
fn a_commit_index_past_the_last_entry_is_refused_at_open() {
    let dir = directory_with_a_log();
    tamper(&dir, |db| {
        let hard_state = HardState {
            term: Term(3),
            vote: Some(NODE),
            commit: LogIndex(9),
            cluster_id: Some(CLUSTER),
        };
        let cf = db.cf(CF_RAFT_META);
        db.raw()
            .put_cf(cf, HARD_STATE_KEY, seal(&encode(&hard_state)))
            .unwrap();
    });
    let reason = corruption(open(dir.path(), &expected()));
    assert!(reason.contains("commit index 9"), "{reason}");
}

#[test]
fn raft_state_without_an_identity_is_refused_at_open() {
    let dir = directory_with_a_log();
    tamper(&dir, |db| {
        let cf = db.cf(CF_RAFT_META);
        db.raw().delete_cf(cf, IDENTITY_KEY).unwrap();
    });
    let reason = corruption(open(dir.path(), &expected()));
    assert!(reason.contains("identity"), "{reason}");
}

#[test]
fn persist_refuses_a_commit_index_past_the_last_entry_and_changes_nothing() {
    let dir = directory_with_a_log();
    let mut store = open(dir.path(), &expected()).unwrap();
    let before = store.hard_state().unwrap();
    let hard_state = HardState {
        commit: LogIndex(6),
        ..before
    };
    let result = store.persist(LogWrite {
        hard_state: Some(&hard_state),
        ..write()
    });
    assert!(matches!(result, Err(RaftStorageError::Failed(_))));
    assert_eq!(store.hard_state(), Ok(before));
    drop(store);
    assert_eq!(
        open(dir.path(), &expected()).unwrap().hard_state(),
        Ok(before)
    );
}

#[test]
fn a_raised_commit_index_alone_is_stored_only_with_the_next_write() {
    let dir = directory_with_a_log();
    let mut store = open(dir.path(), &expected()).unwrap();
    let committed_3 = store.hard_state().unwrap();
    let committed_4 = HardState {
        commit: LogIndex(4),
        ..committed_3
    };
    store
        .persist(LogWrite {
            hard_state: Some(&committed_4),
            ..write()
        })
        .unwrap();
    assert_eq!(store.hard_state(), Ok(committed_4), "read back at once");
    drop(store);
    let mut store = open(dir.path(), &expected()).unwrap();
    assert_eq!(store.hard_state(), Ok(committed_3), "not written by itself");

    store
        .persist(LogWrite {
            hard_state: Some(&committed_4),
            ..write()
        })
        .unwrap();
    append(&mut store, &entries(6, 6, 3));
    drop(store);
    let store = open(dir.path(), &expected()).unwrap();
    assert_eq!(
        store.hard_state(),
        Ok(committed_4),
        "written with the entry"
    );
    assert_eq!(bounds(&store), (1, 6));
}

#[test]
fn the_commit_index_is_raised_to_the_applied_index_within_the_log_only() {
    let dir = directory_with_a_log();
    let mut store = open(dir.path(), &expected()).unwrap();
    store.commit_at_least(LogIndex(2)).unwrap();
    assert_eq!(
        store.hard_state().unwrap().commit,
        LogIndex(3),
        "never lowered"
    );
    store.commit_at_least(LogIndex(5)).unwrap();
    assert_eq!(store.hard_state().unwrap().commit, LogIndex(5));
    let reason = match store.commit_at_least(LogIndex(6)) {
        Err(StorageError::Corrupt(reason)) => reason,
        other => panic!("expected a corruption error, got {other:?}"),
    };
    assert!(reason.contains("applied up to 6"), "{reason}");
    assert_eq!(store.hard_state().unwrap().commit, LogIndex(5));
    // Raised in memory, it is stored with the next write.
    append(&mut store, &entries(6, 6, 3));
    drop(store);
    let store = open(dir.path(), &expected()).unwrap();
    assert_eq!(store.hard_state().unwrap().commit, LogIndex(5));
}

#[test]
fn persist_refuses_entries_that_leave_a_gap() {
    let dir = directory_with_a_log();
    let mut store = open(dir.path(), &expected()).unwrap();
    let result = store.persist(LogWrite {
        entries: &entries(7, 8, 1),
        ..write()
    });
    assert!(matches!(result, Err(RaftStorageError::Failed(_))));
    assert_eq!(bounds(&store), (1, 5));
}

// ---------------------------------------------------------------------------
// RocksDB's compaction tail.

/// A RocksDB store with entries 1..=20 in term 1, compacted at 15 with a
/// tail of 5.
fn store_with_tail(dir: &Path) -> RocksLogStore {
    let mut store = open(dir, &expected()).unwrap();
    store.set_compaction_tail(5);
    let entries: Vec<Entry> = (1..=20)
        .map(|i| Entry {
            term: Term(1),
            index: LogIndex(i),
            payload: EntryPayload::Noop,
        })
        .collect();
    let hard_state = HardState {
        term: Term(1),
        vote: None,
        commit: LogIndex(20),
        cluster_id: None,
    };
    store
        .persist(LogWrite {
            snapshot: None,
            entries: &entries,
            hard_state: Some(&hard_state),
            compaction: None,
        })
        .unwrap();
    let snapshot = Snapshot {
        metadata: SnapshotMetadata {
            index: LogIndex(15),
            term: Term(1),
            membership: Membership::with_voters([NodeId(1)]),
        },
        data: Bytes::from_static(b"state"),
    };
    store
        .persist(LogWrite {
            snapshot: None,
            entries: &[],
            hard_state: None,
            compaction: Some(&snapshot),
        })
        .unwrap();
    store
}

#[test]
fn compaction_keeps_the_configured_tail_behind_the_snapshot_across_restarts() {
    let dir = TempDir::new().unwrap();
    drop(store_with_tail(dir.path()));
    let store = open(dir.path(), &expected()).unwrap();
    assert_eq!(store.snapshot_metadata().unwrap().index, LogIndex(15));
    assert_eq!(store.first_index().unwrap(), LogIndex(11));
    assert_eq!(store.last_index().unwrap(), LogIndex(20));
    assert_eq!(store.term(LogIndex(11)).unwrap(), Term(1));
    assert_eq!(
        store.term(LogIndex(10)),
        Err(RaftStorageError::Compacted(LogIndex(10)))
    );
    let tail = store.entries(LogIndex(11), LogIndex(21), u64::MAX).unwrap();
    assert_eq!(tail.len(), 10);
    assert!(matches!(
        store.entries(LogIndex(10), LogIndex(12), u64::MAX),
        Err(RaftStorageError::Compacted(_))
    ));
}

#[test]
fn a_received_snapshot_replaces_the_tail_too() {
    let dir = TempDir::new().unwrap();
    let mut store = store_with_tail(dir.path());
    let received = Snapshot {
        metadata: SnapshotMetadata {
            index: LogIndex(30),
            term: Term(2),
            membership: Membership::with_voters([NodeId(1)]),
        },
        data: Bytes::from_static(b"newer"),
    };
    store
        .persist(LogWrite {
            snapshot: Some(&received),
            entries: &[],
            hard_state: None,
            compaction: None,
        })
        .unwrap();
    drop(store);
    let store = open(dir.path(), &expected()).unwrap();
    assert_eq!(store.first_index().unwrap(), LogIndex(31));
    assert_eq!(store.last_index().unwrap(), LogIndex(30));
    assert_eq!(store.term(LogIndex(30)).unwrap(), Term(2));
}
