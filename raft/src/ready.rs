//! [`handle_ready`]: the one synchronous function that carries out a
//! [`Ready`] in the contract's order. The node's driver and the simulator
//! both call it, so the simulator exercises the production path.

use crate::entry::Entry;
use crate::message::{Message, ReadContext};
use crate::protocol::ReadState;
use crate::raw_node::RawNode;
use crate::snapshot::Snapshot;
use crate::storage::{LogStore, LogWrite, StorageError};

/// What the application does with a `Ready` besides persisting it.
pub trait ReadyHandler {
    /// Send messages to peers (after the log writes are durable).
    fn send(&mut self, messages: Vec<Message>);
    /// Replace the application state by a snapshot received from the leader.
    fn install_snapshot(&mut self, snapshot: &Snapshot);
    /// Apply committed entries, in order.
    fn apply(&mut self, entries: Vec<Entry>);
    /// Serve reads once applied up to their index; report dropped ones.
    fn release_reads(&mut self, ready: Vec<ReadState>, dropped: Vec<ReadContext>);
}

/// Carries out one `Ready`, if any: persist, send, apply, advance.
/// Returns whether there was one. A storage error leaves the `Ready`
/// unacknowledged: the node must stop and restart from its storage.
pub fn handle_ready<S: LogStore, H: ReadyHandler>(
    node: &mut RawNode<S>,
    handler: &mut H,
) -> Result<bool, StorageError> {
    if !node.has_ready() {
        return Ok(false);
    }
    let ready = node.ready();
    let write = LogWrite {
        snapshot: ready.snapshot.as_ref(),
        entries: &ready.entries,
        hard_state: ready.hard_state.as_ref(),
        compaction: ready.compaction.as_ref(),
    };
    if !write.is_empty() {
        node.storage_mut().persist(write)?;
    }
    if !ready.messages.is_empty() {
        handler.send(ready.messages);
    }
    if let Some(snapshot) = &ready.snapshot {
        handler.install_snapshot(snapshot);
    }
    if !ready.committed_entries.is_empty() {
        handler.apply(ready.committed_entries);
    }
    if !ready.read_states.is_empty() || !ready.dropped_reads.is_empty() {
        handler.release_reads(ready.read_states, ready.dropped_reads);
    }
    node.advance();
    Ok(true)
}
