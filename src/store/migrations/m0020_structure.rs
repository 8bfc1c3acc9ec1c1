//! Structure in projects and tickets: a project's plan (status, dates, lead), who may see a
//! private project (`visibility`, `project_members`), subtasks (`parent_id`), links between
//! tickets, and merges (`merged_into_id`, with what each merge moved so it can be undone).
//!
//! On PostgreSQL a restrictive policy walls the tickets, comments and timeline of a private
//! project off from staff who are not its members, as the application does: it applies when the
//! transaction names a walled viewer (`app.viewer_id`, set by the store for managers, agents
//! and viewers), and to nobody else.

use sea_orm_migration::{prelude::*, schema::*};

use super::{TENANT_POLICY, add_columns, drop_columns, index, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Projects {
    Table,
    Status,
    StartDate,
    TargetDate,
    LeadId,
    Visibility,
}

#[derive(DeriveIden, Clone, Copy)]
enum Tickets {
    Table,
    OrgId,
    ProjectId,
    Status,
    DeletedAt,
    ParentId,
    MergedIntoId,
    SubtasksTotal,
    SubtasksDone,
}

#[derive(DeriveIden, Clone, Copy)]
enum StreamEvents {
    Table,
    ProjectId,
}

#[derive(DeriveIden, Clone, Copy)]
enum ProjectMembers {
    Table,
    OrgId,
    ProjectId,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TicketLinks {
    Table,
    OrgId,
    Id,
    Kind,
    SourceId,
    TargetId,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TicketMerges {
    Table,
    OrgId,
    Id,
    SourceId,
    TargetId,
    TargetVersion,
    Moved,
    MergedBy,
    MergedAt,
    UndoneAt,
}

/// The projects hidden from the transaction's walled viewer (none when it names none).
pub(crate) const HIDDEN_PROJECTS: &str = "SELECT p.id FROM projects p \
     WHERE p.visibility = 'members' AND NOT EXISTS (SELECT 1 FROM project_members m \
       WHERE m.org_id = p.org_id AND m.project_id = p.id \
         AND m.user_id = NULLIF(current_setting('app.viewer_id', true), '')::uuid)";

fn wall(column: &str) -> String {
    format!(
        "NULLIF(current_setting('app.viewer_id', true), '') IS NULL \
         OR {column} NOT IN ({HIDDEN_PROJECTS})"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            Projects::Table,
            vec![
                string(Projects::Status).default("active").to_owned(),
                date_null(Projects::StartDate),
                date_null(Projects::TargetDate),
                uuid_null(Projects::LeadId),
                string(Projects::Visibility).default("org").to_owned(),
            ],
        )
        .await?;
        add_columns(
            manager,
            Tickets::Table,
            vec![
                uuid_null(Tickets::ParentId),
                uuid_null(Tickets::MergedIntoId),
                // A parent's subtasks, kept by the write path as its children change, so a
                // page of tickets shows them without counting.
                big_integer(Tickets::SubtasksTotal).default(0).to_owned(),
                big_integer(Tickets::SubtasksDone).default(0).to_owned(),
            ],
        )
        .await?;
        // The project a feed entry is about, so a private project's entries reach its members.
        add_columns(
            manager,
            StreamEvents::Table,
            vec![uuid_null(StreamEvents::ProjectId)],
        )
        .await?;
        use Tickets as T;
        // A parent's subtasks (`GET /tickets?parent_id=`), and a project's progress, counted
        // from the index alone.
        manager
            .create_index(index(
                "idx_tickets_parent",
                T::Table,
                &[T::OrgId, T::ParentId, T::Status],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_tickets_progress",
                T::Table,
                &[T::OrgId, T::ProjectId, T::Status, T::DeletedAt],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ProjectMembers::Table)
                    .col(uuid(ProjectMembers::OrgId))
                    .col(uuid(ProjectMembers::ProjectId))
                    .col(uuid(ProjectMembers::UserId))
                    .col(string(ProjectMembers::Role))
                    .col(timestamp_with_time_zone(ProjectMembers::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(ProjectMembers::OrgId)
                            .col(ProjectMembers::ProjectId)
                            .col(ProjectMembers::UserId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_project_members_user",
                ProjectMembers::Table,
                &[ProjectMembers::OrgId, ProjectMembers::UserId],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TicketLinks::Table)
                    .col(uuid(TicketLinks::OrgId))
                    .col(uuid(TicketLinks::Id))
                    .col(string(TicketLinks::Kind))
                    .col(uuid(TicketLinks::SourceId))
                    .col(uuid(TicketLinks::TargetId))
                    .col(uuid_null(TicketLinks::CreatedBy))
                    .col(timestamp_with_time_zone(TicketLinks::CreatedAt))
                    .primary_key(Index::create().col(TicketLinks::OrgId).col(TicketLinks::Id))
                    .to_owned(),
            )
            .await?;
        let mut pair = index(
            "uq_ticket_links_pair",
            TicketLinks::Table,
            &[
                TicketLinks::OrgId,
                TicketLinks::SourceId,
                TicketLinks::TargetId,
            ],
        );
        manager.create_index(pair.unique().to_owned()).await?;
        manager
            .create_index(index(
                "idx_ticket_links_target",
                TicketLinks::Table,
                &[TicketLinks::OrgId, TicketLinks::TargetId],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TicketMerges::Table)
                    .col(uuid(TicketMerges::OrgId))
                    .col(uuid(TicketMerges::Id))
                    .col(uuid(TicketMerges::SourceId))
                    .col(uuid(TicketMerges::TargetId))
                    .col(big_integer(TicketMerges::TargetVersion))
                    .col(json_binary(TicketMerges::Moved))
                    .col(uuid_null(TicketMerges::MergedBy))
                    .col(timestamp_with_time_zone(TicketMerges::MergedAt))
                    .col(timestamp_with_time_zone_null(TicketMerges::UndoneAt))
                    .primary_key(
                        Index::create()
                            .col(TicketMerges::OrgId)
                            .col(TicketMerges::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_ticket_merges_source",
                TicketMerges::Table,
                &[TicketMerges::OrgId, TicketMerges::SourceId],
            ))
            .await?;

        for table in ["project_members", "ticket_links", "ticket_merges"] {
            tenant_rls(manager, table, TENANT_POLICY, None).await?;
        }
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            let conn = manager.get_connection();
            for (table, column) in [
                ("tickets", "project_id"),
                ("ticket_events", "project_id"),
                (
                    "comments",
                    "(SELECT t.project_id FROM tickets t \
                      WHERE t.org_id = comments.org_id AND t.id = comments.ticket_id)",
                ),
            ] {
                let wall = wall(column);
                conn.execute_unprepared(&format!(
                    "CREATE POLICY project_wall ON {table} AS RESTRICTIVE FOR ALL \
                     USING ({wall}) WITH CHECK ({wall})"
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            for table in ["tickets", "ticket_events", "comments"] {
                manager
                    .get_connection()
                    .execute_unprepared(&format!("DROP POLICY project_wall ON {table}"))
                    .await?;
            }
        }
        for table in ["ticket_merges", "ticket_links", "project_members"] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        for name in ["idx_tickets_parent", "idx_tickets_progress"] {
            manager
                .drop_index(Index::drop().name(name).table(Tickets::Table).to_owned())
                .await?;
        }
        drop_columns(manager, StreamEvents::Table, &[StreamEvents::ProjectId]).await?;
        drop_columns(
            manager,
            Tickets::Table,
            &[
                Tickets::ParentId,
                Tickets::MergedIntoId,
                Tickets::SubtasksTotal,
                Tickets::SubtasksDone,
            ],
        )
        .await?;
        drop_columns(
            manager,
            Projects::Table,
            &[
                Projects::Status,
                Projects::StartDate,
                Projects::TargetDate,
                Projects::LeadId,
                Projects::Visibility,
            ],
        )
        .await
    }
}
