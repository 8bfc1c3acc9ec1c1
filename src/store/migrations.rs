//! The one set of migrations, written once with the portable schema builder. PostgreSQL-only
//! extras (row-level security) are applied through `tenant_table` and skipped on SQLite.

use sea_orm_migration::{prelude::*, schema::*};

mod m0002_work;
mod m0003_events;
mod m0004_append_only;
mod m0005_saved_views;
mod m0006_mail;
mod m0007_attachments;
mod m0008_api_tokens;
mod m0009_webhooks;
mod m0010_sla;
mod m0011_search;
mod m0012_session_entry;
mod m0013_outbox_claim_order;
mod m0014_outbox_due_index;
mod m0015_stream_notify_per_statement;
mod m0016_plan_cache_mode;
mod m0017_mail_hardening;
mod m0018_signup_confirmations;
mod m0019_contacts;
mod m0020_structure;
mod m0021_sign_in;
mod m0022_data_rights;
mod m0023_retention;
mod m0024_plans;
mod m0025_export_claims;
mod m0026_billing;

pub(crate) use m0004_append_only::APPEND_ONLY;
pub(crate) use m0012_session_entry::SESSION_ROLE_SQLITE;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_foundation::Migration),
            Box::new(m0002_work::Migration),
            Box::new(m0003_events::Migration),
            Box::new(m0004_append_only::Migration),
            Box::new(m0005_saved_views::Migration),
            Box::new(m0006_mail::Migration),
            Box::new(m0007_attachments::Migration),
            Box::new(m0008_api_tokens::Migration),
            Box::new(m0009_webhooks::Migration),
            Box::new(m0010_sla::Migration),
            Box::new(m0011_search::Migration),
            Box::new(m0012_session_entry::Migration),
            Box::new(m0013_outbox_claim_order::Migration),
            Box::new(m0014_outbox_due_index::Migration),
            Box::new(m0015_stream_notify_per_statement::Migration),
            Box::new(m0016_plan_cache_mode::Migration),
            Box::new(m0017_mail_hardening::Migration),
            Box::new(m0018_signup_confirmations::Migration),
            Box::new(m0019_contacts::Migration),
            Box::new(m0020_structure::Migration),
            Box::new(m0021_sign_in::Migration),
            Box::new(m0022_data_rights::Migration),
            Box::new(m0023_retention::Migration),
            Box::new(m0024_plans::Migration),
            Box::new(m0025_export_claims::Migration),
            Box::new(m0026_billing::Migration),
        ]
    }
}

/// Adds columns to `table`, one statement each (SQLite adds one column per `ALTER TABLE`).
async fn add_columns<T: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    table: T,
    columns: Vec<ColumnDef>,
) -> Result<(), DbErr> {
    for mut column in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// Drops columns of `table`, one statement each.
async fn drop_columns<T: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    table: T,
    columns: &[T],
) -> Result<(), DbErr> {
    for column in columns {
        manager
            .alter_table(Table::alter().table(table).drop_column(*column).to_owned())
            .await?;
    }
    Ok(())
}

/// A plain index over `cols` of `table`.
fn index<T: IntoIden + Copy + 'static>(name: &str, table: T, cols: &[T]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(name).table(table);
    for c in cols {
        idx.col(*c);
    }
    idx.to_owned()
}

/// How a tenant table is walled off on PostgreSQL. Tables that key the tenant by another
/// column (organizations, memberships) pass their own policy text.
pub(crate) const TENANT_POLICY: &str =
    "org_id = NULLIF(current_setting('app.org_id', true), '')::uuid";

/// Enables and forces row-level security on a tenant table (PostgreSQL only). `read_extra`
/// widens only what may be read (e.g. a user's own memberships across organisations).
pub(crate) async fn tenant_rls(
    manager: &SchemaManager<'_>,
    table: &str,
    policy: &str,
    read_extra: Option<&str>,
) -> Result<(), DbErr> {
    if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    let conn = manager.get_connection();
    conn.execute_unprepared(&format!(
        "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY; \
         ALTER TABLE {table} FORCE ROW LEVEL SECURITY; \
         CREATE POLICY tenant_isolation ON {table} FOR ALL USING ({policy}) WITH CHECK ({policy});"
    ))
    .await?;
    if let Some(extra) = read_extra {
        conn.execute_unprepared(&format!(
            "CREATE POLICY own_rows_readable ON {table} FOR SELECT USING ({extra});"
        ))
        .await?;
    }
    Ok(())
}

/// The maintenance scope (`app.maintenance = 'on'`, see `Db::maintenance`) may read and delete
/// rows of every tenant in `table`: for purging what has expired, never for serving a request.
pub(crate) async fn maintenance_rls(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    let scope = "current_setting('app.maintenance', true) = 'on'";
    manager
        .get_connection()
        .execute_unprepared(&format!(
            "CREATE POLICY maintenance_read ON {table} FOR SELECT USING ({scope}); \
             CREATE POLICY maintenance_purge ON {table} FOR DELETE USING ({scope});"
        ))
        .await?;
    Ok(())
}

pub(crate) mod m0001_foundation {
    use super::*;

    #[derive(DeriveMigrationName)]
    pub struct Migration;

    #[derive(DeriveIden)]
    pub enum Users {
        Table,
        Id,
        Email,
        Name,
        PasswordHash,
        CreatedAt,
        UpdatedAt,
    }

    #[derive(DeriveIden)]
    pub enum Organizations {
        Table,
        Id,
        Name,
        Slug,
        CreatedAt,
        UpdatedAt,
    }

    #[derive(DeriveIden)]
    pub enum Memberships {
        Table,
        OrgId,
        UserId,
        Role,
        Active,
        CreatedAt,
        UpdatedAt,
    }

    #[derive(DeriveIden)]
    pub enum Sessions {
        Table,
        OrgId,
        Id,
        UserId,
        CreatedAt,
        ExpiresAt,
        RevokedAt,
        RevokedReason,
    }

    #[derive(DeriveIden)]
    pub enum RefreshTokens {
        Table,
        OrgId,
        TokenHash,
        SessionId,
        CreatedAt,
        UsedAt,
    }

    #[derive(DeriveIden)]
    pub enum LoginThrottle {
        Table,
        Key,
        Failures,
        WindowStartedAt,
        LockedUntil,
    }

    #[derive(DeriveIden)]
    pub enum AuditLog {
        Table,
        OrgId,
        Id,
        ActorId,
        Action,
        TargetType,
        TargetId,
        Details,
        RequestId,
        CreatedAt,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            // Identity: global, a person may belong to several organisations.
            manager
                .create_table(
                    Table::create()
                        .table(Users::Table)
                        .col(uuid(Users::Id).primary_key())
                        .col(string_uniq(Users::Email))
                        .col(string(Users::Name))
                        .col(string(Users::PasswordHash))
                        .col(timestamp_with_time_zone(Users::CreatedAt))
                        .col(timestamp_with_time_zone(Users::UpdatedAt))
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(LoginThrottle::Table)
                        .col(string(LoginThrottle::Key).primary_key())
                        .col(integer(LoginThrottle::Failures))
                        .col(timestamp_with_time_zone(LoginThrottle::WindowStartedAt))
                        .col(timestamp_with_time_zone_null(LoginThrottle::LockedUntil))
                        .to_owned(),
                )
                .await?;

            // Tenancy.
            manager
                .create_table(
                    Table::create()
                        .table(Organizations::Table)
                        .col(uuid(Organizations::Id).primary_key())
                        .col(string(Organizations::Name))
                        .col(string_uniq(Organizations::Slug))
                        .col(timestamp_with_time_zone(Organizations::CreatedAt))
                        .col(timestamp_with_time_zone(Organizations::UpdatedAt))
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Memberships::Table)
                        .col(uuid(Memberships::OrgId))
                        .col(uuid(Memberships::UserId))
                        .col(string(Memberships::Role))
                        .col(boolean(Memberships::Active))
                        .col(timestamp_with_time_zone(Memberships::CreatedAt))
                        .col(timestamp_with_time_zone(Memberships::UpdatedAt))
                        .primary_key(
                            Index::create()
                                .col(Memberships::OrgId)
                                .col(Memberships::UserId),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .from(Memberships::Table, Memberships::OrgId)
                                .to(Organizations::Table, Organizations::Id)
                                .on_delete(ForeignKeyAction::Cascade),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .from(Memberships::Table, Memberships::UserId)
                                .to(Users::Table, Users::Id)
                                .on_delete(ForeignKeyAction::Cascade),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("idx_memberships_user")
                        .table(Memberships::Table)
                        .col(Memberships::UserId)
                        .to_owned(),
                )
                .await?;

            // Sessions belong to one organisation: the refresh token names it, so even token
            // lookups run inside the tenant wall.
            manager
                .create_table(
                    Table::create()
                        .table(Sessions::Table)
                        .col(uuid(Sessions::OrgId))
                        .col(uuid(Sessions::Id))
                        .col(uuid(Sessions::UserId))
                        .col(timestamp_with_time_zone(Sessions::CreatedAt))
                        .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                        .col(timestamp_with_time_zone_null(Sessions::RevokedAt))
                        .col(string_null(Sessions::RevokedReason))
                        .primary_key(Index::create().col(Sessions::OrgId).col(Sessions::Id))
                        .foreign_key(
                            ForeignKey::create()
                                .from(Sessions::Table, (Sessions::OrgId, Sessions::UserId))
                                .to(
                                    Memberships::Table,
                                    (Memberships::OrgId, Memberships::UserId),
                                )
                                .on_delete(ForeignKeyAction::Cascade),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(RefreshTokens::Table)
                        .col(uuid(RefreshTokens::OrgId))
                        .col(string(RefreshTokens::TokenHash))
                        .col(uuid(RefreshTokens::SessionId))
                        .col(timestamp_with_time_zone(RefreshTokens::CreatedAt))
                        .col(timestamp_with_time_zone_null(RefreshTokens::UsedAt))
                        .primary_key(
                            Index::create()
                                .col(RefreshTokens::OrgId)
                                .col(RefreshTokens::TokenHash),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .from(
                                    RefreshTokens::Table,
                                    (RefreshTokens::OrgId, RefreshTokens::SessionId),
                                )
                                .to(Sessions::Table, (Sessions::OrgId, Sessions::Id))
                                .on_delete(ForeignKeyAction::Cascade),
                        )
                        .to_owned(),
                )
                .await?;

            // Audit.
            manager
                .create_table(
                    Table::create()
                        .table(AuditLog::Table)
                        .col(uuid(AuditLog::OrgId))
                        .col(uuid(AuditLog::Id))
                        .col(uuid_null(AuditLog::ActorId))
                        .col(string(AuditLog::Action))
                        .col(string(AuditLog::TargetType))
                        .col(uuid_null(AuditLog::TargetId))
                        .col(json_binary(AuditLog::Details))
                        .col(string_null(AuditLog::RequestId))
                        .col(timestamp_with_time_zone(AuditLog::CreatedAt))
                        .primary_key(Index::create().col(AuditLog::OrgId).col(AuditLog::Id))
                        .foreign_key(
                            ForeignKey::create()
                                .from(AuditLog::Table, AuditLog::OrgId)
                                .to(Organizations::Table, Organizations::Id)
                                .on_delete(ForeignKeyAction::Cascade),
                        )
                        .to_owned(),
                )
                .await?;

            let org = "id = NULLIF(current_setting('app.org_id', true), '')::uuid";
            let own_user = "user_id = NULLIF(current_setting('app.user_id', true), '')::uuid";
            let own_orgs = "id IN (SELECT org_id FROM memberships WHERE user_id = \
                            NULLIF(current_setting('app.user_id', true), '')::uuid)";
            tenant_rls(manager, "organizations", org, Some(own_orgs)).await?;
            tenant_rls(manager, "memberships", TENANT_POLICY, Some(own_user)).await?;
            for table in ["sessions", "refresh_tokens", "audit_log"] {
                tenant_rls(manager, table, TENANT_POLICY, None).await?;
            }
            Ok(())
        }
    }
}
