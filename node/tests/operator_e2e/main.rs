//! The operator's reconcile core against real nodes (docs/design.md §4): the pods
//! are `raftcfg serve` processes on loopback
//! ([`ProcessPlatform`](platform::ProcessPlatform), in `platform.rs` of
//! this folder, which holds this test and nothing else), and
//! this test plays the controller: it reconciles, writes back the status
//! the reconcile patched, and reconciles again until the cluster matches
//! its spec, then changes the spec.
//!
//! Under continuous writes the cluster scales 1 → 3 → 5 → 3 → 1 → 3,
//! replaces a member whose volume was lost behind the operator's back, and
//! replaces every pod for a new image. No acknowledged write may be lost,
//! writers may see only retryable answers (503, timeouts, refused
//! connections, and 410 `removed` for a request already on its way to a
//! member as it was removed) and only briefly, and the operator must never
//! ask for a membership change while another is in flight: each call
//! starts after the previous one was answered, and no leader refuses one
//! with `membership_change_in_progress` (the leader's own check that its
//! log holds no uncommitted configuration entry). A member leaving for a
//! scale-in is out of the client Service before its removal is asked for.

#[path = "../support/mod.rs"]
mod support;

mod platform;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::jiff::Timestamp;
use platform::{MembershipCall, MembershipOperation, ProcessPlatform, RecordingNodes};
use raftcfg_client::http::{Client, ClientOptions, Consistency, Credentials, Precondition};
use raftcfg_client::wire::NodeId;
use raftcfg_operator::crd::{
    AuthSettings, ChangeKind, ChangeOutcome, MemberRole, Phase as ClusterPhase, QuorumLossPolicy,
    RaftCluster, RaftClusterSpec, RaftClusterStatus, RecoverySettings, TlsSettings,
};
use raftcfg_operator::credentials::PASSWORD_KEY;
use raftcfg_operator::observed::pod_name;
use raftcfg_operator::pki::{Authority, CertifiedKey, LeafRequest, Usage, renewal_reason};
use raftcfg_operator::reconcile::{Outcome, Reconciler};
use raftcfg_operator::resources::{
    ADOPT_ANNOTATION, RECOVER_ANNOTATION, config_hash, member_dns_names, member_secret_name,
    root_secret_name,
};
use raftcfg_operator::world::Platform as _;
use rustls::pki_types::pem::PemObject as _;
use support::patience::patience;
use support::wait_for;

/// The RaftCluster's name; its pods are `cfg-0`, `cfg-1`, ...
const NAME: &str = "cfg";
/// How long one phase may take to converge (before [`patience`]).
const PHASE_DEADLINE: Duration = Duration::from_secs(120);
/// The pause between reconciles (the controller requeues after 1–3 s; the
/// test is impatient).
const RECONCILE_INTERVAL: Duration = Duration::from_millis(250);
/// Concurrent writers of unique keys.
const WRITERS: usize = 5;
/// How long one write may take before the writer calls it unknown.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest time without any acknowledged write that still counts as a
/// brief interruption (a leadership transfer or an election), before
/// [`patience`].
const LONGEST_OUTAGE_ALLOWED: Duration = Duration::from_secs(10);
/// Linearizable reads in flight at once during the final check.
const READS_IN_FLIGHT: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_scales_replaces_and_rolls_real_nodes_without_losing_writes() {
    let started = Instant::now();
    let mut operator = Operator::new(cluster(1));
    operator.converge("bootstrap 1").await;
    operator.check_pods_are_members().await;

    let stop = Arc::new(AtomicBool::new(false));
    let writers = Writers::start(
        WRITERS,
        "e2e",
        operator.platform().service_endpoints(),
        stop.clone(),
        writer_http(None),
    );

    for replicas in [3, 5, 3, 1, 3] {
        operator.cluster.spec.replicas = replicas;
        operator.spec_changed();
        operator.converge(&format!("scale to {replicas}")).await;
        operator.check_pods_are_members().await;
    }

    replace_a_member_whose_volume_was_lost(&mut operator).await;
    roll_every_pod_for_a_new_image(&mut operator).await;

    // Some writes after the last phase, then stop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let load = writers.join().await;
    let verify_started = Instant::now();
    let lost = check_every_acknowledged_write(&operator, &load.acknowledged).await;
    check_members_agree(&operator).await;
    let verify = verify_started.elapsed();
    let calls = operator.reconciler.nodes.membership_calls();

    print_summary(&operator, &load, &calls, verify, started.elapsed());

    // No acknowledged write was lost, and the load really ran.
    assert!(
        load.acknowledged.len() >= 100,
        "only {} writes were acknowledged; the load did not run",
        load.acknowledged.len()
    );
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes are lost, e.g. {:#?}",
        lost.len(),
        load.acknowledged.len(),
        &lost[..lost.len().min(20)]
    );
    // Writers saw only retryable answers, and never for long.
    assert!(
        load.tally.unexpected.is_empty(),
        "writers got {} answers that are not retryable, e.g. {:#?}",
        load.tally.unexpected.len(),
        &load.tally.unexpected[..load.tally.unexpected.len().min(20)]
    );
    assert!(
        load.tally.longest_outage <= patience(LONGEST_OUTAGE_ALLOWED),
        "no write was acknowledged for {:?}",
        load.tally.longest_outage
    );
    // One membership change at a time.
    check_membership_calls(&calls);
}

/// The same operator with `spec.tls` and `spec.auth` on: it issues the
/// cluster CA and every certificate into Secrets, the pods serve TLS on
/// both ports from them, it creates the root user and enables auth, and
/// it scales 1 → 3 → 1 signed in with its own client certificate, under
/// writes (by a client presenting that certificate too), renewing a
/// member's certificate in place on the way. Nothing
/// acknowledged is lost; a client without credentials is refused, and
/// the root password from the Secret signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_scales_a_cluster_with_tls_and_auth_one_to_three_and_back() {
    let started = Instant::now();
    let mut cluster = cluster(1);
    cluster.spec.tls = Some(TlsSettings {
        enabled: true,
        issuer_ref: None,
    });
    cluster.spec.auth = Some(AuthSettings { enabled: true });
    let mut operator = Operator::new(cluster);
    operator.converge("bootstrap 1 with tls and auth").await;
    operator.check_pods_are_members().await;
    let steps = &operator.phases[0].steps;
    assert!(
        steps.iter().any(|s| s == "ChangedAuth { enabled: true }"),
        "the operator enabled auth: {steps:?}"
    );
    check_auth_is_required(&operator).await;

    let stop = Arc::new(AtomicBool::new(false));
    let options = operator.platform().client_options(&operator.cluster);
    let writers = Writers::start(
        WRITERS,
        "secure",
        operator.platform().service_endpoints(),
        stop.clone(),
        writer_http(Some(&options)),
    );
    operator.cluster.spec.replicas = 3;
    operator.spec_changed();
    operator.converge("scale to 3 with tls and auth").await;
    operator.check_pods_are_members().await;
    renew_a_certificate_in_place(&mut operator).await;
    operator.cluster.spec.replicas = 1;
    operator.spec_changed();
    operator.converge("scale to 1 with tls and auth").await;
    operator.check_pods_are_members().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let load = writers.join().await;
    let verify_started = Instant::now();
    let lost = check_every_acknowledged_write(&operator, &load.acknowledged).await;
    let calls = operator.reconciler.nodes.membership_calls();
    print_summary(
        &operator,
        &load,
        &calls,
        verify_started.elapsed(),
        started.elapsed(),
    );
    assert!(
        load.acknowledged.len() >= 50,
        "only {} writes were acknowledged; the load did not run",
        load.acknowledged.len()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged writes are lost, e.g. {:#?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    assert!(
        load.tally.unexpected.is_empty(),
        "writers got answers that are not retryable, e.g. {:#?}",
        &load.tally.unexpected[..load.tally.unexpected.len().min(20)]
    );
    check_membership_calls(&calls);
}

/// A RaftCluster deleted by mistake leaves its volumes. Created again, it
/// halts over them and says which cluster they hold; annotated with that
/// cluster's id, it takes them over: the StatefulSet grows over every
/// volume, the members find each other again, and every write acknowledged
/// before the deletion is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_cluster_is_taken_over_from_its_volumes_when_annotated() {
    let mut operator = Operator::new(cluster(3));
    operator.converge("create 3").await;
    let cluster_id = operator
        .status()
        .recorded_cluster_id()
        .expect("a readable id")
        .expect("a recorded id");
    let endpoints = operator.platform().service_endpoints();
    let writer = Client::new(endpoints.lock().unwrap().clone()).unwrap();
    let keys: Vec<String> = (0..50).map(|i| format!("kept/{i}")).collect();
    for key in &keys {
        writer
            .put(key, bytes::Bytes::from(key.clone()), Precondition::None)
            .await
            .expect("a write before the deletion");
    }

    operator.platform().delete_cluster().await;
    operator.cluster = cluster(3);
    let halted = operator.reconcile_until_stopped().await;
    let message = halted.message.clone().unwrap_or_default();
    assert_eq!(halted.phase, Some(ClusterPhase::Halted), "{message}");
    let hint = format!("{ADOPT_ANNOTATION}={cluster_id}");
    assert!(message.contains(&hint), "the message says how: {message}");
    assert_eq!(
        operator.platform().running().await,
        [0],
        "nothing grows over the volumes without the annotation"
    );

    operator
        .cluster
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(ADOPT_ANNOTATION.to_owned(), cluster_id.to_string());
    operator.converge("take the volumes over").await;
    operator.check_pods_are_members().await;
    assert_eq!(
        operator.status().recorded_cluster_id().unwrap(),
        Some(cluster_id),
        "the same cluster, not a new one"
    );
    let lost = check_every_acknowledged_write(&operator, &keys).await;
    assert!(lost.is_empty(), "lost after the take-over: {lost:?}");
    assert!(
        !operator
            .phases
            .iter()
            .flat_map(|p| &p.steps)
            .skip_while(|s| !s.starts_with("RecordClusterId"))
            .any(|s| s == "Bootstrap"),
        "no second bootstrap"
    );
}

/// How long a test cluster waits for a lost quorum to come back.
const RECOVERY_GRACE_SECS: u32 = 3;

/// Three members under writes; then the two followers lose their volumes
/// and their processes at once (each pod comes back empty, as the
/// StatefulSet recreates it on a new volume). The leader, which holds
/// every acknowledged write, survives. Answers the operator and the
/// acknowledged keys.
async fn lose_two_of_three(policy: QuorumLossPolicy) -> (Operator, Vec<String>, String) {
    let mut cluster = cluster(3);
    cluster.spec.recovery = RecoverySettings {
        quorum_loss: policy,
        grace_period_seconds: RECOVERY_GRACE_SECS,
    };
    let mut operator = Operator::new(cluster);
    operator.converge("create 3").await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers = Writers::start(
        WRITERS,
        "before-loss",
        operator.platform().service_endpoints(),
        stop.clone(),
        writer_http(None),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let load = writers.join().await;
    assert!(load.acknowledged.len() >= 20, "the load did not run");
    let survivor = operator.status().leader.expect("a leader");
    for k in 0..3 {
        if pod_name(NAME, k) != survivor {
            operator.platform().lose_volume(k).await;
        }
    }
    (operator, load.acknowledged, survivor)
}

/// After the recovery: it was recorded with the survivor and the trigger,
/// announced by a warning Event, every acknowledged write is there, and
/// the cluster is back at three voters (converge checked that).
async fn check_recovered(operator: &Operator, keys: &[String], survivor: &str, trigger: &str) {
    operator.check_pods_are_members().await;
    let status = operator.status();
    let recovery = status
        .last_recovery
        .clone()
        .expect("the recovery is recorded");
    assert_eq!(recovery.survivor, survivor);
    assert_eq!(recovery.trigger, trigger);
    assert_eq!(recovery.lost_members.len(), 2, "{recovery:?}");
    let event = operator
        .platform()
        .events()
        .into_iter()
        .find(|e| e.reason == "ForceNewCluster")
        .expect("a ForceNewCluster event");
    assert!(event.warning);
    assert!(event.note.contains(survivor), "{}", event.note);
    let forced = operator
        .phases
        .iter()
        .flat_map(|p| &p.steps)
        .filter(|s| s.starts_with("ForceNewCluster"))
        .count();
    assert_eq!(forced, 1, "one recovery");
    let lost = check_every_acknowledged_write(operator, keys).await;
    assert!(lost.is_empty(), "lost in the recovery: {lost:?}");
}

/// `spec.recovery.quorumLoss: Automatic`: once the grace period is over
/// the operator forces a new cluster on the survivor, then adds the two
/// empty pods back one at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_quorum_is_recovered_automatically_from_the_survivor() {
    let (mut operator, keys, survivor) = lose_two_of_three(QuorumLossPolicy::Automatic).await;
    operator.converge("recover automatically").await;
    check_recovered(&operator, &keys, &survivor, "Automatic").await;
}

/// `Manual`: past the grace period the operator only says how to approve,
/// and does nothing; the annotation approves the recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_quorum_waits_for_the_annotation_in_manual_mode() {
    let (mut operator, keys, survivor) = lose_two_of_three(QuorumLossPolicy::Manual).await;
    let started = Instant::now();
    let long_enough = Duration::from_secs(u64::from(RECOVERY_GRACE_SECS) + 4);
    while started.elapsed() < long_enough {
        let outcome = operator
            .reconciler
            .reconcile(&operator.cluster, Timestamp::now())
            .await;
        if let Some(status) = operator.platform().last_status() {
            operator.cluster.status = Some(status);
        }
        if let Ok(Outcome::Acted(step)) = outcome {
            assert!(
                !matches!(
                    step,
                    raftcfg_operator::planner::Step::ForceNewCluster { .. }
                ),
                "recovered without approval"
            );
        }
        tokio::time::sleep(RECONCILE_INTERVAL).await;
    }
    let status = operator.status();
    let message = status.message.clone().unwrap_or_default();
    assert_eq!(status.phase, Some(ClusterPhase::Degraded), "{message}");
    assert!(
        message.contains("quorum lost") && message.contains(RECOVER_ANNOTATION),
        "the message says how to approve: {message}"
    );
    assert!(status.last_recovery.is_none());

    operator
        .cluster
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(RECOVER_ANNOTATION.to_owned(), "approved-1".to_owned());
    operator.converge("recover once approved").await;
    check_recovered(&operator, &keys, &survivor, "approved-1").await;
}

/// Someone puts a certificate with the wrong names in pod 1's slot of the
/// members' Secret. The pod serves it (the node reloads its files), the
/// next reconcile issues pod 1 a proper one, and the pod serves that: no
/// pod restarts at any point, and the writers carry on.
async fn renew_a_certificate_in_place(operator: &mut Operator) {
    let platform = operator.platform();
    let cluster = operator.cluster.clone();
    let starts = platform.start_counts().await;
    let ca = platform
        .secret_data(&format!("{NAME}-ca"))
        .expect("the operator made its CA");
    let text = |bytes: &Vec<u8>| String::from_utf8(bytes.clone()).unwrap();
    let authority = Authority::from_pem(&CertifiedKey {
        cert_pem: text(&ca["ca.crt"]),
        key_pem: text(&ca["ca.key"]),
    })
    .unwrap();
    let planted = authority
        .issue(
            &LeafRequest {
                common_name: "cfg-1",
                dns_names: &["localhost".to_owned()],
                usage: Usage::Member,
            },
            std::time::SystemTime::now(),
        )
        .unwrap();
    let secret_name = member_secret_name(&cluster);
    let mut members = platform.secret_data(&secret_name).expect("members' Secret");
    members.insert("cfg-1.crt".into(), planted.cert_pem.clone().into_bytes());
    members.insert("cfg-1.key".into(), planted.key_pem.clone().into_bytes());
    platform
        .apply_secret(&cluster, &secret_name, &members)
        .await
        .unwrap();
    let url = platform.client_url(1).await.expect("pod 1 runs");
    wait_until_served(&url, &planted.cert_pem).await;

    operator.converge("renew pod 1's certificate").await;
    let renewed = operator
        .platform()
        .secret_data(&secret_name)
        .expect("members' Secret")["cfg-1.crt"]
        .clone();
    let renewed = text(&renewed);
    assert_ne!(renewed, planted.cert_pem, "the operator replaced it");
    assert_eq!(
        renewal_reason(
            &renewed,
            &member_dns_names(&cluster, 1),
            std::time::SystemTime::now()
        ),
        None,
        "with the names a member's certificate needs"
    );
    wait_until_served(&url, &renewed).await;
    assert_eq!(
        operator.platform().start_counts().await,
        starts,
        "no pod restarted"
    );
}

/// Waits until the node at `url` serves the certificate `cert_pem` to a
/// new connection.
async fn wait_until_served(url: &str, cert_pem: &str) {
    let wanted = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .expect("a PEM certificate");
    wait_for("the node to serve the new certificate", async || {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .tls_info(true)
            .timeout(Duration::from_secs(2))
            .build()
            .ok()?;
        let response = http.get(format!("{url}/healthz")).send().await.ok()?;
        let info = response.extensions().get::<reqwest::tls::TlsInfo>()?;
        (info.peer_certificate() == Some(wanted.as_ref())).then_some(())
    })
    .await;
}

/// With auth on: plain HTTP gets no answer, a client without credentials
/// gets 401, and root's password from the Secret signs in and writes.
async fn check_auth_is_required(operator: &Operator) {
    let url = operator.platform().client_url(0).await.expect("pod 0 runs");
    assert!(url.starts_with("https://"), "{url}");
    let plain = url.replacen("https://", "http://", 1);
    let answer = reqwest::Client::new()
        .get(format!("{plain}/v1/node"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        answer.is_err() || !answer.unwrap().status().is_success(),
        "plain HTTP was answered at {plain}"
    );

    let options = operator.platform().client_options(&operator.cluster);
    let anonymous = Client::with_options(
        [url.clone()],
        ClientOptions {
            tls: raftcfg_client::http::ClientTls {
                identity_pem: None,
                ..options.tls.clone()
            },
            ..options.clone()
        },
    )
    .unwrap();
    let refused = anonymous
        .put(
            "anonymous",
            bytes::Bytes::from_static(b"x"),
            Precondition::None,
        )
        .await
        .expect_err("a write without credentials is refused");
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(401), "{refused}");

    let root = operator
        .platform()
        .secret_data(&root_secret_name(&operator.cluster))
        .expect("the operator made the root Secret");
    let password = String::from_utf8(root[PASSWORD_KEY].clone()).unwrap();
    let signed_in = Client::with_options(
        [url],
        ClientOptions {
            credentials: Some(Credentials::Password {
                user: "root".to_owned(),
                password,
            }),
            tls: raftcfg_client::http::ClientTls {
                identity_pem: None,
                ..options.tls
            },
            ..ClientOptions::default()
        },
    )
    .unwrap();
    signed_in
        .put(
            "signed-in",
            bytes::Bytes::from_static(b"x"),
            Precondition::None,
        )
        .await
        .expect("root's password from the Secret signs in");
}

/// The HTTP client of the writers: plain, or trusting the cluster CA and
/// presenting the client certificate of `options`.
fn writer_http(options: Option<&ClientOptions>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(WRITE_TIMEOUT);
    if let Some(options) = options {
        let ca = options.tls.ca_pem.as_deref().expect("a CA");
        let identity = options.tls.identity_pem.as_deref().expect("an identity");
        builder = builder
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca).unwrap())
            .identity(reqwest::Identity::from_pem(identity).unwrap());
    }
    builder.build().expect("an HTTP client")
}

/// Back at 3 members, a follower's volume is lost behind the operator's
/// back: its pod restarts empty, as a new node. The operator must remove
/// the old member and add the new node in its place.
async fn replace_a_member_whose_volume_was_lost(operator: &mut Operator) {
    let status = operator.status();
    let leader = status.leader.clone().expect("a leader");
    let victim = (0..3)
        .rev()
        .find(|&k| pod_name(NAME, k) != leader)
        .expect("a follower");
    let victim_name = pod_name(NAME, victim);
    let old_id = member_id(&status, &victim_name);
    operator.platform().lose_volume(victim).await;
    let new_id = operator.node_status(victim).await.node_id;
    assert_ne!(new_id, old_id, "an empty data directory is a new node");

    operator
        .converge(&format!("replace {victim_name} (volume lost)"))
        .await;
    operator.check_pods_are_members().await;
    let status = operator.status();
    assert_eq!(
        member_id(&status, &victim_name),
        new_id,
        "{victim_name} is a member again as its new node"
    );
    let changes = &status.recent_changes; // newest first
    let position = |kind: ChangeKind, id: NodeId| {
        changes.iter().position(|c| {
            c.kind == kind && c.node_id == id.to_string() && c.outcome == ChangeOutcome::Committed
        })
    };
    let removed = position(ChangeKind::Remove, old_id)
        .unwrap_or_else(|| panic!("no committed Remove of node {old_id}: {changes:#?}"));
    assert!(
        changes[removed].reason.contains("volume"),
        "the removal gives the lost volume as its reason: {:?}",
        changes[removed].reason
    );
    let added = position(ChangeKind::AddLearner, new_id)
        .unwrap_or_else(|| panic!("no committed AddLearner of node {new_id}: {changes:#?}"));
    let promoted = position(ChangeKind::Promote, new_id)
        .unwrap_or_else(|| panic!("no committed Promote of node {new_id}: {changes:#?}"));
    assert!(
        promoted < added && added < removed,
        "remove, then add, then promote: {changes:#?}"
    );
    // Its Event stands apart from routine removals and names the member.
    let events = operator.platform().events();
    assert!(
        events.iter().any(|e| e.reason == "RemoveVolumeLost"
            && e.note.contains(&format!("node {old_id} ({victim_name})"))),
        "a RemoveVolumeLost event names node {old_id} ({victim_name}): {events:#?}"
    );
}

/// A new image (the same binary; only the configuration hash changes):
/// every pod is replaced exactly once, the leader's last.
async fn roll_every_pod_for_a_new_image(operator: &mut Operator) {
    let old_hash = config_hash(&operator.cluster.spec);
    let before = operator.platform().start_counts().await;
    operator.cluster.spec.image = "raftcfg:e2e-2".to_owned();
    operator.spec_changed();
    let new_hash = config_hash(&operator.cluster.spec);
    assert_ne!(new_hash, old_hash, "the image is part of the hash");

    operator.converge("roll to a new image").await;
    operator.check_pods_are_members().await;
    let pods = operator
        .platform()
        .pods(&operator.cluster)
        .await
        .expect("pods");
    assert_eq!(pods.pods.len(), 3);
    for pod in &pods.pods {
        assert_eq!(
            pod.config_hash.as_deref(),
            Some(new_hash.as_str()),
            "pod {} runs the new template",
            pod.ordinal
        );
    }
    let after = operator.platform().start_counts().await;
    for k in 0..3 {
        assert_eq!(
            after[&k] - before[&k],
            1,
            "pod {k} restarted exactly once (starts before {before:?}, after {after:?})"
        );
    }
    let steps = &operator.phases.last().expect("a phase").steps;
    let replaced: Vec<usize> = (0..steps.len())
        .filter(|&i| steps[i].starts_with("ReplacePod"))
        .collect();
    assert_eq!(replaced.len(), 3, "three pods replaced: {steps:?}");
    let transfer = steps
        .iter()
        .position(|s| s.starts_with("TransferLeadership"))
        .unwrap_or_else(|| panic!("the leader handed over before its pod went: {steps:?}"));
    assert!(
        replaced[1] < transfer && transfer < replaced[2],
        "followers first, the leader last after a transfer: {steps:?}"
    );
}

/// A RaftCluster `cfg` in namespace `e2e` with `replicas` members and the
/// default Raft timing (100 ms heartbeats, 1 s election timeout), except
/// snapshots every 1000 entries so that new members catch up from one.
fn cluster(replicas: i32) -> RaftCluster {
    let spec: RaftClusterSpec = serde_json::from_value(serde_json::json!({
        "replicas": replicas,
        "image": "raftcfg:e2e-1",
        "storage": {"size": "1Gi"},
        "raft": {
            "heartbeatIntervalMs": 100,
            "electionTimeoutMs": 1000,
            "snapshotThresholdEntries": 1000
        },
        "learnerTimeoutSeconds": 120
    }))
    .expect("a valid spec");
    let mut cluster = RaftCluster::new(NAME, spec);
    cluster.metadata.namespace = Some("e2e".to_owned());
    cluster.metadata.uid = Some("e2e-uid".to_owned());
    cluster.metadata.generation = Some(1);
    cluster
}

fn member_id(status: &RaftClusterStatus, name: &str) -> NodeId {
    status
        .members
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} is not a member: {:?}", status.members))
        .node_id
        .parse()
        .expect("a decimal node id")
}

/// The controller: a reconciler and the cluster object it reconciles.
struct Operator {
    reconciler: Reconciler<ProcessPlatform, RecordingNodes>,
    cluster: RaftCluster,
    phases: Vec<Phase>,
}

/// What happened in one phase.
struct Phase {
    name: String,
    replicas: i32,
    reconciles: u32,
    /// Steps carried out, as `StepName { fields }`.
    steps: Vec<String>,
    /// Reconciles that failed (retried like the controller would).
    errors: Vec<String>,
    elapsed: Duration,
}

impl Operator {
    fn new(cluster: RaftCluster) -> Self {
        Self {
            reconciler: {
                let platform = ProcessPlatform::new();
                let nodes = RecordingNodes::new(platform.service_endpoints());
                Reconciler::new(platform, nodes)
            },
            cluster,
            phases: Vec::new(),
        }
    }

    fn platform(&self) -> &ProcessPlatform {
        &self.reconciler.platform
    }

    fn status(&self) -> RaftClusterStatus {
        self.cluster.status.clone().unwrap_or_default()
    }

    /// A spec change: the API server bumps the generation.
    fn spec_changed(&mut self) {
        let generation = self.cluster.metadata.generation.unwrap_or(0);
        self.cluster.metadata.generation = Some(generation + 1);
    }

    /// Reconciles until the cluster matches its spec: the reconcile says
    /// `Done`, status shows `spec.replicas` members, all voters, healthy
    /// and caught up, nothing in flight, and exactly those pods run.
    async fn converge(&mut self, name: &str) {
        let started = Instant::now();
        let mut phase = Phase {
            name: name.to_owned(),
            replicas: self.cluster.spec.replicas,
            reconciles: 0,
            steps: Vec::new(),
            errors: Vec::new(),
            elapsed: Duration::ZERO,
        };
        loop {
            let result = self
                .reconciler
                .reconcile(&self.cluster, Timestamp::now())
                .await;
            phase.reconciles += 1;
            // The controller reads back the status it wrote.
            if let Some(status) = self.platform().last_status() {
                self.cluster.status = Some(status);
            }
            self.platform().refresh_service().await;
            let done = matches!(result, Ok(Outcome::Done)) && self.matches_spec().await;
            if done {
                break;
            }
            match result {
                Ok(Outcome::Acted(step)) => phase.steps.push(format!("{step:?}")),
                Ok(changed @ Outcome::ChangedAuth { .. }) => {
                    phase.steps.push(format!("{changed:?}"));
                }
                Ok(Outcome::Stopped) => {
                    let why = self.explain(&phase).await;
                    panic!("the operator stopped in {name}: {why}");
                }
                Ok(Outcome::Waiting | Outcome::Done) => {}
                Err(error) => phase.errors.push(error.to_string()),
            }
            if started.elapsed() >= patience(PHASE_DEADLINE) {
                let why = self.explain(&phase).await;
                panic!(
                    "{name} did not converge in {:?}: {why}",
                    patience(PHASE_DEADLINE)
                );
            }
            tokio::time::sleep(RECONCILE_INTERVAL).await;
        }
        phase.elapsed = started.elapsed();
        self.phases.push(phase);
    }

    async fn matches_spec(&self) -> bool {
        let replicas = self.cluster.spec.replicas;
        let status = self.status();
        let running = self.platform().running().await;
        status.replicas == replicas
            && status.ready_replicas == replicas
            && status.membership_change.is_none()
            && status
                .members
                .iter()
                .all(|m| m.healthy && m.role == MemberRole::Voter)
            && running == (0..replicas as u32).collect::<Vec<_>>()
    }

    /// Reconciles until the operator stops (halts for a person), and
    /// answers the status it wrote then.
    async fn reconcile_until_stopped(&mut self) -> RaftClusterStatus {
        let started = Instant::now();
        loop {
            let result = self
                .reconciler
                .reconcile(&self.cluster, Timestamp::now())
                .await;
            if let Some(status) = self.platform().last_status() {
                self.cluster.status = Some(status);
            }
            if matches!(result, Ok(Outcome::Stopped)) {
                return self.status();
            }
            assert!(
                started.elapsed() < patience(PHASE_DEADLINE),
                "the operator did not stop: {result:?}, {:?}",
                self.status().message
            );
            tokio::time::sleep(RECONCILE_INTERVAL).await;
        }
    }

    /// Every running pod `k` holds member `cfg-k` of the recorded cluster.
    async fn check_pods_are_members(&self) {
        let status = self.status();
        let cluster_id = status
            .recorded_cluster_id()
            .expect("a readable cluster id")
            .expect("a recorded cluster id");
        for k in self.platform().running().await {
            let node = self.node_status(k).await;
            let name = pod_name(NAME, k);
            assert_eq!(node.cluster_id, Some(cluster_id), "{name}'s cluster");
            assert_eq!(node.node_id, member_id(&status, &name), "{name}'s node id");
        }
    }

    async fn node_status(&self, ordinal: u32) -> raftcfg_client::wire::NodeStatus {
        let url = self
            .platform()
            .client_url(ordinal)
            .await
            .unwrap_or_else(|| panic!("pod {ordinal} is not running"));
        Client::with_options([url.clone()], self.platform().client_options(&self.cluster))
            .expect("a valid endpoint")
            .node_status_with_digest_of(&url)
            .await
            .unwrap_or_else(|e| panic!("status of pod {ordinal}: {e}"))
    }

    /// The status, the last events and errors, and the pods' log tails.
    async fn explain(&self, phase: &Phase) -> String {
        let status = self.status();
        let mut text = format!(
            "\nphase {:?}: {:?}\nmembers: {:#?}\nin flight: {:#?}\nrunning pods: {:?}\n\
             last steps: {:?}\nlast errors: {:#?}\nlast events:\n",
            status.phase,
            status.message,
            status.members,
            status.membership_change,
            self.platform().running().await,
            &phase.steps[phase.steps.len().saturating_sub(10)..],
            &phase.errors[phase.errors.len().saturating_sub(5)..],
        );
        let events = self.platform().events();
        for event in &events[events.len().saturating_sub(10)..] {
            let _ = writeln!(text, "  {}: {}", event.reason, event.note);
        }
        for k in self.platform().running().await {
            let tail = self.platform().log_tail(k).await;
            let _ = write!(text, "--- {} log ---\n{tail}\n", pod_name(NAME, k));
        }
        text
    }
}

/// What the writers saw.
#[derive(Debug, Default)]
struct Tally {
    acknowledged: u64,
    /// 503 answers, by error code.
    unavailable: BTreeMap<String, u64>,
    /// 504: the node stopped waiting; the write may or may not happen.
    outcome_unknown: u64,
    /// No answer within [`WRITE_TIMEOUT`].
    timeouts: u64,
    /// The connection could not be made (a pod that just stopped).
    refused: u64,
    /// The connection broke mid-request.
    broken: u64,
    /// 410 `removed`: a member removed from the cluster (nothing happened).
    removed: u64,
    /// Anything else: not retryable, so a failure of the test.
    unexpected: Vec<String>,
    last_acknowledged: Option<Instant>,
    /// The longest time between two acknowledged writes of any writer.
    longest_outage: Duration,
}

impl Tally {
    fn acknowledge(&mut self) {
        let now = Instant::now();
        if let Some(last) = self.last_acknowledged {
            self.longest_outage = self.longest_outage.max(now - last);
        }
        self.last_acknowledged = Some(now);
        self.acknowledged += 1;
    }

    fn retryable_failures(&self) -> u64 {
        self.unavailable.values().sum::<u64>()
            + self.outcome_unknown
            + self.timeouts
            + self.refused
            + self.broken
            + self.removed
    }
}

/// Writers of unique keys (`{prefix}/{writer}/{n}`, value = key) through
/// the client Service's endpoints in turn, like
/// `support::workload::UniqueWriters`, but also tallying every answer that
/// is not an acknowledgement by kind. A writer pauses briefly after a
/// refusal, as a client honouring `Retry-After` would.
struct Writers {
    acknowledged: Arc<Mutex<Vec<String>>>,
    tally: Arc<Mutex<Tally>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What the writers did, once stopped.
struct Load {
    acknowledged: Vec<String>,
    tally: Tally,
}

impl Writers {
    fn start(
        writers: usize,
        prefix: &str,
        endpoints: Arc<Mutex<Vec<String>>>,
        stop: Arc<AtomicBool>,
        http: reqwest::Client,
    ) -> Self {
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let tasks = (0..writers)
            .map(|writer| {
                let (endpoints, acknowledged, tally, stop, http) = (
                    endpoints.clone(),
                    acknowledged.clone(),
                    tally.clone(),
                    stop.clone(),
                    http.clone(),
                );
                let prefix = prefix.to_owned();
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let endpoint = {
                            let endpoints = endpoints.lock().unwrap();
                            (!endpoints.is_empty()).then(|| endpoints[n % endpoints.len()].clone())
                        };
                        let Some(endpoint) = endpoint else {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        };
                        n += 1;
                        let key = format!("{prefix}/{writer}/{n}");
                        let answer = http
                            .put(format!("{endpoint}/v1/kv/{key}"))
                            .body(key.clone())
                            .send()
                            .await;
                        let pause = match answer {
                            Ok(response) if response.status() == 200 => {
                                acknowledged.lock().unwrap().push(key);
                                tally.lock().unwrap().acknowledge();
                                false
                            }
                            Ok(response) if response.status() == 503 => {
                                let code = error_code(response).await;
                                *tally.lock().unwrap().unavailable.entry(code).or_default() += 1;
                                true
                            }
                            Ok(response) if response.status() == 504 => {
                                tally.lock().unwrap().outcome_unknown += 1;
                                false
                            }
                            Ok(response) if response.status() == 410 => {
                                let status = response.status();
                                let code = error_code(response).await;
                                if code == "removed" {
                                    tally.lock().unwrap().removed += 1;
                                } else {
                                    let answer =
                                        format!("PUT {key} via {endpoint}: {status} {code}");
                                    tally.lock().unwrap().unexpected.push(answer);
                                }
                                true
                            }
                            Ok(response) => {
                                let status = response.status();
                                let body = response.text().await.unwrap_or_default();
                                let answer = format!("PUT {key} via {endpoint}: {status} {body}");
                                tally.lock().unwrap().unexpected.push(answer);
                                true
                            }
                            Err(e) if e.is_timeout() => {
                                tally.lock().unwrap().timeouts += 1;
                                false
                            }
                            Err(e) if e.is_connect() => {
                                tally.lock().unwrap().refused += 1;
                                true
                            }
                            Err(_) => {
                                tally.lock().unwrap().broken += 1;
                                true
                            }
                        };
                        if pause {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                })
            })
            .collect();
        Self {
            acknowledged,
            tally,
            tasks,
        }
    }

    /// Waits for the writers (after `stop` was set).
    async fn join(self) -> Load {
        for task in self.tasks {
            task.await.expect("a writer panicked");
        }
        let acknowledged = std::mem::take(&mut *self.acknowledged.lock().unwrap());
        let tally = std::mem::take(&mut *self.tally.lock().unwrap());
        Load {
            acknowledged,
            tally,
        }
    }
}

/// The `error.code` of an error answer.
async fn error_code(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    body["error"]["code"]
        .as_str()
        .unwrap_or("(no code)")
        .to_owned()
}

/// Reads every acknowledged key linearizably through the Service; the
/// keys that are missing or hold another value (or could not be read).
async fn check_every_acknowledged_write(operator: &Operator, keys: &[String]) -> Vec<String> {
    let endpoints = operator
        .platform()
        .service_endpoints()
        .lock()
        .unwrap()
        .clone();
    let options = operator.platform().client_options(&operator.cluster);
    let client = Client::with_options(endpoints, options).expect("valid endpoints");
    futures::stream::iter(keys)
        .map(|key| {
            let client = client.clone();
            async move {
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match client.get(key, Consistency::Linearizable).await {
                        Ok(Some(value)) if value.bytes == key.as_bytes() => return None,
                        Ok(Some(value)) => {
                            return Some(format!(
                                "{key} = {:?}",
                                String::from_utf8_lossy(&value.bytes)
                            ));
                        }
                        Ok(None) => return Some(format!("{key} is missing")),
                        Err(_) if attempt < 5 => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => return Some(format!("{key} could not be read: {e}")),
                    }
                }
            }
        })
        .buffer_unordered(READS_IN_FLIGHT)
        .filter_map(|problem| async move { problem })
        .collect()
        .await
}

/// Once the writes stop, every member applies the same state.
async fn check_members_agree(operator: &Operator) {
    let running = operator.platform().running().await;
    wait_for("the members to apply the same state", async || {
        let mut states = Vec::new();
        for &k in &running {
            let status = operator.node_status(k).await;
            states.push((status.applied, status.state_digest));
        }
        states.windows(2).all(|w| w[0] == w[1]).then_some(())
    })
    .await;
}

/// Each membership call started after the previous one was answered, no
/// leader refused one because another was in flight, and no member was
/// removed while the client Service still sent it clients.
fn check_membership_calls(calls: &[MembershipCall]) {
    assert!(!calls.is_empty(), "the operator changed no membership");
    for pair in calls.windows(2) {
        assert!(
            pair[1].started >= pair[0].ended,
            "two membership calls overlapped: {:#?}",
            pair
        );
    }
    let refused: Vec<_> = calls
        .iter()
        .filter(|c| c.code() == Some("membership_change_in_progress"))
        .collect();
    assert!(
        refused.is_empty(),
        "the operator asked for a membership change while another was in flight: {refused:#?}"
    );
    let removals: Vec<_> = calls
        .iter()
        .filter(|c| matches!(c.operation, MembershipOperation::Remove))
        .collect();
    assert!(
        removals.iter().all(|c| c.removed_url.is_some()),
        "the leader did not list a member the operator removed: {removals:#?}"
    );
    let served: Vec<_> = removals
        .iter()
        .filter(|c| c.removed_while_in_service)
        .collect();
    assert!(
        served.is_empty(),
        "members were removed while the client Service still listed them: {served:#?}"
    );
}

fn print_summary(
    operator: &Operator,
    load: &Load,
    calls: &[MembershipCall],
    verify: Duration,
    elapsed: Duration,
) {
    println!("\n=== operator end-to-end summary ===");
    let mut reconciles = 0;
    let mut steps = 0;
    for phase in &operator.phases {
        reconciles += phase.reconciles;
        steps += phase.steps.len();
        println!(
            "{:<32} replicas {} | {:>5.1} s | {:>3} reconciles | {:>2} errors | steps: {}",
            phase.name,
            phase.replicas,
            phase.elapsed.as_secs_f64(),
            phase.reconciles,
            phase.errors.len(),
            phase
                .steps
                .iter()
                .map(|s| s.split(' ').next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for error in &phase.errors {
            println!("    reconcile error: {error}");
        }
    }
    println!("reconciles: {reconciles}, steps: {steps}");
    let ok = |op: MembershipOperation| {
        calls
            .iter()
            .filter(|c| c.operation == op && c.result.is_ok())
            .count()
    };
    println!(
        "membership calls: {} ({} add, {} promote, {} remove committed); transfers: {}",
        calls.len(),
        ok(MembershipOperation::AddLearner),
        ok(MembershipOperation::Promote),
        ok(MembershipOperation::Remove),
        operator.reconciler.nodes.transfers().len(),
    );
    for call in calls {
        if let Err(error) = &call.result {
            println!(
                "    {:?} of node {} via {} at {:?}: {:?} {:?} {}",
                call.operation,
                call.node_id,
                call.url,
                call.started,
                error.status,
                error.code,
                error.message
            );
        }
    }
    let tally = &load.tally;
    println!(
        "writes acknowledged: {} ({} keys checked), retryable failures: {} \
         (503 {:?}, 504 {}, timeouts {}, refused {}, broken {}, 410 removed {}); other: {}",
        tally.acknowledged,
        load.acknowledged.len(),
        tally.retryable_failures(),
        tally.unavailable,
        tally.outcome_unknown,
        tally.timeouts,
        tally.refused,
        tally.broken,
        tally.removed,
        tally.unexpected.len()
    );
    println!(
        "longest time without an acknowledged write: {:.2} s",
        tally.longest_outage.as_secs_f64()
    );
    println!(
        "final check: {:.1} s; whole test: {:.1} s",
        verify.as_secs_f64(),
        elapsed.as_secs_f64()
    );
}
