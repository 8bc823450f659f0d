//! Tenant administration (`/v1/tenants…`). The platform administrator (the admin token, or a
//! JWT whose role claims include `platform-admin`) creates, lists, reads, updates, suspends and
//! resumes tenants and manages any tenant's settings, channels and API keys; a tenant admin
//! (JWT with role `admin`) reads and updates their own tenant. Every change is a `Tenant.*`
//! domain event (`actor`, `change`) recorded in the same transaction as the change.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use zengine_domain::TenantId;
use zengine_storage::{Audit, ChannelAccount, Created, PaymentSettings, SettingsChange};

use crate::auth::AdminCaller;
use crate::{ApiError, AppState, ErrorCode};

fn event_id() -> String {
    format!("tenant-admin/{}", uuid::Uuid::new_v4())
}

fn name_field(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.chars().count() > 128 || value.chars().any(char::is_control)
    {
        return Err(ApiError::invalid_field(format!(
            "field `{field}`: 1 to 128 printable characters"
        )));
    }
    Ok(())
}

fn flow_id_field(value: &str) -> Result<(), ApiError> {
    if !zengine_domain::flow::is_valid_flow_id(value) {
        return Err(ApiError::invalid_field(
            "field `main_flow_id`: 1 to 64 letters, digits, `-`, `_` or `.`",
        ));
    }
    Ok(())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    /// Lowercase id (`TenantId` rules).
    tenant_id: String,
    name: String,
    /// The flow new conversations run (default `main`); publish it with
    /// `PUT /v1/tenants/{tenant}/flows/{name}`.
    #[serde(default)]
    main_flow_id: Option<String>,
}

/// `POST /v1/tenants` (platform admin): 201 with the tenant; 409 when the id exists.
pub async fn create(
    State(state): State<AppState>,
    caller: AdminCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require_platform()?;
    let body: CreateBody = crate::read_json(body)?;
    let tenant_id = TenantId::parse(&body.tenant_id)
        .map_err(|e| ApiError::invalid_field(format!("field `tenant_id`: {e}")))?;
    if TenantId::is_reserved(tenant_id.as_str()) {
        // `_system` owns the platform's own workflows (health checks, retention); a tenant of
        // that name would see them in its lists and have its payloads sealed as the platform's.
        return Err(ApiError::invalid_field(
            "field `tenant_id`: ids starting with `_` or ending in `_system` are reserved for the platform",
        ));
    }
    name_field("name", &body.name)?;
    let main_flow_id = body.main_flow_id.as_deref().unwrap_or("main");
    flow_id_field(main_flow_id)?;
    // Its payload key first: no payload of the tenant is ever sealed without one (the codec
    // refuses), and one already there (provisioned by the operators) is kept.
    provision_payload_key(&state, &tenant_id)?;
    let id = event_id();
    let audit = Audit {
        event_id: &id,
        event_type: zengine_domain::events::EventType::TenantCreated,
        actor: caller.subject(),
        change: json!({"name": body.name.trim(), "main_flow_id": main_flow_id}),
    };
    match state
        .db
        .tenants()
        .create(&tenant_id, body.name.trim(), main_flow_id, &audit)
        .await?
    {
        Created::Now(record) => {
            tracing::info!(tenant_id = %tenant_id, by = caller.subject(), "Tenant created");
            Ok((StatusCode::CREATED, Json(record)).into_response())
        }
        Created::Exists => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("tenant `{tenant_id}` already exists"),
        )),
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Tenant id to list after (the previous page's `next_after`).
    #[serde(default)]
    after: Option<String>,
    /// 1 to 500 (default 100).
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /v1/tenants?after=&limit=` (platform admin): tenants by id.
pub async fn list(
    State(state): State<AppState>,
    caller: AdminCaller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require_platform()?;
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(ErrorCode::InvalidField, e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidField,
            "query `limit`: 1 to 500",
        ));
    }
    let tenants = state
        .db
        .tenants()
        .list_all(query.after.as_deref().unwrap_or(""), limit)
        .await?;
    let next_after = (tenants.len() as i64 == limit)
        .then(|| tenants.last().map(|t| t.tenant_id.to_string()))
        .flatten();
    Ok(Json(json!({"tenants": tenants, "next_after": next_after})).into_response())
}

/// `GET /v1/tenants/{tenant}`: the tenant, its channel accounts (secret references only), its
/// flows with their versions and its settings.
pub async fn get(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    caller: AdminCaller,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(&state.db, &tenant).await?;
    let record = state
        .db
        .tenants()
        .record(&tenant)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("tenant `{tenant}` does not exist")))?;
    let mut body = serde_json::to_value(&record).map_err(anyhow::Error::from)?;
    body["channels"] = channels_json(&state, &tenant).await?;
    body["flows"] = serde_json::to_value(state.db.tenants().flows(&tenant).await?)
        .map_err(anyhow::Error::from)?;
    body["settings"] = settings_json(&state, &tenant).await?;
    body["suppressed_inbound"] = json!(state.db.tenants().suppressed_count(&tenant).await?);
    Ok(Json(body).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    main_flow_id: Option<String>,
}

/// `PATCH /v1/tenants/{tenant}` `{name?, main_flow_id?}`.
pub async fn update(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    caller: AdminCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(&state.db, &tenant).await?;
    let body: UpdateBody = crate::read_json(body)?;
    if body.name.is_none() && body.main_flow_id.is_none() {
        return Err(ApiError::invalid_field("give `name` and/or `main_flow_id`"));
    }
    if let Some(name) = &body.name {
        name_field("name", name)?;
    }
    if let Some(flow) = &body.main_flow_id {
        flow_id_field(flow)?;
    }
    let name = body.name.as_deref().map(str::trim);
    let id = event_id();
    let audit = Audit {
        event_id: &id,
        event_type: zengine_domain::events::EventType::TenantUpdated,
        actor: caller.subject(),
        change: json!({"name": name, "main_flow_id": body.main_flow_id}),
    };
    let record = state
        .db
        .tenants()
        .update(&tenant, name, body.main_flow_id.as_deref(), &audit)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("tenant `{tenant}` does not exist")))?;
    state.tenants.invalidate(&tenant);
    Ok(Json(record).into_response())
}

/// `POST /v1/tenants/{tenant}/suspend` (platform admin).
pub async fn suspend(
    state: State<AppState>,
    path: Path<String>,
    caller: AdminCaller,
) -> Result<Response, ApiError> {
    set_suspended(state, path, caller, true).await
}

/// `POST /v1/tenants/{tenant}/resume` (platform admin).
pub async fn resume(
    state: State<AppState>,
    path: Path<String>,
    caller: AdminCaller,
) -> Result<Response, ApiError> {
    set_suspended(state, path, caller, false).await
}

/// Gives `tenant` its payload key in the tenant secret store when `temporal.codec.
/// tenant_key_secret` is set and it has none.
fn provision_payload_key(state: &AppState, tenant: &TenantId) -> Result<(), ApiError> {
    match state.codec.provision_tenant_key(tenant) {
        Ok(written) => {
            if written {
                tracing::info!(tenant_id = %tenant, "Tenant payload key provisioned");
            }
            Ok(())
        }
        Err(e) => {
            tracing::error!(tenant_id = %tenant, error.message = %e, "Cannot provision the tenant's payload key");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                format!(
                    "the tenant's payload key (`{}` in its folder of the tenant secret store) \
                     cannot be written: {e}; provision it, then create the tenant again",
                    state.codec.tenant_key_secret().unwrap_or_default()
                ),
            ))
        }
    }
}

/// Provisions the payload key of every active or suspended tenant that has none (start-up of
/// `zengine api` and `zengine dev`, so tenants created before `tenant_key_secret` was set keep
/// working). Returns how many were written; a store this process cannot write is logged and
/// left to the operators.
pub async fn provision_payload_keys(state: &AppState) -> anyhow::Result<usize> {
    if state.codec.tenant_key_secret().is_none() {
        return Ok(0);
    }
    let (mut written, mut after) = (0, String::new());
    loop {
        let page = state.db.tenants().list_all(&after, 500).await?;
        for tenant in &page {
            if tenant.status == "erased" {
                continue;
            }
            match state.codec.provision_tenant_key(&tenant.tenant_id) {
                Ok(true) => written += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    tenant_id = %tenant.tenant_id, error.message = %e,
                    "Cannot provision the tenant's payload key: its workflows cannot seal payloads until it is"
                ),
            }
        }
        match page.last() {
            Some(last) if page.len() == 500 => after = last.tenant_id.to_string(),
            _ => return Ok(written),
        }
    }
}

/// `POST /v1/tenants/{tenant}/erase` (platform admin): erases a suspended tenant for good.
/// Its folder of the tenant secret store (channel credentials and payload key) is removed, so
/// every payload of its workflow histories becomes undecryptable within
/// `temporal.codec.tenant_key_cache_secs`; it stays suspended and cannot be resumed. Refused
/// without `temporal.codec.tenant_key_secret` (its payloads would stay readable).
pub async fn erase(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    caller: AdminCaller,
) -> Result<Response, ApiError> {
    caller.require_platform()?;
    let tenant = caller.tenant(&state.db, &tenant).await?;
    if state.codec.tenant_key_secret().is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "erasure needs temporal.codec.tenant_key_secret: without it this tenant's payloads \
             are sealed under keys derived from the keyring alone and would stay readable",
        ));
    }
    let record = state
        .db
        .tenants()
        .record(&tenant)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("tenant `{tenant}` does not exist")))?;
    if record.status == "active" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!(
                "tenant `{tenant}` is active: suspend it first (POST /v1/tenants/{tenant}/suspend)"
            ),
        ));
    }
    // The secrets first, then the status: a crash between leaves it suspended, and erasing
    // again finishes the job.
    let removed = zengine_storage::secrets::erase_tenant_secrets(&tenant).map_err(|e| {
        tracing::error!(tenant_id = %tenant, error.message = %e, "Cannot remove the tenant's secrets");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            format!("the tenant's folder of the tenant secret store cannot be removed: {e}"),
        )
    })?;
    let id = event_id();
    let audit = Audit {
        event_id: &id,
        event_type: zengine_domain::events::EventType::TenantErased,
        actor: caller.subject(),
        change: json!({"status": "erased", "secrets_removed": removed}),
    };
    let (record, changed) = state
        .db
        .tenants()
        .mark_erased(&tenant, &audit)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("tenant `{tenant}` does not exist")))?;
    state.tenants.invalidate(&tenant);
    if changed {
        tracing::warn!(tenant_id = %tenant, by = caller.subject(), "Tenant erased");
    }
    Ok(Json(json!({"tenant": record, "changed": changed})).into_response())
}

async fn set_suspended(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    caller: AdminCaller,
    suspended: bool,
) -> Result<Response, ApiError> {
    caller.require_platform()?;
    let tenant = caller.tenant(&state.db, &tenant).await?;
    let id = event_id();
    let audit = Audit {
        event_id: &id,
        event_type: if suspended {
            zengine_domain::events::EventType::TenantSuspended
        } else {
            zengine_domain::events::EventType::TenantResumed
        },
        actor: caller.subject(),
        change: json!({"status": if suspended { "suspended" } else { "active" }}),
    };
    let (record, changed) = state
        .db
        .tenants()
        .set_suspended(&tenant, suspended, &audit)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("tenant `{tenant}` does not exist")))?;
    // This process sees the change at once; other replicas within api.tenant_cache_ttl_ms.
    state.tenants.invalidate(&tenant);
    if record.status == "erased" && !suspended {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("tenant `{tenant}` is erased: it cannot be resumed"),
        ));
    }
    if changed {
        tracing::info!(tenant_id = %tenant, suspended, by = caller.subject(), "Tenant status changed");
    }
    Ok(Json(json!({"tenant": record, "changed": changed})).into_response())
}

async fn settings_json(state: &AppState, tenant: &TenantId) -> Result<Value, ApiError> {
    let tenants = state.db.tenants();
    Ok(json!({
        "allowed_http_hosts": tenants.allowed_http_hosts(tenant).await?,
        "cors_origins": tenants.cors_origins(tenant).await?,
        "payment": state.db.payments().settings(tenant).await?,
    }))
}

/// `GET /v1/tenants/{tenant}/settings`.
pub async fn get_settings(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    caller: AdminCaller,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(&state.db, &tenant).await?;
    Ok(Json(settings_json(&state, &tenant).await?).into_response())
}

/// Payment rules as a settings change names them (every field optional: missing ones keep
/// their current value).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PaymentPatch {
    /// Receipt vs order total tolerance, in cents (0 to 100000).
    #[serde(default)]
    tolerance_cents: Option<i64>,
    /// 0.0 to 1.0.
    #[serde(default)]
    min_confidence: Option<f32>,
    /// Manual-review timeout before escalation, seconds (60 to 604800).
    #[serde(default)]
    review_timeout_secs: Option<u64>,
    #[serde(default)]
    window_slack_minutes: Option<i64>,
    /// Order / payment / receipt retention, days (1 to 3650).
    #[serde(default)]
    retention_days: Option<u32>,
    #[serde(default)]
    merchant_name: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsBody {
    /// Hosts `http_request` may call: exact names or `*.domain`.
    #[serde(default)]
    allowed_http_hosts: Option<Vec<String>>,
    /// Browser origins (`https://shop.example`) allowed to call the webchat endpoints.
    #[serde(default)]
    cors_origins: Option<Vec<String>>,
    #[serde(default)]
    payment: Option<PaymentPatch>,
}

fn valid_host(host: &str) -> bool {
    let host = host.strip_prefix("*.").unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

fn valid_origin(origin: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(origin) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && !origin.ends_with('/')
        && url.username().is_empty()
}

fn check_list(field: &str, items: &[String], ok: fn(&str) -> bool) -> Result<(), ApiError> {
    if items.len() > 100 {
        return Err(ApiError::invalid_field(format!(
            "field `{field}`: at most 100 entries"
        )));
    }
    if let Some(bad) = items.iter().find(|i| !ok(i)) {
        return Err(ApiError::invalid_field(format!(
            "field `{field}`: `{bad}` is not valid"
        )));
    }
    Ok(())
}

fn apply_payment(current: &mut PaymentSettings, patch: &PaymentPatch) -> Result<(), ApiError> {
    if let Some(v) = patch.tolerance_cents {
        if !(0..=100_000).contains(&v) {
            return Err(ApiError::invalid_field(
                "field `payment.tolerance_cents`: 0 to 100000",
            ));
        }
        current.tolerance_cents = v;
    }
    if let Some(v) = patch.min_confidence {
        if !(0.0..=1.0).contains(&v) {
            return Err(ApiError::invalid_field(
                "field `payment.min_confidence`: 0.0 to 1.0",
            ));
        }
        current.min_confidence = v;
    }
    if let Some(v) = patch.review_timeout_secs {
        if !(60..=604_800).contains(&v) {
            return Err(ApiError::invalid_field(
                "field `payment.review_timeout_secs`: 60 to 604800",
            ));
        }
        current.review_timeout_secs = v;
    }
    if let Some(v) = patch.window_slack_minutes {
        if !(0..=1440).contains(&v) {
            return Err(ApiError::invalid_field(
                "field `payment.window_slack_minutes`: 0 to 1440",
            ));
        }
        current.window_slack_minutes = v;
    }
    if let Some(v) = patch.retention_days {
        if !(1..=3650).contains(&v) {
            return Err(ApiError::invalid_field(
                "field `payment.retention_days`: 1 to 3650",
            ));
        }
        current.retention_days = v;
    }
    if let Some(v) = &patch.merchant_name {
        let v = v.trim();
        if v.chars().count() > 128 || v.chars().any(char::is_control) {
            return Err(ApiError::invalid_field(
                "field `payment.merchant_name`: at most 128 printable characters",
            ));
        }
        current.merchant_name = (!v.is_empty()).then(|| v.to_owned());
    }
    Ok(())
}

/// `PATCH /v1/tenants/{tenant}/settings`: replaces the given settings, keeps the others.
pub async fn update_settings(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    caller: AdminCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(&state.db, &tenant).await?;
    let body: SettingsBody = crate::read_json(body)?;
    let hosts = body.allowed_http_hosts.map(|h| {
        h.iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
    });
    if let Some(hosts) = &hosts {
        check_list("allowed_http_hosts", hosts, valid_host)?;
    }
    let origins = body
        .cors_origins
        .map(|o| o.iter().map(|o| o.trim().to_owned()).collect::<Vec<_>>());
    if let Some(origins) = &origins {
        check_list("cors_origins", origins, valid_origin)?;
    }
    if hosts.is_none() && origins.is_none() && body.payment.is_none() {
        return Err(ApiError::invalid_field(
            "give `allowed_http_hosts`, `cors_origins` and/or `payment`",
        ));
    }
    // The payment rules are patched field by field: read, patch, and write only if nobody
    // changed them meanwhile, else again with what they changed.
    for _ in 0..10 {
        let (payment, payment_was) = match &body.payment {
            Some(patch) => {
                let was = state.db.payments().settings(&tenant).await?;
                let mut next = was.clone();
                apply_payment(&mut next, patch)?;
                (Some(next), Some(was))
            }
            None => (None, None),
        };
        let id = event_id();
        let audit = Audit {
            event_id: &id,
            event_type: zengine_domain::events::EventType::TenantSettingsChanged,
            actor: caller.subject(),
            change: json!({
                "allowed_http_hosts": hosts, "cors_origins": origins, "payment": payment,
            }),
        };
        let written = state
            .db
            .tenants()
            .set_settings(
                &tenant,
                &SettingsChange {
                    allowed_http_hosts: hosts.as_deref(),
                    cors_origins: origins.as_deref(),
                    payment: payment.as_ref(),
                    payment_was: payment_was.as_ref(),
                },
                &audit,
            )
            .await?;
        if written {
            state.tenants.invalidate(&tenant);
            return Ok(Json(settings_json(&state, &tenant).await?).into_response());
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::Conflict,
        "the payment settings kept changing meanwhile; send the change again",
    ))
}

/// `GET /v1/tenants/{tenant}/flows`: every flow id with its published versions.
pub async fn flows(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    caller: AdminCaller,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(&state.db, &tenant).await?;
    let flows = state.db.tenants().flows(&tenant).await?;
    Ok(Json(json!({"flows": flows})).into_response())
}

async fn channels_json(state: &AppState, tenant: &TenantId) -> Result<Value, ApiError> {
    let accounts = state.db.channels().accounts(tenant).await?;
    Ok(Value::Array(
        accounts
            .into_iter()
            .map(|a| {
                json!({
                    "strategy": a.strategy,
                    "account_key": a.account_key,
                    "settings": redact(&a.settings),
                })
            })
            .collect(),
    ))
}

/// Setting names that hold secrets: their values must be secret references.
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "api_key",
        "apikey",
        "private_key",
        "credential",
    ]
    .iter()
    .any(|s| name.contains(s))
}

pub(crate) fn is_reference(value: &str) -> bool {
    zengine_storage::secrets::reference_kind(value).is_some()
}

/// Whether a setting says where a provider is (`api_base`, `base_url`, `endpoint_url`,
/// `login_host`, `participant_endpoint`, `cert_url_prefix`, …): a tenant that could set one
/// would choose the host its credentials (and the platform's, for SES) are sent to, or the
/// host a signature certificate is fetched from.
fn is_endpoint_setting(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "endpoint"
        || ["_url", "_base", "_endpoint", "_host", "_prefix"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

/// What a tenant administrator may write into settings the platform resolves: secrets only
/// as `secret:NAME` (the tenant's own store), no provider endpoints. `env:`/`file:` references
/// and endpoint overrides are the platform administrator's; a tenant administrator may send
/// one back unchanged (`old` holds what is stored), so a read-modify-write keeps working.
/// `allowed_endpoints` names endpoint settings this form lets tenants choose (Chatwoot's
/// `base_url`: their own desk, reached through the outbound guard).
pub(crate) fn guard_settings(
    caller: &AdminCaller,
    new: &Value,
    old: Option<&Value>,
    allowed_endpoints: &[&str],
) -> Result<(), ApiError> {
    fn walk(
        new: &Value,
        old: Option<&Value>,
        path: &str,
        tenant: bool,
        allowed_endpoints: &[&str],
    ) -> Result<(), ApiError> {
        match new {
            Value::Object(map) => {
                for (k, v) in map {
                    let path = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    let old = old.and_then(|o| o.get(k));
                    if tenant
                        && is_endpoint_setting(k)
                        && !allowed_endpoints.contains(&k.as_str())
                        && old != Some(v)
                    {
                        return Err(ApiError::forbidden(format!(
                            "field `{path}`: provider endpoints are fixed per strategy; only a platform administrator overrides them"
                        )));
                    }
                    walk(v, old, &path, tenant, allowed_endpoints)?;
                }
                Ok(())
            }
            Value::Array(items) => items.iter().enumerate().try_for_each(|(i, v)| {
                walk(
                    v,
                    old.and_then(|o| o.get(i)),
                    &format!("{path}[{i}]"),
                    tenant,
                    allowed_endpoints,
                )
            }),
            Value::String(s) => {
                use zengine_storage::secrets::{ReferenceKind, reference_kind};
                if s.starts_with("secret:") && reference_kind(s).is_none() {
                    return Err(ApiError::invalid_field(format!(
                        "field `{path}`: `secret:NAME` names one secret of the tenant's store (letters, digits, `_`, `.`, `-`)"
                    )));
                }
                if tenant && reference_kind(s) == Some(ReferenceKind::Platform) && old != Some(new)
                {
                    return Err(ApiError::forbidden(format!(
                        "field `{path}`: a tenant's secrets are `secret:NAME` references to its own store; `env:` and `file:` references are set by a platform administrator"
                    )));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    let tenant = matches!(caller, AdminCaller::Tenant(_));
    walk(new, old, "", tenant, allowed_endpoints)
}

/// Settings as the API shows them: a secret-named value that is not a reference (stored
/// before validation existed) is replaced by `"<redacted>"`.
fn redact(settings: &Value) -> Value {
    match settings {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) if is_secret_name(k) && !is_reference(s) => {
                            json!("<redacted>")
                        }
                        other => redact(other),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// The first secret-named setting whose value is not a secret reference (a path like `a.b`).
fn inline_secret(settings: &Value, prefix: &str) -> Option<String> {
    let Value::Object(map) = settings else {
        return None;
    };
    map.iter().find_map(|(k, v)| {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::String(s) if is_secret_name(k) && !is_reference(s) => Some(path),
            Value::Object(_) => inline_secret(v, &path),
            _ => None,
        }
    })
}

/// `GET /v1/tenants/{tenant}/channels`: the tenant's channel strategies with their settings
/// (secrets only as references).
pub async fn channels(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    caller: AdminCaller,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(&state.db, &tenant).await?;
    Ok(Json(json!({"channels": channels_json(&state, &tenant).await?})).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChannelBody {
    /// The provider's id of the account (WhatsApp `phone_number_id`, …).
    account_key: String,
    /// Strategy settings; secret-named values (`…token`, `…secret`, `password`, …) must be
    /// secret references (`env:NAME`, `file:/path`).
    #[serde(default)]
    settings: Option<serde_json::Map<String, Value>>,
}

/// `PUT /v1/tenants/{tenant}/channels/{strategy}`: creates or replaces the tenant's account of
/// a strategy. 409 when another tenant owns the account key.
pub async fn put_channel(
    State(state): State<AppState>,
    Path((tenant, strategy)): Path<(String, String)>,
    caller: AdminCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(&state.db, &tenant).await?;
    let known = state.channels.outbound_names();
    let strategy_name = known
        .iter()
        .find(|n| **n == strategy)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no channel strategy `{strategy}` (known: {})",
                known.join(", ")
            ))
        })?
        .to_string();
    let body: ChannelBody = crate::read_json(body)?;
    let key = body.account_key.trim();
    if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "field `account_key`: 1 to 256 printable characters",
        ));
    }
    let settings = Value::Object(body.settings.unwrap_or_default());
    if let Some(path) = inline_secret(&settings, "") {
        return Err(ApiError::invalid_field(format!(
            "field `settings.{path}`: secrets are given as references (`secret:NAME`, or `env:NAME` / `file:/path` set by a platform administrator), never as values"
        )));
    }
    // Who has this account key: another tenant (409 below), this one (its stored settings), or
    // nobody yet.
    let routed = state.db.channels().route(&strategy_name, key).await?;
    let stored = routed.as_ref().filter(|a| a.tenant_id == tenant);
    guard_settings(&caller, &settings, stored.map(|a| &a.settings), &[])?;
    if let AdminCaller::Tenant(_) = caller {
        // The account key routes inbound traffic (a WhatsApp `phone_number_id`): a tenant
        // that could claim an unregistered one would receive that number's customers. Tenant
        // administrators change the settings of accounts they have; a platform administrator
        // registers (or re-keys) them.
        if stored.is_none() {
            return Err(ApiError::forbidden(format!(
                "account `{key}` of `{strategy_name}` is not registered to this tenant; a platform administrator registers channel accounts"
            )));
        }
    }
    if let Some(owner) = &routed
        && owner.tenant_id != tenant
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("account `{key}` of `{strategy_name}` belongs to another tenant"),
        ));
    }
    let account = ChannelAccount {
        strategy: strategy_name.clone(),
        account_key: key.to_owned(),
        tenant_id: tenant.clone(),
        settings: settings.clone(),
    };
    if let Err(e) = state.db.channels().upsert_account(&account).await {
        // Claimed by another tenant after the check above read.
        return Err(match e.downcast::<zengine_storage::AccountTaken>() {
            Ok(taken) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, taken.to_string())
            }
            Err(e) => e.into(),
        });
    }
    let id = event_id();
    state
        .db
        .events()
        .record(zengine_storage::NewEvent {
            event_id: &id,
            tenant_id: &tenant,
            event_type: zengine_domain::events::EventType::TenantChannelConfigured,
            subject: tenant.as_str(),
            payload: &json!({
                "actor": caller.subject(),
                "change": {"strategy": strategy_name, "account_key": key, "settings": redact(&settings)},
            }),
        })
        .await?;
    Ok(Json(json!({
        "strategy": strategy_name, "account_key": key, "settings": redact(&settings),
    }))
    .into_response())
}

/// `DELETE /v1/tenants/{tenant}/channels/{strategy}`: 204; 404 when there is none.
pub async fn delete_channel(
    State(state): State<AppState>,
    Path((tenant, strategy)): Path<(String, String)>,
    caller: AdminCaller,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(&state.db, &tenant).await?;
    if !state
        .db
        .channels()
        .delete_account(&tenant, &strategy)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "tenant has no `{strategy}` channel"
        )));
    }
    let id = event_id();
    state
        .db
        .events()
        .record(zengine_storage::NewEvent {
            event_id: &id,
            tenant_id: &tenant,
            event_type: zengine_domain::events::EventType::TenantChannelRemoved,
            subject: tenant.as_str(),
            payload: &json!({"actor": caller.subject(), "change": {"strategy": strategy}}),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_secrets_are_found_and_references_pass() {
        let ok = json!({"access_token": "env:WA_TOKEN", "api_base": "https://x", "nested": {"app_secret": "file:/run/s"}});
        assert_eq!(inline_secret(&ok, ""), None);
        let bad = json!({"nested": {"app_secret": "s3cr3t"}});
        assert_eq!(
            inline_secret(&bad, "").as_deref(),
            Some("nested.app_secret")
        );
        assert_eq!(
            redact(&json!({"password": "hunter2", "token": "env:T"})),
            json!({"password": "<redacted>", "token": "env:T"})
        );
    }

    #[test]
    fn hosts_and_origins_are_checked() {
        assert!(valid_host("api.example.com") && valid_host("*.example.com"));
        assert!(!valid_host("exa mple.com") && !valid_host("") && !valid_host("a..b"));
        assert!(valid_origin("https://shop.example") && valid_origin("http://127.0.0.1:3000"));
        assert!(!valid_origin("https://shop.example/") && !valid_origin("ftp://x.y"));
        assert!(!valid_origin("shop.example"));
    }
}
