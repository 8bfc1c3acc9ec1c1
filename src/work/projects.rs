//! Projects: where tickets live, each with a unique key that prefixes its tickets' keys.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{entity::project, now, timeline};
use crate::{
    access::{self, Action, TenantCtx},
    audit,
    error::{Error, Result, Validator},
    events::{self, Body, contract::ProjectChanged},
    pagination::{Page, PageRequest},
    store::{self, Db, TenantTx, is_unique_violation},
    text::{MAX_LINE, MAX_TEXT, check_line, check_text},
};

/// What `is_key` accepts, for the OpenAPI document.
pub const KEY_PATTERN: &str = "^[A-Z]{2,10}$";

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Project {
    pub id: Uuid,
    /// 2–10 capital letters; prefixes the keys of the project's tickets (`OPS-42`). Fixed once
    /// the project exists, so ticket keys never change under anyone.
    #[schema(example = "OPS")]
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub archived: bool,
    pub archived_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<project::Model> for Project {
    fn from(m: project::Model) -> Self {
        Self {
            id: m.id,
            key: m.key,
            name: m.name,
            description: m.description,
            archived: m.archived_at.is_some(),
            archived_at: m.archived_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

fn key_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(KEY_PATTERN))
        .examples([json!("OPS")])
        .build()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    #[schema(schema_with = crate::text::line_schema)]
    pub name: String,
    #[schema(schema_with = key_schema)]
    pub key: String,
    #[schema(schema_with = crate::text::optional_text_schema)]
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    #[schema(schema_with = crate::text::optional_line_schema)]
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(schema_with = crate::text::optional_text_schema)]
    pub description: Option<Option<String>>,
    /// `false` brings an archived project back.
    pub archived: Option<bool>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectFilter {
    /// Include archived projects.
    #[serde(default)]
    pub include_archived: bool,
}

/// 2–10 capital letters (`KEY_PATTERN`).
pub fn is_key(key: &str) -> bool {
    (2..=10).contains(&key.len()) && key.chars().all(|c| c.is_ascii_uppercase())
}

pub async fn list(
    db: &Db,
    ctx: &TenantCtx,
    q: ProjectFilter,
    page: PageRequest,
) -> Result<Page<Project>> {
    access::authorize(ctx, Action::ProjectRead)?;
    let tx = db.read(ctx).await?;
    let mut query = tx
        .find::<project::Entity>()
        .order_by_asc(project::Column::Id)
        .limit(page.limit + 1);
    if !q.include_archived {
        query = query.filter(project::Column::ArchivedAt.is_null());
    }
    if let Some(after) = page.after_id()? {
        query = query.filter(project::Column::Id.gt(after));
    }
    let rows = query.all(tx.conn()).await?;
    tx.commit().await?;
    Ok(Page::from_rows(rows, page.limit, |m| m.id, Project::from))
}

pub(crate) async fn find(tx: &TenantTx, id: Uuid) -> Result<project::Model> {
    tx.find::<project::Entity>()
        .filter(project::Column::Id.eq(id))
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("project"))
}

pub(crate) async fn find_by_key(tx: &TenantTx, key: &str) -> Result<Option<project::Model>> {
    Ok(tx
        .find::<project::Entity>()
        .filter(project::Column::Key.eq(key))
        .one(tx.conn())
        .await?)
}

/// The keys of the given projects, in one query (for a page of tickets).
pub(crate) async fn keys_of(tx: &TenantTx, ids: Vec<Uuid>) -> Result<Vec<(Uuid, String)>> {
    let rows = tx
        .find::<project::Entity>()
        .filter(project::Column::Id.is_in(ids))
        .all(tx.conn())
        .await?;
    Ok(rows.into_iter().map(|p| (p.id, p.key)).collect())
}

pub async fn get(db: &Db, ctx: &TenantCtx, id: Uuid) -> Result<Project> {
    access::authorize(ctx, Action::ProjectRead)?;
    let tx = db.read(ctx).await?;
    let p = find(&tx, id).await?;
    tx.commit().await?;
    Ok(p.into())
}

pub async fn create(tx: &TenantTx, ctx: &TenantCtx, req: NewProject) -> Result<Project> {
    access::authorize(ctx, Action::ProjectManage)?;
    let mut v = Validator::default();
    check_line(&mut v, "name", &req.name, MAX_LINE);
    v.check(
        is_key(&req.key),
        "key",
        "must be 2 to 10 capital letters (A-Z)",
    );
    if let Some(d) = &req.description {
        check_text(&mut v, "description", d, MAX_TEXT, false);
    }
    v.finish()?;
    let at = now();
    let model = project::ActiveModel {
        org_id: Set(tx.org_id()),
        id: Set(Uuid::now_v7()),
        key: Set(req.key.clone()),
        name: Set(req.name.trim().to_owned()),
        description: Set(req.description),
        ticket_counter: Set(0),
        archived_at: Set(None),
        created_by: Set(Some(ctx.user_id)),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(tx.conn())
    .await
    .map_err(|err| {
        if is_unique_violation(&err) {
            Error::conflict(
                "project_key_taken",
                format!("another project already uses the key {}", req.key),
            )
        } else {
            err.into()
        }
    })?;
    let project = Project::from(model);
    let changes = json!({"key": {"from": null, "to": project.key}, "name": {"from": null, "to": project.name}});
    record(tx, ctx, &project, Body::ProjectCreated, changes).await?;
    Ok(project)
}

/// The project's timeline entry and outbox event for one change (`event` names its kind);
/// returns the kind.
async fn record(
    tx: &TenantTx,
    ctx: &TenantCtx,
    project: &Project,
    event: fn(ProjectChanged) -> Body,
    changes: Value,
) -> Result<&'static str> {
    let body = event(ProjectChanged {
        project_id: project.id,
        changes: changes.clone(),
    });
    timeline::record(
        tx,
        ctx,
        timeline::Entry {
            project_id: project.id,
            ticket_id: None,
            kind: body.kind(),
            internal: false,
            version: None,
            changes,
            at: project.updated_at,
        },
    )
    .await?;
    let kind = body.kind();
    events::emit(tx, Some(ctx.user_id), body, project.updated_at).await?;
    Ok(kind)
}

pub async fn update(
    tx: &TenantTx,
    ctx: &TenantCtx,
    id: Uuid,
    patch: ProjectPatch,
) -> Result<Project> {
    access::authorize(ctx, Action::ProjectManage)?;
    let mut v = Validator::default();
    if let Some(name) = &patch.name {
        check_line(&mut v, "name", name, MAX_LINE);
    }
    if let Some(Some(d)) = &patch.description {
        check_text(&mut v, "description", d, MAX_TEXT, false);
    }
    v.finish()?;
    let current = tx
        .find_for_update::<project::Entity>()
        .filter(project::Column::Id.eq(id))
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("project"))?;
    let at = now();
    let mut changes = serde_json::Map::new();
    let mut model = current.clone().into_active_model();
    if let Some(name) = patch
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| *n != current.name)
    {
        changes.insert("name".into(), json!({"from": current.name, "to": name}));
        model.name = Set(name);
    }
    if let Some(d) = patch.description.filter(|d| *d != current.description) {
        changes.insert(
            "description".into(),
            json!({"from": current.description, "to": d}),
        );
        model.description = Set(d);
    }
    let archive = patch
        .archived
        .filter(|a| *a != current.archived_at.is_some());
    if let Some(archive) = archive {
        let to = archive.then_some(at);
        changes.insert(
            "archived_at".into(),
            json!({"from": current.archived_at, "to": to}),
        );
        model.archived_at = Set(to);
    }
    if changes.is_empty() {
        return Ok(current.into());
    }
    model.updated_at = Set(at);
    let project = Project::from(model.update(tx.conn()).await?);
    let event: fn(ProjectChanged) -> Body = match archive {
        Some(true) => Body::ProjectArchived,
        Some(false) => Body::ProjectRestored,
        None => Body::ProjectUpdated,
    };
    let kind = record(tx, ctx, &project, event, changes.into()).await?;
    if archive.is_some() {
        audit::record(
            tx,
            Some(ctx.user_id),
            kind,
            "project",
            Some(project.id),
            json!({"key": project.key}),
        )
        .await?;
    }
    Ok(project)
}

/// `DELETE /projects/{id}`: archives (its tickets stay; no new ones can be filed).
pub async fn archive(tx: &TenantTx, ctx: &TenantCtx, id: Uuid) -> Result<Project> {
    update(
        tx,
        ctx,
        id,
        ProjectPatch {
            archived: Some(true),
            ..Default::default()
        },
    )
    .await
}

/// Hands out the project's next ticket number. The counter row is updated in the caller's
/// transaction, which holds the row lock until it commits: concurrent creates queue, and a
/// rolled-back create gives its number back, so numbers never repeat and never skip.
pub(crate) async fn next_ticket_number(tx: &TenantTx, project_id: Uuid) -> Result<(String, i64)> {
    let backend = tx.conn().get_database_backend();
    let row = tx
        .conn()
        .query_one_raw(store::statement(
            backend,
            "UPDATE projects SET ticket_counter = ticket_counter + 1 \
             WHERE org_id = $1 AND id = $2 AND archived_at IS NULL \
             RETURNING key, ticket_counter",
            [tx.org_id().into(), project_id.into()],
        ))
        .await?;
    match row {
        Some(row) => Ok((row.try_get("", "key")?, row.try_get("", "ticket_counter")?)),
        None => {
            // Tell a missing project from an archived one.
            find(tx, project_id).await?;
            Err(Error::conflict(
                "project_archived",
                "the project is archived; restore it to file tickets in it",
            ))
        }
    }
}
