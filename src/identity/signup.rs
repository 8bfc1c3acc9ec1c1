//! Sign-up: a new organisation and its owner. Where Docket can send mail, the address is proven
//! first: `POST /auth/signup` answers the same (202, "a link is on its way") whether or not the
//! address already has an account, and the mailed link (`POST /auth/signup/confirm`) creates
//! the organisation. An existing account that gave its right password gets a link that creates
//! the organisation for that account; a wrong password gets a mail saying someone tried, with
//! no link. Without mail (`DOCKET_SMTP_URL` unset) nothing could be confirmed: the sign-up is
//! done at once, and an existing account must give its password (401 otherwise).

use std::net::IpAddr;

use chrono::{Duration, Utc};
use futures_util::future::BoxFuture;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    AuthResponse, Hasher, SessionMethod, SignupRequest, UserSummary, check_password, create_user,
    find_user_by_email, normalize_email, password, respond, start_session,
    throttle::{self, Key},
    tokens::{TokenKeys, link_hash, link_token},
};
use crate::{
    access::{Role, TenantCtx},
    audit,
    error::{Error, Result, Validator},
    mail::{self, Outgoing, SYSTEM_ORG},
    store::{Db, TenantTx, use_once},
    tenancy, text,
};

/// A confirmation link works this long.
const CONFIRM_WITHIN: Duration = Duration::hours(24);

mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "signup_confirmations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub email: String,
        pub name: String,
        pub organization_name: String,
        pub organization_slug: String,
        /// A new account's password, hashed.
        #[sea_orm(column_type = "Text", nullable)]
        pub password_hash: Option<String>,
        /// The existing account that proved its password.
        pub user_id: Option<Uuid>,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
        pub used_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What a sign-up did.
pub enum SignupOutcome {
    /// Done at once (mail is off): signed in as the new owner.
    SignedUp(Box<AuthResponse>),
    /// A confirmation link was mailed (or, for an account that did not prove its password, a
    /// note that someone tried): the same answer in every case.
    Pending(SignupPending),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignupPending {
    /// `confirmation_sent`: follow the link in the mail to finish.
    #[schema(example = "confirmation_sent")]
    pub status: &'static str,
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmSignup {
    /// The token of the mailed link (`/signup/confirm/<token>`).
    #[schema(min_length = 1, max_length = 100)]
    pub token: String,
}

/// A sign-up's fields, checked.
struct Checked {
    email: String,
    slug: String,
}

fn check(req: &SignupRequest) -> Result<Checked> {
    let mut v = Validator::default();
    text::check_line(
        &mut v,
        "organization_name",
        &req.organization_name,
        text::MAX_LINE,
    );
    text::check_line(&mut v, "name", &req.name, text::MAX_LINE);
    let email = normalize_email(&mut v, "email", &req.email);
    if let Err(Error::Validation(errs)) = password::validate(&req.password, &[&email, &req.name]) {
        errs.into_iter().for_each(|e| v.push(&e.field, e.message));
    }
    let slug = match &req.organization_slug {
        Some(slug) => {
            tenancy::validate_slug(&mut v, "organization_slug", slug);
            slug.clone()
        }
        None => tenancy::slugify(&req.organization_name),
    };
    v.finish()?;
    Ok(Checked { email, slug })
}

/// Who becomes the owner.
enum Owner {
    Existing(UserSummary),
    New { hash: String },
}

/// What a new organisation is given besides its owner (its first project), in the transaction
/// that creates it: the owner acting, and the organisation's name. Passed in by the layer that
/// knows the modules owning those things.
pub type Setup = for<'a> fn(&'a TenantTx, &'a TenantCtx, &'a str) -> BoxFuture<'a, Result<()>>;

/// How sign-ups go on this server.
#[derive(Clone, Copy)]
pub struct SignupPolicy {
    /// Sign-ups one address may start per hour (0: no limit).
    pub per_hour: u32,
    /// Confirm by a mailed link before the organisation exists.
    pub confirm_by_mail: bool,
    pub setup: Setup,
}

/// Signs up an organisation (see the module's comment for the two ways).
pub async fn signup(
    db: &Db,
    keys: &TokenKeys,
    hasher: &Hasher,
    req: SignupRequest,
    ip: IpAddr,
    policy: SignupPolicy,
) -> Result<SignupOutcome> {
    let SignupPolicy {
        per_hour: signups_per_hour,
        confirm_by_mail,
        setup,
    } = policy;
    let Checked { email, slug } = check(&req)?;
    if signups_per_hour > 0 {
        throttle::reserve(db, &[Key::sign_ups(ip, signups_per_hour)]).await?;
    }
    if !confirm_by_mail {
        // Hash (slow) before the transaction, so no lock is held while it runs.
        let owner = match find_user_by_email(db.global(false).await?.conn(), &email).await? {
            Some(_) => Owner::Existing(
                check_password(db, hasher, &email, &req.password, ip)
                    .await?
                    .into(),
            ),
            None => Owner::New {
                hash: hasher.hash(&req.password).await?,
            },
        };
        let org = NewOrg {
            email: &email,
            name: &req.name,
            organization_name: &req.organization_name,
            slug: &slug,
        };
        return create(db, keys, org, owner, setup)
            .await
            .map(|res| SignupOutcome::SignedUp(Box::new(res)));
    }
    // A taken slug says nothing about the address.
    if tenancy::org_id_by_slug(db, &slug).await?.is_some() {
        return Err(slug_taken());
    }
    // Either way one password hash is computed, so the answer takes as long.
    let proven = match find_user_by_email(db.global(false).await?.conn(), &email).await? {
        Some(_) => match check_password(db, hasher, &email, &req.password, ip).await {
            Ok(user) => Some((None, Some(user.id))),
            Err(Error::Unauthorized { .. }) => None,
            Err(err) => return Err(err),
        },
        None => Some((Some(hasher.hash(&req.password).await?), None)),
    };
    let pending = SignupOutcome::Pending(SignupPending {
        status: "confirmation_sent",
        email: email.clone(),
    });
    // Past the address's allowance nothing more is mailed, said to nobody: a stranger cannot
    // fill someone's inbox with sign-up mails.
    if throttle::reserve(db, &[Key::signup_mails_for(&email)])
        .await
        .is_err()
    {
        return Ok(pending);
    }
    let mut params = serde_json::json!({
        "name": req.name.trim(),
        "organization": req.organization_name.trim(),
        "existing": proven.as_ref().is_some_and(|(_, user)| user.is_some()),
    });
    if let Some((password_hash, user_id)) = proven {
        let token = link_token("su");
        let now = Utc::now();
        let tx = db.global(true).await?;
        entity::ActiveModel {
            token_hash: Set(link_hash(&token)),
            email: Set(email.clone()),
            name: Set(req.name.trim().to_owned()),
            organization_name: Set(req.organization_name.trim().to_owned()),
            organization_slug: Set(slug),
            password_hash: Set(password_hash),
            user_id: Set(user_id),
            created_at: Set(now),
            expires_at: Set(now + CONFIRM_WITHIN),
            used_at: Set(None),
        }
        .insert(tx.conn())
        .await?;
        tx.commit().await?;
        params["path"] = serde_json::json!(format!("/signup/confirm/{token}"));
    }
    let tx = db.write_org(SYSTEM_ORG).await?;
    mail::enqueue(
        &tx,
        Outgoing {
            kind: mail::Kind::SignupConfirmation,
            to: email,
            to_user_id: None,
            params,
            automatic: false,
            thread: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(pending)
}

/// Follows a mailed sign-up link: creates the organisation (and the account, when it is new)
/// and signs in as its owner. A link works once, for a day.
pub async fn confirm(
    db: &Db,
    keys: &TokenKeys,
    req: ConfirmSignup,
    setup: Setup,
) -> Result<AuthResponse> {
    let bad = || Error::invalid("token", "this sign-up link is invalid, used or expired");
    if !req.token.starts_with("su_") || req.token.len() > 100 {
        return Err(bad());
    }
    let hash = link_hash(&req.token);
    let tx = db.global(true).await?;
    let asked = entity::Entity::find_by_id(hash.clone())
        .filter(entity::Column::UsedAt.is_null())
        .filter(entity::Column::ExpiresAt.gt(Utc::now()))
        .one(tx.conn())
        .await?
        .ok_or_else(bad)?;
    // Single use: of concurrent confirmations with one link, one wins.
    let spent = use_once::<entity::Entity>(
        tx.conn(),
        entity::Column::TokenHash,
        entity::Column::UsedAt,
        &hash,
    );
    if !spent.await? {
        return Err(bad());
    }
    tx.commit().await?;
    let owner = match (asked.user_id, asked.password_hash) {
        (Some(user_id), _) => Owner::Existing(
            super::users_by_ids(db.global(false).await?.conn(), vec![user_id])
                .await?
                .pop()
                .ok_or_else(bad)?,
        ),
        (None, Some(hash)) => Owner::New { hash },
        (None, None) => return Err(bad()),
    };
    let org = NewOrg {
        email: &asked.email,
        name: &asked.name,
        organization_name: &asked.organization_name,
        slug: &asked.organization_slug,
    };
    create(db, keys, org, owner, setup).await
}

/// A new organisation and its owner's account details.
struct NewOrg<'a> {
    email: &'a str,
    name: &'a str,
    organization_name: &'a str,
    slug: &'a str,
}

/// Creates the organisation with its owner (a new account, or an existing one), what `setup`
/// gives it, and a session.
async fn create(
    db: &Db,
    keys: &TokenKeys,
    new: NewOrg<'_>,
    owner: Owner,
    setup: Setup,
) -> Result<AuthResponse> {
    let tx = db.write_org(Uuid::now_v7()).await?;
    let user = match owner {
        Owner::Existing(user) => user,
        Owner::New { hash } => create_user(tx.conn(), new.email, new.name, hash).await?,
    };
    let org = tenancy::create_organization(&tx, new.organization_name, new.slug).await?;
    tenancy::add_member(&tx, user.id, Role::Owner).await?;
    let owner_ctx = TenantCtx::authenticated(org.id, user.id, Role::Owner, None);
    setup(&tx, &owner_ctx, new.organization_name.trim()).await?;
    let (session_id, refresh) = start_session(&tx, keys, user.id, SessionMethod::Password).await?;
    audit::record(
        &tx,
        Some(user.id),
        "organization.created",
        "organization",
        Some(org.id),
        serde_json::json!({"slug": org.slug}),
    )
    .await?;
    tx.commit().await?;
    respond(keys, user, org, Role::Owner, session_id, refresh)
}

fn slug_taken() -> Error {
    Error::conflict("slug_taken", "this organization slug is already taken")
}

/// Drops sign-up links a day after they expired.
pub async fn purge_expired(db: &Db) -> Result<u64> {
    Ok(db
        .purge::<entity::Entity>(
            sea_orm::Condition::all()
                .add(entity::Column::ExpiresAt.lt(Utc::now() - Duration::days(1))),
        )
        .await?)
}
