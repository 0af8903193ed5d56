//! Connection hygiene of `raftcfg serve` under many and hostile clients:
//! thousands of idle connections, half-sent headers and half-sent bodies,
//! on a node started with a small open-file limit, while writes go on.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use raftcfg_client::http::{Client, Precondition};
use support::{Cluster, wait_within};

const IDLE: usize = 2_000;
const SLOW_HEADERS: usize = 50;
const SLOW_BODIES: usize = 50;

/// Opens `n` connections to `port` that each send `prefix` and then
/// nothing more.
fn open(port: u16, n: usize, prefix: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut stream = TcpStream::connect(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("connection {i} of {n}: {e}"));
            stream.write_all(prefix).unwrap();
            stream.set_nonblocking(true).unwrap();
            stream
        })
        .collect()
}

/// How many of `streams` the server has closed (end of stream or reset);
/// anything it sent before closing (an error response) is read past.
fn closed(streams: &mut [TcpStream]) -> usize {
    let mut buf = [0u8; 4096];
    let mut closed = 0;
    for stream in streams {
        closed += usize::from(loop {
            match stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                Err(_) => break true,
            }
        });
    }
    closed
}

/// Writes one key after another until stopped; counts successes and
/// records the first failure.
struct Writer {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Writer {
    fn start(client: Client) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (stop, written) = (stop.clone(), written.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = written.load(Ordering::Relaxed);
                    client
                        .put(&format!("w/{n}"), Bytes::from("v"), Precondition::None)
                        .await
                        .map_err(|e| format!("write {n} failed: {e}"))?;
                    written.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(())
            }
        });
        Self {
            stop,
            written,
            task,
        }
    }

    /// Waits for `more` further writes to succeed; fails at once with the
    /// writer's error if a write failed.
    async fn wait_for_more(&mut self, more: u64) {
        let target = self.written.load(Ordering::Relaxed) + more;
        wait_within("more writes", Duration::from_secs(30), async || {
            (self.written.load(Ordering::Relaxed) >= target || self.task.is_finished())
                .then_some(())
        })
        .await;
        if self.task.is_finished() {
            let result = (&mut self.task).await.expect("the writer never panics");
            panic!("the writer stopped: {result:?}");
        }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap().expect("every write succeeds");
        self.written.load(Ordering::Relaxed)
    }
}

/// The test process needs a descriptor per connection it opens.
fn raise_own_open_file_limit() {
    let needed = (IDLE + SLOW_HEADERS + SLOW_BODIES + 512) as u64;
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        limit >= needed,
        "this test needs an open-file limit of {needed}, the hard limit is {limit}"
    );
}

/// A one-node cluster started under `ulimit`, with short timeouts.
async fn node_under(ulimit: &str, extra_args: &[&str]) -> Cluster {
    let mut cluster = Cluster::new(1, extra_args);
    cluster.nodes[0].ulimit = Some(ulimit.to_owned());
    cluster.form().await;
    cluster
}

fn metric(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

async fn metrics(cluster: &Cluster) -> String {
    let url = format!("{}/metrics", cluster.nodes[0].client_url());
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed_and_never_stop_a_node_with_a_soft_limit_of_1024() {
    raise_own_open_file_limit();
    let mut cluster = node_under(
        "-Sn 1024",
        &["--client-idle-timeout", "3", "--client-read-timeout", "2"],
    )
    .await;
    let port = cluster.nodes[0].client_port;
    let mut writer = Writer::start(cluster.client());

    let mut idle = open(port, IDLE, b"");
    let mut slow_headers = open(port, SLOW_HEADERS, b"GET /v1/node HTTP/1.1\r\nHost: x\r\n");
    // Kept alive after one whole request, then idle.
    let mut idle_after_a_request = open(
        port,
        SLOW_HEADERS,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let mut slow_bodies = open(
        port,
        SLOW_BODIES,
        b"PUT /v1/kv/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789",
    );
    // The node serves others while they are all open.
    writer.wait_for_more(20).await;
    assert!(cluster.nodes[0].is_alive(), "{}", cluster.log_tails());

    // Each kind is closed after its timeout (3 s idle, 2 s to read).
    for (what, streams) in [
        ("idle connections", &mut idle),
        ("half-sent headers", &mut slow_headers),
        (
            "connections idle after a request",
            &mut idle_after_a_request,
        ),
        ("half-sent bodies", &mut slow_bodies),
    ] {
        let total = streams.len();
        wait_within(
            &format!("the node to close its {what}"),
            Duration::from_secs(20),
            async || (closed(streams) == total).then_some(()),
        )
        .await;
    }
    writer.wait_for_more(20).await;
    let written = writer.finish().await;
    assert!(cluster.nodes[0].is_alive(), "{}", cluster.log_tails());
    // Each connection that never sent a whole request was closed by the
    // header timeout (hyper's, from its opening) or the idle timeout.
    let page = metrics(&cluster).await;
    let closed_by_node = metric(&page, "raftcfg_connections_closed_idle_total")
        + metric(&page, "raftcfg_connections_timed_out_total");
    assert!(
        closed_by_node >= (IDLE + SLOW_HEADERS) as u64,
        "{closed_by_node} closed for idleness or slowness"
    );
    assert!(
        !cluster.log_tails().contains("Too many open files"),
        "{}",
        cluster.log_tails()
    );
    // The slow body was never taken for a write.
    let slow = cluster
        .client()
        .get("slow", raftcfg_client::http::Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(slow, None);
    println!("{written} writes succeeded meanwhile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_hard_limit_of_1024_silent_connections_make_room_and_writes_go_on() {
    raise_own_open_file_limit();
    let mut cluster = node_under("-n 1024", &[]).await;
    let port = cluster.nodes[0].client_port;
    let mut writer = Writer::start(cluster.client());

    // Far more connections than the node has descriptors for.
    let mut idle = open(port, IDLE, b"");
    writer.wait_for_more(20).await;
    let slow = open(port, SLOW_HEADERS, b"GET /v1/node HTTP/1.1\r\nHost: x\r\n");
    writer.wait_for_more(20).await;
    // The oldest silent ones were closed to make room, never the writer's
    // kept-alive connection: at most the budget for clients is still open.
    let still_open = wait_within(
        "the node to close the connections beyond its budget",
        Duration::from_secs(20),
        async || {
            let open = IDLE - closed(&mut idle);
            (open < 1024 - 512).then_some(open)
        },
    )
    .await;
    let written = writer.finish().await;
    assert!(cluster.nodes[0].is_alive(), "{}", cluster.log_tails());
    let page = metrics(&cluster).await;
    assert!(metric(&page, "raftcfg_connections_closed_idle_total") >= (IDLE - still_open) as u64);
    assert!(
        !cluster.log_tails().contains("Too many open files"),
        "{}",
        cluster.log_tails()
    );
    drop(slow);
    println!("{written} writes succeeded; {still_open} idle connections left open");
}
