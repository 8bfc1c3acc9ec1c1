//! In-app notifications: who hears about a ticket event, and each person's inbox.
//!
//! Rules (the handler applies them to every outbox event):
//! - assigned / unassigned: the people added to or removed from a ticket (creation included);
//! - a status change or a new comment: the ticket's assignees, requester and watchers;
//! - a mention (`@email` of a member in a comment) notifies that member, instead of the
//!   plain comment notification;
//! - nobody hears of their own action, requesters never hear of internal notes (nor of
//!   tickets other than their own), and a deleted ticket notifies nobody.
//!
//! Each notification is keyed by (event, person): an event handled twice notifies once.

pub mod preferences;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    sea_query::OnConflict,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    access::{self, Role, TenantCtx, project::walled_role},
    error::{Error, Result},
    events::{
        Body, Event, WriteHandler,
        contract::{Followers, WebhookDisabled},
        stream,
    },
    identity,
    pagination::{Page, PageRequest},
    store::{Db, TenantTx},
    tenancy,
    work::{
        projects,
        tickets::{self, Summary},
    },
};

mod entity {
    crate::store::tenant_entity!("notifications" {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        user_id: Uuid,
        event_id: Uuid,
        kind: String,
        ticket_id: Option<Uuid>,
        actor_id: Option<Uuid>,
        title: String,
        #[sea_orm(column_type = "Text", nullable)]
        body: Option<String>,
        read_at: Option<DateTimeUtc>,
        created_at: DateTimeUtc,
    });
}

/// Longest comment excerpt a notification carries.
const EXCERPT: usize = 280;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    Assigned,
    Unassigned,
    Comment,
    Mentioned,
    StatusChanged,
    /// To admins: Docket stopped delivering to one of the organisation's webhooks.
    WebhookDisabled,
    /// To the assignees and managers: an SLA clock of a ticket passed its warning threshold.
    SlaWarning,
    /// To the assignees and managers: an SLA clock of a ticket passed its due time.
    SlaBreached,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 8] = [
        NotificationKind::Assigned,
        NotificationKind::Unassigned,
        NotificationKind::Comment,
        NotificationKind::Mentioned,
        NotificationKind::StatusChanged,
        NotificationKind::WebhookDisabled,
        NotificationKind::SlaWarning,
        NotificationKind::SlaBreached,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Assigned => "assigned",
            NotificationKind::Unassigned => "unassigned",
            NotificationKind::Comment => "comment",
            NotificationKind::Mentioned => "mentioned",
            NotificationKind::StatusChanged => "status_changed",
            NotificationKind::WebhookDisabled => "webhook_disabled",
            NotificationKind::SlaWarning => "sla_warning",
            NotificationKind::SlaBreached => "sla_breached",
        }
    }

    /// Whether people of `role` can get this kind at all (news of webhooks goes to admins).
    pub fn reaches(self, role: Role) -> bool {
        match self {
            NotificationKind::WebhookDisabled => {
                access::allowed(role, access::Action::WebhooksManage)
            }
            NotificationKind::SlaWarning | NotificationKind::SlaBreached => {
                access::allowed(role, access::Action::SlaRead)
            }
            _ => true,
        }
    }

    fn parse(stored: &str) -> Result<Self> {
        NotificationKind::ALL
            .into_iter()
            .find(|k| k.as_str() == stored)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("notification kind {stored:?}")))
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Notification {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: NotificationKind,
    pub ticket_id: Option<Uuid>,
    /// Who caused it.
    pub actor_id: Option<Uuid>,
    pub title: String,
    /// A comment excerpt, when there is one.
    pub body: Option<String>,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<entity::Model> for Notification {
    type Error = Error;
    fn try_from(m: entity::Model) -> Result<Self> {
        Ok(Self {
            id: m.id,
            kind: NotificationKind::parse(&m.kind)?,
            ticket_id: m.ticket_id,
            actor_id: m.actor_id,
            title: m.title,
            body: m.body,
            read_at: m.read_at,
            created_at: m.created_at,
        })
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationFilter {
    /// Only notifications not yet read.
    pub unread: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadCount {
    pub count: u64,
}

/// One planned notification.
struct Planned {
    user_id: Uuid,
    kind: NotificationKind,
    title: String,
    body: Option<String>,
}

/// The notifications handler: works out who hears about an event and stores their
/// notifications (and their stream entries) in one transaction.
pub struct Notifier;

#[async_trait::async_trait]
impl WriteHandler for Notifier {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn concerns(&self, event: &Event) -> bool {
        concerns_people(event)
    }

    /// A fixed number of statements for the organisation's events.
    async fn write(&self, tx: &TenantTx, events: &[&Event]) -> Result<()> {
        notify_all(tx, events).await
    }
}

/// Whether anyone may hear of the event (what notifications, and so their mails, are made of).
pub(crate) fn concerns_people(event: &Event) -> bool {
    match event.body {
        Body::WebhookDisabled(_) => true,
        Body::TicketAssigned(_)
        | Body::TicketStatusChanged(_)
        | Body::CommentCreated(_)
        | Body::SlaWarning(_)
        | Body::SlaBreached(_) => event.ticket_id().is_some(),
        _ => false,
    }
}

/// The notifications of one organisation's events, in its transaction `tx`. The tickets, the
/// people's roles, the insert and the stream publish are each one statement for all the
/// events; only mentions and SLA alerts look up their people on their own.
async fn notify_all(tx: &TenantTx, events: &[&Event]) -> Result<()> {
    let ticket_ids = events.iter().filter_map(|e| e.ticket_id()).collect();
    let tickets = tickets::summaries(tx, ticket_ids).await?;
    let mut planned: Vec<(&Event, Option<Uuid>, Vec<Planned>)> = Vec::new();
    for &event in events {
        if let Body::WebhookDisabled(w) = &event.body {
            planned.push((event, None, tell_admins(tx, w).await?));
            continue;
        }
        let Some(ticket_id) = event.ticket_id() else {
            continue;
        };
        let Some(ticket) = tickets.get(&ticket_id).filter(|t| !t.deleted) else {
            continue;
        };
        planned.push((event, Some(ticket_id), plan(tx, &event.body, ticket).await?));
    }
    let people: BTreeSet<Uuid> = planned
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|p| p.user_id))
        .collect();
    if people.is_empty() {
        return Ok(());
    }
    let people: Vec<Uuid> = people.into_iter().collect();
    let roles: BTreeMap<Uuid, Role> = tenancy::active_roles(tx, &people)
        .await?
        .into_iter()
        .collect();
    let projects: Vec<Uuid> = planned
        .iter()
        .filter_map(|(event, _, _)| event.body.project_id())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let private = projects::private_members(tx, &projects).await?;
    let rows = planned
        .into_iter()
        .flat_map(|(event, ticket_id, planned)| {
            reachable(event, planned, &roles, &private)
                .into_iter()
                .map(move |p| row(event, ticket_id, p))
        })
        .collect();
    store(tx, rows).await
}

/// A webhook was disabled: every admin and owner hears of it.
async fn tell_admins(tx: &TenantTx, w: &WebhookDisabled) -> Result<Vec<Planned>> {
    Ok(tenancy::active_admins(tx)
        .await?
        .into_iter()
        .map(|user_id| Planned {
            user_id,
            kind: NotificationKind::WebhookDisabled,
            title: format!("Webhook deliveries to {} stopped", w.host),
            body: Some(w.reason.clone()),
        })
        .collect())
}

/// The stored notification of a planned one.
fn row(event: &Event, ticket_id: Option<Uuid>, p: Planned) -> entity::Model {
    entity::Model {
        org_id: event.org_id(),
        id: Uuid::now_v7(),
        user_id: p.user_id,
        event_id: event.id,
        kind: p.kind.as_str().to_owned(),
        ticket_id,
        actor_id: event.actor_id(),
        title: p.title,
        body: p.body,
        read_at: None,
        created_at: event.created_at,
    }
}

/// Inserts the notifications (once per event and person) and publishes the new ones on their
/// people's streams: one statement each, however many.
async fn store(tx: &TenantTx, rows: Vec<entity::Model>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    // Only the ones this run created come back (a rerun of a handled event finds them all).
    let created =
        entity::Entity::insert_many(rows.into_iter().map(Into::<entity::ActiveModel>::into))
            .on_conflict(
                OnConflict::columns([
                    entity::Column::OrgId,
                    entity::Column::EventId,
                    entity::Column::UserId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_with_returning(tx.conn())
            .await?;
    if created.is_empty() {
        return Ok(());
    }
    let entries = created
        .into_iter()
        .map(|m| {
            let user_id = m.user_id;
            let id = m.id;
            let ticket_id = m.ticket_id;
            let at = m.created_at;
            Notification::try_from(m).map(|n| stream::Entry {
                source: format!("notification:{id}"),
                kind: "notification.created".into(),
                ticket_id,
                project_id: None,
                requester_id: None,
                user_id: Some(user_id),
                internal: false,
                data: serde_json::to_value(n).unwrap_or_default(),
                at,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // Notifications this run created: none of them can be on a stream yet.
    stream::publish(tx, entries, stream::Entries::New).await?;
    Ok(())
}

/// Who should hear of the event and what they are told, before access checks. The event
/// names who followed the ticket when it happened.
async fn plan(tx: &TenantTx, body: &Body, t: &Summary) -> Result<Vec<Planned>> {
    let name = format!("{}: {}", t.key, t.title);
    let mut planned: BTreeMap<Uuid, Planned> = BTreeMap::new();
    let mut add = |user_id: Uuid, kind, title: String, body: Option<String>| {
        // The first reason wins: a mention is stronger than being a watcher.
        planned.entry(user_id).or_insert(Planned {
            user_id,
            kind,
            title,
            body,
        });
    };
    match body {
        Body::TicketAssigned(a) => {
            for &user in &a.added {
                add(
                    user,
                    NotificationKind::Assigned,
                    format!("You were assigned {name}"),
                    None,
                );
            }
            for &user in &a.removed {
                add(
                    user,
                    NotificationKind::Unassigned,
                    format!("You were unassigned from {name}"),
                    None,
                );
            }
        }
        Body::TicketStatusChanged(s) => {
            let (from, to) = (&s.from, &s.to);
            for user in followers(&s.followers, s.ticket.requester_id) {
                add(
                    user,
                    NotificationKind::StatusChanged,
                    format!("{name} moved from {from} to {to}"),
                    None,
                );
            }
        }
        Body::CommentCreated(c) => {
            let text = c.comment.body.as_str();
            let excerpt = Some(excerpt(text));
            let emails = mentions(text);
            if !emails.is_empty() {
                for user in identity::user_ids_by_emails(tx.conn(), emails).await? {
                    add(
                        user,
                        NotificationKind::Mentioned,
                        format!("You were mentioned on {name}"),
                        excerpt.clone(),
                    );
                }
            }
            for user in followers(&c.followers, c.comment.requester_id) {
                add(
                    user,
                    NotificationKind::Comment,
                    format!("New comment on {name}"),
                    excerpt.clone(),
                );
            }
        }
        Body::SlaWarning(a) | Body::SlaBreached(a) => {
            let clock = a.clock.replace('_', " ");
            let (kind, title) = if matches!(body, Body::SlaBreached(_)) {
                (
                    NotificationKind::SlaBreached,
                    format!(
                        "SLA breached: {clock} on {name} was due {}",
                        a.due_at.format("%Y-%m-%d %H:%M UTC")
                    ),
                )
            } else {
                (
                    NotificationKind::SlaWarning,
                    format!(
                        "SLA warning: {clock} on {name} is due {}",
                        a.due_at.format("%Y-%m-%d %H:%M UTC")
                    ),
                )
            };
            // The managers always; an escalation rule may name another role.
            let mut roles = vec![Role::Manager];
            roles.extend(a.notify_role.as_deref().and_then(Role::parse));
            let told = tenancy::active_with_roles(tx, &roles).await?;
            for user in a.assignee_ids.iter().copied().chain(told) {
                add(user, kind, title.clone(), None);
            }
        }
        _ => {}
    }
    Ok(planned.into_values().collect())
}

/// Assignees, requester and watchers of the event's ticket when it happened.
fn followers(f: &Followers, requester: Option<Uuid>) -> Vec<Uuid> {
    let mut all = f.assignee_ids.clone();
    all.extend(requester);
    all.extend(&f.watcher_ids);
    all
}

/// Drops the actor, people who are no longer active members (absent from `roles`), and anyone
/// who may not see what the notification would tell them (`private`: the members of the
/// private projects among the events').
fn reachable(
    event: &Event,
    planned: Vec<Planned>,
    roles: &BTreeMap<Uuid, Role>,
    private: &HashMap<Uuid, HashSet<Uuid>>,
) -> Vec<Planned> {
    let requester = event.body.requester_id();
    let internal = event.body.internal();
    let members = event.body.project_id().and_then(|p| private.get(&p));
    planned
        .into_iter()
        .filter(|p| Some(p.user_id) != event.actor_id())
        .filter(|p| match roles.get(&p.user_id) {
            None => false,
            Some(&role)
                if walled_role(role) && members.is_some_and(|m| !m.contains(&p.user_id)) =>
            {
                false
            }
            Some(&role) if access::sees_only_own_tickets(role) => {
                requester == Some(p.user_id) && !internal
            }
            Some(&role) => !internal || access::sees_internal_notes(role),
        })
        .collect()
}

fn excerpt(body: &str) -> String {
    match body.char_indices().nth(EXCERPT) {
        Some((end, _)) => format!("{}…", &body[..end]),
        None => body.to_owned(),
    }
}

/// The addresses mentioned as `@alice@example.com` (lower-cased, each once). A mention starts
/// a word; punctuation that ends a sentence or closes a bracket is not part of it.
fn mentions(body: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for word in body.split(|c: char| c.is_whitespace() || "([{<,;\"'".contains(c)) {
        let Some(rest) = word.strip_prefix('@') else {
            continue;
        };
        let email = rest
            .trim_end_matches(|c: char| ".,;:!?)]}>\"'".contains(c))
            .to_lowercase();
        let well_formed = matches!(email.split_once('@'),
            Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.contains('@'));
        if well_formed && email.len() <= 254 && !found.contains(&email) {
            found.push(email);
        }
    }
    found
}

/// The notifications these events made, with their people (for the mail handler, which runs
/// after this one), in the organisation's tenant transaction.
pub(crate) async fn of_events(
    tx: &TenantTx,
    event_ids: Vec<Uuid>,
) -> Result<Vec<(Uuid, Notification)>> {
    tx.find::<entity::Entity>()
        .filter(entity::Column::EventId.is_in(event_ids))
        .order_by_asc(entity::Column::Id)
        .all(tx.conn())
        .await?
        .into_iter()
        .map(|m| {
            let user = m.user_id;
            Notification::try_from(m).map(|n| (user, n))
        })
        .collect()
}

/// Notifications by id, oldest first (for digests).
pub(crate) async fn by_ids(tx: &TenantTx, ids: Vec<Uuid>) -> Result<Vec<Notification>> {
    tx.find::<entity::Entity>()
        .filter(entity::Column::Id.is_in(ids))
        .order_by_asc(entity::Column::Id)
        .all(tx.conn())
        .await?
        .into_iter()
        .map(Notification::try_from)
        .collect()
}

/// An erased person's traces in the inbox: their own notifications go, and others' about what
/// they did name the tombstone instead of them.
pub(crate) async fn scrub(
    tx: &TenantTx,
    user_id: Uuid,
    traces: &crate::text::Traces,
) -> Result<u64> {
    let mine = tx
        .delete_many::<entity::Entity>()
        .filter(entity::Column::UserId.eq(user_id))
        .exec(tx.conn())
        .await?;
    let theirs = tx
        .find::<entity::Entity>()
        .filter(entity::Column::ActorId.eq(user_id))
        .all(tx.conn())
        .await?;
    let mut changed = mine.rows_affected;
    for n in theirs {
        let title = traces.scrub(&n.title);
        let body = n.body.as_deref().and_then(|b| traces.scrub(b));
        if title.is_none() && body.is_none() {
            continue;
        }
        tx.update_many::<entity::Entity>()
            .col_expr(entity::Column::Title, title.unwrap_or(n.title).into())
            .col_expr(entity::Column::Body, body.or(n.body).into())
            .filter(entity::Column::Id.eq(n.id))
            .exec(tx.conn())
            .await?;
        changed += 1;
    }
    Ok(changed)
}

/// Drops the comment excerpts of notifications written before `cutoff` (they may quote mail
/// whose text retention removes); answers how many.
pub(crate) async fn forget_excerpts_before(
    tx: &TenantTx,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<u64> {
    Ok(tx
        .update_many::<entity::Entity>()
        .col_expr(
            entity::Column::Body,
            sea_orm::sea_query::Expr::value(Option::<String>::None),
        )
        .filter(entity::Column::CreatedAt.lt(cutoff))
        .filter(entity::Column::Body.is_not_null())
        .exec(tx.conn())
        .await?
        .rows_affected)
}

/// The caller's notifications, newest first.
pub async fn list(
    db: &Db,
    ctx: &TenantCtx,
    filter: NotificationFilter,
    page: PageRequest,
) -> Result<Page<Notification>> {
    let tx = db.read(ctx).await?;
    let mut query = tx
        .newest_first::<entity::Entity>(entity::Column::Id, &page)?
        .filter(entity::Column::UserId.eq(ctx.user_id));
    if filter.unread == Some(true) {
        query = query.filter(entity::Column::ReadAt.is_null());
    }
    if filter.unread == Some(false) {
        query = query.filter(entity::Column::ReadAt.is_not_null());
    }
    let rows = query.all(tx.conn()).await?;
    tx.commit().await?;
    Page::try_from_rows(rows, page.limit, |m| m.id, Notification::try_from)
}

pub async fn unread_count(db: &Db, ctx: &TenantCtx) -> Result<UnreadCount> {
    let tx = db.read(ctx).await?;
    let count = tx
        .find::<entity::Entity>()
        .filter(entity::Column::UserId.eq(ctx.user_id))
        .filter(entity::Column::ReadAt.is_null())
        .count(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(UnreadCount { count })
}

/// Marks one of the caller's notifications read (again: keeps the first time).
pub async fn mark_read(db: &Db, ctx: &TenantCtx, id: Uuid) -> Result<Notification> {
    let tx = db.write(ctx).await?;
    let mine = || {
        tx.find::<entity::Entity>()
            .filter(entity::Column::UserId.eq(ctx.user_id))
            .filter(entity::Column::Id.eq(id))
    };
    let m = mine()
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("notification"))?;
    let m = if m.read_at.is_none() {
        let mut am: entity::ActiveModel = m.into();
        am.read_at = Set(Some(crate::work::now()));
        sea_orm::ActiveModelTrait::update(am, tx.conn()).await?
    } else {
        m
    };
    tx.commit().await?;
    Notification::try_from(m)
}

/// Marks all the caller's notifications read; returns how many were unread.
pub async fn mark_all_read(db: &Db, ctx: &TenantCtx) -> Result<UnreadCount> {
    let tx = db.write(ctx).await?;
    let res = tx
        .update_many::<entity::Entity>()
        .col_expr(
            entity::Column::ReadAt,
            sea_orm::sea_query::Expr::value(crate::work::now()),
        )
        .filter(entity::Column::UserId.eq(ctx.user_id))
        .filter(entity::Column::ReadAt.is_null())
        .exec(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(UnreadCount {
        count: res.rows_affected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_whole_addresses_after_an_at_sign() {
        assert_eq!(
            mentions("Hi @Alice@Example.com, see (@bob@example.org). Thanks @alice@example.com!"),
            vec!["alice@example.com", "bob@example.org"]
        );
        assert!(mentions("mail alice@example.com or @bob or @@x.y or @c@d").is_empty());
        assert_eq!(mentions("@a@b.co\n@a@b.co"), vec!["a@b.co"]);
    }

    #[test]
    fn excerpts_cut_on_characters() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(EXCERPT + 5);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT + 1);
        assert!(cut.ends_with('…'));
    }
}
