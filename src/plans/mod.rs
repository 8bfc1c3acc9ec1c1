//! Plans and their limits: what an organisation may use. The catalog is the operator's plans
//! file (`catalog`), published at start to the global `plans` table, so that every module
//! checks limits against the database alone; without a file the table is empty and nothing is
//! limited. Each organisation's plan is its row of `org_plans` (none, or no plan named: the
//! default). A change that would pass a limit locks that row and counts in its own transaction,
//! so two concurrent changes cannot both take the last unit.

pub mod catalog;

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    sea_query::OnConflict,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    error::{Error, Result},
    store::{Db, TenantTx},
};
pub use catalog::{Catalog, Plan};

pub(crate) mod entity {
    pub mod org_plan {
        crate::store::tenant_entity!("org_plans" {
            /// None: the default plan.
            plan: Option<String>,
            updated_at: DateTimeUtc,
        });
    }

    pub mod plan {
        use sea_orm::entity::prelude::*;

        /// A plan of the catalog as the server last read it.
        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "plans")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub key: String,
            pub label: String,
            pub limits: Json,
            pub stripe_price_id: Option<String>,
            pub is_default: bool,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

use entity::{org_plan, plan};

/// What a plan limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// Active staff (owners, admins, agents, viewers) and pending invitations; requesters never.
    Seats,
    /// Projects not archived.
    Projects,
    /// Bytes of attachments kept.
    StorageBytes,
    /// API requests per minute, per organisation.
    ApiRequestsPerMinute,
    /// Webhooks.
    Webhooks,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Seats => "seats",
            Limit::Projects => "projects",
            Limit::StorageBytes => "storage_bytes",
            Limit::ApiRequestsPerMinute => "api_requests_per_minute",
            Limit::Webhooks => "webhooks",
        }
    }
}

/// A plan's limits; a limit that is `null` is not limited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    pub seats: Option<u64>,
    pub projects: Option<u64>,
    pub storage_bytes: Option<u64>,
    pub api_requests_per_minute: Option<u64>,
    pub webhooks: Option<u64>,
}

impl Limits {
    pub fn of(&self, limit: Limit) -> Option<u64> {
        match limit {
            Limit::Seats => self.seats,
            Limit::Projects => self.projects,
            Limit::StorageBytes => self.storage_bytes,
            Limit::ApiRequestsPerMinute => self.api_requests_per_minute,
            Limit::Webhooks => self.webhooks,
        }
    }
}

/// The 402 of a change that would take the organisation past `limit` (`value` in its plan,
/// `usage` in use).
pub fn reached(limit: Limit, value: u64, usage: u64) -> Error {
    Error::PlanLimitReached {
        limit: limit.as_str(),
        value,
        usage,
    }
}

/// Publishes the catalog (none: nothing is limited) for every module and process to read.
pub async fn publish(db: &Db, catalog: Option<&Catalog>) -> Result<()> {
    let tx = db.global(true).await?;
    plan::Entity::delete_many().exec(tx.conn()).await?;
    for (key, p) in catalog.map(|c| &c.plans).into_iter().flatten() {
        plan::Entity::insert(plan::ActiveModel {
            key: Set(key.clone()),
            label: Set(p.label.clone().unwrap_or_else(|| key.clone())),
            limits: Set(serde_json::to_value(p.limits()).map_err(Error::internal)?),
            stripe_price_id: Set(p.stripe_price_id.clone()),
            is_default: Set(catalog.is_some_and(|c| c.default == *key)),
        })
        .exec_without_returning(tx.conn())
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A plan as the app shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct PlanInfo {
    pub key: String,
    pub label: String,
    pub limits: Limits,
    /// Whether it can be bought (it has a Stripe price).
    pub purchasable: bool,
    pub is_default: bool,
}

impl From<plan::Model> for PlanInfo {
    fn from(m: plan::Model) -> Self {
        Self {
            limits: serde_json::from_value(m.limits).unwrap_or_default(),
            purchasable: m.stripe_price_id.is_some(),
            key: m.key,
            label: m.label,
            is_default: m.is_default,
        }
    }
}

/// Every published plan, the default first.
pub(crate) async fn catalog(conn: &impl ConnectionTrait) -> Result<Vec<PlanInfo>> {
    Ok(plan::Entity::find()
        .order_by_desc(plan::Column::IsDefault)
        .order_by_asc(plan::Column::Key)
        .all(conn)
        .await?
        .into_iter()
        .map(PlanInfo::from)
        .collect())
}

/// The published plan `key`, if there is one.
pub(crate) async fn find(conn: &impl ConnectionTrait, key: &str) -> Result<Option<plan::Model>> {
    Ok(plan::Entity::find_by_id(key.to_owned()).one(conn).await?)
}

/// The plan the organisation of `tx` is on: the one its row names while published, else the
/// default; `None` when no plans are published (nothing is limited).
pub(crate) async fn current(tx: &TenantTx) -> Result<Option<PlanInfo>> {
    let named = tx
        .find::<org_plan::Entity>()
        .one(tx.conn())
        .await?
        .and_then(|r| r.plan);
    on_plan(tx, named).await
}

async fn on_plan(tx: &TenantTx, named: Option<String>) -> Result<Option<PlanInfo>> {
    if let Some(key) = named
        && let Some(p) = find(tx.conn(), &key).await?
    {
        return Ok(Some(p.into()));
    }
    Ok(plan::Entity::find()
        .filter(plan::Column::IsDefault.eq(true))
        .one(tx.conn())
        .await?
        .map(PlanInfo::from))
}

/// The API requests per minute the plan of organisation `org_id` allows, if it names them.
pub async fn api_rate(db: &Db, org_id: uuid::Uuid) -> Result<Option<u64>> {
    if plan::Entity::find().one(db.connection()).await?.is_none() {
        return Ok(None);
    }
    let tx = db.read_org(org_id).await?;
    let plan = current(&tx).await?;
    tx.commit().await?;
    Ok(plan.and_then(|p| p.limits.api_requests_per_minute))
}

/// The limits of the organisation of `tx`, its plan row locked until the transaction ends, so
/// changes that count the same usage wait for each other: call it before counting, then
/// [`ensure`]. Nothing is locked when no plans are published.
pub(crate) async fn lock(tx: &TenantTx) -> Result<Limits> {
    if plan::Entity::find().one(tx.conn()).await?.is_none() {
        return Ok(Limits::default());
    }
    Ok(locked_plan(tx).await?.map(|p| p.limits).unwrap_or_default())
}

/// The plan of the organisation of `tx`, its row (created on first use) locked.
async fn locked_plan(tx: &TenantTx) -> Result<Option<PlanInfo>> {
    let named = tx
        .lock_own_row::<org_plan::Entity>(org_plan::ActiveModel {
            org_id: Set(tx.org_id()),
            plan: Set(None),
            updated_at: Set(Utc::now()),
        })
        .await?
        .plan;
    on_plan(tx, named).await
}

/// Refuses (402 `plan_limit_reached`) one more unit of `limit` than the plan of the
/// organisation of `tx` allows: locks its plan row, then counts with `in_use` (only when the
/// plan limits it).
pub(crate) async fn ensure_room_for_one(
    tx: &TenantTx,
    limit: Limit,
    in_use: impl std::future::Future<Output = Result<u64>>,
) -> Result<()> {
    let limits = lock(tx).await?;
    if limits.of(limit).is_none() {
        return Ok(());
    }
    ensure(&limits, limit, in_use.await?, 1)
}

/// After [`lock`]: refuses (402 `plan_limit_reached`) adding `adding` to the `in_use` of
/// `limit` when `limits` allow less than the sum.
pub fn ensure(limits: &Limits, limit: Limit, in_use: u64, adding: u64) -> Result<()> {
    match limits.of(limit) {
        Some(value) if in_use.saturating_add(adding) > value => Err(reached(limit, value, in_use)),
        _ => Ok(()),
    }
}

/// The published plan that Stripe price `price` buys, if any.
pub(crate) async fn for_price(conn: &impl ConnectionTrait, price: &str) -> Result<Option<String>> {
    Ok(plan::Entity::find()
        .filter(plan::Column::StripePriceId.eq(price))
        .one(conn)
        .await?
        .map(|p| p.key))
}

/// A plan change: the keys of the plan before and after (the default's when none is named).
#[derive(Debug, PartialEq, Eq)]
pub struct Change {
    pub from: String,
    pub to: String,
}

/// Puts the organisation of `tx` on published plan `key` (`None`: the default).
pub(crate) async fn assign(tx: &TenantTx, key: Option<&str>) -> Result<Change> {
    if let Some(key) = key
        && find(tx.conn(), key).await?.is_none()
    {
        return Err(Error::Unprocessable {
            code: "unknown_plan",
            detail: format!("{key:?} is not a plan of this server"),
        });
    }
    let from = locked_plan(tx).await?.map(|p| p.key).unwrap_or_default();
    org_plan::Entity::insert(org_plan::ActiveModel {
        org_id: Set(tx.org_id()),
        plan: Set(key.map(str::to_owned)),
        updated_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(org_plan::Column::OrgId)
            .update_columns([org_plan::Column::Plan, org_plan::Column::UpdatedAt])
            .to_owned(),
    )
    .exec_without_returning(tx.conn())
    .await?;
    let to = on_plan(tx, key.map(str::to_owned))
        .await?
        .map(|p| p.key)
        .unwrap_or_default();
    Ok(Change { from, to })
}
