//! Fault injection during the fault phase: crashes (of any node or of the
//! leader, between `Ready`s or inside one, or by a failed write) with a
//! restart scheduled after some downtime, and partitions —
//! a symmetric split into two groups, the leader cut off from everyone, or
//! one-way cuts — that heal after a while. At most two partitions at once.

use raftcfg_raft::NodeId;

use crate::sim::cluster::ReadyCrash;
use crate::sim::disk::WriteFault;
use crate::sim::network::{Partition, split_links};
use crate::sim::trace::TraceEvent;
use crate::sim::world::{Event, World};

/// Injects one random fault; returns the nodes it touched.
pub fn inject(world: &mut World) -> Vec<NodeId> {
    let f = world.profile.faults;
    let weights = [
        f.nothing,
        f.crash,
        f.crash_leader,
        f.split,
        f.isolate_leader,
        f.one_way,
        f.crash_in_ready,
    ];
    match world.dice.weighted(&weights) {
        0 => vec![],
        1 => {
            let up = world.cluster.up_ids();
            match world.dice.pick(&up) {
                Some(id) => crash(world, id),
                None => vec![],
            }
        }
        2 => match world.cluster.leader() {
            Some(id) => crash(world, id),
            None => vec![],
        },
        6 => {
            let up = world.cluster.up_ids();
            if let Some(id) = world.dice.pick(&up) {
                plan_crash_in_ready(world, id);
            }
            vec![]
        }
        kind => {
            if world.network.active_partitions() < 2 {
                partition(world, kind);
            }
            vec![]
        }
    }
}

/// The node dies in its next `Ready`: after a few of its effects (before
/// or after its write, part-way through its messages, before applying), or
/// by a write that fails.
fn plan_crash_in_ready(world: &mut World, id: NodeId) {
    let plan = if world.dice.chance(200) {
        ReadyCrash::WriteFails(if world.dice.chance(500) {
            WriteFault::Lost
        } else {
            WriteFault::Landed
        })
    } else {
        ReadyCrash::After(world.dice.range(0, 5) as u32)
    };
    world.cluster.node_mut(id).crash_in_ready = Some(plan);
    world.trace(TraceEvent::Phase("a process will die in its next Ready"));
}

/// Crashes a running node and schedules its restart.
pub fn crash(world: &mut World, id: NodeId) -> Vec<NodeId> {
    world.crash(id);
    let (low, high) = world.profile.downtime_ticks;
    let downtime = world.dice.range(low, high);
    let delay = world.ticks(downtime);
    world.schedule(delay, Event::Restart(id));
    vec![id]
}

fn partition(world: &mut World, kind: usize) {
    let mut nodes: Vec<NodeId> = world
        .cluster
        .nodes
        .values()
        .filter(|n| !n.decommissioned)
        .map(|n| n.id)
        .collect();
    if nodes.len() < 2 {
        return;
    }
    let partition = match kind {
        3 => {
            world.dice.shuffle(&mut nodes);
            let minority = world.dice.range(1, (nodes.len() as u64 / 2).max(1)) as usize;
            let (group, rest) = nodes.split_at(minority);
            Partition {
                links: split_links(group, rest),
                description: format!("split {group:?} | {rest:?}"),
            }
        }
        4 => {
            let Some(leader) = world.cluster.leader() else {
                return;
            };
            let rest: Vec<NodeId> = nodes.iter().copied().filter(|n| *n != leader).collect();
            Partition {
                links: split_links(&[leader], &rest),
                description: format!("isolate leader {leader}"),
            }
        }
        _ => {
            let a = world.dice.pick(&nodes).expect("two nodes");
            let others: Vec<NodeId> = nodes.iter().copied().filter(|n| *n != a).collect();
            match world.dice.range(0, 2) {
                0 => Partition {
                    links: others.iter().map(|b| (a, *b)).collect(),
                    description: format!("{a} cannot send"),
                },
                1 => Partition {
                    links: others.iter().map(|b| (*b, a)).collect(),
                    description: format!("{a} cannot receive"),
                },
                _ => {
                    let b = world.dice.pick(&others).expect("another node");
                    Partition {
                        links: [(a, b)].into_iter().collect(),
                        description: format!("link {a}->{b} cut"),
                    }
                }
            }
        }
    };
    let description = partition.description.clone();
    let id = world.network.cut(partition);
    world.history.counters.partitions += 1;
    world.trace(TraceEvent::Partition(id, description));
    let (low, high) = world.profile.partition_ticks;
    let duration = world.dice.range(low, high);
    let delay = world.ticks(duration);
    world.schedule(delay, Event::Heal(id));
}
