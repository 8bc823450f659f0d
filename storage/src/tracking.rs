//! Order tracking timelines.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use zengine_domain::{Location, TenantId};

use super::{Database, now_millis};

/// One tracking event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackingEvent {
    pub event_id: String,
    pub order_id: String,
    pub status: String,
    pub location: Option<Location>,
    pub occurred_at: i64,
}

/// What happened when recording an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    New,
    /// The same event id was recorded before (idempotent replay).
    Duplicate(TrackingEvent),
    /// An event of this order happened later than this one.
    OutOfOrder {
        latest: i64,
    },
}

pub struct TrackingRepo<'a> {
    pub(super) db: &'a Database,
}

fn from_row(row: &sqlx::any::AnyRow) -> TrackingEvent {
    let lat: Option<f64> = row.get(3);
    let lon: Option<f64> = row.get(4);
    TrackingEvent {
        event_id: row.get(0),
        order_id: row.get(1),
        status: row.get(2),
        location: lat.zip(lon).map(|(lat, lon)| Location { lat, lon }),
        occurred_at: row.get(5),
    }
}

impl TrackingRepo<'_> {
    /// Appends the event unless its id exists or a later event of the order exists.
    pub async fn record(
        &self,
        tenant_id: &TenantId,
        event: &TrackingEvent,
    ) -> anyhow::Result<Recorded> {
        // One order's events one at a time: the id check and the order check below read, then
        // the insert writes (a retry racing its first call hit the primary key: a 500).
        let mut tx = self
            .db
            .begin_serialised(tenant_id, &format!("tracking/{}", event.order_id))
            .await?;
        let existing = sqlx::query(
            "select event_id, order_id, status, lat, lon, occurred_at from tracking_event
             where tenant_id = $1 and event_id = $2",
        )
        .bind(tenant_id.as_str())
        .bind(&event.event_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            return Ok(Recorded::Duplicate(from_row(&row)));
        }
        let latest: Option<i64> = sqlx::query_scalar(
            "select max(occurred_at) from tracking_event where tenant_id = $1 and order_id = $2",
        )
        .bind(tenant_id.as_str())
        .bind(&event.order_id)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(latest) = latest.filter(|l| *l > event.occurred_at) {
            return Ok(Recorded::OutOfOrder { latest });
        }
        sqlx::query(
            "insert into tracking_event (tenant_id, event_id, order_id, status, lat, lon, occurred_at, received_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(tenant_id.as_str())
        .bind(&event.event_id)
        .bind(&event.order_id)
        .bind(&event.status)
        .bind(event.location.map(|l| l.lat))
        .bind(event.location.map(|l| l.lon))
        .bind(event.occurred_at)
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .context("Failed to record tracking event")?;
        tx.commit().await?;
        Ok(Recorded::New)
    }

    /// Removes an event (used when the order workflow refused the change it carried).
    pub async fn remove(&self, tenant_id: &TenantId, event_id: &str) -> anyhow::Result<()> {
        let mut tx = self.db.begin_write_for(tenant_id).await?;
        sqlx::query("delete from tracking_event where tenant_id = $1 and event_id = $2")
            .bind(tenant_id.as_str())
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The order's timeline, oldest first.
    pub async fn timeline(
        &self,
        tenant_id: &TenantId,
        order_id: &str,
    ) -> anyhow::Result<Vec<TrackingEvent>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(
            "select event_id, order_id, status, lat, lon, occurred_at from tracking_event
             where tenant_id = $1 and order_id = $2 order by occurred_at, received_at",
        )
        .bind(tenant_id.as_str())
        .bind(order_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.iter().map(from_row).collect())
    }
}
