//! [`Profile`]: every knob of one run, drawn from the seed. The standard
//! profile mixes all faults moderately; the hunting profiles turn up the
//! faults and operations that expose one planted bug. Same simulator,
//! different knobs.

use std::fmt;

use raftcfg_raft::{Config, LeaderSync, NodeId, PlantedBug};

use crate::sim::dice::Dice;

/// Which family of profiles a run draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // each test crate constructs only its own kind
pub enum ProfileKind {
    /// All faults, moderately: the simulation test.
    Standard,
    /// Aggressive knobs aimed at one planted bug.
    Hunt(PlantedBug),
}

/// How to run seeds.
#[derive(Clone, Debug)]
pub struct Options {
    pub kind: ProfileKind,
    /// The bug planted in every node, if any.
    pub planted_bug: Option<PlantedBug>,
    /// The command that replays a seed (`{seed}` is replaced).
    pub replay: String,
    /// Print the end of the trace even when the seed passes.
    pub show_trace: bool,
}

/// Relative weights of the workload's operations.
#[derive(Clone, Copy, Debug)]
pub struct OpWeights {
    pub propose: u32,
    pub read: u32,
    pub membership: u32,
    pub transfer: u32,
    pub compact: u32,
}

/// Relative weights of the faults.
#[derive(Clone, Copy, Debug)]
pub struct FaultWeights {
    pub nothing: u32,
    pub crash: u32,
    pub crash_leader: u32,
    pub split: u32,
    pub isolate_leader: u32,
    pub one_way: u32,
    /// The process dies inside its next `Ready`, or its write fails.
    pub crash_in_ready: u32,
}

/// The knobs of one run.
#[derive(Clone, Debug)]
pub struct Profile {
    pub kind: ProfileKind,
    pub planted_bug: Option<PlantedBug>,
    /// Nodes at the start: 1, 3, 5 or 7.
    pub cluster_size: usize,
    /// Found with node 1 alone and let the others join.
    pub join_path: bool,
    pub election_timeout_ticks: u32,
    pub heartbeat_interval_ticks: u32,
    pub max_append_bytes: u64,
    pub max_inflight_appends: usize,
    pub max_inflight_bytes: u64,
    /// Ticks a leader waits for a sent snapshot to be taken.
    pub snapshot_timeout_ticks: u32,
    pub max_apply_bytes: u64,
    /// Leaders hold back commit-only appends; the simulated application
    /// sends them on each tick.
    pub defer_commit_notices: bool,
    /// Range of sim time units per tick (each node draws its own rate).
    pub tick_units: (u64, u64),
    /// Longest wait between an input and the `Ready` that carries it out.
    pub ready_delay_units: u64,
    /// Steps before the faults heal.
    pub fault_steps: u64,
    /// Network: base delay range, and the extra delay some messages get.
    pub delay_units: (u64, u64),
    pub extra_delay_permille: u32,
    pub max_extra_delay_units: u64,
    /// Rarely, a message is held for very long (it arrives terms later).
    pub long_delay_permille: u32,
    pub max_long_delay_units: u64,
    pub drop_permille: u32,
    pub duplicate_permille: u32,
    /// Faults: gap between decisions, what they are, and how long they last.
    pub fault_gap_units: (u64, u64),
    pub faults: FaultWeights,
    pub downtime_ticks: (u64, u64),
    pub partition_ticks: (u64, u64),
    /// Workload: gap between operations and their mix.
    pub op_gap_units: (u64, u64),
    pub ops: OpWeights,
    pub keys: u64,
    /// The application compacts once this many entries are applied past
    /// its last snapshot.
    pub compact_threshold_entries: u64,
    /// How leaders sync their log writes: deferred on odd seeds (set by
    /// the world, so that drawing it changes no other knob of a seed).
    pub leader_sync: LeaderSync,
}

impl Profile {
    pub fn draw(kind: ProfileKind, planted_bug: Option<PlantedBug>, dice: &mut Dice) -> Self {
        let mut profile = Self::standard(kind, planted_bug, dice);
        if let ProfileKind::Hunt(bug) = kind {
            profile.sharpen_for(bug, dice);
        }
        profile
    }

    fn standard(kind: ProfileKind, planted_bug: Option<PlantedBug>, dice: &mut Dice) -> Self {
        let cluster_size = [1, 3, 3, 3, 5, 5, 5, 7][dice.range(0, 7) as usize];
        let lossy = dice.chance(700);
        let partitions = dice.chance(800);
        let crashes = dice.chance(800);
        let slow_disk = dice.chance(150);
        let election_timeout_ticks = dice.range(8, 12) as u32;
        Self {
            kind,
            planted_bug,
            cluster_size,
            join_path: cluster_size > 1 && dice.chance(300),
            election_timeout_ticks,
            heartbeat_interval_ticks: dice.range(1, 2) as u32,
            max_append_bytes: [64, 256, 4096, 1 << 20][dice.range(0, 3) as usize],
            max_inflight_appends: dice.range(1, 8) as usize,
            max_inflight_bytes: [200, 2_000, 32 << 20][dice.range(0, 2) as usize],
            snapshot_timeout_ticks: election_timeout_ticks * dice.range(1, 3) as u32,
            max_apply_bytes: [64, 1 << 20][dice.range(0, 1) as usize],
            // Clocks drift by up to ±10%, on some seeds by up to ±40%.
            tick_units: if dice.chance(200) { (6, 14) } else { (9, 11) },
            ready_delay_units: if slow_disk { 15 } else { dice.range(0, 3) },
            fault_steps: dice.range(3_000, 12_000),
            delay_units: (1, 3),
            extra_delay_permille: if lossy { dice.range(0, 200) as u32 } else { 0 },
            max_extra_delay_units: dice.range(5, 40),
            long_delay_permille: if lossy { dice.range(0, 5) as u32 } else { 0 },
            max_long_delay_units: 300,
            drop_permille: if lossy { dice.range(0, 80) as u32 } else { 0 },
            duplicate_permille: if lossy { dice.range(0, 40) as u32 } else { 0 },
            fault_gap_units: (50, 400),
            faults: FaultWeights {
                nothing: 4,
                crash: if crashes { 3 } else { 0 },
                crash_leader: if crashes { 2 } else { 0 },
                split: if partitions { 2 } else { 0 },
                isolate_leader: if partitions { 2 } else { 0 },
                one_way: if partitions { 1 } else { 0 },
                crash_in_ready: if crashes { 2 } else { 0 },
            },
            downtime_ticks: (5, 80),
            partition_ticks: (10, 120),
            op_gap_units: (1, dice.range(8, 30)),
            ops: OpWeights {
                propose: 10,
                read: 4,
                membership: if cluster_size == 1 { 1 } else { 2 },
                transfer: 1,
                compact: 1,
            },
            keys: dice.range(2, 12),
            compact_threshold_entries: dice.range(15, 200),
            leader_sync: LeaderSync::Inline,
            defer_commit_notices: dice.chance(500),
        }
    }

    /// Turns the knobs that expose `bug` all the way up.
    fn sharpen_for(&mut self, bug: PlantedBug, dice: &mut Dice) {
        self.fault_steps = dice.range(3_000, 6_000);
        self.fault_gap_units = (20, 120);
        self.downtime_ticks = (3, 40);
        self.partition_ticks = (10, 60);
        match bug {
            PlantedBug::CommitPreviousTermByCounting => {
                // Leaders come and go; entries of old terms linger
                // half-replicated; one entry per append, so a new leader
                // replicates old-term entries before its own no-op (a few
                // in flight, so catching up a long tail stays quick).
                self.cluster_size = [3, 3, 5][dice.range(0, 2) as usize];
                self.join_path = false;
                self.max_append_bytes = 1;
                self.max_inflight_appends = 4;
                self.faults = FaultWeights {
                    nothing: 1,
                    crash: 3,
                    crash_leader: 6,
                    split: 2,
                    isolate_leader: 4,
                    one_way: 1,
                    crash_in_ready: 0,
                };
                self.op_gap_units = (1, 4);
                self.ops = OpWeights {
                    propose: 20,
                    read: 0,
                    membership: 0,
                    transfer: 2,
                    compact: 1,
                };
            }
            PlantedBug::VoteWithoutLogCheck => {
                // Nodes fall behind (down or cut off for long) while writes
                // commit, then come back and campaign with stale logs.
                self.cluster_size = [3, 5][dice.range(0, 1) as usize];
                self.join_path = false;
                self.downtime_ticks = (20, 100);
                self.partition_ticks = (30, 120);
                self.faults = FaultWeights {
                    nothing: 1,
                    crash: 4,
                    crash_leader: 2,
                    split: 3,
                    isolate_leader: 2,
                    one_way: 1,
                    crash_in_ready: 0,
                };
                self.op_gap_units = (1, 4);
                self.ops = OpWeights {
                    propose: 20,
                    read: 0,
                    membership: 0,
                    transfer: 1,
                    compact: 1,
                };
            }
            PlantedBug::SecondPendingConfig => {
                self.cluster_size = [3, 5][dice.range(0, 1) as usize];
                self.faults.isolate_leader = 4;
                self.faults.split = 3;
                self.op_gap_units = (1, 6);
                self.ops = OpWeights {
                    propose: 4,
                    read: 0,
                    membership: 10,
                    transfer: 1,
                    compact: 1,
                };
            }
            PlantedBug::ReadIndexWithoutQuorum => {
                self.cluster_size = [3, 5][dice.range(0, 1) as usize];
                self.join_path = false;
                self.faults = FaultWeights {
                    nothing: 1,
                    crash: 1,
                    crash_leader: 1,
                    split: 3,
                    isolate_leader: 6,
                    one_way: 2,
                    crash_in_ready: 0,
                };
                self.op_gap_units = (1, 4);
                self.ops = OpWeights {
                    propose: 10,
                    read: 10,
                    membership: 0,
                    transfer: 1,
                    compact: 1,
                };
            }
            PlantedBug::SendBeforePersist => {
                // Processes die inside their Readies, between sends and
                // writes, while votes and acknowledgements flow.
                self.cluster_size = [3, 5][dice.range(0, 1) as usize];
                self.faults = FaultWeights {
                    nothing: 1,
                    crash: 1,
                    crash_leader: 1,
                    split: 1,
                    isolate_leader: 2,
                    one_way: 0,
                    crash_in_ready: 8,
                };
                self.op_gap_units = (1, 4);
            }
            PlantedBug::SnapshotDiscardsMatchingEntries => {
                // Snapshots often, sent again soon, held up or duplicated
                // while the follower catches up by appends; slow disks and
                // small appends keep followers a little behind.
                self.cluster_size = 3;
                self.join_path = false;
                self.compact_threshold_entries = dice.range(2, 8);
                self.snapshot_timeout_ticks = self.election_timeout_ticks;
                self.max_append_bytes = 64;
                self.max_inflight_appends = 2;
                self.ready_delay_units = 15;
                self.duplicate_permille = 100;
                self.extra_delay_permille = 300;
                self.max_extra_delay_units = 80;
                self.long_delay_permille = 10;
                self.op_gap_units = (1, 4);
                self.ops.compact = 6;
            }
            PlantedBug::StaleAppendTruncates => {
                // Many small appends in flight, reordered and duplicated.
                self.cluster_size = [3, 5][dice.range(0, 1) as usize];
                self.max_append_bytes = 64;
                self.max_inflight_appends = 8;
                self.max_inflight_bytes = 32 << 20;
                self.duplicate_permille = 100;
                self.extra_delay_permille = 400;
                self.max_extra_delay_units = 60;
                self.op_gap_units = (1, 3);
            }
            PlantedBug::TimeoutNowToLaggingTarget | PlantedBug::LeaderIgnoresHigherTerm => {
                // Caught by the healed phase's transfer and its bounds:
                // short fault phases, slow catch-up, many seeds.
                self.cluster_size = [2, 3, 5][dice.range(0, 2) as usize];
                self.join_path = false;
                self.fault_steps = dice.range(500, 1_500);
                self.max_append_bytes = 64;
                self.max_inflight_appends = 1;
            }
            PlantedBug::PreVoteMovesTerm => {
                // Nodes cut off campaign alone, then rejoin.
                self.cluster_size = [3, 5][dice.range(0, 1) as usize];
                self.faults.split = 3;
                self.faults.isolate_leader = 3;
            }
        }
    }

    /// The configuration of a new node.
    pub fn node_config(&self, id: NodeId, seed: u64) -> Config {
        let mut config = Config::new(id);
        config.seed = seed;
        config.election_timeout_ticks = self.election_timeout_ticks;
        config.heartbeat_interval_ticks = self.heartbeat_interval_ticks;
        config.max_append_bytes = self.max_append_bytes;
        config.max_inflight_appends = self.max_inflight_appends;
        config.max_inflight_bytes = self.max_inflight_bytes;
        config.snapshot_timeout_ticks = self.snapshot_timeout_ticks;
        config.max_apply_bytes = self.max_apply_bytes;
        config.planted_bug = self.planted_bug;
        config.defer_commit_notices = self.defer_commit_notices;
        config
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}, {} nodes{}, election timeout {} ticks, heartbeat {} ticks, append {} B x{} \
             (in flight {} B), snapshot timeout {} ticks, apply {} B, ready delay {}, \
             drop {}‰, dup {}‰, delay +{}‰ up to {}, faults {:?}, ops {:?}, \
             compact every {}, {} fault steps, leader sync {:?}, deferred commit notices {}",
            self.kind,
            self.cluster_size,
            if self.join_path { " (join path)" } else { "" },
            self.election_timeout_ticks,
            self.heartbeat_interval_ticks,
            self.max_append_bytes,
            self.max_inflight_appends,
            self.max_inflight_bytes,
            self.snapshot_timeout_ticks,
            self.max_apply_bytes,
            self.ready_delay_units,
            self.drop_permille,
            self.duplicate_permille,
            self.extra_delay_permille,
            self.max_extra_delay_units,
            self.faults,
            self.ops,
            self.compact_threshold_entries,
            self.fault_steps,
            self.leader_sync,
            self.defer_commit_notices,
        )?;
        if let Some(bug) = self.planted_bug {
            write!(f, ", planted bug {bug:?}")?;
        }
        Ok(())
    }
}
