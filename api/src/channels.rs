//! Channel operations and the domain-event stream (tenant in `x-tenant-id`, management token):
//!
//! - `GET /v1/events?after=&limit=&type=`: the tenant's domain events in stream order, for
//!   consumers that page with the returned `next_after` and dedupe by `event_id`;
//! - `GET /v1/channels/dead-letters`, `POST /v1/channels/dead-letters/{client_message_id}/redrive`:
//!   messages the channels gave up on, and sending one again (a `RedriveOutbound` workflow;
//!   the message keeps its id, so a provider that had accepted it is not asked twice);
//! - `GET /v1/channels/health`: the last health check of each account (the schedule runs every
//!   5 minutes), `POST /v1/channels/health/check` runs one now;
//! - `GET|POST /v1/channels/360dialog/templates`, `DELETE …/{name}`: WhatsApp templates of the
//!   tenant's `360dialog-templates` account.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
use zengine_channels::DIALOG360_TEMPLATES;
use zengine_channels::sdk::StrategyEnv;
use zengine_channels::whatsapp::templates::{self, TemplateError};
use zengine_storage::OutboundRecord;
use zengine_workflows::channels::{ChannelHealthWorkflow, HealthScope};
use zengine_workflows::names::queues;

use crate::auth::{Role, caller_of};
use crate::metrics::Counted;
use crate::{ApiError, AppState, ErrorCode};

/// Events held back until they are this old, so a cursor never skips one still committing.
const EVENT_SETTLE_MS: i64 = 1_000;

#[derive(Deserialize, schemars::JsonSchema)]
pub struct EventsQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default, rename = "type")]
    event_type: Option<String>,
}

fn invalid(field: &str, problem: &str) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidField, format!("`{field}`: {problem}"))
}

/// `GET /v1/events`.
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let caller = caller_of(&state, &headers, Role::Viewer).await?;
    let q = crate::read_query(q)?;
    let tenant_id = caller.tenant;
    let after = match q.after.as_deref() {
        None | Some("") => 0,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .ok_or_else(|| invalid("after", "must be a cursor returned as next_after"))?,
    };
    let limit = i64::from(crate::query_limit(q.limit.as_deref(), 100, 1000)?);
    if q.event_type.as_ref().is_some_and(|t| t.len() > 128) {
        return Err(invalid("type", "is longer than 128 characters"));
    }
    let page = state
        .db
        .events()
        .page(
            &tenant_id,
            after,
            limit,
            q.event_type.as_deref().filter(|t| !t.is_empty()),
            EVENT_SETTLE_MS,
        )
        .await?;
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|e| {
            json!({
                "event_id": e.event_id,
                "type": e.event_type,
                "subject": e.subject,
                "payload": e.payload,
                "occurred_at": e.occurred_at,
                "seq": e.seq,
            })
        })
        .collect();
    Ok(Json(json!({"events": events, "next_after": page.next_after.to_string()})).into_response())
}

fn dead_letter_json(r: &OutboundRecord) -> Value {
    json!({
        "client_message_id": r.client_message_id,
        "strategy": r.strategy,
        "recipient": r.recipient,
        "state": r.state,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "reply": r.payload,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    })
}

/// `GET /v1/channels/dead-letters`.
pub async fn dead_letters(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller_of(&state, &headers, Role::Viewer).await?;
    let tenant_id = caller.tenant;
    let letters = state.db.channels().dead_letters(&tenant_id).await?;
    let items: Vec<Value> = letters.iter().map(dead_letter_json).collect();
    Ok(Json(json!({"dead_letters": items})).into_response())
}

/// `POST /v1/channels/dead-letters/{client_message_id}/redrive`: 202 with the re-drive
/// workflow id; 404 when there is no such dead letter (never was, or re-driven already).
pub async fn redrive(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(client_message_id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller_of(&state, &headers, Role::Operator).await?;
    let redriven = crate::ops::dead_letters::DeadLetters::of(&state)
        .redrive(&caller.tenant, &client_message_id)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(redriven)).into_response())
}

/// `GET /v1/channels/health`.
pub async fn health(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller_of(&state, &headers, Role::Viewer).await?;
    let tenant_id = caller.tenant;
    let rows = state.db.channels().health(&tenant_id).await?;
    Ok(Json(json!({"accounts": rows})).into_response())
}

/// `POST /v1/channels/health/check`: runs the health workflow now and answers with the
/// tenant's part of its report.
pub async fn check_health(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller_of(&state, &headers, Role::Operator).await?;
    let tenant_id = caller.tenant;
    let workflow_id = format!("{tenant_id}/channel-health/{}", uuid::Uuid::new_v4());
    let handle = state
        .temporal
        .start_workflow(
            ChannelHealthWorkflow::run,
            HealthScope {
                tenant: Some(tenant_id.clone()),
            },
            WorkflowStartOptions::new(state.queue(queues::CHANNELS), workflow_id).build(),
        )
        .await
        .counted("ChannelHealth")
        .map_err(|e| ApiError::internal(anyhow::anyhow!("start health check: {e}")))?;
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Timeout,
            "the health check did not finish within 30 s; its result will show in GET /v1/channels/health",
        )
    })?
    .map_err(|e| ApiError::internal(anyhow::anyhow!("health check: {e}")))?;
    let mine = report
        .tenants
        .into_iter()
        .find(|(t, _)| t == &tenant_id)
        .map(|(_, accounts)| accounts)
        .unwrap_or_default();
    Ok(Json(json!({"accounts": mine})).into_response())
}

async fn templates_account(
    state: &AppState,
    headers: &HeaderMap,
    role: Role,
) -> Result<zengine_storage::ChannelAccount, ApiError> {
    let caller = caller_of(state, headers, role).await?;
    let tenant_id = caller.tenant;
    state
        .db
        .channels()
        .account(&tenant_id, DIALOG360_TEMPLATES)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "tenant `{tenant_id}` has no `{DIALOG360_TEMPLATES}` account"
            ))
        })
}

fn template_error(e: TemplateError) -> ApiError {
    match e {
        TemplateError::Config(e) => ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("the account is misconfigured: {e}"),
        ),
        TemplateError::Refused { status, message } => {
            ApiError::invalid_field(format!("360dialog refused (HTTP {status}): {message}"))
        }
        TemplateError::Unavailable(m) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::Unavailable,
            format!("360dialog is unavailable ({m}); retrying is safe"),
        ),
    }
}

/// `GET /v1/channels/360dialog/templates`.
pub async fn list_templates(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let account = templates_account(&state, &headers, Role::Viewer).await?;
    let list = templates::list(&StrategyEnv::with_guard(state.outbound.clone()), &account)
        .await
        .map_err(template_error)?;
    Ok(Json(json!({"templates": list})).into_response())
}

/// `POST /v1/channels/360dialog/templates`: `{name, category, language, components}`.
pub async fn create_template(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let account = templates_account(&state, &headers, Role::Admin).await?;
    let template: Value = crate::read_json(body)?;
    let name = template.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty()
        || name.len() > 512
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(invalid(
            "name",
            "must be 1 to 512 lowercase letters, digits or '_'",
        ));
    }
    if !matches!(
        template.get("category").and_then(Value::as_str),
        Some("AUTHENTICATION" | "MARKETING" | "UTILITY")
    ) {
        return Err(invalid(
            "category",
            "must be AUTHENTICATION, MARKETING or UTILITY",
        ));
    }
    if template
        .get("language")
        .and_then(Value::as_str)
        .is_none_or(|l| l.is_empty() || l.len() > 16)
    {
        return Err(invalid("language", "is required (e.g. `es`)"));
    }
    if !template.get("components").is_some_and(Value::is_array) {
        return Err(invalid("components", "must be an array"));
    }
    let created = templates::create(
        &StrategyEnv::with_guard(state.outbound.clone()),
        &account,
        &template,
    )
    .await
    .map_err(template_error)?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `DELETE /v1/channels/360dialog/templates/{name}`.
pub async fn delete_template(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let account = templates_account(&state, &headers, Role::Admin).await?;
    if name.is_empty() || name.len() > 512 {
        return Err(invalid("name", "must be 1 to 512 characters"));
    }
    templates::delete(
        &StrategyEnv::with_guard(state.outbound.clone()),
        &account,
        &name,
    )
    .await
    .map_err(template_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The body of `POST /v1/channels/amazon-connect/contacts` (other fields are ignored: contact
/// flows may send more).
#[derive(Deserialize, schemars::JsonSchema)]
pub struct ConnectContact {
    /// The chat's contact id.
    contact_id: String,
    /// The bot participant's token (`CreateParticipant` with role `CUSTOM_BOT`).
    participant_token: String,
}

/// `POST /v1/channels/amazon-connect/contacts` `{contact_id, participant_token}`: the contact
/// flow registers the bot participant it created for a chat (`CreateParticipant` with role
/// `CUSTOM_BOT`), so replies to that contact can be sent. Idempotent.
pub async fn register_connect_contact(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = caller_of(&state, &headers, Role::Operator).await?;
    let tenant_id = caller.tenant;
    let contact: ConnectContact = crate::read_json(body)?;
    zengine_domain::SessionId::parse(contact.contact_id.as_str())
        .map_err(|e| invalid("contact_id", &e.to_string()))?;
    if contact.participant_token.trim().is_empty() || contact.participant_token.len() > 4096 {
        return Err(invalid("participant_token", "must be 1 to 4096 characters"));
    }
    if state
        .db
        .channels()
        .account(&tenant_id, zengine_channels::connect::AMAZON_CONNECT_CHAT)
        .await?
        .is_none()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("tenant `{tenant_id}` has no `amazon-connect-chat` account"),
        ));
    }
    state
        .db
        .channels()
        .register_connect_participant(&tenant_id, &contact.contact_id, &contact.participant_token)
        .await?;
    Ok(Json(json!({"contact_id": contact.contact_id, "registered": true})).into_response())
}
