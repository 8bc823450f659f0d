//! Pure per-provider channel codecs: parsing inbound webhooks into canonical messages and
//! delivery statuses, building outbound request bodies from a [`Reply`](crate::message::Reply),
//! and classifying provider errors as retryable or permanent.
//!
//! Nothing here performs I/O: signature secrets, HTTP clients, media downloads and retries live
//! in the channels crate, which calls these functions on the bytes it received or will send.

pub mod breaker;
pub mod chat;
pub mod connect;
pub mod five9;
pub mod strategy;
pub mod webchat;
pub mod whatsapp;

/// Whether replies on `channel` are pushed through an outbound strategy (every channel but
/// webchat, whose replies travel back in the HTTP response).
pub fn pushes_replies(channel: &str) -> bool {
    matches!(
        channel,
        "whatsapp" | "five9" | "amazon-connect" | "sms" | "email"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_channels_are_all_but_webchat() {
        assert!(!pushes_replies("webchat"));
        for c in ["whatsapp", "five9", "amazon-connect", "sms", "email"] {
            assert!(pushes_replies(c), "{c}");
        }
    }
}
