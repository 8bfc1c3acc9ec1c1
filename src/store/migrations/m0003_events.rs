//! Events: what the outbox dispatcher needs to claim rows across tenants, ticket watchers,
//! in-app notifications, and the real-time stream (a per-organisation feed numbered in commit
//! order).

use sea_orm_migration::{prelude::*, schema::*};

use super::{
    TENANT_POLICY, index,
    m0001_foundation::{Memberships, Organizations},
    tenant_rls,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Tickets {
    Table,
    OrgId,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum TicketWatchers {
    Table,
    OrgId,
    TicketId,
    UserId,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Notifications {
    Table,
    OrgId,
    Id,
    UserId,
    EventId,
    Kind,
    TicketId,
    ActorId,
    Title,
    Body,
    ReadAt,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum StreamEvents {
    Table,
    OrgId,
    Seq,
    Source,
    Kind,
    TicketId,
    RequesterId,
    UserId,
    Internal,
    Data,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum StreamCounters {
    Table,
    OrgId,
    LastSeq,
}

pub(super) fn member_fk<T: IntoIden + Copy + 'static>(
    table: T,
    org: T,
    user: T,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, (org, user))
        .to(
            Memberships::Table,
            (Memberships::OrgId, Memberships::UserId),
        )
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn ticket_fk<T: IntoIden + Copy + 'static>(
    table: T,
    org: T,
    ticket: T,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, (org, ticket))
        .to(Tickets::Table, (Tickets::OrgId, Tickets::Id))
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let postgres = manager.get_database_backend() == sea_orm::DbBackend::Postgres;

        manager
            .create_table(
                Table::create()
                    .table(TicketWatchers::Table)
                    .col(uuid(TicketWatchers::OrgId))
                    .col(uuid(TicketWatchers::TicketId))
                    .col(uuid(TicketWatchers::UserId))
                    .col(timestamp_with_time_zone(TicketWatchers::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(TicketWatchers::OrgId)
                            .col(TicketWatchers::TicketId)
                            .col(TicketWatchers::UserId),
                    )
                    .foreign_key(&mut ticket_fk(
                        TicketWatchers::Table,
                        TicketWatchers::OrgId,
                        TicketWatchers::TicketId,
                    ))
                    .foreign_key(&mut member_fk(
                        TicketWatchers::Table,
                        TicketWatchers::OrgId,
                        TicketWatchers::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_ticket_watchers_user",
                TicketWatchers::Table,
                &[
                    TicketWatchers::OrgId,
                    TicketWatchers::UserId,
                    TicketWatchers::TicketId,
                ],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .col(uuid(Notifications::OrgId))
                    .col(uuid(Notifications::Id))
                    .col(uuid(Notifications::UserId))
                    // The outbox event that caused it: one notification per event and person,
                    // so an event handled twice notifies once.
                    .col(uuid(Notifications::EventId))
                    .col(string(Notifications::Kind))
                    .col(uuid_null(Notifications::TicketId))
                    .col(uuid_null(Notifications::ActorId))
                    .col(string(Notifications::Title))
                    .col(text_null(Notifications::Body))
                    .col(timestamp_with_time_zone_null(Notifications::ReadAt))
                    .col(timestamp_with_time_zone(Notifications::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(Notifications::OrgId)
                            .col(Notifications::Id),
                    )
                    .foreign_key(&mut member_fk(
                        Notifications::Table,
                        Notifications::OrgId,
                        Notifications::UserId,
                    ))
                    .foreign_key(&mut ticket_fk(
                        Notifications::Table,
                        Notifications::OrgId,
                        Notifications::TicketId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "uq_notifications_event_user",
                    Notifications::Table,
                    &[
                        Notifications::OrgId,
                        Notifications::EventId,
                        Notifications::UserId,
                    ],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_notifications_user",
                Notifications::Table,
                &[
                    Notifications::OrgId,
                    Notifications::UserId,
                    Notifications::CreatedAt,
                    Notifications::Id,
                ],
            ))
            .await?;
        // Unread counts and `?unread=true` read only the unread rows.
        conn.execute_unprepared(
            "CREATE INDEX idx_notifications_unread ON notifications \
             (org_id, user_id, created_at, id) WHERE read_at IS NULL",
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(StreamCounters::Table)
                    .col(uuid(StreamCounters::OrgId).primary_key())
                    // The last stream position handed out. Taking the next one locks this row
                    // until commit, so positions become visible in order and never skip.
                    .col(big_integer(StreamCounters::LastSeq).default(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(StreamCounters::Table, StreamCounters::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StreamEvents::Table)
                    .col(uuid(StreamEvents::OrgId))
                    .col(big_integer(StreamEvents::Seq))
                    // What produced the entry (`event:<id>`, `notification:<id>`): published
                    // once however often its handler runs.
                    .col(string(StreamEvents::Source))
                    .col(string(StreamEvents::Kind))
                    .col(uuid_null(StreamEvents::TicketId))
                    .col(uuid_null(StreamEvents::RequesterId))
                    // Set for one person's own entries (notifications); null for the
                    // organisation's ticket changes.
                    .col(uuid_null(StreamEvents::UserId))
                    .col(boolean(StreamEvents::Internal).default(false))
                    .col(json_binary(StreamEvents::Data))
                    .col(timestamp_with_time_zone(StreamEvents::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(StreamEvents::OrgId)
                            .col(StreamEvents::Seq),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(StreamEvents::Table, StreamEvents::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "uq_stream_events_source",
                    StreamEvents::Table,
                    &[StreamEvents::OrgId, StreamEvents::Source],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_stream_events_age",
                StreamEvents::Table,
                &[StreamEvents::CreatedAt],
            ))
            .await?;

        // The dispatcher keeps one ticket's events in commit order: it looks for unfinished
        // earlier events of the same ticket.
        conn.execute_unprepared(
            "CREATE INDEX idx_outbox_events_ticket_open ON outbox_events \
             (org_id, ticket_id, created_at, id) WHERE status IN ('pending', 'processing')",
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_events_age")
                    .table(Alias::new("outbox_events"))
                    .col(Alias::new("status"))
                    .col(Alias::new("created_at"))
                    .to_owned(),
            )
            .await?;

        for table in [
            "ticket_watchers",
            "notifications",
            "stream_counters",
            "stream_events",
        ] {
            tenant_rls(manager, table, TENANT_POLICY, None).await?;
        }
        super::maintenance_rls(manager, "outbox_events").await?;
        super::maintenance_rls(manager, "stream_events").await?;
        if postgres {
            // Dispatchers claim and settle outbox rows of every tenant; they change nothing
            // else there. A write wakes the workers and stream servers of every process at
            // commit (NOTIFY is delivered only when the transaction commits).
            conn.execute_unprepared(
                "CREATE POLICY maintenance_claim ON outbox_events FOR UPDATE \
                   USING (current_setting('app.maintenance', true) = 'on') \
                   WITH CHECK (current_setting('app.maintenance', true) = 'on');
                 CREATE FUNCTION docket_outbox_written() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN PERFORM pg_notify('docket_outbox', ''); RETURN NULL; END $$;
                 CREATE TRIGGER outbox_written AFTER INSERT ON outbox_events
                   FOR EACH STATEMENT EXECUTE FUNCTION docket_outbox_written();
                 CREATE FUNCTION docket_stream_written() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN PERFORM pg_notify('docket_stream', NEW.org_id::text); RETURN NULL; END $$;
                 CREATE TRIGGER stream_written AFTER INSERT ON stream_events
                   FOR EACH ROW EXECUTE FUNCTION docket_stream_written();",
            )
            .await?;
        }
        Ok(())
    }
}
