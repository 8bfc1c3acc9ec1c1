//! Login throttling shared by every process (it lives in the database): failures per account
//! and per client address within a window first slow the answer down, then lock the key.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, EntityTrait, QueryFilter,
    sea_query::{Expr, OnConflict},
};

use super::entity::login_throttle as throttle;
use crate::{
    error::{Error, Result},
    store::Db,
};

const WINDOW: TimeDelta = TimeDelta::minutes(15);
const LOCK_FOR: TimeDelta = TimeDelta::minutes(15);
const SLOW_AFTER: i32 = 3;
const MAX_DELAY: Duration = Duration::from_secs(2);

/// A throttled key and how many failures within the window lock it.
pub struct Key {
    pub key: String,
    pub lock_after: i32,
}

impl Key {
    pub fn account(email: &str) -> Self {
        Self {
            key: format!("email:{email}"),
            lock_after: 10,
        }
    }
    pub fn address(ip: std::net::IpAddr) -> Self {
        Self {
            key: format!("ip:{ip}"),
            lock_after: 50,
        }
    }
}

/// Refuses with 429 while any of the keys is locked.
pub async fn ensure_unlocked(db: &Db, keys: &[Key]) -> Result<()> {
    let tx = db.global(false).await?;
    let now = Utc::now();
    let locked = throttle::Entity::find()
        .filter(throttle::Column::Key.is_in(keys.iter().map(|k| k.key.clone())))
        .filter(throttle::Column::LockedUntil.gt(now))
        .all(tx.conn())
        .await?;
    if let Some(until) = locked.iter().filter_map(|r| r.locked_until).max() {
        let secs = (until - now).num_seconds().max(1) as u64;
        return Err(Error::TooManyRequests {
            detail: "too many failed sign-in attempts; try again later".into(),
            retry_after: Duration::from_secs(secs),
        });
    }
    Ok(())
}

/// Counts a failure against every key and returns how long to hold the answer back.
pub async fn record_failure(db: &Db, keys: &[Key]) -> Result<Duration> {
    let tx = db.global(true).await?;
    let now = Utc::now();
    let mut worst = 0;
    for key in keys {
        // Atomic increments: concurrent failures never undercount.
        let bumped = throttle::Entity::update_many()
            .col_expr(
                throttle::Column::Failures,
                sea_orm::sea_query::ExprTrait::add(Expr::col(throttle::Column::Failures), 1),
            )
            .filter(throttle::Column::Key.eq(&key.key))
            .filter(throttle::Column::WindowStartedAt.gt(now - WINDOW))
            .exec(tx.conn())
            .await?;
        if bumped.rows_affected == 0 {
            let fresh = throttle::ActiveModel {
                key: Set(key.key.clone()),
                failures: Set(1),
                window_started_at: Set(now),
                locked_until: Set(None),
            };
            throttle::Entity::insert(fresh)
                .on_conflict(
                    OnConflict::column(throttle::Column::Key)
                        .update_columns([
                            throttle::Column::Failures,
                            throttle::Column::WindowStartedAt,
                            throttle::Column::LockedUntil,
                        ])
                        .to_owned(),
                )
                .exec(tx.conn())
                .await?;
        }
        throttle::Entity::update_many()
            .col_expr(throttle::Column::LockedUntil, Expr::value(now + LOCK_FOR))
            .filter(throttle::Column::Key.eq(&key.key))
            .filter(throttle::Column::Failures.gte(key.lock_after))
            .filter(throttle::Column::LockedUntil.is_null())
            .exec(tx.conn())
            .await?;
        if let Some(row) = throttle::Entity::find_by_id(key.key.clone())
            .one(tx.conn())
            .await?
        {
            worst = worst.max(row.failures);
        }
    }
    tx.commit().await?;
    Ok(delay_for(worst))
}

fn delay_for(failures: i32) -> Duration {
    if failures < SLOW_AFTER {
        return Duration::ZERO;
    }
    let exp = (failures - SLOW_AFTER).min(8) as u32;
    (Duration::from_millis(250) * 2u32.pow(exp)).min(MAX_DELAY)
}

/// A successful sign-in forgets the account's failures.
pub async fn clear(db: &Db, key: &Key) -> Result<()> {
    let tx = db.global(true).await?;
    throttle::Entity::delete_by_id(key.key.clone())
        .exec(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Forgets windows that ended long ago (run by the maintenance worker).
pub async fn purge_expired(db: &Db) -> Result<u64> {
    let tx = db.global(true).await?;
    let now = Utc::now();
    let res = throttle::Entity::delete_many()
        .filter(throttle::Column::WindowStartedAt.lt(now - WINDOW - LOCK_FOR))
        .filter(sea_orm::sea_query::ExprTrait::or(
            throttle::Column::LockedUntil.is_null(),
            throttle::Column::LockedUntil.lt(now),
        ))
        .exec(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(res.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_then_caps() {
        assert_eq!(delay_for(1), Duration::ZERO);
        assert_eq!(delay_for(2), Duration::ZERO);
        assert_eq!(delay_for(3), Duration::from_millis(250));
        assert_eq!(delay_for(4), Duration::from_millis(500));
        assert_eq!(delay_for(9), MAX_DELAY);
        assert_eq!(delay_for(1000), MAX_DELAY);
    }
}
