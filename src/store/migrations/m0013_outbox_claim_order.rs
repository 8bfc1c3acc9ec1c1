//! The dispatcher claims the oldest open events first. Walking the open events in that order
//! through an index lets a claim stop after its batch; without it every claim read, checked
//! and sorted every open event (220 ms per claim with a 10,000-event backlog on PostgreSQL).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_outbox_events_open_order ON outbox_events (created_at, id) \
                 WHERE status IN ('pending', 'processing')",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX idx_outbox_events_open_order")
            .await?;
        Ok(())
    }
}
