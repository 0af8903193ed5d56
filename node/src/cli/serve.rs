//! `raftcfg serve`: run one node until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::driver::{SnapshotPolicy, Timing};
use crate::http_serve::ConnectionLimits;
use crate::kv::Limits;
use crate::server::{self, NodeConfig};
use crate::storage::{DbOptions, MemoryBudget};
use crate::tls::TlsFiles;

/// Options of `raftcfg serve`; each also reads a `RAFTCFG_*` variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// This member's name (on Kubernetes, the pod name). A data directory
    /// created under another name is refused.
    #[arg(long, env = "RAFTCFG_NAME")]
    pub name: String,
    /// Where the Raft log and the state live [default: ./data/NAME].
    #[arg(long, env = "RAFTCFG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address the client API listens on.
    #[arg(long, env = "RAFTCFG_LISTEN_CLIENT", default_value = "0.0.0.0:7379")]
    pub listen_client: SocketAddr,
    /// Address the peer port listens on.
    #[arg(long, env = "RAFTCFG_LISTEN_PEER", default_value = "0.0.0.0:7380")]
    pub listen_peer: SocketAddr,
    /// Client URL advertised to others [default: from --listen-client].
    #[arg(long, env = "RAFTCFG_ADVERTISE_CLIENT", value_parser = parse_url)]
    pub advertise_client: Option<String>,
    /// Peer URL advertised to others [default: from --listen-peer].
    #[arg(long, env = "RAFTCFG_ADVERTISE_PEER", value_parser = parse_url)]
    pub advertise_peer: Option<String>,
    /// A web origin (e.g. https://admin.example.com) whose pages may change
    /// state through the client API; requests from other web pages that
    /// would are refused. Repeatable, or comma-separated.
    #[arg(long = "allowed-origin", env = "RAFTCFG_ALLOWED_ORIGINS", value_delimiter = ',', value_name = "ORIGIN", value_parser = parse_origin)]
    pub allowed_origins: Vec<String>,
    /// The client port's TLS certificate (PEM, leaf first); with it the
    /// port serves HTTPS only. Re-read when the file changes.
    #[arg(
        long,
        env = "RAFTCFG_CERT_FILE",
        value_name = "FILE",
        requires = "key_file"
    )]
    pub cert_file: Option<PathBuf>,
    /// The private key of --cert-file (PEM).
    #[arg(
        long,
        env = "RAFTCFG_KEY_FILE",
        value_name = "FILE",
        requires = "cert_file"
    )]
    pub key_file: Option<PathBuf>,
    /// The CA (PEM) whose client certificates the client port accepts.
    #[arg(
        long,
        env = "RAFTCFG_TRUSTED_CA_FILE",
        value_name = "FILE",
        requires = "cert_file"
    )]
    pub trusted_ca_file: Option<PathBuf>,
    /// Refuse clients without a certificate from --trusted-ca-file.
    #[arg(long, env = "RAFTCFG_CLIENT_CERT_AUTH", requires = "trusted_ca_file")]
    pub client_cert_auth: bool,
    /// The peer port's TLS certificate (PEM, leaf first), presented to
    /// peers both ways: the peer port then serves mutual TLS only. It needs
    /// the serverAuth and clientAuth usages. Re-read when the file changes.
    #[arg(
        long,
        env = "RAFTCFG_PEER_CERT_FILE",
        value_name = "FILE",
        requires_all = ["peer_key_file", "peer_trusted_ca_file"]
    )]
    pub peer_cert_file: Option<PathBuf>,
    /// The private key of --peer-cert-file (PEM).
    #[arg(
        long,
        env = "RAFTCFG_PEER_KEY_FILE",
        value_name = "FILE",
        requires = "peer_cert_file"
    )]
    pub peer_key_file: Option<PathBuf>,
    /// The CA (PEM) that signed every member's peer certificate: peers
    /// without a certificate from it are refused, and members dialled must
    /// present one.
    #[arg(
        long,
        env = "RAFTCFG_PEER_TRUSTED_CA_FILE",
        value_name = "FILE",
        requires = "peer_cert_file"
    )]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// Length of a Raft tick, in milliseconds.
    #[arg(long, env = "RAFTCFG_TICK_MS", default_value_t = Timing::default().tick.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub tick_ms: u64,
    /// Election timeout, in ticks (randomized between it and twice it).
    #[arg(long, env = "RAFTCFG_ELECTION_TICKS", default_value_t = Timing::default().election_ticks, value_parser = clap::value_parser!(u32).range(2..=1_000))]
    pub election_ticks: u32,
    /// Heartbeat interval, in ticks; less than the election timeout.
    #[arg(long, env = "RAFTCFG_HEARTBEAT_TICKS", default_value_t = Timing::default().heartbeat_ticks, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub heartbeat_ticks: u32,
    /// How long, in milliseconds, a leader may hold back a new commit
    /// index that no append or heartbeat carries (0: send it at once).
    /// Under load the next append carries it; this bounds how far an idle
    /// follower's state lags.
    #[arg(long, env = "RAFTCFG_COMMIT_NOTICE_DELAY_MS", default_value_t = Timing::default().commit_notice_delay.as_millis() as u64, value_parser = clap::value_parser!(u64).range(0..=1_000))]
    pub commit_notice_delay_ms: u64,
    /// Snapshot the state and compact the log every this many entries.
    #[arg(long = "snapshot-threshold", env = "RAFTCFG_SNAPSHOT_THRESHOLD", default_value_t = SnapshotPolicy::default().threshold_entries, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_threshold_entries: u64,
    /// Also snapshot once the entries since the last snapshot hold this
    /// many bytes (0: only by --snapshot-threshold).
    #[arg(long, env = "RAFTCFG_SNAPSHOT_THRESHOLD_BYTES", default_value_t = SnapshotPolicy::default().threshold_bytes)]
    pub snapshot_threshold_bytes: u64,
    /// Log entries kept behind each snapshot, so a follower a little behind
    /// is sent entries instead of the whole snapshot.
    #[arg(long = "compaction-tail", env = "RAFTCFG_COMPACTION_TAIL", default_value_t = SnapshotPolicy::default().compaction_tail_entries)]
    pub compaction_tail_entries: u64,
    /// At most this many bytes of log kept behind each snapshot.
    #[arg(long, env = "RAFTCFG_COMPACTION_TAIL_BYTES", default_value_t = SnapshotPolicy::default().compaction_tail_bytes)]
    pub compaction_tail_bytes: u64,
    /// Revisions of change history kept at each snapshot: a watch may start
    /// this far back; an older start is 410 `compacted`.
    #[arg(long, env = "RAFTCFG_WATCH_HISTORY_REVISIONS", default_value_t = SnapshotPolicy::default().watch_history_revisions, value_parser = clap::value_parser!(u64).range(1..))]
    pub watch_history_revisions: u64,
    /// Memory RocksDB's memtables may hold together, in bytes; one column
    /// family's memtable is flushed at half of it.
    #[arg(long, env = "RAFTCFG_MEMTABLES_BYTES", default_value_t = MemoryBudget::default().memtables_bytes)]
    pub memtables_bytes: usize,
    /// Size of the block cache the state's reads share, in bytes.
    #[arg(long, env = "RAFTCFG_BLOCK_CACHE_BYTES", default_value_t = MemoryBudget::default().block_cache_bytes)]
    pub block_cache_bytes: usize,
    /// Size of each of the two write-ahead log files made at start for
    /// RocksDB to write over, in bytes: at most an eighth of the disk's free
    /// space each, and none below 1 MiB (0: none; RocksDB then appends
    /// until it has recycled files of its own). A sync after writing inside
    /// a file is cheaper than after an append; they are written at every
    /// start.
    #[arg(long, env = "RAFTCFG_WAL_FILE_BYTES", default_value_t = DbOptions::SERVE_WAL_FILE_BYTES)]
    pub wal_file_bytes: u64,
    /// Largest key accepted, in bytes (at most 65536).
    #[arg(long, env = "RAFTCFG_MAX_KEY_BYTES", default_value_t = Limits::DEFAULT_MAX_KEY_BYTES)]
    pub max_key_bytes: usize,
    /// Largest value accepted, in bytes (at most 33554432, 32 MiB).
    #[arg(long, env = "RAFTCFG_MAX_VALUE_BYTES", default_value_t = Limits::DEFAULT_MAX_VALUE_BYTES)]
    pub max_value_bytes: usize,
    /// Largest snapshot accepted from a leader, in bytes: a follower
    /// refuses a larger one before writing it to disk.
    #[arg(long, env = "RAFTCFG_MAX_SNAPSHOT_BYTES", default_value_t = server::DEFAULT_MAX_SNAPSHOT_BYTES, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_snapshot_bytes: u64,
    /// Client connections open at once at most; beyond it an idle one is
    /// closed (one that never sent a request first, else the one idle the
    /// longest), or the new one refused if none is idle.
    /// Lowered at start if the open-file limit cannot hold it.
    #[arg(long, env = "RAFTCFG_MAX_CLIENT_CONNECTIONS", default_value_t = ConnectionLimits::CLIENT_DEFAULTS.max_connections as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_client_connections: u64,
    /// Seconds a client gets to send a request's headers, and each piece
    /// of its body, before the connection is closed.
    #[arg(long = "client-read-timeout", env = "RAFTCFG_CLIENT_READ_TIMEOUT", default_value_t = ConnectionLimits::CLIENT_DEFAULTS.header_read_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub client_read_timeout_secs: u64,
    /// Seconds a client connection may stay open with no request.
    #[arg(long = "client-idle-timeout", env = "RAFTCFG_CLIENT_IDLE_TIMEOUT", default_value_t = ConnectionLimits::CLIENT_DEFAULTS.idle_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub client_idle_timeout_secs: u64,
    /// Seconds a token issued for a password (POST /v1/auth/token) is good
    /// for.
    #[arg(long = "auth-token-ttl", env = "RAFTCFG_AUTH_TOKEN_TTL", default_value_t = crate::api::DEFAULT_TOKEN_TTL.as_secs(), value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub auth_token_ttl_secs: u64,
    /// Log format.
    #[arg(long, env = "RAFTCFG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Plants a known bug so the fault-injection tests can show they catch
    /// it. Makes the node unsafe; only in builds with the `fault-injection`
    /// feature, which only the tests enable.
    #[cfg(feature = "fault-injection")]
    #[arg(long, value_enum, hide = true)]
    pub planted_bug: Option<crate::faults::PlantedBug>,
    /// Keeps unsynced writes in the process until the next sync, so kill -9
    /// acts as a power cut. Only with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    #[arg(long, hide = true)]
    pub simulate_power_loss: bool,
}

/// How logs are written (filtered by `RUST_LOG`, default `info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_url(text: &str) -> Result<String, String> {
    crate::kv::check_member_url(text)?;
    Ok(text.to_owned())
}

/// An origin as browsers send it: scheme, host and optional port, nothing
/// after (`https://admin.example.com`, `http://localhost:3000`).
fn parse_origin(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| format!("'{text}' is not an origin: it starts with http:// or https://"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err(format!(
            "'{text}' is not an origin: scheme, host and port only, e.g. https://admin.example.com"
        ));
    }
    Ok(text.to_owned())
}

impl ServeArgs {
    /// The node configuration these options describe ([`server::start`]
    /// checks it).
    pub fn node_config(&self) -> anyhow::Result<NodeConfig> {
        Ok(NodeConfig {
            name: self.name.clone(),
            data_dir: self
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("data").join(&self.name)),
            listen_client: self.listen_client,
            listen_peer: self.listen_peer,
            advertise_client: self.advertise_client.clone(),
            advertise_peer: self.advertise_peer.clone(),
            allowed_origins: self.allowed_origins.clone(),
            client_tls: self.cert_file.clone().map(|cert| TlsFiles {
                cert,
                key: self.key_file.clone().unwrap_or_default(),
                trusted_ca: self.trusted_ca_file.clone(),
                client_cert_auth: self.client_cert_auth,
            }),
            peer_tls: self.peer_cert_file.clone().map(|cert| TlsFiles {
                cert,
                key: self.peer_key_file.clone().unwrap_or_default(),
                trusted_ca: self.peer_trusted_ca_file.clone(),
                client_cert_auth: true,
            }),
            timing: Timing {
                tick: Duration::from_millis(self.tick_ms),
                election_ticks: self.election_ticks,
                heartbeat_ticks: self.heartbeat_ticks,
                commit_notice_delay: Duration::from_millis(self.commit_notice_delay_ms),
            },
            snapshots: SnapshotPolicy {
                threshold_entries: self.snapshot_threshold_entries,
                threshold_bytes: self.snapshot_threshold_bytes,
                compaction_tail_entries: self.compaction_tail_entries,
                compaction_tail_bytes: self.compaction_tail_bytes,
                watch_history_revisions: self.watch_history_revisions,
            },
            db: DbOptions {
                memory: MemoryBudget {
                    memtables_bytes: self.memtables_bytes,
                    block_cache_bytes: self.block_cache_bytes,
                },
                wal_file_bytes: self.wal_file_bytes,
            },
            limits: Limits::new(self.max_key_bytes, self.max_value_bytes).map_err(|reason| {
                anyhow::anyhow!("--max-key-bytes / --max-value-bytes: {reason}")
            })?,
            max_snapshot_bytes: self.max_snapshot_bytes,
            client_connections: ConnectionLimits {
                max_connections: self.max_client_connections as usize,
                header_read_timeout: Duration::from_secs(self.client_read_timeout_secs),
                body_read_timeout: Duration::from_secs(self.client_read_timeout_secs),
                idle_timeout: Duration::from_secs(self.client_idle_timeout_secs),
            },
            auth_token_ttl: Duration::from_secs(self.auth_token_ttl_secs),
            faults: self.faults(),
        })
    }

    #[cfg(feature = "fault-injection")]
    fn faults(&self) -> crate::faults::Faults {
        crate::faults::Faults {
            planted_bug: self.planted_bug,
            simulate_power_loss: self.simulate_power_loss,
        }
    }

    #[cfg(not(feature = "fault-injection"))]
    fn faults(&self) -> crate::faults::Faults {
        crate::faults::Faults::default()
    }
}

/// Sets up `tracing` output (`RUST_LOG`, default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the node until Ctrl-C or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let config = args.node_config()?;
    let node = server::start(config.clone()).await?;
    let view = node.node.view();
    tracing::info!(
        name = %config.name,
        id = %view.identity.node_id,
        client = %node.client_addr,
        client_url = %node.address.client_url,
        peer = %node.peer_addr,
        peer_url = %node.address.peer_url,
        data_dir = %config.data_dir.display(),
        "serving"
    );
    match view.status.cluster_id {
        Some(cluster) if view.removed => tracing::warn!(
            %cluster,
            "removed from the cluster: this node serves nothing; to add it again, start it with \
             an empty data directory"
        ),
        Some(cluster) => tracing::info!(%cluster, "member of the cluster"),
        None => tracing::info!(
            "not in a cluster yet: found one with `raftcfg bootstrap --endpoints {client}`, or \
             join one with `raftcfg member add --endpoints <a member's client URL> --node-id {id} \
             --name {name} --peer-url {peer} --client-url {client}`",
            id = view.identity.node_id,
            name = config.name,
            peer = node.address.peer_url,
            client = node.address.client_url
        ),
    }
    tokio::select! {
        signal = wait_for_signal() => {
            signal.context("cannot listen for signals")?;
            tracing::info!("stopping");
        }
        // The driver stopped on its own (a storage failure): shut down and
        // exit non-zero, so a supervisor restarts the node from what is
        // durable instead of leaving it half alive.
        _ = node.node.failed() => {}
    }
    node.shutdown().await
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub async fn wait_for_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(extra: &[&str]) -> Result<Command, clap::Error> {
        let mut args = vec!["raftcfg", "--name", "n1", "--data-dir", "/tmp/n1"];
        args.extend_from_slice(extra);
        Command::try_parse_from(args)
    }

    fn config(extra: &[&str]) -> NodeConfig {
        parse(extra).unwrap().serve.node_config().unwrap()
    }

    #[test]
    fn watch_history_is_a_setting_with_a_documented_default() {
        assert_eq!(config(&[]).snapshots.watch_history_revisions, 100_000);
        let set = config(&["--watch-history-revisions", "250"]);
        assert_eq!(set.snapshots.watch_history_revisions, 250);
        assert!(parse(&["--watch-history-revisions", "0"]).is_err());
    }

    #[test]
    fn every_flag_defaults_to_the_nodes_own_default() {
        let flags = config(&[]);
        let node = NodeConfig::local("n1", "/tmp/n1");
        assert_eq!(flags.timing, node.timing);
        assert_eq!(flags.snapshots, node.snapshots);
        assert_eq!(flags.db, node.db);
        assert_eq!(flags.client_connections, node.client_connections);
        assert_eq!(flags.limits, node.limits);
        assert_eq!(flags.max_snapshot_bytes, node.max_snapshot_bytes);
    }

    #[test]
    fn settings_a_node_cannot_run_with_are_refused_before_it_starts() {
        let error = config(&["--heartbeat-ticks", "10"]).check().unwrap_err();
        assert!(error.to_string().contains("less than"), "{error}");
        let error = NodeConfig::local("a b", "/tmp/ab").check().unwrap_err();
        assert!(
            error.to_string().contains("without slashes or spaces"),
            "{error}"
        );
        let error = config(&["--memtables-bytes", "1024"]).check().unwrap_err();
        assert!(error.to_string().contains("--memtables-bytes"), "{error}");
        assert!(config(&[]).check().is_ok());
    }

    #[test]
    fn an_advertised_url_with_a_path_is_refused_with_the_reason() {
        let error = parse(&["--advertise-peer", "http://n1:7380/raft"])
            .err()
            .expect("refused");
        assert!(error.to_string().contains("has a path"), "{error}");
    }

    #[test]
    fn every_variable_the_operator_sets_is_one_serve_reads() {
        use clap::CommandFactory;
        use raftcfg_operator::crd::{RaftCluster, RaftClusterSpec};

        let read: Vec<String> = Command::command()
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned())
            .collect();
        // Every optional field that adds a variable is set.
        let spec: RaftClusterSpec = serde_json::from_value(serde_json::json!({
            "replicas": 3,
            "image": "raftcfg:test",
            "storage": {"size": "1Gi"},
            "tls": {"enabled": true},
            "engine": {"memtablesBytes": 8388608, "blockCacheBytes": 2097152, "walFileBytes": 0}
        }))
        .unwrap();
        let mut cluster = RaftCluster::new("config", spec);
        cluster.metadata.namespace = Some("prod".into());
        cluster.metadata.uid = Some("uid-1".into());
        let statefulset = raftcfg_operator::resources::statefulset(&cluster, 3);
        let template = statefulset.spec.template.spec.unwrap();
        let set: Vec<String> = template.containers[0]
            .env
            .iter()
            .flatten()
            .map(|var| var.name.clone())
            .filter(|name| name.starts_with("RAFTCFG_"))
            .collect();
        for name in [
            "RAFTCFG_MEMTABLES_BYTES",
            "RAFTCFG_WAL_FILE_BYTES",
            "RAFTCFG_CERT_FILE",
        ] {
            assert!(
                set.iter().any(|n| n == name),
                "the operator no longer sets {name}"
            );
        }
        for name in &set {
            assert!(
                read.contains(name),
                "the operator sets {name}, which serve does not read"
            );
        }
    }

    #[test]
    fn the_operator_checks_the_engine_bounds_and_defaults_the_node_has() {
        use raftcfg_operator::crd::EngineTuning;

        assert_eq!(
            EngineTuning::MIN_MEMTABLES_BYTES,
            MemoryBudget::MIN_MEMTABLES_BYTES as u64
        );
        assert_eq!(
            EngineTuning::MIN_BLOCK_CACHE_BYTES,
            MemoryBudget::MIN_BLOCK_CACHE_BYTES as u64
        );
        assert_eq!(
            EngineTuning::MIN_WAL_FILE_BYTES,
            DbOptions::MIN_WAL_FILE_BYTES
        );
        assert_eq!(
            EngineTuning::MAX_WAL_FILE_BYTES,
            DbOptions::MAX_WAL_FILE_BYTES
        );
        // The operator's memory check counts the node's defaults.
        let defaults = MemoryBudget::default();
        assert_eq!(
            EngineTuning::DEFAULT_MEMTABLES_BYTES,
            defaults.memtables_bytes as u64
        );
        assert_eq!(
            EngineTuning::DEFAULT_BLOCK_CACHE_BYTES,
            defaults.block_cache_bytes as u64
        );
    }
}
