//! [`World`]: one seed's simulated world and its step loop. Every step
//! takes the earliest event from the agenda — a node's clock tick, a
//! message arriving, a node carrying out one `Ready` (with the crate's
//! `handle_ready`), a workload operation or a fault — carries it out,
//! observes the nodes it touched, and hands the step's notes to the
//! invariants.

use raftcfg_raft::{
    LeaderSync, LogStorage, LogStore, Membership, Message, MessageBody, NodeId, RawNode, Role,
    handle_ready_with,
};

use crate::sim::agenda::Agenda;
pub use crate::sim::agenda::Event;
use crate::sim::app::ReadyDone;
use crate::sim::cluster::{Cluster, ReadyCrash, View};
use crate::sim::dice::Dice;
use crate::sim::disk::SimDisk;
use crate::sim::history::{History, Note};
use crate::sim::invariants::{Invariants, Violation};
use crate::sim::network::{Network, Routed};
use crate::sim::profile::{Options, Profile};
use crate::sim::trace::{MessageBrief, Trace, TraceEvent};
use crate::sim::workload::Workload;
use crate::sim::{faults, workload};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Faults and workload.
    Faults,
    /// Faults healed; the cluster must converge.
    Converging,
}

pub struct World {
    pub seed: u64,
    pub profile: Profile,
    pub dice: Dice,
    /// Sim time, in units (a node ticks about every 10 units).
    pub now: u64,
    pub step: u64,
    pub phase: Phase,
    agenda: Agenda,
    pub cluster: Cluster,
    pub network: Network,
    pub history: History,
    pub trace: Trace,
    pub workload: Workload,
    /// The step's notes, handed to the invariants at its end.
    pub notes: Vec<Note>,
    /// Something the step loop itself found broken (e.g. a restart refused).
    broken: Option<Violation>,
}

impl World {
    pub fn new(seed: u64, options: &Options, trace_capacity: usize) -> Self {
        let mut dice = Dice::new(seed);
        let mut profile = Profile::draw(options.kind, options.planted_bug, &mut dice);
        if seed % 2 == 1 {
            profile.leader_sync = LeaderSync::Deferred;
        }
        let (cluster, joiners) = Cluster::found(&profile, &mut dice);
        let founders: Vec<NodeId> = cluster
            .nodes
            .keys()
            .copied()
            .filter(|id| !joiners.contains(id))
            .collect();
        let network = Network::new(&profile);
        let mut world = Self {
            seed,
            history: History::new(Membership::with_voters(founders)),
            workload: Workload::new(joiners),
            profile,
            dice,
            now: 0,
            step: 0,
            phase: Phase::Faults,
            agenda: Agenda::default(),
            cluster,
            network,
            trace: Trace::new(trace_capacity),
            notes: Vec::new(),
            broken: None,
        };
        let ids: Vec<NodeId> = world.cluster.nodes.keys().copied().collect();
        for id in ids {
            world.schedule_first_tick(id);
        }
        let gap = world.op_gap();
        world.schedule(gap, Event::Operation);
        let gap = world.fault_gap();
        world.schedule(gap, Event::Fault);
        world
    }

    pub fn schedule(&mut self, delay: u64, event: Event) {
        self.agenda.schedule(self.now + delay, event);
    }

    fn op_gap(&mut self) -> u64 {
        let (low, high) = self.profile.op_gap_units;
        self.dice.range(low, high)
    }

    fn fault_gap(&mut self) -> u64 {
        let (low, high) = self.profile.fault_gap_units;
        self.dice.range(low, high)
    }

    /// Sim units in `ticks` ticks of an average clock.
    pub fn ticks(&self, ticks: u64) -> u64 {
        ticks * (self.profile.tick_units.0 + self.profile.tick_units.1) / 2
    }

    pub fn schedule_first_tick(&mut self, id: NodeId) {
        let node = self.cluster.node(id);
        let (units, incarnation) = (node.tick_units, node.incarnation);
        let delay = self.dice.range(1, units);
        self.schedule(
            delay,
            Event::Tick {
                node: id,
                incarnation,
            },
        );
    }

    pub fn trace(&mut self, event: TraceEvent) {
        self.trace.push(self.step, self.now, event);
    }

    /// Traces an operation on `node`; `accepted` unless the core refused it.
    pub fn trace_operation(&mut self, node: NodeId, what: String, accepted: bool) {
        self.trace(TraceEvent::Operation {
            node,
            what,
            accepted,
        });
    }

    /// Runs events until one is a step (stale events are skipped), then
    /// checks the invariants.
    pub fn step(&mut self, invariants: &mut Invariants) -> Result<(), Violation> {
        loop {
            let Some((time, event)) = self.agenda.pop() else {
                return Err(Violation {
                    invariant: "liveness",
                    detail: "nothing left to happen".into(),
                });
            };
            self.now = time;
            let Some(touched) = self.run(event) else {
                continue;
            };
            self.step += 1;
            self.history.counters.steps += 1;
            for id in touched {
                self.observe(id);
                self.schedule_ready(id);
            }
            if let Some(violation) = self.broken.take() {
                return Err(violation);
            }
            let notes = std::mem::take(&mut self.notes);
            let config_applied = notes.iter().any(|n| {
                matches!(
                    n,
                    Note::Applied {
                        config: Some(_),
                        ..
                    }
                )
            });
            let config_before = config_applied.then(|| self.history.committed_config.clone());
            self.history.absorb(&notes);
            self.trace_writes(&notes);
            let result = invariants.check(self, &notes);
            if let Some((index, before)) = config_before
                && self.history.committed_config.0 != index
            {
                self.decommission_removed(&before);
            }
            self.notes = notes;
            self.notes.clear();
            return result;
        }
    }

    /// Carries out one event; `None` if it no longer applies (not a step).
    fn run(&mut self, event: Event) -> Option<Vec<NodeId>> {
        match event {
            Event::Tick { node, incarnation } => {
                let sim_node = self.cluster.nodes.get_mut(&node)?;
                if sim_node.incarnation != incarnation {
                    return None;
                }
                let raft = sim_node.raft.as_mut()?;
                // The application's timer for held-back commit notices.
                if raft.commit_notices_due() {
                    raft.send_commit_notices();
                }
                raft.tick();
                let units = sim_node.tick_units;
                self.schedule(units, Event::Tick { node, incarnation });
                self.trace(TraceEvent::Tick(node));
                Some(vec![node])
            }
            Event::Ready { node, incarnation } => {
                let sim_node = self.cluster.nodes.get_mut(&node)?;
                if sim_node.incarnation != incarnation || !sim_node.is_up() {
                    return None;
                }
                self.carry_out_ready(node);
                Some(vec![node])
            }
            Event::Synced {
                node,
                incarnation,
                index,
                term,
            } => {
                let sim_node = self.cluster.nodes.get_mut(&node)?;
                if sim_node.incarnation != incarnation {
                    return None;
                }
                let raft = sim_node.raft.as_mut()?;
                raft.storage_mut()
                    .sync()
                    .expect("a simulated sync never fails");
                raft.synced(index, term);
                self.trace(TraceEvent::Synced(node, index));
                Some(vec![node])
            }
            Event::Deliver(message) => {
                let to = message.to;
                if self.network.blocked(&message) {
                    self.trace(TraceEvent::Lost(MessageBrief::of(&message), "partition"));
                    return Some(vec![]);
                }
                let Some(raft) = self
                    .cluster
                    .nodes
                    .get_mut(&to)
                    .and_then(|n| n.raft.as_mut())
                else {
                    self.trace(TraceEvent::Lost(MessageBrief::of(&message), "node down"));
                    return Some(vec![]);
                };
                let brief = MessageBrief::of(&message);
                if lands_behind_matching_entries(raft, &message) {
                    self.history.counters.snapshots_behind_matching_entries += 1;
                }
                raft.step(message);
                self.trace(TraceEvent::Deliver(brief));
                Some(vec![to])
            }
            Event::Operation => {
                if self.phase != Phase::Faults {
                    return None;
                }
                let touched = workload::perform(self);
                let gap = self.op_gap();
                self.schedule(gap, Event::Operation);
                Some(touched)
            }
            Event::Fault => {
                if self.phase != Phase::Faults {
                    return None;
                }
                let touched = faults::inject(self);
                let gap = self.fault_gap();
                self.schedule(gap, Event::Fault);
                Some(touched)
            }
            Event::Restart(node) => {
                let sim_node = self.cluster.nodes.get(&node)?;
                if sim_node.is_up() || sim_node.decommissioned {
                    return None;
                }
                self.restart(node);
                Some(vec![node])
            }
            Event::Heal(id) => {
                self.network.heal(id)?;
                self.trace(TraceEvent::Heal(id));
                Some(vec![])
            }
            Event::Decommission(node) => {
                let sim_node = self.cluster.nodes.get_mut(&node)?;
                if sim_node.decommissioned || self.history.committed_config.1.contains(node) {
                    return None;
                }
                sim_node.decommissioned = true;
                if sim_node.is_up() {
                    self.crash(node);
                }
                self.trace(TraceEvent::Decommission(node));
                Some(vec![])
            }
        }
    }

    /// One `handle_ready` call, then routes the messages and lets the
    /// application compact when its log has grown. A node planned to die
    /// in this `Ready` carries out only part of it and crashes.
    fn carry_out_ready(&mut self, id: NodeId) {
        let threshold = self.profile.compact_threshold_entries;
        let node = self.cluster.node_mut(id);
        node.ready_scheduled = false;
        node.app.done = ReadyDone::default();
        let plan = node.crash_in_ready.take();
        let raft = node.raft.as_mut().expect("up");
        match plan {
            Some(ReadyCrash::After(effects)) => node.fuse.arm(effects),
            Some(ReadyCrash::WriteFails(fault)) => raft.storage_mut().fault = Some(fault),
            None => {}
        }
        let result = handle_ready_with(raft, &mut node.app, self.profile.leader_sync);
        node.fuse.disarm();
        // A Ready without a write leaves its fault unused: it dies anyway.
        raft.storage_mut().fault = None;
        if let Err(e) = &result
            && plan.is_none()
        {
            panic!("node {id}'s disk failed without a planned fault: {e}");
        }
        if plan.is_none() {
            let applied = node.app.state.applied;
            let snapshot = raft.storage().first_index().expect("MemStorage").prev();
            if applied.get() >= snapshot.get() + threshold {
                // Errors (e.g. a compaction already pending) are expected.
                let _ = raft.compact(applied, node.app.state.encode());
            }
        }
        let sync = raft
            .unsynced()
            .filter(|target| node.sync_asked != Some(*target));
        if plan.is_none()
            && let Some((index, term)) = sync
        {
            node.sync_asked = Some((index, term));
            let incarnation = node.incarnation;
            let delay = self.dice.range(0, 2 * self.profile.ready_delay_units + 4);
            self.agenda.schedule(
                self.now + delay,
                Event::Synced {
                    node: id,
                    incarnation,
                    index,
                    term,
                },
            );
        }
        let node = self.cluster.node_mut(id);
        let outbox = std::mem::take(&mut node.app.outbox);
        let done = node.app.done;
        self.notes.append(&mut node.app.notes);
        self.notes.push(Note::Persisted { node: id });
        if let Some(sent) = Note::sent(id, &outbox) {
            self.notes.push(sent);
        }
        self.trace(TraceEvent::Ready(id, done));
        for message in outbox {
            self.send(message);
        }
        if let Some(plan) = plan {
            self.trace(TraceEvent::Phase(match plan {
                ReadyCrash::After(_) => "the process died inside that Ready",
                ReadyCrash::WriteFails(_) => "that Ready's write failed",
            }));
            faults::crash(self, id);
        }
    }

    fn send(&mut self, message: Message) {
        match self.network.route(&mut self.dice, self.now) {
            Routed::Dropped => self.trace(TraceEvent::Lost(MessageBrief::of(&message), "dropped")),
            Routed::Deliver(times) => {
                let last = times.len() - 1;
                let mut message = Some(message);
                for (i, at) in times.into_iter().enumerate() {
                    let copy = if i == last {
                        message.take().expect("one message")
                    } else {
                        message.clone().expect("one message")
                    };
                    self.agenda.schedule(at, Event::Deliver(copy));
                }
            }
        }
    }

    /// Records what a running node looks like after the step touched it.
    fn observe(&mut self, id: NodeId) {
        let node = self.cluster.node_mut(id);
        let Some(raft) = &node.raft else {
            return;
        };
        if self.profile.leader_sync == LeaderSync::Deferred && !raft.storage().has_unsynced() {
            node.app.synced = Some(node.app.state.clone());
        }
        let status = raft.status();
        self.notes.push(Note::Status {
            node: id,
            incarnation: node.incarnation,
            role: status.role,
            term: status.term,
            commit: status.commit,
            durable_term: node.durable_hard_state().term,
        });
        let before = node.view.as_ref();
        let newly_leader = status.role == Role::Leader
            && before.is_none_or(|v| v.role != Role::Leader || v.term != status.term);
        let changed = before.is_none_or(|v| {
            v.role != status.role || v.term != status.term || v.leader_id != status.leader_id
        });
        node.view = Some(View::of(&status));
        if newly_leader {
            self.notes.push(Note::BecameLeader {
                node: id,
                term: status.term,
            });
        }
        if changed {
            self.trace(TraceEvent::Role {
                node: id,
                role: status.role,
                term: status.term,
                leader: status.leader_id,
            });
        }
    }

    fn trace_writes(&mut self, notes: &[Note]) {
        for note in notes {
            match note {
                Note::WriteAcked { node, index } => {
                    self.trace_operation(*node, format!("write at {index} acknowledged"), true)
                }
                Note::WriteFailed { node, index } => self.trace_operation(
                    *node,
                    format!("write at {index} failed (another entry took its index)"),
                    true,
                ),
                _ => {}
            }
        }
    }

    /// Schedules a `Ready` for a node that has one and none scheduled.
    fn schedule_ready(&mut self, id: NodeId) {
        let node = self.cluster.node(id);
        let Some(raft) = &node.raft else {
            return;
        };
        if node.ready_scheduled || !raft.has_ready() {
            return;
        }
        let incarnation = node.incarnation;
        self.cluster.node_mut(id).ready_scheduled = true;
        let delay = self.dice.range(0, self.profile.ready_delay_units);
        self.schedule(
            delay,
            Event::Ready {
                node: id,
                incarnation,
            },
        );
    }

    /// Kills a running node's process.
    pub fn crash(&mut self, id: NodeId) {
        let durable = self.cluster.node_mut(id).crash();
        self.notes.push(Note::Crashed { node: id, durable });
        self.trace(TraceEvent::Crash(id));
    }

    /// Restarts a crashed node from its disk.
    pub fn restart(&mut self, id: NodeId) {
        match self.cluster.node_mut(id).restart() {
            Ok(durable) => {
                let node = self.cluster.node_mut(id);
                self.notes.append(&mut node.app.notes);
                self.notes.push(Note::Restarted { node: id, durable });
                self.trace(TraceEvent::Restart(id));
                self.schedule_first_tick(id);
            }
            Err(e) => {
                self.broken = Some(Violation {
                    invariant: "restart",
                    detail: format!("node {id} cannot restart from its storage: {e}"),
                });
            }
        }
    }

    /// A removal was committed: the removed node is shut down for good a
    /// little later, as an operator would.
    fn decommission_removed(&mut self, before: &Membership) {
        let removed: Vec<NodeId> = before
            .members()
            .filter(|id| !self.history.committed_config.1.contains(*id))
            .collect();
        for id in removed {
            let delay = self.dice.range(0, self.ticks(50));
            self.schedule(delay, Event::Decommission(id));
        }
    }

    /// Ends the fault phase: partitions heal, the network stops dropping
    /// and duplicating, and every crashed node that may still be a member
    /// restarts.
    pub fn heal(&mut self) {
        self.phase = Phase::Converging;
        self.network.calm();
        for node in self.cluster.nodes.values_mut() {
            node.crash_in_ready = None;
        }
        self.trace(TraceEvent::Phase("faults healed"));
        let down: Vec<NodeId> = self
            .cluster
            .nodes
            .values()
            .filter(|n| !n.is_up() && !n.decommissioned)
            .map(|n| n.id)
            .collect();
        for id in down {
            self.restart(id);
            self.observe(id);
            self.schedule_ready(id);
        }
    }
}

/// Whether `message` is a snapshot for a follower that already holds
/// entries after its index, with its term at that index, and has not
/// committed up to it: the case where the follower must keep them.
fn lands_behind_matching_entries(raft: &RawNode<SimDisk>, message: &Message) -> bool {
    let MessageBody::InstallSnapshot { snapshot } = &message.body else {
        return false;
    };
    let (index, term) = (snapshot.metadata.index, snapshot.metadata.term);
    let status = raft.status();
    status.commit < index
        && status.last_index > index
        && raft.storage().term(index).is_ok_and(|t| t == term)
}
