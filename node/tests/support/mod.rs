//! Real `raftcfg serve` processes on loopback ports, for the multi-process
//! tests: start, kill -9, stop, restart, wipe, and form a cluster through
//! the HTTP API like an operator would.

#![allow(dead_code)] // Each test file uses a different part.

pub mod certs;
pub mod patience;
pub mod peer_stream;
pub mod ports;
pub mod proxy;
pub mod solo;
pub mod workload;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftcfg_client::http::{Client, ClientOptions, ClientTls, Consistency, Precondition};
use raftcfg_client::wire::{AddMemberRequest, NodeId, NodeStatus};
use tempfile::TempDir;

use patience::patience;
use ports::ReservedPort;

/// The `raftcfg` binary cargo built for these tests.
pub const RAFTCFG: &str = env!("CARGO_BIN_EXE_raftcfg");

/// How long a node may take to answer after its process starts (opening
/// RocksDB and replaying its log), before [`patience`] scales it.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The base figure of [`wait_for`]'s deadline.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of a node's log quoted in a failure message.
const LOG_TAIL_LINES: usize = 30;

/// One node: its name, ports, data directory and (when running) process.
/// Its two ports are reserved for the node's whole life (see
/// [`ports`]), so it can be killed and started again on them.
pub struct Node {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub extra_args: Vec<String>,
    /// The peer URL advertised, if not the peer port itself (a proxy).
    pub advertise_peer: Option<String>,
    /// Shell `ulimit` options the process starts under (e.g. `-Sn 1024`).
    pub ulimit: Option<String>,
    /// With it, the client port serves TLS and is reached with it.
    pub client_tls: Option<ClientTls>,
    _ports: [ReservedPort; 2],
    child: Option<Child>,
}

impl Node {
    /// A node that is not started, with two ports reserved for it.
    pub fn new(name: impl Into<String>, data_dir: PathBuf, extra_args: &[&str]) -> Self {
        let client = ReservedPort::any();
        let peer = ReservedPort::any();
        Self {
            name: name.into(),
            client_port: client.port(),
            peer_port: peer.port(),
            data_dir,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            advertise_peer: None,
            ulimit: None,
            client_tls: None,
            _ports: [client, peer],
            child: None,
        }
    }

    pub fn client_url(&self) -> String {
        let scheme = if self.client_tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// Client options that reach this node (its TLS, if it has it).
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            tls: self.client_tls.clone().unwrap_or_default(),
            ..ClientOptions::default()
        }
    }

    pub fn peer_url(&self) -> String {
        self.advertise_peer
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{}", self.peer_port))
    }

    pub fn client(&self) -> Client {
        Client::with_options([self.client_url()], self.client_options()).expect("a valid endpoint")
    }

    /// `--wal-file-bytes` at its smallest unless the test sets it: the
    /// default writes 128 MiB at every start, too much for a suite that
    /// starts hundreds of nodes. Recycled log files are used all the same.
    fn wal_file_bytes(&self) -> Vec<String> {
        if self
            .extra_args
            .iter()
            .any(|arg| arg.starts_with("--wal-file-bytes"))
        {
            return Vec::new();
        }
        vec![
            "--wal-file-bytes".into(),
            raftcfg_node::storage::DbOptions::MIN_WAL_FILE_BYTES.to_string(),
        ]
    }

    /// Starts `raftcfg serve` and waits until its API answers. Panics with
    /// the end of the node's log if the process exits first or does not
    /// answer in time.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .unwrap();
        // With limits, the process is started by a shell that sets them
        // and then becomes it (exec).
        let mut command = match &self.ulimit {
            None => Command::new(RAFTCFG),
            Some(options) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit {options} && exec \"$0\" \"$@\""))
                    .arg(RAFTCFG);
                shell
            }
        };
        let child = command
            .arg("serve")
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args([
                "--listen-client",
                &format!("127.0.0.1:{}", self.client_port),
            ])
            .args(["--listen-peer", &format!("127.0.0.1:{}", self.peer_port)])
            .args(self.wal_file_bytes())
            .args(&self.extra_args)
            .args(
                self.advertise_peer
                    .iter()
                    .flat_map(|url| ["--advertise-peer", url.as_str()]),
            )
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start raftcfg serve");
        self.child = Some(child);
        let probe = Client::with_options(
            [self.client_url()],
            ClientOptions {
                request_timeout: Duration::from_secs(1),
                connect_timeout: Duration::from_secs(1),
                ..self.client_options()
            },
        )
        .expect("a valid endpoint");
        let deadline = Instant::now() + patience(START_TIMEOUT);
        loop {
            if probe.node_status().await.is_ok() {
                return;
            }
            let child = self.child.as_mut().expect("started above");
            if let Some(exit) = child.try_wait().expect("poll the node's process") {
                self.child = None;
                panic!(
                    "{} exited ({exit}) before it served; its log ends:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not serve within {:?}; its log ends:\n{}",
                    self.name,
                    patience(START_TIMEOUT),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap the killed node");
        }
    }

    /// SIGSTOP: the process freezes, its sockets stay open.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the process it started is still alive (not merely started).
    pub fn is_alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().expect("poll the process").is_none())
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the node runs").id()
    }

    /// The process's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib_of(self.pid()).expect("the node runs")
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill {signal} failed");
        }
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success());
            let exit = child.wait().expect("wait for the node");
            assert!(
                exit.success(),
                "{} exited with {exit}; its log ends:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    pub async fn status(&self) -> NodeStatus {
        self.client().node_status().await.expect("node status")
    }

    /// The status with the digest of the node's state.
    pub async fn status_with_digest(&self) -> NodeStatus {
        self.client()
            .node_status_with_digest_of(&self.client_url())
            .await
            .expect("node status")
    }

    pub fn add_request(&self, node_id: NodeId) -> AddMemberRequest {
        AddMemberRequest {
            node_id,
            name: self.name.clone(),
            peer_url: self.peer_url(),
            client_url: self.client_url(),
        }
    }

    /// The end of this node's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A set of nodes in one temporary directory.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub dir: TempDir,
}

impl Cluster {
    /// `n` nodes, not started; `extra_args` go to every `serve`.
    pub fn new(n: usize, extra_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..n {
            cluster.add_node(extra_args);
        }
        cluster
    }

    pub fn add_node(&mut self, extra_args: &[&str]) -> usize {
        let i = self.nodes.len();
        let name = format!("n{}", i + 1);
        let data_dir = self.dir.path().join(&name);
        self.nodes.push(Node::new(name, data_dir, extra_args));
        i
    }

    /// A client over every node's endpoint.
    pub fn client(&self) -> Client {
        Client::with_options(
            self.nodes.iter().map(Node::client_url),
            self.nodes[0].client_options(),
        )
        .unwrap()
    }

    pub async fn start_all(&mut self) {
        for node in &mut self.nodes {
            node.start().await;
        }
    }

    /// Bootstraps node 0, then joins every other node: learner, then voter.
    pub async fn form(&mut self) {
        self.start_all().await;
        self.nodes[0].client().bootstrap().await.expect("bootstrap");
        self.wait_for_leader(&[0]).await;
        for i in 1..self.nodes.len() {
            self.join(i).await;
        }
    }

    /// Adds node `i` as a learner and promotes it once caught up.
    pub async fn join(&self, i: usize) {
        let client = self.client();
        let id = self.nodes[i].status().await.node_id;
        client
            .add_member(&self.nodes[i].add_request(id))
            .await
            .expect("add a learner");
        let promoted = poll_until(WAIT_TIMEOUT, async || client.promote(id).await.ok()).await;
        if let Err(waited) = promoted {
            panic!(
                "{} was not promoted within {waited:?}\n{}",
                self.nodes[i].name,
                self.log_tails()
            );
        }
    }

    /// Index of the node that leads, among `among`, once one does.
    pub async fn wait_for_leader(&self, among: &[usize]) -> usize {
        let leader = poll_until(WAIT_TIMEOUT, async || {
            for &i in among {
                if let Ok(status) = self.nodes[i].client().node_status().await
                    && status.role == "leader"
                {
                    return Some(i);
                }
            }
            None
        })
        .await;
        leader.unwrap_or_else(|waited| {
            panic!(
                "no leader among {among:?} within {waited:?}\n{}",
                self.log_tails()
            )
        })
    }

    /// The end of every node's log, for failure messages.
    pub fn log_tails(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("--- {} ---\n{}", node.name, node.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub async fn put(&self, key: &str, value: &str) -> u64 {
        self.client()
            .put(key, Bytes::from(value.to_owned()), Precondition::None)
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"))
            .revision
    }

    /// The value of `key` read linearizably through node `i`.
    pub async fn get_via(&self, i: usize, key: &str) -> Option<String> {
        self.nodes[i]
            .client()
            .get(key, Consistency::Linearizable)
            .await
            .unwrap_or_else(|e| panic!("get {key} via {}: {e}", self.nodes[i].name))
            .map(|value| String::from_utf8(value.bytes.to_vec()).unwrap())
    }
}

/// The resident memory of process `pid`, in KiB (`None` once it is gone).
pub fn rss_kib_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Polls `check` every 50 ms until it gives a value (30 s at most, scaled
/// by [`patience`]).
pub async fn wait_for<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    wait_within(what, WAIT_TIMEOUT, check).await
}

/// Polls `check` every 50 ms until it gives a value, for `base` scaled by
/// [`patience`] at most.
pub async fn wait_within<T>(
    what: &str,
    base: Duration,
    check: impl AsyncFnMut() -> Option<T>,
) -> T {
    match poll_until(base, check).await {
        Ok(value) => value,
        Err(waited) => panic!("timed out after {waited:?} waiting for {what}"),
    }
}

/// Polls `check` every 50 ms until it gives a value, for `base` scaled by
/// [`patience`] at most; the error is how long it waited.
pub async fn poll_until<T>(
    base: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Result<T, Duration> {
    let limit = patience(base);
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(limit);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
