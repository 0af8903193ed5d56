//! The member directory: each member's name and URLs, replicated through
//! the log so that every member (and a new one restored from a snapshot)
//! can reach the others.
//!
//! A [`MemberAddress`] enters the directory when the `AddLearner`
//! configuration entry that carries it (as its context) is applied, or when
//! a [`super::Command::SetMember`] is (a founding member announces itself
//! this way); it leaves when the member's `Remove` entry is applied. Rows
//! live in `kv_meta` under `member/` + the u64 big-endian node id.
//!
//! Encoding (the body, after the [`crate::codec`] version byte): `name |
//! peer_url | client_url`, each a u32-length-prefixed UTF-8 string of at
//! most [`MAX_FIELD_BYTES`]. A configuration entry's context and a member
//! row hold [`crate::codec::encode`]'s bytes.

use bytes::{Buf, BufMut};
use raftcfg_raft::NodeId;

use crate::codec::{Decode, DecodeError, Encode, get_bytes, put_bytes};

/// The longest name or URL accepted, in bytes.
pub const MAX_FIELD_BYTES: usize = 1024;

const ROW_PREFIX: &[u8] = b"member/";

/// Where one member is reached, and what it is called.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemberAddress {
    /// The member's name (a pod name on Kubernetes).
    pub name: String,
    /// The URL of its peer port.
    pub peer_url: String,
    /// The URL of its client API.
    pub client_url: String,
}

impl Encode for MemberAddress {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        put_bytes(out, self.name.as_bytes());
        put_bytes(out, self.peer_url.as_bytes());
        put_bytes(out, self.client_url.as_bytes());
    }
}

impl Decode for MemberAddress {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            name: get_text(input)?,
            peer_url: get_text(input)?,
            client_url: get_text(input)?,
        })
    }
}

/// The longest member name accepted (a DNS label is 63; a pod name 253).
pub const MAX_NAME_BYTES: usize = 253;

impl MemberAddress {
    /// Whether this address may enter the directory: a valid name and two
    /// valid URLs (see [`check_member_name`] and [`check_member_url`]). The
    /// API checks each field for its own error; the peer port checks a
    /// relayed address with this.
    pub fn check(&self) -> Result<(), String> {
        check_member_name(&self.name)?;
        check_member_url(&self.peer_url).map_err(|e| format!("peer URL: {e}"))?;
        check_member_url(&self.client_url).map_err(|e| format!("client URL: {e}"))
    }
}

/// Checks a member's name: 1 to [`MAX_NAME_BYTES`] bytes, without spaces
/// or control characters.
pub fn check_member_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > MAX_NAME_BYTES
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "the name must be 1 to {MAX_NAME_BYTES} bytes without spaces or control characters"
        ));
    }
    Ok(())
}

/// Checks a URL a member is reached at (`--advertise-peer`,
/// `--advertise-client`, the URLs of `member add`): `http://` or
/// `https://`, a host and optional port, nothing after them (peer and API
/// paths are appended to it), no credentials, at most [`MAX_FIELD_BYTES`].
/// The one check every such URL passes; the error says what is wrong.
pub fn check_member_url(url: &str) -> Result<(), String> {
    let example = "e.g. http://10.0.0.5:7380";
    let Some(authority) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(format!(
            "'{url}' does not start with http:// or https:// ({example})"
        ));
    };
    if authority.is_empty() {
        return Err(format!("'{url}' has no host ({example})"));
    }
    if url.len() > MAX_FIELD_BYTES {
        return Err(format!("the URL is longer than {MAX_FIELD_BYTES} bytes"));
    }
    if authority.contains(['/', '?', '#']) {
        return Err(format!(
            "'{url}' has a path, query or fragment; give only the host and port ({example})"
        ));
    }
    if url.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} contains spaces or control characters"));
    }
    if authority.contains('@') {
        return Err(format!(
            "'{url}' carries credentials; give only the host and port"
        ));
    }
    raftcfg_client::parse_endpoint(url).map_err(|e| match e {
        raftcfg_client::ClientError::InvalidEndpoint { reason, .. } => {
            format!("'{url}' is not a URL: {reason} ({example})")
        }
        other => format!("'{url}': {other}"),
    })?;
    Ok(())
}

fn get_text<B: Buf>(input: &mut B) -> Result<String, DecodeError> {
    let bytes = get_bytes(input)?;
    if bytes.len() > MAX_FIELD_BYTES {
        return Err(DecodeError::invalid("a member name or URL is too long"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::InvalidUtf8)
}

/// The `kv_meta` row key of a member's address.
pub(crate) fn row_key(id: NodeId) -> Vec<u8> {
    let mut key = ROW_PREFIX.to_vec();
    key.extend_from_slice(&id.get().to_be_bytes());
    key
}

/// The node id of a `kv_meta` row key, if it is a member row.
pub(crate) fn parse_row_key(key: &[u8]) -> Option<NodeId> {
    let id = key.strip_prefix(ROW_PREFIX)?;
    Some(NodeId(u64::from_be_bytes(id.try_into().ok()?)))
}

/// The first key after every member row, for range scans.
pub(crate) fn row_key_end() -> Vec<u8> {
    let mut key = ROW_PREFIX.to_vec();
    key.extend_from_slice(&[0xff; 9]);
    key
}

/// The first member row key.
pub(crate) fn row_key_start() -> &'static [u8] {
    ROW_PREFIX
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};

    fn sample() -> MemberAddress {
        MemberAddress {
            name: "raftcfg-0".into(),
            peer_url: "http://raftcfg-0.peers:7380".into(),
            client_url: "http://raftcfg-0.peers:7379".into(),
        }
    }

    #[test]
    fn an_address_round_trips() {
        assert_eq!(
            decode::<MemberAddress>(&encode(&sample())[..]),
            Ok(sample())
        );
    }

    #[test]
    fn truncated_or_trailing_bytes_are_refused() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            assert!(decode::<MemberAddress>(&bytes[..len]).is_err());
        }
        let mut longer = bytes;
        longer.push(0);
        assert!(decode::<MemberAddress>(&longer[..]).is_err());
    }

    #[test]
    fn a_member_url_is_a_scheme_a_host_and_an_optional_port() {
        for url in [
            "http://10.0.0.5:7380",
            "https://raftcfg-0.raftcfg-peers.ns.svc:7380",
            "http://[::1]:7379",
            "http://localhost",
        ] {
            assert_eq!(check_member_url(url), Ok(()), "{url}");
        }
        let too_long = format!("http://{}:7380", "a".repeat(MAX_FIELD_BYTES));
        for (url, says) in [
            ("10.0.0.5:7380", "does not start with http://"),
            ("ftp://10.0.0.5:7380", "does not start with http://"),
            ("http://", "has no host"),
            ("http://:7380", "is not a URL"),
            ("http://10.0.0.5:7380/", "has a path"),
            ("http://10.0.0.5:7380/raft", "has a path"),
            ("http://10.0.0.5:7380?x=1", "query"),
            ("http://user:pw@10.0.0.5:7380", "credentials"),
            ("http://10.0.0.5:7380 ", "spaces"),
            ("http://10.0.0.5:99999", "is not a URL"),
            (too_long.as_str(), "longer than"),
        ] {
            let error = check_member_url(url).expect_err(url);
            assert!(error.contains(says), "{url}: {error}");
        }
    }

    #[test]
    fn row_keys_round_trip_and_sort_by_id() {
        let id = NodeId(0x0102_0304_0506_0708);
        assert_eq!(parse_row_key(&row_key(id)), Some(id));
        assert!(row_key(NodeId(1)) < row_key(NodeId(256)));
        assert!(row_key(NodeId(u64::MAX)).as_slice() < row_key_end().as_slice());
        assert_eq!(parse_row_key(b"state"), None);
    }
}
