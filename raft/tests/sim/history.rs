//! What happened in a run: the notes each step produced ([`Note`]), and the
//! facts the invariants check against ([`History`]): every committed entry
//! as first applied (the ledger), acknowledged writes, issued reads, and the
//! run's counters.

use std::collections::BTreeMap;

use raftcfg_raft::{
    HardState, LogIndex, Membership, Message, MessageBody, NodeId, ReadContext, Role, Term,
};

/// One observation made during a step.
#[derive(Clone, Debug)]
pub enum Note {
    /// A running node's state after the step touched it.
    Status {
        node: NodeId,
        incarnation: u32,
        role: Role,
        term: Term,
        commit: LogIndex,
        /// The term in the node's durable hard state.
        durable_term: Term,
    },
    /// The node leads `term` (first seen this step).
    BecameLeader { node: NodeId, term: Term },
    /// The node carried out a `Ready`: its durable storage may have changed.
    Persisted { node: NodeId },
    /// The node's application applied an entry.
    Applied {
        node: NodeId,
        index: LogIndex,
        term: Term,
        fingerprint: u64,
        chain: u64,
        digest: u64,
        /// Whether the entry is an application command.
        command: bool,
        /// The configuration, for a configuration entry.
        config: Option<Membership>,
    },
    /// The node's application replaced its state by a snapshot.
    SnapshotInstalled {
        node: NodeId,
        index: LogIndex,
        chain: u64,
        digest: u64,
    },
    /// The application could not use what the core handed it.
    ApplicationRefused { node: NodeId, reason: String },
    /// A write proposed on this node was applied by it at the index
    /// `propose` returned: the client got its acknowledgement.
    WriteAcked { node: NodeId, index: LogIndex },
    /// A different entry landed at a proposal's index: the write failed.
    WriteFailed { node: NodeId, index: LogIndex },
    /// A read was served: its `ReadState` arrived and the application had
    /// applied up to its index.
    ReadServed {
        node: NodeId,
        context: ReadContext,
        read_index: LogIndex,
        applied: LogIndex,
    },
    /// Messages left the node, promising what its disk must already hold:
    /// their term (PreVote rounds aside, which speak of a term not yet
    /// reached), a vote granted, and the highest index acknowledged as
    /// appended.
    Sent {
        node: NodeId,
        term: Term,
        vote: Option<(Term, NodeId)>,
        matched: Option<(Term, LogIndex)>,
    },
    /// The node crashed; this was its durable hard state.
    Crashed { node: NodeId, durable: HardState },
    /// The node restarted from its storage; this was its durable hard state.
    Restarted { node: NodeId, durable: HardState },
}

impl Note {
    /// The promises `messages` from `node` carry, if any left.
    pub fn sent(node: NodeId, messages: &[Message]) -> Option<Note> {
        let mut term = Term(0);
        let mut vote = None;
        let mut matched = None;
        for message in messages {
            match message.body {
                MessageBody::RequestVote { pre_vote: true, .. }
                | MessageBody::RequestVoteResponse { pre_vote: true, .. } => continue,
                MessageBody::RequestVoteResponse { granted: true, .. } => {
                    vote = vote.max(Some((message.term, message.to)));
                }
                MessageBody::AppendEntriesResponse {
                    success: true,
                    match_index,
                    ..
                } => matched = matched.max(Some((message.term, match_index))),
                _ => {}
            }
            term = term.max(message.term);
        }
        (!messages.is_empty()).then_some(Note::Sent {
            node,
            term,
            vote,
            matched,
        })
    }
}

/// An entry as first applied by any node.
#[derive(Clone, Debug)]
pub struct Committed {
    pub term: Term,
    pub fingerprint: u64,
    pub chain: u64,
    pub digest: u64,
    /// The node that applied it first.
    pub first_node: NodeId,
    /// An upper bound on the term in which it was committed: the highest
    /// term seen anywhere when it was first applied. Every leader of a
    /// later term must hold it.
    pub committed_by_term: Term,
}

/// A read as issued.
#[derive(Clone, Copy, Debug)]
pub struct IssuedRead {
    pub node: NodeId,
    pub step: u64,
    /// The highest index of any write acknowledged before the read was issued.
    pub max_acked: LogIndex,
}

/// Counters shown in the summary line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub steps: u64,
    pub proposals_committed: u64,
    pub writes_acked: u64,
    pub elections: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub membership_changes: u64,
    pub transfers: u64,
    pub snapshots_installed: u64,
    pub reads_checked: u64,
    pub not_leader_rejections: u64,
    /// Snapshots that reached a follower holding entries after their
    /// index, with matching terms, and not committed up to it.
    pub snapshots_behind_matching_entries: u64,
    /// The worst of each healed-phase liveness measure (see `liveness`).
    pub worst: crate::sim::liveness::Worst,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.steps += other.steps;
        self.proposals_committed += other.proposals_committed;
        self.writes_acked += other.writes_acked;
        self.elections += other.elections;
        self.crashes += other.crashes;
        self.partitions += other.partitions;
        self.membership_changes += other.membership_changes;
        self.transfers += other.transfers;
        self.snapshots_installed += other.snapshots_installed;
        self.reads_checked += other.reads_checked;
        self.not_leader_rejections += other.not_leader_rejections;
        self.snapshots_behind_matching_entries += other.snapshots_behind_matching_entries;
        self.worst.add(&other.worst);
    }
}

/// The run's memory, shared by the invariants.
pub struct History {
    /// Every entry applied anywhere, as first applied.
    pub ledger: BTreeMap<LogIndex, Committed>,
    /// The highest term any node has had.
    pub max_term: Term,
    /// The highest commit index any node has had.
    pub max_commit: LogIndex,
    /// The highest index of an acknowledged write.
    pub max_acked: LogIndex,
    /// Reads issued, by context.
    pub reads: BTreeMap<ReadContext, IssuedRead>,
    /// The latest configuration known committed, and its index.
    pub committed_config: (LogIndex, Membership),
    pub counters: Counters,
}

impl History {
    pub fn new(founding: Membership) -> Self {
        let mut ledger = BTreeMap::new();
        ledger.insert(
            LogIndex(0),
            Committed {
                term: Term(0),
                fingerprint: 0,
                chain: 0,
                digest: 0,
                first_node: NodeId(0),
                committed_by_term: Term(0),
            },
        );
        Self {
            ledger,
            max_term: Term(0),
            max_commit: LogIndex(0),
            max_acked: LogIndex(0),
            reads: BTreeMap::new(),
            committed_config: (LogIndex(0), founding),
            counters: Counters::default(),
        }
    }

    /// Takes in a step's notes. The invariants then check the notes
    /// against the updated history.
    pub fn absorb(&mut self, notes: &[Note]) {
        for note in notes {
            match note {
                Note::Status { term, commit, .. } => {
                    self.max_term = self.max_term.max(*term);
                    self.max_commit = self.max_commit.max(*commit);
                }
                Note::Crashed { durable, .. } | Note::Restarted { durable, .. } => {
                    self.max_term = self.max_term.max(durable.term);
                    self.max_commit = self.max_commit.max(durable.commit);
                }
                _ => {}
            }
        }
        for note in notes {
            match note {
                Note::BecameLeader { .. } => self.counters.elections += 1,
                Note::Applied {
                    node,
                    index,
                    term,
                    fingerprint,
                    chain,
                    digest,
                    command,
                    config,
                } => {
                    self.max_commit = self.max_commit.max(*index);
                    if self.ledger.contains_key(index) {
                        continue;
                    }
                    self.ledger.insert(
                        *index,
                        Committed {
                            term: *term,
                            fingerprint: *fingerprint,
                            chain: *chain,
                            digest: *digest,
                            first_node: *node,
                            committed_by_term: self.max_term,
                        },
                    );
                    if *command {
                        self.counters.proposals_committed += 1;
                    }
                    if let Some(config) = config {
                        self.counters.membership_changes += 1;
                        if *index > self.committed_config.0 {
                            self.committed_config = (*index, config.clone());
                        }
                    }
                }
                Note::SnapshotInstalled { .. } => self.counters.snapshots_installed += 1,
                Note::WriteAcked { index, .. } => {
                    self.counters.writes_acked += 1;
                    self.max_acked = self.max_acked.max(*index);
                }
                Note::ReadServed { .. } => self.counters.reads_checked += 1,
                Note::Crashed { .. } => self.counters.crashes += 1,
                _ => {}
            }
        }
    }
}
