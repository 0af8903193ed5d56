//! How a request reaches the driver's state: [`Rounds`], the state behind
//! a lock, and [`Queue`], the way in.
//!
//! A thread with a request that finds the lock free runs the round itself
//! (a client's or a peer stream's task, the syncer): that spares the
//! hand-off to the driver thread, whose wake-up on a small machine costs
//! more than the round. Otherwise the request waits in a bounded channel,
//! and the driver thread runs a round for it once the lock is free. Every
//! round first takes what waits in the channel, in order, so the requests
//! of one source (the frames of a peer stream) are handled in the order
//! they were sent, whoever runs the round.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use crossbeam_channel::{Sender, TrySendError};

use super::Loop;
use super::handle::{DriverError, Request};
use crate::replica::ReplicaError;

/// The driver's state, or `None` once the driver thread has stopped.
pub(super) struct Rounds(Mutex<Option<Loop>>);

impl Rounds {
    pub(super) fn new(state: Loop) -> Self {
        Self(Mutex::new(Some(state)))
    }

    /// Waits for the lock (on the driver thread only). A round that
    /// panicked poisons it: the driver then stops.
    pub(super) fn lock(&self) -> Result<MutexGuard<'_, Option<Loop>>, ReplicaError> {
        self.0
            .lock()
            .map_err(|_| ReplicaError::Thread("a round of the driver panicked".into()))
    }

    /// Takes the state out, so that no round runs any more.
    pub(super) fn take(&self) -> Option<Loop> {
        match self.0.lock() {
            Ok(mut state) => state.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    /// Runs a round with `request` on this thread if no round is running,
    /// the driver is neither stopping nor failed, and the request is
    /// cheap to handle; gives the request back otherwise. A proposal or
    /// a read runs here only while no other waits for its answer: under
    /// load they queue, so that one round takes many (one write for many
    /// proposals, one ReadIndex for many reads). A failure of the round is
    /// left for the driver thread, which stops on it at its next wake-up.
    fn try_run(&self, request: Request) -> Result<(), Request> {
        if !request.runs_inline() {
            return Err(request);
        }
        let mut guard = match self.0.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock | TryLockError::Poisoned(_)) => return Err(request),
        };
        let Some(state) = guard.as_mut().filter(|state| {
            state.failure.is_none()
                && !state.stop.load(Ordering::Relaxed)
                && !(request.batches() && state.answers_pending())
        }) else {
            return Err(request);
        };
        let span = state.span.clone();
        let _entered = span.enter();
        if let Err(failure) = state.round(Some(request), false) {
            state.failure = Some(failure);
        }
        Ok(())
    }
}

/// The way in: the channel's sending end and the state. The channel closes
/// (and the driver stops) when the last `Queue` is dropped.
pub(super) struct Queue {
    requests: Sender<Request>,
    rounds: Arc<Rounds>,
}

impl Queue {
    pub(super) fn new(requests: Sender<Request>, rounds: Arc<Rounds>) -> Self {
        Self { requests, rounds }
    }

    /// Runs `request` at once or queues it; never blocks on the queue.
    pub(super) fn send(&self, request: Request) -> Result<(), DriverError> {
        let Err(request) = self.rounds.try_run(request) else {
            return Ok(());
        };
        self.requests.try_send(request).map_err(|e| match e {
            TrySendError::Full(_) => DriverError::Busy,
            TrySendError::Disconnected(_) => DriverError::Stopped,
        })
    }

    /// Runs `request` at once or queues it, waiting while the queue is
    /// full (for the driver's own threads, whose reports must not be
    /// lost). Fails once the driver has stopped.
    pub(super) fn send_waiting(&self, request: Request) -> Result<(), DriverError> {
        let Err(request) = self.rounds.try_run(request) else {
            return Ok(());
        };
        self.requests
            .send(request)
            .map_err(|_| DriverError::Stopped)
    }
}
