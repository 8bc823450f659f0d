//! `/v1/ops`: the operator API over HTTP. Workflow ids contain `/`, so they travel
//! percent-encoded in the path (`demo%2Forder%2F42`).
//!
//! Viewers read; operators also act (typed actions, cancel, terminate, reset). API keys are not
//! accepted here (they are for the partner endpoints).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::dead_letters::{DeadLetters, REDRIVE_ACTION};
use super::{ListFilter, Operations, OperatorAction, OpsError};
use crate::auth::{Caller, Role};
use crate::{ApiError, AppState, ErrorCode};

impl From<OpsError> for ApiError {
    fn from(error: OpsError) -> Self {
        match error {
            OpsError::Invalid(m) => ApiError::bad_request(ErrorCode::InvalidField, m),
            OpsError::NotFound(m) => ApiError::not_found(m),
            OpsError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, m),
            OpsError::Unavailable(m) => {
                tracing::warn!(error.message = %m, "Temporal unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "the workflow service is unavailable; retrying is safe",
                )
            }
            OpsError::Internal(e) => ApiError::internal(e),
        }
    }
}

fn reader(caller: &Caller) -> Result<(), ApiError> {
    caller.require(Role::Viewer)
}

fn actor(caller: &Caller) -> Result<(), ApiError> {
    caller.require(Role::Operator)
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidField, e.body_text()))
}

/// The JSON body, or `T::default()` for an empty one.
fn body<T: DeserializeOwned + Default>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = crate::read_body(body)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    crate::parse_json(&body)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(rename = "type")]
    workflow_type: Option<String>,
    status: Option<String>,
    started_after: Option<String>,
    started_before: Option<String>,
    /// A filter in a subset of Temporal's visibility language: search attributes (not
    /// `TenantId`) compared with `=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`, `[NOT] IN (…)`,
    /// `[NOT] BETWEEN … AND …`, `[NOT] STARTS_WITH`, `IS [NOT] NULL`; `AND`, `OR`, `NOT`,
    /// parentheses; quoted strings, numbers, `true`, `false`. Anything else (comments, `;`,
    /// `ORDER BY`, backslashes) is 400 naming the byte offset. At most 1024 bytes.
    query: Option<String>,
    page_size: Option<i32>,
    page_token: Option<String>,
}

/// `GET /v1/ops/workflows?type=&status=&started_after=&started_before=&query=&page_size=&page_token=`
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    reader(&caller)?;
    let q = query(q)?;
    let filter = ListFilter {
        workflow_type: q.workflow_type,
        status: q.status,
        started_after: q.started_after,
        started_before: q.started_before,
        query: q.query,
    };
    let page = Operations::new(state.temporal.clone())
        .list(
            &caller.tenant,
            &filter,
            q.page_size.unwrap_or(20),
            q.page_token.as_deref(),
        )
        .await?;
    Ok(Json(page).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunQuery {
    run_id: Option<String>,
    page_size: Option<i32>,
    page_token: Option<String>,
}

/// `GET /v1/ops/workflows/{id}?run_id=`
pub(crate) async fn describe(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    q: Result<Query<RunQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    reader(&caller)?;
    let q = query(q)?;
    let detail = Operations::new(state.temporal.clone())
        .describe(&caller.tenant, &id, q.run_id.as_deref())
        .await?;
    Ok(Json(detail).into_response())
}

/// `GET /v1/ops/workflows/{id}/history?run_id=&page_size=&page_token=`
pub(crate) async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    q: Result<Query<RunQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    reader(&caller)?;
    let q = query(q)?;
    let page = Operations::new(state.temporal.clone())
        .history(
            &caller.tenant,
            &id,
            q.run_id.as_deref(),
            q.page_size.unwrap_or(200),
            q.page_token.as_deref(),
        )
        .await?;
    Ok(Json(page).into_response())
}

/// The body of cancel, terminate and reset (`{}` is fine).
#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonBody {
    /// Why (recorded in the workflow's history and the audit log).
    #[serde(default)]
    reason: String,
    /// The run to act on; the current run when absent.
    #[serde(default)]
    run_id: Option<String>,
}

#[derive(Clone, Copy)]
enum Lifecycle {
    Cancel,
    Terminate,
    Reset,
}

async fn lifecycle(
    state: AppState,
    id: String,
    caller: Caller,
    raw: Result<Bytes, BytesRejection>,
    kind: Lifecycle,
) -> Result<Response, ApiError> {
    actor(&caller)?;
    let body: ReasonBody = body(raw)?;
    let ops = Operations::new(state.temporal.clone());
    let run = body.run_id.as_deref();
    let result = match kind {
        Lifecycle::Cancel => ops.cancel(&caller.tenant, &id, run, &body.reason).await?,
        Lifecycle::Terminate => {
            ops.terminate(&caller.tenant, &id, run, &body.reason)
                .await?
        }
        Lifecycle::Reset => ops.reset(&caller.tenant, &id, run, &body.reason).await?,
    };
    tracing::info!(
        tenant_id = %caller.tenant, workflow_id = %id, by = %caller.subject,
        action = %result["action"], "Operator action"
    );
    Ok(Json(result).into_response())
}

/// `POST /v1/ops/workflows/{id}/cancel` `{reason, run_id?}`
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    lifecycle(state, id, caller, raw, Lifecycle::Cancel).await
}

/// `POST /v1/ops/workflows/{id}/terminate` `{reason, run_id?}`
pub(crate) async fn terminate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    lifecycle(state, id, caller, raw, Lifecycle::Terminate).await
}

/// `POST /v1/ops/workflows/{id}/reset` `{reason, run_id?}`
pub(crate) async fn reset(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    lifecycle(state, id, caller, raw, Lifecycle::Reset).await
}

/// The body of a typed action (the fields each action reads; others must be absent).
#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionBody {
    /// approve/reject_payment: accepted for older clients and ignored — the review records the
    /// authenticated caller's subject, never a name the body claims.
    #[serde(default)]
    pub reviewer: Option<String>,
    /// approve/reject_payment: a note for the record.
    #[serde(default)]
    pub note: Option<String>,
    /// change_order_status: the new status (`PREPARING`, `CANCELLED`, …).
    #[serde(default)]
    pub to: Option<String>,
    /// change_order_status: why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Builds the typed action `name` from its body.
pub(crate) fn parse_action(
    name: &str,
    body: ActionBody,
    caller: &Caller,
) -> Result<OperatorAction, OpsError> {
    let unused = |fields: &[(&str, bool)]| -> Result<(), OpsError> {
        match fields.iter().find(|(_, present)| *present) {
            Some((field, _)) => Err(OpsError::Invalid(format!("`{name}` takes no `{field}`"))),
            None => Ok(()),
        }
    };
    match name {
        "return_to_bot" => {
            unused(&[
                ("reviewer", body.reviewer.is_some()),
                ("note", body.note.is_some()),
                ("to", body.to.is_some()),
                ("reason", body.reason.is_some()),
            ])?;
            Ok(OperatorAction::ReturnToBot)
        }
        "approve_payment" | "reject_payment" => {
            unused(&[("to", body.to.is_some()), ("reason", body.reason.is_some())])?;
            Ok(OperatorAction::ReviewPayment {
                approve: name == "approve_payment",
                reviewer: caller.subject.clone(),
                note: body.note,
            })
        }
        "change_order_status" => {
            unused(&[
                ("reviewer", body.reviewer.is_some()),
                ("note", body.note.is_some()),
            ])?;
            let to = body
                .to
                .ok_or_else(|| OpsError::Invalid("`change_order_status` needs `to`".into()))?;
            Ok(OperatorAction::ChangeOrderStatus {
                to,
                reason: body.reason,
            })
        }
        other => Err(OpsError::NotFound(format!(
            "no operator action `{other}` (return_to_bot, redrive_dead_letters, \
             approve_payment, reject_payment, change_order_status)"
        ))),
    }
}

/// `POST /v1/ops/workflows/{id}/actions/{action}`
pub(crate) async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    caller: Caller,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    actor(&caller)?;
    if action == REDRIVE_ACTION {
        // Not an update: re-sends the conversation's dead letters (it takes no fields).
        let _: EmptyBody = body(raw)?;
        let result = DeadLetters::of(&state)
            .redrive_conversation(&caller.tenant, &id)
            .await?;
        tracing::info!(
            tenant_id = %caller.tenant, workflow_id = %id, by = %caller.subject,
            action = REDRIVE_ACTION, redriven = result.redriven.len(), "Operator action"
        );
        return Ok(Json(serde_json::json!({
            "workflow_id": id, "action": REDRIVE_ACTION, "result": result,
        }))
        .into_response());
    }
    let action = parse_action(&action, body(raw)?, &caller)?;
    let result = Operations::new(state.temporal.clone())
        .act(&caller.tenant, &id, &action)
        .await?;
    tracing::info!(
        tenant_id = %caller.tenant, workflow_id = %id, by = %caller.subject,
        action = action.name(), "Operator action"
    );
    Ok(Json(result).into_response())
}

/// A body that must be empty or `{}`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeadLettersQuery {
    /// Only this conversation's (its workflow id).
    conversation_id: Option<String>,
}

/// `GET /v1/ops/dead-letters?conversation_id=`
pub(crate) async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<DeadLettersQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    reader(&caller)?;
    let q = query(q)?;
    let letters = DeadLetters::of(&state)
        .list(
            &caller.tenant,
            q.conversation_id.as_deref().filter(|c| !c.is_empty()),
        )
        .await?;
    Ok(Json(serde_json::json!({ "dead_letters": letters })).into_response())
}

/// `POST /v1/ops/dead-letters/{client_message_id}/redrive`: 202 with the re-drive workflow;
/// 404 when there is no such dead letter in the tenant (never was, or re-driven already).
pub(crate) async fn redrive(
    State(state): State<AppState>,
    Path(client_message_id): Path<String>,
    caller: Caller,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    actor(&caller)?;
    let _: EmptyBody = body(raw)?;
    let redriven = DeadLetters::of(&state)
        .redrive(&caller.tenant, &client_message_id)
        .await?;
    tracing::info!(
        tenant_id = %caller.tenant, client_message_id = %client_message_id,
        by = %caller.subject, workflow_id = %redriven.workflow_id, "Dead letter re-driven"
    );
    Ok((StatusCode::ACCEPTED, Json(redriven)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_is_recorded_as_the_caller_whatever_the_body_claims() {
        let caller = Caller {
            tenant: zengine_domain::TenantId::parse("demo").unwrap(),
            role: crate::auth::Role::Operator,
            subject: "ana@demo".into(),
            via: crate::auth::Via::Jwt,
        };
        let body = ActionBody {
            reviewer: Some("the-boss@demo".into()),
            ..ActionBody::default()
        };
        match parse_action("approve_payment", body, &caller).unwrap() {
            OperatorAction::ReviewPayment { reviewer, .. } => assert_eq!(reviewer, "ana@demo"),
            other => panic!("{other:?}"),
        }
    }
}
