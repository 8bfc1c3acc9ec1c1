//! The timeline explains the present: replaying a ticket's timeline from nothing gives exactly
//! its current state, whatever sequence of changes (allowed or refused) it went through.

use proptest::{prelude::*, test_runner::TestRunner};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

#[derive(Clone, Debug)]
enum Op {
    Title(u8),
    Description(Option<u8>),
    Priority(u8),
    Status(u8),
    Assign(u8),
    Labels(u8),
    Due(Option<u8>),
    Complete,
    Reopen,
    DeleteAndRestore,
    Comment,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4u8).prop_map(Op::Title),
        proptest::option::of(0..3u8).prop_map(Op::Description),
        (0..4u8).prop_map(Op::Priority),
        (0..6u8).prop_map(Op::Status),
        (0..8u8).prop_map(Op::Assign),
        (0..8u8).prop_map(Op::Labels),
        proptest::option::of(0..30u8).prop_map(Op::Due),
        Just(Op::Complete),
        Just(Op::Reopen),
        Just(Op::DeleteAndRestore),
        Just(Op::Comment),
    ]
}

const STATUSES: [&str; 6] = [
    "open",
    "in_progress",
    "pending",
    "resolved",
    "closed",
    "cancelled",
];
const PRIORITIES: [&str; 4] = ["low", "medium", "high", "urgent"];
const LABELS: [&str; 3] = ["billing", "bug", "vip"];

fn pick<T: Clone>(mask: u8, from: &[T]) -> Vec<T> {
    from.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, x)| x.clone())
        .collect()
}

struct World {
    app: TestApp,
    owner: Session,
    agents: Vec<String>,
    project: String,
}

/// Applies one operation; refused ones (409) are part of the test: they must leave no trace.
async fn apply(w: &World, path: &str, version: &mut i64, op: &Op) {
    let tok = &w.owner.token;
    let patch = |body: Value| {
        w.app
            .call_if(Method::PATCH, path, tok, *version, Some(body))
    };
    let res = match op {
        Op::Title(n) => patch(json!({"title": format!("Title {n}")})).await,
        Op::Description(d) => patch(json!({"description": d.map(|n| format!("Text {n}"))})).await,
        Op::Priority(p) => patch(json!({"priority": PRIORITIES[*p as usize]})).await,
        Op::Status(s) => patch(json!({"status": STATUSES[*s as usize]})).await,
        Op::Assign(mask) => {
            let body = json!({"assignee_ids": pick(*mask, &w.agents)});
            w.app
                .call_if(
                    Method::POST,
                    &format!("{path}/assign"),
                    tok,
                    *version,
                    Some(body),
                )
                .await
        }
        Op::Labels(mask) => patch(json!({"labels": pick(*mask, &LABELS)})).await,
        Op::Due(d) => {
            patch(json!({"due_at": d.map(|n| format!("2030-01-{:02}T12:00:00Z", n + 1))})).await
        }
        Op::Complete => {
            w.app
                .call_if(
                    Method::POST,
                    &format!("{path}/complete"),
                    tok,
                    *version,
                    None,
                )
                .await
        }
        Op::Reopen => {
            w.app
                .call_if(Method::POST, &format!("{path}/reopen"), tok, *version, None)
                .await
        }
        Op::DeleteAndRestore => {
            let del = w
                .app
                .call_if(Method::DELETE, path, tok, *version, None)
                .await;
            assert_eq!(del.status, 204, "{}", del.body);
            *version += 1;
            w.app
                .call_if(
                    Method::POST,
                    &format!("{path}/restore"),
                    tok,
                    *version,
                    None,
                )
                .await
        }
        Op::Comment => {
            let res = w
                .app
                .post(
                    &format!("{path}/comments"),
                    Some(tok),
                    json!({"body": "note"}),
                )
                .await;
            res.assert_ok(201);
            return;
        }
    };
    match res.status.as_u16() {
        200 => *version = res.body["version"].as_i64().unwrap(),
        409 => {
            res.assert_problem(409, "invalid_transition");
        }
        other => panic!("{op:?}: {other} {}", res.body),
    }
}

async fn replay(w: &World, ops: Vec<Op>) {
    let t = w.app.ticket(&w.owner.token, &w.project, json!({})).await;
    let path = format!("/api/v1/tickets/{}", t["id"].as_str().unwrap());
    let mut version = 1;
    for op in &ops {
        apply(w, &path, &mut version, op).await;
    }
    let current = w
        .app
        .get(&path, &w.owner.token)
        .await
        .assert_ok(200)
        .clone();
    let timeline = w
        .app
        .all_items(&format!("{path}/timeline?limit=200"), &w.owner.token)
        .await;
    assert_replays_to(&timeline, &current, &format!("{ops:?}"));
}

#[test]
fn replaying_the_timeline_reproduces_the_ticket() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let world = rt.block_on(async {
        let app = spawn_app().await;
        let owner = app.signup("acme", "owner@acme.example").await;
        let project = app.project(&owner.token, "OPS").await;
        let mut agents = vec![owner.user_id.clone()];
        for i in 0..2 {
            agents.push(
                app.member(&owner, &format!("a{i}@acme.example"), "agent")
                    .await
                    .user_id,
            );
        }
        World {
            app,
            owner,
            agents,
            project,
        }
    });
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..14), |ops| {
            rt.block_on(replay(&world, ops));
            Ok(())
        })
        .unwrap();
    rt.block_on(world.app.shutdown());
}
