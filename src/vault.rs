//! Secrets Docket must read back (an IMAP mailbox password, a webhook's signing secret) are
//! stored encrypted under a key derived from the server's signing secret, one key per purpose.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit, Nonce,
    aead::{Aead, AeadCore, OsRng},
};
use hmac::{Hmac, Mac, digest::KeyInit as KeyInitMac};
use sha2::Sha256;

use crate::{
    config::Secret,
    error::{Error, Result},
};

/// A key derived from `secret` for one purpose, named by `label`.
pub fn derive(secret: &Secret, label: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInitMac>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Encrypts and decrypts stored secrets of one purpose.
#[derive(Clone)]
pub struct Vault([u8; 32]);

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(***)")
    }
}

impl Vault {
    pub fn new(secret: &Secret, label: &str) -> Self {
        Self(derive(secret, label))
    }

    /// Encrypts a secret to store (nonce and ciphertext, base64).
    pub fn seal(&self, plain: &str) -> Result<String> {
        let cipher = ChaCha20Poly1305::new((&self.0).into());
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(&nonce, plain.as_bytes())
            .map_err(|_| Error::internal(anyhow::anyhow!("encrypting a stored secret")))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts what [`Vault::seal`] stored; `None` when it was sealed under another key.
    pub fn open(&self, stored: &str) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(stored).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let cipher = ChaCha20Poly1305::new((&self.0).into());
        let plain = cipher.decrypt(&Nonce::from(nonce), sealed).ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(secret: &str) -> Vault {
        Vault::new(&Secret::new(secret), "a purpose")
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let k = vault("a-signing-secret-of-enough-length-000");
        let sealed = k.seal("hunter2hunter2").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(k.open(&sealed).as_deref(), Some("hunter2hunter2"));
        assert_eq!(
            vault("another-signing-secret-of-length-0000").open(&sealed),
            None
        );
        let other_purpose = Vault::new(
            &Secret::new("a-signing-secret-of-enough-length-000"),
            "another purpose",
        );
        assert_eq!(other_purpose.open(&sealed), None);
        assert_eq!(k.open("garbage"), None);
    }
}
