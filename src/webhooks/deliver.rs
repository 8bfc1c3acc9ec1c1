//! The sender: claims due deliveries across tenants, posts each signed, and settles it in its
//! tenant: succeeded, retried on the schedule, or failed; every attempt is logged.
//!
//! - Schedule (Standard Webhooks): at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h,
//!   20 h and 24 h after each failure (about 3 days), each delay ±10% so a recovered endpoint
//!   is not hit by every retry at once. A 429 or 503 with `Retry-After` is retried when the
//!   endpoint asks (up to a day) without using up a scheduled attempt, 20 times per delivery;
//!   after that such answers use up steps (waiting at least as long as asked).
//! - Only 2xx succeeds; redirects are not followed (a 3xx is a failure); 410 Gone fails the
//!   delivery and disables the endpoint, as do 5 days of failures without a success; the
//!   organisation's admins hear of it (`webhook.disabled`).
//! - At most [`PER_ENDPOINT`] deliveries of one endpoint are in flight, and [`AT_ONCE`] in
//!   all: a slow or dead endpoint holds only its own slots, never other endpoints' or
//!   tenants'. Claims last a lease and are fenced by a claim count, as the mail sender's.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng as _;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use tokio::{sync::watch, task::JoinSet};

use super::{Status, Webhooks, attempt, delivery, message_id, sign, webhook};
use crate::{
    error::Result,
    events::{self, Body, contract::WebhookDisabled},
    store::{Db, TenantTx, statement},
};

/// Deliveries of one endpoint in flight at once.
pub const PER_ENDPOINT: usize = 4;
/// Deliveries in flight at once, all endpoints together.
const AT_ONCE: usize = 32;
/// How often an idle sender looks for due retries and other processes' deliveries.
const POLL: Duration = Duration::from_secs(1);
/// Delays before each attempt: the first at once, the last a day after the one before it.
const SCHEDULE: [u64; 10] = [
    0, 5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400,
];
/// A delivery the endpoint keeps asking to wait for (`Retry-After`) is given up at this age.
const MAX_AGE: chrono::Duration = chrono::Duration::days(4);
/// Waits an endpoint may ask for (429/503 with `Retry-After`) before each further one uses up a
/// step of the schedule: an endpoint that answers "retry in a second" forever gets about 30
/// attempts per delivery, not one a second for days.
const MAX_THROTTLED: i32 = 20;
/// Continuous failure for this long disables the endpoint.
const DISABLE_AFTER: chrono::Duration = chrono::Duration::days(5);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);
/// Bytes of each answer the log keeps.
const KEEP_RESPONSE: usize = 2048;
/// Deliveries and attempts are kept in the log this long.
const KEEP_LOG: chrono::Duration = chrono::Duration::days(30);

struct Claimed {
    delivery: delivery::Model,
    hook: webhook::Model,
}

/// Sends until `stop` turns true; deliveries in flight finish first.
pub async fn run(db: Db, hooks: Webhooks, mut stop: watch::Receiver<bool>) {
    let mut in_flight = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let room = AT_ONCE - in_flight.len();
        let claimed = if room > 0 {
            claim(&db, &hooks, room).await.unwrap_or_else(|err| {
                tracing::warn!(error = ?err, "claiming webhook deliveries failed; will retry");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        let found = !claimed.is_empty();
        for c in claimed {
            let (db, hooks) = (db.clone(), hooks.clone());
            in_flight.spawn(async move { deliver(&db, &hooks, c).await });
        }
        if found && in_flight.len() < AT_ONCE {
            continue;
        }
        tokio::select! {
            _ = db.signals().webhooks.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// Sends every delivery that is due now and returns how many attempts it made (for tests and
/// tools that own the worker).
pub async fn drain(db: &Db, hooks: &Webhooks) -> Result<usize> {
    let mut total = 0;
    loop {
        let claimed = claim(db, hooks, AT_ONCE).await?;
        if claimed.is_empty() {
            return Ok(total);
        }
        total += claimed.len();
        futures_util::future::join_all(claimed.into_iter().map(|c| deliver(db, hooks, c))).await;
    }
}

async fn claim(db: &Db, hooks: &Webhooks, limit: usize) -> Result<Vec<Claimed>> {
    let now = Utc::now();
    // Longer than an attempt can take, so a live sender never loses its claim.
    let lease = hooks.timeout * 2 + Duration::from_secs(30);
    let tx = db.maintenance().await?;
    let backend = tx.conn().get_database_backend();
    let sql = format!(
        "UPDATE webhook_deliveries SET status = 'delivering', claims = claims + 1, \
           locked_until = $1 \
         WHERE (status = 'pending' OR (status = 'delivering' AND locked_until <= $2)) \
           AND (org_id, id) IN ( \
             SELECT org_id, id FROM ( \
               SELECT d.org_id, d.id, d.next_attempt_at, ROW_NUMBER() OVER ( \
                 PARTITION BY d.org_id, d.webhook_id ORDER BY d.next_attempt_at, d.id) AS place \
               FROM webhook_deliveries d \
               JOIN webhooks w ON w.org_id = d.org_id AND w.id = d.webhook_id AND w.active \
               JOIN organizations o ON o.id = d.org_id AND o.deleted_at IS NULL \
               WHERE ((d.status = 'pending' AND d.next_attempt_at <= $2) \
                   OR (d.status = 'delivering' AND d.locked_until <= $2)) \
                 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries busy \
                   WHERE busy.org_id = d.org_id AND busy.webhook_id = d.webhook_id \
                     AND busy.status = 'delivering' AND busy.locked_until > $2) \
             ) due WHERE place <= {PER_ENDPOINT} ORDER BY next_attempt_at LIMIT {limit}) \
         RETURNING *"
    );
    let lease_end = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::hours(1));
    let claimed = delivery::Entity::find()
        .from_raw_sql(statement(backend, &sql, [lease_end.into(), now.into()]))
        .all(tx.conn())
        .await?;
    if claimed.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let hooks_of = webhook::Entity::find()
        .filter(webhook::Column::Id.is_in(claimed.iter().map(|d| d.webhook_id)))
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(claimed
        .into_iter()
        .filter_map(|delivery| {
            let hook = hooks_of
                .iter()
                .find(|h| h.org_id == delivery.org_id && h.id == delivery.webhook_id)?
                .clone();
            Some(Claimed { delivery, hook })
        })
        .collect())
}

/// What one attempt found.
struct Answer {
    status: Option<u16>,
    retry_after: Option<Duration>,
    error: Option<String>,
    response: Option<String>,
    latency: Duration,
}

async fn deliver(db: &Db, hooks: &Webhooks, c: Claimed) {
    let answer = post(hooks, &c).await;
    if let Err(err) = settle(db, &c, answer).await {
        // The lease runs out and the delivery is claimed again.
        tracing::warn!(error = ?err, delivery = %c.delivery.id, "settling a webhook delivery failed");
    }
}

async fn post(hooks: &Webhooks, c: &Claimed) -> Answer {
    let started = Instant::now();
    let failed = |error: String| Answer {
        status: None,
        retry_after: None,
        error: Some(error),
        response: None,
        latency: started.elapsed(),
    };
    // The URL was checked when it was saved; it is checked again against today's settings.
    let url = match hooks.guard.check_url(&c.hook.url) {
        Ok(url) => url,
        Err(why) => return failed(why),
    };
    let now = Utc::now();
    let secrets = match hooks.signing_secrets(&c.hook, now) {
        Ok(s) => s,
        Err(_) => return failed("the signing secret cannot be read: rotate it".into()),
    };
    let msg_id = message_id(c.delivery.id);
    let timestamp = now.timestamp();
    let body = c.delivery.payload.clone().into_bytes();
    let sent = hooks
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            sign::signature(&secrets, &msg_id, timestamp, &body),
        )
        .body(body)
        .send()
        .await;
    let mut response = match sent {
        Ok(r) => r,
        Err(err) if err.is_timeout() => {
            return failed(format!("no answer within {} s", hooks.timeout.as_secs()));
        }
        Err(err) => return failed(describe(&err)),
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, now));
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut kept = Vec::new();
    while kept.len() < KEEP_RESPONSE {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(KEEP_RESPONSE);
    let error = if status.is_success() {
        None
    } else if status.is_redirection() {
        Some(format!(
            "HTTP {status}: redirects are not followed{}",
            location.map(|l| format!(" (to {l})")).unwrap_or_default()
        ))
    } else {
        Some(format!("HTTP {status}"))
    };
    Answer {
        status: Some(status.as_u16()),
        retry_after,
        error,
        // As text the log can hold: invalid UTF-8 replaced, NUL (which PostgreSQL's text
        // refuses) dropped.
        response: Some(String::from_utf8_lossy(&kept).replace('\0', "")),
        latency: started.elapsed(),
    }
}

/// The error and its causes, e.g. "connection refused" or the guard's refusal of a name.
fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or_default())
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, PartialEq)]
enum Verdict {
    Succeeded,
    /// Try again at this time; `scheduled` when it used up a step of the schedule.
    Retry {
        at: DateTime<Utc>,
        scheduled: bool,
    },
    Failed,
    /// 410: the endpoint is gone for good.
    Gone,
}

fn verdict(
    step: i32,
    throttled: i32,
    created_at: DateTime<Utc>,
    status: Option<u16>,
    retry_after: Option<Duration>,
    now: DateTime<Utc>,
) -> Verdict {
    let asked = match status {
        Some(200..=299) => return Verdict::Succeeded,
        Some(410) => return Verdict::Gone,
        Some(429 | 503) => retry_after.map(|wait| {
            chrono::Duration::from_std(wait.clamp(Duration::from_secs(1), MAX_RETRY_AFTER))
                .unwrap_or_default()
        }),
        _ => None,
    };
    if let Some(wait) = asked {
        if now - created_at > MAX_AGE {
            return Verdict::Failed;
        }
        if throttled < MAX_THROTTLED {
            return Verdict::Retry {
                at: now + wait,
                scheduled: false,
            };
        }
    }
    // A failure, or an endpoint that keeps asking to wait: the next step of the schedule (not
    // sooner than it asked).
    let next = step as usize + 1;
    match SCHEDULE.get(next) {
        None => Verdict::Failed,
        Some(&secs) => {
            let jittered = secs as f64 * rand::rng().random_range(0.9..1.1);
            let scheduled = chrono::Duration::milliseconds((jittered * 1000.0) as i64);
            Verdict::Retry {
                at: now + scheduled.max(asked.unwrap_or_default()),
                scheduled: true,
            }
        }
    }
}

async fn settle(db: &Db, c: &Claimed, answer: Answer) -> Result<()> {
    let now = Utc::now();
    let d = &c.delivery;
    // Claims that neither used a step nor ended the delivery were waits the endpoint asked for.
    let throttled = (d.claims - 1 - d.step).max(0);
    let verdict = verdict(
        d.step,
        throttled,
        d.created_at,
        answer.status,
        answer.retry_after,
        now,
    );
    let tx = db.write_org(d.org_id).await?;
    attempt::Entity::insert(attempt::ActiveModel {
        org_id: sea_orm::Set(d.org_id),
        id: sea_orm::Set(uuid::Uuid::now_v7()),
        delivery_id: sea_orm::Set(d.id),
        webhook_id: sea_orm::Set(d.webhook_id),
        attempted_at: sea_orm::Set(now),
        status_code: sea_orm::Set(answer.status.map(i32::from)),
        latency_ms: sea_orm::Set(answer.latency.as_millis().min(i32::MAX as u128) as i32),
        error: sea_orm::Set(answer.error.clone()),
        response: sea_orm::Set(answer.response.filter(|r| !r.is_empty())),
    })
    .exec_without_returning(tx.conn())
    .await?;
    let (status, step, next_at) = match &verdict {
        Verdict::Succeeded => (Status::Succeeded, d.step, now),
        Verdict::Failed | Verdict::Gone => (Status::Failed, d.step, now),
        Verdict::Retry { at, scheduled } => (Status::Pending, d.step + i32::from(*scheduled), *at),
    };
    let done = matches!(status, Status::Succeeded | Status::Failed);
    // Fenced by the claim count: a sender whose lease ran out settles nothing.
    tx.update_many::<delivery::Entity>()
        .col_expr(delivery::Column::Status, status.as_str().into())
        .col_expr(delivery::Column::Step, step.into())
        .col_expr(delivery::Column::NextAttemptAt, next_at.into())
        .col_expr(delivery::Column::LockedUntil, no_time().into())
        .col_expr(
            delivery::Column::LastStatus,
            answer.status.map(i32::from).into(),
        )
        .col_expr(delivery::Column::LastError, answer.error.clone().into())
        .col_expr(delivery::Column::CompletedAt, done.then_some(now).into())
        .filter(delivery::Column::Id.eq(d.id))
        .filter(delivery::Column::Claims.eq(d.claims))
        .filter(delivery::Column::Status.eq(Status::Delivering.as_str()))
        .exec(tx.conn())
        .await?;
    let hook = &c.hook;
    // The failure clock: started by the first failure since a success, stopped by a success.
    let clock = tx
        .update_many::<webhook::Entity>()
        .filter(webhook::Column::Id.eq(hook.id));
    let clock = if verdict == Verdict::Succeeded {
        clock
            .col_expr(webhook::Column::FailingSince, no_time().into())
            .filter(webhook::Column::FailingSince.is_not_null())
    } else {
        clock
            .col_expr(webhook::Column::FailingSince, Some(now).into())
            .filter(webhook::Column::FailingSince.is_null())
    };
    clock.exec(tx.conn()).await?;
    if verdict != Verdict::Succeeded {
        let since = hook.failing_since.unwrap_or(now);
        let reason = match verdict {
            Verdict::Gone => Some("the endpoint answered 410 Gone".to_owned()),
            _ if now - since >= DISABLE_AFTER => Some(format!(
                "every delivery failed for {} days (last: {})",
                DISABLE_AFTER.num_days(),
                answer.error.as_deref().unwrap_or("no answer")
            )),
            _ => None,
        };
        if let Some(reason) = reason {
            disable(&tx, hook, reason, now).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

fn no_time() -> Option<DateTime<Utc>> {
    None
}

/// Turns the endpoint off and tells the organisation's admins, once.
async fn disable(
    tx: &TenantTx,
    hook: &webhook::Model,
    reason: String,
    now: DateTime<Utc>,
) -> Result<()> {
    let turned_off = tx
        .update_many::<webhook::Entity>()
        .col_expr(webhook::Column::Active, false.into())
        .col_expr(webhook::Column::DisabledReason, Some(reason.clone()).into())
        .col_expr(webhook::Column::UpdatedAt, now.into())
        .filter(webhook::Column::Id.eq(hook.id))
        .filter(webhook::Column::Active.eq(true))
        .exec(tx.conn())
        .await?;
    if turned_off.rows_affected == 1 {
        tracing::warn!(webhook = %hook.id, %reason, "webhook disabled");
        let host = url::Url::parse(&hook.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        events::emit(
            tx,
            None,
            Body::WebhookDisabled(WebhookDisabled {
                webhook_id: hook.id,
                host,
                reason,
            }),
            now,
        )
        .await?;
    }
    Ok(())
}

/// Drops attempts and finished deliveries past the log's retention.
pub async fn purge_old(db: &Db) -> Result<u64> {
    let cutoff = Utc::now() - KEEP_LOG;
    let attempts = db
        .purge::<attempt::Entity>(
            sea_orm::Condition::all().add(attempt::Column::AttemptedAt.lt(cutoff)),
        )
        .await?;
    let deliveries = db
        .purge::<delivery::Entity>(
            sea_orm::Condition::all()
                .add(
                    delivery::Column::Status
                        .is_in([Status::Succeeded.as_str(), Status::Failed.as_str()]),
                )
                .add(delivery::Column::CreatedAt.lt(cutoff)),
        )
        .await?;
    Ok(attempts + deliveries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_runs_about_three_days_and_then_gives_up() {
        assert_eq!(SCHEDULE.iter().sum::<u64>(), 272_105);
        let now = Utc::now();
        for (step, secs) in SCHEDULE.iter().enumerate().skip(1) {
            let Verdict::Retry { at, scheduled } =
                verdict(step as i32 - 1, 0, now, Some(500), None, now)
            else {
                panic!("step {step} should retry");
            };
            assert!(scheduled);
            let delay = (at - now).num_milliseconds() as f64 / 1000.0;
            let want = *secs as f64;
            assert!(
                delay >= want * 0.9 - 0.001 && delay <= want * 1.1 + 0.001,
                "{step}: {delay}"
            );
        }
        assert_eq!(verdict(9, 0, now, Some(500), None, now), Verdict::Failed);
        assert_eq!(verdict(9, 0, now, None, None, now), Verdict::Failed);
    }

    #[test]
    fn only_2xx_succeeds_and_410_is_gone() {
        let now = Utc::now();
        assert_eq!(verdict(0, 0, now, Some(204), None, now), Verdict::Succeeded);
        assert_eq!(verdict(0, 0, now, Some(410), None, now), Verdict::Gone);
        for status in [301, 302, 400, 404, 500] {
            assert!(matches!(
                verdict(0, 0, now, Some(status), None, now),
                Verdict::Retry {
                    scheduled: true,
                    ..
                }
            ));
        }
    }

    #[test]
    fn retry_after_is_honoured_without_using_up_the_schedule_until_the_delivery_is_old() {
        let now = Utc::now();
        let wait = Some(Duration::from_secs(120));
        for status in [429, 503] {
            assert_eq!(
                verdict(3, 5, now, Some(status), wait, now),
                Verdict::Retry {
                    at: now + chrono::Duration::seconds(120),
                    scheduled: false
                }
            );
        }
        let old = now - chrono::Duration::days(5);
        assert_eq!(verdict(3, 0, old, Some(429), wait, now), Verdict::Failed);
        let forever = Some(Duration::from_secs(10 * 86_400));
        assert_eq!(
            verdict(0, 0, now, Some(503), forever, now),
            Verdict::Retry {
                at: now + chrono::Duration::days(1),
                scheduled: false
            }
        );
    }

    #[test]
    fn an_endpoint_that_keeps_asking_to_wait_uses_up_the_schedule() {
        let now = Utc::now();
        let soon = Some(Duration::from_secs(1));
        let Verdict::Retry { at, scheduled } = verdict(2, MAX_THROTTLED, now, Some(429), soon, now)
        else {
            panic!("it should still retry");
        };
        // The schedule's next delay (30 min ±10%), not the second it asked for.
        assert!(scheduled);
        assert!(at - now >= chrono::Duration::minutes(27), "{}", at - now);
        let long = Some(Duration::from_secs(7200));
        let Verdict::Retry { at, .. } = verdict(1, MAX_THROTTLED, now, Some(503), long, now) else {
            panic!("it should still retry");
        };
        assert!(
            at - now >= chrono::Duration::hours(2),
            "never sooner than asked"
        );
        assert_eq!(
            verdict(9, MAX_THROTTLED, now, Some(429), soon, now),
            Verdict::Failed
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(retry_after("soon", now), None);
    }
}
