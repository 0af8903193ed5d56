//! One node in this process — driver, transport and API state, no HTTP
//! listener — for tests that drive the routers with `oneshot`.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raftcfg_node::api::ApiState;
use raftcfg_node::driver::{self, DriverConfig, NodeHandle};
use raftcfg_node::kv::{Limits, MemberAddress, SnapshotDir};
use raftcfg_node::metrics::Metrics;
use raftcfg_node::replica::ReplicaError;
use raftcfg_node::transport::{PeerLimits, PeerState, SnapshotReceiver, Transport};

/// A one-node cluster (or an uninitialized node) and its API state.
pub struct Solo {
    pub state: ApiState,
    driver: Option<JoinHandle<Result<(), ReplicaError>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Solo {
    /// Stops the driver and waits for it, so RocksDB is closed before the
    /// test process exits (a driver thread still inside RocksDB while the
    /// process tears down its statics would crash it).
    fn drop(&mut self) {
        self.state.node.stop();
        if let Some(driver) = self.driver.take() {
            let _ = driver.join();
        }
    }
}

impl Solo {
    /// Starts a node with a 10 ms tick (then `tune`), bootstrapped and
    /// leading if `bootstrap`. Its peer URL leads nowhere.
    pub async fn start(bootstrap: bool, tune: impl FnOnce(&mut DriverConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let address = MemberAddress {
            name: "solo".into(),
            peer_url: "http://127.0.0.1:1".into(),
            client_url: "http://127.0.0.1:1".into(),
        };
        let mut config = DriverConfig::new("solo", address.clone());
        config.timing.tick = Duration::from_millis(10);
        tune(&mut config);
        let metrics = Arc::new(Metrics::default());
        let transport = Transport::new(
            address.peer_url.clone(),
            tokio::runtime::Handle::current(),
            metrics.clone(),
            SnapshotDir::open(dir.path()).unwrap(),
            None,
        );
        let driver = driver::start(
            dir.path(),
            config,
            Box::new(transport.clone()),
            metrics.clone(),
        )
        .unwrap();
        let solo = Self {
            state: ApiState::new(
                driver.handle,
                driver.db,
                transport,
                Limits::default(),
                metrics,
            ),
            driver: Some(driver.thread),
            _dir: dir,
        };
        if bootstrap {
            let handle = solo.handle();
            handle.bootstrap().await.unwrap();
            let deadline = Instant::now() + super::patience::patience(Duration::from_secs(20));
            while !handle.view().is_leader() {
                assert!(Instant::now() < deadline, "the node did not come to lead");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        solo
    }

    pub fn handle(&self) -> NodeHandle {
        self.state.node.clone()
    }

    /// What the peer routes of this node need, with default limits.
    pub fn peer_state(&self) -> PeerState {
        let max_append_bytes = raftcfg_raft::Config::new(raftcfg_raft::NodeId(0)).max_append_bytes;
        PeerState::new(
            self.handle(),
            PeerLimits::for_limits(&Limits::default(), max_append_bytes),
            SnapshotReceiver {
                node: self.handle(),
                dir: SnapshotDir::open(self._dir.path()).unwrap(),
                max_bytes: 1 << 30,
                slots: Arc::new(tokio::sync::Semaphore::new(1)),
            },
            // Its sender is dropped: streams end at once (none is opened
            // through `oneshot`).
            tokio::sync::watch::channel(false).1,
        )
    }

    /// The store's revision once the driver finished every earlier round
    /// (a barrier is answered in a later round than they were).
    pub async fn settled_revision(&self) -> u64 {
        self.handle().barrier().await.unwrap();
        self.handle().view().revision.get()
    }
}
