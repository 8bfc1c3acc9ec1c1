//! What a request cost the database: statements sent (`BEGIN` and `COMMIT` included) and
//! transactions begun, counted for the task serving it. The request log line carries both, and
//! with `DOCKET_SERVER_TIMING` on so does the answer's `Server-Timing` header, which is how the
//! HTTP suite holds reads and creates to their budgets.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
};

/// The counts of one request.
#[derive(Debug, Default)]
pub struct Cost {
    statements: AtomicU32,
    transactions: AtomicU32,
}

impl Cost {
    pub fn statements(&self) -> u32 {
        self.statements.load(Ordering::Relaxed)
    }

    pub fn transactions(&self) -> u32 {
        self.transactions.load(Ordering::Relaxed)
    }
}

tokio::task_local! {
    static CURRENT: Arc<Cost>;
}

/// Runs `fut`, counting what it sends to the database in `cost`.
pub async fn measure<F: Future>(cost: Arc<Cost>, fut: F) -> F::Output {
    CURRENT.scope(cost, fut).await
}

/// The counts of the request being served, if one is.
pub fn current() -> Option<Arc<Cost>> {
    CURRENT.try_with(Arc::clone).ok()
}

pub(super) fn statement() {
    let _ = CURRENT.try_with(|c| c.statements.fetch_add(1, Ordering::Relaxed));
}

pub(super) fn transaction() {
    let _ = CURRENT.try_with(|c| {
        c.transactions.fetch_add(1, Ordering::Relaxed);
        c.statements.fetch_add(1, Ordering::Relaxed);
    });
}
