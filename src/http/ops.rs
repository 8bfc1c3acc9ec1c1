//! Operations: the outbox for admins, and Prometheus metrics.

use std::sync::OnceLock;

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use uuid::Uuid;

use super::{
    AppState,
    extract::{Auth, Json, Path, Query},
    problem::Problem,
};
use crate::{
    error::Result,
    events::ops::{self, EventFilter, OutboxEvent},
    pagination::{Page, PageParams},
};

/// The organisation's outbox events, newest first; `?status=dead` lists the dead letters
/// (admins).
#[utoipa::path(get, path = "/admin/events", tag = "operations", params(EventFilter, PageParams),
    security(("bearer" = [])), responses((status = 200, description = "A page of events", body = Page<OutboxEvent>)))]
pub async fn list_events(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(filter): Query<EventFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<OutboxEvent>>> {
    Ok(Json(
        ops::list(&s.db, &ctx, filter, page.validate()?).await?,
    ))
}

/// Requeue a dead event with a fresh set of attempts (admins).
#[utoipa::path(post, path = "/admin/events/{id}/retry", tag = "operations",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, description = "Queued again", body = OutboxEvent)))]
pub async fn retry_event(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<Json<OutboxEvent>> {
    Ok(Json(ops::retry(&s.db, &ctx, id).await?))
}

/// The process-wide metrics recorder (installed once; servers started in the same process,
/// as in tests, share it).
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Finer between 0.5 and 2.5 s, where the commit → handled delay of a busy worker
            // falls and its 1 s goal lies.
            let seconds = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5,
                5.0, 10.0, 60.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Prefix("docket_event".into()), &seconds)
                .expect("valid buckets")
                .install_recorder()
                .expect("the metrics recorder is installed once")
        })
        .clone()
}

/// Prometheus metrics: the outbox backlog (all processes; read from the database) and this
/// process's handled, failed and dead counts and handling latencies.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(s): State<AppState>) -> Response {
    match ops::backlog(&s.db).await {
        Ok(b) => {
            metrics::gauge!("docket_outbox_backlog").set(b.open as f64);
            metrics::gauge!("docket_outbox_dead").set(b.dead as f64);
            metrics::gauge!("docket_outbox_oldest_pending_seconds").set(b.oldest_open_secs);
        }
        Err(err) => {
            tracing::warn!(error = ?err, "reading the outbox backlog failed");
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database is unreachable",
            )
            .into_response();
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}
