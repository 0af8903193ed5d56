//! [`Limits`]: how large a key and a value may be.
//!
//! The limits are an admission check made by the API before it proposes a
//! command, never a rule of applying one: members may be configured
//! differently, and applying must give the same result on every member.

/// Size limits on what clients may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest key accepted, in bytes of UTF-8.
    pub max_key_bytes: usize,
    /// The largest value accepted, in bytes.
    pub max_value_bytes: usize,
}

impl Limits {
    /// The default longest key: 4 KiB.
    pub const DEFAULT_MAX_KEY_BYTES: usize = 4 * 1024;
    /// The default largest value: 1 MiB.
    pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024 * 1024;

    /// The most `--max-key-bytes` may be set to: 64 KiB.
    pub const MAX_KEY_BYTES_CEILING: usize = 64 * 1024;
    /// The most `--max-value-bytes` may be set to: 32 MiB. A value travels
    /// whole in one Raft entry, one peer request and one apply batch, and
    /// readers hold it whole, so the ceiling bounds what one write can make
    /// every member buffer.
    pub const MAX_VALUE_BYTES_CEILING: usize = 32 * 1024 * 1024;

    /// Limits within the ceilings, or why not.
    pub fn new(max_key_bytes: usize, max_value_bytes: usize) -> Result<Self, String> {
        if max_key_bytes == 0 || max_key_bytes > Self::MAX_KEY_BYTES_CEILING {
            return Err(format!(
                "the largest key must be between 1 and {} bytes, got {max_key_bytes}",
                Self::MAX_KEY_BYTES_CEILING
            ));
        }
        if max_value_bytes > Self::MAX_VALUE_BYTES_CEILING {
            return Err(format!(
                "the largest value must be at most {} bytes ({} MiB), got {max_value_bytes}",
                Self::MAX_VALUE_BYTES_CEILING,
                Self::MAX_VALUE_BYTES_CEILING >> 20
            ));
        }
        Ok(Self {
            max_key_bytes,
            max_value_bytes,
        })
    }

    /// The largest encoded write command these limits admit (key, value
    /// and framing), which bounds a Raft entry's size.
    pub fn max_command_bytes(&self) -> usize {
        self.max_key_bytes + self.max_value_bytes + 64
    }

    /// Checks a value's size against [`Limits::max_value_bytes`].
    pub fn check_value(&self, value: &[u8]) -> Result<(), ValueTooLarge> {
        if value.len() > self.max_value_bytes {
            return Err(ValueTooLarge {
                len: value.len(),
                max: self.max_value_bytes,
            });
        }
        Ok(())
    }

    /// No practical limit: what applying a replicated command checks against,
    /// since the structure of a key is a rule of the state machine and its
    /// size is not.
    pub(crate) const fn unbounded() -> Self {
        Self {
            max_key_bytes: usize::MAX,
            max_value_bytes: usize::MAX,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_bytes: Self::DEFAULT_MAX_KEY_BYTES,
            max_value_bytes: Self::DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

/// A value is larger than [`Limits::max_value_bytes`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the value is {len} bytes, more than the limit of {max}")]
pub struct ValueTooLarge {
    /// The value's size in bytes.
    pub len: usize,
    /// The limit in bytes.
    pub max: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_four_kib_keys_and_one_mib_values() {
        let limits = Limits::default();
        assert_eq!(limits.max_key_bytes, 4096);
        assert_eq!(limits.max_value_bytes, 1 << 20);
    }

    #[test]
    fn limits_beyond_the_ceilings_are_refused_with_the_ceiling() {
        assert!(Limits::new(4096, Limits::MAX_VALUE_BYTES_CEILING).is_ok());
        let error = Limits::new(4096, Limits::MAX_VALUE_BYTES_CEILING + 1).unwrap_err();
        assert!(error.contains("32 MiB"), "{error}");
        assert!(Limits::new(0, 10).is_err());
        assert!(Limits::new(Limits::MAX_KEY_BYTES_CEILING + 1, 10).is_err());
    }

    #[test]
    fn a_value_at_the_limit_is_accepted_and_one_byte_more_is_not() {
        let limits = Limits {
            max_key_bytes: 8,
            max_value_bytes: 3,
        };
        assert_eq!(limits.check_value(b"abc"), Ok(()));
        assert_eq!(
            limits.check_value(b"abcd"),
            Err(ValueTooLarge { len: 4, max: 3 })
        );
    }
}
