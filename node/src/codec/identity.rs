//! Encoding of the node identity record.

use bytes::{Buf, BufMut};
use raftcfg_raft::{ClusterId, NodeId};

use super::{Decode, DecodeError, Encode, get_opt_u64, get_string, put_opt_u64, put_str};
use crate::storage::Identity;

impl Encode for Identity {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        out.put_u64(self.node_id.get());
        put_opt_u64(out, self.cluster_id.map(ClusterId::get));
        put_str(out, &self.name);
    }
}

impl Decode for Identity {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            node_id: NodeId(input.try_get_u64()?),
            cluster_id: get_opt_u64(input)?.map(ClusterId),
            name: get_string(input)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testing::{assert_every_truncation_fails, assert_garbage_never_panics};
    use crate::codec::{decode, encode};

    fn identities() -> Vec<Identity> {
        vec![
            Identity {
                node_id: NodeId(0x1234_5678_9abc_def0),
                cluster_id: None,
                name: "raftcfg-0".into(),
            },
            Identity {
                node_id: NodeId(1),
                cluster_id: Some(ClusterId(u64::MAX)),
                name: String::new(),
            },
        ]
    }

    #[test]
    fn identities_round_trip() {
        for identity in identities() {
            assert_eq!(decode::<Identity>(&encode(&identity)[..]), Ok(identity));
        }
    }

    #[test]
    fn every_truncation_of_an_identity_is_an_error() {
        for identity in identities() {
            assert_every_truncation_fails::<Identity>(&encode(&identity));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        assert_garbage_never_panics::<Identity>(4);
    }
}
