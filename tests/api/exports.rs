//! Data exports: an organisation's holds everything it owns and no secret and nothing of
//! another tenant; a person's holds only what they may see; both are zips whose manifest's
//! checksums match their entries, built by the worker, announced by mail, downloadable by
//! whoever asked only.

use std::io::Read;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{helpers::*, isolation::tenant};

async fn build_exports(app: &TestApp) -> usize {
    docket::exports::run_pending(app.running().db(), app.running().files())
        .await
        .expect("exports built")
}

async fn zip_of(app: &TestApp, token: &str, id: &str) -> zip::ZipArchive<std::io::Cursor<Vec<u8>>> {
    let res = app
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/exports/{id}/download"),
            Some(token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let bytes = res.bytes().await.unwrap().to_vec();
    zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip")
}

fn entry(zip: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    zip.by_name(name)
        .unwrap_or_else(|_| panic!("{name} in the export"))
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every entry as text, to look for what must not be there.
fn whole_text(zip: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>) -> String {
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    names
        .iter()
        .map(|n| String::from_utf8_lossy(&entry(zip, n)).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn an_organization_export_holds_everything_it_owns_and_no_secret() {
    let app = spawn_app().await;
    let alpha = tenant(&app, "alpha").await;
    let beta = tenant(&app, "beta").await;
    // The fixture asked for one already: built here.
    assert_eq!(build_exports(&app).await, 2);
    let res = app
        .get(
            &format!("/api/v1/exports/{}", alpha.export),
            &alpha.owner.token,
        )
        .await;
    let export = res.assert_ok(200);
    assert_eq!(export["status"], "ready", "{export}");
    assert!(export["expires_at"].is_string());
    let mut zip = zip_of(&app, &alpha.owner.token, &alpha.export).await;

    // The manifest sums up every entry, and its checksums hold.
    let manifest: Value = serde_json::from_slice(&entry(&mut zip, "manifest.json")).unwrap();
    assert_eq!(manifest["format"], "docket-export");
    assert_eq!(manifest["scope"], "organization");
    assert_eq!(manifest["organization"]["slug"], "alpha");
    for file in manifest["files"].as_array().unwrap() {
        let name = file["name"].as_str().unwrap();
        let bytes = entry(&mut zip, name);
        assert_eq!(file["bytes"], json!(bytes.len()), "{name}");
        assert_eq!(
            file["sha256"],
            json!(hex::encode(Sha256::digest(&bytes))),
            "{name}"
        );
        if let Some(records) = file["records"].as_u64() {
            assert_eq!(lines(&bytes).len() as u64, records, "{name}");
        }
    }
    let tickets = lines(&entry(&mut zip, "tickets.jsonl"));
    assert_eq!(tickets.len(), 2, "the ticket and its subtask");
    assert!(tickets.iter().any(|t| t["title"] == "secret of alpha"));
    let comments = lines(&entry(&mut zip, "comments.jsonl"));
    assert!(comments.iter().any(|c| c["body"] == "whisper of alpha"));
    let people = lines(&entry(&mut zip, "people.jsonl"));
    assert!(
        people
            .iter()
            .any(|p| p["email"] == "agent@alpha.example.com")
    );
    let file = format!("files/{}-alpha.txt", alpha.attachment);
    assert_eq!(entry(&mut zip, &file), b"file of alpha");
    for name in [
        "webhooks.jsonl",
        "api_tokens.jsonl",
        "audit_log.jsonl",
        "sla_policies.jsonl",
    ] {
        assert!(!lines(&entry(&mut zip, name)).is_empty(), "{name}");
    }

    // No secret, and nothing of the other tenant.
    let text = whole_text(&mut zip);
    let token_hash: String = app
        .scalar("SELECT token_hash FROM api_tokens LIMIT 1")
        .await;
    let password_hash: String = app.scalar("SELECT password_hash FROM users LIMIT 1").await;
    let webhook_secret: String = app.scalar("SELECT secret FROM webhooks LIMIT 1").await;
    for secret in [&token_hash, &password_hash, &webhook_secret] {
        assert!(!text.contains(secret.as_str()), "a secret was exported");
    }
    for name in [
        "refresh_tokens.jsonl",
        "idempotency_keys.jsonl",
        "outbox_events.jsonl",
    ] {
        assert!(zip.by_name(name).is_err(), "{name} is machinery");
    }
    assert!(!text.contains("beta"), "another tenant's data");
    assert!(!text.contains(&beta.owner.org_id));

    // Announced by mail; downloadable by whoever asked only.
    assert_eq!(
        app.count("SELECT count(*) FROM mails WHERE kind = 'export_ready'")
            .await,
        2
    );
    let admin = app
        .member(&alpha.owner, "admin@alpha.example.com", "admin")
        .await;
    app.get(&format!("/api/v1/exports/{}", alpha.export), &admin.token)
        .await
        .assert_problem(404, "export_not_found");
    app.get(
        &format!("/api/v1/exports/{}/download", alpha.export),
        &admin.token,
    )
    .await
    .assert_problem(404, "export_not_found");
    let listed = app.get("/api/v1/exports", &alpha.owner.token).await;
    assert_eq!(listed.assert_ok(200).as_array().unwrap().len(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_requesters_export_holds_only_what_they_may_see() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let project = app.project(&owner.token, "OPS").await;
    let customer = app.member(&owner, "c@example.com", "requester").await;
    let theirs = app
        .ticket(
            &owner.token,
            &project,
            json!({"title": "my printer", "requester_id": customer.user_id}),
        )
        .await;
    app.ticket(&owner.token, &project, json!({"title": "someone else's"}))
        .await;
    let comments = format!(
        "/api/v1/tickets/{}/comments",
        theirs["id"].as_str().unwrap()
    );
    for (body, internal) in [("we are on it", false), ("staff only note", true)] {
        app.post(
            &comments,
            Some(&owner.token),
            json!({"body": body, "internal": internal}),
        )
        .await
        .assert_ok(201);
    }

    // Agents may not export the organisation; anyone may export themselves, once at a time.
    app.post(
        "/api/v1/exports",
        Some(&customer.token),
        json!({"scope": "organization"}),
    )
    .await
    .assert_problem(403, "forbidden");
    let res = app
        .post(
            "/api/v1/exports",
            Some(&customer.token),
            json!({"scope": "me"}),
        )
        .await;
    let id = res.assert_ok(202)["id"].as_str().unwrap().to_owned();
    assert_eq!(res.body["status"], "pending");
    app.post(
        "/api/v1/exports",
        Some(&customer.token),
        json!({"scope": "me"}),
    )
    .await
    .assert_problem(409, "export_in_progress");
    app.get(&format!("/api/v1/exports/{id}/download"), &customer.token)
        .await
        .assert_problem(409, "export_not_ready");
    for bad in [
        json!({"scope": "everything"}),
        json!({}),
        json!({"scope": "me", "x": 1}),
    ] {
        let res = app
            .post("/api/v1/exports", Some(&customer.token), bad)
            .await;
        assert_eq!(res.status, 422, "{}", res.body);
    }

    assert_eq!(build_exports(&app).await, 1);
    let mut zip = zip_of(&app, &customer.token, &id).await;
    let profile: Value = serde_json::from_slice(&entry(&mut zip, "profile.json")).unwrap();
    assert_eq!(profile["user"]["email"], "c@example.com");
    let tickets = lines(&entry(&mut zip, "tickets.jsonl"));
    assert_eq!(pluck(&Value::Array(tickets), "title"), ["my printer"]);
    let text = whole_text(&mut zip);
    assert!(text.contains("we are on it"));
    assert!(!text.contains("staff only note"), "an internal note");
    assert!(!text.contains("someone else's"), "another person's ticket");
    let manifest: Value = serde_json::from_slice(&entry(&mut zip, "manifest.json")).unwrap();
    assert_eq!(manifest["scope"], "me");
    app.shutdown().await;
}

/// An export left `running` by a worker that stopped does not hold its person back for good:
/// after a while it is failed (by the worker's round, or when they ask again) and a new one
/// may be asked for.
#[tokio::test]
async fn an_interrupted_export_is_failed_and_may_be_asked_again() {
    let app = spawn_app().await;
    let alpha = tenant(&app, "alpha").await;
    // The owner's export, asked for by `tenant`, is built; the agent asks for theirs.
    build_exports(&app).await;
    let token = &alpha.agent.token;
    let ask = || app.post("/api/v1/exports", Some(token), json!({"scope": "me"}));
    let first = ask().await.assert_ok(202)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A worker took it and stopped (killed) an hour ago: still counted as being built.
    let an_hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    app.sql(&format!(
        "UPDATE exports SET status = 'running', claimed_at = '{an_hour_ago}' WHERE status = 'pending'"
    ))
    .await;
    ask().await.assert_problem(409, "export_in_progress");
    assert_eq!(
        docket::exports::fail_all_interrupted(app.running().db())
            .await
            .unwrap(),
        0
    );
    // Seven hours on, it is failed, and a new one is taken.
    let long_ago = (chrono::Utc::now() - chrono::Duration::hours(7)).to_rfc3339();
    app.sql(&format!(
        "UPDATE exports SET claimed_at = '{long_ago}' WHERE status = 'running'"
    ))
    .await;
    let second = ask().await.assert_ok(202)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let old = app.get(&format!("/api/v1/exports/{first}"), token).await;
    assert_eq!(old.assert_ok(200)["status"], "failed");
    assert_eq!(build_exports(&app).await, 1);
    let new = app.get(&format!("/api/v1/exports/{second}"), token).await;
    assert_eq!(new.assert_ok(200)["status"], "ready");
    // The worker's round fails one left running as well.
    let third = ask().await.assert_ok(202)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.sql(&format!(
        "UPDATE exports SET status = 'running', claimed_at = '{long_ago}' WHERE status = 'pending'"
    ))
    .await;
    assert_eq!(
        docket::exports::fail_all_interrupted(app.running().db())
            .await
            .unwrap(),
        1
    );
    let third = app.get(&format!("/api/v1/exports/{third}"), token).await;
    assert_eq!(third.assert_ok(200)["status"], "failed");
    app.shutdown().await;
}
