//! Entries committed per second by a 3-node in-memory cluster, 256-byte
//! entries, driven through `handle_ready` exactly as the node drives it
//! (persist to `MemStorage`, send, apply). Messages are delivered in
//! memory, so this measures the protocol core, not I/O.
//!
//! `cargo bench -p raftcfg-raft` (or `make bench`). `BENCH_SECS` sets the
//! measuring time (default 5), `BENCH_BATCH` the proposals per round
//! (default 512).

#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftcfg_raft::{
    ClusterId, Config, Entry, MemStorage, Message, NodeId, RawNode, ReadContext, ReadState,
    ReadyHandler, Role, Snapshot, bootstrap, handle_ready,
};

const ENTRY_BYTES: usize = 256;

#[derive(Default)]
struct Node {
    outbox: Vec<Message>,
    applied: u64,
}

impl ReadyHandler for Node {
    fn send(&mut self, messages: Vec<Message>) {
        self.outbox.extend(messages);
    }
    fn install_snapshot(&mut self, _: &Snapshot) {}
    fn apply(&mut self, entries: Vec<Entry>) {
        self.applied += entries.len() as u64;
    }
    fn release_reads(&mut self, _: Vec<ReadState>, _: Vec<ReadContext>) {}
}

struct Cluster {
    nodes: Vec<RawNode<MemStorage>>,
    apps: Vec<Node>,
    queue: VecDeque<Message>,
}

impl Cluster {
    fn new() -> Self {
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let nodes = ids
            .iter()
            .map(|id| {
                let mut storage = MemStorage::new();
                bootstrap(&mut storage, ids, ClusterId(1)).expect("empty store");
                RawNode::new(Config::new(*id), storage).expect("valid config")
            })
            .collect();
        Self {
            nodes,
            apps: (0..3).map(|_| Node::default()).collect(),
            queue: VecDeque::new(),
        }
    }

    /// Carries out Readies and delivers messages until the cluster is quiet.
    fn settle(&mut self) {
        loop {
            for (node, app) in self.nodes.iter_mut().zip(self.apps.iter_mut()) {
                while handle_ready(node, app).expect("memory storage") {}
                self.queue.extend(app.outbox.drain(..));
            }
            if self.queue.is_empty() {
                return;
            }
            while let Some(message) = self.queue.pop_front() {
                let to = message.to.get() as usize - 1;
                self.nodes[to].step(message);
            }
        }
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let secs = env_or("BENCH_SECS", 5);
    let batch = env_or("BENCH_BATCH", 512);
    let mut cluster = Cluster::new();
    while cluster.nodes[0].status().role != Role::Leader {
        cluster.nodes[0].tick();
        cluster.settle();
    }
    let payload = Bytes::from(vec![7u8; ENTRY_BYTES]);
    let start_commit = cluster.nodes[0].status().commit;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut rounds = 0u64;
    while Instant::now() < deadline {
        for _ in 0..batch {
            cluster.nodes[0]
                .propose(payload.clone())
                .expect("leader accepts");
        }
        cluster.settle();
        rounds += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let committed = cluster.nodes[0].status().commit.get() - start_commit.get();
    let applied_everywhere = cluster.apps.iter().map(|a| a.applied).min().unwrap_or(0);
    assert!(
        applied_everywhere >= committed,
        "every node applied every committed entry"
    );
    println!(
        "commit_throughput: 3 nodes, {ENTRY_BYTES}-byte entries, {batch} proposals per round, \
         {rounds} rounds in {elapsed:.2} s: {committed} entries committed, {:.0} entries/s",
        committed as f64 / elapsed
    );
}
