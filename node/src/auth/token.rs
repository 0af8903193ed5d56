//! Bearer tokens: what a user gets for its password, good for a while on
//! every member. A token is `PAYLOAD.MAC`, both base64url: the payload
//! names the user, the generation of its password and when the token
//! expires (Unix seconds); the MAC is HMAC-SHA256 of the payload under the
//! cluster's token key (replicated, made anew at each `auth enable`).
//!
//! A token stops working when it expires, when its user's password
//! changes or the user is deleted (a new generation), and when auth is
//! disabled and enabled again (a new key). Expiry reads the member's clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::kv::AuthState;

/// Why a token is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed or was not issued by this cluster")]
    Invalid,
    #[error("the token expired; ask for a new one")]
    Expired,
    #[error("the token's user was deleted or changed its password; ask for a new one")]
    Revoked,
}

/// A token for `user` at `generation`, valid for `ttl` from now.
pub fn issue(key: &[u8], user: &str, generation: u64, ttl: Duration) -> String {
    let expires = now_seconds().saturating_add(ttl.as_secs().max(1));
    let payload = format!("{user}|{generation}|{expires}");
    let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), payload.as_bytes());
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(mac.as_ref())
    )
}

/// The user `token` signs in as, under `auth`.
pub fn verify(auth: &AuthState, token: &str) -> Result<String, TokenError> {
    let (payload, mac) = token.split_once('.').ok_or(TokenError::Invalid)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Invalid)?;
    let mac = URL_SAFE_NO_PAD
        .decode(mac)
        .map_err(|_| TokenError::Invalid)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &auth.token_key);
    hmac::verify(&key, &payload, &mac).map_err(|_| TokenError::Invalid)?;
    let payload = String::from_utf8(payload).map_err(|_| TokenError::Invalid)?;
    let mut fields = payload.split('|');
    let (Some(user), Some(generation), Some(expires), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(TokenError::Invalid);
    };
    let generation: u64 = generation.parse().map_err(|_| TokenError::Invalid)?;
    let expires: u64 = expires.parse().map_err(|_| TokenError::Invalid)?;
    if now_seconds() >= expires {
        return Err(TokenError::Expired);
    }
    match auth.users.get(user) {
        Some(found) if found.generation == generation => Ok(user.to_owned()),
        _ => Err(TokenError::Revoked),
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::kv::{AuthChange, ROOT_ROLE};

    fn state() -> AuthState {
        let mut state = AuthState::default();
        for change in [
            AuthChange::AddUser {
                name: "root".into(),
                password_hash: Some("h".into()),
            },
            AuthChange::GrantRole {
                user: "root".into(),
                role: ROOT_ROLE.into(),
            },
            AuthChange::Enable {
                token_key: Bytes::from(vec![1; 32]),
            },
        ] {
            state.apply(change).unwrap();
        }
        state
    }

    fn token_for(state: &AuthState, user: &str, ttl: Duration) -> String {
        let generation = state.users[user].generation;
        issue(&state.token_key, user, generation, ttl)
    }

    #[test]
    fn a_token_signs_its_user_in_until_it_expires() {
        let state = state();
        let token = token_for(&state, "root", Duration::from_secs(60));
        assert_eq!(verify(&state, &token), Ok("root".to_owned()));
        let past = format!("root|{}|1", state.users["root"].generation);
        let mac = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &state.token_key),
            past.as_bytes(),
        );
        let expired = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&past),
            URL_SAFE_NO_PAD.encode(mac.as_ref())
        );
        assert_eq!(verify(&state, &expired), Err(TokenError::Expired));
    }

    #[test]
    fn a_forged_or_foreign_token_is_invalid() {
        let state = state();
        let token = token_for(&state, "root", Duration::from_secs(60));
        let (payload, mac) = token.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode("admin|1|99999999999");
        assert_eq!(
            verify(&state, &format!("{forged_payload}.{mac}")),
            Err(TokenError::Invalid)
        );
        assert_eq!(verify(&state, payload), Err(TokenError::Invalid));
        assert_eq!(verify(&state, "garbage"), Err(TokenError::Invalid));
        let mut other = state.clone();
        other
            .apply(AuthChange::Enable {
                token_key: Bytes::from(vec![2; 32]),
            })
            .unwrap();
        assert_eq!(verify(&other, &token), Err(TokenError::Invalid));
    }

    #[test]
    fn a_new_password_revokes_the_tokens_issued_before() {
        let mut state = state();
        let token = token_for(&state, "root", Duration::from_secs(60));
        state
            .apply(AuthChange::SetPassword {
                name: "root".into(),
                password_hash: "h2".into(),
            })
            .unwrap();
        assert_eq!(verify(&state, &token), Err(TokenError::Revoked));
    }
}
