//! One error shape for both ports: every error answer is the JSON envelope
//! `{"error": {"code", "message"}}`. Each port's one layer around its
//! routes (`http_metrics::answer`) refuses request targets and header
//! blocks beyond the limits below with that envelope ([`oversized`]), and
//! rewrites any error answer that is not JSON yet (an axum extractor's
//! rejection, a peer route's plain text) into it ([`enveloped`]), keeping
//! its status and its text as the message.
//!
//! Requests too large for the HTTP layer to parse at all (a request target
//! over 64 KiB, more than [`HYPER_MAX_HEADERS`] header lines, or a head
//! over 400 KiB) never reach a router: hyper answers them with a bare
//! 414 or 431 and closes the connection.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use raftcfg_client::wire::ErrorBody;

/// The longest request target (path and query) accepted, in bytes: room
/// for a key at the largest key limit, percent-encoded.
pub const MAX_TARGET_BYTES: usize = 48 * 1024;
/// The most header lines a request may have.
pub const MAX_HEADERS: usize = 90;
/// The most bytes of header names and values a request may have.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// hyper's own bound on header lines, above [`MAX_HEADERS`] so that the
/// requests between the two get a JSON answer. Not above 100: hyper parses
/// each request into room for this many headers, kept inline up to 100 and
/// allocated (and filled) on the heap per request beyond, which cost a
/// read about a tenth of its CPU at 1,000.
pub const HYPER_MAX_HEADERS: usize = 100;

/// The most bytes of a plain-text error answer kept as the message.
const MAX_MESSAGE_BYTES: usize = 4096;

/// `response` as it is if it is no error or already JSON, else as the
/// envelope with its status and its text as the message.
pub async fn enveloped(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let body = serde_json::to_vec(&ErrorBody::new(code(status), message))
        .expect("an error body always serializes");
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// The answer to a request whose target or headers are too large.
pub fn oversized(request: &Request) -> Option<Response> {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > MAX_TARGET_BYTES {
        return Some(envelope(
            StatusCode::URI_TOO_LONG,
            format!(
                "the request target is {target} bytes, more than the {MAX_TARGET_BYTES} accepted"
            ),
        ));
    }
    let headers = request.headers();
    if headers.len() > MAX_HEADERS {
        return Some(envelope(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request has {} header lines, more than the {MAX_HEADERS} accepted",
                headers.len()
            ),
        ));
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if bytes > MAX_HEADER_BYTES {
        return Some(envelope(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request's headers hold {bytes} bytes, more than the {MAX_HEADER_BYTES} accepted"
            ),
        ));
    }
    None
}

fn envelope(status: StatusCode, message: String) -> Response {
    error_response(status, code(status), message)
}

/// An error answer with its own code.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(ErrorBody::new(code, message.into()))).into_response()
}

/// The message of an error answer from another node: the envelope's, or
/// the text as it came.
pub fn message_of(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) => format!("{}: {}", error.error.code, error.error.message),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// The code of an error that only has a status.
fn code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "no_such_endpoint",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UPGRADE_REQUIRED => "upgrade_required",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        status if status.is_server_error() => "internal",
        _ => "bad_request",
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route(
                "/text",
                get(|| async { (StatusCode::CONFLICT, "taken already") }),
            )
            .route("/bare", get(|| async { StatusCode::REQUEST_TIMEOUT }))
            .route(
                "/number/{n}",
                get(
                    |axum::extract::Path(n): axum::extract::Path<u64>| async move { n.to_string() },
                ),
            )
            .route(
                "/json",
                get(|| async { envelope(StatusCode::GONE, "gone for good".to_owned()) }),
            )
    }

    /// `app` as a port serves it: through the layer that makes envelopes.
    fn served() -> Router {
        crate::http_metrics::tracked(
            app(),
            std::sync::Arc::new(crate::metrics::Metrics::default()),
            crate::metrics::PEER_PORT,
        )
    }

    async fn call(request: Request) -> (StatusCode, serde_json::Value) {
        let response = served().oneshot(request).await.unwrap();
        let status = response.status();
        assert!(is_json(&response), "{status} is not JSON");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    fn get_request(target: &str) -> Request {
        Request::get(target).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn plain_text_and_bare_errors_become_the_envelope_with_their_status() {
        let (status, body) = call(get_request("/text")).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"]["code"], "conflict");
        assert_eq!(body["error"]["message"], "taken already");

        let (status, body) = call(get_request("/bare")).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(body["error"]["code"], "request_timeout");
        assert_eq!(body["error"]["message"], "Request Timeout");

        let (status, body) = call(get_request("/number/x")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "bad_request");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("u64"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn an_answer_that_is_already_json_is_left_alone() {
        let (status, body) = call(get_request("/json")).await;
        assert_eq!(status, StatusCode::GONE);
        assert_eq!(body["error"]["message"], "gone for good");
    }

    #[tokio::test]
    async fn a_long_target_is_414_and_many_or_large_headers_are_431() {
        let long = format!("/text?x={}", "a".repeat(MAX_TARGET_BYTES));
        let (status, body) = call(get_request(&long)).await;
        assert_eq!(status, StatusCode::URI_TOO_LONG);
        assert_eq!(body["error"]["code"], "uri_too_long");

        let mut many = get_request("/text");
        for i in 0..=MAX_HEADERS {
            many.headers_mut().insert(
                axum::http::HeaderName::try_from(format!("x-h{i}")).unwrap(),
                HeaderValue::from_static("1"),
            );
        }
        let (status, body) = call(many).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(body["error"]["code"], "headers_too_large");

        let mut large = get_request("/text");
        large.headers_mut().insert(
            "x-big",
            HeaderValue::try_from("b".repeat(MAX_HEADER_BYTES + 1)).unwrap(),
        );
        let (status, _) = call(large).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
}
