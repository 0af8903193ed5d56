//! Encoding of peer messages (`raftcfg_raft::Message`), for the peer
//! transport. Each message names its cluster, sender and recipient; the core
//! checks them, this module only carries them.

use bytes::{Buf, BufMut};
use raftcfg_raft::{
    ClusterId, Entry, LogIndex, Message, MessageBody, NodeId, ReadContext, Snapshot,
    SnapshotMetadata, Term,
};

use super::{
    Decode, DecodeError, Encode, get_bytes, get_len, get_opt_u64, put_bytes, put_len, put_opt_u64,
};

const REQUEST_VOTE: u8 = 0;
const REQUEST_VOTE_RESPONSE: u8 = 1;
const APPEND_ENTRIES: u8 = 2;
const APPEND_ENTRIES_RESPONSE: u8 = 3;
const HEARTBEAT: u8 = 4;
const HEARTBEAT_RESPONSE: u8 = 5;
const INSTALL_SNAPSHOT: u8 = 6;
// 7 was InstallSnapshotResponse, when snapshots went in chunks.
const TIMEOUT_NOW: u8 = 8;
const READ_INDEX_REQUEST: u8 = 9;
const READ_INDEX_RESPONSE: u8 = 10;

/// The fewest bytes an encoded entry takes (term, index, payload tag).
const MIN_ENTRY_BYTES: usize = 17;

fn put_bool<B: BufMut>(out: &mut B, value: bool) {
    out.put_u8(u8::from(value));
}

fn get_bool<B: Buf>(input: &mut B) -> Result<bool, DecodeError> {
    match input.try_get_u8()? {
        0 => Ok(false),
        1 => Ok(true),
        tag => Err(DecodeError::UnknownTag { what: "bool", tag }),
    }
}

impl Encode for Message {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        out.put_u64(self.cluster_id.get());
        out.put_u64(self.from.get());
        out.put_u64(self.to.get());
        out.put_u64(self.term.get());
        match &self.body {
            MessageBody::RequestVote {
                pre_vote,
                last_log_index,
                last_log_term,
                leadership_transfer,
            } => {
                out.put_u8(REQUEST_VOTE);
                put_bool(out, *pre_vote);
                out.put_u64(last_log_index.get());
                out.put_u64(last_log_term.get());
                put_bool(out, *leadership_transfer);
            }
            MessageBody::RequestVoteResponse { pre_vote, granted } => {
                out.put_u8(REQUEST_VOTE_RESPONSE);
                put_bool(out, *pre_vote);
                put_bool(out, *granted);
            }
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => {
                out.put_u8(APPEND_ENTRIES);
                out.put_u64(prev_log_index.get());
                out.put_u64(prev_log_term.get());
                put_len(out, entries.len());
                for entry in entries {
                    entry.encode_to(out);
                }
                out.put_u64(leader_commit.get());
            }
            MessageBody::AppendEntriesResponse {
                success,
                match_index,
                hint_index,
                hint_term,
            } => {
                out.put_u8(APPEND_ENTRIES_RESPONSE);
                put_bool(out, *success);
                out.put_u64(match_index.get());
                out.put_u64(hint_index.get());
                out.put_u64(hint_term.get());
            }
            MessageBody::Heartbeat { commit, read_round } => {
                out.put_u8(HEARTBEAT);
                out.put_u64(commit.get());
                out.put_u64(*read_round);
            }
            MessageBody::HeartbeatResponse { read_round } => {
                out.put_u8(HEARTBEAT_RESPONSE);
                out.put_u64(*read_round);
            }
            MessageBody::InstallSnapshot { snapshot } => {
                out.put_u8(INSTALL_SNAPSHOT);
                snapshot.metadata.encode_to(out);
                put_bytes(out, &snapshot.data);
            }
            MessageBody::TimeoutNow => out.put_u8(TIMEOUT_NOW),
            MessageBody::ReadIndexRequest { context } => {
                out.put_u8(READ_INDEX_REQUEST);
                out.put_u64(context.0);
            }
            MessageBody::ReadIndexResponse { context, index } => {
                out.put_u8(READ_INDEX_RESPONSE);
                out.put_u64(context.0);
                put_opt_u64(out, index.map(LogIndex::get));
            }
        }
    }
}

impl Decode for Message {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        let cluster_id = ClusterId(input.try_get_u64()?);
        let from = NodeId(input.try_get_u64()?);
        let to = NodeId(input.try_get_u64()?);
        let term = Term(input.try_get_u64()?);
        let body = match input.try_get_u8()? {
            REQUEST_VOTE => MessageBody::RequestVote {
                pre_vote: get_bool(input)?,
                last_log_index: LogIndex(input.try_get_u64()?),
                last_log_term: Term(input.try_get_u64()?),
                leadership_transfer: get_bool(input)?,
            },
            REQUEST_VOTE_RESPONSE => MessageBody::RequestVoteResponse {
                pre_vote: get_bool(input)?,
                granted: get_bool(input)?,
            },
            APPEND_ENTRIES => {
                let prev_log_index = LogIndex(input.try_get_u64()?);
                let prev_log_term = Term(input.try_get_u64()?);
                let count = get_len(input, MIN_ENTRY_BYTES)?;
                let entries = (0..count)
                    .map(|_| Entry::decode_from(input))
                    .collect::<Result<Vec<_>, _>>()?;
                MessageBody::AppendEntries {
                    prev_log_index,
                    prev_log_term,
                    entries,
                    leader_commit: LogIndex(input.try_get_u64()?),
                }
            }
            APPEND_ENTRIES_RESPONSE => MessageBody::AppendEntriesResponse {
                success: get_bool(input)?,
                match_index: LogIndex(input.try_get_u64()?),
                hint_index: LogIndex(input.try_get_u64()?),
                hint_term: Term(input.try_get_u64()?),
            },
            HEARTBEAT => MessageBody::Heartbeat {
                commit: LogIndex(input.try_get_u64()?),
                read_round: input.try_get_u64()?,
            },
            HEARTBEAT_RESPONSE => MessageBody::HeartbeatResponse {
                read_round: input.try_get_u64()?,
            },
            INSTALL_SNAPSHOT => MessageBody::InstallSnapshot {
                snapshot: Snapshot {
                    metadata: SnapshotMetadata::decode_from(input)?,
                    data: get_bytes(input)?,
                },
            },
            TIMEOUT_NOW => MessageBody::TimeoutNow,
            READ_INDEX_REQUEST => MessageBody::ReadIndexRequest {
                context: ReadContext(input.try_get_u64()?),
            },
            READ_INDEX_RESPONSE => MessageBody::ReadIndexResponse {
                context: ReadContext(input.try_get_u64()?),
                index: get_opt_u64(input)?.map(LogIndex),
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "message",
                    tag,
                });
            }
        };
        Ok(Self {
            cluster_id,
            from,
            to,
            term,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use raftcfg_raft::{ConfigChange, EntryPayload, Membership, MembershipChange};

    use super::super::testing::{assert_every_truncation_fails, assert_garbage_never_panics};
    use super::super::{FORMAT_VERSION, decode, encode};
    use super::*;

    fn message(body: MessageBody) -> Message {
        Message {
            cluster_id: ClusterId(7),
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body,
        }
    }

    /// One message of every kind, with non-trivial fields.
    fn every_kind() -> Vec<Message> {
        let entries = vec![
            Entry {
                term: Term(3),
                index: LogIndex(5),
                payload: EntryPayload::Noop,
            },
            Entry {
                term: Term(3),
                index: LogIndex(6),
                payload: EntryPayload::Command(Bytes::from_static(b"put a=1")),
            },
            Entry {
                term: Term(3),
                index: LogIndex(7),
                payload: EntryPayload::Config(ConfigChange {
                    change: MembershipChange::AddLearner(NodeId(4)),
                    config: Membership::with_voters([NodeId(1), NodeId(2)]),
                    context: Bytes::from_static(b"http://n4:7380"),
                }),
            },
        ];
        [
            MessageBody::RequestVote {
                pre_vote: true,
                last_log_index: LogIndex(9),
                last_log_term: Term(2),
                leadership_transfer: true,
            },
            MessageBody::RequestVoteResponse {
                pre_vote: false,
                granted: true,
            },
            MessageBody::AppendEntries {
                prev_log_index: LogIndex(4),
                prev_log_term: Term(2),
                entries,
                leader_commit: LogIndex(5),
            },
            MessageBody::AppendEntriesResponse {
                success: false,
                match_index: LogIndex(4),
                hint_index: LogIndex(3),
                hint_term: Term(1),
            },
            MessageBody::Heartbeat {
                commit: LogIndex(5),
                read_round: 11,
            },
            MessageBody::HeartbeatResponse { read_round: 11 },
            MessageBody::InstallSnapshot {
                snapshot: Snapshot {
                    metadata: SnapshotMetadata {
                        index: LogIndex(40),
                        term: Term(2),
                        membership: Membership::with_voters([NodeId(1)]),
                    },
                    data: Bytes::from_static(b"a reference to the state"),
                },
            },
            MessageBody::TimeoutNow,
            MessageBody::ReadIndexRequest {
                context: ReadContext(99),
            },
            MessageBody::ReadIndexResponse {
                context: ReadContext(99),
                index: Some(LogIndex(5)),
            },
            MessageBody::ReadIndexResponse {
                context: ReadContext(98),
                index: None,
            },
        ]
        .into_iter()
        .map(message)
        .collect()
    }

    #[test]
    fn every_kind_of_message_round_trips() {
        for original in every_kind() {
            let bytes = encode(&original);
            assert_eq!(bytes[0], FORMAT_VERSION);
            assert_eq!(decode::<Message>(&bytes[..]), Ok(original));
        }
    }

    #[test]
    fn every_truncation_of_every_message_is_an_error() {
        for original in every_kind() {
            assert_every_truncation_fails::<Message>(&encode(&original));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_message_decoder() {
        assert_garbage_never_panics::<Message>(4);
        assert_garbage_never_panics::<Message>(5);
    }

    #[test]
    fn an_unknown_message_kind_is_refused() {
        let mut bytes = encode(&message(MessageBody::TimeoutNow));
        *bytes.last_mut().unwrap() = 200;
        assert_eq!(
            decode::<Message>(&bytes[..]),
            Err(DecodeError::UnknownTag {
                what: "message",
                tag: 200
            })
        );
    }

    #[test]
    fn an_entry_count_beyond_the_input_is_refused_before_allocating() {
        let mut bytes = encode(&message(MessageBody::AppendEntries {
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: Vec::new(),
            leader_commit: LogIndex(0),
        }));
        // The count follows the version byte, the 32-byte header, the kind
        // tag and the two prev fields.
        let count_at = 1 + 32 + 1 + 16;
        bytes[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode::<Message>(&bytes[..]),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn a_bool_other_than_0_or_1_is_refused() {
        let mut bytes = encode(&message(MessageBody::RequestVoteResponse {
            pre_vote: false,
            granted: true,
        }));
        *bytes.last_mut().unwrap() = 2;
        assert!(matches!(
            decode::<Message>(&bytes[..]),
            Err(DecodeError::UnknownTag { what: "bool", .. })
        ));
    }
}
