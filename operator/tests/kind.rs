//! The scaling scenario against a real Kubernetes cluster (kind or any
//! kubeconfig), with the operator installed by the Helm chart. Ignored by
//! default: this machine has no cluster. How to run it (README, "Operator
//! on a real cluster"):
//!
//! ```text
//! kind create cluster
//! docker build --target raftcfg -t raftcfg:dev .
//! docker build --target operator -t raftcfg-operator:dev .
//! kind load docker-image raftcfg:dev raftcfg-operator:dev
//! helm install raftcfg-operator charts/raftcfg-operator -n raftcfg-system \
//!     --create-namespace --set image.repository=raftcfg-operator --set image.tag=dev
//! RAFTCFG_E2E_IMAGE=raftcfg:dev cargo test -p raftcfg-operator --test kind -- --ignored
//! ```
//!
//! It creates a RaftCluster in a fresh namespace, scales it 1→3→5→3→1
//! through the scale subresource (as `kubectl scale` does), and checks at
//! each size that every member is a healthy voter, that no membership
//! change failed, and that the StatefulSet followed.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use raftcfg_operator::crd::{ChangeOutcome, MemberRole, Phase, RaftCluster};

const PHASE_DEADLINE: Duration = Duration::from_secs(600);

#[tokio::test]
#[ignore = "needs a Kubernetes cluster with the operator installed; see the module doc"]
async fn scaling_a_raft_cluster_on_kubernetes_changes_membership_one_member_at_a_time() {
    let image = std::env::var("RAFTCFG_E2E_IMAGE").unwrap_or_else(|_| "raftcfg:dev".into());
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
        "metadata": {"name": "cfg"},
        "spec": {"replicas": 1, "image": image, "imagePullPolicy": "IfNotPresent", "storage": {"size": "256Mi"}}
    }))
    .unwrap();
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();

    for replicas in [1, 3, 5, 3, 1] {
        scale(&clusters, replicas).await;
        let status = settle(&clusters, replicas).await;
        assert!(
            status
                .recent_changes
                .iter()
                .all(|c| c.outcome == ChangeOutcome::Committed),
            "a membership change failed: {:?}",
            status.recent_changes
        );
        let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
        let sts = statefulsets.get("cfg").await.unwrap();
        assert_eq!(sts.spec.replicas, Some(replicas));
    }

    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .unwrap();
}

/// `kubectl scale rc/cfg --replicas=N`.
async fn scale(clusters: &Api<RaftCluster>, replicas: i32) {
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    clusters
        .patch_scale("cfg", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Waits until the status shows `replicas` healthy voters and phase Running.
async fn settle(
    clusters: &Api<RaftCluster>,
    replicas: i32,
) -> raftcfg_operator::crd::RaftClusterStatus {
    let started = Instant::now();
    loop {
        let cluster = clusters.get("cfg").await.unwrap();
        let status = cluster.status.clone().unwrap_or_default();
        let voters = status
            .members
            .iter()
            .filter(|m| m.role == MemberRole::Voter && m.healthy)
            .count();
        if status.phase == Some(Phase::Running)
            && status.replicas == replicas
            && voters == replicas as usize
        {
            return status;
        }
        assert!(
            started.elapsed() < PHASE_DEADLINE,
            "{} did not settle at {replicas} replicas: {:?}",
            cluster.name_any(),
            status
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
