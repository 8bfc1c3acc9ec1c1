//! One statement to start an authenticated request's transaction: enter the tenant's scope and
//! read the role of the session's person, if the session is live and the membership active
//! (ADR 0021). On PostgreSQL it is a function, so `app.org_id` is set before the lookup runs
//! under row security; SQLite has no scope to enter and runs the lookup alone
//! ([`SESSION_ROLE_SQLITE`]).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The session's membership role; arguments: organisation, session, person, now.
pub(crate) const SESSION_ROLE_SQLITE: &str = "SELECT m.role AS role FROM sessions s \
     JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id \
     WHERE s.org_id = $1 AND s.id = $2 AND s.user_id = $3 AND s.revoked_at IS NULL \
       AND s.expires_at > $4 AND m.active";

pub(super) const ENTER_SESSION: &str = "
CREATE FUNCTION docket_enter_session(p_org uuid, p_session uuid, p_user uuid, p_now timestamptz)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE found_role text;
BEGIN
    PERFORM set_config('app.org_id', p_org::text, true);
    SELECT m.role INTO found_role FROM sessions s
        JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id
        WHERE s.org_id = p_org AND s.id = p_session AND s.user_id = p_user
          AND s.revoked_at IS NULL AND s.expires_at > p_now AND m.active;
    RETURN found_role;
END $$;";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(ENTER_SESSION)
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DROP FUNCTION docket_enter_session(uuid, uuid, uuid, timestamptz)",
                )
                .await?;
        }
        Ok(())
    }
}
