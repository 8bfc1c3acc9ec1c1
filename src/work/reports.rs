//! Reports for managers: what is open (by status, priority, assignee, project) and what came
//! in and went out in a period; throughput per day or week; SLA attainment per policy and
//! priority with response and resolution times in business minutes. Every report is tenant-
//! scoped, filterable by project and period, and reads from whichever database the caller
//! hands it (a replica when one is configured and fresh).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{Priority, Status, projects, sla::clocks::ClockKind};
use crate::{
    access::{self, Action, TenantCtx},
    error::{Error, Result, Validator},
    store::{Db, TenantTx, statement},
};

/// The longest period a report covers.
pub const MAX_DAYS: i64 = 731;
/// The period when none is given.
pub const DEFAULT_DAYS: i64 = 30;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// Only this project.
    pub project_id: Option<Uuid>,
    /// Start of the period (default: 30 days before `to`).
    #[serde(default, deserialize_with = "crate::work::instant")]
    pub from: Option<DateTime<Utc>>,
    /// End of the period, exclusive (default: now).
    #[serde(default, deserialize_with = "crate::work::instant")]
    pub to: Option<DateTime<Utc>>,
    /// Throughput buckets: `day` (default) or `week` (weeks start on Monday, UTC).
    #[param(pattern = "^(day|week)$")]
    pub interval: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Day,
    Week,
}

/// A checked report request.
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    pub project_id: Option<Uuid>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: Interval,
}

impl ReportParams {
    pub fn validate(self) -> Result<Scope> {
        let mut v = Validator::default();
        let to = self.to.unwrap_or_else(crate::store::now);
        let from = self.from.unwrap_or(to - Duration::days(DEFAULT_DAYS));
        v.check(from < to, "from", "must be before `to`");
        v.check(
            to - from <= Duration::days(MAX_DAYS),
            "from",
            "a report covers at most 731 days",
        );
        let interval = match self.interval.as_deref() {
            None | Some("day") => Interval::Day,
            Some("week") => Interval::Week,
            Some(_) => {
                v.push("interval", "must be day or week");
                Interval::Day
            }
        };
        v.finish()?;
        Ok(Scope {
            project_id: self.project_id,
            from,
            to,
            interval,
        })
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StatusCount {
    pub status: Status,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PriorityCount {
    pub priority: Priority,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AssigneeCount {
    /// Absent: tickets nobody is assigned to.
    pub assignee_id: Option<Uuid>,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ProjectCount {
    pub project_id: Uuid,
    pub key: String,
    pub count: u64,
}

/// Open tickets now (not resolved, closed, cancelled or deleted), and the period's flow.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SummaryReport {
    pub period: Period,
    pub project_id: Option<Uuid>,
    pub open: u64,
    pub open_by_status: Vec<StatusCount>,
    pub open_by_priority: Vec<PriorityCount>,
    pub open_by_assignee: Vec<AssigneeCount>,
    pub open_by_project: Vec<ProjectCount>,
    /// Filed in the period.
    pub created: u64,
    /// Resolved in the period.
    pub resolved: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ThroughputBucket {
    /// The day, or the Monday of the week (UTC).
    pub start: NaiveDate,
    pub created: u64,
    pub resolved: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ThroughputReport {
    pub period: Period,
    pub project_id: Option<Uuid>,
    pub interval: Interval,
    /// Every bucket of the period, empty ones included, oldest first.
    pub buckets: Vec<ThroughputBucket>,
}

/// One clock kind of one policy and priority.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SlaRow {
    pub policy_id: Uuid,
    pub priority: Priority,
    pub clock: ClockKind,
    /// Clocks started in the period.
    pub clocks: u64,
    pub met: u64,
    pub breached: u64,
    /// Neither met nor breached yet.
    pub running: u64,
    /// Met ÷ (met + breached), as a percentage; absent while nothing is decided.
    pub attainment: Option<f64>,
    /// Business minutes to meet it (met clocks, on time or late): median, 90th and 95th
    /// percentile.
    pub p50_minutes: Option<u32>,
    pub p90_minutes: Option<u32>,
    pub p95_minutes: Option<u32>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SlaReport {
    pub period: Period,
    pub project_id: Option<Uuid>,
    pub rows: Vec<SlaRow>,
}

fn authorize(ctx: &TenantCtx) -> Result<()> {
    access::authorize(ctx, Action::ReportRead)
}

/// The tickets a report counts: this tenant's, not deleted, of the project if one is named,
/// outside the projects hidden from the reader.
fn tickets_of(tx: &TenantTx) -> String {
    format!(
        "t.org_id = $1 AND t.deleted_at IS NULL AND ($2 IS NULL OR t.project_id = $2){}",
        tx.wall_sql("t.project_id")
    )
}
const OPEN: &str = "t.status NOT IN ('resolved', 'closed', 'cancelled')";

#[derive(FromQueryResult)]
struct OpenGroup {
    status: String,
    priority: i16,
    project_id: Uuid,
    count: i64,
}

#[derive(FromQueryResult)]
struct Flow {
    created: i64,
    resolved: i64,
}

#[derive(FromQueryResult)]
struct Group<K: sea_orm::TryGetable> {
    key: K,
    count: i64,
}

async fn groups<K: sea_orm::TryGetable + Send>(
    tx: &TenantTx,
    sql: &str,
    scope: &Scope,
    extra: Vec<sea_orm::Value>,
) -> Result<Vec<(K, u64)>> {
    let mut values: Vec<sea_orm::Value> = vec![tx.org_id().into(), scope.project_id.into()];
    values.extend(extra);
    let backend = tx.conn().get_database_backend();
    let rows = Group::<K>::find_by_statement(statement(backend, sql, values))
        .all(tx.conn())
        .await?;
    Ok(rows
        .into_iter()
        .map(|g| (g.key, u64::try_from(g.count).unwrap_or_default()))
        .collect())
}

fn unknown(what: &str) -> Error {
    Error::internal(anyhow::anyhow!("stored {what} is unknown"))
}

pub async fn summary(db: &Db, ctx: &TenantCtx, scope: Scope) -> Result<SummaryReport> {
    authorize(ctx)?;
    let tx = db.read(ctx).await?;
    let tickets = tickets_of(&tx);
    let backend = tx.conn().get_database_backend();
    // One pass over the open tickets for all three breakdowns (each is a sum over the others).
    let open = OpenGroup::find_by_statement(statement(
        backend,
        &format!(
            "SELECT t.status, t.priority, t.project_id, COUNT(*) AS count FROM tickets t \
             WHERE {tickets} AND {OPEN} GROUP BY t.status, t.priority, t.project_id"
        ),
        [tx.org_id().into(), scope.project_id.into()],
    ))
    .all(tx.conn())
    .await?;
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_priority: BTreeMap<i16, u64> = BTreeMap::new();
    let mut by_project: BTreeMap<Uuid, u64> = BTreeMap::new();
    for g in &open {
        let n = u64::try_from(g.count).unwrap_or_default();
        *by_status.entry(g.status.clone()).or_default() += n;
        *by_priority.entry(g.priority).or_default() += n;
        *by_project.entry(g.project_id).or_default() += n;
    }
    let by_assignee = groups::<Option<Uuid>>(
        &tx,
        &format!(
            "SELECT a.user_id AS key, COUNT(*) AS count FROM tickets t \
             LEFT JOIN ticket_assignees a ON a.org_id = t.org_id AND a.ticket_id = t.id \
             WHERE {tickets} AND {OPEN} GROUP BY a.user_id"
        ),
        &scope,
        vec![],
    )
    .await?;
    // And one pass for the period's flow.
    let flow = Flow::find_by_statement(statement(
        backend,
        &format!(
            "SELECT COALESCE(SUM(CASE WHEN t.created_at >= $3 AND t.created_at < $4 THEN 1 ELSE 0 END), 0) AS created, \
                    COALESCE(SUM(CASE WHEN t.resolved_at >= $3 AND t.resolved_at < $4 THEN 1 ELSE 0 END), 0) AS resolved \
             FROM tickets t WHERE {tickets} AND (t.created_at >= $3 OR t.resolved_at >= $3)"
        ),
        [tx.org_id().into(), scope.project_id.into(), scope.from.into(), scope.to.into()],
    ))
    .one(tx.conn())
    .await?
    .unwrap_or(Flow { created: 0, resolved: 0 });
    let keys: BTreeMap<Uuid, String> = projects::keys_of(&tx, by_project.keys().copied().collect())
        .await?
        .into_iter()
        .collect();
    tx.commit().await?;
    let mut open_by_status = by_status
        .into_iter()
        .map(|(s, count)| {
            Ok(StatusCount {
                status: Status::parse(&s).ok_or_else(|| unknown("status"))?,
                count,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    open_by_status.sort_by_key(|s| Status::ALL.iter().position(|x| *x == s.status));
    let mut open_by_priority = by_priority
        .into_iter()
        .map(|(p, count)| {
            Ok(PriorityCount {
                priority: Priority::from_rank(p)?,
                count,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    open_by_priority.sort_by_key(|p| std::cmp::Reverse(p.priority));
    let mut open_by_assignee: Vec<AssigneeCount> = by_assignee
        .into_iter()
        .map(|(assignee_id, count)| AssigneeCount { assignee_id, count })
        .collect();
    open_by_assignee.sort_by_key(|a| (std::cmp::Reverse(a.count), a.assignee_id));
    let mut open_by_project: Vec<ProjectCount> = by_project
        .into_iter()
        .map(|(project_id, count)| ProjectCount {
            key: keys.get(&project_id).cloned().unwrap_or_default(),
            project_id,
            count,
        })
        .collect();
    open_by_project.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(SummaryReport {
        period: Period {
            from: scope.from,
            to: scope.to,
        },
        project_id: scope.project_id,
        open: open_by_status.iter().map(|s| s.count).sum(),
        open_by_status,
        open_by_priority,
        open_by_assignee,
        open_by_project,
        created: u64::try_from(flow.created).unwrap_or_default(),
        resolved: u64::try_from(flow.resolved).unwrap_or_default(),
    })
}

/// The UTC day of a timestamp column, as `YYYY-MM-DD`.
fn day_of(backend: DbBackend, column: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
        // SQLite keeps UTC timestamps as ISO 8601 text.
        _ => format!("substr({column}, 1, 10)"),
    }
}

/// The first day of the bucket `day` falls in.
fn bucket_of(day: NaiveDate, interval: Interval) -> NaiveDate {
    match interval {
        Interval::Day => day,
        Interval::Week => day - Duration::days(i64::from(day.weekday().num_days_from_monday())),
    }
}

/// Every bucket from `from` to `to`, counts added from per-day counts.
fn buckets(
    scope: &Scope,
    created: &[(String, u64)],
    resolved: &[(String, u64)],
) -> Vec<ThroughputBucket> {
    let mut all: BTreeMap<NaiveDate, (u64, u64)> = BTreeMap::new();
    let (first, last) = (
        scope.from.date_naive(),
        (scope.to - Duration::microseconds(1)).date_naive(),
    );
    let mut day = bucket_of(first, scope.interval);
    while day <= last {
        all.insert(day, (0, 0));
        day = match scope.interval {
            Interval::Day => day + Duration::days(1),
            Interval::Week => day + Duration::days(7),
        };
    }
    for (list, created_side) in [(created, true), (resolved, false)] {
        for (d, n) in list {
            let Ok(d) = NaiveDate::parse_from_str(d, "%Y-%m-%d") else {
                continue;
            };
            let entry = all.entry(bucket_of(d, scope.interval)).or_default();
            if created_side {
                entry.0 += n;
            } else {
                entry.1 += n;
            }
        }
    }
    all.into_iter()
        .map(|(start, (created, resolved))| ThroughputBucket {
            start,
            created,
            resolved,
        })
        .collect()
}

pub async fn throughput(db: &Db, ctx: &TenantCtx, scope: Scope) -> Result<ThroughputReport> {
    authorize(ctx)?;
    let tx = db.read(ctx).await?;
    let tickets = tickets_of(&tx);
    let backend = tx.conn().get_database_backend();
    let per_day = |column: &str| {
        let day = day_of(backend, &format!("t.{column}"));
        format!(
            "SELECT {day} AS key, COUNT(*) AS count FROM tickets t \
             WHERE {tickets} AND t.{column} >= $3 AND t.{column} < $4 GROUP BY {day}"
        )
    };
    let period = vec![scope.from.into(), scope.to.into()];
    let created = groups::<String>(&tx, &per_day("created_at"), &scope, period.clone()).await?;
    let resolved = groups::<String>(&tx, &per_day("resolved_at"), &scope, period).await?;
    tx.commit().await?;
    Ok(ThroughputReport {
        period: Period {
            from: scope.from,
            to: scope.to,
        },
        project_id: scope.project_id,
        interval: scope.interval,
        buckets: buckets(&scope, &created, &resolved),
    })
}

#[derive(FromQueryResult)]
struct ClockRow {
    policy_id: Uuid,
    kind: String,
    priority: i16,
    stage: i16,
    due_at: Option<DateTime<Utc>>,
    met_at: Option<DateTime<Utc>>,
    business_minutes: Option<i32>,
}

/// The `p`th percentile (nearest rank) of sorted values.
fn percentile(sorted: &[u32], p: u32) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (u64::from(p) * sorted.len() as u64).div_ceil(100).max(1);
    sorted.get(rank as usize - 1).copied()
}

pub async fn sla(db: &Db, ctx: &TenantCtx, scope: Scope) -> Result<SlaReport> {
    authorize(ctx)?;
    let tx = db.read(ctx).await?;
    let tickets = tickets_of(&tx);
    let backend = tx.conn().get_database_backend();
    let sql = format!(
        "SELECT c.policy_id, c.kind, t.priority, c.stage, c.due_at, c.met_at, c.business_minutes \
         FROM sla_clocks c JOIN tickets t ON t.org_id = c.org_id AND t.id = c.ticket_id \
         WHERE c.org_id = $1 AND {tickets} AND c.started_at >= $3 AND c.started_at < $4"
    );
    let rows = ClockRow::find_by_statement(statement(
        backend,
        &sql,
        [
            tx.org_id().into(),
            scope.project_id.into(),
            scope.from.into(),
            scope.to.into(),
        ],
    ))
    .all(tx.conn())
    .await?;
    tx.commit().await?;
    let now = crate::store::now();
    let mut grouped: BTreeMap<(Uuid, i16, String), (SlaRow, Vec<u32>)> = BTreeMap::new();
    for r in rows {
        let clock = ClockKind::parse(&r.kind).ok_or_else(|| unknown("clock kind"))?;
        let (row, minutes) = grouped
            .entry((r.policy_id, -r.priority, r.kind.clone()))
            .or_insert_with(|| {
                (
                    SlaRow {
                        policy_id: r.policy_id,
                        priority: Priority::Low,
                        clock,
                        clocks: 0,
                        met: 0,
                        breached: 0,
                        running: 0,
                        attainment: None,
                        p50_minutes: None,
                        p90_minutes: None,
                        p95_minutes: None,
                    },
                    Vec::new(),
                )
            });
        row.priority = Priority::from_rank(r.priority)?;
        row.clocks += 1;
        let late = |at: DateTime<Utc>| r.due_at.is_some_and(|d| d < at);
        let breached = r.stage >= 2 || r.met_at.map_or_else(|| late(now), late);
        if breached {
            row.breached += 1;
        } else if r.met_at.is_some() {
            row.met += 1;
        } else {
            row.running += 1;
        }
        if r.met_at.is_some() {
            minutes.extend(r.business_minutes.and_then(|m| u32::try_from(m).ok()));
        }
    }
    let rows = grouped
        .into_values()
        .map(|(mut row, mut minutes)| {
            minutes.sort_unstable();
            let decided = row.met + row.breached;
            row.attainment =
                (decided > 0).then(|| (row.met as f64 * 1000.0 / decided as f64).round() / 10.0);
            row.p50_minutes = percentile(&minutes, 50);
            row.p90_minutes = percentile(&minutes, 90);
            row.p95_minutes = percentile(&minutes, 95);
            row
        })
        .collect();
    Ok(SlaReport {
        period: Period {
            from: scope.from,
            to: scope.to,
        },
        project_id: scope.project_id,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=10).collect();
        assert_eq!(percentile(&v, 50), Some(5));
        assert_eq!(percentile(&v, 90), Some(9));
        assert_eq!(percentile(&v, 95), Some(10));
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn weeks_start_on_monday_and_every_bucket_is_listed() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let scope = Scope {
            project_id: None,
            from: at("2026-11-25T10:00:00Z"),
            to: at("2026-12-08T00:00:00Z"),
            interval: Interval::Week,
        };
        let got = buckets(
            &scope,
            &[("2026-11-25".into(), 2), ("2026-12-01".into(), 3)],
            &[("2026-12-07".into(), 1)],
        );
        let starts: Vec<String> = got.iter().map(|b| b.start.to_string()).collect();
        assert_eq!(starts, ["2026-11-23", "2026-11-30", "2026-12-07"]);
        assert_eq!((got[0].created, got[1].created, got[2].resolved), (2, 3, 1));
        let days = Scope {
            interval: Interval::Day,
            ..scope
        };
        assert_eq!(buckets(&days, &[], &[]).len(), 13);
    }
}
