//! The node's one binary encoding, for everything it stores on disk (Raft
//! records, key-value rows, commands) and everything it sends to peers.
//! Never JSON on these paths.
//!
//! Every encoding starts with one format version byte ([`FORMAT_VERSION`]),
//! followed by the value's body. Bodies are built from a few primitives:
//! fixed-width big-endian integers, a tag byte for each enum variant and
//! for `Option` (0 = none, 1 = some), and length-prefixed byte strings and
//! sets (a big-endian `u32` count first). A type joins the format by
//! implementing [`Encode`] and [`Decode`] next to its definition (the Raft
//! core's types, whose crate knows nothing of bytes, are encoded here);
//! [`encode`] and [`decode`] add and check the version byte and refuse
//! trailing bytes, and [`decode_with`] does the same for a body read with
//! outside context (a stored row whose key lives in the row's key).
//!
//! Decoding never panics and never trusts a length: truncated input, an
//! unknown version or tag, a length beyond the input, and trailing bytes are
//! each a [`DecodeError`]. This module does no I/O, depends on no other
//! module of the node and knows nothing of where its bytes go; checksums
//! belong to the storage layer.

mod batch;
mod message;
mod raft;

pub use batch::MessageBatch;

use std::borrow::Cow;

use bytes::{Buf, BufMut, Bytes};

/// The current format version, the first byte of every encoding; decoders
/// refuse versions they do not know. Stored records share it, so bumping it
/// would make every existing data directory unreadable: change an encoding
/// by adding a tag or a type where possible, and a bump must come with
/// decoders that still read version 1.
pub const FORMAT_VERSION: u8 = 1;

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("truncated: needed {needed} more bytes, {available} left")]
    Truncated {
        /// Bytes the next field needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// The leading format version is not one this build knows.
    #[error("unknown format version {version} (this build reads version {expected})")]
    UnknownVersion {
        /// The version read.
        version: u8,
        /// The version this build reads.
        expected: u8,
    },
    /// An enum or option tag has no meaning.
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
    /// A string was not UTF-8.
    #[error("a string is not valid UTF-8")]
    InvalidUtf8,
    /// The bytes decode but break a rule of the value (e.g. a set lists a
    /// member twice, or a key breaks the key rules).
    #[error("invalid value: {0}")]
    Invalid(Cow<'static, str>),
}

impl DecodeError {
    /// A value that breaks one of its rules, described by `rule`.
    pub fn invalid(rule: impl Into<Cow<'static, str>>) -> Self {
        Self::Invalid(rule.into())
    }
}

impl From<bytes::TryGetError> for DecodeError {
    fn from(error: bytes::TryGetError) -> Self {
        Self::Truncated {
            needed: error.requested,
            available: error.available,
        }
    }
}

/// A value with a body in this format.
pub trait Encode {
    /// Appends the value's body (no version byte) to `out`.
    fn encode_to<B: BufMut>(&self, out: &mut B);
}

/// A value that can be read back from its body.
pub trait Decode: Sized {
    /// Reads one value's body from the front of `input`.
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError>;
}

/// The full encoding of `value`: the version byte, then its body.
pub fn encode<T: Encode + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    value.encode_to(&mut out);
    out
}

/// Decodes a full encoding made by [`encode`]: checks the version byte and
/// that nothing follows the value. Byte strings in the value share
/// `input`'s buffer when it is a [`Bytes`].
pub fn decode<T: Decode>(input: impl Buf) -> Result<T, DecodeError> {
    decode_with(input, T::decode_from)
}

/// Like [`decode`], with the body read by `body`: for a value that needs
/// more than its bytes to be built.
pub fn decode_with<B: Buf, T>(
    mut input: B,
    body: impl FnOnce(&mut B) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    check_version(&mut input)?;
    let value = body(&mut input)?;
    match input.remaining() {
        0 => Ok(value),
        left => Err(DecodeError::TrailingBytes(left)),
    }
}

/// Writes a value with its own version byte inside another value's body.
/// Only member addresses are nested so (format 1 put the byte there).
pub(crate) fn put_versioned<B: BufMut, T: Encode>(out: &mut B, value: &T) {
    out.put_u8(FORMAT_VERSION);
    value.encode_to(out);
}

/// Reads a value written by [`put_versioned`].
pub(crate) fn get_versioned<B: Buf, T: Decode>(input: &mut B) -> Result<T, DecodeError> {
    check_version(input)?;
    T::decode_from(input)
}

fn check_version<B: Buf>(input: &mut B) -> Result<(), DecodeError> {
    match input.try_get_u8()? {
        FORMAT_VERSION => Ok(()),
        version => Err(DecodeError::UnknownVersion {
            version,
            expected: FORMAT_VERSION,
        }),
    }
}

// Primitives shared by the per-type encodings.

/// Writes a length as a big-endian `u32`. Lengths of 4 GiB or more are a
/// bug of the caller (nothing this node encodes comes close).
pub(crate) fn put_len<B: BufMut>(out: &mut B, len: usize) {
    let len = u32::try_from(len).expect("an encoded length fits in u32");
    out.put_u32(len);
}

/// Reads a length written by [`put_len`] and checks that at least
/// `len * unit` bytes follow, so a corrupt length never causes a large
/// allocation or a panic.
pub(crate) fn get_len<B: Buf>(input: &mut B, unit: usize) -> Result<usize, DecodeError> {
    let len = input.try_get_u32()? as usize;
    let needed = len.saturating_mul(unit);
    if needed > input.remaining() {
        return Err(DecodeError::Truncated {
            needed,
            available: input.remaining(),
        });
    }
    Ok(len)
}

/// Writes a length-prefixed byte string.
pub(crate) fn put_bytes<B: BufMut>(out: &mut B, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.put_slice(bytes);
}

/// Reads a byte string written by [`put_bytes`].
pub(crate) fn get_bytes<B: Buf>(input: &mut B) -> Result<Bytes, DecodeError> {
    let len = get_len(input, 1)?;
    Ok(input.copy_to_bytes(len))
}

/// Writes a length-prefixed UTF-8 string.
pub(crate) fn put_str<B: BufMut>(out: &mut B, text: &str) {
    put_bytes(out, text.as_bytes());
}

/// Reads a string written by [`put_str`].
pub(crate) fn get_string<B: Buf>(input: &mut B) -> Result<String, DecodeError> {
    let bytes = get_bytes(input)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::InvalidUtf8)
}

/// Writes an optional `u64`: tag 0, or tag 1 and the value.
pub(crate) fn put_opt_u64<B: BufMut>(out: &mut B, value: Option<u64>) {
    match value {
        None => out.put_u8(0),
        Some(value) => {
            out.put_u8(1);
            out.put_u64(value);
        }
    }
}

/// Reads an optional `u64` written by [`put_opt_u64`].
pub(crate) fn get_opt_u64<B: Buf>(input: &mut B) -> Result<Option<u64>, DecodeError> {
    match input.try_get_u8()? {
        0 => Ok(None),
        1 => Ok(Some(input.try_get_u64()?)),
        tag => Err(DecodeError::UnknownTag {
            what: "option",
            tag,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::testing::assert_every_truncation_fails;
    use super::*;

    /// A value with every primitive, to test the framing on its own.
    #[derive(Debug, PartialEq)]
    struct Sample {
        number: u64,
        maybe: Option<u64>,
        blob: Bytes,
        text: String,
    }

    impl Encode for Sample {
        fn encode_to<B: BufMut>(&self, out: &mut B) {
            out.put_u64(self.number);
            put_opt_u64(out, self.maybe);
            put_bytes(out, &self.blob);
            put_str(out, &self.text);
        }
    }

    impl Decode for Sample {
        fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
            Ok(Self {
                number: input.try_get_u64()?,
                maybe: get_opt_u64(input)?,
                blob: get_bytes(input)?,
                text: get_string(input)?,
            })
        }
    }

    fn sample() -> Sample {
        Sample {
            number: u64::MAX - 1,
            maybe: Some(7),
            blob: Bytes::from_static(b"\x00\xffblob"),
            text: "n1 ✓".into(),
        }
    }

    #[test]
    fn a_value_round_trips_with_a_leading_version_byte() {
        let bytes = encode(&sample());
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<Sample>(&bytes[..]), Ok(sample()));
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let mut bytes = encode(&sample());
        bytes[0] = FORMAT_VERSION + 1;
        assert_eq!(
            decode::<Sample>(&bytes[..]),
            Err(DecodeError::UnknownVersion {
                version: FORMAT_VERSION + 1,
                expected: FORMAT_VERSION
            })
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&sample());
        bytes.extend_from_slice(b"xy");
        assert_eq!(
            decode::<Sample>(&bytes[..]),
            Err(DecodeError::TrailingBytes(2))
        );
    }

    #[test]
    fn a_length_beyond_the_input_is_refused_without_allocating() {
        let mut bytes = vec![FORMAT_VERSION];
        bytes.put_u64(1);
        bytes.put_u8(0);
        bytes.put_u32(u32::MAX);
        assert!(matches!(
            decode::<Sample>(&bytes[..]),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn an_unknown_option_tag_is_refused() {
        let mut bytes = vec![FORMAT_VERSION];
        bytes.put_u64(1);
        bytes.put_u8(2);
        assert_eq!(
            decode::<Sample>(&bytes[..]),
            Err(DecodeError::UnknownTag {
                what: "option",
                tag: 2
            })
        );
    }

    #[test]
    fn a_string_that_is_not_utf8_is_refused() {
        let mut bytes = vec![FORMAT_VERSION];
        bytes.put_u64(1);
        bytes.put_u8(0);
        put_bytes(&mut bytes, b"");
        put_bytes(&mut bytes, b"\xff\xfe");
        assert_eq!(decode::<Sample>(&bytes[..]), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn every_truncation_is_an_error() {
        assert_every_truncation_fails::<Sample>(&encode(&sample()));
    }
}

/// Test helpers shared by the per-type tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Decode, decode};

    /// Decoding every proper prefix of `bytes` (a valid encoding) fails.
    pub(crate) fn assert_every_truncation_fails<T: Decode + std::fmt::Debug>(bytes: &[u8]) {
        for len in 0..bytes.len() {
            let result = decode::<T>(&bytes[..len]);
            assert!(
                result.is_err(),
                "a prefix of {len} of {} bytes decoded: {result:?}",
                bytes.len()
            );
        }
    }

    /// Decoding arbitrary bytes never panics (it may succeed or fail).
    pub(crate) fn assert_garbage_never_panics<T: Decode + std::fmt::Debug>(seed: u64) {
        // A small xorshift generator: deterministic, no dependency.
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2_000 {
            let len = (next() % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(first) = bytes.first_mut() {
                *first = super::FORMAT_VERSION;
            }
            let _ = decode::<T>(&bytes[..]);
        }
    }
}
