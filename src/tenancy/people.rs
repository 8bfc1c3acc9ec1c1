//! The people of an organisation: its memberships joined with their accounts.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, IntoActiveModel, ModelTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::text;

use super::{
    acting_role, active_owner_count,
    entity::membership,
    invitations::{self, Invitation, InvitationLimits, NewInvitation},
    parse_role,
};
use crate::access::TenantCtx;
use crate::{
    access::{self, Action, Role, RoleChange},
    audit,
    error::{Error, Result, Validator},
    identity::{self, UserSummary},
    pagination::{Page, PageRequest},
    store::{Db, TenantTx},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct Person {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub active: bool,
    pub joined_at: DateTime<Utc>,
    /// A customer known only by mail (no account): named as their mail names them, until they
    /// link it to an account of theirs.
    pub contact: bool,
}

fn person(m: membership::Model, user: UserSummary) -> Result<Person> {
    Ok(Person {
        id: m.user_id,
        contact: user.contact,
        email: user.email,
        name: user.name,
        role: parse_role(&m.role)?,
        active: m.active,
        joined_at: m.created_at,
    })
}

/// `POST /users`: invites the person (the same as `POST /invitations`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPerson {
    #[schema(format = "email")]
    pub email: String,
    #[schema(schema_with = crate::text::optional_line_schema)]
    pub name: Option<String>,
    pub role: Role,
    /// Not part of the contract (people choose their own password when they accept the
    /// invitation): read only to refuse it with a clear message.
    #[schema(ignore)]
    pub password: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonPatch {
    /// A person changes their own name; admins change roles and activation.
    #[schema(schema_with = crate::text::optional_line_schema)]
    pub name: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

async fn membership_of(tx: &TenantTx, user_id: Uuid) -> Result<membership::Model> {
    tx.find::<membership::Entity>()
        .filter(membership::Column::UserId.eq(user_id))
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("user"))
}

async fn load_person(tx: &TenantTx, m: membership::Model) -> Result<Person> {
    let user = identity::users_by_ids(tx.conn(), vec![m.user_id])
        .await?
        .pop()
        .ok_or(Error::NotFound("user"))?;
    person(m, user)
}

pub async fn list(db: &Db, ctx: &TenantCtx, page: PageRequest) -> Result<Page<Person>> {
    access::authorize(ctx, Action::UserList)?;
    let tx = db.read(ctx).await?;
    let mut query = tx
        .find::<membership::Entity>()
        .order_by_asc(membership::Column::UserId)
        .limit(page.limit + 1);
    if let Some(after) = page.after_id()? {
        query = query.filter(membership::Column::UserId.gt(after));
    }
    let rows = query.all(tx.conn()).await?;
    // One query for the page's accounts: no N+1.
    let users = identity::users_by_ids(tx.conn(), rows.iter().map(|m| m.user_id).collect()).await?;
    tx.commit().await?;
    let page = Page::from_rows(
        rows,
        page.limit,
        |m| m.user_id,
        |m| {
            let user = users.iter().find(|u| u.id == m.user_id).cloned();
            user.map(|u| person(m, u))
        },
    );
    Ok(Page {
        items: page
            .items
            .into_iter()
            .flatten()
            .collect::<Result<Vec<_>>>()?,
        next_cursor: page.next_cursor,
    })
}

pub async fn get(db: &Db, ctx: &TenantCtx, user_id: Uuid) -> Result<Person> {
    if user_id != ctx.user_id {
        access::authorize(ctx, Action::UserRead)?;
    }
    let tx = db.read(ctx).await?;
    let m = membership_of(&tx, user_id).await?;
    load_person(&tx, m).await
}

/// Invites a person. Admins never set someone's password, and the answer is the same whether
/// or not the address already has an account (elsewhere): see `invitations`.
pub async fn create(
    db: &Db,
    ctx: &TenantCtx,
    req: NewPerson,
    limits: InvitationLimits,
) -> Result<Invitation> {
    access::authorize(ctx, Action::UserCreate)?;
    if req.password.is_some() {
        return Err(Error::invalid(
            "password",
            "is chosen by the person when they accept the invitation; leave it out",
        ));
    }
    invitations::invite(
        db,
        ctx,
        NewInvitation {
            email: req.email,
            role: req.role,
            name: req.name,
        },
        limits,
    )
    .await
}

pub async fn update(db: &Db, ctx: &TenantCtx, user_id: Uuid, patch: PersonPatch) -> Result<Person> {
    let is_self = user_id == ctx.user_id;
    if !is_self {
        access::authorize(ctx, Action::UserUpdate)?;
    }
    let mut v = Validator::default();
    if let Some(name) = &patch.name {
        text::check_line(&mut v, "name", name, text::MAX_LINE);
    }
    v.finish()?;

    let tx = db.write(ctx).await?;
    tx.lock_tenant().await?;
    let actor = acting_role(&tx, ctx).await?;
    let m = membership_of(&tx, user_id).await?;
    let current = parse_role(&m.role)?;
    if patch.name.is_some() && !is_self {
        // Accounts can be shared by several organisations: only the person renames themself.
        return Err(Error::forbidden("people change their own name"));
    }
    let new_role = patch.role.filter(|r| *r != current);
    let deactivate = patch.active == Some(false) && m.active;
    let reactivate = patch.active == Some(true) && !m.active;
    if new_role.is_some() || deactivate || reactivate {
        access::check_role_change(RoleChange {
            actor,
            actor_is_target: is_self,
            current,
            new: if deactivate {
                None
            } else {
                Some(new_role.unwrap_or(current))
            },
        })?;
        if current == Role::Owner
            && (deactivate || new_role.is_some())
            && active_owner_count(&tx).await? <= 1
        {
            return Err(Error::conflict(
                "last_owner",
                "the organization must keep at least one active owner",
            ));
        }
    }

    let after = new_role.unwrap_or(current);
    let held_a_seat = m.active && current != Role::Requester;
    let holds_a_seat = (m.active || reactivate) && !deactivate && after != Role::Requester;
    if holds_a_seat && !held_a_seat {
        super::ensure_new_seat(&tx).await?;
    }
    if let Some(name) = &patch.name {
        identity::rename_user(tx.conn(), user_id, name).await?;
    }
    let mut model = m.clone().into_active_model();
    if let Some(role) = new_role {
        model.role = Set(role.as_str().to_owned());
        audit::record(
            &tx,
            Some(ctx.user_id),
            "membership.role_changed",
            "user",
            Some(user_id),
            serde_json::json!({"from": current, "to": role}),
        )
        .await?;
    }
    if let Some(active) = patch.active.filter(|a| *a != m.active) {
        model.active = Set(active);
        let action = if active {
            "membership.reactivated"
        } else {
            "membership.deactivated"
        };
        audit::record(
            &tx,
            Some(ctx.user_id),
            action,
            "user",
            Some(user_id),
            serde_json::json!({}),
        )
        .await?;
        if !active {
            identity::revoke_sessions_of(&tx, user_id, "deactivated").await?;
        }
    }
    if new_role.is_some() || deactivate || reactivate {
        tx.access_changed(user_id).await?;
    }
    model.updated_at = Set(Utc::now());
    let updated = model.update(tx.conn()).await?;
    let person = load_person(&tx, updated).await?;
    tx.commit().await?;
    Ok(person)
}

/// Removes a person from the organisation (their sessions here end with the membership). With
/// `erase`, an account that belongs to no other organisation is anonymised as well. `leave`
/// runs in the same transaction once the removal is allowed and before the membership goes:
/// the caller takes the person off their tickets there, through the tickets' own write path.
pub async fn remove<F>(db: &Db, ctx: &TenantCtx, user_id: Uuid, erase: bool, leave: F) -> Result<()>
where
    F: AsyncFnOnce(&TenantTx) -> Result<()>,
{
    access::authorize(ctx, Action::UserDelete)?;
    let tx = db.write(ctx).await?;
    tx.lock_tenant().await?;
    let actor = acting_role(&tx, ctx).await?;
    let m = membership_of(&tx, user_id).await?;
    let current = parse_role(&m.role)?;
    access::check_role_change(RoleChange {
        actor,
        actor_is_target: user_id == ctx.user_id,
        current,
        new: None,
    })?;
    if current == Role::Owner && m.active && active_owner_count(&tx).await? <= 1 {
        return Err(Error::conflict(
            "last_owner",
            "the organization must keep at least one active owner",
        ));
    }
    leave(&tx).await?;
    m.delete(tx.conn()).await?;
    tx.access_changed(user_id).await?;
    let erased = erase && !has_other_memberships(db, ctx, user_id).await?;
    if erased {
        identity::anonymise_user(tx.conn(), user_id).await?;
    }
    audit::record(
        &tx,
        Some(ctx.user_id),
        "membership.removed",
        "user",
        Some(user_id),
        serde_json::json!({"erased": erased}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Whether the account belongs to another organisation (its data is then not ours to erase).
async fn has_other_memberships(db: &Db, ctx: &TenantCtx, user_id: Uuid) -> Result<bool> {
    use sea_orm::{EntityTrait, PaginatorTrait};
    let tx = db.member(user_id).await?;
    let others = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user_id))
        .filter(membership::Column::OrgId.ne(ctx.org_id))
        .count(tx.conn())
        .await?;
    Ok(others > 0)
}
