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
    Mailroom,
    entity::{bounce, message, thread},
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
    /// Unreadable, or from a sender who may not write in.
    Rejected,
}

impl Outcome {
    const ALL: [Outcome; 6] = [
        Outcome::TicketCreated,
        Outcome::CommentAdded,
        Outcome::Duplicate,
        Outcome::Suppressed,
        Outcome::Bounce,
        Outcome::Rejected,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Outcome::TicketCreated => "ticket_created",
            Outcome::CommentAdded => "comment_added",
            Outcome::Duplicate => "duplicate",
            Outcome::Suppressed => "suppressed",
            Outcome::Bounce => "bounce",
            Outcome::Rejected => "rejected",
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
fn dedup_key(inbound: &Inbound, raw: &[u8]) -> String {
    inbound
        .message_id
        .clone()
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(raw))))
}

/// Takes one raw message for organisation `org_id`.
pub async fn ingest(
    db: &Db,
    mailroom: &Mailroom,
    org_id: Uuid,
    route: Route,
    raw: &[u8],
) -> Result<IngestOutcome> {
    if raw.len() > mailroom.max_email_bytes {
        return Err(Error::too_large(format!(
            "the message is larger than {} bytes (DOCKET_MAX_EMAIL_BYTES)",
            mailroom.max_email_bytes
        )));
    }
    let inbound = match parse::parse(raw, &mailroom.own_address) {
        Ok(m) => m,
        Err(err) => {
            let tx = db.write_org(org_id).await?;
            let refused = IngestOutcome::without_ticket(Outcome::Rejected, err.to_string());
            record(&tx, route, None, None, &refused).await?;
            tx.commit().await?;
            return Err(err);
        }
    };
    let key = dedup_key(&inbound, raw);
    let files = keep_files(&mailroom.files, org_id, &inbound).await?;
    let done = take_once(db, mailroom, org_id, route, &inbound, &key, &files).await;
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
        let outcome = if inbound.bounced.is_empty() {
            Outcome::Suppressed
        } else {
            for address in &inbound.bounced {
                mark_bouncing(&tx, address, reason).await?;
            }
            Outcome::Bounce
        };
        remember(&tx, key, None, None, "inbound").await?;
        let reason = match outcome {
            Outcome::Bounce => format!(
                "{reason}: {} marked as bouncing",
                inbound.bounced.join(", ")
            ),
            _ => reason.clone(),
        };
        let done = IngestOutcome::without_ticket(outcome, reason);
        record(&tx, route, Some(inbound), Some(key), &done).await?;
        tx.commit().await?;
        return Ok(done);
    }

    let sender = match sender_account(&tx, inbound).await {
        Ok(sender) => sender,
        Err(Error::Forbidden { detail, .. }) => {
            remember(&tx, key, None, None, "inbound").await?;
            let done = IngestOutcome::without_ticket(Outcome::Rejected, detail);
            record(&tx, route, Some(inbound), Some(key), &done).await?;
            tx.commit().await?;
            return Ok(done);
        }
        Err(err) => return Err(err),
    };
    let (found, follow_up) = thread_of(&tx, mailroom, inbound, &sender).await?;
    let mut notes = files.notes.clone();
    let done = match found {
        Some(ticket_id) => {
            let comment_id = reply(&tx, ticket_id, &sender, inbound).await?;
            remember(&tx, key, Some(ticket_id), Some(comment_id), "inbound").await?;
            IngestOutcome {
                outcome: Outcome::CommentAdded,
                ticket_id: Some(ticket_id),
                comment_id: Some(comment_id),
                reason: None,
                attachment_ids: Vec::new(),
            }
        }
        None => {
            let ticket_id = open_ticket(&tx, &sender, inbound, follow_up.as_deref()).await?;
            remember(&tx, key, Some(ticket_id), None, "inbound").await?;
            if let Some(earlier) = &follow_up {
                notes.push(format!("possible follow-up to {earlier}"));
            }
            acknowledge(&tx, mailroom, ticket_id, &sender, inbound).await?;
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
    keep_thread(&tx, mailroom, ticket_id, &sender, inbound).await?;
    let done = IngestOutcome {
        reason: (!notes.is_empty()).then(|| notes.join("; ")),
        attachment_ids,
        ..done
    };
    record(&tx, route, Some(inbound), Some(key), &done).await?;
    tx.commit().await?;
    Ok(done)
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

/// Stores a message id with what it made; a second insert of the same id is the race's loser.
pub(super) async fn remember(
    tx: &TenantTx,
    message_id: &str,
    ticket_id: Option<Uuid>,
    comment_id: Option<Uuid>,
    direction: &str,
) -> Result<()> {
    let inserted = message::Entity::insert(message::ActiveModel {
        org_id: Set(tx.org_id()),
        message_id: Set(message_id.to_owned()),
        ticket_id: Set(ticket_id),
        comment_id: Set(comment_id),
        direction: Set(direction.to_owned()),
        created_at: Set(Utc::now()),
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

async fn mark_bouncing(tx: &TenantTx, address: &str, reason: &str) -> Result<()> {
    bounce::Entity::insert(bounce::ActiveModel {
        org_id: Set(tx.org_id()),
        address: Set(address.to_owned()),
        reason: Set(Some(reason.to_owned())),
        bounced_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::columns([bounce::Column::OrgId, bounce::Column::Address])
            .update_columns([bounce::Column::Reason, bounce::Column::BouncedAt])
            .to_owned(),
    )
    .exec_without_returning(tx.conn())
    .await?;
    Ok(())
}

/// The addresses among `addresses` that bounced.
pub(super) async fn bouncing(tx: &TenantTx, addresses: &[String]) -> Result<Vec<String>> {
    Ok(tx
        .find::<bounce::Entity>()
        .filter(bounce::Column::Address.is_in(addresses.iter().cloned()))
        .all(tx.conn())
        .await?
        .into_iter()
        .map(|b| b.address)
        .collect())
}

/// Who wrote: their account and role here.
struct Sender {
    user_id: Uuid,
    role: Role,
    address: String,
    name: Option<String>,
}

/// The sender's account and membership: an unknown address becomes a requester account
/// without a password (claimed by resetting it); a known one joins as a requester.
async fn sender_account(tx: &TenantTx, inbound: &Inbound) -> Result<Sender> {
    // Accounts hold one spelling of each address.
    let address =
        identity::canonical_email(&inbound.from_address).unwrap_or(inbound.from_address.clone());
    let user_id = match identity::user_ids_by_emails(tx.conn(), vec![address.clone()])
        .await?
        .first()
    {
        Some(id) => *id,
        None => {
            let name = inbound
                .from_name
                .clone()
                .unwrap_or_else(|| address.split('@').next().unwrap_or_default().to_owned());
            identity::create_passwordless_user(tx.conn(), &address, &name)
                .await?
                .id
        }
    };
    let role = match tenancy::active_role(tx, user_id).await? {
        Some(role) => role,
        None => match tenancy::add_member(tx, user_id, Role::Requester).await {
            Ok(()) => Role::Requester,
            Err(Error::Conflict { .. }) => {
                return Err(Error::forbidden(
                    "the sender is a deactivated member of this organization",
                ));
            }
            Err(err) => return Err(err),
        },
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
    let live = |id: Uuid| async move {
        Ok::<_, Error>(
            tickets::summary(tx, id)
                .await?
                .filter(|t| !t.deleted)
                .map(|_| id),
        )
    };
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
        && let Some(t) = tickets::summary(tx, id).await?.filter(|t| !t.deleted)
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

/// The sender's context for writing into `ticket_id`: their own, widened for the one write
/// when the thread (not their role) is what lets them in.
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

fn acting(tx: &TenantTx, sender: &Sender, requester: Option<Uuid>) -> TenantCtx {
    let role = if requester == Some(sender.user_id) {
        sender.role
    } else {
        sender.role.max_with(Role::Agent)
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

/// A title from a subject: reply and forward prefixes dropped.
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
        t.to_owned()
    }
}

/// Files a new ticket for the sender. A possible follow-up is labelled `follow-up:<KEY-N>` (the
/// sender named that key themselves, so the label tells them nothing new), which Docket sets
/// on their behalf.
async fn open_ticket(
    tx: &TenantTx,
    sender: &Sender,
    inbound: &Inbound,
    follow_up: Option<&str>,
) -> Result<Uuid> {
    let project_id = inbound_project(tx).await?;
    let labels: Vec<String> = follow_up
        .map(|k| format!("follow-up:{k}"))
        .into_iter()
        .collect();
    let role = if labels.is_empty() {
        sender.role
    } else {
        sender.role.max_with(Role::Agent)
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
        },
    )
    .await?;
    Ok(ticket.id)
}

/// The project inbound mail files into: the configured one, else `MAIL` (made on first use).
async fn inbound_project(tx: &TenantTx) -> Result<Uuid> {
    let s = settings::load(tx).await?;
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
        },
    )
    .await?;
    let mut s = s.into_active_model();
    s.inbound_project_id = Set(Some(project.id));
    s.update(tx.conn()).await?;
    Ok(project.id)
}

/// Records who takes part in the ticket's mail thread and where it stands.
async fn keep_thread(
    tx: &TenantTx,
    mailroom: &Mailroom,
    ticket_id: Uuid,
    sender: &Sender,
    inbound: &Inbound,
) -> Result<()> {
    let existing = tx
        .find::<thread::Entity>()
        .filter(thread::Column::TicketId.eq(ticket_id))
        .one(tx.conn())
        .await?;
    let requester = tickets::summary(tx, ticket_id)
        .await?
        .and_then(|t| t.requester_id);
    let mut people = existing.as_ref().map(participants).unwrap_or_default();
    // The requester is mailed as such; the people copied in (and a sender who is not the
    // requester) take part. `To` names the helpdesk itself, so it is left out.
    let mut newcomers = inbound.cc.clone();
    if requester != Some(sender.user_id) {
        newcomers.push(sender.address.clone());
    }
    let own = format!("@{}", mailroom.own_domain());
    for a in newcomers {
        if !people.contains(&a) && !a.ends_with(&own) {
            people.push(a);
        }
    }
    if requester == Some(sender.user_id) {
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
    Ok(())
}

/// Mails the acknowledgement of a new ticket when the organisation wants it, the sender is not
/// bouncing and has not had too many automatic mails today.
async fn acknowledge(
    tx: &TenantTx,
    mailroom: &Mailroom,
    ticket_id: Uuid,
    sender: &Sender,
    inbound: &Inbound,
) -> Result<()> {
    if !settings::load(tx).await?.acknowledge
        || !bouncing(tx, std::slice::from_ref(&sender.address))
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
    remember(tx, &message_id, Some(ticket_id), None, "outbound").await
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
    }
}
