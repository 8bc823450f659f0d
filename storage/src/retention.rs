//! Retention: purging a tenant's orders older than its `retention_days`, with every row keyed by
//! them (items, payments, tracking events, and receipt images no remaining payment uses).

use anyhow::Context;
use serde::{Deserialize, Serialize};
use zengine_domain::TenantId;

use super::Database;
use super::events::{NewEvent, record_in};

/// What one purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeCounts {
    pub orders: u64,
    pub order_items: u64,
    pub payments: u64,
    pub media_uploads: u64,
    pub tracking_events: u64,
    /// Uploads no payment links, removed after [`UNLINKED_MEDIA_TTL_MS`] (absent from
    /// histories recorded before it existed).
    #[serde(default)]
    pub unlinked_media: u64,
}

/// How long an upload no payment links is kept (`POST /v1/webchat/media` is anonymous: what a
/// flow never used must not stay forever).
pub const UNLINKED_MEDIA_TTL_MS: i64 = 24 * 3600 * 1000;

impl PurgeCounts {
    fn add(&mut self, other: PurgeCounts) {
        self.orders += other.orders;
        self.order_items += other.order_items;
        self.payments += other.payments;
        self.media_uploads += other.media_uploads;
        self.tracking_events += other.tracking_events;
        self.unlinked_media += other.unlinked_media;
    }
}

/// Retention queries.
pub struct RetentionRepo<'a> {
    pub(super) db: &'a Database,
}

/// The orders of one batch: the oldest `$3` orders of tenant `$1` created before `$2`. Every
/// statement of a batch runs in one transaction, so each sees the same set.
const BATCH: &str = "select order_id from sales_order where tenant_id = $1 and created_at < $2 \
     order by created_at, order_id limit $3";

impl RetentionRepo<'_> {
    /// Deletes the tenant's uploads created before `cutoff_ms` that no payment links.
    pub async fn purge_unlinked_media(
        &self,
        tenant_id: &TenantId,
        cutoff_ms: i64,
    ) -> anyhow::Result<u64> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let deleted = sqlx::query(
            "delete from media_upload where tenant_id = $1 and created_at < $2
               and not exists (select 1 from payment
                                where payment.tenant_id = $1
                                  and payment.media_ref = 'upload:' || media_upload.media_id)",
        )
        .bind(tenant_id.as_str())
        .bind(cutoff_ms)
        .execute(&mut *tx)
        .await
        .context("Failed to purge unlinked media")?
        .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }

    /// Deletes the tenant's orders created before `cutoff_ms` (epoch ms) and everything keyed
    /// by them, `batch_size` orders per transaction. Idempotent: a second call with the same
    /// cut-off finds nothing. When something was deleted, records one `Orders.Purged` event
    /// (id derived from tenant and cut-off) with the counts, in the last batch's transaction.
    pub async fn purge_orders_before(
        &self,
        tenant_id: &TenantId,
        cutoff_ms: i64,
        batch_size: u32,
    ) -> anyhow::Result<PurgeCounts> {
        anyhow::ensure!(batch_size > 0, "batch size must be positive");
        let mut total = PurgeCounts::default();
        loop {
            let mut tx = self.db.begin_for(tenant_id).await?;
            let batch = delete_batch(&mut tx, tenant_id, cutoff_ms, batch_size).await?;
            total.add(batch);
            let last = batch.orders < u64::from(batch_size);
            if last && total.orders > 0 {
                let payload = serde_json::json!({
                    "cutoff_ms": cutoff_ms,
                    "orders": total.orders,
                    "order_items": total.order_items,
                    "payments": total.payments,
                    "media_uploads": total.media_uploads,
                    "tracking_events": total.tracking_events,
                });
                record_in(
                    &mut tx,
                    NewEvent {
                        event_id: &format!("{tenant_id}/orders-purged/{cutoff_ms}"),
                        tenant_id,
                        event_type: zengine_domain::events::EventType::OrdersPurged,
                        subject: tenant_id.as_str(),
                        payload: &payload,
                    },
                )
                .await?;
            }
            tx.commit()
                .await
                .context("Failed to commit a purge batch")?;
            if last {
                return Ok(total);
            }
        }
    }
}

async fn delete_batch(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    cutoff_ms: i64,
    batch_size: u32,
) -> anyhow::Result<PurgeCounts> {
    // Receipt images are stored once per content: keep one that a payment of a kept order uses.
    let media = format!(
        "delete from media_upload where tenant_id = $1
           and ('upload:' || media_id) in
               (select media_ref from payment where tenant_id = $1 and order_id in ({BATCH}))
           and ('upload:' || media_id) not in
               (select media_ref from payment where tenant_id = $1 and order_id not in ({BATCH}))"
    );
    let mut counts = PurgeCounts::default();
    for (sql, count) in [
        (media, &mut counts.media_uploads),
        (
            format!("delete from payment where tenant_id = $1 and order_id in ({BATCH})"),
            &mut counts.payments,
        ),
        (
            format!("delete from order_item where tenant_id = $1 and order_id in ({BATCH})"),
            &mut counts.order_items,
        ),
        (
            format!("delete from tracking_event where tenant_id = $1 and order_id in ({BATCH})"),
            &mut counts.tracking_events,
        ),
        (
            format!(
                "delete from sales_order where tenant_id = $1 and order_id in \
                 (select order_id from ({BATCH}) as batch)"
            ),
            &mut counts.orders,
        ),
    ] {
        let done = sqlx::query(&sql)
            .bind(tenant_id.as_str())
            .bind(cutoff_ms)
            .bind(i64::from(batch_size))
            .execute(&mut *conn)
            .await
            .context("Failed to purge old orders")?;
        *count = done.rows_affected();
    }
    Ok(counts)
}
