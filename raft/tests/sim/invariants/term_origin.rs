//! Terms start with a campaign: a term first appears at a node that
//! campaigns in it (or leads it, when it is the only voter and wins inside
//! one tick). Every other node reaches a term from a message of a node
//! that already had it; PreVote moves nobody's term.

use raftcfg_raft::{Role, Term};

use super::Invariant;
use crate::sim::history::Note;
use crate::sim::world::World;

#[derive(Default)]
pub struct TermOrigin {
    highest: Term,
}

impl Invariant for TermOrigin {
    fn name(&self) -> &'static str {
        "terms start with a campaign"
    }

    fn check(&mut self, _world: &World, notes: &[Note]) -> Result<(), String> {
        for note in notes {
            let Note::Status {
                node, role, term, ..
            } = note
            else {
                continue;
            };
            if *term <= self.highest {
                continue;
            }
            if !matches!(role, Role::Candidate | Role::Leader) {
                return Err(format!(
                    "term {term} first appeared at node {node} as {role:?}, not at a candidate \
                     (the highest term before was {})",
                    self.highest
                ));
            }
            self.highest = *term;
        }
        Ok(())
    }
}
