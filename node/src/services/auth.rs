//! Who is calling, and what they may do.
//!
//! Identities come from the verified client certificate (its
//! `<id>.<role>.<cluster>.switchboard` name) or, for hosts and clients, from
//! a bearer token. Every call names what it needs: an admin, a relay acting
//! as itself, a host acting as itself, any authenticated reader, or (on the
//! raft port) a member site. Calls are rate limited per identity.

use parking_lot::Mutex;
use std::num::NonZeroU32;
use std::time::Duration;
use std::time::Instant;

use governor::DefaultKeyedRateLimiter;
use governor::Quota;
use governor::RateLimiter as GovernorLimiter;
use governor::clock::Clock;

use rustls::pki_types::CertificateDer;
use switchboard_raft_store::Actor;
use switchboard_raft_store::ActorKind;
use switchboard_raft_store::ids::HostId;
use switchboard_raft_store::ids::RelayId;
use switchboard_raft_store::ids::SiteId;
use tonic::Request;
use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::site::unix_ms;
use switchboard_api::Role;
use switchboard_api::TokenKey;
use switchboard_api::TokenRole;
use switchboard_api::cluster_domain;
use switchboard_api::connection;
use switchboard_api::parse_identity_name;

pub use switchboard_api::headers::RETRY_AFTER_HEADER;
/// Identities whose rate is tracked at once; past this, idle ones are dropped.
pub const RATE_TRACKED_IDENTITIES_MAX: usize = 100_000;

/// The API port's interceptor: every call is authenticated from its
/// headers and TLS session before its body is read or decoded (see
/// [`Authenticator::authenticate`]).
#[derive(Clone)]
pub struct Authenticate(pub std::sync::Arc<crate::site::Site>);

impl tonic::service::Interceptor for Authenticate {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.0.auth.authenticate(request)
    }
}

/// Who a request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Site(SiteId),
    Relay(RelayId),
    Host(HostId),
    Admin(String),
    Client(String),
    /// No authentication configured (the `insecure` setting): named by address.
    Anonymous(String),
}

impl Principal {
    /// The actor a proposal records (the audit log names it).
    pub fn actor(&self) -> Actor {
        match self {
            Principal::Site(id) => Actor::new(ActorKind::System, format!("site-{id}")),
            Principal::Relay(id) => Actor::new(ActorKind::Relay, id.as_str()),
            Principal::Host(id) => Actor::new(ActorKind::Host, id.as_str()),
            Principal::Admin(name) => Actor::new(ActorKind::Admin, name.as_str()),
            Principal::Client(name) => Actor::new(ActorKind::Client, name.as_str()),
            Principal::Anonymous(address) => Actor::new(ActorKind::Anonymous, address.as_str()),
        }
    }

    /// Whether it may do what only operators may.
    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin(_) | Principal::Anonymous(_))
    }

    /// The key its request rate and its watches are counted by; `None`
    /// for those never throttled (operators, sites, the insecure mode).
    pub(crate) fn rate_key(&self) -> Option<String> {
        match self {
            // Operators and the insecure development mode are not throttled.
            Principal::Admin(_) | Principal::Anonymous(_) | Principal::Site(_) => None,
            Principal::Relay(id) => Some(format!("relay:{id}")),
            Principal::Host(id) => Some(format!("host:{id}")),
            Principal::Client(name) => Some(format!("client:{name}")),
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.actor())
    }
}

/// Requests per second, per identity.
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Shortest time between two sweeps of idle identities out of a full
/// limiter: a sweep scans every identity, so a flood of new ones costs one
/// scan per interval, not one per request.
pub const RATE_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A token bucket per identity (governor's GCRA), holding at most
/// `RATE_TRACKED_IDENTITIES_MAX` identities.
pub struct RateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    last_sweep: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
        RateLimiter {
            limiter: GovernorLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            last_sweep: Mutex::new(None),
        }
    }

    /// Takes one request from `key`'s bucket, or says how long to wait.
    pub fn admit(&self, key: &str) -> Result<(), Duration> {
        if self.limiter.len() >= RATE_TRACKED_IDENTITIES_MAX && !self.sweep() {
            // Every tracked identity is busy: refuse rather than grow.
            return Err(RATE_SWEEP_INTERVAL);
        }
        self.limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Forgets identities whose bucket is full again (forgetting them loses
    /// nothing), at most once per `RATE_SWEEP_INTERVAL`. Whether there is
    /// room now.
    fn sweep(&self) -> bool {
        let now = Instant::now();
        let mut last_sweep = self.last_sweep.lock();
        if last_sweep.is_none_or(|at| now.duration_since(at) >= RATE_SWEEP_INTERVAL) {
            *last_sweep = Some(now);
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.len() < RATE_TRACKED_IDENTITIES_MAX
    }
}

/// How a site authenticates callers.
pub enum Authenticator {
    /// No TLS: everyone is an anonymous admin. Development only, behind the
    /// explicit `insecure` setting.
    Insecure,
    /// Identities from certificates (and tokens, if a key is configured).
    Tls(Box<TlsAuthenticator>),
}

/// Certificate and token authentication of one cluster.
pub struct TlsAuthenticator {
    cluster_id: String,
    domain: String,
    tokens: Option<TokenKey>,
    limiter: RateLimiter,
}

fn unauthenticated(message: impl Into<String>) -> Status {
    Status::unauthenticated(message.into())
}

fn denied(principal: &Principal, what: &str) -> Status {
    Status::permission_denied(format!("{principal} may not {what}"))
}

impl Authenticator {
    /// Certificate (and token) authentication for a cluster.
    pub fn tls(cluster_id: &str, tokens: Option<TokenKey>, limit: RateLimit) -> Self {
        Authenticator::Tls(Box::new(TlsAuthenticator {
            cluster_id: cluster_id.to_owned(),
            domain: cluster_domain(cluster_id),
            tokens,
            limiter: RateLimiter::new(limit),
        }))
    }

    /// Signs a token for a host or client, valid for `ttl_secs`.
    pub fn issue_token(
        &self,
        role: TokenRole,
        subject: &str,
        ttl_secs: u64,
    ) -> Result<(String, u64), Status> {
        let Authenticator::Tls(tls) = self else {
            return Err(Status::failed_precondition(
                "this site has no token key (tls.token_key_file)",
            ));
        };
        let TlsAuthenticator {
            cluster_id,
            tokens: Some(key),
            ..
        } = tls.as_ref()
        else {
            return Err(Status::failed_precondition(
                "this site has no token key (tls.token_key_file)",
            ));
        };
        let expires_at_ms = unix_ms().saturating_add(ttl_secs.saturating_mul(1000));
        let claims = switchboard_api::TokenClaims {
            role,
            subject: subject.to_owned(),
            cluster_id: cluster_id.clone(),
            expires_at_ms,
        };
        Ok((key.issue(&claims), expires_at_ms))
    }

    /// Whether calls are authenticated at all.
    pub fn is_secure(&self) -> bool {
        matches!(self, Authenticator::Tls(_))
    }

    /// The identity in a verified client certificate.
    pub fn principal_from_certificate(
        &self,
        certificate: &CertificateDer<'_>,
    ) -> Result<Principal, Status> {
        let Authenticator::Tls(tls) = self else {
            return Err(unauthenticated("certificates are not in use"));
        };
        let parsed = webpki::EndEntityCert::try_from(certificate)
            .map_err(|e| unauthenticated(format!("unreadable client certificate: {e:?}")))?;
        for name in parsed.valid_dns_names() {
            let Some((role, id)) = parse_identity_name(name, &tls.domain) else {
                continue;
            };
            let principal = match role {
                Role::Site => id.parse().map(Principal::Site).ok(),
                Role::Relay => RelayId::new(id).map(Principal::Relay).ok(),
                Role::Admin => Some(Principal::Admin(id.to_owned())),
                Role::Client => Some(Principal::Client(id.to_owned())),
            };
            if let Some(principal) = principal {
                return Ok(principal);
            }
        }
        Err(unauthenticated(format!(
            "the client certificate names no identity of {}",
            tls.domain
        )))
    }

    /// Who sent `request`: as [`authenticate`] found before the body was
    /// read, or from its certificate or token now.
    pub fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        if let Some(found) = request.extensions().get::<Principal>() {
            return Ok(found.clone());
        }
        let Authenticator::Tls(tls) = self else {
            let address = connection::remote_addr(request.extensions())
                .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
            return Ok(Principal::Anonymous(address));
        };
        if let Some(certificates) = connection::peer_certs(request.extensions())
            && let Some(leaf) = certificates.first()
        {
            return self.principal_from_certificate(leaf);
        }
        let Some(header) = request.metadata().get("authorization") else {
            return Err(unauthenticated(
                "present a client certificate or an authorization token",
            ));
        };
        let tokens = tls
            .tokens
            .as_ref()
            .ok_or_else(|| unauthenticated("this site accepts certificates only"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| unauthenticated("authorization must be 'Bearer <token>'"))?;
        let claims = tokens
            .verify(token, &tls.cluster_id, unix_ms())
            .map_err(|e| unauthenticated(e.to_string()))?;
        match claims.role {
            TokenRole::Host => HostId::new(claims.subject)
                .map(Principal::Host)
                .map_err(|e| unauthenticated(format!("token subject: {e}"))),
            TokenRole::Client => Ok(Principal::Client(claims.subject)),
        }
    }

    /// Authenticates a call from its headers and TLS session alone, before
    /// its body is read or decoded, and keeps who it is for the handler: a
    /// caller without a valid certificate or token learns nothing about how
    /// its request would have fared, and costs no decoding.
    pub fn authenticate(&self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let principal = self.principal(&request)?;
        request.extensions_mut().insert(principal);
        Ok(request)
    }

    fn admitted(&self, principal: Principal) -> Result<Principal, Status> {
        if let (Authenticator::Tls(tls), Some(key)) = (self, principal.rate_key())
            && let Err(wait) = tls.limiter.admit(&key)
        {
            metrics::counter!("switchboard_requests_rate_limited_total").increment(1);
            let mut status = Status::resource_exhausted(format!(
                "{principal} is over its request rate; retry in {} ms",
                wait.as_millis().max(1)
            ));
            status.metadata_mut().insert(
                RETRY_AFTER_HEADER,
                MetadataValue::from(wait.as_millis().max(1) as u64),
            );
            return Err(status);
        }
        Ok(principal)
    }

    /// An operator.
    pub fn admin<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let principal = self.principal(request)?;
        if !principal.is_admin() {
            return Err(denied(&principal, "use the admin API"));
        }
        self.admitted(principal)
    }

    /// An operator, or relay `relay_id` itself.
    pub fn relay<T>(&self, request: &Request<T>, relay_id: &RelayId) -> Result<Principal, Status> {
        let principal = self.principal(request)?;
        match &principal {
            p if p.is_admin() => {}
            Principal::Relay(id) if id == relay_id => {}
            other => return Err(denied(other, &format!("act as relay {relay_id}"))),
        }
        self.admitted(principal)
    }

    /// An operator, or host `host_id` itself.
    pub fn host<T>(&self, request: &Request<T>, host_id: &HostId) -> Result<Principal, Status> {
        let principal = self.principal(request)?;
        match &principal {
            p if p.is_admin() => {}
            Principal::Host(id) if id == host_id => {}
            other => return Err(denied(other, &format!("act as host {host_id}"))),
        }
        self.admitted(principal)
    }

    /// Anyone authenticated (reads that show nothing secret).
    pub fn reader<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let principal = self.principal(request)?;
        self.admitted(principal)
    }

    /// A site of this cluster, on the raft port. `members` is this site's
    /// membership; an empty one (a site not yet joined) accepts any site.
    pub fn site<T>(&self, request: &Request<T>, members: &[SiteId]) -> Result<(), Status> {
        if !self.is_secure() {
            return Ok(());
        }
        match self.principal(request)? {
            Principal::Site(id) if members.is_empty() || members.contains(&id) => Ok(()),
            Principal::Site(id) => Err(Status::permission_denied(format!(
                "site {id} is not a member of this cluster"
            ))),
            other => Err(denied(&other, "use the raft port")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_paces() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 10,
            burst: 3,
        });
        for _ in 0..3 {
            assert!(limiter.admit("relay:a").is_ok());
        }
        let wait = limiter.admit("relay:a").unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(
            limiter.admit("relay:b").is_ok(),
            "identities have their own buckets"
        );
    }

    #[test]
    fn a_full_limiter_refuses_new_identities_instead_of_growing() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1,
            burst: 1,
        });
        for n in 0..RATE_TRACKED_IDENTITIES_MAX {
            assert!(limiter.admit(&format!("host:{n}")).is_ok());
        }
        // Every identity just spent its burst, so a sweep frees nothing.
        assert_eq!(limiter.admit("host:new"), Err(RATE_SWEEP_INTERVAL));
        assert_eq!(limiter.limiter.len(), RATE_TRACKED_IDENTITIES_MAX);
    }
}
