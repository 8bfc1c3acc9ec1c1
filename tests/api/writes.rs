//! The write path under pressure: parallel conditional updates, parallel idempotent creates,
//! gap-free ticket numbers, and one transaction per change (a failing step leaves nothing).

use std::collections::BTreeSet;

use futures::future::join_all;
use reqwest::Method;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{Value, json};

use crate::helpers::*;

async fn owner_and_project(app: &TestApp) -> (Session, String) {
    let owner = app.signup("acme", "owner@acme.example").await;
    let project = app.project(&owner.token, "OPS").await;
    (owner, project)
}

async fn count(db: &str, sql: &str) -> i64 {
    let conn = Database::connect(db).await.unwrap();
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(
            backend,
            format!("SELECT count(*) AS n FROM {sql}"),
        ))
        .await
        .unwrap()
        .unwrap();
    let n = row.try_get::<i64>("", "n").unwrap();
    conn.close().await.ok();
    n
}

#[tokio::test]
async fn of_parallel_updates_with_one_if_match_exactly_one_wins() {
    let app = spawn_app().await;
    let (owner, project) = owner_and_project(&app).await;
    let t = app.ticket(&owner.token, &project, json!({})).await;
    let path = format!("/api/v1/tickets/{}", t["id"].as_str().unwrap());
    let results = join_all((0..12).map(|i| {
        app.call_if(
            Method::PATCH,
            &path,
            &owner.token,
            1,
            Some(json!({"title": format!("Title {i}")})),
        )
    }))
    .await;
    let won: Vec<&Resp> = results.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != 200) {
        r.assert_problem(412, "version_mismatch");
        assert_eq!(r.body["current_version"], 2);
    }
    let now = app.get(&path, &owner.token).await;
    assert_eq!(now.assert_ok(200)["title"], won[0].body["title"]);
    assert_eq!(now.body["version"], 2);
    let tl = app.get(&format!("{path}/timeline"), &owner.token).await;
    assert_eq!(tl.assert_ok(200)["items"].as_array().unwrap().len(), 2);
    app.shutdown().await;
}

#[tokio::test]
async fn parallel_creates_in_one_project_get_gap_free_keys() {
    let app = spawn_app().await;
    let (owner, project) = owner_and_project(&app).await;
    let results = join_all((0..25).map(|_| {
        app.post(
            "/api/v1/tickets",
            Some(&owner.token),
            json!({"project_id": project, "title": "Parallel"}),
        )
    }))
    .await;
    let numbers: BTreeSet<i64> = results
        .iter()
        .map(|r| r.assert_ok(201)["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=25).collect());
    app.shutdown().await;
}

fn keyed(app: &TestApp, token: &str, key: &str, body: &Value) -> reqwest::RequestBuilder {
    app.request(Method::POST, "/api/v1/tickets", Some(token))
        .header("idempotency-key", key)
        .json(body)
}

#[tokio::test]
async fn an_idempotency_key_makes_a_create_happen_once() {
    let app = spawn_app().await;
    let (owner, project) = owner_and_project(&app).await;
    let body = json!({"project_id": project, "title": "Once"});

    let results =
        join_all((0..10).map(|_| app.send(keyed(&app, &owner.token, "k-1", &body)))).await;
    let mut ids = BTreeSet::new();
    for r in &results {
        match r.status.as_u16() {
            201 => {
                ids.insert(r.body["id"].as_str().unwrap().to_owned());
            }
            409 => {
                r.assert_problem(409, "idempotency_key_in_progress");
            }
            other => panic!("{other}: {}", r.body),
        }
    }
    assert_eq!(ids.len(), 1, "one ticket, whatever each request saw");
    assert_eq!(count(&app.database_url, "tickets").await, 1);
    assert_eq!(
        count(
            &app.database_url,
            "outbox_events WHERE kind = 'ticket.created'"
        )
        .await,
        1
    );

    // Later retries get the stored answer, marked as a replay.
    let replay = app.send(keyed(&app, &owner.token, "k-1", &body)).await;
    assert_eq!(
        replay.assert_ok(201)["id"].as_str(),
        ids.iter().next().map(String::as_str)
    );
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert!(
        replay.headers["location"]
            .to_str()
            .unwrap()
            .starts_with("/api/v1/tickets/")
    );
    assert_eq!(replay.headers["etag"], "\"1\"");
    // The same JSON laid out differently is the same request.
    let relaid = app
        .send(
            app.request(Method::POST, "/api/v1/tickets", Some(&owner.token))
                .header("idempotency-key", "k-1")
                .header("content-type", "application/json")
                .body(format!(
                    r#"{{ "title" : "Once",  "project_id" : "{project}" }}"#
                )),
        )
        .await;
    assert_eq!(relaid.assert_ok(201)["id"], replay.body["id"]);
    // A different request under the same key is refused.
    let other = app
        .send(keyed(
            &app,
            &owner.token,
            "k-1",
            &json!({"project_id": project, "title": "Twice"}),
        ))
        .await;
    other.assert_problem(422, "idempotency_key_reused");
    // Keys are per user: another person's k-1 is theirs.
    let agent = app.member(&owner, "agent@acme.example", "agent").await;
    let theirs = app.send(keyed(&app, &agent.token, "k-1", &body)).await;
    assert_ne!(theirs.assert_ok(201)["id"], replay.body["id"]);
    assert_eq!(count(&app.database_url, "tickets").await, 2);
    // Over-long keys are refused.
    app.send(keyed(&app, &owner.token, &"k".repeat(256), &body))
        .await
        .assert_problem(400, "invalid_idempotency_key");
    app.shutdown().await;
}

#[tokio::test]
async fn a_failed_keyed_request_can_be_retried_under_its_key() {
    let app = spawn_app().await;
    let (owner, project) = owner_and_project(&app).await;
    let t = app.ticket(&owner.token, &project, json!({})).await;
    let complete = format!("/api/v1/tickets/{}/complete", t["id"].as_str().unwrap());
    let send = |version: i64| {
        app.send(
            app.request(Method::POST, &complete, Some(&owner.token))
                .header("idempotency-key", "done-1")
                .header("if-match", format!("\"{version}\"")),
        )
    };
    send(7).await.assert_problem(412, "version_mismatch");
    let ok = send(1).await;
    assert_eq!(ok.assert_ok(200)["status"], "resolved");
    assert!(ok.headers.get("idempotent-replayed").is_none());
    let again = send(1).await;
    assert_eq!(again.assert_ok(200)["version"], 2);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    app.shutdown().await;
}

/// Makes the database fail the outbox insert of a ticket titled "boom": the last step of the
/// write, after the counter, the ticket, its children and the timeline were written.
async fn sabotage_outbox(url: &str) {
    let conn = Database::connect(url).await.unwrap();
    let sql = match conn.get_database_backend() {
        DbBackend::Postgres => vec![
            "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.payload::text LIKE '%boom%' THEN RAISE EXCEPTION 'sabotaged'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON outbox_events FOR EACH ROW EXECUTE FUNCTION refuse_boom()",
        ],
        _ => vec![
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON outbox_events
             WHEN NEW.payload LIKE '%boom%' BEGIN SELECT RAISE(ABORT, 'sabotaged'); END",
        ],
    };
    for s in sql {
        conn.execute_unprepared(s).await.unwrap();
    }
    conn.close().await.ok();
}

#[tokio::test]
async fn a_change_that_fails_at_its_last_step_leaves_nothing_behind() {
    let app = spawn_app().await;
    let (owner, project) = owner_and_project(&app).await;
    let agent = app.member(&owner, "agent@acme.example", "agent").await;
    sabotage_outbox(&app.database_url).await;
    let body = json!({"project_id": project, "title": "boom", "labels": ["x"], "assignee_ids": [agent.user_id]});
    let res = app.send(keyed(&app, &owner.token, "boom-1", &body)).await;
    res.assert_problem(500, "internal_error");
    for table in [
        "tickets",
        "ticket_labels",
        "ticket_assignees",
        "ticket_events WHERE ticket_id IS NOT NULL",
        "outbox_events WHERE ticket_id IS NOT NULL",
        "idempotency_keys",
    ] {
        assert_eq!(count(&app.database_url, table).await, 0, "{table}");
    }
    // The number was not used up either.
    let t = app
        .ticket(&owner.token, &project, json!({"title": "fine"}))
        .await;
    assert_eq!(t["key"], "OPS-1");
    // And an update that fails at the same step keeps the old version.
    let path = format!("/api/v1/tickets/{}", t["id"].as_str().unwrap());
    app.call_if(
        Method::PATCH,
        &path,
        &owner.token,
        1,
        Some(json!({"title": "boom"})),
    )
    .await
    .assert_problem(500, "internal_error");
    let now = app.get(&path, &owner.token).await;
    assert_eq!(now.assert_ok(200)["title"], "fine");
    assert_eq!(now.body["version"], 1);
    app.shutdown().await;
}

#[tokio::test]
async fn every_change_records_its_outbox_events() {
    let app = spawn_app().await;
    let (owner, project) = owner_and_project(&app).await;
    let agent = app.member(&owner, "agent@acme.example", "agent").await;
    let t = app
        .ticket(
            &owner.token,
            &project,
            json!({"assignee_ids": [agent.user_id]}),
        )
        .await;
    let path = format!("/api/v1/tickets/{}", t["id"].as_str().unwrap());
    app.call_if(
        Method::PATCH,
        &path,
        &owner.token,
        1,
        Some(json!({"status": "pending", "title": "New"})),
    )
    .await
    .assert_ok(200);
    app.post(
        &format!("{path}/comments"),
        Some(&agent.token),
        json!({"body": "hi"}),
    )
    .await
    .assert_ok(201);
    app.call_if(Method::DELETE, &path, &owner.token, 2, None)
        .await;
    let conn = Database::connect(&app.database_url).await.unwrap();
    let backend = conn.get_database_backend();
    let rows = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT kind FROM outbox_events WHERE ticket_id IS NOT NULL ORDER BY id",
        ))
        .await
        .unwrap();
    let kinds: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("", "kind").unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ticket.created",
            "ticket.assigned",
            "ticket.updated",
            "ticket.status_changed",
            "comment.created",
            "ticket.deleted"
        ]
    );
    let payload = conn
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT payload FROM outbox_events WHERE kind = 'ticket.status_changed'",
        ))
        .await
        .unwrap()
        .unwrap();
    let payload: Value = payload.try_get("", "payload").unwrap();
    assert_eq!(payload["org_id"], owner.org_id.as_str());
    assert_eq!(payload["actor_id"], owner.user_id.as_str());
    assert_eq!(payload["from"], "open");
    assert_eq!(payload["to"], "pending");
    conn.close().await.ok();
    app.shutdown().await;
}
