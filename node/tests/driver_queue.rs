//! The driver's queue (`driver::queue`): a request runs a round on its
//! caller's thread when the driver is free and waits in the queue
//! otherwise, and either way the requests of one caller are handled in the
//! order it sent them. One that waits is taken by the thread whose round
//! made it wait, without the driver thread. A lone write's round syncs the
//! leader's log itself.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::maybe_done;
use raftcfg_node::driver::NodeHandle;
use raftcfg_node::kv::{Command, Key, Limits, Outcome, Precondition, Revision};
use support::solo::Solo;

/// Pairs of writes the caller sends back to back.
const PAIRS: usize = 1_000;

/// Threads that keep the driver busy with rounds of their own.
const BUSY_THREADS: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writes_sent_back_to_back_are_applied_in_order_whoever_runs_their_rounds() {
    let solo = Solo::start(true, |_| {}).await;
    // Barriers run rounds on their threads, so the caller's first write
    // often finds the driver busy and queues, and its second finds it free
    // and runs at once: the queued one must still go first.
    let done = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = (0..BUSY_THREADS)
        .map(|_| {
            let (handle, done) = (solo.handle(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    futures::executor::block_on(handle.barrier()).unwrap();
                }
            })
        })
        .collect();
    let handle = solo.handle();
    let reversed = std::thread::spawn(move || {
        futures::executor::block_on(async move {
            let mut reversed = Vec::new();
            for pair in 0..PAIRS {
                let first = write(&handle, pair, "first").await;
                let second = write(&handle, pair, "second").await;
                let (first, second) = both(first, second).await;
                if first >= second {
                    reversed.push((pair, first, second));
                }
            }
            reversed
        })
    })
    .join()
    .unwrap();
    done.store(true, Ordering::Relaxed);
    for thread in busy {
        thread.join().unwrap();
    }
    assert!(
        reversed.is_empty(),
        "{} of {PAIRS} second writes were applied before the first of their pair \
         (pair, first, second): {:?}",
        reversed.len(),
        &reversed[..reversed.len().min(5)]
    );
}

/// The driver thread's tick in the test below: it sleeps this long between
/// rounds of its own, so a request left to it would wait about this long.
const LONG_TICK: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_wait_for_another_threads_round_are_taken_without_the_driver_thread() {
    let solo = Solo::start(false, |config| config.timing.tick = LONG_TICK).await;
    // Threads sending a barrier at once, then waiting for each other: one
    // often finds another's round running and queues, and then no later
    // request of theirs comes to take it. No request rings the driver
    // thread, which sleeps for the whole tick, so a queued barrier is
    // answered in time only if the thread releasing the driver's state
    // takes it.
    const THREADS: usize = 4;
    let together = Arc::new(std::sync::Barrier::new(THREADS));
    let started = Instant::now();
    let senders: Vec<_> = (0..THREADS)
        .map(|_| {
            let (handle, together) = (solo.handle(), together.clone());
            std::thread::spawn(move || {
                let mut slowest = Duration::ZERO;
                for _ in 0..1_000 {
                    together.wait();
                    let sent = Instant::now();
                    futures::executor::block_on(handle.barrier()).unwrap();
                    slowest = slowest.max(sent.elapsed());
                }
                slowest
            })
        })
        .collect();
    let slowest = senders
        .into_iter()
        .map(|sender| sender.join().unwrap())
        .max()
        .unwrap();
    assert!(
        slowest < LONG_TICK / 4,
        "a barrier waited {slowest:?}: for the driver thread's tick ({LONG_TICK:?})"
    );
    assert!(
        started.elapsed() < LONG_TICK,
        "the driver thread never ticked"
    );
}

/// Writes sent one at a time, each after the last was answered.
const LONE_WRITES: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_write_is_synced_by_its_own_round_and_answered_when_that_round_ends() {
    // A one-member cluster commits a write once the leader's copy is
    // durable. Had its round left the sync to the syncer thread, the write
    // would still wait for that thread when its round ended; synced on the
    // caller's thread, it is answered by then. Only a round of the driver
    // thread's (a tick, every 10 ms) running at that moment makes a write
    // queue instead.
    let solo = Solo::start(true, |_| {}).await;
    solo.settled_revision().await;
    let handle = solo.handle();
    let mut answered_at_once = 0;
    for n in 0..LONE_WRITES {
        let mut pending = write(&handle, n, "lone").await;
        if pending.as_mut().output_mut().is_some() {
            answered_at_once += 1;
        }
        pending.as_mut().await;
        match pending.as_mut().take_output().unwrap() {
            Ok(Outcome::Written { .. }) => {}
            other => panic!("lone write {n} came back {other:?}"),
        }
    }
    assert!(
        answered_at_once >= LONE_WRITES / 2,
        "only {answered_at_once} of {LONE_WRITES} lone writes were answered when their round ended"
    );
}

type Pending = std::pin::Pin<
    Box<
        futures::future::MaybeDone<
            std::pin::Pin<
                Box<dyn Future<Output = Result<Outcome, raftcfg_node::driver::DriverError>> + Send>,
            >,
        >,
    >,
>;

/// Sends a write of pair `pair` (it is sent at the first poll) without
/// waiting for its answer.
async fn write(handle: &NodeHandle, pair: usize, which: &str) -> Pending {
    let command = Command::Put {
        key: Key::parse(&format!("pair/{pair}/{which}"), &Limits::default()).unwrap(),
        value: Bytes::from_static(b"v"),
        precondition: Precondition::None,
    };
    let handle = handle.clone();
    let future: std::pin::Pin<Box<dyn Future<Output = _> + Send>> =
        Box::pin(async move { handle.propose(command).await });
    let mut pending = Box::pin(maybe_done(future));
    let _ = futures::poll!(pending.as_mut());
    pending
}

/// The revisions of two writes sent earlier.
async fn both(mut first: Pending, mut second: Pending) -> (Revision, Revision) {
    let revision = async |pending: &mut Pending| {
        pending.as_mut().await;
        match pending.as_mut().take_output().unwrap() {
            Ok(Outcome::Written { revision }) => revision,
            other => panic!("a write came back {other:?}"),
        }
    };
    (revision(&mut first).await, revision(&mut second).await)
}
