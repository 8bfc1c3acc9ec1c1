//! How each person wants to hear of each kind of notification by mail: at once, in an hourly
//! digest, or not at all. In-app notifications are unaffected. Unset kinds are `immediately`.

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, sea_query::OnConflict};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::NotificationKind;
use crate::{
    access::{Role, TenantCtx},
    error::{Error, Result},
    store::{Db, TenantTx},
};

mod entity {
    crate::store::tenant_entity!("notification_preferences" {
        #[sea_orm(primary_key, auto_increment = false)]
        user_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        kind: String,
        delivery: String,
    });
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Immediately,
    HourlyDigest,
    Off,
}

impl Delivery {
    fn as_str(self) -> &'static str {
        match self {
            Delivery::Immediately => "immediately",
            Delivery::HourlyDigest => "hourly_digest",
            Delivery::Off => "off",
        }
    }

    fn parse(stored: &str) -> Delivery {
        match stored {
            "hourly_digest" => Delivery::HourlyDigest,
            "off" => Delivery::Off,
            _ => Delivery::Immediately,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preference {
    pub kind: NotificationKind,
    pub delivery: Delivery,
}

/// Every kind with its delivery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    pub preferences: Vec<Preference>,
}

/// The kinds a person of `role` can get, each with its delivery.
async fn load(tx: &TenantTx, user_id: Uuid, role: Role) -> Result<Vec<Preference>> {
    let stored = deliveries_of(tx, &[user_id]).await?;
    Ok(NotificationKind::ALL
        .into_iter()
        .filter(|kind| kind.reaches(role))
        .map(|kind| Preference {
            kind,
            delivery: stored
                .iter()
                .find(|(_, k, _)| *k == kind)
                .map_or(Delivery::Immediately, |(_, _, d)| *d),
        })
        .collect())
}

/// The caller's preferences in this organisation.
pub async fn get(db: &Db, ctx: &TenantCtx) -> Result<Preferences> {
    let tx = db.read(ctx).await?;
    let preferences = load(&tx, ctx.user_id, ctx.role).await?;
    tx.commit().await?;
    Ok(Preferences { preferences })
}

/// Sets the kinds named (the others stay as they are) and returns them all.
pub async fn set(db: &Db, ctx: &TenantCtx, req: Preferences) -> Result<Preferences> {
    let mut kinds: Vec<NotificationKind> = req.preferences.iter().map(|p| p.kind).collect();
    kinds.sort_by_key(|k| k.as_str());
    kinds.dedup();
    if kinds.len() != req.preferences.len() {
        return Err(Error::invalid("preferences", "names a kind twice"));
    }
    let tx = db.write(ctx).await?;
    for p in &req.preferences {
        entity::Entity::insert(entity::ActiveModel {
            org_id: Set(tx.org_id()),
            user_id: Set(ctx.user_id),
            kind: Set(p.kind.as_str().to_owned()),
            delivery: Set(p.delivery.as_str().to_owned()),
        })
        .on_conflict(
            OnConflict::columns([
                entity::Column::OrgId,
                entity::Column::UserId,
                entity::Column::Kind,
            ])
            .update_column(entity::Column::Delivery)
            .to_owned(),
        )
        .exec_without_returning(tx.conn())
        .await?;
    }
    let preferences = load(&tx, ctx.user_id, ctx.role).await?;
    tx.commit().await?;
    Ok(Preferences { preferences })
}

/// The deliveries these people set, one query for all (for the mail handler); a kind not
/// listed for a person is `immediately`.
pub(crate) async fn deliveries_of(
    tx: &TenantTx,
    user_ids: &[Uuid],
) -> Result<Vec<(Uuid, NotificationKind, Delivery)>> {
    Ok(tx
        .find::<entity::Entity>()
        .filter(entity::Column::UserId.is_in(user_ids.iter().copied()))
        .all(tx.conn())
        .await?
        .into_iter()
        .filter_map(|p| {
            let kind = NotificationKind::ALL
                .into_iter()
                .find(|k| k.as_str() == p.kind)?;
            Some((p.user_id, kind, Delivery::parse(&p.delivery)))
        })
        .collect())
}
