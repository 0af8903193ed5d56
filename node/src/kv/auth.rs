//! The replicated auth state: whether authentication is on, the users and
//! the roles, how an [`AuthChange`] (a command in the log) changes it, and
//! what a user may do.
//!
//! A role grants read or read-write access on key prefixes; the built-in
//! [`ROOT_ROLE`] grants everything, including cluster operations and auth
//! changes. A user holds roles and, optionally, a password hash (made by
//! the member that took the request, so the log never holds a password;
//! a user without one signs in by client certificate only). Every change
//! of a user's password, and its re-creation, gives it a new generation,
//! which makes the tokens issued before worthless.
//!
//! Applying a change checks it against the state (a user that exists, a
//! role that does not, enabling with no root user, taking root away while
//! auth is on) and refuses it with a reason, deterministically on every
//! member. The whole state is small and is stored as one `kv_meta` row and
//! one snapshot item.
//!
//! Encoding (after the codec's version byte):
//!
//! ```text
//! state:  u8 enabled | bytes token_key | u64 generations | u32 n, user* | u32 n, role*
//! user:   str name | option<str> password_hash | u64 generation | u32 n, str role*
//! role:   str name | u32 n, (str prefix | u8 access)*
//! change: u8 kind | fields (see `AuthChange`'s encoding below)
//! ```

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes};

use crate::codec::{
    Decode, DecodeError, Encode, get_bytes, get_len, get_string, put_bytes, put_len, put_str,
};

/// The role that may do everything.
pub const ROOT_ROLE: &str = "root";
/// The user that must exist, holding [`ROOT_ROLE`], before auth is enabled.
pub const ROOT_USER: &str = "root";
/// The longest user or role name.
pub const MAX_NAME_BYTES: usize = 128;
/// The longest key prefix a permission names.
pub const MAX_PREFIX_BYTES: usize = 4096;

/// What a role allows on a key prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Get, list and watch.
    Read,
    /// Also put and delete.
    ReadWrite,
}

impl Access {
    /// `read` or `readwrite`, as the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::ReadWrite => "readwrite",
        }
    }

    /// The access named `text` (`read`, `readwrite` or `write`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Self::Read),
            "readwrite" | "write" => Some(Self::ReadWrite),
            _ => None,
        }
    }
}

/// A user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    /// The PHC string of its password's hash, if it has a password.
    pub password_hash: Option<String>,
    /// Its roles.
    pub roles: BTreeSet<String>,
    /// Changes with its password: tokens name the generation they were
    /// issued for.
    pub generation: u64,
}

/// A role: access per key prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Role {
    /// Prefix → access ("" is every key).
    pub grants: BTreeMap<String, Access>,
}

/// The replicated auth state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthState {
    /// Whether requests must carry credentials.
    pub enabled: bool,
    /// The secret that signs tokens, made anew at each enable. Never
    /// leaves the members.
    pub token_key: Bytes,
    /// Generations handed out so far.
    generations: u64,
    /// Users by name.
    pub users: BTreeMap<String, User>,
    /// Roles by name (not [`ROOT_ROLE`], which is built in).
    pub roles: BTreeMap<String, Role>,
}

/// A change of the auth state, as replicated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthChange {
    /// Creates a user, with a password hash or none.
    AddUser {
        name: String,
        password_hash: Option<String>,
    },
    /// Deletes a user.
    DeleteUser { name: String },
    /// Sets a user's password hash.
    SetPassword { name: String, password_hash: String },
    /// Gives a user a role.
    GrantRole { user: String, role: String },
    /// Takes a role from a user.
    RevokeRole { user: String, role: String },
    /// Creates a role with no permission.
    AddRole { name: String },
    /// Deletes a role (and takes it from every user).
    DeleteRole { name: String },
    /// Grants `access` on `prefix` to a role (replacing what it had there).
    Grant {
        role: String,
        prefix: String,
        access: Access,
    },
    /// Takes a role's permission on `prefix` away.
    Revoke { role: String, prefix: String },
    /// Turns authentication on, with a new token key.
    Enable { token_key: Bytes },
    /// Turns authentication off.
    Disable,
}

/// Why a name is not a user or role name, if it is not.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "a {what} name has 1 to {MAX_NAME_BYTES} bytes; got {}",
            name.len()
        ));
    }
    if name
        .chars()
        .any(|c| !c.is_ascii_graphic() || matches!(c, '/' | '|' | ':'))
    {
        return Err(format!(
            "{what} name {name:?} contains spaces, characters beyond ASCII, '/', '|' or ':'"
        ));
    }
    Ok(())
}

impl AuthChange {
    /// Why the change is malformed (names, prefix), whatever the state.
    pub fn check(&self) -> Result<(), String> {
        let prefix_ok = |prefix: &str| {
            if prefix.len() > MAX_PREFIX_BYTES {
                Err(format!(
                    "a permission's prefix has at most {MAX_PREFIX_BYTES} bytes"
                ))
            } else {
                Ok(())
            }
        };
        match self {
            Self::AddUser { name, .. }
            | Self::DeleteUser { name }
            | Self::SetPassword { name, .. } => check_name("user", name),
            Self::GrantRole { user, role } | Self::RevokeRole { user, role } => {
                check_name("user", user)?;
                check_name("role", role)
            }
            Self::AddRole { name } | Self::DeleteRole { name } => check_name("role", name),
            Self::Grant { role, prefix, .. } | Self::Revoke { role, prefix } => {
                check_name("role", role)?;
                prefix_ok(prefix)
            }
            Self::Enable { token_key } if token_key.len() < 32 => {
                Err("a token key has at least 32 bytes".to_owned())
            }
            Self::Enable { .. } | Self::Disable => Ok(()),
        }
    }
}

impl AuthState {
    /// Applies `change`, or says why not (and changes nothing).
    pub fn apply(&mut self, change: AuthChange) -> Result<(), String> {
        change.check()?;
        match change {
            AuthChange::AddUser {
                name,
                password_hash,
            } => {
                if self.users.contains_key(&name) {
                    return Err(format!("user {name} exists already"));
                }
                let generation = self.next_generation();
                self.users.insert(
                    name,
                    User {
                        password_hash,
                        roles: BTreeSet::new(),
                        generation,
                    },
                );
            }
            AuthChange::DeleteUser { name } => {
                self.user(&name)?;
                if self.enabled && name == ROOT_USER {
                    return Err(
                        "the root user cannot be deleted while auth is enabled (no lock-out)"
                            .to_owned(),
                    );
                }
                self.users.remove(&name);
            }
            AuthChange::SetPassword {
                name,
                password_hash,
            } => {
                self.user(&name)?;
                let generation = self.next_generation();
                let user = self.users.get_mut(&name).expect("checked above");
                user.password_hash = Some(password_hash);
                user.generation = generation;
            }
            AuthChange::GrantRole { user, role } => {
                self.user(&user)?;
                if role != ROOT_ROLE && !self.roles.contains_key(&role) {
                    return Err(format!("role {role} does not exist"));
                }
                let user = self.users.get_mut(&user).expect("checked above");
                user.roles.insert(role);
            }
            AuthChange::RevokeRole { user, role } => {
                if !self.user(&user)?.roles.contains(&role) {
                    return Err(format!("user {user} does not have role {role}"));
                }
                if self.enabled && user == ROOT_USER && role == ROOT_ROLE {
                    return Err(
                        "the root user keeps the root role while auth is enabled (no lock-out)"
                            .to_owned(),
                    );
                }
                let user = self.users.get_mut(&user).expect("checked above");
                user.roles.remove(&role);
            }
            AuthChange::AddRole { name } => {
                if name == ROOT_ROLE || self.roles.contains_key(&name) {
                    return Err(format!("role {name} exists already"));
                }
                self.roles.insert(name, Role::default());
            }
            AuthChange::DeleteRole { name } => {
                if name == ROOT_ROLE {
                    return Err("the root role is built in and cannot be deleted".to_owned());
                }
                if self.roles.remove(&name).is_none() {
                    return Err(format!("role {name} does not exist"));
                }
                for user in self.users.values_mut() {
                    user.roles.remove(&name);
                }
            }
            AuthChange::Grant {
                role,
                prefix,
                access,
            } => {
                self.role_mut(&role)?.grants.insert(prefix, access);
            }
            AuthChange::Revoke { role, prefix } => {
                if self.role_mut(&role)?.grants.remove(&prefix).is_none() {
                    return Err(format!(
                        "role {role} has no permission on prefix {prefix:?}"
                    ));
                }
            }
            AuthChange::Enable { token_key } => {
                if !self.is_root(ROOT_USER) {
                    return Err(
                        "auth cannot be enabled before a user named root holds the root role \
                         (raftcfg user add root; raftcfg user grant-role root root)"
                            .to_owned(),
                    );
                }
                self.enabled = true;
                self.token_key = token_key;
            }
            AuthChange::Disable => self.enabled = false,
        }
        Ok(())
    }

    fn next_generation(&mut self) -> u64 {
        self.generations += 1;
        self.generations
    }

    fn user(&self, name: &str) -> Result<&User, String> {
        self.users
            .get(name)
            .ok_or_else(|| format!("user {name} does not exist"))
    }

    fn role_mut(&mut self, name: &str) -> Result<&mut Role, String> {
        if name == ROOT_ROLE {
            return Err("the root role is built in: it already grants everything".to_owned());
        }
        self.roles
            .get_mut(name)
            .ok_or_else(|| format!("role {name} does not exist"))
    }

    /// Whether `user` exists and holds the root role.
    pub fn is_root(&self, user: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.contains(ROOT_ROLE))
    }

    /// The access `user` has to `key`, if any: the widest its roles grant
    /// on a prefix of the key.
    pub fn access(&self, user: &str, key: &str) -> Option<Access> {
        if self.is_root(user) {
            return Some(Access::ReadWrite);
        }
        self.grants_of(user)
            .filter(|(prefix, _)| key.starts_with(prefix.as_str()))
            .map(|(_, access)| access)
            .max()
    }

    /// Whether `user` may read some key under `prefix` (then a list or a
    /// watch of it is answered, with only the keys it may read).
    pub fn may_read_under(&self, user: &str, prefix: &str) -> bool {
        self.is_root(user)
            || self.grants_of(user).any(|(granted, _)| {
                granted.starts_with(prefix) || prefix.starts_with(granted.as_str())
            })
    }

    fn grants_of<'a>(&'a self, user: &str) -> impl Iterator<Item = (&'a String, Access)> + 'a {
        self.users
            .get(user)
            .into_iter()
            .flat_map(|u| u.roles.iter())
            .filter_map(|role| self.roles.get(role))
            .flat_map(|role| role.grants.iter().map(|(prefix, access)| (prefix, *access)))
    }
}

const CHANGE_ADD_USER: u8 = 1;
const CHANGE_DELETE_USER: u8 = 2;
const CHANGE_SET_PASSWORD: u8 = 3;
const CHANGE_GRANT_ROLE: u8 = 4;
const CHANGE_REVOKE_ROLE: u8 = 5;
const CHANGE_ADD_ROLE: u8 = 6;
const CHANGE_DELETE_ROLE: u8 = 7;
const CHANGE_GRANT: u8 = 8;
const CHANGE_REVOKE: u8 = 9;
const CHANGE_ENABLE: u8 = 10;
const CHANGE_DISABLE: u8 = 11;

fn put_access<B: BufMut>(out: &mut B, access: Access) {
    out.put_u8(match access {
        Access::Read => 1,
        Access::ReadWrite => 2,
    });
}

fn get_access<B: Buf>(input: &mut B) -> Result<Access, DecodeError> {
    match input.try_get_u8()? {
        1 => Ok(Access::Read),
        2 => Ok(Access::ReadWrite),
        tag => Err(DecodeError::UnknownTag {
            what: "access",
            tag,
        }),
    }
}

fn put_option_str<B: BufMut>(out: &mut B, text: Option<&str>) {
    match text {
        None => out.put_u8(0),
        Some(text) => {
            out.put_u8(1);
            put_str(out, text);
        }
    }
}

fn get_option_string<B: Buf>(input: &mut B) -> Result<Option<String>, DecodeError> {
    match input.try_get_u8()? {
        0 => Ok(None),
        1 => Ok(Some(get_string(input)?)),
        tag => Err(DecodeError::UnknownTag {
            what: "option",
            tag,
        }),
    }
}

impl Encode for AuthChange {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        match self {
            Self::AddUser {
                name,
                password_hash,
            } => {
                out.put_u8(CHANGE_ADD_USER);
                put_str(out, name);
                put_option_str(out, password_hash.as_deref());
            }
            Self::DeleteUser { name } => {
                out.put_u8(CHANGE_DELETE_USER);
                put_str(out, name);
            }
            Self::SetPassword {
                name,
                password_hash,
            } => {
                out.put_u8(CHANGE_SET_PASSWORD);
                put_str(out, name);
                put_str(out, password_hash);
            }
            Self::GrantRole { user, role } => {
                out.put_u8(CHANGE_GRANT_ROLE);
                put_str(out, user);
                put_str(out, role);
            }
            Self::RevokeRole { user, role } => {
                out.put_u8(CHANGE_REVOKE_ROLE);
                put_str(out, user);
                put_str(out, role);
            }
            Self::AddRole { name } => {
                out.put_u8(CHANGE_ADD_ROLE);
                put_str(out, name);
            }
            Self::DeleteRole { name } => {
                out.put_u8(CHANGE_DELETE_ROLE);
                put_str(out, name);
            }
            Self::Grant {
                role,
                prefix,
                access,
            } => {
                out.put_u8(CHANGE_GRANT);
                put_str(out, role);
                put_str(out, prefix);
                put_access(out, *access);
            }
            Self::Revoke { role, prefix } => {
                out.put_u8(CHANGE_REVOKE);
                put_str(out, role);
                put_str(out, prefix);
            }
            Self::Enable { token_key } => {
                out.put_u8(CHANGE_ENABLE);
                put_bytes(out, token_key);
            }
            Self::Disable => out.put_u8(CHANGE_DISABLE),
        }
    }
}

impl Decode for AuthChange {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        let change = match input.try_get_u8()? {
            CHANGE_ADD_USER => Self::AddUser {
                name: get_string(input)?,
                password_hash: get_option_string(input)?,
            },
            CHANGE_DELETE_USER => Self::DeleteUser {
                name: get_string(input)?,
            },
            CHANGE_SET_PASSWORD => Self::SetPassword {
                name: get_string(input)?,
                password_hash: get_string(input)?,
            },
            CHANGE_GRANT_ROLE => Self::GrantRole {
                user: get_string(input)?,
                role: get_string(input)?,
            },
            CHANGE_REVOKE_ROLE => Self::RevokeRole {
                user: get_string(input)?,
                role: get_string(input)?,
            },
            CHANGE_ADD_ROLE => Self::AddRole {
                name: get_string(input)?,
            },
            CHANGE_DELETE_ROLE => Self::DeleteRole {
                name: get_string(input)?,
            },
            CHANGE_GRANT => Self::Grant {
                role: get_string(input)?,
                prefix: get_string(input)?,
                access: get_access(input)?,
            },
            CHANGE_REVOKE => Self::Revoke {
                role: get_string(input)?,
                prefix: get_string(input)?,
            },
            CHANGE_ENABLE => Self::Enable {
                token_key: get_bytes(input)?,
            },
            CHANGE_DISABLE => Self::Disable,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "auth change",
                    tag,
                });
            }
        };
        Ok(change)
    }
}

impl Encode for AuthState {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        out.put_u8(u8::from(self.enabled));
        put_bytes(out, &self.token_key);
        out.put_u64(self.generations);
        put_len(out, self.users.len());
        for (name, user) in &self.users {
            put_str(out, name);
            put_option_str(out, user.password_hash.as_deref());
            out.put_u64(user.generation);
            put_len(out, user.roles.len());
            for role in &user.roles {
                put_str(out, role);
            }
        }
        put_len(out, self.roles.len());
        for (name, role) in &self.roles {
            put_str(out, name);
            put_len(out, role.grants.len());
            for (prefix, access) in &role.grants {
                put_str(out, prefix);
                put_access(out, *access);
            }
        }
    }
}

impl Decode for AuthState {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        let enabled = match input.try_get_u8()? {
            0 => false,
            1 => true,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "enabled",
                    tag,
                });
            }
        };
        let token_key = get_bytes(input)?;
        let generations = input.try_get_u64()?;
        let mut users = BTreeMap::new();
        for _ in 0..get_len(input, 1)? {
            let name = get_string(input)?;
            let password_hash = get_option_string(input)?;
            let generation = input.try_get_u64()?;
            let mut roles = BTreeSet::new();
            for _ in 0..get_len(input, 1)? {
                roles.insert(get_string(input)?);
            }
            let user = User {
                password_hash,
                roles,
                generation,
            };
            if users.insert(name, user).is_some() {
                return Err(DecodeError::invalid("a user is listed twice"));
            }
        }
        let mut roles = BTreeMap::new();
        for _ in 0..get_len(input, 1)? {
            let name = get_string(input)?;
            let mut grants = BTreeMap::new();
            for _ in 0..get_len(input, 1)? {
                let prefix = get_string(input)?;
                grants.insert(prefix, get_access(input)?);
            }
            if roles.insert(name, Role { grants }).is_some() {
                return Err(DecodeError::invalid("a role is listed twice"));
            }
        }
        Ok(Self {
            enabled,
            token_key,
            generations,
            users,
            roles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};

    fn key() -> Bytes {
        Bytes::from(vec![7; 32])
    }

    /// A state with root and an `app` reader/writer.
    fn sample() -> AuthState {
        let mut state = AuthState::default();
        for change in [
            AuthChange::AddUser {
                name: "root".into(),
                password_hash: Some("$argon2id$x".into()),
            },
            AuthChange::GrantRole {
                user: "root".into(),
                role: ROOT_ROLE.into(),
            },
            AuthChange::AddRole { name: "app".into() },
            AuthChange::Grant {
                role: "app".into(),
                prefix: "app/".into(),
                access: Access::ReadWrite,
            },
            AuthChange::Grant {
                role: "app".into(),
                prefix: "shared/".into(),
                access: Access::Read,
            },
            AuthChange::AddUser {
                name: "svc".into(),
                password_hash: None,
            },
            AuthChange::GrantRole {
                user: "svc".into(),
                role: "app".into(),
            },
        ] {
            state.apply(change).unwrap();
        }
        state
    }

    #[test]
    fn access_is_the_widest_grant_on_a_prefix_of_the_key() {
        let state = sample();
        assert_eq!(state.access("svc", "app/db"), Some(Access::ReadWrite));
        assert_eq!(state.access("svc", "shared/x"), Some(Access::Read));
        assert_eq!(state.access("svc", "other"), None);
        assert_eq!(state.access("nobody", "app/db"), None);
        assert_eq!(state.access("root", "anything"), Some(Access::ReadWrite));
        assert!(state.may_read_under("svc", "app/"));
        assert!(state.may_read_under("svc", "app/db/"), "inside a grant");
        assert!(state.may_read_under("svc", ""), "a grant lies under it");
        assert!(!state.may_read_under("svc", "other/"));
        assert!(state.is_root("root") && !state.is_root("svc"));
    }

    #[test]
    fn enabling_needs_a_root_user_and_root_cannot_be_locked_out() {
        let mut state = AuthState::default();
        let error = state
            .apply(AuthChange::Enable { token_key: key() })
            .unwrap_err();
        assert!(error.contains("user named root"), "{error}");
        let mut state = sample();
        state
            .apply(AuthChange::Enable { token_key: key() })
            .unwrap();
        assert!(state.enabled);
        for change in [
            AuthChange::DeleteUser {
                name: "root".into(),
            },
            AuthChange::RevokeRole {
                user: "root".into(),
                role: ROOT_ROLE.into(),
            },
            AuthChange::DeleteRole {
                name: ROOT_ROLE.into(),
            },
        ] {
            let before = state.clone();
            assert!(state.apply(change).is_err());
            assert_eq!(state, before, "a refused change changes nothing");
        }
        state.apply(AuthChange::Disable).unwrap();
        state
            .apply(AuthChange::DeleteUser {
                name: "root".into(),
            })
            .unwrap();
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let mut state = sample();
        let cases = [
            (
                AuthChange::AddUser {
                    name: "svc".into(),
                    password_hash: None,
                },
                "exists already",
            ),
            (
                AuthChange::GrantRole {
                    user: "svc".into(),
                    role: "ghost".into(),
                },
                "role ghost does not exist",
            ),
            (
                AuthChange::DeleteUser {
                    name: "ghost".into(),
                },
                "user ghost does not exist",
            ),
            (
                AuthChange::AddUser {
                    name: "a b".into(),
                    password_hash: None,
                },
                "contains spaces",
            ),
            (
                AuthChange::Revoke {
                    role: "app".into(),
                    prefix: "nope/".into(),
                },
                "no permission",
            ),
            (
                AuthChange::Enable {
                    token_key: Bytes::from_static(b"short"),
                },
                "at least 32 bytes",
            ),
        ];
        for (change, expected) in cases {
            let error = state.apply(change).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn a_new_password_or_a_new_user_of_the_same_name_is_a_new_generation() {
        let mut state = sample();
        let first = state.users["svc"].generation;
        state
            .apply(AuthChange::SetPassword {
                name: "svc".into(),
                password_hash: "h".into(),
            })
            .unwrap();
        let second = state.users["svc"].generation;
        assert!(second > first);
        state
            .apply(AuthChange::DeleteUser { name: "svc".into() })
            .unwrap();
        state
            .apply(AuthChange::AddUser {
                name: "svc".into(),
                password_hash: None,
            })
            .unwrap();
        assert!(state.users["svc"].generation > second);
    }

    #[test]
    fn deleting_a_role_takes_it_from_its_users() {
        let mut state = sample();
        state
            .apply(AuthChange::DeleteRole { name: "app".into() })
            .unwrap();
        assert!(state.users["svc"].roles.is_empty());
        assert_eq!(state.access("svc", "app/db"), None);
    }

    #[test]
    fn state_and_changes_survive_encoding() {
        let mut state = sample();
        state
            .apply(AuthChange::Enable { token_key: key() })
            .unwrap();
        assert_eq!(decode::<AuthState>(&encode(&state)[..]).unwrap(), state);
        for change in [
            AuthChange::AddUser {
                name: "u".into(),
                password_hash: Some("h".into()),
            },
            AuthChange::AddUser {
                name: "u".into(),
                password_hash: None,
            },
            AuthChange::DeleteUser { name: "u".into() },
            AuthChange::SetPassword {
                name: "u".into(),
                password_hash: "h".into(),
            },
            AuthChange::GrantRole {
                user: "u".into(),
                role: "r".into(),
            },
            AuthChange::RevokeRole {
                user: "u".into(),
                role: "r".into(),
            },
            AuthChange::AddRole { name: "r".into() },
            AuthChange::DeleteRole { name: "r".into() },
            AuthChange::Grant {
                role: "r".into(),
                prefix: "p/".into(),
                access: Access::Read,
            },
            AuthChange::Revoke {
                role: "r".into(),
                prefix: "p/".into(),
            },
            AuthChange::Enable { token_key: key() },
            AuthChange::Disable,
        ] {
            assert_eq!(decode::<AuthChange>(&encode(&change)[..]).unwrap(), change);
        }
        assert!(decode::<AuthChange>(&[1u8, 99][..]).is_err());
    }
}
