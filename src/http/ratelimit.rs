//! Rate limits (GCRA, through the `governor` crate): per credential (a sign-in session or an API
//! token) and per organisation for requests that carry a token, per client address for those
//! that do not. Every API answer says where its caller stands (`RateLimit-Policy` and
//! `RateLimit`, draft-ietf-httpapi-ratelimit-headers); a request over a limit is 429 with
//! `Retry-After` and never reaches its handler. Each process counts its own requests (ADR 0016).

use std::{
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
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
use crate::{config::RateLimitConfig, error::Error, identity::tokens::OrgToken};

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

/// The server's limits (shared by every request it serves).
pub struct RateLimits {
    credential: Option<Limit<Credential>>,
    organization: Option<Limit<Uuid>>,
    anonymous: Option<Limit<IpAddr>>,
    requests: AtomicU64,
    /// Sign-ups per client address per hour (0: no limit); the sign-up itself counts them.
    pub signups_per_hour: u32,
}

impl RateLimits {
    pub fn new(cfg: &RateLimitConfig) -> Arc<Self> {
        Arc::new(Self {
            credential: Limit::new("credential", cfg.rate_limit_per_minute),
            organization: Limit::new("organization", cfg.rate_limit_org_per_minute),
            anonymous: Limit::new("address", cfg.rate_limit_anon_per_minute),
            requests: AtomicU64::new(0),
            signups_per_hour: cfg.signup_limit_per_hour,
        })
    }

    /// Where `caller` stands with each limit that applies to it (counting this request).
    fn check(&self, caller: &Caller) -> Vec<Standing> {
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
                    standings.extend(self.organization.iter().map(|l| l.check(org_id)));
                }
                standings
            }
            Caller::Anonymous(ip) => self.anonymous.iter().map(|l| l.check(ip)).collect(),
        }
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
    }
}

/// Who sent a request, as far as the limits care: a credential that names an organisation, or
/// else an address. (A token that does not verify counts against its address; the request then
/// fails authentication anyway.)
enum Caller {
    Credential {
        credential: Credential,
        org_id: Uuid,
    },
    Anonymous(IpAddr),
}

fn caller(state: &AppState, req: &Request) -> Caller {
    if let Some(bearer) = bearer_token(req.headers()) {
        if let Some(token) = OrgToken::parse(OrgToken::API, bearer) {
            let hash: [u8; 32] = Sha256::digest(token.token.as_bytes()).into();
            return Caller::Credential {
                credential: Credential::ApiToken(hash),
                org_id: token.org_id,
            };
        }
        if let Some(claims) = state.keys.verify(bearer) {
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
    let standings = state.rate_limits.check(&caller(&state, &req));
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
