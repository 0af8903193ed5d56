//! The safety invariants, one per file, each checked after every step of
//! every run. An invariant sees the step's [`Note`]s and the whole
//! [`World`] (read-only) and keeps whatever memory it needs; it must not
//! change the world or draw randomness.

mod applied_state;
mod committed_kept;
mod durable_promises;
mod election_safety;
mod leader_completeness;
mod log_matching;
mod monotonicity;
mod read_linearizability;
mod single_pending_config;
mod state_machine_safety;
mod term_origin;

use std::fmt;

use crate::sim::history::Note;
use crate::sim::world::World;

/// A broken invariant (or a failure to converge), with its context.
#[derive(Clone, Debug)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

/// One property of every execution.
pub trait Invariant {
    /// The name reported when it is violated.
    fn name(&self) -> &'static str;
    /// Checks the step that produced `notes`; `Err` describes the violation.
    fn check(&mut self, world: &World, notes: &[Note]) -> Result<(), String>;
}

/// All invariants, in a fixed order.
pub struct Invariants(Vec<Box<dyn Invariant>>);

impl Invariants {
    pub fn all() -> Self {
        Self(vec![
            Box::new(election_safety::ElectionSafety::default()),
            Box::new(log_matching::LogMatching::default()),
            Box::new(leader_completeness::LeaderCompleteness::default()),
            Box::new(state_machine_safety::StateMachineSafety),
            Box::new(monotonicity::Monotonicity::default()),
            Box::new(single_pending_config::SinglePendingConfig),
            Box::new(read_linearizability::ReadLinearizability),
            Box::new(applied_state::AppliedState),
            Box::new(durable_promises::DurablePromises),
            Box::new(committed_kept::CommittedKept::default()),
            Box::new(term_origin::TermOrigin::default()),
        ])
    }

    pub fn check(&mut self, world: &World, notes: &[Note]) -> Result<(), Violation> {
        for invariant in &mut self.0 {
            invariant.check(world, notes).map_err(|detail| Violation {
                invariant: invariant.name(),
                detail,
            })?;
        }
        Ok(())
    }
}
