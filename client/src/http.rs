//! [`Client`]: a typed async client for the node's HTTP API (docs/design.md §3).
//!
//! A client holds a list of endpoints (the client URLs of some members) and
//! one pooled HTTP connection set. Each request goes to the endpoint that
//! answered last and moves on to the next one only when that is safe:
//!
//! ```text
//!                    connect failure  503         other 5xx        timeout or reset
//!                    (nothing sent)   (refused)   (maybe applied)  (maybe applied)
//!   read  (GET)      next endpoint    next        next endpoint    next endpoint
//!   write (PUT, ...) next endpoint    next        returned         UnknownOutcome
//! ```
//!
//! Every endpoint is tried at most once per request, and an endpoint that
//! answers becomes the first choice of the next one; `bootstrap` and
//! `node_status_of` go to one endpoint only. A write whose request
//! may have reached a server is never repeated: its outcome is unknown and
//! the caller is told so ([`ClientError::UnknownOutcome`]) rather than told
//! it failed.
//!
//! Keys travel in the URL path (`app/db/url` → `/v1/kv/app/db/url`), each
//! segment percent-encoded. A watch is a Server-Sent Events stream parsed
//! here; it reconnects on its own and resumes after the last event it
//! delivered. This module does not know how the server works, only the
//! contract of its responses.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, Url};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncWrite, AsyncWriteExt};

pub use reqwest::StatusCode;

use crate::wire::{
    AddMemberRequest, BootstrapResponse, ErrorBody, KeyValue, ListResponse, MemberList,
    MembershipResponse, NodeStatus, TransferLeaderRequest, TransferLeaderResponse, WatchEvent,
    WatchEventKind, WriteResponse,
};

/// How long a request with a small body may take, from connecting to the
/// last byte of the answer, unless [`ClientOptions`] say otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to one endpoint may take before the next is tried.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a watch or snapshot stream may stay silent (no event, no
/// keep-alive comment, no bytes) before the connection is considered dead.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a broken watch keeps trying to reconnect before it gives up.
pub const DEFAULT_WATCH_RECONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The response header with the store's revision when a key was read.
const REVISION_HEADER: &str = "x-raftcfg-revision";
const CREATE_REVISION_HEADER: &str = "x-raftcfg-create-revision";
const MOD_REVISION_HEADER: &str = "x-raftcfg-mod-revision";
const VERSION_HEADER: &str = "x-raftcfg-version";

/// The error code of a server that stopped waiting for a write (504): it
/// may or may not take effect.
const OUTCOME_UNKNOWN: &str = "outcome_unknown";

/// The longest SSE line accepted: a 1 MiB value is about 1.4 MiB of base64.
const MAX_SSE_LINE_BYTES: usize = 8 * 1024 * 1024;
/// The most of an unexpected (non-JSON) error body quoted in an error.
const MAX_QUOTED_BODY_CHARS: usize = 200;

/// Timeouts of a [`Client`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Whole-request limit for everything except watch and snapshot bodies.
    pub request_timeout: Duration,
    /// Limit on connecting to one endpoint.
    pub connect_timeout: Duration,
    /// Longest silence on a watch or snapshot stream.
    pub stream_idle_timeout: Duration,
    /// How long a watch retries after losing its connection.
    pub watch_reconnect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            stream_idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
            watch_reconnect_timeout: DEFAULT_WATCH_RECONNECT_TIMEOUT,
        }
    }
}

/// Why a request failed. Each variant's message is one sentence.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client was given no endpoint.
    #[error("no endpoints given; pass at least one http:// or https:// URL")]
    NoEndpoints,
    /// An endpoint is not an http:// or https:// URL.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key cannot be addressed in a URL path.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The HTTP client could not be set up (e.g. no TLS roots).
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    /// The server answered with an error status. `code` is the body's
    /// `error.code` (`precondition_failed`, `not_found`, `no_leader`, ...),
    /// or `None` when the body was not the documented JSON shape (then
    /// `message` quotes the body).
    #[error(
        "{endpoint} answered {status}{}: {message}",
        code.as_deref().map(|code| format!(" ({code})")).unwrap_or_default()
    )]
    Api {
        /// The endpoint that answered.
        endpoint: String,
        /// The HTTP status.
        status: StatusCode,
        /// The machine-readable code, if the body had one.
        code: Option<String>,
        /// The server's sentence, or the start of the body.
        message: String,
        /// The `Retry-After` header of a 503, in whole seconds.
        retry_after: Option<Duration>,
    },
    /// No endpoint could be reached, or a stream broke off.
    #[error("{detail}")]
    Transport {
        /// Which endpoints failed and how.
        detail: String,
    },
    /// A write (or membership change) was sent, but no answer came back: it
    /// may or may not have taken effect. It was not retried.
    #[error(
        "the {operation} sent to {endpoint} may or may not have taken effect ({reason}); \
         check the current state before retrying"
    )]
    UnknownOutcome {
        /// What was attempted, e.g. `put of app/db/url`.
        operation: String,
        /// The endpoint it was sent to.
        endpoint: String,
        /// What happened to the request.
        reason: String,
    },
    /// The server's answer did not follow the API contract.
    #[error("{endpoint} sent a response that does not follow the API: {reason}")]
    BadResponse {
        /// The endpoint that answered.
        endpoint: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Writing a downloaded snapshot to its destination failed.
    #[error("cannot write the snapshot: {0}")]
    Write(#[from] std::io::Error),
}

impl ClientError {
    /// The API error code (`precondition_failed`, `not_found`, ...), if the
    /// server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether a compare-and-swap or create-only precondition did not hold
    /// (412 `precondition_failed`).
    pub fn is_precondition_failed(&self) -> bool {
        self.status() == Some(StatusCode::PRECONDITION_FAILED)
    }

    /// Whether the key (or member) does not exist (404 `not_found`).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND) && self.code() == Some("not_found")
    }

    /// Whether the outcome of a write is unknown.
    pub fn is_unknown_outcome(&self) -> bool {
        matches!(self, Self::UnknownOutcome { .. })
    }
}

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

/// A key's value and metadata, as `GET /v1/kv/{key}` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The value's bytes.
    pub bytes: Bytes,
    /// Revision of the key's creation.
    pub create_revision: u64,
    /// Revision of its last modification (its ETag).
    pub mod_revision: u64,
    /// Modifications since creation.
    pub version: u64,
    /// The store's revision when the key was read.
    pub revision: u64,
}

impl KeyValue {
    /// The value's bytes, decoded from base64.
    pub fn value(&self) -> Result<Vec<u8>, base64::DecodeError> {
        BASE64.decode(&self.value_base64)
    }
}

impl WatchEvent {
    /// The new value's bytes for a put, decoded from base64; `None` for a
    /// delete.
    pub fn value(&self) -> Option<Result<Vec<u8>, base64::DecodeError>> {
        self.value_base64.as_ref().map(|v| BASE64.decode(v))
    }
}

/// A typed client of the node's HTTP API. Cloning is cheap; clones share
/// connections and the remembered endpoint.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    endpoints: Arc<[Url]>,
    /// Index of the endpoint that answered last: where the next request
    /// starts.
    preferred: Arc<AtomicUsize>,
    options: ClientOptions,
}

/// Whether a request may be repeated on another endpoint after a failure
/// that may have reached the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    /// Repeating is harmless: any failure moves on.
    Read,
    /// Moves on only when the request certainly had no effect.
    Write,
    /// Goes to one endpoint only, never another.
    Pinned,
}

/// One request, described independently of the endpoint it goes to.
struct Call {
    /// What is attempted, for messages (`put of app/x`).
    operation: String,
    method: Method,
    /// Path segments after the endpoint's own path, each percent-encoded
    /// when the URL is built.
    segments: Vec<String>,
    query: Vec<(&'static str, String)>,
    headers: HeaderMap,
    body: Option<Bytes>,
    /// JSON body content type.
    json: bool,
    retry: Retry,
    /// Whether the body is a stream read after `execute` returns (no
    /// whole-request timeout, only one until the headers arrive).
    streaming: bool,
}

impl Call {
    fn new(operation: impl Into<String>, method: Method, path: &[&str], retry: Retry) -> Self {
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

    fn key(mut self, key: &str) -> Result<Self, ClientError> {
        check_key(key)?;
        self.segments.extend(key.split('/').map(str::to_owned));
        Ok(self)
    }

    fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    fn consistency(self, consistency: Consistency) -> Self {
        match consistency {
            Consistency::Linearizable => self,
            Consistency::Serializable => self.query("consistency", "serializable"),
        }
    }

    fn precondition(mut self, precondition: Precondition) -> Self {
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

    fn json_body(mut self, body: &impl serde::Serialize) -> Self {
        let bytes = serde_json::to_vec(body).expect("wire types serialize to JSON");
        self.body = Some(Bytes::from(bytes));
        self.json = true;
        self
    }

    fn url(&self, base: &Url) -> Url {
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

/// Parses and checks one endpoint: an http:// or https:// URL with a host
/// and no query or fragment.
fn parse_endpoint(endpoint: &str) -> Result<Url, ClientError> {
    let invalid = |reason: String| ClientError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let url = Url::parse(endpoint.trim()).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "the scheme is {:?}; use http:// or https://",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("there is no host".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "an endpoint may not have a query or fragment".to_owned(),
        ));
    }
    Ok(url)
}

/// What a failed `send` tells a person: reqwest's own message is only
/// "error sending request for url"; the causes underneath say why.
fn describe(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        // hyper-util's "client error (Connect)" only repeats the kind.
        let noise = text.is_empty() || text.starts_with("client error (");
        if !noise && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        parts.push(error.to_string());
    }
    let mut text = parts.join(": ");
    if error.is_timeout() && !text.contains("timed out") {
        text = format!("timed out ({text})");
    }
    text
}

/// An endpoint as people read it: without the trailing slash Url adds.
fn show(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

impl Client {
    /// A client of the cluster reachable at `endpoints` (each an http:// or
    /// https:// URL, e.g. `http://10.0.0.1:7379`), with default timeouts.
    pub fn new<I, S>(endpoints: I) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::with_options(endpoints, ClientOptions::default())
    }

    /// Like [`Client::new`], with the given timeouts.
    pub fn with_options<I, S>(endpoints: I, options: ClientOptions) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let endpoints = endpoints
            .into_iter()
            .map(|e| parse_endpoint(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            // Shorter than the node's idle timeout (60 s), so a pooled
            // connection is dropped here before the node closes it.
            .pool_idle_timeout(Duration::from_secs(30))
            // A redirect would repeat a write somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Setup(describe(&e)))?;
        Ok(Self {
            http,
            endpoints: endpoints.into(),
            preferred: Arc::new(AtomicUsize::new(0)),
            options,
        })
    }

    /// The endpoints, as parsed.
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.iter().map(show).collect()
    }

    /// Reads `key`; `None` if it does not exist.
    pub async fn get(
        &self,
        key: &str,
        consistency: Consistency,
    ) -> Result<Option<Value>, ClientError> {
        let call = Call::new(
            format!("get of {key}"),
            Method::GET,
            &["v1", "kv"],
            Retry::Read,
        )
        .key(key)?
        .consistency(consistency);
        let (endpoint, response) = match self.execute(&call).await {
            Ok(answer) => answer,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let headers = response.headers().clone();
        let header = |name: &str| -> Result<u64, ClientError> {
            let value = headers.get(name).ok_or_else(|| ClientError::BadResponse {
                endpoint: show(&endpoint),
                reason: format!("the {name} header is missing"),
            })?;
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| ClientError::BadResponse {
                    endpoint: show(&endpoint),
                    reason: format!("the {name} header is not a number"),
                })
        };
        let create_revision = header(CREATE_REVISION_HEADER)?;
        let mod_revision = header(MOD_REVISION_HEADER)?;
        let version = header(VERSION_HEADER)?;
        let revision = header(REVISION_HEADER)?;
        let bytes = read_body(&endpoint, response).await?;
        Ok(Some(Value {
            bytes,
            create_revision,
            mod_revision,
            version,
            revision,
        }))
    }

    /// Writes `value` at `key` if `precondition` holds (412
    /// `precondition_failed` otherwise).
    pub async fn put(
        &self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<WriteResponse, ClientError> {
        let mut call = Call::new(
            format!("put of {key}"),
            Method::PUT,
            &["v1", "kv"],
            Retry::Write,
        )
        .key(key)?
        .precondition(precondition);
        call.body = Some(value);
        self.json(&call).await
    }

    /// Deletes `key` if `precondition` holds; 404 `not_found` if it does not
    /// exist. [`Precondition::Absent`] is sent as `If-None-Match: *` and can
    /// only fail.
    pub async fn delete(
        &self,
        key: &str,
        precondition: Precondition,
    ) -> Result<WriteResponse, ClientError> {
        let call = Call::new(
            format!("delete of {key}"),
            Method::DELETE,
            &["v1", "kv"],
            Retry::Write,
        )
        .key(key)?
        .precondition(precondition);
        self.json(&call).await
    }

    /// One page of the keys that start with `prefix`, in key order, after
    /// `start_after` if given. Ask again with `start_after` = the last key
    /// while `more` is true.
    pub async fn list(
        &self,
        prefix: &str,
        limit: Option<u32>,
        start_after: Option<&str>,
        consistency: Consistency,
    ) -> Result<ListResponse, ClientError> {
        let mut call = Call::new(
            format!("list of {prefix:?}"),
            Method::GET,
            &["v1", "kv"],
            Retry::Read,
        )
        .query("prefix", prefix);
        if let Some(limit) = limit {
            call = call.query("limit", limit);
        }
        if let Some(start_after) = start_after {
            call = call.query("start_after", start_after);
        }
        self.json(&call.consistency(consistency)).await
    }

    /// Every put and delete under `prefix`, in revision order, from
    /// `from_revision` (inclusive) or, if `None`, from the first change after
    /// the watch starts.
    ///
    /// The stream ends after its first error. When the connection drops it
    /// reconnects (to any endpoint) and resumes after the last event
    /// delivered, for up to [`ClientOptions::watch_reconnect_timeout`]; a
    /// revision that was compacted meanwhile ends it with 410 `compacted`.
    /// When `from_revision` is `None` the starting revision is learned with
    /// a linearizable list first, so that a reconnect misses nothing.
    pub fn watch(
        &self,
        prefix: &str,
        from_revision: Option<u64>,
    ) -> impl Stream<Item = Result<WatchEvent, ClientError>> + Send + Unpin + 'static {
        let state = WatchState::new(self.clone(), prefix, from_revision);
        futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        })
        .boxed()
    }

    /// The member list, as the answering node knows it.
    pub async fn members(&self) -> Result<MemberList, ClientError> {
        let call = Call::new(
            "member list",
            Method::GET,
            &["v1", "cluster", "members"],
            Retry::Read,
        );
        self.json(&call).await
    }

    /// Adds a node as a learner; answers once the change is committed.
    pub async fn add_member(
        &self,
        request: &AddMemberRequest,
    ) -> Result<MembershipResponse, ClientError> {
        let call = Call::new(
            format!("addition of member {}", request.node_id),
            Method::POST,
            &["v1", "cluster", "members"],
            Retry::Write,
        )
        .json_body(request);
        self.json(&call).await
    }

    /// Promotes a learner to voter (409 `learner_not_caught_up` if it lags).
    pub async fn promote(&self, node_id: u64) -> Result<MembershipResponse, ClientError> {
        let id = node_id.to_string();
        let call = Call::new(
            format!("promotion of member {node_id}"),
            Method::POST,
            &["v1", "cluster", "members", &id, "promote"],
            Retry::Write,
        );
        self.json(&call).await
    }

    /// Removes a member.
    pub async fn remove_member(&self, node_id: u64) -> Result<MembershipResponse, ClientError> {
        let id = node_id.to_string();
        let call = Call::new(
            format!("removal of member {node_id}"),
            Method::DELETE,
            &["v1", "cluster", "members", &id],
            Retry::Write,
        );
        self.json(&call).await
    }

    /// Transfers leadership to `to`, or to the most caught-up voter.
    pub async fn transfer_leader(
        &self,
        to: Option<u64>,
    ) -> Result<TransferLeaderResponse, ClientError> {
        let call = Call::new(
            "leadership transfer",
            Method::POST,
            &["v1", "cluster", "leader"],
            Retry::Write,
        )
        .json_body(&TransferLeaderRequest { to });
        self.json(&call).await
    }

    /// Bootstraps the node at the *first* endpoint into a one-voter cluster
    /// (409 `already_initialized` if it has one). Never sent to another
    /// endpoint: that would found the cluster on a different node.
    pub async fn bootstrap(&self) -> Result<BootstrapResponse, ClientError> {
        let call = Call::new(
            "bootstrap",
            Method::POST,
            &["v1", "cluster", "bootstrap"],
            Retry::Pinned,
        );
        let (endpoint, response) = self.execute_on(&self.endpoints[..1], 0, &call).await?;
        decode_json(&endpoint, response).await
    }

    /// The status of whichever endpoint answers first (the answer names
    /// the node).
    pub async fn node_status(&self) -> Result<NodeStatus, ClientError> {
        self.json(&node_status_call(false)).await
    }

    /// The status of the node at `endpoint` (e.g. a member's client URL),
    /// asked with this client's connections and timeouts; no failover.
    pub async fn node_status_of(&self, endpoint: &str) -> Result<NodeStatus, ClientError> {
        self.node_status_on(endpoint, node_status_call(false)).await
    }

    /// [`Client::node_status_of`] with the digest of the node's state
    /// ([`NodeStatus::state_digest`]); the node reads its whole state to
    /// compute it unless it has it for the current applied index.
    pub async fn node_status_with_digest_of(
        &self,
        endpoint: &str,
    ) -> Result<NodeStatus, ClientError> {
        self.node_status_on(endpoint, node_status_call(true)).await
    }

    async fn node_status_on(&self, endpoint: &str, call: Call) -> Result<NodeStatus, ClientError> {
        let endpoint = [parse_endpoint(endpoint)?];
        let (endpoint, response) = self.execute_on(&endpoint, 0, &call).await?;
        decode_json(&endpoint, response).await
    }

    /// Streams a consistent backup of the state into `writer` and returns
    /// the number of bytes written. The writer is flushed, not synced.
    pub async fn snapshot<W>(&self, writer: W) -> Result<u64, ClientError>
    where
        W: AsyncWrite + Unpin,
    {
        let mut writer = writer;
        let mut call = Call::new("snapshot", Method::GET, &["v1", "snapshot"], Retry::Read);
        call.streaming = true;
        let (endpoint, response) = self.execute(&call).await?;
        let mut body = response.bytes_stream();
        let mut written: u64 = 0;
        loop {
            let next = tokio::time::timeout(self.options.stream_idle_timeout, body.next()).await;
            let reason = match next {
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => {
                    writer.write_all(&chunk).await?;
                    written += chunk.len() as u64;
                    continue;
                }
                Ok(Some(Err(e))) => describe(&e),
                Err(_) => "no data for too long".to_owned(),
            };
            return Err(ClientError::Transport {
                detail: format!(
                    "the snapshot from {} broke off after {written} bytes: {reason}",
                    show(&endpoint)
                ),
            });
        }
        writer.flush().await?;
        Ok(written)
    }

    /// Sends `call` with failover and decodes a JSON answer.
    async fn json<T: DeserializeOwned>(&self, call: &Call) -> Result<T, ClientError> {
        let (endpoint, response) = self.execute(call).await?;
        decode_json(&endpoint, response).await
    }

    /// Sends `call` to the remembered endpoint, then the others, under the
    /// failover rules of the module doc. Returns a successful (2xx) answer;
    /// any other status becomes [`ClientError::Api`].
    async fn execute(&self, call: &Call) -> Result<(Url, Response), ClientError> {
        let start = self.preferred.load(Ordering::Relaxed) % self.endpoints.len();
        let (endpoint, response) = self.execute_on(&self.endpoints, start, call).await?;
        if let Some(index) = self.endpoints.iter().position(|e| *e == endpoint) {
            self.preferred.store(index, Ordering::Relaxed);
        }
        Ok((endpoint, response))
    }

    /// Tries each of `endpoints` at most once, starting at `start`.
    async fn execute_on(
        &self,
        endpoints: &[Url],
        start: usize,
        call: &Call,
    ) -> Result<(Url, Response), ClientError> {
        let mut unreachable: Vec<String> = Vec::new();
        let mut refused: Option<ClientError> = None;
        for step in 0..endpoints.len() {
            let endpoint = &endpoints[(start + step) % endpoints.len()];
            let mut request = self
                .http
                .request(call.method.clone(), call.url(endpoint))
                .headers(call.headers.clone());
            if let Some(body) = &call.body {
                request = request.body(body.clone());
            }
            if call.json {
                request = request.header(header::CONTENT_TYPE, "application/json");
            }
            let sent = if call.streaming {
                // The body is read later; limit only the wait for headers.
                match tokio::time::timeout(self.options.request_timeout, request.send()).await {
                    Ok(result) => result.map_err(|e| (e.is_connect(), describe(&e))),
                    Err(_) => Err((false, "timed out waiting for an answer".to_owned())),
                }
            } else {
                request
                    .timeout(self.options.request_timeout)
                    .send()
                    .await
                    .map_err(|e| (e.is_connect(), describe(&e)))
            };
            match sent {
                Ok(response) if response.status().is_success() => {
                    return Ok((endpoint.clone(), response));
                }
                Ok(response) => {
                    let status = response.status();
                    let error = api_error(endpoint, response).await;
                    if call.retry != Retry::Read && error.code() == Some(OUTCOME_UNKNOWN) {
                        return Err(ClientError::UnknownOutcome {
                            operation: call.operation.clone(),
                            endpoint: show(endpoint),
                            reason: format!("the server answered {status} {OUTCOME_UNKNOWN}"),
                        });
                    }
                    let next = match call.retry {
                        Retry::Read => status.is_server_error(),
                        Retry::Write => status == StatusCode::SERVICE_UNAVAILABLE,
                        Retry::Pinned => false,
                    };
                    if !next {
                        return Err(error);
                    }
                    refused = Some(error);
                }
                // Not connected, so nothing was sent: safe to move on.
                Err((true, reason)) => unreachable.push(format!("{}: {reason}", show(endpoint))),
                Err((false, reason)) => match call.retry {
                    Retry::Read => unreachable.push(format!("{}: {reason}", show(endpoint))),
                    Retry::Write | Retry::Pinned => {
                        return Err(ClientError::UnknownOutcome {
                            operation: call.operation.clone(),
                            endpoint: show(endpoint),
                            reason,
                        });
                    }
                },
            }
        }
        // A server's refusal says more than a connection failure.
        Err(refused.unwrap_or_else(|| ClientError::Transport {
            detail: format!(
                "the {} failed: no endpoint could be reached ({})",
                call.operation,
                unreachable.join("; ")
            ),
        }))
    }
}

fn node_status_call(digest: bool) -> Call {
    let call = Call::new("node status", Method::GET, &["v1", "node"], Retry::Read);
    if digest {
        call.query("digest", true)
    } else {
        call
    }
}

/// Reads a whole successful body.
async fn read_body(endpoint: &Url, response: Response) -> Result<Bytes, ClientError> {
    response
        .bytes()
        .await
        .map_err(|e| ClientError::BadResponse {
            endpoint: show(endpoint),
            reason: format!("the body could not be read: {}", describe(&e)),
        })
}

/// Reads and decodes a successful JSON body.
async fn decode_json<T: DeserializeOwned>(
    endpoint: &Url,
    response: Response,
) -> Result<T, ClientError> {
    let body = read_body(endpoint, response).await?;
    serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse {
        endpoint: show(endpoint),
        reason: format!("the JSON body could not be decoded: {e}"),
    })
}

/// Turns an error response into [`ClientError::Api`], with the documented
/// body's code and message or, failing that, the start of the body.
async fn api_error(endpoint: &Url, response: Response) -> ClientError {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs);
    let body = response.bytes().await.unwrap_or_default();
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(body) => (Some(body.error.code), body.error.message),
        Err(_) => {
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("no message").to_owned()
            } else if text.chars().count() > MAX_QUOTED_BODY_CHARS {
                let start: String = text.chars().take(MAX_QUOTED_BODY_CHARS).collect();
                format!("{start}...")
            } else {
                text.to_owned()
            };
            (None, message)
        }
    };
    ClientError::Api {
        endpoint: show(endpoint),
        status,
        code,
        message,
        retry_after,
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// How many connections in a row may end without delivering a single byte
/// (not even a keep-alive) before a watch gives up.
const MAX_QUIET_WATCH_CONNECTIONS: u32 = 10;

/// The progress of one [`Client::watch`].
struct WatchState {
    client: Client,
    prefix: String,
    /// The revision the next (re)connection starts from.
    next_revision: Option<u64>,
    body: Option<(Url, ByteStream)>,
    parser: SseParser,
    pending: VecDeque<WatchEvent>,
    done: bool,
    /// Whether a connection was ever open (so failures are reconnects).
    connected_before: bool,
    /// Whether the open connection delivered any bytes.
    got_bytes: bool,
    /// Connections in a row that ended without delivering a byte.
    quiet_connections: u32,
    /// The `error` event the server sent before ending the stream, if any.
    ended_with: Option<String>,
    /// When the connection was lost, while it is being re-established.
    lost_since: Option<Instant>,
}

impl WatchState {
    fn new(client: Client, prefix: &str, from_revision: Option<u64>) -> Self {
        Self {
            client,
            prefix: prefix.to_owned(),
            next_revision: from_revision,
            body: None,
            parser: SseParser::default(),
            pending: VecDeque::new(),
            done: false,
            connected_before: false,
            got_bytes: false,
            quiet_connections: 0,
            ended_with: None,
            lost_since: None,
        }
    }

    /// The next item of the stream; `None` once it ended.
    async fn next(&mut self) -> Option<Result<WatchEvent, ClientError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            let Some((endpoint, body)) = &mut self.body else {
                if let Err(e) = self.connect().await {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            };
            let idle = self.client.options.stream_idle_timeout;
            let lost = match tokio::time::timeout(idle, body.next()).await {
                Ok(Some(Ok(chunk))) => {
                    self.got_bytes = true;
                    self.quiet_connections = 0;
                    if let Err(e) = self.take_events(&chunk) {
                        self.done = true;
                        self.pending.clear();
                        return Some(Err(e));
                    }
                    continue;
                }
                Ok(Some(Err(e))) => describe(&e),
                Ok(None) => match self.ended_with.take() {
                    Some(error) => format!("the server ended the stream ({error})"),
                    None => "the server closed the stream".to_owned(),
                },
                Err(_) => format!("no data for {} s", idle.as_secs()),
            };
            let endpoint = show(endpoint);
            self.body = None;
            if !self.got_bytes {
                self.quiet_connections += 1;
                if self.quiet_connections >= MAX_QUIET_WATCH_CONNECTIONS {
                    self.done = true;
                    return Some(Err(ClientError::Transport {
                        detail: format!(
                            "the watch of {:?} ended {} times in a row without data, \
                             last at {endpoint}: {lost}",
                            self.prefix, self.quiet_connections
                        ),
                    }));
                }
            }
            self.lost_since.get_or_insert_with(Instant::now);
            tokio::time::sleep(backoff(self.quiet_connections)).await;
        }
    }

    /// Parses a chunk of the open stream into pending events.
    fn take_events(&mut self, chunk: &[u8]) -> Result<(), ClientError> {
        let Some((endpoint, _)) = &self.body else {
            return Ok(());
        };
        let mut events = Vec::new();
        self.parser
            .push(chunk, &mut events)
            .map_err(|reason| ClientError::BadResponse {
                endpoint: show(endpoint),
                reason,
            })?;
        for event in events {
            // The server's last word before it ends the stream (the node
            // is stopping, or the watch fell behind compaction). The
            // reconnect that follows tells which: another node, or a 410.
            if event.event == "error" {
                self.ended_with = Some(match serde_json::from_str::<ErrorBody>(&event.data) {
                    Ok(body) => format!("{}: {}", body.error.code, body.error.message),
                    Err(_) => event.data,
                });
                continue;
            }
            let Some(event) = decode_watch_event(endpoint, event)? else {
                continue;
            };
            // Skip anything replayed after a reconnect.
            if self.next_revision.is_some_and(|next| event.revision < next) {
                continue;
            }
            self.next_revision = Some(event.revision + 1);
            self.pending.push_back(event);
        }
        Ok(())
    }

    /// Opens the event stream. The first connection fails at once; a
    /// reconnect retries passing failures until the reconnect timeout.
    async fn connect(&mut self) -> Result<(), ClientError> {
        let mut attempts = 0;
        loop {
            match self.try_connect().await {
                Ok(()) => {
                    self.connected_before = true;
                    self.got_bytes = false;
                    self.lost_since = None;
                    return Ok(());
                }
                Err(e) if !self.connected_before || !retryable(&e) => return Err(e),
                Err(e) => {
                    let lost_for = self.lost_since.map_or(Duration::ZERO, |t| t.elapsed());
                    if lost_for > self.client.options.watch_reconnect_timeout {
                        return Err(e);
                    }
                    attempts += 1;
                    tokio::time::sleep(backoff(attempts)).await;
                }
            }
        }
    }

    /// Opens the event stream from `next_revision`, learning that revision
    /// first if the caller gave none.
    async fn try_connect(&mut self) -> Result<(), ClientError> {
        let from = match self.next_revision {
            Some(from) => from,
            None => {
                let page = self
                    .client
                    .list(&self.prefix, Some(1), None, Consistency::Linearizable)
                    .await?;
                let from = page.revision + 1;
                self.next_revision = Some(from);
                from
            }
        };
        let mut call = Call::new(
            format!("watch of {:?}", self.prefix),
            Method::GET,
            &["v1", "watch"],
            Retry::Read,
        )
        .query("prefix", &self.prefix)
        .query("from_revision", from);
        call.headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        call.streaming = true;
        let (endpoint, response) = self.client.execute(&call).await?;
        self.body = Some((endpoint, Box::pin(response.bytes_stream())));
        self.parser = SseParser::default();
        Ok(())
    }
}

/// The pause before reconnect attempt `n`: 100 ms doubling to 3.2 s.
fn backoff(n: u32) -> Duration {
    Duration::from_millis(100 << n.min(5))
}

/// Whether a failure to (re)open a watch may pass with time.
fn retryable(error: &ClientError) -> bool {
    match error {
        ClientError::Transport { .. } => true,
        ClientError::Api { status, .. } => status.is_server_error(),
        _ => false,
    }
}

/// A watch event from an SSE event; `None` for event types this client
/// does not know (ignored, as SSE clients do).
fn decode_watch_event(endpoint: &Url, event: SseEvent) -> Result<Option<WatchEvent>, ClientError> {
    let expected = match event.event.as_str() {
        "put" => Some(WatchEventKind::Put),
        "delete" => Some(WatchEventKind::Delete),
        "" | "message" => None,
        _ => return Ok(None),
    };
    let bad = |reason: String| ClientError::BadResponse {
        endpoint: show(endpoint),
        reason,
    };
    let decoded: WatchEvent = serde_json::from_str(&event.data)
        .map_err(|e| bad(format!("a watch event's data is not a WatchEvent: {e}")))?;
    if expected.is_some_and(|kind| kind != decoded.kind) {
        return Err(bad(format!(
            "a watch event of type {:?} carries a {:?}",
            event.event, decoded.kind
        )));
    }
    Ok(Some(decoded))
}

/// One dispatched Server-Sent Event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SseEvent {
    /// The `event:` field; empty if absent.
    event: String,
    /// The `data:` lines, joined with `\n`.
    data: String,
    /// The `id:` field, if any.
    id: Option<String>,
}

/// An incremental parser of a `text/event-stream` body (the WHATWG
/// event-stream format): lines end in `\n`, `\r\n` or `\r`; a blank line
/// dispatches the event; lines starting with `:` are comments
/// (keep-alives).
#[derive(Debug, Default)]
struct SseParser {
    line: Vec<u8>,
    /// The previous byte was `\r`, so a `\n` now belongs to it.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl SseParser {
    /// Consumes `chunk`, appending each completed event to `out`.
    fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), String> {
        for &byte in chunk {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\n' => self.end_line(out)?,
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(out)?;
                }
                _ => {
                    if self.line.len() >= MAX_SSE_LINE_BYTES {
                        return Err(format!(
                            "an event-stream line is longer than {MAX_SSE_LINE_BYTES} bytes"
                        ));
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), String> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = String::from_utf8(line).map_err(|_| "an event-stream line is not UTF-8")?;
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        if std::mem::take(&mut self.has_data) {
            out.push(SseEvent {
                event,
                data,
                id: self.id.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&str]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk.as_bytes(), &mut out).unwrap();
        }
        out
    }

    fn event(event: &str, id: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.to_owned(),
            data: data.to_owned(),
            id: Some(id.to_owned()),
        }
    }

    #[test]
    fn sse_events_are_split_on_blank_lines_and_comments_are_ignored() {
        let events =
            parse(&[": keep-alive\n\nevent: put\nid: 3\ndata: {\"a\":1}\n\n: keep-alive\n\n"]);
        assert_eq!(events, vec![event("put", "3", "{\"a\":1}")]);
    }

    #[test]
    fn sse_lines_may_be_split_across_chunks_and_end_in_crlf_or_cr() {
        let events = parse(&[
            "eve",
            "nt: del",
            "ete\r",
            "\nid: 4\rda",
            "ta: x\r\n",
            "\r",
            "\n",
        ]);
        assert_eq!(events, vec![event("delete", "4", "x")]);
    }

    #[test]
    fn sse_data_lines_are_joined_with_newlines_and_need_no_space() {
        let events = parse(&["data:a\ndata: b\ndata\n\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "a\nb\n");
    }

    #[test]
    fn an_sse_event_without_data_is_not_dispatched() {
        assert!(parse(&["event: put\nid: 1\n\n"]).is_empty());
    }

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
    fn endpoints_must_be_http_urls() {
        assert!(Client::new(Vec::<String>::new()).is_err());
        for bad in ["127.0.0.1:7379", "ftp://h", "http://h/?q=1", "not a url"] {
            assert!(
                matches!(Client::new([bad]), Err(ClientError::InvalidEndpoint { .. })),
                "{bad}"
            );
        }
        let client = Client::new(["http://a:7379", "https://b:7379/"]).unwrap();
        assert_eq!(client.endpoints(), ["http://a:7379", "https://b:7379"]);
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
