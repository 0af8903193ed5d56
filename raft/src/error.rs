//! The core's expected rejections. A method that returns one of these has
//! left the node's state unchanged.

use crate::ids::{LogIndex, NodeId};

/// Why a membership change is invalid for the current configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// The node is already a voter or learner.
    #[error("node {0} is already a member")]
    AlreadyMember(NodeId),
    /// Only learners can be promoted.
    #[error("node {0} is not a learner")]
    NotALearner(NodeId),
    /// The node is not a member.
    #[error("node {0} is not a member")]
    NotAMember(NodeId),
    /// A cluster always keeps one voter.
    #[error("node {0} is the last voter and cannot be removed")]
    LastVoter(NodeId),
}

/// Why a proposal, read or transfer was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    /// Only the leader accepts this; `leader_hint` is the leader if known.
    #[error("not the leader (leader: {leader_hint:?})")]
    NotLeader {
        /// The node this node believes leads, if any.
        leader_hint: Option<NodeId>,
    },
    /// A configuration entry is not yet committed.
    #[error("a membership change is already in progress")]
    MembershipChangeInProgress,
    /// A new leader proposes no membership change until an entry of its own
    /// term is committed.
    #[error("the leader has not yet committed an entry of its term")]
    LeaderNotReady,
    /// Leadership is being handed over; proposals wait for the new leader.
    #[error("leadership is being transferred to node {to}")]
    TransferInProgress {
        /// The transfer's target.
        to: NodeId,
    },
    /// The change does not fit the current configuration.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// A learner must be caught up (receiving appends, and at most a
    /// pipeline of entries behind the commit index) before it can vote.
    #[error("learner {id} has {matched} of {commit} committed entries")]
    LearnerNotCaughtUp {
        /// The learner.
        id: NodeId,
        /// The learner's replicated index.
        matched: LogIndex,
        /// The leader's commit index.
        commit: LogIndex,
    },
    /// The transfer target is not a voter.
    #[error("node {0} is not a voter and cannot lead")]
    NotAVoter(NodeId),
}

/// Why the application's snapshot cannot be used to compact the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// Only applied entries can be compacted.
    #[error("index {index} is not applied yet (applied {applied})")]
    NotApplied {
        /// The requested index.
        index: LogIndex,
        /// The applied index.
        applied: LogIndex,
    },
    /// The log is already compacted at or past this index.
    #[error("index {index} is already compacted (snapshot at {snapshot})")]
    AlreadyCompacted {
        /// The requested index.
        index: LogIndex,
        /// The current snapshot index.
        snapshot: LogIndex,
    },
}

/// Why a node could not be created from its configuration and storage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// The applied index given by the application does not fit the log.
    #[error("applied index {applied} is outside the snapshot {snapshot}..=commit {commit}")]
    AppliedOutOfRange {
        /// What the application reported.
        applied: LogIndex,
        /// The snapshot index.
        snapshot: LogIndex,
        /// The durable commit index.
        commit: LogIndex,
    },
    /// The stored state is inconsistent (e.g. commit past the end of the log).
    #[error("stored state is inconsistent: {0}")]
    Corrupt(String),
    /// Storage could not be read.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}
