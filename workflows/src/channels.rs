//! Channel workflows on the `channels` queue:
//!
//! - [`ChannelHealthWorkflow`] (`ChannelHealth`): started every 5 minutes by the schedule
//!   `zengine_domain::workflow_ids::channel_health`; runs every tenant account's health check; each status change is a
//!   `Channel.HealthChanged` event (recorded by the activity, once per change).
//! - [`RedriveWorkflow`] (`RedriveOutbound`, id `{tenant}/redrive/{client message id}`): an
//!   operator's re-drive of a dead letter. The message keeps its `client_message_id`, so a
//!   provider that already accepted it is not asked twice; failing again makes it a dead letter
//!   again.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowContextView, WorkflowResult};
use zengine_activities::channels::{
    AccountHealth, CIRCUIT_OPEN, ChannelActivities, DeadLetter, DeliverReply, HealthCheck,
    NOT_CONFIGURED, SECRET_MISSING, SEND_REJECTED,
};
use zengine_domain::TenantId;
use zengine_domain::workflow_ids::SYSTEM_TENANT;

use crate::names::TENANT_ID;

/// Workflow type of the health check.
pub const HEALTH_WORKFLOW_TYPE: &str = "ChannelHealth";
/// Workflow type of a dead letter's re-drive.
pub const REDRIVE_WORKFLOW_TYPE: &str = "RedriveOutbound";
/// How often the health schedule runs.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(300);

/// What one health run found, per tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub tenants: Vec<(TenantId, Vec<AccountHealth>)>,
}

/// Which tenants a health run checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthScope {
    /// One tenant (an operator's "check now"); `None`: every tenant with accounts (the
    /// schedule).
    #[serde(default)]
    pub tenant: Option<TenantId>,
}

#[workflow]
pub struct ChannelHealthWorkflow {
    scope: HealthScope,
}

#[workflow_methods]
impl ChannelHealthWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, scope: HealthScope) -> Self {
        Self { scope }
    }

    #[run(name = HEALTH_WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<HealthReport> {
        let scope = ctx.state(|s| s.scope.tenant.clone());
        let owner = scope
            .as_ref()
            .map_or_else(|| SYSTEM_TENANT.to_owned(), ToString::to_string);
        ctx.upsert_search_attributes([TENANT_ID.value_set(owner)]);
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_secs(1))
                    .maximum_attempts(3)
                    .build(),
            )
            .build();
        let tenants = match scope {
            Some(tenant) => vec![tenant],
            None => {
                ctx.execute_activity(ChannelActivities::channel_tenants, (), options.clone())
                    .await?
            }
        };
        let mut report = HealthReport::default();
        for tenant_id in tenants {
            // One tenant's broken check must not hide the others'.
            match ctx
                .execute_activity(
                    ChannelActivities::check_health,
                    HealthCheck {
                        tenant_id: tenant_id.clone(),
                    },
                    options.clone(),
                )
                .await
            {
                Ok(accounts) => report.tenants.push((tenant_id, accounts)),
                Err(_) => report.tenants.push((tenant_id, Vec::new())),
            }
        }
        Ok(report)
    }
}

/// Input of a re-drive: the dead letter as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveInput {
    pub delivery: DeliverReply,
}

/// How a re-drive ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveOutcome {
    pub delivered: bool,
    pub provider_message_id: Option<String>,
    pub error: Option<String>,
}

#[workflow]
pub struct RedriveWorkflow {
    input: RedriveInput,
}

#[workflow_methods]
impl RedriveWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: RedriveInput) -> Self {
        Self { input }
    }

    #[run(name = REDRIVE_WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<RedriveOutcome> {
        let delivery = ctx.state(|s| s.input.delivery.clone());
        ctx.upsert_search_attributes([TENANT_ID.value_set(delivery.tenant_id.to_string())]);
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
            .heartbeat_timeout(Duration::from_secs(10))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_secs(1))
                    .backoff_coefficient(2.0)
                    .maximum_interval(Duration::from_secs(30))
                    .maximum_attempts(3)
                    .non_retryable_error_types([
                        SEND_REJECTED,
                        SECRET_MISSING,
                        NOT_CONFIGURED,
                        CIRCUIT_OPEN,
                    ])
                    .build(),
            )
            .build();
        match ctx
            .execute_activity(ChannelActivities::deliver, delivery.clone(), options)
            .await
        {
            Ok(delivered) => Ok(RedriveOutcome {
                delivered: true,
                provider_message_id: Some(delivered.provider_message_id),
                error: None,
            }),
            Err(e) => {
                let error = crate::failure_message(&e);
                let dead = DeadLetter {
                    tenant_id: delivery.tenant_id,
                    channel: delivery.channel,
                    recipient: delivery.recipient,
                    client_message_id: delivery.client_message_id,
                    reply: delivery.reply,
                    error: error.clone(),
                };
                let record = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10))
                    .retry_policy(RetryPolicy::builder().maximum_attempts(20).build())
                    .build();
                ctx.execute_activity(ChannelActivities::dead_letter, dead, record)
                    .await?;
                Ok(RedriveOutcome {
                    delivered: false,
                    provider_message_id: None,
                    error: Some(error),
                })
            }
        }
    }
}
