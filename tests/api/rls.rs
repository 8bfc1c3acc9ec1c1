//! The database's own walls between tenants. On both backends: composite keys with `org_id`
//! make the database refuse a row of one tenant that points at another tenant's rows. On
//! PostgreSQL also: row-level security on every tenant table, and a server role that cannot get
//! around it.

use chrono::Utc;
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, TransactionTrait,
    sea_query::{Alias, Query},
};
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn the_database_walls_tenants_off() {
    let app = spawn_app().await;
    let a = app.signup("alpha", "a@example.com").await;
    let b = app.signup("beta", "b@example.com").await;
    let url = app.database_url.clone();
    let owner = Database::connect(&url).await.unwrap();

    composite_keys_refuse_cross_tenant_references(&owner, &a, &b).await;
    work_tables_refuse_cross_tenant_references(&app, &owner, &a, &b).await;
    if backend() == Backend::Postgres {
        row_level_security(&owner, &url, &a, &b).await;
    }
    owner.close().await.ok();
    app.shutdown().await;
}

/// Inserts a session of `org` for `user`; then a refresh token of `org` for `session`.
async fn insert_session(
    conn: &impl ConnectionTrait,
    org: &str,
    user: &str,
) -> Result<Uuid, sea_orm::DbErr> {
    let id = Uuid::now_v7();
    let (org, user) = (
        Uuid::parse_str(org).unwrap(),
        Uuid::parse_str(user).unwrap(),
    );
    let stmt = Query::insert()
        .into_table(Alias::new("sessions"))
        .columns(["org_id", "id", "user_id", "created_at", "expires_at"].map(Alias::new))
        .values_panic([
            org.into(),
            id.into(),
            user.into(),
            Utc::now().into(),
            Utc::now().into(),
        ])
        .to_owned();
    conn.execute(&stmt).await.map(|_| id)
}

async fn insert_refresh_token(
    conn: &impl ConnectionTrait,
    org: &str,
    session: Uuid,
) -> Result<(), sea_orm::DbErr> {
    let stmt = Query::insert()
        .into_table(Alias::new("refresh_tokens"))
        .columns(["org_id", "token_hash", "session_id", "created_at"].map(Alias::new))
        .values_panic([
            Uuid::parse_str(org).unwrap().into(),
            Uuid::now_v7().to_string().into(),
            session.into(),
            Utc::now().into(),
        ])
        .to_owned();
    conn.execute(&stmt).await.map(|_| ())
}

async fn composite_keys_refuse_cross_tenant_references(
    owner: &DatabaseConnection,
    a: &Session,
    b: &Session,
) {
    let is_fk = |e: &sea_orm::DbErr| {
        matches!(
            e.sql_err(),
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
        )
    };
    // As the schema owner (a superuser on PostgreSQL, so RLS is out of the way): the keys alone.
    let tx = owner.begin().await.unwrap();
    // Control: a session of A for A's member is accepted, and so is its refresh token.
    let own = insert_session(&tx, &a.org_id, &a.user_id)
        .await
        .expect("same-tenant session");
    insert_refresh_token(&tx, &a.org_id, own)
        .await
        .expect("same-tenant refresh token");
    tx.rollback().await.unwrap();

    // A session in B for A's person (not a member of B) is refused by the composite key.
    let err = insert_session(owner, &b.org_id, &a.user_id)
        .await
        .expect_err("cross-tenant session");
    assert!(is_fk(&err), "{err}");
    // A refresh token in B pointing at a session of A is refused too.
    let tx = owner.begin().await.unwrap();
    let own = insert_session(&tx, &a.org_id, &a.user_id).await.unwrap();
    let err = insert_refresh_token(&tx, &b.org_id, own)
        .await
        .expect_err("cross-tenant refresh token");
    assert!(is_fk(&err), "{err}");
    tx.rollback().await.ok();
}

/// A comment of B on A's ticket, and B's person assigned to A's ticket, are refused by the keys.
async fn work_tables_refuse_cross_tenant_references(
    app: &TestApp,
    owner: &DatabaseConnection,
    a: &Session,
    b: &Session,
) {
    let project = app.project(&a.token, "ALPHA").await;
    let ticket = app.ticket(&a.token, &project, serde_json::json!({})).await;
    let ticket = Uuid::parse_str(ticket["id"].as_str().unwrap()).unwrap();
    let (a_org, b_org) = (
        Uuid::parse_str(&a.org_id).unwrap(),
        Uuid::parse_str(&b.org_id).unwrap(),
    );
    let (a_user, b_user) = (
        Uuid::parse_str(&a.user_id).unwrap(),
        Uuid::parse_str(&b.user_id).unwrap(),
    );
    let comment = |org: Uuid| {
        Query::insert()
            .into_table(Alias::new("comments"))
            .columns(
                [
                    "org_id",
                    "id",
                    "ticket_id",
                    "author_id",
                    "body",
                    "internal",
                    "version",
                    "created_at",
                    "updated_at",
                ]
                .map(Alias::new),
            )
            .values_panic([
                org.into(),
                Uuid::now_v7().into(),
                ticket.into(),
                a_user.into(),
                "hi".into(),
                false.into(),
                1i64.into(),
                Utc::now().into(),
                Utc::now().into(),
            ])
            .to_owned()
    };
    let assignee = |org: Uuid, user: Uuid| {
        Query::insert()
            .into_table(Alias::new("ticket_assignees"))
            .columns(["org_id", "ticket_id", "user_id"].map(Alias::new))
            .values_panic([org.into(), ticket.into(), user.into()])
            .to_owned()
    };
    let tx = owner.begin().await.unwrap();
    tx.execute(&comment(a_org))
        .await
        .expect("same-tenant comment");
    tx.execute(&assignee(a_org, a_user))
        .await
        .expect("same-tenant assignee");
    tx.rollback().await.unwrap();
    for (what, stmt) in [
        ("comment of B on A's ticket", comment(b_org)),
        ("B's person assigned in A", assignee(a_org, b_user)),
        ("A's ticket assigned in B", assignee(b_org, b_user)),
    ] {
        let err = owner.execute(&stmt).await.expect_err(what);
        assert!(
            matches!(
                err.sql_err(),
                Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
            ),
            "{what}: {err}"
        );
    }
}

#[tokio::test]
async fn expired_idempotency_records_are_purged_across_tenants_and_only_those() {
    let app = spawn_app().await;
    let mut keyed = Vec::new();
    for slug in ["alpha", "beta"] {
        let s = app.signup(slug, &format!("{slug}@example.com")).await;
        let res = app
            .send(
                app.request(reqwest::Method::POST, "/api/v1/projects", Some(&s.token))
                    .header("idempotency-key", "p-1")
                    .json(&serde_json::json!({"name": "P", "key": slug.to_uppercase()})),
            )
            .await;
        res.assert_ok(201);
        keyed.push(s);
    }
    let owner = Database::connect(&app.database_url).await.unwrap();
    let backend = owner.get_database_backend();
    let param = if backend == DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    owner
        .execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE idempotency_keys SET expires_at = {param} WHERE org_id = {}",
                if backend == DbBackend::Postgres {
                    "$2"
                } else {
                    "?"
                }
            ),
            [
                (Utc::now() - chrono::Duration::hours(1)).into(),
                Uuid::parse_str(&keyed[0].org_id).unwrap().into(),
            ],
        ))
        .await
        .unwrap();
    // Purged by the server's own (unprivileged) connection, as its worker does.
    let db = docket::store::Db::connect(&docket::config::StoreConfig {
        data_dir: std::env::temp_dir(),
        database_url: Some(docket::config::Secret::new(app.database_url.clone())),
        db_app_role: "docket_app".into(),
        db_max_connections: 1,
        db_acquire_timeout_ms: 10_000,
        db_worker_connections: 8,
    })
    .await
    .unwrap();
    assert_eq!(docket::idempotency::purge_expired(&db).await.unwrap(), 1);
    db.close().await;
    let left = owner
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT org_id FROM idempotency_keys",
        ))
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].try_get::<Uuid>("", "org_id").unwrap().to_string(),
        keyed[1].org_id
    );

    if backend == DbBackend::Postgres {
        // The maintenance scope opens exactly the purgeable table, nothing else.
        let tx = owner.begin().await.unwrap();
        tx.execute_unprepared(
            "SET LOCAL ROLE docket_app; SELECT set_config('app.maintenance', 'on', true)",
        )
        .await
        .unwrap();
        for (table, visible) in [
            ("idempotency_keys", 1),
            ("projects", 0),
            ("tickets", 0),
            ("audit_log", 0),
        ] {
            let n = tx
                .query_one_raw(Statement::from_string(
                    backend,
                    format!("SELECT count(*) AS n FROM {table}"),
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get::<i64>("", "n")
                .unwrap();
            assert_eq!(n, visible, "{table}");
        }
        let write = tx
            .execute_unprepared("UPDATE idempotency_keys SET state = 'done'")
            .await
            .unwrap();
        assert_eq!(
            write.rows_affected(),
            0,
            "maintenance cannot change records"
        );
        tx.rollback().await.unwrap();
    }
    owner.close().await.ok();
    app.shutdown().await;
}

async fn row_level_security(owner: &DatabaseConnection, url: &str, a: &Session, b: &Session) {
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
        "projects",
        "tickets",
        "ticket_assignees",
        "ticket_labels",
        "comments",
        "ticket_events",
        "outbox_events",
        "idempotency_keys",
        "ticket_watchers",
        "notifications",
        "stream_counters",
        "stream_events",
        "org_sso",
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
        database_url: Some(docket::config::Secret::new(url)),
        db_app_role: "docket_app".into(),
        db_max_connections: 1,
        db_acquire_timeout_ms: 10_000,
        db_worker_connections: 8,
    })
    .await
    .unwrap();
    assert_eq!(app_conn.current_role().await.unwrap(), "docket_app");
    app_conn.close().await;
}
