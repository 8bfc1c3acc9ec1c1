//! What admins see of their organisation's events: the outbox by status (dead letters above
//! all), a requeue for events that exhausted their attempts, and the figures `/metrics` shows.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::entity;
use crate::{
    access::{self, Action, TenantCtx},
    audit,
    error::{Error, Result},
    pagination::{Page, PageRequest},
    store::Db,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Waiting to be handled (or to be retried after a failure).
    Pending,
    /// Claimed by a worker.
    Processing,
    Done,
    /// Failed on every attempt; handled again only when requeued.
    Dead,
}

impl EventStatus {
    fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Processing => "processing",
            EventStatus::Done => "done",
            EventStatus::Dead => "dead",
        }
    }

    fn parse(stored: &str) -> Result<Self> {
        Ok(match stored {
            "pending" => EventStatus::Pending,
            "processing" => EventStatus::Processing,
            "done" => EventStatus::Done,
            "dead" => EventStatus::Dead,
            other => return Err(Error::Internal(anyhow::anyhow!("event status {other:?}"))),
        })
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// Only events in this state (e.g. `dead`).
    pub status: Option<EventStatus>,
}

/// An outbox event as admins see it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OutboxEvent {
    pub id: Uuid,
    /// `ticket.created`, `comment.created`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub ticket_id: Option<Uuid>,
    pub status: EventStatus,
    /// Times a worker has taken it.
    pub attempts: i32,
    /// The last handler error, if any.
    pub last_error: Option<String>,
    /// When it is next due (while pending).
    pub available_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub handled_at: Option<DateTime<Utc>>,
    pub payload: Value,
}

impl TryFrom<entity::Model> for OutboxEvent {
    type Error = Error;
    fn try_from(m: entity::Model) -> Result<Self> {
        Ok(Self {
            id: m.id,
            kind: m.kind,
            ticket_id: m.ticket_id,
            status: EventStatus::parse(&m.status)?,
            attempts: m.attempts,
            last_error: m.last_error,
            available_at: m.available_at,
            created_at: m.created_at,
            handled_at: m.handled_at,
            payload: m.payload,
        })
    }
}

/// Newest first.
pub async fn list(
    db: &Db,
    ctx: &TenantCtx,
    filter: EventFilter,
    page: PageRequest,
) -> Result<Page<OutboxEvent>> {
    access::authorize(ctx, Action::EventsManage)?;
    let tx = db.read(ctx).await?;
    let mut query = tx.newest_first::<entity::Entity>(entity::Column::Id, &page)?;
    if let Some(status) = filter.status {
        query = query.filter(entity::Column::Status.eq(status.as_str()));
    }
    let rows = query.all(tx.conn()).await?;
    tx.commit().await?;
    Page::try_from_rows(rows, page.limit, |m| m.id, OutboxEvent::try_from)
}

/// Puts a dead event back in the queue with a fresh set of attempts.
pub async fn retry(db: &Db, ctx: &TenantCtx, id: Uuid) -> Result<OutboxEvent> {
    access::authorize(ctx, Action::EventsManage)?;
    let tx = db.write(ctx).await?;
    let m = tx
        .find_for_update::<entity::Entity>()
        .filter(entity::Column::Id.eq(id))
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("event"))?;
    if m.status != "dead" {
        return Err(Error::conflict(
            "event_not_dead",
            format!("only dead events are requeued; this one is {}", m.status),
        ));
    }
    let mut am = m.into_active_model();
    am.status = Set("pending".into());
    am.attempts = Set(0);
    am.available_at = Set(Utc::now());
    let m = am.update(tx.conn()).await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "event.requeued",
        "event",
        Some(m.id),
        json!({"type": m.kind, "last_error": m.last_error}),
    )
    .await?;
    tx.wrote_outbox();
    tx.commit().await?;
    OutboxEvent::try_from(m)
}

/// The outbox across tenants, for `/metrics`.
pub struct Backlog {
    /// Events waiting or being handled.
    pub open: u64,
    pub dead: u64,
    /// Age of the oldest event still waiting, in seconds (0 when none).
    pub oldest_open_secs: f64,
}

pub async fn backlog(db: &Db) -> Result<Backlog> {
    let tx = db.maintenance().await?;
    let count = |statuses: &'static [&'static str]| {
        entity::Entity::find()
            .filter(entity::Column::Status.is_in(statuses.iter().copied()))
            .select_only()
            .column_as(entity::Column::Id.count(), "n")
            .into_tuple::<i64>()
            .one(tx.conn())
    };
    let open = count(&["pending", "processing"]).await?.unwrap_or(0);
    let dead = count(&["dead"]).await?.unwrap_or(0);
    let oldest: Option<DateTime<Utc>> = entity::Entity::find()
        .filter(entity::Column::Status.is_in(["pending", "processing"]))
        .select_only()
        .column(entity::Column::CreatedAt)
        .order_by_asc(entity::Column::CreatedAt)
        .limit(1)
        .into_tuple()
        .one(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(Backlog {
        open: open as u64,
        dead: dead as u64,
        oldest_open_secs: oldest.map_or(0.0, |t| {
            (Utc::now() - t).to_std().unwrap_or_default().as_secs_f64()
        }),
    })
}

/// Deletes handled events older than a week (dead ones stay until requeued or the
/// organisation is gone).
pub async fn purge_handled(db: &Db) -> Result<u64> {
    let long_handled = Condition::all()
        .add(entity::Column::Status.eq("done"))
        .add(entity::Column::CreatedAt.lt(Utc::now() - chrono::Duration::days(7)));
    Ok(db.purge::<entity::Entity>(long_handled).await?)
}
