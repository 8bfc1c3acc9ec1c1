//! The transaction's first statement also says how PostgreSQL plans the transaction's prepared
//! statements (ADR 0029): `docket_enter_session` takes a fifth argument, the
//! `plan_cache_mode` for the rest of the transaction, or NULL to leave it as configured.

use sea_orm_migration::prelude::*;

use super::m0012_session_entry::ENTER_SESSION;

#[derive(DeriveMigrationName)]
pub struct Migration;

const ENTER_SESSION_PLANNED: &str = "
CREATE FUNCTION docket_enter_session(p_org uuid, p_session uuid, p_user uuid, p_now timestamptz,
                                     p_plan_cache_mode text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE found_role text;
BEGIN
    PERFORM set_config('app.org_id', p_org::text, true);
    IF p_plan_cache_mode IS NOT NULL THEN
        PERFORM set_config('plan_cache_mode', p_plan_cache_mode, true);
    END IF;
    SELECT m.role INTO found_role FROM sessions s
        JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id
        WHERE s.org_id = p_org AND s.id = p_session AND s.user_id = p_user
          AND s.revoked_at IS NULL AND s.expires_at > p_now AND m.active;
    RETURN found_role;
END $$;";

/// On PostgreSQL, creates one `docket_enter_session` and drops the other, whose arguments are
/// `old_arguments` (SQLite has no functions).
async fn replace_function(
    manager: &SchemaManager<'_>,
    create: &str,
    old_arguments: &str,
) -> Result<(), DbErr> {
    if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
        let db = manager.get_connection();
        db.execute_unprepared(create).await?;
        db.execute_unprepared(&format!(
            "DROP FUNCTION docket_enter_session({old_arguments})"
        ))
        .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace_function(
            manager,
            ENTER_SESSION_PLANNED,
            "uuid, uuid, uuid, timestamptz",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace_function(
            manager,
            ENTER_SESSION,
            "uuid, uuid, uuid, timestamptz, text",
        )
        .await
    }
}
