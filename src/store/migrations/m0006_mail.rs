//! Mail: the outgoing queue (`mails`), invitations, password resets, notification delivery
//! preferences and the notification mails (immediate or in digests), and the inbound side (per-organisation settings, the message ids
//! Docket has seen or sent, the ingest log, bouncing addresses, and each emailed ticket's
//! participants).

use sea_orm_migration::{prelude::*, schema::*};

use super::{TENANT_POLICY, index, m0003_events::member_fk, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Mails {
    Table,
    OrgId,
    Id,
    Kind,
    ToAddress,
    ToUserId,
    Subject,
    Params,
    Automatic,
    Status,
    Attempts,
    AvailableAt,
    LockedUntil,
    LastResponse,
    CreatedAt,
    SentAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Invitations {
    Table,
    OrgId,
    Id,
    Email,
    Name,
    Role,
    TokenHash,
    InvitedBy,
    CreatedAt,
    ExpiresAt,
    AcceptedAt,
    AcceptedBy,
}

#[derive(DeriveIden, Clone, Copy)]
enum PasswordResets {
    Table,
    TokenHash,
    UserId,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum NotificationPreferences {
    Table,
    OrgId,
    UserId,
    Kind,
    Delivery,
}

#[derive(DeriveIden, Clone, Copy)]
enum NotificationMails {
    Table,
    OrgId,
    NotificationId,
    UserId,
    Digest,
    CreatedAt,
    MailedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MailSettings {
    Table,
    OrgId,
    TokenGeneration,
    Acknowledge,
    InboundProjectId,
    ImapHost,
    ImapPort,
    ImapTls,
    ImapUsername,
    ImapPassword,
    ImapFolder,
    ImapUidValidity,
    ImapLastUid,
    ImapCheckedAt,
    ImapError,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MailMessages {
    Table,
    OrgId,
    MessageId,
    TicketId,
    CommentId,
    Direction,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MailIngest {
    Table,
    OrgId,
    Id,
    Route,
    MessageId,
    Sender,
    Subject,
    Outcome,
    Reason,
    TicketId,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MailBounces {
    Table,
    OrgId,
    Address,
    Reason,
    BouncedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MailThreads {
    Table,
    OrgId,
    TicketId,
    Participants,
    LastMessageId,
    References,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let postgres = manager.get_database_backend() == sea_orm::DbBackend::Postgres;
        manager
            .create_table(
                Table::create()
                    .table(Mails::Table)
                    .col(uuid(Mails::OrgId))
                    .col(uuid(Mails::Id))
                    .col(string(Mails::Kind))
                    .col(string(Mails::ToAddress))
                    .col(uuid_null(Mails::ToUserId))
                    .col(text(Mails::Subject))
                    .col(json_binary(Mails::Params))
                    .col(boolean(Mails::Automatic))
                    .col(string(Mails::Status))
                    .col(integer(Mails::Attempts))
                    .col(timestamp_with_time_zone(Mails::AvailableAt))
                    .col(timestamp_with_time_zone_null(Mails::LockedUntil))
                    .col(text_null(Mails::LastResponse))
                    .col(timestamp_with_time_zone(Mails::CreatedAt))
                    .col(timestamp_with_time_zone_null(Mails::SentAt))
                    .primary_key(Index::create().col(Mails::OrgId).col(Mails::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_mails_due",
                Mails::Table,
                &[Mails::Status, Mails::AvailableAt],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_mails_recipient",
                Mails::Table,
                &[Mails::OrgId, Mails::ToAddress, Mails::CreatedAt],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Invitations::Table)
                    .col(uuid(Invitations::OrgId))
                    .col(uuid(Invitations::Id))
                    .col(string(Invitations::Email))
                    .col(string_null(Invitations::Name))
                    .col(string(Invitations::Role))
                    .col(string(Invitations::TokenHash))
                    .col(uuid(Invitations::InvitedBy))
                    .col(timestamp_with_time_zone(Invitations::CreatedAt))
                    .col(timestamp_with_time_zone(Invitations::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Invitations::AcceptedAt))
                    .col(uuid_null(Invitations::AcceptedBy))
                    .primary_key(Index::create().col(Invitations::OrgId).col(Invitations::Id))
                    .to_owned(),
            )
            .await?;
        let mut token = index(
            "idx_invitations_token",
            Invitations::Table,
            &[Invitations::OrgId, Invitations::TokenHash],
        );
        manager.create_index(token.unique().to_owned()).await?;

        manager
            .create_table(
                Table::create()
                    .table(PasswordResets::Table)
                    .col(string(PasswordResets::TokenHash).primary_key())
                    .col(uuid(PasswordResets::UserId))
                    .col(timestamp_with_time_zone(PasswordResets::CreatedAt))
                    .col(timestamp_with_time_zone(PasswordResets::ExpiresAt))
                    .col(timestamp_with_time_zone_null(PasswordResets::UsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_password_resets_user",
                PasswordResets::Table,
                &[PasswordResets::UserId],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(NotificationPreferences::Table)
                    .col(uuid(NotificationPreferences::OrgId))
                    .col(uuid(NotificationPreferences::UserId))
                    .col(string(NotificationPreferences::Kind))
                    .col(string(NotificationPreferences::Delivery))
                    .primary_key(
                        Index::create()
                            .col(NotificationPreferences::OrgId)
                            .col(NotificationPreferences::UserId)
                            .col(NotificationPreferences::Kind),
                    )
                    .foreign_key(&mut member_fk(
                        NotificationPreferences::Table,
                        NotificationPreferences::OrgId,
                        NotificationPreferences::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(NotificationMails::Table)
                    .col(uuid(NotificationMails::OrgId))
                    .col(uuid(NotificationMails::NotificationId))
                    .col(uuid(NotificationMails::UserId))
                    .col(boolean(NotificationMails::Digest))
                    .col(timestamp_with_time_zone(NotificationMails::CreatedAt))
                    .col(timestamp_with_time_zone_null(NotificationMails::MailedAt))
                    .primary_key(
                        Index::create()
                            .col(NotificationMails::OrgId)
                            .col(NotificationMails::NotificationId),
                    )
                    .foreign_key(&mut member_fk(
                        NotificationMails::Table,
                        NotificationMails::OrgId,
                        NotificationMails::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_notification_mails_digest",
                NotificationMails::Table,
                &[NotificationMails::Digest, NotificationMails::MailedAt],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MailSettings::Table)
                    .col(uuid(MailSettings::OrgId).primary_key())
                    .col(integer(MailSettings::TokenGeneration))
                    .col(boolean(MailSettings::Acknowledge))
                    .col(uuid_null(MailSettings::InboundProjectId))
                    .col(string_null(MailSettings::ImapHost))
                    .col(integer_null(MailSettings::ImapPort))
                    .col(boolean(MailSettings::ImapTls))
                    .col(string_null(MailSettings::ImapUsername))
                    .col(text_null(MailSettings::ImapPassword))
                    .col(string_null(MailSettings::ImapFolder))
                    .col(big_integer_null(MailSettings::ImapUidValidity))
                    .col(big_integer_null(MailSettings::ImapLastUid))
                    .col(timestamp_with_time_zone_null(MailSettings::ImapCheckedAt))
                    .col(text_null(MailSettings::ImapError))
                    .col(timestamp_with_time_zone(MailSettings::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MailMessages::Table)
                    .col(uuid(MailMessages::OrgId))
                    .col(string(MailMessages::MessageId))
                    .col(uuid_null(MailMessages::TicketId))
                    .col(uuid_null(MailMessages::CommentId))
                    .col(string(MailMessages::Direction))
                    .col(timestamp_with_time_zone(MailMessages::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(MailMessages::OrgId)
                            .col(MailMessages::MessageId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MailIngest::Table)
                    .col(uuid(MailIngest::OrgId))
                    .col(uuid(MailIngest::Id))
                    .col(string(MailIngest::Route))
                    .col(string_null(MailIngest::MessageId))
                    .col(string_null(MailIngest::Sender))
                    .col(text_null(MailIngest::Subject))
                    .col(string(MailIngest::Outcome))
                    .col(text_null(MailIngest::Reason))
                    .col(uuid_null(MailIngest::TicketId))
                    .col(timestamp_with_time_zone(MailIngest::CreatedAt))
                    .primary_key(Index::create().col(MailIngest::OrgId).col(MailIngest::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MailBounces::Table)
                    .col(uuid(MailBounces::OrgId))
                    .col(string(MailBounces::Address))
                    .col(text_null(MailBounces::Reason))
                    .col(timestamp_with_time_zone(MailBounces::BouncedAt))
                    .primary_key(
                        Index::create()
                            .col(MailBounces::OrgId)
                            .col(MailBounces::Address),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MailThreads::Table)
                    .col(uuid(MailThreads::OrgId))
                    .col(uuid(MailThreads::TicketId))
                    .col(json_binary(MailThreads::Participants))
                    .col(string_null(MailThreads::LastMessageId))
                    .col(text(MailThreads::References))
                    .primary_key(
                        Index::create()
                            .col(MailThreads::OrgId)
                            .col(MailThreads::TicketId),
                    )
                    .to_owned(),
            )
            .await?;

        for table in [
            "mails",
            "invitations",
            "notification_preferences",
            "notification_mails",
            "mail_settings",
            "mail_messages",
            "mail_ingest",
            "mail_bounces",
            "mail_threads",
        ] {
            tenant_rls(manager, table, TENANT_POLICY, None).await?;
        }
        for table in [
            "mails",
            "invitations",
            "notification_mails",
            "mail_settings",
        ] {
            super::maintenance_rls(manager, table).await?;
        }
        if postgres {
            // The mail sender claims and settles queued mails of every tenant, the IMAP poller
            // finds the organisations that have a mailbox, and `admin ingest-email` finds an
            // organisation by its slug; none of them changes anything else.
            manager
                .get_connection()
                .execute_unprepared(
                    "CREATE POLICY maintenance_claim ON mails FOR UPDATE \
                       USING (current_setting('app.maintenance', true) = 'on') \
                       WITH CHECK (current_setting('app.maintenance', true) = 'on'); \
                     CREATE POLICY maintenance_read ON organizations FOR SELECT \
                       USING (current_setting('app.maintenance', true) = 'on');",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "mail_threads",
            "mail_bounces",
            "mail_ingest",
            "mail_messages",
            "mail_settings",
            "notification_mails",
            "notification_preferences",
            "password_resets",
            "invitations",
            "mails",
        ] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
