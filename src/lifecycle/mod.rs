//! An organisation's whole life, end to end: deleting it (closed at once, owners mailed),
//! restoring it within the grace period, and purging it afterwards — every row of every table
//! (found by walking the schema), every file, the accounts that belonged nowhere else — with a
//! receipt of what went kept outside it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    access::{self, Action, Role, TenantCtx},
    audit,
    error::Result,
    files::Files,
    identity::{self, password::Hasher},
    mail,
    store::{Db, PURGE_BATCH},
    tenancy::{self, Organization},
};

pub mod retention;

mod receipt {
    use sea_orm::entity::prelude::*;

    /// What a purge removed, kept outside the organisation (which no longer exists).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "org_purge_receipts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub purged_org_id: Uuid,
        pub slug: String,
        pub deleted_at: DateTimeUtc,
        pub purged_at: DateTimeUtc,
        pub counts: Json,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `DELETE /org`: the owner confirms with their password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgDeletion {
    #[schema(max_length = 1024)]
    pub password: String,
}

/// When a deleted organisation goes for good.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletionScheduled {
    pub purge_at: DateTime<Utc>,
}

/// Deletes the caller's organisation (owners, confirming with their password): closed at once —
/// every session and API token stops, mail and webhooks with them — and purged after `grace`.
/// Its owners are mailed; only they may sign in until then, to restore it.
pub async fn delete_org(
    db: &Db,
    hasher: &Hasher,
    ctx: &TenantCtx,
    req: OrgDeletion,
    ip: std::net::IpAddr,
    grace: chrono::Duration,
) -> Result<Organization> {
    access::authorize(ctx, Action::OrgDelete)?;
    identity::confirm_own_password(db, hasher, ctx, "password", &req.password, ip).await?;
    let tx = db.write(ctx).await?;
    tenancy::acting_role(&tx, ctx).await?;
    let org = tenancy::lifecycle::close(&tx, grace).await?;
    identity::end_all_sessions(&tx, "organization_deleted").await?;
    let members = tenancy::member_ids(&tx).await?;
    for member in &members {
        tx.access_changed(*member).await?;
    }
    let owners = tenancy::active_with_roles(&tx, &[Role::Owner]).await?;
    let people = identity::users_by_ids(tx.conn(), owners).await?;
    let author = people
        .iter()
        .find(|p| p.id == ctx.user_id)
        .map_or_else(|| "An owner".to_owned(), |p| p.name.clone());
    let purge_at = org.purge_at.unwrap_or_else(Utc::now);
    let mails = people
        .into_iter()
        .filter(|p| !p.contact)
        .map(|p| mail::Outgoing {
            kind: mail::Kind::OrganizationDeletion,
            to: p.email.clone(),
            to_user_id: Some(p.id),
            params: serde_json::json!({
                "name": p.name,
                "author": author,
                "organization": org.name,
                "purge_at": purge_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                "path": format!("/signin?organization={}", org.slug),
            }),
            automatic: true,
            thread: None,
        })
        .collect();
    mail::enqueue_all(&tx, mails).await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "organization.deleted",
        "organization",
        Some(org.id),
        serde_json::json!({"purge_at": purge_at, "members": members.len()}),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(org = %org.id, %purge_at, "organization deleted; purge scheduled");
    Ok(org)
}

/// Brings the caller's deleted organisation back (owners, within the grace period). Sessions
/// and API tokens that the deletion ended stay ended; people sign in again.
pub async fn restore_org(db: &Db, ctx: &TenantCtx) -> Result<Organization> {
    access::authorize(ctx, Action::OrgRestore)?;
    let tx = db.write(ctx).await?;
    tenancy::acting_role(&tx, ctx).await?;
    let org = tenancy::lifecycle::reopen(&tx).await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "organization.restored",
        "organization",
        Some(org.id),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(org)
}

/// Removes a person from the caller's organisation (admins), taking them off their tickets.
/// With `erase`, every trace of them in the organisation is scrubbed in the same transaction:
/// their address in mail conversations, held addresses, the ingest and mail logs, bounce
/// marks, invitations; their inbox, and their name in others' notifications; what audit entries
/// say of them (the entries stay, pseudonymised). Their account itself is anonymised when it
/// belongs to no other organisation (`tenancy::people::remove`). What they wrote stays, under
/// their tombstone: docs/PRIVACY.md says why.
pub async fn remove_person(db: &Db, ctx: &TenantCtx, user_id: Uuid, erase: bool) -> Result<()> {
    tenancy::people::remove(db, ctx, user_id, erase, async |tx| {
        crate::work::tickets::unassign_everywhere(tx, ctx, user_id).await?;
        if erase {
            let traces = identity::traces_of(tx.conn(), user_id).await?;
            crate::conversation::erasure::scrub(tx, &traces).await?;
            mail::scrub_recipient(tx, &traces).await?;
            crate::notify::scrub(tx, user_id, &traces).await?;
            tenancy::invitations::forget(tx, &traces).await?;
            audit::redact(tx, &traces).await?;
        }
        Ok(())
    })
    .await
}

/// What one purge removed: rows per table, files, accounts.
#[derive(Debug, Serialize)]
pub struct Purged {
    pub org_id: Uuid,
    pub counts: BTreeMap<String, u64>,
}

/// Purges every deleted organisation whose grace period is over at `now` (the worker's round;
/// a purge cut short is taken up again by the next one).
pub async fn purge_due(db: &Db, files: &Files, now: DateTime<Utc>) -> Result<Vec<Purged>> {
    let mut done = Vec::new();
    for org_id in tenancy::lifecycle::due_for_purge(db, now).await? {
        if let Some(purged) = purge(db, Some(files), org_id, now).await? {
            done.push(purged);
        }
    }
    Ok(done)
}

/// Purges organisation `org_id` at once, after it moved to another database (`import-org
/// --delete-source`): closed without a grace period, then purged as a deleted organisation is,
/// its files too unless `files` is `None` (the new server shares this object store, and with it
/// the very same files).
pub async fn purge_moved(db: &Db, files: Option<&Files>, org_id: Uuid) -> Result<Purged> {
    let tx = db.write_org(org_id).await?;
    let org = tenancy::lifecycle::close(&tx, chrono::Duration::zero()).await?;
    audit::record(
        &tx,
        None,
        "organization.moved",
        "organization",
        Some(org.id),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    purge(db, files, org_id, Utc::now())
        .await?
        .ok_or(crate::error::Error::NotFound("organization"))
}

async fn purge(
    db: &Db,
    files: Option<&Files>,
    org_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Purged>> {
    let tx = db.write_org(org_id).await?;
    let Some(org) = tenancy::lifecycle::begin_purge(&tx, now).await? else {
        return Ok(None);
    };
    let members = tenancy::member_ids(&tx).await?;
    tx.commit().await?;

    let mut counts = BTreeMap::new();
    if let Some(files) = files {
        counts.insert("files".to_owned(), files.delete_all_of(org_id).await?);
    }
    for table in db.tenant_tables().await? {
        let mut gone = 0;
        loop {
            let batch = db.purge_tenant_rows(org_id, &table).await?;
            gone += batch;
            if batch < PURGE_BATCH {
                break;
            }
        }
        counts.insert(table, gone);
    }
    counts.insert(
        "sign_in_ceremonies".to_owned(),
        identity::ceremonies::forget(db, Some(org_id), None).await?,
    );
    let tx = db.write_org(org_id).await?;
    tenancy::lifecycle::remove(&tx).await?;
    tx.commit().await?;
    let mut accounts = 0;
    for member in members {
        if identity::delete_account_if_unattached(db, member).await? {
            accounts += 1;
        }
    }
    counts.insert("accounts".to_owned(), accounts);

    let tx = db.global(true).await?;
    receipt::ActiveModel {
        id: Set(Uuid::now_v7()),
        purged_org_id: Set(org_id),
        slug: Set(org.slug.clone()),
        deleted_at: Set(org.deleted_at.unwrap_or(now)),
        purged_at: Set(crate::store::now()),
        counts: Set(serde_json::to_value(&counts).unwrap_or_default()),
    }
    .insert(tx.conn())
    .await?;
    tx.commit().await?;
    tracing::info!(org = %org_id, slug = %org.slug, ?counts, "organization purged");
    Ok(Some(Purged { org_id, counts }))
}
