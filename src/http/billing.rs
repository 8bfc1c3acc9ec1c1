//! Paying for a plan through Stripe: checkout and the billing portal (owners), and Stripe's
//! events.

use axum::{body::Bytes, extract::State, http::HeaderMap};

use super::{
    AppState,
    extract::{Json, SignedIn},
};
use crate::{
    billing::{
        self, CheckoutRequest, Redirect,
        webhook::{self, Receipt},
    },
    error::Result,
};

/// Subscribe the organisation to a plan (owners): answers the URL of a Stripe Checkout for the
/// plan's price. The plan changes when Stripe reports the subscription paid. An organisation
/// that already pays changes its plan in the billing portal (409 `already_subscribed`); a
/// server that does not take payment answers 409 `billing_not_configured`.
#[utoipa::path(post, path = "/billing/checkout", tag = "organization", request_body = CheckoutRequest,
    security(("session" = [])),
    responses(
        (status = 200, description = "Send the browser to `url`", body = Redirect),
        (status = 502, description = "Stripe refused or did not answer", body = super::Problem),
    ))]
pub async fn checkout(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    Json(req): Json<CheckoutRequest>,
) -> Result<Json<Redirect>> {
    Ok(Json(billing::checkout(&s.db, &s.billing, &ctx, req).await?))
}

/// Open Stripe's billing portal for the organisation (owners): payment method, invoices,
/// changing or cancelling the plan. 409 `no_billing_account` before a first checkout.
#[utoipa::path(post, path = "/billing/portal", tag = "organization", security(("session" = [])),
    responses(
        (status = 200, description = "Send the browser to `url`", body = Redirect),
        (status = 502, description = "Stripe refused or did not answer", body = super::Problem),
    ))]
pub async fn portal(State(s): State<AppState>, SignedIn(ctx): SignedIn) -> Result<Json<Redirect>> {
    Ok(Json(billing::portal(&s.db, &s.billing, &ctx).await?))
}

/// Stripe's events, signed with `DOCKET_STRIPE_WEBHOOK_SECRET` (`Stripe-Signature`; 400
/// `invalid_signature` when it does not match the raw body, or was made over five minutes
/// ago). Each event id acts once; subscription events apply in the subscription's own order.
#[utoipa::path(post, path = "/billing/stripe/webhook", tag = "organization",
    request_body(content = String, content_type = "application/json", description = "A Stripe event"),
    params(("Stripe-Signature" = String, Header, description = "`t=…,v1=…`")),
    responses((status = 200, description = "Received (see `outcome`)", body = Receipt)))]
pub async fn stripe_webhook(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Receipt>> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    Ok(Json(
        webhook::receive(&s.db, &s.billing, signature, &body).await?,
    ))
}
