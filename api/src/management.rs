//! Management endpoints: publishing tenant flows and operator actions on conversations.
//! Publishing needs an admin, return-to-bot an operator (a JWT or the admin token; not an API key).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use temporalio_client::WorkflowExecuteUpdateOptions;
use zengine_domain::flow::simulate::{self, Stubs};
use zengine_domain::flow::{FlowError, FlowGraph};
use zengine_domain::{ConversationId, SessionId, TenantId};
use zengine_workflows::ConversationWorkflow;

use crate::auth::{Caller, Role};
use crate::{ApiError, AppState, ErrorCode};

/// The path's tenant for a caller with at least `role` (403 below it; 404 for a tenant that is
/// not the caller's).
pub(crate) async fn tenant_as(
    state: &AppState,
    caller: &Caller,
    raw: &str,
    role: Role,
) -> Result<TenantId, ApiError> {
    caller.require(role)?;
    Ok(existing_tenant(state, caller, raw).await?.tenant_id)
}

/// The caller's tenant row, after checking the path names the caller's tenant.
pub(crate) async fn existing_tenant(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<zengine_storage::Tenant, ApiError> {
    caller.owns(raw)?;
    state
        .db
        .tenants()
        .get(&caller.tenant)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::UnknownTenant,
                format!("tenant `{raw}` does not exist"),
            )
        })
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct PublishQuery {
    /// Make this flow the one new conversations of the tenant run.
    #[serde(default)]
    main: bool,
}

/// `PUT /v1/tenants/{tenant}/flows/{name}`: validates and publishes the next version.
pub async fn publish_flow(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    query: Result<Query<PublishQuery>, axum::extract::rejection::QueryRejection>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let query = crate::read_query(query)?;
    let tenant = existing_tenant(&state, &caller, &tenant).await?;
    valid_flow_name(&name)?;
    let body = crate::read_body(body)?;
    let doc: serde_json::Value = crate::parse_json(&body)?;
    let flow = flow_of(&name, doc)?.map_err(invalid_flow)?;
    let version = state
        .db
        .tenants()
        .publish_flow_as(&tenant.tenant_id, &flow, Some(&caller.subject))
        .await?;
    state.tenants.invalidate(&tenant.tenant_id);
    if query.main && tenant.main_flow_id != name {
        state
            .db
            .tenants()
            .upsert(&tenant.tenant_id, &tenant.name, &name)
            .await?;
        state.tenants.invalidate(&tenant.tenant_id);
    }
    let main = query.main || tenant.main_flow_id == name;
    tracing::info!(tenant_id = %tenant.tenant_id, flow = %name, version, "Flow published");
    Ok((
        StatusCode::CREATED,
        Json(json!({"tenant": tenant.tenant_id, "flow": name, "version": version, "main": main})),
    )
        .into_response())
}

/// The flow document sent for `name`: the path names the flow and the server assigns the
/// version, so those two fields are set here. `Ok(Err(..))`: every problem the validator of
/// `zengine flow validate` finds, each naming its node and field.
pub(crate) fn flow_of(
    name: &str,
    mut doc: serde_json::Value,
) -> Result<Result<FlowGraph, Vec<FlowError>>, ApiError> {
    if !doc.is_object() {
        return Err(ApiError::bad_request(
            ErrorCode::MalformedJson,
            "a flow is a JSON object",
        ));
    }
    doc["id"] = json!(name);
    doc["version"] = json!(0);
    Ok(FlowGraph::from_json(&doc.to_string()))
}

/// 422 unless `name` may name a flow ([`zengine_domain::flow::is_valid_flow_id`]).
pub(crate) fn valid_flow_name(name: &str) -> Result<(), ApiError> {
    if zengine_domain::flow::is_valid_flow_id(name) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "path `name`: 1 to 64 letters, digits, `-`, `_` or `.`",
        ))
    }
}

pub(crate) fn invalid_flow(errors: Vec<FlowError>) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidFlow,
        format!("the flow has {} problem(s)", errors.len()),
    )
    .with_details(errors.iter().map(ToString::to_string).collect())
}

/// The answer of [`validate_flow`].
#[derive(Serialize, schemars::JsonSchema)]
pub struct FlowValidation {
    pub valid: bool,
    /// Every problem, pinned to its node and field (`node: null`: the document as a whole).
    pub errors: Vec<FlowError>,
}

/// `POST /v1/tenants/{tenant}/flows/{name}/validate`: checks a draft without publishing it
/// (the flow studio's live validation): 200 with `valid` and the located problems.
pub async fn validate_flow(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    tenant_as(&state, &caller, &tenant, Role::Admin).await?;
    let doc: serde_json::Value = crate::parse_json(&crate::read_body(body)?)?;
    let errors = flow_of(&name, doc)?.err().unwrap_or_default();
    Ok(Json(FlowValidation {
        valid: errors.is_empty(),
        errors,
    })
    .into_response())
}

/// Most customer inputs one simulation takes, and the longest input.
const MAX_SIMULATED_INPUTS: usize = 100;
const MAX_SIMULATED_INPUT_CHARS: usize = 4096;

/// The body of [`simulate_flow`].
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateBody {
    /// The draft to run; the latest published version of the path's flow when absent.
    #[serde(default)]
    flow: Option<serde_json::Value>,
    /// The customer's messages, in order (1 to 100, each at most 4096 characters).
    inputs: Vec<String>,
    /// How commands end (they never run).
    #[serde(default)]
    stubs: Stubs,
    /// Give a handed-off conversation back to the bot at the next input.
    #[serde(default)]
    auto_return: bool,
}

/// `POST /v1/tenants/{tenant}/flows/{name}/simulate`: runs a draft (or the published flow) on
/// the customer inputs given with the interpreter the conversation workflow runs, commands
/// stubbed, waits skipped (the flow studio's preview; `zengine flow simulate` runs the same
/// engine). Starts no workflow and writes nothing.
pub async fn simulate_flow(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let tenant = existing_tenant(&state, &caller, &tenant).await?;
    let body: SimulateBody = crate::read_json(body)?;
    if body.inputs.is_empty() || body.inputs.len() > MAX_SIMULATED_INPUTS {
        return Err(ApiError::invalid_field(format!(
            "field `inputs`: 1 to {MAX_SIMULATED_INPUTS} messages"
        )));
    }
    if let Some(i) = body
        .inputs
        .iter()
        .position(|m| m.chars().count() > MAX_SIMULATED_INPUT_CHARS)
    {
        return Err(ApiError::invalid_field(format!(
            "field `inputs[{i}]`: at most {MAX_SIMULATED_INPUT_CHARS} characters"
        )));
    }
    let graph = match body.flow {
        Some(doc) => flow_of(&name, doc)?.map_err(invalid_flow)?,
        None => state
            .db
            .tenants()
            .latest_flow(&tenant.tenant_id, &name)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!("flow `{name}` has no published version"))
            })?,
    };
    let transcript = simulate::simulate(&graph, &body.inputs, &body.stubs, body.auto_return);
    Ok(Json(transcript).into_response())
}

/// `GET /v1/tenants/{tenant}/flows/{name}`: the latest published version.
pub async fn get_flow(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let tenant = existing_tenant(&state, &caller, &tenant).await?;
    let flow = state
        .db
        .tenants()
        .latest_flow(&tenant.tenant_id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow `{name}` has no published version")))?;
    Ok(Json(flow).into_response())
}

fn conversation_id(tenant: &str, channel: &str, contact: &str) -> Result<ConversationId, ApiError> {
    let bad =
        |e: zengine_domain::IdError| ApiError::not_found(format!("no such conversation: {e}"));
    Ok(ConversationId::new(
        TenantId::parse(tenant).map_err(bad)?,
        channel.parse().map_err(bad)?,
        SessionId::parse(contact).map_err(bad)?,
    ))
}

/// `POST /v1/conversations/{tenant}/{channel}/{contact}/return-to-bot`: an operator gives a
/// handed-off conversation back to the bot.
pub async fn return_to_bot(
    State(state): State<AppState>,
    Path((tenant, channel, contact)): Path<(String, String, String)>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    caller.owns(&tenant)?;
    let id = conversation_id(&tenant, &channel, &contact)?;
    let handle = state
        .temporal
        .get_workflow_handle::<ConversationWorkflow>(state.conversation_workflow_id(&id));
    match handle
        .execute_update(
            ConversationWorkflow::return_to_bot,
            (),
            WorkflowExecuteUpdateOptions::default(),
        )
        .await
    {
        Ok(replies) => {
            let workflow_id = state.conversation_workflow_id(&id);
            // Reporting (resolution time of a handoff): the agent gave it back.
            state
                .db
                .events()
                .record(zengine_storage::NewEvent {
                    event_id: &format!("{workflow_id}/returned/{}", uuid::Uuid::new_v4()),
                    tenant_id: &id.tenant,
                    event_type: zengine_domain::events::EventType::ConversationReturnedToBot,
                    subject: &workflow_id,
                    payload: &json!({"channel": id.channel.as_str(), "by": caller.subject}),
                })
                .await?;
            Ok(
                Json(json!({"conversation_id": workflow_id, "mode": "BOT", "replies": replies}))
                    .into_response(),
            )
        }
        Err(e) => Err(crate::error::update_error(
            e,
            ApiError::not_found(format!("conversation `{id}` is not running")),
            "ReturnToBot",
        )),
    }
}
