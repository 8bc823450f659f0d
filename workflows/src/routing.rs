//! The route optimisation workflow (`{tenant}/route/{plan_id}`, queue `routing`): one activity
//! that loads the orders, solves and stores the routes, heartbeating its best cost. Cancelling
//! the workflow cancels the activity, which stops the search and stores the best routes found.
//! Then each driver with a route and a phone is sent their stop list through the tenant's
//! channel (the outbound strategy path on the `channels` queue), one message per driver with
//! the idempotent `client_message_id` `{tenant}/route/{plan_id}/notify/{driver_id}`.

/// Patch of the driver notifications (runs recorded before it have no sends).
pub const PATCH_NOTIFY_DRIVERS: &str = "route-notify-drivers";

use std::time::Duration;

use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityCancellationType, ActivityOptions, WorkflowContext, WorkflowContextView, WorkflowResult,
};
use zengine_activities::channels::{
    ChannelActivities, DeliverReply, NOT_CONFIGURED, SECRET_MISSING, SEND_REJECTED,
};
use zengine_activities::routing::{OptimiseRoutes, RouteActivities, RouteSummary};
use zengine_domain::{Reply, TenantId};

use crate::names::TENANT_ID;

/// Workflow type name (id `{tenant}/route/{plan_id}`, queue `routing`; input [`RouteInput`],
/// result [`RouteSummary`]). It has no signals, queries or updates: cancel it to stop the search
/// early (the best routes found are kept).
pub const WORKFLOW_TYPE: &str = "RouteOptimisation";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteInput {
    pub tenant_id: TenantId,
    pub plan_id: String,
    pub time_limit_ms: u64,
}

#[workflow]
pub struct RouteOptimisationWorkflow {
    input: RouteInput,
}

#[workflow_methods]
impl RouteOptimisationWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: RouteInput) -> Self {
        Self { input }
    }

    #[run(name = WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<RouteSummary> {
        let input = ctx.state(|s| s.input.clone());
        ctx.upsert_search_attributes([TENANT_ID.value_set(input.tenant_id.to_string())]);
        let options = ActivityOptions::with_start_to_close_timeout(
            Duration::from_millis(input.time_limit_ms) + Duration::from_secs(120),
        )
        .heartbeat_timeout(Duration::from_secs(15))
        .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .maximum_attempts(3)
                .build(),
        )
        .build();
        let summary = ctx
            .execute_activity(
                RouteActivities::optimise,
                OptimiseRoutes {
                    tenant_id: input.tenant_id.clone(),
                    plan_id: input.plan_id.clone(),
                },
                options,
            )
            .await?;
        if !summary.notices.is_empty() && ctx.patched(PATCH_NOTIFY_DRIVERS) {
            let queue = crate::names::sibling_queue(
                ctx.task_queue(),
                crate::names::queues::ROUTING,
                crate::names::queues::CHANNELS,
            );
            let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
                .task_queue(queue)
                .heartbeat_timeout(Duration::from_secs(10))
                .retry_policy(
                    RetryPolicy::builder()
                        .initial_interval(Duration::from_secs(1))
                        .backoff_coefficient(2.0)
                        .maximum_interval(Duration::from_secs(30))
                        .maximum_attempts(3)
                        .non_retryable_error_types([SEND_REJECTED, SECRET_MISSING, NOT_CONFIGURED])
                        .build(),
                )
                .build();
            for notice in &summary.notices {
                let delivery = DeliverReply {
                    tenant_id: input.tenant_id.clone(),
                    channel: notice.channel.clone(),
                    recipient: notice.phone.clone(),
                    client_message_id: format!(
                        "{}/route/{}/notify/{}",
                        input.tenant_id, input.plan_id, notice.driver_id
                    ),
                    reply: Reply::Text {
                        text: notice.text.clone(),
                    },
                    strategy: None,
                };
                // A driver who cannot be reached does not undo the plan: the routes are
                // stored; the failed send is in the channel's outbound records.
                let _ = ctx
                    .execute_activity(ChannelActivities::deliver, delivery, options.clone())
                    .await;
            }
        }
        Ok(summary)
    }
}
