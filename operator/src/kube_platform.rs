//! [`Platform`] on a Kubernetes API server: server-side apply of the owned
//! objects, pod and claim deletion, status patches and events.

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod as KubePod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crd::{RaftCluster, RaftClusterStatus};
use crate::credentials::SecretData;
use crate::observed::{ordinal_of, pod_name};
use crate::resources::{
    self, CLIENT_PORT, CONFIG_HASH_ANNOTATION, DATA_VOLUME, FIELD_MANAGER, SERVING_LABEL, namespace,
};
use crate::world::{Event, Platform, PlatformError, Pod, PodSet};

/// The Kubernetes API server as a [`Platform`].
#[derive(Clone)]
pub struct KubePlatform {
    client: Client,
    recorder: Recorder,
}

impl KubePlatform {
    /// A platform on `client`, publishing events as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
        }
    }

    fn api<K>(&self, cluster: &RaftCluster) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &namespace(cluster))
    }

    async fn apply<K>(&self, cluster: &RaftCluster, object: &K) -> Result<(), PlatformError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Serialize
            + DeserializeOwned
            + Clone
            + std::fmt::Debug,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        self.api::<K>(cluster)
            .patch(&name, &apply_params(), &Patch::Apply(object))
            .await
            .map(|_| ())
            .map_err(|e| PlatformError::new(format!("apply {} {name}", K::kind(&())), e))
    }

    async fn statefulset(
        &self,
        cluster: &RaftCluster,
    ) -> Result<Option<StatefulSet>, PlatformError> {
        self.api::<StatefulSet>(cluster)
            .get_opt(&cluster.name_any())
            .await
            .map_err(|e| PlatformError::new("get StatefulSet", e))
    }
}

impl KubePlatform {
    /// Deletes the cluster's NetworkPolicy, if there is one.
    async fn delete_network_policy(&self, cluster: &RaftCluster) -> Result<(), PlatformError> {
        let name = cluster.name_any();
        match self
            .api::<NetworkPolicy>(cluster)
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(PlatformError::new(
                format!("delete NetworkPolicy {name}"),
                e,
            )),
        }
    }
}

impl std::fmt::Debug for KubePlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubePlatform").finish_non_exhaustive()
    }
}

impl Platform for KubePlatform {
    async fn apply_owned(&self, cluster: &RaftCluster, voters: u32) -> Result<(), PlatformError> {
        self.apply::<Service>(cluster, &resources::peer_service(cluster))
            .await?;
        self.apply::<Service>(cluster, &resources::client_service(cluster))
            .await?;
        self.apply::<PodDisruptionBudget>(
            cluster,
            &resources::pod_disruption_budget(cluster, voters),
        )
        .await?;
        if cluster.spec.network_policy.enabled {
            self.apply::<NetworkPolicy>(cluster, &resources::network_policy(cluster))
                .await?;
        } else {
            self.delete_network_policy(cluster).await?;
        }
        if let Some(existing) = self.statefulset(cluster).await? {
            let replicas = existing.spec.replicas.unwrap_or(0).max(0) as u32;
            self.apply(cluster, &resources::statefulset(cluster, replicas))
                .await?;
        }
        Ok(())
    }

    async fn scale(&self, cluster: &RaftCluster, replicas: u32) -> Result<(), PlatformError> {
        self.apply(cluster, &resources::statefulset(cluster, replicas))
            .await
    }

    async fn pods(&self, cluster: &RaftCluster) -> Result<PodSet, PlatformError> {
        let statefulset_replicas = self
            .statefulset(cluster)
            .await?
            .map(|s| s.spec.replicas.unwrap_or(0).max(0) as u32);
        let list = self
            .api::<KubePod>(cluster)
            .list(&ListParams::default().labels(&resources::selector(cluster)))
            .await
            .map_err(|e| PlatformError::new("list pods", e))?;
        let name = cluster.name_any();
        let pods = list
            .items
            .into_iter()
            .filter_map(|pod| {
                let ordinal = ordinal_of(&name, &pod.name_any())?;
                // A pod that is not running (pending, failed, evicted) may
                // still name an IP that now belongs to another pod.
                let running =
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                let ip = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.clone())
                    .filter(|_| running);
                // Over TLS the pod is reached by the DNS name its
                // certificate holds (the headless Service publishes pods
                // before they are ready); the IP only says it runs.
                let client_url = if cluster.spec.tls_enabled() {
                    ip.map(|_| resources::client_url(cluster, ordinal))
                } else {
                    ip.map(|ip| format!("http://{}:{CLIENT_PORT}", bracket(&ip)))
                };
                Some(Pod {
                    ordinal,
                    terminating: pod.metadata.deletion_timestamp.is_some(),
                    config_hash: pod.annotations().get(CONFIG_HASH_ANNOTATION).cloned(),
                    serving: pod.labels().get(SERVING_LABEL).map(String::as_str) == Some("true"),
                    client_url,
                    peer_url: resources::peer_url(cluster, ordinal),
                    advertised_client_url: resources::client_url(cluster, ordinal),
                })
            })
            .collect();
        let claims = self
            .api::<PersistentVolumeClaim>(cluster)
            .list(&ListParams::default().labels(&resources::selector(cluster)))
            .await
            .map_err(|e| PlatformError::new("list volume claims", e))?
            .items
            .iter()
            .filter_map(|claim| {
                let pod = claim
                    .name_any()
                    .strip_prefix(&format!("{DATA_VOLUME}-"))?
                    .to_string();
                ordinal_of(&name, &pod)
            })
            .collect();
        Ok(PodSet {
            statefulset_replicas,
            pods,
            claims,
        })
    }

    async fn delete_pod(&self, cluster: &RaftCluster, ordinal: u32) -> Result<(), PlatformError> {
        let name = pod_name(&cluster.name_any(), ordinal);
        self.api::<KubePod>(cluster)
            .delete(&name, &DeleteParams::default())
            .await
            .map(|_| ())
            .map_err(|e| PlatformError::new(format!("delete pod {name}"), e))
    }

    async fn set_serving(
        &self,
        cluster: &RaftCluster,
        ordinal: u32,
        serving: bool,
    ) -> Result<(), PlatformError> {
        let name = pod_name(&cluster.name_any(), ordinal);
        let patch = serde_json::json!({
            "metadata": {"labels": {SERVING_LABEL: serving.to_string()}}
        });
        self.api::<KubePod>(cluster)
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|e| PlatformError::new(format!("label pod {name}"), e))
    }

    async fn wipe_pod(&self, cluster: &RaftCluster, ordinal: u32) -> Result<(), PlatformError> {
        let pod = pod_name(&cluster.name_any(), ordinal);
        let claim = format!("{DATA_VOLUME}-{pod}");
        // The claim goes first: it stays (protected) until the pod is gone,
        // and the StatefulSet recreates the pod with a new, empty claim.
        match self
            .api::<PersistentVolumeClaim>(cluster)
            .delete(&claim, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(PlatformError::new(format!("delete claim {claim}"), e)),
        }
        self.delete_pod(cluster, ordinal).await
    }

    async fn patch_status(
        &self,
        cluster: &RaftCluster,
        status: &RaftClusterStatus,
    ) -> Result<Option<String>, PlatformError> {
        let mut patch = serde_json::json!({
            "apiVersion": "raftcfg.io/v1alpha1",
            "kind": "RaftCluster",
            "status": status,
        });
        if let Some(version) = &cluster.metadata.resource_version {
            // Server-side apply with a resourceVersion is a compare-and-swap.
            patch["metadata"] = serde_json::json!({"resourceVersion": version});
        }
        self.api::<RaftCluster>(cluster)
            .patch_status(&cluster.name_any(), &apply_params(), &Patch::Apply(&patch))
            .await
            .map(|written| written.metadata.resource_version)
            .map_err(|e| PlatformError::new("patch RaftCluster status", e))
    }

    async fn publish(&self, cluster: &RaftCluster, event: Event) -> Result<(), PlatformError> {
        let event = KubeEvent {
            type_: if event.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            action: event_action(&event.note),
            reason: event.reason,
            note: Some(event.note),
            secondary: None,
        };
        self.recorder
            .publish(&event, &cluster.object_ref(&()))
            .await
            .map_err(|e| PlatformError::new("publish event", e))
    }

    async fn apply_certificates(&self, cluster: &RaftCluster) -> Result<(), PlatformError> {
        for certificate in resources::certificates(cluster) {
            let name = certificate.name_any();
            Api::<DynamicObject>::namespaced_with(
                self.client.clone(),
                &namespace(cluster),
                &resources::CERTIFICATE,
            )
            .patch(&name, &apply_params(), &Patch::Apply(&certificate))
            .await
            .map_err(|e| {
                PlatformError::new(
                    format!("apply cert-manager Certificate {name} (is cert-manager installed?)"),
                    e,
                )
            })?;
        }
        Ok(())
    }

    async fn secret(
        &self,
        cluster: &RaftCluster,
        name: &str,
    ) -> Result<Option<SecretData>, PlatformError> {
        let secret = self
            .api::<Secret>(cluster)
            .get_opt(name)
            .await
            .map_err(|e| PlatformError::new(format!("get Secret {name}"), e))?;
        Ok(secret.map(|secret| {
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(key, ByteString(bytes))| (key, bytes))
                .collect()
        }))
    }

    async fn apply_secret(
        &self,
        cluster: &RaftCluster,
        name: &str,
        data: &SecretData,
    ) -> Result<(), PlatformError> {
        self.apply(cluster, &resources::secret(cluster, name, data))
            .await
    }
}

/// The longest `action` an Event may carry.
const MAX_ACTION_BYTES: usize = 128;

/// An Event's `action`: its note, cut to [`MAX_ACTION_BYTES`]. The
/// recorder merges events of the same reason and action into one series
/// that keeps the first note, so an action per reason would hide every
/// later step of that kind (`Remove (x3)` showing only the first member);
/// with the note as the action only true repeats merge.
fn event_action(note: &str) -> String {
    let mut end = note.len().min(MAX_ACTION_BYTES);
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    note[..end].to_owned()
}

/// Server-side apply as the operator, taking over fields it owns.
fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// An IPv6 address in a URL needs brackets.
fn bracket(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_action_is_its_note_cut_at_a_character_boundary() {
        assert_eq!(event_action("pod 1 replaced"), "pod 1 replaced");
        let long = "é".repeat(100);
        let action = event_action(&long);
        assert!(action.len() <= MAX_ACTION_BYTES);
        assert_eq!(action, "é".repeat(64));
    }
}
