//! `make bench-state`: a 3-process `raftcfg serve` cluster under a large
//! state. It fills the state (1 GiB by default, as 1 KiB values over many
//! keys or as 1 MiB values), then has 16 clients overwrite it while every
//! member takes at least three snapshots, and reports write latency inside
//! the snapshot windows against between them, 5xx answers and elections.
//! Then a fourth member joins and catches up from the snapshot (time and
//! peak RSS of both ends), and the whole cluster is killed with SIGKILL and
//! restarted (time to the first served write).
//!
//! ```text
//! cargo build --release -p raftcfg-node --bin raftcfg --example bench-state
//! target/release/examples/bench-state --shape keys     # 1 KiB values
//! target/release/examples/bench-state --shape values   # 1 MiB values
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Parser;
use raftcfg_client::http::Client;
use raftcfg_client::wire::{AddMemberRequest, NodeStatus};

#[derive(Debug, Parser)]
struct Args {
    /// `keys`: 1 KiB values; `values`: 1 MiB values.
    #[arg(long, default_value = "keys")]
    shape: Shape,
    /// Size of the state to fill, in MiB.
    #[arg(long, default_value_t = 1024)]
    state_mib: u64,
    /// Writers at once.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Snapshots each member takes while measured.
    #[arg(long, default_value_t = 3)]
    rounds: u64,
    /// `--snapshot-threshold` of the nodes, in entries, and the same in
    /// bytes of values [default: a quarter of the keys, or half of them
    /// for 1 MiB values].
    #[arg(long)]
    snapshot_threshold: Option<u64>,
    /// Where the data directories and logs go (emptied first).
    #[arg(long, default_value = "/tmp/raftcfg-bench-state")]
    work_dir: PathBuf,
    /// The `raftcfg` binary [default: next to this program's folder].
    #[arg(long)]
    raftcfg: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Shape {
    Keys,
    Values,
}

impl Shape {
    fn value_bytes(self) -> usize {
        match self {
            Self::Keys => 1 << 10,
            Self::Values => 1 << 20,
        }
    }
}

/// One `raftcfg serve` process.
struct Node {
    name: String,
    client_port: u16,
    peer_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn new(work_dir: &Path, n: usize) -> anyhow::Result<Self> {
        Ok(Self {
            name: format!("n{n}"),
            client_port: free_port()?,
            peer_port: free_port()?,
            dir: work_dir.join(format!("n{n}")),
            child: None,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn start(&mut self, bin: &Path, threshold: u64, value_bytes: usize) -> anyhow::Result<Instant> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))?;
        let started = Instant::now();
        let child = Command::new(bin)
            .arg("serve")
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.dir)
            .args([
                "--listen-client",
                &format!("127.0.0.1:{}", self.client_port),
            ])
            .args(["--listen-peer", &format!("127.0.0.1:{}", self.peer_port)])
            .args(["--snapshot-threshold", &threshold.to_string()])
            .args([
                "--snapshot-threshold-bytes",
                &(threshold * value_bytes as u64).to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        self.child = Some(child);
        Ok(started)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn client(&self) -> Client {
        Client::new([self.url()]).expect("a valid endpoint")
    }

    async fn status(&self) -> Option<NodeStatus> {
        self.client().node_status().await.ok()
    }

    async fn wait_serving(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        while self.status().await.is_none() {
            if Instant::now() > deadline {
                bail!("{} did not serve within 10 minutes", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    async fn metric(&self, http: &reqwest::Client, name: &str) -> Option<u64> {
        let page = http
            .get(format!("{}/metrics", self.url()))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        page.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn rss_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib >> 10)
}

/// One write: when it started (since the bench began), how long it took,
/// and its HTTP status (0: no answer).
#[derive(Clone, Copy)]
struct Sample {
    start: Duration,
    latency: Duration,
    status: u16,
}

/// Writers overwriting `keys` keys until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    written: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `clients` writers; writer `w` writes keys `w, w + clients, ...`
    /// below `keys`, cycling (or, with `once`, each key once and stops).
    fn start(
        epoch: Instant,
        endpoint: &str,
        clients: usize,
        keys: u64,
        value: Bytes,
        once: bool,
    ) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let written = Arc::new(AtomicU64::new(0));
        let tasks = (0..clients as u64)
            .map(|w| {
                let (http, stop, samples, written) =
                    (http.clone(), stop.clone(), samples.clone(), written.clone());
                let (endpoint, value) = (endpoint.to_owned(), value.clone());
                tokio::spawn(async move {
                    let mut key = w;
                    let mut mine = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        if key >= keys {
                            if once {
                                break;
                            }
                            key = w;
                        }
                        let started = Instant::now();
                        let status = match http
                            .put(format!("{endpoint}/v1/kv/s/{key:08}"))
                            .body(value.clone())
                            .send()
                            .await
                        {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                let _ = response.bytes().await;
                                status
                            }
                            Err(_) => 0,
                        };
                        mine.push(Sample {
                            start: started - epoch,
                            latency: started.elapsed(),
                            status,
                        });
                        if status == 200 {
                            written.fetch_add(1, Ordering::Relaxed);
                        }
                        key += clients as u64;
                    }
                    samples.lock().unwrap().extend(mine);
                })
            })
            .collect();
        Self {
            stop,
            samples,
            written,
            tasks,
        }
    }

    async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

/// Latency figures of a set of samples.
fn summary(samples: &[&Sample]) -> String {
    let mut ok: Vec<Duration> = samples
        .iter()
        .filter(|s| s.status == 200)
        .map(|s| s.latency)
        .collect();
    ok.sort();
    let at = |q: f64| {
        ok.get(((ok.len() as f64 * q) as usize).min(ok.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let errors5 = samples.iter().filter(|s| s.status >= 500).count();
    let failed = samples
        .iter()
        .filter(|s| s.status != 200 && s.status < 500)
        .count();
    format!(
        "{:>8} writes  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  5xx {:>3}  other failures {:>3}",
        ok.len(),
        at(0.5),
        at(0.99),
        ok.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        errors5,
        failed
    )
}

/// When each member was writing a snapshot, sampled every 50 ms.
struct Windows {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(Duration, Duration)>>,
}

impl Windows {
    fn watch(epoch: Instant, urls: Vec<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let http = reqwest::Client::new();
                let mut open: BTreeMap<usize, Duration> = BTreeMap::new();
                let mut windows = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    for (i, url) in urls.iter().enumerate() {
                        let page = match http.get(format!("{url}/metrics")).send().await {
                            Ok(response) => response.text().await.unwrap_or_default(),
                            Err(_) => continue,
                        };
                        let writing = page.lines().any(|l| l == "raftcfg_snapshot_writing 1");
                        let now = epoch.elapsed();
                        match (writing, open.get(&i)) {
                            (true, None) => {
                                open.insert(i, now);
                            }
                            (false, Some(&since)) => {
                                windows.push((since, now));
                                open.remove(&i);
                            }
                            _ => {}
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let now = epoch.elapsed();
                windows.extend(open.into_values().map(|since| (since, now)));
                windows
            }
        });
        Self { stop, task }
    }

    async fn finish(self) -> Vec<(Duration, Duration)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

async fn leader_of(nodes: &[Node]) -> anyhow::Result<(usize, NodeStatus)> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for (i, node) in nodes.iter().enumerate() {
            if let Some(status) = node.status().await
                && status.role == "leader"
            {
                return Ok((i, status));
            }
        }
        if Instant::now() > deadline {
            bail!("no leader within 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn snapshots_taken(nodes: &[Node], http: &reqwest::Client) -> Vec<u64> {
    let mut taken = Vec::new();
    for node in nodes {
        taken.push(
            node.metric(http, "raftcfg_snapshots_taken_total")
                .await
                .unwrap_or(0),
        );
    }
    taken
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = match &args.raftcfg {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .context("no folder above this program")?
            .join("raftcfg"),
    };
    let value_bytes = args.shape.value_bytes();
    let keys = (args.state_mib << 20) / value_bytes as u64;
    let share = match args.shape {
        Shape::Keys => 4,
        Shape::Values => 2,
    };
    let threshold = args.snapshot_threshold.unwrap_or((keys / share).max(50));
    let _ = std::fs::remove_dir_all(&args.work_dir);
    std::fs::create_dir_all(&args.work_dir)?;
    println!(
        "bench-state: {:?}, {keys} keys of {value_bytes} bytes ({} MiB), {} clients, \
         snapshot threshold {threshold}, {}",
        args.shape,
        args.state_mib,
        args.clients,
        bin.display()
    );

    let mut nodes = (1..=3)
        .map(|n| Node::new(&args.work_dir, n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for node in &mut nodes {
        node.start(&bin, threshold, value_bytes)?;
    }
    for node in &nodes {
        node.wait_serving().await?;
    }
    nodes[0].client().bootstrap().await?;
    leader_of(&nodes[..1]).await?;
    let everyone = Client::new(nodes.iter().map(Node::url))?;
    for node in &nodes[1..] {
        let id = node.status().await.context("status")?.node_id;
        everyone
            .add_member(&AddMemberRequest {
                node_id: id,
                name: node.name.clone(),
                peer_url: format!("http://127.0.0.1:{}", node.peer_port),
                client_url: node.url(),
            })
            .await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while everyone.promote(id).await.is_err() {
            if Instant::now() > deadline {
                bail!("{} was not promoted", node.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let http = reqwest::Client::new();
    let value = Bytes::from(vec![b'x'; value_bytes]);
    let epoch = Instant::now();

    // Fill.
    let (leader, _) = leader_of(&nodes).await?;
    let fill = Load::start(
        epoch,
        &nodes[leader].url(),
        args.clients,
        keys,
        value.clone(),
        true,
    );
    let fill_started = Instant::now();
    for task in &fill.tasks {
        while !task.is_finished() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let fill_written = fill.written.load(Ordering::Relaxed);
    let fill_samples = fill.finish().await;
    let fill_time = fill_started.elapsed();
    println!(
        "fill: {fill_written} writes in {:.1} s ({:.0}/s); {}",
        fill_time.as_secs_f64(),
        fill_written as f64 / fill_time.as_secs_f64(),
        summary(&fill_samples.iter().collect::<Vec<_>>())
    );

    // Overwrite while every member takes `rounds` snapshots.
    let (leader, before) = leader_of(&nodes).await?;
    let taken_before = snapshots_taken(&nodes, &http).await;
    let windows = Windows::watch(epoch, nodes.iter().map(Node::url).collect());
    let load = Load::start(
        epoch,
        &nodes[leader].url(),
        args.clients,
        keys,
        value.clone(),
        false,
    );
    let measured_from = epoch.elapsed();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let taken = snapshots_taken(&nodes, &http).await;
        if taken
            .iter()
            .zip(&taken_before)
            .all(|(now, was)| now - was >= args.rounds)
        {
            break;
        }
        if Instant::now() > deadline {
            println!("stopping after 30 minutes: snapshots taken {taken_before:?} → {taken:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let the last snapshot's window close.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let samples = load.finish().await;
    let windows = windows.finish().await;
    let (_, after) = leader_of(&nodes).await?;
    let in_window = |s: &Sample| {
        windows
            .iter()
            .any(|(from, to)| s.start <= *to && s.start + s.latency >= *from)
    };
    let measured: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.start >= measured_from)
        .collect();
    let (during, between): (Vec<&Sample>, Vec<&Sample>) =
        measured.iter().copied().partition(|s| in_window(s));
    let window_time: f64 = windows
        .iter()
        .map(|(from, to)| (*to - *from).as_secs_f64())
        .sum();
    println!(
        "overwrite: {} snapshot windows ({window_time:.1} s in all), term {} → {} ({} elections)",
        windows.len(),
        before.term,
        after.term,
        after.term.get() - before.term.get()
    );
    println!("  during snapshots:  {}", summary(&during));
    println!("  between snapshots: {}", summary(&between));

    // A fourth member catches up from the snapshot.
    let mut joiner = Node::new(&args.work_dir, 4)?;
    joiner.start(&bin, threshold, value_bytes)?;
    joiner.wait_serving().await?;
    let (leader, status) = leader_of(&nodes).await?;
    let id = joiner.status().await.context("status")?.node_id;
    let peaks = Arc::new(Mutex::new((0u64, 0u64)));
    let sampling = tokio::spawn({
        let (peaks, pids) = (
            peaks.clone(),
            (nodes[leader].pid().unwrap_or(0), joiner.pid().unwrap_or(0)),
        );
        async move {
            loop {
                {
                    let mut peaks = peaks.lock().unwrap();
                    peaks.0 = peaks.0.max(rss_mib(pids.0).unwrap_or(0));
                    peaks.1 = peaks.1.max(rss_mib(pids.1).unwrap_or(0));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let joined_at = Instant::now();
    everyone
        .add_member(&AddMemberRequest {
            node_id: id,
            name: joiner.name.clone(),
            peer_url: format!("http://127.0.0.1:{}", joiner.peer_port),
            client_url: joiner.url(),
        })
        .await?;
    loop {
        if let Some(now) = joiner.status().await
            && now.applied >= status.commit
        {
            break;
        }
        if joined_at.elapsed() > Duration::from_secs(1800) {
            bail!("the fourth member did not catch up in 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let catch_up = joined_at.elapsed();
    sampling.abort();
    let (leader_peak, joiner_peak) = *peaks.lock().unwrap();
    println!(
        "fourth member: caught up in {:.1} s; peak RSS leader {leader_peak} MiB, new member {joiner_peak} MiB",
        catch_up.as_secs_f64()
    );

    // kill -9 everything, start again, time the first write.
    nodes.push(joiner);
    for node in &mut nodes {
        node.kill();
    }
    let restarted = Instant::now();
    for node in &mut nodes {
        node.start(&bin, threshold, value_bytes)?;
    }
    let client = Client::new(nodes.iter().map(Node::url))?;
    let mut first_serving = None;
    loop {
        if first_serving.is_none() {
            for node in &nodes {
                if node.status().await.is_some() {
                    first_serving = Some(restarted.elapsed());
                    break;
                }
            }
        }
        if client
            .put(
                "restart/probe",
                Bytes::from_static(b"1"),
                raftcfg_client::http::Precondition::None,
            )
            .await
            .is_ok()
        {
            break;
        }
        if restarted.elapsed() > Duration::from_secs(600) {
            bail!("no write was served within 10 minutes of the restart");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "restart after kill -9: first node serving after {:.2} s, first write after {:.2} s",
        first_serving.unwrap_or_default().as_secs_f64(),
        restarted.elapsed().as_secs_f64()
    );
    Ok(())
}
