//! Background work that runs beside the API (`serve`) or alone (`worker`): the outbox
//! dispatcher, the mail sender, the webhook sender, the IMAP poller, and routine maintenance
//! (deleted organisations past their grace period, orphaned attachment files, notification
//! digests, expired login throttles, invitations, reset links and idempotency records, stream entries past their resume window, long-handled outbox rows, old
//! sent mail, the webhook delivery log).

use std::time::Duration;

use tokio::sync::watch;

use crate::{
    billing,
    config::{MailConfig, Secret, WorkerConfig},
    conversation::{self, Mailroom},
    events::{Handlers, dispatch, ops, stream},
    exports,
    files::Files,
    idempotency,
    identity::{recovery, signup, throttle},
    lifecycle,
    mail::{self, MailKeys, Sender},
    notify,
    outbound::Guard,
    store::Db,
    tenancy::invitations,
    webhooks::{self, Webhooks},
    work::{attachments, sla},
};

const MAINTENANCE_EVERY: Duration = Duration::from_secs(300);
/// How old a file with no attachment row must be before it counts as an orphan: far longer
/// than any upload takes between its bytes landing and its row committing.
const ORPHAN_GRACE: Duration = Duration::from_secs(6 * 3600);

/// What mail needs, built once from the settings and the signing key: the SMTP sender and the
/// inbound side (`Mailroom`).
#[derive(Clone)]
pub struct Mail {
    pub sender: Sender,
    pub mailroom: Mailroom,
}

impl Mail {
    /// `guard` says where IMAP mailboxes may be (the webhooks' SSRF wall and allow list).
    pub fn new(
        cfg: &MailConfig,
        files: &Files,
        signing_key: &Secret,
        guard: Guard,
    ) -> anyhow::Result<Self> {
        let keys = MailKeys::new(signing_key);
        let sender = Sender::new(cfg, keys.clone())?;
        let mailroom = Mailroom::new(cfg, keys, sender.address(), files.clone(), guard);
        Ok(Self { sender, mailroom })
    }
}

/// Everything an event causes, in order: its entry in the live feed, notifications, their
/// mails (which read the notifications made just before) and webhook deliveries, all four in
/// one transaction of the organisation; then mail replies to tickets that came by mail, then
/// removed files' bytes. A new consumer is one module and one line here.
pub fn handlers(mailroom: &Mailroom) -> Handlers {
    Handlers::new()
        .with_writes(stream::Publisher)
        .with_writes(notify::Notifier)
        .with_writes(conversation::NotificationMails)
        .with_writes(webhooks::Fanout)
        .with(conversation::Replies(mailroom.clone()))
        .with(attachments::BlobRemover(mailroom.files.clone()))
}

/// Runs until `stop` turns true.
pub async fn run(
    db: Db,
    cfg: WorkerConfig,
    mail: Mail,
    hooks: Webhooks,
    stop: watch::Receiver<bool>,
) {
    tracing::info!("worker started");
    let files = mail.mailroom.files.clone();
    tokio::join!(
        dispatch::run(db.clone(), cfg, handlers(&mail.mailroom), stop.clone()),
        mail::run(db.clone(), mail.sender, stop.clone()),
        webhooks::run(db.clone(), hooks, stop.clone()),
        sla::timers::run(db.clone(), stop.clone()),
        exports::run(db.clone(), files.clone(), stop.clone()),
        conversation::run_imap(db.clone(), mail.mailroom, stop.clone()),
        maintain(db, files, stop)
    );
    tracing::info!("worker stopped");
}

async fn maintain(db: Db, files: Files, mut stop: watch::Receiver<bool>) {
    loop {
        report(
            "orphaned attachment files",
            attachments::sweep_orphans(&db, &files, ORPHAN_GRACE).await,
        );
        match conversation::send_digests(&db, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(digests = n, "notification digests queued"),
            Err(err) => tracing::warn!(error = ?err, "queueing digests failed; will retry"),
        }
        report("expired invitations", invitations::purge_expired(&db).await);
        report(
            "expired password reset links",
            recovery::purge_expired(&db).await,
        );
        report("expired sign-up links", signup::purge_expired(&db).await);
        report(
            "expired sign-in ceremonies",
            crate::identity::ceremonies::purge_expired(&db).await,
        );
        report(
            "expired contact links",
            conversation::contacts::purge_expired(&db).await,
        );
        report("old sent mail", mail::purge_sent(&db).await);
        report("old webhook deliveries", webhooks::purge_old(&db).await);
        report(
            "old ingest log lines",
            conversation::purge_old_log(&db).await,
        );
        report(
            "expired login throttle windows",
            throttle::purge_expired(&db).await,
        );
        report(
            "expired idempotency records",
            idempotency::purge_expired(&db).await,
        );
        report("expired stream entries", stream::purge_expired(&db).await);
        report("handled outbox events", ops::purge_handled(&db).await);
        report("expired exports", exports::purge_expired(&db, &files).await);
        report(
            "old Stripe event ids",
            billing::purge_old_events(&db, chrono::Utc::now() - chrono::Duration::days(7)).await,
        );
        report(
            "interrupted exports (failed)",
            exports::fail_all_interrupted(&db).await,
        );
        // Each purge and retention round logs what it removed.
        if let Err(err) = lifecycle::purge_due(&db, &files, chrono::Utc::now()).await {
            tracing::warn!(error = ?err, "purging deleted organizations failed; will retry");
        }
        if let Err(err) = lifecycle::retention::apply_due(&db, &files, chrono::Utc::now()).await {
            tracing::warn!(error = ?err, "applying retention failed; will retry");
        }
        match billing::review_due(&db, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                changed = n,
                "plans settled after a grace or a subscription ended"
            ),
            Err(err) => tracing::warn!(error = ?err, "settling plans failed; will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(MAINTENANCE_EVERY) => {}
            _ = stop.changed() => break,
        }
    }
}

fn report(what: &str, purged: crate::error::Result<u64>) {
    match purged {
        Ok(0) => {}
        Ok(n) => tracing::info!(purged = n, "{what} removed"),
        Err(err) => tracing::warn!(error = ?err, "purging {what} failed; will retry"),
    }
}
