//! Who is calling: one [`Caller`] per request, from a JWT, an API key or the bootstrap admin
//! token, plus the role checks handlers make on it.
//!
//! - **JWT bearer tokens** (operators; `api.auth.jwt`): HS256 with a configured key for
//!   development, RS256 verified against a JWKS (file, or URL fetched and cached, refetched when
//!   a token names an unknown `kid`) for OIDC providers such as Cognito. The tenant and role come
//!   from configurable claims.
//! - **API keys** (partner integrations; `zk_<id>_<secret>` as bearer token or `x-api-key`): per
//!   tenant, stored hashed, each with a token-bucket rate limit. Viewer or operator only.
//! - **`api.admin_token`**: the development / bootstrap credential; Admin of the tenant named in
//!   `x-tenant-id` (or in the path of `/v1/tenants/{tenant}/…`).
//!
//! Failures: no or a bad credential → 401; a role without the right → 403; another tenant's
//! resource → 404 (the same answer as a resource that does not exist).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zengine_domain::TenantId;
use zengine_storage::Database;

use crate::ratelimit::RateLimiter;
use crate::{ApiError, AppState, ErrorCode};

/// Header an API key may come in instead of `Authorization: Bearer`.
pub const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// What a caller may do. Ordered: each role can do everything the ones before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads and acts on workflows (reviews, return-to-bot, cancel, …).
    Operator,
    /// Everything, including publishing flows and managing API keys.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name (case-insensitive).
    pub fn parse(raw: &str) -> Option<Role> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Jwt,
    ApiKey,
    AdminToken,
}

/// An authenticated caller, always bound to one existing tenant.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub role: Role,
    /// Who: the token's `sub`, `api-key:<id>`, or `admin-token`.
    pub subject: String,
    pub via: Via,
}

impl Caller {
    /// 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role; the caller is {}",
                role.as_str(),
                self.role.as_str()
            )))
        }
    }

    /// 403 for API keys: they are for the partner REST endpoints, not for operators' tools.
    pub fn require_operator_credential(&self) -> Result<(), ApiError> {
        if self.via == Via::ApiKey {
            Err(ApiError::forbidden(
                "API keys are for the partner endpoints; use a JWT (or the admin token)",
            ))
        } else {
            Ok(())
        }
    }

    /// 404 unless `tenant` is the caller's (no enumeration of other tenants).
    pub fn owns(&self, tenant: &str) -> Result<(), ApiError> {
        if tenant == self.tenant.as_str() {
            Ok(())
        } else {
            Err(unknown_tenant(tenant))
        }
    }
}

fn unknown_tenant(tenant: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::UnknownTenant,
        format!("tenant `{tenant}` does not exist"),
    )
}

fn suspended(tenant: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::TenantSuspended,
        format!("tenant `{tenant}` is suspended"),
    )
}

/// The role claim value of the platform administrator.
pub const PLATFORM_ADMIN_ROLE: &str = "platform-admin";

/// A caller of the tenant administration API.
#[derive(Debug, Clone)]
pub enum AdminCaller {
    /// Manages every tenant.
    Platform { subject: String },
    /// A caller of one tenant.
    Tenant(Caller),
}

impl AdminCaller {
    pub fn subject(&self) -> &str {
        match self {
            AdminCaller::Platform { subject } => subject,
            AdminCaller::Tenant(caller) => &caller.subject,
        }
    }

    /// 403 unless the platform administrator.
    pub fn require_platform(&self) -> Result<(), ApiError> {
        match self {
            AdminCaller::Platform { .. } => Ok(()),
            AdminCaller::Tenant(_) => {
                Err(ApiError::forbidden("this needs the platform-admin role"))
            }
        }
    }

    /// The tenant of `/v1/tenants/{tenant}/…` if the caller may administer it: the platform
    /// administrator any existing tenant, a tenant admin their own (404 for another, 403 below
    /// admin).
    pub async fn tenant(&self, db: &Database, raw: &str) -> Result<TenantId, ApiError> {
        match self {
            AdminCaller::Platform { .. } => {
                let id = TenantId::parse(raw).map_err(|_| unknown_tenant(raw))?;
                if db.tenants().get(&id).await?.is_none() {
                    return Err(unknown_tenant(raw));
                }
                Ok(id)
            }
            AdminCaller::Tenant(caller) => {
                caller.owns(raw)?;
                caller.require(Role::Admin)?;
                Ok(caller.tenant.clone())
            }
        }
    }
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let path_tenant = path_tenant(parts, state).await;
        let credentials = Credentials::from_headers(&parts.headers)?;
        state
            .auth
            .authenticate_admin(&state.db, credentials, path_tenant.as_deref())
            .await
    }
}

/// The `{tenant}` of the route, if it has one.
async fn path_tenant(parts: &mut Parts, state: &AppState) -> Option<String> {
    RawPathParams::from_request_parts(parts, state)
        .await
        .ok()
        .and_then(|params| {
            params
                .iter()
                .find(|(name, _)| *name == "tenant")
                .map(|(_, value)| value.to_owned())
        })
}

fn subject_of(claims: &serde_json::Map<String, serde_json::Value>) -> String {
    claims
        .get("sub")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown")
        .chars()
        .take(128)
        .collect()
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
}

/// `api.auth`: how callers authenticate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    pub jwt: JwtSettings,
    pub api_keys: ApiKeySettings,
}

/// `api.auth.jwt`: bearer JWTs. Enabled when `hs256_secret`, `jwks_url` or `jwks_file` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// Secret reference (`env:NAME`, `file:/path`) of the HS256 key, for development. Empty: no
    /// HS256 tokens are accepted.
    pub hs256_secret: String,
    /// JWKS URL of the identity provider (e.g. Cognito's
    /// `https://cognito-idp.<region>.amazonaws.com/<pool>/.well-known/jwks.json`): RS256 tokens.
    pub jwks_url: String,
    /// A JWKS file instead of a URL (read at first use, and again after `jwks_ttl_secs`).
    pub jwks_file: String,
    /// How long fetched keys are used before they are fetched again.
    pub jwks_ttl_secs: u64,
    /// A token with an unknown `kid` refetches the JWKS at most this often (key rotation
    /// without letting made-up `kid`s hammer the provider).
    pub jwks_refetch_min_interval_ms: u64,
    /// Required `iss`; empty: not checked.
    pub issuer: String,
    /// Required `aud` (one of); empty: not checked.
    pub audience: Vec<String>,
    /// Claims holding the tenant id, first present wins.
    pub tenant_claims: Vec<String>,
    /// Claims holding the role (a string or a list of strings such as `cognito:groups`); the
    /// highest of `admin`, `operator`, `viewer` found wins.
    pub role_claims: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            hs256_secret: String::new(),
            jwks_url: String::new(),
            jwks_file: String::new(),
            jwks_ttl_secs: 600,
            jwks_refetch_min_interval_ms: 10_000,
            issuer: String::new(),
            audience: Vec::new(),
            tenant_claims: vec!["tenant_id".into(), "custom:tenant_id".into()],
            role_claims: vec!["role".into(), "cognito:groups".into()],
            leeway_secs: 30,
        }
    }
}

/// `api.auth.api_keys`: defaults of the per-key token bucket.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKeySettings {
    /// Requests per minute a key may sustain (0: unlimited), unless the key sets its own.
    pub rate_per_minute: u32,
    /// Requests a key may send at once after being idle, unless the key sets its own.
    pub burst: u32,
}

impl Default for ApiKeySettings {
    fn default() -> Self {
        Self {
            rate_per_minute: 600,
            burst: 60,
        }
    }
}

/// The credentials a request presented.
#[derive(Debug, Default, Clone, Copy)]
pub struct Credentials<'a> {
    /// The bearer token (`Authorization: Bearer …`) or `x-api-key`.
    pub token: Option<&'a str>,
    /// `x-tenant-id`, raw.
    pub tenant_header: Option<&'a str>,
}

impl<'a> Credentials<'a> {
    pub fn from_headers(headers: &'a HeaderMap) -> Result<Self, ApiError> {
        let text = |name: &HeaderName| {
            headers
                .get(name)
                .map(|v| {
                    v.to_str().map_err(|_| {
                        ApiError::bad_request(
                            ErrorCode::InvalidHeader,
                            format!("header `{name}` is not ASCII"),
                        )
                    })
                })
                .transpose()
        };
        let bearer = text(&header::AUTHORIZATION)?.map(|v| v.strip_prefix("Bearer ").unwrap_or(""));
        Ok(Self {
            token: bearer.or(text(&API_KEY_HEADER)?),
            tenant_header: text(&crate::webchat::TENANT_HEADER)?,
        })
    }
}

/// Checks credentials; built once per process from [`AuthSettings`].
pub struct Authenticator {
    admin_token: SecretString,
    jwt: Option<JwtVerifier>,
    api_keys: ApiKeySettings,
    limiter: RateLimiter,
}

impl Authenticator {
    /// Resolves the configured secrets (a missing one fails here, at start-up).
    pub fn new(admin_token: SecretString, settings: &AuthSettings) -> anyhow::Result<Self> {
        let jwt = JwtVerifier::new(&settings.jwt)?;
        Ok(Self {
            admin_token,
            jwt,
            api_keys: settings.api_keys.clone(),
            limiter: RateLimiter::default(),
        })
    }

    /// Whether any operator credential (admin token or JWT) is configured.
    fn operator_auth_enabled(&self) -> bool {
        !self.admin_token.expose_secret().is_empty() || self.jwt.is_some()
    }

    pub(crate) fn is_admin_token(&self, token: &str) -> bool {
        let expected = self.admin_token.expose_secret();
        !expected.is_empty()
            && token.len() == expected.len()
            && token
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// Authenticates `credentials`; `path_tenant` is the `{tenant}` of the route, if it has one.
    pub async fn authenticate(
        &self,
        db: &Database,
        credentials: Credentials<'_>,
        path_tenant: Option<&str>,
    ) -> Result<Caller, ApiError> {
        let token = credentials.token.unwrap_or("");
        let is_key = token.starts_with(zengine_storage::KEY_PREFIX);
        if !is_key && !self.operator_auth_enabled() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Unauthorized,
                "the management API is disabled (set api.admin_token or api.auth.jwt)",
            ));
        }
        if token.is_empty() {
            return Err(unauthorized("missing or wrong bearer token"));
        }
        let (caller, claimed_by_credential) = if self.is_admin_token(token) {
            let raw = match (credentials.tenant_header, path_tenant) {
                (Some(header), _) => header,
                (None, Some(path)) => path,
                (None, None) => {
                    return Err(ApiError::bad_request(
                        ErrorCode::MissingHeader,
                        "header `x-tenant-id` is required",
                    ));
                }
            };
            let tenant = if credentials.tenant_header.is_some() {
                TenantId::parse(raw).map_err(|e| {
                    ApiError::bad_request(
                        ErrorCode::InvalidHeader,
                        format!("header `x-tenant-id`: {e}"),
                    )
                })?
            } else {
                TenantId::parse(raw).map_err(|_| unknown_tenant(raw))?
            };
            let caller = Caller {
                tenant,
                role: Role::Admin,
                subject: "admin-token".into(),
                via: Via::AdminToken,
            };
            (caller, false)
        } else if is_key {
            (self.api_key(db, token).await?, true)
        } else if let Some(jwt) = &self.jwt {
            (jwt.verify(token).await?, true)
        } else {
            return Err(unauthorized("missing or wrong bearer token"));
        };
        if claimed_by_credential && let Some(header) = credentials.tenant_header {
            // The credential names the tenant; a header naming another one gets the same
            // answer as a tenant that does not exist.
            caller.owns(header)?;
        }
        match db.tenants().get(&caller.tenant).await? {
            None => return Err(unknown_tenant(caller.tenant.as_str())),
            Some(tenant) if tenant.suspended => return Err(suspended(caller.tenant.as_str())),
            Some(_) => {}
        }
        tracing::Span::current().record("tenant_id", caller.tenant.as_str());
        Ok(caller)
    }

    /// Authenticates a caller of the tenant administration API (`/v1/tenants…`): the admin
    /// token and a JWT whose role claims include `platform-admin` are the platform
    /// administrator (any tenant, suspended ones included, no tenant needed); any other
    /// credential is a tenant caller as [`Authenticator::authenticate`] makes it (its own,
    /// active tenant only). API keys get 403.
    pub async fn authenticate_admin(
        &self,
        db: &Database,
        credentials: Credentials<'_>,
        path_tenant: Option<&str>,
    ) -> Result<AdminCaller, ApiError> {
        let token = credentials.token.unwrap_or("");
        if !token.is_empty() && !token.starts_with(zengine_storage::KEY_PREFIX) {
            if self.is_admin_token(token) {
                return Ok(AdminCaller::Platform {
                    subject: "admin-token".into(),
                });
            }
            if let Some(jwt) = &self.jwt {
                let claims = jwt.claims(token).await?;
                if jwt.is_platform_admin(&claims) {
                    return Ok(AdminCaller::Platform {
                        subject: subject_of(&claims),
                    });
                }
            }
        }
        let caller = self.authenticate(db, credentials, path_tenant).await?;
        caller.require_operator_credential()?;
        Ok(AdminCaller::Tenant(caller))
    }

    async fn api_key(&self, db: &Database, token: &str) -> Result<Caller, ApiError> {
        let key = db
            .api_keys()
            .authenticate(token)
            .await?
            .ok_or_else(|| unauthorized("unknown or revoked API key"))?;
        let clamp = |v: Option<i64>, default: u32| {
            v.map_or(default, |v| u32::try_from(v.max(0)).unwrap_or(u32::MAX))
        };
        let rate = clamp(key.rate_per_minute, self.api_keys.rate_per_minute);
        let burst = clamp(key.burst, self.api_keys.burst);
        if let Err(wait) = self.limiter.check(&key.key_id, rate, burst) {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!(
                    "API key `{}` is over its limit of {rate} requests per minute; retry after {seconds} s",
                    key.key_id
                ),
            );
            error.retry_after_secs = Some(seconds);
            return Err(error);
        }
        Ok(Caller {
            tenant: key.tenant_id,
            role: Role::parse(&key.role)
                .unwrap_or(Role::Viewer)
                .min(Role::Operator),
            subject: format!("api-key:{}", key.key_id),
            via: Via::ApiKey,
        })
    }
}

/// The caller of an operator-facing handler that reads its own headers, with at least `role`.
/// API keys get 403: they reach only the partner endpoints ([`PartnerCaller`]).
pub async fn caller_of(
    state: &AppState,
    headers: &HeaderMap,
    role: Role,
) -> Result<Caller, ApiError> {
    let credentials = Credentials::from_headers(headers)?;
    let caller = state
        .auth
        .authenticate(&state.db, credentials, None)
        .await?;
    caller.require_operator_credential()?;
    caller.require(role)?;
    Ok(caller)
}

async fn authenticate_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
    let path_tenant = path_tenant(parts, state).await;
    let credentials = Credentials::from_headers(&parts.headers)?;
    state
        .auth
        .authenticate(&state.db, credentials, path_tenant.as_deref())
        .await
}

/// The extractor of operator-facing handlers (the default): a JWT or the admin token. API keys
/// get 403, so an endpoint added later is closed to them unless it asks for [`PartnerCaller`].
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = authenticate_parts(parts, state).await?;
        caller.require_operator_credential()?;
        Ok(caller)
    }
}

/// The caller of a partner endpoint (orders, payments, tracking, routes): an API key, a JWT or
/// the admin token.
#[derive(Debug, Clone)]
pub struct PartnerCaller(pub Caller);

impl std::ops::Deref for PartnerCaller {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl FromRequestParts<AppState> for PartnerCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate_parts(parts, state).await.map(PartnerCaller)
    }
}

/// Verifies JWTs (HS256 and/or RS256).
struct JwtVerifier {
    settings: JwtSettings,
    hs256: Option<DecodingKey>,
    jwks: Option<JwksSource>,
    http: reqwest::Client,
    keys: tokio::sync::Mutex<KeyCache>,
}

enum JwksSource {
    Url(String),
    File(String),
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    /// The key to use for a token without `kid` (only when the set has exactly one).
    only: Option<DecodingKey>,
    fetched_at: Option<Instant>,
}

/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 256 * 1024;

impl JwtVerifier {
    fn new(settings: &JwtSettings) -> anyhow::Result<Option<Self>> {
        let hs256 = (!settings.hs256_secret.is_empty())
            .then(|| {
                zengine_storage::secrets::resolve(&settings.hs256_secret)
                    .context("api.auth.jwt.hs256_secret")
                    .map(|s| DecodingKey::from_secret(s.expose_secret().as_bytes()))
            })
            .transpose()?;
        let jwks = match (settings.jwks_url.as_str(), settings.jwks_file.as_str()) {
            ("", "") => None,
            (url, "") => Some(JwksSource::Url(url.to_owned())),
            ("", file) => Some(JwksSource::File(file.to_owned())),
            _ => anyhow::bail!("set api.auth.jwt.jwks_url or jwks_file, not both"),
        };
        if hs256.is_none() && jwks.is_none() {
            return Ok(None);
        }
        // An identity provider's keys sign tokens for every application it serves: without
        // an issuer and an audience, a token minted for another application (or another
        // provider tenant sharing the keys) would be accepted here.
        anyhow::ensure!(
            jwks.is_none() || (!settings.issuer.is_empty() && !settings.audience.is_empty()),
            "api.auth.jwt: with jwks_url or jwks_file, set issuer and audience too"
        );
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .context("Failed to build the JWKS HTTP client")?;
        Ok(Some(Self {
            settings: settings.clone(),
            hs256,
            jwks,
            http,
            keys: tokio::sync::Mutex::new(KeyCache::default()),
        }))
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.settings.leeway_secs;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        if !self.settings.issuer.is_empty() {
            validation.set_issuer(&[self.settings.issuer.as_str()]);
        }
        if self.settings.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.settings.audience);
        }
        validation
    }

    async fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let claims = self.claims(token).await?;
        self.caller(&claims)
    }

    /// Whether the role claims include `platform-admin`.
    fn is_platform_admin(&self, claims: &serde_json::Map<String, serde_json::Value>) -> bool {
        self.role_values(claims)
            .iter()
            .any(|r| r.trim().eq_ignore_ascii_case(PLATFORM_ADMIN_ROLE))
    }

    fn role_values<'c>(
        &self,
        claims: &'c serde_json::Map<String, serde_json::Value>,
    ) -> Vec<&'c str> {
        self.settings
            .role_claims
            .iter()
            .filter_map(|c| claims.get(c))
            .flat_map(|v| match v {
                serde_json::Value::String(s) => vec![s.as_str()],
                serde_json::Value::Array(items) => {
                    items.iter().filter_map(|i| i.as_str()).collect()
                }
                _ => Vec::new(),
            })
            .collect()
    }

    /// The verified claims of `token`.
    async fn claims(
        &self,
        token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
        // `alg: none` and unknown algorithms fail here: jsonwebtoken has no `none`.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthorized("the bearer token is not a valid JWT"))?;
        let key = match header.alg {
            Algorithm::HS256 => self
                .hs256
                .clone()
                .ok_or_else(|| unauthorized("HS256 tokens are not accepted"))?,
            Algorithm::RS256 if self.jwks.is_some() => self.rsa_key(header.kid.as_deref()).await?,
            other => return Err(unauthorized(format!("{other:?} tokens are not accepted"))),
        };
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &self.validation(header.alg),
        )
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet",
                ErrorKind::InvalidIssuer => "the token has the wrong issuer",
                ErrorKind::InvalidAudience => "the token has the wrong audience",
                ErrorKind::InvalidSignature => "the token's signature is wrong",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (exp)",
                _ => "the token is invalid",
            };
            unauthorized(why)
        })?;
        Ok(data.claims)
    }

    fn caller(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Caller, ApiError> {
        let tenant = self
            .settings
            .tenant_claims
            .iter()
            .find_map(|c| claims.get(c).and_then(|v| v.as_str()))
            .ok_or_else(|| ApiError::forbidden("the token names no tenant"))?;
        let tenant = TenantId::parse(tenant)
            .map_err(|_| ApiError::forbidden("the token's tenant is invalid"))?;
        let role = self
            .role_values(claims)
            .into_iter()
            .filter_map(Role::parse)
            .max()
            .ok_or_else(|| {
                ApiError::forbidden("the token grants no ZEngine role (admin, operator, viewer)")
            })?;
        let subject = subject_of(claims);
        Ok(Caller {
            tenant,
            role,
            subject,
            via: Via::Jwt,
        })
    }

    /// The RSA key for `kid`: from the cache while fresh; otherwise (or for an unknown `kid`,
    /// at most every `jwks_refetch_min_interval_ms`) fetched again.
    async fn rsa_key(&self, kid: Option<&str>) -> Result<DecodingKey, ApiError> {
        let mut cache = self.keys.lock().await;
        let pick = |cache: &KeyCache| match kid {
            Some(kid) => cache.keys.get(kid).cloned(),
            None => cache.only.clone(),
        };
        let ttl = Duration::from_secs(self.settings.jwks_ttl_secs);
        let fresh = cache.fetched_at.is_some_and(|at| at.elapsed() < ttl);
        if fresh && let Some(key) = pick(&cache) {
            return Ok(key);
        }
        let min_interval = Duration::from_millis(self.settings.jwks_refetch_min_interval_ms);
        let may_fetch = !fresh
            || cache
                .fetched_at
                .is_none_or(|at| at.elapsed() >= min_interval);
        if may_fetch {
            match self.fetch().await {
                Ok(fetched) => *cache = fetched,
                // Keep the keys we have: a provider outage should not log everybody out.
                Err(e) => {
                    tracing::warn!(error.cause_chain = ?e, "Failed to fetch the JWKS");
                    if cache.fetched_at.is_none() {
                        return Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            ErrorCode::Unavailable,
                            "the token signing keys are unavailable; retry later",
                        ));
                    }
                }
            }
        }
        pick(&cache).ok_or_else(|| unauthorized("the token is signed with an unknown key"))
    }

    async fn fetch(&self) -> anyhow::Result<KeyCache> {
        let text = match self
            .jwks
            .as_ref()
            .expect("rsa_key is only called with a JWKS")
        {
            JwksSource::File(path) => tokio::fs::read_to_string(path)
                .await
                .with_context(|| format!("Failed to read the JWKS file {path}"))?,
            JwksSource::Url(url) => {
                let response = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .context("Failed to fetch the JWKS")?
                    .error_for_status()
                    .context("The JWKS endpoint answered an error")?;
                let body = response.bytes().await.context("Failed to read the JWKS")?;
                anyhow::ensure!(
                    body.len() <= MAX_JWKS_BYTES,
                    "the JWKS document is too large"
                );
                String::from_utf8(body.to_vec()).context("the JWKS is not UTF-8")?
            }
        };
        let set: JwkSet = serde_json::from_str(&text).context("the JWKS is not a JWK set")?;
        let mut cache = KeyCache {
            fetched_at: Some(Instant::now()),
            ..KeyCache::default()
        };
        let mut rsa = Vec::new();
        for jwk in &set.keys {
            if !matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) {
                continue;
            }
            let key = DecodingKey::from_jwk(jwk).context("a JWKS key is unusable")?;
            if let Some(kid) = &jwk.common.key_id {
                cache.keys.insert(kid.clone(), key.clone());
            }
            rsa.push(key);
        }
        if rsa.len() == 1 {
            cache.only = rsa.pop();
        }
        Ok(cache)
    }
}

/// Builds the authenticator shared by the REST and gRPC servers.
pub fn authenticator(
    admin_token: SecretString,
    settings: &AuthSettings,
) -> anyhow::Result<Arc<Authenticator>> {
    Authenticator::new(admin_token, settings).map(Arc::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse_case_insensitively() {
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
        assert_eq!(Role::parse(" Operator "), Some(Role::Operator));
        assert_eq!(Role::parse("root"), None);
    }
}
