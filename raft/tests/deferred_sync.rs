//! Deferred leader syncs (`LeaderSync::Deferred`) through the crate's public
//! API: three `RawNode`s over a store that journals its writes and syncs,
//! and a handler that journals what is sent, so each test can say in what
//! order a node stored, synced and spoke.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use raftcfg_raft::{
    ClusterId, Config, Entry, HardState, LeaderSync, LogIndex, LogStorage, LogStore, LogWrite,
    MemStorage, Message, MessageBody, NodeId, RawNode, ReadContext, ReadState, ReadyHandler, Role,
    Snapshot, SnapshotMetadata, StorageError, Term, bootstrap, handle_ready_with,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    /// A write without a sync.
    Store,
    /// A synced write.
    Persist,
    Sync,
    /// A message sent; whether it was a leader's replication message.
    Send {
        replication: bool,
    },
}

type Journal = Rc<RefCell<Vec<Event>>>;

/// `MemStorage` that journals each write and sync.
struct JournaledStore {
    inner: MemStorage,
    journal: Journal,
}

impl LogStorage for JournaledStore {
    fn hard_state(&self) -> Result<HardState, StorageError> {
        self.inner.hard_state()
    }
    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        self.inner.snapshot()
    }
    fn snapshot_metadata(&self) -> Result<SnapshotMetadata, StorageError> {
        self.inner.snapshot_metadata()
    }
    fn first_index(&self) -> Result<LogIndex, StorageError> {
        self.inner.first_index()
    }
    fn last_index(&self) -> Result<LogIndex, StorageError> {
        self.inner.last_index()
    }
    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        self.inner.term(index)
    }
    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.inner.entries(low, high, max_bytes)
    }
}

impl LogStore for JournaledStore {
    fn persist(&mut self, write: LogWrite<'_>) -> Result<(), StorageError> {
        self.journal.borrow_mut().push(Event::Persist);
        self.inner.persist(write)
    }
    fn store(&mut self, write: LogWrite<'_>) -> Result<(), StorageError> {
        self.journal.borrow_mut().push(Event::Store);
        self.inner.persist(write)
    }
    fn sync(&mut self) -> Result<(), StorageError> {
        self.journal.borrow_mut().push(Event::Sync);
        Ok(())
    }
}

/// Journals what is sent and keeps it for delivery.
struct Outbox {
    journal: Journal,
    messages: Vec<Message>,
}

impl ReadyHandler for Outbox {
    fn send(&mut self, messages: Vec<Message>) {
        for message in &messages {
            let replication = matches!(
                message.body,
                MessageBody::AppendEntries { .. } | MessageBody::Heartbeat { .. }
            );
            self.journal.borrow_mut().push(Event::Send { replication });
        }
        self.messages.extend(messages);
    }
    fn install_snapshot(&mut self, _: &Snapshot) {}
    fn apply(&mut self, _: Vec<Entry>) {}
    fn release_reads(&mut self, _: Vec<ReadState>, _: Vec<ReadContext>) {}
}

struct Node {
    raft: RawNode<JournaledStore>,
    outbox: Outbox,
    journal: Journal,
}

/// Three voters; node 1 is elected, with every sync made at once.
struct Trio {
    nodes: Vec<Node>,
    /// Nodes whose messages, both ways, are dropped.
    cut: BTreeSet<u64>,
    /// Whether leaders' syncs are made as soon as they are asked for.
    sync_at_once: bool,
}

impl Trio {
    fn elected() -> Self {
        let voters = [NodeId(1), NodeId(2), NodeId(3)];
        let nodes = (1..=3)
            .map(|n| {
                let journal = Journal::default();
                let mut store = JournaledStore {
                    inner: MemStorage::new(),
                    journal: journal.clone(),
                };
                bootstrap(&mut store, voters, ClusterId(7)).expect("bootstrap");
                let mut config = Config::new(NodeId(n));
                config.election_timeout_ticks = 10;
                config.heartbeat_interval_ticks = 1;
                Node {
                    raft: RawNode::new(config, store).expect("start"),
                    outbox: Outbox {
                        journal: journal.clone(),
                        messages: Vec::new(),
                    },
                    journal,
                }
            })
            .collect();
        let mut trio = Self {
            nodes,
            cut: BTreeSet::new(),
            sync_at_once: true,
        };
        for _ in 0..100 {
            if trio.node(1).raft.role() == Role::Leader {
                break;
            }
            trio.node(1).raft.tick();
            trio.settle();
        }
        assert_eq!(
            trio.node(1).raft.role(),
            Role::Leader,
            "node 1 was not elected"
        );
        trio.settle();
        trio
    }

    fn node(&mut self, n: u64) -> &mut Node {
        &mut self.nodes[(n - 1) as usize]
    }

    /// Carries out node `n`'s `Ready`s, without delivering what it sends.
    fn ready(&mut self, n: u64) {
        let sync_at_once = self.sync_at_once;
        let node = self.node(n);
        while handle_ready_with(&mut node.raft, &mut node.outbox, LeaderSync::Deferred)
            .expect("memory storage")
        {
            if sync_at_once && let Some((index, term)) = node.raft.unsynced() {
                node.raft.storage_mut().sync().expect("memory storage");
                node.raft.synced(index, term);
            }
        }
    }

    /// Delivers what node `n` sent, except across a cut.
    fn deliver_from(&mut self, n: u64) {
        let messages = std::mem::take(&mut self.node(n).outbox.messages);
        for message in messages {
            let to = message.to.get();
            if self.cut.contains(&n) || self.cut.contains(&to) {
                continue;
            }
            self.node(to).raft.step(message);
        }
    }

    /// Readys and deliveries until nothing moves.
    fn settle(&mut self) {
        for _ in 0..100 {
            for n in 1..=3 {
                self.ready(n);
            }
            if self
                .nodes
                .iter()
                .all(|node| node.outbox.messages.is_empty())
            {
                return;
            }
            for n in 1..=3 {
                self.deliver_from(n);
            }
        }
        panic!("the cluster did not settle");
    }

    fn commit(&mut self, n: u64) -> LogIndex {
        self.node(n).raft.status().commit
    }
}

#[test]
fn a_leader_counts_its_own_copy_only_once_synced() {
    let mut trio = Trio::elected();
    trio.sync_at_once = false;
    trio.cut.insert(3);
    let index = trio.node(1).raft.propose("x".into()).expect("leader");
    trio.ready(1);
    let (unsynced, term) = trio.node(1).raft.unsynced().expect("stored unsynced");
    assert_eq!(unsynced, index);
    assert!(trio.node(1).journal.borrow().contains(&Event::Store));
    // Node 2 appends it (synced, as a follower) and acknowledges it.
    trio.deliver_from(1);
    trio.ready(2);
    trio.deliver_from(2);
    trio.ready(1);
    assert!(
        trio.commit(1) < index,
        "committed on one durable copy: node 2's, the leader's not yet synced"
    );
    trio.node(1)
        .raft
        .storage_mut()
        .sync()
        .expect("memory storage");
    trio.node(1).raft.synced(index, term);
    assert_eq!(trio.commit(1), index);
    assert_eq!(trio.node(1).raft.unsynced(), None);
}

#[test]
fn two_followers_commit_an_entry_the_leader_has_not_synced() {
    let mut trio = Trio::elected();
    trio.sync_at_once = false;
    let index = trio.node(1).raft.propose("x".into()).expect("leader");
    trio.settle();
    assert!(trio.node(1).raft.unsynced().is_some());
    assert_eq!(trio.commit(1), index);
}

#[test]
fn a_sync_of_an_entry_overwritten_since_counts_for_nothing() {
    let mut trio = Trio::elected();
    trio.sync_at_once = false;
    trio.node(1).raft.propose("x".into()).expect("leader");
    trio.ready(1);
    let (index, term) = trio.node(1).raft.unsynced().expect("stored unsynced");
    // A report for another term at that index is not this entry's sync.
    trio.node(1).raft.synced(index, Term(term.get() + 1));
    assert_eq!(trio.node(1).raft.unsynced(), Some((index, term)));
}

#[test]
fn a_leader_that_stops_leading_syncs_what_it_stored_before_it_sends_anything() {
    let mut trio = Trio::elected();
    trio.sync_at_once = false;
    trio.cut.insert(1);
    trio.node(1).raft.propose("x".into()).expect("leader");
    trio.ready(1);
    assert!(trio.node(1).raft.unsynced().is_some());
    trio.node(1).journal.borrow_mut().clear();
    // Cut off, it steps down (CheckQuorum, same term), then campaigns.
    let mut spoke = false;
    for _ in 0..200 {
        trio.node(1).raft.tick();
        trio.ready(1);
        trio.deliver_from(1);
        spoke = trio
            .node(1)
            .journal
            .borrow()
            .contains(&Event::Send { replication: false });
        if trio.node(1).raft.role() != Role::Leader && spoke {
            break;
        }
    }
    assert!(spoke, "node 1 never campaigned");
    let journal = trio.node(1).journal.borrow().clone();
    let first_said = journal
        .iter()
        .position(|e| *e == Event::Send { replication: false })
        .expect("spoke");
    let synced = journal[..first_said]
        .iter()
        .any(|e| matches!(e, Event::Sync | Event::Persist));
    assert!(
        synced,
        "node 1 spoke as a non-leader before syncing what it stored: {journal:?}"
    );
    assert_eq!(trio.node(1).raft.unsynced(), None);
}
