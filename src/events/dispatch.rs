//! The dispatcher: claims committed outbox events in batches under a lease, runs their handlers
//! outside the claim transaction, then settles them (done, retry later, or dead).
//!
//! - Any number of dispatchers may run (in `serve` and in `docket worker` processes): a claim
//!   walks the open events, picks what it may take, and takes it with `FOR UPDATE SKIP LOCKED`
//!   on PostgreSQL (in SQLite's one write transaction at a time on SQLite).
//! - A claim lasts `lease`; a crashed worker's events are claimed again when it ends. Every
//!   claim counts an attempt, and that count fences settling, so a worker whose lease ran out
//!   cannot settle an event another worker has claimed since.
//! - Only the earliest unfinished event of a ticket is claimable, so one ticket's events are
//!   handled in commit order (a ticket's writers queue on its row lock, so their insert order
//!   is their commit order).
//! - Handlers are idempotent (unique keys on what they create): handling twice is harmless.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use rand::Rng as _;
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait};
use tokio::{sync::watch, task::JoinSet};
use uuid::Uuid;

use super::{
    contract::{Body, Event},
    entity,
};
use crate::{
    background,
    config::WorkerConfig,
    error::{Error, Result},
    store::{Db, TenantTx},
};

/// Batches a dispatcher has in hand at once: while one is claimed or settled, another is
/// handled, so neither the database nor the handlers wait on the other. The claim gives each
/// ticket's earliest open event only, so two batches never hold events of one ticket.
const BATCHES_IN_FLIGHT: usize = 2;
/// Organisations of one batch whose events are handled at once (each holds at most one
/// database connection while it runs): with `BATCHES_IN_FLIGHT`, 8 connections of the pool.
const ORGANISATIONS_AT_ONCE: usize = 4;
/// Retry delays stop growing here.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A consumer of events whose work reaches outside the organisation's database, or takes
/// transactions of its own: outgoing mail replies, object storage. Handlers are registered in
/// the wiring (`worker.rs`), never named here. Each must be idempotent: an event is handled at
/// least once, and a retry after a crash or a failure runs every handler again.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Names the handler in logs, metrics and an event's `last_error`.
    fn name(&self) -> &'static str;
    /// Handles one event; the dispatcher calls it for each event on its own, so one that cannot
    /// be handled holds up no other.
    async fn handle(&self, db: &Db, event: &Event) -> Result<()>;
}

/// A consumer of events whose work is writes to the organisation's database only: the feed,
/// notifications and their mails, webhook deliveries. Write handlers registered one after
/// another share one write transaction per organisation batch, so an organisation's events
/// cost one commit for all of them. Idempotent, as every [`Handler`].
#[async_trait::async_trait]
pub trait WriteHandler: Send + Sync + 'static {
    /// Names the handler in logs, metrics and an event's `last_error`.
    fn name(&self) -> &'static str;
    /// Whether the handler has anything to do for `event` (it is given only those).
    fn concerns(&self, event: &Event) -> bool;
    /// Writes what it makes of `events` (one organisation's, at most one per ticket) in `tx`,
    /// that organisation's write transaction.
    async fn write(&self, tx: &TenantTx, events: &[&Event]) -> Result<()>;
}

/// The handlers every event goes through, in order of registration: each run of write
/// handlers registered one after another is one step, in one transaction.
#[derive(Clone, Default)]
pub struct Handlers(Arc<Vec<Step>>);

#[derive(Clone)]
enum Step {
    Alone(Arc<dyn Handler>),
    Writes(Vec<Arc<dyn WriteHandler>>),
}

impl Handlers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `handler` after those already registered.
    pub fn with(self, handler: impl Handler) -> Self {
        let mut steps: Vec<Step> = self.0.iter().cloned().collect();
        steps.push(Step::Alone(Arc::new(handler)));
        Self(Arc::new(steps))
    }

    /// Adds a write handler after those already registered, in one transaction with the write
    /// handlers just before it.
    pub fn with_writes(self, handler: impl WriteHandler) -> Self {
        let mut steps: Vec<Step> = self.0.iter().cloned().collect();
        match steps.last_mut() {
            Some(Step::Writes(writers)) => writers.push(Arc::new(handler)),
            _ => steps.push(Step::Writes(vec![Arc::new(handler)])),
        }
        Self(Arc::new(steps))
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0
            .iter()
            .flat_map(|step| match step {
                Step::Alone(h) => vec![h.name()],
                Step::Writes(writers) => writers.iter().map(|w| w.name()).collect(),
            })
            .collect()
    }
}

/// How a handled event ends.
enum Outcome {
    Done,
    Failed(String),
}

/// Runs a dispatcher until `stop` turns true; the batch in hand is finished first.
pub async fn run(db: Db, cfg: WorkerConfig, handlers: Handlers, stop: watch::Receiver<bool>) {
    tracing::info!(batch = cfg.worker_batch, handlers = ?handlers.names(), "event dispatcher started");
    let poll = Duration::from_millis(cfg.worker_poll_ms);
    let dispatchers = (0..BATCHES_IN_FLIGHT).map(|_| {
        background::repeat(
            "dispatching events",
            &db.signals().outbox,
            poll,
            stop.clone(),
            || step(&db, &cfg, &handlers),
        )
    });
    futures_util::future::join_all(dispatchers).await;
    tracing::info!("event dispatcher stopped");
}

/// Handles every event that is due now (retries that become due meanwhile included) and
/// returns how many it handled, successfully or not. For tests and tools that own the worker:
/// what `run` would do eventually, done before this returns.
pub async fn drain(db: &Db, cfg: &WorkerConfig, handlers: &Handlers) -> Result<usize> {
    let mut total = 0;
    loop {
        match step(db, cfg, handlers).await? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

/// Claims one batch, runs its handlers and settles it; returns the batch's size.
async fn step(db: &Db, cfg: &WorkerConfig, handlers: &Handlers) -> Result<usize> {
    let claimed = claim(db, cfg).await?;
    let n = claimed.len();
    if n > 0 {
        let outcomes = handle_all(db, handlers, claimed).await;
        // If settling fails, the leases run out and the events are claimed again: handlers
        // are idempotent.
        settle(db, cfg, outcomes).await?;
    }
    Ok(n)
}

/// Claims up to a batch of due events (and events whose lease has run out), oldest first,
/// each ticket's earliest open event only.
///
/// The open events are walked in order through their own index, a page at a time, and the
/// claimable ones picked here: an event is its ticket's earliest open one when no event of its
/// ticket came before it in the walk. A claim so reads about a batch's worth of rows however
/// long the backlog, whatever the planner's statistics say. (As one statement, with the
/// ticket rule as a `NOT EXISTS`, PostgreSQL planned from statistics taken while the queue was
/// empty went quadratic on a sudden backlog: 12 s per claim with 15,000 open events.)
async fn claim(db: &Db, cfg: &WorkerConfig) -> Result<Vec<(Claimed, Result<Event>)>> {
    let now = Utc::now();
    let lease_end = now + Duration::from_secs(cfg.worker_lease_secs);
    let tx = db.maintenance().await?;
    let backend = tx.conn().get_database_backend();
    if backend == DbBackend::Postgres {
        // The walk must follow the index's order: with sorting off, PostgreSQL takes no other
        // path (it would read and sort the whole backlog when it thinks it small).
        tx.conn()
            .execute_unprepared("SET LOCAL enable_sort = off")
            .await?;
    }
    let picked = pick_claimable(tx.conn(), now, cfg.worker_batch as usize).await?;
    if picked.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    // Claimed only if still due: another worker may have claimed one since the walk. The
    // due test is a `CASE`, which no index serves, so the rows are found by primary key.
    let skip_locked = match backend {
        DbBackend::Postgres => "FOR UPDATE SKIP LOCKED",
        _ => "",
    };
    let mut values: Vec<sea_orm::Value> = vec![lease_end.into(), now.into()];
    let mut keys = Vec::with_capacity(picked.len());
    for (org_id, id) in picked {
        let n = values.len();
        keys.push(format!("(${}, ${})", n + 1, n + 2));
        values.extend([org_id.into(), id.into()]);
    }
    let sql = format!(
        "UPDATE outbox_events SET status = 'processing', attempts = attempts + 1, locked_until = $1 \
         WHERE (org_id, id) IN ( \
           SELECT org_id, id FROM outbox_events \
           WHERE (org_id, id) IN (VALUES {keys}) \
             AND CASE status WHEN 'pending' THEN available_at <= $2 \
                             WHEN 'processing' THEN locked_until <= $2 ELSE false END \
           {skip_locked}) \
         RETURNING *",
        keys = keys.join(", ")
    );
    let rows = entity::Entity::find()
        .from_raw_sql(crate::store::statement(backend, &sql, values))
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    let mut claimed: Vec<_> = rows.into_iter().map(Claimed::decode).collect();
    claimed.sort_by_key(|(c, _)| (c.created_at, c.id));
    Ok(claimed)
}

/// Open events read per statement while looking for claimable ones.
const WALK_PAGE: usize = 1000;

/// The open events in claim order, from the first.
const OPEN_IN_ORDER: &str = "SELECT org_id, id, ticket_id, status, available_at, locked_until, \
     created_at FROM outbox_events WHERE status IN ('pending', 'processing')";

/// Up to `batch` claimable events, oldest first: walks the open events in order and keeps
/// each ticket's first one, if it is due (one that is not yet due still holds its ticket's
/// later events back).
///
/// The whole walk must see one state of the queue: read in pieces that each saw a later one,
/// a ticket's earlier event committed between two pieces would be missed and its later event
/// taken for the first. On PostgreSQL the walk is a cursor (one snapshot); on SQLite the
/// claim's write transaction already keeps every other writer out, so pages read by position
/// agree.
async fn pick_claimable(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    batch: usize,
) -> Result<Vec<(Uuid, Uuid)>> {
    let backend = conn.get_database_backend();
    if backend == DbBackend::Postgres {
        conn.execute_unprepared(&format!(
            "DECLARE open_events NO SCROLL CURSOR FOR {OPEN_IN_ORDER} ORDER BY created_at, id"
        ))
        .await?;
    }
    let mut seen: HashSet<(Uuid, Uuid)> = HashSet::new();
    let mut picked = Vec::new();
    let mut after: Option<(DateTime<Utc>, Uuid)> = None;
    loop {
        let page = match (backend, after) {
            (DbBackend::Postgres, _) => {
                crate::store::statement(backend, &format!("FETCH {WALK_PAGE} FROM open_events"), [])
            }
            (_, None) => crate::store::statement(
                backend,
                &format!("{OPEN_IN_ORDER} ORDER BY created_at, id LIMIT {WALK_PAGE}"),
                [],
            ),
            (_, Some((at, id))) => crate::store::statement(
                backend,
                &format!(
                    "{OPEN_IN_ORDER} AND (created_at, id) > ($1, $2) \
                     ORDER BY created_at, id LIMIT {WALK_PAGE}"
                ),
                [at.into(), id.into()],
            ),
        };
        let rows = conn.query_all_raw(page).await?;
        for row in &rows {
            let org_id: Uuid = row.try_get("", "org_id")?;
            let id: Uuid = row.try_get("", "id")?;
            let ticket_id: Option<Uuid> = row.try_get("", "ticket_id")?;
            after = Some((row.try_get("", "created_at")?, id));
            if let Some(ticket_id) = ticket_id
                && !seen.insert((org_id, ticket_id))
            {
                continue;
            }
            let status: String = row.try_get("", "status")?;
            let due = match status.as_str() {
                "pending" => row.try_get::<DateTime<Utc>>("", "available_at")? <= now,
                _ => row
                    .try_get::<Option<DateTime<Utc>>>("", "locked_until")?
                    .is_some_and(|until| until <= now),
            };
            if due {
                picked.push((org_id, id));
                if picked.len() == batch {
                    return Ok(picked);
                }
            }
        }
        if rows.len() < WALK_PAGE {
            return Ok(picked);
        }
    }
}

/// A claimed outbox row: what settling it needs.
struct Claimed {
    org_id: Uuid,
    id: Uuid,
    kind: String,
    attempts: i32,
    created_at: DateTime<Utc>,
}

impl Claimed {
    /// The row, and its event if the payload decodes (the handlers take the event itself).
    ///
    /// Handlers act for the organisation the payload names, so it must be the row's: the one
    /// whose transaction wrote it (under row security on PostgreSQL). An event that names
    /// another is refused here, and ends dead, before any handler could act on it for that
    /// other organisation.
    fn decode(m: entity::Model) -> (Self, Result<Event>) {
        let event = Body::decode(&m.kind, m.payload).and_then(|(envelope, body)| {
            if envelope.org_id != m.org_id {
                // Not the other organisation's id: admins of this one read `last_error`.
                return Err(Error::internal(anyhow::anyhow!(
                    "the event's payload names another organisation than its row"
                )));
            }
            Ok(Event {
                id: m.id,
                envelope,
                body,
                attempts: m.attempts,
                created_at: m.created_at,
            })
        });
        let claimed = Self {
            org_id: m.org_id,
            id: m.id,
            kind: m.kind,
            attempts: m.attempts,
            created_at: m.created_at,
        };
        (claimed, event)
    }
}

/// Runs every claimed event's handlers: each organisation's events as one batch through the
/// handlers in order, a few organisations at a time (claimed events are of different tickets,
/// so their order does not matter). An event whose handler failed skips the handlers after
/// it; the events of an organisation whose run panicked are left claimed (their lease runs
/// out and they are retried).
async fn handle_all(
    db: &Db,
    handlers: &Handlers,
    claimed: Vec<(Claimed, Result<Event>)>,
) -> Vec<(Claimed, Outcome)> {
    let started = Instant::now();
    let mut failed: HashMap<Uuid, String> = HashMap::new();
    let mut by_org: BTreeMap<Uuid, Vec<Event>> = BTreeMap::new();
    let mut settling = Vec::with_capacity(claimed.len());
    for (c, event) in claimed {
        match event {
            Ok(event) => by_org.entry(c.org_id).or_default().push(event),
            Err(err) => {
                failed.insert(c.id, err.to_string());
            }
        }
        settling.push(c);
    }
    let mut abandoned: HashSet<Uuid> = HashSet::new();
    let mut running = JoinSet::new();
    let mut batches: HashMap<tokio::task::Id, Vec<Uuid>> = HashMap::new();
    let mut batches_left = by_org.into_values();
    loop {
        if running.len() < ORGANISATIONS_AT_ONCE
            && let Some(events) = batches_left.next()
        {
            let ids = events.iter().map(|e| e.id).collect();
            let (db, handlers) = (db.clone(), handlers.clone());
            let task = running.spawn(async move { run_handlers(&db, &handlers, events).await });
            batches.insert(task.id(), ids);
            continue;
        }
        match running.join_next().await {
            Some(Ok(errors)) => failed.extend(errors),
            Some(Err(err)) => {
                tracing::error!(error = %err, "an event handler panicked");
                abandoned.extend(batches.remove(&err.id()).unwrap_or_default());
            }
            None => break,
        }
    }
    // Each event was handled while its batch's handlers ran: that is its handling time.
    let handling = started.elapsed().as_secs_f64();
    settling
        .into_iter()
        .filter(|c| !abandoned.contains(&c.id))
        .map(|c| {
            let outcome = match failed.remove(&c.id) {
                Some(error) => Outcome::Failed(error),
                None => {
                    metrics::histogram!("docket_event_handling_seconds").record(handling);
                    let delay = (Utc::now() - c.created_at).to_std().unwrap_or_default();
                    metrics::histogram!("docket_event_delay_seconds").record(delay.as_secs_f64());
                    Outcome::Done
                }
            };
            (c, outcome)
        })
        .collect()
}

/// One organisation's events through every handler in order; an event that fails a handler
/// goes no further. Returns the events that failed, with their errors.
async fn run_handlers(db: &Db, handlers: &Handlers, mut events: Vec<Event>) -> Vec<(Uuid, String)> {
    let mut failed = Vec::new();
    for step in handlers.0.iter() {
        let refs: Vec<&Event> = events.iter().collect();
        let errors = match step {
            Step::Alone(handler) => run_alone(db, handler.as_ref(), &refs).await,
            Step::Writes(writers) => run_writes(db, writers, &refs).await,
        };
        events.retain(|e| !errors.iter().any(|(id, _)| *id == e.id));
        failed.extend(errors);
        if events.is_empty() {
            break;
        }
    }
    failed
}

/// One organisation's events through a handler with transactions of its own, each event on
/// its own. Returns the events that failed, with their errors.
async fn run_alone(db: &Db, handler: &dyn Handler, events: &[&Event]) -> Vec<(Uuid, String)> {
    let mut failed = Vec::new();
    for event in events {
        if let Err(err) = handler.handle(db, event).await {
            failed.push(failure(handler.name(), event, err));
        }
    }
    failed
}

/// One organisation's events through a run of write handlers: all of them in one
/// transaction; when that fails, handler by handler, each on the events together, else one by
/// one, so the failure is pinned on its handler and its events.
async fn run_writes(
    db: &Db,
    writers: &[Arc<dyn WriteHandler>],
    events: &[&Event],
) -> Vec<(Uuid, String)> {
    if writers.len() > 1 && write_in_one(db, writers, events).await.is_ok() {
        return Vec::new();
    }
    let mut left = events.to_vec();
    let mut failed = Vec::new();
    for writer in writers {
        let alone = std::slice::from_ref(writer);
        if left.len() > 1 && write_in_one(db, alone, &left).await.is_ok() {
            continue;
        }
        let mut errors = Vec::new();
        for &event in &left {
            if let Err(err) = write_in_one(db, alone, &[event]).await {
                errors.push(failure(writer.name(), event, err));
            }
        }
        left.retain(|e| !errors.iter().any(|(id, _)| *id == e.id));
        failed.extend(errors);
    }
    failed
}

/// Runs `writers` in order on the events each concerns, in one write transaction of their
/// organisation (none at all when no writer is concerned).
async fn write_in_one(db: &Db, writers: &[Arc<dyn WriteHandler>], events: &[&Event]) -> Result<()> {
    let work: Vec<(&Arc<dyn WriteHandler>, Vec<&Event>)> = writers
        .iter()
        .map(|w| {
            (
                w,
                events
                    .iter()
                    .copied()
                    .filter(|e| w.concerns(e))
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, concerned)| !concerned.is_empty())
        .collect();
    let Some(first) = work.first().and_then(|(_, concerned)| concerned.first()) else {
        return Ok(());
    };
    let tx = db.write_org(first.org_id()).await?;
    for (writer, concerned) in &work {
        writer.write(&tx, concerned).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Logs a handler's failure on an event, and gives what the event records of it.
fn failure(handler: &str, event: &Event, err: Error) -> (Uuid, String) {
    tracing::warn!(event_id = %event.id, kind = event.kind(), handler,
        attempts = event.attempts, error = ?err, "event handler failed");
    (event.id, format!("{handler}: {err}"))
}

/// Marks each event done, due again after a backoff, or dead, in one transaction: the done
/// ones in one statement. An event whose attempt count moved on was claimed again by another
/// worker: that claim settles it.
///
/// The attempt count alone fences: only a claim changes it, and each claim is settled once.
/// The statements name no status, so PostgreSQL finds the rows by primary key; given
/// `status = 'processing'` it would walk the status index instead, rescanning the batch's
/// values for every row (75 ms instead of 12 for 500 events).
async fn settle(db: &Db, cfg: &WorkerConfig, outcomes: Vec<(Claimed, Outcome)>) -> Result<()> {
    let now = Utc::now();
    let tx = db.maintenance().await?;
    let backend = tx.conn().get_database_backend();
    let mut done: Vec<sea_orm::Value> = vec![now.into()];
    let mut done_rows = Vec::new();
    for (event, outcome) in outcomes {
        let fence = |sql: &str, mut values: Vec<sea_orm::Value>| {
            values.extend([event.org_id.into(), event.id.into(), event.attempts.into()]);
            let n = values.len();
            crate::store::statement(
                backend,
                &format!(
                    "UPDATE outbox_events SET locked_until = NULL, {sql} \
                     WHERE org_id = ${} AND id = ${} AND attempts = ${}",
                    n - 2,
                    n - 1,
                    n
                ),
                values,
            )
        };
        let kind = event.kind.clone();
        let statement = match outcome {
            Outcome::Done => {
                metrics::counter!("docket_events_handled_total", "kind" => kind).increment(1);
                let n = done.len();
                done_rows.push(format!("(${}, ${}, ${})", n + 1, n + 2, n + 3));
                done.extend([event.org_id.into(), event.id.into(), event.attempts.into()]);
                continue;
            }
            Outcome::Failed(error) if event.attempts >= cfg.worker_max_attempts => {
                tracing::error!(event_id = %event.id, kind = %event.kind, attempts = event.attempts,
                    "event is dead after its last attempt");
                metrics::counter!("docket_events_dead_total", "kind" => kind).increment(1);
                fence(
                    "status = 'dead', last_error = $1",
                    vec![truncate(error).into()],
                )
            }
            Outcome::Failed(error) => {
                metrics::counter!("docket_events_failed_total", "kind" => kind).increment(1);
                let retry_at = now + backoff(cfg, event.attempts);
                fence(
                    "status = 'pending', available_at = $1, last_error = $2",
                    vec![retry_at.into(), truncate(error).into()],
                )
            }
        };
        tx.conn().execute_raw(statement).await?;
    }
    if !done_rows.is_empty() {
        let sql = format!(
            "UPDATE outbox_events SET locked_until = NULL, status = 'done', handled_at = $1 \
             WHERE (org_id, id, attempts) IN (VALUES {})",
            done_rows.join(", ")
        );
        tx.conn()
            .execute_raw(crate::store::statement(backend, &sql, done))
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The delay before attempt `attempts + 1`: doubling from the configured base, capped, with
/// jitter so events that failed together do not retry together.
fn backoff(cfg: &WorkerConfig, attempts: i32) -> Duration {
    let base = Duration::from_millis(cfg.worker_retry_base_ms);
    let doubled = base.saturating_mul(1u32 << attempts.clamp(1, 20).saturating_sub(1));
    doubled
        .min(MAX_BACKOFF)
        .mul_f64(rand::rng().random_range(0.5..=1.0))
}

fn truncate(mut error: String) -> String {
    const MAX: usize = 2000;
    if error.len() > MAX {
        let mut end = MAX;
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        error.truncate(end);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(base_ms: u64) -> WorkerConfig {
        WorkerConfig {
            worker_batch: 100,
            worker_lease_secs: 30,
            worker_max_attempts: 10,
            worker_retry_base_ms: base_ms,
            worker_poll_ms: 1000,
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let c = cfg(1000);
        for attempts in 1..=6 {
            let full = Duration::from_millis(1000 << (attempts - 1));
            for _ in 0..50 {
                let d = backoff(&c, attempts);
                assert!(d <= full && d >= full / 2, "attempt {attempts}: {d:?}");
            }
        }
        assert!(backoff(&c, 40) <= MAX_BACKOFF);
        assert!(backoff(&c, 40) >= MAX_BACKOFF / 2);
    }

    #[test]
    fn errors_are_cut_on_a_character_boundary() {
        let long = "é".repeat(1500);
        let cut = truncate(long);
        assert!(cut.len() <= 2000);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
