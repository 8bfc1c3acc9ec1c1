//! The write path's HTTP half: reading `If-Match` and `Idempotency-Key`, declaring them once for
//! the OpenAPI document, and answering with a stored or fresh [`Reply`]. What a key means and
//! how a change commits with its answer is `crate::idempotency`.

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use super::{extract, problem::Problem};
use crate::{
    access::TenantCtx,
    error::{Error, Result},
    idempotency::{self, Keyed, Reply},
    store::{Db, TenantTx},
    tenancy,
    work::Expected,
};

pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// `Idempotency-Key`, as the OpenAPI document declares it on every POST that takes it
/// (`params(IdempotencyKeyHeader)`); [`Command`] reads it.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// Makes a retry return the first answer (1–255 printable ASCII characters)
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]([ -~]{0,253}[!-~])?$")]
    pub idempotency_key: Option<String>,
}

/// `If-Match`, as the OpenAPI document declares it on every versioned change
/// (`params(IfMatchHeader)`); [`IfMatch`] reads it.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatchHeader {
    /// The resource's current ETag (`"3"`; a bare `3` is read the same)
    #[param(
        rename = "If-Match",
        pattern = "^(\\*|(\"[1-9][0-9]{0,17}\"|[1-9][0-9]{0,17})( *, *(\"[1-9][0-9]{0,17}\"|[1-9][0-9]{0,17}))*)$"
    )]
    pub if_match: String,
}

pub(super) fn key_of(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(&IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().ok().map(str::trim).unwrap_or_default();
    let ok = !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !ok {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// A POST that may carry `Idempotency-Key`, with its JSON body.
pub struct Command<T> {
    pub body: T,
    pub key: Option<Keyed>,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Command<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let key = key_of(req.headers())?;
        let (method, path) = (req.method().to_string(), req.uri().path().to_owned());
        let bytes = extract::json_bytes(req, state).await?;
        let body = extract::parse_json(&bytes)?;
        Ok(Command {
            key: key.map(|key| Keyed::new(key, &method, &path, &bytes)),
            body,
        })
    }
}

/// A body-less action POST (`complete`, `reopen`) that may carry `Idempotency-Key`.
pub struct BodylessCommand {
    pub key: Option<Keyed>,
}

impl<S: Send + Sync> FromRequestParts<S> for BodylessCommand {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let key = key_of(&parts.headers)?;
        let (method, path) = (parts.method.to_string(), parts.uri.path().to_owned());
        Ok(BodylessCommand {
            key: key.map(|key| Keyed::new(key, &method, &path, b"")),
        })
    }
}

/// `If-Match`, required: missing → 428, unreadable → 400.
pub struct IfMatch(pub Expected);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Err(Error::PreconditionRequired.into());
        };
        parse_if_match(value.to_str().unwrap_or_default()).map(IfMatch).ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_if_match",
                r#"If-Match must be the ETag of the version the change is based on, e.g. "3", or *"#,
            )
        })
    }
}

/// `*`, or a list of entity tags such as `"3", "4"` (a bare `3` is read as `"3"`). Weak tags
/// never match under If-Match's strong comparison, so they are refused as unusable.
fn parse_if_match(value: &str) -> Option<Expected> {
    let value = value.trim();
    if value == "*" {
        return Some(Expected::Any);
    }
    let versions = value
        .split(',')
        .map(|tag| {
            let tag = tag.trim();
            let inner = tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(tag);
            inner.parse::<i64>().ok().filter(|v| *v > 0)
        })
        .collect::<Option<Vec<i64>>>()?;
    (!versions.is_empty()).then_some(Expected::Versions(versions))
}

/// The ETag of a version.
pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits")
}

/// Runs `change` as one business write (see [`idempotency::write`]) by a person whose role is
/// still the one they were authenticated with, and answers with its reply, marked
/// `Idempotent-Replayed: true` when it comes from an earlier run.
pub async fn write<F>(db: &Db, ctx: &TenantCtx, key: Option<Keyed>, change: F) -> Result<Response>
where
    F: AsyncFnOnce(&TenantTx) -> Result<Reply>,
{
    let answer = idempotency::write(db, ctx, key, async |tx| {
        tenancy::ensure_still_acting(tx, ctx).await?;
        change(tx).await
    })
    .await?;
    let reply = answer.reply;
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let mut res = match reply.body {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    };
    for (name, value) in reply.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            res.headers_mut().insert(n, v);
        }
    }
    if answer.replayed {
        res.headers_mut().insert(
            IDEMPOTENT_REPLAYED.clone(),
            HeaderValue::from_static("true"),
        );
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_forms() {
        assert_eq!(parse_if_match("*"), Some(Expected::Any));
        assert_eq!(parse_if_match(r#""3""#), Some(Expected::Versions(vec![3])));
        assert_eq!(parse_if_match("3"), Some(Expected::Versions(vec![3])));
        assert_eq!(
            parse_if_match(r#""3", "4""#),
            Some(Expected::Versions(vec![3, 4]))
        );
        for bad in ["", "abc", r#"W/"3""#, r#""-1""#, r#""0""#, "\"3", "3,"] {
            assert_eq!(parse_if_match(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_are_printable_and_bounded() {
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(&IDEMPOTENCY_KEY, HeaderValue::from_str(v).unwrap());
            h
        };
        assert_eq!(
            key_of(&headers("abc-123")).unwrap().as_deref(),
            Some("abc-123")
        );
        assert!(key_of(&headers("")).is_err());
        assert!(key_of(&headers(&"k".repeat(256))).is_err());
        assert!(key_of(&HeaderMap::new()).unwrap().is_none());
    }
}
