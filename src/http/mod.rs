//! The HTTP surface: router, middleware, OpenAPI document and server lifecycle.

mod attachments;
mod audit;
mod auth;
mod billing;
mod body;
mod exports;
pub mod extract;
pub mod idempotency;
mod mail;
mod notify;
pub mod ops;
mod org;
pub mod problem;
mod ratelimit;
pub use ratelimit::RateLimits;
mod reports;
mod signin;
mod sla;
mod stream;
mod structure;
mod tokens;
mod web;
mod webhooks;
mod work;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderName, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};
use utoipa::{
    Modify, OpenApi,
    openapi::{
        Content, RefOr, ResponseBuilder,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use utoipa_axum::{router::OpenApiRouter, routes};
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    identity::{Hasher, tokens::TokenKeys},
    request_id,
    store::{Db, cost},
};
use problem::Problem;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub keys: Arc<TokenKeys>,
    /// Inbound mail: its keys, Docket's own address and limits.
    pub mailroom: crate::conversation::Mailroom,
    /// Attachment storage and its limits.
    pub files: crate::files::Files,
    /// Webhook secrets' vault and URL guard.
    pub webhooks: crate::webhooks::Webhooks,
    /// Where reports read from (a fresh replica, else the primary).
    pub reports: crate::store::replica::Reads,
    /// Requests per minute per credential, organisation and address.
    pub rate_limits: Arc<ratelimit::RateLimits>,
    /// This server's password hashing threads.
    pub hasher: Hasher,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Each organisation's shared stream reader.
    pub feeds: crate::events::stream::Feeds,
    /// Turns true when the server is stopping: long-lived streams end so shutdown can finish.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// The refresh cookie travels over TLS only: the public address (`DOCKET_PUBLIC_URL`) is
    /// `https://`. (Decided by the operator's setting, never by a request's `Host` header.)
    pub secure_cookies: bool,
    /// Second factors: the vault of app secrets, the passkeys' relying party.
    pub factors: crate::identity::mfa::SecondFactors,
    /// Single sign-on: its vaults and guarded client.
    pub sso: crate::identity::sso::SingleSignOn,
    /// Sign-ups are confirmed by a mailed link (mail is on and `DOCKET_SIGNUP_CONFIRMATION`
    /// is not turned off).
    pub confirm_signups: bool,
    /// How long a deleted organisation stays restorable (`DOCKET_ORG_DELETION_GRACE_DAYS`).
    pub org_deletion_grace: chrono::Duration,
    /// Taking payment through Stripe (off without a secret key).
    pub billing: crate::billing::Billing,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Docket API", description = "Multi-tenant ticket and task management. The tenant always comes from the access token."),
    components(schemas(Problem)),
    tags(
        (name = "auth", description = "Sign-up, sign-in and tokens"),
        (name = "organization", description = "The caller's organisation"),
        (name = "people", description = "Members and roles"),
        (name = "audit", description = "Audit log"),
        (name = "exports", description = "Data exports (an organisation's, a person's)"),
        (name = "projects", description = "Projects and their activity"),
        (name = "tickets", description = "Tickets, their state machine and timeline"),
        (name = "comments", description = "Comments and internal notes"),
        (name = "attachments", description = "Files on tickets and comments"),
        (name = "api-tokens", description = "Long-lived credentials for other systems"),
        (name = "webhooks", description = "Signed event deliveries to other systems"),
        (name = "sla", description = "Business calendars and service-level targets"),
        (name = "reports", description = "Open work, throughput and SLA attainment, as JSON or CSV"),
        (name = "views", description = "The caller's saved ticket list views"),
        (name = "notifications", description = "The caller's in-app notifications"),
        (name = "real time", description = "Live ticket changes and notifications (SSE and WebSocket)"),
        (name = "mail", description = "The organisation's mail: log, settings, inbound address and ingest log"),
        (name = "operations", description = "Health, readiness, metrics and the event outbox"),
    )
)]
struct ApiDoc;

/// Adds the bearer scheme and the problem responses every API operation can give.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or dkt_ API token")
                    .description(Some(
                        "A sign-in's access token, or an API token within its scopes",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A sign-in's access token only: API tokens are refused (403 \
                         `api_token_not_allowed`) on account and session endpoints",
                    ))
                    .build(),
            ),
        );
        let problems = [
            ("400", "Malformed request (bad JSON or query)"),
            ("401", "Missing, invalid, expired or revoked credentials"),
            ("403", "Your role may not do this"),
            ("404", "No such resource in your organisation"),
            ("405", "Method not allowed"),
            ("409", "Conflicts with the current state"),
            ("412", "If-Match names a version that is no longer current"),
            ("413", "Body too large"),
            ("415", "Body is not application/json"),
            ("422", "Invalid fields"),
            ("428", "This change needs If-Match"),
            ("429", "Too many requests; see Retry-After"),
            ("503", "The server is busy; see Retry-After"),
        ];
        for (path, item) in api.paths.paths.iter_mut() {
            if !path.starts_with("/api/") {
                continue;
            }
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                for (status, description) in problems {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| {
                            RefOr::T(
                                ResponseBuilder::new()
                                    .description(description)
                                    .content(
                                        problem::CONTENT_TYPE,
                                        Content::new(Some(RefOr::Ref(
                                            utoipa::openapi::Ref::from_schema_name("Problem"),
                                        ))),
                                    )
                                    .build(),
                            )
                        });
                }
            }
        }
    }
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(auth::signup))
        .routes(routes!(auth::confirm_signup))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::logout_all))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::me))
        .routes(routes!(auth::switch))
        .routes(routes!(auth::list_sessions))
        .routes(routes!(auth::end_session))
        .routes(routes!(signin::login_mfa))
        .routes(routes!(signin::enrol_totp, signin::disable_totp))
        .routes(routes!(signin::confirm_totp))
        .routes(routes!(signin::regenerate_recovery_codes))
        .routes(routes!(signin::list_passkeys))
        .routes(routes!(signin::remove_passkey))
        .routes(routes!(signin::passkey_register_start))
        .routes(routes!(signin::passkey_register_finish))
        .routes(routes!(signin::passkey_login_start))
        .routes(routes!(signin::passkey_login_finish))
        .routes(routes!(signin::sso_start))
        .routes(routes!(signin::sso_callback))
        .routes(routes!(
            signin::get_sso,
            signin::put_sso,
            signin::delete_sso
        ))
        .routes(routes!(signin::test_sso))
        .routes(routes!(mail::forgot_password))
        .routes(routes!(mail::claim_contacts))
        .routes(routes!(mail::request_contact_link))
        .routes(routes!(mail::confirm_contact_link))
        .routes(routes!(mail::reset_password))
        .routes(routes!(mail::invite, mail::list_invitations))
        .routes(routes!(mail::revoke_invitation))
        .routes(routes!(mail::accept_invitation))
        .routes(routes!(mail::mail_log))
        .routes(routes!(mail::mail_settings, mail::update_mail_settings))
        .routes(routes!(mail::rotate_inbound_token))
        .routes(routes!(mail::ingest_log))
        .routes(routes!(mail::list_bounces))
        .routes(routes!(mail::clear_bounce))
        .routes(routes!(mail::mail_participants, mail::add_mail_participant))
        .routes(routes!(mail::remove_mail_participant))
        .routes(routes!(mail::inbound_email))
        .routes(routes!(
            mail::notification_preferences,
            mail::set_notification_preferences
        ))
        .routes(routes!(tokens::create_api_token, tokens::list_api_tokens))
        .routes(routes!(tokens::revoke_api_token))
        .routes(routes!(webhooks::create_webhook, webhooks::list_webhooks))
        .routes(routes!(
            webhooks::get_webhook,
            webhooks::update_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::rotate_webhook_secret))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(webhooks::test_webhook))
        .routes(routes!(sla::list_calendars, sla::create_calendar))
        .routes(routes!(
            sla::get_calendar,
            sla::update_calendar,
            sla::delete_calendar
        ))
        .routes(routes!(sla::list_sla_policies, sla::replace_sla_policies))
        .routes(routes!(reports::summary_report))
        .routes(routes!(reports::throughput_report))
        .routes(routes!(reports::sla_report))
        .routes(routes!(org::get_org, org::update_org, org::delete_org))
        .routes(routes!(org::restore_org))
        .routes(routes!(org::get_retention, org::set_retention))
        .routes(routes!(org::get_plan))
        .routes(routes!(billing::checkout))
        .routes(routes!(billing::portal))
        .routes(routes!(billing::stripe_webhook))
        .routes(routes!(org::list_users, org::create_user))
        .routes(routes!(org::get_user, org::update_user, org::remove_user))
        .routes(routes!(audit::audit_log))
        .routes(routes!(audit::verify_audit_log))
        .routes(routes!(audit::download_audit_log))
        .routes(routes!(exports::create_export, exports::list_exports))
        .routes(routes!(exports::get_export))
        .routes(routes!(exports::download_export))
        .routes(routes!(work::list_projects, work::create_project))
        .routes(routes!(
            work::get_project,
            work::update_project,
            work::archive_project
        ))
        .routes(routes!(work::project_activity))
        .routes(routes!(
            structure::list_project_members,
            structure::set_project_members
        ))
        .routes(routes!(structure::list_links, structure::create_link))
        .routes(routes!(structure::delete_link))
        .routes(routes!(structure::merge_ticket))
        .routes(routes!(structure::unmerge_ticket))
        .routes(routes!(structure::split_ticket))
        .routes(routes!(structure::bulk_update))
        .routes(routes!(work::list_tickets, work::create_ticket))
        .routes(routes!(work::search))
        .routes(routes!(
            work::get_ticket,
            work::update_ticket,
            work::delete_ticket
        ))
        .routes(routes!(work::assign_ticket))
        .routes(routes!(work::complete_ticket))
        .routes(routes!(work::reopen_ticket))
        .routes(routes!(work::restore_ticket))
        .routes(routes!(work::ticket_timeline))
        .routes(routes!(work::my_tickets))
        .routes(routes!(work::list_views, work::create_view))
        .routes(routes!(work::update_view, work::delete_view))
        .routes(routes!(work::list_comments, work::create_comment))
        .routes(routes!(work::update_comment, work::delete_comment))
        .merge(
            // Uploads stream into storage under their own limits, not the JSON body limit.
            OpenApiRouter::new()
                .routes(routes!(
                    attachments::upload_attachments,
                    attachments::list_attachments
                ))
                .layer(DefaultBodyLimit::disable()),
        )
        .routes(routes!(
            attachments::download_attachment,
            attachments::remove_attachment
        ))
        .routes(routes!(notify::watch_ticket, notify::unwatch_ticket))
        .routes(routes!(notify::ticket_watchers))
        .routes(routes!(notify::list_notifications))
        .routes(routes!(notify::unread_count))
        .routes(routes!(notify::mark_read))
        .routes(routes!(notify::mark_all_read))
        .routes(routes!(stream::sse))
        .routes(routes!(stream::ws))
        .routes(routes!(ops::list_events))
        .routes(routes!(ops::retry_event))
}

/// The OpenAPI document, generated from the handlers the server runs.
pub fn openapi() -> utoipa::openapi::OpenApi {
    build().1
}

fn build() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", api_routes())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(ops::metrics))
        .split_for_parts();
    // Applied after the routes are in: it decorates every API operation.
    Conventions.modify(&mut api);
    // Search takes the ticket list's filters but not its `sort` (results are ranked): the
    // shared parameter struct would document it.
    if let Some(op) = api
        .paths
        .paths
        .get_mut("/api/v1/search")
        .and_then(|item| item.get.as_mut())
        && let Some(params) = op.parameters.as_mut()
    {
        params.retain(|p| !matches!(p, RefOr::T(p) if p.name == "sort"));
    }
    (routes, api)
}

pub fn router(state: AppState, max_body_bytes: usize, server_timing: bool) -> Router {
    let (routes, api) = build();
    let docs = Router::from(SwaggerUi::new("/docs").url("/api/v1/openapi.json", api))
        .layer(middleware::map_response(web::docs_headers));
    routes
        .merge(docs)
        .fallback_service(
            axum::routing::any(web::app).layer(tower_http::compression::CompressionLayer::new()),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(extract::answer_only_confirmed))
        .layer(CatchPanicLayer::custom(problem::panic_response))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            ratelimit::limit,
        ))
        .layer(middleware::from_fn(deadline))
        .layer(middleware::from_fn(problem::ensure_problem))
        .layer(middleware::from_fn(body::close_if_unread))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    // The path only: query strings may carry secrets. The caller's own id, if
                    // plain, is logged beside the server's.
                    let client_id = request_id::plain(
                        req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()),
                    );
                    tracing::info_span!("request", method = %req.method(), path = %loggable_path(req.uri().path()),
                        request_id = request_id::current().as_deref().unwrap_or(""),
                        client_request_id = client_id.unwrap_or(""))
                })
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _: &tracing::Span| {
                    let cost = cost::current().unwrap_or_default();
                    tracing::info!(
                        status = res.status().as_u16(),
                        latency_ms = latency.as_millis() as u64,
                        db_statements = cost.statements(),
                        db_transactions = cost.transactions(),
                        "served"
                    );
                }),
        )
        .layer(middleware::from_fn_with_state(
            server_timing,
            with_request_id,
        ))
        .with_state(state)
}

/// How long a request may take to be answered (503 after it).
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// An upload streams a body of up to `DOCKET_MAX_ATTACHMENT_BYTES` per file: time for a slow
/// connection to send it (a 25 MiB file at 1 Mbit/s takes about 3.5 minutes).
const UPLOAD_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// Answers 503 when a request takes longer than its deadline.
async fn deadline(req: Request, next: Next) -> Response {
    let upload =
        req.method() == axum::http::Method::POST && req.uri().path().ends_with("/attachments");
    let limit = if upload {
        UPLOAD_DEADLINE
    } else {
        REQUEST_DEADLINE
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The path as logs may show it: the secrets some paths carry (an invitation, password reset or
/// sign-up token, an inbound mail address) are masked.
fn loggable_path(path: &str) -> String {
    let mut previous = "";
    path.split('/')
        .map(|segment| {
            let secret = ["inv_", "pr_", "su_"]
                .iter()
                .any(|p| segment.starts_with(p))
                || (previous == "email" && path.contains("/inbound/email/"));
            previous = segment;
            if secret { "***" } else { segment }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Gives every request the server's own id, visible to all layers below (logs, problems, the
/// audit log, events) and returned in the `x-request-id` header of every response; and counts
/// what it costs the database (in the log line, and in `Server-Timing` when turned on).
async fn with_request_id(State(server_timing): State<bool>, req: Request, next: Next) -> Response {
    let id = request_id::generate();
    let counted = Arc::new(cost::Cost::default());
    let mut res = cost::measure(
        counted.clone(),
        request_id::scope(id.clone(), next.run(req)),
    )
    .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    if server_timing {
        let timing = format!(
            "db;desc=\"statements={} transactions={}\"",
            counted.statements(),
            counted.transactions()
        );
        if let Ok(value) = HeaderValue::from_str(&timing) {
            res.headers_mut()
                .insert(HeaderName::from_static("server-timing"), value);
        }
    }
    res
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers and every migration is applied.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready", body = String), (status = 503, description = "Not ready", body = Problem)))]
async fn readyz(State(s): State<AppState>) -> Response {
    match s.db.ready().await {
        Ok(()) => "ready".into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "not ready");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database is unreachable or not migrated",
            )
            .into_response()
        }
    }
}

/// Limits on connections, against clients that hold them without using them.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Open connections at most; one more is answered 503 and closed.
    pub max_connections: usize,
    /// A connection that has not sent a complete request head this long after it opened or
    /// after its previous response (a slow sender, or an idle keep-alive) is closed. Streams are
    /// not affected once their request is in: they send their own heartbeats.
    pub header_timeout: Duration,
}

/// Serves until `shutdown` resolves; in-flight requests finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::{
        rt::{TokioIo, TokioTimer},
        service::TowerToHyperService,
    };

    // HTTP/1.1 (a TLS terminator in front speaks it to us). Its header timer runs whenever the
    // connection waits for a request head, so it also ends idle keep-alives.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let (stop_connections, stopping) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let service = tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        );
        let connection = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = stopping.changed() => {
                    // Finish the request in hand, take no more.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = ended {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_connections.send(true);
    // Every connection has ended when every slot is free again.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    Ok(())
}

/// Answers a connection over the cap with 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt as _;
    metrics::counter!("docket_connections_refused_total").increment(1);
    let problem = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        "the server has too many open connections; retry shortly",
    );
    let body = serde_json::to_string(&problem).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: 1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        problem::CONTENT_TYPE,
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn logged_paths_hide_the_secrets_they_carry() {
        assert_eq!(
            super::loggable_path("/api/v1/invitations/inv_abc_def/accept"),
            "/api/v1/invitations/***/accept"
        );
        assert_eq!(
            super::loggable_path("/api/v1/inbound/email/0123abc"),
            "/api/v1/inbound/email/***"
        );
        assert_eq!(
            super::loggable_path("/api/v1/tickets/OPS-1"),
            "/api/v1/tickets/OPS-1"
        );
        assert_eq!(
            super::loggable_path("/signup/confirm/su_abc"),
            "/signup/confirm/***"
        );
        assert_eq!(
            super::loggable_path("/reset-password/pr_abc"),
            "/reset-password/***"
        );
    }
}
