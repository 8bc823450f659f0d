//! The conversation workflow: one per (tenant, channel, contact).
//!
//! It owns the session state of a customer's conversation and interprets the tenant's flow
//! graph (pinned at start, so a running conversation keeps its flow version). Webchat delivers
//! each message as the `HandleMessage` update, which answers with the bot's replies; the workflow
//! completes after the flow's idle timeout and continues-as-new when its history grows long.

use std::time::Duration;

use futures::future::Either;
use serde::{Deserialize, Serialize};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    CancellableFuture, ContinueAsNewOptions, SyncWorkflowContext, WorkflowContext,
    WorkflowContextView, WorkflowResult,
};
use zengine_domain::flow::{FlowGraph, Session};
use zengine_domain::{ConversationId, InboundText, Reply};

use crate::names::TENANT_ID;

/// Workflow type name.
pub const WORKFLOW_TYPE: &str = "Conversation";
/// Update carrying one customer message; returns [`MessageOutcome`].
pub const UPDATE_HANDLE_MESSAGE: &str = "HandleMessage";
/// Query returning [`ConversationStatus`].
pub const QUERY_STATUS: &str = "Status";

/// Longest accepted message text, in bytes (the API enforces the same bound on the body).
pub const MAX_TEXT_BYTES: usize = 4096;

/// Input of a conversation run (also the continue-as-new input).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationInput {
    pub conversation: ConversationId,
    /// The tenant's published flow, pinned for the life of the conversation.
    pub flow: FlowGraph,
    /// Carried over by continue-as-new; empty for a new conversation.
    #[serde(default)]
    pub session: Session,
}

/// The bot's answer to one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageOutcome {
    /// Which customer message (1-based, across continue-as-new) this answers.
    pub turn: u64,
    pub replies: Vec<Reply>,
}

/// Snapshot returned by the `Status` query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationStatus {
    pub conversation_id: String,
    pub flow_id: String,
    pub flow_version: u32,
    /// `BOT` for now; `AGENT_HANDOFF` arrives with the handoff node.
    pub mode: String,
    pub turns: u64,
    pub waiting_at: Option<String>,
    /// Names (not values) of the session variables that are set.
    pub variables: Vec<String>,
}

/// Result of a completed conversation run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub turns: u64,
    pub closed_because: String,
}

#[workflow]
pub struct ConversationWorkflow {
    conversation: ConversationId,
    flow: FlowGraph,
    session: Session,
}

#[workflow_methods]
impl ConversationWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: ConversationInput) -> Self {
        Self {
            conversation: input.conversation,
            flow: input.flow,
            session: input.session,
        }
    }

    #[run(name = WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<ConversationSummary> {
        let tenant = ctx.state(|s| s.conversation.tenant.to_string());
        ctx.upsert_search_attributes([TENANT_ID.value_set(tenant)]);
        let idle_timeout = Duration::from_secs(ctx.state(|s| s.flow.session_timeout_secs));
        loop {
            let seen = ctx.state(|s| s.session.turns);
            // Race the idle timer against the next message; cancel the timer when a message
            // wins so no stale timers pile up in the history.
            let timer = Box::pin(ctx.timer(idle_timeout));
            let message = Box::pin(ctx.wait_condition(move |s: &Self| s.session.turns != seen));
            match futures::future::select(timer, message).await {
                Either::Left(_) => break,
                Either::Right((received, timer)) => {
                    timer.cancel();
                    received?;
                }
            }
            if ctx.continue_as_new_suggested() {
                let input = ctx.state(|s| ConversationInput {
                    conversation: s.conversation.clone(),
                    flow: s.flow.clone(),
                    session: s.session.clone(),
                });
                ctx.continue_as_new(input, ContinueAsNewOptions::default())?;
            }
        }
        Ok(ctx.state(|s| ConversationSummary {
            turns: s.session.turns,
            closed_because: "idle".to_owned(),
        }))
    }

    #[update_validator(handle_message)]
    pub fn validate_message(
        &self,
        _ctx: &WorkflowContextView,
        message: &InboundText,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if message.text.trim().is_empty() {
            return Err("message text is empty".into());
        }
        if message.text.len() > MAX_TEXT_BYTES {
            return Err(format!("message text is longer than {MAX_TEXT_BYTES} bytes").into());
        }
        Ok(())
    }

    /// Interprets one customer message and returns the bot's replies.
    #[update(name = UPDATE_HANDLE_MESSAGE)]
    pub fn handle_message(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        message: InboundText,
    ) -> MessageOutcome {
        let replies = self.flow.handle(&mut self.session, &message.text);
        MessageOutcome {
            turn: self.session.turns,
            replies,
        }
    }

    #[query(name = QUERY_STATUS)]
    pub fn status(&self, _ctx: &WorkflowContextView) -> ConversationStatus {
        ConversationStatus {
            conversation_id: self.conversation.workflow_id(),
            flow_id: self.flow.id.clone(),
            flow_version: self.flow.version,
            mode: "BOT".to_owned(),
            turns: self.session.turns,
            waiting_at: self.session.waiting_at.clone(),
            variables: self.session.vars.keys().cloned().collect(),
        }
    }
}
