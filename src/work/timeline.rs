//! The append-only timeline: every change to a ticket or project, with who made it and each
//! field's old and new value. A ticket's current state is the replay of its timeline.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Order, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{entity::event, projects, tickets};
use crate::{
    access::{self, Action, TenantCtx},
    error::Result,
    pagination::{Page, PageRequest},
    store::{Db, TenantTx},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    pub id: Uuid,
    pub project_id: Uuid,
    pub ticket_id: Option<Uuid>,
    /// Who made the change.
    pub actor_id: Option<Uuid>,
    /// What happened, e.g. `ticket.created`, `ticket.updated`, `ticket.status_changed`,
    /// `comment.created`, `project.archived`.
    #[schema(example = "ticket.updated")]
    pub kind: String,
    /// The ticket's version after the change (ticket changes only).
    pub version: Option<i64>,
    /// Field name → `{"from": old, "to": new}`.
    #[schema(value_type = Object, example = json!({"status": {"from": "open", "to": "in_progress"}}))]
    pub changes: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// Set when retention replaced text in `changes` (a mail's body) with a notice.
    pub redacted_at: Option<DateTime<Utc>>,
}

impl From<event::Model> for TimelineEntry {
    fn from(m: event::Model) -> Self {
        Self {
            id: m.id,
            project_id: m.project_id,
            ticket_id: m.ticket_id,
            actor_id: m.actor_id,
            kind: m.kind,
            version: m.version,
            changes: m.changes,
            created_at: m.created_at,
            redacted_at: m.redacted_at,
        }
    }
}

/// One change to append.
pub(crate) struct Entry<'a> {
    pub project_id: Uuid,
    pub ticket_id: Option<Uuid>,
    pub kind: &'a str,
    /// About an internal note: requesters never see it.
    pub internal: bool,
    pub version: Option<i64>,
    pub changes: serde_json::Value,
    pub at: DateTime<Utc>,
}

pub(crate) async fn record(tx: &TenantTx, ctx: &TenantCtx, e: Entry<'_>) -> Result<()> {
    record_as(tx, Some(ctx.user_id), e).await
}

/// Like [`record`], for a change by `actor` (`None`: the system, such as an SLA timer).
pub(crate) async fn record_as(tx: &TenantTx, actor: Option<Uuid>, e: Entry<'_>) -> Result<()> {
    event::ActiveModel {
        org_id: Set(tx.org_id()),
        id: Set(Uuid::now_v7()),
        project_id: Set(e.project_id),
        ticket_id: Set(e.ticket_id),
        actor_id: Set(actor),
        kind: Set(e.kind.to_owned()),
        internal: Set(e.internal),
        version: Set(e.version),
        changes: Set(e.changes),
        created_at: Set(e.at),
        redacted_at: Set(None),
    }
    .insert(tx.conn())
    .await?;
    Ok(())
}

/// A ticket's timeline, oldest first (the order to replay it in). Requesters do not see
/// entries about internal notes.
pub async fn of_ticket(
    db: &Db,
    ctx: &TenantCtx,
    ticket: &str,
    page: PageRequest,
) -> Result<Page<TimelineEntry>> {
    access::authorize(ctx, Action::TicketRead)?;
    let tx = db.read(ctx).await?;
    let ticket = tickets::find_visible(&tx, ctx, ticket).await?;
    let scope = event::Column::TicketId.eq(ticket.id);
    read_page(tx, ctx, scope, page, false).await
}

/// Everything that happened in a project and its tickets, newest first.
pub async fn of_project(
    db: &Db,
    ctx: &TenantCtx,
    project_id: Uuid,
    page: PageRequest,
) -> Result<Page<TimelineEntry>> {
    access::authorize(ctx, Action::ProjectActivity)?;
    let tx = db.read(ctx).await?;
    projects::find(&tx, project_id).await?;
    let scope = event::Column::ProjectId.eq(project_id);
    read_page(tx, ctx, scope, page, true).await
}

/// One page of the entries matching `scope`, without internal ones for those who may not see
/// them, and commits the read.
async fn read_page(
    tx: TenantTx,
    ctx: &TenantCtx,
    scope: sea_orm::sea_query::SimpleExpr,
    page: PageRequest,
    newest_first: bool,
) -> Result<Page<TimelineEntry>> {
    let order = if newest_first {
        Order::Desc
    } else {
        Order::Asc
    };
    let mut query = tx
        .find::<event::Entity>()
        .filter(scope)
        .order_by(event::Column::Id, order)
        .limit(page.limit + 1);
    if !access::sees_internal_notes(ctx.role) {
        query = query.filter(event::Column::Internal.eq(false));
    }
    if let Some(after) = page.after_id()? {
        query = query.filter(if newest_first {
            event::Column::Id.lt(after)
        } else {
            event::Column::Id.gt(after)
        });
    }
    let rows = query.all(tx.conn()).await?;
    tx.commit().await?;
    Ok(Page::from_rows(
        rows,
        page.limit,
        |m| m.id,
        TimelineEntry::from,
    ))
}

/// Replaces, in ticket `ticket_id`'s timeline, the text `field` held (`from` and `to`) with
/// `notice`: in the entries about comment `comment` when given (every text it ever held), else
/// wherever the text equals `original`. Each rewritten entry is stamped `redacted_at`, the
/// only update the timeline accepts. Answers how many entries changed.
pub(crate) async fn redact(
    tx: &TenantTx,
    ticket_id: Uuid,
    field: &str,
    comment: Option<Uuid>,
    original: Option<&str>,
    notice: &str,
) -> Result<u64> {
    let entries = tx
        .find::<event::Entity>()
        .filter(event::Column::TicketId.eq(ticket_id))
        .all(tx.conn())
        .await?;
    let at = crate::store::now();
    let mut changed = 0;
    for entry in entries {
        let about = entry.changes.get("comment_id").and_then(|c| c.as_str());
        if comment.is_some_and(|c| about != Some(c.to_string().as_str())) {
            continue;
        }
        let mut changes = entry.changes.clone();
        let Some(values) = changes.get_mut(field).and_then(|v| v.as_object_mut()) else {
            continue;
        };
        let mut touched = false;
        for value in values.values_mut() {
            let replace = value
                .as_str()
                .is_some_and(|text| text != notice && original.is_none_or(|o| o == text));
            if replace {
                *value = serde_json::Value::String(notice.to_owned());
                touched = true;
            }
        }
        if touched {
            tx.update_many::<event::Entity>()
                .col_expr(event::Column::Changes, changes.into())
                .col_expr(event::Column::RedactedAt, at.into())
                .filter(event::Column::Id.eq(entry.id))
                .exec(tx.conn())
                .await?;
            changed += 1;
        }
    }
    Ok(changed)
}
