//! The conversation workflow: one per (tenant, channel, contact).
//!
//! It owns the session of a customer's conversation and interprets the tenant's flow graph
//! (pinned at start: a running conversation keeps its flow version). Each customer message is the
//! `HandleMessage` update, which answers with the bot's replies (webchat returns them in the HTTP
//! response; asynchronous channels send them through their outbound strategy). Effects the flow
//! asks for are carried out here: commands as activities, waits as durable timers, handoff as
//! the `AGENT_HANDOFF` mode until an operator's `ReturnToBot`. Replies produced outside a
//! customer message (after a wait, on return to the bot) go to the outbox (`Outbox` query).
//! The workflow completes after the flow's idle timeout and continues-as-new when its history
//! grows long, carrying the session over.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::Either;
use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, CancellableFuture, ChildWorkflowOptions, ContinueAsNewOptions,
    ParentClosePolicy, SyncWorkflowContext, WorkflowCancellationError, WorkflowContext,
    WorkflowContextView, WorkflowResult,
};
use zengine_activities::channels::{
    CIRCUIT_OPEN, ChannelActivities, DeadLetter, DeliverReply, NOT_CONFIGURED, SECRET_MISSING,
    SEND_REJECTED,
};
use zengine_activities::chatwoot::{
    CHATWOOT_REJECTED, ChatwootActivities, DeskLink, ForwardMessage, HandoffMirror,
    ResolveConversation, TRANSCRIPT_LINES, TranscriptLine,
};
use zengine_activities::conversation::{
    COMMAND_REJECTED, CommandRequest, ConversationActivities, EventRecord, SurveyRecord,
};
use zengine_domain::channel::pushes_replies;
use zengine_domain::flow::{CommandOutcome, Effect, FlowGraph, Mode, Session, State, Turn};
use zengine_domain::payment::{PaymentStatus, PaymentUpdate};
use zengine_domain::{ConversationId, InboundMessage, Reply};

use crate::names::TENANT_ID;
use crate::order::{OrderInput, OrderWorkflow};
use crate::payment::{PaymentInput, PaymentWorkflow};

/// Workflow type name.
pub const WORKFLOW_TYPE: &str = "Conversation";
/// Update carrying one customer message; returns [`MessageOutcome`].
pub const UPDATE_HANDLE_MESSAGE: &str = "HandleMessage";
/// Update an operator sends to give a handed-off conversation back to the bot.
pub const UPDATE_RETURN_TO_BOT: &str = "ReturnToBot";
/// Query returning [`ConversationStatus`].
pub const QUERY_STATUS: &str = "Status";
/// Query returning the [`OutboxEntry`]s after a sequence number.
pub const QUERY_OUTBOX: &str = "Outbox";
/// Signal carrying one customer message from a push channel (WhatsApp, …): the webhook answers
/// as soon as Temporal accepted it; replies go out through the channel's strategy.
pub const SIGNAL_INBOUND: &str = "Inbound";
/// Signal from a payment workflow this conversation started ([`PaymentUpdate`]).
pub const SIGNAL_PAYMENT_UPDATE: &str = "PaymentUpdate";
/// Update the Chatwoot webhook sends when an agent resolves the mirrored conversation
/// ([`DeskResolved`]): the same return to the bot as `ReturnToBot`, for that Chatwoot
/// conversation only.
pub const UPDATE_DESK_RESOLVED: &str = "AgentDeskResolved";
/// Signal carrying an agent's reply from Chatwoot ([`AgentReply`]), delivered to the customer
/// through the conversation's own channel (the outbox).
pub const SIGNAL_AGENT_REPLY: &str = "AgentReply";
/// Patch: a handoff is mirrored into the tenant's Chatwoot inbox (agent desk).
const PATCH_HANDOFF_CHATWOOT: &str = "handoff-chatwoot";
/// Patch: `payment.verify` runs the payment workflow as a child instead of an activity.
const PATCH_PAYMENT_VERIFY: &str = "payment-verify-workflow";
/// Patch: `payment.verify` accepts images sent on WhatsApp (`whatsapp:<media id>`).
const PATCH_WHATSAPP_MEDIA: &str = "payment-verify-whatsapp-media";
/// How long `payment.verify` waits for the payment's first decision (OCR included) before the
/// flow takes its failure edge ("we are checking your payment").
const PAYMENT_DECISION_WAIT: Duration = Duration::from_secs(120);

/// How long a reply waits, in total, for its channel's circuit to close before it becomes a
/// dead letter.
const CIRCUIT_WAIT_LIMIT: Duration = Duration::from_secs(3600);

/// Longest accepted message text, in bytes (the API enforces the same bound on the body).
pub const MAX_TEXT_BYTES: usize = 4096;
/// Outbox entries and agent-queue messages kept in the workflow state.
const MAX_KEPT: usize = 100;

/// Input of a conversation run (also the continue-as-new input).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationInput {
    pub conversation: ConversationId,
    /// The tenant's published flow, pinned for the life of the conversation.
    pub flow: FlowGraph,
    /// Carried over by continue-as-new; empty for a new conversation.
    #[serde(default)]
    pub session: Session,
    /// Carried over by continue-as-new.
    #[serde(default)]
    pub carry: Carry,
    /// Continue-as-new once the history has this many events (or when Temporal suggests it).
    /// Default [`DEFAULT_MAX_HISTORY_EVENTS`].
    #[serde(default)]
    pub max_history_events: Option<u32>,
}

/// History length at which a conversation continues as new by default: well below Temporal's
/// 10K-event warning, so replays stay fast.
pub const DEFAULT_MAX_HISTORY_EVENTS: u32 = 2_000;

/// State that continue-as-new carries besides the session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Carry {
    pub outbox: Vec<OutboxEntry>,
    pub next_seq: u64,
    pub agent_queue: Vec<InboundMessage>,
    pub effects: u64,
    /// Messages received by the `Inbound` signal (push channels), not yet handled.
    #[serde(default)]
    pub inbox: Vec<InboundMessage>,
    /// Provider message ids seen lately: a redelivered message is handled once.
    #[serde(default)]
    pub recent_ids: Vec<String>,
    /// Outbox entries up to this sequence number went out through the channel (push channels).
    #[serde(default)]
    pub delivered_seq: u64,
    /// The latest lines of the conversation, posted to the agent desk on handoff.
    #[serde(default)]
    pub transcript: Vec<TranscriptLine>,
    /// Agent desk work not done yet, in order (run by the main loop, outside any handler).
    #[serde(default)]
    pub desk_jobs: Vec<DeskJob>,
    /// The Chatwoot conversation the current handoff is mirrored to.
    #[serde(default)]
    pub desk: Option<DeskLink>,
}

/// One piece of agent desk (Chatwoot) work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum DeskJob {
    /// Mirror a handoff: contact, conversation, transcript, note.
    Mirror(HandoffMirror),
    /// Forward a customer message received while handed off.
    Forward { message_key: String, text: String },
    /// Resolve the Chatwoot conversation (an operator returned the conversation to the bot).
    Resolve { chatwoot_conversation_id: i64 },
}

/// An agent's reply from Chatwoot (signal [`SIGNAL_AGENT_REPLY`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentReply {
    pub chatwoot_conversation_id: i64,
    /// Chatwoot's message id: a redelivered webhook is delivered once.
    pub chatwoot_message_id: i64,
    pub text: String,
}

/// Answer of the [`UPDATE_DESK_RESOLVED`] update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskResolved {
    /// Whether the conversation went back to the bot now (false: it was not handed off to
    /// that Chatwoot conversation, e.g. a repeated webhook).
    pub returned: bool,
    pub replies: Vec<Reply>,
}

/// The bot's answer to one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageOutcome {
    /// Which customer message (1-based, across continue-as-new) this answers.
    pub turn: u64,
    pub replies: Vec<Reply>,
    /// `BOT`, or `AGENT_HANDOFF` when a human agent has the conversation (the bot is silent).
    #[serde(default)]
    pub mode: Mode,
}

/// A reply produced outside a customer message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub seq: u64,
    pub reply: Reply,
}

/// Snapshot returned by the `Status` query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationStatus {
    pub conversation_id: String,
    pub flow_id: String,
    pub flow_version: u32,
    pub mode: Mode,
    /// Where the flow is paused: `idle`, `awaiting_input`, `awaiting_command`, `waiting`,
    /// `handoff`, `survey_rating`, `survey_comment`.
    pub state: String,
    pub node: Option<String>,
    pub turns: u64,
    /// Names (not values) of the session variables that are set.
    pub variables: Vec<String>,
    /// Customer messages waiting for the human agent.
    pub agent_queue: usize,
    /// Sequence number of the newest outbox entry.
    pub outbox_seq: u64,
    /// The mirrored Chatwoot conversation, while handed off to the agent desk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_desk_url: Option<String>,
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
    /// This workflow's own id: `{tenant}/conversation/{channel}/{contact}`, or with a keyed hash
    /// of the contact for phone channels (`…/whatsapp/p-<hmac>`, see
    /// `ConversationId::temporal_id`). Used wherever the conversation names itself (outbound
    /// message ids, payment notifications) so no phone number leaks into other ids. Old runs
    /// had the plaintext id, which is what they recorded: replay is unchanged.
    own_id: String,
    flow: FlowGraph,
    session: Session,
    carry: Carry,
    max_history_events: Option<u32>,
    /// A message or operator action is being handled; others wait their turn so the flow
    /// sees events one at a time, in the order Temporal accepted them.
    busy: bool,
    /// A durable wait the flow asked for, not yet started by the main loop.
    wait_requested: Option<u64>,
    /// Bumped by every event; the idle timer restarts when it changes.
    events: u64,
    /// The payment a `payment.verify` command is waiting for, and the updates received for it.
    awaiting_payment: Option<String>,
    payment_updates: BTreeMap<String, PaymentUpdate>,
}

fn state_name(state: &State) -> (&'static str, Option<String>) {
    match state {
        State::Idle => ("idle", None),
        State::AwaitingInput { node, .. } => ("awaiting_input", Some(node.clone())),
        State::AwaitingCommand { node } => ("awaiting_command", Some(node.clone())),
        State::Waiting { node } => ("waiting", Some(node.clone())),
        State::Handoff { node } => ("handoff", Some(node.clone())),
        State::SurveyRating => ("survey_rating", None),
        State::SurveyComment { .. } => ("survey_comment", None),
    }
}

type HandlerError = Box<dyn std::error::Error + Send + Sync>;

#[workflow_methods]
impl ConversationWorkflow {
    #[init]
    pub fn new(ctx: &WorkflowContextView, input: ConversationInput) -> Self {
        let mut session = input.session;
        if !session.vars.contains_key("tenant") {
            let c = &input.conversation;
            let fresh = Session::new(c.tenant.as_str(), c.channel.as_str(), c.contact.as_str());
            session.vars.extend(fresh.vars);
        }
        Self {
            own_id: ctx.workflow_id().to_owned(),
            conversation: input.conversation,
            flow: input.flow,
            session,
            carry: input.carry,
            max_history_events: input.max_history_events,
            busy: false,
            wait_requested: None,
            events: 0,
            awaiting_payment: None,
            payment_updates: BTreeMap::new(),
        }
    }

    #[run(name = WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<ConversationSummary> {
        let tenant = ctx.state(|s| s.conversation.tenant.to_string());
        ctx.upsert_search_attributes([TENANT_ID.value_set(tenant)]);
        let idle_timeout = Duration::from_secs(ctx.state(|s| s.flow.session_timeout_secs));
        loop {
            // Messages from push channels, in arrival order; their replies go to the outbox
            // and from there out through the channel.
            if let Some(message) =
                ctx.state_mut(|s| (!s.carry.inbox.is_empty()).then(|| s.carry.inbox.remove(0)))
            {
                Self::begin(ctx).await?;
                let replies = Self::respond(ctx, message).await;
                Self::finish_to_outbox(ctx, replies);
                continue;
            }
            if ctx.state(Self::undelivered) {
                Self::deliver_outbox(ctx).await;
                continue;
            }
            if ctx.state(|s| !s.carry.desk_jobs.is_empty()) {
                Self::run_desk_job(ctx).await;
                continue;
            }
            if let Some(seconds) = ctx.state_mut(|s| s.wait_requested.take()) {
                // The flow's durable wait. Customer messages meanwhile are noted, not answered.
                ctx.timer(Duration::from_secs(seconds)).await;
                Self::begin(ctx).await?;
                let turn = ctx.state_mut(|s| s.flow.on_timer(&mut s.session));
                let replies = Self::drive(ctx, turn).await;
                Self::finish_to_outbox(ctx, replies);
                continue;
            }
            // Race the idle timer against the next event; cancel the timer when an event wins
            // so no stale timers pile up in the history.
            let seen = ctx.state(|s| s.events);
            let timer = Box::pin(ctx.timer(idle_timeout));
            let event = Box::pin(ctx.wait_condition(move |s: &Self| {
                s.events != seen
                    || s.wait_requested.is_some()
                    || !s.carry.inbox.is_empty()
                    || s.undelivered()
                    || !s.carry.desk_jobs.is_empty()
            }));
            match futures::future::select(timer, event).await {
                Either::Left(_) => {
                    // A handler may be mid-way (awaiting an activity): let it finish first.
                    if ctx.state(|s| s.busy) {
                        ctx.wait_condition(|s: &Self| !s.busy).await?;
                        continue;
                    }
                    break;
                }
                Either::Right((received, timer)) => {
                    timer.cancel();
                    received?;
                }
            }
            let limit = ctx.state(|s| s.max_history_events.unwrap_or(DEFAULT_MAX_HISTORY_EVENTS));
            let long = ctx.continue_as_new_suggested() || ctx.history_length() >= limit;
            if long
                && ctx.state(|s| !s.busy && s.wait_requested.is_none() && s.carry.inbox.is_empty())
            {
                let input = ctx.state(|s| ConversationInput {
                    conversation: s.conversation.clone(),
                    flow: s.flow.clone(),
                    session: s.session.clone(),
                    carry: s.carry.clone(),
                    max_history_events: s.max_history_events,
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
        message: &InboundMessage,
    ) -> Result<(), HandlerError> {
        if message.is_empty() {
            return Err("the message is empty".into());
        }
        if message.text.len() > MAX_TEXT_BYTES {
            return Err(format!("message text is longer than {MAX_TEXT_BYTES} bytes").into());
        }
        Ok(())
    }

    /// Interprets one customer message and returns the bot's replies.
    #[update(name = UPDATE_HANDLE_MESSAGE)]
    pub async fn handle_message(
        ctx: &mut WorkflowContext<Self>,
        message: InboundMessage,
    ) -> Result<MessageOutcome, HandlerError> {
        Self::begin(ctx).await?;
        let replies = Self::respond(ctx, message).await;
        let outcome = ctx.state(|s| MessageOutcome {
            turn: s.session.turns,
            replies,
            mode: s.session.mode,
        });
        Self::end_event(ctx);
        Ok(outcome)
    }

    /// Gives a handed-off conversation back to the bot; the flow continues after the handoff
    /// node and its replies go to the outbox (and are returned here).
    #[update(name = UPDATE_RETURN_TO_BOT)]
    pub async fn return_to_bot(
        ctx: &mut WorkflowContext<Self>,
    ) -> Result<Vec<Reply>, HandlerError> {
        Self::begin(ctx).await?;
        if ctx.state(|s| s.session.mode != Mode::AgentHandoff) {
            Self::end_event(ctx);
            return Err("the conversation is not with an agent".into());
        }
        let turn = ctx.state_mut(|s| {
            // Mirrored to Chatwoot: resolve it there too (only runs that took the
            // `handoff-chatwoot` patch have a desk link).
            if let Some(link) = s.carry.desk.take() {
                s.carry.desk_jobs.push(DeskJob::Resolve {
                    chatwoot_conversation_id: link.chatwoot_conversation_id,
                });
            }
            s.flow.on_return_to_bot(&mut s.session)
        });
        let replies = Self::drive(ctx, turn).await;
        Self::finish_to_outbox(ctx, replies.clone());
        Ok(replies)
    }

    /// The agent resolved the mirrored Chatwoot conversation: back to the bot, like
    /// `ReturnToBot`. Idempotent: for any other Chatwoot conversation, or when the
    /// conversation is no longer handed off, nothing happens (`returned: false`).
    #[update(name = UPDATE_DESK_RESOLVED)]
    pub async fn desk_resolved(
        ctx: &mut WorkflowContext<Self>,
        chatwoot_conversation_id: i64,
    ) -> Result<DeskResolved, HandlerError> {
        Self::begin(ctx).await?;
        let mine = ctx.state(|s| {
            s.session.mode == Mode::AgentHandoff
                && s.carry
                    .desk
                    .as_ref()
                    .is_some_and(|d| d.chatwoot_conversation_id == chatwoot_conversation_id)
        });
        if !mine {
            Self::end_event(ctx);
            return Ok(DeskResolved {
                returned: false,
                replies: Vec::new(),
            });
        }
        let turn = ctx.state_mut(|s| {
            s.carry.desk = None;
            s.flow.on_return_to_bot(&mut s.session)
        });
        let replies = Self::drive(ctx, turn).await;
        Self::finish_to_outbox(ctx, replies.clone());
        Ok(DeskResolved {
            returned: true,
            replies,
        })
    }

    /// An agent's reply in the mirrored Chatwoot conversation: to the customer through the
    /// outbox (push channels deliver it with the usual retries and dead letters). Replies to
    /// another Chatwoot conversation, and redeliveries, are ignored.
    #[signal(name = SIGNAL_AGENT_REPLY)]
    pub fn agent_reply(&mut self, _ctx: &mut SyncWorkflowContext<Self>, reply: AgentReply) {
        let key = format!("chatwoot/{}", reply.chatwoot_message_id);
        let text = reply.text.trim();
        if text.is_empty()
            || text.len() > MAX_TEXT_BYTES
            || self.carry.recent_ids.contains(&key)
            || self
                .carry
                .desk
                .as_ref()
                .is_none_or(|d| d.chatwoot_conversation_id != reply.chatwoot_conversation_id)
        {
            return;
        }
        self.carry.recent_ids.push(key);
        if self.carry.recent_ids.len() > 2 * MAX_KEPT {
            self.carry.recent_ids.drain(..MAX_KEPT);
        }
        self.carry.next_seq += 1;
        let seq = self.carry.next_seq;
        push_bounded(
            &mut self.carry.outbox,
            OutboxEntry {
                seq,
                reply: Reply::text(text),
            },
        );
    }

    #[query(name = QUERY_STATUS)]
    pub fn status(&self, _ctx: &WorkflowContextView) -> ConversationStatus {
        let (state, node) = state_name(&self.session.state);
        ConversationStatus {
            conversation_id: self.own_id.clone(),
            flow_id: self.flow.id.clone(),
            flow_version: self.flow.version,
            mode: self.session.mode,
            state: state.to_owned(),
            node,
            turns: self.session.turns,
            variables: self.session.vars.keys().cloned().collect(),
            agent_queue: self.carry.agent_queue.len(),
            outbox_seq: self.carry.next_seq,
            agent_desk_url: self.carry.desk.as_ref().map(|d| d.url.clone()),
        }
    }

    /// A customer message from a push channel, queued for the main loop (in arrival order). A
    /// provider message id seen lately is ignored (webhooks are redelivered).
    #[signal(name = SIGNAL_INBOUND)]
    pub fn inbound(&mut self, _ctx: &mut SyncWorkflowContext<Self>, message: InboundMessage) {
        if message.is_empty()
            || message.text.len() > MAX_TEXT_BYTES
            || self.carry.recent_ids.contains(&message.message_id)
        {
            return;
        }
        self.carry.recent_ids.push(message.message_id.clone());
        if self.carry.recent_ids.len() > 2 * MAX_KEPT {
            self.carry.recent_ids.drain(..MAX_KEPT);
        }
        self.carry.inbox.push(message);
    }

    /// A payment this conversation started moved. The `payment.verify` command waiting for it
    /// takes it; a later decision (after a manual review) is told to the customer.
    #[signal(name = SIGNAL_PAYMENT_UPDATE)]
    pub fn payment_update(&mut self, _ctx: &mut SyncWorkflowContext<Self>, update: PaymentUpdate) {
        if self.awaiting_payment.as_deref() == Some(update.payment_id.as_str()) {
            self.payment_updates
                .insert(update.payment_id.clone(), update);
            return;
        }
        let text = match update.status {
            PaymentStatus::Assigned => format!(
                "Tu pago del pedido {} fue confirmado. ¡Gracias!",
                update.order_id
            ),
            PaymentStatus::Rejected => format!(
                "No pudimos confirmar tu pago del pedido {}: {}",
                update.order_id,
                update.reasons.last().map_or("", String::as_str)
            ),
            PaymentStatus::Pending | PaymentStatus::ManualReview => return,
        };
        self.carry.next_seq += 1;
        let seq = self.carry.next_seq;
        push_bounded(
            &mut self.carry.outbox,
            OutboxEntry {
                seq,
                reply: Reply::text(text),
            },
        );
    }

    #[query(name = QUERY_OUTBOX)]
    pub fn outbox(&self, _ctx: &WorkflowContextView, after: u64) -> Vec<OutboxEntry> {
        self.carry
            .outbox
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect()
    }
}

/// What a customer message says, for the agent desk.
fn message_text(message: &InboundMessage) -> String {
    let text = message.text.trim();
    if !text.is_empty() {
        return text.to_owned();
    }
    if message.media.is_some() {
        "[media]".to_owned()
    } else if message.location.is_some() {
        "[location]".to_owned()
    } else {
        message.reply_id.clone().unwrap_or_default()
    }
}

/// Keeps the latest [`TRANSCRIPT_LINES`] lines of the conversation.
fn note_line(transcript: &mut Vec<TranscriptLine>, from: &str, text: String) {
    if text.is_empty() {
        return;
    }
    transcript.push(TranscriptLine {
        from: from.to_owned(),
        text,
    });
    if transcript.len() > TRANSCRIPT_LINES {
        let excess = transcript.len() - TRANSCRIPT_LINES;
        transcript.drain(..excess);
    }
}

fn push_bounded<T>(items: &mut Vec<T>, item: T) {
    items.push(item);
    if items.len() > MAX_KEPT {
        let excess = items.len() - MAX_KEPT;
        items.drain(..excess);
    }
}

impl ConversationWorkflow {
    /// The bot's answer to one customer message (the caller holds the turn): nothing while a
    /// human agent has the conversation (the message waits in the agent queue).
    async fn respond(ctx: &mut WorkflowContext<Self>, message: InboundMessage) -> Vec<Reply> {
        if ctx.state(|s| s.session.mode == Mode::AgentHandoff) {
            ctx.state_mut(|s| {
                s.session.turns += 1;
                // Mirrored (or being mirrored) to Chatwoot: the agent sees it there.
                let mirrored = s.carry.desk.is_some()
                    || s.carry
                        .desk_jobs
                        .iter()
                        .any(|j| matches!(j, DeskJob::Mirror(_)));
                if mirrored {
                    s.carry.desk_jobs.push(DeskJob::Forward {
                        message_key: format!("in/{}/{}", s.own_id, message.message_id),
                        text: message_text(&message),
                    });
                }
                push_bounded(&mut s.carry.agent_queue, message);
            });
            return Vec::new();
        }
        ctx.state_mut(|s| note_line(&mut s.carry.transcript, "customer", message_text(&message)));
        let turn = ctx.state_mut(|s| s.flow.on_message(&mut s.session, &message));
        let replies = Self::drive(ctx, turn).await;
        ctx.state_mut(|s| {
            for reply in &replies {
                note_line(&mut s.carry.transcript, "bot", reply.plain_text());
            }
        });
        replies
    }

    /// Runs the oldest agent desk job. Desk trouble never changes the conversation: the
    /// handoff stands (the operator console still lists it) even when Chatwoot stays down.
    async fn run_desk_job(ctx: &mut WorkflowContext<Self>) {
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_secs(1))
                    .backoff_coefficient(2.0)
                    .maximum_interval(Duration::from_secs(30))
                    .maximum_attempts(8)
                    .non_retryable_error_types([CHATWOOT_REJECTED, SECRET_MISSING])
                    .build(),
            )
            .build();
        let Some(job) =
            ctx.state_mut(|s| (!s.carry.desk_jobs.is_empty()).then(|| s.carry.desk_jobs.remove(0)))
        else {
            return;
        };
        let tenant = ctx.state(|s| s.conversation.tenant.clone());
        match job {
            DeskJob::Mirror(mirror) => {
                let linked = ctx
                    .execute_activity(ChatwootActivities::mirror_handoff, mirror, options)
                    .await;
                let Ok(Some(link)) = linked else {
                    // Not configured, or Chatwoot kept failing: messages stay in the agent
                    // queue only.
                    ctx.state_mut(|s| {
                        s.carry
                            .desk_jobs
                            .retain(|j| !matches!(j, DeskJob::Forward { .. }))
                    });
                    return;
                };
                ctx.state_mut(|s| {
                    if s.session.mode == Mode::AgentHandoff {
                        s.carry.desk = Some(link);
                    } else {
                        // Returned to the bot while mirroring: close it in Chatwoot too.
                        s.carry.desk_jobs.push(DeskJob::Resolve {
                            chatwoot_conversation_id: link.chatwoot_conversation_id,
                        });
                    }
                });
            }
            DeskJob::Forward { message_key, text } => {
                let Some(conversation) =
                    ctx.state(|s| s.carry.desk.as_ref().map(|d| d.chatwoot_conversation_id))
                else {
                    return;
                };
                let forward = ForwardMessage {
                    tenant_id: tenant,
                    chatwoot_conversation_id: conversation,
                    message_key,
                    text,
                };
                let _ = ctx
                    .execute_activity(ChatwootActivities::forward_message, forward, options)
                    .await;
            }
            DeskJob::Resolve {
                chatwoot_conversation_id,
            } => {
                let request = ResolveConversation {
                    tenant_id: tenant,
                    chatwoot_conversation_id,
                };
                let _ = ctx
                    .execute_activity(ChatwootActivities::resolve, request, options)
                    .await;
            }
        }
    }

    /// Whether outbox entries wait to go out through a push channel.
    fn undelivered(&self) -> bool {
        pushes_replies(self.conversation.channel.as_str())
            && self.carry.next_seq > self.carry.delivered_seq
    }

    /// Sends the outbox entries not delivered yet through the channel, in order. A reply the
    /// provider refuses for good, or that keeps failing, becomes a dead letter; the next ones
    /// still go out.
    async fn deliver_outbox(ctx: &mut WorkflowContext<Self>) {
        let queue = crate::names::sibling_queue(
            ctx.task_queue(),
            crate::names::queues::CONVERSATIONS,
            crate::names::queues::CHANNELS,
        );
        let mut dead_letter_options = record_options();
        dead_letter_options.task_queue = Some(queue.clone());
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
            .task_queue(queue)
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
        loop {
            let next = ctx.state(|s| {
                let entry = s
                    .carry
                    .outbox
                    .iter()
                    .find(|e| e.seq > s.carry.delivered_seq)?;
                let delivery = DeliverReply {
                    tenant_id: s.conversation.tenant.clone(),
                    channel: s.conversation.channel.as_str().to_owned(),
                    recipient: s.conversation.contact.as_str().to_owned(),
                    client_message_id: format!("{}/out-{}", s.own_id.clone(), entry.seq),
                    reply: entry.reply.clone(),
                    strategy: None,
                };
                Some((entry.seq, delivery))
            });
            let Some((seq, delivery)) = next else {
                // Entries dropped from a full outbox are not delivered.
                ctx.state_mut(|s| s.carry.delivered_seq = s.carry.next_seq);
                return;
            };
            let mut waited = Duration::ZERO;
            let result = loop {
                let result = ctx
                    .execute_activity(
                        ChannelActivities::deliver,
                        delivery.clone(),
                        options.clone(),
                    )
                    .await;
                // The channel's circuit is open (nothing was sent): wait durably for the next
                // trial, then try again, up to CIRCUIT_WAIT_LIMIT.
                match &result {
                    Err(e) if crate::failure_type(e).as_deref() == Some(CIRCUIT_OPEN) => {
                        let pause = crate::failure_retry_delay(e)
                            .unwrap_or(Duration::from_secs(30))
                            .clamp(Duration::from_secs(1), Duration::from_secs(300));
                        if waited + pause > CIRCUIT_WAIT_LIMIT {
                            break result;
                        }
                        ctx.timer(pause).await;
                        waited += pause;
                    }
                    _ => break result,
                }
            };
            if let Err(e) = result {
                let dead = DeadLetter {
                    tenant_id: delivery.tenant_id,
                    channel: delivery.channel,
                    recipient: delivery.recipient,
                    client_message_id: delivery.client_message_id,
                    reply: delivery.reply,
                    error: crate::failure_message(&e),
                };
                let _ = ctx
                    .execute_activity(
                        ChannelActivities::dead_letter,
                        dead,
                        dead_letter_options.clone(),
                    )
                    .await;
            }
            ctx.state_mut(|s| s.carry.delivered_seq = seq);
        }
    }

    /// Waits for the previous event to be handled, then takes the turn.
    async fn begin(ctx: &mut WorkflowContext<Self>) -> Result<(), WorkflowCancellationError> {
        ctx.wait_condition(|s: &Self| !s.busy).await?;
        ctx.state_mut(|s| s.busy = true);
        Ok(())
    }

    fn end_event(ctx: &mut WorkflowContext<Self>) {
        ctx.state_mut(|s| {
            s.busy = false;
            s.events += 1;
        });
    }

    fn finish_to_outbox(ctx: &mut WorkflowContext<Self>, replies: Vec<Reply>) {
        ctx.state_mut(|s| {
            for reply in replies {
                s.carry.next_seq += 1;
                let seq = s.carry.next_seq;
                push_bounded(&mut s.carry.outbox, OutboxEntry { seq, reply });
            }
        });
        Self::end_event(ctx);
    }

    /// Carries out the effects of `turn` (and of the turns they lead to) until the flow pauses
    /// for the customer, a timer or an agent; returns every reply produced on the way.
    async fn drive(ctx: &mut WorkflowContext<Self>, mut turn: Turn) -> Vec<Reply> {
        let mut replies = Vec::new();
        loop {
            replies.append(&mut turn.replies);
            let Some(effect) = turn.effect.take() else {
                return replies;
            };
            let step = ctx.state_mut(|s| {
                s.carry.effects += 1;
                format!("{}/effect-{}", s.own_id.clone(), s.carry.effects)
            });
            match effect {
                Effect::Command {
                    node,
                    command,
                    params,
                } => {
                    let request = ctx.state(|s| CommandRequest {
                        tenant_id: s.conversation.tenant.clone(),
                        conversation_id: s.own_id.clone(),
                        node,
                        command: command.clone(),
                        params,
                        idempotency_key: step.clone(),
                    });
                    let options =
                        ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
                            .retry_policy(
                                RetryPolicy::builder()
                                    .initial_interval(Duration::from_millis(500))
                                    .backoff_coefficient(2.0)
                                    .maximum_interval(Duration::from_secs(10))
                                    .maximum_attempts(3)
                                    .non_retryable_error_types([COMMAND_REJECTED])
                                    .build(),
                            )
                            .build();
                    let started_order = command == "order.create";
                    let outcome = if command == "payment.verify"
                        && ctx.patched(PATCH_PAYMENT_VERIFY)
                    {
                        Self::verify_payment(ctx, &request.params).await
                    } else {
                        match ctx
                            .execute_activity(ConversationActivities::run_command, request, options)
                            .await
                        {
                            Ok(outcome) => outcome,
                            Err(e) => CommandOutcome {
                                ok: false,
                                value: serde_json::Value::Null,
                                error: Some(crate::failure_message(&e)),
                            },
                        }
                    };
                    if started_order && outcome.ok {
                        Self::start_order_workflow(ctx, &outcome.value).await;
                    }
                    turn = ctx.state_mut(|s| s.flow.on_command_result(&mut s.session, outcome));
                }
                Effect::Wait { seconds, .. } => {
                    ctx.state_mut(|s| s.wait_requested = Some(seconds));
                }
                Effect::Handoff { node, queue } => {
                    let event = ctx.state(|s| EventRecord {
                        event_id: step.clone(),
                        tenant_id: s.conversation.tenant.clone(),
                        event_type: zengine_domain::events::EventType::ConversationHandedOff,
                        subject: s.own_id.clone(),
                        payload: serde_json::json!({"node": node, "queue": queue}),
                    });
                    // Best effort: the handoff itself is the workflow state, the event reports it.
                    let _ = ctx
                        .execute_activity(
                            ConversationActivities::record_event,
                            event,
                            record_options(),
                        )
                        .await;
                    // Mirror it to the tenant's Chatwoot (if any) from the main loop, so the
                    // customer's answer does not wait for Chatwoot.
                    if ctx.patched(PATCH_HANDOFF_CHATWOOT) {
                        ctx.state_mut(|s| {
                            let mirror = HandoffMirror {
                                tenant_id: s.conversation.tenant.clone(),
                                workflow_id: s.own_id.clone(),
                                handoff_key: step.clone(),
                                channel: s.conversation.channel.as_str().to_owned(),
                                contact: s.conversation.contact.as_str().to_owned(),
                                node,
                                queue,
                                transcript: s.carry.transcript.clone(),
                            };
                            s.carry.desk = None;
                            s.carry.desk_jobs.push(DeskJob::Mirror(mirror));
                        });
                    }
                }
                Effect::SurveyCompleted(result) => {
                    let survey = ctx.state(|s| SurveyRecord {
                        tenant_id: s.conversation.tenant.clone(),
                        conversation_id: s.own_id.clone(),
                        survey_key: step.clone(),
                        rating: result.rating,
                        comment: result.comment.clone(),
                    });
                    let _ = ctx
                        .execute_activity(
                            ConversationActivities::record_survey,
                            survey,
                            record_options(),
                        )
                        .await;
                }
            }
        }
    }
}

impl ConversationWorkflow {
    /// `payment.verify` `{order_id, image}` (`image`: `upload:<media_id>` or
    /// `whatsapp:<media_id>`, e.g.
    /// `{{receipt.reference}}` of an image question): starts the payment workflow as a child that
    /// outlives the conversation, and waits for its first decision. ASSIGNED takes the success
    /// edge; MANUAL_REVIEW and REJECTED the failure edge with the reason in `last_error` (and
    /// `payment.status` in the saved value). A later review decision reaches the customer
    /// through [`Self::payment_update`].
    async fn verify_payment(
        ctx: &mut WorkflowContext<Self>,
        params: &serde_json::Value,
    ) -> CommandOutcome {
        let failed = |error: String| CommandOutcome {
            ok: false,
            value: serde_json::Value::Null,
            error: Some(error),
        };
        let text = |key: &str| {
            params
                .get(key)
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let Some(order_id) = text("order_id") else {
            return failed("payment.verify: params.order_id is required".into());
        };
        let Some(media_ref) = text("image") else {
            return failed("payment.verify: params.image is required".into());
        };
        // Receipts sent on WhatsApp (`whatsapp:<media id>`) are downloaded by the OCR activity
        // through the tenant's channel strategy; runs recorded before that refused them.
        let media_id = match media_ref.split_once(':') {
            Some(("upload", id)) if !id.is_empty() => id.to_owned(),
            Some(("whatsapp", id)) if !id.is_empty() && ctx.patched(PATCH_WHATSAPP_MEDIA) => {
                id.to_owned()
            }
            _ => {
                return failed(
                    "payment.verify: params.image must be an uploaded image (upload:<media_id>) \
                     or an image sent on WhatsApp (whatsapp:<media_id>)"
                        .into(),
                );
            }
        };
        let payment_id = zengine_domain::payment::payment_id_for(&order_id, &media_id);
        let tenant = ctx.state(|s| s.conversation.tenant.clone());
        let input = PaymentInput {
            tenant_id: tenant.clone(),
            payment_id: payment_id.clone(),
            order_id: order_id.clone(),
            media_ref,
            notify: Some(ctx.state(|s| s.own_id.clone())),
        };
        let options = ChildWorkflowOptions::builder()
            .workflow_id(zengine_domain::workflow_ids::payment(&tenant, &payment_id))
            .task_queue(crate::names::sibling_queue(
                ctx.task_queue(),
                crate::names::queues::CONVERSATIONS,
                crate::names::queues::PAYMENTS,
            ))
            .parent_close_policy(ParentClosePolicy::Abandon)
            .build();
        ctx.state_mut(|s| s.awaiting_payment = Some(payment_id.clone()));
        if ctx
            .start_child_workflow(PaymentWorkflow::run, input, options)
            .await
            .is_err()
        {
            ctx.state_mut(|s| s.awaiting_payment = None);
            return failed(format!(
                "payment.verify: payment {payment_id} was already submitted"
            ));
        }
        let waiting = payment_id.clone();
        let timer = Box::pin(ctx.timer(PAYMENT_DECISION_WAIT));
        let decided =
            Box::pin(ctx.wait_condition(move |s: &Self| s.payment_updates.contains_key(&waiting)));
        if let Either::Right((_, timer)) = futures::future::select(timer, decided).await {
            timer.cancel();
        }
        let update = ctx.state_mut(|s| {
            s.awaiting_payment = None;
            s.payment_updates.remove(&payment_id)
        });
        let Some(update) = update else {
            return failed("payment.verify: the payment is being checked".into());
        };
        let value = serde_json::json!({
            "payment_id": update.payment_id,
            "order_id": update.order_id,
            "status": update.status,
        });
        match update.status {
            PaymentStatus::Assigned => CommandOutcome {
                ok: true,
                value,
                error: None,
            },
            _ => CommandOutcome {
                ok: false,
                value,
                error: Some(match update.reasons.last() {
                    Some(reason) => format!("payment {}: {reason}", update.status),
                    None => format!("payment {}", update.status),
                }),
            },
        }
    }

    /// Starts the lifecycle workflow of an order the flow created (on the `payments` queue;
    /// it outlives the conversation). An order workflow that already runs is fine.
    async fn start_order_workflow(ctx: &mut WorkflowContext<Self>, order: &serde_json::Value) {
        let Some(order_id) = order.get("order_id").and_then(serde_json::Value::as_str) else {
            return;
        };
        let order_type = order
            .get("type")
            .cloned()
            .and_then(|t| serde_json::from_value(t).ok())
            .unwrap_or(zengine_domain::order::OrderType::Pickup);
        let tenant = ctx.state(|s| s.conversation.tenant.clone());
        let queue = crate::names::sibling_queue(
            ctx.task_queue(),
            crate::names::queues::CONVERSATIONS,
            crate::names::queues::PAYMENTS,
        );
        let options = ChildWorkflowOptions::builder()
            .workflow_id(zengine_domain::workflow_ids::order(&tenant, order_id))
            .task_queue(queue)
            .parent_close_policy(ParentClosePolicy::Abandon)
            .build();
        let input = OrderInput {
            tenant_id: tenant,
            order_id: order_id.to_owned(),
            order_type,
        };
        // Not awaited to completion: only the start matters here.
        let _ = ctx
            .start_child_workflow(OrderWorkflow::run, input, options)
            .await;
    }
}

fn record_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_millis(500))
                .maximum_interval(Duration::from_secs(30))
                .maximum_attempts(20)
                .build(),
        )
        .build()
}
