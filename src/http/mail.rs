//! Invitations, password recovery, and the organisation's mail: its log, settings and
//! inbound address.

use axum::{
    extract::{Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use uuid::Uuid;

use super::{
    AppState,
    auth::{RefreshModeHeader, RefreshTransport},
    extract::{Auth, ClientIp, Json, MaybeAuth, Path, Query, media_type},
    problem::Problem,
};
use crate::{
    conversation::{
        self, IngestLogEntry, IngestLogFilter, IngestOutcome,
        settings::{self, MailSettings, MailSettingsUpdate},
    },
    error::{Error, Result},
    identity::{
        AuthResponse,
        recovery::{self, AcceptInvitation, ForgotPassword, ResetPassword},
    },
    mail::{self, MailLogEntry, MailLogFilter},
    notify::preferences::{self, Preferences},
    pagination::{Page, PageParams},
    tenancy::invitations::{self, Invitation, NewInvitation},
};

/// Invite someone by mail (admins). The answer is the same whether or not the address already
/// has a Docket account.
#[utoipa::path(post, path = "/invitations", tag = "people", request_body = NewInvitation, security(("bearer" = [])),
    responses((status = 201, description = "Invited; the mail is on its way", body = Invitation)))]
pub async fn invite(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(req): Json<NewInvitation>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(invitations::invite(&s.db, &ctx, req).await?),
    ))
}

/// Invitations not yet accepted, newest first (admins).
#[utoipa::path(get, path = "/invitations", tag = "people", params(PageParams), security(("bearer" = [])),
    responses((status = 200, description = "A page of invitations", body = Page<Invitation>)))]
pub async fn list_invitations(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Invitation>>> {
    Ok(Json(
        invitations::list(&s.db, &ctx, page.validate()?).await?,
    ))
}

/// Withdraw an invitation: its link stops working (admins).
#[utoipa::path(delete, path = "/invitations/{id}", tag = "people", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Withdrawn")))]
pub async fn revoke_invitation(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    invitations::revoke(&s.db, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accept an invitation and sign in to its organisation. A new address sends a password; an
/// address that already has an account accepts while signed in to it (with its bearer token).
#[utoipa::path(post, path = "/invitations/{token}/accept", tag = "auth", request_body = AcceptInvitation,
    params(("token" = String, Path, description = "The token of the invitation link"), RefreshModeHeader),
    responses((status = 200, description = "Joined and signed in", body = AuthResponse)))]
pub async fn accept_invitation(
    State(s): State<AppState>,
    Path(token): Path<String>,
    MaybeAuth(ctx): MaybeAuth,
    transport: RefreshTransport,
    Json(req): Json<AcceptInvitation>,
) -> Result<Response> {
    let res = recovery::accept_invitation(&s.db, &s.keys, &s.hasher, &token, req, ctx).await?;
    Ok(transport.respond(StatusCode::OK, res, &s.keys))
}

/// Ask for a password reset link. The answer is the same whether or not the address has an
/// account.
#[utoipa::path(post, path = "/auth/password/forgot", tag = "auth", request_body = ForgotPassword,
    responses((status = 202, description = "If the address has an account, a link is on its way")))]
pub async fn forgot_password(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<ForgotPassword>,
) -> Result<StatusCode> {
    recovery::forgot(&s.db, req, ip).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with the token of a reset link; every session of the account ends.
#[utoipa::path(post, path = "/auth/password/reset", tag = "auth", request_body = ResetPassword,
    responses((status = 204, description = "Password set; sign in with it")))]
pub async fn reset_password(
    State(s): State<AppState>,
    Json(req): Json<ResetPassword>,
) -> Result<StatusCode> {
    recovery::reset(&s.db, &s.hasher, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The organisation's outgoing mails, newest first: recipient, kind, status, attempts and the
/// server's last answer (admins).
#[utoipa::path(get, path = "/mail/log", tag = "mail", params(MailLogFilter, PageParams), security(("bearer" = [])),
    responses((status = 200, description = "A page of mails", body = Page<MailLogEntry>)))]
pub async fn mail_log(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(filter): Query<MailLogFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<MailLogEntry>>> {
    Ok(Json(
        mail::log(&s.db, &ctx, filter, page.validate()?).await?,
    ))
}

/// The organisation's mail settings: inbound address, acknowledgement, inbound project and
/// IMAP mailbox (admins).
#[utoipa::path(get, path = "/mail/settings", tag = "mail", security(("bearer" = [])),
    responses((status = 200, description = "The settings", body = MailSettings)))]
pub async fn mail_settings(
    State(s): State<AppState>,
    Auth(ctx): Auth,
) -> Result<Json<MailSettings>> {
    Ok(Json(settings::get(&s.db, &s.mailroom, &ctx).await?))
}

/// Replace the organisation's mail settings (admins). The IMAP password is stored encrypted
/// and never shown again.
#[utoipa::path(put, path = "/mail/settings", tag = "mail", request_body = MailSettingsUpdate, security(("bearer" = [])),
    responses((status = 200, description = "The stored settings", body = MailSettings)))]
pub async fn update_mail_settings(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(req): Json<MailSettingsUpdate>,
) -> Result<Json<MailSettings>> {
    Ok(Json(settings::update(&s.db, &s.mailroom, &ctx, req).await?))
}

/// A new inbound address; the old one stops working at once (admins).
#[utoipa::path(post, path = "/mail/settings/rotate-inbound-token", tag = "mail", security(("bearer" = [])),
    responses((status = 200, description = "The settings with the new address", body = MailSettings)))]
pub async fn rotate_inbound_token(
    State(s): State<AppState>,
    Auth(ctx): Auth,
) -> Result<Json<MailSettings>> {
    Ok(Json(
        settings::rotate_inbound_token(&s.db, &s.mailroom, &ctx).await?,
    ))
}

/// Every inbound message and what became of it (a ticket, a comment, or why not), newest
/// first (admins).
#[utoipa::path(get, path = "/mail/ingest-log", tag = "mail", params(IngestLogFilter, PageParams), security(("bearer" = [])),
    responses((status = 200, description = "A page of inbound messages", body = Page<IngestLogEntry>)))]
pub async fn ingest_log(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(filter): Query<IngestLogFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<IngestLogEntry>>> {
    Ok(Json(
        conversation::ingest_log(&s.db, &ctx, filter, page.validate()?).await?,
    ))
}

/// Deliver a raw RFC 5322 message (`Content-Type: message/rfc822`) to the organisation whose
/// inbound address this is: a new ticket, or a comment when it continues one. The same message
/// twice has one effect.
#[utoipa::path(post, path = "/inbound/email/{token}", tag = "mail",
    params(("token" = String, Path, description = "The organisation's inbound token (a secret)")),
    request_body(content = String, content_type = "message/rfc822", description = "The raw message"),
    responses((status = 202, description = "Taken (see `outcome`)", body = IngestOutcome)))]
pub async fn inbound_email(
    State(s): State<AppState>,
    Path(token): Path<String>,
    req: Request,
) -> std::result::Result<(StatusCode, Json<IngestOutcome>), Problem> {
    if media_type(req.headers()).as_deref() != Some("message/rfc822") {
        return Err(Error::UnsupportedMediaType {
            detail: "send the raw message as message/rfc822".into(),
        }
        .into());
    }
    let limit = s.mailroom.max_email_bytes;
    let raw = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            Error::too_large(format!(
                "the message is larger than {limit} bytes (DOCKET_MAX_EMAIL_BYTES)"
            ))
        })?;
    let outcome = conversation::receive(&s.db, &s.mailroom, &token, &raw)
        .await
        .map_err(Problem::from)?;
    Ok((StatusCode::ACCEPTED, Json(outcome)))
}

/// How you hear of each kind of notification by mail in this organisation: immediately, in an
/// hourly digest, or not at all.
#[utoipa::path(get, path = "/me/notification-preferences", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, description = "Every kind with its delivery", body = Preferences)))]
pub async fn notification_preferences(
    State(s): State<AppState>,
    Auth(ctx): Auth,
) -> Result<Json<Preferences>> {
    Ok(Json(preferences::get(&s.db, &ctx).await?))
}

/// Set the delivery of the kinds named (the others stay as they are).
#[utoipa::path(put, path = "/me/notification-preferences", tag = "notifications", request_body = Preferences,
    security(("bearer" = [])), responses((status = 200, description = "Every kind with its delivery", body = Preferences)))]
pub async fn set_notification_preferences(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(req): Json<Preferences>,
) -> Result<Json<Preferences>> {
    Ok(Json(preferences::set(&s.db, &ctx, req).await?))
}
