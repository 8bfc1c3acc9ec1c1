//! Addresses whose mail bounces: marked by a delivery report that came back to the signed
//! return path of a mail Docket sent (see `ingest::bounce`), skipped by every mail Docket sends
//! after, and listed for admins, who clear a mark once the address works again.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, sea_query::OnConflict};
use serde::Serialize;
use utoipa::ToSchema;

use super::entity::bounce;
use crate::{
    access::{self, Action, TenantCtx},
    audit,
    error::{Error, Result},
    pagination::{Page, PageRequest},
    store::{Db, TenantTx},
};

/// An address marked as bouncing.
#[derive(Debug, Serialize, ToSchema)]
pub struct Bounce {
    pub address: String,
    /// Why (which mail failed).
    pub reason: Option<String>,
    pub bounced_at: DateTime<Utc>,
}

pub(super) async fn mark(tx: &TenantTx, address: &str, reason: &str) -> Result<()> {
    bounce::Entity::insert(bounce::ActiveModel {
        org_id: Set(tx.org_id()),
        address: Set(address.to_owned()),
        reason: Set(Some(reason.to_owned())),
        bounced_at: Set(Utc::now()),
        id: Set(uuid::Uuid::now_v7()),
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

/// The organisation's bouncing addresses, newest first (admins).
pub async fn list(db: &Db, ctx: &TenantCtx, page: PageRequest) -> Result<Page<Bounce>> {
    access::authorize(ctx, Action::MailManage)?;
    let tx = db.read(ctx).await?;
    let rows = tx
        .newest_first::<bounce::Entity>(bounce::Column::Id, &page)?
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    Page::try_from_rows(
        rows,
        page.limit,
        |b| b.id,
        |b| {
            Ok(Bounce {
                address: b.address,
                reason: b.reason,
                bounced_at: b.bounced_at,
            })
        },
    )
}

/// Clears an address's mark: Docket mails it again (admins).
pub async fn clear(db: &Db, ctx: &TenantCtx, address: &str) -> Result<()> {
    access::authorize(ctx, Action::MailManage)?;
    let address = address.trim().to_lowercase();
    let tx = db.write(ctx).await?;
    let removed = tx
        .delete_many::<bounce::Entity>()
        .filter(bounce::Column::Address.eq(&address))
        .exec(tx.conn())
        .await?;
    if removed.rows_affected == 0 {
        return Err(Error::NotFound("bounce"));
    }
    audit::record(
        &tx,
        Some(ctx.user_id),
        "mail_bounce.cleared",
        "organization",
        Some(ctx.org_id),
        serde_json::json!({"address": address}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
