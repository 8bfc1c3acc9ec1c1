use crate::helpers::*;

#[tokio::test]
async fn the_document_is_served_and_lists_every_endpoint() {
    let app = spawn_app().await;
    let doc = app
        .send(app.client.get(app.url("/api/v1/openapi.json")))
        .await;
    let doc = doc.assert_ok(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/auth/signup", "post"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/me", "get"),
        ("/api/v1/auth/switch", "post"),
        ("/api/v1/org", "get"),
        ("/api/v1/org", "patch"),
        ("/api/v1/users", "get"),
        ("/api/v1/users", "post"),
        ("/api/v1/users/{id}", "get"),
        ("/api/v1/users/{id}", "patch"),
        ("/api/v1/users/{id}", "delete"),
        ("/api/v1/audit-log", "get"),
        ("/api/v1/projects", "get"),
        ("/api/v1/projects", "post"),
        ("/api/v1/projects/{id}", "get"),
        ("/api/v1/projects/{id}", "patch"),
        ("/api/v1/projects/{id}", "delete"),
        ("/api/v1/projects/{id}/activity", "get"),
        ("/api/v1/tickets", "get"),
        ("/api/v1/tickets", "post"),
        ("/api/v1/tickets/{id}", "get"),
        ("/api/v1/tickets/{id}", "patch"),
        ("/api/v1/tickets/{id}", "delete"),
        ("/api/v1/tickets/{id}/assign", "post"),
        ("/api/v1/tickets/{id}/complete", "post"),
        ("/api/v1/tickets/{id}/reopen", "post"),
        ("/api/v1/tickets/{id}/restore", "post"),
        ("/api/v1/tickets/{id}/timeline", "get"),
        ("/api/v1/tickets/{id}/comments", "get"),
        ("/api/v1/tickets/{id}/comments", "post"),
        ("/api/v1/comments/{id}", "patch"),
        ("/api/v1/comments/{id}", "delete"),
        ("/api/v1/me/tickets", "get"),
        ("/api/v1/tickets/{id}/watch", "post"),
        ("/api/v1/tickets/{id}/watch", "delete"),
        ("/api/v1/notifications", "get"),
        ("/api/v1/notifications/unread-count", "get"),
        ("/api/v1/notifications/{id}/read", "patch"),
        ("/api/v1/notifications/read-all", "patch"),
        ("/api/v1/stream", "get"),
        ("/api/v1/ws", "get"),
        ("/api/v1/admin/events", "get"),
        ("/api/v1/admin/events/{id}/retry", "post"),
        ("/api/v1/invitations", "get"),
        ("/api/v1/invitations", "post"),
        ("/api/v1/invitations/{id}", "delete"),
        ("/api/v1/invitations/{token}/accept", "post"),
        ("/api/v1/auth/password/forgot", "post"),
        ("/api/v1/auth/password/reset", "post"),
        ("/api/v1/auth/password/change", "post"),
        ("/api/v1/auth/logout-all", "post"),
        ("/api/v1/me/notification-preferences", "get"),
        ("/api/v1/me/notification-preferences", "put"),
        ("/api/v1/mail/log", "get"),
        ("/api/v1/mail/ingest-log", "get"),
        ("/api/v1/mail/settings", "get"),
        ("/api/v1/mail/settings", "put"),
        ("/api/v1/mail/settings/rotate-inbound-token", "post"),
        ("/api/v1/inbound/email/{token}", "post"),
        ("/metrics", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} missing");
        if path.starts_with("/api/") {
            assert!(
                op["responses"]["422"]["content"]["application/problem+json"].is_object(),
                "{method} {path}"
            );
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Conditional and idempotent requests are documented where they apply.
    let params = |path: &str, method: &str| -> Vec<String> {
        paths[path][method]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["name"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert!(params("/api/v1/tickets/{id}", "patch").contains(&"If-Match".to_owned()));
    assert!(params("/api/v1/tickets", "post").contains(&"Idempotency-Key".to_owned()));
    assert!(paths["/api/v1/tickets/{id}"]["patch"]["responses"]["412"].is_object());
    assert!(paths["/api/v1/tickets/{id}"]["patch"]["responses"]["428"].is_object());

    let ui = app.send(app.client.get(app.url("/docs/"))).await;
    assert_eq!(ui.status, 200);
    assert!(
        ui.body.as_str().unwrap().contains("swagger"),
        "docs page is Swagger UI"
    );
    // Same origin as the app: the docs get a policy of their own, frames refused.
    for path in [
        "/docs/",
        "/docs/swagger-initializer.js",
        "/docs/swagger-ui.css",
    ] {
        let res = app.send(app.client.get(app.url(path))).await;
        let csp = res.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert_eq!(res.headers["x-content-type-options"], "nosniff");
    }
    app.shutdown().await;
}
