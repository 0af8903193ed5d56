//! Persist before send (the `Ready` contract): a message leaves a node only
//! once what it promises is durable — its term (PreVote rounds aside), a
//! vote granted in that term, entries acknowledged as appended in that term.
//! A process that dies right after sending must not take a promise back.
//! Crashes inside a `Ready` are what give this a chance to fail.

use raftcfg_raft::LogStorage;

use super::Invariant;
use crate::sim::history::Note;
use crate::sim::world::World;

pub struct DurablePromises;

impl Invariant for DurablePromises {
    fn name(&self) -> &'static str {
        "persist before send"
    }

    fn check(&mut self, world: &World, notes: &[Note]) -> Result<(), String> {
        for note in notes {
            let Note::Sent {
                node,
                term,
                vote,
                matched,
            } = note
            else {
                continue;
            };
            let storage = world.cluster.node(*node).storage();
            let durable = storage.hard_state().expect("MemStorage");
            if *term > durable.term {
                return Err(format!(
                    "node {node} sent a message of term {term} while its disk holds term {}",
                    durable.term
                ));
            }
            // A promise of an earlier term was overtaken by the newer term.
            if let Some((term, candidate)) = vote
                && *term == durable.term
                && durable.vote != Some(*candidate)
            {
                return Err(format!(
                    "node {node} granted its vote in term {term} to {candidate} while its disk \
                     holds the vote {:?}",
                    durable.vote
                ));
            }
            let last = storage.last_index().expect("MemStorage");
            if let Some((term, index)) = matched
                && *term == durable.term
                && *index > last
            {
                return Err(format!(
                    "node {node} acknowledged entries up to {index} in term {term} while its \
                     disk's log ends at {last}"
                ));
            }
        }
        Ok(())
    }
}
