//! Tuning of one Raft node. Time is counted in ticks of the caller's clock.

use crate::error::StartError;
use crate::ids::{LogIndex, NodeId};

/// A known protocol bug that tests can plant to show the simulator finds it.
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// Commit an entry of a previous term by counting its replicas (Figure 8).
    CommitPreviousTermByCounting,
    /// Grant a vote without checking that the candidate's log is up to date.
    VoteWithoutLogCheck,
    /// Allow a second configuration entry while one is uncommitted.
    SecondPendingConfig,
    /// Answer ReadIndex at once, without confirming leadership with a quorum.
    ReadIndexWithoutQuorum,
    /// Send every message of a `Ready` before its write is durable.
    SendBeforePersist,
    /// Install a snapshot over entries after its index that match it.
    SnapshotDiscardsMatchingEntries,
    /// Let a stale or reordered append truncate the entries after it.
    StaleAppendTruncates,
    /// Send TimeoutNow before the transfer target holds the whole log.
    TimeoutNowToLaggingTarget,
    /// A leader ignores messages of a higher term.
    LeaderIgnoresHigherTerm,
    /// A PreVote request moves the voter to the term it asks about.
    PreVoteMovesTerm,
}

/// Settings of one node.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's identity.
    pub id: NodeId,
    /// Seed of the node's random election timeouts.
    pub seed: u64,
    /// Minimum election timeout; each timeout is drawn from `[t, 2t)`.
    pub election_timeout_ticks: u32,
    /// Heartbeat interval; must be shorter than the election timeout.
    pub heartbeat_interval_ticks: u32,
    /// Upper bound on the entry bytes in one `AppendEntries`.
    pub max_append_bytes: u64,
    /// Upper bound on unacknowledged `AppendEntries` per follower.
    pub max_inflight_appends: usize,
    /// Upper bound on unacknowledged entry bytes per follower.
    pub max_inflight_bytes: u64,
    /// How long the leader waits for a follower to take the snapshot it
    /// was sent, or for the application to report the transfer's end,
    /// before it sends the snapshot again. It must cover the transfer of
    /// the largest snapshot.
    pub snapshot_timeout_ticks: u32,
    /// Upper bound on the committed entry bytes handed out in one `Ready`.
    pub max_apply_bytes: u64,
    /// Index the application had applied when the node (re)started.
    pub applied: LogIndex,
    /// Whether a leader holds back the messages that would carry only a
    /// new commit index. Followers then learn it from the next append or
    /// heartbeat, or when the application calls
    /// [`crate::RawNode::send_commit_notices`], which it should do soon
    /// after [`crate::RawNode::commit_notices_due`] turns true. Under load
    /// the next append carries the commit index anyway, which spares a
    /// message and its answer per follower and commit.
    pub defer_commit_notices: bool,
    /// Plants a known bug (tests only).
    #[cfg(feature = "planted-bugs")]
    pub planted_bug: Option<PlantedBug>,
}

impl Config {
    /// Defaults suited to a 100 ms tick: 1 s election timeout, 100 ms heartbeat.
    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            seed: id.get(),
            election_timeout_ticks: 10,
            heartbeat_interval_ticks: 1,
            max_append_bytes: 1 << 20,
            max_inflight_appends: 64,
            max_inflight_bytes: 32 << 20,
            snapshot_timeout_ticks: 600,
            max_apply_bytes: 16 << 20,
            applied: LogIndex(0),
            defer_commit_notices: false,
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), StartError> {
        if self.id.get() == 0 {
            return Err(StartError::InvalidConfig("node id must not be 0"));
        }
        if self.heartbeat_interval_ticks == 0 {
            return Err(StartError::InvalidConfig(
                "heartbeat interval must be at least 1 tick",
            ));
        }
        if self.election_timeout_ticks <= self.heartbeat_interval_ticks {
            return Err(StartError::InvalidConfig(
                "election timeout must be longer than the heartbeat interval",
            ));
        }
        if self.max_inflight_appends == 0 || self.max_inflight_bytes == 0 {
            return Err(StartError::InvalidConfig(
                "in-flight limits must be positive",
            ));
        }
        if self.max_append_bytes == 0 || self.max_apply_bytes == 0 {
            return Err(StartError::InvalidConfig("size limits must be positive"));
        }
        if self.snapshot_timeout_ticks == 0 {
            return Err(StartError::InvalidConfig(
                "the snapshot timeout must be at least 1 tick",
            ));
        }
        Ok(())
    }

    #[cfg(feature = "planted-bugs")]
    pub(crate) fn planted(&self, bug: PlantedBug) -> bool {
        self.planted_bug == Some(bug)
    }

    #[cfg(not(feature = "planted-bugs"))]
    pub(crate) fn planted(&self, _bug: PlantedBug) -> bool {
        false
    }
}

/// Without the `planted-bugs` feature no bug can be planted; this private
/// stand-in keeps the call sites free of `cfg`.
#[cfg(not(feature = "planted-bugs"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PlantedBug {
    CommitPreviousTermByCounting,
    VoteWithoutLogCheck,
    SecondPendingConfig,
    ReadIndexWithoutQuorum,
    SendBeforePersist,
    SnapshotDiscardsMatchingEntries,
    StaleAppendTruncates,
    TimeoutNowToLaggingTarget,
    LeaderIgnoresHigherTerm,
    PreVoteMovesTerm,
}
