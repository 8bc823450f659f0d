//! Canonical messages exchanged between channels and conversations.

use serde::{Deserialize, Serialize};

/// A customer's text message as the conversation sees it, whatever the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundText {
    /// The provider's (or client's) message id; used to deduplicate redeliveries.
    pub message_id: String,
    pub text: String,
}

/// Something the bot says back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Text { text: String },
}

impl Reply {
    pub fn text(text: impl Into<String>) -> Self {
        Reply::Text { text: text.into() }
    }
}
