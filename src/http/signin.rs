//! Sign-in that organisations require: second factors (an authenticator app, passkeys,
//! recovery codes), the sign-in step that asks for one, and single sign-on.

use axum::{
    extract::{FromRequestParts, Path, Query, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use cookie::{Cookie, SameSite};
use uuid::Uuid;

use super::{
    AppState,
    auth::{RefreshModeHeader, RefreshTransport, session_cookie, set_cookie},
    extract::{ClientIp, Json, SignedIn, bearer_token},
    problem::Problem,
};
use crate::{
    error::Result,
    identity::{
        self, AuthResponse,
        mfa::{
            self, Enrollee, MfaLogin, Proof,
            passkeys::{
                self, CeremonyStart, LoginFinish, LoginStart, PasskeyRegistered, PasskeySummary,
                RegisterFinish,
            },
            recovery_codes,
            totp::{self, RecoveryCodes, TotpCode, TotpEnrolment},
        },
        sso::{self, Callback, SsoSettings, SsoSettingsInput, SsoTest},
    },
};

/// Who enrols a second factor: the signed-in caller, or a person whose sign-in stopped at a
/// set-up step (its `mfa_token` as the bearer).
pub struct Enrolling(Enrollee);

impl FromRequestParts<AppState> for Enrolling {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        if let Some(who) = bearer_token(&parts.headers)
            .and_then(|token| Enrollee::from_setup_token(&state.keys, token))
        {
            return Ok(Enrolling(who));
        }
        let SignedIn(ctx) = SignedIn::from_request_parts(parts, state).await?;
        Ok(Enrolling(Enrollee::signed_in(&state.db, ctx).await?))
    }
}

/// Finish a sign-in that stopped at its second step, with a code of the authenticator app or a
/// recovery code; or, after a set-up step, once a second factor is enrolled.
///
/// Wrong codes count against the account like wrong passwords (429 with `Retry-After` when
/// locked); each code works once.
#[utoipa::path(post, path = "/auth/login/mfa", tag = "auth", request_body = MfaLogin,
    params(RefreshModeHeader),
    responses((status = 200, description = "Signed in", body = AuthResponse)))]
pub async fn login_mfa(
    State(s): State<AppState>,
    transport: RefreshTransport,
    Json(req): Json<MfaLogin>,
) -> Result<Response> {
    let res = mfa::login(&s.db, &s.keys, &s.factors, req).await?;
    Ok(transport.respond(StatusCode::OK, res, &s.keys))
}

/// Start enrolling an authenticator app: its secret and `otpauth://` URI (show it as a QR
/// code). It is active once `POST /auth/mfa/totp/confirm` gives a code of it.
#[utoipa::path(post, path = "/auth/mfa/totp", tag = "auth",
    security(("session" = [])),
    responses((status = 200, description = "The secret to put in the app", body = TotpEnrolment)))]
pub async fn enrol_totp(
    State(s): State<AppState>,
    Enrolling(who): Enrolling,
) -> Result<Json<TotpEnrolment>> {
    Ok(Json(totp::enrol(&s.db, &s.factors, &who).await?))
}

/// Confirm the authenticator app with its current code; the answer holds 10 recovery codes,
/// shown this once.
#[utoipa::path(post, path = "/auth/mfa/totp/confirm", tag = "auth", request_body = TotpCode,
    security(("session" = [])),
    responses((status = 200, description = "Enabled", body = RecoveryCodes)))]
pub async fn confirm_totp(
    State(s): State<AppState>,
    Enrolling(who): Enrolling,
    Json(req): Json<TotpCode>,
) -> Result<Json<RecoveryCodes>> {
    Ok(Json(totp::confirm(&s.db, &s.factors, &who, req).await?))
}

/// Remove the authenticator app, given a current code (or a recovery code, or the password).
#[utoipa::path(delete, path = "/auth/mfa/totp", tag = "auth", request_body = Proof,
    security(("session" = [])),
    responses((status = 204, description = "Removed")))]
pub async fn disable_totp(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    ClientIp(ip): ClientIp,
    Json(proof): Json<Proof>,
) -> Result<StatusCode> {
    identity::confirm(&s.db, &ctx).await?;
    totp::disable(&s.db, &s.hasher, &s.factors, &ctx, proof, ip).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new set of 10 recovery codes (the old ones stop working), given a current code or the
/// password.
#[utoipa::path(post, path = "/auth/mfa/recovery-codes", tag = "auth", request_body = Proof,
    security(("session" = [])),
    responses((status = 200, description = "New codes, shown this once", body = RecoveryCodes)))]
pub async fn regenerate_recovery_codes(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    ClientIp(ip): ClientIp,
    Json(proof): Json<Proof>,
) -> Result<Json<RecoveryCodes>> {
    identity::confirm(&s.db, &ctx).await?;
    Ok(Json(
        recovery_codes::regenerate(&s.db, &s.hasher, &s.factors, &ctx, proof, ip).await?,
    ))
}

/// The caller's passkeys.
#[utoipa::path(get, path = "/auth/passkeys", tag = "auth",
    security(("session" = [])),
    responses((status = 200, description = "Passkeys", body = [PasskeySummary])))]
pub async fn list_passkeys(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
) -> Result<Json<Vec<PasskeySummary>>> {
    identity::confirm(&s.db, &ctx).await?;
    Ok(Json(passkeys::list(&s.db, &ctx).await?))
}

/// Remove one of the caller's passkeys.
#[utoipa::path(delete, path = "/auth/passkeys/{id}", tag = "auth",
    params(("id" = Uuid, Path)),
    security(("session" = [])),
    responses((status = 204, description = "Removed")))]
pub async fn remove_passkey(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    identity::confirm(&s.db, &ctx).await?;
    passkeys::remove(&s.db, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start registering a passkey: pass `options.publicKey` to `navigator.credentials.create`.
#[utoipa::path(post, path = "/auth/passkeys/register/start", tag = "auth",
    security(("session" = [])),
    responses((status = 200, description = "The browser's options", body = CeremonyStart)))]
pub async fn passkey_register_start(
    State(s): State<AppState>,
    Enrolling(who): Enrolling,
) -> Result<Json<CeremonyStart>> {
    Ok(Json(
        passkeys::register_start(&s.db, &s.factors, &who).await?,
    ))
}

/// Finish registering a passkey with the browser's answer.
#[utoipa::path(post, path = "/auth/passkeys/register/finish", tag = "auth",
    request_body = RegisterFinish,
    security(("session" = [])),
    responses((status = 201, description = "Registered", body = PasskeyRegistered)))]
pub async fn passkey_register_finish(
    State(s): State<AppState>,
    Enrolling(who): Enrolling,
    Json(req): Json<RegisterFinish>,
) -> Result<(StatusCode, Json<PasskeyRegistered>)> {
    let done = passkeys::register_finish(&s.db, &s.factors, &who, req).await?;
    Ok((StatusCode::CREATED, Json(done)))
}

/// Start signing in with a passkey: alone (any passkey of this site), or as the second step of
/// a password sign-in (`mfa_token`).
#[utoipa::path(post, path = "/auth/passkeys/login/start", tag = "auth",
    request_body(content = Option<LoginStart>),
    responses((status = 200, description = "The browser's options", body = CeremonyStart)))]
pub async fn passkey_login_start(
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<CeremonyStart>, Problem> {
    let req: LoginStart = super::auth::optional_body(&body)?;
    Ok(Json(
        passkeys::login_start(&s.db, &s.keys, &s.factors, req).await?,
    ))
}

/// Finish signing in with a passkey.
#[utoipa::path(post, path = "/auth/passkeys/login/finish", tag = "auth",
    request_body = LoginFinish, params(RefreshModeHeader),
    responses((status = 200, description = "Signed in", body = AuthResponse)))]
pub async fn passkey_login_finish(
    State(s): State<AppState>,
    transport: RefreshTransport,
    Json(req): Json<LoginFinish>,
) -> Result<Response> {
    let res = passkeys::login_finish(&s.db, &s.keys, &s.factors, req).await?;
    Ok(transport.respond(StatusCode::OK, res, &s.keys))
}

/// The organisation's single sign-on settings (never the client secret). Owners and admins.
#[utoipa::path(get, path = "/org/sso", tag = "organization",
    security(("bearer" = [])),
    responses((status = 200, description = "Settings", body = SsoSettings)))]
pub async fn get_sso(
    State(s): State<AppState>,
    super::extract::Auth(ctx): super::extract::Auth,
) -> Result<Json<SsoSettings>> {
    Ok(Json(sso::get(&s.db, &s.sso, &ctx).await?))
}

/// Set the organisation's single sign-on (OIDC). The issuer is reached through the same guard
/// as webhooks: addresses inside private networks are refused unless the operator allows them.
#[utoipa::path(put, path = "/org/sso", tag = "organization", request_body = SsoSettingsInput,
    security(("bearer" = [])),
    responses((status = 200, description = "Saved", body = SsoSettings)))]
pub async fn put_sso(
    State(s): State<AppState>,
    super::extract::Auth(ctx): super::extract::Auth,
    Json(input): Json<SsoSettingsInput>,
) -> Result<Json<SsoSettings>> {
    Ok(Json(sso::put(&s.db, &s.sso, &ctx, input).await?))
}

/// Turn single sign-on off.
#[utoipa::path(delete, path = "/org/sso", tag = "organization",
    security(("bearer" = [])),
    responses((status = 204, description = "Removed")))]
pub async fn delete_sso(
    State(s): State<AppState>,
    super::extract::Auth(ctx): super::extract::Auth,
) -> Result<StatusCode> {
    sso::delete(&s.db, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Test the connection: fetch the provider's discovery document and keys now.
#[utoipa::path(post, path = "/org/sso/test", tag = "organization",
    security(("bearer" = [])),
    responses((status = 200, description = "The provider answered", body = SsoTest)))]
pub async fn test_sso(
    State(s): State<AppState>,
    super::extract::Auth(ctx): super::extract::Auth,
) -> Result<Json<SsoTest>> {
    Ok(Json(sso::test(&s.db, &s.sso, &ctx).await?))
}

/// The flow's cookie: sent back on the provider's redirect (a top-level navigation from
/// another site, hence `Lax`), to the callback only.
const FLOW_COOKIE: &str = "docket_sso";
const FLOW_COOKIE_PATH: &str = "/api/v1/auth/sso";

fn flow_cookie(value: String, secure: bool, max_age: i64) -> Cookie<'static> {
    Cookie::build((FLOW_COOKIE, value))
        .path(FLOW_COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build()
}

/// Back to the sign-in page, saying why single sign-on failed (`?sso_error=`).
fn failed(failure: sso::SsoFailure, secure: bool) -> Response {
    tracing::info!(code = failure.code, detail = %failure.detail, "single sign-on refused");
    let mut res = Redirect::to(&format!("/signin?sso_error={}", failure.code)).into_response();
    let (name, value) = set_cookie(flow_cookie(String::new(), secure, 0));
    res.headers_mut().append(name, value);
    res
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    /// A path of this site to open once signed in (default `/`).
    pub next: Option<String>,
}

/// Start signing in through the organisation's identity provider (in a browser): a redirect to
/// the provider. A failure redirects to `/signin?sso_error=<code>`.
#[utoipa::path(get, path = "/auth/sso/{org_slug}/start", tag = "auth",
    params(("org_slug" = String, Path), StartQuery),
    responses((status = 303, description = "To the provider, or back to /signin?sso_error=…")))]
pub async fn sso_start(
    State(s): State<AppState>,
    Path(slug): Path<String>,
    Query(query): Query<StartQuery>,
) -> Response {
    match sso::start(&s.db, &s.sso, &slug, query.next.as_deref()).await {
        Ok(started) => {
            let mut res = Redirect::to(&started.redirect).into_response();
            let (name, value) = set_cookie(flow_cookie(started.cookie, s.secure_cookies, 600));
            res.headers_mut().append(name, value);
            res
        }
        Err(failure) => failed(failure, s.secure_cookies),
    }
}

/// Where the identity provider sends the browser back: signs in (the refresh cookie is set, as
/// the web app's sign-in sets it) and redirects to `next`; a failure redirects to
/// `/signin?sso_error=<code>`.
#[utoipa::path(get, path = "/auth/sso/callback", tag = "auth",
    params(Callback),
    responses((status = 303, description = "Signed in, to `next`; or back to /signin?sso_error=…")))]
pub async fn sso_callback(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(back): Query<Callback>,
) -> Response {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(std::result::Result::ok)
        .find(|c| c.name() == FLOW_COOKIE)
        .map(|c| c.value().to_owned());
    match sso::finish(&s.db, &s.keys, &s.sso, cookie.as_deref(), back).await {
        Ok(done) => {
            let token = done.session.refresh_token.unwrap_or_default();
            let mut res = Redirect::to(&done.next).into_response();
            let session = session_cookie(token, s.secure_cookies, s.keys.refresh_ttl.as_secs());
            for c in [session, flow_cookie(String::new(), s.secure_cookies, 0)] {
                let (name, value) = set_cookie(c);
                res.headers_mut().append(name, value);
            }
            res
        }
        Err(failure) => failed(failure, s.secure_cookies),
    }
}
