//! Amazon Connect chat streaming: an SNS notification whose `Message` is a JSON string holding
//! a chat item (`Type`, `ParticipantRole`, `ContentType`, `Content`, `Id`, `ContactId`,
//! `InitialContactId`, `DisplayName`). Only customer text messages become messages. The SNS
//! signature is verified by the activities before this runs.

use serde_json::Value;

use super::chat::ChatItem;
use crate::message::InboundMessage;

/// Parses an SNS notification body into the chat item it carries.
pub fn parse_notification(body: &[u8]) -> Result<ChatItem, String> {
    let envelope: Value =
        serde_json::from_slice(body).map_err(|e| format!("not an SNS message: {e}"))?;
    let chat: Value = envelope
        .get("Message")
        .and_then(Value::as_str)
        .and_then(|m| serde_json::from_str(m).ok())
        .ok_or("Message is not a Connect chat item")?;
    normalize_chat(&chat)
}

/// One Connect chat item.
pub fn normalize_chat(chat: &Value) -> Result<ChatItem, String> {
    let field = |name: &str| chat.get(name).and_then(Value::as_str).unwrap_or_default();
    let (kind, role, content_type) = (
        field("Type"),
        field("ParticipantRole"),
        field("ContentType"),
    );
    if kind != "MESSAGE" {
        return Ok(ChatItem::Ignored(format!("Connect {kind} item")));
    }
    if role != "CUSTOMER" {
        return Ok(ChatItem::Ignored(format!("Connect message from {role}")));
    }
    if !matches!(content_type, "text/plain" | "text/markdown") {
        return Ok(ChatItem::Ignored(format!(
            "Connect content type {content_type}"
        )));
    }
    let contact = match field("InitialContactId") {
        "" => field("ContactId"),
        initial => initial,
    };
    let id = field("Id");
    if contact.is_empty() || id.is_empty() {
        return Err("Connect message without Id or ContactId".into());
    }
    Ok(ChatItem::Message {
        contact: contact.to_owned(),
        contact_name: chat
            .get("DisplayName")
            .and_then(Value::as_str)
            .map(str::to_owned),
        message: InboundMessage::text(format!("connect:{id}"), field("Content")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_that_carry_no_chat_item_are_refused() {
        for body in [
            &b""[..],
            b"{}",
            b"[]",
            b"{\"Message\": 1}",
            b"{\"Message\": \"not json\"}",
            // `Message` a JSON array, not an object: still not a chat item, no panic.
            b"{\"Message\": \"[1]\"}",
        ] {
            assert!(
                parse_notification(body).map(|i| matches!(i, ChatItem::Ignored(_))) != Ok(false),
                "{body:?}"
            );
        }
        let chat = r#"{"Type":"MESSAGE","ParticipantRole":"CUSTOMER","ContentType":"text/plain","Content":"hola","Id":"i","ContactId":"c"}"#;
        let body = serde_json::json!({ "Message": chat }).to_string();
        assert!(matches!(
            parse_notification(body.as_bytes()).unwrap(),
            ChatItem::Message { contact, .. } if contact == "c"
        ));
    }
}
