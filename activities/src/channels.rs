//! The channel activities (task queue `channels`): delivering replies through the tenant's
//! strategy (`zengine-channels`), dead letters and health checks.
//!
//! # Delivery, once per logical send
//!
//! One [`ChannelActivities::deliver`] call sends one reply. Its `client_message_id` is derived
//! inside the workflow (`{conversation workflow id}/out-{seq}`), so every retry of the same
//! logical send carries the same id, and the outbound log (`outbound_message`) keyed by it makes
//! the send idempotent:
//!
//! - already accepted by the provider (provider message id stored) → not sent again;
//! - a previous attempt's outcome is unknown (the worker died after the HTTP call) → wait a few
//!   seconds for the provider's status webhook, which echoes the id, before sending again —
//!   unless the provider deduplicates by our id itself (Amazon Connect's `ClientToken`);
//! - errors: 4xx, invalid recipient, auth and bad-parameter codes → non-retryable failure of
//!   type [`SEND_REJECTED`]; 429, 5xx, timeouts → retryable, after the provider's
//!   `Retry-After` or an exponential delay with ±20 % jitter;
//! - a missing secret → non-retryable [`SECRET_MISSING`], naming the reference only;
//! - the (strategy, tenant) circuit is open → no provider call: [`CIRCUIT_OPEN`] (the workflow
//!   waits and tries again) or, when the account says `on_open: dead_letter`, [`SEND_REJECTED`].

use std::sync::Arc;
use std::time::Duration;
use zengine_domain::channel::breaker;

use serde::{Deserialize, Serialize};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use zengine_domain::{Reply, TenantId};

use breaker::{Admit, BreakerSettings, OnOpen};
use zengine_channels::sdk::{
    ConfigError, Health, OutboundMessage, SendContext, SendError, StrategyEnv,
};
use zengine_channels::{InboundOptions, Registry};
use zengine_storage::{ChannelAccount, Database, HealthChange, NewEvent, now_millis};

/// Failure type: the provider refused the message for good (bad recipient, auth, parameters).
pub const SEND_REJECTED: &str = "ChannelSendRejected";
/// Failure type: a secret reference does not resolve.
pub const SECRET_MISSING: &str = "SecretMissing";
/// Failure type: the tenant has no (usable) account for the channel.
pub const NOT_CONFIGURED: &str = "ChannelNotConfigured";
/// Failure type: the provider is unavailable (retryable).
pub const UNAVAILABLE: &str = "ChannelUnavailable";
/// Failure type: the strategy's circuit is open for the tenant; nothing was sent. Not retried
/// by the activity's policy: the workflow waits with a durable timer and tries again.
pub const CIRCUIT_OPEN: &str = "ChannelCircuitOpen";

/// Input of [`ChannelActivities::deliver`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverReply {
    pub tenant_id: TenantId,
    pub channel: String,
    pub recipient: String,
    pub client_message_id: String,
    pub reply: Reply,
    /// Send through this strategy instead of the one serving the channel (notifications,
    /// re-drives of a dead letter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
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
    /// The strategy that sent it.
    #[serde(default)]
    pub strategy: String,
}

/// Input of [`ChannelActivities::check_health`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub tenant_id: TenantId,
}

/// One account's health as a check found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountHealth {
    pub strategy: String,
    pub health: Health,
    /// Whether the status differs from the previous check (a `Channel.HealthChanged` event
    /// was recorded).
    pub changed: bool,
}

fn failure(
    type_name: &str,
    message: String,
    retryable: bool,
    delay: Option<Duration>,
) -> ActivityError {
    let builder = ApplicationFailure::builder(message)
        .type_name(type_name.to_owned())
        .non_retryable(!retryable);
    ActivityError::application(match delay {
        Some(delay) => builder.next_retry_delay(delay).build(),
        None => builder.build(),
    })
}

fn config_failure(e: ConfigError) -> ActivityError {
    match e {
        ConfigError::Secret(e) => failure(SECRET_MISSING, e.to_string(), false, None),
        e @ ConfigError::Invalid { .. } => failure(NOT_CONFIGURED, e.to_string(), false, None),
    }
}

/// The delay before retry `attempt + 1`: the provider's hint, else 1 s · 2^(attempt-1) capped
/// at 60 s, with ±20 % jitter so a recovering provider is not hit by every retry at once.
pub fn retry_delay(attempt: u32, hint: Option<Duration>) -> Duration {
    if let Some(hint) = hint {
        return hint;
    }
    let base = 1_000u64
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(6))
        .min(60_000);
    let jitter = rand::random_range(0.8..=1.2);
    Duration::from_millis((base as f64 * jitter) as u64)
}

fn breaker_settings(account: &ChannelAccount) -> Result<BreakerSettings, ActivityError> {
    match account.settings.get("circuit") {
        None => Ok(BreakerSettings::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            failure(
                NOT_CONFIGURED,
                format!("{} settings: circuit: {e}", account.strategy),
                false,
                None,
            )
        }),
    }
}

/// The channel activities: delivery, dead letters, health checks.
pub struct ChannelActivities {
    db: Database,
    env: StrategyEnv,
    registry: Registry,
    /// How long a retry whose earlier attempt's outcome is unknown waits for a delivery status.
    status_wait: Duration,
}

impl ChannelActivities {
    /// With the strict outbound guard (every internal address refused).
    pub fn new(db: Database) -> Self {
        Self {
            env: StrategyEnv::new().with_db(db.clone()),
            db,
            registry: Registry::standard(InboundOptions::default()),
            status_wait: Duration::from_secs(5),
        }
    }

    /// With the platform's outbound guard (`worker.outbound`) for every provider call, the
    /// registry's strategies included.
    pub fn with_outbound(self, guard: zengine_channels::outbound::OutboundGuard) -> Self {
        Self {
            env: StrategyEnv::with_guard(guard.clone()).with_db(self.db.clone()),
            registry: Registry::standard(InboundOptions {
                outbound: guard,
                ..InboundOptions::default()
            }),
            ..self
        }
    }

    /// The tenant's account that serves this delivery.
    async fn account_for(&self, input: &DeliverReply) -> Result<ChannelAccount, ActivityError> {
        let accounts = self.db.channels().accounts(&input.tenant_id).await?;
        let found = match &input.strategy {
            Some(name) => accounts.iter().find(|a| &a.strategy == name),
            None => self.registry.for_channel(&input.channel, &accounts),
        };
        found.cloned().ok_or_else(|| {
            failure(
                NOT_CONFIGURED,
                match &input.strategy {
                    Some(name) => format!("tenant `{}` has no `{name}` account", input.tenant_id),
                    None => format!(
                        "tenant `{}` has no account serving the `{}` channel",
                        input.tenant_id, input.channel
                    ),
                },
                false,
                None,
            )
        })
    }

    /// Asks the (strategy, tenant) circuit whether a provider call may happen now.
    async fn admit(
        &self,
        account: &ChannelAccount,
        settings: &BreakerSettings,
    ) -> Result<(), ActivityError> {
        match self
            .db
            .channels()
            .breaker_admit(&account.tenant_id, &account.strategy, now_millis())
            .await?
        {
            Admit::Go | Admit::Trial => Ok(()),
            Admit::Wait(ms) => {
                zengine_channels::meter::channel_send(&account.strategy, "circuit_open", None);
                let message = format!(
                    "{}: circuit open for tenant `{}`; next trial in {} ms",
                    account.strategy, account.tenant_id, ms
                );
                Err(match settings.on_open {
                    OnOpen::Wait => failure(
                        CIRCUIT_OPEN,
                        message,
                        false,
                        Some(Duration::from_millis(ms.max(0) as u64)),
                    ),
                    OnOpen::DeadLetter => failure(SEND_REJECTED, message, false, None),
                })
            }
        }
    }
}

#[activities]
impl ChannelActivities {
    /// Sends one reply through the tenant's strategy, at most once per `client_message_id` as
    /// far as the provider lets us know.
    #[activity(name = "DeliverReply")]
    pub async fn deliver(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: DeliverReply,
    ) -> Result<Delivered, ActivityError> {
        let account = self.account_for(&input).await?;
        let Some(strategy) = self.registry.outbound(&account.strategy).cloned() else {
            return Err(failure(
                NOT_CONFIGURED,
                format!("unknown strategy `{}`", account.strategy),
                false,
                None,
            ));
        };
        let breaker = breaker_settings(&account)?;
        let connection = strategy
            .configure(&account, &self.env)
            .map_err(config_failure)?;
        let payload = serde_json::to_value(&input.reply).map_err(anyhow::Error::from)?;
        let channels = self.db.channels();
        let record = channels
            .begin_send(
                &input.tenant_id,
                &input.client_message_id,
                strategy.name(),
                &input.recipient,
                &payload,
            )
            .await?;
        let done = |id: String, already_sent: bool| Delivered {
            provider_message_id: id,
            already_sent,
            strategy: strategy.name().to_owned(),
        };
        if let Some(id) = record.provider_message_id {
            return Ok(done(id, true));
        }
        if record.attempts > 1 && record.state != "DEAD" && !strategy.provider_dedupes() {
            // An earlier attempt may have been accepted before its worker died: its status
            // webhook carries our id. Give it a moment before sending again.
            let step = Duration::from_millis(500);
            let mut waited = Duration::ZERO;
            while waited < self.status_wait {
                let _ = ctx.record_heartbeat("waiting for a delivery status").await;
                tokio::time::sleep(step).await;
                waited += step;
                if let Some(id) = channels
                    .outbound(&input.tenant_id, &input.client_message_id)
                    .await?
                    .and_then(|r| r.provider_message_id)
                {
                    return Ok(done(id, true));
                }
            }
        }
        self.admit(&account, &breaker).await?;
        let message = OutboundMessage {
            tenant_id: input.tenant_id.clone(),
            recipient: input.recipient.clone(),
            client_message_id: input.client_message_id.clone(),
            reply: input.reply.clone(),
        };
        let attempt = ctx.info().attempt;
        let started = std::time::Instant::now();
        let result = connection.send(&message, &SendContext { attempt }).await;
        let outage = matches!(&result, Err(e) if e.is_retryable());
        let outcome = match &result {
            Ok(_) => "sent",
            Err(SendError::Retryable { .. }) => "retryable",
            Err(SendError::Rejected { .. }) => "rejected",
        };
        zengine_channels::meter::channel_send(strategy.name(), outcome, Some(started.elapsed()));
        let breaker_now = channels
            .breaker_record(
                &input.tenant_id,
                strategy.name(),
                !outage,
                &breaker,
                now_millis(),
            )
            .await?;
        zengine_channels::meter::breaker_state(
            input.tenant_id.as_str(),
            strategy.name(),
            breaker_now.state.gauge(),
        );
        match result {
            Ok(sent) => {
                channels
                    .mark_sent(
                        &input.tenant_id,
                        &input.client_message_id,
                        &sent.provider_message_id,
                    )
                    .await?;
                // Reporting (first-response times): replies of a conversation carry its
                // workflow id (`{workflow id}/out-{seq}`); notifications do not.
                if let Some((conversation, _)) = input.client_message_id.rsplit_once("/out-") {
                    self.db
                        .events()
                        .record(NewEvent {
                            event_id: &format!("{}/sent", input.client_message_id),
                            tenant_id: &input.tenant_id,
                            event_type: zengine_domain::events::EventType::ConversationReplySent,
                            subject: conversation,
                            payload: &serde_json::json!({"channel": input.channel}),
                        })
                        .await?;
                }
                Ok(done(sent.provider_message_id, false))
            }
            Err(SendError::Retryable {
                message,
                retry_after,
            }) => {
                channels
                    .note_error(&input.tenant_id, &input.client_message_id, &message)
                    .await?;
                // This failure opened the circuit, or was its trial and re-opened it: the
                // provider is out, not this reply. The reply waits for the circuit like one
                // that was never admitted, instead of spending its attempts on an outage (a
                // minute-long one dead-lettered every reply).
                if breaker_now.state != breaker::BreakerState::Closed
                    && breaker.on_open == breaker::OnOpen::Wait
                {
                    let next_trial = (breaker_now.until_ms - now_millis()).max(0) as u64;
                    return Err(failure(
                        CIRCUIT_OPEN,
                        format!("{message}; the circuit is open, next trial in {next_trial} ms"),
                        false,
                        Some(Duration::from_millis(next_trial)),
                    ));
                }
                Err(failure(
                    UNAVAILABLE,
                    message,
                    true,
                    Some(retry_delay(attempt, retry_after)),
                ))
            }
            Err(SendError::Rejected { message, .. }) => {
                Err(failure(SEND_REJECTED, message, false, None))
            }
        }
    }

    /// Gives up on a reply: a dead letter operators can list and re-drive, and an
    /// `Outbound.Failed` event.
    #[activity(name = "DeadLetterReply")]
    pub async fn dead_letter(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: DeadLetter,
    ) -> Result<(), ActivityError> {
        let payload = serde_json::to_value(&input.reply).map_err(anyhow::Error::from)?;
        let channels = self.db.channels();
        let strategy = match channels
            .outbound(&input.tenant_id, &input.client_message_id)
            .await?
        {
            Some(record) => record.strategy,
            None => {
                let accounts = channels.accounts(&input.tenant_id).await?;
                let strategy = self
                    .registry
                    .for_channel(&input.channel, &accounts)
                    .map_or_else(
                        || format!("{}:unconfigured", input.channel),
                        |a| a.strategy.clone(),
                    );
                channels
                    .begin_send(
                        &input.tenant_id,
                        &input.client_message_id,
                        &strategy,
                        &input.recipient,
                        &payload,
                    )
                    .await?;
                strategy
            }
        };
        channels
            .mark_dead(&input.tenant_id, &input.client_message_id, &input.error)
            .await?;
        self.db
            .events()
            .record(NewEvent {
                event_id: &format!("{}/failed", input.client_message_id),
                tenant_id: &input.tenant_id,
                event_type: zengine_domain::events::EventType::OutboundFailed,
                subject: &input.client_message_id,
                payload: &serde_json::json!({
                    "strategy": strategy,
                    "channel": input.channel,
                    "error": input.error,
                }),
            })
            .await?;
        Ok(())
    }

    /// Runs every account's health check for a tenant; records `Channel.HealthChanged` when a
    /// status differs from the previous check's.
    #[activity(name = "CheckChannelHealth")]
    pub async fn check_health(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: HealthCheck,
    ) -> Result<Vec<AccountHealth>, ActivityError> {
        let channels = self.db.channels();
        let mut report = Vec::new();
        for account in channels.accounts(&input.tenant_id).await? {
            let health = match self.registry.outbound(&account.strategy) {
                None => Health::down(format!("unknown strategy `{}`", account.strategy)),
                Some(strategy) => match strategy.configure(&account, &self.env) {
                    Ok(connection) => connection.healthcheck().await,
                    Err(e) => Health::down(e.to_string()),
                },
            };
            let changed = channels
                .record_health(HealthChange {
                    tenant_id: &account.tenant_id,
                    strategy: &account.strategy,
                    status: health.status.as_str(),
                    detail: &health.detail,
                    at: now_millis(),
                })
                .await?;
            report.push(AccountHealth {
                strategy: account.strategy,
                health,
                changed,
            });
        }
        Ok(report)
    }

    /// Tenants that have channel accounts (the health schedule checks each).
    #[activity(name = "ListChannelTenants")]
    pub async fn channel_tenants(
        self: Arc<Self>,
        _ctx: ActivityContext,
        _input: (),
    ) -> Result<Vec<TenantId>, ActivityError> {
        Ok(self.db.channels().tenants_with_accounts().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_with_jitter_and_honour_hints() {
        for attempt in 1..=8 {
            let base = (1_000u64 << (attempt - 1).min(6)).min(60_000) as f64;
            for _ in 0..50 {
                let d = retry_delay(attempt, None).as_millis() as f64;
                assert!(
                    d >= base * 0.8 - 1.0 && d <= base * 1.2 + 1.0,
                    "{attempt}: {d}"
                );
            }
        }
        let spread: std::collections::BTreeSet<u128> =
            (0..50).map(|_| retry_delay(3, None).as_millis()).collect();
        assert!(spread.len() > 5, "jittered, not constant");
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }
}
