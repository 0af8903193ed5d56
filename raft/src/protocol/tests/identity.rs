use bytes::Bytes;

use crate::testing::{CLUSTER, Cluster, config, id};
use crate::{
    ClusterId, Entry, EntryPayload, LogIndex, MemStorage, Message, MessageBody, ProposalError,
    RawNode, StartError, Term,
};

fn heartbeat(from: u64, to: u64, cluster_id: ClusterId, term: u64) -> Message {
    Message {
        cluster_id,
        from: id(from),
        to: id(to),
        term: Term(term),
        body: MessageBody::Heartbeat {
            commit: LogIndex(0),
            read_round: 0,
        },
    }
}

#[test]
fn a_message_for_another_node_is_dropped_and_counted() {
    let mut cluster = Cluster::new(3);
    cluster.node(1).step(heartbeat(2, 9, CLUSTER, 5));
    let status = cluster.node(1).status();
    assert_eq!(status.drops.misaddressed, 1);
    assert_eq!(status.term, Term(0));
}

#[test]
fn a_message_from_another_cluster_is_dropped_and_counted() {
    let mut cluster = Cluster::new(3);
    cluster.node(1).step(heartbeat(2, 1, ClusterId(99), 5));
    let status = cluster.node(1).status();
    assert_eq!(status.drops.misaddressed, 1);
    assert_eq!(status.term, Term(0));
    assert!(cluster.take_messages().is_empty());
}

#[test]
fn a_node_without_a_cluster_adopts_the_first_leaders_cluster_id() {
    let mut node = RawNode::new(config(4), MemStorage::new()).unwrap();
    // A vote request does not make a node join a cluster.
    node.step(Message {
        body: MessageBody::RequestVote {
            pre_vote: false,
            last_log_index: LogIndex(0),
            last_log_term: Term(0),
            leadership_transfer: false,
        },
        ..heartbeat(2, 4, ClusterId(5), 1)
    });
    assert_eq!(node.status().cluster_id, None);
    node.step(heartbeat(2, 4, ClusterId(5), 1));
    assert_eq!(node.status().cluster_id, Some(ClusterId(5)));
    let ready = node.ready();
    assert_eq!(ready.hard_state.unwrap().cluster_id, Some(ClusterId(5)));
    assert!(ready.messages.iter().all(|m| m.cluster_id == ClusterId(5)));
    node.advance();
    node.step(heartbeat(3, 4, ClusterId(6), 1));
    assert_eq!(node.status().drops.misaddressed, 2);
}

#[test]
fn malformed_messages_are_dropped_and_counted() {
    let mut cluster = Cluster::new(3);
    let gap = Message {
        body: MessageBody::AppendEntries {
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![Entry {
                term: Term(1),
                index: LogIndex(5),
                payload: EntryPayload::Noop,
            }],
            leader_commit: LogIndex(0),
        },
        ..heartbeat(2, 1, CLUSTER, 1)
    };
    let future_entry = Message {
        body: MessageBody::AppendEntries {
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![Entry {
                term: Term(9),
                index: LogIndex(1),
                payload: EntryPayload::Noop,
            }],
            leader_commit: LogIndex(0),
        },
        ..heartbeat(2, 1, CLUSTER, 1)
    };
    let snapshot_from_the_future = Message {
        body: MessageBody::InstallSnapshot {
            snapshot: crate::Snapshot {
                metadata: crate::SnapshotMetadata {
                    index: LogIndex(3),
                    term: Term(9),
                    ..Default::default()
                },
                data: Bytes::from_static(b"state"),
            },
        },
        ..heartbeat(2, 1, CLUSTER, 1)
    };
    let from_itself = heartbeat(1, 1, CLUSTER, 1);
    let term_zero = heartbeat(2, 1, CLUSTER, 0);
    for message in [
        gap,
        future_entry,
        snapshot_from_the_future,
        from_itself,
        term_zero,
    ] {
        cluster.node(1).step(message);
    }
    let status = cluster.node(1).status();
    assert_eq!(status.drops.malformed, 5);
    assert_eq!(status.term, Term(0));
    assert_eq!(status.last_index, LogIndex(0));
}

#[test]
fn a_proposal_on_a_follower_returns_not_leader_with_a_hint() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.deliver_all();
    let before = cluster.node(2).status();
    assert_eq!(
        cluster.node(2).propose(Bytes::from_static(b"x")),
        Err(ProposalError::NotLeader {
            leader_hint: Some(id(1))
        })
    );
    assert_eq!(cluster.node(2).status(), before);
    assert!(!cluster.node(2).has_ready());
}

#[test]
fn a_restarted_node_resumes_from_its_durable_state() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.propose(1, "a");
    cluster.deliver_all();
    let storage = cluster.node(2).storage().clone();
    let mut restarted = config(2);
    restarted.applied = cluster.node(2).status().applied;
    let node = RawNode::new(restarted, storage).unwrap();
    let status = node.status();
    assert_eq!(status.term, cluster.node(1).status().term);
    assert_eq!(status.commit, cluster.node(1).status().commit);
    assert_eq!(status.membership, cluster.node(1).status().membership);
}

#[test]
fn a_restart_with_an_applied_index_past_commit_is_refused() {
    let mut cluster = Cluster::new(3);
    let storage = cluster.node(2).storage().clone();
    let mut restarted = config(2);
    restarted.applied = LogIndex(10);
    assert!(matches!(
        RawNode::new(restarted, storage),
        Err(StartError::AppliedOutOfRange { .. })
    ));
}

#[test]
fn an_invalid_configuration_is_refused() {
    let mut bad = config(1);
    bad.heartbeat_interval_ticks = bad.election_timeout_ticks;
    assert!(matches!(
        RawNode::new(bad, MemStorage::new()),
        Err(StartError::InvalidConfig(_))
    ));
}

#[test]
fn bootstrapping_a_store_that_holds_state_is_refused() {
    let mut storage = MemStorage::new();
    crate::bootstrap(&mut storage, [id(1)], CLUSTER).unwrap();
    assert_eq!(
        crate::bootstrap(&mut storage, [id(1)], CLUSTER),
        Err(crate::BootstrapError::AlreadyInitialized)
    );
}

#[test]
fn a_message_at_the_largest_term_is_dropped_and_counted() {
    let mut cluster = Cluster::new(3);
    cluster.node(2).step(heartbeat(1, 2, CLUSTER, u64::MAX));
    let status = cluster.node(2).status();
    assert_eq!(status.drops.overflowing, 1);
    assert_eq!(status.term, Term(0), "the term did not move");
    assert!(cluster.take_messages().is_empty());
    // The cluster still elects a leader, in the next term.
    cluster.elect(2);
    cluster.deliver_all();
    assert_eq!(cluster.node(2).status().role, crate::Role::Leader);
}

#[test]
fn a_message_with_an_index_that_has_no_successor_is_dropped_and_counted() {
    let mut cluster = Cluster::three_led_by_one();
    let term = cluster.node(2).status().term.get();
    let mut message = heartbeat(1, 2, CLUSTER, term);
    message.body = MessageBody::AppendEntries {
        prev_log_index: LogIndex(u64::MAX - 1),
        prev_log_term: Term(term),
        entries: vec![Entry {
            index: LogIndex(u64::MAX),
            term: Term(term),
            payload: EntryPayload::Command(Bytes::from_static(b"x")),
        }],
        leader_commit: LogIndex(0),
    };
    cluster.node(2).step(message);
    assert_eq!(cluster.node(2).status().drops.overflowing, 1);
    assert!(cluster.take_messages().is_empty());
}
