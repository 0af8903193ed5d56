//! [`Workload`]: the clients and the operator. Random writes (unique
//! values over a small key space) sent to a random node and, on `NotLeader`,
//! retried once at the hinted leader; ReadIndex reads on a random node;
//! membership changes (joining nodes first, then new learners, promotions
//! and removals, the leader included); leadership transfers; compactions.

use std::collections::BTreeSet;

use raftcfg_raft::{LogIndex, MemStorage, MembershipChange, NodeId, ProposalError, ReadContext};

use crate::sim::history::IssuedRead;
use crate::sim::state_machine::command;
use crate::sim::world::World;

/// Members a configuration may have.
const MAX_MEMBERS: usize = 7;

pub struct Workload {
    next_value: u64,
    next_read: u64,
    /// Nodes created at the start that have not yet asked to join (the join path).
    joiners: Vec<NodeId>,
    /// Learners to promote once they have caught up.
    to_promote: BTreeSet<NodeId>,
}

impl Workload {
    pub fn new(joiners: Vec<NodeId>) -> Self {
        Self {
            next_value: 1,
            next_read: 1,
            to_promote: joiners.iter().copied().collect(),
            joiners,
        }
    }

    /// A value no write has used.
    pub fn unique_value(&mut self) -> String {
        let value = format!("v{}", self.next_value);
        self.next_value += 1;
        value
    }
}

/// Performs one random operation; returns the nodes it touched.
pub fn perform(world: &mut World) -> Vec<NodeId> {
    let ops = world.profile.ops;
    let weights = [
        ops.propose,
        ops.read,
        ops.membership,
        ops.transfer,
        ops.compact,
    ];
    match world.dice.weighted(&weights) {
        0 => write(world),
        1 => read(world),
        2 => change_membership(world),
        3 => transfer(world),
        _ => compact(world),
    }
}

fn random_up_node(world: &mut World) -> Option<NodeId> {
    let up = world.cluster.up_ids();
    world.dice.pick(&up)
}

/// Proposes `key=value` on `id`, recording it with the application so
/// the write is acknowledged when applied there.
pub fn propose(
    world: &mut World,
    id: NodeId,
    key: &str,
    value: &str,
) -> Result<LogIndex, ProposalError> {
    let data = command(key, value);
    let node = world.cluster.node_mut(id);
    let raft = node.raft.as_mut().expect("propose on a running node");
    let result = raft.propose(data.clone());
    if let Ok(index) = result {
        node.app.proposed(index, data);
    }
    world.trace_operation(
        id,
        format!("propose {key}={value} -> {result:?}"),
        result.is_ok(),
    );
    result
}

fn write(world: &mut World) -> Vec<NodeId> {
    let Some(first) = random_up_node(world) else {
        return vec![];
    };
    let key = format!("k{}", world.dice.range(0, world.profile.keys - 1));
    let value = world.workload.unique_value();
    match propose(world, first, &key, &value) {
        Err(ProposalError::NotLeader {
            leader_hint: Some(hint),
        }) if world.cluster.is_up(hint) => {
            world.history.counters.not_leader_rejections += 1;
            let _ = propose(world, hint, &key, &value);
            vec![first, hint]
        }
        Err(ProposalError::NotLeader { .. }) => {
            world.history.counters.not_leader_rejections += 1;
            vec![first]
        }
        _ => vec![first],
    }
}

fn read(world: &mut World) -> Vec<NodeId> {
    let Some(id) = random_up_node(world) else {
        return vec![];
    };
    let context = ReadContext(world.workload.next_read);
    world.workload.next_read += 1;
    let node = world.cluster.node_mut(id);
    let result = node.raft.as_mut().expect("up").read_index(context);
    if result.is_ok() {
        node.app.read_issued(context);
        let issued = IssuedRead {
            node: id,
            step: world.step,
            max_acked: world.history.max_acked,
        };
        world.history.reads.insert(context, issued);
    }
    world.trace_operation(
        id,
        format!("read_index({}) -> {result:?}", context.0),
        result.is_ok(),
    );
    vec![id]
}

/// The change to try next, given the leader's configuration.
fn next_change(world: &mut World, leader: NodeId) -> Option<MembershipChange> {
    let config = world.cluster.node(leader).view.as_ref()?.membership.clone();
    let members = config.members().count();
    let joiner = world
        .workload
        .joiners
        .iter()
        .copied()
        .find(|id| !config.contains(*id));
    if let Some(id) = joiner
        && members < MAX_MEMBERS
    {
        return Some(MembershipChange::AddLearner(id));
    }
    world.workload.to_promote.retain(|id| !config.is_voter(*id));
    let promotable: Vec<NodeId> = world
        .workload
        .to_promote
        .iter()
        .copied()
        .filter(|id| config.is_learner(*id))
        .collect();
    if let Some(id) = world.dice.pick(&promotable)
        && world.dice.chance(700)
    {
        return Some(MembershipChange::PromoteLearner(id));
    }
    let target = world.profile.cluster_size;
    let grow = if members >= MAX_MEMBERS {
        false
    } else if members < target {
        world.dice.chance(800)
    } else {
        world.dice.chance(400)
    };
    if grow {
        return Some(MembershipChange::AddLearner(NodeId(0)));
    }
    let all: Vec<NodeId> = config.members().collect();
    world.dice.pick(&all).map(MembershipChange::Remove)
}

fn change_membership(world: &mut World) -> Vec<NodeId> {
    let Some(leader) = world.cluster.leader() else {
        return vec![];
    };
    let Some(mut change) = next_change(world, leader) else {
        return vec![];
    };
    let brand_new = change == MembershipChange::AddLearner(NodeId(0));
    if brand_new {
        change = MembershipChange::AddLearner(world.cluster.fresh_id());
    }
    let context = bytes::Bytes::from(format!("{change:?}"));
    let raft = world
        .cluster
        .node_mut(leader)
        .raft
        .as_mut()
        .expect("leader is up");
    let result = raft.propose_membership(change, context);
    world.trace_operation(
        leader,
        format!("propose_membership({change:?}) -> {result:?}"),
        result.is_ok(),
    );
    if result.is_ok() {
        match change {
            MembershipChange::AddLearner(id) => {
                // Asked once: a node id is never added twice, even if this
                // entry is lost (the node then stays out).
                world.workload.joiners.retain(|j| *j != id);
                if brand_new {
                    let profile = world.profile.clone();
                    world
                        .cluster
                        .add(id, MemStorage::new(), &profile, &mut world.dice);
                    world.schedule_first_tick(id);
                    if world.dice.chance(750) {
                        world.workload.to_promote.insert(id);
                    }
                }
            }
            MembershipChange::PromoteLearner(id) => {
                world.workload.to_promote.remove(&id);
            }
            MembershipChange::Remove(_) => {}
        }
    }
    vec![leader]
}

fn transfer(world: &mut World) -> Vec<NodeId> {
    let Some(leader) = world.cluster.leader() else {
        return vec![];
    };
    let Some(view) = world.cluster.node(leader).view.as_ref() else {
        return vec![];
    };
    // Mostly a voter; sometimes any node, which the core must refuse
    // unless it is a voter.
    let candidates: Vec<NodeId> = if world.dice.chance(900) {
        view.membership.voters.iter().copied().collect()
    } else {
        world.cluster.nodes.keys().copied().collect()
    };
    let Some(target) = world.dice.pick(&candidates) else {
        return vec![];
    };
    let raft = world
        .cluster
        .node_mut(leader)
        .raft
        .as_mut()
        .expect("leader is up");
    let result = raft.transfer_leadership(target);
    if result.is_ok() && target != leader {
        world.history.counters.transfers += 1;
    }
    world.trace_operation(
        leader,
        format!("transfer_leadership({target}) -> {result:?}"),
        result.is_ok(),
    );
    vec![leader]
}

fn compact(world: &mut World) -> Vec<NodeId> {
    let Some(id) = random_up_node(world) else {
        return vec![];
    };
    let node = world.cluster.node_mut(id);
    let applied = node.app.state.applied;
    let data = node.app.state.encode();
    let result = node.raft.as_mut().expect("up").compact(applied, data);
    world.trace_operation(
        id,
        format!("compact({applied}) -> {result:?}"),
        result.is_ok(),
    );
    vec![id]
}
