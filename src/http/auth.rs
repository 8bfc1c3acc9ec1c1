//! Sign-up, login, tokens and the caller's own identity.
//!
//! Browsers keep the refresh token out of reach of scripts: a request that sends
//! `X-Docket-Refresh: cookie` gets it as an `HttpOnly`, `SameSite=Strict` cookie scoped to the
//! auth paths instead of in the body, and refresh and logout read it from there. The cookie is
//! only ever read on requests carrying that header, which a cross-site form or link cannot send
//! (see docs/adr/0012-web-app.md on CSRF).

use axum::{
    body::Bytes,
    extract::{FromRequestParts, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use cookie::{Cookie, SameSite};

use super::{
    AppState,
    extract::{Auth, ClientIp, Json, SignedIn, parse_json},
    problem::Problem,
};
use futures_util::future::BoxFuture;

use crate::{
    access::TenantCtx,
    error::{Error, FieldError, Result},
    identity::{
        self, AuthResponse, LoginOutcome, LoginRequest, LogoutRequest, MeResponse, PasswordChange,
        RefreshRequest, SignupRequest, SwitchRequest,
        signup::{self, ConfirmSignup, SignupOutcome, SignupPending, SignupPolicy},
        tokens::TokenKeys,
    },
    store::TenantTx,
    work::projects,
};

/// The header by which a browser asks for the refresh token as a cookie.
const REFRESH_MODE_HEADER: &str = "x-docket-refresh";
/// The refresh token's cookie.
const REFRESH_COOKIE: &str = "docket_refresh";
/// Where browsers send the cookie: the auth endpoints only.
const REFRESH_COOKIE_PATH: &str = "/api/v1/auth";

/// How the caller carries its refresh token: in bodies (API clients) or in a cookie (browsers).
pub enum RefreshTransport {
    Body,
    Cookie {
        /// The cookie the browser sent, if any.
        presented: Option<String>,
        /// `Secure` when the public address is `https://` (`AppState::secure_cookies`).
        secure: bool,
    },
}

impl FromRequestParts<AppState> for RefreshTransport {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Some(mode) = parts.headers.get(REFRESH_MODE_HEADER) else {
            return Ok(RefreshTransport::Body);
        };
        if mode.as_bytes() != b"cookie" {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_refresh_mode",
                "X-Docket-Refresh must be `cookie` when sent",
            ));
        }
        Ok(RefreshTransport::Cookie {
            presented: refresh_cookie(&parts.headers),
            secure: state.secure_cookies,
        })
    }
}

fn refresh_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(std::result::Result::ok)
        .find(|c| c.name() == REFRESH_COOKIE)
        .map(|c| c.value().to_owned())
}

impl RefreshTransport {
    /// The auth response as this caller wants it: in cookie mode the refresh token moves from
    /// the body into the cookie.
    /// The cookie lives as long as the session's refresh chain (`keys.refresh_ttl`).
    pub(super) fn respond(
        &self,
        status: StatusCode,
        mut res: AuthResponse,
        keys: &TokenKeys,
    ) -> Response {
        match self {
            RefreshTransport::Body => (status, Json(res)).into_response(),
            RefreshTransport::Cookie { secure, .. } => {
                let token = res.refresh_token.take().unwrap_or_default();
                let cookie = session_cookie(token, *secure, keys.refresh_ttl.as_secs());
                (status, [set_cookie(cookie)], Json(res)).into_response()
            }
        }
    }

    /// A response that also removes the cookie, in cookie mode.
    fn clearing(&self, res: impl IntoResponse) -> Response {
        let mut res = res.into_response();
        if let RefreshTransport::Cookie { secure, .. } = self {
            let (name, value) = set_cookie(session_cookie(String::new(), *secure, 0));
            res.headers_mut().append(name, value);
        }
        res
    }
}

pub(super) fn session_cookie(token: String, secure: bool, max_age_secs: u64) -> Cookie<'static> {
    Cookie::build((REFRESH_COOKIE, token))
        .path(REFRESH_COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age_secs).unwrap_or(i64::MAX),
        ))
        .build()
}

pub(super) fn set_cookie(cookie: Cookie<'static>) -> (header::HeaderName, HeaderValue) {
    let value =
        HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""));
    (header::SET_COOKIE, value)
}

/// An optional JSON body: none, or JSON `null`, is `T::default()`.
pub(super) fn optional_body<T: Default + serde::de::DeserializeOwned>(
    body: &Bytes,
) -> Result<T, Problem> {
    let text = body.trim_ascii();
    if text.is_empty() || text == b"null" {
        Ok(T::default())
    } else {
        parse_json(body)
    }
}

/// A new organisation starts with a first project, named and keyed from the organisation.
fn first_project<'a>(
    tx: &'a TenantTx,
    ctx: &'a TenantCtx,
    organization_name: &'a str,
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        projects::create_first(tx, ctx, organization_name).await?;
        Ok(())
    })
}

/// Create an organisation and its owner.
///
/// Where the server sends mail, the address is proven first: the answer is 202 (a link is on
/// its way) whether or not the address already has an account, and the mailed link finishes the
/// sign-up (`POST /auth/signup/confirm`). An existing account that gave its current password
/// gets a link that creates the organisation for it. Without mail the sign-up is done at once
/// (201), and an existing account must give its current password.
#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = SignupRequest,
    params(RefreshModeHeader),
    responses(
        (status = 201, description = "Organisation created; the caller is its owner (the server sends no mail)", body = AuthResponse),
        (status = 202, description = "A confirmation link was mailed to the address", body = SignupPending)))]
pub async fn signup(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    transport: RefreshTransport,
    Json(req): Json<SignupRequest>,
) -> Result<Response> {
    let policy = SignupPolicy {
        per_hour: s.rate_limits.signups_per_hour,
        confirm_by_mail: s.confirm_signups,
        setup: first_project,
    };
    let outcome = signup::signup(&s.db, &s.keys, &s.hasher, req, ip, policy).await?;
    Ok(match outcome {
        SignupOutcome::SignedUp(res) => transport.respond(StatusCode::CREATED, *res, &s.keys),
        SignupOutcome::Pending(pending) => (StatusCode::ACCEPTED, Json(pending)).into_response(),
    })
}

/// Finish a sign-up with the token of its mailed link: the organisation is created and the
/// caller signed in as its owner. A link works once, for a day.
#[utoipa::path(post, path = "/auth/signup/confirm", tag = "auth", request_body = ConfirmSignup,
    params(RefreshModeHeader),
    responses((status = 201, description = "Organisation created; the caller is its owner", body = AuthResponse)))]
pub async fn confirm_signup(
    State(s): State<AppState>,
    transport: RefreshTransport,
    Json(req): Json<ConfirmSignup>,
) -> Result<Response> {
    let res = signup::confirm(&s.db, &s.keys, req, first_project).await?;
    Ok(transport.respond(StatusCode::CREATED, res, &s.keys))
}

/// Sign in with email and password.
///
/// An account with a second factor gets `{mfa_required, mfa_token, methods}` and no tokens
/// (finish with `POST /auth/login/mfa` or a passkey); staff of an organisation that requires a
/// second factor, without one, get `{mfa_setup_required, mfa_token}` (enrol with the token as
/// the bearer, then finish). An organisation that enforces single sign-on refuses passwords to
/// all but its owners (403 `sso_required`).
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    params(RefreshModeHeader),
    responses((status = 200, description = "Signed in, or a second step to take", body = LoginOutcome)))]
pub async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    transport: RefreshTransport,
    Json(req): Json<LoginRequest>,
) -> Result<Response> {
    Ok(
        match identity::login(&s.db, &s.keys, &s.hasher, req, ip).await? {
            LoginOutcome::SignedIn(res) => transport.respond(StatusCode::OK, *res, &s.keys),
            LoginOutcome::SecondStep(step) => (StatusCode::OK, Json(step)).into_response(),
        },
    )
}

/// Exchange a refresh token for new tokens (the old refresh token stops working).
///
/// In cookie mode the token comes from the `docket_refresh` cookie and the body may be empty.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Required unless in cookie mode"),
    params(RefreshModeHeader),
    responses((status = 200, description = "New tokens", body = AuthResponse)))]
pub async fn refresh(
    State(s): State<AppState>,
    transport: RefreshTransport,
    body: Bytes,
) -> Result<Response, Problem> {
    let token = match &transport {
        RefreshTransport::Cookie { presented, .. } => presented.clone(),
        RefreshTransport::Body => {
            let req: Option<RefreshRequest> = optional_body(&body)?;
            let req = req.ok_or_else(|| {
                Problem::from(Error::Validation(vec![FieldError::new(
                    "refresh_token",
                    "required",
                )]))
            })?;
            Some(req.refresh_token)
        }
    };
    let outcome = match token {
        Some(refresh_token) => {
            identity::refresh(&s.db, &s.keys, RefreshRequest { refresh_token }).await
        }
        None => Err(Error::invalid_token("no refresh token was presented")),
    };
    match outcome {
        Ok(res) => Ok(transport.respond(StatusCode::OK, res, &s.keys)),
        // A cookie that no longer works is dropped, so the browser stops sending it.
        Err(err) => Ok(transport.clearing(Problem::from(err))),
    }
}

/// End the current session (and the one of `refresh_token`, or of the refresh cookie in cookie
/// mode, when given).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body(content = Option<LogoutRequest>),
    params(RefreshModeHeader),
    security(("session" = [])), responses((status = 204, description = "Signed out")))]
pub async fn logout(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    transport: RefreshTransport,
    body: Bytes,
) -> Result<Response, Problem> {
    let mut req: LogoutRequest = optional_body(&body)?;
    if let RefreshTransport::Cookie {
        presented: Some(token),
        ..
    } = &transport
    {
        req.refresh_token.get_or_insert_with(|| token.clone());
    }
    identity::logout(&s.db, &ctx, req).await?;
    Ok(transport.clearing(StatusCode::NO_CONTENT))
}

/// Change the caller's password; every other session of the account ends.
///
/// The current password is checked like a sign-in (a wrong one counts against the account and
/// is a 422 on `current_password`).
#[utoipa::path(post, path = "/auth/password/change", tag = "auth", request_body = PasswordChange,
    security(("session" = [])), responses((status = 204, description = "Changed; other sessions ended")))]
pub async fn change_password(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    ClientIp(ip): ClientIp,
    Json(req): Json<PasswordChange>,
) -> Result<StatusCode> {
    identity::change_password(&s.db, &s.hasher, &ctx, req, ip).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End every session of the caller's account, this one included, in every organisation.
#[utoipa::path(post, path = "/auth/logout-all", tag = "auth", params(RefreshModeHeader),
    security(("session" = [])), responses((status = 204, description = "Signed out everywhere")))]
pub async fn logout_all(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    transport: RefreshTransport,
) -> Result<Response> {
    identity::logout_everywhere(&s.db, &ctx).await?;
    Ok(transport.clearing(StatusCode::NO_CONTENT))
}

/// The caller's live sessions, in every organisation they belong to (newest first).
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", security(("session" = [])),
    responses((status = 200, description = "Live sessions", body = [identity::SessionSummary])))]
pub async fn list_sessions(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
) -> Result<Json<Vec<identity::SessionSummary>>> {
    Ok(Json(identity::sessions(&s.db, &ctx).await?))
}

/// End one of the caller's sessions (another device's, say).
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth",
    params(("id" = uuid::Uuid, Path)),
    security(("session" = [])), responses((status = 204, description = "Ended")))]
pub async fn end_session(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    axum::extract::Path(id): axum::extract::Path<uuid::Uuid>,
) -> Result<StatusCode> {
    identity::end_session(&s.db, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller, their current organisation and role, and the organisations they can switch to.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = MeResponse)))]
pub async fn me(State(s): State<AppState>, Auth(ctx): Auth) -> Result<Json<MeResponse>> {
    Ok(Json(identity::me(&s.db, &ctx).await?))
}

/// Get tokens for another organisation of the same person.
#[utoipa::path(post, path = "/auth/switch", tag = "auth", request_body = SwitchRequest, security(("session" = [])),
    params(RefreshModeHeader),
    responses((status = 200, description = "Tokens for the other organisation", body = AuthResponse)))]
pub async fn switch(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    transport: RefreshTransport,
    Json(req): Json<SwitchRequest>,
) -> Result<Response> {
    let res = identity::switch(&s.db, &s.keys, &ctx, req).await?;
    Ok(transport.respond(StatusCode::OK, res, &s.keys))
}

/// Asks for the refresh token as a cookie (browsers) instead of in the body.
/// (`params(RefreshModeHeader)`); [`RefreshTransport`] reads it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code, reason = "declares the header in the OpenAPI document only")]
pub struct RefreshModeHeader {
    /// `cookie`: the refresh token travels in the `docket_refresh` cookie, not in bodies
    #[param(rename = "X-Docket-Refresh", value_type = String, required = false, pattern = "^cookie$")]
    pub x_docket_refresh: Option<String>,
}
