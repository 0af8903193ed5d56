//! [`NodeHandle`]: how the rest of the node (HTTP API, peer server) talks
//! to the driver — requests in through its [`Queue`], answers back over
//! one-shot channels — and the types of those requests and answers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use raftcfg_raft::{
    ClusterId, ForcedCluster, LogIndex, MembershipChange, Message, MessageBody, NodeId,
    ProposalError, Status, Term,
};
use tokio::sync::{broadcast, oneshot, watch};

use super::queue::Queue;
use crate::kv::{
    Change, ChangePage, Command, Key, KeyPrefix, KeyRecord, MemberAddress, Outcome, Page, Revision,
};
use crate::storage::Identity;

/// Why the driver could not do what was asked. Each variant says whether
/// the request may have taken effect.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// This node is not part of a cluster yet (not bootstrapped, not added).
    #[error("this node is not part of a cluster yet: bootstrap it or add it to a cluster")]
    NotInitialized,
    /// Only the leader does this; `leader` is the one this node knows of.
    /// Nothing happened.
    #[error("this node is not the leader")]
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// The proposal was overwritten by another leader's entry: it did not
    /// and will not take effect. Safe to retry.
    #[error("the request was lost to a leader change; it did not take effect")]
    Lost,
    /// The outcome cannot be known (the node stopped waiting, or the entry
    /// was applied through a snapshot). It may or may not have happened.
    #[error("the outcome is unknown: the write may or may not have happened")]
    Unknown,
    /// The Raft core refused the request; nothing happened.
    #[error("{0}")]
    Refused(ProposalError),
    /// The request queue is full; nothing happened.
    #[error("the node is overloaded; retry shortly")]
    Busy,
    /// The driver has stopped (shutdown or a storage failure).
    #[error("the node is stopping")]
    Stopped,
    /// This node was removed from its cluster; nothing happened.
    #[error(
        "this node was removed from its cluster and serves nothing; wipe its data directory to add it again"
    )]
    Removed,
    /// The node already belongs to a cluster.
    #[error("this node already belongs to a cluster")]
    AlreadyInitialized,
    /// A new cluster is forced only on a node that knows no leader: this
    /// one follows (or is) `0`, so a quorum is there. Nothing happened.
    #[error(
        "node {0} leads this cluster, so it has a quorum; a new cluster is forced only when the quorum is lost for good"
    )]
    HasLeader(NodeId),
    /// Only a voter's data is recovered; nothing happened.
    #[error(
        "this node is a learner: its log may be far behind, so the cluster is not recovered from it; force a new cluster on a voter"
    )]
    NotAVoter,
    /// Another leadership transfer is under way.
    #[error("a leadership transfer is already in progress")]
    TransferInProgress,
    /// There is no other voter to hand leadership to.
    #[error("there is no other voter to hand leadership to")]
    NoTransferTarget,
    /// A leadership transfer did not complete in time.
    #[error("leadership did not move to node {0} in time")]
    TransferTimedOut(NodeId),
    /// The leader could not be reached; nothing was sent.
    #[error("the leader cannot be reached; retry shortly")]
    LeaderUnreachable,
    /// The leader a write was forwarded to refused it.
    #[error("the leader refused the request: {0}")]
    Remote(String),
    /// The caller may not do this (checked again by the leader of a
    /// forwarded request).
    #[error("{0}")]
    Forbidden(String),
    /// Reading the state failed.
    #[error("storage failed: {0}")]
    Storage(String),
    /// The node to add is refused (see [`MemberRefusal`]); nothing
    /// happened.
    #[error("{message}")]
    MemberRefused {
        /// Why.
        refusal: MemberRefusal,
        /// What to do about it.
        message: String,
    },
}

/// Why a node is not added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberRefusal {
    /// It is a member already, or reuses a member's name or URL.
    Duplicate,
    /// The node at its client URL has another id.
    WrongNode,
    /// It belongs to another cluster.
    ForeignCluster,
    /// It was removed from this cluster and keeps its old data.
    Removed,
    /// Nothing answered at its client URL.
    Unreachable,
}

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read began (ReadIndex).
    #[default]
    Linearizable,
    /// This node's applied state, which may lag the cluster.
    Serializable,
}

/// A read of the key-value state.
#[derive(Clone, Debug)]
pub enum Query {
    /// One key.
    Get(Key),
    /// A page of keys under a prefix.
    List {
        /// The prefix.
        prefix: KeyPrefix,
        /// Continue after this key.
        start_after: Option<Key>,
        /// At most this many.
        limit: usize,
    },
    /// A page of the change log under a prefix (for watches).
    Changes {
        /// The prefix.
        prefix: KeyPrefix,
        /// The first revision wanted.
        from: Revision,
        /// At most this many.
        limit: usize,
    },
}

/// The answer to a [`Query`], with the store's revision when it was read.
#[derive(Clone, Debug)]
pub enum QueryResult {
    /// The key's record, if it exists.
    Get(Option<KeyRecord>, Revision),
    /// The page.
    List(Page, Revision),
    /// The changes, or the compaction point if they are gone.
    Changes(Result<ChangePage, Revision>, Revision),
}

/// What the node looks like now; published by the driver after each round.
#[derive(Clone, Debug)]
pub struct NodeView {
    /// This node.
    pub identity: Identity,
    /// The Raft core's state.
    pub status: Status,
    /// Every known member's address (the replicated directory, plus
    /// addresses learned before their entry was applied).
    pub addresses: Arc<BTreeMap<NodeId, MemberAddress>>,
    /// The key-value store's revision.
    pub revision: Revision,
    /// Peers this node heard from within an election timeout.
    pub healthy_peers: BTreeSet<NodeId>,
    /// Why the driver stopped, if it did.
    pub stopped: Option<String>,
    /// Whether this node was removed from its cluster: it then serves
    /// nothing and takes no part in the cluster.
    pub removed: bool,
    /// The members this node saw removed (their peer requests are
    /// answered `410 Gone`).
    pub removed_members: Arc<BTreeSet<NodeId>>,
    /// Users, roles and whether auth is on, as applied.
    pub auth: Arc<crate::kv::AuthState>,
}

impl NodeView {
    /// Whether this node belongs to a cluster.
    pub fn initialized(&self) -> bool {
        self.status.cluster_id.is_some()
    }

    /// The leader's id, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.status.leader_id
    }

    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        self.status.leader_id == Some(self.identity.node_id)
    }
}

/// A request to the driver.
pub(super) enum Request {
    Propose {
        command: Command,
        reply: oneshot::Sender<Result<Outcome, DriverError>>,
    },
    Read {
        query: Query,
        consistency: Consistency,
        reply: oneshot::Sender<Result<QueryResult, DriverError>>,
    },
    /// The syncer made the log durable up to (`index`, `term`), taking
    /// `outcome`'s time, or failed.
    Synced {
        index: LogIndex,
        term: Term,
        outcome: Result<std::time::Duration, String>,
    },
    Step {
        messages: Vec<Message>,
        sender_url: Option<String>,
    },
    ChangeMembership {
        change: MembershipChange,
        address: Option<MemberAddress>,
        reply: oneshot::Sender<Result<LogIndex, DriverError>>,
    },
    TransferLeader {
        to: Option<NodeId>,
        reply: oneshot::Sender<Result<NodeId, DriverError>>,
    },
    UpdateMember {
        id: NodeId,
        peer_url: String,
        client_url: String,
        reply: oneshot::Sender<Result<LogIndex, DriverError>>,
    },
    Bootstrap {
        reply: oneshot::Sender<Result<ClusterId, DriverError>>,
    },
    ForceNewCluster {
        reply: oneshot::Sender<Result<ForcedCluster, DriverError>>,
    },
    /// Answered once every request queued before it was handled.
    Barrier {
        reply: oneshot::Sender<Result<(), DriverError>>,
    },
}

impl Request {
    /// Whether a caller's thread may run the round for this request (see
    /// `queue`): anything but a snapshot to install, whose cost grows with
    /// the state's size and belongs on the driver thread.
    pub(super) fn runs_inline(&self) -> bool {
        match self {
            Request::Step { messages, .. } => !messages
                .iter()
                .any(|message| matches!(message.body, MessageBody::InstallSnapshot { .. })),
            _ => true,
        }
    }

    /// Whether many of these in one round save work: proposals share one
    /// write, linearizable reads one ReadIndex.
    pub(super) fn batches(&self) -> bool {
        matches!(self, Request::Propose { .. } | Request::Read { .. })
    }
}

/// A cloneable handle to a running driver.
#[derive(Clone)]
pub struct NodeHandle {
    pub(super) requests: Arc<Queue>,
    pub(super) view: watch::Receiver<NodeView>,
    /// Whether the driver stopped on its own: a channel apart from the
    /// view, so that waiting for it costs no wake-up per round.
    pub(super) failed: watch::Receiver<bool>,
    pub(super) changes: broadcast::Sender<ChangeBatch>,
    pub(super) stop: Arc<AtomicBool>,
}

/// The changes one round applied, as the driver publishes them to watchers.
pub type ChangeBatch = Arc<AppliedChanges>;

/// The revisions one round applied, and their changes unless they were too
/// large to publish (a watcher then reads them from the change log), so
/// the feed holds a bounded number of bytes whatever the values' sizes.
#[derive(Debug)]
pub struct AppliedChanges {
    /// The first revision applied.
    pub first: Revision,
    /// The last revision applied.
    pub last: Revision,
    /// The changes, in revision order; `None` if left out.
    pub changes: Option<Vec<Change>>,
}

impl NodeHandle {
    /// Asks the driver to stop after its current round. Requests it has
    /// not answered are dropped: their callers see `Stopped`, or `Unknown`
    /// for writes.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.requests.wake_driver();
    }

    /// The node as of the driver's last round.
    pub fn view(&self) -> NodeView {
        self.view.borrow().clone()
    }

    /// Users, roles and whether auth is on, as applied (without copying
    /// the rest of the view: every request asks).
    pub fn auth(&self) -> Arc<crate::kv::AuthState> {
        self.view.borrow().auth.clone()
    }

    /// Whether this node was removed from its cluster.
    pub fn is_removed(&self) -> bool {
        self.view.borrow().removed
    }

    /// Whether this node saw member `id` removed.
    pub fn saw_removed(&self, id: NodeId) -> bool {
        self.view.borrow().removed_members.contains(&id)
    }

    /// Resolves once the driver has stopped on its own (a storage
    /// failure; the view says why), or has ended.
    pub async fn failed(&self) {
        let _ = self.failed.clone().wait_for(|failed| *failed).await;
    }

    /// A receiver of every batch of changes applied from now on. A
    /// receiver that falls behind by more than the channel holds gets
    /// `Lagged` and must read the change log for what it missed.
    pub fn subscribe_changes(&self) -> broadcast::Receiver<ChangeBatch> {
        self.changes.subscribe()
    }

    /// Proposes a write (on the leader) and waits until it is applied.
    pub async fn propose(&self, command: Command) -> Result<Outcome, DriverError> {
        self.ask(DriverError::Unknown, |reply| Request::Propose {
            command,
            reply,
        })
        .await
    }

    /// Reads the state with the given consistency.
    pub async fn read(
        &self,
        query: Query,
        consistency: Consistency,
    ) -> Result<QueryResult, DriverError> {
        self.ask(DriverError::Stopped, |reply| Request::Read {
            query,
            consistency,
            reply,
        })
        .await
    }

    /// Hands peer messages to the core; `sender_url` is where their sender
    /// says it can be reached.
    pub fn step(
        &self,
        messages: Vec<Message>,
        sender_url: Option<String>,
    ) -> Result<(), DriverError> {
        self.send(Request::Step {
            messages,
            sender_url,
        })
    }

    /// Proposes a membership change (on the leader) and waits until it is
    /// committed and applied. `address` is recorded for a new learner.
    pub async fn change_membership(
        &self,
        change: MembershipChange,
        address: Option<MemberAddress>,
    ) -> Result<LogIndex, DriverError> {
        self.ask(DriverError::Unknown, |reply| Request::ChangeMembership {
            change,
            address,
            reply,
        })
        .await
    }

    /// Records member `id`'s new URLs (its name stays) and waits until the
    /// record is applied; answers with its log index.
    pub async fn update_member(
        &self,
        id: NodeId,
        peer_url: String,
        client_url: String,
    ) -> Result<LogIndex, DriverError> {
        self.ask(DriverError::Unknown, |reply| Request::UpdateMember {
            id,
            peer_url,
            client_url,
            reply,
        })
        .await
    }

    /// Hands leadership to `to` (or the most caught-up voter) and waits
    /// until it leads.
    pub async fn transfer_leader(&self, to: Option<NodeId>) -> Result<NodeId, DriverError> {
        self.ask(DriverError::Stopped, |reply| Request::TransferLeader {
            to,
            reply,
        })
        .await
    }

    /// Founds a one-member cluster on this uninitialized node.
    pub async fn bootstrap(&self) -> Result<ClusterId, DriverError> {
        self.ask(DriverError::Unknown, |reply| Request::Bootstrap { reply })
            .await
    }

    /// Makes this node its cluster's only voter, keeping its data, if it
    /// is a voter that knows no leader.
    pub async fn force_new_cluster(&self) -> Result<ForcedCluster, DriverError> {
        self.ask(DriverError::Unknown, |reply| Request::ForceNewCluster {
            reply,
        })
        .await
    }

    /// Resolves once the driver handled every request sent before this
    /// one (their effects are in the published view).
    pub async fn barrier(&self) -> Result<(), DriverError> {
        self.ask(DriverError::Stopped, |reply| Request::Barrier { reply })
            .await
    }

    /// Sends a request and waits for its answer; `if_dropped` is the
    /// answer when the driver stops after taking the request (`Unknown` for
    /// anything that may have been proposed).
    async fn ask<T>(
        &self,
        if_dropped: DriverError,
        request: impl FnOnce(oneshot::Sender<Result<T, DriverError>>) -> Request,
    ) -> Result<T, DriverError> {
        let (reply, answer) = oneshot::channel();
        self.send(request(reply))?;
        answer.await.unwrap_or(Err(if_dropped))
    }

    fn send(&self, request: Request) -> Result<(), DriverError> {
        self.requests.send(request)
    }
}
