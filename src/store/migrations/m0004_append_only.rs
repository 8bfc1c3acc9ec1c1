//! The timeline and the audit log are append-only: on SQLite, triggers abort any UPDATE or
//! DELETE of their rows (whoever sends it). On PostgreSQL the application role is never granted
//! those rights on them (see `store::migrate`), which no query the server sends can get around.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables whose rows, once written, stay as they are.
pub(crate) const APPEND_ONLY: [&str; 2] = ["ticket_events", "audit_log"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Sqlite {
            return Ok(());
        }
        for table in APPEND_ONLY {
            for change in ["UPDATE", "DELETE"] {
                let name = format!("{table}_append_only_{}", change.to_lowercase());
                manager
                    .get_connection()
                    .execute_unprepared(&format!(
                        "CREATE TRIGGER {name} BEFORE {change} ON {table} \
                         BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Sqlite {
            return Ok(());
        }
        for table in APPEND_ONLY {
            for change in ["update", "delete"] {
                manager
                    .get_connection()
                    .execute_unprepared(&format!(
                        "DROP TRIGGER IF EXISTS {table}_append_only_{change}"
                    ))
                    .await?;
            }
        }
        Ok(())
    }
}
