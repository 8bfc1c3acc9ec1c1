//! SLA policies: per priority (optionally per project), the targets for first response, next
//! response and resolution in business minutes, the calendar they count on, the warning
//! threshold, and what to do when a clock warns or breaches. The set is replaced as a whole.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{calendars, clocks::ClockKind};
use crate::{
    access::{self, Action, Role, TenantCtx},
    audit,
    error::{Error, Result, Validator},
    store::{self, Db, TenantTx},
    tenancy,
    work::{Priority, entity::project},
};

pub(crate) mod entity {
    crate::store::tenant_entity!("sla_policies" {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        priority: String,
        project_id: Option<Uuid>,
        calendar_id: Option<Uuid>,
        first_response_minutes: Option<i32>,
        next_response_minutes: Option<i32>,
        resolution_minutes: Option<i32>,
        warning_percent: i32,
        escalation: Json,
        created_at: DateTimeUtc,
    });
}

pub const MAX_POLICIES: usize = 200;
pub const MAX_ESCALATIONS: usize = 5;
/// A year of minutes: the longest target.
pub const MAX_MINUTES: u32 = 525_600;
pub const DEFAULT_WARNING_PERCENT: u8 = 80;

/// When an escalation rule acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscalationTrigger {
    Warning,
    Breach,
}

/// What happens when a clock of the policy warns or breaches (beside telling the assignees and
/// the managers): tell every member of a role, and/or hand the ticket to someone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub on: EscalationTrigger,
    /// Every active member with this role is notified (a staff role).
    pub notify_role: Option<Role>,
    /// The ticket is reassigned to this member (agent or above).
    pub reassign_to: Option<Uuid>,
}

/// One policy as it is sent to `PUT /sla-policies`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicyInput {
    pub priority: Priority,
    /// Only tickets of this project; a project's own policy wins over the organisation's for
    /// the same priority.
    pub project_id: Option<Uuid>,
    /// The business calendar the clocks count on; none = around the clock (UTC).
    pub calendar_id: Option<Uuid>,
    /// Business minutes to the first public reply by staff.
    #[schema(minimum = 1, maximum = 525600)]
    pub first_response_minutes: u32,
    /// Business minutes to answer each later message of the requester.
    #[schema(minimum = 1, maximum = 525600)]
    pub next_response_minutes: Option<u32>,
    /// Business minutes to resolution.
    #[schema(minimum = 1, maximum = 525600)]
    pub resolution_minutes: u32,
    /// The share of a target after which the clock warns (default 80).
    #[schema(minimum = 1, maximum = 99)]
    pub warning_percent: Option<u8>,
    #[serde(default)]
    #[schema(max_items = 5)]
    pub escalation: Vec<Escalation>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaPoliciesInput {
    #[schema(max_items = 200)]
    pub policies: Vec<SlaPolicyInput>,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct SlaPolicy {
    pub id: Uuid,
    pub priority: Priority,
    pub project_id: Option<Uuid>,
    pub calendar_id: Option<Uuid>,
    pub first_response_minutes: Option<u32>,
    pub next_response_minutes: Option<u32>,
    pub resolution_minutes: Option<u32>,
    pub warning_percent: u8,
    pub escalation: Vec<Escalation>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlaPolicies {
    pub policies: Vec<SlaPolicy>,
}

fn parse_priority(s: &str) -> Result<Priority> {
    Priority::ALL
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| Error::internal(anyhow::anyhow!("stored priority {s} is unknown")))
}

fn minutes(m: Option<i32>) -> Option<u32> {
    m.and_then(|m| u32::try_from(m).ok())
}

impl entity::Model {
    pub(crate) fn target(&self, kind: ClockKind) -> Option<u32> {
        minutes(match kind {
            ClockKind::FirstResponse => self.first_response_minutes,
            ClockKind::NextResponse => self.next_response_minutes,
            ClockKind::Resolution => self.resolution_minutes,
        })
    }

    pub(crate) fn escalations(&self) -> Vec<Escalation> {
        serde_json::from_value(self.escalation.clone()).unwrap_or_default()
    }
}

impl TryFrom<entity::Model> for SlaPolicy {
    type Error = Error;
    fn try_from(m: entity::Model) -> Result<Self> {
        Ok(SlaPolicy {
            priority: parse_priority(&m.priority)?,
            escalation: m.escalations(),
            id: m.id,
            project_id: m.project_id,
            calendar_id: m.calendar_id,
            first_response_minutes: minutes(m.first_response_minutes),
            next_response_minutes: minutes(m.next_response_minutes),
            resolution_minutes: minutes(m.resolution_minutes),
            warning_percent: u8::try_from(m.warning_percent).unwrap_or(DEFAULT_WARNING_PERCENT),
            created_at: m.created_at,
        })
    }
}

/// The policy for a ticket of `priority` in `project_id`: the project's own, else the
/// organisation's.
pub(crate) async fn policy_for(
    tx: &TenantTx,
    priority: Priority,
    project_id: Uuid,
) -> Result<Option<entity::Model>> {
    let candidates = tx
        .find::<entity::Entity>()
        .filter(entity::Column::Priority.eq(priority.as_str()))
        .filter(
            sea_orm::Condition::any()
                .add(entity::Column::ProjectId.eq(project_id))
                .add(entity::Column::ProjectId.is_null()),
        )
        .all(tx.conn())
        .await?;
    Ok(candidates
        .into_iter()
        .max_by_key(|p| p.project_id.is_some()))
}

pub(crate) async fn find(tx: &TenantTx, id: Uuid) -> Result<Option<entity::Model>> {
    Ok(tx
        .find::<entity::Entity>()
        .filter(entity::Column::Id.eq(id))
        .one(tx.conn())
        .await?)
}

pub(crate) async fn calendar_in_use(tx: &TenantTx, calendar_id: Uuid) -> Result<bool> {
    Ok(tx
        .find::<entity::Entity>()
        .filter(entity::Column::CalendarId.eq(calendar_id))
        .count(tx.conn())
        .await?
        > 0)
}

pub async fn list(db: &Db, ctx: &TenantCtx) -> Result<SlaPolicies> {
    access::authorize(ctx, Action::SlaRead)?;
    let tx = db.read(ctx).await?;
    let policies = stored(&tx).await?;
    tx.commit().await?;
    Ok(SlaPolicies { policies })
}

/// Organisation-wide policies first, then by project; urgent before low.
async fn stored(tx: &TenantTx) -> Result<Vec<SlaPolicy>> {
    let mut policies = tx
        .find::<entity::Entity>()
        .all(tx.conn())
        .await?
        .into_iter()
        .map(SlaPolicy::try_from)
        .collect::<Result<Vec<_>>>()?;
    policies.sort_by_key(|p| (p.project_id, std::cmp::Reverse(p.priority)));
    Ok(policies)
}

/// The fields' problems that need no database.
fn check_shape(v: &mut Validator, input: &SlaPoliciesInput) {
    v.check(
        input.policies.len() <= MAX_POLICIES,
        "policies",
        &format!("at most {MAX_POLICIES} policies"),
    );
    let mut seen = BTreeSet::new();
    for (i, p) in input.policies.iter().enumerate().take(MAX_POLICIES) {
        let at = |f: &str| format!("policies[{i}].{f}");
        if !seen.insert((p.project_id, p.priority)) {
            v.push(
                &at("priority"),
                "another policy has this priority for the same project",
            );
        }
        for (field, value) in [
            ("first_response_minutes", Some(p.first_response_minutes)),
            ("resolution_minutes", Some(p.resolution_minutes)),
            ("next_response_minutes", p.next_response_minutes),
        ] {
            if let Some(m) = value {
                v.check(
                    (1..=MAX_MINUTES).contains(&m),
                    &at(field),
                    "must be 1 to 525600 minutes",
                );
            }
        }
        if let Some(w) = p.warning_percent {
            v.check(
                (1..=99).contains(&w),
                &at("warning_percent"),
                "must be 1 to 99",
            );
        }
        v.check(
            p.escalation.len() <= MAX_ESCALATIONS,
            &at("escalation"),
            &format!("at most {MAX_ESCALATIONS} rules"),
        );
        for (j, e) in p.escalation.iter().enumerate().take(MAX_ESCALATIONS) {
            let field = format!("policies[{i}].escalation[{j}]");
            v.check(
                e.notify_role.is_some() || e.reassign_to.is_some(),
                &field,
                "name a role to notify or a member to reassign to",
            );
            if e.notify_role == Some(Role::Requester) {
                v.push(&format!("{field}.notify_role"), "must be a staff role");
            }
        }
    }
}

/// Projects, calendars and escalation targets must exist in the organisation.
async fn check_references(
    tx: &TenantTx,
    v: &mut Validator,
    input: &SlaPoliciesInput,
) -> Result<()> {
    let projects: BTreeSet<Uuid> = input.policies.iter().filter_map(|p| p.project_id).collect();
    let known_projects: BTreeSet<Uuid> = tx
        .find::<project::Entity>()
        .filter(project::Column::Id.is_in(projects))
        .all(tx.conn())
        .await?
        .into_iter()
        .map(|p| p.id)
        .collect();
    let calendars: BTreeSet<Uuid> = input
        .policies
        .iter()
        .filter_map(|p| p.calendar_id)
        .collect();
    let known_calendars: BTreeSet<Uuid> = tx
        .find::<calendars::entity::Entity>()
        .filter(calendars::entity::Column::Id.is_in(calendars))
        .all(tx.conn())
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let people: Vec<Uuid> = input
        .policies
        .iter()
        .flat_map(|p| p.escalation.iter().filter_map(|e| e.reassign_to))
        .collect();
    let roles: HashMap<Uuid, Role> = tenancy::active_roles(tx, &people)
        .await?
        .into_iter()
        .collect();
    for (i, p) in input.policies.iter().enumerate() {
        if let Some(id) = p.project_id {
            v.check(
                known_projects.contains(&id),
                &format!("policies[{i}].project_id"),
                "no such project",
            );
        }
        if let Some(id) = p.calendar_id {
            v.check(
                known_calendars.contains(&id),
                &format!("policies[{i}].calendar_id"),
                "no such calendar",
            );
        }
        for (j, e) in p.escalation.iter().enumerate() {
            if let Some(id) = e.reassign_to {
                v.check(
                    roles.get(&id).is_some_and(|r| r.at_least(Role::Agent)),
                    &format!("policies[{i}].escalation[{j}].reassign_to"),
                    "is not an active member with the agent role or above",
                );
            }
        }
    }
    Ok(())
}

/// Replaces the organisation's policies and computes every open ticket's clocks again, in one
/// transaction.
pub async fn replace(db: &Db, ctx: &TenantCtx, input: SlaPoliciesInput) -> Result<SlaPolicies> {
    access::authorize(ctx, Action::SlaManage)?;
    let mut v = Validator::default();
    check_shape(&mut v, &input);
    v.finish()?;
    let tx = db.write(ctx).await?;
    let mut v = Validator::default();
    check_references(&tx, &mut v, &input).await?;
    v.finish()?;
    tx.delete_many::<entity::Entity>().exec(tx.conn()).await?;
    let now = store::now();
    let rows: Vec<entity::ActiveModel> = input
        .policies
        .iter()
        .map(|p| entity::ActiveModel {
            org_id: Set(ctx.org_id),
            id: Set(Uuid::now_v7()),
            priority: Set(p.priority.as_str().to_owned()),
            project_id: Set(p.project_id),
            calendar_id: Set(p.calendar_id),
            first_response_minutes: Set(Some(p.first_response_minutes as i32)),
            next_response_minutes: Set(p.next_response_minutes.map(|m| m as i32)),
            resolution_minutes: Set(Some(p.resolution_minutes as i32)),
            warning_percent: Set(i32::from(
                p.warning_percent.unwrap_or(DEFAULT_WARNING_PERCENT),
            )),
            escalation: Set(json!(p.escalation)),
            created_at: Set(now),
        })
        .collect();
    if !rows.is_empty() {
        entity::Entity::insert_many(rows).exec(tx.conn()).await?;
    }
    let recomputed = super::clocks::recompute_open(&tx, None).await?;
    let policies = stored(&tx).await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "sla_policies.replaced",
        "sla_policies",
        None,
        json!({"policies": policies.len(), "tickets_recomputed": recomputed}),
    )
    .await?;
    tx.commit().await?;
    Ok(SlaPolicies { policies })
}
