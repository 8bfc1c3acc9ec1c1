//! Notification mails: each in-app notification an event made is also mailed to its person,
//! at once or in an hourly digest, as their preferences say. The notifications handler (which
//! runs first) already decided who may hear what, so a requester never gets an internal note.
//! A requester's comment notifications on an emailed ticket are left to the conversation
//! mails, which carry the comment itself.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, sea_query::OnConflict};
use uuid::Uuid;

use super::{bounces::bouncing, entity::thread};
use crate::{
    access,
    error::Result,
    events::{Event, WriteHandler},
    identity,
    mail::{self, Outgoing},
    notify::{
        self, Notification, NotificationKind,
        preferences::{self, Delivery},
    },
    store::{Db, TenantTx},
    tenancy,
};

/// How long the first item of a digest waits for others.
const DIGEST_EVERY: Duration = Duration::hours(1);

pub(crate) mod entity {
    crate::store::tenant_entity!("notification_mails" {
        #[sea_orm(primary_key, auto_increment = false)]
        notification_id: Uuid,
        user_id: Uuid,
        digest: bool,
        created_at: DateTimeUtc,
        mailed_at: Option<DateTimeUtc>,
    });
}

pub struct NotificationMails;

#[async_trait::async_trait]
impl WriteHandler for NotificationMails {
    fn name(&self) -> &'static str {
        "notification mails"
    }

    fn concerns(&self, event: &Event) -> bool {
        notify::concerns_people(event)
    }

    /// A fixed number of statements for the organisation's events.
    async fn write(&self, tx: &TenantTx, events: &[&Event]) -> Result<()> {
        mail_all(tx, events).await
    }
}

/// The mails of the notifications one organisation's events made, in its transaction `tx`:
/// each lookup, the mail records and the queued mails are one statement for all the events.
async fn mail_all(tx: &TenantTx, events: &[&Event]) -> Result<()> {
    let made = notify::of_events(tx, events.iter().map(|e| e.id).collect()).await?;
    if made.is_empty() {
        return Ok(());
    }
    let ticket_ids: BTreeSet<Uuid> = made.iter().filter_map(|(_, n)| n.ticket_id).collect();
    let emailed_tickets: HashSet<Uuid> = tx
        .find::<thread::Entity>()
        .filter(thread::Column::TicketId.is_in(ticket_ids))
        .all(tx.conn())
        .await?
        .into_iter()
        .map(|t| t.ticket_id)
        .collect();
    let people: Vec<Uuid> = made
        .iter()
        .map(|(u, _)| *u)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let users = identity::users_by_ids(tx.conn(), people.clone()).await?;
    let requesters: HashSet<Uuid> = tenancy::active_roles(tx, &people)
        .await?
        .into_iter()
        .filter(|(_, r)| access::sees_only_own_tickets(*r))
        .map(|(u, _)| u)
        .collect();
    let deliveries = preferences::deliveries_of(tx, &people).await?;
    let addresses: Vec<String> = users.iter().map(|u| u.email.clone()).collect();
    let bounced = bouncing(tx, &addresses).await?;
    let org = tenancy::organization(tx).await?;
    let mut records = Vec::new();
    let mut mails = HashMap::new();
    for (user_id, n) in made {
        let on_emailed_ticket = n.ticket_id.is_some_and(|t| emailed_tickets.contains(&t));
        if requesters.contains(&user_id) && on_emailed_ticket && n.kind == NotificationKind::Comment
        {
            continue;
        }
        let delivery = deliveries
            .iter()
            .find(|(u, k, _)| *u == user_id && *k == n.kind)
            .map_or(Delivery::Immediately, |(_, _, d)| *d);
        if delivery == Delivery::Off {
            continue;
        }
        let Some(user) = users.iter().find(|u| u.id == user_id) else {
            continue;
        };
        let digest = delivery == Delivery::HourlyDigest;
        records.push(entity::ActiveModel {
            org_id: Set(tx.org_id()),
            notification_id: Set(n.id),
            user_id: Set(user_id),
            digest: Set(digest),
            created_at: Set(n.created_at),
            mailed_at: Set((!digest).then(Utc::now)),
        });
        if digest || bounced.contains(&user.email) {
            continue;
        }
        mails.insert(
            n.id,
            Outgoing {
                kind: mail::Kind::Notification,
                to: user.email.clone(),
                to_user_id: Some(user_id),
                params: serde_json::json!({
                    "title": n.title,
                    "body": n.body,
                    "path": link(&n),
                    "organization": org.name,
                }),
                automatic: true,
                thread: None,
            },
        );
    }
    if records.is_empty() {
        return Ok(());
    }
    // A notification is mailed once: only the records this run created come back.
    let fresh = entity::Entity::insert_many(records)
        .on_conflict(
            OnConflict::columns([entity::Column::OrgId, entity::Column::NotificationId])
                .do_nothing()
                .to_owned(),
        )
        .exec_with_returning(tx.conn())
        .await?;
    let due = fresh
        .into_iter()
        .filter_map(|r| mails.remove(&r.notification_id))
        .collect();
    mail::enqueue_all(tx, due).await
}

fn link(n: &Notification) -> String {
    match (n.ticket_id, n.kind) {
        (Some(id), _) => format!("/tickets/{id}"),
        (None, NotificationKind::WebhookDisabled) => "/admin/webhooks".into(),
        (None, _) => "/notifications".into(),
    }
}

/// Mails every digest that is due at `now`: one per person and organisation whose oldest
/// waiting item is an hour old. Returns how many digests it queued.
pub async fn send_digests(db: &Db, now: DateTime<Utc>) -> Result<usize> {
    let waiting = {
        let tx = db.maintenance().await?;
        let rows = entity::Entity::find()
            .filter(entity::Column::Digest.eq(true))
            .filter(entity::Column::MailedAt.is_null())
            .filter(entity::Column::CreatedAt.lte(now - DIGEST_EVERY))
            .all(tx.conn())
            .await?;
        tx.commit().await?;
        rows
    };
    let mut people: Vec<(Uuid, Uuid)> = waiting.iter().map(|r| (r.org_id, r.user_id)).collect();
    people.sort();
    people.dedup();
    let mut sent = 0;
    for (org_id, user_id) in people {
        let tx = db.write_org(org_id).await?;
        if digest_for(&tx, user_id).await? {
            sent += 1;
        }
        tx.commit().await?;
    }
    Ok(sent)
}

/// Queues one person's digest of everything waiting for them; false if nothing was.
async fn digest_for(tx: &TenantTx, user_id: Uuid) -> Result<bool> {
    let items = tx
        .find::<entity::Entity>()
        .filter(entity::Column::UserId.eq(user_id))
        .filter(entity::Column::Digest.eq(true))
        .filter(entity::Column::MailedAt.is_null())
        .all(tx.conn())
        .await?;
    if items.is_empty() {
        return Ok(false);
    }
    let ids: Vec<Uuid> = items.iter().map(|i| i.notification_id).collect();
    tx.update_many::<entity::Entity>()
        .col_expr(
            entity::Column::MailedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(entity::Column::NotificationId.is_in(ids.clone()))
        .exec(tx.conn())
        .await?;
    let notes = notify::by_ids(tx, ids).await?;
    let Some(user) = identity::users_by_ids(tx.conn(), vec![user_id])
        .await?
        .pop()
    else {
        return Ok(false);
    };
    if notes.is_empty()
        || !bouncing(tx, std::slice::from_ref(&user.email))
            .await?
            .is_empty()
    {
        return Ok(false);
    }
    let org = tenancy::organization(tx).await?;
    let items: Vec<serde_json::Value> = notes
        .iter()
        .map(|n| serde_json::json!({"title": n.title, "body": n.body, "path": link(n)}))
        .collect();
    mail::enqueue(
        tx,
        Outgoing {
            kind: mail::Kind::Digest,
            to: user.email,
            to_user_id: Some(user_id),
            params: serde_json::json!({"items": items, "organization": org.name}),
            automatic: true,
            thread: None,
        },
    )
    .await?;
    Ok(true)
}
