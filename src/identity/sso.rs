//! Single sign-on through an organisation's OpenID provider (authorization code flow with PKCE).
//!
//! The provider's discovery document, keys and token endpoint are reached through the outbound
//! guard webhooks use (`DOCKET_WEBHOOK_ALLOWED_NETS`), never following redirects, so an admin
//! cannot aim Docket at its own network. Keys are fetched at each sign-in, so a provider that
//! rotates them is followed at once.
//!
//! The flow's `state`, `nonce` and PKCE verifier travel in a short-lived cookie sealed by the
//! server (so they are bound to the browser that started) and its ceremony is taken once (so a
//! replayed callback finds nothing). The ID token's signature, `iss`, `aud`, `exp` and `nonce`
//! are checked, and `email_verified` must be true. A person is found by the provider's
//! (`iss`, `sub`); on first use that pair is linked to an existing account only when its
//! verified address matches and the account is already a member, and a new address in an
//! allowed domain joins with the default role. A sign-in through one organisation's provider
//! opens that organisation only. Single logout is not offered.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use chrono::Utc;
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
    core::{CoreClient, CoreProviderMetadata, CoreResponseType},
};
use sea_orm::{ActiveValue::Set, EntityTrait, IntoActiveModel, sea_query::OnConflict};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    AuthResponse, SessionMethod, ceremonies, create_user,
    entity::{org_sso, sso_identity},
    find_user_by_email, normalize_email, password,
    tokens::TokenKeys,
};
use crate::{
    access::{self, Action, Role, TenantCtx},
    audit,
    config::Secret,
    error::{Error, Result, Validator},
    outbound::{Guard, GuardedResolver},
    store::{Db, TenantTx},
    tenancy::{self, OrgMembership},
    text,
    vault::Vault,
};

/// How long the provider may take to answer one request, and the sign-in to come back.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
const CEREMONY: &str = "sso";
const MAX_DOMAINS: usize = 50;

/// Single sign-on's keys and its guarded client.
#[derive(Clone)]
pub struct SingleSignOn {
    /// Seals client secrets at rest.
    secrets: Vault,
    /// Seals the flow's cookie.
    flows: Vault,
    client: reqwest::Client,
    guard: Guard,
    /// `DOCKET_PUBLIC_URL`, where the provider sends the browser back.
    public_url: String,
}

impl SingleSignOn {
    pub fn new(signing_secret: &Secret, guard: Guard, public_url: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            .build()?;
        Ok(Self {
            secrets: Vault::new(signing_secret, "docket sso: client secrets"),
            flows: Vault::new(signing_secret, "docket sso: sign-in flows"),
            client,
            guard,
            public_url: public_url.trim().trim_end_matches('/').to_owned(),
        })
    }

    /// Where the provider returns the browser (register it with the provider).
    pub fn callback_url(&self) -> String {
        format!("{}/api/v1/auth/sso/callback", self.public_url)
    }

    /// The HTTP client openidconnect calls: the guarded one.
    fn http(
        &self,
    ) -> impl Fn(
        openidconnect::HttpRequest,
    ) -> Pin<
        Box<
            dyn Future<Output = std::result::Result<openidconnect::HttpResponse, ProviderError>>
                + Send,
        >,
    > + '_ {
        move |request: openidconnect::HttpRequest| {
            let client = self.client.clone();
            let guard = self.guard.clone();
            Box::pin(async move {
                guard
                    .check_url(&request.uri().to_string())
                    .map_err(ProviderError)?;
                let (parts, body) = request.into_parts();
                let mut outgoing = client
                    .request(parts.method, parts.uri.to_string())
                    .body(body);
                for (name, value) in &parts.headers {
                    outgoing = outgoing.header(name, value);
                }
                let answer = outgoing
                    .send()
                    .await
                    .map_err(|e| ProviderError(format!("{e}")))?;
                let mut response =
                    openidconnect::http::Response::builder().status(answer.status().as_u16());
                for (name, value) in answer.headers() {
                    response = response.header(name.as_str(), value.as_bytes());
                }
                let body = answer
                    .bytes()
                    .await
                    .map_err(|e| ProviderError(format!("{e}")))?;
                response
                    .body(body.to_vec())
                    .map_err(|e| ProviderError(format!("{e}")))
            })
        }
    }
}

/// Why the provider could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProviderError(String);

/// An organisation's single sign-on, as its admins see it (never the client secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct SsoSettings {
    pub issuer: String,
    pub client_id: String,
    /// Addresses in these domains may sign in (and join, when new); none: any domain.
    pub allowed_domains: Vec<String>,
    /// The role of a person who joins by signing in for the first time.
    pub default_role: Role,
    /// Password (and passkey) sign-in is refused to everybody but owners.
    pub enforce: bool,
    pub updated_at: chrono::DateTime<Utc>,
    /// Where the provider sends people back: register it as the client's redirect URI.
    pub callback_url: String,
    /// Where people start signing in (`GET`, in a browser).
    pub start_url: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SsoSettingsInput {
    /// The provider's issuer URL (its discovery document is at
    /// `{issuer}/.well-known/openid-configuration`).
    #[schema(format = "uri", max_length = 2000)]
    pub issuer: String,
    #[schema(schema_with = crate::text::line_schema)]
    pub client_id: String,
    /// Required the first time; leave it out to keep the current one.
    #[schema(schema_with = client_secret_schema)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    #[serde(default = "default_role")]
    pub default_role: Role,
    #[serde(default)]
    pub enforce: bool,
}

/// One line of at most 2,000 characters, or `null`.
fn client_secret_schema() -> utoipa::openapi::Object {
    text::string_schema(text::LINE_PATTERN, Some(MAX_SECRET), true)
}

const MAX_SECRET: usize = 2000;

fn default_role() -> Role {
    Role::Agent
}

/// What "test connection" found.
#[derive(Debug, Serialize, ToSchema)]
pub struct SsoTest {
    pub issuer: String,
    pub authorization_endpoint: String,
    /// Signing keys the provider publishes now.
    pub signing_keys: usize,
}

fn settings_of(sso: &SingleSignOn, slug: &str, row: org_sso::Model) -> Result<SsoSettings> {
    Ok(SsoSettings {
        issuer: row.issuer,
        client_id: row.client_id,
        allowed_domains: serde_json::from_value(row.allowed_domains)
            .map_err(anyhow::Error::from)?,
        default_role: tenancy::parse_role(&row.default_role)?,
        enforce: row.enforce,
        updated_at: row.updated_at,
        callback_url: sso.callback_url(),
        start_url: format!("{}/api/v1/auth/sso/{slug}/start", sso.public_url),
    })
}

/// The organisation of `tx`'s single sign-on, if it has one.
async fn stored(tx: &TenantTx) -> Result<Option<org_sso::Model>> {
    Ok(tx.find::<org_sso::Entity>().one(tx.conn()).await?)
}

/// Organisation `org_id`'s single sign-on, read in a transaction of its own.
async fn of_org(db: &Db, org_id: Uuid) -> Result<Option<org_sso::Model>> {
    let tx = db.read_org(org_id).await?;
    let row = stored(&tx).await?;
    tx.commit().await?;
    Ok(row)
}

fn not_set_up() -> Error {
    Error::NotFound("sso_settings")
}

pub async fn get(db: &Db, sso: &SingleSignOn, ctx: &TenantCtx) -> Result<SsoSettings> {
    access::authorize(ctx, Action::OrgUpdate)?;
    let tx = db.read(ctx).await?;
    let org = tenancy::organization(&tx).await?;
    let row = stored(&tx).await?.ok_or_else(not_set_up)?;
    tx.commit().await?;
    settings_of(sso, &org.slug, row)
}

pub async fn put(
    db: &Db,
    sso: &SingleSignOn,
    ctx: &TenantCtx,
    input: SsoSettingsInput,
) -> Result<SsoSettings> {
    access::authorize(ctx, Action::OrgUpdate)?;
    let mut v = Validator::default();
    let issuer = input.issuer.trim().trim_end_matches('/').to_owned();
    if issuer.len() > 2000 {
        v.push("issuer", "must be at most 2000 characters");
    } else if let Err(why) = sso.guard.check_url(&issuer) {
        v.push("issuer", why);
    } else if IssuerUrl::new(issuer.clone()).is_err() {
        v.push("issuer", "must be a URL");
    }
    text::check_line(&mut v, "client_id", &input.client_id, text::MAX_LINE);
    if let Some(secret) = &input.client_secret {
        text::check_line(&mut v, "client_secret", secret, MAX_SECRET);
    }
    if input.allowed_domains.len() > MAX_DOMAINS {
        v.push("allowed_domains", format!("at most {MAX_DOMAINS} domains"));
    }
    let mut domains = Vec::new();
    for (i, domain) in input.allowed_domains.iter().enumerate() {
        let field = format!("allowed_domains[{i}]");
        let mut probe = Validator::default();
        let email = normalize_email(&mut probe, &field, &format!("x@{}", domain.trim()));
        match (probe.finish(), email.split_once('@')) {
            (Ok(()), Some((_, d))) if !d.is_empty() && d.contains('.') => {
                domains.push(d.to_owned());
            }
            _ => v.push(&field, "must be a domain name, such as example.com"),
        }
    }
    domains.sort();
    domains.dedup();
    if input.default_role == Role::Owner {
        v.push(
            "default_role",
            "people who join by signing in cannot be owners",
        );
    }
    v.finish()?;

    let tx = db.write(ctx).await?;
    let org = tenancy::organization(&tx).await?;
    let current = stored(&tx).await?;
    let secret = match (&input.client_secret, &current) {
        (Some(s), _) => sso.secrets.seal(s.trim())?,
        (None, Some(row)) => row.client_secret.clone(),
        (None, None) => {
            return Err(Error::invalid(
                "client_secret",
                "is required when single sign-on is first set up",
            ));
        }
    };
    let row = org_sso::Model {
        org_id: ctx.org_id,
        issuer,
        client_id: input.client_id.trim().to_owned(),
        client_secret: secret,
        allowed_domains: serde_json::to_value(&domains).map_err(anyhow::Error::from)?,
        default_role: input.default_role.as_str().to_owned(),
        enforce: input.enforce,
        updated_at: Utc::now(),
    };
    org_sso::Entity::insert(row.clone().into_active_model())
        .on_conflict(
            OnConflict::column(org_sso::Column::OrgId)
                .update_columns([
                    org_sso::Column::Issuer,
                    org_sso::Column::ClientId,
                    org_sso::Column::ClientSecret,
                    org_sso::Column::AllowedDomains,
                    org_sso::Column::DefaultRole,
                    org_sso::Column::Enforce,
                    org_sso::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(tx.conn())
        .await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "sso.updated",
        "organization",
        Some(ctx.org_id),
        serde_json::json!({
            "issuer": row.issuer,
            "client_id": row.client_id,
            "allowed_domains": domains,
            "default_role": row.default_role,
            "enforce": row.enforce,
            "client_secret_changed": input.client_secret.is_some(),
        }),
    )
    .await?;
    tx.commit().await?;
    settings_of(sso, &org.slug, row)
}

pub async fn delete(db: &Db, ctx: &TenantCtx) -> Result<()> {
    access::authorize(ctx, Action::OrgUpdate)?;
    let tx = db.write(ctx).await?;
    let gone = tx.delete_many::<org_sso::Entity>().exec(tx.conn()).await?;
    if gone.rows_affected == 0 {
        return Err(not_set_up());
    }
    audit::record(
        &tx,
        Some(ctx.user_id),
        "sso.removed",
        "organization",
        Some(ctx.org_id),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Fetches the provider's discovery document and keys with the stored settings.
pub async fn test(db: &Db, sso: &SingleSignOn, ctx: &TenantCtx) -> Result<SsoTest> {
    access::authorize(ctx, Action::OrgUpdate)?;
    let tx = db.read(ctx).await?;
    let row = stored(&tx).await?.ok_or_else(not_set_up)?;
    tx.commit().await?;
    let metadata = discover(sso, &row.issuer)
        .await
        .map_err(|why| Error::Unprocessable {
            code: "sso_unreachable",
            detail: format!("the identity provider could not be used: {why}"),
        })?;
    Ok(SsoTest {
        issuer: metadata.issuer().to_string(),
        authorization_endpoint: metadata.authorization_endpoint().to_string(),
        signing_keys: metadata.jwks().keys().len(),
    })
}

async fn discover(
    sso: &SingleSignOn,
    issuer: &str,
) -> std::result::Result<CoreProviderMetadata, String> {
    let issuer = IssuerUrl::new(issuer.to_owned()).map_err(|e| e.to_string())?;
    let http = sso.http();
    CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .map_err(|e| error_chain(&e))
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Refuses a sign-in by password or passkey to an organisation that signs its staff in through
/// its provider only (`enforce`), unless the person is an owner (owners keep a way in).
pub(crate) async fn allows_other_sign_in(db: &Db, chosen: &OrgMembership) -> Result<()> {
    if chosen.role == Role::Owner {
        return Ok(());
    }
    let enforced = of_org(db, chosen.organization.id)
        .await?
        .is_some_and(|s| s.enforce);
    if enforced {
        return Err(Error::Forbidden {
            code: "sso_required",
            detail: format!(
                "{} signs its people in through its identity provider: use \"Sign in with SSO\"",
                chosen.organization.name
            ),
        });
    }
    Ok(())
}

/// Why a single sign-on failed: its code goes back to the sign-in page (`?sso_error=`).
#[derive(Debug)]
pub struct SsoFailure {
    pub code: &'static str,
    pub detail: String,
}

impl SsoFailure {
    fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

impl From<sea_orm::DbErr> for SsoFailure {
    fn from(err: sea_orm::DbErr) -> Self {
        Error::from(err).into()
    }
}

impl From<Error> for SsoFailure {
    fn from(err: Error) -> Self {
        tracing::warn!(error = ?err, "single sign-on failed");
        SsoFailure::new("sso_failed", "single sign-on failed; try again")
    }
}

/// What the flow's cookie carries (sealed).
#[derive(Serialize, Deserialize)]
struct Flow {
    ceremony: Uuid,
    state: String,
    nonce: String,
    verifier: String,
    expires: i64,
}

/// What the ceremony keeps.
#[derive(Serialize, Deserialize)]
struct Waiting {
    next: String,
}

/// A started sign-in: where to send the browser, and the sealed cookie to set.
pub struct Started {
    pub redirect: String,
    pub cookie: String,
}

/// Where to go after signing in: a path of this site only.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.len() <= 2000
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

async fn settings_by_slug(db: &Db, slug: &str) -> std::result::Result<org_sso::Model, SsoFailure> {
    let not_set = || {
        SsoFailure::new(
            "sso_not_configured",
            "this organization does not offer single sign-on",
        )
    };
    if slug.is_empty() || slug.len() > 100 {
        return Err(not_set());
    }
    let org_id = tenancy::org_id_by_slug(db, slug)
        .await?
        .ok_or_else(not_set)?;
    of_org(db, org_id).await?.ok_or_else(not_set)
}

fn client(
    sso: &SingleSignOn,
    metadata: CoreProviderMetadata,
    row: &org_sso::Model,
) -> std::result::Result<
    CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    SsoFailure,
> {
    let secret = sso.secrets.open(&row.client_secret).ok_or_else(|| {
        SsoFailure::new(
            "sso_not_configured",
            "the stored client secret does not open under this server's key; set it again",
        )
    })?;
    let redirect = RedirectUrl::new(sso.callback_url())
        .map_err(|e| SsoFailure::new("sso_not_configured", e.to_string()))?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(row.client_id.clone()),
        Some(ClientSecret::new(secret)),
    )
    .set_redirect_uri(redirect))
}

fn unavailable(why: String) -> SsoFailure {
    SsoFailure::new(
        "sso_unavailable",
        format!("the identity provider could not be reached: {why}"),
    )
}

/// Starts a sign-in through the organisation `slug`'s provider.
pub async fn start(
    db: &Db,
    sso: &SingleSignOn,
    slug: &str,
    next: Option<&str>,
) -> std::result::Result<Started, SsoFailure> {
    let row = settings_by_slug(db, slug).await?;
    let metadata = discover(sso, &row.issuer).await.map_err(unavailable)?;
    let client = client(sso, metadata, &row)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let ceremony = ceremonies::keep(
        db,
        CEREMONY,
        None,
        Some(row.org_id),
        &Waiting {
            next: safe_next(next),
        },
    )
    .await?;
    let flow = Flow {
        ceremony,
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        expires: Utc::now().timestamp() + 600,
    };
    let cookie = sso.flows.seal(
        &serde_json::to_string(&flow).map_err(|e| Error::internal(anyhow::Error::from(e)))?,
    )?;
    Ok(Started {
        redirect: url.to_string(),
        cookie,
    })
}

/// What the provider sends the browser back with.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    /// The provider's refusal (the person declined, say).
    pub error: Option<String>,
    pub error_description: Option<String>,
    #[serde(default)]
    #[param(ignore)]
    pub iss: Option<String>,
    #[serde(default)]
    #[param(ignore)]
    pub session_state: Option<String>,
}

/// A finished sign-in: the session, and where the browser goes next.
pub struct Finished {
    pub session: AuthResponse,
    pub next: String,
}

/// Finishes a sign-in coming back from the provider.
pub async fn finish(
    db: &Db,
    keys: &TokenKeys,
    sso: &SingleSignOn,
    cookie: Option<&str>,
    back: Callback,
) -> std::result::Result<Finished, SsoFailure> {
    let forged = || {
        SsoFailure::new(
            "sso_state_mismatch",
            "this sign-in was not started in this browser, or was already used; start again",
        )
    };
    let flow: Flow = cookie
        .and_then(|c| sso.flows.open(c))
        .and_then(|plain| serde_json::from_str(&plain).ok())
        .ok_or_else(forged)?;
    let state_ok = back.state.as_deref().is_some_and(|s| {
        use subtle::ConstantTimeEq as _;
        bool::from(s.as_bytes().ct_eq(flow.state.as_bytes()))
    });
    if !state_ok {
        return Err(forged());
    }
    if flow.expires < Utc::now().timestamp() {
        return Err(SsoFailure::new(
            "sso_expired",
            "this sign-in took too long; start again",
        ));
    }
    let ceremony = ceremonies::take(db, flow.ceremony, &[CEREMONY])
        .await?
        .ok_or_else(forged)?;
    let waiting: Waiting = ceremonies::waiting(&ceremony)?;
    if let Some(error) = back.error {
        return Err(SsoFailure::new(
            "sso_denied",
            format!(
                "the identity provider refused the sign-in: {}",
                back.error_description.unwrap_or(error)
            ),
        ));
    }
    let code = back
        .code
        .ok_or_else(|| SsoFailure::new("sso_denied", "the identity provider sent no code"))?;
    let org_id = ceremony.organization_id.ok_or_else(forged)?;
    let row = of_org(db, org_id)
        .await?
        .ok_or_else(|| SsoFailure::new("sso_not_configured", "single sign-on was turned off"))?;

    let metadata = discover(sso, &row.issuer).await.map_err(unavailable)?;
    let client = client(sso, metadata, &row)?;
    let http = sso.http();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| SsoFailure::new("sso_not_configured", e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier))
        .request_async(&http)
        .await
        .map_err(|e| {
            SsoFailure::new(
                "sso_exchange_failed",
                format!(
                    "the identity provider did not accept the sign-in: {}",
                    error_chain(&e)
                ),
            )
        })?;
    let id_token = tokens.id_token().ok_or_else(|| {
        SsoFailure::new(
            "sso_invalid_token",
            "the identity provider sent no ID token",
        )
    })?;
    let claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(flow.nonce))
        .map_err(|e| {
            SsoFailure::new(
                "sso_invalid_token",
                format!("the ID token was not accepted: {}", error_chain(&e)),
            )
        })?;
    if claims.email_verified() != Some(true) {
        return Err(SsoFailure::new(
            "sso_email_unverified",
            "the identity provider has not verified this person's email address",
        ));
    }
    let mut v = Validator::default();
    let email = normalize_email(
        &mut v,
        "email",
        claims.email().map(|e| e.as_str()).unwrap_or_default(),
    );
    if v.finish().is_err() {
        return Err(SsoFailure::new(
            "sso_email_unverified",
            "the identity provider gave no usable email address",
        ));
    }
    let domains: Vec<String> =
        serde_json::from_value(row.allowed_domains.clone()).unwrap_or_default();
    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    if !domains.is_empty() && !domains.iter().any(|d| d == domain) {
        return Err(SsoFailure::new(
            "sso_domain_not_allowed",
            format!("addresses at {domain} may not sign in to this organization"),
        ));
    }
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_owned())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
    let issuer = claims.issuer().to_string();
    let subject = claims.subject().to_string();
    let default_role = tenancy::parse_role(&row.default_role)?;
    let user_id = person(db, org_id, &issuer, &subject, &email, &name, default_role).await?;
    let session = super::resume_sign_in(db, keys, user_id, org_id, SessionMethod::Sso).await?;
    Ok(Finished {
        session,
        next: waiting.next,
    })
}

/// The account the provider's (`issuer`, `subject`) is, linking or creating it on first use.
async fn person(
    db: &Db,
    org_id: Uuid,
    issuer: &str,
    subject: &str,
    email: &str,
    name: &str,
    default_role: Role,
) -> std::result::Result<Uuid, SsoFailure> {
    let not_member = || {
        SsoFailure::new(
            "sso_not_member",
            "your account is not a member of this organization; ask an admin to invite you",
        )
    };
    let known = {
        let tx = db.global(false).await?;
        sso_identity::Entity::find_by_id((issuer.to_owned(), subject.to_owned()))
            .one(tx.conn())
            .await?
    };
    if let Some(link) = known {
        let tx = db.read_org(org_id).await?;
        let role = tenancy::active_role(&tx, link.user_id).await?;
        tx.commit().await?;
        return role.map(|_| link.user_id).ok_or_else(not_member);
    }
    let existing = {
        let tx = db.global(false).await?;
        find_user_by_email(tx.conn(), email).await?
    };
    let user_id = match existing {
        Some(account) => {
            // Linked only when the account already belongs here: a provider vouches for its
            // own organisation's people, not for accounts elsewhere.
            let tx = db.read_org(org_id).await?;
            let role = tenancy::active_role(&tx, account.id).await?;
            tx.commit().await?;
            role.ok_or_else(not_member)?;
            account.id
        }
        None => {
            let tx = db.write_org(org_id).await?;
            if default_role != Role::Requester {
                tenancy::ensure_new_seat(&tx).await?;
            }
            let created =
                create_user(tx.conn(), email, name, password::NOT_SET_HASH.to_owned()).await?;
            tenancy::add_member(&tx, created.id, default_role).await?;
            audit::record(
                &tx,
                Some(created.id),
                "member.joined_by_sso",
                "user",
                Some(created.id),
                serde_json::json!({"role": default_role.as_str(), "issuer": issuer}),
            )
            .await?;
            tx.commit().await?;
            created.id
        }
    };
    let tx = db.global(true).await?;
    sso_identity::Entity::insert(sso_identity::ActiveModel {
        issuer: Set(issuer.to_owned()),
        subject: Set(subject.to_owned()),
        user_id: Set(user_id),
        created_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::columns([sso_identity::Column::Issuer, sso_identity::Column::Subject])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(user_id)
}
