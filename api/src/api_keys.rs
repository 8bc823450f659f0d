//! API keys of a tenant (the tenant's admins and the platform administrator; a JWT or the admin
//! token, never an API key; each change is a `Tenant.ApiKey*` audit event):
//! `POST/GET /v1/tenants/{tenant}/api-keys`, `DELETE /v1/tenants/{tenant}/api-keys/{id}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use zengine_storage::{NewApiKey, Revoked};

use zengine_domain::TenantId;
use zengine_storage::NewEvent;

use crate::auth::AdminCaller;
use crate::{ApiError, AppState, ErrorCode};

/// Highest per-key rate and burst accepted (well above what one integration needs).
const MAX_RATE_PER_MINUTE: i64 = 60_000;
const MAX_BURST: i64 = 10_000;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
    /// `viewer` or `operator` (default).
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    rate_per_minute: Option<i64>,
    #[serde(default)]
    burst: Option<i64>,
}

async fn audit(
    state: &AppState,
    tenant: &TenantId,
    event_type: zengine_domain::events::EventType,
    caller: &AdminCaller,
    change: serde_json::Value,
) -> Result<(), ApiError> {
    let id = format!("tenant-admin/{}", uuid::Uuid::new_v4());
    state
        .db
        .events()
        .record(NewEvent {
            event_id: &id,
            tenant_id: tenant,
            event_type,
            subject: tenant.as_str(),
            payload: &json!({"actor": caller.subject(), "change": change}),
        })
        .await?;
    Ok(())
}

/// `POST /v1/tenants/{tenant}/api-keys` `{name, role, rate_per_minute, burst}`: 201 with the key
/// text in `key`, shown this once.
pub async fn create(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    caller: AdminCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(&state.db, &tenant).await?;
    let body: CreateBody = crate::read_json(body)?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "field `name`: 1 to 64 printable characters",
        ));
    }
    let role = body.role.as_deref().unwrap_or("operator");
    if !matches!(role, "viewer" | "operator") {
        return Err(ApiError::invalid_field(format!(
            "field `role`: `{role}` is not `viewer` or `operator` (admins use a JWT)"
        )));
    }
    if body
        .rate_per_minute
        .is_some_and(|r| !(1..=MAX_RATE_PER_MINUTE).contains(&r))
    {
        return Err(ApiError::invalid_field(format!(
            "field `rate_per_minute`: 1 to {MAX_RATE_PER_MINUTE}"
        )));
    }
    if body.burst.is_some_and(|b| !(1..=MAX_BURST).contains(&b)) {
        return Err(ApiError::invalid_field(format!(
            "field `burst`: 1 to {MAX_BURST}"
        )));
    }
    let (key, text) = state
        .db
        .api_keys()
        .create(NewApiKey {
            tenant_id: &tenant,
            name,
            role,
            rate_per_minute: body.rate_per_minute,
            burst: body.burst,
            created_by: caller.subject(),
        })
        .await?;
    tracing::info!(tenant_id = %tenant, key_id = %key.key_id, by = caller.subject(), "API key created");
    audit(
        &state,
        &tenant,
        zengine_domain::events::EventType::TenantApiKeyCreated,
        &caller,
        json!({"key_id": key.key_id, "name": name, "role": role}),
    )
    .await?;
    let mut json = serde_json::to_value(&key).map_err(anyhow::Error::from)?;
    json["key"] = json!(text);
    Ok((StatusCode::CREATED, Json(json)).into_response())
}

/// `GET /v1/tenants/{tenant}/api-keys`: every key of the tenant (never the secrets).
pub async fn list(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    caller: AdminCaller,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(&state.db, &tenant).await?;
    let keys = state.db.api_keys().list(&tenant).await?;
    Ok(Json(json!({ "api_keys": keys })).into_response())
}

/// `DELETE /v1/tenants/{tenant}/api-keys/{id}`: 200 with the revoked key; 409 when it was
/// revoked before; 404 when the tenant has no such key.
pub async fn revoke(
    State(state): State<AppState>,
    Path((tenant, key_id)): Path<(String, String)>,
    caller: AdminCaller,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(&state.db, &tenant).await?;
    match state.db.api_keys().revoke(&tenant, &key_id).await? {
        Revoked::Now(key) => {
            tracing::info!(tenant_id = %tenant, key_id = %key.key_id, by = caller.subject(), "API key revoked");
            audit(
                &state,
                &tenant,
                zengine_domain::events::EventType::TenantApiKeyRevoked,
                &caller,
                json!({"key_id": key.key_id}),
            )
            .await?;
            Ok(Json(key).into_response())
        }
        Revoked::Already(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("API key `{key_id}` was already revoked"),
        )),
        Revoked::NotFound => Err(ApiError::not_found(format!(
            "API key `{key_id}` does not exist"
        ))),
    }
}
