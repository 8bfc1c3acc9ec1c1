//! Retention: an organisation's admins choose how long closed tickets and the text of inbound
//! mail are kept; the worker's daily round purges the tickets closed long enough ago with every
//! row and file on them (no table keeps a row naming them, on either backend), replaces old
//! mail text with a notice (in search and the timeline too), and says what it did in the audit
//! log. Other organisations, and what is younger, are untouched.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::*,
    isolation::tenant,
    mail::{AUTHENTICATED, acknowledging_helpdesk, message, post_mail},
};

const NOTICE: &str =
    "[The text of this mail was removed under the organisation's retention settings.]";

/// Runs the worker's retention round as if `days` had passed; answers the organisations done.
async fn apply_retention(app: &TestApp, days: i64) -> Vec<docket::lifecycle::retention::Applied> {
    let now = chrono::Utc::now() + chrono::Duration::days(days);
    docket::lifecycle::retention::apply_due(app.running().db(), app.running().files(), now)
        .await
        .expect("retention ran")
}

async fn close(app: &TestApp, token: &str, ticket: &str) {
    let path = format!("/api/v1/tickets/{ticket}");
    let version = app.get(&path, token).await.assert_ok(200)["version"]
        .as_i64()
        .unwrap();
    app.call_if(
        Method::POST,
        &format!("{path}/complete"),
        token,
        version,
        None,
    )
    .await
    .assert_ok(200);
    app.call_if(
        Method::PATCH,
        &path,
        token,
        version + 1,
        Some(json!({"status": "closed"})),
    )
    .await
    .assert_ok(200);
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn admins_set_retention_and_bad_values_are_refused() {
    let app = spawn_app().await;
    let alpha = tenant(&app, "alpha").await;
    let off = app.get("/api/v1/org/retention", &alpha.agent.token).await;
    assert_eq!(
        off.assert_ok(200).clone(),
        json!({"closed_ticket_days": null, "mail_body_days": null})
    );
    let setting = json!({"closed_ticket_days": 365, "mail_body_days": 30});
    app.put("/api/v1/org/retention", &alpha.agent.token, setting.clone())
        .await
        .assert_problem(403, "forbidden");
    for (body, field) in [
        (json!({"closed_ticket_days": 0}), "closed_ticket_days"),
        (json!({"mail_body_days": 3651}), "mail_body_days"),
        (json!({"mail_body_days": -5}), "mail_body_days"),
    ] {
        let res = app
            .put("/api/v1/org/retention", &alpha.owner.token, body)
            .await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["field"], field, "{}", res.body);
    }
    for body in [
        json!({"closed_ticket_days": "a year"}),
        json!({"closed_ticket_days": 1e12}),
        json!({"keep": "forever"}),
        json!([]),
    ] {
        let res = app
            .put("/api/v1/org/retention", &alpha.owner.token, body.clone())
            .await;
        res.assert_problem(422, "validation_failed");
    }
    assert_eq!(
        app.get("/api/v1/org/retention", &alpha.owner.token)
            .await
            .assert_ok(200)["closed_ticket_days"],
        Value::Null,
        "nothing refused was kept"
    );
    let res = app
        .put("/api/v1/org/retention", &alpha.owner.token, setting.clone())
        .await;
    assert_eq!(res.assert_ok(200).clone(), setting);
    assert_eq!(
        app.get("/api/v1/org/retention", &alpha.agent.token)
            .await
            .assert_ok(200)
            .clone(),
        setting
    );
    let audit = app
        .get(
            "/api/v1/audit-log?action=organization.retention_changed",
            &alpha.owner.token,
        )
        .await;
    let entry = audit.assert_ok(200)["items"][0].clone();
    assert_eq!(entry["details"]["to"], setting, "{entry}");
    // Another organisation's settings are its own.
    let beta = tenant(&app, "beta").await;
    assert_eq!(
        app.get("/api/v1/org/retention", &beta.owner.token)
            .await
            .assert_ok(200)["closed_ticket_days"],
        Value::Null
    );
    app.shutdown().await;
}

#[tokio::test]
async fn closed_tickets_go_with_every_row_and_file_on_them() {
    let app = spawn_app().await;
    let alpha = tenant(&app, "alpha").await;
    let beta = tenant(&app, "beta").await;
    let owner = &alpha.owner.token;
    let old = id(&alpha.ticket);
    // A subtask that stays open, a ticket linked to the old one, and one closed recently.
    let child = app
        .ticket(owner, &alpha.project, json!({"parent_id": old}))
        .await;
    let linked = app.ticket(owner, &alpha.project, json!({})).await;
    app.post(
        &format!("/api/v1/tickets/{old}/links"),
        Some(owner),
        json!({"type": "relates", "ticket_id": id(&linked)}),
    )
    .await
    .assert_ok(201);
    close(&app, owner, &old).await;
    app.run_pending_events().await;
    let used: i64 = app
        .scalar(&format!(
            "SELECT bytes FROM storage_usage WHERE org_id = {}",
            uuid_literal(&alpha.owner.org_id)
        ))
        .await;
    assert!(used > 0);
    // Beta closes its ticket too, but keeps everything.
    close(&app, &beta.owner.token, &id(&beta.ticket)).await;

    app.put(
        "/api/v1/org/retention",
        owner,
        json!({"closed_ticket_days": 30}),
    )
    .await
    .assert_ok(200);
    // Not yet 30 days: nothing goes, and the round counts as done for the day.
    let done = apply_retention(&app, 29).await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].tickets, 0);
    assert!(apply_retention(&app, 29).await.is_empty(), "once a day");
    app.get(&format!("/api/v1/tickets/{old}"), owner)
        .await
        .assert_ok(200);

    let done = apply_retention(&app, 31).await;
    assert_eq!(done.len(), 1, "only alpha asked for it");
    assert_eq!(done[0].tickets, 1);
    assert_eq!(done[0].files, 1);
    app.get(&format!("/api/v1/tickets/{old}"), owner)
        .await
        .assert_problem(404, "ticket_not_found");
    app.get(&format!("/api/v1/attachments/{}", alpha.attachment), owner)
        .await
        .assert_problem(404, "attachment_not_found");
    let left = rows_naming(&app, &old, &["audit_log"]).await;
    assert!(left.is_empty(), "rows left: {left:?}");
    let blob = app
        .store
        .data_dir
        .join("attachments")
        .join(&alpha.owner.org_id)
        .join(&alpha.attachment);
    assert!(!blob.exists(), "the file is gone");
    let used: i64 = app
        .scalar(&format!(
            "SELECT bytes FROM storage_usage WHERE org_id = {}",
            uuid_literal(&alpha.owner.org_id)
        ))
        .await;
    assert_eq!(used, 0, "its bytes left the organisation's usage");
    // What stays is untied from it.
    let child = app
        .get(&format!("/api/v1/tickets/{}", id(&child)), owner)
        .await;
    assert_eq!(child.assert_ok(200)["parent_id"], Value::Null);
    let links = app
        .get(&format!("/api/v1/tickets/{}/links", id(&linked)), owner)
        .await;
    assert_eq!(links.assert_ok(200)["items"], json!([]), "{}", links.body);
    let hits = app.get("/api/v1/search?q=secret", owner).await;
    assert_eq!(hits.assert_ok(200)["items"], json!([]));
    // The audit log says what went, and still verifies.
    let audit = app
        .get("/api/v1/audit-log?action=retention.applied", owner)
        .await;
    let entries = audit.assert_ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["details"]["tickets"], 1);
    assert_eq!(entries[0]["actor_id"], Value::Null);
    let verified = app.get("/api/v1/audit-log/verify", owner).await;
    assert_eq!(verified.assert_ok(200)["ok"], true);
    // Beta's closed ticket, file and all, is there.
    app.get(
        &format!("/api/v1/tickets/{}", id(&beta.ticket)),
        &beta.owner.token,
    )
    .await
    .assert_ok(200);
    app.get(
        &format!("/api/v1/attachments/{}", beta.attachment),
        &beta.owner.token,
    )
    .await
    .assert_ok(200);
    app.shutdown().await;
}

#[tokio::test]
async fn old_mail_text_gives_way_to_a_notice() {
    let (_smtp, app, owner, inbound) = acknowledging_helpdesk().await;
    let first = message(
        "Carla Customer <carla@customer.test>",
        "Printer on fire",
        &format!("{AUTHENTICATED}Message-ID: <c1@customer.test>\n"),
        "The flamingo printer is on fire.",
    );
    let res = post_mail(&app, &inbound, &first).await;
    let ticket = res.assert_ok(202)["ticket_id"].as_str().unwrap().to_owned();
    let reply = message(
        "Carla Customer <carla@customer.test>",
        "Re: Printer on fire",
        &format!("{AUTHENTICATED}Message-ID: <c2@customer.test>\nReferences: <c1@customer.test>\n"),
        "Now the walrus scanner smokes too.",
    );
    let res = post_mail(&app, &inbound, &reply).await;
    assert_eq!(res.assert_ok(202)["outcome"], "comment_added");
    let comments = format!("/api/v1/tickets/{ticket}/comments");
    app.post(
        &comments,
        Some(&owner.token),
        json!({"body": "Our pelican answer stays."}),
    )
    .await
    .assert_ok(201);
    app.run_pending_events().await;
    app.deliver_mail().await;
    for word in ["flamingo", "walrus", "pelican"] {
        let hits = app
            .get(&format!("/api/v1/search?q={word}"), &owner.token)
            .await;
        assert_eq!(hits.assert_ok(200)["items"].as_array().unwrap().len(), 1);
    }

    app.put(
        "/api/v1/org/retention",
        &owner.token,
        json!({"mail_body_days": 30}),
    )
    .await
    .assert_ok(200);
    assert_eq!(apply_retention(&app, 10).await[0].mail_texts, 0);
    app.put(
        "/api/v1/org/retention",
        &owner.token,
        json!({"mail_body_days": 7}),
    )
    .await
    .assert_ok(200);
    let done = apply_retention(&app, 10).await;
    assert_eq!(done[0].mail_texts, 2, "{done:?}");
    assert!(
        done[0].mail_log > 0,
        "the ingest log and sent mail of then went"
    );

    let t = app
        .get(&format!("/api/v1/tickets/{ticket}"), &owner.token)
        .await;
    assert_eq!(t.assert_ok(200)["description"], NOTICE);
    assert_eq!(t.body["title"], "Printer on fire", "the subject stays");
    let bodies: Vec<Value> = app
        .all_items(&comments, &owner.token)
        .await
        .into_iter()
        .map(|c| c["body"].clone())
        .collect();
    assert!(bodies.contains(&json!(NOTICE)), "{bodies:?}");
    assert!(bodies.contains(&json!("Our pelican answer stays.")));
    for (word, found) in [("flamingo", 0), ("walrus", 0), ("pelican", 1)] {
        let hits = app
            .get(&format!("/api/v1/search?q={word}"), &owner.token)
            .await;
        assert_eq!(
            hits.assert_ok(200)["items"].as_array().unwrap().len(),
            found,
            "{word}"
        );
    }
    let timeline = app
        .all_items(&format!("/api/v1/tickets/{ticket}/timeline"), &owner.token)
        .await;
    let text = serde_json::to_string(&timeline).unwrap();
    assert!(
        !text.contains("flamingo") && !text.contains("walrus"),
        "{text}"
    );
    assert!(text.contains("pelican"));
    assert!(timeline.iter().any(|e| e["redacted_at"].is_string()));
    for (table, column) in [
        ("notifications", "body"),
        ("mails", "params"),
        ("mail_ingest", "subject"),
    ] {
        let n = app
            .count(&format!(
                "SELECT count(*) FROM {table} WHERE lower(CAST({column} AS TEXT)) LIKE '%walrus%' \
                 OR lower(CAST({column} AS TEXT)) LIKE '%flamingo%' OR lower(CAST({column} AS TEXT)) LIKE '%printer on fire%'"
            ))
            .await;
        assert_eq!(n, 0, "{table}.{column} still quotes the mail");
    }
    // The ticket still replays from its timeline.
    assert_replays_to(&timeline, &t.body, "after retention");
    // Done once: the next round finds nothing more.
    app.put(
        "/api/v1/org/retention",
        &owner.token,
        json!({"mail_body_days": 1}),
    )
    .await
    .assert_ok(200);
    assert_eq!(apply_retention(&app, 10).await[0].mail_texts, 0);
    app.shutdown().await;
}
