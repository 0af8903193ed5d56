//! [`Syncer`]: how a leader's log writes become durable. A leader stores
//! its entries without a sync (`LeaderSync::Deferred`) and the driver
//! counts its own copy once a sync reports them (`Replica::synced`).
//!
//! Under load the syncs run on a thread of their own, so the driver goes on
//! stepping acknowledgments and taking proposals while the disk syncs;
//! requests made while a sync runs are served by one sync after it, so a
//! busy leader syncs once per sync's time, not once per round. A lone
//! write's round syncs on its own thread instead ([`Syncer::sync_here`]):
//! nothing else waits then, and the syncer thread's wake-up and its wait
//! for a CPU would cost the write more than the sync.

use std::sync::Weak;
use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

use raftcfg_raft::{LogIndex, Term};

use super::handle::Request;
use super::queue::Queue;
use crate::storage::{Db, StorageError};

/// The syncing thread. Dropping this stops it and waits for it, so the
/// process never exits while the thread is inside RocksDB.
pub(super) struct Syncer {
    jobs: Option<Sender<(LogIndex, Term)>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The last entry asked to be synced.
    asked: Option<(LogIndex, Term)>,
    /// The database, for syncs on the caller's thread.
    db: Db,
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Syncer {
    /// Starts the thread. It answers each sync with `Request::Synced`
    /// through the driver's queue, held weakly so that the queue still
    /// closes when every handle is gone (which stops the driver).
    pub(super) fn start(db: Db, driver: Weak<Queue>) -> std::io::Result<Self> {
        let (jobs, pending) = channel::<(LogIndex, Term)>();
        let own_db = db.clone();
        let thread = std::thread::Builder::new()
            .name("raftcfg-syncer".into())
            .spawn(move || {
                while let Ok(first) = pending.recv() {
                    // Everything asked so far was stored before it was
                    // asked for: one sync covers the latest.
                    let (index, term) = pending.try_iter().last().unwrap_or(first);
                    let started = Instant::now();
                    let outcome = db
                        .sync_wal()
                        .map(|()| started.elapsed())
                        .map_err(|e| e.to_string());
                    let Some(driver) = driver.upgrade() else {
                        return;
                    };
                    // Blocks while the queue is full; fails once the
                    // driver has stopped.
                    if driver
                        .send_waiting(Request::Synced {
                            index,
                            term,
                            outcome,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
            asked: None,
            db: own_db,
        })
    }

    /// Asks for the log to be synced up to the entry (`index`, `term`),
    /// unless that was already asked.
    pub(super) fn request(&mut self, index: LogIndex, term: Term) {
        if self.asked == Some((index, term)) {
            return;
        }
        if let Some(jobs) = &self.jobs
            && jobs.send((index, term)).is_ok()
        {
            self.asked = Some((index, term));
        }
    }

    /// Syncs everything stored so far on the calling thread, now; answers
    /// how long the sync took.
    pub(super) fn sync_here(&self) -> Result<Duration, StorageError> {
        let started = Instant::now();
        self.db.sync_wal()?;
        Ok(started.elapsed())
    }
}
