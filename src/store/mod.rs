//! Connection pools, migrations and the scoped transaction types. Tenant data is reachable only
//! through a [`TenantTx`], which carries its organisation and (on PostgreSQL) sets it for
//! row-level security inside the transaction.

pub mod cost;
pub(crate) mod migrations;
pub mod replica;
mod tenant_rows;

pub(crate) use tenant_rows::insert_rows;
pub use tenant_rows::{PURGE_BATCH, RowPage};

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use sea_orm::{
    ColumnTrait, Condition, ConnAcquireErr, ConnectOptions, ConnectionTrait, Database,
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, DeleteMany, EntityTrait,
    QueryFilter, QueryOrder, QueryResult, QuerySelect, RuntimeErr, Select, SqlErr,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait, TryGetable, UpdateMany,
    sqlx,
    sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::{Notify, OwnedMutexGuard, broadcast};
use uuid::Uuid;

use crate::{
    access::{self, TenantCtx},
    config::StoreConfig,
    pagination::PageRequest,
};
pub(crate) use migrations::Migrator;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The application's handle to its database.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
    backend: Backend,
    signals: Arc<Signals>,
    /// SQLite's writers, queued in the process in arrival order (`None` on PostgreSQL).
    writers: Option<WriterQueue>,
}

/// SQLite admits one writer at a time. Writers that find its lock taken would sleep in SQLite's
/// busy handler, which backs off in growing steps (a p99 of over a second at 32 writers while
/// the median is under 100 ms). Instead a write transaction first takes its turn here: tokio's
/// mutex is fair, so writers wait in order and start the moment the previous one commits.
///
/// Every write runs on one connection of its own. A connection drops its page cache whenever
/// another connection wrote since it last read, so writers taking turns on pooled connections
/// re-read the pages they touch from the file each time; the one writer's cache stays warm.
///
/// Requests' writers first queue among themselves (`requests`), so at most one of them waits
/// for the turn itself: the worker's writers ([`Db::background`]) then wait behind at most the
/// writer holding the turn and that one, not behind every request in flight, and the events
/// requests cause are handled while requests keep coming.
#[derive(Clone, Debug)]
struct WriterQueue {
    turn: Arc<tokio::sync::Mutex<()>>,
    requests: Arc<tokio::sync::Mutex<()>>,
    /// A background writer, which goes straight to the turn.
    background: bool,
    /// As long as a writer waits for a pooled connection before answering "busy".
    patience: Duration,
    /// A pool of the one connection writes run on.
    conn: DatabaseConnection,
    /// Told when a turn ends: the checkpointer copies what it wrote into the database file.
    wrote: Arc<Notify>,
}

impl WriterQueue {
    async fn wait(&self) -> Result<Turn, DbErr> {
        let turn = async {
            // The requests' place in line is given up once the turn is taken.
            let _in_line = match self.background {
                false => Some(self.requests.lock().await),
                true => None,
            };
            self.turn.clone().lock_owned().await
        };
        let guard = tokio::time::timeout(self.patience, turn)
            .await
            .map_err(|_| DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))?;
        Ok(Turn {
            _guard: guard,
            wrote: self.wrote.clone(),
        })
    }
}

/// A writer's turn in the [`WriterQueue`], held until its transaction ends.
struct Turn {
    _guard: OwnedMutexGuard<()>,
    wrote: Arc<Notify>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.wrote.notify_one();
    }
}

/// Copies what the writer appended to SQLite's write-ahead log into the database file, outside
/// the writer's turn (ADR 0030). A checkpoint writes pages back and syncs the file: done by the
/// writer at commit, as SQLite does by default, it held every other writer up for as long.
/// `PASSIVE` never waits for a lock, so it runs beside the next writers.
async fn checkpoint_after_writes(readers: DatabaseConnection, wrote: Arc<Notify>) {
    loop {
        wrote.notified().await;
        // Writes come in bursts: one checkpoint copies what a burst wrote.
        tokio::time::sleep(CHECKPOINT_DELAY).await;
        match readers
            .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
            .await
        {
            Ok(_) => {}
            Err(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)) => return,
            Err(error) => tracing::warn!(%error, "checkpointing SQLite's log failed"),
        }
    }
}

/// In-process wake-ups fired after a commit wrote something the background parts wait for.
/// On PostgreSQL the events module also feeds them from LISTEN, so other processes' commits
/// wake this one too.
#[derive(Debug)]
pub struct Signals {
    /// New outbox rows: wakes the dispatcher.
    pub outbox: Notify,
    /// New queued mails: wakes the mail sender.
    pub mail: Notify,
    /// New webhook deliveries: wakes the webhook sender.
    pub webhooks: Notify,
    /// New stream entries of an organisation: wakes its stream connections (the nil id wakes
    /// every organisation's, after notifications may have been missed).
    pub stream: broadcast::Sender<Uuid>,
    /// A person's access changed (role, membership, a session ended): their open streams
    /// re-check it at once (the nil id: everyone's, after notifications may have been missed).
    pub access: broadcast::Sender<Uuid>,
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            outbox: Notify::new(),
            mail: Notify::new(),
            webhooks: Notify::new(),
            stream: broadcast::channel(1024).0,
            access: broadcast::channel(256).0,
        }
    }
}

/// The connection URL a store configuration names (SQLite under its data directory, created
/// if missing, when it names none) and its backend.
pub fn database_url(cfg: &StoreConfig) -> anyhow::Result<(String, Backend)> {
    match &cfg.database_url {
        Some(url)
            if url.expose().starts_with("postgres://")
                || url.expose().starts_with("postgresql://") =>
        {
            Ok((url.expose().to_owned(), Backend::Postgres))
        }
        Some(url) if url.expose().starts_with("sqlite:") => {
            Ok((url.expose().to_owned(), Backend::Sqlite))
        }
        Some(_) => anyhow::bail!("DATABASE_URL must start with postgres:// or sqlite:"),
        None => {
            create_private_dir(&cfg.data_dir)
                .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
            let path = cfg.data_dir.join("docket.db");
            Ok((
                format!("sqlite://{}?mode=rwc", path.display()),
                Backend::Sqlite,
            ))
        }
    }
}

/// Opens a pool. `as_app_role` makes every PostgreSQL connection run as the unprivileged
/// application role, so row-level security applies to everything the server does.
async fn open(cfg: &StoreConfig, as_app_role: bool) -> anyhow::Result<Db> {
    let (url, backend) = database_url(cfg)?;
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(cfg.db_max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_millis(cfg.db_acquire_timeout_ms))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(sqlite_options);
    if as_app_role {
        let role = cfg.db_app_role.clone();
        opts.map_sqlx_postgres_opts(move |o| o.options([("role", role.as_str())]));
    }
    let writers = match backend {
        Backend::Postgres => None,
        Backend::Sqlite => {
            // An embedded database's connection cannot go stale the way a network one can:
            // checking it on every checkout would cost a round trip to its thread for nothing.
            opts.test_before_acquire(false);
            let mut one = opts.clone();
            // The writer's statements run on the thread of the task holding the turn (ADR 0030):
            // a worker thread would cost each of them two thread hand-offs. It never sleeps in
            // SQLite's busy handler on that thread: `begin` waits for a busy lock asynchronously.
            // The checkpointer copies the log into the database file; the writer does so
            // itself only if the log grows past WRITER_CHECKPOINT_PAGES. Opening the connection
            // may wait for a lock (another process closing the database); the last pragma then
            // turns the busy handler off. The connection lives as long as the process: replacing
            // it (sqlx retires pooled connections after 30 minutes) would open a file on the
            // calling thread and start with cold caches.
            one.max_connections(1)
                .map_sqlx_sqlite_opts(|o| {
                    sqlite_options(o)
                        .run_on_calling_thread(true)
                        .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES.to_string())
                        .pragma("busy_timeout", "0")
                })
                .map_sqlx_sqlite_pool_opts(|p| p.max_lifetime(None).idle_timeout(None));
            Some(WriterQueue {
                turn: Arc::default(),
                requests: Arc::default(),
                background: false,
                patience: Duration::from_millis(cfg.db_acquire_timeout_ms),
                conn: connect(one).await?,
                wrote: Arc::default(),
            })
        }
    };
    Ok(Db {
        conn: connect(opts).await?,
        backend,
        signals: Arc::default(),
        writers,
    })
}

/// How long after a write the checkpointer copies the log into the database file.
const CHECKPOINT_DELAY: Duration = Duration::from_millis(100);

/// The log's size, in pages, past which the writer checkpoints it itself (SQLite's default is
/// 1,000): a bound, should the checkpointer fall behind.
const WRITER_CHECKPOINT_PAGES: u32 = 10_000;

/// How long an SQLite connection waits for a lock another connection holds.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

fn sqlite_options(o: SqliteConnectOptions) -> SqliteConnectOptions {
    o.journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
}

async fn connect(opts: ConnectOptions) -> anyhow::Result<DatabaseConnection> {
    let mut conn = Database::connect(opts)
        .await
        .context("connecting to the database")?;
    conn.set_metric_callback(|_| cost::statement());
    Ok(conn)
}

/// Creates `dir` (and its parents) readable by this account only, unless it exists.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Applies pending migrations as the schema owner and (PostgreSQL) makes sure the application
/// role exists with data privileges only. Append-only tables: no updates (but an audit entry's
/// details, which erasure pseudonymises), and deletes only while their organisation is purged
/// (a restrictive row policy, migration m0022).
pub async fn migrate(cfg: &StoreConfig) -> anyhow::Result<()> {
    validate_role_name(&cfg.db_app_role)?;
    // On SQLite the migrations run on one connection: a statement prepared on another
    // connection of the pool may still see the schema from before the previous statement, and
    // SQLite checks "already exists" (a trigger dropped and created again) at prepare time.
    let mut cfg = cfg.clone();
    if database_url(&cfg)?.1 == Backend::Sqlite {
        cfg.db_max_connections = 1;
    }
    let owner = open(&cfg, false).await?;
    Migrator::up(&owner.conn, None)
        .await
        .context("running migrations")?;
    if owner.backend == Backend::Postgres {
        let role = &cfg.db_app_role;
        let append_only = migrations::APPEND_ONLY.join(", ");
        // Concurrent migrations (tests, several processes) may race to create the role.
        owner
            .conn
            .execute_unprepared(&format!(
                "DO $$ BEGIN
                   IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                     CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
                   END IF;
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                 END $$;
                 GRANT USAGE ON SCHEMA public TO {role};
                 GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
                 GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
                 REVOKE UPDATE, DELETE ON {append_only} FROM {role};
                 GRANT DELETE ON {append_only} TO {role};
                 GRANT UPDATE (details, redacted_at) ON audit_log TO {role};
                 GRANT UPDATE (changes, redacted_at) ON ticket_events TO {role};"
            ))
            .await
            .context("granting the application role")?;
    }
    owner.conn.close().await.ok();
    Ok(())
}

fn validate_role_name(role: &str) -> anyhow::Result<()> {
    let ok = !role.is_empty()
        && role.len() <= 63
        && role
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !role.starts_with(|c: char| c.is_ascii_digit());
    anyhow::ensure!(ok, "DOCKET_DB_APP_ROLE must be a lowercase identifier");
    Ok(())
}

impl Db {
    /// Connects as the application (on PostgreSQL: as the unprivileged application role).
    pub async fn connect(cfg: &StoreConfig) -> anyhow::Result<Self> {
        validate_role_name(&cfg.db_app_role)?;
        let db = open(cfg, true).await?;
        if let Some(queue) = &db.writers {
            tokio::spawn(checkpoint_after_writes(
                db.conn.clone(),
                queue.wrote.clone(),
            ));
        }
        Ok(db)
    }

    /// The database as the worker in the same process uses it: its writes on SQLite skip the
    /// requests' line ([`WriterQueue`]); on PostgreSQL it has a pool of its own
    /// (`DOCKET_DB_WORKER_CONNECTIONS`). Either way the events requests cause are handled
    /// while requests keep every connection busy, instead of waiting in line with them.
    pub async fn background(&self, cfg: &StoreConfig) -> anyhow::Result<Db> {
        match &self.writers {
            Some(queue) => Ok(Db {
                writers: Some(WriterQueue {
                    background: true,
                    ..queue.clone()
                }),
                ..self.clone()
            }),
            None => {
                let own = StoreConfig {
                    db_max_connections: cfg.db_worker_connections.max(1),
                    ..cfg.clone()
                };
                Ok(self.sibling(open(&own, true).await?.conn))
            }
        }
    }

    /// Another pool to the same data (a replica), sharing this one's signals.
    fn sibling(&self, conn: DatabaseConnection) -> Db {
        Db {
            conn,
            backend: self.backend,
            signals: self.signals.clone(),
            writers: self.writers.clone(),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn signals(&self) -> &Arc<Signals> {
        &self.signals
    }

    /// The underlying pool, for the few things the ORM does not do (PostgreSQL LISTEN).
    pub(crate) fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// True when the database answers and no migration is pending.
    pub async fn ready(&self) -> anyhow::Result<()> {
        self.conn
            .execute_unprepared("SELECT 1")
            .await
            .context("database unreachable")?;
        let pending = Migrator::get_pending_migrations_read_only(&self.conn).await?;
        anyhow::ensure!(pending.is_empty(), "{} migrations pending", pending.len());
        Ok(())
    }

    /// PostgreSQL: the application role queries run as is `role`, no superuser, without
    /// `BYPASSRLS`, owning no table (`docket admin doctor`).
    pub async fn check_app_role(&self, role: &str) -> anyhow::Result<String> {
        let row = self
            .conn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT rolsuper, rolbypassrls, \
                   (SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = $1) AS owned \
                 FROM pg_roles WHERE rolname = $1",
                [role.into()],
            ))
            .await?
            .with_context(|| format!("the role {role} does not exist: run `docket migrate`"))?;
        let superuser: bool = row.try_get("", "rolsuper")?;
        let bypasses: bool = row.try_get("", "rolbypassrls")?;
        let owned: i64 = row.try_get("", "owned")?;
        anyhow::ensure!(
            !superuser,
            "{role} is a superuser: row-level security does not hold it"
        );
        anyhow::ensure!(
            !bypasses,
            "{role} has BYPASSRLS: row-level security does not hold it"
        );
        anyhow::ensure!(
            owned == 0,
            "{role} owns {owned} tables: it must hold data privileges only"
        );
        let current = self.current_role().await?;
        anyhow::ensure!(current == role, "queries run as {current}, not as {role}");
        Ok(format!(
            "queries run as {role}: no superuser, no BYPASSRLS, owns no table"
        ))
    }

    /// PostgreSQL: every table with an organisation column (and `organizations`) has
    /// row-level security enabled and forced (`docket admin doctor`).
    pub async fn check_row_security(&self) -> anyhow::Result<String> {
        let rows = self
            .conn
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT c.relname::text AS name, c.relrowsecurity AND c.relforcerowsecurity AS walled \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relkind = 'r' AND (c.relname = 'organizations' \
                   OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                              AND a.attname = 'org_id' AND NOT a.attisdropped))",
            ))
            .await?;
        let mut open = Vec::new();
        for row in &rows {
            if !row.try_get::<bool>("", "walled")? {
                open.push(row.try_get::<String>("", "name")?);
            }
        }
        anyhow::ensure!(
            open.is_empty(),
            "row-level security is not enabled and forced on {}",
            open.join(", ")
        );
        Ok(format!(
            "enabled and forced on all {} tenant tables",
            rows.len()
        ))
    }

    /// The database role queries run as (`sqlite` has none).
    pub async fn current_role(&self) -> anyhow::Result<String> {
        if self.backend == Backend::Sqlite {
            return Ok("sqlite".into());
        }
        let row = self
            .conn
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_user::text AS r",
            ))
            .await?
            .context("no row")?;
        Ok(row.try_get("", "r")?)
    }

    pub async fn close(self) {
        if let Some(queue) = self.writers {
            queue.conn.close().await.ok();
            // The checkpointer finds the pool closed and ends.
            queue.wrote.notify_one();
        }
        self.conn.close().await.ok();
    }

    /// A write transaction: on SQLite it waits for its turn in the writer queue, then starts
    /// with `BEGIN IMMEDIATE` so a read-then-write transaction never fails with SQLITE_BUSY
    /// half-way. The turn is held until the transaction ends.
    async fn begin(&self, write: bool) -> Result<Began, DbErr> {
        let options = TransactionOptions {
            sqlite_transaction_mode: write.then_some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        let Some(queue) = self.writers.as_ref().filter(|_| write) else {
            cost::transaction();
            let tx = self.conn.begin_with_options(options).await?;
            return Ok(Began { tx, turn: None });
        };
        let turn = queue.wait().await?;
        // Another process (a separate `docket worker`) may hold SQLite's write lock. The writer
        // connection does not sleep in the busy handler, which would block its thread: it
        // retries here, asynchronously, for as long as the pooled connections' busy handler would.
        let deadline = tokio::time::Instant::now() + SQLITE_BUSY_TIMEOUT;
        let mut pause = Duration::from_millis(1);
        loop {
            cost::transaction();
            match queue.conn.begin_with_options(options).await {
                Ok(tx) => {
                    return Ok(Began {
                        tx,
                        turn: Some(turn),
                    });
                }
                Err(e) if is_sqlite_busy(&e) && tokio::time::Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Enters a scope (`key` = `id`) and sets the transaction's planning, in one statement.
    async fn set_scope(
        &self,
        tx: &DatabaseTransaction,
        key: &str,
        id: Uuid,
        planning: Planning,
        viewer: Option<Uuid>,
    ) -> Result<(), DbErr> {
        if self.backend == Backend::Postgres {
            let mut sql = "SELECT set_config($1, $2, true)".to_owned();
            let mut values = vec![key.into(), id.to_string().into()];
            if let Some(mode) = planning.plan_cache_mode() {
                values.push(mode.into());
                sql += &format!(", set_config('plan_cache_mode', ${}, true)", values.len());
            }
            if let Some(viewer) = viewer {
                values.push(viewer.to_string().into());
                sql += &format!(", set_config('app.viewer_id', ${}, true)", values.len());
            }
            tx.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                values,
            ))
            .await?;
        }
        Ok(())
    }

    /// A read transaction over the acting person's organisation. Only the authentication layer
    /// (from a verified token) builds a `TenantCtx` to pass here; a signed access token's
    /// session and role are confirmed in the transaction's first statement.
    pub async fn read(&self, ctx: &TenantCtx) -> crate::error::Result<TenantTx> {
        self.enter(ctx, false, Planning::PerRequest).await
    }

    /// Like [`Db::read`], with the transaction's statements planned as `planning` says.
    pub async fn read_planned(
        &self,
        ctx: &TenantCtx,
        planning: Planning,
    ) -> crate::error::Result<TenantTx> {
        self.enter(ctx, false, planning).await
    }

    /// A write transaction over the acting person's organisation.
    pub async fn write(&self, ctx: &TenantCtx) -> crate::error::Result<TenantTx> {
        self.enter(ctx, true, Planning::PerRequest).await
    }

    /// Begins a transaction for `ctx`. For a signed access token one statement both enters
    /// the tenant's scope and reads the session's membership role (PostgreSQL:
    /// `docket_enter_session`, which sets `app.org_id` first so row security applies to it);
    /// a session that ended, a membership that ended or a role that changed since the token
    /// was signed is 401, and the client refreshes its token.
    async fn enter(
        &self,
        ctx: &TenantCtx,
        write: bool,
        planning: Planning,
    ) -> crate::error::Result<TenantTx> {
        let viewer = access::project::walled_viewer(ctx);
        let (Some(proof), Some(session_id)) = (ctx.proof(), ctx.session_id) else {
            let Began { tx, turn } = self.begin(write).await?;
            self.set_scope(&tx, "app.org_id", ctx.org_id, planning, viewer)
                .await?;
            return Ok(self.tenant_tx(tx, turn, ctx.org_id, viewer));
        };
        let Began { tx, turn } = self.begin(write).await?;
        let (backend, sql) = match (self.backend, viewer) {
            (Backend::Postgres, None) => (
                DbBackend::Postgres,
                "SELECT docket_enter_session($1, $2, $3, $4, $5) AS role",
            ),
            // The walled viewer is named in the same statement (the role it is walled for is
            // the one the statement confirms).
            (Backend::Postgres, Some(_)) => (
                DbBackend::Postgres,
                "SELECT docket_enter_session($1, $2, $3, $4, $5) AS role, \
                 set_config('app.viewer_id', $6, true)",
            ),
            (Backend::Sqlite, _) => (DbBackend::Sqlite, migrations::SESSION_ROLE_SQLITE),
        };
        // SQLite's statement has four placeholders and plans every statement once anyway.
        let mut values = vec![
            ctx.org_id.into(),
            session_id.into(),
            ctx.user_id.into(),
            now().into(),
        ];
        if self.backend == Backend::Postgres {
            values.push(planning.plan_cache_mode().into());
            if let Some(viewer) = viewer {
                values.push(viewer.to_string().into());
            }
        }
        let row = tx.query_one_raw(statement(backend, sql, values)).await?;
        let role: Option<String> = match row {
            Some(row) => row.try_get("", "role")?,
            None => None,
        };
        match role.as_deref().and_then(crate::access::Role::parse) {
            Some(role) if role == ctx.role => proof.confirm(),
            Some(_) => {
                return Err(crate::error::Error::invalid_token(
                    "your role changed since this access token was issued; refresh it",
                ));
            }
            None => {
                return Err(crate::error::Error::invalid_token(
                    "the access token is invalid, expired or revoked",
                ));
            }
        }
        Ok(self.tenant_tx(tx, turn, ctx.org_id, viewer))
    }

    /// For the few places that act for an organisation before anyone is authenticated in it
    /// (creating it at sign-up; refresh tokens, which name their organisation) and for workers
    /// acting on an event of that organisation.
    pub(crate) async fn read_org(&self, org_id: Uuid) -> Result<TenantTx, DbErr> {
        self.scoped(org_id, false, Planning::PerRequest).await
    }

    /// Like [`Db::read_org`], to write.
    pub(crate) async fn write_org(&self, org_id: Uuid) -> Result<TenantTx, DbErr> {
        self.scoped(org_id, true, Planning::PerRequest).await
    }

    async fn scoped(
        &self,
        org_id: Uuid,
        write: bool,
        planning: Planning,
    ) -> Result<TenantTx, DbErr> {
        let Began { tx, turn } = self.begin(write).await?;
        self.set_scope(&tx, "app.org_id", org_id, planning, None)
            .await?;
        Ok(self.tenant_tx(tx, turn, org_id, None))
    }

    fn tenant_tx(
        &self,
        tx: DatabaseTransaction,
        turn: Option<Turn>,
        org_id: Uuid,
        viewer: Option<Uuid>,
    ) -> TenantTx {
        TenantTx {
            tx,
            _turn: turn,
            org_id,
            viewer,
            signals: self.signals.clone(),
            wrote_outbox: AtomicBool::new(false),
            wrote_mail: AtomicBool::new(false),
            wrote_webhooks: AtomicBool::new(false),
            wrote_stream: AtomicBool::new(false),
            access_changed: Mutex::new(Vec::new()),
        }
    }

    /// A transaction that sees one person's own memberships and organisations across tenants
    /// (to log in and to switch organisation), and global identity tables.
    pub(crate) async fn member(&self, user_id: Uuid) -> Result<MemberTx, DbErr> {
        let Began { tx, turn } = self.begin(false).await?;
        self.set_scope(&tx, "app.user_id", user_id, Planning::PerRequest, None)
            .await?;
        Ok(MemberTx {
            tx,
            _turn: turn,
            user_id,
        })
    }

    /// Housekeeping across tenants: may read and delete (never write) the rows of the tables
    /// whose migration opened them to maintenance, such as expired idempotency records.
    pub(crate) async fn maintenance(&self) -> Result<MaintenanceTx, DbErr> {
        let Began { tx, turn } = self.begin(true).await?;
        if self.backend == Backend::Postgres {
            tx.execute_unprepared("SELECT set_config('app.maintenance', 'on', true)")
                .await?;
        }
        Ok(MaintenanceTx { tx, _turn: turn })
    }

    /// Deletes, across tenants, the rows of `E` that `expired` matches: what has outlived its
    /// use (maintenance scope).
    pub(crate) async fn purge<E: EntityTrait>(&self, expired: Condition) -> Result<u64, DbErr> {
        let tx = self.maintenance().await?;
        let res = E::delete_many().filter(expired).exec(tx.conn()).await?;
        tx.commit().await?;
        Ok(res.rows_affected)
    }

    /// A transaction over global (non-tenant) tables only: users, login throttling.
    pub(crate) async fn global(&self, write: bool) -> Result<GlobalTx, DbErr> {
        let Began { tx, turn } = self.begin(write).await?;
        Ok(GlobalTx { tx, _turn: turn })
    }
}

/// How PostgreSQL plans a transaction's prepared statements (ADR 0029). SQLite plans each
/// statement once per connection whatever this says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Planning {
    /// As the database is configured; by default (`plan_cache_mode = auto`) a statement may be
    /// planned again for each request's values, as it is whenever its custom plans look
    /// cheaper than a generic one.
    PerRequest,
    /// One generic plan per statement and connection (`force_generic_plan`), for statements
    /// whose best plan is the same whatever their values.
    Generic,
}

impl Planning {
    /// The transaction's `plan_cache_mode`, as the first statement passes it to
    /// `docket_enter_session`; none leaves the configured one.
    pub fn plan_cache_mode(self) -> Option<&'static str> {
        match self {
            Planning::PerRequest => None,
            Planning::Generic => Some("force_generic_plan"),
        }
    }
}

/// SQLITE_BUSY, or one of its extended codes: another connection holds the lock.
fn is_sqlite_busy(err: &DbErr) -> bool {
    const SQLITE_BUSY: i64 = 5;
    let (DbErr::Conn(RuntimeErr::SqlxError(e))
    | DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return false;
    };
    e.as_database_error()
        .and_then(|e| e.code())
        .and_then(|code| code.parse::<i64>().ok())
        .is_some_and(|code| code & 0xff == SQLITE_BUSY)
}

/// A transaction just begun, with its writer-queue turn.
struct Began {
    tx: DatabaseTransaction,
    turn: Option<Turn>,
}

/// A tenant entity: has an `org_id` column that scoped queries filter on.
pub(crate) trait TenantEntity: EntityTrait {
    fn org_column() -> Self::Column;

    /// The column naming the project a row belongs to, for tables whose rows a private
    /// project hides from staff who are not its members (see `access::project`).
    fn project_column() -> Option<Self::Column> {
        None
    }
}

/// Declares a tenant table's entity inside its own module: `org_id` leads the primary key, and
/// [`TenantEntity`] lets scoped queries filter on it. Each field may carry attributes (its own
/// `primary_key`, a column type, a doc comment).
macro_rules! tenant_entity {
    ($table:literal walled_by $project:ident { $($body:tt)* }) => {
        crate::store::tenant_entity!(@define $table { $($body)* });
        impl crate::store::TenantEntity for Entity {
            fn org_column() -> Column {
                Column::OrgId
            }
            fn project_column() -> Option<Column> {
                Some(Column::$project)
            }
        }
    };
    ($table:literal { $($body:tt)* }) => {
        crate::store::tenant_entity!(@define $table { $($body)* });
        impl crate::store::TenantEntity for Entity {
            fn org_column() -> Column {
                Column::OrgId
            }
        }
    };
    (@define $table:literal { $($(#[$attr:meta])* $field:ident: $ty:ty),* $(,)? }) => {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = $table)]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub org_id: Uuid,
            $($(#[$attr])* pub $field: $ty),*
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    };
}
pub(crate) use tenant_entity;

macro_rules! scoped_tx {
    ($name:ident { $($field:ident: $ty:ty),* }) => {
        scoped_tx!(@struct $name { $($field: $ty),* });
        impl $name {
            pub async fn commit(self) -> Result<(), DbErr> {
                cost::statement();
                self.tx.commit().await
            }
        }
    };
    (@struct $name:ident { $($field:ident: $ty:ty),* }) => {
        pub struct $name {
            tx: DatabaseTransaction,
            /// The writer queue's turn (SQLite writes), given up when the transaction ends.
            _turn: Option<Turn>,
            $($field: $ty),*
        }
        impl $name {
            pub(crate) fn conn(&self) -> &DatabaseTransaction {
                &self.tx
            }
            pub async fn rollback(self) -> Result<(), DbErr> {
                cost::statement();
                self.tx.rollback().await
            }
        }
    };
}

scoped_tx!(@struct TenantTx {
    org_id: Uuid,
    viewer: Option<Uuid>,
    signals: Arc<Signals>,
    wrote_outbox: AtomicBool,
    wrote_mail: AtomicBool,
    wrote_webhooks: AtomicBool,
    wrote_stream: AtomicBool,
    access_changed: Mutex<Vec<Uuid>>
});
scoped_tx!(MemberTx { user_id: Uuid });
scoped_tx!(GlobalTx {});
scoped_tx!(MaintenanceTx {});

impl TenantTx {
    pub fn org_id(&self) -> Uuid {
        self.org_id
    }

    /// Commits, then wakes what waits for the outbox rows or stream entries written here.
    pub async fn commit(self) -> Result<(), DbErr> {
        cost::statement();
        self.tx.commit().await?;
        if self.wrote_outbox.into_inner() {
            self.signals.outbox.notify_one();
        }
        if self.wrote_mail.into_inner() {
            self.signals.mail.notify_one();
        }
        if self.wrote_webhooks.into_inner() {
            self.signals.webhooks.notify_one();
        }
        if self.wrote_stream.into_inner() {
            // No receiver (no stream connection) is not an error.
            let _ = self.signals.stream.send(self.org_id);
        }
        for user_id in self.access_changed.into_inner().unwrap_or_default() {
            let _ = self.signals.access.send(user_id);
        }
        Ok(())
    }

    /// Notes that a person's access to this tenant changed (role, membership, a session
    /// ended). At commit their open streams re-check it at once, in this process and (through
    /// `NOTIFY`, delivered at commit) in every other.
    pub(crate) async fn access_changed(&self, user_id: Uuid) -> Result<(), DbErr> {
        if self.tx.get_database_backend() == DbBackend::Postgres {
            self.tx
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT pg_notify('docket_access', $1)",
                    [user_id.to_string().into()],
                ))
                .await?;
        }
        if let Ok(mut changed) = self.access_changed.lock() {
            changed.push(user_id);
        }
        Ok(())
    }

    /// Notes that this transaction inserted outbox rows (the dispatcher wakes at commit).
    pub(crate) fn wrote_outbox(&self) {
        self.wrote_outbox.store(true, Ordering::Relaxed);
    }

    /// Notes that this transaction queued mails (the sender wakes at commit).
    pub(crate) fn wrote_mail(&self) {
        self.wrote_mail.store(true, Ordering::Relaxed);
    }

    /// Notes that this transaction queued webhook deliveries (the sender wakes at commit).
    pub(crate) fn wrote_webhooks(&self) {
        self.wrote_webhooks.store(true, Ordering::Relaxed);
    }

    /// Notes that this transaction published stream entries (streams wake at commit).
    pub(crate) fn wrote_stream(&self) {
        self.wrote_stream.store(true, Ordering::Relaxed);
    }
    /// Runs `step` so that, should it fail, what it wrote is undone and the transaction goes
    /// on (a savepoint): one failed item of a batch does not spoil the others.
    pub(crate) async fn attempt<T, F>(&self, step: F) -> crate::error::Result<T>
    where
        F: std::future::Future<Output = crate::error::Result<T>>,
    {
        self.tx.execute_unprepared("SAVEPOINT attempt").await?;
        match step.await {
            Ok(value) => {
                self.tx
                    .execute_unprepared("RELEASE SAVEPOINT attempt")
                    .await?;
                Ok(value)
            }
            Err(err) => {
                self.tx
                    .execute_unprepared("ROLLBACK TO SAVEPOINT attempt")
                    .await?;
                self.tx
                    .execute_unprepared("RELEASE SAVEPOINT attempt")
                    .await?;
                Err(err)
            }
        }
    }

    /// Serialises membership-changing transactions of one tenant (rules such as "the last owner
    /// stays" read then write). SQLite's `BEGIN IMMEDIATE` already serialises every writer.
    pub(crate) async fn lock_tenant(&self) -> Result<(), DbErr> {
        if self.tx.get_database_backend() == DbBackend::Postgres {
            self.tx
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE",
                    [self.org_id.into()],
                ))
                .await?;
        }
        Ok(())
    }

    /// The person whose project memberships wall this transaction, if any
    /// (`access::project::walled_viewer`).
    pub fn viewer(&self) -> Option<Uuid> {
        self.viewer
    }

    /// `AND <column> NOT IN (<projects hidden from the viewer>)` for raw statements, or
    /// nothing when no viewer walls this transaction.
    pub(crate) fn wall_sql(&self, column: &str) -> String {
        access::project::wall_sql(self.postgres(), self.org_id, self.viewer, column)
    }

    fn postgres(&self) -> bool {
        self.tx.get_database_backend() == DbBackend::Postgres
    }

    /// The projects hidden from the transaction's viewer (none when nobody walls it).
    pub(crate) async fn hidden_projects(&self) -> Result<Vec<Uuid>, DbErr> {
        let Some(viewer) = self.viewer else {
            return Ok(Vec::new());
        };
        let backend = self.tx.get_database_backend();
        let rows = self
            .tx
            .query_all_raw(backend.build(&access::project::hidden_projects(self.org_id, viewer)))
            .await?;
        rows.iter().map(|row| row.try_get("", "id")).collect()
    }

    /// This tenant's rows of `E`, less those of projects hidden from the viewer (every walled
    /// table names its project in a column that is never empty).
    fn scope<E: TenantEntity>(&self) -> Condition {
        use sea_orm::sea_query::{Expr, ExprTrait as _};
        let mut scope = Condition::all().add(E::org_column().eq(self.org_id));
        if let (Some(column), Some(viewer)) = (E::project_column(), self.viewer) {
            scope = scope.add(
                Expr::col((E::default(), column))
                    .not_in_subquery(access::project::hidden_projects(self.org_id, viewer)),
            );
        }
        scope
    }

    /// `SELECT … WHERE org_id = <this tenant>`: the starting point of every tenant read.
    pub(crate) fn find<E: TenantEntity>(&self) -> Select<E> {
        E::find().filter(self.scope::<E>())
    }

    /// `UPDATE … WHERE org_id = <this tenant>`: SQLite has no row security behind it, so the
    /// filter is never left to the caller.
    pub(crate) fn update_many<E: TenantEntity>(&self) -> UpdateMany<E> {
        E::update_many().filter(self.scope::<E>())
    }

    /// `DELETE … WHERE org_id = <this tenant>`.
    pub(crate) fn delete_many<E: TenantEntity>(&self) -> DeleteMany<E> {
        E::delete_many().filter(self.scope::<E>())
    }

    /// One page of `E`, newest first by its (time-ordered, v7) id column `id`: the
    /// `page.limit + 1` rows after the page's cursor (the extra row says whether more follow).
    pub(crate) fn newest_first<E: TenantEntity>(
        &self,
        id: E::Column,
        page: &PageRequest,
    ) -> crate::error::Result<Select<E>> {
        let mut query = self.find::<E>().order_by_desc(id).limit(page.limit + 1);
        if let Some(after) = page.after_id()? {
            query = query.filter(id.lt(after));
        }
        Ok(query)
    }

    /// The organisation's own row of a table that holds one per organisation (keyed by
    /// `org_id`), inserted as `fresh` when missing, locked until the transaction ends: the row
    /// that changes of one kind in one organisation queue on.
    pub(crate) async fn lock_own_row<E: TenantEntity>(
        &self,
        fresh: E::ActiveModel,
    ) -> Result<E::Model, DbErr> {
        E::insert(fresh)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(E::org_column())
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.tx)
            .await?;
        self.find_for_update::<E>()
            .one(&self.tx)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("the organisation's own row".into()))
    }

    /// Like `find`, for rows this transaction is about to change: `FOR UPDATE` on PostgreSQL, so
    /// concurrent writers queue instead of acting on what they read before another committed.
    /// (SQLite's `BEGIN IMMEDIATE` already admits one writer at a time.)
    pub(crate) fn find_for_update<E: TenantEntity>(&self) -> Select<E> {
        self.find::<E>().lock_exclusive()
    }
}

impl MemberTx {
    pub fn user_id(&self) -> Uuid {
        self.user_id
    }
}

/// Marks the row of a single-use link (`key` = `value`) used, setting `used_at` where it is still
/// empty, and says whether this caller did: of concurrent callers with one link, one wins.
pub(crate) async fn use_once<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    key: E::Column,
    used_at: E::Column,
    value: &str,
) -> Result<bool, DbErr> {
    let done = E::update_many()
        .col_expr(used_at, sea_orm::sea_query::Expr::value(chrono::Utc::now()))
        .filter(key.eq(value))
        .filter(used_at.is_null())
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}

/// A raw statement written with PostgreSQL's `$1, $2, …` placeholders, for either backend
/// (SQLite reads the same positions as `?1, ?2, …`). Values travel as parameters, never in the
/// text: a `$` that is not a placeholder is refused rather than rewritten.
pub(crate) fn statement(
    backend: DbBackend,
    sql: &str,
    values: impl IntoIterator<Item = sea_orm::Value>,
) -> Statement {
    let placeholders_only = sql
        .match_indices('$')
        .all(|(i, _)| sql[i + 1..].starts_with(|c: char| c.is_ascii_digit()));
    assert!(
        placeholders_only,
        "a raw statement may use `$` only for placeholders: {sql}"
    );
    let sql = match backend {
        DbBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// A column of a row, decoded by the driver itself. sea-orm decodes a nullable column as its
/// value or an error, and formats that error's message for every `NULL` it meets only to drop
/// it: on a page of tickets, with their mostly empty dates, that was 8% of the server's CPU.
pub(crate) fn column<T>(row: &QueryResult, name: &str) -> Result<T, DbErr>
where
    T: TryGetable
        + for<'r> sqlx::Decode<'r, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
        + for<'r> sqlx::Decode<'r, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>,
{
    use sqlx::Row as _;
    let decoded = if let Some(row) = row.try_as_pg_row() {
        row.try_get::<T, _>(name)
    } else if let Some(row) = row.try_as_sqlite_row() {
        row.try_get::<T, _>(name)
    } else {
        return row.try_get("", name);
    };
    decoded.map_err(|e| DbErr::Type(format!("{name}: {e}")))
}

/// `t` at the precision both databases store (microseconds), so what is written is what is
/// read back and compared.
pub(crate) fn to_micros(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::DurationRound as _;
    t.duration_trunc(chrono::TimeDelta::microseconds(1))
        .unwrap_or(t)
}

pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    to_micros(chrono::Utc::now())
}

/// True when the error is a unique-constraint violation (a duplicate the caller can fix).
pub(crate) fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_either_backend() {
        let sql = "SELECT a FROM t WHERE b = $1 AND c = $2";
        let sqlite = statement(DbBackend::Sqlite, sql, [1.into(), 2.into()]);
        assert_eq!(sqlite.sql, "SELECT a FROM t WHERE b = ?1 AND c = ?2");
        let postgres = statement(DbBackend::Postgres, sql, [1.into(), 2.into()]);
        assert_eq!(postgres.sql, sql);
    }

    #[test]
    #[should_panic(expected = "only for placeholders")]
    fn a_dollar_that_is_no_placeholder_is_refused() {
        statement(
            DbBackend::Sqlite,
            "SELECT '$ price' WHERE a = $1",
            [1.into()],
        );
    }
}
