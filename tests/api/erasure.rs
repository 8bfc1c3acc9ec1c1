//! Erasing a person reaches every trace of them in the organisation: their address in mail
//! conversations, the ingest and mail logs and the audit log's details gives way to a tombstone,
//! their account is anonymised, the audit chain still verifies, and their old threads no longer
//! know their address.

use serde_json::{Value, json};

use crate::{
    helpers::*,
    mail::{AUTHENTICATED, acknowledging_helpdesk, message, post_mail},
};

/// Rows of `table` whose `column` mentions `needle` (any case), on either backend.
async fn mentions(app: &TestApp, table: &str, column: &str, needle: &str) -> i64 {
    let text = match backend() {
        Backend::Postgres => format!("{column}::text"),
        Backend::Sqlite => column.to_owned(),
    };
    app.count(&format!(
        "SELECT count(*) FROM {table} WHERE lower({text}) LIKE '%{needle}%'"
    ))
    .await
}

#[tokio::test]
async fn erasing_a_person_leaves_a_tombstone_wherever_they_were() {
    let (_smtp, app, owner, inbound) = acknowledging_helpdesk().await;
    let carla_mail = message(
        "Carla Customer <Carla@Customer.test>",
        "Printer on fire",
        &format!("{AUTHENTICATED}Message-ID: <c1@customer.test>\n"),
        "It is on fire.",
    );
    let res = post_mail(&app, &inbound, &carla_mail).await;
    let carla_ticket = res.assert_ok(202)["ticket_id"].as_str().unwrap().to_owned();
    // Dan's mail copies Carla in; unauthenticated, her address is held for an agent.
    let dan_mail = message(
        "Dan Customer <dan@customer.test>",
        "Scanner too",
        "Cc: Carla Customer <carla@customer.test>\nMessage-ID: <d1@customer.test>\n",
        "Also broken.",
    );
    let res = post_mail(&app, &inbound, &dan_mail).await;
    let dan_ticket = res.assert_ok(202)["ticket_id"].as_str().unwrap().to_owned();
    // An agent adds her to Dan's conversation (audited with her address).
    app.post(
        &format!("/api/v1/tickets/{dan_ticket}/mail-participants"),
        Some(&owner.token),
        json!({"address": "carla@customer.test"}),
    )
    .await
    .assert_ok(200);
    app.run_pending_events().await;
    let people = app.all_items("/api/v1/users", &owner.token).await;
    let carla = people
        .iter()
        .find(|p| p["email"] == "carla@customer.test")
        .expect("Carla is a requester");
    let carla_id = carla["id"].as_str().unwrap().to_owned();
    for (table, column) in [
        ("mail_threads", "participants"),
        ("mail_ingest", "sender"),
        ("mails", "to_address"),
        ("audit_log", "details"),
    ] {
        assert!(
            mentions(&app, table, column, "carla@customer.test").await > 0,
            "{table}"
        );
    }

    let res = app
        .delete(
            &format!("/api/v1/users/{carla_id}?erase=true"),
            &owner.token,
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.body);

    for (table, column) in [
        ("mail_threads", "participants"),
        ("mail_messages", "held_participants"),
        ("mail_ingest", "sender"),
        ("mails", "to_address"),
        ("audit_log", "details"),
        ("users", "email"),
        ("users", "name"),
        ("notifications", "title"),
    ] {
        for needle in ["carla@customer.test", "carla customer"] {
            assert_eq!(
                mentions(&app, table, column, needle).await,
                0,
                "{table}.{column}"
            );
        }
    }
    let tombstone = format!("erased-{}@invalid", carla_id.replace('-', ""));
    let conversation = app
        .get(
            &format!("/api/v1/tickets/{dan_ticket}/mail-participants"),
            &owner.token,
        )
        .await;
    let participants = conversation.assert_ok(200)["participants"].clone();
    assert!(
        participants.as_array().unwrap().contains(&json!(tombstone)),
        "{participants}"
    );
    // Her ticket stays, under her tombstone; the audit log still verifies, pseudonymised.
    let ticket = app
        .get(&format!("/api/v1/tickets/{carla_ticket}"), &owner.token)
        .await;
    assert_eq!(ticket.assert_ok(200)["requester_id"], json!(carla_id));
    let name: String = app
        .scalar(&format!(
            "SELECT name FROM users WHERE email = '{tombstone}'"
        ))
        .await;
    assert_eq!(
        name,
        format!("Erased person {}", &carla_id[carla_id.len() - 4..])
    );
    let verified = app.get("/api/v1/audit-log/verify", &owner.token).await;
    assert_eq!(verified.assert_ok(200)["ok"], true, "{}", verified.body);
    let log = app.all_items("/api/v1/audit-log", &owner.token).await;
    assert!(
        log.iter().any(|e| !e["redacted_at"].is_null()),
        "an entry was pseudonymised"
    );

    // Her address means a stranger now: new mail from it starts anew.
    let again = message(
        "Carla Customer <carla@customer.test>",
        "Re: Printer on fire",
        &format!("{AUTHENTICATED}Message-ID: <c2@customer.test>\n"),
        "Still on fire.",
    );
    let res = post_mail(&app, &inbound, &again).await;
    let body: &Value = res.assert_ok(202);
    let new_ticket = body["ticket_id"].as_str().unwrap();
    let fresh = app
        .get(&format!("/api/v1/tickets/{new_ticket}"), &owner.token)
        .await;
    assert_ne!(fresh.assert_ok(200)["requester_id"], json!(carla_id));
    app.shutdown().await;
}
