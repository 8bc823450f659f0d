//! Channel connectors: the connector SDK ([`sdk`]), the strategies, the AWS clients they and
//! the attachment store use ([`aws`], [`files`]), the outbound guard every tenant-steered HTTP
//! call goes through ([`outbound`]) and the domain metrics ([`meter`]). The Temporal activities
//! that deliver replies through the strategies are `zengine_activities::channels`; the
//! database they read is `zengine-storage`.
//!
//!
//! # The strategies
//!
//! | name | channel | module |
//! |---|---|---|
//! | `whatsapp-meta-cloud` | whatsapp | [`whatsapp`] |
//! | `whatsapp-360dialog` | whatsapp | [`whatsapp`] |
//! | `360dialog-templates` | whatsapp (templates only) | [`whatsapp`] |
//! | `five9-digital` | five9 | [`five9`] |
//! | `amazon-connect-chat` | amazon-connect | [`connect`] |
//! | `sns-sms` | sms (Amazon SNS) | [`sms`] |
//! | `ses-email` | email (Amazon SES v1 templates) | [`email`] |
//! | `webchat-http` | webchat (replies in the update result) | [`webchat`] |

pub mod aws;
pub mod connect;
pub mod email;
pub mod files;
pub mod five9;
pub mod meter;
pub mod outbound;
pub mod sdk;
pub mod sms;
pub mod webchat;
pub mod whatsapp;

use std::collections::BTreeMap;
use std::sync::Arc;

use sdk::{InboundStrategy, OutboundStrategy};
use zengine_storage::ChannelAccount;

pub use whatsapp::{DIALOG360_TEMPLATES, WHATSAPP_360DIALOG, WHATSAPP_META_CLOUD};

/// Every strategy this build knows, by name.
#[derive(Clone)]
pub struct Registry {
    outbound: BTreeMap<&'static str, Arc<dyn OutboundStrategy>>,
    inbound: BTreeMap<&'static str, Arc<dyn InboundStrategy>>,
}

/// Deployment-wide inputs of the inbound strategies.
#[derive(Clone, Default)]
pub struct InboundOptions {
    /// Meta app secret (signs every WhatsApp Cloud API webhook); empty disables that ingress.
    pub whatsapp_app_secret: secrecy::SecretString,
    /// Guards the calls inbound strategies make to URLs a message names (SNS certificates and
    /// subscription confirmations); strict by default.
    pub outbound: crate::outbound::OutboundGuard,
}

impl Registry {
    /// The standard strategies.
    pub fn standard(options: InboundOptions) -> Self {
        let mut registry = Registry {
            outbound: BTreeMap::new(),
            inbound: BTreeMap::new(),
        };
        registry.add_outbound(Arc::new(whatsapp::MetaCloud));
        registry.add_outbound(Arc::new(whatsapp::Dialog360::messages()));
        registry.add_outbound(Arc::new(whatsapp::Dialog360::templates()));
        registry.add_outbound(Arc::new(webchat::WebchatHttp));
        registry.add_outbound(Arc::new(five9::Five9::default()));
        registry.add_outbound(Arc::new(connect::AmazonConnect));
        registry.add_outbound(Arc::new(sms::SnsSms::default()));
        registry.add_outbound(Arc::new(email::SesEmail::default()));
        registry.add_inbound(Arc::new(whatsapp::MetaCloudInbound::new(
            options.whatsapp_app_secret,
        )));
        registry.add_inbound(Arc::new(whatsapp::Dialog360Inbound));
        registry.add_inbound(Arc::new(five9::Five9Inbound));
        registry.add_inbound(Arc::new(connect::AmazonConnectInbound::new(
            options.outbound,
        )));
        registry
    }

    pub fn add_outbound(&mut self, strategy: Arc<dyn OutboundStrategy>) {
        self.outbound.insert(strategy.name(), strategy);
    }

    pub fn add_inbound(&mut self, strategy: Arc<dyn InboundStrategy>) {
        self.inbound.insert(strategy.slug(), strategy);
    }

    /// The outbound strategy named `name`.
    pub fn outbound(&self, name: &str) -> Option<&Arc<dyn OutboundStrategy>> {
        self.outbound.get(name)
    }

    /// The inbound strategy serving `POST /v1/webhooks/{slug}`.
    pub fn inbound(&self, slug: &str) -> Option<&Arc<dyn InboundStrategy>> {
        self.inbound.get(slug)
    }

    /// Names of the outbound strategies.
    pub fn outbound_names(&self) -> Vec<&'static str> {
        self.outbound.keys().copied().collect()
    }

    /// The strategy that serves conversations on `channel` for these accounts of a tenant:
    /// the account marked `"primary": true`, else the first by name. Template-only strategies
    /// never serve conversations.
    pub fn for_channel<'a>(
        &self,
        channel: &str,
        accounts: &'a [ChannelAccount],
    ) -> Option<&'a ChannelAccount> {
        let mut serving: Vec<&ChannelAccount> = accounts
            .iter()
            .filter(|a| a.strategy != DIALOG360_TEMPLATES)
            .filter(|a| {
                self.outbound(&a.strategy)
                    .is_some_and(|s| s.channel().as_str() == channel)
            })
            .collect();
        serving.sort_by(|a, b| a.strategy.cmp(&b.strategy));
        serving
            .iter()
            .find(|a| a.settings.get("primary") == Some(&serde_json::Value::Bool(true)))
            .or(serving.first())
            .copied()
    }
}
