//! Data exports: ask for one, see how it goes, download it.

use axum::{
    body::Body,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use uuid::Uuid;

use super::{
    AppState,
    extract::{Json, Path, SignedIn},
};
use crate::{
    error::Result,
    exports::{self, Export, NewExport},
};

/// Ask for an export: `organization` (owners and admins: everything it holds, no secrets) or
/// `me` (everyone: their own data). Built in the background; the caller is mailed when it is
/// ready. One at a time per person.
#[utoipa::path(post, path = "/exports", tag = "exports", request_body = NewExport,
    security(("session" = [])),
    responses((status = 202, description = "Asked for; being built", body = Export)))]
pub async fn create_export(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    Json(req): Json<NewExport>,
) -> Result<(StatusCode, Json<Export>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(exports::request(&s.db, &ctx, req).await?),
    ))
}

/// The caller's exports, newest first.
#[utoipa::path(get, path = "/exports", tag = "exports", security(("session" = [])),
    responses((status = 200, description = "The caller's exports", body = Vec<Export>)))]
pub async fn list_exports(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
) -> Result<Json<Vec<Export>>> {
    Ok(Json(exports::list(&s.db, &ctx).await?))
}

/// One of the caller's exports.
#[utoipa::path(get, path = "/exports/{id}", tag = "exports", params(("id" = Uuid, Path)),
    security(("session" = [])),
    responses((status = 200, description = "The export", body = Export)))]
pub async fn get_export(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    Path(id): Path<Uuid>,
) -> Result<Json<Export>> {
    Ok(Json(exports::get(&s.db, &ctx, id).await?))
}

/// The export's zip: `manifest.json`, a JSON Lines file per kind of record, `files/`.
#[utoipa::path(get, path = "/exports/{id}/download", tag = "exports",
    params(("id" = Uuid, Path)), security(("session" = [])),
    responses((status = 200, description = "The zip", content_type = "application/zip")))]
pub async fn download_export(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let file = exports::download(&s.db, &s.files, &ctx, id).await?;
    let size = file.size;
    let mut res = Response::new(Body::from_stream(file.body));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename=\"docket-export-{id}.zip\""))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}
