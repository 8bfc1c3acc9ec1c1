//! Billing through Stripe: each organisation's account there (`org_billing`: its customer, the
//! subscription it follows and how far, a payment overdue or a cancellation pending, and when
//! the worker must look at its plan again), and the
//! Stripe events already acted on (`billing_events`, global: an event id acts once).

use sea_orm_migration::{prelude::*, schema::*};

use super::{TENANT_POLICY, maintenance_rls, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum OrgBilling {
    Table,
    OrgId,
    CustomerId,
    SubscriptionId,
    SubscriptionCreated,
    SubscriptionStatus,
    SubscribedPlan,
    StateAt,
    StateRank,
    CancelAt,
    PastDueSince,
    GraceEndsAt,
    ReviewAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum BillingEvents {
    Table,
    EventId,
    Kind,
    ReceivedAt,
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
                    .table(OrgBilling::Table)
                    .col(uuid(OrgBilling::OrgId).primary_key())
                    .col(string_null(OrgBilling::CustomerId).unique_key())
                    .col(string_null(OrgBilling::SubscriptionId))
                    .col(timestamp_with_time_zone_null(
                        OrgBilling::SubscriptionCreated,
                    ))
                    .col(string_null(OrgBilling::SubscriptionStatus))
                    .col(string_null(OrgBilling::SubscribedPlan))
                    .col(timestamp_with_time_zone_null(OrgBilling::StateAt))
                    .col(integer(OrgBilling::StateRank).default(0))
                    .col(timestamp_with_time_zone_null(OrgBilling::CancelAt))
                    .col(timestamp_with_time_zone_null(OrgBilling::PastDueSince))
                    .col(timestamp_with_time_zone_null(OrgBilling::GraceEndsAt))
                    .col(timestamp_with_time_zone_null(OrgBilling::ReviewAt))
                    .col(timestamp_with_time_zone(OrgBilling::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(OrgBilling::Table, OrgBilling::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        tenant_rls(manager, "org_billing", TENANT_POLICY, None).await?;
        // The webhook finds an organisation by its Stripe customer, and the worker the
        // downgrades that came due, across tenants.
        maintenance_rls(manager, "org_billing").await?;
        manager
            .create_table(
                Table::create()
                    .table(BillingEvents::Table)
                    .col(string(BillingEvents::EventId).primary_key())
                    .col(string(BillingEvents::Kind))
                    .col(timestamp_with_time_zone(BillingEvents::ReceivedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("billing_events_received_at")
                    .table(BillingEvents::Table)
                    .col(BillingEvents::ReceivedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["billing_events", "org_billing"] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
