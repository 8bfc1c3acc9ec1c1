//! Plans and their limits: without a plans file nothing is limited; with one, each organisation
//! is on a plan (the default until it is given another) and a change past a limit is 402
//! `plan_limit_reached` naming the limit, its value and the usage, checked in the change's
//! transaction so that parallel requests cannot both take the last seat. A plan that allows
//! less than is used deletes nothing.

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const PLANS: &str = r#"
[plans.free]
label = "Free"
seats = 3
projects = 2
storage_bytes = 100
webhooks = 1

[plans.team]
label = "Team"
seats = 25
stripe_price_id = "price_team"
"#;

async fn with_plans(text: &str) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plans.toml");
    std::fs::write(&path, text).unwrap();
    let app = spawn_app_tuned(None, move |_, serve| {
        serve.plans.plans_file = Some(path);
        serve.plans.default_plan = Some("free".into());
    })
    .await;
    (app, dir)
}

async fn invite(app: &TestApp, token: &str, email: &str, role: &str) -> Resp {
    app.post(
        "/api/v1/invitations",
        Some(token),
        json!({"email": email, "role": role}),
    )
    .await
}

fn assert_limit(res: &Resp, limit: &str, value: u64, usage: u64) {
    res.assert_problem(402, "plan_limit_reached");
    assert_eq!(res.body["limit"], limit, "{}", res.body);
    assert_eq!(res.body["value"], value, "{}", res.body);
    assert_eq!(res.body["usage"], usage, "{}", res.body);
}

fn set_plan(app: &TestApp, slug: &str, plan: &str) -> std::process::Output {
    run_docket(
        &["admin", "set-plan", "--org", slug, "--plan", plan],
        &app.database_url,
        &app.store.data_dir,
    )
}

#[tokio::test]
async fn without_a_plans_file_nothing_is_limited() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let plan = app.get("/api/v1/org/plan", &owner.token).await;
    let plan = plan.assert_ok(200).clone();
    assert_eq!(plan["plan"], Value::Null);
    assert_eq!(plan["plans"], json!([]));
    assert_eq!(plan["limits"]["seats"], Value::Null);
    assert_eq!(plan["usage"]["seats"], 1);
    assert_eq!(plan["usage"]["projects"], 1);
    for n in 0..5 {
        invite(&app, &owner.token, &format!("a{n}@example.com"), "agent")
            .await
            .assert_ok(201);
        app.project(&owner.token, &format!("P{}", (b'A' + n) as char))
            .await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn limits_hold_and_a_smaller_plan_deletes_nothing() {
    let (app, _dir) = with_plans(PLANS).await;
    let owner = app.signup("acme", "o@example.com").await;
    let t = &owner.token;
    let plan = app.get("/api/v1/org/plan", t).await.assert_ok(200).clone();
    assert_eq!(plan["plan"]["key"], "free", "{plan}");
    assert_eq!(plan["limits"]["seats"], 3);
    assert_eq!(plan["limits"]["webhooks"], 1);
    assert_eq!(plan["limits"]["api_requests_per_minute"], Value::Null);
    assert_eq!(
        plan["usage"],
        json!({"seats": 1, "projects": 1, "storage_bytes": 0, "webhooks": 0})
    );
    assert_eq!(plan["plans"][0]["key"], "free");
    assert_eq!(plan["plans"][1]["purchasable"], true);

    // Seats: staff and their pending invitations count, requesters never.
    invite(&app, t, "agent@example.com", "agent")
        .await
        .assert_ok(201);
    for n in 0..3 {
        invite(&app, t, &format!("c{n}@example.com"), "requester")
            .await
            .assert_ok(201);
    }
    invite(&app, t, "viewer@example.com", "viewer")
        .await
        .assert_ok(201);
    let res = invite(&app, t, "admin@example.com", "admin").await;
    assert_limit(&res, "seats", 3, 3);
    // Re-inviting an address already invited takes no second seat.
    invite(&app, t, "agent@example.com", "agent")
        .await
        .assert_ok(201);

    // Projects (not archived).
    let second = app.project(t, "TWO").await;
    let res = app
        .post(
            "/api/v1/projects",
            Some(t),
            json!({"name": "Three", "key": "THREE"}),
        )
        .await;
    assert_limit(&res, "projects", 2, 2);
    let path = format!("/api/v1/projects/{second}");
    app.patch(&path, t, json!({"archived": true}))
        .await
        .assert_ok(200);
    let third = app.project(t, "THREE").await;
    let res = app.patch(&path, t, json!({"archived": false})).await;
    assert_limit(&res, "projects", 2, 2);

    // Webhooks.
    let hook = |n: u32| json!({"url": format!("https://hooks{n}.example.com/"), "events": ["ticket.created"]});
    app.post("/api/v1/webhooks", Some(t), hook(1))
        .await
        .assert_ok(201);
    assert_limit(
        &app.post("/api/v1/webhooks", Some(t), hook(2)).await,
        "webhooks",
        1,
        1,
    );

    // Storage: the plan's figure is the quota.
    let ticket = app.ticket(t, &third, json!({})).await;
    let upload = |bytes: usize| {
        let part = reqwest::multipart::Part::bytes(vec![b'x'; bytes]).file_name("f.txt");
        app.request(
            Method::POST,
            &format!(
                "/api/v1/tickets/{}/attachments",
                ticket["id"].as_str().unwrap()
            ),
            Some(t),
        )
        .multipart(reqwest::multipart::Form::new().part("file", part))
    };
    app.send(upload(60)).await.assert_ok(201);
    assert_limit(&app.send(upload(60)).await, "storage_bytes", 100, 60);

    // An operator moves it to a bigger plan: room again.
    let out = set_plan(&app, "acme", "team");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    invite(&app, t, "admin@example.com", "admin")
        .await
        .assert_ok(201);
    app.post("/api/v1/webhooks", Some(t), hook(2))
        .await
        .assert_ok(201);
    app.send(upload(60)).await.assert_ok(201);
    let plan = app.get("/api/v1/org/plan", t).await.assert_ok(200).clone();
    assert_eq!(plan["plan"]["key"], "team");
    assert_eq!(plan["usage"]["webhooks"], 2);

    // Back to free: everything stays, nothing more may be added.
    let out = set_plan(&app, "acme", "free");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(app.all_items("/api/v1/webhooks", t).await.len(), 2);
    assert_limit(
        &app.post("/api/v1/webhooks", Some(t), hook(3)).await,
        "webhooks",
        1,
        2,
    );
    assert_limit(
        &invite(&app, t, "late@example.com", "agent").await,
        "seats",
        3,
        4,
    );
    let audit = app.get("/api/v1/audit-log?action=plan.changed", t).await;
    let entries = audit.assert_ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[1]["details"],
        json!({"from": "free", "to": "team", "reason": "operator"})
    );
    // An unknown plan is refused, naming it.
    let out = set_plan(&app, "acme", "gold");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a plan"));
    app.shutdown().await;
}

/// Parallel invitations for the last seat: exactly one gets it, on either backend.
#[tokio::test]
async fn parallel_invitations_cannot_both_take_the_last_seat() {
    let (app, _dir) = with_plans(PLANS).await;
    let owner = app.signup("acme", "o@example.com").await;
    invite(&app, &owner.token, "agent@example.com", "agent")
        .await
        .assert_ok(201);
    let attempts = (0..8).map(|n| {
        let (app, token) = (&app, owner.token.clone());
        async move { invite(app, &token, &format!("p{n}@example.com"), "agent").await }
    });
    let results = futures::future::join_all(attempts).await;
    let statuses: Vec<u16> = results.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 402).count(),
        7,
        "{statuses:?}"
    );
    let plan = app.get("/api/v1/org/plan", &owner.token).await;
    assert_eq!(plan.assert_ok(200)["usage"]["seats"], 3);
    app.shutdown().await;
}

#[tokio::test]
async fn a_mistaken_plans_file_stops_the_server_naming_the_line() {
    for (text, wanted) in [
        (PLANS.replace("projects = 2", "projets = 2"), "line 5"),
        (PLANS.replace("seats = 3", "seats = \"three\""), "line 4"),
        ("[plans]\n".to_owned(), "names no plan"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plans.toml");
        std::fs::write(&path, &text).unwrap();
        let started = try_spawn_app_tuned(None, |_, serve| {
            serve.plans.plans_file = Some(path.clone());
        })
        .await;
        let err = format!("{:#}", started.err().expect("refused"));
        assert!(err.contains(wanted) && err.contains("plans.toml"), "{err}");
    }
    let started = try_spawn_app_tuned(None, |_, serve| {
        serve.plans.plans_file = Some(Path::new("/nonexistent/plans.toml").into());
    })
    .await;
    assert!(started.is_err());
}

/// An organisation whose plan names its API requests per minute is held to that figure.
#[tokio::test]
async fn the_rate_limiter_takes_the_plans_figure() {
    let (app, _dir) =
        with_plans(&PLANS.replace("webhooks = 1", "webhooks = 1\napi_requests_per_minute = 5"))
            .await;
    let owner = app.signup("acme", "o@example.com").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let res = app.get("/api/v1/org/plan", &owner.token).await;
        statuses.push(res.status.as_u16());
        if res.status == 200 {
            let policy = res.headers["ratelimit-policy"].to_str().unwrap().to_owned();
            assert!(policy.contains("\"organization\";q=5"), "{policy}");
        } else {
            res.assert_problem(429, "too_many_requests");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    app.shutdown().await;
}
