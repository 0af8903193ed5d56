//! How one worker of the load generator reaches its endpoint. Over plain
//! HTTP a worker owns one HTTP/1.1 connection and drives it on its own
//! task: no pool to check out from, no second task to wake, so the
//! generator spends as little CPU per request as it can and leaves the
//! machine to the servers it measures. After a failure the next request
//! opens a new connection. Over HTTPS the workers share reqwest's pooled
//! client, which brings TLS, a CA of the caller's and client certificates
//! (and over HTTP too with `--pooled`).

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long connecting may take before a request counts as failed.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The most of an error body quoted in the first-error report.
const MAX_QUOTED_BODY_CHARS: usize = 200;

/// One request, whichever way it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Call {
    pub(super) method: Method,
    /// Path and query.
    pub(super) path: String,
    pub(super) body: Bytes,
    /// Whether `body` is JSON (it is sent as such).
    pub(super) json: bool,
}

/// One worker's way to its endpoint.
pub(super) enum Link {
    /// A connection of the worker's own (plain HTTP).
    Own {
        /// `host:port`, to connect to and to name in `Host`.
        authority: String,
        /// The `Authorization` header every request carries, if any.
        authorization: Option<HeaderValue>,
        request_timeout: Duration,
        /// Open, unless none was opened yet or the last one failed.
        connection: Option<Connection>,
    },
    /// reqwest's pooled client, shared by the workers (HTTPS, or `--pooled`).
    Pooled {
        client: reqwest::Client,
        /// The endpoint without a trailing slash.
        base: String,
        token: Option<String>,
    },
}

impl Link {
    /// The link to `endpoint`: a connection of its own for `http://`
    /// (unless `always_pooled`), `pooled` for `https://`. `pooled` applies
    /// the request timeout itself.
    pub(super) fn new(
        endpoint: &reqwest::Url,
        pooled: &reqwest::Client,
        always_pooled: bool,
        token: Option<&str>,
        request_timeout: Duration,
    ) -> Result<Self, String> {
        if always_pooled || endpoint.scheme() == "https" {
            return Ok(Self::Pooled {
                client: pooled.clone(),
                base: raftcfg_client::show_endpoint(endpoint),
                token: token.map(str::to_owned),
            });
        }
        let host = endpoint
            .host_str()
            .ok_or_else(|| format!("{endpoint} names no host"))?;
        let port = endpoint
            .port_or_known_default()
            .ok_or_else(|| format!("{endpoint} names no port"))?;
        let authorization = token
            .map(|token| HeaderValue::from_str(&format!("Bearer {token}")))
            .transpose()
            .map_err(|_| "the token cannot be sent in a header".to_owned())?;
        Ok(Self::Own {
            authority: format!("{host}:{port}"),
            authorization,
            request_timeout,
            connection: None,
        })
    }

    /// Sends `call` and reads its whole answer; an error says why it
    /// failed, quoting the start of a non-success answer's body.
    pub(super) async fn send(&mut self, call: &Call) -> Result<(), String> {
        let (status, body) = match self {
            Self::Own {
                authority,
                authorization,
                request_timeout,
                connection,
            } => {
                let request = own_request(call, authority, authorization.as_ref())?;
                let answer = tokio::time::timeout(
                    *request_timeout,
                    exchange(connection, authority, request),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "no answer within {}s",
                        request_timeout.as_secs_f64()
                    ))
                });
                if answer.is_err() {
                    // Its state is unknown: the next request connects anew.
                    *connection = None;
                }
                answer.map_err(|e| format!("http://{authority}: {e}"))?
            }
            Self::Pooled {
                client,
                base,
                token,
            } => {
                let mut request = client
                    .request(call.method.clone(), format!("{base}{}", call.path))
                    .body(call.body.clone());
                if call.json {
                    request = request.header(CONTENT_TYPE, "application/json");
                }
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.map_err(|e| describe(&e))?;
                let status = response.status();
                let body = response.bytes().await.map_err(|e| describe(&e))?;
                (status, body)
            }
        };
        if status.is_success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&body);
        let text: String = text.trim().chars().take(MAX_QUOTED_BODY_CHARS).collect();
        Err(format!("{} answered {status}: {text}", self.endpoint()))
    }

    /// The endpoint, as error messages name it.
    fn endpoint(&self) -> String {
        match self {
            Self::Own { authority, .. } => format!("http://{authority}"),
            Self::Pooled { base, .. } => base.clone(),
        }
    }
}

/// An HTTP/1.1 connection and the future that does its I/O, which the
/// worker's task polls alongside each request.
pub(super) struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    driver: Pin<Box<http1::Connection<TokioIo<TcpStream>, Full<Bytes>>>>,
}

impl Connection {
    /// Sends `request` and reads the whole answer, and says whether the
    /// connection closed meanwhile (it must then not be used again).
    async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> (Result<(StatusCode, Bytes), String>, bool) {
        let Self { sender, driver } = self;
        let answer = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the answer failed: {e}"))?
                .to_bytes();
            Ok((status, body))
        };
        let mut answer = std::pin::pin!(answer);
        tokio::select! {
            biased;
            answer = &mut answer => (answer, false),
            ended = driver.as_mut() => match ended {
                // The server may have closed it right after answering.
                Ok(()) => (answer.await, true),
                Err(e) => (Err(format!("the connection failed: {e}")), true),
            },
        }
    }

    /// Waits until the connection takes a request; false if it closed
    /// instead.
    async fn takes_requests(&mut self) -> bool {
        let Self { sender, driver } = self;
        tokio::select! {
            biased;
            ready = sender.ready() => ready.is_ok(),
            _ = driver.as_mut() => false,
        }
    }
}

/// `call` as a request on a connection to `authority`.
fn own_request(
    call: &Call,
    authority: &str,
    authorization: Option<&HeaderValue>,
) -> Result<Request<Full<Bytes>>, String> {
    let mut request = Request::builder()
        .method(call.method.clone())
        .uri(call.path.as_str())
        .header(HOST, authority);
    if call.json {
        request = request.header(CONTENT_TYPE, "application/json");
    }
    if let Some(authorization) = authorization {
        request = request.header(AUTHORIZATION, authorization);
    }
    request
        .body(Full::new(call.body.clone()))
        .map_err(|e| format!("cannot make a request of {}: {e}", call.path))
}

/// Sends `request` on `connection`, opening one first if there is none or
/// the server closed it (after its last answer, or while it was idle), and
/// reads the whole answer.
async fn exchange(
    connection: &mut Option<Connection>,
    authority: &str,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    if let Some(open) = connection
        && !open.takes_requests().await
    {
        *connection = None;
    }
    let open = match connection {
        Some(open) => open,
        None => connection.insert(connect(authority).await?),
    };
    let (answer, closed) = open.exchange(request).await;
    if closed {
        *connection = None;
    }
    answer
}

/// Opens an HTTP/1.1 connection to `authority`, Nagle off.
async fn connect(authority: &str) -> Result<Connection, String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority))
        .await
        .map_err(|_| format!("connecting took more than {}s", CONNECT_TIMEOUT.as_secs()))?
        .map_err(|e| format!("cannot connect: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("cannot turn Nagle off: {e}"))?;
    let (sender, driver) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("cannot start HTTP/1.1: {e}"))?;
    Ok(Connection {
        sender,
        driver: Box::pin(driver),
    })
}

/// reqwest's error with its causes, which say what actually happened.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
