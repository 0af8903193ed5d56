//! The driver's settings, each group with its one set of defaults: how
//! Raft time runs ([`Timing`]) and when to snapshot and what to keep
//! ([`SnapshotPolicy`]). `raftcfg serve`'s flags, the node's configuration
//! and the driver all use these types; the Raft core's own settings are
//! derived from them in one place ([`DriverConfig::raft_config`]).

use std::time::Duration;

use raftcfg_raft::{Config, NodeId};

use crate::faults::Faults;
use crate::kv::MemberAddress;
use crate::storage::DbOptions;

/// Bytes of entries a leader has in flight to one follower at most. The
/// entries travel as copies (queued, then encoded), so this bounds the
/// leader's memory per follower; 8 MiB still keeps a pipeline of eight
/// 1 MiB values, far more than a loopback or LAN round trip needs.
const MAX_INFLIGHT_BYTES_PER_PEER: u64 = 8 << 20;

/// How long a leader waits for a sent snapshot to be taken before it sends
/// it again, when the transport does not report first: longer than the
/// longest transfer.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How Raft time runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Length of one Raft tick.
    pub tick: Duration,
    /// Election timeout, in ticks (randomized between it and twice it).
    pub election_ticks: u32,
    /// Heartbeat interval, in ticks.
    pub heartbeat_ticks: u32,
    /// How long a leader may hold back a new commit index that no append
    /// or heartbeat carries (zero: it is sent at once). Followers apply
    /// what they learn is committed, so this bounds how far behind an
    /// idle follower's state stays.
    pub commit_notice_delay: Duration,
}

impl Default for Timing {
    /// A 100 ms tick with the core's default timeouts (1 s, 100 ms), and
    /// commit notices held back at most 1 ms.
    fn default() -> Self {
        let core = Config::new(NodeId(0));
        Self {
            tick: Duration::from_millis(100),
            election_ticks: core.election_timeout_ticks,
            heartbeat_ticks: core.heartbeat_interval_ticks,
            commit_notice_delay: Duration::from_millis(1),
        }
    }
}

impl Timing {
    /// Why these settings cannot run a node, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.tick.is_zero() {
            return Err("the tick (--tick-ms) must be longer than 0 ms".into());
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_ticks {
            return Err(format!(
                "the heartbeat interval (--heartbeat-ticks {}) must be at least 1 and less \
                 than the election timeout (--election-ticks {})",
                self.heartbeat_ticks, self.election_ticks
            ));
        }
        Ok(())
    }

    /// The (shortest) election timeout.
    pub fn election_timeout(&self) -> Duration {
        self.tick * self.election_ticks
    }

    /// `duration` in whole ticks (at least one).
    fn ticks(&self, duration: Duration) -> u32 {
        let ticks = duration.as_millis() / self.tick.as_millis().max(1);
        u32::try_from(ticks).unwrap_or(u32::MAX).max(1)
    }
}

/// When a member snapshots its state, and what it keeps behind a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Snapshot and compact every this many applied entries.
    pub threshold_entries: u64,
    /// Or once the entries applied since the last snapshot hold this many
    /// bytes (0: only by entries).
    pub threshold_bytes: u64,
    /// Log entries kept behind each snapshot, so a follower a little behind
    /// is sent entries instead of the whole snapshot.
    pub compaction_tail_entries: u64,
    /// At most this many bytes of them.
    pub compaction_tail_bytes: u64,
    /// Revisions of watch history kept at each snapshot: a watch may start
    /// this far back.
    pub watch_history_revisions: u64,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self {
            threshold_entries: 10_000,
            threshold_bytes: 256 << 20,
            compaction_tail_entries: 5_000,
            compaction_tail_bytes: 64 << 20,
            watch_history_revisions: 100_000,
        }
    }
}

impl SnapshotPolicy {
    /// Why this policy cannot run a node, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.threshold_entries == 0 {
            return Err("the snapshot threshold must be at least 1 entry".into());
        }
        if self.watch_history_revisions == 0 {
            return Err("the watch history must keep at least 1 revision".into());
        }
        Ok(())
    }
}

/// How a node's driver runs.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The member's name; a data directory made under another is refused.
    pub name: String,
    /// Where this member is reached.
    pub address: MemberAddress,
    /// How Raft time runs.
    pub timing: Timing,
    /// When to snapshot and what to keep.
    pub snapshots: SnapshotPolicy,
    /// RocksDB's memory and write-ahead log files.
    pub db: DbOptions,
    /// Requests queued at most before callers get `Busy`.
    pub queue_capacity: usize,
    /// Faults the fault-injection tests plant (none in other builds).
    pub faults: Faults,
}

impl DriverConfig {
    /// Defaults for `name` at `address`.
    pub fn new(name: impl Into<String>, address: MemberAddress) -> Self {
        Self {
            name: name.into(),
            address,
            timing: Timing::default(),
            snapshots: SnapshotPolicy::default(),
            db: DbOptions::default(),
            queue_capacity: 65_536,
            faults: Faults::default(),
        }
    }

    /// The Raft core's settings for node `id` (its seed is the id).
    pub fn raft_config(&self, id: NodeId) -> Config {
        let mut config = Config::new(id);
        config.election_timeout_ticks = self.timing.election_ticks;
        config.heartbeat_interval_ticks = self.timing.heartbeat_ticks;
        config.max_inflight_bytes = MAX_INFLIGHT_BYTES_PER_PEER;
        config.snapshot_timeout_ticks = self.timing.ticks(SNAPSHOT_TIMEOUT);
        config.defer_commit_notices = !self.timing.commit_notice_delay.is_zero();
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_runs_with_the_timing_and_the_node_wide_bounds() {
        let mut config = DriverConfig::new(
            "n1",
            MemberAddress {
                name: "n1".into(),
                peer_url: "http://127.0.0.1:7380".into(),
                client_url: "http://127.0.0.1:7379".into(),
            },
        );
        config.timing = Timing {
            tick: Duration::from_millis(50),
            election_ticks: 20,
            heartbeat_ticks: 2,
            commit_notice_delay: Duration::from_millis(1),
        };
        let raft = config.raft_config(NodeId(7));
        assert_eq!(raft.id, NodeId(7));
        assert_eq!(raft.election_timeout_ticks, 20);
        assert_eq!(raft.heartbeat_interval_ticks, 2);
        assert!(raft.defer_commit_notices);
        assert_eq!(raft.max_inflight_bytes, MAX_INFLIGHT_BYTES_PER_PEER);
        assert_eq!(
            raft.snapshot_timeout_ticks, 36_000,
            "30 minutes of 50 ms ticks"
        );
        assert_eq!(config.timing.election_timeout(), Duration::from_secs(1));
    }

    #[test]
    fn timings_a_node_cannot_run_with_are_refused_with_the_reason() {
        let heartbeat_too_long = Timing {
            heartbeat_ticks: 10,
            ..Timing::default()
        };
        assert!(
            heartbeat_too_long
                .check()
                .unwrap_err()
                .contains("less than")
        );
        let no_tick = Timing {
            tick: Duration::ZERO,
            ..Timing::default()
        };
        assert!(no_tick.check().is_err());
        assert_eq!(Timing::default().check(), Ok(()));
        assert_eq!(SnapshotPolicy::default().check(), Ok(()));
    }
}
