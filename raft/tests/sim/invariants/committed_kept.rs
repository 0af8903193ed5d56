//! Committed entries are kept: once a node's durable log holds a committed
//! entry (one that some node applied), it keeps it, or a snapshot that
//! covers it. Its copy may be what made the entry committed. Neither a
//! snapshot from the leader nor a late append may take it away.
//!
//! By log matching, holding committed entry `i` means holding every
//! committed entry before it, so one index per node is remembered: the
//! highest committed entry its durable log was seen to hold.

use std::collections::BTreeMap;

use raftcfg_raft::{LogIndex, LogStorage, NodeId};

use super::Invariant;
use crate::sim::history::Note;
use crate::sim::world::World;

#[derive(Default)]
pub struct CommittedKept {
    held: BTreeMap<NodeId, LogIndex>,
}

impl Invariant for CommittedKept {
    fn name(&self) -> &'static str {
        "committed entries kept"
    }

    fn check(&mut self, world: &World, notes: &[Note]) -> Result<(), String> {
        let ledger = &world.history.ledger;
        for note in notes {
            let Note::Persisted { node } = note else {
                continue;
            };
            let storage = world.cluster.node(*node).storage();
            let snapshot = storage.snapshot_metadata().expect("MemStorage").index;
            let last = storage.last_index().expect("MemStorage");
            let held = self.held.get(node).copied().unwrap_or_default();
            if held > snapshot {
                let committed = &ledger[&held];
                if storage.term(held) != Ok(committed.term) {
                    return Err(format!(
                        "node {node}'s log no longer holds committed entry {held}@{} (first \
                         applied by node {}); it ends at {last}, snapshot at {snapshot}",
                        committed.term, committed.first_node
                    ));
                }
            }
            let Some((&newest, _)) = ledger.last_key_value() else {
                continue;
            };
            let candidate = last.min(newest);
            if candidate > held
                && ledger
                    .get(&candidate)
                    .is_some_and(|c| storage.term(candidate) == Ok(c.term))
            {
                self.held.insert(*node, candidate);
            }
        }
        Ok(())
    }
}
