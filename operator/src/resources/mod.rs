//! The Kubernetes objects the operator owns for each `RaftCluster`: the
//! StatefulSet of `raftcfg serve` pods ([`statefulset`]), the headless peer
//! Service and the client Service ([`peer_service`], [`client_service`]) and
//! the PodDisruptionBudget that keeps voluntary disruptions from breaking
//! quorum ([`pod_disruption_budget`]), the NetworkPolicy that keeps the
//! peer port to the cluster's own pods ([`network_policy`]) and, with TLS
//! from cert-manager, its `Certificate`s ([`certificates`]); plus the
//! names, labels, URLs and the configuration hash the rest of the operator
//! derives from a cluster.
//!
//! Everything here is a pure function of the `RaftCluster` (and of the member
//! count the caller passes). This module must not do I/O or talk to the API
//! server: the reconcile loop applies the objects it returns with
//! server-side apply as [`FIELD_MANAGER`]. Each object is named after the
//! cluster, lives in its namespace, carries [`labels`] and a controller
//! owner reference to it, so deleting the cluster deletes them (the
//! StatefulSet's volumes are kept, see [`statefulset`]).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource as _, ResourceExt as _};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::crd::{RaftCluster, RaftClusterSpec};
use crate::observed::pod_name;

mod certificate;
mod disruption_budget;
mod network_policy;
mod service;
mod stateful_set;

pub use certificate::{CERTIFICATE, certificates};
pub use disruption_budget::pod_disruption_budget;
pub use network_policy::network_policy;
pub use service::{client_service, peer_service};
pub use stateful_set::statefulset;

/// Where each pod mounts the Secret [`member_secret_name`] when TLS is on.
pub const TLS_DIR: &str = "/etc/raftcfg/tls";
/// The CA certificate's key in every Secret that carries it.
pub const CA_CERT_KEY: &str = "ca.crt";
/// The user the operator signs in as: the certificate it presents names
/// it, and it holds the built-in root role.
pub const ROOT_USER: &str = "root";

/// The port of the client API (`/v1/kv`, `/v1/node`, `/healthz`, `/readyz`).
pub const CLIENT_PORT: u16 = 7379;
/// The port nodes use to talk Raft to each other.
pub const PEER_PORT: u16 = 7380;
/// Where each pod mounts its volume and keeps its Raft log and state.
pub const DATA_DIR: &str = "/var/lib/raftcfg";
/// The volume claim template of the data volume; pod `k`'s claim is
/// `data-<name>-<k>`.
pub const DATA_VOLUME: &str = "data";
/// Pod template annotation carrying [`config_hash`] of the spec; a pod whose
/// annotation differs from the spec's hash runs an old template.
pub const CONFIG_HASH_ANNOTATION: &str = "raftcfg.io/config-hash";
/// RaftCluster annotation naming the cluster id whose retained volumes
/// (of an earlier RaftCluster of the same name) this one takes over.
pub const ADOPT_ANNOTATION: &str = "raftcfg.io/adopt-cluster-id";
/// RaftCluster annotation approving a recovery from a lost quorum under
/// `spec.recovery.quorumLoss: Manual`. Each new value approves one
/// recovery (the value used is recorded in `status.lastRecovery.trigger`).
pub const RECOVER_ANNOTATION: &str = "raftcfg.io/recover-quorum";
/// The field manager for server-side apply.
pub const FIELD_MANAGER: &str = "raftcfg-operator";

/// The label naming the application, `raftcfg` on every object.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The label naming the RaftCluster an object belongs to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// The value of [`NAME_LABEL`].
pub const APP_NAME: &str = "raftcfg";
const COMPONENT: &str = "raftcfg-node";

/// The labels that select this cluster's pods: `app.kubernetes.io/name=raftcfg`
/// and `app.kubernetes.io/instance=<name>`.
///
/// A StatefulSet's selector cannot change, so neither may these.
pub fn selector_labels(rc: &RaftCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_owned(), APP_NAME.to_owned()),
        (INSTANCE_LABEL.to_owned(), rc.name_any()),
    ])
}

/// The labels of every object the operator creates for `rc`: the
/// [`selector_labels`] plus `app.kubernetes.io/managed-by` and
/// `app.kubernetes.io/component`.
pub fn labels(rc: &RaftCluster) -> BTreeMap<String, String> {
    let mut labels = selector_labels(rc);
    labels.insert(MANAGED_BY_LABEL.to_owned(), FIELD_MANAGER.to_owned());
    labels.insert(COMPONENT_LABEL.to_owned(), COMPONENT.to_owned());
    labels
}

/// The pod label the client Service selects on besides the
/// [`selector_labels`]: `"true"` on every pod the StatefulSet creates. The
/// operator sets it to `"false"` on a pod whose member is leaving (its
/// ordinal is at or above `spec.replicas`) before asking for the removal,
/// so clients are no longer sent to a member about to stop serving them.
/// It is not part of the StatefulSet's selector: changing it on a pod
/// neither orphans nor replaces the pod.
pub const SERVING_LABEL: &str = "raftcfg.io/serving";

/// The client Service's selector: the [`selector_labels`] and
/// [`SERVING_LABEL`]`=true`.
pub fn client_selector_labels(rc: &RaftCluster) -> BTreeMap<String, String> {
    let mut labels = selector_labels(rc);
    labels.insert(SERVING_LABEL.to_owned(), "true".to_owned());
    labels
}

/// The [`selector_labels`] as a label selector string, sorted by key, for
/// `status.selector` (the scale subresource's selector), e.g.
/// `app.kubernetes.io/instance=config,app.kubernetes.io/name=raftcfg`.
pub fn selector(rc: &RaftCluster) -> String {
    selector_labels(rc)
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The headless Service that gives each pod a stable DNS name: `<name>-peer`.
pub fn peer_service_name(rc: &RaftCluster) -> String {
    format!("{}-peer", rc.name_any())
}

/// The Service clients use: `<name>-client`.
pub fn client_service_name(rc: &RaftCluster) -> String {
    format!("{}-client", rc.name_any())
}

/// The operator's own cluster CA (certificate and key): `<name>-ca`.
/// Only the operator reads it; no pod mounts it.
pub fn ca_secret_name(rc: &RaftCluster) -> String {
    format!("{}-ca", rc.name_any())
}

/// The members' certificates and keys and the CA certificate, mounted in
/// every pod at [`TLS_DIR`]: `<name>-tls`.
pub fn member_secret_name(rc: &RaftCluster) -> String {
    format!("{}-tls", rc.name_any())
}

/// The operator's client certificate (common name [`ROOT_USER`]):
/// `<name>-operator-tls`.
pub fn operator_secret_name(rc: &RaftCluster) -> String {
    format!("{}-operator-tls", rc.name_any())
}

/// The root user's name and password, for people: `<name>-root`.
pub fn root_secret_name(rc: &RaftCluster) -> String {
    format!("{}-root", rc.name_any())
}

/// `https` when the members serve TLS, else `http`.
pub fn scheme(rc: &RaftCluster) -> &'static str {
    if rc.spec.tls_enabled() {
        "https"
    } else {
        "http"
    }
}

/// The client URL of pod `ordinal` through the headless peer Service:
/// `http://<name>-<ordinal>.<name>-peer.<namespace>.svc:7379` (https with
/// TLS). It is what the pod advertises, so it stays the same across
/// restarts.
pub fn client_url(rc: &RaftCluster, ordinal: u32) -> String {
    format!("{}://{}:{CLIENT_PORT}", scheme(rc), pod_host(rc, ordinal))
}

/// The peer URL of pod `ordinal`: the host of [`client_url`], port 7380.
pub fn peer_url(rc: &RaftCluster, ordinal: u32) -> String {
    format!("{}://{}:{PEER_PORT}", scheme(rc), pod_host(rc, ordinal))
}

/// The DNS names a member's certificate holds: its own names through the
/// headless peer Service (short to fully qualified), the client Service's
/// names, and `localhost` (for `kubectl port-forward`).
pub fn member_dns_names(rc: &RaftCluster, ordinal: u32) -> Vec<String> {
    let name = rc.name_any();
    let ns = namespace(rc);
    let pod = pod_name(&name, ordinal);
    let peer = peer_service_name(rc);
    let client = client_service_name(rc);
    vec![
        format!("{pod}.{peer}.{ns}.svc"),
        format!("{pod}.{peer}.{ns}.svc.cluster.local"),
        format!("{pod}.{peer}.{ns}"),
        format!("{pod}.{peer}"),
        client.clone(),
        format!("{client}.{ns}"),
        format!("{client}.{ns}.svc"),
        format!("{client}.{ns}.svc.cluster.local"),
        "localhost".to_owned(),
    ]
}

/// A short hash of everything in the spec that shapes the pod template:
/// the whole spec except `replicas`, `storage` (immutable, and in the claim
/// template, not the pod template), `learnerTimeoutSeconds`,
/// `networkPolicy`, `clientAccess`, `auth` and `recovery`. The first
/// 16 hex digits of the SHA-256 of its canonical JSON (object keys sorted,
/// no whitespace), so it does not depend on field order.
///
/// Only the spec is hashed: a new operator version that changes the
/// template on its own does not make existing pods look outdated.
pub fn config_hash(spec: &RaftClusterSpec) -> String {
    let mut value = serde_json::to_value(spec).expect("a RaftClusterSpec serializes to JSON");
    if let Value::Object(fields) = &mut value {
        for key in [
            "replicas",
            "storage",
            "learnerTimeoutSeconds",
            "networkPolicy",
            "clientAccess",
            "auth",
            "recovery",
        ] {
            fields.remove(key);
        }
        if !spec.tls_enabled() {
            fields.remove("tls");
        }
    }
    let mut canonical = String::new();
    write_canonical_json(&value, &mut canonical);
    Sha256::digest(canonical.as_bytes())
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// JSON with object keys sorted and no whitespace, whatever order the map
/// keeps its keys in.
fn write_canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(fields) => {
            let mut entries: Vec<_> = fields.iter().collect();
            entries.sort_by_key(|(key, _)| key.as_str());
            out.push('{');
            for (i, (key, field)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical_json(field, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The cluster's namespace; `default` when the object carries none.
pub fn namespace(rc: &RaftCluster) -> String {
    rc.namespace().unwrap_or_else(|| "default".to_owned())
}

/// `<name>-<ordinal>.<name>-peer.<namespace>.svc`.
fn pod_host(rc: &RaftCluster, ordinal: u32) -> String {
    format!(
        "{}.{}.{}.svc",
        pod_name(&rc.name_any(), ordinal),
        peer_service_name(rc),
        namespace(rc)
    )
}

/// The Secret `name` holding `data`, owned by the cluster (so deleting the
/// cluster deletes it).
pub fn secret(
    rc: &RaftCluster,
    name: &str,
    data: &BTreeMap<String, Vec<u8>>,
) -> k8s_openapi::api::core::v1::Secret {
    k8s_openapi::api::core::v1::Secret {
        metadata: object_meta(rc, name.to_owned()),
        type_: Some("Opaque".to_owned()),
        data: Some(
            data.iter()
                .map(|(key, value)| (key.clone(), k8s_openapi::ByteString(value.clone())))
                .collect(),
        ),
        ..k8s_openapi::api::core::v1::Secret::default()
    }
}

/// Metadata of an owned object: `name`, the cluster's namespace, [`labels`]
/// and the controller owner reference.
fn object_meta(rc: &RaftCluster, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace(rc)),
        labels: Some(labels(rc)),
        owner_references: Some(vec![owner_reference(rc)]),
        ..ObjectMeta::default()
    }
}

fn owner_reference(rc: &RaftCluster) -> OwnerReference {
    rc.controller_owner_ref(&())
        .expect("a RaftCluster read from the API server has a name and a uid")
}

/// A cluster to build objects from in tests.
#[cfg(test)]
pub(crate) fn test_cluster(replicas: i32) -> RaftCluster {
    let spec: RaftClusterSpec = serde_json::from_value(serde_json::json!({
        "replicas": replicas,
        "image": "ghcr.io/example/raftcfg:0.1.0",
        "storage": {"size": "1Gi", "storageClassName": "fast"}
    }))
    .expect("a valid spec");
    let mut rc = RaftCluster::new("config", spec);
    rc.metadata.namespace = Some("prod".into());
    rc.metadata.uid = Some("uid-1".into());
    rc
}

#[cfg(test)]
mod tests {
    use kube::Resource as _;

    use super::*;
    use crate::crd::ImagePullPolicy;

    #[test]
    fn pods_are_addressed_by_their_stable_dns_names() {
        let rc = test_cluster(3);
        assert_eq!(
            client_url(&rc, 1),
            "http://config-1.config-peer.prod.svc:7379"
        );
        assert_eq!(
            peer_url(&rc, 1),
            "http://config-1.config-peer.prod.svc:7380"
        );
        assert_eq!(peer_service_name(&rc), "config-peer");
        assert_eq!(client_service_name(&rc), "config-client");
    }

    #[test]
    fn with_tls_urls_are_https_and_certificates_name_the_pod_and_services() {
        let mut rc = test_cluster(3);
        rc.spec.tls = Some(crate::crd::TlsSettings {
            enabled: true,
            issuer_ref: None,
        });
        assert_eq!(
            client_url(&rc, 1),
            "https://config-1.config-peer.prod.svc:7379"
        );
        assert_eq!(
            peer_url(&rc, 1),
            "https://config-1.config-peer.prod.svc:7380"
        );
        let names = member_dns_names(&rc, 1);
        for name in [
            "config-1.config-peer.prod.svc",
            "config-1.config-peer.prod.svc.cluster.local",
            "config-client",
            "config-client.prod.svc",
            "localhost",
        ] {
            assert!(
                names.contains(&name.to_owned()),
                "{name} missing: {names:?}"
            );
        }
        assert!(!names.iter().any(|n| n.starts_with("config-0")));
    }

    #[test]
    fn a_cluster_without_a_namespace_lives_in_default() {
        let mut rc = test_cluster(3);
        rc.metadata.namespace = None;
        assert_eq!(
            client_url(&rc, 0),
            "http://config-0.config-peer.default.svc:7379"
        );
        assert_eq!(
            peer_service(&rc).metadata.namespace.as_deref(),
            Some("default")
        );
    }

    #[test]
    fn the_status_selector_lists_the_selector_labels_sorted() {
        let rc = test_cluster(3);
        assert_eq!(
            selector(&rc),
            "app.kubernetes.io/instance=config,app.kubernetes.io/name=raftcfg"
        );
        let labels = labels(&rc);
        for (key, value) in selector_labels(&rc) {
            assert_eq!(labels.get(&key), Some(&value));
        }
        assert_eq!(
            labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some(FIELD_MANAGER)
        );
    }

    #[test]
    fn config_hash_changes_with_the_pod_template_and_not_with_replicas() {
        let rc = test_cluster(3);
        let base = config_hash(&rc.spec);
        assert_eq!(base.len(), 16);
        assert!(base.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(config_hash(&rc.spec.clone()), base, "deterministic");

        let mut image = rc.spec.clone();
        image.image = "ghcr.io/example/raftcfg:0.2.0".into();
        assert_ne!(config_hash(&image), base, "image");

        let mut pull = rc.spec.clone();
        pull.image_pull_policy = Some(ImagePullPolicy::Always);
        assert_ne!(config_hash(&pull), base, "image pull policy");

        let mut heartbeat = rc.spec.clone();
        heartbeat.raft.heartbeat_interval_ms = 50;
        assert_ne!(config_hash(&heartbeat), base, "heartbeat interval");

        let mut election = rc.spec.clone();
        election.raft.election_timeout_ms = 2000;
        assert_ne!(config_hash(&election), base, "election timeout");

        let mut snapshots = rc.spec.clone();
        snapshots.raft.snapshot_threshold_entries = 500;
        assert_ne!(config_hash(&snapshots), base, "snapshot threshold");

        let mut pod_labels = rc.spec.clone();
        pod_labels.pod_labels.insert("team".into(), "infra".into());
        assert_ne!(config_hash(&pod_labels), base, "pod labels");

        let mut engine = rc.spec.clone();
        engine.engine.memtables_bytes = Some(128 << 20);
        assert_ne!(config_hash(&engine), base, "engine tuning");
        // An unset engine section is left out of what is hashed, so the
        // field's arrival replaced no running pod.
        let spec = serde_json::to_value(&rc.spec).unwrap();
        assert!(spec.get("engine").is_none(), "{spec}");

        let mut replicas = rc.spec.clone();
        replicas.replicas = 5;
        assert_eq!(config_hash(&replicas), base, "replicas");

        let mut learner = rc.spec.clone();
        learner.learner_timeout_seconds = 60;
        assert_eq!(config_hash(&learner), base, "learner timeout");

        let mut auth = rc.spec.clone();
        auth.auth = Some(crate::crd::AuthSettings { enabled: true });
        assert_eq!(config_hash(&auth), base, "auth is set through the API");

        let mut tls_off = rc.spec.clone();
        tls_off.tls = Some(crate::crd::TlsSettings::default());
        assert_eq!(config_hash(&tls_off), base, "tls present but off");

        let mut tls = rc.spec.clone();
        tls.tls = Some(crate::crd::TlsSettings {
            enabled: true,
            issuer_ref: None,
        });
        assert_ne!(config_hash(&tls), base, "tls on");
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = serde_json::json!({"b": [{"z": 1, "a": "x"}], "a": null});
        let mut out = String::new();
        write_canonical_json(&value, &mut out);
        assert_eq!(out, r#"{"a":null,"b":[{"a":"x","z":1}]}"#);
    }

    #[test]
    fn owner_references_point_at_the_raft_cluster_as_controller() {
        let rc = test_cluster(3);
        let metas = [
            statefulset(&rc, 3).metadata,
            peer_service(&rc).metadata,
            client_service(&rc).metadata,
            pod_disruption_budget(&rc, 3).metadata,
        ];
        for meta in metas {
            let owners = meta.owner_references.expect("owner references");
            assert_eq!(owners.len(), 1, "{:?}", meta.name);
            let owner = &owners[0];
            assert_eq!(owner.api_version, RaftCluster::api_version(&()));
            assert_eq!(owner.api_version, "raftcfg.io/v1alpha1");
            assert_eq!(owner.kind, "RaftCluster");
            assert_eq!(owner.name, "config");
            assert_eq!(owner.uid, "uid-1");
            assert_eq!(owner.controller, Some(true));
            assert_eq!(meta.namespace.as_deref(), Some("prod"));
            assert_eq!(meta.labels, Some(labels(&rc)));
        }
    }
}
