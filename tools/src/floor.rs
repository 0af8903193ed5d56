//! `raftcfg-tools floor`: the least time a replicated, synced write can
//! take on this machine, to set raftcfg's and etcd's figures against.
//!
//! Three child processes of this binary stand for a leader and two
//! followers, and this process is the client, with one write in flight.
//! A write is `size` bytes: the client sends it to the leader over TCP;
//! the leader sends it on to both followers over TCP, then appends it to
//! its own file and `fdatasync`s it; each follower appends it, syncs, and
//! acknowledges with a datagram to the leader; the leader answers the
//! client once its own copy and one follower's are durable (a majority of
//! three). No HTTP, no consensus, no database and no async runtime: only
//! the loopback hops, the thread wake-ups and the syncs a replicated write
//! cannot do without. The files go in a directory made under `--dir`
//! (which should be on the disk under test), removed at the end.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::bench::Histogram;

/// How long a child may take to start, and the leader to see an
/// acknowledgment, before the run fails.
const PATIENCE: Duration = Duration::from_secs(10);
/// The sequence number at the head of each write, which acknowledgments
/// carry back.
const SEQUENCE_BYTES: usize = 8;

/// Options of `raftcfg-tools floor`.
#[derive(Debug, clap::Args)]
pub struct FloorArgs {
    /// Where to make the directory for the three members' files: put it
    /// on the disk the systems under test use.
    #[arg(long, value_name = "PATH", default_value = ".")]
    pub dir: PathBuf,
    /// Seconds measured.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub duration: f64,
    /// Seconds run before measuring.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub warmup: f64,
    /// Bytes per write (about what raftcfg stores for a 256-byte value).
    #[arg(long, value_name = "BYTES", default_value_t = 300,
          value_parser = clap::value_parser!(u32).range(SEQUENCE_BYTES as i64..=1 << 20))]
    pub size: u32,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    pub json: bool,
}

/// The members' own arguments (started by `floor`, not by users).
#[derive(Debug, clap::Args)]
pub struct MemberArgs {
    /// Which member this is.
    #[arg(long, value_enum)]
    pub role: Role,
    /// The file this member appends to.
    #[arg(long)]
    pub log: PathBuf,
    /// Bytes per write.
    #[arg(long)]
    pub size: u32,
    /// A follower: the leader's address for followers to connect to.
    #[arg(long)]
    pub leader_peer: Option<SocketAddr>,
    /// A follower: where the leader takes acknowledgments.
    #[arg(long)]
    pub leader_acks: Option<SocketAddr>,
}

/// A member's part in the pipeline.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Role {
    /// Takes the client's writes, passes them on, syncs its own copy.
    Leader,
    /// Syncs each write it is passed and acknowledges it.
    Follower,
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct FloorReport {
    /// Writes measured (after the warm-up).
    pub writes: u64,
    /// Writes per second.
    pub throughput: f64,
    /// Median latency of a write, in milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile latency of a write, in milliseconds.
    pub p99_ms: f64,
}

/// Runs the pipeline and prints what it measured.
pub fn run(args: &FloorArgs) -> anyhow::Result<()> {
    let (Ok(warmup), Ok(duration)) = (
        Duration::try_from_secs_f64(args.warmup),
        Duration::try_from_secs_f64(args.duration),
    ) else {
        bail!("--warmup and --duration must be seconds from 0 to a few days");
    };
    if duration.is_zero() {
        bail!("--duration must be above 0 seconds");
    }
    let dir = tempdir_in(&args.dir)?;
    let report = measure(args, &dir.0, warmup, duration)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "floor: {} writes, {:.1}/s, p50={:.3}ms p99={:.3}ms ({} bytes, fsync on each of three files)",
            report.writes, report.throughput, report.p50_ms, report.p99_ms, args.size
        );
    }
    Ok(())
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir_in(parent: &Path) -> anyhow::Result<TempDir> {
    let dir = parent.join(format!("raftcfg-floor-{}", std::process::id()));
    std::fs::create_dir(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
    Ok(TempDir(dir))
}

/// Child processes killed when dropped.
struct Members(Vec<Child>);

impl Drop for Members {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn measure(
    args: &FloorArgs,
    dir: &Path,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<FloorReport> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    // Only the leader's output is read: its addresses.
    let spawn = |role: &str, log: &str, extra: &[String]| -> anyhow::Result<Child> {
        Command::new(&exe)
            .arg("floor-member")
            .args(["--role", role, "--size", &args.size.to_string()])
            .arg("--log")
            .arg(dir.join(log))
            .args(extra)
            .stdout(if role == "leader" {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .spawn()
            .with_context(|| format!("cannot start the {role}"))
    };
    let mut members = Members(Vec::new());
    members.0.push(spawn("leader", "leader", &[])?);
    let addresses = first_line(members.0[0].stdout.take())?;
    let [client, peer, acks]: [SocketAddr; 3] = addresses
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .and_then(|parsed| parsed.try_into().ok())
        .with_context(|| format!("the leader announced {addresses:?}, not three addresses"))?;
    for name in ["follower-1", "follower-2"] {
        let extra = [
            "--leader-peer".to_string(),
            peer.to_string(),
            "--leader-acks".to_string(),
            acks.to_string(),
        ];
        members.0.push(spawn("follower", name, &extra)?);
    }
    let mut leader = TcpStream::connect(client).context("cannot reach the leader")?;
    leader.set_nodelay(true)?;
    leader.set_read_timeout(Some(PATIENCE))?;
    let mut write = vec![7u8; args.size as usize];
    let mut answer = [0u8; 1];
    let started = Instant::now();
    let measured_from = started + warmup;
    let end = measured_from + duration;
    let mut latencies = Histogram::default();
    let mut sequence = 0u64;
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        sequence += 1;
        write[..SEQUENCE_BYTES].copy_from_slice(&sequence.to_le_bytes());
        leader.write_all(&write).context("the leader closed")?;
        leader
            .read_exact(&mut answer)
            .context("the leader did not answer")?;
        if sent >= measured_from {
            latencies.record(sent.elapsed());
        }
    }
    drop(members);
    report(&latencies, duration.as_secs_f64())
}

/// The run's figures, with the same percentiles as `bench` reports.
fn report(latencies: &Histogram, seconds: f64) -> anyhow::Result<FloorReport> {
    if latencies.count() == 0 {
        bail!("no write finished in the measured time");
    }
    let ms = |q: f64| latencies.quantile(q).as_secs_f64() * 1000.0;
    Ok(FloorReport {
        writes: latencies.count(),
        throughput: latencies.count() as f64 / seconds,
        p50_ms: ms(0.50),
        p99_ms: ms(0.99),
    })
}

/// The first line a child prints (its addresses), or why there is none.
fn first_line(stdout: Option<ChildStdout>) -> anyhow::Result<String> {
    let stdout = stdout.context("no pipe to the leader")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("cannot read the leader's addresses")?;
    if line.is_empty() {
        bail!("the leader exited before it was ready");
    }
    Ok(line.trim().to_string())
}

/// Runs one member until its peers close.
pub fn run_member(args: &MemberArgs) -> anyhow::Result<()> {
    let log = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&args.log)
        .with_context(|| format!("cannot create {}", args.log.display()))?;
    let size = args.size as usize;
    match args.role {
        Role::Leader => lead(log, size),
        Role::Follower => {
            let peer = args.leader_peer.context("a follower needs --leader-peer")?;
            let acks = args.leader_acks.context("a follower needs --leader-acks")?;
            follow(log, size, peer, acks)
        }
    }
}

fn lead(mut log: File, size: usize) -> anyhow::Result<()> {
    let loopback = "127.0.0.1:0";
    let clients = TcpListener::bind(loopback)?;
    let peers = TcpListener::bind(loopback)?;
    let acks = UdpSocket::bind(loopback)?;
    acks.set_read_timeout(Some(PATIENCE))?;
    println!(
        "{} {} {}",
        clients.local_addr()?,
        peers.local_addr()?,
        acks.local_addr()?
    );
    std::io::stdout().flush()?;
    let mut followers = Vec::new();
    for _ in 0..2 {
        let (follower, _) = peers.accept()?;
        follower.set_nodelay(true)?;
        followers.push(follower);
    }
    let (mut client, _) = clients.accept()?;
    client.set_nodelay(true)?;
    let mut write = vec![0u8; size];
    let mut ack = [0u8; SEQUENCE_BYTES];
    let mut acknowledged = 0u64;
    while client.read_exact(&mut write).is_ok() {
        for follower in &mut followers {
            follower.write_all(&write)?;
        }
        log.write_all(&write)?;
        log.sync_data()?;
        let sequence = sequence_of(&write);
        while acknowledged < sequence {
            acks.recv(&mut ack)
                .context("no follower acknowledged a write")?;
            acknowledged = acknowledged.max(u64::from_le_bytes(ack));
        }
        client.write_all(&[1])?;
    }
    Ok(())
}

fn follow(mut log: File, size: usize, peer: SocketAddr, leader: SocketAddr) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(peer)?;
    let acks = UdpSocket::bind("127.0.0.1:0")?;
    acks.connect(leader)?;
    let mut write = vec![0u8; size];
    while stream.read_exact(&mut write).is_ok() {
        log.write_all(&write)?;
        log.sync_data()?;
        acks.send(&write[..SEQUENCE_BYTES])?;
    }
    Ok(())
}

fn sequence_of(write: &[u8]) -> u64 {
    let mut head = [0u8; SEQUENCE_BYTES];
    head.copy_from_slice(&write[..SEQUENCE_BYTES]);
    u64::from_le_bytes(head)
}
