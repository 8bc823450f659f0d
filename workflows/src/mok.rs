//! The MOK tracking workflow: one per tracking event (`{tenant}/mok/{event_id}`), on the
//! `assistance` queue. It mirrors the original Step Functions state machine, one named step
//! per state, each writing its assistance-log row (tenant, event id, step) once:
//!
//! ```text
//!            ┌──────────┐ source_code = "MOK" ┌─────────────┐   ┌─────────────────┐   ┌─────────┐
//!  start ──▶ │  Choice  │ ──────────────────▶ │ TrackingMok │──▶│ SnsNotification │──▶│ Success │
//!            └──────────┘                     └─────────────┘   └─────────────────┘   └─────────┘
//!                 │ otherwise                        │ failed for good  │
//!                 ▼                                  ▼                  ▼
//!            ┌─────────┐                        ┌──────────────────────────┐
//!            │ Ignored │ (succeeds)             │ Error: cause, operators  │ (fails)
//!            └─────────┘                        └──────────────────────────┘
//! ```
//!
//! `TrackingMok` applies the action (EVENT_PROVIDER_CREATE / START / RESOLVE, NOTE_REGISTER)
//! and its log row in one database transaction, then tells the event's workflow
//! (`StatusChanged`). `SnsNotification` texts the tenant's MOK recipients through SNS. The
//! retry policies are the `Retry` blocks of the original definition; a step that still fails
//! goes to `Error` (its `Catch`), which records the cause, notifies the operators and fails the
//! workflow, like the original's `Fail` state.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, ApplicationFailure, SignalWorkflowOptions, WorkflowContext,
    WorkflowContextView, WorkflowResult,
};
use zengine_activities::assistance::{
    ASSISTANCE_REFUSED, AssistanceActivities, MokFailure, NotifyMok, RecordStep,
    SMS_NOT_CONFIGURED, SMS_REJECTED, SentSms, SmsOptions, TrackMok,
};
use zengine_domain::TenantId;
use zengine_domain::assistance::TrackingOutcome;
use zengine_domain::assistance::{AssistanceSettings, MokEvent, MokStep};

use crate::assistance::{AssistanceWorkflow, StatusChanged};
use crate::names::TENANT_ID;

pub const WORKFLOW_TYPE: &str = "MokTracking";
pub const QUERY_STATUS: &str = "Status";
/// Failure type of a MOK workflow that ended in its error branch.
pub const MOK_TRACKING_FAILED: &str = "MokTrackingFailed";

/// Input of a MOK tracking workflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MokInput {
    pub tenant_id: TenantId,
    pub event: MokEvent,
    /// The tenant's rules when the event arrived (recipients, operators, SMS options).
    pub settings: AssistanceSettings,
}

/// Where a MOK workflow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MokStatus {
    Running,
    /// Tracked and notified.
    Succeeded,
    /// Not a MOK event: nothing done.
    Ignored,
    /// The error branch ran.
    Failed,
}

/// Snapshot returned by the `Status` query and by the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MokView {
    pub event_id: String,
    pub status: MokStatus,
    /// The step running now, or the last one.
    pub step: MokStep,
    pub tracking: Option<TrackingOutcome>,
    pub messages: Vec<SentSms>,
    pub error: Option<String>,
}

#[workflow]
pub struct MokWorkflow {
    input: MokInput,
    view: MokView,
}

fn log_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(15))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_millis(200))
                .maximum_interval(Duration::from_secs(10))
                .maximum_attempts(10)
                .build(),
        )
        .build()
}

#[workflow_methods]
impl MokWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: MokInput) -> Self {
        let view = MokView {
            event_id: input.event.event_id.clone(),
            status: MokStatus::Running,
            step: MokStep::Choice,
            tracking: None,
            messages: Vec::new(),
            error: None,
        };
        Self { input, view }
    }

    #[run(name = WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<MokView> {
        let input = ctx.state(|s| s.input.clone());
        ctx.upsert_search_attributes([TENANT_ID.value_set(input.tenant_id.to_string())]);

        // Choice
        let is_mok = input.event.is_mok();
        Self::record(
            ctx,
            &input,
            MokStep::Choice,
            serde_json::json!({
                "source_code": input.event.source_code,
                "action": input.event.action,
                "next": if is_mok { MokStep::TrackingMok } else { MokStep::Ignored },
            }),
        )
        .await?;
        if !is_mok {
            Self::record(
                ctx,
                &input,
                MokStep::Ignored,
                serde_json::json!({ "reason": "source_code is not MOK" }),
            )
            .await?;
            return Ok(ctx.state_mut(|s| {
                s.view.status = MokStatus::Ignored;
                s.view.step = MokStep::Ignored;
                s.view.clone()
            }));
        }

        // TrackingMok
        ctx.state_mut(|s| s.view.step = MokStep::TrackingMok);
        let workflow_id =
            zengine_domain::workflow_ids::mok(&input.tenant_id, &input.event.event_id);
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(15))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_secs(1))
                    .backoff_coefficient(2.0)
                    .maximum_interval(Duration::from_secs(10))
                    .maximum_attempts(5)
                    .non_retryable_error_types([ASSISTANCE_REFUSED])
                    .build(),
            )
            .build();
        let tracked = ctx
            .execute_activity(
                AssistanceActivities::tracking_mok,
                TrackMok {
                    tenant_id: input.tenant_id.clone(),
                    workflow_id: workflow_id.clone(),
                    event: input.event.clone(),
                },
                options,
            )
            .await;
        let tracking = match tracked {
            Ok(tracking) => tracking,
            Err(e) => {
                return Self::fail(
                    ctx,
                    &input,
                    MokStep::TrackingMok,
                    crate::failure_message(&e),
                )
                .await;
            }
        };
        ctx.state_mut(|s| s.view.tracking = Some(tracking.clone()));
        // Best effort: the database holds the change already; a closed event's workflow does
        // not need to hear of it.
        let _ = ctx
            .external_workflow(
                zengine_domain::workflow_ids::assistance(&input.tenant_id, &tracking.assistance_id),
                None,
            )
            .signal(
                AssistanceWorkflow::status_changed,
                StatusChanged {
                    event_status: tracking.event_status,
                    provider_id: tracking
                        .event_provider
                        .as_ref()
                        .map(|p| p.provider_id.clone()),
                    provider_status: tracking.event_provider.as_ref().map(|p| p.status),
                    source: "mok".into(),
                },
                SignalWorkflowOptions::default(),
            )
            .await;

        // SnsNotification
        ctx.state_mut(|s| s.view.step = MokStep::SnsNotification);
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_secs(1))
                    .backoff_coefficient(2.0)
                    .maximum_interval(Duration::from_secs(10))
                    .maximum_attempts(3)
                    .non_retryable_error_types([SMS_REJECTED, SMS_NOT_CONFIGURED])
                    .build(),
            )
            .build();
        let notified = ctx
            .execute_activity(
                AssistanceActivities::sns_notification,
                NotifyMok {
                    tenant_id: input.tenant_id.clone(),
                    workflow_id,
                    event: input.event.clone(),
                    recipients: input.settings.mok_recipients.clone(),
                    sms: sms_options(&input.settings),
                },
                options,
            )
            .await;
        let notified = match notified {
            Ok(n) => n,
            Err(e) => {
                return Self::fail(
                    ctx,
                    &input,
                    MokStep::SnsNotification,
                    crate::failure_message(&e),
                )
                .await;
            }
        };
        ctx.state_mut(|s| s.view.messages = notified.messages.clone());

        // Success
        Self::record(
            ctx,
            &input,
            MokStep::Success,
            serde_json::json!({
                "event_status": tracking.event_status,
                "applied": tracking.applied,
                "messages": notified.messages.len(),
            }),
        )
        .await?;
        Ok(ctx.state_mut(|s| {
            s.view.status = MokStatus::Succeeded;
            s.view.step = MokStep::Success;
            s.view.clone()
        }))
    }

    #[query(name = QUERY_STATUS)]
    pub fn status(&self, _ctx: &WorkflowContextView) -> MokView {
        self.view.clone()
    }
}

fn sms_options(settings: &AssistanceSettings) -> SmsOptions {
    SmsOptions {
        sms_type: settings.sms_type.clone(),
        sender_id: settings.sender_id.clone(),
    }
}

impl MokWorkflow {
    /// Writes a step's log row (Choice, Ignored, Success).
    async fn record(
        ctx: &mut WorkflowContext<Self>,
        input: &MokInput,
        step: MokStep,
        detail: serde_json::Value,
    ) -> WorkflowResult<()> {
        ctx.execute_activity(
            AssistanceActivities::record_step,
            RecordStep {
                tenant_id: input.tenant_id.clone(),
                event_id: input.event.event_id.clone(),
                step,
                assistance_id: input.event.assistance_id.clone(),
                outcome: "OK".into(),
                detail,
            },
            log_options(),
        )
        .await?;
        Ok(())
    }

    /// The error branch: records the cause, notifies the operators, fails the workflow.
    async fn fail(
        ctx: &mut WorkflowContext<Self>,
        input: &MokInput,
        failed_step: MokStep,
        cause: String,
    ) -> WorkflowResult<MokView> {
        ctx.state_mut(|s| {
            s.view.step = MokStep::Error;
            s.view.status = MokStatus::Failed;
            s.view.error = Some(format!("{failed_step}: {cause}"));
        });
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_secs(1))
                    .backoff_coefficient(2.0)
                    .maximum_interval(Duration::from_secs(10))
                    .maximum_attempts(3)
                    .build(),
            )
            .build();
        ctx.execute_activity(
            AssistanceActivities::mok_failed,
            MokFailure {
                tenant_id: input.tenant_id.clone(),
                workflow_id: zengine_domain::workflow_ids::mok(
                    &input.tenant_id,
                    &input.event.event_id,
                ),
                event: input.event.clone(),
                failed_step,
                cause: cause.clone(),
                operators: input.settings.operator_recipients.clone(),
                sms: sms_options(&input.settings),
            },
            options,
        )
        .await?;
        Err(ApplicationFailure::builder(format!(
            "MOK event {}: {failed_step} failed: {cause}",
            input.event.event_id
        ))
        .type_name(MOK_TRACKING_FAILED.to_owned())
        .non_retryable(true)
        .build()
        .into())
    }
}
