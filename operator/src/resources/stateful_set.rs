//! The StatefulSet that runs one `raftcfg serve` pod per member.
//!
//! The StatefulSet only gives pods stable names, DNS names and volumes. It
//! never decides when a pod starts or restarts: the operator grows and
//! shrinks it one member at a time and replaces outdated pods itself.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt as _;

use super::{
    CA_CERT_KEY, CLIENT_PORT, CONFIG_HASH_ANNOTATION, DATA_DIR, PEER_PORT, SERVING_LABEL, TLS_DIR,
    config_hash, labels, member_secret_name, object_meta, peer_service_name, scheme,
    selector_labels,
};
use crate::crd::RaftCluster;

/// The name of the pods' only container.
const CONTAINER: &str = "raftcfg";
/// The volume of the Secret [`member_secret_name`], with TLS on.
const TLS_VOLUME: &str = "tls";
/// The distroless `nonroot` user and group.
const NONROOT_ID: i64 = 65532;

/// The StatefulSet `<name>` with `replicas` pods `<name>-0..`.
///
/// - `podManagementPolicy: Parallel`: the operator sequences membership
///   itself and must be able to start pod k while pod k-1 is unhealthy
///   (e.g. when it replaces a lost member); `OrderedReady` would wait.
/// - `updateStrategy: OnDelete`: a new template never rolls pods by
///   itself; the operator replaces them one at a time, leader last, and
///   tells outdated pods by [`CONFIG_HASH_ANNOTATION`].
/// - `persistentVolumeClaimRetentionPolicy`: `whenScaled: Delete`, so a
///   member removed by scale-in can never come back with stale data;
///   `whenDeleted: Retain`, so deleting the RaftCluster keeps the data.
/// - one volume claim template, `data`, mounted at [`DATA_DIR`].
pub fn statefulset(rc: &RaftCluster, replicas: u32) -> StatefulSet {
    StatefulSet {
        metadata: object_meta(rc, rc.name_any()),
        spec: StatefulSetSpec {
            replicas: Some(i32::try_from(replicas).unwrap_or(i32::MAX)),
            selector: LabelSelector {
                match_labels: Some(selector_labels(rc)),
                ..LabelSelector::default()
            },
            service_name: Some(peer_service_name(rc)),
            pod_management_policy: Some("Parallel".to_owned()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_owned()),
                rolling_update: None,
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_scaled: Some("Delete".to_owned()),
                    when_deleted: Some("Retain".to_owned()),
                },
            ),
            template: pod_template(rc),
            volume_claim_templates: Some(vec![data_claim(rc)]),
            ..StatefulSetSpec::default()
        },
        status: None,
    }
}

/// The pod template: `spec.podLabels` under the operator's labels (which
/// win) and [`SERVING_LABEL`]`=true`, `spec.podAnnotations` plus the config hash, one container, and
/// the scheduling fields as given.
fn pod_template(rc: &RaftCluster) -> PodTemplateSpec {
    let spec = &rc.spec;
    let mut pod_labels = spec.pod_labels.clone();
    pod_labels.extend(labels(rc));
    pod_labels.insert(SERVING_LABEL.to_owned(), "true".to_owned());
    let mut annotations = spec.pod_annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), config_hash(spec));
    let scheduling = &spec.scheduling;
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container(rc)],
            volumes: Some(volumes(rc)),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(NONROOT_ID),
                run_as_group: Some(NONROOT_ID),
                fs_group: Some(NONROOT_ID),
                fs_group_change_policy: Some("OnRootMismatch".to_owned()),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            // The node never calls the Kubernetes API.
            automount_service_account_token: Some(false),
            // Service links would put `<SERVICE>_PORT`-style variables next
            // to the `RAFTCFG_*` ones `raftcfg serve` reads.
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(30),
            affinity: scheduling.affinity.clone(),
            tolerations: non_empty(scheduling.tolerations.clone()),
            node_selector: (!scheduling.node_selector.is_empty())
                .then(|| scheduling.node_selector.clone()),
            topology_spread_constraints: non_empty(scheduling.topology_spread_constraints.clone()),
            priority_class_name: scheduling.priority_class_name.clone(),
            ..PodSpec::default()
        }),
    }
}

fn container(rc: &RaftCluster) -> Container {
    let spec = &rc.spec;
    Container {
        name: CONTAINER.to_owned(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        args: Some(vec!["serve".to_owned()]),
        env: Some(env(rc)),
        ports: Some(vec![
            container_port("client", CLIENT_PORT),
            container_port("peer", PEER_PORT),
        ]),
        resources: spec.resources.clone(),
        readiness_probe: Some(Probe {
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..http_probe(rc, "/readyz")
        }),
        liveness_probe: Some(Probe {
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            failure_threshold: Some(6),
            ..http_probe(rc, "/healthz")
        }),
        // Opening a large data directory may take a while; the liveness
        // probe starts only once this succeeds (up to two minutes).
        startup_probe: Some(Probe {
            period_seconds: Some(2),
            failure_threshold: Some(60),
            ..http_probe(rc, "/healthz")
        }),
        volume_mounts: Some(volume_mounts(rc)),
        security_context: Some(SecurityContext {
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// A scratch `/tmp` and, with TLS on, the Secret of the members'
/// certificates. The Secret is mounted whole (no `items`, no `subPath`), so
/// the kubelet updates the files in place when it changes and the node
/// reloads them.
fn volumes(rc: &RaftCluster) -> Vec<Volume> {
    let mut volumes = vec![Volume {
        name: "tmp".to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    if rc.spec.tls_enabled() {
        volumes.push(Volume {
            name: TLS_VOLUME.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(member_secret_name(rc)),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    volumes
}

fn volume_mounts(rc: &RaftCluster) -> Vec<VolumeMount> {
    let mut mounts = vec![
        VolumeMount {
            name: super::DATA_VOLUME.to_owned(),
            mount_path: DATA_DIR.to_owned(),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        },
    ];
    if rc.spec.tls_enabled() {
        mounts.push(VolumeMount {
            name: TLS_VOLUME.to_owned(),
            mount_path: TLS_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    mounts
}

/// The certificate and key files a member serves both ports with, under
/// [`TLS_DIR`]: its own `<pod>.crt` and `<pod>.key` from the operator's
/// CA, or the shared `tls.crt` and `tls.key` cert-manager writes.
pub fn member_tls_files(rc: &RaftCluster) -> (String, String) {
    if rc.spec.cert_manager_issuer().is_some() {
        (format!("{TLS_DIR}/tls.crt"), format!("{TLS_DIR}/tls.key"))
    } else {
        (
            format!("{TLS_DIR}/$(POD_NAME).crt"),
            format!("{TLS_DIR}/$(POD_NAME).key"),
        )
    }
}

/// With TLS on: both ports serve the member's certificate; the client port
/// verifies a client certificate from the cluster CA when one is offered
/// (the operator's, as root) and takes tokens otherwise; the peer port
/// accepts only peers with a certificate from that CA.
fn tls_env(rc: &RaftCluster) -> Vec<EnvVar> {
    if !rc.spec.tls_enabled() {
        return Vec::new();
    }
    let (cert, key) = member_tls_files(rc);
    let ca = format!("{TLS_DIR}/{CA_CERT_KEY}");
    vec![
        value_env("RAFTCFG_CERT_FILE", cert.clone()),
        value_env("RAFTCFG_KEY_FILE", key.clone()),
        value_env("RAFTCFG_TRUSTED_CA_FILE", ca.clone()),
        value_env("RAFTCFG_PEER_CERT_FILE", cert),
        value_env("RAFTCFG_PEER_KEY_FILE", key),
        value_env("RAFTCFG_PEER_TRUSTED_CA_FILE", ca),
    ]
}

/// The `RAFTCFG_*` variables `raftcfg serve` reads. The kubelet expands
/// `$(VAR)` only from variables listed earlier, so `POD_NAME` and
/// `POD_NAMESPACE` come first.
fn env(rc: &RaftCluster) -> Vec<EnvVar> {
    let raft = &rc.spec.raft;
    let host = format!("$(POD_NAME).{}.$(POD_NAMESPACE).svc", peer_service_name(rc));
    let scheme = scheme(rc);
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        value_env("RAFTCFG_NAME", "$(POD_NAME)"),
        value_env("RAFTCFG_DATA_DIR", DATA_DIR),
        value_env("RAFTCFG_LISTEN_CLIENT", format!("0.0.0.0:{CLIENT_PORT}")),
        value_env("RAFTCFG_LISTEN_PEER", format!("0.0.0.0:{PEER_PORT}")),
        value_env(
            "RAFTCFG_ADVERTISE_CLIENT",
            format!("{scheme}://{host}:{CLIENT_PORT}"),
        ),
        value_env(
            "RAFTCFG_ADVERTISE_PEER",
            format!("{scheme}://{host}:{PEER_PORT}"),
        ),
        // The node ticks once per heartbeat interval.
        value_env("RAFTCFG_TICK_MS", raft.heartbeat_interval_ms.to_string()),
        value_env("RAFTCFG_HEARTBEAT_TICKS", "1"),
        value_env("RAFTCFG_ELECTION_TICKS", raft.election_ticks().to_string()),
        value_env(
            "RAFTCFG_SNAPSHOT_THRESHOLD",
            raft.snapshot_threshold_entries.to_string(),
        ),
        value_env("RAFTCFG_LOG_FORMAT", "json"),
    ];
    let engine = &rc.spec.engine;
    for (name, bytes) in [
        ("RAFTCFG_MEMTABLES_BYTES", engine.memtables_bytes),
        ("RAFTCFG_BLOCK_CACHE_BYTES", engine.block_cache_bytes),
        ("RAFTCFG_WAL_FILE_BYTES", engine.wal_file_bytes),
    ] {
        if let Some(bytes) = bytes {
            env.push(value_env(name, bytes.to_string()));
        }
    }
    env.extend(tls_env(rc));
    env
}

/// The per-pod volume `data`: ReadWriteOnce, size and class from
/// `spec.storage`.
fn data_claim(rc: &RaftCluster) -> PersistentVolumeClaim {
    let storage = &rc.spec.storage;
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(super::DATA_VOLUME.to_owned()),
            labels: Some(labels(rc)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    storage.size.clone(),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

/// A probe of `path` on the client port; over HTTPS with TLS on (the
/// kubelet does not verify the certificate, and the probe paths need no
/// credentials).
fn http_probe(rc: &RaftCluster, path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("client".to_owned()),
            scheme: Some(scheme(rc).to_ascii_uppercase()),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    }
}

/// A TCP container port; the protocol is spelled out because it is part of
/// the list's key under server-side apply.
fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(port),
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: field_path.to_owned(),
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn value_env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::Toleration;

    use super::*;
    use crate::resources::{client_url, peer_url, test_cluster};

    fn pod_spec(sts: &StatefulSet) -> &PodSpec {
        sts.spec.template.spec.as_ref().expect("pod spec")
    }

    fn template_meta(sts: &StatefulSet) -> &ObjectMeta {
        sts.spec
            .template
            .metadata
            .as_ref()
            .expect("template metadata")
    }

    /// The container's environment as the kubelet would see it in pod
    /// `<pod>` of namespace `<namespace>`: `$(VAR)` is expanded only from
    /// variables defined earlier in the list, as the kubelet does.
    fn expanded_env(sts: &StatefulSet, pod: &str, namespace: &str) -> BTreeMap<String, String> {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for var in pod_spec(sts).containers[0].env.as_ref().expect("env") {
            let value = match (&var.value, &var.value_from) {
                (Some(value), None) => seen.iter().fold(value.clone(), |value, (name, known)| {
                    value.replace(&format!("$({name})"), known)
                }),
                (None, Some(source)) => {
                    match source
                        .field_ref
                        .as_ref()
                        .expect("a field ref")
                        .field_path
                        .as_str()
                    {
                        "metadata.name" => pod.to_owned(),
                        "metadata.namespace" => namespace.to_owned(),
                        other => panic!("unexpected field {other}"),
                    }
                }
                other => panic!("{} has {other:?}", var.name),
            };
            assert!(
                !value.contains("$("),
                "{} left unexpanded: {value}",
                var.name
            );
            seen.insert(var.name.clone(), value);
        }
        seen
    }

    #[test]
    fn statefulset_uses_on_delete_and_deletes_volumes_of_scaled_in_pods() {
        let rc = test_cluster(3);
        let sts = statefulset(&rc, 2);
        let spec = &sts.spec;
        assert_eq!(sts.metadata.name.as_deref(), Some("config"));
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(
            spec.update_strategy
                .as_ref()
                .and_then(|u| u.type_.as_deref()),
            Some("OnDelete")
        );
        let retention = spec
            .persistent_volume_claim_retention_policy
            .as_ref()
            .expect("retention policy");
        assert_eq!(retention.when_scaled.as_deref(), Some("Delete"));
        assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        assert_eq!(spec.service_name.as_deref(), Some("config-peer"));
        assert_eq!(spec.selector.match_labels, Some(selector_labels(&rc)));
    }

    #[test]
    fn each_pod_gets_a_data_volume_of_the_requested_size_and_class() {
        let rc = test_cluster(3);
        let sts = statefulset(&rc, 3);
        let claims = sts
            .spec
            .volume_claim_templates
            .as_ref()
            .expect("claim templates");
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
        let claim = claims[0].spec.as_ref().expect("claim spec");
        assert_eq!(claim.access_modes, Some(vec!["ReadWriteOnce".to_owned()]));
        assert_eq!(claim.storage_class_name.as_deref(), Some("fast"));
        let requests = claim
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .expect("requests");
        assert_eq!(requests["storage"].0, "1Gi");
        let mounts = pod_spec(&sts).containers[0]
            .volume_mounts
            .as_ref()
            .expect("mounts");
        assert!(
            mounts
                .iter()
                .any(|m| m.name == "data" && m.mount_path == DATA_DIR)
        );
    }

    #[test]
    fn pods_advertise_their_stable_dns_names() {
        let rc = test_cluster(3);
        let sts = statefulset(&rc, 3);
        let env = expanded_env(&sts, "config-2", "prod");
        assert_eq!(env["RAFTCFG_NAME"], "config-2");
        assert_eq!(env["RAFTCFG_ADVERTISE_CLIENT"], client_url(&rc, 2));
        assert_eq!(env["RAFTCFG_ADVERTISE_PEER"], peer_url(&rc, 2));
        assert_eq!(
            env["RAFTCFG_ADVERTISE_CLIENT"],
            "http://config-2.config-peer.prod.svc:7379"
        );
        assert_eq!(env["RAFTCFG_LISTEN_CLIENT"], "0.0.0.0:7379");
        assert_eq!(env["RAFTCFG_LISTEN_PEER"], "0.0.0.0:7380");
        assert_eq!(env["RAFTCFG_DATA_DIR"], "/var/lib/raftcfg");
    }

    fn with_tls(issuer: bool) -> RaftCluster {
        let mut rc = test_cluster(3);
        rc.spec.tls = Some(crate::crd::TlsSettings {
            enabled: true,
            issuer_ref: issuer.then(|| crate::crd::IssuerRef {
                name: "company-ca".into(),
                kind: crate::crd::IssuerKind::Issuer,
                group: "cert-manager.io".into(),
            }),
        });
        rc
    }

    #[test]
    fn with_tls_pods_mount_their_certificates_and_serve_https() {
        let rc = with_tls(false);
        let sts = statefulset(&rc, 3);
        let pod = pod_spec(&sts);
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "tls")
            .expect("a tls volume");
        let secret = volume.secret.as_ref().expect("from a Secret");
        assert_eq!(secret.secret_name.as_deref(), Some("config-tls"));
        assert!(secret.items.is_none(), "mounted whole, so updates reach it");
        let mount = pod.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "tls")
            .expect("a tls mount");
        assert_eq!(mount.mount_path, TLS_DIR);
        assert_eq!(mount.read_only, Some(true));
        assert!(mount.sub_path.is_none());

        let env = expanded_env(&sts, "config-2", "prod");
        let file = |name: &str| env.get(name).map(String::as_str);
        assert_eq!(
            file("RAFTCFG_CERT_FILE"),
            Some("/etc/raftcfg/tls/config-2.crt")
        );
        assert_eq!(
            file("RAFTCFG_KEY_FILE"),
            Some("/etc/raftcfg/tls/config-2.key")
        );
        assert_eq!(
            file("RAFTCFG_PEER_CERT_FILE"),
            Some("/etc/raftcfg/tls/config-2.crt")
        );
        assert_eq!(
            file("RAFTCFG_PEER_KEY_FILE"),
            Some("/etc/raftcfg/tls/config-2.key")
        );
        assert_eq!(
            file("RAFTCFG_TRUSTED_CA_FILE"),
            Some("/etc/raftcfg/tls/ca.crt")
        );
        assert_eq!(
            file("RAFTCFG_PEER_TRUSTED_CA_FILE"),
            Some("/etc/raftcfg/tls/ca.crt")
        );
        assert_eq!(
            file("RAFTCFG_CLIENT_CERT_AUTH"),
            None,
            "tokens still sign in"
        );
        assert_eq!(env["RAFTCFG_ADVERTISE_CLIENT"], client_url(&rc, 2));
        assert_eq!(env["RAFTCFG_ADVERTISE_PEER"], peer_url(&rc, 2));
        assert!(env["RAFTCFG_ADVERTISE_PEER"].starts_with("https://"));

        let container = &pod.containers[0];
        for probe in [
            &container.readiness_probe,
            &container.liveness_probe,
            &container.startup_probe,
        ] {
            let get = probe.as_ref().and_then(|p| p.http_get.as_ref()).unwrap();
            assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
        }
    }

    #[test]
    fn with_cert_manager_pods_share_its_certificate() {
        let sts = statefulset(&with_tls(true), 3);
        let env = expanded_env(&sts, "config-0", "prod");
        assert_eq!(env["RAFTCFG_CERT_FILE"], "/etc/raftcfg/tls/tls.crt");
        assert_eq!(env["RAFTCFG_PEER_KEY_FILE"], "/etc/raftcfg/tls/tls.key");
        assert_eq!(
            env["RAFTCFG_PEER_TRUSTED_CA_FILE"],
            "/etc/raftcfg/tls/ca.crt"
        );
    }

    #[test]
    fn without_tls_nothing_is_mounted_and_probes_are_plain() {
        let sts = statefulset(&test_cluster(3), 3);
        let pod = pod_spec(&sts);
        assert!(pod.volumes.iter().flatten().all(|v| v.secret.is_none()));
        let env = expanded_env(&sts, "config-0", "prod");
        assert!(
            !env.keys()
                .any(|k| k.contains("CERT") || k.contains("KEY_FILE"))
        );
        let probe = pod.containers[0].readiness_probe.as_ref().unwrap();
        assert_eq!(
            probe.http_get.as_ref().unwrap().scheme.as_deref(),
            Some("HTTP")
        );
    }

    #[test]
    fn raft_tuning_reaches_the_node_through_its_environment() {
        let mut rc = test_cluster(3);
        rc.spec.raft.heartbeat_interval_ms = 50;
        rc.spec.raft.election_timeout_ms = 1000;
        rc.spec.raft.snapshot_threshold_entries = 2500;
        let env = expanded_env(&statefulset(&rc, 3), "config-0", "prod");
        assert_eq!(env["RAFTCFG_TICK_MS"], "50");
        assert_eq!(env["RAFTCFG_HEARTBEAT_TICKS"], "1");
        assert_eq!(env["RAFTCFG_ELECTION_TICKS"], "20");
        assert_eq!(env["RAFTCFG_SNAPSHOT_THRESHOLD"], "2500");
        assert_eq!(env["RAFTCFG_LOG_FORMAT"], "json");
    }

    #[test]
    fn engine_tuning_reaches_the_node_through_its_environment_and_only_when_set() {
        let mut rc = test_cluster(3);
        let env = expanded_env(&statefulset(&rc, 3), "config-0", "prod");
        for name in [
            "RAFTCFG_MEMTABLES_BYTES",
            "RAFTCFG_BLOCK_CACHE_BYTES",
            "RAFTCFG_WAL_FILE_BYTES",
        ] {
            assert!(!env.contains_key(name), "{name} set without a value");
        }
        rc.spec.engine.memtables_bytes = Some(128 << 20);
        rc.spec.engine.block_cache_bytes = Some(16 << 20);
        rc.spec.engine.wal_file_bytes = Some(0);
        let env = expanded_env(&statefulset(&rc, 3), "config-0", "prod");
        assert_eq!(env["RAFTCFG_MEMTABLES_BYTES"], "134217728");
        assert_eq!(env["RAFTCFG_BLOCK_CACHE_BYTES"], "16777216");
        assert_eq!(env["RAFTCFG_WAL_FILE_BYTES"], "0");
    }

    #[test]
    fn user_pod_labels_cannot_replace_the_selector_labels() {
        let mut rc = test_cluster(3);
        rc.spec
            .pod_labels
            .insert("app.kubernetes.io/instance".into(), "other".into());
        rc.spec
            .pod_labels
            .insert("app.kubernetes.io/name".into(), "other".into());
        rc.spec
            .pod_labels
            .insert("raftcfg.io/serving".into(), "false".into());
        rc.spec.pod_labels.insert("team".into(), "infra".into());
        let sts = statefulset(&rc, 3);
        let pod_labels = template_meta(&sts).labels.as_ref().expect("labels");
        let selector = sts.spec.selector.match_labels.clone().expect("selector");
        for (key, value) in &selector {
            assert_eq!(pod_labels.get(key), Some(value), "{key}");
        }
        assert_eq!(pod_labels["app.kubernetes.io/instance"], "config");
        assert_eq!(pod_labels["team"], "infra");
        assert_eq!(
            pod_labels["raftcfg.io/serving"], "true",
            "new pods serve clients"
        );
    }

    #[test]
    fn the_pod_template_carries_the_config_hash_and_user_annotations() {
        let mut rc = test_cluster(3);
        rc.spec
            .pod_annotations
            .insert("prometheus.io/scrape".into(), "true".into());
        rc.spec
            .pod_annotations
            .insert(CONFIG_HASH_ANNOTATION.into(), "forged".into());
        let sts = statefulset(&rc, 3);
        let annotations = template_meta(&sts)
            .annotations
            .as_ref()
            .expect("annotations");
        assert_eq!(annotations[CONFIG_HASH_ANNOTATION], config_hash(&rc.spec));
        assert_eq!(annotations["prometheus.io/scrape"], "true");
    }

    #[test]
    fn pods_run_as_nonroot_with_a_read_only_root() {
        let rc = test_cluster(3);
        let sts = statefulset(&rc, 3);
        let pod = pod_spec(&sts);
        let pod_security = pod.security_context.as_ref().expect("pod security");
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(pod_security.run_as_user, Some(65532));
        assert_eq!(pod_security.fs_group, Some(65532));
        assert_eq!(
            pod_security
                .seccomp_profile
                .as_ref()
                .map(|p| p.type_.as_str()),
            Some("RuntimeDefault")
        );
        let container = &pod.containers[0];
        let security = container
            .security_context
            .as_ref()
            .expect("container security");
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(
            security.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_owned()])
        );
        assert!(
            container
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == "/tmp"),
            "a writable /tmp"
        );
        assert_eq!(container.args, Some(vec!["serve".to_owned()]));
        let ports: Vec<_> = container
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref(), p.container_port))
            .collect();
        assert_eq!(ports, [(Some("client"), 7379), (Some("peer"), 7380)]);
        let readiness = container
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref());
        assert_eq!(readiness.and_then(|h| h.path.as_deref()), Some("/readyz"));
    }

    #[test]
    fn scheduling_is_copied_into_the_pod_as_given() {
        let mut rc = test_cluster(3);
        rc.spec
            .scheduling
            .node_selector
            .insert("disk".into(), "ssd".into());
        rc.spec.scheduling.tolerations.push(Toleration {
            key: Some("dedicated".into()),
            operator: Some("Exists".into()),
            ..Toleration::default()
        });
        rc.spec.scheduling.priority_class_name = Some("high".into());
        let sts = statefulset(&rc, 3);
        let pod = pod_spec(&sts);
        assert_eq!(
            pod.node_selector,
            Some(BTreeMap::from([("disk".to_owned(), "ssd".to_owned())]))
        );
        assert_eq!(
            pod.tolerations,
            Some(rc.spec.scheduling.tolerations.clone())
        );
        assert_eq!(pod.priority_class_name.as_deref(), Some("high"));
        assert_eq!(pod.topology_spread_constraints, None);
        assert_eq!(pod.affinity, None);
    }
}
