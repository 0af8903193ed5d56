//! The key-value state machine on a real RocksDB database in a temporary
//! directory: revisions and versions, preconditions, listing, the change
//! log, durability of a batch with its applied index, snapshots and digests.

use bytes::Bytes;
use proptest::prelude::*;
use raftcfg_node::codec;
use raftcfg_node::kv::{
    Applied, ChangeKind, ChangesError, Command, Digest, Key, KeyPrefix, KvStore, Limits,
    MemberAddress, Outcome, Precondition, RestoreError, Revision, write_state,
};
use raftcfg_node::storage::Db;
use raftcfg_raft::{
    ConfigChange, Entry, EntryPayload, LogIndex, Membership, MembershipChange, NodeId, Term,
};
use tempfile::TempDir;

/// A store in a temporary directory, fed one log entry per command.
struct Node {
    dir: TempDir,
    db: Db,
    store: KvStore,
}

impl Node {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let store = KvStore::open(db.clone()).unwrap();
        Self { dir, db, store }
    }

    /// Closes the database and opens it again from disk.
    fn reopen(self) -> Self {
        let Self { dir, db, store } = self;
        drop(store);
        drop(db);
        let db = Db::open(dir.path()).unwrap();
        let store = KvStore::open(db.clone()).unwrap();
        Self { dir, db, store }
    }

    /// The state as a snapshot, in memory.
    fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_state(&self.db, &mut out).unwrap();
        out
    }

    /// Restores the snapshot `bytes` (through a file, as a replica does).
    fn restore(&mut self, bytes: &[u8], applied_index: LogIndex) -> Result<(), RestoreError> {
        let path = self.dir.path().join("incoming.snapshot");
        std::fs::write(&path, bytes).unwrap();
        self.store.restore_file(&path, applied_index)
    }

    fn next_index(&self) -> LogIndex {
        self.store.applied_index().next()
    }

    /// Applies `payloads` as consecutive entries in one batch.
    fn apply_payloads(&mut self, payloads: Vec<EntryPayload>) -> Vec<Applied> {
        let first = self.next_index();
        let entries: Vec<Entry> = payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| Entry {
                term: Term(1),
                index: first.plus(i as u64),
                payload,
            })
            .collect();
        self.store.apply(&entries).unwrap()
    }

    /// Applies `commands` in one batch and returns their outcomes.
    fn apply(&mut self, commands: Vec<Command>) -> Vec<Outcome> {
        let payloads = commands
            .iter()
            .map(|c| EntryPayload::Command(bytes_of(c)))
            .collect();
        self.apply_payloads(payloads)
            .into_iter()
            .map(|applied| applied.outcome)
            .collect()
    }

    fn run(&mut self, command: Command) -> Outcome {
        self.apply(vec![command]).remove(0)
    }

    fn get(&self, key: &str) -> Option<(Bytes, u64, u64, u64)> {
        self.store.get(&k(key)).unwrap().map(|r| {
            (
                r.value,
                r.create_revision.get(),
                r.mod_revision.get(),
                r.version,
            )
        })
    }

    fn keys(&self, prefix: &str, limit: usize, start_after: Option<&str>) -> (Vec<String>, bool) {
        let after = start_after.map(k);
        let page = self.store.list(&p(prefix), limit, after.as_ref()).unwrap();
        let keys = page.records.iter().map(|r| r.key.to_string()).collect();
        (keys, page.more)
    }
}

fn k(text: &str) -> Key {
    Key::parse(text, &Limits::default()).unwrap()
}

fn p(text: &str) -> KeyPrefix {
    KeyPrefix::parse(text, &Limits::default()).unwrap()
}

fn put(key: &str, value: &str) -> Command {
    put_if(key, value, Precondition::None)
}

fn put_if(key: &str, value: &str, precondition: Precondition) -> Command {
    Command::Put {
        key: k(key),
        value: Bytes::copy_from_slice(value.as_bytes()),
        precondition,
    }
}

fn delete(key: &str) -> Command {
    delete_if(key, Precondition::None)
}

fn delete_if(key: &str, precondition: Precondition) -> Command {
    Command::Delete {
        key: k(key),
        precondition,
    }
}

fn written(revision: u64) -> Outcome {
    Outcome::Written {
        revision: Revision(revision),
    }
}

fn value(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

#[test]
fn a_put_is_read_back_with_its_revisions_and_version() {
    let mut node = Node::new();
    assert_eq!(node.run(put("app/db/url", "pg://a")), written(1));
    assert_eq!(node.get("app/db/url"), Some((value("pg://a"), 1, 1, 1)));
    assert_eq!(node.get("app/db/other"), None);
    assert_eq!(node.store.revision(), Revision(1));
}

#[test]
fn each_put_advances_version_and_mod_revision_but_keeps_create_revision() {
    let mut node = Node::new();
    node.run(put("a", "1"));
    node.run(put("b", "x"));
    assert_eq!(node.run(put("a", "2")), written(3));
    assert_eq!(node.run(put("a", "3")), written(4));
    assert_eq!(node.get("a"), Some((value("3"), 1, 4, 3)));
    assert_eq!(node.get("b"), Some((value("x"), 2, 2, 1)));
}

#[test]
fn delete_then_recreate_resets_version_and_create_revision() {
    let mut node = Node::new();
    node.run(put("a", "1"));
    node.run(put("a", "2"));
    assert_eq!(node.run(delete("a")), written(3));
    assert_eq!(node.get("a"), None);
    assert_eq!(node.run(put("a", "new")), written(4));
    assert_eq!(node.get("a"), Some((value("new"), 4, 4, 1)));
}

#[test]
fn deleting_an_absent_key_is_not_found_and_uses_no_revision() {
    let mut node = Node::new();
    node.run(put("a", "1"));
    assert_eq!(node.run(delete("nope")), Outcome::NotFound);
    assert_eq!(node.store.revision(), Revision(1));
    assert_eq!(node.run(put("b", "1")), written(2));
}

#[test]
fn compare_and_swap_on_the_current_mod_revision_succeeds() {
    let mut node = Node::new();
    node.run(put("a", "1"));
    node.run(put("a", "2"));
    let cas = put_if("a", "3", Precondition::ModRevision(Revision(2)));
    assert_eq!(node.run(cas), written(3));
    assert_eq!(node.get("a"), Some((value("3"), 1, 3, 3)));
}

#[test]
fn compare_and_swap_on_a_stale_mod_revision_fails_without_using_a_revision() {
    let mut node = Node::new();
    node.run(put("a", "1"));
    node.run(put("a", "2"));
    let stale = put_if("a", "3", Precondition::ModRevision(Revision(1)));
    assert_eq!(
        node.run(stale),
        Outcome::PreconditionFailed {
            current_mod_revision: Some(Revision(2))
        }
    );
    assert_eq!(node.get("a"), Some((value("2"), 1, 2, 2)));
    assert_eq!(node.store.revision(), Revision(2));
    assert_eq!(node.run(put("b", "1")), written(3));
}

#[test]
fn compare_and_swap_on_an_absent_key_fails_with_no_current_revision() {
    let mut node = Node::new();
    let cas = put_if("a", "1", Precondition::ModRevision(Revision(1)));
    assert_eq!(
        node.run(cas),
        Outcome::PreconditionFailed {
            current_mod_revision: None
        }
    );
    assert_eq!(node.store.revision(), Revision(0));
}

#[test]
fn create_only_succeeds_on_an_absent_key_and_fails_on_an_existing_one() {
    let mut node = Node::new();
    assert_eq!(node.run(put_if("a", "1", Precondition::Absent)), written(1));
    assert_eq!(
        node.run(put_if("a", "2", Precondition::Absent)),
        Outcome::PreconditionFailed {
            current_mod_revision: Some(Revision(1))
        }
    );
    assert_eq!(node.get("a"), Some((value("1"), 1, 1, 1)));
}

#[test]
fn a_delete_with_a_stale_if_match_fails_and_a_current_one_succeeds() {
    let mut node = Node::new();
    node.run(put("a", "1"));
    node.run(put("a", "2"));
    assert_eq!(
        node.run(delete_if("a", Precondition::ModRevision(Revision(1)))),
        Outcome::PreconditionFailed {
            current_mod_revision: Some(Revision(2))
        }
    );
    assert!(node.get("a").is_some());
    assert_eq!(
        node.run(delete_if("a", Precondition::ModRevision(Revision(2)))),
        written(3)
    );
    assert_eq!(node.get("a"), None);
}

#[test]
fn commands_in_one_batch_see_the_writes_before_them() {
    let mut node = Node::new();
    let outcomes = node.apply(vec![
        put("a", "1"),
        put_if("a", "2", Precondition::ModRevision(Revision(1))),
        put_if("a", "x", Precondition::Absent),
        delete("a"),
        put_if("a", "3", Precondition::Absent),
        delete("b"),
    ]);
    assert_eq!(
        outcomes,
        vec![
            written(1),
            written(2),
            Outcome::PreconditionFailed {
                current_mod_revision: Some(Revision(2))
            },
            written(3),
            written(4),
            Outcome::NotFound,
        ]
    );
    assert_eq!(node.get("a"), Some((value("3"), 4, 4, 1)));
    assert_eq!(node.store.revision(), Revision(4));
    assert_eq!(node.store.applied_index(), LogIndex(6));
}

#[test]
fn list_returns_the_keys_under_a_prefix_in_key_order() {
    let mut node = Node::new();
    node.apply(vec![
        put("app/db/url", "u"),
        put("app/db/user", "v"),
        put("app/dbx", "w"),
        put("app/cache", "c"),
        put("other", "o"),
        put("app/db/a", "a"),
    ]);
    assert_eq!(
        node.keys("app/db/", 10, None),
        (
            vec!["app/db/a".into(), "app/db/url".into(), "app/db/user".into()],
            false
        )
    );
    assert_eq!(node.keys("app/db", 10, None).0.len(), 4);
    assert_eq!(node.keys("", 10, None).0.len(), 6);
    assert_eq!(node.keys("zzz", 10, None), (vec![], false));
    let record = &node.store.list(&p("app/cache"), 1, None).unwrap().records[0];
    assert_eq!(
        (record.value.clone(), record.mod_revision),
        (value("c"), Revision(4))
    );
}

#[test]
fn list_pages_through_a_prefix_with_limit_and_start_after() {
    let mut node = Node::new();
    node.apply((0..7).map(|i| put(&format!("p/k{i}"), "v")).collect());
    node.run(put("q", "v"));
    assert_eq!(
        node.keys("p/", 3, None),
        (vec!["p/k0".into(), "p/k1".into(), "p/k2".into()], true)
    );
    assert_eq!(
        node.keys("p/", 3, Some("p/k2")),
        (vec!["p/k3".into(), "p/k4".into(), "p/k5".into()], true)
    );
    assert_eq!(
        node.keys("p/", 3, Some("p/k5")),
        (vec!["p/k6".into()], false)
    );
    // An exact page reports no more when nothing follows under the prefix.
    assert_eq!(
        node.keys("p/", 1, Some("p/k5")),
        (vec!["p/k6".into()], false)
    );
    // A start before the prefix starts at the prefix; a key that no longer
    // exists still works as a cursor.
    assert_eq!(node.keys("p/", 1, Some("a")), (vec!["p/k0".into()], true));
    assert_eq!(
        node.keys("p/", 2, Some("p/k10")),
        (vec!["p/k2".into(), "p/k3".into()], true)
    );
    assert_eq!(node.keys("p/", 0, None), (vec![], true));
}

/// A change as (revision, key, put's (value, create_revision, version)).
type ChangeSummary = (u64, String, Option<(Bytes, u64, u64)>);

#[test]
fn changes_since_are_in_revision_order_and_filtered_by_prefix() {
    let mut node = Node::new();
    node.apply(vec![
        put("app/a", "1"),
        put("other", "x"),
        put("app/a", "2"),
        put_if("app/a", "no", Precondition::Absent),
        delete("app/a"),
        put("app/b", "3"),
    ]);
    let page = node
        .store
        .changes_since(&p("app/"), Revision(1), 100)
        .unwrap();
    let summary: Vec<ChangeSummary> = page
        .changes
        .iter()
        .map(|c| {
            let put = match &c.kind {
                ChangeKind::Put {
                    value,
                    create_revision,
                    version,
                } => Some((value.clone(), create_revision.get(), *version)),
                ChangeKind::Delete => None,
            };
            (c.revision.get(), c.key.to_string(), put)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "app/a".into(), Some((value("1"), 1, 1))),
            (3, "app/a".into(), Some((value("2"), 1, 2))),
            (4, "app/a".into(), None),
            (5, "app/b".into(), Some((value("3"), 5, 1))),
        ]
    );
    assert_eq!(page.next_revision, Revision(6));

    let from_four = node.store.changes_since(&p(""), Revision(4), 100).unwrap();
    let revisions: Vec<u64> = from_four.changes.iter().map(|c| c.revision.get()).collect();
    assert_eq!(revisions, vec![4, 5]);
}

#[test]
fn changes_since_stops_at_the_limit_and_says_where_to_continue() {
    let mut node = Node::new();
    node.apply((0..5).map(|i| put(&format!("k{i}"), "v")).collect());
    let first = node.store.changes_since(&p(""), Revision(0), 2).unwrap();
    assert_eq!(first.changes.len(), 2);
    assert_eq!(first.next_revision, Revision(3));
    let rest = node
        .store
        .changes_since(&p(""), first.next_revision, 10)
        .unwrap();
    assert_eq!(rest.changes.len(), 3);
    assert_eq!(rest.next_revision, Revision(6));
    // A filter that matches nothing still moves the cursor past what it scanned.
    let none = node.store.changes_since(&p("zz"), Revision(1), 10).unwrap();
    assert!(none.changes.is_empty());
    assert_eq!(none.next_revision, Revision(6));
    // Asking for the future returns nothing and keeps the cursor.
    let future = node.store.changes_since(&p(""), Revision(9), 10).unwrap();
    assert_eq!(
        (future.changes.len(), future.next_revision),
        (0, Revision(9))
    );
}

#[test]
fn changes_behind_the_compaction_point_answer_compacted() {
    let mut node = Node::new();
    node.apply((0..6).map(|i| put(&format!("k{i}"), "v")).collect());
    assert_eq!(
        node.store.compact_changes(Revision(3)).unwrap(),
        Revision(3)
    );
    assert!(matches!(
        node.store.changes_since(&p(""), Revision(3), 10),
        Err(ChangesError::Compacted {
            compacted_to: Revision(3)
        })
    ));
    assert!(matches!(
        node.store.changes_since(&p(""), Revision(0), 10),
        Err(ChangesError::Compacted { .. })
    ));
    let rest = node.store.changes_since(&p(""), Revision(4), 10).unwrap();
    let revisions: Vec<u64> = rest.changes.iter().map(|c| c.revision.get()).collect();
    assert_eq!(revisions, vec![4, 5, 6]);
    // The compaction point never moves back, never passes the revision, and
    // survives a restart; the keys themselves are untouched.
    assert_eq!(
        node.store.compact_changes(Revision(2)).unwrap(),
        Revision(3)
    );
    assert_eq!(
        node.store.compact_changes(Revision(99)).unwrap(),
        Revision(6)
    );
    let node = node.reopen();
    assert_eq!(node.store.compacted_revision(), Revision(6));
    assert!(matches!(
        node.store.changes_since(&p(""), Revision(6), 10),
        Err(ChangesError::Compacted { .. })
    ));
    assert!(
        node.store
            .changes_since(&p(""), Revision(7), 10)
            .unwrap()
            .changes
            .is_empty()
    );
    assert_eq!(node.keys("", 10, None).0.len(), 6);
}

#[test]
fn state_revision_and_applied_index_survive_reopening() {
    let mut node = Node::new();
    node.apply(vec![put("a", "1"), put("b", "2"), delete("a")]);
    node.apply_payloads(vec![EntryPayload::Noop]);
    let digest = node.store.digest().unwrap();
    let mut node = node.reopen();
    assert_eq!(node.store.applied_index(), LogIndex(4));
    assert_eq!(node.store.revision(), Revision(3));
    assert_eq!(node.get("a"), None);
    assert_eq!(node.get("b"), Some((value("2"), 2, 2, 1)));
    assert_eq!(node.store.digest().unwrap(), digest);
    assert_eq!(node.run(put("c", "3")), written(4));
    assert_eq!(
        node.store
            .changes_since(&p(""), Revision(1), 10)
            .unwrap()
            .changes
            .len(),
        4
    );
}

#[test]
fn a_batch_is_on_disk_together_with_its_applied_index() {
    let mut node = Node::new();
    let applied = node.apply_payloads(vec![
        EntryPayload::Noop,
        EntryPayload::Command(bytes_of(&put("a", "1"))),
        EntryPayload::Noop,
        EntryPayload::Command(bytes_of(&put("b", "2"))),
    ]);
    // Only commands have outcomes, each tagged with its log index and term.
    assert_eq!(
        applied,
        vec![
            Applied {
                index: LogIndex(2),
                term: Term(1),
                outcome: written(1)
            },
            Applied {
                index: LogIndex(4),
                term: Term(1),
                outcome: written(2)
            },
        ]
    );
    let node = node.reopen();
    assert_eq!(node.store.applied_index(), LogIndex(4));
    assert_eq!(node.store.revision(), Revision(2));
    assert!(node.get("a").is_some() && node.get("b").is_some());
}

#[test]
fn entries_at_or_below_the_applied_index_are_skipped() {
    let mut node = Node::new();
    let entries: Vec<Entry> = (1..=3)
        .map(|i| Entry {
            term: Term(1),
            index: LogIndex(i),
            payload: EntryPayload::Command(bytes_of(&put("a", &i.to_string()))),
        })
        .collect();
    node.store.apply(&entries[..2]).unwrap();
    let applied = node.store.apply(&entries).unwrap();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].index, LogIndex(3));
    assert_eq!(node.get("a"), Some((value("3"), 1, 3, 3)));
    assert!(node.store.apply(&entries).unwrap().is_empty());
    assert_eq!(node.store.revision(), Revision(3));
}

#[test]
#[should_panic(expected = "without gaps")]
fn a_gap_in_the_committed_entries_panics() {
    let mut node = Node::new();
    let entry = Entry {
        term: Term(1),
        index: LogIndex(2),
        payload: EntryPayload::Noop,
    };
    let _ = node.store.apply(&[entry]);
}

#[test]
fn an_undecodable_command_is_invalid_and_only_advances_the_applied_index() {
    let mut node = Node::new();
    node.run(put("a", "1"));
    let digest = node.store.digest().unwrap();
    let applied = node.apply_payloads(vec![
        EntryPayload::Command(Bytes::from_static(b"\x01\x07garbage")),
        EntryPayload::Command(Bytes::new()),
    ]);
    assert!(matches!(
        applied[0].outcome,
        Outcome::Invalid(codec::DecodeError::UnknownTag { .. })
    ));
    assert!(matches!(
        applied[1].outcome,
        Outcome::Invalid(codec::DecodeError::Truncated { .. })
    ));
    assert_eq!(node.store.applied_index(), LogIndex(3));
    assert_eq!(node.store.revision(), Revision(1));
    assert_eq!(node.store.digest().unwrap(), digest);
    let node = node.reopen();
    assert_eq!(node.store.applied_index(), LogIndex(3));
}

#[test]
fn a_snapshot_restored_into_a_fresh_store_gives_equal_reads_and_digest() {
    let mut source = Node::new();
    source.apply(vec![
        put("app/a", "1"),
        put("app/b", "2"),
        put("app/a", "3"),
        delete("app/b"),
        put("z", "\u{0}binary"),
    ]);
    let snapshot = source.snapshot();
    let mut target = Node::new();
    target.restore(&snapshot, LogIndex(5)).unwrap();

    assert_eq!(
        target.store.digest().unwrap(),
        source.store.digest().unwrap()
    );
    assert_eq!(target.store.applied_index(), LogIndex(5));
    assert_eq!(target.store.revision(), Revision(5));
    assert_eq!(target.get("app/a"), source.get("app/a"));
    assert_eq!(target.get("app/a"), Some((value("3"), 1, 3, 2)));
    assert_eq!(target.get("app/b"), None);
    assert_eq!(target.keys("", 10, None), source.keys("", 10, None));
    // The change log starts after the snapshot.
    assert!(matches!(
        target.store.changes_since(&p(""), Revision(5), 10),
        Err(ChangesError::Compacted {
            compacted_to: Revision(5)
        })
    ));
    // Both continue identically, and the restore is durable.
    assert_eq!(source.run(put("n", "1")), written(6));
    assert_eq!(target.run(put("n", "1")), written(6));
    let target = target.reopen();
    assert_eq!(
        target.store.digest().unwrap(),
        source.store.digest().unwrap()
    );
    let changes = target.store.changes_since(&p(""), Revision(6), 10).unwrap();
    assert_eq!(changes.changes.len(), 1);
}

#[test]
fn restoring_replaces_whatever_the_store_held() {
    let mut source = Node::new();
    source.apply(vec![put("keep", "1")]);
    let snapshot = source.snapshot();
    let mut target = Node::new();
    target.apply(vec![
        put("stale/a", "x"),
        put("stale/b", "y"),
        put("keep", "old"),
    ]);
    target.restore(&snapshot, LogIndex(1)).unwrap();
    assert_eq!(target.keys("", 10, None), (vec!["keep".into()], false));
    assert_eq!(target.get("keep"), Some((value("1"), 1, 1, 1)));
    assert_eq!(target.store.revision(), Revision(1));
    assert_eq!(
        target.store.digest().unwrap(),
        source.store.digest().unwrap()
    );
}

#[test]
fn a_damaged_snapshot_is_refused_and_the_store_is_unchanged() {
    let mut source = Node::new();
    source.apply(vec![put("a", "1"), put("b", "2")]);
    let snapshot = source.snapshot();
    let mut target = Node::new();
    target.run(put("mine", "x"));
    let before = target.store.digest().unwrap();

    let mut flipped = snapshot.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(matches!(
        target.restore(&flipped, LogIndex(9)),
        Err(RestoreError::Checksum)
    ));
    assert!(matches!(
        target.restore(&snapshot[..snapshot.len() - 1], LogIndex(9)),
        Err(RestoreError::Truncated)
    ));
    assert!(matches!(
        target.restore(&snapshot[..20], LogIndex(9)),
        Err(RestoreError::Truncated)
    ));
    assert!(matches!(
        target.restore(b"short", LogIndex(9)),
        Err(RestoreError::Invalid(
            codec::DecodeError::UnknownVersion { .. }
        ))
    ));
    assert_eq!(target.store.digest().unwrap(), before);
    assert_eq!(target.store.applied_index(), LogIndex(1));
}

#[test]
fn the_digest_is_the_snapshot_trailer_and_tells_different_states_apart() {
    let mut one = Node::new();
    let mut two = Node::new();
    let empty = one.store.digest().unwrap();
    assert_eq!(empty, two.store.digest().unwrap());
    one.run(put("a", "1"));
    two.run(put("a", "2"));
    assert_ne!(one.store.digest().unwrap(), two.store.digest().unwrap());
    assert_ne!(one.store.digest().unwrap(), empty);

    // Same values, different history: the metadata differs, so does the digest.
    let mut three = Node::new();
    three.apply(vec![put("a", "0"), put("a", "1")]);
    assert_eq!(three.get("a").unwrap().0, one.get("a").unwrap().0);
    assert_ne!(three.store.digest().unwrap(), one.store.digest().unwrap());

    let snapshot = one.snapshot();
    let trailer: [u8; 32] = snapshot[snapshot.len() - 32..].try_into().unwrap();
    assert_eq!(one.store.digest().unwrap(), Digest(trailer));
    assert_eq!(one.store.digest().unwrap().to_string().len(), 64);
}

/// One step of a random workload over a handful of keys.
fn any_command() -> impl Strategy<Value = Command> {
    let key = prop::sample::select(vec!["a", "b", "c/d", "c/e"]);
    let precondition = prop_oneof![
        3 => Just(Precondition::None),
        1 => Just(Precondition::Absent),
        1 => (0u64..8).prop_map(|r| Precondition::ModRevision(Revision(r))),
    ];
    prop_oneof![
        3 => (key.clone(), "[a-z]{0,3}", precondition.clone())
            .prop_map(|(key, value, pre)| put_if(key, &value, pre)),
        1 => (key, precondition).prop_map(|(key, pre)| delete_if(key, pre)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Batching is invisible: applying commands one per write or in
    /// arbitrary batches gives the same outcomes, state and digest.
    #[test]
    fn batching_does_not_change_outcomes_or_state(
        commands in prop::collection::vec(any_command(), 1..16),
        cuts in prop::collection::vec(any::<bool>(), 16),
    ) {
        let mut one_by_one = Node::new();
        let singles: Vec<Outcome> = commands.iter().map(|c| one_by_one.run(c.clone())).collect();

        let mut batched = Node::new();
        let mut outcomes = Vec::new();
        let mut pending = Vec::new();
        for (i, command) in commands.iter().enumerate() {
            pending.push(command.clone());
            if cuts[i] {
                outcomes.extend(batched.apply(std::mem::take(&mut pending)));
            }
        }
        outcomes.extend(batched.apply(pending));

        prop_assert_eq!(&outcomes, &singles);
        prop_assert_eq!(batched.store.digest().unwrap(), one_by_one.store.digest().unwrap());
        prop_assert_eq!(batched.store.applied_index(), one_by_one.store.applied_index());
        let written = singles.iter().filter(|o| matches!(o, Outcome::Written { .. })).count();
        prop_assert_eq!(batched.store.revision(), Revision(written as u64));
        let log = batched.store.changes_since(&p(""), Revision(1), 100).unwrap();
        prop_assert_eq!(log.changes.len(), written);
    }
}

#[test]
fn the_member_directory_follows_config_entries_and_survives_snapshot_and_reopen() {
    let address = |name: &str| MemberAddress {
        name: name.into(),
        peer_url: format!("http://{name}:7380"),
        client_url: format!("http://{name}:7379"),
    };
    let change = |change, context: Bytes| {
        EntryPayload::Config(ConfigChange {
            change,
            config: Membership::with_voters([NodeId(1)]),
            context,
        })
    };
    let mut node = Node::new();
    let applied = node.apply_payloads(vec![
        EntryPayload::Command(bytes_of(&Command::SetMember {
            node_id: NodeId(1),
            address: address("a"),
        })),
        change(
            MembershipChange::AddLearner(NodeId(2)),
            bytes_of(&address("b")),
        ),
        change(MembershipChange::AddLearner(NodeId(3)), Bytes::new()),
        change(
            MembershipChange::AddLearner(NodeId(4)),
            bytes_of(&address("d")),
        ),
        change(MembershipChange::Remove(NodeId(4)), Bytes::new()),
    ]);
    assert_eq!(applied[0].outcome, Outcome::MemberRecorded);
    assert_eq!(applied[1].outcome, Outcome::MembershipChanged);
    let expected: Vec<(NodeId, MemberAddress)> =
        vec![(NodeId(1), address("a")), (NodeId(2), address("b"))];
    let listed = |store: &KvStore| {
        store
            .members()
            .iter()
            .map(|(id, a)| (*id, a.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(&node.store), expected);
    // Keys are untouched and no revision was used.
    assert_eq!(node.store.revision(), Revision(0));

    let snapshot = node.snapshot();
    let node = node.reopen();
    assert_eq!(listed(&node.store), expected);

    let mut other = Node::new();
    other
        .restore(&snapshot, node.store.applied_index())
        .unwrap();
    assert_eq!(listed(&other.store), expected);
    assert_eq!(other.store.digest().unwrap(), node.store.digest().unwrap());
}

/// A value's bytes as a log entry or a configuration change carries them.
fn bytes_of(value: &impl codec::Encode) -> Bytes {
    codec::encode(value).into()
}
