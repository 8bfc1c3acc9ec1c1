//! Business calendars and SLA policies (staff read them; admins change them).

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
    extract::{Auth, Json, Path},
};
use crate::{
    error::Result,
    work::sla::{
        calendars::{self, CalendarPatch, CalendarView, NewCalendar},
        policies::{self, SlaPolicies, SlaPoliciesInput},
    },
};

#[derive(Serialize, ToSchema)]
pub struct CalendarList {
    pub items: Vec<CalendarView>,
}

/// The organisation's business calendars (staff), by name.
#[utoipa::path(get, path = "/calendars", tag = "sla", security(("bearer" = [])),
    responses((status = 200, description = "The calendars", body = CalendarList)))]
pub async fn list_calendars(
    State(s): State<AppState>,
    Auth(ctx): Auth,
) -> Result<Json<CalendarList>> {
    let items = calendars::list(&s.db, &ctx).await?;
    Ok(Json(CalendarList { items }))
}

/// Create a business calendar (admins): an IANA time zone, opening hours per weekday (several
/// intervals a day) and holidays.
#[utoipa::path(post, path = "/calendars", tag = "sla", request_body = NewCalendar,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = CalendarView)))]
pub async fn create_calendar(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(req): Json<NewCalendar>,
) -> Result<Response> {
    let created = calendars::create(&s.db, &ctx, req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// One business calendar (staff).
#[utoipa::path(get, path = "/calendars/{id}", tag = "sla", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, description = "The calendar", body = CalendarView)))]
pub async fn get_calendar(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<Json<CalendarView>> {
    Ok(Json(calendars::get(&s.db, &ctx, id).await?))
}

/// Change a calendar (admins); the open tickets whose clocks count on it are computed again.
#[utoipa::path(patch, path = "/calendars/{id}", tag = "sla", params(("id" = Uuid, Path)),
    request_body = CalendarPatch, security(("bearer" = [])),
    responses((status = 200, description = "The changed calendar", body = CalendarView)))]
pub async fn update_calendar(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
    Json(patch): Json<CalendarPatch>,
) -> Result<Json<CalendarView>> {
    Ok(Json(calendars::update(&s.db, &ctx, id, patch).await?))
}

/// Delete a calendar no policy uses (admins); 409 `calendar_in_use` otherwise.
#[utoipa::path(delete, path = "/calendars/{id}", tag = "sla", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 204, description = "Deleted")))]
pub async fn delete_calendar(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    calendars::delete(&s.db, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The SLA policies (staff): targets per priority, optionally per project.
#[utoipa::path(get, path = "/sla-policies", tag = "sla", security(("bearer" = [])),
    responses((status = 200, description = "The policies", body = SlaPolicies)))]
pub async fn list_sla_policies(
    State(s): State<AppState>,
    Auth(ctx): Auth,
) -> Result<Json<SlaPolicies>> {
    Ok(Json(policies::list(&s.db, &ctx).await?))
}

/// Replace the SLA policies (admins). Every ticket that is not closed, cancelled or deleted
/// has its clocks and due times computed again in the same transaction.
#[utoipa::path(put, path = "/sla-policies", tag = "sla", request_body = SlaPoliciesInput,
    security(("bearer" = [])),
    responses((status = 200, description = "The stored policies", body = SlaPolicies)))]
pub async fn replace_sla_policies(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(req): Json<SlaPoliciesInput>,
) -> Result<Json<SlaPolicies>> {
    Ok(Json(policies::replace(&s.db, &ctx, req).await?))
}
