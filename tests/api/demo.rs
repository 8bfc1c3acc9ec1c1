//! `docket admin seed-demo`, run as the real command on the test database: the dataset reads
//! back through the API like data made through it (counts, timelines that replay to the ticket,
//! comments, numbering that continues), and a second load is refused without adding anything.

use std::process::{Command, Output};

use serde_json::{Value, json};

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
    // The manifest counts what was written.
    for (table, field) in [
        ("comments", "comments"),
        ("ticket_events", "timeline_entries"),
    ] {
        let stored = app.count(&format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(stored, manifest[field].as_i64().unwrap(), "{table}");
    }

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
        let tickets = app.all_items("/api/v1/tickets?limit=200", &token).await;
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
            let timeline = app
                .all_items(&format!("/api/v1/tickets/{id}/timeline?limit=200"), &token)
                .await;
            assert_replays_to(
                &timeline,
                t,
                &format!("the timeline of {status} ticket {id}"),
            );
            let comments = app
                .all_items(&format!("/api/v1/tickets/{id}/comments?limit=200"), &token)
                .await;
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
