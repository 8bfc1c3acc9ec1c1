//! Files on tickets: what each one is, who may see it, and how many bytes an organisation keeps.
//! The bytes are in object storage (`crate::files`), written before the row that names them
//! commits; a blob whose row never committed is an orphan that [`sweep_orphans`] removes after
//! a grace period. Removing an attachment deletes its row in the change's transaction and its
//! bytes when the `attachment.removed` event is handled ([`BlobRemover`]).

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, ModelTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{entity::attachment, now, tickets, timeline};
use crate::{
    access::{self, Action, TenantCtx},
    error::{Error, Result},
    events::{self, Body, Event, Handler, contract::AttachmentRef},
    files::{Blob, Files},
    plans,
    store::{Db, TenantTx, statement},
};

/// Files one upload request or one comment may carry.
pub const MAX_FILES_AT_ONCE: usize = 20;

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Attachment {
    pub id: Uuid,
    pub ticket_id: Uuid,
    /// The comment that carries the file, if one does.
    pub comment_id: Option<Uuid>,
    /// The name it was uploaded with, without any path.
    pub filename: String,
    /// Told from the file's bytes, not from what the uploader claimed.
    #[schema(example = "image/png")]
    pub content_type: String,
    /// In bytes.
    pub size: i64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    pub uploaded_by: Uuid,
    /// Staff only: a file of an internal note, or uploaded for one.
    pub internal: bool,
    pub created_at: DateTime<Utc>,
}

impl From<attachment::Model> for Attachment {
    fn from(m: attachment::Model) -> Self {
        Self {
            id: m.id,
            ticket_id: m.ticket_id,
            comment_id: m.comment_id,
            filename: m.filename,
            content_type: m.content_type,
            size: m.size,
            sha256: m.sha256,
            uploaded_by: m.uploaded_by,
            internal: m.internal,
            created_at: m.created_at,
        }
    }
}

/// A blob just written for a ticket, and the (sanitised) name it came with.
#[derive(Clone, Debug)]
pub struct Upload {
    pub filename: String,
    pub blob: Blob,
}

/// The organisation's storage quota: its plan's `storage_bytes` when plans are on (a plan
/// without it has none), else the server's `DOCKET_ORG_STORAGE_QUOTA_BYTES`.
#[derive(Clone, Copy, Debug)]
struct Quota {
    /// 0: none.
    bytes: u64,
    from_plan: bool,
}

impl Quota {
    async fn of(tx: &TenantTx, files: &Files) -> Result<Self> {
        Ok(match plans::current(tx).await? {
            Some(plan) => Self {
                bytes: plan.limits.storage_bytes.unwrap_or(0),
                from_plan: true,
            },
            None => Self {
                bytes: files.quota_bytes,
                from_plan: false,
            },
        })
    }

    /// The refusal of a change past it, `used` bytes being in use.
    fn exceeded(&self, used: u64) -> Error {
        if self.from_plan {
            plans::reached(plans::Limit::StorageBytes, self.bytes, used)
        } else {
            quota_exceeded()
        }
    }
}

/// What an upload may bring, decided before its bytes arrive.
#[derive(Clone, Copy, Debug)]
pub struct Allowance {
    /// Largest file (`DOCKET_MAX_ATTACHMENT_BYTES`).
    pub per_file: u64,
    /// What is left of the organisation's quota, if it has one.
    pub quota_left: Option<u64>,
    quota: Quota,
}

impl Allowance {
    /// The most the next file may hold, after `taken` bytes of this request.
    pub fn next_file(&self, taken: u64) -> u64 {
        match self.quota_left {
            Some(left) => self.per_file.min(left.saturating_sub(taken)),
            None => self.per_file,
        }
    }

    /// The error for a file that went past [`Allowance::next_file`].
    pub fn exceeded(&self, taken: u64) -> Error {
        if self.next_file(taken) < self.per_file {
            let left = self.quota_left.unwrap_or_default();
            self.quota.exceeded(self.quota.bytes.saturating_sub(left))
        } else {
            Error::too_large(format!(
                "a file may be at most {} bytes (DOCKET_MAX_ATTACHMENT_BYTES)",
                self.per_file
            ))
        }
    }
}

fn quota_exceeded() -> Error {
    Error::TooLarge {
        code: "quota_exceeded",
        detail: "the organisation's storage quota is used up; remove files or ask the operator \
                 for more room"
            .into(),
    }
}

/// Checks that the caller may add files to `ticket` (`internal`: for an internal note) and
/// says how many bytes they may bring.
pub async fn allowance(
    db: &Db,
    files: &Files,
    ctx: &TenantCtx,
    ticket: &str,
    internal: bool,
) -> Result<Allowance> {
    authorize_upload(ctx, internal)?;
    let tx = db.read(ctx).await?;
    let t = tickets::find_for(&tx, ctx, ticket, Action::CommentCreate).await?;
    if t.deleted {
        return Err(Error::NotFound("ticket"));
    }
    let quota = Quota::of(&tx, files).await?;
    let quota_left = match quota.bytes {
        0 => None,
        bytes => Some(bytes.saturating_sub(used(&tx).await?)),
    };
    tx.commit().await?;
    if quota_left == Some(0) {
        return Err(quota.exceeded(quota.bytes));
    }
    Ok(Allowance {
        per_file: files.max_bytes,
        quota_left,
        quota,
    })
}

fn authorize_upload(ctx: &TenantCtx, internal: bool) -> Result<()> {
    access::authorize(ctx, Action::CommentCreate)?;
    if internal {
        access::authorize(ctx, Action::CommentInternal)?;
    }
    Ok(())
}

/// Bytes of attachments the organisation keeps.
pub(crate) async fn used(tx: &TenantTx) -> Result<u64> {
    let backend = tx.conn().get_database_backend();
    let row = tx
        .conn()
        .query_one_raw(statement(
            backend,
            "SELECT bytes FROM storage_usage WHERE org_id = $1",
            [tx.org_id().into()],
        ))
        .await?;
    let bytes: i64 = match row {
        Some(row) => row.try_get("", "bytes")?,
        None => 0,
    };
    Ok(bytes.max(0) as u64)
}

/// Adds `bytes` to the organisation's usage unless that passes its quota. The conditional
/// upsert takes the usage row's lock, so concurrent uploads cannot both squeeze in.
async fn charge(tx: &TenantTx, files: &Files, bytes: u64) -> Result<()> {
    let quota = Quota::of(tx, files).await?;
    if quota.bytes > 0 && bytes > quota.bytes {
        return Err(quota.exceeded(used(tx).await?));
    }
    let backend = tx.conn().get_database_backend();
    let done = tx
        .conn()
        .execute_raw(statement(
            backend,
            "INSERT INTO storage_usage (org_id, bytes) VALUES ($1, $2) \
             ON CONFLICT (org_id) DO UPDATE SET bytes = storage_usage.bytes + excluded.bytes \
             WHERE $3 = 0 OR storage_usage.bytes + excluded.bytes <= $3",
            [
                tx.org_id().into(),
                (bytes as i64).into(),
                (quota.bytes as i64).into(),
            ],
        ))
        .await?;
    if done.rows_affected() == 0 {
        return Err(quota.exceeded(used(tx).await?));
    }
    Ok(())
}

async fn release(tx: &TenantTx, bytes: i64) -> Result<()> {
    let backend = tx.conn().get_database_backend();
    tx.conn()
        .execute_raw(statement(
            backend,
            "UPDATE storage_usage SET bytes = bytes - $2 WHERE org_id = $1",
            [tx.org_id().into(), bytes.into()],
        ))
        .await?;
    Ok(())
}

/// Forgets the attachments of tickets `ids` (being purged): their rows go and their bytes
/// leave the organisation's usage. Answers the blobs to delete once the transaction commits
/// (one left behind is found by [`sweep_orphans`]).
pub(crate) async fn forget_tickets(tx: &TenantTx, ids: &[Uuid]) -> Result<Vec<Uuid>> {
    let rows = tx
        .find_for_update::<attachment::Entity>()
        .filter(attachment::Column::TicketId.is_in(ids.iter().copied()))
        .all(tx.conn())
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    tx.delete_many::<attachment::Entity>()
        .filter(attachment::Column::TicketId.is_in(ids.iter().copied()))
        .exec(tx.conn())
        .await?;
    release(tx, rows.iter().map(|m| m.size).sum()).await?;
    Ok(rows.into_iter().map(|m| m.id).collect())
}

/// Records blobs already written as attachments of `ticket` (of comment `comment_id`, if
/// given), within the organisation's quota: the rows, the usage, a timeline entry and an
/// `attachment.added` event each.
pub async fn add(
    tx: &TenantTx,
    ctx: &TenantCtx,
    files: &Files,
    ticket: &str,
    comment_id: Option<Uuid>,
    internal: bool,
    uploads: Vec<Upload>,
) -> Result<Vec<Attachment>> {
    authorize_upload(ctx, internal)?;
    let t = tickets::find_for(tx, ctx, ticket, Action::CommentCreate).await?;
    if t.deleted {
        return Err(Error::NotFound("ticket"));
    }
    let total: u64 = uploads.iter().map(|u| u.blob.size).sum();
    charge(tx, files, total).await?;
    let at = now();
    let mut added = Vec::with_capacity(uploads.len());
    for upload in uploads {
        let a = Attachment::from(
            attachment::ActiveModel {
                org_id: Set(tx.org_id()),
                id: Set(upload.blob.id),
                ticket_id: Set(t.id),
                comment_id: Set(comment_id),
                filename: Set(upload.filename),
                content_type: Set(upload.blob.content_type),
                size: Set(upload.blob.size as i64),
                sha256: Set(upload.blob.sha256),
                uploaded_by: Set(ctx.user_id),
                internal: Set(internal),
                created_at: Set(at),
            }
            .insert(tx.conn())
            .await?,
        );
        record(tx, ctx, &t, &a, Change::Added, at).await?;
        added.push(a);
    }
    tickets::touch(tx, t.id, at).await?;
    Ok(added)
}

/// The attachments of a ticket the caller can see, oldest first (requesters: not those of
/// internal notes).
pub async fn list(db: &Db, ctx: &TenantCtx, ticket: &str) -> Result<Vec<Attachment>> {
    access::authorize(ctx, Action::TicketRead)?;
    let tx = db.read(ctx).await?;
    let t = tickets::find_visible(&tx, ctx, ticket).await?;
    let mut query = tx
        .find::<attachment::Entity>()
        .filter(attachment::Column::TicketId.eq(t.id))
        .order_by_asc(attachment::Column::Id);
    if !access::sees_internal_notes(ctx.role) {
        query = query.filter(attachment::Column::Internal.eq(false));
    }
    let rows = query.all(tx.conn()).await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(Attachment::from).collect())
}

/// One attachment the caller may see (to download it): on a ticket they can see that is not
/// deleted, and not staff-only unless they are staff. Anything else is "not found".
pub async fn get(db: &Db, ctx: &TenantCtx, id: Uuid) -> Result<Attachment> {
    access::authorize(ctx, Action::TicketRead)?;
    let tx = db.read(ctx).await?;
    let (m, _) = visible(&tx, ctx, id, false).await?;
    tx.commit().await?;
    Ok(m.into())
}

async fn visible(
    tx: &TenantTx,
    ctx: &TenantCtx,
    id: Uuid,
    lock: bool,
) -> Result<(attachment::Model, tickets::TicketHandle)> {
    let query = if lock {
        tx.find_for_update::<attachment::Entity>()
    } else {
        tx.find::<attachment::Entity>()
    };
    let m = query
        .filter(attachment::Column::Id.eq(id))
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("attachment"))?;
    let t = tickets::find_visible(tx, ctx, &m.ticket_id.to_string())
        .await
        .map_err(|_| Error::NotFound("attachment"))?;
    if t.deleted || (m.internal && !access::sees_internal_notes(ctx.role)) {
        return Err(Error::NotFound("attachment"));
    }
    Ok((m, t))
}

/// Removes an attachment: its uploader, or staff who work tickets. The bytes go when the
/// `attachment.removed` event is handled.
pub async fn delete(tx: &TenantTx, ctx: &TenantCtx, id: Uuid) -> Result<()> {
    access::authorize(ctx, Action::TicketRead)?;
    let (m, t) = visible(tx, ctx, id, true).await?;
    if m.uploaded_by != ctx.user_id {
        access::authorize(ctx, Action::TicketUpdate)?;
    }
    remove(tx, ctx, &t, m).await?;
    tickets::touch(tx, t.id, now()).await
}

async fn remove(
    tx: &TenantTx,
    ctx: &TenantCtx,
    t: &tickets::TicketHandle,
    m: attachment::Model,
) -> Result<()> {
    let a = Attachment::from(m.clone());
    m.delete(tx.conn()).await?;
    release(tx, a.size).await?;
    record(tx, ctx, t, &a, Change::Removed, now()).await
}

/// Puts the caller's own uploads `ids` (on `ticket`, not yet on a comment) on comment
/// `comment_id`; they become as private as the comment.
pub(crate) async fn link(
    tx: &TenantTx,
    ctx: &TenantCtx,
    ticket: Uuid,
    comment_id: Uuid,
    internal: bool,
    ids: &[Uuid],
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let rows = tx
        .find_for_update::<attachment::Entity>()
        .filter(attachment::Column::Id.is_in(ids.iter().copied()))
        .all(tx.conn())
        .await?;
    let usable = rows.len() == ids.len()
        && rows.iter().all(|m| {
            m.ticket_id == ticket && m.comment_id.is_none() && m.uploaded_by == ctx.user_id
        });
    if !usable {
        return Err(Error::invalid(
            "attachment_ids",
            "each must be a file you uploaded to this ticket that no comment carries yet",
        ));
    }
    tx.update_many::<attachment::Entity>()
        .col_expr(attachment::Column::CommentId, comment_id.into())
        .col_expr(attachment::Column::Internal, internal.into())
        .filter(attachment::Column::Id.is_in(ids.iter().copied()))
        .exec(tx.conn())
        .await?;
    Ok(())
}

/// Removes the files a deleted comment carried.
pub(crate) async fn remove_of_comment(
    tx: &TenantTx,
    ctx: &TenantCtx,
    t: &tickets::TicketHandle,
    comment_id: Uuid,
) -> Result<()> {
    let rows = tx
        .find_for_update::<attachment::Entity>()
        .filter(attachment::Column::CommentId.eq(comment_id))
        .all(tx.conn())
        .await?;
    for m in rows {
        remove(tx, ctx, t, m).await?;
    }
    Ok(())
}

/// The ids of ticket `ticket_id`'s files: all of them, or those on the comments `comments`.
pub(crate) async fn ids_on(
    tx: &TenantTx,
    ticket_id: Uuid,
    comments: Option<&[Uuid]>,
) -> Result<Vec<Uuid>> {
    let mut query = tx
        .find::<attachment::Entity>()
        .select_only()
        .column(attachment::Column::Id)
        .filter(attachment::Column::TicketId.eq(ticket_id));
    if let Some(ids) = comments {
        query = query.filter(attachment::Column::CommentId.is_in(ids.iter().copied()));
    }
    Ok(query.into_tuple().all(tx.conn()).await?)
}

/// Moves files to ticket `to` (for a merge or a split; their bytes stay where they are).
pub(crate) async fn move_to(tx: &TenantTx, ids: &[Uuid], to: Uuid) -> Result<()> {
    if !ids.is_empty() {
        tx.update_many::<attachment::Entity>()
            .col_expr(attachment::Column::TicketId, to.into())
            .filter(attachment::Column::Id.is_in(ids.iter().copied()))
            .exec(tx.conn())
            .await?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Change {
    Added,
    Removed,
}

async fn record(
    tx: &TenantTx,
    ctx: &TenantCtx,
    t: &tickets::TicketHandle,
    a: &Attachment,
    change: Change,
    at: DateTime<Utc>,
) -> Result<()> {
    let reference = AttachmentRef {
        ticket_id: t.id,
        project_id: t.project_id,
        requester_id: t.requester_id,
        attachment_id: a.id,
        comment_id: a.comment_id,
        filename: a.filename.clone(),
        content_type: a.content_type.clone(),
        size: a.size,
        uploaded_by: a.uploaded_by,
        internal: a.internal,
    };
    let (body, filename) = match change {
        Change::Added => (
            Body::AttachmentAdded(reference),
            json!({"from": null, "to": a.filename}),
        ),
        Change::Removed => (
            Body::AttachmentRemoved(reference),
            json!({"from": a.filename, "to": null}),
        ),
    };
    timeline::record(
        tx,
        ctx,
        timeline::Entry {
            project_id: t.project_id,
            ticket_id: Some(t.id),
            kind: body.kind(),
            internal: a.internal,
            version: None,
            changes: json!({"attachment_id": a.id, "filename": filename, "size": a.size,
                "content_type": a.content_type}),
            at,
        },
    )
    .await?;
    events::emit(tx, Some(ctx.user_id), body, at).await
}

/// Deletes a removed attachment's bytes from object storage.
pub struct BlobRemover(pub Files);

#[async_trait::async_trait]
impl Handler for BlobRemover {
    fn name(&self) -> &'static str {
        "blobs"
    }

    async fn handle(&self, _db: &Db, event: &Event) -> Result<()> {
        if let Body::AttachmentRemoved(a) = &event.body {
            self.0.delete(event.org_id(), a.attachment_id).await?;
        }
        Ok(())
    }
}

/// Deletes blobs older than `grace` that no attachment names: what a crash between writing a
/// blob and committing its row left behind, or an upload refused after its bytes were stored.
/// Returns how many went.
pub async fn sweep_orphans(db: &Db, files: &Files, grace: Duration) -> Result<u64> {
    let cutoff = Utc::now() - chrono::Duration::from_std(grace).map_err(Error::internal)?;
    let mut by_org: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    for (org_id, id) in files.written_before(cutoff).await? {
        by_org.entry(org_id).or_default().push(id);
    }
    let mut removed = 0;
    for (org_id, ids) in by_org {
        for batch in ids.chunks(500) {
            let tx = db.read_org(org_id).await?;
            let known: Vec<Uuid> = tx
                .find::<attachment::Entity>()
                .filter(attachment::Column::Id.is_in(batch.iter().copied()))
                .all(tx.conn())
                .await?
                .into_iter()
                .map(|m| m.id)
                .collect();
            tx.commit().await?;
            for id in batch.iter().filter(|id| !known.contains(id)) {
                files.delete(org_id, *id).await?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}
