//! [`Client`]: a typed async client for the node's HTTP API (docs/design.md §3).
//!
//! A client holds a list of endpoints (the client URLs of some members) and
//! one pooled HTTP connection set. This module owns the client's methods,
//! one per API operation: each describes its request ([`Call`]), sends it
//! under the failover rules of [`failover`](crate::failover) and decodes
//! the answer. A watch is [`watch`](crate::watch)'s state machine over
//! [`sse`](crate::sse)'s parser. Nothing here knows how the server works,
//! only the contract of its responses.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::{Method, Url};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::endpoint::{parse_endpoint, show};
use crate::error::{ClientError, describe};
use crate::failover::{decode_json, read_body};
use crate::options::ClientOptions;
use crate::request::{Call, Consistency, Precondition, Retry, node_status_call};
use crate::watch;
use crate::wire::{
    AddMemberRequest, BootstrapResponse, ForceNewClusterResponse, ListResponse, MemberList,
    MembershipResponse, NodeId, NodeStatus, TransferLeaderRequest, TransferLeaderResponse,
    UpdateMemberRequest, UpdateMemberResponse, WatchEvent, WriteResponse,
};

/// The response header with the store's revision when a key was read.
const REVISION_HEADER: &str = "x-raftcfg-revision";
const CREATE_REVISION_HEADER: &str = "x-raftcfg-create-revision";
const MOD_REVISION_HEADER: &str = "x-raftcfg-mod-revision";
const VERSION_HEADER: &str = "x-raftcfg-version";

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

/// A typed client of the node's HTTP API. Cloning is cheap; clones share
/// connections and the remembered endpoint.
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) endpoints: Arc<[Url]>,
    /// Index of the endpoint that answered last: where the next request
    /// starts.
    pub(crate) preferred: Arc<AtomicUsize>,
    pub(crate) options: ClientOptions,
    /// The token held for a password, shared by clones.
    pub(crate) session: Arc<crate::auth::Session>,
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
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            // Shorter than the node's idle timeout (60 s), so a pooled
            // connection is dropped here before the node closes it.
            .pool_idle_timeout(Duration::from_secs(30))
            // A redirect would repeat a write somewhere else.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &options.tls.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                ClientError::Setup(format!(
                    "the CA certificates cannot be read: {}",
                    describe(&e)
                ))
            })?;
            if certs.is_empty() {
                return Err(ClientError::Setup(
                    "the CA file holds no certificate".to_owned(),
                ));
            }
            builder = builder.tls_certs_only(certs);
        }
        if let Some(pem) = &options.tls.identity_pem {
            let identity = reqwest::Identity::from_pem(pem).map_err(|e| {
                ClientError::Setup(format!(
                    "the client certificate and key cannot be used: {}",
                    describe(&e)
                ))
            })?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Setup(describe(&e)))?;
        Ok(Self {
            http,
            endpoints: endpoints.into(),
            preferred: Arc::new(AtomicUsize::new(0)),
            options,
            session: Arc::default(),
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
        watch::watch(self.clone(), prefix, from_revision)
    }

    /// The member list, as the answering node knows it.
    pub async fn members(&self) -> Result<MemberList, ClientError> {
        self.json(&members_call()).await
    }

    /// The member list with the leader's view of each member's progress
    /// and health (`match_index`, `healthy`), which a follower does not
    /// have: when a follower answers, the listed leader is asked at its
    /// client URL. If the leader cannot be asked, the follower's answer is
    /// returned.
    pub async fn members_from_leader(&self) -> Result<MemberList, ClientError> {
        let list = self.members().await?;
        let from_leader = list.members.iter().any(|m| m.match_index.is_some());
        let Some(leader) = list.members.iter().find(|m| m.leader) else {
            return Ok(list);
        };
        if from_leader {
            return Ok(list);
        }
        let asked: Result<MemberList, ClientError> = async {
            let endpoint = [parse_endpoint(&leader.client_url)?];
            let (endpoint, response) = self.execute_on(&endpoint, 0, &members_call()).await?;
            decode_json(&endpoint, response).await
        }
        .await;
        Ok(asked.unwrap_or(list))
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

    /// Changes a member's URLs (after it moved); answers once applied.
    pub async fn update_member(
        &self,
        node_id: NodeId,
        request: &UpdateMemberRequest,
    ) -> Result<UpdateMemberResponse, ClientError> {
        let id = node_id.to_string();
        let call = Call::new(
            format!("update of member {node_id}"),
            Method::PUT,
            &["v1", "cluster", "members", &id],
            Retry::Write,
        )
        .json_body(request);
        self.json(&call).await
    }

    /// Promotes a learner to voter (409 `learner_not_caught_up` if it lags).
    pub async fn promote(&self, node_id: NodeId) -> Result<MembershipResponse, ClientError> {
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
    pub async fn remove_member(&self, node_id: NodeId) -> Result<MembershipResponse, ClientError> {
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
        to: Option<NodeId>,
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

    /// Makes the node at the *first* endpoint its cluster's only voter,
    /// keeping its data: the way back from a quorum lost for good (409
    /// `has_leader` while it knows a leader, `not_a_voter` for a learner).
    /// Never sent to another endpoint: the caller chose the survivor.
    pub async fn force_new_cluster(&self) -> Result<ForceNewClusterResponse, ClientError> {
        let call = Call::new(
            "force new cluster",
            Method::POST,
            &["v1", "cluster", "force-new-cluster"],
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
}

/// `GET /v1/cluster/members`.
fn members_call() -> Call {
    Call::new(
        "member list",
        Method::GET,
        &["v1", "cluster", "members"],
        Retry::Read,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_http_urls() {
        assert!(Client::new(Vec::<String>::new()).is_err());
        for bad in ["127.0.0.1:7379", "ftp://h", "http://h/?q=1", "not a url"] {
            assert!(
                matches!(Client::new([bad]), Err(ClientError::InvalidEndpoint { .. })),
                "{bad}"
            );
        }
        let Err(missing) = Client::new(["127.0.0.1:9379"]) else {
            panic!("accepted an endpoint without a scheme");
        };
        assert!(
            missing.to_string().contains("use http://127.0.0.1:9379"),
            "{missing}"
        );
        let client = Client::new(["http://a:7379", "https://b:7379/"]).unwrap();
        assert_eq!(client.endpoints(), ["http://a:7379", "https://b:7379"]);
    }
}
