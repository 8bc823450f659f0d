//! The agent desk through Chatwoot: activities of the conversation workflow that mirror a
//! handoff into the tenant's Chatwoot inbox (application API, header `api_access_token`) and
//! forward the customer's messages while an agent has the conversation.
//!
//! Every step looks up what it did before doing it, and stores what it did as it goes (the
//! contact, the conversation, each posted message under a key of ours), so a retried activity
//! creates no second contact, conversation or message. Messages we post are customer messages
//! (`incoming`) and private notes; their Chatwoot ids are kept so a webhook about them is
//! recognised as our own echo.
//!
//! Errors: network trouble, 429 and 5xx are retried by Temporal; any other 4xx fails with the
//! non-retryable [`CHATWOOT_REJECTED`]; a missing token with [`SECRET_MISSING`]. A tenant
//! without Chatwoot configured is not an error: nothing is mirrored.
//!
//! The tenant chooses `base_url`, so calls go through the [`zengine_channels::outbound`] guard: a Chatwoot
//! URL pointing inside the platform fails with [`CHATWOOT_REJECTED`] and nothing is sent.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use zengine_domain::TenantId;

use crate::channels::SECRET_MISSING;
use zengine_channels::outbound::{OutboundClient, OutboundGuard};
use zengine_storage::{ChatwootLink, ChatwootSettings, Database};

/// Failure type of a Chatwoot answer that retrying cannot fix (4xx other than 429).
pub const CHATWOOT_REJECTED: &str = "ChatwootRejected";

/// Transcript lines posted on handoff (the most recent ones).
pub const TRANSCRIPT_LINES: usize = 20;

/// One line of the conversation before the handoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptLine {
    /// `customer` or `bot`.
    pub from: String,
    pub text: String,
}

/// Input of [`ChatwootActivities::mirror_handoff`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffMirror {
    pub tenant_id: TenantId,
    pub workflow_id: String,
    /// `<workflow id>/effect-<n>`: names this handoff (idempotency of retries).
    pub handoff_key: String,
    pub channel: String,
    pub contact: String,
    pub node: String,
    pub queue: Option<String>,
    pub transcript: Vec<TranscriptLine>,
}

/// Where a handoff was mirrored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskLink {
    pub chatwoot_conversation_id: i64,
    /// The conversation in Chatwoot's agent dashboard.
    pub url: String,
}

/// Input of [`ChatwootActivities::forward_message`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardMessage {
    pub tenant_id: TenantId,
    pub chatwoot_conversation_id: i64,
    /// `in/<provider message id>`: a retried forward posts once.
    pub message_key: String,
    pub text: String,
}

/// Input of [`ChatwootActivities::resolve`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveConversation {
    pub tenant_id: TenantId,
    pub chatwoot_conversation_id: i64,
}

/// Shared dependencies of the Chatwoot activities.
pub struct ChatwootActivities {
    db: Database,
    http: OutboundClient,
}

impl ChatwootActivities {
    /// With the strict outbound guard (every internal address refused).
    pub fn new(db: Database) -> Self {
        Self {
            db,
            http: desk_client(OutboundGuard::strict()),
        }
    }

    /// With the platform's outbound guard (`worker.outbound`).
    pub fn with_outbound(self, guard: OutboundGuard) -> Self {
        Self {
            http: desk_client(guard),
            ..self
        }
    }
}

fn desk_client(guard: OutboundGuard) -> OutboundClient {
    OutboundClient::without_redirects(
        guard,
        reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .user_agent("zengine-agent-desk/1"),
    )
    .expect("a TLS backend is available")
}

fn failure(kind: &str, message: String, retryable: bool) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(message)
            .type_name(kind.to_owned())
            .non_retryable(!retryable)
            .build(),
    )
}

fn retryable(message: impl Into<String>) -> ActivityError {
    ActivityError::application(ApplicationFailure::new(message.into()))
}

/// A connected Chatwoot account of one tenant.
struct Desk<'a> {
    http: &'a OutboundClient,
    settings: ChatwootSettings,
    token: secrecy::SecretString,
}

impl Desk<'_> {
    fn url(&self, path: &str) -> String {
        format!(
            "{}/api/v1/accounts/{}/{path}",
            self.settings.base_url.trim_end_matches('/'),
            self.settings.account_id
        )
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, ActivityError> {
        let refused = |refused: &zengine_channels::outbound::OutboundRefused| {
            failure(
                CHATWOOT_REJECTED,
                format!("Chatwoot {method} {path}: {refused}"),
                false,
            )
        };
        let mut request = self
            .http
            .request(method.clone(), &self.url(path))
            .map_err(|e| refused(&e))?
            .header("api_access_token", self.token.expose_secret())
            .query(query);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response =
            request
                .send()
                .await
                .map_err(|e| match zengine_channels::outbound::refusal(&e) {
                    Some(r) => refused(r),
                    None => retryable(format!(
                        "Chatwoot {method} {path}: {}",
                        zengine_channels::outbound::describe(&e)
                    )),
                })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str(&text)
                .map_err(|_| retryable(format!("Chatwoot {method} {path}: answer is not JSON")));
        }
        let message = format!("Chatwoot {method} {path}: HTTP {}", status.as_u16());
        if status.is_server_error() || status.as_u16() == 429 {
            Err(retryable(message))
        } else {
            Err(failure(CHATWOOT_REJECTED, message, false))
        }
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, ActivityError> {
        self.call(reqwest::Method::POST, path, &[], Some(body))
            .await
    }

    async fn post_message(
        &self,
        conversation: i64,
        content: &str,
        message_type: &str,
        private: bool,
    ) -> Result<i64, ActivityError> {
        let answer = self
            .post(
                &format!("conversations/{conversation}/messages"),
                json!({"content": content, "message_type": message_type, "private": private}),
            )
            .await?;
        id_of(&answer).ok_or_else(|| retryable("Chatwoot message answer has no id"))
    }
}

fn id_of(value: &Value) -> Option<i64> {
    value.get("id").and_then(Value::as_i64)
}

/// Phone channels' contacts are E.164 digits: Chatwoot wants them with a `+`.
fn phone_of(channel: &str, contact: &str) -> Option<String> {
    let digits = contact.strip_prefix('+').unwrap_or(contact);
    (matches!(channel, "whatsapp" | "sms" | "voice")
        && (6..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit()))
    .then(|| format!("+{digits}"))
}

fn email_of(channel: &str, contact: &str) -> Option<String> {
    (channel == "email" && contact.contains('@')).then(|| contact.to_owned())
}

/// The source id of `contact`'s contact inbox for `inbox_id`, from a contact object.
fn source_id_in(contact: &Value, inbox_id: i64) -> Option<String> {
    contact
        .get("contact_inboxes")?
        .as_array()?
        .iter()
        .find(|ci| {
            ci.pointer("/inbox/id").and_then(Value::as_i64) == Some(inbox_id)
                || ci.get("inbox_id").and_then(Value::as_i64) == Some(inbox_id)
        })
        .and_then(|ci| ci.get("source_id")?.as_str().map(str::to_owned))
}

fn transcript_text(lines: &[TranscriptLine]) -> String {
    let mut text = String::from("Conversation with the bot before the handoff:\n");
    for line in lines {
        let who = if line.from == "customer" {
            "Customer"
        } else {
            "Bot"
        };
        text.push_str(&format!("{who}: {}\n", line.text));
    }
    text
}

impl ChatwootActivities {
    /// The tenant's Chatwoot account, `None` when it has none configured.
    async fn desk(&self, tenant: &TenantId) -> Result<Option<Desk<'_>>, ActivityError> {
        let Some(settings) = self.db.chatwoot().settings(tenant).await? else {
            return Ok(None);
        };
        let token = zengine_storage::secrets::resolve_for(tenant, &settings.api_token_ref)
            .map_err(|e| failure(SECRET_MISSING, e.to_string(), false))?;
        Ok(Some(Desk {
            http: &self.http,
            settings,
            token,
        }))
    }

    /// Finds the contact (by our identifier, then phone or email) or creates it; returns its id
    /// and the source id of its contact inbox in the tenant's inbox.
    async fn contact(
        desk: &Desk<'_>,
        mirror: &HandoffMirror,
    ) -> Result<(i64, String), ActivityError> {
        let identifier = format!("zengine:{}:{}", mirror.channel, mirror.contact);
        let phone = phone_of(&mirror.channel, &mirror.contact);
        let email = email_of(&mirror.channel, &mirror.contact);
        let inbox = desk.settings.inbox_id;
        let mut found = None;
        for q in [
            Some(identifier.as_str()),
            phone.as_deref(),
            email.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            let answer = desk
                .call(reqwest::Method::GET, "contacts/search", &[("q", q)], None)
                .await?;
            let hit = answer
                .get("payload")
                .and_then(Value::as_array)
                .and_then(|contacts| {
                    contacts
                        .iter()
                        .find(|c| {
                            let field = |k: &str| c.get(k).and_then(Value::as_str);
                            field("identifier") == Some(identifier.as_str())
                                || (phone.is_some() && field("phone_number") == phone.as_deref())
                                || (email.is_some() && field("email") == email.as_deref())
                        })
                        .cloned()
                });
            if hit.is_some() {
                found = hit;
                break;
            }
        }
        let contact = match found {
            Some(contact) => contact,
            None => {
                let mut body = json!({
                    "inbox_id": inbox,
                    "name": phone.clone().or(email.clone()).unwrap_or_else(|| mirror.contact.clone()),
                    "identifier": identifier,
                });
                if let Some(phone) = &phone {
                    body["phone_number"] = json!(phone);
                }
                if let Some(email) = &email {
                    body["email"] = json!(email);
                }
                let answer = desk.post("contacts", body).await?;
                let payload = answer.get("payload").unwrap_or(&answer);
                let mut contact = payload.get("contact").unwrap_or(payload).clone();
                // The create answer names the new contact inbox beside the contact.
                if let Some(ci) = payload.get("contact_inbox") {
                    contact["contact_inboxes"] = json!([ci]);
                }
                contact
            }
        };
        let contact_id = id_of(&contact).ok_or_else(|| retryable("Chatwoot contact has no id"))?;
        let source_id = match source_id_in(&contact, inbox) {
            Some(source) => source,
            None => {
                let answer = desk
                    .post(
                        &format!("contacts/{contact_id}/contact_inboxes"),
                        json!({"inbox_id": inbox}),
                    )
                    .await?;
                answer
                    .get("source_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| retryable("Chatwoot contact inbox has no source_id"))?
            }
        };
        Ok((contact_id, source_id))
    }

    /// Posts `content` once under `key` (looked up first, stored right after): a private
    /// note, or else the customer's message (`incoming`).
    async fn post_once(
        &self,
        desk: &Desk<'_>,
        tenant: &TenantId,
        key: &str,
        conversation: i64,
        content: &str,
        private: bool,
    ) -> Result<i64, ActivityError> {
        let message_type = if private { "outgoing" } else { "incoming" };
        let repo = self.db.chatwoot();
        if let Some(id) = repo.posted(tenant, key).await? {
            return Ok(id);
        }
        let id = desk
            .post_message(conversation, content, message_type, private)
            .await?;
        repo.save_posted(tenant, key, id).await?;
        Ok(id)
    }
}

#[activities]
impl ChatwootActivities {
    /// Mirrors a handoff into the tenant's Chatwoot inbox: the contact (found or created), a
    /// conversation, the transcript and a note with the handoff's node and queue, each as a
    /// private note. `None` when the tenant has no Chatwoot configured.
    #[activity(name = "ChatwootMirrorHandoff")]
    pub async fn mirror_handoff(
        self: Arc<Self>,
        _ctx: ActivityContext,
        mirror: HandoffMirror,
    ) -> Result<Option<DeskLink>, ActivityError> {
        let tenant = &mirror.tenant_id;
        let Some(desk) = self.desk(tenant).await? else {
            return Ok(None);
        };
        let repo = self.db.chatwoot();
        let mut link = repo
            .link(tenant, &mirror.handoff_key)
            .await?
            .unwrap_or_else(|| ChatwootLink {
                handoff_key: mirror.handoff_key.clone(),
                workflow_id: mirror.workflow_id.clone(),
                channel: mirror.channel.clone(),
                contact: mirror.contact.clone(),
                ..ChatwootLink::default()
            });
        let (contact_id, source_id) = match (link.chatwoot_contact_id, link.source_id.clone()) {
            (Some(id), Some(source)) => (id, source),
            _ => {
                let (id, source) = Self::contact(&desk, &mirror).await?;
                link.chatwoot_contact_id = Some(id);
                link.source_id = Some(source.clone());
                repo.save_link(tenant, &link).await?;
                (id, source)
            }
        };
        let conversation = match link.chatwoot_conversation_id {
            Some(id) => id,
            None => {
                // A conversation created by an attempt whose answer was lost carries our
                // handoff key: find it before creating one.
                let existing = desk
                    .call(
                        reqwest::Method::GET,
                        &format!("contacts/{contact_id}/conversations"),
                        &[],
                        None,
                    )
                    .await?;
                let found = existing
                    .get("payload")
                    .and_then(Value::as_array)
                    .and_then(|list| {
                        list.iter().find(|c| {
                            c.pointer("/additional_attributes/zengine_handoff")
                                .and_then(Value::as_str)
                                == Some(mirror.handoff_key.as_str())
                        })
                    })
                    .and_then(id_of);
                if let Some(id) = found {
                    link.chatwoot_conversation_id = Some(id);
                    repo.save_link(tenant, &link).await?;
                    id
                } else {
                    let answer = desk
                        .post(
                            "conversations",
                            json!({
                                "source_id": source_id,
                                "inbox_id": desk.settings.inbox_id,
                                "contact_id": contact_id,
                                "status": "open",
                                "additional_attributes": {
                                    "zengine_conversation": mirror.workflow_id,
                                    "zengine_handoff": mirror.handoff_key,
                                },
                            }),
                        )
                        .await?;
                    let id = id_of(&answer)
                        .ok_or_else(|| retryable("Chatwoot conversation has no id"))?;
                    link.chatwoot_conversation_id = Some(id);
                    repo.save_link(tenant, &link).await?;
                    id
                }
            }
        };
        if !mirror.transcript.is_empty() {
            self.post_once(
                &desk,
                tenant,
                &format!("transcript/{}", mirror.handoff_key),
                conversation,
                &transcript_text(&mirror.transcript),
                true,
            )
            .await?;
        }
        let note = format!(
            "Handed off by the bot at node `{}`{}. ZEngine conversation: {}. Resolve this \
             conversation to give it back to the bot.",
            mirror.node,
            mirror
                .queue
                .as_deref()
                .map(|q| format!(", queue `{q}`"))
                .unwrap_or_default(),
            mirror.workflow_id
        );
        self.post_once(
            &desk,
            tenant,
            &format!("note/{}", mirror.handoff_key),
            conversation,
            &note,
            true,
        )
        .await?;
        Ok(Some(DeskLink {
            chatwoot_conversation_id: conversation,
            url: format!(
                "{}/app/accounts/{}/conversations/{conversation}",
                desk.settings.base_url.trim_end_matches('/'),
                desk.settings.account_id
            ),
        }))
    }

    /// Posts a customer message to the Chatwoot conversation as `incoming` (once per key).
    #[activity(name = "ChatwootForwardMessage")]
    pub async fn forward_message(
        self: Arc<Self>,
        _ctx: ActivityContext,
        message: ForwardMessage,
    ) -> Result<(), ActivityError> {
        let Some(desk) = self.desk(&message.tenant_id).await? else {
            return Ok(());
        };
        self.post_once(
            &desk,
            &message.tenant_id,
            &message.message_key,
            message.chatwoot_conversation_id,
            &message.text,
            false,
        )
        .await?;
        Ok(())
    }

    /// Marks the Chatwoot conversation resolved (an operator gave the conversation back to
    /// the bot outside Chatwoot). Resolving a resolved conversation is harmless.
    #[activity(name = "ChatwootResolve")]
    pub async fn resolve(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: ResolveConversation,
    ) -> Result<(), ActivityError> {
        let Some(desk) = self.desk(&request.tenant_id).await? else {
            return Ok(());
        };
        desk.post(
            &format!(
                "conversations/{}/toggle_status",
                request.chatwoot_conversation_id
            ),
            json!({"status": "resolved"}),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_map_to_chatwoot_fields() {
        assert_eq!(
            phone_of("whatsapp", "5215512345678").as_deref(),
            Some("+5215512345678")
        );
        assert_eq!(phone_of("webchat", "5215512345678"), None);
        assert_eq!(phone_of("whatsapp", "abc"), None);
        assert_eq!(email_of("email", "a@b.c").as_deref(), Some("a@b.c"));
        let contact = json!({"id": 1, "contact_inboxes": [
            {"source_id": "x", "inbox": {"id": 2}}, {"source_id": "y", "inbox": {"id": 3}}]});
        assert_eq!(source_id_in(&contact, 3).as_deref(), Some("y"));
        assert_eq!(source_id_in(&contact, 4), None);
    }
}
