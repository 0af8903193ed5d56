//! At most one uncommitted configuration entry: a leader's log never holds
//! two configuration entries after the commit index.
//!
//! "Committed" is the highest commit index any node has had: a new leader
//! may not yet know that its predecessor committed a configuration entry,
//! but that entry is committed all the same.

use raftcfg_raft::{EntryPayload, LogStorage, Role};

use super::Invariant;
use crate::sim::history::Note;
use crate::sim::world::World;

pub struct SinglePendingConfig;

impl Invariant for SinglePendingConfig {
    fn name(&self) -> &'static str {
        "at most one uncommitted configuration entry"
    }

    fn check(&mut self, world: &World, notes: &[Note]) -> Result<(), String> {
        for note in notes {
            let Note::Persisted { node } = note else {
                continue;
            };
            let sim_node = world.cluster.node(*node);
            if sim_node.view.as_ref().map(|v| v.role) != Some(Role::Leader) {
                continue;
            }
            let storage = sim_node.storage();
            let first = storage.first_index().expect("MemStorage");
            let last = storage.last_index().expect("MemStorage");
            let from = world.history.max_commit.next().max(first);
            if from > last {
                continue;
            }
            let pending: Vec<String> = storage
                .entries(from, last.next(), u64::MAX)
                .expect("stored entries")
                .into_iter()
                .filter_map(|e| match e.payload {
                    EntryPayload::Config(change) => {
                        Some(format!("{}@{} {:?}", e.index, e.term, change.change))
                    }
                    _ => None,
                })
                .collect();
            if pending.len() > 1 {
                return Err(format!(
                    "leader {node} holds {} uncommitted configuration entries (commit {}): {}",
                    pending.len(),
                    world.history.max_commit,
                    pending.join(", ")
                ));
            }
        }
        Ok(())
    }
}
