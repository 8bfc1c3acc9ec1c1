//! Tickets end to end: fields and keys, the state machine, If-Match, soft deletion, requesters
//! and viewers, comments and internal notes, listing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

struct Desk {
    owner: Session,
    agent: Session,
    viewer: Session,
    requester: Session,
    project: String,
}

async fn desk(app: &TestApp) -> Desk {
    let owner = app.signup("acme", "owner@acme.example").await;
    let agent = app.member(&owner, "agent@acme.example", "agent").await;
    let viewer = app.member(&owner, "viewer@acme.example", "viewer").await;
    let requester = app
        .member(&owner, "customer@acme.example", "requester")
        .await;
    let project = app.project(&owner.token, "OPS").await;
    Desk {
        owner,
        agent,
        viewer,
        requester,
        project,
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_ticket_has_every_field_a_key_and_an_etag() {
    let app = spawn_app().await;
    let d = desk(&app).await;
    let t = app
        .ticket(
            &d.owner.token,
            &d.project,
            json!({"description": "Smoke", "priority": "urgent", "assignee_ids": [d.agent.user_id],
                   "labels": ["hardware", " fire ", "hardware"], "due_at": "2030-01-02T03:04:05Z",
                   "requester_id": d.requester.user_id}),
        )
        .await;
    assert_eq!(t["key"], "OPS-1");
    assert_eq!(t["number"], 1);
    assert_eq!(t["status"], "open");
    assert_eq!(t["priority"], "urgent");
    assert_eq!(t["version"], 1);
    assert_eq!(t["assignee_ids"], json!([d.agent.user_id]));
    assert_eq!(t["labels"], json!(["fire", "hardware"]));
    assert_eq!(t["requester_id"], d.requester.user_id.as_str());
    assert_eq!(t["due_at"], "2030-01-02T03:04:05Z");
    for field in [
        "first_response_due_at",
        "resolution_due_at",
        "resolved_at",
        "closed_at",
        "deleted_at",
    ] {
        assert!(t[field].is_null(), "{field}");
    }
    for field in ["created_at", "updated_at", "project_id", "created_by"] {
        assert!(t[field].is_string(), "{field}");
    }

    // By id and by key, with the version as ETag.
    let by_id = app
        .get(&format!("/api/v1/tickets/{}", id(&t)), &d.agent.token)
        .await;
    assert_eq!(by_id.assert_ok(200), &t);
    assert_eq!(by_id.headers["etag"], "\"1\"");
    let by_key = app.get("/api/v1/tickets/OPS-1", &d.agent.token).await;
    assert_eq!(by_key.assert_ok(200)["id"], t["id"]);
    app.get("/api/v1/tickets/OPS-2", &d.agent.token)
        .await
        .assert_problem(404, "ticket_not_found");
    app.get("/api/v1/tickets/not-a-ticket", &d.agent.token)
        .await
        .assert_problem(404, "ticket_not_found");

    // Defaults: medium priority, requested by whoever filed it.
    let t2 = app.ticket(&d.agent.token, &d.project, json!({})).await;
    assert_eq!(t2["key"], "OPS-2");
    assert_eq!(t2["priority"], "medium");
    assert_eq!(t2["requester_id"], d.agent.user_id.as_str());
    app.shutdown().await;
}

#[tokio::test]
async fn bad_ticket_input_is_refused_precisely() {
    let app = spawn_app().await;
    let d = desk(&app).await;
    let post = |body: Value| app.post("/api/v1/tickets", Some(&d.owner.token), body);
    let field = |res: &Resp| {
        res.body["errors"][0]["field"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let res = post(json!({"project_id": d.project, "title": "   "})).await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(field(&res), "title");
    let res = post(json!({"project_id": d.project, "title": "x".repeat(201)})).await;
    assert_eq!(field(res.assert_problem(422, "validation_failed")), "title");
    let res = post(json!({"project_id": uuid::Uuid::now_v7(), "title": "T"})).await;
    assert_eq!(
        field(res.assert_problem(422, "validation_failed")),
        "project_id"
    );
    let res = post(json!({"project_id": d.project, "title": "T", "priority": "asap"})).await;
    assert_eq!(
        field(res.assert_problem(422, "validation_failed")),
        "priority"
    );
    // Viewers and requesters cannot be assignees; strangers cannot be requesters.
    let res =
        post(json!({"project_id": d.project, "title": "T", "assignee_ids": [d.viewer.user_id]}))
            .await;
    assert_eq!(
        field(res.assert_problem(422, "validation_failed")),
        "assignee_ids[0]"
    );
    let res =
        post(json!({"project_id": d.project, "title": "T", "requester_id": uuid::Uuid::now_v7()}))
            .await;
    assert_eq!(
        field(res.assert_problem(422, "validation_failed")),
        "requester_id"
    );
    let res = post(json!({"project_id": d.project, "title": "T", "labels": ["a,b"]})).await;
    assert_eq!(
        field(res.assert_problem(422, "validation_failed")),
        "labels[0]"
    );
    let res = post(json!({"project_id": d.project, "title": "T", "surprise": 1})).await;
    res.assert_problem(422, "validation_failed");
    // None of that created anything: the next ticket is number 1.
    let t = app.ticket(&d.owner.token, &d.project, json!({})).await;
    assert_eq!(t["key"], "OPS-1");
    app.shutdown().await;
}

#[tokio::test]
async fn the_state_machine_governs_every_status_change() {
    let app = spawn_app().await;
    let d = desk(&app).await;
    let t = app.ticket(&d.agent.token, &d.project, json!({})).await;
    let path = format!("/api/v1/tickets/{}", id(&t));
    let tok = &d.agent.token;

    // open → closed is not a move; the problem names the allowed ones.
    let res = app
        .call_if(
            Method::PATCH,
            &path,
            tok,
            1,
            Some(json!({"status": "closed"})),
        )
        .await;
    res.assert_problem(409, "invalid_transition");
    assert_eq!(
        res.body["allowed"],
        json!(["in_progress", "pending", "resolved", "cancelled"])
    );

    let res = app
        .call_if(
            Method::PATCH,
            &path,
            tok,
            1,
            Some(json!({"status": "in_progress"})),
        )
        .await;
    assert_eq!(res.assert_ok(200)["status"], "in_progress");
    assert_eq!(res.headers["etag"], "\"2\"");
    let res = app
        .call_if(Method::POST, &format!("{path}/complete"), tok, 2, None)
        .await;
    let resolved = res.assert_ok(200);
    assert_eq!(resolved["status"], "resolved");
    assert!(resolved["resolved_at"].is_string() && resolved["closed_at"].is_null());
    // Completing twice is refused: it is already resolved.
    app.call_if(Method::POST, &format!("{path}/complete"), tok, 3, None)
        .await
        .assert_problem(409, "invalid_transition");
    let res = app
        .call_if(
            Method::PATCH,
            &path,
            tok,
            3,
            Some(json!({"status": "closed"})),
        )
        .await;
    let closed = res.assert_ok(200).clone();
    assert!(closed["closed_at"].is_string());
    assert_eq!(closed["resolved_at"], resolved["resolved_at"]);
    // No jump from closed straight back into work.
    let res = app
        .call_if(
            Method::PATCH,
            &path,
            tok,
            4,
            Some(json!({"status": "in_progress"})),
        )
        .await;
    res.assert_problem(409, "invalid_transition");
    assert_eq!(res.body["allowed"], json!(["open"]));
    let res = app
        .call_if(Method::POST, &format!("{path}/reopen"), tok, 4, None)
        .await;
    let reopened = res.assert_ok(200);
    assert_eq!(reopened["status"], "open");
    assert!(reopened["resolved_at"].is_null() && reopened["closed_at"].is_null());
    assert_eq!(reopened["version"], 5);
    // A PATCH naming the current status changes nothing (no new version).
    let res = app
        .call_if(
            Method::PATCH,
            &path,
            tok,
            5,
            Some(json!({"status": "open"})),
        )
        .await;
    assert_eq!(res.assert_ok(200)["version"], 5);
    app.shutdown().await;
}

#[tokio::test]
async fn changes_need_the_current_version() {
    let app = spawn_app().await;
    let d = desk(&app).await;
    let t = app.ticket(&d.agent.token, &d.project, json!({})).await;
    let path = format!("/api/v1/tickets/{}", id(&t));
    let tok = &d.agent.token;
    app.patch(&path, tok, json!({"title": "No precondition"}))
        .await
        .assert_problem(428, "precondition_required");
    app.call(Method::POST, &format!("{path}/complete"), Some(tok), None)
        .await
        .assert_problem(428, "precondition_required");
    let garbage = app
        .send(
            app.request(Method::PATCH, &path, Some(tok))
                .header("if-match", "yesterday")
                .json(&json!({"title": "x"})),
        )
        .await;
    garbage.assert_problem(400, "invalid_if_match");
    app.call_if(
        Method::PATCH,
        &path,
        tok,
        1,
        Some(json!({"title": "First"})),
    )
    .await
    .assert_ok(200);
    let stale = app
        .call_if(
            Method::PATCH,
            &path,
            tok,
            1,
            Some(json!({"title": "Second"})),
        )
        .await;
    stale.assert_problem(412, "version_mismatch");
    assert_eq!(stale.body["current_version"], 2);
    // `*` means whatever is current.
    let any = app
        .send(
            app.request(Method::PATCH, &path, Some(tok))
                .header("if-match", "*")
                .json(&json!({"title": "Third"})),
        )
        .await;
    assert_eq!(any.assert_ok(200)["version"], 3);
    // A refused change left nothing behind.
    let now = app.get(&path, tok).await;
    assert_eq!(now.assert_ok(200)["title"], "Third");
    app.shutdown().await;
}

#[tokio::test]
async fn deleted_tickets_disappear_until_an_admin_restores_them() {
    let app = spawn_app().await;
    let d = desk(&app).await;
    let t = app.ticket(&d.agent.token, &d.project, json!({})).await;
    let path = format!("/api/v1/tickets/{}", id(&t));
    app.call_if(Method::DELETE, &path, &d.agent.token, 1, None)
        .await
        .assert_problem(403, "forbidden");
    let res = app
        .call_if(Method::DELETE, &path, &d.owner.token, 1, None)
        .await;
    assert_eq!(res.status, 204);
    app.get(&path, &d.agent.token)
        .await
        .assert_problem(404, "ticket_not_found");
    let list = app.get("/api/v1/tickets", &d.agent.token).await;
    assert_eq!(list.assert_ok(200)["items"], json!([]));
    // Admins see it among the deleted, and in the audit log.
    let deleted = app
        .get("/api/v1/tickets?deleted=true", &d.owner.token)
        .await;
    assert_eq!(deleted.assert_ok(200)["items"][0]["id"], t["id"]);
    app.get("/api/v1/tickets?deleted=true", &d.agent.token)
        .await
        .assert_problem(403, "forbidden");
    let audit = app.get("/api/v1/audit-log", &d.owner.token).await;
    assert_eq!(audit.assert_ok(200)["items"][0]["action"], "ticket.deleted");
    let res = app
        .call_if(
            Method::POST,
            &format!("{path}/restore"),
            &d.owner.token,
            2,
            None,
        )
        .await;
    assert!(res.assert_ok(200)["deleted_at"].is_null());
    app.get(&path, &d.agent.token).await.assert_ok(200);
    app.call_if(
        Method::POST,
        &format!("{path}/restore"),
        &d.owner.token,
        3,
        None,
    )
    .await
    .assert_problem(409, "ticket_not_deleted");
    app.shutdown().await;
}

#[tokio::test]
async fn requesters_see_only_their_own_tickets_and_no_internal_notes() {
    let app = spawn_app().await;
    let d = desk(&app).await;
    let other = app
        .member(&d.owner, "other@customer.example", "requester")
        .await;
    let mine = app
        .ticket(&d.requester.token, &d.project, json!({"priority": "high"}))
        .await;
    assert_eq!(mine["requester_id"], d.requester.user_id.as_str());
    let theirs = app.ticket(&other.token, &d.project, json!({})).await;
    // Requesters cannot assign, label or file for others.
    for extra in [
        json!({"assignee_ids": [d.agent.user_id]}),
        json!({"labels": ["x"]}),
        json!({"requester_id": other.user_id}),
    ] {
        let mut body = json!({"project_id": d.project, "title": "T"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        app.post("/api/v1/tickets", Some(&d.requester.token), body)
            .await
            .assert_problem(403, "forbidden");
    }
    let list = app.get("/api/v1/tickets", &d.requester.token).await;
    let items = list.assert_ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], mine["id"]);
    let me = app.get("/api/v1/me/tickets", &d.requester.token).await;
    assert_eq!(me.assert_ok(200)["items"][0]["id"], mine["id"]);
    app.get(
        &format!("/api/v1/tickets/{}", id(&theirs)),
        &d.requester.token,
    )
    .await
    .assert_problem(404, "ticket_not_found");
    app.get(
        &format!("/api/v1/tickets/{}/comments", id(&theirs)),
        &d.requester.token,
    )
    .await
    .assert_problem(404, "ticket_not_found");

    // Comments: public ones both ways, internal notes for staff only.
    let comments = format!("/api/v1/tickets/{}/comments", id(&mine));
    app.post(
        &comments,
        Some(&d.requester.token),
        json!({"body": "Still broken"}),
    )
    .await
    .assert_ok(201);
    app.post(
        &comments,
        Some(&d.requester.token),
        json!({"body": "x", "internal": true}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post(
        &comments,
        Some(&d.agent.token),
        json!({"body": "Customer is grumpy", "internal": true}),
    )
    .await
    .assert_ok(201);
    app.post(
        &comments,
        Some(&d.agent.token),
        json!({"body": "We are on it"}),
    )
    .await
    .assert_ok(201);
    let seen = app.get(&comments, &d.requester.token).await;
    let bodies = pluck(&seen.assert_ok(200)["items"], "body");
    assert_eq!(bodies, ["Still broken", "We are on it"]);
    let staff = app.get(&comments, &d.viewer.token).await;
    assert_eq!(staff.assert_ok(200)["items"].as_array().unwrap().len(), 3);
    let timeline = app
        .get(
            &format!("/api/v1/tickets/{}/timeline", id(&mine)),
            &d.requester.token,
        )
        .await;
    let text = timeline.assert_ok(200).to_string();
    assert!(!text.contains("grumpy"), "{text}");
    let staff = app
        .get(
            &format!("/api/v1/tickets/{}/timeline", id(&mine)),
            &d.viewer.token,
        )
        .await;
    assert!(staff.assert_ok(200).to_string().contains("grumpy"));
    // Requesters do not get project activity (it shows everyone's tickets).
    app.get(
        &format!("/api/v1/projects/{}/activity", d.project),
        &d.requester.token,
    )
    .await
    .assert_problem(403, "forbidden");
    app.shutdown().await;
}

#[tokio::test]
async fn viewers_read_everything_and_change_nothing() {
    let app = spawn_app().await;
    let d = desk(&app).await;
    let t = app.ticket(&d.agent.token, &d.project, json!({})).await;
    let path = format!("/api/v1/tickets/{}", id(&t));
    app.get(&path, &d.viewer.token).await.assert_ok(200);
    app.get("/api/v1/tickets", &d.viewer.token)
        .await
        .assert_ok(200);
    app.post(
        "/api/v1/tickets",
        Some(&d.viewer.token),
        json!({"project_id": d.project, "title": "T"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.call_if(
        Method::PATCH,
        &path,
        &d.viewer.token,
        1,
        Some(json!({"title": "x"})),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post(
        &format!("{path}/comments"),
        Some(&d.viewer.token),
        json!({"body": "hi"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.shutdown().await;
}

#[tokio::test]
async fn comments_are_edited_and_deleted_by_their_author_or_an_admin() {
    let app = spawn_app().await;
    let d = desk(&app).await;
    let other_agent = app.member(&d.owner, "agent2@acme.example", "agent").await;
    let t = app.ticket(&d.agent.token, &d.project, json!({})).await;
    let c = app
        .post(
            &format!("/api/v1/tickets/{}/comments", id(&t)),
            Some(&d.agent.token),
            json!({"body": "First"}),
        )
        .await;
    assert_eq!(c.headers["etag"], "\"1\"");
    let path = format!("/api/v1/comments/{}", id(c.assert_ok(201)));
    app.call_if(
        Method::PATCH,
        &path,
        &other_agent.token,
        1,
        Some(json!({"body": "Hijack"})),
    )
    .await
    .assert_problem(403, "forbidden");
    app.patch(&path, &d.agent.token, json!({"body": "x"}))
        .await
        .assert_problem(428, "precondition_required");
    let edited = app
        .call_if(
            Method::PATCH,
            &path,
            &d.agent.token,
            1,
            Some(json!({"body": "First, edited"})),
        )
        .await;
    assert_eq!(edited.assert_ok(200)["version"], 2);
    app.call_if(Method::DELETE, &path, &d.agent.token, 1, None)
        .await
        .assert_problem(412, "version_mismatch");
    let res = app
        .call_if(Method::DELETE, &path, &d.owner.token, 2, None)
        .await;
    assert_eq!(res.status, 204);
    app.call_if(Method::DELETE, &path, &d.owner.token, 2, None)
        .await
        .assert_problem(404, "comment_not_found");
    // The timeline still explains what was said and by whom.
    let tl = app
        .get(
            &format!("/api/v1/tickets/{}/timeline", id(&t)),
            &d.agent.token,
        )
        .await;
    let kinds = pluck(&tl.assert_ok(200)["items"], "kind");
    assert_eq!(
        kinds,
        [
            "ticket.created",
            "comment.created",
            "comment.updated",
            "comment.deleted"
        ]
    );
    app.shutdown().await;
}

/// The keys of every ticket of a listing, following cursors.
async fn all_keys(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    pluck(&Value::Array(app.all_items(query, token).await), "key")
}

#[tokio::test]
async fn listing_filters_and_sorts() {
    let app = spawn_app().await;
    let d = desk(&app).await;
    let other = app.project(&d.owner.token, "WEB").await;
    let tok = &d.owner.token;
    let specs = [
        (
            &d.project,
            json!({"priority": "low", "labels": ["billing"], "due_at": "2031-01-01T00:00:00Z"}),
        ),
        (
            &d.project,
            json!({"priority": "urgent", "assignee_ids": [d.agent.user_id]}),
        ),
        (
            &d.project,
            json!({"priority": "high", "labels": ["billing", "vip"], "due_at": "2030-01-01T00:00:00Z"}),
        ),
        (
            &other,
            json!({"priority": "medium", "assignee_ids": [d.agent.user_id, d.owner.user_id], "requester_id": d.requester.user_id}),
        ),
    ];
    let mut made = Vec::new();
    for (project, extra) in specs {
        made.push(app.ticket(tok, project, extra).await);
    }
    // OPS-3 goes into progress.
    app.call_if(
        Method::PATCH,
        &format!("/api/v1/tickets/{}", id(&made[2])),
        tok,
        1,
        Some(json!({"status": "in_progress"})),
    )
    .await
    .assert_ok(200);

    let q = |query: &'static str| all_keys(&app, tok, query);
    assert_eq!(
        q("/api/v1/tickets").await,
        ["WEB-1", "OPS-3", "OPS-2", "OPS-1"]
    );
    assert_eq!(
        q("/api/v1/tickets?sort=created_at").await,
        ["OPS-1", "OPS-2", "OPS-3", "WEB-1"]
    );
    assert_eq!(
        q("/api/v1/tickets?sort=-priority").await,
        ["OPS-2", "OPS-3", "WEB-1", "OPS-1"]
    );
    assert_eq!(
        q("/api/v1/tickets?sort=due_at").await,
        ["OPS-3", "OPS-1", "OPS-2", "WEB-1"]
    );
    assert_eq!(
        q("/api/v1/tickets?sort=-due_at&limit=1").await,
        ["OPS-1", "OPS-3", "WEB-1", "OPS-2"]
    );
    assert_eq!(
        q("/api/v1/tickets?sort=-updated_at&limit=1").await[0],
        "OPS-3"
    );
    assert_eq!(q("/api/v1/tickets?status=in_progress").await, ["OPS-3"]);
    assert_eq!(
        q("/api/v1/tickets?status=open,in_progress&priority=low,high").await,
        ["OPS-3", "OPS-1"]
    );
    assert_eq!(q("/api/v1/tickets?label=billing").await, ["OPS-3", "OPS-1"]);
    assert_eq!(
        q("/api/v1/tickets?label=vip&priority=high").await,
        ["OPS-3"]
    );
    assert_eq!(
        q("/api/v1/tickets?due_before=2030-06-01T00:00:00Z").await,
        ["OPS-3"]
    );
    let project_filter = format!("/api/v1/tickets?project_id={other}");
    assert_eq!(all_keys(&app, tok, &project_filter).await, ["WEB-1"]);
    let assignee = format!("/api/v1/tickets?assignee={}", d.agent.user_id);
    assert_eq!(all_keys(&app, tok, &assignee).await, ["WEB-1", "OPS-2"]);
    assert_eq!(q("/api/v1/tickets?assignee=me").await, ["WEB-1"]);
    let requester = format!("/api/v1/tickets?requester={}", d.requester.user_id);
    assert_eq!(all_keys(&app, tok, &requester).await, ["WEB-1"]);
    assert_eq!(
        all_keys(&app, &d.agent.token, "/api/v1/me/tickets").await,
        ["WEB-1", "OPS-2"]
    );
    let since = made[3]["updated_at"].as_str().unwrap().replace('+', "%2B");
    let updated = all_keys(&app, tok, &format!("/api/v1/tickets?updated_since={since}")).await;
    assert_eq!(updated, ["WEB-1", "OPS-3"]);

    // Bad filters are 400 (unparseable) or 422 (parseable but wrong), never ignored.
    for (query, status) in [
        ("status=done", 422),
        ("priority=meh", 422),
        ("sort=title", 422),
        ("assignee=someone", 422),
        ("limit=0", 422),
        ("limit=many", 400),
        ("cursor=abc", 422),
        ("due_before=tomorrow", 400),
        ("project_id=42", 400),
    ] {
        let res = app.get(&format!("/api/v1/tickets?{query}"), tok).await;
        assert_eq!(res.status.as_u16(), status, "{query}: {}", res.body);
    }
    app.shutdown().await;
}

#[tokio::test]
async fn pages_stay_stable_while_tickets_are_added() {
    let app = spawn_app().await;
    let d = desk(&app).await;
    let tok = &d.agent.token;
    for _ in 0..7 {
        app.ticket(tok, &d.project, json!({})).await;
    }
    let mut seen = Vec::new();
    let mut url = "/api/v1/tickets?limit=3".to_owned();
    loop {
        let page = app.get(&url, tok).await;
        let page = page.assert_ok(200).clone();
        seen.extend(pluck(&page["items"], "key"));
        // New tickets arrive between pages: they sort before the cursor, so they neither
        // shift later pages nor repeat earlier ones.
        app.ticket(tok, &d.project, json!({})).await;
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/tickets?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "OPS-7", "OPS-6", "OPS-5", "OPS-4", "OPS-3", "OPS-2", "OPS-1"
        ]
    );
    app.shutdown().await;
}

#[tokio::test]
async fn moving_a_ticket_to_another_project_gives_it_that_projects_next_key() {
    let app = spawn_app().await;
    let d = desk(&app).await;
    let web = app.project(&d.owner.token, "WEB").await;
    app.ticket(&d.owner.token, &web, json!({})).await;
    let t = app.ticket(&d.owner.token, &d.project, json!({})).await;
    let res = app
        .call_if(
            Method::PATCH,
            "/api/v1/tickets/OPS-1",
            &d.owner.token,
            1,
            Some(json!({"project_id": web})),
        )
        .await;
    assert_eq!(res.assert_ok(200)["key"], "WEB-2");
    app.get("/api/v1/tickets/WEB-2", &d.owner.token)
        .await
        .assert_ok(200);
    app.get("/api/v1/tickets/OPS-1", &d.owner.token)
        .await
        .assert_problem(404, "ticket_not_found");
    assert_eq!(t["key"], "OPS-1");
    app.shutdown().await;
}
