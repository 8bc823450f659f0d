//! The operator API: list, describe and read the history of a tenant's workflows, and act on
//! them. One implementation ([`Operations`]) serves the REST routes under `/v1/ops` ([`rest`],
//! routed by [`crate::openapi::operations`]), the gRPC service ([`crate::grpc`]) and the
//! `zengine workflows` CLI.
//!
//! Every operation is confined to one tenant: lists AND their visibility query with
//! `TenantId = '<tenant>'` ([`query`], which parses a caller's free query and renders it back)
//! and drop any execution not tagged with the tenant; single-workflow operations first describe
//! the workflow and answer "not found" when it belongs to another tenant, exactly as when it
//! does not exist.

pub mod dead_letters;
mod history;
pub mod query;
pub(crate) mod rest;

use std::time::Duration;

use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};
use temporalio_client::grpc::WorkflowService;
use temporalio_client::tonic::{Code, IntoRequest, Status};
use temporalio_client::{Client, NamespacedClient};
use temporalio_common::data_converters::SerializationContextData;
use temporalio_common::protos::temporal::api::common::v1::{
    Payload, Payloads, SearchAttributes, WorkflowExecution,
};
use temporalio_common::protos::temporal::api::enums::v1::{
    EventType, PendingActivityState, WorkflowExecutionStatus,
};
use temporalio_common::protos::temporal::api::failure::v1::Failure;
use temporalio_common::protos::temporal::api::query::v1::WorkflowQuery;
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    DescribeWorkflowExecutionRequest, DescribeWorkflowExecutionResponse,
    GetWorkflowExecutionHistoryRequest, ListWorkflowExecutionsRequest, QueryWorkflowRequest,
    RequestCancelWorkflowExecutionRequest, ResetWorkflowExecutionRequest,
    TerminateWorkflowExecutionRequest,
};
use zengine_domain::TenantId;
use zengine_workflows::{conversation, order, payment, routing};

pub use history::TimelineEvent;
pub use query::ListFilter;

/// Largest page of a list or a history.
pub const MAX_PAGE_SIZE: i32 = 1000;
/// How long the state query of a describe may take (a workflow without a running worker
/// would otherwise hold the request).
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest reason accepted for cancel, terminate and reset.
pub const MAX_REASON_BYTES: usize = 512;

/// Why an operation failed; each surface maps it to its own status (HTTP, gRPC, exit code).
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Bad input (400 / INVALID_ARGUMENT).
    #[error("{0}")]
    Invalid(String),
    /// No such workflow in the caller's tenant (404 / NOT_FOUND).
    #[error("{0}")]
    NotFound(String),
    /// The workflow refused or cannot take the action now (409 / FAILED_PRECONDITION).
    #[error("{0}")]
    Conflict(String),
    /// Temporal did not answer (503 / UNAVAILABLE): retrying is safe.
    #[error("the workflow service is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl OpsError {
    fn not_found(workflow_id: &str) -> Self {
        OpsError::NotFound(format!("workflow `{workflow_id}` does not exist"))
    }

    /// Maps a Temporal RPC error.
    fn from_status(status: Status, workflow_id: &str) -> Self {
        match status.code() {
            Code::NotFound => Self::not_found(workflow_id),
            Code::InvalidArgument => OpsError::Invalid(status.message().to_owned()),
            Code::FailedPrecondition | Code::AlreadyExists => {
                OpsError::Conflict(status.message().to_owned())
            }
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
                OpsError::Unavailable(status.message().to_owned())
            }
            _ => OpsError::Internal(anyhow::anyhow!(
                "Temporal answered {:?}: {}",
                status.code(),
                status.message()
            )),
        }
    }
}

/// One workflow in a list.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WorkflowSummary {
    pub workflow_id: String,
    pub run_id: String,
    #[serde(rename = "type")]
    pub workflow_type: String,
    pub status: String,
    pub task_queue: String,
    pub start_time: Option<String>,
    pub close_time: Option<String>,
    pub history_length: i64,
}

/// A page of a list.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WorkflowPage {
    pub workflows: Vec<WorkflowSummary>,
    /// Opaque; pass it back as `page_token` for the next page. `None` on the last page.
    pub next_page_token: Option<String>,
}

/// An activity the workflow is waiting for.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PendingActivity {
    pub activity_id: String,
    pub activity_type: String,
    pub state: String,
    pub attempt: i32,
    /// 0: unlimited.
    pub maximum_attempts: i32,
    pub scheduled_time: Option<String>,
    pub last_started_time: Option<String>,
    pub last_heartbeat_time: Option<String>,
    /// The last attempt's failure, outermost first.
    pub last_failure: Vec<FailureCause>,
}

/// One level of a failure's cause chain.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct FailureCause {
    pub message: String,
    /// The application error type, or the failure kind (`timeout`, `canceled`, …).
    #[serde(rename = "type")]
    pub failure_type: String,
    pub source: String,
}

/// Everything `describe` tells.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WorkflowDetail {
    #[serde(flatten)]
    pub summary: WorkflowSummary,
    pub execution_time: Option<String>,
    pub parent_workflow_id: Option<String>,
    pub pending_activities: Vec<PendingActivity>,
    /// The workflow's own status query (`Status` for conversations, orders and payments);
    /// absent for types without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<Value>,
    /// Why `state` could not be read (no worker answering, closed long ago, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_error: Option<String>,
    /// Typed operator actions this workflow type accepts ([`OperatorAction`] names).
    pub actions: Vec<&'static str>,
}

/// A page of a workflow's history.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HistoryPage {
    pub workflow_id: String,
    pub run_id: String,
    pub events: Vec<TimelineEvent>,
    pub next_page_token: Option<String>,
}

/// Typed operator actions, delivered to the workflow as its own updates.
///
/// Conversations also take [`dead_letters::REDRIVE_ACTION`] (`redrive_dead_letters`), which is
/// not an update: it re-sends the conversation's `outbound_message` rows in state `DEAD`
/// through [`dead_letters::DeadLetters`] (the database and a `RedriveOutbound` workflow per
/// message), so it is handled beside this enum by each surface.
#[derive(Debug, Clone, PartialEq)]
pub enum OperatorAction {
    /// Conversation: give a handed-off conversation back to the bot (update `ReturnToBot`).
    ReturnToBot,
    /// Payment: approve or reject a payment in manual review (update `Review`).
    ReviewPayment {
        approve: bool,
        reviewer: String,
        note: Option<String>,
    },
    /// Order: move the order (update `ChangeStatus`, source `operator`).
    ChangeOrderStatus { to: String, reason: Option<String> },
}

impl OperatorAction {
    /// The action's name in URLs, gRPC and the CLI.
    pub fn name(&self) -> &'static str {
        match self {
            OperatorAction::ReturnToBot => "return_to_bot",
            OperatorAction::ReviewPayment { approve: true, .. } => "approve_payment",
            OperatorAction::ReviewPayment { approve: false, .. } => "reject_payment",
            OperatorAction::ChangeOrderStatus { .. } => "change_order_status",
        }
    }

    /// The workflow type that takes it.
    fn target(&self) -> &'static str {
        match self {
            OperatorAction::ReturnToBot => conversation::WORKFLOW_TYPE,
            OperatorAction::ReviewPayment { .. } => payment::WORKFLOW_TYPE,
            OperatorAction::ChangeOrderStatus { .. } => order::WORKFLOW_TYPE,
        }
    }

    /// The workflow update that carries it.
    pub fn update_name(&self) -> &'static str {
        match self {
            OperatorAction::ReturnToBot => conversation::UPDATE_RETURN_TO_BOT,
            OperatorAction::ReviewPayment { .. } => payment::UPDATE_REVIEW,
            OperatorAction::ChangeOrderStatus { .. } => order::UPDATE_CHANGE_STATUS,
        }
    }
}

/// Operator actions each workflow type accepts.
pub fn actions_for(workflow_type: &str) -> Vec<&'static str> {
    match workflow_type {
        t if t == conversation::WORKFLOW_TYPE => {
            vec!["return_to_bot", dead_letters::REDRIVE_ACTION]
        }
        t if t == payment::WORKFLOW_TYPE => vec!["approve_payment", "reject_payment"],
        t if t == order::WORKFLOW_TYPE => vec!["change_order_status"],
        _ => Vec::new(),
    }
}

/// The status query of each workflow type that has one.
pub fn status_query(workflow_type: &str) -> Option<&'static str> {
    match workflow_type {
        t if t == conversation::WORKFLOW_TYPE => Some(conversation::QUERY_STATUS),
        t if t == order::WORKFLOW_TYPE => Some(order::QUERY_STATUS),
        t if t == payment::WORKFLOW_TYPE => Some(payment::QUERY_STATUS),
        // The route optimisation workflow has no query; its result is the route summary.
        t if t == routing::WORKFLOW_TYPE => None,
        _ => None,
    }
}

fn timestamp(t: &Option<prost_wkt_types::Timestamp>) -> Option<String> {
    t.as_ref().map(|t| {
        chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    })
}

/// `SOME_ENUM_PREFIX_TIMED_OUT` → `TimedOut` (the spelling visibility queries use).
pub(crate) fn enum_words(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix)
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_string() + &chars.as_str().to_ascii_lowercase()
            })
        })
        .collect()
}

fn status_name(status: i32) -> String {
    WorkflowExecutionStatus::try_from(status)
        .map(|s| enum_words(s.as_str_name(), "WORKFLOW_EXECUTION_STATUS_"))
        .unwrap_or_else(|_| status.to_string())
}

/// A failure's chain, outermost first.
pub fn failure_chain(failure: &Failure) -> Vec<FailureCause> {
    use temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo;
    let mut chain = Vec::new();
    let mut next = Some(failure);
    while let Some(f) = next {
        let failure_type = match &f.failure_info {
            Some(FailureInfo::ApplicationFailureInfo(info)) => info.r#type.clone(),
            Some(FailureInfo::TimeoutFailureInfo(_)) => "timeout".into(),
            Some(FailureInfo::CanceledFailureInfo(_)) => "canceled".into(),
            Some(FailureInfo::TerminatedFailureInfo(_)) => "terminated".into(),
            Some(FailureInfo::ServerFailureInfo(_)) => "server".into(),
            Some(FailureInfo::ActivityFailureInfo(_)) => "activity".into(),
            Some(FailureInfo::ChildWorkflowExecutionFailureInfo(_)) => "child_workflow".into(),
            _ => String::new(),
        };
        chain.push(FailureCause {
            message: f.message.clone(),
            failure_type,
            source: f.source.clone(),
        });
        next = f.cause.as_deref();
    }
    chain
}

fn encode_token(token: Vec<u8>) -> Option<String> {
    (!token.is_empty()).then(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token))
}

/// The `TenantId` search attribute of a workflow as JSON; `None` when it is not tagged.
fn tenant_tag(attributes: Option<&SearchAttributes>) -> Option<Value> {
    attributes
        .and_then(|sa| {
            sa.indexed_fields
                .get(zengine_workflows::names::TENANT_ID.name())
        })
        .map(history::payload_json)
}

/// Whether a workflow's `TenantId` search attribute is `tenant` (untagged ones are not).
fn tagged_with(attributes: Option<&SearchAttributes>, tenant: &TenantId) -> bool {
    matches!(tenant_tag(attributes), Some(Value::String(owner)) if owner == tenant.as_str())
}

fn decode_token(token: Option<&str>) -> Result<Vec<u8>, OpsError> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(Vec::new()),
        Some(t) if t.len() > 4096 => Err(OpsError::Invalid("`page_token` is too long".into())),
        Some(t) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t)
            .map_err(|_| OpsError::Invalid("`page_token` is not a token this API gave".into())),
    }
}

fn check_reason(reason: &str) -> Result<&str, OpsError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(OpsError::Invalid("a `reason` is required".into()));
    }
    if reason.len() > MAX_REASON_BYTES || reason.chars().any(char::is_control) {
        return Err(OpsError::Invalid(format!(
            "`reason` must be at most {MAX_REASON_BYTES} bytes of printable text"
        )));
    }
    Ok(reason)
}

fn check_workflow_id(workflow_id: &str) -> Result<(), OpsError> {
    if workflow_id.is_empty()
        || workflow_id.len() > 1000
        || workflow_id.chars().any(char::is_control)
    {
        return Err(OpsError::Invalid(
            "`workflow_id` is empty or malformed".into(),
        ));
    }
    Ok(())
}

/// The operator API over one Temporal client (its namespace and data converter).
#[derive(Clone)]
pub struct Operations {
    client: Client,
    /// Who Temporal records as having acted (`identity` of cancel, terminate, reset).
    identity: String,
}

impl Operations {
    pub fn new(client: Client) -> Self {
        let identity = client.identity();
        Self { client, identity }
    }

    fn service(&self) -> Client {
        self.client.clone()
    }

    fn namespace(&self) -> String {
        self.client.namespace()
    }

    fn execution(workflow_id: &str, run_id: Option<&str>) -> WorkflowExecution {
        WorkflowExecution {
            workflow_id: workflow_id.to_owned(),
            run_id: run_id.unwrap_or_default().to_owned(),
        }
    }

    /// Decodes payloads through the client's codec and renders them as JSON.
    pub async fn decode(&self, payloads: Vec<Payload>) -> Vec<Value> {
        let codec = self.client.data_converter().codec();
        let decoded = match codec
            .decode(&SerializationContextData::None, payloads.clone())
            .await
        {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::warn!(error.message = %e, "Payloads could not be decoded");
                payloads
            }
        };
        decoded.iter().map(history::payload_json).collect()
    }

    async fn decode_one(&self, payloads: Option<Payloads>) -> Value {
        let mut values = self
            .decode(payloads.map(|p| p.payloads).unwrap_or_default())
            .await;
        match values.len() {
            0 => Value::Null,
            1 => values.remove(0),
            _ => Value::Array(values),
        }
    }

    /// Lists the tenant's workflows, newest first.
    pub async fn list(
        &self,
        tenant: &TenantId,
        filter: &ListFilter,
        page_size: i32,
        page_token: Option<&str>,
    ) -> Result<WorkflowPage, OpsError> {
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(OpsError::Invalid(format!(
                "`page_size` must be 1 to {MAX_PAGE_SIZE}"
            )));
        }
        let query = query::visibility_query(tenant, filter)?;
        let request = ListWorkflowExecutionsRequest {
            namespace: self.namespace(),
            page_size,
            next_page_token: decode_token(page_token)?,
            query,
        };
        let response =
            WorkflowService::list_workflow_executions(&mut self.service(), request.into_request())
                .await
                .map_err(|status| OpsError::from_status(status, ""))?
                .into_inner();
        // The query already confines the list to the tenant; this check is the second lock, so
        // a query that slips past the parser still shows nothing of another tenant.
        let (mine, foreign): (Vec<_>, Vec<_>) = response
            .executions
            .iter()
            .partition(|info| tagged_with(info.search_attributes.as_ref(), tenant));
        if !foreign.is_empty() {
            tracing::warn!(
                tenant = tenant.as_str(),
                dropped = foreign.len(),
                "A workflow list answered workflows not tagged with the tenant; they were dropped"
            );
        }
        let workflows = mine
            .into_iter()
            .map(|info| WorkflowSummary {
                workflow_id: info
                    .execution
                    .as_ref()
                    .map(|e| e.workflow_id.clone())
                    .unwrap_or_default(),
                run_id: info
                    .execution
                    .as_ref()
                    .map(|e| e.run_id.clone())
                    .unwrap_or_default(),
                workflow_type: info
                    .r#type
                    .as_ref()
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
                status: status_name(info.status),
                task_queue: info.task_queue.clone(),
                start_time: timestamp(&info.start_time),
                close_time: timestamp(&info.close_time),
                history_length: info.history_length,
            })
            .collect();
        Ok(WorkflowPage {
            workflows,
            next_page_token: encode_token(response.next_page_token),
        })
    }

    /// Describes a workflow of the tenant, or says it does not exist (also when it is another
    /// tenant's).
    async fn owned(
        &self,
        tenant: &TenantId,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> Result<DescribeWorkflowExecutionResponse, OpsError> {
        check_workflow_id(workflow_id)?;
        let request = DescribeWorkflowExecutionRequest {
            namespace: self.namespace(),
            execution: Some(Self::execution(workflow_id, run_id)),
        };
        let response = WorkflowService::describe_workflow_execution(
            &mut self.service(),
            request.into_request(),
        )
        .await
        .map_err(|status| OpsError::from_status(status, workflow_id))?
        .into_inner();
        let info = response
            .workflow_execution_info
            .as_ref()
            .ok_or_else(|| OpsError::not_found(workflow_id))?;
        let owner_matches = match tenant_tag(info.search_attributes.as_ref()) {
            Some(Value::String(owner)) => owner == tenant.as_str(),
            // Not tagged yet (its first workflow task has not run): every ZEngine workflow id
            // starts with its tenant (`{tenant}/…`).
            None => workflow_id.starts_with(&format!("{}/", tenant.as_str())),
            Some(_) => false,
        };
        if owner_matches {
            Ok(response)
        } else {
            Err(OpsError::not_found(workflow_id))
        }
    }

    /// Status, times, pending activities and the workflow's own state.
    pub async fn describe(
        &self,
        tenant: &TenantId,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> Result<WorkflowDetail, OpsError> {
        let response = self.owned(tenant, workflow_id, run_id).await?;
        let info = response.workflow_execution_info.unwrap_or_default();
        let execution = info.execution.clone().unwrap_or_default();
        let workflow_type = info
            .r#type
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let pending_activities = response
            .pending_activities
            .iter()
            .map(|a| PendingActivity {
                activity_id: a.activity_id.clone(),
                activity_type: a
                    .activity_type
                    .as_ref()
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
                state: PendingActivityState::try_from(a.state)
                    .map(|s| enum_words(s.as_str_name(), "PENDING_ACTIVITY_STATE_"))
                    .unwrap_or_default(),
                attempt: a.attempt,
                maximum_attempts: a.maximum_attempts,
                scheduled_time: timestamp(&a.scheduled_time),
                last_started_time: timestamp(&a.last_started_time),
                last_heartbeat_time: timestamp(&a.last_heartbeat_time),
                last_failure: a
                    .last_failure
                    .as_ref()
                    .map(failure_chain)
                    .unwrap_or_default(),
            })
            .collect();
        let (state, state_error) = match status_query(&workflow_type) {
            None => (None, None),
            Some(query) => match self.query(&execution, query).await {
                Ok(value) => (Some(value), None),
                Err(e) => (None, Some(e)),
            },
        };
        Ok(WorkflowDetail {
            summary: WorkflowSummary {
                workflow_id: execution.workflow_id.clone(),
                run_id: execution.run_id.clone(),
                workflow_type: workflow_type.clone(),
                status: status_name(info.status),
                task_queue: info.task_queue.clone(),
                start_time: timestamp(&info.start_time),
                close_time: timestamp(&info.close_time),
                history_length: info.history_length,
            },
            execution_time: timestamp(&info.execution_time),
            parent_workflow_id: info
                .parent_execution
                .as_ref()
                .map(|p| p.workflow_id.clone()),
            pending_activities,
            state,
            state_error,
            actions: actions_for(&workflow_type),
        })
    }

    async fn query(
        &self,
        execution: &WorkflowExecution,
        query_type: &str,
    ) -> Result<Value, String> {
        let request = QueryWorkflowRequest {
            namespace: self.namespace(),
            execution: Some(execution.clone()),
            query: Some(WorkflowQuery {
                query_type: query_type.to_owned(),
                ..WorkflowQuery::default()
            }),
            ..QueryWorkflowRequest::default()
        };
        let mut service = self.service();
        let call = WorkflowService::query_workflow(&mut service, request.into_request());
        match tokio::time::timeout(QUERY_TIMEOUT, call).await {
            Err(_) => Err(format!(
                "the `{query_type}` query got no answer within {} s (is a worker running?)",
                QUERY_TIMEOUT.as_secs()
            )),
            Ok(Err(status)) => Err(format!(
                "the `{query_type}` query failed: {}",
                status.message()
            )),
            Ok(Ok(response)) => {
                let response = response.into_inner();
                if response.query_rejected.is_some() {
                    return Err(format!("the `{query_type}` query was rejected"));
                }
                Ok(self.decode_one(response.query_result).await)
            }
        }
    }

    /// A page of the workflow's history as a readable timeline.
    pub async fn history(
        &self,
        tenant: &TenantId,
        workflow_id: &str,
        run_id: Option<&str>,
        page_size: i32,
        page_token: Option<&str>,
    ) -> Result<HistoryPage, OpsError> {
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(OpsError::Invalid(format!(
                "`page_size` must be 1 to {MAX_PAGE_SIZE}"
            )));
        }
        let described = self.owned(tenant, workflow_id, run_id).await?;
        let execution = described
            .workflow_execution_info
            .and_then(|i| i.execution)
            .unwrap_or_else(|| Self::execution(workflow_id, run_id));
        let request = GetWorkflowExecutionHistoryRequest {
            namespace: self.namespace(),
            execution: Some(execution.clone()),
            maximum_page_size: page_size,
            next_page_token: decode_token(page_token)?,
            ..GetWorkflowExecutionHistoryRequest::default()
        };
        let response = WorkflowService::get_workflow_execution_history(
            &mut self.service(),
            request.into_request(),
        )
        .await
        .map_err(|status| OpsError::from_status(status, workflow_id))?
        .into_inner();
        let events = response.history.map(|h| h.events).unwrap_or_default();
        let timeline = history::timeline(self, events).await;
        Ok(HistoryPage {
            workflow_id: execution.workflow_id,
            run_id: execution.run_id,
            events: timeline,
            next_page_token: encode_token(response.next_page_token),
        })
    }

    /// Requests cancellation (the workflow decides how to wind down).
    pub async fn cancel(
        &self,
        tenant: &TenantId,
        workflow_id: &str,
        run_id: Option<&str>,
        reason: &str,
    ) -> Result<Value, OpsError> {
        let reason = check_reason(reason)?;
        let execution = self.running(tenant, workflow_id, run_id).await?;
        let request = RequestCancelWorkflowExecutionRequest {
            namespace: self.namespace(),
            workflow_execution: Some(execution.clone()),
            identity: self.identity.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
            reason: reason.to_owned(),
            ..RequestCancelWorkflowExecutionRequest::default()
        };
        WorkflowService::request_cancel_workflow_execution(
            &mut self.service(),
            request.into_request(),
        )
        .await
        .map_err(|status| OpsError::from_status(status, workflow_id))?;
        Ok(
            json!({"workflow_id": execution.workflow_id, "run_id": execution.run_id,
                  "action": "cancel", "reason": reason}),
        )
    }

    /// Terminates at once (no cleanup in the workflow); a reason is required.
    pub async fn terminate(
        &self,
        tenant: &TenantId,
        workflow_id: &str,
        run_id: Option<&str>,
        reason: &str,
    ) -> Result<Value, OpsError> {
        let reason = check_reason(reason)?;
        let execution = self.running(tenant, workflow_id, run_id).await?;
        let request = TerminateWorkflowExecutionRequest {
            namespace: self.namespace(),
            workflow_execution: Some(execution.clone()),
            reason: reason.to_owned(),
            identity: self.identity.clone(),
            ..TerminateWorkflowExecutionRequest::default()
        };
        WorkflowService::terminate_workflow_execution(&mut self.service(), request.into_request())
            .await
            .map_err(|status| OpsError::from_status(status, workflow_id))?;
        Ok(
            json!({"workflow_id": execution.workflow_id, "run_id": execution.run_id,
                  "action": "terminate", "reason": reason}),
        )
    }

    /// Resets the run to its last completed workflow task: a new run replays the history up to
    /// there and continues (signals after that point are reapplied). Returns the new run id.
    pub async fn reset(
        &self,
        tenant: &TenantId,
        workflow_id: &str,
        run_id: Option<&str>,
        reason: &str,
    ) -> Result<Value, OpsError> {
        let reason = check_reason(reason)?;
        let described = self.owned(tenant, workflow_id, run_id).await?;
        let execution = described
            .workflow_execution_info
            .and_then(|i| i.execution)
            .unwrap_or_else(|| Self::execution(workflow_id, run_id));
        let mut last_task = None;
        let mut token = Vec::new();
        loop {
            let request = GetWorkflowExecutionHistoryRequest {
                namespace: self.namespace(),
                execution: Some(execution.clone()),
                maximum_page_size: MAX_PAGE_SIZE,
                next_page_token: token,
                ..GetWorkflowExecutionHistoryRequest::default()
            };
            let response = WorkflowService::get_workflow_execution_history(
                &mut self.service(),
                request.into_request(),
            )
            .await
            .map_err(|status| OpsError::from_status(status, workflow_id))?
            .into_inner();
            for event in response.history.map(|h| h.events).unwrap_or_default() {
                if event.event_type == EventType::WorkflowTaskCompleted as i32 {
                    last_task = Some(event.event_id);
                }
            }
            if response.next_page_token.is_empty() {
                break;
            }
            token = response.next_page_token;
        }
        let event_id = last_task.ok_or_else(|| {
            OpsError::Conflict("the workflow has no completed workflow task to reset to".into())
        })?;
        let request = ResetWorkflowExecutionRequest {
            namespace: self.namespace(),
            workflow_execution: Some(execution.clone()),
            reason: reason.to_owned(),
            workflow_task_finish_event_id: event_id,
            request_id: uuid::Uuid::new_v4().to_string(),
            identity: self.identity.clone(),
            ..ResetWorkflowExecutionRequest::default()
        };
        let response =
            WorkflowService::reset_workflow_execution(&mut self.service(), request.into_request())
                .await
                .map_err(|status| OpsError::from_status(status, workflow_id))?
                .into_inner();
        Ok(
            json!({"workflow_id": execution.workflow_id, "run_id": response.run_id,
                  "previous_run_id": execution.run_id, "action": "reset",
                  "reset_to_event_id": event_id, "reason": reason}),
        )
    }

    /// A running workflow of the tenant (the exact run), or 404 / 409.
    async fn running(
        &self,
        tenant: &TenantId,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> Result<WorkflowExecution, OpsError> {
        let described = self.owned(tenant, workflow_id, run_id).await?;
        let info = described.workflow_execution_info.unwrap_or_default();
        if info.status != WorkflowExecutionStatus::Running as i32 {
            return Err(OpsError::Conflict(format!(
                "workflow `{workflow_id}` is {}, not running",
                status_name(info.status)
            )));
        }
        Ok(info
            .execution
            .unwrap_or_else(|| Self::execution(workflow_id, run_id)))
    }

    /// Delivers a typed operator action as the workflow's own update and returns its result.
    pub async fn act(
        &self,
        tenant: &TenantId,
        workflow_id: &str,
        action: &OperatorAction,
    ) -> Result<Value, OpsError> {
        let described = self.owned(tenant, workflow_id, None).await?;
        let info = described.workflow_execution_info.unwrap_or_default();
        let workflow_type = info.r#type.map(|t| t.name).unwrap_or_default();
        let target = action.target();
        if workflow_type != target {
            return Err(OpsError::Invalid(format!(
                "`{}` applies to {target} workflows; `{workflow_id}` is a {workflow_type} workflow",
                action.name()
            )));
        }
        if info.status != WorkflowExecutionStatus::Running as i32 {
            return Err(OpsError::Conflict(format!(
                "workflow `{workflow_id}` is {}, not running",
                status_name(info.status)
            )));
        }
        let result = self.update(workflow_id, action).await?;
        Ok(json!({"workflow_id": workflow_id, "action": action.name(), "result": result}))
    }

    /// Runs the action's update (typed, through the client's data converter) and waits for its
    /// result.
    async fn update(&self, workflow_id: &str, action: &OperatorAction) -> Result<Value, OpsError> {
        use temporalio_client::WorkflowExecuteUpdateOptions;
        use zengine_workflows::{ConversationWorkflow, OrderWorkflow, PaymentWorkflow};
        let options = WorkflowExecuteUpdateOptions::default;
        let result = match action {
            OperatorAction::ReturnToBot => self
                .client
                .get_workflow_handle::<ConversationWorkflow>(workflow_id)
                .execute_update(ConversationWorkflow::return_to_bot, (), options())
                .await
                .map(|replies| json!({ "replies": replies })),
            OperatorAction::ReviewPayment {
                approve,
                reviewer,
                note,
            } => self
                .client
                .get_workflow_handle::<PaymentWorkflow>(workflow_id)
                .execute_update(
                    PaymentWorkflow::review,
                    payment::Review {
                        approve: *approve,
                        reviewer: reviewer.clone(),
                        note: note.clone(),
                    },
                    options(),
                )
                .await
                .map(|view| serde_json::to_value(view).unwrap_or_default()),
            OperatorAction::ChangeOrderStatus { to, reason } => {
                let to = to
                    .parse()
                    .map_err(|e: String| OpsError::Invalid(format!("`to`: {e}")))?;
                self.client
                    .get_workflow_handle::<OrderWorkflow>(workflow_id)
                    .execute_update(
                        OrderWorkflow::change_status,
                        order::ChangeStatus {
                            to,
                            source: "operator".into(),
                            reason: reason.clone(),
                        },
                        options(),
                    )
                    .await
                    .map(|view| serde_json::to_value(view).unwrap_or_default())
            }
        };
        result.map_err(|error| {
            use temporalio_client::errors::WorkflowUpdateError;
            match error {
                WorkflowUpdateError::Failed(failure) => OpsError::Conflict(failure.message.clone()),
                WorkflowUpdateError::NotFound(_) => OpsError::not_found(workflow_id),
                other if other.to_string().contains("already completed") => {
                    OpsError::Conflict(format!("workflow `{workflow_id}` is not running"))
                }
                other => OpsError::Unavailable(other.to_string()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(encoding: &str, data: &str) -> SearchAttributes {
        let payload = Payload {
            metadata: [("encoding".to_owned(), encoding.as_bytes().to_vec())].into(),
            data: data.as_bytes().to_vec(),
            ..Payload::default()
        };
        SearchAttributes {
            indexed_fields: [(
                zengine_workflows::names::TENANT_ID.name().to_owned(),
                payload,
            )]
            .into(),
        }
    }

    #[test]
    fn a_list_keeps_only_workflows_tagged_with_the_tenant() {
        let demo = TenantId::parse("demo").unwrap();
        assert!(tagged_with(Some(&tagged("json/plain", "\"demo\"")), &demo));
        for other in [
            tagged("json/plain", "\"acme\""),
            tagged("json/plain", "[\"demo\"]"),
            tagged("binary/plain", "demo"),
            SearchAttributes::default(),
        ] {
            assert!(!tagged_with(Some(&other), &demo), "{other:?}");
        }
        assert!(!tagged_with(None, &demo));
    }
}
