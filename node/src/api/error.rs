//! [`ApiError`]: every failure of the client API as a status code and the
//! JSON body `{"error": {"code", "message"}}`, with `Retry-After` on 503.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use raftcfg_client::wire::ErrorBody;
use raftcfg_raft::{MembershipError, ProposalError};

use crate::driver::{DriverError, MemberRefusal};

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "1";

/// An error answer of the client API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable snake_case code.
    pub code: &'static str,
    /// One sentence for people.
    pub message: String,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::not_found_code("not_found", message)
    }

    /// 404 with a more specific code.
    pub fn not_found_code(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 503 with `Retry-After`: nothing happened; try again shortly.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// 500: the node failed (storage or a task); the message says how.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 500: the driver answered a query with another kind of result (a bug).
    pub fn mismatched_answer() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the node answered the read with the wrong kind of result",
        )
    }

    /// 504: the node stopped waiting; the write may or may not happen.
    pub fn outcome_unknown() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "outcome_unknown",
            "the request timed out; the write may or may not have taken effect — read the key to find out",
        )
    }
}

impl From<DriverError> for ApiError {
    fn from(error: DriverError) -> Self {
        let message = error.to_string();
        match error {
            DriverError::NotInitialized => Self::new(
                StatusCode::CONFLICT,
                "not_initialized",
                "this node is not part of a cluster yet: bootstrap it (POST /v1/cluster/bootstrap) \
                 or add it to a cluster as a learner",
            ),
            DriverError::NotLeader { leader: None } => Self::unavailable(
                "no_leader",
                "the cluster has no leader right now (election in progress or no quorum); retry shortly",
            ),
            DriverError::NotLeader { leader: Some(id) } => Self::unavailable(
                "no_leader",
                format!("node {id} leads but could not take the request; retry shortly"),
            ),
            DriverError::Lost | DriverError::Busy | DriverError::LeaderUnreachable => {
                Self::unavailable("unavailable", message)
            }
            DriverError::Stopped => Self::unavailable("stopping", message),
            DriverError::Removed => Self::new(StatusCode::GONE, "removed", message),
            DriverError::Unknown => Self::outcome_unknown(),
            DriverError::AlreadyInitialized => {
                Self::new(StatusCode::CONFLICT, "already_initialized", message)
            }
            DriverError::HasLeader(_) => Self::new(StatusCode::CONFLICT, "has_leader", message),
            DriverError::NotAVoter => Self::new(StatusCode::CONFLICT, "not_a_voter", message),
            DriverError::TransferInProgress | DriverError::TransferTimedOut(_) => {
                Self::new(StatusCode::CONFLICT, "transfer_failed", message)
            }
            DriverError::NoTransferTarget => {
                Self::new(StatusCode::CONFLICT, "no_transfer_target", message)
            }
            DriverError::Refused(refusal) => Self::from(refusal),
            DriverError::Remote(_) => Self::new(StatusCode::BAD_GATEWAY, "leader_error", message),
            DriverError::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            DriverError::Storage(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_error", message)
            }
            DriverError::MemberRefused { refusal, .. } => match refusal {
                MemberRefusal::Duplicate => {
                    Self::new(StatusCode::CONFLICT, "duplicate_member", message)
                }
                MemberRefusal::WrongNode => Self::new(StatusCode::CONFLICT, "wrong_node", message),
                MemberRefusal::ForeignCluster => {
                    Self::new(StatusCode::CONFLICT, "foreign_cluster", message)
                }
                MemberRefusal::Removed => {
                    Self::new(StatusCode::CONFLICT, "removed_member", message)
                }
                MemberRefusal::Unreachable => Self::unavailable("member_unreachable", message),
            },
        }
    }
}

impl From<ProposalError> for ApiError {
    fn from(error: ProposalError) -> Self {
        let message = error.to_string();
        let code = match error {
            ProposalError::NotLeader { .. } => return Self::unavailable("no_leader", message),
            ProposalError::LeaderNotReady | ProposalError::TransferInProgress { .. } => {
                return Self::unavailable("leader_not_ready", message);
            }
            ProposalError::Membership(MembershipError::NotAMember(_)) => {
                return Self::new(StatusCode::NOT_FOUND, "unknown_member", message);
            }
            ProposalError::MembershipChangeInProgress => "membership_change_in_progress",
            ProposalError::Membership(MembershipError::AlreadyMember(_)) => "duplicate_member",
            ProposalError::Membership(_) => "invalid_membership_change",
            ProposalError::LearnerNotCaughtUp { .. } => "learner_not_caught_up",
            ProposalError::NotAVoter(_) => "not_a_voter",
        };
        Self::new(StatusCode::CONFLICT, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, code = self.code, reason = %self.message, "request failed");
        }
        let retry = self.status == StatusCode::SERVICE_UNAVAILABLE;
        let mut response =
            (self.status, Json(ErrorBody::new(self.code, self.message))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"raftcfg\""),
            );
        }
        if retry {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}
