//! The node's metrics and their Prometheus text rendering (`GET /metrics`).
//!
//! Counters and histograms are lock-free atomics updated by the driver and
//! the transport; gauges (term, commit, applied, per-peer lag) are read from
//! the Raft core's [`Status`] given when the page is rendered. This module
//! depends on no other module of the node.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use raftcfg_raft::{NodeId, Role, Status};

/// Upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A latency histogram with fixed buckets (Prometheus `histogram`).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{}le=\"{bound}\"}} {cumulative}",
                comma(labels)
            );
        }
        cumulative += self.buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{}le=\"+Inf\"}} {cumulative}",
            comma(labels)
        );
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{labels} {sum}");
        let _ = writeln!(out, "{name}_count{labels} {}", self.count());
    }
}

fn comma(labels: &str) -> &'static str {
    if labels.is_empty() { "" } else { "," }
}

/// Replication statistics of one peer, as seen by this node's transport.
#[derive(Debug, Default)]
pub struct PeerStats {
    /// Time to write each batch of messages to the peer's stream (it grows
    /// when the peer or the network falls behind).
    pub write: Histogram,
    /// Streams that failed (could not be opened, or broke), taking the
    /// messages queued for the peer with them.
    pub failures: Counter,
    /// Streams opened to the peer.
    pub streams_opened: Counter,
}

/// Everything the node counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Writes proposed on this node (as leader).
    pub proposals: Counter,
    /// Proposals that failed or were lost.
    pub proposals_failed: Counter,
    /// Times the known leader changed.
    pub leader_changes: Counter,
    /// Snapshots this node began sending to a follower.
    pub snapshots_sent: Counter,
    /// Snapshots this node installed from a leader.
    pub snapshots_received: Counter,
    /// Snapshot files this node wrote of its own state.
    pub snapshots_taken: Counter,
    /// Snapshot transfers to followers that failed.
    pub snapshots_failed: Counter,
    /// Whether a snapshot file of this node's state is being written.
    pub snapshot_writing: AtomicBool,
    /// Connections refused because a port was at its connection limit
    /// with none idle to close.
    pub connections_refused: Counter,
    /// Idle connections closed: after the idle timeout, or to make room
    /// for a new one at the connection limit.
    pub connections_closed_idle: Counter,
    /// Connections closed for sending a request's headers too slowly.
    pub connections_timed_out: Counter,
    /// Connections that could not be accepted (e.g. out of descriptors).
    pub accept_errors: Counter,
    /// Peer messages that had nowhere to go (unknown address).
    pub messages_unroutable: Counter,
    /// Duration of each synced write of the Raft log.
    pub fsync_seconds: Histogram,
    /// Duration of each batch applied to the key-value state.
    pub apply_seconds: Histogram,
    peers: Mutex<BTreeMap<NodeId, std::sync::Arc<PeerStats>>>,
}

impl Metrics {
    /// The statistics of `peer`, created on first use.
    pub fn peer(&self, peer: NodeId) -> std::sync::Arc<PeerStats> {
        self.peers
            .lock()
            .expect("metrics lock is never poisoned")
            .entry(peer)
            .or_default()
            .clone()
    }

    /// Drops the series of every peer that is not one of `members` (a
    /// removed member's series end with it).
    pub fn keep_peers(&self, members: impl Fn(NodeId) -> bool) {
        self.peers
            .lock()
            .expect("metrics lock is never poisoned")
            .retain(|peer, _| members(*peer));
    }

    /// The Prometheus text exposition of the metrics, of the Raft core's
    /// `status` and of the key-value store's `revision`.
    pub fn render(&self, status: &Status, revision: u64) -> String {
        let mut out = String::new();
        let role = match status.role {
            Role::Follower => 0,
            Role::PreCandidate => 1,
            Role::Candidate => 2,
            Role::Leader => 3,
        };
        let gauges = [
            ("raftcfg_term", "Current Raft term.", status.term.get()),
            (
                "raftcfg_commit_index",
                "Highest committed log index.",
                status.commit.get(),
            ),
            (
                "raftcfg_applied_index",
                "Highest applied log index.",
                status.applied.get(),
            ),
            (
                "raftcfg_last_log_index",
                "Last log index.",
                status.last_index.get(),
            ),
            (
                "raftcfg_snapshot_index",
                "Index the log is compacted to.",
                status.snapshot_index.get(),
            ),
            (
                "raftcfg_revision",
                "Revision of the key-value store.",
                revision,
            ),
            (
                "raftcfg_role",
                "0 follower, 1 pre-candidate, 2 candidate, 3 leader.",
                role,
            ),
            (
                "raftcfg_has_leader",
                "1 if this node knows a leader.",
                u64::from(status.leader_id.is_some()),
            ),
            (
                "raftcfg_snapshot_writing",
                "1 while a snapshot file of the state is being written.",
                u64::from(self.snapshot_writing.load(Ordering::Relaxed)),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let counters = [
            (
                "raftcfg_proposals_total",
                "Writes proposed on this node.",
                &self.proposals,
            ),
            (
                "raftcfg_proposals_failed_total",
                "Proposals that failed or were lost.",
                &self.proposals_failed,
            ),
            (
                "raftcfg_leader_changes_total",
                "Changes of the known leader.",
                &self.leader_changes,
            ),
            (
                "raftcfg_snapshots_sent_total",
                "Snapshots sent to followers.",
                &self.snapshots_sent,
            ),
            (
                "raftcfg_snapshots_received_total",
                "Snapshots installed from a leader.",
                &self.snapshots_received,
            ),
            (
                "raftcfg_messages_unroutable_total",
                "Peer messages to members of unknown address.",
                &self.messages_unroutable,
            ),
            (
                "raftcfg_snapshots_taken_total",
                "Snapshot files written of this node's state.",
                &self.snapshots_taken,
            ),
            (
                "raftcfg_snapshots_failed_total",
                "Snapshot transfers to followers that failed.",
                &self.snapshots_failed,
            ),
            (
                "raftcfg_connections_refused_total",
                "Connections refused at a port's connection limit, none being idle.",
                &self.connections_refused,
            ),
            (
                "raftcfg_connections_closed_idle_total",
                "Idle connections closed after the idle timeout or to make room.",
                &self.connections_closed_idle,
            ),
            (
                "raftcfg_connections_timed_out_total",
                "Connections closed for sending request headers too slowly.",
                &self.connections_timed_out,
            ),
            (
                "raftcfg_accept_errors_total",
                "Connections that could not be accepted (e.g. out of descriptors).",
                &self.accept_errors,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.get()
            );
        }
        let drops = status.drops;
        let _ = writeln!(
            out,
            "# HELP raftcfg_peer_messages_dropped_total Peer messages the Raft core dropped, by reason.\n\
             # TYPE raftcfg_peer_messages_dropped_total counter"
        );
        for (reason, count) in [
            ("misaddressed", drops.misaddressed),
            ("malformed", drops.malformed),
            ("stale", drops.stale),
            ("overflowing", drops.overflowing),
        ] {
            let _ = writeln!(
                out,
                "raftcfg_peer_messages_dropped_total{{reason=\"{reason}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP raftcfg_fsync_seconds Synced writes of the Raft log.\n\
             # TYPE raftcfg_fsync_seconds histogram"
        );
        self.fsync_seconds
            .render(&mut out, "raftcfg_fsync_seconds", "");
        let _ = writeln!(
            out,
            "# HELP raftcfg_apply_seconds Batches applied to the key-value state.\n\
             # TYPE raftcfg_apply_seconds histogram"
        );
        self.apply_seconds
            .render(&mut out, "raftcfg_apply_seconds", "");

        let _ = writeln!(
            out,
            "# HELP raftcfg_peer_replication_lag_entries Leader's last index minus the peer's \
             matched index (leader only).\n# TYPE raftcfg_peer_replication_lag_entries gauge"
        );
        for (peer, progress) in &status.progress {
            if *peer == status.id {
                continue;
            }
            let lag = status
                .last_index
                .get()
                .saturating_sub(progress.matched.get());
            let _ = writeln!(
                out,
                "raftcfg_peer_replication_lag_entries{{peer=\"{peer}\"}} {lag}"
            );
        }
        let peers = self.peers.lock().expect("metrics lock is never poisoned");
        let _ = writeln!(
            out,
            "# HELP raftcfg_peer_write_seconds Time to write a batch of messages to a peer's stream.\n\
             # TYPE raftcfg_peer_write_seconds histogram"
        );
        for (peer, stats) in peers.iter() {
            stats.write.render(
                &mut out,
                "raftcfg_peer_write_seconds",
                &format!("peer=\"{peer}\""),
            );
        }
        for (name, help, count) in [
            (
                "raftcfg_peer_send_failures_total",
                "Streams to a peer that could not be opened or broke.",
                (|stats: &PeerStats| stats.failures.get()) as fn(&PeerStats) -> u64,
            ),
            (
                "raftcfg_peer_streams_opened_total",
                "Streams of messages opened to a peer.",
                |stats| stats.streams_opened.get(),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (peer, stats) in peers.iter() {
                let _ = writeln!(out, "{name}{{peer=\"{peer}\"}} {}", count(stats));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(50));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(10));
        let mut out = String::new();
        histogram.render(&mut out, "h", "");
        assert!(out.contains("h_bucket{le=\"0.0001\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"5\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("h_count 3\n"), "{out}");
    }

    #[test]
    fn labels_are_joined_with_the_bucket_bound() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_millis(1));
        let mut out = String::new();
        histogram.render(&mut out, "h", "peer=\"7\"");
        assert!(
            out.contains("h_bucket{peer=\"7\",le=\"0.001\"} 1\n"),
            "{out}"
        );
    }
}
