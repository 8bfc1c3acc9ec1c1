//! Who takes part in a ticket's mail conversation (besides its requester): the addresses that
//! receive agents' public answers. Mail adds people only when it is authenticated, and at most
//! [`MAX_NEW_PARTICIPANTS`](super::MAX_NEW_PARTICIPANTS) from one mail; the addresses it
//! copied in beyond that are held on the message, and an agent adds them with one click (or
//! removes someone who should not hear more).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::entity::{message, thread};
use crate::{
    access::{self, Action, TenantCtx},
    audit,
    error::{Error, Result},
    store::{Db, TenantTx},
    work::tickets,
};

/// A ticket's mail conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailConversation {
    /// Who receives agents' public answers besides the requester.
    pub participants: Vec<String>,
    /// Addresses mails copied in that were not added, newest first.
    pub held: Vec<HeldAddress>,
}

/// An address a mail copied in that waits for an agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeldAddress {
    pub address: String,
    /// The comment the mail made (none: it opened the ticket).
    pub comment_id: Option<Uuid>,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddParticipant {
    /// One of the ticket's held addresses.
    #[schema(format = "email", min_length = 3, max_length = 254)]
    pub address: String,
}

fn addresses(json: Option<&serde_json::Value>) -> Vec<String> {
    json.and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

async fn read(tx: &TenantTx, ticket_id: Uuid) -> Result<MailConversation> {
    let participants = tx
        .find::<thread::Entity>()
        .filter(thread::Column::TicketId.eq(ticket_id))
        .one(tx.conn())
        .await?
        .map(|t| addresses(Some(&t.participants)))
        .unwrap_or_default();
    let messages = tx
        .find::<message::Entity>()
        .filter(message::Column::TicketId.eq(ticket_id))
        .filter(message::Column::HeldParticipants.is_not_null())
        .order_by_desc(message::Column::CreatedAt)
        .all(tx.conn())
        .await?;
    let mut held: Vec<HeldAddress> = Vec::new();
    for m in messages {
        for address in addresses(m.held_participants.as_ref()) {
            if !participants.contains(&address) && !held.iter().any(|h| h.address == address) {
                held.push(HeldAddress {
                    address,
                    comment_id: m.comment_id,
                    received_at: m.created_at,
                });
            }
        }
    }
    Ok(MailConversation { participants, held })
}

/// The ticket's mail conversation (staff who may change the ticket).
pub async fn get(db: &Db, ctx: &TenantCtx, ticket: &str) -> Result<MailConversation> {
    access::authorize(ctx, Action::TicketUpdate)?;
    let tx = db.read(ctx).await?;
    let t = tickets::find_for(&tx, ctx, ticket, Action::TicketUpdate).await?;
    let conversation = read(&tx, t.id).await?;
    tx.commit().await?;
    Ok(conversation)
}

/// Adds one of the ticket's held addresses to its conversation.
pub async fn add(
    db: &Db,
    ctx: &TenantCtx,
    ticket: &str,
    req: AddParticipant,
) -> Result<MailConversation> {
    access::authorize(ctx, Action::TicketUpdate)?;
    let address = req.address.trim().to_lowercase();
    let tx = db.write(ctx).await?;
    let t = tickets::find_for(&tx, ctx, ticket, Action::TicketUpdate).await?;
    let mut now = read(&tx, t.id).await?;
    if !now.held.iter().any(|h| h.address == address) {
        return Err(Error::invalid(
            "address",
            "is not an address a mail of this ticket copied in",
        ));
    }
    now.participants.push(address.clone());
    change(
        &tx,
        ctx,
        t.id,
        &now.participants,
        "mail_participant.added",
        &address,
    )
    .await?;
    let conversation = read(&tx, t.id).await?;
    tx.commit().await?;
    Ok(conversation)
}

/// Takes someone out of the ticket's conversation: they hear no more of it by mail.
pub async fn remove(
    db: &Db,
    ctx: &TenantCtx,
    ticket: &str,
    address: &str,
) -> Result<MailConversation> {
    access::authorize(ctx, Action::TicketUpdate)?;
    let address = address.trim().to_lowercase();
    let tx = db.write(ctx).await?;
    let t = tickets::find_for(&tx, ctx, ticket, Action::TicketUpdate).await?;
    let mut now = read(&tx, t.id).await?;
    let before = now.participants.len();
    now.participants.retain(|a| *a != address);
    if now.participants.len() == before {
        return Err(Error::NotFound("participant"));
    }
    change(
        &tx,
        ctx,
        t.id,
        &now.participants,
        "mail_participant.removed",
        &address,
    )
    .await?;
    let conversation = read(&tx, t.id).await?;
    tx.commit().await?;
    Ok(conversation)
}

async fn change(
    tx: &TenantTx,
    ctx: &TenantCtx,
    ticket_id: Uuid,
    people: &[String],
    action: &str,
    address: &str,
) -> Result<()> {
    // Held addresses come from the ticket's mails, so its thread row exists.
    tx.update_many::<thread::Entity>()
        .col_expr(
            thread::Column::Participants,
            sea_orm::sea_query::Expr::value(serde_json::json!(people)),
        )
        .filter(thread::Column::TicketId.eq(ticket_id))
        .exec(tx.conn())
        .await?;
    audit::record(
        tx,
        Some(ctx.user_id),
        action,
        "ticket",
        Some(ticket_id),
        serde_json::json!({"address": address}),
    )
    .await
}
