//! The outbox dispatcher over the real server: handlers run once in effect, failures retry and
//! end dead without holding up other events, admins see and requeue dead letters, and the
//! figures show at /metrics.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use docket::{
    access::{Role, TenantCtx},
    events::{Body, Event, Handler, Handlers, WriteHandler},
    store::{Db, TenantTx},
};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

/// Open (not yet handled) outbox events.
pub const OPEN: &str =
    "SELECT count(*) FROM outbox_events WHERE status IN ('pending', 'processing')";

/// A handler that fails every `ticket.assigned` event of the tickets it is told about, as a
/// broken consumer (a mail server that is down, say) would.
#[derive(Clone, Default)]
struct Poisoned(Arc<Mutex<HashSet<Uuid>>>);

impl Poisoned {
    fn poison(&self, ticket: &Value) {
        let id = ticket["id"].as_str().unwrap().parse().unwrap();
        self.0.lock().unwrap().insert(id);
    }

    fn cure(&self) {
        self.0.lock().unwrap().clear();
    }

    /// An error for a poisoned ticket's `ticket.assigned`.
    fn check(&self, event: &Event) -> docket::error::Result<()> {
        let poisoned = matches!(event.body, Body::TicketAssigned(_))
            && event
                .ticket_id()
                .is_some_and(|t| self.0.lock().unwrap().contains(&t));
        if poisoned {
            return Err(docket::error::Error::internal(anyhow::anyhow!("poisoned")));
        }
        Ok(())
    }

    /// The real handlers with this one just before notifications: a poisoned event reaches
    /// the stream, but notifies nobody until it is cured.
    fn with_real_handlers(&self) -> Handlers {
        Handlers::new()
            .with_writes(docket::events::stream::Publisher)
            .with(self.clone())
            .with_writes(docket::notify::Notifier)
    }
}

#[async_trait::async_trait]
impl Handler for Poisoned {
    fn name(&self) -> &'static str {
        "poisoned"
    }

    async fn handle(&self, _: &Db, event: &Event) -> docket::error::Result<()> {
        self.check(event)
    }
}

/// The same poison as a write handler, to sit in the transaction the write handlers share.
#[derive(Clone, Default)]
struct PoisonedWrites(Poisoned);

#[async_trait::async_trait]
impl WriteHandler for PoisonedWrites {
    fn name(&self) -> &'static str {
        "poisoned"
    }

    fn concerns(&self, _: &Event) -> bool {
        true
    }

    async fn write(&self, _: &TenantTx, events: &[&Event]) -> docket::error::Result<()> {
        events.iter().try_for_each(|e| self.0.check(e))
    }
}

/// `tickets` tickets assigned to an agent, with a comment each, and all their events handled.
/// Returns the agent and the number of events.
async fn handled_tickets(app: &TestApp, tickets: usize) -> (Session, i64) {
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "a@example.com", "agent").await;
    let project = app.project(&owner.token, "OPS").await;
    app.assigned_tickets_with_comments(&owner.token, &project, &agent, tickets)
        .await;
    let events = app.count("SELECT count(*) FROM outbox_events").await;
    assert_eq!(app.run_pending_events().await as i64, events);
    assert_eq!(app.count(OPEN).await, 0);
    (agent, events)
}

#[tokio::test]
async fn an_event_handled_twice_changes_nothing_the_second_time() {
    let app = spawn_app().await;
    let (agent, events) = handled_tickets(&app, 5).await;
    let notifications = "SELECT count(*) FROM notifications";
    let stream = "SELECT count(*) FROM stream_events";
    let mails = "SELECT count(*) FROM mails WHERE kind = 'notification'";
    let (n, s) = (app.count(notifications).await, app.count(stream).await);
    // 5 × (assigned + comment) for the agent; every event and notification on the stream; each
    // notification mailed to the agent at once (the default).
    assert_eq!(n, 10);
    assert_eq!(s, events + n);
    assert_eq!(app.count(mails).await, n);

    // Every event runs through its handlers again (as after a crash before settling).
    app.sql("UPDATE outbox_events SET status = 'pending', available_at = created_at")
        .await;
    assert_eq!(app.run_pending_events().await as i64, events);
    assert_eq!(app.count(OPEN).await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox_events WHERE attempts = 2 AND status = 'done'")
            .await,
        events,
        "every event ran twice"
    );
    assert_eq!(app.count(notifications).await, n);
    assert_eq!(app.count(stream).await, s);
    assert_eq!(app.count(mails).await, n, "a notification is mailed once");
    let unread = app
        .get("/api/v1/notifications/unread-count", &agent.token)
        .await;
    assert_eq!(unread.assert_ok(200)["count"], 10);
    app.shutdown().await;
}

/// The worker in `serve` writes through a lane of its own (`Db::background`): while a request
/// holds the requests' writing capacity and three more wait for it, the worker's write goes
/// ahead of the waiting requests. On PostgreSQL it has a pool of its own and does not wait at
/// all; on SQLite, which has one writer, it waits behind the writer holding the turn and the
/// first request in line, not behind all three.
#[tokio::test]
async fn the_workers_writes_do_not_queue_behind_requests() {
    let app = spawn_app_tuned(None, |store, _| {
        // PostgreSQL: one connection for requests (the commit listener keeps the other).
        store.db_max_connections = 2;
    })
    .await;
    let requests = app.running().db().clone();
    let worker = requests.background(&app.store).await.unwrap();
    let ctx = TenantCtx::authenticated(Uuid::now_v7(), Uuid::now_v7(), Role::Owner, None);
    let order = Arc::new(Mutex::new(Vec::new()));
    let write = |db: &Db, who: &'static str| {
        let (db, ctx, order) = (db.clone(), ctx.clone(), order.clone());
        tokio::spawn(async move {
            let tx = db.write(&ctx).await.unwrap();
            order.lock().unwrap().push(who);
            tx.commit().await.unwrap();
        })
    };
    // The test's runtime has one thread: each spawned writer runs until it waits in line.
    let let_them_queue = || async {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    };

    let holder = requests.write(&ctx).await.unwrap();
    let mut writers: Vec<_> = (0..3).map(|_| write(&requests, "request")).collect();
    let_them_queue().await;
    let worker_write = write(&worker, "worker");
    let_them_queue().await;
    let expected = match backend() {
        Backend::Postgres => {
            worker_write.await.unwrap();
            ["worker", "request", "request", "request"]
        }
        Backend::Sqlite => {
            writers.push(worker_write);
            ["request", "worker", "request", "request"]
        }
    };
    holder.commit().await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), expected);
    app.shutdown().await;
}

/// A first attempt does not look for its feed entries before publishing them (no earlier run
/// can have published them). Should a first attempt whose lease ran out commit after its retry
/// did, the feed's unique source refuses the repeat: the attempt fails, and the next one (which
/// does look) adds nothing.
#[tokio::test]
async fn a_first_attempt_that_repeats_what_was_published_adds_nothing() {
    let app = spawn_app().await;
    let (_, events) = handled_tickets(&app, 2).await;
    let stream = "SELECT count(*) FROM stream_events";
    let notifications = "SELECT count(*) FROM notifications";
    let (s, n) = (app.count(stream).await, app.count(notifications).await);
    let last_seq = "SELECT max(last_seq) FROM stream_counters";
    let seq = app.count(last_seq).await;
    assert_eq!(seq, s, "positions are 1..=entries");

    // Claimed as a first attempt again: its feed entries are already there.
    app.sql("UPDATE outbox_events SET status = 'pending', attempts = 0, available_at = created_at")
        .await;
    app.run_pending_events().await;
    assert_eq!(app.count(OPEN).await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox_events WHERE attempts = 2 AND status = 'done'")
            .await,
        events,
        "each first attempt was refused and its retry handled the event"
    );
    assert_eq!(app.count(stream).await, s, "nothing published twice");
    assert_eq!(
        app.count(last_seq).await,
        seq,
        "no position taken or skipped"
    );
    assert_eq!(app.count(notifications).await, n);
    app.shutdown().await;
}

/// Write handlers share one transaction per organisation batch. When one of them fails, the
/// batch is redone handler by handler: the failing event keeps what the writers before the
/// failing one made of it (its feed entry), gets nothing from those after it (no
/// notification), and the other events get everything.
#[tokio::test]
async fn a_write_handler_that_fails_in_the_shared_transaction_holds_up_only_its_event() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "a@example.com", "agent").await;
    let project = app.project(&owner.token, "OPS").await;
    let assigned = |title: &str| json!({"title": title, "assignee_ids": [agent.user_id]});
    let poisoned = app
        .ticket(&owner.token, &project, assigned("poison pill"))
        .await;
    app.ticket(&owner.token, &project, assigned("healthy"))
        .await;
    let poison = PoisonedWrites::default();
    poison.0.poison(&poisoned);
    let handlers = Handlers::new()
        .with_writes(docket::events::stream::Publisher)
        .with_writes(poison.clone())
        .with_writes(docket::notify::Notifier);
    app.run_pending_events_with(handlers).await;

    assert_eq!(app.count(OPEN).await, 0);
    let dead = app
        .get("/api/v1/admin/events?status=dead", &owner.token)
        .await;
    let dead = dead.assert_ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["ticket_id"], poisoned["id"]);
    assert!(
        dead[0]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("poisoned: ")
    );
    let entry = format!(
        "SELECT count(*) FROM stream_events WHERE source = 'event:{}'",
        dead[0]["id"].as_str().unwrap()
    );
    assert_eq!(
        app.count(&entry).await,
        1,
        "the writer before the failing one kept its work"
    );
    let inbox = app.get("/api/v1/notifications", &agent.token).await;
    let titles = pluck(&inbox.assert_ok(200)["items"], "title");
    assert_eq!(titles.len(), 1, "{titles:?}");
    assert!(titles[0].contains("healthy"), "{titles:?}");
    app.shutdown().await;
}

/// Handlers act for the organisation an event's payload names. An outbox row whose payload
/// names another organisation than the row's own is refused before any handler runs: it ends
/// dead, and nothing of it reaches a feed or a person of either organisation.
#[tokio::test]
async fn an_event_whose_payload_names_another_organisation_reaches_no_one() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "a@example.com", "agent").await;
    let project = app.project(&owner.token, "OPS").await;
    let other = app.signup("other", "x@example.com").await;
    app.run_pending_events().await;
    let (feed_before, inbox_before) = (
        app.count("SELECT count(*) FROM stream_events").await,
        app.count("SELECT count(*) FROM notifications").await,
    );
    app.ticket(
        &owner.token,
        &project,
        json!({"assignee_ids": [agent.user_id]}),
    )
    .await;
    let text = match backend() {
        Backend::Postgres => "payload::text",
        Backend::Sqlite => "payload",
    };
    let forged = format!("REPLACE({text}, '{}', '{}')", owner.org_id, other.org_id);
    let forged = match backend() {
        Backend::Postgres => format!("({forged})::jsonb"),
        Backend::Sqlite => forged,
    };
    app.sql(&format!(
        "UPDATE outbox_events SET payload = {forged} WHERE status = 'pending'"
    ))
    .await;
    app.run_pending_events().await;

    assert_eq!(app.count(OPEN).await, 0);
    let dead = app
        .get("/api/v1/admin/events?status=dead", &owner.token)
        .await;
    let dead = dead.assert_ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(dead.len(), 2, "created and assigned: {dead:?}");
    for event in &dead {
        let error = event["last_error"].as_str().unwrap();
        assert!(error.contains("names another organisation"), "{error}");
        assert!(!error.contains(&other.org_id), "{error}");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM stream_events").await,
        feed_before
    );
    assert_eq!(
        app.count("SELECT count(*) FROM notifications").await,
        inbox_before
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_failing_event_ends_dead_without_holding_up_others_and_can_be_requeued() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "a@example.com", "agent").await;
    let project = app.project(&owner.token, "OPS").await;
    let poisoned_handler = Poisoned::default();

    let poisoned = app
        .ticket(
            &owner.token,
            &project,
            json!({"title": "poison pill", "assignee_ids": [agent.user_id]}),
        )
        .await;
    let healthy = app
        .ticket(
            &owner.token,
            &project,
            json!({"assignee_ids": [agent.user_id]}),
        )
        .await;
    poisoned_handler.poison(&poisoned);
    app.run_pending_events_with(poisoned_handler.with_real_handlers())
        .await;
    let dead = "SELECT count(*) FROM outbox_events WHERE status = 'dead'";
    assert_eq!(app.count(dead).await, 1);
    assert_eq!(app.count(OPEN).await, 0);

    // The dead letter, as admins see it: 3 attempts (the test limit) and the handler's error.
    let list = app
        .get("/api/v1/admin/events?status=dead", &owner.token)
        .await;
    let items = list.assert_ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:?}");
    let event = &items[0];
    assert_eq!(event["type"], "ticket.assigned");
    assert_eq!(event["ticket_id"], poisoned["id"]);
    assert_eq!(event["status"], "dead");
    assert_eq!(event["attempts"], 3);
    assert!(
        event["last_error"]
            .as_str()
            .unwrap()
            .starts_with("poisoned: "),
        "{event}"
    );
    // The healthy ticket's events were handled; so were the poisoned ticket's other events.
    let done = app
        .get("/api/v1/admin/events?status=done", &owner.token)
        .await;
    let done = done.assert_ok(200)["items"].as_array().unwrap().clone();
    assert!(
        done.iter()
            .any(|e| e["ticket_id"] == healthy["id"] && e["type"] == "ticket.assigned")
    );
    assert!(
        done.iter()
            .any(|e| e["ticket_id"] == poisoned["id"] && e["type"] == "ticket.created")
    );
    let inbox = app.get("/api/v1/notifications", &agent.token).await;
    assert_eq!(pluck(&inbox.assert_ok(200)["items"], "title").len(), 1);

    // Later events of the same ticket still flow once the head is dead.
    let ticket = format!("/api/v1/tickets/{}", poisoned["id"].as_str().unwrap());
    app.call_if(
        Method::PATCH,
        &ticket,
        &owner.token,
        1,
        Some(json!({"priority": "high"})),
    )
    .await
    .assert_ok(200);
    app.run_pending_events_with(poisoned_handler.with_real_handlers())
        .await;
    assert_eq!(app.count(OPEN).await, 0);
    assert_eq!(app.count(dead).await, 1);

    // Only admins requeue; a live event is not requeued; another tenant's id is not found.
    let retry = format!(
        "/api/v1/admin/events/{}/retry",
        event["id"].as_str().unwrap()
    );
    app.call(Method::POST, &retry, Some(&agent.token), None)
        .await
        .assert_problem(403, "forbidden");
    let other = app.signup("other", "x@example.com").await;
    app.call(Method::POST, &retry, Some(&other.token), None)
        .await
        .assert_problem(404, "event_not_found");
    // The other organisation lists only its own events (its first project's creation).
    let listed = app.get("/api/v1/admin/events", &other.token).await;
    assert_eq!(
        pluck(&listed.assert_ok(200)["items"], "type"),
        ["project.created"]
    );

    poisoned_handler.cure();
    let requeued = app
        .call(Method::POST, &retry, Some(&owner.token), None)
        .await;
    let requeued = requeued.assert_ok(200);
    assert_eq!(requeued["status"], "pending");
    assert_eq!(requeued["attempts"], 0);
    app.run_pending_events_with(poisoned_handler.with_real_handlers())
        .await;
    assert_eq!(app.count(OPEN).await, 0);
    let after = app
        .get("/api/v1/admin/events?status=dead", &owner.token)
        .await;
    assert!(
        after.assert_ok(200)["items"].as_array().unwrap().is_empty(),
        "{}",
        after.body
    );
    let inbox = app.get("/api/v1/notifications", &agent.token).await;
    let titles = pluck(&inbox.assert_ok(200)["items"], "title");
    assert!(
        titles.iter().any(|t| t.contains("poison pill")),
        "{titles:?}"
    );
    app.call(Method::POST, &retry, Some(&owner.token), None)
        .await
        .assert_problem(409, "event_not_dead");
    let audit = app.get("/api/v1/audit-log", &owner.token).await;
    assert!(pluck(&audit.assert_ok(200)["items"], "action").contains(&"event.requeued".to_owned()));

    // Bad filters are precise 400s.
    app.get("/api/v1/admin/events?status=zombie", &owner.token)
        .await
        .assert_problem(400, "invalid_query");
    app.shutdown().await;
}

#[tokio::test]
async fn metrics_show_the_backlog_and_what_was_handled() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let project = app.project(&owner.token, "OPS").await;
    app.ticket(&owner.token, &project, json!({})).await;
    app.run_pending_events().await;
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    for metric in [
        "docket_outbox_backlog 0",
        "docket_outbox_dead 0",
        "docket_outbox_oldest_pending_seconds 0",
        "docket_events_handled_total{kind=\"ticket.created\"}",
        "docket_event_handling_seconds_bucket",
        "docket_event_delay_seconds_count",
    ] {
        assert!(text.contains(metric), "{metric} missing from:\n{text}");
    }
    app.shutdown().await;
}
