//! Real `raftcfg serve` processes on loopback ports, for the multi-process
//! tests: start, kill -9, stop, restart, wipe, and form a cluster through
//! the HTTP API like an operator would.

#![allow(dead_code)] // Each test file uses a different part.

pub mod process_platform;
pub mod proxy;
pub mod solo;
pub mod workload;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftcfg_client::http::{Client, Consistency, Precondition};
use raftcfg_client::wire::{AddMemberRequest, NodeStatus};
use tempfile::TempDir;

/// The `raftcfg` binary cargo built for these tests.
pub const RAFTCFG: &str = env!("CARGO_BIN_EXE_raftcfg");

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind a free loopback port")
}

/// One node: its name, ports, data directory and (when running) process.
pub struct Node {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub extra_args: Vec<String>,
    /// The peer URL advertised, if not the peer port itself (a proxy).
    pub advertise_peer: Option<String>,
    child: Option<Child>,
}

impl Node {
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        self.advertise_peer
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{}", self.peer_port))
    }

    pub fn client(&self) -> Client {
        Client::new([self.client_url()]).expect("a valid endpoint")
    }

    /// Starts `raftcfg serve` and waits until its API answers.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .unwrap();
        let child = Command::new(RAFTCFG)
            .arg("serve")
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args([
                "--listen-client",
                &format!("127.0.0.1:{}", self.client_port),
            ])
            .args(["--listen-peer", &format!("127.0.0.1:{}", self.peer_port)])
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
        let client = self.client();
        wait_for(&format!("{} to serve", self.name), async || {
            client.node_status().await.ok()
        })
        .await;
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
            assert!(exit.success(), "{} exited with {exit}", self.name);
        }
    }

    pub async fn status(&self) -> NodeStatus {
        self.client().node_status().await.expect("node status")
    }

    pub fn add_request(&self, node_id: u64) -> AddMemberRequest {
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
        lines[lines.len().saturating_sub(20)..].join("\n")
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
        self.nodes.push(Node {
            data_dir: self.dir.path().join(&name),
            name,
            client_port: free_port(),
            peer_port: free_port(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            advertise_peer: None,
            child: None,
        });
        i
    }

    /// A client over every node's endpoint.
    pub fn client(&self) -> Client {
        Client::new(self.nodes.iter().map(Node::client_url)).unwrap()
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
        wait_for("the learner to be promoted", async || {
            client.promote(id).await.ok()
        })
        .await;
    }

    /// Index of the node that leads, among `among`, once one does.
    pub async fn wait_for_leader(&self, among: &[usize]) -> usize {
        wait_for("a leader", async || {
            for &i in among {
                if let Ok(status) = self.nodes[i].client().node_status().await
                    && status.role == "leader"
                {
                    return Some(i);
                }
            }
            None
        })
        .await
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

/// Polls `check` every 50 ms until it gives a value (30 s at most).
pub async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
