//! The status a reconcile writes: phase, members, the Available,
//! Progressing and Degraded conditions, and a sentence saying what the
//! operator is doing or waiting for. Pure functions of what was observed
//! and planned.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::crd::{LearnerSince, MemberRole, MemberStatus, Phase, RaftCluster, RaftClusterStatus};
use crate::observed::Observed;
use crate::planner::{
    CAUGHT_UP_LAG_ENTRIES, HaltReason, Plan, Record, RecoveryWait, RemoveReason, Step, WaitReason,
    is_quorum,
};
use crate::resources;
use crate::resources::{ADOPT_ANNOTATION, RECOVER_ANNOTATION};

/// The status of a cluster whose spec cannot be carried out.
pub fn invalid(
    cluster: &RaftCluster,
    previous: &RaftClusterStatus,
    problem: &str,
    now: Timestamp,
) -> RaftClusterStatus {
    let mut status = previous.clone();
    status.phase = Some(Phase::Invalid);
    status.message = Some(format!("invalid spec: {problem}"));
    status.observed_generation = cluster.metadata.generation;
    set_condition(
        &mut status,
        previous,
        "Progressing",
        false,
        "InvalidSpec",
        problem,
        now,
    );
    set_condition(
        &mut status,
        previous,
        "Degraded",
        true,
        "InvalidSpec",
        problem,
        now,
    );
    status
}

/// The status after observing `observed` and planning `plan` (before the
/// step is carried out).
pub fn observed(
    cluster: &RaftCluster,
    previous: &RaftClusterStatus,
    observed: &Observed,
    record: &Record,
    plan: &Plan,
    now: Timestamp,
) -> RaftClusterStatus {
    let mut status = RaftClusterStatus {
        // An unreadable id is kept as it was, never overwritten with
        // "none recorded": that would let the next reconcile bootstrap.
        cluster_id: record
            .cluster_id
            .map(|id| id.to_string())
            .or_else(|| previous.cluster_id.clone()),
        selector: Some(resources::selector(cluster)),
        membership_change: previous.membership_change.clone(),
        recent_changes: previous.recent_changes.clone(),
        learners: if record.unreadable.is_some() {
            previous.learners.clone()
        } else {
            learners(record)
        },
        conditions: previous.conditions.clone(),
        observed_generation: cluster.metadata.generation,
        last_commit_index: observed
            .leader
            .as_ref()
            .map(|l| l.commit_index.get())
            .or(previous.last_commit_index),
        last_recovery: previous.last_recovery.clone(),
        ..RaftClusterStatus::default()
    };
    let mut available = false;
    if let Some(leader) = &observed.leader {
        status.members = leader
            .members
            .iter()
            .map(|m| MemberStatus {
                name: m.name.clone(),
                node_id: m.node_id.to_string(),
                role: if m.voter {
                    MemberRole::Voter
                } else {
                    MemberRole::Learner
                },
                healthy: m.healthy,
                lag: Some(leader.lag(m).get()),
            })
            .collect();
        status.leader = leader
            .member(leader.leader_id)
            .map(|m| m.name.clone())
            .filter(|name| !name.is_empty());
        status.replicas = leader.members.len() as i32;
        status.ready_replicas = leader
            .members
            .iter()
            .filter(|m| m.healthy && leader.lag(m) <= CAUGHT_UP_LAG_ENTRIES)
            .count() as i32;
        let voters: Vec<_> = leader.voters().collect();
        available = is_quorum(voters.iter().filter(|m| m.healthy).count(), voters.len());
    } else {
        // No leader to ask: the members stay as last reported (a recovery
        // from a lost quorum needs the voters), none known to be healthy.
        status.members = previous
            .members
            .iter()
            .map(|m| MemberStatus {
                healthy: false,
                lag: None,
                ..m.clone()
            })
            .collect();
        status.replicas = status.members.len() as i32;
    }
    // The grace period of a recovery counts from the first reconcile that
    // saw the quorum lost; the annotation's value then approves nothing.
    if matches!(
        plan,
        Plan::Wait(WaitReason::QuorumLost { .. }) | Plan::Act(Step::ForceNewCluster { .. })
    ) {
        status.quorum_lost_since = Some(record.quorum_lost_since.map_or(Time(now), Time));
        status.approval_before_loss = if record.quorum_lost_since.is_some() {
            previous.approval_before_loss.clone()
        } else {
            recover_annotation(cluster)
        };
    }
    let first_leader = awaiting_first_leader(previous);
    let (phase, message) = describe(cluster, observed, plan, first_leader);
    status.phase = Some(phase);
    status.message = Some(message.clone());
    let degraded = matches!(phase, Phase::Degraded | Phase::Halted);
    let progressing = match plan {
        Plan::Act(_) => true,
        Plan::Wait(reason) => !is_degrading(reason, first_leader),
        Plan::Done | Plan::Halt(_) => false,
    };
    let reason = match plan {
        Plan::Act(step) => step_name(step),
        Plan::Wait(reason) => wait_name(reason),
        Plan::Done => "UpToDate",
        Plan::Halt(HaltReason::AllVolumesLost) => "AllVolumesLost",
        Plan::Halt(HaltReason::DataWithoutRecord { .. }) => "DataWithoutRecord",
        Plan::Halt(HaltReason::AdoptionMismatch { .. }) => "AdoptionMismatch",
    };
    let availability = if available {
        "a quorum of voters is healthy"
    } else {
        "no healthy quorum of voters is known"
    };
    set_condition(
        &mut status,
        previous,
        "Available",
        available,
        if available {
            "QuorumHealthy"
        } else if first_leader {
            "NoQuorum"
        } else {
            QUORUM_LOST
        },
        availability,
        now,
    );
    set_condition(
        &mut status,
        previous,
        "Progressing",
        progressing,
        reason,
        &message,
        now,
    );
    set_condition(
        &mut status,
        previous,
        "Degraded",
        degraded,
        reason,
        &message,
        now,
    );
    status
}

/// The [`RECOVER_ANNOTATION`]'s value, if it is set and not blank.
pub fn recover_annotation(cluster: &RaftCluster) -> Option<String> {
    let value = cluster.annotations().get(RECOVER_ANNOTATION)?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// The learners' first-seen times, for status.
fn learners(record: &Record) -> Vec<LearnerSince> {
    record
        .learner_since
        .iter()
        .map(|(id, since)| LearnerSince {
            node_id: id.to_string(),
            since: Time(*since),
        })
        .collect()
}

/// The `Available` condition's reason once a cluster that had a healthy
/// quorum lost it; before it ever had one the reason is `NoQuorum`.
const QUORUM_LOST: &str = "QuorumLost";

/// Whether the cluster never had a healthy quorum yet (it is being
/// created): its `Available` condition was never true, which the reason it
/// is false for tells.
pub fn awaiting_first_leader(previous: &RaftClusterStatus) -> bool {
    !previous
        .conditions
        .iter()
        .any(|c| c.type_ == "Available" && (c.status == "True" || c.reason == QUORUM_LOST))
}

/// Whether waiting for `reason` means something is wrong (a warning event
/// and the Degraded condition), not just slow. No leader is normal while
/// the cluster is created (`first_leader`): its first election is under
/// way.
pub fn is_degrading(reason: &WaitReason, first_leader: bool) -> bool {
    if matches!(reason, WaitReason::NoLeader) {
        return !first_leader;
    }
    matches!(
        reason,
        WaitReason::QuorumUnhealthy { .. }
            | WaitReason::RemovalUnsafe { .. }
            | WaitReason::NoTransferTarget
            | WaitReason::ForeignData { .. }
            | WaitReason::UnreadableStatus(_)
            | WaitReason::QuorumLost { .. }
    )
}

fn describe(
    cluster: &RaftCluster,
    observed: &Observed,
    plan: &Plan,
    first_leader: bool,
) -> (Phase, String) {
    let name = cluster.name_any();
    match plan {
        Plan::Done => (
            Phase::Running,
            format!("{} members, all healthy and up to date", cluster.spec.replicas),
        ),
        Plan::Halt(HaltReason::AllVolumesLost) => (
            Phase::Halted,
            "every pod came back with an empty volume: the cluster's data is gone; restore a snapshot into a new RaftCluster (the operator will not bootstrap again)".to_string(),
        ),
        Plan::Halt(HaltReason::DataWithoutRecord { ordinals, found }) => {
            let claims: Vec<String> = ordinals
                .iter()
                .map(|k| format!("data-{name}-{k}"))
                .collect();
            let adopt = match found {
                Some(id) => format!(
                    "to take them over (pod {name}-0 holds cluster {id}), annotate this RaftCluster: kubectl annotate rcfg/{name} {ADOPT_ANNOTATION}={id}; "
                ),
                None => String::new(),
            };
            (
                Phase::Halted,
                format!(
                    "no cluster is recorded, but the volume claims {} of an earlier cluster of this name exist; the operator will not bootstrap next to them: {adopt}or delete them all to start empty (kubectl delete pvc {})",
                    claims.join(", "),
                    claims.join(" ")
                ),
            )
        }
        Plan::Halt(HaltReason::AdoptionMismatch { wanted, found }) => (
            Phase::Halted,
            format!(
                "{ADOPT_ANNOTATION} names cluster {wanted}, but the retained volumes hold cluster {found}: nothing is taken over; correct the annotation or remove it"
            ),
        ),
        Plan::Wait(WaitReason::NoLeader) if first_leader => (
            Phase::Pending,
            "waiting for the first leader to be elected".into(),
        ),
        Plan::Wait(reason) => {
            let phase = if is_degrading(reason, first_leader) {
                Phase::Degraded
            } else if observed.leader.is_none() {
                Phase::Pending
            } else if matches!(reason, WaitReason::MembersCatchingUp) && rolling(cluster, observed) {
                Phase::Rolling
            } else {
                Phase::Scaling
            };
            (phase, wait_sentence(&name, reason))
        }
        Plan::Act(step) => {
            let phase = match step {
                Step::Bootstrap | Step::RecordClusterId { .. } => Phase::Pending,
                Step::ReplacePod { .. } => Phase::Rolling,
                Step::TransferLeadership { .. }
                    if observed.leader.as_ref().map(|l| l.members.len())
                        == Some(cluster.spec.replicas as usize) =>
                {
                    Phase::Rolling
                }
                Step::ScaleStatefulSet { .. } if observed.leader.is_none() => Phase::Pending,
                Step::ForceNewCluster { .. } => Phase::Degraded,
                _ => Phase::Scaling,
            };
            (phase, step_sentence(&name, step))
        }
    }
}

/// Whether some pod still runs an old template.
fn rolling(cluster: &RaftCluster, observed: &Observed) -> bool {
    let current = resources::config_hash(&cluster.spec);
    observed
        .pods
        .values()
        .any(|p| p.config_hash.as_deref() != Some(current.as_str()))
}

fn step_sentence(name: &str, step: &Step) -> String {
    match step {
        Step::ScaleStatefulSet { replicas } => format!("scaling StatefulSet {name} to {replicas}"),
        Step::Bootstrap => format!("bootstrapping the cluster on {name}-0"),
        Step::RecordClusterId { cluster_id } => format!("recording cluster id {cluster_id}"),
        Step::FinishChange { committed: true } => "the membership change committed".into(),
        Step::FinishChange { committed: false } => {
            "the membership change did not take effect".into()
        }
        Step::AddLearner { ordinal, node_id } => {
            format!("adding {name}-{ordinal} (node {node_id}) as a learner")
        }
        Step::Promote { name, node_id } => format!("promoting {name} (node {node_id}) to voter"),
        Step::Remove {
            node_id,
            name,
            reason,
        } => {
            let why = match reason {
                RemoveReason::ScaleIn => "scale in",
                RemoveReason::VolumeLost => "its volume was lost",
                RemoveReason::LearnerTimedOut => "it did not catch up in time",
            };
            format!("removing {name} (node {node_id}): {why}")
        }
        Step::TransferLeadership { from, to } => {
            format!("moving leadership from node {from} to node {to}")
        }
        Step::WipePod { ordinal, node_id } => format!(
            "deleting the volume of {name}-{ordinal}: it holds node {node_id}, which is no longer a member"
        ),
        Step::ReplacePod { ordinal } => {
            format!("replacing {name}-{ordinal} with the current template")
        }
        Step::ForceNewCluster {
            ordinal,
            node_id,
            last_term,
            last_index,
        } => format!(
            "recovering from the lost quorum: {name}-{ordinal} (node {node_id}, last log index {last_index}, term {last_term}) becomes the only voter"
        ),
    }
}

fn wait_sentence(name: &str, reason: &WaitReason) -> String {
    match reason {
        WaitReason::PodNotReporting { ordinal } => {
            format!("waiting for {name}-{ordinal} to start and answer")
        }
        WaitReason::NoLeader => "waiting: no node reports a reachable leader".into(),
        WaitReason::Draining { ordinal } => format!(
            "waiting for {name}-{ordinal} to leave the client Service before its member is removed"
        ),
        WaitReason::QuorumUnhealthy { healthy, voters } => format!(
            "waiting: only {healthy} of {voters} voters are healthy, fewer than a quorum; no step is taken"
        ),
        WaitReason::ChangeInFlight => "waiting for a membership change to commit".into(),
        WaitReason::LearnerCatchingUp { node_id, lag } => {
            format!("waiting for learner node {node_id} to catch up ({lag} entries behind)")
        }
        WaitReason::RemovalUnsafe { node_id } => format!(
            "waiting: removing node {node_id} now would leave fewer healthy voters than a quorum"
        ),
        WaitReason::NoTransferTarget => {
            "waiting: no healthy, caught-up voter can take over leadership".into()
        }
        WaitReason::ForeignData {
            ordinal,
            cluster_id,
        } => format!(
            "{name}-{ordinal} holds data of another cluster ({cluster_id}); delete its PersistentVolumeClaim to let it join"
        ),
        WaitReason::MembersCatchingUp => {
            "waiting for every member to be healthy and caught up".into()
        }
        WaitReason::UnreadableStatus(unreadable) => format!(
            "{unreadable}; the operator takes no step until the status is corrected (kubectl edit --subresource=status raftcluster {name})"
        ),
        WaitReason::QuorumLost {
            survivors,
            voters,
            until,
        } => {
            let lost = format!(
                "quorum lost: only {survivors} of {voters} voters run with their data, so no leader can be elected"
            );
            let approve = format!(
                "kubectl annotate --overwrite rcfg/{name} {RECOVER_ANNOTATION}=$(date +%s)"
            );
            match until {
                RecoveryWait::GracePeriod {
                    remaining,
                    automatic: true,
                } => format!(
                    "{lost}; unless a quorum comes back, the operator recovers from the most up-to-date survivor in {}s (spec.recovery.quorumLoss: Automatic)",
                    remaining.as_secs()
                ),
                RecoveryWait::GracePeriod {
                    remaining,
                    automatic: false,
                } => format!(
                    "{lost}; bring the lost voters back, or in {}s recovery from the most up-to-date survivor may be approved: {approve}",
                    remaining.as_secs()
                ),
                RecoveryWait::Approval => format!(
                    "{lost}; bring the lost voters back, or approve recovery from the most up-to-date survivor (entries only the lost voters held are lost): {approve}"
                ),
                RecoveryWait::Unconfirmed { silent } => format!(
                    "{lost}; {silent} of them do not answer but keep their volume claims, so they may come back and the operator does not recover on its own; bring them back, delete the claims of those that are gone for good, or approve recovery from the most up-to-date survivor: {approve}"
                ),
            }
        }
    }
}

/// The CamelCase name of a step (metrics label and condition reason).
pub fn step_name(step: &Step) -> &'static str {
    match step {
        Step::ScaleStatefulSet { .. } => "ScaleStatefulSet",
        Step::Bootstrap => "Bootstrap",
        Step::RecordClusterId { .. } => "RecordClusterId",
        Step::FinishChange { .. } => "FinishChange",
        Step::AddLearner { .. } => "AddLearner",
        Step::Promote { .. } => "Promote",
        Step::Remove { .. } => "Remove",
        Step::TransferLeadership { .. } => "TransferLeadership",
        Step::WipePod { .. } => "WipePod",
        Step::ReplacePod { .. } => "ReplacePod",
        Step::ForceNewCluster { .. } => "ForceNewCluster",
    }
}

fn wait_name(reason: &WaitReason) -> &'static str {
    match reason {
        WaitReason::PodNotReporting { .. } => "PodNotReporting",
        WaitReason::NoLeader => "NoLeader",
        WaitReason::Draining { .. } => "Draining",
        WaitReason::QuorumUnhealthy { .. } => "QuorumUnhealthy",
        WaitReason::ChangeInFlight => "ChangeInFlight",
        WaitReason::LearnerCatchingUp { .. } => "LearnerCatchingUp",
        WaitReason::RemovalUnsafe { .. } => "RemovalUnsafe",
        WaitReason::NoTransferTarget => "NoTransferTarget",
        WaitReason::ForeignData { .. } => "ForeignData",
        WaitReason::MembersCatchingUp => "MembersCatchingUp",
        WaitReason::UnreadableStatus(_) => "UnreadableStatus",
        WaitReason::QuorumLost { .. } => "QuorumLost",
    }
}

/// Sets a condition, keeping its transition time when its value holds.
fn set_condition(
    status: &mut RaftClusterStatus,
    previous: &RaftClusterStatus,
    kind: &str,
    value: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let value = if value { "True" } else { "False" };
    let since = previous
        .conditions
        .iter()
        .find(|c| c.type_ == kind && c.status == value)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    let condition = Condition {
        type_: kind.to_string(),
        status: value.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time: since,
        observed_generation: status.observed_generation,
    };
    status.conditions.retain(|c| c.type_ != kind);
    status.conditions.push(condition);
    status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::test_cluster;

    #[test]
    fn a_halt_over_an_earlier_clusters_data_names_every_claim() {
        let plan = Plan::Halt(HaltReason::DataWithoutRecord {
            ordinals: vec![1, 2, 3],
            found: None,
        });
        let (phase, message) = describe(&test_cluster(3), &Observed::default(), &plan, false);
        assert_eq!(phase, Phase::Halted);
        assert!(
            message.contains("data-config-1, data-config-2, data-config-3"),
            "{message}"
        );
        assert!(
            message.contains("kubectl delete pvc data-config-1 data-config-2 data-config-3"),
            "{message}"
        );
    }

    #[test]
    fn no_leader_is_degraded_only_once_the_cluster_had_one() {
        let rc = test_cluster(3);
        let plan = Plan::Wait(WaitReason::NoLeader);
        let record = Record {
            cluster_id: None,
            change_in_flight: None,
            learner_since: Default::default(),
            unreadable: None,
            statefulset_floor: 0,
            now: Timestamp::UNIX_EPOCH,
            ..Record::default()
        };
        let observe = |previous: &RaftClusterStatus| {
            observed(
                &rc,
                previous,
                &Observed::default(),
                &record,
                &plan,
                Timestamp::UNIX_EPOCH,
            )
        };
        let condition = |status: &RaftClusterStatus, kind: &str| {
            let c = status.conditions.iter().find(|c| c.type_ == kind).unwrap();
            (c.status.clone(), c.reason.clone())
        };

        // Being created: the first election is under way.
        let creating = observe(&RaftClusterStatus::default());
        assert_eq!(creating.phase, Some(Phase::Pending));
        assert_eq!(
            creating.message.as_deref(),
            Some("waiting for the first leader to be elected")
        );
        assert_eq!(condition(&creating, "Degraded").0, "False");
        assert_eq!(condition(&creating, "Progressing").0, "True");
        assert_eq!(
            condition(&creating, "Available"),
            ("False".into(), "NoQuorum".into())
        );
        assert!(!is_degrading(&WaitReason::NoLeader, true));

        // It had a leader, and lost it.
        let mut was_available = RaftClusterStatus::default();
        set_condition(
            &mut was_available,
            &RaftClusterStatus::default(),
            "Available",
            true,
            "QuorumHealthy",
            "a quorum of voters is healthy",
            Timestamp::UNIX_EPOCH,
        );
        let lost = observe(&was_available);
        assert_eq!(lost.phase, Some(Phase::Degraded));
        assert_eq!(condition(&lost, "Degraded").0, "True");
        assert_eq!(
            condition(&lost, "Available"),
            ("False".into(), "QuorumLost".into())
        );
        // And it stays degraded on the next look.
        assert_eq!(observe(&lost).phase, Some(Phase::Degraded));
    }
}
