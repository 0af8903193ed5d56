//! [`Key`]: a validated key, a UTF-8 path such as `app/db/url`.
//!
//! A key is 1 to `max_key_bytes` bytes of UTF-8, made of `/`-separated
//! segments. No segment is empty (so no leading, trailing or doubled `/`),
//! none is `.` or `..` (HTTP clients rewrite those out of a URL path, so such
//! a key could not be addressed as `/v1/kv/{key}`), and no character is a
//! control character. Keys sort by their bytes, which for UTF-8 is code point
//! order.

use std::fmt;

use bytes::{Buf, BufMut};

use super::limits::Limits;
use crate::codec::{Decode, DecodeError, Encode, get_bytes, put_bytes};

/// A key that obeys the rules above.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

/// Why a key (or a key prefix) was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is the empty string.
    #[error("the key is empty")]
    Empty,
    /// The key is longer than the limit.
    #[error("the key is {len} bytes, more than the limit of {max}")]
    TooLong {
        /// The key's length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The key contains a control character.
    #[error("the key contains the control character {code} at byte {offset}")]
    ControlCharacter {
        /// The character, as `U+XXXX`.
        code: String,
        /// Its byte offset in the key.
        offset: usize,
    },
    /// The key starts with `/`.
    #[error("the key starts with '/'; keys are relative paths such as app/db/url")]
    LeadingSlash,
    /// The key ends with `/`.
    #[error("the key ends with '/'; only a prefix may end with '/'")]
    TrailingSlash,
    /// The key contains `//`.
    #[error("the key has an empty segment ('//') at byte {offset}")]
    EmptySegment {
        /// The byte offset of the second `/`.
        offset: usize,
    },
    /// A segment is `.` or `..`.
    #[error("the key has a '{segment}' segment, which HTTP clients rewrite out of URLs")]
    DotSegment {
        /// The offending segment.
        segment: String,
    },
}

impl Key {
    /// Validates `text` as a key under `limits`.
    pub fn parse(text: &str, limits: &Limits) -> Result<Self, KeyError> {
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        check_path(text, limits, PathKind::Key)?;
        Ok(Self(text.to_owned()))
    }

    /// Validates a key read from a replicated command or from storage: the
    /// structural rules apply, the size limit does not (see [`Limits`]).
    pub(crate) fn parse_replicated(text: &str) -> Result<Self, KeyError> {
        Self::parse(text, &Limits::unbounded())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's bytes, as stored.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A key is stored and replicated as a length-prefixed string; reading one
/// checks the key rules (not the size limit: see [`Limits`]).
impl Encode for Key {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        put_bytes(out, self.as_bytes());
    }
}

impl Decode for Key {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        let bytes = get_bytes(input)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| DecodeError::InvalidUtf8)?;
        Self::parse_replicated(text).map_err(|e| DecodeError::invalid(format!("key: {e}")))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Whether a path is a whole key or a prefix of keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathKind {
    /// Every segment is complete: it may not end with `/`.
    Key,
    /// The last segment may be partial or empty (a prefix may be empty or
    /// end with `/`); only complete segments are checked for dots.
    Prefix,
}

/// The rules shared by keys and prefixes, for a non-empty key or any prefix.
pub(crate) fn check_path(text: &str, limits: &Limits, kind: PathKind) -> Result<(), KeyError> {
    if text.len() > limits.max_key_bytes {
        return Err(KeyError::TooLong {
            len: text.len(),
            max: limits.max_key_bytes,
        });
    }
    if let Some((offset, c)) = text.char_indices().find(|(_, c)| c.is_control()) {
        return Err(KeyError::ControlCharacter {
            code: format!("U+{:04X}", u32::from(c)),
            offset,
        });
    }
    if text.starts_with('/') {
        return Err(KeyError::LeadingSlash);
    }
    if let Some(offset) = text.find("//") {
        return Err(KeyError::EmptySegment { offset: offset + 1 });
    }
    if kind == PathKind::Key && text.ends_with('/') {
        return Err(KeyError::TrailingSlash);
    }
    let mut segments: Vec<&str> = text.split('/').collect();
    if kind == PathKind::Prefix {
        // The last segment of a prefix is open: "app/." may match "app/.env".
        segments.pop();
    }
    if let Some(segment) = segments.into_iter().find(|s| *s == "." || *s == "..") {
        return Err(KeyError::DotSegment {
            segment: segment.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(text: &str) -> Result<Key, KeyError> {
        Key::parse(text, &Limits::default())
    }

    #[test]
    fn a_path_of_segments_is_a_key() {
        for text in [
            "app",
            "app/db/url",
            "a.b/c-d/e_f",
            "名前/値",
            "x/.env",
            "...",
        ] {
            assert_eq!(parse(text).map(|k| k.to_string()), Ok(text.to_owned()));
        }
    }

    #[test]
    fn each_broken_rule_has_its_own_error() {
        assert_eq!(parse(""), Err(KeyError::Empty));
        assert_eq!(parse("/app"), Err(KeyError::LeadingSlash));
        assert_eq!(parse("app/"), Err(KeyError::TrailingSlash));
        assert_eq!(parse("/"), Err(KeyError::LeadingSlash));
        assert_eq!(parse("app//db"), Err(KeyError::EmptySegment { offset: 4 }));
        assert_eq!(
            parse("app/../db"),
            Err(KeyError::DotSegment {
                segment: "..".into()
            })
        );
        assert_eq!(
            parse("."),
            Err(KeyError::DotSegment {
                segment: ".".into()
            })
        );
        assert_eq!(
            parse("app\n"),
            Err(KeyError::ControlCharacter {
                code: "U+000A".into(),
                offset: 3
            })
        );
        assert!(matches!(
            parse("a\u{85}b"),
            Err(KeyError::ControlCharacter { .. })
        ));
    }

    #[test]
    fn the_length_limit_counts_bytes_and_is_configurable() {
        let limits = Limits {
            max_key_bytes: 4,
            ..Limits::default()
        };
        assert!(Key::parse("abcd", &limits).is_ok());
        assert_eq!(
            Key::parse("abcde", &limits),
            Err(KeyError::TooLong { len: 5, max: 4 })
        );
        // "éé" is two characters but four bytes.
        assert!(Key::parse("éé", &limits).is_ok());
        assert!(Key::parse("ééa", &limits).is_err());
    }

    #[test]
    fn default_limit_is_four_kib() {
        assert!(parse(&"k".repeat(4096)).is_ok());
        assert!(matches!(
            parse(&"k".repeat(4097)),
            Err(KeyError::TooLong { .. })
        ));
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        assert_eq!(
            parse("app//db").unwrap_err().to_string(),
            "the key has an empty segment ('//') at byte 4"
        );
        assert_eq!(
            parse("a\tb").unwrap_err().to_string(),
            "the key contains the control character U+0009 at byte 1"
        );
    }

    fn segment() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._~é-]{1,8}".prop_filter("not a dot segment", |s| s != "." && s != "..")
    }

    proptest! {
        #[test]
        fn parsing_any_string_never_panics_and_accepted_keys_obey_the_rules(
            text in any::<String>(),
            max in 1usize..64,
        ) {
            let limits = Limits { max_key_bytes: max, ..Limits::default() };
            if let Ok(key) = Key::parse(&text, &limits) {
                let s = key.as_str();
                prop_assert_eq!(s, text.as_str());
                prop_assert!(!s.is_empty() && s.len() <= max);
                prop_assert!(!s.chars().any(char::is_control));
                for segment in s.split('/') {
                    prop_assert!(!segment.is_empty());
                    prop_assert!(segment != "." && segment != "..");
                }
            }
        }

        #[test]
        fn slash_joined_segments_are_accepted(
            segments in prop::collection::vec(segment(), 1..6),
        ) {
            let text = segments.join("/");
            prop_assert_eq!(parse(&text).map(|k| k.to_string()), Ok(text));
        }

        #[test]
        fn paths_of_slashes_and_dots_never_panic(text in "[/.a]{0,12}") {
            let _ = parse(&text);
        }
    }
}
