//! The operator's world made of local processes, for the operator's
//! end-to-end test: [`ProcessPlatform`] runs each pod of a RaftCluster's
//! StatefulSet as a real `raftcfg serve` on loopback ports, and
//! [`RecordingNodes`] talks to those nodes over HTTP exactly as the operator
//! does, recording every membership change it asks for.
//!
//! The platform models what the operator's StatefulSet asks Kubernetes for
//! (see `operator/src/resources/stateful_set.rs`):
//!
//! - `updateStrategy: OnDelete`: a new template restarts nothing; a pod runs
//!   the template that was current when it last started;
//! - `persistentVolumeClaimRetentionPolicy.whenScaled: Delete`: scaling in
//!   stops the pods above the new size and deletes their data directories;
//! - `podManagementPolicy: Parallel`: every missing pod starts at once;
//! - the client Service: its endpoints are the pods labelled
//!   `raftcfg.io/serving=true` (as each pod starts; the operator relabels
//!   it) that answer `/readyz` (over HTTPS unverified, as the kubelet
//!   probes), and a pod leaves them before it stops;
//! - Secrets: each is a directory of files, one per key, as the kubelet
//!   mounts one; with TLS on, a pod's `$(POD_NAME)` in its certificate
//!   paths is its own name, as the kubelet expands it.
//!
//! Pod `k` is `<cluster>-k`; it keeps its ports and its data directory path
//! for the whole test, as a pod keeps its DNS name and its claim. Unlike
//! Kubernetes, every change is synchronous: `scale`, `delete_pod` and
//! `wipe_pod` return once the pods they start answer `/v1/node`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raftcfg_client::http::{ClientError, ClientOptions, ClientTls};
use raftcfg_client::wire::{
    AddMemberRequest, BootstrapResponse, ForceNewClusterResponse, LogIndex, MemberList,
    MembershipResponse, NodeId, NodeStatus, TransferLeaderResponse,
};
use raftcfg_operator::crd::{RaftCluster, RaftClusterStatus};
use raftcfg_operator::credentials::{Access, SecretData};
use raftcfg_operator::observed::pod_name;
use raftcfg_operator::resources::{
    CA_CERT_KEY, config_hash, member_secret_name, operator_secret_name,
};
use raftcfg_operator::world::{Event, HttpNodes, Nodes, Platform, PlatformError, Pod, PodSet};
use tempfile::TempDir;

use crate::support::Node;

/// How long a readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The pod template of the StatefulSet, as far as a process cares: the
/// configuration hash it is annotated with, the `serve` flags its
/// `RAFTCFG_*` variables amount to, and whether it serves TLS.
#[derive(Clone, Debug)]
struct Template {
    config_hash: String,
    args: Vec<String>,
    tls: bool,
}

impl Template {
    /// The template the operator's StatefulSet builds from `cluster`: the
    /// node ticks once per heartbeat interval, and the election timeout is
    /// counted in those ticks. With TLS, both ports serve the pod's own
    /// certificate from the members' Secret mounted at `secrets`.
    fn of(cluster: &RaftCluster, secrets: &Path) -> Self {
        let raft = &cluster.spec.raft;
        let flag = |name: &str, value: String| [format!("--{name}"), value];
        let args = [
            flag("tick-ms", raft.heartbeat_interval_ms.to_string()),
            flag("heartbeat-ticks", "1".to_owned()),
            flag("election-ticks", raft.election_ticks().to_string()),
            flag(
                "snapshot-threshold",
                raft.snapshot_threshold_entries.to_string(),
            ),
        ]
        .concat();
        let mut args = args;
        let tls = cluster.spec.tls_enabled();
        if tls {
            let mounted = secrets.join(member_secret_name(cluster));
            let file = |name: &str| mounted.join(name).display().to_string();
            for (flag, value) in [
                ("cert-file", file("$(POD_NAME).crt")),
                ("key-file", file("$(POD_NAME).key")),
                ("trusted-ca-file", file(CA_CERT_KEY)),
                ("peer-cert-file", file("$(POD_NAME).crt")),
                ("peer-key-file", file("$(POD_NAME).key")),
                ("peer-trusted-ca-file", file(CA_CERT_KEY)),
            ] {
                args.extend([format!("--{flag}"), value]);
            }
        }
        Self {
            config_hash: config_hash(&cluster.spec),
            args,
            tls,
        }
    }
}

/// One ordinal of the StatefulSet.
struct Slot {
    /// Its fixed ports and data directory, and the process while it runs.
    node: Node,
    /// The hash of the template its process started from, while it runs.
    config_hash: Option<String>,
    /// Its `raftcfg.io/serving` label: true from the template when it
    /// starts, then as the operator sets it.
    serving: bool,
    /// How many times a process was started for it.
    starts: u32,
}

impl Slot {
    /// Makes the node serve TLS (its URLs https, reached trusting `ca`) or
    /// not, as the template it starts from says.
    fn serve_tls(&mut self, tls: bool, ca: Option<Vec<u8>>) {
        if tls {
            self.node.client_tls = Some(ClientTls {
                ca_pem: ca,
                identity_pem: None,
            });
            self.node.advertise_peer = Some(format!("https://127.0.0.1:{}", self.node.peer_port));
        } else {
            self.node.client_tls = None;
            self.node.advertise_peer = None;
        }
    }
}

/// The StatefulSet: its replicas, its current template and its pods.
#[derive(Default)]
struct StatefulSet {
    /// `None` until it is created.
    replicas: Option<u32>,
    template: Option<Template>,
    slots: BTreeMap<u32, Slot>,
}

/// A [`Platform`] whose pods are `raftcfg serve` processes on loopback.
pub struct ProcessPlatform {
    dir: TempDir,
    set: tokio::sync::Mutex<StatefulSet>,
    status: Mutex<Option<RaftClusterStatus>>,
    events: Mutex<Vec<Event>>,
    secrets: Mutex<BTreeMap<String, SecretData>>,
    service: Arc<Mutex<Vec<String>>>,
    probe: reqwest::Client,
}

impl ProcessPlatform {
    /// An empty platform: no StatefulSet, no pods.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            set: tokio::sync::Mutex::default(),
            status: Mutex::default(),
            events: Mutex::default(),
            secrets: Mutex::default(),
            service: Arc::default(),
            probe: reqwest::Client::builder()
                .timeout(PROBE_TIMEOUT)
                .danger_accept_invalid_certs(true)
                .build()
                .expect("an HTTP client"),
        }
    }

    /// The client Service's endpoints: client URLs of ready pods.
    pub fn service_endpoints(&self) -> Arc<Mutex<Vec<String>>> {
        self.service.clone()
    }

    /// Makes the Service's endpoints the running pods labelled serving
    /// that answer `/readyz` (a member that knows its leader and has
    /// applied what it knows is committed). If none does, the running
    /// serving pods already listed stay, as Kubernetes keeps an endpoint
    /// through a few failed probes (but not past a label change).
    pub async fn refresh_service(&self) {
        let set = self.set.lock().await;
        let mut ready = Vec::new();
        let mut running = Vec::new();
        let serving = set
            .slots
            .values()
            .filter(|s| s.node.is_running() && s.serving);
        for slot in serving {
            let url = slot.node.client_url();
            let answer = self.probe.get(format!("{url}/readyz")).send().await;
            if matches!(&answer, Ok(r) if r.status().is_success()) {
                ready.push(url.clone());
            }
            running.push(url);
        }
        let mut service = self.service.lock().unwrap();
        if ready.is_empty() {
            service.retain(|url| running.contains(url));
        } else {
            *service = ready;
        }
    }

    /// Where the Secrets are "mounted": one directory per Secret.
    fn secrets_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("secrets")
    }

    /// The data of Secret `name`, if the operator wrote it.
    pub fn secret_data(&self, name: &str) -> Option<SecretData> {
        self.secrets.lock().unwrap().get(name).cloned()
    }

    /// Client options that reach the pods as the operator does: trusting
    /// the cluster CA and presenting its certificate (common name root),
    /// once the operator made them; plain otherwise.
    pub fn client_options(&self, cluster: &RaftCluster) -> ClientOptions {
        let Some(operator) = self.secret_data(&operator_secret_name(cluster)) else {
            return ClientOptions::default();
        };
        let identity = [operator["tls.crt"].as_slice(), b"\n", &operator["tls.key"]].concat();
        ClientOptions {
            tls: ClientTls {
                ca_pem: Some(operator[CA_CERT_KEY].clone()),
                identity_pem: Some(identity),
            },
            ..ClientOptions::default()
        }
    }

    /// The CA certificate in the members' Secret, if there is one.
    fn members_ca(&self, cluster: &RaftCluster) -> Option<Vec<u8>> {
        let secrets = self.secrets.lock().unwrap();
        secrets
            .get(&member_secret_name(cluster))
            .and_then(|data| data.get(CA_CERT_KEY).cloned())
    }

    /// The status the last `patch_status` wrote.
    pub fn last_status(&self) -> Option<RaftClusterStatus> {
        self.status.lock().unwrap().clone()
    }

    /// Every event published, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// How many times a process was started for each ordinal.
    pub async fn start_counts(&self) -> BTreeMap<u32, u32> {
        let set = self.set.lock().await;
        set.slots.iter().map(|(k, s)| (*k, s.starts)).collect()
    }

    /// The client URL of pod `ordinal`, if it runs.
    pub async fn client_url(&self, ordinal: u32) -> Option<String> {
        let set = self.set.lock().await;
        set.slots
            .get(&ordinal)
            .filter(|s| s.node.is_running())
            .map(|s| s.node.client_url())
    }

    /// The running pods' ordinals.
    pub async fn running(&self) -> Vec<u32> {
        let set = self.set.lock().await;
        set.slots
            .iter()
            .filter(|(_, s)| s.node.is_running())
            .map(|(k, _)| *k)
            .collect()
    }

    /// The end of pod `ordinal`'s log, for failure messages.
    pub async fn log_tail(&self, ordinal: u32) -> String {
        let set = self.set.lock().await;
        set.slots
            .get(&ordinal)
            .map(|s| s.node.log_tail())
            .unwrap_or_default()
    }

    /// Behind the operator's back: pod `ordinal`'s volume is lost. Its
    /// process dies (kill -9), its data directory goes, and the container
    /// restarts in the same pod (same template) on an empty volume.
    pub async fn lose_volume(&self, ordinal: u32) {
        let mut set = self.set.lock().await;
        let slot = set
            .slots
            .get_mut(&ordinal)
            .filter(|s| s.node.is_running())
            .unwrap_or_else(|| panic!("pod {ordinal} is not running"));
        let hash = slot.config_hash.clone().expect("a running pod has a hash");
        self.leave_service(slot);
        tokio::task::block_in_place(|| slot.node.kill());
        slot.config_hash = None;
        delete_data(&slot.node);
        let args = slot.node.extra_args.clone();
        start(slot, hash, args);
    }

    /// `kubectl delete raftcluster`: the StatefulSet and its pods go (each
    /// stopped as the kubelet stops it), the volumes stay
    /// (`whenDeleted: Retain`), and the cluster's status goes with it.
    pub async fn delete_cluster(&self) {
        let mut set = self.set.lock().await;
        for slot in set.slots.values_mut() {
            if slot.node.is_running() {
                self.stop(slot);
            }
        }
        set.replicas = None;
        set.template = None;
        *self.status.lock().unwrap() = None;
    }

    /// Takes pod `slot` out of the Service before it stops.
    fn leave_service(&self, slot: &Slot) {
        let url = slot.node.client_url();
        self.service.lock().unwrap().retain(|u| *u != url);
    }

    /// Stops pod `slot` gracefully (SIGTERM, as the kubelet does).
    fn stop(&self, slot: &mut Slot) {
        self.leave_service(slot);
        tokio::task::block_in_place(|| slot.node.stop());
        slot.config_hash = None;
    }

    /// Deletes pod `ordinal` and lets the StatefulSet recreate it from the
    /// current template, after deleting its data when `wipe`.
    async fn recreate(
        &self,
        cluster: &RaftCluster,
        ordinal: u32,
        wipe: bool,
    ) -> Result<(), PlatformError> {
        let operation = if wipe { "wipe pod" } else { "delete pod" };
        let name = pod_name(&cluster_name(cluster), ordinal);
        let mut set = self.set.lock().await;
        let template = set.template.clone();
        let Some(slot) = set.slots.get_mut(&ordinal).filter(|s| s.node.is_running()) else {
            return Err(PlatformError::new(
                format!("{operation} {name}"),
                format!("pod {name} not found"),
            ));
        };
        let template = template.expect("a StatefulSet with pods has a template");
        self.stop(slot);
        if wipe {
            delete_data(&slot.node);
        }
        slot.serve_tls(template.tls, self.members_ca(cluster));
        start(slot, template.config_hash, template.args);
        Ok(())
    }
}

impl Default for ProcessPlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl Platform for ProcessPlatform {
    /// The Services and the PodDisruptionBudget do not exist here; the
    /// StatefulSet's template is replaced if the StatefulSet exists.
    async fn apply_owned(&self, cluster: &RaftCluster, _members: u32) -> Result<(), PlatformError> {
        let mut set = self.set.lock().await;
        if set.replicas.is_some() {
            set.template = Some(Template::of(cluster, &self.secrets_dir()));
        }
        Ok(())
    }

    async fn scale(&self, cluster: &RaftCluster, replicas: u32) -> Result<(), PlatformError> {
        let name = cluster_name(cluster);
        let template = Template::of(cluster, &self.secrets_dir());
        let ca = self.members_ca(cluster);
        let mut set = self.set.lock().await;
        set.replicas = Some(replicas);
        set.template = Some(template.clone());
        for (_, slot) in set.slots.range_mut(replicas..) {
            if slot.node.is_running() {
                self.stop(slot);
                delete_data(&slot.node);
            }
        }
        for ordinal in 0..replicas {
            let slot = set
                .slots
                .entry(ordinal)
                .or_insert_with(|| new_slot(self.dir.path(), &name, ordinal));
            if !slot.node.is_running() {
                slot.serve_tls(template.tls, ca.clone());
                start(slot, template.config_hash.clone(), template.args.clone());
            }
        }
        Ok(())
    }

    async fn pods(&self, _cluster: &RaftCluster) -> Result<PodSet, PlatformError> {
        let set = self.set.lock().await;
        let pods = set
            .slots
            .iter()
            .filter(|(_, s)| s.node.is_running())
            .map(|(ordinal, slot)| Pod {
                ordinal: *ordinal,
                terminating: false,
                config_hash: slot.config_hash.clone(),
                serving: slot.serving,
                client_url: Some(slot.node.client_url()),
                peer_url: slot.node.peer_url(),
                advertised_client_url: slot.node.client_url(),
            })
            .collect();
        // A volume claim is a data directory that exists.
        let claims = set
            .slots
            .iter()
            .filter(|(_, slot)| slot.node.data_dir.exists())
            .map(|(ordinal, _)| *ordinal)
            .collect();
        Ok(PodSet {
            statefulset_replicas: set.replicas,
            pods,
            claims,
        })
    }

    async fn delete_pod(&self, cluster: &RaftCluster, ordinal: u32) -> Result<(), PlatformError> {
        self.recreate(cluster, ordinal, false).await
    }

    async fn wipe_pod(&self, cluster: &RaftCluster, ordinal: u32) -> Result<(), PlatformError> {
        self.recreate(cluster, ordinal, true).await
    }

    async fn set_serving(
        &self,
        cluster: &RaftCluster,
        ordinal: u32,
        serving: bool,
    ) -> Result<(), PlatformError> {
        let mut set = self.set.lock().await;
        let Some(slot) = set.slots.get_mut(&ordinal).filter(|s| s.node.is_running()) else {
            let name = pod_name(&cluster_name(cluster), ordinal);
            return Err(PlatformError::new(
                format!("label pod {name}"),
                format!("pod {name} not found"),
            ));
        };
        slot.serving = serving;
        Ok(())
    }

    async fn patch_status(
        &self,
        _cluster: &RaftCluster,
        status: &RaftClusterStatus,
    ) -> Result<Option<String>, PlatformError> {
        *self.status.lock().unwrap() = Some(status.clone());
        Ok(None)
    }

    async fn publish(&self, _cluster: &RaftCluster, event: Event) -> Result<(), PlatformError> {
        self.events.lock().unwrap().push(event);
        Ok(())
    }

    async fn apply_certificates(&self, _cluster: &RaftCluster) -> Result<(), PlatformError> {
        Err(PlatformError::new(
            "apply Certificates",
            "cert-manager does not run on this platform",
        ))
    }

    async fn secret(
        &self,
        _cluster: &RaftCluster,
        name: &str,
    ) -> Result<Option<SecretData>, PlatformError> {
        Ok(self.secret_data(name))
    }

    /// Writes each key to a file of the Secret's directory (a new file
    /// renamed over the old, so a node never reads half of one), then
    /// records the data.
    async fn apply_secret(
        &self,
        _cluster: &RaftCluster,
        name: &str,
        data: &SecretData,
    ) -> Result<(), PlatformError> {
        let dir = self.secrets_dir().join(name);
        std::fs::create_dir_all(&dir).expect("a Secret's directory");
        for (key, value) in data {
            let new = dir.join(format!(".{key}.new"));
            std::fs::write(&new, value).expect("write a Secret's file");
            std::fs::rename(&new, dir.join(key)).expect("rename a Secret's file");
        }
        self.secrets
            .lock()
            .unwrap()
            .insert(name.to_owned(), data.clone());
        Ok(())
    }
}

fn cluster_name(cluster: &RaftCluster) -> String {
    cluster
        .metadata
        .name
        .clone()
        .expect("a RaftCluster has a name")
}

/// Ordinal `ordinal` of cluster `name`, with ports of its own, not started.
fn new_slot(dir: &Path, name: &str, ordinal: u32) -> Slot {
    let name = pod_name(name, ordinal);
    Slot {
        node: Node::new(&name, dir.join(&name), &[]),
        config_hash: None,
        serving: false,
        starts: 0,
    }
}

/// Starts the process of `slot` with template `config_hash` and `args`,
/// and waits until its API answers.
///
/// [`Node::start`] waits with an async closure, and the compiler cannot
/// prove such a future `Send` for the `Platform` trait's `+ Send` futures;
/// so it runs to completion here, on this worker thread, outside the
/// caller's future (this needs the multi-threaded runtime). It blocks
/// the caller, as the platform's changes are synchronous anyway.
fn start(slot: &mut Slot, config_hash: String, args: Vec<String>) {
    let pod = slot.node.name.clone();
    slot.node.extra_args = args
        .into_iter()
        .map(|arg| arg.replace("$(POD_NAME)", &pod))
        .collect();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| runtime.block_on(slot.node.start()));
    slot.config_hash = Some(config_hash);
    slot.serving = true;
    slot.starts += 1;
}

/// Deletes a stopped node's data directory (its volume claim).
fn delete_data(node: &Node) {
    assert!(!node.is_running(), "{} still runs", node.name);
    match std::fs::remove_dir_all(&node.data_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("delete {}: {e}", node.data_dir.display()),
    }
}

/// Which membership change a [`MembershipCall`] asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipOperation {
    AddLearner,
    Promote,
    Remove,
}

/// One membership change the operator asked a node for, with when it was
/// asked and answered (since the recorder was made) and the answer.
#[derive(Clone, Debug)]
pub struct MembershipCall {
    pub operation: MembershipOperation,
    pub node_id: NodeId,
    pub url: String,
    pub started: Duration,
    pub ended: Duration,
    /// The log index of the committed configuration entry, or the error.
    pub result: Result<LogIndex, CallError>,
    /// For a removal: the member's client URL, if the leader listed it,
    /// and whether the client Service listed it when the removal was
    /// asked for.
    pub removed_url: Option<String>,
    pub removed_while_in_service: bool,
}

/// A failed call, as far as the test needs it.
#[derive(Clone, Debug)]
pub struct CallError {
    /// The HTTP status, if the node answered.
    pub status: Option<u16>,
    /// The error code of the answer, e.g. `learner_not_caught_up`.
    pub code: Option<String>,
    pub message: String,
}

impl MembershipCall {
    /// The error code the node answered with, if it refused.
    pub fn code(&self) -> Option<&str> {
        self.result.as_ref().err().and_then(|e| e.code.as_deref())
    }
}

/// [`HttpNodes`] that records every membership change asked for (and
/// counts leadership transfers), and for a removal whether the client
/// Service still listed the member.
pub struct RecordingNodes {
    inner: HttpNodes,
    service: Arc<Mutex<Vec<String>>>,
    epoch: Instant,
    calls: Mutex<Vec<MembershipCall>>,
    transfers: Mutex<Vec<Result<NodeId, CallError>>>,
}

impl RecordingNodes {
    /// A recorder that checks removals against `service`, the client
    /// Service's endpoints ([`ProcessPlatform::service_endpoints`]).
    pub fn new(service: Arc<Mutex<Vec<String>>>) -> Self {
        Self {
            inner: HttpNodes::new(),
            service,
            epoch: Instant::now(),
            calls: Mutex::default(),
            transfers: Mutex::default(),
        }
    }

    /// Every membership call, in the order they started.
    pub fn membership_calls(&self) -> Vec<MembershipCall> {
        let mut calls = self.calls.lock().unwrap().clone();
        calls.sort_by_key(|c| c.started);
        calls
    }

    /// Every leadership transfer's answer: the new leader, or the error.
    pub fn transfers(&self) -> Vec<Result<NodeId, CallError>> {
        self.transfers.lock().unwrap().clone()
    }

    async fn record(
        &self,
        operation: MembershipOperation,
        node_id: NodeId,
        url: &str,
        call: impl Future<Output = Result<MembershipResponse, ClientError>>,
        removed_url: Option<String>,
    ) -> Result<MembershipResponse, ClientError> {
        let started = self.epoch.elapsed();
        let removed_while_in_service = removed_url
            .as_ref()
            .is_some_and(|url| self.service.lock().unwrap().contains(url));
        let answer = call.await;
        let ended = self.epoch.elapsed();
        self.calls.lock().unwrap().push(MembershipCall {
            operation,
            node_id,
            url: url.to_owned(),
            started,
            ended,
            result: answer.as_ref().map(|a| a.index).map_err(call_error),
            removed_url,
            removed_while_in_service,
        });
        answer
    }
}

fn call_error(error: &ClientError) -> CallError {
    CallError {
        status: error.status().map(|s| s.as_u16()),
        code: error.code().map(str::to_owned),
        message: error.to_string(),
    }
}

impl Nodes for RecordingNodes {
    async fn status(&self, url: &str, access: &Access) -> Result<NodeStatus, ClientError> {
        self.inner.status(url, access).await
    }

    async fn members(&self, url: &str, access: &Access) -> Result<MemberList, ClientError> {
        self.inner.members(url, access).await
    }

    async fn bootstrap(
        &self,
        url: &str,
        access: &Access,
    ) -> Result<BootstrapResponse, ClientError> {
        self.inner.bootstrap(url, access).await
    }

    async fn add_learner(
        &self,
        url: &str,
        access: &Access,
        request: &AddMemberRequest,
    ) -> Result<MembershipResponse, ClientError> {
        let call = self.inner.add_learner(url, access, request);
        self.record(
            MembershipOperation::AddLearner,
            request.node_id,
            url,
            call,
            None,
        )
        .await
    }

    async fn promote(
        &self,
        url: &str,
        access: &Access,
        node_id: NodeId,
    ) -> Result<MembershipResponse, ClientError> {
        let call = self.inner.promote(url, access, node_id);
        self.record(MembershipOperation::Promote, node_id, url, call, None)
            .await
    }

    async fn remove(
        &self,
        url: &str,
        access: &Access,
        node_id: NodeId,
    ) -> Result<MembershipResponse, ClientError> {
        let members = self.inner.members(url, access).await?;
        let removed_url = members
            .members
            .iter()
            .find(|m| m.id == node_id)
            .map(|m| m.client_url.clone());
        let call = self.inner.remove(url, access, node_id);
        self.record(MembershipOperation::Remove, node_id, url, call, removed_url)
            .await
    }

    async fn transfer_leader(
        &self,
        url: &str,
        access: &Access,
        to: NodeId,
    ) -> Result<TransferLeaderResponse, ClientError> {
        let answer = self.inner.transfer_leader(url, access, to).await;
        let summary = answer.as_ref().map(|a| a.leader_id).map_err(call_error);
        self.transfers.lock().unwrap().push(summary);
        answer
    }

    async fn force_new_cluster(
        &self,
        url: &str,
        access: &Access,
    ) -> Result<ForceNewClusterResponse, ClientError> {
        self.inner.force_new_cluster(url, access).await
    }

    async fn auth_enabled(&self, url: &str, access: &Access) -> Result<bool, ClientError> {
        self.inner.auth_enabled(url, access).await
    }

    async fn enable_auth(
        &self,
        url: &str,
        access: &Access,
        password: &str,
    ) -> Result<(), ClientError> {
        self.inner.enable_auth(url, access, password).await
    }

    async fn disable_auth(&self, url: &str, access: &Access) -> Result<(), ClientError> {
        self.inner.disable_auth(url, access).await
    }
}
