//! The simulator catches known protocol bugs: each test plants one bug in
//! every node (the `planted-bugs` feature) and runs seeds of a profile
//! aimed at it until an invariant fails. The failure must be the invariant
//! that bug breaks (or another safety invariant), never a panic, a stuck
//! cluster or a harness error. See `sim/mod.rs`.
//!
//! `RAFT_SIM_SEED=S` runs only seed `S` (with the full failure report).
//! The ignored test `hunting_profiles_pass_without_planted_bugs` is the
//! control: the same seeds without the bug must pass (`-- --ignored`).

mod sim;

use raftcfg_raft::PlantedBug;
use sim::{Options, ProfileKind};

/// Seeds each hunt may use.
const SEEDS: u64 = 2_000;

/// The safety invariants; a planted bug may surface through any of them.
const SAFETY: [&str; 9] = [
    "election safety",
    "log matching",
    "leader completeness",
    "state machine safety",
    "monotonicity",
    "applied state",
    "persist before send",
    "committed entries kept",
    "terms start with a campaign",
];

fn options(bug: PlantedBug, planted: bool, test: &str) -> Options {
    Options {
        kind: ProfileKind::Hunt(bug),
        planted_bug: planted.then_some(bug),
        replay: format!(
            "RAFT_SIM_SEED={{seed}} cargo test -p raftcfg-raft --test planted_bugs {test} -- \
             --nocapture"
        ),
        show_trace: false,
    }
}

fn env_seed() -> Option<u64> {
    std::env::var("RAFT_SIM_SEED")
        .ok()
        .map(|v| v.trim().parse().expect("RAFT_SIM_SEED is a number"))
}

/// Runs seeds with `bug` planted until one fails; asserts it was caught by
/// `expected` or a safety invariant.
fn hunt(bug: PlantedBug, expected: &str, test: &str) {
    let options = options(bug, true, test);
    let replaying = env_seed().is_some();
    let seeds: Vec<u64> = match env_seed() {
        Some(seed) => vec![seed],
        None => (0..SEEDS).collect(),
    };
    for seed in seeds {
        let Err(failure) = sim::run_seed(seed, &options) else {
            continue;
        };
        let relevant =
            failure.invariant == expected || SAFETY.contains(&failure.invariant.as_str());
        assert!(
            relevant,
            "{bug:?} surfaced as an unrelated failure, not as {expected:?} or another safety \
             invariant:\n{failure}"
        );
        if replaying {
            println!("{failure}");
        }
        println!(
            "{bug:?} caught by seed {seed} at step {}: {}: {}",
            failure.step, failure.invariant, failure.detail
        );
        return;
    }
    match env_seed() {
        Some(seed) => panic!("{bug:?} went unnoticed on seed {seed}"),
        None => panic!("{bug:?} went unnoticed in {SEEDS} seeds"),
    }
}

#[test]
fn simulation_catches_commit_of_previous_term_entry_by_counting() {
    hunt(
        PlantedBug::CommitPreviousTermByCounting,
        "leader completeness",
        "simulation_catches_commit_of_previous_term_entry_by_counting",
    );
}

#[test]
fn simulation_catches_vote_granted_without_log_check() {
    hunt(
        PlantedBug::VoteWithoutLogCheck,
        "leader completeness",
        "simulation_catches_vote_granted_without_log_check",
    );
}

#[test]
fn simulation_catches_second_pending_configuration_change() {
    hunt(
        PlantedBug::SecondPendingConfig,
        "at most one uncommitted configuration entry",
        "simulation_catches_second_pending_configuration_change",
    );
}

#[test]
fn simulation_catches_read_index_served_without_quorum() {
    hunt(
        PlantedBug::ReadIndexWithoutQuorum,
        "ReadIndex linearizability",
        "simulation_catches_read_index_served_without_quorum",
    );
}

#[test]
fn simulation_catches_messages_sent_before_the_write() {
    hunt(
        PlantedBug::SendBeforePersist,
        "persist before send",
        "simulation_catches_messages_sent_before_the_write",
    );
}

#[test]
fn simulation_catches_a_snapshot_discarding_matching_entries() {
    hunt(
        PlantedBug::SnapshotDiscardsMatchingEntries,
        "committed entries kept",
        "simulation_catches_a_snapshot_discarding_matching_entries",
    );
}

#[test]
fn simulation_catches_a_stale_append_truncating_matching_entries() {
    hunt(
        PlantedBug::StaleAppendTruncates,
        "committed entries kept",
        "simulation_catches_a_stale_append_truncating_matching_entries",
    );
}

#[test]
fn simulation_catches_timeout_now_sent_to_a_lagging_target() {
    hunt(
        PlantedBug::TimeoutNowToLaggingTarget,
        "liveness",
        "simulation_catches_timeout_now_sent_to_a_lagging_target",
    );
}

#[test]
fn simulation_catches_a_leader_ignoring_a_higher_term() {
    hunt(
        PlantedBug::LeaderIgnoresHigherTerm,
        "liveness",
        "simulation_catches_a_leader_ignoring_a_higher_term",
    );
}

#[test]
fn simulation_catches_pre_vote_moving_terms() {
    hunt(
        PlantedBug::PreVoteMovesTerm,
        "terms start with a campaign",
        "simulation_catches_pre_vote_moving_terms",
    );
}

/// The control: the hunting profiles find nothing when no bug is planted.
/// `RAFT_SIM_SEEDS` sets the seeds per profile (default 2,000);
/// `RAFT_SIM_SEED=S` runs only seed `S` of each profile (with
/// `RAFT_SIM_TRACE=N`, showing its last N events).
#[test]
#[ignore = "control run; slow in debug (cargo test --release ... -- --ignored)"]
fn hunting_profiles_pass_without_planted_bugs() {
    let count = std::env::var("RAFT_SIM_SEEDS").ok().map_or(SEEDS, |v| {
        v.trim().parse().expect("RAFT_SIM_SEEDS is a number")
    });
    let seeds: Vec<u64> = match env_seed() {
        Some(seed) => vec![seed],
        None => (0..count).collect(),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    for bug in [
        PlantedBug::CommitPreviousTermByCounting,
        PlantedBug::VoteWithoutLogCheck,
        PlantedBug::SecondPendingConfig,
        PlantedBug::ReadIndexWithoutQuorum,
        PlantedBug::SendBeforePersist,
        PlantedBug::SnapshotDiscardsMatchingEntries,
        PlantedBug::StaleAppendTruncates,
        PlantedBug::TimeoutNowToLaggingTarget,
        PlantedBug::LeaderIgnoresHigherTerm,
        PlantedBug::PreVoteMovesTerm,
    ] {
        let mut options = options(bug, false, "hunting_profiles_pass_without_planted_bugs");
        options.show_trace = env_seed().is_some() && std::env::var("RAFT_SIM_TRACE").is_ok();
        match sim::run_seeds(&seeds, &options, threads) {
            Ok(summary) => println!("{bug:?} profile without the bug: {summary}"),
            Err(failure) => panic!("{bug:?} profile failed without the bug: {failure}"),
        }
    }
}
