//! The order workflow: one per order (`{tenant}/order/{order_id}`), on the `payments` queue.
//!
//! It owns the order's lifecycle — PENDING → PAID → PREPARING → DISPATCHED → DELIVERED, or
//! CANCELLED — and is moved by status changes from payments, tracking and operators through the
//! `ChangeStatus` update. Invalid transitions are rejected by the update's validator, so they
//! never reach the history. Each accepted change is written to the database by an activity
//! (compare-and-set, plus an `Order.StatusChanged` event) before the update answers.
//!
//! Since patch [`PATCH_STATUS_NOTIFY`], each change accepted through `ChangeStatus` (PAID,
//! PREPARING, DISPATCHED, DELIVERED, CANCELLED) is then told to the customer from the main
//! loop, in order: `OrderStatusNotice` picks the channel, address and text, and
//! `DeliverReply` on the `channels` queue sends it with the id
//! `{workflow id}/notify-{change number}` (one message per change, even across retries and
//! worker crashes); a failed send becomes a dead letter. A PAID that a payment workflow
//! signals is not notified here: the payment confirms itself to the customer.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, SyncWorkflowContext, WorkflowCancellationError, WorkflowContext,
    WorkflowContextView, WorkflowResult,
};
use zengine_activities::channels::{
    CIRCUIT_OPEN, ChannelActivities, DeadLetter, NOT_CONFIGURED, SECRET_MISSING, SEND_REJECTED,
};
use zengine_activities::orders::{OrderActivities, StatusChange, StatusNotice};
use zengine_domain::TenantId;
use zengine_domain::order::{OrderStatus, OrderType};

use crate::names::TENANT_ID;

/// Workflow type name (id `{tenant}/order/{order_id}`, queue `payments`; input [`OrderInput`]).
pub const WORKFLOW_TYPE: &str = "Order";
/// Update moving the order ([`ChangeStatus`] → [`OrderView`]); refused by its validator for a
/// transition the lifecycle forbids.
pub const UPDATE_CHANGE_STATUS: &str = "ChangeStatus";
/// Query returning [`OrderView`].
pub const QUERY_STATUS: &str = "Status";
/// Signal from a payment workflow that credited the order ([`PaymentAccepted`]).
pub const SIGNAL_PAYMENT_ACCEPTED: &str = "PaymentAccepted";
/// Patch: accepted status changes are notified to the customer.
pub const PATCH_STATUS_NOTIFY: &str = "order-status-notify";

/// Input of an order workflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderInput {
    pub tenant_id: TenantId,
    pub order_id: String,
    pub order_type: OrderType,
}

/// A requested status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeStatus {
    pub to: OrderStatus,
    /// `operator`, `payment`, `tracking`, …
    pub source: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A payment was credited to the order (which the payment already moved to PAID in the
/// database, in the same transaction as the payment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentAccepted {
    pub payment_id: String,
}

/// One accepted change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub source: String,
    pub reason: Option<String>,
}

/// Snapshot returned by the `Status` query and by `ChangeStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub order_id: String,
    pub status: OrderStatus,
    pub transitions: Vec<Transition>,
}

#[workflow]
pub struct OrderWorkflow {
    input: OrderInput,
    status: OrderStatus,
    transitions: Vec<Transition>,
    /// A change is being written; the next one waits.
    busy: bool,
    /// Accepted changes still to notify: (change number, new status), oldest first.
    notices: Vec<(usize, OrderStatus)>,
}

type HandlerError = Box<dyn std::error::Error + Send + Sync>;

#[workflow_methods]
impl OrderWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: OrderInput) -> Self {
        Self {
            input,
            status: OrderStatus::Pending,
            transitions: Vec::new(),
            busy: false,
            notices: Vec::new(),
        }
    }

    #[run(name = WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<OrderView> {
        let tenant = ctx.state(|s| s.input.tenant_id.to_string());
        ctx.upsert_search_attributes([TENANT_ID.value_set(tenant)]);
        if !ctx.patched(PATCH_STATUS_NOTIFY) {
            ctx.wait_condition(|s: &Self| s.status.is_final() && !s.busy)
                .await?;
            return Ok(ctx.state(Self::view));
        }
        loop {
            ctx.wait_condition(|s: &Self| {
                !s.notices.is_empty() || (s.status.is_final() && !s.busy)
            })
            .await?;
            let next = ctx.state_mut(|s| (!s.notices.is_empty()).then(|| s.notices.remove(0)));
            let Some((number, status)) = next else {
                return Ok(ctx.state(Self::view));
            };
            Self::notify(ctx, number, status).await;
        }
    }

    #[update_validator(change_status)]
    pub fn validate_change(
        &self,
        _ctx: &WorkflowContextView,
        change: &ChangeStatus,
    ) -> Result<(), HandlerError> {
        if !self.status.can_become(change.to, self.input.order_type) {
            return Err(format!("an order in {} cannot become {}", self.status, change.to).into());
        }
        if change.source.is_empty() || change.source.len() > 64 {
            return Err("source must be 1 to 64 characters".into());
        }
        Ok(())
    }

    /// Moves the order; answers with the new state once it is stored.
    #[update(name = UPDATE_CHANGE_STATUS)]
    pub async fn change_status(
        ctx: &mut WorkflowContext<Self>,
        change: ChangeStatus,
    ) -> Result<OrderView, HandlerError> {
        Self::begin(ctx).await?;
        // Re-check: an earlier change may have been applied while this one waited.
        let (from, order_type) = ctx.state(|s| (s.status, s.input.order_type));
        if !from.can_become(change.to, order_type) {
            ctx.state_mut(|s| s.busy = false);
            return Err(format!("an order in {from} cannot become {}", change.to).into());
        }
        let write = ctx.state(|s| StatusChange {
            tenant_id: s.input.tenant_id.clone(),
            order_id: s.input.order_id.clone(),
            from,
            to: change.to,
            source: change.source.clone(),
            reason: change.reason.clone(),
            event_id: format!(
                "{}/status-{}",
                crate::order::workflow_id(s),
                s.transitions.len() + 1
            ),
        });
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_millis(200))
                    .maximum_interval(Duration::from_secs(10))
                    .maximum_attempts(10)
                    .build(),
            )
            .build();
        let result = ctx
            .execute_activity(OrderActivities::set_status, write, options)
            .await;
        let view = ctx.state_mut(|s| {
            s.busy = false;
            if result.is_ok() {
                s.status = change.to;
                s.transitions.push(Transition {
                    from,
                    to: change.to,
                    source: change.source.clone(),
                    reason: change.reason.clone(),
                });
                s.notices.push((s.transitions.len(), change.to));
            }
            s.view()
        });
        result.map_err(|e| format!("the change could not be stored: {e}"))?;
        Ok(view)
    }

    /// Follows a payment that moved the order PENDING → PAID (the database write happened with
    /// the payment; this only updates the workflow's view). Ignored in any other status.
    #[signal(name = SIGNAL_PAYMENT_ACCEPTED)]
    pub fn payment_accepted(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        payment: PaymentAccepted,
    ) {
        if self.status == OrderStatus::Pending {
            self.status = OrderStatus::Paid;
            self.transitions.push(Transition {
                from: OrderStatus::Pending,
                to: OrderStatus::Paid,
                source: "payment".into(),
                reason: Some(payment.payment_id),
            });
        }
    }

    #[query(name = QUERY_STATUS)]
    pub fn status(&self, _ctx: &WorkflowContextView) -> OrderView {
        self.view()
    }
}

impl OrderWorkflow {
    fn view(&self) -> OrderView {
        OrderView {
            order_id: self.input.order_id.clone(),
            status: self.status,
            transitions: self.transitions.clone(),
        }
    }

    /// Tells the customer about change `number` (best effort: a message that cannot be sent
    /// becomes a dead letter; the order goes on).
    async fn notify(ctx: &mut WorkflowContext<Self>, number: usize, status: OrderStatus) {
        let notice = ctx.state(|s| StatusNotice {
            tenant_id: s.input.tenant_id.clone(),
            order_id: s.input.order_id.clone(),
            status,
            client_message_id: format!("{}/notify-{number}", workflow_id(s)),
        });
        let lookup = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_millis(500))
                    .maximum_attempts(5)
                    .build(),
            )
            .build();
        let Ok(Some(delivery)) = ctx
            .execute_activity(OrderActivities::status_notice, notice, lookup)
            .await
        else {
            return;
        };
        let queue = crate::names::sibling_queue(
            ctx.task_queue(),
            crate::names::queues::PAYMENTS,
            crate::names::queues::CHANNELS,
        );
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
            .task_queue(queue.clone())
            .heartbeat_timeout(Duration::from_secs(10))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_secs(1))
                    .backoff_coefficient(2.0)
                    .maximum_interval(Duration::from_secs(30))
                    .maximum_attempts(3)
                    .non_retryable_error_types([
                        SEND_REJECTED,
                        SECRET_MISSING,
                        NOT_CONFIGURED,
                        CIRCUIT_OPEN,
                    ])
                    .build(),
            )
            .build();
        let result = ctx
            .execute_activity(ChannelActivities::deliver, delivery.clone(), options)
            .await;
        if let Err(e) = result {
            let dead = DeadLetter {
                tenant_id: delivery.tenant_id,
                channel: delivery.channel,
                recipient: delivery.recipient,
                client_message_id: delivery.client_message_id,
                reply: delivery.reply,
                error: crate::failure_message(&e),
            };
            let record = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10))
                .task_queue(queue)
                .retry_policy(
                    RetryPolicy::builder()
                        .initial_interval(Duration::from_millis(500))
                        .maximum_attempts(5)
                        .build(),
                )
                .build();
            let _ = ctx
                .execute_activity(ChannelActivities::dead_letter, dead, record)
                .await;
        }
    }

    async fn begin(ctx: &mut WorkflowContext<Self>) -> Result<(), WorkflowCancellationError> {
        ctx.wait_condition(|s: &Self| !s.busy).await?;
        ctx.state_mut(|s| s.busy = true);
        Ok(())
    }
}

/// The workflow id of the order a workflow state belongs to.
fn workflow_id(s: &OrderWorkflow) -> String {
    zengine_domain::workflow_ids::order(&s.input.tenant_id, &s.input.order_id)
}
