//! Canonical messages exchanged between channels and conversations.

use serde::{Deserialize, Serialize};

/// A button, list row or question option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub id: String,
    pub title: String,
}

/// Media in an outgoing message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    /// `image`, `video`, `audio` or `document`.
    pub kind: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
}

/// An interactive list: sections of rows behind a button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMenu {
    /// Label of the button that opens the list.
    pub button: String,
    pub sections: Vec<ListSection>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSection {
    pub title: String,
    pub rows: Vec<Choice>,
}

/// Media a customer sent (a provider media id or a URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InboundMedia {
    pub kind: String,
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// A shared location.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Location {
    #[cfg_attr(feature = "schema", schemars(range(min = -90.0, max = 90.0)))]
    pub lat: f64,
    #[cfg_attr(feature = "schema", schemars(range(min = -180.0, max = 180.0)))]
    pub lon: f64,
}

/// A customer's message as the conversation sees it, whatever the channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// The provider's (or client's) message id; used to deduplicate redeliveries.
    pub message_id: String,
    #[serde(default)]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<InboundMedia>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Id of the button or list row the customer picked, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_id: Option<String>,
}

impl InboundMessage {
    /// A plain text message.
    pub fn text(message_id: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            message_id: message_id.into(),
            text: text.into(),
            media: None,
            location: None,
            reply_id: None,
        }
    }

    /// Whether the message carries anything at all.
    pub fn is_empty(&self) -> bool {
        self.text.trim().is_empty()
            && self.media.is_none()
            && self.location.is_none()
            && self.reply_id.is_none()
    }
}

/// Something the bot says back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Text {
        text: String,
    },
    Media {
        kind: String,
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
    },
    Buttons {
        text: String,
        buttons: Vec<Choice>,
    },
    List {
        text: String,
        button: String,
        sections: Vec<ListSection>,
    },
    /// A pre-approved WhatsApp message template: the only kind of message WhatsApp delivers
    /// outside the 24-hour customer-service window (order notifications, reminders). Channels
    /// without templates send `fallback` as text.
    Template {
        name: String,
        /// Template language code, e.g. `es` or `en_US`.
        language: String,
        /// Values of the body's `{{1}}`, `{{2}}`, … placeholders, in order.
        #[serde(default)]
        parameters: Vec<String>,
        #[serde(default)]
        fallback: String,
    },
}

impl Reply {
    pub fn text(text: impl Into<String>) -> Self {
        Reply::Text { text: text.into() }
    }

    /// The human-readable text of the reply (for transcripts and channels without rich UI).
    pub fn plain_text(&self) -> String {
        match self {
            Reply::Text { text } => text.clone(),
            Reply::Media { kind, url, caption } => match caption {
                Some(c) => format!("[{kind}: {url}] {c}"),
                None => format!("[{kind}: {url}]"),
            },
            Reply::Buttons { text, buttons } => {
                let options: Vec<String> =
                    buttons.iter().map(|b| format!("[{}]", b.title)).collect();
                format!("{text} {}", options.join(" "))
            }
            Reply::List { text, sections, .. } => {
                let mut out = text.clone();
                for s in sections {
                    out.push_str(&format!("\n{}:", s.title));
                    for r in &s.rows {
                        out.push_str(&format!("\n  - {}", r.title));
                    }
                }
                out
            }
            Reply::Template {
                name,
                parameters,
                fallback,
                ..
            } => {
                if fallback.trim().is_empty() {
                    format!("[{name}] {}", parameters.join(" "))
                        .trim_end()
                        .to_owned()
                } else {
                    fallback.clone()
                }
            }
        }
    }
}
