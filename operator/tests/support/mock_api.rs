//! A mocked Kubernetes API server for the operator's tests: a `kube::Client`
//! whose requests arrive at a [`MockApi`] instead of the network. The test
//! expects them one at a time ([`MockApi::expect`]): each is checked exactly
//! (method, path, query, content type, JSON body) and then answered.
//!
//! [`MockApi::run`] drives the operator and the test's script together. A
//! request the script does not expect leaves the operator waiting for an
//! answer, and a request the script expects but the operator never makes
//! leaves the script waiting; either way the test fails after a timeout and
//! says which request it was. Requests are answered in the order they come:
//! the operator under test makes one at a time.
//!
//! Every request received is also appended to a shared [`Log`] as
//! `METHOD /path`, so a test can check how API requests interleave with the
//! operator's other calls (for example to the raftcfg nodes).

// Each test crate that includes this file uses only part of it.
#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use axum::extract::Query;
use http::{Method, Request, Response, StatusCode, Uri};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

/// How long either side waits for the other before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// What happened, in order: API requests and whatever else a test records.
pub type Log = Arc<Mutex<Vec<String>>>;

/// A new, empty log.
pub fn log() -> Log {
    Log::default()
}

/// The entries recorded so far.
pub fn entries(log: &Log) -> Vec<String> {
    log.lock().expect("log lock").clone()
}

/// The server side of a mocked client.
pub struct MockApi {
    handle: Handle<Request<Body>, Response<Body>>,
    log: Log,
    /// The request `expect` waits for.
    awaiting: Option<String>,
}

/// A client whose requests go to the returned [`MockApi`].
pub fn client(log: &Log) -> (kube::Client, MockApi) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let api = MockApi {
        handle,
        log: log.clone(),
        awaiting: None,
    };
    (kube::Client::new(service, "default"), api)
}

/// A request the test expects.
pub struct Expected {
    method: Method,
    uri: &'static str,
    content_type: Option<&'static str>,
    /// `None`: any body (the caller checks what `expect` returns).
    body: Option<Value>,
}

/// A GET of `uri`, without a body.
pub fn get(uri: &'static str) -> Expected {
    Expected {
        method: Method::GET,
        uri,
        content_type: None,
        body: Some(Value::Null),
    }
}

/// A server-side apply of `body` to `uri`.
pub fn apply(uri: &'static str, body: Value) -> Expected {
    Expected {
        method: Method::PATCH,
        uri,
        content_type: Some("application/apply-patch+yaml"),
        body: Some(body),
    }
}

/// A server-side apply to `uri`; the caller checks the body.
pub fn apply_any(uri: &'static str) -> Expected {
    Expected {
        method: Method::PATCH,
        uri,
        content_type: Some("application/apply-patch+yaml"),
        body: None,
    }
}

/// A JSON merge patch of `uri`; the caller checks the body.
pub fn merge_patch(uri: &'static str) -> Expected {
    Expected {
        method: Method::PATCH,
        uri,
        content_type: Some("application/merge-patch+json"),
        body: None,
    }
}

/// A POST (create) of a JSON body to `uri`; the caller checks the body.
pub fn post(uri: &'static str) -> Expected {
    Expected {
        method: Method::POST,
        uri,
        content_type: Some("application/json"),
        body: None,
    }
}

/// A PUT (replace) of a JSON body to `uri`; the caller checks the body.
pub fn put(uri: &'static str) -> Expected {
    Expected {
        method: Method::PUT,
        uri,
        content_type: Some("application/json"),
        body: None,
    }
}

/// A DELETE of `uri` with default delete options.
pub fn delete(uri: &'static str) -> Expected {
    Expected {
        method: Method::DELETE,
        uri,
        content_type: Some("application/json"),
        body: Some(json!({})),
    }
}

/// How the mocked server answers.
pub enum Answer {
    /// This status and JSON body.
    Json(StatusCode, Value),
    /// 201 with the request's own body, as a create does.
    Echo,
}

/// 200 with `body`.
pub fn ok(body: Value) -> Answer {
    Answer::Json(StatusCode::OK, body)
}

/// An API `Status` failure with `code` and `reason`, as the API server
/// sends it (e.g. 404 `NotFound`, 409 `Conflict`).
pub fn failure(code: u16, reason: &str) -> Answer {
    let status = StatusCode::from_u16(code).expect("an HTTP status");
    Answer::Json(
        status,
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": format!("mocked {reason}"),
            "reason": reason,
            "code": code,
        }),
    )
}

/// 404 `NotFound`.
pub fn not_found() -> Answer {
    failure(404, "NotFound")
}

impl MockApi {
    /// Runs `operator` while `script` answers its requests; fails the test
    /// if either waits for the other for too long.
    pub async fn run<T>(
        &mut self,
        operator: impl Future<Output = T>,
        script: impl AsyncFnOnce(&mut MockApi),
    ) -> T {
        let mut operator_done = false;
        let finished = {
            let operator = async {
                let outcome = operator.await;
                operator_done = true;
                outcome
            };
            let both = async { tokio::join!(operator, script(self)).0 };
            tokio::time::timeout(PATIENCE, both).await
        };
        match finished {
            Ok(outcome) => outcome,
            Err(_) if operator_done => panic!(
                "the operator finished, but the test still expects {}",
                self.awaiting.as_deref().unwrap_or("a request")
            ),
            Err(_) => panic!("the operator is stuck: {}", self.pending()),
        }
    }

    /// Waits for the next request, checks it against `expected`, answers
    /// it, and returns its JSON body (`null` when empty).
    pub async fn expect(&mut self, expected: Expected, answer: Answer) -> Value {
        let what = format!("{} {}", expected.method, expected.uri);
        self.awaiting = Some(what.clone());
        let (request, respond) = self
            .handle
            .next_request()
            .await
            .unwrap_or_else(|| panic!("expected {what}, but the client is gone"));
        self.awaiting = None;
        let (parts, body) = request.into_parts();
        self.log
            .lock()
            .expect("log lock")
            .push(format!("{} {}", parts.method, parts.uri.path()));

        assert_eq!(parts.method, expected.method, "method of {what}");
        let expected_uri: Uri = expected.uri.parse().expect("an expected URI");
        assert_eq!(parts.uri.path(), expected_uri.path(), "path of {what}");
        assert_eq!(
            query(&parts.uri),
            query(&expected_uri),
            "query of {what} (sent {})",
            parts.uri
        );
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().expect("an ASCII content type"));
        assert_eq!(
            content_type, expected.content_type,
            "content type of {what}"
        );

        let bytes = body.collect_bytes().await.expect("a request body");
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON request body")
        };
        if let Some(expected_body) = &expected.body {
            assert!(
                body == *expected_body,
                "body of {what}\n sent: {}\n expected: {}",
                pretty(&body),
                pretty(expected_body)
            );
        }

        let (status, answer) = match answer {
            Answer::Json(status, answer) => (status, answer),
            Answer::Echo => (StatusCode::CREATED, body.clone()),
        };
        let response = Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&answer).expect("JSON")))
            .expect("a response");
        respond.send_response(response);
        body
    }

    /// The request left unanswered, if any.
    fn pending(&mut self) -> String {
        match self.handle.poll_request() {
            Poll::Ready(Some((request, _))) => format!(
                "it made a request the test did not expect: {} {}",
                request.method(),
                request.uri()
            ),
            _ => "it is waiting, but not for the API server".to_string(),
        }
    }
}

/// The query's decoded `(name, value)` pairs, sorted: their order carries
/// no meaning.
fn query(uri: &Uri) -> Vec<(String, String)> {
    let Query(mut pairs) =
        Query::<Vec<(String, String)>>::try_from_uri(uri).expect("a well-formed query");
    pairs.sort();
    pairs
}

/// JSON for a failure message.
pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON")
}
