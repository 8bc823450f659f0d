//! The AWS base of ZEngine: settings shared by every AWS client (region, endpoint, credentials
//! by secret reference) and the SDK configuration built from them. [`sns`] sends SMS, [`ses`]
//! templated e-mail, [`s3`] is the S3 file store. Senders are built once per distinct settings
//! and process and kept in a [`ClientCache`]; a failed send says through one [`ErrorKind`]
//! whether a retry can help.
//!
//! An empty `endpoint_url` means real AWS; tests and `zengine dev` point it at moto
//! (`.tools/moto/bin/moto_server`, see `docs/configuration.md`). The SDK's own retries are off:
//! Temporal retries activities, with the policy written next to each call, so one failed
//! attempt is one failed activity attempt.

pub mod s3;
pub mod ses;
pub mod sns;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sns::config::Credentials;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use zengine_storage::secrets::{self, SecretError};

/// Where and as whom to talk to AWS. Deserializes from configuration files and from tenant
/// channel-account settings alike.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsSettings {
    /// AWS region, e.g. `us-east-1`. Empty: from the environment (`AWS_REGION`, profile).
    pub region: String,
    /// Endpoint override (moto, LocalStack, a VPC endpoint). Empty: the real AWS endpoint.
    pub endpoint_url: String,
    /// Secret reference (`env:NAME` or `file:/path`) of the access key id. Empty (with
    /// `secret_access_key` empty too): the SDK's default credential chain (environment,
    /// profile, web identity, container and instance roles).
    pub access_key_id: String,
    /// Secret reference of the secret access key.
    pub secret_access_key: String,
    /// Secret reference of a session token (temporary credentials); empty for none.
    pub session_token: String,
    /// Per-request time limit in milliseconds (connect and read included).
    pub timeout_ms: u64,
}

/// Why an SDK configuration could not be built. Never retryable: a missing secret or a bad
/// setting does not fix itself.
#[derive(Debug, thiserror::Error)]
pub enum AwsConfigError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("aws settings: {0}")]
    Invalid(String),
}

impl AwsSettings {
    /// The SDK configuration: region, endpoint, credentials (static from the secret references,
    /// or the default chain), SDK retries off, a per-request timeout.
    pub async fn sdk_config(&self) -> Result<SdkConfig, AwsConfigError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_millis(self.timeout_ms().min(5_000)))
                    .operation_timeout(Duration::from_millis(self.timeout_ms()))
                    .build(),
            );
        if !self.region.is_empty() {
            loader = loader.region(Region::new(self.region.clone()));
        }
        if !self.endpoint_url.is_empty() {
            if !(self.endpoint_url.starts_with("http://")
                || self.endpoint_url.starts_with("https://"))
            {
                return Err(AwsConfigError::Invalid(format!(
                    "endpoint_url `{}` is not an http(s) URL",
                    self.endpoint_url
                )));
            }
            loader = loader.endpoint_url(self.endpoint_url.clone());
        }
        match (
            self.access_key_id.is_empty(),
            self.secret_access_key.is_empty(),
        ) {
            (true, true) => {}
            (false, false) => {
                let id = secrets::resolve(&self.access_key_id)?;
                let secret = secrets::resolve(&self.secret_access_key)?;
                let token = if self.session_token.is_empty() {
                    None
                } else {
                    Some(
                        secrets::resolve(&self.session_token)?
                            .expose_secret()
                            .to_owned(),
                    )
                };
                loader = loader.credentials_provider(Credentials::new(
                    id.expose_secret(),
                    secret.expose_secret(),
                    token,
                    None,
                    "zengine-settings",
                ));
            }
            _ => {
                return Err(AwsConfigError::Invalid(
                    "set both access_key_id and secret_access_key, or neither".into(),
                ));
            }
        }
        Ok(loader.load().await)
    }

    fn timeout_ms(&self) -> u64 {
        if self.timeout_ms == 0 {
            10_000
        } else {
            self.timeout_ms
        }
    }
}

/// Whether retrying a failed AWS call can help (the SNS and SES senders' errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Throttled, the service failing (5xx), timeout, connection refused: retry later.
    Retryable,
    /// The request is wrong or not allowed (bad recipient or parameters, auth, opted out,
    /// sender not verified, template missing): never.
    Permanent,
}

/// An AWS client built from [`AwsSettings`]: building one resolves secrets and sets up a TLS
/// stack, so a [`ClientCache`] keeps it.
pub trait FromSettings: Clone + Sized {
    /// A client for `settings` (secrets resolved now).
    fn build(
        settings: &AwsSettings,
    ) -> impl std::future::Future<Output = Result<Self, AwsConfigError>> + Send;
}

/// Clients by settings, built once per distinct settings and process.
#[derive(Debug)]
pub struct ClientCache<T> {
    clients: Mutex<HashMap<AwsSettings, T>>,
}

impl<T> Default for ClientCache<T> {
    fn default() -> Self {
        Self {
            clients: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: FromSettings> ClientCache<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The client for `settings`, built on first use.
    pub async fn get(&self, settings: &AwsSettings) -> Result<T, AwsConfigError> {
        if let Some(client) = self.clients.lock().expect("client cache").get(settings) {
            return Ok(client.clone());
        }
        let client = T::build(settings).await?;
        self.clients
            .lock()
            .expect("client cache")
            .insert(settings.clone(), client.clone());
        Ok(client)
    }
}

/// What a failed AWS SDK call says, before each service's classifier decides whether a retry
/// can help (shared by the SNS and SES senders).
pub(crate) struct CallFailure {
    /// The service's error code, or what kind of transport failure it was.
    pub code: Option<String>,
    /// The service's own message (what classifiers match on); the transport error otherwise.
    pub reason: String,
    /// `HTTP {status}: {reason}` for a service answer, the transport error otherwise.
    pub message: String,
    /// The HTTP status of a service answer.
    pub status: Option<u16>,
    /// For failures that are not a service answer: whether retrying can help (a request that
    /// could not be built, e.g. without credentials, cannot; timeouts and dispatch failures can).
    pub transport_retryable: Option<bool>,
}

pub(crate) fn call_failure<E>(
    error: aws_sdk_sns::error::SdkError<E, aws_sdk_sns::config::http::HttpResponse>,
) -> CallFailure
where
    E: aws_sdk_sns::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_sns::error::{DisplayErrorContext, SdkError};
    let transport = |code: Option<&str>, retryable: bool| {
        let text = DisplayErrorContext(&error).to_string();
        CallFailure {
            code: code.map(str::to_owned),
            reason: text.clone(),
            message: text,
            status: None,
            transport_retryable: Some(retryable),
        }
    };
    match &error {
        SdkError::ServiceError(context) => {
            let reason = context.err().message().unwrap_or("no message").to_owned();
            let status = context.raw().status().as_u16();
            CallFailure {
                code: context.err().code().map(str::to_owned),
                message: format!("HTTP {status}: {reason}"),
                reason,
                status: Some(status),
                transport_retryable: None,
            }
        }
        SdkError::ConstructionFailure(_) => transport(Some("ConstructionFailure"), false),
        SdkError::TimeoutError(_) => transport(Some("Timeout"), true),
        SdkError::DispatchFailure(_) => transport(Some("DispatchFailure"), true),
        _ => transport(None, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn half_given_credentials_and_bad_endpoints_are_refused() {
        let half = AwsSettings {
            access_key_id: "env:PATH".into(),
            ..AwsSettings::default()
        };
        assert!(matches!(
            half.sdk_config().await,
            Err(AwsConfigError::Invalid(_))
        ));
        let endpoint = AwsSettings {
            endpoint_url: "127.0.0.1:5000".into(),
            ..AwsSettings::default()
        };
        assert!(matches!(
            endpoint.sdk_config().await,
            Err(AwsConfigError::Invalid(_))
        ));
        let missing = AwsSettings {
            access_key_id: "env:ZENGINE_SURELY_UNSET_KEY".into(),
            secret_access_key: "env:ZENGINE_SURELY_UNSET_KEY".into(),
            ..AwsSettings::default()
        };
        let err = missing.sdk_config().await.unwrap_err().to_string();
        assert_eq!(err, "secret `env:ZENGINE_SURELY_UNSET_KEY` is not set");
    }

    #[tokio::test]
    async fn settings_build_a_config_with_region_and_endpoint() {
        let settings = AwsSettings {
            region: "sa-east-1".into(),
            endpoint_url: "http://127.0.0.1:9".into(),
            ..AwsSettings::default()
        };
        let config = settings.sdk_config().await.unwrap();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("sa-east-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:9"));
    }
}
