//! Retention activities (`payments` queue): which tenants keep orders how long, and the purge
//! of one tenant's orders older than a cut-off the workflow computed.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use zengine_domain::TenantId;

use zengine_storage::Database;
pub use zengine_storage::PurgeCounts;

/// Orders deleted per transaction.
pub const PURGE_BATCH: u32 = 500;

/// A tenant and its `retention_days`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRetention {
    pub tenant_id: TenantId,
    pub retention_days: u32,
}

/// Purge one tenant's orders created before `cutoff_ms` (epoch ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeOrders {
    pub tenant_id: TenantId,
    pub cutoff_ms: i64,
}

pub struct RetentionActivities {
    db: Database,
}

impl RetentionActivities {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[activities]
impl RetentionActivities {
    /// Every tenant with its retention, by tenant id.
    #[activity(name = "RetentionTenants")]
    pub async fn retention_tenants(
        self: Arc<Self>,
        _ctx: ActivityContext,
        _input: (),
    ) -> Result<Vec<TenantRetention>, ActivityError> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.db.tenants().list_all(&after, 500).await?;
            let Some(last) = page.last() else { break };
            after = last.tenant_id.to_string();
            for tenant in page {
                let settings = self.db.payments().settings(&tenant.tenant_id).await?;
                out.push(TenantRetention {
                    tenant_id: tenant.tenant_id,
                    retention_days: settings.retention_days,
                });
            }
        }
        Ok(out)
    }

    /// Deletes the tenant's orders older than the cut-off with their items, payments, tracking
    /// events and receipt images, in batches (idempotent: a retry deletes only what is left).
    #[activity(name = "PurgeOrders")]
    pub async fn purge_orders(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: PurgeOrders,
    ) -> Result<PurgeCounts, ActivityError> {
        let mut counts = self
            .db
            .retention()
            .purge_orders_before(&input.tenant_id, input.cutoff_ms, PURGE_BATCH)
            .await?;
        // Anonymous uploads no payment took: kept a day, whatever the tenant's retention.
        // Wall-clock time is fine here (an activity, not the workflow).
        let unlinked_cutoff =
            chrono::Utc::now().timestamp_millis() - zengine_storage::UNLINKED_MEDIA_TTL_MS;
        counts.unlinked_media = self
            .db
            .retention()
            .purge_unlinked_media(&input.tenant_id, unlinked_cutoff)
            .await?;
        if counts.unlinked_media > 0 {
            tracing::info!(tenant_id = %input.tenant_id, uploads = counts.unlinked_media, "Unlinked uploads purged");
        }
        if counts.orders > 0 {
            tracing::info!(tenant_id = %input.tenant_id, orders = counts.orders, payments = counts.payments, "Old orders purged");
        }
        Ok(counts)
    }
}
