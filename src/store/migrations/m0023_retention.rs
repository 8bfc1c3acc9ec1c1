//! Retention: when the worker last applied an organisation's retention settings
//! (`organizations.retention_ran_at`); which inbound mail has had its body removed
//! (`mail_messages.body_purged_at`); a ticket whose retention purge is under way
//! (`ticket_purges`, written and emptied in the purge's own transaction), the one state apart
//! from an organisation's purge in which its timeline rows may be deleted; and timeline entries
//! whose content was redacted (`ticket_events.redacted_at`), the only update a timeline row
//! takes.

use sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

use super::{TENANT_POLICY, add_columns, drop_columns, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Organizations {
    Table,
    Id,
    RetentionRanAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MailMessages {
    Table,
    BodyPurgedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TicketEvents {
    Table,
    RedactedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TicketPurges {
    Table,
    OrgId,
    TicketId,
}

/// A timeline row may be deleted while its organisation is purged, or its ticket is.
const DELETABLE: &str = "EXISTS (SELECT 1 FROM organizations o WHERE o.id = ROW.org_id AND o.purging) \
     OR EXISTS (SELECT 1 FROM ticket_purges p \
                WHERE p.org_id = ROW.org_id AND p.ticket_id = ROW.ticket_id)";

/// The timeline columns that never change; `changes` may be rewritten only by a redaction,
/// which stamps `redacted_at`.
const TIMELINE_FIXED: &str =
    "org_id, id, project_id, ticket_id, actor_id, kind, internal, version, created_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        add_columns(
            manager,
            Organizations::Table,
            vec![timestamp_with_time_zone_null(Organizations::RetentionRanAt)],
        )
        .await?;
        add_columns(
            manager,
            MailMessages::Table,
            vec![timestamp_with_time_zone_null(MailMessages::BodyPurgedAt)],
        )
        .await?;
        add_columns(
            manager,
            TicketEvents::Table,
            vec![timestamp_with_time_zone_null(TicketEvents::RedactedAt)],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(TicketPurges::Table)
                    .col(uuid(TicketPurges::OrgId))
                    .col(uuid(TicketPurges::TicketId))
                    .primary_key(
                        Index::create()
                            .col(TicketPurges::OrgId)
                            .col(TicketPurges::TicketId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(TicketPurges::Table, TicketPurges::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        tenant_rls(manager, "ticket_purges", TENANT_POLICY, None).await?;

        let statements = if manager.get_database_backend() == DbBackend::Sqlite {
            let deletable = DELETABLE.replace("ROW.", "OLD.");
            vec![
                "DROP TRIGGER IF EXISTS ticket_events_append_only_update".to_owned(),
                "DROP TRIGGER IF EXISTS ticket_events_append_only_delete".to_owned(),
                format!(
                    "CREATE TRIGGER ticket_events_append_only_update \
                     BEFORE UPDATE OF {TIMELINE_FIXED} ON ticket_events \
                     BEGIN SELECT RAISE(ABORT, 'ticket_events is append-only'); END"
                ),
                "CREATE TRIGGER ticket_events_redaction_only \
                 BEFORE UPDATE OF changes, redacted_at ON ticket_events \
                 WHEN NEW.redacted_at IS NULL \
                 BEGIN SELECT RAISE(ABORT, 'ticket_events is append-only'); END"
                    .to_owned(),
                format!(
                    "CREATE TRIGGER ticket_events_append_only_delete BEFORE DELETE ON ticket_events \
                     WHEN NOT ({deletable}) \
                     BEGIN SELECT RAISE(ABORT, 'ticket_events is append-only'); END"
                ),
            ]
        } else {
            // The application role may update `changes` and `redacted_at` only (store::migrate);
            // this policy makes every such update a redaction.
            vec![
                "DROP POLICY IF EXISTS purge_only ON ticket_events".to_owned(),
                format!(
                    "CREATE POLICY purge_only ON ticket_events AS RESTRICTIVE FOR DELETE \
                     USING ({})",
                    DELETABLE.replace("ROW.", "ticket_events.")
                ),
                "CREATE POLICY redaction_only ON ticket_events AS RESTRICTIVE FOR UPDATE \
                 USING (true) WITH CHECK (redacted_at IS NOT NULL)"
                    .to_owned(),
            ]
        };
        for sql in statements {
            conn.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let purging =
            "EXISTS (SELECT 1 FROM organizations o WHERE o.id = ROW.org_id AND o.purging)";
        let statements = if manager.get_database_backend() == DbBackend::Sqlite {
            vec![
                "DROP TRIGGER IF EXISTS ticket_events_redaction_only".to_owned(),
                "DROP TRIGGER IF EXISTS ticket_events_append_only_update".to_owned(),
                "DROP TRIGGER IF EXISTS ticket_events_append_only_delete".to_owned(),
                "CREATE TRIGGER ticket_events_append_only_update BEFORE UPDATE ON ticket_events \
                 BEGIN SELECT RAISE(ABORT, 'ticket_events is append-only'); END"
                    .to_owned(),
                format!(
                    "CREATE TRIGGER ticket_events_append_only_delete BEFORE DELETE ON ticket_events \
                     WHEN NOT {} \
                     BEGIN SELECT RAISE(ABORT, 'ticket_events is append-only'); END",
                    purging.replace("ROW.", "OLD.")
                ),
            ]
        } else {
            vec![
                "DROP POLICY IF EXISTS redaction_only ON ticket_events".to_owned(),
                "DROP POLICY IF EXISTS purge_only ON ticket_events".to_owned(),
                format!(
                    "CREATE POLICY purge_only ON ticket_events AS RESTRICTIVE FOR DELETE USING ({})",
                    purging.replace("ROW.", "ticket_events.")
                ),
            ]
        };
        for sql in statements {
            conn.execute_unprepared(&sql).await?;
        }
        manager
            .drop_table(Table::drop().table(TicketPurges::Table).to_owned())
            .await?;
        drop_columns(manager, TicketEvents::Table, &[TicketEvents::RedactedAt]).await?;
        drop_columns(manager, MailMessages::Table, &[MailMessages::BodyPurgedAt]).await?;
        drop_columns(
            manager,
            Organizations::Table,
            &[Organizations::RetentionRanAt],
        )
        .await
    }
}
