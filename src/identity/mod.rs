//! People's accounts, credentials, sessions and tokens, and the sign-up / sign-in flows.

pub mod api_tokens;
pub mod ceremonies;
mod entity;
pub mod mfa;
pub mod password;
pub mod recovery;
pub mod signup;
pub mod sso;
pub mod throttle;
pub mod tokens;

use std::net::IpAddr;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    access::{self, Action, Role, TenantCtx},
    audit,
    error::{Error, Result, Validator},
    store::{Db, TenantTx, is_unique_violation},
    tenancy::{self, OrgMembership, Organization},
};
use entity::{refresh_token, session, user};
pub use password::Hasher;
use throttle::Key;
use tokens::{OrgToken, TokenKeys};

/// A person as other people see them.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UserSummary {
    pub id: Uuid,
    /// Where they get mail (a contact's address).
    pub email: String,
    pub name: String,
    /// A customer known only by mail, with no account: they cannot sign in until they link
    /// their mail to an account.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(default = false)]
    pub contact: bool,
}

impl From<user::Model> for UserSummary {
    fn from(m: user::Model) -> Self {
        Self {
            id: m.id,
            contact: m.contact_org_id.is_some(),
            email: m.contact_address.unwrap_or(m.email),
            name: m.name,
        }
    }
}

/// Validates an address and returns its canonical (lower-case) form: emails are
/// case-insensitive everywhere.
pub fn normalize_email(v: &mut Validator, field: &str, email: &str) -> String {
    let email = canonical_email(email);
    let ok = email.as_deref().is_some_and(|e| {
        e.len() <= 254
            && email_address::EmailAddress::parse_with_options(
                e,
                email_address::Options::default()
                    .without_display_text()
                    .without_domain_literal(),
            )
            .is_ok()
    });
    v.check(ok, field, "must be a valid email address");
    email.unwrap_or_default()
}

/// One spelling per address: Unicode compatibility forms folded (NFKC), the local part in lower
/// case, the domain in its ASCII (IDNA) form. `None` when the domain cannot be one.
pub(crate) fn canonical_email(email: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization as _;
    let folded: String = email.trim().nfkc().collect();
    let (local, domain) = folded.rsplit_once('@')?;
    let domain = idna::domain_to_ascii(domain).ok()?;
    Some(format!("{}@{domain}", local.to_lowercase()))
}

/// The account (never a contact) with this (canonical, lower-case) address.
pub(crate) async fn find_user_by_email(
    conn: &impl ConnectionTrait,
    email: &str,
) -> Result<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .filter(user::Column::ContactOrgId.is_null())
        .one(conn)
        .await?)
}

/// The accounts (never contacts) with these (canonical, lower-case) addresses.
pub(crate) async fn user_ids_by_emails(
    conn: &impl ConnectionTrait,
    emails: Vec<String>,
) -> Result<Vec<Uuid>> {
    Ok(user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::Email.is_in(emails))
        .filter(user::Column::ContactOrgId.is_null())
        .into_tuple()
        .all(conn)
        .await?)
}

/// Organisation `org_id`'s contact with this (canonical) address, if it has one.
pub(crate) async fn contact_id(
    conn: &impl ConnectionTrait,
    org_id: Uuid,
    address: &str,
) -> Result<Option<Uuid>> {
    Ok(user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::ContactOrgId.eq(org_id))
        .filter(user::Column::ContactAddress.eq(address))
        .into_tuple()
        .one(conn)
        .await?)
}

/// Every organisation's contact with this address: `(organisation, contact)`.
pub(crate) async fn contacts_with_address(
    conn: &impl ConnectionTrait,
    address: &str,
) -> Result<Vec<(Uuid, Uuid)>> {
    let rows: Vec<(Option<Uuid>, Uuid)> = user::Entity::find()
        .select_only()
        .column(user::Column::ContactOrgId)
        .column(user::Column::Id)
        .filter(user::Column::ContactOrgId.is_not_null())
        .filter(user::Column::ContactAddress.eq(address))
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(org, id)| org.map(|org| (org, id)))
        .collect())
}

/// Makes a contact of organisation `org_id`: someone who wrote in by mail, named as the mail
/// names them. It has no password and no sign-in address (its `email` is a placeholder).
pub(crate) async fn create_contact(
    conn: &impl ConnectionTrait,
    org_id: Uuid,
    address: &str,
    name: &str,
) -> Result<UserSummary> {
    let now = Utc::now();
    let id = Uuid::now_v7();
    let model = user::ActiveModel {
        id: Set(id),
        email: Set(format!("contact-{}@contacts.invalid", id.simple())),
        name: Set(name.trim().to_owned()),
        password_hash: Set(password::NOT_SET_HASH.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        contact_org_id: Set(Some(org_id)),
        contact_address: Set(Some(address.to_owned())),
    };
    match model.insert(conn).await {
        Ok(m) => Ok(m.into()),
        Err(e) if is_unique_violation(&e) => Err(Error::conflict(
            "contact_exists",
            "this organization already has a contact with this address",
        )),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn users_by_ids(
    conn: &impl ConnectionTrait,
    ids: Vec<Uuid>,
) -> Result<Vec<UserSummary>> {
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .all(conn)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Creates an account. `password_hash` comes from [`Hasher::hash`], done before the
/// transaction so the slow hashing holds no lock.
pub(crate) async fn create_user(
    conn: &impl ConnectionTrait,
    email: &str,
    name: &str,
    password_hash: String,
) -> Result<UserSummary> {
    let now = Utc::now();
    let model = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email.to_owned()),
        name: Set(name.trim().to_owned()),
        password_hash: Set(password_hash),
        created_at: Set(now),
        updated_at: Set(now),
        contact_org_id: Set(None),
        contact_address: Set(None),
    };
    match model.insert(conn).await {
        Ok(m) => Ok(m.into()),
        Err(e) if is_unique_violation(&e) => Err(Error::conflict(
            "email_taken",
            "an account with this email already exists",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Creates accounts in bulk, all with one password hash (the demo dataset: hashing each would
/// take minutes). Each is `(id, email, name)`.
pub(crate) async fn import_users(
    conn: &impl ConnectionTrait,
    users: &[(Uuid, String, String)],
    password_hash: &str,
) -> Result<()> {
    let now = Utc::now();
    user::Entity::insert_many(users.iter().map(|(id, email, name)| user::ActiveModel {
        id: Set(*id),
        email: Set(email.clone()),
        name: Set(name.clone()),
        password_hash: Set(password_hash.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        contact_org_id: Set(None),
        contact_address: Set(None),
    }))
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

pub(crate) async fn rename_user(conn: &impl ConnectionTrait, id: Uuid, name: &str) -> Result<()> {
    user::Entity::update_many()
        .col_expr(user::Column::Name, Expr::value(name.trim()))
        .col_expr(user::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(user::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// A person's name and addresses (sign-in and contact), to scrub when they are erased.
pub(crate) async fn traces_of(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<crate::text::Traces> {
    let account = user::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(Error::NotFound("user"))?;
    let mut addresses = vec![account.email.to_lowercase()];
    addresses.extend(account.contact_address.map(|a| a.to_lowercase()));
    addresses.dedup();
    Ok(crate::text::Traces {
        name: account.name,
        addresses,
        tombstone: crate::text::Tombstone::of(id),
    })
}

/// Replaces a person's personal data with placeholders; their id stays so history still reads.
/// Their second factors and single sign-on links go: nobody signs in as an erased person.
pub(crate) async fn anonymise_user(conn: &impl ConnectionTrait, id: Uuid) -> Result<()> {
    mfa::forget(conn, id).await?;
    entity::sso_identity::Entity::delete_many()
        .filter(entity::sso_identity::Column::UserId.eq(id))
        .exec(conn)
        .await?;
    user::Entity::update_many()
        .col_expr(
            user::Column::Email,
            Expr::value(format!("erased-{}@invalid", id.simple())),
        )
        .col_expr(
            user::Column::Name,
            Expr::value(crate::text::Tombstone::of(id).name),
        )
        .col_expr(
            user::Column::ContactAddress,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            user::Column::PasswordHash,
            Expr::value(password::UNUSABLE_HASH),
        )
        .col_expr(user::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(user::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// What sign-up, login, refresh and switch return.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthResponse {
    pub access_token: String,
    /// Absent when the client asked for it as a cookie (`X-Docket-Refresh: cookie`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: UserSummary,
    pub organization: Organization,
    pub role: Role,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    #[schema(schema_with = crate::text::line_schema)]
    pub organization_name: String,
    #[schema(schema_with = tenancy::optional_slug_schema)]
    pub organization_slug: Option<String>,
    #[schema(schema_with = crate::text::line_schema)]
    pub name: String,
    #[schema(format = "email")]
    pub email: String,
    #[schema(min_length = 10, max_length = 1024)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// Slug of the organisation to sign in to; needed when the person belongs to several.
    pub organization: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(min_length = 1)]
    pub refresh_token: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// Also end the session this refresh token belongs to.
    pub refresh_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchRequest {
    /// Slug or id of another organisation the caller belongs to.
    pub organization: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    pub user: UserSummary,
    pub organization: Organization,
    pub role: Role,
    pub session_id: Option<Uuid>,
    /// Every organisation the person can switch to (through an API token: its own only).
    pub organizations: Vec<OrgMembership>,
    /// The account's second factors.
    pub mfa: mfa::MfaStatus,
}

/// A session started by password alone in an organisation that now requires a second factor.
fn mfa_now_required() -> Error {
    Error::Unauthorized {
        code: "mfa_required",
        detail: "this organization requires a second factor; sign in again".into(),
        invalid_token: true,
    }
}

fn invalid_credentials() -> Error {
    Error::Unauthorized {
        code: "invalid_credentials",
        detail: "email, password or organization is wrong".into(),
        invalid_token: false,
    }
}

/// How a session was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionMethod {
    /// A password alone (or a link that stood in for one).
    Password,
    /// A password and a second factor.
    Mfa,
    /// A passkey alone (it is two factors in one: the device and its unlock).
    Passkey,
    /// The organisation's identity provider.
    Sso,
}

impl SessionMethod {
    fn as_str(self) -> &'static str {
        match self {
            SessionMethod::Password => "password",
            SessionMethod::Mfa => "mfa",
            SessionMethod::Passkey => "passkey",
            SessionMethod::Sso => "sso",
        }
    }

    fn parse(stored: &str) -> Self {
        match stored {
            "mfa" => SessionMethod::Mfa,
            "passkey" => SessionMethod::Passkey,
            "sso" => SessionMethod::Sso,
            _ => SessionMethod::Password,
        }
    }

    /// Whether a session started this way meets an organisation's `require_mfa`. A single
    /// sign-on leaves the second factor to the identity provider.
    fn meets_required_mfa(method: &str) -> bool {
        method != SessionMethod::Password.as_str()
    }
}

/// Starts a session in the tenant of `tx` and returns its id and first refresh token.
async fn start_session(
    tx: &TenantTx,
    keys: &TokenKeys,
    user_id: Uuid,
    method: SessionMethod,
) -> Result<(Uuid, OrgToken)> {
    let now = Utc::now();
    let session_id = Uuid::now_v7();
    session::ActiveModel {
        org_id: Set(tx.org_id()),
        id: Set(session_id),
        user_id: Set(user_id),
        created_at: Set(now),
        expires_at: Set(now + keys.refresh_ttl),
        revoked_at: Set(None),
        revoked_reason: Set(None),
        method: Set(method.as_str().to_owned()),
    }
    .insert(tx.conn())
    .await?;
    let token = add_refresh_token(tx, session_id).await?;
    Ok((session_id, token))
}

async fn add_refresh_token(tx: &TenantTx, session_id: Uuid) -> Result<OrgToken> {
    let token = OrgToken::generate(OrgToken::REFRESH, tx.org_id());
    refresh_token::ActiveModel {
        org_id: Set(tx.org_id()),
        token_hash: Set(token.hash()),
        session_id: Set(session_id),
        created_at: Set(Utc::now()),
        used_at: Set(None),
    }
    .insert(tx.conn())
    .await?;
    Ok(token)
}

fn respond(
    keys: &TokenKeys,
    user: UserSummary,
    organization: Organization,
    role: Role,
    session_id: Uuid,
    refresh: OrgToken,
) -> Result<AuthResponse> {
    Ok(AuthResponse {
        access_token: keys.issue(
            user.id,
            organization.id,
            session_id,
            role,
            organization.deleted_at.is_some(),
        )?,
        refresh_token: Some(refresh.token),
        token_type: "Bearer",
        expires_in: keys.access_ttl.as_secs(),
        user,
        organization,
        role,
    })
}

/// Signs `user` in to `organization` as `role`, in a new session (they just became its member by
/// a step of their own, such as claiming the tickets they sent by mail).
pub(crate) async fn sign_in_to(
    db: &Db,
    keys: &TokenKeys,
    user: UserSummary,
    organization: Organization,
    role: Role,
) -> Result<AuthResponse> {
    tenancy::lifecycle::admits_sign_in(&organization, role)?;
    let tx = db.write_org(organization.id).await?;
    let (session_id, refresh) = start_session(&tx, keys, user.id, SessionMethod::Password).await?;
    tx.commit().await?;
    respond(keys, user, organization, role, session_id, refresh)
}

/// Verifies the caller's credentials against the throttle; on failure counts it and answers
/// after the throttle's delay.
async fn check_password(
    db: &Db,
    hasher: &Hasher,
    email: &str,
    password: &str,
    ip: IpAddr,
) -> Result<user::Model> {
    // No stored password is this long: answer without hashing megabytes.
    if password.len() > password::MAX_LENGTH * 4 {
        return Err(invalid_credentials());
    }
    let keys = [Key::account(email), Key::address(ip)];
    throttle::reserve(db, &keys).await?;
    let found = find_user_by_email(db.global(false).await?.conn(), email).await?;
    let verified = hasher
        .verify(password, found.as_ref().map(|u| u.password_hash.clone()))
        .await;
    let ok = match verified {
        Ok(ok) => ok,
        Err(err) => {
            throttle::release(db, &keys).await?;
            return Err(err);
        }
    };
    match found {
        Some(user) if ok => {
            throttle::succeeded(db, &keys[0], &keys[1..]).await?;
            Ok(user)
        }
        _ => {
            let delay = throttle::failed(db, &keys).await?;
            tokio::time::sleep(delay).await;
            Err(invalid_credentials())
        }
    }
}

/// What a password sign-in gives: a session, or a second step to take first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginOutcome {
    SignedIn(Box<AuthResponse>),
    SecondStep(mfa::SecondStep),
}

pub async fn login(
    db: &Db,
    keys: &TokenKeys,
    hasher: &Hasher,
    req: LoginRequest,
    ip: IpAddr,
) -> Result<LoginOutcome> {
    let email = req.email.trim().to_lowercase();
    if email.is_empty() || email.len() > 254 {
        return Err(invalid_credentials());
    }
    let user = check_password(db, hasher, &email, &req.password, ip).await?;
    let chosen = choose_membership(db, user.id, req.organization.as_deref()).await?;
    sso::allows_other_sign_in(db, &chosen).await?;
    if let Some(step) = mfa::step_after_password(db, keys, user.id, &chosen).await? {
        return Ok(LoginOutcome::SecondStep(step));
    }
    let tx = db.write_org(chosen.organization.id).await?;
    let (session_id, refresh) = start_session(&tx, keys, user.id, SessionMethod::Password).await?;
    tx.commit().await?;
    Ok(LoginOutcome::SignedIn(Box::new(respond(
        keys,
        user.into(),
        chosen.organization,
        chosen.role,
        session_id,
        refresh,
    )?)))
}

/// The organisation a sign-in goes to: the one named by slug, or the person's only one.
async fn choose_membership(
    db: &Db,
    user_id: Uuid,
    organization: Option<&str>,
) -> Result<OrgMembership> {
    let memberships = tenancy::memberships_of(&db.member(user_id).await?).await?;
    match organization {
        Some(slug) => memberships
            .into_iter()
            .find(|m| m.organization.slug == slug)
            .ok_or_else(invalid_credentials),
        None if memberships.len() == 1 => {
            Ok(memberships.into_iter().next().expect("one membership"))
        }
        None if memberships.is_empty() => Err(Error::forbidden(
            "this account is not an active member of any organization",
        )),
        None => {
            let slugs: Vec<_> = memberships
                .iter()
                .map(|m| m.organization.slug.as_str())
                .collect();
            Err(Error::invalid(
                "organization",
                format!(
                    "you belong to several organizations; choose one of: {}",
                    slugs.join(", ")
                ),
            ))
        }
    }
}

/// Starts the session of a sign-in whose second step is done (the person's membership is read
/// again: it may have ended meanwhile).
pub(crate) async fn resume_sign_in(
    db: &Db,
    keys: &TokenKeys,
    user_id: Uuid,
    org_id: Uuid,
    method: SessionMethod,
) -> Result<AuthResponse> {
    let tx = db.write_org(org_id).await?;
    let role = tenancy::active_role(&tx, user_id).await?.ok_or_else(|| {
        Error::invalid_token("you are no longer a member of this organization; sign in again")
    })?;
    let organization = tenancy::organization(&tx).await?;
    tenancy::lifecycle::admits_sign_in(&organization, role)?;
    let user = users_by_ids(tx.conn(), vec![user_id])
        .await?
        .pop()
        .ok_or(Error::NotFound("user"))?;
    let (session_id, refresh) = start_session(&tx, keys, user_id, method).await?;
    tx.commit().await?;
    respond(keys, user, organization, role, session_id, refresh)
}

/// Signs a person in by a credential that stands on its own (a passkey): to the organisation
/// named by slug, or their only one. An organisation that signs its staff in through its
/// identity provider only (`enforce`) refuses it to its non-owners, as it refuses passwords.
pub(crate) async fn sign_in_without_password(
    db: &Db,
    keys: &TokenKeys,
    user_id: Uuid,
    organization: Option<&str>,
    method: SessionMethod,
) -> Result<AuthResponse> {
    let chosen = choose_membership(db, user_id, organization).await?;
    sso::allows_other_sign_in(db, &chosen).await?;
    resume_sign_in(db, keys, user_id, chosen.organization.id, method).await
}

/// The account that signs in with `email`, if any.
pub(crate) async fn account_id_by_email(db: &Db, email: &str) -> Result<Option<Uuid>> {
    let tx = db.global(false).await?;
    let found = find_user_by_email(tx.conn(), email).await?;
    tx.commit().await?;
    Ok(found.map(|u| u.id))
}

/// The sign-in address of an account.
pub(crate) async fn account_email(db: &Db, user_id: Uuid) -> Result<String> {
    user::Entity::find_by_id(user_id)
        .one(db.global(false).await?.conn())
        .await?
        .map(|u| u.email)
        .ok_or(Error::NotFound("user"))
}

/// Rotates a refresh token. Presenting one that was already rotated means it leaked: the whole
/// session is revoked.
pub async fn refresh(db: &Db, keys: &TokenKeys, req: RefreshRequest) -> Result<AuthResponse> {
    let bad = || Error::invalid_token("the refresh token is invalid, expired or revoked");
    let presented = OrgToken::parse(OrgToken::REFRESH, &req.refresh_token).ok_or_else(bad)?;
    let tx = db.write_org(presented.org_id).await?;
    let row = tx
        .find::<refresh_token::Entity>()
        .filter(refresh_token::Column::TokenHash.eq(presented.hash()))
        .one(tx.conn())
        .await?
        .ok_or_else(bad)?;
    let session = live_session(&tx, row.session_id).await?.ok_or_else(bad)?;

    // Only one of concurrent rotations of the same token wins; the others count as reuse.
    let now = Utc::now();
    let claimed = tx
        .update_many::<refresh_token::Entity>()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .filter(refresh_token::Column::TokenHash.eq(&row.token_hash))
        .filter(refresh_token::Column::UsedAt.is_null())
        .exec(tx.conn())
        .await?;
    if claimed.rows_affected != 1 {
        revoke(
            &tx,
            session::Column::Id,
            session.id,
            None,
            "refresh_token_reuse",
        )
        .await?;
        tx.access_changed(session.user_id).await?;
        audit::record(
            &tx,
            Some(session.user_id),
            "session.revoked_on_token_reuse",
            "session",
            Some(session.id),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        return Err(bad());
    }
    let role = tenancy::active_role(&tx, session.user_id)
        .await?
        .ok_or_else(bad)?;
    let org = tenancy::organization(&tx).await?;
    if org.require_mfa
        && role != Role::Requester
        && !SessionMethod::meets_required_mfa(&session.method)
    {
        tx.commit().await?;
        return Err(mfa_now_required());
    }
    let user = users_by_ids(tx.conn(), vec![session.user_id])
        .await?
        .pop()
        .ok_or_else(bad)?;
    let next = add_refresh_token(&tx, session.id).await?;
    tx.commit().await?;
    respond(keys, user, org, role, session.id, next)
}

async fn live_session(tx: &TenantTx, id: Uuid) -> Result<Option<session::Model>> {
    Ok(tx
        .find::<session::Entity>()
        .filter(session::Column::Id.eq(id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(Utc::now()))
        .one(tx.conn())
        .await?)
}

/// Revokes the live sessions whose `column` (a session id, or a user id) equals `id`, but the
/// session `keep`.
async fn revoke(
    tx: &TenantTx,
    column: session::Column,
    id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
) -> Result<()> {
    let mut sessions = tx
        .update_many::<session::Entity>()
        .col_expr(session::Column::RevokedAt, Expr::value(Utc::now()))
        .col_expr(session::Column::RevokedReason, Expr::value(reason))
        .filter(column.eq(id))
        .filter(session::Column::RevokedAt.is_null());
    if let Some(keep) = keep {
        sessions = sessions.filter(session::Column::Id.ne(keep));
    }
    sessions.exec(tx.conn()).await?;
    Ok(())
}

/// Ends every session a person has in the tenant (removal, deactivation).
pub(crate) async fn revoke_sessions_of(tx: &TenantTx, user_id: Uuid, reason: &str) -> Result<()> {
    revoke(tx, session::Column::UserId, user_id, None, reason).await
}

/// Ends the caller's session, and the one of `refresh_token` when it is the caller's too.
pub async fn logout(db: &Db, ctx: &TenantCtx, req: LogoutRequest) -> Result<()> {
    access::authorize(ctx, Action::AccountManage)?;
    let tx = db.write(ctx).await?;
    if let Some(sid) = ctx.session_id {
        revoke(&tx, session::Column::Id, sid, None, "logout").await?;
    }
    tx.access_changed(ctx.user_id).await?;
    if let Some(token) = req
        .refresh_token
        .as_deref()
        .and_then(|t| OrgToken::parse(OrgToken::REFRESH, t))
    {
        let row = tx
            .find::<refresh_token::Entity>()
            .filter(refresh_token::Column::TokenHash.eq(token.hash()))
            .one(tx.conn())
            .await?;
        if let Some(row) = row {
            let owner = tx
                .find::<session::Entity>()
                .filter(session::Column::Id.eq(row.session_id))
                .one(tx.conn())
                .await?;
            if owner.is_some_and(|s| s.user_id == ctx.user_id) {
                revoke(&tx, session::Column::Id, row.session_id, None, "logout").await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The caller a bearer token names. An API token is looked up at once; a signed access token
/// is only verified here (signature, expiry), and the transaction the request opens confirms
/// its session and role in its first statement (ADR 0021), so authentication costs no round
/// trip of its own.
pub async fn authenticate(db: &Db, keys: &TokenKeys, bearer: &str) -> Result<TenantCtx> {
    if let Some(ctx) = api_tokens::authenticate(db, bearer).await? {
        return Ok(ctx);
    }
    let claims = keys
        .verify(bearer)
        .ok_or_else(|| Error::invalid_token("the access token is invalid, expired or revoked"))?;
    Ok(TenantCtx::claimed(
        claims.org,
        claims.sub,
        claims.role,
        claims.sid,
        claims.closed,
    ))
}

/// Like [`authenticate`], confirmed against the database now (for a long-lived stream, which
/// checks again from time to time).
pub async fn authenticate_now(db: &Db, keys: &TokenKeys, bearer: &str) -> Result<TenantCtx> {
    let ctx = authenticate(db, keys, bearer).await?;
    confirm(db, &ctx).await?;
    Ok(ctx)
}

/// Confirms the caller's session and role now, for what acts on their behalf outside a
/// transaction of their organisation (switching organisation, signing out everywhere,
/// accepting an invitation, resuming a stream).
pub async fn confirm(db: &Db, ctx: &TenantCtx) -> Result<()> {
    if ctx.proof().is_some() {
        db.read(ctx).await?.commit().await?;
    }
    Ok(())
}

pub async fn me(db: &Db, ctx: &TenantCtx) -> Result<MeResponse> {
    let tx = db.read(ctx).await?;
    let organization = tenancy::organization(&tx).await?;
    let user = users_by_ids(tx.conn(), vec![ctx.user_id])
        .await?
        .pop()
        .ok_or(Error::NotFound("user"))?;
    tx.commit().await?;
    let mut organizations = tenancy::memberships_of(&db.member(ctx.user_id).await?).await?;
    // An API token belongs to one organisation: it learns nothing of its owner's others.
    if ctx.scope.is_some() {
        organizations.retain(|m| m.organization.id == ctx.org_id);
    }
    let mfa = mfa::status(db.global(false).await?.conn(), ctx.user_id).await?;
    Ok(MeResponse {
        user,
        organization,
        role: ctx.role,
        session_id: ctx.session_id,
        organizations,
        mfa,
    })
}

/// A new session in another organisation of the same person.
pub async fn switch(
    db: &Db,
    keys: &TokenKeys,
    ctx: &TenantCtx,
    req: SwitchRequest,
) -> Result<AuthResponse> {
    access::authorize(ctx, Action::AccountManage)?;
    confirm(db, ctx).await?;
    let memberships = tenancy::memberships_of(&db.member(ctx.user_id).await?).await?;
    let target = memberships
        .into_iter()
        .find(|m| {
            m.organization.slug == req.organization
                || m.organization.id.to_string() == req.organization
        })
        .ok_or(Error::NotFound("organization"))?;
    sso::allows_other_sign_in(db, &target).await?;
    // The new session was started the way this one was.
    let method = {
        let tx = db.read(ctx).await?;
        let current = match ctx.session_id {
            Some(id) => live_session(&tx, id).await?,
            None => None,
        };
        tx.commit().await?;
        current.map_or(SessionMethod::Password, |s| SessionMethod::parse(&s.method))
    };
    if target.organization.require_mfa
        && target.role != Role::Requester
        && !SessionMethod::meets_required_mfa(method.as_str())
    {
        return Err(Error::Forbidden {
            code: "mfa_required",
            detail: "this organization requires a second factor; sign in to it with yours".into(),
        });
    }
    let tx = db.write_org(target.organization.id).await?;
    let user = users_by_ids(tx.conn(), vec![ctx.user_id])
        .await?
        .pop()
        .ok_or(Error::NotFound("user"))?;
    let (session_id, refresh) = start_session(&tx, keys, ctx.user_id, method).await?;
    tx.commit().await?;
    respond(
        keys,
        user,
        target.organization,
        target.role,
        session_id,
        refresh,
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    #[schema(min_length = 10, max_length = 1024)]
    pub new_password: String,
}

/// Changes the caller's password. The current one is checked like a sign-in (throttled, and a
/// wrong one counts); every other session of the account, in every organisation, ends first, so
/// a failure half-way leaves the old password with fewer sessions, never the new one beside
/// sessions that should have ended.
pub async fn change_password(
    db: &Db,
    hasher: &Hasher,
    ctx: &TenantCtx,
    req: PasswordChange,
    ip: IpAddr,
) -> Result<()> {
    access::authorize(ctx, Action::AccountManage)?;
    let account = user::Entity::find_by_id(ctx.user_id)
        .one(db.global(false).await?.conn())
        .await?
        .ok_or(Error::NotFound("user"))?;
    let mut v = Validator::default();
    if let Err(Error::Validation(errs)) =
        password::validate(&req.new_password, &[&account.email, &account.name])
    {
        errs.into_iter()
            .for_each(|e| v.push("new_password", e.message));
    }
    v.finish()?;
    confirm_password_of(
        db,
        hasher,
        &account,
        ("current_password", "is not your current password"),
        &req.current_password,
        ip,
    )
    .await?;
    let hash = hasher.hash(&req.new_password).await?;
    revoke_everywhere(db, ctx.user_id, ctx.session_id, "password_changed").await?;
    let tx = db.global(true).await?;
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .col_expr(user::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(user::Column::Id.eq(ctx.user_id))
        .exec(tx.conn())
        .await?;
    tx.commit().await?;
    let tx = db.write(ctx).await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "password.changed",
        "user",
        Some(ctx.user_id),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Checks that `password` is the account's (throttled like a sign-in: a wrong one counts). A
/// wrong one is a 422 on the field (name, message), not a 401: the caller's session is fine.
async fn confirm_password_of(
    db: &Db,
    hasher: &Hasher,
    account: &user::Model,
    (field, wrong): (&str, &str),
    password: &str,
    ip: IpAddr,
) -> Result<()> {
    match check_password(db, hasher, &account.email, password, ip).await {
        Ok(_) => Ok(()),
        Err(Error::Unauthorized { .. }) => Err(Error::invalid(field, wrong)),
        Err(err) => Err(err),
    }
}

/// Checks that `password` is the caller's own (before an irreversible step).
pub(crate) async fn confirm_own_password(
    db: &Db,
    hasher: &Hasher,
    ctx: &TenantCtx,
    field: &str,
    password: &str,
    ip: IpAddr,
) -> Result<()> {
    let account = user::Entity::find_by_id(ctx.user_id)
        .one(db.global(false).await?.conn())
        .await?
        .ok_or(Error::NotFound("user"))?;
    confirm_password_of(
        db,
        hasher,
        &account,
        (field, "is not your password"),
        password,
        ip,
    )
    .await
}

/// Ends every session of the organisation of `tx` (it was deleted).
pub(crate) async fn end_all_sessions(tx: &TenantTx, reason: &str) -> Result<()> {
    tx.update_many::<session::Entity>()
        .col_expr(session::Column::RevokedAt, Expr::value(Utc::now()))
        .col_expr(session::Column::RevokedReason, Expr::value(reason))
        .filter(session::Column::RevokedAt.is_null())
        .exec(tx.conn())
        .await?;
    Ok(())
}

/// Deletes an account that belongs to no organisation any more, with its second factors,
/// single sign-on links and sign-in ceremonies (its organisation was purged). An account that
/// still belongs somewhere is kept; answers whether it went.
pub(crate) async fn delete_account_if_unattached(db: &Db, user_id: Uuid) -> Result<bool> {
    if tenancy::belongs_anywhere(&db.member(user_id).await?).await? {
        return Ok(false);
    }
    ceremonies::forget(db, None, Some(user_id)).await?;
    let tx = db.global(true).await?;
    mfa::forget(tx.conn(), user_id).await?;
    entity::sso_identity::Entity::delete_many()
        .filter(entity::sso_identity::Column::UserId.eq(user_id))
        .exec(tx.conn())
        .await?;
    user::Entity::delete_by_id(user_id).exec(tx.conn()).await?;
    tx.commit().await?;
    Ok(true)
}

/// Ends every session of the caller's account, this one included, in every organisation.
pub async fn logout_everywhere(db: &Db, ctx: &TenantCtx) -> Result<()> {
    access::authorize(ctx, Action::AccountManage)?;
    confirm(db, ctx).await?;
    revoke_everywhere(db, ctx.user_id, None, "logout_all").await
}

/// Revokes the account's live sessions in each organisation it belongs to, but `keep`.
async fn revoke_everywhere(db: &Db, user_id: Uuid, keep: Option<Uuid>, reason: &str) -> Result<()> {
    let memberships = tenancy::memberships_of(&db.member(user_id).await?).await?;
    for m in memberships {
        let tx = db.write_org(m.organization.id).await?;
        revoke(&tx, session::Column::UserId, user_id, keep, reason).await?;
        tx.access_changed(user_id).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// One of the person's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionSummary {
    pub id: Uuid,
    pub organization: Organization,
    /// How it was started: `password`, `mfa`, `passkey` or `sso`.
    pub method: String,
    pub created_at: chrono::DateTime<Utc>,
    pub expires_at: chrono::DateTime<Utc>,
    /// The session of this request.
    pub current: bool,
}

/// The caller's live sessions, in every organisation they belong to, newest first.
pub async fn sessions(db: &Db, ctx: &TenantCtx) -> Result<Vec<SessionSummary>> {
    access::authorize(ctx, Action::AccountManage)?;
    confirm(db, ctx).await?;
    let memberships = tenancy::memberships_of(&db.member(ctx.user_id).await?).await?;
    let mut out = Vec::new();
    for m in memberships {
        let tx = db.read_org(m.organization.id).await?;
        let live = tx
            .find::<session::Entity>()
            .filter(session::Column::UserId.eq(ctx.user_id))
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(Utc::now()))
            .all(tx.conn())
            .await?;
        tx.commit().await?;
        out.extend(live.into_iter().map(|s| SessionSummary {
            current: Some(s.id) == ctx.session_id,
            id: s.id,
            organization: m.organization.clone(),
            method: s.method,
            created_at: s.created_at,
            expires_at: s.expires_at,
        }));
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    Ok(out)
}

/// A session of a person's history in one organisation (their data export).
#[derive(Debug, Serialize)]
pub struct SessionRecord {
    pub id: Uuid,
    pub method: String,
    pub created_at: chrono::DateTime<Utc>,
    pub expires_at: chrono::DateTime<Utc>,
    pub revoked_at: Option<chrono::DateTime<Utc>>,
    pub revoked_reason: Option<String>,
}

/// Every session `user_id` had in organisation `org_id`, ended ones too, newest first.
pub(crate) async fn sessions_in(
    db: &Db,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<Vec<SessionRecord>> {
    let tx = db.read_org(org_id).await?;
    let rows = tx
        .find::<session::Entity>()
        .filter(session::Column::UserId.eq(user_id))
        .order_by_desc(session::Column::CreatedAt)
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|s| SessionRecord {
            id: s.id,
            method: s.method,
            created_at: s.created_at,
            expires_at: s.expires_at,
            revoked_at: s.revoked_at,
            revoked_reason: s.revoked_reason,
        })
        .collect())
}

/// Ends one of the caller's sessions (in any of their organisations); another person's, or an
/// unknown one, is 404.
pub async fn end_session(db: &Db, ctx: &TenantCtx, id: Uuid) -> Result<()> {
    access::authorize(ctx, Action::AccountManage)?;
    confirm(db, ctx).await?;
    let memberships = tenancy::memberships_of(&db.member(ctx.user_id).await?).await?;
    for m in memberships {
        let tx = db.write_org(m.organization.id).await?;
        let mine = tx
            .find::<session::Entity>()
            .filter(session::Column::Id.eq(id))
            .filter(session::Column::UserId.eq(ctx.user_id))
            .filter(session::Column::RevokedAt.is_null())
            .one(tx.conn())
            .await?;
        if mine.is_some() {
            revoke(&tx, session::Column::Id, id, None, "ended_by_owner").await?;
            tx.access_changed(ctx.user_id).await?;
            tx.commit().await?;
            return Ok(());
        }
        tx.commit().await?;
    }
    Err(Error::NotFound("session"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(email: &str) -> Option<String> {
        let mut v = Validator::default();
        let email = normalize_email(&mut v, "email", email);
        v.finish().ok().map(|()| email)
    }

    #[test]
    fn emails_have_one_spelling() {
        assert_eq!(
            normalized(" Ann@Example.COM ").as_deref(),
            Some("ann@example.com")
        );
        // Full-width letters fold to their plain forms; international domains to IDNA.
        assert_eq!(
            normalized("ａｎｎ@ＥＸＡＭＰＬＥ.com").as_deref(),
            Some("ann@example.com")
        );
        assert_eq!(
            normalized("bob@Bücher.de").as_deref(),
            Some("bob@xn--bcher-kva.de")
        );
        for bad in [
            "ann",
            "ann@",
            "@example.com",
            "a\u{0}b@example.com",
            "ann@exa mple.com",
        ] {
            assert_eq!(normalized(bad), None, "{bad:?}");
        }
    }
}
