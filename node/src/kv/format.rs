//! The primitives of the key-value module's binary encodings (commands,
//! stored records, change-log records, snapshots).
//!
//! Each encoding starts with its own format version byte. Bodies use
//! fixed-width big-endian integers, one tag byte per enum variant, and
//! byte strings prefixed by a big-endian `u32` length. Reading never panics
//! and never trusts a length: it is checked against the bytes left before
//! anything is allocated.

use bytes::{Buf, BufMut, Bytes};

use super::key::{Key, KeyError};
use super::revision::Revision;

/// Why bytes are not a valid encoding.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The input ended before the value did.
    #[error("truncated: needed {needed} more bytes, {available} left")]
    Truncated {
        /// Bytes the next field needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// The leading version byte is not one this build reads.
    #[error("unknown {what} format version {version} (this build reads version {expected})")]
    UnknownVersion {
        /// What was being decoded.
        what: &'static str,
        /// The version read.
        version: u8,
        /// The version this build reads.
        expected: u8,
    },
    /// A tag byte has no meaning.
    #[error("unknown {what} tag {tag}")]
    UnknownTag {
        /// The kind of value whose tag it was.
        what: &'static str,
        /// The tag read.
        tag: u8,
    },
    /// Bytes were left after the value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// A key is not UTF-8.
    #[error("a key is not valid UTF-8")]
    InvalidUtf8,
    /// A key breaks the key rules.
    #[error("invalid key: {0}")]
    InvalidKey(KeyError),
    /// The bytes decode but break a rule of the value.
    #[error("invalid value: {0}")]
    Invalid(&'static str),
}

impl From<bytes::TryGetError> for FormatError {
    fn from(error: bytes::TryGetError) -> Self {
        Self::Truncated {
            needed: error.requested,
            available: error.available,
        }
    }
}

/// Reads the version byte and checks it is `expected`.
pub(crate) fn check_version<B: Buf>(
    input: &mut B,
    what: &'static str,
    expected: u8,
) -> Result<(), FormatError> {
    let version = input.try_get_u8()?;
    if version != expected {
        return Err(FormatError::UnknownVersion {
            what,
            version,
            expected,
        });
    }
    Ok(())
}

/// Checks that nothing follows the value.
pub(crate) fn check_end<B: Buf>(input: &B) -> Result<(), FormatError> {
    match input.remaining() {
        0 => Ok(()),
        left => Err(FormatError::TrailingBytes(left)),
    }
}

/// Writes a length-prefixed byte string. Its length must fit in a `u32`:
/// values are bounded by the API's limits, far below 4 GiB.
pub(crate) fn put_bytes<B: BufMut>(out: &mut B, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("an encoded byte string is shorter than 4 GiB");
    out.put_u32(len);
    out.put_slice(bytes);
}

/// Reads a byte string written by [`put_bytes`] (without copying when the
/// input is a [`Bytes`]).
pub(crate) fn get_bytes<B: Buf>(input: &mut B) -> Result<Bytes, FormatError> {
    let len = input.try_get_u32()? as usize;
    if len > input.remaining() {
        return Err(FormatError::Truncated {
            needed: len,
            available: input.remaining(),
        });
    }
    Ok(input.copy_to_bytes(len))
}

/// Writes a key as a length-prefixed string.
pub(crate) fn put_key<B: BufMut>(out: &mut B, key: &Key) {
    put_bytes(out, key.as_bytes());
}

/// Reads a key written by [`put_key`] and checks the key rules (not the
/// size limit: see [`super::Limits`]).
pub(crate) fn get_key<B: Buf>(input: &mut B) -> Result<Key, FormatError> {
    let bytes = get_bytes(input)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| FormatError::InvalidUtf8)?;
    Key::parse_replicated(text).map_err(FormatError::InvalidKey)
}

/// Reads a revision.
pub(crate) fn get_revision<B: Buf>(input: &mut B) -> Result<Revision, FormatError> {
    Ok(Revision(input.try_get_u64()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_length_beyond_the_input_is_refused_without_allocating() {
        let mut input = &[0xff, 0xff, 0xff, 0xff, 1, 2][..];
        assert_eq!(
            get_bytes(&mut input),
            Err(FormatError::Truncated {
                needed: u32::MAX as usize,
                available: 2
            })
        );
    }

    #[test]
    fn a_key_that_is_not_utf8_or_breaks_the_rules_is_refused() {
        let mut out = Vec::new();
        put_bytes(&mut out, b"\xff");
        assert_eq!(get_key(&mut &out[..]), Err(FormatError::InvalidUtf8));
        let mut out = Vec::new();
        put_bytes(&mut out, b"a//b");
        assert!(matches!(
            get_key(&mut &out[..]),
            Err(FormatError::InvalidKey(KeyError::EmptySegment { .. }))
        ));
    }
}
