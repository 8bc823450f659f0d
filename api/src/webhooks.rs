//! Channel webhooks: one ingress for every provider, driven by its inbound strategy.
//!
//! `POST /v1/webhooks/{provider}` (and `/v1/webhooks/{provider}/{tenant}` for providers whose
//! URL names the tenant) runs the same steps for every provider:
//!
//! 1. **verify** — the strategy authenticates the raw request (signature, shared secret, basic
//!    auth + IP allowlist, SNS certificate): 401/403 otherwise, nothing recorded;
//! 2. **normalize** — the strategy parses it into canonical events (400 when it is not what the
//!    provider sends);
//! 3. **route** — each event's account key (e.g. WhatsApp's `phone_number_id`) names a tenant's
//!    account; an unknown account is recorded as unroutable and still answered 200, so the
//!    provider stops retrying;
//! 4. **dedupe** — a provider message id accepted before → counted as a duplicate, no effect;
//! 5. **signal-with-start** the conversation `{tenant}/conversation/{channel}/{contact}` with
//!    the `Inbound` signal; statuses move the outbound message's delivery state forward only.
//!
//! The answer comes as soon as Temporal accepted every signal; a 5xx makes the provider
//! redeliver, which is safe. `GET /v1/webhooks/whatsapp` is Meta's verification handshake.
//!
//! Nothing here logs message bodies or secrets.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use temporalio_client::{WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowStartOptions};
use zengine_channels::sdk::{InboundError, InboundEvent, InboundRequest, InboundStrategy};
use zengine_domain::channel::whatsapp::{DeliveryState, constant_time_eq};
use zengine_domain::{ConversationId, InboundMessage, SessionId, TenantId};
use zengine_storage::NewEvent;
use zengine_workflows::ConversationWorkflow;
use zengine_workflows::conversation::ConversationInput;

use crate::metrics::Counted;
use crate::{ApiError, AppState, ErrorCode};

/// Largest webhook body accepted, in bytes (1 MiB; providers send far less).
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// Query of Meta's verification request (`hub.*` parameters, dots kept).
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// `GET /v1/webhooks/whatsapp`: 200 with the challenge, 403 for a wrong token.
pub async fn whatsapp_handshake(
    State(state): State<AppState>,
    q: Result<Query<Handshake>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match crate::read_query(q) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
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

/// `POST /v1/webhooks/{provider}`.
pub async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    observed(&state, &provider, ingest(&state, &provider, None, request)).await
}

/// `POST /v1/webhooks/whatsapp`: the Meta app's callback URL (the path its handshake uses).
pub async fn receive_whatsapp(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    observed(
        &state,
        "whatsapp",
        ingest(&state, "whatsapp", None, request),
    )
    .await
}

/// `POST /v1/webhooks/{provider}/{tenant}`.
pub async fn receive_for_tenant(
    State(state): State<AppState>,
    Path((provider, tenant)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    observed(
        &state,
        &provider,
        ingest(&state, &provider, Some(&tenant), request),
    )
    .await
}

/// Runs a webhook and records its latency and answer (`zengine_webhook_*`).
async fn observed(
    state: &AppState,
    provider: &str,
    handling: impl Future<Output = Result<Response, ApiError>>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let result = handling.await;
    let label = if state.channels.inbound(provider).is_some() {
        provider
    } else {
        "unknown"
    };
    let status = match &result {
        Ok(response) => response.status(),
        Err(e) => e.status,
    };
    crate::metrics::webhook(label, status.as_u16(), started.elapsed());
    result
}

#[derive(Default)]
struct Tally {
    accepted: usize,
    duplicates: usize,
    unroutable: usize,
    statuses: usize,
    ignored: usize,
    suspended: usize,
}

fn inbound_error(e: InboundError) -> ApiError {
    match e {
        InboundError::Unauthorized(m) => {
            ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, m)
        }
        InboundError::Forbidden(m) => ApiError::forbidden(m),
        InboundError::Malformed(m) => ApiError::bad_request(ErrorCode::MalformedJson, m),
        InboundError::Disabled(m) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, m)
        }
        InboundError::Internal(m) => ApiError::internal(anyhow::anyhow!(m)),
    }
}

async fn ingest(
    state: &AppState,
    provider: &str,
    tenant: Option<&str>,
    request: Request,
) -> Result<Response, ApiError> {
    let strategy = state
        .channels
        .inbound(provider)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no webhook for provider `{provider}`")))?;
    let tenant = tenant
        .map(|t| {
            TenantId::parse(t).map_err(|e| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::UnknownTenant,
                    format!("tenant: {e}"),
                )
            })
        })
        .transpose()?;
    let peer = crate::quota::ClientAddr::of(request.extensions(), request.headers(), state).0;
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let body = axum::body::to_bytes(request.into_body(), MAX_WEBHOOK_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("webhook body is larger than {MAX_WEBHOOK_BYTES} bytes"),
            )
        })?;
    let inbound = InboundRequest {
        headers: &headers,
        body: &body,
        peer,
        tenant,
    };
    let verified = strategy
        .verify(&inbound, &state.db)
        .await
        .map_err(inbound_error)?;
    if let Some(control) = verified.control {
        tracing::info!(provider, control, "Webhook control message handled");
        return Ok(Json(json!({"control": control})).into_response());
    }
    let events = strategy
        .normalize(&inbound, &verified)
        .map_err(inbound_error)?;
    let mut tally = Tally::default();
    for event in events {
        match event {
            InboundEvent::Message {
                account_key,
                contact,
                contact_name: _,
                message,
            } => {
                accept_message(
                    state,
                    strategy.as_ref(),
                    verified.tenant.as_ref(),
                    &account_key,
                    &contact,
                    message,
                    &mut tally,
                )
                .await?
            }
            InboundEvent::Status {
                account_key,
                provider_message_id,
                callback_data,
                state: delivery,
                recipient,
                error,
            } => {
                let Some(tenant_id) = route(
                    state,
                    strategy.as_ref(),
                    verified.tenant.as_ref(),
                    &account_key,
                )
                .await?
                else {
                    continue;
                };
                apply_status(
                    state,
                    &tenant_id,
                    &provider_message_id,
                    callback_data.as_deref(),
                    delivery,
                    &recipient,
                    error.as_deref(),
                )
                .await?;
                tally.statuses += 1;
            }
            InboundEvent::Ignored {
                account_key,
                reason,
            } => {
                tracing::info!(provider, account_key, reason, "Webhook event ignored");
                tally.ignored += 1;
            }
        }
    }
    for (kind, count) in [
        ("accepted", tally.accepted),
        ("duplicate", tally.duplicates),
        ("unroutable", tally.unroutable),
        ("status", tally.statuses),
        ("ignored", tally.ignored),
        ("suspended", tally.suspended),
    ] {
        crate::metrics::webhook_events(strategy.name(), kind, count);
    }
    tracing::info!(
        provider,
        accepted = tally.accepted,
        duplicates = tally.duplicates,
        unroutable = tally.unroutable,
        statuses = tally.statuses,
        ignored = tally.ignored,
        suspended = tally.suspended,
        "Webhook handled"
    );
    Ok(Json(json!({
        "accepted": tally.accepted,
        "duplicates": tally.duplicates,
        "unroutable": tally.unroutable,
        "statuses": tally.statuses,
        "ignored": tally.ignored,
        "suspended": tally.suspended,
    }))
    .into_response())
}

/// The address a request came from: the socket peer, or — when the peer is a trusted proxy —
/// the rightmost `X-Forwarded-For` address that is not one.
pub(crate) fn source_address(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[String],
) -> Option<IpAddr> {
    let trusted: Vec<ipnet::IpNet> = trusted
        .iter()
        .filter_map(|t| {
            t.parse::<ipnet::IpNet>()
                .ok()
                .or_else(|| t.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
        })
        .collect();
    let is_trusted = |ip: IpAddr| zengine_channels::five9::ip_allowed(ip, &trusted);
    let peer = peer?;
    if !is_trusted(peer) {
        return Some(peer);
    }
    let Some(chain) = forwarded_for else {
        return Some(peer);
    };
    let mut source = peer;
    for hop in chain.rsplit(',') {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            // Unparseable: stop believing the chain here.
            return Some(source);
        };
        source = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(source)
}

/// The tenant owning `account_key`; when authentication already named a tenant, the account
/// must be that tenant's (a tenant cannot post into another's conversations).
async fn route(
    state: &AppState,
    strategy: &dyn InboundStrategy,
    verified: Option<&TenantId>,
    account_key: &str,
) -> Result<Option<TenantId>, ApiError> {
    let account = state
        .db
        .channels()
        .route(strategy.name(), account_key)
        .await?;
    Ok(match (account, verified) {
        (Some(a), Some(t)) if &a.tenant_id != t => None,
        (Some(a), _) => Some(a.tenant_id),
        (None, _) => None,
    })
}

async fn accept_message(
    state: &AppState,
    strategy: &dyn InboundStrategy,
    verified: Option<&TenantId>,
    account_key: &str,
    contact: &str,
    message: InboundMessage,
    tally: &mut Tally,
) -> Result<(), ApiError> {
    let channels = state.db.channels();
    let name = strategy.name();
    let Some(tenant_id) = route(state, strategy, verified, account_key).await? else {
        channels
            .record_unroutable(&format!("{name}/{}", message.message_id), name, account_key)
            .await?;
        tally.unroutable += 1;
        return Ok(());
    };
    if channels.seen(&tenant_id, name, &message.message_id).await? {
        tally.duplicates += 1;
        return Ok(());
    }
    let (tenant, flow) = state
        .tenants
        .lookup(&state.db, &tenant_id, None)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("routed tenant {tenant_id} vanished")))?;
    if tenant.suspended {
        // Answered (the provider stops retrying) but not processed: no workflow is signalled.
        state
            .db
            .tenants()
            .record_suppressed(&tenant_id, &format!("{name}/{}", message.message_id), name)
            .await?;
        tracing::info!(tenant_id = %tenant_id, provider = name, "Message for a suspended tenant suppressed");
        tally.suspended += 1;
        return Ok(());
    }
    let Some(flow) = flow else {
        // Nothing can answer: keep the message out of Temporal, tell the provider to stop.
        tracing::warn!(tenant_id = %tenant_id, provider = name, "Message for a tenant without a published flow");
        tally.unroutable += 1;
        return Ok(());
    };
    let contact = SessionId::parse(contact).map_err(|e| {
        ApiError::bad_request(ErrorCode::InvalidField, format!("message sender: {e}"))
    })?;
    let conversation = ConversationId::new(tenant_id.clone(), strategy.channel(), contact);
    let workflow_id = state.conversation_workflow_id(&conversation);
    let provider_message_id = message.message_id.clone();
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
            message,
            options,
        )
        .await
        .counted("Conversation")
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
        .first_receipt(name, &provider_message_id, &tenant_id)
        .await?;
    // Reporting (messages per day and channel); idempotent by id, so a redelivery counts once.
    state
        .db
        .events()
        .record(NewEvent {
            event_id: &format!("{name}/{provider_message_id}/received"),
            tenant_id: &tenant_id,
            event_type: zengine_domain::events::EventType::ConversationMessageReceived,
            subject: &workflow_id,
            payload: &json!({"channel": strategy.channel().as_str(), "strategy": name}),
        })
        .await?;
    tally.accepted += 1;
    Ok(())
}

async fn apply_status(
    state: &AppState,
    tenant_id: &TenantId,
    provider_message_id: &str,
    callback_data: Option<&str>,
    delivery: DeliveryState,
    recipient: &str,
    error: Option<&str>,
) -> Result<(), ApiError> {
    let name = match delivery {
        DeliveryState::Sent => "SENT",
        DeliveryState::Delivered => "DELIVERED",
        DeliveryState::Read => "READ",
        DeliveryState::Failed => "FAILED",
    };
    let moved = state
        .db
        .channels()
        .apply_status(tenant_id, provider_message_id, callback_data, name, error)
        .await?;
    if moved && matches!(delivery, DeliveryState::Delivered | DeliveryState::Read) {
        state
            .db
            .events()
            .record(NewEvent {
                event_id: &format!("{provider_message_id}/delivered"),
                tenant_id,
                event_type: zengine_domain::events::EventType::ConversationMessageDelivered,
                subject: callback_data.unwrap_or(provider_message_id),
                payload: &json!({
                    "provider_message_id": provider_message_id,
                    "state": name,
                    "recipient": recipient,
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
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let trusted = vec!["10.0.0.0/8".to_owned()];
        // Untrusted peer: its own address, whatever it claims.
        assert_eq!(
            source_address(Some(ip("1.2.3.4")), Some("9.9.9.9"), &trusted),
            Some(ip("1.2.3.4"))
        );
        // Trusted proxy: the rightmost untrusted hop.
        assert_eq!(
            source_address(
                Some(ip("10.0.0.1")),
                Some("9.9.9.9, 5.5.5.5, 10.0.0.2"),
                &trusted
            ),
            Some(ip("5.5.5.5"))
        );
        assert_eq!(
            source_address(Some(ip("10.0.0.1")), None, &trusted),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            source_address(Some(ip("10.0.0.1")), Some("junk"), &trusted),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            source_address(Some(ip("10.0.0.1")), Some("5.5.5.5"), &[]),
            Some(ip("10.0.0.1"))
        );
    }
}
