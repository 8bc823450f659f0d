//! The `webchat-http` widget's message body: `{"session_id", "text", "flow"?, "media"?,
//! "location"?}`, validated into a canonical message. Pure, so it is fuzzed
//! (`fuzz/fuzz_targets/webchat_body.rs`); the activities' `webchat-http` strategy and the API
//! call [`normalize`].

use serde::Deserialize;

use crate::{InboundMedia, InboundMessage, Location, SessionId};

/// Longest accepted message text, in bytes (the conversation workflow enforces the same).
pub const MAX_TEXT_BYTES: usize = 4096;

/// Request body of `POST /v1/webchat/messages`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WebchatBody {
    pub session_id: String,
    /// Required (may be empty when `media` or `location` is given).
    pub text: String,
    /// Which of the tenant's flows a *new* conversation runs (default: the tenant's main flow).
    #[serde(default)]
    pub flow: Option<String>,
    /// An image or file the customer attached (`{"kind": "image", "reference": "..."}`).
    #[serde(default)]
    pub media: Option<InboundMedia>,
    /// A location the customer shared.
    #[serde(default)]
    pub location: Option<Location>,
}

/// A validated webchat message.
#[derive(Debug, Clone, PartialEq)]
pub struct WebchatMessage {
    pub session: SessionId,
    pub flow: Option<String>,
    pub message: InboundMessage,
}

/// Why a webchat body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebchatError {
    #[error("invalid JSON body: {0}")]
    Malformed(String),
    #[error("field `{field}`: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
}

fn field(field: &'static str, problem: impl Into<String>) -> WebchatError {
    WebchatError::Field {
        field,
        problem: problem.into(),
    }
}

/// Parses and validates a webchat body; `message_id` becomes the canonical message's id (the
/// idempotency key).
pub fn normalize(body: &[u8], message_id: &str) -> Result<WebchatMessage, WebchatError> {
    let body: WebchatBody =
        serde_json::from_slice(body).map_err(|e| WebchatError::Malformed(e.to_string()))?;
    let session =
        SessionId::parse(body.session_id).map_err(|e| field("session_id", e.to_string()))?;
    if body.text.trim().is_empty() && body.media.is_none() && body.location.is_none() {
        return Err(field(
            "text",
            "must not be empty (or send media or a location)",
        ));
    }
    if body.text.len() > MAX_TEXT_BYTES {
        return Err(field("text", format!("longer than {MAX_TEXT_BYTES} bytes")));
    }
    if body
        .flow
        .as_ref()
        .is_some_and(|f| f.is_empty() || f.len() > 64)
    {
        return Err(field("flow", "must be 1 to 64 characters"));
    }
    if let Some(media) = &body.media {
        if !["image", "video", "audio", "document"].contains(&media.kind.as_str()) {
            return Err(field(
                "media.kind",
                "must be image, video, audio or document",
            ));
        }
        if media.reference.is_empty() || media.reference.len() > 2048 {
            return Err(field("media.reference", "must be 1 to 2048 characters"));
        }
    }
    if let Some(l) = body.location
        && (!l.lat.is_finite()
            || !l.lon.is_finite()
            || !(-90.0..=90.0).contains(&l.lat)
            || !(-180.0..=180.0).contains(&l.lon))
    {
        return Err(field("location", "latitude or longitude out of range"));
    }
    Ok(WebchatMessage {
        session,
        flow: body.flow,
        message: InboundMessage {
            message_id: message_id.to_owned(),
            text: body.text,
            media: body.media,
            location: body.location,
            reply_id: None,
        },
    })
}
