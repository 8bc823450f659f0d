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
use zengine_domain::Channel;

use super::sdk::{
    ConfigError, Health, OutboundConnection, OutboundMessage, OutboundStrategy, SendContext,
    SendError, SendResult, StrategyEnv,
};
use zengine_storage::ChannelAccount;

pub use zengine_domain::channel::strategy::WEBCHAT_HTTP;
pub use zengine_domain::channel::webchat::{
    MAX_TEXT_BYTES, WebchatBody, WebchatError, WebchatMessage, normalize,
};

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
