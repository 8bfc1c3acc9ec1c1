//! The cross-tenant suite: every endpoint that takes an id answers another tenant's id with 404
//! (never 403), and no list shows another tenant's data. New endpoints join `ID_ENDPOINTS`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// Endpoints that take an id: method, path (placeholders name the *other* tenant's `{user}`,
/// `{session}`,
/// `{project}`, `{ticket}`, `{ticket_key}`, `{comment}`, `{notification}`, `{event}`), body,
/// and the 404 code expected.
/// Conditional requests carry `If-Match: "1"`, which would be current for the target.
const ID_ENDPOINTS: &[(&str, &str, Option<&str>, &str)] = &[
    ("GET", "/api/v1/users/{user}", None, "user_not_found"),
    (
        "PATCH",
        "/api/v1/users/{user}",
        Some(r#"{"role": "viewer"}"#),
        "user_not_found",
    ),
    (
        "PATCH",
        "/api/v1/users/{user}",
        Some(r#"{"active": false}"#),
        "user_not_found",
    ),
    ("DELETE", "/api/v1/users/{user}", None, "user_not_found"),
    (
        "DELETE",
        "/api/v1/auth/sessions/{session}",
        None,
        "session_not_found",
    ),
    (
        "DELETE",
        "/api/v1/users/{user}?erase=true",
        None,
        "user_not_found",
    ),
    (
        "GET",
        "/api/v1/projects/{project}",
        None,
        "project_not_found",
    ),
    (
        "PATCH",
        "/api/v1/projects/{project}",
        Some(r#"{"name": "Taken"}"#),
        "project_not_found",
    ),
    (
        "DELETE",
        "/api/v1/projects/{project}",
        None,
        "project_not_found",
    ),
    (
        "GET",
        "/api/v1/projects/{project}/activity",
        None,
        "project_not_found",
    ),
    ("GET", "/api/v1/tickets/{ticket}", None, "ticket_not_found"),
    (
        "GET",
        "/api/v1/tickets/{ticket_key}",
        None,
        "ticket_not_found",
    ),
    (
        "PATCH",
        "/api/v1/tickets/{ticket}",
        Some(r#"{"title": "Taken"}"#),
        "ticket_not_found",
    ),
    (
        "PATCH",
        "/api/v1/tickets/{ticket_key}",
        Some(r#"{"status": "pending"}"#),
        "ticket_not_found",
    ),
    (
        "DELETE",
        "/api/v1/tickets/{ticket}",
        None,
        "ticket_not_found",
    ),
    (
        "POST",
        "/api/v1/tickets/{ticket}/assign",
        Some(r#"{"assignee_ids": []}"#),
        "ticket_not_found",
    ),
    (
        "POST",
        "/api/v1/tickets/{ticket}/complete",
        None,
        "ticket_not_found",
    ),
    (
        "POST",
        "/api/v1/tickets/{ticket}/reopen",
        None,
        "ticket_not_found",
    ),
    (
        "POST",
        "/api/v1/tickets/{ticket}/restore",
        None,
        "ticket_not_found",
    ),
    (
        "GET",
        "/api/v1/tickets/{ticket}/timeline",
        None,
        "ticket_not_found",
    ),
    (
        "GET",
        "/api/v1/tickets/{ticket}/comments",
        None,
        "ticket_not_found",
    ),
    (
        "POST",
        "/api/v1/tickets/{ticket}/comments",
        Some(r#"{"body": "hi"}"#),
        "ticket_not_found",
    ),
    (
        "PATCH",
        "/api/v1/comments/{comment}",
        Some(r#"{"body": "Taken"}"#),
        "comment_not_found",
    ),
    (
        "DELETE",
        "/api/v1/comments/{comment}",
        None,
        "comment_not_found",
    ),
    (
        "POST",
        "/api/v1/tickets/{ticket}/watch",
        None,
        "ticket_not_found",
    ),
    (
        "DELETE",
        "/api/v1/tickets/{ticket}/watch",
        None,
        "ticket_not_found",
    ),
    (
        "GET",
        "/api/v1/tickets/{ticket}/watchers",
        None,
        "ticket_not_found",
    ),
    (
        "PATCH",
        "/api/v1/views/{view}",
        Some(r#"{"name": "Taken"}"#),
        "view_not_found",
    ),
    ("DELETE", "/api/v1/views/{view}", None, "view_not_found"),
    (
        "PATCH",
        "/api/v1/notifications/{notification}/read",
        None,
        "notification_not_found",
    ),
    (
        "POST",
        "/api/v1/admin/events/{event}/retry",
        None,
        "event_not_found",
    ),
    (
        "DELETE",
        "/api/v1/invitations/{invitation}",
        None,
        "invitation_not_found",
    ),
    (
        "GET",
        "/api/v1/tickets/{ticket}/attachments",
        None,
        "ticket_not_found",
    ),
    (
        "GET",
        "/api/v1/attachments/{attachment}",
        None,
        "attachment_not_found",
    ),
    (
        "DELETE",
        "/api/v1/attachments/{attachment}",
        None,
        "attachment_not_found",
    ),
    (
        "DELETE",
        "/api/v1/api-tokens/{api_token}",
        None,
        "api_token_not_found",
    ),
    (
        "GET",
        "/api/v1/webhooks/{webhook}",
        None,
        "webhook_not_found",
    ),
    (
        "PATCH",
        "/api/v1/webhooks/{webhook}",
        Some(r#"{"active": false}"#),
        "webhook_not_found",
    ),
    (
        "DELETE",
        "/api/v1/webhooks/{webhook}",
        None,
        "webhook_not_found",
    ),
    (
        "GET",
        "/api/v1/webhooks/{webhook}/deliveries",
        None,
        "webhook_not_found",
    ),
    (
        "POST",
        "/api/v1/webhooks/{webhook}/test",
        None,
        "webhook_not_found",
    ),
    (
        "POST",
        "/api/v1/webhooks/{webhook}/rotate-secret",
        None,
        "webhook_not_found",
    ),
    (
        "POST",
        "/api/v1/webhooks/{webhook}/deliveries/{delivery}/redeliver",
        None,
        "webhook_not_found",
    ),
    (
        "GET",
        "/api/v1/calendars/{calendar}",
        None,
        "calendar_not_found",
    ),
    (
        "PATCH",
        "/api/v1/calendars/{calendar}",
        Some(r#"{"name": "taken over"}"#),
        "calendar_not_found",
    ),
    (
        "DELETE",
        "/api/v1/calendars/{calendar}",
        None,
        "calendar_not_found",
    ),
    (
        "GET",
        "/api/v1/tickets/{ticket}/mail-participants",
        None,
        "ticket_not_found",
    ),
    (
        "POST",
        "/api/v1/tickets/{ticket}/mail-participants",
        Some(r#"{"address": "held@customer.test"}"#),
        "ticket_not_found",
    ),
    (
        "DELETE",
        "/api/v1/tickets/{ticket}/mail-participants/held@customer.test",
        None,
        "ticket_not_found",
    ),
    (
        "DELETE",
        "/api/v1/mail/bounces/{bounce}",
        None,
        "bounce_not_found",
    ),
    (
        "GET",
        "/api/v1/projects/{project}/members",
        None,
        "project_not_found",
    ),
    (
        "PUT",
        "/api/v1/projects/{project}/members",
        Some(r#"{"members": []}"#),
        "project_not_found",
    ),
    (
        "GET",
        "/api/v1/tickets/{ticket}/links",
        None,
        "ticket_not_found",
    ),
    (
        "POST",
        "/api/v1/tickets/{ticket}/links",
        Some(r#"{"type": "relates", "ticket_id": "BETA-1"}"#),
        "ticket_not_found",
    ),
    (
        "DELETE",
        "/api/v1/tickets/{ticket}/links/{link}",
        None,
        "ticket_not_found",
    ),
    (
        "POST",
        "/api/v1/tickets/{ticket}/merge",
        Some(r#"{"into": "BETA-1"}"#),
        "ticket_not_found",
    ),
    (
        "POST",
        "/api/v1/tickets/{ticket_key}/unmerge",
        None,
        "ticket_not_found",
    ),
    (
        "POST",
        "/api/v1/tickets/{ticket}/split",
        Some(r#"{"comment_ids": ["00000000-0000-7000-8000-000000000000"], "title": "x"}"#),
        "ticket_not_found",
    ),
    ("GET", "/api/v1/exports/{export}", None, "export_not_found"),
    (
        "GET",
        "/api/v1/exports/{export}/download",
        None,
        "export_not_found",
    ),
];

pub(crate) struct Tenant {
    pub(crate) owner: Session,
    pub(crate) agent: Session,
    pub(crate) project: String,
    pub(crate) ticket: Value,
    pub(crate) comment: String,
    /// The agent's notification of being assigned the ticket.
    pub(crate) notification: String,
    /// An outbox event of the ticket.
    pub(crate) event: String,
    /// The owner's saved view.
    pub(crate) view: String,
    /// A pending invitation.
    pub(crate) invitation: String,
    /// A file on the ticket.
    pub(crate) attachment: String,
    /// The owner's API token.
    pub(crate) api_token: String,
    /// A webhook (to a public name nobody sends to here) and its test delivery.
    pub(crate) webhook: String,
    pub(crate) delivery: String,
    /// A business calendar an SLA policy of the tenant counts on.
    pub(crate) calendar: String,
    /// An address marked as bouncing: a delivery report came back for the invitation's mail.
    pub(crate) bounce: String,
    /// A link from the ticket to a second one, a subtask of it.
    pub(crate) link: String,
    /// The owner's export of the organisation (asked for, not built).
    pub(crate) export: String,
}

/// A tenant with a project (key from the slug), a ticket in it and a comment on the ticket.
pub(crate) async fn tenant(app: &TestApp, slug: &str) -> Tenant {
    let owner = app.signup(slug, &format!("owner@{slug}.example.com")).await;
    let agent = app
        .member(&owner, &format!("agent@{slug}.example.com"), "agent")
        .await;
    let project = app.project(&owner.token, &slug.to_uppercase()).await;
    let ticket = app
        .ticket(
            &owner.token,
            &project,
            json!({"title": format!("secret of {slug}"), "assignee_ids": [agent.user_id]}),
        )
        .await;
    let comment = app
        .post(
            &format!(
                "/api/v1/tickets/{}/comments",
                ticket["id"].as_str().unwrap()
            ),
            Some(&owner.token),
            json!({"body": format!("whisper of {slug}"), "internal": true}),
        )
        .await;
    let comment = comment.assert_ok(201)["id"].as_str().unwrap().to_owned();
    app.run_pending_events().await;
    let inbox = app.get("/api/v1/notifications", &agent.token).await;
    let notification = inbox.assert_ok(200)["items"][0]["id"]
        .as_str()
        .expect("the agent was notified")
        .to_owned();
    let events = app.get("/api/v1/admin/events", &owner.token).await;
    let event = events.assert_ok(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = app
        .post(
            "/api/v1/views",
            Some(&owner.token),
            json!({"name": format!("view of {slug}"), "query": "status=open"}),
        )
        .await;
    let view = view.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let invitation = app
        .post(
            "/api/v1/invitations",
            Some(&owner.token),
            json!({"email": format!("invitee@{slug}.example.com"), "role": "viewer"}),
        )
        .await;
    let invitation = invitation.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let attachment = upload(app, &owner.token, ticket["id"].as_str().unwrap(), slug).await;
    let attachment = attachment.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let api_token = app
        .post(
            "/api/v1/api-tokens",
            Some(&owner.token),
            json!({"name": format!("token of {slug}")}),
        )
        .await;
    let api_token = api_token.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let webhook = app
        .post(
            "/api/v1/webhooks",
            Some(&owner.token),
            json!({"url": format!("https://hooks.{slug}.example.com/"), "events": ["ticket.created"]}),
        )
        .await;
    let webhook = webhook.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let delivery = app
        .post(
            &format!("/api/v1/webhooks/{webhook}/test"),
            Some(&owner.token),
            json!(null),
        )
        .await;
    let delivery = delivery.assert_ok(202)["id"].as_str().unwrap().to_owned();
    let calendar = app
        .post(
            "/api/v1/calendars",
            Some(&owner.token),
            json!({"name": format!("hours of {slug}"), "time_zone": "Europe/Berlin",
                   "hours": {"monday": [{"start": "09:00", "end": "17:00"}]}}),
        )
        .await;
    let calendar = calendar.assert_ok(201)["id"].as_str().unwrap().to_owned();
    app.put(
        "/api/v1/sla-policies",
        &owner.token,
        json!({"policies": [{"priority": "medium", "project_id": project, "calendar_id": calendar,
                             "first_response_minutes": 60, "resolution_minutes": 600}]}),
    )
    .await
    .assert_ok(200);
    let bounce = bounce_of_invitation(app, &owner, slug).await;
    let subtask = app
        .ticket(
            &owner.token,
            &project,
            json!({"title": format!("part of {slug}"), "parent_id": ticket["id"]}),
        )
        .await;
    let link = app
        .post(
            &format!("/api/v1/tickets/{}/links", ticket["id"].as_str().unwrap()),
            Some(&owner.token),
            json!({"type": "blocks", "ticket_id": subtask["id"]}),
        )
        .await;
    let link = link.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let export = app
        .post(
            "/api/v1/exports",
            Some(&owner.token),
            json!({"scope": "organization"}),
        )
        .await;
    let export = export.assert_ok(202)["id"].as_str().unwrap().to_owned();
    Tenant {
        export,
        owner,
        agent,
        project,
        ticket,
        comment,
        notification,
        event,
        view,
        invitation,
        attachment,
        api_token,
        webhook,
        delivery,
        calendar,
        bounce,
        link,
    }
}

/// Marks the invitee of `slug` as bouncing, as Docket would: a delivery report comes back to
/// the signed return path of the invitation's mail. Returns the address.
async fn bounce_of_invitation(app: &TestApp, owner: &Session, slug: &str) -> String {
    let invitee = format!("invitee@{slug}.example.com");
    let mail_id: uuid::Uuid = app
        .scalar(&format!(
            "SELECT id FROM mails WHERE kind = 'invitation' AND to_address = '{invitee}'"
        ))
        .await;
    let org_id = uuid::Uuid::parse_str(&owner.org_id).unwrap();
    let keys = docket::mail::MailKeys::new(&docket::config::Secret::new(JWT_SECRET));
    let return_path = format!(
        "help+{}@docket.test",
        keys.return_path_reference(org_id, mail_id)
    );
    let inbound = app.get("/api/v1/mail/settings", &owner.token).await;
    let inbound = inbound.assert_ok(200)["inbound_path"]
        .as_str()
        .unwrap()
        .to_owned();
    let report = crate::mail::bounce_report(&return_path, &invitee);
    let res = crate::mail::post_mail(app, &inbound, &report).await;
    assert_eq!(res.assert_ok(202)["outcome"], "bounce", "{}", res.body);
    invitee
}

/// Uploads a file named after `slug` to `ticket`.
async fn upload(app: &TestApp, token: &str, ticket: &str, slug: &str) -> Resp {
    let part = reqwest::multipart::Part::bytes(format!("file of {slug}").into_bytes())
        .file_name(format!("{slug}.txt"));
    let form = reqwest::multipart::Form::new().part("file", part);
    let path = format!("/api/v1/tickets/{ticket}/attachments");
    app.send(
        app.request(Method::POST, &path, Some(token))
            .multipart(form),
    )
    .await
}

#[tokio::test]
async fn another_tenants_ids_are_not_found() {
    let app = spawn_app().await;
    let a = tenant(&app, "alpha").await;
    let b = tenant(&app, "beta").await;

    for (method, path, body, code) in ID_ENDPOINTS {
        for target in [&a.owner, &a.agent] {
            let session = app.get("/api/v1/auth/me", &target.token).await.body["session_id"]
                .as_str()
                .unwrap()
                .to_owned();
            let path = path
                .replace("{user}", &target.user_id)
                .replace("{session}", &session)
                .replace("{project}", &a.project)
                .replace("{ticket}", a.ticket["id"].as_str().unwrap())
                .replace("{ticket_key}", a.ticket["key"].as_str().unwrap())
                .replace("{comment}", &a.comment)
                .replace("{notification}", &a.notification)
                .replace("{event}", &a.event)
                .replace("{view}", &a.view)
                .replace("{invitation}", &a.invitation)
                .replace("{attachment}", &a.attachment)
                .replace("{api_token}", &a.api_token)
                .replace("{webhook}", &a.webhook)
                .replace("{delivery}", &a.delivery)
                .replace("{calendar}", &a.calendar)
                .replace("{bounce}", &a.bounce)
                .replace("{link}", &a.link)
                .replace("{export}", &a.export);
            let body: Option<Value> = body.map(|b| serde_json::from_str(b).unwrap());
            let mut req = app
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    &path,
                    Some(&b.owner.token),
                )
                .header("if-match", "\"1\"");
            if let Some(body) = body {
                req = req.json(&body);
            }
            let res = app.send(req).await;
            res.assert_problem(404, code);
            let text = res.body.to_string();
            assert!(
                !text.contains(&target.email) && !text.contains("alpha"),
                "{method} {path} leaked: {text}"
            );
        }
    }
    // B cannot redeliver A's delivery through a webhook of its own.
    app.post(
        &format!(
            "/api/v1/webhooks/{}/deliveries/{}/redeliver",
            b.webhook, a.delivery
        ),
        Some(&b.owner.token),
        json!(null),
    )
    .await
    .assert_problem(404, "delivery_not_found");
    // B's policies cannot count on A's calendar nor target A's project.
    for policy in [
        json!({"priority": "high", "calendar_id": a.calendar, "first_response_minutes": 5, "resolution_minutes": 50}),
        json!({"priority": "high", "project_id": a.project, "first_response_minutes": 5, "resolution_minutes": 50}),
    ] {
        app.put(
            "/api/v1/sla-policies",
            &b.owner.token,
            json!({"policies": [policy]}),
        )
        .await
        .assert_problem(422, "validation_failed");
    }
    // Files: B can neither add to A's ticket nor put A's file on a comment of its own.
    upload(
        &app,
        &b.owner.token,
        a.ticket["id"].as_str().unwrap(),
        "beta",
    )
    .await
    .assert_problem(404, "ticket_not_found");
    let res = app
        .post(
            &format!(
                "/api/v1/tickets/{}/comments",
                b.ticket["id"].as_str().unwrap()
            ),
            Some(&b.owner.token),
            json!({"body": "mine", "attachment_ids": [a.attachment]}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    let a_files = format!(
        "/api/v1/tickets/{}/attachments",
        a.ticket["id"].as_str().unwrap()
    );
    let a_files = app.get(&a_files, &a.owner.token).await;
    assert_eq!(
        pluck(&a_files.assert_ok(200)["items"], "filename"),
        ["alpha.txt"]
    );
    assert_eq!(a_files.body["items"][0]["comment_id"], Value::Null);
    // Tenant A's ticket and comment are untouched by all of that.
    let ticket = app
        .get(
            &format!("/api/v1/tickets/{}", a.ticket["id"].as_str().unwrap()),
            &a.owner.token,
        )
        .await;
    // (Its own comment touched `updated_at`; every field B could have changed is as created.)
    for field in [
        "title",
        "status",
        "version",
        "assignee_ids",
        "deleted_at",
        "key",
    ] {
        assert_eq!(ticket.assert_ok(200)[field], a.ticket[field], "{field}");
    }
    let comments = app
        .get(
            &format!(
                "/api/v1/tickets/{}/comments",
                a.ticket["id"].as_str().unwrap()
            ),
            &a.owner.token,
        )
        .await;
    assert_eq!(
        comments.assert_ok(200)["items"][0]["body"],
        "whisper of alpha"
    );
    // A's notification is still unread, and B watches nothing of A's.
    let unread = app
        .get("/api/v1/notifications?unread=true", &a.agent.token)
        .await;
    assert_eq!(
        unread.assert_ok(200)["items"][0]["id"],
        a.notification.as_str()
    );
    assert_eq!(app.count("SELECT count(*) FROM ticket_watchers").await, 0);
    // B cannot file into A's project, nor assign A's people or name A's people as requesters.
    for body in [
        json!({"project_id": a.project, "title": "x"}),
        json!({"project_id": b.project, "title": "x", "assignee_ids": [a.agent.user_id]}),
        json!({"project_id": b.project, "title": "x", "requester_id": a.agent.user_id}),
    ] {
        app.post("/api/v1/tickets", Some(&b.owner.token), body)
            .await
            .assert_problem(422, "validation_failed");
    }
    // B cannot link, merge or parent its tickets with A's, nor change A's in bulk, nor find
    // A's subtasks.
    let (mine, theirs) = (
        b.ticket["id"].as_str().unwrap(),
        a.ticket["id"].as_str().unwrap(),
    );
    for (path, body) in [
        ("links", json!({"type": "blocks", "ticket_id": theirs})),
        (
            "links",
            json!({"type": "relates", "ticket_id": a.ticket["key"]}),
        ),
        ("merge", json!({"into": theirs})),
    ] {
        app.post(
            &format!("/api/v1/tickets/{mine}/{path}"),
            Some(&b.owner.token),
            body,
        )
        .await
        .assert_problem(422, "validation_failed");
    }
    app.post(
        "/api/v1/tickets",
        Some(&b.owner.token),
        json!({"project_id": b.project, "title": "x", "parent_id": theirs}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let bulk = app
        .post(
            "/api/v1/tickets/bulk",
            Some(&b.owner.token),
            json!({"ids": [theirs, a.ticket["key"]], "set": {"priority": "low"}}),
        )
        .await;
    let results = bulk.assert_ok(200)["results"].as_array().unwrap().clone();
    assert!(results.iter().all(|r| r["status"] == 404), "{results:?}");
    assert!(!bulk.body.to_string().contains("secret of alpha"));
    let subtasks = app
        .get(
            &format!("/api/v1/tickets?parent_id={theirs}"),
            &b.owner.token,
        )
        .await;
    assert_eq!(subtasks.assert_ok(200)["items"], json!([]));
    let links = app
        .get(&format!("/api/v1/tickets/{theirs}/links"), &a.owner.token)
        .await;
    assert_eq!(pluck(&links.assert_ok(200)["items"], "type"), ["blocks"]);
    // A's bounce mark is still there.
    let marks = app.get("/api/v1/mail/bounces", &a.owner.token).await;
    assert_eq!(
        pluck(&marks.assert_ok(200)["items"], "address"),
        [a.bounce.as_str()]
    );
    // Tenant A is unchanged by all of that.
    let me = app.get("/api/v1/auth/me", &a.agent.token).await;
    assert_eq!(me.assert_ok(200)["role"], "agent");
    app.get(
        &format!("/api/v1/users/{}", a.owner.user_id),
        &a.owner.token,
    )
    .await
    .assert_ok(200);
    app.shutdown().await;
}

#[tokio::test]
async fn lists_and_logs_show_only_the_callers_tenant() {
    let app = spawn_app().await;
    let a = tenant(&app, "alpha").await;
    let b = tenant(&app, "beta").await;
    // Generate audit entries in A.
    app.patch(
        &format!("/api/v1/users/{}", a.agent.user_id),
        &a.owner.token,
        json!({"role": "manager"}),
    )
    .await
    .assert_ok(200);

    for (viewer, other) in [(&a, &b), (&b, &a)] {
        let people = app.get("/api/v1/users", &viewer.owner.token).await;
        let text = people.assert_ok(200).to_string();
        assert!(
            !text.contains(&other.owner.email) && !text.contains(&other.agent.user_id),
            "{text}"
        );
        let log = app.get("/api/v1/audit-log", &viewer.owner.token).await;
        let text = log.assert_ok(200).to_string();
        assert!(
            !text.contains(&other.owner.user_id) && !text.contains(&other.agent.user_id),
            "{text}"
        );
        let other_ticket = other.ticket["id"].as_str().unwrap();
        for list in [
            "/api/v1/projects?include_archived=true".to_owned(),
            "/api/v1/tickets".to_owned(),
            format!("/api/v1/tickets?project_id={}", other.project),
            format!("/api/v1/tickets?assignee={}", other.agent.user_id),
            "/api/v1/me/tickets".to_owned(),
            format!("/api/v1/projects/{}/activity", viewer.project),
            "/api/v1/notifications".to_owned(),
            "/api/v1/admin/events".to_owned(),
            "/api/v1/views".to_owned(),
            "/api/v1/invitations".to_owned(),
            "/api/v1/mail/log".to_owned(),
            "/api/v1/mail/ingest-log".to_owned(),
            "/api/v1/mail/settings".to_owned(),
            "/api/v1/me/notification-preferences".to_owned(),
            "/api/v1/webhooks".to_owned(),
            format!("/api/v1/webhooks/{}/deliveries", viewer.webhook),
            "/api/v1/calendars".to_owned(),
            "/api/v1/reports/summary".to_owned(),
            "/api/v1/reports/sla".to_owned(),
            "/api/v1/search?q=secret%20or%20whisper%20or%20alpha%20or%20beta".to_owned(),
            "/api/v1/sla-policies".to_owned(),
            "/api/v1/mail/bounces".to_owned(),
            format!(
                "/api/v1/tickets/{}/mail-participants",
                viewer.ticket["id"].as_str().unwrap()
            ),
        ] {
            let res = app.get(&list, &viewer.owner.token).await;
            let text = res.assert_ok(200).to_string();
            assert!(
                !text.contains(other_ticket)
                    && !text.contains(&other.project)
                    && !text.contains(&other.owner.org_id)
                    && !text.contains(&other.view)
                    && !text.contains(&other.invitation)
                    && !text.contains(&other.webhook)
                    && !text.contains(&other.delivery)
                    && !text.contains(&other.calendar)
                    && !text.contains(&other.bounce)
                    && !text.contains(&format!(
                        "invitee@{}",
                        other.owner.email.split('@').nth(1).unwrap()
                    )),
                "{list}: {text}"
            );
        }
        let org = app.get("/api/v1/org", &viewer.owner.token).await;
        assert_eq!(org.assert_ok(200)["id"], viewer.owner.org_id.as_str());
        let me = app.get("/api/v1/auth/me", &viewer.owner.token).await;
        assert!(!me.assert_ok(200).to_string().contains(&other.owner.org_id));
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_refresh_token_cannot_be_replayed_under_another_tenant() {
    let app = spawn_app().await;
    let a = tenant(&app, "alpha").await;
    let b = tenant(&app, "beta").await;
    // Re-label A's refresh token with B's organisation: its hash is not in B's wall.
    let secret = a.owner.refresh.rsplit('_').next().unwrap();
    let relabelled = format!("rt_{}_{}", b.owner.org_id.replace('-', ""), secret);
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": relabelled}),
    )
    .await
    .assert_problem(401, "invalid_token");
    // And B cannot end A's session by naming A's refresh token at logout.
    let res = app
        .post(
            "/api/v1/auth/logout",
            Some(&b.agent.token),
            json!({"refresh_token": a.owner.refresh}),
        )
        .await;
    assert_eq!(res.status, 204);
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": a.owner.refresh}),
    )
    .await
    .assert_ok(200);
    app.shutdown().await;
}

/// Mail keeps to its tenant: an organisation's inbound address writes only into its own
/// tickets, whatever references, reply addresses or subject tags a message carries; an
/// invitation token opens only its own organisation; queued mail goes only to the tenant's
/// own people.
#[tokio::test]
async fn mail_stays_within_its_tenant() {
    let app = spawn_app().await;
    let a = tenant(&app, "alpha").await;
    let b = tenant(&app, "beta").await;
    let inbound = |t: &Tenant| {
        let token = t.owner.token.clone();
        let app = &app;
        async move {
            app.get("/api/v1/mail/settings", &token)
                .await
                .assert_ok(200)["inbound_path"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (a_inbound, b_inbound) = (inbound(&a).await, inbound(&b).await);
    let post = |path: String, raw: String| {
        let app = &app;
        async move {
            let req = app
                .client
                .post(app.url(&path))
                .header("content-type", "message/rfc822")
                .body(raw.replace('\n', "\r\n"));
            app.send(req).await
        }
    };
    // B's customer writes in; B answers, so B's ticket has Docket's reference and a thread.
    let first = "From: carol@customer.test\nSubject: B's problem\nMessage-ID: <b1@customer.test>\n\nHelp B.\n";
    let res = post(b_inbound.clone(), first.into()).await;
    let b_ticket = res.assert_ok(202)["ticket_id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/tickets/{b_ticket}/comments"),
        Some(&b.owner.token),
        json!({"body": "B answers"}),
    )
    .await
    .assert_ok(201);
    app.run_pending_events().await;
    let b_message_id: String = app
        .scalar("SELECT message_id FROM mail_messages WHERE direction = 'outbound'")
        .await;
    let b_key = app
        .get(&format!("/api/v1/tickets/{b_ticket}"), &b.owner.token)
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let reference = b_message_id.split('.').nth(1).unwrap().to_owned();
    // The same customer writes to A, naming B's ticket every way there is.
    let crossing = [
        format!(
            "From: carol@customer.test\nSubject: Re: x\nIn-Reply-To: <{b_message_id}>\n\nInto B?\n"
        ),
        "From: carol@customer.test\nSubject: Re: x\nReferences: <b1@customer.test>\n\nInto B?\n"
            .to_owned(),
        format!(
            "From: carol@customer.test\nTo: help+{reference}@docket.test\nSubject: x\n\nInto B?\n"
        ),
        format!("From: carol@customer.test\nSubject: [{b_key}] x\n\nInto B?\n"),
    ];
    for raw in crossing {
        let res = post(a_inbound.clone(), raw.clone()).await;
        // A new ticket of A's, or (once the tag names A's own MAIL-1) a comment on it.
        res.assert_ok(202);
        assert_ne!(
            res.body["ticket_id"],
            b_ticket.as_str(),
            "{raw}: {}",
            res.body
        );
        let ticket = app
            .get(
                &format!(
                    "/api/v1/tickets/{}",
                    res.body["ticket_id"].as_str().unwrap()
                ),
                &a.owner.token,
            )
            .await;
        ticket.assert_ok(200);
    }
    let b_comments = app
        .get(
            &format!("/api/v1/tickets/{b_ticket}/comments"),
            &b.owner.token,
        )
        .await;
    assert_eq!(
        b_comments.assert_ok(200)["items"].as_array().unwrap().len(),
        1
    );
    // A's token relabelled with B's organisation opens nothing.
    let b_org = b.owner.org_id.replace('-', "");
    let a_org = a.owner.org_id.replace('-', "");
    post(a_inbound.replace(&a_org, &b_org), first.into())
        .await
        .assert_problem(404, "inbound_address_not_found");
    let a_invite = app.invitation_token("invitee@alpha.example.com").await;
    app.post(
        &format!(
            "/api/v1/invitations/{}/accept",
            a_invite.replace(&a_org, &b_org)
        ),
        None,
        json!({"password": PASSWORD}),
    )
    .await
    .assert_problem(404, "invitation_not_found");
    // Every queued mail of a tenant goes to that tenant's own people or its customers.
    // (The organisation is named by its slug: ids are not text on SQLite.)
    for (own, other) in [("alpha", "beta"), ("beta", "alpha")] {
        let mails = format!(
            "SELECT COUNT(*) FROM mails WHERE org_id = (SELECT id FROM organizations WHERE slug = '{own}')"
        );
        assert!(app.count(&mails).await > 0, "{own} queued mail");
        let stray = app
            .count(&format!("{mails} AND to_address LIKE '%{other}%'"))
            .await;
        assert_eq!(stray, 0);
    }
    app.shutdown().await;
}

/// Billing: Stripe's events reach only the organisation of their customer (metadata naming
/// another cannot move them), its mails go to its own owners, and one tenant's plan, usage and
/// billing account are never another's.
#[tokio::test]
async fn billing_stays_within_its_tenant() {
    use crate::billing::{billed, deliver, event, plan_of, subscription};
    let (app, _dir) = billed("http://127.0.0.1:9", 7).await;
    let acme = app.signup("acme", "owner@acme.example").await;
    let umbrella = app.signup("umbrella", "owner@umbrella.example").await;
    app.project(&acme.token, "OPS").await;
    let t = chrono::Utc::now().timestamp() - 60;
    let acme_sub = subscription("sub_a", &acme.org_id, "cus_acme", "plan_team", "active", t);
    deliver(
        &app,
        &event("evt_a", "customer.subscription.created", t, acme_sub),
    )
    .await
    .assert_ok(200);
    // Umbrella's subscription metadata names Acme, but it is Acme's customer that decides:
    // a subscription of another customer is ignored.
    let forged = subscription(
        "sub_u",
        &acme.org_id,
        "cus_umbrella",
        "plan_business",
        "active",
        t + 1,
    );
    let res = deliver(
        &app,
        &event("evt_u", "customer.subscription.created", t + 1, forged),
    )
    .await;
    assert_eq!(res.assert_ok(200)["outcome"], "ignored");
    // Acme's customer's failed invoice touches Acme alone, and mails Acme's owner only.
    let invoice =
        json!({"id": "in_1", "object": "invoice", "customer": "cus_acme", "subscription": "sub_a"});
    deliver(
        &app,
        &event("evt_i", "invoice.payment_failed", t + 2, invoice),
    )
    .await
    .assert_ok(200);
    let mailed: String = app
        .scalar("SELECT to_address FROM mails WHERE kind = 'payment_failed'")
        .await;
    assert_eq!(mailed, "owner@acme.example");
    assert_eq!(
        app.count("SELECT count(*) FROM mails WHERE kind = 'payment_failed'")
            .await,
        1
    );
    let acme_view = plan_of(&app, &acme.token).await;
    let umbrella_view = plan_of(&app, &umbrella.token).await;
    assert_eq!(acme_view["plan"]["key"], "team");
    assert!(acme_view["billing"]["past_due_since"].is_string());
    // Each starts with one project; Acme made a second.
    assert_eq!(acme_view["usage"]["projects"], 2);
    assert_eq!(umbrella_view["plan"]["key"], "free");
    assert!(umbrella_view["billing"]["past_due_since"].is_null());
    assert_eq!(umbrella_view["billing"]["has_account"], false);
    assert_eq!(umbrella_view["usage"]["projects"], 1);
    // Umbrella's owner opens no portal on Acme's account.
    app.post("/api/v1/billing/portal", Some(&umbrella.token), json!({}))
        .await
        .assert_problem(409, "no_billing_account");
}
