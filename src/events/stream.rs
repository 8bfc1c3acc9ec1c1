//! The real-time feed: one numbered sequence of entries per organisation, read by `/stream`
//! and `/ws`. A position is taken under a per-organisation counter row lock held until commit,
//! so positions become visible strictly in order and never skip: a reader that has seen entry
//! `n` has seen everything before it, and resuming is simply "after `n`" (see DESIGN.md on
//! feeds and commit order).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Event, WriteHandler};
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
        project_id: Option<Uuid>,
    });
}

/// What a handler publishes. `source` names what produced it, so publishing it again (a
/// retried event) adds nothing.
pub(crate) struct Entry {
    pub source: String,
    pub kind: String,
    pub ticket_id: Option<Uuid>,
    /// The project it happened in: a private one's entries reach only who may see it.
    pub project_id: Option<Uuid>,
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

/// Whether a publish may repeat entries an earlier run already published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entries {
    /// Made in this transaction (or of events on their first attempt): none can be in the
    /// feed yet.
    New,
    /// Of events handled before: those already in the feed are skipped.
    MayRepeat,
}

/// Publishes `entries` in the caller's transaction, in order. Returns how many were new.
///
/// The organisation's counter row is locked (and, for new entries, moved on) first and held
/// until commit, so positions become visible in order and never skip. A concurrent run of the
/// same event's handlers waits there and then sees what this one published. Should a first
/// attempt whose lease ran out commit after its retry, the feed's unique source refuses its
/// repeat and that transaction fails: nothing is published twice.
pub(crate) async fn publish(tx: &TenantTx, entries: Vec<Entry>, kind: Entries) -> Result<usize> {
    if entries.is_empty() {
        return Ok(0);
    }
    let fresh = match kind {
        Entries::New => entries,
        Entries::MayRepeat => {
            reserve(tx, 0).await?;
            let sources: Vec<String> = entries.iter().map(|e| e.source.clone()).collect();
            let published: Vec<String> = tx
                .find::<entry::Entity>()
                .select_only()
                .column(entry::Column::Source)
                .filter(entry::Column::Source.is_in(sources))
                .into_tuple()
                .all(tx.conn())
                .await?;
            entries
                .into_iter()
                .filter(|e| !published.contains(&e.source))
                .collect()
        }
    };
    if fresh.is_empty() {
        return Ok(0);
    }
    let count = fresh.len();
    let last = reserve(tx, count).await?;
    let org_id = tx.org_id();
    let first = last - count as i64 + 1;
    entry::Entity::insert_many(
        fresh
            .into_iter()
            .zip(first..)
            .map(|(e, seq)| entry::ActiveModel {
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
                project_id: Set(e.project_id),
            }),
    )
    .exec(tx.conn())
    .await?;
    tx.wrote_stream();
    Ok(count)
}

/// Takes the next `count` positions of the organisation's feed under its counter row's lock
/// (held until commit) and returns the last of them (with 0, only the lock and the current
/// end).
async fn reserve(tx: &TenantTx, count: usize) -> Result<i64> {
    let row = tx
        .conn()
        .query_one_raw(store::statement(
            tx.conn().get_database_backend(),
            "INSERT INTO stream_counters (org_id, last_seq) VALUES ($1, $2) \
             ON CONFLICT (org_id) DO UPDATE SET last_seq = stream_counters.last_seq + $2 \
             RETURNING last_seq",
            [tx.org_id().into(), (count as i64).into()],
        ))
        .await?
        .ok_or_else(|| crate::error::Error::Internal(anyhow::anyhow!("no stream counter")))?;
    Ok(row.try_get("", "last_seq")?)
}

/// The stream handler: every outbox event becomes an entry of its organisation's feed.
pub struct Publisher;

#[async_trait::async_trait]
impl WriteHandler for Publisher {
    fn name(&self) -> &'static str {
        "stream"
    }

    fn concerns(&self, _: &Event) -> bool {
        true
    }

    /// One publish, and so one wake-up of the organisation's streams, for its events.
    async fn write(&self, tx: &TenantTx, events: &[&Event]) -> Result<()> {
        let entries = events
            .iter()
            .map(|event| {
                Ok(Entry {
                    source: format!("event:{}", event.id),
                    kind: event.kind().to_owned(),
                    ticket_id: event.ticket_id(),
                    project_id: event.body.project_id(),
                    requester_id: event.body.requester_id(),
                    user_id: None,
                    internal: event.body.internal(),
                    data: event.public_data()?,
                    at: event.created_at,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Only a retried event can have been published before.
        let kind = if events.iter().all(|e| e.attempts <= 1) {
            Entries::New
        } else {
            Entries::MayRepeat
        };
        publish(tx, entries, kind).await?;
        Ok(())
    }
}

/// The feed's current end: where a new subscriber without `Last-Event-ID` starts.
pub async fn head(db: &Db, ctx: &TenantCtx) -> Result<i64> {
    let tx = db.read(ctx).await?;
    let last = last_seq(&tx).await?;
    tx.commit().await?;
    Ok(last)
}

/// The position of the organisation's newest entry (0 before its first).
async fn last_seq(tx: &TenantTx) -> Result<i64> {
    let row = tx
        .conn()
        .query_one_raw(store::statement(
            tx.conn().get_database_backend(),
            "SELECT last_seq FROM stream_counters WHERE org_id = $1",
            [tx.org_id().into()],
        ))
        .await?;
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
    let hidden = Hidden(tx.hidden_projects().await?.into_iter().collect());
    tx.commit().await?;
    let more = rows.len() as u64 == limit;
    let through = rows.last().map_or(after, |r| r.seq);
    let events = rows
        .into_iter()
        .filter(|r| visible(ctx, &hidden, r))
        .map(StreamEvent::from)
        .collect();
    Ok(Batch {
        events,
        through,
        truncated,
        more,
    })
}

/// The projects whose entries `ctx` may not receive (private ones they are not a member of).
pub async fn hidden_projects(db: &Db, ctx: &TenantCtx) -> Result<Hidden> {
    let tx = db.read(ctx).await?;
    let hidden = tx.hidden_projects().await?;
    tx.commit().await?;
    Ok(Hidden(hidden.into_iter().collect()))
}

/// Projects hidden from one reader of the feed.
#[derive(Clone, Debug, Default)]
pub struct Hidden(HashSet<Uuid>);

/// Whether `ctx` may receive the entry: their own entries, and otherwise what their role may
/// read of the organisation's tickets (requesters: their own tickets, never internal notes;
/// nobody a private project's entries unless they may see the project).
fn visible(ctx: &TenantCtx, hidden: &Hidden, e: &entry::Model) -> bool {
    if e.project_id.is_some_and(|p| hidden.0.contains(&p)) {
        return false;
    }
    match e.user_id {
        Some(user) => user == ctx.user_id,
        None if access::sees_only_own_tickets(ctx.role) => {
            e.requester_id == Some(ctx.user_id) && !e.internal
        }
        None => !e.internal || access::sees_internal_notes(ctx.role),
    }
}

/// The newest entries of one organisation as its shared reader last read them: positions
/// `first..=through` when `entries` is not empty (positions never skip).
#[derive(Debug, Default)]
pub struct Tail {
    /// False until the reader has read the feed once (until then `through` means nothing).
    loaded: bool,
    pub through: i64,
    entries: VecDeque<Arc<entry::Model>>,
}

impl Tail {
    /// The entries after `after` that `ctx` may see, and the position read up to; `None` when
    /// some of them are no longer held here, or the feed was not read yet (the caller reads
    /// the database instead).
    pub fn after(
        &self,
        ctx: &TenantCtx,
        hidden: &Hidden,
        after: i64,
    ) -> Option<(Vec<StreamEvent>, i64)> {
        if !self.loaded {
            return None;
        }
        if self.through <= after {
            return Some((Vec::new(), after));
        }
        let first = self.entries.front()?.seq;
        if first > after + 1 {
            return None;
        }
        // Positions never skip: the entry after `after` is at a known index, and thousands of
        // connections look at every new tail.
        let skip = usize::try_from(after + 1 - first).unwrap_or(0);
        let events = self
            .entries
            .iter()
            .skip(skip)
            .filter(|e| visible(ctx, hidden, e))
            .map(|e| StreamEvent::from(e.as_ref().clone()))
            .collect();
        Some((events, self.through))
    }
}

impl From<entry::Model> for StreamEvent {
    fn from(r: entry::Model) -> Self {
        StreamEvent {
            id: r.seq.to_string(),
            kind: r.kind,
            ticket_id: r.ticket_id,
            data: r.data,
            created_at: r.created_at,
        }
    }
}

/// Entries a shared reader keeps in memory for its organisation's connections.
const TAIL_LEN: usize = 512;
/// A shared reader reads again this often without a wake-up (a missed notification costs at
/// most this).
const FEED_POLL: Duration = Duration::from_secs(5);

/// One reader per organisation with open streams: after each commit that published entries it
/// reads them once and hands them to every connection of the organisation, which filters them
/// for its person in memory. Without it each connection read the database after each commit:
/// 10,000 connections of one organisation made 10,000 reads of every entry.
#[derive(Clone)]
pub struct Feeds {
    db: Db,
    readers: Arc<Mutex<HashMap<Uuid, Arc<TailSender>>>>,
}

/// Where an organisation's reader publishes its tail.
type TailSender = watch::Sender<Arc<Tail>>;

impl Feeds {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            readers: Arc::default(),
        }
    }

    /// The organisation's tail, updated after each of its commits; starts its reader if none
    /// runs. The reader stops once no connection holds its receiver.
    pub fn subscribe(&self, org_id: Uuid) -> watch::Receiver<Arc<Tail>> {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = readers.get(&org_id) {
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(Arc::new(Tail::default()));
        let sender = Arc::new(sender);
        readers.insert(org_id, sender.clone());
        tokio::spawn(read_for(self.clone(), org_id, sender));
        receiver
    }

    /// True (and the reader forgotten) when nobody listens to `org_id` any more.
    fn unused(&self, org_id: Uuid, sender: &TailSender) -> bool {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if sender.receiver_count() > 0 {
            return false;
        }
        readers.remove(&org_id);
        true
    }
}

/// An organisation's shared reader: reads new entries after each wake-up (or `FEED_POLL`) and
/// publishes the tail.
async fn read_for(feeds: Feeds, org_id: Uuid, sender: Arc<TailSender>) {
    let db = &feeds.db;
    let mut wake = db.signals().stream.subscribe();
    let mut tail = Tail::default();
    let mut started = false;
    loop {
        if feeds.unused(org_id, &sender) {
            return;
        }
        let through = tail.through;
        match read_tail(db, org_id, &mut tail, started).await {
            // Connections wake only for something new (not for every poll).
            Ok(()) if !started || tail.through != through => {
                started = true;
                sender.send_replace(Arc::new(Tail {
                    loaded: true,
                    through: tail.through,
                    entries: tail.entries.clone(),
                }));
            }
            Ok(()) => {}
            Err(err) => tracing::warn!(error = ?err, "reading the stream failed; will retry"),
        }
        let poll = tokio::time::sleep(FEED_POLL);
        tokio::pin!(poll);
        loop {
            tokio::select! {
                got = wake.recv() => match got {
                    Ok(org) if org == org_id || org.is_nil() => break,
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = &mut poll => break,
                _ = sender.closed() => break,
            }
        }
    }
}

/// Reads what follows `tail` (at the start: only the current end) and keeps the newest.
async fn read_tail(db: &Db, org_id: Uuid, tail: &mut Tail, started: bool) -> Result<()> {
    let tx = db.read_org(org_id).await?;
    if !started {
        tail.through = last_seq(&tx).await?;
    }
    loop {
        let rows = tx
            .find::<entry::Entity>()
            .filter(entry::Column::Seq.gt(tail.through))
            .order_by_asc(entry::Column::Seq)
            .limit(TAIL_LEN as u64)
            .all(tx.conn())
            .await?;
        let full = rows.len() == TAIL_LEN;
        for row in rows {
            tail.through = row.seq;
            tail.entries.push_back(Arc::new(row));
        }
        while tail.entries.len() > TAIL_LEN {
            tail.entries.pop_front();
        }
        if !full {
            break;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes entries older than [`KEPT_FOR`] across tenants.
pub async fn purge_expired(db: &Db) -> Result<u64> {
    let expired = Condition::all().add(entry::Column::CreatedAt.lt(Utc::now() - KEPT_FOR));
    Ok(db.purge::<entry::Entity>(expired).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Role;

    fn entry(seq: i64, internal: bool, user_id: Option<Uuid>) -> Arc<entry::Model> {
        Arc::new(entry::Model {
            org_id: Uuid::nil(),
            seq,
            source: format!("event:{seq}"),
            kind: "ticket.updated".into(),
            ticket_id: None,
            requester_id: None,
            user_id,
            internal,
            data: Value::Null,
            created_at: Utc::now(),
            project_id: None,
        })
    }

    #[test]
    fn a_tail_serves_what_follows_a_position_it_holds_filtered_for_the_person() {
        let agent = TenantCtx::authenticated(Uuid::nil(), Uuid::now_v7(), Role::Agent, None);
        let someone = Uuid::now_v7();
        let tail = Tail {
            loaded: true,
            through: 13,
            entries: [
                entry(10, false, None),
                entry(11, true, None),
                entry(12, false, Some(someone)),
                entry(13, false, Some(agent.user_id)),
            ]
            .into(),
        };
        let ids = |after| {
            tail.after(&agent, &Hidden::default(), after)
                .map(|(events, through)| {
                    (
                        events.into_iter().map(|e| e.id).collect::<Vec<_>>(),
                        through,
                    )
                })
        };
        // From just before the first entry held: everything the agent may see, in order.
        assert_eq!(
            ids(9),
            Some((vec!["10".into(), "11".into(), "13".into()], 13))
        );
        assert_eq!(ids(11), Some((vec!["13".into()], 13)));
        // Up to date, or ahead of the tail: nothing, and the position stays.
        assert_eq!(ids(13), Some((vec![], 13)));
        assert_eq!(ids(20), Some((vec![], 20)));
        // Entries before the tail are not held: the caller reads the database.
        assert_eq!(ids(8), None);
        let empty = Tail {
            loaded: true,
            through: 5,
            entries: VecDeque::new(),
        };
        assert!(empty.after(&agent, &Hidden::default(), 4).is_none());
        // A feed not read yet holds nothing, whatever the position.
        assert!(
            Tail::default()
                .after(&agent, &Hidden::default(), 20)
                .is_none()
        );
        // A requester never sees internal notes nor others' tickets.
        let requester = TenantCtx::authenticated(Uuid::nil(), someone, Role::Requester, None);
        let seen: Vec<String> = tail
            .after(&requester, &Hidden::default(), 9)
            .unwrap()
            .0
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(seen, vec!["12".to_owned()]);
    }
}
