//! The cross-tenant suite: every endpoint that takes an id answers another tenant's id with 404
//! (never 403), and no list shows another tenant's data. New endpoints join `ID_ENDPOINTS`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// Endpoints that take an id: method, path with `{user}` for a person of the *other* tenant, body.
const ID_ENDPOINTS: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/api/v1/users/{user}", None),
    (
        "PATCH",
        "/api/v1/users/{user}",
        Some(r#"{"role": "viewer"}"#),
    ),
    (
        "PATCH",
        "/api/v1/users/{user}",
        Some(r#"{"active": false}"#),
    ),
    ("DELETE", "/api/v1/users/{user}", None),
    ("DELETE", "/api/v1/users/{user}?erase=true", None),
];

struct Tenant {
    owner: Session,
    agent: Session,
}

async fn tenant(app: &TestApp, slug: &str) -> Tenant {
    let owner = app.signup(slug, &format!("owner@{slug}.example.com")).await;
    let agent = app
        .member(&owner, &format!("agent@{slug}.example.com"), "agent")
        .await;
    Tenant { owner, agent }
}

#[tokio::test]
async fn another_tenants_ids_are_not_found() {
    let app = spawn_app().await;
    let a = tenant(&app, "alpha").await;
    let b = tenant(&app, "beta").await;

    for (method, path, body) in ID_ENDPOINTS {
        for target in [&a.owner, &a.agent] {
            let path = path.replace("{user}", &target.user_id);
            let body: Option<Value> = body.map(|b| serde_json::from_str(b).unwrap());
            let res = app
                .call(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    &path,
                    Some(&b.owner.token),
                    body,
                )
                .await;
            res.assert_problem(404, "user_not_found");
            assert!(
                !res.body.to_string().contains(&target.email),
                "{method} {path} leaked: {}",
                res.body
            );
        }
    }
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
