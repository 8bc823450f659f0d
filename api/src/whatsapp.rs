//! WhatsApp Cloud API (Meta) webhooks.
//!
//! - `GET /v1/webhooks/whatsapp`: Meta's verification handshake (`hub.mode=subscribe`,
//!   `hub.verify_token`, `hub.challenge`): 200 with the challenge, 403 for a wrong token.
//! - `POST /v1/webhooks/whatsapp`: `X-Hub-Signature-256` must be the HMAC-SHA256 of the raw body
//!   with the app secret (constant-time check; 401 otherwise). Each message is routed to its
//!   tenant by `metadata.phone_number_id` (an unknown number is recorded as unroutable and still
//!   answered 200, so Meta stops retrying), deduplicated by its `wamid`, and signalled into the
//!   conversation workflow `{tenant}/conversation/whatsapp/{wa_id}` (signal-with-start). Statuses
//!   move the outbound message's delivery state forward only. The answer comes as soon as
//!   Temporal accepted every signal; a 5xx makes Meta redeliver, which is safe.
//!
//! Nothing here logs message bodies or secrets.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use temporalio_client::{WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowStartOptions};
use zengine_activities::channels::WHATSAPP_META_CLOUD;
use zengine_activities::db::NewEvent;
use zengine_domain::channel::whatsapp::{
    DeliveryState, IncomingMessage, StatusUpdate, WebhookEvent, constant_time_eq,
    parse_signature_header, parse_webhook,
};
use zengine_domain::{Channel, ConversationId, SessionId};
use zengine_workflows::ConversationWorkflow;
use zengine_workflows::conversation::ConversationInput;

use crate::{ApiError, AppState, ErrorCode};

/// Query of Meta's verification request (`hub.*` parameters, dots kept).
#[derive(Deserialize)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// `GET /v1/webhooks/whatsapp`.
pub async fn verify(State(state): State<AppState>, Query(q): Query<Handshake>) -> Response {
    let expected = state.settings.whatsapp_verify_token.expose_secret();
    let token_ok = !expected.is_empty()
        && q.verify_token
            .as_deref()
            .is_some_and(|t| constant_time_eq(t.as_bytes(), expected.as_bytes()));
    match (q.mode.as_deref(), q.challenge) {
        (Some("subscribe"), Some(challenge)) if token_ok && challenge.len() <= 256 => {
            (StatusCode::OK, challenge).into_response()
        }
        _ => ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Unauthorized,
            "verification failed: wrong hub.verify_token or hub.mode",
        )
        .into_response(),
    }
}

/// Whether `header` is the signature of `body` under `secret`.
fn signature_ok(secret: &[u8], header: Option<&str>, body: &[u8]) -> bool {
    let Some(expected) = header.and_then(parse_signature_header) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    constant_time_eq(&mac.finalize().into_bytes(), &expected)
}

#[derive(Default)]
struct Tally {
    accepted: usize,
    duplicates: usize,
    unroutable: usize,
    statuses: usize,
}

/// `POST /v1/webhooks/whatsapp`.
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = crate::read_body(body)?;
    let secret = state.settings.whatsapp_app_secret.expose_secret();
    if secret.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "WhatsApp webhooks are not configured (api.whatsapp_app_secret)",
        ));
    }
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !signature_ok(secret.as_bytes(), signature, &body) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "missing or wrong X-Hub-Signature-256",
        ));
    }
    let events = parse_webhook(&body).map_err(|e| {
        ApiError::bad_request(ErrorCode::MalformedJson, format!("invalid webhook: {e}"))
    })?;
    let mut tally = Tally::default();
    for event in events {
        match event {
            WebhookEvent::Message(message) => accept_message(&state, message, &mut tally).await?,
            WebhookEvent::Status(status) => {
                apply_status(&state, status).await?;
                tally.statuses += 1;
            }
            WebhookEvent::Error {
                phone_number_id,
                code,
                title,
            } => {
                tracing::warn!(phone_number_id, code, title, "WhatsApp reported an error");
            }
        }
    }
    tracing::info!(
        accepted = tally.accepted,
        duplicates = tally.duplicates,
        unroutable = tally.unroutable,
        statuses = tally.statuses,
        "WhatsApp webhook handled"
    );
    Ok(Json(json!({
        "accepted": tally.accepted,
        "duplicates": tally.duplicates,
        "unroutable": tally.unroutable,
        "statuses": tally.statuses,
    }))
    .into_response())
}

async fn accept_message(
    state: &AppState,
    incoming: IncomingMessage,
    tally: &mut Tally,
) -> Result<(), ApiError> {
    let channels = state.db.channels();
    let Some(account) = channels
        .route(WHATSAPP_META_CLOUD, &incoming.phone_number_id)
        .await?
    else {
        channels
            .record_unroutable(
                &incoming.provider_message_id,
                WHATSAPP_META_CLOUD,
                &incoming.phone_number_id,
            )
            .await?;
        tally.unroutable += 1;
        return Ok(());
    };
    if channels
        .seen(WHATSAPP_META_CLOUD, &incoming.provider_message_id)
        .await?
    {
        tally.duplicates += 1;
        return Ok(());
    }
    let tenant_id = account.tenant_id;
    let (_, flow) = state
        .tenants
        .lookup(&state.db, &tenant_id, None)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("routed tenant {tenant_id} vanished")))?;
    let Some(flow) = flow else {
        // Nothing can answer: keep the message out of Temporal, tell Meta to stop retrying.
        tracing::warn!(tenant_id = %tenant_id, "WhatsApp message for a tenant without a published flow");
        tally.unroutable += 1;
        return Ok(());
    };
    let contact = SessionId::parse(&incoming.from).map_err(|e| {
        ApiError::bad_request(ErrorCode::InvalidField, format!("messages[].from: {e}"))
    })?;
    let conversation = ConversationId::new(tenant_id.clone(), Channel::Whatsapp, contact);
    let workflow_id = conversation.workflow_id();
    let input = ConversationInput {
        conversation,
        flow,
        session: Default::default(),
        carry: Default::default(),
        max_history_events: Some(state.settings.conversation_history_limit),
    };
    let options = WorkflowStartOptions::new(
        state.queue(zengine_workflows::names::queues::CONVERSATIONS),
        workflow_id.clone(),
    )
    .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
    .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicate)
    .build();
    state
        .temporal
        .signal_with_start_workflow(
            ConversationWorkflow::run,
            input,
            ConversationWorkflow::inbound,
            incoming.message,
            options,
        )
        .await
        .map_err(|e| {
            tracing::error!(error.message = %e, %workflow_id, "Signal-with-start failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "the workflow service is unavailable; redelivery is safe",
            )
        })?;
    // After the signal: a failure above leaves no receipt, so the redelivery gets through (the
    // workflow ignores a message id it has seen).
    channels
        .first_receipt(
            WHATSAPP_META_CLOUD,
            &incoming.provider_message_id,
            &tenant_id,
        )
        .await?;
    tally.accepted += 1;
    Ok(())
}

async fn apply_status(state: &AppState, status: StatusUpdate) -> Result<(), ApiError> {
    let channels = state.db.channels();
    let Some(account) = channels
        .route(WHATSAPP_META_CLOUD, &status.phone_number_id)
        .await?
    else {
        return Ok(());
    };
    let name = match status.state {
        DeliveryState::Sent => "SENT",
        DeliveryState::Delivered => "DELIVERED",
        DeliveryState::Read => "READ",
        DeliveryState::Failed => "FAILED",
    };
    let error = status
        .error
        .as_ref()
        .map(|(code, title)| format!("{code}: {title}"));
    let moved = channels
        .apply_status(
            &account.tenant_id,
            &status.provider_message_id,
            status.callback_data.as_deref(),
            name,
            error.as_deref(),
        )
        .await?;
    if moved && matches!(status.state, DeliveryState::Delivered | DeliveryState::Read) {
        state
            .db
            .events()
            .record(NewEvent {
                event_id: &format!("{}/delivered", status.provider_message_id),
                tenant_id: &account.tenant_id,
                event_type: "Conversation.MessageDelivered",
                subject: status
                    .callback_data
                    .as_deref()
                    .unwrap_or(&status.provider_message_id),
                payload: &json!({
                    "provider_message_id": status.provider_message_id,
                    "state": name,
                    "recipient": status.recipient,
                }),
            })
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_over_the_raw_body() {
        // Test vector from ../shared/notes/channels.md §1.2.
        let header = "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914";
        assert!(signature_ok(b"secret", Some(header), b"test"));
        assert!(!signature_ok(b"secret", Some(header), b"test "));
        assert!(!signature_ok(b"other", Some(header), b"test"));
        assert!(!signature_ok(b"secret", None, b"test"));
        assert!(!signature_ok(b"secret", Some("sha1=abc"), b"test"));
    }
}
