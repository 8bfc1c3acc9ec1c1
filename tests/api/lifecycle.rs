//! Graceful shutdown: requests in flight when the server is told to stop still get their answer;
//! new connections are refused afterwards.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn in_flight_requests_finish_on_shutdown() {
    let app = spawn_app().await;
    app.signup("acme", "a@example.com").await;
    // Four failures: the next failed login is held back by the throttle for about a second,
    // which makes it a request reliably in flight while the server stops.
    for _ in 0..4 {
        app.login("a@example.com", "wrong password", None)
            .await
            .assert_problem(401, "invalid_credentials");
    }
    let client = reqwest::Client::new();
    let login = app.url("/api/v1/auth/login");
    let health = app.url("/healthz");
    let in_flight = tokio::spawn(async move {
        client
            .post(login)
            .json(&json!({"email": "a@example.com", "password": "wrong password"}))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.shutdown().await;

    let res = in_flight
        .await
        .unwrap()
        .expect("the in-flight request was answered");
    assert_eq!(res.status(), 401);
    assert!(
        reqwest::Client::new().get(health).send().await.is_err(),
        "no new connections after shutdown"
    );
}
