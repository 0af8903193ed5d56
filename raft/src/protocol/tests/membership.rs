use crate::testing::{Cluster, id};
use crate::{
    LogIndex, MembershipChange::*, MembershipError, MessageBody, NodeId, PlantedBug, ProposalError,
    Role,
};

#[test]
fn a_learner_joins_with_an_empty_store_and_receives_the_log() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.propose(1, "before");
    cluster.deliver_all();
    cluster.add_empty_node(4);
    cluster.change(1, AddLearner(id(4))).unwrap();
    cluster.propose(1, "after");
    cluster.tick_all(3);
    assert_eq!(cluster.applied_commands(4), ["before", "after"]);
    let status = cluster.node(4).status();
    assert_eq!(status.cluster_id, Some(crate::testing::CLUSTER));
    assert!(status.membership.is_learner(id(4)));
}

#[test]
fn a_learner_never_counts_for_commit() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.add_empty_node(4);
    cluster.change(1, AddLearner(id(4))).unwrap();
    cluster.tick_all(3);
    // Only the leader and the learner hear the next entry.
    cluster.isolate(2);
    cluster.isolate(3);
    let index = cluster.propose(1, "x");
    cluster.tick_all(3);
    assert_eq!(cluster.node(4).status().last_index, index);
    assert!(cluster.node(1).status().commit < index);
}

#[test]
fn a_learner_never_campaigns_or_votes() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.add_empty_node(4);
    cluster.change(1, AddLearner(id(4))).unwrap();
    cluster.tick_all(3);
    cluster.isolate(1);
    for _ in 0..100 {
        cluster.tick(4);
        cluster.deliver_all();
    }
    assert_eq!(cluster.node(4).status().role, Role::Follower);
    let term = cluster.node(4).status().term;
    cluster.node(4).step(crate::Message {
        cluster_id: crate::testing::CLUSTER,
        from: id(2),
        to: id(4),
        term: term.next(),
        body: crate::MessageBody::RequestVote {
            pre_vote: false,
            last_log_index: LogIndex(100),
            last_log_term: term.next(),
            leadership_transfer: true,
        },
    });
    let replies = cluster.take_messages();
    assert!(replies.iter().all(|m| m.body
        != crate::MessageBody::RequestVoteResponse {
            pre_vote: false,
            granted: true
        }));
}

#[test]
fn a_configuration_takes_effect_when_appended_not_when_committed() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.isolate(2);
    cluster.isolate(3);
    cluster.add_empty_node(4);
    cluster.change(1, AddLearner(id(4))).unwrap();
    cluster.deliver_all();
    let status = cluster.node(1).status();
    assert!(status.membership.is_learner(id(4)));
    assert!(status.membership_change_pending);
    assert!(status.progress.contains_key(&id(4)));
}

#[test]
fn a_second_membership_change_while_one_is_pending_is_refused() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.isolate(2);
    cluster.isolate(3);
    cluster.change(1, AddLearner(id(4))).unwrap();
    let before = cluster.node(1).status();
    assert_eq!(
        cluster.change(1, AddLearner(id(5))),
        Err(ProposalError::MembershipChangeInProgress)
    );
    assert_eq!(
        cluster.node(1).status(),
        before,
        "a refused call changes nothing"
    );
}

#[test]
fn the_planted_second_pending_config_bug_allows_two() {
    let mut config = crate::testing::config(1);
    config.planted_bug = Some(PlantedBug::SecondPendingConfig);
    let mut cluster = Cluster::with_configs(vec![
        config,
        crate::testing::config(2),
        crate::testing::config(3),
    ]);
    cluster.elect(1);
    cluster.deliver_all();
    cluster.isolate(2);
    cluster.isolate(3);
    cluster.change(1, AddLearner(id(4))).unwrap();
    assert!(cluster.change(1, AddLearner(id(5))).is_ok());
}

/// The single-server-change bug from the Raft dissertation's errata: a
/// leader may hold an uncommitted configuration that the next leader never
/// saw; if that leader changed membership at once, the two changes could
/// form disjoint majorities. So a new leader changes membership only after
/// an entry of its own term commits.
#[test]
fn a_new_leader_changes_membership_only_after_committing_in_its_term() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.isolate(1);
    // Node 1's change reaches nobody.
    cluster.change(1, AddLearner(id(4))).unwrap();
    cluster.deliver_all();
    // Node 2 or 3 wins the next term; appends are held back so its no-op
    // stays uncommitted.
    cluster.filter = Some(|m| (!matches!(m.body, MessageBody::AppendEntries { .. })).then_some(m));
    cluster.run_until(200, |c| c.leader().is_some_and(|l| l != 1));
    let leader = cluster.leader().unwrap();
    assert!(!cluster.node(leader).status().membership_change_pending);
    assert_eq!(
        cluster.change(leader, AddLearner(id(5))),
        Err(ProposalError::LeaderNotReady)
    );
    cluster.filter = None;
    cluster.tick_all(2);
    assert!(cluster.change(leader, AddLearner(id(5))).is_ok());
}

#[test]
fn promoting_a_learner_that_is_not_caught_up_is_refused() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.add_empty_node(4);
    cluster.isolate(4);
    cluster.change(1, AddLearner(id(4))).unwrap();
    cluster.tick_all(3);
    assert!(matches!(
        cluster.change(1, PromoteLearner(id(4))),
        Err(ProposalError::LearnerNotCaughtUp { .. })
    ));
    cluster.heal();
    cluster.tick_all(3);
    cluster.change(1, PromoteLearner(id(4))).unwrap();
    cluster.tick_all(3);
    assert!(cluster.node(4).status().membership.is_voter(id(4)));
}

#[test]
fn removing_the_last_voter_is_refused() {
    let mut cluster = Cluster::new(1);
    cluster.elect(1);
    cluster.deliver_all();
    assert_eq!(
        cluster.change(1, Remove(id(1))),
        Err(ProposalError::Membership(MembershipError::LastVoter(id(1))))
    );
}

#[test]
fn a_removed_leader_steps_down_once_its_removal_commits_and_a_voter_takes_over() {
    let mut cluster = Cluster::three_led_by_one();
    let index = cluster.change(1, Remove(id(1))).unwrap();
    cluster.deliver_all();
    let status = cluster.node(1).status();
    assert!(status.commit >= index);
    assert_ne!(status.role, Role::Leader);
    assert!(!status.membership.contains(id(1)));
    cluster.run_until(50, |c| c.leader().is_some());
    let leader = cluster.leader().unwrap();
    assert_ne!(leader, 1);
    cluster.propose(leader, "after");
    cluster.tick_all(2);
    assert_eq!(cluster.applied_commands(2), ["after"]);
    // The removed node never campaigns again.
    cluster.isolate(1);
    for _ in 0..100 {
        cluster.tick(1);
    }
    assert_eq!(cluster.node(1).status().role, Role::Follower);
}

#[test]
fn a_removed_leader_still_leads_until_the_removal_commits() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.isolate(2);
    cluster.isolate(3);
    cluster.change(1, Remove(id(1))).unwrap();
    cluster.deliver_all();
    assert_eq!(cluster.node(1).status().role, Role::Leader);
    assert_eq!(cluster.node(1).status().leader_id, Some(NodeId(1)));
}
