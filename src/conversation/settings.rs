//! Each organisation's mail settings: its inbound address (a path secret, rotatable), whether
//! new tickets by mail get an acknowledgement, the project inbound mail files into, and the
//! IMAP mailbox Docket polls (its password sealed at rest).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Mailroom;
use crate::{
    access::{self, Action, TenantCtx},
    audit,
    error::{Error, Result, Validator},
    store::{Db, TenantTx},
    tenancy, text,
    work::projects,
};

pub(crate) mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "mail_settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        pub token_generation: i32,
        pub acknowledge: bool,
        pub inbound_project_id: Option<Uuid>,
        pub imap_host: Option<String>,
        pub imap_port: Option<i32>,
        pub imap_tls: bool,
        pub imap_username: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub imap_password: Option<String>,
        pub imap_folder: Option<String>,
        pub imap_uid_validity: Option<i64>,
        pub imap_last_uid: Option<i64>,
        pub imap_checked_at: Option<DateTimeUtc>,
        #[sea_orm(column_type = "Text", nullable)]
        pub imap_error: Option<String>,
        pub updated_at: DateTimeUtc,
        pub imap_authserv_id: Option<String>,
        pub imap_allow_plaintext: bool,
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

/// The IMAP mailbox, as admins see it (never its password).
#[derive(Debug, Serialize, ToSchema)]
pub struct ImapMailbox {
    pub host: String,
    pub port: u16,
    /// TLS from the start (`imaps`); otherwise plain IMAP, which sends the password in clear
    /// and is used only when `allow_unencrypted` says so.
    pub tls: bool,
    /// Plain-text sign-in allowed (only with `tls: false`).
    pub allow_unencrypted: bool,
    pub username: String,
    pub folder: String,
    pub password_set: bool,
    /// The `authserv-id` of the mail system that receives this mailbox's mail: its
    /// `Authentication-Results` decide whether a mail is authenticated (copied-in addresses
    /// join the conversation, an acknowledgement is sent). None: no mail from this mailbox is.
    pub authserv_id: Option<String>,
    pub last_checked_at: Option<DateTime<Utc>>,
    /// Why the last look failed, if it did.
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MailSettings {
    /// The path secret of the inbound address: `POST /api/v1/inbound/email/{inbound_token}`.
    pub inbound_token: String,
    /// Where an MTA delivers raw messages (relative to the server's address).
    pub inbound_path: String,
    /// Mail new tickets an acknowledgement (at most a few per sender per day).
    pub acknowledge: bool,
    /// The project inbound mail files tickets into; empty: a project `MAIL` made on first use.
    pub inbound_project_id: Option<Uuid>,
    pub imap: Option<ImapMailbox>,
}

/// `PUT /mail/settings`: the whole set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailSettingsUpdate {
    pub acknowledge: bool,
    pub inbound_project_id: Option<Uuid>,
    /// `null` stops polling.
    pub imap: Option<ImapMailboxUpdate>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImapMailboxUpdate {
    /// A public host name or address (loopback, private and similar addresses are refused,
    /// as for webhooks, unless the operator allowed their network).
    pub host: String,
    #[schema(minimum = 1, maximum = 65535)]
    pub port: u16,
    pub tls: bool,
    /// Must be true to use `tls: false`: the password then travels in clear.
    #[serde(default)]
    pub allow_unencrypted: bool,
    pub username: String,
    /// Leave out to keep the stored password: only while host, port, TLS and user stay the
    /// same (the password is never sent anywhere it was not entered for).
    pub password: Option<String>,
    /// Defaults to `INBOX`.
    pub folder: Option<String>,
    /// See [`ImapMailbox::authserv_id`].
    pub authserv_id: Option<String>,
}

fn view(mailroom: &Mailroom, m: &entity::Model) -> MailSettings {
    let token = mailroom.keys.inbound_token(m.org_id, m.token_generation);
    MailSettings {
        inbound_path: format!("/api/v1/inbound/email/{token}"),
        inbound_token: token,
        acknowledge: m.acknowledge,
        inbound_project_id: m.inbound_project_id,
        imap: m.imap_host.clone().map(|host| ImapMailbox {
            host,
            port: m
                .imap_port
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(993),
            tls: m.imap_tls,
            allow_unencrypted: m.imap_allow_plaintext,
            username: m.imap_username.clone().unwrap_or_default(),
            folder: m.imap_folder.clone().unwrap_or_else(|| "INBOX".into()),
            password_set: m.imap_password.is_some(),
            authserv_id: m.imap_authserv_id.clone(),
            last_checked_at: m.imap_checked_at,
            last_error: m.imap_error.clone(),
        }),
    }
}

/// The organisation's settings: the stored row, or the defaults before anything was stored.
async fn current(tx: &TenantTx) -> Result<entity::Model> {
    Ok(tx
        .find::<entity::Entity>()
        .one(tx.conn())
        .await?
        .unwrap_or_else(|| defaults(tx.org_id())))
}

fn defaults(org_id: Uuid) -> entity::Model {
    entity::Model {
        org_id,
        token_generation: 0,
        acknowledge: false,
        inbound_project_id: None,
        imap_host: None,
        imap_port: None,
        imap_tls: true,
        imap_username: None,
        imap_password: None,
        imap_folder: None,
        imap_uid_validity: None,
        imap_last_uid: None,
        imap_checked_at: None,
        imap_error: None,
        updated_at: Utc::now(),
        imap_authserv_id: None,
        imap_allow_plaintext: false,
    }
}

/// The organisation's settings row, stored with the defaults on first use (to change it).
pub(crate) async fn load(tx: &TenantTx) -> Result<entity::Model> {
    if let Some(m) = tx.find::<entity::Entity>().one(tx.conn()).await? {
        return Ok(m);
    }
    let fresh = defaults(tx.org_id());
    entity::Entity::insert(fresh.clone().into_active_model())
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(entity::Column::OrgId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(tx.conn())
        .await?;
    Ok(tx
        .find::<entity::Entity>()
        .one(tx.conn())
        .await?
        .unwrap_or(fresh))
}

pub async fn get(db: &Db, mailroom: &Mailroom, ctx: &TenantCtx) -> Result<MailSettings> {
    access::authorize(ctx, Action::MailManage)?;
    let tx = db.read(ctx).await?;
    let m = current(&tx).await?;
    tx.commit().await?;
    Ok(view(mailroom, &m))
}

pub async fn update(
    db: &Db,
    mailroom: &Mailroom,
    ctx: &TenantCtx,
    req: MailSettingsUpdate,
) -> Result<MailSettings> {
    access::authorize(ctx, Action::MailManage)?;
    let mut v = Validator::default();
    if let Some(imap) = &req.imap {
        text::check_line(&mut v, "imap.host", &imap.host, 253);
        v.check(
            imap.host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)),
            "imap.host",
            "must be a host name or an IP address",
        );
        v.check(imap.port > 0, "imap.port", "must be between 1 and 65535");
        text::check_line(&mut v, "imap.username", &imap.username, 320);
        if let Some(pw) = &imap.password {
            v.check(
                !pw.is_empty() && pw.len() <= 1024,
                "imap.password",
                "must be 1 to 1024 bytes",
            );
        }
        if let Some(folder) = &imap.folder {
            text::check_line(&mut v, "imap.folder", folder, 200);
        }
        if let Some(id) = &imap.authserv_id {
            text::check_line(&mut v, "imap.authserv_id", id, 253);
        }
        v.check(
            imap.tls || imap.allow_unencrypted,
            "imap.tls",
            "plain IMAP sends the password in clear: use TLS, or set allow_unencrypted",
        );
        // A literal address is judged now; a name, each time Docket connects.
        let host = imap
            .host
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            v.check(
                mailroom.guard.permits(ip),
                "imap.host",
                &format!("this address {}", crate::outbound::NOT_ALLOWED),
            );
        }
    }
    v.finish()?;
    let tx = db.write(ctx).await?;
    tenancy::ensure_still_acting(&tx, ctx).await?;
    if let Some(project) = req.inbound_project_id {
        match projects::find(&tx, project).await {
            Err(Error::NotFound(_)) => {
                return Err(Error::invalid("inbound_project_id", "no such project"));
            }
            other => other?,
        };
    }
    let current = load(&tx).await?;
    let mut m = current.clone().into_active_model();
    m.acknowledge = Set(req.acknowledge);
    m.inbound_project_id = Set(req.inbound_project_id);
    match req.imap {
        None => {
            m.imap_host = Set(None);
            m.imap_port = Set(None);
            m.imap_username = Set(None);
            m.imap_password = Set(None);
            m.imap_folder = Set(None);
            m.imap_uid_validity = Set(None);
            m.imap_last_uid = Set(None);
            m.imap_error = Set(None);
            m.imap_authserv_id = Set(None);
            m.imap_allow_plaintext = Set(false);
        }
        Some(imap) => {
            let host = imap.host.trim().to_lowercase();
            let username = imap.username.trim().to_owned();
            let folder = imap
                .folder
                .map_or_else(|| "INBOX".into(), |f| f.trim().to_owned());
            let same_box = current.imap_host.as_deref() == Some(host.as_str())
                && current.imap_username.as_deref() == Some(username.as_str());
            // The stored password goes only where it was entered for.
            let same_destination = same_box
                && current.imap_port == Some(i32::from(imap.port))
                && current.imap_tls == imap.tls;
            let password = match imap.password {
                Some(pw) => Some(mailroom.keys.vault.seal(&pw)?),
                None if same_destination => current.imap_password.clone(),
                None if same_box => {
                    return Err(Error::invalid(
                        "imap.password",
                        "enter the password again: the port or TLS changed",
                    ));
                }
                None => {
                    return Err(Error::invalid(
                        "imap.password",
                        "a new mailbox needs its password",
                    ));
                }
            };
            if !same_box || current.imap_folder.as_deref() != Some(folder.as_str()) {
                // Another mailbox: start from what it holds now.
                m.imap_uid_validity = Set(None);
                m.imap_last_uid = Set(None);
            }
            m.imap_host = Set(Some(host));
            m.imap_port = Set(Some(i32::from(imap.port)));
            m.imap_tls = Set(imap.tls);
            m.imap_username = Set(Some(username));
            m.imap_password = Set(password);
            m.imap_folder = Set(Some(folder));
            m.imap_error = Set(None);
            m.imap_allow_plaintext = Set(!imap.tls && imap.allow_unencrypted);
            m.imap_authserv_id = Set(imap
                .authserv_id
                .map(|id| id.trim().to_lowercase())
                .filter(|id| !id.is_empty()));
        }
    }
    m.updated_at = Set(Utc::now());
    let saved = m.update(tx.conn()).await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "mail_settings.updated",
        "organization",
        Some(ctx.org_id),
        serde_json::json!({
            "acknowledge": saved.acknowledge,
            "inbound_project_id": saved.inbound_project_id,
            "imap_host": saved.imap_host,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(view(mailroom, &saved))
}

/// A new inbound address; the old one stops working at once.
pub async fn rotate_inbound_token(
    db: &Db,
    mailroom: &Mailroom,
    ctx: &TenantCtx,
) -> Result<MailSettings> {
    access::authorize(ctx, Action::MailManage)?;
    let tx = db.write(ctx).await?;
    tenancy::ensure_still_acting(&tx, ctx).await?;
    let current = load(&tx).await?;
    let next = current.token_generation.saturating_add(1);
    let mut m = current.into_active_model();
    m.token_generation = Set(next);
    m.updated_at = Set(Utc::now());
    let saved = m.update(tx.conn()).await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "mail_settings.inbound_token_rotated",
        "organization",
        Some(ctx.org_id),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(view(mailroom, &saved))
}

/// The organisation an inbound token opens, if it is current (checked before a message is read).
pub(crate) async fn org_of_token(db: &Db, mailroom: &Mailroom, token: &str) -> Result<Uuid> {
    let not_found = || Error::NotFound("inbound_address");
    let org_id = crate::mail::MailKeys::inbound_token_org(token).ok_or_else(not_found)?;
    let tx = db.read_org(org_id).await?;
    let generation = current(&tx).await?.token_generation;
    // An organisation that does not exist has no settings and fails here too: its token
    // would need the server's key.
    let exists = tenancy::organization(&tx).await.is_ok();
    tx.commit().await?;
    let want = mailroom.keys.inbound_token(org_id, generation);
    let same: bool = want.len() == token.len()
        && want
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same && exists {
        Ok(org_id)
    } else {
        Err(not_found())
    }
}

/// The mailboxes to poll: organisations with IMAP settings (maintenance scope, read only).
pub(crate) async fn mailboxes(db: &Db) -> Result<Vec<entity::Model>> {
    let tx = db.maintenance().await?;
    let rows = entity::Entity::find()
        .filter(entity::Column::ImapHost.is_not_null())
        // A deleted organisation takes no mail: its mailbox is left alone until it is restored.
        .filter(sea_orm::sea_query::Expr::cust(
            "NOT EXISTS (SELECT 1 FROM organizations o \
             WHERE o.id = mail_settings.org_id AND o.deleted_at IS NOT NULL)",
        ))
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(rows)
}
