//! Background work that runs beside the API (`serve`) or alone (`worker`). For now: routine
//! maintenance (expired login throttles and idempotency records); the outbox dispatcher joins
//! here.

use std::time::Duration;

use tokio::sync::watch;

use crate::{http::idempotency, identity::throttle, store::Db};

const MAINTENANCE_EVERY: Duration = Duration::from_secs(300);

/// Runs until `stop` turns true.
pub async fn run(db: Db, mut stop: watch::Receiver<bool>) {
    tracing::info!("worker started");
    loop {
        match throttle::purge_expired(&db).await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "expired login throttle windows removed"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "maintenance failed; will retry"),
        }
        match idempotency::purge_expired(&db).await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "expired idempotency records removed"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = ?err, "idempotency purge failed; will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(MAINTENANCE_EVERY) => {}
            _ = stop.changed() => break,
        }
    }
    tracing::info!("worker stopped");
}
