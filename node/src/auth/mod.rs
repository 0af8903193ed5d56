//! Who a request comes from and what it may do, under the replicated auth
//! state ([`crate::kv::AuthState`]).
//!
//! While auth is off, every request may do everything (as before auth
//! existed). Once on, a request signs in with a bearer token
//! (`Authorization: Bearer`, see [`token`]) or with a client certificate
//! the client port verified, whose common name is the user; then:
//!
//! - a key is read (get, and each key of a list or watch) with read access
//!   on a prefix of it, and written (put, delete) with read-write access;
//! - cluster operations, backups and auth changes need the root role;
//! - a follower forwards a write with its caller's user name
//!   ([`USER_HEADER`], trusted because the peer port only takes members),
//!   and the leader checks it again under its own auth state.
//!
//! Passwords are checked only to issue tokens ([`password`]).

pub mod password;
pub mod token;

use std::sync::Arc;

pub use token::TokenError;

use crate::kv::{Access, AuthState, Command};

/// The peer request header naming the user a forwarded request is for.
pub const USER_HEADER: &str = "x-raftcfg-user";

/// The verified client certificate's common name, which the client port
/// puts on each request of the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateName(pub String);

/// Why a request may not go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Auth is on and the request carries no credentials (401).
    #[error(
        "authentication is enabled: sign in with a token (POST /v1/auth/token) or a client certificate"
    )]
    NoCredentials,
    /// A bearer token that does not sign anyone in (401).
    #[error("{0}")]
    BadToken(TokenError),
    /// A client certificate whose name is no user (401).
    #[error("the client certificate names {0}, which is not a user of this cluster")]
    UnknownCertificateUser(String),
    /// Signed in, but without the permission (403).
    #[error("{0}")]
    Forbidden(String),
}

/// The signed-in caller of a request, with the auth state it was checked
/// under.
#[derive(Clone, Debug)]
pub struct Caller {
    user: Option<String>,
    auth: Arc<AuthState>,
}

impl Caller {
    /// Signs a request in: with auth off, as anyone; with it on, by its
    /// bearer token, else by its client certificate's name.
    pub fn sign_in(
        auth: Arc<AuthState>,
        bearer: Option<&str>,
        certificate: Option<&CertificateName>,
    ) -> Result<Self, Denied> {
        if !auth.enabled {
            return Ok(Self { user: None, auth });
        }
        let user = match (bearer, certificate) {
            (Some(token), _) => token::verify(&auth, token).map_err(Denied::BadToken)?,
            (None, Some(CertificateName(name))) => {
                if !auth.users.contains_key(name) {
                    return Err(Denied::UnknownCertificateUser(name.clone()));
                }
                name.clone()
            }
            (None, None) => return Err(Denied::NoCredentials),
        };
        Ok(Self {
            user: Some(user),
            auth,
        })
    }

    /// The caller of a request a follower forwarded for `user` (none when
    /// auth was off there).
    pub fn forwarded(auth: Arc<AuthState>, user: Option<String>) -> Self {
        Self { user, auth }
    }

    /// The user signed in, if auth is on.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether auth was on for this request.
    pub fn auth_enabled(&self) -> bool {
        self.auth.enabled
    }

    /// The signed-in user, or why there is none while auth is on; `None`
    /// while auth is off.
    fn who(&self) -> Result<Option<&str>, Denied> {
        match (&self.user, self.auth.enabled) {
            (_, false) => Ok(None),
            (Some(user), true) => Ok(Some(user)),
            (None, true) => Err(Denied::NoCredentials),
        }
    }

    /// Whether the caller may read `key` (for filtering lists and watches).
    pub fn may_read(&self, key: &str) -> bool {
        match self.who() {
            Ok(None) => true,
            Ok(Some(user)) => self.auth.access(user, key).is_some(),
            Err(_) => false,
        }
    }

    /// Read access to `key`.
    pub fn check_read(&self, key: &str) -> Result<(), Denied> {
        let Some(user) = self.who()? else {
            return Ok(());
        };
        if self.auth.access(user, key).is_some() {
            return Ok(());
        }
        Err(Denied::Forbidden(format!("user {user} may not read {key}")))
    }

    /// Write access to `key`.
    pub fn check_write(&self, key: &str) -> Result<(), Denied> {
        let Some(user) = self.who()? else {
            return Ok(());
        };
        if self.auth.access(user, key) == Some(Access::ReadWrite) {
            return Ok(());
        }
        Err(Denied::Forbidden(format!(
            "user {user} may not write {key}"
        )))
    }

    /// Read access to some key under `prefix` (a list or a watch of it,
    /// which then returns only the keys the caller may read).
    pub fn check_read_under(&self, prefix: &str) -> Result<(), Denied> {
        let Some(user) = self.who()? else {
            return Ok(());
        };
        if self.auth.may_read_under(user, prefix) {
            return Ok(());
        }
        Err(Denied::Forbidden(format!(
            "user {user} may read no key under {prefix:?}"
        )))
    }

    /// The root role (cluster operations, backups, auth changes).
    pub fn check_root(&self) -> Result<(), Denied> {
        let Some(user) = self.who()? else {
            return Ok(());
        };
        if self.auth.is_root(user) {
            return Ok(());
        }
        Err(Denied::Forbidden(format!(
            "user {user} does not hold the root role, which this needs"
        )))
    }

    /// What proposing `command` needs.
    pub fn check_command(&self, command: &Command) -> Result<(), Denied> {
        match command.key() {
            Some(key) => self.check_write(key.as_str()),
            None => self.check_root(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::kv::{AuthChange, ROOT_ROLE};

    fn enabled() -> Arc<AuthState> {
        let mut state = AuthState::default();
        for change in [
            AuthChange::AddUser {
                name: "root".into(),
                password_hash: None,
            },
            AuthChange::GrantRole {
                user: "root".into(),
                role: ROOT_ROLE.into(),
            },
            AuthChange::AddRole { name: "app".into() },
            AuthChange::Grant {
                role: "app".into(),
                prefix: "app/".into(),
                access: Access::Read,
            },
            AuthChange::AddUser {
                name: "reader".into(),
                password_hash: None,
            },
            AuthChange::GrantRole {
                user: "reader".into(),
                role: "app".into(),
            },
            AuthChange::Enable {
                token_key: Bytes::from(vec![3; 32]),
            },
        ] {
            state.apply(change).unwrap();
        }
        Arc::new(state)
    }

    #[test]
    fn with_auth_off_anyone_may_do_anything() {
        let caller = Caller::sign_in(Arc::default(), None, None).unwrap();
        assert_eq!(caller.user(), None);
        assert!(caller.check_root().is_ok() && caller.check_write("k").is_ok());
    }

    #[test]
    fn with_auth_on_a_request_signs_in_by_token_or_certificate() {
        let auth = enabled();
        assert_eq!(
            Caller::sign_in(auth.clone(), None, None).unwrap_err(),
            Denied::NoCredentials
        );
        let generation = auth.users["reader"].generation;
        let token = token::issue(
            &auth.token_key,
            "reader",
            generation,
            Duration::from_secs(9),
        );
        let caller = Caller::sign_in(auth.clone(), Some(&token), None).unwrap();
        assert_eq!(caller.user(), Some("reader"));
        let by_cert =
            Caller::sign_in(auth.clone(), None, Some(&CertificateName("root".into()))).unwrap();
        assert_eq!(by_cert.user(), Some("root"));
        let stranger = Caller::sign_in(auth.clone(), None, Some(&CertificateName("eve".into())));
        assert!(matches!(stranger, Err(Denied::UnknownCertificateUser(_))));
        let bad = Caller::sign_in(auth, Some("nonsense"), None);
        assert!(matches!(bad, Err(Denied::BadToken(TokenError::Invalid))));
    }

    #[test]
    fn permissions_follow_the_roles() {
        let auth = enabled();
        let reader = Caller::forwarded(auth.clone(), Some("reader".into()));
        assert!(reader.check_read("app/x").is_ok());
        assert!(matches!(
            reader.check_write("app/x"),
            Err(Denied::Forbidden(_))
        ));
        assert!(reader.check_read("other").is_err());
        assert!(reader.check_read_under("").is_ok());
        assert!(reader.check_read_under("other/").is_err());
        assert!(reader.may_read("app/x") && !reader.may_read("other"));
        assert!(reader.check_root().is_err());
        let root = Caller::forwarded(auth.clone(), Some("root".into()));
        assert!(root.check_root().is_ok() && root.check_write("any").is_ok());
        let nobody = Caller::forwarded(auth, None);
        assert_eq!(nobody.check_write("app/x"), Err(Denied::NoCredentials));
    }
}
