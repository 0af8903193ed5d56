//! The healed phase's liveness bounds: once the faults heal, the cluster
//! must converge quickly, with few elections and little term growth, never
//! keep two leaders for long, and hand leadership over in one election.
//! Each run records its worst values ([`Worst`]), which the summary prints.

use std::fmt;

use raftcfg_raft::Role;

use crate::sim::invariants::Violation;
use crate::sim::world::World;

/// Convergence (one leader, everything applied, the final write served),
/// in election timeouts of the slowest clock. See `convergence` for why.
pub const CONVERGENCE_TIMEOUTS: u64 = 15;
/// Elections from healing to convergence.
pub const ELECTIONS_AFTER_HEAL: u64 = 4;
/// Growth of the highest term from healing to convergence.
pub const TERM_GROWTH_AFTER_HEAL: u64 = 6;
/// A leadership transfer in the healed cluster: the target leads, alone,
/// in the next term, with every write proposed before it committed, in
/// election timeouts of the slowest clock.
pub const TRANSFER_TIMEOUTS: u64 = 3;
/// How long two running nodes may both believe they lead once the faults
/// healed, in ticks of the slowest clock.
pub const LEADER_OVERLAP_TICKS: u64 = 4;

/// The worst of each measure, over one run or many.
#[derive(Clone, Copy, Debug, Default)]
pub struct Worst {
    /// Convergence, in tenths of an election timeout.
    pub convergence_tenths: u64,
    pub elections_after_heal: u64,
    pub term_growth_after_heal: u64,
    /// The healed-phase transfer, in tenths of an election timeout.
    pub transfer_tenths: u64,
    /// Two leaders at once, in tenths of a tick.
    pub leader_overlap_tenths: u64,
}

impl Worst {
    pub fn add(&mut self, other: &Worst) {
        self.convergence_tenths = self.convergence_tenths.max(other.convergence_tenths);
        self.elections_after_heal = self.elections_after_heal.max(other.elections_after_heal);
        self.term_growth_after_heal = self
            .term_growth_after_heal
            .max(other.term_growth_after_heal);
        self.transfer_tenths = self.transfer_tenths.max(other.transfer_tenths);
        self.leader_overlap_tenths = self.leader_overlap_tenths.max(other.leader_overlap_tenths);
    }
}

impl fmt::Display for Worst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "convergence {:.1} election timeouts (bound {CONVERGENCE_TIMEOUTS}), {} elections \
             (bound {ELECTIONS_AFTER_HEAL}) and term growth {} (bound \
             {TERM_GROWTH_AFTER_HEAL}) after healing, transfer {:.1} election timeouts (bound \
             {TRANSFER_TIMEOUTS}), two leaders for {:.1} ticks (bound {LEADER_OVERLAP_TICKS})",
            self.convergence_tenths as f64 / 10.0,
            self.elections_after_heal,
            self.term_growth_after_heal,
            self.transfer_tenths as f64 / 10.0,
            self.leader_overlap_tenths as f64 / 10.0,
        )
    }
}

/// Sim units in `n` election timeouts of the slowest clock.
pub fn timeouts(world: &World, n: u64) -> u64 {
    n * u64::from(world.profile.election_timeout_ticks) * world.profile.tick_units.1
}

/// `units` in tenths of an election timeout of the slowest clock.
pub fn tenths_of_timeout(world: &World, units: u64) -> u64 {
    units * 10 / timeouts(world, 1)
}

/// Where the healed phase started: its time, elections and highest term.
pub struct Healed {
    pub at: u64,
    elections: u64,
    max_term: u64,
}

impl Healed {
    pub fn now(world: &World) -> Self {
        Self {
            at: world.now,
            elections: world.history.counters.elections,
            max_term: world.history.max_term.get(),
        }
    }

    /// Records and checks the elections and term growth since healing.
    pub fn check_churn(&self, world: &mut World) -> Result<(), Violation> {
        let elections = world.history.counters.elections - self.elections;
        let growth = world.history.max_term.get() - self.max_term;
        let worst = &mut world.history.counters.worst;
        worst.elections_after_heal = worst.elections_after_heal.max(elections);
        worst.term_growth_after_heal = worst.term_growth_after_heal.max(growth);
        if elections > ELECTIONS_AFTER_HEAL || growth > TERM_GROWTH_AFTER_HEAL {
            return Err(Violation {
                invariant: "liveness",
                detail: format!(
                    "{elections} elections and term growth {growth} between healing and \
                     convergence (bounds {ELECTIONS_AFTER_HEAL} and {TERM_GROWTH_AFTER_HEAL})"
                ),
            });
        }
        Ok(())
    }
}

/// Watches for two running nodes that both believe they lead.
#[derive(Default)]
pub struct LeaderOverlap {
    since: Option<u64>,
}

impl LeaderOverlap {
    /// Whether two nodes believe they lead right now.
    pub fn ongoing(&self) -> bool {
        self.since.is_some()
    }

    /// Checks the world after a step of the healed phase.
    pub fn check(&mut self, world: &mut World) -> Result<(), Violation> {
        let leaders = world
            .cluster
            .nodes
            .values()
            .filter(|n| n.is_up() && n.view.as_ref().is_some_and(|v| v.role == Role::Leader))
            .count();
        if leaders < 2 {
            self.since = None;
            return Ok(());
        }
        let since = *self.since.get_or_insert(world.now);
        let tick = world.profile.tick_units.1;
        let tenths = (world.now - since) * 10 / tick;
        let worst = &mut world.history.counters.worst;
        worst.leader_overlap_tenths = worst.leader_overlap_tenths.max(tenths);
        if tenths > LEADER_OVERLAP_TICKS * 10 {
            return Err(Violation {
                invariant: "liveness",
                detail: format!(
                    "{leaders} nodes have believed they lead for {:.1} ticks since the faults \
                     healed (bound {LEADER_OVERLAP_TICKS}): a stale leader ignores the newer term",
                    tenths as f64 / 10.0
                ),
            });
        }
        Ok(())
    }
}
