//! After the fault phase: heal everything, then require the cluster to
//! converge — one leader among the members of its configuration, every
//! member running, with the same commit index, applied up to it, with the
//! same application state — and then to serve a write again.

use std::fmt::Write as _;

use raftcfg_raft::{EntryPayload, LogIndex, NodeId, Role};

use crate::sim::invariants::{Invariants, Violation};
use crate::sim::state_machine::{command, fingerprint};
use crate::sim::trace::TraceEvent;
use crate::sim::workload;
use crate::sim::world::World;

/// How long convergence may take, in election timeouts of the slowest
/// clock. After healing, an election needs at most about two timeouts
/// (PreVote, then the vote; a split vote repeats with probability well
/// under one half thanks to the randomized timeouts); a far-behind member
/// then gets a snapshot of a few small chunks (one chunk per round trip, a
/// round trip taking well under one tick, about two with a slow disk) and
/// at most a compaction threshold's worth of entries (≤ 200, at least two
/// per round trip); a pending configuration change and the final write
/// each need one more round. That is under 20 timeouts even when these
/// line up on the slowest knobs; 50 leaves a wide margin, so running out
/// means the cluster is stuck.
const BOUND_ELECTION_TIMEOUTS: u64 = 50;

/// The final write and where it was proposed.
struct FinalWrite {
    index: LogIndex,
    fingerprint: u64,
    value: String,
}

/// Heals the faults and runs until the cluster converged and served a write.
pub fn heal_and_converge(world: &mut World, invariants: &mut Invariants) -> Result<(), Violation> {
    world.heal();
    let timeout_units =
        u64::from(world.profile.election_timeout_ticks) * world.profile.tick_units.1;
    let healed_at = world.now;
    let deadline = healed_at + BOUND_ELECTION_TIMEOUTS * timeout_units;
    let mut pending: Option<FinalWrite> = None;
    let mut converged_once = false;
    while world.now <= deadline {
        world.step(invariants)?;
        match &pending {
            None => {
                if let Some(leader) = converged(&*world) {
                    converged_once = true;
                    pending = propose_final(world, leader);
                }
            }
            Some(write) => match final_write_outcome(world, write) {
                Outcome::Applied => {
                    world.trace(TraceEvent::Phase("converged and served the final write"));
                    world.history.counters.slowest_convergence_tenths =
                        (world.now - healed_at) * 10 / timeout_units;
                    return Ok(());
                }
                Outcome::Lost => pending = None,
                Outcome::Waiting => {}
            },
        }
    }
    Err(Violation {
        invariant: "convergence",
        detail: format!(
            "the cluster did not {} within {BOUND_ELECTION_TIMEOUTS} election timeouts of \
             healing\n{}",
            if converged_once {
                "apply the final write everywhere"
            } else {
                "converge"
            },
            describe(world)
        ),
    })
}

/// The leader, if the cluster has converged.
fn converged(world: &World) -> Option<NodeId> {
    let leader = world.cluster.leader()?;
    let leader_node = world.cluster.node(leader);
    let view = leader_node.view.as_ref()?;
    if view.last_index != view.commit {
        return None;
    }
    let (commit, state) = (view.commit, &leader_node.app.state);
    for member in view.membership.members() {
        let node = world.cluster.nodes.get(&member)?;
        // Healing restarted every node but those whose removal committed,
        // so every member runs (a stopped one means it never converges).
        let member_view = node.view.as_ref()?;
        if member != leader && member_view.role == Role::Leader {
            return None;
        }
        if member_view.commit != commit
            || node.app.state.applied != commit
            || node.app.state.chain != state.chain
            || node.app.state.digest != state.digest
        {
            return None;
        }
    }
    Some(leader)
}

fn propose_final(world: &mut World, leader: NodeId) -> Option<FinalWrite> {
    let value = format!("seed{}-{}", world.seed, world.workload.unique_value());
    let index = workload::propose(world, leader, "final", &value).ok()?;
    Some(FinalWrite {
        index,
        fingerprint: fingerprint(&EntryPayload::Command(command("final", &value))),
        value,
    })
}

enum Outcome {
    Applied,
    Lost,
    Waiting,
}

fn final_write_outcome(world: &World, write: &FinalWrite) -> Outcome {
    match world.history.ledger.get(&write.index) {
        None => return Outcome::Waiting,
        Some(c) if c.fingerprint != write.fingerprint => return Outcome::Lost,
        Some(_) => {}
    }
    let Some(leader) = world.cluster.leader() else {
        return Outcome::Waiting;
    };
    let Some(view) = &world.cluster.node(leader).view else {
        return Outcome::Waiting;
    };
    let everywhere = view.membership.members().all(|id| {
        world.cluster.nodes.get(&id).is_some_and(|n| {
            n.app.state.applied >= write.index
                && n.app.state.kv.get("final").map(String::as_str) == Some(&write.value)
        })
    });
    if everywhere {
        Outcome::Applied
    } else {
        Outcome::Waiting
    }
}

/// Every node's state, for a convergence failure.
fn describe(world: &World) -> String {
    let mut out = String::new();
    for node in world.cluster.nodes.values() {
        let state = &node.app.state;
        let _ = write!(out, "  node {}: ", node.id);
        match &node.raft {
            None if node.decommissioned => out.push_str("decommissioned"),
            None => out.push_str("down"),
            Some(raft) => {
                let s = raft.status();
                let _ = write!(
                    out,
                    "{:?} term {} leader {:?} commit {} applied {} last {} snapshot {} \
                     voters {:?} learners {:?} pending change {} transfer {:?} drops {:?}",
                    s.role,
                    s.term,
                    s.leader_id,
                    s.commit,
                    s.applied,
                    s.last_index,
                    s.snapshot_index,
                    s.membership.voters,
                    s.membership.learners,
                    s.membership_change_pending,
                    s.transferring_to,
                    s.drops,
                );
                for (id, p) in &s.progress {
                    let _ = write!(
                        out,
                        "\n      progress {id}: matched {} next {} snapshotting {}",
                        p.matched, p.next, p.snapshotting
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "\n      app applied {} chain {:#x} contents {:#x}",
            state.applied, state.chain, state.digest
        );
    }
    out
}
