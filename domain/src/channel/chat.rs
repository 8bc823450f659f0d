//! What a chat provider's inbound item means, before the activities attach the account it
//! arrived on: a customer's message or an item without effect.

use crate::message::InboundMessage;

/// One normalized inbound chat item (Five9, Amazon Connect).
#[derive(Debug, Clone, PartialEq)]
pub enum ChatItem {
    /// A customer's message in the conversation `contact`.
    Message {
        contact: String,
        contact_name: Option<String>,
        /// `message_id` is the provider's id with a provider prefix (deduplication key).
        message: InboundMessage,
    },
    /// Understood but without effect (typing, agent or bot messages, other content types).
    Ignored(String),
}
