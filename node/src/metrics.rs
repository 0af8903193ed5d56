//! The node's metrics and their exposition (`GET /metrics`), kept with
//! prometheus-client. Counters and histograms are updated by the driver,
//! the transport and the HTTP servers as things happen; the gauges of the
//! Raft core's [`Status`], the store, the data directory and the process
//! are set when the page is rendered ([`Metrics::render`]). This module
//! depends on no other module of the node.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use raftcfg_raft::{NodeId, Role, Status};

pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::histogram::Histogram;

/// A gauge of a count or an index.
pub type CountGauge = Gauge<u64, AtomicU64>;

/// One unit of a gauge, held for as long as this lives (an open
/// connection, an open watch).
#[derive(Debug)]
pub struct Held(CountGauge);

impl Held {
    /// Adds one to `gauge` until the result is dropped.
    pub fn new(gauge: &CountGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Upper bounds of the snapshot-duration buckets, in seconds.
const SNAPSHOT_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0];

/// A latency histogram with the node's buckets.
pub fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Records `duration` in `histogram`, in seconds.
pub fn observe(histogram: &Histogram, duration: Duration) {
    histogram.observe(duration.as_secs_f64());
}

/// Which of the node's two ports.
pub type Port = &'static str;
/// The client API's port.
pub const CLIENT_PORT: Port = "client";
/// The peer port.
pub const PEER_PORT: Port = "peer";

/// The label of a per-peer series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The peer's node id.
    pub peer: u64,
}

/// The label of a per-port series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PortLabels {
    /// `client` or `peer`.
    pub port: Port,
}

/// The labels of an HTTP request's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// `client` or `peer`.
    pub port: Port,
    /// The route's pattern (`/v1/kv/{*key}`), or `unmatched`.
    pub route: String,
    /// The request method.
    pub method: String,
}

/// The labels of an answered HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `client` or `peer`.
    pub port: Port,
    /// The route's pattern, or `unmatched`.
    pub route: String,
    /// The request method.
    pub method: String,
    /// The answer's status code.
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectoryLabels {
    part: &'static str,
}

/// Replication statistics of one peer, as seen by this node's transport.
/// The series it updates belong to the node's registry until the peer
/// leaves the membership.
#[derive(Debug)]
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

impl Default for PeerStats {
    /// Statistics in no registry (for tests).
    fn default() -> Self {
        Self {
            write: latency_histogram(),
            failures: Counter::default(),
            streams_opened: Counter::default(),
        }
    }
}

/// What the data directory holds on disk, in bytes (see
/// [`Metrics::render`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// RocksDB's files: tables, write-ahead log, manifest.
    pub rocksdb_bytes: u64,
    /// Snapshot files of the state.
    pub snapshot_bytes: u64,
}

/// What the process uses, read from `/proc` when the page is rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessUsage {
    /// Resident memory.
    pub resident_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on open file descriptors.
    pub max_fds: u64,
    /// User and system CPU time since the process started.
    pub cpu_seconds: f64,
}

/// Everything the node counts, and the registry that renders it.
#[derive(Debug)]
pub struct Metrics {
    /// Writes proposed on this node (as leader).
    pub proposals: Counter,
    /// Proposals that failed or were lost (not those handed to a leader).
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
    /// 1 while a snapshot file of this node's state is being written.
    pub snapshot_writing: CountGauge,
    /// Time to write each snapshot file of the state.
    pub snapshot_seconds: Histogram,
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
    /// TLS handshakes that failed (a certificate refused, say) or took
    /// longer than a request's headers may, by port.
    pub tls_handshake_failures: Family<PortLabels, Counter>,
    /// HTTP connections open, by port.
    pub open_connections: Family<PortLabels, CountGauge>,
    /// Answered HTTP requests, by port, route, method and status.
    pub http_requests: Family<RequestLabels, Counter>,
    /// Time to the answer's headers, by port, route and method.
    pub http_request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Watches open.
    pub watchers: CountGauge,
    /// Peer messages that had nowhere to go (unknown address).
    pub messages_unroutable: Counter,
    /// Duration of each synced write of the Raft log.
    pub fsync_seconds: Histogram,
    /// Duration of each batch applied to the key-value state.
    pub apply_seconds: Histogram,
    peers: Mutex<BTreeMap<NodeId, Arc<PeerStats>>>,
    peer_write_seconds: Family<PeerLabels, Histogram, fn() -> Histogram>,
    peer_send_failures: Family<PeerLabels, Counter>,
    peer_streams_opened: Family<PeerLabels, Counter>,
    /// Set from the Raft core's status and the store at each rendering.
    rendered: Rendered,
    registry: Registry,
}

/// The series set when the page is rendered.
#[derive(Debug, Default)]
struct Rendered {
    term: CountGauge,
    commit: CountGauge,
    applied: CountGauge,
    last_index: CountGauge,
    snapshot_index: CountGauge,
    revision: CountGauge,
    role: CountGauge,
    has_leader: CountGauge,
    dropped: Family<ReasonLabels, Counter>,
    peer_lag: Family<PeerLabels, CountGauge>,
    disk: Family<DirectoryLabels, CountGauge>,
    resident_bytes: CountGauge,
    open_fds: CountGauge,
    max_fds: CountGauge,
    cpu_seconds: Counter<f64, AtomicU64>,
    /// Renderings one at a time, so two never interleave their updates.
    lock: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Self {
            proposals: Counter::default(),
            proposals_failed: Counter::default(),
            leader_changes: Counter::default(),
            snapshots_sent: Counter::default(),
            snapshots_received: Counter::default(),
            snapshots_taken: Counter::default(),
            snapshots_failed: Counter::default(),
            snapshot_writing: CountGauge::default(),
            snapshot_seconds: Histogram::new(SNAPSHOT_BUCKETS),
            connections_refused: Counter::default(),
            connections_closed_idle: Counter::default(),
            connections_timed_out: Counter::default(),
            accept_errors: Counter::default(),
            tls_handshake_failures: Family::default(),
            open_connections: Family::default(),
            http_requests: Family::default(),
            http_request_seconds: Family::new_with_constructor(latency_histogram),
            watchers: CountGauge::default(),
            messages_unroutable: Counter::default(),
            fsync_seconds: latency_histogram(),
            apply_seconds: latency_histogram(),
            peers: Mutex::default(),
            peer_write_seconds: Family::new_with_constructor(latency_histogram),
            peer_send_failures: Family::default(),
            peer_streams_opened: Family::default(),
            rendered: Rendered::default(),
            registry: Registry::default(),
        };
        metrics.register();
        metrics
    }
}

impl Metrics {
    /// Puts every series in the registry (clones share their values).
    fn register(&mut self) {
        let r = &mut self.registry;
        let g = &self.rendered;
        r.register("raftcfg_term", "Current Raft term", g.term.clone());
        r.register(
            "raftcfg_commit_index",
            "Highest committed log index",
            g.commit.clone(),
        );
        r.register(
            "raftcfg_applied_index",
            "Highest applied log index",
            g.applied.clone(),
        );
        r.register(
            "raftcfg_last_log_index",
            "Last log index",
            g.last_index.clone(),
        );
        r.register(
            "raftcfg_snapshot_index",
            "Index the log is compacted to",
            g.snapshot_index.clone(),
        );
        r.register(
            "raftcfg_revision",
            "Revision of the key-value store",
            g.revision.clone(),
        );
        r.register(
            "raftcfg_role",
            "0 follower, 1 pre-candidate, 2 candidate, 3 leader",
            g.role.clone(),
        );
        r.register(
            "raftcfg_has_leader",
            "1 if this node knows a leader",
            g.has_leader.clone(),
        );
        r.register(
            "raftcfg_snapshot_writing",
            "1 while a snapshot file of the state is being written",
            self.snapshot_writing.clone(),
        );
        let counters: [(&str, &str, &Counter); 12] = [
            (
                "raftcfg_proposals",
                "Writes proposed on this node",
                &self.proposals,
            ),
            (
                "raftcfg_proposals_failed",
                "Proposals that failed or were lost",
                &self.proposals_failed,
            ),
            (
                "raftcfg_leader_changes",
                "Changes of the known leader",
                &self.leader_changes,
            ),
            (
                "raftcfg_snapshots_sent",
                "Snapshots sent to followers",
                &self.snapshots_sent,
            ),
            (
                "raftcfg_snapshots_received",
                "Snapshots installed from a leader",
                &self.snapshots_received,
            ),
            (
                "raftcfg_messages_unroutable",
                "Peer messages to members of unknown address",
                &self.messages_unroutable,
            ),
            (
                "raftcfg_snapshots_taken",
                "Snapshot files written of this node's state",
                &self.snapshots_taken,
            ),
            (
                "raftcfg_snapshots_failed",
                "Snapshot transfers to followers that failed",
                &self.snapshots_failed,
            ),
            (
                "raftcfg_connections_refused",
                "Connections refused at a port's connection limit, none being idle",
                &self.connections_refused,
            ),
            (
                "raftcfg_connections_closed_idle",
                "Idle connections closed after the idle timeout or to make room",
                &self.connections_closed_idle,
            ),
            (
                "raftcfg_connections_timed_out",
                "Connections closed for sending request headers too slowly",
                &self.connections_timed_out,
            ),
            (
                "raftcfg_accept_errors",
                "Connections that could not be accepted (e.g. out of descriptors)",
                &self.accept_errors,
            ),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        r.register(
            "raftcfg_peer_messages_dropped",
            "Peer messages the Raft core dropped, by reason",
            g.dropped.clone(),
        );
        r.register(
            "raftcfg_fsync_seconds",
            "Synced writes of the Raft log",
            self.fsync_seconds.clone(),
        );
        r.register(
            "raftcfg_apply_seconds",
            "Batches applied to the key-value state",
            self.apply_seconds.clone(),
        );
        r.register(
            "raftcfg_snapshot_seconds",
            "Time to write a snapshot file of the state",
            self.snapshot_seconds.clone(),
        );
        r.register(
            "raftcfg_peer_replication_lag_entries",
            "Leader's last index minus the peer's matched index (leader only)",
            g.peer_lag.clone(),
        );
        r.register(
            "raftcfg_peer_write_seconds",
            "Time to write a batch of messages to a peer's stream",
            self.peer_write_seconds.clone(),
        );
        r.register(
            "raftcfg_peer_send_failures",
            "Streams to a peer that could not be opened or broke",
            self.peer_send_failures.clone(),
        );
        r.register(
            "raftcfg_peer_streams_opened",
            "Streams of messages opened to a peer",
            self.peer_streams_opened.clone(),
        );
        r.register(
            "raftcfg_http_requests",
            "Answered HTTP requests, by port, route, method and status",
            self.http_requests.clone(),
        );
        r.register(
            "raftcfg_http_request_seconds",
            "Time from a request to its answer's headers, by port, route and method",
            self.http_request_seconds.clone(),
        );
        r.register(
            "raftcfg_tls_handshake_failures",
            "TLS handshakes that failed or took too long, by port",
            self.tls_handshake_failures.clone(),
        );
        r.register(
            "raftcfg_open_connections",
            "HTTP connections open, by port (a peer stream leaves the count once upgraded)",
            self.open_connections.clone(),
        );
        r.register("raftcfg_watchers", "Watches open", self.watchers.clone());
        r.register(
            "raftcfg_data_dir_bytes",
            "Bytes on disk in the data directory, by part (rocksdb, snapshots)",
            g.disk.clone(),
        );
        r.register(
            "process_resident_memory_bytes",
            "Resident memory of the process",
            g.resident_bytes.clone(),
        );
        r.register(
            "process_open_fds",
            "Open file descriptors",
            g.open_fds.clone(),
        );
        r.register(
            "process_max_fds",
            "Soft limit on open file descriptors",
            g.max_fds.clone(),
        );
        r.register(
            "process_cpu_seconds",
            "User and system CPU time of the process",
            g.cpu_seconds.clone(),
        );
        r.register(
            "raftcfg_build",
            "The running build",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
    }

    /// The statistics of `peer`, created on first use.
    pub fn peer(&self, peer: NodeId) -> Arc<PeerStats> {
        let labels = PeerLabels { peer: peer.get() };
        self.peers
            .lock()
            .expect("metrics lock is never poisoned")
            .entry(peer)
            .or_insert_with(|| {
                Arc::new(PeerStats {
                    write: self.peer_write_seconds.get_or_create_owned(&labels),
                    failures: self.peer_send_failures.get_or_create_owned(&labels),
                    streams_opened: self.peer_streams_opened.get_or_create_owned(&labels),
                })
            })
            .clone()
    }

    /// Drops the series of every peer that is not one of `members` (a
    /// removed member's series end with it).
    pub fn keep_peers(&self, members: impl Fn(NodeId) -> bool) {
        self.peers
            .lock()
            .expect("metrics lock is never poisoned")
            .retain(|peer, _| {
                let keep = members(*peer);
                if !keep {
                    let labels = PeerLabels { peer: peer.get() };
                    self.peer_write_seconds.remove(&labels);
                    self.peer_send_failures.remove(&labels);
                    self.peer_streams_opened.remove(&labels);
                }
                keep
            });
    }

    /// Counts an answered HTTP request and its time to the answer.
    pub fn http_request(&self, route: RouteLabels, status: u16, elapsed: Duration) {
        observe(&self.http_request_seconds.get_or_create(&route), elapsed);
        self.http_requests
            .get_or_create(&RequestLabels {
                port: route.port,
                route: route.route,
                method: route.method,
                status,
            })
            .inc();
    }

    /// The OpenMetrics text exposition of the metrics, with the gauges set
    /// from the Raft core's `status`, the store's `revision`, the data
    /// directory's `disk` usage and the `process`'s.
    pub fn render(
        &self,
        status: &Status,
        revision: u64,
        disk: DiskUsage,
        process: ProcessUsage,
    ) -> String {
        let g = &self.rendered;
        let _one_at_a_time = g.lock.lock().expect("metrics lock is never poisoned");
        g.term.set(status.term.get());
        g.commit.set(status.commit.get());
        g.applied.set(status.applied.get());
        g.last_index.set(status.last_index.get());
        g.snapshot_index.set(status.snapshot_index.get());
        g.revision.set(revision);
        g.role.set(match status.role {
            Role::Follower => 0,
            Role::PreCandidate => 1,
            Role::Candidate => 2,
            Role::Leader => 3,
        });
        g.has_leader.set(u64::from(status.leader_id.is_some()));
        let drops = status.drops;
        for (reason, count) in [
            ("misaddressed", drops.misaddressed),
            ("malformed", drops.malformed),
            ("stale", drops.stale),
            ("overflowing", drops.overflowing),
        ] {
            catch_up(&g.dropped.get_or_create(&ReasonLabels { reason }), count);
        }
        g.peer_lag.clear();
        for (peer, progress) in &status.progress {
            if *peer != status.id {
                let lag = status
                    .last_index
                    .get()
                    .saturating_sub(progress.matched.get());
                g.peer_lag
                    .get_or_create(&PeerLabels { peer: peer.get() })
                    .set(lag);
            }
        }
        for (part, bytes) in [
            ("rocksdb", disk.rocksdb_bytes),
            ("snapshots", disk.snapshot_bytes),
        ] {
            g.disk.get_or_create(&DirectoryLabels { part }).set(bytes);
        }
        g.resident_bytes.set(process.resident_bytes);
        g.open_fds.set(process.open_fds);
        g.max_fds.set(process.max_fds);
        let spent = process.cpu_seconds - g.cpu_seconds.get();
        if spent > 0.0 {
            g.cpu_seconds.inc_by(spent);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Raises `counter` to `total`, a count kept elsewhere that only grows.
fn catch_up(counter: &Counter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

/// What the process uses now, from `/proc/self` (zeros where it cannot be
/// read, e.g. on a system without `/proc`).
pub fn process_usage() -> ProcessUsage {
    let resident_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0);
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count() as u64);
    let max_fds = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft);
    let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| cpu_ticks(&stat))
        .map_or(0.0, |ticks| {
            ticks as f64 / rustix::param::clock_ticks_per_second() as f64
        });
    ProcessUsage {
        resident_bytes,
        open_fds,
        max_fds,
        cpu_seconds,
    }
}

/// User plus system time, in clock ticks, from a `/proc/PID/stat` line:
/// fields 14 and 15, counted after the command name (which may hold
/// spaces and parentheses, so the fields start after the last `)`).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        Status {
            id: NodeId(1),
            cluster_id: None,
            role: Role::Follower,
            term: raftcfg_raft::Term(0),
            leader_id: None,
            commit: raftcfg_raft::LogIndex(0),
            applied: raftcfg_raft::LogIndex(0),
            last_index: raftcfg_raft::LogIndex(0),
            last_term: raftcfg_raft::Term(0),
            snapshot_index: raftcfg_raft::LogIndex(0),
            membership: raftcfg_raft::Membership::default(),
            membership_change_pending: false,
            transferring_to: None,
            progress: BTreeMap::new(),
            drops: raftcfg_raft::DropCounters::default(),
        }
    }

    fn render(metrics: &Metrics) -> String {
        metrics.render(&status(), 7, DiskUsage::default(), ProcessUsage::default())
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let metrics = Metrics::default();
        observe(&metrics.fsync_seconds, Duration::from_micros(50));
        observe(&metrics.fsync_seconds, Duration::from_millis(3));
        observe(&metrics.fsync_seconds, Duration::from_secs(10));
        let out = render(&metrics);
        assert!(
            out.contains("raftcfg_fsync_seconds_bucket{le=\"0.0001\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("raftcfg_fsync_seconds_bucket{le=\"0.005\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("raftcfg_fsync_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("raftcfg_fsync_seconds_count 3\n"), "{out}");
    }

    #[test]
    fn a_removed_peers_series_disappear() {
        let metrics = Metrics::default();
        metrics.peer(NodeId(7)).streams_opened.inc();
        metrics.peer(NodeId(8)).failures.inc();
        let out = render(&metrics);
        assert!(
            out.contains("raftcfg_peer_streams_opened_total{peer=\"7\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("raftcfg_peer_send_failures_total{peer=\"8\"} 1\n"),
            "{out}"
        );

        metrics.keep_peers(|peer| peer == NodeId(8));

        let out = render(&metrics);
        assert!(!out.contains("peer=\"7\""), "{out}");
        assert!(out.contains("peer=\"8\""), "{out}");
    }

    #[test]
    fn requests_are_counted_by_route_and_status_and_timed() {
        let metrics = Metrics::default();
        let route = RouteLabels {
            port: CLIENT_PORT,
            route: "/v1/kv/{*key}".to_owned(),
            method: "GET".to_owned(),
        };
        metrics.http_request(route.clone(), 200, Duration::from_millis(2));
        metrics.http_request(route, 404, Duration::from_millis(1));
        let out = render(&metrics);
        assert!(
            out.contains(
                "raftcfg_http_requests_total{port=\"client\",route=\"/v1/kv/{*key}\",method=\"GET\",status=\"200\"} 1\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "raftcfg_http_request_seconds_count{port=\"client\",route=\"/v1/kv/{*key}\",method=\"GET\"} 2\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn counts_kept_elsewhere_only_ever_rise_and_build_info_is_there() {
        let metrics = Metrics::default();
        let mut status = status();
        status.drops.stale = 5;
        let usage = ProcessUsage {
            cpu_seconds: 2.5,
            ..ProcessUsage::default()
        };
        metrics.render(&status, 1, DiskUsage::default(), usage);
        let out = metrics.render(&status, 1, DiskUsage::default(), usage);
        assert!(
            out.contains("raftcfg_peer_messages_dropped_total{reason=\"stale\"} 5\n"),
            "{out}"
        );
        assert!(out.contains("process_cpu_seconds_total 2.5\n"), "{out}");
        assert!(
            out.contains(&format!(
                "raftcfg_build_info{{version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{out}"
        );
    }

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 77 0 0";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn the_process_reads_its_own_usage() {
        let usage = process_usage();
        assert!(usage.resident_bytes > 0, "{usage:?}");
        assert!(
            usage.open_fds > 0 && usage.max_fds >= usage.open_fds,
            "{usage:?}"
        );
    }
}
