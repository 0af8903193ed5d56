//! The planner: given what a reconcile observed, what the spec asks for and
//! what the operator recorded before, the single next step (docs/design.md §4).
//!
//! [`next_step`] is a pure function. It never does anything; the reconcile
//! loop carries out at most the one step it returns and asks again. Each
//! rule below is one of docs/design.md §4's steps, tried in its order:
//!
//! 1. bootstrap pod 0 once; never again once a cluster id is recorded;
//! 2. a membership change in flight: wait for it, then record its outcome;
//! 3. a learner: promote it once caught up, remove it after its deadline
//!    (or at once if the spec no longer wants it);
//! 4. a member whose pod reports another node id: remove it if safe;
//! 5. fewer members than replicas: grow the StatefulSet, add the new pod
//!    as a learner;
//! 6. more members than replicas: move leadership off the highest ordinal,
//!    wait until its pod is out of the client Service, remove it, then
//!    shrink the StatefulSet;
//! 7. pods with an old template: replace them one at a time, followers
//!    first, the leader last after a transfer.
//!
//! Nothing is done while a quorum of voters is unhealthy, and no voter is
//! removed unless the healthy voters left are a quorum. The one exception
//! is recovery from a lost quorum ([`Step::ForceNewCluster`]): without a
//! leader, with fewer than a quorum of the recorded voters still holding
//! their data, once the grace period is over and the spec (or a person)
//! allows it, the most up-to-date survivor becomes the only voter; the
//! rules above then add the others back. Nothing at all is
//! done while an id recorded in status does not parse
//! ([`WaitReason::UnreadableStatus`]): a garbled cluster id must not read
//! as "no cluster yet" and lead to a second bootstrap.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use raftcfg_client::wire::{ClusterId, EntryCount, LogIndex, NodeId, Term};

use crate::crd::{ChangeKind, QuorumLossPolicy, UnreadableId};
use crate::observed::{LeaderView, NodeReport, Observed, ObservedMember, ordinal_of, pod_name};

/// A member at most this many entries behind the leader's commit index is
/// caught up (the node itself checks again when asked to promote).
pub const CAUGHT_UP_LAG_ENTRIES: EntryCount = EntryCount(64);

/// What the spec asks for, as the planner needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredState {
    /// The RaftCluster's name (pods are `<name>-<ordinal>`).
    pub name: String,
    /// Members wanted.
    pub replicas: u32,
    /// Hash of the pod template the spec gives.
    pub config_hash: String,
    /// How long a learner may take to catch up.
    pub learner_timeout: Duration,
    /// The cluster whose retained volumes this RaftCluster takes over, as
    /// its `raftcfg.io/adopt-cluster-id` annotation names it.
    pub adopt: Option<ClusterId>,
    /// Recovery from a lost quorum: who decides, and how long a quorum is
    /// waited for first.
    pub quorum_loss: QuorumLossPolicy,
    /// The grace period.
    pub recovery_grace: Duration,
    /// A person asked for this recovery: the `raftcfg.io/recover-quorum`
    /// annotation carries a value set since the quorum was lost, which no
    /// recovery used yet.
    pub recovery_approved: bool,
}

/// What earlier reconciles recorded in status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The cluster id recorded at bootstrap.
    pub cluster_id: Option<ClusterId>,
    /// The membership change started and not yet seen to finish.
    pub change_in_flight: Option<(ChangeKind, NodeId)>,
    /// When each learner was first seen.
    pub learner_since: BTreeMap<NodeId, Timestamp>,
    /// A recorded id that does not parse. The record is then not to be
    /// trusted (a garbled cluster id is not "no cluster"), so the planner
    /// takes no step until it is corrected.
    pub unreadable: Option<UnreadableId>,
    /// One above the highest ordinal of a member last recorded: the
    /// StatefulSet must be at least this large for the members to run.
    pub statefulset_floor: u32,
    /// The voters last reported (node id, pod name).
    pub voters: Vec<(NodeId, String)>,
    /// Since when the quorum has been seen lost (the grace period counts
    /// from there); `None` when it was not, last time.
    pub quorum_lost_since: Option<Timestamp>,
    /// The time of this reconcile.
    pub now: Timestamp,
}

/// The planner's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Carry out this step, then plan again.
    Act(Step),
    /// Nothing to do until the world changes; the reason goes in status.
    Wait(WaitReason),
    /// The cluster matches the spec.
    Done,
    /// Stop and ask a human (the reason goes in status).
    Halt(HaltReason),
}

/// One step the reconcile loop can carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Set the StatefulSet's replicas (creating it if absent).
    ScaleStatefulSet {
        /// The new replica count.
        replicas: u32,
    },
    /// Form a one-voter cluster on pod 0.
    Bootstrap,
    /// Record a cluster id that a pod already has (the operator stopped
    /// between bootstrapping and recording it).
    RecordClusterId {
        /// The id.
        cluster_id: ClusterId,
    },
    /// Record how the change in flight ended.
    FinishChange {
        /// Whether the leader's membership shows it.
        committed: bool,
    },
    /// Add a pod's node as a learner.
    AddLearner {
        /// The pod.
        ordinal: u32,
        /// The node id it reports.
        node_id: NodeId,
    },
    /// Make a caught-up learner a voter.
    Promote {
        /// The learner.
        node_id: NodeId,
        /// Its pod name.
        name: String,
    },
    /// Remove a member.
    Remove {
        /// The member.
        node_id: NodeId,
        /// Its pod name.
        name: String,
        /// Why.
        reason: RemoveReason,
    },
    /// Move leadership to another voter.
    TransferLeadership {
        /// The current leader.
        from: NodeId,
        /// The voter to lead.
        to: NodeId,
    },
    /// Delete a pod's volume claim, then the pod: it holds the data of a
    /// node that is no longer a member and must come back empty.
    WipePod {
        /// The pod.
        ordinal: u32,
        /// The stale node id it reports.
        node_id: NodeId,
    },
    /// Delete a pod so that it restarts from the current template.
    ReplacePod {
        /// The pod.
        ordinal: u32,
    },
    /// Recover from a lost quorum: make the most up-to-date surviving
    /// voter its cluster's only voter, keeping its data.
    ForceNewCluster {
        /// The survivor's pod.
        ordinal: u32,
        /// Its node.
        node_id: NodeId,
        /// The term of its last log entry.
        last_term: Term,
        /// Its last log index.
        last_index: LogIndex,
    },
}

/// Why a member is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveReason {
    /// The spec asks for fewer members.
    ScaleIn,
    /// Its pod came back with an empty volume (a new node id).
    VolumeLost,
    /// It did not catch up as a learner before its deadline.
    LearnerTimedOut,
}

/// Why nothing can be done now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// A pod the next step needs does not answer yet.
    PodNotReporting {
        /// The pod.
        ordinal: u32,
    },
    /// No node names a reachable leader.
    NoLeader,
    /// Fewer than a quorum of voters are healthy.
    QuorumUnhealthy {
        /// Healthy voters.
        healthy: usize,
        /// All voters.
        voters: usize,
    },
    /// A configuration entry is not committed yet.
    ChangeInFlight,
    /// A learner is still catching up.
    LearnerCatchingUp {
        /// The learner.
        node_id: NodeId,
        /// Entries behind.
        lag: EntryCount,
    },
    /// A member leaving for a scale-in is still in the client Service: its
    /// pod is taken out first (the reconcile relabels it), so clients stop
    /// being sent to it before it is removed.
    Draining {
        /// The pod.
        ordinal: u32,
    },
    /// Removing this voter would leave fewer healthy voters than a quorum.
    RemovalUnsafe {
        /// The member.
        node_id: NodeId,
    },
    /// No healthy, caught-up voter can take over leadership.
    NoTransferTarget,
    /// A pod holds data of another cluster; the operator leaves it alone.
    ForeignData {
        /// The pod.
        ordinal: u32,
        /// The cluster its data belongs to.
        cluster_id: ClusterId,
    },
    /// Every member must be healthy and caught up (with its pod running)
    /// before the next pod is replaced or the cluster is called done.
    MembersCatchingUp,
    /// An id the operator recorded in status does not parse; nothing is
    /// done (above all, no bootstrap) until a human corrects it.
    UnreadableStatus(UnreadableId),
    /// Fewer than a quorum of the voters still hold their data and run:
    /// no leader can be elected until they come back or the cluster is
    /// recovered from a survivor.
    QuorumLost {
        /// Voters whose pods answer with their data.
        survivors: usize,
        /// All voters.
        voters: usize,
        /// What the recovery waits for.
        until: RecoveryWait,
    },
}

/// What a recovery from a lost quorum waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryWait {
    /// The grace period: a quorum may still come back. Then the operator
    /// recovers on its own (`automatic`: the spec says so and the loss is
    /// certain) or waits for a person.
    GracePeriod {
        /// Time left.
        remaining: Duration,
        /// The spec says `Automatic`.
        automatic: bool,
    },
    /// A person's go-ahead (`Manual`): the annotation.
    Approval,
    /// `Automatic`, but `silent` voters do not answer while their volume
    /// claims remain: with them a quorum could come back, so only a
    /// person's go-ahead (the annotation) recovers now.
    Unconfirmed {
        /// Voters whose pods do not answer.
        silent: usize,
    },
}

/// Why the operator stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HaltReason {
    /// A cluster id is recorded but every pod came back empty: the data is
    /// gone and bootstrapping again would silently start an empty store.
    AllVolumesLost,
    /// No cluster id is recorded and pod 0 holds no cluster, but the volume
    /// of a higher ordinal exists: data of an earlier cluster of this name.
    DataWithoutRecord {
        /// Every such ordinal above 0, lowest first.
        ordinals: Vec<u32>,
        /// The cluster pod 0's volume holds, if it holds one.
        found: Option<ClusterId>,
    },
    /// The adoption annotation names another cluster than the one the
    /// retained volumes hold.
    AdoptionMismatch {
        /// The annotation's cluster.
        wanted: ClusterId,
        /// The volumes' cluster.
        found: ClusterId,
    },
}

/// The single next step towards `desired`.
pub fn next_step(observed: &Observed, desired: &DesiredState, record: &Record) -> Plan {
    if let Some(unreadable) = &record.unreadable {
        return Plan::Wait(WaitReason::UnreadableStatus(unreadable.clone()));
    }
    let Some(cluster_id) = record.cluster_id else {
        return bootstrap(observed, desired);
    };
    let Some(reported) = &observed.leader else {
        return no_leader(observed, desired, record);
    };
    let leader = &corroborated(reported, observed, desired);
    let (healthy, voters) = healthy_voters(leader.voters());
    if !is_quorum(healthy, voters) {
        return Plan::Wait(WaitReason::QuorumUnhealthy { healthy, voters });
    }
    if leader.change_pending {
        return Plan::Wait(WaitReason::ChangeInFlight);
    }
    if let Some((kind, node_id)) = record.change_in_flight {
        return Plan::Act(Step::FinishChange {
            committed: shows_change(leader, kind, node_id),
        });
    }
    if let Some(plan) = learner(observed, leader, desired, record) {
        return plan;
    }
    if let Some(plan) = lost_volume(observed, leader, desired) {
        return plan;
    }
    let members = leader.members.len() as u32;
    let vacant = vacant_ordinal(leader, desired);
    if members > desired.replicas {
        return scale_in(observed, leader, desired);
    }
    if let Some(ordinal) = vacant {
        // Fewer members than replicas, or a member on an ordinal above
        // them (its pod's volume was lost as the spec shrank): fill the
        // lowest vacant ordinal; step 6 then removes the one above.
        return scale_out(observed, leader, cluster_id, ordinal);
    }
    if let Some(plan) = shrink_statefulset(observed, leader, desired) {
        return plan;
    }
    roll(observed, leader, desired)
}

/// Step 1: StatefulSet to one replica, then bootstrap pod 0; or take
/// over a cluster the pods already hold.
fn bootstrap(observed: &Observed, desired: &DesiredState) -> Plan {
    // Volumes above pod 0 with nothing recorded: an earlier cluster of
    // this name (its RaftCluster deleted and created again) left data.
    // Bootstrapping next to it would start an empty store and hide it;
    // taking it over is done only when the annotation names its cluster.
    let earlier: Vec<u32> = observed.claims.iter().copied().filter(|&k| k > 0).collect();
    let held = observed
        .pods
        .values()
        .find_map(|p| p.node.and_then(|n| n.cluster_id));
    if let Some(cluster_id) = held {
        return match desired.adopt {
            // Only pod 0 ever ran: the operator stopped between
            // bootstrapping it and recording that.
            _ if earlier.is_empty() => Plan::Act(Step::RecordClusterId { cluster_id }),
            Some(wanted) if wanted == cluster_id => Plan::Act(Step::RecordClusterId { cluster_id }),
            Some(wanted) => Plan::Halt(HaltReason::AdoptionMismatch {
                wanted,
                found: cluster_id,
            }),
            None => Plan::Halt(HaltReason::DataWithoutRecord {
                ordinals: earlier,
                found: Some(cluster_id),
            }),
        };
    }
    if !earlier.is_empty() {
        // Pod 0's own volume is retained too: start pod 0 on it to learn
        // which cluster the volumes hold (one member of several can
        // neither elect itself nor be bootstrapped: it holds a cluster).
        if observed.claims.contains(&0) {
            if observed.statefulset_replicas.unwrap_or(0) == 0 {
                return Plan::Act(Step::ScaleStatefulSet { replicas: 1 });
            }
            if observed.pods.get(&0).is_none_or(|pod| pod.node.is_none()) {
                return Plan::Wait(WaitReason::PodNotReporting { ordinal: 0 });
            }
        }
        return Plan::Halt(HaltReason::DataWithoutRecord {
            ordinals: earlier,
            found: None,
        });
    }
    if observed.statefulset_replicas.unwrap_or(0) == 0 {
        return Plan::Act(Step::ScaleStatefulSet { replicas: 1 });
    }
    // Every pod must answer (and, above, be empty): one that does not may
    // hold the cluster, if its record was lost.
    let replicas = observed.statefulset_replicas.unwrap_or(0);
    match (0..replicas).find(|k| {
        observed
            .pods
            .get(k)
            .is_none_or(|pod| pod.terminating || pod.node.is_none())
    }) {
        Some(ordinal) => Plan::Wait(WaitReason::PodNotReporting { ordinal }),
        None => Plan::Act(Step::Bootstrap),
    }
}

/// Without a leader: bring back pods of recorded members that the
/// StatefulSet lost (growing it is always safe), halt if every volume is
/// gone, or wait.
fn no_leader(observed: &Observed, desired: &DesiredState, record: &Record) -> Plan {
    let expected = observed.statefulset_replicas.unwrap_or(0);
    // A cluster taken over from retained volumes: its other members' pods
    // start on their volumes (until they run there is no quorum).
    let adopted = desired.adopt.is_some() && desired.adopt == record.cluster_id;
    let claimed = observed.claims.last().map_or(0, |k| k + 1);
    let floor = if adopted {
        record.statefulset_floor.max(claimed)
    } else {
        record.statefulset_floor
    };
    if expected < floor {
        return Plan::Act(Step::ScaleStatefulSet { replicas: floor });
    }
    let reports: Vec<_> = (0..expected)
        .map(|k| observed.pods.get(&k).and_then(|p| p.node))
        .collect();
    let all_empty = expected > 0
        && reports
            .iter()
            .all(|r| matches!(r, Some(node) if node.cluster_id.is_none()));
    if all_empty {
        return Plan::Halt(HaltReason::AllVolumesLost);
    }
    match record.cluster_id {
        Some(cluster_id) => quorum_loss(observed, desired, record, cluster_id),
        None => None,
    }
    .unwrap_or(Plan::Wait(WaitReason::NoLeader))
}

/// Without a leader: if fewer than a quorum of the recorded voters still
/// run with their data, wait out the grace period and the go-ahead, then
/// force a new cluster on the survivor with the most up-to-date log (the
/// highest last term, then index; the lowest ordinal among equals).
/// `None` while a quorum runs (it will elect a leader) or no voter is
/// left to recover from.
fn quorum_loss(
    observed: &Observed,
    desired: &DesiredState,
    record: &Record,
    cluster_id: ClusterId,
) -> Option<Plan> {
    let voters = record.voters.len();
    let mut survivors: Vec<(u32, NodeReport)> = Vec::new();
    let mut lost = 0;
    for (node_id, name) in &record.voters {
        match voter_state(observed, desired, *node_id, name, cluster_id) {
            VoterState::Survives(ordinal, node) => survivors.push((ordinal, node)),
            VoterState::Lost => lost += 1,
            VoterState::Unknown => {}
        }
    }
    if survivors.is_empty() || is_quorum(survivors.len(), voters) {
        return None;
    }
    // Voters that do not answer may come back with their data: only when
    // even they could not make a quorum is the loss certain.
    let silent = voters - survivors.len() - lost;
    let certain = !is_quorum(survivors.len() + silent, voters);
    let wait = |until| {
        Some(Plan::Wait(WaitReason::QuorumLost {
            survivors: survivors.len(),
            voters,
            until,
        }))
    };
    let since = record.quorum_lost_since.unwrap_or(record.now);
    let waited = record.now.duration_since(since);
    let waited = if waited.is_negative() {
        Duration::ZERO
    } else {
        waited.unsigned_abs()
    };
    let automatic = desired.quorum_loss == QuorumLossPolicy::Automatic;
    if waited < desired.recovery_grace {
        return wait(RecoveryWait::GracePeriod {
            remaining: desired.recovery_grace - waited,
            // Only a certain loss is recovered on its own after it.
            automatic: automatic && certain,
        });
    }
    if !desired.recovery_approved {
        if !automatic {
            return wait(RecoveryWait::Approval);
        }
        if !certain {
            return wait(RecoveryWait::Unconfirmed { silent });
        }
    }
    let (ordinal, node) = survivors
        .iter()
        .max_by_key(|(ordinal, node)| {
            (node.last_term, node.last_index, std::cmp::Reverse(*ordinal))
        })
        .copied()
        .expect("at least one survivor");
    Some(Plan::Act(Step::ForceNewCluster {
        ordinal,
        node_id: node.node_id,
        last_term: node.last_term,
        last_index: node.last_index,
    }))
}

/// What became of a recorded voter, as its pod shows it.
enum VoterState {
    /// Its pod answers as it, with this cluster's data.
    Survives(u32, NodeReport),
    /// Its data is gone: its volume claim is deleted, or its pod answers as
    /// another node (an empty volume).
    Lost,
    /// Its pod does not answer (or is missing, or terminating) while its
    /// claim remains: it may come back with its data.
    Unknown,
}

fn voter_state(
    observed: &Observed,
    desired: &DesiredState,
    node_id: NodeId,
    name: &str,
    cluster_id: ClusterId,
) -> VoterState {
    let Some(ordinal) = ordinal_of(&desired.name, name) else {
        return VoterState::Unknown;
    };
    let node = observed
        .pods
        .get(&ordinal)
        .filter(|p| !p.terminating)
        .and_then(|p| p.node);
    match node {
        Some(node) if node.node_id == node_id && node.cluster_id == Some(cluster_id) => {
            VoterState::Survives(ordinal, node)
        }
        Some(node) if node.node_id != node_id => VoterState::Lost,
        _ if !observed.claims.contains(&ordinal) => VoterState::Lost,
        _ => VoterState::Unknown,
    }
}

/// Step 3: promote or give up on a learner.
fn learner(
    observed: &Observed,
    leader: &LeaderView,
    desired: &DesiredState,
    record: &Record,
) -> Option<Plan> {
    let learner = leader.members.iter().find(|m| !m.voter)?;
    let unwanted = ordinal_of(&desired.name, &learner.name).is_none_or(|k| k >= desired.replicas);
    if unwanted && leader.members.len() as u32 > desired.replicas {
        // The spec shrank while it was catching up: it need not finish.
        return Some(
            draining(observed, desired, learner)
                .unwrap_or_else(|| Plan::Act(remove(learner, RemoveReason::ScaleIn))),
        );
    }
    let lag = leader.lag(learner);
    if learner.healthy && lag <= CAUGHT_UP_LAG_ENTRIES {
        return Some(Plan::Act(Step::Promote {
            node_id: learner.node_id,
            name: learner.name.clone(),
        }));
    }
    let since = record.learner_since.get(&learner.node_id);
    let overdue = since.is_some_and(|since| {
        let age = record.now.duration_since(*since);
        age.is_positive() && age.unsigned_abs() > desired.learner_timeout
    });
    Some(if overdue {
        Plan::Act(remove(learner, RemoveReason::LearnerTimedOut))
    } else {
        Plan::Wait(WaitReason::LearnerCatchingUp {
            node_id: learner.node_id,
            lag,
        })
    })
}

/// Step 4: a member whose pod now holds another node (its volume was lost).
fn lost_volume(observed: &Observed, leader: &LeaderView, desired: &DesiredState) -> Option<Plan> {
    let lost = leader.members.iter().find(|member| {
        ordinal_of(&desired.name, &member.name)
            .and_then(|k| observed.pods.get(&k))
            .filter(|pod| !pod.terminating)
            .and_then(|pod| pod.node)
            .is_some_and(|node| node.node_id != member.node_id)
    })?;
    Some(if removal_keeps_quorum(leader, lost) {
        Plan::Act(remove(lost, RemoveReason::VolumeLost))
    } else {
        Plan::Wait(WaitReason::RemovalUnsafe {
            node_id: lost.node_id,
        })
    })
}

/// The lowest ordinal below the replicas without a member.
fn vacant_ordinal(leader: &LeaderView, desired: &DesiredState) -> Option<u32> {
    (0..desired.replicas).find(|&k| {
        let name = pod_name(&desired.name, k);
        !leader.members.iter().any(|m| m.name == name)
    })
}

/// Step 5: the pod at the vacant `ordinal` joins.
fn scale_out(
    observed: &Observed,
    leader: &LeaderView,
    cluster_id: ClusterId,
    ordinal: u32,
) -> Plan {
    if observed.statefulset_replicas.unwrap_or(0) <= ordinal {
        return Plan::Act(Step::ScaleStatefulSet {
            replicas: ordinal + 1,
        });
    }
    let Some(node) = observed
        .pods
        .get(&ordinal)
        .filter(|p| !p.terminating)
        .and_then(|p| p.node)
    else {
        return Plan::Wait(WaitReason::PodNotReporting { ordinal });
    };
    match node.cluster_id {
        None => Plan::Act(Step::AddLearner {
            ordinal,
            node_id: node.node_id,
        }),
        // A member under another name (its address learned before its
        // entry applied) is never wiped: wait until the names agree.
        Some(id) if id == cluster_id && leader.member(node.node_id).is_some() => {
            Plan::Wait(WaitReason::PodNotReporting { ordinal })
        }
        Some(id) if id == cluster_id => Plan::Act(Step::WipePod {
            ordinal,
            node_id: node.node_id,
        }),
        Some(other) => Plan::Wait(WaitReason::ForeignData {
            ordinal,
            cluster_id: other,
        }),
    }
}

/// Step 6: the highest ordinal leaves, after handing over leadership.
fn scale_in(observed: &Observed, leader: &LeaderView, desired: &DesiredState) -> Plan {
    let victim = leader
        .members
        .iter()
        .max_by_key(|m| ordinal_of(&desired.name, &m.name).map_or(u64::MAX, u64::from))
        .expect("more members than replicas means at least one member");
    if victim.node_id == leader.leader_id {
        return transfer_from(leader, victim.node_id);
    }
    if !removal_keeps_quorum(leader, victim) {
        return Plan::Wait(WaitReason::RemovalUnsafe {
            node_id: victim.node_id,
        });
    }
    draining(observed, desired, victim)
        .unwrap_or_else(|| Plan::Act(remove(victim, RemoveReason::ScaleIn)))
}

/// A wait while `member`'s pod is still in the client Service; `None`
/// once it is out (or has no pod to be in, or sits on an ordinal the spec
/// keeps: its label stays on, so waiting would never end).
fn draining(observed: &Observed, desired: &DesiredState, member: &ObservedMember) -> Option<Plan> {
    let ordinal = ordinal_of(&desired.name, &member.name)?;
    if ordinal < desired.replicas {
        return None;
    }
    observed
        .pods
        .get(&ordinal)
        .filter(|pod| pod.serving && !pod.terminating)
        .map(|_| Plan::Wait(WaitReason::Draining { ordinal }))
}

/// Step 6, second half: pods above the members go once they are removed.
fn shrink_statefulset(
    observed: &Observed,
    leader: &LeaderView,
    desired: &DesiredState,
) -> Option<Plan> {
    let replicas = observed.statefulset_replicas?;
    if replicas <= desired.replicas {
        return None;
    }
    let top = pod_name(&desired.name, replicas - 1);
    let top_node = observed.pods.get(&(replicas - 1)).and_then(|p| p.node);
    if leader.members.iter().any(|m| m.name == top)
        || top_node.is_some_and(|node| leader.member(node.node_id).is_some())
    {
        return None;
    }
    Some(Plan::Act(Step::ScaleStatefulSet {
        replicas: replicas - 1,
    }))
}

/// Step 7: replace pods whose template is old, one at a time; done once
/// every member is healthy, caught up and on the current template.
fn roll(observed: &Observed, leader: &LeaderView, desired: &DesiredState) -> Plan {
    let stale = |k: u32| {
        observed
            .pods
            .get(&k)
            .is_some_and(|p| p.config_hash.as_deref() != Some(desired.config_hash.as_str()))
    };
    let mut owners: Vec<(u32, &ObservedMember)> = leader
        .members
        .iter()
        .filter_map(|m| ordinal_of(&desired.name, &m.name).map(|k| (k, m)))
        .collect();
    owners.sort_by_key(|(k, _)| *k);
    let settled = owners.iter().all(|(k, m)| {
        m.healthy
            && leader.lag(m) <= CAUGHT_UP_LAG_ENTRIES
            && observed
                .pods
                .get(k)
                .is_some_and(|p| !p.terminating && p.node.is_some())
    });
    if !settled {
        return Plan::Wait(WaitReason::MembersCatchingUp);
    }
    if !owners.iter().any(|(k, _)| stale(*k)) {
        return Plan::Done;
    }
    let follower = owners
        .iter()
        .rev()
        .find(|(k, m)| stale(*k) && m.node_id != leader.leader_id);
    if let Some((ordinal, _)) = follower {
        return Plan::Act(Step::ReplacePod { ordinal: *ordinal });
    }
    let (ordinal, _) = owners
        .iter()
        .find(|(_, m)| m.node_id == leader.leader_id)
        .expect("a stale pod that is no follower is the leader's");
    if leader.voters().count() == 1 {
        // A one-member cluster has nobody to hand over to.
        return Plan::Act(Step::ReplacePod { ordinal: *ordinal });
    }
    transfer_from(leader, leader.leader_id)
}

/// Leadership to the most caught-up healthy voter other than `from`.
fn transfer_from(leader: &LeaderView, from: NodeId) -> Plan {
    leader
        .voters()
        .filter(|m| m.node_id != from && m.healthy && leader.lag(m) <= CAUGHT_UP_LAG_ENTRIES)
        .max_by_key(|m| (m.match_index, std::cmp::Reverse(m.node_id)))
        .map_or(Plan::Wait(WaitReason::NoTransferTarget), |to| {
            Plan::Act(Step::TransferLeadership {
                from,
                to: to.node_id,
            })
        })
}

fn remove(member: &ObservedMember, reason: RemoveReason) -> Step {
    Step::Remove {
        node_id: member.node_id,
        name: member.name.clone(),
        reason,
    }
}

/// Whether the membership the leader reports shows the change.
fn shows_change(leader: &LeaderView, kind: ChangeKind, node_id: NodeId) -> bool {
    let member = leader.member(node_id);
    match kind {
        ChangeKind::AddLearner => member.is_some(),
        ChangeKind::Promote => member.is_some_and(|m| m.voter),
        ChangeKind::Remove => member.is_none(),
    }
}

/// The leader's view with each member's health also confirmed by what the
/// operator saw itself: the leader calls a member healthy for up to an
/// election timeout after it last heard from it, but a member whose pod
/// is gone, terminating, silent or holding another node is down now.
fn corroborated(leader: &LeaderView, observed: &Observed, desired: &DesiredState) -> LeaderView {
    let mut view = leader.clone();
    for member in &mut view.members {
        let Some(ordinal) = ordinal_of(&desired.name, &member.name) else {
            continue; // Not one of this StatefulSet's pods: trust the leader.
        };
        let pod_agrees = observed.pods.get(&ordinal).is_some_and(|pod| {
            !pod.terminating && pod.node.is_some_and(|node| node.node_id == member.node_id)
        });
        member.healthy &= pod_agrees || member.node_id == leader.leader_id;
    }
    view
}

/// (healthy, all) among `voters`.
fn healthy_voters<'a>(voters: impl Iterator<Item = &'a ObservedMember>) -> (usize, usize) {
    voters.fold((0, 0), |(healthy, all), m| {
        (healthy + usize::from(m.healthy), all + 1)
    })
}

/// Whether `healthy` of `voters` is a majority.
pub fn is_quorum(healthy: usize, voters: usize) -> bool {
    2 * healthy > voters
}

/// Whether the healthy voters left after removing `member` are a quorum of
/// the voters left. Removing a learner never changes the quorum.
pub fn removal_keeps_quorum(leader: &LeaderView, member: &ObservedMember) -> bool {
    if !member.voter {
        return true;
    }
    let (healthy, voters) = healthy_voters(leader.voters().filter(|m| m.node_id != member.node_id));
    voters > 0 && is_quorum(healthy, voters)
}
