//! [`Agenda`]: what is scheduled to happen, in order of sim time (ties in
//! the order they were scheduled).

use std::collections::BTreeMap;

use raftcfg_raft::{LogIndex, Message, NodeId, Term};

/// Something scheduled to happen.
pub enum Event {
    /// A node's clock ticks (ignored if the node restarted meanwhile).
    Tick {
        node: NodeId,
        incarnation: u32,
    },
    /// A node carries out one `Ready`.
    Ready {
        node: NodeId,
        incarnation: u32,
    },
    /// A leader's sync of its log, up to the entry (`index`, `term`), ends.
    Synced {
        node: NodeId,
        incarnation: u32,
        index: LogIndex,
        term: Term,
    },
    /// A message arrives.
    Deliver(Message),
    /// The workload does something.
    Operation,
    /// A fault may strike.
    Fault,
    Restart(NodeId),
    /// A partition ends.
    Heal(u64),
    /// A removed node is shut down for good.
    Decommission(NodeId),
}

#[derive(Default)]
pub struct Agenda {
    events: BTreeMap<(u64, u64), Event>,
    seq: u64,
}

impl Agenda {
    pub fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    /// The earliest event and its time.
    pub fn pop(&mut self) -> Option<(u64, Event)> {
        self.events.pop_first().map(|((at, _), event)| (at, event))
    }
}
