//! Messages between Raft nodes, named as in the paper.

use crate::entry::Entry;
use crate::ids::{ClusterId, LogIndex, NodeId, Term};
use crate::snapshot::Snapshot;

/// A message from one node to another. Every message names its cluster,
/// sender and recipient; a node drops messages not meant for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The cluster the sender belongs to.
    pub cluster_id: ClusterId,
    /// The sender.
    pub from: NodeId,
    /// The recipient.
    pub to: NodeId,
    /// The sender's term (for a pre-vote request: the term it would campaign in).
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// An application-chosen tag that identifies one ReadIndex request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReadContext(pub u64);

/// The kinds of message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// A candidate (or, with `pre_vote`, a would-be candidate) asks for a vote.
    RequestVote {
        /// A PreVote round: nobody changes term or records a vote.
        pre_vote: bool,
        /// The candidate's last log index.
        last_log_index: LogIndex,
        /// The term of the candidate's last log entry.
        last_log_term: Term,
        /// Sent because the leader handed over leadership: voters ignore
        /// their leader lease.
        leadership_transfer: bool,
    },
    /// The answer to a `RequestVote`.
    RequestVoteResponse {
        /// Answers a PreVote round.
        pre_vote: bool,
        /// Whether the vote was granted.
        granted: bool,
    },
    /// The leader replicates entries after `prev_log_index`.
    AppendEntries {
        /// The index just before the first entry.
        prev_log_index: LogIndex,
        /// The term of the entry at `prev_log_index`.
        prev_log_term: Term,
        /// Entries to append (may be empty: a commit update or a probe).
        entries: Vec<Entry>,
        /// The leader's commit index.
        leader_commit: LogIndex,
    },
    /// The answer to `AppendEntries` (also to a completed `InstallSnapshot`).
    AppendEntriesResponse {
        /// Whether the follower's log now matches the leader's up to `match_index`.
        success: bool,
        /// On success, the last index known to match; on rejection, the
        /// rejected `prev_log_index`.
        match_index: LogIndex,
        /// On rejection, the follower's guess at where the logs may match:
        /// the last index at or before the rejected one whose term is at most
        /// the rejected term.
        hint_index: LogIndex,
        /// The term of the follower's entry at `hint_index`.
        hint_term: Term,
    },
    /// The leader's heartbeat: it keeps followers from campaigning, carries
    /// the commit index, and confirms leadership for ReadIndex rounds.
    Heartbeat {
        /// The commit index, capped at what the follower is known to hold.
        commit: LogIndex,
        /// The leader's latest ReadIndex round.
        read_round: u64,
    },
    /// The answer to a `Heartbeat`.
    HeartbeatResponse {
        /// The ReadIndex round being acknowledged.
        read_round: u64,
    },
    /// The leader's snapshot, sent whole to a follower whose next entry was
    /// compacted away. The core never looks inside `snapshot.data`; an
    /// application whose state is large puts a reference to it there and
    /// lets its transport stream the state itself (then reports how the
    /// transfer went with `RawNode::report_snapshot`). The follower answers
    /// with an `AppendEntriesResponse`.
    InstallSnapshot {
        /// The snapshot.
        snapshot: Snapshot,
    },
    /// The leader tells a caught-up voter to campaign at once (leadership transfer).
    TimeoutNow,
    /// A follower asks the leader for a read index on behalf of a client.
    ReadIndexRequest {
        /// The follower's tag for the request.
        context: ReadContext,
    },
    /// The leader's answer to `ReadIndexRequest`.
    ReadIndexResponse {
        /// The follower's tag.
        context: ReadContext,
        /// The index to wait for before reading, or `None` if the leader
        /// could not serve the request.
        index: Option<LogIndex>,
    },
}

impl MessageBody {
    /// Whether only a leader sends this kind of message.
    pub fn is_from_leader(&self) -> bool {
        matches!(
            self,
            MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. }
                | MessageBody::TimeoutNow
                | MessageBody::ReadIndexResponse { .. }
        )
    }

    /// A short name for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageBody::RequestVote { pre_vote: true, .. } => "PreVote",
            MessageBody::RequestVote { .. } => "RequestVote",
            MessageBody::RequestVoteResponse { pre_vote: true, .. } => "PreVoteResponse",
            MessageBody::RequestVoteResponse { .. } => "RequestVoteResponse",
            MessageBody::AppendEntries { .. } => "AppendEntries",
            MessageBody::AppendEntriesResponse { .. } => "AppendEntriesResponse",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResponse { .. } => "HeartbeatResponse",
            MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::ReadIndexRequest { .. } => "ReadIndexRequest",
            MessageBody::ReadIndexResponse { .. } => "ReadIndexResponse",
        }
    }
}
