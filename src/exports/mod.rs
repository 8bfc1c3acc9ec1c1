//! Data portability: an export of everything an organisation holds (its owners and admins), or
//! of a person's own data (everyone). Asked for over HTTP, built by the worker into a zip in
//! object storage, announced by mail, downloadable by whoever asked for 7 days.

mod archive;
mod contents;
pub mod tenant_move;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    access::{self, Action, TenantCtx},
    audit,
    error::{Error, Result},
    files::{Download, Files},
    identity, mail,
    store::{self, Db},
    tenancy,
};

mod entity {
    crate::store::tenant_entity!("exports" {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        scope: String,
        user_id: Uuid,
        status: String,
        object_key: Option<String>,
        size: Option<i64>,
        error: Option<String>,
        created_at: DateTimeUtc,
        finished_at: Option<DateTimeUtc>,
        expires_at: Option<DateTimeUtc>,
        /// When a worker took it to build.
        claimed_at: Option<DateTimeUtc>,
    });
}

/// How long an export may stay `running` before it counts as interrupted (its worker stopped):
/// it is then failed, and its person may ask again.
const INTERRUPTED_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(6);

/// How long a finished export can be downloaded.
const KEPT_FOR: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// How often an idle worker looks for exports to build.
const POLL_EVERY: Duration = Duration::from_secs(2);
/// The bytes sent to object storage at a time.
const UPLOAD_CHUNK: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportScope {
    /// Everything the organisation holds, but secrets (owners and admins).
    Organization,
    /// The caller's own data: profile, memberships, tickets and comments they may see,
    /// notifications, preferences, saved views, sessions, audit entries about them.
    Me,
}

impl ExportScope {
    fn as_str(self) -> &'static str {
        match self {
            ExportScope::Organization => "organization",
            ExportScope::Me => "me",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExport {
    pub scope: ExportScope,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Export {
    pub id: Uuid,
    #[schema(example = "organization")]
    pub scope: String,
    /// `pending`, `running`, `ready` (downloadable until `expires_at`) or `failed`.
    #[schema(example = "ready")]
    pub status: String,
    pub size: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<entity::Model> for Export {
    fn from(m: entity::Model) -> Self {
        Self {
            id: m.id,
            scope: m.scope,
            status: m.status,
            size: m.size,
            error: m.error,
            created_at: m.created_at,
            finished_at: m.finished_at,
            expires_at: m.expires_at,
        }
    }
}

fn authorize(ctx: &TenantCtx, scope: ExportScope) -> Result<()> {
    match scope {
        ExportScope::Organization => access::authorize(ctx, Action::OrgExport),
        ExportScope::Me => access::authorize(ctx, Action::AccountManage),
    }
}

/// Asks for an export; the worker builds it. One at a time per person.
pub async fn request(db: &Db, ctx: &TenantCtx, req: NewExport) -> Result<Export> {
    authorize(ctx, req.scope)?;
    let tx = db.write(ctx).await?;
    let busy = tx
        .find::<entity::Entity>()
        .filter(entity::Column::UserId.eq(ctx.user_id))
        .filter(entity::Column::Status.is_in(["pending", "running"]))
        .one(tx.conn())
        .await?;
    if let Some(busy) = busy {
        if !interrupted(&busy, Utc::now()) {
            return Err(Error::conflict(
                "export_in_progress",
                "an export you asked for is still being built; wait for it",
            ));
        }
        fail_interrupted(&tx, busy).await?;
    }
    let row = entity::ActiveModel {
        org_id: Set(ctx.org_id),
        id: Set(Uuid::now_v7()),
        scope: Set(req.scope.as_str().to_owned()),
        user_id: Set(ctx.user_id),
        status: Set("pending".to_owned()),
        object_key: Set(None),
        size: Set(None),
        error: Set(None),
        created_at: Set(store::now()),
        finished_at: Set(None),
        expires_at: Set(None),
        claimed_at: Set(None),
    }
    .insert(tx.conn())
    .await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "export.requested",
        "export",
        Some(row.id),
        serde_json::json!({"scope": row.scope}),
    )
    .await?;
    tx.commit().await?;
    Ok(row.into())
}

/// The caller's exports, newest first.
pub async fn list(db: &Db, ctx: &TenantCtx) -> Result<Vec<Export>> {
    access::authorize(ctx, Action::AccountManage)?;
    let tx = db.read(ctx).await?;
    let rows = tx
        .find::<entity::Entity>()
        .filter(entity::Column::UserId.eq(ctx.user_id))
        .order_by_desc(entity::Column::Id)
        .limit(50)
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(Export::from).collect())
}

async fn own(db: &Db, ctx: &TenantCtx, id: Uuid) -> Result<entity::Model> {
    let tx = db.read(ctx).await?;
    let row = tx
        .find::<entity::Entity>()
        .filter(entity::Column::Id.eq(id))
        .filter(entity::Column::UserId.eq(ctx.user_id))
        .one(tx.conn())
        .await?;
    tx.commit().await?;
    // Someone else's export is not found, whoever they are.
    let row = row.ok_or(Error::NotFound("export"))?;
    authorize(ctx, scope_of(&row.scope))?;
    Ok(row)
}

fn scope_of(stored: &str) -> ExportScope {
    match stored {
        "organization" => ExportScope::Organization,
        _ => ExportScope::Me,
    }
}

/// One of the caller's exports.
pub async fn get(db: &Db, ctx: &TenantCtx, id: Uuid) -> Result<Export> {
    Ok(own(db, ctx, id).await?.into())
}

/// The file of one of the caller's exports, once it is ready and until it expires.
pub async fn download(db: &Db, files: &Files, ctx: &TenantCtx, id: Uuid) -> Result<Download> {
    let row = own(db, ctx, id).await?;
    let ready = row.status == "ready" && row.expires_at.is_some_and(|at| at > Utc::now());
    let size = row.size.filter(|_| ready).ok_or_else(|| {
        Error::conflict(
            "export_not_ready",
            "this export is not ready to download (still being built, failed or expired)",
        )
    })?;
    files.read_export(ctx.org_id, id, size as u64).await
}

/// Builds the exports waiting, oldest first; answers how many were built (the worker's round,
/// and the tests' "now").
pub async fn run_pending(db: &Db, files: &Files) -> Result<usize> {
    let tx = db.maintenance().await?;
    let waiting = entity::Entity::find()
        .filter(entity::Column::Status.eq("pending"))
        .order_by_asc(entity::Column::CreatedAt)
        .limit(10)
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    let mut built = 0;
    for row in waiting {
        if claim(db, &row).await? {
            build(db, files, row).await?;
            built += 1;
        }
    }
    Ok(built)
}

/// Whether `row` was left `running` by a worker that stopped, as of `now`.
fn interrupted(row: &entity::Model, now: DateTime<Utc>) -> bool {
    row.status == "running" && row.claimed_at.is_none_or(|at| at < now - INTERRUPTED_AFTER)
}

async fn fail_interrupted(tx: &store::TenantTx, row: entity::Model) -> Result<()> {
    let mut failed: entity::ActiveModel = row.into();
    failed.status = Set("failed".to_owned());
    failed.error = Set(Some(
        "building the export was interrupted; ask for a new one".to_owned(),
    ));
    failed.finished_at = Set(Some(store::now()));
    failed.update(tx.conn()).await?;
    Ok(())
}

/// Fails the exports left `running` by workers that stopped (the worker's maintenance round);
/// answers how many.
pub async fn fail_all_interrupted(db: &Db) -> Result<u64> {
    let now = Utc::now();
    let tx = db.maintenance().await?;
    let running = entity::Entity::find()
        .filter(entity::Column::Status.eq("running"))
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    let mut failed = 0;
    for row in running.into_iter().filter(|r| interrupted(r, now)) {
        let tx = db.write_org(row.org_id).await?;
        fail_interrupted(&tx, row).await?;
        tx.commit().await?;
        failed += 1;
    }
    Ok(failed)
}

/// Takes `row` for this worker (another may have taken it first).
async fn claim(db: &Db, row: &entity::Model) -> Result<bool> {
    let tx = db.write_org(row.org_id).await?;
    let taken = tx
        .update_many::<entity::Entity>()
        .col_expr(entity::Column::Status, "running".into())
        .col_expr(entity::Column::ClaimedAt, store::now().into())
        .filter(entity::Column::Id.eq(row.id))
        .filter(entity::Column::Status.eq("pending"))
        .exec(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(taken.rows_affected == 1)
}

async fn build(db: &Db, files: &Files, row: entity::Model) -> Result<()> {
    let started = std::time::Instant::now();
    let outcome = write(db, files, &row).await;
    let tx = db.write_org(row.org_id).await?;
    let now = store::now();
    let mut done: entity::ActiveModel = row.clone().into();
    done.finished_at = Set(Some(now));
    match &outcome {
        Ok(size) => {
            done.status = Set("ready".to_owned());
            done.size = Set(Some(*size as i64));
            done.object_key = Set(Some(format!("exports/{}.zip", row.id)));
            done.expires_at = Set(Some(now + KEPT_FOR));
            announce(&tx, &row, now + KEPT_FOR).await?;
            tracing::info!(export = %row.id, bytes = size, seconds = started.elapsed().as_secs_f64(), "export built");
        }
        Err(err) => {
            done.status = Set("failed".to_owned());
            done.error = Set(Some(
                "the export could not be built; ask for a new one".to_owned(),
            ));
            tracing::warn!(export = %row.id, error = ?err, "building an export failed");
        }
    }
    done.update(tx.conn()).await?;
    tx.commit().await?;
    Ok(())
}

/// Mails whoever asked that their export is ready.
async fn announce(
    tx: &store::TenantTx,
    row: &entity::Model,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    let Some(person) = identity::users_by_ids(tx.conn(), vec![row.user_id])
        .await?
        .pop()
    else {
        return Ok(());
    };
    let organization = tenancy::organization(tx).await?;
    mail::enqueue(
        tx,
        mail::Outgoing {
            kind: mail::Kind::ExportReady,
            to: person.email,
            to_user_id: Some(person.id),
            params: serde_json::json!({
                "name": person.name,
                "organization": organization.name,
                "scope": row.scope,
                "expires_at": expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                "path": "/account#exports",
            }),
            automatic: true,
            thread: None,
        },
    )
    .await?;
    Ok(())
}

/// Writes the export's zip and uploads it; answers its size.
async fn write(db: &Db, files: &Files, row: &entity::Model) -> Result<u64> {
    let mut zip = archive::Archive::new()?;
    let head = match scope_of(&row.scope) {
        ExportScope::Organization => contents::organization(db, files, row, &mut zip).await?,
        ExportScope::Me => contents::person(db, row, &mut zip).await?,
    };
    let (file, size, _) = zip.finish(head)?;
    let mut upload = files.export_writer(row.org_id, row.id);
    for chunk in archive::chunks(file, UPLOAD_CHUNK) {
        if let Err(err) = upload.write(chunk?.into()).await {
            upload.abort().await;
            return Err(match err {
                crate::files::WriteError::Store(err) => err,
                crate::files::WriteError::TooLarge => Error::internal(anyhow::anyhow!("too large")),
            });
        }
    }
    upload.finish().await?;
    Ok(size)
}

/// Removes exports past their time, and their files (the maintenance sweep).
pub async fn purge_expired(db: &Db, files: &Files) -> Result<u64> {
    let tx = db.maintenance().await?;
    let expired = entity::Entity::find()
        .filter(entity::Column::ExpiresAt.lt(Utc::now()))
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    for row in &expired {
        files.delete_export(row.org_id, row.id).await?;
    }
    db.purge::<entity::Entity>(
        sea_orm::Condition::all().add(entity::Column::ExpiresAt.lt(Utc::now())),
    )
    .await
    .map_err(Into::into)
}

/// Builds exports as they are asked for, until `stop`.
pub async fn run(db: Db, files: Files, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(err) = run_pending(&db, &files).await {
            tracing::warn!(error = ?err, "building exports failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL_EVERY) => {}
            _ = stop.changed() => break,
        }
    }
}
