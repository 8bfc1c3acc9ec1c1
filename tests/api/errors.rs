//! Bad input anywhere gets a precise 4xx problem+json, never a 500; every response has a
//! request id.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn routing_errors_are_problems() {
    let app = spawn_app().await;
    app.call(Method::GET, "/api/v1/nothing-here", None, None)
        .await
        .assert_problem(404, "route_not_found");
    let res = app
        .call(Method::PUT, "/api/v1/auth/login", None, None)
        .await;
    res.assert_problem(405, "method_not_allowed");
    assert!(res.headers.get("allow").is_some());
    app.shutdown().await;
}

#[tokio::test]
async fn bodies_are_checked_precisely() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let login = app.url("/api/v1/auth/login");
    let send = |body: &'static str, ct: Option<&'static str>| {
        let mut req = app.client.post(&login).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        app.send(req)
    };
    send(r#"{"email": "o@example.com""#, Some("application/json"))
        .await
        .assert_problem(400, "malformed_json");
    send("", Some("application/json"))
        .await
        .assert_problem(400, "malformed_json");
    send(r#"{"email": "a"}"#, Some("text/plain"))
        .await
        .assert_problem(415, "unsupported_media_type");
    send(r#"{"email": "a"}"#, None)
        .await
        .assert_problem(415, "unsupported_media_type");
    let res = send(r#"{"email": "o@example.com"}"#, Some("application/json")).await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "password");
    let res = send(r#"{"email": 5, "password": "x"}"#, Some("application/json")).await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "email");
    let res = send(
        r#"{"email": "a", "password": "b", "admin": true}"#,
        Some("application/json; charset=utf-8"),
    )
    .await;
    res.assert_problem(422, "validation_failed");
    send(r#"[1, 2]"#, Some("application/json"))
        .await
        .assert_problem(422, "validation_failed");

    // Oversized bodies: 413, also on authenticated endpoints.
    let big = json!({"name": "x".repeat(100 * 1024)});
    app.patch("/api/v1/org", &owner.token, big)
        .await
        .assert_problem(413, "payload_too_large");

    // Unicode and control characters are handled, not crashed on.
    app.patch("/api/v1/org", &owner.token, json!({"name": "Ünïcödé 🚀"}))
        .await
        .assert_ok(200);
    app.patch(
        "/api/v1/org",
        &owner.token,
        json!({"name": "bad\u{0000}name"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.patch(
        "/api/v1/org",
        &owner.token,
        json!({"name": "x".repeat(201)}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.shutdown().await;
}

#[tokio::test]
async fn ids_and_queries_are_checked() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    app.get("/api/v1/users/not-a-uuid", &owner.token)
        .await
        .assert_problem(404, "not_found");
    app.get(
        "/api/v1/users/00000000-0000-0000-0000-000000000000",
        &owner.token,
    )
    .await
    .assert_problem(404, "user_not_found");
    app.get("/api/v1/users?limit=abc", &owner.token)
        .await
        .assert_problem(400, "invalid_query");
    app.get("/api/v1/users?limit=0", &owner.token)
        .await
        .assert_problem(422, "validation_failed");
    app.get("/api/v1/users?limit=201", &owner.token)
        .await
        .assert_problem(422, "validation_failed");
    app.get("/api/v1/users?cursor=%00%ff", &owner.token)
        .await
        .assert_problem(422, "validation_failed");
    app.get("/api/v1/users?limit=-1", &owner.token)
        .await
        .assert_problem(400, "invalid_query");
    let res = app
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{}?erase=maybe", owner.user_id),
            Some(&owner.token),
            None,
        )
        .await;
    res.assert_problem(400, "invalid_query");
    app.shutdown().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let ok = app.send(app.client.get(app.url("/healthz"))).await;
    assert!(ok.headers.get("x-request-id").is_some());
    let problem = app.call(Method::GET, "/api/v1/auth/me", None, None).await;
    let header = problem.headers["x-request-id"].to_str().unwrap();
    assert_eq!(problem.body["request_id"], header);
    // The server's own id, whatever the caller sends (a caller's plain id is only logged beside
    // it): what the audit log records cannot be chosen by a client.
    for sent in ["trace-abc.123", "a b<script>"] {
        let answered = app
            .send(
                app.client
                    .get(app.url("/healthz"))
                    .header("x-request-id", sent),
            )
            .await;
        let id = answered.headers["x-request-id"].to_str().unwrap();
        assert_ne!(id, sent);
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    assert_eq!(
        app.send(app.client.get(app.url("/healthz"))).await.status,
        200
    );
    let ready = app.send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    app.shutdown().await;
}
