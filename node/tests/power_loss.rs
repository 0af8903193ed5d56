//! Power loss: with `--simulate-power-loss`, unsynced writes stay inside
//! the process until the next sync, so kill -9 of every node at once is a
//! power cut of the whole cluster. Acknowledged writes must survive it —
//! and the test must be able to tell: with the Raft log's sync skipped (a
//! planted bug), the same cut loses acknowledged writes.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raftcfg_client::http::Consistency;
use support::{Cluster, wait_for};

/// Writes unique keys for a while, cuts the power of every node, restarts
/// them and returns (acknowledged, lost) keys.
async fn cut_power(extra: &[&str]) -> (usize, Vec<String>) {
    let mut args = vec!["--simulate-power-loss"];
    args.extend_from_slice(extra);
    let mut cluster = Cluster::new(3, &args);
    cluster.form().await;
    let endpoints: Vec<String> = cluster.nodes.iter().map(|n| n.client_url()).collect();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let endpoints = endpoints.clone();
            let acknowledged = acknowledged.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = format!("power/{writer}/{n}");
                    let endpoint = &endpoints[n % endpoints.len()];
                    let response = http
                        .put(format!("{endpoint}/v1/kv/{key}"))
                        .body(key.clone())
                        .send()
                        .await;
                    if matches!(&response, Ok(r) if r.status() == 200) {
                        acknowledged.lock().unwrap().push(key);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The power cut: every node at once, while the writers write.
    for node in &mut cluster.nodes {
        node.kill();
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    for node in &mut cluster.nodes {
        node.start().await;
    }
    let client = cluster.client();
    let acknowledged = acknowledged.lock().unwrap().clone();
    let mut lost = Vec::new();
    for key in &acknowledged {
        // A cluster that lost even its membership says `not_initialized`:
        // everything it acknowledged is gone.
        let value = wait_for("a linearizable read", async || {
            match client.get(key, Consistency::Linearizable).await {
                Ok(value) => Some(value),
                Err(e) if e.code() == Some("not_initialized") => Some(None),
                Err(_) => None,
            }
        })
        .await;
        if value.is_none() {
            lost.push(key.clone());
        }
    }
    (acknowledged.len(), lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_of_the_whole_cluster_loses_no_acknowledged_write() {
    let (acknowledged, lost) = cut_power(&[]).await;
    println!("{acknowledged} acknowledged, {} lost", lost.len());
    assert!(acknowledged > 20, "only {acknowledged} writes acknowledged");
    assert!(lost.is_empty(), "lost acknowledged writes: {lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_the_log_sync_is_caught_by_a_power_cut() {
    let (acknowledged, lost) = cut_power(&["--planted-bug", "unsynced-log"]).await;
    println!("{acknowledged} acknowledged, {} lost", lost.len());
    assert!(
        !lost.is_empty(),
        "a power cut with the log unsynced lost none of {acknowledged} acknowledged writes"
    );
}
