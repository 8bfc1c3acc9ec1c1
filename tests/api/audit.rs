//! The audit log as a hash chain: entries link to each other, filters and downloads, and a
//! changed, removed or truncated entry is found by `GET /audit-log/verify` and by
//! `docket admin audit-verify`.

use serde_json::{Value, json};

use crate::helpers::*;

async fn audited_org(app: &TestApp) -> Session {
    let owner = app.signup("acme", "o@example.com").await;
    app.member(&owner, "a@example.com", "agent").await;
    for name in ["Acme One", "Acme Two", "Acme Three"] {
        app.patch("/api/v1/org", &owner.token, json!({"name": name}))
            .await
            .assert_ok(200);
    }
    owner
}

fn verify_cli(app: &TestApp, slug: &str) -> (bool, Value) {
    let out = run_docket(
        &["admin", "audit-verify", "--org", slug],
        &app.database_url,
        &app.store.data_dir,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let found = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), found)
}

async fn download(app: &TestApp, path: &str, token: &str) -> String {
    let res = app
        .request(reqwest::Method::GET, path, Some(token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// The rights a tamperer with the database has: SQLite's append-only triggers go first.
async fn tamper(app: &TestApp, sql: &str) {
    if backend() == Backend::Sqlite {
        app.sql("DROP TRIGGER IF EXISTS audit_log_append_only_update")
            .await;
        app.sql("DROP TRIGGER IF EXISTS audit_log_append_only_delete")
            .await;
    }
    app.sql(sql).await;
}

#[tokio::test]
async fn entries_form_a_chain_that_verifies() {
    let app = spawn_app().await;
    let owner = audited_org(&app).await;
    let mut entries = app
        .all_items("/api/v1/audit-log?limit=2", &owner.token)
        .await;
    assert!(entries.len() >= 5, "{entries:?}");
    entries.reverse();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"], json!(i as i64 + 1), "{e}");
        assert_eq!(e["hash"].as_str().unwrap().len(), 64);
        let prev = if i == 0 {
            Value::Null
        } else {
            entries[i - 1]["hash"].clone()
        };
        assert_eq!(e["prev_hash"], prev, "{e}");
    }
    let found = app.get("/api/v1/audit-log/verify", &owner.token).await;
    let found = found.assert_ok(200);
    assert_eq!(found["ok"], true, "{found}");
    assert_eq!(found["entries"], json!(entries.len()));
    let (ok, cli) = verify_cli(&app, "acme");
    assert!(ok, "{cli}");
    assert_eq!(cli["entries"], json!(entries.len()));

    // Agents may not read or verify it.
    let agent = app.login("a@example.com", PASSWORD, None).await;
    let agent = Session::from_auth(agent.assert_ok(200));
    app.get("/api/v1/audit-log/verify", &agent.token)
        .await
        .assert_problem(403, "forbidden");
    app.get("/api/v1/audit-log/download", &agent.token)
        .await
        .assert_problem(403, "forbidden");
    app.shutdown().await;
}

#[tokio::test]
async fn a_changed_entry_is_named_by_both_checks() {
    let app = spawn_app().await;
    let owner = audited_org(&app).await;
    let entries = app.all_items("/api/v1/audit-log", &owner.token).await;
    let victim = entries
        .iter()
        .find(|e| e["action"] == "organization.updated")
        .expect("a rename is audited");
    let id = victim["id"].as_str().unwrap();
    let id_sql = uuid_literal(id);
    tamper(
        &app,
        &format!("UPDATE audit_log SET action = 'organization.viewed' WHERE id = {id_sql}"),
    )
    .await;
    let found = app.get("/api/v1/audit-log/verify", &owner.token).await;
    let found = found.assert_ok(200);
    assert_eq!(found["ok"], false, "{found}");
    assert_eq!(found["first_bad_id"], json!(id), "{found}");
    let (ok, cli) = verify_cli(&app, "acme");
    assert!(!ok);
    assert_eq!(cli["first_bad_id"], json!(id), "{cli}");
    app.shutdown().await;
}

#[tokio::test]
async fn changed_details_and_removed_entries_break_the_chain() {
    let app = spawn_app().await;
    let owner = audited_org(&app).await;
    let total = app.all_items("/api/v1/audit-log", &owner.token).await.len() as i64;
    // The details are what the application may pseudonymise: unmarked, a change shows.
    tamper(
        &app,
        &format!("UPDATE audit_log SET details = '{{\"before\":\"x\"}}' WHERE seq = {total} - 1"),
    )
    .await;
    let found = app.get("/api/v1/audit-log/verify", &owner.token).await;
    assert_eq!(found.assert_ok(200)["problem"], "the details were changed");

    // Removing the newest entries leaves a chain whose head names what is gone.
    let other = app.signup("other", "p@example.com").await;
    app.patch("/api/v1/org", &other.token, json!({"name": "Other 2"}))
        .await
        .assert_ok(200);
    let newest = app.all_items("/api/v1/audit-log", &other.token).await.len();
    tamper(
        &app,
        &format!("DELETE FROM audit_log WHERE seq = {newest} AND action = 'organization.updated'"),
    )
    .await;
    let found = app.get("/api/v1/audit-log/verify", &other.token).await;
    let found = found.assert_ok(200);
    assert_eq!(found["ok"], false, "{found}");
    assert!(
        found["problem"].as_str().unwrap().contains("removed"),
        "{found}"
    );
    app.shutdown().await;
}

/// Audited changes of one organisation made at once still chain one after the other.
#[tokio::test]
async fn parallel_changes_keep_one_chain() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let renames = (0..12).map(|i| {
        let (app, token) = (&app, owner.token.clone());
        async move {
            app.patch("/api/v1/org", &token, json!({"name": format!("Acme {i}")}))
                .await
                .assert_ok(200);
        }
    });
    futures_util::future::join_all(renames).await;
    let found = app.get("/api/v1/audit-log/verify", &owner.token).await;
    let found = found.assert_ok(200);
    assert_eq!(found["ok"], true, "{found}");
    assert!(found["entries"].as_i64().unwrap() >= 13, "{found}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_log_filters_and_downloads() {
    let app = spawn_app().await;
    let owner = audited_org(&app).await;
    let all = app.all_items("/api/v1/audit-log", &owner.token).await;
    let renames = app
        .all_items(
            "/api/v1/audit-log?action=organization.updated",
            &owner.token,
        )
        .await;
    assert_eq!(renames.len(), 3);
    let by_prefix = app
        .all_items("/api/v1/audit-log?action=organization.", &owner.token)
        .await;
    assert!(by_prefix.len() >= 3);
    let mine = app
        .all_items(
            &format!("/api/v1/audit-log?actor_id={}", owner.user_id),
            &owner.token,
        )
        .await;
    assert!(mine.iter().all(|e| e["actor_id"] == json!(owner.user_id)));
    let request = all[0]["request_id"].as_str().unwrap();
    let one = app
        .all_items(
            &format!("/api/v1/audit-log?request_id={request}"),
            &owner.token,
        )
        .await;
    assert_eq!(one.len(), 1);
    let future = app
        .all_items("/api/v1/audit-log?since=2999-01-01T00:00:00Z", &owner.token)
        .await;
    assert!(future.is_empty());
    for bad in [
        "actor_id=nope",
        "since=yesterday",
        "since=2030-01-01T00:00:00Z&until=2020-01-01T00:00:00Z",
        "action=",
    ] {
        let res = app
            .get(&format!("/api/v1/audit-log?{bad}"), &owner.token)
            .await;
        assert!(
            [400, 422].contains(&res.status.as_u16()),
            "{bad}: {} {}",
            res.status,
            res.body
        );
    }

    let text = download(&app, "/api/v1/audit-log/download", &owner.token).await;
    assert!(text.starts_with("id,created_at,actor_id,action"), "{text}");
    assert_eq!(text.lines().count(), all.len() + 1);
    let jsonl = download(
        &app,
        "/api/v1/audit-log/download?format=jsonl&action=organization.updated",
        &owner.token,
    )
    .await;
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|l| l["action"] == "organization.updated" && l["hash"].is_string())
    );
    app.get("/api/v1/audit-log/download?format=xml", &owner.token)
        .await
        .assert_problem(400, "invalid_query");
    app.shutdown().await;
}
