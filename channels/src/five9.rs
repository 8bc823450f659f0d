//! `five9-digital`: Five9 Digital Engagement conversations.
//!
//! Five9 does not publish the payload of the callbacks it POSTs to a conversation's
//! `callbackUrl`, nor a signature scheme (see `../shared/notes/channels.md` §3); integrations
//! put a credential in the callback and restrict the source. So:
//!
//! - **Inbound** `POST /v1/webhooks/five9/{tenant}`: HTTP basic auth with the account's
//!   `webhook_username` / `webhook_password` (secret references), and the caller's address must
//!   be in the account's `allowed_ips` (CIDRs; required). The body is Five9's message event as
//!   our integrations capture it (provisional until certified against a Five9 sandbox):
//!   `{"correlationId": <Five9 conversation id>, "messageId", "type": "TEXT"|…, "from":
//!   "CUSTOMER"|"AGENT"|"SYSTEM", "text", "timestamp"}`, or `{"events": [ … ]}` for a batch.
//!   Customer text becomes a message of the conversation `{tenant}/conversation/five9/{id}`;
//!   everything else is acknowledged and ignored.
//! - **Outbound**: `POST {api_host}/appsvcs/rs/svc/conversations/{id}/messages` with
//!   `Authorization: Bearer-{tokenId}` and `farmId`, after an anonymous login
//!   (`POST {login_host}/appsvcs/rs/svc/auth/anon?cookieless=true {"tenantName"}`) whose token
//!   and data-centre host are cached per account. A 401 (token expired) or 435 ("service
//!   migrated") logs in again and resends once — nothing was accepted the first time; 404 (the
//!   conversation ended) is permanent; 429 and 5xx are retryable.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use zengine_domain::channel::five9;
use zengine_domain::channel::whatsapp::constant_time_eq;
use zengine_domain::{Channel, TenantId};

use super::sdk::{
    ConfigError, Health, InboundError, InboundEvent, InboundRequest, InboundStrategy,
    OutboundConnection, OutboundMessage, OutboundStrategy, SendContext, SendError, SendResult,
    StrategyEnv, Verified, classify_http, excerpt, retry_after, setting, setting_or,
    transport_error,
};
use zengine_storage::ChannelAccount;
use zengine_storage::Database;
use zengine_storage::secrets;

pub use zengine_domain::channel::strategy::FIVE9_DIGITAL;
const LOGIN_HOST: &str = "https://app.five9.com";
const API_PATH: &str = "/appsvcs/rs/svc";
/// Five9's "service migrated to another data centre" status.
const SERVICE_MIGRATED: u16 = 435;

/// A session from the anonymous login.
#[derive(Debug, Clone)]
struct Session {
    token: String,
    farm_id: String,
    api_host: String,
}

/// Sessions by (tenant, account key), shared by every connection of the process.
type Sessions = Arc<Mutex<HashMap<(String, String), Session>>>;

/// The `five9-digital` outbound strategy. Settings: `tenant_name` (Five9 tenant, required),
/// `login_host` (default `https://app.five9.com`), `webhook_username` / `webhook_password`
/// (secret references) and `allowed_ips` (CIDRs) for inbound.
#[derive(Default)]
pub struct Five9 {
    sessions: Sessions,
}

struct Five9Connection {
    http: crate::outbound::OutboundClient,
    login_host: String,
    tenant_name: String,
    key: (String, String),
    sessions: Sessions,
}

impl Five9Connection {
    async fn login(&self) -> Result<Session, SendError> {
        let url = format!("{}{API_PATH}/auth/anon?cookieless=true", self.login_host);
        let response = self
            .http
            .post(&url)?
            .json(&json!({"tenantName": self.tenant_name}))
            .send()
            .await
            .map_err(|e| transport_error(FIVE9_DIGITAL, e))?;
        let status = response.status();
        let hint = retry_after(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(FIVE9_DIGITAL, e))?;
        if !status.is_success() {
            return Err(classify_http(
                FIVE9_DIGITAL,
                status,
                hint,
                &format!("login: {}", five9_message(&bytes)),
            ));
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let token = body["tokenId"].as_str().unwrap_or_default();
        let farm_id = body["context"]["farmId"].as_str().unwrap_or_default();
        let host = body["metadata"]["dataCenters"]
            .as_array()
            .and_then(|centres| {
                centres.iter().find_map(|c| {
                    c["apiUrls"]
                        .as_array()?
                        .iter()
                        .find_map(|u| u["host"].as_str())
                })
            })
            .unwrap_or_default();
        if token.is_empty() || farm_id.is_empty() || host.is_empty() {
            return Err(SendError::retryable(
                "five9-digital: login answer without tokenId, farmId or an API host",
            ));
        }
        let api_host = if host.starts_with("http://") || host.starts_with("https://") {
            host.trim_end_matches('/').to_owned()
        } else {
            format!("https://{host}")
        };
        let session = Session {
            token: token.to_owned(),
            farm_id: farm_id.to_owned(),
            api_host,
        };
        self.sessions
            .lock()
            .expect("five9 sessions lock")
            .insert(self.key.clone(), session.clone());
        Ok(session)
    }

    async fn session(&self) -> Result<Session, SendError> {
        let cached = self
            .sessions
            .lock()
            .expect("five9 sessions lock")
            .get(&self.key)
            .cloned();
        match cached {
            Some(s) => Ok(s),
            None => self.login().await,
        }
    }

    async fn post_message(
        &self,
        session: &Session,
        conversation: &str,
        text: &str,
    ) -> Result<
        (
            reqwest::StatusCode,
            Option<std::time::Duration>,
            bytes::Bytes,
        ),
        SendError,
    > {
        let url = format!(
            "{}{API_PATH}/conversations/{}/messages",
            session.api_host,
            path_segment(conversation)
        );
        let response = self
            .http
            .post(&url)?
            .header("authorization", format!("Bearer-{}", session.token))
            .header("farmId", &session.farm_id)
            .json(&json!({"message": text, "messageType": "TEXT"}))
            .send()
            .await
            .map_err(|e| transport_error(FIVE9_DIGITAL, e))?;
        let status = response.status();
        let hint = retry_after(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(FIVE9_DIGITAL, e))?;
        Ok((status, hint, bytes))
    }
}

fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The message of Five9's error envelope `{"five9ExceptionDetail": {"message"}}`.
fn five9_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v["five9ExceptionDetail"]["message"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| excerpt(body))
}

#[async_trait]
impl OutboundConnection for Five9Connection {
    async fn send(
        &self,
        message: &OutboundMessage,
        _ctx: &SendContext,
    ) -> Result<SendResult, SendError> {
        let text = message.reply.plain_text();
        let mut session = self.session().await?;
        let mut answer = self
            .post_message(&session, &message.recipient, &text)
            .await?;
        if matches!(answer.0.as_u16(), 401 | SERVICE_MIGRATED) {
            // Expired token or moved data centre: nothing was accepted; log in and resend once.
            self.sessions
                .lock()
                .expect("five9 sessions lock")
                .remove(&self.key);
            session = self.login().await?;
            answer = self
                .post_message(&session, &message.recipient, &text)
                .await?;
        }
        let (status, hint, bytes) = answer;
        if status.is_success() {
            // Five9 returns no message id; the conversation id plus ours identifies it.
            let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let id = body["id"]
                .as_str()
                .or_else(|| body["messageId"].as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| format!("five9:{}", message.client_message_id));
            return Ok(SendResult {
                provider_message_id: id,
            });
        }
        if status.as_u16() == 404 {
            return Err(SendError::Rejected {
                message: format!(
                    "five9-digital: conversation {} is gone (HTTP 404)",
                    message.recipient
                ),
                invalid_recipient: true,
            });
        }
        Err(classify_http(
            FIVE9_DIGITAL,
            status,
            hint,
            &five9_message(&bytes),
        ))
    }

    async fn healthcheck(&self) -> Health {
        match self.login().await {
            Ok(_) => Health::up("anonymous login answered"),
            Err(e) => Health::down(e.to_string()),
        }
    }
}

impl OutboundStrategy for Five9 {
    fn name(&self) -> &'static str {
        FIVE9_DIGITAL
    }

    fn channel(&self) -> Channel {
        Channel::Five9
    }

    fn configure(
        &self,
        account: &ChannelAccount,
        env: &StrategyEnv,
    ) -> Result<Box<dyn OutboundConnection>, ConfigError> {
        let tenant_name = setting(account, FIVE9_DIGITAL, "tenant_name")?.to_owned();
        Ok(Box::new(Five9Connection {
            http: env.http.clone(),
            login_host: setting_or(account, "login_host", LOGIN_HOST)
                .trim_end_matches('/')
                .to_owned(),
            tenant_name,
            key: (account.tenant_id.to_string(), account.account_key.clone()),
            sessions: self.sessions.clone(),
        }))
    }
}

/// Whether `ip` is in one of the CIDRs (an IPv4-mapped IPv6 peer counts as IPv4).
pub fn ip_allowed(ip: IpAddr, cidrs: &[ipnet::IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    cidrs.iter().any(|net| net.contains(&ip))
}

/// Parses the account's `allowed_ips`.
pub fn allowlist(account: &ChannelAccount) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let list = account
        .settings
        .get("allowed_ips")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ConfigError::invalid(FIVE9_DIGITAL, "`allowed_ips` (a list of CIDRs) is required")
        })?;
    list.iter()
        .map(|v| {
            let s = v.as_str().unwrap_or_default().trim();
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::invalid(FIVE9_DIGITAL, format!("allowed_ips: `{s}` is not a CIDR"))
                })
        })
        .collect()
}

/// Five9's inbound callbacks.
pub struct Five9Inbound;

fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let encoded = header?.strip_prefix("Basic ")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn resolve_logged(tenant: &TenantId, reference: &str) -> Result<SecretString, InboundError> {
    secrets::resolve_for(tenant, reference).map_err(|e| {
        tracing::error!(error.message = %e, "five9-digital webhook credential does not resolve");
        InboundError::Unauthorized("wrong credentials".into())
    })
}

#[async_trait]
impl InboundStrategy for Five9Inbound {
    fn name(&self) -> &'static str {
        FIVE9_DIGITAL
    }

    fn channel(&self) -> Channel {
        Channel::Five9
    }

    fn slug(&self) -> &'static str {
        "five9"
    }

    async fn verify(
        &self,
        request: &InboundRequest<'_>,
        db: &Database,
    ) -> Result<Verified, InboundError> {
        let unauthorized = || InboundError::Unauthorized("wrong credentials".into());
        let tenant = request.tenant.as_ref().ok_or_else(|| {
            InboundError::Malformed("Five9 callbacks go to /v1/webhooks/five9/{tenant}".into())
        })?;
        let (user, password) =
            basic_credentials(request.header("authorization")).ok_or_else(unauthorized)?;
        let account = db
            .channels()
            .account(tenant, FIVE9_DIGITAL)
            .await?
            .ok_or_else(unauthorized)?;
        let field = |name: &str| {
            account
                .settings
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(unauthorized)
        };
        let expected_user = resolve_logged(&account.tenant_id, field("webhook_username")?)?;
        let expected_password = resolve_logged(&account.tenant_id, field("webhook_password")?)?;
        // Both compared, always, in constant time.
        let user_ok = constant_time_eq(user.as_bytes(), expected_user.expose_secret().as_bytes());
        let password_ok = constant_time_eq(
            password.as_bytes(),
            expected_password.expose_secret().as_bytes(),
        );
        if !(user_ok & password_ok) {
            return Err(unauthorized());
        }
        let cidrs = allowlist(&account).map_err(|e| {
            tracing::error!(error.message = %e, "five9-digital allowlist is misconfigured");
            InboundError::Forbidden("this source is not allowed".into())
        })?;
        match request.peer {
            Some(ip) if ip_allowed(ip, &cidrs) => Ok(Verified {
                tenant: Some(account.tenant_id.clone()),
                account_key: Some(account.account_key.clone()),
                control: None,
            }),
            _ => Err(InboundError::Forbidden("this source is not allowed".into())),
        }
    }

    fn normalize(
        &self,
        request: &InboundRequest<'_>,
        verified: &Verified,
    ) -> Result<Vec<InboundEvent>, InboundError> {
        let items = five9::parse_webhook(request.body).map_err(InboundError::Malformed)?;
        // Five9 does not name the account: it is the one the credentials belong to.
        let account_key = verified.account_key.clone().unwrap_or_default();
        Ok(items
            .into_iter()
            .map(|item| InboundEvent::from_chat(item, &account_key))
            .collect())
    }
}

/// One Five9 event on `account_key` (the parsing is `zengine_domain::channel::five9`).
#[cfg(test)]
fn normalize_event(event: &Value, account_key: &str) -> Result<InboundEvent, InboundError> {
    five9::normalize_event(event)
        .map(|item| InboundEvent::from_chat(item, account_key))
        .map_err(InboundError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlists_match_v4_v6_and_mapped_addresses() {
        let nets: Vec<ipnet::IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        assert!(ip_allowed("10.1.2.3".parse().unwrap(), &nets));
        assert!(ip_allowed("::ffff:10.1.2.3".parse().unwrap(), &nets));
        assert!(ip_allowed("2001:db8::1".parse().unwrap(), &nets));
        assert!(!ip_allowed("11.0.0.1".parse().unwrap(), &nets));
        assert!(!ip_allowed("127.0.0.1".parse().unwrap(), &[]));
    }

    #[test]
    fn basic_auth_headers_are_parsed_strictly() {
        assert_eq!(
            basic_credentials(Some("Basic dXNlcjpwYTpzcw==")),
            Some(("user".into(), "pa:ss".into()))
        );
        assert_eq!(basic_credentials(Some("Bearer x")), None);
        assert_eq!(basic_credentials(Some("Basic !!!")), None);
        assert_eq!(basic_credentials(None), None);
    }

    #[test]
    fn only_customer_text_becomes_a_message() {
        let msg = normalize_event(
            &json!({"correlationId": "c-1", "messageId": "m-1", "type": "TEXT", "from": "CUSTOMER", "text": " hola "}),
            "acme",
        )
        .unwrap();
        assert!(
            matches!(msg, InboundEvent::Message { ref contact, ref message, .. }
            if contact == "c-1" && message.text == "hola" && message.message_id == "five9:m-1")
        );
        for event in [
            json!({"correlationId": "c", "messageId": "m", "type": "TYPING"}),
            json!({"correlationId": "c", "messageId": "m", "from": "AGENT", "text": "hi"}),
            json!({"correlationId": "c", "messageId": "m", "text": ""}),
        ] {
            assert!(matches!(
                normalize_event(&event, "acme").unwrap(),
                InboundEvent::Ignored { .. }
            ));
        }
        for event in [json!({"messageId": "m"}), json!({"correlationId": "c"})] {
            assert!(normalize_event(&event, "acme").is_err());
        }
    }
}
