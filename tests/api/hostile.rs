//! The second hostile-client pass, each case pinned on both backends: what a stranger can do
//! with a forged token or a scoped API token. (The mail cases are in `tests/api/hostile_mail.rs`.)

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// The operations the OpenAPI document marks as a sign-in's only (security scheme `session`).
const SESSION_ONLY: [&str; 28] = [
    "DELETE /api/v1/api-tokens/{id}",
    "DELETE /api/v1/auth/mfa/totp",
    "DELETE /api/v1/auth/passkeys/{id}",
    "DELETE /api/v1/auth/sessions/{id}",
    "DELETE /api/v1/org",
    "GET /api/v1/api-tokens",
    "GET /api/v1/auth/passkeys",
    "GET /api/v1/auth/sessions",
    "GET /api/v1/exports",
    "GET /api/v1/exports/{id}",
    "GET /api/v1/exports/{id}/download",
    "POST /api/v1/api-tokens",
    "POST /api/v1/auth/logout",
    "POST /api/v1/auth/logout-all",
    "POST /api/v1/auth/mfa/recovery-codes",
    "POST /api/v1/auth/mfa/totp",
    "POST /api/v1/auth/mfa/totp/confirm",
    "POST /api/v1/auth/passkeys/register/finish",
    "POST /api/v1/auth/passkeys/register/start",
    "POST /api/v1/auth/password/change",
    "POST /api/v1/auth/switch",
    "POST /api/v1/billing/checkout",
    "POST /api/v1/billing/portal",
    "POST /api/v1/exports",
    "POST /api/v1/invitations/{token}/accept",
    "POST /api/v1/me/contact-links",
    "POST /api/v1/me/contact-links/confirm",
    "POST /api/v1/org/restore",
];

/// Every operation of the server's own OpenAPI document: `(method, path template, session
/// only)`.
async fn operations(app: &TestApp) -> Vec<(Method, String, bool)> {
    let doc = app
        .send(app.request(Method::GET, "/api/v1/openapi.json", None))
        .await;
    let mut found = Vec::new();
    for (path, item) in doc.body["paths"].as_object().expect("paths") {
        for (name, method) in [
            ("get", Method::GET),
            ("post", Method::POST),
            ("put", Method::PUT),
            ("patch", Method::PATCH),
            ("delete", Method::DELETE),
        ] {
            let Some(op) = item.get(name) else { continue };
            let schemes: Vec<&str> = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .flat_map(|s| s.keys().map(String::as_str))
                .collect();
            found.push((method, path.clone(), schemes.contains(&"session")));
        }
    }
    found
}

/// `{id}`-style parameters filled with something well-formed that names nothing.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                uuid::Uuid::now_v7().to_string()
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Status and problem code of one call; a stream that answers 200 is not read further.
async fn probe(app: &TestApp, method: Method, path: &str, token: &str) -> (u16, String) {
    let res = app
        .request(method, path, Some(token))
        .header("content-type", "application/json")
        .body("{}")
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .expect("answered");
    let status = res.status().as_u16();
    let problem = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    let code = if problem {
        let body: Value = res.json().await.unwrap_or_default();
        body["code"].as_str().unwrap_or_default().to_owned()
    } else {
        String::new()
    };
    (status, code)
}

/// An API token of any scope never reaches an account or session endpoint (it would become a
/// session that outlives its revocation, or end its owner's sessions): every route of the
/// document × every credential kind, decided by the matrix (`Action::AccountManage`) before the
/// body is read.
#[tokio::test]
async fn api_tokens_never_reach_account_and_session_endpoints() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    // The same person owns a second organisation: the token's way out, if it had one.
    app.post(
        "/api/v1/auth/signup",
        None,
        json!({"organization_name": "Other", "organization_slug": "other", "name": "O",
               "email": "o@example.com", "password": PASSWORD}),
    )
    .await
    .assert_ok(201);
    let mut tokens = Vec::new();
    for scope in ["read", "write", "admin"] {
        let made = app
            .post(
                "/api/v1/api-tokens",
                Some(&owner.token),
                json!({"name": scope, "scopes": [scope]}),
            )
            .await;
        tokens.push(made.assert_ok(201)["token"].as_str().unwrap().to_owned());
    }

    let ops = operations(&app).await;
    let session_only: BTreeSet<String> = ops
        .iter()
        .filter(|(_, _, only)| *only)
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    assert_eq!(
        session_only,
        SESSION_ONLY.iter().map(|s| s.to_string()).collect(),
        "the document marks exactly the account and session endpoints"
    );
    let mut checked = 0;
    for (method, template, only) in &ops {
        let path = concrete(template);
        for token in &tokens {
            let (status, code) = probe(&app, method.clone(), &path, token).await;
            if *only {
                assert_eq!(
                    (status, code.as_str()),
                    (403, "api_token_not_allowed"),
                    "{method} {template}"
                );
            } else {
                assert_ne!(code, "api_token_not_allowed", "{method} {template}");
            }
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked} calls");

    // A person signed in reaches each of them (a fresh session per call: some end it).
    for (method, template, _) in ops.iter().filter(|(_, _, only)| *only) {
        let session = Session::from_auth(
            app.login("o@example.com", PASSWORD, Some("acme"))
                .await
                .assert_ok(200),
        );
        let (_, code) = probe(&app, method.clone(), &concrete(template), &session.token).await;
        assert_ne!(code, "api_token_not_allowed", "{method} {template}");
    }

    // The headline of the report: a write token asked for an owner session and got one.
    let write = &tokens[1];
    for (path, body) in [
        ("/api/v1/auth/switch", json!({"organization": "other"})),
        ("/api/v1/auth/switch", json!({"organization": "acme"})),
        (
            "/api/v1/api-tokens",
            json!({"name": "child", "scopes": ["admin"]}),
        ),
        ("/api/v1/auth/logout-all", json!({})),
        (
            "/api/v1/auth/password/change",
            json!({"current_password": PASSWORD, "new_password": "another long passphrase"}),
        ),
    ] {
        app.post(path, Some(write), body)
            .await
            .assert_problem(403, "api_token_not_allowed");
    }
    // What a token may learn of its owner: its own organisation, not the others.
    let me = app.get("/api/v1/auth/me", write).await;
    let orgs = pluck(&me.assert_ok(200)["organizations"], "role");
    assert_eq!(orgs.len(), 1, "{}", me.body);
    // Nothing was minted: the owner's sessions and tokens are as they were.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM api_tokens").await,
        3,
        "no token minted another"
    );
    app.shutdown().await;
}

/// A well-formed `dkt_<org>_<secret>` is not a credential until authentication finds it: forged
/// ones count against the address they come from (so one address cannot escape its limit with a
/// new key per request) and never against the organisation they name (so a stranger who knows
/// an organisation's id cannot put its people on 429).
#[tokio::test]
async fn forged_api_tokens_count_against_their_address_not_the_organisation_they_name() {
    let app = spawn_app_tuned(None, |_, serve| {
        serve.rate_limits.rate_limit_per_minute = 1000;
        serve.rate_limits.rate_limit_org_per_minute = 12;
        serve.rate_limits.rate_limit_anon_per_minute = 5;
    })
    .await;
    let owner = app.signup("acme", "o@example.com").await;
    let made = app
        .post(
            "/api/v1/api-tokens",
            Some(&owner.token),
            json!({"name": "ci"}),
        )
        .await;
    let genuine = made.assert_ok(201)["token"].as_str().unwrap().to_owned();
    // Its first request is counted against the address; authentication then vouches for it.
    app.get("/api/v1/projects", &genuine).await.assert_ok(200);
    let again = app.get("/api/v1/projects", &genuine).await;
    assert!(
        again.headers["ratelimit-policy"]
            .to_str()
            .unwrap()
            .contains("\"organization\""),
        "a verified token counts as itself: {:?}",
        again.headers["ratelimit-policy"]
    );

    let org = uuid::Uuid::parse_str(&owner.org_id).unwrap().simple();
    let mut statuses = Vec::new();
    for n in 0..30 {
        // Well-formed: 43 characters of base64url, as a real secret.
        let forged = format!("dkt_{org}_{n:0>10}{}", "A".repeat(33));
        assert!(docket::identity::tokens::OrgToken::parse("dkt", &forged).is_some());
        let res = app.get("/api/v1/projects", &forged).await;
        if res.status == 429 {
            assert!(
                res.headers["ratelimit"]
                    .to_str()
                    .unwrap()
                    .starts_with("\"address\""),
                "{:?}",
                res.headers["ratelimit"]
            );
        }
        statuses.push(res.status.as_u16());
    }
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)) && statuses.ends_with(&[429; 20]),
        "forgeries are refused and then limited by address: {statuses:?}"
    );
    // The organisation's allowance is untouched: its people and its genuine token go on.
    let res = app.get("/api/v1/projects", &owner.token).await;
    res.assert_ok(200);
    let left: u32 = res.headers["ratelimit"]
        .to_str()
        .unwrap()
        .strip_prefix("\"organization\";r=")
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.parse().ok())
        .expect("the organisation is the closest limit");
    assert!(
        left >= 7,
        "forgeries used the organisation's allowance: {left} left"
    );
    app.get("/api/v1/projects", &genuine).await.assert_ok(200);
    app.shutdown().await;
}

/// Sign-up told an existing address (401) from a new one (201). Where the server sends mail,
/// the answer is the same either way (202) and the address is proven by a mailed link; an
/// existing account that gave its right password gets a link that creates the organisation
/// for it, a wrong password gets a note and no link, and nothing exists before the link is
/// followed.
#[tokio::test]
async fn sign_up_answers_the_same_for_every_address_and_is_confirmed_by_mail() {
    let smtp = crate::mailservers::Smtp::start().await;
    let url = smtp.url();
    let app = spawn_app_tuned(None, move |_, serve| {
        serve.mail = mail_config(Some(url));
        serve.mail.signup_confirmation = true;
    })
    .await;
    let signup = |slug: &str, email: &str, password: &str| {
        json!({"organization_name": format!("Org {slug}"), "organization_slug": slug,
               "name": "Ann", "email": email, "password": password})
    };
    let confirm_link = |to: &str| {
        let mails = smtp.to(to);
        let last = mails.last().expect("a mail").clone();
        last.link("https://docket.test/signup/confirm/")
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    };

    let first = app
        .post(
            "/api/v1/auth/signup",
            None,
            signup("acme", "ann@example.com", PASSWORD),
        )
        .await;
    let first_body = first.assert_ok(202).clone();
    assert_eq!(first_body["status"], "confirmation_sent");
    assert!(first_body.get("access_token").is_none());
    assert_eq!(app.count("SELECT COUNT(*) FROM organizations").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    app.deliver_mail().await;
    let token = confirm_link("ann@example.com");
    let done = app
        .post("/api/v1/auth/signup/confirm", None, json!({"token": token}))
        .await;
    let ann = Session::from_auth(done.assert_ok(201));
    app.get("/api/v1/org", &ann.token).await.assert_ok(200);
    // Once only.
    app.post("/api/v1/auth/signup/confirm", None, json!({"token": token}))
        .await
        .assert_problem(422, "validation_failed");
    app.post(
        "/api/v1/auth/signup/confirm",
        None,
        json!({"token": "su_forged"}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // The address exists now: a stranger with a wrong password gets the very same answer, and
    // the mail to Ann has no link.
    let stranger = app
        .post(
            "/api/v1/auth/signup",
            None,
            signup("beta", "ann@example.com", "a stranger's own guess"),
        )
        .await;
    assert_eq!(stranger.status, first.status);
    assert_eq!(stranger.body, first_body);
    app.deliver_mail().await;
    let note = smtp.to("ann@example.com").last().unwrap().clone();
    assert!(
        note.subject().contains("Someone tried"),
        "{}",
        note.subject()
    );
    assert!(!note.text().contains("/signup/confirm/"));
    assert_eq!(app.count("SELECT COUNT(*) FROM organizations").await, 1);

    // Ann herself, with her password: a link that adds the organisation to her account.
    let again = app
        .post(
            "/api/v1/auth/signup",
            None,
            signup("gamma", "ann@example.com", PASSWORD),
        )
        .await;
    assert_eq!(again.body, first_body);
    app.deliver_mail().await;
    let token = confirm_link("ann@example.com");
    let gamma = app
        .post("/api/v1/auth/signup/confirm", None, json!({"token": token}))
        .await;
    assert_eq!(gamma.assert_ok(201)["user"]["id"], ann.user_id.as_str());
    assert_eq!(gamma.body["organization"]["slug"], "gamma");

    // A taken slug is a conflict whoever asks; nobody can fill an inbox with sign-up mails.
    app.post(
        "/api/v1/auth/signup",
        None,
        signup("acme", "bob@example.com", PASSWORD),
    )
    .await
    .assert_problem(409, "slug_taken");
    for n in 0..5 {
        app.post(
            "/api/v1/auth/signup",
            None,
            signup(&format!("flood-{n}"), "victim@example.com", PASSWORD),
        )
        .await
        .assert_ok(202);
    }
    app.deliver_mail().await;
    assert_eq!(smtp.to("victim@example.com").len(), 3);
    app.shutdown().await;
}
