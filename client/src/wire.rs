//! JSON bodies of the HTTP API. Numbers that are protocol positions (node
//! ids, terms, indexes, revisions) travel as plain
//! JSON numbers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// The body of every error response: `{"error": {"code", "message"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A machine-readable code and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable snake_case code, e.g. `precondition_failed`, `no_leader`.
    pub code: String,
    /// What went wrong, in one sentence.
    pub message: String,
}

impl ErrorBody {
    /// An error body with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// A member's role in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// Votes and counts for commit.
    Voter,
    /// Receives the log only.
    Learner,
}

/// One member, as `GET /v1/cluster/members` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's node id.
    pub id: u64,
    /// Its name (a pod name on Kubernetes).
    pub name: String,
    /// Where peers reach it.
    pub peer_url: String,
    /// Where clients reach it.
    pub client_url: String,
    /// Voter or learner.
    pub role: MemberRole,
    /// Whether it leads.
    pub leader: bool,
    /// The highest log index known to match the leader's (leader's view).
    pub match_index: Option<u64>,
    /// Whether the leader heard from it recently.
    pub healthy: Option<bool>,
}

/// `POST /v1/cluster/members`: add a node as a learner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    /// The new node's id, as it reports in `GET /v1/node`.
    pub node_id: u64,
    /// Its name.
    pub name: String,
    /// Where peers reach it.
    pub peer_url: String,
    /// Where clients reach it.
    pub client_url: String,
}

/// `POST /v1/cluster/leader`: transfer leadership.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferLeaderRequest {
    /// The target; absent means the most caught-up voter.
    pub to: Option<u64>,
}

/// `GET /v1/node`: one node's view of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// This node's id.
    pub node_id: u64,
    /// Its cluster, once bootstrapped or joined.
    pub cluster_id: Option<u64>,
    /// Its name.
    pub name: String,
    /// `follower`, `pre_candidate`, `candidate` or `leader`.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Last log index.
    pub last_index: u64,
    /// The index the log is compacted to.
    pub snapshot_index: u64,
    /// The leader it follows, if known.
    pub leader_id: Option<u64>,
    /// Hex digest of the key-value state at `applied`, when asked for
    /// (`GET /v1/node?digest=true`): computing it reads the whole state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_digest: Option<String>,
}

/// One key with its metadata, as `GET /v1/kv?prefix=` lists it. The value
/// is base64 so that any bytes survive JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value, base64 (standard alphabet, padded).
    pub value_base64: String,
    /// Revision of the key's creation.
    pub create_revision: u64,
    /// Revision of its last modification (its ETag).
    pub mod_revision: u64,
    /// Modifications since creation.
    pub version: u64,
}

/// `GET /v1/kv?prefix=P&limit=N`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResponse {
    /// The keys, in key order.
    pub items: Vec<KeyValue>,
    /// Whether more keys follow; ask again with `start_after` = the last key.
    pub more: bool,
    /// The store's revision when the list was read.
    pub revision: u64,
}

/// The answer to a write: the revision it created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResponse {
    /// The cluster-wide revision of the write.
    pub revision: u64,
}

/// `GET /v1/cluster/members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberList {
    /// Every voter and learner, by id.
    pub members: Vec<Member>,
    /// The leader the answering node knows of.
    pub leader_id: Option<u64>,
    /// The answering node's commit index.
    #[serde(default)]
    pub commit_index: u64,
    /// Whether a configuration entry is appended but not yet committed
    /// (known for certain only on the leader).
    #[serde(default)]
    pub membership_change_pending: bool,
}

/// The answer to a membership change (add, promote, remove): the log index
/// of the configuration entry, which is committed when the answer is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipResponse {
    /// Log index of the committed configuration entry.
    pub index: u64,
}

/// The answer to `POST /v1/cluster/leader`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferLeaderResponse {
    /// The member that leads once the transfer completed.
    pub leader_id: u64,
}

/// The answer to `POST /v1/cluster/bootstrap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapResponse {
    /// The new cluster's id.
    pub cluster_id: u64,
    /// The founding (and only) member.
    pub node_id: u64,
}

/// What a watch event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchEventKind {
    /// The key was created or overwritten.
    Put,
    /// The key was deleted.
    Delete,
}

/// One Server-Sent Event of `GET /v1/watch`: the SSE `event` field is the
/// kind, `id` the revision and `data` this JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The revision of the change.
    pub revision: u64,
    /// Put or delete.
    pub kind: WatchEventKind,
    /// The key changed.
    pub key: String,
    /// The new value, base64; absent for a delete.
    pub value_base64: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_serialize_as_the_documented_shape() {
        let body = ErrorBody::new("no_leader", "the cluster has no leader; retry shortly");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"no_leader","message":"the cluster has no leader; retry shortly"}}"#
        );
    }

    #[test]
    fn an_add_member_request_with_an_unknown_field_is_rejected() {
        let json =
            r#"{"node_id":1,"name":"a","peer_url":"http://a","client_url":"http://a","x":1}"#;
        assert!(serde_json::from_str::<AddMemberRequest>(json).is_err());
    }

    #[test]
    fn roles_are_snake_case() {
        assert_eq!(
            serde_json::to_string(&MemberRole::Learner).unwrap(),
            r#""learner""#
        );
    }
}
