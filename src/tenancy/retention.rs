//! An organisation's retention settings: how long closed tickets and the text of inbound mail
//! are kept (both off by default), and when the worker last applied them. The lifecycle
//! module above carries them out across modules.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::entity::organization;
use crate::{
    error::{Error, Result, Validator},
    store::{Db, TenantTx},
};

/// The longest either setting may be: ten years.
pub const MAX_DAYS: i32 = 3650;

/// How often the worker applies an organisation's settings.
pub const EVERY: Duration = Duration::days(1);

/// What an organisation keeps, and for how long. `null` keeps it for as long as the
/// organisation lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Purge tickets closed or cancelled this many days ago, with their comments, files,
    /// timeline and mail records (1–3650).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650, example = 365)]
    pub closed_ticket_days: Option<i32>,
    /// Replace the text of mail received this many days ago with a notice, and drop the mail
    /// log lines of that age (1–3650).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650, example = 90)]
    pub mail_body_days: Option<i32>,
}

impl Retention {
    fn of(m: &organization::Model) -> Self {
        Self {
            closed_ticket_days: m.retain_closed_days,
            mail_body_days: m.retain_mail_days,
        }
    }

    fn check(&self) -> Result<()> {
        let mut v = Validator::default();
        for (field, days) in [
            ("closed_ticket_days", self.closed_ticket_days),
            ("mail_body_days", self.mail_body_days),
        ] {
            v.check(
                days.is_none_or(|d| (1..=MAX_DAYS).contains(&d)),
                field,
                "a number of days from 1 to 3650, or null to keep them",
            );
        }
        v.finish()
    }

    /// Whether anything is set to go.
    pub fn is_on(&self) -> bool {
        self.closed_ticket_days.is_some() || self.mail_body_days.is_some()
    }
}

/// The retention settings of the organisation of `tx`.
pub(crate) async fn get(tx: &TenantTx) -> Result<Retention> {
    let org = tx
        .find::<organization::Entity>()
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("organization"))?;
    Ok(Retention::of(&org))
}

/// Sets the retention settings of the organisation of `tx`; answers what they were.
pub(crate) async fn set(tx: &TenantTx, to: Retention) -> Result<Retention> {
    to.check()?;
    let org = tx
        .find_for_update::<organization::Entity>()
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("organization"))?;
    let was = Retention::of(&org);
    let mut active: organization::ActiveModel = org.into();
    active.retain_closed_days = Set(to.closed_ticket_days);
    active.retain_mail_days = Set(to.mail_body_days);
    // Settings that changed are applied at the next round, not a day later.
    active.retention_ran_at = Set(None);
    active.updated_at = Set(crate::store::now());
    active.update(tx.conn()).await?;
    Ok(was)
}

/// The open organisations with retention settings that were not applied in the last day at
/// `now`, with those settings.
pub(crate) async fn due(db: &Db, now: DateTime<Utc>) -> Result<Vec<(Uuid, Retention)>> {
    let tx = db.maintenance().await?;
    let due = organization::Entity::find()
        .filter(organization::Column::DeletedAt.is_null())
        .filter(
            Condition::any()
                .add(organization::Column::RetainClosedDays.is_not_null())
                .add(organization::Column::RetainMailDays.is_not_null()),
        )
        .filter(
            Condition::any()
                .add(organization::Column::RetentionRanAt.is_null())
                .add(organization::Column::RetentionRanAt.lte(now - EVERY)),
        )
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(due.iter().map(|o| (o.id, Retention::of(o))).collect())
}

/// Notes that the settings of the organisation of `tx` were applied at `now`.
pub(crate) async fn applied(tx: &TenantTx, now: DateTime<Utc>) -> Result<()> {
    tx.update_many::<organization::Entity>()
        .col_expr(
            organization::Column::RetentionRanAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .exec(tx.conn())
        .await?;
    Ok(())
}
