//! [`CommitNotices`]: when a leader sends a commit index it held back.
//!
//! The core holds back the appends that would carry nothing but a new
//! commit index (`Config::defer_commit_notices`): under load the next
//! append carries it anyway, which spares each follower a message and the
//! leader its answer for every commit. A follower that is sent nothing
//! else must still learn it soon (its reads and watches follow its applied
//! state), so the first round to find it held back for `delay` sends it,
//! and the driver thread wakes up for that deadline: a round on another
//! thread nudges it when it would sleep past it. While commits keep coming
//! the driver thread wakes every `delay` instead, so that it needs no
//! nudge (a nudge per write would cost more than the wake-ups it spares).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::doorbell::Doorbell;

/// The deadline of a commit index held back from some follower.
pub(super) struct CommitNotices {
    delay: Duration,
    /// Since when a held-back commit index has been due, if one is.
    due_since: Option<Instant>,
    /// When a round last found one due.
    last_due: Option<Instant>,
    /// When the driver thread wakes up next; `None` while it runs a round.
    driver_wakes_at: Option<Instant>,
    /// Wakes the driver thread.
    nudge: Arc<Doorbell>,
}

impl CommitNotices {
    /// Notices held back at most `delay`; `nudge` wakes the driver thread.
    pub(super) fn new(delay: Duration, nudge: Arc<Doorbell>) -> Self {
        Self {
            delay,
            due_since: None,
            last_due: None,
            driver_wakes_at: None,
            nudge,
        }
    }

    /// Whether a commit index has been held back for `delay` by `now`:
    /// the round then sends it.
    pub(super) fn late(&self, now: Instant) -> bool {
        self.due_since
            .is_some_and(|since| now >= since + self.delay)
    }

    /// The round sent the notices that were late. One still due (to a
    /// follower that could not be sent one) waits a whole delay again.
    pub(super) fn sent(&mut self) {
        self.due_since = None;
    }

    /// After a round, with `due` whether some follower still lacks the
    /// commit index: starts its wait, and nudges the driver thread if it
    /// would sleep past the deadline.
    pub(super) fn after_round(&mut self, due: bool, now: Instant) {
        if !due {
            self.due_since = None;
            return;
        }
        self.last_due = Some(now);
        if self.due_since.is_some() {
            return;
        }
        self.due_since = Some(now);
        let deadline = now + self.delay;
        if self.driver_wakes_at.is_some_and(|at| at > deadline) {
            self.nudge.ring();
        }
    }

    /// The driver thread is running a round (it sets its next wake-up
    /// after it).
    pub(super) fn driver_awake(&mut self) {
        self.driver_wakes_at = None;
    }

    /// When the driver thread, about to sleep at `now`, should wake up: at
    /// `next_tick`, or sooner for a commit index held back, or after
    /// `delay` if one was due within the last `delay`.
    pub(super) fn driver_sleeps_until(&mut self, next_tick: Instant, now: Instant) -> Instant {
        let at = match (self.due_since, self.last_due) {
            (Some(since), _) => next_tick.min(since + self.delay),
            (None, Some(last)) if now < last + self.delay => next_tick.min(now + self.delay),
            (None, _) => next_tick,
        };
        self.driver_wakes_at = Some(at);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notices() -> (CommitNotices, Arc<Doorbell>) {
        let nudges = Arc::new(Doorbell::default());
        (CommitNotices::new(DELAY, nudges.clone()), nudges)
    }

    const DELAY: Duration = Duration::from_millis(1);

    #[test]
    fn a_commit_index_is_late_once_held_back_for_the_delay() {
        let (mut notices, _nudges) = notices();
        let start = Instant::now();
        assert!(!notices.late(start + DELAY), "nothing held back");
        notices.after_round(true, start);
        // A later round that still finds it due keeps the first deadline.
        notices.after_round(true, start + DELAY / 2);
        assert!(!notices.late(start + DELAY / 2));
        assert!(notices.late(start + DELAY));
        notices.after_round(false, start + DELAY);
        assert!(!notices.late(start + DELAY * 10), "sent: nothing is due");
    }

    #[test]
    fn a_notice_still_due_after_the_late_ones_were_sent_waits_a_whole_delay_again() {
        let (mut notices, _nudges) = notices();
        let start = Instant::now();
        notices.after_round(true, start);
        let late = start + DELAY;
        assert!(notices.late(late));
        notices.sent();
        notices.after_round(true, late);
        assert!(!notices.late(late + DELAY / 2));
        let tick = start + Duration::from_millis(100);
        assert_eq!(notices.driver_sleeps_until(tick, late), late + DELAY);
    }

    #[test]
    fn the_driver_thread_wakes_for_the_deadline_or_the_tick_whichever_is_first() {
        let (mut notices, _nudges) = notices();
        let start = Instant::now();
        let tick = start + Duration::from_millis(100);
        assert_eq!(notices.driver_sleeps_until(tick, start), tick);
        notices.after_round(true, start);
        assert_eq!(notices.driver_sleeps_until(tick, start), start + DELAY);
        let soon = start + DELAY / 2;
        assert_eq!(notices.driver_sleeps_until(soon, start), soon);
    }

    #[test]
    fn while_commits_keep_coming_the_driver_thread_wakes_every_delay() {
        let (mut notices, nudges) = notices();
        let start = Instant::now();
        let tick = start + Duration::from_millis(100);
        notices.after_round(true, start);
        // The next write's append carried it.
        notices.after_round(false, start + DELAY / 4);
        let now = start + DELAY / 2;
        let wake = notices.driver_sleeps_until(tick, now);
        assert_eq!(wake, now + DELAY);
        // A commit now needs no nudge: the driver wakes in time.
        notices.after_round(true, now);
        assert!(!nudges.take_ring());
        // Idle for a whole delay: back to the tick.
        notices.after_round(false, now);
        let later = now + DELAY;
        assert_eq!(notices.driver_sleeps_until(tick, later), tick);
    }

    #[test]
    fn a_driver_thread_asleep_past_the_deadline_is_nudged_once() {
        let (mut notices, nudges) = notices();
        let start = Instant::now();
        notices.driver_sleeps_until(start + Duration::from_millis(100), start);
        notices.after_round(true, start);
        notices.after_round(false, start);
        notices.after_round(true, start);
        assert!(nudges.take_ring());
        assert!(!nudges.take_ring(), "the rings folded into one");
    }

    #[test]
    fn a_driver_thread_that_wakes_in_time_or_is_awake_is_not_nudged() {
        let (mut notices, nudges) = notices();
        let start = Instant::now();
        notices.driver_sleeps_until(start + DELAY / 2, start);
        notices.after_round(true, start);
        assert!(!nudges.take_ring(), "it wakes before the deadline");
        notices.after_round(false, start);
        notices.driver_awake();
        notices.after_round(true, start);
        assert!(!nudges.take_ring(), "it sets its wake-up after its round");
    }
}
