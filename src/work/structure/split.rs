//! Splitting a ticket: chosen comments (and their files) move into a new ticket of the same
//! project and requester, linked to the old one as `relates`.

use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::links::{self, LinkType};
use crate::{
    access::{self, Action, TenantCtx},
    error::{Error, Result, Validator},
    store::TenantTx,
    work::{
        Expected, attachments, comments, now,
        tickets::{self, NewTicket, Ticket},
        timeline,
    },
};

/// At most this many comments move in one split.
pub const MAX_COMMENTS: usize = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitRequest {
    /// Comments of this ticket that move to the new one (1 to 100).
    #[schema(min_items = 1, max_items = 100)]
    pub comment_ids: Vec<Uuid>,
    /// The new ticket's title.
    #[schema(schema_with = crate::text::line_schema)]
    pub title: String,
}

/// `POST /tickets/{id}/split`: returns the new ticket.
pub async fn split(
    tx: &TenantTx,
    ctx: &TenantCtx,
    ticket: &str,
    req: SplitRequest,
) -> Result<Ticket> {
    access::authorize(ctx, Action::TicketUpdate)?;
    access::authorize(ctx, Action::TicketCreate)?;
    let mut v = Validator::default();
    v.check(
        !req.comment_ids.is_empty(),
        "comment_ids",
        "name at least one comment",
    );
    v.check(
        req.comment_ids.len() <= MAX_COMMENTS,
        "comment_ids",
        &format!("at most {MAX_COMMENTS} comments"),
    );
    v.finish()?;
    let source = tickets::lock(tx, ctx, ticket, &Expected::Any, Action::TicketUpdate).await?;
    if source.merged_into_id.is_some() {
        return Err(Error::conflict(
            "ticket_merged",
            format!("{} is merged into another ticket", source.key),
        ));
    }
    let on_ticket = comments::ids_on(tx, source.id, Some(&req.comment_ids)).await?;
    let mut v = Validator::default();
    for (i, id) in req.comment_ids.iter().enumerate() {
        v.check(
            on_ticket.contains(id),
            &format!("comment_ids[{i}]"),
            "is not a comment of this ticket",
        );
    }
    v.finish()?;
    let new = tickets::create(
        tx,
        ctx,
        NewTicket {
            project_id: source.project_id,
            title: req.title,
            description: None,
            priority: Some(source.priority),
            assignee_ids: Vec::new(),
            requester_id: source.requester_id,
            labels: Vec::new(),
            due_at: None,
            parent_id: None,
        },
    )
    .await?;
    let attachment_ids = attachments::ids_on(tx, source.id, Some(&on_ticket)).await?;
    comments::move_to(tx, &on_ticket, new.id).await?;
    attachments::move_to(tx, &attachment_ids, new.id).await?;
    let at = now();
    tickets::touch(tx, source.id, at).await?;
    timeline::record(
        tx,
        ctx,
        timeline::Entry {
            project_id: source.project_id,
            ticket_id: Some(source.id),
            kind: "ticket.split",
            internal: false,
            version: None,
            changes: json!({"split": {"from": null, "to": {
                "ticket_id": new.id, "key": new.key, "comment_ids": on_ticket,
            }}}),
            at,
        },
    )
    .await?;
    links::link_by(tx, ctx, &new, &source, LinkType::Relates).await?;
    tickets::load(tx, new.id).await
}
