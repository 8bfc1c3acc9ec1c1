//! The work core: projects, tickets with their assignees and labels, comments, the timeline,
//! and beside them the outbox and the idempotency records that make one write one transaction.

use sea_orm_migration::{prelude::*, schema::*};

use super::{
    TENANT_POLICY, index,
    m0001_foundation::{Memberships, Organizations, Users},
    tenant_rls,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Projects {
    Table,
    OrgId,
    Id,
    Key,
    Name,
    Description,
    TicketCounter,
    ArchivedAt,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Tickets {
    Table,
    OrgId,
    Id,
    ProjectId,
    Number,
    Title,
    Description,
    Status,
    Priority,
    RequesterId,
    DueAt,
    FirstResponseDueAt,
    ResolutionDueAt,
    Version,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    ResolvedAt,
    ClosedAt,
    DeletedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TicketAssignees {
    Table,
    OrgId,
    TicketId,
    UserId,
}

#[derive(DeriveIden, Clone, Copy)]
enum TicketLabels {
    Table,
    OrgId,
    TicketId,
    Label,
}

#[derive(DeriveIden, Clone, Copy)]
enum Comments {
    Table,
    OrgId,
    Id,
    TicketId,
    AuthorId,
    Body,
    Internal,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TicketEvents {
    Table,
    OrgId,
    Id,
    ProjectId,
    TicketId,
    ActorId,
    Kind,
    Internal,
    Version,
    Changes,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum OutboxEvents {
    Table,
    OrgId,
    Id,
    Kind,
    TicketId,
    Payload,
    Status,
    Attempts,
    AvailableAt,
    LockedUntil,
    LastError,
    CreatedAt,
    HandledAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum IdempotencyKeys {
    Table,
    OrgId,
    UserId,
    Key,
    Fingerprint,
    State,
    ResponseStatus,
    ResponseHeaders,
    ResponseBody,
    CreatedAt,
    ExpiresAt,
}

/// `(org_id, <cols>)` index on `table`.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Projects::Table)
                    .col(uuid(Projects::OrgId))
                    .col(uuid(Projects::Id))
                    .col(string(Projects::Key))
                    .col(string(Projects::Name))
                    .col(text_null(Projects::Description))
                    // The last ticket number handed out: incremented in the creating
                    // transaction, so numbers never repeat and never skip.
                    .col(big_integer(Projects::TicketCounter).default(0))
                    .col(timestamp_with_time_zone_null(Projects::ArchivedAt))
                    .col(uuid_null(Projects::CreatedBy))
                    .col(timestamp_with_time_zone(Projects::CreatedAt))
                    .col(timestamp_with_time_zone(Projects::UpdatedAt))
                    .primary_key(Index::create().col(Projects::OrgId).col(Projects::Id))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Projects::Table, Projects::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "uq_projects_key",
                    Projects::Table,
                    &[Projects::OrgId, Projects::Key],
                )
                .unique()
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tickets::Table)
                    .col(uuid(Tickets::OrgId))
                    .col(uuid(Tickets::Id))
                    .col(uuid(Tickets::ProjectId))
                    .col(big_integer(Tickets::Number))
                    .col(string(Tickets::Title))
                    .col(text_null(Tickets::Description))
                    .col(string(Tickets::Status))
                    .col(small_integer(Tickets::Priority))
                    .col(uuid_null(Tickets::RequesterId))
                    .col(timestamp_with_time_zone_null(Tickets::DueAt))
                    .col(timestamp_with_time_zone_null(Tickets::FirstResponseDueAt))
                    .col(timestamp_with_time_zone_null(Tickets::ResolutionDueAt))
                    .col(big_integer(Tickets::Version))
                    .col(uuid_null(Tickets::CreatedBy))
                    .col(timestamp_with_time_zone(Tickets::CreatedAt))
                    .col(timestamp_with_time_zone(Tickets::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Tickets::ResolvedAt))
                    .col(timestamp_with_time_zone_null(Tickets::ClosedAt))
                    .col(timestamp_with_time_zone_null(Tickets::DeletedAt))
                    .primary_key(Index::create().col(Tickets::OrgId).col(Tickets::Id))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Tickets::Table, (Tickets::OrgId, Tickets::ProjectId))
                            .to(Projects::Table, (Projects::OrgId, Projects::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    // Requesters stay on their tickets after leaving; the account is kept
                    // (anonymised at most), so this points at the global account.
                    .foreign_key(
                        ForeignKey::create()
                            .from(Tickets::Table, Tickets::RequesterId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        use Tickets as T;
        for (name, cols, unique) in [
            (
                "uq_tickets_number",
                vec![T::OrgId, T::ProjectId, T::Number],
                true,
            ),
            (
                "idx_tickets_created",
                vec![T::OrgId, T::CreatedAt, T::Id],
                false,
            ),
            (
                "idx_tickets_updated",
                vec![T::OrgId, T::UpdatedAt, T::Id],
                false,
            ),
            (
                "idx_tickets_status",
                vec![T::OrgId, T::Status, T::CreatedAt, T::Id],
                false,
            ),
            (
                "idx_tickets_priority",
                vec![T::OrgId, T::Priority, T::Id],
                false,
            ),
            ("idx_tickets_due", vec![T::OrgId, T::DueAt, T::Id], false),
            (
                "idx_tickets_requester",
                vec![T::OrgId, T::RequesterId, T::CreatedAt, T::Id],
                false,
            ),
        ] {
            let mut idx = index(name, T::Table, &cols);
            if unique {
                idx.unique();
            }
            manager.create_index(idx).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(TicketAssignees::Table)
                    .col(uuid(TicketAssignees::OrgId))
                    .col(uuid(TicketAssignees::TicketId))
                    .col(uuid(TicketAssignees::UserId))
                    .primary_key(
                        Index::create()
                            .col(TicketAssignees::OrgId)
                            .col(TicketAssignees::TicketId)
                            .col(TicketAssignees::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                TicketAssignees::Table,
                                (TicketAssignees::OrgId, TicketAssignees::TicketId),
                            )
                            .to(Tickets::Table, (Tickets::OrgId, Tickets::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    // Only members of the ticket's own organisation can be assigned; a person
                    // who leaves is unassigned with the membership.
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                TicketAssignees::Table,
                                (TicketAssignees::OrgId, TicketAssignees::UserId),
                            )
                            .to(
                                Memberships::Table,
                                (Memberships::OrgId, Memberships::UserId),
                            )
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_ticket_assignees_user",
                TicketAssignees::Table,
                &[
                    TicketAssignees::OrgId,
                    TicketAssignees::UserId,
                    TicketAssignees::TicketId,
                ],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TicketLabels::Table)
                    .col(uuid(TicketLabels::OrgId))
                    .col(uuid(TicketLabels::TicketId))
                    .col(string(TicketLabels::Label))
                    .primary_key(
                        Index::create()
                            .col(TicketLabels::OrgId)
                            .col(TicketLabels::TicketId)
                            .col(TicketLabels::Label),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                TicketLabels::Table,
                                (TicketLabels::OrgId, TicketLabels::TicketId),
                            )
                            .to(Tickets::Table, (Tickets::OrgId, Tickets::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_ticket_labels_label",
                TicketLabels::Table,
                &[
                    TicketLabels::OrgId,
                    TicketLabels::Label,
                    TicketLabels::TicketId,
                ],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Comments::Table)
                    .col(uuid(Comments::OrgId))
                    .col(uuid(Comments::Id))
                    .col(uuid(Comments::TicketId))
                    .col(uuid(Comments::AuthorId))
                    .col(text(Comments::Body))
                    .col(boolean(Comments::Internal))
                    .col(big_integer(Comments::Version))
                    .col(timestamp_with_time_zone(Comments::CreatedAt))
                    .col(timestamp_with_time_zone(Comments::UpdatedAt))
                    .primary_key(Index::create().col(Comments::OrgId).col(Comments::Id))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Comments::Table, (Comments::OrgId, Comments::TicketId))
                            .to(Tickets::Table, (Tickets::OrgId, Tickets::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Comments::Table, Comments::AuthorId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_comments_ticket",
                Comments::Table,
                &[Comments::OrgId, Comments::TicketId, Comments::Id],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TicketEvents::Table)
                    .col(uuid(TicketEvents::OrgId))
                    .col(uuid(TicketEvents::Id))
                    .col(uuid(TicketEvents::ProjectId))
                    // Null for events of the project itself.
                    .col(uuid_null(TicketEvents::TicketId))
                    .col(uuid_null(TicketEvents::ActorId))
                    .col(string(TicketEvents::Kind))
                    // About an internal note: never shown to requesters.
                    .col(boolean(TicketEvents::Internal))
                    .col(big_integer_null(TicketEvents::Version))
                    .col(json_binary(TicketEvents::Changes))
                    .col(timestamp_with_time_zone(TicketEvents::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(TicketEvents::OrgId)
                            .col(TicketEvents::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                TicketEvents::Table,
                                (TicketEvents::OrgId, TicketEvents::ProjectId),
                            )
                            .to(Projects::Table, (Projects::OrgId, Projects::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                TicketEvents::Table,
                                (TicketEvents::OrgId, TicketEvents::TicketId),
                            )
                            .to(Tickets::Table, (Tickets::OrgId, Tickets::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_ticket_events_ticket", TicketEvents::TicketId),
            ("idx_ticket_events_project", TicketEvents::ProjectId),
        ] {
            manager
                .create_index(index(
                    name,
                    TicketEvents::Table,
                    &[TicketEvents::OrgId, col, TicketEvents::Id],
                ))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(OutboxEvents::Table)
                    .col(uuid(OutboxEvents::OrgId))
                    .col(uuid(OutboxEvents::Id))
                    .col(string(OutboxEvents::Kind))
                    .col(uuid_null(OutboxEvents::TicketId))
                    .col(json_binary(OutboxEvents::Payload))
                    .col(string(OutboxEvents::Status))
                    .col(integer(OutboxEvents::Attempts).default(0))
                    .col(timestamp_with_time_zone(OutboxEvents::AvailableAt))
                    .col(timestamp_with_time_zone_null(OutboxEvents::LockedUntil))
                    .col(text_null(OutboxEvents::LastError))
                    .col(timestamp_with_time_zone(OutboxEvents::CreatedAt))
                    .col(timestamp_with_time_zone_null(OutboxEvents::HandledAt))
                    .primary_key(
                        Index::create()
                            .col(OutboxEvents::OrgId)
                            .col(OutboxEvents::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(OutboxEvents::Table, OutboxEvents::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_outbox_events_due",
                OutboxEvents::Table,
                &[OutboxEvents::Status, OutboxEvents::AvailableAt],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(uuid(IdempotencyKeys::OrgId))
                    .col(uuid(IdempotencyKeys::UserId))
                    .col(string(IdempotencyKeys::Key))
                    .col(string(IdempotencyKeys::Fingerprint))
                    .col(string(IdempotencyKeys::State))
                    .col(integer_null(IdempotencyKeys::ResponseStatus))
                    .col(json_binary_null(IdempotencyKeys::ResponseHeaders))
                    .col(text_null(IdempotencyKeys::ResponseBody))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    .col(timestamp_with_time_zone(IdempotencyKeys::ExpiresAt))
                    .primary_key(
                        Index::create()
                            .col(IdempotencyKeys::OrgId)
                            .col(IdempotencyKeys::UserId)
                            .col(IdempotencyKeys::Key),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                IdempotencyKeys::Table,
                                (IdempotencyKeys::OrgId, IdempotencyKeys::UserId),
                            )
                            .to(
                                Memberships::Table,
                                (Memberships::OrgId, Memberships::UserId),
                            )
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_idempotency_keys_expiry",
                IdempotencyKeys::Table,
                &[IdempotencyKeys::ExpiresAt],
            ))
            .await?;

        for table in [
            "projects",
            "tickets",
            "ticket_assignees",
            "ticket_labels",
            "comments",
            "ticket_events",
            "outbox_events",
            "idempotency_keys",
        ] {
            tenant_rls(manager, table, TENANT_POLICY, None).await?;
        }
        // Expired idempotency records of every tenant are purged by the maintenance scope.
        super::maintenance_rls(manager, "idempotency_keys").await?;
        Ok(())
    }
}
