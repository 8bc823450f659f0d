//! Reporting read models: the projector turns domain events into `report_fact` rows (one per
//! event, keyed by its id, so a re-projected event counts once) and moves the tenant's cursor
//! in the same transaction; reports aggregate the facts of a date range.

use anyhow::Context;
use sqlx::Row;
use zengine_domain::TenantId;

use super::events::StoredEvent;
use super::{Database, now_millis};

/// A projected fact.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub event_id: String,
    pub report: &'static str,
    pub day: String,
    pub dimension: String,
    pub subject: String,
    pub value: f64,
    pub value2: f64,
    pub occurred_at: i64,
}

/// Events read per projector step.
const PAGE: i64 = 500;

/// The fact an event feeds, if any.
pub fn fact_of(event: &StoredEvent) -> Option<Fact> {
    let p = &event.payload;
    let text = |key: &str| p.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let number = |key: &str| p.get(key).and_then(serde_json::Value::as_f64);
    use zengine_domain::events::EventType as E;
    let (report, dimension, value, value2) = match event.event_type.parse::<E>().ok()? {
        E::ConversationMessageReceived => ("conversations", text("channel")?, 1.0, 0.0),
        E::ConversationHandedOff => ("handoffs", "handoff".to_owned(), 1.0, 0.0),
        E::ConversationReplySent => ("replies", text("channel")?, 1.0, 0.0),
        E::ConversationReturnedToBot => ("handoffs", "returned".to_owned(), 1.0, 0.0),
        E::ConversationSurveyCompleted => ("csat", "rating".to_owned(), number("rating")?, 0.0),
        E::OrderStatusChanged => ("orders", text("to")?, 1.0, 0.0),
        E::PaymentAssigned => ("payments", "auto_approved".to_owned(), 1.0, 0.0),
        E::PaymentManualReview => ("payments", "manual_review".to_owned(), 1.0, 0.0),
        E::PaymentRejected => ("payments", "rejected".to_owned(), 1.0, 0.0),
        E::PaymentReviewed => {
            let outcome = match text("status")?.as_str() {
                "ASSIGNED" => "review_approved",
                _ => "review_rejected",
            };
            ("payments", outcome.to_owned(), 1.0, 0.0)
        }
        E::DriverRouteAssigned => (
            "routes",
            event.subject.clone(),
            number("stops").unwrap_or(0.0),
            number("distance_m").unwrap_or(0.0),
        ),
        E::AssistanceStatusChanged => ("assistance", text("to")?, 1.0, 0.0),
        E::AssistanceProviderStartOverdue => ("assistance", "sla_breach".to_owned(), 1.0, 0.0),
        _ => return None,
    };
    let day = chrono::DateTime::from_timestamp_millis(event.occurred_at)?
        .format("%Y-%m-%d")
        .to_string();
    Some(Fact {
        event_id: event.event_id.clone(),
        report,
        day,
        dimension,
        subject: event.subject.clone(),
        value,
        value2,
        occurred_at: event.occurred_at,
    })
}

/// Report queries.
pub struct ReportRepo<'a> {
    pub(super) db: &'a Database,
}

impl ReportRepo<'_> {
    /// Projects the tenant's events after its cursor (events younger than `settle_ms` wait for
    /// the next call, see [`super::EventRepo::page`]); returns how many facts were new.
    pub async fn project(&self, tenant_id: &TenantId, settle_ms: i64) -> anyhow::Result<u64> {
        let mut added = 0;
        loop {
            let mut tx = self.db.begin_for(tenant_id).await?;
            let after: i64 =
                sqlx::query_scalar("select after_seq from report_cursor where tenant_id = $1")
                    .bind(tenant_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .context("Failed to read the report cursor")?
                    .unwrap_or(0);
            tx.commit().await?;
            let page = self
                .db
                .events()
                .page(tenant_id, after, PAGE, None, settle_ms)
                .await?;
            if page.events.is_empty() {
                return Ok(added);
            }
            let mut tx = self.db.begin_for(tenant_id).await?;
            // Moving the cursor only from where this step read it: a concurrent projector that
            // got there first makes this step roll back (and its facts are keyed by event id
            // anyway).
            let moved = if after == 0 {
                sqlx::query(
                    "insert into report_cursor (tenant_id, after_seq, updated_at) values ($1, $2, $3)
                     on conflict (tenant_id) do update set after_seq = excluded.after_seq,
                       updated_at = excluded.updated_at
                     where report_cursor.after_seq = 0",
                )
                .bind(tenant_id.as_str())
                .bind(page.next_after)
                .bind(now_millis())
                .execute(&mut *tx)
                .await
            } else {
                sqlx::query(
                    "update report_cursor set after_seq = $1, updated_at = $2
                     where tenant_id = $3 and after_seq = $4",
                )
                .bind(page.next_after)
                .bind(now_millis())
                .bind(tenant_id.as_str())
                .bind(after)
                .execute(&mut *tx)
                .await
            }
            .context("Failed to move the report cursor")?;
            if moved.rows_affected() == 0 {
                tx.rollback().await?;
                continue;
            }
            for fact in page.events.iter().filter_map(fact_of) {
                let done = sqlx::query(
                    "insert into report_fact (tenant_id, event_id, report, day, dimension, subject,
                                              value, value2, occurred_at)
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     on conflict (tenant_id, event_id) do nothing",
                )
                .bind(tenant_id.as_str())
                .bind(&fact.event_id)
                .bind(fact.report)
                .bind(&fact.day)
                .bind(&fact.dimension)
                .bind(&fact.subject)
                .bind(fact.value)
                .bind(fact.value2)
                .bind(fact.occurred_at)
                .execute(&mut *tx)
                .await
                .context("Failed to store a report fact")?;
                added += done.rows_affected();
            }
            tx.commit().await?;
        }
    }

    /// The facts of `report` from `from` to `to` (UTC days, inclusive), oldest first.
    pub async fn facts(
        &self,
        tenant_id: &TenantId,
        report: &str,
        from: &str,
        to: &str,
    ) -> anyhow::Result<Vec<Fact>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(
            "select event_id, day, dimension, subject, value, value2, occurred_at from report_fact
             where tenant_id = $1 and report = $2 and day >= $3 and day <= $4
             order by occurred_at, event_id",
        )
        .bind(tenant_id.as_str())
        .bind(report)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await
        .context("Failed to read report facts")?;
        tx.commit().await?;
        let report = REPORTS
            .iter()
            .find(|r| **r == report)
            .copied()
            .unwrap_or("unknown");
        Ok(rows
            .into_iter()
            .map(|row| Fact {
                event_id: row.get(0),
                report,
                day: row.get(1),
                dimension: row.get(2),
                subject: row.get(3),
                value: row.get(4),
                value2: row.get(5),
                occurred_at: row.get(6),
            })
            .collect())
    }
}

/// The reports facts are projected for.
pub const REPORTS: [&str; 8] = [
    "conversations",
    "replies",
    "handoffs",
    "csat",
    "orders",
    "payments",
    "routes",
    "assistance",
];
