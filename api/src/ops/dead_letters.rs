//! Dead-lettered outbound messages as an operator action: list them, re-drive one, or re-drive
//! every dead letter of a conversation. One implementation ([`DeadLetters`]) serves
//! `/v1/ops/dead-letters…`, the conversation action `redrive_dead_letters`, the legacy
//! `/v1/channels/dead-letters/{id}/redrive`, the gRPC service and `zengine workflows`.
//!
//! A re-drive claims the row (DEAD → PENDING, compare-and-set) before starting the
//! `RedriveOutbound` workflow, so two operators re-driving at once send it once: the second one
//! finds no dead letter (404). The message keeps its `client_message_id`, so a provider that had
//! accepted it is not asked twice. Everything is read through the tenant's own rows: another
//! tenant's message is "not found", exactly as one that does not exist.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use temporalio_client::{Client, WorkflowIdReusePolicy, WorkflowStartOptions};
use zengine_activities::channels::DeliverReply;
use zengine_channels::Registry;
use zengine_domain::TenantId;
use zengine_storage::Database;
use zengine_storage::OutboundRecord;
use zengine_workflows::channels::{RedriveInput, RedriveWorkflow};
use zengine_workflows::conversation;
use zengine_workflows::names::queues;

use super::{Operations, OpsError, check_workflow_id};
use crate::metrics::Counted;

/// The conversation action that re-drives all of its dead letters.
pub const REDRIVE_ACTION: &str = "redrive_dead_letters";

/// Longest `client_message_id` accepted.
pub const MAX_MESSAGE_ID_BYTES: usize = 512;

/// One dead letter, as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterView {
    pub client_message_id: String,
    /// The conversation that sent it (`client_message_id` up to its last `/`), when it has one.
    pub conversation_id: Option<String>,
    pub strategy: String,
    pub recipient: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The reply that failed, as stored.
    pub reply: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&OutboundRecord> for DeadLetterView {
    fn from(r: &OutboundRecord) -> Self {
        DeadLetterView {
            client_message_id: r.client_message_id.clone(),
            conversation_id: r
                .client_message_id
                .rsplit_once('/')
                .map(|(conversation, _)| conversation.to_owned()),
            strategy: r.strategy.clone(),
            recipient: r.recipient.clone(),
            state: r.state.clone(),
            attempts: r.attempts,
            last_error: r.last_error.clone(),
            reply: r.payload.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A re-drive that started.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Redriven {
    pub client_message_id: String,
    /// The `RedriveOutbound` workflow sending it again.
    pub workflow_id: String,
}

/// What re-driving a conversation's dead letters did.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationRedrive {
    pub conversation_id: String,
    pub redriven: Vec<Redriven>,
    /// Dead letters another operator claimed between the list and the claim (sent once, by
    /// them).
    pub already_redriven: Vec<String>,
}

/// Dead letters and their re-drive over the database, the channel registry and Temporal.
#[derive(Clone)]
pub struct DeadLetters {
    db: Database,
    client: Client,
    channels: Arc<Registry>,
    task_queue_prefix: String,
}

fn check_message_id(client_message_id: &str) -> Result<(), OpsError> {
    if client_message_id.is_empty()
        || client_message_id.len() > MAX_MESSAGE_ID_BYTES
        || client_message_id.chars().any(char::is_control)
    {
        return Err(OpsError::Invalid(format!(
            "`client_message_id` must be 1 to {MAX_MESSAGE_ID_BYTES} bytes of printable text"
        )));
    }
    Ok(())
}

impl DeadLetters {
    pub fn new(
        db: Database,
        client: Client,
        channels: Arc<Registry>,
        task_queue_prefix: impl Into<String>,
    ) -> Self {
        Self {
            db,
            client,
            channels,
            task_queue_prefix: task_queue_prefix.into(),
        }
    }

    /// Over an API process's state.
    pub fn of(state: &crate::AppState) -> Self {
        Self::new(
            state.db.clone(),
            state.temporal.clone(),
            state.channels.clone(),
            state.task_queue_prefix.clone(),
        )
    }

    /// The tenant's dead letters, newest first (at most 500); with `conversation_id`, only that
    /// conversation's.
    pub async fn list(
        &self,
        tenant: &TenantId,
        conversation_id: Option<&str>,
    ) -> Result<Vec<DeadLetterView>, OpsError> {
        let rows = match conversation_id {
            None => self.db.channels().dead_letters(tenant).await?,
            Some(id) => {
                check_workflow_id(id)?;
                self.db
                    .channels()
                    .dead_letters_with_prefix(tenant, &format!("{id}/"))
                    .await?
            }
        };
        Ok(rows.iter().map(DeadLetterView::from).collect())
    }

    /// Re-drives one dead letter. Not found (never was, another tenant's, or re-driven
    /// already): [`OpsError::NotFound`].
    pub async fn redrive(
        &self,
        tenant: &TenantId,
        client_message_id: &str,
    ) -> Result<Redriven, OpsError> {
        check_message_id(client_message_id)?;
        let record = self
            .db
            .channels()
            .claim_dead_letter(tenant, client_message_id)
            .await?
            .ok_or_else(|| {
                OpsError::NotFound(format!(
                    "no dead letter `{client_message_id}` (it may have been re-driven already)"
                ))
            })?;
        self.start(tenant, record).await
    }

    /// Starts the re-drive of a claimed record; puts it back when the start fails.
    async fn start(&self, tenant: &TenantId, record: OutboundRecord) -> Result<Redriven, OpsError> {
        let reply = serde_json::from_value(record.payload.clone())
            .map_err(|e| OpsError::Internal(anyhow::anyhow!("stored reply: {e}")))?;
        let channel = self
            .channels
            .outbound(&record.strategy)
            .map(|s| s.channel().as_str().to_owned())
            .unwrap_or_default();
        let input = RedriveInput {
            delivery: DeliverReply {
                tenant_id: tenant.clone(),
                channel,
                recipient: record.recipient.clone(),
                client_message_id: record.client_message_id.clone(),
                reply,
                strategy: Some(record.strategy.clone()),
            },
        };
        let workflow_id = zengine_domain::workflow_ids::redrive(tenant, &record.client_message_id);
        let queue = zengine_workflows::names::task_queue(&self.task_queue_prefix, queues::CHANNELS);
        let options = WorkflowStartOptions::new(queue, workflow_id.clone())
            .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicate)
            .build();
        if let Err(e) = self
            .client
            .start_workflow(RedriveWorkflow::run, input, options)
            .await
            .counted("RedriveOutbound")
        {
            // Put it back so the operator can try again.
            self.db
                .channels()
                .mark_dead(
                    tenant,
                    &record.client_message_id,
                    record
                        .last_error
                        .as_deref()
                        .unwrap_or("re-drive failed to start"),
                )
                .await?;
            tracing::error!(error.message = %e, %workflow_id, "Re-drive did not start");
            return Err(OpsError::Unavailable(format!(
                "{e}; the message is still a dead letter"
            )));
        }
        tracing::info!(tenant_id = %tenant, %workflow_id, "Dead letter re-driven");
        Ok(Redriven {
            client_message_id: record.client_message_id,
            workflow_id,
        })
    }

    /// Re-drives every dead letter of a conversation (its workflow id). A conversation of
    /// another tenant, or none at all, is "not found"; one of the tenant's with no dead letters
    /// re-drives nothing. The conversation need not be running.
    pub async fn redrive_conversation(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
    ) -> Result<ConversationRedrive, OpsError> {
        check_workflow_id(conversation_id)?;
        // The workflow, when Temporal still has it, must be the tenant's conversation. Rows
        // are read through the tenant's own rows either way, so a conversation past its
        // retention can still have its dead letters re-driven.
        let ops = Operations::new(self.client.clone());
        let known = match ops.owned(tenant, conversation_id, None).await {
            Ok(described) => {
                let workflow_type = described
                    .workflow_execution_info
                    .and_then(|i| i.r#type)
                    .map(|t| t.name)
                    .unwrap_or_default();
                if workflow_type != conversation::WORKFLOW_TYPE {
                    return Err(OpsError::Invalid(format!(
                        "`redrive_dead_letters` applies to {} workflows; `{conversation_id}` is a \
                         {workflow_type} workflow",
                        conversation::WORKFLOW_TYPE
                    )));
                }
                true
            }
            Err(OpsError::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        let letters = self
            .db
            .channels()
            .dead_letters_with_prefix(tenant, &format!("{conversation_id}/"))
            .await?;
        if letters.is_empty() && !known {
            return Err(OpsError::not_found(conversation_id));
        }
        let mut result = ConversationRedrive {
            conversation_id: conversation_id.to_owned(),
            redriven: Vec::new(),
            already_redriven: Vec::new(),
        };
        // Oldest first, so the customer gets them in the order they were meant to arrive.
        for letter in letters.iter().rev() {
            match self
                .db
                .channels()
                .claim_dead_letter(tenant, &letter.client_message_id)
                .await?
            {
                Some(record) => result.redriven.push(self.start(tenant, record).await?),
                None => result
                    .already_redriven
                    .push(letter.client_message_id.clone()),
            }
        }
        Ok(result)
    }
}
