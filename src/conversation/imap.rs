//! Polls each organisation's IMAP mailbox: every message Docket has not taken yet (by UID,
//! remembered per mailbox with its UIDVALIDITY) goes through `ingest`, one at a time, and the
//! UID is saved after each, so a restart neither loses nor repeats a message (and the
//! `Message-ID` de-duplication catches what a crash between the two would repeat). Messages
//! stay in the mailbox: Docket only reads.

use std::{sync::Arc, time::Duration};

use async_imap::Client;
use chrono::Utc;
use futures_util::StreamExt as _;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, IntoActiveModel};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::watch,
};
use uuid::Uuid;

use super::{Mailroom, ingest, settings};
use crate::{
    error::{Error, Result},
    store::Db,
};

/// Longest wait for the server at each step.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Polls every mailbox each `mailroom.imap_poll` until `stop` turns true.
pub async fn run(db: Db, mailroom: Mailroom, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(err) = poll_all(&db, &mailroom).await {
            tracing::warn!(error = ?err, "polling IMAP mailboxes failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(mailroom.imap_poll) => {}
            _ = stop.changed() => break,
        }
    }
}

/// Looks into every configured mailbox once; returns how many messages were taken. A mailbox
/// that fails records why (shown in its settings) and does not stop the others.
pub async fn poll_all(db: &Db, mailroom: &Mailroom) -> Result<usize> {
    let mut taken = 0;
    for mailbox in settings::mailboxes(db).await? {
        let org_id = mailbox.org_id;
        let outcome = tokio::time::timeout(TIMEOUT * 20, poll_one(db, mailroom, &mailbox)).await;
        let error = match outcome {
            Ok(Ok(n)) => {
                taken += n;
                None
            }
            Ok(Err(err)) => Some(err.to_string()),
            Err(_) => Some("the mailbox took too long to answer".to_owned()),
        };
        if let Some(e) = &error {
            tracing::warn!(org = %org_id, error = %e, "IMAP mailbox failed");
        }
        let tx = db.write_org(org_id).await?;
        let mut m = settings::load(&tx).await?.into_active_model();
        m.imap_checked_at = Set(Some(Utc::now()));
        m.imap_error = Set(error);
        m.update(tx.conn()).await?;
        tx.commit().await?;
    }
    Ok(taken)
}

fn failed(what: &str, err: impl std::fmt::Display) -> Error {
    Error::internal(anyhow::anyhow!("{what}: {err}"))
}

async fn poll_one(
    db: &Db,
    mailroom: &Mailroom,
    mailbox: &settings::entity::Model,
) -> Result<usize> {
    let (Some(host), Some(port), Some(username), Some(sealed)) = (
        mailbox.imap_host.clone(),
        mailbox.imap_port,
        mailbox.imap_username.clone(),
        mailbox.imap_password.clone(),
    ) else {
        return Ok(0);
    };
    let password = mailroom.keys.vault.open(&sealed).ok_or_else(|| {
        failed(
            "the stored mailbox password cannot be read",
            "the server's key changed; enter the password again",
        )
    })?;
    let port = u16::try_from(port).map_err(|e| failed("port", e))?;
    let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|e| failed("connecting", e))?
        .map_err(|e| failed("connecting", e))?;
    let folder = mailbox
        .imap_folder
        .clone()
        .unwrap_or_else(|| "INBOX".into());
    let target = Target {
        org_id: mailbox.org_id,
        folder,
        uid_validity: mailbox.imap_uid_validity,
        last_uid: mailbox.imap_last_uid,
    };
    if mailbox.imap_tls {
        let roots = tokio_rustls::rustls::RootCertStore::from_iter(
            webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
        );
        let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| failed("TLS", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| failed("TLS server name", e))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| failed("TLS", e))?;
        take_new(db, mailroom, tls, &username, &password, target).await
    } else {
        take_new(db, mailroom, tcp, &username, &password, target).await
    }
}

/// Which mailbox, and how far Docket got in it.
struct Target {
    org_id: Uuid,
    folder: String,
    uid_validity: Option<i64>,
    last_uid: Option<i64>,
}

async fn take_new<S>(
    db: &Db,
    mailroom: &Mailroom,
    stream: S,
    username: &str,
    password: &str,
    target: Target,
) -> Result<usize>
where
    S: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let mut client = Client::new(stream);
    tokio::time::timeout(TIMEOUT, client.read_response())
        .await
        .map_err(|e| failed("greeting", e))?
        .map_err(|e| failed("greeting", e))?
        .ok_or_else(|| failed("greeting", "the server closed the connection"))?;
    let mut session = client
        .login(username, password)
        .await
        .map_err(|(e, _)| failed("signing in", e))?;
    let selected = session
        .select(&target.folder)
        .await
        .map_err(|e| failed("opening the folder", e))?;
    let validity = selected.uid_validity.map(i64::from);
    // A new UIDVALIDITY renumbers the mailbox: start over (duplicates are caught by id).
    let last = if validity == target.uid_validity {
        target.last_uid.unwrap_or(0)
    } else {
        0
    };
    let mut uids: Vec<u32> = session
        .uid_search(format!("UID {}:*", last + 1))
        .await
        .map_err(|e| failed("searching", e))?
        .into_iter()
        .filter(|uid| i64::from(*uid) > last)
        .collect();
    uids.sort_unstable();
    let mut taken = 0;
    for uid in uids {
        let raw = {
            let mut fetches = session
                .uid_fetch(uid.to_string(), "(UID RFC822)")
                .await
                .map_err(|e| failed("fetching", e))?;
            let mut raw = None;
            while let Some(fetch) = fetches.next().await {
                let fetch = fetch.map_err(|e| failed("fetching", e))?;
                if fetch.uid == Some(uid) {
                    raw = fetch.body().map(<[u8]>::to_vec);
                }
            }
            raw
        };
        if let Some(raw) = raw {
            match ingest::ingest(db, mailroom, target.org_id, ingest::Route::Imap, &raw).await {
                // Recorded in the ingest log; the message is done with either way.
                Ok(_) | Err(Error::Unprocessable { .. } | Error::TooLarge { .. }) => taken += 1,
                Err(err) => return Err(err),
            }
        }
        let tx = db.write_org(target.org_id).await?;
        let mut m = settings::load(&tx).await?.into_active_model();
        m.imap_uid_validity = Set(validity);
        m.imap_last_uid = Set(Some(i64::from(uid)));
        m.update(tx.conn()).await?;
        tx.commit().await?;
    }
    if validity != target.uid_validity {
        let tx = db.write_org(target.org_id).await?;
        let mut m = settings::load(&tx).await?.into_active_model();
        m.imap_uid_validity = Set(validity);
        m.update(tx.conn()).await?;
        tx.commit().await?;
    }
    let _ = session.logout().await;
    Ok(taken)
}
