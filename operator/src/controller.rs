//! The kube-rs controller around [`Reconciler`]: it watches RaftClusters,
//! the StatefulSets they own and their pods and volume claims (a pod that
//! starts, stops or turns ready, or a claim deleted by hand, is seen at
//! once rather than at the next re-check), reconciles each cluster from a
//! fresh read, and retries failures with exponential backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{PredicateConfig, WatchStreamExt, predicates, reflector, watcher};
use kube::{Client, ResourceExt};
use tracing::Instrument;

use crate::crd::RaftCluster;
use crate::kube_platform::KubePlatform;
use crate::reconcile::{ReconcileError, Reconciler};
use crate::resources::{APP_NAME, INSTANCE_LABEL, NAME_LABEL};
use crate::world::{HttpNodes, PlatformError};

/// The first retry after a failure; doubled per failure up to the cap.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(60);

/// What every reconcile shares.
pub struct Context {
    /// The reconcile core, on Kubernetes.
    pub reconciler: Reconciler<KubePlatform, HttpNodes>,
    /// For fresh reads of the RaftCluster.
    pub client: Client,
    /// Consecutive failures per cluster (namespace/name), for backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context around `reconciler`.
    pub fn new(reconciler: Reconciler<KubePlatform, HttpNodes>, client: Client) -> Self {
        Self {
            reconciler,
            client,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn record(&self, key: &str, failed: bool) -> u32 {
        let mut failures = self.failures.lock().expect("failure counts lock");
        if failed {
            let count = failures.entry(key.to_string()).or_default();
            *count += 1;
            *count
        } else {
            failures.remove(key);
            0
        }
    }
}

/// Runs the controller until a shutdown signal; `namespace` limits it to
/// one namespace.
pub async fn run(context: Arc<Context>, namespace: Option<&str>) {
    let client = context.client.clone();
    let (clusters, statefulsets, pods, claims) = match namespace {
        Some(ns) => (
            Api::<RaftCluster>::namespaced(client.clone(), ns),
            Api::<StatefulSet>::namespaced(client.clone(), ns),
            Api::<Pod>::namespaced(client.clone(), ns),
            Api::<PersistentVolumeClaim>::namespaced(client, ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client),
        ),
    };
    // Only the operator's own pods and claims (they carry its labels).
    let ours = watcher::Config::default().labels(&format!("{NAME_LABEL}={APP_NAME}"));
    // Only spec changes (a new generation) trigger a reconcile: the
    // status this operator writes changes with every write the cluster
    // takes (member lag), and would otherwise keep it reconciling without
    // pause. Changes of the world are picked up by the requeue timers.
    let (reader, writer) = reflector::store();
    let specs = watcher(clusters, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, PredicateConfig::default());
    Controller::for_stream(specs, reader)
        .owns(statefulsets, watcher::Config::default())
        .watches(pods, ours.clone(), |pod| cluster_of(&pod))
        .watches(claims, ours, |claim| cluster_of(&claim))
        .shutdown_on_signal()
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "controller event");
            }
        })
        .await;
}

async fn reconcile(
    cluster: Arc<RaftCluster>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let span = tracing::info_span!("reconcile", raftcluster = %name, namespace = %namespace);
    async move {
        let started = Instant::now();
        let api = Api::<RaftCluster>::namespaced(context.client.clone(), &namespace);
        // The watch may lag behind the status this operator last wrote; the
        // planner's record must be the newest.
        let result = match api.get_opt(&name).await {
            Ok(Some(fresh)) => context.reconciler.reconcile(&fresh, Timestamp::now()).await,
            Ok(None) => return Ok(Action::await_change()),
            Err(e) => Err(PlatformError::new("get RaftCluster", e).into()),
        };
        context
            .reconciler
            .metrics
            .reconciled(started.elapsed(), result.is_err());
        context.record(&format!("{namespace}/{name}"), result.is_err());
        let outcome = result?;
        tracing::info!(?outcome, "reconciled");
        Ok(Action::requeue(outcome.requeue_after()))
    }
    .instrument(span)
    .await
}

fn error_policy(
    cluster: Arc<RaftCluster>,
    error: &ReconcileError,
    context: Arc<Context>,
) -> Action {
    let key = format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    );
    let failures = context
        .failures
        .lock()
        .expect("failure counts lock")
        .get(&key)
        .copied()
        .unwrap_or(1);
    let retry = backoff(failures);
    tracing::warn!(raftcluster = %cluster.name_any(), %error, retry_in = ?retry, "reconcile failed");
    Action::requeue(retry)
}

/// The RaftCluster a pod or a volume claim belongs to, by the instance
/// label the operator puts on both (pods belong to the StatefulSet, not
/// to the cluster, so owner references do not lead there).
pub fn cluster_of(object: &impl ResourceExt) -> Option<ObjectRef<RaftCluster>> {
    let labels = object.labels();
    if labels.get(NAME_LABEL).map(String::as_str) != Some(APP_NAME) {
        return None;
    }
    let name = labels.get(INSTANCE_LABEL)?;
    Some(ObjectRef::new(name).within(&object.namespace()?))
}

/// The wait before retrying after `failures` consecutive failures.
pub fn backoff(failures: u32) -> Duration {
    let doubled = FIRST_RETRY.saturating_mul(1 << failures.saturating_sub(1).min(16));
    doubled.min(LONGEST_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_and_claims_lead_to_their_cluster_by_its_labels() {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some("prod".into());
        pod.metadata.labels = Some(
            [
                ("app.kubernetes.io/name".to_owned(), "raftcfg".to_owned()),
                ("app.kubernetes.io/instance".to_owned(), "config".to_owned()),
            ]
            .into(),
        );
        assert_eq!(
            cluster_of(&pod),
            Some(ObjectRef::new("config").within("prod"))
        );
        let mut stranger = pod.clone();
        stranger
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("app.kubernetes.io/name".into(), "etcd".into());
        assert_eq!(cluster_of(&stranger), None, "not ours");
        let mut unlabelled = PersistentVolumeClaim::default();
        unlabelled.metadata.namespace = Some("prod".into());
        assert_eq!(cluster_of(&unlabelled), None);
    }

    #[test]
    fn retries_back_off_exponentially_up_to_a_minute() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
    }
}
