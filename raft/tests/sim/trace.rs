//! [`Trace`]: the run's recent events, kept cheaply (no payloads) and
//! formatted only when a seed fails.

use std::collections::VecDeque;
use std::fmt;

use raftcfg_raft::{LogIndex, Message, MessageBody, NodeId, Role, Term};

use crate::sim::app::ReadyDone;

/// A message without its payloads.
#[derive(Clone, Debug)]
pub struct MessageBrief {
    from: NodeId,
    to: NodeId,
    term: Term,
    body: BodyBrief,
}

/// The numbers of a message body, formatted only when printed.
#[derive(Clone, Debug)]
enum BodyBrief {
    Vote {
        pre_vote: bool,
        last: (LogIndex, Term),
        transfer: bool,
    },
    VoteResponse {
        pre_vote: bool,
        granted: bool,
    },
    Append {
        prev: (LogIndex, Term),
        span: Option<((LogIndex, Term), (LogIndex, Term))>,
        commit: LogIndex,
    },
    AppendResponse {
        success: bool,
        match_index: LogIndex,
        hint: (LogIndex, Term),
    },
    Heartbeat {
        commit: LogIndex,
        round: u64,
    },
    HeartbeatResponse {
        round: u64,
    },
    Snapshot {
        at: (LogIndex, Term),
        len: u64,
    },
    TimeoutNow,
    ReadRequest {
        context: u64,
    },
    ReadResponse {
        context: u64,
        index: Option<LogIndex>,
    },
}

impl MessageBrief {
    pub fn of(message: &Message) -> Self {
        let body = match &message.body {
            MessageBody::RequestVote {
                pre_vote,
                last_log_index,
                last_log_term,
                leadership_transfer,
            } => BodyBrief::Vote {
                pre_vote: *pre_vote,
                last: (*last_log_index, *last_log_term),
                transfer: *leadership_transfer,
            },
            MessageBody::RequestVoteResponse { pre_vote, granted } => BodyBrief::VoteResponse {
                pre_vote: *pre_vote,
                granted: *granted,
            },
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => BodyBrief::Append {
                prev: (*prev_log_index, *prev_log_term),
                span: match (entries.first(), entries.last()) {
                    (Some(f), Some(l)) => Some(((f.index, f.term), (l.index, l.term))),
                    _ => None,
                },
                commit: *leader_commit,
            },
            MessageBody::AppendEntriesResponse {
                success,
                match_index,
                hint_index,
                hint_term,
            } => BodyBrief::AppendResponse {
                success: *success,
                match_index: *match_index,
                hint: (*hint_index, *hint_term),
            },
            MessageBody::Heartbeat { commit, read_round } => BodyBrief::Heartbeat {
                commit: *commit,
                round: *read_round,
            },
            MessageBody::HeartbeatResponse { read_round } => {
                BodyBrief::HeartbeatResponse { round: *read_round }
            }
            MessageBody::InstallSnapshot { snapshot } => BodyBrief::Snapshot {
                at: (snapshot.metadata.index, snapshot.metadata.term),
                len: snapshot.data.len() as u64,
            },
            MessageBody::TimeoutNow => BodyBrief::TimeoutNow,
            MessageBody::ReadIndexRequest { context } => {
                BodyBrief::ReadRequest { context: context.0 }
            }
            MessageBody::ReadIndexResponse { context, index } => BodyBrief::ReadResponse {
                context: context.0,
                index: *index,
            },
        };
        Self {
            from: message.from,
            to: message.to,
            term: message.term,
            body,
        }
    }
}

impl fmt::Display for MessageBrief {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{} t{} ", self.from, self.to, self.term)?;
        match &self.body {
            BodyBrief::Vote {
                pre_vote,
                last,
                transfer,
            } => write!(
                f,
                "{} last {}@{}{}",
                if *pre_vote { "PreVote" } else { "RequestVote" },
                last.0,
                last.1,
                if *transfer { " (transfer)" } else { "" }
            ),
            BodyBrief::VoteResponse { pre_vote, granted } => write!(
                f,
                "{} granted={granted}",
                if *pre_vote {
                    "PreVoteResponse"
                } else {
                    "RequestVoteResponse"
                }
            ),
            BodyBrief::Append { prev, span, commit } => {
                write!(f, "AppendEntries prev {}@{}", prev.0, prev.1)?;
                if let Some((first, last)) = span {
                    write!(
                        f,
                        " entries {}@{}..={}@{}",
                        first.0, first.1, last.0, last.1
                    )?;
                }
                write!(f, " commit {commit}")
            }
            BodyBrief::AppendResponse {
                success,
                match_index,
                hint,
            } => {
                if *success {
                    write!(f, "AppendEntriesResponse ok match {match_index}")
                } else {
                    write!(
                        f,
                        "AppendEntriesResponse reject {match_index} hint {}@{}",
                        hint.0, hint.1
                    )
                }
            }
            BodyBrief::Heartbeat { commit, round } => {
                write!(f, "Heartbeat commit {commit} round {round}")
            }
            BodyBrief::HeartbeatResponse { round } => write!(f, "HeartbeatResponse round {round}"),
            BodyBrief::Snapshot { at, len } => {
                write!(f, "InstallSnapshot {}@{} ({len} bytes)", at.0, at.1)
            }
            BodyBrief::TimeoutNow => write!(f, "TimeoutNow"),
            BodyBrief::ReadRequest { context } => write!(f, "ReadIndexRequest ctx {context}"),
            BodyBrief::ReadResponse { context, index } => {
                write!(f, "ReadIndexResponse ctx {context} index {index:?}")
            }
        }
    }
}

/// One thing that happened.
#[derive(Clone, Debug)]
pub enum TraceEvent {
    Tick(NodeId),
    Deliver(MessageBrief),
    Lost(MessageBrief, &'static str),
    Ready(NodeId, ReadyDone),
    /// A leader's deferred sync made its log durable up to the index.
    Synced(NodeId, LogIndex),
    Role {
        node: NodeId,
        role: Role,
        term: Term,
        leader: Option<NodeId>,
    },
    /// An operation on a node; `accepted` unless the core refused it.
    Operation {
        node: NodeId,
        what: String,
        accepted: bool,
    },
    Crash(NodeId),
    Restart(NodeId),
    Decommission(NodeId),
    Partition(u64, String),
    Heal(u64),
    Phase(&'static str),
    Violation(String),
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceEvent::Tick(n) => write!(f, "tick {n}"),
            TraceEvent::Deliver(m) => write!(f, "deliver {m}"),
            TraceEvent::Lost(m, why) => write!(f, "lost ({why}) {m}"),
            TraceEvent::Synced(n, index) => write!(f, "synced {n} up to {index}"),
            TraceEvent::Ready(n, done) => {
                write!(f, "ready {n}: sent {}", done.sent)?;
                if let Some(index) = done.snapshot {
                    write!(f, ", installed snapshot {index}")?;
                }
                if let Some((a, b)) = done.applied {
                    write!(f, ", applied {a}..={b}")?;
                }
                if done.reads_released + done.reads_dropped > 0 {
                    write!(
                        f,
                        ", reads {} released {} dropped",
                        done.reads_released, done.reads_dropped
                    )?;
                }
                Ok(())
            }
            TraceEvent::Role {
                node,
                role,
                term,
                leader,
            } => write!(
                f,
                "node {node} is {role:?} in term {term} (leader {leader:?})"
            ),
            TraceEvent::Operation { node, what, .. } => write!(f, "op on {node}: {what}"),
            TraceEvent::Crash(n) => write!(f, "CRASH {n}"),
            TraceEvent::Restart(n) => write!(f, "RESTART {n}"),
            TraceEvent::Decommission(n) => write!(f, "DECOMMISSION {n} (removal committed)"),
            TraceEvent::Partition(id, what) => write!(f, "PARTITION #{id}: {what}"),
            TraceEvent::Heal(id) => write!(f, "HEAL partition #{id}"),
            TraceEvent::Phase(what) => write!(f, "=== {what} ==="),
            TraceEvent::Violation(what) => write!(f, "VIOLATION {what}"),
        }
    }
}

impl TraceEvent {
    /// Whether the event changes the course of the run (not a tick, a
    /// message, a routine `Ready` or a refused operation).
    fn is_notable(&self) -> bool {
        match self {
            TraceEvent::Tick(_)
            | TraceEvent::Deliver(_)
            | TraceEvent::Lost(..)
            | TraceEvent::Synced(..)
            | TraceEvent::Ready(..) => false,
            TraceEvent::Operation { accepted, .. } => *accepted,
            _ => true,
        }
    }
}

/// The last events of a run, and separately the last notable ones, which
/// tell the story when the last events are only ticks (a stuck cluster).
pub struct Trace {
    events: VecDeque<(u64, u64, TraceEvent)>,
    notable: VecDeque<(u64, u64, TraceEvent)>,
    capacity: usize,
}

/// Notable events kept.
const NOTABLE: usize = 40;

impl Trace {
    pub fn new(capacity: usize) -> Self {
        Self {
            events: VecDeque::with_capacity(capacity),
            notable: VecDeque::with_capacity(NOTABLE),
            capacity,
        }
    }

    pub fn push(&mut self, step: u64, time: u64, event: TraceEvent) {
        if event.is_notable() {
            if self.notable.len() == NOTABLE {
                self.notable.pop_front();
            }
            self.notable.push_back((step, time, event.clone()));
        }
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back((step, time, event));
    }

    /// The last `n` events, one per line.
    pub fn last(&self, n: usize) -> Vec<String> {
        Self::lines(&self.events, n)
    }

    /// The last notable events, one per line.
    pub fn notable(&self) -> Vec<String> {
        Self::lines(&self.notable, NOTABLE)
    }

    fn lines(events: &VecDeque<(u64, u64, TraceEvent)>, n: usize) -> Vec<String> {
        let skip = events.len().saturating_sub(n);
        events
            .iter()
            .skip(skip)
            .map(|(step, time, event)| format!("step {step:>6} t={time:>6}  {event}"))
            .collect()
    }
}
