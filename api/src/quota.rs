//! What anonymous callers may spend: a webchat customer needs no credential, so without limits
//! one client could start a workflow per made-up `session_id` or fill the database with 10 MiB
//! uploads (OWASP API4, unrestricted resource consumption).
//!
//! Token buckets in this process's memory (like the API-key limiter, [`crate::ratelimit`]): per
//! client (its source address, behind `api.trusted_proxies` the forwarded one) and tenant, and
//! per tenant for everyone together. With N API replicas a limit is up to N × its setting. A
//! session counts as new when this process has not seen it in the last hour.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use zengine_domain::TenantId;

use crate::ratelimit::RateLimiter;
use crate::{ApiError, AppState, ErrorCode};

/// `[api.anonymous]`: limits of unauthenticated webchat traffic. 0 disables a limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnonymousLimits {
    /// `false` turns every limit below off (load tests and benchmarks from one address).
    pub enabled: bool,
    /// Messages per minute one client may send to one tenant.
    pub client_messages_per_minute: u32,
    /// Messages one client may send at once after being idle.
    pub client_message_burst: u32,
    /// New sessions (each starts a conversation workflow) per minute one client may open.
    pub client_sessions_per_minute: u32,
    /// New sessions one client may open at once.
    pub client_session_burst: u32,
    /// Messages per minute one tenant's webchat takes from all clients together.
    pub tenant_messages_per_minute: u32,
    /// Messages one tenant's webchat takes at once.
    pub tenant_message_burst: u32,
    /// Bytes per hour one client may upload (`POST /v1/webchat/media`); also its burst.
    pub client_media_bytes_per_hour: u64,
    /// Bytes per hour one tenant's webchat takes from all clients together; also its burst.
    pub tenant_media_bytes_per_hour: u64,
}

impl Default for AnonymousLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            client_messages_per_minute: 120,
            client_message_burst: 40,
            client_sessions_per_minute: 20,
            client_session_burst: 20,
            tenant_messages_per_minute: 6_000,
            tenant_message_burst: 1_000,
            client_media_bytes_per_hour: 50 * 1024 * 1024,
            tenant_media_bytes_per_hour: 2 * 1024 * 1024 * 1024,
        }
    }
}

impl AnonymousLimits {
    /// No limits (load tests, benchmarks).
    pub fn unlimited() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }
}

/// Sessions remembered before those idle for an hour are dropped.
const PRUNE_SESSIONS_AT: usize = 100_000;
const SESSION_MEMORY: Duration = Duration::from_secs(3600);

/// The buckets of one API process.
#[derive(Default)]
pub struct Quotas {
    buckets: RateLimiter,
    sessions: Mutex<HashMap<(TenantId, String), Instant>>,
}

fn over(what: &str, wait: Duration) -> ApiError {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut error = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
        format!("{what}; retry after {seconds} s"),
    );
    error.retry_after_secs = Some(seconds);
    error
}

fn client_key(client: Option<IpAddr>) -> String {
    client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

impl Quotas {
    /// Takes one message of `client` to `tenant` in `session` (429 when over a limit).
    pub fn message(
        &self,
        limits: &AnonymousLimits,
        tenant: &TenantId,
        client: Option<IpAddr>,
        session: &str,
    ) -> Result<(), ApiError> {
        if !limits.enabled {
            return Ok(());
        }
        let client = client_key(client);
        let per_minute = |n: u32| f64::from(n) / 60.0;
        if self.is_new_session(tenant, session) {
            self.buckets
                .take(
                    &format!("session/{tenant}/{client}"),
                    per_minute(limits.client_sessions_per_minute),
                    f64::from(limits.client_session_burst.max(1)),
                    1.0,
                )
                .map_err(|wait| {
                    self.forget_session(tenant, session);
                    over("this client opens new webchat sessions too fast", wait)
                })?;
        }
        self.buckets
            .take(
                &format!("message/{tenant}/{client}"),
                per_minute(limits.client_messages_per_minute),
                f64::from(limits.client_message_burst.max(1)),
                1.0,
            )
            .map_err(|wait| over("this client sends webchat messages too fast", wait))?;
        self.buckets
            .take(
                &format!("message/{tenant}"),
                per_minute(limits.tenant_messages_per_minute),
                f64::from(limits.tenant_message_burst.max(1)),
                1.0,
            )
            .map_err(|wait| over("this tenant's webchat is over its message limit", wait))
    }

    /// Takes `bytes` of upload of `client` to `tenant` (429 when over a limit).
    pub fn media(
        &self,
        limits: &AnonymousLimits,
        tenant: &TenantId,
        client: Option<IpAddr>,
        bytes: u64,
    ) -> Result<(), ApiError> {
        if !limits.enabled {
            return Ok(());
        }
        let client = client_key(client);
        let per_hour = |n: u64| n as f64 / 3600.0;
        self.buckets
            .take(
                &format!("media/{tenant}/{client}"),
                per_hour(limits.client_media_bytes_per_hour),
                limits.client_media_bytes_per_hour as f64,
                bytes as f64,
            )
            .map_err(|wait| over("this client uploads too much media", wait))?;
        self.buckets
            .take(
                &format!("media/{tenant}"),
                per_hour(limits.tenant_media_bytes_per_hour),
                limits.tenant_media_bytes_per_hour as f64,
                bytes as f64,
            )
            .map_err(|wait| over("this tenant's webchat is over its media limit", wait))
    }

    /// Whether this process has not seen `session` of `tenant` within the last hour (and
    /// remembers it now).
    fn is_new_session(&self, tenant: &TenantId, session: &str) -> bool {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().expect("session memory lock");
        if sessions.len() >= PRUNE_SESSIONS_AT {
            sessions.retain(|_, seen| now.duration_since(*seen) < SESSION_MEMORY);
        }
        let key = (tenant.clone(), session.to_owned());
        match sessions.insert(key, now) {
            Some(seen) => now.duration_since(seen) >= SESSION_MEMORY,
            None => true,
        }
    }

    fn forget_session(&self, tenant: &TenantId, session: &str) {
        self.sessions
            .lock()
            .expect("session memory lock")
            .remove(&(tenant.clone(), session.to_owned()));
    }
}

/// The address a request came from: the socket peer, or behind `api.trusted_proxies` the
/// rightmost forwarded address that is not a proxy. `None` without a socket (in-process tests).
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    pub fn of(
        parts_extensions: &axum::http::Extensions,
        headers: &axum::http::HeaderMap,
        state: &AppState,
    ) -> Self {
        let peer = parts_extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        ClientAddr(crate::webhooks::source_address(
            peer,
            headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
            &state.settings.trusted_proxies,
        ))
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr::of(&parts.extensions, &parts.headers, state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_messages_and_bytes_are_limited_per_client_and_tenant() {
        let quotas = Quotas::default();
        let limits = AnonymousLimits {
            client_sessions_per_minute: 60,
            client_session_burst: 2,
            client_messages_per_minute: 60,
            client_message_burst: 5,
            client_media_bytes_per_hour: 1000,
            tenant_media_bytes_per_hour: 1500,
            ..AnonymousLimits::default()
        };
        let tenant = TenantId::parse("acme").unwrap();
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let b: IpAddr = "203.0.113.2".parse().unwrap();
        assert!(quotas.message(&limits, &tenant, Some(a), "s1").is_ok());
        assert!(quotas.message(&limits, &tenant, Some(a), "s2").is_ok());
        // A third new session is refused; a known one still talks.
        let refused = quotas.message(&limits, &tenant, Some(a), "s3").unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(quotas.message(&limits, &tenant, Some(a), "s1").is_ok());
        assert!(quotas.message(&limits, &tenant, Some(a), "s2").is_ok());
        // Five messages of burst, then 429; another client is not affected.
        assert!(quotas.message(&limits, &tenant, Some(a), "s1").is_ok());
        assert!(quotas.message(&limits, &tenant, Some(a), "s1").is_err());
        assert!(quotas.message(&limits, &tenant, Some(b), "s3").is_ok());
        // Bytes: a client's hour, then the tenant's.
        assert!(quotas.media(&limits, &tenant, Some(a), 900).is_ok());
        assert!(quotas.media(&limits, &tenant, Some(a), 200).is_err());
        assert!(quotas.media(&limits, &tenant, Some(b), 500).is_ok());
        assert!(
            quotas.media(&limits, &tenant, Some(b), 200).is_err(),
            "the tenant's 1500"
        );
        // Unlimited is unlimited.
        let free = AnonymousLimits::unlimited();
        for i in 0..1000 {
            assert!(
                quotas
                    .message(&free, &tenant, Some(a), &format!("x{i}"))
                    .is_ok()
            );
        }
    }
}
