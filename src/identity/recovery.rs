//! Joining by invitation, and getting back into an account by mail.
//!
//! - Accepting an invitation: a new address chooses its password (and name) and is signed in;
//!   an address that already has an account accepts while signed in as that account, so its
//!   password is never asked for by, or known to, anyone else.
//! - Forgotten passwords: `forgot` answers the same whatever the address, and mails a link
//!   (1 hour, single use, stored hashed) only to an account that exists; requests are throttled
//!   per address (silently) and per client address (429). `reset` sets the new password and
//!   ends every session of the account.

use std::net::IpAddr;

use chrono::{Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr,
};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    AuthResponse, Hasher, SessionMethod, UserSummary, canonical_email, create_user,
    entity::user,
    find_user_by_email, password, respond, revoke_everywhere, start_session,
    throttle::{self, Key},
    tokens::{OrgToken, TokenKeys, link_hash, link_token},
};
use crate::{
    access::{self, Action, TenantCtx},
    audit,
    error::{Error, Result, Validator},
    mail::{self, Outgoing, SYSTEM_ORG},
    store::{Db, GlobalTx, use_once},
    tenancy, text,
};

const RESET_LIFETIME: Duration = Duration::hours(1);

mod reset_entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "password_resets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub user_id: Uuid,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
        pub used_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    /// For a new account: the password it will have. Leave out when accepting signed in.
    #[schema(min_length = 10, max_length = 1024)]
    pub password: Option<String>,
    /// For a new account: the name it will have (defaults to the invitation's).
    #[schema(schema_with = crate::text::optional_line_schema)]
    pub name: Option<String>,
}

/// Joins the organisation of an invitation and signs in there. `signed_in` is the caller when
/// the request carried a valid access token.
pub async fn accept_invitation(
    db: &Db,
    keys: &TokenKeys,
    hasher: &Hasher,
    token: &str,
    req: AcceptInvitation,
    signed_in: Option<TenantCtx>,
) -> Result<AuthResponse> {
    if let Some(ctx) = &signed_in {
        access::authorize(ctx, Action::AccountManage)?;
        super::confirm(db, ctx).await?;
    }
    let token =
        OrgToken::parse(OrgToken::INVITATION, token).ok_or(Error::NotFound("invitation"))?;
    // Check the token before any (slow) hashing.
    let offer = {
        let tx = db.read_org(token.org_id).await?;
        let offer = tenancy::invitations::open(&tx, &token).await?;
        tx.commit().await?;
        offer
    };
    let existing = find_user_by_email(db.global(false).await?.conn(), &offer.email).await?;
    let account = match (signed_in, existing) {
        (Some(ctx), Some(user)) if user.id == ctx.user_id => Joiner::Existing(user.into()),
        (Some(_), _) => {
            return Err(Error::forbidden(
                "this invitation is for another address: sign out, or sign in as that address",
            ));
        }
        (None, Some(_)) => {
            return Err(Error::conflict(
                "sign_in_to_accept",
                "an account with this address exists: sign in to it, then accept the invitation",
            ));
        }
        (None, None) => {
            let mut v = Validator::default();
            let name = req.name.clone().unwrap_or_default();
            if req.name.is_some() {
                text::check_line(&mut v, "name", &name, text::MAX_LINE);
            }
            match &req.password {
                None => v.push("password", "choose a password for your new account"),
                Some(pw) => {
                    if let Err(Error::Validation(errs)) =
                        password::validate(pw, &[&offer.email, &name])
                    {
                        errs.into_iter().for_each(|e| v.push(&e.field, e.message));
                    }
                }
            }
            v.finish()?;
            let hash = hasher
                .hash(req.password.as_deref().unwrap_or_default())
                .await?;
            Joiner::New { hash, name }
        }
    };

    let tx = db.write_org(token.org_id).await?;
    let offer = tenancy::invitations::open(&tx, &token).await?;
    let user = match account {
        Joiner::Existing(user) => user,
        Joiner::New { hash, name } => {
            let name = if name.trim().is_empty() {
                offer.email.split('@').next().unwrap_or_default().to_owned()
            } else {
                name
            };
            create_user(tx.conn(), &offer.email, &name, hash).await?
        }
    };
    tenancy::invitations::accepted(&tx, &offer, user.id).await?;
    let org = tenancy::organization(&tx).await?;
    let (session_id, refresh) = start_session(&tx, keys, user.id, SessionMethod::Password).await?;
    tx.commit().await?;
    respond(keys, user, org, offer.role, session_id, refresh)
}

enum Joiner {
    Existing(UserSummary),
    New { hash: String, name: String },
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPassword {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    pub token: String,
    #[schema(min_length = 10, max_length = 1024)]
    pub password: String,
}

/// Mails a reset link when the address has an account. The HTTP answer is the same either way;
/// the caller learns the (canonical) address when it has no account, for what else it may
/// offer such an address (claiming the tickets it sent by mail).
pub async fn forgot(db: &Db, req: ForgotPassword, ip: IpAddr) -> Result<Option<String>> {
    throttle::reserve(db, &[Key::reset_requests_from(ip)]).await?;
    let Some(email) = canonical_email(&req.email).filter(|e| e.len() <= 254) else {
        return Ok(None);
    };
    // Over the per-address allowance: said to nobody, so it tells nothing about the address,
    // and nobody can fill someone's inbox with reset mails.
    if throttle::reserve(db, &[Key::reset_requests_for(&email)])
        .await
        .is_err()
    {
        return Ok(None);
    }
    let Some(user) = find_user_by_email(db.global(false).await?.conn(), &email).await? else {
        return Ok(Some(email));
    };
    if user.password_hash == password::UNUSABLE_HASH {
        return Ok(None);
    }
    let token = link_token("pr");
    let now = Utc::now();
    let tx = db.global(true).await?;
    reset_entity::ActiveModel {
        token_hash: Set(link_hash(&token)),
        user_id: Set(user.id),
        created_at: Set(now),
        expires_at: Set(now + RESET_LIFETIME),
        used_at: Set(None),
    }
    .insert(tx.conn())
    .await?;
    tx.commit().await?;
    let tx = db.write_org(SYSTEM_ORG).await?;
    mail::enqueue(
        &tx,
        Outgoing {
            kind: mail::Kind::PasswordReset,
            to: user.email,
            to_user_id: Some(user.id),
            params: serde_json::json!({
                "path": format!("/reset-password/{token}"),
                "name": user.name,
            }),
            automatic: false,
            thread: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(None)
}

/// Sets a new password with a reset token, and ends every session of the account.
pub async fn reset(db: &Db, hasher: &Hasher, req: ResetPassword) -> Result<()> {
    let bad = || Error::invalid("token", "this reset link is invalid, used or expired");
    if !req.token.starts_with("pr_") || req.token.len() > 100 {
        return Err(bad());
    }
    let hash = link_hash(&req.token);
    let pending = reset_entity::Entity::find_by_id(hash.clone())
        .filter(reset_entity::Column::UsedAt.is_null())
        .filter(reset_entity::Column::ExpiresAt.gt(Utc::now()))
        .one(db.global(false).await?.conn())
        .await?
        .ok_or_else(bad)?;
    let account = user::Entity::find_by_id(pending.user_id)
        .one(db.global(false).await?.conn())
        .await?
        .ok_or_else(bad)?;
    password::validate(&req.password, &[&account.email, &account.name])?;
    let new_hash = hasher.hash(&req.password).await?;

    let tx = db.global(true).await?;
    // Single use: of concurrent resets with one token, one wins.
    let spent = use_once::<reset_entity::Entity>(
        tx.conn(),
        reset_entity::Column::TokenHash,
        reset_entity::Column::UsedAt,
        &hash,
    );
    if !spent.await? {
        return Err(bad());
    }
    // Every other link of the account stops working too.
    invalidate_links(&tx, account.id).await?;
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(new_hash))
        .col_expr(user::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(user::Column::Id.eq(account.id))
        .exec(tx.conn())
        .await?;
    tx.commit().await?;
    revoke_everywhere(db, account.id, None, "password_reset").await?;
    for m in tenancy::memberships_of(&db.member(account.id).await?).await? {
        let tx = db.write_org(m.organization.id).await?;
        audit::record(
            &tx,
            Some(account.id),
            "password.reset",
            "user",
            Some(account.id),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

async fn invalidate_links(tx: &GlobalTx, user_id: Uuid) -> Result<()> {
    reset_entity::Entity::update_many()
        .col_expr(reset_entity::Column::UsedAt, Expr::value(Utc::now()))
        .filter(reset_entity::Column::UserId.eq(user_id))
        .filter(reset_entity::Column::UsedAt.is_null())
        .exec(tx.conn())
        .await?;
    Ok(())
}

/// Drops reset links a day after they expired.
pub async fn purge_expired(db: &Db) -> Result<u64> {
    Ok(db
        .purge::<reset_entity::Entity>(
            sea_orm::Condition::all()
                .add(reset_entity::Column::ExpiresAt.lt(Utc::now() - Duration::days(1))),
        )
        .await?)
}
