//! Payments of orders (Yape / Plin receipts), uploaded receipt images and the tenant's payment
//! rules.
//!
//! Exactly-once money effects come from the schema, not from hope: a payment row per
//! `payment_id` (retries find it), a unique operation code per tenant (a code credits one
//! payment at most), and the order's PENDING → PAID move written in the same transaction as the
//! payment that causes it (compare-and-set).

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use zengine_domain::TenantId;
use zengine_domain::money::Cents;
use zengine_domain::order::OrderStatus;

use zengine_domain::payment::{PaymentStatus, Verdict};

use super::events::record_in;
use super::{Database, NewEvent, now_millis};

/// A stored payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub payment_id: String,
    pub order_id: String,
    pub status: PaymentStatus,
    /// The operation code read from the receipt.
    pub operation_code: Option<String>,
    pub amount: Option<Cents>,
    pub sender: Option<String>,
    pub reasons: Vec<String>,
    /// The extracted receipt fields (JSON), once read.
    pub extraction: Option<serde_json::Value>,
    /// OCR page text, for the person reviewing.
    pub raw_ocr: Option<String>,
    pub media_ref: String,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The result of reading a receipt, to store on the payment.
#[derive(Debug, Clone)]
pub struct Settlement<'a> {
    pub payment_id: &'a str,
    pub verdict: Verdict,
    pub reasons: &'a [String],
    pub operation_code: Option<&'a str>,
    pub amount: Option<Cents>,
    pub sender: Option<&'a str>,
    pub extraction: Option<&'a serde_json::Value>,
    pub raw_ocr: Option<&'a str>,
}

/// Why an operator's review was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("payment `{0}` does not exist")]
    NotFound(String),
    #[error("payment is {0}; only payments in MANUAL_REVIEW can be reviewed")]
    NotInReview(PaymentStatus),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A tenant's cloud OCR selection (`payment_settings.cloud_ocr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudOcrSettings {
    /// `google-vision`.
    pub provider: String,
    /// Secret reference (`env:NAME`, `file:/path`) of the API key.
    pub api_key: String,
    /// Base URL (default `https://vision.googleapis.com`).
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// A tenant's payment rules (`tenant.payment_settings`, JSON; missing keys take the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentSettings {
    /// Largest accepted difference between receipt and order total, in cents (S/ 0.50).
    pub tolerance_cents: i64,
    /// Fields read with less confidence than this send the payment to manual review.
    pub min_confidence: f32,
    /// A payment nobody reviewed within this many seconds is escalated.
    pub review_timeout_secs: u64,
    /// The receipt may be dated this many minutes before the order was created (clock skew).
    pub window_slack_minutes: i64,
    /// Orders (and their payments and receipt images) older than this are purged.
    pub retention_days: u32,
    /// The merchant's account name as receipts show it (checked when present).
    pub merchant_name: Option<String>,
    /// Operators texted (SMS through the tenant's `sns-sms` account) when a payment waits for
    /// review longer than `review_timeout_secs`.
    pub operator_recipients: Vec<zengine_domain::phone::E164>,
    /// Read receipts with a cloud OCR provider instead of the local Tesseract engines
    /// (`{"provider": "google-vision", "api_key": "<secret ref>", "endpoint"?}`); off by default.
    pub cloud_ocr: Option<CloudOcrSettings>,
    /// Order status notifications to the customer.
    pub notifications: NotificationSettings,
}

/// How customers are told about their orders' status changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationSettings {
    pub enabled: bool,
    /// Language of customers who did not choose one (`es`, `en`).
    pub language: String,
    /// A template name (WhatsApp template, or an `ses-email` account's `templates` key) sent
    /// with parameters `[order number, status, customer name]` and the text as fallback;
    /// `None`: plain text. SMS always gets the text.
    pub template: Option<String>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            language: "es".into(),
            template: None,
        }
    }
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            tolerance_cents: 50,
            min_confidence: 0.8,
            review_timeout_secs: 30 * 60,
            window_slack_minutes: 10,
            retention_days: 30,
            merchant_name: None,
            notifications: NotificationSettings::default(),
            operator_recipients: Vec::new(),
            cloud_ocr: None,
        }
    }
}

/// Payment and media queries.
pub struct PaymentRepo<'a> {
    pub(super) db: &'a Database,
}

const PAYMENT_COLUMNS: &str = "payment_id, order_id, status, claimed_code, amount_cents, sender, \
     reasons, extraction, raw_ocr, media_ref, reviewed_by, reviewed_at, created_at, updated_at";

impl PaymentRepo<'_> {
    /// Creates a PENDING payment, or returns the existing one with this id (then `false`).
    pub async fn create(
        &self,
        tenant_id: &TenantId,
        payment_id: &str,
        order_id: &str,
        media_ref: &str,
    ) -> anyhow::Result<(Payment, bool)> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let now = now_millis();
        let done = sqlx::query(
            "insert into payment (tenant_id, payment_id, order_id, status, media_ref, created_at, updated_at)
             values ($1, $2, $3, 'PENDING', $4, $5, $5) on conflict (tenant_id, payment_id) do nothing",
        )
        .bind(tenant_id.as_str())
        .bind(payment_id)
        .bind(order_id)
        .bind(media_ref)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("Failed to create payment")?;
        let payment = fetch(&mut tx, tenant_id, payment_id)
            .await?
            .context("payment vanished after insert")?;
        tx.commit().await?;
        Ok((payment, done.rows_affected() == 1))
    }

    pub async fn get(
        &self,
        tenant_id: &TenantId,
        payment_id: &str,
    ) -> anyhow::Result<Option<Payment>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let payment = fetch(&mut tx, tenant_id, payment_id).await?;
        tx.commit().await?;
        Ok(payment)
    }

    /// The order's payments, oldest first.
    pub async fn list_for_order(
        &self,
        tenant_id: &TenantId,
        order_id: &str,
    ) -> anyhow::Result<Vec<Payment>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(&format!(
            "select {PAYMENT_COLUMNS} from payment where tenant_id = $1 and order_id = $2
             order by created_at, payment_id"
        ))
        .bind(tenant_id.as_str())
        .bind(order_id)
        .fetch_all(&mut *tx)
        .await
        .context("Failed to list payments")?;
        tx.commit().await?;
        rows.into_iter().map(payment_of).collect()
    }

    /// The tenant's payments in `status`, oldest first (a review queue), at most `limit`, after
    /// the `(created_at, payment_id)` cursor when one is given.
    pub async fn list_by_status(
        &self,
        tenant_id: &TenantId,
        status: PaymentStatus,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> anyhow::Result<Vec<Payment>> {
        let (after_at, after_id) = after.unwrap_or((i64::MIN, ""));
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(&format!(
            "select {PAYMENT_COLUMNS} from payment where tenant_id = $1 and status = $2
             and (created_at > $3 or (created_at = $3 and payment_id > $4))
             order by created_at, payment_id limit $5"
        ))
        .bind(tenant_id.as_str())
        .bind(status.as_str())
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .context("Failed to list payments by status")?;
        tx.commit().await?;
        rows.into_iter().map(payment_of).collect()
    }

    /// Stores what the receipt said and decides, in one transaction: a duplicate operation code
    /// → REJECTED; an accepted receipt → ASSIGNED and the order PENDING → PAID (if the order is
    /// no longer PENDING, MANUAL_REVIEW instead); otherwise MANUAL_REVIEW, reserving the code.
    /// A payment that was already settled is returned unchanged (activity retries).
    pub async fn settle(
        &self,
        tenant_id: &TenantId,
        s: &Settlement<'_>,
    ) -> anyhow::Result<Payment> {
        let mut tx = self.db.begin_write_for(tenant_id).await?;
        let current = fetch(&mut tx, tenant_id, s.payment_id)
            .await?
            .with_context(|| format!("payment `{}` does not exist", s.payment_id))?;
        if current.status != PaymentStatus::Pending {
            tx.commit().await?;
            return Ok(current);
        }
        let mut reasons = s.reasons.to_vec();
        let mut status = match s.verdict {
            Verdict::Accept => PaymentStatus::Assigned,
            Verdict::Review => PaymentStatus::ManualReview,
        };
        let mut reserve = s.operation_code;
        if let Some(code) = s.operation_code
            && let Some(other) = code_holder(&mut tx, tenant_id, code, s.payment_id).await?
        {
            status = PaymentStatus::Rejected;
            reasons = vec![format!(
                "duplicate: operation code {code} already paid payment {other}"
            )];
            reserve = None;
        }
        if status == PaymentStatus::Assigned {
            let paid = mark_order_paid(&mut tx, tenant_id, &current.order_id, s.payment_id).await?;
            if let Err(order_status) = paid {
                status = PaymentStatus::ManualReview;
                reasons.push(format!(
                    "the order was {order_status} when the payment arrived"
                ));
            }
        }
        let extraction = s.extraction.map(|v| v.to_string());
        sqlx::query(
            "update payment set status = $1, reasons = $2, claimed_code = $3, operation_code = $4,
                 amount_cents = $5, sender = $6, extraction = $7, raw_ocr = $8, updated_at = $9
             where tenant_id = $10 and payment_id = $11",
        )
        .bind(status.as_str())
        .bind(serde_json::to_string(&reasons)?)
        .bind(s.operation_code)
        .bind(reserve)
        .bind(s.amount.map(|c| c.0))
        .bind(s.sender)
        .bind(extraction)
        .bind(s.raw_ocr)
        .bind(now_millis())
        .bind(tenant_id.as_str())
        .bind(s.payment_id)
        .execute(&mut *tx)
        .await
        .context("Failed to settle payment")?;
        let event_type = match status {
            PaymentStatus::Assigned => zengine_domain::events::EventType::PaymentAssigned,
            PaymentStatus::Rejected => zengine_domain::events::EventType::PaymentRejected,
            _ => zengine_domain::events::EventType::PaymentManualReview,
        };
        record_in(
            &mut tx,
            NewEvent {
                event_id: &format!("payment/{}/settled", s.payment_id),
                tenant_id,
                event_type,
                subject: &current.order_id,
                payload: &serde_json::json!({
                    "payment_id": s.payment_id, "status": status, "reasons": reasons,
                    "amount": s.amount.map(|c| c.to_string()), "operation_code": s.operation_code,
                }),
            },
        )
        .await?;
        let payment = fetch(&mut tx, tenant_id, s.payment_id)
            .await?
            .context("payment vanished")?;
        tx.commit().await?;
        Ok(payment)
    }

    /// An operator's decision on a payment in MANUAL_REVIEW: approve → ASSIGNED and the order
    /// PAID (when it is still PENDING); reject → REJECTED, releasing the operation code.
    /// Repeating the decision that was already taken returns the payment unchanged.
    pub async fn review(
        &self,
        tenant_id: &TenantId,
        payment_id: &str,
        approve: bool,
        reviewer: &str,
        note: Option<&str>,
    ) -> Result<Payment, ReviewError> {
        let mut tx = self.db.begin_write_for(tenant_id).await?;
        let current = fetch(&mut tx, tenant_id, payment_id)
            .await?
            .ok_or_else(|| ReviewError::NotFound(payment_id.to_owned()))?;
        let target = if approve {
            PaymentStatus::Assigned
        } else {
            PaymentStatus::Rejected
        };
        if current.status == target && current.reviewed_by.as_deref() == Some(reviewer) {
            tx.commit().await.map_err(anyhow::Error::from)?;
            return Ok(current);
        }
        if current.status != PaymentStatus::ManualReview {
            return Err(ReviewError::NotInReview(current.status));
        }
        let mut reasons = current.reasons.clone();
        reasons.push(match (approve, note) {
            (true, Some(n)) => format!("approved by {reviewer}: {n}"),
            (true, None) => format!("approved by {reviewer}"),
            (false, Some(n)) => format!("rejected by {reviewer}: {n}"),
            (false, None) => format!("rejected by {reviewer}"),
        });
        if approve
            && let Err(order_status) =
                mark_order_paid(&mut tx, tenant_id, &current.order_id, payment_id).await?
        {
            reasons.push(format!(
                "the order was {order_status}; it was not moved to PAID"
            ));
        }
        let now = now_millis();
        sqlx::query(&format!(
            "update payment set status = $1, reasons = $2, reviewed_by = $3, reviewed_at = $4,
                 updated_at = $4{}
             where tenant_id = $5 and payment_id = $6",
            if approve {
                ""
            } else {
                ", operation_code = null"
            }
        ))
        .bind(target.as_str())
        .bind(serde_json::to_string(&reasons).map_err(anyhow::Error::from)?)
        .bind(reviewer)
        .bind(now)
        .bind(tenant_id.as_str())
        .bind(payment_id)
        .execute(&mut *tx)
        .await
        .context("Failed to review payment")?;
        record_in(
            &mut tx,
            NewEvent {
                event_id: &format!("payment/{payment_id}/reviewed"),
                tenant_id,
                event_type: zengine_domain::events::EventType::PaymentReviewed,
                subject: &current.order_id,
                payload: &serde_json::json!({
                    "payment_id": payment_id, "status": target, "reviewer": reviewer, "note": note,
                }),
            },
        )
        .await?;
        let payment = fetch(&mut tx, tenant_id, payment_id)
            .await?
            .context("payment vanished")?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok(payment)
    }

    /// The tenant's payment rules.
    pub async fn settings(&self, tenant_id: &TenantId) -> anyhow::Result<PaymentSettings> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let settings = settings_in(&mut tx, tenant_id).await?;
        tx.commit().await?;
        settings.with_context(|| format!("tenant `{tenant_id}` does not exist"))
    }

    /// Replaces the tenant's payment rules.
    pub async fn set_settings(
        &self,
        tenant_id: &TenantId,
        settings: &PaymentSettings,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        sqlx::query(
            "update tenant set payment_settings = $1, updated_at = $2 where tenant_id = $3",
        )
        .bind(serde_json::to_string(settings)?)
        .bind(now_millis())
        .bind(tenant_id.as_str())
        .execute(&mut *tx)
        .await
        .context("Failed to write payment settings")?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores an uploaded image; the same bytes for the same tenant are stored once. Returns
    /// the media id and the content's SHA-256 (hex).
    pub async fn put_media(
        &self,
        tenant_id: &TenantId,
        content_type: &str,
        content: &[u8],
    ) -> anyhow::Result<(String, String)> {
        let sha = hex::encode(Sha256::digest(content));
        let media_id = format!("med_{}", &sha[..32]);
        let mut tx = self.db.begin_for(tenant_id).await?;
        sqlx::query(
            "insert into media_upload (tenant_id, media_id, content_type, sha256, size_bytes, content, created_at)
             values ($1, $2, $3, $4, $5, $6, $7)
             on conflict (tenant_id, media_id) do update set created_at = excluded.created_at",
        )
        .bind(tenant_id.as_str())
        .bind(&media_id)
        .bind(content_type)
        .bind(&sha)
        .bind(content.len() as i64)
        .bind(content.to_vec())
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .context("Failed to store media")?;
        tx.commit().await?;
        Ok((media_id, sha))
    }

    /// An uploaded image: content type and bytes.
    pub async fn get_media(
        &self,
        tenant_id: &TenantId,
        media_id: &str,
    ) -> anyhow::Result<Option<(String, Vec<u8>)>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let row = sqlx::query(
            "select content_type, content from media_upload where tenant_id = $1 and media_id = $2",
        )
        .bind(tenant_id.as_str())
        .bind(media_id)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read media")?;
        tx.commit().await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }
}

async fn fetch(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    payment_id: &str,
) -> anyhow::Result<Option<Payment>> {
    sqlx::query(&format!(
        "select {PAYMENT_COLUMNS} from payment where tenant_id = $1 and payment_id = $2"
    ))
    .bind(tenant_id.as_str())
    .bind(payment_id)
    .fetch_optional(conn)
    .await
    .context("Failed to read payment")?
    .map(payment_of)
    .transpose()
}

fn payment_of(row: sqlx::any::AnyRow) -> anyhow::Result<Payment> {
    let status: String = row.get(2);
    let reasons: String = row.get(6);
    let extraction: Option<String> = row.get(7);
    Ok(Payment {
        payment_id: row.get(0),
        order_id: row.get(1),
        status: status.parse().map_err(anyhow::Error::msg)?,
        operation_code: row.get(3),
        amount: row.get::<Option<i64>, _>(4).map(Cents),
        sender: row.get(5),
        reasons: serde_json::from_str(&reasons).context("stored payment reasons")?,
        extraction: extraction
            .map(|e| serde_json::from_str(&e))
            .transpose()
            .context("stored payment extraction")?,
        raw_ocr: row.get(8),
        media_ref: row.get(9),
        reviewed_by: row.get(10),
        reviewed_at: row.get(11),
        created_at: row.get(12),
        updated_at: row.get(13),
    })
}

/// The other payment holding `code`, if any.
async fn code_holder(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    code: &str,
    payment_id: &str,
) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar(
        "select payment_id from payment
         where tenant_id = $1 and operation_code = $2 and payment_id <> $3",
    )
    .bind(tenant_id.as_str())
    .bind(code)
    .bind(payment_id)
    .fetch_optional(conn)
    .await
    .context("Failed to check the operation code")
}

/// Moves the order PENDING → PAID with its event; `Err(status)` when it is not PENDING.
async fn mark_order_paid(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    order_id: &str,
    payment_id: &str,
) -> anyhow::Result<Result<(), OrderStatus>> {
    let moved = sqlx::query(
        "update sales_order set status = 'PAID', updated_at = $1
         where tenant_id = $2 and order_id = $3 and status = 'PENDING'",
    )
    .bind(now_millis())
    .bind(tenant_id.as_str())
    .bind(order_id)
    .execute(&mut *conn)
    .await
    .context("Failed to mark the order paid")?;
    if moved.rows_affected() == 0 {
        let status: Option<String> = sqlx::query_scalar(
            "select status from sales_order where tenant_id = $1 and order_id = $2",
        )
        .bind(tenant_id.as_str())
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?;
        let status = status.with_context(|| format!("order `{order_id}` does not exist"))?;
        return Ok(Err(status.parse().map_err(anyhow::Error::msg)?));
    }
    record_in(
        conn,
        NewEvent {
            event_id: &format!("order/{order_id}/paid"),
            tenant_id,
            event_type: zengine_domain::events::EventType::OrderStatusChanged,
            subject: order_id,
            payload: &serde_json::json!({
                "from": "PENDING", "to": "PAID", "source": "payment", "reason": payment_id,
            }),
        },
    )
    .await?;
    Ok(Ok(()))
}

/// The tenant's payment rules as stored, in the caller's transaction (`None`: no such tenant).
pub(crate) async fn settings_in(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
) -> anyhow::Result<Option<PaymentSettings>> {
    let raw: Option<String> =
        sqlx::query_scalar("select payment_settings from tenant where tenant_id = $1")
            .bind(tenant_id.as_str())
            .fetch_optional(conn)
            .await
            .context("Failed to read payment settings")?;
    raw.map(|raw| serde_json::from_str(&raw))
        .transpose()
        .context("stored payment_settings is not valid")
}
