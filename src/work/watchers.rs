//! Watchers: people who asked to hear about a ticket they neither requested nor work on.

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::{entity::watcher, now, tickets};
use crate::{
    access::{self, Action, TenantCtx},
    error::{Error, Result},
    store::{Db, TenantTx},
};

/// Starts (`watching`) or stops the caller watching a ticket they can see. Either is
/// idempotent: watching twice is watching once.
pub async fn set(db: &Db, ctx: &TenantCtx, ticket: &str, watching: bool) -> Result<()> {
    access::authorize(ctx, Action::TicketRead)?;
    let tx = db.write(ctx).await?;
    let t = tickets::find_visible(&tx, ctx, ticket).await?;
    if t.deleted {
        return Err(Error::NotFound("ticket"));
    }
    if watching {
        watcher::Entity::insert(watcher::ActiveModel {
            org_id: Set(tx.org_id()),
            ticket_id: Set(t.id),
            user_id: Set(ctx.user_id),
            created_at: Set(now()),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(tx.conn())
        .await?;
    } else {
        tx.delete_many::<watcher::Entity>()
            .filter(watcher::Column::TicketId.eq(t.id))
            .filter(watcher::Column::UserId.eq(ctx.user_id))
            .exec(tx.conn())
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Who watches the ticket.
pub(crate) async fn of(tx: &TenantTx, ticket_id: Uuid) -> Result<Vec<Uuid>> {
    Ok(tx
        .find::<watcher::Entity>()
        .select_only()
        .column(watcher::Column::UserId)
        .filter(watcher::Column::TicketId.eq(ticket_id))
        .order_by_asc(watcher::Column::UserId)
        .into_tuple()
        .all(tx.conn())
        .await?)
}

/// Adds watchers to a ticket; returns those who were not watching it yet.
pub(crate) async fn add(tx: &TenantTx, ticket_id: Uuid, user_ids: &[Uuid]) -> Result<Vec<Uuid>> {
    let already = of(tx, ticket_id).await?;
    let new: Vec<Uuid> = user_ids
        .iter()
        .copied()
        .filter(|u| !already.contains(u))
        .collect();
    if !new.is_empty() {
        let at = now();
        watcher::Entity::insert_many(new.iter().map(|u| watcher::ActiveModel {
            org_id: Set(tx.org_id()),
            ticket_id: Set(ticket_id),
            user_id: Set(*u),
            created_at: Set(at),
        }))
        .exec_without_returning(tx.conn())
        .await?;
    }
    Ok(new)
}

/// Takes watchers off a ticket.
pub(crate) async fn remove(tx: &TenantTx, ticket_id: Uuid, user_ids: &[Uuid]) -> Result<()> {
    if !user_ids.is_empty() {
        tx.delete_many::<watcher::Entity>()
            .filter(watcher::Column::TicketId.eq(ticket_id))
            .filter(watcher::Column::UserId.is_in(user_ids.iter().copied()))
            .exec(tx.conn())
            .await?;
    }
    Ok(())
}

/// Who watches a ticket the caller can see.
pub async fn list(db: &Db, ctx: &TenantCtx, ticket: &str) -> Result<Vec<Uuid>> {
    access::authorize(ctx, Action::TicketRead)?;
    let tx = db.read(ctx).await?;
    let t = tickets::find_visible(&tx, ctx, ticket).await?;
    let ids = of(&tx, t.id).await?;
    tx.commit().await?;
    Ok(ids)
}
