//! Sign-ups confirmed by mail: what a sign-up asked for, kept until its link is followed (or
//! expires). Global like password resets: no organisation exists yet.

use sea_orm_migration::{prelude::*, schema::*};

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum SignupConfirmations {
    Table,
    TokenHash,
    Email,
    Name,
    OrganizationName,
    OrganizationSlug,
    PasswordHash,
    UserId,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SignupConfirmations::Table)
                    .col(string(SignupConfirmations::TokenHash).primary_key())
                    .col(string(SignupConfirmations::Email))
                    .col(string(SignupConfirmations::Name))
                    .col(string(SignupConfirmations::OrganizationName))
                    .col(string(SignupConfirmations::OrganizationSlug))
                    .col(text_null(SignupConfirmations::PasswordHash))
                    .col(uuid_null(SignupConfirmations::UserId))
                    .col(timestamp_with_time_zone(SignupConfirmations::CreatedAt))
                    .col(timestamp_with_time_zone(SignupConfirmations::ExpiresAt))
                    .col(timestamp_with_time_zone_null(SignupConfirmations::UsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_signup_confirmations_expiry",
                SignupConfirmations::Table,
                &[SignupConfirmations::ExpiresAt],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SignupConfirmations::Table).to_owned())
            .await
    }
}
