//! Three nodes in one process on loopback ports: the driver, transport and
//! API working together (the multi-process tests run the real binary).

mod support;

use raftcfg_client::wire::{BootstrapResponse, MemberList, NodeStatus, WriteResponse};
use raftcfg_node::server::{NodeConfig, RunningNode, start};
use serde_json::json;
use support::wait_for;

struct Cluster {
    nodes: Vec<RunningNode>,
    _dirs: Vec<tempfile::TempDir>,
    http: reqwest::Client,
}

impl Cluster {
    async fn start(n: usize) -> Self {
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for i in 1..=n {
            let dir = tempfile::tempdir().unwrap();
            let node = start(NodeConfig::local(format!("n{i}"), dir.path()))
                .await
                .unwrap();
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
        for i in 1..self.nodes.len() {
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
