use crate::testing::{Cluster, id};
use crate::{Role, Term};

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
