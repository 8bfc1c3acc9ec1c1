//! Merging a ticket into another: its comments, files and watchers move to the target in one
//! transaction, the source is closed with `merged_into_id`, and mail replying to the source
//! lands on the target (`tickets::live`). Within [`UNDO_WINDOW`], and while nothing was added
//! to the target since, the merge can be undone: everything moved goes back.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    access::{self, Action, TenantCtx},
    error::{Error, Result, Validator},
    events::{self, Body, contract::TicketMerged},
    store::TenantTx,
    work::{
        Expected, Status, attachments, comments,
        entity::merge,
        now,
        tickets::{self, Change, Ticket},
        timeline, watchers,
    },
};

/// How long after a merge it can be undone.
pub const UNDO_WINDOW: chrono::Duration = chrono::Duration::minutes(10);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The ticket to merge into: its id or key.
    #[schema(example = "OPS-7")]
    pub into: String,
}

/// What a merge moved, and the source's state before it (for undoing it).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Moved {
    comment_ids: Vec<Uuid>,
    attachment_ids: Vec<Uuid>,
    /// Watchers the target gained (those it had stay).
    watcher_ids: Vec<Uuid>,
    status: Option<Status>,
    resolved_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
}

/// Locks both tickets for the change, in id order (two merges of the same pair, either way,
/// queue rather than deadlock), each checked against the caller's rights in its project.
async fn lock_pair(
    tx: &TenantTx,
    ctx: &TenantCtx,
    source: Uuid,
    target: Uuid,
) -> Result<(Ticket, Ticket)> {
    async fn lock(tx: &TenantTx, ctx: &TenantCtx, id: Uuid) -> Result<Ticket> {
        tickets::lock(
            tx,
            ctx,
            &id.to_string(),
            &Expected::Any,
            Action::TicketUpdate,
        )
        .await
    }
    if source < target {
        let s = lock(tx, ctx, source).await?;
        Ok((s, lock(tx, ctx, target).await?))
    } else {
        let t = lock(tx, ctx, target).await?;
        Ok((lock(tx, ctx, source).await?, t))
    }
}

/// The target's timeline entry and the `ticket.merged`/`ticket.unmerged` event.
async fn record(
    tx: &TenantTx,
    ctx: &TenantCtx,
    target: &Ticket,
    source: &Ticket,
    merge_id: Uuid,
    undone: bool,
    at: DateTime<Utc>,
) -> Result<()> {
    let shown = json!({"ticket_id": source.id, "key": source.key});
    let (kind, from, to) = if undone {
        ("ticket.unmerged", shown, json!(null))
    } else {
        ("ticket.merged", json!(null), shown)
    };
    timeline::record(
        tx,
        ctx,
        timeline::Entry {
            project_id: target.project_id,
            ticket_id: Some(target.id),
            kind,
            internal: false,
            version: None,
            changes: json!({"merged": {"from": from, "to": to}}),
            at,
        },
    )
    .await?;
    let body = TicketMerged {
        ticket: target.event_ref(),
        merge_id,
        source_id: source.id,
        source_key: source.key.clone(),
    };
    let body = if undone {
        Body::TicketUnmerged(body)
    } else {
        Body::TicketMerged(body)
    };
    events::emit(tx, Some(ctx.user_id), body, at).await
}

/// `POST /tickets/{id}/merge`: merges ticket `source` into `req.into`; returns the target.
pub async fn merge(
    tx: &TenantTx,
    ctx: &TenantCtx,
    source: &str,
    req: MergeRequest,
) -> Result<Ticket> {
    access::authorize(ctx, Action::TicketUpdate)?;
    let from = tickets::find_visible(tx, ctx, source).await?;
    if from.deleted {
        return Err(Error::NotFound("ticket"));
    }
    let mut v = Validator::default();
    let into = match tickets::find_visible(tx, ctx, &req.into).await {
        Ok(t) if t.deleted => None,
        Ok(t) => Some(t.id),
        Err(Error::NotFound(_)) => None,
        Err(err) => return Err(err),
    };
    match into {
        None => v.push("into", "no such ticket"),
        Some(id) if id == from.id => v.push("into", "a ticket cannot be merged into itself"),
        Some(_) => {}
    }
    v.finish()?;
    let into = into.ok_or(Error::NotFound("ticket"))?;
    let (before, target) = lock_pair(tx, ctx, from.id, into).await?;
    if before.merged_into_id.is_some() {
        return Err(Error::conflict(
            "ticket_merged",
            format!("{} is merged already", before.key),
        ));
    }
    if target.merged_into_id.is_some() {
        return Err(Error::invalid(
            "into",
            format!(
                "{} is merged into another ticket; merge into that one",
                target.key
            ),
        ));
    }
    let at = now();
    let comment_ids = comments::ids_on(tx, before.id, None).await?;
    let attachment_ids = attachments::ids_on(tx, before.id, None).await?;
    comments::move_to(tx, &comment_ids, target.id).await?;
    attachments::move_to(tx, &attachment_ids, target.id).await?;
    let watcher_ids = watchers::add(tx, target.id, &watchers::of(tx, before.id).await?).await?;
    let moved = Moved {
        comment_ids,
        attachment_ids,
        watcher_ids,
        status: Some(before.status),
        resolved_at: before.resolved_at,
        closed_at: before.closed_at,
    };
    let mut after = before.clone();
    after.status = Status::Closed;
    after.closed_at = Some(at);
    after.merged_into_id = Some(target.id);
    let source = tickets::save(tx, Some(ctx.user_id), &before, after, Change::Merged).await?;
    tickets::touch(tx, target.id, at).await?;
    let merge_id = Uuid::now_v7();
    merge::Entity::insert(merge::ActiveModel {
        org_id: Set(tx.org_id()),
        id: Set(merge_id),
        source_id: Set(source.id),
        target_id: Set(target.id),
        target_version: Set(target.version),
        moved: Set(serde_json::to_value(&moved).map_err(Error::internal)?),
        merged_by: Set(Some(ctx.user_id)),
        merged_at: Set(at),
        undone_at: Set(None),
    })
    .exec_without_returning(tx.conn())
    .await?;
    record(tx, ctx, &target, &source, merge_id, false, at).await?;
    tickets::load(tx, target.id).await
}

/// `POST /tickets/{id}/unmerge`: undoes the merge of ticket `source`; returns it, as it was.
pub async fn unmerge(tx: &TenantTx, ctx: &TenantCtx, source: &str) -> Result<Ticket> {
    access::authorize(ctx, Action::TicketUpdate)?;
    let from = tickets::find_visible(tx, ctx, source).await?;
    let row = tx
        .find::<merge::Entity>()
        .filter(merge::Column::SourceId.eq(from.id))
        .filter(merge::Column::UndoneAt.is_null())
        .order_by_desc(merge::Column::MergedAt)
        .one(tx.conn())
        .await?
        .ok_or_else(|| Error::conflict("ticket_not_merged", "the ticket is not merged"))?;
    let (before, target) = lock_pair(tx, ctx, from.id, row.target_id).await?;
    if before.merged_into_id != Some(row.target_id) {
        return Err(Error::conflict(
            "ticket_not_merged",
            "the ticket is not merged",
        ));
    }
    let at = now();
    if at - row.merged_at > UNDO_WINDOW {
        return Err(Error::conflict(
            "unmerge_expired",
            format!(
                "a merge can be undone for {} minutes only",
                UNDO_WINDOW.num_minutes()
            ),
        ));
    }
    if target.version != row.target_version || target.updated_at > row.merged_at {
        return Err(Error::conflict(
            "unmerge_target_changed",
            format!(
                "{} changed since the merge; undo is no longer possible",
                target.key
            ),
        ));
    }
    let moved: Moved = serde_json::from_value(row.moved.clone()).map_err(Error::internal)?;
    comments::move_to(tx, &moved.comment_ids, before.id).await?;
    attachments::move_to(tx, &moved.attachment_ids, before.id).await?;
    watchers::remove(tx, target.id, &moved.watcher_ids).await?;
    let mut after = before.clone();
    after.status = moved.status.unwrap_or(Status::Open);
    after.resolved_at = moved.resolved_at;
    after.closed_at = moved.closed_at;
    after.merged_into_id = None;
    let source = tickets::save(tx, Some(ctx.user_id), &before, after, Change::Unmerged).await?;
    tx.update_many::<merge::Entity>()
        .col_expr(merge::Column::UndoneAt, at.into())
        .filter(merge::Column::Id.eq(row.id))
        .exec(tx.conn())
        .await?;
    record(tx, ctx, &target, &source, row.id, true, at).await?;
    Ok(source)
}
