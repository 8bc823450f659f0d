//! `PUT /v1/tracking` and `GET /v1/tracking?order_id=`: delivery tracking events append to the
//! order's timeline and move the order's workflow (PREPARING, DISPATCHED, DELIVERED, CANCELLED);
//! `LOCATION` events only record a position.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use temporalio_client::WorkflowExecuteUpdateOptions;
use zengine_domain::Location;
use zengine_domain::order::OrderStatus;
use zengine_storage::{Recorded, TrackingEvent};
use zengine_workflows::OrderWorkflow;
use zengine_workflows::order::ChangeStatus;

use crate::auth::{PartnerCaller, Role};
use crate::{ApiError, AppState, ErrorCode};

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackingBody {
    event_id: String,
    order_id: String,
    status: String,
    #[serde(default)]
    location: Option<Location>,
    /// RFC 3339, e.g. `2026-11-25T18:00:00Z`.
    timestamp: String,
}

fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_field(format!("field `{field}`: {message}"))
}

pub async fn put(
    State(state): State<AppState>,
    caller: PartnerCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let tenant_id = caller.tenant.clone();
    let body: TrackingBody = crate::read_json(body)?;
    if body.event_id.trim().is_empty() || body.event_id.len() > 128 {
        return Err(invalid("event_id", "must be 1 to 128 characters"));
    }
    let status = body.status.trim().to_ascii_uppercase();
    let change: Option<OrderStatus> = match status.as_str() {
        "LOCATION" => None,
        "PREPARING" | "DISPATCHED" | "DELIVERED" | "CANCELLED" => {
            Some(status.parse().map_err(|e: String| invalid("status", e))?)
        }
        other => {
            return Err(invalid(
                "status",
                format!("`{other}` is not LOCATION, PREPARING, DISPATCHED, DELIVERED or CANCELLED"),
            ));
        }
    };
    if let Some(l) = body.location {
        if !(-90.0..=90.0).contains(&l.lat) || !(-180.0..=180.0).contains(&l.lon) {
            return Err(invalid("location", "latitude or longitude out of range"));
        }
    } else if change.is_none() {
        return Err(invalid("location", "a LOCATION event needs a location"));
    }
    let occurred_at = chrono::DateTime::parse_from_rfc3339(&body.timestamp)
        .map_err(|e| invalid("timestamp", format!("not RFC 3339: {e}")))?
        .timestamp_millis();
    if state
        .db
        .orders()
        .get(&tenant_id, &body.order_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "order `{}` does not exist",
            body.order_id
        )));
    }
    let event = TrackingEvent {
        event_id: body.event_id.clone(),
        order_id: body.order_id.clone(),
        status: status.clone(),
        location: body.location,
        occurred_at,
    };
    // A status event is recorded, then the order workflow is updated. A repeat of a recorded
    // status event sends the update again: if the first attempt died in between (the event
    // recorded, the order not moved), the order moves now. The update's id is the event's, so
    // Temporal applies it once however often it is sent.
    let duplicate = match state.db.tracking().record(&tenant_id, &event).await? {
        Recorded::New => false,
        Recorded::Duplicate(previous) => {
            if previous != event {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::IdempotencyKeyReused,
                    "this event_id was already used for a different event",
                ));
            }
            if change.is_none() {
                return Ok((
                    StatusCode::OK,
                    Json(json!({"event": previous, "duplicate": true})),
                )
                    .into_response());
            }
            true
        }
        Recorded::OutOfOrder { latest } => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                format!(
                    "out of order: this order already has an event at {latest} ms, later than this one"
                ),
            ));
        }
    };
    let Some(to) = change else {
        return Ok((StatusCode::CREATED, Json(json!({"event": event}))).into_response());
    };
    let handle =
        state
            .temporal
            .get_workflow_handle::<OrderWorkflow>(zengine_domain::workflow_ids::order(
                &tenant_id,
                &body.order_id,
            ));
    let result = handle
        .execute_update(
            OrderWorkflow::change_status,
            ChangeStatus {
                to,
                source: "tracking".into(),
                reason: Some(format!("tracking event {}", body.event_id)),
            },
            WorkflowExecuteUpdateOptions::builder()
                .update_id(format!("tracking/{}", body.event_id))
                .build(),
        )
        .await;
    match result {
        Ok(view) if duplicate => Ok((
            StatusCode::OK,
            Json(json!({"event": event, "order": view, "duplicate": true})),
        )
            .into_response()),
        Ok(view) => Ok((
            StatusCode::CREATED,
            Json(json!({"event": event, "order": view})),
        )
            .into_response()),
        Err(e) => {
            // The change was refused or not delivered: the timeline must not claim it happened
            // (a repeat leaves the event of the first attempt as it is).
            if !duplicate {
                state
                    .db
                    .tracking()
                    .remove(&tenant_id, &body.event_id)
                    .await?;
            }
            Err(crate::error::update_error(
                e,
                ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::Conflict,
                    "the order is closed",
                ),
                "Tracking",
            ))
        }
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct TimelineQuery {
    order_id: String,
}

pub async fn timeline(
    State(state): State<AppState>,
    caller: PartnerCaller,
    query: Result<Query<TimelineQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let tenant_id = caller.tenant.clone();
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(ErrorCode::InvalidField, e.body_text()))?;
    let order = state
        .db
        .orders()
        .get(&tenant_id, &query.order_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("order `{}` does not exist", query.order_id)))?;
    let events = state
        .db
        .tracking()
        .timeline(&tenant_id, &query.order_id)
        .await?;
    Ok(
        Json(json!({"order_id": order.order_id, "status": order.status, "events": events}))
            .into_response(),
    )
}
