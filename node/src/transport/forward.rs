//! The answer to a write forwarded from a follower to the leader
//! (`POST /raft/v1/propose` on the peer port; the request body is the
//! command's own encoding).
//!
//! ```text
//! tag 0 written u64 revision      | 1 precondition failed opt_u64 mod_revision
//!     2 not found                 | 3 invalid  string
//!     4 not leader opt_u64 leader | 5 lost | 6 unknown | 7 busy | 8 stopped
//!     9 not initialized           | 10 refused string
//!    11 leader not ready          | 12 transferring u64 to
//!    13 leader unreachable        | 14 storage failed string
//! ```
//!
//! A refusal travels as a [`ForwardError`], a type of its own: the
//! conversions between it and the driver's [`DriverError`] name every
//! variant, so a new driver error does not compile until it has a wire
//! form, and a retryable refusal of the leader (503) stays retryable
//! through a follower instead of turning into an opaque `leader_error`.

use bytes::{Buf, BufMut};
use raftcfg_raft::{NodeId, ProposalError};

use crate::codec::{Decode, DecodeError, Encode, get_opt_u64, get_string, put_opt_u64, put_str};
use crate::driver::DriverError;
use crate::kv::{Outcome, Revision};

/// What the leader answered to a forwarded write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardReply(pub Result<Outcome, ForwardError>);

/// Why the leader did not carry out a forwarded write, as it travels to the
/// follower that forwarded it.
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
    /// Any other refusal, by its message: not retryable.
    Refused(String),
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
            // Answers to cluster operations, never to a write.
            error @ (DriverError::AlreadyInitialized
            | DriverError::TransferInProgress
            | DriverError::NoTransferTarget
            | DriverError::TransferTimedOut(_)) => Self::Refused(error.to_string()),
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
            // Refusals of membership changes, never of a write.
            refusal @ (ProposalError::MembershipChangeInProgress
            | ProposalError::Membership(_)
            | ProposalError::LearnerNotCaughtUp { .. }
            | ProposalError::NotAVoter(_)) => Self::Refused(refusal.to_string()),
        }
    }
}

impl From<ForwardError> for DriverError {
    fn from(error: ForwardError) -> Self {
        match error {
            ForwardError::NotInitialized => Self::NotInitialized,
            ForwardError::NotLeader { leader } => Self::NotLeader { leader },
            ForwardError::LeaderNotReady => Self::Refused(ProposalError::LeaderNotReady),
            ForwardError::TransferInProgress { to } => {
                Self::Refused(ProposalError::TransferInProgress { to })
            }
            ForwardError::Lost => Self::Lost,
            ForwardError::Unknown => Self::Unknown,
            ForwardError::Busy => Self::Busy,
            ForwardError::Stopped => Self::Stopped,
            ForwardError::LeaderUnreachable => Self::LeaderUnreachable,
            ForwardError::Storage(message) => {
                Self::Remote(format!("the leader's storage failed: {message}"))
            }
            ForwardError::Refused(message) => Self::Remote(message),
        }
    }
}

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
            Ok(other @ (Outcome::MemberRecorded | Outcome::MembershipChanged)) => {
                // Not answers to a client write; reported as a refusal.
                out.put_u8(10);
                put_str(out, &format!("unexpected outcome {other:?}"));
            }
            Err(ForwardError::NotLeader { leader }) => {
                out.put_u8(4);
                put_opt_u64(out, leader.map(NodeId::get));
            }
            Err(ForwardError::Lost) => out.put_u8(5),
            Err(ForwardError::Unknown) => out.put_u8(6),
            Err(ForwardError::Busy) => out.put_u8(7),
            Err(ForwardError::Stopped) => out.put_u8(8),
            Err(ForwardError::NotInitialized) => out.put_u8(9),
            Err(ForwardError::Refused(message)) => {
                out.put_u8(10);
                put_str(out, message);
            }
            Err(ForwardError::LeaderNotReady) => out.put_u8(11),
            Err(ForwardError::TransferInProgress { to }) => {
                out.put_u8(12);
                out.put_u64(to.get());
            }
            Err(ForwardError::LeaderUnreachable) => out.put_u8(13),
            Err(ForwardError::Storage(message)) => {
                out.put_u8(14);
                put_str(out, message);
            }
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
            3 => Err(ForwardError::Refused(format!(
                "the leader could not apply the command: {}",
                get_string(input)?
            ))),
            4 => Err(ForwardError::NotLeader {
                leader: get_opt_u64(input)?.map(NodeId),
            }),
            5 => Err(ForwardError::Lost),
            6 => Err(ForwardError::Unknown),
            7 => Err(ForwardError::Busy),
            8 => Err(ForwardError::Stopped),
            9 => Err(ForwardError::NotInitialized),
            10 => Err(ForwardError::Refused(get_string(input)?)),
            11 => Err(ForwardError::LeaderNotReady),
            12 => Err(ForwardError::TransferInProgress {
                to: NodeId(input.try_get_u64()?),
            }),
            13 => Err(ForwardError::LeaderUnreachable),
            14 => Err(ForwardError::Storage(get_string(input)?)),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "forward reply",
                    tag,
                });
            }
        }))
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
        ]
    }

    /// The leader's error as the follower's client sees it.
    fn through_a_follower(error: DriverError) -> DriverError {
        let reply = ForwardReply(Err(ForwardError::from(error)));
        let bytes = encode(&reply);
        let relayed = decode::<ForwardReply>(&bytes[..]).unwrap().0;
        DriverError::from(relayed.unwrap_err())
    }

    #[test]
    fn a_retryable_or_unknown_refusal_of_the_leader_keeps_its_status_through_a_follower() {
        for error in every_driver_error() {
            let direct = ApiError::from(error.clone());
            if !matches!(direct.status.as_u16(), 503 | 504) {
                continue;
            }
            let relayed = ApiError::from(through_a_follower(error.clone()));
            assert_eq!(
                (relayed.status, relayed.code),
                (direct.status, direct.code),
                "{error:?} through a follower"
            );
        }
    }

    #[test]
    fn any_other_refusal_reaches_the_follower_with_its_message() {
        for error in every_driver_error() {
            let direct = ApiError::from(error.clone());
            if matches!(direct.status.as_u16(), 503 | 504) || error == DriverError::NotInitialized {
                continue;
            }
            let relayed = through_a_follower(error.clone());
            let DriverError::Remote(message) = relayed else {
                panic!("{error:?} arrived as {relayed:?}");
            };
            let original = match error {
                DriverError::Remote(message) => message,
                other => other.to_string(),
            };
            assert!(message.contains(&original), "{message} lacks {original}");
        }
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
