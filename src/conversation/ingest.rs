//! One inbound message → a ticket, a comment, or a line in the ingest log saying why not.
//!
//! Threading, in this order:
//! 1. Docket's signed ticket reference in `In-Reply-To`/`References` (its own message ids) or
//!    in a `reply+<reference>@` recipient → that ticket;
//! 2. a `Message-ID` Docket stored (inbound or outbound) named in `In-Reply-To`/`References`
//!    → that ticket;
//! 3. a `[KEY-N]` subject tag, only when the sender is that ticket's requester or one of its
//!    mail participants (anyone else could write into someone's ticket by guessing keys);
//! 4. otherwise a new ticket; when a tag named a ticket the sender may not write into, the new
//!    ticket is labelled `follow-up:<KEY-N>` and the ingest log says so.
//!
//! The same message twice (posted twice, or by two routes) has one effect: its `Message-ID`
//! (or, without one, a hash of its bytes) is stored with what it made, under a unique key.
//!
//! Loops (RFC 3834): automatic mail (`Auto-Submitted` other than `no`, `Precedence:
//! bulk|junk|list`, `X-Auto-Response-Suppress`, Docket's own `X-Loop`, mailer-daemon or
//! postmaster senders, mailing lists) makes no ticket and gets no answer; a delivery report
//! marks the addresses that bounced instead.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, sea_query::OnConflict,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    Mailroom, RawMail, bounces,
    entity::{message, thread},
    parse::{self, Inbound},
    settings, system_ctx,
};
use crate::{
    access::{self, Action, Role, TenantCtx},
    error::{Error, Result},
    files::{Files, WriteError},
    identity,
    mail::{self, Outgoing, Thread},
    pagination::{Page, PageRequest},
    store::{Db, TenantTx, is_unique_violation},
    tenancy,
    work::{
        attachments::{self, Upload},
        comments::{self, NewComment},
        projects::{self, NewProject},
        tickets::{self, NewTicket},
    },
};

/// Key of the project inbound mail files into when none is set.
const INBOUND_PROJECT_KEY: &str = "MAIL";

pub(crate) mod log_entity {
    crate::store::tenant_entity!("mail_ingest" {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        route: String,
        message_id: Option<String>,
        sender: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        subject: Option<String>,
        outcome: String,
        #[sea_orm(column_type = "Text", nullable)]
        reason: Option<String>,
        ticket_id: Option<Uuid>,
        created_at: DateTimeUtc,
    });
}

/// How a message reached Docket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = IngestRoute)]
pub enum Route {
    /// `POST /inbound/email/{token}`.
    Http,
    /// `docket admin ingest-email`.
    Command,
    Imap,
}

impl Route {
    fn as_str(self) -> &'static str {
        match self {
            Route::Http => "http",
            Route::Command => "command",
            Route::Imap => "imap",
        }
    }
}

/// What became of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = IngestOutcomeKind)]
pub enum Outcome {
    TicketCreated,
    CommentAdded,
    /// Seen before (same `Message-ID`, or same bytes): nothing new.
    Duplicate,
    /// Automatic mail: no ticket, no answer.
    Suppressed,
    /// A delivery report: the addresses it names are marked as bouncing.
    Bounce,
    /// Unreadable, too large, or from a sender who may not write in (or not this).
    Rejected,
    /// An error while taking it (see the reason): it may be sent again, and an IMAP mailbox
    /// tries it again a few times before it moves on.
    Failed,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::TicketCreated,
        Outcome::CommentAdded,
        Outcome::Duplicate,
        Outcome::Suppressed,
        Outcome::Bounce,
        Outcome::Rejected,
        Outcome::Failed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Outcome::TicketCreated => "ticket_created",
            Outcome::CommentAdded => "comment_added",
            Outcome::Duplicate => "duplicate",
            Outcome::Suppressed => "suppressed",
            Outcome::Bounce => "bounce",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }

    fn parse(stored: &str) -> Result<Self> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == stored)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("ingest outcome {stored:?}")))
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct IngestOutcome {
    pub outcome: Outcome,
    pub ticket_id: Option<Uuid>,
    pub comment_id: Option<Uuid>,
    pub reason: Option<String>,
    /// The message's files kept as attachments of the ticket or comment.
    pub attachment_ids: Vec<Uuid>,
}

impl IngestOutcome {
    fn without_ticket(outcome: Outcome, reason: String) -> Self {
        Self {
            outcome,
            ticket_id: None,
            comment_id: None,
            reason: Some(reason),
            attachment_ids: Vec::new(),
        }
    }
}

/// One line of the ingest log.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestLogEntry {
    pub id: Uuid,
    pub route: Route,
    pub message_id: Option<String>,
    pub sender: Option<String>,
    pub subject: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub ticket_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IngestLogFilter {
    pub outcome: Option<Outcome>,
}

/// What a message is known by for de-duplication.
pub(super) fn dedup_key(inbound: &Inbound, raw: &[u8]) -> String {
    inbound
        .message_id
        .clone()
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(raw))))
}

/// Most addresses one mail adds to a ticket's conversation; the rest are held for an agent.
pub const MAX_NEW_PARTICIPANTS: usize = 20;

/// Takes one raw message for organisation `org_id`. Whatever becomes of it is a line in the
/// ingest log: a ticket, a comment, a duplicate, automatic mail, a bounce, a refusal (a sender
/// who may not write in, a message that cannot be read or is too large) or a failure (an error
/// the caller may retry: the answer is that error).
pub async fn ingest(
    db: &Db,
    mailroom: &Mailroom,
    org_id: Uuid,
    route: Route,
    raw: RawMail,
) -> Result<IngestOutcome> {
    // A deleted organisation takes no mail (refused before a byte of it is kept).
    let tx = db.read_org(org_id).await?;
    tenancy::lifecycle::ensure_open(&tx).await?;
    tx.commit().await?;
    if raw.len() > mailroom.max_email_bytes as u64 {
        let err = too_large(mailroom.max_email_bytes);
        log_unreadable(db, org_id, route, &err).await;
        return Err(err);
    }
    let (inbound, key) = match mailroom.read(raw).await {
        Ok(read) => read,
        Err(err) => {
            log_unreadable(db, org_id, route, &err).await;
            return Err(err);
        }
    };
    let files = match keep_files(&mailroom.files, org_id, &inbound).await {
        Ok(files) => files,
        Err(err) => {
            log_failure(db, org_id, route, &inbound, &key, &err).await;
            return Err(err);
        }
    };
    let done = match take_once(db, mailroom, org_id, route, &inbound, &key, &files).await {
        Err(err) if is_refusal(&err) => refuse(db, org_id, route, &inbound, &key, &err).await,
        Err(err) => {
            log_failure(db, org_id, route, &inbound, &key, &err).await;
            Err(err)
        }
        done => done,
    };
    // Files of a message that made nothing (a duplicate, a refusal) are not kept.
    let kept = done.as_ref().map_or(0, |d| d.attachment_ids.len());
    if kept == 0 {
        for upload in &files.stored {
            if let Err(err) = mailroom.files.delete(org_id, upload.blob.id).await {
                tracing::warn!(error = ?err, "removing an unused mail attachment failed; the orphan sweep will");
            }
        }
    }
    done
}

/// Replaces an erased person's address as a sender in the ingest log (what they wrote about
/// stays: the subject is the organisation's record).
pub(super) async fn scrub_senders(tx: &TenantTx, traces: &crate::text::Traces) -> Result<u64> {
    use sea_orm::sea_query::{Expr, ExprTrait as _, Func};
    let done = tx
        .update_many::<log_entity::Entity>()
        .col_expr(
            log_entity::Column::Sender,
            traces.tombstone.address.clone().into(),
        )
        .filter(
            Expr::expr(Func::lower(Expr::col(log_entity::Column::Sender)))
                .is_in(traces.addresses.iter().cloned()),
        )
        .exec(tx.conn())
        .await?;
    Ok(done.rows_affected)
}

/// The refusal of a message over `DOCKET_MAX_EMAIL_BYTES`.
pub fn too_large(max: usize) -> Error {
    Error::too_large(format!(
        "the message is larger than {max} bytes (DOCKET_MAX_EMAIL_BYTES)"
    ))
}

/// Errors that say the message (or its sender) cannot be taken, as opposed to a failure to
/// take it: the sender may not write, a field of what it would make is invalid.
fn is_refusal(err: &Error) -> bool {
    matches!(
        err,
        Error::Forbidden { .. }
            | Error::Validation(_)
            | Error::Unprocessable { .. }
            | Error::TooLarge { .. }
            | Error::InvalidTransition { .. }
    )
}

/// What the ingest log says of an error: its message, or for an internal one only that it
/// happened (the details are in the server's log, under the same request id).
fn reason_of(err: &Error) -> String {
    match err {
        Error::Internal(_) => match crate::request_id::current() {
            Some(id) => format!("an internal error (request {id}); the message was not taken"),
            None => "an internal error; the message was not taken".to_owned(),
        },
        Error::Validation(fields) => fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// A message the sender may not send, or whose ticket or comment could not be made: refused,
/// with the reason in the ingest log.
async fn refuse(
    db: &Db,
    org_id: Uuid,
    route: Route,
    inbound: &Inbound,
    key: &str,
    err: &Error,
) -> Result<IngestOutcome> {
    let done = IngestOutcome::without_ticket(Outcome::Rejected, reason_of(err));
    log_line(db, org_id, route, Some(inbound), Some(key), &done).await?;
    Ok(done)
}

/// Logs a message that could not be read at all (too large, not a message, no turn to read
/// it); best effort: the answer is the error either way.
pub(super) async fn log_unreadable(db: &Db, org_id: Uuid, route: Route, err: &Error) {
    let outcome = if is_refusal(err) {
        Outcome::Rejected
    } else {
        Outcome::Failed
    };
    let done = IngestOutcome::without_ticket(outcome, reason_of(err));
    log_best_effort(db, org_id, route, None, None, &done).await;
}

/// Logs a failure to take a message that was read; the caller may try again.
async fn log_failure(
    db: &Db,
    org_id: Uuid,
    route: Route,
    inbound: &Inbound,
    key: &str,
    err: &Error,
) {
    if let Error::Internal(cause) = err {
        tracing::error!(error = ?cause, org = %org_id, "taking an inbound mail failed");
    }
    let done = IngestOutcome::without_ticket(Outcome::Failed, reason_of(err));
    log_best_effort(db, org_id, route, Some(inbound), Some(key), &done).await;
}

/// Writes one line of the ingest log in a transaction of its own.
async fn log_line(
    db: &Db,
    org_id: Uuid,
    route: Route,
    inbound: Option<&Inbound>,
    key: Option<&str>,
    done: &IngestOutcome,
) -> Result<()> {
    let tx = db.write_org(org_id).await?;
    record(&tx, route, inbound, key, done).await?;
    tx.commit().await?;
    Ok(())
}

async fn log_best_effort(
    db: &Db,
    org_id: Uuid,
    route: Route,
    inbound: Option<&Inbound>,
    key: Option<&str>,
    done: &IngestOutcome,
) {
    if let Err(err) = log_line(db, org_id, route, inbound, key, done).await {
        tracing::warn!(error = %err, org = %org_id, "an inbound mail's outcome could not be logged");
    }
}

/// The files of a message, written to storage before the transaction that names them; those
/// over the size limit are left out, with a note.
struct MailFiles {
    stored: Vec<Upload>,
    notes: Vec<String>,
}

async fn keep_files(files: &Files, org_id: Uuid, inbound: &Inbound) -> Result<MailFiles> {
    let mut kept = MailFiles {
        stored: Vec::new(),
        notes: Vec::new(),
    };
    if inbound.automatic.is_some() {
        return Ok(kept);
    }
    for (name, bytes) in inbound.files.iter().take(attachments::MAX_FILES_AT_ONCE) {
        let filename = crate::files::sanitize_filename(name);
        let mut writer = files.writer(org_id, files.max_bytes);
        match writer.write(bytes.clone().into()).await {
            Ok(()) => {}
            Err(WriteError::TooLarge) => {
                writer.abort().await;
                kept.notes
                    .push(format!("{filename} is over the attachment size limit"));
                continue;
            }
            Err(WriteError::Store(err)) => {
                writer.abort().await;
                return Err(err);
            }
        }
        let blob = writer.finish().await?;
        kept.stored.push(Upload { filename, blob });
    }
    if inbound.files.len() > attachments::MAX_FILES_AT_ONCE {
        kept.notes.push(format!(
            "only the first {} attachments were kept",
            attachments::MAX_FILES_AT_ONCE
        ));
    }
    Ok(kept)
}

async fn take_once(
    db: &Db,
    mailroom: &Mailroom,
    org_id: Uuid,
    route: Route,
    inbound: &Inbound,
    key: &str,
    files: &MailFiles,
) -> Result<IngestOutcome> {
    let mut retries = 0;
    loop {
        match take(db, mailroom, org_id, route, inbound, key, files).await {
            Err(Error::Conflict {
                code: "duplicate_message",
                ..
            }) => {
                // Another delivery of the same message won the race: logged as what it is.
                let tx = db.write_org(org_id).await?;
                let done = duplicate(&tx, route, inbound, key).await?;
                tx.commit().await?;
                return Ok(done);
            }
            // A concurrent delivery made the same new account (or project) first: the next
            // attempt finds it.
            Err(Error::Conflict { .. }) if retries < 2 => retries += 1,
            other => return other,
        }
    }
}

async fn take(
    db: &Db,
    mailroom: &Mailroom,
    org_id: Uuid,
    route: Route,
    inbound: &Inbound,
    key: &str,
    files: &MailFiles,
) -> Result<IngestOutcome> {
    let tx = db.write_org(org_id).await?;
    if seen(&tx, key).await?.is_some() {
        let done = duplicate(&tx, route, inbound, key).await?;
        tx.commit().await?;
        return Ok(done);
    }
    if let Some(reason) = &inbound.automatic {
        let (outcome, reason) = match &inbound.report {
            Some(failed) => bounce(&tx, mailroom, inbound, failed).await?,
            None => (Outcome::Suppressed, reason.clone()),
        };
        remember(&tx, key, None, None, "inbound", &[]).await?;
        let done = IngestOutcome::without_ticket(outcome, reason);
        record(&tx, route, Some(inbound), Some(key), &done).await?;
        tx.commit().await?;
        return Ok(done);
    }
    let mail_settings = settings::load(&tx).await?;
    let trusted = match route {
        Route::Imap => mail_settings.imap_authserv_id.clone().into_iter().collect(),
        Route::Http | Route::Command => mailroom.trusted_authserv_ids.clone(),
    };
    let authenticated = inbound.authenticated(&trusted);

    let sender = sender_account(&tx, inbound).await?;
    let (found, follow_up) = thread_of(&tx, mailroom, inbound, &sender).await?;
    let mut notes = files.notes.clone();
    let done = match found {
        Some(ticket_id) => {
            let comment_id = reply(&tx, ticket_id, &sender, inbound).await?;
            IngestOutcome {
                outcome: Outcome::CommentAdded,
                ticket_id: Some(ticket_id),
                comment_id: Some(comment_id),
                reason: None,
                attachment_ids: Vec::new(),
            }
        }
        None => {
            let ticket_id =
                open_ticket(&tx, &mail_settings, &sender, inbound, follow_up.as_deref()).await?;
            if let Some(earlier) = &follow_up {
                notes.push(format!("possible follow-up to {earlier}"));
            }
            if mail_settings.acknowledge {
                if authenticated {
                    acknowledge(&tx, mailroom, ticket_id, &sender, inbound).await?;
                } else {
                    notes.push("no acknowledgement: the sender is not authenticated".into());
                }
            }
            IngestOutcome {
                outcome: Outcome::TicketCreated,
                ticket_id: Some(ticket_id),
                comment_id: None,
                reason: None,
                attachment_ids: Vec::new(),
            }
        }
    };
    let ticket_id = done.ticket_id.expect("a ticket either way");
    let attachment_ids = attach(&tx, mailroom, &sender, &done, files, &mut notes).await?;
    let held = keep_thread(&tx, mailroom, ticket_id, &sender, inbound, authenticated).await?;
    if !held.is_empty() {
        notes.push(format!(
            "{} copied in {} not added to the conversation ({}); an agent can add them",
            held.len(),
            if held.len() == 1 { "was" } else { "were" },
            if authenticated {
                format!("at most {MAX_NEW_PARTICIPANTS} are added from one mail")
            } else {
                "the mail is not authenticated".to_owned()
            }
        ));
    }
    remember(&tx, key, Some(ticket_id), done.comment_id, "inbound", &held).await?;
    let done = IngestOutcome {
        reason: (!notes.is_empty()).then(|| notes.join("; ")),
        attachment_ids,
        ..done
    };
    record(&tx, route, Some(inbound), Some(key), &done).await?;
    tx.commit().await?;
    Ok(done)
}

/// A delivery report: it counts only when it came back to the signed return path of a mail
/// Docket sent from this organisation, and then marks that mail's recipient as bouncing when
/// the report's status part says its delivery failed.
async fn bounce(
    tx: &TenantTx,
    mailroom: &Mailroom,
    inbound: &Inbound,
    failed: &[String],
) -> Result<(Outcome, String)> {
    let sent = inbound
        .recipients
        .iter()
        .find_map(|a| mailroom.keys.verify_return_path(tx.org_id(), a));
    let Some(mail_id) = sent else {
        return Ok((
            Outcome::Suppressed,
            "a delivery report that is not about a mail Docket sent here: nothing marked".into(),
        ));
    };
    let Some(recipient) = mail::recipient_of(tx, mail_id).await? else {
        return Ok((
            Outcome::Suppressed,
            "a delivery report about a mail no longer kept: nothing marked".into(),
        ));
    };
    if !failed.contains(&recipient) {
        return Ok((
            Outcome::Suppressed,
            "a delivery report that does not say the mail failed: nothing marked".into(),
        ));
    }
    let reason = format!("delivery of a mail to {recipient} failed");
    bounces::mark(tx, &recipient, &reason).await?;
    Ok((Outcome::Bounce, format!("{recipient} marked as bouncing")))
}

async fn seen(tx: &TenantTx, key: &str) -> Result<Option<message::Model>> {
    Ok(tx
        .find::<message::Entity>()
        .filter(message::Column::MessageId.eq(key))
        .one(tx.conn())
        .await?)
}

async fn duplicate(
    tx: &TenantTx,
    route: Route,
    inbound: &Inbound,
    key: &str,
) -> Result<IngestOutcome> {
    let earlier = seen(tx, key).await?;
    let done = IngestOutcome {
        outcome: Outcome::Duplicate,
        ticket_id: earlier.as_ref().and_then(|m| m.ticket_id),
        comment_id: earlier.and_then(|m| m.comment_id),
        reason: Some("this message was received before".to_owned()),
        attachment_ids: Vec::new(),
    };
    record(tx, route, Some(inbound), Some(key), &done).await?;
    Ok(done)
}

/// Stores a message id with what it made (and the addresses it copied in that were held back);
/// a second insert of the same id is the race's loser.
pub(super) async fn remember(
    tx: &TenantTx,
    message_id: &str,
    ticket_id: Option<Uuid>,
    comment_id: Option<Uuid>,
    direction: &str,
    held: &[String],
) -> Result<()> {
    let inserted = message::Entity::insert(message::ActiveModel {
        org_id: Set(tx.org_id()),
        message_id: Set(message_id.to_owned()),
        ticket_id: Set(ticket_id),
        comment_id: Set(comment_id),
        direction: Set(direction.to_owned()),
        created_at: Set(Utc::now()),
        held_participants: Set((!held.is_empty()).then(|| serde_json::json!(held))),
        body_purged_at: Set(None),
    })
    .exec_without_returning(tx.conn())
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(err) if is_unique_violation(&err) => Err(Error::conflict(
            "duplicate_message",
            "this message was received before",
        )),
        Err(err) => Err(err.into()),
    }
}

/// Writes the ingest log line of a message and what became of it.
async fn record(
    tx: &TenantTx,
    route: Route,
    inbound: Option<&Inbound>,
    key: Option<&str>,
    done: &IngestOutcome,
) -> Result<()> {
    log_entity::ActiveModel {
        org_id: Set(tx.org_id()),
        id: Set(Uuid::now_v7()),
        route: Set(route.as_str().to_owned()),
        message_id: Set(key.map(str::to_owned)),
        sender: Set(inbound.map(|m| m.from_address.clone())),
        subject: Set(inbound.map(|m| m.subject.clone())),
        outcome: Set(done.outcome.as_str().to_owned()),
        reason: Set(done.reason.clone()),
        ticket_id: Set(done.ticket_id),
        created_at: Set(Utc::now()),
    }
    .insert(tx.conn())
    .await?;
    Ok(())
}

/// Who wrote: their account and role here.
struct Sender {
    user_id: Uuid,
    role: Role,
    address: String,
    name: Option<String>,
}

/// Who wrote, as this organisation knows them: one of its members with that address (a
/// deactivated one may not write in), else its contact with that address, else a new contact,
/// named as the mail names them, who joins as a requester. An account of another organisation
/// is never looked at (it would show that the address has an account, and under which name,
/// and make its owner a member here): linking a contact to an account is the person's own
/// step (`contacts`).
async fn sender_account(tx: &TenantTx, inbound: &Inbound) -> Result<Sender> {
    // Accounts hold one spelling of each address.
    let address =
        identity::canonical_email(&inbound.from_address).unwrap_or(inbound.from_address.clone());
    let account = identity::user_ids_by_emails(tx.conn(), vec![address.clone()])
        .await?
        .first()
        .copied();
    let member = match account {
        Some(id) => tenancy::membership_of(tx, id).await?.map(|m| (id, m)),
        None => None,
    };
    let (user_id, membership) = match member {
        Some((id, m)) => (id, Some(m)),
        None => match identity::contact_id(tx.conn(), tx.org_id(), &address).await? {
            Some(id) => (id, tenancy::membership_of(tx, id).await?),
            None => {
                let name = inbound
                    .from_name
                    .clone()
                    .unwrap_or_else(|| address.split('@').next().unwrap_or_default().to_owned());
                let contact = identity::create_contact(tx.conn(), tx.org_id(), &address, &name);
                (contact.await?.id, None)
            }
        },
    };
    let role = match membership {
        Some((role, true)) => role,
        // Asked before adding: on PostgreSQL a refused insert would end the transaction.
        Some((_, false)) => {
            return Err(Error::forbidden(
                "the sender is a deactivated member of this organization",
            ));
        }
        None => {
            tenancy::add_member(tx, user_id, Role::Requester).await?;
            Role::Requester
        }
    };
    Ok(Sender {
        user_id,
        role,
        address,
        name: inbound.from_name.clone(),
    })
}

/// The ticket a message continues, and (when none) a ticket its subject named that the sender
/// may not write into.
async fn thread_of(
    tx: &TenantTx,
    mailroom: &Mailroom,
    inbound: &Inbound,
    sender: &Sender,
) -> Result<(Option<Uuid>, Option<String>)> {
    let live = |id: Uuid| tickets::live(tx, id);
    // 1. Docket's signed reference.
    let signed = inbound
        .parents
        .iter()
        .filter_map(|id| parse::id_reference(id))
        .chain(
            inbound
                .recipients
                .iter()
                .filter_map(|a| parse::plus_reference(a)),
        )
        .find_map(|r| mailroom.keys.verify_ticket_reference(tx.org_id(), r));
    if let Some(id) = signed
        && let Some(id) = live(id).await?
    {
        return Ok((Some(id), None));
    }
    // 2. A message id Docket stored.
    if !inbound.parents.is_empty() {
        let known = tx
            .find::<message::Entity>()
            .filter(message::Column::MessageId.is_in(inbound.parents.iter().cloned()))
            .filter(message::Column::TicketId.is_not_null())
            .order_by_desc(message::Column::CreatedAt)
            .all(tx.conn())
            .await?;
        for m in known {
            if let Some(id) = m.ticket_id
                && let Some(id) = live(id).await?
            {
                return Ok((Some(id), None));
            }
        }
    }
    // 3. The subject's tag, for its requester and participants only.
    if let Some(tag) = parse::subject_tag(&inbound.subject)
        && let Some(id) = tickets::id_of(tx, &tag).await?
        && let Some(id) = tickets::live(tx, id).await?
        && let Some(t) = tickets::summary(tx, id).await?
    {
        let participant = tx
            .find::<thread::Entity>()
            .filter(thread::Column::TicketId.eq(id))
            .one(tx.conn())
            .await?
            .is_some_and(|th| participants(&th).contains(&sender.address));
        if t.requester_id == Some(sender.user_id) || participant {
            return Ok((Some(id), None));
        }
        return Ok((None, Some(tag)));
    }
    Ok((None, None))
}

fn participants(th: &thread::Model) -> Vec<String> {
    serde_json::from_value(th.participants.clone()).unwrap_or_default()
}

/// Records the message's stored files on the ticket or comment it made, as its sender; past
/// the organisation's quota they are left out, with a note.
async fn attach(
    tx: &TenantTx,
    mailroom: &Mailroom,
    sender: &Sender,
    done: &IngestOutcome,
    files: &MailFiles,
    notes: &mut Vec<String>,
) -> Result<Vec<Uuid>> {
    let Some(ticket_id) = done.ticket_id else {
        return Ok(Vec::new());
    };
    if files.stored.is_empty() {
        return Ok(Vec::new());
    }
    let requester = tickets::summary(tx, ticket_id)
        .await?
        .and_then(|t| t.requester_id);
    let ctx = acting(tx, sender, requester);
    let added = attachments::add(
        tx,
        &ctx,
        &mailroom.files,
        &ticket_id.to_string(),
        done.comment_id,
        false,
        files.stored.clone(),
    )
    .await;
    match added {
        Ok(added) => Ok(added.into_iter().map(|a| a.id).collect()),
        Err(Error::TooLarge { detail, .. }) => {
            notes.push(format!("attachments not kept: {detail}"));
            Ok(Vec::new())
        }
        Err(err) => Err(err),
    }
}

/// The sender's context for writing into a ticket. A customer whom the thread (not their
/// role) lets in, being copied in on someone else's ticket, writes that one comment with an
/// agent's reach; staff write as their role allows (a viewer's mail is refused like any other
/// write of theirs).
fn acting(tx: &TenantTx, sender: &Sender, requester: Option<Uuid>) -> TenantCtx {
    let role = if sender.role == Role::Requester && requester != Some(sender.user_id) {
        Role::Agent
    } else {
        sender.role
    };
    TenantCtx::authenticated(tx.org_id(), sender.user_id, role, None)
}

fn body_of(inbound: &Inbound) -> String {
    if inbound.text.trim().is_empty() {
        "(this mail had no text)".to_owned()
    } else {
        inbound.text.clone()
    }
}

async fn reply(tx: &TenantTx, ticket_id: Uuid, sender: &Sender, inbound: &Inbound) -> Result<Uuid> {
    let requester = tickets::summary(tx, ticket_id)
        .await?
        .and_then(|t| t.requester_id);
    let ctx = acting(tx, sender, requester);
    let comment = comments::create(
        tx,
        &ctx,
        &ticket_id.to_string(),
        NewComment {
            body: body_of(inbound),
            internal: false,
            attachment_ids: Vec::new(),
        },
    )
    .await?;
    Ok(comment.id)
}

/// A title from a subject: reply and forward prefixes dropped, cut to a title's length (the
/// whole subject stays in the ingest log).
fn title_of(subject: &str) -> String {
    let mut t = subject.trim();
    loop {
        let lower = t.to_lowercase();
        let Some(prefix) = ["re:", "fw:", "fwd:", "aw:", "wg:", "tr:"]
            .into_iter()
            .find(|p| lower.starts_with(p))
        else {
            break;
        };
        t = t[prefix.len()..].trim_start();
    }
    if t.is_empty() {
        "(no subject)".to_owned()
    } else {
        t.chars()
            .take(crate::text::MAX_LINE)
            .collect::<String>()
            .trim_end()
            .to_owned()
    }
}

/// Files a new ticket for the sender. A possible follow-up is labelled `follow-up:<KEY-N>` (the
/// sender named that key themselves, so the label tells them nothing new), which Docket sets
/// on their behalf.
async fn open_ticket(
    tx: &TenantTx,
    mail_settings: &settings::entity::Model,
    sender: &Sender,
    inbound: &Inbound,
    follow_up: Option<&str>,
) -> Result<Uuid> {
    let project_id = inbound_project(tx, mail_settings).await?;
    let labels: Vec<String> = follow_up
        .map(|k| format!("follow-up:{k}"))
        .into_iter()
        .collect();
    // Docket sets the label for a customer, who could not label a ticket themselves.
    let role = if !labels.is_empty() && sender.role == Role::Requester {
        Role::Agent
    } else {
        sender.role
    };
    let ctx = TenantCtx::authenticated(tx.org_id(), sender.user_id, role, None);
    let text = body_of(inbound);
    let ticket = tickets::create(
        tx,
        &ctx,
        NewTicket {
            project_id,
            title: title_of(&inbound.subject),
            description: Some(text),
            priority: None,
            assignee_ids: Vec::new(),
            requester_id: None,
            labels,
            due_at: None,
            parent_id: None,
        },
    )
    .await?;
    Ok(ticket.id)
}

/// The project inbound mail files into: the configured one, else `MAIL` (made on first use).
async fn inbound_project(tx: &TenantTx, s: &settings::entity::Model) -> Result<Uuid> {
    if let Some(id) = s.inbound_project_id {
        return Ok(id);
    }
    if let Some(p) = projects::find_by_key(tx, INBOUND_PROJECT_KEY).await? {
        return Ok(p.id);
    }
    let project = projects::create(
        tx,
        &system_ctx(tx.org_id()),
        NewProject {
            name: "Mail".into(),
            key: INBOUND_PROJECT_KEY.into(),
            description: Some("Tickets that arrived by mail.".into()),
            ..Default::default()
        },
    )
    .await?;
    let mut s = s.clone().into_active_model();
    s.inbound_project_id = Set(Some(project.id));
    s.update(tx.conn()).await?;
    Ok(project.id)
}

/// Records who takes part in the ticket's mail thread and where it stands, and returns the
/// addresses the mail copied in that it did not add: all of them when the mail is not
/// authenticated (a forged From could otherwise copy a stranger into the customer's
/// conversation), and past [`MAX_NEW_PARTICIPANTS`] when it is.
async fn keep_thread(
    tx: &TenantTx,
    mailroom: &Mailroom,
    ticket_id: Uuid,
    sender: &Sender,
    inbound: &Inbound,
    authenticated: bool,
) -> Result<Vec<String>> {
    let existing = tx
        .find::<thread::Entity>()
        .filter(thread::Column::TicketId.eq(ticket_id))
        .one(tx.conn())
        .await?;
    let requester = tickets::summary(tx, ticket_id)
        .await?
        .and_then(|t| t.requester_id);
    let mut people = existing.as_ref().map(participants).unwrap_or_default();
    let mut known: std::collections::HashSet<String> = people.iter().cloned().collect();
    // The requester is mailed as such; the people copied in (and a sender who is not the
    // requester) take part. `To` names the helpdesk itself, so it is left out.
    let own = format!("@{}", mailroom.own_domain());
    let mut newcomers: Vec<&String> = Vec::new();
    if requester != Some(sender.user_id) {
        newcomers.push(&sender.address);
    }
    newcomers.extend(&inbound.cc);
    let sender_is_requester = requester == Some(sender.user_id);
    let (mut added, mut held) = (0, Vec::new());
    for a in newcomers {
        let ours = a.ends_with(&own) || (sender_is_requester && *a == sender.address);
        if ours || !known.insert(a.clone()) {
            continue;
        }
        if authenticated && added < MAX_NEW_PARTICIPANTS {
            people.push(a.clone());
            added += 1;
        } else {
            held.push(a.clone());
        }
    }
    if sender_is_requester {
        people.retain(|a| *a != sender.address);
    }
    let mut references: Vec<String> = existing
        .as_ref()
        .map(|t| t.references.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_else(|| inbound.references.clone());
    if let Some(id) = &inbound.message_id
        && !references.contains(id)
    {
        references.push(id.clone());
    }
    // Long threads keep their first and latest ids (RFC 5322 suggests trimming the middle).
    if references.len() > 20 {
        let first = references[0].clone();
        references.drain(..references.len() - 19);
        references.insert(0, first);
    }
    let row = thread::ActiveModel {
        org_id: Set(tx.org_id()),
        ticket_id: Set(ticket_id),
        participants: Set(serde_json::json!(people)),
        last_message_id: Set(inbound.message_id.clone()),
        references: Set(references.join(" ")),
    };
    thread::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([thread::Column::OrgId, thread::Column::TicketId])
                .update_columns([
                    thread::Column::Participants,
                    thread::Column::LastMessageId,
                    thread::Column::References,
                ])
                .to_owned(),
        )
        .exec_without_returning(tx.conn())
        .await?;
    Ok(held)
}

/// Mails the acknowledgement of a new ticket (the organisation wants it and the sender is
/// authenticated: an acknowledgement to a forged From would be backscatter) unless the sender
/// is bouncing or has had too many automatic mails today.
async fn acknowledge(
    tx: &TenantTx,
    mailroom: &Mailroom,
    ticket_id: Uuid,
    sender: &Sender,
    inbound: &Inbound,
) -> Result<()> {
    if !bounces::bouncing(tx, std::slice::from_ref(&sender.address))
        .await?
        .is_empty()
        || mail::sent_today(tx, mail::Kind::Acknowledgement, &sender.address).await?
            >= u64::from(mailroom.auto_replies_per_day)
    {
        return Ok(());
    }
    let Some(ticket) = tickets::summary(tx, ticket_id).await? else {
        return Ok(());
    };
    let org = tenancy::organization(tx).await?;
    let message_id = mailroom.message_id(tx.org_id(), ticket_id, Uuid::now_v7());
    let mut references = inbound.references.clone();
    references.extend(inbound.message_id.clone());
    mail::enqueue(
        tx,
        Outgoing {
            kind: mail::Kind::Acknowledgement,
            to: sender.address.clone(),
            to_user_id: Some(sender.user_id),
            params: serde_json::json!({
                "key": ticket.key,
                "title": ticket.title,
                "name": sender.name,
                "organization": org.name,
            }),
            automatic: true,
            thread: Some(Thread {
                message_id: message_id.clone(),
                in_reply_to: inbound.message_id.clone(),
                references,
                reply_to: Some(mailroom.reply_address(tx.org_id(), ticket_id)),
            }),
        },
    )
    .await?;
    remember(tx, &message_id, Some(ticket_id), None, "outbound", &[]).await
}

/// Ingest log lines are kept this long.
const KEEP_LOG: chrono::Duration = chrono::Duration::days(90);

/// Drops ingest log lines past their retention (the message ids stay: they keep duplicates
/// out).
pub async fn purge_old_log(db: &Db) -> Result<u64> {
    Ok(db
        .purge::<log_entity::Entity>(
            sea_orm::Condition::all().add(log_entity::Column::CreatedAt.lt(Utc::now() - KEEP_LOG)),
        )
        .await?)
}

/// The organisation's ingest log, newest first (admins).
pub async fn ingest_log(
    db: &Db,
    ctx: &TenantCtx,
    filter: IngestLogFilter,
    page: PageRequest,
) -> Result<Page<IngestLogEntry>> {
    access::authorize(ctx, Action::MailManage)?;
    let tx = db.read(ctx).await?;
    let mut query = tx.newest_first::<log_entity::Entity>(log_entity::Column::Id, &page)?;
    if let Some(outcome) = filter.outcome {
        query = query.filter(log_entity::Column::Outcome.eq(outcome.as_str()));
    }
    let rows = query.all(tx.conn()).await?;
    tx.commit().await?;
    Page::try_from_rows(
        rows,
        page.limit,
        |m| m.id,
        |m| {
            Ok(IngestLogEntry {
                id: m.id,
                route: match m.route.as_str() {
                    "command" => Route::Command,
                    "imap" => Route::Imap,
                    _ => Route::Http,
                },
                message_id: m.message_id,
                sender: m.sender,
                subject: m.subject,
                outcome: Outcome::parse(&m.outcome)?,
                reason: m.reason,
                ticket_id: m.ticket_id,
                created_at: m.created_at,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_drop_reply_prefixes() {
        assert_eq!(title_of("Re: Fwd: RE: Printer"), "Printer");
        assert_eq!(title_of("  "), "(no subject)");
        assert_eq!(title_of("Reboot needed"), "Reboot needed");
        assert_eq!(
            title_of(&"é".repeat(250)).chars().count(),
            crate::text::MAX_LINE
        );
    }
}
