//! [`App`]: the simulated application on one node. It implements the
//! core's [`ReadyHandler`], so every `Ready` is carried out by the
//! production `handle_ready`. It owns the durable [`StateMachine`] and the
//! volatile client-side bookkeeping (proposals awaiting their
//! acknowledgement, reads awaiting their `ReadState`), which a crash loses.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use raftcfg_raft::{
    Entry, EntryPayload, LogIndex, Message, NodeId, ReadContext, ReadState, ReadyHandler, Snapshot,
};

use crate::sim::disk::Fuse;
use crate::sim::history::Note;
use crate::sim::state_machine::StateMachine;

/// What one `Ready` did, for the trace.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadyDone {
    pub sent: usize,
    pub applied: Option<(LogIndex, LogIndex)>,
    pub snapshot: Option<LogIndex>,
    pub reads_released: usize,
    pub reads_dropped: usize,
}

/// One node's application.
pub struct App {
    id: NodeId,
    /// Durable: survives a crash (but see `synced`).
    pub state: StateMachine,
    /// With deferred leader syncs, the state when the disk last had
    /// nothing unsynced. The node's state shares the log's write-ahead log,
    /// so a crash that loses log writes loses the state applied after them:
    /// a state ahead of the durable commit index goes back to this.
    pub synced: Option<StateMachine>,
    /// Messages to route once the `Ready` is done.
    pub outbox: Vec<Message>,
    /// Observations for the current step.
    pub notes: Vec<Note>,
    pub done: ReadyDone,
    /// Writes proposed on this node, by the index `propose` returned.
    proposals: BTreeMap<LogIndex, Bytes>,
    /// Reads issued on this node and not yet served.
    issued: BTreeSet<ReadContext>,
    /// Reads whose `ReadState` arrived, waiting for the application.
    waiting: Vec<ReadState>,
    /// Shared with the disk: nothing takes effect once it has burnt down.
    fuse: Fuse,
}

impl App {
    pub fn new(id: NodeId, fuse: Fuse) -> Self {
        Self {
            id,
            state: StateMachine::default(),
            synced: None,
            outbox: Vec::new(),
            notes: Vec::new(),
            done: ReadyDone::default(),
            proposals: BTreeMap::new(),
            issued: BTreeSet::new(),
            waiting: Vec::new(),
            fuse,
        }
    }

    /// The process died: only the state machine survives.
    pub fn crash(&mut self) {
        self.outbox.clear();
        self.proposals.clear();
        self.issued.clear();
        self.waiting.clear();
    }

    pub fn proposed(&mut self, index: LogIndex, command: Bytes) {
        self.proposals.insert(index, command);
    }

    pub fn read_issued(&mut self, context: ReadContext) {
        self.issued.insert(context);
    }

    fn serve_reads(&mut self) {
        let applied = self.state.applied;
        let (ready, waiting): (Vec<ReadState>, Vec<ReadState>) =
            self.waiting.drain(..).partition(|r| r.index <= applied);
        self.waiting = waiting;
        for read in ready {
            self.notes.push(Note::ReadServed {
                node: self.id,
                context: read.context,
                read_index: read.index,
                applied,
            });
        }
    }
}

impl ReadyHandler for App {
    fn send(&mut self, messages: Vec<Message>) {
        for message in messages {
            if !self.fuse.spend() {
                return;
            }
            self.done.sent += 1;
            self.outbox.push(message);
        }
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) {
        if !self.fuse.spend() {
            return;
        }
        let index = snapshot.metadata.index;
        self.done.snapshot = Some(index);
        if let Err(reason) = self.state.install(snapshot) {
            self.notes.push(Note::ApplicationRefused {
                node: self.id,
                reason: format!("snapshot at {index}: {reason}"),
            });
            return;
        }
        // Proposals the snapshot covers have an unknown outcome: the client
        // never hears back about them.
        self.proposals.retain(|i, _| *i > index);
        self.notes.push(Note::SnapshotInstalled {
            node: self.id,
            index,
            chain: self.state.chain,
            digest: self.state.digest,
        });
        self.serve_reads();
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            self.done.applied = Some((first.index, last.index));
        }
        for entry in entries {
            if !self.fuse.spend() {
                return;
            }
            let fingerprint = match self.state.apply(&entry) {
                Ok(fp) => fp,
                Err(reason) => {
                    self.notes.push(Note::ApplicationRefused {
                        node: self.id,
                        reason,
                    });
                    return;
                }
            };
            self.notes.push(Note::Applied {
                node: self.id,
                index: entry.index,
                term: entry.term,
                fingerprint,
                chain: self.state.chain,
                digest: self.state.digest,
                command: matches!(entry.payload, EntryPayload::Command(_)),
                config: match &entry.payload {
                    EntryPayload::Config(change) => Some(change.config.clone()),
                    _ => None,
                },
            });
            if let Some(command) = self.proposals.remove(&entry.index) {
                let ours = matches!(&entry.payload, EntryPayload::Command(c) if *c == command);
                self.notes.push(if ours {
                    Note::WriteAcked {
                        node: self.id,
                        index: entry.index,
                    }
                } else {
                    Note::WriteFailed {
                        node: self.id,
                        index: entry.index,
                    }
                });
            }
        }
        self.serve_reads();
    }

    fn release_reads(&mut self, ready: Vec<ReadState>, dropped: Vec<ReadContext>) {
        if !self.fuse.spend() {
            return;
        }
        self.done.reads_released += ready.len();
        self.done.reads_dropped += dropped.len();
        for context in dropped {
            self.issued.remove(&context);
        }
        for read in ready {
            // A read this incarnation did not issue (or already served) is
            // ignored, as a client that gave up would.
            if self.issued.remove(&read.context) {
                self.waiting.push(read);
            }
        }
        self.serve_reads();
    }
}
