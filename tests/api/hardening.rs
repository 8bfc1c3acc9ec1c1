//! What a hostile or unlucky client found, each pinned on both backends: a saturated database
//! is a temporary 503, ...

use std::time::Duration;

use sea_orm::{
    ConnectionTrait, Database, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use serde_json::json;

use crate::helpers::*;

/// Every pooled connection busy for longer than the acquire timeout is "busy, retry", not 500.
#[tokio::test]
async fn a_saturated_database_answers_503_with_retry_after() {
    let app = spawn_app_tuned(None, |store| {
        // One connection for requests (PostgreSQL's commit listener keeps one more).
        store.db_max_connections = if backend() == Backend::Postgres { 2 } else { 1 };
        store.db_acquire_timeout_ms = 300;
    })
    .await;
    let owner = app.signup("acme", "o@example.com").await;

    // Another client holds a lock the server's next write must wait for, so that write keeps
    // the pool's only connection busy.
    let blocker = Database::connect(app.database_url.as_str()).await.unwrap();
    let lock = blocker
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await
        .unwrap();
    if backend() == Backend::Postgres {
        lock.execute_unprepared("LOCK TABLE organizations IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
    }
    let write = app
        .request(reqwest::Method::PATCH, "/api/v1/org", Some(&owner.token))
        .json(&json!({"name": "Acme Renamed"}));
    let waiting = tokio::spawn(write.send());
    // Let the write take the connection and queue behind the lock.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let busy = app.get("/api/v1/auth/me", &owner.token).await;
    busy.assert_problem(503, "unavailable");
    let retry_after: u64 = busy.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");

    lock.commit().await.unwrap();
    let written = waiting.await.unwrap().unwrap();
    assert_eq!(written.status(), 200);
    app.get("/api/v1/auth/me", &owner.token)
        .await
        .assert_ok(200);
    app.shutdown().await;
}
