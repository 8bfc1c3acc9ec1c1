//! Comments on tickets, including internal notes that requesters never see.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, IntoActiveModel, ModelTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    Expected, attachments,
    entity::comment,
    now, search,
    sla::clocks::{self, Reply},
    tickets, timeline,
};
use crate::{
    access::{self, Action, Role, TenantCtx},
    error::{Error, Result, Validator},
    events::{
        self, Body,
        contract::{CommentCreated, CommentRef, Followers},
    },
    pagination::{Page, PageRequest},
    store::{Db, TenantTx},
    text::{MAX_TEXT, check_text},
};

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Comment {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub author_id: Uuid,
    pub body: String,
    /// An internal note: staff only, never shown to requesters.
    pub internal: bool,
    /// Incremented by every edit; send it back in `If-Match`.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<comment::Model> for Comment {
    fn from(m: comment::Model) -> Self {
        Self {
            id: m.id,
            ticket_id: m.ticket_id,
            author_id: m.author_id,
            body: m.body,
            internal: m.internal,
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    #[schema(schema_with = crate::text::body_schema)]
    pub body: String,
    /// An internal note (agents and above). Default `false`.
    #[serde(default)]
    pub internal: bool,
    /// Files you uploaded to this ticket (`POST /tickets/{id}/attachments`) that the comment
    /// carries; they become as private as the comment. At most 20.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub attachment_ids: Vec<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentPatch {
    #[schema(schema_with = crate::text::body_schema)]
    pub body: String,
}

fn check_body(body: &str) -> Result<()> {
    let mut v = Validator::default();
    check_text(&mut v, "body", body, MAX_TEXT, true);
    v.finish()
}

pub async fn list(
    db: &Db,
    ctx: &TenantCtx,
    ticket: &str,
    page: PageRequest,
) -> Result<Page<Comment>> {
    access::authorize(ctx, Action::TicketRead)?;
    let tx = db.read(ctx).await?;
    let ticket = tickets::find_visible(&tx, ctx, ticket).await?;
    let mut query = tx
        .find::<comment::Entity>()
        .filter(comment::Column::TicketId.eq(ticket.id))
        .order_by_asc(comment::Column::Id)
        .limit(page.limit + 1);
    if !access::sees_internal_notes(ctx.role) {
        query = query.filter(comment::Column::Internal.eq(false));
    }
    if let Some(after) = page.after_id()? {
        query = query.filter(comment::Column::Id.gt(after));
    }
    let rows = query.all(tx.conn()).await?;
    tx.commit().await?;
    Ok(Page::from_rows(rows, page.limit, |m| m.id, Comment::from))
}

pub async fn create(
    tx: &TenantTx,
    ctx: &TenantCtx,
    ticket: &str,
    req: NewComment,
) -> Result<Comment> {
    access::authorize(ctx, Action::CommentCreate)?;
    if req.internal {
        access::authorize(ctx, Action::CommentInternal)?;
    }
    check_body(&req.body)?;
    if req.attachment_ids.len() > attachments::MAX_FILES_AT_ONCE {
        return Err(Error::invalid(
            "attachment_ids",
            format!(
                "a comment may carry at most {} files",
                attachments::MAX_FILES_AT_ONCE
            ),
        ));
    }
    let ticket = tickets::find_for(tx, ctx, ticket, Action::CommentCreate).await?;
    if ticket.deleted {
        return Err(Error::NotFound("ticket"));
    }
    let at = now();
    let c = Comment::from(
        comment::ActiveModel {
            org_id: Set(tx.org_id()),
            id: Set(Uuid::now_v7()),
            ticket_id: Set(ticket.id),
            author_id: Set(ctx.user_id),
            body: Set(req.body),
            internal: Set(req.internal),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
        }
        .insert(tx.conn())
        .await?,
    );
    let mut files = req.attachment_ids;
    files.sort();
    files.dedup();
    attachments::link(tx, ctx, ticket.id, c.id, c.internal, &files).await?;
    tickets::touch(tx, ticket.id, at).await?;
    search::index_comment(tx, ticket.id, c.id, c.internal, &c.body).await?;
    if !c.internal {
        // A public message meets or starts a response clock.
        let reply = if ctx.role == Role::Requester {
            Reply::Requester
        } else {
            Reply::Staff
        };
        clocks::plan(tx, &ticket.facts, at, Some(reply))
            .await?
            .save(tx)
            .await?;
    }
    let changes = json!({"comment_id": c.id, "body": {"from": null, "to": c.body}});
    record(tx, ctx, &ticket, &c, Change::Created, changes).await?;
    Ok(c)
}

/// What a write did to a comment.
#[derive(Clone, Copy, Debug)]
enum Change {
    Created,
    Updated,
    Deleted,
}

async fn record(
    tx: &TenantTx,
    ctx: &TenantCtx,
    ticket: &tickets::TicketHandle,
    c: &Comment,
    change: Change,
    changes: serde_json::Value,
) -> Result<()> {
    let comment = CommentRef {
        ticket_id: ticket.id,
        project_id: ticket.project_id,
        requester_id: ticket.requester_id,
        comment_id: c.id,
        author_id: c.author_id,
        internal: c.internal,
        body: c.body.clone(),
    };
    let body = match change {
        // Who followed the ticket when the comment was made, for notifications.
        Change::Created => Body::CommentCreated(CommentCreated {
            comment,
            followers: Followers {
                assignee_ids: tickets::assignees_of(tx, ticket.id).await?,
                watcher_ids: super::watchers::of(tx, ticket.id).await?,
            },
        }),
        Change::Updated => Body::CommentUpdated(comment),
        Change::Deleted => Body::CommentDeleted(comment),
    };
    timeline::record(
        tx,
        ctx,
        timeline::Entry {
            project_id: ticket.project_id,
            ticket_id: Some(ticket.id),
            kind: body.kind(),
            internal: c.internal,
            version: None,
            changes,
            at: c.updated_at,
        },
    )
    .await?;
    events::emit(tx, Some(ctx.user_id), body, c.updated_at).await
}

/// Finds a comment the caller may change (its author, or an admin), locked, on a ticket they
/// can see, at the version they expect.
async fn lock(
    tx: &TenantTx,
    ctx: &TenantCtx,
    id: Uuid,
    expected: &Expected,
) -> Result<(comment::Model, tickets::TicketHandle)> {
    let m = tx
        .find_for_update::<comment::Entity>()
        .filter(comment::Column::Id.eq(id))
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("comment"))?;
    let ticket = tickets::find_for(tx, ctx, &m.ticket_id.to_string(), Action::CommentCreate)
        .await
        .map_err(|err| match err {
            Error::NotFound(_) => Error::NotFound("comment"),
            other => other,
        })?;
    if ticket.deleted || (m.internal && !access::sees_internal_notes(ctx.role)) {
        return Err(Error::NotFound("comment"));
    }
    if m.author_id != ctx.user_id {
        access::authorize(ctx, Action::CommentModerate)?;
    }
    expected.check("comment", m.version)?;
    Ok((m, ticket))
}

pub async fn update(
    tx: &TenantTx,
    ctx: &TenantCtx,
    id: Uuid,
    expected: &Expected,
    patch: CommentPatch,
) -> Result<Comment> {
    check_body(&patch.body)?;
    let (m, ticket) = lock(tx, ctx, id, expected).await?;
    if m.body == patch.body {
        return Ok(m.into());
    }
    let old = m.body.clone();
    let at = now();
    let mut row = m.clone().into_active_model();
    row.body = Set(patch.body);
    row.version = Set(m.version + 1);
    row.updated_at = Set(at);
    let c = Comment::from(row.update(tx.conn()).await?);
    search::index_comment(tx, ticket.id, c.id, c.internal, &c.body).await?;
    tickets::touch(tx, ticket.id, at).await?;
    let changes = json!({"comment_id": c.id, "body": {"from": old, "to": c.body}});
    record(tx, ctx, &ticket, &c, Change::Updated, changes).await?;
    Ok(c)
}

pub async fn delete(tx: &TenantTx, ctx: &TenantCtx, id: Uuid, expected: &Expected) -> Result<()> {
    let (m, ticket) = lock(tx, ctx, id, expected).await?;
    let mut c = Comment::from(m.clone());
    attachments::remove_of_comment(tx, ctx, &ticket, c.id).await?;
    m.delete(tx.conn()).await?;
    search::unindex(tx, c.id).await?;
    c.updated_at = now();
    tickets::touch(tx, ticket.id, c.updated_at).await?;
    // The timeline keeps what was said, so the deletion stays explainable.
    let changes = json!({"comment_id": c.id, "body": {"from": c.body, "to": null}});
    record(tx, ctx, &ticket, &c, Change::Deleted, changes).await
}

/// The ids of ticket `ticket_id`'s comments, oldest first: all of them, or those of `among`.
pub(crate) async fn ids_on(
    tx: &TenantTx,
    ticket_id: Uuid,
    among: Option<&[Uuid]>,
) -> Result<Vec<Uuid>> {
    let mut query = tx
        .find::<comment::Entity>()
        .select_only()
        .column(comment::Column::Id)
        .filter(comment::Column::TicketId.eq(ticket_id));
    if let Some(ids) = among {
        query = query.filter(comment::Column::Id.is_in(ids.iter().copied()));
    }
    Ok(query
        .order_by_asc(comment::Column::Id)
        .into_tuple()
        .all(tx.conn())
        .await?)
}

/// Moves comments (and their search documents) to ticket `to`, for a merge or a split.
pub(crate) async fn move_to(tx: &TenantTx, ids: &[Uuid], to: Uuid) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    tx.update_many::<comment::Entity>()
        .col_expr(comment::Column::TicketId, to.into())
        .filter(comment::Column::Id.is_in(ids.iter().copied()))
        .exec(tx.conn())
        .await?;
    search::move_documents(tx, ids, to).await
}
