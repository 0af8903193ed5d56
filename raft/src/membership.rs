//! Cluster membership: who votes, who only learns, and the single-server
//! changes between configurations.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::error::MembershipError;
use crate::ids::NodeId;

/// A configuration: the voters (who elect and commit) and the learners (who
/// only receive the log).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// Members that vote and count for commit and CheckQuorum.
    pub voters: BTreeSet<NodeId>,
    /// Members that receive the log but never vote or count.
    pub learners: BTreeSet<NodeId>,
}

/// One single-server membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add a new node as a learner.
    AddLearner(NodeId),
    /// Make a learner a voter.
    PromoteLearner(NodeId),
    /// Remove a voter or a learner (possibly the leader itself).
    Remove(NodeId),
}

/// The payload of a configuration entry: the change, the configuration it
/// produces, and an opaque application context (e.g. the new node's address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigChange {
    /// The change that was proposed.
    pub change: MembershipChange,
    /// The configuration in force once this entry is appended.
    pub config: Membership,
    /// Opaque application data carried with the change.
    pub context: Bytes,
}

impl Membership {
    /// A configuration with the given voters and no learners.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Self {
            voters: voters.into_iter().collect(),
            learners: BTreeSet::new(),
        }
    }

    /// Whether `id` is a voter.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// Whether `id` is a learner.
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id)
    }

    /// Whether `id` is a voter or a learner.
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Every member, voters and learners, in id order.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.union(&self.learners).copied()
    }

    /// How many voters make a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Whether the voters in `granted` form a majority of this configuration.
    pub fn is_quorum<'a>(&self, granted: impl IntoIterator<Item = &'a NodeId>) -> bool {
        let votes = granted.into_iter().filter(|id| self.is_voter(**id)).count();
        votes >= self.quorum()
    }

    /// The configuration after `change`, or why the change is invalid.
    pub fn apply(&self, change: MembershipChange) -> Result<Membership, MembershipError> {
        let mut next = self.clone();
        match change {
            MembershipChange::AddLearner(id) => {
                if self.contains(id) {
                    return Err(MembershipError::AlreadyMember(id));
                }
                next.learners.insert(id);
            }
            MembershipChange::PromoteLearner(id) => {
                if !next.learners.remove(&id) {
                    return Err(MembershipError::NotALearner(id));
                }
                next.voters.insert(id);
            }
            MembershipChange::Remove(id) => {
                if !self.contains(id) {
                    return Err(MembershipError::NotAMember(id));
                }
                if self.voters.len() == 1 && self.is_voter(id) {
                    return Err(MembershipError::LastVoter(id));
                }
                next.voters.remove(&id);
                next.learners.remove(&id);
            }
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[u64]) -> Vec<NodeId> {
        list.iter().copied().map(NodeId).collect()
    }

    #[test]
    fn quorum_is_a_majority_of_voters_only() {
        let mut m = Membership::with_voters(ids(&[1, 2, 3]));
        m.learners.insert(NodeId(4));
        assert_eq!(m.quorum(), 2);
        assert!(!m.is_quorum(&ids(&[1, 4])));
        assert!(m.is_quorum(&ids(&[1, 3])));
    }

    #[test]
    fn adding_an_existing_member_is_refused() {
        let m = Membership::with_voters(ids(&[1]));
        assert_eq!(
            m.apply(MembershipChange::AddLearner(NodeId(1))),
            Err(MembershipError::AlreadyMember(NodeId(1)))
        );
    }

    #[test]
    fn only_learners_can_be_promoted() {
        let m = Membership::with_voters(ids(&[1]));
        assert_eq!(
            m.apply(MembershipChange::PromoteLearner(NodeId(2))),
            Err(MembershipError::NotALearner(NodeId(2)))
        );
        let m = m.apply(MembershipChange::AddLearner(NodeId(2))).unwrap();
        let m = m
            .apply(MembershipChange::PromoteLearner(NodeId(2)))
            .unwrap();
        assert_eq!(m.voters, ids(&[1, 2]).into_iter().collect());
        assert!(m.learners.is_empty());
    }

    #[test]
    fn removing_the_last_voter_is_refused() {
        let m = Membership::with_voters(ids(&[7]));
        assert_eq!(
            m.apply(MembershipChange::Remove(NodeId(7))),
            Err(MembershipError::LastVoter(NodeId(7)))
        );
    }

    #[test]
    fn removing_a_stranger_is_refused() {
        let m = Membership::with_voters(ids(&[1, 2]));
        assert_eq!(
            m.apply(MembershipChange::Remove(NodeId(9))),
            Err(MembershipError::NotAMember(NodeId(9)))
        );
    }
}
