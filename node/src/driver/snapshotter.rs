//! [`Snapshotter`]: the thread that writes snapshot files. Writing one
//! reads the whole state, so it never runs in a driver round: the
//! driver asks for one, goes on applying (the file comes from one RocksDB
//! snapshot, so it is the state at the applied index stored in it), and
//! adopts the file when the snapshotter hands it back.

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::Instant;

use crate::kv::{SnapshotDir, SnapshotError, SnapshotRef, write_snapshot_file};
use crate::storage::Db;

/// The snapshot-writing thread. Dropping this stops it and waits for it
/// (for the snapshot being written, if any), so the process never exits
/// while the thread is inside RocksDB: that aborts the process.
pub(super) struct Snapshotter {
    requests: Option<SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Snapshotter {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Snapshotter {
    /// Starts the thread; `written` gets each file written, or the error.
    pub(super) fn start(
        db: Db,
        dir: SnapshotDir,
        written: impl Fn(Result<SnapshotRef, SnapshotError>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (requests, pending) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("raftcfg-snapshot".into())
            .spawn(move || {
                while pending.recv().is_ok() {
                    let started = Instant::now();
                    let result = write_snapshot_file(&db, &dir);
                    if let Ok(snapshot) = &result {
                        tracing::info!(
                            index = %snapshot.index,
                            bytes = snapshot.size,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "wrote a snapshot of the state"
                        );
                    }
                    written(result);
                }
            })?;
        Ok(Self {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Asks for a snapshot; false if one is already asked for.
    pub(super) fn request(&self) -> bool {
        match self.requests.as_ref().map(|requests| requests.try_send(())) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(()) | TrySendError::Disconnected(()))) | None => false,
        }
    }
}
