//! Organisations, memberships and roles, and the tenant context every tenant query runs under.

mod entity;
pub mod invitations;
pub mod lifecycle;
pub mod people;
pub mod retention;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QuerySelect, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::text;

use crate::{
    access::{self, Action, Role, TenantCtx},
    audit,
    error::{Error, Result, Validator},
    identity, plans,
    store::{Db, MemberTx, TenantTx, is_unique_violation},
};
use entity::{membership, organization};

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Staff sign in with a second factor (TOTP or a passkey); those without one enrol first.
    pub require_mfa: bool,
    /// When an owner deleted it: closed since, and purged at `purge_at` unless restored.
    pub deleted_at: Option<DateTime<Utc>>,
    pub purge_at: Option<DateTime<Utc>>,
}

impl From<organization::Model> for Organization {
    fn from(m: organization::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            slug: m.slug,
            created_at: m.created_at,
            updated_at: m.updated_at,
            require_mfa: m.require_mfa,
            deleted_at: m.deleted_at,
            purge_at: m.purge_at,
        }
    }
}

/// An organisation a person belongs to, with their role there.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OrgMembership {
    pub organization: Organization,
    pub role: Role,
}

pub const SLUG_PATTERN: &str = "^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$";

/// OpenAPI schema of an organisation slug (`null` allowed where it is optional).
pub fn optional_slug_schema() -> utoipa::openapi::schema::Object {
    crate::text::string_schema(SLUG_PATTERN, None, true)
}

/// Slugs: 2–63 characters of `[a-z0-9-]`, not starting or ending with `-`.
pub fn validate_slug(v: &mut Validator, field: &str, slug: &str) {
    let ok = (2..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    v.check(
        ok,
        field,
        "must be 2–63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
    );
}

/// A slug derived from a name, for sign-ups that give none.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_end_matches('-').chars().take(40).collect();
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.len() < 2 {
        format!("org-{}", &Uuid::now_v7().simple().to_string()[24..])
    } else {
        slug
    }
}

pub(crate) fn parse_role(stored: &str) -> Result<Role> {
    Role::parse(stored)
        .ok_or_else(|| Error::internal(anyhow::anyhow!("unknown stored role {stored:?}")))
}

/// Creates the organisation of `tx` (a transaction opened for its new id).
pub(crate) async fn create_organization(
    tx: &TenantTx,
    name: &str,
    slug: &str,
) -> Result<Organization> {
    let now = Utc::now();
    let model = organization::ActiveModel {
        id: Set(tx.org_id()),
        name: Set(name.trim().to_owned()),
        slug: Set(slug.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        require_mfa: Set(false),
        deleted_at: Set(None),
        purge_at: Set(None),
        purging: Set(false),
        retain_closed_days: Set(None),
        retain_mail_days: Set(None),
        retention_ran_at: Set(None),
    };
    match model.insert(tx.conn()).await {
        Ok(m) => Ok(m.into()),
        Err(e) if is_unique_violation(&e) => Err(Error::conflict(
            "slug_taken",
            "this organization slug is already taken",
        )),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn add_member(tx: &TenantTx, user_id: Uuid, role: Role) -> Result<()> {
    let now = Utc::now();
    let model = membership::ActiveModel {
        org_id: Set(tx.org_id()),
        user_id: Set(user_id),
        role: Set(role.as_str().to_owned()),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    };
    match model.insert(tx.conn()).await {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(Error::conflict(
            "user_exists",
            "this person is already a member of the organization",
        )),
        Err(e) => Err(e.into()),
    }
}

/// What a plan's seats count: active staff (every role but requester) and staff invitations
/// still pending.
pub(crate) async fn seats_used(tx: &TenantTx) -> Result<u64> {
    let staff = tx
        .find::<membership::Entity>()
        .filter(membership::Column::Active.eq(true))
        .filter(membership::Column::Role.ne(Role::Requester.as_str()))
        .count(tx.conn())
        .await?;
    Ok(staff + invitations::pending_staff(tx).await?)
}

/// Refuses (402 `plan_limit_reached`) a change that takes one more seat than the plan has.
/// Call it in the change's transaction, before the change.
pub(crate) async fn ensure_new_seat(tx: &TenantTx) -> Result<()> {
    plans::ensure_room_for_one(tx, plans::Limit::Seats, seats_used(tx)).await
}

/// Adds active members in bulk (the demo dataset).
pub(crate) async fn import_members(tx: &TenantTx, members: &[(Uuid, Role)]) -> Result<()> {
    let now = Utc::now();
    membership::Entity::insert_many(members.iter().map(|(user_id, role)| {
        membership::ActiveModel {
            org_id: Set(tx.org_id()),
            user_id: Set(*user_id),
            role: Set(role.as_str().to_owned()),
            active: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
        }
    }))
    .exec_without_returning(tx.conn())
    .await?;
    Ok(())
}

/// The active members among `user_ids`, with their roles (one query).
pub(crate) async fn active_roles(tx: &TenantTx, user_ids: &[Uuid]) -> Result<Vec<(Uuid, Role)>> {
    let rows = tx
        .find::<membership::Entity>()
        .filter(membership::Column::UserId.is_in(user_ids.iter().copied()))
        .filter(membership::Column::Active.eq(true))
        .all(tx.conn())
        .await?;
    rows.into_iter()
        .map(|m| Ok((m.user_id, parse_role(&m.role)?)))
        .collect()
}

/// The active admins and owners: who hears of what concerns the whole organisation.
pub(crate) async fn active_admins(tx: &TenantTx) -> Result<Vec<Uuid>> {
    active_with_roles(tx, &[Role::Admin, Role::Owner]).await
}

/// The active members with one of `roles`.
pub(crate) async fn active_with_roles(tx: &TenantTx, roles: &[Role]) -> Result<Vec<Uuid>> {
    let rows = tx
        .find::<membership::Entity>()
        .filter(membership::Column::Role.is_in(roles.iter().map(|r| r.as_str())))
        .filter(membership::Column::Active.eq(true))
        .all(tx.conn())
        .await?;
    Ok(rows.into_iter().map(|m| m.user_id).collect())
}

/// A person's membership of the tenant, ended or not: their role and whether it is active.
pub(crate) async fn membership_of(tx: &TenantTx, user_id: Uuid) -> Result<Option<(Role, bool)>> {
    let m = tx
        .find::<membership::Entity>()
        .filter(membership::Column::UserId.eq(user_id))
        .one(tx.conn())
        .await?;
    m.map(|m| Ok((parse_role(&m.role)?, m.active))).transpose()
}

/// Ends a membership without a person acting (a contact linked to an account): the row stays,
/// inactive, and the person's sessions and streams here end.
pub(crate) async fn end_membership(tx: &TenantTx, user_id: Uuid) -> Result<()> {
    tx.update_many::<membership::Entity>()
        .col_expr(membership::Column::Active, Expr::value(false))
        .col_expr(membership::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(membership::Column::UserId.eq(user_id))
        .exec(tx.conn())
        .await?;
    crate::identity::revoke_sessions_of(tx, user_id, "membership_ended").await?;
    tx.access_changed(user_id).await?;
    Ok(())
}

/// The member's current role, if they are an active member of the tenant.
pub(crate) async fn active_role(tx: &TenantTx, user_id: Uuid) -> Result<Option<Role>> {
    let m = tx
        .find::<membership::Entity>()
        .filter(membership::Column::UserId.eq(user_id))
        .filter(membership::Column::Active.eq(true))
        .one(tx.conn())
        .await?;
    m.map(|m| parse_role(&m.role)).transpose()
}

/// The acting person's role as it is now, read under a share lock on their membership: a change
/// of their role or membership and this transaction are then ordered, and whichever commits
/// first wins (a demoted admin's write that was already on its way does not run as admin).
/// A membership that ended means their access has gone (401).
pub(crate) async fn acting_role(tx: &TenantTx, ctx: &TenantCtx) -> Result<Role> {
    let m = tx
        .find::<membership::Entity>()
        .filter(membership::Column::UserId.eq(ctx.user_id))
        .lock_shared()
        .one(tx.conn())
        .await?;
    match m {
        Some(m) if m.active => parse_role(&m.role),
        _ => Err(Error::invalid_token(
            "your access to this organization has ended",
        )),
    }
}

/// Refuses a write whose actor's role changed (or whose membership ended) after the request was
/// authenticated: see [`acting_role`].
pub async fn ensure_still_acting(tx: &TenantTx, ctx: &TenantCtx) -> Result<()> {
    if acting_role(tx, ctx).await? != ctx.role {
        return Err(Error::forbidden(
            "your role changed while this request was on its way; send it again",
        ));
    }
    Ok(())
}

/// The id of the organisation with this slug (for operators' commands; maintenance scope).
pub async fn org_id_by_slug(db: &Db, slug: &str) -> Result<Option<Uuid>> {
    let tx = db.maintenance().await?;
    let found = organization::Entity::find()
        .filter(organization::Column::Slug.eq(slug))
        .one(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(found.map(|o| o.id))
}

/// Whether an organisation with this id or this slug exists (moving one in).
pub async fn organization_exists(db: &Db, id: Uuid, slug: &str) -> Result<bool> {
    let tx = db.maintenance().await?;
    let found = organization::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(organization::Column::Id.eq(id))
                .add(organization::Column::Slug.eq(slug)),
        )
        .one(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(found.is_some())
}

pub(crate) async fn organization(tx: &TenantTx) -> Result<Organization> {
    tx.find::<organization::Entity>()
        .one(tx.conn())
        .await?
        .map(Into::into)
        .ok_or(Error::NotFound("organization"))
}

/// Whether the person of `tx` has a membership anywhere (active or not).
pub(crate) async fn belongs_anywhere(tx: &MemberTx) -> Result<bool> {
    Ok(membership::Entity::find()
        .filter(membership::Column::UserId.eq(tx.user_id()))
        .one(tx.conn())
        .await?
        .is_some())
}

/// Everyone with a membership in the organisation of `tx` (active or not).
pub(crate) async fn member_ids(tx: &TenantTx) -> Result<Vec<Uuid>> {
    Ok(tx
        .find::<membership::Entity>()
        .all(tx.conn())
        .await?
        .into_iter()
        .map(|m| m.user_id)
        .collect())
}

/// The organisations where the person of `tx` is an active member and may sign in, oldest
/// membership first.
pub(crate) async fn memberships_of(tx: &MemberTx) -> Result<Vec<OrgMembership>> {
    let rows = membership::Entity::find()
        .filter(membership::Column::UserId.eq(tx.user_id()))
        .filter(membership::Column::Active.eq(true))
        .all(tx.conn())
        .await?;
    let org_ids: Vec<Uuid> = rows.iter().map(|m| m.org_id).collect();
    let orgs = organization::Entity::find()
        .filter(organization::Column::Id.is_in(org_ids))
        .all(tx.conn())
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for m in rows {
        if let Some(org) = orgs.iter().find(|o| o.id == m.org_id) {
            let membership = OrgMembership {
                organization: org.clone().into(),
                role: parse_role(&m.role)?,
            };
            // A deleted organisation is closed to all but its owners (who may restore it).
            if lifecycle::admits_sign_in(&membership.organization, membership.role).is_ok() {
                out.push(membership);
            }
        }
    }
    out.sort_by_key(|m| m.organization.created_at);
    Ok(out)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
    #[schema(schema_with = crate::text::optional_line_schema)]
    pub name: Option<String>,
    #[schema(schema_with = optional_slug_schema)]
    pub slug: Option<String>,
    /// Staff must sign in with a second factor. Turning it on needs one of your own.
    pub require_mfa: Option<bool>,
}

pub async fn get_org(db: &Db, ctx: &TenantCtx) -> Result<Organization> {
    access::authorize(ctx, Action::OrgRead)?;
    organization(&db.read(ctx).await?).await
}

pub async fn update_org(db: &Db, ctx: &TenantCtx, patch: OrgPatch) -> Result<Organization> {
    access::authorize(ctx, Action::OrgUpdate)?;
    let mut v = Validator::default();
    if let Some(name) = &patch.name {
        text::check_line(&mut v, "name", name, text::MAX_LINE);
    }
    if let Some(slug) = &patch.slug {
        validate_slug(&mut v, "slug", slug);
    }
    v.finish()?;
    let tx = db.write(ctx).await?;
    ensure_still_acting(&tx, ctx).await?;
    let current = tx
        .find::<organization::Entity>()
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("organization"))?;
    if patch.require_mfa == Some(true)
        && !current.require_mfa
        && !identity::mfa::has_factor(tx.conn(), ctx.user_id).await?
    {
        return Err(Error::conflict(
            "mfa_not_enrolled",
            "enrol a second factor of your own before you require one of everybody",
        ));
    }
    let before = serde_json::json!({"name": current.name, "slug": current.slug, "require_mfa": current.require_mfa});
    let mut model = current.into_active_model();
    if let Some(require) = patch.require_mfa {
        model.require_mfa = Set(require);
    }
    if let Some(name) = patch.name {
        model.name = Set(name.trim().to_owned());
    }
    if let Some(slug) = patch.slug {
        model.slug = Set(slug);
    }
    model.updated_at = Set(Utc::now());
    let updated = match model.update(tx.conn()).await {
        Ok(m) => m,
        Err(e) if is_unique_violation(&e) => {
            return Err(Error::conflict(
                "slug_taken",
                "this organization slug is already taken",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let after = serde_json::json!({"name": updated.name, "slug": updated.slug, "require_mfa": updated.require_mfa});
    audit::record(
        &tx,
        Some(ctx.user_id),
        "organization.updated",
        "organization",
        Some(updated.id),
        serde_json::json!({"before": before, "after": after}),
    )
    .await?;
    tx.commit().await?;
    Ok(updated.into())
}

/// Number of active owners: the last one may not leave or be demoted.
async fn active_owner_count(tx: &TenantTx) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    Ok(tx
        .find::<membership::Entity>()
        .filter(membership::Column::Role.eq(Role::Owner.as_str()))
        .filter(membership::Column::Active.eq(true))
        .select_only()
        .column(membership::Column::UserId)
        .count(tx.conn())
        .await?)
}
