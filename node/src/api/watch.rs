//! `GET /v1/watch?prefix=P&from_revision=R`: the change log as Server-Sent
//! Events — one event per put or delete under the prefix, in revision
//! order, from `R` (default: the next revision) on; `410 Gone` if `R` was
//! compacted. Each event's `event` is `put` or `delete`, its `id` the
//! revision and its `data` a [`WatchEvent`] in JSON, so a client that
//! reconnects resumes from the last id + 1.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::Stream;
use raftcfg_client::wire::{WatchEvent, WatchEventKind};

use super::ApiState;
use super::error::ApiError;
use super::params::Params;
use crate::driver::{Consistency, Query, QueryResult};
use crate::kv::{Change, ChangeKind, KeyPrefix, Revision};

/// Changes read from the store at a time.
const PAGE: usize = 256;

/// `GET /v1/watch`.
pub async fn watch(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let params = Params::parse(query.as_deref(), &["prefix", "from_revision"])?;
    let prefix = match params.text("prefix") {
        None | Some("") => KeyPrefix::everything(),
        Some(text) => KeyPrefix::parse(text, &state.limits)
            .map_err(|e| ApiError::bad_request("bad_key", format!("invalid prefix: {e}")))?,
    };
    let from = match params.number("from_revision")? {
        Some(revision) => Revision(revision.max(1)),
        None => state.node.view().revision.next(),
    };
    // Check the start before answering 200, so a compacted start is a 410.
    let first = fetch(&state, &prefix, from).await?;
    let watcher = Watcher {
        state,
        prefix,
        next: first.1,
        buffered: first.0.into(),
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
    state: ApiState,
    prefix: KeyPrefix,
    /// The first revision not yet read.
    next: Revision,
    buffered: VecDeque<Change>,
    done: bool,
}

impl Watcher {
    /// The next event, waiting for new revisions as needed; `None` ends the
    /// stream (after an `error` event if the watch cannot continue).
    async fn next_event(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        let mut updates = self.state.node.subscribe();
        loop {
            if let Some(change) = self.buffered.pop_front() {
                return Some(change_event(change));
            }
            if updates.borrow_and_update().revision < self.next {
                if updates.changed().await.is_err() {
                    self.done = true;
                    return Some(error_event("stopping", "the node is stopping"));
                }
                continue;
            }
            match fetch(&self.state, &self.prefix, self.next).await {
                Ok((changes, next)) => {
                    self.buffered = changes.into();
                    self.next = next;
                }
                Err(error) => {
                    self.done = true;
                    return Some(error_event(error.code, &error.message));
                }
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
