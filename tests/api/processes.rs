//! Docket as separate processes, the way it is deployed: `docket worker` killed with SIGKILL in
//! the middle of its work, and (PostgreSQL) two `serve --no-worker` plus two `docket worker`
//! processes sharing one database.

use std::{
    net::{SocketAddr, TcpListener},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::StreamExt as _;
use serde_json::json;

use crate::{events::OPEN, helpers::*};

/// A child process, killed (SIGKILL) when dropped.
struct Process(Child);

impl Process {
    /// Kills it at once, as a crash would (SIGKILL: no shutdown code runs).
    fn kill(&mut self) {
        self.0.kill().expect("kill");
        self.0.wait().expect("reap");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `docket <args>` on the database, with quick dispatcher settings.
fn docket(args: &[&str], database_url: &str, data_dir: &Path, addr: Option<SocketAddr>) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_docket"));
    cmd.args(args)
        .env("DATABASE_URL", database_url)
        .env("DOCKET_DATA_DIR", data_dir)
        .env("DOCKET_JWT_SECRET", JWT_SECRET)
        .env("DOCKET_LOG_LEVEL", "warn")
        .env("DOCKET_WORKER_LEASE", "2")
        .env("DOCKET_WORKER_POLL_MS", "100")
        .env("DOCKET_WORKER_RETRY_BASE_MS", "20")
        .env("DOCKET_WORKER_BATCH", "50")
        .env("DOCKET_RATE_LIMIT_PER_MINUTE", "0")
        .env("DOCKET_RATE_LIMIT_ORG_PER_MINUTE", "0")
        .env("DOCKET_RATE_LIMIT_ANON_PER_MINUTE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(addr) = addr {
        cmd.env("DOCKET_ADDR", addr.to_string());
    }
    Process(cmd.spawn().expect("docket starts"))
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Starts `docket serve --no-worker` and waits until it is ready.
async fn serve(database_url: &str, data_dir: &Path) -> (Process, TestApp) {
    serve_at(
        &["serve", "--no-worker"],
        database_url,
        data_dir,
        free_addr(),
    )
    .await
}

/// Starts `docket <args>` listening on `addr` and waits until it is ready.
async fn serve_at(
    args: &[&str],
    database_url: &str,
    data_dir: &Path,
    addr: SocketAddr,
) -> (Process, TestApp) {
    let process = docket(args, database_url, data_dir, Some(addr));
    let app = TestApp::remote(format!("http://{addr}"), database_url.to_owned());
    for _ in 0..300 {
        if let Ok(res) = app.client.get(app.url("/readyz")).send().await
            && res.status() == 200
        {
            return (process, app);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("docket serve did not become ready");
}

/// A database for tests that run `docket` processes, migrated once before any starts.
async fn migrated_database(data: &Path) -> String {
    let url = match backend() {
        Backend::Postgres => fresh_pg_database().await,
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", data.join("docket.db").display()),
    };
    let migrated = Command::new(env!("CARGO_BIN_EXE_docket"))
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("DOCKET_DATA_DIR", data)
        .env("DOCKET_LOG_LEVEL", "warn")
        .status()
        .expect("docket migrate runs");
    assert!(migrated.success());
    url
}

#[tokio::test]
async fn a_worker_killed_mid_batch_loses_and_duplicates_nothing() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "a@example.com", "agent").await;
    let project = app.project(&owner.token, "OPS").await;
    let tickets: usize = 150;
    app.assigned_tickets_with_comments(&owner.token, &project, &agent, tickets)
        .await;
    let events = app.count("SELECT count(*) FROM outbox_events").await;
    let data = tempfile::tempdir().unwrap();
    let mut worker = docket(&["worker"], &app.database_url, data.path(), None);
    let done = "SELECT count(*) FROM outbox_events WHERE status = 'done'";
    let handled_when_killed = loop {
        let n = app.count(done).await;
        if n > 0 {
            worker.kill();
            break app.count(done).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        handled_when_killed < events,
        "the worker was killed with work left ({handled_when_killed} of {events} done)"
    );
    // A new worker takes over, including what the dead one had claimed (after its lease).
    let _worker = docket(&["worker"], &app.database_url, data.path(), None);
    app.wait_count(OPEN, 0, 60).await;
    let notifications = 2 * tickets as i64; // assigned + comment, for the agent
    assert_eq!(
        app.count("SELECT count(*) FROM notifications").await,
        notifications
    );
    assert_eq!(
        app.count("SELECT count(*) FROM (SELECT DISTINCT event_id, user_id FROM notifications) d")
            .await,
        notifications
    );
    assert_eq!(
        app.count("SELECT count(*) FROM stream_events").await,
        events + notifications
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox_events WHERE status = 'dead'")
            .await,
        0
    );
    let unread = app
        .get("/api/v1/notifications/unread-count", &agent.token)
        .await;
    assert_eq!(unread.assert_ok(200)["count"], notifications);
    app.shutdown().await;
}

/// Two `serve --no-worker` and two `docket worker` processes on one database. This is the
/// PostgreSQL layout (commits wake other processes through LISTEN/NOTIFY); on SQLite the same
/// processes work through the fallback polls, so it runs there too, smaller.
#[tokio::test]
async fn two_servers_and_two_workers_share_one_database() {
    let data = tempfile::tempdir().unwrap();
    let url = migrated_database(data.path()).await;
    let tickets = match backend() {
        Backend::Postgres => 1200,
        Backend::Sqlite => 300,
    };
    let (_s1, one) = serve(&url, data.path()).await;
    let (_s2, two) = serve(&url, data.path()).await;
    let _workers = [
        docket(&["worker"], &url, data.path(), None),
        docket(&["worker"], &url, data.path(), None),
    ];
    let owner = one.signup("acme", "o@example.com").await;
    let agent = one.member(&owner, "a@example.com", "agent").await;
    let project = one.project(&owner.token, "OPS").await;
    one.wait_count(OPEN, 0, 30).await;
    // A stream on server one, for writes made through server two.
    let mut stream = SseClient::connect(&one.base, &agent.token, None).await;

    let (one_ref, two_ref) = (&one, &two);
    let (owner_ref, agent_ref, project_ref) = (&owner, &agent, &project);
    let created: Vec<(usize, String)> = futures::stream::iter(0..tickets)
        .map(|i| {
            let (app, other) = if i % 2 == 0 {
                (one_ref, two_ref)
            } else {
                (two_ref, one_ref)
            };
            let (owner, agent, project) = (owner_ref, agent_ref, project_ref);
            async move {
                let t = app
                    .ticket(
                        &owner.token,
                        project,
                        json!({"assignee_ids": [agent.user_id]}),
                    )
                    .await;
                let id = t["id"].as_str().unwrap().to_owned();
                // The comment goes through the other server.
                other
                    .post(
                        &format!("/api/v1/tickets/{id}/comments"),
                        Some(&owner.token),
                        json!({"body": "Any news?"}),
                    )
                    .await
                    .assert_ok(201);
                (i, id)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(created.len(), tickets);

    one.wait_count(OPEN, 0, 180).await;
    // Since the stream started: per ticket created, assigned, comment.
    let events = one
        .count("SELECT count(*) FROM outbox_events WHERE ticket_id IS NOT NULL")
        .await;
    assert_eq!(events, 3 * tickets as i64);
    let notifications = 2 * tickets as i64;
    assert_eq!(
        one.count("SELECT count(*) FROM notifications").await,
        notifications
    );
    assert_eq!(
        one.count("SELECT count(*) FROM stream_events WHERE ticket_id IS NOT NULL")
            .await,
        events + notifications
    );
    assert_eq!(
        one.count("SELECT count(*) FROM outbox_events WHERE status <> 'done'")
            .await,
        0
    );

    // Longer than a stream's fallback read (5 s), which is what carries other processes'
    // commits on SQLite.
    let got = stream.drain(Duration::from_secs(7)).await;
    let mut seen: Vec<String> = got
        .iter()
        .filter(|e| e.event == "ticket.created")
        .map(|e| e.data["ticket_id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    let mut want: Vec<String> = created.iter().map(|(_, id)| id.clone()).collect();
    want.sort();
    assert_eq!(
        seen, want,
        "the stream on server one saw every ticket, including server two's"
    );
    assert_eq!(
        got.len() as i64,
        events + notifications,
        "and nothing twice"
    );
}

/// `docket serve` killed with SIGKILL every few seconds while 8 clients file tickets, each
/// under its own `Idempotency-Key`. A killed request leaves no claim behind, so every request
/// that got no answer resolves at once when retried (its ticket, or a fresh create), with no
/// ticket filed twice, none lost, and exactly one notification per ticket.
#[tokio::test]
async fn keyed_retries_after_a_crash_resolve_at_once() {
    const WRITERS: usize = 8;
    const KILLS: usize = 3;
    let data = tempfile::tempdir().unwrap();
    let url = migrated_database(data.path()).await;
    let addr = free_addr();
    let (mut server, app) = serve_at(&["serve"], &url, data.path(), addr).await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "a@example.com", "agent").await;
    let project = app.project(&owner.token, "OPS").await;
    let create = |key: String| {
        app.client
            .post(app.url("/api/v1/tickets"))
            .bearer_auth(&owner.token)
            .header("idempotency-key", key.clone())
            .timeout(Duration::from_secs(5))
            .json(&json!({"project_id": project, "title": key, "assignee_ids": [agent.user_id]}))
    };

    let stop = Arc::new(AtomicBool::new(false));
    let writers = (0..WRITERS).map(|w| {
        let (create, stop) = (&create, stop.clone());
        async move {
            let (mut answered, mut unanswered) = (Vec::new(), Vec::new());
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{w}-{n}");
                n += 1;
                match create(key.clone()).send().await {
                    Ok(res) if res.status() == 201 => answered.push(key),
                    Ok(res) => panic!("{key}: {}", res.status()),
                    Err(_) => {
                        unanswered.push(key);
                        // The server is down: try the next key once it may be back.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (answered, unanswered)
        }
    });
    let killer = async {
        for round in 0..KILLS {
            tokio::time::sleep(Duration::from_millis(2000 + 500 * round as u64)).await;
            server.kill();
            server = serve_at(&["serve"], &url, data.path(), addr).await.0;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop.store(true, Ordering::Relaxed);
    };
    let (outcomes, ()) = tokio::join!(futures::future::join_all(writers), killer);
    let answered: Vec<String> = outcomes.iter().flat_map(|(a, _)| a.clone()).collect();
    let unanswered: Vec<String> = outcomes.iter().flat_map(|(_, u)| u.clone()).collect();
    assert!(
        !unanswered.is_empty(),
        "some requests were cut off by the kills"
    );

    // Every request that got no answer resolves on its first retry, at once.
    for key in &unanswered {
        let started = std::time::Instant::now();
        let res = create(key.clone()).send().await.expect("an answer");
        assert_eq!(res.status(), 201, "{key}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{key} took {:?}",
            started.elapsed()
        );
    }
    let keys = (answered.len() + unanswered.len()) as i64;
    assert_eq!(
        app.count("SELECT count(*) FROM tickets").await,
        keys,
        "none lost"
    );
    assert_eq!(
        app.count("SELECT count(DISTINCT title) FROM tickets").await,
        keys,
        "none filed twice"
    );
    app.wait_count(OPEN, 0, 60).await;
    assert_eq!(
        app.count("SELECT count(*) FROM notifications").await,
        keys,
        "one notification per ticket"
    );
    drop(server);
}
