//! Applied state: every node's application state equals the state reached
//! by applying the committed log up to its applied index — the running hash
//! of applied entries and the hash of the key-value contents match the
//! ledger at that index, after applying entries and after installing a
//! snapshot. Also fails when the application cannot use what the core
//! handed it (an entry out of order, unreadable snapshot data).

use super::Invariant;
use crate::sim::history::Note;
use crate::sim::world::World;

pub struct AppliedState;

impl Invariant for AppliedState {
    fn name(&self) -> &'static str {
        "applied state"
    }

    fn check(&mut self, world: &World, notes: &[Note]) -> Result<(), String> {
        for note in notes {
            let (node, index, chain, digest, how) = match note {
                Note::Applied {
                    node,
                    index,
                    chain,
                    digest,
                    ..
                } => (node, index, chain, digest, "applying entries"),
                Note::SnapshotInstalled {
                    node,
                    index,
                    chain,
                    digest,
                } => (node, index, chain, digest, "installing a snapshot"),
                Note::ApplicationRefused { node, reason } => {
                    return Err(format!("node {node}'s application refused: {reason}"));
                }
                _ => continue,
            };
            let Some(expected) = world.history.ledger.get(index) else {
                return Err(format!(
                    "node {node} installed a snapshot at {index}, which no node applied"
                ));
            };
            if expected.chain != *chain || expected.digest != *digest {
                return Err(format!(
                    "node {node} reached state (chain {chain:#x}, contents {digest:#x}) at \
                     index {index} by {how}; node {} reached (chain {:#x}, contents {:#x})",
                    expected.first_node, expected.chain, expected.digest
                ));
            }
        }
        Ok(())
    }
}
