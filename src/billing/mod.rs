//! An organisation's plan as its people see it and pay for it: the plan, its limits and what is
//! used of each (`GET /org/plan`), the operator's `set-plan`, and Stripe: checkout and the
//! billing portal for owners (`stripe`), its events (`webhook`) and the account they keep
//! (`account`), whose state decides the plan. The limits themselves live in `plans`, checked
//! by each module in the transaction of the change that counts.

pub mod account;
pub mod signature;
pub mod stripe;
pub mod webhook;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    access::{self, Action, TenantCtx},
    audit,
    config::{BillingConfig, Secret},
    error::{Error, Result},
    identity,
    plans::{self, Limits, PlanInfo},
    store::{Db, TenantTx},
    tenancy, webhooks,
    work::{attachments, projects},
};
use account::entity::org_billing;
use stripe::Stripe;

/// Taking payment: the Stripe client (none: this server does not take payment), the webhook's
/// signing secrets, the grace of a failed payment, and where Stripe sends browsers back.
#[derive(Clone, Debug)]
pub struct Billing {
    stripe: Option<Stripe>,
    webhook_secrets: Vec<Secret>,
    /// How long a plan stays after a payment failed (`DOCKET_BILLING_GRACE_DAYS`).
    pub grace: chrono::Duration,
    public_url: String,
}

impl Billing {
    pub fn new(cfg: &BillingConfig, public_url: &str) -> anyhow::Result<Self> {
        let webhook_secrets = cfg
            .stripe_webhook_secret
            .iter()
            .flat_map(|s| s.expose().split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Secret::new)
            .collect();
        Ok(Self {
            stripe: Stripe::configured(cfg)?,
            webhook_secrets,
            grace: chrono::Duration::days(cfg.billing_grace_days.into()),
            public_url: public_url.trim().trim_end_matches('/').to_owned(),
        })
    }

    fn webhook_secrets(&self) -> Vec<&str> {
        self.webhook_secrets.iter().map(Secret::expose).collect()
    }

    fn stripe(&self) -> Result<&Stripe> {
        self.stripe.as_ref().ok_or_else(|| Error::Conflict {
            code: "billing_not_configured",
            detail: "this server does not take payment; an operator changes plans".into(),
        })
    }

    fn settings_url(&self, query: &str) -> String {
        format!("{}/admin/settings{query}#plan", self.public_url)
    }
}

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
    pub billing: BillingState,
}

/// Where the organisation stands with payment (its account's state for owners and admins only).
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct BillingState {
    /// This server takes payment: plans that are `purchasable` can be bought (owners).
    pub enabled: bool,
    /// The organisation has a billing account: its owners may open the billing portal.
    pub has_account: bool,
    /// The status of the subscription it pays through (`active`, `past_due`, `canceled`, …).
    pub subscription_status: Option<String>,
    /// The subscription ends then (cancelled): the plan goes back to the default.
    pub cancel_at: Option<DateTime<Utc>>,
    /// A payment failed then and is still due.
    pub past_due_since: Option<DateTime<Utc>>,
    /// Unless paid by then, the organisation moves to the default plan.
    pub grace_ends_at: Option<DateTime<Utc>>,
}

/// `POST /billing/checkout`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// The plan to subscribe to (one with a Stripe price).
    pub plan: String,
}

/// Where to send the browser: Stripe's checkout or billing portal.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redirect {
    pub url: String,
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

/// The caller's organisation's plan, limits, usage and billing (every member may see them).
pub async fn view(db: &Db, billing: &Billing, ctx: &TenantCtx) -> Result<PlanView> {
    access::authorize(ctx, Action::OrgRead)?;
    let tx = db.read(ctx).await?;
    let plan = plans::current(&tx).await?;
    let plans = plans::catalog(tx.conn()).await?;
    // How the organisation pays is for those who run it, not for its customers or agents.
    let account = match access::authorize(ctx, Action::OrgUpdate) {
        Ok(()) => account::get(&tx).await?,
        Err(_) => None,
    };
    let view = PlanView {
        limits: plan.as_ref().map(|p| p.limits).unwrap_or_default(),
        usage: usage(&tx).await?,
        billing: BillingState {
            enabled: billing.stripe.is_some() && plans.iter().any(|p| p.purchasable),
            has_account: account.as_ref().is_some_and(|a| a.customer_id.is_some()),
            subscription_status: account.as_ref().and_then(|a| a.subscription_status.clone()),
            cancel_at: account.as_ref().and_then(|a| a.cancel_at),
            past_due_since: account.as_ref().and_then(|a| a.past_due_since),
            grace_ends_at: account.as_ref().and_then(|a| a.grace_ends_at),
        },
        plans,
        plan,
    };
    tx.commit().await?;
    Ok(view)
}

/// Opens a Stripe Checkout to subscribe the caller's organisation to `plan` (owners); answers
/// its URL. The plan changes when Stripe says the subscription is paid (its webhook). An
/// organisation that already pays changes or cancels its plan in the billing portal.
pub async fn checkout(
    db: &Db,
    billing: &Billing,
    ctx: &TenantCtx,
    req: CheckoutRequest,
) -> Result<Redirect> {
    access::authorize(ctx, Action::BillingManage)?;
    let stripe = billing.stripe()?;
    let tx = db.read(ctx).await?;
    tenancy::acting_role(&tx, ctx).await?;
    let Some(price) = plans::find(tx.conn(), &req.plan)
        .await?
        .ok_or_else(|| Error::Unprocessable {
            code: "unknown_plan",
            detail: format!("{:?} is not a plan of this server", req.plan),
        })?
        .stripe_price_id
    else {
        return Err(Error::Unprocessable {
            code: "plan_not_purchasable",
            detail: format!(
                "the plan {:?} has no price; an operator assigns it",
                req.plan
            ),
        });
    };
    let account = account::get(&tx).await?;
    if account.as_ref().is_some_and(account::subscribed) {
        return Err(Error::Conflict {
            code: "already_subscribed",
            detail: "the organization already pays for a plan: change or cancel it in the \
                     billing portal"
                .into(),
        });
    }
    let known = account.and_then(|a| a.customer_id);
    let organization = tenancy::organization(&tx).await?;
    let owner = identity::users_by_ids(tx.conn(), vec![ctx.user_id]).await?;
    tx.commit().await?;
    let customer = match known {
        Some(customer) => customer,
        None => {
            let email = owner.first().map(|p| p.email.as_str()).unwrap_or_default();
            let created = stripe
                .create_customer(ctx.org_id, &organization.name, email)
                .await?;
            keep_customer(db, ctx, &created).await?
        }
    };
    let url = stripe
        .create_checkout_session(stripe::CheckoutRequest {
            org_id: ctx.org_id,
            customer: &customer,
            price: &price,
            success_url: &billing.settings_url("?billing=done"),
            cancel_url: &billing.settings_url("?billing=cancelled"),
        })
        .await?;
    Ok(Redirect { url })
}

/// Records the organisation's new Stripe customer (the one recorded first, when two owners
/// check out at once); answers the one it has.
async fn keep_customer(db: &Db, ctx: &TenantCtx, created: &str) -> Result<String> {
    let tx = db.write(ctx).await?;
    let account = account::set_customer(&tx, account::locked(&tx).await?, created).await?;
    let customer = account.customer_id.unwrap_or_else(|| created.to_owned());
    if customer == created {
        audit::record(
            &tx,
            Some(ctx.user_id),
            "billing.customer_created",
            "organization",
            Some(ctx.org_id),
            serde_json::json!({"customer": customer}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(customer)
}

/// Opens Stripe's billing portal for the caller's organisation (owners): payment methods,
/// invoices, changing and cancelling the plan. Answers its URL.
pub async fn portal(db: &Db, billing: &Billing, ctx: &TenantCtx) -> Result<Redirect> {
    access::authorize(ctx, Action::BillingManage)?;
    let stripe = billing.stripe()?;
    let tx = db.read(ctx).await?;
    tenancy::acting_role(&tx, ctx).await?;
    let customer = account::get(&tx).await?.and_then(|a| a.customer_id);
    tx.commit().await?;
    let Some(customer) = customer else {
        return Err(Error::Conflict {
            code: "no_billing_account",
            detail: "the organization has no billing account yet: subscribe to a plan first".into(),
        });
    };
    let url = stripe
        .create_portal_session(&customer, &billing.settings_url(""))
        .await?;
    Ok(Redirect { url })
}

/// Settles the plan of every organisation whose grace or subscription ended by `now` (the
/// worker's round); answers how many plans changed.
pub async fn review_due(db: &Db, now: DateTime<Utc>) -> Result<u64> {
    let tx = db.maintenance().await?;
    let due: Vec<Uuid> = org_billing::Entity::find()
        .filter(org_billing::Column::ReviewAt.lte(now))
        .all(tx.conn())
        .await?
        .into_iter()
        .map(|a| a.org_id)
        .collect();
    tx.commit().await?;
    let mut changed = 0;
    for org in due {
        let tx = db.write_org(org).await?;
        let account = account::locked(&tx).await?;
        let reason = if account.grace_ends_at.is_some_and(|t| t <= now) {
            "payment_overdue"
        } else {
            "subscription_ended"
        };
        if account::settle(&tx, account, now, reason).await?.is_some() {
            changed += 1;
        }
        tx.commit().await?;
    }
    Ok(changed)
}

/// Forgets the ids of Stripe events received before `before`: Stripe retries for three days,
/// and the signature refuses an event older than five minutes anyway.
pub async fn purge_old_events(db: &Db, before: DateTime<Utc>) -> Result<u64> {
    let tx = db.global(true).await?;
    let done = webhook::forget_before(tx.conn(), before).await?;
    tx.commit().await?;
    Ok(done)
}

/// Puts organisation `org_id` on plan `key` (an operator's `set-plan`, or a payment): nothing
/// is deleted when it allows less than is used, the organisation only cannot add more.
pub async fn set_plan(db: &Db, org_id: Uuid, key: &str, actor: Option<Uuid>) -> Result<()> {
    let tx = db.write_org(org_id).await?;
    let change = plans::assign(&tx, Some(key)).await?;
    if change.from != change.to {
        audit::record(
            &tx,
            actor,
            "plan.changed",
            "organization",
            Some(org_id),
            serde_json::json!({"from": change.from, "to": change.to, "reason": "operator"}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
