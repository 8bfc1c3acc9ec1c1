//! The sender: claims due mails across tenants under a lease, sends each over SMTP, and settles
//! it: sent, retried later with backoff, or failed. Any number of workers may run it (claims
//! use `FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite admits one writer at a time).

use std::time::Duration;

use chrono::Utc;
use lettre::{
    Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    address::Envelope,
    message::{
        Mailbox, MultiPart,
        header::{HeaderName, HeaderValue},
    },
};
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait};
use serde_json::Value;
use tokio::sync::watch;

use super::{Kind, MailKeys, Status, Thread, entity, templates};
use crate::{
    background,
    config::MailConfig,
    error::{Error, Result},
    store::{Db, TenantTx, statement},
};

/// Mails one claim takes.
const BATCH: u64 = 50;
/// A claim lasts this long: a crashed worker's mails are sent by another after it.
const LEASE: Duration = Duration::from_secs(120);
/// Attempts before a mail is given up.
const MAX_ATTEMPTS: i32 = 8;
/// First retry delay; it doubles per attempt, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How often an idle sender looks for due mails (retries that came due, other processes'
/// mails) without a wake-up.
const POLL: Duration = Duration::from_secs(1);
/// Sent mails are kept in the log this long.
const KEEP_SENT: chrono::Duration = chrono::Duration::days(30);

/// The SMTP transport of `DOCKET_SMTP_URL` (none: mail is off).
fn transport(cfg: &MailConfig) -> anyhow::Result<Option<AsyncSmtpTransport<Tokio1Executor>>> {
    cfg.smtp_url
        .as_ref()
        .map(|url| {
            Ok(AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                .map_err(|err| anyhow::anyhow!("DOCKET_SMTP_URL is not usable: {err}"))?
                .timeout(Some(Duration::from_secs(30)))
                .build())
        })
        .transpose()
}

/// Connects to the SMTP server and says EHLO (`docket admin doctor`); false when mail is off.
pub async fn probe_smtp(cfg: &MailConfig) -> anyhow::Result<bool> {
    let Some(transport) = transport(cfg)? else {
        return Ok(false);
    };
    let answered = transport
        .test_connection()
        .await
        .map_err(|err| anyhow::anyhow!("the SMTP server did not answer: {err}"))?;
    anyhow::ensure!(answered, "the SMTP server refused the connection");
    Ok(true)
}

/// What sends: the SMTP transport (none when mail is off), the sender address, the keys that
/// sign each mail's return path and the base of links.
#[derive(Clone)]
pub struct Sender {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    keys: MailKeys,
    public_url: String,
}

impl Sender {
    /// Builds the sender from the settings; says in one log line when mail is off.
    pub fn new(cfg: &MailConfig, keys: MailKeys) -> anyhow::Result<Self> {
        let from: Mailbox = cfg
            .mail_from
            .parse()
            .map_err(|err| anyhow::anyhow!("DOCKET_MAIL_FROM {:?}: {err}", cfg.mail_from))?;
        Ok(Self {
            transport: transport(cfg)?,
            from,
            keys,
            public_url: cfg.public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The envelope of a mail: its return path (`MAIL FROM`) is Docket's address with the
    /// mail's signed reference (VERP, `local+b<mail>-<tag>@domain`), so a delivery report
    /// comes back naming the mail it is about, and one that names no mail Docket sent is not
    /// believed.
    fn envelope(&self, mail: &entity::Model, to: &Mailbox) -> Result<Envelope> {
        let reference = self.keys.return_path_reference(mail.org_id, mail.id);
        let return_path = Address::new(
            format!("{}+{reference}", self.from.email.user()),
            self.from.email.domain(),
        )
        .map_err(|err| Error::internal(anyhow::anyhow!("return path: {err}")))?;
        Envelope::new(Some(return_path), vec![to.email.clone()])
            .map_err(|err| Error::internal(anyhow::anyhow!("envelope: {err}")))
    }

    /// Docket's own address (lower case): mail from it, or marked with it, is its own.
    pub fn address(&self) -> String {
        self.from.email.to_string().to_lowercase()
    }

    pub fn enabled(&self) -> bool {
        self.transport.is_some()
    }

    /// Builds the message of a queued mail, and its envelope.
    fn message(&self, mail: &entity::Model) -> Result<(Envelope, Message)> {
        let kind = Kind::parse(&mail.kind)?;
        let mut params = mail.params.clone();
        let thread: Option<Thread> = params
            .get("_thread")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(Error::internal)?;
        self.add_links(&mut params);
        let (text, html) = templates::bodies(kind, &params)?;
        let to: Mailbox = mail
            .to_address
            .parse()
            .map_err(|err| Error::internal(anyhow::anyhow!("recipient address: {err}")))?;
        let envelope = self.envelope(mail, &to)?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone());
        if let Some(t) = &thread {
            builder = builder.message_id(Some(format!("<{}>", t.message_id)));
            if let Some(parent) = &t.in_reply_to {
                builder = builder.in_reply_to(format!("<{parent}>"));
            }
            if !t.references.is_empty() {
                let refs: Vec<String> = t.references.iter().map(|r| format!("<{r}>")).collect();
                builder = builder.references(refs.join(" "));
            }
            if let Some(reply_to) = &t.reply_to {
                let reply_to: Mailbox = reply_to
                    .parse()
                    .map_err(|err| Error::internal(anyhow::anyhow!("reply-to: {err}")))?;
                builder = builder.reply_to(reply_to);
            }
        } else {
            builder = builder.message_id(None);
        }
        let mut message = builder
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(Error::internal)?;
        let headers = message.headers_mut();
        // Every mail says it came from Docket, so Docket never answers its own mail.
        headers.insert_raw(header("X-Loop", self.from.email.to_string()));
        if mail.automatic {
            headers.insert_raw(header("Auto-Submitted", "auto-generated".into()));
        }
        if matches!(kind, Kind::Notification | Kind::Digest) {
            headers.insert_raw(header(
                "List-Unsubscribe",
                format!("<{}/account#notifications>", self.public_url),
            ));
        }
        Ok((envelope, message))
    }

    /// Turns the template's relative `path`s into links under the public address.
    fn add_links(&self, params: &mut Value) {
        fn walk(value: &mut Value, base: &str) {
            match value {
                Value::Object(fields) => {
                    if let Some(Value::String(path)) = fields.get("path").cloned() {
                        fields.insert("link".into(), Value::String(format!("{base}{path}")));
                    }
                    fields.values_mut().for_each(|v| walk(v, base));
                }
                Value::Array(items) => items.iter_mut().for_each(|v| walk(v, base)),
                _ => {}
            }
        }
        walk(params, &self.public_url);
        if let Value::Object(fields) = params {
            fields.insert("public_url".into(), Value::String(self.public_url.clone()));
            fields.insert(
                "unsubscribe".into(),
                Value::String(format!("{}/account#notifications", self.public_url)),
            );
        }
    }
}

fn header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// Sends until `stop` turns true.
pub async fn run(db: Db, sender: Sender, stop: watch::Receiver<bool>) {
    if !sender.enabled() {
        tracing::warn!("mail is off (DOCKET_SMTP_URL is not set): mails are recorded as not sent");
    }
    background::repeat("sending mail", &db.signals().mail, POLL, stop, || {
        step(&db, &sender)
    })
    .await;
}

/// Sends every mail that is due now and returns how many it handled (for tests and tools that
/// own the worker).
pub async fn drain(db: &Db, sender: &Sender) -> Result<usize> {
    let mut total = 0;
    loop {
        match step(db, sender).await? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

async fn step(db: &Db, sender: &Sender) -> Result<usize> {
    let Some(transport) = &sender.transport else {
        return record_unsent(db).await;
    };
    let claimed = claim(db).await?;
    let n = claimed.len();
    for mail in claimed {
        let outcome = send(sender, transport, &mail).await;
        settle(db, &mail, outcome).await?;
    }
    Ok(n)
}

async fn claim(db: &Db) -> Result<Vec<entity::Model>> {
    let now = Utc::now();
    let tx = db.maintenance().await?;
    let backend = tx.conn().get_database_backend();
    let skip_locked = match backend {
        DbBackend::Postgres => "FOR UPDATE SKIP LOCKED",
        _ => "",
    };
    let sql = format!(
        "UPDATE mails SET status = 'sending', attempts = attempts + 1, locked_until = $1 \
         WHERE (org_id, id) IN ( \
           SELECT org_id, id FROM mails \
           WHERE (status = 'queued' AND available_at <= $2) \
              OR (status = 'sending' AND locked_until <= $2) \
           ORDER BY available_at LIMIT {BATCH} {skip_locked}) \
         RETURNING *"
    );
    let claimed = entity::Entity::find()
        .from_raw_sql(statement(backend, &sql, [(now + LEASE).into(), now.into()]))
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(claimed)
}

/// Mail off: every due mail is recorded as not sent, in one statement.
async fn record_unsent(db: &Db) -> Result<usize> {
    let tx = db.maintenance().await?;
    let backend = tx.conn().get_database_backend();
    let done = tx
        .conn()
        .execute_raw(statement(
            backend,
            "UPDATE mails SET status = 'not_sent', attempts = attempts + 1, locked_until = NULL, \
             last_response = $1 WHERE status IN ('queued', 'sending') AND available_at <= $2",
            [MAIL_OFF.into(), Utc::now().into()],
        ))
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() as usize)
}

const MAIL_OFF: &str = "mail is off: DOCKET_SMTP_URL is not set";

/// How one attempt went.
enum Outcome {
    Sent(String),
    Transient(String),
    Permanent(String),
}

async fn send(
    sender: &Sender,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    mail: &entity::Model,
) -> Outcome {
    let (envelope, message) = match sender.message(mail) {
        Ok(m) => m,
        Err(err) => return Outcome::Permanent(format!("could not build the message: {err}")),
    };
    match transport.send_raw(&envelope, &message.formatted()).await {
        Ok(response) => Outcome::Sent(format!(
            "{} {}",
            response.code(),
            response.message().collect::<Vec<_>>().join(" ")
        )),
        Err(err) if err.is_permanent() => Outcome::Permanent(err.to_string()),
        Err(err) => Outcome::Transient(err.to_string()),
    }
}

async fn settle(db: &Db, mail: &entity::Model, outcome: Outcome) -> Result<()> {
    let now = Utc::now();
    let (status, response, available_at) = match outcome {
        Outcome::Sent(r) => (Status::Sent, r, now),
        Outcome::Permanent(r) => (Status::Failed, r, now),
        Outcome::Transient(r) if mail.attempts >= MAX_ATTEMPTS => (Status::Failed, r, now),
        Outcome::Transient(r) => (Status::Queued, r, now + backoff(mail.attempts)),
    };
    if status == Status::Failed || status == Status::Sent {
        tracing::info!(mail = %mail.id, kind = %mail.kind, status = status.as_str(), attempts = mail.attempts, "mail settled");
    }
    let erase = matches!(status, Status::Sent | Status::Failed)
        && Kind::parse(&mail.kind).is_ok_and(Kind::carries_secret);
    let tx = db.maintenance().await?;
    let backend = tx.conn().get_database_backend();
    // Fenced by the attempt count: a worker whose lease ran out settles nothing.
    let sql = format!(
        "UPDATE mails SET status = $1, last_response = $2, available_at = $3, locked_until = NULL, \
         sent_at = $4{} WHERE org_id = $5 AND id = $6 AND attempts = $7",
        if erase { ", params = $8" } else { "" }
    );
    let mut values: Vec<sea_orm::Value> = vec![
        status.as_str().into(),
        truncate(&response, 1000).into(),
        available_at.into(),
        (status == Status::Sent).then_some(now).into(),
        mail.org_id.into(),
        mail.id.into(),
        mail.attempts.into(),
    ];
    if erase {
        values.push(serde_json::json!({}).into());
    }
    tx.conn()
        .execute_raw(statement(backend, &sql, values))
        .await?;
    tx.commit().await?;
    Ok(())
}

fn backoff(attempts: i32) -> chrono::Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).clamp(0, 16) as u32);
    let delay = FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF);
    chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// Drops the organisation's sent and not-sent mails queued before `cutoff` (its retention
/// asks for less than the log keeps); answers how many.
pub async fn forget_sent_before(tx: &TenantTx, cutoff: chrono::DateTime<Utc>) -> Result<u64> {
    use sea_orm::{ColumnTrait, QueryFilter};
    Ok(tx
        .delete_many::<entity::Entity>()
        .filter(entity::Column::Status.is_in([Status::Sent.as_str(), Status::NotSent.as_str()]))
        .filter(entity::Column::CreatedAt.lt(cutoff))
        .exec(tx.conn())
        .await?
        .rows_affected)
}

/// Drops sent and not-sent mails past the log's retention.
pub async fn purge_sent(db: &Db) -> Result<u64> {
    use sea_orm::ColumnTrait;
    Ok(db
        .purge::<entity::Entity>(
            sea_orm::Condition::all()
                .add(
                    entity::Column::Status.is_in([Status::Sent.as_str(), Status::NotSent.as_str()]),
                )
                .add(entity::Column::CreatedAt.lt(Utc::now() - KEEP_SENT)),
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(backoff(1), chrono::Duration::seconds(30));
        assert_eq!(backoff(2), chrono::Duration::seconds(60));
        assert_eq!(backoff(3), chrono::Duration::seconds(120));
        assert_eq!(backoff(20), chrono::Duration::hours(1));
    }
}
