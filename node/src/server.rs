//! A whole running node: the driver, the peer transport and both HTTP
//! servers, started together by [`start`] and stopped together by
//! [`RunningNode::shutdown`]. Used by `raftcfg serve`, `raftcfg dev` and
//! the in-process tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, ApiState};
use crate::driver::{self, DriverConfig, NodeHandle};
use crate::kv::{Limits, MemberAddress};
use crate::metrics::Metrics;
use crate::transport::{Transport, peer_router};

/// Connections the kernel queues for each port before they are accepted.
const LISTEN_BACKLOG: u32 = 1024;

/// How long open requests (watches included) get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything a node needs to start.
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
    /// Length of one Raft tick.
    pub tick: Duration,
    /// Election timeout, in ticks.
    pub election_ticks: u32,
    /// Heartbeat interval, in ticks.
    pub heartbeat_ticks: u32,
    /// Snapshot every this many applied entries.
    pub snapshot_threshold: u64,
    /// Log entries kept behind each snapshot for slow followers.
    pub compaction_tail: u64,
    /// Key and value size limits.
    pub limits: Limits,
    /// A bug to plant (fault-injection tests only).
    pub planted_bug: Option<crate::driver::PlantedBug>,
    /// Make kill -9 lose unsynced writes (fault-injection tests only).
    pub simulate_power_loss: bool,
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
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 1,
            snapshot_threshold: 10_000,
            compaction_tail: 5_000,
            limits: Limits::default(),
            planted_bug: None,
            simulate_power_loss: false,
        }
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
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
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
            .unwrap_or_else(|| default_url(peer_addr)),
        client_url: config
            .advertise_client
            .clone()
            .unwrap_or_else(|| default_url(client_addr)),
    };

    let metrics = Arc::new(Metrics::default());
    let transport = Transport::new(
        address.peer_url.clone(),
        tokio::runtime::Handle::current(),
        metrics.clone(),
    );
    let mut driver_config = DriverConfig::new(config.name.clone(), address.clone());
    driver_config.tick = config.tick;
    driver_config.raft.election_timeout_ticks = config.election_ticks;
    driver_config.raft.heartbeat_interval_ticks = config.heartbeat_ticks;
    driver_config.snapshot_threshold = config.snapshot_threshold;
    driver_config.compaction_tail = config.compaction_tail;
    driver_config.planted_bug = config.planted_bug;
    driver_config.simulate_power_loss = config.simulate_power_loss;
    if let Some(bug) = config.planted_bug {
        tracing::warn!(
            ?bug,
            "a known bug is planted: this node is unsafe, for tests only"
        );
    }
    let data_dir = config.data_dir.clone();
    let outbox = Box::new(transport.clone());
    let started = {
        let metrics = metrics.clone();
        tokio::task::spawn_blocking(move || {
            driver::start(&data_dir, driver_config, outbox, metrics)
        })
        .await?
    };
    let driver = started.with_context(|| {
        format!(
            "cannot open the data directory {}",
            config.data_dir.display()
        )
    })?;
    let node = driver.handle.clone();

    let (shutdown, stopping) = watch::channel(false);
    let api = api::router(ApiState::new(
        node.clone(),
        transport,
        config.limits,
        metrics,
    ));
    let peers = peer_router(node.clone());
    let servers = vec![
        tokio::spawn(serve(client_listener, api, stopping.clone())),
        tokio::spawn(serve(peer_listener, peers, stopping)),
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
fn default_url(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

async fn serve(listener: TcpListener, router: axum::Router, mut stopping: watch::Receiver<bool>) {
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    });
    if let Err(e) = server.await {
        tracing::error!(error = %e, "HTTP server failed");
    }
}

impl RunningNode {
    /// The client API's URL as bound (for tests and `dev`).
    pub fn client_url(&self) -> String {
        default_url(self.client_addr)
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
