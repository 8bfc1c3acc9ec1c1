//! The helpdesk conversation by mail: customers write in, agents answer from Docket, the
//! customer's reply lands on the same ticket.
//!
//! - `ingest`: one inbound message (from `POST /inbound/email/{token}`, `docket admin
//!   ingest-email`, or an IMAP mailbox) becomes a ticket or a comment, or is set aside with its
//!   reason in the ingest log. Threading and loop rules are described there.
//! - `replies`: the event handler that mails an agent's public comment on an emailed ticket to
//!   its requester and the mail's other participants (internal notes never leave).
//! - `notices`: notification mails, at once or in hourly digests, as each person prefers.
//! - `settings`: each organisation's inbound address, IMAP mailbox and acknowledgement.
//! - `imap`: polls the mailboxes.
//! - `parse`: what Docket reads from a raw message.

mod imap;
mod ingest;
mod notices;
pub mod parse;
mod replies;
pub mod settings;

use uuid::Uuid;

use crate::{
    access::{Role, TenantCtx},
    config::MailConfig,
    files::Files,
    mail::MailKeys,
};
pub use imap::{poll_all, run as run_imap};
pub use ingest::{
    IngestLogEntry, IngestLogFilter, IngestOutcome, Route, ingest, ingest_log, purge_old_log,
};
pub use notices::{NotificationMails, send_digests};
pub use replies::Replies;

/// What the mail conversation needs everywhere: the keys that sign references and seal
/// mailbox passwords, Docket's own address and its limits.
#[derive(Clone, Debug)]
pub struct Mailroom {
    pub keys: MailKeys,
    /// Docket's sender address (lower-case): mail from it, or marked with it, is its own.
    pub own_address: String,
    pub max_email_bytes: usize,
    pub auto_replies_per_day: u32,
    pub imap_poll: std::time::Duration,
    /// Where the attachments of inbound mail go.
    pub files: Files,
}

impl Mailroom {
    /// `own_address` is the sender's (`mail::Sender::address`).
    pub fn new(cfg: &MailConfig, keys: MailKeys, own_address: String, files: Files) -> Self {
        Self {
            files,
            keys,
            own_address,
            max_email_bytes: cfg.max_email_bytes,
            auto_replies_per_day: cfg.auto_replies_per_day,
            imap_poll: std::time::Duration::from_secs(cfg.imap_poll_secs.max(1)),
        }
    }

    fn own_domain(&self) -> &str {
        self.own_address.rsplit('@').next().unwrap_or_default()
    }

    fn own_local(&self) -> &str {
        self.own_address.split('@').next().unwrap_or_default()
    }

    /// Docket's message id for a mail about `ticket_id`: carries the signed ticket reference.
    fn message_id(&self, org_id: Uuid, ticket_id: Uuid, unique: Uuid) -> String {
        format!(
            "docket.{}.{}@{}",
            self.keys.ticket_reference(org_id, ticket_id),
            unique.simple(),
            self.own_domain()
        )
    }

    /// The reply address of a ticket: `<local>+<signed reference>@<domain>`.
    fn reply_address(&self, org_id: Uuid, ticket_id: Uuid) -> String {
        format!(
            "{}+{}@{}",
            self.own_local(),
            self.keys.ticket_reference(org_id, ticket_id),
            self.own_domain()
        )
    }
}

/// Docket acting on its own in an organisation (creating the inbound project): the nil actor.
fn system_ctx(org_id: Uuid) -> TenantCtx {
    TenantCtx::authenticated(org_id, Uuid::nil(), Role::Owner, None)
}

pub(crate) mod entity {
    pub mod message {
        crate::store::tenant_entity!("mail_messages" {
            #[sea_orm(primary_key, auto_increment = false)]
            message_id: String,
            ticket_id: Option<Uuid>,
            comment_id: Option<Uuid>,
            direction: String,
            created_at: DateTimeUtc,
        });
    }
    pub mod thread {
        crate::store::tenant_entity!("mail_threads" {
            #[sea_orm(primary_key, auto_increment = false)]
            ticket_id: Uuid,
            participants: Json,
            last_message_id: Option<String>,
            #[sea_orm(column_type = "Text")]
            references: String,
        });
    }
    pub mod bounce {
        crate::store::tenant_entity!("mail_bounces" {
            #[sea_orm(primary_key, auto_increment = false)]
            address: String,
            #[sea_orm(column_type = "Text", nullable)]
            reason: Option<String>,
            bounced_at: DateTimeUtc,
        });
    }
}

/// Takes a message posted to an organisation's inbound address (the token names it).
pub async fn receive(
    db: &crate::store::Db,
    mailroom: &Mailroom,
    token: &str,
    raw: &[u8],
) -> crate::error::Result<IngestOutcome> {
    let org_id = settings::org_of_token(db, mailroom, token).await?;
    ingest(db, mailroom, org_id, Route::Http, raw).await
}
