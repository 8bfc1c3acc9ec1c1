//! The second hostile-client pass, mail: what a stranger can do with a mail, each case pinned
//! on both backends. The cases that ingest decides run through all three routes that share its
//! code: the inbound address (HTTP), the pipe command and an IMAP mailbox (Dovecot).

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    helpers::*,
    mail::{
        AUTHENTICATED, acknowledging_helpdesk, bounce_report, comments, inbound_path, message,
        post_mail, put_settings,
    },
    mailservers::{IMAP_PASSWORD, IMAP_USER, Imap},
};

/// How a message reaches Docket.
#[derive(Clone, Copy, Debug)]
enum Route {
    Http,
    Command,
    Imap,
}

const ROUTES: [Route; 3] = [Route::Http, Route::Command, Route::Imap];

/// An organisation that takes mail by all three routes.
struct Helpdesk {
    app: TestApp,
    owner: Session,
    inbound: String,
    imap: Imap,
}

impl Helpdesk {
    async fn start(app: TestApp) -> Helpdesk {
        let owner = app.signup("acme", "o@example.com").await;
        let inbound = inbound_path(&app, &owner).await;
        let imap = Imap::start().await;
        put_settings(
            &app,
            &owner,
            json!({"acknowledge": true, "inbound_project_id": null, "imap": {
                "host": "127.0.0.1", "port": imap.port, "tls": false, "allow_unencrypted": true,
                "username": IMAP_USER, "password": IMAP_PASSWORD,
                "authserv_id": "mx.docket.test"
            }}),
        )
        .await
        .assert_ok(200);
        Helpdesk {
            app,
            owner,
            inbound,
            imap,
        }
    }

    /// Sends `raw` by `route` and returns the newest line of the ingest log (what became of
    /// it, whichever route it took).
    async fn send(&mut self, route: Route, raw: &str) -> Value {
        let app = &self.app;
        match route {
            Route::Http => {
                let res = post_mail(app, &self.inbound, raw).await;
                assert!(
                    res.status.as_u16() < 500,
                    "{route:?}: {} {}",
                    res.status,
                    res.body
                );
            }
            Route::Command => {
                let dir = tempfile::tempdir().unwrap();
                let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_docket"))
                    .args(["admin", "ingest-email", "--org", "acme"])
                    .env("DATABASE_URL", &app.database_url)
                    .env("DOCKET_DATA_DIR", dir.path())
                    .env("DOCKET_JWT_SECRET", JWT_SECRET)
                    .env("DOCKET_MAIL_FROM", "Acme Help <help@docket.test>")
                    .env("DOCKET_MAIL_TRUSTED_AUTHSERV_IDS", "mx.docket.test")
                    .env("DOCKET_MAX_EMAIL_BYTES", (256 * 1024).to_string())
                    .env("DOCKET_LOG_LEVEL", "error")
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                use std::io::Write as _;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(raw.replace('\n', "\r\n").as_bytes())
                    .unwrap();
                child.wait().unwrap();
            }
            Route::Imap => {
                self.imap.deliver(raw);
                let running = app.running();
                docket::conversation::poll_all(running.db(), &running.mail().mailroom)
                    .await
                    .unwrap();
            }
        }
        self.last_log_line().await
    }

    async fn last_log_line(&self) -> Value {
        let log = self
            .app
            .get("/api/v1/mail/ingest-log?limit=1", &self.owner.token)
            .await;
        log.assert_ok(200)["items"][0].clone()
    }

    fn route_name(route: Route) -> &'static str {
        match route {
            Route::Http => "http",
            Route::Command => "command",
            Route::Imap => "imap",
        }
    }
}

/// A mail of N quoted lines and one plain line cost N² (an 80 KB mail took 4.8 s and two froze
/// the server). Two such mails of 1.5 million lines (6 MB) each, sent at once, are read and
/// trimmed now: quadratic work on them would not end within the request deadline. (That reading
/// runs on blocking threads, one mail per core at a time, is `Mailroom::read`'s structure; its
/// cost is measured by the benchmark harness, not timed here.)
#[tokio::test]
async fn quoted_line_bombs_are_read_in_linear_time() {
    let app = spawn_app_tuned(None, |_, serve| {
        serve.mail.max_email_bytes = 8 * 1024 * 1024;
    })
    .await;
    let owner = app.signup("acme", "o@example.com").await;
    let inbound = inbound_path(&app, &owner).await;
    let bomb = |n: usize| {
        message(
            "ann@customer.test",
            &format!("Bomb {n}"),
            &format!("Message-ID: <bomb-{n}@customer.test>\n"),
            &format!("Top line.\n{}plain tail", "> q\n".repeat(1_500_000)),
        )
    };
    let (first, second) = (bomb(1), bomb(2));
    let (a, b) = tokio::join!(
        post_mail(&app, &inbound, &first),
        post_mail(&app, &inbound, &second)
    );
    for res in [a, b] {
        assert_eq!(
            res.assert_ok(202)["outcome"],
            "ticket_created",
            "{}",
            res.body
        );
        let id = res.body["ticket_id"].as_str().unwrap();
        let ticket = app
            .get(&format!("/api/v1/tickets/{id}"), &owner.token)
            .await;
        let text = ticket.assert_ok(200)["description"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            text.starts_with("Top line.") && text.len() < 70_000,
            "{}",
            text.len()
        );
    }
    app.shutdown().await;
}

/// Every outcome, refusal or error, is a line in the ingest log, by every route: a viewer's
/// mail is refused like any write they may not make (ingest no longer raised them to agent), a
/// deactivated member's is refused (on PostgreSQL it was a 500 and nothing logged), and an
/// ordinary mail with a long subject, right-to-left marks and control characters is taken
/// (it was a 422 and unlogged). A mailbox moves on past a refused message.
#[tokio::test]
async fn every_mail_is_logged_and_refusals_never_stop_a_mailbox() {
    let mut desk = Helpdesk::start(spawn_app().await).await;
    desk.app
        .member(&desk.owner, "viewer@customer.test", "viewer")
        .await;
    let gone = desk
        .app
        .member(&desk.owner, "gone@customer.test", "agent")
        .await;
    desk.app
        .patch(
            &format!("/api/v1/users/{}", gone.user_id),
            &desk.owner.token,
            json!({"active": false}),
        )
        .await
        .assert_ok(200);
    let ticket = desk
        .app
        .ticket(
            &desk.owner.token,
            &desk.app.project(&desk.owner.token, "OPS").await,
            json!({}),
        )
        .await;
    let key = ticket["key"].as_str().unwrap().to_owned();

    for route in ROUTES {
        let name = Helpdesk::route_name(route);
        // A viewer writes into a ticket by its tag: refused, logged, nothing written.
        let before = comments(&desk.app, &key, &desk.owner.token).await.len();
        let line = desk
            .send(
                route,
                &message(
                    "viewer@customer.test",
                    &format!("Re: [{key}] from a viewer"),
                    &format!("Message-ID: <viewer-{name}@customer.test>\n"),
                    "I may only read.",
                ),
            )
            .await;
        assert_eq!(line["outcome"], "rejected", "{route:?} {line}");
        assert_eq!(line["route"], name);
        assert!(
            line["reason"].as_str().unwrap().contains("viewer"),
            "{line}"
        );
        assert_eq!(
            comments(&desk.app, &key, &desk.owner.token).await.len(),
            before
        );

        // A deactivated member: refused and logged, on both backends.
        let line = desk
            .send(
                route,
                &message(
                    "gone@customer.test",
                    "Still here",
                    &format!("Message-ID: <gone-{name}@customer.test>\n"),
                    "Let me back in.",
                ),
            )
            .await;
        assert_eq!(line["outcome"], "rejected", "{route:?} {line}");
        assert!(
            line["reason"].as_str().unwrap().contains("deactivated"),
            "{line}"
        );

        // The customer's words, as they wrote them: taken.
        let subject = format!(
            "{} \u{5e9}\u{5dc}\u{5d5}\u{5dd}\u{200f} {name}",
            "x".repeat(230)
        );
        let line = desk
            .send(
                route,
                &message(
                    "ann@customer.test",
                    &subject,
                    &format!("Message-ID: <words-{name}@customer.test>\n"),
                    "Form\u{c}feed and \u{1b}[1mescape.",
                ),
            )
            .await;
        assert_eq!(line["outcome"], "ticket_created", "{route:?} {line}");
        let id = line["ticket_id"].as_str().unwrap();
        let made = desk
            .app
            .get(&format!("/api/v1/tickets/{id}"), &desk.owner.token)
            .await;
        let made = made.assert_ok(200);
        assert_eq!(made["title"].as_str().unwrap().chars().count(), 200);
        assert_eq!(made["description"], "Formfeed and [1mescape.");
    }
    assert_eq!(
        desk.app
            .count("SELECT COUNT(*) FROM memberships WHERE role = 'agent' AND active")
            .await,
        0,
        "nobody was raised to agent"
    );
    // The mailbox went past its refused messages: nothing is left to take.
    let running = desk.app.running();
    assert_eq!(
        docket::conversation::poll_all(running.db(), &running.mail().mailroom)
            .await
            .unwrap(),
        0
    );
    desk.app.shutdown().await;
}

/// A stranger forging the requester's From on a `[KEY-N]` reply, with himself in Cc, used to
/// become a participant and receive the agent's next answer. A mail adds people only when it
/// is authenticated (the trusted mail system's topmost `Authentication-Results` says DMARC
/// passed); otherwise the addresses are held on the message and an agent adds them with one
/// click. An authenticated mail adds at most 20; the rest are held. Unauthenticated senders get
/// no acknowledgement (backscatter), and automatic mail gets none either.
#[tokio::test]
async fn a_forged_from_cannot_copy_strangers_into_a_conversation() {
    let (smtp, app, owner, inbound) = acknowledging_helpdesk().await;
    // The customer writes in, authenticated, copying a colleague.
    let first = message(
        "ann@customer.test",
        "Printer",
        &format!("{AUTHENTICATED}Cc: boss@customer.test\nMessage-ID: <p1@customer.test>\n"),
        "It jams.",
    );
    let res = post_mail(&app, &inbound, &first).await;
    let ticket = res.assert_ok(202)["ticket_id"].as_str().unwrap().to_owned();
    let key = app
        .get(&format!("/api/v1/tickets/{ticket}"), &owner.token)
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // The forgery: the requester's From, the stranger in Cc, a lower header claiming a pass.
    let forged = message(
        "ann@customer.test",
        &format!("Re: [{key}] Printer"),
        "Authentication-Results: mx.docket.test; dmarc=fail header.from=customer.test\n\
         Authentication-Results: mx.docket.test; dmarc=pass header.from=customer.test\n\
         Cc: eve@evil.test\nMessage-ID: <p2@evil.test>\n",
        "Please copy my assistant.",
    );
    let res = post_mail(&app, &inbound, &forged).await;
    assert_eq!(res.assert_ok(202)["outcome"], "comment_added");
    assert!(
        res.body["reason"]
            .as_str()
            .unwrap()
            .contains("not authenticated"),
        "{}",
        res.body
    );
    let conversation = app
        .get(
            &format!("/api/v1/tickets/{ticket}/mail-participants"),
            &owner.token,
        )
        .await;
    let conversation = conversation.assert_ok(200).clone();
    assert_eq!(conversation["participants"], json!(["boss@customer.test"]));
    assert_eq!(conversation["held"][0]["address"], "eve@evil.test");

    // The agent's next answer does not reach the stranger.
    let comments_path = format!("/api/v1/tickets/{ticket}/comments");
    let answer =
        |body: &'static str| app.post(&comments_path, Some(&owner.token), json!({ "body": body }));
    answer("First answer").await.assert_ok(201);
    app.run_pending_events().await;
    app.deliver_mail().await;
    assert!(smtp.to("eve@evil.test").is_empty());
    assert_eq!(smtp.to("boss@customer.test").len(), 1);

    // Only an address a mail copied in can be added; an agent adds it with one click, and a
    // viewer (who may not change tickets) cannot.
    let agent = app.member(&owner, "agent@acme.test", "agent").await;
    let viewer = app.member(&owner, "viewer@acme.test", "viewer").await;
    let participants = format!("/api/v1/tickets/{ticket}/mail-participants");
    let add = |token: &str, address: &str| {
        let req = app
            .request(reqwest::Method::POST, &participants, Some(token))
            .json(&json!({ "address": address }));
        app.send(req)
    };
    add(&agent.token, "stranger@elsewhere.test")
        .await
        .assert_problem(422, "validation_failed");
    add(&viewer.token, "eve@evil.test")
        .await
        .assert_problem(403, "forbidden");
    let added = add(&agent.token, "eve@evil.test").await;
    assert_eq!(
        added.assert_ok(200)["participants"],
        json!(["boss@customer.test", "eve@evil.test"])
    );
    assert_eq!(added.body["held"], json!([]));
    answer("Second answer").await.assert_ok(201);
    app.run_pending_events().await;
    app.deliver_mail().await;
    assert_eq!(smtp.to("eve@evil.test").len(), 1);
    // And takes them out again.
    let removed = app
        .delete(
            &format!("/api/v1/tickets/{ticket}/mail-participants/eve@evil.test"),
            &agent.token,
        )
        .await;
    assert_eq!(
        removed.assert_ok(200)["participants"],
        json!(["boss@customer.test"])
    );

    // Cc amplification: 300 addresses copied in by an authenticated mail add 20.
    let many: Vec<String> = (0..300).map(|n| format!("cc{n}@customer.test")).collect();
    let crowd = message(
        "ann@customer.test",
        &format!("Re: [{key}] everyone"),
        &format!(
            "{AUTHENTICATED}Cc: {}\nMessage-ID: <p3@customer.test>\n",
            many.join(", ")
        ),
        "Everyone should know.",
    );
    let res = post_mail(&app, &inbound, &crowd).await;
    assert!(
        res.assert_ok(202)["reason"]
            .as_str()
            .unwrap()
            .contains("at most 20")
    );
    let conversation = app
        .get(
            &format!("/api/v1/tickets/{ticket}/mail-participants"),
            &owner.token,
        )
        .await;
    assert_eq!(
        conversation.body["participants"].as_array().unwrap().len(),
        21
    );
    // The 280 left out, and the stranger taken out before (held again: an agent may re-add).
    assert_eq!(conversation.body["held"].as_array().unwrap().len(), 281);

    // Backscatter: a forged From gets no acknowledgement; nor do automatic mails.
    smtp.clear();
    for (n, headers) in [
        "",
        "X-Autoreply: yes\n",
        "X-Autorespond: yes\n",
        "Precedence: auto_reply\n",
        "Return-Path: <>\n",
    ]
    .into_iter()
    .enumerate()
    {
        let raw = message(
            "victim@third-party.test",
            "You won",
            &format!("{headers}Message-ID: <spam-{n}@evil.test>\n"),
            "Click.",
        );
        let res = post_mail(&app, &inbound, &raw).await;
        let outcome = res.assert_ok(202)["outcome"].clone();
        if headers.is_empty() {
            assert_eq!(outcome, "ticket_created");
            assert!(
                res.body["reason"]
                    .as_str()
                    .unwrap()
                    .contains("no acknowledgement")
            );
        } else {
            assert_eq!(outcome, "suppressed", "{headers}");
        }
    }
    app.run_pending_events().await;
    app.deliver_mail().await;
    assert!(smtp.to("victim@third-party.test").is_empty());
    app.shutdown().await;
}

/// A `multipart/report` from anyone marked any address as bouncing, read anywhere in the mail.
/// A report counts only when it comes back to the signed return path (VERP) of a mail Docket
/// sent from this organisation, for that mail's recipient, read from its
/// `message/delivery-status` part; admins see the marks and clear them.
#[tokio::test]
async fn only_a_report_on_a_mail_docket_sent_marks_a_bounce() {
    let (smtp, app, owner, inbound) = acknowledging_helpdesk().await;
    let other = app.signup("globex", "g@example.com").await;
    let customer = message("bob@customer.test", "Hello", AUTHENTICATED, "Hi.");
    post_mail(&app, &inbound, &customer).await.assert_ok(202);
    app.run_pending_events().await;
    app.deliver_mail().await;
    let sent = smtp.to("bob@customer.test");
    let return_path = sent[0].return_path();

    let forgeries = [
        // To the plain address, naming any victim.
        bounce_report("help@docket.test", "ceo@customer.test"),
        // A made-up return path.
        bounce_report(&return_path.replacen("+b", "+b0", 1), "bob@customer.test"),
        // A genuine return path, but another recipient.
        bounce_report(&return_path, "ceo@customer.test"),
        // The victim named outside the status part only.
        format!(
            "From: MAILER-DAEMON@mx.test\nTo: {return_path}\nSubject: x\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nFinal-Recipient: rfc822; bob@customer.test\nAction: failed\n--b--\n"
        ),
    ];
    for raw in &forgeries {
        let res = post_mail(&app, &inbound, raw).await;
        assert_eq!(res.assert_ok(202)["outcome"], "suppressed", "{raw}");
    }
    // A genuine report delivered to another organisation's address is not theirs either.
    let globex = inbound_path(&app, &other).await;
    let res = post_mail(
        &app,
        &globex,
        &bounce_report(&return_path, "bob@customer.test"),
    )
    .await;
    assert_eq!(res.assert_ok(202)["outcome"], "suppressed");
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_bounces").await, 0);

    let res = post_mail(
        &app,
        &inbound,
        &bounce_report(&return_path, "bob@customer.test"),
    )
    .await;
    assert_eq!(res.assert_ok(202)["outcome"], "bounce");
    let marks = app.get("/api/v1/mail/bounces", &owner.token).await;
    assert_eq!(
        pluck(&marks.assert_ok(200)["items"], "address"),
        vec!["bob@customer.test"]
    );
    app.get("/api/v1/mail/bounces", &other.token)
        .await
        .assert_ok(200);
    assert_eq!(
        app.get("/api/v1/mail/bounces", &other.token).await.body["items"],
        json!([])
    );
    let agent = app.member(&owner, "agent@acme.test", "agent").await;
    app.get("/api/v1/mail/bounces", &agent.token)
        .await
        .assert_problem(403, "forbidden");
    app.delete("/api/v1/mail/bounces/bob@customer.test", &other.token)
        .await
        .assert_problem(404, "bounce_not_found");
    app.delete("/api/v1/mail/bounces/bob@customer.test", &owner.token)
        .await
        .assert_ok(204);
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_bounces").await, 0);
    app.shutdown().await;
}

/// The inbound address is checked before the body is read (60 connections with a bogus token
/// took 1.6 GB), the body is spooled to a file under the size limit, one client address
/// delivers a few messages at a time, and every answer given before its body was read says
/// `Connection: close`.
#[tokio::test]
async fn inbound_bodies_are_read_only_for_a_real_address_and_a_few_at_a_time() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let inbound = inbound_path(&app, &owner).await;
    // A body that never ends: answered at once, without reading it.
    let (_sender, body) = endless_body();
    let res = app
        .client
        .post(app.url("/api/v1/inbound/email/0123456789abcdef0123456789abcdef00112233445566778899"))
        .header("content-type", "message/rfc822")
        .body(body)
        .send();
    let res = tokio::time::timeout(Duration::from_secs(10), res)
        .await
        .expect("answered before the body ended")
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["connection"], "close");

    // Twelve deliveries at once from one address whose bodies do not end: eight are taken in
    // (the test server's limit), four are turned away at once.
    let mut held = Vec::new();
    for _ in 0..12 {
        let (sender, body) = endless_body();
        let req = app
            .client
            .post(app.url(&inbound))
            .header("content-type", "message/rfc822")
            .body(body)
            .send();
        held.push((sender, tokio::spawn(req)));
    }
    for _ in 0..100 {
        if held.iter().filter(|(_, h)| h.is_finished()).count() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut refused = 0;
    let mut pending = Vec::new();
    for (sender, h) in held {
        if h.is_finished() {
            let res = h.await.unwrap().unwrap();
            assert_eq!(res.status(), 429);
            assert!(res.headers().contains_key("retry-after"));
            refused += 1;
        } else {
            pending.push((sender, h));
        }
    }
    assert_eq!((refused, pending.len()), (4, 8));
    // Places come back when deliveries end.
    for (sender, h) in pending {
        drop(sender);
        assert_eq!(h.await.unwrap().unwrap().status(), 202);
    }
    post_mail(
        &app,
        &inbound,
        &message("a@customer.test", "Later", "", "x"),
    )
    .await
    .assert_ok(202);

    // A JSON body over the limit: 413, and the connection is not reused.
    let big = app
        .client
        .post(app.url("/api/v1/projects"))
        .bearer_auth(&owner.token)
        .header("content-type", "application/json")
        .body(vec![b' '; 200 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    assert_eq!(big.headers()["connection"], "close");
    // A request whose body was read keeps its connection.
    let fine = app
        .client
        .get(app.url("/api/v1/projects"))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert!(fine.headers().get("connection").is_none());
    app.shutdown().await;
}

/// A request body that sends a little, then nothing more until its sender is dropped.
fn endless_body() -> (tokio::sync::mpsc::Sender<()>, reqwest::Body) {
    use futures::StreamExt as _;
    let (tx, rx) = tokio::sync::mpsc::channel::<()>(1);
    let head = futures::stream::once(async {
        Ok::<_, std::io::Error>(b"From: a@b.c\r\nSubject: slow\r\n\r\n".to_vec())
    });
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await;
        None::<(Result<Vec<u8>, std::io::Error>, _)>
    });
    (tx, reqwest::Body::wrap_stream(head.chain(rest)))
}

/// IMAP mailboxes get the walls of any destination a tenant chooses: the SSRF guard (no
/// loopback; the refusal tells nothing of what is there), a timeout on every step, several
/// mailboxes at once (a stalled server took a victim's mail 607 s instead of 3), the size a
/// server announces checked before fetching, and the stored password never sent to a new port
/// or over plain text unless the admin allowed it.
#[tokio::test]
async fn imap_mailboxes_are_walled_like_any_chosen_destination() {
    // The guard, without the test suite's loopback allowance.
    let walled = spawn_app_tuned(None, |_, serve| {
        serve.webhooks.webhook_allowed_nets = Vec::new();
    })
    .await;
    let owner = walled.signup("acme", "o@example.com").await;
    let mailbox = |host: &str, port: u16| {
        json!({"acknowledge": false, "inbound_project_id": null, "imap": {
            "host": host, "port": port, "tls": true,
            "username": IMAP_USER, "password": IMAP_PASSWORD
        }})
    };
    for host in [
        "127.0.0.1",
        "[::1]",
        "10.0.0.1",
        "169.254.169.254",
        "[::ffff:0:a00:1]",
    ] {
        put_settings(&walled, &owner, mailbox(host, 993))
            .await
            .assert_problem(422, "validation_failed");
    }
    // A name is judged when Docket connects: nothing is sent, and the refusal says only that.
    put_settings(&walled, &owner, mailbox("localhost", 993))
        .await
        .assert_ok(200);
    let running = walled.running();
    docket::conversation::poll_all(running.db(), &running.mail().mailroom)
        .await
        .unwrap();
    let error = walled.get("/api/v1/mail/settings", &owner.token).await.body["imap"]["last_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("is not an allowed destination"), "{error}");
    assert!(
        !error.contains("127.0.0.1") && !error.contains("::1"),
        "{error}"
    );
    walled.shutdown().await;

    // Allowed networks (the test suite's loopback): what a server sends never shows, and an
    // open port tells nothing a closed one does not.
    let mut desk = Helpdesk::start(spawn_app().await).await;
    let banner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let banner_port = banner.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = banner.accept().await {
            use tokio::io::AsyncWriteExt as _;
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2 secret-banner\r\n").await;
        }
    });
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut errors = Vec::new();
    for port in [banner_port, closed] {
        put_settings(
            &desk.app,
            &desk.owner,
            json!({"acknowledge": false, "inbound_project_id": null, "imap": {
                "host": "127.0.0.1", "port": port, "tls": false, "allow_unencrypted": true,
                "username": IMAP_USER, "password": IMAP_PASSWORD
            }}),
        )
        .await
        .assert_ok(200);
        let running = desk.app.running();
        docket::conversation::poll_all(running.db(), &running.mail().mailroom)
            .await
            .unwrap();
        let settings = desk
            .app
            .get("/api/v1/mail/settings", &desk.owner.token)
            .await;
        errors.push(
            settings.body["imap"]["last_error"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert!(
        !errors[0].contains("secret-banner") && !errors[0].contains("SSH"),
        "{errors:?}"
    );
    assert_eq!(errors[0], errors[1], "open and closed ports look alike");

    // The stored password goes only where it was entered for, and never in clear by default.
    let imap = |port: u16, tls: bool, allow: bool, password: Option<&str>| {
        let mut m = json!({"host": "127.0.0.1", "port": port, "tls": tls,
                           "allow_unencrypted": allow, "username": IMAP_USER});
        if let Some(pw) = password {
            m["password"] = json!(pw);
        }
        json!({"acknowledge": false, "inbound_project_id": null, "imap": m})
    };
    let port = desk.imap.port;
    put_settings(
        &desk.app,
        &desk.owner,
        imap(port, false, true, Some(IMAP_PASSWORD)),
    )
    .await
    .assert_ok(200);
    for (changed, field) in [
        (imap(port + 1, false, true, None), "imap.password"),
        (imap(port, true, false, None), "imap.password"),
        (imap(port, false, false, Some(IMAP_PASSWORD)), "imap.tls"),
    ] {
        let res = put_settings(&desk.app, &desk.owner, changed).await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["field"], field, "{}", res.body);
    }
    put_settings(&desk.app, &desk.owner, imap(port, false, true, None))
        .await
        .assert_ok(200);

    // A message larger than Docket takes is not fetched: logged, and the mailbox moves on.
    desk.imap.deliver(&message(
        "ann@customer.test",
        "Huge",
        "Message-ID: <huge@customer.test>\n",
        &"x".repeat(300 * 1024),
    ));
    let line = desk
        .send(
            Route::Imap,
            &message(
                "ann@customer.test",
                "After it",
                "Message-ID: <after@customer.test>\n",
                "Small.",
            ),
        )
        .await;
    assert_eq!(line["outcome"], "ticket_created", "{line}");
    let refused = desk
        .app
        .get(
            "/api/v1/mail/ingest-log?outcome=rejected",
            &desk.owner.token,
        )
        .await;
    let reasons = refused.body["items"].to_string();
    assert!(reasons.contains("larger than"), "{reasons}");

    // A stalled server delays nobody else: another organisation's mailbox beside it is read
    // while the stalled one waits out its step timeout.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stalled_port = stalled.local_addr().unwrap().port();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = stalled.accept().await {
            held.push(s);
        }
    });
    let victim = desk.app.signup("victim", "v@example.com").await;
    put_settings(
        &desk.app,
        &victim,
        json!({"acknowledge": false, "inbound_project_id": null, "imap": {
            "host": "127.0.0.1", "port": stalled_port, "tls": false, "allow_unencrypted": true,
            "username": IMAP_USER, "password": IMAP_PASSWORD
        }}),
    )
    .await
    .assert_ok(200);
    desk.imap.deliver(&message(
        "ann@customer.test",
        "While the other stalls",
        "Message-ID: <meanwhile@customer.test>\n",
        "Quick.",
    ));
    let db = desk.app.running().db().clone();
    let mailroom = desk.app.running().mail().mailroom.clone();
    let polling = tokio::spawn(async move { docket::conversation::poll_all(&db, &mailroom).await });
    desk.app
        .wait_count(
            "SELECT COUNT(*) FROM tickets WHERE title = 'While the other stalls'",
            1,
            10,
        )
        .await;
    assert!(
        !polling.is_finished(),
        "the stalled mailbox is still waiting"
    );
    polling.abort();
    desk.app.shutdown().await;
}

/// Invitations had no cap: a new organisation named like a phishing lure sent 60 of 60, and
/// one address could be invited again at will.
#[tokio::test]
async fn invitations_are_limited_per_organisation_and_per_address() {
    let app = spawn_app_tuned(None, |_, serve| {
        serve.rate_limits.invitations_per_day = 25;
    })
    .await;
    let owner = app.signup("acme", "o@example.com").await;
    let invite = |email: String| {
        app.post(
            "/api/v1/invitations",
            Some(&owner.token),
            json!({"email": email, "role": "agent"}),
        )
    };
    invite("first@example.com".into()).await.assert_ok(201);
    // The same address again at once: refused, and told when.
    let again = invite("first@example.com".into()).await;
    again.assert_problem(429, "too_many_requests");
    assert!(again.headers.contains_key("retry-after"));
    // A new organisation sends a fifth of the daily allowance: 5 in all.
    for n in 0..4 {
        invite(format!("p{n}@example.com")).await.assert_ok(201);
    }
    invite("sixth@example.com".into())
        .await
        .assert_problem(429, "too_many_requests");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM mails WHERE kind = 'invitation'")
            .await,
        5
    );
    // An older organisation has the whole allowance.
    app.sql("UPDATE organizations SET created_at = '2000-01-01T00:00:00Z'")
        .await;
    invite("sixth@example.com".into()).await.assert_ok(201);
    app.shutdown().await;
}

/// Mail from an address that has an account elsewhere made that account a requester here:
/// the organisation saw the account's own name (so it learnt the address had an account), and
/// the person's sign-in without an organisation broke ("choose one of"). Mail makes contacts,
/// the organisation's own, named as the mail names them; the person links them to their
/// account only by following a mailed link while signed in, and a customer with no account
/// claims them by asking for a password.
#[tokio::test]
async fn mail_makes_contacts_and_only_their_person_links_them_to_an_account() {
    let (smtp, app, owner, inbound) = acknowledging_helpdesk().await;
    // Gina owns another organisation; her account's name is hers alone.
    let gina = app.signup("globex", "gina@customer.test").await;
    app.patch(
        &format!("/api/v1/users/{}", gina.user_id),
        &gina.token,
        json!({"name": "Gina Private-Name"}),
    )
    .await
    .assert_ok(200);

    let res = post_mail(
        &app,
        &inbound,
        &message(
            "G. <gina@customer.test>",
            "Hello Acme",
            AUTHENTICATED,
            "A question.",
        ),
    )
    .await;
    let ticket = res.assert_ok(202)["ticket_id"].as_str().unwrap().to_owned();
    // Acme sees a contact, named as the mail names her; nothing of her account.
    let people = app.all_items("/api/v1/users", &owner.token).await;
    let contact = people
        .iter()
        .find(|p| p["email"] == "gina@customer.test")
        .expect("a contact with her address")
        .clone();
    assert_eq!(contact["name"], "G.");
    assert_eq!(contact["role"], "requester");
    assert_ne!(contact["id"], gina.user_id.as_str());
    assert!(
        !Value::from(people.clone())
            .to_string()
            .contains("Private-Name")
    );
    // Her account is as it was: one organisation, plain sign-in.
    let me = app.login("gina@customer.test", PASSWORD, None).await;
    assert_eq!(me.assert_ok(200)["organization"]["slug"], "globex");
    // A second mail from her is the same contact.
    post_mail(
        &app,
        &inbound,
        &message("Gina <gina@customer.test>", "Again", AUTHENTICATED, "More."),
    )
    .await
    .assert_ok(202);
    let contacts: Vec<Value> = app
        .all_items("/api/v1/users", &owner.token)
        .await
        .into_iter()
        .filter(|p| p["email"] == "gina@customer.test")
        .collect();
    assert_eq!(contacts.len(), 1);

    // She links them herself: a mailed link, followed while signed in as herself.
    app.post("/api/v1/me/contact-links", Some(&gina.token), json!({}))
        .await
        .assert_ok(202);
    app.deliver_mail().await;
    let link = smtp
        .to("gina@customer.test")
        .into_iter()
        .rev()
        .find(|m| m.has_link("https://docket.test/link-contacts/"))
        .expect("a link mail")
        .link("https://docket.test/link-contacts/");
    let token = link.rsplit('/').next().unwrap().to_owned();
    // Someone else signed in cannot use it, and their try does not spend it.
    let stranger = app.signup("initech", "someone@else.test").await;
    app.post(
        "/api/v1/me/contact-links/confirm",
        Some(&stranger.token),
        json!({"token": token}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let linked = app
        .post(
            "/api/v1/me/contact-links/confirm",
            Some(&gina.token),
            json!({"token": token}),
        )
        .await;
    assert_eq!(
        pluck(&linked.assert_ok(200)["organizations"], "slug"),
        vec!["acme"]
    );
    // Once only.
    app.post(
        "/api/v1/me/contact-links/confirm",
        Some(&gina.token),
        json!({"token": token}),
    )
    .await
    .assert_problem(422, "validation_failed");
    // Now her account is Acme's requester, with her tickets; the contact is retired.
    let ticket_now = app
        .get(&format!("/api/v1/tickets/{ticket}"), &owner.token)
        .await;
    assert_eq!(
        ticket_now.assert_ok(200)["requester_id"],
        gina.user_id.as_str()
    );
    let switched = app
        .post(
            "/api/v1/auth/switch",
            Some(&gina.token),
            json!({"organization": "acme"}),
        )
        .await;
    let in_acme = Session::from_auth(switched.assert_ok(200));
    let mine = app.get("/api/v1/me/tickets", &in_acme.token).await;
    assert_eq!(mine.assert_ok(200)["items"].as_array().unwrap().len(), 2);
    // Her next mail is her account's.
    let res = post_mail(
        &app,
        &inbound,
        &message("gina@customer.test", "Third", AUTHENTICATED, "Still me."),
    )
    .await;
    let third = res.assert_ok(202)["ticket_id"].as_str().unwrap().to_owned();
    let third = app
        .get(&format!("/api/v1/tickets/{third}"), &owner.token)
        .await;
    assert_eq!(third.assert_ok(200)["requester_id"], gina.user_id.as_str());

    // Asking when nothing was sent by mail answers the same, and mails nothing.
    smtp.clear();
    app.post("/api/v1/me/contact-links", Some(&stranger.token), json!({}))
        .await
        .assert_ok(202);
    app.deliver_mail().await;
    assert!(smtp.to("someone@else.test").is_empty());
    app.shutdown().await;
}

/// The mail walls hold by every route, since all three share the code: a forged reply's Cc is
/// held, an authenticated one adds at most 20, automatic mail is suppressed, and a report that
/// is not about a mail Docket sent marks nothing.
#[tokio::test]
async fn every_route_holds_the_same_mail_walls() {
    let mut desk = Helpdesk::start(spawn_app().await).await;
    let first = message(
        "ann@customer.test",
        "Printer",
        &format!("{AUTHENTICATED}Message-ID: <r0@customer.test>\n"),
        "It jams.",
    );
    let line = desk.send(Route::Http, &first).await;
    let ticket = line["ticket_id"].as_str().unwrap().to_owned();
    let participants_path = format!("/api/v1/tickets/{ticket}/mail-participants");
    for (n, route) in ROUTES.into_iter().enumerate() {
        let name = Helpdesk::route_name(route);
        let forged = message(
            "ann@customer.test",
            "Re: Printer",
            &format!(
                "Authentication-Results: other.test; dmarc=pass header.from=customer.test\n\
                 Cc: eve-{name}@evil.test\nIn-Reply-To: <r0@customer.test>\nMessage-ID: <f{n}@evil.test>\n"
            ),
            "Copy my assistant.",
        );
        let line = desk.send(route, &forged).await;
        assert_eq!(line["outcome"], "comment_added", "{route:?} {line}");
        assert!(
            line["reason"]
                .as_str()
                .unwrap()
                .contains("not authenticated"),
            "{line}"
        );
        let crowd: Vec<String> = (0..25)
            .map(|i| format!("cc{n}-{i}@customer.test"))
            .collect();
        let authenticated = message(
            "ann@customer.test",
            "Re: Printer",
            &format!(
                "{AUTHENTICATED}Cc: {}\nIn-Reply-To: <r0@customer.test>\nMessage-ID: <a{n}@customer.test>\n",
                crowd.join(", ")
            ),
            "Everyone.",
        );
        let line = desk.send(route, &authenticated).await;
        assert!(
            line["reason"].as_str().unwrap().contains("at most 20"),
            "{route:?} {line}"
        );
        let now = desk
            .app
            .get(&participants_path, &desk.owner.token)
            .await
            .body;
        assert_eq!(
            now["participants"].as_array().unwrap().len(),
            20 * (n + 1),
            "{route:?}"
        );
        assert!(
            !now["participants"].to_string().contains("evil.test"),
            "{route:?}"
        );

        let automatic = message(
            "victim@third-party.test",
            "Away",
            &format!("X-Autoreply: yes\nMessage-ID: <auto{n}@x.test>\n"),
            "Out of office.",
        );
        assert_eq!(
            desk.send(route, &automatic).await["outcome"],
            "suppressed",
            "{route:?}"
        );
        let forged_report = bounce_report("help@docket.test", "ann@customer.test").replace(
            "Subject: Undelivered Mail",
            &format!("Subject: Undelivered {n}"),
        );
        assert_eq!(
            desk.send(route, &forged_report).await["outcome"],
            "suppressed",
            "{route:?}"
        );
    }
    assert_eq!(desk.app.count("SELECT COUNT(*) FROM mail_bounces").await, 0);
    desk.app.shutdown().await;
}
