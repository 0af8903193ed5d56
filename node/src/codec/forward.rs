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
//! ```
//!
//! Tags 11 and 12 are the leader's retryable refusals: the follower answers
//! them as the leader would (503), not as an opaque refusal.

use bytes::{Buf, BufMut};
use raftcfg_raft::{NodeId, ProposalError};

use super::{Decode, DecodeError, Encode, get_opt_u64, get_string, put_opt_u64, put_str};
use crate::driver::DriverError;
use crate::kv::{Outcome, Revision};

/// What the leader answered to a forwarded write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardReply(pub Result<Outcome, DriverError>);

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
            Err(DriverError::NotLeader { leader }) => {
                out.put_u8(4);
                put_opt_u64(out, leader.map(NodeId::get));
            }
            Err(DriverError::Lost) => out.put_u8(5),
            Err(DriverError::Unknown) => out.put_u8(6),
            Err(DriverError::Busy) => out.put_u8(7),
            Err(DriverError::Stopped) => out.put_u8(8),
            Err(DriverError::NotInitialized) => out.put_u8(9),
            Err(DriverError::Refused(ProposalError::NotLeader { leader_hint })) => {
                out.put_u8(4);
                put_opt_u64(out, leader_hint.map(NodeId::get));
            }
            Err(DriverError::Refused(ProposalError::LeaderNotReady)) => out.put_u8(11),
            Err(DriverError::Refused(ProposalError::TransferInProgress { to })) => {
                out.put_u8(12);
                out.put_u64(to.get());
            }
            Err(DriverError::Remote(message)) => {
                out.put_u8(10);
                put_str(out, message);
            }
            Err(other) => {
                out.put_u8(10);
                put_str(out, &other.to_string());
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
            3 => Err(DriverError::Remote(format!(
                "the leader could not apply the command: {}",
                get_string(input)?
            ))),
            4 => Err(DriverError::NotLeader {
                leader: get_opt_u64(input)?.map(NodeId),
            }),
            5 => Err(DriverError::Lost),
            6 => Err(DriverError::Unknown),
            7 => Err(DriverError::Busy),
            8 => Err(DriverError::Stopped),
            9 => Err(DriverError::NotInitialized),
            10 => Err(DriverError::Remote(get_string(input)?)),
            11 => Err(DriverError::Refused(ProposalError::LeaderNotReady)),
            12 => Err(DriverError::Refused(ProposalError::TransferInProgress {
                to: NodeId(input.try_get_u64()?),
            })),
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
    use super::super::testing::assert_every_truncation_fails;
    use super::super::{decode, encode};
    use super::*;

    #[test]
    fn a_leader_refusing_during_a_transfer_is_retryable_through_a_follower() {
        let refusal = Err(DriverError::Refused(ProposalError::TransferInProgress {
            to: NodeId(2),
        }));
        let bytes = encode(&ForwardReply(refusal.clone()));
        let relayed = decode::<ForwardReply>(&bytes[..]).unwrap().0;
        assert_eq!(relayed, refusal);
        let error = crate::api::ApiError::from(relayed.unwrap_err());
        assert_eq!(error.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
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
            Err(DriverError::NotLeader {
                leader: Some(NodeId(4)),
            }),
            Err(DriverError::NotLeader { leader: None }),
            Err(DriverError::Lost),
            Err(DriverError::Unknown),
            Err(DriverError::Busy),
            Err(DriverError::Stopped),
            Err(DriverError::NotInitialized),
            Err(DriverError::Remote("no".into())),
            Err(DriverError::Refused(ProposalError::LeaderNotReady)),
            Err(DriverError::Refused(ProposalError::TransferInProgress {
                to: NodeId(3),
            })),
        ];
        for answer in answers {
            let bytes = encode(&ForwardReply(answer.clone()));
            assert_eq!(decode::<ForwardReply>(&bytes[..]).unwrap().0, answer);
            assert_every_truncation_fails::<ForwardReply>(&bytes);
        }
    }
}
