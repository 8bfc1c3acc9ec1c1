//! Password hashing with argon2id, off the async runtime (hashing is deliberately slow).

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};

use crate::error::{Error, Result};

pub const MIN_LENGTH: usize = 10;
pub const MAX_LENGTH: usize = 1024;

pub fn validate(password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err(Error::invalid(
            "password",
            format!("must be at least {MIN_LENGTH} characters"),
        ));
    }
    if chars > MAX_LENGTH {
        return Err(Error::invalid(
            "password",
            format!("must be at most {MAX_LENGTH} characters"),
        ));
    }
    Ok(())
}

pub async fn hash(password: &str) -> Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(anyhow::anyhow!("hashing password: {e}")))
    })
    .await
    .map_err(Error::internal)?
}

/// Verifies a password; with no stored hash (unknown account) it still does the work of one
/// verification, so response time does not reveal whether an account exists.
pub async fn verify(password: &str, stored: Option<String>) -> Result<bool> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        // Erased accounts carry a hash nothing matches; treat them like unknown ones.
        let real = stored.filter(|s| PasswordHash::new(s).is_ok());
        let candidate = real.as_deref().unwrap_or(DUMMY_HASH);
        let parsed = PasswordHash::new(candidate)
            .map_err(|e| Error::internal(anyhow::anyhow!("dummy hash unreadable: {e}")))?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && real.is_some())
    })
    .await
    .map_err(Error::internal)?
}

/// An argon2id hash (default parameters) of a random string nobody knows.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0a4d2XkT8FQzZ5c8WbXNbPS6yMPJMi0lAN6Yd1YKc7Q";

/// A hash no password matches: for erased accounts.
pub const UNUSABLE_HASH: &str = "!erased";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let a = hash("correct horse battery").await.unwrap();
        let b = hash("correct horse battery").await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        assert!(
            verify("correct horse battery", Some(a.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse battery", Some(a)).await.unwrap());
        assert!(!verify("anything at all", None).await.unwrap());
        assert!(
            !verify("anything at all", Some(UNUSABLE_HASH.into()))
                .await
                .unwrap()
        );
    }

    #[test]
    fn length_rules() {
        assert!(validate("short").is_err());
        assert!(validate("exactly10!").is_ok());
        assert!(validate(&"x".repeat(MAX_LENGTH + 1)).is_err());
    }
}
