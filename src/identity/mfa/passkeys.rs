//! Passkeys (WebAuthn): several per account, named; each can sign in on its own (a
//! discoverable credential: the browser offers the accounts it holds) or be the second factor
//! after a password. The relying party is `DOCKET_PUBLIC_URL`'s host, and only that origin's
//! browser answers count.
//!
//! A ceremony's state waits between its two requests (`identity::ceremonies`).

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    sea_query::Expr,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use utoipa::ToSchema;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Webauthn,
    WebauthnBuilder,
};

use super::{Enrollee, MfaStatus, SecondFactors, keep_required_factor, recovery_codes, status};
use crate::{
    access::TenantCtx,
    error::{Error, Result, Validator},
    identity::{
        AuthResponse, SessionMethod,
        ceremonies::{self, keep},
        entity::{ceremony, passkey},
        tokens::{StepPurpose, TokenKeys},
    },
    store::{Db, is_unique_violation},
    text,
};

const MAX_PER_ACCOUNT: usize = 20;

/// The relying party of `public_url` (its host is the id, the URL itself the one origin).
pub(super) fn relying_party(public_url: &str) -> anyhow::Result<Webauthn> {
    let origin = Url::parse(public_url.trim())?;
    let id = origin
        .host_str()
        .ok_or_else(|| anyhow::anyhow!("DOCKET_PUBLIC_URL has no host"))?
        .to_owned();
    Ok(WebauthnBuilder::new(&id, &origin)?
        .rp_name("Docket")
        .build()?)
}

/// A registered passkey as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeySummary {
    pub id: Uuid,
    pub name: String,
    pub created_at: chrono::DateTime<Utc>,
    pub last_used_at: Option<chrono::DateTime<Utc>>,
}

impl From<passkey::Model> for PasskeySummary {
    fn from(m: passkey::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
        }
    }
}

/// The first half of a ceremony: what the browser's `navigator.credentials` call takes.
#[derive(Debug, Serialize, ToSchema)]
pub struct CeremonyStart {
    /// Send it back with the browser's answer.
    pub ceremony_id: Uuid,
    /// WebAuthn options in their JSON form (`PublicKeyCredential.parseCreationOptionsFromJSON` /
    /// `parseRequestOptionsFromJSON` take the `publicKey` member).
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterFinish {
    pub ceremony_id: Uuid,
    /// What to call this passkey ("Laptop", "Phone").
    #[schema(schema_with = crate::text::line_schema)]
    pub name: String,
    /// The browser's `PublicKeyCredential`, as `toJSON()` gives it.
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// A new passkey; recovery codes come with the account's first second factor.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyRegistered {
    pub passkey: PasskeySummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginStart {
    /// The second step of a password sign-in: only this account's passkeys answer. Without it,
    /// any passkey of this site signs its account in on its own.
    pub mfa_token: Option<String>,
    /// Slug of the organisation to sign in to (a passkey alone; needed when the person
    /// belongs to several).
    pub organization: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginFinish {
    pub ceremony_id: Uuid,
    /// The browser's `PublicKeyCredential`, as `toJSON()` gives it.
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// What a passkey ceremony keeps between its halves.
#[derive(Serialize, Deserialize)]
struct Waiting<S> {
    state: S,
    organization: Option<String>,
}

const REGISTER: &str = "register";
const SECOND_STEP: &str = "second_step";
const DISCOVERABLE: &str = "discoverable";

fn ceremony_gone() -> Error {
    Error::invalid(
        "ceremony_id",
        "this passkey ceremony has expired or was already finished; start again",
    )
}

/// Takes a passkey ceremony of one of `kinds` (once).
async fn take(db: &Db, id: Uuid, kinds: &[&str]) -> Result<ceremony::Model> {
    ceremonies::take(db, id, kinds)
        .await?
        .ok_or_else(ceremony_gone)
}

fn options(value: impl Serialize) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(value).map_err(anyhow::Error::from)?)
}

fn credential<T: DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|e| Error::invalid("credential", format!("is not a WebAuthn credential: {e}")))
}

fn credential_key(passkey: &Passkey) -> String {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    URL_SAFE_NO_PAD.encode(passkey.cred_id().as_ref())
}

async fn passkeys_of(db: &Db, user_id: Uuid) -> Result<Vec<passkey::Model>> {
    Ok(passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user_id))
        .order_by_asc(passkey::Column::CreatedAt)
        .all(db.global(false).await?.conn())
        .await?)
}

fn stored(row: &passkey::Model) -> Result<Passkey> {
    Ok(serde_json::from_str(&row.credential).map_err(anyhow::Error::from)?)
}

pub async fn list(db: &Db, ctx: &TenantCtx) -> Result<Vec<PasskeySummary>> {
    Ok(passkeys_of(db, ctx.user_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Starts registering a passkey for the account (the browser is told not to make a second one
/// on an authenticator that already holds one of the account's).
pub async fn register_start(
    db: &Db,
    factors: &SecondFactors,
    who: &Enrollee,
) -> Result<CeremonyStart> {
    let existing = passkeys_of(db, who.user_id).await?;
    if existing.len() >= MAX_PER_ACCOUNT {
        return Err(Error::conflict(
            "too_many_passkeys",
            format!("an account holds {MAX_PER_ACCOUNT} passkeys at most; remove one first"),
        ));
    }
    let exclude = existing
        .iter()
        .map(|row| stored(row).map(|p| p.cred_id().clone()))
        .collect::<Result<Vec<_>>>()?;
    let email = crate::identity::account_email(db, who.user_id).await?;
    let (challenge, state) = factors
        .webauthn()?
        .start_passkey_registration(who.user_id, &email, &email, Some(exclude))
        .map_err(|e| Error::internal(anyhow::anyhow!("starting a passkey registration: {e}")))?;
    let mut options = options(challenge)?;
    // A passkey that can sign in on its own must live on the authenticator (discoverable).
    if let Some(selection) = options.pointer_mut("/publicKey/authenticatorSelection") {
        selection["residentKey"] = "required".into();
        selection["requireResidentKey"] = true.into();
    }
    let ceremony_id = keep(
        db,
        REGISTER,
        Some(who.user_id),
        None,
        &Waiting {
            state,
            organization: None,
        },
    )
    .await?;
    Ok(CeremonyStart {
        ceremony_id,
        options,
    })
}

/// Finishes a registration with the browser's answer.
pub async fn register_finish(
    db: &Db,
    factors: &SecondFactors,
    who: &Enrollee,
    req: RegisterFinish,
) -> Result<PasskeyRegistered> {
    let mut v = Validator::default();
    text::check_line(&mut v, "name", &req.name, text::MAX_LINE);
    v.finish()?;
    let answer: RegisterPublicKeyCredential = credential(req.credential)?;
    let row = take(db, req.ceremony_id, &[REGISTER]).await?;
    if row.user_id != Some(who.user_id) {
        return Err(ceremony_gone());
    }
    let waiting: Waiting<PasskeyRegistration> = ceremonies::waiting(&row)?;
    let passkey = factors
        .webauthn()?
        .finish_passkey_registration(&answer, &waiting.state)
        .map_err(|e| Error::invalid("credential", format!("was not accepted: {e}")))?;
    let before = status(db.global(false).await?.conn(), who.user_id).await?;
    let now = Utc::now();
    let model = passkey::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(who.user_id),
        name: Set(req.name.trim().to_owned()),
        credential_id: Set(credential_key(&passkey)),
        credential: Set(serde_json::to_string(&passkey).map_err(anyhow::Error::from)?),
        created_at: Set(now),
        last_used_at: Set(None),
    };
    let tx = db.global(true).await?;
    let saved = match model.insert(tx.conn()).await {
        Ok(m) => m,
        Err(e) if is_unique_violation(&e) => {
            return Err(Error::conflict(
                "passkey_exists",
                "this passkey is already registered",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let recovery_codes = if before.recovery_codes == 0 && !before.any() {
        let codes = recovery_codes::fresh();
        recovery_codes::replace(tx.conn(), who.user_id, &codes).await?;
        Some(codes)
    } else {
        None
    };
    tx.commit().await?;
    super::totp::record(db, who.org_id, who.user_id, "mfa.passkey_added").await?;
    Ok(PasskeyRegistered {
        passkey: saved.into(),
        recovery_codes,
    })
}

/// Removes one of the caller's passkeys. Refused (409) when it is the last factor of someone an
/// organisation requires to have one.
pub async fn remove(db: &Db, ctx: &TenantCtx, id: Uuid) -> Result<()> {
    let before = status(db.global(false).await?.conn(), ctx.user_id).await?;
    let mine = passkeys_of(db, ctx.user_id).await?;
    if !mine.iter().any(|p| p.id == id) {
        return Err(Error::NotFound("passkey"));
    }
    let after = MfaStatus {
        passkeys: before.passkeys.saturating_sub(1),
        ..before.clone()
    };
    keep_required_factor(db, ctx.user_id, &after).await?;
    let tx = db.global(true).await?;
    passkey::Entity::delete_many()
        .filter(passkey::Column::Id.eq(id))
        .filter(passkey::Column::UserId.eq(ctx.user_id))
        .exec(tx.conn())
        .await?;
    if !after.any() {
        recovery_codes::replace(tx.conn(), ctx.user_id, &[]).await?;
    }
    tx.commit().await?;
    super::totp::record(db, ctx.org_id, ctx.user_id, "mfa.passkey_removed").await
}

/// Starts a passkey sign-in: the second step of a password sign-in (`mfa_token`), or a passkey
/// alone.
pub async fn login_start(
    db: &Db,
    keys: &TokenKeys,
    factors: &SecondFactors,
    req: LoginStart,
) -> Result<CeremonyStart> {
    let (kind, options, user, org, state) = match &req.mfa_token {
        Some(token) => {
            let claims = keys
                .verify_step(token)
                .filter(|c| c.purpose == StepPurpose::Verify)
                .ok_or_else(|| {
                    Error::invalid_token(
                        "this sign-in step has expired or is not valid; sign in again",
                    )
                })?;
            let passkeys = passkeys_of(db, claims.sub)
                .await?
                .iter()
                .map(stored)
                .collect::<Result<Vec<_>>>()?;
            if passkeys.is_empty() {
                return Err(Error::conflict(
                    "no_passkeys",
                    "this account has no passkey; use its authenticator app or a recovery code",
                ));
            }
            let (challenge, state) = factors
                .webauthn()?
                .start_passkey_authentication(&passkeys)
                .map_err(|e| Error::internal(anyhow::anyhow!("starting a passkey sign-in: {e}")))?;
            let state = serde_json::to_value(&state).map_err(anyhow::Error::from)?;
            (
                SECOND_STEP,
                options(challenge)?,
                Some(claims.sub),
                Some(claims.org),
                state,
            )
        }
        None => {
            let (mut challenge, state) = factors
                .webauthn()?
                .start_discoverable_authentication()
                .map_err(|e| Error::internal(anyhow::anyhow!("starting a passkey sign-in: {e}")))?;
            // A sign-in button, not the browser's autofill ("conditional") prompt.
            challenge.mediation = None;
            let state = serde_json::to_value(&state).map_err(anyhow::Error::from)?;
            (DISCOVERABLE, options(challenge)?, None, None, state)
        }
    };
    let ceremony_id = keep(
        db,
        kind,
        user,
        org,
        &Waiting {
            state,
            organization: req.organization,
        },
    )
    .await?;
    Ok(CeremonyStart {
        ceremony_id,
        options,
    })
}

fn refused() -> Error {
    Error::Unauthorized {
        code: "invalid_passkey",
        detail: "this passkey was not accepted".into(),
        invalid_token: false,
    }
}

/// Finishes a passkey sign-in: a session starts (or the second step is done).
pub async fn login_finish(
    db: &Db,
    keys: &TokenKeys,
    factors: &SecondFactors,
    req: LoginFinish,
) -> Result<AuthResponse> {
    let answer: PublicKeyCredential = credential(req.credential)?;
    let row = take(db, req.ceremony_id, &[SECOND_STEP, DISCOVERABLE]).await?;
    if row.kind == SECOND_STEP {
        let waiting: Waiting<PasskeyAuthentication> = ceremonies::waiting(&row)?;
        let (Some(user_id), Some(org_id)) = (row.user_id, row.organization_id) else {
            return Err(refused());
        };
        let result = factors
            .webauthn()?
            .finish_passkey_authentication(&answer, &waiting.state)
            .map_err(|_| refused())?;
        used(db, user_id, &result).await?;
        crate::identity::resume_sign_in(db, keys, user_id, org_id, SessionMethod::Mfa).await
    } else {
        let waiting: Waiting<DiscoverableAuthentication> = ceremonies::waiting(&row)?;
        let (user_id, _) = factors
            .webauthn()?
            .identify_discoverable_authentication(&answer)
            .map_err(|_| refused())?;
        let theirs = passkeys_of(db, user_id)
            .await?
            .iter()
            .map(|row| stored(row).map(|p| DiscoverableKey::from(&p)))
            .collect::<Result<Vec<_>>>()?;
        if theirs.is_empty() {
            return Err(refused());
        }
        let result = factors
            .webauthn()?
            .finish_discoverable_authentication(&answer, waiting.state, &theirs)
            .map_err(|_| refused())?;
        used(db, user_id, &result).await?;
        crate::identity::sign_in_without_password(
            db,
            keys,
            user_id,
            waiting.organization.as_deref(),
            SessionMethod::Passkey,
        )
        .await
    }
}

/// Notes a passkey's use, and its new signature counter.
async fn used(
    db: &Db,
    user_id: Uuid,
    result: &webauthn_rs::prelude::AuthenticationResult,
) -> Result<()> {
    let tx = db.global(true).await?;
    let rows = passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user_id))
        .all(tx.conn())
        .await?;
    for row in rows {
        let mut key = stored(&row)?;
        if key.update_credential(result).is_some() {
            passkey::Entity::update_many()
                .col_expr(passkey::Column::LastUsedAt, Expr::value(Utc::now()))
                .col_expr(
                    passkey::Column::Credential,
                    Expr::value(serde_json::to_string(&key).map_err(anyhow::Error::from)?),
                )
                .filter(passkey::Column::Id.eq(row.id))
                .exec(tx.conn())
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
