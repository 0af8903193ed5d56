//! Log matching (Raft §5.3): if two durable logs hold an entry with the same
//! index and term, the entries are identical and so are all earlier entries
//! both still hold.
//!
//! Checked incrementally and over the whole run: every `(index, term)` that
//! becomes durable anywhere must always carry the same payload and follow
//! an entry of the same term. By induction on the index, that is log
//! matching for every pair of logs at every moment (back to where either
//! log is compacted). After each `Ready` the node's durable log is compared
//! with what was last seen of it, and only entries that changed are looked at.

use std::collections::BTreeMap;

use raftcfg_raft::{LogIndex, LogStorage, NodeId, Term};

use super::Invariant;
use crate::sim::history::Note;
use crate::sim::state_machine::fingerprint;
use crate::sim::world::World;

/// What a node's durable log held when last scanned.
#[derive(Default)]
struct Shadow {
    first: LogIndex,
    terms: Vec<Term>,
}

impl Shadow {
    fn term(&self, index: LogIndex) -> Option<Term> {
        let offset = index.get().checked_sub(self.first.get())?;
        self.terms.get(offset as usize).copied()
    }
}

/// The first sighting of an `(index, term)`.
struct Sighting {
    fingerprint: u64,
    prev_term: Term,
    node: NodeId,
}

#[derive(Default)]
pub struct LogMatching {
    shadows: BTreeMap<NodeId, Shadow>,
    seen: BTreeMap<(LogIndex, Term), Sighting>,
}

impl Invariant for LogMatching {
    fn name(&self) -> &'static str {
        "log matching"
    }

    fn check(&mut self, world: &World, notes: &[Note]) -> Result<(), String> {
        for note in notes {
            let Note::Persisted { node } = note else {
                continue;
            };
            let storage = world.cluster.node(*node).storage();
            let first = storage.first_index().expect("MemStorage");
            let last = storage.last_index().expect("MemStorage");
            let terms: Vec<Term> = (first.get()..=last.get())
                .map(|i| storage.term(LogIndex(i)).expect("term of a stored entry"))
                .collect();
            let shadow = self.shadows.entry(*node).or_default();
            let changed = terms
                .iter()
                .enumerate()
                .map(|(offset, term)| (first.plus(offset as u64), *term))
                .find(|(index, term)| shadow.term(*index) != Some(*term))
                .map(|(index, _)| index);
            *shadow = Shadow { first, terms };
            let Some(from) = changed else {
                continue;
            };
            let entries = storage
                .entries(from, last.next(), u64::MAX)
                .expect("stored entries");
            let mut prev_term = storage.term(from.prev()).expect("term before an entry");
            for entry in entries {
                let fp = fingerprint(&entry.payload);
                let sighting = self
                    .seen
                    .entry((entry.index, entry.term))
                    .or_insert(Sighting {
                        fingerprint: fp,
                        prev_term,
                        node: *node,
                    });
                if sighting.fingerprint != fp {
                    return Err(format!(
                        "entry {}@{} differs between node {} and node {node}: {:?}",
                        entry.index, entry.term, sighting.node, entry.payload
                    ));
                }
                if sighting.prev_term != prev_term {
                    return Err(format!(
                        "entry {}@{} follows an entry of term {} on node {} but of term \
                         {prev_term} on node {node}",
                        entry.index, entry.term, sighting.prev_term, sighting.node
                    ));
                }
                prev_term = entry.term;
            }
        }
        Ok(())
    }
}
