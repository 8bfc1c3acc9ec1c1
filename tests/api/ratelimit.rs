//! Rate limits over HTTP: per credential, per organisation, per address; the headers on every
//! answer; 429 with Retry-After before the handler runs.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

async fn limited(per_credential: u32, per_org: u32, per_address: u32) -> TestApp {
    spawn_app_tuned(None, move |_, serve| {
        serve.rate_limits.rate_limit_per_minute = per_credential;
        serve.rate_limits.rate_limit_org_per_minute = per_org;
        serve.rate_limits.rate_limit_anon_per_minute = per_address;
    })
    .await
}

#[tokio::test]
async fn each_credential_has_its_allowance_and_is_told_where_it_stands() {
    let app = limited(5, 1000, 1000).await;
    let owner = app.signup("acme", "owner@acme.test").await;
    for left in (0..5).rev() {
        let res = app.get("/api/v1/tickets", &owner.token).await;
        res.assert_ok(200);
        let policy = res.headers["ratelimit-policy"].to_str().unwrap();
        assert_eq!(
            policy,
            "\"credential\";q=5;w=60, \"organization\";q=1000;w=60"
        );
        let state = res.headers["ratelimit"].to_str().unwrap();
        assert!(
            state.starts_with(&format!("\"credential\";r={left};t=")),
            "{state}"
        );
    }
    let refused = app.get("/api/v1/tickets", &owner.token).await;
    refused.assert_problem(429, "too_many_requests");
    let wait: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=12).contains(&wait),
        "one request comes back every 12 s: {wait}"
    );
    assert!(refused.headers.contains_key("ratelimit"));
    // Refused before the handler: a write over the limit changes nothing.
    let project = json!({"name": "Over the limit", "key": "OVER"});
    app.post("/api/v1/projects", Some(&owner.token), project)
        .await
        .assert_problem(429, "too_many_requests");

    // Another session of the same person has its own allowance.
    let again = app.login("owner@acme.test", PASSWORD, None).await;
    let second = Session::from_auth(again.assert_ok(200));
    app.get("/api/v1/projects", &second.token)
        .await
        .assert_ok(200);
    app.shutdown().await;
}

#[tokio::test]
async fn an_organisation_shares_one_allowance_and_others_are_untouched() {
    let app = limited(1000, 6, 1000).await;
    let owner = app.signup("acme", "owner@acme.test").await;
    let agent = app.member(&owner, "agent@acme.test", "agent").await;
    let other = app.signup("globex", "owner@globex.test").await;
    // Signing up and inviting used some of acme's allowance; use the rest from two people.
    let mut answers = Vec::new();
    for i in 0..8 {
        let who = if i % 2 == 0 { &owner } else { &agent };
        answers.push(
            app.get("/api/v1/projects", &who.token)
                .await
                .status
                .as_u16(),
        );
    }
    assert!(answers.contains(&429), "{answers:?}");
    let refused = app.get("/api/v1/projects", &agent.token).await;
    refused.assert_problem(429, "too_many_requests");
    assert!(
        refused.headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"organization\";r=0"),
        "{:?}",
        refused.headers["ratelimit"]
    );
    app.get("/api/v1/projects", &other.token)
        .await
        .assert_ok(200);
    app.shutdown().await;
}

#[tokio::test]
async fn requests_without_a_token_count_against_their_address() {
    let app = limited(1000, 1000, 3).await;
    let login = json!({"email": "nobody@acme.test", "password": "wrong password here"});
    for _ in 0..3 {
        let res = app.post("/api/v1/auth/login", None, login.clone()).await;
        assert_eq!(res.status, 401, "{}", res.body);
        assert!(
            res.headers["ratelimit"]
                .to_str()
                .unwrap()
                .starts_with("\"address\"")
        );
    }
    app.post("/api/v1/auth/login", None, login.clone())
        .await
        .assert_problem(429, "too_many_requests");
    // A forged bearer token counts against the address too.
    let forged = app
        .send(app.request(Method::GET, "/api/v1/tickets", Some("not.a.token")))
        .await;
    forged.assert_problem(429, "too_many_requests");
    // The web app and health checks are not API answers and are not limited.
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(!page.headers().contains_key("ratelimit"));
    app.shutdown().await;
}

#[tokio::test]
async fn sign_ups_per_address_are_limited_per_hour_and_0_lifts_the_limit() {
    let signup = |n: usize| {
        json!({"organization_name": format!("Org {n}"), "organization_slug": format!("org-{n}"),
               "name": "Ann", "email": format!("ann{n}@example.com"),
               "password": "correct horse battery staple"})
    };
    let app = spawn_app_tuned(None, |_, serve| {
        serve.rate_limits.signup_limit_per_hour = 3;
    })
    .await;
    for n in 0..3 {
        app.post("/api/v1/auth/signup", None, signup(n))
            .await
            .assert_ok(201);
    }
    let refused = app.post("/api/v1/auth/signup", None, signup(3)).await;
    refused.assert_problem(429, "too_many_requests");
    let wait: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3000..=3600).contains(&wait), "an hour's window: {wait}");
    assert_eq!(app.count("SELECT COUNT(*) FROM organizations").await, 3);

    let unlimited = spawn_app_tuned(None, |_, serve| {
        serve.rate_limits.signup_limit_per_hour = 0;
    })
    .await;
    for n in 0..25 {
        unlimited
            .post("/api/v1/auth/signup", None, signup(n))
            .await
            .assert_ok(201);
    }
}
