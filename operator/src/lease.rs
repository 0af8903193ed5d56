//! Leader election among operator replicas with a `coordination.k8s.io`
//! Lease: only the holder reconciles. A holder that cannot renew within the
//! lease's duration stops (and is restarted as a candidate), so two
//! replicas never act at once for longer than a renewal. A holder that is
//! told to stop releases the Lease, so a standby takes over at once rather
//! than after the Lease runs out. [`lease_namespace`] picks where the Lease
//! lives, so that every replica of one installation contends for the same
//! one.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};

/// One candidate for a Lease.
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// The holder the last read found, for a standby to say whom it waits
    /// for.
    holder_seen: Arc<Mutex<Option<String>>>,
}

impl LeaseLock {
    /// A candidate `identity` for Lease `name` held for `duration` per
    /// renewal.
    pub fn new(api: Api<Lease>, name: &str, identity: &str, duration: Duration) -> Self {
        Self {
            api,
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
            holder_seen: Arc::default(),
        }
    }

    /// The Lease's holder as last read, if it had one.
    pub fn holder_seen(&self) -> Option<String> {
        self.holder_seen.lock().expect("never poisoned").clone()
    }

    /// Gives the Lease up if this candidate holds it: the holder is
    /// cleared, so any standby takes it on its next try.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        let released = self.lease(lease.metadata.resource_version.clone(), spec);
        settle(
            self.api
                .replace(&self.name, &PostParams::default(), &released)
                .await,
        )
        .map(drop)
    }

    /// How long one renewal holds.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Takes the Lease if it is free or expired, or renews it if held;
    /// returns whether this candidate holds it now. A lost race (conflict)
    /// is `Ok(false)`.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = self.lease(None, self.spec(now, now, 0));
            return settle(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref();
        *self.holder_seen.lock().expect("never poisoned") = holder.map(str::to_owned);
        let renewed = spec.renew_time.as_ref().map(|t| t.0);
        let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(0));
        let expired = renewed.is_none_or(|at| at + SignedDuration::from_secs(seconds) < now);
        let transitions = spec.lease_transitions.unwrap_or(0);
        let next = if holder == Some(self.identity.as_str()) {
            let acquired = spec.acquire_time.map_or(now, |t| t.0);
            self.spec(acquired, now, transitions)
        } else if expired || holder.is_none() {
            self.spec(now, now, transitions + 1)
        } else {
            return Ok(false);
        };
        let replacement = self.lease(lease.metadata.resource_version.clone(), next);
        settle(
            self.api
                .replace(&self.name, &PostParams::default(), &replacement)
                .await,
        )
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs().max(1) as i32),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    fn lease(&self, resource_version: Option<String>, spec: LeaseSpec) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                resource_version,
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        }
    }
}

/// Where the Lease lives: `explicit` (the flag, or `POD_NAMESPACE`), else
/// the namespace of the service account the pod runs as (read from
/// `service_account_namespace`). Out of a cluster there is neither, and
/// guessing (say `default`) would let an operator run by hand lead next to
/// the installed one: that is refused.
pub fn lease_namespace(
    explicit: Option<&str>,
    service_account_namespace: &Path,
) -> Result<String, String> {
    if let Some(namespace) = explicit.filter(|ns| !ns.trim().is_empty()) {
        return Ok(namespace.to_owned());
    }
    match std::fs::read_to_string(service_account_namespace) {
        Ok(namespace) if !namespace.trim().is_empty() => Ok(namespace.trim().to_owned()),
        _ => Err(format!(
            "no --lease-namespace given and not in a cluster ({} is missing): pass the \
             namespace of the installed operator's Lease, so that this operator and that \
             one never lead together",
            service_account_namespace.display()
        )),
    }
}

/// Why a holder stopped holding its Lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseLost {
    /// Another candidate holds it.
    #[error("another replica holds the leader Lease")]
    TakenOver,
    /// It could not be renewed before the renewal deadline.
    #[error("the leader Lease could not be renewed within {0:?}")]
    NotRenewed(Duration),
}

/// Renews `lock` every `every` until it is lost. Gives up once no renewal
/// succeeded for `deadline`, well before the lease itself runs out, so
/// this holder stops acting before another can take over. The clock for
/// the deadline starts before each request, as the lease's renew time is
/// stamped then.
pub async fn keep(lock: &LeaseLock, every: Duration, deadline: Duration) -> LeaseLost {
    let mut renewed_at = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let asked_at = tokio::time::Instant::now();
        let left = deadline.saturating_sub(renewed_at.elapsed());
        match tokio::time::timeout(left, lock.try_acquire_or_renew()).await {
            Ok(Ok(true)) => renewed_at = asked_at,
            Ok(Ok(false)) => return LeaseLost::TakenOver,
            Ok(Err(error)) => tracing::warn!(%error, "cannot renew the leader Lease"),
            Err(_) => tracing::warn!("renewing the leader Lease timed out"),
        }
        if renewed_at.elapsed() >= deadline {
            return LeaseLost::NotRenewed(deadline);
        }
    }
}

/// A write that lost a race (409) means another candidate holds the Lease.
fn settle(result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
