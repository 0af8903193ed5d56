//! [`Doorbell`]: how other threads wake the driver thread.
//!
//! A flag behind a mutex with a condition variable. Ringing sets the flag
//! and wakes the thread only if it sleeps; rings while it is awake fold
//! into one. The wait sleeps at once: a channel's receive (crossbeam's)
//! spins and yields the CPU several times before it sleeps, and on a small
//! machine each yield hands another busy thread's CPU back and forth.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// Wakes the driver thread; see the module doc.
#[derive(Default)]
pub(super) struct Doorbell {
    bell: Mutex<Bell>,
    wakes: Condvar,
}

#[derive(Default)]
struct Bell {
    /// Rung since the driver thread last woke.
    rung: bool,
    /// The driver thread sleeps on `wakes`.
    asleep: bool,
}

impl Doorbell {
    /// Wakes the driver thread, or has its next wait return at once.
    pub(super) fn ring(&self) {
        let mut bell = self.bell();
        bell.rung = true;
        if bell.asleep {
            drop(bell);
            self.wakes.notify_one();
        }
    }

    /// Sleeps until rung or until `deadline`, and clears the ring.
    pub(super) fn wait_until(&self, deadline: Instant) {
        let mut bell = self.bell();
        while !bell.rung {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            if left.is_zero() {
                break;
            }
            bell.asleep = true;
            bell = self
                .wakes
                .wait_timeout(bell, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            bell.asleep = false;
        }
        bell.rung = false;
    }

    /// Whether it was rung since the last wait, clearing the ring.
    #[cfg(test)]
    pub(super) fn take_ring(&self) -> bool {
        std::mem::take(&mut self.bell().rung)
    }

    /// The flag; no code panics while holding it, so poisoning is moot.
    fn bell(&self) -> MutexGuard<'_, Bell> {
        self.bell.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_wait_returns_at_the_deadline_when_nobody_rings() {
        let bell = Doorbell::default();
        let deadline = Instant::now() + Duration::from_millis(20);
        bell.wait_until(deadline);
        assert!(Instant::now() >= deadline);
    }

    #[test]
    fn a_ring_before_the_wait_makes_it_return_at_once_and_rings_fold_into_one() {
        let bell = Doorbell::default();
        bell.ring();
        bell.ring();
        let started = Instant::now();
        bell.wait_until(started + Duration::from_secs(60));
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(
            !bell.take_ring(),
            "the two rings were one, taken by the wait"
        );
    }

    #[test]
    fn a_ring_wakes_a_sleeping_waiter() {
        let bell = Arc::new(Doorbell::default());
        let waiter = std::thread::spawn({
            let bell = bell.clone();
            move || bell.wait_until(Instant::now() + Duration::from_secs(60))
        });
        while !bell.bell().asleep {
            std::thread::sleep(Duration::from_millis(1));
        }
        let rung = Instant::now();
        bell.ring();
        waiter.join().unwrap();
        assert!(
            rung.elapsed() < Duration::from_secs(30),
            "woken, not timed out"
        );
    }
}
