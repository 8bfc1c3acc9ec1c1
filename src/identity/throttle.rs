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
    store::{Db, GlobalTx},
};

const WINDOW: TimeDelta = TimeDelta::minutes(15);
/// Sign-ups are counted per hour (`DOCKET_SIGNUP_LIMIT_PER_HOUR`).
const SIGN_UP_WINDOW: TimeDelta = TimeDelta::hours(1);
const LOCK_FOR: TimeDelta = TimeDelta::minutes(15);
const SLOW_AFTER: i32 = 3;
const MAX_DELAY: Duration = Duration::from_secs(2);

/// A throttled key and how many failures within its window lock it.
pub struct Key {
    pub key: String,
    pub lock_after: i32,
    pub window: TimeDelta,
}

impl Key {
    pub fn account(email: &str) -> Self {
        Self {
            key: format!("email:{email}"),
            lock_after: 10,
            window: WINDOW,
        }
    }
    pub fn address(ip: std::net::IpAddr) -> Self {
        Self {
            key: format!("ip:{ip}"),
            lock_after: 50,
            window: WINDOW,
        }
    }
    /// Wrong second factors (codes, recovery codes) of one account, throttled like passwords.
    pub fn second_factor(user_id: uuid::Uuid) -> Self {
        Self {
            key: format!("mfa:{user_id}"),
            lock_after: 10,
            window: WINDOW,
        }
    }
    /// Password reset requests for one address: each one counts.
    pub fn reset_requests_for(email: &str) -> Self {
        Self {
            key: format!("reset:{email}"),
            lock_after: 3,
            window: WINDOW,
        }
    }
    /// Mails offering to link (or claim) the tickets an address sent by mail: each one counts.
    pub fn contact_links_for(email: &str) -> Self {
        Self {
            key: format!("contact-link:{email}"),
            lock_after: 3,
            window: WINDOW,
        }
    }
    /// Password reset requests from one client address: each one counts.
    pub fn reset_requests_from(ip: std::net::IpAddr) -> Self {
        Self {
            key: format!("reset-ip:{ip}"),
            lock_after: 20,
            window: WINDOW,
        }
    }
    /// Sign-up mails to one address (confirmation links, or notes that someone tried): each one
    /// counts.
    pub fn signup_mails_for(email: &str) -> Self {
        Self {
            key: format!("signup-mail:{email}"),
            lock_after: 3,
            window: SIGN_UP_WINDOW,
        }
    }
    /// Sign-ups from one address, `per_hour` at most: each one counts, successful or not.
    pub fn sign_ups(ip: std::net::IpAddr, per_hour: u32) -> Self {
        Self {
            key: format!("signup:{ip}"),
            lock_after: i32::try_from(per_hour).unwrap_or(i32::MAX),
            window: SIGN_UP_WINDOW,
        }
    }
}

/// The shortest `Retry-After` of a refused attempt.
const IN_FLIGHT_RETRY: Duration = Duration::from_secs(1);

/// Counts an attempt against every key before its password is judged, in one transaction, so
/// that however many attempts arrive at once, no more than a key's allowance is ever judged in
/// its window: the rest are refused with 429 before any password work. A key that is locked, or
/// whose allowance is taken, refuses.
pub async fn reserve(db: &Db, keys: &[Key]) -> Result<()> {
    let tx = db.global(true).await?;
    let now = Utc::now();
    for key in keys {
        // A new key, or one whose window has passed (and that is not locked), starts afresh.
        throttle::Entity::insert(throttle::ActiveModel {
            key: Set(key.key.clone()),
            failures: Set(0),
            window_started_at: Set(now),
            locked_until: Set(None),
        })
        .on_conflict(
            OnConflict::column(throttle::Column::Key)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(tx.conn())
        .await?;
        throttle::Entity::update_many()
            .col_expr(throttle::Column::Failures, Expr::value(0))
            .col_expr(throttle::Column::WindowStartedAt, Expr::value(now))
            .col_expr(
                throttle::Column::LockedUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .filter(throttle::Column::Key.eq(&key.key))
            .filter(throttle::Column::WindowStartedAt.lte(now - key.window))
            .filter(unlocked(now))
            .exec(tx.conn())
            .await?;
        // Take one attempt of the allowance, if one is left (atomic: a concurrent attempt
        // waits for this row and then sees the new count).
        let taken = throttle::Entity::update_many()
            .col_expr(
                throttle::Column::Failures,
                sea_orm::sea_query::ExprTrait::add(Expr::col(throttle::Column::Failures), 1),
            )
            .filter(throttle::Column::Key.eq(&key.key))
            .filter(throttle::Column::Failures.lt(key.lock_after))
            .filter(unlocked(now))
            .exec(tx.conn())
            .await?;
        if taken.rows_affected == 0 {
            // Locked: until the lock ends. Allowance taken: until the window ends.
            let free_at = throttle::Entity::find_by_id(key.key.clone())
                .one(tx.conn())
                .await?
                .map(|row| {
                    row.locked_until
                        .filter(|until| *until > now)
                        .unwrap_or(row.window_started_at + key.window)
                });
            tx.rollback().await?;
            let retry_after = free_at
                .and_then(|at| (at - now).to_std().ok())
                .unwrap_or(IN_FLIGHT_RETRY)
                .max(IN_FLIGHT_RETRY);
            return Err(Error::TooManyRequests {
                detail: "too many attempts; try again later".into(),
                retry_after,
            });
        }
    }
    tx.commit().await?;
    Ok(())
}

fn unlocked(now: chrono::DateTime<Utc>) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(throttle::Column::LockedUntil.is_null())
        .add(throttle::Column::LockedUntil.lte(now))
}

/// The reserved attempt failed: keys whose allowance is used up lock, and the answer is held
/// back for the returned time.
pub async fn failed(db: &Db, keys: &[Key]) -> Result<Duration> {
    let tx = db.global(true).await?;
    let now = Utc::now();
    let mut worst = 0;
    for key in keys {
        throttle::Entity::update_many()
            .col_expr(throttle::Column::LockedUntil, Expr::value(now + LOCK_FOR))
            .filter(throttle::Column::Key.eq(&key.key))
            .filter(throttle::Column::Failures.gte(key.lock_after))
            .filter(unlocked(now))
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

/// The reserved attempt succeeded: the account forgets its failures, and the attempt is given
/// back to the other keys (a right password is no failure of the address).
pub async fn succeeded(db: &Db, account: &Key, others: &[Key]) -> Result<()> {
    let tx = db.global(true).await?;
    throttle::Entity::delete_by_id(account.key.clone())
        .exec(tx.conn())
        .await?;
    give_back(&tx, others).await?;
    tx.commit().await?;
    Ok(())
}

/// The reserved attempt was never judged (the server was too busy to verify it): it is given
/// back, so a flood of refused attempts cannot use up an account's allowance.
pub async fn release(db: &Db, keys: &[Key]) -> Result<()> {
    let tx = db.global(true).await?;
    give_back(&tx, keys).await?;
    tx.commit().await?;
    Ok(())
}

async fn give_back(tx: &GlobalTx, keys: &[Key]) -> Result<()> {
    for key in keys {
        throttle::Entity::update_many()
            .col_expr(
                throttle::Column::Failures,
                sea_orm::sea_query::ExprTrait::sub(Expr::col(throttle::Column::Failures), 1),
            )
            .filter(throttle::Column::Key.eq(&key.key))
            .filter(throttle::Column::Failures.gt(0))
            .exec(tx.conn())
            .await?;
    }
    Ok(())
}

fn delay_for(failures: i32) -> Duration {
    if failures < SLOW_AFTER {
        return Duration::ZERO;
    }
    let exp = (failures - SLOW_AFTER).min(8) as u32;
    (Duration::from_millis(250) * 2u32.pow(exp)).min(MAX_DELAY)
}

/// Forgets windows that ended long ago (run by the maintenance worker).
pub async fn purge_expired(db: &Db) -> Result<u64> {
    let tx = db.global(true).await?;
    let now = Utc::now();
    let res = throttle::Entity::delete_many()
        .filter(throttle::Column::WindowStartedAt.lt(now - WINDOW.max(SIGN_UP_WINDOW) - LOCK_FOR))
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
