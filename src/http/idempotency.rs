//! The write path's HTTP half: `If-Match` and `Idempotency-Key` (IETF
//! draft-ietf-httpapi-idempotency-key-header), and the unit of work that ties a change and its
//! stored response into one transaction.
//!
//! A keyed request first *claims* its key (organisation, user, key) in a short transaction of
//! its own: a new key is marked in progress; a finished one is replayed; one in progress is 409;
//! one used for a different request is 422. The change then runs in its own transaction, which
//! also stores the response under the key, so the change and its record commit together. A
//! failed change releases the claim (nothing happened, so a retry may run it again); a claim
//! left behind by a crashed process is taken over once it is older than any request can run.

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use chrono::{Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
    sea_query::OnConflict,
};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use super::{extract, problem::Problem};
use crate::{
    error::{Error, Result},
    store::{Db, TenantTx},
    tenancy::TenantCtx,
    work::Expected,
};

pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// How long a finished response is replayed.
const KEPT_FOR: Duration = Duration::hours(24);
/// After this, an in-progress claim belongs to a request that can no longer be running (the
/// server answers every request within 30 s).
const STALE_CLAIM: Duration = Duration::seconds(90);

mod record {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "idempotency_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub fingerprint: String,
        /// `in_progress` or `done`.
        pub state: String,
        pub response_status: Option<i32>,
        pub response_headers: Option<Json>,
        #[sea_orm(column_type = "Text", nullable)]
        pub response_body: Option<String>,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl crate::store::TenantEntity for Entity {
        fn org_column() -> Column {
            Column::OrgId
        }
    }
}

/// An `Idempotency-Key` and the fingerprint of the request it came with.
#[derive(Clone, Debug)]
pub struct Keyed {
    key: String,
    fingerprint: String,
}

fn key_of(headers: &HeaderMap) -> Result<Option<String>, Problem> {
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

/// Same method, path and JSON content (whatever its spacing or key order) = same request.
fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| v.to_string().into_bytes())
        .unwrap_or_else(|_| body.to_vec());
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(&canonical);
    hex::encode(h.finalize())
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
            key: key.map(|key| Keyed {
                key,
                fingerprint: fingerprint(&method, &path, &bytes),
            }),
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
            key: key.map(|key| Keyed {
                key,
                fingerprint: fingerprint(&method, &path, b""),
            }),
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

/// A successful write's response, in the form it is stored for replay.
#[derive(Clone, Debug)]
pub struct Reply {
    status: StatusCode,
    body: Option<serde_json::Value>,
    headers: Vec<(String, String)>,
}

impl Reply {
    /// `201 Created` with the new resource, its `Location` and (if versioned) `ETag`.
    pub fn created<T: Serialize>(
        value: &T,
        location: String,
        version: Option<i64>,
    ) -> Result<Self> {
        let mut r = Self::ok(value, version)?;
        r.status = StatusCode::CREATED;
        r.headers.push((header::LOCATION.to_string(), location));
        Ok(r)
    }

    /// `200 OK` with the resource and (if versioned) its `ETag`.
    pub fn ok<T: Serialize>(value: &T, version: Option<i64>) -> Result<Self> {
        let body = serde_json::to_value(value).map_err(Error::internal)?;
        let headers = version
            .map(|v| (header::ETAG.to_string(), format!("\"{v}\"")))
            .into_iter()
            .collect();
        Ok(Self {
            status: StatusCode::OK,
            body: Some(body),
            headers,
        })
    }

    pub fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
            headers: Vec::new(),
        }
    }

    fn into_response(self, replayed: bool) -> Response {
        let mut res = match self.body {
            Some(body) => (self.status, axum::Json(body)).into_response(),
            None => self.status.into_response(),
        };
        for (name, value) in self.headers {
            if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                res.headers_mut().insert(n, v);
            }
        }
        if replayed {
            res.headers_mut().insert(
                IDEMPOTENT_REPLAYED.clone(),
                HeaderValue::from_static("true"),
            );
        }
        res
    }
}

/// One business write in progress: its transaction, and the key it will answer under.
pub struct Write {
    tx: TenantTx,
    key: Option<Keyed>,
}

/// What `begin` found: a write to do, or a stored answer to give again.
pub enum Begun {
    Fresh(Write),
    Replay(Response),
}

/// Starts a write: claims the idempotency key (if any), then opens the change's transaction.
pub async fn begin(db: &Db, ctx: &TenantCtx, key: Option<Keyed>) -> Result<Begun> {
    if let Some(k) = &key
        && let Some(replay) = claim(db, ctx, k).await?
    {
        return Ok(Begun::Replay(replay));
    }
    Ok(Begun::Fresh(Write {
        tx: db.tenant(ctx, true).await?,
        key,
    }))
}

/// Claims the key, or answers from it. Two racing claims of one new key: the database lets
/// one insert; the other sees the claim and gets 409.
async fn claim(db: &Db, ctx: &TenantCtx, k: &Keyed) -> Result<Option<Response>> {
    let now = Utc::now();
    let tx = db.tenant(ctx, true).await?;
    let fresh = record::ActiveModel {
        org_id: Set(ctx.org_id),
        user_id: Set(ctx.user_id),
        key: Set(k.key.clone()),
        fingerprint: Set(k.fingerprint.clone()),
        state: Set("in_progress".into()),
        response_status: Set(None),
        response_headers: Set(None),
        response_body: Set(None),
        created_at: Set(now),
        expires_at: Set(now + KEPT_FOR),
    };
    let inserted = record::Entity::insert(fresh.clone())
        .on_conflict(
            OnConflict::columns([
                record::Column::OrgId,
                record::Column::UserId,
                record::Column::Key,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(tx.conn())
        .await?;
    if inserted == 1 {
        tx.commit().await?;
        return Ok(None);
    }
    let existing = tx
        .find_for_update::<record::Entity>()
        .filter(record::Column::UserId.eq(ctx.user_id))
        .filter(record::Column::Key.eq(k.key.as_str()))
        .one(tx.conn())
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("idempotency record vanished")))?;
    let expired = existing.expires_at <= now;
    let abandoned = existing.state == "in_progress" && existing.created_at + STALE_CLAIM <= now;
    if expired || abandoned {
        // Start over under the key: the old use is forgotten, or its request is gone.
        let mut row = fresh.clone();
        row.org_id = sea_orm::ActiveValue::Unchanged(ctx.org_id);
        row.user_id = sea_orm::ActiveValue::Unchanged(ctx.user_id);
        row.key = sea_orm::ActiveValue::Unchanged(k.key.clone());
        row.update(tx.conn()).await?;
        tx.commit().await?;
        return Ok(None);
    }
    if existing.fingerprint != k.fingerprint {
        return Err(Error::Unprocessable {
            code: "idempotency_key_reused",
            detail: "this Idempotency-Key was already used for a different request; use a new key"
                .into(),
        });
    }
    if existing.state != "done" {
        return Err(Error::conflict(
            "idempotency_key_in_progress",
            "a request with this Idempotency-Key is still being processed; retry shortly",
        ));
    }
    let headers: Vec<(String, String)> = existing
        .response_headers
        .and_then(|h| serde_json::from_value(h).ok())
        .unwrap_or_default();
    let status = existing
        .response_status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let body = existing
        .response_body
        .and_then(|b| serde_json::from_str(&b).ok());
    tx.commit().await?;
    Ok(Some(
        Reply {
            status,
            body,
            headers,
        }
        .into_response(true),
    ))
}

impl Write {
    pub fn tx(&self) -> &TenantTx {
        &self.tx
    }

    /// Commits the change with its stored response, or rolls it back and frees the key.
    pub async fn finish(
        self,
        db: &Db,
        ctx: &TenantCtx,
        outcome: Result<Reply>,
    ) -> Result<Response> {
        let reply = match outcome {
            Ok(reply) => reply,
            Err(err) => {
                self.tx.rollback().await?;
                if let Some(k) = &self.key {
                    release(db, ctx, k).await?;
                }
                return Err(err);
            }
        };
        if let Some(k) = &self.key {
            let row = self
                .tx
                .find_for_update::<record::Entity>()
                .filter(record::Column::UserId.eq(ctx.user_id))
                .filter(record::Column::Key.eq(k.key.as_str()))
                .one(self.tx.conn())
                .await?
                .ok_or_else(|| Error::internal(anyhow::anyhow!("idempotency claim vanished")))?;
            let mut row = row.into_active_model();
            row.state = Set("done".into());
            row.response_status = Set(Some(i32::from(reply.status.as_u16())));
            row.response_headers = Set(Some(
                serde_json::to_value(&reply.headers).map_err(Error::internal)?,
            ));
            row.response_body = Set(reply.body.as_ref().map(|b| b.to_string()));
            row.update(self.tx.conn()).await?;
        }
        self.tx.commit().await?;
        Ok(reply.into_response(false))
    }
}

/// Frees a key whose request failed, so the client can retry it.
async fn release(db: &Db, ctx: &TenantCtx, k: &Keyed) -> Result<()> {
    let tx = db.tenant(ctx, true).await?;
    record::Entity::delete_many()
        .filter(record::Column::OrgId.eq(ctx.org_id))
        .filter(record::Column::UserId.eq(ctx.user_id))
        .filter(record::Column::Key.eq(k.key.as_str()))
        .filter(record::Column::State.eq("in_progress"))
        .exec(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes records past their 24 hours, across tenants (maintenance).
pub async fn purge_expired(db: &Db) -> Result<u64> {
    let tx = db.maintenance().await?;
    let res = record::Entity::delete_many()
        .filter(record::Column::ExpiresAt.lt(Utc::now()))
        .exec(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(res.rows_affected)
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
    fn fingerprints_ignore_json_layout_but_not_content_or_target() {
        let a = fingerprint("POST", "/t", br#"{"a": 1, "b": 2}"#);
        assert_eq!(a, fingerprint("POST", "/t", br#"{"b":2,"a":1}"#));
        assert_ne!(a, fingerprint("POST", "/t", br#"{"a": 1, "b": 3}"#));
        assert_ne!(a, fingerprint("POST", "/u", br#"{"a": 1, "b": 2}"#));
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
