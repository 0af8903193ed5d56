//! The deterministic simulator of raftcfg's Raft core, shared by the
//! simulation test and the planted-bug tests.
//!
//! It owns one seed's whole world ([`world`], stepping through an
//! [`agenda`]): `RawNode` nodes whose every `Ready` is carried out by the
//! crate's `handle_ready` and a simulated application ([`app`],
//! [`state_machine`]); a network that delays, reorders, drops, duplicates
//! and partitions ([`network`]); crashes, between and inside `Ready`s, and
//! failed writes, with restarts from durable state only ([`cluster`],
//! [`disk`], [`faults`]); clients and
//! an operator ([`workload`]); the trace ([`trace`]) and the run's memory
//! ([`history`]); the safety invariants, one file each, checked after every
//! step ([`invariants`]); and the final heal-and-converge check
//! ([`convergence`]) with its liveness bounds ([`liveness`]).
//!
//! It must not read clocks, spawn work inside a seed, iterate unordered
//! collections or draw randomness other than from the seed's [`dice::Dice`]:
//! the same seed always replays the same run. It uses only the core's
//! public API, and never relaxes an invariant to make a seed pass.

pub mod agenda;
pub mod app;
pub mod cluster;
pub mod convergence;
pub mod dice;
pub mod disk;
pub mod faults;
pub mod history;
pub mod invariants;
pub mod liveness;
pub mod network;
pub mod profile;
pub mod report;
pub mod state_machine;
pub mod trace;
pub mod workload;
pub mod world;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub use profile::{Options, ProfileKind};
pub use report::{Failure, Summary};

use invariants::{Invariants, Violation};
use world::World;

/// How many trace lines a failure shows (`RAFT_SIM_TRACE` overrides).
fn trace_lines() -> usize {
    std::env::var("RAFT_SIM_TRACE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// Runs one seed: the fault phase, then heal and converge.
pub fn run_seed(seed: u64, options: &Options) -> Result<Summary, Box<Failure>> {
    let mut world = World::new(seed, options, trace_lines().max(200));
    let mut invariants = Invariants::all();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        while world.step < world.profile.fault_steps {
            world.step(&mut invariants)?;
        }
        convergence::heal_and_converge(&mut world, &mut invariants)
    }));
    let violation = match outcome {
        Ok(Ok(())) => {
            if options.show_trace {
                for line in world.trace.last(trace_lines()) {
                    println!("{line}");
                }
            }
            return Ok(Summary {
                seeds: 1,
                counters: world.history.counters,
            });
        }
        Ok(Err(violation)) => violation,
        Err(panic) => Violation {
            invariant: "panic",
            detail: panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".into()),
        },
    };
    let headline = violation.to_string();
    let headline = headline.lines().next().unwrap_or_default().to_owned();
    world.trace(trace::TraceEvent::Violation(headline));
    Err(Box::new(Failure::new(
        &world,
        violation,
        trace_lines(),
        &options.replay,
    )))
}

/// Runs `seeds` on `threads` threads. Stops early after a failure and
/// returns the failure of the lowest failing seed that ran.
pub fn run_seeds(
    seeds: &[u64],
    options: &Options,
    threads: usize,
) -> Result<Summary, Box<Failure>> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results = Mutex::new((Summary::default(), Vec::<Box<Failure>>::new()));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(seed) = seeds.get(i) else {
                        break;
                    };
                    let outcome = run_seed(*seed, options);
                    let mut results = results.lock().expect("no panics while locked");
                    match outcome {
                        Ok(summary) => {
                            results.0.seeds += 1;
                            results.0.counters.add(&summary.counters);
                        }
                        Err(failure) => {
                            results.1.push(failure);
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let (summary, mut failures) = results.into_inner().expect("no panics while locked");
    failures.sort_by_key(|f| f.seed);
    match failures.into_iter().next() {
        Some(failure) => Err(failure),
        None => Ok(summary),
    }
}
