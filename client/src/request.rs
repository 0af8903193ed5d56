//! [`Call`]: one request described independently of the endpoint it goes
//! to (method, path, query, headers, body, and whether it may be repeated
//! elsewhere), and the public options that shape it: [`Precondition`] and
//! [`Consistency`]. Keys travel in the URL path (`app/db/url` →
//! `/v1/kv/app/db/url`), each segment percent-encoded; keys the URL would
//! not carry as themselves are refused here.

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Url};

use crate::error::ClientError;

/// A condition a write must meet to take effect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precondition {
    /// Unconditional.
    #[default]
    None,
    /// Only if the key's mod_revision is this (`If-Match: "<rev>"`);
    /// compare-and-swap.
    ModRevision(u64),
    /// Only if the key does not exist (`If-None-Match: *`); create-only.
    Absent,
}

/// How a read is served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read began (ReadIndex).
    #[default]
    Linearizable,
    /// Served from the answering node's state, which may lag.
    Serializable,
}

/// Whether a request may be repeated on another endpoint after a failure
/// that may have reached the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Repeating is harmless: any failure moves on.
    Read,
    /// Moves on only when the request certainly had no effect.
    Write,
    /// Goes to one endpoint only, never another.
    Pinned,
}

/// One request, described independently of the endpoint it goes to.
pub(crate) struct Call {
    /// What is attempted, for messages (`put of app/x`).
    pub(crate) operation: String,
    pub(crate) method: Method,
    /// Path segments after the endpoint's own path, each percent-encoded
    /// when the URL is built.
    pub(crate) segments: Vec<String>,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
    /// JSON body content type.
    pub(crate) json: bool,
    pub(crate) retry: Retry,
    /// Whether the body is a stream read after `execute` returns (no
    /// whole-request timeout, only one until the headers arrive).
    pub(crate) streaming: bool,
}

impl Call {
    pub(crate) fn new(
        operation: impl Into<String>,
        method: Method,
        path: &[&str],
        retry: Retry,
    ) -> Self {
        Self {
            operation: operation.into(),
            method,
            segments: path.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: None,
            json: false,
            retry,
            streaming: false,
        }
    }

    pub(crate) fn key(mut self, key: &str) -> Result<Self, ClientError> {
        check_key(key)?;
        self.segments.extend(key.split('/').map(str::to_owned));
        Ok(self)
    }

    pub(crate) fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    pub(crate) fn consistency(self, consistency: Consistency) -> Self {
        match consistency {
            Consistency::Linearizable => self,
            Consistency::Serializable => self.query("consistency", "serializable"),
        }
    }

    pub(crate) fn precondition(mut self, precondition: Precondition) -> Self {
        match precondition {
            Precondition::None => {}
            Precondition::ModRevision(revision) => {
                let value = HeaderValue::from_str(&format!("\"{revision}\""))
                    .expect("a quoted number is a valid header value");
                self.headers.insert(header::IF_MATCH, value);
            }
            Precondition::Absent => {
                self.headers
                    .insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
            }
        }
        self
    }

    pub(crate) fn json_body(mut self, body: &impl serde::Serialize) -> Self {
        let bytes = serde_json::to_vec(body).expect("wire types serialize to JSON");
        self.body = Some(Bytes::from(bytes));
        self.json = true;
        self
    }

    pub(crate) fn url(&self, base: &Url) -> Url {
        let mut url = base.clone();
        url.path_segments_mut()
            .expect("endpoints are validated to be http(s) URLs, which have paths")
            .pop_if_empty()
            .extend(&self.segments);
        if !self.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &self.query {
                pairs.append_pair(name, value);
            }
        }
        url
    }
}

/// Refuses keys that would not reach the server as themselves: URL
/// parsers drop `.` and `..` segments, so `a/../b` would address `b`.
fn check_key(key: &str) -> Result<(), ClientError> {
    let invalid = |reason| {
        Err(ClientError::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return invalid("the key is empty");
    }
    if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return invalid("a key may not have a '.' or '..' segment");
    }
    Ok(())
}

/// `GET /v1/node`, with the state digest if `digest`.
pub(crate) fn node_status_call(digest: bool) -> Call {
    let call = Call::new("node status", Method::GET, &["v1", "node"], Retry::Read);
    if digest {
        call.query("digest", true)
    } else {
        call
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::parse_endpoint;

    #[test]
    fn keys_become_percent_encoded_path_segments() {
        let base = parse_endpoint("http://h:1/base/").unwrap();
        let call = Call::new("t", Method::GET, &["v1", "kv"], Retry::Read)
            .key("app/my key/ü?#%\\x")
            .unwrap()
            .query("prefix", "a b&c");
        assert_eq!(
            call.url(&base).as_str(),
            "http://h:1/base/v1/kv/app/my%20key/%C3%BC%3F%23%25%5Cx?prefix=a+b%26c"
        );
    }

    #[test]
    fn dot_segments_are_refused_because_urls_drop_them() {
        for key in ["", "a/../b", "./a", "a/."] {
            assert!(
                matches!(check_key(key), Err(ClientError::InvalidKey { .. })),
                "{key}"
            );
        }
        assert!(check_key("a/.b/c..").is_ok());
    }

    #[test]
    fn preconditions_become_conditional_headers() {
        let call = Call::new("t", Method::PUT, &[], Retry::Write)
            .precondition(Precondition::ModRevision(42));
        assert_eq!(call.headers[header::IF_MATCH], "\"42\"");
        let call =
            Call::new("t", Method::PUT, &[], Retry::Write).precondition(Precondition::Absent);
        assert_eq!(call.headers[header::IF_NONE_MATCH], "*");
    }
}
