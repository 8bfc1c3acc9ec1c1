//! Retention carried out: once a day per organisation that asked for it, the worker purges the
//! tickets closed or cancelled long enough ago (with every row and file that hangs on them) and
//! replaces the text of old inbound mail with a notice, a batch per short transaction, then
//! says what it did in the audit log (`retention.applied`).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    access::{self, Action, TenantCtx},
    audit, conversation,
    error::Result,
    files::Files,
    mail,
    store::Db,
    tenancy::{self, retention::Retention},
    work,
};

/// Tickets purged per transaction: each may carry hundreds of rows.
const TICKET_BATCH: u64 = 50;
/// Mails whose text goes per transaction.
const MAIL_BATCH: u64 = 200;

/// The organisation's retention settings (every member may read what is kept).
pub async fn settings(db: &Db, ctx: &TenantCtx) -> Result<Retention> {
    access::authorize(ctx, Action::OrgRead)?;
    let tx = db.read(ctx).await?;
    let retention = tenancy::retention::get(&tx).await?;
    tx.commit().await?;
    Ok(retention)
}

/// Changes the organisation's retention settings (admins); applied at the worker's next round.
pub async fn change(db: &Db, ctx: &TenantCtx, to: Retention) -> Result<Retention> {
    access::authorize(ctx, Action::OrgUpdate)?;
    let tx = db.write(ctx).await?;
    tenancy::acting_role(&tx, ctx).await?;
    let was = tenancy::retention::set(&tx, to).await?;
    if was != to {
        audit::record(
            &tx,
            Some(ctx.user_id),
            "organization.retention_changed",
            "organization",
            Some(ctx.org_id),
            serde_json::json!({"from": was, "to": to}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(to)
}

/// What one organisation's retention round removed.
#[derive(Debug, Default, Serialize)]
pub struct Applied {
    pub org_id: Uuid,
    /// Tickets purged.
    pub tickets: u64,
    /// Rows purged with them (comments, timeline, mail records, …; the tickets included).
    pub rows: u64,
    /// Attachment files deleted with them.
    pub files: u64,
    /// Inbound mails whose text was replaced by a notice.
    pub mail_texts: u64,
    /// Sent-mail and mail log lines dropped, and notification excerpts (which may quote mail).
    pub mail_log: u64,
}

/// Applies the settings of every organisation not done in the last day at `now` (the
/// worker's round; one cut short is taken up again by the next).
pub async fn apply_due(db: &Db, files: &Files, now: DateTime<Utc>) -> Result<Vec<Applied>> {
    let due = tenancy::retention::due(db, now).await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let tables = db.ticket_tables().await?;
    let mut done = Vec::with_capacity(due.len());
    for (org_id, retention) in due {
        let applied = apply(db, files, &tables, org_id, retention, now).await?;
        tracing::info!(org = %org_id, ?applied, "retention applied");
        done.push(applied);
    }
    Ok(done)
}

async fn apply(
    db: &Db,
    files: &Files,
    tables: &[String],
    org_id: Uuid,
    retention: Retention,
    now: DateTime<Utc>,
) -> Result<Applied> {
    let mut applied = Applied {
        org_id,
        ..Applied::default()
    };
    let before = |days: i32| now - Duration::days(days.into());
    if let Some(cutoff) = retention.closed_ticket_days.map(before) {
        loop {
            let tx = db.write_org(org_id).await?;
            let ids = work::retention::closed_before(&tx, cutoff, TICKET_BATCH).await?;
            let purged = work::retention::purge(&tx, tables, &ids).await?;
            tx.commit().await?;
            for file in &purged.files {
                // One left behind is found by the orphan sweep.
                if let Err(err) = files.delete(org_id, *file).await {
                    tracing::warn!(error = ?err, "deleting a purged ticket's file failed");
                }
            }
            applied.tickets += ids.len() as u64;
            applied.rows += purged.rows;
            applied.files += purged.files.len() as u64;
            if (ids.len() as u64) < TICKET_BATCH {
                break;
            }
        }
    }
    if let Some(cutoff) = retention.mail_body_days.map(before) {
        loop {
            let tx = db.write_org(org_id).await?;
            let texts = conversation::retention::texts_before(&tx, cutoff, MAIL_BATCH).await?;
            for text in &texts {
                if work::retention::remove_mail_text(&tx, text.ticket_id, text.comment_id).await? {
                    applied.mail_texts += 1;
                }
            }
            let count = texts.len() as u64;
            let ids = texts.into_iter().map(|t| t.message_id).collect();
            conversation::retention::mark_removed(&tx, ids, now).await?;
            tx.commit().await?;
            if count < MAIL_BATCH {
                break;
            }
        }
        let tx = db.write_org(org_id).await?;
        applied.mail_log += mail::forget_sent_before(&tx, cutoff).await?;
        applied.mail_log += conversation::retention::forget_log_before(&tx, cutoff).await?;
        applied.mail_log += crate::notify::forget_excerpts_before(&tx, cutoff).await?;
        tx.commit().await?;
    }
    let tx = db.write_org(org_id).await?;
    tenancy::retention::applied(&tx, now).await?;
    audit::record(
        &tx,
        None,
        "retention.applied",
        "organization",
        Some(org_id),
        serde_json::json!({
            "settings": retention,
            "tickets": applied.tickets,
            "rows": applied.rows,
            "files": applied.files,
            "mail_texts": applied.mail_texts,
            "mail_log": applied.mail_log,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(applied)
}
