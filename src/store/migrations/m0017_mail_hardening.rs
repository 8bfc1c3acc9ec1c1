//! The second hardening pass of mail: addresses copied into a mail that Docket holds back
//! until an agent adds them (`mail_messages.held_participants`), per mailbox which mail
//! system's `Authentication-Results` count (`imap_authserv_id`) and whether it may sign in
//! over an unencrypted connection (`imap_allow_plaintext`), and an id for each bouncing
//! address (admins page through them).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum MailMessages {
    Table,
    HeldParticipants,
}

#[derive(DeriveIden, Clone, Copy)]
enum MailSettings {
    Table,
    ImapAuthservId,
    ImapAllowPlaintext,
}

#[derive(DeriveIden, Clone, Copy)]
enum MailBounces {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MailBounces::Table)
                    .add_column(uuid_null(MailBounces::Id))
                    .to_owned(),
            )
            .await?;
        // Marks made before this have no id yet: a random one (uuids are 16-byte blobs on
        // SQLite).
        let fill = match manager.get_database_backend() {
            sea_orm::DbBackend::Postgres => "UPDATE mail_bounces SET id = gen_random_uuid()",
            _ => "UPDATE mail_bounces SET id = randomblob(16)",
        };
        manager.get_connection().execute_unprepared(fill).await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MailMessages::Table)
                    .add_column(json_null(MailMessages::HeldParticipants))
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(MailSettings::Table)
                    .add_column(string_null(MailSettings::ImapAuthservId))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MailSettings::Table)
                    .add_column(boolean(MailSettings::ImapAllowPlaintext).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MailBounces::Table)
                    .drop_column(MailBounces::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MailMessages::Table)
                    .drop_column(MailMessages::HeldParticipants)
                    .to_owned(),
            )
            .await?;
        for column in [
            MailSettings::ImapAuthservId,
            MailSettings::ImapAllowPlaintext,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(MailSettings::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
