//! The audit log: who did what security-relevant thing, when, from which request. Each
//! organisation's entries form a hash chain (`crate::chain`), so an entry changed, removed or
//! slipped in afterwards shows in [`verify`].

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    access::{self, Action, TenantCtx},
    chain,
    error::{Result, Validator},
    pagination::{Page, PageRequest},
    request_id,
    store::{self, Db, TenantTx},
};

mod entry {
    crate::store::tenant_entity!("audit_log" {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        actor_id: Option<Uuid>,
        action: String,
        target_type: String,
        target_id: Option<Uuid>,
        details: Json,
        request_id: Option<String>,
        created_at: DateTimeUtc,
        seq: Option<i64>,
        prev_hash: Option<String>,
        hash: Option<String>,
        details_digest: Option<String>,
        redacted_at: Option<DateTimeUtc>,
    });
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: Uuid,
    pub actor_id: Option<Uuid>,
    #[schema(example = "membership.role_changed")]
    pub action: String,
    pub target_type: String,
    pub target_id: Option<Uuid>,
    pub details: serde_json::Value,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The entry's place in its organisation's chain (1, 2, …).
    pub seq: Option<i64>,
    /// SHA-256 (hex) of the previous entry's hash and this entry in canonical form.
    pub hash: Option<String>,
    /// The previous entry's `hash` (`null` for the first).
    pub prev_hash: Option<String>,
    /// When erasing a person pseudonymised what the details said about them.
    pub redacted_at: Option<DateTime<Utc>>,
}

impl From<entry::Model> for AuditEntry {
    fn from(m: entry::Model) -> Self {
        Self {
            id: m.id,
            actor_id: m.actor_id,
            action: m.action,
            target_type: m.target_type,
            target_id: m.target_id,
            details: m.details,
            request_id: m.request_id,
            created_at: m.created_at,
            seq: m.seq,
            hash: m.hash,
            prev_hash: m.prev_hash,
            redacted_at: m.redacted_at,
        }
    }
}

/// Appends an entry inside the caller's transaction: it exists exactly when the change does.
/// Taking the chain's head locks the organisation's head row until the transaction ends, so the
/// organisation's audited changes chain one after the other; other organisations' do not wait.
pub(crate) async fn record(
    tx: &TenantTx,
    actor_id: Option<Uuid>,
    action: &str,
    target_type: &str,
    target_id: Option<Uuid>,
    details: serde_json::Value,
) -> Result<()> {
    let conn = tx.conn();
    let head = conn
        .query_one_raw(store::statement(
            conn.get_database_backend(),
            "INSERT INTO audit_chain_heads (org_id, seq, hash) VALUES ($1, 0, NULL) \
             ON CONFLICT (org_id) DO UPDATE SET seq = audit_chain_heads.seq \
             RETURNING seq, hash",
            [tx.org_id().into()],
        ))
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound("audit_chain_heads".into()))?;
    let prev_seq: i64 = store::column(&head, "seq")?;
    let prev_hash: Option<String> = store::column(&head, "hash")?;
    let id = Uuid::now_v7();
    let seq = prev_seq + 1;
    let created_at = store::now();
    let request_id = request_id::current();
    let details_digest = chain::digest(&details);
    let hash = chain::Link {
        org_id: tx.org_id(),
        seq,
        id,
        actor_id,
        action,
        target_type,
        target_id,
        details_digest: &details_digest,
        request_id: request_id.as_deref(),
        created_at,
    }
    .hash(prev_hash.as_deref());
    entry::ActiveModel {
        org_id: Set(tx.org_id()),
        id: Set(id),
        actor_id: Set(actor_id),
        action: Set(action.to_owned()),
        target_type: Set(target_type.to_owned()),
        target_id: Set(target_id),
        details: Set(details),
        request_id: Set(request_id),
        created_at: Set(created_at),
        seq: Set(Some(seq)),
        prev_hash: Set(prev_hash),
        hash: Set(Some(hash.clone())),
        details_digest: Set(Some(details_digest)),
        redacted_at: Set(None),
    }
    .insert(conn)
    .await?;
    conn.execute_raw(store::statement(
        conn.get_database_backend(),
        "UPDATE audit_chain_heads SET seq = $1, hash = $2 WHERE org_id = $3",
        [seq.into(), hash.into(), tx.org_id().into()],
    ))
    .await?;
    Ok(())
}

/// `GET /audit-log` filters: who, what, when, from which request.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Entries of this actor.
    pub actor_id: Option<Uuid>,
    /// Entries of this action (`membership.role_changed`), or of every action starting with
    /// it when it ends with `.` (`membership.`).
    #[param(max_length = 100)]
    pub action: Option<String>,
    /// Entries about this kind of target (`organization`, `user`, `webhook`, …).
    #[param(max_length = 100)]
    pub target_type: Option<String>,
    pub target_id: Option<Uuid>,
    #[param(max_length = 200)]
    pub request_id: Option<String>,
    /// Entries written at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Entries written before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
}

impl AuditFilter {
    pub fn validate(self) -> Result<Self> {
        let mut v = Validator::default();
        for (field, value, max) in [
            ("action", &self.action, 100),
            ("target_type", &self.target_type, 100),
            ("request_id", &self.request_id, 200),
        ] {
            if let Some(value) = value {
                v.check(
                    !value.is_empty() && value.chars().count() <= max,
                    field,
                    &format!("must be 1–{max} characters"),
                );
            }
        }
        if let (Some(since), Some(until)) = (self.since, self.until) {
            v.check(since < until, "until", "must be after since");
        }
        v.finish()?;
        Ok(self)
    }

    fn apply(&self, mut query: sea_orm::Select<entry::Entity>) -> sea_orm::Select<entry::Entity> {
        use entry::Column;
        if let Some(actor) = self.actor_id {
            query = query.filter(Column::ActorId.eq(actor));
        }
        match self.action.as_deref() {
            Some(prefix) if prefix.ends_with('.') => {
                query = query.filter(Column::Action.starts_with(prefix));
            }
            Some(action) => query = query.filter(Column::Action.eq(action)),
            None => {}
        }
        if let Some(kind) = &self.target_type {
            query = query.filter(Column::TargetType.eq(kind.as_str()));
        }
        if let Some(target) = self.target_id {
            query = query.filter(Column::TargetId.eq(target));
        }
        if let Some(request) = &self.request_id {
            query = query.filter(Column::RequestId.eq(request.as_str()));
        }
        if let Some(since) = self.since {
            query = query.filter(Column::CreatedAt.gte(since));
        }
        if let Some(until) = self.until {
            query = query.filter(Column::CreatedAt.lt(until));
        }
        query
    }
}

/// Newest first, as `filter` narrows them (admins).
pub async fn list(
    db: &Db,
    ctx: &TenantCtx,
    filter: &AuditFilter,
    page: PageRequest,
) -> Result<Page<AuditEntry>> {
    access::authorize(ctx, Action::AuditRead)?;
    let tx = db.read(ctx).await?;
    let query = tx.newest_first::<entry::Entity>(entry::Column::Id, &page)?;
    let rows = filter.apply(query).all(tx.conn()).await?;
    tx.commit().await?;
    Ok(Page::from_rows(
        rows,
        page.limit,
        |m| m.id,
        AuditEntry::from,
    ))
}

/// Pseudonymises what the organisation's entries' details say of an erased person (the
/// entries stay; each records when). The chain holds: details enter it by digest.
pub(crate) async fn redact(tx: &TenantTx, traces: &crate::text::Traces) -> Result<u64> {
    let mut needles = traces.addresses.clone();
    needles.push(traces.name.clone());
    let conn = tx.conn();
    let cast = match conn.get_database_backend() {
        sea_orm::DbBackend::Postgres => "details::text",
        _ => "details",
    };
    let mut redacted = 0;
    for needle in needles.iter().filter(|n| n.chars().count() >= 3) {
        let found = entry::Entity::find()
            .from_raw_sql(store::statement(
                conn.get_database_backend(),
                &format!("SELECT * FROM audit_log WHERE org_id = $1 AND lower({cast}) LIKE $2"),
                [
                    tx.org_id().into(),
                    format!("%{}%", needle.to_lowercase()).into(),
                ],
            ))
            .all(conn)
            .await?;
        for m in found {
            let mut details = m.details.clone();
            if !traces.scrub_json(&mut details) {
                continue;
            }
            tx.update_many::<entry::Entity>()
                .col_expr(entry::Column::Details, details.into())
                .col_expr(entry::Column::RedactedAt, store::now().into())
                .filter(entry::Column::Id.eq(m.id))
                .exec(conn)
                .await?;
            redacted += 1;
        }
    }
    Ok(redacted)
}

/// Entries by or about `user_id` (as actor or target), oldest first after `after`, a page at a
/// time (their data export; no role check: the caller decided they may see these).
pub(crate) async fn about(
    db: &Db,
    org_id: Uuid,
    user_id: Uuid,
    after: Option<Uuid>,
) -> Result<Vec<AuditEntry>> {
    use entry::Column;
    let tx = db.read_org(org_id).await?;
    let mut query = tx
        .find::<entry::Entity>()
        .filter(
            sea_orm::Condition::any()
                .add(Column::ActorId.eq(user_id))
                .add(Column::TargetId.eq(user_id)),
        )
        .order_by_asc(Column::Id)
        .limit(500);
    if let Some(after) = after {
        query = query.filter(Column::Id.gt(after));
    }
    let rows = query.all(tx.conn()).await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(AuditEntry::from).collect())
}

/// What [`verify`] found.
#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    /// Whether every entry links to the one before and hashes to what it says.
    pub ok: bool,
    /// The entries checked (up to the first broken link).
    pub entries: u64,
    /// The first entry whose link is broken.
    pub first_bad_id: Option<Uuid>,
    /// What is wrong with it.
    pub problem: Option<String>,
}

/// Entries read per statement while verifying: the log is walked, never held whole.
const VERIFY_BATCH: u64 = 1000;

/// Walks the organisation's chain in order (admins).
pub async fn verify(db: &Db, ctx: &TenantCtx) -> Result<Verification> {
    access::authorize(ctx, Action::AuditRead)?;
    let tx = db.read(ctx).await?;
    let found = verify_chain(&tx).await?;
    tx.commit().await?;
    Ok(found)
}

/// Walks an organisation's chain (the operator's `docket admin audit-verify`).
pub async fn verify_org(db: &Db, org_id: Uuid) -> Result<Verification> {
    let tx = db.read_org(org_id).await?;
    let found = verify_chain(&tx).await?;
    tx.commit().await?;
    Ok(found)
}

/// Walks the chain of `tx`'s organisation: numbering without gaps, each `prev_hash` the hash
/// before it, each hash recomputed, each unredacted entry's details matching their digest, and
/// the chain's head naming the last entry (so removing the newest entries shows too).
async fn verify_chain(tx: &TenantTx) -> Result<Verification> {
    use entry::Column;
    let mut checked = 0u64;
    let mut prev: Option<String> = None;
    let broken = |id: Uuid, checked: u64, problem: &str| Verification {
        ok: false,
        entries: checked,
        first_bad_id: Some(id),
        problem: Some(problem.to_owned()),
    };
    let unchained = tx
        .find::<entry::Entity>()
        .filter(Column::Seq.is_null())
        .one(tx.conn())
        .await?;
    if let Some(m) = unchained {
        return Ok(broken(m.id, 0, "the entry has no place in the chain"));
    }
    loop {
        let batch = tx
            .find::<entry::Entity>()
            .filter(Column::Seq.gt(checked as i64))
            .order_by_asc(Column::Seq)
            .limit(VERIFY_BATCH)
            .all(tx.conn())
            .await?;
        let last_batch = (batch.len() as u64) < VERIFY_BATCH;
        for m in batch {
            let seq = checked as i64 + 1;
            if m.seq != Some(seq) {
                return Ok(broken(m.id, checked, "an entry before this one is missing"));
            }
            if m.prev_hash != prev {
                return Ok(broken(
                    m.id,
                    checked,
                    "prev_hash is not the previous entry's hash",
                ));
            }
            let digest = m.details_digest.clone().unwrap_or_default();
            if m.redacted_at.is_none() && chain::digest(&m.details) != digest {
                return Ok(broken(m.id, checked, "the details were changed"));
            }
            let hash = chain::Link {
                org_id: m.org_id,
                seq,
                id: m.id,
                actor_id: m.actor_id,
                action: &m.action,
                target_type: &m.target_type,
                target_id: m.target_id,
                details_digest: &digest,
                request_id: m.request_id.as_deref(),
                created_at: m.created_at,
            }
            .hash(prev.as_deref());
            if m.hash.as_deref() != Some(hash.as_str()) {
                return Ok(broken(m.id, checked, "the entry does not hash to its hash"));
            }
            checked += 1;
            prev = Some(hash);
        }
        if last_batch {
            break;
        }
    }
    let conn = tx.conn();
    let head = conn
        .query_one_raw(store::statement(
            conn.get_database_backend(),
            "SELECT seq, hash FROM audit_chain_heads WHERE org_id = $1",
            [tx.org_id().into()],
        ))
        .await?;
    let (head_seq, head_hash) = match head {
        Some(row) => (
            store::column::<i64>(&row, "seq")?,
            store::column::<Option<String>>(&row, "hash")?,
        ),
        None => (0, None),
    };
    if head_seq != checked as i64 || head_hash != prev {
        return Ok(Verification {
            ok: false,
            entries: checked,
            first_bad_id: None,
            problem: Some(format!(
                "the chain's head names entry {head_seq}, the newest entry is {checked}: \
                 entries were removed from its end"
            )),
        });
    }
    Ok(Verification {
        ok: true,
        entries: checked,
        first_bad_id: None,
        problem: None,
    })
}
