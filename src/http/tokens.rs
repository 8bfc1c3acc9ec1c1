//! API tokens: create (shown once), list, revoke.

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
    extract::{Json, Path, SignedIn},
};
use crate::{
    error::Result,
    identity::api_tokens::{self, ApiToken, NewApiToken, NewApiTokenResponse},
};

#[derive(Serialize, ToSchema)]
pub struct ApiTokenList {
    pub items: Vec<ApiToken>,
}

/// Create an API token for yourself (signed in: no API token reaches the API tokens). The
/// `dkt_…` token is in this answer only; send it as `Authorization: Bearer <token>`.
#[utoipa::path(post, path = "/api-tokens", tag = "api-tokens", request_body = NewApiToken,
    security(("session" = [])),
    responses((status = 201, description = "Created: the token, shown once", body = NewApiTokenResponse)))]
pub async fn create_api_token(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    Json(req): Json<NewApiToken>,
) -> Result<Response> {
    let created = api_tokens::create(&s.db, &ctx, req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// Your API tokens (admins: everyone's in the organisation), newest first. Tokens themselves
/// are never shown again, only their prefix.
#[utoipa::path(get, path = "/api-tokens", tag = "api-tokens", security(("session" = [])),
    responses((status = 200, description = "The tokens", body = ApiTokenList)))]
pub async fn list_api_tokens(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
) -> Result<Json<ApiTokenList>> {
    let items = api_tokens::list(&s.db, &ctx).await?;
    Ok(Json(ApiTokenList { items }))
}

/// Revoke an API token (yours, or anyone's for admins): it stops working at once.
#[utoipa::path(delete, path = "/api-tokens/{id}", tag = "api-tokens", params(("id" = Uuid, Path)),
    security(("session" = [])), responses((status = 204, description = "Revoked")))]
pub async fn revoke_api_token(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    api_tokens::revoke(&s.db, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
