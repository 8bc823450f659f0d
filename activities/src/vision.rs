//! The optional cloud OCR provider: Google Cloud Vision `images:annotate` with
//! `TEXT_DETECTION`, behind the same seam as the local Tesseract engines (image bytes in, page
//! text and [`ReceiptFields`] out, the fields extracted by the same pure
//! `zengine_domain::receipt::extract`). Off by default; a tenant selects it with
//! `payment_settings.cloud_ocr` (`{"provider": "google-vision", "api_key": "<secret ref>",
//! "endpoint": "https://vision.googleapis.com"}`).
//!
//! Request (`POST {endpoint}/v1/images:annotate`, header `x-goog-api-key`):
//! `{"requests": [{"image": {"content": "<base64>"}, "features": [{"type": "TEXT_DETECTION"}],
//! "imageContext": {"languageHints": ["es"]}}]}`. Answer: `{"responses": [{"textAnnotations":
//! [{"description": "<all text>", …}, …], "fullTextAnnotation": {"text": "<all text>"}}]}`, or
//! a per-image `{"responses": [{"error": {"code": 3, "message": "Bad image data."}}]}`; HTTP
//! errors use Google's `{"error": {"code", "message", "status"}}`.

use std::time::{Duration, Instant};

use base64::Engine;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use zengine_domain::receipt::{ReceiptFields, extract};

use zengine_storage::secrets;

/// The only provider name accepted today.
pub const GOOGLE_VISION: &str = "google-vision";
const DEFAULT_ENDPOINT: &str = "https://vision.googleapis.com";

pub use zengine_storage::CloudOcrSettings;

/// Why the cloud read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VisionError {
    /// Retrying will not help: bad settings, missing secret, refused (4xx), bad image.
    #[error("{0}")]
    Refused(String),
    /// 429, 5xx, timeouts: worth retrying.
    #[error("{0}")]
    Unavailable(String),
}

/// What the provider read.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionReading {
    pub fields: ReceiptFields,
    pub page_text: String,
    pub elapsed_ms: u64,
}

/// Reads `image` with the tenant's cloud provider.
pub async fn read(
    http: &zengine_channels::outbound::OutboundClient,
    tenant: &zengine_domain::TenantId,
    settings: &CloudOcrSettings,
    image: &[u8],
) -> Result<VisionReading, VisionError> {
    if settings.provider != GOOGLE_VISION {
        return Err(VisionError::Refused(format!(
            "cloud_ocr.provider `{}` is not known (known: {GOOGLE_VISION})",
            settings.provider
        )));
    }
    let key = secrets::resolve_for(tenant, &settings.api_key)
        .map_err(|e| VisionError::Refused(e.to_string()))?;
    let endpoint = settings
        .endpoint
        .as_deref()
        .unwrap_or(DEFAULT_ENDPOINT)
        .trim_end_matches('/');
    let body = json!({"requests": [{
        "image": {"content": base64::engine::general_purpose::STANDARD.encode(image)},
        "features": [{"type": "TEXT_DETECTION"}],
        "imageContext": {"languageHints": ["es"]},
    }]});
    let started = Instant::now();
    // The tenant chose the endpoint: an address inside the platform is refused for good.
    let response = http
        .post(&format!("{endpoint}/v1/images:annotate"))
        .map_err(|refused| VisionError::Refused(format!("cloud OCR: {refused}")))?
        .header("x-goog-api-key", key.expose_secret())
        .timeout(Duration::from_secs(30))
        .json(&body)
        .send()
        .await
        .map_err(|e| match zengine_channels::outbound::refusal(&e) {
            Some(refused) => VisionError::Refused(format!("cloud OCR: {refused}")),
            None => VisionError::Unavailable(format!("cloud OCR: {}", e.without_url())),
        })?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| VisionError::Unavailable(format!("cloud OCR: {}", e.without_url())))?;
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        let message = answer["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| zengine_channels::sdk::excerpt(&bytes));
        let message = format!("cloud OCR: HTTP {status}: {message}");
        return Err(
            if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                VisionError::Unavailable(message)
            } else {
                VisionError::Refused(message)
            },
        );
    }
    let first = &answer["responses"][0];
    if let Some(message) = first["error"]["message"].as_str() {
        return Err(VisionError::Refused(format!(
            "cloud OCR could not read the image: {message}"
        )));
    }
    let text = first["fullTextAnnotation"]["text"]
        .as_str()
        .or_else(|| first["textAnnotations"][0]["description"].as_str())
        .unwrap_or_default()
        .to_owned();
    if text.trim().is_empty() {
        return Err(VisionError::Refused(
            "cloud OCR found no text in the image".into(),
        ));
    }
    Ok(VisionReading {
        fields: extract(&text),
        page_text: text,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
