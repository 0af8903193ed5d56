//! Recovery from a lost quorum: [`force_new_cluster`] makes a stopped
//! member's store the only voter of its cluster, keeping its log, its state
//! and its cluster id (as etcd's `--force-new-cluster` does).
//!
//! This is the one operation that breaks Raft's promise: entries the lost
//! majority committed and this member never received are gone. It is for
//! when the other voters can never come back; the caller decides that.

use bytes::Bytes;

use crate::config_history::ConfigHistory;
use crate::entry::{Entry, EntryPayload};
use crate::ids::{ClusterId, LogIndex, NodeId, Term};
use crate::membership::{ConfigChange, Membership, MembershipChange};
use crate::storage::{HardState, LogStore, LogWrite, StorageError};

/// What [`force_new_cluster`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForcedCluster {
    /// The cluster, unchanged.
    pub cluster_id: ClusterId,
    /// The configuration in force before.
    pub previous: Membership,
    /// The members removed (every member but this one).
    pub removed: Vec<NodeId>,
    /// The last entry of the log before: everything up to it is kept and
    /// now committed.
    pub last_index: LogIndex,
    /// Its term.
    pub last_term: Term,
    /// The commit index this member knew before: entries after it were
    /// possibly never committed, and are committed now.
    pub commit: LogIndex,
    /// The index of the last configuration entry appended (the new end of
    /// the log).
    pub index: LogIndex,
}

/// Why a store could not be forced into a new cluster.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForceError {
    /// The store belongs to no cluster: there is nothing to recover.
    #[error("this node belongs to no cluster; there is nothing to recover")]
    NotInitialized,
    /// The node is a learner (or no member): its log may be far behind,
    /// and it never counted for a quorum.
    #[error("node {0} is not a voter of its cluster; only a voter's data is recovered")]
    NotAVoter(NodeId),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Rewrites `store`, the durable state of node `me` (which must not be
/// running), so that `me` is its cluster's only voter. One `Remove` entry
/// per other member is appended in a new term, and the commit index is
/// moved to the end of the log, so every entry the node holds (including
/// ones it did not know were committed) is kept. Started again, the node
/// elects itself and serves; the others are added back as new members.
///
/// A node already alone in its configuration is left as it is.
pub fn force_new_cluster<S: LogStore>(
    store: &mut S,
    me: NodeId,
) -> Result<ForcedCluster, ForceError> {
    let hard_state = store.hard_state()?;
    let cluster_id = hard_state.cluster_id.ok_or(ForceError::NotInitialized)?;
    let previous = ConfigHistory::load(store)?.current().clone();
    if !previous.is_voter(me) {
        return Err(ForceError::NotAVoter(me));
    }
    let last_index = store.last_index()?;
    let last_term = store.term(last_index)?;
    let removed: Vec<NodeId> = previous.members().filter(|id| *id != me).collect();
    let term = Term(hard_state.term.get().max(last_term.get()) + 1);
    let mut config = previous.clone();
    let mut index = last_index;
    let mut entries = Vec::with_capacity(removed.len());
    for id in &removed {
        let change = MembershipChange::Remove(*id);
        config = config
            .apply(change)
            .expect("removing a member other than the voter that stays is valid");
        index = index.next();
        entries.push(Entry {
            term,
            index,
            payload: EntryPayload::Config(ConfigChange {
                change,
                config: config.clone(),
                context: Bytes::new(),
            }),
        });
    }
    if !removed.is_empty() {
        let forced = HardState {
            term,
            vote: Some(me),
            commit: index,
            cluster_id: Some(cluster_id),
        };
        store.persist(LogWrite {
            snapshot: None,
            entries: &entries,
            hard_state: Some(&forced),
            compaction: None,
        })?;
    }
    Ok(ForcedCluster {
        cluster_id,
        previous,
        removed,
        last_index,
        last_term,
        commit: hard_state.commit,
        index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{LogStorage, bootstrap};
    use crate::testing::{CLUSTER, Cluster, config, id};
    use crate::{MemStorage, RawNode, Role};

    /// Node 1 leads three voters and holds entries the others never got;
    /// then nodes 2 and 3 are gone for good.
    fn survivor_of_three() -> MemStorage {
        let mut cluster = Cluster::three_led_by_one();
        cluster.propose(1, "a");
        cluster.deliver_all();
        cluster.isolate(1);
        cluster.propose(1, "b"); // appended, never committed
        cluster.deliver_all();
        cluster.nodes.remove(&id(1)).unwrap().into_storage()
    }

    #[test]
    fn the_survivor_alone_elects_itself_and_keeps_every_entry_it_held() {
        let mut store = survivor_of_three();
        let before = store.hard_state().unwrap();
        let forced = force_new_cluster(&mut store, id(1)).unwrap();
        assert_eq!(forced.cluster_id, CLUSTER);
        assert_eq!(forced.removed, vec![id(2), id(3)]);
        assert_eq!(
            forced.previous,
            Membership::with_voters([id(1), id(2), id(3)])
        );
        assert!(
            forced.commit < forced.last_index,
            "b was not known committed"
        );
        assert_eq!(forced.index, forced.last_index.plus(2));
        assert!(store.hard_state().unwrap().term > before.term);

        let mut alone = Cluster::with_configs(Vec::new());
        alone.add_node(config(1), store);
        alone.run_until(100, |c| c.node(1).status().role == Role::Leader);
        alone.propose(1, "c");
        alone.deliver_all();
        let status = alone.node(1).status();
        assert_eq!(status.membership, Membership::with_voters([id(1)]));
        assert_eq!(status.cluster_id, Some(CLUSTER));
        assert_eq!(alone.applied_commands(1), ["a", "b", "c"]);
    }

    #[test]
    fn a_node_already_alone_is_left_as_it_is() {
        let mut store = MemStorage::new();
        bootstrap(&mut store, [id(1)], CLUSTER).unwrap();
        let before = store.clone();
        let forced = force_new_cluster(&mut store, id(1)).unwrap();
        assert!(forced.removed.is_empty());
        assert_eq!(store.hard_state().unwrap(), before.hard_state().unwrap());
        assert_eq!(store.last_index().unwrap(), before.last_index().unwrap());
    }

    #[test]
    fn a_learner_or_a_stranger_is_refused() {
        let mut store = MemStorage::new();
        bootstrap(&mut store, [id(1), id(2)], CLUSTER).unwrap();
        assert_eq!(
            force_new_cluster(&mut store, id(3)),
            Err(ForceError::NotAVoter(id(3)))
        );
        let mut empty = MemStorage::new();
        assert_eq!(
            force_new_cluster(&mut empty, id(1)),
            Err(ForceError::NotInitialized)
        );
    }

    #[test]
    fn the_configuration_in_force_is_the_latest_in_the_log() {
        let mut cluster = Cluster::three_led_by_one();
        cluster.add_empty_node(4);
        cluster
            .change(1, MembershipChange::AddLearner(id(4)))
            .unwrap();
        cluster.deliver_all();
        cluster.change(1, MembershipChange::Remove(id(3))).unwrap();
        cluster.deliver_all();
        let mut store = cluster.nodes.remove(&id(1)).unwrap().into_storage();
        let forced = force_new_cluster(&mut store, id(1)).unwrap();
        let mut previous = Membership::with_voters([id(1), id(2)]);
        previous.learners.insert(id(4));
        assert_eq!(forced.previous, previous);
        assert_eq!(forced.removed, vec![id(2), id(4)]);
        let node = RawNode::new(config(1), store).unwrap();
        assert_eq!(node.status().membership, Membership::with_voters([id(1)]));
    }
}
