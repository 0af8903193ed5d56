//! Failover: how a [`Call`] is sent to the client's endpoints, and when it
//! moves on to the next one:
//!
//! ```text
//!                    connect failure  503 or 410 removed  other 5xx        timeout or reset
//!                    (nothing sent)   (refused)           (maybe applied)  (maybe applied)
//!   read  (GET)      next endpoint    next                next endpoint    next endpoint
//!   write (PUT, ...) next endpoint    next                returned         UnknownOutcome
//! ```
//!
//! (410 `removed` is a member that was removed from the cluster: it did
//! nothing, and the others serve.)
//!
//! Each endpoint gets [`request_timeout`](crate::ClientOptions::request_timeout)
//! to answer, but a read that has no answer from an endpoint within
//! [`read_failover_timeout`](crate::ClientOptions::read_failover_timeout)
//! moves on to the next (a paused or overloaded node costs a read seconds,
//! not the whole timeout); the last endpoint tried gets the whole limit, as
//! does the start of a watch or backup stream.
//!
//! Every endpoint is tried at most once per request, and an endpoint that
//! answers becomes the first choice of the next one; a pinned call
//! (`bootstrap`, `node_status_of`) goes to one endpoint only. A write whose
//! request may have reached a server is never repeated: its outcome is
//! unknown and the caller is told so ([`ClientError::UnknownOutcome`])
//! rather than told it failed. Successful bodies are read and decoded here
//! too.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header;
use reqwest::{Response, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::endpoint::show;
use crate::error::{ClientError, api_error, describe};
use crate::request::{Call, Retry};

/// The error code of a server that stopped waiting for a write (504): it
/// may or may not take effect.
const OUTCOME_UNKNOWN: &str = "outcome_unknown";
/// The error code of a member that was removed from the cluster (410): it
/// did nothing.
const REMOVED: &str = "removed";

impl Client {
    /// Sends `call` with failover and decodes a JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: &Call) -> Result<T, ClientError> {
        let (endpoint, response) = self.execute(call).await?;
        decode_json(&endpoint, response).await
    }

    /// Sends `call` to the remembered endpoint, then the others, under the
    /// failover rules of the module doc. Returns a successful (2xx) answer;
    /// any other status becomes [`ClientError::Api`].
    pub(crate) async fn execute(&self, call: &Call) -> Result<(Url, Response), ClientError> {
        let start = self.preferred.load(Ordering::Relaxed) % self.endpoints.len();
        let (endpoint, response) = self.execute_on(&self.endpoints, start, call).await?;
        if let Some(index) = self.endpoints.iter().position(|e| *e == endpoint) {
            self.preferred.store(index, Ordering::Relaxed);
        }
        Ok((endpoint, response))
    }

    /// Tries each of `endpoints` at most once, starting at `start`, signed
    /// in with the client's credentials (once more with a new token if the
    /// one held went stale).
    pub(crate) async fn execute_on(
        &self,
        endpoints: &[Url],
        start: usize,
        call: &Call,
    ) -> Result<(Url, Response), ClientError> {
        let bearer = self.bearer(endpoints, start).await?;
        match self
            .send_on(endpoints, start, call, bearer.as_deref())
            .await
        {
            Err(error) if self.token_went_stale(&error) => {
                let bearer = self.bearer(endpoints, start).await?;
                self.send_on(endpoints, start, call, bearer.as_deref())
                    .await
            }
            answer => answer,
        }
    }

    /// Tries each of `endpoints` at most once, starting at `start`, with
    /// `bearer` as the token if given.
    pub(crate) async fn send_on(
        &self,
        endpoints: &[Url],
        start: usize,
        call: &Call,
        bearer: Option<&str>,
    ) -> Result<(Url, Response), ClientError> {
        let mut unreachable: Vec<String> = Vec::new();
        let mut refused: Option<ClientError> = None;
        let limit = self.options.request_timeout;
        for step in 0..endpoints.len() {
            let endpoint = &endpoints[(start + step) % endpoints.len()];
            let last = step + 1 == endpoints.len();
            // How long to wait for this endpoint's answer to start. (A
            // stream, such as a backup, may take its time to start.)
            let wait = if call.retry == Retry::Read && !call.streaming && !last {
                limit.min(self.options.read_failover_timeout)
            } else {
                limit
            };
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
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            if !call.streaming {
                // A streamed body is read later, under its idle timeout.
                request = request.timeout(limit);
            }
            let sent = match tokio::time::timeout(wait, request.send()).await {
                Ok(result) => result.map_err(|e| (e.is_connect(), describe(&e))),
                Err(_) => Err((false, format!("no answer within {}", seconds(wait)))),
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
                    let removed = status == StatusCode::GONE && error.code() == Some(REMOVED);
                    let next = match call.retry {
                        Retry::Read => status.is_server_error() || removed,
                        Retry::Write => status == StatusCode::SERVICE_UNAVAILABLE || removed,
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

/// A duration as people read it in a message: `3 s`, `0.5 s`.
fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

/// Reads a whole successful body.
pub(crate) async fn read_body(endpoint: &Url, response: Response) -> Result<Bytes, ClientError> {
    response
        .bytes()
        .await
        .map_err(|e| ClientError::BadResponse {
            endpoint: show(endpoint),
            reason: format!("the body could not be read: {}", describe(&e)),
        })
}

/// Reads and decodes a successful JSON body.
pub(crate) async fn decode_json<T: DeserializeOwned>(
    endpoint: &Url,
    response: Response,
) -> Result<T, ClientError> {
    let body = read_body(endpoint, response).await?;
    serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse {
        endpoint: show(endpoint),
        reason: format!("the JSON body could not be decoded: {e}"),
    })
}
