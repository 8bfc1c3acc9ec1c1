//! What requests cost the database, read from the `Server-Timing` header the test servers add:
//! a page of tickets and a ticket are one transaction of four statements (begin; enter the
//! tenant and confirm the session; the page with its assignees, labels, project keys and SLA
//! clocks; commit), a create is one transaction, and a token whose session ended or whose role
//! changed is refused by that same first statement.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

/// At most this many statements (begin and commit included) create a ticket with assignees,
/// labels and SLA clocks under an idempotency key (22 before nothing was read or deleted that a
/// new ticket cannot have; one more since an agent's access to the project is read, with the
/// project, in one statement).
const CREATE_STATEMENTS: u32 = 18;

/// (statements, transactions) of an answer.
fn cost(r: &Resp) -> (u32, u32) {
    let timing = r
        .headers
        .get("server-timing")
        .expect("the test server adds Server-Timing")
        .to_str()
        .unwrap();
    let count = |name: &str| -> u32 {
        let at = timing.find(&format!("{name}=")).expect(name) + name.len() + 1;
        timing[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    (count("statements"), count("transactions"))
}

#[tokio::test]
async fn reads_are_one_transaction_of_four_statements_and_creates_one_transaction() {
    let app = spawn_app().await;
    let owner = app.signup("trips", "owner@trips.example.com").await;
    let agent = app.member(&owner, "agent@trips.example.com", "agent").await;
    let project = app.project(&owner.token, "TRP").await;
    // Clocks on every ticket, so the page carries them too.
    app.put(
        "/api/v1/sla-policies",
        &owner.token,
        json!({"policies": [{"priority": "medium", "first_response_minutes": 60,
                             "resolution_minutes": 600}]}),
    )
    .await
    .assert_ok(200);
    let mut ids = Vec::new();
    for n in 0..3 {
        let t = app
            .ticket(
                &owner.token,
                &project,
                json!({"title": format!("Ticket {n}"), "labels": ["b", "a"],
                       "assignee_ids": [agent.user_id, owner.user_id]}),
            )
            .await;
        ids.push(t["id"].as_str().unwrap().to_owned());
    }

    let list = app
        .get("/api/v1/tickets?status=open&limit=2", &agent.token)
        .await;
    let items = list.assert_ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(cost(&list), (4, 1), "a page of tickets");
    // Newest first, assembled whole.
    let titles: Vec<&str> = items.iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Ticket 2", "Ticket 1"]);
    for t in &items {
        assert_eq!(t["labels"], json!(["a", "b"]));
        assert_eq!(t["assignee_ids"].as_array().unwrap().len(), 2);
        assert!(t["key"].as_str().unwrap().starts_with("TRP-"));
        assert_eq!(t["sla"]["first_response"]["state"], "running", "{t}");
    }
    let cursor = list.body["next_cursor"].as_str().unwrap();
    let rest = app
        .get(
            &format!("/api/v1/tickets?status=open&limit=2&cursor={cursor}"),
            &agent.token,
        )
        .await;
    assert_eq!(rest.assert_ok(200)["items"][0]["title"], "Ticket 0");
    assert_eq!(cost(&rest), (4, 1), "the next page");

    let one = app
        .get(&format!("/api/v1/tickets/{}", ids[0]), &agent.token)
        .await;
    assert_eq!(one.assert_ok(200)["labels"], json!(["a", "b"]));
    assert_eq!(cost(&one), (4, 1), "a ticket by id");

    let created = app
        .send(
            app.request(Method::POST, "/api/v1/tickets", Some(&agent.token))
                .header("idempotency-key", "trips-1")
                .json(&json!({"project_id": project, "title": "One more",
                              "labels": ["x"], "assignee_ids": [agent.user_id]})),
        )
        .await;
    created.assert_ok(201);
    let (statements, transactions) = cost(&created);
    assert_eq!(transactions, 1, "a create ({statements} statements)");
    // A new ticket has no clocks, assignees or labels to read or replace: nothing is deleted
    // or looked up that cannot exist.
    assert!(
        statements <= CREATE_STATEMENTS,
        "a create: {statements} statements"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_first_statement_refuses_ended_sessions_and_changed_roles() {
    let app = spawn_app().await;
    let owner = app.signup("ended", "owner@ended.example.com").await;
    let agent = app.member(&owner, "agent@ended.example.com", "agent").await;
    let project = app.project(&owner.token, "END").await;
    app.ticket(&owner.token, &project, json!({})).await;
    app.get("/api/v1/tickets", &agent.token)
        .await
        .assert_ok(200);

    // A role change: the token signed for "agent" is refused, and a refreshed one works.
    app.patch(
        &format!("/api/v1/users/{}", agent.user_id),
        &owner.token,
        json!({"role": "manager"}),
    )
    .await
    .assert_ok(200);
    let stale = app.get("/api/v1/tickets", &agent.token).await;
    stale.assert_problem(401, "invalid_token");
    assert!(stale.body["detail"].as_str().unwrap().contains("role"));
    let token = app.fresh_token(&agent).await;
    app.get("/api/v1/tickets", &token).await.assert_ok(200);

    // A session that ended (logout): reads and writes are refused, nothing is written.
    let out = app
        .post("/api/v1/auth/logout", Some(&token), json!({}))
        .await;
    assert_eq!(out.status, 204, "{}", out.body);
    app.get("/api/v1/tickets", &token)
        .await
        .assert_problem(401, "invalid_token");
    let before = app.count("SELECT COUNT(*) FROM tickets").await;
    app.post(
        "/api/v1/tickets",
        Some(&token),
        json!({"project_id": project, "title": "After logout"}),
    )
    .await
    .assert_problem(401, "invalid_token");
    assert_eq!(app.count("SELECT COUNT(*) FROM tickets").await, before);
    app.get("/api/v1/auth/me", &owner.token)
        .await
        .assert_ok(200);
    app.shutdown().await;
}
