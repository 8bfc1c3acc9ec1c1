//! The web app as the binary serves it, and the browser session: the refresh token as an
//! HttpOnly cookie, and saved views.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

const COOKIE_MODE: (&str, &str) = ("x-docket-refresh", "cookie");

fn set_cookie(res: &Resp) -> String {
    res.headers
        .get("set-cookie")
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// `docket_refresh=<value>` from a Set-Cookie header.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

async fn cookie_login(app: &TestApp, email: &str) -> Resp {
    app.send(
        app.request(Method::POST, "/api/v1/auth/login", None)
            .header(COOKIE_MODE.0, COOKIE_MODE.1)
            .json(&json!({"email": email, "password": PASSWORD})),
    )
    .await
}

async fn cookie_refresh(app: &TestApp, cookie: &str, mode: bool) -> Resp {
    let mut req = app
        .request(Method::POST, "/api/v1/auth/refresh", None)
        .header("cookie", cookie);
    if mode {
        req = req.header(COOKIE_MODE.0, COOKIE_MODE.1);
    }
    app.send(req).await
}

#[tokio::test]
async fn browsers_keep_the_refresh_token_in_an_http_only_cookie() {
    // Served over plain HTTP (local development): the public address says so.
    let app = spawn_app_tuned(None, |_, serve| {
        serve.mail.public_url = "http://127.0.0.1:8080".into();
    })
    .await;
    app.signup("acme", "o@example.com").await;

    let res = cookie_login(&app, "o@example.com").await;
    let body = res.assert_ok(200).clone();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body["access_token"].is_string());
    let first = set_cookie(&res);
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/v1/auth",
        "Max-Age=3600",
    ] {
        assert!(first.contains(attribute), "{attribute} in {first}");
    }
    // The public address is plain HTTP, so not `Secure`, whatever the `Host` header says.
    assert!(!first.contains("Secure"), "{first}");
    let named = app
        .send(
            app.request(Method::POST, "/api/v1/auth/login", None)
                .header(COOKIE_MODE.0, COOKIE_MODE.1)
                .header("host", "docket.example.com")
                .json(&json!({"email": "o@example.com", "password": PASSWORD})),
        )
        .await;
    assert!(!set_cookie(&named).contains("Secure"));
    let first = cookie_pair(&first);

    // Refresh reads the cookie and rotates it.
    let res = cookie_refresh(&app, &first, true).await;
    assert!(res.assert_ok(200).get("refresh_token").is_none());
    let second = cookie_pair(&set_cookie(&res));
    assert_ne!(first, second);

    // The cookie alone is nothing: without the header (a cross-site form cannot send it) the
    // body is required and the cookie ignored.
    cookie_refresh(&app, &second, false)
        .await
        .assert_problem(422, "validation_failed");
    // An unknown mode is refused.
    app.send(
        app.request(Method::POST, "/api/v1/auth/refresh", None)
            .header(COOKIE_MODE.0, "header")
            .header("cookie", &second),
    )
    .await
    .assert_problem(400, "invalid_refresh_mode");

    // Presenting the rotated cookie again is reuse: the session ends and the cookie is cleared.
    let res = cookie_refresh(&app, &first, true).await;
    res.assert_problem(401, "invalid_token");
    assert!(set_cookie(&res).contains("Max-Age=0"));
    cookie_refresh(&app, &second, true)
        .await
        .assert_problem(401, "invalid_token");
    // No cookie at all in cookie mode: 401, not a 422 about the body.
    app.send(
        app.request(Method::POST, "/api/v1/auth/refresh", None)
            .header(COOKIE_MODE.0, COOKIE_MODE.1),
    )
    .await
    .assert_problem(401, "invalid_token");
    app.shutdown().await;
}

#[tokio::test]
async fn the_cookie_is_secure_behind_an_https_address_and_logout_ends_its_session() {
    // The test server's public address is https://docket.test: the cookie is `Secure` even
    // when a request names a loopback host (the `Host` header decides nothing).
    let app = spawn_app().await;
    app.signup("acme", "o@example.com").await;
    let res = app
        .send(
            app.request(Method::POST, "/api/v1/auth/login", None)
                .header(COOKIE_MODE.0, COOKIE_MODE.1)
                .header("host", "localhost:8080")
                .json(&json!({"email": "o@example.com", "password": PASSWORD})),
        )
        .await;
    let token = res.assert_ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie(&res).contains("Secure"));
    let cookie = cookie_pair(&set_cookie(&res));

    let res = app
        .send(
            app.request(Method::POST, "/api/v1/auth/logout", Some(&token))
                .header(COOKIE_MODE.0, COOKIE_MODE.1)
                .header("cookie", &cookie),
        )
        .await;
    assert_eq!(res.status, 204);
    assert!(set_cookie(&res).contains("Max-Age=0"));
    cookie_refresh(&app, &cookie, true)
        .await
        .assert_problem(401, "invalid_token");

    // Signing out everywhere clears the cookie as well.
    let res = cookie_login(&app, "o@example.com").await;
    let token = res.assert_ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let cookie = cookie_pair(&set_cookie(&res));
    let res = app
        .send(
            app.request(Method::POST, "/api/v1/auth/logout-all", Some(&token))
                .header(COOKIE_MODE.0, COOKIE_MODE.1),
        )
        .await;
    assert_eq!(res.status, 204);
    assert!(set_cookie(&res).contains("Max-Age=0"));
    cookie_refresh(&app, &cookie, true)
        .await
        .assert_problem(401, "invalid_token");
    app.shutdown().await;
}

#[tokio::test]
async fn saved_views_belong_to_one_person_and_hold_valid_list_queries() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "a@example.com", "agent").await;

    let res = app
        .post(
            "/api/v1/views",
            Some(&agent.token),
            json!({"name": " Urgent open ", "query": "?status=open,pending&priority=urgent&sort=-updated_at"}),
        )
        .await;
    let view = res.assert_ok(201).clone();
    assert_eq!(view["name"], "Urgent open");
    assert_eq!(
        view["query"],
        "status=open,pending&priority=urgent&sort=-updated_at"
    );
    let id = view["id"].as_str().unwrap();
    // The saved query is one the list accepts as it is.
    app.get(
        &format!("/api/v1/tickets?{}", view["query"].as_str().unwrap()),
        &agent.token,
    )
    .await
    .assert_ok(200);

    for (query, field) in [
        ("status=done", "query"),
        ("cursor=abc", "query"),
        ("limit=5", "query"),
        ("colour=blue", "query"),
        ("project_id=not-a-uuid", "query"),
        (&"x".repeat(2001), "query"),
    ] {
        let res = app
            .post(
                "/api/v1/views",
                Some(&agent.token),
                json!({"name": "Bad", "query": query}),
            )
            .await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(
            res.body["errors"][0]["field"], field,
            "{query}: {}",
            res.body
        );
    }
    app.post(
        "/api/v1/views",
        Some(&agent.token),
        json!({"name": "", "query": ""}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(
        "/api/v1/views",
        Some(&agent.token),
        json!({"name": "Urgent open", "query": ""}),
    )
    .await
    .assert_problem(409, "view_name_taken");

    // Another person of the same organisation neither sees nor touches it.
    let theirs = app.get("/api/v1/views", &owner.token).await;
    assert_eq!(theirs.assert_ok(200)["items"], json!([]));
    app.patch(
        &format!("/api/v1/views/{id}"),
        &owner.token,
        json!({"name": "Mine"}),
    )
    .await
    .assert_problem(404, "view_not_found");
    app.delete(&format!("/api/v1/views/{id}"), &owner.token)
        .await
        .assert_problem(404, "view_not_found");

    let res = app
        .patch(
            &format!("/api/v1/views/{id}"),
            &agent.token,
            json!({"name": "Fires", "query": "priority=urgent"}),
        )
        .await;
    assert_eq!(res.assert_ok(200)["query"], "priority=urgent");
    let mine = app.get("/api/v1/views", &agent.token).await;
    assert_eq!(pluck(&mine.assert_ok(200)["items"], "name"), ["Fires"]);
    assert_eq!(
        app.delete(&format!("/api/v1/views/{id}"), &agent.token)
            .await
            .status,
        204
    );
    let mine = app.get("/api/v1/views", &agent.token).await;
    assert_eq!(mine.assert_ok(200)["items"], json!([]));
    app.shutdown().await;
}

#[tokio::test]
async fn watchers_are_listed_for_those_who_can_see_the_ticket() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "a@example.com", "agent").await;
    let customer = app.member(&owner, "c@example.com", "requester").await;
    let project = app.project(&owner.token, "OPS").await;
    let ticket = app
        .ticket(&owner.token, &project, json!({"title": "Printer"}))
        .await;
    let id = ticket["id"].as_str().unwrap();
    let res = app
        .call(
            Method::POST,
            &format!("/api/v1/tickets/{id}/watch"),
            Some(&agent.token),
            None,
        )
        .await;
    assert_eq!(res.status, 204);
    let watchers = app
        .get(&format!("/api/v1/tickets/{id}/watchers"), &owner.token)
        .await;
    assert_eq!(watchers.assert_ok(200)["user_ids"], json!([agent.user_id]));
    // A requester who did not ask for the ticket does not learn it exists.
    app.get(&format!("/api/v1/tickets/{id}/watchers"), &customer.token)
        .await
        .assert_problem(404, "ticket_not_found");
    app.shutdown().await;
}

#[tokio::test]
async fn the_app_is_served_with_a_strict_policy_and_falls_back_to_its_page() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(app.url("/tickets/OPS-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers["cache-control"], "no-cache");
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self';",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script: {html}");

    // Hashed assets are cached for good; an unchanged page answers 304.
    let asset = html
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .expect("the page loads a script");
    let res = app.client.get(app.url(asset)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let again = app
        .client
        .get(app.url("/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    // What is not the app stays a problem: a missing asset, an unknown API path, a write.
    for (method, path) in [
        (Method::GET, "/assets/missing-0000.js"),
        (Method::GET, "/api/v1/nothing-here"),
        (Method::GET, "/api"),
        (Method::POST, "/tickets"),
        (Method::DELETE, "/"),
    ] {
        let res = app.send(app.request(method.clone(), path, None)).await;
        res.assert_problem(404, "route_not_found");
    }
    app.shutdown().await;
}
