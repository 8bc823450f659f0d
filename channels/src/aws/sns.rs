//! One SMS through Amazon SNS (`Publish` with `PhoneNumber`).
//!
//! - The recipient must be E.164; anything else is refused before any request.
//! - The SMS type (`AWS.SNS.SMS.SMSType`), sender id and origination number travel as
//!   per-message attributes. `SetSMSAttributes` is never called per message: it changes account
//!   defaults and has a far lower rate limit.
//! - Errors are classified: throttling, 5xx, timeouts and connection failures are
//!   [`Retryable`](super::ErrorKind::Retryable); bad parameters (`InvalidParameter`, a message
//!   over SNS's 1600-byte limit), `AuthorizationError`, opted-out numbers and other 4xx are
//!   [`Permanent`](super::ErrorKind::Permanent).
//! - SNS has no idempotency key: callers dedupe (the assistance activities keep an outbound
//!   record per recipient and logical send, `outbound_message`).

use aws_config::SdkConfig;
use aws_sdk_sns::config::http::HttpResponse;
use aws_sdk_sns::error::SdkError;
use aws_sdk_sns::operation::publish::PublishError;
use aws_sdk_sns::types::MessageAttributeValue;
use serde::{Deserialize, Serialize};
use zengine_domain::phone::E164;

use super::{AwsConfigError, AwsSettings, ErrorKind};

// A tenant's `sns-sms` channel account (`zengine_domain::channel::strategy::SNS_SMS`) holds an
// [`SnsSmsAccount`] as its settings.

/// Settings of a tenant's `sns-sms` account (`channel_account.settings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnsSmsAccount {
    pub aws: AwsSettings,
    /// `AWS.SNS.SMS.SenderID` for every message of the account (alphanumeric, ≤ 11).
    pub sender_id: Option<String>,
    /// `AWS.MM.SMS.OriginationNumber` (an E.164 long code, toll-free or 10DLC number).
    pub origination_number: Option<String>,
}

/// `AWS.SNS.SMS.SMSType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SmsType {
    /// Critical messages (one-time codes, alerts): optimised for delivery.
    #[default]
    Transactional,
    /// Marketing: optimised for cost.
    Promotional,
}

impl SmsType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transactional => "Transactional",
            Self::Promotional => "Promotional",
        }
    }
}

impl std::str::FromStr for SmsType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Transactional" => Ok(Self::Transactional),
            "Promotional" => Ok(Self::Promotional),
            other => Err(format!(
                "`{other}` is not an SMS type (Transactional, Promotional)"
            )),
        }
    }
}

/// One message to send.
#[derive(Debug, Clone, Copy)]
pub struct Sms<'a> {
    /// E.164 recipient.
    pub to: &'a str,
    pub text: &'a str,
    pub sms_type: SmsType,
    pub sender_id: Option<&'a str>,
    pub origination_number: Option<&'a str>,
}

/// A failed send: its kind, SNS's error code when there is one, and a message that never
/// contains the text of the SMS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sns publish failed ({kind:?}{}): {message}", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
pub struct SmsError {
    pub kind: ErrorKind,
    pub code: Option<String>,
    pub message: String,
}

impl SmsError {
    fn permanent(code: &str, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Permanent,
            code: Some(code.to_owned()),
            message: message.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Retryable
    }
}

/// Classifies an SNS error by its code and HTTP status.
pub fn classify(code: Option<&str>, message: &str, http_status: Option<u16>) -> ErrorKind {
    let message = message.to_ascii_lowercase();
    if message.contains("opted out") || message.contains("opted-out") {
        return ErrorKind::Permanent;
    }
    match code {
        Some(
            "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "InternalError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "KMSThrottling",
        ) => ErrorKind::Retryable,
        Some(
            "InvalidParameter"
            | "InvalidParameterValue"
            | "ParameterValueInvalid"
            | "AuthorizationError"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "InvalidSecurity"
            | "EndpointDisabled"
            | "ValidationError"
            | "ValidationException"
            | "OptedOut"
            | "NotFound"
            | "KMSAccessDenied"
            | "KMSDisabled",
        ) => ErrorKind::Permanent,
        _ => match http_status {
            Some(429) => ErrorKind::Retryable,
            Some(s) if (400..500).contains(&s) => ErrorKind::Permanent,
            _ => ErrorKind::Retryable,
        },
    }
}

/// Sends SMS through one SNS client.
#[derive(Debug, Clone)]
pub struct SmsSender {
    client: aws_sdk_sns::Client,
}

impl SmsSender {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_sns::Client::new(config),
        }
    }

    /// A sender for `settings` (secrets resolved now).
    pub async fn from_settings(settings: &AwsSettings) -> Result<Self, AwsConfigError> {
        Ok(Self::new(&settings.sdk_config().await?))
    }

    /// Sends one SMS; returns SNS's `MessageId`.
    pub async fn send(&self, sms: &Sms<'_>) -> Result<String, SmsError> {
        let to = E164::parse(sms.to)
            .map_err(|e| SmsError::permanent("InvalidRecipient", e.to_string()))?;
        if sms.text.trim().is_empty() {
            return Err(SmsError::permanent("EmptyMessage", "the SMS text is empty"));
        }
        let string = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| SmsError::permanent("InvalidParameter", e.to_string()))
        };
        let mut request = self
            .client
            .publish()
            .phone_number(to.as_str())
            .message(sms.text)
            .message_attributes("AWS.SNS.SMS.SMSType", string(sms.sms_type.as_str())?);
        if let Some(sender) = sms.sender_id.filter(|s| !s.is_empty()) {
            request = request.message_attributes("AWS.SNS.SMS.SenderID", string(sender)?);
        }
        if let Some(number) = sms.origination_number.filter(|s| !s.is_empty()) {
            request = request.message_attributes("AWS.MM.SMS.OriginationNumber", string(number)?);
        }
        match request.send().await {
            Ok(output) => output.message_id.ok_or_else(|| SmsError {
                kind: ErrorKind::Retryable,
                code: None,
                message: "SNS answered without a MessageId".into(),
            }),
            Err(error) => Err(sms_error(error)),
        }
    }
}

fn sms_error(error: SdkError<PublishError, HttpResponse>) -> SmsError {
    let failure = super::call_failure(error);
    let kind = match failure.transport_retryable {
        Some(true) => ErrorKind::Retryable,
        Some(false) => ErrorKind::Permanent,
        None => classify(failure.code.as_deref(), &failure.reason, failure.status),
    };
    SmsError {
        kind,
        code: failure.code,
        message: failure.message,
    }
}

impl super::FromSettings for SmsSender {
    fn build(
        settings: &AwsSettings,
    ) -> impl std::future::Future<Output = Result<Self, AwsConfigError>> + Send {
        Self::from_settings(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_code_then_status() {
        use ErrorKind::*;
        assert_eq!(
            classify(Some("Throttling"), "Rate exceeded", Some(400)),
            Retryable
        );
        assert_eq!(classify(Some("InternalError"), "", Some(500)), Retryable);
        assert_eq!(
            classify(
                Some("InvalidParameter"),
                "Phone number does not meet the E164 format",
                Some(400)
            ),
            Permanent
        );
        assert_eq!(
            classify(Some("AuthorizationError"), "", Some(403)),
            Permanent
        );
        assert_eq!(
            classify(
                Some("InvalidParameter"),
                "Phone number is opted out",
                Some(400)
            ),
            Permanent
        );
        assert_eq!(classify(None, "phone number opted out", None), Permanent);
        assert_eq!(classify(Some("Unknown"), "", Some(503)), Retryable);
        assert_eq!(classify(Some("Unknown"), "", Some(429)), Retryable);
        assert_eq!(classify(Some("Unknown"), "", Some(404)), Permanent);
        assert_eq!(classify(None, "", None), Retryable);
    }

    #[test]
    fn sms_types_parse_and_the_error_text_names_kind_and_code() {
        assert_eq!("Promotional".parse::<SmsType>(), Ok(SmsType::Promotional));
        assert!("promotional".parse::<SmsType>().is_err());
        let e = SmsError::permanent("InvalidRecipient", "bad");
        assert_eq!(
            e.to_string(),
            "sns publish failed (Permanent, InvalidRecipient): bad"
        );
    }

    #[tokio::test]
    async fn recipients_that_are_not_e164_are_refused_before_any_request() {
        // The endpoint is a closed port: reaching it would be a retryable dispatch failure.
        let sender = SmsSender::from_settings(&AwsSettings {
            region: "us-east-1".into(),
            endpoint_url: "http://127.0.0.1:9".into(),
            ..AwsSettings::default()
        })
        .await
        .unwrap();
        let sms = Sms {
            to: "987654321",
            text: "hola",
            sms_type: SmsType::Transactional,
            sender_id: None,
            origination_number: None,
        };
        let e = sender.send(&sms).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert_eq!(e.code.as_deref(), Some("InvalidRecipient"));
    }
}
