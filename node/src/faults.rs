//! Faults the fault-injection tests plant in a node, to show that they
//! would catch them: known bugs and simulated power loss.
//!
//! They exist only in builds with the `fault-injection` cargo feature,
//! which only the node's own tests enable. In any other build [`Faults`]
//! has no fields and every question it answers is a constant `false`, so a
//! release binary has neither the flags nor the code paths.

/// Bugs the fault-injection tests plant to prove they would see them.
#[cfg(feature = "fault-injection")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlantedBug {
    /// Answer linearizable reads from the local state, without ReadIndex.
    StaleReads,
    /// Acknowledge a write as soon as the leader appended it, before it is
    /// durable on a quorum.
    EarlyAck,
    /// Write the Raft log without syncing it (caught only with power loss
    /// simulated, since kill -9 keeps the page cache).
    UnsyncedLog,
}

/// The faults planted in one node; none by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// A known bug to plant.
    #[cfg(feature = "fault-injection")]
    pub planted_bug: Option<PlantedBug>,
    /// Keep unsynced writes inside the process until the next synced
    /// write, so that kill -9 loses them as a power cut would (the
    /// operating system's page cache survives a kill, not a power cut).
    #[cfg(feature = "fault-injection")]
    pub simulate_power_loss: bool,
}

impl Faults {
    /// Whether any fault is planted (the node is then unsafe).
    pub fn any(&self) -> bool {
        self.planted_bug_name().is_some() || self.simulates_power_loss()
    }

    /// The planted bug, for the log.
    pub fn planted_bug_name(&self) -> Option<String> {
        #[cfg(feature = "fault-injection")]
        return self.planted_bug.map(|bug| format!("{bug:?}"));
        #[cfg(not(feature = "fault-injection"))]
        None
    }

    /// Linearizable reads are served from the local state.
    pub fn serves_stale_reads(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        return self.planted_bug == Some(PlantedBug::StaleReads);
        #[cfg(not(feature = "fault-injection"))]
        false
    }

    /// Writes are acknowledged once appended on the leader.
    pub fn acks_early(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        return self.planted_bug == Some(PlantedBug::EarlyAck);
        #[cfg(not(feature = "fault-injection"))]
        false
    }

    /// The Raft log is written without a sync.
    pub fn skips_log_sync(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        return self.planted_bug == Some(PlantedBug::UnsyncedLog);
        #[cfg(not(feature = "fault-injection"))]
        false
    }

    /// Unsynced writes stay in the process until the next synced write.
    pub fn simulates_power_loss(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        return self.simulate_power_loss;
        #[cfg(not(feature = "fault-injection"))]
        false
    }
}
