//! A whole running node: the driver, the peer transport and both HTTP
//! servers, started together by [`start`] and stopped together by
//! [`RunningNode::shutdown`]. Used by `raftcfg serve`, `raftcfg dev` and
//! the in-process tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use raftcfg_raft::NodeId;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, ApiState};
use crate::driver::{self, DriverConfig, NodeHandle, SnapshotPolicy, Timing};
use crate::faults::Faults;
use crate::fd_budget::{self, FdBudget};
use crate::http_serve::{self, ConnectionLimits};
use crate::kv::{Limits, MemberAddress, SnapshotDir, check_member_url};
use crate::metrics::Metrics;
use crate::storage::DbOptions;
use crate::tls::{ReloadingTls, TlsFiles};
use crate::transport::{PeerLimits, PeerState, SnapshotReceiver, Transport, peer_router};

/// The default largest snapshot accepted from a leader: 64 GiB.
pub const DEFAULT_MAX_SNAPSHOT_BYTES: u64 = 64 << 30;
/// The peer port's bounds on each connection: a snapshot streams its body
/// in many pieces, and peers keep pooled connections idle for up to 60 s.
const PEER_READ_TIMEOUT: Duration = Duration::from_secs(30);
const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Snapshots received at once at most.
const SNAPSHOT_RECEIVE_SLOTS: usize = 1;

/// Connections the kernel queues for each port before they are accepted.
const LISTEN_BACKLOG: u32 = 1024;

/// How long open requests (watches included) get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything a node needs to start; [`start`] checks it.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The member's name.
    pub name: String,
    /// Its data directory (created if missing).
    pub data_dir: PathBuf,
    /// Where the client API listens (port 0: any free port).
    pub listen_client: SocketAddr,
    /// Where the peer port listens.
    pub listen_peer: SocketAddr,
    /// The client URL others should use; default from the bound address.
    pub advertise_client: Option<String>,
    /// The peer URL others should use; default from the bound address.
    pub advertise_peer: Option<String>,
    /// Web origins whose pages may change state (see `api::browser`).
    pub allowed_origins: Vec<String>,
    /// The client port's TLS files; plain HTTP without them.
    pub client_tls: Option<TlsFiles>,
    /// The peer port's TLS files (mutual TLS: `trusted_ca` is required and
    /// so is a peer's certificate); plain HTTP without them.
    pub peer_tls: Option<TlsFiles>,
    /// How Raft time runs.
    pub timing: Timing,
    /// When to snapshot and what to keep.
    pub snapshots: SnapshotPolicy,
    /// RocksDB's memory and write-ahead log files.
    pub db: DbOptions,
    /// Key and value size limits.
    pub limits: Limits,
    /// The largest snapshot accepted from a leader, in bytes.
    pub max_snapshot_bytes: u64,
    /// Client connections open at once at most (fewer if the open-file
    /// limit cannot hold them, see [`FdBudget`]) and their timeouts.
    pub client_connections: ConnectionLimits,
    /// How long a token issued for a password is good for.
    pub auth_token_ttl: Duration,
    /// Faults the fault-injection tests plant (none in other builds).
    pub faults: Faults,
}

impl NodeConfig {
    /// Defaults for a node `name` with data in `data_dir`, listening on
    /// loopback ports chosen by the system.
    pub fn local(name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            name: name.into(),
            data_dir: data_dir.into(),
            listen_client: any,
            listen_peer: any,
            advertise_client: None,
            advertise_peer: None,
            allowed_origins: Vec::new(),
            client_tls: None,
            peer_tls: None,
            timing: Timing::default(),
            snapshots: SnapshotPolicy::default(),
            db: DbOptions {
                wal_file_bytes: DbOptions::SERVE_WAL_FILE_BYTES,
                ..DbOptions::default()
            },
            limits: Limits::default(),
            max_snapshot_bytes: DEFAULT_MAX_SNAPSHOT_BYTES,
            client_connections: ConnectionLimits::CLIENT_DEFAULTS,
            auth_token_ttl: crate::api::DEFAULT_TOKEN_TTL,
            faults: Faults::default(),
        }
    }

    /// Why a node cannot start with this configuration, if it cannot.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.name.is_empty()
            || self.name.contains(['/', '\\'])
            || self.name.contains(char::is_whitespace)
        {
            anyhow::bail!(
                "the name (--name) must be non-empty, without slashes or spaces; got '{}'",
                self.name
            );
        }
        self.timing.check().map_err(anyhow::Error::msg)?;
        self.snapshots.check().map_err(anyhow::Error::msg)?;
        self.db.check().map_err(anyhow::Error::msg)?;
        for (flag, url, tls) in [
            (
                "--advertise-client",
                &self.advertise_client,
                self.client_tls.is_some(),
            ),
            (
                "--advertise-peer",
                &self.advertise_peer,
                self.peer_tls.is_some(),
            ),
        ] {
            let Some(url) = url else { continue };
            check_member_url(url).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
            match (url.starts_with("https://"), tls) {
                (true, false) => anyhow::bail!(
                    "{flag} {url} is https://, but this port serves plain HTTP (TLS is not \
                     configured for it); advertise an http:// URL"
                ),
                (false, true) => anyhow::bail!(
                    "{flag} {url} is http://, but this port serves TLS; advertise an https:// URL"
                ),
                _ => {}
            }
        }
        if let Some(tls) = &self.client_tls {
            tls.check().map_err(anyhow::Error::msg)?;
        }
        if let Some(tls) = &self.peer_tls {
            if tls.trusted_ca.is_none() || !tls.client_cert_auth {
                anyhow::bail!(
                    "peer TLS is mutual: --peer-cert-file needs --peer-trusted-ca-file, the CA \
                     whose certificates members present to each other"
                );
            }
            tls.check().map_err(|e| anyhow::anyhow!("peer TLS: {e}"))?;
        }
        if self.client_connections.max_connections == 0 {
            anyhow::bail!("at least 1 client connection must be allowed");
        }
        Ok(())
    }
}

/// A started node.
pub struct RunningNode {
    /// The driver's handle.
    pub node: NodeHandle,
    /// The bound client API address.
    pub client_addr: SocketAddr,
    /// The bound peer address.
    pub peer_addr: SocketAddr,
    /// The advertised addresses.
    pub address: MemberAddress,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    driver: std::thread::JoinHandle<Result<(), crate::replica::ReplicaError>>,
}

/// Opens the data directory, binds both ports and starts serving.
pub async fn start(config: NodeConfig) -> anyhow::Result<RunningNode> {
    config.check()?;
    let budget = descriptor_budget(config.client_connections.max_connections)?;
    crate::storage::create_private_dir(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    if let Some(mode) = crate::storage::open_to_others(&config.data_dir) {
        tracing::warn!(
            data_dir = %config.data_dir.display(),
            mode = format!("{mode:o}"),
            "other users may read the data directory, which holds every value: chmod 700 it"
        );
    }
    let client_tls = match &config.client_tls {
        Some(files) => Some(Arc::new(
            ReloadingTls::load(files.clone()).map_err(anyhow::Error::msg)?,
        )),
        None => None,
    };
    let peer_tls = match &config.peer_tls {
        Some(files) => Some(Arc::new(
            ReloadingTls::load(files.clone()).map_err(anyhow::Error::msg)?,
        )),
        None => None,
    };
    let peer_client_tls = match &peer_tls {
        Some(tls) => Some(Arc::new(tls.client_config().map_err(anyhow::Error::msg)?)),
        None => None,
    };
    let client_listener = listen(config.listen_client)
        .with_context(|| format!("cannot listen for clients on {}", config.listen_client))?;
    let peer_listener = listen(config.listen_peer)
        .with_context(|| format!("cannot listen for peers on {}", config.listen_peer))?;
    let client_addr = client_listener.local_addr()?;
    let peer_addr = peer_listener.local_addr()?;
    let address = MemberAddress {
        name: config.name.clone(),
        peer_url: config
            .advertise_peer
            .clone()
            .unwrap_or_else(|| default_url(peer_addr, config.peer_tls.is_some())),
        client_url: config
            .advertise_client
            .clone()
            .unwrap_or_else(|| default_url(client_addr, config.client_tls.is_some())),
    };

    let metrics = Arc::new(Metrics::default());
    let snapshots = SnapshotDir::open(&config.data_dir).with_context(|| {
        format!(
            "cannot use the snapshot folder in {}",
            config.data_dir.display()
        )
    })?;
    let transport = Transport::new(
        address.peer_url.clone(),
        tokio::runtime::Handle::current(),
        metrics.clone(),
        snapshots.clone(),
        peer_client_tls,
    );
    let mut driver_config = DriverConfig::new(config.name.clone(), address.clone());
    driver_config.timing = config.timing;
    driver_config.snapshots = config.snapshots;
    driver_config.db = config.db;
    driver_config.faults = config.faults;
    if config.faults.any() {
        tracing::warn!(
            bug = config.faults.planted_bug_name(),
            power_loss = config.faults.simulates_power_loss(),
            "faults are planted: this node is unsafe, for tests only"
        );
    }
    let max_append_bytes = driver_config.raft_config(NodeId(0)).max_append_bytes;
    let data_dir = config.data_dir.clone();
    let outbox = Box::new(transport.clone());
    let started = {
        let metrics = metrics.clone();
        tokio::task::spawn_blocking(move || {
            driver::start(&data_dir, driver_config, outbox, metrics)
        })
        .await?
    };
    let driver = started.map_err(|error| {
        // Most storage errors name the directory already; say it once.
        let directory = config.data_dir.display().to_string();
        let error = anyhow::Error::from(error);
        if format!("{error:#}").contains(&directory) {
            error
        } else {
            error.context(format!("cannot open the data directory {directory}"))
        }
    })?;
    let node = driver.handle.clone();
    transport.set_own_id(node.view().identity.node_id);

    let (shutdown, stopping) = watch::channel(false);
    let peer_limits = PeerLimits::for_limits(&config.limits, max_append_bytes);
    let mut api_state = ApiState::new(
        node.clone(),
        driver.db.clone(),
        transport,
        config.limits,
        metrics.clone(),
    );
    api_state.allowed_origins = Arc::new(config.allowed_origins.clone());
    api_state.client_tls = config.client_tls.clone();
    api_state.token_ttl = config.auth_token_ttl;
    let api = api::router(api_state);
    let mut peer_state = PeerState::new(
        node.clone(),
        peer_limits,
        SnapshotReceiver {
            node: node.clone(),
            dir: driver.snapshots.clone(),
            max_bytes: config.max_snapshot_bytes,
            slots: Arc::new(tokio::sync::Semaphore::new(SNAPSHOT_RECEIVE_SLOTS)),
        },
        stopping.clone(),
    );
    peer_state.client_tls = config.client_tls.clone();
    let peers = crate::http_metrics::tracked(
        peer_router(peer_state),
        metrics.clone(),
        crate::metrics::PEER_PORT,
    );
    let client_connections = ConnectionLimits {
        max_connections: budget.client_connections,
        ..config.client_connections
    };
    let peer_connections = ConnectionLimits {
        max_connections: budget.peer_connections,
        header_read_timeout: PEER_READ_TIMEOUT,
        body_read_timeout: PEER_READ_TIMEOUT,
        idle_timeout: PEER_IDLE_TIMEOUT,
    };
    let servers = vec![
        tokio::spawn(http_serve::serve(
            client_listener,
            crate::metrics::CLIENT_PORT,
            api,
            client_connections,
            client_tls,
            metrics.clone(),
            stopping.clone(),
        )),
        tokio::spawn(http_serve::serve(
            peer_listener,
            crate::metrics::PEER_PORT,
            peers,
            peer_connections,
            peer_tls,
            metrics,
            stopping,
        )),
    ];
    Ok(RunningNode {
        node,
        client_addr,
        peer_addr,
        address,
        shutdown,
        servers,
        driver: driver.thread,
    })
}

/// A listener on `addr` with `SO_REUSEADDR`, so a node restarted at once
/// after a crash binds its port although connections of its previous life
/// linger in TIME_WAIT (the tests also rely on it to keep a node's ports
/// reserved across restarts).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// `http://addr`, with an unspecified IP (0.0.0.0) replaced by loopback.
fn default_url(addr: SocketAddr, tls: bool) -> String {
    let ip = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

/// Raises the open-file limit and divides it (see [`fd_budget`]).
fn descriptor_budget(max_client_connections: usize) -> anyhow::Result<FdBudget> {
    let (before, limit) =
        fd_budget::raise_open_files_limit().context("cannot read or raise the open-file limit")?;
    if limit > before {
        tracing::info!("raised the open-file limit from {before} to {limit}");
    }
    let budget = FdBudget::divide(limit, max_client_connections).map_err(anyhow::Error::msg)?;
    if budget.client_connections < max_client_connections {
        tracing::warn!(
            "the open-file limit of {limit} holds {} client connections, not the {} asked for",
            budget.client_connections,
            max_client_connections
        );
    }
    Ok(budget)
}

impl RunningNode {
    /// The client API's URL as bound (for tests and `dev`).
    pub fn client_url(&self) -> String {
        default_url(
            self.client_addr,
            self.address.client_url.starts_with("https://"),
        )
    }

    /// Stops serving, then stops the driver and waits for it, so the data
    /// directory is closed cleanly. Returns the driver's failure, if any.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        for server in self.servers {
            let abort = server.abort_handle();
            if tokio::time::timeout(DRAIN_TIMEOUT, server).await.is_err() {
                abort.abort();
            }
        }
        self.node.stop();
        let driver = self.driver;
        let result = tokio::task::spawn_blocking(move || driver.join()).await?;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(anyhow::anyhow!("the driver thread panicked")),
        }
    }
}
