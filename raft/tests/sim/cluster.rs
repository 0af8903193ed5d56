//! [`Cluster`]: the simulated nodes. Each is a `RawNode<SimDisk>` with
//! its [`App`]; a crash drops the `RawNode` and keeps only the disk
//! (what `handle_ready` persisted) and the application's state machine; a
//! restart builds a new `RawNode` from them. Also founds the cluster (all
//! founders, or one founder that the others join) and keeps the last
//! observed view of every node.

use std::collections::BTreeMap;

use raftcfg_raft::{
    ClusterId, Config, HardState, LogIndex, LogStorage, MemStorage, Membership, NodeId, RawNode,
    ReadyHandler, Role, StartError, Status, Term, bootstrap,
};

use crate::sim::app::App;
use crate::sim::dice::Dice;
use crate::sim::disk::{Fuse, SimDisk, WriteFault};
use crate::sim::profile::Profile;

/// What the simulator last saw of a running node.
#[derive(Clone, Debug)]
pub struct View {
    pub role: Role,
    pub term: Term,
    pub leader_id: Option<NodeId>,
    pub commit: LogIndex,
    pub last_index: LogIndex,
    pub membership: Membership,
}

impl View {
    pub fn of(status: &Status) -> Self {
        Self {
            role: status.role,
            term: status.term,
            leader_id: status.leader_id,
            commit: status.commit,
            last_index: status.last_index,
            membership: status.membership.clone(),
        }
    }
}

/// How a node's process is to die in its next `Ready`.
#[derive(Clone, Copy, Debug)]
pub enum ReadyCrash {
    /// After carrying out this many of the `Ready`'s effects.
    After(u32),
    /// Its write fails: the node stops.
    WriteFails(WriteFault),
}

/// One simulated node (process + disk).
pub struct SimNode {
    pub id: NodeId,
    /// The running process, `None` while crashed.
    pub raft: Option<RawNode<SimDisk>>,
    /// The disk while the process is down.
    parked: Option<SimDisk>,
    /// Burns down when the process dies inside a `Ready`.
    pub fuse: Fuse,
    /// The process dies in its next `Ready` (a fault).
    pub crash_in_ready: Option<ReadyCrash>,
    pub app: App,
    pub config: Config,
    /// Bumped at every restart, so events for a dead process are ignored.
    pub incarnation: u32,
    /// Its removal is committed: it stays down for good.
    pub decommissioned: bool,
    /// The last observation of the running process.
    pub view: Option<View>,
    pub ready_scheduled: bool,
    /// The last entry a sync was scheduled for (a leader deferring syncs).
    pub sync_asked: Option<(LogIndex, Term)>,
    /// Sim time units per tick of this node's clock (clocks drift).
    pub tick_units: u64,
}

impl SimNode {
    pub fn is_up(&self) -> bool {
        self.raft.is_some()
    }

    /// The durable storage, whether the process runs or not.
    pub fn storage(&self) -> &MemStorage {
        match &self.raft {
            Some(raft) => raft.storage().durable(),
            None => self
                .parked
                .as_ref()
                .expect("a crashed node keeps its disk")
                .durable(),
        }
    }

    pub fn durable_hard_state(&self) -> HardState {
        self.storage().hard_state().expect("MemStorage never fails")
    }

    /// Kills the process: everything not persisted is lost.
    pub fn crash(&mut self) -> HardState {
        let raft = self.raft.take().expect("crash a running node");
        let mut disk = raft.into_storage();
        disk.lose_unsynced();
        let durable_commit = disk.durable().hard_state().expect("MemStorage").commit;
        if self.app.state.applied > durable_commit
            && let Some(synced) = self.app.synced.clone()
        {
            self.app.state = synced;
        }
        self.parked = Some(disk);
        self.sync_asked = None;
        self.crash_in_ready = None;
        self.app.crash();
        self.view = None;
        self.ready_scheduled = false;
        self.durable_hard_state()
    }

    /// Starts a new process from the disk and the application's applied
    /// index. Like the node, it first installs a stored snapshot the
    /// application had not caught up with (the process died between
    /// storing a received snapshot and installing it).
    pub fn restart(&mut self) -> Result<HardState, StartError> {
        let storage = self.parked.take().expect("restart a crashed node");
        let snapshot = storage.snapshot().expect("MemStorage never fails");
        if self.app.state.applied < snapshot.metadata.index {
            self.app.install_snapshot(&snapshot);
        }
        let mut config = self.config.clone();
        config.applied = self.app.state.applied;
        config.seed = config.seed.wrapping_add(u64::from(self.incarnation) + 1);
        match RawNode::new(config, storage.clone()) {
            Ok(raft) => {
                self.raft = Some(raft);
                self.incarnation += 1;
                Ok(self.durable_hard_state())
            }
            Err(e) => {
                self.parked = Some(storage);
                Err(e)
            }
        }
    }
}

/// All nodes ever created, by id (ids are never reused).
pub struct Cluster {
    pub id: ClusterId,
    pub nodes: BTreeMap<NodeId, SimNode>,
    next_id: u64,
}

impl Cluster {
    /// Founds the cluster. Returns it and the nodes that still have to join
    /// (the join path: node 1 is bootstrapped alone and the others are
    /// added as learners and promoted).
    pub fn found(profile: &Profile, dice: &mut Dice) -> (Self, Vec<NodeId>) {
        let mut cluster = Self {
            id: ClusterId(0x5157_0000 + dice.range(1, 0xffff)),
            nodes: BTreeMap::new(),
            next_id: 1,
        };
        let ids: Vec<NodeId> = (0..profile.cluster_size)
            .map(|_| cluster.fresh_id())
            .collect();
        let founders: Vec<NodeId> = if profile.join_path {
            ids[..1].to_vec()
        } else {
            ids.clone()
        };
        for id in &ids {
            let mut storage = MemStorage::new();
            if founders.contains(id) {
                bootstrap(&mut storage, founders.iter().copied(), cluster.id)
                    .expect("bootstrap an empty store");
            }
            cluster.add(*id, storage, profile, dice);
        }
        let joiners = ids[founders.len()..].to_vec();
        (cluster, joiners)
    }

    /// An id no node has had.
    pub fn fresh_id(&mut self) -> NodeId {
        let id = NodeId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Starts a node on `storage` (empty for a node that will join).
    pub fn add(&mut self, id: NodeId, storage: MemStorage, profile: &Profile, dice: &mut Dice) {
        let config = profile.node_config(id, dice.next_u64());
        let fuse = Fuse::default();
        let disk = SimDisk::new(storage, fuse.clone());
        let raft = RawNode::new(config.clone(), disk).expect("start a new node");
        let tick_units = dice.range(profile.tick_units.0, profile.tick_units.1);
        self.nodes.insert(
            id,
            SimNode {
                id,
                raft: Some(raft),
                parked: None,
                fuse: fuse.clone(),
                crash_in_ready: None,
                app: App::new(id, fuse),
                config,
                incarnation: 0,
                decommissioned: false,
                view: None,
                ready_scheduled: false,
                sync_asked: None,
                tick_units,
            },
        );
    }

    pub fn node(&self, id: NodeId) -> &SimNode {
        &self.nodes[&id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut SimNode {
        self.nodes.get_mut(&id).expect("known node")
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes.get(&id).is_some_and(SimNode::is_up)
    }

    pub fn up_ids(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.is_up())
            .map(|n| n.id)
            .collect()
    }

    /// The running leader with the highest term, as last observed.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter_map(|n| n.view.as_ref().map(|v| (n.id, v)))
            .filter(|(_, v)| v.role == Role::Leader)
            .max_by_key(|(id, v)| (v.term, *id))
            .map(|(id, _)| id)
    }
}
