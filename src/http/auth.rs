//! Sign-up, login, tokens and the caller's own identity.

use axum::{body::Bytes, extract::State, http::StatusCode, response::IntoResponse};

use super::{
    AppState,
    extract::{Auth, ClientIp, Json, parse_json},
    problem::Problem,
};
use crate::{
    error::Result,
    identity::{
        self, AuthResponse, LoginRequest, LogoutRequest, MeResponse, RefreshRequest, SignupRequest,
        SwitchRequest,
    },
};

/// Create an organisation and its owner.
///
/// An existing account signs up a further organisation with its current password.
#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = SignupRequest,
    responses((status = 201, description = "Organisation created; the caller is its owner", body = AuthResponse)))]
pub async fn signup(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<SignupRequest>,
) -> Result<impl IntoResponse> {
    let res = identity::signup(&s.db, &s.keys, &s.hasher, req, ip).await?;
    Ok((StatusCode::CREATED, Json(res)))
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "Signed in", body = AuthResponse)))]
pub async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<LoginRequest>,
) -> Result<Json<AuthResponse>> {
    Ok(Json(
        identity::login(&s.db, &s.keys, &s.hasher, req, ip).await?,
    ))
}

/// Exchange a refresh token for new tokens (the old refresh token stops working).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, description = "New tokens", body = AuthResponse)))]
pub async fn refresh(
    State(s): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> Result<Json<AuthResponse>> {
    Ok(Json(identity::refresh(&s.db, &s.keys, req).await?))
}

/// End the current session (and the one of `refresh_token`, when given).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body(content = Option<LogoutRequest>),
    security(("bearer" = [])), responses((status = 204, description = "Signed out")))]
pub async fn logout(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    // The body is optional: none, or JSON `null`, is an empty request.
    let text = body.trim_ascii();
    let req = if text.is_empty() || text == b"null" {
        LogoutRequest::default()
    } else {
        parse_json(&body)?
    };
    identity::logout(&s.db, &ctx, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller, their current organisation and role, and the organisations they can switch to.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = MeResponse)))]
pub async fn me(State(s): State<AppState>, Auth(ctx): Auth) -> Result<Json<MeResponse>> {
    Ok(Json(identity::me(&s.db, &ctx).await?))
}

/// Get tokens for another organisation of the same person.
#[utoipa::path(post, path = "/auth/switch", tag = "auth", request_body = SwitchRequest, security(("bearer" = [])),
    responses((status = 200, description = "Tokens for the other organisation", body = AuthResponse)))]
pub async fn switch(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(req): Json<SwitchRequest>,
) -> Result<Json<AuthResponse>> {
    Ok(Json(identity::switch(&s.db, &s.keys, &ctx, req).await?))
}
