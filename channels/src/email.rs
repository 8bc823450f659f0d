//! `ses-email`: conversation replies and notifications as e-mail through Amazon SES v1
//! templates (Handlebars, stored in SES with `CreateTemplate`).
//!
//! Settings are [`SesEmailAccount`] plus the SDK-wide `primary` and `circuit`:
//!
//! ```json
//! {"aws": {"region": "us-east-1"}, "from": "Pedidos <pedidos@example.pe>",
//!  "configuration_set": "zengine-events", "reply_to": ["soporte@example.pe"],
//!  "text_template": "zengine-text",
//!  "templates": {"order_status": {"es": "order-status-es", "en": "order-status-en"},
//!                "welcome": "welcome-all"}}
//! ```
//!
//! - A template reply (`Reply::Template { name, language, parameters, fallback }`) is sent with
//!   the SES template `templates[name]`: a single name, or one per language (the exact code,
//!   then its primary subtag — `es_PE` → `es` —, then `default`). Its data is
//!   `{"template", "language", "parameters": [..], "p1", "p2", …, "text": fallback}`.
//!   A template the account does not map is sent as its `fallback` text when the account has a
//!   `text_template`, and refused (non-retryable) otherwise.
//! - Every other reply is rendered as plain text (buttons and lists as numbered lines, media as
//!   caption and URL, like SMS) and sent with `text_template`, data `{"text"}`.
//! - Secret references in `aws` are resolved by `configure`, so a missing one fails the
//!   delivery at once (`SecretMissing`, naming the reference).
//! - SES has no idempotency key: the outbound log of
//!   [`ChannelActivities`](super::ChannelActivities) keeps one e-mail per `client_message_id`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zengine_domain::{Channel, Reply};

use super::sdk::{
    ConfigError, Health, OutboundConnection, OutboundMessage, OutboundStrategy, SendContext,
    SendError, SendResult, StrategyEnv,
};
use super::sms::sms_text;
use crate::aws::AwsSettings;
use crate::aws::ses::{self, EmailSender, TemplatedEmail};
use crate::aws::{ClientCache, ErrorKind};
use zengine_storage::ChannelAccount;

pub use zengine_domain::channel::strategy::SES_EMAIL;

/// Settings keys every strategy may carry that are not SES's.
const SDK_KEYS: [&str; 2] = ["primary", "circuit"];

/// An SES template for every language, or one per language code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TemplateRef {
    Name(String),
    ByLanguage(BTreeMap<String, String>),
}

/// Settings of a tenant's `ses-email` account (`channel_account.settings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SesEmailAccount {
    pub aws: AwsSettings,
    /// `Source` of every message: a verified address (or of a verified domain).
    pub from: String,
    /// SES configuration set for event publishing (bounces, complaints, rendering failures).
    pub configuration_set: Option<String>,
    pub reply_to: Vec<String>,
    /// SES template for text replies (data `{"text"}`); without it only template replies go.
    pub text_template: Option<String>,
    /// Template reply name → SES template(s).
    pub templates: BTreeMap<String, TemplateRef>,
}

impl SesEmailAccount {
    /// The SES template for template `name` in `language`.
    pub fn template_for(&self, name: &str, language: &str) -> Option<&str> {
        match self.templates.get(name)? {
            TemplateRef::Name(n) => Some(n),
            TemplateRef::ByLanguage(by) => {
                let primary = language.split(['_', '-']).next().unwrap_or(language);
                by.get(language)
                    .or_else(|| by.get(primary))
                    .or_else(|| by.get("default"))
                    .map(String::as_str)
            }
        }
    }
}

/// The SES template and data of a reply, or why it cannot be sent as e-mail.
pub fn email_of(
    account: &SesEmailAccount,
    reply: &Reply,
) -> Result<(String, serde_json::Value), String> {
    let text_with = |text: String| match account.text_template.as_deref() {
        Some(t) if !t.is_empty() => Ok((t.to_owned(), serde_json::json!({ "text": text }))),
        _ => Err(format!(
            "{SES_EMAIL}: the account has no `text_template` for text replies"
        )),
    };
    match reply {
        Reply::Template {
            name,
            language,
            parameters,
            fallback,
        } => match account.template_for(name, language) {
            Some(template) => {
                let mut data = serde_json::json!({
                    "template": name,
                    "language": language,
                    "parameters": parameters,
                    "text": fallback,
                });
                for (i, p) in parameters.iter().enumerate() {
                    data[format!("p{}", i + 1)] = serde_json::Value::String(p.clone());
                }
                Ok((template.to_owned(), data))
            }
            None if !fallback.trim().is_empty() && account.text_template.is_some() => {
                text_with(fallback.clone())
            }
            None => Err(format!(
                "{SES_EMAIL}: template `{name}` ({language}) has no SES template in the account's `templates`"
            )),
        },
        other => text_with(sms_text(other)?),
    }
}

/// The `ses-email` outbound strategy; its clients are shared by every connection it configures.
#[derive(Default)]
pub struct SesEmail {
    senders: Arc<ClientCache<EmailSender>>,
}

struct SesEmailConnection {
    senders: Arc<ClientCache<EmailSender>>,
    account: SesEmailAccount,
}

impl OutboundStrategy for SesEmail {
    fn name(&self) -> &'static str {
        SES_EMAIL
    }

    fn channel(&self) -> Channel {
        Channel::Email
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
        let mut parsed: SesEmailAccount = serde_json::from_value(settings)
            .map_err(|e| ConfigError::invalid(SES_EMAIL, e.to_string()))?;
        // The tenant's `secret:` references become paths in its own folder of the store.
        for reference in [
            &mut parsed.aws.access_key_id,
            &mut parsed.aws.secret_access_key,
            &mut parsed.aws.session_token,
        ] {
            if !reference.is_empty() {
                *reference = zengine_storage::secrets::scoped(&account.tenant_id, reference)?;
            }
        }
        let address = parsed
            .from
            .rsplit_once('<')
            .map_or(parsed.from.as_str(), |(_, a)| a.trim_end_matches('>'))
            .trim();
        if !ses::valid_address(address) {
            return Err(ConfigError::invalid(
                SES_EMAIL,
                "`from` must be an e-mail address (`a@b.c` or `Name <a@b.c>`)",
            ));
        }
        if let Some(bad) = parsed.reply_to.iter().find(|a| !ses::valid_address(a)) {
            return Err(ConfigError::invalid(
                SES_EMAIL,
                format!("`reply_to`: `{bad}` is not an e-mail address"),
            ));
        }
        if parsed.text_template.as_deref() == Some("") {
            return Err(ConfigError::invalid(
                SES_EMAIL,
                "`text_template` must not be empty",
            ));
        }
        // Fail fast on a missing secret (naming the reference): resolving is a file or
        // environment read.
        for reference in [
            &parsed.aws.access_key_id,
            &parsed.aws.secret_access_key,
            &parsed.aws.session_token,
        ] {
            if !reference.is_empty() {
                zengine_storage::secrets::resolve(reference)?;
            }
        }
        Ok(Box::new(SesEmailConnection {
            senders: self.senders.clone(),
            account: parsed,
        }))
    }
}

#[async_trait]
impl OutboundConnection for SesEmailConnection {
    async fn send(
        &self,
        message: &OutboundMessage,
        _ctx: &SendContext,
    ) -> Result<SendResult, SendError> {
        let (template, data) =
            email_of(&self.account, &message.reply).map_err(SendError::rejected)?;
        let sender = self
            .senders
            .get(&self.account.aws)
            .await
            .map_err(|e| SendError::rejected(format!("{SES_EMAIL}: {e}")))?;
        let email = TemplatedEmail {
            to: &message.recipient,
            from: &self.account.from,
            template: &template,
            data: &data,
            configuration_set: self.account.configuration_set.as_deref(),
            reply_to: &self.account.reply_to,
        };
        match sender.send(&email).await {
            Ok(provider_message_id) => Ok(SendResult {
                provider_message_id,
            }),
            Err(e) => Err(match e.kind {
                ErrorKind::Retryable => SendError::retryable(format!("{SES_EMAIL}: {e}")),
                ErrorKind::Permanent => SendError::Rejected {
                    invalid_recipient: e.code.as_deref() == Some("InvalidRecipient"),
                    message: format!("{SES_EMAIL}: {e}"),
                },
            }),
        }
    }

    /// `GetSendQuota`: authenticated, free, and fails when SES is unreachable.
    async fn healthcheck(&self) -> Health {
        let sender = match self.senders.get(&self.account.aws).await {
            Ok(sender) => sender,
            Err(e) => return Health::down(e.to_string()),
        };
        match sender.quota().await {
            Ok((sent, max)) => Health::up(format!("{SES_EMAIL}: {sent}/{max} sent in 24 h")),
            Err(e) => Health::down(format!("{SES_EMAIL}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(settings: serde_json::Value) -> ChannelAccount {
        ChannelAccount {
            strategy: SES_EMAIL.into(),
            account_key: "demo".into(),
            tenant_id: zengine_domain::TenantId::parse("demo").unwrap(),
            settings,
        }
    }

    fn settings() -> SesEmailAccount {
        serde_json::from_value(serde_json::json!({
            "from": "bot@example.pe", "text_template": "text",
            "templates": {"order_status": {"es": "status-es", "en": "status-en", "default": "status-es"},
                          "welcome": "welcome-all"}}))
        .unwrap()
    }

    #[test]
    fn templates_resolve_by_language_then_subtag_then_default() {
        let s = settings();
        assert_eq!(s.template_for("order_status", "en"), Some("status-en"));
        assert_eq!(s.template_for("order_status", "en_US"), Some("status-en"));
        assert_eq!(s.template_for("order_status", "pt_BR"), Some("status-es"));
        assert_eq!(s.template_for("welcome", "fr"), Some("welcome-all"));
        assert_eq!(s.template_for("missing", "es"), None);
    }

    #[test]
    fn replies_become_a_template_and_its_data() {
        let s = settings();
        let (t, data) = email_of(
            &s,
            &Reply::Template {
                name: "order_status".into(),
                language: "es".into(),
                parameters: vec!["A-1".into(), "PAID".into()],
                fallback: "Pedido A-1: pagado".into(),
            },
        )
        .unwrap();
        assert_eq!(t, "status-es");
        assert_eq!(data["p1"], "A-1");
        assert_eq!(data["p2"], "PAID");
        assert_eq!(data["parameters"][1], "PAID");
        assert_eq!(data["text"], "Pedido A-1: pagado");
        let (t, data) = email_of(&s, &Reply::text("hola")).unwrap();
        assert_eq!(
            (t.as_str(), data),
            ("text", serde_json::json!({"text": "hola"}))
        );
        // An unmapped template goes as its fallback text; without a fallback it is refused.
        let unmapped = |fallback: &str| Reply::Template {
            name: "other".into(),
            language: "es".into(),
            parameters: vec![],
            fallback: fallback.into(),
        };
        let (t, data) = email_of(&s, &unmapped("Hola")).unwrap();
        assert_eq!((t.as_str(), data["text"].as_str()), ("text", Some("Hola")));
        assert!(email_of(&s, &unmapped("")).unwrap_err().contains("`other`"));
        let no_text = SesEmailAccount {
            text_template: None,
            ..s
        };
        assert!(
            email_of(&no_text, &Reply::text("hola"))
                .unwrap_err()
                .contains("text_template")
        );
    }

    #[test]
    fn settings_are_validated_and_sdk_keys_allowed() {
        let env = StrategyEnv::new();
        let ok = serde_json::json!({"aws": {"region": "us-east-1"}, "from": "Pedidos <p@example.pe>",
            "primary": true, "circuit": {}, "templates": {"a": "b"}});
        assert!(SesEmail::default().configure(&account(ok), &env).is_ok());
        for bad in [
            serde_json::json!({"from": "not-an-address"}),
            serde_json::json!({}),
            serde_json::json!({"from": "a@example.pe", "reply_to": ["x"]}),
            serde_json::json!({"from": "a@example.pe", "templates": {"a": 1}}),
            serde_json::json!({"from": "a@example.pe", "text_template": ""}),
            serde_json::json!({"from": "a@example.pe", "unknown": 1}),
        ] {
            let e = SesEmail::default()
                .configure(&account(bad.clone()), &env)
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(e.to_string().starts_with("ses-email settings"), "{e}");
        }
        let missing = serde_json::json!({"from": "a@example.pe", "aws": {
            "access_key_id": "env:ZENGINE_SURELY_UNSET_SES", "secret_access_key": "env:ZENGINE_SURELY_UNSET_SES"}});
        let e = SesEmail::default()
            .configure(&account(missing), &env)
            .err()
            .unwrap();
        assert!(matches!(e, ConfigError::Secret(_)), "{e}");
        assert!(e.to_string().contains("env:ZENGINE_SURELY_UNSET_SES"));
    }
}
