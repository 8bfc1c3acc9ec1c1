//! Reads that may go to a streaming replica (reports): the replica serves them while it
//! answers within a moment and has replayed the primary's changes up to the configured lag;
//! otherwise they read from the primary, so a report is never wrong by more than the lag and
//! never fails because the replica is down.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend, Statement};

use super::Db;
use crate::config::{ReplicaConfig, StoreConfig};

/// How long the replica has to answer the lag check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Seconds the replica's replay trails the primary: 0 when it has replayed all it received
/// (an idle primary sends nothing, so the last replayed change may be old without any lag).
const LAG: &str = "SELECT CASE \
    WHEN NOT pg_is_in_recovery() THEN 0::float8 \
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8 \
    ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8, 1e9) END";

/// Which database a read was served from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Primary,
    Replica,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Primary => "primary",
            Source::Replica => "replica",
        }
    }
}

#[derive(Clone)]
pub struct Reads {
    primary: Db,
    replica: Option<Db>,
    max_lag: Duration,
}

impl Reads {
    /// Every read from the primary.
    pub fn primary_only(primary: Db) -> Reads {
        Reads {
            primary,
            replica: None,
            max_lag: Duration::ZERO,
        }
    }

    /// Reads that may go to the configured replica. The replica's pool connects lazily, so a
    /// replica that is down at start delays nothing.
    pub async fn new(
        primary: Db,
        store: &StoreConfig,
        cfg: &ReplicaConfig,
    ) -> anyhow::Result<Reads> {
        let Some(url) = &cfg.database_replica_url else {
            return Ok(Reads::primary_only(primary));
        };
        anyhow::ensure!(
            primary.backend() == super::Backend::Postgres,
            "DATABASE_REPLICA_URL needs PostgreSQL as DATABASE_URL (SQLite has no replicas)"
        );
        anyhow::ensure!(
            url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://"),
            "DATABASE_REPLICA_URL must be a postgres:// URL (a streaming replica of DATABASE_URL)"
        );
        let mut opts = ConnectOptions::new(url.expose().to_owned());
        let role = store.db_app_role.clone();
        opts.max_connections(store.db_max_connections.clamp(1, 8))
            .min_connections(0)
            .connect_timeout(CHECK_TIMEOUT)
            .acquire_timeout(CHECK_TIMEOUT)
            .connect_lazy(true)
            .sqlx_logging(false)
            .map_sqlx_postgres_opts(move |o| o.options([("role", role.as_str())]));
        let conn = Database::connect(opts).await?;
        Ok(Reads {
            replica: Some(primary.sibling(conn)),
            primary,
            max_lag: Duration::from_secs(cfg.replica_max_lag_secs),
        })
    }

    /// The database to read from now, and which one it is.
    pub async fn pick(&self) -> (Db, Source) {
        let Some(replica) = &self.replica else {
            return (self.primary.clone(), Source::Primary);
        };
        let check = replica
            .connection()
            .query_one_raw(Statement::from_string(DbBackend::Postgres, LAG));
        match tokio::time::timeout(CHECK_TIMEOUT, check).await {
            Ok(Ok(Some(row))) => match row.try_get_by_index::<f64>(0) {
                Ok(lag) if lag <= self.max_lag.as_secs_f64() => (replica.clone(), Source::Replica),
                Ok(lag) => {
                    tracing::warn!(
                        lag_secs = lag,
                        "the replica is behind; reports read from the primary"
                    );
                    (self.primary.clone(), Source::Primary)
                }
                Err(err) => self.fall_back(&format!("{err:?}")),
            },
            Ok(Ok(None)) => self.fall_back("no answer"),
            Ok(Err(err)) => self.fall_back(&err.to_string()),
            Err(_) => self.fall_back("timed out"),
        }
    }

    fn fall_back(&self, why: &str) -> (Db, Source) {
        tracing::warn!(
            error = why,
            "the replica is unavailable; reports read from the primary"
        );
        (self.primary.clone(), Source::Primary)
    }
}
