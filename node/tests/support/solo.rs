//! One node in this process — driver, transport and API state, no HTTP
//! listener — for tests that drive the routers with `oneshot`.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raftcfg_node::api::ApiState;
use raftcfg_node::driver::{self, DriverConfig, NodeHandle};
use raftcfg_node::kv::{Limits, MemberAddress};
use raftcfg_node::metrics::Metrics;
use raftcfg_node::replica::ReplicaError;
use raftcfg_node::transport::Transport;

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
        config.tick = Duration::from_millis(10);
        tune(&mut config);
        let metrics = Arc::new(Metrics::default());
        let transport = Transport::new(
            address.peer_url.clone(),
            tokio::runtime::Handle::current(),
            metrics.clone(),
        );
        let driver = driver::start(
            dir.path(),
            config,
            Box::new(transport.clone()),
            metrics.clone(),
        )
        .unwrap();
        let solo = Self {
            state: ApiState::new(driver.handle, transport, Limits::default(), metrics),
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

    /// The store's revision once the driver finished every earlier round
    /// (a digest request is answered in a later round than they were).
    pub async fn settled_revision(&self) -> u64 {
        self.handle().digest().await.unwrap();
        self.handle().view().revision.get()
    }
}
