use std::path::PathBuf;

use clap::{Parser, Subcommand};
use docket::{
    app, audit, billing,
    config::{
        FilesConfig, LogFormat, MailConfig, Secret, ServeConfig, StoreConfig, WebhookConfig,
        WorkerConfig,
    },
    conversation, demo,
    exports::tenant_move,
    files::Files,
    lifecycle,
    outbound::Guard,
    store::{self, Db},
    tenancy,
    webhooks::Webhooks,
    worker::Mail,
};

// jemalloc, not the C library's malloc: faster answers, no more memory (ADR 0028).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "docket",
    version,
    about = "Multi-tenant ticket and task management"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format.
    #[arg(
        long,
        env = "DOCKET_LOG",
        value_enum,
        default_value = "pretty",
        global = true
    )]
    log: LogFormat,
}

// Parsed once at start: the size of the serve variant's settings costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API and web UI, and run the background workers.
    Serve {
        #[command(flatten)]
        store: StoreConfig,
        #[command(flatten)]
        serve: ServeConfig,
        /// Run no workers in this process (run `docket worker` processes instead).
        #[arg(long)]
        no_worker: bool,
        #[command(flatten)]
        worker: WorkerConfig,
    },
    /// Run the background workers only (any number of these may run beside `serve
    /// --no-worker` processes on PostgreSQL).
    Worker {
        #[command(flatten)]
        store: StoreConfig,
        #[command(flatten)]
        worker: WorkerConfig,
        /// The servers' signing key (mail references and webhook secrets use keys derived
        /// from it).
        #[arg(long, env = "DOCKET_JWT_SECRET", value_parser = secret, hide_env_values = true)]
        jwt_secret: Option<Secret>,
        #[command(flatten)]
        mail: MailConfig,
        #[command(flatten)]
        files: FilesConfig,
        #[command(flatten)]
        webhooks: WebhookConfig,
    },
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        task: AdminTask,
    },
    /// Print the OpenAPI document the server serves at `/api/v1/openapi.json` (the web app's
    /// API types are generated from it).
    Openapi,
    /// Apply pending database migrations and exit.
    Migrate {
        #[command(flatten)]
        store: StoreConfig,
    },
}

// Parsed once at start, like `Command`.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum AdminTask {
    /// Take one raw mail message from standard input for an organisation, as its inbound
    /// address would (for an MTA's pipe, e.g. a Postfix alias `|docket admin ingest-email
    /// --org acme`). Prints the outcome as JSON; exits non-zero when the message is refused.
    IngestEmail {
        #[command(flatten)]
        store: StoreConfig,
        /// The organisation's slug.
        #[arg(long)]
        org: String,
        #[arg(long, env = "DOCKET_JWT_SECRET", value_parser = secret, hide_env_values = true)]
        jwt_secret: Option<Secret>,
        #[command(flatten)]
        mail: MailConfig,
        #[command(flatten)]
        files: FilesConfig,
    },
    /// Write an organisation, with its people's accounts and its files, to a file, to move it to
    /// another server's database (`import-org` there). The file holds secrets (password hashes,
    /// sealed keys): keep it like a backup. The organisation here is left as it is.
    ExportOrg {
        #[command(flatten)]
        store: StoreConfig,
        #[command(flatten)]
        files: FilesConfig,
        /// The organisation's slug.
        #[arg(long)]
        org: String,
        #[arg(long)]
        out: PathBuf,
        /// Move its sign-in sessions too (people stay signed in on the new server).
        #[arg(long)]
        with_sessions: bool,
    },
    /// Bring an organisation written by `export-org` into the database of `DATABASE_URL` (SQLite
    /// or PostgreSQL) and the object store configured here: ids, numbering, password hashes and
    /// files kept, so people sign in as before. Refuses an organisation that is already here;
    /// checks the file against its manifest first and the rows written against it after.
    ImportOrg {
        #[command(flatten)]
        store: StoreConfig,
        #[command(flatten)]
        files: FilesConfig,
        #[arg(long = "in")]
        input: PathBuf,
        /// Once the import is verified, purge the organisation from the server it came from:
        /// its database (`--source-database-url`) and its files in that server's object store.
        #[arg(long, requires = "source_database_url")]
        delete_source: bool,
        /// The `DATABASE_URL` of the server the organisation came from.
        #[arg(long, env = "DOCKET_SOURCE_DATABASE_URL", value_parser = secret, hide_env_values = true)]
        source_database_url: Option<Secret>,
        /// That server's `DOCKET_DATA_DIR` (default: this one's).
        #[arg(long)]
        source_data_dir: Option<PathBuf>,
        /// That server's `DOCKET_OBJECT_STORE_URL` (default: this one's).
        #[arg(long)]
        source_object_store_url: Option<String>,
    },
    /// Put an organisation on a plan of the plans file (as the server last published it). A plan
    /// that allows less than the organisation uses deletes nothing: it only cannot add more.
    SetPlan {
        #[command(flatten)]
        store: StoreConfig,
        /// The organisation's slug.
        #[arg(long)]
        org: String,
        /// The plan's key in the plans file.
        #[arg(long)]
        plan: String,
    },
    /// Check this setup as the server will use it: settings, public URL, data directory and
    /// key file, database (reachable, migrated; on PostgreSQL the application role and
    /// row-level security), SMTP (EHLO only) and the object store (a probe written, read and
    /// deleted). One line per check; exits non-zero naming each that failed.
    Doctor {
        #[command(flatten)]
        store: StoreConfig,
        #[command(flatten)]
        serve: ServeConfig,
    },
    /// Walk an organisation's audit-log hash chain. Prints what it found as JSON; exits
    /// non-zero and names the first broken link when the chain does not hold.
    AuditVerify {
        #[command(flatten)]
        store: StoreConfig,
        /// The organisation's slug.
        #[arg(long)]
        org: String,
    },
    /// Bulk-load the demo and benchmark dataset into a database that does not hold it yet:
    /// organisations `demo-001`… of Zipf-like sizes, 6–30 people each, projects, and tickets
    /// with assignees, labels, comments and timelines. Every account's password is
    /// `--password`; `--manifest` writes who can sign in where, as JSON.
    SeedDemo {
        #[command(flatten)]
        store: StoreConfig,
        #[arg(long, default_value_t = 200)]
        organizations: usize,
        #[arg(long, default_value_t = 1_000_000)]
        tickets: u64,
        /// The same seed gives the same dataset.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(
            long,
            env = "DOCKET_DEMO_PASSWORD",
            default_value = "docket-demo-password"
        )]
        password: String,
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Organisations loaded at once (default: 1 on SQLite, the CPU count on PostgreSQL).
        #[arg(long)]
        jobs: Option<usize>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    app::init_logging(cli.log);
    match cli.command {
        Command::Serve {
            store,
            serve,
            no_worker,
            worker,
        } => {
            let running = app::start(&store, &serve, (!no_worker).then_some(worker)).await?;
            let stop = running.stopper();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutting down: finishing in-flight requests");
                let _ = stop.send(true);
            });
            running.wait().await?;
        }
        Command::Openapi => {
            println!("{}", docket::http::openapi().to_pretty_json()?);
        }
        Command::Worker {
            store,
            worker,
            jwt_secret,
            mail,
            files,
            webhooks,
        } => {
            store::migrate(&store).await?;
            let db = Db::connect(&store).await?;
            let files = Files::new(&files, &store.data_dir)?;
            let secret = app::signing_key(jwt_secret, &store.data_dir)?;
            let guard = Guard::new(webhooks.webhook_allowed_nets.clone());
            let mail = Mail::new(&mail, &files, &secret, guard)?;
            let webhooks = Webhooks::new(&webhooks, &secret)?;
            let (stop, stopped) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop.send(true);
            });
            tracing::info!(backend = ?db.backend(), "docket worker running");
            tokio::join!(
                docket::events::listen(db.clone(), stopped.clone()),
                docket::worker::run(db, worker, mail, webhooks, stopped)
            );
        }
        Command::Admin {
            task:
                AdminTask::SeedDemo {
                    store: store_cfg,
                    organizations,
                    tickets,
                    seed,
                    password,
                    manifest,
                    jobs,
                },
        } => {
            store::migrate(&store_cfg).await?;
            let db = Db::connect(&store_cfg).await?;
            let jobs = jobs.unwrap_or(match db.backend() {
                store::Backend::Sqlite => 1,
                store::Backend::Postgres => {
                    std::thread::available_parallelism().map_or(2, |n| n.get())
                }
            });
            let opts = demo::Options {
                organizations,
                tickets,
                seed,
                password,
                jobs,
            };
            let loaded = demo::seed(&db, &opts).await?;
            tracing::info!(
                organizations = loaded.organizations.len(),
                tickets = loaded.tickets,
                comments = loaded.comments,
                timeline_entries = loaded.timeline_entries,
                seconds = loaded.seconds,
                "demo dataset loaded"
            );
            if let Some(path) = manifest {
                std::fs::write(&path, serde_json::to_vec_pretty(&loaded)?)?;
            }
        }
        Command::Admin {
            task:
                AdminTask::IngestEmail {
                    store: store_cfg,
                    org,
                    jwt_secret,
                    mail,
                    files,
                },
        } => {
            use std::io::Read as _;
            store::migrate(&store_cfg).await?;
            let db = Db::connect(&store_cfg).await?;
            let files = Files::new(&files, &store_cfg.data_dir)?;
            let secret = app::signing_key(jwt_secret, &store_cfg.data_dir)?;
            // This command reads one message from its input; it connects to no mailbox.
            let mail = Mail::new(&mail, &files, &secret, Guard::default())?;
            let org_id = tenancy::org_id_by_slug(&db, &org)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no organization has the slug {org:?}"))?;
            let mut raw = Vec::new();
            std::io::stdin()
                .take(mail.mailroom.max_email_bytes as u64 + 1)
                .read_to_end(&mut raw)?;
            let outcome = conversation::ingest(
                &db,
                &mail.mailroom,
                org_id,
                conversation::Route::Command,
                raw.into(),
            )
            .await
            .map_err(|err| anyhow::anyhow!("the message was refused: {err}"))?;
            println!("{}", serde_json::to_string(&outcome)?);
        }
        Command::Admin {
            task:
                AdminTask::SetPlan {
                    store: store_cfg,
                    org,
                    plan,
                },
        } => {
            store::migrate(&store_cfg).await?;
            let db = Db::connect(&store_cfg).await?;
            let org_id = tenancy::org_id_by_slug(&db, &org)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no organization has the slug {org:?}"))?;
            billing::set_plan(&db, org_id, &plan, None)
                .await
                .map_err(|e| anyhow::anyhow!("setting the plan of {org:?} failed: {e}"))?;
            println!("{}", serde_json::json!({"organization": org, "plan": plan}));
        }
        Command::Admin {
            task: AdminTask::Doctor { store, serve },
        } => {
            let checks = docket::doctor::run(&store, &serve).await;
            for check in &checks {
                println!("{}", check.line());
            }
            let failed: Vec<&str> = checks
                .iter()
                .filter(|c| !c.passed())
                .map(|c| c.name)
                .collect();
            anyhow::ensure!(failed.is_empty(), "checks failed: {}", failed.join(", "));
        }
        Command::Admin {
            task:
                AdminTask::AuditVerify {
                    store: store_cfg,
                    org,
                },
        } => {
            store::migrate(&store_cfg).await?;
            let db = Db::connect(&store_cfg).await?;
            let org_id = tenancy::org_id_by_slug(&db, &org)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no organization has the slug {org:?}"))?;
            let found = audit::verify_org(&db, org_id).await?;
            println!("{}", serde_json::to_string(&found)?);
            anyhow::ensure!(
                found.ok,
                "the audit log of {org:?} is broken: {}",
                found.problem.unwrap_or_default()
            );
        }
        Command::Admin {
            task:
                AdminTask::ExportOrg {
                    store: store_cfg,
                    files,
                    org,
                    out,
                    with_sessions,
                },
        } => {
            store::migrate(&store_cfg).await?;
            let db = Db::connect(&store_cfg).await?;
            let files = Files::new(&files, &store_cfg.data_dir)?;
            let org_id = tenancy::org_id_by_slug(&db, &org)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no organization has the slug {org:?}"))?;
            let manifest = tenant_move::export_org(&db, &files, org_id, &out, with_sessions)
                .await
                .map_err(|e| anyhow::anyhow!("exporting {org:?} failed: {e:?}"))?;
            println!("{}", serde_json::to_string(&manifest)?);
        }
        Command::Admin {
            task:
                AdminTask::ImportOrg {
                    store: store_cfg,
                    files: files_cfg,
                    input,
                    delete_source,
                    source_database_url,
                    source_data_dir,
                    source_object_store_url,
                },
        } => {
            // Where the organisation came from, when it is to go from there.
            let source = source_database_url.filter(|_| delete_source).map(|url| {
                let mut store = store_cfg.clone();
                store.database_url = Some(url);
                store.data_dir = source_data_dir.unwrap_or_else(|| store_cfg.data_dir.clone());
                let mut files = files_cfg.clone();
                files.object_store_url = source_object_store_url.or(files.object_store_url);
                (store, files)
            });
            if let Some((source, _)) = &source {
                anyhow::ensure!(
                    store::database_url(source)?.0 != store::database_url(&store_cfg)?.0,
                    "the source database is the one imported into"
                );
            }
            store::migrate(&store_cfg).await?;
            let db = Db::connect(&store_cfg).await?;
            let files = Files::new(&files_cfg, &store_cfg.data_dir)?;
            let mut imported = tenant_move::import_org(&db, &files, &input)
                .await
                .map_err(|e| anyhow::anyhow!("the import was refused: {e:?}"))?;
            if let Some((source_store, source_files)) = source {
                let org_id: uuid::Uuid = imported["organization"]["id"]
                    .as_str()
                    .and_then(|id| id.parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("the file names no organization"))?;
                // The same object store holds the same files: they stay, for the new server.
                let shared = source_files.object_store_url == files_cfg.object_store_url
                    && (files_cfg.object_store_url.is_some()
                        || source_store.data_dir == store_cfg.data_dir);
                store::migrate(&source_store).await?;
                let source_db = Db::connect(&source_store).await?;
                let source_files = Files::new(&source_files, &source_store.data_dir)?;
                let purged =
                    lifecycle::purge_moved(&source_db, (!shared).then_some(&source_files), org_id)
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!("imported, but purging the source failed: {e:?}")
                        })?;
                imported["source_purged"] = serde_json::to_value(&purged.counts)?;
            }
            println!("{}", serde_json::to_string(&imported)?);
        }
        Command::Migrate { store } => {
            store::migrate(&store).await?;
            tracing::info!("migrations applied");
        }
    }
    Ok(())
}

fn secret(value: &str) -> Result<Secret, String> {
    Ok(Secret::new(value))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
