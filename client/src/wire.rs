//! JSON bodies of the HTTP API, and the newtypes of the numbers in them.
//!
//! Node ids, cluster ids, terms and log indexes are distinct types
//! ([`NodeId`], [`ClusterId`], [`Term`], [`LogIndex`], and [`EntryCount`]
//! for a number of entries such as a lag), so that one is never passed
//! where another is meant. Each is `#[serde(transparent)]`: on the wire it
//! is the plain JSON number it always was. Revisions are still plain
//! `u64`s.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// A decimal id or number that does not parse (e.g. one read back from a
/// Kubernetes status field).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a {kind} (a decimal number below 2^64)")]
pub struct ParseIdError {
    /// What was expected, e.g. `node id`.
    pub kind: &'static str,
    /// The text as given.
    pub value: String,
}

macro_rules! protocol_number {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw number.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            /// Parses the decimal form [`Display`](fmt::Display) writes.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self).map_err(|_| ParseIdError {
                    kind: $kind,
                    value: s.to_owned(),
                })
            }
        }

        impl From<u64> for $name {
            fn from(value: u64) -> Self {
                Self(value)
            }
        }
    };
}

protocol_number!(
    /// A node's identity: random at first start, never reused.
    NodeId,
    "node id"
);
protocol_number!(
    /// The identity of a cluster, chosen when it is bootstrapped.
    ClusterId,
    "cluster id"
);
protocol_number!(
    /// A Raft term (election epoch).
    Term,
    "term"
);
protocol_number!(
    /// A position in the replicated log (match, commit, applied, snapshot
    /// and configuration-entry indexes).
    LogIndex,
    "log index"
);
protocol_number!(
    /// A number of log entries, e.g. how far a member is behind the
    /// leader's commit index.
    EntryCount,
    "number of entries"
);

impl LogIndex {
    /// How many entries this index is ahead of `earlier`; zero if it is
    /// not ahead.
    pub const fn entries_since(self, earlier: LogIndex) -> EntryCount {
        EntryCount(self.0.saturating_sub(earlier.0))
    }
}

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
    pub id: NodeId,
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
    pub match_index: Option<LogIndex>,
    /// Whether the leader heard from it recently.
    pub healthy: Option<bool>,
}

/// `POST /v1/cluster/members`: add a node as a learner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    /// The new node's id, as it reports in `GET /v1/node`.
    pub node_id: NodeId,
    /// Its name.
    pub name: String,
    /// Where peers reach it.
    pub peer_url: String,
    /// Where clients reach it.
    pub client_url: String,
}

/// `PUT /v1/cluster/members/{id}`: a member's new URLs (its name stays).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemberRequest {
    /// Where peers reach it now.
    pub peer_url: String,
    /// Where clients reach it now.
    pub client_url: String,
}

/// The answer to `PUT /v1/cluster/members/{id}`: the member's address as
/// now recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateMemberResponse {
    /// The member.
    pub node_id: NodeId,
    /// Its name.
    pub name: String,
    /// Where peers reach it.
    pub peer_url: String,
    /// Where clients reach it.
    pub client_url: String,
}

/// `GET /v1/cluster/leader`: the leader this node knows of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderResponse {
    /// The leader.
    pub leader_id: NodeId,
    /// Its name.
    pub name: String,
    /// Its client URL.
    pub client_url: String,
    /// The term it leads in.
    pub term: Term,
}

/// `POST /v1/cluster/leader`: transfer leadership.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferLeaderRequest {
    /// The target; absent means the most caught-up voter.
    pub to: Option<NodeId>,
}

/// `GET /v1/node`: one node's view of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// This node's id.
    pub node_id: NodeId,
    /// Its cluster, once bootstrapped or joined.
    pub cluster_id: Option<ClusterId>,
    /// Its name.
    pub name: String,
    /// `follower`, `pre_candidate`, `candidate` or `leader`.
    pub role: String,
    /// Current term.
    pub term: Term,
    /// Commit index.
    pub commit: LogIndex,
    /// Applied index.
    pub applied: LogIndex,
    /// Last log index.
    pub last_index: LogIndex,
    /// The term of the last log entry: with `last_index`, how up to date
    /// the log is (the most up-to-date survivor of a lost quorum is
    /// recovered, see `POST /v1/cluster/force-new-cluster`).
    #[serde(default)]
    pub last_term: Term,
    /// The index the log is compacted to.
    pub snapshot_index: LogIndex,
    /// The leader it follows, if known.
    pub leader_id: Option<NodeId>,
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
    pub leader_id: Option<NodeId>,
    /// The answering node's commit index.
    #[serde(default)]
    pub commit_index: LogIndex,
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
    pub index: LogIndex,
}

/// The answer to `POST /v1/cluster/leader`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferLeaderResponse {
    /// The member that leads once the transfer completed.
    pub leader_id: NodeId,
}

/// The answer to `POST /v1/cluster/bootstrap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapResponse {
    /// The new cluster's id.
    pub cluster_id: ClusterId,
    /// The founding (and only) member.
    pub node_id: NodeId,
}

/// The answer to `POST /v1/cluster/force-new-cluster`: the node is now
/// its cluster's only voter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForceNewClusterResponse {
    /// The cluster, unchanged.
    pub cluster_id: ClusterId,
    /// The node that stayed.
    pub node_id: NodeId,
    /// The members removed.
    pub removed: Vec<NodeId>,
    /// The node's last log index before: every entry up to it is kept.
    /// Entries the lost members committed after it are gone.
    pub last_index: LogIndex,
    /// Its term.
    pub last_term: Term,
    /// The commit index the node knew before: the entries after it and up
    /// to `last_index` may never have been acknowledged, and are kept.
    pub commit: LogIndex,
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
    fn ids_travel_as_the_plain_numbers_they_always_were() {
        let status = NodeStatus {
            node_id: NodeId(7),
            cluster_id: Some(ClusterId(18_446_744_073_709_551_615)),
            name: "cfg-0".into(),
            role: "leader".into(),
            term: Term(3),
            commit: LogIndex(10),
            applied: LogIndex(9),
            last_index: LogIndex(11),
            last_term: Term(2),
            snapshot_index: LogIndex(0),
            leader_id: Some(NodeId(7)),
            state_digest: None,
        };
        let json = r#"{"node_id":7,"cluster_id":18446744073709551615,"name":"cfg-0","role":"leader","term":3,"commit":10,"applied":9,"last_index":11,"last_term":2,"snapshot_index":0,"leader_id":7}"#;
        assert_eq!(serde_json::to_string(&status).unwrap(), json);
        assert_eq!(serde_json::from_str::<NodeStatus>(json).unwrap(), status);
        // A node from before `last_term` existed still reads.
        let older = json.replace(r#""last_term":2,"#, "");
        let read = serde_json::from_str::<NodeStatus>(&older).unwrap();
        assert_eq!(read.last_term, Term(0));

        let list = MemberList {
            members: vec![Member {
                id: NodeId(2),
                name: "b".into(),
                peer_url: "http://b:7380".into(),
                client_url: "http://b:7379".into(),
                role: MemberRole::Learner,
                leader: false,
                match_index: Some(LogIndex(5)),
                healthy: None,
            }],
            leader_id: None,
            commit_index: LogIndex(6),
            membership_change_pending: false,
        };
        let json = r#"{"members":[{"id":2,"name":"b","peer_url":"http://b:7380","client_url":"http://b:7379","role":"learner","leader":false,"match_index":5,"healthy":null}],"leader_id":null,"commit_index":6,"membership_change_pending":false}"#;
        assert_eq!(serde_json::to_string(&list).unwrap(), json);
        assert_eq!(
            serde_json::to_string(&TransferLeaderRequest {
                to: Some(NodeId(4))
            })
            .unwrap(),
            r#"{"to":4}"#
        );
    }

    #[test]
    fn ids_parse_their_decimal_form_and_name_what_was_wrong() {
        assert_eq!("42".parse::<ClusterId>(), Ok(ClusterId(42)));
        assert_eq!(NodeId(42).to_string().parse::<NodeId>(), Ok(NodeId(42)));
        let error = "4x2".parse::<ClusterId>().unwrap_err();
        assert_eq!(error.value, "4x2");
        assert_eq!(
            error.to_string(),
            r#""4x2" is not a cluster id (a decimal number below 2^64)"#
        );
        assert!("".parse::<NodeId>().is_err());
        assert!("-1".parse::<LogIndex>().is_err());
    }

    #[test]
    fn a_lag_is_never_negative() {
        assert_eq!(LogIndex(10).entries_since(LogIndex(4)), EntryCount(6));
        assert_eq!(LogIndex(4).entries_since(LogIndex(10)), EntryCount(0));
    }

    #[test]
    fn roles_are_snake_case() {
        assert_eq!(
            serde_json::to_string(&MemberRole::Learner).unwrap(),
            r#""learner""#
        );
    }
}

/// `GET /v1/auth/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthStatus {
    /// Whether requests must carry credentials.
    pub enabled: bool,
}

/// `POST /v1/auth/token`: a user's password, exchanged for a token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The user.
    pub user: String,
    /// Its password.
    pub password: String,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The answer to [`TokenRequest`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer token (`Authorization: Bearer <token>`).
    pub token: String,
    /// Seconds until it expires.
    pub expires_in_seconds: u64,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in_seconds", &self.expires_in_seconds)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/auth/users`: a new user, with a password or none (then it
/// signs in by client certificate only).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddUserRequest {
    /// Its name.
    pub name: String,
    /// Its password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl fmt::Debug for AddUserRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddUserRequest")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `PUT /v1/auth/users/{name}/password`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// The new password.
    pub password: String,
}

impl fmt::Debug for PasswordRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordRequest { .. }")
    }
}

/// A user as `GET /v1/auth/users` shows it (never its password).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Its name.
    pub name: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// Whether it has a password (else it signs in by certificate only).
    pub has_password: bool,
}

/// `GET /v1/auth/users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserList {
    /// Every user, by name.
    pub users: Vec<UserInfo>,
}

/// `POST /v1/auth/roles`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRoleRequest {
    /// Its name.
    pub name: String,
}

/// A role's access to a key prefix: `read` or `readwrite`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    /// The key prefix ("" is every key).
    pub prefix: String,
    /// `read` or `readwrite`.
    pub access: String,
}

/// A role as `GET /v1/auth/roles` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleInfo {
    /// Its name.
    pub name: String,
    /// What it grants (the built-in root role grants everything and lists
    /// none).
    pub permissions: Vec<Permission>,
}

/// `GET /v1/auth/roles`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleList {
    /// Every role, by name, the built-in `root` first.
    pub roles: Vec<RoleInfo>,
}
