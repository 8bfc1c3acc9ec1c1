//! PostgreSQL's second wall: row-level security on every tenant table, and a server role that
//! cannot get around it. (SQLite has no roles or RLS; there the scoped transactions and the
//! composite keys are the wall, covered by the isolation suite.)

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, TransactionTrait};

use crate::helpers::*;

fn skip_on_sqlite(test: &str) -> bool {
    if backend() == Backend::Sqlite {
        eprintln!("{test}: PostgreSQL-only (run with DOCKET_TEST_BACKEND=postgres)");
        return true;
    }
    false
}

#[tokio::test]
async fn every_tenant_table_is_walled_and_the_server_role_cannot_bypass_it() {
    if skip_on_sqlite("rls audit") {
        return;
    }
    let app = spawn_app().await;
    let a = app.signup("alpha", "a@example.com").await;
    let b = app.signup("beta", "b@example.com").await;
    let url = app.database_url.clone().unwrap();
    let owner = Database::connect(&url).await.unwrap();

    // Every table with an org_id (and organizations itself) has RLS enabled and forced.
    let rows = owner
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                    EXISTS (SELECT 1 FROM information_schema.columns col
                            WHERE col.table_schema = 'public' AND col.table_name = c.relname AND col.column_name = 'org_id') AS tenant
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind = 'r'",
        ))
        .await
        .unwrap();
    let mut walled = Vec::new();
    for row in rows {
        let name: String = row.try_get("", "relname").unwrap();
        let tenant: bool = row.try_get("", "tenant").unwrap();
        if tenant || name == "organizations" {
            let enabled: bool = row.try_get("", "relrowsecurity").unwrap();
            let forced: bool = row.try_get("", "relforcerowsecurity").unwrap();
            assert!(
                enabled && forced,
                "{name}: rls enabled={enabled} forced={forced}"
            );
            walled.push(name);
        }
    }
    for t in [
        "organizations",
        "memberships",
        "sessions",
        "refresh_tokens",
        "audit_log",
    ] {
        assert!(walled.iter().any(|w| w == t), "{t} not checked");
    }

    // The role the server runs as: not superuser, not owner of any table, no BYPASSRLS.
    let role = owner
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT r.rolsuper, r.rolbypassrls,
                    (SELECT count(*) FROM pg_tables t WHERE t.schemaname = 'public' AND t.tableowner = r.rolname) AS owned
             FROM pg_roles r WHERE r.rolname = 'docket_app'",
        ))
        .await
        .unwrap()
        .expect("docket_app role exists");
    assert!(!role.try_get::<bool>("", "rolsuper").unwrap());
    assert!(!role.try_get::<bool>("", "rolbypassrls").unwrap());
    assert_eq!(role.try_get::<i64>("", "owned").unwrap(), 0);

    // As the server role: with no tenant set, tenant tables show nothing.
    let tx = owner.begin().await.unwrap();
    tx.execute_unprepared("SET LOCAL ROLE docket_app")
        .await
        .unwrap();
    for t in &walled {
        let n = tx
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT count(*) AS n FROM {t}"),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        assert_eq!(n, 0, "{t} visible without a tenant");
    }
    tx.rollback().await.unwrap();

    // With tenant A set: A's rows are visible, B's are not, and a row for B cannot be written.
    let tx = owner.begin().await.unwrap();
    tx.execute_unprepared("SET LOCAL ROLE docket_app")
        .await
        .unwrap();
    tx.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT set_config('app.org_id', $1, true)",
        [a.org_id.clone().into()],
    ))
    .await
    .unwrap();
    let orgs = tx
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT id::text AS id FROM organizations",
        ))
        .await
        .unwrap();
    let ids: Vec<String> = orgs.iter().map(|r| r.try_get("", "id").unwrap()).collect();
    assert_eq!(ids, vec![a.org_id.clone()]);
    let memberships = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM memberships WHERE org_id = $1::uuid",
            [b.org_id.clone().into()],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(memberships, 0);
    let insert = tx
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO audit_log (org_id, id, action, target_type, details, created_at)
             VALUES ($1::uuid, gen_random_uuid(), 'x', 'y', '{}'::jsonb, now())",
            [b.org_id.clone().into()],
        ))
        .await;
    let err = insert.expect_err("a row for another tenant is refused");
    assert!(err.to_string().contains("row-level security"), "{err}");
    tx.rollback().await.unwrap();

    // The server's own connections really run as that role.
    let app_conn = docket::store::Db::connect(&docket::config::StoreConfig {
        data_dir: std::env::temp_dir(),
        database_url: Some(docket::config::Secret::new(url.clone())),
        db_app_role: "docket_app".into(),
        db_max_connections: 1,
    })
    .await
    .unwrap();
    assert_eq!(app_conn.current_role().await.unwrap(), "docket_app");
    app_conn.close().await;
    owner.close().await.ok();
    app.shutdown().await;
}
