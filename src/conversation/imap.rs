//! Polls each organisation's IMAP mailbox: every message Docket has not taken yet (by UID,
//! remembered per mailbox with its UIDVALIDITY) goes through `ingest`, one at a time, and the
//! UID is saved after each, so a restart neither loses nor repeats a message (and the
//! `Message-ID` de-duplication catches what a crash between the two would repeat). Messages
//! stay in the mailbox: Docket only reads.
//!
//! A mailbox is a destination its organisation chose, so it gets the walls of any such
//! connection: the SSRF guard (public addresses only, the operator's allow list aside), TLS
//! unless the admin allowed plain text, a timeout on every step, and a byte budget on what the
//! server may send for one message. Several mailboxes are looked into at once, so a slow one
//! delays nobody else's mail. What the admin sees of a failure says which step failed, never
//! what the server sent.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use async_imap::Client;
use chrono::Utc;
use futures_util::{StreamExt as _, TryStreamExt as _};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, IntoActiveModel};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::watch,
};
use uuid::Uuid;

use super::{Mailroom, RawMail, ingest, settings};
use crate::{
    error::{Error, Result},
    store::Db,
};

/// Longest wait for the server at each step: connecting, TLS, the greeting, signing in,
/// opening the folder, searching, and each message.
const STEP: Duration = Duration::from_secs(30);
/// Longest one look into one mailbox may take, all its messages included.
const WHOLE_LOOK: Duration = Duration::from_secs(600);
/// Mailboxes looked into at once.
const AT_ONCE: usize = 8;
/// Attempts at taking one message that fails with an error, before it is logged as failed and
/// passed over.
const ATTEMPTS: u32 = 3;

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

/// Looks into every configured mailbox once, [`AT_ONCE`] at a time; returns how many messages
/// were taken. A mailbox that fails records why (shown in its settings) and does not stop or
/// delay the others.
pub async fn poll_all(db: &Db, mailroom: &Mailroom) -> Result<usize> {
    let looks = futures_util::stream::iter(settings::mailboxes(db).await?)
        .map(|mailbox| look(db, mailroom, mailbox))
        .buffer_unordered(AT_ONCE);
    let outcomes: Vec<Result<usize>> = looks.collect().await;
    let mut taken = 0;
    for outcome in outcomes {
        taken += outcome?;
    }
    Ok(taken)
}

/// One look into one mailbox, and what it found recorded on the mailbox's settings.
async fn look(db: &Db, mailroom: &Mailroom, mailbox: settings::entity::Model) -> Result<usize> {
    let org_id = mailbox.org_id;
    let outcome = tokio::time::timeout(WHOLE_LOOK, poll_one(db, mailroom, &mailbox)).await;
    let (taken, error) = match outcome {
        Ok(Ok(n)) => (n, None),
        Ok(Err(Failure(why))) => (0, Some(why)),
        Err(_) => (0, Some("the mailbox took too long to answer".to_owned())),
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
    Ok(taken)
}

/// Why a look failed, in words the admin sees: the step, never the server's own bytes.
#[derive(Debug)]
struct Failure(String);

impl Failure {
    /// `step` failed; `detail` (which may carry what the server sent) goes to the server's log
    /// only.
    fn at(step: &str, detail: impl std::fmt::Display) -> Self {
        tracing::debug!(step, detail = %detail, "IMAP step failed");
        Failure(step.to_owned())
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        tracing::warn!(error = %err, "taking mail from an IMAP mailbox failed");
        Failure("taking the mail failed; it will be tried again".to_owned())
    }
}

/// Runs one step under [`STEP`].
async fn step<T, E: std::fmt::Display>(
    what: &str,
    work: impl Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, Failure> {
    match tokio::time::timeout(STEP, work).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(err)) => Err(Failure::at(what, err)),
        Err(_) => Err(Failure::at(what, "timed out")),
    }
}

const COULD_NOT_CONNECT: &str = "could not connect to the mailbox";

async fn poll_one(
    db: &Db,
    mailroom: &Mailroom,
    mailbox: &settings::entity::Model,
) -> std::result::Result<usize, Failure> {
    let (Some(host), Some(port), Some(username), Some(sealed)) = (
        mailbox.imap_host.clone(),
        mailbox.imap_port,
        mailbox.imap_username.clone(),
        mailbox.imap_password.clone(),
    ) else {
        return Ok(0);
    };
    if !mailbox.imap_tls && !mailbox.imap_allow_plaintext {
        return Err(Failure(
            "the mailbox is set to plain IMAP without allowing unencrypted sign-in: turn on \
             TLS, or allow it"
                .into(),
        ));
    }
    let password = mailroom.keys.vault.open(&sealed).ok_or_else(|| {
        Failure(
            "the stored mailbox password cannot be read (the server's key changed); enter it \
             again"
                .into(),
        )
    })?;
    let port = u16::try_from(port).map_err(|e| Failure::at(COULD_NOT_CONNECT, e))?;
    // The guard sees every address the name has; the connection goes to one it allowed.
    let addresses = step(COULD_NOT_CONNECT, mailroom.guard.resolve(&host, port))
        .await
        .map_err(|_| {
            Failure(format!(
                "could not connect to the mailbox: {host} {}",
                crate::outbound::NOT_ALLOWED
            ))
        })?;
    let tcp = step(COULD_NOT_CONNECT, TcpStream::connect(&addresses[..])).await?;
    let target = Target {
        org_id: mailbox.org_id,
        folder: mailbox
            .imap_folder
            .clone()
            .unwrap_or_else(|| "INBOX".into()),
        uid_validity: mailbox.imap_uid_validity,
        last_uid: mailbox.imap_last_uid,
    };
    let budget = Budget::new(mailroom.max_email_bytes);
    if mailbox.imap_tls {
        let roots = tokio_rustls::rustls::RootCertStore::from_iter(
            webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
        );
        let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::at("TLS", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| Failure::at(COULD_NOT_CONNECT, e))?;
        let tls = step(
            "could not connect to the mailbox over TLS",
            tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await?;
        let stream = Budgeted::new(tls, budget.clone());
        take_new(db, mailroom, stream, budget, &username, &password, target).await
    } else {
        let stream = Budgeted::new(tcp, budget.clone());
        take_new(db, mailroom, stream, budget, &username, &password, target).await
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
    budget: Budget,
    username: &str,
    password: &str,
    target: Target,
) -> std::result::Result<usize, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let mut client = Client::new(stream);
    step(COULD_NOT_CONNECT, client.read_response())
        .await?
        .ok_or_else(|| Failure::at(COULD_NOT_CONNECT, "closed before its greeting"))?;
    let login = tokio::time::timeout(STEP, client.login(username, password)).await;
    let mut session = match login {
        Ok(Ok(session)) => session,
        Ok(Err((err, _))) => {
            return Err(Failure::at(
                "signing in failed: check the user name and the password",
                err,
            ));
        }
        Err(_) => return Err(Failure::at("signing in timed out", "timed out")),
    };
    let selected = step(
        "the folder could not be opened",
        session.select(&target.folder),
    )
    .await?;
    let validity = selected.uid_validity.map(i64::from);
    // A new UIDVALIDITY renumbers the mailbox: start over (duplicates are caught by id).
    let last = if validity == target.uid_validity {
        target.last_uid.unwrap_or(0)
    } else {
        0
    };
    let mut uids: Vec<u32> = step(
        "searching the folder failed",
        session.uid_search(format!("UID {}:*", last + 1)),
    )
    .await?
    .into_iter()
    .filter(|uid| i64::from(*uid) > last)
    .collect();
    uids.sort_unstable();
    // The sizes the server announces, all in one command: they decide whether a message is
    // fetched at all.
    let sizes = match (uids.first(), uids.last()) {
        (Some(first), Some(last)) => {
            budget.refill();
            let fetches = step(
                "fetching a message failed",
                session.uid_fetch(format!("{first}:{last}"), "(UID RFC822.SIZE)"),
            )
            .await?;
            step("fetching a message failed", collect(fetches)).await?
        }
        _ => Vec::new(),
    };
    let mut taken = 0;
    for uid in uids {
        budget.refill();
        let size = sizes
            .iter()
            .find(|f| f.uid == Some(uid))
            .and_then(|f| f.size);
        let outcome = match size {
            Some(size) if size as usize > mailroom.max_email_bytes => {
                let err = ingest::too_large(mailroom.max_email_bytes);
                ingest::log_unreadable(db, target.org_id, ingest::Route::Imap, &err).await;
                Outcome::Refused
            }
            _ => {
                let raw = {
                    let fetches = step(
                        "fetching a message failed",
                        session.uid_fetch(uid.to_string(), "(UID RFC822)"),
                    )
                    .await?;
                    step("fetching a message failed", collect(fetches))
                        .await?
                        .into_iter()
                        .find(|f| f.uid == Some(uid))
                        .and_then(|f| f.body().map(<[u8]>::to_vec))
                };
                match raw {
                    Some(raw) => take_one(db, mailroom, target.org_id, raw).await,
                    None => Outcome::Refused,
                }
            }
        };
        if outcome == Outcome::Taken {
            taken += 1;
        }
        // When the store itself is failing, this fails too: the look stops here, and this
        // message is taken next time.
        save_progress(db, target.org_id, validity, Some(uid)).await?;
    }
    if validity != target.uid_validity {
        save_progress(db, target.org_id, validity, None).await?;
    }
    let _ = tokio::time::timeout(STEP, session.logout()).await;
    Ok(taken)
}

/// Remembers how far Docket got in the mailbox: its UIDVALIDITY and (when given) the last UID
/// done with.
async fn save_progress(
    db: &Db,
    org_id: Uuid,
    validity: Option<i64>,
    uid: Option<u32>,
) -> Result<()> {
    let tx = db.write_org(org_id).await?;
    let mut m = settings::load(&tx).await?.into_active_model();
    m.imap_uid_validity = Set(validity);
    if let Some(uid) = uid {
        m.imap_last_uid = Set(Some(i64::from(uid)));
    }
    m.update(tx.conn()).await?;
    tx.commit().await?;
    Ok(())
}

/// A FETCH command's answers.
async fn collect(
    fetches: impl futures_util::Stream<Item = async_imap::error::Result<async_imap::types::Fetch>>
    + Unpin,
) -> async_imap::error::Result<Vec<async_imap::types::Fetch>> {
    fetches.try_collect().await
}

/// What became of one message of a mailbox.
#[derive(PartialEq, Eq)]
enum Outcome {
    Taken,
    /// Refused, or failed [`ATTEMPTS`] times: logged in the ingest log, and passed over.
    Refused,
}

/// Takes one message, trying again after an error up to [`ATTEMPTS`] times (every attempt is a
/// line in the ingest log); a message that keeps failing is passed over so the ones after it
/// are not held back.
async fn take_one(db: &Db, mailroom: &Mailroom, org_id: Uuid, raw: Vec<u8>) -> Outcome {
    let raw = bytes::Bytes::from(raw);
    for attempt in 1..=ATTEMPTS {
        match ingest::ingest(
            db,
            mailroom,
            org_id,
            ingest::Route::Imap,
            RawMail::Bytes(raw.clone()),
        )
        .await
        {
            Ok(_) => return Outcome::Taken,
            // Unreadable or too large: logged as refused.
            Err(Error::Unprocessable { .. } | Error::TooLarge { .. }) => return Outcome::Refused,
            Err(_) if attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(_) => {}
        }
    }
    Outcome::Refused
}

/// How many bytes the server may still send before the connection is cut: a message's
/// announced limit and some room for the protocol around it, refilled before each message. A
/// server that sends more (a literal far larger than any message Docket takes) is cut off
/// instead of filling memory.
#[derive(Clone, Debug)]
struct Budget {
    left: Arc<std::sync::atomic::AtomicUsize>,
    per_message: usize,
}

impl Budget {
    fn new(max_email_bytes: usize) -> Self {
        let per_message = max_email_bytes.saturating_add(1024 * 1024);
        Self {
            left: Arc::new(std::sync::atomic::AtomicUsize::new(per_message)),
            per_message,
        }
    }

    fn refill(&self) {
        self.left
            .store(self.per_message, std::sync::atomic::Ordering::Relaxed);
    }

    /// Takes `n` bytes from the budget; false when it does not hold them.
    fn spend(&self, n: usize) -> bool {
        self.left
            .fetch_update(
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
                |left| left.checked_sub(n),
            )
            .is_ok()
    }
}

/// A stream whose reads draw on a [`Budget`].
#[derive(Debug)]
struct Budgeted<S> {
    inner: S,
    budget: Budget,
}

impl<S> Budgeted<S> {
    fn new(inner: S, budget: Budget) -> Self {
        Self { inner, budget }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Budgeted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 && !self.budget.spend(read) {
            return Poll::Ready(Err(std::io::Error::other(
                "the server sent more than a message may hold",
            )));
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Budgeted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
