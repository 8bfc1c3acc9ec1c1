//! Access tokens (short-lived HS256 JWTs) and refresh tokens (opaque, stored only as a hash).

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{access::Role, config::Secret};

/// What an access token says. Authorisation re-reads the role from the database on every
/// request; the claim is informational for clients.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub org: Uuid,
    pub sid: Uuid,
    pub role: Role,
    /// The organisation was deleted when the session began (its owner may only restore it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closed: bool,
    pub iat: i64,
    pub exp: i64,
}

/// An unfinished sign-in (`mfa_token`): the password was right, and the person must still give
/// a second factor (`Verify`) or enrol one first (`Setup`). It is no access token: it carries
/// its own audience and neither a session nor a role, so no endpoint but the sign-in step and
/// enrolment takes it.
#[derive(Debug, Serialize, Deserialize)]
pub struct StepClaims {
    pub sub: Uuid,
    pub org: Uuid,
    pub purpose: StepPurpose,
    aud: String,
    iat: i64,
    exp: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepPurpose {
    Verify,
    Setup,
}

const STEP_AUDIENCE: &str = "docket:sign-in-step";
/// How long a sign-in step waits for its second factor (or enrolment).
const STEP_TTL: Duration = Duration::from_secs(600);

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    step_validation: Validation,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &Secret, access_ttl: Duration, refresh_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let mut step_validation = validation.clone();
        step_validation.set_audience(&[STEP_AUDIENCE]);
        step_validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            step_validation,
            access_ttl,
            refresh_ttl,
        }
    }

    pub fn issue(
        &self,
        user_id: Uuid,
        org_id: Uuid,
        session_id: Uuid,
        role: Role,
        closed: bool,
    ) -> anyhow::Result<String> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            org: org_id,
            sid: session_id,
            role,
            closed,
            iat: now,
            exp: now + self.access_ttl.as_secs() as i64,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Verifies signature, algorithm (HS256 only: `none` and others are refused) and expiry.
    /// A sign-in step's token is refused: it names no session and no role.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|d| d.claims)
    }

    /// The token of an unfinished sign-in of `user_id` to `org_id`.
    pub fn issue_step(
        &self,
        user_id: Uuid,
        org_id: Uuid,
        purpose: StepPurpose,
    ) -> anyhow::Result<String> {
        let now = Utc::now().timestamp();
        let claims = StepClaims {
            sub: user_id,
            org: org_id,
            purpose,
            aud: STEP_AUDIENCE.to_owned(),
            iat: now,
            exp: now + STEP_TTL.as_secs() as i64,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    pub fn verify_step(&self, token: &str) -> Option<StepClaims> {
        jsonwebtoken::decode::<StepClaims>(token, &self.decoding, &self.step_validation)
            .ok()
            .map(|d| d.claims)
    }
}

/// Generates a fresh random secret for signing keys: 32 bytes, base64url.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The secret of a mailed single-use link (`<kind>_<32 random bytes, base64url>`): password
/// resets, sign-up confirmations, contact links.
pub fn link_token(kind: &str) -> String {
    format!("{kind}_{}", random_secret())
}

/// How a link's secret is stored: its SHA-256, in hex.
pub fn link_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A secret that names its organisation (`<kind>_<org>_<secret>`), so that its lookup runs
/// inside that tenant's wall; only the SHA-256 of the whole token is stored. Refresh tokens,
/// invitations and API tokens are such tokens, each with its own kind.
#[derive(Clone, Debug)]
pub struct OrgToken {
    pub token: String,
    pub org_id: Uuid,
}

impl OrgToken {
    /// Refresh tokens: `rt_…`.
    pub const REFRESH: &'static str = "rt";
    /// Invitation links: `inv_…`.
    pub const INVITATION: &'static str = "inv";
    /// API tokens: `dkt_…`.
    pub const API: &'static str = "dkt";

    pub fn generate(kind: &str, org_id: Uuid) -> Self {
        Self {
            token: format!("{kind}_{}_{}", org_id.simple(), random_secret()),
            org_id,
        }
    }

    /// A token of `kind`, or `None` for anything else (another kind, a wrong length, garbage).
    pub fn parse(kind: &str, token: &str) -> Option<Self> {
        let rest = token.strip_prefix(kind)?.strip_prefix('_')?;
        let (org, secret) = rest.split_once('_')?;
        if org.len() != 32 || secret.len() != 43 {
            return None;
        }
        let org_id = Uuid::try_parse(org).ok()?;
        URL_SAFE_NO_PAD.decode(secret).ok()?;
        Some(Self {
            token: token.to_owned(),
            org_id,
        })
    }

    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.token.as_bytes()))
    }

    /// The start of the secret, to recognise a token by in lists (`dkt_…` + 8 characters).
    pub fn prefix(&self) -> String {
        // `<kind>_<32 hex>_<secret>`: the secret may itself contain `_`.
        let kind = self.token.split('_').next().unwrap_or_default();
        let secret = self.token.get(kind.len() + 34..).unwrap_or_default();
        format!("{kind}_…{}", secret.get(..8).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_tokens_round_trip_and_reject_garbage() {
        let org = Uuid::now_v7();
        let t = OrgToken::generate(OrgToken::REFRESH, org);
        let parsed = OrgToken::parse(OrgToken::REFRESH, &t.token).unwrap();
        assert_eq!(parsed.org_id, org);
        assert_eq!(parsed.hash(), t.hash());
        for _ in 0..200 {
            // Secrets with `_` in them too.
            let t = OrgToken::generate(OrgToken::API, org);
            let prefix = t.prefix();
            assert!(
                prefix.starts_with("dkt_…") && prefix.chars().count() == 13,
                "{prefix}"
            );
            let parsed = OrgToken::parse(OrgToken::API, &t.token).map(|p| p.org_id);
            assert_eq!(parsed, Some(org), "{}", t.token);
            assert!(
                t.token[4 + 33..].starts_with(&prefix["dkt_…".len()..]),
                "{prefix}"
            );
        }
        for bad in [
            "",
            "rt_",
            "rt_x_y",
            &t.token[..t.token.len() - 1],
            &format!("{}!", t.token),
        ] {
            assert!(OrgToken::parse(OrgToken::REFRESH, bad).is_none(), "{bad}");
        }
        // A token of one kind is no token of another.
        assert!(OrgToken::parse(OrgToken::API, &t.token).is_none());
        assert!(OrgToken::parse("r", &t.token).is_none());
    }

    #[test]
    fn jwt_round_trip_and_tamper() {
        let keys = TokenKeys::new(
            &Secret::new("k".repeat(32)),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        let (u, o, s) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let token = keys.issue(u, o, s, Role::Agent, false).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.org, claims.sid, claims.role),
            (u, o, s, Role::Agent)
        );
        let other = TokenKeys::new(
            &Secret::new("j".repeat(32)),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        assert!(other.verify(&token).is_none(), "another key");
        assert!(keys.verify("not.a.jwt").is_none());
    }
}
