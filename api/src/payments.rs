//! Payments API: submit a receipt for an order, read payments, and the operator's review.
//!
//! - `POST /v1/orders/{id}/payments`: `multipart/form-data` with the image in the field `image`
//!   (JPEG or PNG, at most `api.max_upload_bytes`), or JSON `{"media_ref": "upload:<id>"}` for
//!   an image uploaded before. Starts the payment workflow and answers 202 with the payment; the
//!   same image for the same order again answers 200 with the same payment (no second workflow).
//! - `GET /v1/orders/{id}/payments`, `GET /v1/payments/{id}`.
//! - `GET /v1/payments?status=MANUAL_REVIEW&limit=&after=`: the review queue (oldest first,
//!   paged with the returned `next_after`); `GET /v1/payments/{id}/receipt`: the receipt image.
//! - `POST /v1/payments/{id}/review` `{"decision": "approve"|"reject", "reviewer", "note"}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use temporalio_client::{
    WorkflowExecuteUpdateOptions, WorkflowIdConflictPolicy, WorkflowStartOptions,
};
use zengine_domain::TenantId;
use zengine_domain::payment::{PaymentStatus, payment_id_for};
use zengine_storage::Payment;
use zengine_workflows::PaymentWorkflow;
use zengine_workflows::names::queues;
use zengine_workflows::payment::{PaymentInput, Review};

use crate::auth::{Caller, PartnerCaller, Role};
use crate::metrics::Counted;
use crate::{ApiError, AppState, ErrorCode};

fn payment_json(p: &Payment) -> serde_json::Value {
    json!({
        "payment_id": p.payment_id,
        "order_id": p.order_id,
        "status": p.status,
        "operation_code": p.operation_code,
        "amount": p.amount.map(|c| c.to_string()),
        "sender": p.sender,
        "reasons": p.reasons,
        "extraction": p.extraction,
        "raw_ocr": p.raw_ocr,
        "media_ref": p.media_ref,
        "reviewed_by": p.reviewed_by,
        "reviewed_at": p.reviewed_at,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    })
}

/// The image type from its first bytes (the declared content type is not trusted).
fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else {
        None
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaBody {
    media_ref: String,
}

/// Reads the image out of a multipart body (field `image`).
async fn image_from_multipart(mut multipart: Multipart) -> Result<Bytes, ApiError> {
    let bad = |message: String| ApiError::bad_request(ErrorCode::InvalidField, message);
    while let Some(field) = multipart.next_field().await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                "the image is too large",
            )
        } else {
            bad(format!("malformed multipart body: {}", e.body_text()))
        }
    })? {
        if field.name() == Some("image") {
            return field.bytes().await.map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        ErrorCode::PayloadTooLarge,
                        "the image is too large",
                    )
                } else {
                    bad(format!("malformed multipart body: {}", e.body_text()))
                }
            });
        }
    }
    Err(bad("multipart field `image` is required".into()))
}

/// Stores the `image` field of a multipart request (JPEG or PNG by content); returns its media id.
async fn store_image(
    state: &AppState,
    tenant_id: &TenantId,
    request: Request,
) -> Result<String, ApiError> {
    let multipart = Multipart::from_request(request, state).await.map_err(|e| {
        ApiError::bad_request(
            ErrorCode::InvalidField,
            format!("malformed multipart body: {}", e.body_text()),
        )
    })?;
    let image = image_from_multipart(multipart).await?;
    let mime = sniff_image(&image).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidField,
            "field `image` must be a JPEG or PNG image",
        )
    })?;
    let (media_id, _) = state
        .db
        .payments()
        .put_media(tenant_id, mime, &image)
        .await?;
    Ok(media_id)
}

/// `POST /v1/webchat/media` (`x-tenant-id`, multipart `image`): a webchat customer uploads a
/// picture (e.g. a payment receipt) and sends the returned `media_ref` as the `reference` of an
/// image message. 201 with `{"media_ref": "upload:<id>"}`; the same bytes give the same id.
pub async fn upload_webchat_media(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let raw = request
        .headers()
        .get(&crate::webchat::TENANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::bad_request(ErrorCode::MissingHeader, "header `x-tenant-id` is required")
        })?;
    let tenant_id = TenantId::parse(raw).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::InvalidHeader,
            format!("header `x-tenant-id`: {e}"),
        )
    })?;
    if state.db.tenants().get(&tenant_id).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownTenant,
            format!("tenant `{tenant_id}` does not exist"),
        ));
    }
    // Charged before the body is read: what it says it is, or the largest upload.
    let client = crate::quota::ClientAddr::of(request.extensions(), request.headers(), &state);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(state.settings.max_upload_bytes as u64)
        .min(state.settings.max_upload_bytes as u64);
    state
        .quotas
        .media(&state.settings.anonymous, &tenant_id, client.0, declared)?;
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !multipart {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidHeader,
            "send multipart/form-data with an `image` field",
        ));
    }
    let media_id = store_image(&state, &tenant_id, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"media_ref": format!("upload:{media_id}")})),
    )
        .into_response())
}

/// `POST /v1/orders/{id}/payments`.
pub async fn submit(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    caller: PartnerCaller,
    request: Request,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let tenant_id = caller.tenant.clone();
    let order = state
        .db
        .orders()
        .get(&tenant_id, &order_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("order `{order_id}` does not exist")))?;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (media_ref, media_id) = if content_type.starts_with("multipart/form-data") {
        let media_id = store_image(&state, &tenant_id, request).await?;
        (format!("upload:{media_id}"), media_id)
    } else if content_type.starts_with("application/json") {
        let body: Result<Bytes, BytesRejection> = Bytes::from_request(request, &state).await;
        let body: MediaBody = crate::read_json(body)?;
        let media_id = body
            .media_ref
            .strip_prefix("upload:")
            .filter(|id| !id.is_empty() && id.len() <= 64)
            .ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::InvalidField,
                    "field `media_ref` must be `upload:<media_id>`",
                )
            })?;
        if state
            .db
            .payments()
            .get_media(&tenant_id, media_id)
            .await?
            .is_none()
        {
            return Err(ApiError::invalid_field(format!(
                "field `media_ref`: media `{media_id}` does not exist"
            )));
        }
        (body.media_ref.clone(), media_id.to_owned())
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidHeader,
            "send multipart/form-data with an `image` field, or JSON with `media_ref`",
        ));
    };

    let payment_id = payment_id_for(&order.order_id, &media_id);
    let (payment, created) = state
        .db
        .payments()
        .create(&tenant_id, &payment_id, &order.order_id, &media_ref)
        .await?;
    start_workflow(&state, &tenant_id, &payment).await?;
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(payment_json(&payment))).into_response())
}

/// Starts (or finds) the payment's workflow.
async fn start_workflow(
    state: &AppState,
    tenant_id: &TenantId,
    payment: &Payment,
) -> Result<(), ApiError> {
    let options = WorkflowStartOptions::new(
        state.queue(queues::PAYMENTS),
        zengine_domain::workflow_ids::payment(tenant_id, &payment.payment_id),
    )
    .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
    .build();
    let input = PaymentInput {
        tenant_id: tenant_id.clone(),
        payment_id: payment.payment_id.clone(),
        order_id: payment.order_id.clone(),
        media_ref: payment.media_ref.clone(),
        notify: None,
    };
    match state
        .temporal
        .start_workflow(PaymentWorkflow::run, input, options)
        .await
        .counted("Payment")
    {
        Ok(_) => Ok(()),
        // A payment decided long ago may have a closed workflow: nothing to start.
        Err(_) if payment.status != PaymentStatus::Pending => Ok(()),
        Err(e) => {
            tracing::error!(error.message = %e, "Failed to start the payment workflow");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "the receipt is stored but its verification could not start; send it again",
            ))
        }
    }
}

/// `GET /v1/orders/{id}/payments`.
pub async fn list_for_order(
    State(state): State<AppState>,
    caller: PartnerCaller,
    Path(order_id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let tenant_id = caller.tenant.clone();
    if state
        .db
        .orders()
        .get(&tenant_id, &order_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "order `{order_id}` does not exist"
        )));
    }
    let payments = state
        .db
        .payments()
        .list_for_order(&tenant_id, &order_id)
        .await?;
    Ok(Json(json!({
        "payments": payments.iter().map(payment_json).collect::<Vec<_>>()
    }))
    .into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ListQuery {
    /// PENDING, ASSIGNED, MANUAL_REVIEW or REJECTED.
    status: String,
    /// 1 to 200 (default 50).
    #[serde(default)]
    limit: Option<String>,
    /// The `next_after` of the previous page.
    #[serde(default)]
    after: Option<String>,
}

/// `GET /v1/payments?status=`: the tenant's payments in one status, oldest first.
pub async fn list(
    State(state): State<AppState>,
    caller: PartnerCaller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let invalid = |field: &str, problem: String| {
        ApiError::bad_request(ErrorCode::InvalidField, format!("`{field}`: {problem}"))
    };
    let q = crate::read_query(query)?;
    let status: PaymentStatus = q.status.parse().map_err(|e| invalid("status", e))?;
    let limit = crate::query_limit(q.limit.as_deref(), 50, 200)?;
    let after = match q.after.as_deref() {
        None => None,
        Some(raw) => Some(
            raw.split_once('.')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id)))
                .filter(|(_, id)| !id.is_empty() && id.len() <= 200)
                .ok_or_else(|| invalid("after", "is not a cursor this endpoint returned".into()))?,
        ),
    };
    let payments = state
        .db
        .payments()
        .list_by_status(&caller.tenant, status, after, limit)
        .await?;
    let next_after = (payments.len() == limit as usize)
        .then(|| payments.last())
        .flatten()
        .map(|p| format!("{}.{}", p.created_at, p.payment_id));
    Ok(Json(json!({
        "payments": payments.iter().map(payment_json).collect::<Vec<_>>(),
        "next_after": next_after,
    }))
    .into_response())
}

/// `GET /v1/payments/{id}/receipt`: the receipt image the payment was verified from.
pub async fn receipt(
    State(state): State<AppState>,
    caller: PartnerCaller,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let tenant_id = caller.tenant.clone();
    let payment = state
        .db
        .payments()
        .get(&tenant_id, &payment_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("payment `{payment_id}` does not exist")))?;
    let Some(media_id) = payment.media_ref.strip_prefix("upload:") else {
        return Err(ApiError::not_found(format!(
            "the receipt of payment `{payment_id}` is not held here (`{}`)",
            payment.media_ref
        )));
    };
    let (content_type, bytes) = state
        .db
        .payments()
        .get_media(&tenant_id, media_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("the receipt of payment `{payment_id}` was purged"))
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, max-age=300".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /v1/payments/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: PartnerCaller,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let tenant_id = caller.tenant.clone();
    let payment = state
        .db
        .payments()
        .get(&tenant_id, &payment_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("payment `{payment_id}` does not exist")))?;
    Ok(Json(payment_json(&payment)).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewBody {
    decision: String,
    /// Accepted for older clients and ignored: the review records the authenticated caller.
    #[serde(default)]
    #[allow(dead_code)]
    reviewer: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /v1/payments/{id}/review`: an operator approves or rejects a payment in review.
pub async fn review(
    State(state): State<AppState>,
    caller: Caller,
    Path(payment_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let tenant_id = caller.tenant.clone();
    let body: ReviewBody = crate::read_json(body)?;
    let approve = match body.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidField,
                format!("field `decision`: `{other}` is not `approve` or `reject`"),
            ));
        }
    };
    let payment = state
        .db
        .payments()
        .get(&tenant_id, &payment_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("payment `{payment_id}` does not exist")))?;
    if payment.status != PaymentStatus::ManualReview {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!(
                "payment is {}; only payments in MANUAL_REVIEW can be reviewed",
                payment.status
            ),
        ));
    }
    let handle = state.temporal.get_workflow_handle::<PaymentWorkflow>(
        zengine_domain::workflow_ids::payment(&tenant_id, &payment_id),
    );
    let review = Review {
        approve,
        // Who reviewed is who authenticated, never what the body claims.
        reviewer: caller.subject.clone(),
        note: body.note,
    };
    match handle
        .execute_update(
            PaymentWorkflow::review,
            review,
            WorkflowExecuteUpdateOptions::default(),
        )
        .await
    {
        Ok(view) => Ok(Json(view).into_response()),
        Err(e) => Err(crate::error::update_error(
            e,
            ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                "the payment's verification has ended",
            ),
            "Review",
        )),
    }
}
