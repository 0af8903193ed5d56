//! [`ClientError`]: why a request failed, and how a failure is told to a
//! person: a transport error's causes ([`describe`]) and an error
//! response's documented body ([`api_error`]). Nothing here sends a
//! request.

use std::time::Duration;

use reqwest::header;
use reqwest::{Response, StatusCode, Url};

use crate::endpoint::show;
use crate::wire::ErrorBody;

/// The most of an unexpected (non-JSON) error body quoted in an error.
const MAX_QUOTED_BODY_CHARS: usize = 200;

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

/// What a failed `send` tells a person: reqwest's own message is only
/// "error sending request for url"; the causes underneath say why.
pub(crate) fn describe(error: &reqwest::Error) -> String {
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

/// Turns an error response into [`ClientError::Api`], with the documented
/// body's code and message or, failing that, the start of the body.
pub(crate) async fn api_error(endpoint: &Url, response: Response) -> ClientError {
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
