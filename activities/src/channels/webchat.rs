//! `webchat-http`: the synchronous web-chat channel.
//!
//! Inbound, a widget posts `{"session_id", "text", "flow"?, "media"?, "location"?}` with
//! `x-tenant-id` and `x-idempotency-key`; [`normalize`] validates it into a canonical message
//! (the API then sends it as the conversation's `HandleMessage` update, with update-with-start).
//! Outbound, there is nothing to call: the bot's replies are the update's result, returned in
//! the HTTP response, and replies produced later (after a wait, on return from an agent) are
//! read from the conversation's outbox. The outbound strategy is registered so a tenant's
//! configuration and health report list the channel like any other.

use async_trait::async_trait;
use serde::Deserialize;
use zengine_domain::{Channel, InboundMedia, InboundMessage, Location, SessionId};

use super::sdk::{
    ConfigError, Health, OutboundConnection, OutboundMessage, OutboundStrategy, SendContext,
    SendError, SendResult, StrategyEnv,
};
use crate::db::ChannelAccount;

/// The strategy name.
pub const WEBCHAT_HTTP: &str = "webchat-http";
/// Longest accepted message text, in bytes (the conversation workflow enforces the same).
pub const MAX_TEXT_BYTES: usize = 4096;

/// Request body of `POST /v1/webchat/messages`.
#[derive(Debug, Deserialize)]
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

/// The `webchat-http` outbound strategy (replies travel in the HTTP response).
pub struct WebchatHttp;

struct InResponse;

#[async_trait]
impl OutboundConnection for InResponse {
    async fn send(
        &self,
        message: &OutboundMessage,
        _ctx: &SendContext,
    ) -> Result<SendResult, SendError> {
        // The reply is already in the update result / outbox the widget reads.
        Ok(SendResult {
            provider_message_id: message.client_message_id.clone(),
        })
    }

    async fn healthcheck(&self) -> Health {
        Health::up("replies are returned in the HTTP response")
    }
}

impl OutboundStrategy for WebchatHttp {
    fn name(&self) -> &'static str {
        WEBCHAT_HTTP
    }

    fn channel(&self) -> Channel {
        Channel::Webchat
    }

    fn configure(
        &self,
        _account: &ChannelAccount,
        _env: &StrategyEnv,
    ) -> Result<Box<dyn OutboundConnection>, ConfigError> {
        Ok(Box::new(InResponse))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_validated_field_by_field() {
        let ok = normalize(br#"{"session_id":"s1","text":"hola"}"#, "k1").unwrap();
        assert_eq!(ok.session.as_str(), "s1");
        assert_eq!(ok.message.message_id, "k1");
        let cases: &[(&[u8], &str)] = &[
            (b"{", "invalid JSON"),
            (br#"{"session_id":"s1","text":"  "}"#, "field `text`"),
            (br#"{"session_id":"","text":"x"}"#, "field `session_id`"),
            (
                br#"{"session_id":"s","text":"x","flow":""}"#,
                "field `flow`",
            ),
            (
                br#"{"session_id":"s","text":"x","media":{"kind":"exe","reference":"r"}}"#,
                "field `media.kind`",
            ),
            (
                br#"{"session_id":"s","text":"","location":{"lat":91,"lon":0}}"#,
                "field `location`",
            ),
        ];
        for (body, expected) in cases {
            let err = normalize(body, "k").unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
        let long = format!(r#"{{"session_id":"s","text":"{}"}}"#, "a".repeat(4097));
        assert!(normalize(long.as_bytes(), "k").is_err());
    }
}
