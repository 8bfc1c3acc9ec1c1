//! Background work that runs beside the API (`serve`) or alone (`worker`): the outbox
//! dispatcher, and routine maintenance (expired login throttles, idempotency records, stream
//! entries past their resume window, long-handled outbox rows).

use std::time::Duration;

use tokio::sync::watch;

use crate::{
    config::WorkerConfig,
    events::{Handlers, dispatch, ops, stream},
    idempotency,
    identity::throttle,
    notify,
    store::Db,
};

const MAINTENANCE_EVERY: Duration = Duration::from_secs(300);

/// Everything an event causes, in order: its entry in the live feed, then notifications.
/// A new consumer (mail, webhooks, SLA timers) is one module and one line here.
pub fn handlers() -> Handlers {
    Handlers::new()
        .with(stream::Publisher)
        .with(notify::Notifier)
}

/// Runs until `stop` turns true.
pub async fn run(db: Db, cfg: WorkerConfig, stop: watch::Receiver<bool>) {
    tracing::info!("worker started");
    tokio::join!(
        dispatch::run(db.clone(), cfg, handlers(), stop.clone()),
        maintain(db, stop)
    );
    tracing::info!("worker stopped");
}

async fn maintain(db: Db, mut stop: watch::Receiver<bool>) {
    loop {
        report(
            "expired login throttle windows",
            throttle::purge_expired(&db).await,
        );
        report(
            "expired idempotency records",
            idempotency::purge_expired(&db).await,
        );
        report("expired stream entries", stream::purge_expired(&db).await);
        report("handled outbox events", ops::purge_handled(&db).await);
        tokio::select! {
            _ = tokio::time::sleep(MAINTENANCE_EVERY) => {}
            _ = stop.changed() => break,
        }
    }
}

fn report(what: &str, purged: crate::error::Result<u64>) {
    match purged {
        Ok(0) => {}
        Ok(n) => tracing::info!(purged = n, "{what} removed"),
        Err(err) => tracing::warn!(error = ?err, "purging {what} failed; will retry"),
    }
}
