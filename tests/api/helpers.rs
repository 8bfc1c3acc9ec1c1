use std::time::Duration;

use docket::{
    app::{self, Running},
    config::{
        BillingConfig, DataRightsConfig, FilesConfig, MailConfig, PlansConfig, RateLimitConfig,
        ReplicaConfig, Secret, ServeConfig, StoreConfig, WebhookConfig, WorkerConfig,
    },
    events::{Handlers, dispatch},
};
use reqwest::{Method, StatusCode, header::HeaderMap};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Map, Value, json};
use uuid::Uuid;

pub const JWT_SECRET: &str = "test-signing-key-that-is-long-enough-0123456789";
pub const PASSWORD: &str = "correct horse battery";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend() -> Backend {
    match std::env::var("DOCKET_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("sqlite") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("DOCKET_TEST_BACKEND={other}: use sqlite or postgres"),
    }
}

/// The PostgreSQL server tests create their databases on (as a superuser, like `migrate`).
pub fn pg_admin_url() -> String {
    std::env::var("DOCKET_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// The URL the server's store uses (owner rights): for tests that inspect the database.
    pub database_url: String,
    /// The store settings the server started with.
    pub store: StoreConfig,
    running: Option<Running>,
    _dir: tempfile::TempDir,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> &Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "body: {}",
            self.body
        );
        assert_eq!(self.code(), code, "body: {}", self.body);
        assert_eq!(self.body["status"].as_u64(), Some(status as u64));
        assert!(
            self.body["title"].is_string()
                && self.body["detail"].is_string()
                && self.body["type"].is_string()
        );
        self
    }
    #[track_caller]
    pub fn assert_ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        &self.body
    }
}

/// `field` of every element of the array `items` (e.g. the kinds of a timeline page).
pub fn pluck(items: &Value, field: &str) -> Vec<String> {
    items
        .as_array()
        .expect("an array")
        .iter()
        .map(|item| item[field].as_str().expect("a string field").to_owned())
        .collect()
}

/// A signed-in person: their tokens and ids.
#[derive(Clone, Debug)]
pub struct Session {
    pub token: String,
    pub refresh: String,
    pub user_id: String,
    pub org_id: String,
    pub email: String,
}

impl Session {
    pub fn from_auth(body: &Value) -> Self {
        Session {
            token: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
            user_id: body["user"]["id"].as_str().unwrap().to_owned(),
            org_id: body["organization"]["id"].as_str().unwrap().to_owned(),
            email: body["user"]["email"].as_str().unwrap().to_owned(),
        }
    }
}

/// A server without workers: outbox rows stay as the writes left them.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(None).await
}

/// Dispatcher settings that make tests quick: short polls, leases and retry delays.
pub fn fast_worker() -> WorkerConfig {
    WorkerConfig {
        worker_batch: 100,
        worker_lease_secs: 2,
        worker_max_attempts: 3,
        worker_retry_base_ms: 20,
        worker_poll_ms: 100,
    }
}

/// A server that runs the event dispatcher in-process, as `docket serve` does.
pub async fn spawn_app_with_worker() -> TestApp {
    spawn_app_with(Some(fast_worker())).await
}

pub async fn spawn_app_with(worker: Option<WorkerConfig>) -> TestApp {
    spawn_app_tuned(worker, |_, _| {}).await
}

/// A server whose settings `tune` adjusts (a smaller pool, a shorter header timeout, …).
pub async fn spawn_app_tuned(
    worker: Option<WorkerConfig>,
    tune: impl FnOnce(&mut StoreConfig, &mut ServeConfig),
) -> TestApp {
    try_spawn_app_tuned(worker, tune)
        .await
        .expect("server starts")
}

/// Like [`spawn_app_tuned`], for settings the server may refuse to start with.
pub async fn try_spawn_app_tuned(
    worker: Option<WorkerConfig>,
    tune: impl FnOnce(&mut StoreConfig, &mut ServeConfig),
) -> anyhow::Result<TestApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = match backend() {
        Backend::Sqlite => None,
        Backend::Postgres => Some(fresh_pg_database().await),
    };
    let mut store = store_config(dir.path(), database_url.clone());
    let mut serve = ServeConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        jwt_secret: Some(Secret::new(JWT_SECRET)),
        max_body_bytes: 64 * 1024,
        access_token_ttl_secs: 900,
        refresh_token_ttl_secs: 3600,
        max_connections: 256,
        header_timeout_secs: 10,
        mail: mail_config(None),
        files: FilesConfig {
            object_store_url: None,
            max_attachment_bytes: 25 * 1024 * 1024,
            org_storage_quota_bytes: 0,
        },
        // Off: tests send bursts no person would; tests/api/ratelimit.rs turns them on.
        rate_limits: RateLimitConfig {
            rate_limit_per_minute: 0,
            rate_limit_org_per_minute: 0,
            rate_limit_anon_per_minute: 0,
            signup_limit_per_hour: 20,
            // Off: tests invite many people; tests/api/hostile_mail.rs turns it on.
            invitations_per_day: 0,
            inbound_per_address: 8,
        },
        // Test receivers listen on loopback; a short timeout keeps the timeout cases quick.
        webhooks: WebhookConfig {
            webhook_allowed_nets: vec!["127.0.0.0/8".parse().unwrap()],
            webhook_timeout_secs: 2,
        },
        replica: ReplicaConfig::default(),
        data_rights: DataRightsConfig::default(),
        plans: PlansConfig::default(),
        billing: BillingConfig::default(),
        // Every answer says what it cost the database (tests/api/plans.rs holds requests to it).
        server_timing: true,
    };
    tune(&mut store, &mut serve);
    let running = app::start(&store, &serve, worker).await?;
    // SQLite: the default file under the data directory.
    let database_url = database_url
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("docket.db").display()));
    Ok(TestApp {
        base: format!("http://{}", running.addr),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        database_url,
        store,
        running: Some(running),
        _dir: dir,
    })
}

/// A test server's store settings: SQLite under `data_dir`, or `database_url`.
fn store_config(data_dir: &std::path::Path, database_url: Option<String>) -> StoreConfig {
    StoreConfig {
        data_dir: data_dir.to_path_buf(),
        database_url: database_url.map(Secret::new),
        db_app_role: "docket_app".into(),
        db_max_connections: 8,
        db_acquire_timeout_ms: 10_000,
        db_worker_connections: 8,
    }
}

/// Mail settings for a test server: off, or through the SMTP server at `smtp_url`.
pub fn mail_config(smtp_url: Option<String>) -> MailConfig {
    MailConfig {
        smtp_url: smtp_url.map(Secret::new),
        mail_from: "Acme Help <help@docket.test>".into(),
        public_url: "https://docket.test".into(),
        max_email_bytes: 256 * 1024,
        auto_replies_per_day: 3,
        imap_poll_secs: 60,
        // The mail system in front of the test server: mails carrying its
        // `Authentication-Results` (see `mail::AUTHENTICATED`) count as authenticated.
        mail_trusted_authserv_ids: vec!["mx.docket.test".into()],
        // Sign-ups at once, as every test's helper expects; tests/api/hostile.rs confirms them
        // by mail, as a server with mail does by default.
        signup_confirmation: false,
    }
}

/// Where a test server keeps attachments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// A directory under the server's data directory (the default).
    Local,
    /// A fresh bucket on the S3-compatible server `scripts/test` starts (moto), reached through
    /// the `AWS_*` variables it exports.
    S3,
}

impl Store {
    pub const ALL: [Store; 2] = [Store::Local, Store::S3];

    /// The `DOCKET_OBJECT_STORE_URL` for this store: none, or a new bucket.
    pub async fn url(self) -> Option<String> {
        match self {
            Store::Local => None,
            Store::S3 => {
                let endpoint = std::env::var("AWS_ENDPOINT").expect(
                    "AWS_ENDPOINT names the S3-compatible server; scripts/test starts one (moto)",
                );
                let bucket = format!("docket-{}", Uuid::new_v4().simple());
                let made = reqwest::Client::new()
                    .put(format!("{endpoint}/{bucket}"))
                    .send()
                    .await
                    .expect("the S3-compatible server answers");
                assert!(made.status().is_success(), "bucket not created: {made:?}");
                Some(format!("s3://{bucket}/attachments"))
            }
        }
    }
}

pub async fn fresh_pg_database() -> String {
    let admin = Database::connect(pg_admin_url())
        .await
        .expect("PostgreSQL reachable for DOCKET_TEST_BACKEND=postgres");
    let name = format!("docket_test_{}", Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.close().await.ok();
    let admin_url = pg_admin_url();
    let (server, _) = admin_url.rsplit_once('/').expect("database url has a path");
    format!("{server}/{name}")
}

impl TestApp {
    /// A handle on a server running elsewhere (another process) over `database_url`.
    pub fn remote(base: String, database_url: String) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        TestApp {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            store: store_config(dir.path(), Some(database_url.clone())),
            database_url,
            running: None,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.request(method, path, token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(req).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(Method::POST, path, token, Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), None).await
    }
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    /// A new access token for `session` (after its role changed: the old token is refused).
    pub async fn fresh_token(&self, session: &Session) -> String {
        self.post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": session.refresh}),
        )
        .await
        .assert_ok(200)["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Signs up a new organisation `slug` with owner `email`.
    pub async fn signup(&self, slug: &str, email: &str) -> Session {
        let res = self
            .post(
                "/api/v1/auth/signup",
                None,
                json!({"organization_name": format!("Org {slug}"), "organization_slug": slug,
                       "name": "Owner", "email": email, "password": PASSWORD}),
            )
            .await;
        Session::from_auth(res.assert_ok(201))
    }

    pub async fn login(&self, email: &str, password: &str, organization: Option<&str>) -> Resp {
        let mut body = json!({"email": email, "password": password});
        if let Some(org) = organization {
            body["organization"] = json!(org);
        }
        self.post("/api/v1/auth/login", None, body).await
    }

    /// Adds a person with `role` to the owner's organisation (a new address: invited, then
    /// accepting with [`PASSWORD`]) and returns their session.
    pub async fn member(&self, owner: &Session, email: &str, role: &str) -> Session {
        self.post(
            "/api/v1/users",
            Some(&owner.token),
            json!({"email": email, "name": format!("{role} person"), "role": role}),
        )
        .await
        .assert_ok(201);
        let token = self.invitation_token(email).await;
        let accepted = self
            .post(
                &format!("/api/v1/invitations/{token}/accept"),
                None,
                json!({"password": PASSWORD, "name": format!("{role} person")}),
            )
            .await;
        Session::from_auth(accepted.assert_ok(200))
    }

    /// The token of the latest invitation mailed to `email`, read from the mail queue (where it
    /// waits until the mail is sent).
    pub async fn invitation_token(&self, email: &str) -> String {
        let params: Value = self
            .scalar(&format!(
                "SELECT params FROM mails WHERE kind = 'invitation' AND to_address = '{email}' \
                 ORDER BY created_at DESC LIMIT 1"
            ))
            .await;
        params["path"]
            .as_str()
            .and_then(|p| p.strip_prefix("/invite/"))
            .unwrap_or_else(|| panic!("no invitation link for {email}: {params}"))
            .to_owned()
    }

    /// A request with `If-Match: "<version>"`.
    pub async fn call_if(
        &self,
        method: Method,
        path: &str,
        token: &str,
        version: i64,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self
            .request(method, path, Some(token))
            .header("if-match", format!("\"{version}\""));
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(req).await
    }

    /// Creates a project with `key`; returns its id.
    pub async fn project(&self, token: &str, key: &str) -> String {
        let res = self
            .post(
                "/api/v1/projects",
                Some(token),
                json!({"name": format!("Project {key}"), "key": key}),
            )
            .await;
        res.assert_ok(201)["id"].as_str().unwrap().to_owned()
    }

    /// Files a ticket in `project` with `extra` fields; returns it.
    pub async fn ticket(&self, token: &str, project: &str, extra: Value) -> Value {
        let mut body = json!({"project_id": project, "title": "Printer on fire"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.post("/api/v1/tickets", Some(token), body)
            .await
            .assert_ok(201)
            .clone()
    }

    /// Files `n` tickets assigned to `assignee`, each with a comment by `token`'s owner: per
    /// ticket three events (created, assigned, comment) and two notifications for the assignee.
    pub async fn assigned_tickets_with_comments(
        &self,
        token: &str,
        project: &str,
        assignee: &Session,
        n: usize,
    ) {
        for _ in 0..n {
            let t = self
                .ticket(token, project, json!({"assignee_ids": [assignee.user_id]}))
                .await;
            self.post(
                &format!("/api/v1/tickets/{}/comments", t["id"].as_str().unwrap()),
                Some(token),
                json!({"body": "Any news?"}),
            )
            .await
            .assert_ok(201);
        }
    }

    /// Runs `sql` with owner rights on the server's database (for inspecting and for
    /// arranging failures).
    /// Every item of a listing, following `next_cursor` (the path carries its own `limit`).
    pub async fn all_items(&self, path: &str, token: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut url = path.to_owned();
        loop {
            let page = self.get(&url, token).await.assert_ok(200).clone();
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => url = format!("{path}{sep}cursor={c}"),
                None => return items,
            }
        }
    }

    pub async fn sql(&self, sql: &str) {
        if let Err(err) = self.try_sql(sql).await {
            panic!("{sql}: {err}");
        }
    }

    /// Runs `sql` with owner rights and says whether the database refused it.
    pub async fn try_sql(&self, sql: &str) -> Result<(), String> {
        let db = Database::connect(&self.database_url)
            .await
            .expect("connect");
        let result = db
            .execute_unprepared(sql)
            .await
            .map(drop)
            .map_err(|e| e.to_string());
        db.close().await.ok();
        result
    }

    /// The first column of the first row of `sql`, as an integer.
    pub async fn count(&self, sql: &str) -> i64 {
        self.scalar(sql).await
    }

    /// The first column of the first row of `sql`.
    pub async fn scalar<T: sea_orm::TryGetable>(&self, sql: &str) -> T {
        let db = Database::connect(&self.database_url)
            .await
            .expect("connect");
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .expect(sql)
            .expect("a row");
        let value = row
            .try_get_by_index::<T>(0)
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        db.close().await.ok();
        value
    }

    /// Sends every queued mail now, as the worker's sender would (through the server's SMTP
    /// settings). Returns how many mails it handled.
    pub async fn deliver_mail(&self) -> usize {
        let running = self.running.as_ref().expect("the test's own server");
        docket::mail::drain(running.db(), &running.mail().sender)
            .await
            .expect("mail delivered")
    }

    /// Sends every webhook delivery that is due now, as the worker's sender would. Returns how
    /// many attempts it made.
    pub async fn deliver_webhooks(&self) -> usize {
        let running = self.running();
        docket::webhooks::drain(running.db(), running.webhooks())
            .await
            .expect("webhooks delivered")
    }

    /// Makes every waiting webhook retry due now (the schedule's minutes and hours, passed).
    pub async fn webhook_retries_due(&self) {
        self.sql(
            "UPDATE webhook_deliveries SET next_attempt_at = '2000-01-01T00:00:00Z' \
             WHERE status = 'pending'",
        )
        .await;
    }

    /// The server's inbound mail side (to poll IMAP mailboxes now).
    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("the test's own server")
    }

    /// Handles every pending event now, as the worker would, through the server's own database
    /// handle (so its stream connections wake). For tests whose server runs no worker: what the
    /// test then reads is settled, with no waiting or polling. Returns how many were handled.
    /// Announces the SLA warnings and breaches due at `now` (a moment the test chooses, so no
    /// test waits for a clock); returns how many clocks were looked at.
    pub async fn fire_sla_timers(&self, now: chrono::DateTime<chrono::Utc>) -> usize {
        docket::work::sla::timers::fire_due(self.running().db(), now)
            .await
            .expect("SLA timers fired")
    }

    pub async fn run_pending_events(&self) -> usize {
        let mailroom = &self.running().mail().mailroom;
        self.run_pending_events_with(docket::worker::handlers(mailroom))
            .await
    }

    /// Like [`TestApp::run_pending_events`], with `handlers` instead of the real ones (to add a
    /// failing handler, say). A failed event is retried at once, until it is dead.
    pub async fn run_pending_events_with(&self, handlers: Handlers) -> usize {
        let running = self
            .running
            .as_ref()
            .expect("the test's own server (not a remote one)");
        let retry_at_once = WorkerConfig {
            worker_retry_base_ms: 0,
            ..fast_worker()
        };
        dispatch::drain(running.db(), &retry_at_once, &handlers)
            .await
            .expect("pending events handled")
    }

    /// Polls `sql` (a count) until it gives `want`, for up to `secs` seconds.
    pub async fn wait_count(&self, sql: &str, want: i64, secs: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let n = self.count(sql).await;
            if n == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{sql}: still {n} after {secs}s, want {want}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }
}

/// One Server-Sent Event.
#[derive(Clone, Debug)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

/// A client of `GET /api/v1/stream`, reading events as they come.
pub struct SseClient {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl SseClient {
    /// Connects to `base` (a server's address) as `token`, resuming after `last_event_id`.
    pub async fn connect(base: &str, token: &str, last_event_id: Option<&str>) -> SseClient {
        let mut req = reqwest::Client::new()
            .get(format!("{base}/api/v1/stream"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = req.send().await.expect("stream request");
        assert_eq!(res.status(), 200, "stream answered {}", res.status());
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        SseClient {
            body: Box::pin(res.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next event, or `None` when none comes within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        use futures::StreamExt as _;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(SseEvent {
                    id,
                    event,
                    data: serde_json::from_str(&data).expect("JSON data"),
                });
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await;
            match chunk {
                Ok(Some(Ok(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Some(Err(err))) => panic!("stream broke: {err}"),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Every event that arrives until none comes for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<SseEvent> {
        let mut all = Vec::new();
        while let Some(e) = self.next(quiet).await {
            all.push(e);
        }
        all
    }
}

/// Replays a ticket's timeline (its `ticket.*` entries, oldest first) from nothing and checks
/// that it yields `ticket`: every recorded field, and the version.
pub fn assert_replays_to(timeline: &[Value], ticket: &Value, context: &str) {
    let mut state: Map<String, Value> = Map::new();
    let mut version = 0;
    for e in timeline
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("ticket."))
    {
        for (field, change) in e["changes"].as_object().unwrap() {
            state.insert(field.clone(), change["to"].clone());
        }
        // Entries about the ticket's relations (links, merges into it) leave its version.
        if let Some(v) = e["version"].as_i64() {
            version = v;
        }
    }
    for field in docket::work::tickets::REPLAYED_FIELDS {
        let replayed = state.get(field).cloned().unwrap_or(Value::Null);
        assert_eq!(replayed, ticket[field], "{field} after {context}");
    }
    assert_eq!(version, ticket["version"].as_i64().unwrap(), "{context}");
}

/// Where `id` (an organisation's, a ticket's) is still found: every uuid column of every table
/// but those of `skipped`, as `table.column: rows`.
pub async fn rows_naming(app: &TestApp, id: &str, skipped: &[&str]) -> Vec<String> {
    let db = Database::connect(&app.database_url).await.unwrap();
    let backend = db.get_database_backend();
    let columns_sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "SELECT table_name AS t, column_name AS c FROM information_schema.columns \
             WHERE table_schema = 'public' AND data_type = 'uuid'"
        }
        _ => {
            "SELECT m.name AS t, p.name AS c FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND lower(p.type) LIKE '%uuid%'"
        }
    };
    let columns = db
        .query_all_raw(sea_orm::Statement::from_string(backend, columns_sql))
        .await
        .unwrap();
    assert!(
        columns.len() > 40,
        "the walk finds the schema's uuid columns"
    );
    let value = uuid_literal(id);
    let mut found = Vec::new();
    for row in columns {
        let table: String = row.try_get("", "t").unwrap();
        let column: String = row.try_get("", "c").unwrap();
        if skipped.contains(&table.as_str()) {
            continue;
        }
        let n: i64 = db
            .query_one_raw(sea_orm::Statement::from_string(
                backend,
                format!("SELECT count(*) AS n FROM {table} WHERE {column} = {value}"),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "n")
            .unwrap();
        if n > 0 {
            found.push(format!("{table}.{column}: {n}"));
        }
    }
    found
}

/// A uuid as an SQL literal of the backend under test.
pub fn uuid_literal(id: &str) -> String {
    match backend() {
        Backend::Postgres => format!("'{id}'"),
        Backend::Sqlite => format!("X'{}'", id.replace('-', "")),
    }
}

/// Runs the `docket` binary with `args` against the database at `database_url` and the data
/// directory `data_dir` (an operator's command line).
pub fn run_docket(
    args: &[&str],
    database_url: &str,
    data_dir: &std::path::Path,
) -> std::process::Output {
    run_docket_with(args, database_url, data_dir, &[])
}

/// Like [`run_docket`], with more settings in its environment.
pub fn run_docket_with(
    args: &[&str],
    database_url: &str,
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_docket"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("DOCKET_DATA_DIR", data_dir)
        .env("DOCKET_LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("docket runs")
}

/// A free port on loopback (bound and released: the server takes it a moment later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `child` (`what`) listens on `port`; fails at once when it exits.
pub async fn wait_listening(port: u16, what: &str, child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited at start ({status}); is it installed? (scripts/test installs it)"
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not start listening on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
