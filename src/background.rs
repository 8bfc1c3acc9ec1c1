//! The loop every queue worker runs (the outbox dispatcher, the mail sender): do a step; when it
//! found nothing to do, sleep until a commit wakes it, the poll interval passes, or the process
//! stops. A failed step is logged and retried; the step in hand always finishes first.

use std::{future::Future, time::Duration};

use tokio::sync::{Notify, watch};

use crate::error::Result;

/// Runs `step` (which returns how many items it handled) until `stop` turns true.
pub async fn repeat<F, Fut>(
    what: &str,
    wake: &Notify,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<usize>>,
{
    loop {
        let handled = match step().await {
            Ok(n) => n,
            Err(err) => {
                tracing::warn!(error = ?err, "{what} failed; will retry");
                0
            }
        };
        if *stop.borrow() {
            break;
        }
        if handled == 0 {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => break,
            }
        }
    }
}
