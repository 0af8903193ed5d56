//! State machine safety (Raft §5.4.3): no two nodes ever apply different
//! entries at the same index. Compared against the ledger of entries as
//! first applied anywhere.

use super::Invariant;
use crate::sim::history::Note;
use crate::sim::world::World;

pub struct StateMachineSafety;

impl Invariant for StateMachineSafety {
    fn name(&self) -> &'static str {
        "state machine safety"
    }

    fn check(&mut self, world: &World, notes: &[Note]) -> Result<(), String> {
        for note in notes {
            let Note::Applied {
                node,
                index,
                term,
                fingerprint,
                ..
            } = note
            else {
                continue;
            };
            let first = &world.history.ledger[index];
            if first.term != *term || first.fingerprint != *fingerprint {
                return Err(format!(
                    "node {node} applied entry {index}@{term} (fingerprint {fingerprint:#x}) \
                     but node {} applied {index}@{} (fingerprint {:#x})",
                    first.first_node, first.term, first.fingerprint
                ));
            }
        }
        Ok(())
    }
}
