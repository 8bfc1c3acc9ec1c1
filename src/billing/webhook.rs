//! Stripe's events (`POST /billing/stripe/webhook`): the signature is checked on the raw body
//! before anything reads it, each event id acts once (it is recorded in the transaction of what
//! it does, so a failure leaves it to Stripe's retry), and an organisation's events apply one at
//! a time in the order of the subscription's own history, whatever order they arrive in.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    Billing,
    account::{self, Position, Subscription, entity::org_billing},
    signature,
};
use crate::{
    access::Role,
    audit,
    error::{Error, Result},
    identity, mail,
    store::{self, Db, TenantTx},
    tenancy,
};

/// What became of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Acted on.
    Applied,
    /// This event id was acted on before.
    Duplicate,
    /// Older than what Docket knows of the subscription, or of one it does not follow.
    Stale,
    /// Of a kind Docket does not act on, or of no organisation here.
    Ignored,
}

/// The answer to Stripe.
#[derive(Debug, Serialize, ToSchema)]
pub struct Receipt {
    pub outcome: Outcome,
}

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: Value,
}

/// What an event asks of an organisation.
enum Act {
    Subscription(Subscription, i32),
    CheckoutCompleted { customer: Option<String> },
    PaymentSucceeded,
    PaymentFailed { invoice: Option<String> },
}

/// Verifies, parses and acts on one delivery of Stripe's.
pub async fn receive(
    db: &Db,
    billing: &Billing,
    signature_header: Option<&str>,
    body: &[u8],
) -> Result<Receipt> {
    let refused = |r: signature::Refused| Error::BadRequest {
        code: "invalid_signature",
        detail: r.explain().into(),
    };
    let header = signature_header
        .ok_or(signature::Refused::Malformed)
        .map_err(refused)?;
    let secrets = billing.webhook_secrets();
    if secrets.is_empty() {
        return Err(Error::NotFound("stripe_webhook"));
    }
    signature::verify(Some(header), body, &secrets, Utc::now().timestamp()).map_err(refused)?;
    let event: Event = serde_json::from_slice(body).map_err(|err| Error::BadRequest {
        code: "invalid_event",
        detail: format!("the body is not a Stripe event: {err}"),
    })?;
    let at = account::timestamp(&Value::from(event.created));
    let (Some(at), false) = (at, event.id.is_empty() || event.id.len() > 255) else {
        return Err(Error::BadRequest {
            code: "invalid_event",
            detail: "the event's id or created time is not usable".into(),
        });
    };
    let object = &event.data.object;
    let (act, customer, named_org) = match event.kind.as_str() {
        kind @ ("customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted") => {
            let Some(sub) = Subscription::parse(object) else {
                return Err(Error::BadRequest {
                    code: "invalid_event",
                    detail: "the event's object is not a subscription".into(),
                });
            };
            let rank = match kind {
                "customer.subscription.created" => 0,
                "customer.subscription.updated" => 1,
                _ => 2,
            };
            let (customer, org) = (sub.customer.clone(), sub.org);
            (Act::Subscription(sub, rank), customer, org)
        }
        "checkout.session.completed" => {
            let customer = account::id_of(object.get("customer"));
            let org = object
                .get("client_reference_id")
                .or_else(|| object.pointer("/metadata/docket_org_id"))
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok());
            (
                Act::CheckoutCompleted {
                    customer: customer.clone(),
                },
                customer,
                org,
            )
        }
        "invoice.paid" | "invoice.payment_succeeded" | "invoice.payment_failed" => {
            let org = object
                .pointer("/subscription_details/metadata/docket_org_id")
                .or_else(|| object.pointer("/parent/subscription_details/metadata/docket_org_id"))
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok());
            let act = if event.kind == "invoice.payment_failed" {
                Act::PaymentFailed {
                    invoice: account::id_of(object.get("id")),
                }
            } else {
                Act::PaymentSucceeded
            };
            (act, account::id_of(object.get("customer")), org)
        }
        _ => return ignored(db, &event).await,
    };
    let org = match &customer {
        Some(customer) => customer_org(db, customer).await?.or(named_org),
        None => named_org,
    };
    let Some(org) = org else {
        return ignored(db, &event).await;
    };
    let tx = db.write_org(org).await?;
    let organization = match tenancy::organization(&tx).await {
        Err(Error::NotFound(_)) => {
            tx.rollback().await?;
            return ignored(db, &event).await;
        }
        other => other?,
    };
    if !record(tx.conn(), &event).await? {
        tx.rollback().await?;
        return Ok(Receipt {
            outcome: Outcome::Duplicate,
        });
    }
    let account = account::locked(&tx).await?;
    if let (Some(known), Some(claimed)) = (&account.customer_id, &customer)
        && known != claimed
    {
        tracing::warn!(org = %org, event = %event.id,
            "a Stripe event of another customer names this organization; ignored");
        tx.commit().await?;
        return Ok(Receipt {
            outcome: Outcome::Ignored,
        });
    }
    let now = Utc::now();
    let outcome = match act {
        Act::Subscription(sub, rank) => {
            match account::follow(&tx, account, &sub, Position { at, rank }).await? {
                None => Outcome::Stale,
                Some(account) => {
                    audit::record(
                        &tx,
                        None,
                        "billing.subscription_changed",
                        "organization",
                        Some(org),
                        serde_json::json!({
                            "event": event.kind,
                            "subscription": sub.id,
                            "status": sub.status,
                            "plan": account.subscribed_plan,
                            "cancel_at": account.cancel_at,
                        }),
                    )
                    .await?;
                    let reason = format!("subscription_{}", sub.status);
                    account::settle(&tx, account, now, &reason).await?;
                    Outcome::Applied
                }
            }
        }
        Act::CheckoutCompleted { customer } => {
            if let Some(customer) = customer {
                account::set_customer(&tx, account, &customer).await?;
            }
            audit::record(
                &tx,
                None,
                "billing.checkout_completed",
                "organization",
                Some(org),
                serde_json::json!({"session": account::id_of(object.get("id"))}),
            )
            .await?;
            Outcome::Applied
        }
        Act::PaymentSucceeded => {
            let (account, cleared) = account::payment_succeeded(&tx, account).await?;
            if cleared {
                audit::record(
                    &tx,
                    None,
                    "billing.payment_recovered",
                    "organization",
                    Some(org),
                    serde_json::json!({"invoice": account::id_of(object.get("id"))}),
                )
                .await?;
            }
            account::settle(&tx, account, now, "payment_received").await?;
            Outcome::Applied
        }
        Act::PaymentFailed { invoice } => {
            let (account, newly) =
                account::payment_failed(&tx, account, now, billing.grace).await?;
            if newly {
                audit::record(
                    &tx,
                    None,
                    "billing.payment_failed",
                    "organization",
                    Some(org),
                    serde_json::json!({"invoice": invoice, "grace_ends_at": account.grace_ends_at}),
                )
                .await?;
                announce_overdue(&tx, &organization.name, account.grace_ends_at).await?;
            }
            account::settle(&tx, account, now, "payment_overdue").await?;
            Outcome::Applied
        }
    };
    tx.commit().await?;
    tracing::info!(org = %org, event = %event.id, kind = %event.kind, ?outcome, "Stripe event");
    Ok(Receipt { outcome })
}

/// Records an event that concerns no organisation here (still once).
async fn ignored(db: &Db, event: &Event) -> Result<Receipt> {
    let tx = db.global(true).await?;
    let fresh = record(tx.conn(), event).await?;
    tx.commit().await?;
    tracing::info!(event = %event.id, kind = %event.kind, "Stripe event not acted on");
    Ok(Receipt {
        outcome: if fresh {
            Outcome::Ignored
        } else {
            Outcome::Duplicate
        },
    })
}

/// Records the event's id; answers whether it is new. A concurrent delivery of the same id
/// waits on the key, then finds it taken.
async fn record(conn: &impl ConnectionTrait, event: &Event) -> Result<bool> {
    let done = conn
        .execute_raw(store::statement(
            conn.get_database_backend(),
            "INSERT INTO billing_events (event_id, kind, received_at) VALUES ($1, $2, $3) \
             ON CONFLICT (event_id) DO NOTHING",
            [
                event.id.clone().into(),
                event.kind.clone().into(),
                Utc::now().into(),
            ],
        ))
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets the events received before `before`; answers how many.
pub(super) async fn forget_before(
    conn: &impl ConnectionTrait,
    before: DateTime<Utc>,
) -> Result<u64> {
    let done = conn
        .execute_raw(store::statement(
            conn.get_database_backend(),
            "DELETE FROM billing_events WHERE received_at < $1",
            [before.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// The organisation whose Stripe customer `customer` is.
async fn customer_org(db: &Db, customer: &str) -> Result<Option<Uuid>> {
    let tx = db.maintenance().await?;
    let found = org_billing::Entity::find()
        .filter(org_billing::Column::CustomerId.eq(customer))
        .one(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(found.map(|a| a.org_id))
}

/// Mails the owners and admins that a payment failed and when the plan goes.
async fn announce_overdue(
    tx: &TenantTx,
    organization: &str,
    grace_ends_at: Option<DateTime<Utc>>,
) -> Result<()> {
    let ids = tenancy::active_with_roles(tx, &[Role::Owner, Role::Admin]).await?;
    let until = grace_ends_at
        .unwrap_or_else(Utc::now)
        .format("%Y-%m-%d %H:%M UTC")
        .to_string();
    let mails = identity::users_by_ids(tx.conn(), ids)
        .await?
        .into_iter()
        .filter(|p| !p.contact)
        .map(|p| mail::Outgoing {
            kind: mail::Kind::PaymentFailed,
            to: p.email.clone(),
            to_user_id: Some(p.id),
            params: serde_json::json!({
                "name": p.name,
                "organization": organization,
                "grace_ends_at": until,
                "path": "/admin/settings#plan",
            }),
            automatic: true,
            thread: None,
        })
        .collect();
    mail::enqueue_all(tx, mails).await
}
