//! Structure in projects and tickets: a project's plan and progress, private projects and
//! project roles (every org role × project role × visibility × action), subtasks, links, merge
//! and its undo, split, and bulk changes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

async fn comment(app: &TestApp, token: &str, ticket: &str, body: &str) -> String {
    app.post(
        &format!("/api/v1/tickets/{ticket}/comments"),
        Some(token),
        json!({"body": body}),
    )
    .await
    .assert_ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A ticket change whatever its version (`If-Match: *`).
async fn edit(app: &TestApp, token: &str, ticket: &str, body: Value) -> Resp {
    app.send(
        app.request(
            Method::PATCH,
            &format!("/api/v1/tickets/{ticket}"),
            Some(token),
        )
        .header("if-match", "*")
        .json(&body),
    )
    .await
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

#[tokio::test]
async fn a_new_organisation_starts_with_a_first_project_it_can_rename() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let projects = app.get("/api/v1/projects", &owner.token).await;
    let items = projects.assert_ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:?}");
    // `signup` names the organisation "Org acme".
    assert_eq!(items[0]["key"], "ORG");
    assert_eq!(items[0]["name"], "Org acme");
    assert_eq!(items[0]["status"], "active");
    assert_eq!(items[0]["visibility"], "org");
    let first = items[0]["id"].as_str().unwrap();
    let renamed = app
        .patch(
            &format!("/api/v1/projects/{first}"),
            &owner.token,
            json!({"name": "Support"}),
        )
        .await;
    assert_eq!(renamed.assert_ok(200)["name"], "Support");
    // A ticket can be filed into it at once.
    app.ticket(&owner.token, first, json!({})).await;
    app.shutdown().await;
}

#[tokio::test]
async fn projects_have_a_plan_and_count_their_progress() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "agent@example.com", "agent").await;
    let customer = app.member(&owner, "c@example.com", "requester").await;
    let p = app.project(&owner.token, "LAUNCH").await;
    let path = format!("/api/v1/projects/{p}");

    let planned = app
        .patch(
            &path,
            &owner.token,
            json!({"status": "planned", "start_date": "2027-01-04", "target_date": "2027-03-31",
                   "lead_id": agent.user_id}),
        )
        .await;
    let body = planned.assert_ok(200);
    assert_eq!(body["status"], "planned");
    assert_eq!(body["start_date"], "2027-01-04");
    assert_eq!(body["target_date"], "2027-03-31");
    assert_eq!(body["lead_id"], agent.user_id.as_str());

    // A target before the start, a customer as lead, a status that does not exist: 422 naming
    // the field, and nothing changed.
    let res = app
        .patch(&path, &owner.token, json!({"target_date": "2026-12-31"}))
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "target_date");
    let res = app
        .patch(&path, &owner.token, json!({"lead_id": customer.user_id}))
        .await;
    assert_eq!(res.body["errors"][0]["field"], "lead_id");
    app.patch(&path, &owner.token, json!({"status": "shipped"}))
        .await
        .assert_problem(422, "validation_failed");
    for bad in ["2027-02-30", "+10000-01-01", "0000-12-31", "tomorrow"] {
        app.patch(&path, &owner.token, json!({"start_date": bad}))
            .await
            .assert_problem(422, "validation_failed");
    }
    let now = app.get(&path, &owner.token).await;
    assert_eq!(now.body["target_date"], "2027-03-31");
    assert_eq!(now.body["lead_id"], agent.user_id.as_str());

    // Progress: resolved, closed and cancelled are done; deleted tickets do not count.
    let mut tickets = Vec::new();
    for _ in 0..5 {
        tickets.push(app.ticket(&owner.token, &p, json!({})).await);
    }
    for (t, status) in [(&tickets[0], "resolved"), (&tickets[1], "cancelled")] {
        edit(&app, &owner.token, id(t), json!({"status": status}))
            .await
            .assert_ok(200);
    }
    app.send(
        app.request(
            Method::DELETE,
            &format!("/api/v1/tickets/{}", id(&tickets[2])),
            Some(&owner.token),
        )
        .header("if-match", "*"),
    )
    .await
    .assert_ok(204);
    let got = app.get(&path, &owner.token).await;
    assert_eq!(got.body["progress"], json!({"total": 4, "done": 2}));

    // The list shows the same, and filters by status.
    let planned = app
        .get("/api/v1/projects?status=planned", &owner.token)
        .await;
    let items = planned.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["progress"], json!({"total": 4, "done": 2}));
    let active = app
        .get("/api/v1/projects?status=active", &owner.token)
        .await;
    assert!(
        active.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["key"] != "LAUNCH")
    );
    app.get("/api/v1/projects?status=sideways", &owner.token)
        .await
        .assert_problem(400, "invalid_query");
    // The plan's changes are on the project's activity.
    let activity = app.get(&format!("{path}/activity"), &owner.token).await;
    assert!(
        activity.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["changes"]["status"]["to"] == "planned")
    );
    app.shutdown().await;
}

/// One person of each org role, and a private project with a ticket, a comment and an event.
struct Walled {
    owner: Session,
    admin: Session,
    manager: Session,
    agent: Session,
    viewer: Session,
    customer: Session,
    project: String,
    ticket: Value,
}

async fn walled(app: &TestApp) -> Walled {
    let owner = app.signup("acme", "o@example.com").await;
    let admin = app.member(&owner, "admin@example.com", "admin").await;
    let manager = app.member(&owner, "manager@example.com", "manager").await;
    let agent = app.member(&owner, "agent@example.com", "agent").await;
    let viewer = app.member(&owner, "viewer@example.com", "viewer").await;
    let customer = app.member(&owner, "c@example.com", "requester").await;
    let project = app.project(&owner.token, "HR").await;
    app.patch(
        &format!("/api/v1/projects/{project}"),
        &owner.token,
        json!({"visibility": "members"}),
    )
    .await
    .assert_ok(200);
    let ticket = app
        .ticket(
            &owner.token,
            &project,
            json!({"title": "Salary review for Bob", "requester_id": customer.user_id}),
        )
        .await;
    comment(app, &owner.token, id(&ticket), "confidential numbers").await;
    Walled {
        owner,
        admin,
        manager,
        agent,
        viewer,
        customer,
        project,
        ticket,
    }
}

#[tokio::test]
async fn a_private_project_is_not_there_for_staff_who_are_not_its_members() {
    let app = spawn_app_with_worker().await;
    let w = walled(&app).await;
    let t = id(&w.ticket).to_owned();
    let key = w.ticket["key"].as_str().unwrap().to_owned();

    for who in [&w.manager, &w.agent, &w.viewer] {
        let token = &who.token;
        app.get(&format!("/api/v1/projects/{}", w.project), token)
            .await
            .assert_problem(404, "project_not_found");
        app.get(&format!("/api/v1/projects/{}/activity", w.project), token)
            .await
            .assert_problem(404, "project_not_found");
        app.get(&format!("/api/v1/projects/{}/members", w.project), token)
            .await
            .assert_problem(404, "project_not_found");
        for path in [
            format!("/api/v1/tickets/{t}"),
            format!("/api/v1/tickets/{key}"),
            format!("/api/v1/tickets/{t}/comments"),
            format!("/api/v1/tickets/{t}/timeline"),
            format!("/api/v1/tickets/{t}/links"),
        ] {
            app.get(&path, token)
                .await
                .assert_problem(404, "ticket_not_found");
        }
        let projects = app.all_items("/api/v1/projects", token).await;
        assert!(projects.iter().all(|p| p["id"] != w.project.as_str()));
        let tickets = app.all_items("/api/v1/tickets", token).await;
        assert!(tickets.iter().all(|x| x["id"] != t.as_str()));
        let found = app.get("/api/v1/search?q=salary", token).await;
        assert_eq!(found.assert_ok(200)["items"], json!([]));
        let found = app.get("/api/v1/search?q=confidential", token).await;
        assert_eq!(found.assert_ok(200)["items"], json!([]));
        // Filing into it, or moving a ticket there, names no such project.
        let res = app
            .post(
                "/api/v1/tickets",
                Some(token),
                json!({"project_id": w.project, "title": "Let me in"}),
            )
            .await;
        if who.email != "viewer@example.com" {
            res.assert_problem(422, "validation_failed");
            assert_eq!(res.body["errors"][0]["field"], "project_id");
        }
    }
    // Reports (managers) leave it out.
    let summary = app.get("/api/v1/reports/summary", &w.manager.token).await;
    assert_eq!(summary.assert_ok(200)["open"], 0, "{}", summary.body);
    let owners_summary = app.get("/api/v1/reports/summary", &w.owner.token).await;
    assert_eq!(owners_summary.body["open"], 1);

    // Owners and admins see it all.
    for who in [&w.owner, &w.admin] {
        app.get(&format!("/api/v1/tickets/{t}"), &who.token)
            .await
            .assert_ok(200);
    }
    // The requester still sees their own ticket, never the project.
    app.get(&format!("/api/v1/tickets/{t}"), &w.customer.token)
        .await
        .assert_ok(200);
    app.get(
        &format!("/api/v1/projects/{}", w.project),
        &w.customer.token,
    )
    .await
    .assert_problem(404, "project_not_found");

    // Made a member, the agent sees it; the stream and notifications reach members only.
    app.put(
        &format!("/api/v1/projects/{}/members", w.project),
        &w.owner.token,
        json!({"members": [{"user_id": w.agent.user_id, "role": "member"}]}),
    )
    .await
    .assert_ok(200);
    app.get(&format!("/api/v1/tickets/{t}"), &w.agent.token)
        .await
        .assert_ok(200);
    app.get(&format!("/api/v1/tickets/{t}"), &w.manager.token)
        .await
        .assert_problem(404, "ticket_not_found");
    let members = app
        .get(
            &format!("/api/v1/projects/{}/members", w.project),
            &w.agent.token,
        )
        .await;
    assert_eq!(
        members.body["items"],
        json!([{"user_id": w.agent.user_id, "role": "member"}])
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_private_projects_stream_entries_reach_only_who_may_see_it() {
    let app = spawn_app_with_worker().await;
    let w = walled(&app).await;
    let t = id(&w.ticket).to_owned();
    let mut manager = SseClient::connect(&app.base, &w.manager.token, None).await;
    let mut admin = SseClient::connect(&app.base, &w.admin.token, None).await;
    // A change on the private ticket and a ticket in an open project: the admin's stream hears
    // of both, the manager's (not a member) of the open one only. (Notifications:
    // `only_members_are_assigned_or_told_of_a_private_projects_tickets`.)
    edit(
        &app,
        &w.owner.token,
        &t,
        json!({"title": "Salary review (round 2)"}),
    )
    .await
    .assert_ok(200);
    let open = app
        .ticket(
            &w.owner.token,
            &app_first_project(&app, &w.owner).await,
            json!({}),
        )
        .await;
    let seen_by_admin = admin.drain(std::time::Duration::from_secs(2)).await;
    assert!(
        seen_by_admin
            .iter()
            .any(|e| e.data["ticket_id"] == t.as_str())
    );
    let seen_by_manager = manager.drain(std::time::Duration::from_millis(500)).await;
    assert!(
        seen_by_manager
            .iter()
            .all(|e| e.data["ticket_id"] != t.as_str()),
        "{seen_by_manager:?}"
    );
    assert!(
        seen_by_manager
            .iter()
            .any(|e| e.data["ticket_id"] == id(&open))
    );
    app.shutdown().await;
}

async fn app_first_project(app: &TestApp, owner: &Session) -> String {
    let items = app.all_items("/api/v1/projects", &owner.token).await;
    items
        .iter()
        .find(|p| p["key"] == "ORG")
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .expect("the first project")
}

/// Every staff org role × project role × visibility × action, over HTTP, against the rule:
/// owners and admins do what their role allows; in a private project a non-member sees
/// nothing; a project viewer only reads; a project admin manages the project; otherwise the
/// org role decides.
#[tokio::test]
async fn project_access_is_the_rule_for_every_role_and_visibility() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let mut people = Vec::new();
    for role in ["admin", "manager", "agent", "viewer"] {
        people.push((
            role,
            app.member(&owner, &format!("{role}@example.com"), role)
                .await,
        ));
    }
    let rank = |r: &str| {
        ["viewer", "agent", "manager", "admin", "owner"]
            .iter()
            .position(|x| *x == r)
            .unwrap()
    };
    let mut cases = 0;
    for (n, visibility) in ["org", "members"].into_iter().enumerate() {
        for (m, project_role) in [None, Some("admin"), Some("member"), Some("viewer")]
            .into_iter()
            .enumerate()
        {
            let key = format!("P{}{}", ["A", "B"][n], ["N", "A", "M", "V"][m]);
            let p = app.project(&owner.token, &key).await;
            let members: Vec<Value> = project_role
                .map(|role| {
                    people
                        .iter()
                        .map(|(_, s)| json!({"user_id": s.user_id, "role": role}))
                        .collect()
                })
                .unwrap_or_default();
            app.put(
                &format!("/api/v1/projects/{p}/members"),
                &owner.token,
                json!({"members": members}),
            )
            .await
            .assert_ok(200);
            app.patch(
                &format!("/api/v1/projects/{p}"),
                &owner.token,
                json!({"visibility": visibility}),
            )
            .await
            .assert_ok(200);
            for (role, who) in &people {
                let t = app.ticket(&owner.token, &p, json!({})).await;
                let walled = *role != "admin";
                let hidden = walled && visibility == "members" && project_role.is_none();
                let read_only = walled && project_role == Some("viewer");
                // The org matrix first (it says nothing of the ticket), then the project.
                let expect = |allowed_by_role: bool, reads: bool| -> u16 {
                    if !allowed_by_role {
                        403
                    } else if hidden {
                        404
                    } else if read_only && !reads {
                        403
                    } else {
                        0
                    }
                };
                let checks = [
                    (
                        "read ticket",
                        Method::GET,
                        format!("/api/v1/tickets/{}", id(&t)),
                        None,
                        expect(true, true),
                        200,
                    ),
                    (
                        "update ticket",
                        Method::PATCH,
                        format!("/api/v1/tickets/{}", id(&t)),
                        Some(json!({"priority": "high"})),
                        expect(rank(role) >= 1, false),
                        200,
                    ),
                    (
                        "comment",
                        Method::POST,
                        format!("/api/v1/tickets/{}/comments", id(&t)),
                        Some(json!({"body": "hi"})),
                        expect(rank(role) >= 1, false),
                        201,
                    ),
                    (
                        "manage project",
                        Method::PATCH,
                        format!("/api/v1/projects/{p}"),
                        Some(json!({"description": format!("by {role}")})),
                        if hidden {
                            404
                        } else if walled && project_role == Some("admin") {
                            0
                        } else {
                            expect(rank(role) >= 2, false)
                        },
                        200,
                    ),
                    (
                        "file a ticket",
                        Method::POST,
                        "/api/v1/tickets".to_owned(),
                        Some(json!({"project_id": p, "title": "t"})),
                        if rank(role) >= 1 && hidden {
                            422
                        } else {
                            expect(rank(role) >= 1, false)
                        },
                        201,
                    ),
                ];
                for (what, method, path, body, want, ok) in checks {
                    let patch = method == Method::PATCH;
                    let mut req = app.request(method, &path, Some(&who.token));
                    if patch {
                        req = req.header("if-match", "*");
                    }
                    if let Some(body) = body {
                        req = req.json(&body);
                    }
                    let res = app.send(req).await;
                    let want = if want == 0 { ok } else { want };
                    assert_eq!(
                        res.status.as_u16(),
                        want,
                        "{role} in a {visibility} project as {project_role:?}: {what}: {}",
                        res.body
                    );
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 2 * 4 * 4 * 5);
    app.shutdown().await;
}

#[tokio::test]
async fn project_members_are_staff_listed_once_and_managed_by_project_admins() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "agent@example.com", "agent").await;
    let other = app.member(&owner, "other@example.com", "agent").await;
    let customer = app.member(&owner, "c@example.com", "requester").await;
    let p = app.project(&owner.token, "SEC").await;
    let members = format!("/api/v1/projects/{p}/members");
    for (body, field) in [
        (
            json!({"members": [{"user_id": customer.user_id, "role": "member"}]}),
            "members[0].user_id",
        ),
        (
            json!({"members": [{"user_id": agent.user_id, "role": "member"},
                            {"user_id": agent.user_id, "role": "viewer"}]}),
            "members[1].user_id",
        ),
        (
            json!({"members": [{"user_id": uuid::Uuid::now_v7(), "role": "member"}]}),
            "members[0].user_id",
        ),
    ] {
        let res = app.put(&members, &owner.token, body).await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["field"], field);
    }
    app.put(
        &members,
        &owner.token,
        json!({"members": [{"user_id": agent.user_id, "role": "owner"}]}),
    )
    .await
    .assert_problem(422, "validation_failed");
    // An agent who is the project's admin manages it and its members; another agent does not.
    app.put(
        &members,
        &owner.token,
        json!({"members": [{"user_id": agent.user_id, "role": "admin"}]}),
    )
    .await
    .assert_ok(200);
    app.put(&members, &other.token, json!({"members": []}))
        .await
        .assert_problem(403, "forbidden");
    app.put(
        &members,
        &agent.token,
        json!({"members": [{"user_id": agent.user_id, "role": "admin"},
                           {"user_id": other.user_id, "role": "viewer"}]}),
    )
    .await
    .assert_ok(200);
    app.patch(
        &format!("/api/v1/projects/{p}"),
        &agent.token,
        json!({"visibility": "members"}),
    )
    .await
    .assert_ok(200);
    // A manager who makes a project private stays able to see it: they become its admin.
    let manager = app.member(&owner, "m@example.com", "manager").await;
    let q = app.project(&manager.token, "OPS").await;
    app.patch(
        &format!("/api/v1/projects/{q}"),
        &manager.token,
        json!({"visibility": "members"}),
    )
    .await
    .assert_ok(200);
    let listed = app
        .get(&format!("/api/v1/projects/{q}/members"), &manager.token)
        .await;
    assert_eq!(
        listed.body["items"],
        json!([{"user_id": manager.user_id, "role": "admin"}])
    );
    // Changes are in the audit log.
    let audit = app.all_items("/api/v1/audit-log", &owner.token).await;
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "project.members_changed")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn row_security_walls_a_private_project_off_even_without_a_filter() {
    if backend() != Backend::Postgres {
        return;
    }
    use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, TransactionTrait};
    let app = spawn_app().await;
    let w = walled(&app).await;
    let owner = Database::connect(&app.database_url).await.unwrap();
    let count = |viewer: Option<String>, table: &'static str| {
        let owner = &owner;
        let org = w.owner.org_id.clone();
        async move {
            let tx = owner.begin().await.unwrap();
            tx.execute_unprepared("SET LOCAL ROLE docket_app")
                .await
                .unwrap();
            tx.execute_unprepared(&format!("SELECT set_config('app.org_id', '{org}', true)"))
                .await
                .unwrap();
            if let Some(v) = viewer {
                tx.execute_unprepared(&format!("SELECT set_config('app.viewer_id', '{v}', true)"))
                    .await
                    .unwrap();
            }
            let n: i64 = tx
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!("SELECT count(*) AS n FROM {table} WHERE true"),
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get("", "n")
                .unwrap();
            tx.rollback().await.unwrap();
            n
        }
    };
    for table in ["tickets", "comments", "ticket_events"] {
        let all = count(None, table).await;
        assert!(all > 0, "{table}");
        // The agent is not a member: the private project's rows are gone, whatever the query.
        let walled = count(Some(w.agent.user_id.clone()), table).await;
        assert!(walled < all, "{table}: {walled} of {all}");
    }
    assert_eq!(count(Some(w.agent.user_id.clone()), "tickets").await, 0);
    owner.close().await.ok();
    app.shutdown().await;
}

#[tokio::test]
async fn subtasks_nest_without_cycles_and_count_their_progress() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let p = app.project(&owner.token, "OPS").await;
    let parent = app
        .ticket(&owner.token, &p, json!({"title": "Launch"}))
        .await;
    let a = app
        .ticket(
            &owner.token,
            &p,
            json!({"title": "Docs", "parent_id": id(&parent)}),
        )
        .await;
    let b = app
        .ticket(
            &owner.token,
            &p,
            json!({"title": "Blog", "parent_id": id(&parent)}),
        )
        .await;
    assert_eq!(a["parent_id"], id(&parent));
    edit(&app, &owner.token, id(&b), json!({"status": "resolved"}))
        .await
        .assert_ok(200);
    let got = app
        .get(&format!("/api/v1/tickets/{}", id(&parent)), &owner.token)
        .await;
    assert_eq!(got.body["subtasks"], json!({"total": 2, "done": 1}));
    let children = app
        .get(
            &format!("/api/v1/tickets?parent_id={}", id(&parent)),
            &owner.token,
        )
        .await;
    let mut titles = pluck(&children.body["items"], "title");
    titles.sort();
    assert_eq!(titles, ["Blog", "Docs"]);

    // Itself, a cycle, an unknown ticket: 422 on parent_id, and nothing changed.
    let path = format!("/api/v1/tickets/{}", id(&parent));
    for bad in [
        id(&parent).to_owned(),
        id(&a).to_owned(),
        uuid::Uuid::now_v7().to_string(),
    ] {
        let res = edit(&app, &owner.token, id(&parent), json!({"parent_id": bad})).await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["field"], "parent_id", "{}", res.body);
    }
    let unchanged = app.get(&path, &owner.token).await;
    assert_eq!(unchanged.body["parent_id"], Value::Null);
    assert_eq!(unchanged.body["version"], parent["version"]);

    // Five levels below a top-level ticket, and no deeper.
    let mut chain = vec![parent.clone()];
    for level in 1..=5 {
        let above = id(chain.last().unwrap()).to_owned();
        let res = app
            .post(
                "/api/v1/tickets",
                Some(&owner.token),
                json!({"project_id": p, "title": format!("level {level}"), "parent_id": above}),
            )
            .await;
        chain.push(res.assert_ok(201).clone());
    }
    let res = app
        .post(
            "/api/v1/tickets",
            Some(&owner.token),
            json!({"project_id": p, "title": "too deep", "parent_id": id(chain.last().unwrap())}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    // Moving a ticket with subtasks below another counts its own levels too.
    let top = app
        .ticket(&owner.token, &p, json!({"title": "other"}))
        .await;
    let res = edit(
        &app,
        &owner.token,
        id(&parent),
        json!({"parent_id": id(&top)}),
    )
    .await;
    res.assert_problem(422, "validation_failed");
    // A parent in a project that other people see is refused.
    let private = app.project(&owner.token, "HR").await;
    app.patch(
        &format!("/api/v1/projects/{private}"),
        &owner.token,
        json!({"visibility": "members"}),
    )
    .await
    .assert_ok(200);
    let res = app
        .post(
            "/api/v1/tickets",
            Some(&owner.token),
            json!({"project_id": private, "title": "x", "parent_id": id(&top)}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    // `null` makes a subtask top-level again; the change is on its timeline.
    let freed = app
        .send(
            app.request(
                Method::PATCH,
                &format!("/api/v1/tickets/{}", id(&a)),
                Some(&owner.token),
            )
            .header("if-match", "*")
            .json(&json!({"parent_id": null})),
        )
        .await;
    assert_eq!(freed.assert_ok(200)["parent_id"], Value::Null);
    let timeline = app
        .all_items(
            &format!("/api/v1/tickets/{}/timeline", id(&a)),
            &owner.token,
        )
        .await;
    assert_replays_to(&timeline, &freed.body, "a subtask freed");
    // The parent's counts follow: `a` left, the resolved `b` and level 1 stay; a deleted
    // subtask no longer counts, a restored one again.
    let parent_path = format!("/api/v1/tickets/{}", id(&parent));
    let counts = app.get(&parent_path, &owner.token).await;
    assert_eq!(counts.body["subtasks"], json!({"total": 2, "done": 1}));
    let b_path = format!("/api/v1/tickets/{}", id(&b));
    app.send(
        app.request(Method::DELETE, &b_path, Some(&owner.token))
            .header("if-match", "*"),
    )
    .await
    .assert_ok(204);
    let counts = app.get(&parent_path, &owner.token).await;
    assert_eq!(counts.body["subtasks"], json!({"total": 1, "done": 0}));
    app.send(
        app.request(
            Method::POST,
            &format!("{b_path}/restore"),
            Some(&owner.token),
        )
        .header("if-match", "*"),
    )
    .await
    .assert_ok(200);
    let counts = app.get(&parent_path, &owner.token).await;
    assert_eq!(counts.body["subtasks"], json!({"total": 2, "done": 1}));
    app.shutdown().await;
}

#[tokio::test]
async fn links_are_stored_once_and_shown_from_both_sides() {
    let app = spawn_app_with_worker().await;
    let owner = app.signup("acme", "o@example.com").await;
    let other_org = app.signup("globex", "g@example.com").await;
    let p = app.project(&owner.token, "OPS").await;
    let (a, b, c) = (
        app.ticket(&owner.token, &p, json!({"title": "Outage"}))
            .await,
        app.ticket(&owner.token, &p, json!({"title": "Deploy"}))
            .await,
        app.ticket(&owner.token, &p, json!({"title": "Same outage"}))
            .await,
    );
    let links = |t: &Value| format!("/api/v1/tickets/{}/links", id(t));
    let made = app
        .post(
            &links(&a),
            Some(&owner.token),
            json!({"type": "blocks", "ticket_id": b["key"]}),
        )
        .await;
    let link = made.assert_ok(201).clone();
    assert_eq!(link["type"], "blocks");
    assert_eq!(link["ticket"]["key"], b["key"]);
    app.post(
        &links(&c),
        Some(&owner.token),
        json!({"type": "duplicates", "ticket_id": id(&a)}),
    )
    .await
    .assert_ok(201);
    let from_b = app.get(&links(&b), &owner.token).await;
    assert_eq!(pluck(&from_b.body["items"], "type"), ["blocked_by"]);
    let from_a = app.get(&links(&a), &owner.token).await;
    assert_eq!(
        pluck(&from_a.body["items"], "type"),
        ["blocks", "duplicated_by"]
    );

    // Twice (either way), itself, another organisation's ticket, a missing one.
    app.post(
        &links(&b),
        Some(&owner.token),
        json!({"type": "relates", "ticket_id": id(&a)}),
    )
    .await
    .assert_problem(409, "link_exists");
    for (target, code) in [
        (json!(id(&a)), 422),
        (
            json!(
                app.ticket(
                    &other_org.token,
                    &app_first_project(&app, &other_org).await,
                    json!({})
                )
                .await["id"]
            ),
            422,
        ),
        (json!("NOPE-1"), 422),
    ] {
        app.post(
            &links(&a),
            Some(&owner.token),
            json!({"type": "relates", "ticket_id": target}),
        )
        .await
        .assert_problem(code, "validation_failed");
    }
    app.post(
        &links(&a),
        Some(&owner.token),
        json!({"type": "causes", "ticket_id": id(&b)}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // Both timelines say so; the stream carries `ticket.linked`.
    for t in [&a, &b] {
        let timeline = app
            .all_items(&format!("/api/v1/tickets/{}/timeline", id(t)), &owner.token)
            .await;
        assert!(
            timeline.iter().any(|e| e["kind"] == "ticket.linked"),
            "{timeline:?}"
        );
    }
    app.wait_count(
        "SELECT count(*) FROM stream_events WHERE kind = 'ticket.linked'",
        4,
        10,
    )
    .await;

    // A link to a ticket the viewer may not see is not shown to them.
    let agent = app.member(&owner, "agent@example.com", "agent").await;
    let private = app.project(&owner.token, "HR").await;
    app.patch(
        &format!("/api/v1/projects/{private}"),
        &owner.token,
        json!({"visibility": "members"}),
    )
    .await
    .assert_ok(200);
    let secret = app.ticket(&owner.token, &private, json!({})).await;
    app.post(
        &links(&b),
        Some(&owner.token),
        json!({"type": "relates", "ticket_id": id(&secret)}),
    )
    .await
    .assert_ok(201);
    let seen = app.get(&links(&b), &agent.token).await;
    assert_eq!(pluck(&seen.body["items"], "type"), ["blocked_by"]);
    let all = app.get(&links(&b), &owner.token).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 2);

    // Removing it, from either side.
    let gone = format!("{}/{}", links(&b), id(&link));
    app.delete(&gone, &owner.token).await.assert_ok(204);
    app.delete(&gone, &owner.token)
        .await
        .assert_problem(404, "link_not_found");
    let from_a = app.get(&links(&a), &owner.token).await;
    assert_eq!(pluck(&from_a.body["items"], "type"), ["duplicated_by"]);
    app.shutdown().await;
}

#[tokio::test]
async fn a_merge_moves_everything_to_the_target_and_can_be_undone() {
    let app = spawn_app_with_worker().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "agent@example.com", "agent").await;
    let p = app.project(&owner.token, "OPS").await;
    let source = app
        .ticket(&owner.token, &p, json!({"title": "VPN down"}))
        .await;
    let target = app
        .ticket(&owner.token, &p, json!({"title": "Network outage"}))
        .await;
    let (s, t) = (id(&source).to_owned(), id(&target).to_owned());
    let c1 = comment(&app, &owner.token, &s, "from the source").await;
    app.post(
        &format!("/api/v1/tickets/{s}/watch"),
        Some(&agent.token),
        json!({}),
    )
    .await;
    let merge = format!("/api/v1/tickets/{s}/merge");

    // Into itself, into nothing.
    app.post(&merge, Some(&owner.token), json!({"into": s}))
        .await
        .assert_problem(422, "validation_failed");
    app.post(&merge, Some(&owner.token), json!({"into": "OPS-999"}))
        .await
        .assert_problem(422, "validation_failed");

    let merged = app
        .post(&merge, Some(&owner.token), json!({"into": target["key"]}))
        .await;
    assert_eq!(merged.assert_ok(200)["id"], t.as_str());
    let src = app.get(&format!("/api/v1/tickets/{s}"), &owner.token).await;
    assert_eq!(src.body["status"], "closed");
    assert_eq!(src.body["merged_into_id"], t.as_str());
    let on_target = app
        .all_items(&format!("/api/v1/tickets/{t}/comments"), &owner.token)
        .await;
    assert_eq!(
        pluck(&Value::Array(on_target), "id"),
        std::slice::from_ref(&c1)
    );
    let watchers = app
        .get(&format!("/api/v1/tickets/{t}/watchers"), &owner.token)
        .await;
    assert!(
        watchers.body.to_string().contains(&agent.user_id),
        "{}",
        watchers.body
    );
    for (ticket, kind) in [(&s, "ticket.merged"), (&t, "ticket.merged")] {
        let timeline = app
            .all_items(&format!("/api/v1/tickets/{ticket}/timeline"), &owner.token)
            .await;
        assert!(timeline.iter().any(|e| e["kind"] == kind), "{timeline:?}");
    }
    let timeline = app
        .all_items(&format!("/api/v1/tickets/{s}/timeline"), &owner.token)
        .await;
    assert_replays_to(&timeline, &src.body, "a merged ticket");
    app.wait_count(
        "SELECT count(*) FROM stream_events WHERE kind = 'ticket.merged'",
        1,
        10,
    )
    .await;

    // Merged already; into a merged ticket.
    app.post(&merge, Some(&owner.token), json!({"into": t}))
        .await
        .assert_problem(409, "ticket_merged");
    let third = app.ticket(&owner.token, &p, json!({})).await;
    app.post(
        &format!("/api/v1/tickets/{}/merge", id(&third)),
        Some(&owner.token),
        json!({"into": s}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // Undone: the comment and the watcher go back, the source is as it was.
    let undone = app
        .post(
            &format!("/api/v1/tickets/{s}/unmerge"),
            Some(&owner.token),
            json!({}),
        )
        .await;
    assert_eq!(undone.assert_ok(200)["status"], "open");
    assert_eq!(undone.body["merged_into_id"], Value::Null);
    let back = app
        .all_items(&format!("/api/v1/tickets/{s}/comments"), &owner.token)
        .await;
    assert_eq!(pluck(&Value::Array(back), "id"), [c1]);
    let watchers = app
        .get(&format!("/api/v1/tickets/{t}/watchers"), &owner.token)
        .await;
    assert!(!watchers.body.to_string().contains(&agent.user_id));
    app.post(
        &format!("/api/v1/tickets/{s}/unmerge"),
        Some(&owner.token),
        json!({}),
    )
    .await
    .assert_problem(409, "ticket_not_merged");

    // Once something was added to the target, or after ten minutes, it stays merged.
    app.post(&merge, Some(&owner.token), json!({"into": t}))
        .await
        .assert_ok(200);
    comment(&app, &owner.token, &t, "new on the target").await;
    app.post(
        &format!("/api/v1/tickets/{s}/unmerge"),
        Some(&owner.token),
        json!({}),
    )
    .await
    .assert_problem(409, "unmerge_target_changed");
    let fourth = app.ticket(&owner.token, &p, json!({})).await;
    let f = id(&fourth).to_owned();
    app.post(
        &format!("/api/v1/tickets/{f}/merge"),
        Some(&owner.token),
        json!({"into": t}),
    )
    .await
    .assert_ok(200);
    app.sql("UPDATE ticket_merges SET merged_at = '2000-01-01T00:00:00+00:00'")
        .await;
    app.post(
        &format!("/api/v1/tickets/{f}/unmerge"),
        Some(&owner.token),
        json!({}),
    )
    .await
    .assert_problem(409, "unmerge_expired");
    app.shutdown().await;
}

#[tokio::test]
async fn a_split_moves_chosen_comments_into_a_related_ticket() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let customer = app.member(&owner, "c@example.com", "requester").await;
    let p = app.project(&owner.token, "OPS").await;
    let t = app
        .ticket(
            &owner.token,
            &p,
            json!({"requester_id": customer.user_id, "priority": "high"}),
        )
        .await;
    let keep = comment(&app, &owner.token, id(&t), "about the printer").await;
    let moved = comment(
        &app,
        &customer.token,
        id(&t),
        "also, my badge does not work",
    )
    .await;
    let split = format!("/api/v1/tickets/{}/split", id(&t));
    for body in [
        json!({"comment_ids": [], "title": "Badge"}),
        json!({"comment_ids": [uuid::Uuid::now_v7()], "title": "Badge"}),
        json!({"comment_ids": [moved], "title": "  "}),
    ] {
        app.post(&split, Some(&owner.token), body)
            .await
            .assert_problem(422, "validation_failed");
    }
    let new = app
        .post(
            &split,
            Some(&owner.token),
            json!({"comment_ids": [moved], "title": "Badge"}),
        )
        .await;
    let new = new.assert_ok(201).clone();
    assert_eq!(new["project_id"], p.as_str());
    assert_eq!(new["requester_id"], customer.user_id.as_str());
    assert_eq!(new["priority"], "high");
    let on_new = app
        .all_items(
            &format!("/api/v1/tickets/{}/comments", id(&new)),
            &owner.token,
        )
        .await;
    assert_eq!(
        pluck(&Value::Array(on_new), "id"),
        std::slice::from_ref(&moved)
    );
    let on_old = app
        .all_items(
            &format!("/api/v1/tickets/{}/comments", id(&t)),
            &owner.token,
        )
        .await;
    assert_eq!(pluck(&Value::Array(on_old), "id"), [keep]);
    let linked = app
        .get(&format!("/api/v1/tickets/{}/links", id(&t)), &owner.token)
        .await;
    assert_eq!(pluck(&linked.body["items"], "type"), ["relates"]);
    // The customer finds the new ticket among their own.
    let theirs = app.all_items("/api/v1/tickets", &customer.token).await;
    assert!(theirs.iter().any(|x| x["id"] == new["id"]));
    app.shutdown().await;
}

#[tokio::test]
async fn a_bulk_change_judges_each_ticket_on_its_own() {
    let app = spawn_app_with_worker().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "agent@example.com", "agent").await;
    let p = app.project(&owner.token, "OPS").await;
    let private = app.project(&owner.token, "HR").await;
    app.patch(
        &format!("/api/v1/projects/{private}"),
        &owner.token,
        json!({"visibility": "members"}),
    )
    .await
    .assert_ok(200);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            app.ticket(&owner.token, &p, json!({"labels": ["old"]}))
                .await,
        );
    }
    let closed = app.ticket(&owner.token, &p, json!({})).await;
    edit(
        &app,
        &owner.token,
        id(&closed),
        json!({"status": "cancelled"}),
    )
    .await
    .assert_ok(200);
    let hidden = app.ticket(&owner.token, &private, json!({})).await;
    let mut asked: Vec<Value> = ids.iter().map(|t| t["key"].clone()).collect();
    asked.extend([json!(id(&closed)), json!(id(&hidden)), json!("OPS-999")]);
    let body = json!({"ids": asked, "set": {"status": "pending", "priority": "urgent",
        "add_labels": ["vip"], "remove_labels": ["old"], "assignee_ids": [agent.user_id]}});
    let res = app
        .send(
            app.request(Method::POST, "/api/v1/tickets/bulk", Some(&agent.token))
                .header("idempotency-key", "bulk-1")
                .json(&body),
        )
        .await;
    let results = res.assert_ok(200)["results"].as_array().unwrap().clone();
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 200, 200, 409, 404, 404], "{results:?}");
    assert_eq!(results[3]["problem"]["code"], "invalid_transition");
    assert_eq!(results[4]["problem"]["code"], "ticket_not_found");
    for r in &results[..3] {
        assert_eq!(r["ticket"]["status"], "pending");
        assert_eq!(r["ticket"]["labels"], json!(["vip"]));
        assert_eq!(r["ticket"]["assignee_ids"], json!([agent.user_id]));
    }
    // Each changed ticket has its own timeline entry; the failed ones are as they were.
    for t in &ids {
        let timeline = app
            .all_items(&format!("/api/v1/tickets/{}/timeline", id(t)), &owner.token)
            .await;
        assert_eq!(timeline.len(), 2, "{timeline:?}");
    }
    let still = app
        .get(&format!("/api/v1/tickets/{}", id(&closed)), &owner.token)
        .await;
    assert_eq!(still.body["priority"], "medium");
    // One Idempotency-Key covers the whole call.
    let again = app
        .send(
            app.request(Method::POST, "/api/v1/tickets/bulk", Some(&agent.token))
                .header("idempotency-key", "bulk-1")
                .json(&body),
        )
        .await;
    assert_eq!(again.body, res.body);
    let versions = app
        .get(&format!("/api/v1/tickets/{}", id(&ids[0])), &owner.token)
        .await;
    assert_eq!(versions.body["version"], 2);

    // What the call itself gets wrong is one 422, and nothing changes.
    let many: Vec<String> = (0..501).map(|n| format!("OPS-{}", n + 1)).collect();
    for bad in [
        json!({"ids": [], "set": {"priority": "low"}}),
        json!({"ids": many, "set": {"priority": "low"}}),
        json!({"ids": [id(&ids[0]), id(&ids[0])], "set": {"priority": "low"}}),
        json!({"ids": [id(&ids[0])], "set": {}}),
    ] {
        app.post("/api/v1/tickets/bulk", Some(&agent.token), bad)
            .await
            .assert_problem(422, "validation_failed");
    }
    // A viewer may not.
    let viewer = app.member(&owner, "v@example.com", "viewer").await;
    app.post(
        "/api/v1/tickets/bulk",
        Some(&viewer.token),
        json!({"ids": [id(&ids[0])], "set": {"priority": "low"}}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.shutdown().await;
}

#[tokio::test]
async fn mail_replying_to_a_merged_ticket_lands_on_its_target() {
    use crate::mail::{AUTHENTICATED, inbound_path, message, post_mail};
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let inbound = inbound_path(&app, &owner).await;
    let mut tickets = Vec::new();
    for (n, subject) in [(1, "Printer on fire"), (2, "Printer still on fire")] {
        let mail = message(
            "Ann Customer <ann@customer.test>",
            subject,
            &format!("{AUTHENTICATED}Message-ID: <m{n}@customer.test>\n"),
            "Help.",
        );
        let res = post_mail(&app, &inbound, &mail).await;
        assert_eq!(res.assert_ok(202)["outcome"], "ticket_created");
        tickets.push(res.body["ticket_id"].as_str().unwrap().to_owned());
    }
    app.post(
        &format!("/api/v1/tickets/{}/merge", tickets[1]),
        Some(&owner.token),
        json!({"into": tickets[0]}),
    )
    .await
    .assert_ok(200);
    let reply = message(
        "Ann Customer <ann@customer.test>",
        "Re: Printer still on fire",
        &format!(
            "{AUTHENTICATED}Message-ID: <m3@customer.test>\nIn-Reply-To: <m2@customer.test>\n"
        ),
        "It is out now.",
    );
    let res = post_mail(&app, &inbound, &reply).await;
    assert_eq!(
        res.assert_ok(202)["outcome"],
        "comment_added",
        "{}",
        res.body
    );
    assert_eq!(res.body["ticket_id"], tickets[0].as_str());
    let on_target = app
        .all_items(
            &format!("/api/v1/tickets/{}/comments", tickets[0]),
            &owner.token,
        )
        .await;
    assert!(on_target.iter().any(|c| c["body"] == "It is out now."));
    app.shutdown().await;
}

#[tokio::test]
async fn only_members_are_assigned_or_told_of_a_private_projects_tickets() {
    let app = spawn_app_with_worker().await;
    let w = walled(&app).await;
    let t = id(&w.ticket).to_owned();
    let res = edit(
        &app,
        &w.owner.token,
        &t,
        json!({"assignee_ids": [w.agent.user_id]}),
    )
    .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "assignee_ids[0]");
    // Filing a ticket there, or moving one there, with a non-member assigned: the same.
    let res = app
        .post(
            "/api/v1/tickets",
            Some(&w.owner.token),
            json!({"project_id": w.project, "title": "x", "assignee_ids": [w.agent.user_id]}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    let open = app_first_project(&app, &w.owner).await;
    let assigned = app
        .ticket(
            &w.owner.token,
            &open,
            json!({"assignee_ids": [w.agent.user_id]}),
        )
        .await;
    edit(
        &app,
        &w.owner.token,
        id(&assigned),
        json!({"project_id": w.project}),
    )
    .await
    .assert_problem(422, "validation_failed");
    // Admins see every project; members may be assigned.
    edit(
        &app,
        &w.owner.token,
        &t,
        json!({"assignee_ids": [w.admin.user_id]}),
    )
    .await
    .assert_ok(200);
    app.put(
        &format!("/api/v1/projects/{}/members", w.project),
        &w.owner.token,
        json!({"members": [{"user_id": w.agent.user_id, "role": "member"}]}),
    )
    .await
    .assert_ok(200);
    edit(
        &app,
        &w.owner.token,
        &t,
        json!({"assignee_ids": [w.agent.user_id]}),
    )
    .await
    .assert_ok(200);
    // A mention tells the member, never a manager outside the project.
    comment(
        &app,
        &w.owner.token,
        &t,
        "@manager@example.com @agent@example.com see this",
    )
    .await;
    app.wait_count(
        &format!(
            "SELECT count(*) FROM notifications WHERE kind = 'mentioned' AND user_id = {}",
            uuid_literal(&w.agent.user_id)
        ),
        1,
        10,
    )
    .await;
    app.run_pending_events().await;
    let manager_told = app.get("/api/v1/notifications", &w.manager.token).await;
    assert_eq!(manager_told.assert_ok(200)["items"], json!([]));
    app.shutdown().await;
}

/// A person's id as the backend stores it, for SQL in tests.
fn uuid_literal(id: &str) -> String {
    let id = uuid::Uuid::parse_str(id).unwrap();
    match backend() {
        Backend::Postgres => format!("'{id}'"),
        Backend::Sqlite => format!("X'{}'", id.simple()),
    }
}
