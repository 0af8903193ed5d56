//! The entry points of the fuzz targets (`node/fuzz/`), shared with the
//! stable test that replays their corpora: each takes untrusted bytes and
//! must return without panicking, whatever they are.

use crate::codec::{self, MessageBatch, decode};
use crate::kv::{Key, KeyPrefix, Limits};

/// Decodes `bytes` as a peer request body; a valid batch must re-encode to
/// the same bytes.
pub fn peer_message(bytes: &[u8]) {
    if let Ok(batch) = decode::<MessageBatch>(bytes) {
        assert_eq!(
            codec::encode(&batch),
            bytes,
            "a decoded batch re-encodes exactly"
        );
    }
}

/// Parses `bytes`, if UTF-8, as a key and as a prefix; a valid key must
/// give back its text.
pub fn key(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let limits = Limits::default();
    if let Ok(key) = Key::parse(text, &limits) {
        assert_eq!(key.as_str(), text);
    }
    let _ = KeyPrefix::parse(text, &limits);
}
