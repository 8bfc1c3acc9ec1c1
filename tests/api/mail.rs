//! Mail out and in, against real servers: invitations, password resets, notification mails,
//! and the customer conversation (inbound mail → tickets and comments; agents' public replies
//! → mail that continues the customer's thread), with its threading, de-duplication and loop
//! rules, the command and IMAP routes, and clean refusals of bad input.

use serde_json::{Value, json};

use crate::{
    helpers::*,
    mailservers::{IMAP_PASSWORD, IMAP_USER, Imap, Smtp, closed_port},
};

async fn app_with_smtp(smtp: &Smtp) -> TestApp {
    let url = smtp.url();
    spawn_app_tuned(None, move |_, serve| {
        serve.mail = mail_config(Some(url));
    })
    .await
}

/// The organisation's inbound path (`/api/v1/inbound/email/<token>`).
pub async fn inbound_path(app: &TestApp, owner: &Session) -> String {
    let settings = app.get("/api/v1/mail/settings", &owner.token).await;
    settings.assert_ok(200)["inbound_path"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An organisation that acknowledges new tickets, with a real SMTP server: the server, the app,
/// its owner and its inbound path.
pub async fn acknowledging_helpdesk() -> (Smtp, TestApp, Session, String) {
    let smtp = Smtp::start().await;
    let app = app_with_smtp(&smtp).await;
    let owner = app.signup("acme", "o@example.com").await;
    let inbound = inbound_path(&app, &owner).await;
    put_settings(
        &app,
        &owner,
        json!({"acknowledge": true, "inbound_project_id": null, "imap": null}),
    )
    .await
    .assert_ok(200);
    (smtp, app, owner, inbound)
}

pub async fn put_settings(app: &TestApp, admin: &Session, settings: Value) -> Resp {
    app.call(
        reqwest::Method::PUT,
        "/api/v1/mail/settings",
        Some(&admin.token),
        Some(settings),
    )
    .await
}

pub async fn post_mail(app: &TestApp, path: &str, raw: &str) -> Resp {
    let req = app
        .client
        .post(app.url(path))
        .header("content-type", "message/rfc822")
        .body(raw.replace('\n', "\r\n"));
    app.send(req).await
}

/// What the mail system in front of the test server (`mx.docket.test`, trusted in
/// `helpers::mail_config`) adds to mail from customer.test that passed DMARC.
pub const AUTHENTICATED: &str =
    "Authentication-Results: mx.docket.test; dmarc=pass header.from=customer.test\n";

pub fn message(from: &str, subject: &str, headers: &str, body: &str) -> String {
    format!(
        "From: {from}\nTo: Acme Help <help@acme.test>\nSubject: {subject}\n{headers}Content-Type: text/plain; charset=utf-8\n\n{body}\n"
    )
}

pub async fn comments(app: &TestApp, ticket: &str, token: &str) -> Vec<Value> {
    app.get(&format!("/api/v1/tickets/{ticket}/comments"), token)
        .await
        .assert_ok(200)["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn invitations_are_mailed_and_accepted_once() {
    let smtp = Smtp::start().await;
    let app = app_with_smtp(&smtp).await;
    let owner = app.signup("acme", "o@example.com").await;
    let res = app
        .post(
            "/api/v1/invitations",
            Some(&owner.token),
            json!({"email": "Nia@Example.com", "role": "agent", "name": "Nia"}),
        )
        .await;
    let invitation = res.assert_ok(201).clone();
    assert_eq!(invitation["email"], "nia@example.com");
    assert_eq!(invitation["status"], "pending");
    let listed = app.get("/api/v1/invitations", &owner.token).await;
    assert_eq!(
        pluck(&listed.assert_ok(200)["items"], "id"),
        vec![invitation["id"].as_str().unwrap()]
    );

    assert_eq!(app.deliver_mail().await, 1);
    let mails = smtp.to("nia@example.com");
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.subject(), "Owner invited you to Org acme on Docket");
    assert_eq!(mail.header("X-Loop").as_deref(), Some("help@docket.test"));
    let link = mail.link("https://docket.test/invite/");
    let token = link.rsplit('/').next().unwrap().to_owned();
    assert!(token.starts_with("inv_"));
    assert!(mail.html().contains("Accept the invitation") && mail.html().contains(&token));

    // The log shows it sent; the queue no longer holds the link.
    let log = app.get("/api/v1/mail/log", &owner.token).await;
    let entry = &log.assert_ok(200)["items"][0];
    assert_eq!(entry["kind"], "invitation");
    assert_eq!(entry["status"], "sent");
    assert_eq!(entry["attempts"], 1);
    assert!(
        entry["last_response"].as_str().unwrap().starts_with("250"),
        "{entry}"
    );
    let params = if backend() == Backend::Postgres {
        "params::text"
    } else {
        "params"
    };
    let still_there = format!("SELECT COUNT(*) FROM mails WHERE {params} LIKE '%{token}%'");
    assert_eq!(app.count(&still_there).await, 0);

    let accept = format!("/api/v1/invitations/{token}/accept");
    app.post(&accept, None, json!({}))
        .await
        .assert_problem(422, "validation_failed");
    app.post(&accept, None, json!({"password": "password123"}))
        .await
        .assert_problem(422, "validation_failed");
    let joined = app
        .post(
            &accept,
            None,
            json!({"password": PASSWORD, "name": "Nia N"}),
        )
        .await;
    let joined = joined.assert_ok(200);
    assert_eq!(joined["role"], "agent");
    assert_eq!(joined["organization"]["slug"], "acme");
    assert_eq!(joined["user"]["name"], "Nia N");
    app.login("nia@example.com", PASSWORD, None)
        .await
        .assert_ok(200);
    // Single use.
    app.post(&accept, None, json!({"password": PASSWORD}))
        .await
        .assert_problem(404, "invitation_not_found");
    assert_eq!(
        app.get("/api/v1/invitations", &owner.token).await.body["items"],
        json!([])
    );

    // A withdrawn invitation and an expired one open nothing.
    let other = app
        .post(
            "/api/v1/invitations",
            Some(&owner.token),
            json!({"email": "w@example.com", "role": "viewer"}),
        )
        .await;
    let other_id = other.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let withdrawn = app.invitation_token("w@example.com").await;
    app.delete(&format!("/api/v1/invitations/{other_id}"), &owner.token)
        .await
        .assert_ok(204);
    app.post(
        &format!("/api/v1/invitations/{withdrawn}/accept"),
        None,
        json!({"password": PASSWORD}),
    )
    .await
    .assert_problem(404, "invitation_not_found");
    app.delete(&format!("/api/v1/invitations/{other_id}"), &owner.token)
        .await
        .assert_problem(404, "invitation_not_found");
    app.post(
        "/api/v1/invitations",
        Some(&owner.token),
        json!({"email": "x@example.com", "role": "viewer"}),
    )
    .await
    .assert_ok(201);
    let expired = app.invitation_token("x@example.com").await;
    app.sql("UPDATE invitations SET expires_at = '2000-01-01T00:00:00Z'")
        .await;
    app.post(
        &format!("/api/v1/invitations/{expired}/accept"),
        None,
        json!({"password": PASSWORD}),
    )
    .await
    .assert_problem(404, "invitation_not_found");
    for junk in [
        "x",
        "inv_",
        "inv_00000000000000000000000000000000_x",
        &format!("{token}x"),
    ] {
        app.post(
            &format!("/api/v1/invitations/{junk}/accept"),
            None,
            json!({"password": PASSWORD}),
        )
        .await
        .assert_problem(404, "invitation_not_found");
    }
    // Only admins invite, and nobody grants more than they have.
    let agent = Session::from_auth(joined);
    app.post(
        "/api/v1/invitations",
        Some(&agent.token),
        json!({"email": "y@example.com", "role": "viewer"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.get("/api/v1/invitations", &agent.token)
        .await
        .assert_problem(403, "forbidden");
    app.shutdown().await;
}

#[tokio::test]
async fn inviting_an_address_with_an_account_tells_the_admin_nothing() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let elsewhere = app.signup("beta", "b@example.com").await;
    let known = app
        .post(
            "/api/v1/users",
            Some(&owner.token),
            json!({"email": "b@example.com", "role": "agent"}),
        )
        .await;
    let unknown = app
        .post(
            "/api/v1/users",
            Some(&owner.token),
            json!({"email": "fresh@example.com", "role": "agent"}),
        )
        .await;
    assert_eq!(known.status, unknown.status);
    let shape = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        (keys, v["status"].clone(), v["role"].clone())
    };
    assert_eq!(shape(known.assert_ok(201)), shape(unknown.assert_ok(201)));
    // An admin never sets anyone's password.
    app.post(
        "/api/v1/users",
        Some(&owner.token),
        json!({"email": "z@example.com", "role": "agent", "password": PASSWORD}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // The existing account accepts only while signed in as itself, without a password.
    let token = app.invitation_token("b@example.com").await;
    let accept = format!("/api/v1/invitations/{token}/accept");
    app.post(&accept, None, json!({"password": "a-new-password-for-b"}))
        .await
        .assert_problem(409, "sign_in_to_accept");
    app.post(&accept, Some(&owner.token), json!({}))
        .await
        .assert_problem(403, "forbidden");
    let joined = app.post(&accept, Some(&elsewhere.token), json!({})).await;
    assert_eq!(joined.assert_ok(200)["organization"]["slug"], "acme");
    assert_eq!(joined.body["role"], "agent");
    // Its password is what it was, in both organisations.
    app.login("b@example.com", PASSWORD, Some("acme"))
        .await
        .assert_ok(200);
    app.login("b@example.com", PASSWORD, Some("beta"))
        .await
        .assert_ok(200);
    app.login("b@example.com", "a-new-password-for-b", Some("acme"))
        .await
        .assert_problem(401, "invalid_credentials");
    app.shutdown().await;
}

#[tokio::test]
async fn forgotten_passwords_are_reset_by_mail() {
    let smtp = Smtp::start().await;
    let app = app_with_smtp(&smtp).await;
    let owner = app.signup("acme", "o@example.com").await;
    let known = app
        .post(
            "/api/v1/auth/password/forgot",
            None,
            json!({"email": "O@example.com"}),
        )
        .await;
    let unknown = app
        .post(
            "/api/v1/auth/password/forgot",
            None,
            json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(known.status.as_u16(), 202);
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    assert_eq!(app.deliver_mail().await, 1);
    assert!(smtp.to("nobody@example.com").is_empty());
    let mail = &smtp.to("o@example.com")[0];
    assert_eq!(mail.subject(), "Reset your Docket password");
    let token = mail
        .link("https://docket.test/reset-password/")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    // Admins of the account's organisation do not see account mail in their log.
    assert_eq!(
        app.get("/api/v1/mail/log", &owner.token).await.body["items"],
        json!([])
    );

    app.post(
        "/api/v1/auth/password/reset",
        None,
        json!({"token": token, "password": "password123"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(
        "/api/v1/auth/password/reset",
        None,
        json!({"token": token, "password": "a brand new passphrase"}),
    )
    .await
    .assert_ok(204);
    // Every session ended; the new password works, the old one does not; the link is spent.
    app.get("/api/v1/auth/me", &owner.token)
        .await
        .assert_problem(401, "invalid_token");
    app.login("o@example.com", PASSWORD, None)
        .await
        .assert_problem(401, "invalid_credentials");
    app.login("o@example.com", "a brand new passphrase", None)
        .await
        .assert_ok(200);
    let again = app
        .post(
            "/api/v1/auth/password/reset",
            None,
            json!({"token": token, "password": "another new passphrase"}),
        )
        .await;
    again.assert_problem(422, "validation_failed");
    assert_eq!(again.body["errors"][0]["field"], "token");
    app.post(
        "/api/v1/auth/password/reset",
        None,
        json!({"token": "pr_forged", "password": "another new passphrase"}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // Asking again and again fills nobody's inbox: the answer stays the same, the mails stop.
    for _ in 0..5 {
        app.post(
            "/api/v1/auth/password/forgot",
            None,
            json!({"email": "o@example.com"}),
        )
        .await
        .assert_ok(202);
    }
    app.deliver_mail().await;
    assert_eq!(smtp.to("o@example.com").len(), 3);
    app.shutdown().await;
}

#[tokio::test]
async fn without_smtp_mail_is_recorded_and_failures_are_retried() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    app.post(
        "/api/v1/invitations",
        Some(&owner.token),
        json!({"email": "n@example.com", "role": "agent"}),
    )
    .await
    .assert_ok(201);
    assert_eq!(app.deliver_mail().await, 1);
    let log = app
        .get("/api/v1/mail/log?status=not_sent", &owner.token)
        .await;
    let entry = &log.assert_ok(200)["items"][0];
    assert_eq!(entry["to"], "n@example.com");
    assert!(
        entry["last_response"]
            .as_str()
            .unwrap()
            .contains("DOCKET_SMTP_URL")
    );
    app.shutdown().await;

    // A server that is down: the mail waits with the error, then goes when it is back.
    let port = closed_port();
    let app = spawn_app_tuned(None, move |_, serve| {
        serve.mail = mail_config(Some(format!("smtp://127.0.0.1:{port}")));
    })
    .await;
    let owner = app.signup("acme", "o@example.com").await;
    app.post(
        "/api/v1/invitations",
        Some(&owner.token),
        json!({"email": "n@example.com", "role": "agent"}),
    )
    .await
    .assert_ok(201);
    app.deliver_mail().await;
    let log = app.get("/api/v1/mail/log", &owner.token).await;
    let entry = log.assert_ok(200)["items"][0].clone();
    assert_eq!(entry["status"], "queued");
    assert_eq!(entry["attempts"], 1);
    assert!(!entry["last_response"].as_str().unwrap().is_empty());
    assert!(entry["next_attempt_at"].is_string());
    // Not due yet: nothing is tried.
    assert_eq!(app.deliver_mail().await, 0);
    let smtp = Smtp::start_on(port).await;
    app.sql("UPDATE mails SET available_at = created_at").await;
    assert_eq!(app.deliver_mail().await, 1);
    assert_eq!(smtp.to("n@example.com").len(), 1);
    let log = app.get("/api/v1/mail/log", &owner.token).await;
    assert_eq!(log.body["items"][0]["status"], "sent");
    assert_eq!(log.body["items"][0]["attempts"], 2);
    app.shutdown().await;
}

#[tokio::test]
async fn notification_mails_follow_preferences_and_walls() {
    let smtp = Smtp::start().await;
    let app = app_with_smtp(&smtp).await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "agent@example.com", "agent").await;
    let customer = app
        .member(&owner, "customer@example.com", "requester")
        .await;
    let project = app.project(&owner.token, "OPS").await;
    let ticket = app
        .ticket(
            &owner.token,
            &project,
            json!({"assignee_ids": [agent.user_id], "requester_id": customer.user_id}),
        )
        .await;
    let id = ticket["id"].as_str().unwrap();
    // The invitations are out of the way.
    app.deliver_mail().await;
    smtp.clear();
    let prefs = app
        .get("/api/v1/me/notification-preferences", &agent.token)
        .await;
    let prefs = prefs.assert_ok(200)["preferences"]
        .as_array()
        .unwrap()
        .clone();
    // The five ticket kinds and the two SLA kinds (news of webhooks is for admins).
    assert_eq!(prefs.len(), 7);
    assert!(prefs.iter().all(|p| p["delivery"] == "immediately"));

    app.run_pending_events().await;
    app.deliver_mail().await;
    let assigned = smtp.to("agent@example.com");
    assert_eq!(assigned.len(), 1);
    assert!(
        assigned[0].subject().starts_with("You were assigned OPS-1"),
        "{}",
        assigned[0].subject()
    );
    assert_eq!(
        assigned[0].header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(
        assigned[0].header("List-Unsubscribe").as_deref(),
        Some("<https://docket.test/account#notifications>")
    );
    assert!(
        assigned[0]
            .text()
            .contains(&format!("https://docket.test/tickets/{id}"))
    );

    // An internal note: the agent hears of it, the requester never.
    app.post(
        &format!("/api/v1/tickets/{id}/comments"),
        Some(&owner.token),
        json!({"body": "Secret: the vendor is late", "internal": true}),
    )
    .await
    .assert_ok(201);
    app.run_pending_events().await;
    app.deliver_mail().await;
    assert_eq!(smtp.to("agent@example.com").len(), 2);
    assert!(
        smtp.to("agent@example.com")[1]
            .text()
            .contains("Secret: the vendor is late")
    );
    assert!(smtp.to("customer@example.com").is_empty());
    // A public comment reaches the requester too.
    app.post(
        &format!("/api/v1/tickets/{id}/comments"),
        Some(&owner.token),
        json!({"body": "We ordered a part"}),
    )
    .await
    .assert_ok(201);
    app.run_pending_events().await;
    app.deliver_mail().await;
    assert_eq!(smtp.to("customer@example.com").len(), 1);
    assert!(
        smtp.to("customer@example.com")[0]
            .text()
            .contains("We ordered a part")
    );

    // Off: no mail (the in-app notification stays); a digest: one mail an hour later.
    let set = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/me/notification-preferences",
            Some(&agent.token),
            Some(json!({"preferences": [
                {"kind": "comment", "delivery": "off"},
                {"kind": "status_changed", "delivery": "hourly_digest"}
            ]})),
        )
        .await;
    let set = set.assert_ok(200)["preferences"]
        .as_array()
        .unwrap()
        .clone();
    assert!(set.contains(&json!({"kind": "comment", "delivery": "off"})));
    assert!(set.contains(&json!({"kind": "assigned", "delivery": "immediately"})));
    app.post(
        &format!("/api/v1/tickets/{id}/comments"),
        Some(&owner.token),
        json!({"body": "Quiet one"}),
    )
    .await
    .assert_ok(201);
    for status in ["in_progress", "pending"] {
        let version = app
            .get(&format!("/api/v1/tickets/{id}"), &owner.token)
            .await
            .body["version"]
            .as_i64()
            .unwrap();
        app.call_if(
            reqwest::Method::PATCH,
            &format!("/api/v1/tickets/{id}"),
            &owner.token,
            version,
            Some(json!({"status": status})),
        )
        .await
        .assert_ok(200);
    }
    app.run_pending_events().await;
    app.deliver_mail().await;
    // (The public comment before reached the agent too: three so far.)
    assert_eq!(
        smtp.to("agent@example.com").len(),
        3,
        "nothing at once: {:?}",
        smtp.to("agent@example.com")
            .iter()
            .map(|m| m.subject())
            .collect::<Vec<_>>()
    );
    let db = app.running().db();
    assert_eq!(
        docket::conversation::send_digests(db, chrono::Utc::now())
            .await
            .unwrap(),
        0
    );
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    assert_eq!(
        docket::conversation::send_digests(db, later).await.unwrap(),
        1
    );
    assert_eq!(
        docket::conversation::send_digests(db, later).await.unwrap(),
        0
    );
    app.deliver_mail().await;
    let agent_mail = smtp.to("agent@example.com");
    assert_eq!(agent_mail.len(), 4);
    assert_eq!(agent_mail[3].subject(), "2 updates in Org acme");
    assert!(
        agent_mail[3]
            .text()
            .contains("moved from in_progress to pending")
    );

    for bad in [
        json!({"preferences": [{"kind": "comment", "delivery": "off"}, {"kind": "comment", "delivery": "off"}]}),
        json!({"preferences": [{"kind": "gossip", "delivery": "off"}]}),
        json!({"preferences": [{"kind": "comment", "delivery": "weekly"}]}),
        json!({"preferences": "off"}),
    ] {
        app.call(
            reqwest::Method::PUT,
            "/api/v1/me/notification-preferences",
            Some(&agent.token),
            Some(bad),
        )
        .await
        .assert_problem(422, "validation_failed");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn mail_in_makes_tickets_and_replies_continue_the_thread() {
    let (smtp, app, owner, inbound) = acknowledging_helpdesk().await;

    let first = message(
        "Ann Customer <Ann@Customer.test>",
        "Printer on fire",
        &format!("{AUTHENTICATED}Cc: Boss <boss@customer.test>\nMessage-ID: <m1@customer.test>\n"),
        "It is on fire.\n\nOn Mon, Help wrote:\n> How can we help?",
    );
    let res = post_mail(&app, &inbound, &first).await;
    assert_eq!(res.assert_ok(202)["outcome"], "ticket_created");
    let ticket_id = res.body["ticket_id"].as_str().unwrap().to_owned();
    let ticket = app
        .get(&format!("/api/v1/tickets/{ticket_id}"), &owner.token)
        .await;
    let ticket = ticket.assert_ok(200).clone();
    assert_eq!(ticket["key"], "MAIL-1");
    assert_eq!(ticket["title"], "Printer on fire");
    assert_eq!(ticket["description"], "It is on fire.");
    // The unknown sender is now a requester of the organisation, without a password.
    let people = app.all_items("/api/v1/users", &owner.token).await;
    let ann = people
        .iter()
        .find(|p| p["email"] == "ann@customer.test")
        .expect("ann joined");
    assert_eq!(ann["role"], "requester");
    assert_eq!(ann["name"], "Ann Customer");
    assert_eq!(ticket["requester_id"], ann["id"]);

    // The acknowledgement continues the customer's thread.
    app.run_pending_events().await;
    app.deliver_mail().await;
    let ack = smtp.to("ann@customer.test");
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].subject(), "[MAIL-1] Printer on fire");
    assert_eq!(
        ack[0].header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(
        ack[0].header("In-Reply-To").as_deref(),
        Some("<m1@customer.test>")
    );

    // An agent's public answer goes to the customer and the people copied in.
    app.post(
        &format!("/api/v1/tickets/{ticket_id}/comments"),
        Some(&owner.token),
        json!({"body": "We are on it."}),
    )
    .await
    .assert_ok(201);
    app.post(
        &format!("/api/v1/tickets/{ticket_id}/comments"),
        Some(&owner.token),
        json!({"body": "Internal: call the vendor", "internal": true}),
    )
    .await
    .assert_ok(201);
    app.run_pending_events().await;
    app.deliver_mail().await;
    let to_ann = smtp.to("ann@customer.test");
    assert_eq!(to_ann.len(), 2, "the answer, and never the internal note");
    let answer = &to_ann[1];
    assert_eq!(answer.subject(), "[MAIL-1] Printer on fire");
    assert!(answer.text().contains("We are on it."));
    assert!(!answer.text().contains("Internal"));
    assert_eq!(
        answer.header("In-Reply-To").as_deref(),
        Some("<m1@customer.test>")
    );
    assert!(
        answer
            .header("References")
            .unwrap()
            .contains("<m1@customer.test>")
    );
    assert!(answer.header("Auto-Submitted").is_none());
    let our_id = answer.header("Message-ID").unwrap();
    assert!(our_id.starts_with("<docket.t"), "{our_id}");
    assert!(answer.header("Reply-To").unwrap().starts_with("help+t"));
    let to_boss = smtp.to("boss@customer.test");
    assert_eq!(to_boss.len(), 1);
    assert_eq!(
        to_boss[0].header("Message-ID").as_deref(),
        Some(our_id.as_str())
    );
    assert!(
        smtp.received()
            .iter()
            .all(|m| !m.text().contains("call the vendor"))
    );

    // The customer's reply (to Docket's message id) lands on the ticket, quote trimmed, and is
    // not mailed back to anyone.
    let reply = message(
        "ann@customer.test",
        "Re: [MAIL-1] Printer on fire",
        &format!(
            "Message-ID: <m2@customer.test>\nIn-Reply-To: {our_id}\nReferences: <m1@customer.test> {our_id}\n"
        ),
        "Thanks!\n\nOn Tue, Acme Help <help@docket.test> wrote:\n> We are on it.",
    );
    let res = post_mail(&app, &inbound, &reply).await;
    assert_eq!(res.assert_ok(202)["outcome"], "comment_added");
    assert_eq!(res.body["ticket_id"], ticket_id.as_str());
    let thread = comments(&app, &ticket_id, &owner.token).await;
    let last = thread.last().unwrap();
    assert_eq!(last["body"], "Thanks!");
    assert_eq!(last["author_id"], ann["id"]);
    app.run_pending_events().await;
    app.deliver_mail().await;
    assert_eq!(smtp.to("ann@customer.test").len(), 2);
    assert_eq!(smtp.to("boss@customer.test").len(), 1);

    // The same message again, by any route: one effect.
    let again = post_mail(&app, &inbound, &reply).await;
    assert_eq!(again.assert_ok(202)["outcome"], "duplicate");
    assert_eq!(
        comments(&app, &ticket_id, &owner.token).await.len(),
        thread.len()
    );

    // A participant answering with only the customer's own message id in References.
    let boss = message(
        "boss@customer.test",
        "Re: Printer on fire",
        "Message-ID: <m3@customer.test>\nReferences: <m1@customer.test>\n",
        "Please hurry.",
    );
    assert_eq!(
        post_mail(&app, &inbound, &boss).await.assert_ok(202)["outcome"],
        "comment_added"
    );

    // A subject tag threads only for the requester and participants.
    let tagged = message(
        "ann@customer.test",
        "[MAIL-1] one more thing",
        "",
        "Also the scanner.",
    );
    let res = post_mail(&app, &inbound, &tagged).await;
    assert_eq!(res.assert_ok(202)["outcome"], "comment_added");
    let stranger = message(
        "eve@evil.test",
        "Re: [MAIL-1] I am the boss",
        "",
        "Send me the invoices.",
    );
    let res = post_mail(&app, &inbound, &stranger).await;
    assert_eq!(res.assert_ok(202)["outcome"], "ticket_created");
    let new_ticket = res.body["ticket_id"].as_str().unwrap().to_owned();
    assert_ne!(new_ticket, ticket_id);
    let filed = app
        .get(&format!("/api/v1/tickets/{new_ticket}"), &owner.token)
        .await;
    assert_eq!(filed.assert_ok(200)["labels"], json!(["follow-up:MAIL-1"]));
    let ingest = app.get("/api/v1/mail/ingest-log", &owner.token).await;
    assert!(
        ingest.assert_ok(200)["items"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("possible follow-up to MAIL-1")
    );
    // A forged Docket reference is no reference.
    let forged_id = our_id.replacen("docket.t", "docket.t0", 1);
    let forged = message(
        "eve@evil.test",
        "Re: hello",
        &format!("In-Reply-To: {forged_id}\n"),
        "Let me in.",
    );
    assert_eq!(
        post_mail(&app, &inbound, &forged).await.assert_ok(202)["outcome"],
        "ticket_created"
    );
    let texts: Vec<String> = comments(&app, &ticket_id, &owner.token)
        .await
        .iter()
        .map(|c| c["body"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !texts
            .iter()
            .any(|t| t.contains("invoices") || t.contains("Let me in"))
    );

    // The customer, who has no account, asks for a password: the mail offers to claim the
    // tickets they sent by mail, and the claim makes the account and signs them in.
    app.post(
        "/api/v1/auth/password/forgot",
        None,
        json!({"email": "ann@customer.test"}),
    )
    .await
    .assert_ok(202);
    app.deliver_mail().await;
    let claim = smtp
        .to("ann@customer.test")
        .last()
        .unwrap()
        .link("https://docket.test/claim/");
    let token = claim.rsplit('/').next().unwrap();
    let claimed = app
        .post(
            "/api/v1/auth/claim",
            None,
            json!({"token": token, "password": "ann's own passphrase"}),
        )
        .await;
    assert_eq!(claimed.assert_ok(201)["role"], "requester");
    assert_eq!(claimed.body["user"]["name"], "Ann Customer");
    let ann_session = app
        .login("ann@customer.test", "ann's own passphrase", None)
        .await;
    let mine = app
        .get(
            "/api/v1/me/tickets",
            &Session::from_auth(ann_session.assert_ok(200)).token,
        )
        .await;
    assert_eq!(
        pluck(&mine.assert_ok(200)["items"], "id"),
        vec![ticket_id.as_str()]
    );
    app.shutdown().await;
}

#[tokio::test]
async fn automatic_mail_is_logged_and_never_answered() {
    let (smtp, app, owner, inbound) = acknowledging_helpdesk().await;
    let automatic = [
        message(
            "ann@customer.test",
            "Out of office",
            "Auto-Submitted: auto-replied\n",
            "Away.",
        ),
        message("ann@customer.test", "News", "Precedence: bulk\n", "Sale!"),
        message(
            "ann@customer.test",
            "Re: x",
            "X-Auto-Response-Suppress: All\n",
            "Auto.",
        ),
        message(
            "ann@customer.test",
            "Echo",
            "X-Loop: help@docket.test\n",
            "Ours.",
        ),
        message("MAILER-DAEMON@mx.customer.test", "Failure", "", "Failed."),
        message(
            "list@lists.test",
            "Digest",
            "List-Id: <news.lists.test>\n",
            "Hello list.",
        ),
    ];
    for raw in &automatic {
        let res = post_mail(&app, &inbound, raw).await;
        assert_eq!(res.assert_ok(202)["outcome"], "suppressed", "{raw}");
        assert!(res.body["reason"].is_string());
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM tickets").await, 0);
    let log = app
        .get("/api/v1/mail/ingest-log?outcome=suppressed", &owner.token)
        .await;
    assert_eq!(
        log.assert_ok(200)["items"].as_array().unwrap().len(),
        automatic.len()
    );

    // At most three acknowledgements a day to one sender.
    for n in 0..4 {
        let raw = message(
            "bob@customer.test",
            &format!("Question {n}"),
            AUTHENTICATED,
            "Help?",
        );
        assert_eq!(
            post_mail(&app, &inbound, &raw).await.assert_ok(202)["outcome"],
            "ticket_created"
        );
    }
    app.run_pending_events().await;
    app.deliver_mail().await;
    assert_eq!(smtp.to("bob@customer.test").len(), 3);

    // A bounce that comes back to the return path of a mail Docket sent marks its address;
    // nothing more goes to it.
    let return_path = smtp.to("bob@customer.test")[0].return_path();
    assert!(return_path.starts_with("help+b"), "{return_path}");
    let bounce = bounce_report(&return_path, "bob@customer.test");
    let res = post_mail(&app, &inbound, &bounce).await;
    assert_eq!(res.assert_ok(202)["outcome"], "bounce");
    let tickets = app.all_items("/api/v1/tickets", &owner.token).await;
    let bobs = tickets[0]["id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/tickets/{bobs}/comments"),
        Some(&owner.token),
        json!({"body": "Answer"}),
    )
    .await
    .assert_ok(201);
    app.run_pending_events().await;
    app.deliver_mail().await;
    assert_eq!(smtp.to("bob@customer.test").len(), 3);
    app.shutdown().await;
}

/// A delivery report (RFC 3464) sent to `to`, saying delivery to `failed` failed.
pub fn bounce_report(to: &str, failed: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.customer.test\nTo: {to}\nSubject: Undelivered Mail\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nDelivery failed.\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.customer.test\n\nFinal-Recipient: rfc822; {failed}\nAction: failed\nStatus: 5.1.1\n--b--\n"
    )
}

#[tokio::test]
async fn bad_inbound_mail_is_refused_cleanly() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let other = app.signup("beta", "b@example.com").await;
    let inbound = inbound_path(&app, &owner).await;
    let good = message("ann@customer.test", "Hello", "", "Hi.");
    // Admins see the token on the organisation too; nobody else does.
    let org = app.get("/api/v1/org", &owner.token).await;
    let token = org.assert_ok(200)["inbound_email_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(inbound.ends_with(&token));
    let agent = app.member(&owner, "agent@example.com", "agent").await;
    let seen_by_agent = app.get("/api/v1/org", &agent.token).await;
    assert!(
        seen_by_agent
            .assert_ok(200)
            .get("inbound_email_token")
            .is_none()
    );
    app.get("/api/v1/mail/settings", &agent.token)
        .await
        .assert_problem(403, "forbidden");

    let wrong_type = app
        .client
        .post(app.url(&inbound))
        .header("content-type", "text/plain")
        .body(good.clone());
    app.send(wrong_type)
        .await
        .assert_problem(415, "unsupported_media_type");
    for path in [
        "/api/v1/inbound/email/x".to_owned(),
        "/api/v1/inbound/email/".to_owned() + &"0".repeat(52),
        format!("{inbound}0"),
        inbound.replace(
            &owner.org_id.replace('-', ""),
            &other.org_id.replace('-', ""),
        ),
    ] {
        post_mail(&app, &path, &good)
            .await
            .assert_problem(404, "inbound_address_not_found");
    }
    for garbage in [
        "",
        "\u{0}\u{1}\u{2}",
        "just words",
        "Subject: no sender\n\nbody",
    ] {
        post_mail(&app, &inbound, garbage)
            .await
            .assert_problem(422, "unparseable_email");
    }
    let huge = message("ann@customer.test", "Big", "", &"x".repeat(300 * 1024));
    post_mail(&app, &inbound, &huge)
        .await
        .assert_problem(413, "payload_too_large");
    let log = app
        .get("/api/v1/mail/ingest-log?outcome=rejected", &owner.token)
        .await;
    assert!(log.assert_ok(200)["items"].as_array().unwrap().len() >= 3);

    // Without a Message-ID, the same bytes twice are one ticket; in parallel too.
    assert_eq!(
        post_mail(&app, &inbound, &good).await.assert_ok(202)["outcome"],
        "ticket_created"
    );
    assert_eq!(
        post_mail(&app, &inbound, &good).await.assert_ok(202)["outcome"],
        "duplicate"
    );
    let racing = message(
        "carl@customer.test",
        "Race",
        "Message-ID: <race@customer.test>\n",
        "Once.",
    );
    let results =
        futures::future::join_all((0..8).map(|_| post_mail(&app, &inbound, &racing))).await;
    let created = results
        .iter()
        .filter(|r| r.body["outcome"] == "ticket_created")
        .count();
    assert_eq!(
        created,
        1,
        "{:?}",
        results
            .iter()
            .map(|r| (r.status, r.body.clone()))
            .collect::<Vec<_>>()
    );
    assert!(results.iter().all(|r| r.status.as_u16() == 202));
    assert_eq!(app.count("SELECT COUNT(*) FROM tickets").await, 2);

    // A rotated address: the old one stops at once.
    let rotated = app
        .post(
            "/api/v1/mail/settings/rotate-inbound-token",
            Some(&owner.token),
            json!({}),
        )
        .await;
    let new_path = rotated.assert_ok(200)["inbound_path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_path, inbound);
    post_mail(&app, &inbound, &message("x@y.test", "A", "", "b"))
        .await
        .assert_problem(404, "inbound_address_not_found");
    assert_eq!(
        post_mail(&app, &new_path, &message("x@y.test", "A", "", "b"))
            .await
            .assert_ok(202)["outcome"],
        "ticket_created"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_command_and_imap_take_mail_too() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let inbound = inbound_path(&app, &owner).await;

    // `docket admin ingest-email` reads a message on standard input.
    let piped = message(
        "ann@customer.test",
        "By pipe",
        "Message-ID: <pipe@customer.test>\n",
        "Through the MTA.",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_docket"))
        .args(["admin", "ingest-email", "--org", "acme"])
        .env("DATABASE_URL", &app.database_url)
        .env("DOCKET_DATA_DIR", dir.path())
        .env("DOCKET_JWT_SECRET", JWT_SECRET)
        .env("DOCKET_MAIL_FROM", "Acme Help <help@docket.test>")
        .env("DOCKET_LOG_LEVEL", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(piped.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let outcome: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["outcome"], "ticket_created");
    // The same message by another route: nothing new.
    assert_eq!(
        post_mail(&app, &inbound, &piped).await.assert_ok(202)["outcome"],
        "duplicate"
    );
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_docket"))
        .args(["admin", "ingest-email", "--org", "nope"])
        .env("DATABASE_URL", &app.database_url)
        .env("DOCKET_DATA_DIR", dir.path())
        .env("DOCKET_JWT_SECRET", JWT_SECRET)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!unknown.status.success());

    // IMAP: a real Dovecot mailbox.
    let mut imap = Imap::start().await;
    imap.deliver(&message(
        "ann@customer.test",
        "First by IMAP",
        "Message-ID: <i1@customer.test>\n",
        "One.",
    ));
    imap.deliver(&message(
        "bob@customer.test",
        "Second by IMAP",
        "Message-ID: <i2@customer.test>\n",
        "Two.",
    ));
    let set = put_settings(
        &app,
        &owner,
        json!({"acknowledge": false, "inbound_project_id": null, "imap": {
            "host": "127.0.0.1", "port": imap.port, "tls": false, "allow_unencrypted": true,
            "username": IMAP_USER, "password": IMAP_PASSWORD
        }}),
    )
    .await;
    let set = set.assert_ok(200).clone();
    assert_eq!(set["imap"]["password_set"], true);
    assert!(!set.to_string().contains(IMAP_PASSWORD));
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM mail_settings WHERE imap_password LIKE '%{IMAP_PASSWORD}%'"
        ))
        .await,
        0,
        "the mailbox password is stored sealed"
    );
    let running = app.running();
    let poll = || docket::conversation::poll_all(running.db(), &running.mail().mailroom);
    assert_eq!(poll().await.unwrap(), 2);
    assert_eq!(
        poll().await.unwrap(),
        0,
        "a second look takes nothing twice"
    );
    imap.deliver(&message(
        "ann@customer.test",
        "Third by IMAP",
        "Message-ID: <i3@customer.test>\n",
        "Three.",
    ));
    assert_eq!(poll().await.unwrap(), 1);
    let titles: Vec<String> = app
        .all_items("/api/v1/tickets", &owner.token)
        .await
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect();
    for t in ["First by IMAP", "Second by IMAP", "Third by IMAP"] {
        assert_eq!(titles.iter().filter(|x| *x == t).count(), 1, "{t}");
    }
    // Lost progress (a restored backup, a renumbered mailbox): re-read, still no duplicates.
    app.sql("UPDATE mail_settings SET imap_last_uid = NULL, imap_uid_validity = NULL")
        .await;
    assert_eq!(poll().await.unwrap(), 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM tickets").await, 4);
    let settings = app.get("/api/v1/mail/settings", &owner.token).await;
    assert!(settings.body["imap"]["last_checked_at"].is_string());
    assert!(settings.body["imap"]["last_error"].is_null());

    // A wrong password is reported where the admin looks, not thrown.
    put_settings(
        &app,
        &owner,
        json!({"acknowledge": false, "inbound_project_id": null, "imap": {
            "host": "127.0.0.1", "port": imap.port, "tls": false, "allow_unencrypted": true,
            "username": IMAP_USER, "password": "wrong password"
        }}),
    )
    .await
    .assert_ok(200);
    assert_eq!(poll().await.unwrap(), 0);
    let settings = app.get("/api/v1/mail/settings", &owner.token).await;
    assert!(
        settings.body["imap"]["last_error"]
            .as_str()
            .unwrap()
            .contains("signing in")
    );

    // A deleted organisation's mailbox is left alone.
    app.sql("UPDATE mail_settings SET imap_checked_at = NULL")
        .await;
    app.call(
        reqwest::Method::DELETE,
        "/api/v1/org",
        Some(&owner.token),
        Some(json!({"password": PASSWORD})),
    )
    .await
    .assert_ok(202);
    assert_eq!(poll().await.unwrap(), 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM mail_settings WHERE imap_checked_at IS NOT NULL")
            .await,
        0,
        "nobody looked into it"
    );
    app.shutdown().await;
}
