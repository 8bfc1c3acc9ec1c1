//! What a hostile or unlucky client found, each pinned on both backends: a saturated database
//! is a temporary 503; connections that hold a slot without using it are closed, and past the
//! cap new ones are refused; ...

use std::time::Duration;

use sea_orm::{
    ConnectionTrait, Database, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use serde_json::json;

use crate::helpers::*;

/// Every pooled connection busy for longer than the acquire timeout is "busy, retry", not 500.
#[tokio::test]
async fn a_saturated_database_answers_503_with_retry_after() {
    let app = spawn_app_tuned(None, |store, _| {
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

/// A connection that sends nothing, or its head one line at a time, is closed after the header
/// timeout; past the connection cap, a new one is answered 503 at once; a stream, once its
/// request is in, outlives the timeout.
#[tokio::test]
async fn connections_that_hold_a_slot_without_using_it_are_closed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let app = spawn_app_tuned(None, |_, serve| {
        serve.header_timeout_secs = 1;
        serve.max_connections = 3;
    })
    .await;
    let owner = app.signup("acme", "o@example.com").await;
    let project = app.project(&owner.token, "OPS").await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let closed_within = |mut conn: tokio::net::TcpStream, limit: Duration| async move {
        let mut buf = [0u8; 1024];
        let started = std::time::Instant::now();
        loop {
            match tokio::time::timeout(limit, conn.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
                Ok(Ok(_)) => continue,
                Err(_) => panic!("still open after {limit:?}"),
            }
        }
    };

    // Idle from the start.
    let idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let took = closed_within(idle, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(900), "{took:?}");

    // A head sent a line every 300 ms never completes in time.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut cut = false;
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if slow
            .write_all(format!("x-pad-{i}: y\r\n").as_bytes())
            .await
            .is_err()
        {
            cut = true;
            break;
        }
    }
    assert!(cut, "the slow head was never cut off");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // A stream whose request is in stays open past the header timeout.
    app.run_pending_events().await;
    let mut stream = SseClient::connect(&app.base, &owner.token, None).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.ticket(&owner.token, &project, json!({})).await;
    app.run_pending_events().await;
    let event = stream
        .next(Duration::from_secs(5))
        .await
        .expect("the stream still delivers");
    assert_eq!(event.event, "ticket.created");

    // The stream holds one slot; two more fill the cap; the next is refused at once.
    let held = [
        tokio::net::TcpStream::connect(&addr).await.unwrap(),
        tokio::net::TcpStream::connect(&addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut refused = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), refused.read_to_end(&mut answer))
        .await
        .expect("answered at once")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    drop(held);
    drop(stream);
    app.shutdown().await;
}
