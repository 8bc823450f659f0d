//! Management endpoints: publishing tenant flows and operator actions on conversations.
//! Publishing needs an admin, return-to-bot an operator (a JWT or the admin token; not an API key).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use temporalio_client::WorkflowExecuteUpdateOptions;
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
