//! The authenticator app (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of skew either
//! way). The secret is sealed at rest; a code is accepted once (the step it matched is kept,
//! and only later steps are accepted after it).

use chrono::Utc;
use rand::RngCore;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr, sea_query::OnConflict,
};
use serde::{Deserialize, Serialize};
use totp_rs::{Builder, Totp};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    Enrollee, MfaStatus, Proof, SecondFactors, check_proof, keep_required_factor, recovery_codes,
    status,
};
use crate::{
    access::TenantCtx,
    audit,
    error::{Error, Result},
    identity::{Hasher, entity::totp_factor},
    store::Db,
};

const ISSUER: &str = "Docket";

/// A new secret to put in the app; it is active once a code confirms it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// The secret in base32, for typing in.
    pub secret: String,
    /// The same as an `otpauth://totp/…` URI (the QR code's content).
    pub otpauth_uri: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    /// The app's current 6-digit code.
    pub code: String,
}

/// Recovery codes, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

fn totp(secret: Vec<u8>, account: &str) -> Result<Totp> {
    Builder::new()
        .with_secret(totp_rs::Secret::new(secret.into_boxed_slice()))
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        .build()
        .map_err(|e| Error::internal(anyhow::anyhow!("building a TOTP: {e}")))
}

/// Starts (or restarts) enrolment of an authenticator app. An app already confirmed stays until
/// it is removed: 409.
pub async fn enrol(db: &Db, factors: &SecondFactors, who: &Enrollee) -> Result<TotpEnrolment> {
    let email = crate::identity::account_email(db, who.user_id).await?;
    let mut secret = vec![0u8; 20];
    rand::rng().fill_bytes(&mut secret);
    let app = totp(secret.clone(), &email)?;
    let sealed = factors.vault.seal(&hex::encode(&secret))?;
    let tx = db.global(true).await?;
    let current = totp_factor::Entity::find_by_id(who.user_id)
        .one(tx.conn())
        .await?;
    if current.is_some_and(|f| f.confirmed_at.is_some()) {
        return Err(Error::conflict(
            "totp_already_enabled",
            "an authenticator app is already enrolled; remove it first to enrol another",
        ));
    }
    totp_factor::Entity::insert(totp_factor::ActiveModel {
        user_id: Set(who.user_id),
        secret: Set(sealed),
        created_at: Set(Utc::now()),
        confirmed_at: Set(None),
        last_step: Set(None),
    })
    .on_conflict(
        OnConflict::column(totp_factor::Column::UserId)
            .update_columns([totp_factor::Column::Secret, totp_factor::Column::CreatedAt])
            .to_owned(),
    )
    .exec_without_returning(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(TotpEnrolment {
        secret: app.secret().to_base32(),
        otpauth_uri: app
            .to_url()
            .map_err(|e| Error::internal(anyhow::anyhow!("otpauth URI: {e}")))?,
    })
}

/// Confirms the app with its current code: it becomes a second factor of the account, and a
/// fresh set of recovery codes replaces any earlier one.
pub async fn confirm(
    db: &Db,
    factors: &SecondFactors,
    who: &Enrollee,
    req: TotpCode,
) -> Result<RecoveryCodes> {
    let pending = {
        let tx = db.global(false).await?;
        totp_factor::Entity::find_by_id(who.user_id)
            .one(tx.conn())
            .await?
    };
    match pending {
        None => {
            return Err(Error::conflict(
                "totp_not_started",
                "start enrolment first (POST /auth/mfa/totp)",
            ));
        }
        Some(f) if f.confirmed_at.is_some() => {
            return Err(Error::conflict(
                "totp_already_enabled",
                "the authenticator app is already confirmed",
            ));
        }
        Some(_) => {}
    }
    super::verify(
        db,
        factors,
        who.user_id,
        super::Answer::EnrolmentCode(&req.code),
    )
    .await
    .map_err(|e| super::as_field(e, "code"))?;
    let codes = recovery_codes::fresh();
    let tx = db.global(true).await?;
    let confirmed = totp_factor::Entity::update_many()
        .col_expr(totp_factor::Column::ConfirmedAt, Expr::value(Utc::now()))
        .filter(totp_factor::Column::UserId.eq(who.user_id))
        .filter(totp_factor::Column::ConfirmedAt.is_null())
        .exec(tx.conn())
        .await?;
    if confirmed.rows_affected != 1 {
        return Err(Error::conflict(
            "totp_already_enabled",
            "the authenticator app is already confirmed",
        ));
    }
    recovery_codes::replace(tx.conn(), who.user_id, &codes).await?;
    tx.commit().await?;
    record(db, who.org_id, who.user_id, "mfa.totp_enabled").await?;
    Ok(RecoveryCodes {
        recovery_codes: codes,
    })
}

/// Removes the app, given a current code or the password. Refused (409) when it is the last
/// factor of someone an organisation requires to have one.
pub async fn disable(
    db: &Db,
    hasher: &Hasher,
    factors: &SecondFactors,
    ctx: &TenantCtx,
    proof: Proof,
    ip: std::net::IpAddr,
) -> Result<()> {
    let before = status(db.global(false).await?.conn(), ctx.user_id).await?;
    if !before.totp {
        return Err(Error::NotFound("totp"));
    }
    keep_required_factor(
        db,
        ctx.user_id,
        &MfaStatus {
            totp: false,
            ..before.clone()
        },
    )
    .await?;
    check_proof(db, hasher, factors, ctx, &proof, ip).await?;
    let tx = db.global(true).await?;
    totp_factor::Entity::delete_by_id(ctx.user_id)
        .exec(tx.conn())
        .await?;
    if before.passkeys == 0 {
        recovery_codes::replace(tx.conn(), ctx.user_id, &[]).await?;
    }
    tx.commit().await?;
    record(db, ctx.org_id, ctx.user_id, "mfa.totp_disabled").await
}

/// Accepts a code of the account's confirmed app (or, `enrolling`, of the app being enrolled:
/// an app nobody confirmed is no second factor); each step's code works once, even when two
/// requests bring it at the same moment.
pub(super) async fn accept(
    db: &Db,
    factors: &SecondFactors,
    user_id: Uuid,
    code: &str,
    enrolling: bool,
) -> Result<bool> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(false);
    }
    let tx = db.global(true).await?;
    let Some(factor) = totp_factor::Entity::find_by_id(user_id)
        .one(tx.conn())
        .await?
    else {
        return Ok(false);
    };
    if factor.confirmed_at.is_some() == enrolling {
        return Ok(false);
    }
    let Some(secret) = factors
        .vault
        .open(&factor.secret)
        .and_then(|s| hex::decode(s).ok())
    else {
        return Err(Error::internal(anyhow::anyhow!(
            "a stored TOTP secret does not open under this server's key"
        )));
    };
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or_default();
    let Some(step) = totp(secret, "")?.check(code, now) else {
        return Ok(false);
    };
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    let claimed = totp_factor::Entity::update_many()
        .col_expr(totp_factor::Column::LastStep, Expr::value(step))
        .filter(totp_factor::Column::UserId.eq(user_id))
        .filter(
            sea_orm::Condition::any()
                .add(totp_factor::Column::LastStep.is_null())
                .add(totp_factor::Column::LastStep.lt(step)),
        )
        .exec(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(claimed.rows_affected == 1)
}

/// Writes an account's second-factor change to the audit log of the organisation it acted from.
pub(super) async fn record(db: &Db, org_id: Uuid, user_id: Uuid, action: &str) -> Result<()> {
    let tx = db.write_org(org_id).await?;
    audit::record(
        &tx,
        Some(user_id),
        action,
        "user",
        Some(user_id),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B: the SHA-1 secret "12345678901234567890" gives 94287082 at T=59
    /// (eight digits); its last six are the six-digit code.
    #[test]
    fn codes_follow_rfc_6238() {
        let app = totp(b"12345678901234567890".to_vec(), "a@example.com").unwrap();
        assert_eq!(app.generate(59).to_string(), "287082");
        assert_eq!(app.generate(1_111_111_109).to_string(), "081804");
        // One step of skew either way, and no more.
        assert!(app.check("081804", 1_111_111_109 + 30).is_some());
        assert!(app.check("081804", 1_111_111_109 - 30).is_some());
        assert!(app.check("081804", 1_111_111_109 + 60).is_none());
    }

    #[test]
    fn the_uri_names_docket_and_the_account() {
        let app = totp(vec![7; 20], "ann@example.com").unwrap();
        let uri = app.to_url().unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Docket:ann%40example.com?"),
            "{uri}"
        );
        assert!(uri.contains("issuer=Docket"), "{uri}");
    }
}
