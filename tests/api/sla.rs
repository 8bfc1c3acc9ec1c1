//! SLAs over HTTP: business calendars, policies, each ticket's clocks (paused while pending,
//! met by replies and resolution, explained), warnings and breaches announced once (to the
//! assignees, managers and an escalation's role, in the timeline, with a reassignment), and
//! policies that recompute open tickets.

use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

fn instant(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not an instant: {v}"))
        .parse()
        .unwrap()
}

async fn policies(app: &TestApp, token: &str, policies: Value) -> Resp {
    app.put("/api/v1/sla-policies", token, json!({"policies": policies}))
        .await
}

#[tokio::test]
async fn calendars_are_checked_kept_and_protected_while_in_use() {
    let app = spawn_app().await;
    let owner = app.signup("cal", "owner@cal.example.com").await;
    let agent = app.member(&owner, "agent@cal.example.com", "agent").await;
    let requester = app.member(&owner, "req@cal.example.com", "requester").await;

    let bad = app
        .post(
            "/api/v1/calendars",
            Some(&owner.token),
            json!({"name": "", "time_zone": "Mars/Olympus",
                   "hours": {"monday": [{"start": "09:00", "end": "12:00"}, {"start": "11:00", "end": "13:00"}],
                             "tuesday": [{"start": "17:00", "end": "09:00"}],
                             "friday": [{"start": "9:00", "end": "24:01"}]},
                   "holidays": [{"date": "2026-12-25", "name": "x".repeat(101)}]}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for field in [
        "name",
        "time_zone",
        "hours.monday",
        "hours.tuesday[0]",
        "hours.friday[0]",
        "holidays[0].name",
    ] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }
    app.post(
        "/api/v1/calendars",
        Some(&owner.token),
        json!({"name": "Never", "time_zone": "UTC", "hours": {}}),
    )
    .await
    .assert_problem(422, "validation_failed");

    let created = app
        .post(
            "/api/v1/calendars",
            Some(&owner.token),
            json!({"name": "Support", "time_zone": "Europe/Berlin",
                   "hours": {"monday": [{"start": "08:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}]},
                   "holidays": [{"date": "2026-12-25", "name": "Christmas", "recurring": true}]}),
        )
        .await;
    let cal = created.assert_ok(201).clone();
    let id = cal["id"].as_str().unwrap();
    assert_eq!(cal["hours"]["monday"][1]["start"], "13:00");
    assert_eq!(cal["hours"]["sunday"], json!([]));
    assert_eq!(cal["holidays"][0]["recurring"], true);
    // Names are unique in the organisation.
    app.post(
        "/api/v1/calendars",
        Some(&owner.token),
        json!({"name": "Support", "time_zone": "UTC", "hours": {"monday": [{"start": "00:00", "end": "24:00"}]}}),
    )
    .await
    .assert_problem(409, "calendar_name_taken");
    // Staff read calendars; only admins change them; requesters see none.
    let list = app.get("/api/v1/calendars", &agent.token).await;
    assert_eq!(list.assert_ok(200)["items"][0]["id"], id);
    app.post(
        "/api/v1/calendars",
        Some(&agent.token),
        json!({"name": "Mine", "time_zone": "UTC", "hours": {"monday": [{"start": "00:00", "end": "24:00"}]}}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.get("/api/v1/calendars", &requester.token)
        .await
        .assert_problem(403, "forbidden");
    app.get("/api/v1/sla-policies", &requester.token)
        .await
        .assert_problem(403, "forbidden");
    let patched = app
        .patch(
            &format!("/api/v1/calendars/{id}"),
            &owner.token,
            json!({"time_zone": "America/New_York", "holidays": []}),
        )
        .await;
    assert_eq!(patched.assert_ok(200)["time_zone"], "America/New_York");
    assert_eq!(patched.body["holidays"], json!([]));
    app.patch(
        &format!("/api/v1/calendars/{id}"),
        &owner.token,
        json!({"time_zone": "Nowhere/Land"}),
    )
    .await
    .assert_problem(422, "validation_failed");

    policies(
        &app,
        &owner.token,
        json!([{"priority": "high", "calendar_id": id, "first_response_minutes": 60, "resolution_minutes": 480}]),
    )
    .await
    .assert_ok(200);
    app.delete(&format!("/api/v1/calendars/{id}"), &owner.token)
        .await
        .assert_problem(409, "calendar_in_use");
    policies(&app, &owner.token, json!([])).await.assert_ok(200);
    app.delete(&format!("/api/v1/calendars/{id}"), &owner.token)
        .await
        .assert_ok(204);
    app.get(&format!("/api/v1/calendars/{id}"), &owner.token)
        .await
        .assert_problem(404, "calendar_not_found");
    app.shutdown().await;
}

#[tokio::test]
async fn policies_are_checked_as_a_whole() {
    let app = spawn_app().await;
    let owner = app.signup("pol", "owner@pol.example.com").await;
    let agent = app.member(&owner, "agent@pol.example.com", "agent").await;
    let requester = app.member(&owner, "req@pol.example.com", "requester").await;
    let project = app.project(&owner.token, "POL").await;
    let unknown = "0190c0de-0000-7000-8000-000000000000";
    let res = policies(
        &app,
        &owner.token,
        json!([
            {"priority": "high", "first_response_minutes": 0, "resolution_minutes": 600000},
            {"priority": "high", "first_response_minutes": 5, "resolution_minutes": 50, "warning_percent": 100},
            {"priority": "low", "first_response_minutes": 5, "resolution_minutes": 50,
             "escalation": [{"on": "breach"}, {"on": "warning", "notify_role": "requester"}]},
        ]),
    )
    .await;
    res.assert_problem(422, "validation_failed");
    let fields: Vec<&str> = res.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "policies[0].first_response_minutes",
            "policies[0].resolution_minutes",
            "policies[1].priority",
            "policies[1].warning_percent",
            "policies[2].escalation[0]",
            "policies[2].escalation[1].notify_role",
        ]
    );
    let res = policies(
        &app,
        &owner.token,
        json!([{"priority": "high", "project_id": unknown, "calendar_id": unknown,
                "first_response_minutes": 5, "resolution_minutes": 50,
                "escalation": [{"on": "breach", "reassign_to": requester.user_id}]}]),
    )
    .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(
        res.body["errors"].as_array().unwrap().len(),
        3,
        "{}",
        res.body
    );
    // The same priority once for the organisation and once for a project is fine.
    let stored = policies(
        &app,
        &owner.token,
        json!([
            {"priority": "high", "first_response_minutes": 30, "resolution_minutes": 300},
            {"priority": "high", "project_id": project, "first_response_minutes": 10, "resolution_minutes": 100,
             "next_response_minutes": 20, "warning_percent": 50,
             "escalation": [{"on": "breach", "notify_role": "admin", "reassign_to": agent.user_id}]},
        ]),
    )
    .await;
    let stored = stored.assert_ok(200)["policies"].clone();
    assert_eq!(stored.as_array().unwrap().len(), 2);
    assert_eq!(stored[0]["warning_percent"], 80, "the default threshold");
    let read = app.get("/api/v1/sla-policies", &agent.token).await;
    assert_eq!(read.assert_ok(200)["policies"], stored);
    policies(&app, &agent.token, json!([]))
        .await
        .assert_problem(403, "forbidden");
    let audit = app.get("/api/v1/audit-log", &owner.token).await;
    assert!(
        audit
            .assert_ok(200)
            .to_string()
            .contains("sla_policies.replaced")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn clocks_pause_while_pending_and_are_met_by_replies_and_resolution() {
    let app = spawn_app().await;
    let owner = app.signup("clk", "owner@clk.example.com").await;
    let agent = app.member(&owner, "agent@clk.example.com", "agent").await;
    let requester = app.member(&owner, "req@clk.example.com", "requester").await;
    let project = app.project(&owner.token, "CLK").await;
    // A ticket filed before any policy has no clocks.
    let before = app
        .ticket(&owner.token, &project, json!({"priority": "urgent"}))
        .await;
    assert_eq!(before["sla"], Value::Null);
    assert_eq!(before["first_response_due_at"], Value::Null);
    let set = policies(
        &app,
        &owner.token,
        json!([{"priority": "urgent", "first_response_minutes": 60, "next_response_minutes": 30,
                "resolution_minutes": 240}]),
    )
    .await;
    let policy_id = set.assert_ok(200)["policies"][0]["id"].clone();
    // Setting the policy gave the open ticket its clocks, counted from its creation.
    let id = before["id"].as_str().unwrap();
    let t = app
        .get(&format!("/api/v1/tickets/{id}"), &owner.token)
        .await;
    let created = instant(&t.assert_ok(200)["created_at"]);
    assert_eq!(
        instant(&t.body["first_response_due_at"]),
        created + Duration::minutes(60)
    );
    assert_eq!(
        instant(&t.body["resolution_due_at"]),
        created + Duration::minutes(240)
    );

    let t = app
        .post(
            "/api/v1/tickets",
            Some(&requester.token),
            json!({"project_id": project, "title": "printer on fire", "priority": "urgent"}),
        )
        .await;
    let t = t.assert_ok(201).clone();
    let id = t["id"].as_str().unwrap().to_owned();
    let created = instant(&t["created_at"]);
    let first = &t["sla"]["first_response"];
    assert_eq!(first["state"], "running");
    assert_eq!(instant(&first["due_at"]), created + Duration::minutes(60));
    assert_eq!(instant(&first["warn_at"]), created + Duration::minutes(48));
    assert_eq!(first["explanation"]["target_minutes"], 60);
    assert_eq!(first["explanation"]["warning_percent"], 80);
    assert_eq!(first["explanation"]["calendar_id"], Value::Null);
    assert_eq!(first["explanation"]["policy_id"], policy_id);
    assert_eq!(t["sla"]["next_response"], Value::Null);
    assert_eq!(
        instant(&t["resolution_due_at"]),
        created + Duration::minutes(240)
    );

    // Waiting on the customer pauses the clocks; they have no due time while paused.
    let path = format!("/api/v1/tickets/{id}");
    let version = |t: &Value| t["version"].as_i64().unwrap();
    let paused = app
        .call_if(
            Method::PATCH,
            &path,
            &agent.token,
            version(&t),
            Some(json!({"status": "pending"})),
        )
        .await;
    let paused = paused.assert_ok(200).clone();
    assert_eq!(paused["sla"]["resolution"]["state"], "paused");
    assert_eq!(paused["resolution_due_at"], Value::Null);
    assert_eq!(paused["first_response_due_at"], Value::Null);
    let pause_from = instant(&paused["sla"]["resolution"]["explanation"]["pauses"][0]["from"]);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let resumed = app
        .call_if(
            Method::PATCH,
            &path,
            &agent.token,
            version(&paused),
            Some(json!({"status": "open"})),
        )
        .await;
    let resumed = resumed.assert_ok(200).clone();
    let pause = &resumed["sla"]["resolution"]["explanation"]["pauses"][0];
    let paused_for = instant(&pause["to"]) - pause_from;
    assert!(paused_for >= Duration::milliseconds(50), "{pause}");
    // The due time moved by exactly the pause.
    assert_eq!(
        instant(&resumed["resolution_due_at"]),
        created + Duration::minutes(240) + paused_for
    );
    assert_eq!(resumed["sla"]["resolution"]["state"], "running");

    // An internal note is no reply; the agent's public comment meets the first response.
    let comment = |token: String, body: &'static str, internal: bool| {
        let app = &app;
        let path = format!("/api/v1/tickets/{id}/comments");
        async move {
            app.post(
                &path,
                Some(&token),
                json!({"body": body, "internal": internal}),
            )
            .await
            .assert_ok(201);
        }
    };
    comment(agent.token.clone(), "looking", true).await;
    let t = app.get(&path, &owner.token).await;
    assert_eq!(
        t.assert_ok(200)["sla"]["first_response"]["state"],
        "running"
    );
    // The requester writing before anyone answered starts nothing.
    comment(requester.token.clone(), "hello?", false).await;
    let t = app.get(&path, &owner.token).await;
    assert_eq!(t.assert_ok(200)["sla"]["next_response"], Value::Null);
    comment(agent.token.clone(), "on it", false).await;
    let t = app.get(&path, &owner.token).await;
    let first = &t.assert_ok(200)["sla"]["first_response"];
    assert_eq!(first["state"], "met");
    assert_eq!(first["business_minutes"], 0);
    // Now the requester's message starts the next-response clock; staff's reply meets it.
    comment(requester.token.clone(), "still burning", false).await;
    let t = app.get(&path, &owner.token).await;
    let next = t.assert_ok(200)["sla"]["next_response"].clone();
    assert_eq!(next["state"], "running");
    let started = instant(&next["explanation"]["started_at"]);
    assert_eq!(instant(&next["due_at"]), started + Duration::minutes(30));
    comment(requester.token.clone(), "hello??", false).await;
    let t = app.get(&path, &owner.token).await;
    assert_eq!(
        instant(&t.assert_ok(200)["sla"]["next_response"]["explanation"]["started_at"]),
        started,
        "a second message does not restart a running clock"
    );
    comment(agent.token.clone(), "extinguished", false).await;
    let t = app.get(&path, &owner.token).await;
    assert_eq!(t.assert_ok(200)["sla"]["next_response"]["state"], "met");

    // Resolving meets the resolution clock; reopening runs it again.
    let done = app
        .call_if(
            Method::POST,
            &format!("{path}/complete"),
            &agent.token,
            version(&resumed),
            None,
        )
        .await;
    let done = done.assert_ok(200).clone();
    assert_eq!(done["sla"]["resolution"]["state"], "met");
    assert_eq!(done["sla"]["resolution"]["met_at"], done["resolved_at"]);
    let again = app
        .call_if(
            Method::POST,
            &format!("{path}/reopen"),
            &agent.token,
            version(&done),
            None,
        )
        .await;
    assert_eq!(
        again.assert_ok(200)["sla"]["resolution"]["state"],
        "running"
    );
    assert_eq!(again.body["sla"]["resolution"]["met_at"], Value::Null);
    // The list shows the clocks too.
    let list = app
        .get(
            &format!("/api/v1/tickets?project_id={project}"),
            &agent.token,
        )
        .await;
    let items = list.assert_ok(200)["items"].as_array().unwrap().clone();
    assert!(
        items
            .iter()
            .all(|t| t["sla"]["resolution"]["state"] == "running"),
        "{items:?}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn business_calendars_skip_closed_days() {
    let app = spawn_app().await;
    let owner = app.signup("biz", "owner@biz.example.com").await;
    let project = app.project(&owner.token, "BIZ").await;
    let today = Utc::now().date_naive();
    let day = |n: u64| (today + chrono::Days::new(n)).to_string();
    let all_day = json!([{"start": "00:00", "end": "24:00"}]);
    let week: serde_json::Map<String, Value> = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
    .into_iter()
    .map(|d| (d.to_owned(), all_day.clone()))
    .collect();
    // Open around the clock in UTC, but closed today and tomorrow.
    let cal = app
        .post(
            "/api/v1/calendars",
            Some(&owner.token),
            json!({"name": "Closed for two days", "time_zone": "UTC", "hours": week,
                   "holidays": [{"date": day(0)}, {"date": day(1)}]}),
        )
        .await;
    let cal = cal.assert_ok(201)["id"].clone();
    policies(
        &app,
        &owner.token,
        json!([{"priority": "medium", "calendar_id": cal, "first_response_minutes": 90,
                "resolution_minutes": 1440 + 60}]),
    )
    .await
    .assert_ok(200);
    let t = app.ticket(&owner.token, &project, json!({})).await;
    let opens: DateTime<Utc> = format!("{}T00:00:00Z", day(2)).parse().unwrap();
    assert_eq!(
        instant(&t["first_response_due_at"]),
        opens + Duration::minutes(90)
    );
    assert_eq!(
        instant(&t["resolution_due_at"]),
        opens + Duration::minutes(1440 + 60)
    );
    assert_eq!(
        t["sla"]["first_response"]["explanation"]["calendar_id"],
        cal
    );
    // Opening today moves the due times to today.
    app.patch(
        &format!("/api/v1/calendars/{}", cal.as_str().unwrap()),
        &owner.token,
        json!({"holidays": []}),
    )
    .await
    .assert_ok(200);
    let t = app
        .get(
            &format!("/api/v1/tickets/{}", t["id"].as_str().unwrap()),
            &owner.token,
        )
        .await;
    let created = instant(&t.assert_ok(200)["created_at"]);
    assert_eq!(
        instant(&t.body["first_response_due_at"]),
        created + Duration::minutes(90)
    );
    app.shutdown().await;
}

#[tokio::test]
async fn warnings_and_breaches_are_announced_once_and_escalate() {
    let app = spawn_app().await;
    let owner = app.signup("esc", "owner@esc.example.com").await;
    let admin = app.member(&owner, "admin@esc.example.com", "admin").await;
    let manager = app
        .member(&owner, "manager@esc.example.com", "manager")
        .await;
    let agent = app.member(&owner, "agent@esc.example.com", "agent").await;
    let backup = app.member(&owner, "backup@esc.example.com", "agent").await;
    let requester = app.member(&owner, "req@esc.example.com", "requester").await;
    let project = app.project(&owner.token, "ESC").await;
    policies(
        &app,
        &owner.token,
        json!([{"priority": "high", "first_response_minutes": 10, "resolution_minutes": 100,
                "warning_percent": 50,
                "escalation": [{"on": "breach", "notify_role": "admin", "reassign_to": backup.user_id}]}]),
    )
    .await
    .assert_ok(200);
    let t = app
        .ticket(
            &owner.token,
            &project,
            json!({"priority": "high", "assignee_ids": [agent.user_id], "requester_id": requester.user_id}),
        )
        .await;
    let id = t["id"].as_str().unwrap().to_owned();
    let created = instant(&t["created_at"]);
    app.run_pending_events().await;
    let sla_notes = |token: String| {
        let app = &app;
        async move {
            let inbox = app.get("/api/v1/notifications", &token).await;
            inbox.assert_ok(200)["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["type"].as_str().unwrap().starts_with("sla_"))
                .map(|n| n["type"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };

    // Nothing is due yet.
    assert_eq!(app.fire_sla_timers(created + Duration::minutes(4)).await, 0);
    // Five minutes in: the first-response warning, once however often the timer looks.
    let at = created + Duration::minutes(5) + Duration::seconds(1);
    assert_eq!(app.fire_sla_timers(at).await, 1);
    assert_eq!(app.fire_sla_timers(at).await, 0);
    app.run_pending_events().await;
    assert_eq!(sla_notes(agent.token.clone()).await, ["sla_warning"]);
    assert_eq!(sla_notes(manager.token.clone()).await, ["sla_warning"]);
    assert!(
        sla_notes(admin.token.clone()).await.is_empty(),
        "the escalation is for breaches"
    );
    assert!(sla_notes(requester.token.clone()).await.is_empty());

    // Ten minutes in, two workers look at once: one breach.
    let at = created + Duration::minutes(10) + Duration::seconds(1);
    let (a, b) = tokio::join!(app.fire_sla_timers(at), app.fire_sla_timers(at));
    assert!(a + b >= 1);
    assert_eq!(app.fire_sla_timers(at).await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox_events WHERE kind = 'sla.breached'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox_events WHERE kind = 'sla.warning'")
            .await,
        1
    );
    app.run_pending_events().await;
    assert_eq!(
        sla_notes(agent.token.clone()).await,
        ["sla_breached", "sla_warning"]
    );
    assert_eq!(sla_notes(admin.token.clone()).await, ["sla_breached"]);
    assert!(sla_notes(requester.token.clone()).await.is_empty());
    // The escalation handed the ticket to the backup agent, as a change by nobody.
    let now = app
        .get(&format!("/api/v1/tickets/{id}"), &owner.token)
        .await;
    assert_eq!(now.assert_ok(200)["assignee_ids"], json!([backup.user_id]));
    assert_eq!(now.body["sla"]["first_response"]["state"], "breached");
    // Staff see the announcements in the timeline; the requester does not.
    let timeline = app
        .get(&format!("/api/v1/tickets/{id}/timeline"), &owner.token)
        .await;
    let kinds: Vec<String> = timeline.assert_ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        kinds.contains(&"sla.warning".to_owned()) && kinds.contains(&"sla.breached".to_owned()),
        "{kinds:?}"
    );
    let theirs = app
        .get(&format!("/api/v1/tickets/{id}/timeline"), &requester.token)
        .await;
    assert!(!theirs.assert_ok(200).to_string().contains("sla."));
    // Meeting it late keeps it breached; a later reply announces nothing more.
    app.post(
        &format!("/api/v1/tickets/{id}/comments"),
        Some(&backup.token),
        json!({"body": "sorry for the wait"}),
    )
    .await
    .assert_ok(201);
    let now = app
        .get(&format!("/api/v1/tickets/{id}"), &owner.token)
        .await;
    assert_eq!(
        now.assert_ok(200)["sla"]["first_response"]["state"],
        "breached"
    );
    // The resolution clock warns at 50 minutes and breaches at 100, each once.
    assert_eq!(
        app.fire_sla_timers(created + Duration::minutes(51)).await,
        1
    );
    assert_eq!(
        app.fire_sla_timers(created + Duration::minutes(101)).await,
        1
    );
    assert_eq!(
        app.fire_sla_timers(created + Duration::minutes(500)).await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox_events WHERE kind LIKE 'sla.%'")
            .await,
        4
    );
    app.shutdown().await;
}
