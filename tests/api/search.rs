//! Search over HTTP: what a write commits is found by the next request (and what a delete
//! removes is gone), ranked with highlighted, escaped snippets, combined with the ticket list
//! filters and keyset-paged; requesters and other tenants never find what they must not read.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

async fn search(app: &TestApp, token: &str, query: &str) -> Resp {
    let q: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
    app.get(&format!("/api/v1/search?q={q}"), token).await
}

fn keys(res: &Resp) -> Vec<String> {
    res.assert_ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["ticket"]["key"].as_str().unwrap().to_owned())
        .collect()
}

async fn comment(app: &TestApp, token: &str, ticket: &Value, body: &str, internal: bool) -> String {
    let res = app
        .post(
            &format!(
                "/api/v1/tickets/{}/comments",
                ticket["id"].as_str().unwrap()
            ),
            Some(token),
            json!({"body": body, "internal": internal}),
        )
        .await;
    res.assert_ok(201)["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn search_finds_what_was_just_written_and_forgets_what_was_removed() {
    let app = spawn_app().await;
    let owner = app.signup("find", "owner@find.example.com").await;
    let project = app.project(&owner.token, "FND").await;
    let title = app
        .ticket(
            &owner.token,
            &project,
            json!({"title": "Printer on fire", "description": "Smoke from tray two"}),
        )
        .await;
    let described = app
        .ticket(
            &owner.token,
            &project,
            json!({"title": "Office move", "description": "the printers go last"}),
        )
        .await;
    let commented = app
        .ticket(&owner.token, &project, json!({"title": "Quarterly review"}))
        .await;
    let note = comment(
        &app,
        &owner.token,
        &commented,
        "a paper jam in the printer again",
        false,
    )
    .await;

    // Stemmed, ranked: the title match first.
    let res = search(&app, &owner.token, "printer").await;
    let found = keys(&res);
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found[0], title["key"].as_str().unwrap());
    let first = &res.body["items"][0];
    assert!(
        first["snippet"]
            .as_str()
            .unwrap()
            .contains("<mark>Printer</mark>"),
        "{first}"
    );
    assert_eq!(first["ticket"]["title"], "Printer on fire");
    // Phrases, exclusions and alternatives.
    assert_eq!(
        keys(&search(&app, &owner.token, "\"paper jam\"").await),
        [commented["key"].as_str().unwrap()]
    );
    assert_eq!(
        keys(&search(&app, &owner.token, "\"jam paper\"").await),
        Vec::<String>::new()
    );
    let not_fire = keys(&search(&app, &owner.token, "printer -fire").await);
    assert_eq!(not_fire.len(), 2);
    assert!(!not_fire.contains(&title["key"].as_str().unwrap().to_owned()));
    let either = keys(&search(&app, &owner.token, "smoke or quarterly").await);
    assert_eq!(either.len(), 2, "{either:?}");

    // A changed title is found by its new words at once, and no longer by the old ones.
    let id = title["id"].as_str().unwrap();
    app.call_if(
        Method::PATCH,
        &format!("/api/v1/tickets/{id}"),
        &owner.token,
        1,
        Some(json!({"title": "Scanner smells odd", "description": null})),
    )
    .await
    .assert_ok(200);
    assert_eq!(
        keys(&search(&app, &owner.token, "scanner").await),
        [title["key"].as_str().unwrap()]
    );
    assert_eq!(
        keys(&search(&app, &owner.token, "fire").await),
        Vec::<String>::new()
    );
    // A deleted comment and a deleted ticket are gone at once.
    app.call_if(
        Method::DELETE,
        &format!("/api/v1/comments/{note}"),
        &owner.token,
        1,
        None,
    )
    .await
    .assert_ok(204);
    assert_eq!(
        keys(&search(&app, &owner.token, "jam").await),
        Vec::<String>::new()
    );
    app.call_if(
        Method::DELETE,
        &format!("/api/v1/tickets/{}", described["id"].as_str().unwrap()),
        &owner.token,
        1,
        None,
    )
    .await
    .assert_ok(204);
    assert_eq!(
        keys(&search(&app, &owner.token, "printers").await),
        Vec::<String>::new()
    );
    app.shutdown().await;
}

#[tokio::test]
async fn requesters_and_other_tenants_never_find_what_they_must_not_read() {
    let app = spawn_app().await;
    let owner = app.signup("walls", "owner@walls.example.com").await;
    let agent = app.member(&owner, "agent@walls.example.com", "agent").await;
    let alice = app
        .member(&owner, "alice@walls.example.com", "requester")
        .await;
    let bob = app
        .member(&owner, "bob@walls.example.com", "requester")
        .await;
    let project = app.project(&owner.token, "WAL").await;
    let mine = app
        .post(
            "/api/v1/tickets",
            Some(&alice.token),
            json!({"project_id": project, "title": "my laptop is broken"}),
        )
        .await;
    let mine = mine.assert_ok(201).clone();
    comment(
        &app,
        &agent.token,
        &mine,
        "laptop thief suspected, keep quiet zebra",
        true,
    )
    .await;
    comment(&app, &agent.token, &mine, "we ordered a new laptop", false).await;
    app.post(
        "/api/v1/tickets",
        Some(&bob.token),
        json!({"project_id": project, "title": "laptop of bob zebra"}),
    )
    .await
    .assert_ok(201);
    let other = app.signup("elsewhere", "owner@elsewhere.example.com").await;
    let other_project = app.project(&other.token, "ELS").await;
    app.ticket(
        &other.token,
        &other_project,
        json!({"title": "laptop zebra elsewhere"}),
    )
    .await;

    // Staff find the internal note; Alice finds her ticket, never through the note.
    assert_eq!(keys(&search(&app, &agent.token, "zebra").await).len(), 2);
    assert_eq!(
        keys(&search(&app, &alice.token, "zebra").await),
        Vec::<String>::new()
    );
    assert_eq!(
        keys(&search(&app, &alice.token, "thief").await),
        Vec::<String>::new()
    );
    let res = search(&app, &alice.token, "laptop").await;
    assert_eq!(keys(&res), [mine["key"].as_str().unwrap()]);
    assert!(!res.body.to_string().contains("thief"), "{}", res.body);
    // Bob and the other tenant find only their own.
    assert_eq!(keys(&search(&app, &bob.token, "laptop").await).len(), 1);
    let res = search(&app, &other.token, "laptop").await;
    assert_eq!(keys(&res), ["ELS-1"]);
    assert!(!res.body.to_string().contains("broken") && !res.body.to_string().contains("bob"));
    app.shutdown().await;
}

#[tokio::test]
async fn search_combines_with_filters_pages_and_refuses_what_it_cannot_read() {
    let app = spawn_app().await;
    let owner = app.signup("pages", "owner@pages.example.com").await;
    let project = app.project(&owner.token, "PAG").await;
    let other = app.project(&owner.token, "OTH").await;
    for i in 0..7 {
        let words = "needle ".repeat(i + 1);
        app.ticket(&owner.token, &project, json!({"title": format!("haystack {i}"), "description": words, "priority": if i % 2 == 0 { "high" } else { "low" }}))
            .await;
    }
    app.ticket(&owner.token, &other, json!({"title": "needle elsewhere"}))
        .await;
    app.ticket(
        &owner.token,
        &project,
        json!({"title": "<script>alert('needle')</script> & more"}),
    )
    .await;

    let base = format!("/api/v1/search?q=needle&project_id={project}&limit=3");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("{base}&cursor={c}"),
            None => base.clone(),
        };
        let res = app.get(&path, &owner.token).await;
        seen.extend(keys(&res));
        cursor = res.body["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert_eq!(unique.len(), 8, "no ticket twice across pages");
    assert!(seen.iter().all(|k| k.starts_with("PAG-")));
    let high = app
        .get(
            &format!("/api/v1/search?q=needle&priority=high&project_id={project}"),
            &owner.token,
        )
        .await;
    assert_eq!(keys(&high).len(), 4);
    // Snippets are escaped HTML around the marks.
    let res = search(&app, &owner.token, "alert").await;
    let snippet = res.assert_ok(200)["items"][0]["snippet"]
        .as_str()
        .unwrap()
        .to_owned();
    // (PostgreSQL reads angle brackets as spaces; SQLite keeps them, escaped.)
    assert!(!snippet.contains("<script"), "{snippet}");
    assert!(
        !snippet.contains("script>") || snippet.contains("&lt;/script&gt;"),
        "{snippet}"
    );
    assert!(snippet.contains("<mark>alert</mark>"), "{snippet}");

    for bad in [
        "/api/v1/search",
        "/api/v1/search?q=",
        "/api/v1/search?q=-only",
        "/api/v1/search?q=needle&sort=-created_at",
        "/api/v1/search?q=needle&status=nonsense",
        "/api/v1/search?q=needle&cursor=abc",
        "/api/v1/search?q=%01needle",
    ] {
        app.get(bad, &owner.token)
            .await
            .assert_problem(422, "validation_failed");
    }
    let long = "a".repeat(201);
    search(&app, &owner.token, &long)
        .await
        .assert_problem(422, "validation_failed");
    // Query syntax of either engine is only text.
    for odd in [
        "NEAR(needle",
        "needle*",
        "title:needle",
        "\"needle",
        "needle OR OR",
        "(needle) AND",
        "needle -",
        "'needle'",
    ] {
        search(&app, &owner.token, odd).await.assert_ok(200);
    }
    app.shutdown().await;
}
