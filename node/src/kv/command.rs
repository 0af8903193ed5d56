//! [`Command`]: a write, as replicated in the Raft log
//! (`EntryPayload::Command`).
//!
//! Encoding, version [`COMMAND_VERSION`]:
//!
//! ```text
//! u8 version | u8 kind (1 put, 2 delete) | precondition | key | put only: value
//! u8 version | u8 kind 3 (set member) | u64 node_id | member address
//! precondition: u8 0 (none) | u8 1, u64 mod_revision | u8 2 (absent)
//! key, value:   u32 length, bytes
//! ```
//!
//! Decoding never panics; anything malformed, including an unknown version,
//! trailing bytes or a key that breaks the key rules, is a [`FormatError`].
//! The key's size limit is not checked here: that is the API's admission
//! check, and applying must not depend on a member's configuration.

use bytes::{Buf, BufMut, Bytes};

use super::format::{
    FormatError, check_end, check_version, get_bytes, get_key, get_revision, put_bytes, put_key,
};
use super::key::Key;
use super::member::MemberAddress;
use super::revision::Revision;
use raftcfg_raft::NodeId;

/// The version byte commands start with. A new version must be readable by
/// every member before any member proposes it (an older member would apply
/// it as invalid and its state would diverge).
pub const COMMAND_VERSION: u8 = 1;

const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_SET_MEMBER: u8 = 3;
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
            Self::SetMember { .. } => None,
        }
    }

    /// The command's encoding, for `EntryPayload::Command`.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        out.put_u8(COMMAND_VERSION);
        match self {
            Self::Put {
                key,
                value,
                precondition,
            } => {
                out.put_u8(KIND_PUT);
                put_precondition(&mut out, *precondition);
                put_key(&mut out, key);
                put_bytes(&mut out, value);
            }
            Self::Delete { key, precondition } => {
                out.put_u8(KIND_DELETE);
                put_precondition(&mut out, *precondition);
                put_key(&mut out, key);
            }
            Self::SetMember { node_id, address } => {
                out.put_u8(KIND_SET_MEMBER);
                out.put_u64(node_id.get());
                address.put(&mut out);
            }
        }
        out.into()
    }

    /// Decodes a command made by [`Command::encode`]. The value shares
    /// `bytes`' buffer.
    pub fn decode(bytes: &Bytes) -> Result<Self, FormatError> {
        let mut input = bytes.clone();
        check_version(&mut input, "command", COMMAND_VERSION)?;
        let kind = input.try_get_u8()?;
        let command = match kind {
            KIND_PUT => {
                let precondition = get_precondition(&mut input)?;
                let key = get_key(&mut input)?;
                let value = get_bytes(&mut input)?;
                Self::Put {
                    key,
                    value,
                    precondition,
                }
            }
            KIND_DELETE => {
                let precondition = get_precondition(&mut input)?;
                let key = get_key(&mut input)?;
                Self::Delete { key, precondition }
            }
            KIND_SET_MEMBER => Self::SetMember {
                node_id: NodeId(input.try_get_u64()?),
                address: MemberAddress::get(&mut input)?,
            },
            tag => {
                return Err(FormatError::UnknownTag {
                    what: "command",
                    tag,
                });
            }
        };
        check_end(&input)?;
        Ok(command)
    }

    fn encoded_len_hint(&self) -> usize {
        match self {
            Self::Put { key, value, .. } => 2 + 9 + 8 + key.as_bytes().len() + value.len(),
            Self::Delete { key, .. } => 2 + 9 + 4 + key.as_bytes().len(),
            Self::SetMember { .. } => 64,
        }
    }
}

fn put_precondition<B: BufMut>(out: &mut B, precondition: Precondition) {
    match precondition {
        Precondition::None => out.put_u8(PRECONDITION_NONE),
        Precondition::ModRevision(revision) => {
            out.put_u8(PRECONDITION_MOD_REVISION);
            out.put_u64(revision.get());
        }
        Precondition::Absent => out.put_u8(PRECONDITION_ABSENT),
    }
}

fn get_precondition<B: Buf>(input: &mut B) -> Result<Precondition, FormatError> {
    match input.try_get_u8()? {
        PRECONDITION_NONE => Ok(Precondition::None),
        PRECONDITION_MOD_REVISION => Ok(Precondition::ModRevision(get_revision(input)?)),
        PRECONDITION_ABSENT => Ok(Precondition::Absent),
        tag => Err(FormatError::UnknownTag {
            what: "precondition",
            tag,
        }),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::kv::Limits;

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
            let bytes = command.encode();
            assert_eq!(bytes[0], COMMAND_VERSION);
            assert_eq!(Command::decode(&bytes), Ok(command));
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for command in samples() {
            let bytes = command.encode();
            for len in 0..bytes.len() {
                assert!(Command::decode(&bytes.slice(..len)).is_err());
            }
        }
    }

    #[test]
    fn an_unknown_version_kind_or_precondition_is_refused() {
        let bytes = samples()[0].encode().to_vec();
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 2;
        assert!(matches!(
            Command::decode(&wrong_version.into()),
            Err(FormatError::UnknownVersion { version: 2, .. })
        ));
        let mut wrong_kind = bytes.clone();
        wrong_kind[1] = 9;
        assert_eq!(
            Command::decode(&wrong_kind.into()),
            Err(FormatError::UnknownTag {
                what: "command",
                tag: 9
            })
        );
        let mut wrong_precondition = bytes;
        wrong_precondition[2] = 3;
        assert_eq!(
            Command::decode(&wrong_precondition.into()),
            Err(FormatError::UnknownTag {
                what: "precondition",
                tag: 3
            })
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = samples()[3].encode().to_vec();
        bytes.push(0);
        assert_eq!(
            Command::decode(&bytes.into()),
            Err(FormatError::TrailingBytes(1))
        );
    }

    #[test]
    fn a_key_that_breaks_the_rules_is_refused() {
        let mut bytes = vec![COMMAND_VERSION, KIND_DELETE, PRECONDITION_NONE];
        put_bytes(&mut bytes, b"/etc/passwd");
        assert!(matches!(
            Command::decode(&bytes.into()),
            Err(FormatError::InvalidKey(_))
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
            let _ = Command::decode(&bytes.into());
        }

        #[test]
        fn decoding_arbitrary_bodies_after_a_valid_version_never_panics(
            body in prop::collection::vec(any::<u8>(), 0..96),
        ) {
            let mut bytes = vec![COMMAND_VERSION];
            bytes.extend(body);
            let _ = Command::decode(&bytes.into());
        }

        #[test]
        fn any_command_round_trips(command in any_command()) {
            prop_assert_eq!(Command::decode(&command.encode()), Ok(command));
        }

        #[test]
        fn a_corrupted_command_never_panics(
            command in any_command(),
            position in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = command.encode().to_vec();
            let at = position.index(bytes.len());
            bytes[at] = byte;
            let _ = Command::decode(&bytes.into());
        }
    }
}
