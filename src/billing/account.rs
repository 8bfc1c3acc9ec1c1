//! An organisation's account at Stripe (`org_billing`) and the plan it earns: the customer, the
//! subscription Docket follows and the position of the last event applied to it, a payment
//! overdue (and when its grace ends), a cancellation at the period's end. The plan follows from
//! that row alone ([`due_plan`]); every change to the row, and the worker when a grace or a
//! cancellation ends ([`Account::review_at`]), settles the plan to it.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, IntoActiveModel};
use serde_json::Value;
use uuid::Uuid;

use crate::{audit, error::Result, plans, store::TenantTx};

pub(crate) mod entity {
    pub mod org_billing {
        crate::store::tenant_entity!("org_billing" {
            customer_id: Option<String>,
            subscription_id: Option<String>,
            /// The followed subscription's own creation time: the newer subscription wins.
            subscription_created: Option<DateTimeUtc>,
            subscription_status: Option<String>,
            /// The plan the subscription's price buys (none: a price of no plan here).
            subscribed_plan: Option<String>,
            /// The time of the last subscription event applied, and its kind's rank.
            state_at: Option<DateTimeUtc>,
            state_rank: i32,
            /// The subscription ends then (cancelled at the period's end).
            cancel_at: Option<DateTimeUtc>,
            past_due_since: Option<DateTimeUtc>,
            grace_ends_at: Option<DateTimeUtc>,
            /// When the worker must settle the plan again (a grace or a cancellation ends).
            review_at: Option<DateTimeUtc>,
            updated_at: DateTimeUtc,
        });
    }
}

pub(crate) use entity::org_billing::Model as Account;

/// Whether a subscription in `status` gives the organisation what it pays for (`past_due`
/// during the grace).
fn live(status: Option<&str>) -> bool {
    matches!(status, Some("active" | "trialing" | "past_due"))
}

/// A subscription as a Stripe event carries it.
#[derive(Clone, Debug, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub customer: Option<String>,
    pub created: DateTime<Utc>,
    pub status: String,
    /// The price (or, in older API versions, the plan) of its first item.
    pub price: Option<String>,
    /// When it ends, if cancelled (at the period's end, or at a set time).
    pub ends_at: Option<DateTime<Utc>>,
    /// `metadata.docket_org_id`: the organisation Docket's checkout made it for.
    pub org: Option<Uuid>,
}

impl Subscription {
    /// Reads a `subscription` object; `None` when it is not one.
    pub fn parse(object: &Value) -> Option<Self> {
        if object.get("object").and_then(Value::as_str) != Some("subscription") {
            return None;
        }
        let item = object.pointer("/items/data/0");
        let price = item
            .and_then(|i| i.pointer("/price/id").or_else(|| i.pointer("/plan/id")))
            .or_else(|| object.pointer("/plan/id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let period_end = object
            .get("current_period_end")
            .or_else(|| item.and_then(|i| i.get("current_period_end")))
            .and_then(timestamp);
        let ends_at = if object.get("cancel_at_period_end").and_then(Value::as_bool) == Some(true) {
            period_end
        } else {
            object.get("cancel_at").and_then(timestamp)
        };
        Some(Self {
            id: object.get("id")?.as_str()?.to_owned(),
            customer: id_of(object.get("customer")),
            created: object.get("created").and_then(timestamp)?,
            status: object.get("status")?.as_str()?.to_owned(),
            price,
            ends_at,
            org: object
                .pointer("/metadata/docket_org_id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok()),
        })
    }
}

/// Whether the account pays through a live subscription.
pub(crate) fn subscribed(account: &Account) -> bool {
    account.subscription_id.is_some() && live(account.subscription_status.as_deref())
}

/// A Unix time in seconds.
pub(crate) fn timestamp(value: &Value) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(value.as_i64()?, 0).single()
}

/// The id of a field that is an id or an expanded object.
pub(crate) fn id_of(value: Option<&Value>) -> Option<String> {
    let value = value?;
    value
        .as_str()
        .or_else(|| value.get("id").and_then(Value::as_str))
        .map(str::to_owned)
}

/// Where an event stands in a subscription's history: its time, and for events of the same
/// second the order their kinds happen in (created, updated, deleted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub at: DateTime<Utc>,
    pub rank: i32,
}

/// The subscription an account follows, as the rule compares them.
#[derive(Debug)]
struct Followed<'a> {
    id: &'a str,
    created: DateTime<Utc>,
    live: bool,
    position: Position,
}

/// Whether an event for `next` changes what the account follows (`current`): the same
/// subscription moves only forwards (an older event never overrides a newer state); another
/// one takes over when it is live and newer, or the current one has ended.
fn takes(current: Option<&Followed>, next: &Followed) -> bool {
    match current {
        None => next.live,
        Some(cur) if cur.id == next.id => next.position >= cur.position,
        Some(cur) => next.live && (!cur.live || (next.created, next.id) > (cur.created, cur.id)),
    }
}

/// The plan the account's state earns at `now`: `None` when it follows no subscription (the
/// plan is the operator's to set), `Some(None)` for the default plan.
fn due_plan(account: &Account, now: DateTime<Utc>) -> Option<Option<String>> {
    account.subscription_id.as_ref()?;
    let live = live(account.subscription_status.as_deref());
    let grace_over = account.grace_ends_at.is_some_and(|t| t <= now);
    let ended = account.cancel_at.is_some_and(|t| t <= now);
    if live && !grace_over && !ended {
        // A price of no plan here leaves the plan as it is.
        account.subscribed_plan.clone().map(Some)
    } else {
        Some(None)
    }
}

/// The account of the organisation of `tx`, its row (created on first use) locked until the
/// transaction ends: billing events for one organisation apply one at a time.
pub(crate) async fn locked(tx: &TenantTx) -> Result<Account> {
    use entity::org_billing::ActiveModel;
    Ok(tx
        .lock_own_row::<entity::org_billing::Entity>(ActiveModel {
            org_id: Set(tx.org_id()),
            customer_id: Set(None),
            subscription_id: Set(None),
            subscription_created: Set(None),
            subscription_status: Set(None),
            subscribed_plan: Set(None),
            state_at: Set(None),
            state_rank: Set(0),
            cancel_at: Set(None),
            past_due_since: Set(None),
            grace_ends_at: Set(None),
            review_at: Set(None),
            updated_at: Set(Utc::now()),
        })
        .await?)
}

/// The account of the organisation of `tx`, if it has one.
pub(crate) async fn get(tx: &TenantTx) -> Result<Option<Account>> {
    Ok(tx
        .find::<entity::org_billing::Entity>()
        .one(tx.conn())
        .await?)
}

/// Applies the state of `sub` at `position` to `account`, if it is news ([`takes`]).
pub(crate) async fn follow(
    tx: &TenantTx,
    account: Account,
    sub: &Subscription,
    position: Position,
) -> Result<Option<Account>> {
    let current = match (&account.subscription_id, account.subscription_created) {
        (Some(id), Some(created)) => Some(Followed {
            id,
            created,
            live: live(account.subscription_status.as_deref()),
            position: Position {
                at: account.state_at.unwrap_or(created),
                rank: account.state_rank,
            },
        }),
        _ => None,
    };
    let next = Followed {
        id: &sub.id,
        created: sub.created,
        live: live(Some(&sub.status)),
        position,
    };
    if !takes(current.as_ref(), &next) {
        return Ok(None);
    }
    let same = account.subscription_id.as_deref() == Some(sub.id.as_str());
    let subscribed_plan = match &sub.price {
        Some(price) => plans::for_price(tx.conn(), price).await?,
        None => None,
    };
    if subscribed_plan.is_none() {
        tracing::warn!(subscription = %sub.id, price = ?sub.price,
            "a subscription's price is no plan's stripe_price_id; its plan is left as it is");
    }
    let mut row = account.into_active_model();
    row.subscription_id = Set(Some(sub.id.clone()));
    row.subscription_created = Set(Some(sub.created));
    row.subscription_status = Set(Some(sub.status.clone()));
    row.subscribed_plan = Set(subscribed_plan);
    row.state_at = Set(Some(position.at));
    row.state_rank = Set(position.rank);
    row.cancel_at = Set(sub.ends_at);
    if sub.customer.is_some() && row.customer_id.as_ref().is_none() {
        row.customer_id = Set(sub.customer.clone());
    }
    // A payment overdue belongs to the subscription it was for; Stripe says when it is paid.
    if !same || sub.status == "active" || sub.status == "trialing" {
        row.past_due_since = Set(None);
        row.grace_ends_at = Set(None);
    }
    row.updated_at = Set(Utc::now());
    Ok(Some(row.update(tx.conn()).await?))
}

/// Notes that a payment failed at `now`: the grace starts (once; retries do not extend it).
/// Answers the account and whether it has just become overdue.
pub(crate) async fn payment_failed(
    tx: &TenantTx,
    account: Account,
    now: DateTime<Utc>,
    grace: Duration,
) -> Result<(Account, bool)> {
    if account.past_due_since.is_some() {
        return Ok((account, false));
    }
    let mut row = account.into_active_model();
    row.past_due_since = Set(Some(now));
    row.grace_ends_at = Set(Some(now + grace));
    row.updated_at = Set(Utc::now());
    Ok((row.update(tx.conn()).await?, true))
}

/// Notes that the overdue payment was made: the grace ends, a plan taken away comes back.
pub(crate) async fn payment_succeeded(tx: &TenantTx, account: Account) -> Result<(Account, bool)> {
    if account.past_due_since.is_none() {
        return Ok((account, false));
    }
    let mut row = account.into_active_model();
    row.past_due_since = Set(None);
    row.grace_ends_at = Set(None);
    row.updated_at = Set(Utc::now());
    Ok((row.update(tx.conn()).await?, true))
}

/// Records the organisation's Stripe customer, unless it has one.
pub(crate) async fn set_customer(
    tx: &TenantTx,
    account: Account,
    customer: &str,
) -> Result<Account> {
    if account.customer_id.is_some() {
        return Ok(account);
    }
    let mut row = account.into_active_model();
    row.customer_id = Set(Some(customer.to_owned()));
    row.updated_at = Set(Utc::now());
    Ok(row.update(tx.conn()).await?)
}

/// Puts the organisation on the plan its account earns at `now` and notes when to look again;
/// a change is audited with `reason`. Answers the change, if any.
pub(crate) async fn settle(
    tx: &TenantTx,
    account: Account,
    now: DateTime<Utc>,
    reason: &str,
) -> Result<Option<plans::Change>> {
    let review_at = [account.grace_ends_at, account.cancel_at]
        .into_iter()
        .flatten()
        .filter(|t| *t > now)
        .min();
    let due = due_plan(&account, now);
    if account.review_at != review_at {
        let mut row = account.into_active_model();
        row.review_at = Set(review_at);
        row.update(tx.conn()).await?;
    }
    let Some(plan) = due else {
        return Ok(None);
    };
    let change = plans::assign(tx, plan.as_deref()).await?;
    if change.from == change.to {
        return Ok(None);
    }
    audit::record(
        tx,
        None,
        "plan.changed",
        "organization",
        Some(tx.org_id()),
        serde_json::json!({"from": change.from, "to": change.to, "reason": reason}),
    )
    .await?;
    tracing::info!(org = %tx.org_id(), from = %change.from, to = %change.to, %reason, "plan changed");
    Ok(Some(change))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_765_000_000 + secs, 0).unwrap()
    }

    fn sub<'a>(id: &'a str, created: i64, live: bool, at: i64, rank: i32) -> Followed<'a> {
        Followed {
            id,
            created: t(created),
            live,
            position: Position { at: t(at), rank },
        }
    }

    #[test]
    fn the_same_subscription_only_moves_forwards() {
        let cur = sub("sub_a", 0, true, 10, 1);
        assert!(takes(Some(&cur), &sub("sub_a", 0, true, 11, 1)));
        assert!(
            !takes(Some(&cur), &sub("sub_a", 0, true, 9, 1)),
            "an older update"
        );
        assert!(
            !takes(Some(&cur), &sub("sub_a", 0, true, 10, 0)),
            "created after updated, same second"
        );
        assert!(
            takes(Some(&cur), &sub("sub_a", 0, false, 10, 2)),
            "deleted after updated, same second"
        );
        let deleted = sub("sub_a", 0, false, 20, 2);
        assert!(
            !takes(Some(&deleted), &sub("sub_a", 0, true, 15, 1)),
            "an update older than the deletion"
        );
    }

    #[test]
    fn a_newer_live_subscription_takes_over_and_an_older_one_does_not() {
        let cur = sub("sub_a", 0, true, 10, 0);
        assert!(takes(Some(&cur), &sub("sub_b", 5, true, 6, 0)));
        assert!(
            !takes(Some(&cur), &sub("sub_b", -5, true, 60, 1)),
            "an older subscription"
        );
        assert!(
            !takes(Some(&cur), &sub("sub_b", 5, false, 60, 2)),
            "a newer one that ended"
        );
        let ended = sub("sub_a", 0, false, 10, 2);
        assert!(
            takes(Some(&ended), &sub("sub_b", -5, true, 60, 1)),
            "the current one ended"
        );
    }

    #[test]
    fn an_account_with_no_subscription_takes_only_a_live_one() {
        assert!(takes(None, &sub("sub_a", 0, true, 0, 0)));
        assert!(!takes(None, &sub("sub_a", 0, false, 0, 2)));
    }

    fn account() -> Account {
        Account {
            org_id: Uuid::nil(),
            customer_id: Some("cus_1".into()),
            subscription_id: Some("sub_a".into()),
            subscription_created: Some(t(0)),
            subscription_status: Some("active".into()),
            subscribed_plan: Some("team".into()),
            state_at: Some(t(0)),
            state_rank: 0,
            cancel_at: None,
            past_due_since: None,
            grace_ends_at: None,
            review_at: None,
            updated_at: t(0),
        }
    }

    #[test]
    fn the_plan_follows_the_subscription_its_grace_and_its_end() {
        let now = t(100);
        assert_eq!(due_plan(&account(), now), Some(Some("team".into())));
        let none = Account {
            subscription_id: None,
            ..account()
        };
        assert_eq!(
            due_plan(&none, now),
            None,
            "no subscription: the operator's plan stays"
        );
        let unknown = Account {
            subscribed_plan: None,
            ..account()
        };
        assert_eq!(
            due_plan(&unknown, now),
            None,
            "an unknown price changes nothing"
        );
        let in_grace = Account {
            subscription_status: Some("past_due".into()),
            past_due_since: Some(t(0)),
            grace_ends_at: Some(t(200)),
            ..account()
        };
        assert_eq!(due_plan(&in_grace, now), Some(Some("team".into())));
        assert_eq!(due_plan(&in_grace, t(200)), Some(None), "the grace is over");
        let cancelling = Account {
            cancel_at: Some(t(150)),
            ..account()
        };
        assert_eq!(due_plan(&cancelling, now), Some(Some("team".into())));
        assert_eq!(
            due_plan(&cancelling, t(150)),
            Some(None),
            "the period ended"
        );
        for status in ["canceled", "unpaid", "incomplete_expired", "incomplete"] {
            let ended = Account {
                subscription_status: Some(status.into()),
                ..account()
            };
            assert_eq!(due_plan(&ended, now), Some(None), "{status}");
        }
    }

    #[test]
    fn subscriptions_parse_from_current_and_older_api_versions() {
        let current = serde_json::json!({
            "id": "sub_1", "object": "subscription", "customer": "cus_1", "created": 1_765_000_000,
            "status": "active", "cancel_at_period_end": true, "current_period_end": 1_767_000_000,
            "items": {"data": [{"price": {"id": "price_team"}}]},
            "metadata": {"docket_org_id": "0b6f3c3e-9a52-4f43-9d5a-8f6c2a7e1d10"}
        });
        let s = Subscription::parse(&current).unwrap();
        assert_eq!(s.price.as_deref(), Some("price_team"));
        assert_eq!(s.ends_at, Utc.timestamp_opt(1_767_000_000, 0).single());
        assert!(s.org.is_some());
        let older = serde_json::json!({
            "id": "sub_2", "object": "subscription", "customer": {"id": "cus_2"},
            "created": 1_765_000_000, "status": "past_due", "cancel_at_period_end": false,
            "plan": {"id": "plan_team"}, "metadata": {"docket_org_id": "not a uuid"}
        });
        let s = Subscription::parse(&older).unwrap();
        assert_eq!(
            (s.price.as_deref(), s.customer.as_deref(), s.ends_at, s.org),
            (Some("plan_team"), Some("cus_2"), None, None)
        );
        assert_eq!(
            Subscription::parse(&serde_json::json!({"object": "invoice", "id": "in_1"})),
            None
        );
        assert_eq!(
            Subscription::parse(&serde_json::json!({"object": "subscription", "id": 5})),
            None
        );
    }
}
