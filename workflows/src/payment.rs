//! The payment workflow: one per submitted receipt (`{tenant}/payment/{payment_id}`), on the
//! `payments` queue.
//!
//! 1. `PreparePayment`: the payment row (idempotent) and what it is checked against (order
//!    total and creation time, the tenant's tolerance and review time limit);
//! 2. `ReadReceipt` on the `ocr` queue: Tesseract reads the image into fields. A failure or a
//!    timeout sends the payment to manual review, it never blocks anything else;
//! 3. reconciliation, here and pure (`zengine_domain::receipt::reconcile`): amount within the
//!    tolerance, every key field read with confidence, receipt time inside the order's window;
//! 4. `SettlePayment`: in one database transaction, a duplicate operation code → REJECTED, an
//!    accepted receipt → ASSIGNED and the order PAID, anything doubtful → MANUAL_REVIEW;
//! 5. in MANUAL_REVIEW the workflow waits for the `Review` update (approve / reject, from
//!    `POST /v1/payments/{id}/review`); if nobody decides within the tenant's limit, it escalates
//!    once (`EscalatePayment`) and keeps waiting;
//! 6. once ASSIGNED, the order workflow is told with the `PaymentAccepted` signal.

use std::time::{Duration, UNIX_EPOCH};

use futures::future::Either;
use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, CancellableFuture, SignalWorkflowOptions, WorkflowCancellationError,
    WorkflowContext, WorkflowContextView, WorkflowResult,
};
use zengine_activities::payments::{
    EscalatePayment, OcrActivities, PaymentActivities, PaymentContext, PreparePayment, ReadReceipt,
    ReceiptReading, ReviewPayment, SettlePayment, UNREADABLE_RECEIPT,
};
use zengine_domain::TenantId;
use zengine_domain::payment::{PaymentStatus, PaymentUpdate, Verdict};
use zengine_domain::receipt::{Decision, Expected, ReceiptFields, ReconcileRules, reconcile};

// The conversation that started this payment is signalled with its typed handle (parent and
// child name each other; the signal's payload is the domain contract `PaymentUpdate`).
use crate::conversation::ConversationWorkflow;
use crate::names::{TENANT_ID, queues, sibling_queue};
use crate::order::{OrderWorkflow, PaymentAccepted};

/// Workflow type name (id [`workflow_id`], queue `payments`; input [`PaymentInput`]).
pub const WORKFLOW_TYPE: &str = "Payment";
/// Update carrying an operator's decision ([`Review`] → [`PaymentView`]); refused unless the
/// payment is in MANUAL_REVIEW.
pub const UPDATE_REVIEW: &str = "Review";
/// Query returning [`PaymentView`].
pub const QUERY_STATUS: &str = "Status";

/// Input of a payment workflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentInput {
    pub tenant_id: TenantId,
    pub payment_id: String,
    pub order_id: String,
    /// Where the receipt image is: `upload:<media_id>` (the upload store) or
    /// `whatsapp:<media_id>` (downloaded through the tenant's WhatsApp strategy by the OCR
    /// activity).
    pub media_ref: String,
    /// The conversation workflow that asked (`payment.verify`): it gets a `PaymentUpdate` signal
    /// with the first decision and with the final one after a review.
    #[serde(default)]
    pub notify: Option<String>,
}

/// An operator's decision (the `Review` update).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    pub approve: bool,
    pub reviewer: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// Snapshot returned by the `Status` query, the `Review` update and the workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentView {
    pub payment_id: String,
    pub order_id: String,
    pub status: PaymentStatus,
    pub reasons: Vec<String>,
    pub fields: Option<ReceiptFields>,
    pub escalated: bool,
}

#[workflow]
pub struct PaymentWorkflow {
    input: PaymentInput,
    status: PaymentStatus,
    reasons: Vec<String>,
    fields: Option<ReceiptFields>,
    escalated: bool,
    /// A review is being applied.
    busy: bool,
}

type HandlerError = Box<dyn std::error::Error + Send + Sync>;

fn db_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(15))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_millis(200))
                .maximum_interval(Duration::from_secs(30))
                .maximum_attempts(30)
                .non_retryable_error_types(["UnknownOrder", "ReviewRefused"])
                .build(),
        )
        .build()
}

#[workflow_methods]
impl PaymentWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: PaymentInput) -> Self {
        Self {
            input,
            status: PaymentStatus::Pending,
            reasons: Vec::new(),
            fields: None,
            escalated: false,
            busy: false,
        }
    }

    #[run(name = WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<PaymentView> {
        let input = ctx.state(|s| s.input.clone());
        ctx.upsert_search_attributes([TENANT_ID.value_set(input.tenant_id.to_string())]);
        let context = ctx
            .execute_activity(
                PaymentActivities::prepare,
                PreparePayment {
                    tenant_id: input.tenant_id.clone(),
                    payment_id: input.payment_id.clone(),
                    order_id: input.order_id.clone(),
                    media_ref: input.media_ref.clone(),
                },
                db_options(),
            )
            .await?;
        ctx.state_mut(|s| s.status = context.payment_status);

        if context.payment_status == PaymentStatus::Pending {
            let reading = Self::read(ctx, &input).await;
            let (verdict, reasons) = match &reading {
                Ok(reading) => Self::decide(ctx, &context, &reading.fields),
                Err(message) => (
                    Verdict::Review,
                    vec![format!("the receipt could not be read: {message}")],
                ),
            };
            let outcome = ctx
                .execute_activity(
                    PaymentActivities::settle,
                    SettlePayment {
                        tenant_id: input.tenant_id.clone(),
                        payment_id: input.payment_id.clone(),
                        verdict,
                        reasons,
                        reading: reading.as_ref().ok().cloned(),
                    },
                    db_options(),
                )
                .await?;
            ctx.state_mut(|s| {
                s.status = outcome.status;
                s.reasons = outcome.reasons;
                s.fields = reading.ok().map(|r| r.fields);
            });
        }

        Self::notify(ctx, &input).await;
        if ctx.state(|s| s.status == PaymentStatus::ManualReview) {
            Self::await_review(ctx, &input, context.settings.review_timeout_secs).await?;
            Self::notify(ctx, &input).await;
        }

        if ctx.state(|s| s.status == PaymentStatus::Assigned) {
            // Best effort: the order is PAID in the database already; this keeps the order
            // workflow's view in step (it may not run, e.g. for an order closed meanwhile).
            let _ = ctx
                .external_workflow(
                    zengine_domain::workflow_ids::order(&input.tenant_id, &input.order_id),
                    None,
                )
                .signal(
                    OrderWorkflow::payment_accepted,
                    PaymentAccepted {
                        payment_id: input.payment_id.clone(),
                    },
                    SignalWorkflowOptions::default(),
                )
                .await;
        }
        Ok(ctx.state(Self::view))
    }

    #[update_validator(review)]
    pub fn validate_review(
        &self,
        _ctx: &WorkflowContextView,
        review: &Review,
    ) -> Result<(), HandlerError> {
        // PENDING too: the database (and so the review queue) says MANUAL_REVIEW a moment
        // before this workflow has taken the verification's result in; the handler waits for it.
        let reviewable = matches!(
            self.status,
            PaymentStatus::ManualReview | PaymentStatus::Pending
        );
        if !reviewable || self.busy {
            return Err(format!(
                "payment is {}; only payments in MANUAL_REVIEW can be reviewed",
                self.status
            )
            .into());
        }
        if review.reviewer.trim().is_empty() || review.reviewer.len() > 64 {
            return Err("reviewer must be 1 to 64 characters".into());
        }
        if review.note.as_ref().is_some_and(|n| n.len() > 1000) {
            return Err("note must be at most 1000 characters".into());
        }
        Ok(())
    }

    /// An operator approves or rejects a payment in MANUAL_REVIEW; answers once it is stored.
    #[update(name = UPDATE_REVIEW)]
    pub async fn review(
        ctx: &mut WorkflowContext<Self>,
        review: Review,
    ) -> Result<PaymentView, HandlerError> {
        // (Histories from before this wait accepted reviews in MANUAL_REVIEW only, where it
        // returns at once without a command: replay is unchanged.)
        ctx.wait_condition(|s: &Self| s.status != PaymentStatus::Pending)
            .await?;
        Self::begin(ctx).await?;
        let status = ctx.state(|s| s.status);
        if status != PaymentStatus::ManualReview {
            ctx.state_mut(|s| s.busy = false);
            return Err(format!(
                "payment is {status}; only payments in MANUAL_REVIEW can be reviewed"
            )
            .into());
        }
        let request = ctx.state(|s| ReviewPayment {
            tenant_id: s.input.tenant_id.clone(),
            payment_id: s.input.payment_id.clone(),
            approve: review.approve,
            reviewer: review.reviewer.clone(),
            note: review.note.clone(),
        });
        let result = ctx
            .execute_activity(PaymentActivities::review, request, db_options())
            .await;
        let view = ctx.state_mut(|s| {
            s.busy = false;
            if let Ok(outcome) = &result {
                s.status = outcome.status;
                s.reasons = outcome.reasons.clone();
            }
            s.view()
        });
        result.map_err(|e| format!("the review could not be stored: {e}"))?;
        Ok(view)
    }

    #[query(name = QUERY_STATUS)]
    pub fn status(&self, _ctx: &WorkflowContextView) -> PaymentView {
        self.view()
    }
}

impl PaymentWorkflow {
    fn view(&self) -> PaymentView {
        PaymentView {
            payment_id: self.input.payment_id.clone(),
            order_id: self.input.order_id.clone(),
            status: self.status,
            reasons: self.reasons.clone(),
            fields: self.fields.clone(),
            escalated: self.escalated,
        }
    }

    async fn begin(ctx: &mut WorkflowContext<Self>) -> Result<(), WorkflowCancellationError> {
        ctx.wait_condition(|s: &Self| !s.busy).await?;
        ctx.state_mut(|s| s.busy = true);
        Ok(())
    }

    /// Tells the conversation that asked for this payment where it stands (best effort: a
    /// conversation that ended does not need to know).
    async fn notify(ctx: &mut WorkflowContext<Self>, input: &PaymentInput) {
        let Some(conversation) = input.notify.clone() else {
            return;
        };
        let update = ctx.state(|s| PaymentUpdate {
            payment_id: s.input.payment_id.clone(),
            order_id: s.input.order_id.clone(),
            status: s.status,
            reasons: s.reasons.clone(),
        });
        let _ = ctx
            .external_workflow(conversation, None)
            .signal(
                ConversationWorkflow::payment_update,
                update,
                SignalWorkflowOptions::default(),
            )
            .await;
    }

    /// OCR on the `ocr` queue; `Err` carries the reason for the reviewer.
    async fn read(
        ctx: &mut WorkflowContext<Self>,
        input: &PaymentInput,
    ) -> Result<ReceiptReading, String> {
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
            .task_queue(sibling_queue(
                ctx.task_queue(),
                queues::PAYMENTS,
                queues::OCR,
            ))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_secs(1))
                    .maximum_attempts(3)
                    .non_retryable_error_types([UNREADABLE_RECEIPT])
                    .build(),
            )
            .build();
        ctx.execute_activity(
            OcrActivities::read_receipt,
            ReadReceipt {
                tenant_id: input.tenant_id.clone(),
                media_ref: input.media_ref.clone(),
            },
            options,
        )
        .await
        .map_err(|e| crate::failure_message(&e))
    }

    /// Reconciles the receipt with the order (pure; the window ends at workflow time).
    fn decide(
        ctx: &WorkflowContext<Self>,
        context: &PaymentContext,
        fields: &ReceiptFields,
    ) -> (Verdict, Vec<String>) {
        let now_ms = ctx
            .workflow_time()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(context.order_created_at_ms, |d| d.as_millis() as i64);
        let slack_ms = context.settings.window_slack_minutes * 60_000;
        let expected = Expected {
            total: context.order_total,
            window_start_utc_ms: context.order_created_at_ms - slack_ms,
            window_end_utc_ms: now_ms + slack_ms,
            merchant_name: context.settings.merchant_name.as_deref(),
        };
        let rules = ReconcileRules {
            tolerance: zengine_domain::money::Cents(context.settings.tolerance_cents),
            min_confidence: context.settings.min_confidence,
        };
        match reconcile(fields, &expected, &rules) {
            Decision::Accept => (Verdict::Accept, Vec::new()),
            Decision::ManualReview { reasons } => (Verdict::Review, reasons),
        }
    }

    /// Waits for the operator's review; escalates once when it takes longer than the limit.
    async fn await_review(
        ctx: &mut WorkflowContext<Self>,
        input: &PaymentInput,
        timeout_secs: u64,
    ) -> Result<(), WorkflowCancellationError> {
        let decided = |s: &PaymentWorkflow| s.status != PaymentStatus::ManualReview && !s.busy;
        let timer = Box::pin(ctx.timer(Duration::from_secs(timeout_secs.max(1))));
        let review = Box::pin(ctx.wait_condition(decided));
        match futures::future::select(timer, review).await {
            Either::Right((reviewed, timer)) => {
                timer.cancel();
                return reviewed;
            }
            Either::Left(_) => {}
        }
        ctx.state_mut(|s| s.escalated = true);
        let _ = ctx
            .execute_activity(
                PaymentActivities::escalate,
                EscalatePayment {
                    tenant_id: input.tenant_id.clone(),
                    payment_id: input.payment_id.clone(),
                    order_id: input.order_id.clone(),
                    waited_secs: timeout_secs,
                },
                db_options(),
            )
            .await;
        ctx.wait_condition(decided).await
    }
}
