use bytes::Bytes;

use crate::testing::{Cluster, config, id};
use crate::{CompactError, LogStorage, MessageBody};

/// Three voters with 8-byte snapshot chunks, led by node 1.
fn cluster_with_small_chunks() -> Cluster {
    let configs = (1..=3)
        .map(|n| {
            let mut c = config(n);
            c.snapshot_chunk_bytes = 8;
            c
        })
        .collect();
    let mut cluster = Cluster::with_configs(configs);
    cluster.elect(1);
    cluster.deliver_all();
    cluster
}

#[test]
fn the_log_is_compacted_behind_the_applications_snapshot() {
    let mut cluster = cluster_with_small_chunks();
    for n in 0..10 {
        cluster.propose(1, &format!("v{n}"));
    }
    cluster.deliver_all();
    let applied = cluster.node(1).status().applied;
    cluster
        .node(1)
        .compact(applied, Bytes::from_static(b"state"))
        .unwrap();
    cluster.deliver_all();
    let storage = cluster.node(1).storage().clone();
    assert_eq!(storage.first_index().unwrap(), applied.next());
    assert_eq!(
        storage.snapshot().unwrap().data,
        Bytes::from_static(b"state")
    );
    assert_eq!(cluster.node(1).status().snapshot_index, applied);
}

#[test]
fn compacting_what_is_not_applied_or_already_compacted_is_refused() {
    let mut cluster = cluster_with_small_chunks();
    let applied = cluster.node(1).status().applied;
    assert_eq!(
        cluster.node(1).compact(applied.next(), Bytes::new()),
        Err(CompactError::NotApplied {
            index: applied.next(),
            applied
        })
    );
    cluster.node(1).compact(applied, Bytes::new()).unwrap();
    assert_eq!(
        cluster.node(1).compact(applied, Bytes::new()),
        Err(CompactError::AlreadyCompacted {
            index: applied,
            snapshot: applied
        })
    );
}

#[test]
fn a_follower_behind_the_compaction_point_is_restored_by_snapshot_in_chunks() {
    let mut cluster = cluster_with_small_chunks();
    cluster.isolate(3);
    for n in 0..10 {
        cluster.propose(1, &format!("v{n}"));
    }
    cluster.deliver_all();
    let applied = cluster.node(1).status().applied;
    let state = Bytes::from_static(b"the application state, 40 bytes long....");
    cluster.node(1).compact(applied, state.clone()).unwrap();
    cluster.propose(1, "after");
    cluster.deliver_all();
    cluster.heal();
    cluster.delivered.clear();
    for _ in 0..50 {
        cluster.tick(1);
        cluster.deliver_all();
    }
    let chunks = cluster
        .delivered
        .iter()
        .filter(|m| matches!(m.body, MessageBody::InstallSnapshot { .. }))
        .count();
    assert_eq!(chunks, 5, "40 bytes in 8-byte chunks");
    assert_eq!(cluster.app(3).snapshots.len(), 1);
    assert_eq!(cluster.app(3).snapshots[0].data, state);
    assert_eq!(cluster.applied_commands(3), ["after"]);
    let storage = cluster.node(3).storage().clone();
    assert_eq!(storage.snapshot().unwrap().metadata.index, applied);
    assert_eq!(
        cluster.node(3).status().last_index,
        cluster.node(1).status().last_index
    );
}

#[test]
fn a_lost_snapshot_chunk_is_sent_again() {
    let mut cluster = cluster_with_small_chunks();
    cluster.isolate(3);
    for n in 0..3 {
        cluster.propose(1, &format!("v{n}"));
    }
    cluster.deliver_all();
    let applied = cluster.node(1).status().applied;
    cluster
        .node(1)
        .compact(applied, Bytes::from_static(b"0123456789abcdef"))
        .unwrap();
    cluster.deliver_all();
    cluster.heal();
    // Every first chunk is lost until the leader has sent it twice.
    cluster.filter = Some(|m| match m.body {
        MessageBody::InstallSnapshot { offset: 0, .. } => None,
        _ => Some(m),
    });
    for _ in 0..3 {
        cluster.tick(1);
        cluster.deliver_all();
    }
    assert!(cluster.app(3).snapshots.is_empty());
    cluster.filter = None;
    cluster.delivered.clear();
    for _ in 0..30 {
        cluster.tick(1);
        cluster.deliver_all();
    }
    assert!(
        cluster
            .delivered
            .iter()
            .any(|m| matches!(m.body, MessageBody::InstallSnapshot { offset: 0, .. }))
    );
    assert_eq!(cluster.app(3).snapshots.len(), 1);
    assert_eq!(
        cluster.node(3).status().commit,
        cluster.node(1).status().commit
    );
    assert_eq!(cluster.node(3).status().snapshot_index, applied);
    assert!(cluster.node(1).status().progress[&id(3)].matched >= applied);
}
