//! Sign-in that organisations require: second factors of an account (a TOTP secret, recovery
//! codes, passkeys) and the state of a passkey or single sign-on ceremony between its two requests, all global
//! like the account; how each session was started (`sessions.method`); an organisation's policy
//! (`require_mfa`) and its single sign-on (`org_sso`, walled per tenant), and which provider
//! identity belongs to which account (`sso_identities`, global: one person, many organisations).

use sea_orm_migration::{prelude::*, schema::*};

use super::{TENANT_POLICY, add_columns, drop_columns, index, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Sessions {
    Table,
    Method,
}

#[derive(DeriveIden, Clone, Copy)]
enum Organizations {
    Table,
    RequireMfa,
}

#[derive(DeriveIden, Clone, Copy)]
enum TotpFactors {
    Table,
    UserId,
    Secret,
    CreatedAt,
    ConfirmedAt,
    LastStep,
}

#[derive(DeriveIden, Clone, Copy)]
enum RecoveryCodes {
    Table,
    UserId,
    CodeHash,
    CreatedAt,
    UsedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Passkeys {
    Table,
    Id,
    UserId,
    Name,
    CredentialId,
    Credential,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SignInCeremonies {
    Table,
    Id,
    Kind,
    UserId,
    // Not `org_id`: the table is global (ceremonies start before anyone is signed in), and
    // `org_id` marks a tenant table walled by row-level security.
    OrganizationId,
    State,
    ExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum OrgSso {
    Table,
    OrgId,
    Issuer,
    ClientId,
    ClientSecret,
    AllowedDomains,
    DefaultRole,
    Enforce,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SsoIdentities {
    Table,
    Issuer,
    Subject,
    UserId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            Sessions::Table,
            vec![string(Sessions::Method).default("password").to_owned()],
        )
        .await?;
        add_columns(
            manager,
            Organizations::Table,
            vec![boolean(Organizations::RequireMfa).default(false).to_owned()],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(TotpFactors::Table)
                    .col(uuid(TotpFactors::UserId).primary_key())
                    .col(text(TotpFactors::Secret))
                    .col(timestamp_with_time_zone(TotpFactors::CreatedAt))
                    .col(timestamp_with_time_zone_null(TotpFactors::ConfirmedAt))
                    // The last time step a code was accepted for: a code works once.
                    .col(big_integer_null(TotpFactors::LastStep))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .col(uuid(RecoveryCodes::UserId))
                    .col(string(RecoveryCodes::CodeHash))
                    .col(timestamp_with_time_zone(RecoveryCodes::CreatedAt))
                    .col(timestamp_with_time_zone_null(RecoveryCodes::UsedAt))
                    .primary_key(
                        Index::create()
                            .col(RecoveryCodes::UserId)
                            .col(RecoveryCodes::CodeHash),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Passkeys::Table)
                    .col(uuid(Passkeys::Id).primary_key())
                    .col(uuid(Passkeys::UserId))
                    .col(string(Passkeys::Name))
                    .col(string(Passkeys::CredentialId).unique_key())
                    .col(text(Passkeys::Credential))
                    .col(timestamp_with_time_zone(Passkeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(Passkeys::LastUsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_passkeys_user",
                Passkeys::Table,
                &[Passkeys::UserId],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SignInCeremonies::Table)
                    .col(uuid(SignInCeremonies::Id).primary_key())
                    .col(string(SignInCeremonies::Kind))
                    .col(uuid_null(SignInCeremonies::UserId))
                    .col(uuid_null(SignInCeremonies::OrganizationId))
                    .col(text(SignInCeremonies::State))
                    .col(timestamp_with_time_zone(SignInCeremonies::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_sign_in_ceremonies_expiry",
                SignInCeremonies::Table,
                &[SignInCeremonies::ExpiresAt],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OrgSso::Table)
                    .col(uuid(OrgSso::OrgId).primary_key())
                    .col(string(OrgSso::Issuer))
                    .col(string(OrgSso::ClientId))
                    .col(text(OrgSso::ClientSecret))
                    .col(json_binary(OrgSso::AllowedDomains))
                    .col(string(OrgSso::DefaultRole))
                    .col(boolean(OrgSso::Enforce))
                    .col(timestamp_with_time_zone(OrgSso::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        tenant_rls(manager, "org_sso", TENANT_POLICY, None).await?;
        manager
            .create_table(
                Table::create()
                    .table(SsoIdentities::Table)
                    .col(string(SsoIdentities::Issuer))
                    .col(string(SsoIdentities::Subject))
                    .col(uuid(SsoIdentities::UserId))
                    .col(timestamp_with_time_zone(SsoIdentities::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(SsoIdentities::Issuer)
                            .col(SsoIdentities::Subject),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_sso_identities_user",
                SsoIdentities::Table,
                &[SsoIdentities::UserId],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "sso_identities",
            "org_sso",
            "sign_in_ceremonies",
            "passkeys",
            "recovery_codes",
            "totp_factors",
        ] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        drop_columns(manager, Organizations::Table, &[Organizations::RequireMfa]).await?;
        drop_columns(manager, Sessions::Table, &[Sessions::Method]).await
    }
}
