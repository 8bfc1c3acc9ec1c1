//! API tokens over HTTP: shown once, acting as their owner within their scope, revoked and
//! expired tokens refused, audited, and walled off per organisation.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

async fn token(app: &TestApp, session: &Session, body: Value) -> (String, String) {
    let res = app
        .post("/api/v1/api-tokens", Some(&session.token), body)
        .await;
    let created = res.assert_ok(201);
    (
        created["token"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_token_acts_as_its_owner_within_its_scope() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "owner@acme.test").await;
    let project = app.project(&owner.token, "OPS").await;

    let res = app
        .post(
            "/api/v1/api-tokens",
            Some(&owner.token),
            json!({"name": "CI pipeline", "scopes": ["read"]}),
        )
        .await;
    let created = res.assert_ok(201).clone();
    let reader = created["token"].as_str().unwrap().to_owned();
    assert!(reader.starts_with("dkt_"), "{reader}");
    assert_eq!(created["scopes"], json!(["read"]));
    assert_eq!(created["user_id"], owner.user_id.as_str());
    assert_eq!(created["last_used_at"], Value::Null);
    let prefix = created["prefix"].as_str().unwrap();
    assert!(
        reader.contains(prefix.trim_start_matches("dkt_…")),
        "{prefix}"
    );

    // Reads work; any change is 403, even one the owner's role allows.
    let tickets = app.get("/api/v1/tickets", &reader).await;
    tickets.assert_ok(200);
    let ticket = json!({"project_id": project, "title": "From CI"});
    app.post("/api/v1/tickets", Some(&reader), ticket.clone())
        .await
        .assert_problem(403, "insufficient_scope");
    app.get("/api/v1/audit-log", &reader)
        .await
        .assert_problem(403, "insufficient_scope");

    // A write token writes, as its owner, but does not administer.
    let (writer, _) = token(&app, &owner, json!({"name": "bot"})).await;
    let made = app
        .post("/api/v1/tickets", Some(&writer), ticket.clone())
        .await;
    let made = made.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let history = app
        .get(&format!("/api/v1/tickets/{made}/timeline"), &owner.token)
        .await;
    assert_eq!(
        history.assert_ok(200)["items"][0]["actor_id"],
        owner.user_id.as_str()
    );
    app.get("/api/v1/audit-log", &writer)
        .await
        .assert_problem(403, "insufficient_scope");
    app.patch("/api/v1/org", &writer, json!({"name": "Renamed"}))
        .await
        .assert_problem(403, "insufficient_scope");
    let (admin, _) = token(&app, &owner, json!({"name": "ops", "scopes": ["admin"]})).await;
    app.get("/api/v1/audit-log", &admin).await.assert_ok(200);

    // The scope caps the role, and the role still bounds the scope.
    let viewer = app.member(&owner, "viewer@acme.test", "viewer").await;
    let (viewer_admin, _) =
        token(&app, &viewer, json!({"name": "mine", "scopes": ["admin"]})).await;
    app.get("/api/v1/audit-log", &viewer_admin)
        .await
        .assert_problem(403, "forbidden");
    app.post("/api/v1/tickets", Some(&viewer_admin), ticket)
        .await
        .assert_problem(403, "forbidden");

    // A token cannot mint tokens.
    app.post("/api/v1/api-tokens", Some(&admin), json!({"name": "child"}))
        .await
        .assert_problem(403, "api_token_not_allowed");

    // Its use shows in the list; the token itself never does.
    let listed = app.get("/api/v1/api-tokens", &owner.token).await;
    let items = listed.assert_ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(
        items.len(),
        4,
        "an admin sees the organisation's tokens, the viewer's too"
    );
    assert!(items.iter().all(|t| t.get("token").is_none()));
    let used = items.iter().find(|t| t["id"] == created["id"]).unwrap();
    assert!(used["last_used_at"].is_string(), "{used}");
    let mine = app.get("/api/v1/api-tokens", &viewer.token).await;
    assert_eq!(mine.assert_ok(200)["items"].as_array().unwrap().len(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn revoked_expired_and_orphaned_tokens_are_refused() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "owner@acme.test").await;
    let agent = app.member(&owner, "agent@acme.test", "agent").await;
    let (kept, kept_id) = token(&app, &owner, json!({"name": "kept"})).await;
    let (gone, gone_id) = token(&app, &owner, json!({"name": "gone"})).await;
    let (agents, _) = token(&app, &agent, json!({"name": "agent's"})).await;

    // Revoked: 401 at once. Someone else's token cannot be revoked by a non-admin.
    app.delete(&format!("/api/v1/api-tokens/{gone_id}"), &owner.token)
        .await
        .assert_ok(204);
    app.get("/api/v1/tickets", &gone)
        .await
        .assert_problem(401, "invalid_token");
    app.delete(&format!("/api/v1/api-tokens/{kept_id}"), &agent.token)
        .await
        .assert_problem(404, "api_token_not_found");
    app.get("/api/v1/tickets", &kept).await.assert_ok(200);

    // Expired: 401.
    let (soon, _) = token(
        &app,
        &owner,
        json!({"name": "soon",
        "expires_at": (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339()}),
    )
    .await;
    app.get("/api/v1/tickets", &soon).await.assert_ok(200);
    app.sql("UPDATE api_tokens SET expires_at = '2001-01-01T00:00:00Z' WHERE name = 'soon'")
        .await;
    app.get("/api/v1/tickets", &soon)
        .await
        .assert_problem(401, "invalid_token");

    // A deactivated owner's tokens stop working.
    app.get("/api/v1/tickets", &agents).await.assert_ok(200);
    app.patch(
        &format!("/api/v1/users/{}", agent.user_id),
        &owner.token,
        json!({"active": false}),
    )
    .await
    .assert_ok(200);
    app.get("/api/v1/tickets", &agents)
        .await
        .assert_problem(401, "invalid_token");

    // Garbage and tampered tokens are 401, never 500.
    let tampered = format!("{}x", &kept[..kept.len() - 1]);
    for bad in [
        "dkt_",
        "dkt_nothing",
        tampered.as_str(),
        &kept.replace("dkt_", "dkt_0"),
    ] {
        app.get("/api/v1/tickets", bad)
            .await
            .assert_problem(401, "invalid_token");
    }

    // Bad requests: precise 422s.
    let res = app
        .post(
            "/api/v1/api-tokens",
            Some(&owner.token),
            json!({"name": " ", "scopes": [], "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    let fields = pluck(&res.body["errors"], "field");
    assert_eq!(fields, ["name", "scopes", "expires_at"]);
    app.post(
        "/api/v1/api-tokens",
        Some(&owner.token),
        json!({"name": "x", "scopes": ["root"]}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // Creation and revocation are in the audit log.
    let audit = app.get("/api/v1/audit-log", &owner.token).await;
    let actions = pluck(&audit.assert_ok(200)["items"], "action");
    assert!(
        actions.contains(&"api_token.created".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"api_token.revoked".to_owned()),
        "{actions:?}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_token_opens_only_its_own_organisation() {
    let app = spawn_app().await;
    let a = app.signup("alpha", "owner@alpha.test").await;
    let b = app.signup("beta", "owner@beta.test").await;
    let a_project = app.project(&a.token, "ALPHA").await;
    let (b_token, _) = token(&app, &b, json!({"name": "b", "scopes": ["admin"]})).await;
    let (_, a_id) = token(&app, &a, json!({"name": "a"})).await;
    app.get(&format!("/api/v1/projects/{a_project}"), &b_token)
        .await
        .assert_problem(404, "project_not_found");
    app.delete(&format!("/api/v1/api-tokens/{a_id}"), &b.token)
        .await
        .assert_problem(404, "api_token_not_found");
    let b_list = app.get("/api/v1/api-tokens", &b.token).await;
    assert_eq!(pluck(&b_list.assert_ok(200)["items"], "name"), ["b"]);
    // A token relabelled with the other organisation's id is simply unknown.
    let relabelled = b_token.replace(&b.org_id.replace('-', ""), &a.org_id.replace('-', ""));
    let res = app
        .send(app.request(Method::GET, "/api/v1/tickets", Some(&relabelled)))
        .await;
    res.assert_problem(401, "invalid_token");
    app.shutdown().await;
}
