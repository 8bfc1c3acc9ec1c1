//! Rate limits (GCRA, through the `governor` crate): per credential (a sign-in session or an API
//! token) and per organisation for requests that carry a token, per client address for those
//! that do not. Every API answer says where its caller stands (`RateLimit-Policy` and
//! `RateLimit`, draft-ietf-httpapi-ratelimit-headers); a request over a limit is 429 with
//! `Retry-After` and never reaches its handler. Each process counts its own requests (ADR 0016).
//!
//! A credential counts as one only once it is verified: a signed access token by its signature
//! here, an API token once authentication has found it (remembered briefly, by hash). Until then
//! the request counts against its address, so forged tokens neither escape the address limit
//! (one key per forgery) nor use up the allowance of the organisation they name.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    AppState,
    extract::{bearer_token, client_ip},
    problem::Problem,
};
use crate::{
    config::RateLimitConfig, error::Error, identity::tokens::OrgToken,
    tenancy::invitations::InvitationLimits,
};

static POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static STATE: HeaderName = HeaderName::from_static("ratelimit");
/// Forget callers idle for a while, every so many requests (the limiters keep a cell per key).
const PRUNE_EVERY: u64 = 10_000;

/// Who a limit counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Credential {
    Session(Uuid),
    /// The SHA-256 of an API token.
    ApiToken([u8; 32]),
}

type Limiter<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// One limit: its name in the headers, and a GCRA cell per key.
struct Limit<K: Clone + Hash + Eq> {
    name: &'static str,
    quota: Quota,
    limiter: Limiter<K>,
}

/// Where a caller stands with one limit.
struct Standing {
    name: &'static str,
    quota: Quota,
    remaining: u32,
    /// Seconds until the caller may send the next request (when none remain) or until the
    /// whole allowance is back.
    reset: Duration,
    allowed: bool,
}

impl<K: Clone + Hash + Eq> Limit<K> {
    fn new(name: &'static str, per_minute: u32) -> Option<Self> {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute)?);
        Some(Self {
            name,
            quota,
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
        })
    }

    fn check(&self, key: &K) -> Standing {
        match self.limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = self.quota.burst_size().get().saturating_sub(remaining);
                Standing {
                    name: self.name,
                    quota: self.quota,
                    remaining,
                    reset: self.quota.replenish_interval() * used,
                    allowed: true,
                }
            }
            Err(not_until) => Standing {
                name: self.name,
                quota: self.quota,
                remaining: 0,
                reset: not_until.wait_time_from(self.limiter.clock().now()),
                allowed: false,
            },
        }
    }
}

/// How long an API token found by authentication counts as its credential without being
/// looked up again.
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// API tokens remembered at most; past it the expired ones go, then (a flood of genuine
/// tokens) all of them: the next request of each counts against its address once.
const VERIFIED_AT_MOST: usize = 100_000;

/// API tokens that authentication found, by hash, with their organisation and until when.
#[derive(Default)]
struct VerifiedTokens(Mutex<HashMap<[u8; 32], (Uuid, Instant)>>);

impl VerifiedTokens {
    fn organization(&self, hash: &[u8; 32]) -> Option<Uuid> {
        let known = self.0.lock().ok()?;
        known
            .get(hash)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(org_id, _)| *org_id)
    }

    fn remember(&self, hash: [u8; 32], org_id: Uuid) {
        let Ok(mut known) = self.0.lock() else { return };
        let now = Instant::now();
        if known.len() >= VERIFIED_AT_MOST {
            known.retain(|_, (_, until)| *until > now);
            if known.len() >= VERIFIED_AT_MOST {
                known.clear();
            }
        }
        known.insert(hash, (org_id, now + VERIFIED_FOR));
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// How long an organisation's plan figure is used before it is read again.
const PLAN_RATE_FOR: Duration = Duration::from_secs(60);
/// Organisations' figures remembered at most; past it they are all read again.
const PLAN_FIGURES_AT_MOST: usize = 100_000;

/// Organisations' API requests per minute from their plans (`plans`): each figure read at most
/// once a minute, and one limiter per distinct figure.
#[derive(Default)]
struct PlanRates {
    figures: Mutex<HashMap<Uuid, (Option<u32>, Instant)>>,
    limits: Mutex<HashMap<u32, Arc<Limit<Uuid>>>>,
}

impl PlanRates {
    fn cached(&self, org_id: Uuid) -> Option<Option<u32>> {
        let figures = self.figures.lock().ok()?;
        figures
            .get(&org_id)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(figure, _)| *figure)
    }

    fn remember(&self, org_id: Uuid, figure: Option<u32>) {
        let Ok(mut figures) = self.figures.lock() else {
            return;
        };
        if figures.len() >= PLAN_FIGURES_AT_MOST {
            figures.clear();
        }
        figures.insert(org_id, (figure, Instant::now() + PLAN_RATE_FOR));
    }

    fn limit(&self, per_minute: u32) -> Option<Arc<Limit<Uuid>>> {
        let mut limits = self.limits.lock().ok()?;
        if let Some(limit) = limits.get(&per_minute) {
            return Some(limit.clone());
        }
        let limit = Arc::new(Limit::new("organization", per_minute)?);
        limits.insert(per_minute, limit.clone());
        Some(limit)
    }

    fn prune(&self) {
        if let Ok(limits) = self.limits.lock() {
            for limit in limits.values() {
                limit.limiter.retain_recent();
            }
        }
    }
}

/// Requests in flight per client address, for routes that bound them.
#[derive(Default)]
struct InFlight(Mutex<HashMap<IpAddr, usize>>);

/// A place taken in [`InFlight`], given back when dropped.
pub struct Slot {
    owner: Arc<RateLimits>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut held) = self.owner.inbound.0.lock()
            && let Some(n) = held.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// The server's limits (shared by every request it serves).
pub struct RateLimits {
    inbound: InFlight,
    credential: Option<Limit<Credential>>,
    organization: Option<Limit<Uuid>>,
    /// An organisation whose plan names its API requests per minute is held to that instead.
    plan_rates: PlanRates,
    anonymous: Option<Limit<IpAddr>>,
    verified: VerifiedTokens,
    requests: AtomicU64,
    /// Sign-ups per client address per hour (0: no limit); the sign-up itself counts them.
    pub signups_per_hour: u32,
    invitations_per_day: u32,
    /// Inbound mail requests one client address may have in flight (0: no limit): an MTA
    /// delivers a few at a time, and a client holding more is turned away with 429 instead of
    /// holding memory and threads.
    inbound_per_address: usize,
}

impl RateLimits {
    pub fn new(cfg: &RateLimitConfig) -> Arc<Self> {
        Arc::new(Self {
            inbound: InFlight::default(),
            credential: Limit::new("credential", cfg.rate_limit_per_minute),
            organization: Limit::new("organization", cfg.rate_limit_org_per_minute),
            plan_rates: PlanRates::default(),
            anonymous: Limit::new("address", cfg.rate_limit_anon_per_minute),
            verified: VerifiedTokens::default(),
            requests: AtomicU64::new(0),
            signups_per_hour: cfg.signup_limit_per_hour,
            invitations_per_day: cfg.invitations_per_day,
            inbound_per_address: cfg.inbound_per_address as usize,
        })
    }

    /// The limit of organisation `org_id`: its plan's figure when it names one (read from the
    /// database at most once a minute), else the server's.
    async fn organization_limit(
        &self,
        db: &crate::store::Db,
        org_id: Uuid,
    ) -> Option<Arc<Limit<Uuid>>> {
        let figure = match self.plan_rates.cached(org_id) {
            Some(figure) => figure,
            None => {
                let figure = match crate::plans::api_rate(db, org_id).await {
                    Ok(figure) => figure.map(|f| u32::try_from(f).unwrap_or(u32::MAX)),
                    Err(err) => {
                        tracing::warn!(error = ?err, "reading a plan's rate failed; the server's applies");
                        None
                    }
                };
                self.plan_rates.remember(org_id, figure);
                figure
            }
        };
        figure.and_then(|f| self.plan_rates.limit(f))
    }

    /// Where `caller` stands with each limit that applies to it (counting this request);
    /// `plan` is its organisation's own limit, if its plan names one.
    fn check(&self, caller: &Caller, plan: Option<&Limit<Uuid>>) -> Vec<Standing> {
        if self.requests.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune();
        }
        match caller {
            Caller::Credential { credential, org_id } => {
                let mut standings: Vec<Standing> = self
                    .credential
                    .iter()
                    .map(|l| l.check(credential))
                    .collect();
                // A caller already over its own limit does not use up its organisation's.
                if standings.iter().all(|s| s.allowed) {
                    let organization = plan.or(self.organization.as_ref());
                    standings.extend(organization.map(|l| l.check(org_id)));
                }
                standings
            }
            Caller::Anonymous(ip) => self.anonymous.iter().map(|l| l.check(ip)).collect(),
        }
    }

    /// What an organisation may send in invitations (counted in the database).
    pub fn invitations(&self) -> InvitationLimits {
        InvitationLimits {
            per_day: self.invitations_per_day,
        }
    }

    /// A place for one more inbound mail request from `ip`, or 429 when it has
    /// `DOCKET_INBOUND_PER_ADDRESS` in flight.
    pub fn inbound_slot(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Error> {
        let mut held = self
            .inbound
            .0
            .lock()
            .map_err(|_| Error::internal(anyhow::anyhow!("inbound slots poisoned")))?;
        let n = held.entry(ip).or_default();
        let most = self.inbound_per_address;
        if most > 0 && *n >= most {
            return Err(Error::TooManyRequests {
                detail: format!(
                    "this address is delivering {most} messages already; retry after the time \
                     in Retry-After"
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        *n += 1;
        Ok(Slot {
            owner: self.clone(),
            ip,
        })
    }

    /// Authentication found API token `token` of organisation `org_id`: its next requests count
    /// as that credential.
    pub fn api_token_verified(&self, token: &str, org_id: Uuid) {
        self.verified.remember(token_hash(token), org_id);
    }

    fn prune(&self) {
        if let Some(l) = &self.credential {
            l.limiter.retain_recent();
        }
        if let Some(l) = &self.organization {
            l.limiter.retain_recent();
        }
        if let Some(l) = &self.anonymous {
            l.limiter.retain_recent();
        }
        self.plan_rates.prune();
    }
}

/// Who sent a request, as far as the limits care: a verified credential and its organisation,
/// or else an address. (A token not verified yet counts against its address: a forged one then
/// fails authentication, a genuine one is remembered for its next requests.)
enum Caller {
    Credential {
        credential: Credential,
        org_id: Uuid,
    },
    Anonymous(IpAddr),
}

fn caller(state: &AppState, req: &Request) -> Caller {
    if let Some(bearer) = bearer_token(req.headers()) {
        if OrgToken::parse(OrgToken::API, bearer).is_some() {
            let hash = token_hash(bearer);
            if let Some(org_id) = state.rate_limits.verified.organization(&hash) {
                return Caller::Credential {
                    credential: Credential::ApiToken(hash),
                    org_id,
                };
            }
        } else if let Some(claims) = state.keys.verify(bearer) {
            return Caller::Credential {
                credential: Credential::Session(claims.sid),
                org_id: claims.org,
            };
        }
    }
    Caller::Anonymous(client_ip(req.extensions()))
}

/// `"credential";q=600;w=60, "organization";q=3000;w=60`
fn policy_header(standings: &[Standing]) -> String {
    standings
        .iter()
        .map(|s| {
            let window = s.quota.burst_size_replenished_in().as_secs().max(1);
            format!("\"{}\";q={};w={window}", s.name, s.quota.burst_size())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest limit: `"credential";r=42;t=5`.
fn state_header(closest: &Standing) -> String {
    format!(
        "\"{}\";r={};t={}",
        closest.name,
        closest.remaining,
        closest.reset.as_secs_f64().ceil() as u64
    )
}

/// Counts every API request against its limits before it runs.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let caller = caller(&state, &req);
    let plan = match &caller {
        Caller::Credential { org_id, .. } => {
            state
                .rate_limits
                .organization_limit(&state.db, *org_id)
                .await
        }
        Caller::Anonymous(_) => None,
    };
    let standings = state.rate_limits.check(&caller, plan.as_deref());
    let Some(closest) = standings.iter().min_by_key(|s| (s.allowed, s.remaining)) else {
        return next.run(req).await;
    };
    let headers = [
        (POLICY.clone(), policy_header(&standings)),
        (STATE.clone(), state_header(closest)),
    ];
    let mut res = if closest.allowed {
        next.run(req).await
    } else {
        Problem::from(Error::TooManyRequests {
            detail: format!(
                "too many requests for this {}; retry after the time in Retry-After",
                closest.name
            ),
            retry_after: closest.reset.max(Duration::from_secs(1)),
        })
        .into_response()
    };
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            res.headers_mut().insert(name, value);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_counts_down_then_refuses_with_the_wait() {
        let limit = Limit::new("credential", 3).unwrap();
        let key = Credential::Session(Uuid::nil());
        let seen: Vec<(bool, u32)> = (0..4)
            .map(|_| limit.check(&key))
            .map(|s| (s.allowed, s.remaining))
            .collect();
        assert_eq!(seen, [(true, 2), (true, 1), (true, 0), (false, 0)]);
        let refused = limit.check(&key);
        // One request comes back every 20 s (3 a minute).
        assert!(
            refused.reset > Duration::from_secs(15) && refused.reset <= Duration::from_secs(20)
        );
        let other = limit.check(&Credential::Session(Uuid::max()));
        assert!(other.allowed, "another caller has its own allowance");
        assert!(
            Limit::<Uuid>::new("off", 0).is_none(),
            "0 turns a limit off"
        );
    }

    #[test]
    fn verified_tokens_are_remembered_briefly_and_within_bounds() {
        let verified = VerifiedTokens::default();
        let org = Uuid::now_v7();
        assert_eq!(verified.organization(&token_hash("dkt_a")), None);
        verified.remember(token_hash("dkt_a"), org);
        assert_eq!(verified.organization(&token_hash("dkt_a")), Some(org));
        assert_eq!(verified.organization(&token_hash("dkt_b")), None);
        // Expired entries answer nothing.
        if let Ok(mut known) = verified.0.lock() {
            known.insert(token_hash("dkt_old"), (org, Instant::now()));
        }
        assert_eq!(verified.organization(&token_hash("dkt_old")), None);
        // A full map makes room rather than grow.
        for n in 0..VERIFIED_AT_MOST + 5 {
            verified.remember(token_hash(&format!("dkt_{n}")), org);
        }
        assert!(verified.0.lock().unwrap().len() <= VERIFIED_AT_MOST);
    }

    #[test]
    fn headers_name_every_policy_and_the_closest_limit() {
        let standing = |name, q, remaining, reset| Standing {
            name,
            quota: Quota::per_minute(NonZeroU32::new(q).unwrap()),
            remaining,
            reset: Duration::from_millis(reset),
            allowed: true,
        };
        let all = [
            standing("credential", 600, 599, 100),
            standing("organization", 3000, 10, 2500),
        ];
        assert_eq!(
            policy_header(&all),
            "\"credential\";q=600;w=60, \"organization\";q=3000;w=60"
        );
        assert_eq!(state_header(&all[1]), "\"organization\";r=10;t=3");
    }
}
