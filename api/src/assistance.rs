//! Travel assistance API (tenant-scoped): assistance events and their drafts, status changes,
//! providers, notes, phone consultations (with an attachment in the file store), catalogues,
//! provider search, and MOK tracking events. `docs/assistance.md` is the reference.
//!
//! Every request is checked before anything reaches Temporal: a bad body, a status the state
//! machine forbids or an unknown action gets a 4xx JSON error and has no effect. Repeating a
//! request is safe: creations take an optional `x-idempotency-key` (the same key and body give
//! the same resource with 200; the same key with another body 409), and provider steps or
//! status changes that already happened answer 200 with `duplicate: true`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use temporalio_client::errors::WorkflowStartError;
use temporalio_client::{
    WorkflowDescribeOptions, WorkflowExecuteUpdateOptions, WorkflowIdConflictPolicy,
    WorkflowIdReusePolicy, WorkflowQueryOptions, WorkflowStartOptions,
};
use zengine_channels::files::{FileKey, sniff_content_type};
use zengine_domain::assistance::{
    EventFields, EventStatus, MokEventRequest, ProviderStatus, TransitionError, on_assign,
    on_resolve, on_start,
};
use zengine_domain::phone::E164;
use zengine_domain::{IdempotencyKey, TenantId};
use zengine_storage::assistance::{
    AssistanceError, Attachment, NewConsultation, NewNote, ProviderSearch, id_for_key,
};
use zengine_workflows::assistance::{AssistanceInput, ProviderRequest, StatusRequest};
use zengine_workflows::mok::MokInput;
use zengine_workflows::names::queues;
use zengine_workflows::{AssistanceWorkflow, MokWorkflow};

use crate::metrics::Counted;
use crate::{ApiError, AppState, ErrorCode};

/// Who is calling: the caller's tenant, from a JWT or the admin token (API keys get 403: the
/// assistance desk is an operators' tool). Reads need the viewer role, changes the operator role.
async fn caller(state: &AppState, headers: &HeaderMap) -> Result<TenantId, ApiError> {
    Ok(
        crate::auth::caller_of(state, headers, crate::auth::Role::Viewer)
            .await?
            .tenant,
    )
}

async fn actor(state: &AppState, headers: &HeaderMap) -> Result<TenantId, ApiError> {
    Ok(
        crate::auth::caller_of(state, headers, crate::auth::Role::Operator)
            .await?
            .tenant,
    )
}

const IDEMPOTENCY_HEADER: &str = "x-idempotency-key";

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
}

fn invalid(problems: Vec<String>) -> ApiError {
    ApiError::invalid_field(problems.first().cloned().unwrap_or_default()).with_details(problems)
}

fn key_reused() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::IdempotencyKeyReused,
        "this x-idempotency-key was already used for a different request",
    )
}

fn unavailable(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        message,
    )
}

/// A refused state-machine move: the caller's mistake (422) or the event's state (409).
fn transition(error: TransitionError) -> ApiError {
    if error.is_request_error() {
        ApiError::invalid_field(error.to_string())
    } else {
        conflict(error.to_string())
    }
}

fn repo_error(error: AssistanceError) -> ApiError {
    match error {
        AssistanceError::NotFound(what) => ApiError::not_found(format!("{what} does not exist")),
        AssistanceError::Transition(t) => transition(t),
        AssistanceError::UnknownProvider(p) => {
            ApiError::invalid_field(format!("provider `{p}` does not exist or is not active"))
        }
        AssistanceError::Invalid(problems) => invalid(problems),
        AssistanceError::KeyReused => key_reused(),
        AssistanceError::Other(e) => ApiError::internal(e),
    }
}

/// The optional `x-idempotency-key`.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(raw) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let raw = raw.to_str().map_err(|_| {
        ApiError::bad_request(
            ErrorCode::InvalidHeader,
            "header `x-idempotency-key` is not ASCII",
        )
    })?;
    IdempotencyKey::parse(raw).map(Some).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::InvalidHeader,
            format!("header `x-idempotency-key`: {e}"),
        )
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn new_id(prefix: &str, tenant: &TenantId, key: Option<&IdempotencyKey>) -> String {
    match key {
        Some(key) => id_for_key(prefix, tenant, key.as_str()),
        None => format!(
            "{prefix}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..24]
        ),
    }
}

/// A path id: 1–64 of `A-Za-z0-9_-.:` (anything else cannot exist, so it is a 404).
fn path_id<'a>(what: &str, id: &'a str) -> Result<&'a str, ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(id)
    } else {
        Err(ApiError::not_found(format!("{what} `{id}` does not exist")))
    }
}

async fn existing_event(
    state: &AppState,
    tenant: &TenantId,
    event_id: &str,
) -> Result<zengine_storage::assistance::AssistanceEvent, ApiError> {
    let event_id = path_id("assistance event", event_id)?;
    state
        .db
        .assistance()
        .event(tenant, event_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("assistance event `{event_id}` does not exist")))
}

/// Starts (or finds) the event's workflow.
async fn start_event_workflow(
    state: &AppState,
    tenant: &TenantId,
    event_id: &str,
) -> Result<(), ApiError> {
    let settings = state.db.assistance().settings(tenant).await?;
    let options = WorkflowStartOptions::new(
        state.queue(queues::ASSISTANCE),
        zengine_domain::workflow_ids::assistance(tenant, event_id),
    )
    .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
    .build();
    let input = AssistanceInput {
        tenant_id: tenant.clone(),
        event_id: event_id.to_owned(),
        settings,
    };
    state
        .temporal
        .start_workflow(AssistanceWorkflow::run, input, options)
        .await
        .counted("Assistance")
        .map_err(|e| {
            tracing::error!(error.message = %e, "Failed to start the assistance workflow");
            unavailable(
                "the draft is stored but its workflow could not start; retry with the same \
                 x-idempotency-key",
            )
        })?;
    Ok(())
}

/// `POST /v1/assistances/events/draft`: a new DRAFT event (fields optional) and its workflow.
pub async fn create_draft(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = actor(&state, &headers).await?;
    let key = idempotency_key(&headers)?;
    let fields: EventFields = crate::read_json(body)?;
    let problems = fields.problems();
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let event_id = new_id("ase", &tenant, key.as_ref());
    let hash = key
        .as_ref()
        .map(|_| sha256_hex(&serde_json::to_vec(&fields).unwrap_or_default()));
    let (event, created) = state
        .db
        .assistance()
        .create_draft(&tenant, &event_id, &fields, hash.as_deref())
        .await
        .map_err(repo_error)?;
    if !event.status.is_final() {
        start_event_workflow(&state, &tenant, &event.event_id).await?;
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(event)).into_response())
}

/// `GET /v1/assistances/events/draft/{id}`.
pub async fn get_draft(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = caller(&state, &headers).await?;
    let event = existing_event(&state, &tenant, &event_id).await?;
    Ok(Json(event).into_response())
}

/// `PUT /v1/assistances/events/draft/{id}`: replaces the draft's fields (409 once opened).
pub async fn update_draft(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = actor(&state, &headers).await?;
    let event_id = path_id("assistance event", &event_id)?.to_owned();
    let fields: EventFields = crate::read_json(body)?;
    let problems = fields.problems();
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let event = state
        .db
        .assistance()
        .update_draft(&tenant, &event_id, &fields)
        .await
        .map_err(|e| match e {
            AssistanceError::Transition(TransitionError::NotAllowed { from, .. }) => {
                conflict(format!("the event is {from}; only drafts can be edited"))
            }
            other => repo_error(other),
        })?;
    Ok(Json(event).into_response())
}

/// `GET /v1/assistances/events/{id}`: the event with its providers, status changes, notes,
/// phone consultations and MOK log.
pub async fn get_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = caller(&state, &headers).await?;
    let event = existing_event(&state, &tenant, &event_id).await?;
    let repo = state.db.assistance();
    let id = &event.event_id;
    Ok(Json(json!({
        "event": event,
        "providers": repo.event_providers(&tenant, id).await?,
        "status_changes": repo.status_changes(&tenant, id).await?,
        "notes": repo.notes(&tenant, id).await?,
        "phone_consultations": repo.consultations(&tenant, id).await?,
        "log": repo.log_for_assistance(&tenant, id).await?,
    }))
    .into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusBody {
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /v1/assistances/events/{id}/statuses` `{status, reason}`.
pub async fn change_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = actor(&state, &headers).await?;
    let body: StatusBody = crate::read_json(body)?;
    let to: EventStatus = body
        .status
        .parse()
        .map_err(|e: String| ApiError::invalid_field(format!("field `status`: {e}")))?;
    if body
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > 1000)
    {
        return Err(ApiError::invalid_field(
            "field `reason`: at most 1000 characters",
        ));
    }
    let event = existing_event(&state, &tenant, &event_id).await?;
    if event.status == to {
        return Ok(Json(json!({"event": event, "duplicate": true})).into_response());
    }
    event.status.check_manual(to).map_err(transition)?;
    if event.status == EventStatus::Draft && to == EventStatus::Open {
        event.fields.check_open().map_err(transition)?;
    }
    if to == EventStatus::Resolved
        && !state
            .db
            .assistance()
            .event_providers(&tenant, &event.event_id)
            .await?
            .is_empty()
    {
        return Err(transition(TransitionError::NotManual {
            to,
            how: "an event providers worked on is resolved by its providers",
        }));
    }
    let handle = state.temporal.get_workflow_handle::<AssistanceWorkflow>(
        zengine_domain::workflow_ids::assistance(&tenant, &event.event_id),
    );
    let request = StatusRequest {
        to,
        actor: "api".into(),
        reason: body.reason,
    };
    let view = handle
        .execute_update(
            AssistanceWorkflow::change_status,
            request,
            WorkflowExecuteUpdateOptions::default(),
        )
        .await
        .map_err(|e| {
            crate::error::update_error(e, conflict("the event is closed"), "ChangeStatus")
        })?;
    Ok(Json(json!({"workflow": view})).into_response())
}

/// The body of `POST /v1/assistances/events/{id}/providers`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssignBody {
    /// The provider's code (`GET /v1/providers/search`).
    provider_id: String,
}

/// `POST /v1/assistances/events/{id}/providers` `{provider_id}`.
pub async fn assign_provider(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = actor(&state, &headers).await?;
    let body: AssignBody = crate::read_json(body)?;
    if body.provider_id.is_empty() || body.provider_id.len() > 64 {
        return Err(ApiError::invalid_field(
            "field `provider_id`: 1 to 64 characters",
        ));
    }
    let event = existing_event(&state, &tenant, &event_id).await?;
    let repo = state.db.assistance();
    let providers = repo.event_providers(&tenant, &event.event_id).await?;
    if let Some(existing) = providers.iter().find(|p| p.provider_id == body.provider_id) {
        return Ok(Json(json!({"provider": existing, "duplicate": true})).into_response());
    }
    if !repo
        .provider(&tenant, &body.provider_id)
        .await?
        .is_some_and(|p| p.active)
    {
        return Err(ApiError::invalid_field(format!(
            "field `provider_id`: provider `{}` does not exist or is not active",
            body.provider_id
        )));
    }
    on_assign(event.status).map_err(transition)?;
    let view = provider_update(
        &state,
        &tenant,
        &event.event_id,
        ProviderStep::Assign,
        body.provider_id,
        None,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({"workflow": view}))).into_response())
}

#[derive(Clone, Copy)]
enum ProviderStep {
    Assign,
    Start,
    Resolve,
}

async fn provider_update(
    state: &AppState,
    tenant: &TenantId,
    event_id: &str,
    step: ProviderStep,
    provider_id: String,
    note: Option<String>,
) -> Result<zengine_workflows::assistance::AssistanceView, ApiError> {
    let handle = state.temporal.get_workflow_handle::<AssistanceWorkflow>(
        zengine_domain::workflow_ids::assistance(tenant, event_id),
    );
    let request = ProviderRequest {
        provider_id,
        actor: "api".into(),
        note,
    };
    let options = WorkflowExecuteUpdateOptions::default();
    let result = match step {
        ProviderStep::Assign => {
            handle
                .execute_update(AssistanceWorkflow::assign_provider, request, options)
                .await
        }
        ProviderStep::Start => {
            handle
                .execute_update(AssistanceWorkflow::start_provider, request, options)
                .await
        }
        ProviderStep::Resolve => {
            handle
                .execute_update(AssistanceWorkflow::resolve_provider, request, options)
                .await
        }
    };
    result.map_err(|e| crate::error::update_error(e, conflict("the event is closed"), "Provider"))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    #[serde(default)]
    note: Option<String>,
}

/// `POST /v1/assistances/events/{id}/providers/{provider_id}/start`.
pub async fn start_provider(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((event_id, provider_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    provider_step(
        state,
        headers,
        event_id,
        provider_id,
        ProviderStep::Start,
        None,
    )
    .await
}

/// `POST /v1/assistances/events/{id}/providers/{provider_id}/resolve` `{note}` (body optional).
pub async fn resolve_provider(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((event_id, provider_id)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = crate::read_body(body)?;
    let body: ResolveBody = if raw.is_empty() {
        ResolveBody::default()
    } else {
        crate::parse_json(&raw)?
    };
    if body.note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(ApiError::invalid_field(
            "field `note`: at most 2000 characters",
        ));
    }
    provider_step(
        state,
        headers,
        event_id,
        provider_id,
        ProviderStep::Resolve,
        body.note,
    )
    .await
}

async fn provider_step(
    state: AppState,
    headers: HeaderMap,
    event_id: String,
    provider_id: String,
    step: ProviderStep,
    note: Option<String>,
) -> Result<Response, ApiError> {
    let tenant = actor(&state, &headers).await?;
    let event = existing_event(&state, &tenant, &event_id).await?;
    let provider_id = path_id("provider", &provider_id)?.to_owned();
    let providers = state
        .db
        .assistance()
        .event_providers(&tenant, &event.event_id)
        .await?;
    let current = providers
        .iter()
        .find(|p| p.provider_id == provider_id)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "provider `{provider_id}` is not assigned to assistance event `{}`",
                event.event_id
            ))
        })?;
    let target = match step {
        ProviderStep::Start => ProviderStatus::Started,
        _ => ProviderStatus::Resolved,
    };
    if current.status == target {
        return Ok(Json(json!({"provider": current, "duplicate": true})).into_response());
    }
    match step {
        ProviderStep::Start => on_start(event.status, current.status).map(|_| ()),
        _ => {
            let others = providers
                .iter()
                .any(|p| p.provider_id != provider_id && p.status.is_active());
            on_resolve(event.status, current.status, others).map(|_| ())
        }
    }
    .map_err(transition)?;
    let view = provider_update(&state, &tenant, &event.event_id, step, provider_id, note).await?;
    Ok(Json(json!({"workflow": view})).into_response())
}

/// The body of `POST /v1/assistances/notes`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoteBody {
    /// The assistance event the note is about.
    event_id: String,
    /// The note.
    text: String,
    /// Accepted for older clients and ignored: the author is the authenticated caller.
    #[serde(default)]
    author: Option<String>,
}

/// `POST /v1/assistances/notes` `{event_id, text, author}`. The note's author is the
/// authenticated caller (a token's `sub`); a body `author` is checked and ignored, so nobody
/// writes notes in another operator's name.
pub async fn add_note(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = crate::auth::caller_of(&state, &headers, crate::auth::Role::Operator).await?;
    let tenant = caller.tenant.clone();
    let key = idempotency_key(&headers)?;
    let body: NoteBody = crate::read_json(body)?;
    let mut problems = Vec::new();
    if body.text.trim().is_empty() || body.text.chars().count() > 4000 {
        problems.push("field `text`: 1 to 4000 characters".to_owned());
    }
    if body
        .author
        .as_ref()
        .is_some_and(|a| a.trim().is_empty() || a.chars().count() > 100)
    {
        problems.push("field `author`: 1 to 100 characters".to_owned());
    }
    let author = caller.subject.clone();
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let event = existing_event(&state, &tenant, &body.event_id).await?;
    let note_id = new_id("not", &tenant, key.as_ref());
    let hash = key.as_ref().map(|_| {
        sha256_hex(
            json!([body.event_id, body.text, body.author])
                .to_string()
                .as_bytes(),
        )
    });
    let (note, created) = state
        .db
        .assistance()
        .add_note(
            &tenant,
            &NewNote {
                note_id: &note_id,
                event_id: &event.event_id,
                author: &author,
                source: "api",
                body: &body.text,
                request_hash: hash.as_deref(),
            },
        )
        .await
        .map_err(repo_error)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(note)).into_response())
}

/// The fields of a phone-consultation upload.
#[derive(Default)]
struct ConsultationForm {
    event_id: Option<String>,
    summary: Option<String>,
    caller_phone: Option<String>,
    duration_secs: Option<String>,
    attachment: Option<Bytes>,
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        "the attachment is too large",
    )
}

async fn read_form(
    mut multipart: Multipart,
    max_bytes: usize,
) -> Result<ConsultationForm, ApiError> {
    let map_err = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad_request(
                ErrorCode::InvalidField,
                format!("malformed multipart body: {}", e.body_text()),
            )
        }
    };
    let mut form = ConsultationForm::default();
    while let Some(field) = multipart.next_field().await.map_err(map_err)? {
        let name = field.name().unwrap_or("").to_owned();
        let bytes = field.bytes().await.map_err(map_err)?;
        let text = || {
            String::from_utf8(bytes.to_vec()).map_err(|_| {
                ApiError::bad_request(
                    ErrorCode::InvalidField,
                    format!("field `{name}` is not UTF-8"),
                )
            })
        };
        match name.as_str() {
            "attachment" => {
                if bytes.len() > max_bytes {
                    return Err(too_large());
                }
                form.attachment = Some(bytes.clone());
            }
            "event_id" => form.event_id = Some(text()?),
            "summary" => form.summary = Some(text()?),
            "caller_phone" => form.caller_phone = Some(text()?),
            "duration_secs" => form.duration_secs = Some(text()?),
            other => {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidField,
                    format!("unknown multipart field `{other}`"),
                ));
            }
        }
    }
    Ok(form)
}

/// `POST /v1/assistances/phone-consultations`: `multipart/form-data` with `event_id`,
/// `summary`, optional `caller_phone` (E.164) and `duration_secs`, and an optional file in
/// `attachment` (PDF, image or audio by content, at most `api.attachments.max_bytes`).
pub async fn add_consultation(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    let tenant = actor(&state, &headers).await?;
    let key = idempotency_key(&headers)?;
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidHeader,
            "send multipart/form-data with event_id, summary and an optional attachment",
        ));
    }
    let multipart = Multipart::from_request(request, &state)
        .await
        .map_err(|e| {
            ApiError::bad_request(
                ErrorCode::InvalidField,
                format!("malformed multipart body: {}", e.body_text()),
            )
        })?;
    let limits = &state.settings.attachments;
    let form = read_form(multipart, limits.max_bytes).await?;

    let mut problems = Vec::new();
    let summary = form.summary.clone().unwrap_or_default();
    if summary.trim().is_empty() || summary.chars().count() > 4000 {
        problems.push("field `summary`: 1 to 4000 characters".to_owned());
    }
    if let Some(phone) = &form.caller_phone
        && let Err(e) = E164::parse(phone.clone())
    {
        problems.push(format!("field `caller_phone`: {e}"));
    }
    let duration = match form.duration_secs.as_deref() {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(d) if (0..=24 * 3600).contains(&d) => Some(d),
            _ => {
                problems
                    .push("field `duration_secs`: a whole number of seconds, at most 86400".into());
                None
            }
        },
    };
    let content_type = match &form.attachment {
        Some(bytes) => match sniff_content_type(bytes) {
            Some(t) if limits.content_types.iter().any(|allowed| allowed == t) => Some(t),
            _ => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    ErrorCode::InvalidField,
                    format!(
                        "field `attachment` must be one of {}",
                        limits.content_types.join(", ")
                    ),
                ));
            }
        },
        None => None,
    };
    let Some(event_id) = form.event_id.clone() else {
        problems.insert(0, "field `event_id`: is required".to_owned());
        return Err(invalid(problems));
    };
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let event = existing_event(&state, &tenant, &event_id).await?;
    let consultation_id = new_id("phc", &tenant, key.as_ref());
    let sha = form.attachment.as_ref().map(|b| sha256_hex(b));
    let hash = key.as_ref().map(|_| {
        sha256_hex(
            json!([
                event_id,
                summary,
                form.caller_phone,
                form.duration_secs,
                sha
            ])
            .to_string()
            .as_bytes(),
        )
    });
    let attachment = match (&form.attachment, content_type) {
        (Some(bytes), Some(content_type)) => {
            let sha = sha.clone().unwrap_or_default();
            let key = FileKey::parse(format!(
                "{tenant}/phone-consultations/{consultation_id}/{}",
                &sha[..16]
            ))
            .map_err(|e| ApiError::internal(e.into()))?;
            // Stored before the row: a row never points at a missing file. A retry with the
            // same key writes the same file again.
            state
                .files
                .put(&key, content_type, bytes)
                .await
                .map_err(ApiError::internal)?;
            Some(Attachment {
                key: key.to_string(),
                content_type: content_type.to_owned(),
                size: bytes.len() as i64,
                sha256: sha,
            })
        }
        _ => None,
    };
    let (consultation, created) = state
        .db
        .assistance()
        .add_consultation(
            &tenant,
            &NewConsultation {
                consultation_id: &consultation_id,
                event_id: &event.event_id,
                caller_phone: form.caller_phone.as_deref(),
                summary: &summary,
                duration_secs: duration,
                attachment: attachment.as_ref(),
                request_hash: hash.as_deref(),
            },
        )
        .await
        .map_err(repo_error)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(consultation)).into_response())
}

/// `GET /v1/assistances/phone-consultations/{id}/attachment`: the stored file.
pub async fn get_attachment(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(consultation_id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = caller(&state, &headers).await?;
    let id = path_id("phone consultation", &consultation_id)?;
    let consultation = state
        .db
        .assistance()
        .consultation(&tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("phone consultation `{id}` does not exist")))?;
    let attachment = consultation
        .attachment
        .ok_or_else(|| ApiError::not_found("this phone consultation has no attachment"))?;
    let key = FileKey::parse(attachment.key.clone()).map_err(|e| ApiError::internal(e.into()))?;
    let bytes = state.files.get(&key).await?.ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "attachment {key} is missing from the file store"
        ))
    })?;
    Ok(([(header::CONTENT_TYPE, attachment.content_type)], bytes).into_response())
}

/// `GET /v1/masters/{catalogue}`.
pub async fn catalogue(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller(&state, &headers).await?;
    let items = state
        .db
        .assistance()
        .catalogue(&name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no catalogue `{name}` (categories, event-statuses, eventprovider-statuses, \
                 voucher-statuses, countries)"
            ))
        })?;
    Ok(Json(json!({"catalogue": name, "items": items})).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    category: Option<String>,
    city: Option<String>,
    q: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/providers/search?category=&city=&q=&limit=`.
pub async fn search_providers(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let tenant = caller(&state, &headers).await?;
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(ErrorCode::InvalidField, e.body_text()))?;
    let limit = query.limit.unwrap_or(20);
    let mut problems = Vec::new();
    if !(1..=100).contains(&limit) {
        problems.push("query `limit`: must be 1 to 100".to_owned());
    }
    for (name, value) in [
        ("category", &query.category),
        ("city", &query.city),
        ("q", &query.q),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| v.trim().is_empty() || v.chars().count() > 100)
        {
            problems.push(format!("query `{name}`: 1 to 100 characters"));
        }
    }
    if !problems.is_empty() {
        return Err(
            ApiError::bad_request(ErrorCode::InvalidField, problems[0].clone())
                .with_details(problems),
        );
    }
    let providers = state
        .db
        .assistance()
        .search_providers(
            &tenant,
            &ProviderSearch {
                category: query.category.as_deref(),
                city: query.city.as_deref(),
                text: query.q.as_deref(),
                limit,
            },
        )
        .await?;
    Ok(Json(json!({"providers": providers})).into_response())
}

/// `POST /v1/mok/events`: a MOK tracking event runs the MOK workflow. 202 when it started;
/// the same `event_id` again answers 200 with the run that exists (one effect), or 409 when
/// the body differs.
pub async fn post_mok_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = actor(&state, &headers).await?;
    let request: MokEventRequest = crate::read_json(body)?;
    let event = request.validate().map_err(invalid)?;
    if let Some(at) = &event.occurred_at
        && chrono::DateTime::parse_from_rfc3339(at).is_err()
    {
        return Err(ApiError::invalid_field(
            "field `occurred_at`: not an RFC 3339 timestamp",
        ));
    }
    let fingerprint = sha256_hex(&serde_json::to_vec(&event).unwrap_or_default());
    let settings = state.db.assistance().settings(&tenant).await?;
    let workflow_id = zengine_domain::workflow_ids::mok(&tenant, &event.event_id);
    // Reject-duplicate + fail-on-conflict, so the answer tells a first delivery from a repeat
    // (the SDK's start call does not say whether a use-existing start found a run).
    let mut memo = temporalio_common::MemoValues::new();
    memo.insert("request_sha256", fingerprint.clone());
    let options = WorkflowStartOptions::new(state.queue(queues::ASSISTANCE), workflow_id.clone())
        .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
        .id_conflict_policy(WorkflowIdConflictPolicy::Fail)
        .memo(memo)
        .build();
    let input = MokInput {
        tenant_id: tenant.clone(),
        event,
        settings,
    };
    match state
        .temporal
        .start_workflow(MokWorkflow::run, input, options)
        .await
        .counted("Mok")
    {
        Ok(handle) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "workflow_id": workflow_id,
                "run_id": handle.run_id(),
                "status": "ACCEPTED",
            })),
        )
            .into_response()),
        Err(WorkflowStartError::AlreadyStarted { run_id, .. }) => {
            let handle = state
                .temporal
                .get_workflow_handle::<MokWorkflow>(&workflow_id);
            let description = handle
                .describe(WorkflowDescribeOptions::default())
                .await
                .map_err(|e| {
                    tracing::error!(error.message = %e, "Failed to describe the MOK workflow");
                    unavailable("the workflow service is unavailable; retrying is safe")
                })?;
            // Only a fingerprint that can be read and differs is a conflict: a memo the client
            // cannot decode (e.g. under a payload codec) must not turn a repeat into a 409.
            let stored: Option<String> = description.memo().get("request_sha256").ok().flatten();
            if stored.is_some_and(|stored| stored != fingerprint) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::IdempotencyKeyReused,
                    "this event_id was already used for a different event",
                ));
            }
            Ok((
                StatusCode::OK,
                Json(json!({
                    "workflow_id": workflow_id,
                    "run_id": run_id,
                    "status": format!("{:?}", description.status()).to_ascii_uppercase(),
                    "duplicate": true,
                })),
            )
                .into_response())
        }
        Err(e) => {
            tracing::error!(error.message = %e, "Failed to start the MOK workflow");
            Err(unavailable(
                "the MOK event was not accepted; retrying with the same event_id is safe",
            ))
        }
    }
}

/// `GET /v1/mok/events/{event_id}`: the workflow's state and the assistance-log rows.
pub async fn get_mok_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = caller(&state, &headers).await?;
    let event_id = path_id("MOK event", &event_id)?;
    let log = state.db.assistance().log(&tenant, event_id).await?;
    let handle = state
        .temporal
        .get_workflow_handle::<MokWorkflow>(zengine_domain::workflow_ids::mok(&tenant, event_id));
    let status = match handle.describe(WorkflowDescribeOptions::default()).await {
        Ok(d) => format!("{:?}", d.status()).to_ascii_uppercase(),
        Err(_) if !log.is_empty() => "UNKNOWN".to_owned(),
        Err(_) => {
            return Err(ApiError::not_found(format!(
                "MOK event `{event_id}` does not exist"
            )));
        }
    };
    let view = handle
        .query(MokWorkflow::status, (), WorkflowQueryOptions::default())
        .await
        .ok();
    Ok(Json(json!({
        "event_id": event_id,
        "workflow_status": status,
        "state": view,
        "log": log,
    }))
    .into_response())
}
