//! Single sign-on against a real OpenID provider: panva's `oidc-provider` (tests/oidc), started
//! on loopback per test and driven through its own sign-in and consent pages.

use std::{process::Stdio, time::Duration};

use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::helpers::*;

const CLIENT_ID: &str = "docket";
const CLIENT_SECRET: &str = "a client secret for the tests";
const CALLBACK: &str = "https://docket.test/api/v1/auth/sso/callback";

/// A running provider; stopped when dropped.
struct Provider {
    port: u16,
    child: Child,
}

impl Provider {
    async fn start(port: Option<u16>, key_id: &str, code_ttl: u64) -> Provider {
        let port = port.unwrap_or_else(free_port);
        let accounts = json!({
            "dana": {"email": "dana@acme.example", "email_verified": true, "name": "Dana Idp"},
            "ann": {"email": "ann@acme.example", "email_verified": true, "name": "Ann"},
            "eve": {"email": "eve@evil.example", "email_verified": true, "name": "Eve"},
            "una": {"email": "una@acme.example", "email_verified": false, "name": "Una"},
            "olga": {"email": "olga@acme.example", "email_verified": true, "name": "Olga"},
        });
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc");
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(dir)
            .env("PORT", port.to_string())
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URI", CALLBACK)
            .env("ACCOUNTS", accounts.to_string())
            .env("CODE_TTL", code_ttl.to_string())
            .env("KEY_ID", key_id)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs tests/oidc/provider.mjs (scripts/test installs its packages)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("ready") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "the OpenID provider started");
        // Keep reading: the provider prints notices, and a closed pipe would end it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Provider { port, child }
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Docket's answer to a browser's GET of `path`, redirects not followed, with `cookie` if any.
async fn docket_get(app: &TestApp, path: &str, cookie: Option<String>) -> reqwest::Response {
    let mut req = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url(path));
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    req.send().await.unwrap()
}

/// Where starting single sign-on for `slug` sends the browser (a refusal: the sign-in page).
async fn start_location(app: &TestApp, slug: &str) -> String {
    let res = docket_get(app, &format!("/api/v1/auth/sso/{slug}/start"), None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    location(&res)
}

fn location(res: &reqwest::Response) -> String {
    res.headers()[header::LOCATION].to_str().unwrap().to_owned()
}

fn cookie_value(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap()[name.len() + 1..].to_owned())
}

/// A browser at Docket's sign-in: starts single sign-on for `slug`, signs in at the provider
/// as `login`, and stops at the provider's redirect back to Docket.
struct Browser {
    /// For the provider: keeps its cookies.
    client: reqwest::Client,
}

/// Where a sign-in stands when the provider sends the browser back.
struct Returned {
    /// The callback's query string.
    query: String,
    /// Docket's flow cookie.
    flow_cookie: String,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// Docket's start: the provider's authorization URL and the flow cookie.
    async fn start(&self, app: &TestApp, slug: &str) -> (String, String) {
        let res = self
            .client
            .get(app.url(&format!("/api/v1/auth/sso/{slug}/start?next=/tickets")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let cookie = cookie_value(&res, "docket_sso").expect("the flow cookie");
        (location(&res), cookie)
    }

    /// Signs in at the provider from `authorize` on; returns the callback's query.
    async fn sign_in_at_provider(&self, authorize: &str, login: &str) -> String {
        let mut url = authorize.to_owned();
        let mut form: Option<Vec<(&str, String)>> = None;
        for _ in 0..20 {
            let res = match form.take() {
                Some(fields) => self.client.post(&url).form(&fields).send().await,
                None => self.client.get(&url).send().await,
            }
            .unwrap();
            if res.status().is_redirection() {
                let next = location(&res);
                if let Some(query) = next.strip_prefix(&format!("{CALLBACK}?")) {
                    return query.to_owned();
                }
                url = reqwest::Url::parse(&url)
                    .unwrap()
                    .join(&next)
                    .unwrap()
                    .to_string();
                continue;
            }
            let page = res.text().await.unwrap();
            assert!(page.contains("<form"), "a provider page: {page}");
            let action = page
                .split("action=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("the form's action")
                .to_owned();
            let prompt = if page.contains("name=\"prompt\" value=\"login\"") {
                "login"
            } else {
                "consent"
            };
            url = reqwest::Url::parse(&url)
                .unwrap()
                .join(&action)
                .unwrap()
                .to_string();
            form = Some(vec![
                ("prompt", prompt.to_owned()),
                ("login", login.to_owned()),
                ("password", "any".to_owned()),
            ]);
        }
        panic!("the provider's pages did not lead back to Docket");
    }

    async fn through_provider(&self, app: &TestApp, slug: &str, login: &str) -> Returned {
        let (authorize, flow_cookie) = self.start(app, slug).await;
        let query = self.sign_in_at_provider(&authorize, login).await;
        Returned { query, flow_cookie }
    }
}

/// Docket's callback with `query` and `flow_cookie`: where it sends the browser, and the
/// refresh cookie it set.
async fn callback(
    app: &TestApp,
    query: &str,
    flow_cookie: Option<&str>,
) -> (String, Option<String>) {
    let res = docket_get(
        app,
        &format!("/api/v1/auth/sso/callback?{query}"),
        flow_cookie.map(|c| format!("docket_sso={c}")),
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        res.text().await
    );
    (
        location(&res),
        cookie_value(&res, "docket_refresh").filter(|v| !v.is_empty()),
    )
}

/// Signs in with the refresh cookie, as the web app does after the redirect.
async fn session_from_cookie(app: &TestApp, refresh: &str) -> Value {
    let res = app
        .send(
            app.request(reqwest::Method::POST, "/api/v1/auth/refresh", None)
                .header("x-docket-refresh", "cookie")
                .header(header::COOKIE, format!("docket_refresh={refresh}")),
        )
        .await;
    res.assert_ok(200).clone()
}

async fn configure(app: &TestApp, owner: &Session, provider: &Provider, extra: Value) -> Resp {
    let mut body = json!({
        "issuer": provider.issuer(),
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "allowed_domains": ["acme.example"],
        "default_role": "agent",
        "enforce": false,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.put("/api/v1/org/sso", &owner.token, body).await
}

#[tokio::test]
async fn a_new_person_in_an_allowed_domain_joins_and_an_existing_member_is_linked() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "ann@acme.example").await;
    let provider = Provider::start(None, "key-1", 60).await;
    let saved = configure(&app, &owner, &provider, json!({})).await;
    let saved = saved.assert_ok(200).clone();
    assert!(saved.get("client_secret").is_none(), "{saved}");
    assert_eq!(saved["callback_url"], CALLBACK);
    let got = app.get("/api/v1/org/sso", &owner.token).await;
    assert_eq!(
        got.assert_ok(200)["allowed_domains"],
        json!(["acme.example"])
    );
    // The secret is sealed at rest.
    let stored: String = app.scalar("SELECT client_secret FROM org_sso").await;
    assert!(!stored.contains(CLIENT_SECRET));
    // Test connection: discovery and keys.
    let tested = app
        .post("/api/v1/org/sso/test", Some(&owner.token), json!({}))
        .await;
    assert_eq!(tested.assert_ok(200)["signing_keys"], 1);

    // Dana is new: she joins as an agent, and lands where she was going.
    let browser = Browser::new();
    let back = browser.through_provider(&app, "acme", "dana").await;
    let (to, refresh) = callback(&app, &back.query, Some(&back.flow_cookie)).await;
    assert_eq!(to, "/tickets");
    let dana = session_from_cookie(&app, &refresh.expect("the refresh cookie")).await;
    assert_eq!(dana["user"]["email"], "dana@acme.example");
    assert_eq!(dana["user"]["name"], "Dana Idp");
    assert_eq!(dana["role"], "agent");
    // She has no password: the password sign-in finds nothing to match.
    app.login("dana@acme.example", "", None)
        .await
        .assert_problem(401, "invalid_credentials");

    // Ann (the owner, already a member) is linked on first use, then found by (iss, sub).
    for _ in 0..2 {
        let back = Browser::new().through_provider(&app, "acme", "ann").await;
        let (to, refresh) = callback(&app, &back.query, Some(&back.flow_cookie)).await;
        assert_eq!(to, "/tickets");
        let ann = session_from_cookie(&app, &refresh.unwrap()).await;
        assert_eq!(ann["user"]["id"].as_str().unwrap(), owner.user_id);
        assert_eq!(ann["role"], "owner");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM sso_identities").await, 2);

    // Replayed: the same callback again finds its ceremony gone.
    let (to, refresh) = callback(&app, &back.query, Some(&back.flow_cookie)).await;
    assert_eq!(to, "/signin?sso_error=sso_state_mismatch");
    assert!(refresh.is_none());
    let audit = app.all_items("/api/v1/audit-log", &owner.token).await;
    assert!(
        audit.iter().any(|e| e["action"] == "member.joined_by_sso"),
        "{audit:?}"
    );
    provider.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn refused_sign_ins_go_back_to_the_sign_in_page_with_a_reason() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "owner@acme.example").await;
    // Olga has an account elsewhere, and is no member here.
    app.signup("other", "olga@acme.example").await;
    let provider = Provider::start(None, "key-1", 60).await;
    configure(&app, &owner, &provider, json!({}))
        .await
        .assert_ok(200);

    for (login, reason) in [
        ("eve", "sso_domain_not_allowed"),
        ("una", "sso_email_unverified"),
        ("olga", "sso_not_member"),
    ] {
        let back = Browser::new().through_provider(&app, "acme", login).await;
        let (to, refresh) = callback(&app, &back.query, Some(&back.flow_cookie)).await;
        assert_eq!(to, format!("/signin?sso_error={reason}"), "{login}");
        assert!(refresh.is_none());
    }

    // Forged state, and no flow cookie at all.
    let back = Browser::new().through_provider(&app, "acme", "dana").await;
    let forged = back.query.replace("state=", "state=x");
    let (to, _) = callback(&app, &forged, Some(&back.flow_cookie)).await;
    assert_eq!(to, "/signin?sso_error=sso_state_mismatch");
    let (to, _) = callback(&app, &back.query, None).await;
    assert_eq!(to, "/signin?sso_error=sso_state_mismatch");
    let (to, _) = callback(&app, &back.query, Some("tampered")).await;
    assert_eq!(to, "/signin?sso_error=sso_state_mismatch");

    // A wrong nonce: the browser asks the provider itself with this flow's state and PKCE
    // challenge, but another nonce; the code exchanges, and the ID token is refused.
    let browser = Browser::new();
    let (authorize, flow_cookie) = browser.start(&app, "acme").await;
    let mut url = reqwest::Url::parse(&authorize).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "nonce" {
                "another-nonce".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let query = browser.sign_in_at_provider(url.as_str(), "dana").await;
    let (to, _) = callback(&app, &query, Some(&flow_cookie)).await;
    assert_eq!(to, "/signin?sso_error=sso_invalid_token");

    // The provider's refusal, for this flow.
    let (authorize, flow_cookie) = Browser::new().start(&app, "acme").await;
    let url = reqwest::Url::parse(&authorize).unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let (to, _) = callback(
        &app,
        &format!("error=access_denied&state={state}"),
        Some(&flow_cookie),
    )
    .await;
    assert_eq!(to, "/signin?sso_error=sso_denied");

    // Unknown organisation.
    assert_eq!(
        start_location(&app, "nobody").await,
        "/signin?sso_error=sso_not_configured"
    );
    provider.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn expired_codes_rotated_keys_and_a_provider_that_is_down() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "owner@acme.example").await;
    let provider = Provider::start(None, "key-1", 1).await;
    let port = provider.port;
    configure(&app, &owner, &provider, json!({}))
        .await
        .assert_ok(200);

    // A code past its lifetime is refused by the provider at the exchange.
    let back = Browser::new().through_provider(&app, "acme", "dana").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (to, _) = callback(&app, &back.query, Some(&back.flow_cookie)).await;
    assert_eq!(to, "/signin?sso_error=sso_exchange_failed");

    // The provider rotates its key: the next sign-in is verified with the new one.
    provider.stop().await;
    let provider = Provider::start(Some(port), "key-2", 60).await;
    let back = Browser::new().through_provider(&app, "acme", "dana").await;
    let (to, refresh) = callback(&app, &back.query, Some(&back.flow_cookie)).await;
    assert_eq!(to, "/tickets");
    assert!(refresh.is_some());

    // Down: a clear reason, never a 500.
    provider.stop().await;
    assert_eq!(
        start_location(&app, "acme").await,
        "/signin?sso_error=sso_unavailable"
    );
    app.post("/api/v1/org/sso/test", Some(&owner.token), json!({}))
        .await
        .assert_problem(422, "sso_unreachable");
    app.shutdown().await;
}

#[tokio::test]
async fn enforce_refuses_passwords_to_all_but_owners_and_settings_are_checked() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "owner@acme.example").await;
    let agent = app.member(&owner, "bob@acme.example", "agent").await;
    let provider = Provider::start(None, "key-1", 60).await;

    // Bad settings, each on its field; agents may not touch it.
    let bad = app
        .put(
            "/api/v1/org/sso",
            &owner.token,
            json!({"issuer": "ftp://x", "client_id": "", "allowed_domains": ["not a domain"],
                   "default_role": "owner"}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in ["issuer", "client_id", "allowed_domains[0]", "default_role"] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    configure(&app, &owner, &provider, json!({"client_secret": null}))
        .await
        .assert_problem(422, "validation_failed");
    configure(&app, &agent, &provider, json!({}))
        .await
        .assert_problem(403, "forbidden");
    app.get("/api/v1/org/sso", &agent.token)
        .await
        .assert_problem(403, "forbidden");

    configure(&app, &owner, &provider, json!({"enforce": true}))
        .await
        .assert_ok(200);
    // Keeping the secret: leave it out.
    configure(
        &app,
        &owner,
        &provider,
        json!({"enforce": true, "client_secret": null}),
    )
    .await
    .assert_ok(200);
    app.login("bob@acme.example", PASSWORD, None)
        .await
        .assert_problem(403, "sso_required");
    // Owners keep a way in.
    app.login("owner@acme.example", PASSWORD, None)
        .await
        .assert_ok(200);
    // Single sign-on itself goes on.
    let back = Browser::new().through_provider(&app, "acme", "dana").await;
    let (to, _) = callback(&app, &back.query, Some(&back.flow_cookie)).await;
    assert_eq!(to, "/tickets");

    app.delete("/api/v1/org/sso", &owner.token)
        .await
        .assert_ok(204);
    app.login("bob@acme.example", PASSWORD, None)
        .await
        .assert_ok(200);
    provider.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_issuer_goes_through_the_outbound_guard() {
    // Without loopback allowed, an issuer on loopback is refused when saved.
    let app = spawn_app_tuned(None, |_, serve| {
        serve.webhooks.webhook_allowed_nets.clear();
    })
    .await;
    let owner = app.signup("acme", "owner@acme.example").await;
    let res = app
        .put(
            "/api/v1/org/sso",
            &owner.token,
            json!({"issuer": "http://127.0.0.1:9/", "client_id": "x", "client_secret": "y"}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "issuer");
    // A name that resolves to loopback is refused when fetched.
    app.put(
        "/api/v1/org/sso",
        &owner.token,
        json!({"issuer": "http://localhost:9/", "client_id": "x", "client_secret": "y"}),
    )
    .await
    .assert_ok(200);
    app.post("/api/v1/org/sso/test", Some(&owner.token), json!({}))
        .await
        .assert_problem(422, "sso_unreachable");
    app.shutdown().await;
}

#[tokio::test]
async fn one_organisations_single_sign_on_is_walled_from_another() {
    let app = spawn_app().await;
    let acme = app.signup("acme", "owner@acme.example").await;
    let other = app.signup("other", "owner@other.example").await;
    let provider = Provider::start(None, "key-1", 60).await;
    configure(&app, &acme, &provider, json!({"enforce": true}))
        .await
        .assert_ok(200);
    // The other organisation sees none of it, and its own changes touch only its own.
    app.get("/api/v1/org/sso", &other.token)
        .await
        .assert_problem(404, "sso_settings_not_found");
    app.post("/api/v1/org/sso/test", Some(&other.token), json!({}))
        .await
        .assert_problem(404, "sso_settings_not_found");
    app.delete("/api/v1/org/sso", &other.token)
        .await
        .assert_problem(404, "sso_settings_not_found");
    app.get("/api/v1/org/sso", &acme.token).await.assert_ok(200);
    // Acme's enforce does not reach the other organisation's people.
    app.login("owner@other.example", PASSWORD, None)
        .await
        .assert_ok(200);
    // A sign-in through Acme's provider opens Acme only: the other organisation's start has
    // nothing to go to.
    assert_eq!(
        start_location(&app, "other").await,
        "/signin?sso_error=sso_not_configured"
    );
    provider.stop().await;
    app.shutdown().await;
}
