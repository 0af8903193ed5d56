//! [`KeyPrefix`]: which keys a list or a watch covers.
//!
//! A prefix matches the keys that start with its bytes, as in etcd:
//! `app/db` matches `app/db/url` and also `app/dbx`; `app/db/` matches only
//! what lies under `app/db`. The empty prefix matches every key. A prefix
//! obeys the key rules except that it may be empty, may end with `/`, and its
//! last segment may be partial.

use super::key::{Key, KeyError, PathKind, check_path};
use super::limits::Limits;

/// A validated key prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    /// Validates `text` as a prefix under `limits`.
    pub fn parse(text: &str, limits: &Limits) -> Result<Self, KeyError> {
        check_path(text, limits, PathKind::Prefix)?;
        Ok(Self(text.to_owned()))
    }

    /// The prefix that matches every key.
    pub fn everything() -> Self {
        Self(String::new())
    }

    /// Whether `key` starts with this prefix.
    pub fn matches(&self, key: &Key) -> bool {
        key.as_str().starts_with(&self.0)
    }

    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefix's bytes, where a scan of the stored keys starts.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(text: &str) -> Result<KeyPrefix, KeyError> {
        KeyPrefix::parse(text, &Limits::default())
    }

    fn key(text: &str) -> Key {
        Key::parse(text, &Limits::default()).unwrap()
    }

    #[test]
    fn a_prefix_may_be_empty_end_with_a_slash_or_stop_mid_segment() {
        for text in ["", "app/", "app/db", "app/d", "app/.", "a/.."] {
            assert!(parse(text).is_ok(), "{text:?} refused");
        }
    }

    #[test]
    fn a_prefix_refuses_what_no_key_could_start_with() {
        assert_eq!(parse("/"), Err(KeyError::LeadingSlash));
        assert_eq!(parse("/app"), Err(KeyError::LeadingSlash));
        assert_eq!(parse("app//"), Err(KeyError::EmptySegment { offset: 4 }));
        assert!(matches!(parse("app/../"), Err(KeyError::DotSegment { .. })));
        assert!(matches!(
            parse("a\u{0}"),
            Err(KeyError::ControlCharacter { .. })
        ));
        let limits = Limits {
            max_key_bytes: 3,
            ..Limits::default()
        };
        assert!(matches!(
            KeyPrefix::parse("abcd", &limits),
            Err(KeyError::TooLong { .. })
        ));
    }

    #[test]
    fn a_prefix_matches_keys_that_start_with_its_bytes() {
        let dir = parse("app/db/").unwrap();
        assert!(dir.matches(&key("app/db/url")));
        assert!(!dir.matches(&key("app/dbx")));
        let partial = parse("app/db").unwrap();
        assert!(partial.matches(&key("app/dbx")));
        assert!(partial.matches(&key("app/db")));
        assert!(KeyPrefix::everything().matches(&key("anything")));
    }

    proptest! {
        #[test]
        fn parsing_any_prefix_never_panics(text in any::<String>()) {
            if let Ok(prefix) = parse(&text) {
                prop_assert!(!prefix.as_str().starts_with('/'));
                prop_assert!(!prefix.as_str().contains("//"));
                prop_assert!(!prefix.as_str().chars().any(char::is_control));
            }
        }

        #[test]
        fn every_valid_key_is_a_valid_prefix_that_matches_itself(text in any::<String>()) {
            if let Ok(key) = Key::parse(&text, &Limits::default()) {
                let prefix = parse(&text);
                prop_assert!(prefix.is_ok());
                prop_assert!(prefix.unwrap().matches(&key));
            }
        }
    }
}
