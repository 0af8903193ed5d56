//! The peer port of a `raftcfg serve` process under oversized and junk
//! bodies (memory stays bounded, the node keeps serving), and a well-formed
//! message at the largest term (dropped and counted, the cluster unharmed).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use raftcfg_client::http::{Consistency, Precondition};
use raftcfg_node::codec::{self, MessageBatch};
use raftcfg_raft::{ClusterId, LogIndex, Message, MessageBody, NodeId, Term};
use support::{Cluster, rss_kib_of};

/// Junk requests sent at once, and the size of each.
const JUNK_REQUESTS: usize = 10;
const JUNK_BYTES: usize = 60 << 20;
/// How much the node's memory may grow while they arrive: the peer port's
/// buffer budget (64 MiB) and allocator slack, far below the 600 MB sent.
const ALLOWED_GROWTH_KIB: u64 = 128 << 10;

fn messages_url(cluster: &Cluster) -> String {
    format!(
        "http://127.0.0.1:{}/raft/v1/messages",
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
    let url = messages_url(&cluster);
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
        .body(vec![0xffu8; 1 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), reqwest::StatusCode::BAD_REQUEST);
    for send in sends {
        if let Some(status) = send.await.unwrap() {
            assert_eq!(status, reqwest::StatusCode::PAYLOAD_TOO_LARGE);
        }
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
        let response = reqwest::Client::new()
            .post(messages_url(&cluster))
            .body(codec::encode(&MessageBatch(vec![message])))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{response:?}");
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
    let page = reqwest::get(format!("{}/metrics", cluster.nodes[0].client_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped: u64 = page
        .lines()
        .find_map(|line| {
            line.strip_prefix("raftcfg_peer_messages_dropped_total{reason=\"overflowing\"}")
        })
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("no overflowing drop count in\n{page}"));
    assert_eq!(dropped, 2);
}
