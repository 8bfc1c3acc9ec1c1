//! Projects: where tickets live, each with a unique key that prefixes its tickets' keys, and
//! with a plan (status, dates, lead) and its progress counted from its tickets. A private
//! project (`visibility: members`) is seen only by its members (`members`) and the
//! organisation's owners and admins; `access::project` decides what each may do in it.

mod members;

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub use members::{Member, MemberList, Members, list_members, set_members};
pub(crate) use members::{authorize_in, authorize_on_ticket, private_members};

use super::{Status, entity::project, now, tickets::Progress, timeline};
use crate::{
    access::{self, Action, Role, TenantCtx, project::Visibility},
    audit,
    error::{Error, Result, Validator},
    events::{self, Body, contract::ProjectChanged},
    pagination::{Page, PageRequest},
    plans,
    store::{self, Db, TenantTx, is_unique_violation},
    tenancy,
    text::{MAX_LINE, MAX_TEXT, check_line, check_text},
};

/// Where a project stands in its plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    Planned,
    Active,
    Paused,
    Completed,
    Cancelled,
}

impl ProjectStatus {
    pub const ALL: [ProjectStatus; 5] = [
        ProjectStatus::Planned,
        ProjectStatus::Active,
        ProjectStatus::Paused,
        ProjectStatus::Completed,
        ProjectStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProjectStatus::Planned => "planned",
            ProjectStatus::Active => "active",
            ProjectStatus::Paused => "paused",
            ProjectStatus::Completed => "completed",
            ProjectStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<ProjectStatus> {
        ProjectStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

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
    pub status: ProjectStatus,
    pub start_date: Option<NaiveDate>,
    /// Never before `start_date`.
    pub target_date: Option<NaiveDate>,
    /// A staff member of the organisation who leads the project.
    pub lead_id: Option<Uuid>,
    /// `members`: only the project's members (and the organisation's owners and admins) see
    /// it and its tickets.
    pub visibility: Visibility,
    /// Its tickets (deleted ones not at all), and how many are resolved, closed or cancelled.
    pub progress: Progress,
}

impl Project {
    fn from_model(m: project::Model, progress: Progress) -> Result<Self> {
        Ok(Self {
            status: ProjectStatus::parse(&m.status).ok_or_else(|| stored("status", &m.status))?,
            visibility: Visibility::parse(&m.visibility)
                .ok_or_else(|| stored("visibility", &m.visibility))?,
            id: m.id,
            key: m.key,
            name: m.name,
            description: m.description,
            archived: m.archived_at.is_some(),
            archived_at: m.archived_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
            start_date: m.start_date,
            target_date: m.target_date,
            lead_id: m.lead_id,
            progress,
        })
    }
}

fn stored(what: &str, value: &str) -> Error {
    Error::internal(anyhow::anyhow!("stored project {what} {value} is unknown"))
}

/// The progress of each of these projects, in one statement (an index-only count).
async fn progress_of(tx: &TenantTx, ids: &[Uuid]) -> Result<HashMap<Uuid, Progress>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let backend = tx.conn().get_database_backend();
    let done = Status::DONE.map(|s| format!("'{}'", s.as_str())).join(", ");
    let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT project_id, COUNT(*) AS total, \
           SUM(CASE WHEN status IN ({done}) THEN 1 ELSE 0 END) AS done \
         FROM tickets WHERE org_id = $1 AND deleted_at IS NULL AND project_id IN ({}) \
         GROUP BY project_id",
        placeholders.join(", ")
    );
    let mut values: Vec<sea_orm::Value> = vec![tx.org_id().into()];
    values.extend(ids.iter().map(|id| sea_orm::Value::from(*id)));
    let rows = tx
        .conn()
        .query_all_raw(store::statement(backend, &sql, values))
        .await?;
    rows.iter()
        .map(|row| {
            let (total, done): (i64, i64) = (row.try_get("", "total")?, row.try_get("", "done")?);
            Ok((
                row.try_get("", "project_id")?,
                Progress {
                    total: u64::try_from(total).unwrap_or_default(),
                    done: u64::try_from(done).unwrap_or_default(),
                },
            ))
        })
        .collect()
}

/// The projects, as the API shows them (with their progress).
async fn shown(tx: &TenantTx, rows: Vec<project::Model>) -> Result<Vec<Project>> {
    let ids: Vec<Uuid> = rows.iter().map(|m| m.id).collect();
    let mut progress = progress_of(tx, &ids).await?;
    rows.into_iter()
        .map(|m| {
            let p = progress.remove(&m.id).unwrap_or_default();
            Project::from_model(m, p)
        })
        .collect()
}

fn key_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(KEY_PATTERN))
        .examples([json!("OPS")])
        .build()
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    #[schema(schema_with = crate::text::line_schema)]
    pub name: String,
    #[schema(schema_with = key_schema)]
    pub key: String,
    #[schema(schema_with = crate::text::optional_text_schema)]
    pub description: Option<String>,
    /// Default `active`.
    pub status: Option<ProjectStatus>,
    /// Years 1–9999.
    #[serde(default, deserialize_with = "super::date")]
    pub start_date: Option<NaiveDate>,
    /// Years 1–9999, never before `start_date`.
    #[serde(default, deserialize_with = "super::date")]
    pub target_date: Option<NaiveDate>,
    pub lead_id: Option<Uuid>,
    /// Default `org`. A manager who makes a project private becomes its admin.
    pub visibility: Option<Visibility>,
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
    pub status: Option<ProjectStatus>,
    /// Years 1–9999; `null` clears it.
    #[serde(default, deserialize_with = "super::nullable_date")]
    #[schema(value_type = Option<NaiveDate>)]
    pub start_date: Option<Option<NaiveDate>>,
    /// Years 1–9999; `null` clears it.
    #[serde(default, deserialize_with = "super::nullable_date")]
    #[schema(value_type = Option<NaiveDate>)]
    pub target_date: Option<Option<NaiveDate>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub lead_id: Option<Option<Uuid>>,
    pub visibility: Option<Visibility>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectFilter {
    /// Include archived projects.
    #[serde(default)]
    pub include_archived: bool,
    /// Only projects in this status.
    pub status: Option<ProjectStatus>,
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
    let mut query = seen_by(&tx, ctx)
        .order_by_asc(project::Column::Id)
        .limit(page.limit + 1);
    if !q.include_archived {
        query = query.filter(project::Column::ArchivedAt.is_null());
    }
    if let Some(status) = q.status {
        query = query.filter(project::Column::Status.eq(status.as_str()));
    }
    if let Some(after) = page.after_id()? {
        query = query.filter(project::Column::Id.gt(after));
    }
    let rows = query.all(tx.conn()).await?;
    let shown = shown(&tx, rows).await?;
    tx.commit().await?;
    Ok(Page::from_rows(shown, page.limit, |p| p.id, |p| p))
}

/// The projects `ctx` sees: the transaction's wall hides private projects from staff who are
/// not their members; requesters see none of them.
fn seen_by(tx: &TenantTx, ctx: &TenantCtx) -> sea_orm::Select<project::Entity> {
    let query = tx.find::<project::Entity>();
    if ctx.role == Role::Requester {
        query.filter(project::Column::Visibility.eq(Visibility::Org.as_str()))
    } else {
        query
    }
}

/// A project of this tenant that the transaction's viewer may see.
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
    let m = seen_by(&tx, ctx)
        .filter(project::Column::Id.eq(id))
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("project"))?;
    let p = shown(&tx, vec![m])
        .await?
        .pop()
        .ok_or(Error::NotFound("project"))?;
    tx.commit().await?;
    Ok(p)
}

/// The plan's fields as they will be: dates in order, a lead who is staff here.
async fn check_plan(
    tx: &TenantTx,
    v: &mut Validator,
    start: Option<NaiveDate>,
    target: Option<NaiveDate>,
    lead: Option<Uuid>,
) -> Result<()> {
    if let (Some(start), Some(target)) = (start, target) {
        v.check(
            target >= start,
            "target_date",
            "must not be before start_date",
        );
    }
    if let Some(lead) = lead {
        let staff = tenancy::active_roles(tx, &[lead])
            .await?
            .into_iter()
            .any(|(_, role)| role != Role::Requester);
        v.check(
            staff,
            "lead_id",
            "is not an active staff member of the organization",
        );
    }
    Ok(())
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
    check_plan(tx, &mut v, req.start_date, req.target_date, req.lead_id).await?;
    v.finish()?;
    ensure_room_for_one_more(tx).await?;
    let at = now();
    let visibility = req.visibility.unwrap_or(Visibility::Org);
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
        status: Set(req
            .status
            .unwrap_or(ProjectStatus::Active)
            .as_str()
            .to_owned()),
        start_date: Set(req.start_date),
        target_date: Set(req.target_date),
        lead_id: Set(req.lead_id),
        visibility: Set(visibility.as_str().to_owned()),
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
    let project = Project::from_model(model, Progress::default())?;
    if visibility == Visibility::Members {
        members::keep_sight(tx, ctx, project.id).await?;
    }
    let changes = json!({"key": {"from": null, "to": project.key}, "name": {"from": null, "to": project.name}});
    record(tx, ctx, &project, Body::ProjectCreated, changes).await?;
    Ok(project)
}

/// A key from an organisation's name: the letters of its first word (up to four), else the
/// initials of its words, else `HELP`.
fn key_from(name: &str) -> String {
    let letters = |word: &str| -> String {
        word.chars()
            .filter(|c| c.is_ascii_alphabetic())
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    let first: String = name
        .split_whitespace()
        .map(letters)
        .find(|w| !w.is_empty())
        .unwrap_or_default()
        .chars()
        .take(4)
        .collect();
    let initials: String = name
        .split_whitespace()
        .filter_map(|w| letters(w).chars().next())
        .take(10)
        .collect();
    [first, initials]
        .into_iter()
        .find(|k| is_key(k))
        .unwrap_or_else(|| "HELP".to_owned())
}

/// Projects not archived: what a plan's `projects` counts.
pub(crate) async fn active_count(tx: &TenantTx) -> Result<u64> {
    Ok(tx
        .find::<project::Entity>()
        .filter(project::Column::ArchivedAt.is_null())
        .count(tx.conn())
        .await?)
}

/// Refuses (402 `plan_limit_reached`) one more project (not archived) than the plan has.
async fn ensure_room_for_one_more(tx: &TenantTx) -> Result<()> {
    plans::ensure_room_for_one(tx, plans::Limit::Projects, active_count(tx)).await
}

/// A new organisation's first project, named and keyed from the organisation (both can be
/// changed: the name at any time, the key by making another project).
pub async fn create_first(
    tx: &TenantTx,
    ctx: &TenantCtx,
    organization_name: &str,
) -> Result<Project> {
    let name: String = organization_name.chars().take(MAX_LINE).collect();
    let req = NewProject {
        key: key_from(&name),
        name: if name.trim().is_empty() {
            "Support".into()
        } else {
            name
        },
        description: Some("The first project. Rename it, or add more in Projects.".into()),
        ..Default::default()
    };
    create(tx, ctx, req).await
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
    authorize_in(tx, ctx, id, Action::ProjectManage).await?;
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
    let mut v = Validator::default();
    let start = patch.start_date.unwrap_or(current.start_date);
    let target = patch.target_date.unwrap_or(current.target_date);
    let new_lead = patch
        .lead_id
        .flatten()
        .filter(|l| Some(*l) != current.lead_id);
    check_plan(tx, &mut v, start, target, new_lead).await?;
    v.finish()?;
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
        if !archive {
            ensure_room_for_one_more(tx).await?;
        }
        let to = archive.then_some(at);
        changes.insert(
            "archived_at".into(),
            json!({"from": current.archived_at, "to": to}),
        );
        model.archived_at = Set(to);
    }
    let mut plan = |field: &str, from: Value, to: Value| {
        if from != to {
            changes.insert(field.into(), json!({"from": from, "to": to}));
            true
        } else {
            false
        }
    };
    if let Some(status) = patch.status
        && plan("status", json!(current.status), json!(status.as_str()))
    {
        model.status = Set(status.as_str().to_owned());
    }
    if plan("start_date", json!(current.start_date), json!(start)) {
        model.start_date = Set(start);
    }
    if plan("target_date", json!(current.target_date), json!(target)) {
        model.target_date = Set(target);
    }
    if let Some(lead) = patch.lead_id
        && plan("lead_id", json!(current.lead_id), json!(lead))
    {
        model.lead_id = Set(lead);
    }
    let private = patch
        .visibility
        .filter(|v| v.as_str() != current.visibility);
    if let Some(visibility) = private {
        plan(
            "visibility",
            json!(current.visibility),
            json!(visibility.as_str()),
        );
        model.visibility = Set(visibility.as_str().to_owned());
    }
    if changes.is_empty() {
        return Ok(shown(tx, vec![current]).await?.remove(0));
    }
    model.updated_at = Set(at);
    let updated = model.update(tx.conn()).await?;
    if private == Some(Visibility::Members) {
        members::keep_sight(tx, ctx, id).await?;
    }
    if private.is_some() {
        // Who may see the project changed for many people: every stream looks again.
        tx.access_changed(Uuid::nil()).await?;
    }
    let project = shown(tx, vec![updated]).await?.remove(0);
    let event: fn(ProjectChanged) -> Body = match archive {
        Some(true) => Body::ProjectArchived,
        Some(false) => Body::ProjectRestored,
        None => Body::ProjectUpdated,
    };
    let kind = record(tx, ctx, &project, event, changes.into()).await?;
    if archive.is_some() || private.is_some() {
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
/// A ticket number handed out, with what the new ticket needs to know of its project.
pub(crate) struct Numbered {
    pub key: String,
    pub number: i64,
    /// Only its members (and owners and admins) see the project.
    pub private: bool,
}

pub(crate) async fn next_ticket_number(tx: &TenantTx, project_id: Uuid) -> Result<Numbered> {
    let backend = tx.conn().get_database_backend();
    let row = tx
        .conn()
        .query_one_raw(store::statement(
            backend,
            // Whether the caller may file here was asked before (`authorize_in`).
            "UPDATE projects SET ticket_counter = ticket_counter + 1 \
             WHERE org_id = $1 AND id = $2 AND archived_at IS NULL \
             RETURNING key, ticket_counter, visibility",
            [tx.org_id().into(), project_id.into()],
        ))
        .await?;
    match row {
        Some(row) => Ok(Numbered {
            key: row.try_get("", "key")?,
            number: row.try_get("", "ticket_counter")?,
            private: row.try_get::<String>("", "visibility")? == Visibility::Members.as_str(),
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_keys_come_from_the_organisation_name() {
        assert_eq!(key_from("Acme"), "ACME");
        assert_eq!(key_from("Globex Corporation"), "GLOB");
        assert_eq!(key_from("X Y Z"), "XYZ");
        assert_eq!(key_from("Ünïcode 42"), "NCOD");
        assert_eq!(key_from("4 2"), "HELP");
        assert_eq!(key_from("A"), "HELP");
        for k in ["ACME", "GLOB", "XYZ", "HELP"] {
            assert!(is_key(k));
        }
    }
}
