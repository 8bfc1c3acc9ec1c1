//! Runtime configuration: flags and environment, read once at start-up and passed down.

use std::{fmt, net::SocketAddr, path::PathBuf};

/// A value that must never reach a log line: `Debug` prints a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Where the data lives. `None` database URL means SQLite under the data directory.
#[derive(Clone, Debug, clap::Args)]
pub struct StoreConfig {
    /// Directory for the SQLite database, the generated signing key and local attachments.
    #[arg(long, env = "DOCKET_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// `postgres://…` to run on PostgreSQL, `sqlite://…` for an explicit SQLite file.
    #[arg(long, env = "DATABASE_URL", value_parser = parse_secret, hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// PostgreSQL role the server's queries run as (created by `migrate`; it neither owns the
    /// tables nor bypasses row-level security).
    #[arg(long, env = "DOCKET_DB_APP_ROLE", default_value = "docket_app")]
    pub db_app_role: String,
    /// Maximum connections in the pool.
    #[arg(long, env = "DOCKET_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
}

#[derive(Clone, Debug, clap::Args)]
pub struct ServeConfig {
    /// Address the HTTP server listens on.
    #[arg(long, env = "DOCKET_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Key that signs access tokens. Generated and kept in the data directory when absent.
    #[arg(long, env = "DOCKET_JWT_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "DOCKET_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "DOCKET_ACCESS_TOKEN_TTL", default_value_t = 15 * 60)]
    pub access_token_ttl_secs: u64,
    /// Lifetime of a session's refresh token chain, in seconds.
    #[arg(long, env = "DOCKET_REFRESH_TOKEN_TTL", default_value_t = 30 * 24 * 3600)]
    pub refresh_token_ttl_secs: u64,
}

fn parse_secret(value: &str) -> Result<Secret, String> {
    Ok(Secret::new(value))
}
