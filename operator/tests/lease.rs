//! Leader election ([`LeaseLock`]) against a mocked API server: the exact
//! reads and writes of the `coordination.k8s.io/v1` Lease when it is absent,
//! held by this candidate, held by another (fresh or expired) or released,
//! and how a lost race (409) and other API errors come back.
//!
//! The candidate is `operator-a` for Lease `ops/raftcfg-operator`, renewed
//! for 15 seconds at a time. Times it writes come from the wall clock, so
//! they are checked to lie within the call.

#[path = "support/mock_api.rs"]
mod mock_api;

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use raftcfg_operator::lease::{LeaseLock, lease_namespace};
use serde_json::{Value, json};

use mock_api::{Answer, MockApi, failure, get, not_found, ok, post, put};

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/raftcfg-operator";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases";

#[tokio::test]
async fn a_missing_lease_is_created_with_this_candidate_as_holder() {
    let (lock, mut api) = candidate();
    let mut created = Value::Null;
    let before = Timestamp::now();
    let held = api
        .run(lock.try_acquire_or_renew(), async |api: &mut MockApi| {
            api.expect(get(LEASE), not_found()).await;
            created = api.expect(post(LEASES), Answer::Echo).await;
        })
        .await;
    let after = Timestamp::now();

    assert!(held.expect("the create succeeds"), "it holds the new Lease");
    let acquired = take_time(&mut created, "acquireTime", before, after);
    let renewed = take_time(&mut created, "renewTime", before, after);
    assert_eq!(acquired, renewed);
    assert_json(
        &created,
        &json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "raftcfg-operator"},
            "spec": {
                "holderIdentity": "operator-a",
                "leaseDurationSeconds": 15,
                "leaseTransitions": 0,
            },
        }),
    );
}

#[tokio::test]
async fn a_lease_this_candidate_holds_is_renewed_with_its_resource_version() {
    let (lock, mut api) = candidate();
    let acquired = ago(3600);
    let held_lease = lease(Some("operator-a"), acquired, Some(ago(5)), 3);
    let mut replaced = Value::Null;
    let before = Timestamp::now();
    let held = api
        .run(lock.try_acquire_or_renew(), async |api: &mut MockApi| {
            api.expect(get(LEASE), ok(held_lease.clone())).await;
            replaced = api.expect(put(LEASE), ok(held_lease.clone())).await;
        })
        .await;
    let after = Timestamp::now();

    assert!(
        held.expect("the renewal succeeds"),
        "it still holds the Lease"
    );
    take_time(&mut replaced, "renewTime", before, after);
    assert_json(
        &replaced,
        &json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            // The resource version makes the write conditional on the read.
            "metadata": {"name": "raftcfg-operator", "resourceVersion": "41"},
            "spec": {
                "holderIdentity": "operator-a",
                "leaseDurationSeconds": 15,
                // Acquired once: renewing keeps the time and the count.
                "acquireTime": micro(acquired),
                "leaseTransitions": 3,
            },
        }),
    );
}

#[tokio::test]
async fn a_fresh_lease_of_another_holder_is_left_alone() {
    let (lock, mut api) = candidate();
    let other = lease(Some("operator-b"), ago(600), Some(ago(2)), 3);
    // Only the read: a write would leave the operator waiting and fail.
    let held = api
        .run(lock.try_acquire_or_renew(), async |api: &mut MockApi| {
            api.expect(get(LEASE), ok(other.clone())).await;
        })
        .await;
    assert!(
        !held.expect("reading the Lease succeeds"),
        "operator-b holds it"
    );
}

#[tokio::test]
async fn an_expired_lease_of_another_holder_is_taken_over_with_one_more_transition() {
    // Renewed 60 s ago for 15 s.
    let expired = lease(Some("operator-b"), ago(600), Some(ago(60)), 3);
    let taken = take_over(expired).await;
    assert_eq!(taken, 4);
}

#[tokio::test]
async fn a_released_lease_is_taken_over_with_one_more_transition() {
    let released = lease(None, ago(600), Some(ago(2)), 3);
    let taken = take_over(released).await;
    assert_eq!(taken, 4);
}

#[tokio::test]
async fn a_lease_never_renewed_counts_as_expired() {
    let never_renewed = lease(Some("operator-b"), ago(2), None, 0);
    let taken = take_over(never_renewed).await;
    assert_eq!(taken, 1);
}

#[tokio::test]
async fn a_standby_knows_whom_it_waits_for() {
    let (lock, mut api) = candidate();
    assert_eq!(lock.holder_seen(), None);
    let other = lease(Some("operator-b"), ago(600), Some(ago(2)), 3);
    let held = api
        .run(lock.try_acquire_or_renew(), async |api: &mut MockApi| {
            api.expect(get(LEASE), ok(other.clone())).await;
        })
        .await;
    assert!(!held.unwrap());
    assert_eq!(lock.holder_seen().as_deref(), Some("operator-b"));
}

#[tokio::test]
async fn the_holder_releases_its_lease_on_shutdown() {
    let (lock, mut api) = candidate();
    let acquired = ago(3600);
    let held_lease = lease(Some("operator-a"), acquired, Some(ago(1)), 3);
    let mut released = Value::Null;
    api.run(lock.release(), async |api: &mut MockApi| {
        api.expect(get(LEASE), ok(held_lease.clone())).await;
        released = api.expect(put(LEASE), ok(held_lease.clone())).await;
    })
    .await
    .expect("the release succeeds");
    assert_eq!(released["metadata"]["resourceVersion"], "41", "conditional");
    assert!(
        released["spec"]
            .get("holderIdentity")
            .is_none_or(Value::is_null),
        "no holder: {released}"
    );
    assert_eq!(released["spec"]["leaseTransitions"], 3);
}

#[tokio::test]
async fn a_lease_held_by_another_is_not_released() {
    let (lock, mut api) = candidate();
    let other = lease(Some("operator-b"), ago(600), Some(ago(2)), 3);
    // Only the read: a write would leave the operator waiting and fail.
    api.run(lock.release(), async |api: &mut MockApi| {
        api.expect(get(LEASE), ok(other.clone())).await;
    })
    .await
    .expect("nothing to release");
}

#[test]
fn the_lease_lives_in_the_given_namespace_else_the_pods_own() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("namespace");
    assert_eq!(
        lease_namespace(Some("ops"), &file).as_deref(),
        Ok("ops"),
        "explicit"
    );
    let out_of_cluster = lease_namespace(None, &file).unwrap_err();
    assert!(
        out_of_cluster.contains("no --lease-namespace given"),
        "{out_of_cluster}"
    );
    std::fs::write(&file, "raftcfg-system\n").unwrap();
    assert_eq!(
        lease_namespace(None, &file).as_deref(),
        Ok("raftcfg-system"),
        "the service account's namespace"
    );
    assert_eq!(
        lease_namespace(Some(""), &file).as_deref(),
        Ok("raftcfg-system")
    );
}

/// Runs one attempt on `existing`, which this candidate may take: expects
/// the read and a replace that makes `operator-a` the holder from now, and
/// returns the transitions the replace records.
async fn take_over(existing: Value) -> i64 {
    let (lock, mut api) = candidate();
    let mut replaced = Value::Null;
    let before = Timestamp::now();
    let held = api
        .run(lock.try_acquire_or_renew(), async |api: &mut MockApi| {
            api.expect(get(LEASE), ok(existing.clone())).await;
            replaced = api.expect(put(LEASE), ok(existing.clone())).await;
        })
        .await;
    let after = Timestamp::now();

    assert!(held.expect("the takeover succeeds"), "it holds the Lease");
    let acquired = take_time(&mut replaced, "acquireTime", before, after);
    let renewed = take_time(&mut replaced, "renewTime", before, after);
    assert_eq!(acquired, renewed, "a new holder acquires it now");
    let transitions = replaced["spec"]
        .as_object_mut()
        .and_then(|spec| spec.remove("leaseTransitions"))
        .and_then(|t| t.as_i64())
        .expect("leaseTransitions");
    assert_json(
        &replaced,
        &json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "raftcfg-operator", "resourceVersion": "41"},
            "spec": {"holderIdentity": "operator-a", "leaseDurationSeconds": 15},
        }),
    );
    transitions
}

#[tokio::test]
async fn losing_the_race_to_create_the_lease_is_not_holding_it() {
    let (lock, mut api) = candidate();
    let held = api
        .run(lock.try_acquire_or_renew(), async |api: &mut MockApi| {
            api.expect(get(LEASE), not_found()).await;
            api.expect(post(LEASES), failure(409, "AlreadyExists"))
                .await;
        })
        .await;
    assert!(
        !held.expect("a conflict is no error"),
        "another candidate created it"
    );
}

#[tokio::test]
async fn losing_the_race_to_replace_the_lease_is_not_holding_it() {
    let (lock, mut api) = candidate();
    let expired = lease(Some("operator-b"), ago(600), Some(ago(60)), 3);
    let held = api
        .run(lock.try_acquire_or_renew(), async |api: &mut MockApi| {
            api.expect(get(LEASE), ok(expired.clone())).await;
            api.expect(put(LEASE), failure(409, "Conflict")).await;
        })
        .await;
    assert!(
        !held.expect("a conflict is no error"),
        "another candidate wrote first"
    );
}

#[tokio::test]
async fn other_api_errors_are_returned() {
    let (lock, mut api) = candidate();
    let held = api
        .run(lock.try_acquire_or_renew(), async |api: &mut MockApi| {
            api.expect(get(LEASE), failure(403, "Forbidden")).await;
        })
        .await;
    match held {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403),
        other => panic!("expected the 403 back, got {other:?}"),
    }

    let (lock, mut api) = candidate();
    let held = api
        .run(lock.try_acquire_or_renew(), async |api: &mut MockApi| {
            api.expect(get(LEASE), not_found()).await;
            api.expect(post(LEASES), failure(500, "InternalError"))
                .await;
        })
        .await;
    match held {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 500),
        other => panic!("expected the 500 back, got {other:?}"),
    }
}

/// `operator-a`, a candidate for `ops/raftcfg-operator` for 15 s, on a
/// mocked API server.
fn candidate() -> (LeaseLock, MockApi) {
    let (client, api) = mock_api::client(&mock_api::log());
    let lock = LeaseLock::new(
        Api::namespaced(client, "ops"),
        "raftcfg-operator",
        "operator-a",
        Duration::from_secs(15),
    );
    (lock, api)
}

/// The Lease as the API server returns it, at resource version 41, held
/// for 15 s per renewal.
fn lease(
    holder: Option<&str>,
    acquired: Timestamp,
    renewed: Option<Timestamp>,
    transitions: i32,
) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "raftcfg-operator", "namespace": "ops", "resourceVersion": "41"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "acquireTime": micro(acquired),
            "renewTime": renewed.map(micro),
            "leaseTransitions": transitions,
        },
    })
}

/// `seconds` before now.
fn ago(seconds: i64) -> Timestamp {
    Timestamp::now() - SignedDuration::from_secs(seconds)
}

fn micro(time: Timestamp) -> Value {
    serde_json::to_value(MicroTime(time)).expect("JSON")
}

/// Removes `spec.<field>` from `lease` and checks that it is a time between
/// `before` and `after` (to the microsecond the format keeps).
fn take_time(lease: &mut Value, field: &str, before: Timestamp, after: Timestamp) -> Timestamp {
    let value = lease["spec"]
        .as_object_mut()
        .and_then(|spec| spec.remove(field))
        .unwrap_or_else(|| panic!("spec.{field} in {lease}"));
    let MicroTime(time) = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("spec.{field} {value} is a time: {e}"));
    let slack = SignedDuration::from_micros(1);
    assert!(
        before - slack <= time && time <= after,
        "spec.{field} {time} is not within the call ({before} to {after})"
    );
    time
}

fn assert_json(actual: &Value, expected: &Value) {
    assert!(
        actual == expected,
        "sent: {}\nexpected: {}",
        mock_api::pretty(actual),
        mock_api::pretty(expected)
    );
}
