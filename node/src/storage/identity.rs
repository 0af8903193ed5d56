//! [`Identity`]: who a data directory belongs to, and [`ExpectedIdentity`]:
//! what the caller expects to find when it opens one; and the identity
//! record's encoding.

use bytes::{Buf, BufMut};
use raftcfg_raft::{ClusterId, NodeId};

use crate::codec::{Decode, DecodeError, Encode, get_opt_u64, get_string, put_opt_u64, put_str};

/// Who this node is: fixed when its data directory is created.
///
/// The node id and the name are stored in the identity record. The cluster
/// id has one source of truth, the Raft hard state (the core adopts it from
/// the first leader that contacts it, or `bootstrap` sets it); the record on
/// disk never carries one, and [`RocksLogStore::identity`] fills it in from
/// the hard state.
///
/// [`RocksLogStore::identity`]: super::RocksLogStore::identity
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The node's id: random when the directory was created, never reused.
    pub node_id: NodeId,
    /// The cluster this node belongs to, once it is bootstrapped or has
    /// adopted one.
    pub cluster_id: Option<ClusterId>,
    /// The node's human-readable name (a pod name, `n1`).
    pub name: String,
}

/// What the caller expects to find in a data directory it opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedIdentity {
    /// The name the node runs under. A directory created under another name
    /// belongs to another node and is refused.
    pub name: String,
    /// The id to record if the directory is new (the caller draws it at
    /// random); ignored when the directory already has an identity.
    pub new_node_id: NodeId,
    /// If set, the node id the directory must hold.
    pub node_id: Option<NodeId>,
    /// If set, the cluster the directory must belong to. A directory that
    /// belongs to no cluster yet is accepted.
    pub cluster_id: Option<ClusterId>,
}

impl ExpectedIdentity {
    /// Expects a node named `name`; a new directory gets `new_node_id`.
    pub fn new(name: impl Into<String>, new_node_id: NodeId) -> Self {
        Self {
            name: name.into(),
            new_node_id,
            node_id: None,
            cluster_id: None,
        }
    }

    /// Also requires the directory to hold node `node_id`.
    pub fn with_node_id(mut self, node_id: NodeId) -> Self {
        self.node_id = Some(node_id);
        self
    }

    /// Also requires the directory to belong to cluster `cluster_id` (or to none yet).
    pub fn with_cluster_id(mut self, cluster_id: ClusterId) -> Self {
        self.cluster_id = Some(cluster_id);
        self
    }
}

// The identity record: u64 node_id | opt_u64 cluster_id (always none on
// disk, see above) | name.
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

    /// The stored bytes of format 1, spelled out.
    #[test]
    fn the_identity_record_keeps_its_stored_bytes() {
        let identity = Identity {
            node_id: NodeId(2),
            cluster_id: None,
            name: "n".into(),
        };
        let bytes = [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1, b'n'];
        assert_eq!(encode(&identity), bytes);
        assert_eq!(decode::<Identity>(&bytes[..]), Ok(identity));
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
