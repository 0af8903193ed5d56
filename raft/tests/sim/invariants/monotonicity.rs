//! Monotonicity: a running node's term and commit index never decrease;
//! its durable hard state's term and commit never decrease; and a node
//! restarts with at least the term and commit that were durable when it
//! crashed.

use std::collections::BTreeMap;

use raftcfg_raft::{HardState, LogIndex, LogStorage, NodeId, Term};

use super::Invariant;
use crate::sim::history::Note;
use crate::sim::world::World;

#[derive(Default)]
pub struct Monotonicity {
    /// Per node: incarnation, term and commit last observed.
    running: BTreeMap<NodeId, (u32, Term, LogIndex)>,
    /// Per node: the durable hard state last observed.
    durable: BTreeMap<NodeId, HardState>,
}

impl Invariant for Monotonicity {
    fn name(&self) -> &'static str {
        "monotonicity"
    }

    fn check(&mut self, world: &World, notes: &[Note]) -> Result<(), String> {
        for note in notes {
            match note {
                Note::Status {
                    node,
                    incarnation,
                    term,
                    commit,
                    ..
                } => {
                    let (floor_term, floor_commit, why) = match self.running.get(node) {
                        Some((i, t, c)) if i == incarnation => (*t, *c, "while running"),
                        _ => {
                            let durable = self.durable.get(node).copied().unwrap_or_default();
                            (
                                durable.term,
                                durable.commit,
                                "below its durable state after a restart",
                            )
                        }
                    };
                    if *term < floor_term || *commit < floor_commit {
                        return Err(format!(
                            "node {node} went from term {floor_term} commit {floor_commit} to \
                             term {term} commit {commit} {why}"
                        ));
                    }
                    self.running.insert(*node, (*incarnation, *term, *commit));
                }
                Note::Persisted { node } => {
                    let now = world
                        .cluster
                        .node(*node)
                        .storage()
                        .hard_state()
                        .expect("MemStorage");
                    let before = self.durable.get(node).copied().unwrap_or_default();
                    if now.term < before.term || now.commit < before.commit {
                        return Err(format!(
                            "node {node} persisted term {} commit {} over term {} commit {}",
                            now.term, now.commit, before.term, before.commit
                        ));
                    }
                    self.durable.insert(*node, now);
                }
                Note::Crashed { node, durable } | Note::Restarted { node, durable } => {
                    let before = self.durable.get(node).copied().unwrap_or_default();
                    if durable.term < before.term || durable.commit < before.commit {
                        return Err(format!(
                            "node {node}'s durable state went from term {} commit {} to term {} \
                             commit {} across a crash",
                            before.term, before.commit, durable.term, durable.commit
                        ));
                    }
                    self.durable.insert(*node, *durable);
                }
                _ => {}
            }
        }
        Ok(())
    }
}
