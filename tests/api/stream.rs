//! Real time: what each person's stream carries (SSE and WebSocket), resuming with
//! `Last-Event-ID`, and the commit-to-stream latency.

use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};

use crate::{events::OPEN, helpers::*};

const QUIET: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn each_person_gets_what_they_may_see_and_nothing_of_other_tenants() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "a@example.com", "agent").await;
    let customer = app.member(&owner, "c@example.com", "requester").await;
    let stranger = app.signup("other", "x@example.com").await;
    let project = app.project(&owner.token, "OPS").await;
    // Streams start at the feed's end: let what happened so far reach it first.
    app.run_pending_events().await;

    let mut agent_stream = SseClient::connect(&app.base, &agent.token, None).await;
    let mut customer_stream = SseClient::connect(&app.base, &customer.token, None).await;
    let mut stranger_stream = SseClient::connect(&app.base, &stranger.token, None).await;

    let theirs = app
        .ticket(
            &owner.token,
            &project,
            json!({"requester_id": customer.user_id, "assignee_ids": [agent.user_id]}),
        )
        .await;
    let internal_only = app.ticket(&owner.token, &project, json!({})).await;
    let comments = format!(
        "/api/v1/tickets/{}/comments",
        theirs["id"].as_str().unwrap()
    );
    app.post(
        &comments,
        Some(&agent.token),
        json!({"body": "secret", "internal": true}),
    )
    .await
    .assert_ok(201);
    app.post(
        &comments,
        Some(&agent.token),
        json!({"body": "We are on it"}),
    )
    .await
    .assert_ok(201);
    let other_project = app.project(&stranger.token, "OTH").await;
    app.ticket(&stranger.token, &other_project, json!({})).await;
    app.run_pending_events().await;

    let got = agent_stream.drain(QUIET).await;
    // Tickets are handled side by side; each ticket's events keep their order.
    let of = |events: &[SseEvent], ticket: &serde_json::Value| -> Vec<String> {
        events
            .iter()
            .filter(|e| &e.data["ticket_id"] == ticket)
            .map(|e| e.event.clone())
            .collect()
    };
    assert_eq!(got.len(), 6, "{got:?}");
    assert_eq!(
        of(&got, &theirs["id"]),
        [
            "ticket.created",
            "ticket.assigned",
            "notification.created",
            "comment.created",
            "comment.created"
        ],
        "{got:?}"
    );
    assert_eq!(of(&got, &internal_only["id"]), ["ticket.created"]);
    // Ids are the positions of the organisation's feed: increasing, and each event's
    // `data` names its id and type.
    let ids: Vec<i64> = got
        .iter()
        .map(|e| e.id.as_ref().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let first = &got[0];
    // Every message's JSON names its type, as the SSE event name does.
    for e in &got {
        assert_eq!(e.data["type"], e.event.as_str(), "{e:?}");
    }
    assert_eq!(first.data["id"], first.id.clone().unwrap());
    let notice = got
        .iter()
        .find(|e| e.event == "notification.created")
        .unwrap();
    assert_eq!(notice.data["data"]["type"], "assigned");
    let note = got.iter().find(|e| e.event == "comment.created").unwrap();
    assert!(note.data["data"]["internal"].as_bool().unwrap());
    assert!(note.data["data"].get("watcher_ids").is_none());

    // The requester: their own ticket's changes, no internal note, no other ticket, and
    // their own notification of the public comment.
    let got = customer_stream.drain(QUIET).await;
    let seen: Vec<(&str, &str)> = got
        .iter()
        .map(|e| (e.event.as_str(), e.data["ticket_id"].as_str().unwrap_or("")))
        .collect();
    let theirs_id = theirs["id"].as_str().unwrap();
    assert_eq!(
        seen,
        [
            ("ticket.created", theirs_id),
            ("ticket.assigned", theirs_id),
            ("comment.created", theirs_id),
            ("notification.created", theirs_id),
        ],
        "{got:?}"
    );
    assert!(
        got.iter()
            .all(|e| e.data["ticket_id"] != internal_only["id"])
    );
    assert!(got.iter().all(|e| !e.data.to_string().contains("secret")));

    // The other organisation sees only its own project and ticket.
    let got = stranger_stream.drain(QUIET).await;
    // (A project event and a ticket event are handled side by side, in either order.)
    let mut kinds: Vec<&str> = got.iter().map(|e| e.event.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["project.created", "ticket.created"], "{got:?}");
    assert!(
        got.iter()
            .all(|e| e.data["data"]["project_id"] == other_project.as_str())
    );
    app.shutdown().await;
}

#[tokio::test]
async fn reconnecting_with_last_event_id_loses_nothing_and_repeats_nothing() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let project = app.project(&owner.token, "OPS").await;
    app.run_pending_events().await;
    let mut stream = SseClient::connect(&app.base, &owner.token, None).await;
    for _ in 0..3 {
        app.ticket(&owner.token, &project, json!({})).await;
    }
    app.run_pending_events().await;
    let first = stream.drain(QUIET).await;
    assert_eq!(first.len(), 3);
    let last = first.last().unwrap().id.clone().unwrap();
    drop(stream);

    // Missed while disconnected, including a burst larger than one read.
    let mut created = Vec::new();
    for _ in 0..250 {
        created.push(app.ticket(&owner.token, &project, json!({})).await["id"].clone());
    }
    app.run_pending_events().await;
    let mut resumed = SseClient::connect(&app.base, &owner.token, Some(&last)).await;
    let replay = resumed.drain(QUIET).await;
    let ids: Vec<i64> = replay
        .iter()
        .map(|e| e.id.as_ref().unwrap().parse().unwrap())
        .collect();
    let after: i64 = last.parse().unwrap();
    assert_eq!(ids, ((after + 1)..=(after + 250)).collect::<Vec<_>>());
    // Each ticket once (tickets are handled side by side, so their relative order may differ;
    // one ticket's events keep their order).
    let mut tickets: Vec<String> = replay
        .iter()
        .map(|e| e.data["ticket_id"].to_string())
        .collect();
    let mut created: Vec<String> = created.iter().map(|t| t.to_string()).collect();
    tickets.sort();
    created.sort();
    assert_eq!(tickets, created);

    // Live again after the replay.
    app.ticket(&owner.token, &project, json!({})).await;
    app.run_pending_events().await;
    let live = resumed
        .next(Duration::from_secs(10))
        .await
        .expect("a live event");
    assert_eq!(live.id, Some((after + 251).to_string()));

    // The same through the query parameter, and over WebSocket.
    let mut request = format!(
        "{}/api/v1/ws?last_event_id={after}",
        app.base.replace("http", "ws")
    )
    .into_client_request()
    .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", owner.token).parse().unwrap(),
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("ws connects");
    assert_eq!(response.status(), 101);
    let mut ws_ids = Vec::new();
    while ws_ids.len() < 251 {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("valid");
        if let tungstenite::Message::Text(text) = msg {
            let event: serde_json::Value = serde_json::from_str(&text).unwrap();
            ws_ids.push(event["id"].as_str().unwrap().parse::<i64>().unwrap());
        }
    }
    assert_eq!(ws_ids, ((after + 1)..=(after + 251)).collect::<Vec<_>>());
    ws.send(tungstenite::Message::Close(None)).await.ok();

    // Resuming from before what is kept (retention removed the first entries) says so first.
    app.sql("DELETE FROM stream_events WHERE seq <= 2").await;
    let mut old = SseClient::connect(&app.base, &owner.token, Some("0")).await;
    let reset = old.next(Duration::from_secs(10)).await.expect("a reset");
    assert_eq!(reset.event, "reset");
    assert_eq!(reset.data, serde_json::json!({"type": "reset"}));
    assert_eq!(
        old.next(Duration::from_secs(10))
            .await
            .unwrap()
            .id
            .as_deref(),
        Some("3")
    );

    // Bad ids, no token, and a plain GET of the WebSocket endpoint are precise problems.
    let bad = app
        .send(
            app.request(Method::GET, "/api/v1/stream", Some(&owner.token))
                .header("last-event-id", "abc"),
        )
        .await;
    bad.assert_problem(400, "invalid_last_event_id");
    app.get("/api/v1/stream?last_event_id=-1", &owner.token)
        .await
        .assert_problem(400, "invalid_last_event_id");
    app.send(app.request(Method::GET, "/api/v1/stream", None))
        .await
        .assert_problem(401, "missing_token");
    app.get("/api/v1/ws", &owner.token)
        .await
        .assert_problem(426, "websocket_required");
    // Its parameters are checked first, upgrade or not.
    app.get("/api/v1/ws?last_event_id=-1", &owner.token)
        .await
        .assert_problem(400, "invalid_last_event_id");
    app.shutdown().await;
}

/// Commit-to-stream latency: the time from a write's response (its transaction committed) to
/// its event arriving on a stream. Printed for the record; the benchmark harness owns goals.
#[tokio::test]
async fn commit_to_stream_latency_is_reported() {
    let app = spawn_app_with_worker().await;
    let owner = app.signup("acme", "o@example.com").await;
    let project = app.project(&owner.token, "OPS").await;
    app.wait_count(OPEN, 0, 20).await;
    let mut stream = SseClient::connect(&app.base, &owner.token, None).await;
    let mut latencies = Vec::new();
    for _ in 0..200 {
        let t = app
            .ticket(&owner.token, &project, json!({"priority": "low"}))
            .await;
        let committed = Instant::now();
        let e = stream
            .next(Duration::from_secs(10))
            .await
            .expect("the event arrives");
        latencies.push(committed.elapsed());
        assert_eq!(e.data["ticket_id"], t["id"]);
    }
    latencies.sort();
    eprintln!(
        "commit-to-stream latency on {:?} over {} writes: median {:.1} ms, p99 {:.1} ms",
        backend(),
        latencies.len(),
        latencies[latencies.len() / 2].as_secs_f64() * 1000.0,
        latencies[latencies.len() * 99 / 100].as_secs_f64() * 1000.0,
    );
    app.shutdown().await;
}
