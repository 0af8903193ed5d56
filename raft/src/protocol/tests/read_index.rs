use crate::testing::{Cluster, config, id};
use crate::{LogIndex, MessageBody, PlantedBug, ProposalError, ReadContext};

#[test]
fn a_leader_serves_a_read_only_after_a_quorum_heartbeat_round() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.propose(1, "w");
    cluster.deliver_all();
    let commit = cluster.node(1).status().commit;
    cluster.node(1).read_index(ReadContext(9)).unwrap();
    let heartbeats = cluster.take_messages();
    assert!(
        heartbeats
            .iter()
            .all(|m| matches!(m.body, MessageBody::Heartbeat { read_round: 1, .. }))
    );
    assert!(cluster.app(1).reads.is_empty(), "not before the round");
    for message in heartbeats {
        cluster.deliver(message);
    }
    cluster.deliver_all();
    let reads = &cluster.app(1).reads;
    assert_eq!(reads.len(), 1);
    assert_eq!((reads[0].context, reads[0].index), (ReadContext(9), commit));
}

#[test]
fn a_follower_read_gets_the_leaders_read_index() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.propose(1, "w");
    cluster.deliver_all();
    cluster.node(3).read_index(ReadContext(4)).unwrap();
    cluster.deliver_all();
    let commit = cluster.node(1).status().commit;
    let reads = &cluster.app(3).reads;
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].index, commit);
}

#[test]
fn a_node_without_a_leader_refuses_reads() {
    let mut cluster = Cluster::new(3);
    assert_eq!(
        cluster.node(2).read_index(ReadContext(1)),
        Err(ProposalError::NotLeader { leader_hint: None })
    );
}

#[test]
fn a_single_voter_serves_reads_at_once() {
    let mut cluster = Cluster::new(1);
    cluster.elect(1);
    cluster.deliver_all();
    cluster.node(1).read_index(ReadContext(1)).unwrap();
    cluster.deliver_all();
    assert_eq!(cluster.app(1).reads.len(), 1);
}

#[test]
fn a_new_leader_holds_reads_until_its_term_commits() {
    let mut cluster = Cluster::new(3);
    // Let the election through but hold back every append.
    cluster.filter = Some(|m| (!matches!(m.body, MessageBody::AppendEntries { .. })).then_some(m));
    cluster.elect(1);
    cluster.node(1).read_index(ReadContext(5)).unwrap();
    cluster.tick_all(2);
    assert!(cluster.app(1).reads.is_empty());
    cluster.filter = None;
    cluster.tick_all(2);
    assert_eq!(cluster.app(1).reads.len(), 1);
    assert!(cluster.app(1).reads[0].index >= LogIndex(1));
}

#[test]
fn a_deposed_leader_never_serves_a_read_index_read() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.isolate(1);
    // Nodes 2 and 3 elect a new leader and commit a write; node 1, not
    // ticked, still believes it leads.
    for _ in 0..100 {
        cluster.tick(2);
        cluster.tick(3);
        cluster.deliver_all();
        if cluster.leader().is_some_and(|l| l != 1) {
            break;
        }
    }
    let new_leader = cluster.leader().unwrap();
    assert_ne!(new_leader, 1);
    cluster.propose(new_leader, "newer");
    cluster.deliver_all();
    assert_eq!(cluster.node(1).status().role, crate::Role::Leader);
    cluster.node(1).read_index(ReadContext(1)).unwrap();
    cluster.deliver_all();
    cluster.heal();
    cluster.tick_all(5);
    assert!(
        cluster.app(1).reads.is_empty(),
        "served {:?}",
        cluster.app(1).reads
    );
    assert_eq!(cluster.app(1).dropped_reads, [ReadContext(1)]);
    assert_eq!(cluster.applied_commands(1), ["newer"]);
}

#[test]
fn a_leader_that_hears_of_a_newer_term_drops_its_pending_reads() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.node(1).read_index(ReadContext(3)).unwrap();
    // The heartbeat round is lost; a newer term reaches the leader.
    let _ = cluster.take_messages();
    let term = cluster.node(1).status().term;
    cluster.node(1).step(crate::Message {
        cluster_id: crate::testing::CLUSTER,
        from: id(2),
        to: id(1),
        term: term.next(),
        body: MessageBody::HeartbeatResponse { read_round: 1 },
    });
    cluster.deliver_all();
    assert!(cluster.app(1).reads.is_empty());
    assert_eq!(cluster.app(1).dropped_reads, [ReadContext(3)]);
}

#[test]
fn the_planted_read_without_quorum_bug_serves_at_once() {
    let configs = (1..=3)
        .map(|n| {
            let mut c = config(n);
            c.planted_bug = Some(PlantedBug::ReadIndexWithoutQuorum);
            c
        })
        .collect();
    let mut cluster = Cluster::with_configs(configs);
    cluster.elect(1);
    cluster.deliver_all();
    cluster.isolate(1);
    cluster.node(1).read_index(ReadContext(1)).unwrap();
    cluster.deliver_all();
    assert_eq!(
        cluster.app(1).reads.len(),
        1,
        "served without hearing from anyone"
    );
}
