//! Three nodes in one process on loopback ports: the driver, transport and
//! API working together (the multi-process tests run the real binary).

mod support;

use std::time::Duration;

use raftcfg_client::wire::{BootstrapResponse, MemberList, NodeStatus, WriteResponse};
use raftcfg_node::driver::Timing;
use raftcfg_node::server::{NodeConfig, RunningNode, start};
use raftcfg_node::storage::DbOptions;
use serde_json::json;
use support::{wait_for, wait_within};

struct Cluster {
    nodes: Vec<RunningNode>,
    _dirs: Vec<tempfile::TempDir>,
    http: reqwest::Client,
}

impl Cluster {
    async fn start(n: usize) -> Self {
        Self::start_with(n, |_| {}).await
    }

    /// Starts `n` nodes, each configured by `configure`.
    async fn start_with(n: usize, configure: impl Fn(&mut NodeConfig)) -> Self {
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for i in 1..=n {
            let dir = tempfile::tempdir().unwrap();
            let mut config = NodeConfig::local(format!("n{i}"), dir.path());
            // Small log files: the default writes 128 MiB at each start.
            config.db.wal_file_bytes = DbOptions::MIN_WAL_FILE_BYTES;
            configure(&mut config);
            let node = start(config).await.unwrap();
            nodes.push(node);
            dirs.push(dir);
        }
        Self {
            nodes,
            _dirs: dirs,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, i: usize, path: &str) -> String {
        format!("{}{path}", self.nodes[i].client_url())
    }

    async fn status(&self, i: usize) -> NodeStatus {
        self.http
            .get(self.url(i, "/v1/node"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Bootstraps node 0 and adds the others as learners, then promotes them.
    async fn form(&self) {
        self.form_first(self.nodes.len()).await;
    }

    /// Forms a cluster of the first `voters` nodes; the rest stay outside.
    async fn form_first(&self, voters: usize) {
        let response = self
            .http
            .post(self.url(0, "/v1/cluster/bootstrap"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let _: BootstrapResponse = response.json().await.unwrap();
        wait_for("a leader", async || {
            (self.status(0).await.role == "leader").then_some(())
        })
        .await;
        for i in 1..voters {
            let id = self.status(i).await.node_id;
            let address = &self.nodes[i].address;
            let response = self
                .http
                .post(self.url(0, "/v1/cluster/members"))
                .json(&json!({
                    "node_id": id,
                    "name": address.name,
                    "peer_url": address.peer_url,
                    "client_url": address.client_url,
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
            wait_for("the learner to be promoted", async || {
                let response = self
                    .http
                    .post(self.url(0, &format!("/v1/cluster/members/{id}/promote")))
                    .send()
                    .await
                    .unwrap();
                (response.status() == 200).then_some(())
            })
            .await;
        }
    }
}

/// Sends `method path` with a JSON body to node `i`; the status and the
/// body's JSON.
async fn ask(
    cluster: &Cluster,
    i: usize,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = cluster
        .http
        .request(method, cluster.url(i, path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Asks node `i` for a membership change until it is done (200); a
/// learner still catching up (409) or a busy leader (503) is asked again.
async fn until_done(cluster: &Cluster, i: usize, method: reqwest::Method, path: &str) {
    wait_for(&format!("{method} {path} through node {i}"), async || {
        let (status, body) = ask(cluster, i, method.clone(), path, json!({})).await;
        match status {
            200 => Some(()),
            409 | 503 => None,
            _ => panic!("{method} {path} answered {status}: {body}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_operations_asked_of_a_follower_are_done_by_the_leader_with_its_answers() {
    use reqwest::Method;
    let cluster = Cluster::start(4).await;
    cluster.form_first(3).await;
    let ids: Vec<u64> = futures::future::join_all((0..4).map(|i| cluster.status(i)))
        .await
        .iter()
        .map(|status| status.node_id.get())
        .collect();

    // A refusal of the leader keeps its status and code through a follower.
    let (status, body) = ask(
        &cluster,
        1,
        Method::DELETE,
        "/v1/cluster/members/999",
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_member")),
        "{body}"
    );

    // Add node 3 as a learner through a follower, promote it once caught up.
    let address = &cluster.nodes[3].address;
    let add = json!({
        "node_id": ids[3],
        "name": address.name,
        "peer_url": address.peer_url,
        "client_url": address.client_url,
    });
    let (status, body) = ask(
        &cluster,
        1,
        Method::POST,
        "/v1/cluster/members",
        add.clone(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["index"].as_u64().is_some_and(|index| index > 0),
        "{body}"
    );
    let (status, body) = ask(&cluster, 2, Method::POST, "/v1/cluster/members", add).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("duplicate_member")),
        "{body}"
    );
    let promote = format!("/v1/cluster/members/{}/promote", ids[3]);
    until_done(&cluster, 2, Method::POST, &promote).await;

    // Move leadership through a follower, then remove the new member.
    let (status, body) = ask(
        &cluster,
        1,
        Method::POST,
        "/v1/cluster/leader",
        json!({"to": ids[2]}),
    )
    .await;
    assert_eq!(
        (status, body["leader_id"].as_u64()),
        (200, Some(ids[2])),
        "{body}"
    );
    let remove = format!("/v1/cluster/members/{}", ids[3]);
    until_done(&cluster, 0, Method::DELETE, &remove).await;
    let members: MemberList = cluster
        .http
        .get(cluster.url(2, "/v1/cluster/members"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(members.members.len(), 3, "{members:?}");

    // Stopped before the process exits: a RocksDB still open while the
    // process tears down can crash it after every test passed.
    for node in cluster.nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_follower_is_read_linearizably_from_another() {
    let cluster = Cluster::start(3).await;
    cluster.form().await;
    let members: MemberList = cluster
        .http
        .get(cluster.url(2, "/v1/cluster/members"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(members.members.len(), 3);
    assert!(members.members.iter().all(|m| !m.peer_url.is_empty()));

    let response = cluster
        .http
        .put(cluster.url(1, "/v1/kv/app/db/url"))
        .body("postgres://db")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let written: WriteResponse = response.json().await.unwrap();
    let response = cluster
        .http
        .get(cluster.url(2, "/v1/kv/app/db/url"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["etag"].to_str().unwrap(),
        format!("\"{}\"", written.revision)
    );
    assert_eq!(response.text().await.unwrap(), "postgres://db");

    for node in cluster.nodes {
        node.shutdown().await.unwrap();
    }
}

/// A leader holds back a commit index that no append carries for at most
/// the notice delay (1 ms by default). With heartbeats 2 s apart, an idle
/// follower that learnt each commit only from a heartbeat would show a
/// write within half a second about one time in four; it must show each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_follower_learns_each_commit_well_before_the_next_heartbeat() {
    let cluster = Cluster::start_with(3, |config| {
        config.timing = Timing {
            tick: Duration::from_secs(1),
            election_ticks: 3,
            heartbeat_ticks: 2,
            ..Timing::default()
        };
    })
    .await;
    cluster.form().await;
    for n in 0..6 {
        let value = format!("v{n}");
        let response = cluster
            .http
            .put(cluster.url(0, "/v1/kv/notice"))
            .body(value.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        let url = cluster.url(2, "/v1/kv/notice?consistency=serializable");
        wait_within(
            &format!("the follower to show write {n}"),
            Duration::from_millis(500),
            async || {
                let response = cluster.http.get(&url).send().await.unwrap();
                let shown = response.status() == 200 && response.text().await.unwrap() == value;
                shown.then_some(())
            },
        )
        .await;
    }
    for node in cluster.nodes {
        node.shutdown().await.unwrap();
    }
}
