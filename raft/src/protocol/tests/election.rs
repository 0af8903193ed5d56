use crate::testing::{Cluster, id};
use crate::{MessageBody, Role, Term};

#[test]
fn a_single_voter_elects_itself_and_commits() {
    let mut cluster = Cluster::new(1);
    cluster.elect(1);
    let index = cluster.propose(1, "x");
    cluster.deliver_all();
    assert_eq!(cluster.node(1).status().commit, index);
    assert_eq!(cluster.applied_commands(1), ["x"]);
}

#[test]
fn three_voters_elect_one_leader_and_replicate() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    assert_eq!(cluster.node(2).status().leader_id, Some(id(1)));
    assert_eq!(cluster.node(2).status().role, Role::Follower);
    cluster.propose(1, "a");
    cluster.propose(1, "b");
    cluster.deliver_all();
    for n in 1..=3 {
        assert_eq!(cluster.applied_commands(n), ["a", "b"], "node {n}");
    }
    assert_eq!(cluster.node(1).status().term, Term(1));
}

#[test]
fn election_timeouts_are_randomized_between_one_and_two_timeouts() {
    let mut first_campaign = Vec::new();
    for seed in 0..20 {
        let mut config = crate::testing::config(1);
        config.seed = seed;
        let mut cluster = Cluster::with_configs(vec![
            config,
            crate::testing::config(2),
            crate::testing::config(3),
        ]);
        let ticks = (1..=40)
            .find(|_| {
                cluster.tick(1);
                cluster.node(1).status().role != Role::Follower
            })
            .expect("node 1 campaigned");
        assert!((10..20).contains(&ticks), "campaigned after {ticks} ticks");
        first_campaign.push(ticks);
    }
    first_campaign.sort_unstable();
    first_campaign.dedup();
    assert!(
        first_campaign.len() > 3,
        "timeouts barely vary: {first_campaign:?}"
    );
}

#[test]
fn a_candidate_without_a_majority_does_not_win() {
    let mut cluster = Cluster::new(3);
    cluster.isolate(1);
    for _ in 0..100 {
        cluster.tick(1);
        cluster.deliver_all();
    }
    assert_ne!(cluster.node(1).status().role, Role::Leader);
}

#[test]
fn prevote_keeps_the_term_of_a_node_that_cannot_win() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    let term = cluster.node(3).status().term;
    cluster.isolate(3);
    for _ in 0..200 {
        cluster.tick(3);
        cluster.deliver_all();
    }
    assert_eq!(cluster.node(3).status().role, Role::PreCandidate);
    assert_eq!(cluster.node(3).status().term, term);
}

#[test]
fn a_partitioned_node_rejoining_does_not_depose_a_healthy_leader() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    let term = cluster.node(1).status().term;
    cluster.isolate(3);
    for _ in 0..100 {
        cluster.tick(3);
        cluster.deliver_all();
    }
    cluster.heal();
    // Node 3 rejoins while the leader keeps heartbeating.
    cluster.tick_all(50);
    assert_eq!(cluster.node(1).status().role, Role::Leader);
    assert_eq!(cluster.node(1).status().term, term);
    assert_eq!(cluster.node(3).status().leader_id, Some(id(1)));
}

#[test]
fn an_isolated_leader_steps_down() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.isolate(1);
    for _ in 0..10 {
        cluster.tick(1);
        cluster.deliver_all();
    }
    assert_eq!(
        cluster.node(1).status().role,
        Role::Leader,
        "within its first timeout"
    );
    for _ in 0..10 {
        cluster.tick(1);
        cluster.deliver_all();
    }
    assert_eq!(cluster.node(1).status().role, Role::Follower);
    assert_eq!(cluster.node(1).status().leader_id, None);
}

#[test]
fn a_follower_that_hears_from_its_leader_ignores_vote_requests() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    let term = cluster.node(2).status().term;
    // Node 3 asks for votes at a higher term, as a disruptive node would.
    let request = crate::Message {
        cluster_id: crate::testing::CLUSTER,
        from: id(3),
        to: id(2),
        term: term.next(),
        body: MessageBody::RequestVote {
            pre_vote: false,
            last_log_index: crate::LogIndex(100),
            last_log_term: term,
            leadership_transfer: false,
        },
    };
    cluster.node(2).step(request);
    assert_eq!(cluster.node(2).status().term, term);
    assert!(cluster.take_messages().is_empty());
}

#[test]
fn a_vote_is_refused_to_a_candidate_with_a_shorter_log() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.isolate(3);
    cluster.propose(1, "only on 1 and 2");
    cluster.deliver_all();
    cluster.heal();
    let last = cluster.node(3).status().last_index;
    let term = cluster.node(2).status().term;
    let request = crate::Message {
        cluster_id: crate::testing::CLUSTER,
        from: id(3),
        to: id(2),
        term: term.next(),
        body: MessageBody::RequestVote {
            pre_vote: true,
            last_log_index: last,
            last_log_term: term,
            leadership_transfer: true,
        },
    };
    cluster.node(2).step(request);
    let replies = cluster.take_messages();
    assert!(replies.iter().any(|m| m.to == id(3)
        && m.body
            == MessageBody::RequestVoteResponse {
                pre_vote: true,
                granted: false
            }));
}

#[test]
fn a_node_votes_for_at_most_one_candidate_per_term() {
    let mut cluster = Cluster::new(3);
    let vote = |from: u64, term: u64| crate::Message {
        cluster_id: crate::testing::CLUSTER,
        from: id(from),
        to: id(1),
        term: Term(term),
        body: MessageBody::RequestVote {
            pre_vote: false,
            last_log_index: crate::LogIndex(0),
            last_log_term: Term(0),
            leadership_transfer: false,
        },
    };
    cluster.node(1).step(vote(2, 5));
    cluster.node(1).step(vote(3, 5));
    let granted: Vec<_> = cluster
        .take_messages()
        .into_iter()
        .map(|m| (m.to, m.body))
        .collect();
    assert_eq!(
        granted,
        [
            (
                id(2),
                MessageBody::RequestVoteResponse {
                    pre_vote: false,
                    granted: true
                }
            ),
            (
                id(3),
                MessageBody::RequestVoteResponse {
                    pre_vote: false,
                    granted: false
                }
            ),
        ]
    );
}

#[test]
fn a_leader_sends_heartbeats_every_interval() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.deliver_all();
    cluster.tick(1);
    let heartbeats = cluster
        .take_messages()
        .into_iter()
        .filter(|m| matches!(m.body, MessageBody::Heartbeat { .. }))
        .count();
    assert_eq!(heartbeats, 2);
}
