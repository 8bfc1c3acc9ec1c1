//! The audit log: who did what security-relevant thing, when, from which request.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    access::{self, Action, TenantCtx},
    error::Result,
    pagination::{Page, PageRequest},
    request_id,
    store::{Db, TenantTx},
};

mod entry {
    crate::store::tenant_entity!("audit_log" {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        actor_id: Option<Uuid>,
        action: String,
        target_type: String,
        target_id: Option<Uuid>,
        details: Json,
        request_id: Option<String>,
        created_at: DateTimeUtc,
    });
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: Uuid,
    pub actor_id: Option<Uuid>,
    #[schema(example = "membership.role_changed")]
    pub action: String,
    pub target_type: String,
    pub target_id: Option<Uuid>,
    pub details: serde_json::Value,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Appends an entry inside the caller's transaction: it exists exactly when the change does.
pub(crate) async fn record(
    tx: &TenantTx,
    actor_id: Option<Uuid>,
    action: &str,
    target_type: &str,
    target_id: Option<Uuid>,
    details: serde_json::Value,
) -> Result<()> {
    entry::ActiveModel {
        org_id: Set(tx.org_id()),
        id: Set(Uuid::now_v7()),
        actor_id: Set(actor_id),
        action: Set(action.to_owned()),
        target_type: Set(target_type.to_owned()),
        target_id: Set(target_id),
        details: Set(details),
        request_id: Set(request_id::current()),
        created_at: Set(Utc::now()),
    }
    .insert(tx.conn())
    .await?;
    Ok(())
}

/// Newest first.
pub async fn list(db: &Db, ctx: &TenantCtx, page: PageRequest) -> Result<Page<AuditEntry>> {
    access::authorize(ctx, Action::AuditRead)?;
    let tx = db.read(ctx).await?;
    let rows = tx
        .newest_first::<entry::Entity>(entry::Column::Id, &page)?
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(Page::from_rows(
        rows,
        page.limit,
        |m| m.id,
        |m| AuditEntry {
            id: m.id,
            actor_id: m.actor_id,
            action: m.action,
            target_type: m.target_type,
            target_id: m.target_id,
            details: m.details,
            request_id: m.request_id,
            created_at: m.created_at,
        },
    ))
}
