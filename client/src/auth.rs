//! Signing in and managing users and roles: [`Credentials`] a
//! [`Client`] presents (a token, or a password it exchanges for tokens,
//! again whenever the one it holds expires), and one method per
//! `/v1/auth` operation. A client certificate is [`ClientTls`]'s
//! business: its common name is the user.
//!
//! [`ClientTls`]: crate::ClientTls

use std::fmt;
use std::sync::Mutex;

use reqwest::{Method, Url};

use crate::client::Client;
use crate::error::ClientError;
use crate::failover::decode_json;
use crate::request::{Call, Retry};
use crate::wire::{
    AddRoleRequest, AddUserRequest, AuthStatus, PasswordRequest, Permission, RoleList,
    TokenRequest, TokenResponse, UserList,
};

/// The error code of a token the server does not take (expired, revoked).
const INVALID_TOKEN: &str = "invalid_token";

/// How a client signs in where auth is enabled.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A bearer token, used as it is.
    Token(String),
    /// A user's password, exchanged for a token when one is needed.
    Password {
        /// The user.
        user: String,
        /// Its password.
        password: String,
    },
}

/// Never shows a password or a token.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Token(..)"),
            Self::Password { user, .. } => write!(f, "Password {{ user: {user:?}, .. }}"),
        }
    }
}

/// The token a client signed in with a password holds.
#[derive(Default)]
pub(crate) struct Session {
    token: Mutex<Option<String>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Session { .. }")
    }
}

impl Client {
    /// The bearer token to send, getting one for a password first if
    /// none is held.
    pub(crate) async fn bearer(
        &self,
        endpoints: &[Url],
        start: usize,
    ) -> Result<Option<String>, ClientError> {
        let (user, password) = match &self.options.credentials {
            None => return Ok(None),
            Some(Credentials::Token(token)) => return Ok(Some(token.clone())),
            Some(Credentials::Password { user, password }) => (user, password),
        };
        if let Some(token) = self.held_token() {
            return Ok(Some(token));
        }
        let call = Call::new(
            "sign-in",
            Method::POST,
            &["v1", "auth", "token"],
            Retry::Read,
        )
        .json_body(&TokenRequest {
            user: user.clone(),
            password: password.clone(),
        });
        let (endpoint, response) = self.send_on(endpoints, start, &call, None).await?;
        let answer: TokenResponse = decode_json(&endpoint, response).await?;
        *self.session.token.lock().expect("never poisoned") = Some(answer.token.clone());
        Ok(Some(answer.token))
    }

    fn held_token(&self) -> Option<String> {
        self.session.token.lock().expect("never poisoned").clone()
    }

    /// Whether `error` says the token held is no longer good and a new one
    /// can be had (for a password); the held one is then forgotten.
    pub(crate) fn token_went_stale(&self, error: &ClientError) -> bool {
        let renewable = matches!(self.options.credentials, Some(Credentials::Password { .. }));
        if renewable && error.code() == Some(INVALID_TOKEN) {
            *self.session.token.lock().expect("never poisoned") = None;
            return true;
        }
        false
    }

    /// Whether authentication is enabled.
    pub async fn auth_status(&self) -> Result<AuthStatus, ClientError> {
        let call = Call::new(
            "auth status",
            Method::GET,
            &["v1", "auth", "status"],
            Retry::Read,
        );
        self.json(&call).await
    }

    /// A token for `user`'s password.
    pub async fn token(&self, user: &str, password: &str) -> Result<TokenResponse, ClientError> {
        let call = Call::new(
            "sign-in",
            Method::POST,
            &["v1", "auth", "token"],
            Retry::Read,
        )
        .json_body(&TokenRequest {
            user: user.to_owned(),
            password: password.to_owned(),
        });
        self.json(&call).await
    }

    /// Turns authentication on (refused unless a user named root holds the
    /// root role).
    pub async fn auth_enable(&self) -> Result<(), ClientError> {
        self.change("auth enable", Method::POST, &["enable"], None)
            .await
    }

    /// Turns authentication off.
    pub async fn auth_disable(&self) -> Result<(), ClientError> {
        self.change("auth disable", Method::POST, &["disable"], None)
            .await
    }

    /// Every user.
    pub async fn users(&self) -> Result<UserList, ClientError> {
        let call = Call::new(
            "user list",
            Method::GET,
            &["v1", "auth", "users"],
            Retry::Read,
        );
        self.json(&call).await
    }

    /// Adds a user, with a password or none (certificate sign-in only).
    pub async fn add_user(&self, name: &str, password: Option<&str>) -> Result<(), ClientError> {
        let body = serde_json::to_value(AddUserRequest {
            name: name.to_owned(),
            password: password.map(str::to_owned),
        })
        .expect("serializes");
        self.change(
            &format!("user add {name}"),
            Method::POST,
            &["users"],
            Some(body),
        )
        .await
    }

    /// Deletes a user.
    pub async fn delete_user(&self, name: &str) -> Result<(), ClientError> {
        self.change(
            &format!("user delete {name}"),
            Method::DELETE,
            &["users", name],
            None,
        )
        .await
    }

    /// Sets a user's password (its tokens stop working).
    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), ClientError> {
        let body = serde_json::to_value(PasswordRequest {
            password: password.to_owned(),
        })
        .expect("serializes");
        self.change(
            &format!("password change of {name}"),
            Method::PUT,
            &["users", name, "password"],
            Some(body),
        )
        .await
    }

    /// Gives `user` the role `role`.
    pub async fn grant_role(&self, user: &str, role: &str) -> Result<(), ClientError> {
        self.change(
            &format!("grant of role {role} to {user}"),
            Method::PUT,
            &["users", user, "roles", role],
            None,
        )
        .await
    }

    /// Takes the role `role` from `user`.
    pub async fn revoke_role(&self, user: &str, role: &str) -> Result<(), ClientError> {
        self.change(
            &format!("revocation of role {role} from {user}"),
            Method::DELETE,
            &["users", user, "roles", role],
            None,
        )
        .await
    }

    /// Every role.
    pub async fn roles(&self) -> Result<RoleList, ClientError> {
        let call = Call::new(
            "role list",
            Method::GET,
            &["v1", "auth", "roles"],
            Retry::Read,
        );
        self.json(&call).await
    }

    /// Adds a role with no permission.
    pub async fn add_role(&self, name: &str) -> Result<(), ClientError> {
        let body = serde_json::to_value(AddRoleRequest {
            name: name.to_owned(),
        })
        .expect("serializes");
        self.change(
            &format!("role add {name}"),
            Method::POST,
            &["roles"],
            Some(body),
        )
        .await
    }

    /// Deletes a role (and takes it from every user).
    pub async fn delete_role(&self, name: &str) -> Result<(), ClientError> {
        self.change(
            &format!("role delete {name}"),
            Method::DELETE,
            &["roles", name],
            None,
        )
        .await
    }

    /// Grants `access` (`read` or `readwrite`) on keys under `prefix` to
    /// `role`.
    pub async fn grant_permission(
        &self,
        role: &str,
        prefix: &str,
        access: &str,
    ) -> Result<(), ClientError> {
        let body = serde_json::to_value(Permission {
            prefix: prefix.to_owned(),
            access: access.to_owned(),
        })
        .expect("serializes");
        self.change(
            &format!("grant to role {role}"),
            Method::PUT,
            &["roles", role, "permissions"],
            Some(body),
        )
        .await
    }

    /// Takes `role`'s permission on `prefix` away.
    pub async fn revoke_permission(&self, role: &str, prefix: &str) -> Result<(), ClientError> {
        let call = Call::new(
            format!("revocation from role {role}"),
            Method::DELETE,
            &["v1", "auth", "roles", role, "permissions"],
            Retry::Write,
        )
        .query("prefix", prefix);
        self.execute(&call).await.map(drop)
    }

    /// Sends an auth change (answered 204).
    async fn change(
        &self,
        operation: &str,
        method: Method,
        path: &[&str],
        body: Option<serde_json::Value>,
    ) -> Result<(), ClientError> {
        let mut segments = vec!["v1", "auth"];
        segments.extend_from_slice(path);
        let mut call = Call::new(operation, method, &segments, Retry::Write);
        if let Some(body) = body {
            call = call.json_body(&body);
        }
        self.execute(&call).await.map(drop)
    }
}
