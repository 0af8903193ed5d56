use crate::testing::{Cluster, id};
use crate::{
    MembershipChange::*, MembershipError, MessageBody, NodeId, PlantedBug, ProposalError, Role,
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
fn a_learner_never_campaigns() {
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
    assert!(
        cluster
            .delivered
            .iter()
            .all(|m| m.from != id(4) || !matches!(m.body, MessageBody::RequestVote { .. }))
    );
}

#[test]
fn a_learners_vote_never_counts_for_a_candidate_that_sees_it_as_a_learner() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.add_empty_node(4);
    cluster.change(1, AddLearner(id(4))).unwrap();
    cluster.tick_all(3);
    // Node 2 can reach only the learner.
    cluster.isolate(1);
    cluster.isolate(3);
    cluster.cut.remove(&(id(2), id(4)));
    cluster.cut.remove(&(id(4), id(2)));
    for _ in 0..200 {
        cluster.tick(2);
        cluster.tick(4);
        cluster.deliver_all();
    }
    assert_ne!(cluster.node(2).status().role, Role::Leader);
}

/// A learner promoted in the leader's log may not have that entry yet; it
/// must still answer vote requests, or a cluster whose leader then fails
/// could never elect a new one.
#[test]
fn a_promoted_learner_that_missed_its_promotion_still_votes() {
    let mut cluster = Cluster::new(1);
    cluster.elect(1);
    cluster.deliver_all();
    cluster.add_empty_node(2);
    cluster.change(1, AddLearner(id(2))).unwrap();
    cluster.tick_all(3);
    // The promotion reaches nobody, and the leader restarts.
    cluster.isolate(1);
    cluster.change(1, PromoteLearner(id(2))).unwrap();
    cluster.deliver_all();
    assert!(cluster.node(2).status().membership.is_learner(id(2)));
    let mut restarted = crate::testing::config(1);
    restarted.applied = cluster.node(1).status().applied;
    let storage = cluster.node(1).storage().clone();
    cluster
        .nodes
        .insert(id(1), crate::RawNode::new(restarted, storage).unwrap());
    cluster.heal();
    cluster.run_until(300, |c| c.leader() == Some(1));
    cluster.propose(1, "x");
    cluster.tick_all(3);
    assert_eq!(cluster.applied_commands(2), ["x"]);
    assert!(cluster.node(2).status().membership.is_voter(id(2)));
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
fn a_learner_a_few_entries_behind_a_busy_leader_can_be_promoted() {
    let mut cluster = Cluster::three_led_by_one();
    cluster.add_empty_node(4);
    cluster.change(1, AddLearner(id(4))).unwrap();
    cluster.tick_all(3);
    // Writes the learner has not received yet, as under steady load.
    cluster.isolate(4);
    for i in 0..5 {
        cluster.propose(1, &format!("w{i}"));
    }
    cluster.deliver_all();
    let status = cluster.node(1).status();
    assert!(status.progress[&id(4)].matched < status.commit);
    cluster.change(1, PromoteLearner(id(4))).unwrap();
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

/// A leader that appended its own removal and then lost leadership is the
/// only node that can finish the removal: it must still campaign.
#[test]
fn a_node_whose_removal_is_not_committed_can_still_campaign_and_finish_it() {
    let mut cluster = Cluster::new(1);
    cluster.elect(1);
    cluster.deliver_all();
    cluster.add_empty_node(2);
    cluster.change(1, AddLearner(id(2))).unwrap();
    cluster.tick_all(3);
    cluster.change(1, PromoteLearner(id(2))).unwrap();
    cluster.tick_all(3);
    // Node 1 removes itself; the entry reaches nobody, and node 1 restarts.
    cluster.isolate(1);
    cluster.change(1, Remove(id(1))).unwrap();
    cluster.deliver_all();
    let mut restarted = crate::testing::config(1);
    restarted.applied = cluster.node(1).status().applied;
    let storage = cluster.node(1).storage().clone();
    cluster
        .nodes
        .insert(id(1), crate::RawNode::new(restarted, storage).unwrap());
    cluster.heal();
    // Node 2 cannot win without node 1, whose log is longer; node 1 wins,
    // commits its removal and hands over.
    cluster.run_until(500, |c| c.leader() == Some(2));
    let status = cluster.node(2).status();
    assert_eq!(status.membership.voters, [id(2)].into_iter().collect());
    assert!(!status.membership_change_pending);
}
