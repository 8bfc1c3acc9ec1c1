//! What an organisation's retention settings take from the work: tickets closed long enough
//! ago go with every row that hangs on them, and the text of mail that came in gives way to a
//! notice. The caller (`lifecycle::retention`) picks what is due and commits.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, QueryFilter, QuerySelect, sea_query::Expr};
use uuid::Uuid;

use super::{
    Status, attachments,
    entity::{comment, event, ticket},
    search, structure, timeline,
};
use crate::{
    error::Result,
    store::{self, TenantTx},
};

/// What replaces the text of a mail that retention removed.
pub const MAIL_TEXT_REMOVED: &str =
    "[The text of this mail was removed under the organisation's retention settings.]";

/// Up to `limit` tickets closed or cancelled before `cutoff`.
pub async fn closed_before(tx: &TenantTx, cutoff: DateTime<Utc>, limit: u64) -> Result<Vec<Uuid>> {
    Ok(tx
        .find::<ticket::Entity>()
        .select_only()
        .column(ticket::Column::Id)
        .filter(ticket::Column::Status.is_in([Status::Closed.as_str(), Status::Cancelled.as_str()]))
        .filter(ticket::Column::ClosedAt.lt(cutoff))
        .limit(limit)
        .into_tuple()
        .all(tx.conn())
        .await?)
}

/// What purging some tickets removed.
#[derive(Debug, Default)]
pub struct TicketsPurged {
    /// Rows, the tickets' own included.
    pub rows: u64,
    /// The attachments' blobs, to delete once the transaction has committed.
    pub files: Vec<Uuid>,
}

/// Purges tickets `ids`: first what other tickets hold of them (links, merges, subtask
/// counts), then the rows of every table that has a `ticket_id` (`tables`, from
/// `Db::ticket_tables`: whichever module owns them), then the tickets. The tickets are marked
/// in `ticket_purges` meanwhile, the one state in which their timeline may be deleted.
pub async fn purge(tx: &TenantTx, tables: &[String], ids: &[Uuid]) -> Result<TicketsPurged> {
    if ids.is_empty() {
        return Ok(TicketsPurged::default());
    }
    mark(tx, ids).await?;
    let files = attachments::forget_tickets(tx, ids).await?;
    structure::forget_tickets(tx, ids).await?;
    let mut rows = files.len() as u64;
    for table in tables {
        if !["ticket_purges", "attachments"].contains(&table.as_str()) {
            rows += tx.delete_ticket_rows(table, ids).await?;
        }
    }
    rows += tx
        .delete_many::<ticket::Entity>()
        .filter(ticket::Column::Id.is_in(ids.iter().copied()))
        .exec(tx.conn())
        .await?
        .rows_affected;
    tx.delete_ticket_rows("ticket_purges", ids).await?;
    Ok(TicketsPurged { rows, files })
}

/// Marks tickets `ids` as being purged (the mark goes with their other rows: `ticket_purges`
/// has a `ticket_id`, and `purge` empties it last).
async fn mark(tx: &TenantTx, ids: &[Uuid]) -> Result<()> {
    let backend = tx.conn().get_database_backend();
    for id in ids {
        tx.conn()
            .execute_raw(store::statement(
                backend,
                "INSERT INTO ticket_purges (org_id, ticket_id) VALUES ($1, $2)",
                [tx.org_id().into(), (*id).into()],
            ))
            .await?;
    }
    Ok(())
}

/// Replaces the text a mail brought with [`MAIL_TEXT_REMOVED`]: comment `comment_id`'s body
/// when the mail was a reply, else the description ticket `ticket_id` was opened with (where
/// it still stands). Search and the timeline forget it too. Answers whether anything changed.
pub async fn remove_mail_text(
    tx: &TenantTx,
    ticket_id: Uuid,
    comment_id: Option<Uuid>,
) -> Result<bool> {
    let notice = MAIL_TEXT_REMOVED;
    if let Some(id) = comment_id {
        let changed = tx
            .update_many::<comment::Entity>()
            .col_expr(comment::Column::Body, Expr::value(notice))
            .filter(comment::Column::Id.eq(id))
            .filter(comment::Column::Body.ne(notice))
            .exec(tx.conn())
            .await?
            .rows_affected;
        if changed > 0 {
            search::replace_body(tx, id, notice).await?;
        }
        let entries = timeline::redact(tx, ticket_id, "body", Some(id), None, notice).await?;
        return Ok(changed + entries > 0);
    }
    let created = tx
        .find::<event::Entity>()
        .filter(event::Column::TicketId.eq(ticket_id))
        .filter(event::Column::Kind.eq("ticket.created"))
        .one(tx.conn())
        .await?;
    let Some(original) = created
        .as_ref()
        .and_then(|e| e.changes.pointer("/description/to"))
        .and_then(|d| d.as_str())
        .filter(|d| *d != notice)
        .map(str::to_owned)
    else {
        return Ok(false);
    };
    let changed = tx
        .update_many::<ticket::Entity>()
        .col_expr(ticket::Column::Description, Expr::value(notice))
        .filter(ticket::Column::Id.eq(ticket_id))
        .filter(ticket::Column::Description.eq(original.as_str()))
        .exec(tx.conn())
        .await?
        .rows_affected;
    if changed > 0 {
        search::replace_body(tx, ticket_id, notice).await?;
    }
    let entries =
        timeline::redact(tx, ticket_id, "description", None, Some(&original), notice).await?;
    Ok(changed + entries > 0)
}
