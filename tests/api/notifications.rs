//! In-app notifications: who hears about what, the inbox endpoints, and watchers.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// The person's notifications as (type, title) pairs, oldest first.
async fn inbox(app: &TestApp, who: &Session) -> Vec<(String, String)> {
    app.run_pending_events().await;
    let res = app.get("/api/v1/notifications?limit=200", &who.token).await;
    let mut items: Vec<(String, String)> = res.assert_ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["type"].as_str().unwrap().to_owned(),
                n["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    items.reverse();
    items
}

fn kinds(items: &[(String, String)]) -> Vec<&str> {
    items.iter().map(|(k, _)| k.as_str()).collect()
}

#[tokio::test]
async fn the_right_people_hear_about_each_change_and_nobody_of_their_own() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let alice = app.member(&owner, "alice@example.com", "agent").await;
    let bob = app.member(&owner, "bob@example.com", "agent").await;
    let watcher = app.member(&owner, "wendy@example.com", "viewer").await;
    let customer = app.member(&owner, "carl@example.com", "requester").await;
    let other_customer = app.member(&owner, "dora@example.com", "requester").await;
    let project = app.project(&owner.token, "OPS").await;

    // Created with Alice assigned and Carl as requester: Alice is told, the owner (actor) not.
    let t = app
        .ticket(
            &owner.token,
            &project,
            json!({"assignee_ids": [alice.user_id], "requester_id": customer.user_id}),
        )
        .await;
    let ticket = format!("/api/v1/tickets/{}", t["id"].as_str().unwrap());
    app.call(
        Method::POST,
        &format!("{ticket}/watch"),
        Some(&watcher.token),
        None,
    )
    .await
    .assert_ok(204);
    // Watching twice is watching once.
    app.call(
        Method::POST,
        &format!("{ticket}/watch"),
        Some(&watcher.token),
        None,
    )
    .await
    .assert_ok(204);

    // Bob mentions Alice (and a customer who cannot see the ticket): Alice gets a mention
    // instead of a plain comment; Carl and the watcher get the comment; Dora nothing.
    app.post(
        &format!("{ticket}/comments"),
        Some(&bob.token),
        json!({"body": "@ALICE@example.com can you look? cc @dora@example.com @nobody@example.com"}),
    )
    .await
    .assert_ok(201);
    // An internal note mentioning the customer: never told to customers.
    app.post(
        &format!("{ticket}/comments"),
        Some(&alice.token),
        json!({"body": "@carl@example.com is on the free plan", "internal": true}),
    )
    .await
    .assert_ok(201);
    // Alice resolves it: Carl and the watcher hear; Alice (actor) does not.
    app.call_if(
        Method::POST,
        &format!("{ticket}/complete"),
        &alice.token,
        1,
        None,
    )
    .await
    .assert_ok(200);
    // Reassigned from Alice to Bob by the owner.
    let res = app
        .call_if(
            Method::POST,
            &format!("{ticket}/assign"),
            &owner.token,
            2,
            Some(json!({"assignee_ids": [bob.user_id]})),
        )
        .await;
    res.assert_ok(200);

    let alice_inbox = inbox(&app, &alice).await;
    assert_eq!(
        kinds(&alice_inbox),
        ["assigned", "mentioned", "unassigned"],
        "{alice_inbox:?}"
    );
    assert_eq!(alice_inbox[0].1, "You were assigned OPS-1: Printer on fire");
    let bob_inbox = inbox(&app, &bob).await;
    // Bob wrote the comment and was no follower before his assignment.
    assert_eq!(kinds(&bob_inbox), ["assigned"], "{bob_inbox:?}");
    let carl = inbox(&app, &customer).await;
    assert_eq!(kinds(&carl), ["comment", "status_changed"], "{carl:?}");
    assert_eq!(
        carl[1].1,
        "OPS-1: Printer on fire moved from open to resolved"
    );
    let wendy = inbox(&app, &watcher).await;
    assert_eq!(
        kinds(&wendy),
        ["comment", "comment", "status_changed"],
        "{wendy:?}"
    );
    assert!(inbox(&app, &other_customer).await.is_empty());
    assert!(inbox(&app, &owner).await.is_empty());

    // A comment notification carries the comment and who wrote it.
    let res = app.get("/api/v1/notifications", &customer.token).await;
    let latest: Vec<Value> = res.assert_ok(200)["items"].as_array().unwrap().clone();
    let comment = latest.iter().find(|n| n["type"] == "comment").unwrap();
    assert_eq!(comment["ticket_id"], t["id"]);
    assert_eq!(comment["actor_id"], bob.user_id.as_str());
    assert!(
        comment["body"]
            .as_str()
            .unwrap()
            .starts_with("@ALICE@example.com can you look?")
    );
    assert!(comment["read_at"].is_null());

    // Unwatching stops the comments.
    app.call(
        Method::DELETE,
        &format!("{ticket}/watch"),
        Some(&watcher.token),
        None,
    )
    .await
    .assert_ok(204);
    app.post(
        &format!("{ticket}/comments"),
        Some(&owner.token),
        json!({"body": "closing the loop"}),
    )
    .await
    .assert_ok(201);
    assert_eq!(inbox(&app, &watcher).await.len(), 3);
    assert_eq!(inbox(&app, &customer).await.len(), 3);
    app.shutdown().await;
}

#[tokio::test]
async fn the_inbox_counts_filters_and_marks_read() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let agent = app.member(&owner, "a@example.com", "agent").await;
    let colleague = app.member(&owner, "c@example.com", "agent").await;
    let project = app.project(&owner.token, "OPS").await;
    for _ in 0..3 {
        app.ticket(
            &owner.token,
            &project,
            json!({"assignee_ids": [agent.user_id]}),
        )
        .await;
    }
    app.run_pending_events().await;
    let count = |who: &Session| {
        let token = who.token.clone();
        let app = &app;
        async move {
            app.get("/api/v1/notifications/unread-count", &token)
                .await
                .assert_ok(200)["count"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(count(&agent).await, 3);
    let all = app.get("/api/v1/notifications?limit=2", &agent.token).await;
    let page = all.assert_ok(200).clone();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let rest = app
        .get(
            &format!(
                "/api/v1/notifications?limit=2&cursor={}",
                page["next_cursor"].as_str().unwrap()
            ),
            &agent.token,
        )
        .await;
    assert_eq!(rest.assert_ok(200)["items"].as_array().unwrap().len(), 1);

    let first = page["items"][0]["id"].as_str().unwrap().to_owned();
    let read = format!("/api/v1/notifications/{first}/read");
    // Someone else's notification is not found, in the same organisation or another.
    app.call(Method::PATCH, &read, Some(&colleague.token), None)
        .await
        .assert_problem(404, "notification_not_found");
    let stranger = app.signup("other", "x@example.com").await;
    app.call(Method::PATCH, &read, Some(&stranger.token), None)
        .await
        .assert_problem(404, "notification_not_found");
    app.call(
        Method::PATCH,
        "/api/v1/notifications/not-an-id/read",
        Some(&agent.token),
        None,
    )
    .await
    .assert_problem(404, "not_found");

    let marked = app
        .call(Method::PATCH, &read, Some(&agent.token), None)
        .await;
    let read_at = marked.assert_ok(200)["read_at"]
        .as_str()
        .unwrap()
        .to_owned();
    // Marking again keeps the first time.
    let again = app
        .call(Method::PATCH, &read, Some(&agent.token), None)
        .await;
    assert_eq!(again.assert_ok(200)["read_at"], read_at.as_str());
    assert_eq!(count(&agent).await, 2);
    let unread = app
        .get("/api/v1/notifications?unread=true", &agent.token)
        .await;
    assert_eq!(unread.assert_ok(200)["items"].as_array().unwrap().len(), 2);
    app.get("/api/v1/notifications?unread=maybe", &agent.token)
        .await
        .assert_problem(400, "invalid_query");

    let all_read = app
        .call(
            Method::PATCH,
            "/api/v1/notifications/read-all",
            Some(&agent.token),
            None,
        )
        .await;
    assert_eq!(all_read.assert_ok(200)["count"], 2);
    assert_eq!(count(&agent).await, 0);
    let unread = app
        .get("/api/v1/notifications?unread=true", &agent.token)
        .await;
    assert!(
        unread.assert_ok(200)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Watching needs a ticket the caller can see.
    let t = app.ticket(&owner.token, &project, json!({})).await;
    let watch = format!("/api/v1/tickets/{}/watch", t["id"].as_str().unwrap());
    app.call(Method::POST, &watch, Some(&stranger.token), None)
        .await
        .assert_problem(404, "ticket_not_found");
    let customer = app.member(&owner, "r@example.com", "requester").await;
    app.call(Method::POST, &watch, Some(&customer.token), None)
        .await
        .assert_problem(404, "ticket_not_found");
    app.shutdown().await;
}
