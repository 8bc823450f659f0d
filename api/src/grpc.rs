//! The gRPC operator service `zengine.ops.v1.Operations` (`api/proto/zengine/ops/v1/ops.proto`),
//! with server reflection. The same operations, authentication and tenant restriction as the
//! REST API under `/v1/ops` (both call [`crate::ops::Operations`]).
//!
//! Credentials travel in metadata: `authorization: Bearer <JWT>` (or the admin token plus
//! `x-tenant-id`). API keys are refused, as on `/v1/ops`.

use std::future::Future;

use anyhow::Context;
use serde::Serialize;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::auth::{Caller, Credentials, Role};
use crate::ops::dead_letters::{DeadLetters, REDRIVE_ACTION};
use crate::ops::{ListFilter, Operations, OpsError};
use crate::{ApiError, AppState};

/// Generated messages, server and client.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("zengine.ops.v1");

    /// The encoded descriptor set (served by reflection).
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/ops_descriptor.bin"));
}

use proto::operations_server::{Operations as OperationsRpc, OperationsServer};

/// Full name of the service (as reflection lists it).
pub const SERVICE_NAME: &str = "zengine.ops.v1.Operations";

/// An [`ApiError`] as a gRPC status with the same meaning.
fn api_status(error: ApiError) -> Status {
    let message = error.message;
    match error.status.as_u16() {
        401 => Status::unauthenticated(message),
        403 => Status::permission_denied(message),
        404 => Status::not_found(message),
        409 => Status::failed_precondition(message),
        429 => Status::resource_exhausted(message),
        400 | 413 | 422 => Status::invalid_argument(message),
        503 => Status::unavailable(message),
        _ => Status::internal(message),
    }
}

fn ops_status(error: OpsError) -> Status {
    api_status(ApiError::from(error))
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn opt(text: &str) -> Option<&str> {
    Some(text).filter(|t| !t.is_empty())
}

/// The service implementation.
#[derive(Clone)]
pub struct OpsService {
    state: AppState,
}

impl OpsService {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    async fn caller<T>(&self, request: &Request<T>, role: Role) -> Result<Caller, Status> {
        let metadata = request.metadata();
        let text = |name: &str| metadata.get(name).and_then(|v| v.to_str().ok());
        let credentials = Credentials {
            token: text("authorization").map(|v| v.strip_prefix("Bearer ").unwrap_or("")),
            tenant_header: text("x-tenant-id"),
        };
        let caller = self
            .state
            .auth
            .authenticate(&self.state.db, credentials, None)
            .await
            .map_err(api_status)?;
        caller.require_operator_credential().map_err(api_status)?;
        caller.require(role).map_err(api_status)?;
        Ok(caller)
    }

    fn ops(&self) -> Operations {
        Operations::new(self.state.temporal.clone())
    }

    fn dead_letters(&self) -> DeadLetters {
        DeadLetters::of(&self.state)
    }
}

fn redriven(r: crate::ops::dead_letters::Redriven) -> proto::Redriven {
    proto::Redriven {
        client_message_id: r.client_message_id,
        workflow_id: r.workflow_id,
    }
}

fn summary(s: crate::ops::WorkflowSummary) -> proto::WorkflowSummary {
    proto::WorkflowSummary {
        workflow_id: s.workflow_id,
        run_id: s.run_id,
        workflow_type: s.workflow_type,
        status: s.status,
        task_queue: s.task_queue,
        start_time: s.start_time.unwrap_or_default(),
        close_time: s.close_time.unwrap_or_default(),
        history_length: s.history_length,
    }
}

fn causes(chain: Vec<crate::ops::FailureCause>) -> Vec<proto::FailureCause> {
    chain
        .into_iter()
        .map(|c| proto::FailureCause {
            message: c.message,
            r#type: c.failure_type,
            source: c.source,
        })
        .collect()
}

#[tonic::async_trait]
impl OperationsRpc for OpsService {
    async fn list_workflows(
        &self,
        request: Request<proto::ListWorkflowsRequest>,
    ) -> Result<Response<proto::ListWorkflowsResponse>, Status> {
        let caller = self.caller(&request, Role::Viewer).await?;
        let r = request.into_inner();
        let filter = ListFilter {
            workflow_type: opt(&r.workflow_type).map(str::to_owned),
            status: opt(&r.status).map(str::to_owned),
            started_after: opt(&r.started_after).map(str::to_owned),
            started_before: opt(&r.started_before).map(str::to_owned),
            query: opt(&r.query).map(str::to_owned),
        };
        let page_size = if r.page_size == 0 { 20 } else { r.page_size };
        let page = self
            .ops()
            .list(&caller.tenant, &filter, page_size, opt(&r.page_token))
            .await
            .map_err(ops_status)?;
        Ok(Response::new(proto::ListWorkflowsResponse {
            workflows: page.workflows.into_iter().map(summary).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn describe_workflow(
        &self,
        request: Request<proto::DescribeWorkflowRequest>,
    ) -> Result<Response<proto::DescribeWorkflowResponse>, Status> {
        let caller = self.caller(&request, Role::Viewer).await?;
        let r = request.into_inner();
        let d = self
            .ops()
            .describe(&caller.tenant, &r.workflow_id, opt(&r.run_id))
            .await
            .map_err(ops_status)?;
        Ok(Response::new(proto::DescribeWorkflowResponse {
            workflow: Some(summary(d.summary)),
            execution_time: d.execution_time.unwrap_or_default(),
            parent_workflow_id: d.parent_workflow_id.unwrap_or_default(),
            pending_activities: d
                .pending_activities
                .into_iter()
                .map(|a| proto::PendingActivity {
                    activity_id: a.activity_id,
                    activity_type: a.activity_type,
                    state: a.state,
                    attempt: a.attempt,
                    maximum_attempts: a.maximum_attempts,
                    scheduled_time: a.scheduled_time.unwrap_or_default(),
                    last_started_time: a.last_started_time.unwrap_or_default(),
                    last_heartbeat_time: a.last_heartbeat_time.unwrap_or_default(),
                    last_failure: causes(a.last_failure),
                })
                .collect(),
            state_json: d.state.as_ref().map(json).unwrap_or_default(),
            state_error: d.state_error.unwrap_or_default(),
            actions: d.actions.into_iter().map(str::to_owned).collect(),
        }))
    }

    async fn get_history(
        &self,
        request: Request<proto::GetHistoryRequest>,
    ) -> Result<Response<proto::GetHistoryResponse>, Status> {
        let caller = self.caller(&request, Role::Viewer).await?;
        let r = request.into_inner();
        let page_size = if r.page_size == 0 { 200 } else { r.page_size };
        let page = self
            .ops()
            .history(
                &caller.tenant,
                &r.workflow_id,
                opt(&r.run_id),
                page_size,
                opt(&r.page_token),
            )
            .await
            .map_err(ops_status)?;
        Ok(Response::new(proto::GetHistoryResponse {
            workflow_id: page.workflow_id,
            run_id: page.run_id,
            events: page
                .events
                .into_iter()
                .map(|e| proto::TimelineEvent {
                    event_id: e.event_id,
                    event_type: e.event_type,
                    time: e.time.unwrap_or_default(),
                    since_previous_ms: e.since_previous_ms.unwrap_or(-1),
                    since_scheduled_ms: e.since_scheduled_ms.unwrap_or(-1),
                    details_json: json(&e.details),
                    failure: causes(e.failure),
                })
                .collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn cancel_workflow(
        &self,
        request: Request<proto::LifecycleRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        let caller = self.caller(&request, Role::Operator).await?;
        let r = request.into_inner();
        let result = self
            .ops()
            .cancel(&caller.tenant, &r.workflow_id, opt(&r.run_id), &r.reason)
            .await
            .map_err(ops_status)?;
        Ok(Response::new(proto::ActionResponse {
            result_json: json(&result),
        }))
    }

    async fn terminate_workflow(
        &self,
        request: Request<proto::LifecycleRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        let caller = self.caller(&request, Role::Operator).await?;
        let r = request.into_inner();
        let result = self
            .ops()
            .terminate(&caller.tenant, &r.workflow_id, opt(&r.run_id), &r.reason)
            .await
            .map_err(ops_status)?;
        Ok(Response::new(proto::ActionResponse {
            result_json: json(&result),
        }))
    }

    async fn reset_workflow(
        &self,
        request: Request<proto::LifecycleRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        let caller = self.caller(&request, Role::Operator).await?;
        let r = request.into_inner();
        let result = self
            .ops()
            .reset(&caller.tenant, &r.workflow_id, opt(&r.run_id), &r.reason)
            .await
            .map_err(ops_status)?;
        Ok(Response::new(proto::ActionResponse {
            result_json: json(&result),
        }))
    }

    async fn act(
        &self,
        request: Request<proto::ActRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        let caller = self.caller(&request, Role::Operator).await?;
        let r = request.into_inner();
        if r.action == REDRIVE_ACTION {
            if [&r.reviewer, &r.note, &r.to, &r.reason]
                .iter()
                .any(|f| !f.is_empty())
            {
                return Err(Status::invalid_argument(format!(
                    "`{REDRIVE_ACTION}` takes no fields"
                )));
            }
            let result = self
                .dead_letters()
                .redrive_conversation(&caller.tenant, &r.workflow_id)
                .await
                .map_err(ops_status)?;
            return Ok(Response::new(proto::ActionResponse {
                result_json: json(&serde_json::json!({
                    "workflow_id": r.workflow_id, "action": REDRIVE_ACTION, "result": result,
                })),
            }));
        }
        let body = crate::ops::rest::ActionBody {
            reviewer: opt(&r.reviewer).map(str::to_owned),
            note: opt(&r.note).map(str::to_owned),
            to: opt(&r.to).map(str::to_owned),
            reason: opt(&r.reason).map(str::to_owned),
        };
        let action =
            crate::ops::rest::parse_action(&r.action, body, &caller).map_err(ops_status)?;
        let result = self
            .ops()
            .act(&caller.tenant, &r.workflow_id, &action)
            .await
            .map_err(ops_status)?;
        Ok(Response::new(proto::ActionResponse {
            result_json: json(&result),
        }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<proto::ListDeadLettersRequest>,
    ) -> Result<Response<proto::ListDeadLettersResponse>, Status> {
        let caller = self.caller(&request, Role::Viewer).await?;
        let r = request.into_inner();
        let letters = self
            .dead_letters()
            .list(&caller.tenant, opt(&r.conversation_id))
            .await
            .map_err(ops_status)?;
        Ok(Response::new(proto::ListDeadLettersResponse {
            dead_letters: letters
                .into_iter()
                .map(|d| proto::DeadLetter {
                    client_message_id: d.client_message_id,
                    conversation_id: d.conversation_id.unwrap_or_default(),
                    strategy: d.strategy,
                    recipient: d.recipient,
                    state: d.state,
                    attempts: d.attempts,
                    last_error: d.last_error.unwrap_or_default(),
                    reply_json: json(&d.reply),
                    created_at: d.created_at,
                    updated_at: d.updated_at,
                })
                .collect(),
        }))
    }

    async fn redrive_dead_letter(
        &self,
        request: Request<proto::RedriveDeadLetterRequest>,
    ) -> Result<Response<proto::Redriven>, Status> {
        let caller = self.caller(&request, Role::Operator).await?;
        let r = request.into_inner();
        let result = self
            .dead_letters()
            .redrive(&caller.tenant, &r.client_message_id)
            .await
            .map_err(ops_status)?;
        tracing::info!(
            tenant_id = %caller.tenant, client_message_id = %r.client_message_id,
            by = %caller.subject, "Dead letter re-driven (gRPC)"
        );
        Ok(Response::new(redriven(result)))
    }

    async fn redrive_conversation(
        &self,
        request: Request<proto::RedriveConversationRequest>,
    ) -> Result<Response<proto::RedriveConversationResponse>, Status> {
        let caller = self.caller(&request, Role::Operator).await?;
        let r = request.into_inner();
        let result = self
            .dead_letters()
            .redrive_conversation(&caller.tenant, &r.conversation_id)
            .await
            .map_err(ops_status)?;
        Ok(Response::new(proto::RedriveConversationResponse {
            conversation_id: result.conversation_id,
            redriven: result.redriven.into_iter().map(redriven).collect(),
            already_redriven: result.already_redriven,
        }))
    }
}

/// Serves the operator service and reflection on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("Failed to build gRPC reflection")?;
    tracing::info!(addr = %listener.local_addr()?, "gRPC operator service listening");
    tonic::transport::Server::builder()
        .add_service(OperationsServer::new(OpsService::new(state)))
        .add_service(reflection)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
        .context("gRPC server failed")
}
