//! The one error type of the HTTP API. The status code tells a webhook caller whether to retry:
//! 4xx means "this request will never succeed as is", 5xx means "retry later".

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Stable, documented error codes (`docs/api.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MissingHeader,
    InvalidHeader,
    MalformedJson,
    InvalidField,
    PayloadTooLarge,
    UnknownTenant,
    NotFound,
    IdempotencyKeyReused,
    NoPublishedFlow,
    InvalidFlow,
    Unauthorized,
    /// Authenticated, but the role (or credential kind) does not allow this.
    Forbidden,
    /// An API key is over its rate limit (429, with `Retry-After`).
    RateLimited,
    /// The tenant is suspended (403).
    TenantSuspended,
    Conflict,
    Timeout,
    Unavailable,
    Internal,
}

/// An error answered as `{"error": {"code": …, "message": …}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Itemised problems (e.g. every validation error of a flow).
    pub details: Vec<String>,
    /// Sent as `Retry-After` (seconds), e.g. on 429.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after_secs: None,
        }
    }

    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A field of a well-formed JSON body breaks a rule (422 `invalid_field`): the request
    /// parsed, but what it says cannot be done. Malformed JSON is 400 `malformed_json`.
    pub fn invalid_field(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidField,
            message,
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// A 500 whose cause is logged with its chain and never shown to the caller.
    pub fn internal(error: anyhow::Error) -> Self {
        tracing::error!(error.cause_chain = ?error, error.message = %error, "Internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; the request had no effect and may be retried",
        )
    }
}

/// Maps a failed workflow update: refused by the workflow (its validator or handler) → 409 with
/// the workflow's reason; no open workflow to update → `closed`; anything else (Temporal
/// unreachable, …) → 503, which tells the caller to retry.
pub fn update_error(
    error: temporalio_client::errors::WorkflowUpdateError,
    closed: ApiError,
    operation: &str,
) -> ApiError {
    use temporalio_client::errors::WorkflowUpdateError;
    match error {
        WorkflowUpdateError::Failed(failure) => ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            failure.message.clone(),
        ),
        WorkflowUpdateError::NotFound(_) => closed,
        other if other.to_string().contains("already completed") => closed,
        other => {
            tracing::error!(error.message = %other, operation, "Workflow update failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "the workflow service is unavailable; retrying is safe",
            )
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        Self::internal(error)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    details: &'a [String],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                details: &self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
