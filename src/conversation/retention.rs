//! What retention asks of the conversations: the inbound mail old enough for its text to go,
//! marking that text gone, and the ingest log lines of that age (they name senders and
//! subjects).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr};
use uuid::Uuid;

use super::{entity::message, ingest::log_entity};
use crate::{error::Result, store::TenantTx};

/// A mail whose text is due to go: what it made.
#[derive(Debug)]
pub struct MailText {
    pub message_id: String,
    pub ticket_id: Uuid,
    /// The comment it became (a reply); none when it opened the ticket.
    pub comment_id: Option<Uuid>,
}

/// Up to `limit` inbound mails received before `cutoff` whose text is still there.
pub async fn texts_before(
    tx: &TenantTx,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<MailText>> {
    let rows = tx
        .find::<message::Entity>()
        .filter(message::Column::Direction.eq("inbound"))
        .filter(message::Column::TicketId.is_not_null())
        .filter(message::Column::BodyPurgedAt.is_null())
        .filter(message::Column::CreatedAt.lt(cutoff))
        .order_by_asc(message::Column::CreatedAt)
        .limit(limit)
        .all(tx.conn())
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|m| {
            Some(MailText {
                ticket_id: m.ticket_id?,
                comment_id: m.comment_id,
                message_id: m.message_id,
            })
        })
        .collect())
}

/// Notes that the text of mails `message_ids` is gone.
pub async fn mark_removed(
    tx: &TenantTx,
    message_ids: Vec<String>,
    at: DateTime<Utc>,
) -> Result<()> {
    tx.update_many::<message::Entity>()
        .col_expr(message::Column::BodyPurgedAt, Expr::value(at))
        .filter(message::Column::MessageId.is_in(message_ids))
        .exec(tx.conn())
        .await?;
    Ok(())
}

/// Deletes the organisation's ingest log lines written before `cutoff`; answers how many.
pub async fn forget_log_before(tx: &TenantTx, cutoff: DateTime<Utc>) -> Result<u64> {
    Ok(tx
        .delete_many::<log_entity::Entity>()
        .filter(log_entity::Column::CreatedAt.lt(cutoff))
        .exec(tx.conn())
        .await?
        .rows_affected)
}
