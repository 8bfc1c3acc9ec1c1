//! Deleting an organisation: closed at once (sessions, API tokens, mail, sign-in), restorable
//! by its owners within the grace period, and then purged so that no table of either backend
//! keeps a row with its id (found by walking the schema) and no file of it is left.

use reqwest::Method;
use serde_json::json;

use crate::{helpers::*, isolation::tenant};

async fn delete_org(app: &TestApp, token: &str, password: &str) -> Resp {
    app.call(
        Method::DELETE,
        "/api/v1/org",
        Some(token),
        Some(json!({"password": password})),
    )
    .await
}

async fn sign_in(app: &TestApp, email: &str) -> Resp {
    app.login(email, PASSWORD, None).await
}

async fn purge_due(app: &TestApp, days_from_now: i64) -> usize {
    let now = chrono::Utc::now() + chrono::Duration::days(days_from_now);
    docket::lifecycle::purge_due(app.running().db(), app.running().files(), now)
        .await
        .expect("purge ran")
        .len()
}

#[tokio::test]
async fn a_deleted_organization_is_closed_at_once_and_its_owner_may_restore_it() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "a@example.com", "agent").await;
    let project = app.project(&owner.token, "OPS").await;
    app.ticket(&owner.token, &project, json!({})).await;
    let token = app
        .post(
            "/api/v1/api-tokens",
            Some(&owner.token),
            json!({"name": "ci", "scopes": ["admin"]}),
        )
        .await;
    let api_token = token.assert_ok(201)["token"].as_str().unwrap().to_owned();
    let inbound = crate::mail::inbound_path(&app, &owner).await;

    // Only the owner, in a session, with the right password.
    delete_org(&app, &agent.token, PASSWORD)
        .await
        .assert_problem(403, "forbidden");
    delete_org(&app, &api_token, PASSWORD)
        .await
        .assert_problem(403, "api_token_not_allowed");
    let wrong = delete_org(&app, &owner.token, "not the password").await;
    wrong.assert_problem(422, "validation_failed");
    assert_eq!(wrong.body["errors"][0]["field"], "password");
    app.call(
        Method::DELETE,
        "/api/v1/org",
        Some(&owner.token),
        Some(json!({})),
    )
    .await
    .assert_problem(422, "validation_failed");

    let res = delete_org(&app, &owner.token, PASSWORD).await;
    let purge_at = res.assert_ok(202)["purge_at"].as_str().unwrap().to_owned();
    let purge_at = chrono::DateTime::parse_from_rfc3339(&purge_at).unwrap();
    let in_14_days = chrono::Utc::now() + chrono::Duration::days(14);
    assert!(
        (purge_at.to_utc() - in_14_days).num_seconds().abs() < 60,
        "{purge_at}"
    );

    // Closed: every session and token stops, nobody but owners signs in, mail is refused.
    app.get("/api/v1/tickets", &owner.token)
        .await
        .assert_problem(401, "invalid_token");
    app.get("/api/v1/tickets", &agent.token)
        .await
        .assert_problem(401, "invalid_token");
    app.get("/api/v1/tickets", &api_token)
        .await
        .assert_problem(403, "organization_deleted");
    sign_in(&app, "a@example.com")
        .await
        .assert_problem(403, "forbidden");
    let raw = "From: c@example.net\r\nTo: help@acme.test\r\nSubject: Hi\r\nMessage-ID: <1@x>\r\n\r\nHello\r\n";
    let refused = crate::mail::post_mail(&app, &inbound, raw).await;
    refused.assert_problem(403, "organization_deleted");
    assert_eq!(
        app.count("SELECT count(*) FROM mails WHERE kind = 'organization_deletion'")
            .await,
        1,
        "the owner is mailed"
    );

    // The owner signs in to a closed organisation: it shows when it goes, and may only be
    // restored.
    let closed = Session::from_auth(sign_in(&app, "o@example.com").await.assert_ok(200));
    let org = app.get("/api/v1/org", &closed.token).await;
    assert!(org.assert_ok(200)["purge_at"].is_string());
    app.get("/api/v1/tickets", &closed.token)
        .await
        .assert_problem(403, "organization_deleted");
    app.patch("/api/v1/org", &closed.token, json!({"name": "Back"}))
        .await
        .assert_problem(403, "organization_deleted");
    delete_org(&app, &closed.token, PASSWORD)
        .await
        .assert_problem(403, "organization_deleted");

    let restored = app
        .post("/api/v1/org/restore", Some(&closed.token), json!({}))
        .await;
    assert!(restored.assert_ok(200)["purge_at"].is_null());
    // The session begun while closed opens up at its next refresh.
    let refreshed = app.fresh_token(&closed).await;
    app.get("/api/v1/tickets", &refreshed).await.assert_ok(200);
    let owner = Session::from_auth(sign_in(&app, "o@example.com").await.assert_ok(200));
    app.get("/api/v1/tickets", &owner.token)
        .await
        .assert_ok(200);
    app.post("/api/v1/org/restore", Some(&owner.token), json!({}))
        .await
        .assert_problem(409, "organization_not_deleted");
    sign_in(&app, "a@example.com").await.assert_ok(200);
    let log = app
        .all_items("/api/v1/audit-log?action=organization.", &owner.token)
        .await;
    let actions = pluck(&serde_json::Value::Array(log), "action");
    assert!(
        actions.contains(&"organization.deleted".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"organization.restored".to_owned()),
        "{actions:?}"
    );
    let verified = app.get("/api/v1/audit-log/verify", &owner.token).await;
    assert_eq!(verified.assert_ok(200)["ok"], true);

    // A restored organisation is not purged when its old date comes.
    assert_eq!(purge_due(&app, 15).await, 0);
    app.get("/api/v1/org", &owner.token).await.assert_ok(200);
    app.shutdown().await;
}

#[tokio::test]
async fn a_purge_leaves_no_row_and_no_file_of_the_organization() {
    let app = spawn_app().await;
    let alpha = tenant(&app, "alpha").await;
    let beta = tenant(&app, "beta").await;
    let files_of_alpha = app
        .store
        .data_dir
        .join("attachments")
        .join(&alpha.owner.org_id);
    assert!(files_of_alpha.exists());
    assert!(
        !rows_naming(&app, &alpha.owner.org_id, &["org_purge_receipts"])
            .await
            .is_empty()
    );
    let beta_tickets = app
        .all_items("/api/v1/tickets", &beta.owner.token)
        .await
        .len();

    delete_org(&app, &alpha.owner.token, PASSWORD)
        .await
        .assert_ok(202);
    // Within the grace period nothing goes.
    assert_eq!(purge_due(&app, 13).await, 0);
    assert!(files_of_alpha.exists());
    assert_eq!(purge_due(&app, 15).await, 1);

    let left = rows_naming(&app, &alpha.owner.org_id, &["org_purge_receipts"]).await;
    assert!(left.is_empty(), "rows left: {left:?}");
    let files_left = std::fs::read_dir(&files_of_alpha).map_or(0, |d| d.count());
    assert_eq!(files_left, 0, "files left");
    for email in ["owner@alpha.example.com", "agent@alpha.example.com"] {
        let n = app
            .count(&format!(
                "SELECT count(*) FROM users WHERE email = '{email}'"
            ))
            .await;
        assert_eq!(n, 0, "{email}'s account belonged nowhere else");
    }
    let receipt: String = app.scalar("SELECT slug FROM org_purge_receipts").await;
    assert_eq!(receipt, "alpha");
    sign_in(&app, "owner@alpha.example.com")
        .await
        .assert_problem(401, "invalid_credentials");

    // The other tenant is whole.
    let tickets = app.all_items("/api/v1/tickets", &beta.owner.token).await;
    assert_eq!(tickets.len(), beta_tickets);
    let attachment = format!("/api/v1/attachments/{}", beta.attachment);
    app.get(&attachment, &beta.owner.token).await.assert_ok(200);
    let verified = app.get("/api/v1/audit-log/verify", &beta.owner.token).await;
    assert_eq!(verified.assert_ok(200)["ok"], true);
    assert!(!rows_naming(&app, &beta.owner.org_id, &[]).await.is_empty());
    app.shutdown().await;
}

/// With no grace period the organisation is purged as soon as it is deleted.
#[tokio::test]
async fn no_grace_period_purges_at_once() {
    let app = spawn_app_tuned(None, |_, serve| {
        serve.data_rights.org_deletion_grace_days = 0;
    })
    .await;
    let owner = app.signup("acme", "o@example.com").await;
    app.project(&owner.token, "OPS").await;
    delete_org(&app, &owner.token, PASSWORD)
        .await
        .assert_ok(202);
    app.wait_count(
        "SELECT count(*) FROM org_purge_receipts WHERE slug = 'acme'",
        1,
        10,
    )
    .await;
    assert!(
        rows_naming(&app, &owner.org_id, &["org_purge_receipts"])
            .await
            .is_empty()
    );
    app.shutdown().await;
}
