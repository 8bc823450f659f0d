//! The remote codec endpoint of the Temporal Web UI (and `temporal --codec-endpoint`):
//! `POST /codec/decode` and `POST /codec/encode`.
//!
//! Both take and return `{"payloads": [{"metadata": {key: base64}, "data": base64}]}` (proto3
//! JSON of `temporal.api.common.v1.Payloads`) and run the payloads through the codec of the API's
//! own Temporal client, i.e. the deployment's keyring (`temporal.codec`). Every proto3-JSON form
//! is accepted: absent or `null` fields are their defaults (the `temporal` CLI sends `{}` for an
//! empty list), and bytes may be standard or URL-safe base64, padded or not; answers use standard
//! padded base64 and always carry `payloads`.
//!
//! Who may call: the admin token, or a JWT with the operator or admin role. Viewers get 403
//! because decoded payloads are message texts, phone numbers and receipt images; API keys get 403
//! (partner credentials). What a caller may open follows the tenant: each tenant workflow's
//! payloads are sealed under that tenant's key (`<key id>@<tenant>`, see
//! `zengine_workflows::codec`), a tenant's operator decodes only those of its own tenant (every
//! other payload comes back unchanged, still sealed) and encodes under its own tenant's key; the
//! platform (admin token, `platform-admin` JWTs) opens every payload and encodes under the
//! keyring key. `X-Namespace`, when sent, must name the deployment's namespace.
//!
//! `zengine dev` (only while payloads are on the public development key, which anyone can use
//! to decrypt them) names its own Web UI's origin: calls from a loopback peer with that `Origin`
//! need no credential, so the UI of `make run` shows payloads decoded.
//!
//! CORS: the origins of `api.codec_cors_origins` (default: the dev Web UI at
//! `http://127.0.0.1:8233` and `http://localhost:8233`) and those `zengine dev` names may call with credentials and the
//! `Authorization`, `Content-Type` and `X-Namespace` headers.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use temporalio_client::NamespacedClient;
use temporalio_common::protos::temporal::api::common::v1::Payload;
use tower_http::cors::{AllowOrigin, CorsLayer};

use zengine_workflows::codec::{self, Reader};

use crate::auth::{AdminCaller, Credentials, Role};
use crate::quota::ClientAddr;
use crate::{ApiError, AppState, ErrorCode, read_body};

/// Header the Web UI names the namespace in.
pub const NAMESPACE_HEADER: HeaderName = HeaderName::from_static("x-namespace");
/// Most payloads one request may carry.
pub const MAX_PAYLOADS: usize = 1_000;

/// `temporal.api.common.v1.Payloads` in proto3 JSON (request and answer of both endpoints).
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JsonPayloads {
    #[serde(default, deserialize_with = "null_is_default")]
    payloads: Vec<JsonPayload>,
}

/// One `temporal.api.common.v1.Payload`: metadata values and data in base64.
#[derive(Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct JsonPayload {
    /// `encoding`, `encryption-key-id`, … (values base64).
    #[serde(default, deserialize_with = "null_is_default")]
    metadata: BTreeMap<String, String>,
    /// Base64 (standard or URL-safe, padded or not).
    #[serde(default, deserialize_with = "null_is_default")]
    data: String,
}

/// proto3 JSON: `null` means the field's default.
fn null_is_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// proto3 JSON `bytes`: standard or URL-safe alphabet, padded or not.
fn decode_base64(what: &str, value: &str) -> Result<Vec<u8>, ApiError> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD_ANY: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
    const URL_SAFE_ANY: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
    STANDARD_ANY
        .decode(value)
        .or_else(|_| URL_SAFE_ANY.decode(value))
        .map_err(|_| {
            ApiError::bad_request(ErrorCode::InvalidField, format!("{what} is not base64"))
        })
}

impl JsonPayload {
    fn into_payload(self, i: usize) -> Result<Payload, ApiError> {
        let metadata = self
            .metadata
            .into_iter()
            .map(|(k, v)| {
                let value = decode_base64(&format!("payloads[{i}].metadata.{k}"), &v)?;
                Ok((k, value))
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(Payload {
            metadata,
            data: decode_base64(&format!("payloads[{i}].data"), &self.data)?,
            ..Payload::default()
        })
    }

    fn from_payload(p: Payload) -> Self {
        Self {
            metadata: p
                .metadata
                .into_iter()
                .map(|(k, v)| (k, STANDARD.encode(v)))
                .collect(),
            data: STANDARD.encode(p.data),
        }
    }
}

/// Adds the codec's own body limit and CORS grant (the Web UI's origins, the development UI's
/// too) to one of its routes (`openapi::operations` routes `/codec/decode` and `/codec/encode`
/// through this).
pub(crate) fn wrap(
    settings: &crate::ApiSettings,
    route: axum::routing::MethodRouter<AppState>,
) -> axum::routing::MethodRouter<AppState> {
    let origins: Vec<HeaderValue> = settings
        .codec_cors_origins
        .iter()
        .chain(&settings.dev_ui_origins)
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            NAMESPACE_HEADER,
        ])
        .allow_credentials(true)
        .max_age(std::time::Duration::from_secs(600));
    route
        .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(settings.codec_max_body_bytes))
        .layer(cors)
}

#[derive(Clone, Copy)]
enum Direction {
    Encode,
    Decode,
}

pub(crate) async fn decode(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    run(state, client, headers, body, Direction::Decode).await
}

pub(crate) async fn encode(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    run(state, client, headers, body, Direction::Encode).await
}

/// A call of `zengine dev`'s own Web UI: its origin (named by `zengine dev` in
/// `api.dev_ui_origins`, only while payloads are on the public development key) from a
/// loopback peer.
fn from_dev_web_ui(state: &AppState, client: &ClientAddr, headers: &HeaderMap) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    client.0.is_some_and(|ip| ip.is_loopback())
        && origin.is_some_and(|o| state.settings.dev_ui_origins.iter().any(|d| d == o))
}

#[tracing::instrument(name = "Codec", skip_all, fields(direction, payloads))]
async fn run(
    state: AppState,
    client: ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    direction: Direction,
) -> Result<Response, ApiError> {
    // Whose payloads the caller may open: the platform (admin token, platform-admin JWTs,
    // zengine dev's own UI while on the public dev key) all; a tenant's operator its own.
    let reader = if from_dev_web_ui(&state, &client, &headers) {
        None
    } else {
        let credentials = Credentials::from_headers(&headers)?;
        match state
            .auth
            .authenticate_admin(&state.db, credentials, None)
            .await?
        {
            AdminCaller::Platform { .. } => None,
            AdminCaller::Tenant(caller) => {
                caller.require(Role::Operator)?;
                Some(caller.tenant)
            }
        }
    };
    if let Some(ns) = headers.get(&NAMESPACE_HEADER) {
        let expected = state.temporal.namespace();
        if ns.to_str().ok() != Some(expected.as_str()) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidHeader,
                format!("header `x-namespace`: this codec serves namespace `{expected}` only"),
            ));
        }
    }
    let body = read_body(body)?;
    let request: JsonPayloads = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::MalformedJson,
            format!(
                "expected {{\"payloads\": [{{\"metadata\": {{..}}, \"data\": \"<base64>\"}}]}}: {e}"
            ),
        )
    })?;
    if request.payloads.len() > MAX_PAYLOADS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("at most {MAX_PAYLOADS} payloads per request"),
        ));
    }
    tracing::Span::current().record("payloads", request.payloads.len());
    let payloads = request
        .payloads
        .into_iter()
        .enumerate()
        .map(|(i, p)| p.into_payload(i))
        .collect::<Result<Vec<_>, _>>()?;
    // A tenant's operator encodes under its own key and decodes only its own payloads (every
    // other payload comes back as it was); the platform encodes under the keyring key.
    let tenant = reader.as_ref();
    let result: Result<Vec<Payload>, codec::CodecError> = match direction {
        Direction::Encode => payloads
            .iter()
            .map(|p| state.codec.encrypt(p, tenant))
            .collect(),
        Direction::Decode => payloads
            .into_iter()
            .map(|p| match tenant {
                Some(t) => state.codec.decrypt_for(p, Reader::Tenant(t)),
                None => state.codec.decrypt(p),
            })
            .collect(),
    };
    let payloads = result.map_err(|e| {
        // Unknown key id, tampered or truncated ciphertext: the input, not the server.
        ApiError::invalid_field(e.to_string())
    })?;
    let response = JsonPayloads {
        payloads: payloads
            .into_iter()
            .map(JsonPayload::from_payload)
            .collect(),
    };
    Ok(axum::Json(response).into_response())
}
