//! One templated e-mail through Amazon SES **v1** (`SendTemplatedEmail`).
//!
//! - Templates are stored in SES (`CreateTemplate`; Handlebars: `{{var}}`, `{{#if}}`,
//!   `{{#each}}`); a send names the template and passes its data as a JSON string.
//!   SES v1 is used because its templates also work on moto (the SES v2 template calls do not).
//! - The recipient must look like an address (`local@domain`, no spaces, no list); anything
//!   else is refused before any request.
//! - Errors are classified: throttling (`Throttling`, "Maximum sending rate exceeded"), 5xx,
//!   timeouts and connection failures are [`Retryable`](super::ErrorKind::Retryable); an
//!   unverified sender (`MessageRejected`), a missing template or configuration set, bad
//!   parameters, paused sending, auth failures and other 4xx are
//!   [`Permanent`](super::ErrorKind::Permanent).
//! - SES has no idempotency key: callers dedupe (the outbound log of the channel activities).

use aws_config::SdkConfig;
use aws_sdk_ses::config::http::HttpResponse;
use aws_sdk_ses::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ses::types::Destination;

use super::{AwsConfigError, AwsSettings, ErrorKind};

/// One templated message to send.
#[derive(Debug, Clone, Copy)]
pub struct TemplatedEmail<'a> {
    pub to: &'a str,
    /// `Source`: a verified address or an address of a verified domain (`Name <a@b>` allowed).
    pub from: &'a str,
    /// The SES template's name.
    pub template: &'a str,
    /// The template's data, a JSON object.
    pub data: &'a serde_json::Value,
    /// SES configuration set (event publishing: bounces, complaints, rendering failures).
    pub configuration_set: Option<&'a str>,
    pub reply_to: &'a [String],
}

/// A failed send: its kind, SES's error code when there is one, and a message that never
/// contains the template data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ses send failed ({kind:?}{}): {message}", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
pub struct EmailError {
    pub kind: ErrorKind,
    pub code: Option<String>,
    pub message: String,
}

impl EmailError {
    fn permanent(code: &str, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Permanent,
            code: Some(code.to_owned()),
            message: message.into(),
        }
    }
}

/// Whether `address` is a single plausible e-mail address (`local@domain.tld`).
pub fn valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && address.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | ';' | '<' | '>'))
        && !local.contains('@')
}

/// Classifies an SES error by its code, message and HTTP status.
pub fn classify(code: Option<&str>, message: &str, http_status: Option<u16>) -> ErrorKind {
    let message = message.to_ascii_lowercase();
    if message.contains("maximum sending rate exceeded") {
        return ErrorKind::Retryable;
    }
    match code {
        Some(
            "Throttling"
            | "ThrottlingException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "ServiceUnavailable"
            | "InternalFailure"
            | "InternalError",
        ) => ErrorKind::Retryable,
        Some(
            "MessageRejected"
            | "MailFromDomainNotVerifiedException"
            | "MailFromDomainNotVerified"
            | "TemplateDoesNotExist"
            | "ConfigurationSetDoesNotExist"
            | "ConfigurationSetSendingPausedException"
            | "AccountSendingPausedException"
            | "InvalidParameterValue"
            | "InvalidRenderingParameterException"
            | "MissingRenderingAttributeException"
            | "ValidationError"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "AccessDenied"
            | "AccessDeniedException",
        ) => ErrorKind::Permanent,
        _ => match http_status {
            Some(429) => ErrorKind::Retryable,
            Some(s) if (400..500).contains(&s) => ErrorKind::Permanent,
            _ => ErrorKind::Retryable,
        },
    }
}

/// Sends e-mail through one SES client.
#[derive(Debug, Clone)]
pub struct EmailSender {
    client: aws_sdk_ses::Client,
}

impl EmailSender {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_ses::Client::new(config),
        }
    }

    /// A sender for `settings` (secrets resolved now).
    pub async fn from_settings(settings: &AwsSettings) -> Result<Self, AwsConfigError> {
        Ok(Self::new(&settings.sdk_config().await?))
    }

    /// The SES client (template administration in tools and tests).
    pub fn client(&self) -> &aws_sdk_ses::Client {
        &self.client
    }

    /// Sends one templated e-mail; returns SES's `MessageId`.
    pub async fn send(&self, email: &TemplatedEmail<'_>) -> Result<String, EmailError> {
        if !valid_address(email.to) {
            return Err(EmailError::permanent(
                "InvalidRecipient",
                "the recipient is not an e-mail address",
            ));
        }
        if !email.data.is_object() {
            return Err(EmailError::permanent(
                "InvalidParameterValue",
                "template data must be a JSON object",
            ));
        }
        let mut request = self
            .client
            .send_templated_email()
            .source(email.from)
            .destination(Destination::builder().to_addresses(email.to).build())
            .template(email.template)
            .template_data(email.data.to_string());
        if let Some(set) = email.configuration_set.filter(|s| !s.is_empty()) {
            request = request.configuration_set_name(set);
        }
        for address in email.reply_to {
            request = request.reply_to_addresses(address);
        }
        match request.send().await {
            Ok(output) if !output.message_id().is_empty() => Ok(output.message_id().to_owned()),
            Ok(_) => Err(EmailError {
                kind: ErrorKind::Retryable,
                code: None,
                message: "SES answered without a MessageId".into(),
            }),
            Err(error) => Err(email_error(error)),
        }
    }

    /// A cheap authenticated read (`GetSendQuota`): the sending quota of the account.
    pub async fn quota(&self) -> Result<(f64, f64), EmailError> {
        match self.client.get_send_quota().send().await {
            Ok(quota) => Ok((quota.sent_last24_hours, quota.max24_hour_send)),
            Err(error) => Err(email_error(error)),
        }
    }
}

fn email_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    error: SdkError<E, HttpResponse>,
) -> EmailError {
    let failure = super::call_failure(error);
    let kind = match failure.transport_retryable {
        Some(true) => ErrorKind::Retryable,
        Some(false) => ErrorKind::Permanent,
        None => classify(failure.code.as_deref(), &failure.reason, failure.status),
    };
    EmailError {
        kind,
        code: failure.code,
        message: failure.message,
    }
}

impl super::FromSettings for EmailSender {
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
    fn errors_are_classified_by_code_message_then_status() {
        use ErrorKind::*;
        assert_eq!(
            classify(
                Some("MessageRejected"),
                "Email address not verified a@b.pe",
                Some(400)
            ),
            Permanent
        );
        assert_eq!(
            classify(
                Some("TemplateDoesNotExist"),
                "Template (x) does not exist",
                Some(400)
            ),
            Permanent
        );
        assert_eq!(
            classify(Some("Throttling"), "Rate exceeded", Some(400)),
            Retryable
        );
        // SES reports its sending-rate limit as MessageRejected-like 400s with this text.
        assert_eq!(
            classify(None, "Maximum sending rate exceeded.", Some(400)),
            Retryable
        );
        assert_eq!(classify(Some("Unknown"), "", Some(503)), Retryable);
        assert_eq!(classify(Some("Unknown"), "", Some(429)), Retryable);
        assert_eq!(classify(Some("Unknown"), "", Some(403)), Permanent);
        assert_eq!(classify(None, "", None), Retryable);
    }

    #[test]
    fn only_single_plausible_addresses_are_recipients() {
        for ok in ["ana@example.pe", "a.b+c@mail.example.com"] {
            assert!(valid_address(ok), "{ok}");
        }
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.pe",
            "ana@localhost",
            "ana@example.pe, eve@example.pe",
            "Ana <ana@example.pe>",
            "ana @example.pe",
            "ana@.pe",
        ] {
            assert!(!valid_address(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn bad_recipients_are_refused_before_any_request() {
        // A closed port: reaching it would be a retryable dispatch failure.
        let sender = EmailSender::from_settings(&AwsSettings {
            region: "us-east-1".into(),
            endpoint_url: "http://127.0.0.1:9".into(),
            ..AwsSettings::default()
        })
        .await
        .unwrap();
        let data = serde_json::json!({});
        let email = TemplatedEmail {
            to: "987654321",
            from: "bot@example.pe",
            template: "t",
            data: &data,
            configuration_set: None,
            reply_to: &[],
        };
        let e = sender.send(&email).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert_eq!(e.code.as_deref(), Some("InvalidRecipient"));
    }
}
