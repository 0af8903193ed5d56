//! What one reconcile saw of a cluster: the StatefulSet, each pod and what
//! its node says of itself, and the leader's member list. Plain data, so
//! the planner is a pure function of it and tests can write it by hand.

use std::collections::{BTreeMap, BTreeSet};

use raftcfg_client::wire::{ClusterId, EntryCount, LogIndex, NodeId, Term};

/// One pod of the StatefulSet, by ordinal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodObservation {
    /// The StatefulSet ordinal (`NAME-<ordinal>`).
    pub ordinal: u32,
    /// The pod is being deleted.
    pub terminating: bool,
    /// The configuration hash its template carried.
    pub config_hash: Option<String>,
    /// The client Service may send it clients (see
    /// [`SERVING_LABEL`](crate::resources::SERVING_LABEL)).
    pub serving: bool,
    /// What the node in the pod says of itself; `None` while it does not
    /// answer.
    pub node: Option<NodeReport>,
}

/// A node's `GET /v1/node`, the parts the planner uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeReport {
    /// The node's id (new for every new data directory).
    pub node_id: NodeId,
    /// Its cluster, once bootstrapped or joined.
    pub cluster_id: Option<ClusterId>,
    /// The term of its last log entry.
    pub last_term: Term,
    /// Its last log index: with `last_term`, how up to date its log is,
    /// which it answers even without a leader.
    pub last_index: LogIndex,
}

/// One member in the leader's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedMember {
    /// Raft node id.
    pub node_id: NodeId,
    /// Its name, the pod name.
    pub name: String,
    /// Voter (or learner).
    pub voter: bool,
    /// Whether the leader heard from it recently.
    pub healthy: bool,
    /// The highest index known to match the leader's log.
    pub match_index: LogIndex,
}

/// The leader's view of the membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderView {
    /// The leader's node id.
    pub leader_id: NodeId,
    /// Its commit index.
    pub commit_index: LogIndex,
    /// A configuration entry is appended but not committed.
    pub change_pending: bool,
    /// Every voter and learner.
    pub members: Vec<ObservedMember>,
}

/// Everything one reconcile observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The StatefulSet's `spec.replicas`, or `None` if it does not exist.
    pub statefulset_replicas: Option<u32>,
    /// Its pods, by ordinal.
    pub pods: BTreeMap<u32, PodObservation>,
    /// The leader's view; `None` when no node names a reachable leader.
    pub leader: Option<LeaderView>,
    /// Ordinals whose data volume claim exists (with or without a pod).
    pub claims: BTreeSet<u32>,
}

impl LeaderView {
    /// The member with `node_id`.
    pub fn member(&self, node_id: NodeId) -> Option<&ObservedMember> {
        self.members.iter().find(|m| m.node_id == node_id)
    }

    /// Voters only.
    pub fn voters(&self) -> impl Iterator<Item = &ObservedMember> {
        self.members.iter().filter(|m| m.voter)
    }

    /// How far `member` is behind the commit index.
    pub fn lag(&self, member: &ObservedMember) -> EntryCount {
        self.commit_index.entries_since(member.match_index)
    }
}

/// The StatefulSet ordinal of a pod name `<cluster>-<ordinal>`.
pub fn ordinal_of(cluster: &str, pod_name: &str) -> Option<u32> {
    let rest = pod_name.strip_prefix(cluster)?.strip_prefix('-')?;
    if rest.is_empty() || (rest.len() > 1 && rest.starts_with('0')) {
        return None;
    }
    rest.parse().ok()
}

/// The pod name of `ordinal`.
pub fn pod_name(cluster: &str, ordinal: u32) -> String {
    format!("{cluster}-{ordinal}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_are_read_only_from_this_clusters_pod_names() {
        assert_eq!(ordinal_of("cfg", "cfg-0"), Some(0));
        assert_eq!(ordinal_of("cfg", "cfg-12"), Some(12));
        assert_eq!(ordinal_of("cfg", "cfg-x"), None);
        assert_eq!(ordinal_of("cfg", "cfg-01"), None);
        assert_eq!(ordinal_of("cfg", "other-1"), None);
        assert_eq!(ordinal_of("cfg", "cfg-"), None);
        assert_eq!(ordinal_of("cfg-a", "cfg-1"), None);
    }
}
