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
//! - `bounces`: addresses whose mail bounced, for admins to see and clear.
//! - `contacts`: customers known only by mail, and how a person links them to an account.
//! - `participants`: who takes part in a ticket's mail conversation, and the addresses a mail
//!   copied in that wait for an agent to add them.

pub mod bounces;
pub mod contacts;
pub(crate) mod erasure;
mod imap;
mod ingest;
mod notices;
pub mod parse;
pub mod participants;
mod replies;
pub mod retention;
pub mod settings;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::{
    access::{Role, TenantCtx},
    config::MailConfig,
    error::{Error, Result},
    files::Files,
    mail::MailKeys,
    outbound::Guard,
};
pub use imap::{poll_all, run as run_imap};
pub use ingest::{
    IngestLogEntry, IngestLogFilter, IngestOutcome, MAX_NEW_PARTICIPANTS, Route, ingest,
    ingest_log, purge_old_log, too_large,
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
    pub imap_poll: Duration,
    /// Where the attachments of inbound mail go.
    pub files: Files,
    /// The mail systems whose `Authentication-Results` count for the inbound address and the
    /// pipe command.
    pub trusted_authserv_ids: Vec<String>,
    /// Where IMAP mailboxes may be (the SSRF wall webhooks have too).
    pub guard: Guard,
    /// Messages read at once: reading one is CPU work, done off the async runtime's threads.
    readers: Arc<Semaphore>,
}

/// Longest wait for a turn to read a message before answering "busy, retry".
const READ_WAIT: Duration = Duration::from_secs(20);

impl Mailroom {
    /// `own_address` is the sender's (`mail::Sender::address`); `guard` says where mailboxes
    /// may be.
    pub fn new(
        cfg: &MailConfig,
        keys: MailKeys,
        own_address: String,
        files: Files,
        guard: Guard,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            files,
            keys,
            own_address,
            max_email_bytes: cfg.max_email_bytes,
            auto_replies_per_day: cfg.auto_replies_per_day,
            imap_poll: Duration::from_secs(cfg.imap_poll_secs.max(1)),
            trusted_authserv_ids: cfg
                .mail_trusted_authserv_ids
                .iter()
                .map(|id| id.trim().to_lowercase())
                .filter(|id| !id.is_empty())
                .collect(),
            guard,
            readers: Arc::new(Semaphore::new(cores)),
        }
    }

    /// Reads a raw message (MIME, charsets, quoted history) and names it for de-duplication, on
    /// a blocking thread, one message per core at a time: a large or hostile message costs at
    /// most its share of the CPU and never holds a thread that serves requests (and a spooled
    /// one is only loaded into memory in its turn).
    pub(crate) async fn read(&self, raw: RawMail) -> Result<(parse::Inbound, String)> {
        let _turn = tokio::time::timeout(READ_WAIT, self.readers.clone().acquire_owned())
            .await
            .map_err(|_| Error::Unavailable {
                detail: "too many messages are being read at once; retry shortly".into(),
                retry_after: Duration::from_secs(5),
            })?
            .map_err(Error::internal)?;
        let own = self.own_address.clone();
        tokio::task::spawn_blocking(move || {
            let raw = raw.load()?;
            let inbound = parse::parse(&raw, &own)?;
            let key = ingest::dedup_key(&inbound, &raw);
            Ok((inbound, key))
        })
        .await
        .map_err(Error::internal)?
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

/// A raw message as it reached Docket: in memory (IMAP, the pipe command), or spooled to a
/// temporary file as it arrived (the inbound address).
#[derive(Debug)]
pub enum RawMail {
    Bytes(Bytes),
    File(std::fs::File),
}

impl From<Vec<u8>> for RawMail {
    fn from(raw: Vec<u8>) -> Self {
        RawMail::Bytes(raw.into())
    }
}

impl From<Bytes> for RawMail {
    fn from(raw: Bytes) -> Self {
        RawMail::Bytes(raw)
    }
}

impl RawMail {
    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            RawMail::Bytes(b) => b.len() as u64,
            RawMail::File(f) => f.metadata().map_or(u64::MAX, |m| m.len()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes (reading a spooled file: call it off the async runtime's threads).
    fn load(self) -> Result<Bytes> {
        match self {
            RawMail::Bytes(b) => Ok(b),
            RawMail::File(mut f) => {
                use std::io::Read as _;
                let mut raw = Vec::new();
                f.read_to_end(&mut raw).map_err(Error::internal)?;
                Ok(raw.into())
            }
        }
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
            /// Addresses this (inbound) mail copied in that were not added to the
            /// conversation: it was not authenticated, or it copied in too many.
            held_participants: Option<Json>,
            /// When retention removed the text this (inbound) mail brought.
            body_purged_at: Option<DateTimeUtc>,
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
            /// Set when the address was first marked; it stays while the mark does.
            id: Uuid,
        });
    }
}
