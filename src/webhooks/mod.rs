//! Webhooks: other systems hear what happens in an organisation.
//!
//! - An admin subscribes an endpoint (`url`, the event types it wants). Its signing secret
//!   (`whsec_…`) is shown once and kept sealed (`vault`); a rotation keeps the old secret
//!   signing beside the new one for a day.
//! - The [`Fanout`] event handler turns each committed event into one delivery per subscribed
//!   endpoint (a unique key makes a rerun harmless). The body, `{type, timestamp, data}`, is
//!   fixed then, so every retry sends and signs the same bytes under the same `webhook-id`.
//! - The sender (`deliver`) posts due deliveries on the Standard Webhooks retry schedule, a
//!   few at a time per endpoint, through the SSRF guard (`guard`), and logs every attempt.

mod deliver;
pub mod sign;

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, sea_query::OnConflict,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::outbound::{Guard, GuardedResolver};
use crate::{
    access::{self, Action, TenantCtx},
    audit,
    config::{Secret, WebhookConfig},
    error::{Error, Result, Validator},
    events::{Event, WriteHandler},
    pagination::{Page, PageRequest},
    plans,
    store::{Db, TenantTx},
    text,
    vault::Vault,
};
pub use deliver::{drain, purge_old, run};

/// The event types an endpoint may subscribe to, as one enum so the OpenAPI document (and the
/// web app's types) list them.
macro_rules! event_types {
    ($($variant:ident = $name:tt),* $(,)?) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        #[schema(as = WebhookEventType)]
        pub enum EventType {
            $(#[serde(rename = $name)] $variant),*
        }

        impl EventType {
            pub const ALL: &[EventType] = &[$(EventType::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name),*
                }
            }
        }
    };
}

event_types! {
    TicketCreated = "ticket.created",
    TicketUpdated = "ticket.updated",
    TicketAssigned = "ticket.assigned",
    TicketStatusChanged = "ticket.status_changed",
    TicketDeleted = "ticket.deleted",
    TicketRestored = "ticket.restored",
    TicketLinked = "ticket.linked",
    TicketUnlinked = "ticket.unlinked",
    TicketMerged = "ticket.merged",
    TicketUnmerged = "ticket.unmerged",
    CommentCreated = "comment.created",
    CommentUpdated = "comment.updated",
    CommentDeleted = "comment.deleted",
    AttachmentAdded = "attachment.added",
    AttachmentRemoved = "attachment.removed",
    ProjectCreated = "project.created",
    ProjectUpdated = "project.updated",
    ProjectArchived = "project.archived",
    ProjectRestored = "project.restored",
    SlaWarning = "sla.warning",
    SlaBreached = "sla.breached",
}

impl EventType {
    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.as_str() == name)
    }
}

/// The type of the deliveries `POST /webhooks/{id}/test` sends.
const TEST_EVENT: &str = "webhook.test";
/// Endpoints one organisation may have.
const MAX_PER_ORG: u64 = 20;
const MAX_URL: usize = 2000;
/// How long a rotated-out secret keeps signing beside the new one.
const ROTATION_OVERLAP: chrono::Duration = chrono::Duration::hours(24);

pub(crate) mod entity {
    pub mod webhook {
        crate::store::tenant_entity!("webhooks" {
            #[sea_orm(primary_key, auto_increment = false)]
            id: Uuid,
            #[sea_orm(column_type = "Text")]
            url: String,
            description: String,
            events: Json,
            active: bool,
            #[sea_orm(column_type = "Text")]
            secret: String,
            #[sea_orm(column_type = "Text", nullable)]
            previous_secret: Option<String>,
            previous_secret_until: Option<DateTimeUtc>,
            #[sea_orm(column_type = "Text", nullable)]
            disabled_reason: Option<String>,
            failing_since: Option<DateTimeUtc>,
            created_by: Uuid,
            created_at: DateTimeUtc,
            updated_at: DateTimeUtc,
        });
    }

    pub mod delivery {
        crate::store::tenant_entity!("webhook_deliveries" {
            #[sea_orm(primary_key, auto_increment = false)]
            id: Uuid,
            webhook_id: Uuid,
            event_id: Uuid,
            event_type: String,
            #[sea_orm(column_type = "Text")]
            payload: String,
            status: String,
            claims: i32,
            step: i32,
            next_attempt_at: DateTimeUtc,
            locked_until: Option<DateTimeUtc>,
            last_status: Option<i32>,
            #[sea_orm(column_type = "Text", nullable)]
            last_error: Option<String>,
            created_at: DateTimeUtc,
            completed_at: Option<DateTimeUtc>,
        });
    }

    pub mod attempt {
        crate::store::tenant_entity!("webhook_attempts" {
            #[sea_orm(primary_key, auto_increment = false)]
            id: Uuid,
            delivery_id: Uuid,
            webhook_id: Uuid,
            attempted_at: DateTimeUtc,
            status_code: Option<i32>,
            latency_ms: i32,
            #[sea_orm(column_type = "Text", nullable)]
            error: Option<String>,
            #[sea_orm(column_type = "Text", nullable)]
            response: Option<String>,
        });
    }
}
use entity::{attempt, delivery, webhook};

/// What webhooks need, built once from the settings: the key that seals secrets, the guard,
/// and the HTTP client that connects only where the guard allows.
#[derive(Clone)]
pub struct Webhooks {
    vault: Vault,
    guard: Guard,
    client: reqwest::Client,
    timeout: Duration,
}

impl Webhooks {
    pub fn new(cfg: &WebhookConfig, signing_secret: &Secret) -> anyhow::Result<Self> {
        let guard = Guard::new(cfg.webhook_allowed_nets.clone());
        let timeout = Duration::from_secs(cfg.webhook_timeout_secs);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would connect where the guard never looked.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(deliver::PER_ENDPOINT)
            .user_agent(concat!("Docket-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            vault: Vault::new(signing_secret, "docket webhooks: signing secrets"),
            guard,
            client,
            timeout,
        })
    }

    /// The secrets that sign now: the current one, and the previous one while its overlap
    /// lasts.
    fn signing_secrets(&self, w: &webhook::Model, now: DateTime<Utc>) -> Result<Vec<String>> {
        let open = |sealed: &str| {
            self.vault.open(sealed).ok_or_else(|| {
                Error::internal(anyhow::anyhow!(
                    "webhook {} has a secret sealed under another key",
                    w.id
                ))
            })
        };
        let mut secrets = vec![open(&w.secret)?];
        if let (Some(previous), Some(until)) = (&w.previous_secret, w.previous_secret_until)
            && until > now
        {
            secrets.push(open(previous)?);
        }
        Ok(secrets)
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// The event types it receives.
    #[schema(value_type = Vec<EventType>)]
    pub events: Vec<String>,
    /// Deliveries go out only while active.
    pub active: bool,
    /// Why Docket turned it off (410 Gone, or days of failures), if it did.
    pub disabled_reason: Option<String>,
    /// Deliveries have failed since then, without a success.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until then the previous secret also signs (after a rotation).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<webhook::Model> for Webhook {
    fn from(m: webhook::Model) -> Self {
        let now = Utc::now();
        Self {
            id: m.id,
            events: events_of(&m),
            url: m.url,
            description: m.description,
            active: m.active,
            disabled_reason: m.disabled_reason,
            failing_since: m.failing_since,
            previous_secret_expires_at: m.previous_secret_until.filter(|until| *until > now),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

fn events_of(m: &webhook::Model) -> Vec<String> {
    serde_json::from_value(m.events.clone()).unwrap_or_default()
}

/// A new endpoint, or a rotated secret: the only answers that carry the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_…`: verifies the `webhook-signature` of every delivery. Not shown again.
    pub secret: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `https://…` (or `http://…`) on a public address.
    #[schema(max_length = 2000)]
    pub url: String,
    /// Event types to receive (at least one), e.g. `["ticket.created", "comment.created"]`.
    #[schema(value_type = Vec<EventType>, min_items = 1, max_items = 50)]
    pub events: Vec<String>,
    #[schema(schema_with = crate::text::optional_line_schema)]
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    #[schema(value_type = Option<Vec<EventType>>, min_items = 1, max_items = 50)]
    pub events: Option<Vec<String>>,
    #[schema(schema_with = crate::text::optional_line_schema)]
    pub description: Option<String>,
    /// Turn deliveries off or back on (turning on clears the failure record).
    pub active: Option<bool>,
}

/// Event types one webhook may name (more than there are is a mistake, not a wish).
const MAX_EVENTS: usize = 50;

/// What a create or update asks for, checked: the URL as the parser reads it (so what is stored
/// is what the guard judged and what will be requested), and the event types, each once.
struct Checked {
    url: Option<String>,
    events: Vec<String>,
}

/// Checks the URL (422 for a non-http(s) URL or a literal non-public address), the description
/// and the events.
fn check(
    hooks: &Webhooks,
    v: &mut Validator,
    url: Option<&str>,
    events: Option<&[String]>,
    description: Option<&str>,
) -> Checked {
    let url = url.and_then(|url| {
        if url.chars().count() > MAX_URL {
            v.push("url", format!("at most {MAX_URL} characters"));
            return None;
        }
        match hooks.guard.check_url(url) {
            Ok(parsed) => Some(parsed.to_string()),
            Err(why) => {
                v.push("url", why);
                None
            }
        }
    });
    if let Some(d) = description {
        text::check_line(v, "description", d, text::MAX_LINE);
    }
    let mut wanted: Vec<String> = Vec::new();
    if let Some(events) = events {
        v.check(!events.is_empty(), "events", "name at least one event type");
        v.check(
            events.len() <= MAX_EVENTS,
            "events",
            "names more event types than there are",
        );
        let unknown: Vec<&String> = events
            .iter()
            .filter(|e| EventType::parse(e).is_none())
            .take(3)
            .collect();
        if !unknown.is_empty() {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            v.push(
                "events",
                format!(
                    "unknown event types {unknown:?}; known: {}",
                    known.join(", ")
                ),
            );
        }
        for e in events.iter().take(MAX_EVENTS) {
            if !wanted.contains(e) {
                wanted.push(e.clone());
            }
        }
    }
    Checked {
        url,
        events: wanted,
    }
}

async fn find(tx: &TenantTx, id: Uuid) -> Result<webhook::Model> {
    tx.find_for_update::<webhook::Entity>()
        .filter(webhook::Column::Id.eq(id))
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("webhook"))
}

/// The organisation's webhooks: what a plan's `webhooks` counts.
pub(crate) async fn count(tx: &TenantTx) -> Result<u64> {
    Ok(tx.find::<webhook::Entity>().count(tx.conn()).await?)
}

pub async fn create(
    db: &Db,
    hooks: &Webhooks,
    ctx: &TenantCtx,
    req: NewWebhook,
) -> Result<WebhookWithSecret> {
    access::authorize(ctx, Action::WebhooksManage)?;
    let mut v = Validator::default();
    let checked = check(
        hooks,
        &mut v,
        Some(&req.url),
        Some(&req.events),
        req.description.as_deref(),
    );
    v.finish()?;
    let (Some(url), events) = (checked.url, checked.events) else {
        return Err(Error::internal(anyhow::anyhow!("a checked URL is missing")));
    };
    let tx = db.write(ctx).await?;
    let limits = plans::lock(&tx).await?;
    let held = count(&tx).await?;
    plans::ensure(&limits, plans::Limit::Webhooks, held, 1)?;
    if held >= MAX_PER_ORG {
        return Err(Error::conflict(
            "too_many_webhooks",
            format!("an organisation may have at most {MAX_PER_ORG} webhooks; delete one"),
        ));
    }
    let secret = sign::new_secret();
    let now = Utc::now();
    let row = webhook::ActiveModel {
        org_id: Set(ctx.org_id),
        id: Set(Uuid::now_v7()),
        url: Set(url),
        description: Set(req.description.unwrap_or_default().trim().to_owned()),
        events: Set(json!(events)),
        active: Set(true),
        secret: Set(hooks.vault.seal(&secret)?),
        previous_secret: Set(None),
        previous_secret_until: Set(None),
        disabled_reason: Set(None),
        failing_since: Set(None),
        created_by: Set(ctx.user_id),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(tx.conn())
    .await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "webhook.created",
        "webhook",
        Some(row.id),
        json!({"url": row.url, "events": events}),
    )
    .await?;
    tx.commit().await?;
    Ok(WebhookWithSecret {
        webhook: row.into(),
        secret,
    })
}

pub async fn list(db: &Db, ctx: &TenantCtx) -> Result<Vec<Webhook>> {
    access::authorize(ctx, Action::WebhooksManage)?;
    let tx = db.read(ctx).await?;
    let rows = tx
        .find::<webhook::Entity>()
        .order_by_asc(webhook::Column::CreatedAt)
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn get(db: &Db, ctx: &TenantCtx, id: Uuid) -> Result<Webhook> {
    access::authorize(ctx, Action::WebhooksManage)?;
    let tx = db.read(ctx).await?;
    let row = tx
        .find::<webhook::Entity>()
        .filter(webhook::Column::Id.eq(id))
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("webhook"))?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn update(
    db: &Db,
    hooks: &Webhooks,
    ctx: &TenantCtx,
    id: Uuid,
    patch: WebhookPatch,
) -> Result<Webhook> {
    access::authorize(ctx, Action::WebhooksManage)?;
    let mut v = Validator::default();
    let checked = check(
        hooks,
        &mut v,
        patch.url.as_deref(),
        patch.events.as_deref(),
        patch.description.as_deref(),
    );
    v.finish()?;
    let tx = db.write(ctx).await?;
    let current = find(&tx, id).await?;
    let mut row: webhook::ActiveModel = current.clone().into();
    if let Some(url) = checked.url {
        row.url = Set(url);
    }
    if patch.events.is_some() {
        row.events = Set(json!(checked.events));
    }
    if let Some(d) = &patch.description {
        row.description = Set(d.trim().to_owned());
    }
    if let Some(active) = patch.active {
        row.active = Set(active);
        if active && !current.active {
            // A fresh start: the failure clock begins again.
            row.disabled_reason = Set(None);
            row.failing_since = Set(None);
        }
    }
    row.updated_at = Set(Utc::now());
    let row = row.update(tx.conn()).await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "webhook.updated",
        "webhook",
        Some(id),
        json!({"url": row.url, "events": events_of(&row), "active": row.active}),
    )
    .await?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn delete(db: &Db, ctx: &TenantCtx, id: Uuid) -> Result<()> {
    access::authorize(ctx, Action::WebhooksManage)?;
    let tx = db.write(ctx).await?;
    let row = find(&tx, id).await?;
    // Deliveries and attempts go with it (foreign keys cascade).
    webhook::Entity::delete_many()
        .filter(webhook::Column::OrgId.eq(ctx.org_id))
        .filter(webhook::Column::Id.eq(id))
        .exec(tx.conn())
        .await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "webhook.deleted",
        "webhook",
        Some(id),
        json!({"url": row.url}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A new secret; the old one keeps signing beside it for a day, so receivers can switch
/// without losing a delivery.
pub async fn rotate_secret(
    db: &Db,
    hooks: &Webhooks,
    ctx: &TenantCtx,
    id: Uuid,
) -> Result<WebhookWithSecret> {
    access::authorize(ctx, Action::WebhooksManage)?;
    let tx = db.write(ctx).await?;
    let current = find(&tx, id).await?;
    let secret = sign::new_secret();
    let now = Utc::now();
    let mut row: webhook::ActiveModel = current.clone().into();
    row.previous_secret = Set(Some(current.secret));
    row.previous_secret_until = Set(Some(now + ROTATION_OVERLAP));
    row.secret = Set(hooks.vault.seal(&secret)?);
    row.updated_at = Set(now);
    let row = row.update(tx.conn()).await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "webhook.secret_rotated",
        "webhook",
        Some(id),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(WebhookWithSecret {
        webhook: row.into(),
        secret,
    })
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = WebhookDeliveryStatus)]
pub enum Status {
    /// Waiting for its next attempt (`next_attempt_at`).
    Pending,
    /// Being sent now.
    Delivering,
    Succeeded,
    /// Given up: the schedule ran out, or the endpoint answered 410 Gone.
    Failed,
}

impl Status {
    const ALL: [Status; 4] = [
        Status::Pending,
        Status::Delivering,
        Status::Succeeded,
        Status::Failed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivering => "delivering",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
        }
    }

    fn parse(stored: &str) -> Result<Self> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str() == stored)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("delivery status {stored:?}")))
    }
}

/// One attempt to deliver.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAttempt {
    pub id: Uuid,
    pub attempted_at: DateTime<Utc>,
    /// The endpoint's HTTP status, when it answered.
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    /// Why it failed (timeout, connection refused, a redirect, a refused address, …).
    pub error: Option<String>,
    /// The first 2 KB of the answer.
    pub response: Option<String>,
}

impl From<attempt::Model> for DeliveryAttempt {
    fn from(m: attempt::Model) -> Self {
        Self {
            id: m.id,
            attempted_at: m.attempted_at,
            status_code: m.status_code,
            latency_ms: m.latency_ms,
            error: m.error,
            response: m.response,
        }
    }
}

/// One event on its way to one endpoint, with its attempts (newest first).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDelivery {
    /// Also the `webhook-id` header (as `msg_<id>`), the same on every attempt.
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub status: Status,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The body sent (`{type, timestamp, data}`).
    pub payload: Value,
    pub attempts: Vec<DeliveryAttempt>,
}

impl WebhookDelivery {
    fn of(m: delivery::Model, attempts: Vec<DeliveryAttempt>) -> Result<Self> {
        let status = Status::parse(&m.status)?;
        Ok(Self {
            id: m.id,
            webhook_id: m.webhook_id,
            event_id: m.event_id,
            event_type: m.event_type,
            status,
            next_attempt_at: (status == Status::Pending).then_some(m.next_attempt_at),
            last_status_code: m.last_status,
            last_error: m.last_error,
            created_at: m.created_at,
            completed_at: m.completed_at,
            payload: serde_json::from_str(&m.payload).map_err(Error::internal)?,
            attempts,
        })
    }
}

/// The `webhook-id` of a delivery.
pub fn message_id(delivery_id: Uuid) -> String {
    format!("msg_{}", delivery_id.simple())
}

/// An endpoint's deliveries, newest first, each with its attempts.
pub async fn deliveries(
    db: &Db,
    ctx: &TenantCtx,
    webhook_id: Uuid,
    page: PageRequest,
) -> Result<Page<WebhookDelivery>> {
    access::authorize(ctx, Action::WebhooksManage)?;
    let tx = db.read(ctx).await?;
    tx.find::<webhook::Entity>()
        .filter(webhook::Column::Id.eq(webhook_id))
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("webhook"))?;
    let rows = tx
        .newest_first::<delivery::Entity>(delivery::Column::Id, &page)?
        .filter(delivery::Column::WebhookId.eq(webhook_id))
        .all(tx.conn())
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|d| d.id).collect();
    let mut attempts: HashMap<Uuid, Vec<DeliveryAttempt>> = HashMap::new();
    for a in tx
        .find::<attempt::Entity>()
        .filter(attempt::Column::DeliveryId.is_in(ids))
        .order_by_desc(attempt::Column::AttemptedAt)
        .all(tx.conn())
        .await?
    {
        attempts.entry(a.delivery_id).or_default().push(a.into());
    }
    tx.commit().await?;
    Page::try_from_rows(
        rows,
        page.limit,
        |d| d.id,
        |d| {
            let mine = attempts.remove(&d.id).unwrap_or_default();
            WebhookDelivery::of(d, mine)
        },
    )
}

/// A delivery of the webhook, found by `key` (its id, or the event it carries).
async fn delivery_row(
    tx: &TenantTx,
    webhook_id: Uuid,
    key: delivery::Column,
    value: Uuid,
) -> Result<delivery::Model> {
    tx.find::<delivery::Entity>()
        .filter(delivery::Column::WebhookId.eq(webhook_id))
        .filter(key.eq(value))
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("delivery"))
}

/// A delivery as the API shows it: with its attempts, newest first.
async fn with_attempts(tx: &TenantTx, row: delivery::Model) -> Result<WebhookDelivery> {
    let attempts = tx
        .find::<attempt::Entity>()
        .filter(attempt::Column::DeliveryId.eq(row.id))
        .order_by_desc(attempt::Column::AttemptedAt)
        .all(tx.conn())
        .await?;
    WebhookDelivery::of(
        row,
        attempts.into_iter().map(DeliveryAttempt::from).collect(),
    )
}

/// Sends a delivery again, now, from the start of the schedule, under its `webhook-id`.
pub async fn redeliver(
    db: &Db,
    ctx: &TenantCtx,
    webhook_id: Uuid,
    delivery_id: Uuid,
) -> Result<WebhookDelivery> {
    access::authorize(ctx, Action::WebhooksManage)?;
    let tx = db.write(ctx).await?;
    let hook = find(&tx, webhook_id).await?;
    ensure_active(&hook)?;
    let current = delivery_row(&tx, webhook_id, delivery::Column::Id, delivery_id).await?;
    if Status::parse(&current.status)? == Status::Delivering {
        return Err(Error::conflict(
            "delivery_in_progress",
            "this delivery is being sent now; look again in a moment",
        ));
    }
    let mut row: delivery::ActiveModel = current.into();
    row.status = Set(Status::Pending.as_str().to_owned());
    row.step = Set(0);
    row.next_attempt_at = Set(Utc::now());
    row.completed_at = Set(None);
    let row = row.update(tx.conn()).await?;
    let redone = with_attempts(&tx, row).await?;
    tx.wrote_webhooks();
    tx.commit().await?;
    Ok(redone)
}

/// Queues a `webhook.test` delivery to the endpoint, to check its receiver.
pub async fn send_test(db: &Db, ctx: &TenantCtx, webhook_id: Uuid) -> Result<WebhookDelivery> {
    access::authorize(ctx, Action::WebhooksManage)?;
    let tx = db.write(ctx).await?;
    let hook = find(&tx, webhook_id).await?;
    ensure_active(&hook)?;
    // A test is an event of its own, with an id of its own.
    let event_id = Uuid::now_v7();
    let data = json!({"webhook_id": webhook_id, "message": "A test delivery from Docket."});
    queue(&tx, &[hook.id], event_id, TEST_EVENT, Utc::now(), data).await?;
    let row = delivery_row(&tx, webhook_id, delivery::Column::EventId, event_id).await?;
    let sent = with_attempts(&tx, row).await?;
    tx.commit().await?;
    Ok(sent)
}

fn ensure_active(hook: &webhook::Model) -> Result<()> {
    if hook.active {
        Ok(())
    } else {
        Err(Error::conflict(
            "webhook_inactive",
            "this webhook is turned off; turn it on (PATCH active: true) to deliver",
        ))
    }
}

/// Queues one delivery of an event to each of `webhook_ids` (once: a rerun finds them there).
async fn queue(
    tx: &TenantTx,
    webhook_ids: &[Uuid],
    event_id: Uuid,
    event_type: &str,
    at: DateTime<Utc>,
    data: Value,
) -> Result<()> {
    let payload = json!({"type": event_type, "timestamp": at, "data": data}).to_string();
    let now = Utc::now();
    let rows = webhook_ids.iter().map(|webhook_id| delivery::ActiveModel {
        org_id: Set(tx.org_id()),
        id: Set(Uuid::now_v7()),
        webhook_id: Set(*webhook_id),
        event_id: Set(event_id),
        event_type: Set(event_type.to_owned()),
        payload: Set(payload.clone()),
        status: Set(Status::Pending.as_str().to_owned()),
        claims: Set(0),
        step: Set(0),
        next_attempt_at: Set(now),
        locked_until: Set(None),
        last_status: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        completed_at: Set(None),
    });
    delivery::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([
                delivery::Column::OrgId,
                delivery::Column::WebhookId,
                delivery::Column::EventId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(tx.conn())
        .await?;
    tx.wrote_webhooks();
    Ok(())
}

/// The event handler: one delivery per active endpoint subscribed to the event's type.
pub struct Fanout;

#[async_trait::async_trait]
impl WriteHandler for Fanout {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    fn concerns(&self, event: &Event) -> bool {
        EventType::parse(event.kind()).is_some()
    }

    /// The organisation's webhooks read once for its events; their deliveries queued.
    async fn write(&self, tx: &TenantTx, events: &[&Event]) -> Result<()> {
        let active = tx
            .find::<webhook::Entity>()
            .filter(webhook::Column::Active.eq(true))
            .all(tx.conn())
            .await?;
        // An endpoint deleted meanwhile fails the insert, and the event's retry reads the
        // subscriptions again.
        for &event in events {
            let to: Vec<Uuid> = active
                .iter()
                .filter(|w| events_of(w).iter().any(|e| e == event.kind()))
                .map(|w| w.id)
                .collect();
            if !to.is_empty() {
                let data = event.public_data()?;
                queue(tx, &to, event.id, event.kind(), event.created_at, data).await?;
            }
        }
        Ok(())
    }
}
