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

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng as _;
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait};
use serde_json::Value;
use tokio::{sync::watch, task::JoinSet};
use uuid::Uuid;

use super::{entity, stream};
use crate::{config::WorkerConfig, error::Result, notify, store::Db};

/// Handlers of one batch that run at once (each holds a database connection while it runs).
const HANDLERS_AT_ONCE: usize = 8;
/// Retry delays stop growing here.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A claimed event, as handlers see it.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub org_id: Uuid,
    pub id: Uuid,
    pub kind: String,
    pub ticket_id: Option<Uuid>,
    pub payload: Value,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

impl Event {
    /// The id in the payload field `field`, if there is one.
    pub fn uuid_at(&self, field: &str) -> Option<Uuid> {
        self.payload[field].as_str().and_then(|s| s.parse().ok())
    }
}

impl From<entity::Model> for Event {
    fn from(m: entity::Model) -> Self {
        Self {
            org_id: m.org_id,
            id: m.id,
            kind: m.kind,
            ticket_id: m.ticket_id,
            payload: m.payload,
            attempts: m.attempts,
            created_at: m.created_at,
        }
    }
}

/// Everything an event causes. Each handler is idempotent on its own.
#[derive(Clone, Copy, Debug)]
enum Handler {
    Stream,
    Notifications,
}

impl Handler {
    const ALL: [Handler; 2] = [Handler::Stream, Handler::Notifications];

    fn name(self) -> &'static str {
        match self {
            Handler::Stream => "stream",
            Handler::Notifications => "notifications",
        }
    }

    async fn run(self, db: &Db, event: &Event) -> Result<()> {
        match self {
            Handler::Stream => stream::on_event(db, event).await,
            Handler::Notifications => notify::on_event(db, event).await,
        }
    }
}

/// How a handled event ends.
enum Outcome {
    Done,
    Failed(String),
}

/// Runs a dispatcher until `stop` turns true; the batch in hand is finished first.
pub async fn run(db: Db, cfg: WorkerConfig, mut stop: watch::Receiver<bool>) {
    tracing::info!(batch = cfg.worker_batch, "event dispatcher started");
    loop {
        let claimed = match claim(&db, &cfg).await {
            Ok(events) => events,
            Err(err) => {
                tracing::warn!(error = ?err, "claiming events failed; will retry");
                Vec::new()
            }
        };
        let idle = claimed.is_empty();
        if !idle {
            let outcomes = handle_all(&db, claimed).await;
            if let Err(err) = settle(&db, &cfg, outcomes).await {
                // The leases run out and the events are claimed again: handlers are idempotent.
                tracing::warn!(error = ?err, "settling events failed; they will be retried");
            }
        }
        if *stop.borrow() {
            break;
        }
        if idle {
            tokio::select! {
                _ = db.signals().outbox.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(cfg.worker_poll_ms)) => {}
                _ = stop.changed() => break,
            }
        }
    }
    tracing::info!("event dispatcher stopped");
}

/// Claims up to a batch of due events (and events whose lease has run out).
async fn claim(db: &Db, cfg: &WorkerConfig) -> Result<Vec<Event>> {
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
           WHERE ((e.status = 'pending' AND e.available_at <= $2) \
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
    let mut events: Vec<Event> = rows.into_iter().map(Event::from).collect();
    events.sort_by_key(|e| (e.created_at, e.id));
    Ok(events)
}

/// Runs every claimed event's handlers, a few events at a time (claimed events are of
/// different tickets, so their order does not matter).
async fn handle_all(db: &Db, events: Vec<Event>) -> Vec<(Event, Outcome)> {
    let mut running = JoinSet::new();
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        if running.len() >= HANDLERS_AT_ONCE
            && let Some(done) = running.join_next().await
        {
            outcomes.extend(finished(done));
        }
        let db = db.clone();
        running.spawn(async move {
            let outcome = handle(&db, &event).await;
            (event, outcome)
        });
    }
    while let Some(done) = running.join_next().await {
        outcomes.extend(finished(done));
    }
    outcomes
}

/// A handler that panicked leaves its event claimed: the lease runs out and it is retried.
fn finished(
    joined: std::result::Result<(Event, Outcome), tokio::task::JoinError>,
) -> Option<(Event, Outcome)> {
    joined
        .inspect_err(|err| tracing::error!(error = %err, "an event handler panicked"))
        .ok()
}

async fn handle(db: &Db, event: &Event) -> Outcome {
    let started = Instant::now();
    for handler in Handler::ALL {
        if let Err(err) = handler.run(db, event).await {
            tracing::warn!(event_id = %event.id, kind = %event.kind, handler = handler.name(),
                attempts = event.attempts, error = ?err, "event handler failed");
            return Outcome::Failed(format!("{}: {err}", handler.name()));
        }
    }
    metrics::histogram!("docket_event_handling_seconds").record(started.elapsed().as_secs_f64());
    let delay = (Utc::now() - event.created_at).to_std().unwrap_or_default();
    metrics::histogram!("docket_event_delay_seconds").record(delay.as_secs_f64());
    Outcome::Done
}

/// Marks each event done, due again after a backoff, or dead, in one transaction. An event
/// whose attempt count moved on was claimed again by another worker: that claim settles it.
async fn settle(db: &Db, cfg: &WorkerConfig, outcomes: Vec<(Event, Outcome)>) -> Result<()> {
    let now = Utc::now();
    let tx = db.maintenance().await?;
    let backend = tx.conn().get_database_backend();
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
                fence("status = 'done', handled_at = $1", vec![now.into()])
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
