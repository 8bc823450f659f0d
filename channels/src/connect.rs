//! `amazon-connect-chat`: ZEngine as a bot participant in Amazon Connect chats.
//!
//! The pattern is Amazon Connect's "bring your own bot": the contact flow adds a `CUSTOM_BOT`
//! participant to the chat (`CreateParticipant`, from a Lambda with IAM rights) and registers
//! its participant token with ZEngine (`POST /v1/channels/amazon-connect/contacts`); the
//! instance streams the chat's messages to an SNS topic (`StartContactStreaming`) subscribed to
//! our HTTPS webhook.
//!
//! - **Inbound** `POST /v1/webhooks/amazon-connect/{tenant}`: SNS HTTP deliveries. The topic
//!   must be the account's (`account_key` = topic ARN); the signature is verified (SignatureVersion
//!   1 = SHA1withRSA, 2 = SHA256withRSA) with the certificate at `SigningCertURL`, which must
//!   start with the account's `cert_url_prefix` (default `https://sns.{region}.amazonaws.com/`;
//!   a test points it at a loopback server serving a locally generated certificate); messages
//!   older than `max_age_secs` (default 3600) are refused. A `SubscriptionConfirmation` is
//!   confirmed by fetching its `SubscribeURL` (same prefix rule). In notifications, chat
//!   `MESSAGE`s from the `CUSTOMER` become messages of `{tenant}/conversation/amazon-connect/
//!   {InitialContactId}`; agents', system and our own bot's messages and all events are ignored.
//! - **Outbound**: the participant service (bearer tokens, no SigV4):
//!   `POST /participant/connection` (participant token → connection token, cached in the
//!   database until it expires) then `POST /participant/message` with
//!   `ClientToken` = our `client_message_id`, so Amazon Connect itself deduplicates a retried
//!   send. An `AccessDeniedException` on send refreshes the connection once.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde_json::{Value, json};
use sha2::Digest;
use x509_cert::der::{DecodePem, Encode};
use zengine_domain::Channel;
use zengine_domain::channel::connect;

use super::sdk::{
    ConfigError, Health, InboundError, InboundEvent, InboundRequest, InboundStrategy,
    OutboundConnection, OutboundMessage, OutboundStrategy, SendContext, SendError, SendResult,
    StrategyEnv, Verified, classify_http, excerpt, retry_after, setting_or, transport_error,
};
use zengine_storage::Database;
use zengine_storage::{ChannelAccount, now_millis};

pub use zengine_domain::channel::strategy::AMAZON_CONNECT_CHAT;
/// Longest `text/plain` content the participant service accepts, in characters.
const MAX_CONTENT_CHARS: usize = 1024;
/// Longest `ClientToken`.
const MAX_CLIENT_TOKEN: usize = 500;

fn region(account: &ChannelAccount) -> &str {
    setting_or(account, "region", "us-east-1")
}

fn participant_endpoint(account: &ChannelAccount) -> String {
    let default = format!(
        "https://participant.connect.{}.amazonaws.com",
        region(account)
    );
    setting_or(account, "participant_endpoint", &default)
        .trim_end_matches('/')
        .to_owned()
}

fn sns_prefix(account: &ChannelAccount, field: &str) -> String {
    let default = format!("https://sns.{}.amazonaws.com/", region(account));
    setting_or(account, field, &default).to_owned()
}

/// A `ClientToken` for our id (hashed when longer than the service allows).
pub fn client_token(client_message_id: &str) -> String {
    if client_message_id.len() <= MAX_CLIENT_TOKEN {
        client_message_id.to_owned()
    } else {
        hex::encode(sha2::Sha256::digest(client_message_id.as_bytes()))
    }
}

/// The `amazon-connect-chat` outbound strategy. Settings: `region` (default `us-east-1`),
/// `participant_endpoint` (default `https://participant.connect.{region}.amazonaws.com`),
/// `cert_url_prefix` / `subscribe_url_prefix` (inbound, default
/// `https://sns.{region}.amazonaws.com/`), `max_age_secs` (inbound, default 3600).
pub struct AmazonConnect;

struct ConnectConnection {
    http: crate::outbound::OutboundClient,
    db: Database,
    endpoint: String,
    tenant: zengine_domain::TenantId,
}

enum Sent {
    Ok(SendResult),
    Denied,
}

impl ConnectConnection {
    /// A connection token for the contact, creating the participant connection when there is
    /// none or it expired.
    async fn connection_token(&self, contact: &str, refresh: bool) -> Result<String, SendError> {
        let participant = self
            .db
            .channels()
            .connect_participant(&self.tenant, contact)
            .await
            .map_err(|e| SendError::retryable(format!("{AMAZON_CONNECT_CHAT}: {e:#}")))?
            .ok_or_else(|| SendError::Rejected {
                message: format!(
                    "{AMAZON_CONNECT_CHAT}: contact {contact} has no registered bot participant"
                ),
                invalid_recipient: true,
            })?;
        // A minute of margin: a token about to expire may die in flight.
        if !refresh
            && let Some(token) = participant
                .connection_token
                .filter(|_| participant.connection_expires_at > now_millis() + 60_000)
        {
            return Ok(token);
        }
        let response = self
            .http
            .post(&format!("{}/participant/connection", self.endpoint))?
            .header("x-amz-bearer", &participant.participant_token)
            .json(&json!({"Type": ["CONNECTION_CREDENTIALS"], "ConnectParticipant": true}))
            .send()
            .await
            .map_err(|e| transport_error(AMAZON_CONNECT_CHAT, e))?;
        let status = response.status();
        let hint = retry_after(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(AMAZON_CONNECT_CHAT, e))?;
        if !status.is_success() {
            return Err(classify_http(
                AMAZON_CONNECT_CHAT,
                status,
                hint,
                &format!("CreateParticipantConnection: {}", aws_message(&bytes)),
            ));
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let credentials = &body["ConnectionCredentials"];
        let token = credentials["ConnectionToken"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                SendError::retryable(format!(
                    "{AMAZON_CONNECT_CHAT}: CreateParticipantConnection answered without a token"
                ))
            })?;
        let expires = credentials["Expiry"]
            .as_str()
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
            .map_or(now_millis() + 3_600_000, |e| e.timestamp_millis());
        self.db
            .channels()
            .store_connect_connection(&self.tenant, contact, token, expires)
            .await
            .map_err(|e| SendError::retryable(format!("{AMAZON_CONNECT_CHAT}: {e:#}")))?;
        Ok(token.to_owned())
    }

    async fn post(&self, token: &str, message: &OutboundMessage) -> Result<Sent, SendError> {
        let text: String = message
            .reply
            .plain_text()
            .chars()
            .take(MAX_CONTENT_CHARS)
            .collect();
        let response = self
            .http
            .post(&format!("{}/participant/message", self.endpoint))?
            .header("x-amz-bearer", token)
            .json(&json!({
                "ContentType": "text/plain",
                "Content": text,
                "ClientToken": client_token(&message.client_message_id),
            }))
            .send()
            .await
            .map_err(|e| transport_error(AMAZON_CONNECT_CHAT, e))?;
        let status = response.status();
        let hint = retry_after(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(AMAZON_CONNECT_CHAT, e))?;
        if status.is_success() {
            let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let id = body["Id"]
                .as_str()
                .filter(|i| !i.is_empty())
                .ok_or_else(|| {
                    SendError::retryable(format!("{AMAZON_CONNECT_CHAT}: SendMessage without Id"))
                })?;
            return Ok(Sent::Ok(SendResult {
                provider_message_id: id.to_owned(),
            }));
        }
        if status.as_u16() == 403 {
            return Ok(Sent::Denied);
        }
        Err(classify_http(
            AMAZON_CONNECT_CHAT,
            status,
            hint,
            &aws_message(&bytes),
        ))
    }
}

/// `{"message": …}` / `{"Message": …}` of an AWS REST-JSON error.
fn aws_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("Message"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| excerpt(body))
}

#[async_trait]
impl OutboundConnection for ConnectConnection {
    async fn send(
        &self,
        message: &OutboundMessage,
        _ctx: &SendContext,
    ) -> Result<SendResult, SendError> {
        let token = self.connection_token(&message.recipient, false).await?;
        if let Sent::Ok(sent) = self.post(&token, message).await? {
            return Ok(sent);
        }
        // The connection token expired or was revoked: one fresh connection, one more try.
        let token = self.connection_token(&message.recipient, true).await?;
        match self.post(&token, message).await? {
            Sent::Ok(sent) => Ok(sent),
            Sent::Denied => Err(SendError::Rejected {
                message: format!(
                    "{AMAZON_CONNECT_CHAT}: access denied for contact {} (the chat ended?)",
                    message.recipient
                ),
                invalid_recipient: true,
            }),
        }
    }

    async fn healthcheck(&self) -> Health {
        // The participant service has no unauthenticated read; reaching it is what can fail
        // for every contact at once.
        let request = match self.http.get(&self.endpoint) {
            Ok(request) => request,
            Err(refused) => return Health::down(refused.to_string()),
        };
        match request.send().await {
            Ok(r) if r.status().is_server_error() => {
                Health::down(format!("participant endpoint answered HTTP {}", r.status()))
            }
            Ok(r) => Health::up(format!(
                "participant endpoint reachable (HTTP {})",
                r.status()
            )),
            Err(e) => Health::down(e.without_url().to_string()),
        }
    }
}

impl OutboundStrategy for AmazonConnect {
    fn name(&self) -> &'static str {
        AMAZON_CONNECT_CHAT
    }

    fn channel(&self) -> Channel {
        Channel::AmazonConnect
    }

    fn provider_dedupes(&self) -> bool {
        true
    }

    fn configure(
        &self,
        account: &ChannelAccount,
        env: &StrategyEnv,
    ) -> Result<Box<dyn OutboundConnection>, ConfigError> {
        let db = env.db.clone().ok_or_else(|| {
            ConfigError::invalid(AMAZON_CONNECT_CHAT, "needs the domain database")
        })?;
        Ok(Box::new(ConnectConnection {
            http: env.http.clone(),
            db,
            endpoint: participant_endpoint(account),
            tenant: account.tenant_id.clone(),
        }))
    }
}

/// Public keys of signing certificates, by URL (SNS rotates them rarely).
static CERTIFICATES: LazyLock<Mutex<HashMap<String, Arc<rsa::RsaPublicKey>>>> =
    LazyLock::new(Mutex::default);

/// The fields SNS signs, in its documented order, for a message of `kind`.
fn string_to_sign(message: &Value, kind: &str) -> Option<String> {
    let fields: &[&str] = match kind {
        "Notification" => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
        _ => return None,
    };
    let mut out = String::new();
    for field in fields {
        match message.get(*field).and_then(Value::as_str) {
            Some(value) => {
                out.push_str(field);
                out.push('\n');
                out.push_str(value);
                out.push('\n');
            }
            // Only a notification's Subject is optional.
            None if *field == "Subject" => {}
            None => return None,
        }
    }
    Some(out)
}

/// Verifies an SNS message's signature with the public key `key`.
pub fn verify_sns_signature(message: &Value, key: &rsa::RsaPublicKey) -> Result<(), String> {
    let kind = message["Type"].as_str().unwrap_or_default();
    let text = string_to_sign(message, kind).ok_or("the message misses signed fields")?;
    let signature = message["Signature"]
        .as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or("no readable Signature")?;
    let signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice())
        .map_err(|_| "malformed Signature")?;
    let ok = match message["SignatureVersion"].as_str() {
        Some("1") => rsa::pkcs1v15::VerifyingKey::<sha1::Sha1>::new(key.clone())
            .verify(text.as_bytes(), &signature)
            .is_ok(),
        Some("2") => rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key.clone())
            .verify(text.as_bytes(), &signature)
            .is_ok(),
        _ => return Err("unsupported SignatureVersion".into()),
    };
    if ok {
        Ok(())
    } else {
        Err("signature does not match".into())
    }
}

/// The RSA public key of a PEM certificate.
pub fn certificate_key(pem: &[u8]) -> Result<rsa::RsaPublicKey, String> {
    let cert = x509_cert::Certificate::from_pem(pem).map_err(|e| format!("certificate: {e}"))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("certificate key: {e}"))?;
    rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|e| format!("not an RSA key: {e}"))
}

/// Amazon Connect chat streaming, delivered by SNS.
#[derive(Clone)]
pub struct AmazonConnectInbound {
    /// Fetches signing certificates and confirms subscriptions: URLs the (unauthenticated)
    /// message names within the account's prefixes, which the tenant chooses; guarded.
    http: crate::outbound::OutboundClient,
}

impl AmazonConnectInbound {
    pub fn new(guard: crate::outbound::OutboundGuard) -> Self {
        Self {
            http: crate::outbound::OutboundClient::build(
                guard,
                reqwest::Client::builder().timeout(Duration::from_secs(10)),
            )
            .expect("a TLS backend is available"),
        }
    }

    async fn key_at(&self, url: &str) -> Result<Arc<rsa::RsaPublicKey>, InboundError> {
        if let Some(key) = CERTIFICATES.lock().expect("certificate cache").get(url) {
            return Ok(key.clone());
        }
        let unavailable = |e: String| {
            tracing::warn!(error.message = %e, "SNS signing certificate unavailable");
            InboundError::Internal(format!("signing certificate unavailable: {e}"))
        };
        let response = self
            .http
            .get(url)
            .map_err(|refused| InboundError::Unauthorized(refused.to_string()))?
            .send()
            .await
            .map_err(|e| match crate::outbound::refusal(&e) {
                Some(refused) => InboundError::Unauthorized(refused.to_string()),
                None => unavailable(e.without_url().to_string()),
            })?;
        if !response.status().is_success() {
            return Err(unavailable(format!("HTTP {}", response.status())));
        }
        let pem = response
            .bytes()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let key = Arc::new(
            certificate_key(&pem)
                .map_err(|e| InboundError::Unauthorized(format!("SigningCertURL: {e}")))?,
        );
        CERTIFICATES
            .lock()
            .expect("certificate cache")
            .insert(url.to_owned(), key.clone());
        Ok(key)
    }
}

impl Default for AmazonConnectInbound {
    /// With the strict outbound guard.
    fn default() -> Self {
        Self::new(crate::outbound::OutboundGuard::strict())
    }
}

#[async_trait]
impl InboundStrategy for AmazonConnectInbound {
    fn name(&self) -> &'static str {
        AMAZON_CONNECT_CHAT
    }

    fn channel(&self) -> Channel {
        Channel::AmazonConnect
    }

    fn slug(&self) -> &'static str {
        "amazon-connect"
    }

    async fn verify(
        &self,
        request: &InboundRequest<'_>,
        db: &Database,
    ) -> Result<Verified, InboundError> {
        let unauthorized = |m: &str| InboundError::Unauthorized(m.to_owned());
        let tenant = request.tenant.as_ref().ok_or_else(|| {
            InboundError::Malformed(
                "Amazon Connect notifications go to /v1/webhooks/amazon-connect/{tenant}".into(),
            )
        })?;
        let message: Value = serde_json::from_slice(request.body)
            .map_err(|e| InboundError::Malformed(format!("not an SNS message: {e}")))?;
        let kind = message["Type"].as_str().unwrap_or_default().to_owned();
        if !matches!(
            kind.as_str(),
            "Notification" | "SubscriptionConfirmation" | "UnsubscribeConfirmation"
        ) {
            return Err(InboundError::Malformed(format!(
                "not an SNS message: Type `{kind}`"
            )));
        }
        let account = db
            .channels()
            .account(tenant, AMAZON_CONNECT_CHAT)
            .await?
            .ok_or_else(|| unauthorized("unknown topic or bad signature"))?;
        if message["TopicArn"].as_str() != Some(account.account_key.as_str()) {
            return Err(unauthorized("unknown topic or bad signature"));
        }
        let cert_url = message["SigningCertURL"].as_str().unwrap_or_default();
        if !cert_url.starts_with(&sns_prefix(&account, "cert_url_prefix")) {
            return Err(unauthorized("SigningCertURL is not an SNS certificate"));
        }
        let key = self.key_at(cert_url).await?;
        verify_sns_signature(&message, &key).map_err(|e| unauthorized(&e))?;
        let max_age = account
            .settings
            .get("max_age_secs")
            .and_then(Value::as_i64)
            .unwrap_or(3600);
        let sent = message["Timestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .ok_or_else(|| InboundError::Malformed("no readable Timestamp".into()))?;
        if (now_millis() - sent.timestamp_millis()).abs() > max_age * 1000 {
            return Err(unauthorized("the message is too old (replayed?)"));
        }
        let verified = Verified {
            tenant: Some(account.tenant_id.clone()),
            account_key: Some(account.account_key.clone()),
            control: None,
        };
        match kind.as_str() {
            "SubscriptionConfirmation" => {
                let url = message["SubscribeURL"].as_str().unwrap_or_default();
                if !url.starts_with(&sns_prefix(&account, "subscribe_url_prefix")) {
                    return Err(unauthorized("SubscribeURL is not an SNS URL"));
                }
                let response = self
                    .http
                    .get(url)
                    .map_err(|refused| InboundError::Unauthorized(refused.to_string()))?
                    .send()
                    .await
                    .map_err(|e| match crate::outbound::refusal(&e) {
                        Some(refused) => InboundError::Unauthorized(refused.to_string()),
                        None => InboundError::Internal(format!(
                            "confirming the subscription: {}",
                            e.without_url()
                        )),
                    })?;
                if !response.status().is_success() {
                    return Err(InboundError::Internal(format!(
                        "confirming the subscription: HTTP {}",
                        response.status()
                    )));
                }
                Ok(Verified {
                    control: Some("subscription confirmed".into()),
                    ..verified
                })
            }
            "UnsubscribeConfirmation" => Ok(Verified {
                control: Some("unsubscribed".into()),
                ..verified
            }),
            _ => Ok(verified),
        }
    }

    fn normalize(
        &self,
        request: &InboundRequest<'_>,
        verified: &Verified,
    ) -> Result<Vec<InboundEvent>, InboundError> {
        let account_key = verified.account_key.clone().unwrap_or_default();
        let item = connect::parse_notification(request.body).map_err(InboundError::Malformed)?;
        Ok(vec![InboundEvent::from_chat(item, &account_key)])
    }
}

/// One Connect chat item on `account_key` (the parsing is `zengine_domain::channel::connect`).
#[cfg(test)]
fn normalize_chat(chat: &Value, account_key: &str) -> Result<InboundEvent, InboundError> {
    connect::normalize_chat(chat)
        .map(|item| InboundEvent::from_chat(item, account_key))
        .map_err(InboundError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_to_sign_follows_the_documented_order() {
        let n = json!({"Type": "Notification", "MessageId": "m", "TopicArn": "t",
                       "Message": "hi", "Timestamp": "2026-01-01T00:00:00.000Z"});
        assert_eq!(
            string_to_sign(&n, "Notification").unwrap(),
            "Message\nhi\nMessageId\nm\nTimestamp\n2026-01-01T00:00:00.000Z\nTopicArn\nt\nType\nNotification\n"
        );
        let mut with_subject = n.clone();
        with_subject["Subject"] = json!("s");
        assert!(
            string_to_sign(&with_subject, "Notification")
                .unwrap()
                .contains("Subject\ns\nTimestamp")
        );
        assert!(
            string_to_sign(&n, "SubscriptionConfirmation").is_none(),
            "Token missing"
        );
        assert!(string_to_sign(&n, "Other").is_none());
    }

    #[test]
    fn only_customer_text_messages_reach_the_conversation() {
        let chat = json!({"Type": "MESSAGE", "ParticipantRole": "CUSTOMER", "ContentType": "text/plain",
            "Content": "hola", "Id": "i-1", "ContactId": "c-2", "InitialContactId": "c-1"});
        let event = normalize_chat(&chat, "arn").unwrap();
        assert!(
            matches!(event, InboundEvent::Message { ref contact, ref message, .. }
            if contact == "c-1" && message.message_id == "connect:i-1" && message.text == "hola")
        );
        for (field, value) in [
            ("ParticipantRole", "CUSTOM_BOT"),
            ("ParticipantRole", "AGENT"),
            ("Type", "EVENT"),
            (
                "ContentType",
                "application/vnd.amazonaws.connect.event.typing",
            ),
        ] {
            let mut other = chat.clone();
            other[field] = json!(value);
            assert!(
                matches!(
                    normalize_chat(&other, "arn").unwrap(),
                    InboundEvent::Ignored { .. }
                ),
                "{field}"
            );
        }
        let mut no_id = chat.clone();
        no_id["Id"] = json!("");
        assert!(normalize_chat(&no_id, "arn").is_err());
    }

    #[test]
    fn long_client_tokens_are_hashed_to_fit() {
        assert_eq!(client_token("abc"), "abc");
        let long = "x".repeat(600);
        let token = client_token(&long);
        assert_eq!(token.len(), 64);
        assert_eq!(token, client_token(&long), "stable");
    }
}
