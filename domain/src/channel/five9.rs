//! Five9 Digital Engagement webhook bodies: `{"events": [...]}` or one event object, each
//! `{correlationId, messageId, type, from, text}`. Only customer text becomes a message.

use serde_json::Value;

use super::chat::ChatItem;
use crate::message::InboundMessage;

/// Parses a webhook body into its items; `Err` (the problem) when it is not a Five9 body.
pub fn parse_webhook(body: &[u8]) -> Result<Vec<ChatItem>, String> {
    let body: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let items: Vec<&Value> = match body.get("events") {
        Some(Value::Array(events)) => events.iter().collect(),
        Some(_) => return Err("`events` must be a list".into()),
        None if body.is_object() => vec![&body],
        None => return Err("expected a JSON object".into()),
    };
    items.into_iter().map(normalize_event).collect()
}

/// One Five9 event.
pub fn normalize_event(event: &Value) -> Result<ChatItem, String> {
    let text_of = |name: &str| event.get(name).and_then(Value::as_str).map(str::trim);
    let conversation = text_of("correlationId")
        .filter(|c| !c.is_empty())
        .ok_or("event without `correlationId`")?;
    let message_id = text_of("messageId")
        .filter(|m| !m.is_empty())
        .ok_or("event without `messageId`")?;
    let kind = text_of("type").unwrap_or("TEXT");
    let from = text_of("from").unwrap_or("CUSTOMER");
    let text = text_of("text").unwrap_or_default();
    if kind != "TEXT" {
        return Ok(ChatItem::Ignored(format!("Five9 `{kind}` event")));
    }
    if from != "CUSTOMER" {
        return Ok(ChatItem::Ignored(format!("Five9 message from {from}")));
    }
    if text.is_empty() {
        return Ok(ChatItem::Ignored("empty Five9 message".into()));
    }
    Ok(ChatItem::Message {
        contact: conversation.to_owned(),
        contact_name: None,
        message: InboundMessage::text(format!("five9:{message_id}"), text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_that_are_not_five9_are_refused_not_panicked_on() {
        for body in [
            &b""[..],
            b"[]",
            b"1",
            b"{\"events\": 3}",
            b"{\"events\": [1]}",
        ] {
            assert!(parse_webhook(body).is_err(), "{body:?}");
        }
        let items = parse_webhook(
            br#"{"events":[{"correlationId":"c","messageId":"m","text":"hola"},
                {"correlationId":"c","messageId":"n","type":"TYPING"}]}"#,
        )
        .unwrap();
        assert!(matches!(&items[0], ChatItem::Message { message, .. } if message.text == "hola"));
        assert!(matches!(&items[1], ChatItem::Ignored(_)));
    }
}
