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
    /// How long a request waits for a free connection before it is answered 503 (busy) with
    /// `Retry-After`, in milliseconds.
    #[arg(long, env = "DOCKET_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 10_000)]
    pub db_acquire_timeout_ms: u64,
    /// PostgreSQL: maximum connections in the pool of a worker that runs inside `serve`, kept
    /// apart from the requests' pool so the worker never queues behind requests for one.
    #[arg(long, env = "DOCKET_DB_WORKER_CONNECTIONS", default_value_t = 8)]
    pub db_worker_connections: u32,
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
    /// Open connections at most; one more is answered 503 and closed.
    #[arg(long, env = "DOCKET_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a connection may take to send a request head, counted from when it opened or
    /// finished its previous request (slow senders and idle keep-alives are closed after it).
    #[arg(long, env = "DOCKET_HEADER_TIMEOUT", default_value_t = 10)]
    pub header_timeout_secs: u64,
    #[command(flatten)]
    pub mail: MailConfig,
    #[command(flatten)]
    pub files: FilesConfig,
    #[command(flatten)]
    pub rate_limits: RateLimitConfig,
    #[command(flatten)]
    pub webhooks: WebhookConfig,
    #[command(flatten)]
    pub replica: ReplicaConfig,
    #[command(flatten)]
    pub data_rights: DataRightsConfig,
    #[command(flatten)]
    pub plans: PlansConfig,
    #[command(flatten)]
    pub billing: BillingConfig,
    /// Adds a `Server-Timing` header to every answer with the database statements and
    /// transactions the request cost (for measuring; off by default, as it tells clients
    /// something of the server's inner workings).
    #[arg(long, env = "DOCKET_SERVER_TIMING", default_value_t = false)]
    pub server_timing: bool,
}

/// Organisation deletion and exports.
#[derive(Clone, Debug, clap::Args)]
pub struct DataRightsConfig {
    /// Days a deleted organisation stays closed, and restorable by its owners, before every
    /// row and file of it is purged (0: purged at once).
    #[arg(long, env = "DOCKET_ORG_DELETION_GRACE_DAYS", default_value_t = 14,
        value_parser = clap::value_parser!(u32).range(0..=3650))]
    pub org_deletion_grace_days: u32,
}

impl Default for DataRightsConfig {
    fn default() -> Self {
        Self {
            org_deletion_grace_days: 14,
        }
    }
}

/// Plans and billing (all off without a plans file).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct PlansConfig {
    /// A TOML file of plans and their limits (`[plans.NAME]` with `seats`, `projects`,
    /// `storage_bytes`, `api_requests_per_minute`, `webhooks`, `label`, `stripe_price_id`).
    /// Without it nothing is limited and no billing appears.
    #[arg(long, env = "DOCKET_PLANS_FILE")]
    pub plans_file: Option<std::path::PathBuf>,
    /// The plan of organisations that have not chosen one (default: the first plan by name).
    #[arg(long, env = "DOCKET_DEFAULT_PLAN")]
    pub default_plan: Option<String>,
}

/// Taking payment through Stripe (off without a secret key, or without plans).
#[derive(Clone, Debug, clap::Args)]
pub struct BillingConfig {
    /// Stripe's secret API key (`sk_live_…`, `sk_test_…`): turns on checkout and the billing
    /// portal for plans that name a `stripe_price_id`.
    #[arg(long, env = "DOCKET_STRIPE_SECRET_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub stripe_secret_key: Option<Secret>,
    /// The signing secret of the webhook endpoint (`whsec_…`) that Stripe sends
    /// `/api/v1/billing/stripe/webhook` events with; several, comma-separated, while one is
    /// rolled.
    #[arg(long, env = "DOCKET_STRIPE_WEBHOOK_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub stripe_webhook_secret: Option<Secret>,
    /// Where Stripe's API answers (tests point it at a local fake Stripe).
    #[arg(
        long,
        env = "DOCKET_STRIPE_API_BASE",
        default_value = "https://api.stripe.com"
    )]
    pub stripe_api_base: String,
    /// Days an organisation whose payment failed keeps its paid plan before it is moved to the
    /// default plan (paying later brings the paid plan back).
    #[arg(long, env = "DOCKET_BILLING_GRACE_DAYS", default_value_t = 7,
        value_parser = clap::value_parser!(u32).range(0..=365))]
    pub billing_grace_days: u32,
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self {
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            stripe_api_base: "https://api.stripe.com".into(),
            billing_grace_days: 7,
        }
    }
}

/// A read replica for reports.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ReplicaConfig {
    /// `postgres://…` of a streaming replica of `DATABASE_URL` that reports read from while it
    /// is reachable and no further behind than `DOCKET_REPLICA_MAX_LAG_SECS`.
    #[arg(long, env = "DATABASE_REPLICA_URL", value_parser = parse_secret, hide_env_values = true)]
    pub database_replica_url: Option<Secret>,
    /// How far behind the primary (seconds of replay) the replica may be and still serve
    /// reports; beyond it, and while it does not answer, reports read from the primary.
    #[arg(long, env = "DOCKET_REPLICA_MAX_LAG_SECS", default_value_t = 30)]
    pub replica_max_lag_secs: u64,
}

/// Outbound webhook requests.
#[derive(Clone, Debug, clap::Args)]
pub struct WebhookConfig {
    /// Networks (CIDRs, comma-separated) webhooks may reach although the SSRF guard refuses
    /// them: loopback, private, link-local, shared and unique-local addresses, say
    /// `10.20.0.0/16` for an integration inside the operator's own network.
    #[arg(long, env = "DOCKET_WEBHOOK_ALLOWED_NETS", value_delimiter = ',')]
    pub webhook_allowed_nets: Vec<ipnet::IpNet>,
    /// Seconds one delivery attempt may take, the answer included.
    #[arg(long, env = "DOCKET_WEBHOOK_TIMEOUT_SECS", default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(1..=60))]
    pub webhook_timeout_secs: u64,
}

/// Requests per minute, by who sends them; 0 turns a limit off (load tests and benchmarks).
/// Each API process counts its own requests (ADR 0016).
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct RateLimitConfig {
    /// Per credential: one sign-in session, or one API token.
    #[arg(long, env = "DOCKET_RATE_LIMIT_PER_MINUTE", default_value_t = 600)]
    pub rate_limit_per_minute: u32,
    /// Per organisation, all its credentials together.
    #[arg(long, env = "DOCKET_RATE_LIMIT_ORG_PER_MINUTE", default_value_t = 3000)]
    pub rate_limit_org_per_minute: u32,
    /// Per client address, for requests without a token (sign-in, sign-up, inbound mail, …).
    #[arg(long, env = "DOCKET_RATE_LIMIT_ANON_PER_MINUTE", default_value_t = 120)]
    pub rate_limit_anon_per_minute: u32,
    /// Sign-ups per client address per hour, successful or not (counted in the database, so
    /// every process shares it).
    #[arg(long, env = "DOCKET_SIGNUP_LIMIT_PER_HOUR", default_value_t = 20)]
    pub signup_limit_per_hour: u32,
    /// Invitation mails one organisation may send per day (a fifth of it in its first week;
    /// counted in the database); one address is invited at most 3 times a day, 10 minutes
    /// apart. 0 = no limits (tests, imports).
    #[arg(long, env = "DOCKET_INVITATIONS_PER_DAY", default_value_t = 100)]
    pub invitations_per_day: u32,
    /// Inbound mail requests (`POST /inbound/email/…`) one client address may have in flight;
    /// 0 = no limit.
    #[arg(long, env = "DOCKET_INBOUND_PER_ADDRESS", default_value_t = 16)]
    pub inbound_per_address: u32,
}

/// Where attachment files are kept, and how much of them.
#[derive(Clone, Debug, clap::Args)]
pub struct FilesConfig {
    /// Unset: `attachments/` under the data directory. `s3://bucket/prefix`: an S3-compatible
    /// bucket, with endpoint and credentials from the usual variables (`AWS_ENDPOINT`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`).
    #[arg(long, env = "DOCKET_OBJECT_STORE_URL")]
    pub object_store_url: Option<String>,
    /// Largest accepted attachment, in bytes.
    #[arg(long, env = "DOCKET_MAX_ATTACHMENT_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub max_attachment_bytes: u64,
    /// Bytes of attachments one organisation may keep in all; 0 = no limit.
    #[arg(long, env = "DOCKET_ORG_STORAGE_QUOTA_BYTES", default_value_t = 10 * 1024 * 1024 * 1024)]
    pub org_storage_quota_bytes: u64,
}

/// Mail in and out. Without `smtp_url` nothing is sent: mails are recorded as not sent.
#[derive(Clone, Debug, clap::Args)]
pub struct MailConfig {
    /// `smtp://host:port` (STARTTLS when the server offers it), `smtp://…?tls=required`,
    /// `smtps://host:port` (TLS from the start), with optional `user:password@`. Unset: mail off.
    #[arg(long, env = "DOCKET_SMTP_URL", value_parser = parse_secret, hide_env_values = true)]
    pub smtp_url: Option<Secret>,
    /// The sender of every mail, e.g. `Docket <help@example.com>`; its domain names Docket's
    /// message ids and reply addresses.
    #[arg(
        long,
        env = "DOCKET_MAIL_FROM",
        default_value = "Docket <docket@localhost>"
    )]
    pub mail_from: String,
    /// Base of the links in mails (the web app's public address).
    #[arg(
        long,
        env = "DOCKET_PUBLIC_URL",
        default_value = "http://localhost:8080"
    )]
    pub public_url: String,
    /// Largest inbound message accepted, in bytes.
    #[arg(long, env = "DOCKET_MAX_EMAIL_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub max_email_bytes: usize,
    /// Automatic mails (acknowledgements) one sender may receive per day.
    #[arg(long, env = "DOCKET_AUTO_REPLIES_PER_DAY", default_value_t = 5)]
    pub auto_replies_per_day: u32,
    /// Seconds between two looks into each organisation's IMAP mailbox.
    #[arg(long, env = "DOCKET_IMAP_POLL_SECS", default_value_t = 60)]
    pub imap_poll_secs: u64,
    /// The `authserv-id`s (comma-separated) of the mail systems in front of Docket whose
    /// `Authentication-Results` headers it believes, for mail that arrives by the inbound
    /// address or the pipe command (an IMAP mailbox names its own). Only mail they say passed
    /// DMARC (or DKIM aligned with its From) adds people to a conversation or gets an
    /// acknowledgement. Unset: no mail is taken as authenticated.
    #[arg(long, env = "DOCKET_MAIL_TRUSTED_AUTHSERV_IDS", value_delimiter = ',')]
    pub mail_trusted_authserv_ids: Vec<String>,
    /// Confirm sign-ups by a mailed link (when mail is on): the sign-up answer is then the same
    /// whether or not the address has an account. `false` signs up at once.
    #[arg(long, env = "DOCKET_SIGNUP_CONFIRMATION", default_value_t = true, action = clap::ArgAction::Set)]
    pub signup_confirmation: bool,
}

/// The event dispatcher's knobs (in `serve` and in `docket worker`).
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerConfig {
    /// Events one dispatcher claims at a time.
    #[arg(long, env = "DOCKET_WORKER_BATCH", default_value_t = 500)]
    pub worker_batch: u64,
    /// Seconds a claim lasts: a crashed worker's events are taken over after this.
    #[arg(long, env = "DOCKET_WORKER_LEASE", default_value_t = 30)]
    pub worker_lease_secs: u64,
    /// Attempts before an event is dead (listed at `/admin/events?status=dead`).
    #[arg(long, env = "DOCKET_WORKER_MAX_ATTEMPTS", default_value_t = 10,
        value_parser = clap::value_parser!(i32).range(1..=100))]
    pub worker_max_attempts: i32,
    /// First retry delay in milliseconds; it doubles per attempt (with jitter), up to an hour.
    #[arg(long, env = "DOCKET_WORKER_RETRY_BASE_MS", default_value_t = 1000)]
    pub worker_retry_base_ms: u64,
    /// How often an idle dispatcher looks for due events without a wake-up, in milliseconds
    /// (retries that come due, and missed notifications).
    #[arg(long, env = "DOCKET_WORKER_POLL_MS", default_value_t = 1000)]
    pub worker_poll_ms: u64,
}

fn parse_secret(value: &str) -> Result<Secret, String> {
    Ok(Secret::new(value))
}
