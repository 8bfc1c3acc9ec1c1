//! The caller's own notifications and ticket watching.

use axum::{extract::State, http::StatusCode};
use uuid::Uuid;

use super::{
    AppState,
    extract::{Auth, Json, Path, Query},
};
use crate::{
    error::Result,
    notify::{self, Notification, NotificationFilter, UnreadCount},
    pagination::{Page, PageParams},
    work::watchers,
};

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/notifications", tag = "notifications", params(NotificationFilter, PageParams),
    security(("bearer" = [])), responses((status = 200, description = "A page of notifications", body = Page<Notification>)))]
pub async fn list_notifications(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(filter): Query<NotificationFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Notification>>> {
    Ok(Json(
        notify::list(&s.db, &ctx, filter, page.validate()?).await?,
    ))
}

/// How many of the caller's notifications are unread.
#[utoipa::path(get, path = "/notifications/unread-count", tag = "notifications",
    security(("bearer" = [])), responses((status = 200, description = "Unread notifications", body = UnreadCount)))]
pub async fn unread_count(State(s): State<AppState>, Auth(ctx): Auth) -> Result<Json<UnreadCount>> {
    Ok(Json(notify::unread_count(&s.db, &ctx).await?))
}

/// Mark one notification read.
#[utoipa::path(patch, path = "/notifications/{id}/read", tag = "notifications",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, description = "Read", body = Notification)))]
pub async fn mark_read(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<Json<Notification>> {
    Ok(Json(notify::mark_read(&s.db, &ctx, id).await?))
}

/// Mark every notification read; answers how many were unread.
#[utoipa::path(patch, path = "/notifications/read-all", tag = "notifications",
    security(("bearer" = [])), responses((status = 200, description = "All read", body = UnreadCount)))]
pub async fn mark_all_read(
    State(s): State<AppState>,
    Auth(ctx): Auth,
) -> Result<Json<UnreadCount>> {
    Ok(Json(notify::mark_all_read(&s.db, &ctx).await?))
}

/// Watch a ticket: hear about its comments and status changes.
#[utoipa::path(post, path = "/tickets/{id}/watch", tag = "tickets",
    params(("id" = String, Path, description = "Id or key")), security(("bearer" = [])),
    responses((status = 204, description = "Watching")))]
pub async fn watch_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    watchers::set(&s.db, &ctx, &id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stop watching a ticket.
#[utoipa::path(delete, path = "/tickets/{id}/watch", tag = "tickets",
    params(("id" = String, Path, description = "Id or key")), security(("bearer" = [])),
    responses((status = 204, description = "Not watching")))]
pub async fn unwatch_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    watchers::set(&s.db, &ctx, &id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /tickets/{id}/watchers`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Watchers {
    pub user_ids: Vec<Uuid>,
}

/// Who watches a ticket.
#[utoipa::path(get, path = "/tickets/{id}/watchers", tag = "tickets",
    params(("id" = String, Path, description = "Id or key")), security(("bearer" = [])),
    responses((status = 200, description = "The watchers' ids", body = Watchers)))]
pub async fn ticket_watchers(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
) -> Result<Json<Watchers>> {
    Ok(Json(Watchers {
        user_ids: watchers::list(&s.db, &ctx, &id).await?,
    }))
}
