//! A project's members and their project roles (`admin`, `member`, `viewer`), and the one
//! place that asks `access::project` what a person may do in a project.

use std::collections::{BTreeSet, HashMap, HashSet};

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::record;
use crate::{
    access::{
        self, Action, Role, TenantCtx,
        project::{ProjectRole, Visibility, walled_role},
    },
    audit,
    error::{Error, Result, Validator},
    events::Body,
    store::{self, Db, TenantTx},
    tenancy,
    work::{
        entity::{project, project_member},
        now,
    },
};

/// At most this many members in one project.
pub const MAX_MEMBERS: usize = 500;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub user_id: Uuid,
    pub role: ProjectRole,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub items: Vec<Member>,
}

/// `PUT /projects/{id}/members`: the whole list, replacing the one before.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Members {
    #[schema(max_items = 500)]
    pub members: Vec<Member>,
}

/// `user_id`'s role in the project, if they are a member.
pub(crate) async fn role_in(
    tx: &TenantTx,
    project_id: Uuid,
    user_id: Uuid,
) -> Result<Option<ProjectRole>> {
    let row = tx
        .find::<project_member::Entity>()
        .filter(project_member::Column::ProjectId.eq(project_id))
        .filter(project_member::Column::UserId.eq(user_id))
        .one(tx.conn())
        .await?;
    row.map(|m| parse_role(&m.role)).transpose()
}

fn parse_role(stored: &str) -> Result<ProjectRole> {
    ProjectRole::parse(stored)
        .ok_or_else(|| Error::internal(anyhow::anyhow!("stored project role {stored}")))
}

/// The members of each of these projects that is private (projects open to the organisation
/// are left out: everyone there sees them).
pub(crate) async fn private_members(
    tx: &TenantTx,
    project_ids: &[Uuid],
) -> Result<HashMap<Uuid, HashSet<Uuid>>> {
    if project_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let private: Vec<Uuid> = tx
        .find::<project::Entity>()
        .select_only()
        .column(project::Column::Id)
        .filter(project::Column::Id.is_in(project_ids.iter().copied()))
        .filter(project::Column::Visibility.eq(Visibility::Members.as_str()))
        .into_tuple()
        .all(tx.conn())
        .await?;
    let mut members: HashMap<Uuid, HashSet<Uuid>> =
        private.iter().map(|p| (*p, HashSet::new())).collect();
    if !private.is_empty() {
        let rows = tx
            .find::<project_member::Entity>()
            .filter(project_member::Column::ProjectId.is_in(private))
            .all(tx.conn())
            .await?;
        for m in rows {
            members.entry(m.project_id).or_default().insert(m.user_id);
        }
    }
    Ok(members)
}

/// May `ctx` do `action` in the project? The token's scope first, then the project's rule
/// (`access::project::decide`): a project hidden from the caller is 404, a forbidden action
/// 403. Returns the project.
pub(crate) async fn authorize_in(
    tx: &TenantTx,
    ctx: &TenantCtx,
    project_id: Uuid,
    action: Action,
) -> Result<project::Model> {
    access::authorize_scope(ctx, action)?;
    // The project and the caller's role in it, in one statement (whether it is hidden from
    // them is `decide`'s to say, from both).
    let backend = tx.conn().get_database_backend();
    let sql = "SELECT p.*, (SELECT m.role FROM project_members m WHERE m.org_id = p.org_id \
           AND m.project_id = p.id AND m.user_id = $3) AS member_role \
         FROM projects p WHERE p.org_id = $1 AND p.id = $2";
    let row = tx
        .conn()
        .query_one_raw(store::statement(
            backend,
            sql,
            [tx.org_id().into(), project_id.into(), ctx.user_id.into()],
        ))
        .await?
        .ok_or(Error::NotFound("project"))?;
    let project = project::Model::from_query_result(&row, "")?;
    let visibility = Visibility::parse(&project.visibility)
        .ok_or_else(|| Error::internal(anyhow::anyhow!("stored visibility")))?;
    let role: Option<String> = row.try_get("", "member_role")?;
    let role = match role {
        Some(role) if walled_role(ctx.role) => Some(parse_role(&role)?),
        _ => None,
    };
    access::project::check(ctx.role, visibility, role, action, "project")?;
    Ok(project)
}

/// The project's say on `action` on one of its tickets the caller already found: only walled
/// staff have rules beyond the matrix there (a project viewer only reads); the wall hid the
/// tickets of projects hidden from them, and nobody else's role depends on the project.
pub(crate) async fn authorize_on_ticket(
    tx: &TenantTx,
    ctx: &TenantCtx,
    project_id: Uuid,
    action: Action,
) -> Result<()> {
    if walled_role(ctx.role) {
        authorize_in(tx, ctx, project_id, action).await?;
    }
    Ok(())
}

/// A walled person who makes a project private stays able to see it: they become its admin
/// unless they are a member already.
pub(super) async fn keep_sight(tx: &TenantTx, ctx: &TenantCtx, project_id: Uuid) -> Result<()> {
    if !walled_role(ctx.role) || role_in(tx, project_id, ctx.user_id).await?.is_some() {
        return Ok(());
    }
    project_member::Entity::insert(project_member::ActiveModel {
        org_id: Set(tx.org_id()),
        project_id: Set(project_id),
        user_id: Set(ctx.user_id),
        role: Set(ProjectRole::Admin.as_str().to_owned()),
        created_at: Set(now()),
    })
    .exec_without_returning(tx.conn())
    .await?;
    Ok(())
}

async fn members_of(tx: &TenantTx, project_id: Uuid) -> Result<Vec<Member>> {
    tx.find::<project_member::Entity>()
        .filter(project_member::Column::ProjectId.eq(project_id))
        .order_by_asc(project_member::Column::UserId)
        .all(tx.conn())
        .await?
        .into_iter()
        .map(|m| {
            Ok(Member {
                user_id: m.user_id,
                role: parse_role(&m.role)?,
            })
        })
        .collect()
}

pub async fn list_members(db: &Db, ctx: &TenantCtx, project_id: Uuid) -> Result<MemberList> {
    access::authorize(ctx, Action::UserList)?;
    let tx = db.read(ctx).await?;
    authorize_in(&tx, ctx, project_id, Action::ProjectRead).await?;
    let items = members_of(&tx, project_id).await?;
    tx.commit().await?;
    Ok(MemberList { items })
}

/// Replaces the project's members. Each must be an active staff member (customers are never
/// project members); the change is on the project's timeline and in the audit log, and the
/// streams of everyone whose access changed re-check it.
pub async fn set_members(
    tx: &TenantTx,
    ctx: &TenantCtx,
    project_id: Uuid,
    req: Members,
) -> Result<MemberList> {
    let project = authorize_in(tx, ctx, project_id, Action::ProjectManage).await?;
    let mut v = Validator::default();
    v.check(
        req.members.len() <= MAX_MEMBERS,
        "members",
        &format!("at most {MAX_MEMBERS} members"),
    );
    v.finish()?;
    let mut v = Validator::default();
    let ids: Vec<Uuid> = req.members.iter().map(|m| m.user_id).collect();
    let staff: BTreeSet<Uuid> = tenancy::active_roles(tx, &ids)
        .await?
        .into_iter()
        .filter(|(_, role)| *role != Role::Requester)
        .map(|(id, _)| id)
        .collect();
    let mut seen = BTreeSet::new();
    for (i, m) in req.members.iter().enumerate() {
        let field = format!("members[{i}].user_id");
        if !seen.insert(m.user_id) {
            v.push(&field, "is listed twice");
        } else if !staff.contains(&m.user_id) {
            v.push(&field, "is not an active staff member of the organization");
        }
    }
    v.finish()?;
    let before = members_of(tx, project_id).await?;
    let mut after = req.members;
    after.sort_by_key(|m| m.user_id);
    if before == after {
        return Ok(MemberList { items: after });
    }
    tx.delete_many::<project_member::Entity>()
        .filter(project_member::Column::ProjectId.eq(project_id))
        .exec(tx.conn())
        .await?;
    let at = now();
    if !after.is_empty() {
        project_member::Entity::insert_many(after.iter().map(|m| project_member::ActiveModel {
            org_id: Set(tx.org_id()),
            project_id: Set(project_id),
            user_id: Set(m.user_id),
            role: Set(m.role.as_str().to_owned()),
            created_at: Set(at),
        }))
        .exec_without_returning(tx.conn())
        .await?;
    }
    let touched: BTreeSet<Uuid> = before
        .iter()
        .chain(after.iter())
        .map(|m| m.user_id)
        .collect();
    for user_id in touched {
        tx.access_changed(user_id).await?;
    }
    let changes = json!({"members": {"from": before, "to": after}});
    let mut shown = super::shown(tx, vec![project]).await?;
    let mut p = shown.remove(0);
    p.updated_at = at;
    record(tx, ctx, &p, Body::ProjectUpdated, changes.clone()).await?;
    audit::record(
        tx,
        Some(ctx.user_id),
        "project.members_changed",
        "project",
        Some(project_id),
        json!({"key": p.key, "members": after}),
    )
    .await?;
    Ok(MemberList { items: after })
}
