//! The permission matrix over HTTP: every role tries every action of the matrix and gets
//! exactly what `docket::access::allowed` says (2xx, or 403 problem); so does an owner's API
//! token of each scope, capped by what the scope reaches (403 `insufficient_scope`) and never
//! reaching the account (403 `api_token_not_allowed`).

use docket::access::{Action, Role, Scope, allowed};
use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

/// Capital letters only, for project keys: 0 → "AA", 1 → "AB", …
fn letters(n: usize) -> String {
    let a = b'A' + (n / 26 % 26) as u8;
    let b = b'A' + (n % 26) as u8;
    format!("M{}{}", a as char, b as char)
}

#[tokio::test]
async fn every_role_gets_what_the_matrix_says() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "o@example.com").await;
    let project = app.project(&owner.token, "OPS").await;
    // Writes the comments actors moderate: someone other than every actor (tokens act as the
    // owner).
    let author = app.member(&owner, "author@example.com", "admin").await;
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
        actors.push((role, None, actor));
    }
    let mut token_actors = Vec::new();
    for scope in [Scope::Read, Scope::Write, Scope::Admin] {
        let made = app
            .post(
                "/api/v1/api-tokens",
                Some(&owner.token),
                json!({"name": scope.as_str(), "scopes": [scope.as_str()]}),
            )
            .await;
        let token = made.assert_ok(201)["token"].as_str().unwrap().to_owned();
        token_actors.push((
            Role::Owner,
            Some(scope),
            Session {
                token,
                ..owner.clone()
            },
        ));
    }
    let mut n = 0;
    for (role, scope, actor) in actors.iter().chain(&token_actors) {
        let (role, scope) = (*role, *scope);
        for action in Action::ALL {
            n += 1;
            // Fresh targets, so nothing depends on earlier steps: a person, and a ticket the
            // actor requested with a comment by the owner on it.
            let target_id = app
                .member(&owner, &format!("target-{n}@example.com"), "viewer")
                .await
                .user_id;
            let ticket = app
                .ticket(
                    &owner.token,
                    &project,
                    json!({"requester_id": actor.user_id}),
                )
                .await;
            let tickets = format!("/api/v1/tickets/{}", ticket["id"].as_str().unwrap());
            let comment = app
                .post(
                    &format!("{tickets}/comments"),
                    Some(&author.token),
                    json!({"body": "On it"}),
                )
                .await;
            let comments = format!(
                "/api/v1/comments/{}",
                comment.assert_ok(201)["id"].as_str().unwrap()
            );
            let t = &actor.token;
            let users = format!("/api/v1/users/{target_id}");
            let res = match action {
                Action::OrgRead => app.get("/api/v1/org", t).await,
                Action::OrgUpdate => app.patch("/api/v1/org", t, json!({"name": format!("Acme {n}")})).await,
                Action::UserList => app.get("/api/v1/users", t).await,
                Action::UserRead => app.get(&users, t).await,
                Action::UserCreate => {
                    app.post("/api/v1/users", Some(t), json!({"email": format!("new-{n}@example.com"), "name": "N", "role": "viewer"})).await
                }
                Action::UserUpdate => app.patch(&users, t, json!({"role": "agent"})).await,
                Action::UserDelete => app.call(Method::DELETE, &users, Some(t), None).await,
                Action::AuditRead => app.get("/api/v1/audit-log", t).await,
                // Past the wall a wrong password is a 422 (the organisation stays).
                Action::OrgDelete => {
                    app.call(Method::DELETE, "/api/v1/org", Some(t), Some(json!({"password": "not it"}))).await
                }
                // Past the wall a live organisation cannot be restored: 409.
                Action::OrgRestore => app.post("/api/v1/org/restore", Some(t), json!({})).await,
                Action::OrgExport => {
                    app.post("/api/v1/exports", Some(t), json!({"scope": "organization"})).await
                }
                // Past the wall a server that takes no payment says so: 409.
                Action::BillingManage => app.post("/api/v1/billing/portal", Some(t), json!({})).await,
                Action::ProjectRead => app.get(&format!("/api/v1/projects/{project}"), t).await,
                Action::ProjectManage => {
                    app.post("/api/v1/projects", Some(t), json!({"name": "P", "key": letters(n)})).await
                }
                Action::ProjectActivity => {
                    app.get(&format!("/api/v1/projects/{project}/activity"), t).await
                }
                Action::TicketRead => app.get(&tickets, t).await,
                Action::TicketCreate => {
                    app.post("/api/v1/tickets", Some(t), json!({"project_id": project, "title": "Help"})).await
                }
                Action::TicketUpdate => {
                    app.call_if(Method::PATCH, &tickets, t, 1, Some(json!({"title": "Renamed"}))).await
                }
                Action::TicketDelete => app.call_if(Method::DELETE, &tickets, t, 1, None).await,
                Action::TicketRestore => {
                    app.call_if(Method::DELETE, &tickets, &owner.token, 1, None).await;
                    app.call_if(Method::POST, &format!("{tickets}/restore"), t, 2, None).await
                }
                Action::CommentCreate => {
                    app.post(&format!("{tickets}/comments"), Some(t), json!({"body": "Thanks"})).await
                }
                Action::CommentInternal => {
                    app.post(&format!("{tickets}/comments"), Some(t), json!({"body": "psst", "internal": true})).await
                }
                Action::CommentModerate => {
                    app.call_if(Method::PATCH, &comments, t, 1, Some(json!({"body": "Edited"}))).await
                }
                Action::EventsManage => app.get("/api/v1/admin/events?status=dead", t).await,
                Action::MailManage => app.get("/api/v1/mail/log", t).await,
                Action::WebhooksManage => app.get("/api/v1/webhooks", t).await,
                Action::SlaRead => app.get("/api/v1/sla-policies", t).await,
                Action::ReportRead => app.get("/api/v1/reports/summary", t).await,
                Action::SlaManage => {
                    app.put("/api/v1/sla-policies", t, json!({"policies": []}))
                        .await
                }
                Action::AccountManage => {
                    app.post("/api/v1/auth/switch", Some(t), json!({"organization": "acme"})).await
                }
            };
            let within_scope = match (scope, action.scope()) {
                (None, _) => true,
                (Some(scope), Some(needed)) => scope >= needed,
                (Some(_), None) => false,
            };
            let passed_the_wall = match action {
                Action::OrgDelete => res.status == 422,
                Action::OrgRestore => res.code() == "organization_not_deleted",
                Action::BillingManage => res.code() == "billing_not_configured",
                _ => res.status.is_success(),
            };
            if allowed(role, action) && within_scope {
                assert!(
                    passed_the_wall,
                    "{role:?} {scope:?} × {action:?}: {} {}",
                    res.status, res.body
                );
            } else if within_scope {
                res.assert_problem(403, "forbidden");
            } else if action.scope().is_none() {
                res.assert_problem(403, "api_token_not_allowed");
            } else {
                res.assert_problem(403, "insufficient_scope");
            }
        }
    }
    // Personal endpoints are everyone's: their own notifications, and watching a ticket
    // they can see.
    for (role, _, actor) in &actors {
        let t = &actor.token;
        let ticket = app
            .ticket(
                &owner.token,
                &project,
                json!({"requester_id": actor.user_id}),
            )
            .await;
        let watch = format!("/api/v1/tickets/{}/watch", ticket["id"].as_str().unwrap());
        for res in [
            app.get("/api/v1/notifications", t).await,
            app.get("/api/v1/notifications/unread-count", t).await,
            app.call(
                Method::PATCH,
                "/api/v1/notifications/read-all",
                Some(t),
                None,
            )
            .await,
            app.call(Method::POST, &watch, Some(t), None).await,
            app.call(Method::DELETE, &watch, Some(t), None).await,
        ] {
            assert!(
                res.status.is_success(),
                "{role:?}: {} {}",
                res.status,
                res.body
            );
        }
        let retry = app
            .call(
                Method::POST,
                &format!("/api/v1/admin/events/{}/retry", uuid::Uuid::now_v7()),
                Some(t),
                None,
            )
            .await;
        if allowed(*role, Action::EventsManage) {
            retry.assert_problem(404, "event_not_found");
        } else {
            retry.assert_problem(403, "forbidden");
        }
    }
    app.shutdown().await;
}
