//! After the fault phase: heal everything, then require the cluster to
//! converge — one leader among the members of its configuration, every
//! member running, with the same commit index, applied up to it, with the
//! same application state — and then to serve a write again, and to hand
//! leadership over in one election. [`liveness`] holds the bounds.

use std::fmt::Write as _;

use raftcfg_raft::{EntryPayload, LogIndex, NodeId, Role};

use crate::sim::invariants::{Invariants, Violation};
use crate::sim::liveness::{self, CONVERGENCE_TIMEOUTS, Healed, LeaderOverlap, TRANSFER_TIMEOUTS};
use crate::sim::state_machine::{command, fingerprint};
use crate::sim::trace::TraceEvent;
use crate::sim::workload;
use crate::sim::world::World;

// How long convergence may take (`liveness::CONVERGENCE_TIMEOUTS`), in
// election timeouts of the slowest clock. After healing, an election needs
// at most about two timeouts (PreVote, then the vote; a split vote repeats
// with probability well under one half thanks to the randomized timeouts);
// a far-behind member then gets a snapshot and at most a compaction
// threshold's worth of entries (<= 200, at least two per round trip, a
// round trip taking well under one tick, about two with a slow disk); a
// pending configuration change and the final write each need one more
// round.

/// The final write and where it was proposed.
struct FinalWrite {
    index: LogIndex,
    fingerprint: u64,
    value: String,
}

/// Heals the faults and runs until the cluster converged and served a
/// write, then hands leadership over; checks the liveness bounds.
pub fn heal_and_converge(world: &mut World, invariants: &mut Invariants) -> Result<(), Violation> {
    world.heal();
    let healed = Healed::now(world);
    let mut overlap = LeaderOverlap::default();
    converge(world, invariants, &healed, &mut overlap)?;
    healed.check_churn(world)?;
    transfer(world, invariants, &mut overlap)
}

fn converge(
    world: &mut World,
    invariants: &mut Invariants,
    healed: &Healed,
    overlap: &mut LeaderOverlap,
) -> Result<(), Violation> {
    let deadline = healed.at + liveness::timeouts(world, CONVERGENCE_TIMEOUTS);
    let mut pending: Option<FinalWrite> = None;
    let mut converged_once = false;
    while world.now <= deadline {
        world.step(invariants)?;
        overlap.check(world)?;
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
                    let tenths = liveness::tenths_of_timeout(world, world.now - healed.at);
                    let worst = &mut world.history.counters.worst;
                    worst.convergence_tenths = worst.convergence_tenths.max(tenths);
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
            "the cluster did not {} within {CONVERGENCE_TIMEOUTS} election timeouts of \
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

/// Hands leadership to another voter right after proposing a few writes,
/// so the target lags when asked. It must lead, alone, in the next term
/// (one election), with those writes committed, within the bound; a
/// transfer the leader gave up is asked for again.
fn transfer(
    world: &mut World,
    invariants: &mut Invariants,
    overlap: &mut LeaderOverlap,
) -> Result<(), Violation> {
    let Some(leader) = world.cluster.leader() else {
        return Ok(());
    };
    let view = world
        .cluster
        .node(leader)
        .view
        .clone()
        .expect("a running leader");
    let others: Vec<NodeId> = view
        .membership
        .voters
        .iter()
        .copied()
        .filter(|v| *v != leader)
        .collect();
    let Some(target) = world.dice.pick(&others) else {
        return Ok(());
    };
    let failed = |detail: String| Violation {
        invariant: "liveness",
        detail,
    };
    let mut writes = Vec::new();
    for _ in 0..world.dice.range(1, 3) {
        let value = format!("seed{}-{}", world.seed, world.workload.unique_value());
        let index = workload::propose(world, leader, "transfer", &value).map_err(|e| {
            failed(format!(
                "the converged leader {leader} refused a write: {e}"
            ))
        })?;
        let fingerprint = fingerprint(&EntryPayload::Command(command("transfer", &value)));
        writes.push((index, fingerprint));
    }
    let started = world.now;
    let mut attempts = 0;
    let deadline = started + liveness::timeouts(world, TRANSFER_TIMEOUTS);
    let next_term = view.term.next();
    while world.now <= deadline {
        // The leader gives a transfer up after an election timeout (a slow
        // disk and reordered appends can make catching up take longer);
        // it stays leader, and asking again must work.
        let status = world.cluster.node(leader).raft.as_ref().map(|r| r.status());
        if let Some(status) = status.filter(|s| s.term == view.term && s.role == Role::Leader)
            && status.transferring_to.is_none()
        {
            attempts += 1;
            let raft = world.cluster.node_mut(leader).raft.as_mut().expect("up");
            let result = raft.transfer_leadership(target);
            world.trace_operation(
                leader,
                format!("transfer_leadership({target}) -> {result:?}"),
                result.is_ok(),
            );
            result.map_err(|e| failed(format!("the converged leader refused a transfer: {e}")))?;
        }
        world.step(invariants)?;
        overlap.check(world)?;
        if world.history.max_term > next_term {
            return Err(failed(format!(
                "the transfer from {leader} to {target} in term {} took more than one \
                 election (term {} reached)",
                view.term, world.history.max_term
            )));
        }
        for (index, fingerprint) in &writes {
            if world
                .history
                .ledger
                .get(index)
                .is_some_and(|c| c.fingerprint != *fingerprint)
            {
                return Err(failed(format!(
                    "a write proposed at {index} before the transfer to {target} was lost"
                )));
            }
        }
        let target_leads = world.cluster.leader() == Some(target)
            && world.cluster.node(target).view.as_ref().map(|v| v.term) == Some(next_term);
        let committed = writes
            .iter()
            .all(|(index, _)| world.history.ledger.contains_key(index));
        if target_leads && committed && !overlap.ongoing() {
            world.trace(TraceEvent::Phase("leadership transferred"));
            let tenths = liveness::tenths_of_timeout(world, world.now - started);
            let worst = &mut world.history.counters.worst;
            worst.transfer_tenths = worst.transfer_tenths.max(tenths);
            return Ok(());
        }
    }
    Err(failed(format!(
        "the transfer from {leader} to {target} did not finish within {TRANSFER_TIMEOUTS} \
         election timeouts ({attempts} attempts)\n{}",
        describe(world)
    )))
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
