//! The dispatcher: claims committed outbox events in batches under a lease, runs their handlers
//! outside the claim transaction, then settles them (done, retry later, or dead).
//!
//! - Any number of dispatchers may run (in `serve` and in `docket worker` processes): claims
//!   use `FOR UPDATE SKIP LOCKED` on PostgreSQL and one atomic `UPDATE … RETURNING` on SQLite.
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
    error::Result,
    store::{Db, TenantTx},
};

/// Handlers of one batch that run at once (each holds a database connection while it runs).
const HANDLERS_AT_ONCE: usize = 8;
/// Retry delays stop growing here.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A consumer of events: notifications, the real-time feed, mail, webhooks. Handlers are
/// registered in the wiring (`worker.rs`), never named here. Each must be idempotent: an event
/// is handled at least once, and a retry after a crash or a failure runs every handler again.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Names the handler in logs, metrics and an event's `last_error`.
    fn name(&self) -> &'static str;
    async fn handle(&self, db: &Db, event: &Event) -> Result<()>;

    /// Handles events of one organisation, at most one per ticket, all or none: a handler whose
    /// work per event is a transaction of its own shares one among them (one commit, one
    /// wake-up of what waits for it). When this fails, the dispatcher handles the same events
    /// one by one, so one event that cannot be handled holds up no other.
    async fn handle_batch(&self, db: &Db, events: &[&Event]) -> Result<()> {
        for event in events {
            self.handle(db, event).await?;
        }
        Ok(())
    }
}

/// For handlers whose work per event is a part of one write transaction: runs `each` for the
/// events `relevant` keeps, all in one transaction of their organisation (none at all when no
/// event is relevant). The events are one organisation's, as `Handler::handle_batch` gets them.
pub(crate) async fn in_one_write(
    db: &Db,
    events: &[&Event],
    relevant: fn(&Event) -> bool,
    each: impl AsyncFn(&TenantTx, &Event) -> Result<()>,
) -> Result<()> {
    let mut kept = Vec::with_capacity(events.len());
    for event in events {
        if relevant(event) {
            kept.push(*event);
        }
    }
    let Some(first) = kept.first() else {
        return Ok(());
    };
    let tx = db.write_org(first.org_id()).await?;
    for event in kept {
        each(&tx, event).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The handlers every event goes through, in order of registration.
#[derive(Clone, Default)]
pub struct Handlers(Arc<Vec<Arc<dyn Handler>>>);

impl Handlers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `handler` after those already registered.
    pub fn with(self, handler: impl Handler) -> Self {
        let mut all: Vec<Arc<dyn Handler>> = self.0.iter().cloned().collect();
        all.push(Arc::new(handler));
        Self(Arc::new(all))
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|h| h.name()).collect()
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
    background::repeat(
        "dispatching events",
        &db.signals().outbox,
        poll,
        stop,
        || step(&db, &cfg, &handlers),
    )
    .await;
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

/// Claims up to a batch of due events (and events whose lease has run out), oldest first:
/// walked in order through the open events' own index, so a claim stops after its batch
/// however long the backlog.
async fn claim(db: &Db, cfg: &WorkerConfig) -> Result<Vec<Claimed>> {
    let now = Utc::now();
    let lease_end = now + Duration::from_secs(cfg.worker_lease_secs);
    let tx = db.maintenance().await?;
    let backend = tx.conn().get_database_backend();
    let skip_locked = match backend {
        DbBackend::Postgres => "FOR UPDATE SKIP LOCKED",
        _ => "",
    };
    let sql = format!(
        "UPDATE outbox_events SET status = 'processing', attempts = attempts + 1, locked_until = $1 \
         WHERE (org_id, id) IN ( \
           SELECT e.org_id, e.id FROM outbox_events e \
           WHERE e.status IN ('pending', 'processing') \
             AND ((e.status = 'pending' AND e.available_at <= $2) \
                  OR (e.status = 'processing' AND e.locked_until <= $2)) \
             AND NOT EXISTS ( \
               SELECT 1 FROM outbox_events p \
               WHERE p.org_id = e.org_id AND p.ticket_id = e.ticket_id \
                 AND p.status IN ('pending', 'processing') \
                 AND (p.created_at, p.id) < (e.created_at, e.id)) \
           ORDER BY e.created_at, e.id LIMIT $3 {skip_locked}) \
         RETURNING *"
    );
    let rows = entity::Entity::find()
        .from_raw_sql(crate::store::statement(
            backend,
            &sql,
            [
                lease_end.into(),
                now.into(),
                (cfg.worker_batch as i64).into(),
            ],
        ))
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    let mut claimed: Vec<Claimed> = rows.into_iter().map(Claimed::from).collect();
    claimed.sort_by_key(|c| (c.created_at, c.id));
    Ok(claimed)
}

/// A claimed outbox row: what settling it needs, and its event if the payload decodes.
struct Claimed {
    org_id: Uuid,
    id: Uuid,
    kind: String,
    attempts: i32,
    created_at: DateTime<Utc>,
    event: Result<Event>,
}

impl From<entity::Model> for Claimed {
    fn from(m: entity::Model) -> Self {
        let event = Body::decode(&m.kind, &m.payload).map(|(envelope, body)| Event {
            id: m.id,
            envelope,
            body,
            attempts: m.attempts,
            created_at: m.created_at,
        });
        Self {
            org_id: m.org_id,
            id: m.id,
            kind: m.kind,
            attempts: m.attempts,
            created_at: m.created_at,
            event,
        }
    }
}

/// Runs every claimed event's handlers: handler by handler, each organisation's events as one
/// batch, a few organisations at a time (claimed events are of different tickets, so their
/// order does not matter). An event whose handler failed skips the handlers after it; one
/// whose handler panicked is left claimed (its lease runs out and it is retried).
async fn handle_all(
    db: &Db,
    handlers: &Handlers,
    claimed: Vec<Claimed>,
) -> Vec<(Claimed, Outcome)> {
    let started = Instant::now();
    let mut failed: HashMap<Uuid, String> = HashMap::new();
    let mut abandoned: HashSet<Uuid> = HashSet::new();
    for c in &claimed {
        if let Err(err) = &c.event {
            failed.insert(c.id, err.to_string());
        }
    }
    for handler in handlers.0.iter() {
        let mut by_org: BTreeMap<Uuid, Vec<Event>> = BTreeMap::new();
        for c in &claimed {
            let skip = failed.contains_key(&c.id) || abandoned.contains(&c.id);
            if let (Ok(event), false) = (&c.event, skip) {
                by_org.entry(c.org_id).or_default().push(event.clone());
            }
        }
        let mut running = JoinSet::new();
        let mut batches: HashMap<tokio::task::Id, Vec<Uuid>> = HashMap::new();
        let mut batches_left = by_org.into_values();
        loop {
            if running.len() < HANDLERS_AT_ONCE
                && let Some(events) = batches_left.next()
            {
                let ids = events.iter().map(|e| e.id).collect();
                let (db, handler) = (db.clone(), handler.clone());
                let task =
                    running.spawn(async move { run_batch(&db, handler.as_ref(), events).await });
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
    }
    // Each event was handled while its batch's handlers ran: that is its handling time.
    let handling = started.elapsed().as_secs_f64();
    claimed
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

/// One organisation's events through one handler: together, else (when that fails) one by
/// one. Returns the events that failed, with their errors.
async fn run_batch(db: &Db, handler: &dyn Handler, events: Vec<Event>) -> Vec<(Uuid, String)> {
    let refs: Vec<&Event> = events.iter().collect();
    if refs.len() > 1 && handler.handle_batch(db, &refs).await.is_ok() {
        return Vec::new();
    }
    let mut failed = Vec::new();
    for event in &events {
        if let Err(err) = handler.handle(db, event).await {
            tracing::warn!(event_id = %event.id, kind = event.kind(), handler = handler.name(),
                attempts = event.attempts, error = ?err, "event handler failed");
            failed.push((event.id, format!("{}: {err}", handler.name())));
        }
    }
    failed
}

/// Marks each event done, due again after a backoff, or dead, in one transaction: the done
/// ones in one statement. An event whose attempt count moved on was claimed again by another
/// worker: that claim settles it.
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
                     WHERE org_id = ${} AND id = ${} AND attempts = ${} AND status = 'processing'",
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
             WHERE status = 'processing' AND (org_id, id, attempts) IN (VALUES {})",
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
