//! ReadIndex linearizability: when a read is served (its `ReadState`
//! arrived and the application applied up to its index), the application
//! has applied every write acknowledged before the read was issued.

use super::Invariant;
use crate::sim::history::Note;
use crate::sim::world::World;

pub struct ReadLinearizability;

impl Invariant for ReadLinearizability {
    fn name(&self) -> &'static str {
        "ReadIndex linearizability"
    }

    fn check(&mut self, world: &World, notes: &[Note]) -> Result<(), String> {
        for note in notes {
            let Note::ReadServed {
                node,
                context,
                read_index,
                applied,
            } = note
            else {
                continue;
            };
            let issued = world.history.reads[context];
            if *applied < issued.max_acked {
                return Err(format!(
                    "read {} issued on node {} at step {} was served on node {node} at read \
                     index {read_index} with applied {applied}, but a write at index {} was \
                     acknowledged before it was issued",
                    context.0, issued.node, issued.step, issued.max_acked
                ));
            }
        }
        Ok(())
    }
}
