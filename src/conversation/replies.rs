//! Mails an agent's public comment on an emailed ticket to its requester and the mail's other
//! participants, continuing the customer's thread: subject `[KEY-N] <title>`, a message id of
//! Docket's own carrying the signed ticket reference, `In-Reply-To`/`References` from the
//! thread. Internal notes never leave; comments that themselves came in by mail, and the
//! customer's own comments, are not mailed back.

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, sea_query::OnConflict};
use uuid::Uuid;

use super::{
    Mailroom,
    bounces::bouncing,
    entity::{message, thread},
};
use crate::{
    access,
    error::Result,
    events::{Body, Event, Handler},
    identity,
    mail::{self, Outgoing, Thread},
    store::Db,
    tenancy,
    work::tickets,
};

pub struct Replies(pub Mailroom);

#[async_trait::async_trait]
impl Handler for Replies {
    fn name(&self) -> &'static str {
        "mail replies"
    }

    async fn handle(&self, db: &Db, event: &Event) -> Result<()> {
        let Body::CommentCreated(created) = &event.body else {
            return Ok(());
        };
        let c = &created.comment;
        if c.internal {
            return Ok(());
        }
        let mailroom = &self.0;
        // Most tickets never came by mail: find that out without taking a write lock.
        let emailed = {
            let tx = db.read_org(event.org_id()).await?;
            let found = tx
                .find::<thread::Entity>()
                .filter(thread::Column::TicketId.eq(c.ticket_id))
                .one(tx.conn())
                .await?
                .is_some();
            tx.commit().await?;
            found
        };
        if !emailed {
            return Ok(());
        }
        let tx = db.write_org(event.org_id()).await?;
        let Some(th) = tx
            .find::<thread::Entity>()
            .filter(thread::Column::TicketId.eq(c.ticket_id))
            .one(tx.conn())
            .await?
        else {
            return Ok(());
        };
        let came_by_mail = tx
            .find::<message::Entity>()
            .filter(message::Column::CommentId.eq(c.comment_id))
            .one(tx.conn())
            .await?
            .is_some();
        let author_is_staff = tenancy::active_role(&tx, c.author_id)
            .await?
            .is_some_and(|r| !access::sees_only_own_tickets(r));
        let Some(ticket) = tickets::summary(&tx, c.ticket_id).await? else {
            return Ok(());
        };
        if came_by_mail || !author_is_staff || ticket.deleted {
            return Ok(());
        }
        // Deterministic per comment: handling the event twice queues nothing twice.
        let message_id = mailroom.message_id(event.org_id(), c.ticket_id, c.comment_id);
        let fresh = message::Entity::insert(message::ActiveModel {
            org_id: Set(event.org_id()),
            message_id: Set(message_id.clone()),
            ticket_id: Set(Some(c.ticket_id)),
            comment_id: Set(Some(c.comment_id)),
            direction: Set("outbound".into()),
            created_at: Set(event.created_at),
            held_participants: Set(None),
            body_purged_at: Set(None),
        })
        .on_conflict(
            OnConflict::columns([message::Column::OrgId, message::Column::MessageId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(tx.conn())
        .await?;
        if fresh == 0 {
            return Ok(());
        }
        let people = identity::users_by_ids(
            tx.conn(),
            ticket
                .requester_id
                .into_iter()
                .chain([c.author_id])
                .collect(),
        )
        .await?;
        let email_of = |id: Uuid| people.iter().find(|u| u.id == id).map(|u| u.email.clone());
        let author_email = email_of(c.author_id);
        let mut recipients: Vec<(String, Option<Uuid>)> = Vec::new();
        if let Some(requester) = ticket.requester_id
            && let Some(email) = email_of(requester)
        {
            recipients.push((email, Some(requester)));
        }
        let participants: Vec<String> =
            serde_json::from_value(th.participants.clone()).unwrap_or_default();
        recipients.extend(participants.into_iter().map(|a| (a, None)));
        recipients.retain(|(a, _)| Some(a) != author_email.as_ref());
        recipients.dedup_by(|a, b| a.0 == b.0);
        let addresses: Vec<String> = recipients.iter().map(|(a, _)| a.clone()).collect();
        let bounced = bouncing(&tx, &addresses).await?;
        recipients.retain(|(a, _)| !bounced.contains(a));

        let mut references: Vec<String> = th
            .references
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let org = tenancy::organization(&tx).await?;
        let author = people
            .iter()
            .find(|u| u.id == c.author_id)
            .map(|u| u.name.clone())
            .unwrap_or_default();
        for (to, user_id) in recipients {
            mail::enqueue(
                &tx,
                Outgoing {
                    kind: mail::Kind::TicketReply,
                    to,
                    to_user_id: user_id,
                    params: serde_json::json!({
                        "key": ticket.key,
                        "title": ticket.title,
                        "body": c.body,
                        "author": author,
                        "organization": org.name,
                    }),
                    automatic: false,
                    thread: Some(Thread {
                        message_id: message_id.clone(),
                        in_reply_to: th.last_message_id.clone(),
                        references: references.clone(),
                        reply_to: Some(mailroom.reply_address(event.org_id(), c.ticket_id)),
                    }),
                },
            )
            .await?;
        }
        references.push(message_id.clone());
        tx.update_many::<thread::Entity>()
            .col_expr(
                thread::Column::LastMessageId,
                sea_orm::sea_query::Expr::value(message_id),
            )
            .col_expr(
                thread::Column::References,
                sea_orm::sea_query::Expr::value(references.join(" ")),
            )
            .filter(thread::Column::TicketId.eq(c.ticket_id))
            .exec(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
