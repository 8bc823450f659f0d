//! Outbound delivery through channel strategies (task queue `channels`).
//!
//! One activity call sends one reply. The `client_message_id` is derived inside the workflow
//! (`{conversation workflow id}/out-{seq}`), so every retry of the same logical send carries
//! the same id; the outbound log (`outbound_message`) keyed by it makes the send idempotent:
//!
//! - already accepted by the provider (provider message id stored) → not sent again;
//! - a previous attempt's outcome is unknown (the worker died after the HTTP call) → wait a few
//!   seconds for the provider's status webhook, which echoes the id
//!   (`biz_opaque_callback_data`), before sending again;
//! - errors: 4xx, invalid recipient, auth and bad-parameter codes → non-retryable failure of
//!   type [`SEND_REJECTED`]; 429, 5xx, timeouts → retryable, honouring `Retry-After`;
//! - a missing secret → non-retryable [`SECRET_MISSING`], naming the reference only.
//!
//! Strategies today: `whatsapp-meta-cloud` (Meta's Cloud API). Webchat replies are not sent:
//! the client reads them from the update result and the outbox.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use zengine_domain::channel::whatsapp::{self, SendFailure};
use zengine_domain::{Reply, TenantId};

use crate::db::{ChannelAccount, Database, NewEvent};
use crate::secrets;

/// Failure type: the provider refused the message for good (bad recipient, auth, parameters).
pub const SEND_REJECTED: &str = "ChannelSendRejected";
/// Failure type: a secret reference does not resolve.
pub const SECRET_MISSING: &str = "SecretMissing";
/// Failure type: the tenant has no account for the channel.
pub const NOT_CONFIGURED: &str = "ChannelNotConfigured";

/// The strategy name of Meta's WhatsApp Cloud API.
pub const WHATSAPP_META_CLOUD: &str = "whatsapp-meta-cloud";

/// The outbound strategy serving a conversation channel, if the channel pushes replies.
pub fn strategy_for(channel: &str) -> Option<&'static str> {
    match channel {
        "whatsapp" => Some(WHATSAPP_META_CLOUD),
        _ => None,
    }
}

/// Input of [`ChannelActivities::deliver`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverReply {
    pub tenant_id: TenantId,
    pub channel: String,
    pub recipient: String,
    pub client_message_id: String,
    pub reply: Reply,
}

/// Input of [`ChannelActivities::dead_letter`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub tenant_id: TenantId,
    pub channel: String,
    pub recipient: String,
    pub client_message_id: String,
    pub reply: Reply,
    pub error: String,
}

/// What the provider answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    pub provider_message_id: String,
    /// `true` when an earlier attempt had already been accepted (nothing was sent now).
    pub already_sent: bool,
}

fn failure(type_name: &str, message: String, retryable: bool, delay: Option<u64>) -> ActivityError {
    let builder = ApplicationFailure::builder(message)
        .type_name(type_name.to_owned())
        .non_retryable(!retryable);
    ActivityError::application(match delay {
        Some(secs) => builder.next_retry_delay(Duration::from_secs(secs)).build(),
        None => builder.build(),
    })
}

/// Settings of a `whatsapp-meta-cloud` account.
#[derive(Debug, Clone, Deserialize)]
struct WhatsAppSettings {
    #[serde(default = "default_api_base")]
    api_base: String,
    #[serde(default = "default_api_version")]
    api_version: String,
    /// Secret reference of the access token (`env:NAME`, `file:/path`).
    access_token: String,
}

fn default_api_base() -> String {
    "https://graph.facebook.com".to_owned()
}

fn default_api_version() -> String {
    "v23.0".to_owned()
}

pub struct ChannelActivities {
    db: Database,
    http: reqwest::Client,
}

impl ChannelActivities {
    pub fn new(db: Database) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        Self { db, http }
    }

    async fn account(
        &self,
        tenant: &TenantId,
        strategy: &str,
    ) -> Result<ChannelAccount, ActivityError> {
        self.db
            .channels()
            .account(tenant, strategy)
            .await?
            .ok_or_else(|| {
                failure(
                    NOT_CONFIGURED,
                    format!("tenant `{tenant}` has no `{strategy}` account"),
                    false,
                    None,
                )
            })
    }

    async fn send_whatsapp(
        &self,
        account: &ChannelAccount,
        input: &DeliverReply,
    ) -> Result<String, ActivityError> {
        let settings: WhatsAppSettings =
            serde_json::from_value(account.settings.clone()).map_err(|e| {
                failure(
                    NOT_CONFIGURED,
                    format!("whatsapp-meta-cloud settings: {e}"),
                    false,
                    None,
                )
            })?;
        let token = secrets::resolve(&settings.access_token)
            .map_err(|e| failure(SECRET_MISSING, e.to_string(), false, None))?;
        let url = format!(
            "{}/{}/{}/messages",
            settings.api_base.trim_end_matches('/'),
            settings.api_version,
            account.account_key
        );
        let body = whatsapp::send_body(
            &input.recipient,
            &input.reply,
            Some(&input.client_message_id),
        );
        let response = self
            .http
            .post(&url)
            .bearer_auth(token.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                // Timeouts and connection errors: the outcome is unknown, retry (the next
                // attempt first looks for a status that proves it was accepted).
                failure(
                    "ChannelUnavailable",
                    format!("whatsapp send: {}", e.without_url()),
                    true,
                    None,
                )
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await.unwrap_or_default();
        if status.is_success() {
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            return whatsapp::sent_message_id(&json).ok_or_else(|| {
                failure(
                    "ChannelUnavailable",
                    "whatsapp send: 2xx without messages[0].id".into(),
                    true,
                    None,
                )
            });
        }
        Err(
            match whatsapp::classify_send_error(status.as_u16(), retry_after.as_deref(), &bytes) {
                SendFailure::Retryable {
                    code,
                    message,
                    retry_after_secs,
                } => failure(
                    "ChannelUnavailable",
                    format!("whatsapp send: HTTP {status} code {code:?}: {message}"),
                    true,
                    retry_after_secs,
                ),
                SendFailure::Permanent { code, message, .. } => failure(
                    SEND_REJECTED,
                    format!("whatsapp send: HTTP {status} code {code:?}: {message}"),
                    false,
                    None,
                ),
            },
        )
    }
}

#[activities]
impl ChannelActivities {
    /// Sends one reply through the conversation channel's strategy, at most once per
    /// `client_message_id` as far as the provider lets us know.
    #[activity(name = "DeliverReply")]
    pub async fn deliver(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: DeliverReply,
    ) -> Result<Delivered, ActivityError> {
        let Some(strategy) = strategy_for(&input.channel) else {
            return Err(failure(
                NOT_CONFIGURED,
                format!("channel `{}` has no outbound strategy", input.channel),
                false,
                None,
            ));
        };
        let account = self.account(&input.tenant_id, strategy).await?;
        let payload = serde_json::to_value(&input.reply).map_err(anyhow::Error::from)?;
        let channels = self.db.channels();
        let record = channels
            .begin_send(
                &input.tenant_id,
                &input.client_message_id,
                strategy,
                &input.recipient,
                &payload,
            )
            .await?;
        if let Some(id) = record.provider_message_id {
            return Ok(Delivered {
                provider_message_id: id,
                already_sent: true,
            });
        }
        if record.attempts > 1 {
            // An earlier attempt may have been accepted before its worker died: its status
            // webhook carries our id. Give it a moment before sending again.
            for _ in 0..10 {
                let _ = ctx.record_heartbeat("waiting for a delivery status").await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Some(id) = channels
                    .outbound(&input.tenant_id, &input.client_message_id)
                    .await?
                    .and_then(|r| r.provider_message_id)
                {
                    return Ok(Delivered {
                        provider_message_id: id,
                        already_sent: true,
                    });
                }
            }
        }
        let id = self.send_whatsapp(&account, &input).await?;
        channels
            .mark_sent(&input.tenant_id, &input.client_message_id, &id)
            .await?;
        Ok(Delivered {
            provider_message_id: id,
            already_sent: false,
        })
    }

    /// Gives up on a reply: a dead letter operators can list and re-drive, and an
    /// `Outbound.Failed` event.
    #[activity(name = "DeadLetterReply")]
    pub async fn dead_letter(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: DeadLetter,
    ) -> Result<(), ActivityError> {
        let strategy = strategy_for(&input.channel).unwrap_or("unknown");
        let payload = serde_json::to_value(&input.reply).map_err(anyhow::Error::from)?;
        let channels = self.db.channels();
        if channels
            .outbound(&input.tenant_id, &input.client_message_id)
            .await?
            .is_none()
        {
            channels
                .begin_send(
                    &input.tenant_id,
                    &input.client_message_id,
                    strategy,
                    &input.recipient,
                    &payload,
                )
                .await?;
        }
        channels
            .mark_dead(&input.tenant_id, &input.client_message_id, &input.error)
            .await?;
        self.db
            .events()
            .record(NewEvent {
                event_id: &format!("{}/failed", input.client_message_id),
                tenant_id: &input.tenant_id,
                event_type: "Outbound.Failed",
                subject: &input.client_message_id,
                payload: &serde_json::json!({
                    "strategy": strategy, "recipient": input.recipient, "error": input.error,
                }),
            })
            .await?;
        Ok(())
    }
}
