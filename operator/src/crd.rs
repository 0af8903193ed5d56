//! The `RaftCluster` custom resource (group `raftcfg.io`, version
//! `v1alpha1`): what a user asks for (spec) and what the operator reports
//! (status). `crdgen` prints the CustomResourceDefinition derived from
//! these types; `crds/raftcluster.yaml` is that output, committed.
//!
//! Validation that the API server enforces lives here too: ranges and
//! formats from schemars, cross-field and transition rules as CEL.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use raftcfg_client::wire::{ClusterId, NodeId, ParseIdError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The most members a cluster may have: every write waits for a majority,
/// so more voters only add latency (etcd recommends at most seven).
pub const MAX_REPLICAS: i32 = 9;

/// How many finished membership changes the status keeps.
pub const RECENT_CHANGES_KEPT: usize = 10;

/// A replicated raftcfg cluster: a StatefulSet of `raftcfg serve` pods whose
/// Raft membership the operator changes one member at a time.
// Clippy takes the repeated `printcolumn(type_ = ..)` keys for duplicated
// attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "raftcfg.io",
    version = "v1alpha1",
    kind = "RaftCluster",
    namespaced,
    shortname = "rcfg",
    category = "raftcfg",
    status = "RaftClusterStatus",
    derive = "PartialEq",
    doc = "A replicated raftcfg configuration store managed by the raftcfg operator.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Leader", type_ = "string", json_path = ".status.leader"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    validation = Rule::new("has(self.spec.tls) == has(oldSelf.spec.tls)").message("tls cannot be added or removed after creation: members advertise their URLs with it"),
    validation = Rule::new("self.metadata.name.size() <= 52 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("the name must be a DNS label of at most 52 characters (lower-case letters, digits and '-', starting with a letter): it names the pods, Services and volume claims")
)]
#[serde(rename_all = "camelCase")]
pub struct RaftClusterSpec {
    /// Desired number of members (Raft voters). Odd numbers tolerate as
    /// many failures as the next even one and commit faster.
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    /// The raftcfg image the pods run.
    #[schemars(length(min = 1, max = 1024))]
    pub image: String,
    /// The pods' image pull policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,
    /// CPU and memory of each pod's raftcfg container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Each member's persistent volume; fixed once the cluster exists.
    #[x_kube(validation = Rule::new("self == oldSelf || (type(oldSelf.size) == string && !isQuantity(oldSelf.size))").message("storage cannot be changed after creation (only a size that was never valid may be corrected); create a new RaftCluster and restore a snapshot into it"))]
    pub storage: StorageSpec,
    /// Raft timing and log compaction.
    #[serde(default)]
    pub raft: RaftTuning,
    /// What each member's RocksDB may use: memory for its memtables and
    /// block cache, disk for the log files it writes over. Absent fields
    /// keep the node's defaults.
    #[serde(default, skip_serializing_if = "EngineTuning::is_default")]
    pub engine: EngineTuning,
    /// Where the pods may run.
    #[serde(default)]
    pub scheduling: Scheduling,
    /// Extra labels on every pod (may not override the operator's own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('app.kubernetes.io/') && !k.startsWith('raftcfg.io/'))").message("podLabels may not set app.kubernetes.io/ or raftcfg.io/ labels; the operator owns them"))]
    pub pod_labels: BTreeMap<String, String>,
    /// Extra annotations on every pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('raftcfg.io/'))").message("podAnnotations may not set raftcfg.io/ annotations; the operator owns them"))]
    pub pod_annotations: BTreeMap<String, String>,
    /// How long a new learner may take to catch up before the operator
    /// removes it and reports the failure.
    #[serde(default = "default_learner_timeout_seconds")]
    #[schemars(range(min = 10, max = 86400))]
    pub learner_timeout_seconds: u32,
    /// The NetworkPolicy the operator keeps for the cluster.
    #[serde(default)]
    pub network_policy: NetworkPolicySettings,
    /// Who may reach the client port while the NetworkPolicy is on
    /// (absent: everyone). The operator talks to the client port too: it
    /// must be among them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_access: Option<Vec<NetworkPolicyPeer>>,
    /// TLS on both ports of every member, with certificates the operator
    /// issues (or cert-manager, with `issuerRef`). Chosen at creation:
    /// members advertise https peer URLs, which a running cluster cannot
    /// change under itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("tls cannot be changed after creation: members advertise their URLs with it; create a new RaftCluster and restore a snapshot into it"))]
    pub tls: Option<TlsSettings>,
    /// Users and roles: with `enabled`, the operator creates the `root`
    /// user (password in Secret `<name>-root`) and turns auth on; with
    /// `enabled: false` it turns auth off. Absent: the operator leaves
    /// the cluster's auth as it finds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSettings>,
    /// What the operator does when a majority of the voters is lost for
    /// good (their volumes or nodes gone): wait for a person (`Manual`, the
    /// default) or recover from the most up-to-date survivor once the
    /// grace period is over (`Automatic`).
    #[serde(default)]
    pub recovery: RecoverySettings,
}

/// Recovery from a lost quorum (see README, "Recovering from a lost
/// quorum").
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecoverySettings {
    /// `Manual`: the operator only reports the loss; a person sets the
    /// annotation `raftcfg.io/recover-quorum` to a new value to recover.
    /// `Automatic`: the operator recovers on its own.
    #[serde(default)]
    pub quorum_loss: QuorumLossPolicy,
    /// How long the cluster must have been without a leader, with fewer
    /// than a quorum of voters holding their data, before anything is done
    /// (in either mode): a quorum that comes back within it is waited for.
    #[serde(default = "default_recovery_grace_seconds")]
    #[schemars(range(min = 1, max = 86400))]
    pub grace_period_seconds: u32,
}

impl Default for RecoverySettings {
    fn default() -> Self {
        Self {
            quorum_loss: QuorumLossPolicy::default(),
            grace_period_seconds: default_recovery_grace_seconds(),
        }
    }
}

/// Who decides to recover from a lost quorum.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QuorumLossPolicy {
    /// A person, with the `raftcfg.io/recover-quorum` annotation.
    #[default]
    Manual,
    /// The operator, once the grace period is over.
    Automatic,
}

/// TLS on the client port and mutual TLS on the peer port.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSettings {
    /// Serve TLS on both ports.
    #[serde(default)]
    pub enabled: bool,
    /// A cert-manager issuer to take the certificates from instead of the
    /// operator's own cluster CA. It must put `ca.crt` in the Secrets it
    /// writes (a CA or Vault issuer does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
}

/// A cert-manager `Issuer` or `ClusterIssuer`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// The issuer's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `Issuer` (in the cluster's namespace) or `ClusterIssuer`.
    #[serde(default)]
    pub kind: IssuerKind,
    /// The issuer's API group.
    #[serde(default = "cert_manager_group")]
    #[schemars(length(min = 1, max = 253))]
    pub group: String,
}

/// Which kind of cert-manager issuer.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IssuerKind {
    /// An `Issuer` in the cluster's namespace.
    #[default]
    Issuer,
    /// A `ClusterIssuer`.
    ClusterIssuer,
}

impl IssuerKind {
    /// The name cert-manager uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issuer => "Issuer",
            Self::ClusterIssuer => "ClusterIssuer",
        }
    }
}

fn cert_manager_group() -> String {
    "cert-manager.io".to_owned()
}

/// Auth managed by the operator.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthSettings {
    /// Auth on (the operator creates `root` and enables it) or off.
    #[serde(default)]
    pub enabled: bool,
}

/// The cluster's NetworkPolicy: the peer port open to the cluster's own
/// pods only, the client port to `clientAccess`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySettings {
    /// Whether the operator keeps one (it deletes its own when turned off).
    #[serde(default = "enabled")]
    pub enabled: bool,
}

impl Default for NetworkPolicySettings {
    fn default() -> Self {
        Self { enabled: true }
    }
}

fn enabled() -> bool {
    true
}

fn default_learner_timeout_seconds() -> u32 {
    600
}

fn default_recovery_grace_seconds() -> u32 {
    300
}

/// The longest RaftCluster name: `<name>-<ordinal>` pods get a
/// `controller-revision-hash` label of `<name>-` and a 10-character hash,
/// which must fit a 63-character label value.
pub const MAX_NAME_LENGTH: usize = 52;

/// Checks a RaftCluster's name as the API server's CEL rule does: a DNS
/// label (RFC 1035) of at most [`MAX_NAME_LENGTH`] characters.
pub fn validate_name(name: &str) -> Result<(), String> {
    let label = name.len() <= MAX_NAME_LENGTH
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if label {
        Ok(())
    } else {
        Err(format!(
            "the name {name:?} must be a DNS label of at most {MAX_NAME_LENGTH} characters (lower-case letters, digits and '-', starting with a letter)"
        ))
    }
}

impl RaftClusterSpec {
    /// Whether the members serve TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.enabled)
    }

    /// The cert-manager issuer of the certificates, if cert-manager
    /// issues them.
    pub fn cert_manager_issuer(&self) -> Option<&IssuerRef> {
        self.tls
            .as_ref()
            .filter(|tls| tls.enabled)
            .and_then(|tls| tls.issuer_ref.as_ref())
    }

    /// The checks the API server makes from the schema and CEL rules, made
    /// again here: a cluster created before a rule existed, or on a server
    /// that skips CEL, must still be refused with a clear reason.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_REPLICAS).contains(&self.replicas) {
            return Err(format!(
                "replicas must be between 1 and {MAX_REPLICAS}, not {}",
                self.replicas
            ));
        }
        if self.image.trim().is_empty() {
            return Err("image must name a raftcfg image".into());
        }
        if let Err(problem) = check_quantity(&self.storage.size.0) {
            return Err(format!(
                "storage.size {:?} is not a size: {problem}; write a positive Kubernetes quantity such as 1Gi or 500Mi",
                self.storage.size.0
            ));
        }
        let raft = &self.raft;
        if !(10..=10_000).contains(&raft.heartbeat_interval_ms) {
            return Err("raft.heartbeatIntervalMs must be between 10 and 10000".into());
        }
        if raft.election_timeout_ms < 2 * raft.heartbeat_interval_ms {
            return Err(
                "raft.electionTimeoutMs must be at least twice raft.heartbeatIntervalMs".into(),
            );
        }
        if raft.election_ticks() > 1_000 {
            return Err("raft.electionTimeoutMs may be at most 1000 heartbeat intervals".into());
        }
        if raft.snapshot_threshold_entries < 100 {
            return Err("raft.snapshotThresholdEntries must be at least 100".into());
        }
        self.engine.validate()?;
        self.check_memory_limit()?;
        if let Some(key) = self
            .pod_labels
            .keys()
            .find(|k| k.starts_with("app.kubernetes.io/") || k.starts_with("raftcfg.io/"))
        {
            return Err(format!("podLabels may not set {key}; the operator owns it"));
        }
        if let Some(key) = self
            .pod_annotations
            .keys()
            .find(|k| k.starts_with("raftcfg.io/"))
        {
            return Err(format!(
                "podAnnotations may not set {key}; the operator owns it"
            ));
        }
        if !(1..=86_400).contains(&self.recovery.grace_period_seconds) {
            return Err("recovery.gracePeriodSeconds must be between 1 and 86400".into());
        }
        if let Some(issuer) = self.tls.as_ref().and_then(|tls| tls.issuer_ref.as_ref())
            && (issuer.name.trim().is_empty() || issuer.group.trim().is_empty())
        {
            return Err("tls.issuerRef must name an issuer and its group".into());
        }
        Ok(())
    }

    /// Refuses a memory limit below what a member's fixed buffers may take:
    /// RocksDB's memtables and block cache, and
    /// [`EngineTuning::MEMORY_BESIDES_ROCKSDB_BYTES`]. The kernel would kill
    /// the member when they fill, under load.
    fn check_memory_limit(&self) -> Result<(), String> {
        let Some(limit) = self
            .resources
            .as_ref()
            .and_then(|resources| resources.limits.as_ref())
            .and_then(|limits| limits.get("memory"))
        else {
            return Ok(());
        };
        let bytes = quantity_value(&limit.0).map_err(|problem| {
            format!(
                "resources.limits.memory {:?} is not a size: {problem}",
                limit.0
            )
        })?;
        let needed = self
            .engine
            .rocksdb_memory_bytes()
            .saturating_add(EngineTuning::MEMORY_BESIDES_ROCKSDB_BYTES);
        if bytes < needed as f64 {
            return Err(format!(
                "resources.limits.memory {:?} is less than a member may use: {} MiB for RocksDB \
                 (engine.memtablesBytes and engine.blockCacheBytes) and {} MiB for the rest of \
                 the node; set at least {}Mi, or lower the engine's sizes",
                limit.0,
                self.engine.rocksdb_memory_bytes() >> 20,
                EngineTuning::MEMORY_BESIDES_ROCKSDB_BYTES >> 20,
                needed.div_ceil(1 << 20),
            ));
        }
        Ok(())
    }
}

/// Checks `text` as a positive Kubernetes quantity: a decimal number
/// (`1`, `1.5`, `.5`), then a binary suffix (`Ki` to `Ei`), a decimal one
/// (`m`, `k`, `M` to `E`) or an exponent (`e3`, `E-2`), as the API server
/// parses `resource.Quantity`.
pub fn check_quantity(text: &str) -> Result<(), String> {
    quantity_value(text).map(|_| ())
}

/// The value of a positive Kubernetes quantity (see [`check_quantity`]):
/// `512Mi` is 536870912, `1.5G` is 1.5e9.
pub fn quantity_value(text: &str) -> Result<f64, String> {
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let unsigned = number.strip_prefix(['+', '-']).unwrap_or(number);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |part: &str| part.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return Err("it does not start with a number".into());
    }
    let exponent_ok = |rest: &str| {
        let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
        !rest.is_empty() && digits(rest)
    };
    let suffix_ok = matches!(
        suffix,
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "m" | "k" | "M" | "G" | "T" | "P" | "E"
    ) || suffix.strip_prefix(['e', 'E']).is_some_and(exponent_ok);
    if !suffix_ok {
        return Err(format!("{suffix:?} is not a unit"));
    }
    let positive =
        !number.starts_with('-') && whole.chars().chain(fraction.chars()).any(|c| c != '0');
    if !positive {
        return Err("it is not more than zero".into());
    }
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => exponent[1..]
            .parse::<i32>()
            .map(|power| 10f64.powi(power))
            .map_err(|_| format!("{exponent:?} is not an exponent"))?,
    };
    let value: f64 = unsigned
        .parse()
        .map_err(|_| format!("{unsigned:?} is not a number"))?;
    Ok(value * scale)
}

/// When the kubelet pulls the image.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePullPolicy {
    /// Pull on every start.
    Always,
    /// Pull only when the node lacks the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl ImagePullPolicy {
    /// The name Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Each member's persistent volume.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size of each member's volume, e.g. `1Gi`.
    #[x_kube(validation = Rule::new("type(self) == string ? isQuantity(self) && quantity(self).sign() == 1 : self > 0").message("storage.size must be a positive Kubernetes quantity such as 1Gi or 500Mi"))]
    pub size: Quantity,
    /// The StorageClass; the cluster's default class when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// RocksDB's memory and log files, passed to every `raftcfg serve` (its
/// `--memtables-bytes`, `--block-cache-bytes` and `--wal-file-bytes`).
/// With the defaults a member holds about 100 MiB for RocksDB; raise them
/// for a large state. A `resources.limits.memory` below their sum plus
/// 128 MiB for the rest of the node is refused.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(cel, validation = Rule::new("!has(self.walFileBytes) || self.walFileBytes == 0 || self.walFileBytes >= 1048576").message("engine.walFileBytes must be 0 (no files) or between 1048576 (1 MiB) and 1073741824 (1 GiB)"))]
pub struct EngineTuning {
    /// Bytes all memtables may hold together (node default 64 MiB; at
    /// least 4 MiB). One column family's memtable is flushed at half.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 4194304))]
    pub memtables_bytes: Option<u64>,
    /// Bytes of the block cache the state's reads share (node default
    /// 32 MiB; at least 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1048576))]
    pub block_cache_bytes: Option<u64>,
    /// Bytes of each of the two write-ahead log files a member fills at
    /// start for RocksDB to write over (node default 64 MiB, at most an
    /// eighth of the volume's free space each); 0 for none, otherwise
    /// 1 MiB to 1 GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1073741824))]
    pub wal_file_bytes: Option<u64>,
}

/// The node's own bounds, repeated here because the operator does not
/// build the node; a test of the node's `serve` keeps the two equal.
impl EngineTuning {
    /// The smallest `memtablesBytes` a node accepts.
    pub const MIN_MEMTABLES_BYTES: u64 = 4 << 20;
    /// The smallest `blockCacheBytes` a node accepts.
    pub const MIN_BLOCK_CACHE_BYTES: u64 = 1 << 20;
    /// The smallest `walFileBytes` but 0 a node accepts.
    pub const MIN_WAL_FILE_BYTES: u64 = 1 << 20;
    /// The largest `walFileBytes` a node accepts.
    pub const MAX_WAL_FILE_BYTES: u64 = 1 << 30;
    /// A node's memtables when `memtablesBytes` is absent.
    pub const DEFAULT_MEMTABLES_BYTES: u64 = 64 << 20;
    /// A node's block cache when `blockCacheBytes` is absent.
    pub const DEFAULT_BLOCK_CACHE_BYTES: u64 = 32 << 20;
    /// What a member needs beside RocksDB's memory, at least: the 64 MiB
    /// its peer port may buffer, 8 MiB of entries in flight to each
    /// follower, and the process itself (its code, runtime and the
    /// allocator's caches).
    pub const MEMORY_BESIDES_ROCKSDB_BYTES: u64 = 128 << 20;

    /// Bytes of memtables and block cache a member's RocksDB may hold.
    pub fn rocksdb_memory_bytes(&self) -> u64 {
        let memtables = self
            .memtables_bytes
            .unwrap_or(Self::DEFAULT_MEMTABLES_BYTES);
        let cache = self
            .block_cache_bytes
            .unwrap_or(Self::DEFAULT_BLOCK_CACHE_BYTES);
        memtables.saturating_add(cache)
    }

    /// Whether nothing is set (the section is then left out of the spec
    /// the pods' configuration hash is taken from, so adding the field
    /// replaced no pod).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Why a node would refuse these values, if it would.
    fn validate(&self) -> Result<(), String> {
        if self
            .memtables_bytes
            .is_some_and(|bytes| bytes < Self::MIN_MEMTABLES_BYTES)
        {
            return Err(format!(
                "engine.memtablesBytes must be at least {}",
                Self::MIN_MEMTABLES_BYTES
            ));
        }
        if self
            .block_cache_bytes
            .is_some_and(|bytes| bytes < Self::MIN_BLOCK_CACHE_BYTES)
        {
            return Err(format!(
                "engine.blockCacheBytes must be at least {}",
                Self::MIN_BLOCK_CACHE_BYTES
            ));
        }
        if self.wal_file_bytes.is_some_and(|bytes| {
            bytes != 0 && !(Self::MIN_WAL_FILE_BYTES..=Self::MAX_WAL_FILE_BYTES).contains(&bytes)
        }) {
            return Err(format!(
                "engine.walFileBytes must be 0 (no files) or between {} (1 MiB) and {} (1 GiB)",
                Self::MIN_WAL_FILE_BYTES,
                Self::MAX_WAL_FILE_BYTES
            ));
        }
        Ok(())
    }
}

/// Raft timing and log compaction, passed to every `raftcfg serve`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(cel, validation = Rule::new("self.electionTimeoutMs >= 2 * self.heartbeatIntervalMs").message("electionTimeoutMs must be at least twice heartbeatIntervalMs (ten times is usual)"))]
pub struct RaftTuning {
    /// How often a leader sends heartbeats (the node's tick).
    #[serde(default = "default_heartbeat_interval_ms")]
    #[schemars(range(min = 10, max = 10000))]
    pub heartbeat_interval_ms: u32,
    /// How long a follower waits without a leader before it stands for
    /// election (randomised up to twice this).
    #[serde(default = "default_election_timeout_ms")]
    #[schemars(range(min = 20, max = 600000))]
    pub election_timeout_ms: u32,
    /// Applied entries after which a node snapshots its state and
    /// compacts its log.
    #[serde(default = "default_snapshot_threshold_entries")]
    #[schemars(range(min = 100))]
    pub snapshot_threshold_entries: u64,
}

fn default_heartbeat_interval_ms() -> u32 {
    100
}

fn default_election_timeout_ms() -> u32 {
    1000
}

fn default_snapshot_threshold_entries() -> u64 {
    10_000
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: default_heartbeat_interval_ms(),
            election_timeout_ms: default_election_timeout_ms(),
            snapshot_threshold_entries: default_snapshot_threshold_entries(),
        }
    }
}

impl RaftTuning {
    /// The node's `--election-ticks`: the election timeout in heartbeat
    /// intervals (the node ticks once per heartbeat interval).
    pub fn election_ticks(&self) -> u32 {
        (self.election_timeout_ms / self.heartbeat_interval_ms.max(1)).max(2)
    }
}

/// Where the pods may run; copied into the pod template as given.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Scheduling {
    /// Node and pod affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Labels a node must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// How the pods spread over zones or nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// The pods' PriorityClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// What the operator observed and did.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RaftClusterStatus {
    /// One word for where the cluster is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The Raft cluster's id (decimal), recorded at bootstrap. Once set the
    /// operator never bootstraps again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The leader's pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Every Raft member, as the leader reports it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStatus>,
    /// The number of Raft members (the scale subresource's status).
    #[serde(default)]
    pub replicas: i32,
    /// Members that are healthy and caught up.
    #[serde(default)]
    pub ready_replicas: i32,
    /// The pods' label selector (the scale subresource's selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The membership change the operator started and has not seen
    /// finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_change: Option<MembershipChange>,
    /// The last finished membership changes, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_changes: Vec<MembershipChange>,
    /// When each current learner was first seen (for its catch-up
    /// deadline).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learners: Vec<LearnerSince>,
    /// What the operator is waiting for, or did last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Available, Progressing and Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The spec generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The leader's commit index when the operator last saw a leader: what
    /// a recovery from a lost quorum compares the survivor's log with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_commit_index: Option<u64>,
    /// Since when the quorum has been lost: no leader, and fewer than a
    /// quorum of the voters running with their data. The grace period of a
    /// recovery counts from here. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_lost_since: Option<Time>,
    /// The value the `raftcfg.io/recover-quorum` annotation had when the
    /// quorum was lost: it was set for an earlier incident, so it does not
    /// approve this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_before_loss: Option<String>,
    /// The last recovery from a lost quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_recovery: Option<QuorumRecovery>,
}

/// A recovery from a lost quorum: which survivor the cluster was forced
/// onto, and what may have been lost.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QuorumRecovery {
    /// The survivor's pod.
    pub survivor: String,
    /// Its node id (decimal).
    pub node_id: String,
    /// Its last log index: every entry up to it was kept.
    pub last_index: u64,
    /// The term of that entry.
    pub last_term: u64,
    /// The voters removed (pod names).
    pub lost_members: Vec<String>,
    /// The indexes that may have been acknowledged and are lost.
    pub possibly_lost: String,
    /// `Automatic`, or the value of the `raftcfg.io/recover-quorum`
    /// annotation that asked for it (a later recovery needs a new value).
    pub trigger: String,
    /// When.
    pub at: Time,
}

/// An id recorded in status (as decimal text, so the CRD schema stays a
/// string) that does not parse: someone or something edited the status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} is {:?}, which is not a {}", .error.value, .error.kind)]
pub struct UnreadableId {
    /// Where it is, e.g. `status.clusterId`.
    pub field: String,
    /// What does not parse.
    pub error: ParseIdError,
}

impl UnreadableId {
    fn parse<T>(field: impl FnOnce() -> String, text: &str) -> Result<T, Self>
    where
        T: std::str::FromStr<Err = ParseIdError>,
    {
        text.parse().map_err(|error| Self {
            field: field(),
            error,
        })
    }
}

impl RaftClusterStatus {
    /// The cluster id recorded at bootstrap: `Ok(None)` if none is, an
    /// error (never `None`) if the text recorded is not a cluster id.
    pub fn recorded_cluster_id(&self) -> Result<Option<ClusterId>, UnreadableId> {
        self.cluster_id
            .as_deref()
            .map(|text| UnreadableId::parse(|| "status.clusterId".into(), text))
            .transpose()
    }

    /// Each learner's first-seen time, by node id; an error names the
    /// first entry whose id does not parse.
    pub fn recorded_learners(&self) -> Result<BTreeMap<NodeId, Time>, UnreadableId> {
        self.learners
            .iter()
            .enumerate()
            .map(|(i, learner)| {
                let field = || format!("status.learners[{i}].nodeId");
                Ok((
                    UnreadableId::parse(field, &learner.node_id)?,
                    learner.since.clone(),
                ))
            })
            .collect()
    }
}

impl RaftClusterStatus {
    /// The voters as last reported (node id and pod name); an error names
    /// the first whose id does not parse.
    pub fn recorded_voters(&self) -> Result<Vec<(NodeId, String)>, UnreadableId> {
        self.members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.role == MemberRole::Voter)
            .map(|(i, m)| {
                let field = || format!("status.members[{i}].nodeId");
                Ok((UnreadableId::parse(field, &m.node_id)?, m.name.clone()))
            })
            .collect()
    }
}

impl MembershipChange {
    /// The node the change is about.
    pub fn recorded_node_id(&self) -> Result<NodeId, UnreadableId> {
        UnreadableId::parse(|| "status.membershipChange.nodeId".into(), &self.node_id)
    }
}

/// Where a cluster is.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not yet bootstrapped.
    Pending,
    /// Members match the spec and all are healthy.
    Running,
    /// Adding or removing members.
    Scaling,
    /// Replacing pods for a new image or configuration.
    Rolling,
    /// Waiting for something outside the operator (see `message`).
    Degraded,
    /// Stopped for a human: e.g. every volume came back empty.
    Halted,
    /// The spec cannot be carried out (see `message`).
    Invalid,
}

/// One member as the leader reports it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Pod name.
    pub name: String,
    /// Raft node id (decimal).
    pub node_id: String,
    /// `Voter` or `Learner`.
    pub role: MemberRole,
    /// Whether the leader heard from it recently.
    pub healthy: bool,
    /// Entries behind the leader's commit index, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

/// A member's role.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberRole {
    /// Votes and counts towards quorum.
    Voter,
    /// Receives the log but does not vote.
    Learner,
}

/// One membership change the operator made.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MembershipChange {
    /// What changed.
    pub kind: ChangeKind,
    /// The node (decimal id).
    pub node_id: String,
    /// Its pod.
    pub name: String,
    /// Why.
    pub reason: String,
    /// When the operator asked for it.
    pub started_at: Time,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// The log index of the committed configuration entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
    /// How it ended.
    pub outcome: ChangeOutcome,
    /// Detail, e.g. the error of a failed change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A kind of membership change.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A node joined as a learner.
    AddLearner,
    /// A learner became a voter.
    Promote,
    /// A member left.
    Remove,
}

/// How a membership change ended.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// Asked for; not known to be committed yet.
    InFlight,
    /// Committed.
    Committed,
    /// Refused or lost; the membership is as before.
    Failed,
}

/// When a learner was first seen.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LearnerSince {
    /// The learner (decimal id).
    pub node_id: String,
    /// First seen as a learner.
    pub since: Time,
}

/// The CustomResourceDefinition as YAML, with a header saying it is
/// generated.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    use kube::CustomResourceExt;
    let body = serde_saphyr::to_string(&RaftCluster::crd())?;
    Ok(format!(
        "# Generated by `cargo run -p raftcfg-operator --bin crdgen`; do not edit.\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;

    #[test]
    fn crd_names_the_group_version_and_short_name() {
        let crd = RaftCluster::crd();
        assert_eq!(crd.spec.group, "raftcfg.io");
        assert_eq!(crd.spec.names.kind, "RaftCluster");
        assert_eq!(crd.spec.names.short_names, Some(vec!["rcfg".to_string()]));
        assert_eq!(crd.spec.scope, "Namespaced");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        let scale = version
            .subresources
            .as_ref()
            .and_then(|s| s.scale.as_ref())
            .expect("scale subresource");
        assert_eq!(scale.spec_replicas_path, ".spec.replicas");
        assert_eq!(scale.status_replicas_path, ".status.replicas");
        assert_eq!(
            scale.label_selector_path.as_deref(),
            Some(".status.selector")
        );
        let columns: Vec<_> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns, ["Replicas", "Ready", "Leader", "Phase", "Age"]);
    }

    /// kubectl resolves a short name to the first resource that claims it,
    /// and built-in resources come first: a short name shared with one
    /// (`rc` is ReplicationController's) makes `kubectl get` act on the
    /// wrong kind. Built-in short names (`kubectl api-resources`,
    /// Kubernetes 1.34) and those of cert-manager, which clusters running
    /// raftcfg with `spec.tls.issuerRef` have installed.
    #[test]
    fn short_names_are_not_taken_by_builtin_or_cert_manager_resources() {
        const TAKEN: [&str; 36] = [
            "cm",
            "cs",
            "ep",
            "ev",
            "limits",
            "no",
            "ns",
            "po",
            "pv",
            "pvc",
            "quota",
            "rc",
            "sa",
            "svc",
            "crd",
            "crds",
            "ds",
            "deploy",
            "rs",
            "sts",
            "hpa",
            "cj",
            "csr",
            "ing",
            "netpol",
            "pdb",
            "psp",
            "pc",
            "sc",
            "vac",
            "ingclass",
            "cert",
            "certs",
            "cr",
            "crs",
            "challenges",
        ];
        let names = RaftCluster::crd().spec.names;
        for short in names.short_names.iter().flatten() {
            assert!(
                !TAKEN.contains(&short.as_str()),
                "the short name {short} belongs to another resource"
            );
        }
        assert!(!TAKEN.contains(&names.plural.as_str()));
    }

    #[test]
    fn crd_carries_the_cel_rules() {
        let json = serde_json::to_string(&RaftCluster::crd()).unwrap();
        for rule in [
            "self == oldSelf",
            "isQuantity(self)",
            "self.electionTimeoutMs >= 2 * self.heartbeatIntervalMs",
            "self.all(k, !k.startsWith('app.kubernetes.io/')",
        ] {
            assert!(json.contains(rule), "missing CEL rule {rule}");
        }
    }

    fn spec() -> RaftClusterSpec {
        serde_json::from_value(serde_json::json!({
            "replicas": 3,
            "image": "raftcfg:0.1.0",
            "storage": {"size": "1Gi"}
        }))
        .unwrap()
    }

    #[test]
    fn validation_names_what_is_wrong() {
        assert_eq!(spec().validate(), Ok(()));
        type Breakage = fn(&mut RaftClusterSpec);
        let cases: [(Breakage, &str); 15] = [
            (|s| s.replicas = 0, "replicas must be between 1 and 9"),
            (|s| s.replicas = 10, "replicas must be between 1 and 9"),
            (|s| s.image = " ".into(), "image must name"),
            (|s| s.raft.election_timeout_ms = 150, "at least twice"),
            (
                |s| s.raft.snapshot_threshold_entries = 5,
                "snapshotThresholdEntries",
            ),
            (
                |s| {
                    s.pod_labels
                        .insert("app.kubernetes.io/instance".into(), "x".into());
                },
                "podLabels may not set app.kubernetes.io/instance",
            ),
            (
                |s| s.recovery.grace_period_seconds = 0,
                "recovery.gracePeriodSeconds must be between 1 and 86400",
            ),
            (
                |s| s.engine.memtables_bytes = Some(1 << 20),
                "engine.memtablesBytes must be at least 4194304",
            ),
            (
                |s| s.engine.block_cache_bytes = Some(1024),
                "engine.blockCacheBytes must be at least 1048576",
            ),
            (
                |s| s.engine.wal_file_bytes = Some(4096),
                "engine.walFileBytes must be 0 (no files) or between",
            ),
            (
                |s| s.engine.wal_file_bytes = Some(2 << 30),
                "engine.walFileBytes must be 0 (no files) or between",
            ),
            (
                |s| s.resources = Some(memory_limit("200Mi")),
                "resources.limits.memory \"200Mi\" is less than a member may use: 96 MiB for \
                 RocksDB (engine.memtablesBytes and engine.blockCacheBytes) and 128 MiB for the \
                 rest of the node; set at least 224Mi",
            ),
            (
                |s| {
                    s.resources = Some(memory_limit("512Mi"));
                    s.engine.memtables_bytes = Some(256 << 20);
                    s.engine.block_cache_bytes = Some(256 << 20);
                },
                "set at least 640Mi",
            ),
            (
                |s| s.resources = Some(memory_limit("lots")),
                "resources.limits.memory \"lots\" is not a size",
            ),
            (
                |s| {
                    s.resources = Some(memory_limit("1Ei"));
                    s.engine.memtables_bytes = Some(u64::MAX);
                },
                "is less than a member may use",
            ),
        ];
        for (break_it, expected) in cases {
            let mut spec = spec();
            break_it(&mut spec);
            let error = spec.validate().unwrap_err();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
    }

    fn memory_limit(quantity: &str) -> ResourceRequirements {
        ResourceRequirements {
            limits: Some([("memory".to_string(), Quantity(quantity.into()))].into()),
            ..ResourceRequirements::default()
        }
    }

    #[test]
    fn a_memory_limit_that_holds_rocksdb_and_the_node_is_accepted() {
        for limit in ["224Mi", "512Mi", "1Gi", "234881024", "0.25Gi", "300M"] {
            let mut spec = spec();
            spec.resources = Some(memory_limit(limit));
            assert_eq!(spec.validate(), Ok(()), "{limit}");
        }
        let mut spec = spec();
        spec.resources = Some(ResourceRequirements::default());
        assert_eq!(spec.validate(), Ok(()), "no limit, nothing to check");
        spec.engine.memtables_bytes = Some(8 << 20);
        spec.engine.block_cache_bytes = Some(8 << 20);
        spec.resources = Some(memory_limit("144Mi"));
        assert_eq!(spec.validate(), Ok(()), "smaller engine sizes need less");
    }

    #[test]
    fn quantities_have_the_value_the_api_server_gives_them() {
        for (text, value) in [
            ("512Mi", 536_870_912.0),
            ("1Gi", 1_073_741_824.0),
            ("1.5G", 1.5e9),
            ("100", 100.0),
            ("1e3", 1000.0),
            ("1E+9", 1e9),
            (".5Ki", 512.0),
            ("+2k", 2000.0),
            ("250m", 0.25),
        ] {
            assert_eq!(quantity_value(text), Ok(value), "{text}");
        }
    }

    #[test]
    fn storage_sizes_must_be_positive_quantities() {
        for good in [
            "1Gi", "500Mi", "1.5Gi", "10G", "1e9", "1E+9", ".5Ti", "+2Gi", "100",
        ] {
            assert_eq!(check_quantity(good), Ok(()), "{good}");
        }
        for bad in [
            "lots", "", "Gi", "1 Gi", "1GB", "1gi", "0", "0Gi", "-1Gi", "1e", "1..5Gi", ".",
        ] {
            assert!(check_quantity(bad).is_err(), "{bad:?} was accepted");
        }
        let mut spec = spec();
        spec.storage.size = Quantity("lots".into());
        let error = spec.validate().unwrap_err();
        assert!(
            error.contains("storage.size \"lots\" is not a size"),
            "{error}"
        );
    }

    #[test]
    fn names_must_be_short_dns_labels() {
        assert_eq!(validate_name("config"), Ok(()));
        assert_eq!(validate_name(&"a".repeat(52)), Ok(()));
        for bad in [
            "",
            "1config",
            "Config",
            "config-",
            "con_fig",
            &"a".repeat(53),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn cel_rules_refuse_what_they_name() {
        let tuning = serde_json::json!({"heartbeatIntervalMs": 100, "electionTimeoutMs": 150, "snapshotThresholdEntries": 1000});
        assert!(RaftTuning::validate_cel(&tuning, None).is_err());
        let tuning = serde_json::json!({"heartbeatIntervalMs": 100, "electionTimeoutMs": 1000, "snapshotThresholdEntries": 1000});
        assert!(RaftTuning::validate_cel(&tuning, None).is_ok());
        for bad in [1, 4096, (1 << 20) - 1] {
            let engine = serde_json::json!({"walFileBytes": bad});
            assert!(EngineTuning::validate_cel(&engine, None).is_err(), "{bad}");
        }
        for good in [
            serde_json::json!({}),
            serde_json::json!({"walFileBytes": 0}),
            serde_json::json!({"walFileBytes": 1 << 20, "memtablesBytes": 8 << 20}),
        ] {
            assert!(EngineTuning::validate_cel(&good, None).is_ok(), "{good}");
        }
    }

    #[test]
    fn election_ticks_are_the_timeout_in_heartbeats() {
        let tuning = RaftTuning {
            heartbeat_interval_ms: 100,
            election_timeout_ms: 1000,
            snapshot_threshold_entries: 10_000,
        };
        assert_eq!(tuning.election_ticks(), 10);
    }

    #[test]
    fn a_minimal_spec_gets_the_documented_defaults() {
        let spec: RaftClusterSpec = serde_json::from_value(serde_json::json!({
            "replicas": 3,
            "image": "raftcfg:0.1.0",
            "storage": {"size": "1Gi"}
        }))
        .unwrap();
        assert_eq!(spec.raft, RaftTuning::default());
        assert_eq!(spec.learner_timeout_seconds, 600);
        assert!(spec.pod_labels.is_empty());
    }
}
