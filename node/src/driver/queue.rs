//! How a request reaches the driver's state: [`Rounds`], the state behind
//! a lock, and [`Queue`], the way in.
//!
//! A thread with a request that finds the lock free runs the round itself
//! (a client's or a peer stream's task, the syncer): that spares the
//! hand-off to the driver thread, whose wake-up on a small machine costs
//! more than the round. Otherwise the request waits in a bounded channel.
//! Every round first takes what waits there, in order, so the requests of
//! one source (the frames of a peer stream) are handled in the order they
//! were sent, whoever runs the round.
//!
//! A request queued only because a round was running is left to the
//! threads running rounds, so the driver thread need not wake for it: the
//! queuing thread marks the queue unattended and then tries the lock
//! again, and every thread that releases the lock then looks for the mark
//! and, if set, runs another round. Each of the two writes (the mark, the
//! release) before it reads (the lock, the mark), with a `SeqCst` fence
//! between, so at least one sees the other's write: the queuing thread
//! takes the lock, or the releasing thread sees the mark. The mark is set
//! (Release) after queuing and cleared (Acquire) before the round that
//! takes what was queued, so that round sees it. Only what must
//! run on the driver thread (a snapshot to install, a proposal or read to
//! batch with others, anything while the driver stops or after a failure)
//! rings it.

use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use crossbeam_channel::{Sender, TrySendError};

use super::Loop;
use super::doorbell::Doorbell;
use super::handle::{DriverError, Request};
use crate::replica::ReplicaError;

/// Rounds one release of the lock runs at most for requests left to it.
const ATTENDED_ROUNDS: usize = 2;

/// The driver's state, or `None` once the driver thread has stopped.
pub(super) struct Rounds {
    state: Mutex<Option<Loop>>,
    /// Whether a request was queued while a round ran, for the thread
    /// that releases the lock to take.
    unattended: AtomicBool,
    /// Wakes the driver thread.
    doorbell: Arc<Doorbell>,
}

/// What became of a request offered to [`Rounds::try_run`].
enum Offer {
    /// Its round ran on this thread.
    Ran,
    /// Another thread is running a round: queued, it is left to that
    /// thread.
    Busy(Request),
    /// It must be queued for the driver thread.
    ForDriver(Request),
}

impl Rounds {
    pub(super) fn new(state: Loop, doorbell: Arc<Doorbell>) -> Self {
        Self {
            state: Mutex::new(Some(state)),
            unattended: AtomicBool::new(false),
            doorbell,
        }
    }

    /// Waits for the lock (on the driver thread only). A round that
    /// panicked poisons it: the driver then stops.
    pub(super) fn lock(&self) -> Result<MutexGuard<'_, Option<Loop>>, ReplicaError> {
        self.state
            .lock()
            .map_err(|_| ReplicaError::Thread("a round of the driver panicked".into()))
    }

    /// Releases the lock, then runs the rounds that requests queued
    /// meanwhile were left for.
    pub(super) fn release(&self, guard: MutexGuard<'_, Option<Loop>>) {
        if guard.as_ref().is_some_and(|state| state.backlog) {
            self.mark();
        }
        drop(guard);
        self.attend();
    }

    /// Marks the queue unattended, after queuing (Release: the thread that
    /// clears the mark sees what was queued before it).
    fn mark(&self) {
        self.unattended.store(true, Ordering::Release);
    }

    /// Takes the state out, so that no round runs any more.
    pub(super) fn take(&self) -> Option<Loop> {
        match self.state.lock() {
            Ok(mut state) => state.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    /// Wakes the driver thread.
    fn ring(&self) {
        self.doorbell.ring();
    }

    /// What the driver thread waits on.
    pub(super) fn doorbell(&self) -> &Doorbell {
        &self.doorbell
    }

    /// Runs a round with `request` on this thread if no round is running,
    /// the driver is neither stopping nor failed, and the request is
    /// cheap to handle. A proposal or a read runs here only while no
    /// other waits for its answer: under load they queue for the driver
    /// thread, so that one round takes many (one write for many
    /// proposals, one ReadIndex for many reads).
    fn try_run(&self, request: Request) -> Offer {
        if !request.runs_inline() {
            return Offer::ForDriver(request);
        }
        let mut guard = match self.state.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) if !request.batches() => return Offer::Busy(request),
            Err(TryLockError::WouldBlock | TryLockError::Poisoned(_)) => {
                return Offer::ForDriver(request);
            }
        };
        let Some(state) = guard
            .as_mut()
            .filter(|state| runnable(state) && !(request.batches() && state.answers_pending()))
        else {
            self.release(guard);
            return Offer::ForDriver(request);
        };
        self.run_round(state, Some(request));
        self.release(guard);
        Offer::Ran
    }

    /// While the queue is marked unattended and no other thread holds the
    /// lock, runs rounds for what waits (see the module documentation): at
    /// most `ATTENDED_ROUNDS`, then the driver thread is rung for the rest,
    /// so that no caller's thread (the syncer's, a tokio worker) is kept
    /// from its own work for long under load. Every release of the lock
    /// here is followed by another look at the mark.
    fn attend(&self) {
        let mut rounds = 0;
        loop {
            fence(Ordering::SeqCst);
            if !self.unattended.load(Ordering::Relaxed) {
                return;
            }
            if rounds == ATTENDED_ROUNDS {
                self.ring();
                return;
            }
            let mut guard = match self.state.try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::WouldBlock) => return,
                Err(TryLockError::Poisoned(_)) => {
                    // A round panicked: the driver thread stops on it.
                    self.ring();
                    return;
                }
            };
            // Acquire: the round sees every request queued before a mark.
            if self.unattended.swap(false, Ordering::Acquire) {
                let Some(state) = guard.as_mut().filter(|state| runnable(state)) else {
                    // Only the driver thread takes what waits now.
                    self.ring();
                    return;
                };
                self.run_round(state, None);
                if state.backlog {
                    self.mark();
                }
                rounds += 1;
            }
            drop(guard);
        }
    }

    /// Runs a round off the driver thread. A failure is left for the
    /// driver thread, which is rung to stop on it.
    fn run_round(&self, state: &mut Loop, request: Option<Request>) {
        let span = state.span.clone();
        let _entered = span.enter();
        if let Err(failure) = state.round(request, false) {
            state.failure = Some(failure);
            self.ring();
        }
    }
}

/// Whether a round may run off the driver thread: the driver is neither
/// failed nor stopping.
fn runnable(state: &Loop) -> bool {
    state.failure.is_none() && !state.stop.load(Ordering::Relaxed)
}

/// The way in: the channel's sending end and the state. The channel closes
/// (and the driver stops) when the last `Queue` is dropped.
pub(super) struct Queue {
    /// `None` only while dropped.
    requests: Option<Sender<Request>>,
    rounds: Arc<Rounds>,
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Closed first, so that the driver thread, rung, finds it closed.
        drop(self.requests.take());
        self.rounds.ring();
    }
}

impl Queue {
    pub(super) fn new(requests: Sender<Request>, rounds: Arc<Rounds>) -> Self {
        Self {
            requests: Some(requests),
            rounds,
        }
    }

    /// Wakes the driver thread (to stop, say).
    pub(super) fn wake_driver(&self) {
        self.rounds.ring();
    }

    /// Runs `request` at once or queues it; never blocks on the queue.
    pub(super) fn send(&self, request: Request) -> Result<(), DriverError> {
        self.offer(request, |requests, request| {
            requests.try_send(request).map_err(|e| match e {
                TrySendError::Full(_) => DriverError::Busy,
                TrySendError::Disconnected(_) => DriverError::Stopped,
            })
        })
    }

    /// Runs `request` at once or queues it, waiting while the queue is
    /// full (for the driver's own threads, whose reports must not be
    /// lost). Fails once the driver has stopped.
    pub(super) fn send_waiting(&self, request: Request) -> Result<(), DriverError> {
        self.offer(request, |requests, request| {
            requests.send(request).map_err(|_| DriverError::Stopped)
        })
    }

    /// Runs `request` at once, or queues it with `enqueue` and sees that
    /// it is taken: left to the thread running a round, or rung for.
    fn offer(
        &self,
        request: Request,
        enqueue: impl FnOnce(&Sender<Request>, Request) -> Result<(), DriverError>,
    ) -> Result<(), DriverError> {
        let requests = self.requests.as_ref().ok_or(DriverError::Stopped)?;
        match self.rounds.try_run(request) {
            Offer::Ran => Ok(()),
            Offer::Busy(request) => {
                enqueue(requests, request)?;
                self.rounds.mark();
                self.rounds.attend();
                Ok(())
            }
            Offer::ForDriver(request) => {
                enqueue(requests, request)?;
                self.rounds.ring();
                Ok(())
            }
        }
    }
}
