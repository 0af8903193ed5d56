//! `GET /v1/watch?prefix=P&from_revision=R`: the change log as Server-Sent
//! Events — one event per put or delete under the prefix, in revision
//! order, from `R` (default: the next revision) on; `410 Gone` if `R` was
//! compacted. Each event's `event` is `put` or `delete`, its `id` the
//! revision and its `data` a [`WatchEvent`] in JSON, so a client that
//! reconnects resumes from the last id + 1. A reconnecting browser
//! `EventSource` sends that id as `Last-Event-ID`, which takes precedence
//! over `from_revision` (the URL's original start): it resumes with no gap
//! and no replay.
//!
//! A watch reads the change log (through the driver) only to start and
//! when it falls behind; otherwise it is fed from the driver's published
//! batches of applied changes ([`NodeHandle::subscribe_changes`]), which
//! costs the driver nothing per watcher.
//!
//! [`NodeHandle::subscribe_changes`]: crate::driver::NodeHandle::subscribe_changes

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::Stream;
use raftcfg_client::wire::{WatchEvent, WatchEventKind};
use tokio::sync::broadcast::{self, error::RecvError};

use super::ApiState;
use super::error::ApiError;
use super::params::Params;
use crate::auth::Caller;
use crate::driver::{ChangeBatch, Consistency, Query, QueryResult};
use crate::kv::{Change, ChangeKind, KeyPrefix, Revision};
use crate::metrics::Held;

/// The revision a reconnecting client saw last, from `Last-Event-ID`.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_header",
                "Last-Event-ID must be the revision of the last event seen",
            )
        })
}

/// Changes read from the store at a time.
const PAGE: usize = 256;

/// `GET /v1/watch`.
pub async fn watch(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let params = Params::parse(query.as_deref(), &["prefix", "from_revision"])?;
    let prefix = match params.text("prefix") {
        None | Some("") => KeyPrefix::everything(),
        Some(text) => KeyPrefix::parse(text, &state.limits)
            .map_err(|e| ApiError::bad_request("bad_key", format!("invalid prefix: {e}")))?,
    };
    caller.check_read_under(prefix.as_str())?;
    let from = match (last_event_id(&headers)?, params.number("from_revision")?) {
        (Some(seen), _) => Revision(seen.saturating_add(1)),
        (None, Some(revision)) => Revision(revision.max(1)),
        (None, None) => state.node.view().revision.next(),
    };
    // Subscribed before the first read, so nothing applied after the read
    // is missed; a start that was compacted is a 410, before answering 200.
    let feed = state.node.subscribe_changes();
    let first = fetch(&state, &prefix, from).await?;
    let watcher = Watcher {
        _open: Held::new(&state.metrics.watchers),
        state,
        caller,
        prefix,
        next: first.1,
        buffered: first.0.into(),
        feed,
        pending: None,
        done: false,
    };
    let events = futures::stream::unfold(watcher, |mut watcher| async move {
        let event = watcher.next_event().await?;
        Some((Ok(event), watcher))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// One watch's position in the change log.
struct Watcher {
    /// Counts the watch in `raftcfg_watchers`.
    _open: Held,
    state: Arc<ApiState>,
    /// Who watches: only the keys it may read are sent (under the auth
    /// state of the watch's start).
    caller: Caller,
    prefix: KeyPrefix,
    /// The first revision not yet read.
    next: Revision,
    buffered: VecDeque<Change>,
    feed: broadcast::Receiver<ChangeBatch>,
    /// A batch from the feed that starts after `next`: the change log is
    /// read up to it first.
    pending: Option<ChangeBatch>,
    done: bool,
}

impl Watcher {
    /// The next event, waiting for new revisions as needed; `None` ends the
    /// stream (after an `error` event if the watch cannot continue).
    async fn next_event(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        loop {
            if let Some(change) = self.buffered.pop_front() {
                if self.caller.may_read(change.key.as_str()) {
                    return Some(change_event(change));
                }
                continue;
            }
            let batch = match self.pending.take() {
                Some(batch) => batch,
                None => match self.feed.recv().await {
                    Ok(batch) => batch,
                    // Fell behind the feed: read what was missed from the
                    // log; batches still held are then older than `next`.
                    Err(RecvError::Lagged(_)) => {
                        if let Err(event) = self.read_log().await {
                            return Some(event);
                        }
                        continue;
                    }
                    Err(RecvError::Closed) => {
                        self.done = true;
                        return Some(error_event("stopping", "the node is stopping"));
                    }
                },
            };
            if batch.last < self.next {
                continue;
            }
            let Some(changes) = batch.changes.as_ref().filter(|_| batch.first <= self.next) else {
                // A gap (the feed lagged, or a snapshot was installed) or
                // values too large for the feed: the log has them, or says
                // they were compacted.
                let before = self.next;
                let missing = format!("{before} to {}", batch.last);
                self.pending = Some(batch);
                if let Err(event) = self.read_log().await {
                    return Some(event);
                }
                if self.next == before && self.buffered.is_empty() {
                    // The log should hold what the feed skipped; never
                    // pass over revisions silently.
                    self.done = true;
                    return Some(error_event(
                        "internal",
                        &format!("the change log lacks revisions {missing}"),
                    ));
                }
                continue;
            };
            let next = self.next;
            self.buffered.extend(
                changes
                    .iter()
                    .filter(|change| change.revision >= next && self.prefix.matches(&change.key))
                    .cloned(),
            );
            self.next = batch.last.next();
        }
    }

    /// Reads one page of the change log from `next`; the error is the
    /// event that ends the watch.
    async fn read_log(&mut self) -> Result<(), Event> {
        match fetch(&self.state, &self.prefix, self.next).await {
            Ok((changes, next)) => {
                self.buffered = changes.into();
                self.next = next;
                Ok(())
            }
            Err(error) => {
                self.done = true;
                Err(error_event(error.code, &error.message))
            }
        }
    }
}

/// Reads a page of changes from `from`: the changes and where to go on.
async fn fetch(
    state: &ApiState,
    prefix: &KeyPrefix,
    from: Revision,
) -> Result<(Vec<Change>, Revision), ApiError> {
    let query = Query::Changes {
        prefix: prefix.clone(),
        from,
        limit: PAGE,
    };
    match state.read(query, Consistency::Serializable).await? {
        QueryResult::Changes(Ok(page), _) => Ok((page.changes, page.next_revision)),
        QueryResult::Changes(Err(compacted_to), _) => Err(ApiError::new(
            StatusCode::GONE,
            "compacted",
            format!(
                "revisions up to {compacted_to} were compacted; watch from {} or later",
                compacted_to.next()
            ),
        )),
        _ => Err(ApiError::mismatched_answer()),
    }
}

fn change_event(change: Change) -> Event {
    let (kind, value) = match &change.kind {
        ChangeKind::Put { value, .. } => (WatchEventKind::Put, Some(BASE64.encode(value))),
        ChangeKind::Delete => (WatchEventKind::Delete, None),
    };
    let body = WatchEvent {
        revision: change.revision.get(),
        kind,
        key: change.key.as_str().to_owned(),
        value_base64: value,
    };
    Event::default()
        .event(match kind {
            WatchEventKind::Put => "put",
            WatchEventKind::Delete => "delete",
        })
        .id(change.revision.get().to_string())
        .data(serde_json::to_string(&body).expect("a watch event serializes"))
}

fn error_event(code: &str, message: &str) -> Event {
    let body = raftcfg_client::wire::ErrorBody::new(code, message);
    Event::default()
        .event("error")
        .data(serde_json::to_string(&body).expect("an error body serializes"))
}
