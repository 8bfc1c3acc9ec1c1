//! Each ticket's SLA clocks: when they started, the pauses (while the ticket waits on the
//! customer, or is resolved, closed, cancelled or deleted), when they were met, and the due and
//! warning instants computed from the policy's target on its calendar. The ticket write path
//! plans them in its own transaction; the timer worker reads `next_check_at`.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    calendar::{self, Calendar, Pause},
    calendars, policies,
};
use crate::{
    error::{Error, Result},
    store::TenantTx,
    work::{Priority, Status, entity::ticket},
};

pub(crate) mod entity {
    crate::store::tenant_entity!("sla_clocks" {
        #[sea_orm(primary_key, auto_increment = false)]
        ticket_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        kind: String,
        policy_id: Uuid,
        calendar_id: Option<Uuid>,
        target_minutes: i32,
        warning_percent: i32,
        started_at: DateTimeUtc,
        pauses: Json,
        met_at: Option<DateTimeUtc>,
        due_at: Option<DateTimeUtc>,
        warn_at: Option<DateTimeUtc>,
        stage: i16,
        next_check_at: Option<DateTimeUtc>,
        business_minutes: Option<i32>,
    });
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    /// To the first public reply by staff.
    FirstResponse,
    /// From a requester's message (after staff replied) to the next public reply by staff.
    NextResponse,
    /// To resolution.
    Resolution,
}

impl ClockKind {
    pub const ALL: [ClockKind; 3] = [
        ClockKind::FirstResponse,
        ClockKind::NextResponse,
        ClockKind::Resolution,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClockKind::FirstResponse => "first_response",
            ClockKind::NextResponse => "next_response",
            ClockKind::Resolution => "resolution",
        }
    }

    pub fn parse(s: &str) -> Option<ClockKind> {
        ClockKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    Running,
    /// The ticket waits on the customer (or is resolved, closed or cancelled).
    Paused,
    Met,
    Breached,
}

/// What has been announced of a clock: nothing, its warning, its breach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    Quiet = 0,
    Warned = 1,
    Breached = 2,
}

impl Stage {
    pub(crate) fn from_db(n: i16) -> Stage {
        match n {
            0 => Stage::Quiet,
            1 => Stage::Warned,
            _ => Stage::Breached,
        }
    }

    /// Where a running clock stands at `now`.
    pub(crate) fn reached(
        now: DateTime<Utc>,
        warn_at: Option<DateTime<Utc>>,
        due_at: Option<DateTime<Utc>>,
    ) -> Stage {
        if due_at.is_some_and(|d| d <= now) {
            Stage::Breached
        } else if warn_at.is_some_and(|w| w <= now) {
            Stage::Warned
        } else {
            Stage::Quiet
        }
    }
}

/// A pause as stored and shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PauseView {
    pub from: DateTime<Utc>,
    /// Absent while the pause lasts.
    pub to: Option<DateTime<Utc>>,
}

/// How a clock's due time was computed.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Explanation {
    pub policy_id: Uuid,
    /// Business minutes allowed.
    pub target_minutes: u32,
    pub warning_percent: u8,
    /// The calendar counted on; absent: around the clock (UTC).
    pub calendar_id: Option<Uuid>,
    pub started_at: DateTime<Utc>,
    /// The stretches the clock did not run.
    pub pauses: Vec<PauseView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct SlaClock {
    pub state: ClockState,
    /// Absent while paused.
    pub due_at: Option<DateTime<Utc>>,
    pub warn_at: Option<DateTime<Utc>>,
    pub met_at: Option<DateTime<Utc>>,
    /// Business minutes from start to met (met clocks).
    pub business_minutes: Option<u32>,
    pub explanation: Explanation,
}

/// A ticket's clocks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct TicketSla {
    pub first_response: Option<SlaClock>,
    pub next_response: Option<SlaClock>,
    pub resolution: Option<SlaClock>,
}

impl TicketSla {
    pub(crate) fn from_rows(
        rows: impl IntoIterator<Item = entity::Model>,
        now: DateTime<Utc>,
    ) -> Option<TicketSla> {
        let mut sla = TicketSla::default();
        let mut any = false;
        for row in rows {
            let Some(kind) = ClockKind::parse(&row.kind) else {
                continue;
            };
            let clock = Some(view(&row, now));
            any = true;
            match kind {
                ClockKind::FirstResponse => sla.first_response = clock,
                ClockKind::NextResponse => sla.next_response = clock,
                ClockKind::Resolution => sla.resolution = clock,
            }
        }
        any.then_some(sla)
    }
}

fn pauses_of(row: &entity::Model) -> Vec<PauseView> {
    serde_json::from_value(row.pauses.clone()).unwrap_or_default()
}

fn view(row: &entity::Model, now: DateTime<Utc>) -> SlaClock {
    let pauses = pauses_of(row);
    let paused = pauses.last().is_some_and(|p| p.to.is_none());
    let late = |at: DateTime<Utc>| row.due_at.is_some_and(|d| d < at);
    let state = if Stage::from_db(row.stage) == Stage::Breached {
        ClockState::Breached
    } else if let Some(met) = row.met_at {
        if late(met) {
            ClockState::Breached
        } else {
            ClockState::Met
        }
    } else if paused {
        ClockState::Paused
    } else if late(now) {
        ClockState::Breached
    } else {
        ClockState::Running
    };
    SlaClock {
        state,
        due_at: row.due_at,
        warn_at: row.warn_at,
        met_at: row.met_at,
        business_minutes: row.business_minutes.and_then(|m| u32::try_from(m).ok()),
        explanation: Explanation {
            policy_id: row.policy_id,
            target_minutes: u32::try_from(row.target_minutes).unwrap_or_default(),
            warning_percent: u8::try_from(row.warning_percent).unwrap_or_default(),
            calendar_id: row.calendar_id,
            started_at: row.started_at,
            pauses,
        },
    }
}

/// What a clock plan needs of its ticket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TicketFacts {
    pub id: Uuid,
    pub project_id: Uuid,
    pub priority: Priority,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub deleted: bool,
}

impl TicketFacts {
    /// The clocks stand still unless the ticket is being worked on.
    fn paused(&self) -> bool {
        self.deleted
            || matches!(
                self.status,
                Status::Pending | Status::Resolved | Status::Closed | Status::Cancelled
            )
    }

    fn resolved(&self) -> Option<DateTime<Utc>> {
        matches!(self.status, Status::Resolved | Status::Closed)
            .then_some(self.resolved_at)
            .flatten()
    }
}

impl TryFrom<&ticket::Model> for TicketFacts {
    type Error = Error;
    fn try_from(m: &ticket::Model) -> Result<Self> {
        Ok(TicketFacts {
            id: m.id,
            project_id: m.project_id,
            priority: Priority::from_rank(m.priority)?,
            status: Status::parse(&m.status).ok_or_else(|| {
                Error::internal(anyhow::anyhow!("stored status {} is unknown", m.status))
            })?,
            created_at: m.created_at,
            resolved_at: m.resolved_at,
            deleted: m.deleted_at.is_some(),
        })
    }
}

/// A public message on the ticket, which may meet or start a response clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// By staff: meets the first response and a running next response.
    Staff,
    /// By the requester: starts the next-response clock once staff have replied.
    Requester,
}

/// The clocks a ticket will have after a change, computed but not yet written.
pub(crate) struct Plan {
    ticket_id: Uuid,
    rows: Vec<entity::Model>,
    /// The ticket had clocks (read under their lock), which saving replaces.
    replaces: bool,
}

impl Plan {
    fn due_of(&self, kind: ClockKind) -> Option<DateTime<Utc>> {
        self.rows
            .iter()
            .find(|r| r.kind == kind.as_str())
            .and_then(|r| r.due_at)
    }

    /// The ticket's `first_response_due_at` and `resolution_due_at`.
    pub fn ticket_due(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        (
            self.due_of(ClockKind::FirstResponse),
            self.due_of(ClockKind::Resolution),
        )
    }

    pub fn view(&self, now: DateTime<Utc>) -> Option<TicketSla> {
        TicketSla::from_rows(self.rows.iter().cloned(), now)
    }

    /// Writes the clocks (after the ticket row exists).
    pub async fn save(self, tx: &TenantTx) -> Result<()> {
        if self.replaces {
            tx.delete_many::<entity::Entity>()
                .filter(entity::Column::TicketId.eq(self.ticket_id))
                .exec(tx.conn())
                .await?;
        }
        if !self.rows.is_empty() {
            entity::Entity::insert_many(
                self.rows
                    .into_iter()
                    .map(sea_orm::IntoActiveModel::into_active_model),
            )
            .exec(tx.conn())
            .await?;
        }
        Ok(())
    }
}

/// The clocks of the ticket `facts` describes, at `at`, after `reply` if there was one. The
/// current clocks are read under a row lock, so the timer worker never announces from a stage
/// this change is about to overwrite.
pub(crate) async fn plan(
    tx: &TenantTx,
    facts: &TicketFacts,
    at: DateTime<Utc>,
    reply: Option<Reply>,
) -> Result<Plan> {
    let existing = tx
        .find_for_update::<entity::Entity>()
        .filter(entity::Column::TicketId.eq(facts.id))
        .all(tx.conn())
        .await?;
    plan_over(tx, facts, at, reply, existing).await
}

/// The clocks of a ticket being created: it has none to read or replace.
pub(crate) async fn plan_new(
    tx: &TenantTx,
    facts: &TicketFacts,
    at: DateTime<Utc>,
) -> Result<Plan> {
    plan_over(tx, facts, at, None, Vec::new()).await
}

async fn plan_over(
    tx: &TenantTx,
    facts: &TicketFacts,
    at: DateTime<Utc>,
    reply: Option<Reply>,
    existing: Vec<entity::Model>,
) -> Result<Plan> {
    let replaces = !existing.is_empty();
    let policy = policies::policy_for(tx, facts.priority, facts.project_id).await?;
    let cal = match policy.as_ref().and_then(|p| p.calendar_id) {
        Some(id) => calendars::to_calendar(&calendars::find(tx, id).await?)?,
        None => Calendar::around_the_clock(),
    };
    let mut rows = Vec::new();
    for kind in ClockKind::ALL {
        let old = existing.iter().find(|r| r.kind == kind.as_str());
        let target = policy.as_ref().and_then(|p| p.target(kind));
        let (Some(policy), Some(target)) = (&policy, target) else {
            // No target any more: a met clock stays as the record of it.
            rows.extend(old.filter(|o| o.met_at.is_some()).cloned());
            continue;
        };
        let mut row = match old {
            Some(o) => o.clone(),
            None => entity::Model {
                org_id: tx.org_id(),
                ticket_id: facts.id,
                kind: kind.as_str().to_owned(),
                policy_id: policy.id,
                calendar_id: None,
                target_minutes: 0,
                warning_percent: 0,
                started_at: facts.created_at,
                pauses: json!([]),
                met_at: None,
                due_at: None,
                warn_at: None,
                stage: Stage::Quiet as i16,
                next_check_at: None,
                business_minutes: None,
            },
        };
        match (kind, reply) {
            (ClockKind::NextResponse, Some(Reply::Requester)) => {
                let staff_replied = existing
                    .iter()
                    .any(|r| r.kind == ClockKind::FirstResponse.as_str() && r.met_at.is_some());
                let waiting = old.is_some_and(|o| o.met_at.is_none());
                if !staff_replied || waiting {
                    rows.extend(old.cloned());
                    continue;
                }
                // A fresh clock from this message.
                row.started_at = at;
                row.pauses = json!([]);
                row.met_at = None;
                row.stage = Stage::Quiet as i16;
            }
            (ClockKind::NextResponse, _) if old.is_none() => continue,
            (ClockKind::FirstResponse | ClockKind::NextResponse, Some(Reply::Staff)) => {
                row.met_at = row.met_at.or(Some(at));
            }
            _ => {}
        }
        if kind == ClockKind::Resolution {
            row.met_at = facts.resolved();
        }
        row.policy_id = policy.id;
        row.calendar_id = policy.calendar_id;
        row.target_minutes = target as i32;
        row.warning_percent = policy.warning_percent;
        let mut pauses = pauses_of(&row);
        sync_pauses(&mut pauses, facts.paused(), at);
        row.pauses = json!(pauses);
        compute(&mut row, &cal, &pauses, at);
        rows.push(row);
    }
    Ok(Plan {
        ticket_id: facts.id,
        rows,
        replaces,
    })
}

/// Opens a pause when the ticket stops being worked on, closes it when work resumes.
fn sync_pauses(pauses: &mut Vec<PauseView>, paused: bool, at: DateTime<Utc>) {
    let open = pauses.last_mut().filter(|last| last.to.is_none());
    match (open, paused) {
        (Some(last), false) => last.to = Some(at),
        (None, true) => pauses.push(PauseView { from: at, to: None }),
        _ => {}
    }
}

/// Due and warning instants, the business minutes of a met clock, what stays announced, and
/// when the timer must look next.
fn compute(row: &mut entity::Model, cal: &Calendar, pauses: &[PauseView], now: DateTime<Utc>) {
    let pauses: Vec<Pause> = pauses
        .iter()
        .map(|p| Pause {
            from: p.from,
            to: p.to,
        })
        .collect();
    let target = TimeDelta::minutes(i64::from(row.target_minutes));
    let warning = TimeDelta::seconds(target.num_seconds() * i64::from(row.warning_percent) / 100);
    row.due_at = calendar::due(cal, row.started_at, target, &pauses).map(crate::store::to_micros);
    row.warn_at = calendar::due(cal, row.started_at, warning, &pauses).map(crate::store::to_micros);
    row.business_minutes = row
        .met_at
        .map(|met| calendar::elapsed(cal, row.started_at, met, &pauses).num_minutes() as i32);
    if row.met_at.is_some() {
        row.next_check_at = None;
        return;
    }
    // A change that moves the due time later un-announces what is no longer true; one that
    // moves it earlier leaves the timer to announce it.
    let stage = Stage::from_db(row.stage).min(Stage::reached(now, row.warn_at, row.due_at));
    row.stage = stage as i16;
    row.next_check_at = next_check(stage, row.warn_at, row.due_at);
}

pub(crate) fn next_check(
    stage: Stage,
    warn_at: Option<DateTime<Utc>>,
    due_at: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match stage {
        Stage::Quiet => warn_at.or(due_at),
        Stage::Warned => due_at,
        Stage::Breached => None,
    }
}

/// Computes again the clocks of every ticket that is not closed, cancelled or deleted (after
/// the policies changed), or of those counting on one calendar (after it changed), and their
/// due columns. Returns how many tickets it looked at.
pub(crate) async fn recompute_open(tx: &TenantTx, calendar: Option<Uuid>) -> Result<usize> {
    let mut query = tx
        .find::<ticket::Entity>()
        .filter(ticket::Column::DeletedAt.is_null())
        .filter(
            ticket::Column::Status.is_not_in([Status::Closed.as_str(), Status::Cancelled.as_str()]),
        );
    if let Some(calendar) = calendar {
        let ids: Vec<Uuid> = tx
            .find::<entity::Entity>()
            .filter(entity::Column::CalendarId.eq(calendar))
            .select_only()
            .column(entity::Column::TicketId)
            .distinct()
            .into_tuple()
            .all(tx.conn())
            .await?;
        query = query.filter(ticket::Column::Id.is_in(ids));
    }
    let tickets = query.all(tx.conn()).await?;
    let at = crate::store::now();
    for t in &tickets {
        let plan = plan(tx, &TicketFacts::try_from(t)?, at, None).await?;
        let (first, resolution) = plan.ticket_due();
        if (first, resolution) != (t.first_response_due_at, t.resolution_due_at) {
            tx.update_many::<ticket::Entity>()
                .col_expr(ticket::Column::FirstResponseDueAt, first.into())
                .col_expr(ticket::Column::ResolutionDueAt, resolution.into())
                .filter(ticket::Column::Id.eq(t.id))
                .exec(tx.conn())
                .await?;
        }
        plan.save(tx).await?;
    }
    Ok(tickets.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn pauses_open_and_close_with_the_ticket() {
        let mut p = Vec::new();
        sync_pauses(&mut p, false, at("2026-01-01T00:00:00Z"));
        assert!(p.is_empty());
        sync_pauses(&mut p, true, at("2026-01-01T01:00:00Z"));
        sync_pauses(&mut p, true, at("2026-01-01T02:00:00Z"));
        assert_eq!(
            p,
            [PauseView {
                from: at("2026-01-01T01:00:00Z"),
                to: None
            }]
        );
        sync_pauses(&mut p, false, at("2026-01-01T03:00:00Z"));
        assert_eq!(p[0].to, Some(at("2026-01-01T03:00:00Z")));
    }

    #[test]
    fn stages_follow_warning_then_due() {
        let (w, d) = (
            Some(at("2026-01-01T08:00:00Z")),
            Some(at("2026-01-01T10:00:00Z")),
        );
        assert_eq!(
            Stage::reached(at("2026-01-01T07:59:59Z"), w, d),
            Stage::Quiet
        );
        assert_eq!(
            Stage::reached(at("2026-01-01T08:00:00Z"), w, d),
            Stage::Warned
        );
        assert_eq!(
            Stage::reached(at("2026-01-01T10:00:00Z"), w, d),
            Stage::Breached
        );
        assert_eq!(next_check(Stage::Quiet, w, d), w);
        assert_eq!(next_check(Stage::Warned, w, d), d);
        assert_eq!(next_check(Stage::Breached, w, d), None);
        // Paused: nothing to look at.
        assert_eq!(next_check(Stage::Quiet, None, None), None);
    }
}
