//! [`RetentionPurgeWorkflow`] (`RetentionPurge`, `payments` queue): started daily by the
//! schedule `zengine_domain::workflow_ids::retention`; for each tenant, deletes the orders created more than the
//! tenant's `retention_days` before the workflow's time, with their items, payments, tracking
//! events and receipt images (activity `PurgeOrders`, batched, idempotent). A tenant that had
//! something purged gets one `Orders.Purged` event with the counts.

use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowContextView, WorkflowResult};
use zengine_activities::retention::{PurgeCounts, PurgeOrders, RetentionActivities};
use zengine_domain::TenantId;

use crate::names::TENANT_ID;
use zengine_domain::workflow_ids::SYSTEM_TENANT;

/// Workflow type of the purge.
pub const RETENTION_WORKFLOW_TYPE: &str = "RetentionPurge";
/// How often the retention schedule runs by default.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Which tenants a purge covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionScope {
    /// One tenant; `None`: every tenant (the schedule).
    #[serde(default)]
    pub tenant: Option<TenantId>,
}

/// What one tenant's purge did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantPurge {
    pub tenant_id: TenantId,
    /// Orders created before this (epoch ms) were purged.
    pub cutoff_ms: i64,
    /// `None` when the purge failed (the next run tries again).
    pub counts: Option<PurgeCounts>,
}

/// What one purge run did, per tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionReport {
    pub tenants: Vec<TenantPurge>,
}

/// The cut-off of a tenant: `now - retention_days`.
pub fn cutoff_ms(now_ms: i64, retention_days: u32) -> i64 {
    now_ms - i64::from(retention_days) * DAY_MS
}

#[workflow]
pub struct RetentionPurgeWorkflow {
    scope: RetentionScope,
}

#[workflow_methods]
impl RetentionPurgeWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, scope: RetentionScope) -> Self {
        Self { scope }
    }

    #[run(name = RETENTION_WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<RetentionReport> {
        let scope = ctx.state(|s| s.scope.tenant.clone());
        ctx.upsert_search_attributes([TENANT_ID.value_set(SYSTEM_TENANT.to_owned())]);
        let Some(now_ms) = ctx
            .workflow_time()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
        else {
            return Ok(RetentionReport::default());
        };
        let retry = RetryPolicy::builder()
            .initial_interval(Duration::from_secs(1))
            .backoff_coefficient(2.0)
            .maximum_interval(Duration::from_secs(60))
            .maximum_attempts(5)
            .build();
        let list = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
            .retry_policy(retry.clone())
            .build();
        let purge = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30 * 60))
            .retry_policy(retry)
            .build();
        let tenants = ctx
            .execute_activity(RetentionActivities::retention_tenants, (), list)
            .await?;
        let mut report = RetentionReport::default();
        for tenant in tenants {
            if scope.as_ref().is_some_and(|t| *t != tenant.tenant_id) {
                continue;
            }
            let cutoff = cutoff_ms(now_ms, tenant.retention_days);
            // One tenant's failed purge must not stop the others'.
            let counts = ctx
                .execute_activity(
                    RetentionActivities::purge_orders,
                    PurgeOrders {
                        tenant_id: tenant.tenant_id.clone(),
                        cutoff_ms: cutoff,
                    },
                    purge.clone(),
                )
                .await
                .ok();
            report.tenants.push(TenantPurge {
                tenant_id: tenant.tenant_id,
                cutoff_ms: cutoff,
                counts,
            });
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_retention_days_before_now() {
        assert_eq!(cutoff_ms(10 * DAY_MS, 1), 9 * DAY_MS);
        assert_eq!(cutoff_ms(40 * DAY_MS, 30), 10 * DAY_MS);
    }
}
