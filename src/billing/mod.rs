//! An organisation's plan as its people see it and change it: the plan, its limits and what is
//! used of each (`GET /org/plan`), and the operator's `set-plan`. The limits themselves live in
//! `plans`, checked by each module in the transaction of the change that counts.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    access::{self, Action, TenantCtx},
    audit,
    error::Result,
    plans::{self, Limits, PlanInfo},
    store::{Db, TenantTx},
    tenancy, webhooks,
    work::{attachments, projects},
};

/// What the organisation uses of each limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Usage {
    /// Active staff and pending staff invitations (requesters are never seats).
    pub seats: u64,
    /// Projects not archived.
    pub projects: u64,
    pub storage_bytes: u64,
    pub webhooks: u64,
}

/// `GET /org/plan`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PlanView {
    /// The organisation's plan; `null` when the server has no plans (nothing is limited).
    pub plan: Option<PlanInfo>,
    /// Its limits (`null`: not limited).
    pub limits: Limits,
    pub usage: Usage,
    /// The plans of this server, the default first (empty without plans).
    pub plans: Vec<PlanInfo>,
}

/// What the organisation uses of each limit, counted in `tx`.
async fn usage(tx: &TenantTx) -> Result<Usage> {
    Ok(Usage {
        seats: tenancy::seats_used(tx).await?,
        projects: projects::active_count(tx).await?,
        storage_bytes: attachments::used(tx).await?,
        webhooks: webhooks::count(tx).await?,
    })
}

/// The caller's organisation's plan, limits and usage (every member may see them).
pub async fn view(db: &Db, ctx: &TenantCtx) -> Result<PlanView> {
    access::authorize(ctx, Action::OrgRead)?;
    let tx = db.read(ctx).await?;
    let plan = plans::current(&tx).await?;
    let view = PlanView {
        limits: plan.as_ref().map(|p| p.limits).unwrap_or_default(),
        usage: usage(&tx).await?,
        plans: plans::catalog(tx.conn()).await?,
        plan,
    };
    tx.commit().await?;
    Ok(view)
}

/// Puts organisation `org_id` on plan `key` (an operator's `set-plan`, or a payment): nothing
/// is deleted when it allows less than is used, the organisation only cannot add more.
pub async fn set_plan(db: &Db, org_id: Uuid, key: &str, actor: Option<Uuid>) -> Result<()> {
    let tx = db.write_org(org_id).await?;
    let was = plans::assign(&tx, key).await?;
    if was != key {
        audit::record(
            &tx,
            actor,
            "plan.changed",
            "organization",
            Some(org_id),
            serde_json::json!({"from": was, "to": key}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
