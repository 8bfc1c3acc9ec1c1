//! Webhooks: the endpoints an organisation subscribes (their signing secrets sealed), one
//! delivery per event and endpoint with its retry schedule, and every attempt's outcome.

use sea_orm_migration::{prelude::*, schema::*};

use super::{TENANT_POLICY, index, maintenance_rls, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Webhooks {
    Table,
    OrgId,
    Id,
    Url,
    Description,
    Events,
    Active,
    Secret,
    PreviousSecret,
    PreviousSecretUntil,
    DisabledReason,
    FailingSince,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookDeliveries {
    Table,
    OrgId,
    Id,
    WebhookId,
    EventId,
    EventType,
    Payload,
    Status,
    Claims,
    Step,
    NextAttemptAt,
    LockedUntil,
    LastStatus,
    LastError,
    CreatedAt,
    CompletedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookAttempts {
    Table,
    OrgId,
    Id,
    DeliveryId,
    WebhookId,
    AttemptedAt,
    StatusCode,
    LatencyMs,
    Error,
    Response,
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
                    .table(Webhooks::Table)
                    .col(uuid(Webhooks::OrgId))
                    .col(uuid(Webhooks::Id))
                    .col(text(Webhooks::Url))
                    .col(string(Webhooks::Description))
                    .col(json_binary(Webhooks::Events))
                    .col(boolean(Webhooks::Active))
                    .col(text(Webhooks::Secret))
                    // The secret before the last rotation: it signs beside the new one until
                    // `previous_secret_until`.
                    .col(text_null(Webhooks::PreviousSecret))
                    .col(timestamp_with_time_zone_null(Webhooks::PreviousSecretUntil))
                    .col(text_null(Webhooks::DisabledReason))
                    // The first failure since the last success.
                    .col(timestamp_with_time_zone_null(Webhooks::FailingSince))
                    .col(uuid(Webhooks::CreatedBy))
                    .col(timestamp_with_time_zone(Webhooks::CreatedAt))
                    .col(timestamp_with_time_zone(Webhooks::UpdatedAt))
                    .primary_key(Index::create().col(Webhooks::OrgId).col(Webhooks::Id))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Webhooks::Table, Webhooks::CreatedBy)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(uuid(WebhookDeliveries::OrgId))
                    .col(uuid(WebhookDeliveries::Id))
                    .col(uuid(WebhookDeliveries::WebhookId))
                    .col(uuid(WebhookDeliveries::EventId))
                    .col(string(WebhookDeliveries::EventType))
                    // The exact body sent, so every retry signs the same bytes.
                    .col(text(WebhookDeliveries::Payload))
                    .col(string(WebhookDeliveries::Status))
                    // Claims so far: fences settling after a lease ran out.
                    .col(integer(WebhookDeliveries::Claims))
                    // Scheduled attempts made (the position in the retry schedule).
                    .col(integer(WebhookDeliveries::Step))
                    .col(timestamp_with_time_zone(WebhookDeliveries::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::LockedUntil,
                    ))
                    .col(integer_null(WebhookDeliveries::LastStatus))
                    .col(text_null(WebhookDeliveries::LastError))
                    .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::CompletedAt,
                    ))
                    .primary_key(
                        Index::create()
                            .col(WebhookDeliveries::OrgId)
                            .col(WebhookDeliveries::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                WebhookDeliveries::Table,
                                (WebhookDeliveries::OrgId, WebhookDeliveries::WebhookId),
                            )
                            .to(Webhooks::Table, (Webhooks::OrgId, Webhooks::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One delivery per event and endpoint: the fan-out handler may run twice.
        let mut once = index(
            "idx_webhook_deliveries_event",
            WebhookDeliveries::Table,
            &[
                WebhookDeliveries::OrgId,
                WebhookDeliveries::WebhookId,
                WebhookDeliveries::EventId,
            ],
        );
        manager.create_index(once.unique().to_owned()).await?;
        manager
            .create_index(index(
                "idx_webhook_deliveries_due",
                WebhookDeliveries::Table,
                &[WebhookDeliveries::Status, WebhookDeliveries::NextAttemptAt],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .col(uuid(WebhookAttempts::OrgId))
                    .col(uuid(WebhookAttempts::Id))
                    .col(uuid(WebhookAttempts::DeliveryId))
                    .col(uuid(WebhookAttempts::WebhookId))
                    .col(timestamp_with_time_zone(WebhookAttempts::AttemptedAt))
                    .col(integer_null(WebhookAttempts::StatusCode))
                    .col(integer(WebhookAttempts::LatencyMs))
                    .col(text_null(WebhookAttempts::Error))
                    // The first 2 KB of the answer.
                    .col(text_null(WebhookAttempts::Response))
                    .primary_key(
                        Index::create()
                            .col(WebhookAttempts::OrgId)
                            .col(WebhookAttempts::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                WebhookAttempts::Table,
                                (WebhookAttempts::OrgId, WebhookAttempts::DeliveryId),
                            )
                            .to(
                                WebhookDeliveries::Table,
                                (WebhookDeliveries::OrgId, WebhookDeliveries::Id),
                            )
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_webhook_attempts_delivery",
                WebhookAttempts::Table,
                &[WebhookAttempts::OrgId, WebhookAttempts::DeliveryId],
            ))
            .await?;
        for table in ["webhooks", "webhook_deliveries", "webhook_attempts"] {
            tenant_rls(manager, table, TENANT_POLICY, None).await?;
            maintenance_rls(manager, table).await?;
        }
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            // The sender claims due deliveries of every tenant (it settles them in the
            // tenant's own scope).
            manager
                .get_connection()
                .execute_unprepared(
                    "CREATE POLICY maintenance_claim ON webhook_deliveries FOR UPDATE \
                       USING (current_setting('app.maintenance', true) = 'on') \
                       WITH CHECK (current_setting('app.maintenance', true) = 'on');",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["webhook_attempts", "webhook_deliveries", "webhooks"] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
