//! The reconcile loop on [`KubePlatform`] against a mocked API server: each
//! test asserts the exact requests one reconcile makes (method, path and
//! query, content type, JSON body) and their order, with the raftcfg nodes
//! replaced by [`FakeNodes`], which answer from canned replies and log each
//! call in the same log as the API server, so the order of a status write
//! and a membership change can be checked.
//!
//! The cluster is `prod/config`; pod `config-k` runs node `k + 1` at
//! `http://10.0.0.1k:7379`, and node 1 leads whenever there is a leader.

#[path = "support/mock_api.rs"]
mod mock_api;

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::Reporter;
use raftcfg_client::http::{ClientError, StatusCode};
use raftcfg_client::wire::{
    AddMemberRequest, BootstrapResponse, ClusterId, ForceNewClusterResponse, LogIndex, Member,
    MemberList, MemberRole, MembershipResponse, NodeId, NodeStatus, Term, TransferLeaderResponse,
};
use raftcfg_operator::crd::{AuthSettings, IssuerKind, IssuerRef, RaftCluster, TlsSettings};
use raftcfg_operator::credentials::Access;
use raftcfg_operator::kube_platform::KubePlatform;
use raftcfg_operator::planner::Step;
use raftcfg_operator::reconcile::{Outcome, ReconcileError, Reconciler};
use raftcfg_operator::resources;
use raftcfg_operator::world::{Event, Nodes, Platform as _};
use serde::Serialize;
use serde_json::{Value, json};

use mock_api::{
    Answer, Log, MockApi, apply, apply_any, delete, entries, failure, get, merge_patch, not_found,
    ok, post,
};

/// The time of the reconcile under test, and times before and after it.
const EARLIER: &str = "2025-01-02T03:00:00Z";
const NOW: &str = "2025-01-02T03:04:05Z";
const LATER: &str = "2025-01-02T03:04:35Z";

const STATEFULSET: &str = "/apis/apps/v1/namespaces/prod/statefulsets/config";
const PODS: &str = "/api/v1/namespaces/prod/pods?labelSelector=app.kubernetes.io/instance=config,app.kubernetes.io/name=raftcfg";
const CLAIMS: &str = "/api/v1/namespaces/prod/persistentvolumeclaims?labelSelector=app.kubernetes.io/instance=config,app.kubernetes.io/name=raftcfg";
const APPLY_PEER_SERVICE: &str =
    "/api/v1/namespaces/prod/services/config-peer?fieldManager=raftcfg-operator&force=true";
const APPLY_CLIENT_SERVICE: &str =
    "/api/v1/namespaces/prod/services/config-client?fieldManager=raftcfg-operator&force=true";
const APPLY_BUDGET: &str = "/apis/policy/v1/namespaces/prod/poddisruptionbudgets/config?fieldManager=raftcfg-operator&force=true";
const APPLY_NETWORK_POLICY: &str = "/apis/networking.k8s.io/v1/namespaces/prod/networkpolicies/config?fieldManager=raftcfg-operator&force=true";
const APPLY_STATEFULSET: &str =
    "/apis/apps/v1/namespaces/prod/statefulsets/config?fieldManager=raftcfg-operator&force=true";
const APPLY_STATUS: &str = "/apis/raftcfg.io/v1alpha1/namespaces/prod/raftclusters/config/status?fieldManager=raftcfg-operator&force=true";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/prod/events";
const SELECTOR: &str = "app.kubernetes.io/instance=config,app.kubernetes.io/name=raftcfg";

const SECRET_CA: &str = "/api/v1/namespaces/prod/secrets/config-ca";
const SECRET_TLS: &str = "/api/v1/namespaces/prod/secrets/config-tls";
const SECRET_OPERATOR: &str = "/api/v1/namespaces/prod/secrets/config-operator-tls";
const SECRET_ROOT: &str = "/api/v1/namespaces/prod/secrets/config-root";
const APPLY_SECRET_CA: &str =
    "/api/v1/namespaces/prod/secrets/config-ca?fieldManager=raftcfg-operator&force=true";
const APPLY_SECRET_TLS: &str =
    "/api/v1/namespaces/prod/secrets/config-tls?fieldManager=raftcfg-operator&force=true";
const APPLY_SECRET_OPERATOR: &str =
    "/api/v1/namespaces/prod/secrets/config-operator-tls?fieldManager=raftcfg-operator&force=true";
const APPLY_SECRET_ROOT: &str =
    "/api/v1/namespaces/prod/secrets/config-root?fieldManager=raftcfg-operator&force=true";
const APPLY_MEMBERS_CERTIFICATE: &str = "/apis/cert-manager.io/v1/namespaces/prod/certificates/config-members?fieldManager=raftcfg-operator&force=true";
const APPLY_OPERATOR_CERTIFICATE: &str = "/apis/cert-manager.io/v1/namespaces/prod/certificates/config-operator?fieldManager=raftcfg-operator&force=true";

const POD_0: &str = "10.0.0.10";
const POD_1: &str = "10.0.0.11";
const POD_2: &str = "10.0.0.12";
const CLUSTER_ID: u64 = 7;

#[tokio::test]
async fn a_new_cluster_gets_its_services_and_budget_then_a_statefulset_of_one() {
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let reconciler = reconciler(client, FakeNodes::new(&log));
    let rc = cluster(3, Value::Null);

    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(NOW)),
            async |api: &mut MockApi| expect_first_scale(api, &rc, NOW).await,
        )
        .await;

    assert_eq!(
        outcome.expect("the reconcile succeeds"),
        Outcome::Acted(Step::ScaleStatefulSet { replicas: 1 })
    );
    assert_eq!(
        entries(&log),
        [
            line("GET", STATEFULSET),
            line("GET", PODS),
            line("GET", CLAIMS),
            line("PATCH", APPLY_PEER_SERVICE),
            line("PATCH", APPLY_CLIENT_SERVICE),
            line("PATCH", APPLY_BUDGET),
            line("PATCH", APPLY_NETWORK_POLICY),
            line("GET", STATEFULSET),
            line("PATCH", APPLY_STATEFULSET),
            line("POST", EVENTS),
            line("PATCH", APPLY_STATUS),
        ]
    );
}

/// A new cluster with TLS and auth: before anything else the operator
/// makes its CA, the members' certificates, its own client certificate
/// and the root password, each in a Secret the cluster owns; a second
/// reconcile reads them back and writes none again.
#[tokio::test]
async fn a_new_cluster_with_tls_and_auth_gets_its_secrets_once() {
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let reconciler = reconciler(client, FakeNodes::new(&log));
    let mut rc = cluster(3, Value::Null);
    rc.spec.tls = Some(TlsSettings {
        enabled: true,
        issuer_ref: None,
    });
    rc.spec.auth = Some(AuthSettings { enabled: true });

    let mut written = HashMap::new();
    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(NOW)),
            async |api: &mut MockApi| {
                for (get_uri, apply_uri) in [
                    (SECRET_CA, APPLY_SECRET_CA),
                    (SECRET_TLS, APPLY_SECRET_TLS),
                    (SECRET_OPERATOR, APPLY_SECRET_OPERATOR),
                    (SECRET_ROOT, APPLY_SECRET_ROOT),
                ] {
                    api.expect(get(get_uri), not_found()).await;
                    let secret = api.expect(apply_any(apply_uri), Answer::Echo).await;
                    written.insert(get_uri, secret);
                }
                expect_first_scale(api, &rc, NOW).await;
            },
        )
        .await;
    assert_eq!(
        outcome.expect("the reconcile succeeds"),
        Outcome::Acted(Step::ScaleStatefulSet { replicas: 1 })
    );
    for (name, secret) in &written {
        assert_eq!(secret["kind"], "Secret", "{name}");
        assert_eq!(secret["type"], "Opaque", "{name}");
        let owner = &secret["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "RaftCluster", "{name} is owned");
        assert_eq!(owner["controller"], true, "{name}");
    }
    let keys = |name: &str| -> Vec<String> {
        let mut keys: Vec<String> = written[name]["data"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(SECRET_CA), ["ca.crt", "ca.key"]);
    assert_eq!(keys(SECRET_OPERATOR), ["ca.crt", "tls.crt", "tls.key"]);
    assert_eq!(keys(SECRET_ROOT), ["password", "username"]);
    let members = keys(SECRET_TLS);
    assert_eq!(members.len(), 1 + 2 * 9, "{members:?}");
    assert!(members.contains(&"config-8.key".to_owned()), "{members:?}");
    assert_eq!(
        written[SECRET_TLS]["data"]["ca.crt"], written[SECRET_CA]["data"]["ca.crt"],
        "the pods trust the cluster CA"
    );
    assert_eq!(written[SECRET_ROOT]["data"]["username"], "cm9vdA==", "root");

    // The next reconcile finds them all and writes none.
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let reconciler = self::reconciler(client, FakeNodes::new(&log));
    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(LATER)),
            async |api: &mut MockApi| {
                for uri in [SECRET_CA, SECRET_TLS, SECRET_OPERATOR, SECRET_ROOT] {
                    api.expect(get(uri), ok(written[uri].clone())).await;
                }
                expect_first_scale(api, &rc, LATER).await;
            },
        )
        .await;
    assert_eq!(
        outcome.expect("the reconcile succeeds"),
        Outcome::Acted(Step::ScaleStatefulSet { replicas: 1 })
    );
    assert!(
        !entries(&log)
            .iter()
            .any(|e| e.contains("/secrets/") && e.starts_with("PATCH")),
        "no Secret written again: {:?}",
        entries(&log)
    );
}

/// With a cert-manager issuer the operator applies the two Certificates
/// and waits, doing nothing else, until cert-manager wrote its Secret.
#[tokio::test]
async fn with_cert_manager_the_operator_waits_for_its_certificate() {
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let reconciler = reconciler(client, FakeNodes::new(&log));
    let mut rc = cluster(3, Value::Null);
    rc.spec.tls = Some(TlsSettings {
        enabled: true,
        issuer_ref: Some(IssuerRef {
            name: "company-ca".into(),
            kind: IssuerKind::ClusterIssuer,
            group: "cert-manager.io".into(),
        }),
    });
    let certificates = resources::certificates(&rc);

    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(NOW)),
            async |api: &mut MockApi| {
                for (uri, certificate) in [APPLY_MEMBERS_CERTIFICATE, APPLY_OPERATOR_CERTIFICATE]
                    .into_iter()
                    .zip(&certificates)
                {
                    applied(api, uri, json_of(certificate)).await;
                }
                api.expect(get(SECRET_OPERATOR), not_found()).await;
            },
        )
        .await;
    let error = outcome.expect_err("the reconcile waits for cert-manager");
    assert!(
        error
            .to_string()
            .contains("cert-manager has not issued it yet"),
        "{error}"
    );
}

/// Events of one reason about different members stay apart (each is
/// created); only the very same note again joins its series.
#[tokio::test]
async fn events_of_one_reason_stay_apart_unless_their_notes_match() {
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let reporter = Reporter {
        controller: "raftcfg-operator".into(),
        instance: Some("raftcfg-operator-0".into()),
    };
    let platform = KubePlatform::new(client, reporter);
    let rc = cluster(3, Value::Null);
    let remove = |member: &str| Event {
        warning: false,
        reason: "Remove".into(),
        note: format!("removing node 5 ({member}) committed at log index 9: scale in"),
    };
    let mut names = Vec::new();
    for member in ["config-4", "config-2"] {
        let event = remove(member);
        api.run(
            platform.publish(&rc, event.clone()),
            async |api: &mut MockApi| {
                let posted = api.expect(post(EVENTS), Answer::Echo).await;
                assert_eq!(posted["reason"], "Remove");
                assert_eq!(posted["action"], event.note.as_str());
                names.push(posted["metadata"]["name"].as_str().unwrap().to_owned());
            },
        )
        .await
        .expect("published");
    }
    assert_ne!(names[0], names[1], "two events");
    // The same note again: the recorder adds to config-2's event.
    let path: &'static str = Box::leak(format!("{EVENTS}/{}", names[1]).into_boxed_str());
    api.run(
        platform.publish(&rc, remove("config-2")),
        async |api: &mut MockApi| {
            let patch = api.expect(merge_patch(path), Answer::Echo).await;
            assert_eq!(patch["series"]["count"], 2, "{patch}");
        },
    )
    .await
    .expect("published");
}

#[tokio::test]
async fn an_uninitialized_pod_0_is_bootstrapped_and_the_cluster_id_recorded_as_a_decimal_string() {
    bootstrap_pod_0(POD_0, "http://10.0.0.10:7379").await;
}

#[tokio::test]
async fn a_pod_with_an_ipv6_address_is_reached_at_a_bracketed_url() {
    bootstrap_pod_0("fd00::10", "http://[fd00::10]:7379").await;
}

/// Pod 0 at `ip` answers at `url` as an uninitialized node; one reconcile
/// bootstraps it and records a cluster id too large for a JSON number.
async fn bootstrap_pod_0(ip: &str, url: &str) {
    let cluster_id = 17_000_000_000_000_000_001;
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let nodes = FakeNodes::new(&log)
        .node(url, node(1, None, None))
        .bootstrap(Ok(BootstrapResponse {
            cluster_id: ClusterId(cluster_id),
            node_id: NodeId(1),
        }));
    let reconciler = reconciler(client, nodes);
    let rc = cluster(3, Value::Null);
    let message = "bootstrapping the cluster on config-0";

    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(NOW)),
            async |api: &mut MockApi| {
                expect_observe_and_apply(api, &rc, Some(1), &[ip], 0).await;
                let note = "bootstrapped cluster 17000000000000000001 on node 1";
                expect_event(api, "Normal", "Bootstrap", note).await;
                expect_status(
                    api,
                    &rc,
                    json!({
                        "phase": "Pending",
                        "clusterId": "17000000000000000001",
                        "replicas": 0,
                        "readyReplicas": 0,
                        "selector": SELECTOR,
                        "message": message,
                        "conditions": [
                            condition("Available", false, "NoQuorum", NO_QUORUM, NOW),
                            condition("Degraded", false, "Bootstrap", message, NOW),
                            condition("Progressing", true, "Bootstrap", message, NOW),
                        ],
                        "observedGeneration": 4,
                    }),
                )
                .await;
            },
        )
        .await;

    assert_eq!(
        outcome.expect("the reconcile succeeds"),
        Outcome::Acted(Step::Bootstrap)
    );
    assert_eq!(
        entries(&log),
        [
            line("GET", STATEFULSET),
            line("GET", PODS),
            line("GET", CLAIMS),
            format!("status {url}"),
            line("PATCH", APPLY_PEER_SERVICE),
            line("PATCH", APPLY_CLIENT_SERVICE),
            line("PATCH", APPLY_BUDGET),
            line("PATCH", APPLY_NETWORK_POLICY),
            line("GET", STATEFULSET),
            line("PATCH", APPLY_STATEFULSET),
            format!("bootstrap {url}"),
            line("POST", EVENTS),
            line("PATCH", APPLY_STATUS),
        ]
    );
}

#[tokio::test]
async fn a_garbled_cluster_id_in_status_is_degraded_and_kept_never_bootstrapped_over() {
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    // Pod 0 is empty: were the garbage read as "no cluster", it would be
    // bootstrapped (the fake panics on any bootstrap).
    let nodes = FakeNodes::new(&log).node(&url(POD_0), node(1, None, None));
    let reconciler = reconciler(client, nodes);
    let rc = cluster(3, json!({"clusterId": "7x"}));
    let message = "status.clusterId is \"7x\", which is not a cluster id; the operator takes no step until the status is corrected (kubectl edit --subresource=status raftcluster config)";

    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(NOW)),
            async |api: &mut MockApi| {
                expect_observe_and_apply(api, &rc, Some(1), &[POD_0], 0).await;
                expect_event(api, "Warning", "Waiting", message).await;
                expect_status(
                    api,
                    &rc,
                    json!({
                        "phase": "Degraded",
                        "clusterId": "7x",
                        "replicas": 0,
                        "readyReplicas": 0,
                        "selector": SELECTOR,
                        "message": message,
                        "conditions": [
                            condition("Available", false, "NoQuorum", NO_QUORUM, NOW),
                            condition("Degraded", true, "UnreadableStatus", message, NOW),
                            condition("Progressing", false, "UnreadableStatus", message, NOW),
                        ],
                        "observedGeneration": 4,
                    }),
                )
                .await;
            },
        )
        .await;

    assert_eq!(outcome.expect("the reconcile succeeds"), Outcome::Waiting);
    let node_calls: Vec<String> = entries(&log)
        .into_iter()
        .filter(|call| call.contains(":7379"))
        .collect();
    assert_eq!(
        node_calls,
        [format!("status {}", url(POD_0))],
        "the node is only read"
    );
}

#[tokio::test]
async fn a_healthy_one_member_cluster_asked_for_three_grows_its_statefulset_to_two() {
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let nodes = FakeNodes::new(&log)
        .node(&url(POD_0), node(1, Some(CLUSTER_ID), Some(1)))
        .members(
            &url(POD_0),
            member_list(10, false, vec![voter(1, true, 10)]),
        );
    let reconciler = reconciler(client, nodes);
    let available = condition("Available", true, "QuorumHealthy", QUORUM, EARLIER);
    let rc = cluster(
        3,
        json!({"clusterId": "7", "phase": "Running", "conditions": [available]}),
    );
    let message = "scaling StatefulSet config to 2";

    let outcome = api
        .run(reconciler.reconcile(&rc, at(NOW)), async |api: &mut MockApi| {
            expect_observe_and_apply(api, &rc, Some(1), &[POD_0], 1).await;
            let statefulset = json_of(resources::statefulset(&rc, 2));
            applied(api, APPLY_STATEFULSET, statefulset).await;
            let note = "StatefulSet scaled to 2 replicas";
            expect_event(api, "Normal", "ScaleStatefulSet", note).await;
            expect_status(
                api,
                &rc,
                json!({
                    "phase": "Scaling",
                    "clusterId": "7",
                    "leader": "config-0",
                    "members": [
                        {"name": "config-0", "nodeId": "1", "role": "Voter", "healthy": true, "lag": 0},
                    ],
                    "replicas": 1,
                    "readyReplicas": 1,
                    "selector": SELECTOR,
                    "message": message,
                    "conditions": [
                        // The condition held, so it keeps its transition time.
                        condition("Available", true, "QuorumHealthy", QUORUM, EARLIER),
                        condition("Degraded", false, "ScaleStatefulSet", message, NOW),
                        condition("Progressing", true, "ScaleStatefulSet", message, NOW),
                    ],
                    "observedGeneration": 4,
                    "lastCommitIndex": 10,
                }),
            )
            .await;
        })
        .await;

    assert_eq!(
        outcome.expect("the reconcile succeeds"),
        Outcome::Acted(Step::ScaleStatefulSet { replicas: 2 })
    );
    assert_eq!(
        entries(&log),
        [
            line("GET", STATEFULSET),
            line("GET", PODS),
            line("GET", CLAIMS),
            format!("status {}", url(POD_0)),
            format!("members {}", url(POD_0)),
            line("PATCH", APPLY_PEER_SERVICE),
            line("PATCH", APPLY_CLIENT_SERVICE),
            line("PATCH", APPLY_BUDGET),
            line("PATCH", APPLY_NETWORK_POLICY),
            line("GET", STATEFULSET),
            line("PATCH", APPLY_STATEFULSET),
            line("PATCH", APPLY_STATEFULSET),
            line("POST", EVENTS),
            line("PATCH", APPLY_STATUS),
        ]
    );
}

#[tokio::test]
async fn a_caught_up_learner_is_promoted_only_after_the_intent_is_written_to_status() {
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let nodes = learner_cluster(&log).promote(Ok(MembershipResponse {
        index: LogIndex(21),
    }));
    let reconciler = reconciler(client, nodes);
    let rc = cluster(3, learner_seen_earlier());
    let intent = promote_intent();

    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(NOW)),
            async |api: &mut MockApi| {
                expect_observe_and_apply(api, &rc, Some(2), &[POD_0, POD_1], 2).await;
                expect_status(api, &rc, intent.clone()).await;
                let note = "promoting node 2 (config-1) committed at log index 21: caught up";
                expect_event(api, "Normal", "Promote", note).await;
                let written = api
                    .expect(mock_api::apply_any(APPLY_STATUS), ok(json_of(&rc)))
                    .await;

                let mut expected = intent.clone();
                let status = expected.as_object_mut().expect("an object");
                status.remove("membershipChange");
                // The change finishes at the reconcile's `now`.
                let finished_at = json!(NOW);
                status.insert(
                    "recentChanges".into(),
                    json!([{
                        "kind": "Promote",
                        "nodeId": "2",
                        "name": "config-1",
                        "reason": "caught up",
                        "startedAt": NOW,
                        "finishedAt": finished_at,
                        "logIndex": 21,
                        "outcome": "Committed",
                    }]),
                );
                assert_json(&written, &status_patch(expected));
            },
        )
        .await;

    assert_eq!(
        outcome.expect("the reconcile succeeds"),
        Outcome::Acted(Step::Promote {
            node_id: NodeId(2),
            name: "config-1".into()
        })
    );
    assert_eq!(
        entries(&log),
        [
            line("GET", STATEFULSET),
            line("GET", PODS),
            line("GET", CLAIMS),
            format!("status {}", url(POD_0)),
            format!("status {}", url(POD_1)),
            format!("members {}", url(POD_0)),
            line("PATCH", APPLY_PEER_SERVICE),
            line("PATCH", APPLY_CLIENT_SERVICE),
            line("PATCH", APPLY_BUDGET),
            line("PATCH", APPLY_NETWORK_POLICY),
            line("GET", STATEFULSET),
            line("PATCH", APPLY_STATEFULSET),
            line("PATCH", APPLY_STATUS),
            format!("promote {} 2", url(POD_0)),
            line("POST", EVENTS),
            line("PATCH", APPLY_STATUS),
        ],
        "the intent is written before the leader is asked"
    );
}

/// The intent to change membership is a compare-and-swap on the
/// resourceVersion read at the start of the reconcile: if another writer
/// (a second operator replica during a Lease handover) changed the cluster
/// since, the write fails and no node is asked for a change.
#[tokio::test]
async fn a_membership_change_is_not_asked_for_if_the_cluster_changed_since_it_was_read() {
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let nodes = learner_cluster(&log).promote(Ok(MembershipResponse {
        index: LogIndex(21),
    }));
    let reconciler = reconciler(client, nodes);
    let mut rc = cluster(3, learner_seen_earlier());
    rc.metadata.resource_version = Some("41".into());
    let mut intent = status_patch(promote_intent());
    intent["metadata"] = json!({"resourceVersion": "41"});

    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(NOW)),
            async |api: &mut MockApi| {
                expect_observe_and_apply(api, &rc, Some(2), &[POD_0, POD_1], 2).await;
                api.expect(apply(APPLY_STATUS, intent), failure(409, "Conflict"))
                    .await;
            },
        )
        .await;

    assert!(outcome.is_err(), "the reconcile fails: {outcome:?}");
    assert!(
        !entries(&log).iter().any(|call| call.starts_with("promote")),
        "no node was asked: {:?}",
        entries(&log)
    );
}

#[tokio::test]
async fn a_promote_without_an_answer_stays_in_flight_and_is_recorded_committed_once_the_leader_shows_a_voter()
 {
    let unknown = ClientError::UnknownOutcome {
        operation: "promotion of node 2".into(),
        endpoint: url(POD_0),
        reason: "connection reset".into(),
    };
    let in_flight = promote_that_fails(unknown).await;
    let both_voters = || vec![voter(1, true, 30), voter(2, true, 30)];

    // While the leader reports the configuration entry uncommitted, the
    // operator waits and keeps the change in flight.
    let rc = cluster(3, in_flight);
    let message = "waiting for a membership change to commit";
    let mut waiting = promote_intent();
    let fields = waiting.as_object_mut().expect("an object");
    fields.remove("learners");
    fields.insert(
        "members".into(),
        json!([member_status(1, "Voter", 0), member_status(2, "Voter", 0)]),
    );
    fields.insert("message".into(), json!(message));
    // The leader's commit index, as the last reconcile saw it.
    fields.insert("lastCommitIndex".into(), json!(30));
    fields.insert(
        "conditions".into(),
        json!([
            condition("Available", true, "QuorumHealthy", QUORUM, NOW),
            condition("Degraded", false, "ChangeInFlight", message, NOW),
            condition("Progressing", true, "ChangeInFlight", message, NOW),
        ]),
    );
    let (outcome, written) =
        reconcile_promoted(&rc, member_list(30, true, both_voters()), None, waiting).await;
    assert_eq!(outcome.expect("the reconcile succeeds"), Outcome::Waiting);

    // Once it is committed, the change is recorded as committed.
    let rc = cluster(3, written["status"].clone());
    let message = "the membership change committed";
    let mut finished = written["status"].clone();
    let fields = finished.as_object_mut().expect("an object");
    let mut change = fields
        .remove("membershipChange")
        .expect("the change in flight");
    change["outcome"] = json!("Committed");
    change["finishedAt"] = json!(LATER);
    fields.insert("recentChanges".into(), json!([change]));
    fields.insert("message".into(), json!(message));
    // The leader's commit index, as the last reconcile saw it.
    fields.insert("lastCommitIndex".into(), json!(30));
    fields.insert(
        "conditions".into(),
        json!([
            condition("Available", true, "QuorumHealthy", QUORUM, NOW),
            condition("Degraded", false, "FinishChange", message, NOW),
            condition("Progressing", true, "FinishChange", message, NOW),
        ]),
    );
    let note = "promoting node 2 (config-1) committed: caught up";
    let event = Some(("Normal", "Promote", note));
    let (outcome, _) =
        reconcile_promoted(&rc, member_list(30, false, both_voters()), event, finished).await;
    assert_eq!(
        outcome.expect("the reconcile succeeds"),
        Outcome::Acted(Step::FinishChange { committed: true })
    );
}

#[tokio::test]
async fn a_promote_that_failed_with_a_server_error_is_recorded_failed_while_the_learner_stays_a_learner()
 {
    let server_error = ClientError::Api {
        endpoint: url(POD_0),
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: Some("internal".into()),
        message: "the node failed".into(),
        retry_after: None,
    };
    let in_flight = promote_that_fails(server_error).await;

    let rc = cluster(3, in_flight.clone());
    let message = "the membership change did not take effect";
    let mut failed = in_flight;
    let fields = failed.as_object_mut().expect("an object");
    let mut change = fields
        .remove("membershipChange")
        .expect("the change in flight");
    change["outcome"] = json!("Failed");
    change["finishedAt"] = json!(LATER);
    change["message"] = json!("the change did not take effect");
    fields.insert("recentChanges".into(), json!([change]));
    fields.insert("message".into(), json!(message));
    // The leader's commit index, as the last reconcile saw it.
    fields.insert("lastCommitIndex".into(), json!(30));
    fields.insert(
        "conditions".into(),
        json!([
            condition("Available", true, "QuorumHealthy", QUORUM, NOW),
            condition("Degraded", false, "FinishChange", message, NOW),
            condition("Progressing", true, "FinishChange", message, NOW),
        ]),
    );
    let members = member_list(30, false, vec![voter(1, true, 30), learner(2, true, 28)]);
    let note = "promoting node 2 (config-1) did not take effect";
    let event = Some(("Warning", "Promote", note));
    let (outcome, _) = reconcile_promoted(&rc, members, event, failed).await;
    assert_eq!(
        outcome.expect("the reconcile succeeds"),
        Outcome::Acted(Step::FinishChange { committed: false })
    );
}

/// Runs the promotion of [`learner_cluster`] with the leader answering
/// `error`: the reconcile fails after writing the intent, and nothing is
/// written after it. Returns the status last written.
async fn promote_that_fails(error: ClientError) -> Value {
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let nodes = learner_cluster(&log).promote(Err(error));
    let reconciler = reconciler(client, nodes);
    let rc = cluster(3, learner_seen_earlier());

    let mut written = Value::Null;
    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(NOW)),
            async |api: &mut MockApi| {
                expect_observe_and_apply(api, &rc, Some(2), &[POD_0, POD_1], 2).await;
                written = expect_status(api, &rc, promote_intent()).await;
            },
        )
        .await;

    match outcome {
        Err(ReconcileError::Node { operation, url, .. }) => {
            assert_eq!(operation, "membership change");
            assert_eq!(url, self::url(POD_0));
        }
        other => panic!("expected the promotion to fail, got {other:?}"),
    }
    let calls = entries(&log);
    assert_eq!(
        calls[calls.len() - 2..],
        [
            line("PATCH", APPLY_STATUS),
            format!("promote {} 2", url(POD_0))
        ],
        "the intent is the last status written"
    );
    assert_eq!(written["status"]["membershipChange"]["outcome"], "InFlight");
    written["status"].clone()
}

/// One reconcile at [`LATER`] of `rc` (two pods, a Promote in flight in its
/// status) with the leader reporting `members`: it applies the owned
/// objects, writes `expected` as status and touches no node. Returns the
/// outcome and the status patch.
async fn reconcile_promoted(
    rc: &RaftCluster,
    members: MemberList,
    event: Option<(&str, &str, &str)>,
    expected: Value,
) -> (Result<Outcome, ReconcileError>, Value) {
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let nodes = FakeNodes::new(&log)
        .node(&url(POD_0), node(1, Some(CLUSTER_ID), Some(1)))
        .node(&url(POD_1), node(2, Some(CLUSTER_ID), Some(1)))
        .members(&url(POD_0), members);
    let reconciler = reconciler(client, nodes);
    let mut written = Value::Null;
    let outcome = api
        .run(
            reconciler.reconcile(rc, at(LATER)),
            async |api: &mut MockApi| {
                expect_observe_and_apply(api, rc, Some(2), &[POD_0, POD_1], 2).await;
                if let Some((kind, reason, note)) = event {
                    expect_event(api, kind, reason, note).await;
                }
                written = expect_status(api, rc, expected).await;
            },
        )
        .await;
    assert!(
        !entries(&log).iter().any(|call| call.starts_with("promote")),
        "no node is asked for a change: {:?}",
        entries(&log)
    );
    (outcome, written)
}

#[tokio::test]
async fn an_invalid_spec_applies_nothing_and_says_why_in_status() {
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let reconciler = reconciler(client, FakeNodes::new(&log));
    let mut rc = cluster(3, json!({"clusterId": "7"}));
    // The API server would refuse this; a cluster read from an older CRD
    // or a server without the schema may still carry it.
    rc.spec.replicas = 0;
    let problem = "replicas must be between 1 and 9, not 0";
    let invalid = json!({
        "phase": "Invalid",
        "clusterId": "7",
        "replicas": 0,
        "readyReplicas": 0,
        "message": format!("invalid spec: {problem}"),
        "conditions": [
            condition("Degraded", true, "InvalidSpec", problem, NOW),
            condition("Progressing", false, "InvalidSpec", problem, NOW),
        ],
        "observedGeneration": 4,
    });

    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(NOW)),
            async |api: &mut MockApi| {
                expect_event(api, "Warning", "InvalidSpec", problem).await;
                expect_status(api, &rc, invalid.clone()).await;
            },
        )
        .await;
    assert_eq!(outcome.expect("the reconcile succeeds"), Outcome::Stopped);
    assert_eq!(
        entries(&log),
        [line("POST", EVENTS), line("PATCH", APPLY_STATUS)],
        "nothing is read or applied, and no node is asked"
    );

    // The same problem is not announced again.
    rc.status = Some(serde_json::from_value(invalid.clone()).expect("a status"));
    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(LATER)),
            async |api: &mut MockApi| {
                expect_status(api, &rc, invalid.clone()).await;
            },
        )
        .await;
    assert_eq!(outcome.expect("the reconcile succeeds"), Outcome::Stopped);
}

#[tokio::test]
async fn a_quorum_of_unhealthy_voters_stops_every_step_and_warns() {
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let members = vec![
        voter(1, true, 100),
        voter(2, false, 90),
        voter(3, false, 80),
    ];
    let nodes = FakeNodes::new(&log)
        .node(&url(POD_0), node(1, Some(CLUSTER_ID), Some(1)))
        .members(&url(POD_0), member_list(100, false, members));
    let reconciler = reconciler(client, nodes);
    let rc = cluster(
        3,
        json!({"clusterId": "7", "phase": "Running", "message": "3 members, all healthy and up to date"}),
    );
    let message = "waiting: only 1 of 3 voters are healthy, fewer than a quorum; no step is taken";

    let outcome = api
        .run(reconciler.reconcile(&rc, at(NOW)), async |api: &mut MockApi| {
            expect_observe_and_apply(api, &rc, Some(3), &[POD_0, POD_1, POD_2], 3).await;
            expect_event(api, "Warning", "Waiting", message).await;
            expect_status(
                api,
                &rc,
                json!({
                    "phase": "Degraded",
                    "clusterId": "7",
                    "leader": "config-0",
                    "members": [
                        member_status(1, "Voter", 0),
                        {"name": "config-1", "nodeId": "2", "role": "Voter", "healthy": false, "lag": 10},
                        {"name": "config-2", "nodeId": "3", "role": "Voter", "healthy": false, "lag": 20},
                    ],
                    "replicas": 3,
                    "readyReplicas": 1,
                    "selector": SELECTOR,
                    "message": message,
                    "conditions": [
                        condition("Available", false, "NoQuorum", NO_QUORUM, NOW),
                        condition("Degraded", true, "QuorumUnhealthy", message, NOW),
                        condition("Progressing", false, "QuorumUnhealthy", message, NOW),
                    ],
                    "observedGeneration": 4,
                    "lastCommitIndex": 100,
                }),
            )
            .await;
        })
        .await;

    assert_eq!(outcome.expect("the reconcile succeeds"), Outcome::Waiting);
    let node_calls: Vec<String> = entries(&log)
        .into_iter()
        .filter(|call| call.contains(":7379"))
        .collect();
    assert_eq!(
        node_calls,
        [
            format!("status {}", url(POD_0)),
            format!("status {}", url(POD_1)),
            format!("status {}", url(POD_2)),
            format!("members {}", url(POD_0)),
        ],
        "the nodes are only read"
    );
}

#[tokio::test]
async fn a_pod_holding_data_of_a_former_member_loses_its_claim_before_the_pod() {
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let nodes = FakeNodes::new(&log)
        .node(&url(POD_0), node(1, Some(CLUSTER_ID), Some(1)))
        // Node 9 was config-1 once and was removed; its data is still there.
        .node(
            &url(POD_1),
            NodeStatus {
                name: "config-1".into(),
                ..node(9, Some(CLUSTER_ID), None)
            },
        )
        .members(&url(POD_0), member_list(10, false, vec![voter(1, true, 10)]));
    let reconciler = reconciler(client, nodes);
    let rc = cluster(2, json!({"clusterId": "7"}));
    let message = "deleting the volume of config-1: it holds node 9, which is no longer a member";

    let outcome = api
        .run(reconciler.reconcile(&rc, at(NOW)), async |api: &mut MockApi| {
            expect_observe_and_apply(api, &rc, Some(2), &[POD_0, POD_1], 1).await;
            // A claim already gone is fine: the pod is deleted all the same.
            let claim = "/api/v1/namespaces/prod/persistentvolumeclaims/data-config-1";
            api.expect(delete(claim), not_found()).await;
            let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "config-1", "namespace": "prod"}});
            api.expect(delete("/api/v1/namespaces/prod/pods/config-1"), ok(pod))
                .await;
            let note = "pod 1 held the data of node 9, which is no longer a member; its volume was deleted";
            expect_event(api, "Warning", "WipePod", note).await;
            expect_status(
                api,
                &rc,
                json!({
                    "phase": "Scaling",
                    "clusterId": "7",
                    "leader": "config-0",
                    "members": [member_status(1, "Voter", 0)],
                    "replicas": 1,
                    "readyReplicas": 1,
                    "selector": SELECTOR,
                    "message": message,
                    "conditions": [
                        condition("Available", true, "QuorumHealthy", QUORUM, NOW),
                        condition("Degraded", false, "WipePod", message, NOW),
                        condition("Progressing", true, "WipePod", message, NOW),
                    ],
                    "observedGeneration": 4,
                    "lastCommitIndex": 10,
                }),
            )
            .await;
        })
        .await;

    assert_eq!(
        outcome.expect("the reconcile succeeds"),
        Outcome::Acted(Step::WipePod {
            ordinal: 1,
            node_id: NodeId(9)
        })
    );
}

/// Scaling 3 → 2: the reconcile labels pod 2 out of the client Service
/// (before applying the Services), and waits rather than removing its
/// member, which a later reconcile does once it sees the pod out. Pod 0,
/// made before the label existed, is labelled in.
#[tokio::test]
async fn a_member_leaving_by_scale_in_leaves_the_client_service_before_it_is_removed() {
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let members = vec![
        voter(1, true, 100),
        voter(2, true, 100),
        voter(3, true, 100),
    ];
    let nodes = FakeNodes::new(&log)
        .node(&url(POD_0), node(1, Some(CLUSTER_ID), Some(1)))
        .node(&url(POD_1), node(2, Some(CLUSTER_ID), Some(1)))
        .node(&url(POD_2), node(3, Some(CLUSTER_ID), Some(1)))
        .members(&url(POD_0), member_list(100, false, members));
    let reconciler = reconciler(client, nodes);
    let rc = cluster(2, json!({"clusterId": "7"}));
    let ips = [POD_0, POD_1, POD_2];

    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(NOW)),
            async |api: &mut MockApi| {
                let statefulset = json_of(resources::statefulset(&rc, 3));
                api.expect(get(STATEFULSET), ok(statefulset)).await;
                let serving = [None, Some("true"), Some("true")];
                let pods = labelled_pod_list(&rc, &ips, &serving);
                api.expect(get(PODS), ok(pods)).await;
                api.expect(get(CLAIMS), ok(claim_list(3))).await;
                expect_serving_label(api, "/api/v1/namespaces/prod/pods/config-0", "true").await;
                expect_serving_label(api, "/api/v1/namespaces/prod/pods/config-2", "false").await;
                expect_apply(api, &rc, Some(3), 3).await;
                let status = api.expect(apply_any(APPLY_STATUS), ok(json_of(&rc))).await;
                assert_eq!(
                    status["status"]["message"],
                    "waiting for config-2 to leave the client Service before its member is removed"
                );
            },
        )
        .await;
    assert_eq!(outcome.expect("the reconcile succeeds"), Outcome::Waiting);
    assert!(
        !entries(&log).iter().any(|call| call.starts_with("remove")),
        "nothing is removed while the pod is in the Service"
    );
}

#[tokio::test]
async fn the_budget_counts_only_voters_while_a_learner_catches_up() {
    let log = mock_api::log();
    let (client, mut api) = mock_api::client(&log);
    let members = vec![
        voter(1, true, 1000),
        voter(2, true, 1000),
        learner(3, true, 0),
    ];
    let nodes = FakeNodes::new(&log)
        .node(&url(POD_0), node(1, Some(CLUSTER_ID), Some(1)))
        .node(&url(POD_1), node(2, Some(CLUSTER_ID), Some(1)))
        .node(&url(POD_2), node(3, Some(CLUSTER_ID), Some(1)))
        .members(&url(POD_0), member_list(1000, false, members));
    let reconciler = reconciler(client, nodes);
    let rc = cluster(3, json!({"clusterId": "7"}));
    let message = "waiting for learner node 3 to catch up (1000 entries behind)";
    // Two voters tolerate no failure: a drain must not evict any pod.
    assert_eq!(
        json_of(resources::pod_disruption_budget(&rc, 2))["spec"]["maxUnavailable"],
        0
    );

    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(NOW)),
            async |api: &mut MockApi| {
                expect_observe_and_apply(api, &rc, Some(3), &[POD_0, POD_1, POD_2], 2).await;
                expect_status(
                    api,
                    &rc,
                    json!({
                        "phase": "Scaling",
                        "clusterId": "7",
                        "leader": "config-0",
                        "members": [
                            member_status(1, "Voter", 0),
                            member_status(2, "Voter", 0),
                            member_status(3, "Learner", 1000),
                        ],
                        "replicas": 3,
                        "readyReplicas": 2,
                        "selector": SELECTOR,
                        "learners": [{"nodeId": "3", "since": NOW}],
                        "message": message,
                        "conditions": [
                            condition("Available", true, "QuorumHealthy", QUORUM, NOW),
                            condition("Degraded", false, "LearnerCatchingUp", message, NOW),
                            condition("Progressing", true, "LearnerCatchingUp", message, NOW),
                        ],
                        "observedGeneration": 4,
                        "lastCommitIndex": 1000,
                    }),
                )
                .await;
            },
        )
        .await;
    assert_eq!(outcome.expect("the reconcile succeeds"), Outcome::Waiting);
}

/// Three voters recorded; pods 1 and 2 came back empty (new nodes 8 and
/// 9), pod 0 still holds node 1 with log index 120 at term 6, and no
/// leader was seen since [`EARLIER`], more than the grace period ago.
fn quorum_lost(policy: &str, annotation: Option<&str>) -> (RaftCluster, FakeNodes, Log) {
    let log = mock_api::log();
    let survivor = NodeStatus {
        last_index: LogIndex(120),
        last_term: Term(6),
        commit: LogIndex(100),
        ..node(1, Some(CLUSTER_ID), None)
    };
    let empty = |id: u64, name: &str| NodeStatus {
        name: name.into(),
        ..node(id, None, None)
    };
    let nodes = FakeNodes::new(&log)
        .node(&url(POD_0), survivor)
        .node(&url(POD_1), empty(8, "config-1"))
        .node(&url(POD_2), empty(9, "config-2"));
    let mut rc = cluster(
        3,
        json!({
            "clusterId": "7",
            "members": [
                member_status(1, "Voter", 0),
                member_status(2, "Voter", 0),
                member_status(3, "Voter", 0),
            ],
            "lastCommitIndex": 130,
            "quorumLostSince": EARLIER,
            "conditions": [condition("Available", false, "QuorumLost", NO_QUORUM, EARLIER)],
        }),
    );
    rc.spec.recovery.quorum_loss = serde_json::from_value(json!(policy)).expect("a policy");
    rc.spec.recovery.grace_period_seconds = 60;
    if let Some(value) = annotation {
        rc.metadata.annotations =
            Some([(resources::RECOVER_ANNOTATION.to_owned(), value.to_owned())].into());
    }
    (rc, nodes, log)
}

/// `Automatic`: the operator forces a new cluster on the survivor and
/// records what was kept and what may be lost, with a warning Event.
#[tokio::test]
async fn with_automatic_recovery_a_lost_quorum_is_recovered_from_the_survivor() {
    let (rc, nodes, log) = quorum_lost("Automatic", None);
    let (client, mut api) = mock_api::client(&log);
    let reconciler = reconciler(client, nodes);

    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(NOW)),
            async |api: &mut MockApi| {
                expect_observe_and_apply(api, &rc, Some(3), &[POD_0, POD_1, POD_2], 0).await;
                // The decision is on record before the node is asked.
                let pending = api.expect(apply_any(APPLY_STATUS), ok(json_of(&rc))).await;
                assert_eq!(pending["status"]["lastRecovery"]["survivor"], "config-0");
                assert_eq!(
                    pending["status"]["members"].as_array().map(Vec::len),
                    Some(3)
                );
                let event = api.expect(post(EVENTS), Answer::Echo).await;
                assert_eq!(event["reason"], "ForceNewCluster");
                assert_eq!(event["type"], "Warning");
                let note = event["note"].as_str().expect("a note");
                assert!(note.contains("recovered from config-0 (node 1)"), "{note}");
                assert!(note.contains("entries 121..=130 were committed"), "{note}");
                let status = api.expect(apply_any(APPLY_STATUS), ok(json_of(&rc))).await;
                let recovery = &status["status"]["lastRecovery"];
                assert_eq!(recovery["survivor"], "config-0");
                assert_eq!(recovery["nodeId"], "1");
                assert_eq!(recovery["lastIndex"], 120);
                assert_eq!(recovery["lastTerm"], 6);
                assert_eq!(recovery["lostMembers"], json!(["config-1", "config-2"]));
                assert_eq!(recovery["trigger"], "Automatic");
                assert_eq!(
                    status["status"]["members"],
                    json!([{"name": "config-0", "nodeId": "1", "role": "Voter", "healthy": false}]),
                    "the survivor alone is the membership now (not yet seen leading)"
                );
                assert_eq!(status["status"]["phase"], "Degraded");
            },
        )
        .await;
    assert!(matches!(
        outcome.expect("the reconcile succeeds"),
        Outcome::Acted(Step::ForceNewCluster { ordinal: 0, .. })
    ));
    let calls = entries(&log);
    let forced = format!("force_new_cluster {}", url(POD_0));
    let asked = calls
        .iter()
        .position(|c| *c == forced)
        .expect("the node was asked");
    assert_eq!(
        calls[asked - 1],
        line("PATCH", APPLY_STATUS),
        "the status is written just before"
    );
}

/// A survivor that refuses (it found a leader meanwhile) recovers nothing:
/// the decision written before asking it is taken back.
#[tokio::test]
async fn a_survivor_that_refuses_to_recover_leaves_no_recovery_on_record() {
    let (rc, nodes, log) = quorum_lost("Automatic", None);
    let nodes = nodes.refuse_to_force(ClientError::Api {
        endpoint: url(POD_0),
        status: StatusCode::CONFLICT,
        code: Some("has_leader".into()),
        message: "node 2 leads this cluster, so it has a quorum".into(),
        retry_after: None,
    });
    let (client, mut api) = mock_api::client(&log);
    let reconciler = reconciler(client, nodes);
    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(NOW)),
            async |api: &mut MockApi| {
                expect_observe_and_apply(api, &rc, Some(3), &[POD_0, POD_1, POD_2], 0).await;
                let pending = api.expect(apply_any(APPLY_STATUS), ok(json_of(&rc))).await;
                assert_eq!(pending["status"]["lastRecovery"]["survivor"], "config-0");
                let last = api.expect(apply_any(APPLY_STATUS), ok(json_of(&rc))).await;
                assert!(last["status"].get("lastRecovery").is_none(), "{last}");
                let message = last["status"]["message"].as_str().expect("a message");
                assert!(message.contains("config-0 did not recover"), "{message}");
                assert_eq!(last["status"]["members"].as_array().map(Vec::len), Some(3));
            },
        )
        .await;
    assert!(matches!(
        outcome.expect("the reconcile succeeds"),
        Outcome::Acted(Step::ForceNewCluster { ordinal: 0, .. })
    ));
}

/// `Manual`: past the grace period the operator only says how to approve;
/// the annotation approves one recovery, and neither a value already used
/// nor the value it had when the quorum was lost approves another.
#[tokio::test]
async fn with_manual_recovery_a_lost_quorum_waits_for_the_annotation() {
    for (annotation, before_loss) in [
        (None, None),
        (Some("used-before"), None),
        (Some("old"), Some("old")),
    ] {
        let (mut rc, nodes, log) = quorum_lost("Manual", annotation);
        if let Some(status) = &mut rc.status {
            status.approval_before_loss = before_loss.map(str::to_owned);
            status.last_recovery = Some(
                serde_json::from_value(json!({
                    "survivor": "config-0", "nodeId": "1", "lastIndex": 5, "lastTerm": 1,
                    "lostMembers": ["config-1"], "possiblyLost": "nothing",
                    "trigger": "used-before", "at": EARLIER,
                }))
                .expect("a recovery"),
            );
        }
        let (client, mut api) = mock_api::client(&log);
        let reconciler = reconciler(client, nodes);
        let outcome = api
            .run(reconciler.reconcile(&rc, at(NOW)), async |api: &mut MockApi| {
                expect_observe_and_apply(api, &rc, Some(3), &[POD_0, POD_1, POD_2], 0).await;
                let event = api.expect(post(EVENTS), Answer::Echo).await;
                assert_eq!(event["reason"], "Waiting");
                let status = api.expect(apply_any(APPLY_STATUS), ok(json_of(&rc))).await;
                let message = status["status"]["message"].as_str().expect("a message");
                assert!(
                    message.contains("only 1 of 3 voters run with their data")
                        && message.contains("kubectl annotate --overwrite rcfg/config raftcfg.io/recover-quorum="),
                    "{message}"
                );
            })
            .await;
        assert_eq!(outcome.expect("the reconcile succeeds"), Outcome::Waiting);
        assert!(
            !entries(&log)
                .iter()
                .any(|c| c.starts_with("force_new_cluster")),
            "nothing is forced without a new annotation value ({annotation:?})"
        );
    }
    let (rc, nodes, log) = quorum_lost("Manual", Some("2026-12-04"));
    let (client, mut api) = mock_api::client(&log);
    let reconciler = reconciler(client, nodes);
    let outcome = api
        .run(
            reconciler.reconcile(&rc, at(NOW)),
            async |api: &mut MockApi| {
                expect_observe_and_apply(api, &rc, Some(3), &[POD_0, POD_1, POD_2], 0).await;
                api.expect(apply_any(APPLY_STATUS), ok(json_of(&rc))).await;
                api.expect(post(EVENTS), Answer::Echo).await;
                let status = api.expect(apply_any(APPLY_STATUS), ok(json_of(&rc))).await;
                assert_eq!(status["status"]["lastRecovery"]["trigger"], "2026-12-04");
            },
        )
        .await;
    assert!(matches!(
        outcome.expect("the reconcile succeeds"),
        Outcome::Acted(Step::ForceNewCluster { ordinal: 0, .. })
    ));
}

// ---------------------------------------------------------------------------
// The cluster, its pods and its nodes.

const QUORUM: &str = "a quorum of voters is healthy";
const NO_QUORUM: &str = "no healthy quorum of voters is known";

fn at(time: &str) -> Timestamp {
    time.parse().expect("a timestamp")
}

/// `prod/config` at generation 4 with `replicas` and `status` (`null` for
/// none).
fn cluster(replicas: i32, status: Value) -> RaftCluster {
    serde_json::from_value(json!({
        "apiVersion": "raftcfg.io/v1alpha1",
        "kind": "RaftCluster",
        "metadata": {"name": "config", "namespace": "prod", "uid": "uid-1", "generation": 4},
        "spec": {
            "replicas": replicas,
            "image": "ghcr.io/example/raftcfg:0.1.0",
            "storage": {"size": "1Gi"},
        },
        "status": status,
    }))
    .expect("a RaftCluster")
}

/// The status of a cluster whose learner, node 2, was first seen at
/// [`EARLIER`].
fn learner_seen_earlier() -> Value {
    json!({"clusterId": "7", "learners": [{"nodeId": "2", "since": EARLIER}]})
}

/// Node 1 leads; node 2 is a healthy learner 2 entries behind.
fn learner_cluster(log: &Log) -> FakeNodes {
    let members = vec![voter(1, true, 20), learner(2, true, 18)];
    FakeNodes::new(log)
        .node(&url(POD_0), node(1, Some(CLUSTER_ID), Some(1)))
        .node(&url(POD_1), node(2, Some(CLUSTER_ID), Some(1)))
        .members(&url(POD_0), member_list(20, false, members))
}

/// The status written before node 2 of [`learner_cluster`] is promoted.
fn promote_intent() -> Value {
    let message = "promoting config-1 (node 2) to voter";
    json!({
        "phase": "Scaling",
        "clusterId": "7",
        "leader": "config-0",
        "members": [member_status(1, "Voter", 0), member_status(2, "Learner", 2)],
        "replicas": 2,
        "readyReplicas": 2,
        "selector": SELECTOR,
        "membershipChange": {
            "kind": "Promote",
            "nodeId": "2",
            "name": "config-1",
            "reason": "caught up",
            "startedAt": NOW,
            "outcome": "InFlight",
        },
        "learners": [{"nodeId": "2", "since": EARLIER}],
        "message": message,
        "conditions": [
            condition("Available", true, "QuorumHealthy", QUORUM, NOW),
            condition("Degraded", false, "Promote", message, NOW),
            condition("Progressing", true, "Promote", message, NOW),
        ],
        "observedGeneration": 4,
        "lastCommitIndex": 20,
    })
}

/// The pods `config-0..` at `ips`, with the current template's hash.
/// The data volume claims of pods `0..n`.
fn claim_list(n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|ordinal| {
            json!({"metadata": {"name": format!("data-config-{ordinal}"), "namespace": "prod"}})
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaimList", "metadata": {}, "items": items})
}

fn pod_list(rc: &RaftCluster, ips: &[&str]) -> Value {
    let serving = vec![Some("true"); ips.len()];
    labelled_pod_list(rc, ips, &serving)
}

/// Like [`pod_list`], each pod with its `raftcfg.io/serving` label as
/// `serving` gives it (`None`: no such label).
fn labelled_pod_list(rc: &RaftCluster, ips: &[&str], serving: &[Option<&str>]) -> Value {
    let hash = resources::config_hash(&rc.spec);
    let items: Vec<Value> = ips
        .iter()
        .zip(serving)
        .enumerate()
        .map(|(ordinal, (ip, serving))| {
            let labels = match serving {
                Some(value) => json!({"raftcfg.io/serving": value}),
                None => json!({}),
            };
            json!({
                "metadata": {
                    "name": format!("config-{ordinal}"),
                    "namespace": "prod",
                    "annotations": {"raftcfg.io/config-hash": hash},
                    "labels": labels,
                },
                "status": {"phase": "Running", "podIP": ip},
            })
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
}

/// The client URL the platform gives a pod at `ip`.
fn url(ip: &str) -> String {
    format!("http://{ip}:7379")
}

fn node(node_id: u64, cluster_id: Option<u64>, leader_id: Option<u64>) -> NodeStatus {
    NodeStatus {
        node_id: NodeId(node_id),
        cluster_id: cluster_id.map(ClusterId),
        name: format!("config-{}", node_id - 1),
        role: if leader_id == Some(node_id) {
            "leader"
        } else {
            "follower"
        }
        .into(),
        term: Term(5),
        commit: LogIndex(0),
        applied: LogIndex(0),
        last_index: LogIndex(0),
        last_term: Term(0),
        snapshot_index: LogIndex(0),
        leader_id: leader_id.map(NodeId),
        state_digest: None,
    }
}

fn member(id: u64, role: MemberRole, healthy: bool, match_index: u64) -> Member {
    Member {
        id: NodeId(id),
        name: format!("config-{}", id - 1),
        peer_url: format!("http://config-{}.config-peer.prod.svc:7380", id - 1),
        client_url: format!("http://config-{}.config-peer.prod.svc:7379", id - 1),
        role,
        leader: id == 1,
        match_index: Some(LogIndex(match_index)),
        healthy: Some(healthy),
    }
}

fn voter(id: u64, healthy: bool, match_index: u64) -> Member {
    member(id, MemberRole::Voter, healthy, match_index)
}

fn learner(id: u64, healthy: bool, match_index: u64) -> Member {
    member(id, MemberRole::Learner, healthy, match_index)
}

/// Node 1's member list.
fn member_list(commit_index: u64, pending: bool, members: Vec<Member>) -> MemberList {
    MemberList {
        members,
        leader_id: Some(NodeId(1)),
        commit_index: LogIndex(commit_index),
        membership_change_pending: pending,
    }
}

/// A healthy member in status.
fn member_status(id: u64, role: &str, lag: u64) -> Value {
    json!({"name": format!("config-{}", id - 1), "nodeId": id.to_string(), "role": role, "healthy": true, "lag": lag})
}

fn condition(kind: &str, value: bool, reason: &str, message: &str, since: &str) -> Value {
    json!({
        "type": kind,
        "status": if value { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": 4,
    })
}

/// The raftcfg nodes, answering from canned replies and logging every call
/// as `<call> <url>`. A node without a canned status does not answer; a
/// change without a canned answer fails the test.
struct FakeNodes {
    log: Log,
    statuses: HashMap<String, NodeStatus>,
    members: HashMap<String, MemberList>,
    bootstrap: Mutex<Option<Result<BootstrapResponse, ClientError>>>,
    promote: Mutex<Option<Result<MembershipResponse, ClientError>>>,
    /// Forcing a new cluster fails with this, if set.
    force_refusal: Mutex<Option<ClientError>>,
}

impl FakeNodes {
    fn new(log: &Log) -> Self {
        Self {
            log: log.clone(),
            statuses: HashMap::new(),
            members: HashMap::new(),
            bootstrap: Mutex::new(None),
            promote: Mutex::new(None),
            force_refusal: Mutex::new(None),
        }
    }

    fn node(mut self, url: &str, status: NodeStatus) -> Self {
        self.statuses.insert(url.to_string(), status);
        self
    }

    fn members(mut self, url: &str, list: MemberList) -> Self {
        self.members.insert(url.to_string(), list);
        self
    }

    fn bootstrap(self, answer: Result<BootstrapResponse, ClientError>) -> Self {
        *self.bootstrap.lock().expect("lock") = Some(answer);
        self
    }

    fn refuse_to_force(self, error: ClientError) -> Self {
        *self.force_refusal.lock().expect("lock") = Some(error);
        self
    }

    fn promote(self, answer: Result<MembershipResponse, ClientError>) -> Self {
        *self.promote.lock().expect("lock") = Some(answer);
        self
    }

    fn record(&self, call: String) {
        self.log.lock().expect("log lock").push(call);
    }

    fn refused(url: &str) -> ClientError {
        ClientError::Transport {
            detail: format!("{url}: connection refused"),
        }
    }
}

impl Nodes for FakeNodes {
    async fn status(&self, url: &str, _access: &Access) -> Result<NodeStatus, ClientError> {
        self.record(format!("status {url}"));
        self.statuses
            .get(url)
            .cloned()
            .ok_or_else(|| Self::refused(url))
    }

    async fn members(&self, url: &str, _access: &Access) -> Result<MemberList, ClientError> {
        self.record(format!("members {url}"));
        self.members
            .get(url)
            .cloned()
            .ok_or_else(|| Self::refused(url))
    }

    async fn bootstrap(
        &self,
        url: &str,
        _access: &Access,
    ) -> Result<BootstrapResponse, ClientError> {
        self.record(format!("bootstrap {url}"));
        let answer = self.bootstrap.lock().expect("lock").take();
        answer.unwrap_or_else(|| panic!("unexpected bootstrap at {url}"))
    }

    async fn add_learner(
        &self,
        url: &str,
        _access: &Access,
        request: &AddMemberRequest,
    ) -> Result<MembershipResponse, ClientError> {
        panic!("unexpected add_learner at {url}: {request:?}")
    }

    async fn promote(
        &self,
        url: &str,
        _access: &Access,
        node_id: NodeId,
    ) -> Result<MembershipResponse, ClientError> {
        self.record(format!("promote {url} {node_id}"));
        let answer = self.promote.lock().expect("lock").take();
        answer.unwrap_or_else(|| panic!("unexpected promote of {node_id} at {url}"))
    }

    async fn remove(
        &self,
        url: &str,
        _access: &Access,
        node_id: NodeId,
    ) -> Result<MembershipResponse, ClientError> {
        panic!("unexpected remove of {node_id} at {url}")
    }

    async fn transfer_leader(
        &self,
        url: &str,
        _access: &Access,
        to: NodeId,
    ) -> Result<TransferLeaderResponse, ClientError> {
        panic!("unexpected transfer_leader to {to} at {url}")
    }

    async fn force_new_cluster(
        &self,
        url: &str,
        _access: &Access,
    ) -> Result<ForceNewClusterResponse, ClientError> {
        self.record(format!("force_new_cluster {url}"));
        if let Some(error) = self.force_refusal.lock().expect("lock").take() {
            return Err(error);
        }
        let survivor = self.statuses.get(url).expect("a survivor that answers");
        Ok(ForceNewClusterResponse {
            cluster_id: survivor.cluster_id.expect("a member"),
            node_id: survivor.node_id,
            removed: Vec::new(),
            last_index: survivor.last_index,
            last_term: survivor.last_term,
            commit: survivor.commit,
        })
    }

    async fn auth_enabled(&self, url: &str, _access: &Access) -> Result<bool, ClientError> {
        panic!("unexpected auth status at {url}")
    }

    async fn enable_auth(
        &self,
        url: &str,
        _access: &Access,
        _password: &str,
    ) -> Result<(), ClientError> {
        panic!("unexpected auth enable at {url}")
    }

    async fn disable_auth(&self, url: &str, _access: &Access) -> Result<(), ClientError> {
        panic!("unexpected auth disable at {url}")
    }
}

fn reconciler(client: kube::Client, nodes: FakeNodes) -> Reconciler<KubePlatform, FakeNodes> {
    let reporter = Reporter {
        controller: "raftcfg-operator".into(),
        instance: Some("raftcfg-operator-0".into()),
    };
    Reconciler::new(KubePlatform::new(client, reporter), nodes)
}

// ---------------------------------------------------------------------------
// Expected requests.

fn json_of(value: impl Serialize) -> Value {
    serde_json::to_value(value).expect("JSON")
}

/// `METHOD /path` as the log records a request to `uri`.
fn line(method: &str, uri: &str) -> String {
    let path = uri.split('?').next().unwrap_or(uri);
    format!("{method} {path}")
}

fn assert_json(actual: &Value, expected: &Value) {
    assert!(
        actual == expected,
        "sent: {}\nexpected: {}",
        mock_api::pretty(actual),
        mock_api::pretty(expected)
    );
}

/// A server-side apply of `object` to `uri`, answered with the object.
/// The requests of the first reconcile of a new cluster `rc` (after its
/// Secrets, if it has any): it finds no StatefulSet, applies the Services,
/// budget and NetworkPolicy, creates the StatefulSet with one pod and says
/// so.
async fn expect_first_scale(api: &mut MockApi, rc: &RaftCluster, now: &str) {
    let message = "scaling StatefulSet config to 1";
    api.expect(get(STATEFULSET), not_found()).await;
    api.expect(get(PODS), ok(pod_list(rc, &[]))).await;
    api.expect(get(CLAIMS), ok(claim_list(0))).await;
    applied(
        api,
        APPLY_PEER_SERVICE,
        json_of(resources::peer_service(rc)),
    )
    .await;
    applied(
        api,
        APPLY_CLIENT_SERVICE,
        json_of(resources::client_service(rc)),
    )
    .await;
    let budget = json_of(resources::pod_disruption_budget(rc, 0));
    assert_eq!(budget["spec"]["maxUnavailable"], 0);
    applied(api, APPLY_BUDGET, budget).await;
    applied(
        api,
        APPLY_NETWORK_POLICY,
        json_of(resources::network_policy(rc)),
    )
    .await;
    api.expect(get(STATEFULSET), not_found()).await;
    let statefulset = json_of(resources::statefulset(rc, 1));
    assert_eq!(statefulset["spec"]["replicas"], 1);
    applied(api, APPLY_STATEFULSET, statefulset).await;
    let note = "StatefulSet scaled to 1 replicas";
    expect_event(api, "Normal", "ScaleStatefulSet", note).await;
    expect_status(
        api,
        rc,
        json!({
            "phase": "Pending",
            "replicas": 0,
            "readyReplicas": 0,
            "selector": SELECTOR,
            "message": message,
            "conditions": [
                condition("Available", false, "NoQuorum", NO_QUORUM, now),
                condition("Degraded", false, "ScaleStatefulSet", message, now),
                condition("Progressing", true, "ScaleStatefulSet", message, now),
            ],
            "observedGeneration": 4,
        }),
    )
    .await;
}

async fn applied(api: &mut MockApi, uri: &'static str, object: Value) {
    api.expect(apply(uri, object.clone()), ok(object)).await;
}

/// The requests every reconcile of a valid spec begins with: it reads the
/// StatefulSet (`replicas`, `None` if absent) and the pods at `ips`, applies
/// both Services and the budget for `members`, reads the StatefulSet again
/// and, if it exists, applies its template with the replicas it has.
async fn expect_observe_and_apply(
    api: &mut MockApi,
    rc: &RaftCluster,
    replicas: Option<u32>,
    ips: &[&str],
    members: u32,
) {
    let statefulset = match replicas {
        Some(n) => ok(json_of(resources::statefulset(rc, n))),
        None => not_found(),
    };
    api.expect(get(STATEFULSET), statefulset).await;
    api.expect(get(PODS), ok(pod_list(rc, ips))).await;
    api.expect(get(CLAIMS), ok(claim_list(ips.len()))).await;
    expect_apply(api, rc, replicas, members).await;
}

/// The applies of [`expect_observe_and_apply`], after the reads.
async fn expect_apply(api: &mut MockApi, rc: &RaftCluster, replicas: Option<u32>, members: u32) {
    let statefulset = || match replicas {
        Some(n) => ok(json_of(resources::statefulset(rc, n))),
        None => not_found(),
    };
    applied(
        api,
        APPLY_PEER_SERVICE,
        json_of(resources::peer_service(rc)),
    )
    .await;
    applied(
        api,
        APPLY_CLIENT_SERVICE,
        json_of(resources::client_service(rc)),
    )
    .await;
    let budget = json_of(resources::pod_disruption_budget(rc, members));
    applied(api, APPLY_BUDGET, budget).await;
    applied(
        api,
        APPLY_NETWORK_POLICY,
        json_of(resources::network_policy(rc)),
    )
    .await;
    api.expect(get(STATEFULSET), statefulset()).await;
    if let Some(n) = replicas {
        applied(
            api,
            APPLY_STATEFULSET,
            json_of(resources::statefulset(rc, n)),
        )
        .await;
    }
}

/// A merge patch of the pod at `uri` setting its `raftcfg.io/serving`
/// label to `value`, and nothing else.
async fn expect_serving_label(api: &mut MockApi, uri: &'static str, value: &str) {
    let patch = api.expect(merge_patch(uri), Answer::Echo).await;
    let wanted = json!({"metadata": {"labels": {"raftcfg.io/serving": value}}});
    assert_json(&patch, &wanted);
}

/// The status apply patch carrying `status`.
fn status_patch(status: Value) -> Value {
    json!({"apiVersion": "raftcfg.io/v1alpha1", "kind": "RaftCluster", "status": status})
}

/// A server-side apply of exactly `status` to the status subresource;
/// returns the patch.
async fn expect_status(api: &mut MockApi, rc: &RaftCluster, status: Value) -> Value {
    api.expect(apply(APPLY_STATUS, status_patch(status)), ok(json_of(rc)))
        .await
}

/// An `events.k8s.io/v1` Event about the cluster, created by the operator.
/// Its name and time are made by kube's recorder from the wall clock and
/// only checked for shape.
async fn expect_event(api: &mut MockApi, kind: &str, reason: &str, note: &str) {
    let mut event = api.expect(post(EVENTS), Answer::Echo).await;
    let fields = event.as_object_mut().expect("an object");
    let time = fields.remove("eventTime").expect("an eventTime");
    assert!(
        time.as_str()
            .is_some_and(|t| t.parse::<Timestamp>().is_ok()),
        "{time}"
    );
    let metadata = fields
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .expect("metadata");
    let name = metadata.remove("name").expect("a name");
    assert!(
        name.as_str().is_some_and(|n| n.starts_with("config.")),
        "{name}"
    );
    assert_json(
        &event,
        &json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"namespace": "prod"},
            "type": kind,
            "reason": reason,
            // The note, cut to the 128 bytes an action may hold.
            "action": note.get(..128).unwrap_or(note),
            "note": note,
            "regarding": {
                "apiVersion": "raftcfg.io/v1alpha1",
                "kind": "RaftCluster",
                "name": "config",
                "namespace": "prod",
                "uid": "uid-1",
            },
            "reportingController": "raftcfg-operator",
            "reportingInstance": "raftcfg-operator-0",
        }),
    );
}
