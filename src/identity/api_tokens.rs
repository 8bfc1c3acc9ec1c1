//! API tokens: long-lived credentials for other systems. A token acts as its owner in one
//! organisation, with the owner's current role and at most its scope. It is shown once
//! (`dkt_<org>_<secret>`: it names its organisation, so its lookup runs inside that tenant's
//! wall), stored as SHA-256, may expire, and is revoked by deleting it. Creating and revoking
//! are audited.

use chrono::{DateTime, Datelike, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{entity::api_token, tokens::OrgToken};
use crate::{
    access::{self, Action, Scope, TenantCtx},
    audit,
    error::{Error, Result, Validator},
    store::{Db, TenantTx},
    tenancy, text,
};

/// Tokens one person may hold in one organisation.
const MAX_PER_PERSON: u64 = 50;
/// `last_used_at` moves at most this often (a busy integration does not write on every call).
const LAST_USED_EVERY: Duration = Duration::minutes(1);

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ApiToken {
    pub id: Uuid,
    /// Whose rights it carries.
    pub user_id: Uuid,
    pub name: String,
    /// What it may do at most: `read`, `write` (and read), `admin` (and both).
    pub scopes: Vec<Scope>,
    /// The start of the token, to recognise it by (`dkt_…` and 8 characters of the secret).
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A new token: the only answer that carries the token itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewApiTokenResponse {
    #[serde(flatten)]
    pub api_token: ApiToken,
    /// `dkt_…`: send it as `Authorization: Bearer <token>`. It is not shown again.
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiToken {
    /// What the token is for, e.g. "CI pipeline".
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Default `["read", "write"]`.
    pub scopes: Option<Vec<Scope>>,
    /// When it stops working (in the future); none: until revoked.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The scopes a token has, as it lists them: its level and those below it.
fn scopes_up_to(level: Scope) -> Vec<Scope> {
    [Scope::Read, Scope::Write, Scope::Admin]
        .into_iter()
        .filter(|s| *s <= level)
        .collect()
}

impl TryFrom<api_token::Model> for ApiToken {
    type Error = Error;

    fn try_from(m: api_token::Model) -> Result<Self> {
        let level = Scope::parse(&m.scope).ok_or_else(|| {
            Error::internal(anyhow::anyhow!("unknown stored token scope {:?}", m.scope))
        })?;
        Ok(Self {
            id: m.id,
            user_id: m.user_id,
            name: m.name,
            scopes: scopes_up_to(level),
            prefix: m.prefix,
            created_at: m.created_at,
            expires_at: m.expires_at,
            last_used_at: m.last_used_at,
        })
    }
}

/// Creates a token for the caller. Only a person signed in creates tokens: a token cannot mint
/// another (it would outlive its own revocation).
pub async fn create(db: &Db, ctx: &TenantCtx, req: NewApiToken) -> Result<NewApiTokenResponse> {
    access::authorize(ctx, Action::AccountManage)?;
    let mut v = Validator::default();
    text::check_line(&mut v, "name", &req.name, text::MAX_LINE);
    let scopes = req
        .scopes
        .unwrap_or_else(|| vec![Scope::Read, Scope::Write]);
    v.check(!scopes.is_empty(), "scopes", "name at least one scope");
    let now = Utc::now();
    if let Some(at) = req.expires_at {
        v.check(at > now, "expires_at", "must be in the future");
        v.check(
            at.year() <= 9999,
            "expires_at",
            "must be before the year 10000",
        );
    }
    v.finish()?;
    let level = scopes.into_iter().max().unwrap_or(Scope::Read);
    let tx = db.write(ctx).await?;
    let held = tx
        .find::<api_token::Entity>()
        .filter(api_token::Column::UserId.eq(ctx.user_id))
        .count(tx.conn())
        .await?;
    if held >= MAX_PER_PERSON {
        return Err(Error::conflict(
            "too_many_tokens",
            format!("a person may hold at most {MAX_PER_PERSON} API tokens here; revoke one"),
        ));
    }
    let token = OrgToken::generate(OrgToken::API, ctx.org_id);
    let row = api_token::ActiveModel {
        org_id: Set(ctx.org_id),
        id: Set(Uuid::now_v7()),
        user_id: Set(ctx.user_id),
        name: Set(req.name.trim().to_owned()),
        prefix: Set(token.prefix()),
        token_hash: Set(token.hash()),
        scope: Set(level.as_str().to_owned()),
        created_at: Set(now),
        expires_at: Set(req.expires_at),
        last_used_at: Set(None),
    }
    .insert(tx.conn())
    .await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "api_token.created",
        "api_token",
        Some(row.id),
        serde_json::json!({"name": row.name, "scope": row.scope, "expires_at": row.expires_at}),
    )
    .await?;
    tx.commit().await?;
    Ok(NewApiTokenResponse {
        api_token: row.try_into()?,
        token: token.token,
    })
}

/// The caller's tokens; admins (and tokens with the admin scope of an admin) see everyone's in
/// the organisation. Newest first.
pub async fn list(db: &Db, ctx: &TenantCtx) -> Result<Vec<ApiToken>> {
    access::authorize(ctx, Action::AccountManage)?;
    let tx = db.read(ctx).await?;
    let mut query = tx
        .find::<api_token::Entity>()
        .order_by_desc(api_token::Column::Id);
    if access::authorize(ctx, Action::UserUpdate).is_err() {
        query = query.filter(api_token::Column::UserId.eq(ctx.user_id));
    }
    let rows = query.all(tx.conn()).await?;
    tx.commit().await?;
    rows.into_iter().map(ApiToken::try_from).collect()
}

/// Revokes a token: its owner, or an admin. Another's token, for anyone else, is not found.
pub async fn revoke(db: &Db, ctx: &TenantCtx, id: Uuid) -> Result<()> {
    access::authorize(ctx, Action::AccountManage)?;
    let tx = db.write(ctx).await?;
    let row = tx
        .find::<api_token::Entity>()
        .filter(api_token::Column::Id.eq(id))
        .one(tx.conn())
        .await?
        .filter(|m| m.user_id == ctx.user_id || access::authorize(ctx, Action::UserUpdate).is_ok())
        .ok_or(Error::NotFound("api_token"))?;
    tx.delete_many::<api_token::Entity>()
        .filter(api_token::Column::Id.eq(row.id))
        .exec(tx.conn())
        .await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "api_token.revoked",
        "api_token",
        Some(row.id),
        serde_json::json!({"name": row.name, "owner": row.user_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The caller behind an API token, or `None` when `bearer` is no API token at all. A token
/// that is unknown, revoked or expired, or whose owner is no longer an active member, is 401.
pub(super) async fn authenticate(db: &Db, bearer: &str) -> Result<Option<TenantCtx>> {
    if !bearer.starts_with(OrgToken::API) {
        return Ok(None);
    }
    let bad = || Error::invalid_token("the API token is invalid, expired or revoked");
    let token = OrgToken::parse(OrgToken::API, bearer).ok_or_else(bad)?;
    let tx = db.read_org(token.org_id).await?;
    let now = Utc::now();
    let row = tx
        .find::<api_token::Entity>()
        .filter(api_token::Column::TokenHash.eq(token.hash()))
        .one(tx.conn())
        .await?
        .filter(|m| m.expires_at.is_none_or(|at| at > now))
        .ok_or_else(bad)?;
    let role = tenancy::lifecycle::active_role_while_open(&tx, row.user_id)
        .await?
        .ok_or_else(bad)?;
    tx.commit().await?;
    let scope = Scope::parse(&row.scope).unwrap_or(Scope::Read);
    if row
        .last_used_at
        .is_none_or(|at| now - at >= LAST_USED_EVERY)
    {
        mark_used(db, token.org_id, row.id, now).await?;
    }
    Ok(Some(TenantCtx::through_token(
        token.org_id,
        row.user_id,
        role,
        scope,
    )))
}

async fn mark_used(db: &Db, org_id: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<()> {
    let tx: TenantTx = db.write_org(org_id).await?;
    tx.update_many::<api_token::Entity>()
        .col_expr(api_token::Column::LastUsedAt, now.into())
        .filter(api_token::Column::Id.eq(id))
        .exec(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(())
}
