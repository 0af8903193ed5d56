//! [`handle_ready`]: the one synchronous function that carries out a
//! [`Ready`] in the contract's order. The node's driver and the simulator
//! both call it, so the simulator exercises the production path.
//!
//! A leader's replication messages (appends, heartbeats, snapshots)
//! are sent *before* the write, so its own fsync overlaps the followers'
//! (Raft dissertation §10.2.1). They promise nothing about this node's
//! log, and the acknowledgments they bring are stepped only after this
//! call returns, when the leader's own copy is durable; so nothing is
//! counted as committed on the strength of an entry the leader could still
//! lose. They go early only if the write does not change the term or vote,
//! so every message still carries a term this node has made durable.

use crate::config::PlantedBug;
use crate::entry::Entry;
use crate::message::{Message, MessageBody, ReadContext};
use crate::protocol::{ReadState, Role};
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

/// When a leader's own log writes become durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LeaderSync {
    /// Within [`handle_ready`], before it returns.
    #[default]
    Inline,
    /// Later: a leader's `Ready` that keeps its term and vote and holds no
    /// snapshot is stored without a sync, and the application syncs on
    /// another thread and reports it with [`RawNode::synced`]. Meanwhile the
    /// leader goes on stepping acknowledgments and taking proposals; its
    /// own copy counts towards a commit only once synced, so an entry is
    /// still committed only when a majority holds it durably. A node that
    /// is not the leader syncs everything stored before it sends anything.
    Deferred,
}

/// Carries out one `Ready`, if any: persist, send, apply, advance.
/// Returns whether there was one. A storage error leaves the `Ready`
/// unacknowledged: the node must stop and restart from its storage.
pub fn handle_ready<S: LogStore, H: ReadyHandler>(
    node: &mut RawNode<S>,
    handler: &mut H,
) -> Result<bool, StorageError> {
    handle_ready_with(node, handler, LeaderSync::Inline)
}

/// [`handle_ready`], with a leader's syncs made as `sync` says.
pub fn handle_ready_with<S: LogStore, H: ReadyHandler>(
    node: &mut RawNode<S>,
    handler: &mut H,
    sync: LeaderSync,
) -> Result<bool, StorageError> {
    if !node.has_ready() {
        return Ok(false);
    }
    let ready = node.ready();
    let durable = node.storage().hard_state()?;
    let send_all_early = node.planted(PlantedBug::SendBeforePersist);
    let keeps_term_and_vote = ready
        .hard_state
        .as_ref()
        .is_none_or(|new| (new.term, new.vote) == (durable.term, durable.vote));
    let (early, messages): (Vec<Message>, Vec<Message>) = ready
        .messages
        .into_iter()
        .partition(|message| send_all_early || (keeps_term_and_vote && is_replication(message)));
    if !early.is_empty() {
        handler.send(early);
    }
    let write = LogWrite {
        snapshot: ready.snapshot.as_ref(),
        entries: &ready.entries,
        hard_state: ready.hard_state.as_ref(),
        compaction: ready.compaction.as_ref(),
    };
    let defer = sync == LeaderSync::Deferred
        && node.role() == Role::Leader
        && keeps_term_and_vote
        && ready.snapshot.is_none()
        && ready.compaction.is_none();
    if defer {
        if !write.is_empty() {
            node.storage_mut().store(write)?;
        }
    } else {
        if !write.is_empty() {
            node.storage_mut().persist(write)?;
        }
        // What a leader stored unsynced must be durable before this node
        // says anything as another role, or compacts.
        if node.has_unsynced() {
            node.storage_mut().sync()?;
        }
    }
    if !messages.is_empty() {
        handler.send(messages);
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
    if defer {
        node.advance_unsynced();
    } else {
        node.advance();
    }
    Ok(true)
}

/// Whether `message` is a leader's replication message, which may go out
/// before the leader's own write (see the module documentation).
fn is_replication(message: &Message) -> bool {
    matches!(
        message.body,
        MessageBody::AppendEntries { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. }
    )
}
