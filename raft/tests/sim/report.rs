//! What a run reports: a [`Failure`] with everything needed to understand
//! and replay it, or a [`Summary`] of what the seeds exercised.

use std::fmt;

use crate::sim::history::Counters;
use crate::sim::invariants::Violation;
use crate::sim::world::World;

/// A failed seed.
#[derive(Clone, Debug)]
pub struct Failure {
    pub seed: u64,
    /// The violated invariant ("panic" if the run panicked).
    pub invariant: String,
    pub detail: String,
    pub step: u64,
    pub time: u64,
    pub profile: String,
    pub trace: Vec<String>,
    /// The last role changes, operations and faults.
    pub notable: Vec<String>,
    pub replay: String,
}

impl Failure {
    pub fn new(world: &World, violation: Violation, trace_lines: usize, replay: &str) -> Self {
        Self {
            seed: world.seed,
            invariant: violation.invariant.to_owned(),
            detail: violation.detail,
            step: world.step,
            time: world.now,
            profile: world.profile.to_string(),
            trace: world.trace.last(trace_lines),
            notable: world.trace.notable(),
            replay: replay.replace("{seed}", &world.seed.to_string()),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} violated {} at step {} (sim time {}):",
            self.seed, self.invariant, self.step, self.time
        )?;
        writeln!(f, "  {}", self.detail)?;
        writeln!(f, "profile: {}", self.profile)?;
        writeln!(
            f,
            "last {} notable events (roles, operations, faults):",
            self.notable.len()
        )?;
        for line in &self.notable {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "last {} events:", self.trace.len())?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        write!(f, "replay: {}", self.replay)
    }
}

/// What a batch of seeds exercised.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub seeds: u64,
    pub counters: Counters,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        write!(
            f,
            "{} seeds, {} steps: {} proposals committed ({} acknowledged), {} elections, \
             {} crashes, \
             {} partitions, {} membership changes, {} transfers, {} snapshots installed, \
             {} reads checked ({} NotLeader rejections), {} snapshots behind matching \
             entries; worst: {}",
            self.seeds,
            c.steps,
            c.proposals_committed,
            c.writes_acked,
            c.elections,
            c.crashes,
            c.partitions,
            c.membership_changes,
            c.transfers,
            c.snapshots_installed,
            c.reads_checked,
            c.not_leader_rejections,
            c.snapshots_behind_matching_entries,
            c.worst
        )
    }
}
