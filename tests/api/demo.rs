//! `docket admin seed-demo`, run as the real command on the test database: the dataset reads
//! back through the API like data made through it (counts, timelines that replay to the ticket,
//! comments, numbering that continues), and a second load is refused without adding anything.

use std::process::{Command, Output};

use docket::work::tickets::REPLAYED_FIELDS;
use serde_json::{Map, Value, json};

use crate::helpers::*;

fn seed_demo(app: &TestApp, dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_docket"))
        .args([
            "admin",
            "seed-demo",
            "--organizations",
            "3",
            "--tickets",
            "600",
        ])
        .arg("--manifest")
        .arg(dir.join("manifest.json"))
        .env("DATABASE_URL", &app.database_url)
        .env("DOCKET_DATA_DIR", dir)
        .env("DOCKET_LOG_LEVEL", "warn")
        .output()
        .expect("docket runs")
}

/// Every item of a paged list.
async fn all(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut url = format!("{path}{sep}limit=200");
    loop {
        let page = app.get(&url, token).await.assert_ok(200).clone();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("{path}{sep}limit=200&cursor={c}"),
            None => return items,
        }
    }
}

#[tokio::test]
async fn the_demo_dataset_reads_back_like_data_made_through_the_api() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let out = seed_demo(&app, dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["tickets"], 600);
    let orgs = manifest["organizations"].as_array().unwrap();
    assert_eq!(orgs.len(), 3);
    // Zipf-like: 1/1 : 1/2 : 1/3 of 600.
    let sizes: Vec<u64> = orgs
        .iter()
        .map(|o| o["tickets"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, vec![328, 163, 109]);

    let mut comments_seen = 0;
    for org in orgs {
        let agent = org["people"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["role"] == "agent")
            .unwrap();
        let login = app
            .login(
                agent["email"].as_str().unwrap(),
                "docket-demo-password",
                org["slug"].as_str(),
            )
            .await;
        let token = login.assert_ok(200)["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let tickets = all(&app, &token, "/api/v1/tickets").await;
        assert_eq!(tickets.len() as u64, org["tickets"].as_u64().unwrap());

        // One ticket of each status: its timeline replays to it, its comments are all there.
        for status in [
            "open",
            "in_progress",
            "pending",
            "resolved",
            "closed",
            "cancelled",
        ] {
            let Some(t) = tickets.iter().find(|t| t["status"] == status) else {
                continue;
            };
            let id = t["id"].as_str().unwrap();
            let timeline = all(&app, &token, &format!("/api/v1/tickets/{id}/timeline")).await;
            let mut state: Map<String, Value> = Map::new();
            let mut version = 0;
            for e in timeline
                .iter()
                .filter(|e| e["kind"].as_str().unwrap().starts_with("ticket."))
            {
                for (field, change) in e["changes"].as_object().unwrap() {
                    state.insert(field.clone(), change["to"].clone());
                }
                version = e["version"].as_i64().unwrap();
            }
            for field in REPLAYED_FIELDS {
                let replayed = state.get(field).cloned().unwrap_or(Value::Null);
                assert_eq!(replayed, t[field], "{status} ticket {id}: {field}");
            }
            assert_eq!(
                version,
                t["version"].as_i64().unwrap(),
                "{status} ticket {id}"
            );
            let comments = all(&app, &token, &format!("/api/v1/tickets/{id}/comments")).await;
            let recorded = timeline
                .iter()
                .filter(|e| e["kind"] == "comment.created")
                .count();
            assert_eq!(comments.len(), recorded, "{status} ticket {id}");
            comments_seen += comments.len();
        }

        // Numbering continues after the imported tickets.
        let project = &org["projects"][0];
        let highest = tickets
            .iter()
            .filter(|t| t["project_id"] == project["id"])
            .map(|t| t["number"].as_i64().unwrap())
            .max()
            .unwrap();
        let filed = app
            .ticket(&token, project["id"].as_str().unwrap(), json!({}))
            .await;
        assert_eq!(filed["number"].as_i64().unwrap(), highest + 1);
    }
    assert!(comments_seen > 0, "the sampled tickets have comments");

    // A second load is refused and adds nothing.
    let again = seed_demo(&app, dir.path());
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("slug is already taken"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(app.count("SELECT count(*) FROM tickets").await, 600 + 3);
}
