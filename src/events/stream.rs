//! The real-time feed: one numbered sequence of entries per organisation, read by `/stream`
//! and `/ws`. A position is taken under a per-organisation counter row lock held until commit,
//! so positions become visible strictly in order and never skip: a reader that has seen entry
//! `n` has seen everything before it, and resuming is simply "after `n`" (see DESIGN.md on
//! feeds and commit order).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Event, Handler};
use crate::{
    access,
    access::TenantCtx,
    error::Result,
    store::{self, Db, TenantTx},
};

/// Entries stay readable for resuming at least this long.
pub const KEPT_FOR: Duration = Duration::from_secs(48 * 3600);

pub(crate) mod entry {
    crate::store::tenant_entity!("stream_events" {
        #[sea_orm(primary_key, auto_increment = false)]
        seq: i64,
        source: String,
        kind: String,
        ticket_id: Option<Uuid>,
        requester_id: Option<Uuid>,
        user_id: Option<Uuid>,
        internal: bool,
        data: Json,
        created_at: DateTimeUtc,
    });
}

/// What a handler publishes. `source` names what produced it, so publishing it again (a
/// retried event) adds nothing.
pub(crate) struct Entry {
    pub source: String,
    pub kind: String,
    pub ticket_id: Option<Uuid>,
    /// Who requested the ticket: the one requester who may see the entry.
    pub requester_id: Option<Uuid>,
    /// For one person only (their notification); `None` is the organisation's ticket feed.
    pub user_id: Option<Uuid>,
    /// An internal note: never shown to requesters.
    pub internal: bool,
    pub data: Value,
    pub at: DateTime<Utc>,
}

/// One entry as clients receive it. `id` is the position to resume after.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StreamEvent {
    /// Position in the organisation's feed (send it back as `Last-Event-ID`).
    pub id: String,
    /// `ticket.updated`, `comment.created`, `notification.created`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub ticket_id: Option<Uuid>,
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

/// Publishes `entries` in the caller's transaction, in order; those already published are
/// skipped. Returns how many were new.
pub(crate) async fn publish(tx: &TenantTx, entries: Vec<Entry>) -> Result<usize> {
    if entries.is_empty() {
        return Ok(0);
    }
    let backend = tx.conn().get_database_backend();
    // Lock the organisation's counter first: a concurrent run of the same handler then waits
    // here and afterwards sees what this one published.
    let last: i64 = tx
        .conn()
        .query_one_raw(store::statement(
            backend,
            "INSERT INTO stream_counters (org_id, last_seq) VALUES ($1, 0) \
             ON CONFLICT (org_id) DO UPDATE SET last_seq = stream_counters.last_seq \
             RETURNING last_seq",
            [tx.org_id().into()],
        ))
        .await?
        .ok_or_else(|| crate::error::Error::Internal(anyhow::anyhow!("no stream counter")))?
        .try_get("", "last_seq")?;
    let sources: Vec<String> = entries.iter().map(|e| e.source.clone()).collect();
    let published: Vec<String> = tx
        .find::<entry::Entity>()
        .select_only()
        .column(entry::Column::Source)
        .filter(entry::Column::Source.is_in(sources))
        .into_tuple()
        .all(tx.conn())
        .await?;
    let fresh: Vec<Entry> = entries
        .into_iter()
        .filter(|e| !published.contains(&e.source))
        .collect();
    if fresh.is_empty() {
        return Ok(0);
    }
    let count = fresh.len();
    let org_id = tx.org_id();
    entry::Entity::insert_many(fresh.into_iter().zip(last + 1..).map(|(e, seq)| {
        entry::ActiveModel {
            org_id: Set(org_id),
            seq: Set(seq),
            source: Set(e.source),
            kind: Set(e.kind),
            ticket_id: Set(e.ticket_id),
            requester_id: Set(e.requester_id),
            user_id: Set(e.user_id),
            internal: Set(e.internal),
            data: Set(e.data),
            created_at: Set(e.at),
        }
    }))
    .exec(tx.conn())
    .await?;
    tx.conn()
        .execute_raw(store::statement(
            backend,
            "UPDATE stream_counters SET last_seq = $1 WHERE org_id = $2",
            [(last + count as i64).into(), org_id.into()],
        ))
        .await?;
    tx.wrote_stream();
    Ok(count)
}

/// The stream handler: every outbox event becomes an entry of its organisation's feed.
pub struct Publisher;

#[async_trait::async_trait]
impl Handler for Publisher {
    fn name(&self) -> &'static str {
        "stream"
    }

    async fn handle(&self, db: &Db, event: &Event) -> Result<()> {
        self.handle_batch(db, &[event]).await
    }

    /// One publish, and so one wake-up of the organisation's streams, for its events.
    async fn handle_batch(&self, db: &Db, events: &[&Event]) -> Result<()> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let entries = events
            .iter()
            .map(|event| {
                Ok(Entry {
                    source: format!("event:{}", event.id),
                    kind: event.kind().to_owned(),
                    ticket_id: event.ticket_id(),
                    requester_id: event.body.requester_id(),
                    user_id: None,
                    internal: event.body.internal(),
                    data: event.public_data()?,
                    at: event.created_at,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let tx = db.write_org(first.org_id()).await?;
        publish(&tx, entries).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The feed's current end: where a new subscriber without `Last-Event-ID` starts.
pub async fn head(db: &Db, ctx: &TenantCtx) -> Result<i64> {
    let tx = db.read(ctx).await?;
    let row = tx
        .conn()
        .query_one_raw(store::statement(
            tx.conn().get_database_backend(),
            "SELECT last_seq FROM stream_counters WHERE org_id = $1",
            [ctx.org_id.into()],
        ))
        .await?;
    tx.commit().await?;
    Ok(match row {
        Some(row) => row.try_get("", "last_seq")?,
        None => 0,
    })
}

/// What one read of the feed gives a subscriber.
pub struct Batch {
    /// The entries after the requested position that this person may see, in order.
    pub events: Vec<StreamEvent>,
    /// The position read up to (entries others may see included): resume after this.
    pub through: i64,
    /// The requested position was older than what is kept: entries were lost to retention.
    pub truncated: bool,
    /// The read stopped at `limit`: more entries may follow at once.
    pub more: bool,
}

/// Up to `limit` entries after position `after`, filtered for the caller: their organisation's
/// ticket changes they may see, and their own entries.
pub async fn read(db: &Db, ctx: &TenantCtx, after: i64, limit: u64) -> Result<Batch> {
    let tx = db.read(ctx).await?;
    let rows = tx
        .find::<entry::Entity>()
        .filter(entry::Column::Seq.gt(after))
        .order_by_asc(entry::Column::Seq)
        .limit(limit)
        .all(tx.conn())
        .await?;
    let truncated = rows.first().is_some_and(|first| first.seq > after + 1);
    tx.commit().await?;
    let more = rows.len() as u64 == limit;
    let through = rows.last().map_or(after, |r| r.seq);
    let events = rows
        .into_iter()
        .filter(|r| visible(ctx, r))
        .map(|r| StreamEvent {
            id: r.seq.to_string(),
            kind: r.kind,
            ticket_id: r.ticket_id,
            data: r.data,
            created_at: r.created_at,
        })
        .collect();
    Ok(Batch {
        events,
        through,
        truncated,
        more,
    })
}

/// Whether `ctx` may receive the entry: their own entries, and otherwise what their role may
/// read of the organisation's tickets (requesters: their own tickets, never internal notes).
fn visible(ctx: &TenantCtx, e: &entry::Model) -> bool {
    match e.user_id {
        Some(user) => user == ctx.user_id,
        None if access::sees_only_own_tickets(ctx.role) => {
            e.requester_id == Some(ctx.user_id) && !e.internal
        }
        None => !e.internal || access::sees_internal_notes(ctx.role),
    }
}

/// Deletes entries older than [`KEPT_FOR`] across tenants.
pub async fn purge_expired(db: &Db) -> Result<u64> {
    let expired = Condition::all().add(entry::Column::CreatedAt.lt(Utc::now() - KEPT_FOR));
    Ok(db.purge::<entry::Entity>(expired).await?)
}
