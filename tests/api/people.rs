use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn admins_add_list_and_read_people() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let admin = app.member(&owner, "admin@example.com", "admin").await;
    let agent = app.member(&owner, "agent@example.com", "agent").await;

    let list = app.get("/api/v1/users", &admin.token).await;
    let items = list.assert_ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .any(|p| p["email"] == "agent@example.com" && p["role"] == "agent")
    );

    // Pagination walks everyone exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit=1&cursor={c}"),
            None => "/api/v1/users?limit=1".into(),
        };
        let page = app.get(&path, &agent.token).await;
        let page = page.assert_ok(200);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3);
    seen.dedup();
    assert_eq!(seen.len(), 3);

    let one = app
        .get(&format!("/api/v1/users/{}", agent.user_id), &admin.token)
        .await;
    assert_eq!(one.assert_ok(200)["email"], "agent@example.com");

    // A member cannot be invited again; bad fields are named; admins set no passwords.
    app.post(
        "/api/v1/users",
        Some(&admin.token),
        json!({"email": "AGENT@example.com", "name": "x", "role": "agent"}),
    )
    .await
    .assert_problem(409, "user_exists");
    let res = app
        .post(
            "/api/v1/users",
            Some(&admin.token),
            json!({"email": "x", "name": "", "role": "agent"}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"].as_array().unwrap().len(), 2);
    let res = app
        .post(
            "/api/v1/users",
            Some(&admin.token),
            json!({"email": "z@example.com", "name": "z", "role": "agent", "password": PASSWORD}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "password");
    app.post(
        "/api/v1/users",
        Some(&admin.token),
        json!({"email": "y@example.com", "name": "y", "role": "emperor"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.shutdown().await;
}

#[tokio::test]
async fn role_rules_hold() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let admin = app.member(&owner, "admin@example.com", "admin").await;
    let agent = app.member(&owner, "agent@example.com", "agent").await;
    let user = |s: &Session| format!("/api/v1/users/{}", s.user_id);

    // Nobody raises their own role.
    app.patch(&user(&admin), &admin.token, json!({"role": "owner"}))
        .await
        .assert_problem(403, "forbidden");
    app.patch(&user(&agent), &agent.token, json!({"role": "admin"}))
        .await
        .assert_problem(403, "forbidden");
    // Only owners make owners; admins cannot touch owners.
    app.patch(&user(&agent), &admin.token, json!({"role": "owner"}))
        .await
        .assert_problem(403, "forbidden");
    app.patch(&user(&owner), &admin.token, json!({"role": "agent"}))
        .await
        .assert_problem(403, "forbidden");
    app.delete(&user(&owner), &admin.token)
        .await
        .assert_problem(403, "forbidden");
    // Admins manage roles below owner.
    let res = app
        .patch(&user(&agent), &admin.token, json!({"role": "manager"}))
        .await;
    assert_eq!(res.assert_ok(200)["role"], "manager");
    // The last owner can neither step down nor be removed…
    app.patch(&user(&owner), &owner.token, json!({"role": "admin"}))
        .await
        .assert_problem(409, "last_owner");
    app.patch(&user(&owner), &owner.token, json!({"active": false}))
        .await
        .assert_problem(409, "last_owner");
    app.delete(&user(&owner), &owner.token)
        .await
        .assert_problem(409, "last_owner");
    // …until there is another.
    app.patch(&user(&admin), &owner.token, json!({"role": "owner"}))
        .await
        .assert_ok(200);
    assert_eq!(
        app.patch(&user(&owner), &owner.token, json!({"role": "admin"}))
            .await
            .assert_ok(200)["role"],
        "admin"
    );
    // The demotion takes effect at once: the access token signed for the old role is refused
    // (the client refreshes it), and the new role's token may not do what the old role could.
    let stale = app
        .patch(&user(&admin), &owner.token, json!({"role": "viewer"}))
        .await;
    stale.assert_problem(401, "invalid_token");
    let token = app.fresh_token(&owner).await;
    app.patch(&user(&admin), &token, json!({"role": "viewer"}))
        .await
        .assert_problem(403, "forbidden");

    // Names: people change their own; admins cannot rename others.
    let agent = Session {
        token: app.fresh_token(&agent).await,
        ..agent
    };
    let admin = Session {
        token: app.fresh_token(&admin).await,
        ..admin
    };
    assert_eq!(
        app.patch(&user(&agent), &agent.token, json!({"name": "Agnes"}))
            .await
            .assert_ok(200)["name"],
        "Agnes"
    );
    app.patch(&user(&agent), &admin.token, json!({"name": "Nope"}))
        .await
        .assert_problem(403, "forbidden");

    // Audit entries record the role changes.
    let log = app.get("/api/v1/audit-log", &admin.token).await;
    let actions: Vec<String> = log.assert_ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        actions
            .iter()
            .filter(|a| *a == "membership.role_changed")
            .count()
            >= 3,
        "{actions:?}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn deactivated_and_removed_people_lose_access_at_once() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "agent@example.com", "agent").await;
    let viewer = app.member(&owner, "viewer@example.com", "viewer").await;

    let res = app
        .patch(
            &format!("/api/v1/users/{}", agent.user_id),
            &owner.token,
            json!({"active": false}),
        )
        .await;
    assert_eq!(res.assert_ok(200)["active"], false);
    app.get("/api/v1/auth/me", &agent.token)
        .await
        .assert_problem(401, "invalid_token");
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": agent.refresh}),
    )
    .await
    .assert_problem(401, "invalid_token");
    app.login("agent@example.com", PASSWORD, None)
        .await
        .assert_problem(403, "forbidden");
    // Reactivated: can sign in again.
    app.patch(
        &format!("/api/v1/users/{}", agent.user_id),
        &owner.token,
        json!({"active": true}),
    )
    .await
    .assert_ok(200);
    app.login("agent@example.com", PASSWORD, None)
        .await
        .assert_ok(200);

    let res = app
        .delete(
            &format!("/api/v1/users/{}?erase=true", viewer.user_id),
            &owner.token,
        )
        .await;
    assert_eq!(res.status, 204);
    app.get("/api/v1/auth/me", &viewer.token)
        .await
        .assert_problem(401, "invalid_token");
    app.get(&format!("/api/v1/users/{}", viewer.user_id), &owner.token)
        .await
        .assert_problem(404, "user_not_found");
    // Erased: the address no longer signs in, and can be used for a new account.
    app.login("viewer@example.com", PASSWORD, None)
        .await
        .assert_problem(401, "invalid_credentials");
    app.member(&owner, "viewer@example.com", "viewer").await;
    app.shutdown().await;
}

#[tokio::test]
async fn organisation_settings() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "agent@example.com", "agent").await;
    app.signup("taken", "t@example.com").await;

    assert_eq!(
        app.get("/api/v1/org", &agent.token).await.assert_ok(200)["slug"],
        "acme"
    );
    app.patch("/api/v1/org", &agent.token, json!({"name": "Mine"}))
        .await
        .assert_problem(403, "forbidden");
    app.patch("/api/v1/org", &owner.token, json!({"slug": "taken"}))
        .await
        .assert_problem(409, "slug_taken");
    app.patch("/api/v1/org", &owner.token, json!({"slug": "-bad"}))
        .await
        .assert_problem(422, "validation_failed");
    let res = app
        .patch(
            "/api/v1/org",
            &owner.token,
            json!({"name": "Acme Operations", "slug": "acme-ops"}),
        )
        .await;
    assert_eq!(res.assert_ok(200)["name"], "Acme Operations");
    app.login("agent@example.com", PASSWORD, Some("acme-ops"))
        .await
        .assert_ok(200);
    app.shutdown().await;
}
