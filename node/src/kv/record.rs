//! What reads return — a key's [`KeyRecord`] and a [`Change`] of the change
//! log — and how both are stored.
//!
//! Stored encodings (each a [`crate::codec`] encoding, so after its version
//! byte, then sealed with a CRC32 by the store):
//!
//! ```text
//! kv row (key = the key's bytes):
//!   u64 create_revision | u64 mod_revision | u64 version | value
//! change (key = u64 big-endian revision):
//!   u8 kind (1 put, 2 delete) | key
//!              | put only: u64 create_revision | u64 version | value
//! ```

use bytes::{Buf, BufMut, Bytes};

use super::key::Key;
use super::revision::Revision;
use crate::codec::{self, Decode, DecodeError, Encode, get_bytes, put_bytes};

const CHANGE_PUT: u8 = 1;
const CHANGE_DELETE: u8 = 2;

/// A key's current value and metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key.
    pub key: Key,
    /// The value.
    pub value: Bytes,
    /// The revision of the put that created the key (since it last did not
    /// exist).
    pub create_revision: Revision,
    /// The revision of the put that last changed the key: its `ETag`.
    pub mod_revision: Revision,
    /// Puts since creation: 1 after the creating put.
    pub version: u64,
}

/// One write in the change log, as a watch reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The revision of the write, which is also the key's new mod_revision.
    pub revision: Revision,
    /// The key written.
    pub key: Key,
    /// What happened to it.
    pub kind: ChangeKind,
}

impl Change {
    /// The size of the value it wrote (0 for a delete).
    pub fn value_bytes(&self) -> usize {
        match &self.kind {
            ChangeKind::Put { value, .. } => value.len(),
            ChangeKind::Delete => 0,
        }
    }
}

/// What a change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// The key was set.
    Put {
        /// The new value.
        value: Bytes,
        /// The key's create_revision after the put.
        create_revision: Revision,
        /// The key's version after the put.
        version: u64,
    },
    /// The key was deleted.
    Delete,
}

impl KeyRecord {
    /// The stored encoding of everything but the key.
    pub(crate) fn encode_row(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 24 + 4 + self.value.len());
        out.put_u8(codec::FORMAT_VERSION);
        out.put_u64(self.create_revision.get());
        out.put_u64(self.mod_revision.get());
        out.put_u64(self.version);
        put_bytes(&mut out, &self.value);
        out
    }

    /// Reads the row of `key` written by [`KeyRecord::encode_row`].
    pub(crate) fn decode_row(key: Key, row: &[u8]) -> Result<Self, DecodeError> {
        let record = codec::decode_with(Bytes::copy_from_slice(row), |input| {
            Ok(Self {
                key,
                create_revision: Revision::decode_from(input)?,
                mod_revision: Revision::decode_from(input)?,
                version: input.try_get_u64()?,
                value: get_bytes(input)?,
            })
        })?;
        record.check()?;
        Ok(record)
    }

    /// The rules every record obeys.
    pub(crate) fn check(&self) -> Result<(), DecodeError> {
        if self.create_revision.get() == 0 || self.create_revision > self.mod_revision {
            return Err(DecodeError::invalid(
                "a key record needs 0 < create_revision <= mod_revision",
            ));
        }
        if self.version == 0 {
            return Err(DecodeError::invalid("a key record's version starts at 1"));
        }
        Ok(())
    }
}

impl Change {
    /// The stored encoding of everything but the revision.
    pub(crate) fn encode_row(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_u8(codec::FORMAT_VERSION);
        match &self.kind {
            ChangeKind::Put {
                value,
                create_revision,
                version,
            } => {
                out.put_u8(CHANGE_PUT);
                self.key.encode_to(&mut out);
                out.put_u64(create_revision.get());
                out.put_u64(*version);
                put_bytes(&mut out, value);
            }
            ChangeKind::Delete => {
                out.put_u8(CHANGE_DELETE);
                self.key.encode_to(&mut out);
            }
        }
        out
    }

    /// Reads the change at `revision` written by [`Change::encode_row`].
    pub(crate) fn decode_row(revision: Revision, row: &[u8]) -> Result<Self, DecodeError> {
        codec::decode_with(Bytes::copy_from_slice(row), |input| {
            let tag = input.try_get_u8()?;
            let key = Key::decode_from(input)?;
            let kind = match tag {
                CHANGE_PUT => ChangeKind::Put {
                    create_revision: Revision::decode_from(input)?,
                    version: input.try_get_u64()?,
                    value: get_bytes(input)?,
                },
                CHANGE_DELETE => ChangeKind::Delete,
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "change",
                        tag,
                    });
                }
            };
            Ok(Self {
                revision,
                key,
                kind,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Limits;

    fn key(text: &str) -> Key {
        Key::parse(text, &Limits::default()).unwrap()
    }

    /// The stored bytes of format 1, spelled out.
    #[test]
    fn rows_keep_their_stored_bytes() {
        let record = KeyRecord {
            key: key("k"),
            value: Bytes::from_static(b"v"),
            create_revision: Revision(3),
            mod_revision: Revision(9),
            version: 4,
        };
        let mut row = vec![1];
        for n in [3u64, 9, 4] {
            row.extend_from_slice(&n.to_be_bytes());
        }
        row.extend_from_slice(&[0, 0, 0, 1, b'v']);
        assert_eq!(record.encode_row(), row);
        assert_eq!(KeyRecord::decode_row(key("k"), &row), Ok(record));

        let put = Change {
            revision: Revision(9),
            key: key("k"),
            kind: ChangeKind::Put {
                value: Bytes::from_static(b"v"),
                create_revision: Revision(3),
                version: 4,
            },
        };
        let mut row = vec![1, 1, 0, 0, 0, 1, b'k'];
        for n in [3u64, 4] {
            row.extend_from_slice(&n.to_be_bytes());
        }
        row.extend_from_slice(&[0, 0, 0, 1, b'v']);
        assert_eq!(put.encode_row(), row);
        assert_eq!(Change::decode_row(Revision(9), &row), Ok(put));
        let delete = Change {
            revision: Revision(10),
            key: key("k"),
            kind: ChangeKind::Delete,
        };
        let row = [1, 2, 0, 0, 0, 1, b'k'];
        assert_eq!(delete.encode_row(), row);
        assert_eq!(Change::decode_row(Revision(10), &row), Ok(delete));
    }

    #[test]
    fn a_key_record_round_trips() {
        let record = KeyRecord {
            key: key("a/b"),
            value: Bytes::from_static(b"\x00v"),
            create_revision: Revision(3),
            mod_revision: Revision(9),
            version: 4,
        };
        let row = record.encode_row();
        assert_eq!(KeyRecord::decode_row(key("a/b"), &row), Ok(record));
        for len in 0..row.len() {
            assert!(KeyRecord::decode_row(key("a/b"), &row[..len]).is_err());
        }
    }

    #[test]
    fn a_record_modified_before_it_was_created_is_refused() {
        let record = KeyRecord {
            key: key("a"),
            value: Bytes::new(),
            create_revision: Revision(5),
            mod_revision: Revision(4),
            version: 1,
        };
        assert!(matches!(
            KeyRecord::decode_row(key("a"), &record.encode_row()),
            Err(DecodeError::Invalid(_))
        ));
    }

    #[test]
    fn changes_round_trip() {
        for change in [
            Change {
                revision: Revision(7),
                key: key("x/y"),
                kind: ChangeKind::Put {
                    value: Bytes::from_static(b"v"),
                    create_revision: Revision(2),
                    version: 3,
                },
            },
            Change {
                revision: Revision(8),
                key: key("x/y"),
                kind: ChangeKind::Delete,
            },
        ] {
            let row = change.encode_row();
            assert_eq!(Change::decode_row(change.revision, &row), Ok(change));
        }
    }
}
