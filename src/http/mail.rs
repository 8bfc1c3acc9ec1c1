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
    body,
    extract::{Auth, ClientIp, Json, MaybeSignedIn, Path, Query, SignedIn, media_type},
    problem::Problem,
};
use crate::{
    conversation::{
        self, IngestLogEntry, IngestLogFilter, IngestOutcome, RawMail, Route,
        bounces::{self, Bounce},
        contacts::{self, ClaimContacts, ConfirmLink, LinkedContacts},
        participants::{self, AddParticipant, MailConversation},
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
/// has a Docket account. An organisation sends `DOCKET_INVITATIONS_PER_DAY` a day (a fifth in
/// its first week), and one address is invited again after 10 minutes at the soonest, 3 times
/// a day at most (429 beyond).
#[utoipa::path(post, path = "/invitations", tag = "people", request_body = NewInvitation, security(("bearer" = [])),
    responses((status = 201, description = "Invited; the mail is on its way", body = Invitation)))]
pub async fn invite(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(req): Json<NewInvitation>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(invitations::invite(&s.db, &ctx, req, s.rate_limits.invitations()).await?),
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
    security((), ("session" = [])),
    params(("token" = String, Path, description = "The token of the invitation link"), RefreshModeHeader),
    responses((status = 200, description = "Joined and signed in", body = AuthResponse)))]
pub async fn accept_invitation(
    State(s): State<AppState>,
    Path(token): Path<String>,
    MaybeSignedIn(ctx): MaybeSignedIn,
    transport: RefreshTransport,
    Json(req): Json<AcceptInvitation>,
) -> Result<Response> {
    let res = recovery::accept_invitation(&s.db, &s.keys, &s.hasher, &token, req, ctx).await?;
    Ok(transport.respond(StatusCode::OK, res, &s.keys))
}

/// Ask for a password reset link. The answer is the same whether or not the address has an
/// account. An address with no account that wrote to organisations by mail gets a link that
/// claims those tickets instead (`POST /auth/claim`).
#[utoipa::path(post, path = "/auth/password/forgot", tag = "auth", request_body = ForgotPassword,
    responses((status = 202, description = "If the address has an account (or wrote in by mail), a link is on its way")))]
pub async fn forgot_password(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<ForgotPassword>,
) -> Result<StatusCode> {
    if let Some(without_account) = recovery::forgot(&s.db, req, ip).await? {
        contacts::offer_claim(&s.db, &without_account).await?;
    }
    Ok(StatusCode::ACCEPTED)
}

/// Claim the tickets an address sent by mail, with the token of the mailed link: an account
/// with this password is made for the address, its contacts in every organisation are linked to
/// it, and the caller is signed in to the first.
#[utoipa::path(post, path = "/auth/claim", tag = "auth", request_body = ClaimContacts,
    params(RefreshModeHeader),
    responses((status = 201, description = "Account made and signed in", body = AuthResponse)))]
pub async fn claim_contacts(
    State(s): State<AppState>,
    transport: RefreshTransport,
    Json(req): Json<ClaimContacts>,
) -> Result<Response> {
    let res = contacts::claim(&s.db, &s.keys, &s.hasher, req).await?;
    Ok(transport.respond(StatusCode::CREATED, res, &s.keys))
}

/// Ask to link the tickets your address sent by mail (as a contact of organisations) to your
/// account: when there are any, a link goes to your address. The same answer either way.
#[utoipa::path(post, path = "/me/contact-links", tag = "auth", security(("session" = [])),
    responses((status = 202, description = "If your address wrote in by mail, a link is on its way")))]
pub async fn request_contact_link(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
) -> Result<StatusCode> {
    contacts::request_link(&s.db, &ctx).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Follow the mailed link (signed in as the account that asked): the address's contacts are
/// linked to your account, their tickets become yours.
#[utoipa::path(post, path = "/me/contact-links/confirm", tag = "auth", request_body = ConfirmLink,
    security(("session" = [])),
    responses((status = 200, description = "The organisations linked", body = LinkedContacts)))]
pub async fn confirm_contact_link(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    Json(req): Json<ConfirmLink>,
) -> Result<Json<LinkedContacts>> {
    Ok(Json(contacts::confirm_link(&s.db, &ctx, req).await?))
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
/// twice has one effect. The address is checked before the body is read (an unknown one is a
/// 404 at once); a body over 256 KiB is written to a temporary file as it arrives, up to
/// `DOCKET_MAX_EMAIL_BYTES`; one client address may deliver a few messages at a time (429
/// beyond).
#[utoipa::path(post, path = "/inbound/email/{token}", tag = "mail",
    params(("token" = String, Path, description = "The organisation's inbound token (a secret)")),
    request_body(content = String, content_type = "message/rfc822", description = "The raw message"),
    responses((status = 202, description = "Taken (see `outcome`)", body = IngestOutcome)))]
pub async fn inbound_email(
    State(s): State<AppState>,
    Path(token): Path<String>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> std::result::Result<(StatusCode, Json<IngestOutcome>), Problem> {
    if media_type(req.headers()).as_deref() != Some("message/rfc822") {
        return Err(Error::UnsupportedMediaType {
            detail: "send the raw message as message/rfc822".into(),
        }
        .into());
    }
    let org_id = settings::org_of_token(&s.db, &s.mailroom, &token).await?;
    let _slot = s.rate_limits.inbound_slot(ip)?;
    let limit = s.mailroom.max_email_bytes;
    let raw = match body::spool(req.into_body(), limit, || conversation::too_large(limit)).await? {
        body::Spooled::Memory(bytes) => RawMail::Bytes(bytes),
        body::Spooled::File(file) => RawMail::File(file),
    };
    let outcome = conversation::ingest(&s.db, &s.mailroom, org_id, Route::Http, raw).await?;
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

/// Addresses marked as bouncing (a delivery report came back for a mail Docket sent them),
/// newest first: Docket sends them nothing until the mark is cleared (admins).
#[utoipa::path(get, path = "/mail/bounces", tag = "mail", params(PageParams), security(("bearer" = [])),
    responses((status = 200, description = "A page of bouncing addresses", body = Page<Bounce>)))]
pub async fn list_bounces(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Bounce>>> {
    Ok(Json(bounces::list(&s.db, &ctx, page.validate()?).await?))
}

/// Clear an address's bounce mark: Docket mails it again (admins).
#[utoipa::path(delete, path = "/mail/bounces/{address}", tag = "mail",
    params(("address" = String, Path, description = "The bouncing address")), security(("bearer" = [])),
    responses((status = 204, description = "Cleared")))]
pub async fn clear_bounce(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(address): Path<String>,
) -> Result<StatusCode> {
    bounces::clear(&s.db, &ctx, &address).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who takes part in the ticket's mail conversation besides its requester, and the addresses
/// its mails copied in that were held back (agents and above).
#[utoipa::path(get, path = "/tickets/{id}/mail-participants", tag = "mail",
    params(("id" = String, Path, description = "Ticket id or key")), security(("bearer" = [])),
    responses((status = 200, description = "The conversation's participants", body = MailConversation)))]
pub async fn mail_participants(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
) -> Result<Json<MailConversation>> {
    Ok(Json(participants::get(&s.db, &ctx, &id).await?))
}

/// Add an address a mail of this ticket copied in (held because the mail was not
/// authenticated, or copied in too many) to its conversation.
#[utoipa::path(post, path = "/tickets/{id}/mail-participants", tag = "mail",
    params(("id" = String, Path, description = "Ticket id or key")), request_body = AddParticipant,
    security(("bearer" = [])),
    responses((status = 200, description = "The conversation's participants", body = MailConversation)))]
pub async fn add_mail_participant(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Json(req): Json<AddParticipant>,
) -> Result<Json<MailConversation>> {
    Ok(Json(participants::add(&s.db, &ctx, &id, req).await?))
}

/// Take someone out of the ticket's mail conversation: they hear no more of it by mail.
#[utoipa::path(delete, path = "/tickets/{id}/mail-participants/{address}", tag = "mail",
    params(("id" = String, Path, description = "Ticket id or key"), ("address" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The conversation's participants", body = MailConversation)))]
pub async fn remove_mail_participant(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path((id, address)): Path<(String, String)>,
) -> Result<Json<MailConversation>> {
    Ok(Json(
        participants::remove(&s.db, &ctx, &id, &address).await?,
    ))
}
