//! The connector SDK: what a channel strategy implements, and the types that cross it.
//!
//! A channel provider is integrated by two strategies, each resolved by name from the
//! [`Registry`](super::Registry):
//!
//! - an [`InboundStrategy`] turns a provider's webhook into canonical events: `verify` checks
//!   the request's authentication (signature, shared secret, basic auth + IP allowlist, SNS
//!   certificate) and finds the tenant when the request names it; `normalize` parses the raw
//!   body into [`InboundEvent`]s (customer messages as [`InboundMessage`]s, delivery statuses).
//!   The API does the rest the same way for every provider: tenant routing, deduplication by
//!   provider message id, signal-with-start of the conversation workflow.
//! - an [`OutboundStrategy`] sends replies: `configure` validates an account's settings and
//!   resolves its secret references (failing fast, naming the reference), giving an
//!   [`OutboundConnection`] whose `send` delivers one message and whose `healthcheck` probes
//!   the provider. Idempotency (the outbound log), the circuit breaker, retry classification
//!   and dead letters are done once, around every strategy, by
//!   [`ChannelActivities`](super::ChannelActivities).
//!
//! Strategies never log message bodies or secret values.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zengine_domain::channel::whatsapp::DeliveryState;
use zengine_domain::{Channel, InboundMessage, Reply, TenantId};

use crate::outbound::{OutboundClient, OutboundGuard};
use zengine_storage::ChannelAccount;
use zengine_storage::Database;
use zengine_storage::secrets::SecretError;

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    pub tenant_id: TenantId,
    /// The channel's address of the customer: WhatsApp `wa_id`, E.164 phone number, e-mail
    /// address, Five9 conversation id, Amazon Connect contact id.
    pub recipient: String,
    /// Derived inside the workflow (`{workflow id}/out-{seq}`): the same logical send always
    /// carries the same id, so providers that take an idempotency key get it and the outbound
    /// log can tell a retry from a new message.
    pub client_message_id: String,
    pub reply: Reply,
}

/// What a provider answered to an accepted send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResult {
    /// The provider's id of the message (`wamid…`, SES/SNS `MessageId`, Connect `Id`).
    pub provider_message_id: String,
}

/// What a media download accepts (receipts: JPEG or PNG up to `worker.max_receipt_bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLimits {
    /// Larger media is refused, from the declared size before downloading and while reading.
    pub max_bytes: u64,
    /// Accepted MIME types: the provider's declared type must be one of them, and so must the
    /// type recognised from the content.
    pub mime_types: Vec<String>,
}

impl MediaLimits {
    /// Images the OCR engine reads, at most `max_bytes`.
    pub fn receipt_images(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            mime_types: vec!["image/jpeg".into(), "image/png".into()],
        }
    }
}

/// Media a customer sent, as downloaded from the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadedMedia {
    pub bytes: Vec<u8>,
    /// The type recognised from the content.
    pub mime_type: String,
    /// Lowercase hex SHA-256 of `bytes` (checked against the provider's hash).
    pub sha256: String,
}

/// The image type of media from its first bytes (declared types are not trusted).
pub fn sniff_media_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else if bytes.starts_with(b"GIF8") {
        Some("image/gif")
    } else {
        None
    }
}

/// Facts about the attempt that strategies may use.
#[derive(Debug, Clone, Default)]
pub struct SendContext {
    /// 1 for the first attempt of this `client_message_id`.
    pub attempt: u32,
}

/// Why a send failed, as the retry policy needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later: 429, 5xx, timeouts, throttling. `retry_after` is the
    /// provider's hint (`Retry-After`) when it gave one.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Never retry as is: 4xx, invalid recipient, authentication, bad parameters.
    #[error("{message}")]
    Rejected {
        message: String,
        /// The recipient cannot receive messages on this channel at all.
        invalid_recipient: bool,
    },
}

/// The outbound guard refused the destination (an `api_base` or endpoint inside the platform, a
/// media URL pointing there): retrying will not change it.
impl From<crate::outbound::OutboundRefused> for SendError {
    fn from(refused: crate::outbound::OutboundRefused) -> Self {
        SendError::rejected(refused.to_string())
    }
}

impl SendError {
    pub fn retryable(message: impl Into<String>) -> Self {
        SendError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn rejected(message: impl Into<String>) -> Self {
        SendError::Rejected {
            message: message.into(),
            invalid_recipient: false,
        }
    }

    /// Whether a provider outage shows in it (counts towards opening the circuit).
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable { .. })
    }
}

/// Why an account's settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Settings are missing a field or have a wrong value (names the field).
    #[error("{strategy} settings: {message}")]
    Invalid { strategy: String, message: String },
    /// A secret reference does not resolve (names the reference, never a value).
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl ConfigError {
    pub fn invalid(strategy: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            strategy: strategy.to_owned(),
            message: message.into(),
        }
    }
}

/// What a health check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HealthStatus {
    Up,
    Down,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Up => "UP",
            HealthStatus::Down => "DOWN",
        }
    }
}

/// A health check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthStatus,
    /// Why it is down (no secrets, no bodies), or what was checked.
    pub detail: String,
}

impl Health {
    pub fn up(detail: impl Into<String>) -> Self {
        Health {
            status: HealthStatus::Up,
            detail: detail.into(),
        }
    }

    pub fn down(detail: impl Into<String>) -> Self {
        Health {
            status: HealthStatus::Down,
            detail: detail.into(),
        }
    }
}

/// Shared resources strategies configure connections with.
#[derive(Clone)]
pub struct StrategyEnv {
    /// One HTTP client per process (connection pools are reused), 15 s timeout. Guarded
    /// ([`crate::outbound`]): tenants choose `api_base`, endpoints, and (through them) the media
    /// URLs providers answer with.
    pub http: OutboundClient,
    /// The domain database, for strategies that keep per-contact state (Amazon Connect's
    /// participant connections). `None` where only management calls are made.
    pub db: Option<Database>,
}

impl StrategyEnv {
    /// With the strict outbound guard (every internal address refused).
    pub fn new() -> Self {
        Self::with_guard(OutboundGuard::strict())
    }

    /// With the platform's outbound guard (`worker.outbound`, `api.outbound`).
    pub fn with_guard(guard: OutboundGuard) -> Self {
        let http = OutboundClient::build(
            guard,
            reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .connect_timeout(Duration::from_secs(5)),
        )
        .expect("a TLS backend is available");
        Self { http, db: None }
    }

    /// With the domain database.
    pub fn with_db(self, db: Database) -> Self {
        Self {
            db: Some(db),
            ..self
        }
    }
}

impl Default for StrategyEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// An outbound strategy: a way to deliver replies on a channel (`whatsapp-meta-cloud`,
/// `sns-sms`, …), configured per tenant account.
pub trait OutboundStrategy: Send + Sync {
    /// The strategy's stable name, used in tenant configuration.
    fn name(&self) -> &'static str;
    /// The conversation channel it delivers on.
    fn channel(&self) -> Channel;
    /// Whether the provider deduplicates by our `client_message_id` itself (Amazon Connect's
    /// `ClientToken`): then a retry whose earlier attempt's outcome is unknown is simply sent
    /// again, without waiting for a delivery status first.
    fn provider_dedupes(&self) -> bool {
        false
    }
    /// Validates the account's settings and resolves its secrets.
    fn configure(
        &self,
        account: &ChannelAccount,
        env: &StrategyEnv,
    ) -> Result<Box<dyn OutboundConnection>, ConfigError>;
}

/// A configured account of an outbound strategy.
#[async_trait]
pub trait OutboundConnection: Send + Sync {
    /// Delivers one message. Must not retry by itself (the activity's retry policy does).
    async fn send(
        &self,
        message: &OutboundMessage,
        ctx: &SendContext,
    ) -> Result<SendResult, SendError>;
    /// Probes the provider with a cheap authenticated read (or connectivity check).
    async fn healthcheck(&self) -> Health;
    /// Downloads media a customer sent (`media_id` from an inbound message), within `limits`.
    /// Errors are classified like sends: refused / too large / wrong type / hash mismatch →
    /// [`SendError::Rejected`]; 429, 5xx, timeouts → [`SendError::Retryable`]. Strategies whose
    /// provider has no media download refuse.
    async fn download_media(
        &self,
        media_id: &str,
        limits: &MediaLimits,
    ) -> Result<DownloadedMedia, SendError> {
        let _ = (media_id, limits);
        Err(SendError::rejected(
            "this channel strategy cannot download media",
        ))
    }
}

/// A webhook request as the API received it.
#[derive(Debug, Clone)]
pub struct InboundRequest<'a> {
    /// Header names in lowercase.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// The socket peer (for IP allowlists).
    pub peer: Option<IpAddr>,
    /// The tenant named by the URL (`/v1/webhooks/{provider}/{tenant}`), if the provider's URL
    /// carries one.
    pub tenant: Option<TenantId>,
}

impl InboundRequest<'_> {
    /// The first value of a header (name in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A verified webhook.
#[derive(Debug, Clone, Default)]
pub struct Verified {
    /// The tenant, when authentication established it (per-tenant secrets); otherwise each
    /// event is routed by its account key.
    pub tenant: Option<TenantId>,
    /// The account the request authenticated as, for providers whose payload does not name it.
    pub account_key: Option<String>,
    /// Set when the request was a protocol control message already handled by `verify` (an
    /// SNS subscription confirmation, …): nothing to normalize.
    pub control: Option<String>,
}

/// Something a webhook told us.
#[derive(Debug, Clone, PartialEq)]
pub enum InboundEvent {
    /// A customer's message.
    Message {
        /// The provider's id of our account (tenant routing key), e.g. `phone_number_id`.
        account_key: String,
        /// The channel's address of the customer (conversation contact key).
        contact: String,
        contact_name: Option<String>,
        /// `message_id` is the provider's message id (deduplication key).
        message: InboundMessage,
    },
    /// A delivery status of a message we sent.
    Status {
        account_key: String,
        provider_message_id: String,
        /// Our `client_message_id` when the provider echoes it.
        callback_data: Option<String>,
        state: DeliveryState,
        recipient: String,
        error: Option<String>,
    },
    /// Understood but without effect (typing events, our own echoes, unsupported types).
    Ignored { account_key: String, reason: String },
}

impl InboundEvent {
    /// A chat provider's normalized item, on the account it arrived on.
    pub fn from_chat(item: zengine_domain::channel::chat::ChatItem, account_key: &str) -> Self {
        use zengine_domain::channel::chat::ChatItem;
        let account_key = account_key.to_owned();
        match item {
            ChatItem::Message {
                contact,
                contact_name,
                message,
            } => InboundEvent::Message {
                account_key,
                contact,
                contact_name,
                message,
            },
            ChatItem::Ignored(reason) => InboundEvent::Ignored {
                account_key,
                reason,
            },
        }
    }
}

/// Why a webhook is refused (the HTTP status follows the variant).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// 401: missing or wrong credentials / signature.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated but not allowed (IP not in the allowlist).
    #[error("{0}")]
    Forbidden(String),
    /// 400: the body is not what the provider sends.
    #[error("{0}")]
    Malformed(String),
    /// 503: this ingress is not configured in this deployment.
    #[error("{0}")]
    Disabled(String),
    /// 500/503: our side failed (database); the provider should redeliver.
    #[error("{0}")]
    Internal(String),
}

impl From<anyhow::Error> for InboundError {
    fn from(e: anyhow::Error) -> Self {
        InboundError::Internal(format!("{e:#}"))
    }
}

/// An inbound strategy: how one provider's webhooks are authenticated and parsed.
#[async_trait]
pub trait InboundStrategy: Send + Sync {
    /// The strategy's stable name (the same as its outbound twin's where there is one).
    fn name(&self) -> &'static str;
    /// The conversation channel its messages belong to.
    fn channel(&self) -> Channel;
    /// The URL segment: `POST /v1/webhooks/{slug}` (or `/{slug}/{tenant}`).
    fn slug(&self) -> &'static str;
    /// Authenticates the request (constant-time comparisons only).
    async fn verify(
        &self,
        request: &InboundRequest<'_>,
        db: &Database,
    ) -> Result<Verified, InboundError>;
    /// Parses a verified body into events. Pure: no I/O.
    fn normalize(
        &self,
        request: &InboundRequest<'_>,
        verified: &Verified,
    ) -> Result<Vec<InboundEvent>, InboundError>;
}

/// Reads a field of a strategy's settings object.
pub fn setting<'a>(
    account: &'a ChannelAccount,
    strategy: &str,
    field: &str,
) -> Result<&'a str, ConfigError> {
    account
        .settings
        .get(field)
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ConfigError::invalid(strategy, format!("`{field}` is required")))
}

/// Reads an optional field of a strategy's settings object, with a default.
pub fn setting_or<'a>(account: &'a ChannelAccount, field: &str, default: &'a str) -> &'a str {
    account
        .settings
        .get(field)
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(default)
}

/// Classifies a transport error of an HTTP call (timeouts, refused connections): the outcome
/// is unknown, so it is retryable.
pub fn transport_error(strategy: &str, e: reqwest::Error) -> SendError {
    match crate::outbound::refusal(&e) {
        // A name resolving only inside the platform, or a redirect there.
        Some(refused) => SendError::rejected(format!("{strategy}: {refused}")),
        None => SendError::retryable(format!("{strategy}: {}", e.without_url())),
    }
}

/// Parses `Retry-After` in seconds (an HTTP date is ignored).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The usual mapping of an HTTP status for providers without richer error codes: 408, 425,
/// 429 and 5xx are retryable; everything else unsuccessful is permanent.
pub fn classify_http(
    strategy: &str,
    status: reqwest::StatusCode,
    retry_after: Option<Duration>,
    detail: &str,
) -> SendError {
    let message = if detail.is_empty() {
        format!("{strategy}: HTTP {status}")
    } else {
        format!("{strategy}: HTTP {status}: {detail}")
    };
    if status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429) {
        SendError::Retryable {
            message,
            retry_after,
        }
    } else {
        SendError::Rejected {
            message,
            invalid_recipient: false,
        }
    }
}

/// A short, single-line excerpt of a provider's error body for error messages (never the
/// request body, which holds customer data).
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(200).collect()
}
