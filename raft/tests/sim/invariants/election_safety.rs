//! Election safety (Raft §5.2): at most one leader per term, over the
//! whole run and across crashes.
//!
//! A leader counts once its term is durable. A node that can win alone (it
//! is the only voter of its configuration) becomes leader inside one
//! `tick`, in memory; everything it does as leader leaves through a
//! `Ready`, which persists its term and vote first. If it crashes before
//! that `Ready`, its leadership had no effect and its term was never
//! recorded, so a later election may legitimately win the same term.

use std::collections::BTreeMap;

use raftcfg_raft::{NodeId, Role, Term};

use super::Invariant;
use crate::sim::history::Note;
use crate::sim::world::World;

#[derive(Default)]
pub struct ElectionSafety {
    leaders: BTreeMap<Term, NodeId>,
}

impl Invariant for ElectionSafety {
    fn name(&self) -> &'static str {
        "election safety"
    }

    fn check(&mut self, _world: &World, notes: &[Note]) -> Result<(), String> {
        for note in notes {
            let Note::Status {
                node,
                role: Role::Leader,
                term,
                durable_term,
                ..
            } = note
            else {
                continue;
            };
            if durable_term != term {
                continue;
            }
            let first = *self.leaders.entry(*term).or_insert(*node);
            if first != *node {
                return Err(format!(
                    "nodes {first} and {node} both became leader in term {term}"
                ));
            }
        }
        Ok(())
    }
}
