//! Saved views: a person's named ticket list queries (see `work::views`).

use sea_orm_migration::{prelude::*, schema::*};

use super::{TENANT_POLICY, index, m0001_foundation::Memberships, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum SavedViews {
    Table,
    OrgId,
    Id,
    UserId,
    Name,
    Query,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SavedViews::Table)
                    .col(uuid(SavedViews::OrgId))
                    .col(uuid(SavedViews::Id))
                    .col(uuid(SavedViews::UserId))
                    .col(string(SavedViews::Name))
                    .col(text(SavedViews::Query))
                    .col(timestamp_with_time_zone(SavedViews::CreatedAt))
                    .col(timestamp_with_time_zone(SavedViews::UpdatedAt))
                    .primary_key(Index::create().col(SavedViews::OrgId).col(SavedViews::Id))
                    // A person's views go with their membership.
                    .foreign_key(
                        ForeignKey::create()
                            .from(SavedViews::Table, (SavedViews::OrgId, SavedViews::UserId))
                            .to(
                                Memberships::Table,
                                (Memberships::OrgId, Memberships::UserId),
                            )
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let mut unique = index(
            "idx_saved_views_name",
            SavedViews::Table,
            &[SavedViews::OrgId, SavedViews::UserId, SavedViews::Name],
        );
        manager.create_index(unique.unique().to_owned()).await?;
        tenant_rls(manager, "saved_views", TENANT_POLICY, None).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SavedViews::Table).to_owned())
            .await
    }
}
