//! PostgreSQL: new feed entries wake stream servers once per insert statement and organisation,
//! not once per row. A worker publishes an organisation's entries in one insert, and the
//! per-row trigger ran a PL/pgSQL call and a `pg_notify` (deduplicated only at commit) for
//! each of them. The notification is the same: the organisation's id on `docket_stream`, sent
//! at commit.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace_trigger(
            manager,
            "PERFORM pg_notify('docket_stream', o.org_id::text)
               FROM (SELECT DISTINCT org_id FROM added) o;",
            "REFERENCING NEW TABLE AS added FOR EACH STATEMENT",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace_trigger(
            manager,
            "PERFORM pg_notify('docket_stream', NEW.org_id::text);",
            "FOR EACH ROW",
        )
        .await
    }
}

/// Replaces the feed's trigger (PostgreSQL only): `notify` is its function's body, `fires`
/// when it runs.
async fn replace_trigger(
    manager: &SchemaManager<'_>,
    notify: &str,
    fires: &str,
) -> Result<(), DbErr> {
    if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    manager
        .get_connection()
        .execute_unprepared(&format!(
            "DROP TRIGGER stream_written ON stream_events;
             CREATE OR REPLACE FUNCTION docket_stream_written() RETURNS trigger
             LANGUAGE plpgsql AS $$ BEGIN {notify} RETURN NULL; END $$;
             CREATE TRIGGER stream_written AFTER INSERT ON stream_events
               {fires} EXECUTE FUNCTION docket_stream_written();"
        ))
        .await?;
    Ok(())
}
