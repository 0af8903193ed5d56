//! A small in-memory cluster for the unit tests: nodes with [`MemStorage`],
//! messages delivered by hand or until quiet, links that can be cut.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::{
    ClusterId, Config, Entry, EntryPayload, MemStorage, MembershipChange, Message, NodeId, RawNode,
    ReadContext, ReadState, ReadyHandler, Role, Snapshot, bootstrap, handle_ready,
};

pub(crate) const CLUSTER: ClusterId = ClusterId(7);

/// What one node's application saw.
#[derive(Default)]
pub(crate) struct App {
    pub(crate) outbox: Vec<Message>,
    pub(crate) applied: Vec<Entry>,
    pub(crate) snapshots: Vec<Snapshot>,
    pub(crate) reads: Vec<ReadState>,
    pub(crate) dropped_reads: Vec<ReadContext>,
}

impl ReadyHandler for App {
    fn send(&mut self, messages: Vec<Message>) {
        self.outbox.extend(messages);
    }
    fn install_snapshot(&mut self, snapshot: &Snapshot) {
        self.snapshots.push(snapshot.clone());
    }
    fn apply(&mut self, entries: Vec<Entry>) {
        self.applied.extend(entries);
    }
    fn release_reads(&mut self, ready: Vec<ReadState>, dropped: Vec<ReadContext>) {
        self.reads.extend(ready);
        self.dropped_reads.extend(dropped);
    }
}

pub(crate) fn id(n: u64) -> NodeId {
    NodeId(n)
}

pub(crate) fn config(n: u64) -> Config {
    let mut config = Config::new(id(n));
    config.election_timeout_ticks = 10;
    config.heartbeat_interval_ticks = 1;
    config
}

pub(crate) struct Cluster {
    pub(crate) nodes: BTreeMap<NodeId, RawNode<MemStorage>>,
    pub(crate) apps: BTreeMap<NodeId, App>,
    /// Directed links that drop everything.
    pub(crate) cut: BTreeSet<(NodeId, NodeId)>,
    /// Messages sent but not yet delivered.
    pub(crate) in_flight: Vec<Message>,
    /// Every message delivered so far, in order.
    pub(crate) delivered: Vec<Message>,
    /// Rewrites or drops (`None`) every message before delivery.
    pub(crate) filter: Option<fn(Message) -> Option<Message>>,
}

impl Cluster {
    /// Voters `1..=n`, all founded with the same configuration.
    pub(crate) fn new(n: u64) -> Self {
        Self::with_configs((1..=n).map(config).collect())
    }

    /// Voters `1..=n`, each with `bug` planted (or none).
    #[cfg(feature = "planted-bugs")]
    pub(crate) fn with_planted_bug(n: u64, bug: Option<crate::PlantedBug>) -> Self {
        let configs = (1..=n)
            .map(|n| Config {
                planted_bug: bug,
                ..config(n)
            })
            .collect();
        Self::with_configs(configs)
    }

    /// Three voters led by node 1, with every entry committed.
    pub(crate) fn three_led_by_one() -> Self {
        let mut cluster = Self::new(3);
        cluster.elect(1);
        cluster.deliver_all();
        cluster
    }

    pub(crate) fn with_configs(configs: Vec<Config>) -> Self {
        let voters: Vec<NodeId> = configs.iter().map(|c| c.id).collect();
        let mut cluster = Self {
            nodes: BTreeMap::new(),
            apps: BTreeMap::new(),
            cut: BTreeSet::new(),
            in_flight: Vec::new(),
            filter: None,
            delivered: Vec::new(),
        };
        for config in configs {
            let mut storage = MemStorage::new();
            bootstrap(&mut storage, voters.iter().copied(), CLUSTER).unwrap();
            cluster.add_node(config, storage);
        }
        cluster
    }

    pub(crate) fn add_node(&mut self, config: Config, storage: MemStorage) {
        let id = config.id;
        self.nodes
            .insert(id, RawNode::new(config, storage).unwrap());
        self.apps.insert(id, App::default());
    }

    /// Starts node `n` with an empty store: it belongs to no cluster yet.
    pub(crate) fn add_empty_node(&mut self, n: u64) {
        self.add_node(config(n), MemStorage::new());
    }

    pub(crate) fn change(
        &mut self,
        leader: u64,
        change: MembershipChange,
    ) -> Result<crate::LogIndex, crate::ProposalError> {
        self.node(leader).propose_membership(change, Bytes::new())
    }

    pub(crate) fn node(&mut self, n: u64) -> &mut RawNode<MemStorage> {
        self.nodes.get_mut(&id(n)).unwrap()
    }

    pub(crate) fn app(&self, n: u64) -> &App {
        &self.apps[&id(n)]
    }

    /// Carries out every node's Ready and collects the messages sent.
    pub(crate) fn flush(&mut self) {
        for (id, node) in self.nodes.iter_mut() {
            let app = self.apps.get_mut(id).unwrap();
            while handle_ready(node, app).unwrap() {}
            self.in_flight.append(&mut app.outbox);
        }
    }

    /// Delivers messages until none are left (cut links drop them).
    pub(crate) fn deliver_all(&mut self) {
        for _ in 0..10_000 {
            self.flush();
            if self.in_flight.is_empty() {
                return;
            }
            for message in std::mem::take(&mut self.in_flight) {
                self.deliver(message);
            }
        }
        panic!("messages never stopped flowing");
    }

    pub(crate) fn deliver(&mut self, message: Message) {
        if self.cut.contains(&(message.from, message.to)) {
            return;
        }
        let message = match self.filter {
            Some(filter) => match filter(message) {
                Some(message) => message,
                None => return,
            },
            None => message,
        };
        if let Some(node) = self.nodes.get_mut(&message.to) {
            self.delivered.push(message.clone());
            node.step(message);
        }
    }

    /// Takes the messages in flight without delivering them.
    pub(crate) fn take_messages(&mut self) -> Vec<Message> {
        self.flush();
        std::mem::take(&mut self.in_flight)
    }

    pub(crate) fn tick(&mut self, n: u64) {
        self.node(n).tick();
    }

    pub(crate) fn tick_all(&mut self, times: usize) {
        for _ in 0..times {
            for node in self.nodes.values_mut() {
                node.tick();
            }
            self.deliver_all();
        }
    }

    /// Makes node `n` campaign until it leads (it must be able to win).
    pub(crate) fn elect(&mut self, n: u64) {
        for _ in 0..100 {
            self.tick(n);
            self.deliver_all();
            if self.node(n).status().role == Role::Leader {
                return;
            }
        }
        panic!("node {n} did not become leader");
    }

    /// Ticks every node and delivers until `done` holds.
    pub(crate) fn run_until(&mut self, max_ticks: usize, done: impl Fn(&mut Self) -> bool) {
        for _ in 0..max_ticks {
            if done(self) {
                return;
            }
            self.tick_all(1);
        }
        assert!(done(self), "condition not reached in {max_ticks} ticks");
    }

    /// The node that leads in the highest term, if any.
    pub(crate) fn leader(&mut self) -> Option<u64> {
        self.nodes
            .values()
            .map(RawNode::status)
            .filter(|s| s.role == Role::Leader)
            .max_by_key(|s| s.term)
            .map(|s| s.id.get())
    }

    pub(crate) fn isolate(&mut self, n: u64) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for other in ids.into_iter().filter(|o| *o != id(n)) {
            self.cut.insert((id(n), other));
            self.cut.insert((other, id(n)));
        }
    }

    pub(crate) fn heal(&mut self) {
        self.cut.clear();
    }

    pub(crate) fn propose(&mut self, n: u64, data: &str) -> crate::LogIndex {
        self.node(n).propose(Bytes::from(data.to_owned())).unwrap()
    }

    /// The commands node `n` applied, in order.
    pub(crate) fn applied_commands(&self, n: u64) -> Vec<String> {
        self.app(n)
            .applied
            .iter()
            .filter_map(|e| match &e.payload {
                EntryPayload::Command(data) => Some(String::from_utf8_lossy(data).into_owned()),
                _ => None,
            })
            .collect()
    }
}
