//! A future woken during its own poll is polled again at once instead of
//! being handed back to the runtime as a yield.
//!
//! hyper wakes a connection's task from inside that task's poll: taking a
//! request's body from its channel wakes the channel's sender, which the
//! connection registered while it read the body. Tokio takes a wake of the
//! task it is running for a yield: the task goes to the back of the queue
//! and an idle worker is woken to take it, a wake-up of the other CPU for
//! every request with a body. [`Repoll`] gives the future it wraps a waker
//! of its own: a wake that comes while the future is being polled makes
//! `Repoll` poll it again before it returns (at most [`MAX_REPOLLS`] times,
//! then it yields as before, so a future that keeps waking itself cannot
//! hold the worker); a wake at any other time wakes the task as usual.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

/// Polls in a row of a future that woke itself in each, before `Repoll`
/// yields to the runtime.
pub const MAX_REPOLLS: usize = 8;

/// The wrapped future is not being polled.
const IDLE: u8 = 0;
/// The wrapped future is being polled and has not been woken since.
const POLLING: u8 = 1;
/// The wrapped future was woken while it was being polled.
const WOKEN: u8 = 2;

/// Wraps `future` so that it is polled again at once when it wakes itself.
pub fn repoll<F: Future>(future: F) -> Repoll<F> {
    let wakes = Arc::new(Wakes {
        state: AtomicU8::new(IDLE),
        task: AtomicWaker::new(),
    });
    Repoll {
        future: Box::pin(future),
        waker: Waker::from(wakes.clone()),
        wakes,
    }
}

/// See [`repoll`].
pub struct Repoll<F> {
    future: Pin<Box<F>>,
    /// The waker the wrapped future sees.
    waker: Waker,
    wakes: Arc<Wakes>,
}

/// Where the wrapped future's wakes go.
struct Wakes {
    state: AtomicU8,
    /// The task's own waker, as of its last poll.
    task: AtomicWaker,
}

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self
            .state
            .compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire)
        {
            // The poll in progress polls again.
            Ok(_) | Err(WOKEN) => {}
            _ => self.task.wake(),
        }
    }
}

impl<F: Future> Future for Repoll<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        this.wakes.task.register(cx.waker());
        let mut inner = Context::from_waker(&this.waker);
        for _ in 0..MAX_REPOLLS {
            this.wakes.state.store(POLLING, Ordering::Release);
            if let Poll::Ready(output) = this.future.as_mut().poll(&mut inner) {
                this.wakes.state.store(IDLE, Ordering::Release);
                return Poll::Ready(output);
            }
            // Not woken during the poll: a later wake finds IDLE and wakes
            // the task.
            if this
                .wakes
                .state
                .compare_exchange(POLLING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Poll::Pending;
            }
        }
        this.wakes.state.store(IDLE, Ordering::Release);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts the wakes of the task that polls [`Repoll`].
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn task() -> (Arc<CountingWaker>, Waker) {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        (counter.clone(), Waker::from(counter))
    }

    /// Wakes itself in each of its first `self_wakes` polls, then is ready.
    struct WakesItself {
        self_wakes: usize,
        polls: usize,
    }

    impl Future for WakesItself {
        type Output = usize;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            if self.polls > self.self_wakes {
                return Poll::Ready(self.polls);
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[test]
    fn a_future_that_wakes_itself_is_polled_again_without_waking_the_task() {
        let (counter, waker) = task();
        let mut future = repoll(WakesItself {
            self_wakes: 3,
            polls: 0,
        });
        let polled = Pin::new(&mut future).poll(&mut Context::from_waker(&waker));
        assert_eq!(polled, Poll::Ready(4));
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_future_that_keeps_waking_itself_yields_to_the_runtime() {
        let (counter, waker) = task();
        let mut future = repoll(WakesItself {
            self_wakes: usize::MAX,
            polls: 0,
        });
        let polled = Pin::new(&mut future).poll(&mut Context::from_waker(&waker));
        assert_eq!(polled, Poll::Pending);
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "it asks to be polled again"
        );
    }

    /// Pending until `wake` is called on the waker it kept, then ready.
    #[derive(Default)]
    struct WaitsForWake {
        kept: Option<Waker>,
        polls: usize,
    }

    impl Future for WaitsForWake {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls += 1;
            if self.polls > 1 {
                return Poll::Ready(());
            }
            self.kept = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn a_wake_after_the_poll_wakes_the_task() {
        let (counter, waker) = task();
        let mut future = repoll(WaitsForWake::default());
        let mut cx = Context::from_waker(&waker);
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Pending);
        let kept = future
            .future
            .kept
            .clone()
            .expect("the future kept its waker");
        kept.wake_by_ref();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Ready(()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_from_other_threads_are_never_lost() {
        // Each round: a task waits on a channel filled by another thread,
        // which races the sends against the receiving task's polls.
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<u32>(1);
        let received = tokio::spawn(repoll(async move {
            let mut sum = 0u64;
            while let Some(value) = receiver.recv().await {
                sum += u64::from(value);
            }
            sum
        }));
        let sending = std::thread::spawn(move || {
            for value in 1..=20_000u32 {
                sender.blocking_send(value).expect("the receiver lives");
            }
        });
        sending.join().expect("the sender finishes");
        let sum = tokio::time::timeout(std::time::Duration::from_secs(60), received)
            .await
            .expect("no wake was lost")
            .expect("the task finishes");
        assert_eq!(sum, 20_000 * 20_001 / 2);
    }
}
