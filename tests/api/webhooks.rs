//! Webhooks over HTTP against real receivers on loopback: signed as the Standard Webhooks
//! specification says (checked with its reference library), retried through failures,
//! timeouts, resets and throttling until every event is delivered under its stable
//! `webhook-id`, never crossing tenants, guarded against inward URLs and redirects, disabled on
//! 410, and logged.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::helpers::*;

/// How the receiver answers one request.
#[derive(Clone, Debug)]
enum Answer {
    Status(u16),
    /// 429 or 503 with `Retry-After: 1`.
    Throttle(u16),
    /// No answer for longer than the server's timeout.
    Hang,
    /// The connection is reset (RST) before any answer.
    Reset,
    /// A redirect somewhere else on the same receiver.
    Redirect,
    /// 200 with a binary body: NUL bytes and invalid UTF-8.
    Binary,
}

/// One request as the receiver read it.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    /// The status it was answered with (none: hung up or reset).
    answered: Option<u16>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn header(&self, name: &str) -> String {
        self.headers[name].to_str().unwrap().to_owned()
    }
}

/// A real HTTP receiver on loopback: answers from a script, then 200 with a long body.
#[derive(Clone)]
struct Receiver {
    url: String,
    script: Arc<Mutex<VecDeque<Answer>>>,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(script: Vec<Answer>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let me = Self {
            url,
            script: Arc::new(Mutex::new(script.into())),
            got: Arc::default(),
        };
        let server = me.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move { server.serve(socket).await });
            }
        });
        me
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    async fn serve(&self, mut socket: TcpStream) {
        loop {
            let Some((path, headers, body)) = read_request(&mut socket).await else {
                return;
            };
            let answer = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Answer::Status(200));
            let status = match &answer {
                Answer::Status(s) | Answer::Throttle(s) => Some(*s),
                Answer::Binary => Some(200),
                Answer::Redirect => Some(302),
                Answer::Hang | Answer::Reset => None,
            };
            self.got.lock().unwrap().push(Received {
                path,
                headers,
                body,
                answered: status,
            });
            if let Answer::Binary = answer {
                let mut reply = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n".to_vec();
                reply.extend_from_slice(b"a\0b\xff\xfec");
                if socket.write_all(&reply).await.is_err() {
                    return;
                }
                continue;
            }
            let reply = match answer {
                Answer::Status(s) => format!(
                    "HTTP/1.1 {s} X\r\ncontent-length: 5000\r\n\r\n{}",
                    "r".repeat(5000)
                ),
                Answer::Throttle(s) => {
                    format!("HTTP/1.1 {s} X\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n")
                }
                Answer::Redirect => "HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\n\
                                     content-length: 0\r\n\r\n"
                    .to_owned(),
                Answer::Binary => unreachable!("answered above"),
                Answer::Hang => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    return;
                }
                Answer::Reset => {
                    socket.set_zero_linger().ok();
                    return;
                }
            };
            if socket.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

/// Reads one HTTP/1.1 request (head and a `content-length` body).
async fn read_request(socket: &mut TcpStream) -> Option<(String, HeaderMap, Vec<u8>)> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((path, headers, body))
}

/// Verifies a delivery's signature with the specification's reference library.
fn verifies(secret: &str, r: &Received) -> bool {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&r.body, &r.headers)
        .is_ok()
}

async fn subscribe(app: &TestApp, admin: &Session, url: &str, events: &[&str]) -> (String, String) {
    let res = app
        .post(
            "/api/v1/webhooks",
            Some(&admin.token),
            json!({"url": url, "events": events, "description": "CRM"}),
        )
        .await;
    let made = res.assert_ok(201);
    (
        made["id"].as_str().unwrap().to_owned(),
        made["secret"].as_str().unwrap().to_owned(),
    )
}

/// Runs pending events, then delivery rounds (each making waiting retries due) until nothing
/// is left pending. Returns the rounds it took.
async fn deliver_all(app: &TestApp) -> usize {
    app.run_pending_events().await;
    for round in 1..=40 {
        app.deliver_webhooks().await;
        let left = app
            .count("SELECT COUNT(*) FROM webhook_deliveries WHERE status <> 'succeeded' AND status <> 'failed'")
            .await;
        if left == 0 {
            return round;
        }
        app.webhook_retries_due().await;
    }
    panic!("deliveries still pending after 40 rounds");
}

#[tokio::test]
async fn deliveries_are_signed_logged_tested_redelivered_and_rotated() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "owner@acme.test").await;
    let project = app.project(&owner.token, "OPS").await;
    let receiver = Receiver::start(vec![]).await;
    let (hook, secret) = subscribe(
        &app,
        &owner,
        &receiver.url,
        &["ticket.created", "comment.created"],
    )
    .await;
    assert!(secret.starts_with("whsec_"), "{secret}");

    // The secret is never shown again.
    let listed = app.get("/api/v1/webhooks", &owner.token).await;
    let listed = listed.assert_ok(200);
    assert_eq!(listed["items"][0]["id"], hook.as_str());
    assert_eq!(
        listed["items"][0]["events"],
        json!(["ticket.created", "comment.created"])
    );
    assert!(!listed.to_string().contains(&secret));

    let ticket = app.ticket(&owner.token, &project, json!({})).await;
    let ticket_id = ticket["id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/tickets/{ticket_id}/comments"),
        Some(&owner.token),
        json!({"body": "On it"}),
    )
    .await
    .assert_ok(201);
    // An unsubscribed type goes nowhere.
    app.post(
        &format!("/api/v1/tickets/{ticket_id}/complete"),
        Some(&owner.token),
        json!(null),
    )
    .await;
    deliver_all(&app).await;

    let got = receiver.received();
    let types: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["ticket.created", "comment.created"]);
    for r in &got {
        assert!(verifies(&secret, r), "signature of {:?}", r.json());
        assert!(!verifies("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", r));
        assert!(r.header("webhook-id").starts_with("msg_"));
        assert_eq!(r.header("content-type"), "application/json");
        let body = r.json();
        assert_eq!(body["data"]["ticket_id"], ticket_id);
        assert!(body["timestamp"].is_string());
        assert!(body["data"].get("org_id").is_none() && body["data"].get("request_id").is_none());
    }

    // The log: each delivery with its attempt, the answer cut at 2 KB.
    let log = app
        .get(&format!("/api/v1/webhooks/{hook}/deliveries"), &owner.token)
        .await;
    let log = log.assert_ok(200).clone();
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let first = &items[1];
    assert_eq!(first["event_type"], "ticket.created");
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first["attempts"][0]["status_code"], 200);
    assert_eq!(
        first["attempts"][0]["response"].as_str().unwrap().len(),
        2048
    );
    let delivery_id = first["id"].as_str().unwrap().to_owned();
    let msg_id = format!("msg_{}", delivery_id.replace('-', ""));
    assert_eq!(got[0].header("webhook-id"), msg_id);

    // Redelivery: the same webhook-id and body, signed afresh.
    let again = app
        .post(
            &format!("/api/v1/webhooks/{hook}/deliveries/{delivery_id}/redeliver"),
            Some(&owner.token),
            json!(null),
        )
        .await;
    assert_eq!(again.assert_ok(202)["status"], "pending");
    app.deliver_webhooks().await;
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].header("webhook-id"), msg_id);
    assert_eq!(got[2].body, got[0].body);
    assert!(verifies(&secret, &got[2]));

    // A test delivery.
    let test = app
        .post(
            &format!("/api/v1/webhooks/{hook}/test"),
            Some(&owner.token),
            json!(null),
        )
        .await;
    assert_eq!(test.assert_ok(202)["event_type"], "webhook.test");
    app.deliver_webhooks().await;
    let got = receiver.received();
    assert_eq!(got[3].json()["type"], "webhook.test");

    // Rotation: for a day both secrets sign; the new one is shown once.
    let rotated = app
        .post(
            &format!("/api/v1/webhooks/{hook}/rotate-secret"),
            Some(&owner.token),
            json!(null),
        )
        .await;
    let rotated = rotated.assert_ok(200).clone();
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert!(rotated["previous_secret_expires_at"].is_string());
    app.post(
        &format!("/api/v1/webhooks/{hook}/test"),
        Some(&owner.token),
        json!(null),
    )
    .await
    .assert_ok(202);
    app.deliver_webhooks().await;
    let last = receiver.received().pop().unwrap();
    assert!(verifies(&new_secret, &last) && verifies(&secret, &last));
    assert_eq!(last.header("webhook-signature").split(' ').count(), 2);

    // Turned off: nothing is queued; on again: deliveries resume.
    app.patch(
        &format!("/api/v1/webhooks/{hook}"),
        &owner.token,
        json!({"active": false}),
    )
    .await
    .assert_ok(200);
    app.ticket(&owner.token, &project, json!({})).await;
    app.run_pending_events().await;
    app.deliver_webhooks().await;
    assert_eq!(receiver.received().len(), 5);
    app.post(
        &format!("/api/v1/webhooks/{hook}/test"),
        Some(&owner.token),
        json!(null),
    )
    .await
    .assert_problem(409, "webhook_inactive");

    // Audited; deleting removes the log with it.
    let audit = app.get("/api/v1/audit-log", &owner.token).await;
    let audit = audit.assert_ok(200).to_string();
    for action in [
        "webhook.created",
        "webhook.secret_rotated",
        "webhook.updated",
    ] {
        assert!(audit.contains(action), "{action} in the audit log");
    }
    assert!(!audit.contains(&new_secret));
    app.delete(&format!("/api/v1/webhooks/{hook}"), &owner.token)
        .await
        .assert_ok(204);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_deliveries").await,
        0
    );
    app.get(&format!("/api/v1/webhooks/{hook}"), &owner.token)
        .await
        .assert_problem(404, "webhook_not_found");
}

#[tokio::test]
async fn every_event_arrives_once_the_receiver_recovers_and_never_crosses_tenants() {
    let app = spawn_app().await;
    let acme = app.signup("acme", "owner@acme.test").await;
    let globex = app.signup("globex", "owner@globex.test").await;
    let acme_project = app.project(&acme.token, "OPS").await;
    let globex_project = app.project(&globex.token, "GLX").await;
    use Answer::*;
    let chaos = Receiver::start(vec![
        Status(500),
        Hang,
        Reset,
        Throttle(429),
        Throttle(429),
        Throttle(503),
        Status(500),
        Reset,
        Hang,
        Throttle(429),
    ])
    .await;
    let calm = Receiver::start(vec![]).await;
    let (_, acme_secret) = subscribe(&app, &acme, &chaos.url, &["ticket.created"]).await;
    let (_, globex_secret) = subscribe(&app, &globex, &calm.url, &["ticket.created"]).await;
    let mut acme_tickets = BTreeSet::new();
    for _ in 0..6 {
        let t = app.ticket(&acme.token, &acme_project, json!({})).await;
        acme_tickets.insert(t["id"].as_str().unwrap().to_owned());
    }
    let globex_ticket = app.ticket(&globex.token, &globex_project, json!({})).await;

    let rounds = deliver_all(&app).await;
    assert!(rounds > 1, "the chaos took retries");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'succeeded'")
            .await,
        7
    );

    // Each event: one webhook-id on every attempt, one success, a valid signature each time.
    let mut by_id: BTreeMap<String, Vec<Received>> = BTreeMap::new();
    for r in chaos.received() {
        assert!(verifies(&acme_secret, &r));
        by_id.entry(r.header("webhook-id")).or_default().push(r);
    }
    assert_eq!(by_id.len(), 6);
    let mut delivered = BTreeSet::new();
    for (id, tries) in &by_id {
        let bodies: BTreeSet<&Vec<u8>> = tries.iter().map(|r| &r.body).collect();
        assert_eq!(bodies.len(), 1, "{id} was sent with different bodies");
        let ok = tries
            .iter()
            .filter(|r| r.answered.is_some_and(|s| (200..300).contains(&s)));
        assert_eq!(ok.count(), 1, "{id} succeeded once");
        delivered.insert(
            tries[0].json()["data"]["ticket_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(delivered, acme_tickets);
    // Nothing crossed: Globex's receiver heard only Globex's ticket, under Globex's secret.
    let calm_got = calm.received();
    assert_eq!(calm_got.len(), 1);
    assert_eq!(calm_got[0].json()["data"]["ticket_id"], globex_ticket["id"]);
    assert!(verifies(&globex_secret, &calm_got[0]) && !verifies(&acme_secret, &calm_got[0]));

    // The log says what happened, and each tenant sees only its own.
    let attempts = app
        .count("SELECT COUNT(*) FROM webhook_attempts WHERE error LIKE 'no answer within%'")
        .await;
    assert!(attempts >= 2, "timeouts logged");
    let resets = app
        .count("SELECT COUNT(*) FROM webhook_attempts WHERE error LIKE 'could not connect%' OR error LIKE 'request failed%'")
        .await;
    assert!(resets >= 2, "resets logged");
    let throttled = app
        .count("SELECT COUNT(*) FROM webhook_attempts WHERE status_code IN (429, 503)")
        .await;
    assert_eq!(throttled, 4);
    let globex_hooks = app.get("/api/v1/webhooks", &globex.token).await;
    assert_eq!(
        globex_hooks.assert_ok(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn retries_follow_the_schedule_and_a_throttled_endpoint_is_waited_for() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "owner@acme.test").await;
    let project = app.project(&owner.token, "OPS").await;
    let receiver = Receiver::start(vec![
        Answer::Status(500),
        Answer::Status(500),
        Answer::Throttle(503),
        Answer::Binary,
    ])
    .await;
    let (hook, _) = subscribe(&app, &owner, &receiver.url, &["ticket.created"]).await;
    app.ticket(&owner.token, &project, json!({})).await;
    app.run_pending_events().await;
    // Seconds until the delivery's next attempt, as its log says.
    let seconds_left = || async {
        let log = app
            .get(&format!("/api/v1/webhooks/{hook}/deliveries"), &owner.token)
            .await;
        let at = log.assert_ok(200)["items"][0]["next_attempt_at"]
            .as_str()
            .unwrap()
            .to_owned();
        let at = chrono::DateTime::parse_from_rfc3339(&at).unwrap();
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds() as f64 / 1000.0
    };
    // At once, then about 5 s, then about 5 minutes (±10%).
    app.deliver_webhooks().await;
    let left = seconds_left().await;
    assert!((3.0..=5.6).contains(&left), "{left}");
    app.webhook_retries_due().await;
    app.deliver_webhooks().await;
    let left = seconds_left().await;
    assert!((260.0..=331.0).contains(&left), "{left}");
    // 503 with Retry-After: 1 — back in a second, without using up a step.
    app.webhook_retries_due().await;
    app.deliver_webhooks().await;
    let left = seconds_left().await;
    assert!((0.0..=1.1).contains(&left), "{left}");
    assert_eq!(
        app.scalar::<i32>("SELECT step FROM webhook_deliveries")
            .await,
        2
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.deliver_webhooks().await;
    assert_eq!(
        app.scalar::<String>("SELECT status FROM webhook_deliveries")
            .await,
        "succeeded"
    );
    // A binary answer is logged as text the database can hold.
    let log = app
        .get(&format!("/api/v1/webhooks/{hook}/deliveries"), &owner.token)
        .await;
    assert_eq!(
        log.assert_ok(200)["items"][0]["attempts"][0]["response"],
        "ab\u{fffd}\u{fffd}c"
    );
}

#[tokio::test]
async fn gone_endpoints_and_days_of_failure_disable_the_webhook_and_tell_the_admins() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "owner@acme.test").await;
    let admin = app.member(&owner, "admin@acme.test", "admin").await;
    let agent = app.member(&owner, "agent@acme.test", "agent").await;
    let project = app.project(&owner.token, "OPS").await;
    let gone = Receiver::start(vec![Answer::Status(410)]).await;
    let failing = Receiver::start(vec![Answer::Status(500)]).await;
    let (gone_hook, _) = subscribe(&app, &owner, &gone.url, &["ticket.created"]).await;
    let (failing_hook, _) = subscribe(&app, &owner, &failing.url, &["ticket.created"]).await;
    // Failing since long before the five days that disable an endpoint.
    app.sql(&format!(
        "UPDATE webhooks SET failing_since = '2000-01-01T00:00:00Z' WHERE url = '{}'",
        failing.url
    ))
    .await;
    app.ticket(&owner.token, &project, json!({})).await;
    app.run_pending_events().await;
    app.deliver_webhooks().await;

    for (hook, reason) in [
        (&gone_hook, "410 Gone"),
        (&failing_hook, "failed for 5 days"),
    ] {
        let w = app
            .get(&format!("/api/v1/webhooks/{hook}"), &owner.token)
            .await;
        let w = w.assert_ok(200);
        assert_eq!(w["active"], false);
        assert!(
            w["disabled_reason"].as_str().unwrap().contains(reason),
            "{w}"
        );
    }
    let log = app
        .get(
            &format!("/api/v1/webhooks/{gone_hook}/deliveries"),
            &owner.token,
        )
        .await;
    assert_eq!(log.assert_ok(200)["items"][0]["status"], "failed");

    // Admins and owners hear of it; an agent does not.
    app.run_pending_events().await;
    for (who, expect) in [(&owner, 2), (&admin, 2), (&agent, 0)] {
        let inbox = app.get("/api/v1/notifications", &who.token).await;
        let kinds: Vec<Value> = inbox.assert_ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] == "webhook_disabled")
            .cloned()
            .collect();
        assert_eq!(kinds.len(), expect, "{kinds:?}");
    }

    // Turned on again, the failure record starts afresh.
    let on = app
        .patch(
            &format!("/api/v1/webhooks/{gone_hook}"),
            &owner.token,
            json!({"active": true}),
        )
        .await;
    let on = on.assert_ok(200);
    assert_eq!(on["active"], true);
    assert_eq!(on["disabled_reason"], Value::Null);
    assert_eq!(on["failing_since"], Value::Null);
}

#[tokio::test]
async fn inward_urls_and_redirects_are_refused() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "owner@acme.test").await;
    let agent = app.member(&owner, "agent@acme.test", "agent").await;
    let project = app.project(&owner.token, "OPS").await;
    for url in [
        "ftp://example.com/",
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/",
        "http://0xa9fea9fe/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://[fd00::1]/",
        "not a url",
    ] {
        let res = app
            .post(
                "/api/v1/webhooks",
                Some(&owner.token),
                json!({"url": url, "events": ["ticket.created"]}),
            )
            .await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["field"], "url", "{url}: {}", res.body);
    }
    // A hostile list is refused with one short message, not one per entry.
    let flood: Vec<String> = (0..5_000).map(|n| format!("x{n}")).collect();
    let res = app
        .post(
            "/api/v1/webhooks",
            Some(&owner.token),
            json!({"url": "https://hooks.example.com/", "events": flood}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert!(
        res.body.to_string().len() < 4096,
        "{}",
        res.body.to_string().len()
    );
    // What is stored is the URL as it will be requested.
    let made = app
        .post(
            "/api/v1/webhooks",
            Some(&owner.token),
            json!({"url": " HTTPS://Hooks.Example.COM:443/a/../in ", "events": ["ticket.created"]}),
        )
        .await;
    assert_eq!(made.assert_ok(201)["url"], "https://hooks.example.com/in");
    for events in [json!([]), json!(["ticket.exploded"])] {
        app.post(
            "/api/v1/webhooks",
            Some(&owner.token),
            json!({"url": "https://hooks.example.com/", "events": events}),
        )
        .await
        .assert_problem(422, "validation_failed");
    }
    app.post(
        "/api/v1/webhooks",
        Some(&agent.token),
        json!({"url": "https://hooks.example.com/", "events": ["ticket.created"]}),
    )
    .await
    .assert_problem(403, "forbidden");

    // A redirect is a failure, never followed.
    let receiver = Receiver::start(vec![Answer::Redirect]).await;
    let (hook, _) = subscribe(&app, &owner, &receiver.url, &["ticket.created"]).await;
    let bad = app
        .patch(
            &format!("/api/v1/webhooks/{hook}"),
            &owner.token,
            json!({"url": "http://192.168.0.1/"}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    app.ticket(&owner.token, &project, json!({})).await;
    app.run_pending_events().await;
    app.deliver_webhooks().await;
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert!(got.iter().all(|r| r.path == "/hooks"));
    let log = app
        .get(&format!("/api/v1/webhooks/{hook}/deliveries"), &owner.token)
        .await;
    let log = log.assert_ok(200);
    assert_eq!(log["items"][0]["status"], "pending");
    let error = log["items"][0]["attempts"][0]["error"].as_str().unwrap();
    assert!(error.contains("redirects are not followed"), "{error}");
}

#[tokio::test]
async fn a_hanging_endpoint_holds_only_its_own_slots() {
    // The real worker delivers; a hung request takes the whole timeout.
    let app = spawn_app_tuned(Some(fast_worker()), |_, serve| {
        serve.webhooks.webhook_timeout_secs = 5;
    })
    .await;
    let owner = app.signup("acme", "owner@acme.test").await;
    let project = app.project(&owner.token, "OPS").await;
    let slow = Receiver::start(vec![Answer::Hang; 20]).await;
    let fast = Receiver::start(vec![]).await;
    subscribe(&app, &owner, &slow.url, &["ticket.created"]).await;
    subscribe(&app, &owner, &fast.url, &["ticket.created"]).await;
    for _ in 0..10 {
        app.ticket(&owner.token, &project, json!({})).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    while fast.received().len() < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "the fast endpoint got {} of 10 while the slow one hung",
            fast.received().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Meanwhile the slow endpoint had at most its four slots, none of them settled yet.
    assert!(slow.received().len() <= 4, "{}", slow.received().len());
    let in_flight = app
        .count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'delivering'")
        .await;
    assert!((1..=4).contains(&in_flight), "{in_flight} in flight");
}
