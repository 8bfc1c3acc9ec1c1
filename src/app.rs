//! Wiring: configuration → database → HTTP server and workers.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::sync::watch;

use crate::{
    config::{LogFormat, Secret, ServeConfig, StoreConfig, WorkerConfig},
    files::Files,
    http::{self, AppState},
    identity::tokens::{self, TokenKeys},
    outbound::Guard,
    store::{self, Db},
    webhooks::Webhooks,
    worker::Mail,
};

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DOCKET_LOG_LEVEL")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The signing key: given, or generated once and kept (readable by the owner only) in the
/// data directory so restarts keep sessions valid.
/// The signing key's file in the data directory, when `DOCKET_JWT_SECRET` does not give it.
pub const SIGNING_KEY_FILE: &str = "jwt-signing.key";

pub fn signing_key(given: Option<Secret>, data_dir: &Path) -> anyhow::Result<Secret> {
    if let Some(secret) = given {
        anyhow::ensure!(
            secret.expose().len() >= 32,
            "DOCKET_JWT_SECRET must be at least 32 characters"
        );
        return Ok(secret);
    }
    let path = data_dir.join(SIGNING_KEY_FILE);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        anyhow::ensure!(existing.len() >= 32, "{} is too short", path.display());
        return Ok(Secret::new(existing));
    }
    store::create_private_dir(data_dir)?;
    let secret = tokens::random_secret();
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a new token signing key");
    Ok(Secret::new(secret))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(contents.as_bytes())
}

/// A running server: its address, its database, and a handle to stop it gracefully.
pub struct Running {
    pub addr: std::net::SocketAddr,
    db: Db,
    mail: Mail,
    webhooks: Webhooks,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, stops the workers.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.wait().await
    }

    /// Resolves when the server has ended (after a stop signal), then stops the workers.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server.await??;
        let _ = self.stop.send(true);
        for task in self.background {
            task.await?;
        }
        Ok(())
    }

    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }

    /// The server's own database handle: work done through it (running pending events, say)
    /// wakes the server's stream connections as the server's own writes do.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The server's mail sender and inbound side (tests deliver queued mail through it).
    pub fn mail(&self) -> &Mail {
        &self.mail
    }

    /// The server's webhook sender (tests deliver due webhooks through it).
    pub fn webhooks(&self) -> &Webhooks {
        &self.webhooks
    }

    /// The server's attachment storage (tests sweep orphans through it).
    pub fn files(&self) -> &Files {
        &self.mail.mailroom.files
    }
}

/// Migrates, connects and starts serving (and, given a `worker` configuration, the workers).
pub async fn start(
    store_cfg: &StoreConfig,
    serve_cfg: &ServeConfig,
    worker: Option<WorkerConfig>,
) -> anyhow::Result<Running> {
    let catalog = crate::plans::Catalog::configured(&serve_cfg.plans)?;
    store::migrate(store_cfg).await?;
    let db = Db::connect(store_cfg).await?;
    crate::plans::publish(&db, catalog.as_ref()).await?;
    if let Some(catalog) = &catalog {
        tracing::info!(plans = catalog.plans.len(), default = %catalog.default, "plans published");
    }
    let secret = signing_key(serve_cfg.jwt_secret.clone(), &store_cfg.data_dir)?;
    let keys = TokenKeys::new(
        &secret,
        Duration::from_secs(serve_cfg.access_token_ttl_secs),
        Duration::from_secs(serve_cfg.refresh_token_ttl_secs),
    );
    let files = Files::new(&serve_cfg.files, &store_cfg.data_dir)?;
    tracing::info!(location = %files.location, "attachments stored");
    let guard = Guard::new(serve_cfg.webhooks.webhook_allowed_nets.clone());
    let factors = crate::identity::mfa::SecondFactors::new(&secret, &serve_cfg.mail.public_url);
    let sso = crate::identity::sso::SingleSignOn::new(
        &secret,
        guard.clone(),
        &serve_cfg.mail.public_url,
    )?;
    let mail = Mail::new(&serve_cfg.mail, &files, &secret, guard)?;
    let webhooks = Webhooks::new(&serve_cfg.webhooks, &secret)?;
    let billing = crate::billing::Billing::new(&serve_cfg.billing, &serve_cfg.mail.public_url)?;
    let (stop, stopped) = watch::channel(false);
    let state = AppState {
        db: db.clone(),
        keys: Arc::new(keys),
        mailroom: mail.mailroom.clone(),
        files,
        webhooks: webhooks.clone(),
        reports: crate::store::replica::Reads::new(db.clone(), store_cfg, &serve_cfg.replica)
            .await?,
        rate_limits: http::RateLimits::new(&serve_cfg.rate_limits),
        hasher: crate::identity::Hasher::start(),
        metrics: crate::http::ops::recorder(),
        feeds: crate::events::stream::Feeds::new(db.clone()),
        stopping: stopped.clone(),
        factors,
        sso,
        confirm_signups: serve_cfg.mail.signup_confirmation && mail.sender.enabled(),
        org_deletion_grace: chrono::Duration::days(
            serve_cfg.data_rights.org_deletion_grace_days.into(),
        ),
        billing,
        secure_cookies: serve_cfg
            .mail
            .public_url
            .trim()
            .to_ascii_lowercase()
            .starts_with("https://"),
    };
    let app = http::router(state, serve_cfg.max_body_bytes, serve_cfg.server_timing);
    let listener = tokio::net::TcpListener::bind(serve_cfg.addr)
        .await
        .with_context(|| format!("binding {}", serve_cfg.addr))?;
    let addr = listener.local_addr()?;
    let mut server_stop = stopped.clone();
    let limits = http::ConnectionLimits {
        max_connections: serve_cfg.max_connections,
        header_timeout: Duration::from_secs(serve_cfg.header_timeout_secs),
    };
    let server = tokio::spawn(http::serve(listener, app, limits, async move {
        let _ = server_stop.wait_for(|s| *s).await;
    }));
    tracing::info!(%addr, backend = ?db.backend(), "docket listening");
    let mut background = vec![tokio::spawn(crate::events::listen(
        db.clone(),
        stopped.clone(),
    ))];
    if let Some(cfg) = worker {
        background.push(tokio::spawn(crate::worker::run(
            db.background(store_cfg).await?,
            cfg,
            mail.clone(),
            webhooks.clone(),
            stopped,
        )));
    }
    Ok(Running {
        addr,
        db,
        mail,
        webhooks,
        stop,
        server,
        background,
    })
}
