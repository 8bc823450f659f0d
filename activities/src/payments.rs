//! Payment verification activities: loading what a payment is checked against, reading the
//! receipt image (OCR, on the `ocr` task queue), settling the payment and operator reviews.
//!
//! The database does the exactly-once part (see `zengine_storage::payments`); these activities only carry
//! values between it, the OCR engine and the payment workflow.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use zengine_domain::TenantId;
use zengine_domain::money::Cents;
use zengine_domain::order::OrderStatus;
use zengine_domain::receipt::ReceiptFields;
pub use zengine_ocr::EnginePool;
use zengine_ocr::OcrError;

use zengine_channels::sdk::{DownloadedMedia, MediaLimits, SendError, StrategyEnv};
use zengine_channels::{InboundOptions, Registry};
use zengine_domain::payment::{PaymentStatus, Verdict};
use zengine_storage::{Database, NewEvent, PaymentSettings, ReviewError, Settlement};

/// Failure type of a receipt that cannot be read (bad image, unsupported reference): retrying
/// will not help, the payment goes to manual review.
pub const UNREADABLE_RECEIPT: &str = "UnreadableReceipt";

/// Raw OCR text kept on a payment for the reviewer, at most this many bytes.
const RAW_OCR_LIMIT: usize = 4_096;

/// Input of [`PaymentActivities::prepare`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreparePayment {
    pub tenant_id: TenantId,
    pub payment_id: String,
    pub order_id: String,
    pub media_ref: String,
}

/// What a payment is checked against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentContext {
    pub order_total: Cents,
    pub order_status: OrderStatus,
    pub order_created_at_ms: i64,
    pub settings: PaymentSettings,
    /// The payment's status when the workflow started (not PENDING: it was decided before).
    pub payment_status: PaymentStatus,
}

/// Input of [`OcrActivities::read_receipt`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadReceipt {
    pub tenant_id: TenantId,
    /// `upload:<media_id>` or `whatsapp:<media_id>`.
    pub media_ref: String,
}

/// What OCR read from a receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptReading {
    pub fields: ReceiptFields,
    /// The page text (truncated), kept for the reviewer.
    pub page_text: String,
    pub passes: Vec<String>,
    pub elapsed_ms: u64,
}

/// Input of [`PaymentActivities::settle`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettlePayment {
    pub tenant_id: TenantId,
    pub payment_id: String,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub reading: Option<ReceiptReading>,
}

/// Input of [`PaymentActivities::review`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewPayment {
    pub tenant_id: TenantId,
    pub payment_id: String,
    pub approve: bool,
    pub reviewer: String,
    pub note: Option<String>,
}

/// Input of [`PaymentActivities::escalate`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EscalatePayment {
    pub tenant_id: TenantId,
    pub payment_id: String,
    pub order_id: String,
    pub waited_secs: u64,
}

/// Where a payment ended up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentOutcome {
    pub status: PaymentStatus,
    pub reasons: Vec<String>,
}

fn non_retryable(type_name: &str, message: String) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(message)
            .type_name(type_name.to_owned())
            .non_retryable(true)
            .build(),
    )
}

/// Activities of the payment workflow (task queue `payments`).
pub struct PaymentActivities {
    db: Database,
    /// Texts operators on escalation (the same SMS path as assistance escalations).
    operators: crate::assistance::AssistanceActivities,
}

impl PaymentActivities {
    pub fn new(db: Database) -> Self {
        Self {
            operators: crate::assistance::AssistanceActivities::new(db.clone()),
            db,
        }
    }
}

#[activities]
impl PaymentActivities {
    /// Creates the payment (idempotent) and loads its order and the tenant's rules.
    #[activity(name = "PreparePayment")]
    pub async fn prepare(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: PreparePayment,
    ) -> Result<PaymentContext, ActivityError> {
        let order = self
            .db
            .orders()
            .get(&input.tenant_id, &input.order_id)
            .await?
            .ok_or_else(|| {
                non_retryable(
                    "UnknownOrder",
                    format!("order `{}` does not exist", input.order_id),
                )
            })?;
        let (payment, _) = self
            .db
            .payments()
            .create(
                &input.tenant_id,
                &input.payment_id,
                &input.order_id,
                &input.media_ref,
            )
            .await?;
        let settings = self.db.payments().settings(&input.tenant_id).await?;
        Ok(PaymentContext {
            order_total: order.total,
            order_status: order.status,
            order_created_at_ms: order.created_at,
            settings,
            payment_status: payment.status,
        })
    }

    /// Stores the reading and the verdict (duplicate codes rejected, order marked PAID), once.
    #[activity(name = "SettlePayment")]
    pub async fn settle(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: SettlePayment,
    ) -> Result<PaymentOutcome, ActivityError> {
        let fields = input.reading.as_ref().map(|r| &r.fields);
        let extraction = fields
            .map(serde_json::to_value)
            .transpose()
            .map_err(anyhow::Error::from)?;
        let payment = self
            .db
            .payments()
            .settle(
                &input.tenant_id,
                &Settlement {
                    payment_id: &input.payment_id,
                    verdict: input.verdict,
                    reasons: &input.reasons,
                    operation_code: fields.and_then(|f| f.operation_code.as_deref()),
                    amount: fields.and_then(|f| f.amount),
                    sender: fields.and_then(|f| f.counterparty.as_deref()),
                    extraction: extraction.as_ref(),
                    raw_ocr: input.reading.as_ref().map(|r| r.page_text.as_str()),
                },
            )
            .await?;
        Ok(PaymentOutcome {
            status: payment.status,
            reasons: payment.reasons,
        })
    }

    /// Applies an operator's approve / reject.
    #[activity(name = "ReviewPayment")]
    pub async fn review(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ReviewPayment,
    ) -> Result<PaymentOutcome, ActivityError> {
        let payment = self
            .db
            .payments()
            .review(
                &input.tenant_id,
                &input.payment_id,
                input.approve,
                &input.reviewer,
                input.note.as_deref(),
            )
            .await
            .map_err(|e| match e {
                ReviewError::Other(e) => ActivityError::from(e),
                other => non_retryable("ReviewRefused", other.to_string()),
            })?;
        Ok(PaymentOutcome {
            status: payment.status,
            reasons: payment.reasons,
        })
    }

    /// Nobody reviewed the payment in time: tell the operators — a `Payment.ReviewEscalated`
    /// event (recorded once) and an SMS to each of the tenant's `operator_recipients` (once per
    /// operator, through the outbound log; best effort: an unreachable SNS is retried, a refused
    /// number is reported and skipped).
    #[activity(name = "EscalatePayment")]
    pub async fn escalate(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: EscalatePayment,
    ) -> Result<(), ActivityError> {
        tracing::warn!(
            tenant_id = %input.tenant_id,
            payment_id = %input.payment_id,
            waited_secs = input.waited_secs,
            "Payment waiting for manual review too long; escalating"
        );
        let key = format!("payment/{}/escalated", input.payment_id);
        self.db
            .events()
            .record(NewEvent {
                event_id: &key,
                tenant_id: &input.tenant_id,
                event_type: zengine_domain::events::EventType::PaymentReviewEscalated,
                subject: &input.order_id,
                payload: &serde_json::json!({
                    "payment_id": input.payment_id, "waited_secs": input.waited_secs,
                }),
            })
            .await?;
        let settings = self.db.payments().settings(&input.tenant_id).await?;
        let order_number = self
            .db
            .orders()
            .get(&input.tenant_id, &input.order_id)
            .await?
            .map_or_else(|| input.order_id.clone(), |o| o.order_number.to_string());
        let text = format!(
            "ALERTA pago {} del pedido {}: espera revisión manual hace {} min.",
            input.payment_id,
            order_number,
            input.waited_secs.div_ceil(60)
        );
        let notified = self
            .operators
            .notify_operators(
                &input.tenant_id,
                &settings.operator_recipients,
                &crate::assistance::SmsOptions {
                    sms_type: "Transactional".into(),
                    sender_id: None,
                },
                &key,
                &text,
                ctx.info(),
            )
            .await?;
        if !notified.failed.is_empty() {
            tracing::warn!(
                payment_id = %input.payment_id,
                failed = ?notified.failed,
                "Some operators could not be told about the escalated payment"
            );
        }
        Ok(())
    }
}

/// OCR activities (task queue `ocr`): CPU bound, one engine per concurrent activity.
pub struct OcrActivities {
    db: Database,
    engines: Arc<EnginePool>,
    media: ReceiptMedia,
}

impl OcrActivities {
    pub fn new(db: Database, engines: Arc<EnginePool>) -> Self {
        Self {
            db,
            engines,
            media: ReceiptMedia::new(DEFAULT_MAX_RECEIPT_BYTES),
        }
    }

    /// Receipts downloaded from a channel may be at most this large (`worker.max_receipt_bytes`).
    pub fn with_max_receipt_bytes(mut self, max_bytes: u64) -> Self {
        self.media.limits = MediaLimits::receipt_images(max_bytes);
        self
    }

    /// Media downloads and cloud OCR calls go through the platform's outbound guard
    /// (`worker.outbound`; strict by default): tenants choose `api_base` and the OCR endpoint.
    pub fn with_outbound(mut self, guard: zengine_channels::outbound::OutboundGuard) -> Self {
        self.media.env = StrategyEnv::with_guard(guard);
        self
    }
}

/// Largest receipt image downloaded from a channel by default (10 MiB, like uploads).
pub const DEFAULT_MAX_RECEIPT_BYTES: u64 = 10 * 1024 * 1024;

/// How receipt images sent on a channel are fetched: through the tenant's channel strategy
/// (`whatsapp:<media id>` → the account serving the tenant's WhatsApp conversations).
pub struct ReceiptMedia {
    registry: Registry,
    env: StrategyEnv,
    limits: MediaLimits,
}

impl ReceiptMedia {
    pub fn new(max_bytes: u64) -> Self {
        Self {
            registry: Registry::standard(InboundOptions::default()),
            env: StrategyEnv::new(),
            limits: MediaLimits::receipt_images(max_bytes),
        }
    }

    /// Downloads a customer's media on `channel`: a refusal (unknown media, too large, not an
    /// image, hash mismatch, no account, missing secret) is final and sends the payment to
    /// review; an outage (429, 5xx, timeouts) is retried by the activity's policy.
    pub async fn download(
        &self,
        db: &Database,
        tenant_id: &TenantId,
        channel: &str,
        media_id: &str,
    ) -> Result<DownloadedMedia, ActivityError> {
        let accounts = db.channels().accounts(tenant_id).await?;
        let account = self
            .registry
            .for_channel(channel, &accounts)
            .ok_or_else(|| {
                non_retryable(
                    UNREADABLE_RECEIPT,
                    format!("the tenant has no {channel} account to download media from"),
                )
            })?;
        let strategy = self.registry.outbound(&account.strategy).ok_or_else(|| {
            non_retryable(
                UNREADABLE_RECEIPT,
                format!("unknown channel strategy `{}`", account.strategy),
            )
        })?;
        let connection = strategy
            .configure(account, &self.env)
            .map_err(|e| non_retryable(UNREADABLE_RECEIPT, e.to_string()))?;
        connection
            .download_media(media_id, &self.limits)
            .await
            .map_err(|e| match e {
                SendError::Rejected { message, .. } => non_retryable(UNREADABLE_RECEIPT, message),
                SendError::Retryable { message, .. } => anyhow::anyhow!(message).into(),
            })
    }
}

/// The page text kept for the reviewer: at most [`RAW_OCR_LIMIT`] bytes.
fn truncate_text(mut page_text: String) -> String {
    if page_text.len() > RAW_OCR_LIMIT {
        let mut cut = RAW_OCR_LIMIT;
        while !page_text.is_char_boundary(cut) {
            cut -= 1;
        }
        page_text.truncate(cut);
    }
    page_text
}

/// The bytes behind a media reference: `upload:<media_id>` (the upload store) or
/// `whatsapp:<media_id>` (downloaded through the tenant's WhatsApp strategy).
pub async fn load_media(
    db: &Database,
    media: &ReceiptMedia,
    tenant_id: &TenantId,
    media_ref: &str,
) -> Result<Vec<u8>, ActivityError> {
    match media_ref.split_once(':') {
        Some(("upload", media_id)) => match db.payments().get_media(tenant_id, media_id).await? {
            Some((_, bytes)) => Ok(bytes),
            None => Err(non_retryable(
                UNREADABLE_RECEIPT,
                format!("uploaded media `{media_id}` does not exist"),
            )),
        },
        Some(("whatsapp", media_id)) => Ok(media
            .download(db, tenant_id, "whatsapp", media_id)
            .await?
            .bytes),
        _ => Err(non_retryable(
            UNREADABLE_RECEIPT,
            format!(
                "unsupported media reference `{media_ref}` (expected upload:<media_id> or \
                 whatsapp:<media_id>)"
            ),
        )),
    }
}

#[activities]
impl OcrActivities {
    /// Reads a receipt image into its fields.
    #[activity(name = "ReadReceipt")]
    pub async fn read_receipt(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ReadReceipt,
    ) -> Result<ReceiptReading, ActivityError> {
        let bytes = load_media(&self.db, &self.media, &input.tenant_id, &input.media_ref).await?;
        let settings = self.db.payments().settings(&input.tenant_id).await?;
        if let Some(cloud) = settings.cloud_ocr {
            // The tenant chose a cloud provider: same result shape, same extraction.
            let started = std::time::Instant::now();
            let read =
                crate::vision::read(&self.media.env.http, &input.tenant_id, &cloud, &bytes).await;
            zengine_channels::meter::ocr_read(
                match &read {
                    Ok(_) => "read",
                    Err(crate::vision::VisionError::Unavailable(_)) => "engine_error",
                    Err(_) => "unreadable",
                },
                started.elapsed(),
            );
            return match read {
                Ok(r) => Ok(ReceiptReading {
                    fields: r.fields,
                    page_text: truncate_text(r.page_text),
                    passes: vec![format!("cloud:{}", cloud.provider)],
                    elapsed_ms: r.elapsed_ms,
                }),
                Err(crate::vision::VisionError::Refused(m)) => {
                    Err(non_retryable(UNREADABLE_RECEIPT, m))
                }
                Err(crate::vision::VisionError::Unavailable(m)) => Err(anyhow::anyhow!(m).into()),
            };
        }
        let engines = self.engines.clone();
        let started = std::time::Instant::now();
        let reading = tokio::task::spawn_blocking(move || engines.read(&bytes))
            .await
            .map_err(|e| anyhow::anyhow!("OCR task failed: {e}"))?;
        let elapsed = started.elapsed();
        tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, "Receipt read");
        zengine_channels::meter::ocr_read(
            match &reading {
                Ok(_) => "read",
                Err(OcrError::Init(_) | OcrError::Engine(_)) => "engine_error",
                Err(_) => "unreadable",
            },
            elapsed,
        );
        match reading {
            Ok(r) => Ok(ReceiptReading {
                fields: r.fields,
                page_text: truncate_text(r.page_text),
                passes: r.passes.into_iter().map(str::to_owned).collect(),
                elapsed_ms: r.elapsed_ms,
            }),
            Err(e @ (OcrError::Init(_) | OcrError::Engine(_))) => {
                Err(anyhow::Error::from(e).into())
            }
            Err(e) => Err(non_retryable(UNREADABLE_RECEIPT, e.to_string())),
        }
    }
}
