use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn signup_login_me_and_case_insensitive_email() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "Ann@Example.com").await;
    assert_eq!(owner.email, "ann@example.com");

    let res = app.login("ANN@example.COM", PASSWORD, None).await;
    let body = res.assert_ok(200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["role"], "owner");
    assert_eq!(body["organization"]["slug"], "acme");

    let me = app
        .get("/api/v1/auth/me", body["access_token"].as_str().unwrap())
        .await;
    let me = me.assert_ok(200);
    assert_eq!(me["user"]["email"], "ann@example.com");
    assert_eq!(me["organizations"].as_array().unwrap().len(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn signup_rejects_bad_fields_and_taken_slug() {
    let app = spawn_app().await;
    app.signup("acme", "a@example.com").await;
    let res = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"organization_name": "X", "organization_slug": "acme",
            "name": "B", "email": "b@example.com", "password": PASSWORD}),
        )
        .await;
    res.assert_problem(409, "slug_taken");

    let res = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"organization_name": "", "organization_slug": "Bad Slug",
            "name": "B", "email": "not-an-email", "password": "short"}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    let fields: Vec<&str> = res.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "organization_name",
        "organization_slug",
        "email",
        "password",
    ] {
        assert!(fields.contains(&f), "{f} missing in {fields:?}");
    }
    // Nothing was created by the rejected sign-ups.
    app.login("b@example.com", PASSWORD, None)
        .await
        .assert_problem(401, "invalid_credentials");
    app.shutdown().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_account_look_the_same() {
    let app = spawn_app().await;
    app.signup("acme", "a@example.com").await;
    let wrong = app.login("a@example.com", "not the password", None).await;
    wrong.assert_problem(401, "invalid_credentials");
    assert_eq!(wrong.headers["www-authenticate"], "Bearer");
    let unknown = app.login("nobody@example.com", PASSWORD, None).await;
    unknown.assert_problem(401, "invalid_credentials");
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
    app.shutdown().await;
}

fn mint(claims: serde_json::Value, key: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn bad_tokens_are_401_with_bearer_challenge() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "a@example.com").await;

    let none = app.call(Method::GET, "/api/v1/auth/me", None, None).await;
    none.assert_problem(401, "missing_token");
    assert_eq!(none.headers["www-authenticate"], "Bearer");

    let basic = app
        .send(
            app.request(Method::GET, "/api/v1/auth/me", None)
                .header("authorization", "Basic YTpi"),
        )
        .await;
    basic.assert_problem(401, "missing_token");

    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64| json!({"sub": owner.user_id, "org": owner.org_id, "sid": session_id(&owner.token), "role": "owner", "iat": now - 1000, "exp": exp});
    let expired = mint(claims(now - 600), JWT_SECRET);
    let forged = mint(
        claims(now + 600),
        "another-key-that-is-also-long-enough-012345",
    );
    let valid_again = mint(claims(now + 600), JWT_SECRET);
    let header_none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims(now + 600).to_string());
    let alg_none = format!("{header_none}.{payload}.");
    let tampered = {
        let mut parts: Vec<&str> = owner.token.split('.').collect();
        let other = URL_SAFE_NO_PAD.encode(claims(now + 6000).to_string());
        parts[1] = &other;
        parts.join(".")
    };
    for bad in ["garbage", "a.b.c", &expired, &forged, &alg_none, &tampered] {
        let res = app.get("/api/v1/auth/me", bad).await;
        res.assert_problem(401, "invalid_token");
        assert_eq!(
            res.headers["www-authenticate"], r#"Bearer error="invalid_token""#,
            "{bad}"
        );
    }
    // The same claims signed with the right key work: the rejections above were about the token.
    app.get("/api/v1/auth/me", &valid_again)
        .await
        .assert_ok(200);
    app.shutdown().await;
}

fn session_id(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "a@example.com").await;

    let first = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": owner.refresh}),
        )
        .await;
    let first = Session::from_auth(first.assert_ok(200));
    assert_ne!(first.refresh, owner.refresh);
    app.get("/api/v1/auth/me", &first.token)
        .await
        .assert_ok(200);

    // The rotated token again: treated as stolen, the whole session ends.
    let reuse = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": owner.refresh}),
        )
        .await;
    reuse.assert_problem(401, "invalid_token");
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": first.refresh}),
    )
    .await
    .assert_problem(401, "invalid_token");
    app.get("/api/v1/auth/me", &first.token)
        .await
        .assert_problem(401, "invalid_token");
    app.get("/api/v1/auth/me", &owner.token)
        .await
        .assert_problem(401, "invalid_token");

    // Other sessions of the same person are untouched.
    let other = Session::from_auth(
        app.login("a@example.com", PASSWORD, None)
            .await
            .assert_ok(200),
    );
    app.get("/api/v1/auth/me", &other.token)
        .await
        .assert_ok(200);

    for junk in [
        "",
        "rt_",
        "rt_00000000000000000000000000000000_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "x".repeat(5000).as_str(),
    ] {
        app.post("/api/v1/auth/refresh", None, json!({"refresh_token": junk}))
            .await
            .assert_problem(401, "invalid_token");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_yield_at_most_one_winner() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "a@example.com").await;
    let calls = (0..6).map(|_| {
        app.post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": owner.refresh}),
        )
    });
    let results = futures::future::join_all(calls).await;
    // The first rotation wins; every other attempt is reuse and ends the session.
    let ok = results.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 1, "refreshes that succeeded");
    for r in results.iter().filter(|r| r.status != 200) {
        r.assert_problem(401, "invalid_token");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn logout_ends_the_access_token_and_the_given_refresh_token() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "a@example.com").await;
    let second = Session::from_auth(
        app.login("a@example.com", PASSWORD, None)
            .await
            .assert_ok(200),
    );

    let res = app
        .send(app.request(Method::POST, "/api/v1/auth/logout", Some(&owner.token)))
        .await;
    assert_eq!(res.status, 204);
    app.get("/api/v1/auth/me", &owner.token)
        .await
        .assert_problem(401, "invalid_token");
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": owner.refresh}),
    )
    .await
    .assert_problem(401, "invalid_token");
    app.get("/api/v1/auth/me", &second.token)
        .await
        .assert_ok(200);

    // Logging out of the second session while naming a third's refresh token ends both.
    let third = Session::from_auth(
        app.login("a@example.com", PASSWORD, None)
            .await
            .assert_ok(200),
    );
    let res = app
        .post(
            "/api/v1/auth/logout",
            Some(&second.token),
            json!({"refresh_token": third.refresh}),
        )
        .await;
    assert_eq!(res.status, 204);
    app.get("/api/v1/auth/me", &second.token)
        .await
        .assert_problem(401, "invalid_token");
    app.get("/api/v1/auth/me", &third.token)
        .await
        .assert_problem(401, "invalid_token");
    app.shutdown().await;
}

#[tokio::test]
async fn one_person_in_two_organisations_logs_in_and_switches() {
    let app = spawn_app().await;
    let a = app.signup("alpha", "p@example.com").await;
    // The same account signs up a second organisation with its password.
    let b = app.signup("beta", "p@example.com").await;
    assert_eq!(a.user_id, b.user_id);
    assert_ne!(a.org_id, b.org_id);

    let res = app.login("p@example.com", PASSWORD, None).await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "organization");
    let in_beta = app.login("p@example.com", PASSWORD, Some("beta")).await;
    assert_eq!(
        in_beta.assert_ok(200)["organization"]["id"],
        b.org_id.as_str()
    );
    app.login("p@example.com", PASSWORD, Some("gamma"))
        .await
        .assert_problem(401, "invalid_credentials");

    let switched = app
        .post(
            "/api/v1/auth/switch",
            Some(&a.token),
            json!({"organization": "beta"}),
        )
        .await;
    let switched = Session::from_auth(switched.assert_ok(200));
    assert_eq!(switched.org_id, b.org_id);
    assert_eq!(
        app.get("/api/v1/org", &switched.token).await.assert_ok(200)["slug"],
        "beta"
    );
    // Switching to an organisation the person is not in is not found.
    let stranger = app.signup("gamma", "s@example.com").await;
    app.post(
        "/api/v1/auth/switch",
        Some(&stranger.token),
        json!({"organization": "alpha"}),
    )
    .await
    .assert_problem(404, "organization_not_found");

    // Signing up another organisation for an existing account needs its password.
    let res = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"organization_name": "Delta", "organization_slug": "delta",
            "name": "X", "email": "p@example.com", "password": "wrong password!"}),
        )
        .await;
    res.assert_problem(401, "invalid_credentials");
    app.shutdown().await;
}

#[tokio::test]
async fn repeated_failures_slow_down_then_lock_the_account() {
    let app = spawn_app().await;
    app.signup("acme", "a@example.com").await;
    let started = std::time::Instant::now();
    for _ in 0..10 {
        app.login("a@example.com", "wrong password", None)
            .await
            .assert_problem(401, "invalid_credentials");
    }
    // Failures 3..10 were held back (250 ms growing to 2 s).
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let locked = app.login("a@example.com", PASSWORD, None).await;
    locked.assert_problem(429, "too_many_requests");
    let retry: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry));
    // Another account from elsewhere is unaffected by this account's lock.
    app.signup("other", "b@example.com").await;
    app.login("b@example.com", PASSWORD, None)
        .await
        .assert_ok(200);
    app.shutdown().await;
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions_everywhere() {
    let app = spawn_app().await;
    let here = app.signup("acme", "ann@example.com").await;
    // The same account in a second organisation, and a second session in the first.
    let res = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"organization_name": "Beta", "organization_slug": "beta", "name": "Ann",
                   "email": "ann@example.com", "password": PASSWORD}),
        )
        .await;
    let elsewhere = Session::from_auth(res.assert_ok(201));
    let res = app.login("ann@example.com", PASSWORD, Some("acme")).await;
    let other = Session::from_auth(res.assert_ok(200));
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});

    let res = app
        .post(
            "/api/v1/auth/password/change",
            Some(&here.token),
            change("not my password at all", "a brand new passphrase 7"),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "current_password");
    let res = app
        .post(
            "/api/v1/auth/password/change",
            Some(&here.token),
            change(PASSWORD, "password123"),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "new_password");
    // Nothing changed yet: every session still works.
    for s in [&here, &elsewhere, &other] {
        app.get("/api/v1/auth/me", &s.token).await.assert_ok(200);
    }

    let res = app
        .post(
            "/api/v1/auth/password/change",
            Some(&here.token),
            change(PASSWORD, "a brand new passphrase 7"),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.body);
    app.get("/api/v1/auth/me", &here.token).await.assert_ok(200);
    for s in [&elsewhere, &other] {
        app.get("/api/v1/auth/me", &s.token)
            .await
            .assert_problem(401, "invalid_token");
        app.post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": s.refresh}),
        )
        .await
        .assert_problem(401, "invalid_token");
    }
    app.login("ann@example.com", PASSWORD, Some("acme"))
        .await
        .assert_problem(401, "invalid_credentials");
    app.login("ann@example.com", "a brand new passphrase 7", Some("beta"))
        .await
        .assert_ok(200);
    let log = app.get("/api/v1/audit-log", &here.token).await;
    assert!(log.assert_ok(200).to_string().contains("password.changed"));
    app.shutdown().await;
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_account() {
    let app = spawn_app().await;
    let first = app.signup("acme", "ann@example.com").await;
    let res = app.login("ann@example.com", PASSWORD, None).await;
    let second = Session::from_auth(res.assert_ok(200));
    let colleague = app.member(&first, "bob@example.com", "agent").await;
    let res = app
        .call(
            Method::POST,
            "/api/v1/auth/logout-all",
            Some(&second.token),
            None,
        )
        .await;
    assert_eq!(res.status, 204);
    for s in [&first, &second] {
        app.get("/api/v1/auth/me", &s.token)
            .await
            .assert_problem(401, "invalid_token");
    }
    // Someone else's session is not touched.
    app.get("/api/v1/auth/me", &colleague.token)
        .await
        .assert_ok(200);
    app.shutdown().await;
}
