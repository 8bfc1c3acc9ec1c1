//! The claim walks the open events' own index (m0013), so the `(status, available_at)` index
//! serves no query any more. Every event changes status twice (claimed, then settled), and
//! each change wrote a new entry into it: dropping it makes both writes cheaper.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX idx_outbox_events_due")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_outbox_events_due ON outbox_events (status, available_at)",
            )
            .await?;
        Ok(())
    }
}
