//! Sign-in that organisations require: the authenticator app (TOTP), recovery codes, the
//! sign-in step, an organisation's `require_mfa`, and what a sign-in step's token cannot do.
//! (Passkeys are proven in Chromium, `web/e2e`; single sign-on against a real OpenID provider,
//! `sso.rs`.)

use serde_json::{Value, json};

use crate::helpers::*;

/// The app's code for `secret` (base32) at `offset` steps from now.
fn code(secret: &str, offset: i64) -> String {
    let app = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).expect("base32 secret"))
        .build()
        .expect("a TOTP");
    let now = chrono::Utc::now().timestamp() + offset * 30;
    app.generate(u64::try_from(now).unwrap()).to_string()
}

/// Enrols and confirms an authenticator app for `token`'s account: its secret and recovery
/// codes. The confirming code is the previous step's, so the current and next are still
/// unused.
pub async fn enrol(app: &TestApp, token: &str) -> (String, Vec<String>) {
    let started = app
        .post("/api/v1/auth/mfa/totp", Some(token), json!({}))
        .await;
    let started = started.assert_ok(200);
    let secret = started["secret"].as_str().unwrap().to_owned();
    assert!(
        started["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Docket:"),
        "{started}"
    );
    let confirmed = app
        .post(
            "/api/v1/auth/mfa/totp/confirm",
            Some(token),
            json!({"code": code(&secret, -1)}),
        )
        .await;
    let codes: Vec<String> = confirmed.assert_ok(200)["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

fn step_token(body: &Value) -> String {
    body["mfa_token"].as_str().expect("mfa_token").to_owned()
}

#[tokio::test]
async fn an_app_is_a_second_factor_once_confirmed_and_each_code_works_once() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "ann@example.com").await;

    // Not confirmed yet: the password alone still signs in; a wrong code does not confirm.
    let started = app
        .post("/api/v1/auth/mfa/totp", Some(&owner.token), json!({}))
        .await;
    let secret = started.assert_ok(200)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        "/api/v1/auth/mfa/totp/confirm",
        Some(&owner.token),
        json!({"code": "000000"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.login("ann@example.com", PASSWORD, None)
        .await
        .assert_ok(200)["access_token"]
        .as_str()
        .expect("no second step before confirmation");
    // The secret is sealed at rest.
    let stored: String = app.scalar("SELECT secret FROM totp_factors").await;
    assert!(
        !stored.contains(&secret),
        "the secret is stored in the clear"
    );

    let confirmed = app
        .post(
            "/api/v1/auth/mfa/totp/confirm",
            Some(&owner.token),
            json!({"code": code(&secret, -1)}),
        )
        .await;
    let codes = confirmed.assert_ok(200)["recovery_codes"].clone();
    assert_eq!(codes.as_array().unwrap().len(), 10);
    let me = app.get("/api/v1/auth/me", &owner.token).await;
    assert_eq!(
        me.assert_ok(200)["mfa"],
        json!({"totp": true, "passkeys": 0, "recovery_codes": 10})
    );
    // Hashes only.
    let first = codes[0].as_str().unwrap();
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM recovery_codes WHERE code_hash = '{first}'"
        ))
        .await,
        0
    );

    // The password alone now gives a second step and no tokens.
    let step = app.login("ann@example.com", PASSWORD, None).await;
    let body = step.assert_ok(200).clone();
    assert_eq!(body["mfa_required"], true);
    assert!(body.get("access_token").is_none(), "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    let token = step_token(&body);

    // The step's token is no access token.
    app.get("/api/v1/tickets", &token)
        .await
        .assert_problem(401, "invalid_token");
    app.get("/api/v1/auth/me", &token)
        .await
        .assert_problem(401, "invalid_token");

    // The code already used to confirm is refused (replay); the current one signs in, once.
    app.post(
        "/api/v1/auth/login/mfa",
        None,
        json!({"mfa_token": token, "code": code(&secret, -1)}),
    )
    .await
    .assert_problem(401, "invalid_second_factor");
    let now = code(&secret, 0);
    let signed_in = app
        .post(
            "/api/v1/auth/login/mfa",
            None,
            json!({"mfa_token": token, "code": now}),
        )
        .await;
    let session = Session::from_auth(signed_in.assert_ok(200));
    app.get("/api/v1/tickets", &session.token)
        .await
        .assert_ok(200);
    app.post(
        "/api/v1/auth/login/mfa",
        None,
        json!({"mfa_token": token, "code": now}),
    )
    .await
    .assert_problem(401, "invalid_second_factor");

    // A recovery code works once, typed in any case and spacing.
    let step = step_token(
        app.login("ann@example.com", PASSWORD, None)
            .await
            .assert_ok(200),
    );
    let typed = first.to_uppercase().replace('-', " ");
    app.post(
        "/api/v1/auth/login/mfa",
        None,
        json!({"mfa_token": step, "recovery_code": typed}),
    )
    .await
    .assert_ok(200);
    app.post(
        "/api/v1/auth/login/mfa",
        None,
        json!({"mfa_token": step, "recovery_code": first}),
    )
    .await
    .assert_problem(401, "invalid_second_factor");
    assert_eq!(
        app.get("/api/v1/auth/me", &session.token).await.body["mfa"]["recovery_codes"],
        9
    );

    // An app nobody confirmed is no second factor: its codes open nothing.
    let step = step_token(
        app.login("ann@example.com", PASSWORD, None)
            .await
            .assert_ok(200),
    );
    app.sql("UPDATE totp_factors SET confirmed_at = NULL").await;
    app.post(
        "/api/v1/auth/login/mfa",
        None,
        json!({"mfa_token": step, "code": code(&secret, 1)}),
    )
    .await
    .assert_problem(401, "invalid_second_factor");
    app.sql("UPDATE totp_factors SET confirmed_at = created_at")
        .await;

    // Both answers, or neither, is a 422; a forged step token is a 401.
    app.post(
        "/api/v1/auth/login/mfa",
        None,
        json!({"mfa_token": step, "code": "123456", "recovery_code": "x"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(
        "/api/v1/auth/login/mfa",
        None,
        json!({"mfa_token": session.token, "code": "123456"}),
    )
    .await
    .assert_problem(401, "invalid_token");
    app.shutdown().await;
}

#[tokio::test]
async fn wrong_codes_are_throttled_per_account() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "ann@example.com").await;
    let (secret, _) = enrol(&app, &owner.token).await;
    let step = step_token(
        app.login("ann@example.com", PASSWORD, None)
            .await
            .assert_ok(200),
    );
    let mut locked = None;
    for _ in 0..12 {
        let res = app
            .post(
                "/api/v1/auth/login/mfa",
                None,
                json!({"mfa_token": step, "code": "000001"}),
            )
            .await;
        if res.status == 429 {
            locked = Some(res);
            break;
        }
        res.assert_problem(401, "invalid_second_factor");
    }
    let locked = locked.expect("wrong codes lock the second step");
    let retry: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 60, "{retry}");
    // Locked means locked: even the right code waits.
    app.post(
        "/api/v1/auth/login/mfa",
        None,
        json!({"mfa_token": step, "code": code(&secret, 0)}),
    )
    .await
    .assert_problem(429, "too_many_requests");
    app.shutdown().await;
}

#[tokio::test]
async fn removing_the_app_needs_a_proof_and_codes_can_be_renewed() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "ann@example.com").await;
    let (secret, old_codes) = enrol(&app, &owner.token).await;
    // A second enrolment while one is active is refused.
    app.post("/api/v1/auth/mfa/totp", Some(&owner.token), json!({}))
        .await
        .assert_problem(409, "totp_already_enabled");

    // New recovery codes with the password; the old ones stop working.
    let renewed = app
        .post(
            "/api/v1/auth/mfa/recovery-codes",
            Some(&owner.token),
            json!({"password": "wrong password!"}),
        )
        .await;
    renewed.assert_problem(422, "validation_failed");
    assert_eq!(renewed.body["errors"][0]["field"], "password");
    let renewed = app
        .post(
            "/api/v1/auth/mfa/recovery-codes",
            Some(&owner.token),
            json!({"password": PASSWORD}),
        )
        .await;
    let fresh = renewed.assert_ok(200)["recovery_codes"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let step = step_token(
        app.login("ann@example.com", PASSWORD, None)
            .await
            .assert_ok(200),
    );
    app.post(
        "/api/v1/auth/login/mfa",
        None,
        json!({"mfa_token": step, "recovery_code": old_codes[0]}),
    )
    .await
    .assert_problem(401, "invalid_second_factor");

    // Removing needs a current code (or the password); nothing or a wrong one is refused.
    let request = |body: Value| {
        app.request(
            reqwest::Method::DELETE,
            "/api/v1/auth/mfa/totp",
            Some(&owner.token),
        )
        .json(&body)
    };
    app.send(request(json!({})))
        .await
        .assert_problem(422, "validation_failed");
    app.send(request(json!({"code": "999999"})))
        .await
        .assert_problem(422, "validation_failed");
    app.send(request(json!({"code": code(&secret, 0)})))
        .await
        .assert_ok(204);
    let me = app.get("/api/v1/auth/me", &owner.token).await;
    assert_eq!(
        me.assert_ok(200)["mfa"],
        json!({"totp": false, "passkeys": 0, "recovery_codes": 0})
    );
    // With no factor left, recovery codes are gone and the password alone signs in again.
    let step = app
        .post(
            "/api/v1/auth/login/mfa",
            None,
            json!({"mfa_token": step, "recovery_code": fresh}),
        )
        .await;
    step.assert_problem(401, "invalid_second_factor");
    app.login("ann@example.com", PASSWORD, None)
        .await
        .assert_ok(200)["access_token"]
        .as_str()
        .expect("signed in by password");
    let audit = app.all_items("/api/v1/audit-log", &owner.token).await;
    let actions: Vec<&str> = audit.iter().filter_map(|e| e["action"].as_str()).collect();
    for action in [
        "mfa.totp_enabled",
        "mfa.recovery_codes_regenerated",
        "mfa.totp_disabled",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn an_organisation_that_requires_mfa_lets_staff_in_only_to_enrol() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "ann@example.com").await;
    let agent = app.member(&owner, "bob@example.com", "agent").await;
    let requester = app.member(&owner, "cy@example.com", "requester").await;

    // Requiring it needs a factor of one's own first.
    app.patch("/api/v1/org", &owner.token, json!({"require_mfa": true}))
        .await
        .assert_problem(409, "mfa_not_enrolled");
    let (owner_secret, _) = enrol(&app, &owner.token).await;
    let org = app
        .patch("/api/v1/org", &owner.token, json!({"require_mfa": true}))
        .await;
    assert_eq!(org.assert_ok(200)["require_mfa"], true);

    // The agent's password session ends at its next refresh.
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": agent.refresh}),
    )
    .await
    .assert_problem(401, "mfa_required");

    // Signing in gives a set-up step only: the token enrols, and opens nothing else.
    let step = app.login("bob@example.com", PASSWORD, None).await;
    let body = step.assert_ok(200).clone();
    assert_eq!(body["mfa_setup_required"], true);
    assert!(body.get("access_token").is_none(), "{body}");
    let setup = step_token(&body);
    app.get("/api/v1/tickets", &setup)
        .await
        .assert_problem(401, "invalid_token");
    app.post("/api/v1/auth/login/mfa", None, json!({"mfa_token": setup}))
        .await
        .assert_problem(409, "mfa_setup_required");
    let (_, codes) = enrol(&app, &setup).await;
    assert_eq!(codes.len(), 10);
    let done = app
        .post("/api/v1/auth/login/mfa", None, json!({"mfa_token": setup}))
        .await;
    let bob = Session::from_auth(done.assert_ok(200));
    app.get("/api/v1/tickets", &bob.token).await.assert_ok(200);
    // That session meets the policy: it refreshes.
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": bob.refresh}),
    )
    .await
    .assert_ok(200);

    // The last factor of someone the organisation requires to have one stays.
    let removal = app
        .send(
            app.request(
                reqwest::Method::DELETE,
                "/api/v1/auth/mfa/totp",
                Some(&owner.token),
            )
            .json(&json!({"code": code(&owner_secret, 0)})),
        )
        .await;
    removal.assert_problem(409, "mfa_required_by_organization");

    // Requesters are not staff: the policy leaves them be.
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": requester.refresh}),
    )
    .await
    .assert_ok(200);
    app.login("cy@example.com", PASSWORD, None)
        .await
        .assert_ok(200)["access_token"]
        .as_str()
        .expect("a requester signs in by password");

    // API tokens are unaffected (they are no sign-in).
    let ann = Session::from_auth(
        app.post(
            "/api/v1/auth/login/mfa",
            None,
            json!({"mfa_token": step_token(app.login("ann@example.com", PASSWORD, None).await.assert_ok(200)),
                   "code": code(&owner_secret, 0)}),
        )
        .await
        .assert_ok(200),
    );
    let api_token = app
        .post(
            "/api/v1/api-tokens",
            Some(&ann.token),
            json!({"name": "ci", "scopes": ["read"]}),
        )
        .await;
    let api_token = api_token.assert_ok(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get("/api/v1/tickets", &api_token).await.assert_ok(200);
    // An API token cannot enrol or remove factors.
    app.post("/api/v1/auth/mfa/totp", Some(&api_token), json!({}))
        .await
        .assert_problem(403, "api_token_not_allowed");
    app.shutdown().await;
}

#[tokio::test]
async fn second_factor_inputs_are_checked() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "ann@example.com").await;
    // Confirming before starting, and strange bodies.
    app.post(
        "/api/v1/auth/mfa/totp/confirm",
        Some(&owner.token),
        json!({"code": "123456"}),
    )
    .await
    .assert_problem(409, "totp_not_started");
    app.post(
        "/api/v1/auth/mfa/totp/confirm",
        Some(&owner.token),
        json!({"code": 123456}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(
        "/api/v1/auth/login/mfa",
        None,
        json!({"mfa_token": "x".repeat(5000), "code": "1"}),
    )
    .await
    .assert_problem(401, "invalid_token");
    app.post(
        "/api/v1/auth/mfa/recovery-codes",
        Some(&owner.token),
        json!({"password": PASSWORD}),
    )
    .await
    .assert_problem(409, "mfa_not_enrolled");
    // Passkey ceremonies that do not exist, and credentials that are not credentials.
    app.post(
        "/api/v1/auth/passkeys/login/finish",
        None,
        json!({"ceremony_id": uuid::Uuid::new_v4(), "credential": {"id": "x"}}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let started = app
        .post(
            "/api/v1/auth/passkeys/register/start",
            Some(&owner.token),
            json!({}),
        )
        .await;
    let started = started.assert_ok(200).clone();
    assert_eq!(
        started["options"]["publicKey"]["authenticatorSelection"]["residentKey"],
        "required"
    );
    assert_eq!(started["options"]["publicKey"]["rp"]["id"], "docket.test");
    let forged = json!({"ceremony_id": started["ceremony_id"], "name": "Laptop",
        "credential": {"id": "AAAA", "rawId": "AAAA", "type": "public-key",
                       "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"}}});
    let finish = app
        .post(
            "/api/v1/auth/passkeys/register/finish",
            Some(&owner.token),
            forged.clone(),
        )
        .await;
    finish.assert_problem(422, "validation_failed");
    assert_eq!(finish.body["errors"][0]["field"], "credential");
    // The ceremony was used up by that attempt.
    let again = app
        .post(
            "/api/v1/auth/passkeys/register/finish",
            Some(&owner.token),
            forged,
        )
        .await;
    again.assert_problem(422, "validation_failed");
    assert_eq!(again.body["errors"][0]["field"], "ceremony_id");
    assert_eq!(
        app.get("/api/v1/auth/passkeys", &owner.token)
            .await
            .assert_ok(200),
        &json!([])
    );
    app.delete(
        &format!("/api/v1/auth/passkeys/{}", uuid::Uuid::new_v4()),
        &owner.token,
    )
    .await
    .assert_problem(404, "passkey_not_found");
    app.shutdown().await;
}

#[tokio::test]
async fn people_see_and_end_their_own_sessions_only() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "ann@example.com").await;
    let other = Session::from_auth(
        app.login("ann@example.com", PASSWORD, None)
            .await
            .assert_ok(200),
    );
    let bob = app.member(&owner, "bob@example.com", "agent").await;
    let listed = app.get("/api/v1/auth/sessions", &owner.token).await;
    let listed = listed.assert_ok(200).as_array().unwrap().clone();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|s| s["method"] == "password" && s["organization"]["slug"] == "acme")
    );
    let current: Vec<_> = listed.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let other_id = listed.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Bob cannot end Ann's session, nor learn that it exists.
    app.delete(&format!("/api/v1/auth/sessions/{other_id}"), &bob.token)
        .await
        .assert_problem(404, "session_not_found");
    app.get("/api/v1/tickets", &other.token)
        .await
        .assert_ok(200);
    // Ann ends her other session: it stops at once.
    app.delete(&format!("/api/v1/auth/sessions/{other_id}"), &owner.token)
        .await
        .assert_ok(204);
    app.get("/api/v1/tickets", &other.token)
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(
        app.get("/api/v1/auth/sessions", &owner.token)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_erased_person_leaves_no_second_factor_behind() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "ann@example.com").await;
    let viewer = app.member(&owner, "vic@example.com", "viewer").await;
    enrol(&app, &viewer.token).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM totp_factors").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM recovery_codes").await, 10);
    app.delete(
        &format!("/api/v1/users/{}?erase=true", viewer.user_id),
        &owner.token,
    )
    .await
    .assert_ok(204);
    assert_eq!(app.count("SELECT COUNT(*) FROM totp_factors").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM recovery_codes").await, 0);
    app.shutdown().await;
}
