//! SLAs: business calendars, the policies (targets per priority, optionally per project), and
//! each ticket's clocks with the next instant the timer worker must look at them.

use sea_orm_migration::{prelude::*, schema::*};

use super::{TENANT_POLICY, index, maintenance_rls, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Calendars {
    Table,
    OrgId,
    Id,
    Name,
    TimeZone,
    Hours,
    Holidays,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SlaPolicies {
    Table,
    OrgId,
    Id,
    Priority,
    ProjectId,
    CalendarId,
    FirstResponseMinutes,
    NextResponseMinutes,
    ResolutionMinutes,
    WarningPercent,
    Escalation,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SlaClocks {
    Table,
    OrgId,
    TicketId,
    Kind,
    PolicyId,
    CalendarId,
    TargetMinutes,
    WarningPercent,
    StartedAt,
    Pauses,
    MetAt,
    DueAt,
    WarnAt,
    Stage,
    NextCheckAt,
    BusinessMinutes,
}

#[derive(DeriveIden)]
enum Tickets {
    Table,
    OrgId,
    Id,
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    OrgId,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Calendars::Table)
                    .col(uuid(Calendars::OrgId))
                    .col(uuid(Calendars::Id))
                    .col(string(Calendars::Name))
                    .col(string(Calendars::TimeZone))
                    .col(json_binary(Calendars::Hours))
                    .col(json_binary(Calendars::Holidays))
                    .col(timestamp_with_time_zone(Calendars::CreatedAt))
                    .col(timestamp_with_time_zone(Calendars::UpdatedAt))
                    .primary_key(Index::create().col(Calendars::OrgId).col(Calendars::Id))
                    .to_owned(),
            )
            .await?;
        let mut name = index(
            "idx_calendars_name",
            Calendars::Table,
            &[Calendars::OrgId, Calendars::Name],
        );
        manager.create_index(name.unique().to_owned()).await?;
        manager
            .create_table(
                Table::create()
                    .table(SlaPolicies::Table)
                    .col(uuid(SlaPolicies::OrgId))
                    .col(uuid(SlaPolicies::Id))
                    .col(string(SlaPolicies::Priority))
                    .col(uuid_null(SlaPolicies::ProjectId))
                    .col(uuid_null(SlaPolicies::CalendarId))
                    .col(integer_null(SlaPolicies::FirstResponseMinutes))
                    .col(integer_null(SlaPolicies::NextResponseMinutes))
                    .col(integer_null(SlaPolicies::ResolutionMinutes))
                    .col(integer(SlaPolicies::WarningPercent))
                    .col(json_binary(SlaPolicies::Escalation))
                    .col(timestamp_with_time_zone(SlaPolicies::CreatedAt))
                    .primary_key(Index::create().col(SlaPolicies::OrgId).col(SlaPolicies::Id))
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                SlaPolicies::Table,
                                (SlaPolicies::OrgId, SlaPolicies::ProjectId),
                            )
                            .to(Projects::Table, (Projects::OrgId, Projects::Id)),
                    )
                    // A calendar in use cannot be deleted (the API answers 409 first).
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                SlaPolicies::Table,
                                (SlaPolicies::OrgId, SlaPolicies::CalendarId),
                            )
                            .to(Calendars::Table, (Calendars::OrgId, Calendars::Id)),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SlaClocks::Table)
                    .col(uuid(SlaClocks::OrgId))
                    .col(uuid(SlaClocks::TicketId))
                    // first_response, next_response or resolution.
                    .col(string(SlaClocks::Kind))
                    // The policy and the terms it set when the clock was last computed (the
                    // explanation of its due time; a later policy change recomputes them).
                    .col(uuid(SlaClocks::PolicyId))
                    .col(uuid_null(SlaClocks::CalendarId))
                    .col(integer(SlaClocks::TargetMinutes))
                    .col(integer(SlaClocks::WarningPercent))
                    .col(timestamp_with_time_zone(SlaClocks::StartedAt))
                    // Wall-clock pauses `[{from, to}]` since the start (the last may be open).
                    .col(json_binary(SlaClocks::Pauses))
                    .col(timestamp_with_time_zone_null(SlaClocks::MetAt))
                    // Null while paused.
                    .col(timestamp_with_time_zone_null(SlaClocks::DueAt))
                    .col(timestamp_with_time_zone_null(SlaClocks::WarnAt))
                    // What has been announced: 0 nothing, 1 the warning, 2 the breach.
                    .col(small_integer(SlaClocks::Stage))
                    // When the timer worker must look at the clock next (null: never).
                    .col(timestamp_with_time_zone_null(SlaClocks::NextCheckAt))
                    // Running time from start to met, in business minutes (for reports).
                    .col(integer_null(SlaClocks::BusinessMinutes))
                    .primary_key(
                        Index::create()
                            .col(SlaClocks::OrgId)
                            .col(SlaClocks::TicketId)
                            .col(SlaClocks::Kind),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(SlaClocks::Table, (SlaClocks::OrgId, SlaClocks::TicketId))
                            .to(Tickets::Table, (Tickets::OrgId, Tickets::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The timer worker reads clocks in the order they come due, never scanning tickets.
        manager
            .create_index(index(
                "idx_sla_clocks_next_check",
                SlaClocks::Table,
                &[SlaClocks::NextCheckAt],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_sla_clocks_policy",
                SlaClocks::Table,
                &[SlaClocks::OrgId, SlaClocks::PolicyId],
            ))
            .await?;
        for table in ["calendars", "sla_policies", "sla_clocks"] {
            tenant_rls(manager, table, TENANT_POLICY, None).await?;
        }
        maintenance_rls(manager, "sla_clocks").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["sla_clocks", "sla_policies", "calendars"] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
