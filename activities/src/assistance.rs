//! Activities of the assistance event and MOK tracking workflows (task queue `assistance`).
//!
//! Database writes go through `zengine_storage::assistance`, which checks the state machines and makes
//! every write idempotent. SMS go through SNS ([`zengine_channels::aws::sns`]) with the tenant's
//! `sns-sms` channel account; each (logical send, recipient) has an outbound record
//! (`outbound_message`, client message id derived in the workflow), so a retried activity never
//! texts a recipient twice once SNS has accepted the message.
//!
//! Failure types (set explicitly: the SDK leaves them empty otherwise, and the workflows'
//! retry policies name them as non-retryable):
//! [`ASSISTANCE_REFUSED`], [`SMS_REJECTED`], [`SMS_NOT_CONFIGURED`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use zengine_domain::TenantId;
use zengine_domain::assistance::{MokEvent, MokStep};
use zengine_domain::channel::strategy::SNS_SMS;
use zengine_domain::phone::E164;

use zengine_channels::aws::ClientCache;
use zengine_channels::aws::sns::{Sms, SmsSender, SmsType, SnsSmsAccount};
use zengine_domain::assistance::{
    ProviderOutcome, ProviderWrite, StatusOutcome, StatusWrite, TrackingOutcome,
};
use zengine_storage::assistance::{AssistanceError, LogWrite};
use zengine_storage::{Database, NewEvent};

/// Failure type: the database refused the change (state machine, unknown event or provider).
/// Retrying cannot help.
pub const ASSISTANCE_REFUSED: &str = "AssistanceRefused";
/// Failure type: SNS refused an SMS for good (bad number, auth, opted out).
pub const SMS_REJECTED: &str = "SmsRejected";
/// Failure type: the tenant has no usable `sns-sms` account (missing, invalid, or a secret
/// reference that does not resolve).
pub const SMS_NOT_CONFIGURED: &str = "SmsNotConfigured";

fn failure(type_name: &str, message: String, retryable: bool) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(message)
            .type_name(type_name.to_owned())
            .non_retryable(!retryable)
            .build(),
    )
}

fn refused(error: AssistanceError) -> ActivityError {
    match error {
        AssistanceError::Other(e) => ActivityError::from(e),
        other => failure(ASSISTANCE_REFUSED, other.to_string(), false),
    }
}

/// Input of [`AssistanceActivities::change_status`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeEventStatus {
    pub tenant_id: TenantId,
    pub write: StatusWrite,
}

/// Input of the provider activities (assign, start, resolve).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderAction {
    pub tenant_id: TenantId,
    pub write: ProviderWrite,
}

/// How SMS are sent for a tenant (from its assistance settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsOptions {
    pub sms_type: String,
    pub sender_id: Option<String>,
}

/// Input of [`AssistanceActivities::escalate_provider`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EscalateProvider {
    pub tenant_id: TenantId,
    /// The assistance event's workflow id: the escalation's event and SMS ids derive from it.
    pub workflow_id: String,
    pub event_id: String,
    pub event_provider_id: String,
    pub provider_id: String,
    pub waited_secs: u64,
    pub operators: Vec<E164>,
    pub sms: SmsOptions,
}

/// Input of [`AssistanceActivities::record_step`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordStep {
    pub tenant_id: TenantId,
    pub event_id: String,
    pub step: MokStep,
    pub assistance_id: Option<String>,
    pub outcome: String,
    pub detail: serde_json::Value,
}

/// Input of [`AssistanceActivities::tracking_mok`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackMok {
    pub tenant_id: TenantId,
    /// The MOK workflow's id: the status change this action causes derives from it.
    pub workflow_id: String,
    pub event: MokEvent,
}

/// Input of [`AssistanceActivities::sns_notification`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyMok {
    pub tenant_id: TenantId,
    pub workflow_id: String,
    pub event: MokEvent,
    pub recipients: Vec<E164>,
    pub sms: SmsOptions,
}

/// One SMS accepted by SNS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentSms {
    /// The recipient, masked (`+51*****4321`).
    pub to: String,
    pub message_id: String,
    /// `true` when an earlier attempt had sent it (nothing was sent now).
    pub already_sent: bool,
}

/// What the SnsNotification step sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notified {
    pub messages: Vec<SentSms>,
}

/// Input of [`AssistanceActivities::mok_failed`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MokFailure {
    pub tenant_id: TenantId,
    pub workflow_id: String,
    pub event: MokEvent,
    /// The step that failed (TrackingMok or SnsNotification).
    pub failed_step: MokStep,
    /// The failure as the step reported it.
    pub cause: String,
    pub operators: Vec<E164>,
    pub sms: SmsOptions,
}

/// What an operator notification achieved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorsNotified {
    pub sent: Vec<SentSms>,
    /// Operators SNS could not reach (masked number and reason): the domain event is recorded
    /// regardless, for other notification consumers.
    pub failed: Vec<String>,
}

/// Activities of the assistance workflows.
pub struct AssistanceActivities {
    db: Database,
    senders: ClientCache<SmsSender>,
}

impl AssistanceActivities {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            senders: ClientCache::new(),
        }
    }

    /// The tenant's `sns-sms` account.
    async fn sms_account(&self, tenant: &TenantId) -> Result<SnsSmsAccount, ActivityError> {
        let account = self
            .db
            .channels()
            .account(tenant, SNS_SMS)
            .await?
            .ok_or_else(|| {
                failure(
                    SMS_NOT_CONFIGURED,
                    format!("tenant `{tenant}` has no `{}` channel account", SNS_SMS),
                    false,
                )
            })?;
        serde_json::from_value(account.settings).map_err(|e| {
            failure(
                SMS_NOT_CONFIGURED,
                format!("{} account settings: {e}", SNS_SMS),
                false,
            )
        })
    }

    /// Sends `text` to one recipient at most once per `client_message_id`.
    async fn send_once(
        &self,
        tenant: &TenantId,
        account: &SnsSmsAccount,
        options: &SmsOptions,
        client_message_id: &str,
        to: &E164,
        text: &str,
    ) -> Result<SentSms, ActivityError> {
        let channels = self.db.channels();
        let record = channels
            .begin_send(
                tenant,
                client_message_id,
                SNS_SMS,
                to.as_str(),
                &serde_json::json!({ "text": text }),
            )
            .await?;
        if let Some(id) = record.provider_message_id {
            return Ok(SentSms {
                to: to.masked(),
                message_id: id,
                already_sent: true,
            });
        }
        let sender = self.senders.get(&account.aws).await.map_err(|e| {
            failure(
                SMS_NOT_CONFIGURED,
                format!("{} account: {e}", SNS_SMS),
                false,
            )
        })?;
        let sms_type = options.sms_type.parse::<SmsType>().unwrap_or_default();
        let sender_id = options
            .sender_id
            .as_deref()
            .or(account.sender_id.as_deref());
        let sent = sender
            .send(&Sms {
                to: to.as_str(),
                text,
                sms_type,
                sender_id,
                origination_number: account.origination_number.as_deref(),
            })
            .await;
        match sent {
            Ok(message_id) => {
                channels
                    .mark_sent(tenant, client_message_id, &message_id)
                    .await?;
                Ok(SentSms {
                    to: to.masked(),
                    message_id,
                    already_sent: false,
                })
            }
            Err(e) => {
                let message = format!("SMS to {}: {e}", to.masked());
                if e.is_retryable() {
                    Err(failure("SmsUnavailable", message, true))
                } else {
                    channels
                        .mark_dead(tenant, client_message_id, &message)
                        .await?;
                    Err(failure(SMS_REJECTED, message, false))
                }
            }
        }
    }

    /// Texts every operator (best effort per operator: one failure does not stop the others).
    /// A retryable failure of any operator fails the activity so it is retried (already sent
    /// operators are skipped then); permanent ones are reported in the result.
    pub(crate) async fn notify_operators(
        &self,
        tenant: &TenantId,
        operators: &[E164],
        options: &SmsOptions,
        id_prefix: &str,
        text: &str,
        info: &temporalio_sdk::activities::ActivityInfo,
    ) -> Result<OperatorsNotified, ActivityError> {
        let (attempt, last_attempt) = (info.attempt, last_attempt(info));
        let mut result = OperatorsNotified {
            sent: Vec::new(),
            failed: Vec::new(),
        };
        if operators.is_empty() {
            return Ok(result);
        }
        let account = match self.sms_account(tenant).await {
            Ok(account) => account,
            Err(e) => {
                result
                    .failed
                    .push(format!("all operators: {}", describe(&e)));
                return Ok(result);
            }
        };
        let mut retry = None;
        for operator in operators {
            let id = format!("{id_prefix}/{operator}");
            match self
                .send_once(tenant, &account, options, &id, operator, text)
                .await
            {
                Ok(sent) => result.sent.push(sent),
                Err(e) => {
                    let message = format!(
                        "{} (attempt {attempt}): {}",
                        operator.masked(),
                        describe(&e)
                    );
                    let retryable =
                        matches!(&e, ActivityError::Application(f) if !f.is_non_retryable());
                    if retryable && !last_attempt {
                        retry = Some(message.clone());
                    }
                    result.failed.push(message);
                }
            }
        }
        match retry {
            Some(message) => Err(failure("SmsUnavailable", message, true)),
            None => Ok(result),
        }
    }
}

#[activities]
impl AssistanceActivities {
    /// Applies a status change (operator or system), once per change id.
    #[activity(name = "ChangeAssistanceStatus")]
    pub async fn change_status(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ChangeEventStatus,
    ) -> Result<StatusOutcome, ActivityError> {
        self.db
            .assistance()
            .change_status(&input.tenant_id, &input.write)
            .await
            .map_err(refused)
    }

    #[activity(name = "AssignProvider")]
    pub async fn assign_provider(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ProviderAction,
    ) -> Result<ProviderOutcome, ActivityError> {
        self.db
            .assistance()
            .assign_provider(&input.tenant_id, &input.write)
            .await
            .map_err(refused)
    }

    #[activity(name = "StartProvider")]
    pub async fn start_provider(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ProviderAction,
    ) -> Result<ProviderOutcome, ActivityError> {
        self.db
            .assistance()
            .start_provider(&input.tenant_id, &input.write)
            .await
            .map_err(refused)
    }

    #[activity(name = "ResolveProvider")]
    pub async fn resolve_provider(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ProviderAction,
    ) -> Result<ProviderOutcome, ActivityError> {
        self.db
            .assistance()
            .resolve_provider(&input.tenant_id, &input.write)
            .await
            .map_err(refused)
    }

    /// A provider has not started within the tenant's limit: an `Assistance.ProviderStartOverdue`
    /// event (recorded once) and an SMS to every operator.
    #[activity(name = "EscalateProvider")]
    pub async fn escalate_provider(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: EscalateProvider,
    ) -> Result<OperatorsNotified, ActivityError> {
        let key = format!("{}/sla/{}", input.workflow_id, input.event_provider_id);
        tracing::warn!(
            tenant_id = %input.tenant_id,
            event_id = %input.event_id,
            provider_id = %input.provider_id,
            waited_secs = input.waited_secs,
            "Provider has not started within the SLA; escalating"
        );
        self.db
            .events()
            .record(NewEvent {
                event_id: &key,
                tenant_id: &input.tenant_id,
                event_type: zengine_domain::events::EventType::AssistanceProviderStartOverdue,
                subject: &input.event_id,
                payload: &serde_json::json!({
                    "event_provider_id": input.event_provider_id,
                    "provider_id": input.provider_id,
                    "waited_secs": input.waited_secs,
                }),
            })
            .await?;
        let text = format!(
            "ALERTA asistencia {}: el proveedor {} no inició la atención en {} min.",
            input.event_id,
            input.provider_id,
            input.waited_secs.div_ceil(60)
        );
        self.notify_operators(
            &input.tenant_id,
            &input.operators,
            &input.sms,
            &key,
            &text,
            ctx.info(),
        )
        .await
    }

    /// Writes one assistance-log row (Choice, Success, Ignored), once per (event, step).
    #[activity(name = "RecordMokStep")]
    pub async fn record_step(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: RecordStep,
    ) -> Result<bool, ActivityError> {
        Ok(self
            .db
            .assistance()
            .log_step(
                &input.tenant_id,
                &LogWrite {
                    event_id: &input.event_id,
                    step: input.step.as_str(),
                    assistance_id: input.assistance_id.as_deref(),
                    outcome: &input.outcome,
                    detail: &input.detail,
                },
            )
            .await?)
    }

    /// The `TrackingMok` state: the action and its log row, in one transaction, once.
    #[activity(name = "TrackingMok")]
    pub async fn tracking_mok(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: TrackMok,
    ) -> Result<TrackingOutcome, ActivityError> {
        let change_id = format!("{}/{}", input.workflow_id, MokStep::TrackingMok);
        let (outcome, _) = self
            .db
            .assistance()
            .track_mok(&input.tenant_id, &input.event, &change_id)
            .await
            .map_err(refused)?;
        Ok(outcome)
    }

    /// The `SnsNotification` state: one SMS per configured recipient (each at most once), then
    /// its log row.
    #[activity(name = "SnsNotification")]
    pub async fn sns_notification(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: NotifyMok,
    ) -> Result<Notified, ActivityError> {
        let step = MokStep::SnsNotification;
        let attempt = ctx.info().attempt;
        let mut messages = Vec::new();
        if !input.recipients.is_empty() {
            let account = self.sms_account(&input.tenant_id).await?;
            let text = input.event.sms_text();
            for to in &input.recipients {
                let id = format!("{}/{step}/{to}", input.workflow_id);
                let sent = self
                    .send_once(&input.tenant_id, &account, &input.sms, &id, to, &text)
                    .await
                    .map_err(|e| with_attempt(e, attempt))?;
                messages.push(sent);
            }
        }
        self.db
            .assistance()
            .log_step(
                &input.tenant_id,
                &LogWrite {
                    event_id: &input.event.event_id,
                    step: step.as_str(),
                    assistance_id: input.event.assistance_id.as_deref(),
                    outcome: "OK",
                    detail: &serde_json::json!({ "messages": messages, "attempt": attempt }),
                },
            )
            .await?;
        Ok(Notified { messages })
    }

    /// The error branch: tells the operators (SMS, best effort), records an
    /// `Assistance.MokFailed` event and the `Error` log row with the cause, once.
    #[activity(name = "MokFailed")]
    pub async fn mok_failed(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: MokFailure,
    ) -> Result<OperatorsNotified, ActivityError> {
        let key = format!("{}/{}", input.workflow_id, MokStep::Error);
        let text = format!(
            "ERROR MOK {} ({}): falló {}.",
            input.event.event_id, input.event.action, input.failed_step
        );
        let notified = self
            .notify_operators(
                &input.tenant_id,
                &input.operators,
                &input.sms,
                &key,
                &text,
                ctx.info(),
            )
            .await?;
        self.db
            .events()
            .record(NewEvent {
                event_id: &key,
                tenant_id: &input.tenant_id,
                event_type: zengine_domain::events::EventType::AssistanceMokFailed,
                subject: input
                    .event
                    .assistance_id
                    .as_deref()
                    .unwrap_or(&input.event.event_id),
                payload: &serde_json::json!({
                    "mok_event_id": input.event.event_id,
                    "action": input.event.action,
                    "failed_step": input.failed_step,
                    "cause": input.cause,
                }),
            })
            .await?;
        self.db
            .assistance()
            .log_step(
                &input.tenant_id,
                &LogWrite {
                    event_id: &input.event.event_id,
                    step: MokStep::Error.as_str(),
                    assistance_id: input.event.assistance_id.as_deref(),
                    outcome: "FAILED",
                    detail: &serde_json::json!({
                        "failed_step": input.failed_step,
                        "cause": input.cause,
                        "operators_notified": notified.sent,
                        "operators_failed": notified.failed,
                    }),
                },
            )
            .await?;
        Ok(notified)
    }
}

/// The message of an activity failure (what the activity said).
fn describe(error: &ActivityError) -> String {
    match error {
        ActivityError::Application(f) => f.source_error().to_string(),
        other => format!("{other:?}"),
    }
}

/// Whether this is the activity's last attempt under its retry policy (three attempts when
/// the policy is unknown or unlimited): operator SMS failures stop being retried then.
fn last_attempt(info: &temporalio_sdk::activities::ActivityInfo) -> bool {
    let max = info
        .retry_policy
        .as_ref()
        .map(|p| p.maximum_attempts())
        .filter(|m| *m > 0)
        .unwrap_or(3);
    info.attempt >= max
}

/// Prefixes a failure's message with the attempt number (the error branch records it).
fn with_attempt(error: ActivityError, attempt: u32) -> ActivityError {
    match error {
        ActivityError::Application(f) => {
            let retryable = !f.is_non_retryable();
            let type_name = f.type_name().unwrap_or("SmsUnavailable").to_owned();
            failure(
                &type_name,
                format!("attempt {attempt}: {}", f.source_error()),
                retryable,
            )
        }
        other => other,
    }
}
