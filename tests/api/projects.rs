//! Projects: keys, updates, archiving and the activity feed.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn projects_are_created_listed_updated_and_archived() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "owner@acme.example").await;
    let manager = app.member(&owner, "m@acme.example", "manager").await;
    let agent = app.member(&owner, "a@acme.example", "agent").await;
    let created = app
        .post(
            "/api/v1/projects",
            Some(&manager.token),
            json!({"name": "Operations", "key": "OPS", "description": "Keep the lights on"}),
        )
        .await;
    let p = created.assert_ok(201).clone();
    assert_eq!(p["key"], "OPS");
    assert_eq!(p["archived"], false);
    assert_eq!(
        created.headers["location"].to_str().unwrap(),
        format!("/api/v1/projects/{}", p["id"].as_str().unwrap())
    );
    // Keys: 2–10 capital letters, unique in the organisation (other organisations may reuse).
    for key in ["O", "ops", "OPS1", "ABCDEFGHIJK", "ÖPS"] {
        app.post(
            "/api/v1/projects",
            Some(&owner.token),
            json!({"name": "X", "key": key}),
        )
        .await
        .assert_problem(422, "validation_failed");
    }
    app.post(
        "/api/v1/projects",
        Some(&owner.token),
        json!({"name": "Again", "key": "OPS"}),
    )
    .await
    .assert_problem(409, "project_key_taken");
    let other = app.signup("other", "owner@other.example").await;
    app.project(&other.token, "OPS").await;
    app.post(
        "/api/v1/projects",
        Some(&agent.token),
        json!({"name": "Mine", "key": "MINE"}),
    )
    .await
    .assert_problem(403, "forbidden");

    let path = format!("/api/v1/projects/{}", p["id"].as_str().unwrap());
    let res = app
        .patch(
            &path,
            &manager.token,
            json!({"name": "Ops", "description": null}),
        )
        .await;
    let updated = res.assert_ok(200);
    assert_eq!(updated["name"], "Ops");
    assert!(updated["description"].is_null());
    app.patch(&path, &manager.token, json!({"key": "NEW"}))
        .await
        .assert_problem(422, "validation_failed");

    app.ticket(&agent.token, p["id"].as_str().unwrap(), json!({}))
        .await;
    let res = app.delete(&path, &manager.token).await;
    assert_eq!(res.status, 204);
    // Archived: out of the default list, no new tickets, old ones stay readable.
    let list = app.get("/api/v1/projects", &agent.token).await;
    assert_eq!(pluck(&list.assert_ok(200)["items"], "key"), ["ORG"]);
    let all = app
        .get("/api/v1/projects?include_archived=true", &agent.token)
        .await;
    let archived = all.assert_ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == p["id"])
        .expect("the archived project is listed");
    assert_eq!(archived["archived"], true);
    app.post(
        "/api/v1/tickets",
        Some(&agent.token),
        json!({"project_id": p["id"], "title": "Late"}),
    )
    .await
    .assert_problem(409, "project_archived");
    app.get("/api/v1/tickets/OPS-1", &agent.token)
        .await
        .assert_ok(200);
    // Restoring it lets tickets in again, numbered on from where they were.
    app.patch(&path, &manager.token, json!({"archived": false}))
        .await
        .assert_ok(200);
    let t = app
        .ticket(&agent.token, p["id"].as_str().unwrap(), json!({}))
        .await;
    assert_eq!(t["key"], "OPS-2");

    // The activity feed, newest first, has the project's and its tickets' changes.
    let activity = app
        .get(&format!("{path}/activity?limit=50"), &agent.token)
        .await;
    let kinds = pluck(&activity.assert_ok(200)["items"], "kind");
    assert_eq!(
        kinds,
        [
            "ticket.created",
            "project.restored",
            "project.archived",
            "ticket.created",
            "project.updated",
            "project.created"
        ]
    );
    let audit = app.get("/api/v1/audit-log", &owner.token).await;
    let actions = pluck(&audit.assert_ok(200)["items"], "action");
    assert!(
        actions.iter().any(|a| a == "project.archived"),
        "{actions:?}"
    );
    app.shutdown().await;
}
