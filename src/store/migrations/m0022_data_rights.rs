//! Data rights and an organisation's life: the audit log becomes a hash chain per organisation
//! (`seq`, `prev_hash`, `hash`, the details' digest, `redacted_at` when erasure pseudonymised
//! them; the chain's head in `audit_chain_heads`), entries written before are chained here; an
//! organisation may be deleted (`deleted_at`, `purge_at`) and is then purged (`purging`, the one
//! state in which its append-only rows may be deleted), leaving a receipt in the global
//! `org_purge_receipts`; exports of an organisation's or a person's data (`exports`); retention
//! settings per organisation.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::{prelude::*, schema::*};
use uuid::Uuid;

use super::{APPEND_ONLY, TENANT_POLICY, add_columns, drop_columns, maintenance_rls, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum AuditLog {
    Table,
    OrgId,
    Seq,
    PrevHash,
    Hash,
    DetailsDigest,
    RedactedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum AuditChainHeads {
    Table,
    OrgId,
    Seq,
    Hash,
}

#[derive(DeriveIden, Clone, Copy)]
enum Organizations {
    Table,
    Id,
    DeletedAt,
    PurgeAt,
    Purging,
    RetainClosedDays,
    RetainMailDays,
}

#[derive(DeriveIden, Clone, Copy)]
enum Exports {
    Table,
    OrgId,
    Id,
    Scope,
    UserId,
    Status,
    ObjectKey,
    Size,
    Error,
    CreatedAt,
    FinishedAt,
    ExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum OrgPurgeReceipts {
    Table,
    Id,
    PurgedOrgId,
    Slug,
    DeletedAt,
    PurgedAt,
    Counts,
}

/// The columns of an audit entry that never change once written (erasure may pseudonymise the
/// details only, and says when).
const AUDIT_FIXED: &str = "org_id, id, seq, actor_id, action, target_type, target_id, \
                           request_id, created_at, prev_hash, hash, details_digest";

/// Append-only rows may be deleted only while their organisation is being purged.
const PURGING: &str = "EXISTS (SELECT 1 FROM organizations o WHERE o.id = org_id AND o.purging)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let sqlite = manager.get_database_backend() == DbBackend::Sqlite;
        add_columns(
            manager,
            AuditLog::Table,
            vec![
                big_integer_null(AuditLog::Seq),
                string_null(AuditLog::PrevHash),
                string_null(AuditLog::Hash),
                string_null(AuditLog::DetailsDigest),
                timestamp_with_time_zone_null(AuditLog::RedactedAt),
            ],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditChainHeads::Table)
                    .col(uuid(AuditChainHeads::OrgId).primary_key())
                    .col(big_integer(AuditChainHeads::Seq))
                    .col(string_null(AuditChainHeads::Hash))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AuditChainHeads::Table, AuditChainHeads::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        tenant_rls(manager, "audit_chain_heads", TENANT_POLICY, None).await?;

        if sqlite {
            for change in ["update", "delete"] {
                conn.execute_unprepared(&format!(
                    "DROP TRIGGER IF EXISTS audit_log_append_only_{change}"
                ))
                .await?;
            }
        }
        chain_existing_entries(conn).await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_log_seq")
                    .table(AuditLog::Table)
                    .col(AuditLog::OrgId)
                    .col(AuditLog::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;

        add_columns(
            manager,
            Organizations::Table,
            vec![
                timestamp_with_time_zone_null(Organizations::DeletedAt),
                timestamp_with_time_zone_null(Organizations::PurgeAt),
                boolean(Organizations::Purging).default(false).to_owned(),
                integer_null(Organizations::RetainClosedDays),
                integer_null(Organizations::RetainMailDays),
            ],
        )
        .await?;

        if sqlite {
            conn.execute_unprepared(&format!(
                "CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE OF {AUDIT_FIXED} \
                 ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            ))
            .await?;
            conn.execute_unprepared("DROP TRIGGER IF EXISTS ticket_events_append_only_delete")
                .await?;
            for table in APPEND_ONLY {
                conn.execute_unprepared(&format!(
                    "CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table} \
                     WHEN NOT EXISTS (SELECT 1 FROM organizations o \
                                      WHERE o.id = OLD.org_id AND o.purging) \
                     BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                ))
                .await?;
            }
        } else {
            // The application role is granted DELETE on these tables (store::migrate), which
            // this restrictive policy confines to an organisation being purged.
            for table in APPEND_ONLY {
                conn.execute_unprepared(&format!(
                    "CREATE POLICY purge_only ON {table} AS RESTRICTIVE FOR DELETE \
                     USING ({})",
                    PURGING.replace("org_id", &format!("{table}.org_id"))
                ))
                .await?;
            }
        }

        manager
            .create_table(
                Table::create()
                    .table(Exports::Table)
                    .col(uuid(Exports::OrgId))
                    .col(uuid(Exports::Id))
                    .col(string(Exports::Scope))
                    .col(uuid(Exports::UserId))
                    .col(string(Exports::Status))
                    .col(string_null(Exports::ObjectKey))
                    .col(big_integer_null(Exports::Size))
                    .col(string_null(Exports::Error))
                    .col(timestamp_with_time_zone(Exports::CreatedAt))
                    .col(timestamp_with_time_zone_null(Exports::FinishedAt))
                    .col(timestamp_with_time_zone_null(Exports::ExpiresAt))
                    .primary_key(Index::create().col(Exports::OrgId).col(Exports::Id))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Exports::Table, Exports::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        tenant_rls(manager, "exports", TENANT_POLICY, None).await?;
        maintenance_rls(manager, "exports").await?;

        manager
            .create_table(
                Table::create()
                    .table(OrgPurgeReceipts::Table)
                    .col(uuid(OrgPurgeReceipts::Id).primary_key())
                    .col(uuid(OrgPurgeReceipts::PurgedOrgId))
                    .col(string(OrgPurgeReceipts::Slug))
                    .col(timestamp_with_time_zone(OrgPurgeReceipts::DeletedAt))
                    .col(timestamp_with_time_zone(OrgPurgeReceipts::PurgedAt))
                    .col(json_binary(OrgPurgeReceipts::Counts))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["org_purge_receipts", "exports", "audit_chain_heads"] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        let conn = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Sqlite {
            for table in APPEND_ONLY {
                conn.execute_unprepared(&format!(
                    "DROP TRIGGER IF EXISTS {table}_append_only_delete; \
                     CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table} \
                     BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                ))
                .await?;
            }
            conn.execute_unprepared(
                "DROP TRIGGER IF EXISTS audit_log_append_only_update; \
                 CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log \
                 BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
            )
            .await?;
        } else {
            for table in APPEND_ONLY {
                conn.execute_unprepared(&format!("DROP POLICY IF EXISTS purge_only ON {table}"))
                    .await?;
            }
        }
        drop_columns(
            manager,
            Organizations::Table,
            &[
                Organizations::DeletedAt,
                Organizations::PurgeAt,
                Organizations::Purging,
                Organizations::RetainClosedDays,
                Organizations::RetainMailDays,
            ],
        )
        .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_audit_log_seq")
                    .table(AuditLog::Table)
                    .to_owned(),
            )
            .await?;
        drop_columns(
            manager,
            AuditLog::Table,
            &[
                AuditLog::Seq,
                AuditLog::PrevHash,
                AuditLog::Hash,
                AuditLog::DetailsDigest,
                AuditLog::RedactedAt,
            ],
        )
        .await
    }
}

/// Chains the entries written before the chain existed, per organisation in the order they were
/// written, and records each chain's head.
async fn chain_existing_entries(conn: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    let rows = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT org_id, id, actor_id, action, target_type, target_id, details, request_id, \
             created_at FROM audit_log ORDER BY org_id, created_at, id",
        ))
        .await?;
    let update = match backend {
        DbBackend::Postgres => {
            "UPDATE audit_log SET seq = $1, prev_hash = $2, hash = $3, details_digest = $4 \
             WHERE org_id = $5 AND id = $6"
        }
        _ => {
            "UPDATE audit_log SET seq = ?1, prev_hash = ?2, hash = ?3, details_digest = ?4 \
             WHERE org_id = ?5 AND id = ?6"
        }
    };
    let head = match backend {
        DbBackend::Postgres => {
            "INSERT INTO audit_chain_heads (org_id, seq, hash) VALUES ($1, $2, $3)"
        }
        _ => "INSERT INTO audit_chain_heads (org_id, seq, hash) VALUES (?1, ?2, ?3)",
    };
    let mut current: Option<(Uuid, i64, String)> = None;
    for row in rows {
        let org_id: Uuid = row.try_get("", "org_id")?;
        let id: Uuid = row.try_get("", "id")?;
        let details: serde_json::Value = row.try_get("", "details")?;
        let action: String = row.try_get("", "action")?;
        let target_type: String = row.try_get("", "target_type")?;
        let request_id: Option<String> = row.try_get("", "request_id")?;
        let (seq, prev) = match &current {
            Some((org, seq, hash)) if *org == org_id => (seq + 1, Some(hash.clone())),
            _ => {
                if let Some((org, seq, hash)) = current.take() {
                    conn.execute_raw(Statement::from_sql_and_values(
                        backend,
                        head,
                        [org.into(), seq.into(), hash.into()],
                    ))
                    .await?;
                }
                (1, None)
            }
        };
        let digest = crate::chain::digest(&details);
        let hash = crate::chain::Link {
            org_id,
            seq,
            id,
            actor_id: row.try_get("", "actor_id")?,
            action: &action,
            target_type: &target_type,
            target_id: row.try_get("", "target_id")?,
            details_digest: &digest,
            request_id: request_id.as_deref(),
            created_at: row.try_get("", "created_at")?,
        }
        .hash(prev.as_deref());
        conn.execute_raw(Statement::from_sql_and_values(
            backend,
            update,
            [
                seq.into(),
                prev.into(),
                hash.clone().into(),
                digest.into(),
                org_id.into(),
                id.into(),
            ],
        ))
        .await?;
        current = Some((org_id, seq, hash));
    }
    if let Some((org, seq, hash)) = current {
        conn.execute_raw(Statement::from_sql_and_values(
            backend,
            head,
            [org.into(), seq.into(), hash.into()],
        ))
        .await?;
    }
    Ok(())
}
