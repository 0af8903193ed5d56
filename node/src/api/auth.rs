//! `/v1/auth`: turning authentication on and off, tokens for passwords,
//! users and roles; and [`sign_in`], the step of the client port's layer
//! (`api::admit`) that signs every request in and refuses, before its
//! handler runs, those that need a signed-in caller or the root role and
//! lack them (see [`crate::auth`]).
//!
//! Open to all: `/healthz`, `/readyz`, `/metrics`, `/v1/node`,
//! `/v1/auth/status` and `/v1/auth/token`. Signed in: keys (each handler
//! checks the key or prefix), and reading the members and the leader.
//! Everything else needs the root role.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use raftcfg_client::wire::{
    AddRoleRequest, AddUserRequest, AuthStatus, PasswordRequest, Permission, RoleInfo, RoleList,
    TokenRequest, TokenResponse, UserInfo, UserList,
};

use super::ApiState;
use super::cluster::json_body;
use super::error::ApiError;
use super::params::Params;
use crate::auth::{Caller, CertificateName, Denied, password, token};
use crate::kv::{Access, AuthChange, AuthState, Command, Outcome, ROOT_ROLE};
use axum::Extension;

/// What a route needs of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    Nothing,
    SignedIn,
    Root,
}

fn need(method: &Method, path: &str) -> Need {
    match path {
        "/healthz" | "/readyz" | "/metrics" | "/v1/node" | "/v1/auth/status" | "/v1/auth/token" => {
            Need::Nothing
        }
        "/v1/kv" | "/v1/watch" => Need::SignedIn,
        "/v1/cluster/members" | "/v1/cluster/leader" if method == Method::GET => Need::SignedIn,
        _ if path.starts_with("/v1/kv/") => Need::SignedIn,
        _ => Need::Root,
    }
}

/// Signs the request in (its [`Caller`] goes in its extensions) and
/// refuses it if its route needs more than the caller has.
pub async fn sign_in(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let need = need(request.method(), request.uri().path());
    if need == Need::Nothing {
        return next.run(request).await;
    }
    let signed_in = bearer(request.headers()).and_then(|bearer| {
        let certificate = request.extensions().get::<CertificateName>();
        Caller::sign_in(state.node.auth(), bearer, certificate).map_err(ApiError::from)
    });
    let caller = match signed_in {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    if need == Need::Root
        && let Err(denied) = caller.check_root()
    {
        return ApiError::from(denied).into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The bearer token of `Authorization`, if any.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.strip_prefix("Bearer "))
        .map(|token| Some(token.trim()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "Authorization must be 'Bearer <token>' (get one from POST /v1/auth/token)",
            )
        })
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        let message = denied.to_string();
        match denied {
            Denied::NoCredentials | Denied::UnknownCertificateUser(_) => {
                Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
            }
            Denied::BadToken(_) => Self::new(StatusCode::UNAUTHORIZED, "invalid_token", message),
            Denied::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
        }
    }
}

/// `GET /v1/auth/status`.
pub async fn status(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Result<Json<AuthStatus>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    Ok(Json(AuthStatus {
        enabled: state.node.auth().enabled,
    }))
}

/// `POST /v1/auth/token`: a token for a user's password. A wrong password
/// and an unknown user get the same answer, after the same work.
pub async fn issue_token(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<TokenResponse>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let request: TokenRequest = json_body(&headers, &body)?;
    let auth = state.node.auth();
    if !auth.enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "auth_disabled",
            "authentication is not enabled: requests need no token",
        ));
    }
    let name = request.user.clone();
    let user = auth.users.get(&name);
    let hash = user.and_then(|user| user.password_hash.clone());
    let matches = tokio::task::spawn_blocking(move || match &hash {
        Some(hash) => password::verify(&request.password, hash),
        None => password::verify(&request.password, dummy_hash()),
    })
    .await
    .unwrap_or(false);
    let Some(user) = user.filter(|user| matches && user.password_hash.is_some()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong user name or password",
        ));
    };
    Ok(Json(TokenResponse {
        token: token::issue(&auth.token_key, &name, user.generation, state.token_ttl),
        expires_in_seconds: state.token_ttl.as_secs(),
    }))
}

/// A hash to check unknown users' passwords against, so that they cost
/// as much as known ones.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| password::hash("no user has this password").unwrap_or_default())
}

/// `POST /v1/auth/enable`: refused unless a user named root holds the
/// root role.
pub async fn enable(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let mut key = vec![0u8; 32];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no randomness for a token key",
        )
    })?;
    change(
        &state,
        &caller,
        AuthChange::Enable {
            token_key: key.into(),
        },
    )
    .await
}

/// `POST /v1/auth/disable`.
pub async fn disable(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    change(&state, &caller, AuthChange::Disable).await
}

/// `GET /v1/auth/users`.
pub async fn list_users(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Result<Json<UserList>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let auth = state.node.auth();
    Ok(Json(UserList {
        users: auth
            .users
            .iter()
            .map(|(name, user)| UserInfo {
                name: name.clone(),
                roles: user.roles.iter().cloned().collect(),
                has_password: user.password_hash.is_some(),
            })
            .collect(),
    }))
}

/// `POST /v1/auth/users`.
pub async fn add_user(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let request: AddUserRequest = json_body(&headers, &body)?;
    let password_hash = match request.password {
        Some(password) => Some(hash(password).await?),
        None => None,
    };
    change(
        &state,
        &caller,
        AuthChange::AddUser {
            name: request.name,
            password_hash,
        },
    )
    .await
}

/// `DELETE /v1/auth/users/{name}`.
pub async fn delete_user(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    change(&state, &caller, AuthChange::DeleteUser { name }).await
}

/// `PUT /v1/auth/users/{name}/password`.
pub async fn set_password(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let request: PasswordRequest = json_body(&headers, &body)?;
    let password_hash = hash(request.password).await?;
    change(
        &state,
        &caller,
        AuthChange::SetPassword {
            name,
            password_hash,
        },
    )
    .await
}

/// `PUT /v1/auth/users/{name}/roles/{role}`.
pub async fn grant_role(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((user, role)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    change(&state, &caller, AuthChange::GrantRole { user, role }).await
}

/// `DELETE /v1/auth/users/{name}/roles/{role}`.
pub async fn revoke_role(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((user, role)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    change(&state, &caller, AuthChange::RevokeRole { user, role }).await
}

/// `GET /v1/auth/roles`.
pub async fn list_roles(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Result<Json<RoleList>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    Ok(Json(role_list(&state.node.auth())))
}

fn role_list(auth: &AuthState) -> RoleList {
    let root = RoleInfo {
        name: ROOT_ROLE.to_owned(),
        permissions: Vec::new(),
    };
    let others = auth.roles.iter().map(|(name, role)| RoleInfo {
        name: name.clone(),
        permissions: role
            .grants
            .iter()
            .map(|(prefix, access)| Permission {
                prefix: prefix.clone(),
                access: access.as_str().to_owned(),
            })
            .collect(),
    });
    RoleList {
        roles: std::iter::once(root).chain(others).collect(),
    }
}

/// `POST /v1/auth/roles`.
pub async fn add_role(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let request: AddRoleRequest = json_body(&headers, &body)?;
    change(&state, &caller, AuthChange::AddRole { name: request.name }).await
}

/// `DELETE /v1/auth/roles/{name}`.
pub async fn delete_role(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    change(&state, &caller, AuthChange::DeleteRole { name }).await
}

/// `PUT /v1/auth/roles/{name}/permissions`: grants `access` on `prefix`.
pub async fn grant_permission(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(role): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let request: Permission = json_body(&headers, &body)?;
    let access = Access::parse(&request.access).ok_or_else(|| {
        ApiError::bad_request(
            "bad_body",
            format!("access is 'read' or 'readwrite', not {:?}", request.access),
        )
    })?;
    change(
        &state,
        &caller,
        AuthChange::Grant {
            role,
            prefix: request.prefix,
            access,
        },
    )
    .await
}

/// `DELETE /v1/auth/roles/{name}/permissions?prefix=P`.
pub async fn revoke_permission(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(role): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["prefix"])?;
    let Some(prefix) = params.text("prefix") else {
        return Err(ApiError::bad_request(
            "bad_query",
            "name the permission to revoke with ?prefix=P (empty for every key)",
        ));
    };
    let prefix = prefix.to_owned();
    change(&state, &caller, AuthChange::Revoke { role, prefix }).await
}

/// Replicates `change` for `caller`: 204 once applied, 409 with the reason
/// if the state refuses it.
async fn change(
    state: &ApiState,
    caller: &Caller,
    change: AuthChange,
) -> Result<Response, ApiError> {
    change
        .check()
        .map_err(|reason| ApiError::bad_request("bad_auth_change", reason))?;
    match state.write(caller, Command::Auth(change)).await? {
        Outcome::AuthChanged => Ok(StatusCode::NO_CONTENT.into_response()),
        Outcome::AuthRefused(reason) => {
            Err(ApiError::new(StatusCode::CONFLICT, "auth_refused", reason))
        }
        other => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("unexpected outcome of an auth change: {other:?}"),
        )),
    }
}

/// `password`'s hash, made off the async threads.
async fn hash(password: String) -> Result<String, ApiError> {
    password::check(&password).map_err(|reason| ApiError::bad_request("bad_password", reason))?;
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "hashing failed",
            )
        })?
        .map_err(|reason| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", reason))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn probes_and_signing_in_are_open_keys_need_a_caller_and_the_rest_root() {
        let get = Method::GET;
        for open in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/v1/node",
            "/v1/auth/token",
        ] {
            assert_eq!(need(&Method::POST, open), Need::Nothing, "{open}");
        }
        assert_eq!(need(&get, "/v1/kv/app/x"), Need::SignedIn);
        assert_eq!(need(&Method::PUT, "/v1/kv/app/x"), Need::SignedIn);
        assert_eq!(need(&get, "/v1/watch"), Need::SignedIn);
        assert_eq!(need(&get, "/v1/cluster/members"), Need::SignedIn);
        assert_eq!(need(&Method::POST, "/v1/cluster/members"), Need::Root);
        assert_eq!(
            need(&Method::POST, "/v1/cluster/force-new-cluster"),
            Need::Root
        );
        assert_eq!(need(&get, "/v1/snapshot"), Need::Root);
        assert_eq!(need(&Method::POST, "/v1/auth/enable"), Need::Root);
        assert_eq!(need(&get, "/v1/auth/users"), Need::Root);
        assert_eq!(need(&get, "/v1/kvx"), Need::Root);
    }

    #[test]
    fn the_root_role_is_listed_first() {
        let roles = role_list(&Arc::new(AuthState::default()));
        assert_eq!(roles.roles[0].name, "root");
    }
}
