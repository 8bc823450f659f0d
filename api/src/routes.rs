//! Route optimisation API: `POST /v1/routes`, `GET /v1/routes/{id}`, `GET /v1/drivers/{id}/routes`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use temporalio_client::WorkflowStartOptions;
use zengine_activities::routing::{RouteRequest, driver_shifts};
use zengine_workflows::RouteOptimisationWorkflow;
use zengine_workflows::routing::RouteInput;

use crate::auth::{PartnerCaller, Role};
use crate::metrics::Counted;
use crate::{ApiError, AppState, ErrorCode};

/// Starts an optimisation; 202 with the plan id, then poll `GET /v1/routes/{id}`.
pub async fn create(
    State(state): State<AppState>,
    caller: PartnerCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let tenant_id = caller.tenant.clone();
    let request: RouteRequest = crate::read_json(body)?;
    if request.order_ids.is_empty() || request.order_ids.len() > 500 {
        return Err(ApiError::invalid_field(
            "field `order_ids`: 1 to 500 orders",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = request
        .order_ids
        .iter()
        .find(|id| !seen.insert(id.as_str()))
    {
        return Err(ApiError::invalid_field(format!(
            "field `order_ids`: `{dup}` is listed twice"
        )));
    }
    if request.drivers.is_empty() {
        return Err(ApiError::invalid_field(
            "field `drivers`: at least one driver is needed",
        ));
    }
    if request.drivers.len() > 500 {
        return Err(ApiError::invalid_field(
            "field `drivers`: at most 500 drivers",
        ));
    }
    // Each driver's capacity and shift are their own (heterogeneous fleet).
    driver_shifts(&request.drivers).map_err(ApiError::invalid_field)?;
    let channel = &request.options.notify_channel;
    if channel.is_empty()
        || channel.len() > 32
        || !channel
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(ApiError::invalid_field(
            "field `options.notify_channel`: a channel name (lowercase letters, digits, `-`)",
        ));
    }
    let (lat, lon) = (request.depot.lat, request.depot.lon);
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(ApiError::invalid_field(
            "field `depot`: latitude or longitude out of range",
        ));
    }
    if !(100..=60_000).contains(&request.options.time_limit_ms) {
        return Err(ApiError::invalid_field(
            "field `options.time_limit_ms`: 100 to 60000",
        ));
    }
    if !(request.options.speed_kmh > 0.0 && request.options.speed_kmh < 200.0)
        || request.options.service_minutes < 0
    {
        return Err(ApiError::invalid_field(
            "field `options`: speed_kmh in (0, 200), service_minutes ≥ 0",
        ));
    }
    let mut problems = Vec::new();
    for id in &request.order_ids {
        match state.db.orders().get(&tenant_id, id).await? {
            None => problems.push(format!("order `{id}` does not exist")),
            Some(o) if o.location.is_none() => {
                problems.push(format!("order `{id}` has no location"))
            }
            Some(o) if o.status.is_final() => {
                problems.push(format!("order `{id}` is {}", o.status))
            }
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(
            ApiError::invalid_field(format!("field `order_ids`: {}", problems.join("; ")))
                .with_details(problems),
        );
    }
    let plan_id = format!("rte_{}", uuid::Uuid::new_v4().simple());
    let stored = serde_json::to_value(&request).map_err(anyhow::Error::from)?;
    state
        .db
        .routes()
        .create(&tenant_id, &plan_id, &stored)
        .await?;
    let input = RouteInput {
        tenant_id: tenant_id.clone(),
        plan_id: plan_id.clone(),
        time_limit_ms: request.options.time_limit_ms,
    };
    let options = WorkflowStartOptions::new(
        state.queue(zengine_workflows::names::queues::ROUTING),
        zengine_domain::workflow_ids::route(&tenant_id, &plan_id),
    )
    .build();
    if let Err(e) = state
        .temporal
        .start_workflow(RouteOptimisationWorkflow::run, input, options)
        .await
        .counted("RouteOptimisation")
    {
        tracing::error!(error.message = %e, "Failed to start route optimisation");
        state
            .db
            .routes()
            .fail(&tenant_id, &plan_id, "could not start the workflow")
            .await?;
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the workflow service is unavailable; retry later",
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"route_id": plan_id, "status": "RUNNING"})),
    )
        .into_response())
}

/// Status, progress and (when done) the routes and unassigned orders.
pub async fn get(
    State(state): State<AppState>,
    caller: PartnerCaller,
    Path(plan_id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let tenant_id = caller.tenant.clone();
    let plan = state
        .db
        .routes()
        .get(&tenant_id, &plan_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("route `{plan_id}` does not exist")))?;
    Ok(Json(json!({
        "route_id": plan.plan_id,
        "status": plan.status,
        "progress": plan.progress,
        "result": plan.result,
        "error": plan.error,
        "created_at": plan.created_at,
    }))
    .into_response())
}

/// The routes assigned to a driver, newest first.
pub async fn for_driver(
    State(state): State<AppState>,
    caller: PartnerCaller,
    Path(driver_id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let tenant_id = caller.tenant.clone();
    let routes = state.db.routes().for_driver(&tenant_id, &driver_id).await?;
    Ok(Json(json!({
        "driver_id": driver_id,
        "routes": routes.into_iter().map(|(plan, stops, distance, at)| json!({"route_id": plan, "stops": stops, "distance_m": distance, "created_at": at})).collect::<Vec<_>>(),
    }))
    .into_response())
}
