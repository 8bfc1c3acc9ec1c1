//! Outgoing mail: the queue every module writes mails into (inside its own transaction, so a
//! mail exists exactly when the change that causes it does), the templates, and the sender that
//! delivers queued mails over SMTP from the background worker, never inside a request.
//!
//! - Rows live in `mails`, each with its own retry schedule: a slow or failing SMTP server
//!   delays mail only, never a write or another handler.
//! - Without `DOCKET_SMTP_URL` mail is off: the sender records each mail as `not_sent`.
//! - Mails about an account rather than an organisation (password resets) belong to the
//!   system tenant ([`SYSTEM_ORG`]), which no organisation's admin can list.
//! - Links carry single-use tokens: the queue keeps a mail's parameters only until it is sent
//!   or given up, then erases those of [`Kind::carries_secret`] kinds.

mod deliver;
pub mod keys;
mod templates;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    access::{self, Action, TenantCtx},
    error::{Error, Result},
    pagination::{Page, PageRequest},
    store::{Db, TenantTx},
};
pub use deliver::{Sender, drain, forget_sent_before, probe_smtp, purge_sent, run};
pub use keys::MailKeys;

/// The tenant of mails about an account (not an organisation): no organisation has this id.
pub const SYSTEM_ORG: Uuid = Uuid::nil();

pub(crate) mod entity {
    crate::store::tenant_entity!("mails" {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        kind: String,
        to_address: String,
        to_user_id: Option<Uuid>,
        #[sea_orm(column_type = "Text")]
        subject: String,
        params: Json,
        automatic: bool,
        status: String,
        attempts: i32,
        available_at: DateTimeUtc,
        locked_until: Option<DateTimeUtc>,
        #[sea_orm(column_type = "Text", nullable)]
        last_response: Option<String>,
        created_at: DateTimeUtc,
        sent_at: Option<DateTimeUtc>,
    });
}

/// What a mail is; each kind has its templates (`src/mail/templates/<kind>.{subject,txt,html}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = MailKind)]
pub enum Kind {
    Invitation,
    PasswordReset,
    Notification,
    Digest,
    TicketReply,
    Acknowledgement,
    SignupConfirmation,
    ContactLink,
    OrganizationDeletion,
    ExportReady,
    PaymentFailed,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Invitation,
        Kind::PasswordReset,
        Kind::Notification,
        Kind::Digest,
        Kind::TicketReply,
        Kind::Acknowledgement,
        Kind::SignupConfirmation,
        Kind::ContactLink,
        Kind::OrganizationDeletion,
        Kind::ExportReady,
        Kind::PaymentFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Invitation => "invitation",
            Kind::PasswordReset => "password_reset",
            Kind::Notification => "notification",
            Kind::Digest => "digest",
            Kind::TicketReply => "ticket_reply",
            Kind::Acknowledgement => "acknowledgement",
            Kind::SignupConfirmation => "signup_confirmation",
            Kind::ContactLink => "contact_link",
            Kind::OrganizationDeletion => "organization_deletion",
            Kind::ExportReady => "export_ready",
            Kind::PaymentFailed => "payment_failed",
        }
    }

    fn parse(stored: &str) -> Result<Self> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == stored)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("mail kind {stored:?}")))
    }

    /// Mails whose link is a credential: their parameters are erased once handled.
    pub fn carries_secret(self) -> bool {
        matches!(
            self,
            Kind::Invitation | Kind::PasswordReset | Kind::SignupConfirmation | Kind::ContactLink
        )
    }
}

/// Where a mail stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = MailStatus)]
pub enum Status {
    /// Waiting to be sent (or to be retried, after `available_at`).
    Queued,
    /// Being sent by a worker now.
    Sending,
    Sent,
    /// Given up after repeated failures, or refused for good by the server.
    Failed,
    /// Mail is off (no `DOCKET_SMTP_URL`): recorded, never sent.
    NotSent,
}

impl Status {
    const ALL: [Status; 5] = [
        Status::Queued,
        Status::Sending,
        Status::Sent,
        Status::Failed,
        Status::NotSent,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::NotSent => "not_sent",
        }
    }

    fn parse(stored: &str) -> Result<Self> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str() == stored)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("mail status {stored:?}")))
    }
}

/// Threading headers of a conversation mail.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    /// Without angle brackets.
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// Where replies go (a `reply+…@` address).
    pub reply_to: Option<String>,
}

/// A mail to queue.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub kind: Kind,
    pub to: String,
    pub to_user_id: Option<Uuid>,
    /// The template's values.
    pub params: Value,
    /// Sent by Docket on its own (not a person's reply): `Auto-Submitted: auto-generated`.
    pub automatic: bool,
    pub thread: Option<Thread>,
}

/// Replaces an erased person's address in the organisation's mail log (and cancels what was
/// still to be sent to them).
pub(crate) async fn scrub_recipient(tx: &TenantTx, traces: &crate::text::Traces) -> Result<u64> {
    use sea_orm::sea_query::ExprTrait as _;
    let sent = tx
        .update_many::<entity::Entity>()
        .col_expr(
            entity::Column::ToAddress,
            traces.tombstone.address.clone().into(),
        )
        .col_expr(entity::Column::Params, serde_json::json!({}).into())
        .filter(
            sea_orm::sea_query::Expr::expr(sea_orm::sea_query::Func::lower(
                sea_orm::sea_query::Expr::col(entity::Column::ToAddress),
            ))
            .is_in(traces.addresses.iter().cloned()),
        )
        .exec(tx.conn())
        .await?;
    tx.update_many::<entity::Entity>()
        .col_expr(entity::Column::Status, Status::Failed.as_str().into())
        .filter(entity::Column::ToAddress.eq(traces.tombstone.address.clone()))
        .filter(entity::Column::Status.is_in([Status::Queued.as_str(), Status::Sending.as_str()]))
        .exec(tx.conn())
        .await?;
    Ok(sent.rows_affected)
}

/// Queues a mail in the caller's transaction; the worker sends it after commit.
pub(crate) async fn enqueue(tx: &TenantTx, mail: Outgoing) -> Result<Uuid> {
    let row = queued(tx, mail)?;
    let id = row.id;
    entity::Entity::insert(entity::ActiveModel::from(row))
        .exec_without_returning(tx.conn())
        .await?;
    tx.wrote_mail();
    Ok(id)
}

/// Queues mails in one statement, in the caller's transaction.
pub(crate) async fn enqueue_all(tx: &TenantTx, mails: Vec<Outgoing>) -> Result<()> {
    if mails.is_empty() {
        return Ok(());
    }
    let rows = mails
        .into_iter()
        .map(|mail| queued(tx, mail).map(entity::ActiveModel::from))
        .collect::<Result<Vec<_>>>()?;
    entity::Entity::insert_many(rows)
        .exec_without_returning(tx.conn())
        .await?;
    tx.wrote_mail();
    Ok(())
}

/// The queued row of a mail: its subject rendered, its thread kept with its parameters.
fn queued(tx: &TenantTx, mail: Outgoing) -> Result<entity::Model> {
    let subject = templates::subject(mail.kind, &mail.params)?;
    let mut params = mail.params;
    if let (Some(thread), Value::Object(fields)) = (&mail.thread, &mut params) {
        fields.insert(
            "_thread".into(),
            serde_json::to_value(thread).map_err(Error::internal)?,
        );
    }
    let now = Utc::now();
    Ok(entity::Model {
        org_id: tx.org_id(),
        id: Uuid::now_v7(),
        kind: mail.kind.as_str().to_owned(),
        to_address: mail.to,
        to_user_id: mail.to_user_id,
        subject,
        params,
        automatic: mail.automatic,
        status: Status::Queued.as_str().to_owned(),
        attempts: 0,
        available_at: now,
        locked_until: None,
        last_response: None,
        created_at: now,
        sent_at: None,
    })
}

/// How many mails of `kind` went to `address` in the last day (for the per-sender limit of
/// automatic answers).
pub(crate) async fn sent_today(tx: &TenantTx, kind: Kind, address: &str) -> Result<u64> {
    queued_since(
        tx,
        kind,
        Some(address),
        Utc::now() - chrono::Duration::days(1),
    )
    .await
}

/// Mails of `kind` the tenant queued since `since` (to `address`, or to anyone).
pub(crate) async fn queued_since(
    tx: &TenantTx,
    kind: Kind,
    address: Option<&str>,
    since: DateTime<Utc>,
) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    let mut query = tx
        .find::<entity::Entity>()
        .filter(entity::Column::Kind.eq(kind.as_str()))
        .filter(entity::Column::CreatedAt.gt(since));
    if let Some(address) = address {
        query = query.filter(entity::Column::ToAddress.eq(address));
    }
    Ok(query.count(tx.conn()).await?)
}

/// To whom mail `id` of the tenant was sent, while the log keeps it (delivery reports name
/// their mail by its return path).
pub(crate) async fn recipient_of(tx: &TenantTx, id: Uuid) -> Result<Option<String>> {
    Ok(tx
        .find::<entity::Entity>()
        .filter(entity::Column::Id.eq(id))
        .one(tx.conn())
        .await?
        .map(|m| m.to_address.to_lowercase()))
}

/// One line of the mail log.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailLogEntry {
    pub id: Uuid,
    pub kind: Kind,
    pub to: String,
    pub subject: String,
    pub status: Status,
    pub attempts: i32,
    /// The SMTP server's last answer (or why nothing was sent).
    pub last_response: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// When the next attempt is due, while queued.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl TryFrom<entity::Model> for MailLogEntry {
    type Error = Error;
    fn try_from(m: entity::Model) -> Result<Self> {
        let status = Status::parse(&m.status)?;
        Ok(Self {
            id: m.id,
            kind: Kind::parse(&m.kind)?,
            to: m.to_address,
            subject: m.subject,
            status,
            attempts: m.attempts,
            last_response: m.last_response,
            created_at: m.created_at,
            sent_at: m.sent_at,
            next_attempt_at: (status == Status::Queued).then_some(m.available_at),
        })
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MailLogFilter {
    pub status: Option<Status>,
}

/// The organisation's outgoing mails, newest first (admins).
pub async fn log(
    db: &Db,
    ctx: &TenantCtx,
    filter: MailLogFilter,
    page: PageRequest,
) -> Result<Page<MailLogEntry>> {
    access::authorize(ctx, Action::MailManage)?;
    let tx = db.read(ctx).await?;
    let mut query = tx.newest_first::<entity::Entity>(entity::Column::Id, &page)?;
    if let Some(status) = filter.status {
        query = query.filter(entity::Column::Status.eq(status.as_str()));
    }
    let rows = query.all(tx.conn()).await?;
    tx.commit().await?;
    Page::try_from_rows(rows, page.limit, |m| m.id, MailLogEntry::try_from)
}
