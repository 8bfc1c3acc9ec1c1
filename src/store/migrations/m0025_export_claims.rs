//! When a worker took an export to build (`exports.claimed_at`): one left `running` by a worker
//! that stopped is failed after a while, so its person may ask again.

use sea_orm_migration::{prelude::*, schema::*};

use super::{add_columns, drop_columns};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Exports {
    Table,
    ClaimedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            Exports::Table,
            vec![timestamp_with_time_zone_null(Exports::ClaimedAt)],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_columns(manager, Exports::Table, &[Exports::ClaimedAt]).await
    }
}
