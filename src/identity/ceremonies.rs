//! A sign-in ceremony between its two requests (a passkey's challenge, a single sign-on's
//! redirect to the identity provider): kept in the database so any process may serve the
//! second request, for minutes, and taken once, so a replayed answer finds nothing.

use chrono::{TimeDelta, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use super::entity::ceremony;
use crate::{
    error::{Error, Result},
    store::Db,
};

const TTL: TimeDelta = TimeDelta::minutes(10);

/// Keeps `waiting` for the ceremony's second request; returns its id.
pub(crate) async fn keep<S: Serialize>(
    db: &Db,
    kind: &str,
    user_id: Option<Uuid>,
    org_id: Option<Uuid>,
    waiting: &S,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    let tx = db.global(true).await?;
    // Ceremonies nobody finished go as new ones start.
    ceremony::Entity::delete_many()
        .filter(ceremony::Column::ExpiresAt.lt(Utc::now()))
        .exec(tx.conn())
        .await?;
    ceremony::ActiveModel {
        id: Set(id),
        kind: Set(kind.to_owned()),
        user_id: Set(user_id),
        organization_id: Set(org_id),
        state: Set(serde_json::to_string(waiting).map_err(anyhow::Error::from)?),
        expires_at: Set(Utc::now() + TTL),
    }
    .insert(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Takes a live ceremony of one of `kinds`, once: a second take of the same id finds nothing.
pub(crate) async fn take(db: &Db, id: Uuid, kinds: &[&str]) -> Result<Option<ceremony::Model>> {
    let tx = db.global(true).await?;
    let Some(row) = ceremony::Entity::find_by_id(id)
        .filter(ceremony::Column::Kind.is_in(kinds.iter().copied()))
        .filter(ceremony::Column::ExpiresAt.gt(Utc::now()))
        .one(tx.conn())
        .await?
    else {
        return Ok(None);
    };
    let taken = ceremony::Entity::delete_by_id(id).exec(tx.conn()).await?;
    tx.commit().await?;
    Ok((taken.rows_affected == 1).then_some(row))
}

/// What a taken ceremony kept (as [`keep`] was given it).
pub(crate) fn waiting<S: DeserializeOwned>(row: &ceremony::Model) -> Result<S> {
    serde_json::from_str(&row.state)
        .map_err(|e| Error::internal(anyhow::anyhow!("a stored ceremony does not read: {e}")))
}

/// Removes the ceremonies that expired (the maintenance sweep).
pub async fn purge_expired(db: &Db) -> Result<u64> {
    let tx = db.global(true).await?;
    let gone = ceremony::Entity::delete_many()
        .filter(ceremony::Column::ExpiresAt.lt(Utc::now()))
        .exec(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(gone.rows_affected)
}

/// Removes the ceremonies of an organisation, or of a person (an organisation or an account
/// purged leaves none behind).
pub(crate) async fn forget(db: &Db, org_id: Option<Uuid>, user_id: Option<Uuid>) -> Result<u64> {
    let tx = db.global(true).await?;
    let mut gone = ceremony::Entity::delete_many();
    if let Some(org_id) = org_id {
        gone = gone.filter(ceremony::Column::OrganizationId.eq(org_id));
    }
    if let Some(user_id) = user_id {
        gone = gone.filter(ceremony::Column::UserId.eq(user_id));
    }
    let gone = gone.exec(tx.conn()).await?;
    tx.commit().await?;
    Ok(gone.rows_affected)
}
