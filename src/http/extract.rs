//! Request extractors that answer bad input with precise problems instead of axum's plain-text
//! rejections, and the bearer-token authentication extractor.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes,
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request},
    http::{Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

use super::{AppState, problem::Problem};
use crate::{
    access::{self, Action, Scope, SessionProof, TenantCtx},
    error::FieldError,
    identity,
};

/// A JSON body. Wrong media type → 415, unreadable or oversized → 400/413, not JSON → 400,
/// JSON of the wrong shape → 422 naming the field.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let bytes = json_bytes(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// The raw bytes of a JSON body, after checking its media type and size.
pub async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Problem> {
    if !is_json(req.headers()) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ));
    }
    Bytes::from_request(req, state).await.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than allowed",
            )
        } else {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                "the request body could not be read",
            )
        }
    })
}

fn is_json(headers: &header::HeaderMap) -> bool {
    media_type(headers).is_some_and(|essence| {
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
    })
}

/// The body's media type without its parameters, lower-cased (`multipart/form-data` of
/// `multipart/form-data; boundary=…`).
pub fn media_type(headers: &header::HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

/// The client's address, for throttling and rate limits (unspecified when the connection did
/// not record it).
pub fn client_ip(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {err}"),
        )
    })?;
    // Every body is an object; serde would otherwise read a struct from an array too.
    if !value.is_object() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "body: must be a JSON object",
        )
        .with_errors(vec![FieldError::new("body", "must be a JSON object")]));
    }
    if let Some(field) = nul_in(&value, "") {
        let message = "must not contain the NUL character";
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("{field}: {message}"),
        )
        .with_errors(vec![FieldError::new(field, message)]));
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = err.inner().to_string();
        // "missing field `x`" is reported at the parent: name the field itself.
        let field = match message.split('`').nth(1) {
            Some(name) if message.starts_with("missing field") => {
                if path == "." {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                }
            }
            _ if path == "." => "body".to_owned(),
            _ => path,
        };
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("{field}: {message}"),
        )
        .with_errors(vec![FieldError::new(field, message)])
    })
}

/// The path (`a.b[2]`) of the first string or key in `value` holding a NUL character. No
/// database column stores one (PostgreSQL refuses it), so no input may carry it.
fn nul_in(value: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(if at.is_empty() {
            "body".into()
        } else {
            at.into()
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in(v, &format!("{at}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "\\0")))
            } else {
                nul_in(v, &join(k))
            }
        }),
        _ => None,
    }
}

/// A JSON answer's first buffer. axum's starts at 128 bytes and writes through `BufMut`: a
/// page of 50 tickets (tens of kB) grew it ten times, copying it each time, with a capacity
/// check per token written.
const ANSWER_BUFFER: usize = 16 * 1024;

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(ANSWER_BUFFER);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(err) => crate::error::Error::internal(err).into_response(),
        }
    }
}

/// Query parameters; what cannot be read is a 400 naming the problem.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs = form_urlencoded::parse(query.as_bytes());
        let de = serde_urlencoded::Deserializer::new(pairs);
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|err| {
                let field = err.path().to_string();
                let message = err.inner().to_string();
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("{field}: {message}"),
                )
                .with_errors(vec![FieldError::new(field, message)])
            })
    }
}

/// A path parameter; an id that cannot exist is simply not found.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|_| {
                Problem::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no resource has this id",
                )
            })
    }
}

/// The token of `Authorization: Bearer <token>`, if the request carries one. The scheme is
/// case-insensitive (RFC 9110 §11.1).
pub fn bearer_token(headers: &header::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The authenticated caller: a verified access token with a live session and membership.
pub struct Auth(pub TenantCtx);

impl FromRequestParts<AppState> for Auth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let ctx = caller(parts, state).await?;
        // A read-only API token only reads, whatever the handler would ask of the matrix.
        let safe = matches!(parts.method, Method::GET | Method::HEAD);
        if ctx.scope == Some(Scope::Read) && !safe {
            return Err(access::insufficient_scope(Scope::Write).into());
        }
        Ok(Auth(ctx))
    }
}

/// The caller a request's bearer token names (401 without a valid one).
async fn caller(parts: &mut Parts, state: &AppState) -> Result<TenantCtx, Problem> {
    let Some(token) = bearer_token(&parts.headers) else {
        return Err(Problem::unauthorized(
            "missing_token",
            "this endpoint needs `Authorization: Bearer <access token>`",
            false,
        ));
    };
    let ctx = identity::authenticate(&state.db, &state.keys, token).await?;
    if ctx.scope.is_some() {
        // Found: from now on its requests count as this API token (see `ratelimit`).
        state.rate_limits.api_token_verified(token, ctx.org_id);
    }
    if let (Some(proof), Some(slot)) = (ctx.proof(), parts.extensions.get::<ProofSlot>()) {
        slot.hold(proof.clone());
    }
    Ok(ctx)
}

/// Where the authentication extractor leaves a signed token's claim for
/// [`answer_only_confirmed`] to look at once the handler has answered.
#[derive(Clone, Default)]
struct ProofSlot(Arc<Mutex<Vec<SessionProof>>>);

impl ProofSlot {
    fn hold(&self, proof: SessionProof) {
        if let Ok(mut held) = self.0.lock() {
            held.push(proof);
        }
    }

    fn all_confirmed(&self) -> bool {
        self.0
            .lock()
            .map(|held| held.iter().all(SessionProof::confirmed))
            .unwrap_or(false)
    }
}

/// A signed access token is confirmed (live session, current role) inside the transactions the
/// handler opens, not before it runs (ADR 0021). A handler that answered success without
/// opening one would have served a token whose session may have ended: its answer is replaced
/// by a 401, and the omission logged as the bug it is (the HTTP suite runs every operation
/// through this check).
pub async fn answer_only_confirmed(mut req: Request, next: axum::middleware::Next) -> Response {
    let slot = ProofSlot::default();
    req.extensions_mut().insert(slot.clone());
    let res = next.run(req).await;
    let success = res.status().is_success() || res.status().is_redirection();
    if success && !slot.all_confirmed() {
        tracing::error!(
            status = res.status().as_u16(),
            "a handler answered without confirming the caller's session"
        );
        return Problem::unauthorized(
            "invalid_token",
            "the access token could not be confirmed; sign in again",
            true,
        )
        .into_response();
    }
    res
}

/// A person signed in, acting on their own account or sessions (`Action::AccountManage`). The
/// matrix turns every API token away here, before the body is read, so no account or session
/// endpoint can be reached through one, whatever else its handler does.
pub struct SignedIn(pub TenantCtx);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let ctx = caller(parts, state).await?;
        access::authorize(&ctx, Action::AccountManage)?;
        Ok(SignedIn(ctx))
    }
}

/// The person signed in when the request carries a bearer token (which must then be a valid
/// sign-in, not an API token), else nobody: for endpoints that serve both (accepting an
/// invitation).
pub struct MaybeSignedIn(pub Option<TenantCtx>);

impl FromRequestParts<AppState> for MaybeSignedIn {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        if bearer_token(&parts.headers).is_none() {
            return Ok(MaybeSignedIn(None));
        }
        SignedIn::from_request_parts(parts, state)
            .await
            .map(|SignedIn(ctx)| MaybeSignedIn(Some(ctx)))
    }
}

/// The client's address, for throttling.
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        Ok(ClientIp(client_ip(&parts.extensions)))
    }
}
