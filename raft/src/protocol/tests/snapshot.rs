use bytes::Bytes;

use crate::testing::{Cluster, config, id};
use crate::{CompactError, LogStorage, MessageBody, PlantedBug};

/// Three voters with a 5-tick snapshot timeout, led by node 1.
fn cluster() -> Cluster {
    let configs = (1..=3)
        .map(|n| {
            let mut c = config(n);
            c.snapshot_timeout_ticks = 5;
            c
        })
        .collect();
    let mut cluster = Cluster::with_configs(configs);
    cluster.elect(1);
    cluster.deliver_all();
    cluster
}

/// Node 3 is cut off while node 1 commits and compacts behind `state`;
/// then the links heal. Returns the snapshot's index.
fn leave_node_3_behind_a_snapshot(cluster: &mut Cluster, state: &'static [u8]) -> crate::LogIndex {
    cluster.isolate(3);
    for n in 0..5 {
        cluster.propose(1, &format!("v{n}"));
    }
    cluster.deliver_all();
    let applied = cluster.node(1).status().applied;
    cluster
        .node(1)
        .compact(applied, Bytes::from_static(state))
        .unwrap();
    cluster.propose(1, "after");
    cluster.deliver_all();
    cluster.heal();
    cluster.delivered.clear();
    applied
}

fn snapshots_delivered(cluster: &Cluster) -> usize {
    cluster
        .delivered
        .iter()
        .filter(|m| matches!(m.body, MessageBody::InstallSnapshot { .. }))
        .count()
}

#[test]
fn the_log_is_compacted_behind_the_applications_snapshot() {
    let mut cluster = cluster();
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
    let mut cluster = cluster();
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
fn a_follower_behind_the_compaction_point_is_sent_the_snapshot_once_and_restored() {
    let mut cluster = cluster();
    let state = b"the application state";
    let index = leave_node_3_behind_a_snapshot(&mut cluster, state);
    for _ in 0..20 {
        cluster.tick(1);
        cluster.deliver_all();
    }
    assert_eq!(snapshots_delivered(&cluster), 1, "sent whole, once");
    assert_eq!(cluster.app(3).snapshots.len(), 1);
    assert_eq!(cluster.app(3).snapshots[0].data, Bytes::from_static(state));
    assert_eq!(cluster.applied_commands(3), ["after"]);
    let storage = cluster.node(3).storage().clone();
    assert_eq!(storage.snapshot().unwrap().metadata.index, index);
    assert_eq!(
        cluster.node(3).status().last_index,
        cluster.node(1).status().last_index
    );
    assert!(!cluster.node(1).status().progress[&id(3)].snapshotting);
}

/// Ticks the leader once and delivers everything but snapshots, which
/// are lost; returns how many snapshots the leader sent.
fn tick_losing_snapshots(cluster: &mut Cluster) -> usize {
    cluster.tick(1);
    let mut lost = 0;
    loop {
        let messages = cluster.take_messages();
        if messages.is_empty() {
            return lost;
        }
        for message in messages {
            if matches!(message.body, MessageBody::InstallSnapshot { .. }) {
                lost += 1;
            } else {
                cluster.deliver(message);
            }
        }
    }
}

#[test]
fn a_lost_snapshot_is_sent_again_after_the_snapshot_timeout() {
    let mut cluster = cluster();
    let index = leave_node_3_behind_a_snapshot(&mut cluster, b"0123456789abcdef");
    assert_eq!(tick_losing_snapshots(&mut cluster), 1);
    // Within the 5-tick timeout the leader waits for the one it sent.
    for _ in 0..3 {
        assert_eq!(tick_losing_snapshots(&mut cluster), 0);
        assert!(cluster.node(1).status().progress[&id(3)].snapshotting);
    }
    let mut resent = 0;
    for _ in 0..5 {
        resent += tick_losing_snapshots(&mut cluster);
    }
    assert_eq!(resent, 1, "sent again once the timeout passed");
    for _ in 0..10 {
        cluster.tick(1);
        cluster.deliver_all();
    }
    assert_eq!(cluster.app(3).snapshots.len(), 1);
    assert_eq!(cluster.node(3).status().snapshot_index, index);
    assert!(cluster.node(1).status().progress[&id(3)].matched >= index);
}

#[test]
fn a_failed_transfer_reported_by_the_application_is_sent_again_without_waiting_out_the_timeout() {
    let mut cluster = cluster();
    leave_node_3_behind_a_snapshot(&mut cluster, b"state");
    assert_eq!(tick_losing_snapshots(&mut cluster), 1);
    cluster.node(1).report_snapshot(id(3), false);
    // The next heartbeat round: the follower answers, the leader probes,
    // finds the entries compacted and sends the snapshot again, well
    // before the 5-tick timeout.
    cluster.tick(1);
    cluster.deliver_all();
    assert_eq!(snapshots_delivered(&cluster), 1);
    assert_eq!(cluster.app(3).snapshots.len(), 1);
}

#[test]
fn a_snapshot_reported_delivered_still_waits_for_the_followers_answer() {
    let mut cluster = cluster();
    leave_node_3_behind_a_snapshot(&mut cluster, b"state");
    assert_eq!(tick_losing_snapshots(&mut cluster), 1);
    cluster.node(1).report_snapshot(id(3), true);
    assert!(cluster.node(1).status().progress[&id(3)].snapshotting);
}

#[test]
fn a_snapshot_the_follower_already_holds_is_answered_with_its_commit_index() {
    let mut cluster = cluster();
    for n in 0..3 {
        cluster.propose(1, &format!("v{n}"));
    }
    cluster.deliver_all();
    let applied = cluster.node(1).status().applied;
    cluster
        .node(1)
        .compact(applied, Bytes::from_static(b"state"))
        .unwrap();
    cluster.deliver_all();
    let snapshot = cluster.node(1).storage().snapshot().unwrap();
    let term = cluster.node(1).status().term;
    let commit = cluster.node(2).status().commit;
    cluster.node(2).step(crate::Message {
        cluster_id: crate::testing::CLUSTER,
        from: id(1),
        to: id(2),
        term,
        body: MessageBody::InstallSnapshot { snapshot },
    });
    cluster.deliver_all();
    assert!(cluster.app(2).snapshots.is_empty(), "nothing to install");
    assert_eq!(cluster.node(2).status().commit, commit);
}

/// A follower whose log runs past a snapshot's index, with the snapshot's
/// term at that index, already holds everything the snapshot covers: it
/// must keep the entries after it, which the leader may have counted
/// towards a commit.
#[test]
fn a_snapshot_behind_the_followers_matching_entries_keeps_them() {
    snapshot_behind_matching_entries(None);
}

#[test]
#[should_panic(expected = "kept")]
fn a_snapshot_behind_matching_entries_catches_the_planted_discard_bug() {
    snapshot_behind_matching_entries(Some(PlantedBug::SnapshotDiscardsMatchingEntries));
}

fn snapshot_behind_matching_entries(bug: Option<PlantedBug>) {
    let mut cluster = Cluster::with_planted_bug(3, bug);
    cluster.elect(1);
    cluster.deliver_all();
    // Node 2 receives five entries but never hears that they committed.
    for n in 0..5 {
        cluster.propose(1, &format!("v{n}"));
    }
    for message in cluster.take_messages() {
        cluster.deliver(message);
    }
    cluster.cut.insert((id(1), id(2)));
    cluster.deliver_all();
    let last = cluster.node(2).status().last_index;
    assert!(cluster.node(2).status().commit < last.prev());
    // The leader compacts behind the second-to-last entry; its snapshot
    // reaches node 2 late (a resend, or one that was held up).
    let index = last.prev();
    cluster
        .node(1)
        .compact(index, Bytes::from_static(b"state"))
        .unwrap();
    cluster.deliver_all();
    let snapshot = cluster.node(1).storage().snapshot().unwrap();
    let term = cluster.node(1).status().term;
    cluster.node(2).step(crate::Message {
        cluster_id: crate::testing::CLUSTER,
        from: id(1),
        to: id(2),
        term,
        body: MessageBody::InstallSnapshot { snapshot },
    });
    cluster.flush();
    let storage = cluster.node(2).storage().clone();
    assert_eq!(storage.last_index().unwrap(), last, "entries kept");
    assert!(cluster.app(2).snapshots.is_empty(), "nothing to install");
    assert_eq!(cluster.node(2).status().commit, index);
}
