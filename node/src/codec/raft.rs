//! Encodings of the Raft core's types: log entries, hard state, snapshot
//! metadata and membership.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut};
use raftcfg_raft::{
    ClusterId, ConfigChange, Entry, EntryPayload, HardState, LogIndex, Membership,
    MembershipChange, NodeId, SnapshotMetadata, Term,
};

use super::{
    Decode, DecodeError, Encode, get_bytes, get_len, get_opt_u64, put_bytes, put_len, put_opt_u64,
};

const PAYLOAD_NOOP: u8 = 0;
const PAYLOAD_COMMAND: u8 = 1;
const PAYLOAD_CONFIG: u8 = 2;

const CHANGE_ADD_LEARNER: u8 = 0;
const CHANGE_PROMOTE_LEARNER: u8 = 1;
const CHANGE_REMOVE: u8 = 2;

/// A set of node ids: a count, then the ids in increasing order.
fn put_node_set<B: BufMut>(out: &mut B, set: &BTreeSet<NodeId>) {
    put_len(out, set.len());
    for id in set {
        out.put_u64(id.get());
    }
}

/// Reads a set written by [`put_node_set`]; ids must be strictly
/// increasing, so every set has exactly one encoding.
fn get_node_set<B: Buf>(input: &mut B) -> Result<BTreeSet<NodeId>, DecodeError> {
    let len = get_len(input, 8)?;
    let mut set = BTreeSet::new();
    let mut previous = None;
    for _ in 0..len {
        let id = input.try_get_u64()?;
        if previous.is_some_and(|previous| id <= previous) {
            return Err(DecodeError::invalid("node ids in a set are not increasing"));
        }
        previous = Some(id);
        set.insert(NodeId(id));
    }
    Ok(set)
}

impl Encode for LogIndex {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        out.put_u64(self.get());
    }
}

impl Decode for LogIndex {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        Ok(Self(input.try_get_u64()?))
    }
}

impl Encode for Membership {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        put_node_set(out, &self.voters);
        put_node_set(out, &self.learners);
    }
}

impl Decode for Membership {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            voters: get_node_set(input)?,
            learners: get_node_set(input)?,
        })
    }
}

impl Encode for MembershipChange {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        let (tag, id) = match *self {
            MembershipChange::AddLearner(id) => (CHANGE_ADD_LEARNER, id),
            MembershipChange::PromoteLearner(id) => (CHANGE_PROMOTE_LEARNER, id),
            MembershipChange::Remove(id) => (CHANGE_REMOVE, id),
        };
        out.put_u8(tag);
        out.put_u64(id.get());
    }
}

impl Decode for MembershipChange {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        let tag = input.try_get_u8()?;
        let id = NodeId(input.try_get_u64()?);
        match tag {
            CHANGE_ADD_LEARNER => Ok(Self::AddLearner(id)),
            CHANGE_PROMOTE_LEARNER => Ok(Self::PromoteLearner(id)),
            CHANGE_REMOVE => Ok(Self::Remove(id)),
            tag => Err(DecodeError::UnknownTag {
                what: "membership change",
                tag,
            }),
        }
    }
}

impl Encode for ConfigChange {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        self.change.encode_to(out);
        self.config.encode_to(out);
        put_bytes(out, &self.context);
    }
}

impl Decode for ConfigChange {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            change: MembershipChange::decode_from(input)?,
            config: Membership::decode_from(input)?,
            context: get_bytes(input)?,
        })
    }
}

impl Encode for Entry {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        out.put_u64(self.term.get());
        out.put_u64(self.index.get());
        match &self.payload {
            EntryPayload::Noop => out.put_u8(PAYLOAD_NOOP),
            EntryPayload::Command(command) => {
                out.put_u8(PAYLOAD_COMMAND);
                put_bytes(out, command);
            }
            EntryPayload::Config(change) => {
                out.put_u8(PAYLOAD_CONFIG);
                change.encode_to(out);
            }
        }
    }
}

impl Decode for Entry {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        let term = Term(input.try_get_u64()?);
        let index = LogIndex(input.try_get_u64()?);
        let payload = match input.try_get_u8()? {
            PAYLOAD_NOOP => EntryPayload::Noop,
            PAYLOAD_COMMAND => EntryPayload::Command(get_bytes(input)?),
            PAYLOAD_CONFIG => EntryPayload::Config(ConfigChange::decode_from(input)?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "entry payload",
                    tag,
                });
            }
        };
        Ok(Self {
            term,
            index,
            payload,
        })
    }
}

impl Encode for HardState {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        out.put_u64(self.term.get());
        put_opt_u64(out, self.vote.map(NodeId::get));
        out.put_u64(self.commit.get());
        put_opt_u64(out, self.cluster_id.map(ClusterId::get));
    }
}

impl Decode for HardState {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            term: Term(input.try_get_u64()?),
            vote: get_opt_u64(input)?.map(NodeId),
            commit: LogIndex(input.try_get_u64()?),
            cluster_id: get_opt_u64(input)?.map(ClusterId),
        })
    }
}

impl Encode for SnapshotMetadata {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        out.put_u64(self.index.get());
        out.put_u64(self.term.get());
        self.membership.encode_to(out);
    }
}

impl Decode for SnapshotMetadata {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            index: LogIndex(input.try_get_u64()?),
            term: Term(input.try_get_u64()?),
            membership: Membership::decode_from(input)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::codec::testing::{assert_every_truncation_fails, assert_garbage_never_panics};
    use crate::codec::{FORMAT_VERSION, decode, encode};

    fn membership() -> Membership {
        let mut membership = Membership::with_voters([NodeId(3), NodeId(1), NodeId(u64::MAX)]);
        membership.learners.insert(NodeId(9));
        membership
    }

    fn entries() -> Vec<Entry> {
        let entry = |index, payload| Entry {
            term: Term(4),
            index: LogIndex(index),
            payload,
        };
        vec![
            entry(1, EntryPayload::Noop),
            entry(2, EntryPayload::Command(Bytes::new())),
            entry(3, EntryPayload::Command(Bytes::from_static(b"put a=1"))),
            entry(
                4,
                EntryPayload::Config(ConfigChange {
                    change: MembershipChange::AddLearner(NodeId(9)),
                    config: membership(),
                    context: Bytes::from_static(b"http://n9:7380"),
                }),
            ),
            entry(
                5,
                EntryPayload::Config(ConfigChange {
                    change: MembershipChange::PromoteLearner(NodeId(9)),
                    config: Membership::default(),
                    context: Bytes::new(),
                }),
            ),
            entry(
                6,
                EntryPayload::Config(ConfigChange {
                    change: MembershipChange::Remove(NodeId(1)),
                    config: membership(),
                    context: Bytes::new(),
                }),
            ),
        ]
    }

    fn hard_states() -> Vec<HardState> {
        vec![
            HardState::default(),
            HardState {
                term: Term(7),
                vote: Some(NodeId(3)),
                commit: LogIndex(42),
                cluster_id: Some(ClusterId(0xdead_beef)),
            },
        ]
    }

    fn snapshot_metadata() -> Vec<SnapshotMetadata> {
        vec![
            SnapshotMetadata::default(),
            SnapshotMetadata {
                index: LogIndex(100),
                term: Term(6),
                membership: membership(),
            },
        ]
    }

    #[test]
    fn entries_round_trip() {
        for entry in entries() {
            assert_eq!(decode::<Entry>(&encode(&entry)[..]), Ok(entry));
        }
    }

    #[test]
    fn hard_states_round_trip() {
        for hard_state in hard_states() {
            assert_eq!(
                decode::<HardState>(&encode(&hard_state)[..]),
                Ok(hard_state)
            );
        }
    }

    #[test]
    fn snapshot_metadata_round_trips() {
        for metadata in snapshot_metadata() {
            assert_eq!(
                decode::<SnapshotMetadata>(&encode(&metadata)[..]),
                Ok(metadata)
            );
        }
    }

    #[test]
    fn every_truncation_of_every_encoding_is_an_error() {
        for entry in entries() {
            assert_every_truncation_fails::<Entry>(&encode(&entry));
        }
        for hard_state in hard_states() {
            assert_every_truncation_fails::<HardState>(&encode(&hard_state));
        }
        for metadata in snapshot_metadata() {
            assert_every_truncation_fails::<SnapshotMetadata>(&encode(&metadata));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        assert_garbage_never_panics::<Entry>(1);
        assert_garbage_never_panics::<HardState>(2);
        assert_garbage_never_panics::<SnapshotMetadata>(3);
    }

    #[test]
    fn an_unknown_payload_tag_is_refused() {
        let mut bytes = vec![FORMAT_VERSION];
        bytes.put_u64(1);
        bytes.put_u64(1);
        bytes.put_u8(9);
        assert_eq!(
            decode::<Entry>(&bytes[..]),
            Err(DecodeError::UnknownTag {
                what: "entry payload",
                tag: 9
            })
        );
    }

    #[test]
    fn a_set_listing_a_member_twice_is_refused() {
        let mut bytes = vec![FORMAT_VERSION];
        bytes.put_u32(2);
        bytes.put_u64(5);
        bytes.put_u64(5);
        bytes.put_u32(0);
        assert!(matches!(
            decode::<Membership>(&bytes[..]),
            Err(DecodeError::Invalid(_))
        ));
    }
}
