//! The assistance event workflow: one per event (`{tenant}/assistance/{event_id}`), on the
//! `assistance` queue, from the draft until CLOSED or CANCELLED.
//!
//! - Operators move the event with updates (`ChangeStatus`, `AssignProvider`, `StartProvider`,
//!   `ResolveProvider`). Each validator checks the state machine of
//!   `zengine_domain::assistance`, so a refused change never reaches the history; an accepted
//!   one is written by an activity (compare-and-set in the database, once per change id) before
//!   the update answers.
//! - Changes made elsewhere (the MOK tracking workflow writes the database itself) arrive as the
//!   `StatusChanged` signal, which only updates this workflow's view.
//! - SLA: a provider still ASSIGNED `provider_start_sla_secs` after its assignment (tenant
//!   setting, carried in the input) is escalated once: an `Assistance.ProviderStartOverdue`
//!   event and an SMS to the tenant's operators.
//! - The `State` query returns the current view.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::Either;
use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, CancellableFuture, SyncWorkflowContext, WorkflowCancellationError,
    WorkflowContext, WorkflowContextView, WorkflowResult,
};
use zengine_activities::assistance::{
    ASSISTANCE_REFUSED, AssistanceActivities, ChangeEventStatus, EscalateProvider, ProviderAction,
    SMS_NOT_CONFIGURED, SMS_REJECTED, SmsOptions,
};
use zengine_domain::TenantId;
use zengine_domain::assistance::{
    AssistanceSettings, EventStatus, ProviderStatus, on_assign, on_resolve, on_start,
};
use zengine_domain::assistance::{ProviderOutcome, ProviderWrite, StatusWrite, event_provider_id};

use crate::names::TENANT_ID;

pub const WORKFLOW_TYPE: &str = "AssistanceEvent";
pub const UPDATE_CHANGE_STATUS: &str = "ChangeStatus";
pub const UPDATE_ASSIGN_PROVIDER: &str = "AssignProvider";
pub const UPDATE_START_PROVIDER: &str = "StartProvider";
pub const UPDATE_RESOLVE_PROVIDER: &str = "ResolveProvider";
pub const SIGNAL_STATUS_CHANGED: &str = "StatusChanged";
pub const QUERY_STATE: &str = "State";

/// Input of an assistance event workflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssistanceInput {
    pub tenant_id: TenantId,
    pub event_id: String,
    /// The tenant's rules when the event was created (SLA, operators, SMS options).
    pub settings: AssistanceSettings,
}

/// An operator's status change (`ChangeStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    pub to: EventStatus,
    /// Who asks (operator id, `api`, …).
    pub actor: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A provider action (`AssignProvider`, `StartProvider`, `ResolveProvider`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderRequest {
    pub provider_id: String,
    pub actor: String,
    /// Resolution text (resolve only).
    #[serde(default)]
    pub note: Option<String>,
}

/// A change already written to the database by someone else (the MOK workflow).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChanged {
    pub event_status: EventStatus,
    pub provider_id: Option<String>,
    pub provider_status: Option<ProviderStatus>,
    pub source: String,
}

/// A provider as the workflow sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderView {
    pub event_provider_id: String,
    pub provider_id: String,
    pub status: ProviderStatus,
    /// Workflow time of the assignment (ms since the epoch): the start SLA counts from it.
    pub assigned_at_ms: i64,
    /// The start SLA passed and operators were told.
    pub escalated: bool,
}

/// One status change the workflow applied or followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: EventStatus,
    pub to: EventStatus,
    pub source: String,
}

/// Snapshot returned by the `State` query, the updates and the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistanceView {
    pub event_id: String,
    pub status: EventStatus,
    pub providers: Vec<ProviderView>,
    pub transitions: Vec<Transition>,
    /// Providers escalated for not starting in time.
    pub escalations: u32,
}

#[workflow]
pub struct AssistanceWorkflow {
    input: AssistanceInput,
    status: EventStatus,
    providers: Vec<ProviderView>,
    transitions: Vec<Transition>,
    escalations: u32,
    /// Writes made through this workflow; the next change id is `{workflow id}/change-{n+1}`.
    writes: u32,
    /// An update is being written; the next one waits.
    busy: bool,
    /// Bumped on every state change, so the run loop re-plans its SLA timer.
    version: u64,
}

type HandlerError = Box<dyn std::error::Error + Send + Sync>;

fn db_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(15))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_millis(200))
                .maximum_interval(Duration::from_secs(10))
                .maximum_attempts(10)
                .non_retryable_error_types([ASSISTANCE_REFUSED])
                .build(),
        )
        .build()
}

fn now_ms(time: Option<SystemTime>) -> i64 {
    time.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

#[workflow_methods]
impl AssistanceWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: AssistanceInput) -> Self {
        Self {
            input,
            status: EventStatus::Draft,
            providers: Vec::new(),
            transitions: Vec::new(),
            escalations: 0,
            writes: 0,
            busy: false,
            version: 0,
        }
    }

    #[run(name = WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<AssistanceView> {
        let tenant = ctx.state(|s| s.input.tenant_id.to_string());
        ctx.upsert_search_attributes([TENANT_ID.value_set(tenant)]);
        let sla_ms = ctx.state(|s| s.input.settings.provider_start_sla_secs.max(1) as i64 * 1000);
        loop {
            if ctx.state(|s| s.status.is_final() && !s.busy) {
                break;
            }
            let seen = ctx.state(|s| s.version);
            let now = now_ms(ctx.workflow_time());
            let next_due = ctx.state(|s| {
                s.providers
                    .iter()
                    .filter(|p| p.status == ProviderStatus::Assigned && !p.escalated)
                    .map(|p| p.assigned_at_ms + sla_ms)
                    .min()
            });
            let changed = move |s: &Self| s.version != seen || (s.status.is_final() && !s.busy);
            match next_due {
                None => ctx.wait_condition(changed).await?,
                Some(due) if due <= now => Self::escalate_overdue(ctx, now, sla_ms).await,
                Some(due) => {
                    let timer = Box::pin(ctx.timer(Duration::from_millis((due - now) as u64)));
                    let change = Box::pin(ctx.wait_condition(changed));
                    match futures::future::select(timer, change).await {
                        Either::Left(_) => {}
                        Either::Right((result, timer)) => {
                            timer.cancel();
                            result?;
                        }
                    }
                }
            }
        }
        Ok(ctx.state(Self::view))
    }

    #[update_validator(change_status)]
    pub fn validate_change(
        &self,
        _ctx: &WorkflowContextView,
        request: &StatusRequest,
    ) -> Result<(), HandlerError> {
        check_actor(&request.actor)?;
        self.status.check_manual(request.to)?;
        if request.to == EventStatus::Resolved && !self.providers.is_empty() {
            return Err("an event providers worked on is resolved by its providers".into());
        }
        if request
            .reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > 1000)
        {
            return Err("reason must be at most 1000 characters".into());
        }
        Ok(())
    }

    /// An operator moves the event; answers with the new state once it is stored.
    #[update(name = UPDATE_CHANGE_STATUS)]
    pub async fn change_status(
        ctx: &mut WorkflowContext<Self>,
        request: StatusRequest,
    ) -> Result<AssistanceView, HandlerError> {
        Self::begin(ctx).await?;
        // Re-check: an earlier change may have been applied while this one waited.
        if let Err(e) = ctx.state(|s| s.status.check_manual(request.to)) {
            ctx.state_mut(|s| s.busy = false);
            return Err(e.into());
        }
        let write = ctx.state_mut(|s| {
            s.writes += 1;
            ChangeEventStatus {
                tenant_id: s.input.tenant_id.clone(),
                write: StatusWrite {
                    change_id: s.change_id(),
                    event_id: s.input.event_id.clone(),
                    to: request.to,
                    source: request.actor.clone(),
                    reason: request.reason.clone(),
                },
            }
        });
        let result = ctx
            .execute_activity(AssistanceActivities::change_status, write, db_options())
            .await;
        let view = ctx.state_mut(|s| {
            s.busy = false;
            s.version += 1;
            if let Ok(outcome) = &result {
                s.follow(outcome.to, &request.actor);
                for id in &outcome.cancelled_providers {
                    if let Some(p) = s.providers.iter_mut().find(|p| &p.event_provider_id == id) {
                        p.status = ProviderStatus::Cancelled;
                    }
                }
            }
            s.view()
        });
        result.map_err(|e| crate::failure_message(&e))?;
        Ok(view)
    }

    #[update_validator(assign_provider)]
    pub fn validate_assign(
        &self,
        _ctx: &WorkflowContextView,
        request: &ProviderRequest,
    ) -> Result<(), HandlerError> {
        check_actor(&request.actor)?;
        check_provider_id(&request.provider_id)?;
        on_assign(self.status)?;
        if self.provider(&request.provider_id).is_some() {
            return Err(format!("provider `{}` is already assigned", request.provider_id).into());
        }
        Ok(())
    }

    /// Assigns a provider; its start SLA begins now.
    #[update(name = UPDATE_ASSIGN_PROVIDER)]
    pub async fn assign_provider(
        ctx: &mut WorkflowContext<Self>,
        request: ProviderRequest,
    ) -> Result<AssistanceView, HandlerError> {
        Self::provider_step(ctx, ProviderStep::Assign, request).await
    }

    #[update_validator(start_provider)]
    pub fn validate_start(
        &self,
        _ctx: &WorkflowContextView,
        request: &ProviderRequest,
    ) -> Result<(), HandlerError> {
        check_actor(&request.actor)?;
        let provider = self.assigned(&request.provider_id)?;
        on_start(self.status, provider.status)?;
        Ok(())
    }

    /// The provider starts working (its SLA is met).
    #[update(name = UPDATE_START_PROVIDER)]
    pub async fn start_provider(
        ctx: &mut WorkflowContext<Self>,
        request: ProviderRequest,
    ) -> Result<AssistanceView, HandlerError> {
        Self::provider_step(ctx, ProviderStep::Start, request).await
    }

    #[update_validator(resolve_provider)]
    pub fn validate_resolve(
        &self,
        _ctx: &WorkflowContextView,
        request: &ProviderRequest,
    ) -> Result<(), HandlerError> {
        check_actor(&request.actor)?;
        let provider = self.assigned(&request.provider_id)?;
        on_resolve(
            self.status,
            provider.status,
            self.others_active(&request.provider_id),
        )?;
        if request
            .note
            .as_ref()
            .is_some_and(|n| n.chars().count() > 2000)
        {
            return Err("note must be at most 2000 characters".into());
        }
        Ok(())
    }

    /// The provider finishes its part; the event is RESOLVED when no provider is left active.
    #[update(name = UPDATE_RESOLVE_PROVIDER)]
    pub async fn resolve_provider(
        ctx: &mut WorkflowContext<Self>,
        request: ProviderRequest,
    ) -> Result<AssistanceView, HandlerError> {
        Self::provider_step(ctx, ProviderStep::Resolve, request).await
    }

    /// Follows a change another workflow already stored (MOK tracking).
    #[signal(name = SIGNAL_STATUS_CHANGED)]
    pub fn status_changed(&mut self, ctx: &mut SyncWorkflowContext<Self>, change: StatusChanged) {
        let now = now_ms(ctx.workflow_time());
        self.follow(change.event_status, &change.source);
        if let (Some(provider_id), Some(status)) = (change.provider_id, change.provider_status) {
            self.apply_provider(&provider_id, status, now);
        }
        self.version += 1;
    }

    #[query(name = QUERY_STATE)]
    pub fn state(&self, _ctx: &WorkflowContextView) -> AssistanceView {
        self.view()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProviderStep {
    Assign,
    Start,
    Resolve,
}

fn check_actor(actor: &str) -> Result<(), HandlerError> {
    if actor.trim().is_empty() || actor.chars().count() > 64 {
        return Err("actor must be 1 to 64 characters".into());
    }
    Ok(())
}

fn check_provider_id(id: &str) -> Result<(), HandlerError> {
    if id.is_empty() || id.len() > 64 {
        return Err("provider_id must be 1 to 64 characters".into());
    }
    Ok(())
}

impl AssistanceWorkflow {
    fn view(&self) -> AssistanceView {
        AssistanceView {
            event_id: self.input.event_id.clone(),
            status: self.status,
            providers: self.providers.clone(),
            transitions: self.transitions.clone(),
            escalations: self.escalations,
        }
    }

    fn change_id(&self) -> String {
        format!(
            "{}/change-{}",
            zengine_domain::workflow_ids::assistance(&self.input.tenant_id, &self.input.event_id),
            self.writes
        )
    }

    fn provider(&self, provider_id: &str) -> Option<&ProviderView> {
        self.providers.iter().find(|p| p.provider_id == provider_id)
    }

    fn assigned(&self, provider_id: &str) -> Result<&ProviderView, HandlerError> {
        self.provider(provider_id)
            .ok_or_else(|| format!("provider `{provider_id}` is not assigned to this event").into())
    }

    fn others_active(&self, provider_id: &str) -> bool {
        self.providers
            .iter()
            .any(|p| p.provider_id != provider_id && p.status.is_active())
    }

    /// Records a move of the event (no-op when it is already there).
    fn follow(&mut self, to: EventStatus, source: &str) {
        if to != self.status {
            self.transitions.push(Transition {
                from: self.status,
                to,
                source: source.to_owned(),
            });
            self.status = to;
        }
    }

    fn apply_provider(&mut self, provider_id: &str, status: ProviderStatus, now_ms: i64) {
        match self
            .providers
            .iter_mut()
            .find(|p| p.provider_id == provider_id)
        {
            Some(p) => p.status = status,
            None => self.providers.push(ProviderView {
                event_provider_id: event_provider_id(&self.input.event_id, provider_id),
                provider_id: provider_id.to_owned(),
                status,
                assigned_at_ms: now_ms,
                escalated: false,
            }),
        }
    }

    async fn begin(ctx: &mut WorkflowContext<Self>) -> Result<(), WorkflowCancellationError> {
        ctx.wait_condition(|s: &Self| !s.busy).await?;
        ctx.state_mut(|s| s.busy = true);
        Ok(())
    }

    async fn provider_step(
        ctx: &mut WorkflowContext<Self>,
        step: ProviderStep,
        request: ProviderRequest,
    ) -> Result<AssistanceView, HandlerError> {
        Self::begin(ctx).await?;
        let recheck = ctx.state(|s| -> Result<(), HandlerError> {
            match step {
                ProviderStep::Assign => {
                    on_assign(s.status)?;
                    if s.provider(&request.provider_id).is_some() {
                        return Err(format!(
                            "provider `{}` is already assigned",
                            request.provider_id
                        )
                        .into());
                    }
                }
                ProviderStep::Start => {
                    on_start(s.status, s.assigned(&request.provider_id)?.status)?;
                }
                ProviderStep::Resolve => {
                    let p = s.assigned(&request.provider_id)?;
                    on_resolve(s.status, p.status, s.others_active(&request.provider_id))?;
                }
            }
            Ok(())
        });
        if let Err(e) = recheck {
            ctx.state_mut(|s| s.busy = false);
            return Err(e);
        }
        let action = ctx.state_mut(|s| {
            s.writes += 1;
            ProviderAction {
                tenant_id: s.input.tenant_id.clone(),
                write: ProviderWrite {
                    change_id: s.change_id(),
                    event_id: s.input.event_id.clone(),
                    provider_id: request.provider_id.clone(),
                    source: "api".into(),
                    note: request.note.clone(),
                },
            }
        });
        let result: Result<ProviderOutcome, _> = match step {
            ProviderStep::Assign => {
                ctx.execute_activity(AssistanceActivities::assign_provider, action, db_options())
                    .await
            }
            ProviderStep::Start => {
                ctx.execute_activity(AssistanceActivities::start_provider, action, db_options())
                    .await
            }
            ProviderStep::Resolve => {
                ctx.execute_activity(AssistanceActivities::resolve_provider, action, db_options())
                    .await
            }
        };
        let now = now_ms(ctx.workflow_time());
        let view = ctx.state_mut(|s| {
            s.busy = false;
            s.version += 1;
            if let Ok(outcome) = &result {
                s.follow(outcome.event_status, &request.actor);
                s.apply_provider(&outcome.provider.provider_id, outcome.provider.status, now);
            }
            s.view()
        });
        result.map_err(|e| crate::failure_message(&e))?;
        Ok(view)
    }

    /// Escalates every provider whose start SLA has passed, once each.
    async fn escalate_overdue(ctx: &mut WorkflowContext<Self>, now: i64, sla_ms: i64) {
        let overdue: Vec<ProviderView> = ctx.state(|s| {
            s.providers
                .iter()
                .filter(|p| {
                    p.status == ProviderStatus::Assigned
                        && !p.escalated
                        && p.assigned_at_ms + sla_ms <= now
                })
                .cloned()
                .collect()
        });
        for provider in overdue {
            let input = ctx.state(|s| EscalateProvider {
                tenant_id: s.input.tenant_id.clone(),
                workflow_id: zengine_domain::workflow_ids::assistance(
                    &s.input.tenant_id,
                    &s.input.event_id,
                ),
                event_id: s.input.event_id.clone(),
                event_provider_id: provider.event_provider_id.clone(),
                provider_id: provider.provider_id.clone(),
                waited_secs: ((now - provider.assigned_at_ms) / 1000) as u64,
                operators: s.input.settings.operator_recipients.clone(),
                sms: SmsOptions {
                    sms_type: s.input.settings.sms_type.clone(),
                    sender_id: s.input.settings.sender_id.clone(),
                },
            });
            let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
                .retry_policy(
                    RetryPolicy::builder()
                        .initial_interval(Duration::from_secs(1))
                        .backoff_coefficient(2.0)
                        .maximum_interval(Duration::from_secs(30))
                        .maximum_attempts(5)
                        .non_retryable_error_types([SMS_REJECTED, SMS_NOT_CONFIGURED])
                        .build(),
                )
                .build();
            // A failed escalation is not retried forever: the event is recorded by the first
            // attempt, the SMS are best effort; the workflow goes on either way.
            let _ = ctx
                .execute_activity(AssistanceActivities::escalate_provider, input, options)
                .await;
            ctx.state_mut(|s| {
                if let Some(p) = s
                    .providers
                    .iter_mut()
                    .find(|p| p.event_provider_id == provider.event_provider_id)
                {
                    p.escalated = true;
                }
                s.escalations += 1;
                s.version += 1;
            });
        }
    }
}
