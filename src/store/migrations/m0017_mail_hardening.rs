//! The second hardening pass of mail: addresses copied into a mail that Docket holds back
//! until an agent adds them (`mail_messages.held_participants`), per mailbox which mail
//! system's `Authentication-Results` count (`imap_authserv_id`) and whether it may sign in
//! over an unencrypted connection (`imap_allow_plaintext`), and an id for each bouncing
//! address (admins page through them).

use sea_orm_migration::{prelude::*, schema::*};

use super::{add_columns, drop_columns};

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
        add_columns(
            manager,
            MailBounces::Table,
            vec![uuid_null(MailBounces::Id)],
        )
        .await?;
        // Marks made before this have no id yet: a random one (uuids are 16-byte blobs on
        // SQLite).
        let fill = match manager.get_database_backend() {
            sea_orm::DbBackend::Postgres => "UPDATE mail_bounces SET id = gen_random_uuid()",
            _ => "UPDATE mail_bounces SET id = randomblob(16)",
        };
        manager.get_connection().execute_unprepared(fill).await?;
        add_columns(
            manager,
            MailMessages::Table,
            vec![json_null(MailMessages::HeldParticipants)],
        )
        .await?;
        add_columns(
            manager,
            MailSettings::Table,
            vec![
                string_null(MailSettings::ImapAuthservId),
                boolean(MailSettings::ImapAllowPlaintext)
                    .default(false)
                    .to_owned(),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_columns(manager, MailBounces::Table, &[MailBounces::Id]).await?;
        drop_columns(
            manager,
            MailMessages::Table,
            &[MailMessages::HeldParticipants],
        )
        .await?;
        drop_columns(
            manager,
            MailSettings::Table,
            &[
                MailSettings::ImapAuthservId,
                MailSettings::ImapAllowPlaintext,
            ],
        )
        .await
    }
}
