use bytes::Bytes;

use crate::testing::{Cluster, id};
use crate::{MessageBody, ProposalError, Role};

#[test]
fn leadership_moves_to_the_target_of_a_transfer() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.node(1).transfer_leadership(id(3)).unwrap();
    cluster.deliver_all();
    assert_eq!(cluster.leader(), Some(3));
    assert_eq!(cluster.node(1).status().role, Role::Follower);
    cluster.propose(3, "after");
    cluster.deliver_all();
    assert_eq!(cluster.applied_commands(1), ["after"]);
}

#[test]
fn a_transfer_to_a_lagging_target_catches_it_up_first() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.isolate(3);
    for n in 0..5 {
        cluster.propose(1, &format!("v{n}"));
    }
    cluster.deliver_all();
    cluster.heal();
    cluster.node(1).transfer_leadership(id(3)).unwrap();
    let messages = cluster.take_messages();
    // First the missing entries, not TimeoutNow.
    assert!(
        messages
            .iter()
            .any(|m| m.to == id(3) && matches!(m.body, MessageBody::AppendEntries { .. }))
    );
    assert!(!messages.iter().any(|m| m.body == MessageBody::TimeoutNow));
    for message in messages {
        cluster.deliver(message);
    }
    cluster.deliver_all();
    assert_eq!(cluster.leader(), Some(3));
    assert_eq!(cluster.applied_commands(3).len(), 5);
}

#[test]
fn proposals_are_refused_while_leadership_is_being_transferred() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.isolate(3);
    cluster.node(1).transfer_leadership(id(3)).unwrap();
    let last = cluster.node(1).status().last_index;
    assert_eq!(
        cluster.node(1).propose(Bytes::from_static(b"x")),
        Err(ProposalError::TransferInProgress { to: id(3) })
    );
    assert_eq!(cluster.node(1).status().last_index, last);
}

#[test]
fn a_transfer_that_does_not_finish_is_aborted_after_an_election_timeout() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.isolate(3);
    cluster.node(1).transfer_leadership(id(3)).unwrap();
    // Node 2 keeps the leader's quorum while node 3 is unreachable.
    for _ in 0..10 {
        cluster.tick(1);
        cluster.tick(2);
        cluster.deliver_all();
    }
    assert_eq!(cluster.node(1).status().transferring_to, None);
    assert_eq!(cluster.node(1).status().role, Role::Leader);
    cluster.node(1).propose(Bytes::from_static(b"x")).unwrap();
}

#[test]
fn a_transfer_to_a_learner_is_refused() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.add_empty_node(4);
    cluster
        .change(1, crate::MembershipChange::AddLearner(id(4)))
        .unwrap();
    cluster.deliver_all();
    assert_eq!(
        cluster.node(1).transfer_leadership(id(4)),
        Err(ProposalError::NotAVoter(id(4)))
    );
}

#[test]
fn a_follower_cannot_transfer_leadership() {
    let mut cluster = Cluster::three_led_by_one();
    assert_eq!(
        cluster.node(2).transfer_leadership(id(3)),
        Err(ProposalError::NotLeader {
            leader_hint: Some(id(1))
        })
    );
}
