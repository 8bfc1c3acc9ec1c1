//! Moving an organisation to another server's database with `docket admin export-org` and
//! `import-org`: SQLite to PostgreSQL (or PostgreSQL to PostgreSQL), ids, numbering, password
//! hashes, files and the audit chain kept; a second import, a tampered file and an address
//! taken by another account are refused; the source is left as it was.

use std::{
    io::{Read, Write},
    path::Path,
};

use docket::config::Secret;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use crate::{helpers::*, isolation::tenant};

/// Where the organisation moves to: PostgreSQL when it is reachable (from SQLite, the road a
/// growing organisation takes; from PostgreSQL, to a server of its own), else another SQLite.
async fn target_url() -> Option<String> {
    let reachable = Database::connect(pg_admin_url()).await.is_ok();
    match (backend(), reachable) {
        (Backend::Postgres, _) | (Backend::Sqlite, true) => Some(fresh_pg_database().await),
        (Backend::Sqlite, false) => None,
    }
}

/// A server on the target database, and that database's URL.
async fn target_app() -> (TestApp, String) {
    let url = target_url().await;
    let given = url.clone();
    let app = spawn_app_tuned(None, move |store, _| {
        if let Some(url) = given {
            store.database_url = Some(Secret::new(url));
        }
    })
    .await;
    let url = url.unwrap_or_else(|| app.database_url.clone());
    (app, url)
}

fn tickets_by_key(items: &[Value]) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = items
        .iter()
        .map(|t| {
            (
                t["key"].as_str().unwrap().to_owned(),
                t["id"].as_str().unwrap().to_owned(),
                t["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn an_organization_moves_to_another_database_whole() {
    let source = spawn_app().await;
    let alpha = tenant(&source, "alpha").await;
    tenant(&source, "beta").await;
    let before = tickets_by_key(
        &source
            .all_items("/api/v1/tickets", &alpha.owner.token)
            .await,
    );
    let audit_before = source
        .get("/api/v1/audit-log/verify", &alpha.owner.token)
        .await;
    let audit_before = audit_before.assert_ok(200)["entries"].clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alpha.docket");

    let out = run_docket(
        &[
            "admin",
            "export-org",
            "--org",
            "alpha",
            "--out",
            file.to_str().unwrap(),
        ],
        &source.database_url,
        &source.store.data_dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["format"], "docket-tenant");
    assert_eq!(manifest["organization"]["slug"], "alpha");

    let (target, target_db) = target_app().await;
    let import = |path: &Path| {
        run_docket(
            &["admin", "import-org", "--in", path.to_str().unwrap()],
            &target_db,
            &target.store.data_dir,
        )
    };
    let out = import(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let imported: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(imported["imported"]["tickets"], 2, "{imported}");
    assert_eq!(imported["imported"]["files"], 1, "{imported}");

    // People sign in as before and find everything where it was.
    let owner = target
        .login("owner@alpha.example.com", PASSWORD, None)
        .await;
    let owner = Session::from_auth(owner.assert_ok(200));
    assert_eq!(owner.org_id, alpha.owner.org_id);
    let after = tickets_by_key(&target.all_items("/api/v1/tickets", &owner.token).await);
    assert_eq!(after, before);
    let ticket = alpha.ticket["id"].as_str().unwrap();
    let comments = target
        .all_items(&format!("/api/v1/tickets/{ticket}/comments"), &owner.token)
        .await;
    assert!(comments.iter().any(|c| c["body"] == "whisper of alpha"));
    let file_bytes = target
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/attachments/{}", alpha.attachment),
            Some(&owner.token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(file_bytes.status(), 200);
    assert_eq!(file_bytes.bytes().await.unwrap().as_ref(), b"file of alpha");
    let verified = target.get("/api/v1/audit-log/verify", &owner.token).await;
    let verified = verified.assert_ok(200);
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["entries"], audit_before);
    let hits = target.get("/api/v1/search?q=secret", &owner.token).await;
    assert!(
        !hits.assert_ok(200)["items"].as_array().unwrap().is_empty(),
        "the index was rebuilt"
    );
    // Numbering goes on where it stood.
    let next = target.ticket(&owner.token, &alpha.project, json!({})).await;
    assert_eq!(next["key"], "ALPHA-3");
    target
        .login("agent@alpha.example.com", PASSWORD, None)
        .await
        .assert_ok(200);
    // Only that organisation came.
    target
        .login("owner@beta.example.com", PASSWORD, None)
        .await
        .assert_problem(401, "invalid_credentials");
    // Queued mail is not sent a second time.
    let queued = count(
        &target_db,
        "SELECT count(*) AS n FROM mails WHERE status IN ('queued', 'sending')",
    )
    .await;
    assert_eq!(queued, 0);

    // A second import, and a tampered file, are refused.
    let again = import(&file);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already here"));
    let tampered = dir.path().join("tampered.docket");
    rewrite(&file, &tampered, "rows/tickets.jsonl", |text| {
        text.replace("secret of alpha", "secret of mallory")
    });
    let (fresh, fresh_db) = target_app().await;
    let out = run_docket(
        &["admin", "import-org", "--in", tampered.to_str().unwrap()],
        &fresh_db,
        &fresh.store.data_dir,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not match its checksum"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = count(&fresh_db, "SELECT count(*) AS n FROM tickets").await;
    assert_eq!(n, 0, "nothing of a refused file is written");

    // The source is as it was.
    let still = tickets_by_key(
        &source
            .all_items("/api/v1/tickets", &alpha.owner.token)
            .await,
    );
    assert_eq!(still, before);

    // With --delete-source, a verified import purges the organisation where it came from.
    let source_dir = source.store.data_dir.to_str().unwrap().to_owned();
    let out = run_docket(
        &[
            "admin",
            "import-org",
            "--in",
            file.to_str().unwrap(),
            "--delete-source",
            "--source-database-url",
            &source.database_url,
            "--source-data-dir",
            &source_dir,
        ],
        &fresh_db,
        &fresh.store.data_dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let moved: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(moved["imported"]["tickets"], 2, "{moved}");
    assert_eq!(moved["source_purged"]["tickets"], 2, "{moved}");
    assert_eq!(moved["source_purged"]["files"], 1, "{moved}");
    let left = rows_naming(&source, &alpha.owner.org_id, &["org_purge_receipts"]).await;
    assert!(left.is_empty(), "rows left at the source: {left:?}");
    source
        .login("owner@alpha.example.com", PASSWORD, None)
        .await
        .assert_problem(401, "invalid_credentials");
    source
        .login("owner@beta.example.com", PASSWORD, None)
        .await
        .assert_ok(200);
    let owner = fresh.login("owner@alpha.example.com", PASSWORD, None).await;
    let owner = Session::from_auth(owner.assert_ok(200));
    assert_eq!(
        tickets_by_key(&fresh.all_items("/api/v1/tickets", &owner.token).await),
        before
    );
    for app in [source, target, fresh] {
        app.shutdown().await;
    }
}

async fn count(url: &str, sql: &str) -> i64 {
    let db = Database::connect(url).await.unwrap();
    db.query_one_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        sql,
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get::<i64>("", "n")
    .unwrap()
}

/// Copies the zip at `from` to `to` with entry `name` changed by `change`.
fn rewrite(from: &Path, to: &Path, name: &str, change: impl Fn(String) -> String) {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut out = zip::ZipWriter::new(std::fs::File::create(to).unwrap());
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let entry_name = entry.name().unwrap().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if entry_name == name {
            bytes = change(String::from_utf8(bytes).unwrap()).into_bytes();
        }
        out.start_file(entry_name, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(&bytes).unwrap();
    }
    out.finish().unwrap();
}
