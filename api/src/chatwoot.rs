//! The agent desk through Chatwoot: the tenant's Chatwoot configuration
//! (`/v1/tenants/{tenant}/chatwoot`) and Chatwoot's webhook (`POST /v1/webhooks/chatwoot/{tenant}`).
//!
//! The webhook is authenticated with the tenant's webhook secret: `X-Chatwoot-Signature` is
//! `sha256=` + hex HMAC-SHA256 of `{X-Chatwoot-Timestamp}.{raw body}`, and the timestamp must
//! be within [`TIMESTAMP_TOLERANCE_SECS`] of now. Unsigned, badly signed or stale requests get
//! 401 and change nothing. Then:
//!
//! - `message_created`, `outgoing`, not private, not from the contact, not one we posted →
//!   the `AgentReply` signal of the mirrored conversation, which sends it to the customer
//!   through the conversation's own channel; deduplicated by Chatwoot message id;
//! - `conversation_status_changed` to `resolved` (or `conversation_resolved`) → the
//!   `AgentDeskResolved` update: back to the bot, once;
//! - anything else, a Chatwoot conversation we did not mirror, or a suspended tenant → 200
//!   with what was ignored (Chatwoot stops retrying). A tenant without Chatwoot → 404.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use temporalio_client::{WorkflowExecuteUpdateOptions, WorkflowSignalOptions};
use zengine_domain::TenantId;
use zengine_domain::channel::whatsapp::constant_time_eq;
use zengine_storage::{ChatwootSettings, NewEvent};
use zengine_workflows::ConversationWorkflow;
use zengine_workflows::conversation::AgentReply;

use crate::auth::AdminCaller;
use crate::{ApiError, AppState, ErrorCode};

/// How far `X-Chatwoot-Timestamp` may be from now, in seconds (replay protection).
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 300;
/// Inbound-receipt strategy name of Chatwoot messages (`chatwoot`, `{tenant}/{message id}`).
const RECEIPTS: &str = "chatwoot";

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
}

/// Body of `PUT /v1/tenants/{tenant}/chatwoot`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChatwootBody {
    /// `https://chatwoot.example` (http or https, no path, query or credentials).
    #[serde(default)]
    base_url: Option<String>,
    /// Chatwoot account id (≥ 1).
    #[serde(default)]
    account_id: Option<i64>,
    /// Id of the inbox handoffs go to (≥ 1; an API channel inbox).
    #[serde(default)]
    inbox_id: Option<i64>,
    /// Secret reference (`env:NAME`, `file:/path`) of the `api_access_token`.
    #[serde(default)]
    api_access_token: Option<String>,
    /// Secret reference of the webhook's HMAC secret.
    #[serde(default)]
    webhook_secret: Option<String>,
}

fn valid_base_url(raw: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(raw) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.path().trim_end_matches('/').is_empty()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
}

fn validate(body: ChatwootBody) -> Result<ChatwootSettings, ApiError> {
    let base_url = body
        .base_url
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| valid_base_url(u))
        .ok_or_else(|| {
            ApiError::invalid_field(
                "field `base_url`: an http(s) URL like `https://chatwoot.example`, no path",
            )
        })?;
    let id = |field: &str, v: Option<i64>| {
        v.filter(|v| *v >= 1).ok_or_else(|| {
            ApiError::invalid_field(format!("field `{field}`: a Chatwoot id (integer ≥ 1)"))
        })
    };
    let account_id = id("account_id", body.account_id)?;
    let inbox_id = id("inbox_id", body.inbox_id)?;
    let reference = |field: &str, v: Option<String>| {
        v.map(|v| v.trim().to_owned())
            .filter(|v| crate::tenants::is_reference(v) && v.len() <= 512)
            .ok_or_else(|| {
                ApiError::invalid_field(format!(
                    "field `{field}`: a secret reference (`secret:NAME`, or `env:NAME` / `file:/path` set by a platform administrator), never a value"
                ))
            })
    };
    Ok(ChatwootSettings {
        base_url,
        account_id,
        inbox_id,
        api_token_ref: reference("api_access_token", body.api_access_token)?,
        webhook_secret_ref: reference("webhook_secret", body.webhook_secret)?,
    })
}

fn settings_json(tenant: &TenantId, s: &ChatwootSettings) -> Value {
    json!({
        "base_url": s.base_url,
        "account_id": s.account_id,
        "inbox_id": s.inbox_id,
        "api_access_token": s.api_token_ref,
        "webhook_secret": s.webhook_secret_ref,
        "webhook_path": format!("/v1/webhooks/chatwoot/{tenant}"),
    })
}

/// `GET /v1/tenants/{tenant}/chatwoot`: the configuration (secrets only as references); 404
/// when there is none.
pub async fn get_settings(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    caller: AdminCaller,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(&state.db, &tenant).await?;
    let settings = state
        .db
        .chatwoot()
        .settings(&tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant has no Chatwoot configured"))?;
    Ok(Json(settings_json(&tenant, &settings)).into_response())
}

/// `PUT /v1/tenants/{tenant}/chatwoot`: sets the configuration (every field required).
pub async fn put_settings(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    caller: AdminCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(&state.db, &tenant).await?;
    let body: ChatwootBody = crate::read_json(body)?;
    let settings = validate(body)?;
    let stored = state
        .db
        .chatwoot()
        .settings(&tenant)
        .await?
        .map(|s| settings_json(&tenant, &s));
    // The desk's `base_url` is the tenant's to choose (its own Chatwoot; outbound calls are
    // guarded); its secrets come from its own store.
    let shown = settings_json(&tenant, &settings);
    crate::tenants::guard_settings(&caller, &shown, stored.as_ref(), &["base_url"])?;
    state.db.chatwoot().put_settings(&tenant, &settings).await?;
    state
        .db
        .events()
        .record(NewEvent {
            event_id: &format!("tenant-admin/{}", uuid::Uuid::new_v4()),
            tenant_id: &tenant,
            event_type: zengine_domain::events::EventType::TenantChatwootConfigured,
            subject: tenant.as_str(),
            payload: &json!({"actor": caller.subject(), "change": shown}),
        })
        .await?;
    Ok(Json(shown).into_response())
}

/// `DELETE /v1/tenants/{tenant}/chatwoot`: 204; 404 when there is none. Handoffs stop being
/// mirrored; mirrored conversations stop receiving webhooks.
pub async fn delete_settings(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    caller: AdminCaller,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(&state.db, &tenant).await?;
    if !state.db.chatwoot().delete_settings(&tenant).await? {
        return Err(ApiError::not_found("tenant has no Chatwoot configured"));
    }
    state
        .db
        .events()
        .record(NewEvent {
            event_id: &format!("tenant-admin/{}", uuid::Uuid::new_v4()),
            tenant_id: &tenant,
            event_type: zengine_domain::events::EventType::TenantChatwootRemoved,
            subject: tenant.as_str(),
            payload: &json!({"actor": caller.subject()}),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Checks `X-Chatwoot-Signature` / `X-Chatwoot-Timestamp` against `secret`.
pub fn verify_signature(
    headers: &HeaderMap,
    body: &[u8],
    secret: &[u8],
    now_secs: i64,
) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header("x-chatwoot-signature")
        .ok_or_else(|| unauthorized("missing X-Chatwoot-Signature"))?;
    let timestamp = header("x-chatwoot-timestamp")
        .ok_or_else(|| unauthorized("missing X-Chatwoot-Timestamp"))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| unauthorized("X-Chatwoot-Timestamp is not a Unix time"))?;
    if (now_secs - ts).abs() > TIMESTAMP_TOLERANCE_SECS {
        return Err(unauthorized(
            "X-Chatwoot-Timestamp is too far from now (replay?)",
        ));
    }
    let hex_sig = signature.trim();
    let hex_sig = hex_sig.strip_prefix("sha256=").unwrap_or(hex_sig);
    let given =
        hex::decode(hex_sig).map_err(|_| unauthorized("X-Chatwoot-Signature is not hex"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    if !constant_time_eq(&expected, &given) {
        return Err(unauthorized("X-Chatwoot-Signature does not match"));
    }
    Ok(())
}

fn answer(result: &str, reason: &str) -> Response {
    Json(json!({"result": result, "reason": reason})).into_response()
}

/// `POST /v1/webhooks/chatwoot/{tenant}`.
pub async fn webhook(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let result = handle(&state, &tenant, &headers, body).await;
    let status = match &result {
        Ok(response) => response.status(),
        Err(e) => e.status,
    };
    crate::metrics::webhook(RECEIPTS, status.as_u16(), started.elapsed());
    result
}

async fn handle(
    state: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let not_configured = || ApiError::not_found("no Chatwoot webhook for this tenant");
    let tenant = TenantId::parse(tenant).map_err(|_| not_configured())?;
    let body = crate::read_body(body)?;
    let settings = state
        .db
        .chatwoot()
        .settings(&tenant)
        .await?
        .ok_or_else(not_configured)?;
    let secret = zengine_storage::secrets::resolve_for(&tenant, &settings.webhook_secret_ref).map_err(|e| {
        tracing::error!(tenant_id = %tenant, error.message = %e, "Chatwoot webhook secret missing");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the Chatwoot webhook secret is not available",
        )
    })?;
    verify_signature(
        headers,
        &body,
        secret.expose_secret().as_bytes(),
        chrono::Utc::now().timestamp(),
    )?;
    let event: Value = crate::parse_json(&body)?;
    if !event.is_object() {
        return Err(ApiError::bad_request(
            ErrorCode::MalformedJson,
            "a Chatwoot webhook is a JSON object",
        ));
    }
    let Some((record, _)) = state.tenants.lookup(&state.db, &tenant, None).await? else {
        return Err(not_configured());
    };
    let name = event.get("event").and_then(Value::as_str).unwrap_or("");
    if record.suspended {
        let id = format!(
            "chatwoot/{name}/{}",
            event.get("id").map(Value::to_string).unwrap_or_default()
        );
        state
            .db
            .tenants()
            .record_suppressed(&tenant, &id, RECEIPTS)
            .await?;
        return Ok(answer("ignored", "tenant suspended"));
    }
    match name {
        "message_created" => agent_message(state, &tenant, &event).await,
        "conversation_status_changed" | "conversation_resolved" => {
            let status = event
                .get("status")
                .or_else(|| event.pointer("/conversation/status"))
                .and_then(Value::as_str);
            if name == "conversation_status_changed" && status != Some("resolved") {
                return Ok(answer("ignored", "status is not resolved"));
            }
            resolved(state, &tenant, &event).await
        }
        _ => Ok(answer("ignored", "event not handled")),
    }
}

/// An agent's message: to the customer, once.
async fn agent_message(
    state: &AppState,
    tenant: &TenantId,
    event: &Value,
) -> Result<Response, ApiError> {
    let Some(message_id) = event.get("id").and_then(Value::as_i64) else {
        return Err(ApiError::bad_request(
            ErrorCode::MalformedJson,
            "message_created without a numeric `id`",
        ));
    };
    // Webhooks name the type as a string; the API's integer form is accepted too.
    let outgoing = match event.get("message_type") {
        Some(Value::String(t)) => t == "outgoing",
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    };
    if !outgoing {
        return Ok(answer("ignored", "not an outgoing message"));
    }
    if event.get("private").and_then(Value::as_bool) == Some(true) {
        return Ok(answer("ignored", "private note"));
    }
    if event.pointer("/sender/type").and_then(Value::as_str) == Some("contact") {
        return Ok(answer("ignored", "sent by the contact"));
    }
    let repo = state.db.chatwoot();
    if repo.is_ours(tenant, message_id).await? {
        return Ok(answer("ignored", "our own message"));
    }
    let text = event
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_owned();
    if text.is_empty() {
        return Ok(answer("ignored", "no text content"));
    }
    let Some(conversation) = event.pointer("/conversation/id").and_then(Value::as_i64) else {
        return Err(ApiError::bad_request(
            ErrorCode::MalformedJson,
            "message_created without `conversation.id`",
        ));
    };
    let Some(link) = repo.link_by_conversation(tenant, conversation).await? else {
        return Ok(answer("ignored", "not a conversation ZEngine handed off"));
    };
    let receipt = format!("{tenant}/{message_id}");
    if state.db.channels().seen(tenant, RECEIPTS, &receipt).await? {
        return Ok(answer("duplicate", "message delivered before"));
    }
    let reply = AgentReply {
        chatwoot_conversation_id: conversation,
        chatwoot_message_id: message_id,
        text,
    };
    let options = WorkflowSignalOptions::builder()
        .request_id(format!("chatwoot-{tenant}-{message_id}"))
        .build();
    let signalled = state
        .temporal
        .get_workflow_handle::<ConversationWorkflow>(&link.workflow_id)
        .signal(ConversationWorkflow::agent_reply, reply, options)
        .await;
    if let Err(e) = signalled {
        let text = e.to_string();
        if text.contains("not found") || text.contains("already completed") {
            return Ok(answer("ignored", "the conversation is closed"));
        }
        tracing::error!(error.message = %text, workflow_id = %link.workflow_id, "AgentReply signal failed");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the workflow service is unavailable; redelivery is safe",
        ));
    }
    state
        .db
        .channels()
        .first_receipt(RECEIPTS, &receipt, tenant)
        .await?;
    Ok(answer("delivered", "agent reply sent to the customer"))
}

/// The agent resolved the conversation: back to the bot.
async fn resolved(
    state: &AppState,
    tenant: &TenantId,
    event: &Value,
) -> Result<Response, ApiError> {
    // conversation_* events carry the conversation itself; some senders nest it.
    let Some(conversation) = event
        .pointer("/conversation/id")
        .or_else(|| event.get("id"))
        .and_then(Value::as_i64)
    else {
        return Err(ApiError::bad_request(
            ErrorCode::MalformedJson,
            "conversation event without a numeric `id`",
        ));
    };
    let Some(link) = state
        .db
        .chatwoot()
        .link_by_conversation(tenant, conversation)
        .await?
    else {
        return Ok(answer("ignored", "not a conversation ZEngine handed off"));
    };
    let outcome = state
        .temporal
        .get_workflow_handle::<ConversationWorkflow>(&link.workflow_id)
        .execute_update(
            ConversationWorkflow::desk_resolved,
            conversation,
            WorkflowExecuteUpdateOptions::default(),
        )
        .await;
    match outcome {
        Ok(done) if done.returned => {
            state
                .db
                .events()
                .record(NewEvent {
                    event_id: &format!("{}/returned/chatwoot-{conversation}", link.handoff_key),
                    tenant_id: tenant,
                    event_type: zengine_domain::events::EventType::ConversationReturnedToBot,
                    subject: &link.workflow_id,
                    payload: &json!({"channel": link.channel, "by": "chatwoot"}),
                })
                .await?;
            Ok(answer("returned", "the conversation is back with the bot"))
        }
        Ok(_) => Ok(answer(
            "ignored",
            "not handed off to this conversation any more",
        )),
        Err(e) => {
            let closed = ApiError::not_found("closed");
            let error = crate::error::update_error(e, closed, "AgentDeskResolved");
            if error.status == StatusCode::NOT_FOUND {
                Ok(answer("ignored", "the conversation is closed"))
            } else {
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_with_the_timestamp() {
        let body = br#"{"event":"message_created"}"#;
        let sign = |ts: &str, secret: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
            mac.update(format!("{ts}.").as_bytes());
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        };
        let headers = |sig: &str, ts: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-chatwoot-signature", sig.parse().unwrap());
            h.insert("x-chatwoot-timestamp", ts.parse().unwrap());
            h
        };
        let now = 1_800_000_000;
        let ok = headers(&sign("1800000000", b"s"), "1800000000");
        assert!(verify_signature(&ok, body, b"s", now).is_ok());
        assert!(verify_signature(&ok, body, b"other", now).is_err());
        assert!(verify_signature(&ok, b"{}", b"s", now).is_err());
        assert!(verify_signature(&ok, body, b"s", now + 301).is_err());
        assert!(verify_signature(&HeaderMap::new(), body, b"s", now).is_err());
        assert!(valid_base_url("https://chat.example") && valid_base_url("http://127.0.0.1:3000/"));
        assert!(!valid_base_url("chat.example") && !valid_base_url("https://chat.example/x"));
        assert!(!valid_base_url("https://u:p@chat.example"));
    }
}
