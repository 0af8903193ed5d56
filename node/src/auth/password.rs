//! Password hashes: argon2id with a random salt, stored as PHC strings
//! (`$argon2id$v=19$m=...`) in the replicated auth state. Hashing and
//! checking cost tens of milliseconds of CPU and ~19 MiB on purpose: run
//! them off the async threads.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// The longest password accepted (argon2 takes any length; a bound keeps
/// a request from making the node hash megabytes).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The PHC string of `password`'s hash.
pub fn hash(password: &str) -> Result<String, String> {
    check(password)?;
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| "no randomness for a salt".to_owned())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` is the one `phc` was made from.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Why `password` cannot be used, if it cannot.
pub fn check(password: &str) -> Result<(), String> {
    if password.is_empty() {
        return Err("the password is empty".to_owned());
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "the password is longer than {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_is_salted() {
        let first = hash("correct horse").unwrap();
        assert!(first.starts_with("$argon2id$"), "{first}");
        assert!(!first.contains("correct horse"));
        assert!(verify("correct horse", &first));
        assert!(!verify("correct hors", &first));
        assert_ne!(
            hash("correct horse").unwrap(),
            first,
            "same password, new salt"
        );
        assert!(!verify("x", "not a hash"));
        assert!(hash("").is_err());
        assert!(hash(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }
}
