//! WhatsApp strategies: Meta's Cloud API (`whatsapp-meta-cloud`), 360dialog's Cloud API
//! (`whatsapp-360dialog`) and 360dialog's template management (`360dialog-templates`).
//!
//! Both providers speak Meta's payloads (the pure codec is `zengine_domain::channel::whatsapp`);
//! they differ in authentication and URLs:
//!
//! | | Meta Cloud API | 360dialog |
//! |---|---|---|
//! | send | `POST {api_base}/{version}/{phone_number_id}/messages`, `Authorization: Bearer` | `POST {api_base}/messages`, `D360-API-KEY` |
//! | webhook auth | `X-Hub-Signature-256` (HMAC of the raw body with the app secret) | a per-account shared header secret (360dialog does not sign) |
//! | health | `GET /{version}/{phone_number_id}?fields=id` | `GET /v1/configs/webhook` |
//! | media info | `GET /{version}/{media_id}` → `{url, mime_type, sha256, file_size}` | `GET /{media_id}` (same answer) |
//! | media bytes | `GET {url}` with the same `Bearer` | `GET {url}` with its host replaced by `api_base`, `D360-API-KEY` |

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::Sha256;
use zengine_domain::channel::whatsapp::{
    self as codec, SendFailure, WebhookEvent, constant_time_eq, parse_signature_header,
};
use zengine_domain::{Channel, Reply};

use super::sdk::{
    ConfigError, DownloadedMedia, Health, InboundError, InboundEvent, InboundRequest,
    InboundStrategy, MediaLimits, OutboundConnection, OutboundMessage, OutboundStrategy,
    SendContext, SendError, SendResult, StrategyEnv, Verified, classify_http, excerpt, retry_after,
    setting, setting_or, sniff_media_type, transport_error,
};
use crate::outbound::OutboundClient;
use zengine_storage::ChannelAccount;
use zengine_storage::Database;
use zengine_storage::secrets;

pub use zengine_domain::channel::strategy::{
    DIALOG360_TEMPLATES, WHATSAPP_360DIALOG, WHATSAPP_META_CLOUD,
};

/// Header carrying a 360dialog account's webhook secret (set in the `headers` of the webhook
/// registration, `POST /v1/configs/webhook`).
pub const DIALOG360_SECRET_HEADER: &str = "x-zengine-webhook-secret";

const META_API_BASE: &str = "https://graph.facebook.com";
const META_API_VERSION: &str = "v23.0";
const DIALOG360_API_BASE: &str = "https://waba-v2.360dialog.io";

/// Maps the codec's classification onto the SDK's.
fn send_error(strategy: &str, status: u16, failure: SendFailure) -> SendError {
    match failure {
        SendFailure::Retryable {
            code,
            message,
            retry_after_secs,
        } => SendError::Retryable {
            message: format!("{strategy}: HTTP {status} code {code:?}: {message}"),
            retry_after: retry_after_secs.map(std::time::Duration::from_secs),
        },
        SendFailure::Permanent {
            code,
            message,
            invalid_recipient,
            ..
        } => SendError::Rejected {
            message: format!("{strategy}: HTTP {status} code {code:?}: {message}"),
            invalid_recipient,
        },
    }
}

/// How a WhatsApp-family connection authenticates.
enum Auth {
    Bearer(SecretString),
    ApiKey(SecretString),
}

/// A configured WhatsApp-family account.
struct WhatsAppConnection {
    strategy: &'static str,
    http: OutboundClient,
    auth: Auth,
    send_url: String,
    health_url: String,
    /// `{media_base}/{media_id}` answers the media's download URL, type, hash and size.
    media_base: String,
    /// 360dialog: the download URL's scheme and host are replaced by this (its proxy of Meta's
    /// media host); Meta: `None`, the URL is used as given.
    download_host: Option<String>,
    /// `360dialog-templates` sends only templates.
    templates_only: bool,
}

/// Media ids are Meta's numeric ids; anything outside this alphabet never reaches a URL.
fn valid_media_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A hash as Meta gives it: lowercase hex (media endpoint) or base64 (webhooks).
fn hash_bytes(given: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let given = given.trim();
    if given.len() == 64
        && let Ok(bytes) = hex::decode(given)
    {
        return Some(bytes);
    }
    base64::engine::general_purpose::STANDARD
        .decode(given)
        .ok()
        .filter(|b| b.len() == 32)
}

/// Replaces the scheme, host and port of `url` with those of `base` (360dialog's media proxy).
fn rehost(url: &str, base: &str) -> Option<String> {
    let mut url = reqwest::Url::parse(url).ok()?;
    let base = reqwest::Url::parse(base).ok()?;
    url.set_scheme(base.scheme()).ok()?;
    url.set_host(base.host_str()).ok()?;
    url.set_port(base.port()).ok()?;
    Some(url.into())
}

impl WhatsAppConnection {
    fn request(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Auth::Bearer(token) => builder.bearer_auth(token.expose_secret()),
            Auth::ApiKey(key) => builder.header("D360-API-KEY", key.expose_secret()),
        }
    }
}

#[async_trait]
impl OutboundConnection for WhatsAppConnection {
    async fn send(
        &self,
        message: &OutboundMessage,
        _ctx: &SendContext,
    ) -> Result<SendResult, SendError> {
        if self.templates_only && !matches!(message.reply, Reply::Template { .. }) {
            return Err(SendError::rejected(format!(
                "{}: only template messages can be sent through this strategy",
                self.strategy
            )));
        }
        let body = codec::send_body(
            &message.recipient,
            &message.reply,
            Some(&message.client_message_id),
        );
        let response = self
            .request(self.http.post(&self.send_url)?)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error(self.strategy, e))?;
        let status = response.status();
        let hint = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(self.strategy, e))?;
        if status.is_success() {
            let json: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            return codec::sent_message_id(&json)
                .map(|provider_message_id| SendResult {
                    provider_message_id,
                })
                .ok_or_else(|| {
                    SendError::retryable(format!(
                        "{}: HTTP {status} without messages[0].id",
                        self.strategy
                    ))
                });
        }
        Err(send_error(
            self.strategy,
            status.as_u16(),
            codec::classify_send_error(status.as_u16(), hint.as_deref(), &bytes),
        ))
    }

    async fn download_media(
        &self,
        media_id: &str,
        limits: &MediaLimits,
    ) -> Result<DownloadedMedia, SendError> {
        let strategy = self.strategy;
        if !valid_media_id(media_id) {
            return Err(SendError::rejected(format!(
                "{strategy}: `{media_id}` is not a media id"
            )));
        }
        // 1. The media's URL, type, hash and size.
        let response = self
            .request(self.http.get(&format!("{}/{media_id}", self.media_base))?)
            .send()
            .await
            .map_err(|e| transport_error(strategy, e))?;
        let status = response.status();
        let hint = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(strategy, e))?;
        if !status.is_success() {
            return Err(send_error(
                strategy,
                status.as_u16(),
                codec::classify_send_error(status.as_u16(), hint.as_deref(), &body),
            ));
        }
        let info: Value = serde_json::from_slice(&body)
            .map_err(|_| SendError::retryable(format!("{strategy}: media info is not JSON")))?;
        let field = |name: &str| info.get(name).and_then(Value::as_str).map(str::trim);
        let url = field("url")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| SendError::retryable(format!("{strategy}: media info without url")))?;
        let declared = field("mime_type").unwrap_or_default();
        // `image/jpeg; codecs=…` → `image/jpeg`.
        let declared = declared.split(';').next().unwrap_or_default().trim();
        if !limits.mime_types.iter().any(|m| m == declared) {
            return Err(SendError::rejected(format!(
                "{strategy}: media type `{declared}` is not accepted (accepted: {})",
                limits.mime_types.join(", ")
            )));
        }
        let size = match info.get("file_size") {
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        };
        if let Some(size) = size
            && size > limits.max_bytes
        {
            return Err(SendError::rejected(format!(
                "{strategy}: media of {size} bytes is larger than the limit of {} bytes",
                limits.max_bytes
            )));
        }
        let expected_hash = field("sha256").and_then(hash_bytes).ok_or_else(|| {
            SendError::retryable(format!("{strategy}: media info without a usable sha256"))
        })?;
        let url = match &self.download_host {
            Some(base) => rehost(url, base).ok_or_else(|| {
                SendError::rejected(format!("{strategy}: the media url is not a URL"))
            })?,
            None => url.to_owned(),
        };

        // 2. The bytes, with the same credentials, never more than the limit.
        let mut response = self
            .request(self.http.get(&url)?)
            .send()
            .await
            .map_err(|e| transport_error(strategy, e))?;
        let status = response.status();
        if !status.is_success() {
            let hint = retry_after(response.headers());
            let body = response.bytes().await.unwrap_or_default();
            return Err(classify_http(
                &format!("{strategy} media download"),
                status,
                hint,
                &excerpt(&body),
            ));
        }
        let too_large = || {
            SendError::rejected(format!(
                "{strategy}: media is larger than the limit of {} bytes",
                limits.max_bytes
            ))
        };
        if response
            .content_length()
            .is_some_and(|n| n > limits.max_bytes)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(strategy, e))?
        {
            if (bytes.len() + chunk.len()) as u64 > limits.max_bytes {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        let digest = <Sha256 as sha2::Digest>::digest(&bytes);
        if !constant_time_eq(&digest, &expected_hash) {
            return Err(SendError::rejected(format!(
                "{strategy}: the downloaded media does not match its sha256"
            )));
        }
        let sniffed = sniff_media_type(&bytes).unwrap_or("unknown");
        if !limits.mime_types.iter().any(|m| m == sniffed) {
            return Err(SendError::rejected(format!(
                "{strategy}: the media's content is `{sniffed}`, not an accepted type"
            )));
        }
        Ok(DownloadedMedia {
            bytes,
            mime_type: sniffed.to_owned(),
            sha256: hex::encode(digest),
        })
    }

    async fn healthcheck(&self) -> Health {
        let request = match self.http.get(&self.health_url) {
            Ok(request) => self.request(request),
            Err(refused) => return Health::down(refused.to_string()),
        };
        match request.send().await {
            Ok(r) if r.status().is_success() => Health::up(format!("HTTP {}", r.status())),
            Ok(r) => {
                let status = r.status();
                let body = r.bytes().await.unwrap_or_default();
                Health::down(format!("HTTP {status}: {}", excerpt(&body)))
            }
            Err(e) => Health::down(e.without_url().to_string()),
        }
    }
}

/// `whatsapp-meta-cloud` settings: `api_base` (default `https://graph.facebook.com`),
/// `api_version` (default `v23.0`), `access_token` (secret reference). The account key is the
/// `phone_number_id`.
pub struct MetaCloud;

impl OutboundStrategy for MetaCloud {
    fn name(&self) -> &'static str {
        WHATSAPP_META_CLOUD
    }

    fn channel(&self) -> Channel {
        Channel::Whatsapp
    }

    fn configure(
        &self,
        account: &ChannelAccount,
        env: &StrategyEnv,
    ) -> Result<Box<dyn OutboundConnection>, ConfigError> {
        let token = secrets::resolve_for(
            &account.tenant_id,
            setting(account, WHATSAPP_META_CLOUD, "access_token")?,
        )?;
        let base = setting_or(account, "api_base", META_API_BASE).trim_end_matches('/');
        let version = setting_or(account, "api_version", META_API_VERSION);
        let number = &account.account_key;
        Ok(Box::new(WhatsAppConnection {
            strategy: WHATSAPP_META_CLOUD,
            http: env.http.clone(),
            auth: Auth::Bearer(token),
            send_url: format!("{base}/{version}/{number}/messages"),
            health_url: format!("{base}/{version}/{number}?fields=id"),
            media_base: format!("{base}/{version}"),
            download_host: None,
            templates_only: false,
        }))
    }
}

/// `whatsapp-360dialog` settings: `api_base` (default `https://waba-v2.360dialog.io`),
/// `api_key` (secret reference, header `D360-API-KEY`), `webhook_secret` (secret reference,
/// checked on inbound webhooks). The account key is the `phone_number_id`.
pub struct Dialog360 {
    /// `true` for `360dialog-templates`.
    templates: bool,
}

impl Dialog360 {
    pub fn messages() -> Self {
        Self { templates: false }
    }

    pub fn templates() -> Self {
        Self { templates: true }
    }

    fn strategy(&self) -> &'static str {
        if self.templates {
            DIALOG360_TEMPLATES
        } else {
            WHATSAPP_360DIALOG
        }
    }
}

fn dialog360_base(account: &ChannelAccount) -> String {
    setting_or(account, "api_base", DIALOG360_API_BASE)
        .trim_end_matches('/')
        .to_owned()
}

impl OutboundStrategy for Dialog360 {
    fn name(&self) -> &'static str {
        self.strategy()
    }

    fn channel(&self) -> Channel {
        Channel::Whatsapp
    }

    fn configure(
        &self,
        account: &ChannelAccount,
        env: &StrategyEnv,
    ) -> Result<Box<dyn OutboundConnection>, ConfigError> {
        let key = secrets::resolve_for(
            &account.tenant_id,
            setting(account, self.strategy(), "api_key")?,
        )?;
        let base = dialog360_base(account);
        Ok(Box::new(WhatsAppConnection {
            strategy: self.strategy(),
            http: env.http.clone(),
            auth: Auth::ApiKey(key),
            send_url: format!("{base}/messages"),
            health_url: format!(
                "{base}/{}",
                if self.templates {
                    "v1/configs/templates"
                } else {
                    "v1/configs/webhook"
                }
            ),
            media_base: base.clone(),
            download_host: Some(base),
            templates_only: self.templates,
        }))
    }
}

/// Template management through 360dialog (`/v1/configs/templates`).
pub mod templates {
    use super::*;

    /// Why a template call failed.
    #[derive(Debug, thiserror::Error)]
    pub enum TemplateError {
        #[error(transparent)]
        Config(#[from] ConfigError),
        /// 360dialog refused (4xx): the message says why.
        #[error("360dialog refused: HTTP {status}: {message}")]
        Refused { status: u16, message: String },
        /// 360dialog could not be reached or failed (5xx): safe to retry.
        #[error("360dialog is unavailable: {0}")]
        Unavailable(String),
    }

    async fn call(
        env: &StrategyEnv,
        account: &ChannelAccount,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, TemplateError> {
        let key = secrets::resolve_for(
            &account.tenant_id,
            setting(account, DIALOG360_TEMPLATES, "api_key")?,
        )
        .map_err(ConfigError::from)?;
        let url = format!("{}/{path}", dialog360_base(account));
        let mut request = env
            .http
            .request(method, &url)
            .map_err(|refused| ConfigError::invalid(DIALOG360_TEMPLATES, refused.to_string()))?
            .header("D360-API-KEY", key.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| match crate::outbound::refusal(&e) {
                Some(refused) => {
                    ConfigError::invalid(DIALOG360_TEMPLATES, refused.to_string()).into()
                }
                None => TemplateError::Unavailable(e.without_url().to_string()),
            })?;
        let status = response.status();
        let hint = retry_after(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| TemplateError::Unavailable(e.without_url().to_string()))?;
        if status.is_success() {
            return Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
        }
        let message = match codec::classify_send_error(status.as_u16(), None, &bytes) {
            SendFailure::Retryable { message, .. } | SendFailure::Permanent { message, .. } => {
                message
            }
        };
        if status.is_server_error() || status.as_u16() == 429 || hint.is_some() {
            Err(TemplateError::Unavailable(message))
        } else {
            Err(TemplateError::Refused {
                status: status.as_u16(),
                message,
            })
        }
    }

    /// The account's templates (`waba_templates` of 360dialog's answer).
    pub async fn list(
        env: &StrategyEnv,
        account: &ChannelAccount,
    ) -> Result<Vec<Value>, TemplateError> {
        let answer = call(
            env,
            account,
            reqwest::Method::GET,
            "v1/configs/templates",
            None,
        )
        .await?;
        Ok(answer
            .get("waba_templates")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// Submits a template for Meta's review (`name`, `category`, `language`, `components`).
    pub async fn create(
        env: &StrategyEnv,
        account: &ChannelAccount,
        template: &Value,
    ) -> Result<Value, TemplateError> {
        call(
            env,
            account,
            reqwest::Method::POST,
            "v1/configs/templates",
            Some(template),
        )
        .await
    }

    /// Deletes every language of the template `name` (360dialog cannot edit templates).
    pub async fn delete(
        env: &StrategyEnv,
        account: &ChannelAccount,
        name: &str,
    ) -> Result<(), TemplateError> {
        let encoded: String = name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'_' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        call(
            env,
            account,
            reqwest::Method::DELETE,
            &format!("v1/configs/templates/{encoded}"),
            None,
        )
        .await
        .map(|_| ())
    }
}

/// Turns the codec's webhook events into the SDK's.
fn events_of(webhook: Vec<WebhookEvent>) -> Vec<InboundEvent> {
    webhook
        .into_iter()
        .map(|event| match event {
            WebhookEvent::Message(m) => InboundEvent::Message {
                account_key: m.phone_number_id,
                contact: m.from,
                contact_name: m.contact_name,
                message: m.message,
            },
            WebhookEvent::Status(s) => InboundEvent::Status {
                account_key: s.phone_number_id,
                provider_message_id: s.provider_message_id,
                callback_data: s.callback_data,
                state: s.state,
                recipient: s.recipient,
                error: s.error.map(|(code, title)| format!("{code}: {title}")),
            },
            WebhookEvent::Error {
                phone_number_id,
                code,
                title,
            } => InboundEvent::Ignored {
                account_key: phone_number_id,
                reason: format!("provider error {code}: {title}"),
            },
        })
        .collect()
}

fn parse(body: &[u8]) -> Result<Vec<InboundEvent>, InboundError> {
    codec::parse_webhook(body)
        .map(events_of)
        .map_err(|e| InboundError::Malformed(format!("invalid webhook: {e}")))
}

/// Meta's webhooks: one app secret signs every tenant's numbers; tenants are found per event
/// by `phone_number_id`.
pub struct MetaCloudInbound {
    app_secret: SecretString,
}

impl MetaCloudInbound {
    /// `app_secret` empty disables the ingress (503).
    pub fn new(app_secret: SecretString) -> Self {
        Self { app_secret }
    }
}

/// Whether `header` is `sha256=<hex HMAC-SHA256(body, secret)>`.
pub fn signature_ok(secret: &[u8], header: Option<&str>, body: &[u8]) -> bool {
    let Some(expected) = header.and_then(parse_signature_header) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    constant_time_eq(&mac.finalize().into_bytes(), &expected)
}

#[async_trait]
impl InboundStrategy for MetaCloudInbound {
    fn name(&self) -> &'static str {
        WHATSAPP_META_CLOUD
    }

    fn channel(&self) -> Channel {
        Channel::Whatsapp
    }

    fn slug(&self) -> &'static str {
        "whatsapp"
    }

    async fn verify(
        &self,
        request: &InboundRequest<'_>,
        _db: &Database,
    ) -> Result<Verified, InboundError> {
        let secret = self.app_secret.expose_secret();
        if secret.is_empty() {
            return Err(InboundError::Disabled(
                "WhatsApp webhooks are not configured (api.whatsapp_app_secret)".into(),
            ));
        }
        if !signature_ok(
            secret.as_bytes(),
            request.header("x-hub-signature-256"),
            request.body,
        ) {
            return Err(InboundError::Unauthorized(
                "missing or wrong X-Hub-Signature-256".into(),
            ));
        }
        Ok(Verified::default())
    }

    fn normalize(
        &self,
        request: &InboundRequest<'_>,
        _verified: &Verified,
    ) -> Result<Vec<InboundEvent>, InboundError> {
        parse(request.body)
    }
}

/// 360dialog's webhooks (Meta's envelope, forwarded unsigned): the `phone_number_id` of the
/// payload names the account, whose `webhook_secret` must be in
/// [`DIALOG360_SECRET_HEADER`]. Every event of one request must belong to that one account.
pub struct Dialog360Inbound;

#[async_trait]
impl InboundStrategy for Dialog360Inbound {
    fn name(&self) -> &'static str {
        WHATSAPP_360DIALOG
    }

    fn channel(&self) -> Channel {
        Channel::Whatsapp
    }

    fn slug(&self) -> &'static str {
        "360dialog"
    }

    async fn verify(
        &self,
        request: &InboundRequest<'_>,
        db: &Database,
    ) -> Result<Verified, InboundError> {
        let unauthorized =
            || InboundError::Unauthorized("unknown account or wrong webhook secret".into());
        let given = request
            .header(DIALOG360_SECRET_HEADER)
            .ok_or_else(unauthorized)?;
        // The account must be known before the secret can be checked: read the routing key
        // from the (not yet trusted) body, then authenticate against that account's secret.
        let events = parse(request.body)?;
        let mut keys: Vec<&str> = events.iter().map(account_key_of).collect();
        keys.sort_unstable();
        keys.dedup();
        let [key] = keys.as_slice() else {
            return if keys.is_empty() {
                Err(InboundError::Malformed(
                    "webhook names no phone_number_id".into(),
                ))
            } else {
                Err(InboundError::Malformed(
                    "one 360dialog webhook must concern one phone number".into(),
                ))
            };
        };
        let account = db
            .channels()
            .route(WHATSAPP_360DIALOG, key)
            .await?
            .ok_or_else(unauthorized)?;
        let reference = account
            .settings
            .get("webhook_secret")
            .and_then(Value::as_str)
            .ok_or_else(unauthorized)?;
        let expected = secrets::resolve_for(&account.tenant_id, reference).map_err(|e| {
            // Our configuration is broken, not the caller's request: say so in the log.
            tracing::error!(error.message = %e, "360dialog webhook secret does not resolve");
            unauthorized()
        })?;
        if !constant_time_eq(given.as_bytes(), expected.expose_secret().as_bytes()) {
            return Err(unauthorized());
        }
        Ok(Verified {
            tenant: Some(account.tenant_id),
            account_key: Some(account.account_key),
            control: None,
        })
    }

    fn normalize(
        &self,
        request: &InboundRequest<'_>,
        _verified: &Verified,
    ) -> Result<Vec<InboundEvent>, InboundError> {
        parse(request.body)
    }
}

fn account_key_of(event: &InboundEvent) -> &str {
    match event {
        InboundEvent::Message { account_key, .. }
        | InboundEvent::Status { account_key, .. }
        | InboundEvent::Ignored { account_key, .. } => account_key,
    }
}

/// A Meta-shaped success answer, for fakes and docs.
pub fn sent_answer(to: &str, wamid: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": wamid}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_over_the_raw_body() {
        // Test vector from ../shared/notes/channels.md §1.2.
        let header = "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914";
        assert!(signature_ok(b"secret", Some(header), b"test"));
        assert!(!signature_ok(b"secret", Some(header), b"test "));
        assert!(!signature_ok(b"other", Some(header), b"test"));
        assert!(!signature_ok(b"secret", None, b"test"));
        assert!(!signature_ok(b"secret", Some("sha1=abc"), b"test"));
    }
}
