//! Customers who write in by mail are their organisation's own contacts, not accounts: a contact
//! is a `users` row that belongs to one organisation (`contact_org_id`), known by the address
//! the mail came from (`contact_address`; its `email` is a placeholder no sign-in matches). A
//! person links an organisation's contacts of their address to an account only by following a
//! mailed link (`contact_links`, global like password resets).

use sea_orm_migration::{prelude::*, schema::*};

use super::{add_columns, drop_columns, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    ContactOrgId,
    ContactAddress,
}

#[derive(DeriveIden, Clone, Copy)]
enum ContactLinks {
    Table,
    TokenHash,
    Address,
    UserId,
    Purpose,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            Users::Table,
            vec![
                uuid_null(Users::ContactOrgId),
                string_null(Users::ContactAddress),
            ],
        )
        .await?;
        // One contact per address and organisation (accounts have NULLs here, which never
        // collide).
        let mut contact = index(
            "idx_users_contact",
            Users::Table,
            &[Users::ContactOrgId, Users::ContactAddress],
        );
        manager.create_index(contact.unique().to_owned()).await?;
        manager
            .create_table(
                Table::create()
                    .table(ContactLinks::Table)
                    .col(string(ContactLinks::TokenHash).primary_key())
                    .col(string(ContactLinks::Address))
                    .col(uuid_null(ContactLinks::UserId))
                    .col(string(ContactLinks::Purpose))
                    .col(timestamp_with_time_zone(ContactLinks::CreatedAt))
                    .col(timestamp_with_time_zone(ContactLinks::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ContactLinks::UsedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ContactLinks::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_users_contact")
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        drop_columns(
            manager,
            Users::Table,
            &[Users::ContactOrgId, Users::ContactAddress],
        )
        .await
    }
}
