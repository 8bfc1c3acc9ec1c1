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
/// On SQLite writes run on their own connection after a turn in the writer queue: a write that
/// waits for its turn longer than the acquire timeout is the same 503. The write that waits for
/// another process's lock does so without holding the server's thread (ADR 0030): this test
/// runs the server on a runtime of one thread, so a write sleeping in SQLite's busy handler
/// would stall the whole server, and the test with it: the next write would not be turned away
/// on time.
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
    // the pool's only connection (SQLite: the writer's connection and turn) busy.
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

    let busy = match backend() {
        Backend::Postgres => app.get("/api/v1/auth/me", &owner.token).await,
        // SQLite's readers never wait for a writer (WAL): the next write waits for its turn.
        Backend::Sqlite => {
            app.patch("/api/v1/org", &owner.token, json!({"name": "Acme Again"}))
                .await
        }
    };
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

/// SQLite: what the writer commits reaches the database file although the writer does not
/// copy it there. Commits append to the write-ahead log; a checkpointer copies the log into the
/// file outside the writer's turn (ADR 0030), and the writer would do it itself only after
/// 10,000 pages.
#[tokio::test]
async fn sqlite_commits_reach_the_database_file_through_the_checkpointer() {
    if backend() != Backend::Sqlite {
        return;
    }
    let app = spawn_app().await;
    let owner = app.signup("ckpt", "o@ckpt.example.com").await;
    let project = app.project(&owner.token, "CKP").await;
    let title = "Checkpointed printer 7f3a";
    app.ticket(&owner.token, &project, json!({"title": title}))
        .await;

    let file = app.store.data_dir.join("docket.db");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read(&file)
        .unwrap()
        .windows(title.len())
        .any(|w| w == title.as_bytes())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ticket never reached the database file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// Counts answers by status.
fn statuses(answers: &[Resp]) -> std::collections::BTreeMap<u16, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for a in answers {
        *counts.entry(a.status.as_u16()).or_default() += 1;
    }
    counts
}

/// `n` sign-ins at once with a wrong password, each for another (unknown) account.
async fn wrong_passwords_at_once(app: &TestApp, prefix: &str, n: usize) -> Vec<Resp> {
    futures::future::join_all((0..n).map(|i| async move {
        app.login(
            &format!("{prefix}{i}@example.com"),
            "wrong horse battery",
            None,
        )
        .await
    }))
    .await
}

/// Every answer that judged no password is a 429 or 503 with `Retry-After`.
#[track_caller]
fn refused_with_retry_after(answers: &[Resp]) -> usize {
    let refused: Vec<&Resp> = answers
        .iter()
        .filter(|a| !matches!(a.status.as_u16(), 200 | 401))
        .collect();
    for a in &refused {
        match a.status.as_u16() {
            429 => a.assert_problem(429, "too_many_requests"),
            503 => a.assert_problem(503, "unavailable"),
            other => panic!("{other}: {}", a.body),
        };
        assert!(a.headers.contains_key("retry-after"), "{}", a.body);
    }
    refused.len()
}

/// Attempts are counted before passwords are judged: however many arrive at once, at most 10
/// wrong passwords per account and 50 per address are ever judged in a window.
#[tokio::test]
async fn parallel_guesses_cannot_pass_the_lock() {
    let app = spawn_app().await;
    app.signup("acme", "o@example.com").await;

    // 40 at once for one account, the right password as the 35th.
    let answers = futures::future::join_all((0..40).map(|i| {
        let password = if i == 34 {
            PASSWORD
        } else {
            "wrong horse battery"
        };
        app.login("o@example.com", password, None)
    }))
    .await;
    let counts = statuses(&answers);
    let judged = counts.get(&401).copied().unwrap_or(0) + counts.get(&200).copied().unwrap_or(0);
    assert!(judged <= 10, "{counts:?}");
    assert!(refused_with_retry_after(&answers) >= 30, "{counts:?}");

    // 60 wrong passwords at once from one address, each for another account.
    let answers = wrong_passwords_at_once(&app, "nobody", 60).await;
    let counts = statuses(&answers);
    assert!(counts.get(&401).copied().unwrap_or(0) <= 50, "{counts:?}");
    assert!(refused_with_retry_after(&answers) >= 10, "{counts:?}");
    app.shutdown().await;
}

/// A flood of sign-ins is refused (503, Retry-After) once the hashing queue is full, instead of
/// piling up threads and memory; nothing breaks. (Memory is measured by the benchmark harness.)
#[tokio::test]
async fn a_sign_in_flood_is_turned_away_not_queued() {
    let app = spawn_app().await;
    let answers = wrong_passwords_at_once(&app, "flood", 120).await;
    let counts = statuses(&answers);
    assert!(counts.get(&503).copied().unwrap_or(0) > 0, "{counts:?}");
    assert_eq!(
        refused_with_retry_after(&answers) + counts.get(&401).copied().unwrap_or(0),
        120,
        "{counts:?}"
    );
    app.shutdown().await;
}

/// Instants outside years 1–9999 are refused (422 in bodies, 400 in queries); the extreme years
/// that are accepted order chronologically on both backends and every cursor round-trips.
#[tokio::test]
async fn instants_are_years_1_to_9999_and_sort_in_time() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let project = app.project(&owner.token, "OPS").await;
    for bad in [
        "+10000-01-01T00:00:00Z",
        "-5000-01-01T00:00:00Z",
        "0000-12-31T23:59:59Z",
    ] {
        let res = app
            .post(
                "/api/v1/tickets",
                Some(&owner.token),
                json!({"project_id": project, "title": "Far", "due_at": bad}),
            )
            .await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["field"], "due_at", "{bad}");
    }
    for query in [
        "due_before=-262143-01-01T00:00:00Z",
        "due_before=%2B10000-01-01T00:00:00Z",
        "updated_since=%2B275760-09-13T00:00:00Z",
    ] {
        app.get(&format!("/api/v1/tickets?{query}"), &owner.token)
            .await
            .assert_problem(400, "invalid_query");
    }

    let dues = [
        Some("9999-12-31T23:59:59Z"),
        None,
        Some("0001-01-01T00:00:00Z"),
        Some("2024-06-01T12:00:00.5Z"),
        Some("1999-12-31T23:59:59.999999Z"),
    ];
    let mut ids = Vec::new();
    for due in dues {
        let t = app
            .ticket(&owner.token, &project, json!({"due_at": due}))
            .await;
        ids.push((due, t["id"].as_str().unwrap().to_owned()));
        let patched = app
            .call_if(
                reqwest::Method::PATCH,
                &format!("/api/v1/tickets/{}", t["id"].as_str().unwrap()),
                &owner.token,
                1,
                Some(json!({"due_at": "+10000-01-01T00:00:00Z"})),
            )
            .await;
        patched.assert_problem(422, "validation_failed");
    }
    let years = |items: &[serde_json::Value]| -> Vec<Option<String>> {
        items
            .iter()
            .map(|t| t["due_at"].as_str().map(|d| d[..4].to_owned()))
            .collect()
    };
    let ascending = app
        .all_items("/api/v1/tickets?sort=due_at&limit=1", &owner.token)
        .await;
    let y = |s: &str| Some(s.to_owned());
    assert_eq!(
        years(&ascending),
        [y("0001"), y("1999"), y("2024"), y("9999"), None]
    );
    let descending = app
        .all_items("/api/v1/tickets?sort=-due_at&limit=1", &owner.token)
        .await;
    assert_eq!(
        years(&descending),
        [y("9999"), y("2024"), y("1999"), y("0001"), None]
    );
    app.shutdown().await;
}

/// No string in a body, a query or a path (NUL, a lone surrogate, direction overrides,
/// zero-width characters, 64 KB of text) ever gets a 500: each is a precise 4xx or accepted.
#[tokio::test]
async fn hostile_strings_never_break_the_server() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let project = app.project(&owner.token, "OPS").await;
    let ticket = app.ticket(&owner.token, &project, json!({})).await;
    let ticket_path = format!("/api/v1/tickets/{}", ticket["id"].as_str().unwrap());
    const LONE_SURROGATE: &str = "\u{e000}LONE\u{e000}";
    let long = "x".repeat(64 * 1024);
    let hostile: Vec<&str> = vec![
        "\u{0}",
        "a\u{0}b@example.com",
        LONE_SURROGATE,
        "\u{202e}gnp.exe",
        "ab\u{200b}cd",
        "\u{feff}",
        &long,
    ];
    // (method, path, body, the string fields to replace one at a time)
    let bodies: Vec<(reqwest::Method, String, serde_json::Value, Vec<&str>)> = vec![
        (
            reqwest::Method::POST,
            "/api/v1/auth/login".into(),
            json!({"email": "o@example.com", "password": PASSWORD, "organization": "acme"}),
            vec!["email", "password", "organization"],
        ),
        (
            reqwest::Method::POST,
            "/api/v1/auth/signup".into(),
            json!({"organization_name": "N", "organization_slug": "n-org", "name": "N",
                   "email": "n@example.com", "password": PASSWORD}),
            vec![
                "organization_name",
                "organization_slug",
                "name",
                "email",
                "password",
            ],
        ),
        (
            reqwest::Method::POST,
            "/api/v1/auth/refresh".into(),
            json!({"refresh_token": owner.refresh}),
            vec!["refresh_token"],
        ),
        (
            reqwest::Method::POST,
            "/api/v1/auth/switch".into(),
            json!({"organization": "acme"}),
            vec!["organization"],
        ),
        (
            reqwest::Method::PATCH,
            "/api/v1/org".into(),
            json!({"name": "Acme", "slug": "acme"}),
            vec!["name", "slug"],
        ),
        (
            reqwest::Method::POST,
            "/api/v1/users".into(),
            json!({"email": "u@example.com", "name": "U", "role": "agent"}),
            vec!["email", "name", "role"],
        ),
        (
            reqwest::Method::POST,
            "/api/v1/invitations".into(),
            json!({"email": "i@example.com", "name": "I", "role": "agent"}),
            vec!["email", "name", "role"],
        ),
        (
            reqwest::Method::POST,
            "/api/v1/auth/password/forgot".into(),
            json!({"email": "o@example.com"}),
            vec!["email"],
        ),
        (
            reqwest::Method::POST,
            "/api/v1/auth/password/reset".into(),
            json!({"token": "pr_x", "password": PASSWORD}),
            vec!["token", "password"],
        ),
        (
            reqwest::Method::POST,
            "/api/v1/invitations/inv_x/accept".into(),
            json!({"password": PASSWORD, "name": "N"}),
            vec!["password", "name"],
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/mail/settings".into(),
            json!({"acknowledge": true, "inbound_project_id": null,
                   "imap": {"host": "imap.example.com", "port": 993, "tls": true,
                            "username": "u", "password": "p", "folder": "INBOX"}}),
            vec!["acknowledge", "inbound_project_id", "imap"],
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/me/notification-preferences".into(),
            json!({"preferences": [{"kind": "comment", "delivery": "off"}]}),
            vec!["preferences"],
        ),
        (
            reqwest::Method::POST,
            "/api/v1/projects".into(),
            json!({"name": "P", "key": "PRJ", "description": "d"}),
            vec!["name", "key", "description"],
        ),
        (
            reqwest::Method::POST,
            "/api/v1/tickets".into(),
            json!({"project_id": project, "title": "T", "description": "d", "labels": ["l"],
                   "priority": "high"}),
            vec!["title", "description", "priority", "project_id"],
        ),
        (
            reqwest::Method::PATCH,
            ticket_path.clone(),
            json!({"title": "T", "description": "d", "status": "pending"}),
            vec!["title", "description", "status"],
        ),
        (
            reqwest::Method::POST,
            format!("{ticket_path}/comments"),
            json!({"body": "b"}),
            vec!["body"],
        ),
    ];
    let judge = |what: String, res: Resp| {
        assert!(
            res.status.as_u16() < 500,
            "{what}: {} {}",
            res.status,
            res.body
        );
        if res.status.is_client_error() && ![413, 414, 431].contains(&res.status.as_u16()) {
            assert_eq!(
                res.headers["content-type"], "application/problem+json",
                "{what}: {}",
                res.body
            );
        }
    };
    for (method, path, body, fields) in &bodies {
        for field in fields {
            for value in &hostile {
                let mut sent = body.clone();
                sent[*field] = json!(value);
                // A lone surrogate cannot live in a Rust string: write its JSON escape.
                let text = sent.to_string().replace(LONE_SURROGATE, "\\ud800");
                let req = app
                    .request(method.clone(), path, Some(&owner.token))
                    .header("content-type", "application/json")
                    .header("if-match", "*")
                    .body(text);
                judge(format!("{method} {path} {field}"), app.send(req).await);
            }
        }
    }
    let long_query = "x".repeat(16 * 1024);
    let query_values = [
        "%00",
        "a%00b",
        "%ED%A0%80",
        "%E2%80%AE",
        "%EF%BB%BF",
        &long_query,
    ];
    let queries = [
        "/api/v1/tickets?status=",
        "/api/v1/tickets?priority=",
        "/api/v1/tickets?assignee=",
        "/api/v1/tickets?label=",
        "/api/v1/tickets?sort=",
        "/api/v1/tickets?cursor=",
        "/api/v1/tickets?due_before=",
        "/api/v1/projects?cursor=",
        "/api/v1/users?cursor=",
        "/api/v1/notifications?unread=",
        "/api/v1/admin/events?status=",
        "/api/v1/audit-log?cursor=",
        "/api/v1/tickets/",
        "/api/v1/users/",
        "/api/v1/projects/",
    ];
    for query in queries {
        for value in query_values {
            let path = format!("{query}{value}");
            judge(format!("GET {query}"), app.get(&path, &owner.token).await);
        }
    }
    app.shutdown().await;
}

/// An admin demoted while their own role changes are on their way: none of those commits after
/// the demotion has (it re-reads the actor's role under the lock role changes take).
#[tokio::test]
async fn a_demoted_admins_writes_in_flight_do_not_run_as_admin() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let admin = app.member(&owner, "x@example.com", "admin").await;
    let target = app.member(&owner, "y@example.com", "viewer").await;
    let user = |s: &Session| format!("/api/v1/users/{}", s.user_id);
    let mut earlier = std::collections::HashSet::new();
    for _ in 0..5 {
        let (admin_path, target_path) = (user(&admin), user(&target));
        let demote = app.patch(&admin_path, &owner.token, json!({"role": "agent"}));
        let promotions = futures::future::join_all(
            ["agent", "manager", "viewer", "agent", "manager"]
                .map(|role| app.patch(&target_path, &admin.token, json!({"role": role}))),
        );
        let (demoted, promoted) = tokio::join!(demote, promotions);
        demoted.assert_ok(200);
        for p in &promoted {
            assert!(matches!(p.status.as_u16(), 200 | 401 | 403), "{}", p.body);
        }
        // This round's entries (the log is append-only).
        let log: Vec<serde_json::Value> = app
            .all_items("/api/v1/audit-log?limit=200", &owner.token)
            .await
            .into_iter()
            .filter(|e| !earlier.contains(e["id"].as_str().unwrap()))
            .collect();
        let demotion = log
            .iter()
            .find(|e| {
                e["action"] == "membership.role_changed"
                    && e["target_id"] == admin.user_id.as_str()
                    && e["details"]["to"] == "agent"
            })
            .expect("the demotion is audited");
        for e in log.iter().filter(|e| {
            e["action"] == "membership.role_changed" && e["actor_id"] == admin.user_id.as_str()
        }) {
            assert!(
                e["id"].as_str() < demotion["id"].as_str(),
                "a change by the admin committed after their demotion: {e}"
            );
        }
        // Back to where the round started.
        app.patch(&user(&admin), &owner.token, json!({"role": "admin"}))
            .await
            .assert_ok(200);
        app.patch(&user(&target), &owner.token, json!({"role": "viewer"}))
            .await
            .assert_ok(200);
        for e in app
            .all_items("/api/v1/audit-log?limit=200", &owner.token)
            .await
        {
            earlier.insert(e["id"].as_str().unwrap().to_owned());
        }
    }
    app.shutdown().await;
}

/// Removing a member takes them off their tickets through the tickets' write path: a new
/// version, a timeline entry and events, so the timeline still replays to the ticket.
#[tokio::test]
async fn removing_a_member_unassigns_them_visibly() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "a@example.com", "agent").await;
    let colleague = app.member(&owner, "c@example.com", "agent").await;
    let project = app.project(&owner.token, "OPS").await;
    let ticket = app
        .ticket(
            &owner.token,
            &project,
            json!({"assignee_ids": [agent.user_id, colleague.user_id]}),
        )
        .await;
    let path = format!("/api/v1/tickets/{}", ticket["id"].as_str().unwrap());
    app.delete(&format!("/api/v1/users/{}", agent.user_id), &owner.token)
        .await;
    let after = app.get(&path, &owner.token).await;
    let after_body = after.assert_ok(200).clone();
    assert_eq!(after_body["assignee_ids"], json!([colleague.user_id]));
    assert_eq!(after_body["version"], 2);
    assert_eq!(after.headers["etag"], "\"2\"");
    let timeline = app
        .all_items(&format!("{path}/timeline?limit=200"), &owner.token)
        .await;
    let last = timeline
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("ticket."))
        .max_by_key(|e| e["version"].as_i64())
        .unwrap();
    assert_eq!(last["kind"], "ticket.assigned");
    assert_eq!(last["actor_id"], owner.user_id.as_str());
    assert_replays_to(&timeline, &after_body, "after the removal");
    let events = app
        .all_items("/api/v1/admin/events?limit=200", &owner.token)
        .await;
    let of_ticket = |kind: &str| {
        events
            .iter()
            .filter(|e| e["ticket_id"] == ticket["id"] && e["type"] == kind)
            .count()
    };
    // Created with two assignees (assigned once), then unassigned (updated and assigned).
    assert_eq!(of_ticket("ticket.updated"), 1);
    assert_eq!(of_ticket("ticket.assigned"), 2);
    app.shutdown().await;
}

/// The timeline and the audit log cannot be rewritten through the application's rights:
/// PostgreSQL's application role has no UPDATE on them and deletes nothing of an organisation
/// that is not being purged (a restrictive row policy); SQLite triggers abort both.
#[tokio::test]
async fn the_timeline_and_the_audit_log_are_append_only() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let project = app.project(&owner.token, "OPS").await;
    app.ticket(&owner.token, &project, json!({})).await;
    for table in ["ticket_events", "audit_log"] {
        // The timeline's text changes only as a redaction (which stamps `redacted_at`).
        let unstamped = (table == "ticket_events")
            .then(|| "UPDATE ticket_events SET changes = changes".to_owned());
        for change in [
            format!("UPDATE {table} SET created_at = created_at"),
            format!("DELETE FROM {table}"),
        ]
        .into_iter()
        .chain(unstamped)
        {
            let sql = match backend() {
                Backend::Postgres => format!(
                    "BEGIN; SET LOCAL ROLE docket_app; \
                     SELECT set_config('app.org_id', '{}', true); {change}; COMMIT",
                    owner.org_id
                ),
                Backend::Sqlite => change.clone(),
            };
            let before = app.count(&format!("SELECT count(*) FROM {table}")).await;
            match (backend(), change.starts_with("DELETE")) {
                (Backend::Postgres, true) => app.sql(&sql).await,
                (backend, _) => {
                    let refused = app.try_sql(&sql).await.expect_err(&change);
                    let why = match backend {
                        Backend::Postgres if change.contains("changes") => {
                            "row-level security".to_owned()
                        }
                        Backend::Postgres => "permission denied".to_owned(),
                        Backend::Sqlite => format!("{table} is append-only"),
                    };
                    assert!(refused.contains(&why), "{change}: {refused}");
                }
            }
            let after = app.count(&format!("SELECT count(*) FROM {table}")).await;
            assert_eq!(before, after, "{change}");
        }
        assert!(app.count(&format!("SELECT count(*) FROM {table}")).await > 0);
    }
    app.shutdown().await;
}

/// Deactivation, removal and logout end the person's open streams at once (not at the next
/// periodic check).
#[tokio::test]
async fn revoked_people_lose_their_streams_at_once() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let ways: [(&str, &str); 3] = [
        ("deactivated", "a@example.com"),
        ("removed", "b@example.com"),
        ("logged out", "c@example.com"),
    ];
    for (how, email) in ways {
        let person = app.member(&owner, email, "agent").await;
        let mut stream = SseClient::connect(&app.base, &person.token, None).await;
        let started = std::time::Instant::now();
        let user = format!("/api/v1/users/{}", person.user_id);
        match how {
            "deactivated" => {
                app.patch(&user, &owner.token, json!({"active": false}))
                    .await
                    .assert_ok(200);
            }
            "removed" => {
                app.delete(&user, &owner.token).await;
            }
            _ => {
                app.call(
                    reqwest::Method::POST,
                    "/api/v1/auth/logout",
                    Some(&person.token),
                    Some(json!({})),
                )
                .await;
            }
        }
        assert!(
            stream.next(Duration::from_secs(10)).await.is_none(),
            "{how}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{how}: the stream ended after {:?}",
            started.elapsed()
        );
    }
    app.shutdown().await;
}

/// Trivial passwords are refused with a reason; names and titles cannot hide text behind
/// direction overrides or zero-width characters; one address has one spelling; the bearer
/// scheme is case-insensitive; the audit log keeps the server's request id, not the client's.
#[tokio::test]
async fn passwords_names_addresses_and_request_ids() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    for weak in ["          ", "aaaaaaaaaaaa", "1234567890", "password123"] {
        let res = app
            .post(
                "/api/v1/auth/signup",
                None,
                json!({"organization_name": "W", "name": "W", "email": "w@example.com", "password": weak}),
            )
            .await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["field"], "password");
        let message = res.body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.starts_with("is too easy to guess"),
            "{weak:?}: {message}"
        );
    }
    let res = app
        .post(
            "/api/v1/users",
            Some(&owner.token),
            json!({"email": "w@example.com", "name": "Eve\u{202e}nimda", "role": "agent"}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "name");
    let project = app.project(&owner.token, "OPS").await;
    app.post(
        "/api/v1/tickets",
        Some(&owner.token),
        json!({"project_id": project, "title": "Pay\u{200b}ment"}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // Full-width letters and a mixed-case domain are the same address.
    let created = app
        .post(
            "/api/v1/users",
            Some(&owner.token),
            json!({"email": "ＢＯＢ@Example.COM", "name": "Bob", "role": "agent"}),
        )
        .await;
    assert_eq!(created.assert_ok(201)["email"], "bob@example.com");
    let token = app.invitation_token("bob@example.com").await;
    app.post(
        &format!("/api/v1/invitations/{token}/accept"),
        None,
        json!({"password": PASSWORD}),
    )
    .await
    .assert_ok(200);
    app.login("bob@EXAMPLE.com", PASSWORD, None)
        .await
        .assert_ok(200);

    for scheme in ["bearer", "BEARER", "Bearer"] {
        let req = app
            .client
            .get(app.url("/api/v1/auth/me"))
            .header("authorization", format!("{scheme} {}", owner.token));
        app.send(req).await.assert_ok(200);
    }

    let req = app
        .request(reqwest::Method::PATCH, "/api/v1/org", Some(&owner.token))
        .header("x-request-id", "chosen-by-the-client")
        .json(&json!({"name": "Acme Two"}));
    let res = app.send(req).await;
    res.assert_ok(200);
    let server_id = res.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(server_id, "chosen-by-the-client");
    let log = app.get("/api/v1/audit-log", &owner.token).await;
    let entry = &log.assert_ok(200)["items"][0];
    assert_eq!(entry["action"], "organization.updated");
    assert_eq!(entry["request_id"], server_id.as_str());
    app.shutdown().await;
}

/// `POST /auth/logout` documents its body as optional: none, an empty body or JSON `null` all
/// sign out.
#[tokio::test]
async fn logout_takes_no_body_or_null() {
    let app = spawn_app().await;
    app.signup("acme", "o@example.com").await;
    for body in [None, Some(""), Some("null")] {
        let session = Session::from_auth(
            app.login("o@example.com", PASSWORD, None)
                .await
                .assert_ok(200),
        );
        let mut req = app.request(
            reqwest::Method::POST,
            "/api/v1/auth/logout",
            Some(&session.token),
        );
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        let res = app.send(req).await;
        assert_eq!(res.status, 204, "{body:?}: {}", res.body);
        app.get("/api/v1/auth/me", &session.token)
            .await
            .assert_problem(401, "invalid_token");
    }
    app.shutdown().await;
}
