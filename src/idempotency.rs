//! Idempotent writes (IETF draft-ietf-httpapi-idempotency-key-header): the stored record of a
//! keyed request and the unit of work that ties a change and its stored answer into one
//! transaction. The HTTP layer reads the headers and turns a [`Reply`] into a response; this
//! module knows nothing of HTTP beyond status codes and header names as data.
//!
//! A keyed request *claims* its key (organisation, user, key) inside the change's own
//! transaction, before the change: a new key is inserted as claimed; a finished one is replayed;
//! one used for a different request is 422. A concurrent duplicate waits for the first
//! transaction (on the key's unique index, or SQLite's single writer) and then replays its
//! answer. The change stores its answer under the key and commits once, so a failed change, or
//! a process killed mid-request, leaves no claim behind: a retry runs at once.

use chrono::{Duration, Utc};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, EntityTrait, QueryFilter,
    sea_query::{Expr, OnConflict},
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{
    access::TenantCtx,
    error::{Error, Result},
    store::{Db, TenantTx},
};

/// How long a finished answer is replayed.
const KEPT_FOR: Duration = Duration::hours(24);

mod record {
    crate::store::tenant_entity!("idempotency_keys" {
        #[sea_orm(primary_key, auto_increment = false)]
        user_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        key: String,
        fingerprint: String,
        /// `in_progress` or `done`.
        state: String,
        response_status: Option<i32>,
        response_headers: Option<Json>,
        #[sea_orm(column_type = "Text", nullable)]
        response_body: Option<String>,
        created_at: DateTimeUtc,
        expires_at: DateTimeUtc,
    });
}

/// An `Idempotency-Key` and the fingerprint of the request it came with.
#[derive(Clone, Debug)]
pub struct Keyed {
    key: String,
    fingerprint: String,
}

impl Keyed {
    /// Same method, path and JSON content (whatever its spacing or key order) = same request.
    pub fn new(key: String, method: &str, path: &str, body: &[u8]) -> Self {
        let canonical = serde_json::from_slice::<serde_json::Value>(body)
            .map(|v| v.to_string().into_bytes())
            .unwrap_or_else(|_| body.to_vec());
        let mut h = Sha256::new();
        h.update(method.as_bytes());
        h.update([0]);
        h.update(path.as_bytes());
        h.update([0]);
        h.update(&canonical);
        Self {
            key,
            fingerprint: hex::encode(h.finalize()),
        }
    }
}

/// A successful write's answer, in the form it is stored for replay.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Option<serde_json::Value>,
    /// Header name and value pairs (`location`, `etag`).
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// `201 Created` with the new resource, its `Location` and (if versioned) `ETag`.
    pub fn created<T: Serialize>(
        value: &T,
        location: String,
        version: Option<i64>,
    ) -> Result<Self> {
        let mut r = Self::ok(value, version)?;
        r.status = 201;
        r.headers.push(("location".into(), location));
        Ok(r)
    }

    /// `200 OK` with the resource and (if versioned) its `ETag`.
    pub fn ok<T: Serialize>(value: &T, version: Option<i64>) -> Result<Self> {
        let body = serde_json::to_value(value).map_err(Error::internal)?;
        let headers = version
            .map(|v| ("etag".to_owned(), format!("\"{v}\"")))
            .into_iter()
            .collect();
        Ok(Self {
            status: 200,
            body: Some(body),
            headers,
        })
    }

    pub fn no_content() -> Self {
        Self {
            status: 204,
            body: None,
            headers: Vec::new(),
        }
    }
}

/// How a write was answered: by running it now, or from the record of an earlier run.
#[derive(Debug)]
pub struct Answer {
    pub reply: Reply,
    pub replayed: bool,
}

/// Runs `change` as one business write for `ctx`: replays the stored answer for a repeated
/// `Idempotency-Key`; otherwise runs the change in a write transaction and commits it together
/// with its answer, or rolls it back (and frees the key) when it fails.
pub async fn write<F>(db: &Db, ctx: &TenantCtx, key: Option<Keyed>, change: F) -> Result<Answer>
where
    F: AsyncFnOnce(&TenantTx) -> Result<Reply>,
{
    let tx = db.write(ctx).await?;
    if let Some(k) = &key
        && let Some(reply) = claim(&tx, ctx, k).await?
    {
        tx.rollback().await?;
        return Ok(Answer {
            reply,
            replayed: true,
        });
    }
    let reply = match change(&tx).await {
        Ok(reply) => reply,
        Err(err) => {
            // The claim goes with the change: the key is free for a retry.
            tx.rollback().await?;
            return Err(err);
        }
    };
    if let Some(k) = &key {
        store(&tx, ctx, k, &reply).await?;
    }
    tx.commit().await?;
    Ok(Answer {
        reply,
        replayed: false,
    })
}

/// Claims the key in the change's transaction, or answers from it. A concurrent claim of the
/// same new key waits on the key's unique index (PostgreSQL) or for the single writer (SQLite)
/// until the first transaction ends, then finds its answer (or, if it failed, the key free).
async fn claim(tx: &TenantTx, ctx: &TenantCtx, k: &Keyed) -> Result<Option<Reply>> {
    let now = Utc::now();
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
        return Ok(None);
    }
    let existing = tx
        .find_for_update::<record::Entity>()
        .filter(record::Column::UserId.eq(ctx.user_id))
        .filter(record::Column::Key.eq(k.key.as_str()))
        .one(tx.conn())
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("idempotency record vanished")))?;
    // A claim is only ever committed with its answer; one still "in progress" was left by an
    // older version of the server whose request is long gone.
    let forgotten = existing.expires_at <= now || existing.state != "done";
    if forgotten {
        let mut row = fresh;
        row.org_id = sea_orm::ActiveValue::Unchanged(ctx.org_id);
        row.user_id = sea_orm::ActiveValue::Unchanged(ctx.user_id);
        row.key = sea_orm::ActiveValue::Unchanged(k.key.clone());
        row.update(tx.conn()).await?;
        return Ok(None);
    }
    if existing.fingerprint != k.fingerprint {
        return Err(Error::Unprocessable {
            code: "idempotency_key_reused",
            detail: "this Idempotency-Key was already used for a different request; use a new key"
                .into(),
        });
    }
    let headers: Vec<(String, String)> = existing
        .response_headers
        .and_then(|h| serde_json::from_value(h).ok())
        .unwrap_or_default();
    let status = existing
        .response_status
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(200);
    let body = existing
        .response_body
        .and_then(|b| serde_json::from_str(&b).ok());
    Ok(Some(Reply {
        status,
        body,
        headers,
    }))
}

/// Stores the answer under the claimed key, in the change's own transaction.
async fn store(tx: &TenantTx, ctx: &TenantCtx, k: &Keyed, reply: &Reply) -> Result<()> {
    // The claim is this transaction's own row: written (and so locked) by it.
    let stored = tx
        .update_many::<record::Entity>()
        .col_expr(record::Column::State, Expr::value("done"))
        .col_expr(
            record::Column::ResponseStatus,
            Expr::value(i32::from(reply.status)),
        )
        .col_expr(
            record::Column::ResponseHeaders,
            Expr::value(serde_json::to_value(&reply.headers).map_err(Error::internal)?),
        )
        .col_expr(
            record::Column::ResponseBody,
            Expr::value(reply.body.as_ref().map(|b| b.to_string())),
        )
        .filter(record::Column::UserId.eq(ctx.user_id))
        .filter(record::Column::Key.eq(k.key.as_str()))
        .exec(tx.conn())
        .await?;
    if stored.rows_affected != 1 {
        return Err(Error::internal(anyhow::anyhow!(
            "idempotency claim vanished"
        )));
    }
    Ok(())
}

/// Deletes records past their 24 hours, across tenants (maintenance).
pub async fn purge_expired(db: &Db) -> Result<u64> {
    let expired = Condition::all().add(record::Column::ExpiresAt.lt(Utc::now()));
    Ok(db.purge::<record::Entity>(expired).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_ignore_json_layout_but_not_content_or_target() {
        let f = |path: &str, body: &[u8]| Keyed::new("k".into(), "POST", path, body).fingerprint;
        let a = f("/t", br#"{"a": 1, "b": 2}"#);
        assert_eq!(a, f("/t", br#"{"b":2,"a":1}"#));
        assert_ne!(a, f("/t", br#"{"a": 1, "b": 3}"#));
        assert_ne!(a, f("/u", br#"{"a": 1, "b": 2}"#));
    }
}
