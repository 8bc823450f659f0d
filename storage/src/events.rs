//! Domain events (`Conversation.MessageReceived`, `Conversation.SurveyCompleted`, …) and survey
//! answers. Writes are idempotent by key, so an activity retried after a crash records once.

use anyhow::Context;
use sqlx::Row;
use zengine_domain::TenantId;

use super::{Database, now_millis};

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub event_id: &'a str,
    pub tenant_id: &'a TenantId,
    pub event_type: zengine_domain::events::EventType,
    pub subject: &'a str,
    pub payload: &'a serde_json::Value,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event_id: String,
    pub event_type: String,
    pub subject: String,
    pub payload: serde_json::Value,
    pub occurred_at: i64,
    /// Position in the tenant's event stream (the `GET /v1/events` cursor).
    pub seq: i64,
}

/// A page of the event stream.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// Pass as `after` to read on; equals the request's `after` when nothing new is visible.
    pub next_after: i64,
}

/// An event read with the columns `event_id, event_type, subject, payload, occurred_at, seq`.
fn stored_event(row: sqlx::any::AnyRow) -> anyhow::Result<StoredEvent> {
    let payload: String = row.get(3);
    Ok(StoredEvent {
        event_id: row.get(0),
        event_type: row.get(1),
        subject: row.get(2),
        payload: serde_json::from_str(&payload)?,
        occurred_at: row.get(4),
        seq: row.get(5),
    })
}

/// Event and survey queries.
pub struct EventRepo<'a> {
    pub(super) db: &'a Database,
}

impl EventRepo<'_> {
    /// Records the event unless its id exists; returns whether it was new.
    pub async fn record(&self, event: NewEvent<'_>) -> anyhow::Result<bool> {
        let mut tx = self.db.begin_for(event.tenant_id).await?;
        let new = record_in(&mut tx, event).await?;
        tx.commit().await?;
        Ok(new)
    }

    /// The tenant's events of a type, oldest first.
    pub async fn list(
        &self,
        tenant_id: &TenantId,
        event_type: &str,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(
            "select event_id, event_type, subject, payload, occurred_at, seq from domain_event
             where tenant_id = $1 and event_type = $2 order by occurred_at, event_id",
        )
        .bind(tenant_id.as_str())
        .bind(event_type)
        .fetch_all(&mut *tx)
        .await
        .context("Failed to list domain events")?;
        tx.commit().await?;
        rows.into_iter().map(stored_event).collect()
    }

    /// The tenant's newest events of a type, newest first, at most `limit`.
    pub async fn recent(
        &self,
        tenant_id: &TenantId,
        event_type: &str,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(
            "select event_id, event_type, subject, payload, occurred_at, seq from domain_event
             where tenant_id = $1 and event_type = $2
             order by occurred_at desc, event_id desc limit $3",
        )
        .bind(tenant_id.as_str())
        .bind(event_type)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .context("Failed to list recent domain events")?;
        tx.commit().await?;
        rows.into_iter().map(stored_event).collect()
    }

    /// The tenant's events after `after` in stream order, at most `limit`, optionally of one
    /// type. Events younger than `settle_ms` are held back: a transaction that took its
    /// sequence number earlier may still be committing, and a reader that moved its cursor past
    /// it would never see it. Consumers dedupe by `event_id` (delivery is at least once).
    pub async fn page(
        &self,
        tenant_id: &TenantId,
        after: i64,
        limit: i64,
        event_type: Option<&str>,
        settle_ms: i64,
    ) -> anyhow::Result<EventPage> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let visible_before = now_millis() - settle_ms;
        let rows = sqlx::query(
            "select event_id, event_type, subject, payload, occurred_at, seq from domain_event
             where tenant_id = $1 and seq > $2 and ($3 = '' or event_type = $3)
             order by seq limit $4",
        )
        .bind(tenant_id.as_str())
        .bind(after)
        .bind(event_type.unwrap_or(""))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .context("Failed to page domain events")?;
        tx.commit().await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let occurred_at: i64 = row.get(4);
            if occurred_at > visible_before {
                // Stop at the first unsettled event so the cursor never skips one.
                break;
            }
            events.push(stored_event(row)?);
        }
        let next_after = events.last().map_or(after, |e| e.seq);
        Ok(EventPage { events, next_after })
    }

    /// Stores a survey answer unless `survey_key` exists; returns whether it was new.
    pub async fn record_survey(
        &self,
        tenant_id: &TenantId,
        survey_key: &str,
        conversation_id: &str,
        rating: u8,
        comment: Option<&str>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let done = sqlx::query(
            "insert into survey_response (tenant_id, survey_key, conversation_id, rating, comment, created_at)
             values ($1, $2, $3, $4, $5, $6) on conflict (tenant_id, survey_key) do nothing",
        )
        .bind(tenant_id.as_str())
        .bind(survey_key)
        .bind(conversation_id)
        .bind(i64::from(rating))
        .bind(comment)
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .context("Failed to record survey answer")?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Number of survey answers and their mean rating for a tenant.
    pub async fn survey_summary(&self, tenant_id: &TenantId) -> anyhow::Result<(i64, Option<f64>)> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let row = sqlx::query(
            "select count(*), avg(cast(rating as double precision)) from survey_response where tenant_id = $1",
        )
        .bind(tenant_id.as_str())
        .fetch_one(&mut *tx)
        .await
        .context("Failed to summarise surveys")?;
        tx.commit().await?;
        Ok((row.get(0), row.get(1)))
    }
}

/// Records an event inside the caller's transaction (so it commits with the change it
/// describes); returns whether it was new.
pub(super) async fn record_in(
    conn: &mut sqlx::AnyConnection,
    event: NewEvent<'_>,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "insert into domain_event (event_id, tenant_id, event_type, subject, payload, occurred_at)
         values ($1, $2, $3, $4, $5, $6) on conflict (event_id) do nothing",
    )
    .bind(event.event_id)
    .bind(event.tenant_id.as_str())
    .bind(event.event_type.as_str())
    .bind(event.subject)
    .bind(event.payload.to_string())
    .bind(now_millis())
    .execute(conn)
    .await
    .context("Failed to record domain event")?;
    Ok(done.rows_affected() == 1)
}
