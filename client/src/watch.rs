//! [`Client::watch`](crate::Client::watch)'s state machine: it opens the
//! event stream, turns SSE events into [`WatchEvent`]s, reconnects after a
//! lost connection (to any endpoint, with backoff, for up to the reconnect
//! timeout) and resumes after the last event it delivered, skipping any
//! replayed ones. It gives up after too many connections in a row that
//! deliver nothing.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, Url};

use crate::client::Client;
use crate::endpoint::show;
use crate::error::{ClientError, describe};
use crate::request::{Call, Consistency, Retry};
use crate::sse::{SseEvent, SseParser};
use crate::wire::{ErrorBody, WatchEvent, WatchEventKind};

/// The stream of [`Client::watch`]: the events under `prefix` from
/// `from_revision`, or from the first change after it starts.
pub(crate) fn watch(
    client: Client,
    prefix: &str,
    from_revision: Option<u64>,
) -> impl Stream<Item = Result<WatchEvent, ClientError>> + Send + Unpin + 'static {
    let state = WatchState::new(client, prefix, from_revision);
    futures::stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    })
    .boxed()
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// How many connections in a row may end without delivering a single byte
/// (not even a keep-alive) before a watch gives up.
const MAX_QUIET_WATCH_CONNECTIONS: u32 = 10;

/// The progress of one [`Client::watch`].
struct WatchState {
    client: Client,
    prefix: String,
    /// The revision the next (re)connection starts from.
    next_revision: Option<u64>,
    body: Option<(Url, ByteStream)>,
    parser: SseParser,
    pending: VecDeque<WatchEvent>,
    done: bool,
    /// Whether a connection was ever open (so failures are reconnects).
    connected_before: bool,
    /// Whether the open connection delivered any bytes.
    got_bytes: bool,
    /// Connections in a row that ended without delivering a byte.
    quiet_connections: u32,
    /// The `error` event the server sent before ending the stream, if any.
    ended_with: Option<String>,
    /// When the connection was lost, while it is being re-established.
    lost_since: Option<Instant>,
}

impl WatchState {
    fn new(client: Client, prefix: &str, from_revision: Option<u64>) -> Self {
        Self {
            client,
            prefix: prefix.to_owned(),
            next_revision: from_revision,
            body: None,
            parser: SseParser::default(),
            pending: VecDeque::new(),
            done: false,
            connected_before: false,
            got_bytes: false,
            quiet_connections: 0,
            ended_with: None,
            lost_since: None,
        }
    }

    /// The next item of the stream; `None` once it ended.
    async fn next(&mut self) -> Option<Result<WatchEvent, ClientError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            let Some((endpoint, body)) = &mut self.body else {
                if let Err(e) = self.connect().await {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            };
            let idle = self.client.options.stream_idle_timeout;
            let lost = match tokio::time::timeout(idle, body.next()).await {
                Ok(Some(Ok(chunk))) => {
                    self.got_bytes = true;
                    self.quiet_connections = 0;
                    if let Err(e) = self.take_events(&chunk) {
                        self.done = true;
                        self.pending.clear();
                        return Some(Err(e));
                    }
                    continue;
                }
                Ok(Some(Err(e))) => describe(&e),
                Ok(None) => match self.ended_with.take() {
                    Some(error) => format!("the server ended the stream ({error})"),
                    None => "the server closed the stream".to_owned(),
                },
                Err(_) => format!("no data for {} s", idle.as_secs()),
            };
            let endpoint = show(endpoint);
            self.body = None;
            if !self.got_bytes {
                self.quiet_connections += 1;
                if self.quiet_connections >= MAX_QUIET_WATCH_CONNECTIONS {
                    self.done = true;
                    return Some(Err(ClientError::Transport {
                        detail: format!(
                            "the watch of {:?} ended {} times in a row without data, \
                             last at {endpoint}: {lost}",
                            self.prefix, self.quiet_connections
                        ),
                    }));
                }
            }
            self.lost_since.get_or_insert_with(Instant::now);
            tokio::time::sleep(backoff(self.quiet_connections)).await;
        }
    }

    /// Parses a chunk of the open stream into pending events.
    fn take_events(&mut self, chunk: &[u8]) -> Result<(), ClientError> {
        let Some((endpoint, _)) = &self.body else {
            return Ok(());
        };
        let mut events = Vec::new();
        self.parser
            .push(chunk, &mut events)
            .map_err(|reason| ClientError::BadResponse {
                endpoint: show(endpoint),
                reason,
            })?;
        for event in events {
            // The server's last word before it ends the stream (the node
            // is stopping, or the watch fell behind compaction). The
            // reconnect that follows tells which: another node, or a 410.
            if event.event == "error" {
                self.ended_with = Some(match serde_json::from_str::<ErrorBody>(&event.data) {
                    Ok(body) => format!("{}: {}", body.error.code, body.error.message),
                    Err(_) => event.data,
                });
                continue;
            }
            let Some(event) = decode_watch_event(endpoint, event)? else {
                continue;
            };
            // Skip anything replayed after a reconnect.
            if self.next_revision.is_some_and(|next| event.revision < next) {
                continue;
            }
            self.next_revision = Some(event.revision + 1);
            self.pending.push_back(event);
        }
        Ok(())
    }

    /// Opens the event stream. The first connection fails at once; a
    /// reconnect retries passing failures until the reconnect timeout.
    async fn connect(&mut self) -> Result<(), ClientError> {
        let mut attempts = 0;
        loop {
            match self.try_connect().await {
                Ok(()) => {
                    self.connected_before = true;
                    self.got_bytes = false;
                    self.lost_since = None;
                    return Ok(());
                }
                Err(e) if !self.connected_before || !retryable(&e) => return Err(e),
                Err(e) => {
                    let lost_for = self.lost_since.map_or(Duration::ZERO, |t| t.elapsed());
                    if lost_for > self.client.options.watch_reconnect_timeout {
                        return Err(e);
                    }
                    attempts += 1;
                    tokio::time::sleep(backoff(attempts)).await;
                }
            }
        }
    }

    /// Opens the event stream from `next_revision`, learning that revision
    /// first if the caller gave none.
    async fn try_connect(&mut self) -> Result<(), ClientError> {
        let from = match self.next_revision {
            Some(from) => from,
            None => {
                let page = self
                    .client
                    .list(&self.prefix, Some(1), None, Consistency::Linearizable)
                    .await?;
                let from = page.revision + 1;
                self.next_revision = Some(from);
                from
            }
        };
        let mut call = Call::new(
            format!("watch of {:?}", self.prefix),
            Method::GET,
            &["v1", "watch"],
            Retry::Read,
        )
        .query("prefix", &self.prefix)
        .query("from_revision", from);
        call.headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        call.streaming = true;
        let (endpoint, response) = self.client.execute(&call).await?;
        self.body = Some((endpoint, Box::pin(response.bytes_stream())));
        self.parser = SseParser::default();
        Ok(())
    }
}

/// The pause before reconnect attempt `n`: 100 ms doubling to 3.2 s.
fn backoff(n: u32) -> Duration {
    Duration::from_millis(100 << n.min(5))
}

/// Whether a failure to (re)open a watch may pass with time.
fn retryable(error: &ClientError) -> bool {
    match error {
        ClientError::Transport { .. } => true,
        ClientError::Api { status, .. } => status.is_server_error(),
        _ => false,
    }
}

/// A watch event from an SSE event; `None` for event types this client
/// does not know (ignored, as SSE clients do).
fn decode_watch_event(endpoint: &Url, event: SseEvent) -> Result<Option<WatchEvent>, ClientError> {
    let expected = match event.event.as_str() {
        "put" => Some(WatchEventKind::Put),
        "delete" => Some(WatchEventKind::Delete),
        "" | "message" => None,
        _ => return Ok(None),
    };
    let bad = |reason: String| ClientError::BadResponse {
        endpoint: show(endpoint),
        reason,
    };
    let decoded: WatchEvent = serde_json::from_str(&event.data)
        .map_err(|e| bad(format!("a watch event's data is not a WatchEvent: {e}")))?;
    if expected.is_some_and(|kind| kind != decoded.kind) {
        return Err(bad(format!(
            "a watch event of type {:?} carries a {:?}",
            event.event, decoded.kind
        )));
    }
    Ok(Some(decoded))
}
