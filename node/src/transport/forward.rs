//! What a follower sends the leader on a client's behalf over the peer
//! port, and the leader's answers: a write (`POST /raft/v1/propose`, the
//! body is the command's own encoding, the answer a [`ForwardReply`]) and a
//! cluster operation (`POST /raft/v1/cluster`, a [`ClusterRequest`]
//! answered with a [`ClusterReply`]).
//!
//! ```text
//! ForwardReply: tag 0 written u64 revision | 1 precondition failed opt_u64
//!               | 2 not found | 3 invalid string | an error (tags 4..)
//! ClusterReply: tag 0 done u64 (log index or new leader) | an error
//! error: 4 not leader opt_u64 leader | 5 lost | 6 unknown | 7 busy
//!        8 stopped | 9 not initialized | 10 refused string
//!       11 leader not ready | 12 transferring u64 to
//!       13 leader unreachable | 14 storage failed string
//!       15 membership change in progress | 16 membership u8 kind, u64 id
//!       17 learner not caught up u64 id, u64 matched, u64 commit
//!       18 not a voter u64 | 19 already initialized | 20 transfer busy
//!       21 no transfer target | 22 transfer timed out u64
//!       23 member refused u8 kind, string | 24 removed
//! ClusterRequest: tag 0 add learner u64 id, member address
//!               | 1 promote u64 | 2 remove u64 | 3 transfer opt_u64 to
//!               | 4 update member u64 id, string peer_url, string client_url
//! ```
//!
//! A refusal travels as a [`ForwardError`], a type of its own: the
//! conversions between it and the driver's [`DriverError`] name every
//! variant, so a new driver error does not compile until it has a wire
//! form, and the follower answers its client with the status and code the
//! leader would have given.

use bytes::{Buf, BufMut};
use raftcfg_raft::{LogIndex, MembershipError, NodeId, ProposalError};

use crate::codec::{Decode, DecodeError, Encode, get_opt_u64, get_string, put_opt_u64, put_str};
use crate::driver::{DriverError, MemberRefusal};
use crate::kv::{MemberAddress, Outcome, Revision};

/// What the leader answered to a forwarded write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardReply(pub Result<Outcome, ForwardError>);

/// A cluster operation a follower relays to the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterRequest {
    /// Add a learner reached at `address`.
    AddLearner {
        /// The new member.
        id: NodeId,
        /// Its name and URLs.
        address: MemberAddress,
    },
    /// Promote a learner to voter.
    Promote(NodeId),
    /// Remove a member.
    Remove(NodeId),
    /// Hand leadership to `to`, or to the most caught-up voter.
    TransferLeader {
        /// The target, if the client named one.
        to: Option<NodeId>,
    },
    /// Record a member's new URLs.
    UpdateMember {
        /// The member.
        id: NodeId,
        /// Where peers reach it now.
        peer_url: String,
        /// Where clients reach it now.
        client_url: String,
    },
}

/// What the leader answered to a [`ClusterRequest`]: the membership
/// change's log index, or the new leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterReply(pub Result<u64, ForwardError>);

/// Why the leader did not carry out a forwarded request, as it travels to
/// the follower that forwarded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardError {
    /// The leader is not part of a cluster (it cannot be, but says so).
    NotInitialized,
    /// It is no longer the leader; `leader` is the one it knows of.
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// A new leader that has not committed an entry of its term.
    LeaderNotReady,
    /// Leadership is being handed to `to`.
    TransferInProgress {
        /// The transfer's target.
        to: NodeId,
    },
    /// Overwritten by another leader's entry; it did not take effect.
    Lost,
    /// It may or may not take effect.
    Unknown,
    /// The leader's queue is full.
    Busy,
    /// The leader is stopping.
    Stopped,
    /// The leader could not reach the leader it knows of.
    LeaderUnreachable,
    /// The leader's storage failed.
    Storage(String),
    /// Another membership change is not yet committed.
    MembershipChangeInProgress,
    /// The membership change does not fit the current membership.
    Membership(MembershipError),
    /// The learner to promote is behind the leader's commit index.
    LearnerNotCaughtUp {
        /// The learner.
        id: NodeId,
        /// Its match index.
        matched: LogIndex,
        /// The leader's commit index.
        commit: LogIndex,
    },
    /// The transfer target is not a voter.
    NotAVoter(NodeId),
    /// Bootstrap asked of a member (never relayed, but has a form).
    AlreadyInitialized,
    /// Another leadership transfer is under way.
    TransferBusy,
    /// There is no other voter to hand leadership to.
    NoTransferTarget,
    /// Leadership did not move to this node in time.
    TransferTimedOut(NodeId),
    /// Any other refusal, by its message: not retryable.
    Refused(String),
    /// The node to add is refused.
    MemberRefused(MemberRefusal, String),
    /// The leader was removed from the cluster.
    Removed,
    /// The caller may not do this, by the leader's auth state.
    Forbidden(String),
}

impl From<DriverError> for ForwardError {
    fn from(error: DriverError) -> Self {
        match error {
            DriverError::NotInitialized => Self::NotInitialized,
            DriverError::NotLeader { leader } => Self::NotLeader { leader },
            DriverError::Lost => Self::Lost,
            DriverError::Unknown => Self::Unknown,
            DriverError::Busy => Self::Busy,
            DriverError::Stopped => Self::Stopped,
            DriverError::LeaderUnreachable => Self::LeaderUnreachable,
            DriverError::Storage(message) => Self::Storage(message),
            DriverError::Remote(message) => Self::Refused(message),
            DriverError::Refused(refusal) => Self::from(refusal),
            DriverError::AlreadyInitialized => Self::AlreadyInitialized,
            DriverError::TransferInProgress => Self::TransferBusy,
            DriverError::NoTransferTarget => Self::NoTransferTarget,
            DriverError::TransferTimedOut(to) => Self::TransferTimedOut(to),
            DriverError::MemberRefused { refusal, message } => {
                Self::MemberRefused(refusal, message)
            }
            DriverError::Removed => Self::Removed,
            DriverError::Forbidden(message) => Self::Forbidden(message),
            // Forcing a new cluster is never forwarded.
            error @ (DriverError::HasLeader(_) | DriverError::NotAVoter) => {
                Self::Refused(error.to_string())
            }
        }
    }
}

impl From<ProposalError> for ForwardError {
    fn from(refusal: ProposalError) -> Self {
        match refusal {
            ProposalError::NotLeader { leader_hint } => Self::NotLeader {
                leader: leader_hint,
            },
            ProposalError::LeaderNotReady => Self::LeaderNotReady,
            ProposalError::TransferInProgress { to } => Self::TransferInProgress { to },
            ProposalError::MembershipChangeInProgress => Self::MembershipChangeInProgress,
            ProposalError::Membership(error) => Self::Membership(error),
            ProposalError::LearnerNotCaughtUp {
                id,
                matched,
                commit,
            } => Self::LearnerNotCaughtUp {
                id,
                matched,
                commit,
            },
            ProposalError::NotAVoter(id) => Self::NotAVoter(id),
        }
    }
}

impl From<ForwardError> for DriverError {
    fn from(error: ForwardError) -> Self {
        let refused = Self::Refused;
        match error {
            ForwardError::NotInitialized => Self::NotInitialized,
            ForwardError::NotLeader { leader } => Self::NotLeader { leader },
            ForwardError::LeaderNotReady => refused(ProposalError::LeaderNotReady),
            ForwardError::TransferInProgress { to } => {
                refused(ProposalError::TransferInProgress { to })
            }
            ForwardError::Lost => Self::Lost,
            ForwardError::Unknown => Self::Unknown,
            ForwardError::Busy => Self::Busy,
            ForwardError::Stopped => Self::Stopped,
            ForwardError::LeaderUnreachable => Self::LeaderUnreachable,
            ForwardError::Storage(message) => Self::Storage(format!("on the leader: {message}")),
            ForwardError::MembershipChangeInProgress => {
                refused(ProposalError::MembershipChangeInProgress)
            }
            ForwardError::Membership(error) => refused(ProposalError::Membership(error)),
            ForwardError::LearnerNotCaughtUp {
                id,
                matched,
                commit,
            } => refused(ProposalError::LearnerNotCaughtUp {
                id,
                matched,
                commit,
            }),
            ForwardError::NotAVoter(id) => refused(ProposalError::NotAVoter(id)),
            ForwardError::AlreadyInitialized => Self::AlreadyInitialized,
            ForwardError::TransferBusy => Self::TransferInProgress,
            ForwardError::NoTransferTarget => Self::NoTransferTarget,
            ForwardError::TransferTimedOut(to) => Self::TransferTimedOut(to),
            ForwardError::Refused(message) => Self::Remote(message),
            ForwardError::MemberRefused(refusal, message) => {
                Self::MemberRefused { refusal, message }
            }
            ForwardError::Removed => Self::Removed,
            ForwardError::Forbidden(message) => Self::Forbidden(message),
        }
    }
}

const MEMBERSHIP_ALREADY_MEMBER: u8 = 0;
const MEMBERSHIP_NOT_A_LEARNER: u8 = 1;
const MEMBERSHIP_NOT_A_MEMBER: u8 = 2;
const MEMBERSHIP_LAST_VOTER: u8 = 3;

impl Encode for ForwardError {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        match self {
            Self::NotLeader { leader } => {
                out.put_u8(4);
                put_opt_u64(out, leader.map(NodeId::get));
            }
            Self::Lost => out.put_u8(5),
            Self::Unknown => out.put_u8(6),
            Self::Busy => out.put_u8(7),
            Self::Stopped => out.put_u8(8),
            Self::NotInitialized => out.put_u8(9),
            Self::Refused(message) => {
                out.put_u8(10);
                put_str(out, message);
            }
            Self::LeaderNotReady => out.put_u8(11),
            Self::TransferInProgress { to } => {
                out.put_u8(12);
                out.put_u64(to.get());
            }
            Self::LeaderUnreachable => out.put_u8(13),
            Self::Storage(message) => {
                out.put_u8(14);
                put_str(out, message);
            }
            Self::MembershipChangeInProgress => out.put_u8(15),
            Self::Membership(error) => {
                out.put_u8(16);
                let (kind, id) = match error {
                    MembershipError::AlreadyMember(id) => (MEMBERSHIP_ALREADY_MEMBER, id),
                    MembershipError::NotALearner(id) => (MEMBERSHIP_NOT_A_LEARNER, id),
                    MembershipError::NotAMember(id) => (MEMBERSHIP_NOT_A_MEMBER, id),
                    MembershipError::LastVoter(id) => (MEMBERSHIP_LAST_VOTER, id),
                };
                out.put_u8(kind);
                out.put_u64(id.get());
            }
            Self::LearnerNotCaughtUp {
                id,
                matched,
                commit,
            } => {
                out.put_u8(17);
                out.put_u64(id.get());
                out.put_u64(matched.get());
                out.put_u64(commit.get());
            }
            Self::NotAVoter(id) => {
                out.put_u8(18);
                out.put_u64(id.get());
            }
            Self::AlreadyInitialized => out.put_u8(19),
            Self::TransferBusy => out.put_u8(20),
            Self::NoTransferTarget => out.put_u8(21),
            Self::TransferTimedOut(to) => {
                out.put_u8(22);
                out.put_u64(to.get());
            }
            Self::Removed => out.put_u8(24),
            Self::Forbidden(message) => {
                out.put_u8(25);
                put_str(out, message);
            }
            Self::MemberRefused(refusal, message) => {
                out.put_u8(23);
                out.put_u8(match refusal {
                    MemberRefusal::Duplicate => 0,
                    MemberRefusal::WrongNode => 1,
                    MemberRefusal::ForeignCluster => 2,
                    MemberRefusal::Removed => 3,
                    MemberRefusal::Unreachable => 4,
                });
                put_str(out, message);
            }
        }
    }
}

impl ForwardError {
    /// Reads an error whose tag (4 or more) was already read.
    fn decode_after_tag<B: Buf>(tag: u8, input: &mut B) -> Result<Self, DecodeError> {
        let node =
            |input: &mut B| -> Result<NodeId, DecodeError> { Ok(NodeId(input.try_get_u64()?)) };
        Ok(match tag {
            4 => Self::NotLeader {
                leader: get_opt_u64(input)?.map(NodeId),
            },
            5 => Self::Lost,
            6 => Self::Unknown,
            7 => Self::Busy,
            8 => Self::Stopped,
            9 => Self::NotInitialized,
            10 => Self::Refused(get_string(input)?),
            11 => Self::LeaderNotReady,
            12 => Self::TransferInProgress { to: node(input)? },
            13 => Self::LeaderUnreachable,
            14 => Self::Storage(get_string(input)?),
            15 => Self::MembershipChangeInProgress,
            16 => {
                let kind = input.try_get_u8()?;
                let id = node(input)?;
                Self::Membership(match kind {
                    MEMBERSHIP_ALREADY_MEMBER => MembershipError::AlreadyMember(id),
                    MEMBERSHIP_NOT_A_LEARNER => MembershipError::NotALearner(id),
                    MEMBERSHIP_NOT_A_MEMBER => MembershipError::NotAMember(id),
                    MEMBERSHIP_LAST_VOTER => MembershipError::LastVoter(id),
                    tag => {
                        return Err(DecodeError::UnknownTag {
                            what: "membership error",
                            tag,
                        });
                    }
                })
            }
            17 => Self::LearnerNotCaughtUp {
                id: node(input)?,
                matched: LogIndex(input.try_get_u64()?),
                commit: LogIndex(input.try_get_u64()?),
            },
            18 => Self::NotAVoter(node(input)?),
            19 => Self::AlreadyInitialized,
            20 => Self::TransferBusy,
            21 => Self::NoTransferTarget,
            22 => Self::TransferTimedOut(node(input)?),
            23 => {
                let refusal = match input.try_get_u8()? {
                    0 => MemberRefusal::Duplicate,
                    1 => MemberRefusal::WrongNode,
                    2 => MemberRefusal::ForeignCluster,
                    3 => MemberRefusal::Removed,
                    4 => MemberRefusal::Unreachable,
                    tag => {
                        return Err(DecodeError::UnknownTag {
                            what: "member refusal",
                            tag,
                        });
                    }
                };
                Self::MemberRefused(refusal, get_string(input)?)
            }
            24 => Self::Removed,
            25 => Self::Forbidden(get_string(input)?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "forwarded request's answer",
                    tag,
                });
            }
        })
    }
}

/// Tags of auth outcomes in a [`ForwardReply`], above every error's.
const OUTCOME_AUTH_CHANGED: u8 = 64;
const OUTCOME_AUTH_REFUSED: u8 = 65;

impl Encode for ForwardReply {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        match &self.0 {
            Ok(Outcome::Written { revision }) => {
                out.put_u8(0);
                out.put_u64(revision.get());
            }
            Ok(Outcome::PreconditionFailed {
                current_mod_revision,
            }) => {
                out.put_u8(1);
                put_opt_u64(out, current_mod_revision.map(Revision::get));
            }
            Ok(Outcome::NotFound) => out.put_u8(2),
            Ok(Outcome::Invalid(error)) => {
                out.put_u8(3);
                put_str(out, &error.to_string());
            }
            Ok(Outcome::AuthChanged) => out.put_u8(OUTCOME_AUTH_CHANGED),
            Ok(Outcome::AuthRefused(reason)) => {
                out.put_u8(OUTCOME_AUTH_REFUSED);
                put_str(out, reason);
            }
            Ok(other @ (Outcome::MemberRecorded | Outcome::MembershipChanged)) => {
                // Not answers to a client write; reported as a refusal.
                ForwardError::Refused(format!("unexpected outcome {other:?}")).encode_to(out);
            }
            Err(error) => error.encode_to(out),
        }
    }
}

impl Decode for ForwardReply {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        Ok(Self(match input.try_get_u8()? {
            0 => Ok(Outcome::Written {
                revision: Revision(input.try_get_u64()?),
            }),
            1 => Ok(Outcome::PreconditionFailed {
                current_mod_revision: get_opt_u64(input)?.map(Revision),
            }),
            2 => Ok(Outcome::NotFound),
            OUTCOME_AUTH_CHANGED => Ok(Outcome::AuthChanged),
            OUTCOME_AUTH_REFUSED => Ok(Outcome::AuthRefused(get_string(input)?)),
            3 => Err(ForwardError::Refused(format!(
                "the leader could not apply the command: {}",
                get_string(input)?
            ))),
            tag => Err(ForwardError::decode_after_tag(tag, input)?),
        }))
    }
}

impl Encode for ClusterReply {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        match &self.0 {
            Ok(value) => {
                out.put_u8(0);
                out.put_u64(*value);
            }
            Err(error) => error.encode_to(out),
        }
    }
}

impl Decode for ClusterReply {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        Ok(Self(match input.try_get_u8()? {
            0 => Ok(input.try_get_u64()?),
            tag @ 4.. => Err(ForwardError::decode_after_tag(tag, input)?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "cluster answer",
                    tag,
                });
            }
        }))
    }
}

impl ClusterRequest {
    /// Whether a node may act on this request: a member id is never 0, and
    /// an added member's address passes [`MemberAddress::check`].
    pub fn check(&self) -> Result<(), String> {
        let id = match self {
            Self::AddLearner { id, address } => {
                address.check()?;
                Some(*id)
            }
            Self::Promote(id) | Self::Remove(id) => Some(*id),
            Self::TransferLeader { to } => *to,
            Self::UpdateMember {
                id,
                peer_url,
                client_url,
            } => {
                crate::kv::check_member_url(peer_url)?;
                crate::kv::check_member_url(client_url)?;
                Some(*id)
            }
        };
        match id {
            Some(NodeId(0)) => Err("node id 0 is not valid".into()),
            _ => Ok(()),
        }
    }
}

const REQUEST_ADD_LEARNER: u8 = 0;
const REQUEST_PROMOTE: u8 = 1;
const REQUEST_REMOVE: u8 = 2;
const REQUEST_TRANSFER: u8 = 3;
const REQUEST_UPDATE_MEMBER: u8 = 4;

impl Encode for ClusterRequest {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        match self {
            Self::AddLearner { id, address } => {
                out.put_u8(REQUEST_ADD_LEARNER);
                out.put_u64(id.get());
                address.encode_to(out);
            }
            Self::Promote(id) => {
                out.put_u8(REQUEST_PROMOTE);
                out.put_u64(id.get());
            }
            Self::Remove(id) => {
                out.put_u8(REQUEST_REMOVE);
                out.put_u64(id.get());
            }
            Self::TransferLeader { to } => {
                out.put_u8(REQUEST_TRANSFER);
                put_opt_u64(out, to.map(NodeId::get));
            }
            Self::UpdateMember {
                id,
                peer_url,
                client_url,
            } => {
                out.put_u8(REQUEST_UPDATE_MEMBER);
                out.put_u64(id.get());
                put_str(out, peer_url);
                put_str(out, client_url);
            }
        }
    }
}

impl Decode for ClusterRequest {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        let node =
            |input: &mut B| -> Result<NodeId, DecodeError> { Ok(NodeId(input.try_get_u64()?)) };
        Ok(match input.try_get_u8()? {
            REQUEST_ADD_LEARNER => Self::AddLearner {
                id: node(input)?,
                address: MemberAddress::decode_from(input)?,
            },
            REQUEST_PROMOTE => Self::Promote(node(input)?),
            REQUEST_REMOVE => Self::Remove(node(input)?),
            REQUEST_TRANSFER => Self::TransferLeader {
                to: get_opt_u64(input)?.map(NodeId),
            },
            REQUEST_UPDATE_MEMBER => Self::UpdateMember {
                id: node(input)?,
                peer_url: get_string(input)?,
                client_url: get_string(input)?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "cluster request",
                    tag,
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiError;
    use crate::codec::testing::assert_every_truncation_fails;
    use crate::codec::{decode, encode};
    use raftcfg_raft::MembershipError;

    /// Every error the driver has, one of each variant.
    fn every_driver_error() -> Vec<DriverError> {
        vec![
            DriverError::NotInitialized,
            DriverError::NotLeader {
                leader: Some(NodeId(4)),
            },
            DriverError::NotLeader { leader: None },
            DriverError::Lost,
            DriverError::Unknown,
            DriverError::Refused(ProposalError::NotLeader {
                leader_hint: Some(NodeId(2)),
            }),
            DriverError::Refused(ProposalError::MembershipChangeInProgress),
            DriverError::Refused(ProposalError::LeaderNotReady),
            DriverError::Refused(ProposalError::TransferInProgress { to: NodeId(3) }),
            DriverError::Refused(ProposalError::Membership(MembershipError::NotAMember(
                NodeId(9),
            ))),
            DriverError::Refused(ProposalError::Membership(MembershipError::AlreadyMember(
                NodeId(8),
            ))),
            DriverError::Refused(ProposalError::Membership(MembershipError::NotALearner(
                NodeId(7),
            ))),
            DriverError::Refused(ProposalError::Membership(MembershipError::LastVoter(
                NodeId(6),
            ))),
            DriverError::Refused(ProposalError::LearnerNotCaughtUp {
                id: NodeId(5),
                matched: LogIndex(3),
                commit: LogIndex(252),
            }),
            DriverError::Refused(ProposalError::NotAVoter(NodeId(5))),
            DriverError::Busy,
            DriverError::Stopped,
            DriverError::AlreadyInitialized,
            DriverError::TransferInProgress,
            DriverError::NoTransferTarget,
            DriverError::TransferTimedOut(NodeId(2)),
            DriverError::LeaderUnreachable,
            DriverError::Remote("no".into()),
            DriverError::Storage("disk full".into()),
            DriverError::MemberRefused {
                refusal: MemberRefusal::Duplicate,
                message: "name 'a' is node 2's".into(),
            },
            DriverError::Removed,
            DriverError::MemberRefused {
                refusal: MemberRefusal::Unreachable,
                message: "nobody answers".into(),
            },
        ]
    }

    /// The leader's error as the follower's client sees it, through a
    /// forwarded write's answer and through a cluster operation's.
    fn through_a_follower(error: DriverError) -> [DriverError; 2] {
        let reply = ForwardReply(Err(ForwardError::from(error.clone())));
        let relayed = decode::<ForwardReply>(&encode(&reply)[..]).unwrap().0;
        let cluster = ClusterReply(Err(ForwardError::from(error)));
        let cluster = decode::<ClusterReply>(&encode(&cluster)[..]).unwrap().0;
        [relayed.unwrap_err(), cluster.unwrap_err()].map(DriverError::from)
    }

    #[test]
    fn every_refusal_of_the_leader_reaches_a_followers_client_with_its_status_code_and_message() {
        for error in every_driver_error() {
            let direct = ApiError::from(error.clone());
            for relayed in through_a_follower(error.clone()) {
                let relayed = ApiError::from(relayed);
                assert_eq!(
                    (relayed.status, relayed.code),
                    (direct.status, direct.code),
                    "{error:?} through a follower"
                );
                let original = match &error {
                    DriverError::Remote(message) | DriverError::Storage(message) => message.clone(),
                    other => other.to_string(),
                };
                // A refusal naming another leader is retried there: the
                // follower says who leads in its own words.
                assert!(
                    relayed.message.contains(&original)
                        || direct.message == relayed.message
                        || direct.code == "no_leader",
                    "{} lacks {original}",
                    relayed.message
                );
            }
        }
    }

    #[test]
    fn every_cluster_request_and_answer_round_trips() {
        let address = MemberAddress {
            name: "n4".into(),
            peer_url: "http://127.0.0.1:7380".into(),
            client_url: "http://127.0.0.1:7379".into(),
        };
        let requests = [
            ClusterRequest::AddLearner {
                id: NodeId(u64::MAX),
                address,
            },
            ClusterRequest::Promote(NodeId(4)),
            ClusterRequest::Remove(NodeId(5)),
            ClusterRequest::TransferLeader { to: None },
            ClusterRequest::UpdateMember {
                id: NodeId(6),
                peer_url: "http://10.0.0.6:7380".into(),
                client_url: "http://10.0.0.6:7379".into(),
            },
            ClusterRequest::TransferLeader {
                to: Some(NodeId(2)),
            },
        ];
        for request in requests {
            let bytes = encode(&request);
            assert_eq!(decode::<ClusterRequest>(&bytes[..]), Ok(request));
            assert_every_truncation_fails::<ClusterRequest>(&bytes);
        }
        let answers = std::iter::once(Ok(17)).chain(
            every_driver_error()
                .into_iter()
                .map(|e| Err(ForwardError::from(e))),
        );
        for answer in answers {
            let bytes = encode(&ClusterReply(answer.clone()));
            assert_eq!(decode::<ClusterReply>(&bytes[..]).unwrap().0, answer);
            assert_every_truncation_fails::<ClusterReply>(&bytes);
        }
    }

    /// The wire bytes of format 1 (tags 0 to 14 predate the cluster route).
    #[test]
    fn forwarded_write_answers_keep_their_wire_bytes() {
        let written = ForwardReply(Ok(Outcome::Written {
            revision: Revision(7),
        }));
        assert_eq!(encode(&written), [1, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
        let not_leader = ForwardReply(Err(ForwardError::NotLeader {
            leader: Some(NodeId(4)),
        }));
        assert_eq!(encode(&not_leader), [1, 4, 1, 0, 0, 0, 0, 0, 0, 0, 4]);
        let storage = ForwardReply(Err(ForwardError::Storage("x".into())));
        assert_eq!(encode(&storage), [1, 14, 0, 0, 0, 1, b'x']);
    }

    #[test]
    fn arbitrary_cluster_requests_and_answers_never_panic() {
        crate::codec::testing::assert_garbage_never_panics::<ClusterRequest>(11);
        crate::codec::testing::assert_garbage_never_panics::<ClusterReply>(12);
    }

    #[test]
    fn a_relayed_request_for_node_0_or_a_bad_address_is_refused() {
        assert!(ClusterRequest::Remove(NodeId(0)).check().is_err());
        assert!(ClusterRequest::TransferLeader { to: None }.check().is_ok());
        let bad = ClusterRequest::AddLearner {
            id: NodeId(3),
            address: MemberAddress {
                name: "n 3".into(),
                peer_url: "http://n3:7380".into(),
                client_url: "http://n3:7379".into(),
            },
        };
        assert!(bad.check().unwrap_err().contains("name"));
    }

    #[test]
    fn every_answer_round_trips() {
        let answers = [
            Ok(Outcome::Written {
                revision: Revision(7),
            }),
            Ok(Outcome::PreconditionFailed {
                current_mod_revision: Some(Revision(3)),
            }),
            Ok(Outcome::PreconditionFailed {
                current_mod_revision: None,
            }),
            Ok(Outcome::NotFound),
            Err(ForwardError::NotInitialized),
            Err(ForwardError::NotLeader {
                leader: Some(NodeId(4)),
            }),
            Err(ForwardError::NotLeader { leader: None }),
            Err(ForwardError::LeaderNotReady),
            Err(ForwardError::TransferInProgress { to: NodeId(3) }),
            Err(ForwardError::Lost),
            Err(ForwardError::Unknown),
            Err(ForwardError::Busy),
            Err(ForwardError::Stopped),
            Err(ForwardError::LeaderUnreachable),
            Err(ForwardError::Storage("disk full".into())),
            Err(ForwardError::Refused("no".into())),
        ];
        for answer in answers {
            let bytes = encode(&ForwardReply(answer.clone()));
            assert_eq!(decode::<ForwardReply>(&bytes[..]).unwrap().0, answer);
            assert_every_truncation_fails::<ForwardReply>(&bytes);
        }
    }
}
