//! One reconcile of one RaftCluster: observe the pods and nodes, ask the
//! [`planner`](crate::planner) for the single next step, carry out at most
//! that step, and write the status (and an event).
//!
//! A membership change is recorded in status as in flight *before* it is
//! asked for, so an operator that stops mid-change finds it again and
//! waits for its outcome instead of starting another.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use raftcfg_client::http::ClientError;
use raftcfg_client::wire::{
    AddMemberRequest, ClusterId, LogIndex, MemberRole as WireRole, NodeId, Term,
};

use crate::crd::{
    ChangeKind, ChangeOutcome, MembershipChange, QuorumLossPolicy, QuorumRecovery,
    RECENT_CHANGES_KEPT, RaftCluster, RaftClusterStatus, validate_name,
};
use crate::credentials::{self, Access, Secured};
use crate::metrics::Metrics;
use crate::observed::{
    LeaderView, NodeReport, Observed, ObservedMember, PodObservation, ordinal_of, pod_name,
};
use crate::planner::{DesiredState, Plan, Record, RemoveReason, Step, next_step};
use crate::resources;
use crate::status;
use crate::world::{Event, Nodes, Platform, PlatformError, Pod};

/// How soon to look again after each kind of outcome. Pods and claims
/// are watched, but a leader change or a lost quorum shows only in the
/// nodes: even a cluster at rest is looked at often enough that status
/// shows either within 5 s. A stopped cluster waits for a person, who
/// mostly acts through the spec or the claims (both watched).
const REQUEUE_AFTER_STEP: Duration = Duration::from_secs(1);
const REQUEUE_WHILE_WAITING: Duration = Duration::from_secs(2);
const REQUEUE_WHEN_DONE: Duration = Duration::from_secs(4);
const REQUEUE_WHEN_STOPPED: Duration = Duration::from_secs(30);

/// What a reconcile did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Carried out a step.
    Acted(Step),
    /// The membership matches the spec; turned auth on or off as
    /// `spec.auth` asks.
    ChangedAuth {
        /// On rather than off.
        enabled: bool,
    },
    /// Waiting for the world; the reason is in status.
    Waiting,
    /// The cluster matches its spec.
    Done,
    /// Stopped: a human must act (halt) or change the spec (invalid).
    Stopped,
}

impl Outcome {
    /// When to reconcile again even if nothing changes.
    pub fn requeue_after(&self) -> Duration {
        match self {
            Self::Acted(_) | Self::ChangedAuth { .. } => REQUEUE_AFTER_STEP,
            Self::Waiting => REQUEUE_WHILE_WAITING,
            Self::Done => REQUEUE_WHEN_DONE,
            Self::Stopped => REQUEUE_WHEN_STOPPED,
        }
    }
}

/// Why a reconcile failed; it is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The platform refused or failed.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// A node refused or failed.
    #[error("{operation} at {url} failed: {source}")]
    Node {
        /// What was asked, e.g. `bootstrap`.
        operation: &'static str,
        /// The node's URL.
        url: String,
        /// The client's error.
        #[source]
        source: Box<ClientError>,
    },
    /// The step needs a pod that has no address.
    #[error("pod {ordinal} has no address yet")]
    NoAddress {
        /// The pod.
        ordinal: u32,
    },
}

/// What one reconcile observed, with the addresses to act on.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// The planner's input.
    pub observed: Observed,
    /// The pods, by ordinal.
    pub pods: BTreeMap<u32, Pod>,
    /// The leader's client URL.
    pub leader_url: Option<String>,
}

/// Reconciles RaftClusters on a platform.
#[derive(Debug)]
pub struct Reconciler<P, N> {
    /// Runs the pods.
    pub platform: P,
    /// Talks to the nodes.
    pub nodes: N,
    /// Counts steps.
    pub metrics: Arc<Metrics>,
}

impl<P: Platform, N: Nodes> Reconciler<P, N> {
    /// A reconciler with its own metrics.
    pub fn new(platform: P, nodes: N) -> Self {
        Self {
            platform,
            nodes,
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// One reconcile of `cluster` at time `now`.
    pub async fn reconcile(
        &self,
        cluster: &RaftCluster,
        now: Timestamp,
    ) -> Result<Outcome, ReconcileError> {
        let previous = cluster.status.clone().unwrap_or_default();
        let valid = validate_name(&cluster.name_any())
            .and_then(|()| cluster.spec.validate())
            .and_then(|()| adoption(cluster).map(drop));
        if let Err(problem) = valid {
            let status = status::invalid(cluster, &previous, &problem, now);
            if status.message != previous.message {
                self.event(cluster, true, "InvalidSpec", problem).await;
            }
            self.platform.patch_status(cluster, &status).await?;
            return Ok(Outcome::Stopped);
        }
        let mut fenced = cluster.clone();
        let secured = credentials::ensure(&self.platform, cluster, now.into()).await?;
        let access = &secured.access;
        let observation = self.observe(cluster, access).await?;
        self.steer_clients(cluster, &observation).await;
        // The budget counts voters: learners add nothing a quorum needs.
        let voters = observation
            .observed
            .leader
            .as_ref()
            .map_or(0, |l| l.voters().count() as u32);
        // A failure here (say, a template the API server refuses) must not
        // keep the planner from finishing a membership change: plan and
        // act first, report the failure after.
        let applied = self.platform.apply_owned(cluster, voters).await;

        let record = record(&cluster.name_any(), &previous, &observation.observed, now);
        let desired = DesiredState {
            name: cluster.name_any(),
            replicas: cluster.spec.replicas as u32,
            config_hash: resources::config_hash(&cluster.spec),
            learner_timeout: Duration::from_secs(u64::from(cluster.spec.learner_timeout_seconds)),
            adopt: adoption(cluster).unwrap_or_default(),
            quorum_loss: cluster.spec.recovery.quorum_loss,
            recovery_grace: Duration::from_secs(u64::from(
                cluster.spec.recovery.grace_period_seconds,
            )),
            recovery_approved: recovery_approval(cluster, &previous).is_some(),
        };
        let plan = next_step(&observation.observed, &desired, &record);
        let mut status = status::observed(
            cluster,
            &previous,
            &observation.observed,
            &record,
            &plan,
            now,
        );
        let outcome = match plan {
            Plan::Act(step) => {
                self.metrics.step(&step);
                self.act(&mut fenced, &observation, access, &step, &mut status, now)
                    .await?;
                Outcome::Acted(step)
            }
            Plan::Wait(reason) => {
                let first_leader = status::awaiting_first_leader(&previous);
                if status::is_degrading(&reason, first_leader) && status.message != previous.message
                {
                    let note = status.message.clone().unwrap_or_default();
                    self.event(cluster, true, "Waiting", note).await;
                }
                Outcome::Waiting
            }
            Plan::Done => match self.converge_auth(cluster, &observation, &secured).await? {
                Some(enabled) => Outcome::ChangedAuth { enabled },
                None => Outcome::Done,
            },
            Plan::Halt(_) => {
                if status.message != previous.message {
                    let note = status.message.clone().unwrap_or_default();
                    self.event(cluster, true, "Halted", note).await;
                }
                Outcome::Stopped
            }
        };
        self.platform.patch_status(&fenced, &status).await?;
        applied?;
        Ok(outcome)
    }

    /// With the membership as the spec asks, turns auth on or off as
    /// `spec.auth` asks; answers what it turned it to, if it changed it.
    async fn converge_auth(
        &self,
        cluster: &RaftCluster,
        observation: &Observation,
        secured: &Secured,
    ) -> Result<Option<bool>, ReconcileError> {
        let (Some(wanted), Some(url)) = (&cluster.spec.auth, &observation.leader_url) else {
            return Ok(None);
        };
        let access = &secured.access;
        let enabled = self
            .nodes
            .auth_enabled(url, access)
            .await
            .map_err(node_error("auth status", url))?;
        if enabled == wanted.enabled {
            return Ok(None);
        }
        let note = if wanted.enabled {
            let password = secured
                .root_password
                .as_deref()
                .expect("ensure reads the root password whenever spec.auth is set");
            self.nodes
                .enable_auth(url, access, password)
                .await
                .map_err(node_error("auth enable", url))?;
            format!(
                "auth enabled; user root's password is in Secret {}",
                resources::root_secret_name(cluster)
            )
        } else {
            self.nodes
                .disable_auth(url, access)
                .await
                .map_err(node_error("auth disable", url))?;
            "auth disabled: every client has every permission".to_owned()
        };
        let reason = if wanted.enabled {
            "EnableAuth"
        } else {
            "DisableAuth"
        };
        self.event(cluster, false, reason, note).await;
        Ok(Some(wanted.enabled))
    }

    /// Lets the client Service send clients to every pod below
    /// `spec.replicas` and to none at or above it: those hold members that
    /// are leaving, and leave the Service before they are removed (the
    /// planner waits for that). Pods the StatefulSet made before the label
    /// existed get it here, before the Service selects on it. A label that
    /// cannot be set (the pod just went) is logged and tried again next
    /// time; it holds up nothing but that pod's removal.
    async fn steer_clients(&self, cluster: &RaftCluster, observation: &Observation) {
        let replicas = cluster.spec.replicas as u32;
        for pod in observation.pods.values().filter(|p| !p.terminating) {
            let wanted = pod.ordinal < replicas;
            if pod.serving != wanted
                && let Err(error) = self
                    .platform
                    .set_serving(cluster, pod.ordinal, wanted)
                    .await
            {
                tracing::warn!(%error, ordinal = pod.ordinal, "could not label a pod");
            }
        }
    }

    /// The StatefulSet, each pod's node report and the leader's view.
    pub async fn observe(
        &self,
        cluster: &RaftCluster,
        access: &Access,
    ) -> Result<Observation, ReconcileError> {
        let podset = self.platform.pods(cluster).await?;
        let name = cluster.name_any();
        let reports = join_all(podset.pods.iter().map(|pod| async {
            let status = match &pod.client_url {
                Some(url) => self.nodes.status(url, access).await.ok(),
                None => None,
            };
            // A node answering at this pod's address under another name
            // (a reused IP) says nothing about this pod.
            let status = status.filter(|s| s.name == pod_name(&name, pod.ordinal));
            (pod.ordinal, status)
        }))
        .await;
        let mut observed = Observed {
            statefulset_replicas: podset.statefulset_replicas,
            claims: podset.claims.iter().copied().collect(),
            ..Observed::default()
        };
        let pods: BTreeMap<u32, Pod> = podset.pods.into_iter().map(|p| (p.ordinal, p)).collect();
        let mut best_leader: Option<(Term, NodeId)> = None;
        for (ordinal, status) in &reports {
            let pod = &pods[ordinal];
            if let Some(s) = status
                && let Some(leader) = s.leader_id
                && best_leader.is_none_or(|(term, _)| s.term > term)
            {
                best_leader = Some((s.term, leader));
            }
            observed.pods.insert(
                *ordinal,
                PodObservation {
                    ordinal: *ordinal,
                    terminating: pod.terminating,
                    config_hash: pod.config_hash.clone(),
                    serving: pod.serving,
                    node: status.as_ref().map(|s| NodeReport {
                        node_id: s.node_id,
                        cluster_id: s.cluster_id,
                        last_term: s.last_term,
                        last_index: s.last_index,
                    }),
                },
            );
        }
        let mut leader_url = None;
        if let Some((_, leader_id)) = best_leader {
            let url = reports.iter().find_map(|(ordinal, status)| {
                status
                    .as_ref()
                    .filter(|s| s.node_id == leader_id)
                    .and_then(|_| pods[ordinal].client_url.clone())
            });
            if let Some(url) = url
                && let Ok(list) = self.nodes.members(&url, access).await
                && list.leader_id == Some(leader_id)
            {
                observed.leader = Some(leader_view(leader_id, &list));
                leader_url = Some(url);
            }
        }
        Ok(Observation {
            observed,
            pods,
            leader_url,
        })
    }

    async fn act(
        &self,
        cluster: &mut RaftCluster,
        observation: &Observation,
        access: &Access,
        step: &Step,
        status: &mut RaftClusterStatus,
        now: Timestamp,
    ) -> Result<(), ReconcileError> {
        let leader_url = || {
            observation
                .leader_url
                .clone()
                .expect("the planner changes membership only with a leader")
        };
        match step {
            Step::ScaleStatefulSet { replicas } => {
                self.platform.scale(cluster, *replicas).await?;
                let note = format!("StatefulSet scaled to {replicas} replicas");
                self.event(cluster, false, "ScaleStatefulSet", note).await;
            }
            Step::Bootstrap => {
                let url = pod_url(observation, 0)?;
                let answer = self
                    .nodes
                    .bootstrap(&url, access)
                    .await
                    .map_err(node_error("bootstrap", &url))?;
                status.cluster_id = Some(answer.cluster_id.to_string());
                let note = format!(
                    "bootstrapped cluster {} on node {}",
                    answer.cluster_id, answer.node_id
                );
                self.event(cluster, false, "Bootstrap", note).await;
            }
            Step::RecordClusterId { cluster_id } => {
                status.cluster_id = Some(cluster_id.to_string());
                let note = format!("recorded cluster {cluster_id}, which the pods already hold");
                self.event(cluster, false, "RecordClusterId", note).await;
            }
            Step::FinishChange { committed } => {
                if let Some(mut change) = status.membership_change.take() {
                    change.outcome = if *committed {
                        ChangeOutcome::Committed
                    } else {
                        ChangeOutcome::Failed
                    };
                    change.finished_at = Some(Time(now));
                    let note = if *committed {
                        format!(
                            "{} node {} ({}) committed: {}",
                            describe(change.kind),
                            change.node_id,
                            change.name,
                            change.reason
                        )
                    } else {
                        change
                            .message
                            .get_or_insert_with(|| "the change did not take effect".into());
                        format!(
                            "{} node {} ({}) did not take effect",
                            describe(change.kind),
                            change.node_id,
                            change.name
                        )
                    };
                    let reason = format!("{:?}", change.kind);
                    remember(status, change);
                    self.event(cluster, !*committed, &reason, note).await;
                }
            }
            Step::AddLearner { ordinal, node_id } => {
                let pod = &observation.pods[ordinal];
                let name = pod_name(&cluster.name_any(), *ordinal);
                let request = AddMemberRequest {
                    node_id: *node_id,
                    name: name.clone(),
                    peer_url: pod.peer_url.clone(),
                    client_url: pod.advertised_client_url.clone(),
                };
                let url = leader_url();
                let call = self.nodes.add_learner(&url, access, &request);
                let change = intent(ChangeKind::AddLearner, *node_id, &name, "scale out", now);
                self.change(cluster, status, change, "AddLearner", &url, call)
                    .await?;
            }
            Step::Promote { node_id, name } => {
                let url = leader_url();
                let call = self.nodes.promote(&url, access, *node_id);
                let change = intent(ChangeKind::Promote, *node_id, name, "caught up", now);
                self.change(cluster, status, change, "Promote", &url, call)
                    .await?;
            }
            Step::Remove {
                node_id,
                name,
                reason,
            } => {
                let url = leader_url();
                let call = self.nodes.remove(&url, access, *node_id);
                // A removal for a lost volume or a stuck learner is not
                // routine: its Event says so in its reason.
                let (why, event_reason) = match reason {
                    RemoveReason::ScaleIn => ("scale in", "Remove"),
                    RemoveReason::VolumeLost => {
                        ("its pod came back with an empty volume", "RemoveVolumeLost")
                    }
                    RemoveReason::LearnerTimedOut => (
                        "it did not catch up before its deadline",
                        "RemoveLearnerTimedOut",
                    ),
                };
                let change = intent(ChangeKind::Remove, *node_id, name, why, now);
                self.change(cluster, status, change, event_reason, &url, call)
                    .await?;
            }
            Step::TransferLeadership { from, to } => {
                let url = leader_url();
                self.nodes
                    .transfer_leader(&url, access, *to)
                    .await
                    .map_err(node_error("leadership transfer", &url))?;
                let note = format!("leadership moved from node {from} to node {to}");
                self.event(cluster, false, "TransferLeadership", note).await;
            }
            Step::WipePod { ordinal, node_id } => {
                self.platform.wipe_pod(cluster, *ordinal).await?;
                let note = format!(
                    "pod {ordinal} held the data of node {node_id}, which is no longer a member; its volume was deleted"
                );
                self.event(cluster, true, "WipePod", note).await;
            }
            Step::ReplacePod { ordinal } => {
                self.platform.delete_pod(cluster, *ordinal).await?;
                let note = format!("pod {ordinal} replaced to apply the current template");
                self.event(cluster, false, "ReplacePod", note).await;
            }
            Step::ForceNewCluster {
                ordinal,
                node_id,
                last_term,
                last_index,
            } => {
                let survivor = (*ordinal, *node_id, *last_term, *last_index);
                self.recover(cluster, observation, access, survivor, status, now)
                    .await?;
            }
        }
        Ok(())
    }

    /// Recovers from the lost quorum on the survivor `(ordinal, node id,
    /// last term, last index)` as its node reported it. The decision goes
    /// into status before the node is asked (fenced, as a membership change
    /// is), so a recovery whose answer is lost is still on record; a
    /// refusal (the node found a leader, or is no voter) takes it back.
    async fn recover(
        &self,
        cluster: &mut RaftCluster,
        observation: &Observation,
        access: &Access,
        (ordinal, node_id, last_term, last_index): (u32, NodeId, Term, LogIndex),
        status: &mut RaftClusterStatus,
        now: Timestamp,
    ) -> Result<(), ReconcileError> {
        let url = pod_url(observation, ordinal)?;
        let previous = cluster.status.clone().unwrap_or_default();
        let survivor = pod_name(&cluster.name_any(), ordinal);
        let lost_members: Vec<String> = status
            .members
            .iter()
            .filter(|m| m.name != survivor)
            .map(|m| m.name.clone())
            .collect();
        let trigger = recovery_approval(cluster, &previous)
            .unwrap_or_else(|| format!("{:?}", QuorumLossPolicy::Automatic));
        let record = |(node_id, last_term, last_index): (NodeId, Term, LogIndex)| QuorumRecovery {
            survivor: survivor.clone(),
            node_id: node_id.to_string(),
            last_index: last_index.get(),
            last_term: last_term.get(),
            lost_members: lost_members.clone(),
            possibly_lost: possibly_lost(previous.last_commit_index, last_index),
            trigger: trigger.clone(),
            at: Time(now),
        };
        status.last_recovery = Some(record((node_id, last_term, last_index)));
        cluster.metadata.resource_version = self.platform.patch_status(cluster, status).await?;
        let answer = match self.nodes.force_new_cluster(&url, access).await {
            Ok(answer) => answer,
            Err(error) if is_refusal(&error) => {
                status.last_recovery = previous.last_recovery.clone();
                status.message = Some(format!("{survivor} did not recover the cluster: {error}"));
                return Ok(());
            }
            Err(error) => return Err(node_error("force new cluster", &url)(error)),
        };
        let recovery = record((answer.node_id, answer.last_term, answer.last_index));
        let note = format!(
            "quorum lost ({} gone): recovered from {survivor} (node {}), the only voter now, with every entry up to log index {} (term {}); {}; the others are added back as new members",
            lost_members.join(", "),
            answer.node_id,
            answer.last_index,
            answer.last_term,
            recovery.possibly_lost
        );
        status.last_recovery = Some(recovery);
        // The membership is now the survivor alone: recorded so, the next
        // reconcile waits for its election rather than finding the quorum
        // still lost.
        status.members.retain(|m| m.name == survivor);
        status.replicas = status.members.len() as i32;
        status.message = Some(note.clone());
        self.event(cluster, true, "ForceNewCluster", note).await;
        Ok(())
    }

    /// Records `change` as in flight, asks for it, and records the answer
    /// (its Event with `reason`).
    /// An answer that leaves the outcome unknown keeps it in flight: the
    /// next reconcile learns the outcome from the leader.
    async fn change(
        &self,
        cluster: &mut RaftCluster,
        status: &mut RaftClusterStatus,
        change: MembershipChange,
        reason: &str,
        url: &str,
        call: impl Future<Output = Result<raftcfg_client::wire::MembershipResponse, ClientError>>,
    ) -> Result<(), ReconcileError> {
        // The change was asked for now.
        let now = change.started_at.0;
        status.membership_change = Some(change.clone());
        // Fenced by the resourceVersion read at the start of this
        // reconcile: if anyone (another operator replica during a lease
        // handover) wrote the cluster since, this fails and no change is
        // asked for.
        cluster.metadata.resource_version = self.platform.patch_status(cluster, status).await?;
        match call.await {
            Ok(answer) => {
                let note = format!(
                    "{} node {} ({}) committed at log index {}: {}",
                    describe(change.kind),
                    change.node_id,
                    change.name,
                    answer.index,
                    change.reason
                );
                let mut done = status.membership_change.take().unwrap_or(change);
                done.outcome = ChangeOutcome::Committed;
                done.finished_at = Some(Time(now));
                done.log_index = Some(answer.index.get());
                remember(status, done);
                self.event(cluster, false, reason, note).await;
                Ok(())
            }
            Err(error) if is_refusal(&error) => {
                let mut done = status.membership_change.take().unwrap_or(change);
                if error.code() == Some("learner_not_caught_up") {
                    // Not a failure: the learner is asked again next time.
                    status.message = Some(format!("learner {} is not caught up yet", done.node_id));
                    return Ok(());
                }
                // A refusal may answer a retry of a change that took
                // effect (already a voter, no longer a member): keep it in
                // flight; the next reconcile records the outcome the
                // leader's membership shows, with this message.
                done.message = Some(error.to_string());
                status.membership_change = Some(done);
                Ok(())
            }
            Err(source) => Err(ReconcileError::Node {
                operation: "membership change",
                url: url.to_string(),
                source: Box::new(source),
            }),
        }
    }

    /// Publishes an event; a failure to publish is logged, not fatal.
    async fn event(&self, cluster: &RaftCluster, warning: bool, reason: &str, note: String) {
        let event = Event {
            warning,
            reason: reason.to_string(),
            note,
        };
        if let Err(error) = self.platform.publish(cluster, event).await {
            tracing::warn!(%error, "could not publish an event");
        }
    }
}

/// The cluster id the [`ADOPT_ANNOTATION`](resources::ADOPT_ANNOTATION)
/// names, if the RaftCluster carries it.
pub fn adoption(cluster: &RaftCluster) -> Result<Option<ClusterId>, String> {
    let Some(text) = cluster.annotations().get(resources::ADOPT_ANNOTATION) else {
        return Ok(None);
    };
    text.trim().parse().map(Some).map_err(|_| {
        format!(
            "the annotation {} is {text:?}, which is not a cluster id (the decimal id the Halted message names)",
            resources::ADOPT_ANNOTATION
        )
    })
}

/// The value of the [`RECOVER_ANNOTATION`](resources::RECOVER_ANNOTATION)
/// if it approves a recovery now: the quorum is known to be lost, and the
/// value is neither the one it had then (set for an earlier incident) nor
/// one a recovery already used.
pub fn recovery_approval(cluster: &RaftCluster, previous: &RaftClusterStatus) -> Option<String> {
    previous.quorum_lost_since.as_ref()?;
    let value = status::recover_annotation(cluster)?;
    let used = previous.last_recovery.as_ref().map(|r| r.trigger.as_str());
    let stale = previous.approval_before_loss.as_deref();
    (used != Some(value.as_str()) && stale != Some(value.as_str())).then_some(value)
}

/// What a recovery from a survivor whose log ends at `kept` may have
/// lost, given the last commit index the operator saw (`seen`).
fn possibly_lost(seen: Option<u64>, kept: LogIndex) -> String {
    match seen {
        Some(commit) if commit > kept.get() => format!(
            "entries {}..={commit} were committed (the operator last saw commit index {commit}) and are lost, as are any committed later",
            kept.get() + 1
        ),
        Some(commit) => format!(
            "the last commit index the operator saw ({commit}) is kept; entries after {kept} that the lost voters committed since are lost"
        ),
        None => format!("entries after {kept} that only the lost voters held are lost"),
    }
}

/// The record the planner needs, from the last status and this
/// observation: learners keep the time they were first seen. An id in
/// status that does not parse is not dropped: it is the record's
/// `unreadable`, and the planner waits for a human.
pub fn record(
    name: &str,
    previous: &RaftClusterStatus,
    observed: &Observed,
    now: Timestamp,
) -> Record {
    let mut unreadable = None;
    let mut keep = |error| {
        unreadable.get_or_insert(error);
    };
    let cluster_id = previous.recorded_cluster_id().unwrap_or_else(|e| {
        keep(e);
        None
    });
    let change_in_flight = previous
        .membership_change
        .as_ref()
        .filter(|c| c.outcome == ChangeOutcome::InFlight)
        .and_then(|c| match c.recorded_node_id() {
            Ok(node_id) => Some((c.kind, node_id)),
            Err(e) => {
                keep(e);
                None
            }
        });
    let seen: BTreeMap<NodeId, Timestamp> = match previous.recorded_learners() {
        Ok(learners) => learners
            .into_iter()
            .map(|(id, since)| (id, since.0))
            .collect(),
        Err(e) => {
            keep(e);
            BTreeMap::new()
        }
    };
    // Without a leader the learners are unknown: keep the times as they
    // were, so no deadline starts over.
    let learner_since = match &observed.leader {
        Some(leader) => leader
            .members
            .iter()
            .filter(|m| !m.voter)
            .map(|m| (m.node_id, seen.get(&m.node_id).copied().unwrap_or(now)))
            .collect(),
        None => seen,
    };
    let statefulset_floor = previous
        .members
        .iter()
        .filter_map(|m| ordinal_of(name, &m.name))
        .map(|k| k + 1)
        .max()
        .unwrap_or(0);
    let voters = previous.recorded_voters().unwrap_or_else(|e| {
        keep(e);
        Vec::new()
    });

    Record {
        cluster_id,
        change_in_flight,
        learner_since,
        unreadable,
        statefulset_floor,
        voters,
        quorum_lost_since: previous.quorum_lost_since.as_ref().map(|t| t.0),
        now,
    }
}

fn leader_view(leader_id: NodeId, list: &raftcfg_client::wire::MemberList) -> LeaderView {
    LeaderView {
        leader_id,
        commit_index: list.commit_index,
        change_pending: list.membership_change_pending,
        members: list
            .members
            .iter()
            .map(|m| ObservedMember {
                node_id: m.id,
                name: m.name.clone(),
                voter: m.role == WireRole::Voter,
                healthy: m.healthy.unwrap_or(false),
                match_index: m.match_index.unwrap_or(LogIndex(0)),
            })
            .collect(),
    }
}

fn intent(
    kind: ChangeKind,
    node_id: NodeId,
    name: &str,
    reason: &str,
    now: Timestamp,
) -> MembershipChange {
    MembershipChange {
        kind,
        node_id: node_id.to_string(),
        name: name.to_string(),
        reason: reason.to_string(),
        started_at: Time(now),
        finished_at: None,
        log_index: None,
        outcome: ChangeOutcome::InFlight,
        message: None,
    }
}

/// Adds a finished change to the front of the recent ones.
fn remember(status: &mut RaftClusterStatus, change: MembershipChange) {
    status.recent_changes.insert(0, change);
    status.recent_changes.truncate(RECENT_CHANGES_KEPT);
}

fn describe(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::AddLearner => "adding learner",
        ChangeKind::Promote => "promoting",
        ChangeKind::Remove => "removing",
    }
}

/// A 4xx answer: the node refused, so the change did not happen.
fn is_refusal(error: &ClientError) -> bool {
    error.status().is_some_and(|s| s.is_client_error())
}

fn pod_url(observation: &Observation, ordinal: u32) -> Result<String, ReconcileError> {
    observation
        .pods
        .get(&ordinal)
        .and_then(|p| p.client_url.clone())
        .ok_or(ReconcileError::NoAddress { ordinal })
}

fn node_error(operation: &'static str, url: &str) -> impl FnOnce(ClientError) -> ReconcileError {
    let url = url.to_string();
    move |source| ReconcileError::Node {
        operation,
        url,
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Status must show a leader change or a lost quorum within 5 s, and
    /// a halted cluster must notice a person's fix within a minute.
    #[test]
    fn clusters_are_looked_at_again_soon_enough() {
        assert!(Outcome::Done.requeue_after() < Duration::from_secs(5));
        assert!(Outcome::Waiting.requeue_after() < Duration::from_secs(5));
        assert!(Outcome::Stopped.requeue_after() <= Duration::from_secs(60));
        assert!(Outcome::ChangedAuth { enabled: true }.requeue_after() < Duration::from_secs(5));
    }
}
