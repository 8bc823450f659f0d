//! Orders API: `POST/GET /v1/orders`, `GET /v1/orders/{id}`, `POST /v1/orders/{id}/status`.
//! The caller is a [`Caller`]: an API key, a JWT, or the admin token with `x-tenant-id`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use temporalio_client::{
    WorkflowExecuteUpdateOptions, WorkflowIdConflictPolicy, WorkflowStartOptions,
};
use zengine_activities::orders::{CreateOrderRequest, OrderRequestError, create_order};
use zengine_domain::order::OrderStatus;
use zengine_storage::{Order, OrderFilter};
use zengine_workflows::OrderWorkflow;
use zengine_workflows::order::{ChangeStatus, OrderInput};

use crate::auth::{PartnerCaller, Role};
use crate::metrics::Counted;
use crate::{ApiError, AppState, ErrorCode};

fn order_json(order: &Order) -> serde_json::Value {
    json!({
        "order_id": order.order_id,
        "order_number": order.order_number,
        "client_order_key": order.client_key,
        "status": order.status,
        "type": order.order_type,
        "customer": {"phone": order.customer_phone, "name": order.customer_name},
        "items": order.items.iter().map(|l| json!({
            "sku": l.sku, "name": l.name, "quantity": l.quantity,
            "unit_price": l.unit_price.to_string(), "line_total": l.line_total.to_string(),
        })).collect::<Vec<_>>(),
        "total": order.total.to_string(),
        "currency": order.currency,
        "address": order.address,
        "location": order.location,
        "delivery_window": order.delivery_window.map(|w| json!({
            "start": chrono::DateTime::from_timestamp(w.start, 0).map(|t| t.to_rfc3339()),
            "end": chrono::DateTime::from_timestamp(w.end, 0).map(|t| t.to_rfc3339()),
        })),
        "service_minutes": order.service_minutes,
        "summary": order.summary,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    })
}

/// `POST /v1/orders`: validates, stores (idempotent by `client_order_key`) and starts the order
/// workflow. 201 when created, 200 with the same order when the key was seen before.
pub async fn create(
    State(state): State<AppState>,
    caller: PartnerCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let tenant_id = caller.tenant.clone();
    let request: CreateOrderRequest = crate::read_json(body)?;
    let (order, created) = create_order(&state.db, &tenant_id, &request)
        .await
        .map_err(|e| match e {
            OrderRequestError::Invalid(errors) => {
                ApiError::invalid_field(errors.first().map(ToString::to_string).unwrap_or_default())
                    .with_details(errors.iter().map(ToString::to_string).collect())
            }
            OrderRequestError::KeyReused => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::IdempotencyKeyReused,
                "client_order_key was already used for a different order",
            ),
            OrderRequestError::Other(e) => ApiError::internal(e),
        })?;
    // Idempotent too: an order whose workflow already runs keeps it.
    let options = WorkflowStartOptions::new(
        state.queue(zengine_workflows::names::queues::PAYMENTS),
        zengine_domain::workflow_ids::order(&tenant_id, &order.order_id),
    )
    .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
    .build();
    let input = OrderInput {
        tenant_id: tenant_id.clone(),
        order_id: order.order_id.clone(),
        order_type: order.order_type,
    };
    state
        .temporal
        .start_workflow(OrderWorkflow::run, input, options)
        .await
        .counted("Order")
        .map_err(|e| {
            tracing::error!(error.message = %e, "Failed to start the order workflow");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "the order is stored but its workflow could not start; retry with the same client_order_key",
            )
        })?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(order_json(&order))).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ListQuery {
    customer_phone: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
    /// Orders with a smaller number than this (the `next_before` of the previous page).
    before: Option<i64>,
}

/// `GET /v1/orders?customer_phone=&status=&limit=&before=`: newest first, keyset pagination.
pub async fn list(
    State(state): State<AppState>,
    caller: PartnerCaller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let tenant_id = caller.tenant.clone();
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(ErrorCode::InvalidField, e.body_text()))?;
    let status = query
        .status
        .as_deref()
        .map(str::parse::<OrderStatus>)
        .transpose()
        .map_err(|e| {
            ApiError::bad_request(ErrorCode::InvalidField, format!("query `status`: {e}"))
        })?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidField,
            "query `limit`: must be 1 to 100",
        ));
    }
    let orders = state
        .db
        .orders()
        .list(
            &tenant_id,
            OrderFilter {
                customer_phone: query.customer_phone.as_deref(),
                status,
                before_number: query.before,
                limit,
            },
        )
        .await?;
    let next_before = (orders.len() as i64 == limit)
        .then(|| orders.last().map(|o| o.order_number))
        .flatten();
    Ok(Json(json!({
        "orders": orders.iter().map(order_json).collect::<Vec<_>>(),
        "next_before": next_before,
    }))
    .into_response())
}

/// `GET /v1/orders/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: PartnerCaller,
    Path(order_id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let tenant_id = caller.tenant.clone();
    let order = state
        .db
        .orders()
        .get(&tenant_id, &order_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("order `{order_id}` does not exist")))?;
    Ok(Json(order_json(&order)).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /v1/orders/{id}/status` `{status, reason}`: an operator moves the order.
pub async fn change_status(
    State(state): State<AppState>,
    caller: PartnerCaller,
    Path(order_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let tenant_id = caller.tenant.clone();
    let body: StatusBody = crate::read_json(body)?;
    let to: OrderStatus = body.status.parse().map_err(|e: String| {
        ApiError::bad_request(ErrorCode::InvalidField, format!("field `status`: {e}"))
    })?;
    let Some(stored) = state.db.orders().get(&tenant_id, &order_id).await? else {
        return Err(ApiError::not_found(format!(
            "order `{order_id}` does not exist"
        )));
    };
    let handle =
        state
            .temporal
            .get_workflow_handle::<OrderWorkflow>(zengine_domain::workflow_ids::order(
                &tenant_id, &order_id,
            ));
    let change = ChangeStatus {
        to,
        source: "operator".into(),
        reason: body.reason,
    };
    // The payment workflow marks the order PAID in the database first and then signals the
    // order workflow (after notifying the customer): a caller that saw PAID and moves on at once
    // can reach the order workflow before that signal. A move that is valid from PAID is tried
    // again for a few seconds while the signal is in flight, instead of a spurious 409.
    let in_flight =
        stored.status == OrderStatus::Paid && OrderStatus::Paid.can_become(to, stored.order_type);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let outcome = loop {
        let outcome = handle
            .execute_update(
                OrderWorkflow::change_status,
                change.clone(),
                WorkflowExecuteUpdateOptions::default(),
            )
            .await;
        match outcome {
            Err(temporalio_client::errors::WorkflowUpdateError::Failed(_))
                if in_flight && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => break other,
        }
    };
    match outcome {
        Ok(view) => Ok(Json(view).into_response()),
        Err(e) => Err(crate::error::update_error(
            e,
            ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                "the order is closed (delivered or cancelled)",
            ),
            "ChangeStatus",
        )),
    }
}
