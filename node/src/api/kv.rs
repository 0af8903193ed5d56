//! `/v1/kv`: get, put, delete and list keys, with `If-Match` /
//! `If-None-Match: *` preconditions, conditional reads (`If-None-Match`
//! with the ETag a client holds: `304 Not Modified`) and a choice of read
//! consistency.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use raftcfg_client::wire::{KeyValue, ListResponse, WriteResponse};

use super::ApiState;
use super::error::ApiError;
use super::params::Params;
use crate::auth::Caller;
use crate::driver::{Query, QueryResult};
use crate::kv::{Command, Key, KeyError, KeyPrefix, KeyRecord, Outcome, Precondition, Revision};
use axum::Extension;

/// Keys listed at most per page when `limit` is absent, and at most ever.
const DEFAULT_LIST_LIMIT: usize = 1000;
const MAX_LIST_LIMIT: usize = 10_000;

/// The key of a `/v1/kv/{key}` path, percent-decoded; a path that does
/// not decode to UTF-8 is a 400 `bad_key`.
pub struct KeyPath(String);

impl<S: Send + Sync> FromRequestParts<S> for KeyPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(key)) => Ok(Self(key)),
            Err(rejection) => Err(ApiError::bad_request(
                "bad_key",
                format!(
                    "invalid key: the path does not decode to UTF-8 ({})",
                    rejection.body_text()
                ),
            )),
        }
    }
}

/// `GET /v1/kv/{key}`.
pub async fn get(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    KeyPath(key): KeyPath,
    RawQuery(query): RawQuery,
    request_headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["consistency"])?;
    let key = parse_key(&state, &key)?;
    caller.check_read(key.as_str())?;
    let cached = header_text(&request_headers, header::IF_NONE_MATCH)?;
    let result = state
        .read(Query::Get(key.clone()), params.consistency()?)
        .await?;
    let QueryResult::Get(record, revision) = result else {
        return Err(ApiError::mismatched_answer());
    };
    let Some(record) = record else {
        return Err(ApiError::not_found(format!("key '{key}' does not exist")));
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag(record.mod_revision));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    set_number(
        &mut headers,
        "x-raftcfg-create-revision",
        record.create_revision.get(),
    );
    set_number(
        &mut headers,
        "x-raftcfg-mod-revision",
        record.mod_revision.get(),
    );
    set_number(&mut headers, "x-raftcfg-version", record.version);
    set_number(&mut headers, "x-raftcfg-revision", revision.get());
    if cached.is_some_and(|tags| matches_etag(tags, record.mod_revision)) {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    Ok((headers, record.value).into_response())
}

/// Whether an `If-None-Match` list (`"3", "7"`, `W/"7"` or `*`) names the
/// ETag of `revision`: the client's copy is current.
fn matches_etag(tags: &str, revision: Revision) -> bool {
    let ours = format!("\"{revision}\"");
    tags.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours)
}

/// `PUT /v1/kv/{key}`: the body is the value.
pub async fn put(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    KeyPath(key): KeyPath,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let key = parse_key(&state, &key)?;
    caller.check_write(key.as_str())?;
    let value = body.map_err(|e| body_error(&state, e))?;
    state.limits.check_value(&value).map_err(|e| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "value_too_large",
            e.to_string(),
        )
    })?;
    let precondition = precondition(&headers, true)?;
    let outcome = state
        .write(
            &caller,
            Command::Put {
                key: key.clone(),
                value,
                precondition,
            },
        )
        .await?;
    write_response(&key, outcome)
}

/// `DELETE /v1/kv/{key}`.
pub async fn delete(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    KeyPath(key): KeyPath,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let key = parse_key(&state, &key)?;
    caller.check_write(key.as_str())?;
    let precondition = precondition(&headers, false)?;
    let outcome = state
        .write(
            &caller,
            Command::Delete {
                key: key.clone(),
                precondition,
            },
        )
        .await?;
    write_response(&key, outcome)
}

/// `GET /v1/kv?prefix=P&limit=N&start_after=K`.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Json<ListResponse>, ApiError> {
    let params = Params::parse(
        query.as_deref(),
        &["prefix", "limit", "start_after", "consistency"],
    )?;
    let prefix = match params.text("prefix") {
        None | Some("") => KeyPrefix::everything(),
        Some(text) => KeyPrefix::parse(text, &state.limits).map_err(|e| key_error("prefix", e))?,
    };
    let limit = match params.number("limit")? {
        None => DEFAULT_LIST_LIMIT,
        Some(0) => {
            return Err(ApiError::bad_request(
                "bad_query",
                "limit must be at least 1",
            ));
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(MAX_LIST_LIMIT),
    };
    caller.check_read_under(prefix.as_str())?;
    let mut start_after = params
        .text("start_after")
        .map(|text| parse_key(&state, text))
        .transpose()?;
    let consistency = params.consistency()?;
    // Only keys the caller may read: a page the filter empties is followed
    // by the next, so `more` never comes with nothing to continue from.
    loop {
        let result = state
            .read(
                Query::List {
                    prefix: prefix.clone(),
                    start_after: start_after.clone(),
                    limit,
                },
                consistency,
            )
            .await?;
        let QueryResult::List(page, revision) = result else {
            return Err(ApiError::mismatched_answer());
        };
        let last = page.records.last().map(|record| record.key.clone());
        let items: Vec<KeyValue> = page
            .records
            .into_iter()
            .filter(|record| caller.may_read(record.key.as_str()))
            .map(key_value)
            .collect();
        if !items.is_empty() || !page.more {
            return Ok(Json(ListResponse {
                items,
                more: page.more,
                revision: revision.get(),
            }));
        }
        start_after = last;
    }
}

fn key_value(record: KeyRecord) -> KeyValue {
    KeyValue {
        key: record.key.as_str().to_owned(),
        value_base64: BASE64.encode(&record.value),
        create_revision: record.create_revision.get(),
        mod_revision: record.mod_revision.get(),
        version: record.version,
    }
}

fn write_response(key: &Key, outcome: Outcome) -> Result<Response, ApiError> {
    match outcome {
        Outcome::Written { revision } => Ok((
            [(header::ETAG, etag(revision))],
            Json(WriteResponse {
                revision: revision.get(),
            }),
        )
            .into_response()),
        Outcome::PreconditionFailed {
            current_mod_revision,
        } => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            match current_mod_revision {
                Some(revision) => format!("key '{key}' has mod_revision {revision}"),
                None => format!("key '{key}' does not exist"),
            },
        )),
        Outcome::NotFound => Err(ApiError::not_found(format!("key '{key}' does not exist"))),
        other => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("unexpected outcome of a write: {other:?}"),
        )),
    }
}

/// Parses a key from the URL path, with the size limit as 413.
pub(super) fn parse_key(state: &ApiState, text: &str) -> Result<Key, ApiError> {
    Key::parse(text, &state.limits).map_err(|e| key_error("key", e))
}

fn key_error(what: &str, error: KeyError) -> ApiError {
    match error {
        KeyError::TooLong { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "key_too_large",
            format!("invalid {what}: {error}"),
        ),
        _ => ApiError::bad_request("bad_key", format!("invalid {what}: {error}")),
    }
}

fn body_error(state: &ApiState, error: BytesRejection) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "value_too_large",
            format!(
                "the value is more than the limit of {} bytes",
                state.limits.max_value_bytes
            ),
        )
    } else {
        ApiError::bad_request("bad_body", format!("cannot read the request body: {error}"))
    }
}

/// The precondition of a write from `If-Match: "<mod_revision>"` or (for a
/// put) `If-None-Match: *`.
fn precondition(headers: &HeaderMap, allow_absent: bool) -> Result<Precondition, ApiError> {
    let if_match = header_text(headers, header::IF_MATCH)?;
    let if_none_match = header_text(headers, header::IF_NONE_MATCH)?;
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "bad_precondition",
            "give If-Match or If-None-Match, not both",
        )),
        (Some(tag), None) => {
            let digits = tag
                .strip_prefix('"')
                .and_then(|rest| rest.strip_suffix('"'))
                .unwrap_or(tag);
            match digits.parse::<u64>() {
                Ok(revision) if revision > 0 && !digits.starts_with('+') => {
                    Ok(Precondition::ModRevision(Revision(revision)))
                }
                _ => Err(ApiError::bad_request(
                    "bad_precondition",
                    format!(
                        "If-Match must be a key's mod_revision as an ETag, e.g. \"42\"; got {tag}"
                    ),
                )),
            }
        }
        (None, Some("*")) if allow_absent => Ok(Precondition::Absent),
        (None, Some(other)) => Err(ApiError::bad_request(
            "bad_precondition",
            if allow_absent {
                format!("only If-None-Match: * (create only) is supported; got {other}")
            } else {
                "If-None-Match is not supported on delete".to_owned()
            },
        )),
        (None, None) => Ok(Precondition::None),
    }
}

fn header_text(headers: &HeaderMap, name: HeaderName) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(&name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            "bad_precondition",
            format!("{name} is given more than once"),
        ));
    }
    value.to_str().map(|text| Some(text.trim())).map_err(|_| {
        ApiError::bad_request("bad_precondition", format!("{name} is not visible ASCII"))
    })
}

fn etag(revision: Revision) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).expect("digits in quotes are a valid header")
}

fn set_number(headers: &mut HeaderMap, name: &'static str, value: u64) {
    headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
}
