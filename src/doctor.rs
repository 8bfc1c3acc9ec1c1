//! `docket admin doctor`: checks a setup as the server will use it, one line per check, and
//! fails (a non-zero exit) naming each check that did not pass: the settings, the public
//! address, the data directory and signing key file, the database (reachable, migrated, and on
//! PostgreSQL the application role's rights and row-level security), SMTP and the object store.

use std::path::Path;

use anyhow::Context;

use crate::{
    billing::Billing,
    config::{MailConfig, ServeConfig, StoreConfig},
    files::Files,
    mail,
    plans::Catalog,
    store::{Backend, Db},
};

/// What one check found, or why it failed.
pub struct Check {
    pub name: &'static str,
    pub outcome: Result<String, String>,
}

impl Check {
    fn of(name: &'static str, outcome: anyhow::Result<String>) -> Self {
        Self {
            name,
            outcome: outcome.map_err(|err| format!("{err:#}")),
        }
    }

    pub fn passed(&self) -> bool {
        self.outcome.is_ok()
    }

    /// `ok    name  what it found`, or `FAIL  name  why`.
    pub fn line(&self) -> String {
        match &self.outcome {
            Ok(found) => format!("ok    {:<20} {found}", self.name),
            Err(why) => format!("FAIL  {:<20} {why}", self.name),
        }
    }
}

/// Runs every check.
pub async fn run(store_cfg: &StoreConfig, serve: &ServeConfig) -> Vec<Check> {
    let mut checks = vec![
        Check::of("configuration", configuration(serve)),
        Check::of("public URL", public_url(&serve.mail.public_url)),
        Check::of(
            "data directory",
            data_directory(&store_cfg.data_dir, serve.jwt_secret.is_some()),
        ),
    ];
    match Db::connect(store_cfg).await {
        Err(err) => checks.push(Check::of("database", Err(err))),
        Ok(db) => {
            checks.push(Check::of("database", database(&db).await));
            checks.push(Check::of(
                "migrations",
                db.ready().await.map(|()| "every migration applied".into()),
            ));
            if db.backend() == Backend::Postgres {
                checks.push(Check::of(
                    "application role",
                    db.check_app_role(&store_cfg.db_app_role).await,
                ));
                checks.push(Check::of(
                    "row-level security",
                    db.check_row_security().await,
                ));
            }
            db.close().await;
        }
    }
    checks.push(Check::of("smtp", smtp(&serve.mail).await));
    checks.push(Check::of(
        "object store",
        object_store(serve, &store_cfg.data_dir).await,
    ));
    checks
}

fn configuration(serve: &ServeConfig) -> anyhow::Result<String> {
    let plans = Catalog::configured(&serve.plans)?;
    Billing::new(&serve.billing, &serve.mail.public_url)?;
    Ok(match plans {
        Some(catalog) => format!(
            "{} plans, {} by default",
            catalog.plans.len(),
            catalog.default
        ),
        None => "no plans file: nothing is limited".into(),
    })
}

fn public_url(value: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(value.trim()).context("DOCKET_PUBLIC_URL is not a URL")?;
    let host = url.host_str().unwrap_or_default();
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https") && !host.is_empty(),
        "DOCKET_PUBLIC_URL must be http(s)://host[:port]"
    );
    anyhow::ensure!(
        url.path() == "/" && url.query().is_none(),
        "DOCKET_PUBLIC_URL must name the server only, without a path or query"
    );
    let local = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    anyhow::ensure!(
        url.scheme() == "https" || local,
        "DOCKET_PUBLIC_URL is http:// away from this machine: sign-in cookies would travel \
         unencrypted and browsers refuse passkeys; serve it over https://"
    );
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn data_directory(dir: &Path, key_given: bool) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("{} does not exist (the server creates it)", dir.display()))?;
    anyhow::ensure!(meta.is_dir(), "{} is not a directory", dir.display());
    let mode = meta.permissions().mode() & 0o777;
    anyhow::ensure!(
        mode & 0o007 == 0,
        "{} is open to every account on the machine (mode {mode:o}): chmod o-rwx it",
        dir.display()
    );
    let probe = dir.join(".docket-doctor-probe");
    std::fs::write(&probe, b"probe")
        .with_context(|| format!("{} is not writable", dir.display()))?;
    std::fs::remove_file(&probe)?;
    let key = dir.join(crate::app::SIGNING_KEY_FILE);
    let key_found = match std::fs::metadata(&key) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            anyhow::ensure!(
                mode & 0o077 == 0,
                "{} may be read by others (mode {mode:o}): chmod 600 it",
                key.display()
            );
            "the signing key file is private"
        }
        Err(_) if key_given => "the signing key comes from DOCKET_JWT_SECRET",
        Err(_) => "no signing key yet (the server makes one at its first start)",
    };
    Ok(format!("{} (mode {mode:o}); {key_found}", dir.display()))
}

async fn database(db: &Db) -> anyhow::Result<String> {
    Ok(format!(
        "{:?}, queries run as {}",
        db.backend(),
        db.current_role().await?
    ))
}

async fn smtp(cfg: &MailConfig) -> anyhow::Result<String> {
    Ok(if mail::probe_smtp(cfg).await? {
        "the SMTP server answered EHLO".into()
    } else {
        "not configured: mail is recorded, not sent".into()
    })
}

async fn object_store(serve: &ServeConfig, data_dir: &Path) -> anyhow::Result<String> {
    let files = Files::new(&serve.files, data_dir)?;
    files.probe().await?;
    Ok(format!(
        "{}: wrote, read and deleted a probe",
        files.location
    ))
}
