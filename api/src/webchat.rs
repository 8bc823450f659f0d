//! `POST /v1/webchat/messages`: the synchronous webchat channel.
//!
//! The message is delivered to the conversation workflow with update-with-start: the workflow is
//! started when the session has none running, and the update's result (the bot's replies) is the
//! HTTP response. The idempotency key is the update id, so Temporal itself deduplicates a repeated
//! message within a run; the response is also remembered in the database, so a repeat after the
//! run closed still returns the same replies.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use temporalio_client::errors::{WorkflowUpdateError, WorkflowUpdateWithStartError};
use temporalio_client::{
    WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowUpdateWithStartOptions,
};
use zengine_channels::webchat::{self as webchat_http, WebchatError};
use zengine_domain::flow::Mode;
use zengine_domain::{
    Channel, ConversationId, IdempotencyKey, InboundMessage, Reply, SessionId, TenantId,
};
use zengine_storage::NewIdempotencyRecord;
use zengine_workflows::ConversationWorkflow;
use zengine_workflows::conversation::{ConversationInput, MessageOutcome};

use crate::metrics::Counted;
use crate::{ApiError, AppState, ErrorCode};

pub const TENANT_HEADER: HeaderName = HeaderName::from_static("x-tenant-id");
pub const IDEMPOTENCY_HEADER: HeaderName = HeaderName::from_static("x-idempotency-key");
/// Set on a response that was replayed from the idempotency store.
pub const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");

const SCOPE: &str = "webchat";

/// A parsed, validated webchat message.
type Parsed = webchat_http::WebchatMessage;

/// Response body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebchatReply {
    pub conversation_id: String,
    pub turn: u64,
    pub replies: Vec<Reply>,
    /// `BOT`, or `AGENT_HANDOFF` while a human agent has the conversation.
    pub mode: Mode,
}

fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<&'a str, ApiError> {
    let value = headers.get(name).ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::MissingHeader,
            format!("header `{name}` is required"),
        )
    })?;
    value.to_str().map_err(|_| {
        ApiError::bad_request(
            ErrorCode::InvalidHeader,
            format!("header `{name}` is not ASCII"),
        )
    })
}

fn invalid_header(name: &HeaderName, e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidHeader, format!("header `{name}`: {e}"))
}

fn parse_body(
    body: Result<Bytes, BytesRejection>,
    key: &IdempotencyKey,
) -> Result<Parsed, ApiError> {
    let body = crate::read_body(body)?;
    webchat_http::normalize(&body, key.as_str()).map_err(|e| match e {
        WebchatError::Malformed(_) => {
            ApiError::bad_request(ErrorCode::MalformedJson, e.to_string())
        }
        WebchatError::Field { .. } => ApiError::bad_request(ErrorCode::InvalidField, e.to_string()),
    })
}

fn request_hash(parsed: &Parsed) -> String {
    let mut hasher = Sha256::new();
    hasher.update(parsed.session.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(
        serde_json::to_vec(&(
            &parsed.message.text,
            &parsed.message.media,
            &parsed.message.location,
            &parsed.flow,
        ))
        .unwrap_or_default(),
    );
    hex::encode(hasher.finalize())
}

/// `OPTIONS /v1/webchat/messages`: the CORS preflight. A preflight carries no tenant, so it is
/// answered for any origin; the request itself is then checked against the tenant's
/// `cors_origins` ([`post_message`]).
pub async fn preflight(headers: HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(origin) = headers.get(axum::http::header::ORIGIN).cloned() {
        let h = response.headers_mut();
        h.insert(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            axum::http::header::ACCESS_CONTROL_ALLOW_METHODS,
            axum::http::HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            axum::http::header::ACCESS_CONTROL_ALLOW_HEADERS,
            axum::http::HeaderValue::from_static("content-type, x-tenant-id, x-idempotency-key"),
        );
        h.insert(
            axum::http::header::ACCESS_CONTROL_MAX_AGE,
            axum::http::HeaderValue::from_static("600"),
        );
        h.insert(
            axum::http::header::VARY,
            axum::http::HeaderValue::from_static("origin"),
        );
    }
    response
}

/// A browser request (`Origin`) of a tenant with `cors_origins` must come from one of them
/// (403 otherwise, before anything is processed); an allowed origin gets
/// `Access-Control-Allow-Origin`. Without configured origins no browser origin is allowed
/// (no CORS headers), requests without `Origin` (servers) are not affected.
pub async fn post_message(
    state: State<AppState>,
    headers: HeaderMap,
    client: crate::quota::ClientAddr,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let origin = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let tenant = headers
        .get(&TENANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| TenantId::parse(t).ok());
    let allowed = match (&origin, &tenant) {
        (Some(origin), Some(tenant)) => match state.db.tenants().cors_origins(tenant).await {
            Ok(list) if list.iter().any(|o| o == origin) => Some(origin.clone()),
            Ok(list) if !list.is_empty() => {
                return ApiError::forbidden(format!(
                    "origin `{origin}` is not allowed for this tenant"
                ))
                .into_response();
            }
            Ok(_) => None,
            Err(e) => return ApiError::internal(e).into_response(),
        },
        _ => None,
    };
    let mut response = match post_message_inner(state, headers, client, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    if let Some(origin) = allowed
        && let Ok(value) = axum::http::HeaderValue::from_str(&origin)
    {
        let h = response.headers_mut();
        h.insert(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        h.insert(
            axum::http::header::VARY,
            axum::http::HeaderValue::from_static("origin"),
        );
    }
    response
}

/// The `http` span of the request (see `request_context`) gets `tenant_id` and `workflow_id`.
async fn post_message_inner(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: crate::quota::ClientAddr,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Everything is checked before anything reaches Temporal.
    let tenant_id = header(&headers, &TENANT_HEADER)?;
    let tenant_id = TenantId::parse(tenant_id).map_err(|e| invalid_header(&TENANT_HEADER, e))?;
    let key = header(&headers, &IDEMPOTENCY_HEADER)?;
    let key = IdempotencyKey::parse(key).map_err(|e| invalid_header(&IDEMPOTENCY_HEADER, e))?;
    let parsed = parse_body(body, &key)?;
    tracing::Span::current().record("tenant_id", tenant_id.as_str());

    let (tenant, flow) = state
        .tenants
        .lookup(&state.db, &tenant_id, parsed.flow.as_deref())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::UnknownTenant,
                format!("tenant `{tenant_id}` does not exist"),
            )
        })?;
    if tenant.suspended {
        // Answered but not processed: nothing reaches the conversation workflow.
        state
            .db
            .tenants()
            .record_suppressed(&tenant_id, &format!("webchat/{}", key.as_str()), "webchat")
            .await?;
        tracing::info!("Webchat message for a suspended tenant suppressed");
        return Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"suspended": true, "replies": []})),
        )
            .into_response());
    }
    let hash = request_hash(&parsed);
    if let Some(stored) = state.db.idempotency().get(&tenant_id, SCOPE, &key).await? {
        if stored.request_hash != hash {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::IdempotencyKeyReused,
                "this x-idempotency-key was already used for a different message",
            ));
        }
        let status = StatusCode::from_u16(stored.response_status).unwrap_or(StatusCode::OK);
        let mut response = (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            stored.response_body,
        )
            .into_response();
        response.headers_mut().insert(
            REPLAYED_HEADER,
            axum::http::HeaderValue::from_static("true"),
        );
        return Ok(response);
    }
    let flow = flow.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::NoPublishedFlow,
            format!(
                "tenant `{tenant_id}` has no published flow `{}`",
                parsed.flow.as_deref().unwrap_or(&tenant.main_flow_id)
            ),
        )
    })?;

    // A replayed message above cost nothing; a new one (and a new session, which starts a
    // workflow) is counted against the client's and the tenant's limits.
    state.quotas.message(
        &state.settings.anonymous,
        &tenant_id,
        client.0,
        parsed.session.as_str(),
    )?;
    let conversation = ConversationId::new(tenant_id.clone(), Channel::Webchat, parsed.session);
    let workflow_id = conversation.workflow_id();
    tracing::Span::current().record("workflow_id", workflow_id.as_str());
    let input = ConversationInput {
        conversation,
        flow,
        session: Default::default(),
        carry: Default::default(),
        max_history_events: Some(state.settings.conversation_history_limit),
    };
    let message = parsed.message;
    let timeout = Duration::from_millis(state.settings.webchat_timeout_ms);
    let outcome = tokio::time::timeout(timeout, deliver(&state, &workflow_id, input, message))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorCode::Timeout,
                "the conversation did not answer in time; retrying with the same \
                 x-idempotency-key is safe and delivers the message at most once",
            )
        })??;

    tracing::info!(turn = outcome.turn, "Webchat message delivered");
    // Reporting (messages per day and channel); idempotent by id.
    state
        .db
        .events()
        .record(zengine_storage::NewEvent {
            event_id: &format!("webchat/{workflow_id}/{}", key.as_str()),
            tenant_id: &tenant_id,
            event_type: zengine_domain::events::EventType::ConversationMessageReceived,
            subject: &workflow_id,
            payload: &serde_json::json!({"channel": "webchat", "strategy": "webchat"}),
        })
        .await?;
    if !outcome.replies.is_empty() {
        state
            .db
            .events()
            .record(zengine_storage::NewEvent {
                event_id: &format!("webchat/{workflow_id}/{}/reply", key.as_str()),
                tenant_id: &tenant_id,
                event_type: zengine_domain::events::EventType::ConversationReplySent,
                subject: &workflow_id,
                payload: &serde_json::json!({"channel": "webchat"}),
            })
            .await?;
    }
    let reply = WebchatReply {
        conversation_id: workflow_id,
        turn: outcome.turn,
        replies: outcome.replies,
        mode: outcome.mode,
    };
    let body = serde_json::to_string(&reply).map_err(anyhow::Error::from)?;
    state
        .db
        .idempotency()
        .put(NewIdempotencyRecord {
            tenant_id: &tenant_id,
            scope: SCOPE,
            key: &key,
            request_hash: &hash,
            response_status: 200,
            response_body: &body,
            ttl_ms: i64::try_from(state.settings.idempotency_ttl_secs).unwrap_or(i64::MAX / 2000)
                * 1000,
        })
        .await?;
    Ok((StatusCode::OK, Json(reply)).into_response())
}

/// Update-with-start of the conversation; retried once if the run closed at that very moment.
async fn deliver(
    state: &AppState,
    workflow_id: &str,
    input: ConversationInput,
    message: InboundMessage,
) -> Result<MessageOutcome, ApiError> {
    let update_id = format!("{SCOPE}:{}", message.message_id);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let options = WorkflowUpdateWithStartOptions::new(
            state.queue(zengine_workflows::names::queues::CONVERSATIONS),
            workflow_id.to_owned(),
            WorkflowIdConflictPolicy::UseExisting,
        )
        .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicate)
        .update_id(update_id.clone())
        .build();
        let result = state
            .temporal
            .execute_update_with_start_workflow(
                ConversationWorkflow::run,
                input.clone(),
                ConversationWorkflow::handle_message,
                message.clone(),
                options,
            )
            .await
            .counted("Conversation");
        match result {
            Ok(outcome) => return Ok(outcome),
            Err(e) if attempt < 2 && is_closing_race(&e) => {
                tracing::info!(error.message = %e, "Conversation closed while delivering; retrying");
            }
            Err(e) => return Err(temporal_error(e)),
        }
    }
}

fn is_closing_race(e: &WorkflowUpdateWithStartError) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("already completed") || text.contains("workflow not found")
}

fn temporal_error(e: WorkflowUpdateWithStartError) -> ApiError {
    match e {
        WorkflowUpdateWithStartError::Update(WorkflowUpdateError::Failed(failure)) => {
            ApiError::invalid_field(format!(
                "the conversation rejected the message: {}",
                failure.message
            ))
        }
        other => {
            tracing::error!(error.message = %other, "Temporal update-with-start failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "the workflow service is unavailable; retrying with the same x-idempotency-key is safe",
            )
        }
    }
}

/// Query of `GET /v1/webchat/messages`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct OutboxQuery {
    pub session_id: String,
    /// Return entries after this sequence number (0: all kept).
    #[serde(default)]
    pub after: u64,
}

/// `GET /v1/webchat/messages?session_id=…&after=…`: replies the conversation produced outside
/// a request (after a wait, or when an agent returned it to the bot), for the widget to poll.
pub async fn get_messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<OutboxQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let tenant_id = header(&headers, &TENANT_HEADER)?;
    let tenant_id = TenantId::parse(tenant_id).map_err(|e| invalid_header(&TENANT_HEADER, e))?;
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(ErrorCode::InvalidField, e.body_text()))?;
    let session = SessionId::parse(query.session_id).map_err(|e| {
        ApiError::bad_request(ErrorCode::InvalidField, format!("field `session_id`: {e}"))
    })?;
    if state.db.tenants().get(&tenant_id).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownTenant,
            format!("tenant `{tenant_id}` does not exist"),
        ));
    }
    let id = ConversationId::new(tenant_id, Channel::Webchat, session).workflow_id();
    let entries = state
        .temporal
        .get_workflow_handle::<ConversationWorkflow>(&id)
        .query(
            ConversationWorkflow::outbox,
            query.after,
            temporalio_client::WorkflowQueryOptions::default(),
        )
        .await
        .map_err(|e| ApiError::not_found(format!("no conversation for this session ({e})")))?;
    Ok(Json(serde_json::json!({"conversation_id": id, "messages": entries})).into_response())
}
