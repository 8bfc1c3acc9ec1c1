//! Plans: the operator's catalog as the server last read it (`plans`, global, rewritten at
//! start), and each organisation's plan (`org_plans`, none: the default), the row a change that
//! counts usage against a limit locks.

use sea_orm_migration::{prelude::*, schema::*};

use super::{TENANT_POLICY, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum OrgPlans {
    Table,
    OrgId,
    Plan,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Plans {
    Table,
    Key,
    Label,
    Limits,
    StripePriceId,
    IsDefault,
}

#[derive(DeriveIden, Clone, Copy)]
enum Organizations {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OrgPlans::Table)
                    .col(uuid(OrgPlans::OrgId).primary_key())
                    .col(string_null(OrgPlans::Plan))
                    .col(timestamp_with_time_zone(OrgPlans::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(OrgPlans::Table, OrgPlans::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        tenant_rls(manager, "org_plans", TENANT_POLICY, None).await?;
        manager
            .create_table(
                Table::create()
                    .table(Plans::Table)
                    .col(string(Plans::Key).primary_key())
                    .col(string(Plans::Label))
                    .col(json_binary(Plans::Limits))
                    .col(string_null(Plans::StripePriceId))
                    .col(boolean(Plans::IsDefault))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["plans", "org_plans"] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
