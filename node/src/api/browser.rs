//! Requests a web page could make. A browser sends a cross-site "simple"
//! `POST` (any body, `Content-Type: text/plain`) without asking first, so
//! any page open on a machine that reaches the cluster could add members
//! or move leadership. Every state-changing request that carries an
//! `Origin` header (browsers add it; other clients do not) is refused
//! unless that origin is allowed (`--allowed-origin`); and JSON bodies
//! must say they are JSON, which a simple request cannot.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;

/// The refusal of a state-changing request from a web page whose origin
/// is not allowed, if `request` is one.
pub fn foreign_origin_refusal(state: &ApiState, request: &Request) -> Option<Response> {
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .filter(|_| changes_state)?;
    let origin = origin.to_str().unwrap_or("(not text)");
    if state
        .allowed_origins
        .iter()
        .any(|allowed| allowed == origin)
    {
        return None;
    }
    Some(
        ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!(
                "requests from web pages at {origin} may not change anything; \
                 allow the origin with --allowed-origin if it is yours"
            ),
        )
        .into_response(),
    )
}

/// Refuses a non-empty body not sent as `application/json`.
pub fn require_json(headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("the body must be sent with Content-Type: application/json (got '{content_type}')"),
    ))
}
