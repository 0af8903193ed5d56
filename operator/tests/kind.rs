//! The end-to-end scenario against a real Kubernetes cluster (kind or any
//! kubeconfig), with the operator installed by the Helm chart. Ignored by
//! default: this machine has no cluster. How to run it (README, "Testing"):
//!
//! ```text
//! kind create cluster
//! docker build --target raftcfg -t raftcfg:dev .
//! docker tag raftcfg:dev raftcfg:dev2          # the "new version" of the roll
//! docker build --target operator -t raftcfg-operator:dev .
//! kind load docker-image raftcfg:dev raftcfg:dev2 raftcfg-operator:dev
//! helm install raftcfg-operator charts/raftcfg-operator -n raftcfg-system \
//!     --create-namespace --set image.repository=raftcfg-operator --set image.tag=dev
//! RAFTCFG_E2E_IMAGE=raftcfg:dev RAFTCFG_E2E_IMAGE2=raftcfg:dev2 \
//!     cargo test -p raftcfg-operator --test kind -- --ignored --nocapture
//! ```
//!
//! In a fresh namespace it creates a RaftCluster and, under continuous
//! writes sent through the API server's proxy to the client Service, scales
//! it 1→3→5→3→1→3 through the scale subresource (as `kubectl scale` does),
//! deletes a follower's volume and pod (the member must be replaced by a new
//! node), and changes the image (every pod must be replaced). At each step
//! every member must be a healthy voter and no membership change may have
//! failed; at the end every acknowledged write must read back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use raftcfg_operator::crd::{
    ChangeKind, ChangeOutcome, MemberRole, Phase, RaftCluster, RaftClusterStatus,
};

const NAME: &str = "cfg";
const PHASE_DEADLINE: Duration = Duration::from_secs(600);

#[tokio::test]
#[ignore = "needs a Kubernetes cluster with the operator installed; see the module doc"]
async fn a_raft_cluster_on_kubernetes_scales_replaces_and_rolls_without_losing_writes() {
    let image = std::env::var("RAFTCFG_E2E_IMAGE").unwrap_or_else(|_| "raftcfg:dev".into());
    let image2 = std::env::var("RAFTCFG_E2E_IMAGE2").unwrap_or_else(|_| "raftcfg:dev2".into());
    let client = Client::try_default().await.expect("a kubeconfig");
    let namespace = format!("raftcfg-e2e-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": namespace}
    }))
    .unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();

    let clusters: Api<RaftCluster> = Api::namespaced(client.clone(), &namespace);
    let cluster: RaftCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "raftcfg.io/v1alpha1",
        "kind": "RaftCluster",
        "metadata": {"name": NAME},
        "spec": {"replicas": 1, "image": image, "imagePullPolicy": "IfNotPresent", "storage": {"size": "256Mi"}}
    }))
    .unwrap();
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
    settle(&clusters, 1).await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until(client.clone(), namespace.clone(), stop.clone()));

    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
    for replicas in [3, 5, 3, 1, 3] {
        scale(&clusters, replicas).await;
        settle(&clusters, replicas).await;
        let sts = statefulsets.get(NAME).await.unwrap();
        assert_eq!(sts.spec.replicas, Some(replicas));
    }

    // A follower's volume is lost: its claim and pod are deleted.
    let status = clusters.get(NAME).await.unwrap().status.unwrap_or_default();
    let follower = status
        .members
        .iter()
        .find(|m| Some(&m.name) != status.leader.as_ref())
        .expect("a follower")
        .clone();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    claims
        .delete(&format!("data-{}", follower.name), &DeleteParams::default())
        .await
        .unwrap();
    pods.delete(&follower.name, &DeleteParams::default())
        .await
        .unwrap();
    let replaced = settle_when(&clusters, 3, |status| {
        status
            .members
            .iter()
            .any(|m| m.name == follower.name && m.node_id != follower.node_id)
    })
    .await;
    assert!(
        replaced
            .recent_changes
            .iter()
            .any(|c| c.kind == ChangeKind::Remove && c.node_id == follower.node_id),
        "the lost member was removed: {:?}",
        replaced.recent_changes
    );

    // A new version: every pod is replaced.
    let patch = serde_json::json!({"spec": {"image": image2}});
    clusters
        .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let list = pods.list(&Default::default()).await.unwrap();
        let rolled = list
            .items
            .iter()
            .filter(|p| p.name_any().starts_with(&format!("{NAME}-")))
            .all(|p| {
                p.spec
                    .as_ref()
                    .is_some_and(|s| s.containers[0].image.as_deref() == Some(image2.as_str()))
            });
        if rolled {
            break;
        }
        assert!(
            started.elapsed() < PHASE_DEADLINE,
            "the pods were not rolled"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    settle(&clusters, 3).await;

    stop.store(true, Ordering::Relaxed);
    let acknowledged = writer.await.unwrap();
    assert!(!acknowledged.is_empty(), "no write was acknowledged");
    for key in &acknowledged {
        let value = kv_get(&client, &namespace, key).await;
        assert_eq!(
            value.as_deref(),
            Some(key.as_str()),
            "acknowledged {key} is lost"
        );
    }
    println!("{} acknowledged writes read back", acknowledged.len());

    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .unwrap();
}

/// `kubectl scale rcfg/cfg --replicas=N`.
async fn scale(clusters: &Api<RaftCluster>, replicas: i32) {
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    clusters
        .patch_scale(NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Waits until the status shows `replicas` healthy voters, phase Running,
/// and no failed membership change.
async fn settle(clusters: &Api<RaftCluster>, replicas: i32) -> RaftClusterStatus {
    settle_when(clusters, replicas, |_| true).await
}

async fn settle_when(
    clusters: &Api<RaftCluster>,
    replicas: i32,
    also: impl Fn(&RaftClusterStatus) -> bool,
) -> RaftClusterStatus {
    let started = Instant::now();
    loop {
        let cluster = clusters.get(NAME).await.unwrap();
        let status = cluster.status.clone().unwrap_or_default();
        assert!(
            status
                .recent_changes
                .iter()
                .all(|c| c.outcome != ChangeOutcome::Failed),
            "a membership change failed: {:?}",
            status.recent_changes
        );
        let voters = status
            .members
            .iter()
            .filter(|m| m.role == MemberRole::Voter && m.healthy)
            .count();
        if status.phase == Some(Phase::Running)
            && status.replicas == replicas
            && voters == replicas as usize
            && also(&status)
        {
            return status;
        }
        assert!(
            started.elapsed() < PHASE_DEADLINE,
            "{} did not settle at {replicas} replicas: {status:?}",
            cluster.name_any(),
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The client Service through the API server's proxy.
fn proxy_path(namespace: &str, key: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/services/{NAME}-client:7379/proxy/v1/kv/{key}")
}

/// Writes unique keys (value = key) until `stop`; the acknowledged ones.
async fn write_until(client: Client, namespace: String, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut acknowledged = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("e2e/{n}");
        let request = http::Request::put(proxy_path(&namespace, &key))
            .body(key.clone().into_bytes())
            .unwrap();
        if client.request_text(request).await.is_ok() {
            acknowledged.push(key);
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    acknowledged
}

/// A linearizable read through the proxy; `None` if absent, retried while
/// the cluster is briefly unavailable.
async fn kv_get(client: &Client, namespace: &str, key: &str) -> Option<String> {
    for _ in 0..30 {
        let request = http::Request::get(proxy_path(namespace, key))
            .body(Vec::new())
            .unwrap();
        match client.request_text(request).await {
            Ok(value) => return Some(value),
            Err(kube::Error::Api(status)) if status.code == 404 => return None,
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    panic!("{key} could not be read");
}
