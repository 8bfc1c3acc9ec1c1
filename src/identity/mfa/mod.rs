//! Second factors of an account: an authenticator app (TOTP, RFC 6238), passkeys (WebAuthn)
//! and single-use recovery codes; and the sign-in step that asks for one.
//!
//! Factors belong to the account, not to an organisation: a person who enrolled once signs in
//! to each of their organisations with it. An organisation may require staff to have one
//! (`require_mfa`): a password alone then opens only the enrolment step.

pub mod passkeys;
pub mod recovery_codes;
pub mod totp;

use std::sync::Arc;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    AuthResponse, Hasher, SessionMethod,
    entity::{passkey, recovery_code, totp_factor},
    throttle::{self, Key},
    tokens::{StepPurpose, TokenKeys},
};
use crate::{
    access::{Role, TenantCtx},
    config::Secret,
    error::{Error, Result},
    store::Db,
    tenancy::{self, OrgMembership},
    vault::Vault,
};

/// What second factors need: the vault that seals TOTP secrets, and the relying party of
/// passkeys (from `DOCKET_PUBLIC_URL`).
#[derive(Clone)]
pub struct SecondFactors {
    vault: Vault,
    /// `None` when the public address cannot be a relying party (an IP address, which browsers
    /// refuse for passkeys): passkeys are then unavailable, and say so.
    webauthn: Option<Arc<webauthn_rs::Webauthn>>,
}

impl SecondFactors {
    pub fn new(signing_secret: &Secret, public_url: &str) -> Self {
        let webauthn = match passkeys::relying_party(public_url) {
            Ok(rp) => Some(Arc::new(rp)),
            Err(err) => {
                tracing::warn!(%public_url, error = %err,
                    "passkeys are off: DOCKET_PUBLIC_URL must name the site by a domain name");
                None
            }
        };
        Self {
            vault: Vault::new(signing_secret, "docket mfa: authenticator app secrets"),
            webauthn,
        }
    }

    fn webauthn(&self) -> Result<&webauthn_rs::Webauthn> {
        self.webauthn.as_deref().ok_or_else(|| {
            Error::conflict(
                "passkeys_unavailable",
                "passkeys need the server's public address (DOCKET_PUBLIC_URL) to be a domain name",
            )
        })
    }
}

/// An account's second factors (`GET /auth/me`).
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct MfaStatus {
    /// An authenticator app is enrolled and confirmed.
    pub totp: bool,
    /// Passkeys registered.
    pub passkeys: u64,
    /// Recovery codes not used yet.
    pub recovery_codes: u64,
}

impl MfaStatus {
    pub fn any(&self) -> bool {
        self.totp || self.passkeys > 0
    }
}

pub async fn status(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<MfaStatus> {
    let totp = totp_factor::Entity::find_by_id(user_id)
        .filter(totp_factor::Column::ConfirmedAt.is_not_null())
        .count(conn)
        .await?
        > 0;
    let passkeys = passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user_id))
        .count(conn)
        .await?;
    let recovery_codes = recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::UsedAt.is_null())
        .count(conn)
        .await?;
    Ok(MfaStatus {
        totp,
        passkeys,
        recovery_codes,
    })
}

/// Removes every second factor of an account (it is being erased).
pub(crate) async fn forget(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<()> {
    totp_factor::Entity::delete_by_id(user_id)
        .exec(conn)
        .await?;
    recovery_codes::replace(conn, user_id, &[]).await?;
    passkey::Entity::delete_many()
        .filter(passkey::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// True when the account has a second factor (an app or a passkey).
pub async fn has_factor(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<bool> {
    Ok(status(conn, user_id).await?.any())
}

/// True when one of these memberships is a staff role in an organisation that requires a
/// second factor.
fn required_by(memberships: &[OrgMembership]) -> bool {
    memberships
        .iter()
        .any(|m| m.organization.require_mfa && m.role != Role::Requester)
}

/// Whose account an enrolment acts on: a signed-in person, or one half-way through a sign-in
/// that must enrol a second factor first (the `mfa_token` of a set-up step).
#[derive(Clone, Debug)]
pub struct Enrollee {
    pub user_id: Uuid,
    pub org_id: Uuid,
    /// The signed-in caller; `None` during a set-up step.
    pub signed_in: Option<TenantCtx>,
}

impl Enrollee {
    /// The person of a set-up step's token.
    pub fn from_setup_token(keys: &TokenKeys, token: &str) -> Option<Self> {
        keys.verify_step(token)
            .filter(|c| c.purpose == StepPurpose::Setup)
            .map(|c| Enrollee {
                user_id: c.sub,
                org_id: c.org,
                signed_in: None,
            })
    }

    /// A signed-in caller, once their session is confirmed live.
    pub async fn signed_in(db: &Db, ctx: TenantCtx) -> Result<Self> {
        super::confirm(db, &ctx).await?;
        Ok(Enrollee {
            user_id: ctx.user_id,
            org_id: ctx.org_id,
            signed_in: Some(ctx),
        })
    }
}

/// What proves it is really the account's owner before a factor is removed or codes renewed:
/// a current code (app or recovery), or the password.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    /// A code of the authenticator app.
    pub code: Option<String>,
    /// One of the recovery codes (it is used up).
    pub recovery_code: Option<String>,
    pub password: Option<String>,
}

/// Checks a [`Proof`] of the signed-in `ctx`. A wrong one is a 422 on its field and counts
/// against the account like a wrong sign-in.
async fn check_proof(
    db: &Db,
    hasher: &Hasher,
    factors: &SecondFactors,
    ctx: &TenantCtx,
    proof: &Proof,
    ip: std::net::IpAddr,
) -> Result<()> {
    match (&proof.code, &proof.recovery_code, &proof.password) {
        (Some(code), None, None) => verify(db, factors, ctx.user_id, Answer::Code(code))
            .await
            .map_err(|e| as_field(e, "code")),
        (None, Some(code), None) => verify(db, factors, ctx.user_id, Answer::RecoveryCode(code))
            .await
            .map_err(|e| as_field(e, "recovery_code")),
        (None, None, Some(password)) => {
            let email = super::account_email(db, ctx.user_id).await?;
            super::check_password(db, hasher, &email, password, ip)
                .await
                .map(drop)
                .map_err(|e| as_field(e, "password"))
        }
        _ => Err(Error::invalid(
            "code",
            "give one of `code`, `recovery_code` or `password`",
        )),
    }
}

/// A wrong answer on an endpoint of a signed-in person is their field's fault, not their
/// session's (a 422, not a 401).
fn as_field(err: Error, field: &'static str) -> Error {
    match err {
        Error::Unauthorized { .. } => Error::invalid(field, "is wrong, expired or already used"),
        other => other,
    }
}

/// A second factor's answer.
pub enum Answer<'a> {
    /// A code of the confirmed app.
    Code(&'a str),
    /// A code of the app being enrolled (it confirms it).
    EnrolmentCode(&'a str),
    RecoveryCode(&'a str),
}

fn wrong_answer() -> Error {
    Error::Unauthorized {
        code: "invalid_second_factor",
        detail: "the code is wrong, expired or already used".into(),
        invalid_token: false,
    }
}

/// Verifies an answer, throttled per account like passwords: a code works once, and wrong ones
/// slow the answer down, then lock the account's second step for a while (429).
pub async fn verify(
    db: &Db,
    factors: &SecondFactors,
    user_id: Uuid,
    answer: Answer<'_>,
) -> Result<()> {
    let key = [Key::second_factor(user_id)];
    throttle::reserve(db, &key).await?;
    let ok = match answer {
        Answer::Code(code) => totp::accept(db, factors, user_id, code, false).await?,
        Answer::EnrolmentCode(code) => totp::accept(db, factors, user_id, code, true).await?,
        Answer::RecoveryCode(code) => recovery_codes::redeem(db, user_id, code).await?,
    };
    if ok {
        throttle::succeeded(db, &key[0], &[]).await?;
        Ok(())
    } else {
        let delay = throttle::failed(db, &key).await?;
        tokio::time::sleep(delay).await;
        Err(wrong_answer())
    }
}

/// The sign-in step: `{mfa_token, code}` or `{mfa_token, recovery_code}`; during a set-up step,
/// `{mfa_token}` alone once a factor is enrolled.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaLogin {
    pub mfa_token: String,
    /// A code of the authenticator app.
    pub code: Option<String>,
    /// One of the recovery codes (it is used up).
    pub recovery_code: Option<String>,
}

/// Finishes a sign-in that stopped at its second step.
pub async fn login(
    db: &Db,
    keys: &TokenKeys,
    factors: &SecondFactors,
    req: MfaLogin,
) -> Result<AuthResponse> {
    let claims = keys.verify_step(&req.mfa_token).ok_or_else(|| {
        Error::invalid_token("this sign-in step has expired or is not valid; sign in again")
    })?;
    match claims.purpose {
        StepPurpose::Verify => {
            let answer = match (&req.code, &req.recovery_code) {
                (Some(code), None) => Answer::Code(code),
                (None, Some(code)) => Answer::RecoveryCode(code),
                _ => {
                    return Err(Error::invalid(
                        "code",
                        "give either `code` or `recovery_code`",
                    ));
                }
            };
            verify(db, factors, claims.sub, answer).await?;
        }
        StepPurpose::Setup => {
            let conn = db.global(false).await?;
            if !has_factor(conn.conn(), claims.sub).await? {
                return Err(Error::conflict(
                    "mfa_setup_required",
                    "enrol an authenticator app or a passkey first",
                ));
            }
        }
    }
    super::resume_sign_in(db, keys, claims.sub, claims.org, SessionMethod::Mfa).await
}

/// Refuses to take away an account's last second factor while an organisation it works in
/// requires one.
async fn keep_required_factor(db: &Db, user_id: Uuid, remaining: &MfaStatus) -> Result<()> {
    if remaining.any() {
        return Ok(());
    }
    let memberships = tenancy::memberships_of(&db.member(user_id).await?).await?;
    if required_by(&memberships) {
        return Err(Error::conflict(
            "mfa_required_by_organization",
            "an organization you work in requires a second factor; add another before removing this one",
        ));
    }
    Ok(())
}

/// Whether a sign-in by password alone may go on: an account with a second factor is asked for
/// it, and staff of an organisation that requires one must enrol first.
pub(super) async fn step_after_password(
    db: &Db,
    keys: &TokenKeys,
    user_id: Uuid,
    chosen: &OrgMembership,
) -> Result<Option<SecondStep>> {
    let conn = db.global(false).await?;
    let status = status(conn.conn(), user_id).await?;
    conn.commit().await?;
    let org = chosen.organization.id;
    if status.any() {
        let mut methods = Vec::new();
        if status.totp {
            methods.push(MfaMethod::Totp);
        }
        if status.passkeys > 0 {
            methods.push(MfaMethod::Passkey);
        }
        if status.recovery_codes > 0 {
            methods.push(MfaMethod::RecoveryCode);
        }
        return Ok(Some(SecondStep {
            mfa_required: true,
            mfa_setup_required: false,
            mfa_token: keys.issue_step(user_id, org, StepPurpose::Verify)?,
            methods,
        }));
    }
    if chosen.organization.require_mfa && chosen.role != Role::Requester {
        return Ok(Some(SecondStep {
            mfa_required: false,
            mfa_setup_required: true,
            mfa_token: keys.issue_step(user_id, org, StepPurpose::Setup)?,
            methods: vec![MfaMethod::Totp, MfaMethod::Passkey],
        }));
    }
    Ok(None)
}

/// A second factor.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MfaMethod {
    Totp,
    Passkey,
    RecoveryCode,
}

/// A sign-in that needs a second step: no tokens yet.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecondStep {
    /// Give a second factor (`POST /auth/login/mfa`, or a passkey with this token).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mfa_required: bool,
    /// The organisation requires a second factor and the account has none: enrol one with this
    /// token as the bearer, then finish with `POST /auth/login/mfa {mfa_token}`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mfa_setup_required: bool,
    /// Valid for 10 minutes; it is no access token.
    pub mfa_token: String,
    /// The factors that can finish this step (or be enrolled).
    pub methods: Vec<MfaMethod>,
}
