//! WhatsApp Business Cloud API (Meta) codec; 360dialog Cloud API numbers use the same shapes.
//!
//! * [`parse_webhook`] turns a webhook POST body (`object/entry[]/changes[]/value`) into
//!   [`WebhookEvent`]s: customer messages as canonical [`InboundMessage`]s, delivery statuses
//!   and error notifications. Tolerant of unknown fields, unknown change `field`s and odd
//!   types; one bad message never hides the others.
//! * [`parse_signature_header`] and [`constant_time_eq`] are the pure halves of the
//!   `X-Hub-Signature-256` check (the HMAC itself is computed by the caller). 360dialog does not
//!   sign messaging webhooks: authenticate those with a shared header secret and
//!   [`constant_time_eq`].
//! * [`send_body`] builds the JSON of `POST /{version}/{phone_number_id}/messages` (360dialog:
//!   `POST /messages`) for a [`Reply`]; [`sent_message_id`] reads the `wamid` of the answer and
//!   [`classify_send_error`] says whether a failed send is worth retrying.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::message::{Choice, InboundMedia, InboundMessage, ListSection, Location, Reply};

/// Webhook bodies larger than this are refused without parsing (1 MiB).
pub const MAX_WEBHOOK_BYTES: usize = 1 << 20;
/// Value of `object` on every WhatsApp Business webhook.
pub const WEBHOOK_OBJECT: &str = "whatsapp_business_account";
/// Prefix of [`InboundMedia::reference`] for media sent by a customer: `whatsapp:<media id>`.
pub const MEDIA_REFERENCE_PREFIX: &str = "whatsapp:";
/// Meta's code for an inbound message type it (or we) cannot handle.
pub const UNSUPPORTED_MESSAGE_CODE: i64 = 131051;

/// Label of the button that opens a list when the reply does not give one.
const DEFAULT_LIST_BUTTON: &str = "Opciones";
/// Body of an interactive message whose text is empty (WhatsApp requires a body).
const DEFAULT_INTERACTIVE_BODY: &str = "Elige una opción:";

// WhatsApp limits, in characters (bytes for the callback data).
const TEXT_BODY_MAX: usize = 4096;
const CAPTION_MAX: usize = 1024;
const INTERACTIVE_BODY_MAX: usize = 1024;
const BUTTON_TITLE_MAX: usize = 20;
const BUTTON_ID_MAX: usize = 256;
const MAX_BUTTONS: usize = 3;
const LIST_BUTTON_MAX: usize = 20;
const SECTION_TITLE_MAX: usize = 24;
const ROW_TITLE_MAX: usize = 24;
const ROW_ID_MAX: usize = 200;
const MAX_LIST_ROWS: usize = 10;
const MAX_LIST_SECTIONS: usize = 10;
const CALLBACK_DATA_MAX_BYTES: usize = 512;
const TEMPLATE_PARAMETER_MAX: usize = 1024;

/// One thing a webhook POST told us. A single POST may carry several entries/changes/messages/
/// statuses; all are returned in order.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookEvent {
    Message(IncomingMessage),
    Status(StatusUpdate),
    /// `value.errors[]` or an unsupported message: kept for logging, no effect.
    Error {
        phone_number_id: String,
        code: i64,
        title: String,
    },
}

impl WebhookEvent {
    /// The business phone number the event is about (the tenant routing key).
    pub fn phone_number_id(&self) -> &str {
        match self {
            WebhookEvent::Message(m) => &m.phone_number_id,
            WebhookEvent::Status(s) => &s.phone_number_id,
            WebhookEvent::Error {
                phone_number_id, ..
            } => phone_number_id,
        }
    }
}

/// A customer's message to one of our business numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingMessage {
    /// `value.metadata.phone_number_id` (tenant routing key).
    pub phone_number_id: String,
    /// The customer's `wa_id`: digits, no `+`.
    pub from: String,
    /// `contacts[].profile.name` of the contact whose `wa_id` is `from`.
    pub contact_name: Option<String>,
    /// The `wamid.…` (also `message.message_id`); deduplicate redeliveries on it.
    pub provider_message_id: String,
    /// Unix seconds (`0` when the webhook had no readable timestamp).
    pub timestamp: i64,
    /// The canonical message: `message_id` = wamid; `text` for text / caption / button titles /
    /// location name; `media` {kind: `image`|`audio`|`video`|`document`|`sticker`,
    /// reference: `whatsapp:<media id>`, mime_type}; `location` {lat, lon}; `reply_id` =
    /// interactive `button_reply.id` / `list_reply.id` / template button payload.
    pub message: InboundMessage,
}

/// Delivery state of a message we sent. Forward-only order: `Sent < Delivered < Read`;
/// `Failed` is terminal (see [`DeliveryState::can_advance_to`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Sent,
    Delivered,
    Read,
    Failed,
}

impl DeliveryState {
    /// The state of a webhook `status` string; `None` for others (`played`, group variants…).
    pub fn from_status(status: &str) -> Option<Self> {
        match status {
            "sent" => Some(DeliveryState::Sent),
            "delivered" => Some(DeliveryState::Delivered),
            "read" => Some(DeliveryState::Read),
            "failed" => Some(DeliveryState::Failed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Read => "read",
            DeliveryState::Failed => "failed",
        }
    }

    /// Whether a message recorded in `self` may move to `next`: statuses arrive out of order
    /// and twice, so only forward moves count, and nothing leaves `Failed`.
    pub fn can_advance_to(self, next: DeliveryState) -> bool {
        match (self, next) {
            (DeliveryState::Failed, _) => false,
            (_, DeliveryState::Failed) => true,
            (current, next) => next > current,
        }
    }
}

/// A delivery status of a message we sent.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub phone_number_id: String,
    /// The `wamid` returned when we sent the message.
    pub provider_message_id: String,
    pub state: DeliveryState,
    pub recipient: String,
    /// Unix seconds (`0` when the webhook had no readable timestamp).
    pub timestamp: i64,
    /// `biz_opaque_callback_data` we attached when sending.
    pub callback_data: Option<String>,
    /// First `errors[]` entry (code, title); set on `failed`.
    pub error: Option<(i64, String)>,
}

/// Why a webhook body was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook body is not JSON: {0}")]
    NotJson(String),
    #[error("not a WhatsApp Business webhook: {0}")]
    NotWhatsApp(String),
    #[error("webhook body is larger than {MAX_WEBHOOK_BYTES} bytes")]
    TooLarge,
}

/// Parses a webhook body (already signature-checked by the caller).
///
/// Tolerant of unknown fields, of numbers where strings are expected (and back) and of changes
/// with another `field` than `messages` (ignored). Never panics; refuses bodies over
/// [`MAX_WEBHOOK_BYTES`]. A message without `id` or `from` (or a status without `id`) and a
/// change without `metadata.phone_number_id` are skipped; statuses with an unknown `status`
/// (e.g. `played`) are skipped. Message types we do not map (`unsupported`, `reaction`,
/// `contacts`, `order`, `system`, flows replies, …) become [`WebhookEvent::Error`].
/// Legacy 360dialog On-Premise payloads (no `entry` envelope) are [`WebhookError::NotWhatsApp`].
pub fn parse_webhook(body: &[u8]) -> Result<Vec<WebhookEvent>, WebhookError> {
    if body.len() > MAX_WEBHOOK_BYTES {
        return Err(WebhookError::TooLarge);
    }
    let root: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::NotJson(e.to_string()))?;
    match root.get("object") {
        Some(Value::String(object)) if object == WEBHOOK_OBJECT => {}
        Some(other) => {
            return Err(WebhookError::NotWhatsApp(format!(
                "object is {}",
                truncate_chars(&other.to_string(), 64)
            )));
        }
        None => return Err(WebhookError::NotWhatsApp("missing object".to_owned())),
    }
    let entries = root
        .get("entry")
        .and_then(Value::as_array)
        .ok_or_else(|| WebhookError::NotWhatsApp("missing entry".to_owned()))?;

    let mut events = Vec::new();
    for entry in entries {
        for change in array(entry.get("changes")) {
            if change.get("field").and_then(Value::as_str) != Some("messages") {
                continue;
            }
            let Some(value) = change.get("value") else {
                continue;
            };
            parse_change_value(value, &mut events);
        }
    }
    Ok(events)
}

/// Appends the events of one `changes[].value` of field `messages`.
fn parse_change_value(value: &Value, events: &mut Vec<WebhookEvent>) {
    let Some(phone_number_id) = value
        .get("metadata")
        .and_then(|m| string_of(m.get("phone_number_id")))
    else {
        return;
    };
    let contacts = array(value.get("contacts"));
    for message in array(value.get("messages")) {
        events.extend(parse_message(&phone_number_id, contacts, message));
    }
    for status in array(value.get("statuses")) {
        events.extend(parse_status(&phone_number_id, status).map(WebhookEvent::Status));
    }
    for error in array(value.get("errors")) {
        let (code, title) = error_code_title(error);
        events.push(WebhookEvent::Error {
            phone_number_id: phone_number_id.clone(),
            code: code.unwrap_or(0),
            title,
        });
    }
}

/// What a message carries, before the envelope fields are checked.
#[derive(Default)]
struct Content {
    text: String,
    media: Option<InboundMedia>,
    location: Option<Location>,
    reply_id: Option<String>,
}

fn parse_message(phone_number_id: &str, contacts: &[Value], m: &Value) -> Option<WebhookEvent> {
    let content = match message_content(m) {
        Ok(content) => content,
        Err(what) => {
            let (code, title) = m
                .get("errors")
                .and_then(|e| e.get(0))
                .map(error_code_title)
                .unwrap_or((None, String::new()));
            return Some(WebhookEvent::Error {
                phone_number_id: phone_number_id.to_owned(),
                code: code.unwrap_or(UNSUPPORTED_MESSAGE_CODE),
                title: if title.is_empty() { what } else { title },
            });
        }
    };
    let id = string_of(m.get("id"))?;
    let from = string_of(m.get("from"))?;
    let from = from.strip_prefix('+').unwrap_or(&from).to_owned();
    if from.is_empty() {
        return None;
    }
    let contact_name = contacts
        .iter()
        .find(|c| string_of(c.get("wa_id")).as_deref() == Some(from.as_str()))
        .and_then(|c| c.get("profile"))
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .map(str::to_owned);
    Some(WebhookEvent::Message(IncomingMessage {
        phone_number_id: phone_number_id.to_owned(),
        from,
        contact_name,
        provider_message_id: id.clone(),
        timestamp: int_of(m.get("timestamp")).unwrap_or(0),
        message: InboundMessage {
            message_id: id,
            text: content.text,
            media: content.media,
            location: content.location,
            reply_id: content.reply_id,
        },
    }))
}

/// The content of a message, or why it is not supported.
fn message_content(m: &Value) -> Result<Content, String> {
    let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let text_at = |v: Option<&Value>, key: &str| {
        v.and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match kind {
        "text" => Ok(Content {
            text: text_at(m.get("text"), "body"),
            ..Content::default()
        }),
        "image" | "audio" | "video" | "document" | "sticker" => {
            let part = m.get(kind);
            let media_id = part
                .and_then(|p| string_of(p.get("id")))
                .ok_or_else(|| format!("{kind} message without media id"))?;
            let mime_type = part
                .and_then(|p| p.get("mime_type"))
                .and_then(Value::as_str)
                .filter(|t| !t.trim().is_empty())
                .map(str::to_owned);
            Ok(Content {
                text: text_at(part, "caption"),
                media: Some(InboundMedia {
                    kind: kind.to_owned(),
                    reference: format!("{MEDIA_REFERENCE_PREFIX}{media_id}"),
                    mime_type,
                }),
                ..Content::default()
            })
        }
        "interactive" => {
            let interactive = m.get("interactive");
            let sub = interactive
                .and_then(|i| i.get("type"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let picked = match sub {
                "button_reply" | "list_reply" => interactive.and_then(|i| i.get(sub)),
                _ => None,
            };
            let id = picked.and_then(|p| string_of(p.get("id"))).ok_or_else(|| {
                format!(
                    "unsupported interactive reply `{}`",
                    truncate_chars(sub, 64)
                )
            })?;
            Ok(Content {
                text: text_at(picked, "title"),
                reply_id: Some(id),
                ..Content::default()
            })
        }
        "button" => {
            let button = m.get("button");
            Ok(Content {
                text: text_at(button, "text"),
                reply_id: button.and_then(|b| string_of(b.get("payload"))),
                ..Content::default()
            })
        }
        "location" => {
            let loc = m.get("location");
            let coordinate = |key: &str| loc.and_then(|l| float_of(l.get(key)));
            match (coordinate("latitude"), coordinate("longitude")) {
                (Some(lat), Some(lon))
                    if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
                {
                    Ok(Content {
                        text: text_at(loc, "name"),
                        location: Some(Location { lat, lon }),
                        ..Content::default()
                    })
                }
                _ => Err("location without valid coordinates".to_owned()),
            }
        }
        "" => Err("message without type".to_owned()),
        other => Err(format!(
            "unsupported message type `{}`",
            truncate_chars(other, 64)
        )),
    }
}

fn parse_status(phone_number_id: &str, s: &Value) -> Option<StatusUpdate> {
    let id = string_of(s.get("id"))?;
    let state = DeliveryState::from_status(s.get("status").and_then(Value::as_str)?)?;
    let error = s
        .get("errors")
        .and_then(|e| e.get(0))
        .map(error_code_title)
        .and_then(|(code, title)| Some((code?, title)));
    Some(StatusUpdate {
        phone_number_id: phone_number_id.to_owned(),
        provider_message_id: id,
        state,
        recipient: string_of(s.get("recipient_id")).unwrap_or_default(),
        timestamp: int_of(s.get("timestamp")).unwrap_or(0),
        callback_data: s
            .get("biz_opaque_callback_data")
            .and_then(Value::as_str)
            .map(str::to_owned),
        error,
    })
}

/// `code` and `title` (or `message`) of a webhook `errors[]` entry.
fn error_code_title(error: &Value) -> (Option<i64>, String) {
    let title = ["title", "message"]
        .iter()
        .filter_map(|k| error.get(*k).and_then(Value::as_str))
        .find(|t| !t.trim().is_empty())
        .unwrap_or_default();
    (int_of(error.get("code")), title.to_owned())
}

/// Parses `sha256=<64 hex digits>` (either case; surrounding whitespace ignored).
pub fn parse_signature_header(value: &str) -> Option<[u8; 32]> {
    let hex = value.trim().strip_prefix("sha256=")?.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Compares two byte strings in time that depends only on their lengths (lengths are public).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The JSON body of `POST /{version}/{phone_number_id}/messages` for one reply to `to`.
///
/// * `Text` → `type: text` (`preview_url: false`), body ≤ 4096 chars.
/// * `Media` → `image`/`video`/`document` by `link` with `caption` (≤ 1024 chars) when given;
///   `audio`/`sticker` by `link` without caption; any other kind → text ([`Reply::plain_text`]).
/// * `Buttons` → interactive `button` (≤ 3, title ≤ 20 chars); 4–10 → interactive `list` in one
///   section behind a button labelled `Opciones` (row title ≤ 24 chars); none → text; more
///   than 10 → text listing all options.
/// * `List` → interactive `list` (button label ≤ 20 chars, default `Opciones`; section title
///   ≤ 24 chars; empty sections dropped); more than 10 rows or sections → text listing all
///   options; no rows → text.
///
/// Interactive bodies are ≤ 1024 chars (an empty body becomes `Elige una opción:`). Truncation
/// is on char boundaries; ids are truncated to WhatsApp's limits too (256 button, 200 row).
/// Always has `messaging_product` and `recipient_type: individual`, and
/// `biz_opaque_callback_data` (≤ 512 bytes, truncated) when `callback_data` is non-empty.
pub fn send_body(to: &str, reply: &Reply, callback_data: Option<&str>) -> Value {
    let (kind, payload) = match reply {
        Reply::Text { text } => text_payload(text),
        Reply::Media { kind, url, caption } => {
            let kind = kind.trim().to_ascii_lowercase();
            match kind.as_str() {
                "image" | "video" | "document" => {
                    let mut media = Map::new();
                    media.insert("link".to_owned(), json!(url));
                    if let Some(caption) = caption.as_deref().filter(|c| !c.trim().is_empty()) {
                        media.insert(
                            "caption".to_owned(),
                            json!(truncate_chars(caption, CAPTION_MAX)),
                        );
                    }
                    (kind, Value::Object(media))
                }
                "audio" | "sticker" => (kind, json!({ "link": url })),
                _ => text_payload(&reply.plain_text()),
            }
        }
        Reply::Buttons { text, buttons } => match buttons.len() {
            0 => text_payload(text),
            1..=MAX_BUTTONS => button_payload(text, buttons),
            n if n <= MAX_LIST_ROWS => {
                let section = ListSection {
                    title: String::new(),
                    rows: buttons.clone(),
                };
                list_payload(text, DEFAULT_LIST_BUTTON, &[&section])
            }
            _ => text_payload(&reply.plain_text()),
        },
        Reply::List {
            text,
            button,
            sections,
        } => {
            let sections: Vec<&ListSection> =
                sections.iter().filter(|s| !s.rows.is_empty()).collect();
            let rows: usize = sections.iter().map(|s| s.rows.len()).sum();
            if rows == 0 {
                text_payload(text)
            } else if rows > MAX_LIST_ROWS || sections.len() > MAX_LIST_SECTIONS {
                text_payload(&reply.plain_text())
            } else {
                list_payload(text, button, &sections)
            }
        }
        Reply::Template {
            name,
            language,
            parameters,
            ..
        } => template_payload(name, language, parameters),
    };
    let mut body = Map::new();
    body.insert("messaging_product".to_owned(), json!("whatsapp"));
    body.insert("recipient_type".to_owned(), json!("individual"));
    body.insert("to".to_owned(), json!(to));
    body.insert("type".to_owned(), json!(kind));
    body.insert(kind, payload);
    if let Some(data) = callback_data.filter(|d| !d.is_empty()) {
        body.insert(
            "biz_opaque_callback_data".to_owned(),
            json!(truncate_bytes(data, CALLBACK_DATA_MAX_BYTES)),
        );
    }
    Value::Object(body)
}

fn template_payload(name: &str, language: &str, parameters: &[String]) -> (String, Value) {
    let mut template = Map::new();
    template.insert("name".to_owned(), json!(name));
    template.insert("language".to_owned(), json!({ "code": language }));
    if !parameters.is_empty() {
        let parameters: Vec<Value> = parameters
            .iter()
            .map(|p| json!({ "type": "text", "text": truncate_chars(p, TEMPLATE_PARAMETER_MAX) }))
            .collect();
        template.insert(
            "components".to_owned(),
            json!([{ "type": "body", "parameters": parameters }]),
        );
    }
    ("template".to_owned(), Value::Object(template))
}

fn text_payload(text: &str) -> (String, Value) {
    (
        "text".to_owned(),
        json!({ "body": truncate_chars(text, TEXT_BODY_MAX), "preview_url": false }),
    )
}

fn interactive_body(text: &str) -> Value {
    let text = if text.trim().is_empty() {
        DEFAULT_INTERACTIVE_BODY
    } else {
        text
    };
    json!({ "text": truncate_chars(text, INTERACTIVE_BODY_MAX) })
}

fn button_payload(text: &str, buttons: &[Choice]) -> (String, Value) {
    let buttons: Vec<Value> = buttons
        .iter()
        .map(|b| {
            json!({
                "type": "reply",
                "reply": {
                    "id": truncate_chars(&b.id, BUTTON_ID_MAX),
                    "title": truncate_chars(&b.title, BUTTON_TITLE_MAX),
                },
            })
        })
        .collect();
    (
        "interactive".to_owned(),
        json!({
            "type": "button",
            "body": interactive_body(text),
            "action": { "buttons": buttons },
        }),
    )
}

fn list_payload(text: &str, button: &str, sections: &[&ListSection]) -> (String, Value) {
    let button = if button.trim().is_empty() {
        DEFAULT_LIST_BUTTON
    } else {
        button
    };
    let several = sections.len() > 1;
    let sections: Vec<Value> = sections
        .iter()
        .map(|s| {
            let rows: Vec<Value> = s
                .rows
                .iter()
                .map(|r| {
                    json!({
                        "id": truncate_chars(&r.id, ROW_ID_MAX),
                        "title": truncate_chars(&r.title, ROW_TITLE_MAX),
                    })
                })
                .collect();
            let mut section = Map::new();
            // A title is required when there are several sections.
            let title = match s.title.trim() {
                "" if several => DEFAULT_LIST_BUTTON,
                "" => "",
                _ => &s.title,
            };
            if !title.is_empty() {
                section.insert(
                    "title".to_owned(),
                    json!(truncate_chars(title, SECTION_TITLE_MAX)),
                );
            }
            section.insert("rows".to_owned(), Value::Array(rows));
            Value::Object(section)
        })
        .collect();
    (
        "interactive".to_owned(),
        json!({
            "type": "list",
            "body": interactive_body(text),
            "action": {
                "button": truncate_chars(button, LIST_BUTTON_MAX),
                "sections": sections,
            },
        }),
    )
}

/// The message id Meta returns on success: `messages[0].id`.
pub fn sent_message_id(response: &Value) -> Option<String> {
    response
        .get("messages")?
        .get(0)?
        .get("id")?
        .as_str()
        .filter(|id| !id.trim().is_empty())
        .map(str::to_owned)
}

/// How a failed send should be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// Worth retrying later (429, 5xx, codes 130429, 131056, 4, 80007, 1, 2, 131000, 131016,
    /// 131057, 131052/131053, 133016), with a delay hint in seconds if known.
    Retryable {
        code: Option<i64>,
        message: String,
        retry_after_secs: Option<u64>,
    },
    /// Never retry as is: bad recipient (131026, 131030, 131047 → `invalid_recipient`), auth
    /// and permissions (0, 190, 3, 10, 200–299, HTTP 401/403 → `auth`), bad parameters (100,
    /// 131008, 131009, 132000, 132001, 132012), policy (368, 131031, 130497, 131042, 131048,
    /// 131049), other 4xx.
    Permanent {
        code: Option<i64>,
        message: String,
        invalid_recipient: bool,
        auth: bool,
    },
}

impl SendFailure {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendFailure::Retryable { .. })
    }
}

const RETRYABLE_CODES: &[i64] = &[
    130429, 131056, 4, 80007, 1, 2, 131000, 131016, 131057, 131052, 131053, 133016,
];
const INVALID_RECIPIENT_CODES: &[i64] = &[131026, 131030, 131047];
const PERMANENT_CODES: &[i64] = &[
    100, 131008, 131009, 132000, 132001, 132012, 368, 131031, 130497, 131042, 131048, 131049,
];

fn is_auth_code(code: i64) -> bool {
    matches!(code, 0 | 190 | 3 | 10 | 200..=299)
}

/// Classifies an unsuccessful HTTP answer of the send endpoint from its status, `Retry-After`
/// header value (seconds; an HTTP date is ignored) and body (Graph error
/// `{"error":{"message","code","error_subcode","error_data":{"details"}}}`, 360dialog's legacy
/// `{"meta":{"developerMessage"}}`, or not JSON at all).
///
/// A known error code decides first; then `is_transient`; then the HTTP status: 408, 429 and
/// 5xx are retryable (also 360dialog's 400 "exceeded the limit of 1 request every …"), 401/403
/// are permanent auth failures, other 4xx are permanent. Any other status (an unexpected 1xx,
/// 2xx or 3xx) is permanent: retrying blindly could send the message twice.
pub fn classify_send_error(
    http_status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> SendFailure {
    let retry_after_secs = retry_after.and_then(|v| v.trim().parse::<u64>().ok());
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));

    let graph_message = error
        .and_then(|e| e.get("message").or_else(|| e.get("error_user_msg")))
        .and_then(Value::as_str)
        .or_else(|| {
            parsed
                .as_ref()
                .and_then(|v| v.get("meta"))
                .and_then(|m| m.get("developerMessage"))
                .and_then(Value::as_str)
        })
        .or_else(|| error.and_then(Value::as_str))
        .map(str::trim)
        .filter(|m| !m.is_empty());
    let code = error
        .and_then(|e| int_of(e.get("code")))
        .or_else(|| graph_message.and_then(code_in_message));
    let details = error
        .and_then(|e| e.get("error_data"))
        .and_then(|d| d.get("details"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|d| !d.is_empty());
    let transient = error.and_then(|e| e.get("is_transient")) == Some(&Value::Bool(true));

    let mut message = format!("HTTP {http_status}");
    match graph_message {
        Some(m) => {
            message.push_str(": ");
            message.push_str(&truncate_chars(m, 300));
            if let Some(d) = details.filter(|d| *d != m) {
                message.push_str(" — ");
                message.push_str(&truncate_chars(d, 300));
            }
        }
        None if parsed.is_none() => {
            let text = String::from_utf8_lossy(body);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            if !text.is_empty() {
                message.push_str(": ");
                message.push_str(&truncate_chars(&text, 200));
            }
        }
        None => {}
    }

    let retryable = |code| SendFailure::Retryable {
        code,
        message: message.clone(),
        retry_after_secs,
    };
    let permanent = |code, invalid_recipient, auth| SendFailure::Permanent {
        code,
        message: message.clone(),
        invalid_recipient,
        auth,
    };
    if let Some(c) = code {
        if RETRYABLE_CODES.contains(&c) {
            return retryable(code);
        }
        if INVALID_RECIPIENT_CODES.contains(&c) {
            return permanent(code, true, false);
        }
        if is_auth_code(c) {
            return permanent(code, false, true);
        }
        if PERMANENT_CODES.contains(&c) {
            return permanent(code, false, false);
        }
    }
    if transient {
        return retryable(code);
    }
    let rate_limited_400 = http_status == 400
        && graph_message.is_some_and(|m| m.to_ascii_lowercase().contains("exceeded the limit"));
    match http_status {
        408 | 429 | 500..=599 => retryable(code),
        _ if rate_limited_400 => retryable(code),
        401 | 403 => permanent(code, false, true),
        _ => permanent(code, false, false),
    }
}

/// The code of a Graph message that starts with `(#131030) …`.
fn code_in_message(message: &str) -> Option<i64> {
    let (digits, _) = message.strip_prefix("(#")?.split_once(')')?;
    digits.parse().ok()
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A non-empty id, given as a string or as an integer.
fn string_of(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// An integer given as a number or as a string of digits.
fn int_of(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A finite float given as a number or as a string.
fn float_of(v: Option<&Value>) -> Option<f64> {
    let f = match v? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    f.is_finite().then_some(f)
}

/// At most `max` chars of `s`.
fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => s[..end].to_owned(),
        None => s.to_owned(),
    }
}

/// At most `max` bytes of `s`, cut on a char boundary.
fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            (
                $name,
                include_bytes!(concat!("../../tests/fixtures/whatsapp/", $name, ".json"))
                    as &[u8],
            )
        };
    }

    /// Every fixture under `tests/fixtures/whatsapp/`.
    const FIXTURES: &[(&str, &[u8])] = &[
        fixture!("text"),
        fixture!("text_minified"),
        fixture!("image"),
        fixture!("document"),
        fixture!("audio"),
        fixture!("interactive_button_reply"),
        fixture!("interactive_list_reply"),
        fixture!("template_button"),
        fixture!("location"),
        fixture!("unsupported"),
        fixture!("status_sent"),
        fixture!("status_delivered"),
        fixture!("status_read"),
        fixture!("status_failed"),
        fixture!("account_errors"),
        fixture!("multi_entry"),
        fixture!("account_update"),
    ];

    const PHONE: &str = "106540352242922";
    const CUSTOMER: &str = "16505551234";

    fn fixture(name: &str) -> &'static [u8] {
        FIXTURES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| *b)
            .unwrap_or_else(|| panic!("no fixture {name}"))
    }

    fn events(name: &str) -> Vec<WebhookEvent> {
        parse_webhook(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The single customer message of a fixture.
    fn only_message(name: &str) -> IncomingMessage {
        match events(name).as_slice() {
            [WebhookEvent::Message(m)] => m.clone(),
            other => panic!("{name}: {other:?}"),
        }
    }

    fn only_status(name: &str) -> StatusUpdate {
        match events(name).as_slice() {
            [WebhookEvent::Status(s)] => s.clone(),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn channel_text_message_parses_and_minified_body_is_the_signed_499_bytes() {
        let m = only_message("text");
        let id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=";
        assert_eq!(
            m,
            IncomingMessage {
                phone_number_id: PHONE.to_owned(),
                from: CUSTOMER.to_owned(),
                contact_name: Some("Sheena Nelson".to_owned()),
                provider_message_id: id.to_owned(),
                timestamp: 1749416383,
                message: InboundMessage::text(id, "Does it come in another color?"),
            }
        );
        // The body of the notes' HMAC test vector: the same webhook, minified, 499 bytes.
        let minified = fixture("text_minified");
        assert_eq!(minified.len(), 499);
        assert_ne!(minified.last(), Some(&b'\n'));
        assert!(!minified.contains(&b'\n'));
        assert!(!minified.windows(2).any(|w| w == b": " || w == b", "));
        assert_eq!(events("text_minified"), events("text"));
    }

    #[test]
    fn channel_signature_header_parses_the_notes_test_vector() {
        let hex = "ded1d1d9621cffa39832ccf2b330fa476b4dc8ec2a5d102e1e554312b3f21d42";
        let want: [u8; 32] = [
            0xde, 0xd1, 0xd1, 0xd9, 0x62, 0x1c, 0xff, 0xa3, 0x98, 0x32, 0xcc, 0xf2, 0xb3, 0x30,
            0xfa, 0x47, 0x6b, 0x4d, 0xc8, 0xec, 0x2a, 0x5d, 0x10, 0x2e, 0x1e, 0x55, 0x43, 0x12,
            0xb3, 0xf2, 0x1d, 0x42,
        ];
        assert_eq!(parse_signature_header(&format!("sha256={hex}")), Some(want));
        assert_eq!(
            parse_signature_header(&format!(" sha256={} ", hex.to_uppercase())),
            Some(want)
        );
        for bad in [
            "",
            "sha256=",
            hex,
            &format!("sha1={hex}"),
            &format!("SHA256={hex}"),
            &format!("sha256={}", &hex[..63]),
            &format!("sha256={hex}0"),
            &format!("sha256={}g", &hex[..63]),
            &format!("sha256= {hex}"),
            "sha256=ññññññññññññññññññññññññññññññññ",
        ] {
            assert_eq!(parse_signature_header(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn channel_constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secre"));
        assert!(!constant_time_eq(b"", b"x"));
        let mut a = [7u8; 32];
        let b = a;
        assert!(constant_time_eq(&a, &b));
        a[31] ^= 1;
        assert!(!constant_time_eq(&a, &b));
    }

    #[test]
    fn channel_media_messages_keep_the_media_id_and_caption() {
        let image = only_message("image");
        assert_eq!(image.timestamp, 1744344496);
        assert_eq!(image.message.text, "Taj Mahal");
        assert_eq!(
            image.message.media,
            Some(InboundMedia {
                kind: "image".to_owned(),
                reference: "whatsapp:1003383421387256".to_owned(),
                mime_type: Some("image/jpeg".to_owned()),
            })
        );
        let document = only_message("document");
        assert_eq!(document.message.text, "", "filename is not text");
        assert_eq!(
            document.message.media,
            Some(InboundMedia {
                kind: "document".to_owned(),
                reference: "whatsapp:1275395763706921".to_owned(),
                mime_type: Some("application/pdf".to_owned()),
            })
        );
        let audio = only_message("audio");
        assert_eq!(audio.message.text, "");
        assert_eq!(
            audio.message.media,
            Some(InboundMedia {
                kind: "audio".to_owned(),
                reference: "whatsapp:1940543463437913".to_owned(),
                mime_type: Some("audio/ogg; codecs=opus".to_owned()),
            })
        );
        for m in [image, document, audio] {
            assert_eq!(m.message.message_id, m.provider_message_id);
            assert_eq!(m.contact_name.as_deref(), Some("Sheena Nelson"));
            assert!(!m.message.is_empty());
        }
    }

    #[test]
    fn channel_button_list_and_template_replies_carry_the_picked_id() {
        let button = only_message("interactive_button_reply");
        assert_eq!(
            button.provider_message_id,
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTZBQzg0MzQ4QjRCM0NGNkVGOAA="
        );
        assert_eq!(button.timestamp, 1750025136);
        assert_eq!(
            (
                button.message.reply_id.as_deref(),
                button.message.text.as_str()
            ),
            (Some("cancel-button"), "Cancel")
        );
        let list = only_message("interactive_list_reply");
        assert_eq!(
            (list.message.reply_id.as_deref(), list.message.text.as_str()),
            (Some("priority_express"), "Priority Mail Express")
        );
        let template = only_message("template_button");
        assert_eq!(template.timestamp, 1750091045);
        assert_eq!(
            (
                template.message.reply_id.as_deref(),
                template.message.text.as_str()
            ),
            (Some("Unsubscribe"), "Unsubscribe")
        );
        for m in [button, list, template] {
            assert_eq!((m.message.media, m.message.location), (None, None));
        }
    }

    #[test]
    fn channel_location_message_has_coordinates_and_name() {
        let m = only_message("location");
        assert_eq!(
            m.message.location,
            Some(Location {
                lat: 37.44216251868683,
                lon: -122.16153582049394,
            })
        );
        assert_eq!(m.message.text, "Philz Coffee");
    }

    #[test]
    fn channel_unsupported_message_is_an_error_event() {
        assert_eq!(
            events("unsupported"),
            vec![WebhookEvent::Error {
                phone_number_id: PHONE.to_owned(),
                code: 131051,
                title: "Message type unknown".to_owned(),
            }]
        );
    }

    #[test]
    fn channel_statuses_parse_with_callback_data_and_errors() {
        let wamid = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJCOTY3NDc0NDFDRUI3NTA0Q0UA";
        for (name, state, timestamp) in [
            ("status_sent", DeliveryState::Sent, 1750030000),
            ("status_delivered", DeliveryState::Delivered, 1750030003),
            ("status_read", DeliveryState::Read, 1750030060),
        ] {
            assert_eq!(
                only_status(name),
                StatusUpdate {
                    phone_number_id: PHONE.to_owned(),
                    provider_message_id: wamid.to_owned(),
                    state,
                    recipient: CUSTOMER.to_owned(),
                    timestamp,
                    callback_data: Some("conv-42:step-7".to_owned()),
                    error: None,
                },
                "{name}"
            );
        }
        let failed = only_status("status_failed");
        assert_eq!(failed.state, DeliveryState::Failed);
        assert_eq!(
            failed.error,
            Some((131026, "Message undeliverable".to_owned()))
        );

        // Unknown statuses (`played`) are skipped, not errors; the others still come through.
        let text = String::from_utf8(fixture("status_read").to_vec()).unwrap();
        let played = text.replace("\"read\"", "\"played\"");
        assert_eq!(parse_webhook(played.as_bytes()), Ok(vec![]));
        let mut v: Value = serde_json::from_slice(fixture("status_sent")).unwrap();
        let statuses = v["entry"][0]["changes"][0]["value"]["statuses"]
            .as_array_mut()
            .unwrap();
        let mut played = statuses[0].clone();
        played["status"] = json!("played");
        let mut no_id = statuses[0].clone();
        no_id.as_object_mut().unwrap().remove("id");
        statuses.insert(0, played);
        statuses.insert(0, no_id);
        let got = parse_webhook(v.to_string().as_bytes()).unwrap();
        assert_eq!(got, vec![WebhookEvent::Status(only_status("status_sent"))]);
    }

    #[test]
    fn channel_account_level_errors_are_error_events() {
        assert_eq!(
            events("account_errors"),
            vec![WebhookEvent::Error {
                phone_number_id: PHONE.to_owned(),
                code: 130429,
                title: "Rate limit hit".to_owned(),
            }]
        );
    }

    #[test]
    fn channel_every_entry_change_and_message_is_returned_in_order() {
        let got = events("multi_entry");
        type Summary<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, &'a str, i64);
        let summary: Vec<Summary> = got
            .iter()
            .map(|e| match e {
                WebhookEvent::Message(m) => (
                    m.phone_number_id.as_str(),
                    m.from.as_str(),
                    m.contact_name.as_deref(),
                    m.provider_message_id.as_str(),
                    m.message.text.as_str(),
                    m.timestamp,
                ),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    PHONE,
                    CUSTOMER,
                    Some("Sheena Nelson"),
                    "wamid.MULTI1",
                    "hola",
                    1750100001
                ),
                (
                    PHONE,
                    "51987654321",
                    Some("Ana Pérez"),
                    "wamid.MULTI2",
                    "quiero pedir",
                    1750100002
                ),
                (
                    "300000000000001",
                    "51911111111",
                    Some("Luis"),
                    "wamid.MULTI3",
                    "buenas",
                    1750100003
                ),
                (
                    "300000000000001",
                    "51911111111",
                    Some("Luis"),
                    "wamid.MULTI4",
                    "¿precio?",
                    1750100004
                ),
            ]
        );
        assert_eq!(got[2].phone_number_id(), "300000000000001");
    }

    #[test]
    fn channel_changes_of_other_fields_are_ignored() {
        let got = events("account_update");
        assert_eq!(got.len(), 1);
        let WebhookEvent::Message(m) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(m.message.text, "still parsed");
        // Only the account_update change: nothing at all.
        let mut v: Value = serde_json::from_slice(fixture("account_update")).unwrap();
        v["entry"][0]["changes"].as_array_mut().unwrap().truncate(1);
        assert_eq!(parse_webhook(v.to_string().as_bytes()), Ok(vec![]));
    }

    /// The text fixture with its one message replaced by `message`.
    fn with_message(message: Value) -> Vec<WebhookEvent> {
        let mut v: Value = serde_json::from_slice(fixture("text")).unwrap();
        v["entry"][0]["changes"][0]["value"]["messages"] = json!([message]);
        parse_webhook(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn channel_webhook_parsing_tolerates_odd_types_and_skips_broken_messages() {
        // Numbers where strings are expected, a `+` on the sender, unknown fields.
        let got = with_message(json!({
            "from": "+16505551234", "id": "wamid.X", "timestamp": 1749416383,
            "type": "text", "text": {"body": "hola", "extra": [1, 2]}, "new_field": {"a": null},
        }));
        let [WebhookEvent::Message(m)] = got.as_slice() else {
            panic!("{got:?}")
        };
        assert_eq!(
            (m.from.as_str(), m.timestamp, m.message.text.as_str()),
            (CUSTOMER, 1749416383, "hola")
        );
        assert_eq!(m.contact_name.as_deref(), Some("Sheena Nelson"));
        // Integer ids, string coordinates, missing/garbled timestamp → 0.
        let got = with_message(json!({
            "from": 16505551234u64, "id": "wamid.Y", "timestamp": "soon", "type": "location",
            "location": {"latitude": "-12.0464", "longitude": -77.0428},
        }));
        let [WebhookEvent::Message(m)] = got.as_slice() else {
            panic!("{got:?}")
        };
        assert_eq!((m.from.as_str(), m.timestamp), (CUSTOMER, 0));
        assert_eq!(
            m.message.location,
            Some(Location {
                lat: -12.0464,
                lon: -77.0428
            })
        );
        assert_eq!(m.message.text, "");
        // Missing id or from: skipped, the others still parsed.
        let mut v: Value = serde_json::from_slice(fixture("multi_entry")).unwrap();
        let messages = v["entry"][0]["changes"][0]["value"]["messages"]
            .as_array_mut()
            .unwrap();
        messages[0].as_object_mut().unwrap().remove("id");
        messages[1]["from"] = json!(null);
        let got = parse_webhook(v.to_string().as_bytes()).unwrap();
        let ids: Vec<&str> = got
            .iter()
            .map(|e| match e {
                WebhookEvent::Message(m) => m.provider_message_id.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["wamid.MULTI3", "wamid.MULTI4"]);
        // Types we do not map are error events with Meta's "unsupported" code.
        for (message, title) in [
            (
                json!({"from": CUSTOMER, "id": "w", "type": "reaction",
                       "reaction": {"message_id": "wamid.A", "emoji": "👍"}}),
                "unsupported message type `reaction`",
            ),
            (
                json!({"from": CUSTOMER, "id": "w", "type": "interactive",
                       "interactive": {"type": "nfm_reply", "nfm_reply": {}}}),
                "unsupported interactive reply `nfm_reply`",
            ),
            (
                json!({"from": CUSTOMER, "id": "w", "type": "image", "image": {}}),
                "image message without media id",
            ),
            (
                json!({"from": CUSTOMER, "id": "w", "type": "location",
                       "location": {"latitude": 91.0, "longitude": 0.0}}),
                "location without valid coordinates",
            ),
            (json!({"from": CUSTOMER, "id": "w"}), "message without type"),
        ] {
            assert_eq!(
                with_message(message),
                vec![WebhookEvent::Error {
                    phone_number_id: PHONE.to_owned(),
                    code: UNSUPPORTED_MESSAGE_CODE,
                    title: title.to_owned(),
                }],
                "{title}"
            );
        }
        // A change without phone_number_id cannot be routed: skipped.
        let mut v: Value = serde_json::from_slice(fixture("text")).unwrap();
        v["entry"][0]["changes"][0]["value"]["metadata"] = json!({});
        assert_eq!(parse_webhook(v.to_string().as_bytes()), Ok(vec![]));
    }

    #[test]
    fn channel_webhook_refuses_non_json_foreign_and_huge_bodies() {
        assert!(matches!(
            parse_webhook(b"{\"object\":"),
            Err(WebhookError::NotJson(_))
        ));
        assert!(matches!(parse_webhook(b""), Err(WebhookError::NotJson(_))));
        assert!(matches!(
            parse_webhook(b"\xff\xfe"),
            Err(WebhookError::NotJson(_))
        ));
        for foreign in [
            r#"{"object":"page","entry":[]}"#,
            r#"{"object":"whatsapp_business_account"}"#,
            r#"{"object":"whatsapp_business_account","entry":{}}"#,
            r#"{"entry":[]}"#,
            r#"[1,2,3]"#,
            r#""whatsapp_business_account""#,
            r#"{"contacts":[],"messages":[{"from":"1","id":"x","type":"text"}]}"#,
        ] {
            assert!(
                matches!(
                    parse_webhook(foreign.as_bytes()),
                    Err(WebhookError::NotWhatsApp(_))
                ),
                "{foreign}"
            );
        }
        assert_eq!(
            parse_webhook(br#"{"object":"whatsapp_business_account","entry":[]}"#),
            Ok(vec![])
        );
        // Over 1 MiB: refused before parsing, even if valid JSON.
        let mut huge = br#"{"object":"whatsapp_business_account","entry":[],"pad":""#.to_vec();
        huge.resize(MAX_WEBHOOK_BYTES, b'x');
        huge.extend_from_slice(b"\"}");
        assert_eq!(parse_webhook(&huge), Err(WebhookError::TooLarge));
        // Just under the limit: many messages, all returned.
        let message = r#"{"from":"1","id":"w","timestamp":"1","type":"text","text":{"body":"x"}}"#;
        let n = (MAX_WEBHOOK_BYTES - 400) / (message.len() + 1);
        let body = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"1"}},"messages":[{}]}}}}]}}]}}"#,
            vec![message; n].join(",")
        );
        assert!(body.len() <= MAX_WEBHOOK_BYTES);
        assert_eq!(parse_webhook(body.as_bytes()).unwrap().len(), n);
        // Deep nesting hits serde_json's recursion limit instead of the stack.
        let deep = format!(
            r#"{{"object":"whatsapp_business_account","entry":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(matches!(
            parse_webhook(deep.as_bytes()),
            Err(WebhookError::NotJson(_))
        ));
    }

    /// Tiny deterministic xorshift generator for fuzz-like tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Every node of `v` replaced in turn by each value of another type.
    fn type_mutations(v: &Value) -> Vec<Value> {
        let replacements = [
            json!(null),
            json!(true),
            json!(-1),
            json!(1.5e300),
            json!("x"),
            json!([]),
            json!({}),
        ];
        let mut out: Vec<Value> = replacements.to_vec();
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    for m in type_mutations(item) {
                        let mut copy = v.clone();
                        copy[i] = m;
                        out.push(copy);
                    }
                }
            }
            Value::Object(fields) => {
                for (key, item) in fields {
                    for m in type_mutations(item) {
                        let mut copy = v.clone();
                        copy[key] = m;
                        out.push(copy);
                    }
                }
            }
            _ => {}
        }
        out
    }

    #[test]
    fn channel_webhook_parsing_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for (name, bytes) in FIXTURES {
            // Every truncation.
            for end in 0..bytes.len() {
                let _ = parse_webhook(&bytes[..end]);
            }
            // Random byte flips.
            for _ in 0..200 {
                let mut copy = bytes.to_vec();
                let i = (rng.next() as usize) % copy.len();
                copy[i] = rng.next() as u8;
                let _ = parse_webhook(&copy);
            }
            // Every node replaced by every other JSON type.
            let v: Value = serde_json::from_slice(bytes).unwrap();
            let mutations = type_mutations(&v);
            assert!(mutations.len() > 50, "{name}");
            for m in mutations {
                let _ = parse_webhook(m.to_string().as_bytes());
            }
        }
        // Random bytes, and random bytes behind a valid prefix.
        for _ in 0..2000 {
            let len = (rng.next() % 512) as usize;
            let noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            assert!(parse_webhook(&noise).is_err() || noise.is_empty());
            let mut prefixed = br#"{"object":"whatsapp_business_account","entry":["#.to_vec();
            prefixed.extend_from_slice(&noise);
            let _ = parse_webhook(&prefixed);
        }
    }

    fn choice(id: &str, title: &str) -> Choice {
        Choice {
            id: id.to_owned(),
            title: title.to_owned(),
        }
    }

    #[test]
    fn channel_send_body_for_text_and_callback_data() {
        let body = send_body("16505551234", &Reply::text("Hola"), Some("outbox-7"));
        assert_eq!(
            body,
            json!({
                "messaging_product": "whatsapp", "recipient_type": "individual",
                "to": "16505551234", "type": "text",
                "text": {"body": "Hola", "preview_url": false},
                "biz_opaque_callback_data": "outbox-7",
            })
        );
        let plain = send_body("1", &Reply::text("x"), None);
        assert!(plain.get("biz_opaque_callback_data").is_none());
        assert!(
            send_body("1", &Reply::text("x"), Some(""))
                .get("biz_opaque_callback_data")
                .is_none()
        );
        // Long text and callback data are cut on char boundaries.
        let long = "ñ".repeat(5000);
        let body = send_body("1", &Reply::text(long.clone()), Some(&long));
        assert_eq!(body["text"]["body"].as_str().unwrap().chars().count(), 4096);
        let data = body["biz_opaque_callback_data"].as_str().unwrap();
        assert_eq!((data.len(), data.chars().count()), (512, 256));
        let data = send_body("1", &Reply::text("x"), Some(&format!("a{long}")));
        assert_eq!(
            data["biz_opaque_callback_data"].as_str().unwrap().len(),
            511
        );
    }

    #[test]
    fn channel_send_body_for_media() {
        let media = |kind: &str, caption: Option<&str>| Reply::Media {
            kind: kind.to_owned(),
            url: "https://x.example/a".to_owned(),
            caption: caption.map(str::to_owned),
        };
        for kind in ["image", "video", "document"] {
            let body = send_body("1", &media(kind, Some("Tu pedido")), None);
            assert_eq!(body["type"], kind);
            assert_eq!(
                body[kind],
                json!({"link": "https://x.example/a", "caption": "Tu pedido"})
            );
            let body = send_body("1", &media(kind, None), None);
            assert_eq!(body[kind], json!({"link": "https://x.example/a"}));
        }
        for kind in ["audio", "sticker"] {
            let body = send_body("1", &media(kind, Some("dropped")), None);
            assert_eq!(
                (body["type"].as_str(), &body[kind]),
                (Some(kind), &json!({"link": "https://x.example/a"}))
            );
        }
        let body = send_body("1", &media(" IMAGE ", Some(&"é".repeat(2000))), None);
        assert_eq!(body["type"], "image");
        assert_eq!(
            body["image"]["caption"].as_str().unwrap().chars().count(),
            1024
        );
        // Unknown kinds fall back to text.
        let body = send_body("1", &media("hologram", Some("hi")), None);
        assert_eq!(
            body["text"],
            json!({"body": "[hologram: https://x.example/a] hi", "preview_url": false})
        );
    }

    #[test]
    fn channel_send_body_for_buttons() {
        let reply = Reply::Buttons {
            text: "Pick one".to_owned(),
            buttons: vec![
                choice("yes", "Yes"),
                choice("no", "No, definitely not this time"),
            ],
        };
        assert_eq!(
            send_body("16505551234", &reply, None),
            json!({
                "messaging_product": "whatsapp", "recipient_type": "individual",
                "to": "16505551234", "type": "interactive",
                "interactive": {"type": "button", "body": {"text": "Pick one"},
                 "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                    {"type": "reply", "reply": {"id": "no", "title": "No, definitely not t"}}]}},
            })
        );
        // 4 to 10 options: a list behind "Opciones".
        let many: Vec<Choice> = (1..=10)
            .map(|i| choice(&format!("p{i}"), &format!("Producto número {i} grande")))
            .collect();
        let body = send_body(
            "1",
            &Reply::Buttons {
                text: "¿Qué deseas?".to_owned(),
                buttons: many[..4].to_vec(),
            },
            None,
        );
        assert_eq!(body["interactive"]["type"], "list");
        assert_eq!(body["interactive"]["body"]["text"], "¿Qué deseas?");
        assert_eq!(body["interactive"]["action"]["button"], "Opciones");
        let sections = body["interactive"]["action"]["sections"]
            .as_array()
            .unwrap();
        assert_eq!(sections.len(), 1);
        assert!(sections[0].get("title").is_none());
        assert_eq!(
            sections[0]["rows"][0],
            json!({"id": "p1", "title": "Producto número 1 grande"})
        );
        let body = send_body(
            "1",
            &Reply::Buttons {
                text: String::new(),
                buttons: many.clone(),
            },
            None,
        );
        assert_eq!(
            body["interactive"]["action"]["sections"][0]["rows"]
                .as_array()
                .unwrap()
                .len(),
            10
        );
        assert_eq!(body["interactive"]["body"]["text"], "Elige una opción:");
        assert_eq!(
            body["interactive"]["action"]["sections"][0]["rows"][9]["title"],
            "Producto número 10 grand"
        );
        // More than 10: text listing every option; none: plain text.
        let mut eleven = many;
        eleven.push(choice("p11", "Once"));
        let reply = Reply::Buttons {
            text: "Menú".to_owned(),
            buttons: eleven,
        };
        let body = send_body("1", &reply, None);
        assert_eq!(body["type"], "text");
        assert_eq!(body["text"]["body"], reply.plain_text());
        let body = send_body(
            "1",
            &Reply::Buttons {
                text: "Solo texto".to_owned(),
                buttons: vec![],
            },
            None,
        );
        assert_eq!(
            body["text"],
            json!({"body": "Solo texto", "preview_url": false})
        );
    }

    #[test]
    fn channel_send_body_for_lists() {
        let section = |title: &str, rows: Vec<Choice>| ListSection {
            title: title.to_owned(),
            rows,
        };
        let reply = Reply::List {
            text: "Choose".to_owned(),
            button: "Shipping options for you".to_owned(),
            sections: vec![
                section(
                    "Fast",
                    vec![choice("priority_express", "Priority Mail Express")],
                ),
                section("Empty", vec![]),
                section("", vec![choice("ground", "Ground")]),
            ],
        };
        assert_eq!(
            send_body("16505551234", &reply, Some("c")),
            json!({
                "messaging_product": "whatsapp", "recipient_type": "individual",
                "to": "16505551234", "type": "interactive", "biz_opaque_callback_data": "c",
                "interactive": {"type": "list", "body": {"text": "Choose"},
                 "action": {"button": "Shipping options for", "sections": [
                    {"title": "Fast",
                     "rows": [{"id": "priority_express", "title": "Priority Mail Express"}]},
                    {"title": "Opciones", "rows": [{"id": "ground", "title": "Ground"}]}]}},
            })
        );
        // Empty button label → "Opciones"; no rows → text; > 10 rows → text of every option.
        let one = Reply::List {
            text: "t".to_owned(),
            button: " ".to_owned(),
            sections: vec![section("", vec![choice("a", "A")])],
        };
        let body = send_body("1", &one, None);
        assert_eq!(body["interactive"]["action"]["button"], "Opciones");
        assert!(
            body["interactive"]["action"]["sections"][0]
                .get("title")
                .is_none()
        );
        let empty = Reply::List {
            text: "Nada".to_owned(),
            button: "Ver".to_owned(),
            sections: vec![section("x", vec![])],
        };
        assert_eq!(send_body("1", &empty, None)["text"]["body"], "Nada");
        let rows: Vec<Choice> = (0..11).map(|i| choice(&i.to_string(), "r")).collect();
        let big = Reply::List {
            text: "Muchos".to_owned(),
            button: "Ver".to_owned(),
            sections: vec![
                section("a", rows[..6].to_vec()),
                section("b", rows[6..].to_vec()),
            ],
        };
        let body = send_body("1", &big, None);
        assert_eq!(body["type"], "text");
        assert_eq!(body["text"]["body"], big.plain_text());
    }

    #[test]
    fn channel_sent_message_id_reads_the_wamid() {
        let ok = json!({"messaging_product": "whatsapp",
            "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
            "messages": [{"id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJCOTY3NDc0NDFDRUI3NTA0Q0UA",
                          "message_status": "accepted"}]});
        assert_eq!(
            sent_message_id(&ok).as_deref(),
            Some("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJCOTY3NDc0NDFDRUI3NTA0Q0UA")
        );
        for bad in [
            json!({}),
            json!({"messages": []}),
            json!({"messages": [{"id": ""}]}),
            json!({"messages": [{"id": 5}]}),
            json!({"messages": {"id": "x"}}),
            json!(null),
        ] {
            assert_eq!(sent_message_id(&bad), None, "{bad}");
        }
    }

    fn graph_error(code: i64) -> Vec<u8> {
        json!({"error": {"message": format!("(#{code}) Something"), "type": "OAuthException",
            "code": code, "error_data": {"messaging_product": "whatsapp", "details": "Details."},
            "fbtrace_id": "Akf6LRk1j9htPAuzA5P971E"}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn channel_send_errors_are_classified_by_code_then_status() {
        let retryable = [
            130429, 131056, 4, 80007, 1, 2, 131000, 131016, 131057, 131052, 131053, 133016,
        ];
        for code in retryable {
            for status in [400, 403, 429, 500] {
                assert_eq!(
                    classify_send_error(status, None, &graph_error(code)),
                    SendFailure::Retryable {
                        code: Some(code),
                        message: format!("HTTP {status}: (#{code}) Something — Details."),
                        retry_after_secs: None,
                    },
                    "{code}"
                );
            }
        }
        for code in [131026, 131030, 131047] {
            let got = classify_send_error(400, None, &graph_error(code));
            assert!(
                matches!(got, SendFailure::Permanent { code: Some(c), invalid_recipient: true, auth: false, .. } if c == code),
                "{code}: {got:?}"
            );
        }
        for code in [0, 190, 3, 10, 200, 250, 299] {
            let got = classify_send_error(401, None, &graph_error(code));
            assert!(
                matches!(got, SendFailure::Permanent { code: Some(c), invalid_recipient: false, auth: true, .. } if c == code),
                "{code}: {got:?}"
            );
        }
        let bad_params = [100, 131008, 131009, 132000, 132001, 132012];
        let policy = [368, 131031, 130497, 131042, 131048, 131049];
        for code in bad_params.into_iter().chain(policy) {
            // A known permanent code wins even over a 5xx status.
            for status in [400, 403, 500] {
                let got = classify_send_error(status, None, &graph_error(code));
                assert!(
                    matches!(got, SendFailure::Permanent { code: Some(c), invalid_recipient: false, auth: false, .. } if c == code),
                    "{code} {status}: {got:?}"
                );
            }
        }
        // The real captured example of the notes.
        let captured = br#"{"error":{"message":"(#131030) Recipient phone number not in allowed list","type":"OAuthException","code":131030,"error_subcode":2655007,"error_data":{"messaging_product":"whatsapp","details":"Recipient's phone number is not whitelisted..."},"fbtrace_id":"Akf6LRk1j9htPAuzA5P971E"}}"#;
        assert_eq!(
            classify_send_error(400, None, captured),
            SendFailure::Permanent {
                code: Some(131030),
                message: "HTTP 400: (#131030) Recipient phone number not in allowed list — \
                          Recipient's phone number is not whitelisted..."
                    .to_owned(),
                invalid_recipient: true,
                auth: false,
            }
        );
    }

    #[test]
    fn channel_send_errors_without_a_known_code_use_the_http_status() {
        // 429 with Retry-After.
        assert_eq!(
            classify_send_error(429, Some(" 30 "), b""),
            SendFailure::Retryable {
                code: None,
                message: "HTTP 429".to_owned(),
                retry_after_secs: Some(30),
            }
        );
        assert_eq!(
            classify_send_error(
                429,
                Some("Wed, 21 Oct 2015 07:28:00 GMT"),
                &graph_error(130429)
            ),
            SendFailure::Retryable {
                code: Some(130429),
                message: "HTTP 429: (#130429) Something — Details.".to_owned(),
                retry_after_secs: None,
            }
        );
        // 503 with an HTML body.
        assert_eq!(
            classify_send_error(
                503,
                Some("5"),
                b"<html>\n  <body>Service   Unavailable</body>\n</html>"
            ),
            SendFailure::Retryable {
                code: None,
                message: "HTTP 503: <html> <body>Service Unavailable</body> </html>".to_owned(),
                retry_after_secs: Some(5),
            }
        );
        assert!(classify_send_error(502, None, &[0xff, 0x00, 0x80]).is_retryable());
        assert!(classify_send_error(408, None, b"").is_retryable());
        // 400 with an unknown code: permanent, code kept.
        assert_eq!(
            classify_send_error(400, None, &graph_error(999_999)),
            SendFailure::Permanent {
                code: Some(999_999),
                message: "HTTP 400: (#999999) Something — Details.".to_owned(),
                invalid_recipient: false,
                auth: false,
            }
        );
        // ... unless Graph says it is transient.
        let transient = br#"{"error":{"message":"Temporary","code":999999,"is_transient":true}}"#;
        assert!(classify_send_error(400, None, transient).is_retryable());
        // Code only inside the message; code as a string.
        let in_message = br#"{"error":{"message":"(#131056) Pair rate limit"}}"#;
        assert_eq!(
            classify_send_error(400, Some("6"), in_message),
            SendFailure::Retryable {
                code: Some(131056),
                message: "HTTP 400: (#131056) Pair rate limit".to_owned(),
                retry_after_secs: Some(6),
            }
        );
        let as_string = br#"{"error":{"message":"expired","code":"190"}}"#;
        assert!(matches!(
            classify_send_error(400, None, as_string),
            SendFailure::Permanent {
                code: Some(190),
                auth: true,
                ..
            }
        ));
        // 360dialog: bad key, and its 400 rate limit in the legacy envelope.
        assert!(matches!(
            classify_send_error(401, None, br#"{"meta":{"success":false,"httpCode":401,"developerMessage":"Invalid api key"}}"#),
            SendFailure::Permanent { code: None, auth: true, ref message, .. } if message == "HTTP 401: Invalid api key"
        ));
        let d360_limit = br#"{"meta":{"success":false,"httpCode":400,"developerMessage":"You have exceeded the limit of 1 request every 5 seconds"}}"#;
        assert!(classify_send_error(400, None, d360_limit).is_retryable());
        // Other 4xx and unexpected statuses: permanent; JSON without an error: just the status.
        for status in [400, 404, 413, 422, 200, 302] {
            assert_eq!(
                classify_send_error(status, None, b"{}"),
                SendFailure::Permanent {
                    code: None,
                    message: format!("HTTP {status}"),
                    invalid_recipient: false,
                    auth: false,
                },
                "{status}"
            );
        }
        assert!(matches!(
            classify_send_error(403, None, b""),
            SendFailure::Permanent { auth: true, .. }
        ));
        // Long bodies are cut.
        let long = vec![b'a'; 10_000];
        let SendFailure::Retryable { message, .. } = classify_send_error(500, None, &long) else {
            panic!()
        };
        assert_eq!(message.len(), "HTTP 500: ".len() + 200);
    }

    #[test]
    fn channel_delivery_state_moves_forward_only() {
        use DeliveryState::*;
        assert!(Sent < Delivered && Delivered < Read);
        assert!(Sent.can_advance_to(Delivered));
        assert!(Sent.can_advance_to(Read));
        assert!(Delivered.can_advance_to(Read));
        assert!(!Read.can_advance_to(Delivered));
        assert!(!Delivered.can_advance_to(Sent));
        assert!(!Read.can_advance_to(Read));
        assert!(Sent.can_advance_to(Failed));
        assert!(!Failed.can_advance_to(Delivered));
        assert!(!Failed.can_advance_to(Failed));
        for state in [Sent, Delivered, Read, Failed] {
            assert_eq!(DeliveryState::from_status(state.as_str()), Some(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(serde_json::from_str::<DeliveryState>(&json).unwrap(), state);
        }
        assert_eq!(DeliveryState::from_status("played"), None);
    }
}
