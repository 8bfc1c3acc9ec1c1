//! Webhooks: endpoints, their secrets, deliveries, redelivery and tests (admins).

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    AppState,
    extract::{Auth, Json, Path, Query},
};
use crate::{
    error::Result,
    pagination::{Page, PageParams},
    webhooks::{self, NewWebhook, Webhook, WebhookDelivery, WebhookPatch, WebhookWithSecret},
};

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<Webhook>,
}

/// Subscribe an endpoint to events (admins). The `whsec_…` secret that signs every delivery is
/// in this answer only. A URL that is not http(s), or names a non-public address, is a 422.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = NewWebhook,
    security(("bearer" = [])),
    responses((status = 201, description = "Created: the webhook and its secret, shown once", body = WebhookWithSecret)))]
pub async fn create_webhook(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(req): Json<NewWebhook>,
) -> Result<Response> {
    let created = webhooks::create(&s.db, &s.webhooks, &ctx, req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// The organisation's webhooks (admins), oldest first.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, description = "The webhooks", body = WebhookList)))]
pub async fn list_webhooks(
    State(s): State<AppState>,
    Auth(ctx): Auth,
) -> Result<Json<WebhookList>> {
    let items = webhooks::list(&s.db, &ctx).await?;
    Ok(Json(WebhookList { items }))
}

/// One webhook (admins).
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, description = "The webhook", body = Webhook)))]
pub async fn get_webhook(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<Json<Webhook>> {
    Ok(Json(webhooks::get(&s.db, &ctx, id).await?))
}

/// Change a webhook's URL, events or description, or turn it off and on (admins).
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    request_body = WebhookPatch, security(("bearer" = [])),
    responses((status = 200, description = "The changed webhook", body = Webhook)))]
pub async fn update_webhook(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
    Json(patch): Json<WebhookPatch>,
) -> Result<Json<Webhook>> {
    Ok(Json(
        webhooks::update(&s.db, &s.webhooks, &ctx, id, patch).await?,
    ))
}

/// Delete a webhook and its delivery log (admins).
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 204, description = "Deleted")))]
pub async fn delete_webhook(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    webhooks::delete(&s.db, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret, shown once (admins). The previous secret keeps signing beside it for
/// 24 hours: receivers accept either while they switch.
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The webhook and its new secret", body = WebhookWithSecret)))]
pub async fn rotate_webhook_secret(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<Json<WebhookWithSecret>> {
    Ok(Json(
        webhooks::rotate_secret(&s.db, &s.webhooks, &ctx, id).await?,
    ))
}

/// A webhook's deliveries, newest first, each with its attempts (kept 30 days).
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = Uuid, Path), PageParams), security(("bearer" = [])),
    responses((status = 200, description = "A page of deliveries", body = Page<WebhookDelivery>)))]
pub async fn list_deliveries(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<WebhookDelivery>>> {
    Ok(Json(
        webhooks::deliveries(&s.db, &ctx, id, page.validate()?).await?,
    ))
}

/// Send a delivery again now, under the same `webhook-id` (admins).
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = Uuid, Path), ("delivery_id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 202, description = "Queued again", body = WebhookDelivery)))]
pub async fn redeliver(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path((id, delivery_id)): Path<(Uuid, Uuid)>,
) -> Result<Response> {
    let queued = webhooks::redeliver(&s.db, &ctx, id, delivery_id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(queued)).into_response())
}

/// Send a `webhook.test` delivery to the endpoint (admins); its outcome appears in the
/// deliveries.
#[utoipa::path(post, path = "/webhooks/{id}/test", tag = "webhooks", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 202, description = "Queued", body = WebhookDelivery)))]
pub async fn test_webhook(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let queued = webhooks::send_test(&s.db, &ctx, id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(queued)).into_response())
}
