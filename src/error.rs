//! The domain error every module returns. The HTTP layer maps it to problem+json in one place
//! (`http::problem`); nothing else builds error responses.

use std::time::Duration;

use serde::Serialize;

/// One invalid input field, reported in a 422 problem's `errors` list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The resource does not exist for this tenant (also: it belongs to another tenant).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller's role may not perform the action on a resource of their own tenant.
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    /// No usable credentials.
    #[error("{detail}")]
    Unauthorized {
        code: &'static str,
        detail: String,
        invalid_token: bool,
    },
    /// The request is well-formed but conflicts with current state.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// The request itself is unusable (a malformed header).
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    /// A change of state the state machine does not allow from where the resource is.
    #[error("{detail}")]
    InvalidTransition {
        detail: String,
        allowed: Vec<&'static str>,
    },
    /// A conditional change was sent without `If-Match`.
    #[error("this change needs an If-Match header with the version it is based on")]
    PreconditionRequired,
    /// `If-Match` names a version that is no longer current.
    #[error("the {what} has changed since version {expected}; it is now at version {current}")]
    VersionMismatch {
        what: &'static str,
        expected: i64,
        current: i64,
    },
    /// Well-formed but unusable as a whole (not one field's fault).
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    /// The body is larger than this endpoint accepts (`payload_too_large`), or would take the
    /// organisation past its storage quota (`quota_exceeded`).
    #[error("{detail}")]
    TooLarge { code: &'static str, detail: String },
    /// The change would take the organisation past a limit of its plan: which, the limit's
    /// value, and what is in use.
    #[error(
        "this would take the organization past its plan's {limit}: the plan allows {value} and {usage} are in use; upgrade the plan or free some up"
    )]
    PlanLimitReached {
        limit: &'static str,
        value: u64,
        usage: u64,
    },
    /// The body is not of a media type this endpoint takes.
    #[error("{detail}")]
    UnsupportedMediaType { detail: String },
    /// A `Range` that selects nothing of a resource of `size` bytes.
    #[error("the requested range is not within the {size} bytes of the file")]
    RangeNotSatisfiable { size: u64 },
    /// One or more fields are invalid.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// Too many attempts; try again after the given time.
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after: Duration,
    },
    /// A temporary condition (the database is saturated): retry after the given time.
    #[error("{detail}")]
    Unavailable {
        detail: String,
        retry_after: Duration,
    },
    /// A service Docket depends on (the payment provider) refused or did not answer.
    #[error("{detail}")]
    BadGateway { code: &'static str, detail: String },
    /// Anything unexpected: logged in full, answered as an opaque 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Forbidden {
            code: "forbidden",
            detail: detail.into(),
        }
    }
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }
    pub fn invalid_token(detail: impl Into<String>) -> Self {
        Self::Unauthorized {
            code: "invalid_token",
            detail: detail.into(),
            invalid_token: true,
        }
    }
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::TooLarge {
            code: "payload_too_large",
            detail: detail.into(),
        }
    }
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }
}

/// How long a client should wait before retrying when the database pool is exhausted.
const POOL_RETRY_AFTER: Duration = Duration::from_secs(2);

impl From<sea_orm::DbErr> for Error {
    fn from(err: sea_orm::DbErr) -> Self {
        use sea_orm::{ConnAcquireErr, DbErr};
        match err {
            // Every connection is busy for longer than the acquire timeout: the server is
            // saturated, not broken.
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => {
                tracing::warn!("no database connection became free in time");
                Self::Unavailable {
                    detail: "the server is busy; retry shortly".into(),
                    retry_after: POOL_RETRY_AFTER,
                }
            }
            other => Self::Internal(other.into()),
        }
    }
}

/// Collects field errors so a request reports all its problems at once.
#[derive(Default)]
pub struct Validator(Vec<FieldError>);

impl Validator {
    pub fn check(&mut self, ok: bool, field: &str, message: &str) -> &mut Self {
        if !ok {
            self.push(field, message);
        }
        self
    }
    /// Adds a field error; the same one found twice (by two checks) is reported once.
    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        let error = FieldError::new(field, message);
        if !self.0.contains(&error) {
            self.0.push(error);
        }
    }
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.0))
        }
    }
}
