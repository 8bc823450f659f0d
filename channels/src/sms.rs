//! `sns-sms`: conversation replies and notifications as SMS through Amazon SNS.
//!
//! Settings are [`SnsSmsAccount`] (`aws`, `sender_id`, `origination_number`) plus the
//! SDK-wide `primary` and `circuit`; messages are `Transactional`. `configure` only parses them (it is synchronous); the SNS client is built on
//! the first send (secrets resolved then) and shared through a [`ClientCache`](crate::aws::ClientCache) by every account
//! with the same AWS settings.
//!
//! Rendering ([`sms_text`]): text as is; buttons and lists as numbered lines; media as its
//! caption and URL. Templates are WhatsApp-only and rejected (non-retryable).
//! SNS has no idempotency key: the outbound log of
//! [`ChannelActivities`](super::ChannelActivities) keeps one SMS per `client_message_id`.

use std::sync::Arc;

use async_trait::async_trait;
use zengine_domain::{Channel, Reply};

use super::sdk::{
    ConfigError, Health, OutboundConnection, OutboundMessage, OutboundStrategy, SendContext,
    SendError, SendResult, StrategyEnv,
};
use crate::aws::sns::{Sms, SmsSender, SmsType, SnsSmsAccount};
use crate::aws::{ClientCache, ErrorKind};
use zengine_storage::ChannelAccount;

pub use zengine_domain::channel::strategy::SNS_SMS;

/// Settings keys every strategy may carry that are not SNS's.
const SDK_KEYS: [&str; 2] = ["primary", "circuit"];

/// The `sns-sms` outbound strategy; its clients are shared by every connection it configures.
#[derive(Default)]
pub struct SnsSms {
    senders: Arc<ClientCache<SmsSender>>,
}

/// The SMS body of a reply, or why it cannot be sent as SMS.
pub fn sms_text(reply: &Reply) -> Result<String, String> {
    let numbered = |text: &str, titles: Vec<&str>| {
        let mut out = text.trim().to_owned();
        for (i, title) in titles.into_iter().enumerate() {
            out.push_str(&format!("\n{}. {title}", i + 1));
        }
        out
    };
    match reply {
        Reply::Text { text } => Ok(text.clone()),
        Reply::Buttons { text, buttons } => Ok(numbered(
            text,
            buttons.iter().map(|b| b.title.as_str()).collect(),
        )),
        Reply::List { text, sections, .. } => Ok(numbered(
            text,
            sections
                .iter()
                .flat_map(|s| s.rows.iter().map(|r| r.title.as_str()))
                .collect(),
        )),
        Reply::Media { url, caption, .. } => Ok(match caption.as_deref().map(str::trim) {
            Some(c) if !c.is_empty() => format!("{c}\n{url}"),
            _ => url.clone(),
        }),
        Reply::Template { name, .. } => Err(format!(
            "{SNS_SMS}: template `{name}` cannot be sent as SMS (templates are WhatsApp only; send a text reply)"
        )),
    }
}

struct SnsSmsConnection {
    senders: Arc<ClientCache<SmsSender>>,
    account: SnsSmsAccount,
    sms_type: SmsType,
}

impl OutboundStrategy for SnsSms {
    fn name(&self) -> &'static str {
        SNS_SMS
    }

    fn channel(&self) -> Channel {
        Channel::Sms
    }

    fn configure(
        &self,
        account: &ChannelAccount,
        _env: &StrategyEnv,
    ) -> Result<Box<dyn OutboundConnection>, ConfigError> {
        let mut settings = account.settings.clone();
        if let Some(object) = settings.as_object_mut() {
            for key in SDK_KEYS {
                object.remove(key);
            }
        }
        let parsed: SnsSmsAccount = serde_json::from_value(settings)
            .map_err(|e| ConfigError::invalid(SNS_SMS, e.to_string()))?;
        if let Some(sender) = parsed.sender_id.as_deref().filter(|s| !s.is_empty())
            && (sender.len() > 11
                || !sender
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(ConfigError::invalid(
                SNS_SMS,
                "`sender_id` must be 1 to 11 letters, digits or hyphens",
            ));
        }
        if let Some(number) = parsed
            .origination_number
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            zengine_domain::phone::E164::parse(number)
                .map_err(|e| ConfigError::invalid(SNS_SMS, format!("`origination_number`: {e}")))?;
        }
        Ok(Box::new(SnsSmsConnection {
            senders: self.senders.clone(),
            account: parsed,
            sms_type: SmsType::Transactional,
        }))
    }
}

#[async_trait]
impl OutboundConnection for SnsSmsConnection {
    async fn send(
        &self,
        message: &OutboundMessage,
        _ctx: &SendContext,
    ) -> Result<SendResult, SendError> {
        let text = sms_text(&message.reply).map_err(SendError::rejected)?;
        let sender = self
            .senders
            .get(&self.account.aws)
            .await
            .map_err(|e| SendError::rejected(format!("{SNS_SMS}: {e}")))?;
        let sms = Sms {
            to: &message.recipient,
            text: &text,
            sms_type: self.sms_type,
            sender_id: self.account.sender_id.as_deref(),
            origination_number: self.account.origination_number.as_deref(),
        };
        match sender.send(&sms).await {
            Ok(provider_message_id) => Ok(SendResult {
                provider_message_id,
            }),
            Err(e) => Err(match e.kind {
                ErrorKind::Retryable => SendError::retryable(format!("{SNS_SMS}: {e}")),
                ErrorKind::Permanent => SendError::Rejected {
                    invalid_recipient: e.code.as_deref() == Some("InvalidRecipient"),
                    message: format!("{SNS_SMS}: {e}"),
                },
            }),
        }
    }

    /// Builds (or reuses) the client, which resolves the credentials' secret references; no
    /// SNS call is made (SNS has no free authenticated read that works for every account).
    async fn healthcheck(&self) -> Health {
        match self.senders.get(&self.account.aws).await {
            Ok(_) => Health::up(format!("{} client configured", SNS_SMS)),
            Err(e) => Health::down(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zengine_domain::message::{Choice, ListSection};

    fn choice(title: &str) -> Choice {
        Choice {
            id: title.to_lowercase(),
            title: title.into(),
        }
    }

    #[test]
    fn replies_render_as_plain_sms_and_templates_are_refused() {
        assert_eq!(sms_text(&Reply::text("hola")).unwrap(), "hola");
        let buttons = Reply::Buttons {
            text: "Choose".into(),
            buttons: vec![choice("Yes"), choice("No")],
        };
        assert_eq!(sms_text(&buttons).unwrap(), "Choose\n1. Yes\n2. No");
        let list = Reply::List {
            text: "Menu".into(),
            button: "See".into(),
            sections: vec![
                ListSection {
                    title: "A".into(),
                    rows: vec![choice("One")],
                },
                ListSection {
                    title: "B".into(),
                    rows: vec![choice("Two"), choice("Three")],
                },
            ],
        };
        assert_eq!(sms_text(&list).unwrap(), "Menu\n1. One\n2. Two\n3. Three");
        let media = Reply::Media {
            kind: "image".into(),
            url: "https://x.test/a.png".into(),
            caption: Some("Your ticket".into()),
        };
        assert_eq!(
            sms_text(&media).unwrap(),
            "Your ticket\nhttps://x.test/a.png"
        );
        let bare = Reply::Media {
            kind: "image".into(),
            url: "https://x.test/a.png".into(),
            caption: None,
        };
        assert_eq!(sms_text(&bare).unwrap(), "https://x.test/a.png");
        let template = Reply::Template {
            name: "order_ready".into(),
            language: "es".into(),
            parameters: vec![],
            fallback: String::new(),
        };
        assert!(sms_text(&template).unwrap_err().contains("order_ready"));
    }

    fn account(settings: serde_json::Value) -> ChannelAccount {
        ChannelAccount {
            strategy: SNS_SMS.into(),
            account_key: "demo".into(),
            tenant_id: zengine_domain::TenantId::parse("demo").unwrap(),
            settings,
        }
    }

    #[test]
    fn settings_are_validated_and_sdk_keys_allowed() {
        let env = StrategyEnv::new();
        let ok = serde_json::json!({"aws": {"region": "us-east-1"}, "sender_id": "ZEngine",
            "primary": true, "circuit": {}});
        assert!(SnsSms::default().configure(&account(ok), &env).is_ok());
        for bad in [
            serde_json::json!({"aws": {"regoin": "x"}}),
            serde_json::json!({"sender_id": "much-too-long-id"}),
            serde_json::json!({"sender_id": "no spaces"}),
            serde_json::json!({"origination_number": "12345"}),
            serde_json::json!({"unknown": 1}),
        ] {
            let e = SnsSms::default()
                .configure(&account(bad.clone()), &env)
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(e.to_string().starts_with("sns-sms settings"), "{e}");
        }
    }
}
