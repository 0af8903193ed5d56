//! Leader completeness (Raft §5.4): every entry any node has applied (so
//! committed) is in the log of every leader of a later term, same term and
//! payload. Indices a leader has compacted are covered by its snapshot,
//! whose index and term must then match.
//!
//! "Later" is judged against an upper bound of the committing term: the
//! highest term seen anywhere when the entry was first applied. A new
//! leader's log is checked at its first `Ready` as leader, when everything
//! it held at its election is durable.

use std::collections::BTreeMap;

use raftcfg_raft::{LogStorage, NodeId, Term};

use super::Invariant;
use crate::sim::history::Note;
use crate::sim::state_machine::fingerprint;
use crate::sim::world::World;

#[derive(Default)]
pub struct LeaderCompleteness {
    /// Leaders waiting for their first `Ready`.
    pending: BTreeMap<NodeId, Term>,
}

impl LeaderCompleteness {
    fn verify(world: &World, node: NodeId, term: Term) -> Result<(), String> {
        let storage = world.cluster.node(node).storage();
        let snapshot = storage.snapshot_metadata().expect("MemStorage");
        let first = storage.first_index().expect("MemStorage");
        let last = storage.last_index().expect("MemStorage");
        let entries = if first <= last {
            storage
                .entries(first, last.next(), u64::MAX)
                .expect("stored entries")
        } else {
            Vec::new()
        };
        for (index, committed) in world.history.ledger.range(snapshot.index..) {
            if committed.committed_by_term >= term {
                continue;
            }
            let holds = if *index == snapshot.index {
                snapshot.term == committed.term
            } else if *index > last {
                false
            } else {
                let entry = &entries[(index.get() - first.get()) as usize];
                entry.term == committed.term && fingerprint(&entry.payload) == committed.fingerprint
            };
            if !holds {
                let found = match entries.get((index.get().wrapping_sub(first.get())) as usize) {
                    Some(e) if *index >= first => format!("{}@{} {:?}", e.index, e.term, e.payload),
                    _ if *index == snapshot.index => {
                        format!("snapshot {}@{}", snapshot.index, snapshot.term)
                    }
                    _ => format!("nothing (log ends at {last})"),
                };
                return Err(format!(
                    "node {node}, leader of term {term}, lacks entry {index}@{} (committed by \
                     term {} at the latest, first applied by node {}); its log has {found}",
                    committed.term, committed.committed_by_term, committed.first_node
                ));
            }
        }
        Ok(())
    }
}

impl Invariant for LeaderCompleteness {
    fn name(&self) -> &'static str {
        "leader completeness"
    }

    fn check(&mut self, world: &World, notes: &[Note]) -> Result<(), String> {
        for note in notes {
            match note {
                Note::BecameLeader { node, term } => {
                    self.pending.insert(*node, *term);
                }
                Note::Crashed { node, .. } => {
                    self.pending.remove(node);
                }
                Note::Persisted { node } => {
                    if let Some(term) = self.pending.remove(node) {
                        Self::verify(world, *node, term)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
