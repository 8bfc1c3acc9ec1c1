//! Attachments: each file's metadata (the bytes live in object storage under
//! `{org_id}/{id}`), and how many bytes each organisation keeps, for its quota.

use sea_orm_migration::{prelude::*, schema::*};

use super::{TENANT_POLICY, index, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Attachments {
    Table,
    OrgId,
    Id,
    TicketId,
    CommentId,
    Filename,
    ContentType,
    Size,
    Sha256,
    UploadedBy,
    Internal,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum StorageUsage {
    Table,
    OrgId,
    Bytes,
}

#[derive(DeriveIden)]
enum Tickets {
    Table,
    OrgId,
    Id,
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
                    .table(Attachments::Table)
                    .col(uuid(Attachments::OrgId))
                    .col(uuid(Attachments::Id))
                    .col(uuid(Attachments::TicketId))
                    // Set when a comment carries the file; its deletion removes the file too.
                    .col(uuid_null(Attachments::CommentId))
                    .col(string(Attachments::Filename))
                    .col(string(Attachments::ContentType))
                    .col(big_integer(Attachments::Size))
                    .col(string(Attachments::Sha256))
                    .col(uuid(Attachments::UploadedBy))
                    .col(boolean(Attachments::Internal))
                    .col(timestamp_with_time_zone(Attachments::CreatedAt))
                    .primary_key(Index::create().col(Attachments::OrgId).col(Attachments::Id))
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                Attachments::Table,
                                (Attachments::OrgId, Attachments::TicketId),
                            )
                            .to(Tickets::Table, (Tickets::OrgId, Tickets::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Attachments::Table, Attachments::UploadedBy)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_attachments_ticket",
                Attachments::Table,
                &[Attachments::OrgId, Attachments::TicketId, Attachments::Id],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StorageUsage::Table)
                    .col(uuid(StorageUsage::OrgId).primary_key())
                    .col(big_integer(StorageUsage::Bytes))
                    .to_owned(),
            )
            .await?;
        for table in ["attachments", "storage_usage"] {
            tenant_rls(manager, table, TENANT_POLICY, None).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["storage_usage", "attachments"] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
