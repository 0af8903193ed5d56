//! [`Command`]: a write, as replicated in the Raft log
//! (`EntryPayload::Command`).
//!
//! Encoding (the body, after the [`crate::codec`] version byte):
//!
//! ```text
//! u8 kind (1 put, 2 delete) | precondition | key | put only: value
//! u8 kind 3 (set member) | u64 node_id | u8 version | member address
//! u8 kind 4 (auth change) | auth change (see `auth.rs`)
//! precondition: u8 0 (none) | u8 1, u64 mod_revision | u8 2 (absent)
//! key, value:   u32 length, bytes
//! ```
//!
//! A new format version must be readable by every member before any member
//! proposes it (an older member would apply it as invalid and its state
//! would diverge). Decoding never panics; anything malformed, including an
//! unknown version, trailing bytes or a key that breaks the key rules, is a
//! [`DecodeError`].
//! The key's size limit is not checked here: that is the API's admission
//! check, and applying must not depend on a member's configuration.

use bytes::{Buf, BufMut, Bytes};

use super::auth::AuthChange;
use super::key::Key;
use super::member::MemberAddress;
use super::revision::Revision;
use crate::codec::{
    Decode, DecodeError, Encode, get_bytes, get_versioned, put_bytes, put_versioned,
};
use raftcfg_raft::NodeId;

const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_SET_MEMBER: u8 = 3;
const KIND_AUTH: u8 = 4;
const PRECONDITION_NONE: u8 = 0;
const PRECONDITION_MOD_REVISION: u8 = 1;
const PRECONDITION_ABSENT: u8 = 2;

/// A replicated write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Set `key` to `value`.
    Put {
        /// The key written.
        key: Key,
        /// The new value.
        value: Bytes,
        /// What must hold for the write to happen.
        precondition: Precondition,
    },
    /// Remove `key`.
    Delete {
        /// The key removed.
        key: Key,
        /// What must hold for the delete to happen.
        precondition: Precondition,
    },
    /// Record a member's name and URLs in the member directory (a member
    /// that founded the cluster announces itself this way). It changes no
    /// key and uses no revision.
    SetMember {
        /// The member.
        node_id: NodeId,
        /// Its name and URLs.
        address: MemberAddress,
    },
    /// Change users, roles or whether auth is on. It changes no key and
    /// uses no revision.
    Auth(AuthChange),
}

/// What must hold of a key's current record for a command to take effect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precondition {
    /// Nothing: the command always applies.
    #[default]
    None,
    /// The key exists and its mod_revision is this one (HTTP `If-Match`):
    /// compare-and-swap. Revision 0 never matches.
    ModRevision(Revision),
    /// The key does not exist (HTTP `If-None-Match: *`): create only.
    Absent,
}

impl Command {
    /// The key the command writes, if it writes one.
    pub fn key(&self) -> Option<&Key> {
        match self {
            Self::Put { key, .. } | Self::Delete { key, .. } => Some(key),
            Self::SetMember { .. } | Self::Auth(_) => None,
        }
    }
}

impl Encode for Command {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        match self {
            Self::Put {
                key,
                value,
                precondition,
            } => {
                out.put_u8(KIND_PUT);
                precondition.encode_to(out);
                key.encode_to(out);
                put_bytes(out, value);
            }
            Self::Delete { key, precondition } => {
                out.put_u8(KIND_DELETE);
                precondition.encode_to(out);
                key.encode_to(out);
            }
            Self::SetMember { node_id, address } => {
                out.put_u8(KIND_SET_MEMBER);
                out.put_u64(node_id.get());
                put_versioned(out, address);
            }
            Self::Auth(change) => {
                out.put_u8(KIND_AUTH);
                change.encode_to(out);
            }
        }
    }
}

/// Decoding shares the input's buffer for the value when it is a [`Bytes`].
impl Decode for Command {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        match input.try_get_u8()? {
            KIND_PUT => Ok(Self::Put {
                precondition: Precondition::decode_from(input)?,
                key: Key::decode_from(input)?,
                value: get_bytes(input)?,
            }),
            KIND_DELETE => Ok(Self::Delete {
                precondition: Precondition::decode_from(input)?,
                key: Key::decode_from(input)?,
            }),
            KIND_SET_MEMBER => Ok(Self::SetMember {
                node_id: NodeId(input.try_get_u64()?),
                address: get_versioned(input)?,
            }),
            KIND_AUTH => Ok(Self::Auth(AuthChange::decode_from(input)?)),
            tag => Err(DecodeError::UnknownTag {
                what: "command",
                tag,
            }),
        }
    }
}

impl Encode for Precondition {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        match self {
            Self::None => out.put_u8(PRECONDITION_NONE),
            Self::ModRevision(revision) => {
                out.put_u8(PRECONDITION_MOD_REVISION);
                revision.encode_to(out);
            }
            Self::Absent => out.put_u8(PRECONDITION_ABSENT),
        }
    }
}

impl Decode for Precondition {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        match input.try_get_u8()? {
            PRECONDITION_NONE => Ok(Self::None),
            PRECONDITION_MOD_REVISION => Ok(Self::ModRevision(Revision::decode_from(input)?)),
            PRECONDITION_ABSENT => Ok(Self::Absent),
            tag => Err(DecodeError::UnknownTag {
                what: "precondition",
                tag,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec::{FORMAT_VERSION, decode, encode};
    use crate::kv::Limits;

    /// The command's bytes, as a log entry carries them.
    fn bytes_of(command: &Command) -> Bytes {
        encode(command).into()
    }

    fn key(text: &str) -> Key {
        Key::parse(text, &Limits::default()).unwrap()
    }

    fn samples() -> Vec<Command> {
        vec![
            Command::Put {
                key: key("app/db/url"),
                value: Bytes::from_static(b"postgres://db\x00\xff"),
                precondition: Precondition::None,
            },
            Command::Put {
                key: key("a"),
                value: Bytes::new(),
                precondition: Precondition::Absent,
            },
            Command::Put {
                key: key("a/b"),
                value: Bytes::from_static(b"v"),
                precondition: Precondition::ModRevision(Revision(u64::MAX)),
            },
            Command::Delete {
                key: key("app/x"),
                precondition: Precondition::ModRevision(Revision(7)),
            },
            Command::Delete {
                key: key("app/y"),
                precondition: Precondition::None,
            },
            Command::SetMember {
                node_id: NodeId(u64::MAX),
                address: MemberAddress {
                    name: "n1".into(),
                    peer_url: "http://127.0.0.1:7380".into(),
                    client_url: "http://127.0.0.1:7379".into(),
                },
            },
        ]
    }

    #[test]
    fn every_command_round_trips_with_a_leading_version_byte() {
        for command in samples() {
            let bytes = bytes_of(&command);
            assert_eq!(bytes[0], FORMAT_VERSION);
            assert_eq!(decode::<Command>(bytes.clone()), Ok(command));
        }
    }

    /// The bytes of format 1, spelled out: a data directory or a log entry
    /// written by an older build must read the same.
    #[test]
    fn commands_keep_their_stored_bytes() {
        let put = Command::Put {
            key: key("a"),
            value: Bytes::from_static(b"v"),
            precondition: Precondition::ModRevision(Revision(7)),
        };
        assert_eq!(
            bytes_of(&put)[..],
            [
                1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1, b'a', 0, 0, 0, 1, b'v'
            ]
        );
        let delete = Command::Delete {
            key: key("b"),
            precondition: Precondition::Absent,
        };
        assert_eq!(bytes_of(&delete)[..], [1, 2, 2, 0, 0, 0, 1, b'b']);
        let announce = Command::SetMember {
            node_id: NodeId(5),
            address: MemberAddress {
                name: "n".into(),
                peer_url: "p".into(),
                client_url: "c".into(),
            },
        };
        let mut expected = vec![1, 3, 0, 0, 0, 0, 0, 0, 0, 5, 1];
        for field in [b'n', b'p', b'c'] {
            expected.extend_from_slice(&[0, 0, 0, 1, field]);
        }
        assert_eq!(bytes_of(&announce)[..], expected[..]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        for command in samples() {
            let bytes = bytes_of(&command);
            for len in 0..bytes.len() {
                assert!(decode::<Command>(bytes.slice(..len)).is_err());
            }
        }
    }

    #[test]
    fn an_unknown_version_kind_or_precondition_is_refused() {
        let bytes = bytes_of(&samples()[0]).to_vec();
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 2;
        assert!(matches!(
            decode::<Command>(Bytes::from(wrong_version)),
            Err(DecodeError::UnknownVersion { version: 2, .. })
        ));
        let mut wrong_kind = bytes.clone();
        wrong_kind[1] = 9;
        assert_eq!(
            decode::<Command>(Bytes::from(wrong_kind)),
            Err(DecodeError::UnknownTag {
                what: "command",
                tag: 9
            })
        );
        let mut wrong_precondition = bytes;
        wrong_precondition[2] = 3;
        assert_eq!(
            decode::<Command>(Bytes::from(wrong_precondition)),
            Err(DecodeError::UnknownTag {
                what: "precondition",
                tag: 3
            })
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = bytes_of(&samples()[3]).to_vec();
        bytes.push(0);
        assert_eq!(
            decode::<Command>(Bytes::from(bytes)),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn a_key_that_breaks_the_rules_is_refused() {
        let mut bytes = vec![FORMAT_VERSION, KIND_DELETE, PRECONDITION_NONE];
        put_bytes(&mut bytes, b"/etc/passwd");
        assert!(matches!(
            decode::<Command>(Bytes::from(bytes)),
            Err(DecodeError::Invalid(_))
        ));
    }

    fn any_key() -> impl Strategy<Value = Key> {
        prop::collection::vec("[a-z0-9_.-]{1,6}", 1..4).prop_filter_map("valid key", |segments| {
            Key::parse(&segments.join("/"), &Limits::default()).ok()
        })
    }

    fn any_precondition() -> impl Strategy<Value = Precondition> {
        prop_oneof![
            Just(Precondition::None),
            Just(Precondition::Absent),
            any::<u64>().prop_map(|r| Precondition::ModRevision(Revision(r))),
        ]
    }

    fn any_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            (
                any_key(),
                prop::collection::vec(any::<u8>(), 0..64),
                any_precondition()
            )
                .prop_map(|(key, value, precondition)| Command::Put {
                    key,
                    value: value.into(),
                    precondition
                }),
            (any_key(), any_precondition())
                .prop_map(|(key, precondition)| Command::Delete { key, precondition }),
        ]
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
            let _ = decode::<Command>(Bytes::from(bytes));
        }

        #[test]
        fn decoding_arbitrary_bodies_after_a_valid_version_never_panics(
            body in prop::collection::vec(any::<u8>(), 0..96),
        ) {
            let mut bytes = vec![FORMAT_VERSION];
            bytes.extend(body);
            let _ = decode::<Command>(Bytes::from(bytes));
        }

        #[test]
        fn any_command_round_trips(command in any_command()) {
            prop_assert_eq!(decode::<Command>(bytes_of(&command)), Ok(command));
        }

        #[test]
        fn a_corrupted_command_never_panics(
            command in any_command(),
            position in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = bytes_of(&command).to_vec();
            let at = position.index(bytes.len());
            bytes[at] = byte;
            let _ = decode::<Command>(Bytes::from(bytes));
        }
    }
}
