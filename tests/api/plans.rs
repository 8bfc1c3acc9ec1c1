//! A page of tickets out of 100,000 in one organisation is found through an index, never by
//! scanning the table: the plans of the server's own list queries, on 100k generated rows.

use docket::{
    access::{Role, TenantCtx},
    store::Planning,
    work::tickets::{self, TicketFilter},
};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, TransactionTrait,
    sea_query::{PostgresQueryBuilder, QueryBuilder},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

const TICKETS: i64 = 100_000;

/// Bulk-loads tickets straight into the database (the API would take minutes for 100k).
async fn load(conn: &impl ConnectionTrait, org: Uuid, project: Uuid, user: Uuid) {
    let pg = conn.get_database_backend() == DbBackend::Postgres;
    let sql = if pg {
        format!(
            "INSERT INTO tickets (org_id, id, project_id, number, title, status, priority, requester_id, version, created_at, updated_at, due_at)
             SELECT '{org}', gen_random_uuid(), '{project}', g, 'Bulk ' || g,
                    (ARRAY['open','in_progress','pending','resolved','closed','cancelled'])[1 + g % 6], 1 + g % 4,
                    '{user}', 1, now() - g * interval '1 second', now() - g * interval '1 second',
                    CASE WHEN g % 3 = 0 THEN NULL ELSE now() + g * interval '1 minute' END
             FROM generate_series(1, {TICKETS}) g;
             INSERT INTO ticket_assignees SELECT org_id, id, '{user}' FROM tickets WHERE number % 10 = 0;
             INSERT INTO ticket_labels SELECT org_id, id, 'bulk' FROM tickets WHERE number % 7 = 0;
             ANALYZE;"
        )
    } else {
        let blob = |u: Uuid| format!("X'{}'", u.simple());
        let (org, project, user) = (blob(org), blob(project), blob(user));
        format!(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {TICKETS})
             INSERT INTO tickets (org_id, id, project_id, number, title, status, priority, requester_id, version, created_at, updated_at, due_at)
             SELECT {org}, randomblob(16), {project}, n, 'Bulk ' || n,
                    CASE n % 3 WHEN 0 THEN 'open' WHEN 1 THEN 'pending' ELSE 'closed' END, 1 + n % 4,
                    {user}, 1, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '-' || n || ' seconds'),
                    strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '-' || n || ' seconds'),
                    CASE WHEN n % 3 = 0 THEN NULL ELSE strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '+' || n || ' minutes') END
             FROM g;
             INSERT INTO ticket_assignees SELECT org_id, id, {user} FROM tickets WHERE number % 10 = 0;
             INSERT INTO ticket_labels SELECT org_id, id, 'bulk' FROM tickets WHERE number % 7 = 0;
             ANALYZE;"
        )
    };
    conn.execute_unprepared(&sql).await.expect("bulk load");
}

/// Every plan node that reads the whole tickets table.
fn full_scans(plan: &Value, out: &mut Vec<String>) {
    if let Some(node) = plan.as_object() {
        if node.get("Node Type") == Some(&json!("Seq Scan"))
            && node.get("Relation Name") == Some(&json!("tickets"))
        {
            out.push(plan.to_string());
        }
        node.values().for_each(|v| full_scans(v, out));
    } else if let Some(items) = plan.as_array() {
        items.iter().for_each(|v| full_scans(v, out));
    }
}

/// Begins a PostgreSQL transaction as the server does: the application role, then the server's
/// first statement, which enters the tenant's wall and sets the planning `planning` asks for.
/// (The session is nobody's: its role comes back empty, which only the server checks.)
async fn enter_as_server(tx: &impl ConnectionTrait, org: Uuid, planning: Planning) {
    tx.execute_unprepared("SET LOCAL ROLE docket_app")
        .await
        .unwrap();
    tx.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT docket_enter_session($1, $2, $3, now(), $4) AS role",
        [
            org.into(),
            Uuid::now_v7().into(),
            Uuid::now_v7().into(),
            planning.plan_cache_mode().into(),
        ],
    ))
    .await
    .unwrap();
}

/// PostgreSQL's `plan_cache_mode` where `conn` runs.
async fn plan_cache_mode(conn: &impl ConnectionTrait) -> String {
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_setting('plan_cache_mode') AS mode",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "mode").unwrap()
}

/// The full scans in the plan of `stmt` as the server plans it: on PostgreSQL with
/// `Planning::Generic`, the generic plan of the prepared statement, which is planned without
/// the values.
async fn explain(
    conn: &DatabaseConnection,
    ctx: &TenantCtx,
    stmt: Statement,
    planning: Planning,
) -> Vec<String> {
    let org = ctx.org_id;
    let tx = conn.begin().await.unwrap();
    let backend = tx.get_database_backend();
    let values = stmt.values.map(|v| v.0).unwrap_or_default();
    let mut scans = Vec::new();
    if backend == DbBackend::Postgres {
        // As the server runs it: the application role, inside the tenant wall, planned as the
        // server's first statement asks.
        enter_as_server(&tx, org, planning).await;
        // A walled person's transaction also names them, so row security walls it too.
        if let Some(viewer) = docket::access::project::walled_viewer(ctx) {
            tx.execute_unprepared(&format!(
                "SELECT set_config('app.viewer_id', '{viewer}', true)"
            ))
            .await
            .unwrap();
        }
        let explained = if planning == Planning::Generic {
            tx.execute_unprepared(&format!("PREPARE page AS {}", stmt.sql))
                .await
                .unwrap();
            // EXECUTE takes its arguments as literals, not as the outer statement's parameters.
            let literals: Vec<String> = values
                .iter()
                .map(|v| PostgresQueryBuilder.value_to_string(v))
                .collect();
            Statement::from_string(
                backend,
                format!(
                    "EXPLAIN (FORMAT JSON) EXECUTE page({})",
                    literals.join(", ")
                ),
            )
        } else {
            Statement::from_sql_and_values(
                backend,
                format!("EXPLAIN (FORMAT JSON) {}", stmt.sql),
                values,
            )
        };
        let row = tx.query_one_raw(explained).await.unwrap().unwrap();
        let plan: Value = row.try_get("", "QUERY PLAN").unwrap();
        full_scans(&plan, &mut scans);
        if planning == Planning::Generic {
            // Planned without its values: the conditions name the parameters.
            assert!(
                plan.to_string().contains("$1"),
                "not a generic plan: {plan}"
            );
            // A prepared statement outlives the transaction; the pool reuses the connection.
            tx.execute_unprepared("DEALLOCATE page").await.unwrap();
        }
    } else {
        let rows = tx
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!("EXPLAIN QUERY PLAN {}", stmt.sql),
                values,
            ))
            .await
            .unwrap();
        for row in rows {
            let detail: String = row.try_get("", "detail").unwrap();
            // `SCAN tickets` without an index reads every row. (For assignee and label filters
            // SQLite may instead fetch the matching tickets by key and sort those: that reads
            // the matches, not the table.)
            if detail == "SCAN tickets" {
                scans.push(detail);
            }
        }
    }
    tx.rollback().await.unwrap();
    scans
}

#[tokio::test]
async fn a_page_of_tickets_never_scans_the_table() {
    let app = spawn_app().await;
    let owner = app.signup("big", "owner@big.example").await;
    let project = app.project(&owner.token, "BIG").await;
    let org = Uuid::parse_str(&owner.org_id).unwrap();
    let user = Uuid::parse_str(&owner.user_id).unwrap();
    let conn = Database::connect(&app.database_url).await.unwrap();
    load(&conn, org, Uuid::parse_str(&project).unwrap(), user).await;
    let backend = conn.get_database_backend();

    let ctx = |role| TenantCtx::authenticated(org, user, role, None);
    let after = docket::pagination::encode_keyed(0, Uuid::nil());
    let filters: Vec<(&str, TicketFilter)> = vec![
        ("newest first", TicketFilter::default()),
        (
            "next page",
            TicketFilter {
                cursor: Some(after.clone()),
                ..Default::default()
            },
        ),
        (
            "oldest first",
            TicketFilter {
                sort: Some("created_at".into()),
                ..Default::default()
            },
        ),
        (
            "by status",
            TicketFilter {
                status: Some("open".into()),
                ..Default::default()
            },
        ),
        (
            "by statuses",
            TicketFilter {
                status: Some("open,pending".into()),
                ..Default::default()
            },
        ),
        (
            "mine",
            TicketFilter {
                assignee: Some("me".into()),
                ..Default::default()
            },
        ),
        (
            "by label",
            TicketFilter {
                label: Some("bulk".into()),
                ..Default::default()
            },
        ),
        (
            "by priority",
            TicketFilter {
                sort: Some("-priority".into()),
                ..Default::default()
            },
        ),
        (
            "recently updated",
            TicketFilter {
                sort: Some("-updated_at".into()),
                ..Default::default()
            },
        ),
        (
            "due soonest",
            TicketFilter {
                sort: Some("due_at".into()),
                ..Default::default()
            },
        ),
        (
            "due soonest, next page",
            TicketFilter {
                sort: Some("due_at".into()),
                cursor: Some(after),
                ..Default::default()
            },
        ),
        (
            "in a project",
            TicketFilter {
                project_id: Uuid::parse_str(&project).ok(),
                ..Default::default()
            },
        ),
        (
            "requested",
            TicketFilter {
                requester: Some("me".into()),
                ..Default::default()
            },
        ),
    ];
    // A private project the agent below is not a member of: their pages leave it out.
    let private = app.project(&owner.token, "HR").await;
    app.patch(
        &format!("/api/v1/projects/{private}"),
        &owner.token,
        serde_json::json!({"visibility": "members"}),
    )
    .await
    .assert_ok(200);
    // Staff see every shape; a requester's own list is filtered to their tickets; an agent's
    // is walled by project access.
    let shapes = filters
        .into_iter()
        .map(|(name, filter)| (name, Role::Owner, filter))
        .chain([
            ("requester", Role::Requester, TicketFilter::default()),
            ("agent", Role::Agent, TicketFilter::default()),
            (
                "agent by status",
                Role::Agent,
                TicketFilter {
                    status: Some("open".into()),
                    ..Default::default()
                },
            ),
        ]);
    let mut failures = Vec::new();
    for (name, role, filter) in shapes {
        let c = ctx(role);
        let q = filter.validate(&c).unwrap();
        let planning = tickets::list_planning(&c, &q);
        let scans = explain(
            &conn,
            &c,
            tickets::list_statement(&c, &q, backend),
            planning,
        )
        .await;
        if !scans.is_empty() {
            failures.push(format!("{name}: {scans:?}"));
        }
    }
    assert!(failures.is_empty(), "full scans:\n{}", failures.join("\n"));

    // And the API serves a page of it.
    let page = app
        .get("/api/v1/tickets?limit=50&status=open", &owner.token)
        .await;
    assert_eq!(page.assert_ok(200)["items"].as_array().unwrap().len(), 50);
    conn.close().await.ok();
    app.shutdown().await;
}

/// A transaction's first statement sets how PostgreSQL plans the rest of it, and only it, or
/// leaves the configured planning: the ticket list asks for generic plans where they cannot be
/// worse (ADR 0029).
#[tokio::test]
async fn the_first_statement_sets_the_transactions_planning() {
    let app = spawn_app().await;
    // The server's own transactions open and commit with either planning, with a session
    // (the list's requests, elsewhere in this suite) or without one (here).
    let db = app.running().db();
    let org = Uuid::now_v7();
    let ctx = TenantCtx::authenticated(org, Uuid::now_v7(), Role::Owner, None);
    for planning in [Planning::Generic, Planning::PerRequest] {
        db.read_planned(&ctx, planning)
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
    }

    // On PostgreSQL, what the first statement sets, observed on one connection, so the
    // statement after each transaction runs where it ran. (SQLite plans each statement once
    // per connection; it has nothing to set.)
    let conn = Database::connect(
        sea_orm::ConnectOptions::new(app.database_url.clone())
            .max_connections(1)
            .to_owned(),
    )
    .await
    .unwrap();
    if conn.get_database_backend() == DbBackend::Postgres {
        // Configured with something other than the default, to tell "left as configured"
        // from "set to the default".
        let configured = "force_custom_plan";
        conn.execute_unprepared(&format!("SET plan_cache_mode = {configured}"))
            .await
            .unwrap();
        for (planning, within) in [
            (Planning::Generic, "force_generic_plan"),
            (Planning::PerRequest, configured),
        ] {
            let tx = conn.begin().await.unwrap();
            enter_as_server(&tx, org, planning).await;
            assert_eq!(plan_cache_mode(&tx).await, within, "{planning:?}");
            tx.commit().await.unwrap();
            assert_eq!(
                plan_cache_mode(&conn).await,
                configured,
                "after {planning:?}"
            );
        }
    }
    conn.close().await.ok();
    app.shutdown().await;
}
