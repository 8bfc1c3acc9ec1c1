//! Reports over HTTP: the numbers of a known organisation, as JSON and as RFC 4180 CSV; who may
//! read them; period checks; and reading from a real streaming replica (made with
//! pg_basebackup by the test script) that is left for the primary while it lags or is down.

use std::time::Duration;

use chrono::{Duration as Span, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

async fn resolve(app: &TestApp, token: &str, ticket: &Value) {
    app.call_if(
        Method::POST,
        &format!(
            "/api/v1/tickets/{}/complete",
            ticket["id"].as_str().unwrap()
        ),
        token,
        ticket["version"].as_i64().unwrap(),
        None,
    )
    .await
    .assert_ok(200);
}

#[tokio::test]
async fn reports_count_what_happened_as_json_and_csv() {
    let app = spawn_app().await;
    let owner = app.signup("rep", "owner@rep.example.com").await;
    let manager = app
        .member(&owner, "manager@rep.example.com", "manager")
        .await;
    let agent = app.member(&owner, "agent@rep.example.com", "agent").await;
    let requester = app.member(&owner, "req@rep.example.com", "requester").await;
    let ops = app.project(&owner.token, "OPS").await;
    let web = app.project(&owner.token, "WEB").await;
    app.put(
        "/api/v1/sla-policies",
        &owner.token,
        json!({"policies": [{"priority": "urgent", "first_response_minutes": 60, "resolution_minutes": 600}]}),
    )
    .await
    .assert_ok(200);
    let mut tickets = Vec::new();
    for (project, priority, assigned) in [
        (&ops, "urgent", true),
        (&ops, "urgent", false),
        (&ops, "low", true),
        (&web, "urgent", true),
        (&web, "medium", false),
    ] {
        let assignees = if assigned {
            json!([agent.user_id])
        } else {
            json!([])
        };
        tickets.push(
            app.ticket(
                &owner.token,
                project,
                json!({"priority": priority, "assignee_ids": assignees}),
            )
            .await,
        );
    }
    resolve(&app, &agent.token, &tickets[0]).await;
    resolve(&app, &agent.token, &tickets[3]).await;
    app.post(
        &format!(
            "/api/v1/tickets/{}/comments",
            tickets[1]["id"].as_str().unwrap()
        ),
        Some(&agent.token),
        json!({"body": "on it"}),
    )
    .await
    .assert_ok(201);

    let summary = app.get("/api/v1/reports/summary", &manager.token).await;
    let s = summary.assert_ok(200).clone();
    assert_eq!(summary.headers["docket-data-source"], "primary");
    assert_eq!(s["created"], 5);
    assert_eq!(s["resolved"], 2);
    assert_eq!(s["open"], 3);
    assert_eq!(s["open_by_status"], json!([{"status": "open", "count": 3}]));
    assert_eq!(
        s["open_by_priority"],
        json!([{"priority": "urgent", "count": 1}, {"priority": "medium", "count": 1}, {"priority": "low", "count": 1}])
    );
    assert_eq!(
        s["open_by_assignee"],
        json!([{"assignee_id": null, "count": 2}, {"assignee_id": agent.user_id, "count": 1}])
    );
    assert_eq!(
        s["open_by_project"],
        json!([{"project_id": ops, "key": "OPS", "count": 2}, {"project_id": web, "key": "WEB", "count": 1}])
    );
    let only_web = app
        .get(
            &format!("/api/v1/reports/summary?project_id={web}"),
            &manager.token,
        )
        .await;
    assert_eq!(only_web.assert_ok(200)["created"], 2);

    let today = Utc::now().date_naive().to_string();
    let throughput = app.get("/api/v1/reports/throughput", &manager.token).await;
    let buckets = throughput.assert_ok(200)["buckets"]
        .as_array()
        .unwrap()
        .clone();
    assert!(buckets.len() >= 30, "every day of the period is listed");
    let last = buckets.last().unwrap();
    assert_eq!(
        (
            last["start"].as_str().unwrap(),
            &last["created"],
            &last["resolved"]
        ),
        (today.as_str(), &json!(5), &json!(2))
    );
    let weekly = app
        .get("/api/v1/reports/throughput?interval=week", &manager.token)
        .await;
    let weeks = weekly.assert_ok(200)["buckets"].as_array().unwrap().clone();
    assert!(weeks.len() <= 6 && weeks.len() >= 5, "{weeks:?}");
    assert_eq!(weeks.last().unwrap()["created"], 5);

    let sla = app.get("/api/v1/reports/sla", &manager.token).await;
    let rows = sla.assert_ok(200)["rows"].as_array().unwrap().clone();
    let row = |clock: &str| rows.iter().find(|r| r["clock"] == clock).unwrap().clone();
    // Two were resolved without a public reply: their first-response clocks stand paused.
    let first = row("first_response");
    assert_eq!(
        (
            first["priority"].as_str().unwrap(),
            first["clocks"].as_u64().unwrap()
        ),
        ("urgent", 3)
    );
    assert_eq!(
        (
            first["met"].as_u64().unwrap(),
            first["running"].as_u64().unwrap()
        ),
        (1, 2)
    );
    assert_eq!(first["attainment"], 100.0);
    assert_eq!(first["p50_minutes"], 0);
    let resolution = row("resolution");
    assert_eq!(
        (
            resolution["met"].as_u64().unwrap(),
            resolution["running"].as_u64().unwrap()
        ),
        (2, 1)
    );

    // CSV: RFC 4180 with CRLF, one record per row, a header first.
    for (path, header) in [
        ("/api/v1/reports/summary", "section,key,count"),
        ("/api/v1/reports/throughput", "start,created,resolved"),
        (
            "/api/v1/reports/sla",
            "policy_id,priority,clock,clocks,met,breached,running,attainment,p50_minutes,p90_minutes,p95_minutes",
        ),
    ] {
        let res = app
            .client
            .get(format!("{}{path}", app.base))
            .bearer_auth(&manager.token)
            .header("accept", "text/csv")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
        assert!(
            res.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment")
        );
        let text = res.text().await.unwrap();
        assert!(text.starts_with(&format!("{header}\r\n")), "{text}");
        assert!(
            text.ends_with("\r\n") && !text.replace("\r\n", "").contains('\n'),
            "{text:?}"
        );
        if path.ends_with("summary") {
            assert!(text.contains("open_by_project,OPS,2\r\n"), "{text}");
            assert!(
                text.contains(&format!("open_by_assignee,{},1\r\n", agent.user_id)),
                "{text}"
            );
        }
    }

    // Managers and above; never agents or requesters.
    for who in [&agent, &requester] {
        app.get("/api/v1/reports/summary", &who.token)
            .await
            .assert_problem(403, "forbidden");
    }
    let now = Utc::now();
    for bad in [
        format!(
            "/api/v1/reports/summary?from={}&to={}",
            enc(now),
            enc(now - Span::days(1))
        ),
        format!(
            "/api/v1/reports/throughput?from={}",
            enc(now - Span::days(800))
        ),
        "/api/v1/reports/throughput?interval=month".to_owned(),
        "/api/v1/reports/sla?project_id=nope".to_owned(),
        "/api/v1/reports/sla?from=yesterday".to_owned(),
    ] {
        app.get(&bad, &owner.token).await.assert_problem(
            if bad.contains("nope") || bad.contains("yesterday") {
                400
            } else {
                422
            },
            if bad.contains("nope") || bad.contains("yesterday") {
                "invalid_query"
            } else {
                "validation_failed"
            },
        );
    }
    app.shutdown().await;
}

fn enc(t: chrono::DateTime<Utc>) -> String {
    form_urlencoded::byte_serialize(t.to_rfc3339().as_bytes()).collect()
}

/// The replica's URL for the database `primary` names (the whole cluster is replicated).
fn on_replica(primary: &str) -> String {
    let replica = std::env::var("DOCKET_TEST_PG_REPLICA_URL").expect(
        "DOCKET_TEST_PG_REPLICA_URL: scripts/test starts a replica for the PostgreSQL stage",
    );
    let (server, _) = replica.rsplit_once('/').unwrap();
    let (_, database) = primary.rsplit_once('/').unwrap();
    format!("{server}/{database}")
}

#[tokio::test]
async fn reports_read_from_a_fresh_replica_and_fall_back_to_the_primary() {
    if backend() == Backend::Sqlite {
        // SQLite has no replicas: a replica URL is a mistake the server refuses to start with.
        let refused = try_spawn_app_tuned(None, |_, serve| {
            serve.replica.database_replica_url =
                Some(docket::config::Secret::new("postgres://127.0.0.1:1/x"));
        })
        .await;
        let err = refused.err().expect("refused").to_string();
        assert!(err.contains("DATABASE_REPLICA_URL"), "{err}");
        return;
    }
    let app = spawn_app_tuned(None, |store, serve| {
        let primary = store.database_url.as_ref().unwrap().expose().to_owned();
        serve.replica.database_replica_url =
            Some(docket::config::Secret::new(on_replica(&primary)));
        serve.replica.replica_max_lag_secs = 1;
    })
    .await;
    let owner = app.signup("replica", "owner@replica.example.com").await;
    let project = app.project(&owner.token, "REP").await;
    app.ticket(&owner.token, &project, json!({})).await;
    let created = |res: &Resp| res.body["created"].as_u64().unwrap();
    // The replica catches up within moments and then serves the report.
    let mut served = None;
    for _ in 0..50 {
        let res = app.get("/api/v1/reports/summary", &owner.token).await;
        res.assert_ok(200);
        if res.headers["docket-data-source"] == "replica" && created(&res) == 1 {
            served = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served.is_some(),
        "the replica never served a caught-up report"
    );

    // Replay paused: once it trails by more than the limit, the primary answers (and is right).
    let replica = sea_orm::Database::connect(on_replica(&app.database_url))
        .await
        .unwrap();
    use sea_orm::ConnectionTrait as _;
    replica
        .execute_unprepared("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    app.ticket(&owner.token, &project, json!({})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let res = app.get("/api/v1/reports/summary", &owner.token).await;
    assert_eq!(res.assert_ok(200)["created"], 2);
    assert_eq!(res.headers["docket-data-source"], "primary");
    replica
        .execute_unprepared("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    replica.close().await.ok();
    app.shutdown().await;

    // A replica that does not answer: the primary serves every report.
    let down = spawn_app_tuned(None, |_, serve| {
        serve.replica.database_replica_url = Some(docket::config::Secret::new(
            "postgres://postgres@127.0.0.1:1/docket",
        ));
    })
    .await;
    let owner = down.signup("nodown", "owner@nodown.example.com").await;
    let res = down.get("/api/v1/reports/summary", &owner.token).await;
    res.assert_ok(200);
    assert_eq!(res.headers["docket-data-source"], "primary");
    down.shutdown().await;
}
