//! API tokens: a person's long-lived credentials in one organisation, stored as SHA-256.

use sea_orm_migration::{prelude::*, schema::*};

use super::{TENANT_POLICY, index, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum ApiTokens {
    Table,
    OrgId,
    Id,
    UserId,
    Name,
    Prefix,
    TokenHash,
    Scope,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiTokens::Table)
                    .col(uuid(ApiTokens::OrgId))
                    .col(uuid(ApiTokens::Id))
                    .col(uuid(ApiTokens::UserId))
                    .col(string(ApiTokens::Name))
                    .col(string(ApiTokens::Prefix))
                    .col(string(ApiTokens::TokenHash))
                    .col(string(ApiTokens::Scope))
                    .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ApiTokens::LastUsedAt))
                    .primary_key(Index::create().col(ApiTokens::OrgId).col(ApiTokens::Id))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiTokens::Table, ApiTokens::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        let mut by_hash = index(
            "idx_api_tokens_hash",
            ApiTokens::Table,
            &[ApiTokens::OrgId, ApiTokens::TokenHash],
        );
        manager.create_index(by_hash.unique().to_owned()).await?;
        manager
            .create_index(index(
                "idx_api_tokens_user",
                ApiTokens::Table,
                &[ApiTokens::OrgId, ApiTokens::UserId],
            ))
            .await?;
        tenant_rls(manager, "api_tokens", TENANT_POLICY, None).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiTokens::Table).to_owned())
            .await
    }
}
