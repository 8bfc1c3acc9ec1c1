//! An organisation's end: deleted by an owner it is closed at once (only its owners may still
//! sign in, to restore it), and purged once its grace period has passed. The rules of that state
//! live here; the lifecycle module above carries them out across modules.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use uuid::Uuid;

use super::{Organization, entity::organization};
use crate::{
    access::Role,
    error::{Error, Result},
    store::{Db, TenantTx},
};

/// The 403 of whatever a deleted organisation no longer does.
pub fn deleted() -> Error {
    Error::Forbidden {
        code: "organization_deleted",
        detail: "this organization was deleted; an owner may still restore it".into(),
    }
}

/// Whether `role` may sign in to `organization`: anyone while it lives, its owners only once
/// it was deleted (to restore it, or see when it goes).
pub fn admits_sign_in(organization: &Organization, role: Role) -> Result<()> {
    match organization.deleted_at {
        Some(_) if role != Role::Owner => Err(deleted()),
        _ => Ok(()),
    }
}

async fn locked(tx: &TenantTx) -> Result<organization::Model> {
    tx.find_for_update::<organization::Entity>()
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("organization"))
}

/// Closes the organisation of `tx`, to be purged `grace` from now.
pub(crate) async fn close(tx: &TenantTx, grace: Duration) -> Result<Organization> {
    let org = locked(tx).await?;
    if org.deleted_at.is_some() {
        return Err(Error::conflict(
            "organization_deleted",
            "this organization is already deleted",
        ));
    }
    let now = crate::store::now();
    let mut active: organization::ActiveModel = org.into();
    active.deleted_at = Set(Some(now));
    active.purge_at = Set(Some(now + grace));
    active.updated_at = Set(now);
    Ok(active.update(tx.conn()).await?.into())
}

/// Opens the deleted organisation of `tx` again, if its purge has not begun.
pub(crate) async fn reopen(tx: &TenantTx) -> Result<Organization> {
    let org = locked(tx).await?;
    if org.deleted_at.is_none() {
        return Err(Error::conflict(
            "organization_not_deleted",
            "this organization is not deleted",
        ));
    }
    if org.purging {
        return Err(Error::conflict(
            "organization_purging",
            "this organization's grace period is over: it is being purged",
        ));
    }
    let mut active: organization::ActiveModel = org.into();
    active.deleted_at = Set(None);
    active.purge_at = Set(None);
    active.updated_at = Set(crate::store::now());
    Ok(active.update(tx.conn()).await?.into())
}

/// Refuses (403 `organization_deleted`) when the organisation of `tx` is deleted.
pub(crate) async fn ensure_open(tx: &TenantTx) -> Result<()> {
    match super::organization(tx).await?.deleted_at {
        Some(_) => Err(deleted()),
        None => Ok(()),
    }
}

/// `user_id`'s active role in the organisation of `tx`, read with the organisation's state in
/// one statement (an API token's every request asks it): 403 `organization_deleted` when it
/// was deleted.
pub(crate) async fn active_role_while_open(tx: &TenantTx, user_id: Uuid) -> Result<Option<Role>> {
    let conn = tx.conn();
    let row = conn
        .query_one_raw(crate::store::statement(
            conn.get_database_backend(),
            "SELECT m.role AS role, o.deleted_at IS NOT NULL AS closed \
             FROM organizations o LEFT JOIN memberships m \
               ON m.org_id = o.id AND m.user_id = $2 AND m.active \
             WHERE o.id = $1",
            [tx.org_id().into(), user_id.into()],
        ))
        .await?
        .ok_or(Error::NotFound("organization"))?;
    if crate::store::column::<bool>(&row, "closed")? {
        return Err(deleted());
    }
    crate::store::column::<Option<String>>(&row, "role")?
        .map(|r| super::parse_role(&r))
        .transpose()
}

/// Deleted organisations whose grace period is over at `now` (or whose purge began and did not
/// finish), across tenants.
pub(crate) async fn due_for_purge(db: &Db, now: DateTime<Utc>) -> Result<Vec<Uuid>> {
    let tx = db.maintenance().await?;
    let due = organization::Entity::find()
        .filter(organization::Column::PurgeAt.lte(now))
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(due.into_iter().map(|o| o.id).collect())
}

/// Marks the organisation of `tx` as being purged (no restoring it from now on) if its grace
/// period is over at `now`; answers what it was, or `None` when it was restored meanwhile.
pub(crate) async fn begin_purge(tx: &TenantTx, now: DateTime<Utc>) -> Result<Option<Organization>> {
    let org = locked(tx).await?;
    if org.purge_at.is_none_or(|at| at > now) {
        return Ok(None);
    }
    let mut active: organization::ActiveModel = org.into();
    active.purging = Set(true);
    Ok(Some(active.update(tx.conn()).await?.into()))
}

/// Deletes the organisation row of `tx` (the last step of its purge, once nothing refers to it).
pub(crate) async fn remove(tx: &TenantTx) -> Result<()> {
    tx.delete_many::<organization::Entity>()
        .exec(tx.conn())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(deleted: bool) -> Organization {
        let now = Utc::now();
        Organization {
            id: Uuid::nil(),
            name: "Acme".into(),
            slug: "acme".into(),
            created_at: now,
            updated_at: now,
            require_mfa: false,
            deleted_at: deleted.then_some(now),
            purge_at: deleted.then_some(now + Duration::days(14)),
        }
    }

    #[test]
    fn a_deleted_organization_admits_its_owners_only() {
        for role in Role::ALL {
            assert!(admits_sign_in(&org(false), role).is_ok());
            assert_eq!(
                admits_sign_in(&org(true), role).is_ok(),
                role == Role::Owner
            );
        }
    }
}
