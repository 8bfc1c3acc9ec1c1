//! The permission matrix over HTTP: every role tries every action of the matrix and gets
//! exactly what `docket::access::allowed` says (2xx, or 403 problem).

use docket::access::{Action, Role, allowed};
use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn every_role_gets_what_the_matrix_says() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let mut actors = Vec::new();
    for role in Role::ALL {
        let actor = match role {
            Role::Owner => owner.clone(),
            _ => {
                app.member(
                    &owner,
                    &format!("{}@example.com", role.as_str()),
                    role.as_str(),
                )
                .await
            }
        };
        actors.push((role, actor));
    }
    let mut n = 0;
    for (role, actor) in &actors {
        let role = *role;
        for action in Action::ALL {
            n += 1;
            // A fresh target for actions on people, so nothing depends on earlier steps.
            let target = app
                .post("/api/v1/users", Some(&owner.token), json!({"email": format!("target-{n}@example.com"), "name": "T", "role": "viewer", "password": PASSWORD}))
                .await;
            let target_id = target.assert_ok(201)["id"].as_str().unwrap().to_owned();
            let t = &actor.token;
            let users = format!("/api/v1/users/{target_id}");
            let res = match action {
                Action::OrgRead => app.get("/api/v1/org", t).await,
                Action::OrgUpdate => app.patch("/api/v1/org", t, json!({"name": format!("Acme {n}")})).await,
                Action::UserList => app.get("/api/v1/users", t).await,
                Action::UserRead => app.get(&users, t).await,
                Action::UserCreate => {
                    app.post("/api/v1/users", Some(t), json!({"email": format!("new-{n}@example.com"), "name": "N", "role": "viewer", "password": PASSWORD})).await
                }
                Action::UserUpdate => app.patch(&users, t, json!({"role": "agent"})).await,
                Action::UserDelete => app.call(Method::DELETE, &users, Some(t), None).await,
                Action::AuditRead => app.get("/api/v1/audit-log", t).await,
            };
            if allowed(role, action) {
                assert!(
                    res.status.is_success(),
                    "{role:?} × {action:?}: {} {}",
                    res.status,
                    res.body
                );
            } else {
                res.assert_problem(403, "forbidden");
            }
        }
    }
    app.shutdown().await;
}
