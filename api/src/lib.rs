//! The HTTP face of ZEngine (axum): channel webhooks that start and signal workflows, REST
//! endpoints, health and Prometheus metrics, and the operator API (REST under `/v1/ops` and the
//! gRPC `zengine.ops.v1.Operations` service), the Web UI payload codec (`/codec/*`) and `/openapi.json`.
//!
//! Handlers validate everything before anything reaches Temporal: bad input gets a 4xx JSON
//! error `{"error": {"code": …, "message": …}}` and causes no effect.

mod api_keys;
mod assistance;
pub mod auth;
mod cache;
mod channels;
mod chatwoot;
pub mod codec;
pub mod console;
mod error;
pub mod grpc;
mod management;
mod metrics;
pub mod openapi;
pub mod ops;
mod orders;
mod payments;
pub mod quota;
mod ratelimit;
mod reports;
mod routes;
mod studio;
mod tenants;
pub use tenants::provision_payload_keys;
mod tracking;
pub mod webchat;
mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use temporalio_client::Client;
use tokio::net::TcpListener;
use tracing::Instrument;
use zengine_channels::{InboundOptions, Registry};
use zengine_storage::Database;

pub use cache::TenantCache;
pub use error::{ApiError, ErrorCode};

/// HTTP server configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Address the API listens on.
    pub addr: String,
    /// Largest accepted request body, in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Largest accepted receipt upload (`POST /v1/orders/{id}/payments`), in bytes.
    pub max_upload_bytes: usize,
    /// How long a webchat request waits for the conversation's replies before answering 504
    /// (the client may then repeat it with the same idempotency key).
    pub webchat_timeout_ms: u64,
    /// How long a response is remembered for its idempotency key.
    pub idempotency_ttl_secs: u64,
    /// WhatsApp Cloud API app secret: `POST /v1/webhooks/whatsapp` checks `X-Hub-Signature-256`
    /// with it. Empty disables WhatsApp webhooks (503). A secret: never logged.
    pub whatsapp_app_secret: secrecy::SecretString,
    /// Token Meta echoes in the webhook verification handshake (`hub.verify_token`).
    pub whatsapp_verify_token: secrecy::SecretString,
    /// Bearer token of the management endpoints (publishing flows, operator actions). Empty
    /// disables them. A secret: never logged.
    pub admin_token: secrecy::SecretString,
    /// History length at which a conversation workflow continues as new (keeps replays short).
    pub conversation_history_limit: u32,
    /// Reverse proxies (CIDRs) whose `X-Forwarded-For` is believed: behind them, a webhook's
    /// source address (Five9's IP allowlist) is the rightmost forwarded address that is not a
    /// trusted proxy. Empty: the socket peer is the source.
    pub trusted_proxies: Vec<String>,
    /// How long tenants and their current flows are cached per API process (0 disables).
    /// A flow published through this process is seen at once; other replicas within this time.
    pub tenant_cache_ttl_ms: u64,
    /// Where phone-consultation attachments are kept (local folder or S3) and what uploads
    /// may be (`[api.attachments]`).
    pub attachments: zengine_channels::files::FileStoreSettings,
    /// Address of the gRPC operator service (`zengine.ops.v1.Operations`, with reflection).
    /// Empty disables it.
    pub grpc_addr: String,
    /// How callers authenticate: JWTs, API keys (`docs/operators.md`).
    pub auth: auth::AuthSettings,
    /// Key of the keyed hash that replaces phone numbers in WhatsApp/SMS conversation workflow
    /// ids (`ConversationId::temporal_id`). Empty: a public development key. Never change it
    /// on a running deployment (conversations would restart under new ids). A secret.
    pub contact_id_key: secrecy::SecretString,
    /// Origins (Temporal Web UI) allowed to call `/codec/*` from a browser, with credentials.
    pub codec_cors_origins: Vec<String>,
    /// Set by `zengine dev` only, and only while payloads are on the public development key:
    /// the origins of its own Web UI, whose `/codec/*` calls from a loopback peer need no
    /// credential (the UI of the dev server has no sign-in); CORS admits them too. Not a
    /// setting.
    #[serde(skip)]
    pub dev_ui_origins: Vec<String>,
    /// Largest accepted `/codec/*` body, in bytes (receipt images travel through it).
    pub codec_max_body_bytes: usize,
    /// The operator console at `/console/` (`[api.console]`, `docs/console.md`).
    pub console: console::ConsoleSettings,
    /// Limits of unauthenticated webchat traffic (`[api.anonymous]`, `docs/security.md`).
    pub anonymous: quota::AnonymousLimits,
    /// `[api.outbound]`: internal address ranges that the API's calls steered by tenants
    /// (360dialog template management, SNS certificate and subscription URLs) may reach.
    /// Default: none (see `zengine_channels::outbound`).
    pub outbound: zengine_channels::outbound::OutboundSettings,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".to_owned(),
            max_body_bytes: 64 * 1024,
            max_upload_bytes: 10 * 1024 * 1024,
            webchat_timeout_ms: 30_000,
            idempotency_ttl_secs: 24 * 3600,
            admin_token: secrecy::SecretString::from(String::new()),
            whatsapp_app_secret: secrecy::SecretString::from(String::new()),
            whatsapp_verify_token: secrecy::SecretString::from(String::new()),
            conversation_history_limit: zengine_workflows::conversation::DEFAULT_MAX_HISTORY_EVENTS,
            trusted_proxies: Vec::new(),
            tenant_cache_ttl_ms: 2_000,
            attachments: zengine_channels::files::FileStoreSettings::default(),
            grpc_addr: String::new(),
            auth: auth::AuthSettings::default(),
            contact_id_key: secrecy::SecretString::from(String::new()),
            codec_cors_origins: vec![
                "http://127.0.0.1:8233".to_owned(),
                "http://localhost:8233".to_owned(),
            ],
            dev_ui_origins: Vec::new(),
            codec_max_body_bytes: 32 * 1024 * 1024,
            console: console::ConsoleSettings::default(),
            anonymous: quota::AnonymousLimits::default(),
            outbound: Default::default(),
        }
    }
}

impl ApiSettings {
    /// Refuses a production start without `contact_id_key`: the public development key would
    /// make the phone hashes in workflow ids reversible by enumerating phone numbers. `dev`
    /// (`temporal.codec.allow_dev_key`, set by `zengine dev`) allows it.
    pub fn check_keys(&self, dev: bool) -> anyhow::Result<()> {
        use secrecy::ExposeSecret;
        anyhow::ensure!(
            dev || !self.contact_id_key.expose_secret().is_empty(),
            "api.contact_id_key is not set: phone numbers in workflow ids would be hashed with \
             the public development key (set ZENGINE_API__CONTACT_ID_KEY to a random secret, or \
             temporal.codec.allow_dev_key = true for development)"
        );
        Ok(())
    }
}

/// `api.contact_id_key` when none is configured: public, development only.
pub const DEV_CONTACT_ID_KEY: &str = "zengine-dev-contact-id-key";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub temporal: Client,
    /// The deployment's task-queue prefix (`temporal.task_queue_prefix`); see [`AppState::queue`].
    pub task_queue_prefix: String,
    /// Tenants and current flows, cached for `api.tenant_cache_ttl_ms`.
    pub tenants: Arc<cache::TenantCache>,
    /// The channel strategies (webhook ingress, template management).
    pub channels: Arc<Registry>,
    pub settings: Arc<ApiSettings>,
    /// The attachment store built from `settings.attachments`.
    pub files: Arc<dyn zengine_channels::files::FileStore>,
    /// Checks JWTs, API keys and the admin token ([`auth::Caller`]).
    pub auth: Arc<auth::Authenticator>,
    /// What anonymous webchat clients have spent ([`quota::Quotas`]).
    pub quotas: Arc<quota::Quotas>,
    /// The guard of calls to destinations tenants choose (`api.outbound`).
    pub outbound: zengine_channels::outbound::OutboundGuard,
    /// The payload codec of `temporal` (`temporal.codec`): the codec endpoint's reader checks
    /// and the tenant payload keys it provisions and erases.
    pub codec: zengine_workflows::codec::EncryptionCodec,
}

impl AppState {
    /// The state of an API process; resolves the configured secrets and builds the attachment
    /// store (fails fast when one is missing).
    pub fn new(
        db: Database,
        temporal: Client,
        task_queue_prefix: impl Into<String>,
        settings: ApiSettings,
        codec: zengine_workflows::codec::EncryptionCodec,
    ) -> anyhow::Result<Self> {
        let auth = auth::authenticator(settings.admin_token.clone(), &settings.auth)?;
        let outbound = settings
            .outbound
            .guard()
            .map_err(|e| anyhow::anyhow!("api.{e}"))?;
        let channels = Registry::standard(InboundOptions {
            whatsapp_app_secret: settings.whatsapp_app_secret.clone(),
            outbound: outbound.clone(),
        });
        Ok(Self {
            db,
            temporal,
            task_queue_prefix: task_queue_prefix.into(),
            tenants: Arc::new(cache::TenantCache::new(Duration::from_millis(
                settings.tenant_cache_ttl_ms,
            ))),
            channels: Arc::new(channels),
            files: settings.attachments.build()?,
            settings: Arc::new(settings),
            auth,
            quotas: Arc::default(),
            outbound,
            codec,
        })
    }

    /// The workflow id of a conversation (phone contacts hashed with `api.contact_id_key`).
    pub fn conversation_workflow_id(&self, id: &zengine_domain::ConversationId) -> String {
        use secrecy::ExposeSecret;
        let key = self.settings.contact_id_key.expose_secret();
        let key = if key.is_empty() {
            DEV_CONTACT_ID_KEY
        } else {
            key
        };
        id.temporal_id(key.as_bytes())
    }

    /// The concrete name of the task queue `base` (`zengine_workflows::names::queues`).
    pub fn queue(&self, base: &str) -> String {
        zengine_workflows::names::task_queue(&self.task_queue_prefix, base)
    }
}

/// The routes, without a socket (tests can drive it with `tower::ServiceExt::oneshot`).
///
/// Every API route comes from [`openapi::operations`], the list the OpenAPI document is built
/// from: a route is declared once, with its handler, body, answers and auth.
pub fn router(state: AppState) -> Router {
    openapi::routes(&state.settings)
        // The operator console's files: a web page, not API (not in the OpenAPI document).
        .merge(console::static_routes())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(middleware::from_fn(metrics::track))
        .layer(middleware::from_fn(request_context))
        .with_state(state)
}

/// Ready when the database answers and Temporal's frontend answers (within 2 s each).
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    zengine_workers::health::probe(&state.db, &state.temporal)
        .await
        .into_response()
}

/// A query string that does not fit its struct (a repeated or mistyped parameter): 400 with the
/// JSON error body, not axum's plain-text rejection.
pub(crate) fn read_query<T>(
    query: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    query
        .map(|axum::extract::Query(q)| q)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidField, e.body_text()))
}

/// A `limit` query parameter: `default` when absent or empty, else a whole number from 1 to
/// `max`; anything else is a 400 naming `limit`.
pub(crate) fn query_limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match raw {
        None | Some("") => Ok(default),
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::InvalidField,
                    format!("`limit`: must be a whole number from 1 to {max}"),
                )
            }),
    }
}

/// A JSON request body as `T`: 413 when it is over `api.max_body_bytes` ([`read_body`]), 400
/// `malformed_json` when it does not parse ([`parse_json`]).
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<T, ApiError> {
    parse_json(&read_body(body)?)
}

/// Body bytes already read (e.g. after a signature check) as JSON `T`: 400 `malformed_json`
/// naming what is wrong.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(ErrorCode::MalformedJson, format!("invalid JSON body: {e}"))
    })
}

/// The request body, or 413 when it is over `api.max_body_bytes`.
pub(crate) fn read_body(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::body::Bytes, ApiError> {
    use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
    body.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                "request body is too large",
            )
        }
        other => ApiError::bad_request(ErrorCode::MalformedJson, other.body_text()),
    })
}

/// Header carrying the correlation id in and out.
pub const CORRELATION_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

/// Gives every request a span with its correlation id (taken from `x-correlation-id` when it
/// is a sane token, else generated) and echoes the id in the response.
async fn request_context(request: Request<axum::body::Body>, next: Next) -> Response {
    let correlation_id = request
        .headers()
        .get(&CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // The route template (`/v1/webchat/{tenant_id}/messages`), not the path: bounded
    // cardinality, and the span name of the OTLP export (`POST /v1/...`).
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!(
        "http",
        method = %request.method(),
        // The route template only: raw paths carry phone numbers and contact ids
        // (`/v1/conversations/{tenant}/{channel}/{contact}/…`), which logs must not.
        route = %route,
        correlation_id = %correlation_id,
        tenant_id = tracing::field::Empty,
        workflow_id = tracing::field::Empty,
        status = tracing::field::Empty,
        otel.name = %format!("{} {route}", request.method()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
    );
    async move {
        let mut response = next.run(request).await;
        let span = tracing::Span::current();
        span.record("status", response.status().as_u16());
        if response.status().is_server_error() {
            span.record("otel.status_code", "error");
        }
        tracing::info!("request finished");
        if let Ok(v) = HeaderValue::from_str(&correlation_id) {
            response.headers_mut().insert(CORRELATION_HEADER, v);
        }
        response
    }
    .instrument(span)
    .await
}

/// A bound, not yet serving, API server (HTTP, and gRPC when `api.grpc_addr` is set).
pub struct Application {
    listener: TcpListener,
    grpc: Option<TcpListener>,
    state: AppState,
    router: Router,
}

impl Application {
    /// Binds `settings.addr` and `settings.grpc_addr` (port 0 picks a free port).
    pub async fn build(state: AppState) -> anyhow::Result<Self> {
        let addr: SocketAddr = state
            .settings
            .addr
            .parse()
            .context("api.addr is not an ip:port")?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("Failed to bind the API to {addr}"))?;
        let grpc = match state.settings.grpc_addr.as_str() {
            "" => None,
            raw => {
                let addr: SocketAddr = raw.parse().context("api.grpc_addr is not an ip:port")?;
                Some(
                    TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("Failed to bind the gRPC service to {addr}"))?,
                )
            }
        };
        Ok(Self {
            listener,
            grpc,
            router: router(state.clone()),
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The gRPC port, when the gRPC service is enabled.
    pub fn grpc_port(&self) -> Option<u16> {
        self.grpc
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests (at most 10 s).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        use futures::FutureExt;
        let shutdown = shutdown.boxed().shared();
        let grpc = self.grpc.map(|listener| {
            tokio::spawn(grpc::serve(listener, self.state.clone(), shutdown.clone()))
        });
        tracing::info!(addr = %self.listener.local_addr()?, "API listening");
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(self.listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopped_tx.send(());
        });
        let drain_limit = async {
            let _ = stopped_rx.await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        };
        let http = tokio::select! {
            result = serve => result.context("API server failed"),
            _ = drain_limit => {
                tracing::warn!("In-flight requests did not finish within 10 s; closing");
                Ok(())
            }
        };
        if let Some(grpc) = grpc {
            match tokio::time::timeout(Duration::from_secs(10), grpc).await {
                Ok(joined) => joined.context("gRPC task panicked")??,
                Err(_) => tracing::warn!("gRPC calls did not finish within 10 s; closing"),
            }
        }
        http
    }
}
