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
use support::workload::UniqueWriters;
use support::{Cluster, wait_for};

/// Writes unique keys for a while, cuts the power of every node, restarts
/// them and returns (acknowledged, lost) keys.
async fn cut_power(extra: &[&str]) -> (usize, Vec<String>) {
    let mut args = vec!["--simulate-power-loss"];
    args.extend_from_slice(extra);
    let mut cluster = Cluster::new(3, &args);
    cluster.form().await;
    let endpoints: Vec<String> = cluster.nodes.iter().map(|n| n.client_url()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = UniqueWriters::start(4, "power", Arc::new(Mutex::new(endpoints)), stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The power cut: every node at once, while the writers write.
    for node in &mut cluster.nodes {
        node.kill();
    }
    stop.store(true, Ordering::Relaxed);
    let acknowledged = writers.join().await;
    for node in &mut cluster.nodes {
        node.start().await;
    }
    let client = cluster.client();
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
