//! RFC 9457 problem details: the one place where errors become responses.

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    error::{Error, FieldError},
    request_id,
};

pub const CONTENT_TYPE: &str = "application/problem+json";

/// An error response body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "urn:docket:problem:validation_failed")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `user_not_found`, `version_mismatch`.
    pub code: String,
    /// The id of the request, also sent as the `x-request-id` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Per-field problems (422 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The resource's current version (412 `version_mismatch` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
    /// The states that may follow the current one (409 `invalid_transition` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
    /// The plan limit a change would pass (402 `plan_limit_reached` only), e.g. `seats`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// That limit's value in the organisation's plan (402 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<u64>,
    /// What the organisation uses of that limit now (402 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<u64>,
    #[serde(skip)]
    #[schema(ignore)]
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    pub fn new(status: StatusCode, code: impl Into<String>, detail: impl Into<String>) -> Self {
        let code = code.into();
        Self {
            kind: format!("urn:docket:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            request_id: request_id::current(),
            errors: Vec::new(),
            current_version: None,
            allowed: None,
            limit: None,
            value: None,
            usage: None,
            headers: Vec::new(),
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// `Retry-After` in whole seconds (at least one).
    pub fn retry_after(self, after: std::time::Duration) -> Self {
        let secs = HeaderValue::from_str(&after.as_secs().max(1).to_string()).expect("digits");
        self.with_header(header::RETRY_AFTER, secs)
    }

    /// The 401 every protected endpoint answers, with the RFC 6750 challenge.
    pub fn unauthorized(code: &str, detail: impl Into<String>, invalid_token: bool) -> Self {
        let challenge = if invalid_token {
            r#"Bearer error="invalid_token""#
        } else {
            "Bearer"
        };
        Self::new(StatusCode::UNAUTHORIZED, code, detail).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            body,
        )
            .into_response();
        for (name, value) in self.headers {
            res.headers_mut().insert(name, value);
        }
        res
    }
}

impl From<Error> for Problem {
    fn from(err: Error) -> Self {
        match err {
            Error::NotFound(what) => Problem::new(
                StatusCode::NOT_FOUND,
                format!("{what}_not_found"),
                format!("{what} not found"),
            ),
            Error::Forbidden { code, detail } => Problem::new(StatusCode::FORBIDDEN, code, detail),
            Error::Unauthorized {
                code,
                detail,
                invalid_token,
            } => Problem::unauthorized(code, detail, invalid_token),
            Error::Conflict { code, detail } => Problem::new(StatusCode::CONFLICT, code, detail),
            Error::BadRequest { code, detail } => {
                Problem::new(StatusCode::BAD_REQUEST, code, detail)
            }
            Error::InvalidTransition { detail, allowed } => Problem {
                allowed: Some(allowed.into_iter().map(str::to_owned).collect()),
                ..Problem::new(StatusCode::CONFLICT, "invalid_transition", detail)
            },
            Error::Unprocessable { code, detail } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
            }
            Error::TooLarge { code, detail } => {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, code, detail)
            }
            Error::PlanLimitReached {
                limit,
                value,
                usage,
            } => Problem {
                limit: Some(limit.to_owned()),
                value: Some(value),
                usage: Some(usage),
                ..Problem::new(
                    StatusCode::PAYMENT_REQUIRED,
                    "plan_limit_reached",
                    err.to_string(),
                )
            },
            Error::UnsupportedMediaType { detail } => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                detail,
            ),
            Error::RangeNotSatisfiable { size } => Problem::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                err.to_string(),
            )
            .with_header(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("digits"),
            ),
            Error::PreconditionRequired => Problem::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                err.to_string(),
            ),
            Error::VersionMismatch { current, .. } => Problem {
                current_version: Some(current),
                ..Problem::new(
                    StatusCode::PRECONDITION_FAILED,
                    "version_mismatch",
                    err.to_string(),
                )
            },
            Error::Validation(errors) => {
                let detail = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    detail,
                )
                .with_errors(errors)
            }
            Error::TooManyRequests {
                detail,
                retry_after,
            } => Problem::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", detail)
                .retry_after(retry_after),
            Error::Unavailable {
                detail,
                retry_after,
            } => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
                .retry_after(retry_after),
            Error::BadGateway { code, detail } => {
                Problem::new(StatusCode::BAD_GATEWAY, code, detail)
            }
            Error::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                internal()
            }
        }
    }
}

fn internal() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "something went wrong on our side; the request id identifies it in our logs",
    )
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}

/// Generic problems for error statuses produced outside any handler (the router's unknown route
/// and wrong method, timeouts, panics), so every error answer is problem+json.
fn for_status(status: StatusCode) -> Problem {
    match status {
        StatusCode::NOT_FOUND => Problem::new(status, "route_not_found", "no such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => Problem::new(
            status,
            "method_not_allowed",
            "this endpoint does not accept that method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            status,
            "payload_too_large",
            "the request body is larger than allowed",
        ),
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => {
            Problem::new(status, "timeout", "the request took too long")
        }
        s if s.is_server_error() => internal(),
        s => Problem::new(
            s,
            "error",
            s.canonical_reason().unwrap_or("error").to_lowercase(),
        ),
    }
}

/// Replaces any error response that is not already problem+json.
pub async fn ensure_problem(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(CONTENT_TYPE.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return res;
    }
    let mut problem = for_status(status).into_response();
    // Keep headers such as `Allow` or `Retry-After` that explain the status.
    for (name, value) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().entry(name).or_insert(value.clone());
        }
    }
    problem
}

/// Turns a panic into a plain 500 problem (the panic itself is logged, never returned).
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("panic");
    tracing::error!(panic = msg, "handler panicked");
    internal().into_response()
}
