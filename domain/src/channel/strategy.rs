//! The names of the channel strategies: the `strategy` of a tenant's channel account, of a
//! breaker, a dead letter and a health record. They are stored, so they never change; the
//! connectors (`zengine-activities::channels`, `::aws`) and the seed data all name these.

/// The web chat widget (`POST /v1/webchat/messages`).
pub const WEBCHAT_HTTP: &str = "webchat-http";
/// Meta's WhatsApp Business Cloud API.
pub const WHATSAPP_META_CLOUD: &str = "whatsapp-meta-cloud";
/// 360dialog's WhatsApp Cloud API (a Meta business solution provider).
pub const WHATSAPP_360DIALOG: &str = "whatsapp-360dialog";
/// 360dialog's template management (list / create / delete) and template sends.
pub const DIALOG360_TEMPLATES: &str = "360dialog-templates";
/// Amazon Connect chat (participant service and streaming).
pub const AMAZON_CONNECT_CHAT: &str = "amazon-connect-chat";
/// Five9 digital engagement.
pub const FIVE9_DIGITAL: &str = "five9-digital";
/// SMS through Amazon SNS.
pub const SNS_SMS: &str = "sns-sms";
/// E-mail through Amazon SES.
pub const SES_EMAIL: &str = "ses-email";
