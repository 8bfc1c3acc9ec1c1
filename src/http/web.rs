//! The web app, built from `web/` by `build.rs` and embedded in the binary: every path that is
//! not the API, the docs or an operations endpoint is the app. Files under `/assets/` carry a
//! content hash in their names and are cached for good; any other path that is not a file gets
//! `index.html`, whose router shows the page (or its own "not found").

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "web/dist"]
struct Assets;

/// What the app may load and run: its own scripts only (no inline script, no `eval`), styles
/// from itself plus the inline style elements the component library writes, data only from this
/// origin, and never inside another site's frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; \
    connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; \
    frame-ancestors 'none'";

/// The API documentation page (Swagger UI, same origin as the app): its own scripts and
/// styles, the inline styles and data images it uses, and never inside another site's frame.
const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
    connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; \
    frame-ancestors 'none'";

/// The headers of every answer under `/docs`.
pub async fn docs_headers(mut res: Response) -> Response {
    guard_page(res.headers_mut(), DOCS_CONTENT_SECURITY_POLICY);
    res
}

/// What every page Docket serves says about itself: its content policy, no type sniffing, and
/// referrers only to its own origin.
fn guard_page(headers: &mut HeaderMap, policy: &'static str) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// Hashed build output: a changed file gets a new name, so a name's content never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Serves the app for `GET`/`HEAD`; anything else here, or an unknown API path, is not found.
pub async fn app(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let reserved = ["/api/", "/docs/"].iter().any(|p| path.starts_with(p)) || path == "/api";
    if reserved || !(method == Method::GET || method == Method::HEAD) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let name = path.trim_start_matches('/');
    if let Some(file) = Assets::get(name) {
        let cache = if name.starts_with("assets/") {
            IMMUTABLE
        } else {
            "public, max-age=3600"
        };
        return respond(file, cache, &headers);
    }
    // A missing hashed file is an old build's: answering it with the page would hide that.
    if name.starts_with("assets/") {
        return StatusCode::NOT_FOUND.into_response();
    }
    match Assets::get("index.html") {
        Some(page) => respond(page, "no-cache", &headers),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn respond(file: rust_embed::EmbeddedFile, cache: &'static str, request: &HeaderMap) -> Response {
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Body::from(file.data).into_response()
    };
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(file.metadata.mimetype()) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    guard_page(headers, CONTENT_SECURITY_POLICY);
    res
}
