//! The peer port of a `raftcfg serve` process under oversized and junk
//! bodies and stream frames (memory stays bounded, the node keeps serving),
//! and a well-formed message at the largest term (dropped and counted, the
//! cluster unharmed).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use raftcfg_client::http::{Consistency, Precondition};
use raftcfg_node::codec::{self, MessageBatch};
use raftcfg_raft::{ClusterId, LogIndex, Message, MessageBody, NodeId, Term};
use support::{Cluster, peer_stream, rss_kib_of, wait_for};

/// Junk requests sent at once, and the size of each.
const JUNK_REQUESTS: usize = 10;
const JUNK_BYTES: usize = 60 << 20;
/// Streams sending a junk frame at once.
const JUNK_STREAMS: usize = 10;
/// How much the node's memory may grow while they arrive: the peer port's
/// buffer budget (64 MiB) and allocator slack, far below the 600 MB sent.
const ALLOWED_GROWTH_KIB: u64 = 128 << 10;

fn propose_url(cluster: &Cluster) -> String {
    format!(
        "http://127.0.0.1:{}/raft/v1/propose",
        cluster.nodes[0].peer_port
    )
}

/// A body of `len` junk bytes sent in 64 KiB pieces, with no length
/// declared (chunked), so the node learns its size only by reading it.
fn chunked_junk(len: usize) -> reqwest::Body {
    let piece = Bytes::from(vec![0xa5u8; 64 << 10]);
    let pieces = len / piece.len();
    let stream =
        futures::stream::iter((0..pieces).map(move |_| Ok::<_, std::io::Error>(piece.clone())));
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_junk_peer_bodies_leave_memory_bounded_and_the_node_serving() {
    let mut cluster = Cluster::new(1, &[]);
    cluster.form().await;
    cluster.put("before", "1").await;
    let baseline = cluster.nodes[0].rss_kib();
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampling = tokio::spawn({
        let (pid, peak) = (cluster.nodes[0].pid(), peak.clone());
        async move {
            while let Some(rss) = rss_kib_of(pid) {
                peak.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    let http = reqwest::Client::new();
    let url = propose_url(&cluster);
    let mut sends = Vec::new();
    for i in 0..JUNK_REQUESTS {
        let (http, url) = (http.clone(), url.clone());
        sends.push(tokio::spawn(async move {
            let request = if i % 2 == 0 {
                // Declared: refused from its length alone.
                http.post(&url).body(vec![0x5au8; JUNK_BYTES])
            } else {
                http.post(&url).body(chunked_junk(JUNK_BYTES))
            };
            // The node may close the connection before the whole body is
            // sent; either way it must not take it.
            match request.send().await {
                Ok(response) => Some(response.status()),
                Err(_) => None,
            }
        }));
    }
    // Junk within the size limit: read, found undecodable, refused.
    let small = http
        .post(&url)
        .body(vec![0xffu8; 1 << 10])
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), reqwest::StatusCode::BAD_REQUEST);
    // Messages go only on streams: a plain request for one is refused.
    let plain = http
        .post(format!(
            "http://127.0.0.1:{}/raft/v1/stream",
            cluster.nodes[0].peer_port
        ))
        .body(vec![0u8; 64])
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), reqwest::StatusCode::UPGRADE_REQUIRED);
    // Streams: frames declaring more than a batch may be are refused from
    // their length; frames within it are read, found undecodable, and
    // close their stream.
    let port = cluster.nodes[0].peer_port;
    let mut frames = Vec::new();
    for i in 0..JUNK_STREAMS {
        frames.push(tokio::spawn(async move {
            let mut stream = peer_stream::open(port).await;
            let (length, payload) = if i % 2 == 0 {
                (u32::MAX, vec![0x5au8; 1 << 20])
            } else {
                (4 << 20, vec![0xa5u8; 4 << 20])
            };
            // The node may close the stream before the whole frame is sent.
            let _ = peer_stream::send_frame(&mut stream, length, &payload).await;
            peer_stream::closed_by_node(&mut stream).await
        }));
    }
    for send in sends {
        if let Some(status) = send.await.unwrap() {
            assert_eq!(status, reqwest::StatusCode::PAYLOAD_TOO_LARGE);
        }
    }
    for (i, frame) in frames.into_iter().enumerate() {
        assert!(frame.await.unwrap(), "junk stream {i} was not closed");
    }
    sampling.abort();
    let peak = peak.load(Ordering::Relaxed);
    println!("RSS {baseline} KiB before, {peak} KiB at most while junk arrived");
    assert!(
        peak <= baseline + ALLOWED_GROWTH_KIB,
        "RSS grew from {baseline} KiB to {peak} KiB"
    );
    assert!(cluster.nodes[0].is_alive(), "{}", cluster.log_tails());
    cluster.put("after", "2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_at_the_largest_term_is_dropped_and_the_cluster_goes_on() {
    let mut cluster = Cluster::new(1, &[]);
    cluster.form().await;
    cluster.put("before", "1").await;
    let status = cluster.nodes[0].status().await;
    for body in [
        MessageBody::Heartbeat {
            commit: LogIndex(0),
            read_round: 0,
        },
        MessageBody::AppendEntries {
            prev_log_index: LogIndex(u64::MAX),
            prev_log_term: Term(1),
            entries: Vec::new(),
            leader_commit: LogIndex(0),
        },
    ] {
        let term = match body {
            MessageBody::Heartbeat { .. } => Term(u64::MAX),
            _ => Term(status.term.get()),
        };
        let message = Message {
            cluster_id: ClusterId(status.cluster_id.expect("bootstrapped").get()),
            from: NodeId(status.node_id.get().wrapping_add(1)),
            to: NodeId(status.node_id.get()),
            term,
            body,
        };
        let batch = codec::encode(&MessageBatch(vec![message]));
        let mut stream = peer_stream::open(cluster.nodes[0].peer_port).await;
        peer_stream::send_frame(&mut stream, batch.len() as u32, &batch)
            .await
            .unwrap();
    }
    // The node keeps its term and its leadership, and writes go on.
    let written = cluster
        .client()
        .put("after", Bytes::from("2"), Precondition::None)
        .await
        .unwrap();
    let after = cluster.nodes[0].status().await;
    assert_eq!(after.term, status.term);
    assert_eq!(after.role, "leader");
    let read = cluster
        .client()
        .get("after", Consistency::Linearizable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.mod_revision, written.revision);
    let metrics = format!("{}/metrics", cluster.nodes[0].client_url());
    wait_for("both messages to be dropped and counted", async || {
        let page = reqwest::get(&metrics).await.ok()?.text().await.ok()?;
        let dropped: u64 = page
            .lines()
            .find_map(|line| {
                line.strip_prefix("raftcfg_peer_messages_dropped_total{reason=\"overflowing\"}")
            })
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or_else(|| panic!("no overflowing drop count in\n{page}"));
        assert!(dropped <= 2, "{dropped} messages dropped, 2 sent");
        (dropped == 2).then_some(())
    })
    .await;
    let after = cluster.nodes[0].status().await;
    assert_eq!(after.term, status.term);
    assert_eq!(after.role, "leader");
}
