//! Replicas on real RocksDB directories, connected by an in-memory network:
//! the Raft core, the log store and the key-value state working together.

use std::collections::BTreeMap;

use bytes::Bytes;
use raftcfg_node::kv::{Command, Key, Limits, Outcome, Precondition, SnapshotRef};
use raftcfg_node::replica::Replica;
use raftcfg_node::storage::{Db, ExpectedIdentity, RocksLogStore};
use raftcfg_raft::{
    ClusterId, Config, LogIndex, LogStorage as _, MembershipChange, MessageBody, NodeId,
    ReadContext, ReadState, Role, Snapshot,
};
use tempfile::TempDir;

const CLUSTER: ClusterId = ClusterId(42);

struct Cluster {
    dirs: BTreeMap<u64, TempDir>,
    replicas: BTreeMap<u64, Replica>,
    applied: BTreeMap<u64, Vec<(LogIndex, Outcome)>>,
    /// ReadIndex confirmations each node received.
    reads: BTreeMap<u64, Vec<ReadState>>,
}

fn config() -> Config {
    let mut config = Config::new(NodeId(1));
    config.election_timeout_ticks = 10;
    config
}

impl Cluster {
    /// Three founding voters, each in its own data directory.
    fn founded() -> Self {
        let mut cluster = Self {
            dirs: BTreeMap::new(),
            replicas: BTreeMap::new(),
            applied: BTreeMap::new(),
            reads: BTreeMap::new(),
        };
        for n in 1..=3 {
            let dir = tempfile::tempdir().unwrap();
            let mut replica =
                Replica::open(dir.path(), &format!("n{n}"), NodeId(n), config()).unwrap();
            replica
                .bootstrap([NodeId(1), NodeId(2), NodeId(3)], CLUSTER)
                .unwrap();
            cluster.dirs.insert(n, dir);
            cluster.replicas.insert(n, replica);
        }
        cluster
    }

    /// Processes and delivers until no message is left. A replica whose
    /// snapshot is due takes it here (the driver does it on another
    /// thread), and a snapshot sent is delivered as the transport does:
    /// its file copied into the receiver's snapshot folder first.
    fn settle(&mut self) {
        loop {
            let mut messages = Vec::new();
            for (n, replica) in self.replicas.iter_mut() {
                replica.process().unwrap();
                if replica.snapshot_due() {
                    replica.snapshot_now().unwrap();
                    replica.process().unwrap();
                }
                let effects = replica.take_effects();
                messages.extend(effects.outbox);
                let applied = self.applied.entry(*n).or_default();
                applied.extend(effects.applied.into_iter().map(|a| (a.index, a.outcome)));
                self.reads.entry(*n).or_default().extend(effects.reads);
            }
            if messages.is_empty() {
                return;
            }
            for message in messages {
                if let MessageBody::InstallSnapshot { snapshot } = &message.body {
                    self.copy_snapshot_file(message.from, message.to, snapshot);
                    let (from, to) = (message.from.get(), message.to);
                    self.replica(from).report_snapshot(to, true);
                }
                if let Some(replica) = self.replicas.get_mut(&message.to.get()) {
                    replica.step(message);
                }
            }
        }
    }

    /// Copies the file of `snapshot` from `from`'s folder into `to`'s.
    fn copy_snapshot_file(&self, from: NodeId, to: NodeId, snapshot: &Snapshot) {
        let reference = SnapshotRef::decode(&snapshot.data).unwrap();
        let source = self.replicas[&from.get()]
            .snapshot_dir()
            .path_of(&reference);
        let Some(target) = self.replicas.get(&to.get()) else {
            return;
        };
        let mut partial = target.snapshot_dir().create_partial().unwrap();
        std::io::copy(&mut std::fs::File::open(source).unwrap(), &mut partial.file).unwrap();
        target.snapshot_dir().commit(partial, &reference).unwrap();
    }

    fn elect(&mut self, n: u64) {
        for _ in 0..100 {
            self.replicas.get_mut(&n).unwrap().tick();
            self.settle();
            if self.replicas[&n].status().role == Role::Leader {
                return;
            }
        }
        panic!("node {n} was not elected");
    }

    fn replica(&mut self, n: u64) -> &mut Replica {
        self.replicas.get_mut(&n).unwrap()
    }

    fn value(&self, n: u64, key: &str) -> Option<Bytes> {
        let key = Key::parse(key, &Limits::default()).unwrap();
        self.replicas[&n].kv().get(&key).unwrap().map(|r| r.value)
    }
}

fn put(key: &str, value: &str, precondition: Precondition) -> Command {
    Command::Put {
        key: Key::parse(key, &Limits::default()).unwrap(),
        value: Bytes::from(value.to_owned()),
        precondition,
    }
}

#[test]
fn a_write_through_the_leader_is_applied_on_every_replica() {
    let mut cluster = Cluster::founded();
    cluster.elect(1);
    let index = cluster
        .replica(1)
        .propose(&put("app/url", "v1", Precondition::None))
        .unwrap();
    cluster.settle();
    assert!(matches!(
        cluster.applied[&1].iter().find(|(i, _)| *i == index),
        Some((_, Outcome::Written { .. }))
    ));
    for n in 1..=3 {
        assert_eq!(
            cluster.value(n, "app/url"),
            Some(Bytes::from("v1")),
            "node {n}"
        );
    }
    let digests: Vec<_> = (1..=3)
        .map(|n| cluster.replicas[&n].kv().digest().unwrap())
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn a_failed_compare_and_swap_is_reported_to_the_proposer() {
    let mut cluster = Cluster::founded();
    cluster.elect(1);
    cluster
        .replica(1)
        .propose(&put("k", "a", Precondition::None))
        .unwrap();
    cluster.settle();
    let index = cluster
        .replica(1)
        .propose(&put("k", "b", Precondition::Absent))
        .unwrap();
    cluster.settle();
    assert!(matches!(
        cluster.applied[&1].iter().find(|(i, _)| *i == index),
        Some((_, Outcome::PreconditionFailed { .. }))
    ));
    assert_eq!(cluster.value(3, "k"), Some(Bytes::from("a")));
}

#[test]
fn a_restarted_replica_keeps_its_state_and_catches_up() {
    let mut cluster = Cluster::founded();
    cluster.elect(1);
    cluster
        .replica(1)
        .propose(&put("a", "1", Precondition::None))
        .unwrap();
    cluster.settle();
    // Node 3 stops; a write happens without it.
    let stopped = cluster.replicas.remove(&3).unwrap();
    let node_id = stopped.identity().node_id;
    drop(stopped);
    cluster
        .replica(1)
        .propose(&put("b", "2", Precondition::None))
        .unwrap();
    cluster.settle();
    // It restarts from its directory under the same name.
    let dir = cluster.dirs[&3].path().to_owned();
    let reopened = Replica::open(&dir, "n3", NodeId(999), config()).unwrap();
    assert_eq!(
        reopened.identity().node_id,
        node_id,
        "the stored id, not the fresh one"
    );
    assert_eq!(reopened.identity().cluster_id, Some(CLUSTER));
    cluster.replicas.insert(3, reopened);
    assert_eq!(cluster.value(3, "a"), Some(Bytes::from("1")));
    for _ in 0..3 {
        cluster.replica(1).tick();
        cluster.settle();
    }
    assert_eq!(cluster.value(3, "b"), Some(Bytes::from("2")));
}

#[test]
fn a_leader_restarted_after_applying_starts_from_its_applied_index() {
    let mut cluster = Cluster::founded();
    cluster.elect(1);
    let index = cluster
        .replica(1)
        .propose(&put("a", "1", Precondition::None))
        .unwrap();
    cluster.settle();
    assert_eq!(cluster.replicas[&1].kv().applied_index(), index);
    drop(cluster.replicas.remove(&1));
    let dir = cluster.dirs[&1].path().to_owned();
    // The commit index that only rose was not written: the state is ahead.
    let stored = RocksLogStore::open(
        Db::open(&dir).unwrap(),
        &ExpectedIdentity::new("n1", NodeId(1)),
    )
    .unwrap()
    .hard_state()
    .unwrap();
    assert!(stored.commit < index, "stored commit {}", stored.commit);

    let reopened = Replica::open(&dir, "n1", NodeId(1), config()).unwrap();
    assert_eq!(reopened.status().commit, index);
    assert_eq!(reopened.kv().applied_index(), index);
    cluster.replicas.insert(1, reopened);
    assert_eq!(cluster.value(1, "a"), Some(Bytes::from("1")));
    cluster.elect(2);
    cluster
        .replica(2)
        .propose(&put("b", "2", Precondition::None))
        .unwrap();
    cluster.settle();
    assert_eq!(cluster.value(1, "b"), Some(Bytes::from("2")));
}

#[test]
fn a_follower_read_is_served_once_applied_to_its_index() {
    let mut cluster = Cluster::founded();
    cluster.elect(1);
    cluster
        .replica(1)
        .propose(&put("a", "1", Precondition::None))
        .unwrap();
    cluster.settle();
    cluster.replica(2).read_index(ReadContext(5)).unwrap();
    cluster.settle();
    let served = cluster.reads[&2]
        .iter()
        .find(|r| r.context == ReadContext(5))
        .copied();
    let read = served.expect("the read was confirmed by the leader");
    assert!(cluster.replicas[&2].kv().applied_index() >= read.index);
    assert_eq!(cluster.value(2, "a"), Some(Bytes::from("1")));
}

/// Stops every replica and keeps node `n`'s data directory.
fn stopped_directory_of(n: u64) -> TempDir {
    let mut cluster = Cluster::founded();
    cluster.elect(1);
    cluster.dirs.remove(&n).unwrap()
}

#[test]
fn a_data_directory_is_not_opened_under_another_name() {
    let dir = stopped_directory_of(1);
    let error = Replica::open(dir.path(), "someone-else", NodeId(5), config())
        .err()
        .expect("refused");
    assert!(error.to_string().contains("belongs to another"), "{error}");
}

#[test]
fn bootstrapping_twice_is_refused() {
    let dir = stopped_directory_of(1);
    let mut replica = Replica::open(dir.path(), "n1", NodeId(1), config()).unwrap();
    let before = replica.status();
    assert!(replica.bootstrap([NodeId(1)], ClusterId(7)).is_err());
    // The refusal left the replica as it was.
    assert_eq!(replica.status().cluster_id, before.cluster_id);
    assert_eq!(replica.status().last_index, before.last_index);
}

#[test]
fn a_new_learner_behind_the_compaction_point_catches_up_by_snapshot() {
    let mut cluster = Cluster::founded();
    for n in 1..=3 {
        let replica = cluster.replicas.remove(&n).unwrap();
        cluster
            .replicas
            .insert(n, replica.with_snapshot_threshold(5));
    }
    cluster.elect(1);
    for i in 0..12 {
        let command = put(&format!("k{i}"), &format!("v{i}"), Precondition::None);
        cluster.replica(1).propose(&command).unwrap();
        cluster.settle();
    }
    assert!(cluster.replicas[&1].status().snapshot_index > LogIndex(5));
    // An empty node joins as a learner: its first entry was compacted away.
    let dir = tempfile::tempdir().unwrap();
    let joiner = Replica::open(dir.path(), "n4", NodeId(4), config()).unwrap();
    assert_eq!(joiner.identity().cluster_id, None);
    cluster.dirs.insert(4, dir);
    cluster.replicas.insert(4, joiner);
    cluster
        .replica(1)
        .propose_membership(MembershipChange::AddLearner(NodeId(4)), Bytes::new())
        .unwrap();
    for _ in 0..10 {
        cluster.replica(1).tick();
        cluster.settle();
    }
    assert_eq!(cluster.replicas[&4].identity().cluster_id, Some(CLUSTER));
    assert!(
        cluster.replicas[&4].status().snapshot_index > LogIndex(0),
        "caught up by snapshot, not by the log"
    );
    assert_eq!(cluster.value(4, "k11"), Some(Bytes::from("v11")));
    assert_eq!(
        cluster.replicas[&4].kv().digest().unwrap(),
        cluster.replicas[&1].kv().digest().unwrap()
    );
}

#[test]
fn large_entries_call_for_a_snapshot_by_bytes_and_keep_a_tail_of_bounded_bytes() {
    const VALUE: usize = 10 << 10;
    let mut cluster = Cluster::founded();
    for n in 1..=3 {
        let replica = cluster.replicas.remove(&n).unwrap();
        // Never by entries; by bytes after about five values (staggered by
        // up to half of it); a tail of 100 entries but at most three values.
        let replica = replica
            .with_snapshot_threshold(1_000_000)
            .with_snapshot_threshold_bytes(5 * VALUE as u64)
            .with_compaction_tail(100)
            .with_compaction_tail_bytes(3 * VALUE as u64 + 512);
        cluster.replicas.insert(n, replica);
    }
    cluster.elect(1);
    let value = "v".repeat(VALUE);
    for i in 0..20 {
        let command = put(&format!("k{i}"), &value, Precondition::None);
        cluster.replica(1).propose(&command).unwrap();
        cluster.settle();
    }
    for n in 1..=3 {
        let status = cluster.replicas[&n].status();
        assert!(
            status.snapshot_index > LogIndex(0),
            "replica {n} took no snapshot: {status:?}"
        );
        let first = cluster.replicas[&n].raft().storage().first_index().unwrap();
        let kept = status.snapshot_index.get() + 1 - first.get();
        assert!(
            kept <= 3,
            "replica {n} kept {kept} entries of {VALUE} bytes behind its snapshot"
        );
    }
    assert_eq!(cluster.value(2, "k19"), Some(Bytes::from(value)));
}

/// With a compaction tail that keeps every entry, the log still starts at
/// index 1 after a snapshot; the next snapshot is due only a threshold
/// after the stored one (not after the log's start), and the older
/// snapshot's file goes.
#[test]
fn a_compaction_tail_does_not_make_the_next_snapshot_due_at_once() {
    let mut cluster = Cluster::founded();
    for n in 1..=3 {
        let replica = cluster.replicas.remove(&n).unwrap();
        let replica = replica
            .with_snapshot_threshold(10)
            .with_compaction_tail(1_000);
        cluster.replicas.insert(n, replica);
    }
    cluster.elect(1);
    for i in 0..40 {
        let command = put(&format!("k{i}"), "v", Precondition::None);
        cluster.replica(1).propose(&command).unwrap();
        cluster.settle();
    }
    for n in 1..=3 {
        let replica = &cluster.replicas[&n];
        let first = replica.raft().storage().first_index().unwrap();
        assert_eq!(
            first,
            LogIndex(1),
            "replica {n}: the tail keeps every entry"
        );
        let stored = replica.raft().snapshot_index();
        assert!(stored > LogIndex(10), "replica {n} stored no snapshot");
        assert!(
            !replica.snapshot_due(),
            "replica {n}: a snapshot is due again right after the one at {stored}"
        );
        let files: Vec<_> = std::fs::read_dir(cluster.dirs[&n].path().join("snapshots"))
            .unwrap()
            .filter_map(|entry| {
                let name = entry.unwrap().file_name().into_string().unwrap();
                name.ends_with(".snap").then_some(name)
            })
            .collect();
        assert_eq!(
            files.len(),
            1,
            "replica {n} keeps old snapshot files: {files:?}"
        );
    }
}
