//! Property tests of the operator's planner against a model world.
//!
//! The test owns a small model of everything a reconcile observes: a
//! StatefulSet and its pods (each with a volume holding a node id and
//! maybe a cluster id, and the template hash it started from), a Raft
//! membership (voters and learners by node id, a leader, each node's
//! health and match index, the commit index, a configuration entry that
//! is appended but not committed), and the status the operator recorded
//! (cluster id, the change in flight, when each learner was first seen,
//! the time). The model carries out the planner's steps the way the
//! reconcile loop and Kubernetes and Raft would: a membership change is
//! appended first and commits only once a quorum of the new configuration
//! is healthy; a pod whose volume is empty starts with a fresh node id.
//!
//! Each case is a random sequence of reconciles (each planning one step,
//! which the model then carries out, or leaves in flight as if the
//! operator crashed) interleaved with world events: the spec's replicas
//! (1..=5) or template change, pods restart or are evicted, volumes are
//! lost, leadership moves, members fall sick and recover, time passes, and
//! a new leader may lose an uncommitted configuration entry.
//!
//! After every plan the safety invariants are checked:
//!
//! * (a) no membership step (AddLearner, Promote, Remove) while the leader
//!   has a change pending or the status records one in flight;
//! * (b) no voter is removed unless the healthy voters left are a majority
//!   of the voters left, and the leader is never removed;
//! * (c) Bootstrap only when no cluster id was ever recorded and no volume
//!   holds cluster data. So a case bootstraps at most once, except when
//!   the operator crashed before recording the id and pod 0's volume was
//!   then lost: that cluster left no trace, and bootstrapping again is
//!   right;
//! * (d) no AddLearner while a learner exists;
//! * (e) no member is removed for a scale-in while its pod is still in the
//!   client Service (labelled serving when the reconcile observed it);
//!
//! and a few more that keep the model honest: the StatefulSet moves one
//! pod at a time and never shrinks under a member, a pod is wiped only when
//! its node is no member, a pod is replaced only when every member is
//! healthy and caught up (and the leader's only when it is alone), and
//! leadership moves only from the leader to a healthy voter.
//!
//! Then faults stop (every member heals, every pod runs) and the planner is
//! driven until it reaches the spec: `Done` with as many members as
//! replicas, all voters, on ordinals `0..replicas`, the StatefulSet at
//! `replicas`, and every pod on the spec's template. The one exclusion is a
//! world that cannot get there: a cluster id is recorded and at most half
//! of the voters still have their data, so no leader can ever be elected.
//! Then the planner must wait for a leader, or halt when every pod is
//! empty.
//!
//! The test at the end drives the model into a case the random search
//! once found: a lost volume's member removed and the spec shrunk before
//! the pod was added back, which must still end on ordinals `0..replicas`.
//!
//! Recovery from a lost quorum is not modelled: the record names no
//! voters, so the planner must never force a new cluster (the table in
//! `planner.rs` covers recovery).
//!
//! `PROPTEST_CASES=20000` runs a deeper search than the default 256 cases.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use raftcfg_client::wire::{ClusterId, LogIndex, NodeId, Term};
use raftcfg_operator::crd::{ChangeKind, QuorumLossPolicy};
use raftcfg_operator::observed::{
    LeaderView, NodeReport, Observed, ObservedMember, PodObservation, pod_name,
};
use raftcfg_operator::planner::{
    CAUGHT_UP_LAG_ENTRIES, DesiredState, HaltReason, Plan, Record, RemoveReason, Step, WaitReason,
    next_step,
};

const NAME: &str = "cfg";
const LEARNER_TIMEOUT_SECS: i64 = 60;
/// Time between two world ticks.
const TICK_SECS: i64 = 5;
/// Entries the leader commits per tick.
const WRITES_PER_TICK: u64 = 40;
/// Entries a healthy member catches up per tick (a voter back from a
/// restart lags for a tick).
const CATCH_UP_PER_TICK: u64 = 300;
/// A member further behind gets a snapshot instead, which leaves it this
/// far behind (a new learner lags for two ticks).
const SNAPSHOT_LAG_ENTRIES: u64 = 1_000;
const SNAPSHOT_BEHIND_ENTRIES: u64 = 100;
/// How far behind a member falls in a `FallBehind` event.
const FALL_BEHIND_ENTRIES: u64 = 500;
/// The commit index of a freshly bootstrapped cluster (so a new learner
/// starts well behind).
const BOOTSTRAP_COMMIT: u64 = 1_000;
/// Ticks (each followed by a reconcile) the fault-free phase may take.
const CONVERGE_ROUNDS: usize = 200;

// ---------------------------------------------------------------------------
// The model world
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PodPhase {
    /// Created; its node does not answer yet.
    Starting,
    /// Its node runs and answers.
    Running,
    /// Being deleted; its node still answers until it is gone.
    Terminating,
}

#[derive(Clone, Copy, Debug)]
struct Pod {
    phase: PodPhase,
    /// The template hash it was created from.
    hash: u32,
    /// Its `raftcfg.io/serving` label: true when created, then set by each
    /// reconcile to whether its ordinal is below the spec's replicas.
    serving: bool,
}

/// A pod's persistent volume. No volume at an ordinal means an empty one.
#[derive(Clone, Copy, Debug)]
struct Volume {
    node_id: NodeId,
    cluster_id: Option<ClusterId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Member {
    ordinal: u32,
    voter: bool,
}

type Config = BTreeMap<NodeId, Member>;

#[derive(Clone, Debug)]
struct Model {
    // The spec.
    replicas: u32,
    hash: u32,
    // Kubernetes.
    sts: Option<u32>,
    /// The template new pods get (every reconcile applies the spec's).
    template: u32,
    pods: BTreeMap<u32, Pod>,
    volumes: BTreeMap<u32, Volume>,
    // Raft.
    cluster: Option<ClusterId>,
    config: Config,
    /// While a configuration entry is uncommitted: the one before it.
    before_change: Option<Config>,
    leader: Option<NodeId>,
    commit: u64,
    matched: BTreeMap<NodeId, u64>,
    sick: BTreeSet<NodeId>,
    // What the operator recorded in status.
    recorded: Option<ClusterId>,
    in_flight: Option<(ChangeKind, NodeId)>,
    learner_since: BTreeMap<NodeId, Timestamp>,
    now: Timestamp,
    // Bookkeeping.
    next_node_id: u64,
    bootstraps: u32,
    ever_recorded: bool,
    log: Vec<String>,
}

/// The random events of a case.
#[derive(Clone, Debug)]
enum Event {
    /// One reconcile. `quick`: a membership call answers once committed
    /// (else the operator "crashes" and the change stays in flight), and a
    /// bootstrap's cluster id is written with it (else it is lost).
    Reconcile {
        quick: bool,
    },
    /// Time passes; `revert`: a leader elected now lacks the uncommitted
    /// configuration entry.
    Tick {
        revert: bool,
    },
    SetReplicas(u32),
    NewTemplate,
    /// A running pod's node restarts (`evict`: the pod is deleted and
    /// recreated from the current template).
    RestartPod {
        pick: usize,
        evict: bool,
    },
    LoseVolume {
        pick: usize,
    },
    MoveLeader {
        pick: usize,
    },
    /// A member falls behind the leader (a slow disk); healthy, it
    /// catches up over the next ticks.
    FallBehind {
        pick: usize,
    },
    Sicken {
        pick: usize,
    },
    Heal {
        pick: usize,
    },
    TimeJump,
}

fn hash_name(hash: u32) -> String {
    format!("template-{hash}")
}

fn is_quorum(healthy: usize, voters: usize) -> bool {
    2 * healthy > voters
}

impl Model {
    fn new(replicas: u32) -> Self {
        Self {
            replicas,
            hash: 0,
            sts: None,
            template: 0,
            pods: BTreeMap::new(),
            volumes: BTreeMap::new(),
            cluster: None,
            config: Config::new(),
            before_change: None,
            leader: None,
            commit: 0,
            matched: BTreeMap::new(),
            sick: BTreeSet::new(),
            recorded: None,
            in_flight: None,
            learner_since: BTreeMap::new(),
            now: Timestamp::from_second(1_700_000_000).unwrap(),
            next_node_id: 100,
            bootstraps: 0,
            ever_recorded: false,
            log: Vec::new(),
        }
    }

    // --- what the world is ---------------------------------------------

    /// The ordinal whose volume holds `node_id`.
    fn ordinal_of(&self, node_id: NodeId) -> Option<u32> {
        self.volumes
            .iter()
            .find(|(_, v)| v.node_id == node_id)
            .map(|(o, _)| *o)
    }

    /// The node runs: its volume is in a pod that is not starting.
    fn up(&self, node_id: NodeId) -> bool {
        self.ordinal_of(node_id)
            .and_then(|o| self.pods.get(&o))
            .is_some_and(|p| p.phase != PodPhase::Starting)
    }

    fn healthy(&self, node_id: NodeId) -> bool {
        self.up(node_id) && !self.sick.contains(&node_id)
    }

    fn quorum_healthy(&self, config: &Config) -> bool {
        let voters: Vec<_> = config.iter().filter(|(_, m)| m.voter).collect();
        let healthy = voters.iter().filter(|(id, _)| self.healthy(**id)).count();
        is_quorum(healthy, voters.len())
    }

    fn lag(&self, node_id: NodeId) -> u64 {
        self.commit
            .saturating_sub(self.matched.get(&node_id).copied().unwrap_or(0))
    }

    /// A cluster id is recorded and at most half of the voters still have
    /// their data: no leader can be elected ever again.
    fn dead(&self) -> bool {
        let voters: Vec<_> = self.config.iter().filter(|(_, m)| m.voter).collect();
        let intact = voters
            .iter()
            .filter(|(id, m)| {
                self.volumes
                    .get(&m.ordinal)
                    .is_some_and(|v| v.node_id == **id)
            })
            .count();
        self.recorded.is_some() && !is_quorum(intact, voters.len())
    }

    /// The cluster is what the spec asks for.
    fn matches_spec(&self) -> bool {
        let ordinals: BTreeSet<u32> = self.config.values().map(|m| m.ordinal).collect();
        self.sts == Some(self.replicas)
            && self.config.len() == self.replicas as usize
            && self.config.values().all(|m| m.voter)
            && ordinals == (0..self.replicas).collect()
            && (0..self.replicas).all(|o| {
                self.pods
                    .get(&o)
                    .is_some_and(|p| p.phase == PodPhase::Running && p.hash == self.hash)
            })
            && self.before_change.is_none()
            && self.in_flight.is_none()
            && self.recorded.is_some()
            && self.recorded == self.cluster
    }

    // --- what a reconcile observes -------------------------------------

    fn observe(&self) -> Observed {
        let pods = self
            .pods
            .iter()
            .map(|(o, p)| {
                let node = (p.phase != PodPhase::Starting)
                    .then(|| self.volumes.get(o))
                    .flatten()
                    .map(|v| NodeReport {
                        node_id: v.node_id,
                        cluster_id: v.cluster_id,
                        last_term: Term(0),
                        last_index: LogIndex(self.matched.get(&v.node_id).copied().unwrap_or(0)),
                    });
                let observation = PodObservation {
                    ordinal: *o,
                    terminating: p.phase == PodPhase::Terminating,
                    config_hash: Some(hash_name(p.hash)),
                    serving: p.serving,
                    node,
                };
                (*o, observation)
            })
            .collect();
        let leader = self.leader.filter(|l| self.healthy(*l)).map(|leader_id| {
            let mut members: Vec<ObservedMember> = self
                .config
                .iter()
                .map(|(id, m)| ObservedMember {
                    node_id: *id,
                    name: pod_name(NAME, m.ordinal),
                    voter: m.voter,
                    healthy: self.healthy(*id),
                    match_index: LogIndex(self.matched.get(id).copied().unwrap_or(0)),
                })
                .collect();
            // The leader's list has no promised order: vary it.
            if !members.is_empty() {
                let turn = (self.commit / WRITES_PER_TICK) as usize % members.len();
                members.rotate_left(turn);
            }
            LeaderView {
                leader_id,
                commit_index: LogIndex(self.commit),
                change_pending: self.before_change.is_some(),
                members,
            }
        });
        Observed {
            statefulset_replicas: self.sts,
            pods,
            leader,
            claims: self.volumes.keys().copied().collect(),
        }
    }

    fn desired(&self) -> DesiredState {
        DesiredState {
            name: NAME.to_string(),
            replicas: self.replicas,
            config_hash: hash_name(self.hash),
            learner_timeout: Duration::from_secs(LEARNER_TIMEOUT_SECS as u64),
            adopt: None,
            quorum_loss: QuorumLossPolicy::Manual,
            recovery_grace: Duration::from_secs(300),
            recovery_approved: false,
        }
    }

    /// One reconcile: observe, record learners' first-seen times the way
    /// the reconcile loop does, plan, check the plan, relabel the pods as
    /// the reconcile loop does (after observing them, so the planner sees
    /// a pod leave the client Service one reconcile later), carry it out.
    fn reconcile(&mut self, quick: bool) -> Result<Plan, String> {
        self.template = self.hash;
        let observed = self.observe();
        let learner_since: BTreeMap<NodeId, Timestamp> = observed
            .leader
            .iter()
            .flat_map(|l| l.members.iter().filter(|m| !m.voter))
            .map(|m| {
                let since = self.learner_since.get(&m.node_id).copied();
                (m.node_id, since.unwrap_or(self.now))
            })
            .collect();
        self.learner_since = learner_since.clone();
        let record = Record {
            cluster_id: self.recorded,
            change_in_flight: self.in_flight,
            learner_since,
            unreadable: None,
            statefulset_floor: self
                .config
                .values()
                .map(|m| m.ordinal + 1)
                .max()
                .unwrap_or(0),
            // Recovery from a lost quorum is not modelled (planner.rs's
            // table covers it): with no voters recorded it never happens.
            voters: Vec::new(),
            quorum_lost_since: None,
            now: self.now,
        };
        let plan = next_step(&observed, &self.desired(), &record);
        self.log.push(format!("  plan {plan:?}"));
        if let Plan::Act(step) = &plan {
            self.check(step)
                .map_err(|broken| format!("{broken}\n{}", self.trace()))?;
        }
        for (o, pod) in &mut self.pods {
            if pod.phase != PodPhase::Terminating {
                pod.serving = *o < self.replicas;
            }
        }
        if let Plan::Act(step) = &plan {
            self.carry_out(step, quick);
        }
        Ok(plan)
    }

    // --- the invariants --------------------------------------------------

    fn check(&self, step: &Step) -> Result<(), String> {
        let pending = self.before_change.is_some();
        let any_config = || {
            self.config
                .iter()
                .chain(self.before_change.iter().flatten())
        };
        if matches!(
            step,
            Step::AddLearner { .. } | Step::Promote { .. } | Step::Remove { .. }
        ) && (pending || self.in_flight.is_some())
        {
            return Err(format!(
                "(a) {step:?} while a change is pending ({pending}) or in flight ({:?})",
                self.in_flight
            ));
        }
        match step {
            Step::Remove {
                node_id, reason, ..
            } => {
                if self.leader == Some(*node_id) {
                    return Err(format!("(b) {step:?} removes the leader"));
                }
                let member = self
                    .config
                    .get(node_id)
                    .ok_or_else(|| format!("{step:?} removes a non-member"))?;
                let pod = self.pods.get(&member.ordinal);
                if *reason == RemoveReason::ScaleIn
                    && pod.is_some_and(|p| p.serving && p.phase != PodPhase::Terminating)
                {
                    return Err(format!(
                        "(e) {step:?} while its pod is in the client Service"
                    ));
                }
                if member.voter {
                    let left: Vec<NodeId> = self
                        .config
                        .iter()
                        .filter(|(id, m)| m.voter && *id != node_id)
                        .map(|(id, _)| *id)
                        .collect();
                    let healthy = left.iter().filter(|id| self.healthy(**id)).count();
                    if !is_quorum(healthy, left.len()) {
                        return Err(format!(
                            "(b) {step:?} leaves {healthy} healthy of {} voters",
                            left.len()
                        ));
                    }
                }
            }
            Step::Bootstrap => {
                if self.recorded.is_some() || self.ever_recorded {
                    return Err("(c) Bootstrap after a cluster id was recorded".into());
                }
                if let Some((o, _)) = self.volumes.iter().find(|(_, v)| v.cluster_id.is_some()) {
                    return Err(format!("(c) Bootstrap while pod {o} holds cluster data"));
                }
            }
            Step::AddLearner { ordinal, node_id } => {
                if let Some((id, _)) = self.config.iter().find(|(_, m)| !m.voter) {
                    return Err(format!("(d) {step:?} while node {id} is a learner"));
                }
                if self.volumes.get(ordinal).map(|v| v.node_id) != Some(*node_id) {
                    return Err(format!("{step:?}: pod {ordinal} holds another node"));
                }
                if self.config.contains_key(node_id) {
                    return Err(format!("{step:?}: already a member"));
                }
            }
            Step::Promote { node_id, .. } => {
                let learner = self.config.get(node_id).is_some_and(|m| !m.voter);
                if !learner
                    || !self.healthy(*node_id)
                    || self.lag(*node_id) > CAUGHT_UP_LAG_ENTRIES.get()
                {
                    return Err(format!("{step:?} of no healthy caught-up learner"));
                }
            }
            Step::ScaleStatefulSet { replicas } => {
                let now = self.sts.unwrap_or(0);
                if *replicas != now + 1 && *replicas + 1 != now {
                    return Err(format!("{step:?} from {now}: more than one pod at a time"));
                }
                if let Some((id, m)) = any_config().find(|(_, m)| m.ordinal >= *replicas) {
                    return Err(format!("{step:?} stops pod {} of member {id}", m.ordinal));
                }
            }
            Step::WipePod { ordinal, node_id } => {
                if self.volumes.get(ordinal).map(|v| v.node_id) != Some(*node_id) {
                    return Err(format!("{step:?}: pod {ordinal} holds another node"));
                }
                if any_config().any(|(id, _)| id == node_id) {
                    return Err(format!("{step:?} wipes a member's data"));
                }
            }
            Step::ReplacePod { ordinal } => {
                if let Some((id, _)) = self.config.iter().find(|(id, _)| {
                    !self.healthy(**id) || self.lag(**id) > CAUGHT_UP_LAG_ENTRIES.get()
                }) {
                    return Err(format!("{step:?} while member {id} is unhealthy or behind"));
                }
                let voters = self.config.values().filter(|m| m.voter).count();
                let owner = self.config.iter().find(|(_, m)| m.ordinal == *ordinal);
                if owner.is_some_and(|(id, _)| Some(*id) == self.leader) && voters > 1 {
                    return Err(format!("{step:?} replaces the leader of {voters} voters"));
                }
            }
            Step::TransferLeadership { from, to } => {
                let voter = self.config.get(to).is_some_and(|m| m.voter);
                if self.leader != Some(*from) || from == to || !voter || !self.healthy(*to) {
                    return Err(format!(
                        "{step:?} is no move from the leader to a healthy voter"
                    ));
                }
            }
            Step::FinishChange { .. } => {
                if self.in_flight.is_none() {
                    return Err(format!("{step:?} with nothing in flight"));
                }
            }
            Step::RecordClusterId { cluster_id } => {
                if self.recorded.is_some() || self.cluster != Some(*cluster_id) {
                    return Err(format!("{step:?} records a wrong id"));
                }
            }
            Step::ForceNewCluster { .. } => {
                return Err(format!("{step:?} with no voters recorded and no approval"));
            }
        }
        Ok(())
    }

    // --- carrying out a step ---------------------------------------------

    fn carry_out(&mut self, step: &Step, quick: bool) {
        match step {
            Step::ScaleStatefulSet { replicas } => self.sts = Some(*replicas),
            Step::Bootstrap => {
                let cluster_id = ClusterId(1_000 + u64::from(self.bootstraps));
                let volume = self.volumes.get_mut(&0).expect("pod 0 answered");
                volume.cluster_id = Some(cluster_id);
                let node_id = volume.node_id;
                self.bootstraps += 1;
                self.cluster = Some(cluster_id);
                self.config = Config::from([(
                    node_id,
                    Member {
                        ordinal: 0,
                        voter: true,
                    },
                )]);
                self.before_change = None;
                self.leader = Some(node_id);
                self.commit = BOOTSTRAP_COMMIT;
                self.matched = BTreeMap::from([(node_id, BOOTSTRAP_COMMIT)]);
                if quick {
                    self.recorded = Some(cluster_id);
                    self.ever_recorded = true;
                }
            }
            Step::RecordClusterId { cluster_id } => {
                self.recorded = Some(*cluster_id);
                self.ever_recorded = true;
            }
            Step::FinishChange { .. } => self.in_flight = None,
            Step::AddLearner { ordinal, node_id } => {
                let learner = Member {
                    ordinal: *ordinal,
                    voter: false,
                };
                self.change(ChangeKind::AddLearner, *node_id, quick, |c| {
                    c.insert(*node_id, learner);
                });
                self.matched.insert(*node_id, 0);
                // The leader reaches the new node at once: it now holds
                // this cluster's id, even if the entry is lost later.
                if let Some(o) = self.ordinal_of(*node_id) {
                    self.volumes.get_mut(&o).unwrap().cluster_id = self.cluster;
                }
            }
            Step::Promote { node_id, .. } => {
                self.change(ChangeKind::Promote, *node_id, quick, |c| {
                    if let Some(m) = c.get_mut(node_id) {
                        m.voter = true;
                    }
                });
            }
            Step::Remove { node_id, .. } => {
                self.change(ChangeKind::Remove, *node_id, quick, |c| {
                    c.remove(node_id);
                });
            }
            Step::TransferLeadership { to, .. } => self.leader = Some(*to),
            Step::WipePod { ordinal, .. } => {
                self.volumes.remove(ordinal);
                if let Some(pod) = self.pods.get_mut(ordinal) {
                    pod.phase = PodPhase::Terminating;
                }
            }
            Step::ReplacePod { ordinal } => {
                if let Some(pod) = self.pods.get_mut(ordinal) {
                    pod.phase = PodPhase::Terminating;
                }
            }
            Step::ForceNewCluster { .. } => unreachable!("check refuses it"),
        }
    }

    /// Records the change in flight, appends it, and (when `quick` and a
    /// quorum of the new configuration is healthy) sees it commit and
    /// records that, as a membership call that answers does.
    fn change(
        &mut self,
        kind: ChangeKind,
        node_id: NodeId,
        quick: bool,
        apply: impl FnOnce(&mut Config),
    ) {
        self.in_flight = Some((kind, node_id));
        self.before_change = Some(self.config.clone());
        apply(&mut self.config);
        if quick && self.quorum_healthy(&self.config) {
            self.before_change = None;
            self.in_flight = None;
        }
    }

    // --- the world moving on ---------------------------------------------

    /// Time passes: the leader commits (a pending configuration entry too,
    /// once a quorum of it is healthy) and healthy members catch up, all
    /// with the health they had since the last tick; then pods move on one
    /// phase, and a leader without a healthy quorum steps down or, if
    /// there is none, a healthy quorum elects one.
    fn tick(&mut self, revert: bool) {
        self.now += SignedDuration::from_secs(TICK_SECS);
        if self.leader.is_some() {
            if self.before_change.is_some() && self.quorum_healthy(&self.config) {
                self.before_change = None;
            }
            self.commit += WRITES_PER_TICK;
            let members: Vec<NodeId> = self.config.keys().copied().collect();
            for id in members {
                if !self.healthy(id) {
                    continue;
                }
                let matched = self.matched.entry(id).or_insert(0);
                *matched = if self.commit.saturating_sub(*matched) > SNAPSHOT_LAG_ENTRIES {
                    self.commit - SNAPSHOT_BEHIND_ENTRIES
                } else {
                    (*matched + CATCH_UP_PER_TICK).min(self.commit)
                };
                if let Some(o) = self.ordinal_of(id) {
                    self.volumes.get_mut(&o).unwrap().cluster_id = self.cluster;
                }
            }
        }
        let sts = self.sts.unwrap_or(0);
        let top = self.pods.keys().last().map_or(0, |o| o + 1).max(sts);
        for o in 0..top {
            match self.pods.get(&o).map(|p| p.phase) {
                Some(PodPhase::Terminating) => {
                    self.pods.remove(&o);
                }
                Some(PodPhase::Starting) => {
                    self.pods.get_mut(&o).unwrap().phase = PodPhase::Running;
                    if !self.volumes.contains_key(&o) {
                        let node_id = self.next_node_id;
                        self.next_node_id += 1;
                        let volume = Volume {
                            node_id: NodeId(node_id),
                            cluster_id: None,
                        };
                        self.volumes.insert(o, volume);
                    }
                }
                Some(PodPhase::Running) if o >= sts => {
                    self.pods.get_mut(&o).unwrap().phase = PodPhase::Terminating;
                }
                None if o < sts => {
                    let pod = Pod {
                        phase: PodPhase::Starting,
                        hash: self.template,
                        serving: true,
                    };
                    self.pods.insert(o, pod);
                }
                _ => {}
            }
        }
        self.settle_leader();
        if self.leader.is_some() && !self.quorum_healthy(&self.config) {
            self.leader = None; // check quorum: the leader steps down
        }
        if self.leader.is_none() && self.cluster.is_some() && self.quorum_healthy(&self.config) {
            if revert && let Some(before) = self.before_change.take() {
                self.log
                    .push("  the new leader lacks the uncommitted entry".into());
                self.config = before;
            }
            let elected = self
                .config
                .iter()
                .filter(|(id, m)| m.voter && self.healthy(**id))
                .max_by_key(|(id, _)| (self.matched.get(id).copied(), std::cmp::Reverse(**id)))
                .map(|(id, _)| *id);
            self.leader = elected.filter(|_| self.quorum_healthy(&self.config));
        }
    }

    /// A leader that is down, sick or no voter leads no more.
    fn settle_leader(&mut self) {
        if let Some(leader) = self.leader {
            let voter = self.config.get(&leader).is_some_and(|m| m.voter);
            if !voter || !self.healthy(leader) {
                self.leader = None;
            }
        }
    }

    /// Applies one event; a reconcile's plan goes to `plans`.
    fn apply(&mut self, event: &Event, plans: &mut Vec<Plan>) -> Result<(), String> {
        self.log.push(format!("{event:?}"));
        match *event {
            Event::Reconcile { quick } => plans.push(self.reconcile(quick)?),
            Event::Tick { revert } => self.tick(revert),
            Event::SetReplicas(replicas) => self.replicas = replicas,
            Event::NewTemplate => self.hash += 1,
            Event::RestartPod { pick, evict } => {
                let running: Vec<u32> = self
                    .pods
                    .iter()
                    .filter(|(_, p)| p.phase == PodPhase::Running)
                    .map(|(o, _)| *o)
                    .collect();
                if let Some(o) = pick_from(&running, pick) {
                    // Evicted, the pod is deleted and the StatefulSet
                    // recreates it from the current template; restarted,
                    // the same pod runs its node again.
                    self.pods.get_mut(&o).unwrap().phase = if evict {
                        PodPhase::Terminating
                    } else {
                        PodPhase::Starting
                    };
                }
            }
            Event::LoseVolume { pick } => {
                let ordinals: Vec<u32> = self.volumes.keys().copied().collect();
                if let Some(o) = pick_from(&ordinals, pick) {
                    self.volumes.remove(&o);
                    if let Some(pod) = self.pods.get_mut(&o)
                        && pod.phase == PodPhase::Running
                    {
                        pod.phase = PodPhase::Starting;
                    }
                }
            }
            Event::MoveLeader { pick } => {
                if let Some(leader) = self.leader {
                    let others: Vec<NodeId> = self
                        .config
                        .iter()
                        .filter(|(id, m)| m.voter && **id != leader && self.healthy(**id))
                        .map(|(id, _)| *id)
                        .collect();
                    if let Some(to) = pick_from(&others, pick) {
                        self.leader = Some(to);
                    }
                }
            }
            Event::FallBehind { pick } => {
                let members: Vec<NodeId> = self.config.keys().copied().collect();
                if let Some(id) = pick_from(&members, pick)
                    && Some(id) != self.leader
                {
                    let behind = self.commit.saturating_sub(FALL_BEHIND_ENTRIES);
                    let matched = self.matched.entry(id).or_insert(0);
                    *matched = (*matched).min(behind);
                }
            }
            Event::Sicken { pick } => {
                let members: Vec<NodeId> = self.config.keys().copied().collect();
                if let Some(id) = pick_from(&members, pick) {
                    self.sick.insert(id);
                }
            }
            Event::Heal { pick } => {
                let sick: Vec<NodeId> = self.sick.iter().copied().collect();
                if let Some(id) = pick_from(&sick, pick) {
                    self.sick.remove(&id);
                }
            }
            Event::TimeJump => {
                self.now += SignedDuration::from_secs(LEARNER_TIMEOUT_SECS + 1);
            }
        }
        self.settle_leader();
        Ok(())
    }

    /// The last lines of what happened, for a failure message.
    fn trace(&self) -> String {
        let mut out = String::from("last events and plans:\n");
        for line in self.log.iter().rev().take(40).rev() {
            let _ = writeln!(out, "  {line}");
        }
        let _ = write!(
            out,
            "world: replicas {} hash {} sts {:?} template {}\n  pods {:?}\n  volumes {:?}\n  cluster {:?} recorded {:?} in flight {:?}\n  config {:?} before {:?}\n  leader {:?} commit {} matched {:?} sick {:?}",
            self.replicas,
            self.hash,
            self.sts,
            self.template,
            self.pods,
            self.volumes,
            self.cluster,
            self.recorded,
            self.in_flight,
            self.config,
            self.before_change,
            self.leader,
            self.commit,
            self.matched,
            self.sick,
        );
        out
    }
}

fn pick_from<T: Copy>(items: &[T], pick: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[pick % items.len()])
}

// ---------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------

/// How a case ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The spec was reached.
    Reached,
    /// Too few voters kept their data; the planner waits for a leader.
    DeadWaiting,
    /// Every volume was lost; the planner halted.
    DeadHalted,
}

/// Runs the random events, then lets the world heal and the planner
/// converge.
fn run(replicas: u32, events: &[Event], plans: &mut Vec<Plan>) -> Result<End, String> {
    let mut model = Model::new(replicas);
    for event in events {
        model.apply(event, plans)?;
    }
    converge(&mut model, plans)
}

/// Stops the faults (every member heals; pods keep starting) and drives
/// the planner until it reaches the spec, or sees that the world cannot.
fn converge(model: &mut Model, plans: &mut Vec<Plan>) -> Result<End, String> {
    model.log.push("-- faults stop".into());
    model.sick.clear();
    let dead = model.dead();
    let mut last = None;
    for round in 0..CONVERGE_ROUNDS {
        model.log.push("Tick".into());
        model.tick(false);
        let plan = model.reconcile(round % 3 != 2)?;
        plans.push(plan.clone());
        if dead {
            if !matches!(
                plan,
                Plan::Wait(WaitReason::NoLeader) | Plan::Halt(HaltReason::AllVolumesLost)
            ) {
                return Err(format!(
                    "a world that lost its quorum's data got {plan:?}\n{}",
                    model.trace()
                ));
            }
        } else if plan == Plan::Done && model.matches_spec() {
            return Ok(End::Reached);
        }
        last = Some(plan);
    }
    if dead {
        let sts = model.sts.unwrap_or(0);
        let all_empty = sts > 0
            && (0..sts).all(|o| {
                model
                    .volumes
                    .get(&o)
                    .is_some_and(|v| v.cluster_id.is_none())
            });
        let expected = if all_empty {
            Plan::Halt(HaltReason::AllVolumesLost)
        } else {
            Plan::Wait(WaitReason::NoLeader)
        };
        if last.as_ref() != Some(&expected) {
            return Err(format!(
                "a world that lost its quorum's data ends with {last:?}, not {expected:?}\n{}",
                model.trace()
            ));
        }
        return Ok(if all_empty {
            End::DeadHalted
        } else {
            End::DeadWaiting
        });
    }
    Err(format!(
        "the spec was not reached in {CONVERGE_ROUNDS} rounds; last plan {last:?}\n{}",
        model.trace()
    ))
}

/// One random event. Volume losses are rare: most clusters of one or two
/// members cannot survive one.
fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        80 => any::<bool>().prop_map(|quick| Event::Reconcile { quick }),
        60 => prop::bool::weighted(0.3).prop_map(|revert| Event::Tick { revert }),
        12 => (1..=5u32).prop_map(Event::SetReplicas),
        6 => Just(Event::NewTemplate),
        12 => (0..8usize, any::<bool>()).prop_map(|(pick, evict)| Event::RestartPod { pick, evict }),
        1 => (0..8usize).prop_map(|pick| Event::LoseVolume { pick }),
        6 => (0..8usize).prop_map(|pick| Event::MoveLeader { pick }),
        6 => (0..8usize).prop_map(|pick| Event::FallBehind { pick }),
        8 => (0..8usize).prop_map(|pick| Event::Sicken { pick }),
        8 => (0..8usize).prop_map(|pick| Event::Heal { pick }),
        6 => Just(Event::TimeJump),
    ]
}

fn case() -> impl Strategy<Value = (u32, Vec<Event>)> {
    (1..=5u32, prop::collection::vec(event(), 0..150))
}

/// 256 cases, or `PROPTEST_CASES` for a deeper run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Safety after every plan, then convergence once faults stop.
    #[test]
    fn the_planner_stays_safe_under_random_faults_and_reaches_the_spec_once_they_stop(
        (replicas, events) in case()
    ) {
        let outcome = run(replicas, &events, &mut Vec::new());
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}

/// Three members, pod 1's volume is lost, the planner removes its member,
/// and the spec drops to two before pod 1 is added back. Members (pods 0
/// and 2) then equal replicas, but the planner must still move the member
/// off ordinal 2 and shrink the StatefulSet.
#[test]
fn a_spec_shrunk_after_a_lost_volume_is_reached_on_ordinals_zero_to_replicas() {
    let mut model = Model::new(3);
    let mut plans = Vec::new();
    let start = converge(&mut model, &mut plans);
    assert_eq!(start, Ok(End::Reached), "three members to start with");
    model
        .apply(&Event::LoseVolume { pick: 1 }, &mut plans)
        .unwrap();
    for _ in 0..20 {
        model.tick(false);
        model.reconcile(true).unwrap();
        if !model.config.values().any(|m| m.ordinal == 1) && model.in_flight.is_none() {
            break;
        }
    }
    assert!(
        !model.config.values().any(|m| m.ordinal == 1),
        "the lost member is removed\n{}",
        model.trace()
    );
    model.replicas = 2;
    let end = converge(&mut model, &mut plans);
    assert_eq!(end, Ok(End::Reached), "{}", model.trace());
}

/// The name of a plan's variant.
fn kind(plan: &Plan) -> String {
    match plan {
        Plan::Act(Step::Remove { reason, .. }) => format!("Remove({reason:?})"),
        Plan::Act(Step::FinishChange { committed }) => format!("FinishChange({committed})"),
        Plan::Act(step) => format!("{step:?}")
            .split([' ', '{'])
            .next()
            .unwrap()
            .to_string(),
        Plan::Wait(reason) => format!("Wait::{reason:?}")
            .split([' ', '{'])
            .next()
            .unwrap()
            .to_string(),
        other => format!("{other:?}"),
    }
}

/// The random cases are worth something only if they drive the planner
/// through its steps: 256 fixed-seed cases must between them see every
/// step, every wait the model can cause (not `ForeignData`: the model
/// never holds another cluster's data) and the halt, and both ends of a
/// case (spec reached, quorum's data lost).
#[test]
fn the_model_world_drives_the_planner_through_every_step() {
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    let mut ends = BTreeMap::<String, usize>::new();
    let strategy = case();
    for _ in 0..256 {
        let (replicas, events) = strategy.new_tree(&mut runner).unwrap().current();
        let mut plans = Vec::new();
        let end = run(replicas, &events, &mut plans).unwrap_or_else(|e| panic!("{e}"));
        *ends.entry(format!("{end:?}")).or_default() += 1;
        if plans
            .iter()
            .filter(|p| **p == Plan::Act(Step::Bootstrap))
            .count()
            > 1
        {
            *ends
                .entry("bootstrapped again after losing an unrecorded cluster".into())
                .or_default() += 1;
        }
        seen.extend(plans.iter().map(kind));
    }
    println!("ends: {ends:?}\nplans seen: {seen:?}");
    let expected = [
        "Done",
        "Halt(AllVolumesLost)",
        "ScaleStatefulSet",
        "Bootstrap",
        "RecordClusterId",
        "FinishChange(true)",
        "FinishChange(false)",
        "AddLearner",
        "Promote",
        "Remove(ScaleIn)",
        "Remove(VolumeLost)",
        "Remove(LearnerTimedOut)",
        "TransferLeadership",
        "WipePod",
        "ReplacePod",
        "Wait::PodNotReporting",
        "Wait::NoLeader",
        "Wait::QuorumUnhealthy",
        "Wait::ChangeInFlight",
        "Wait::LearnerCatchingUp",
        "Wait::RemovalUnsafe",
        "Wait::Draining",
        "Wait::NoTransferTarget",
        "Wait::MembersCatchingUp",
    ];
    let missing: Vec<_> = expected.iter().filter(|k| !seen.contains(**k)).collect();
    assert!(
        missing.is_empty(),
        "no case reached {missing:?}; seen {seen:?}"
    );
    for end in ["Reached", "DeadWaiting"] {
        assert!(ends.contains_key(end), "no case ended {end}: {ends:?}");
    }
}
