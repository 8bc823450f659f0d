//! Activities of the conversation workflow: flow commands (`http_request`, …), survey answers and
//! domain events.
//!
//! Errors say whether retrying helps: a command the flow can never complete (a host the tenant
//! does not allow, an address the outbound guard refuses, a 4xx answer, a command this
//! deployment does not offer) fails with the non-retryable type [`COMMAND_REJECTED`]; network
//! trouble and 5xx answers are retried by Temporal with the workflow's retry policy.
//!
//! `http_request` checks the host twice: by name against the tenant's `allowed_http_hosts`, then
//! by address through the [`zengine_channels::outbound`] guard (a tenant may list `localhost` or a name
//! pointing inside the platform; the guard refuses those whatever the list says). Error messages
//! name the URL's origin only: they reach the flow's `last_error`, the bot's reply and the
//! workflow history, and a query string may carry a secret or a phone number.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use zengine_domain::TenantId;
use zengine_domain::flow::CommandOutcome;

use zengine_channels::outbound::{OutboundClient, OutboundGuard, origin};
use zengine_storage::{Database, NewEvent};

/// Failure type of a command that retrying cannot fix.
pub const COMMAND_REJECTED: &str = "CommandRejected";

/// Largest response body an `http_request` command keeps.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Input of [`ConversationActivities::run_command`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandRequest {
    pub tenant_id: TenantId,
    pub conversation_id: String,
    pub node: String,
    pub command: String,
    pub params: Value,
    /// Derived by the workflow (workflow id + step): sent to the callee so a retried call
    /// has one effect.
    pub idempotency_key: String,
}

/// Input of [`ConversationActivities::record_survey`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SurveyRecord {
    pub tenant_id: TenantId,
    pub conversation_id: String,
    pub survey_key: String,
    pub rating: u8,
    pub comment: Option<String>,
}

/// Input of [`ConversationActivities::record_event`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRecord {
    pub event_id: String,
    pub tenant_id: TenantId,
    pub event_type: zengine_domain::events::EventType,
    pub subject: String,
    pub payload: Value,
}

/// Shared dependencies of the conversation activities.
pub struct ConversationActivities {
    db: Database,
    http: OutboundClient,
}

impl ConversationActivities {
    /// With the strict outbound guard (every internal address refused).
    pub fn new(db: Database) -> Self {
        Self {
            db,
            http: flow_client(OutboundGuard::strict()),
        }
    }

    /// With the platform's outbound guard (`worker.outbound`).
    pub fn with_outbound(self, guard: OutboundGuard) -> Self {
        Self {
            http: flow_client(guard),
            ..self
        }
    }
}

/// The client of `http_request`: follows no redirect (a 3xx is the flow's answer).
fn flow_client(guard: OutboundGuard) -> OutboundClient {
    OutboundClient::without_redirects(
        guard,
        reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .user_agent("zengine-flow/1"),
    )
    .expect("a TLS backend is available")
}

fn rejected(message: impl Into<String>) -> ActivityError {
    let message: String = message.into();
    ActivityError::application(
        ApplicationFailure::builder(message)
            .type_name(COMMAND_REJECTED.to_owned())
            .non_retryable(true)
            .build(),
    )
}

fn retryable(message: impl Into<String>) -> ActivityError {
    let message: String = message.into();
    ActivityError::application(ApplicationFailure::new(message))
}

/// Whether `host` is allowed by the tenant's list (exact names, or `*.domain` for subdomains).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    allowed.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        match a.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == a,
        }
    })
}

#[activities]
impl ConversationActivities {
    /// Runs one flow command. Succeeds with the flow-level outcome (which may be `ok: false`);
    /// fails only for what Temporal should retry, or with [`COMMAND_REJECTED`].
    #[activity(name = "RunFlowCommand")]
    pub async fn run_command(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: CommandRequest,
    ) -> Result<CommandOutcome, ActivityError> {
        match request.command.as_str() {
            "http_request" => self.http_request(&request).await,
            "order.create" => self.order_create(&request).await,
            "ai.analyze" => {
                let text = request
                    .params
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let intents = request
                    .params
                    .get("intents")
                    .cloned()
                    .unwrap_or(Value::Null);
                let analysis = zengine_domain::analyze::analyze(text, &intents);
                Ok(CommandOutcome {
                    ok: true,
                    value: serde_json::to_value(analysis).map_err(|e| rejected(e.to_string()))?,
                    error: None,
                })
            }
            other => Err(rejected(format!(
                "command `{other}` is not available in this deployment yet"
            ))),
        }
    }

    /// Stores a satisfaction survey answer and its `Conversation.SurveyCompleted` event.
    #[activity(name = "RecordSurvey")]
    pub async fn record_survey(
        self: Arc<Self>,
        _ctx: ActivityContext,
        survey: SurveyRecord,
    ) -> Result<(), ActivityError> {
        if !(1..=5).contains(&survey.rating) {
            return Err(rejected(format!(
                "rating {} is not between 1 and 5",
                survey.rating
            )));
        }
        self.db
            .events()
            .record_survey(
                &survey.tenant_id,
                &survey.survey_key,
                &survey.conversation_id,
                survey.rating,
                survey.comment.as_deref(),
            )
            .await?;
        self.db
            .events()
            .record(NewEvent {
                event_id: &format!("{}/survey", survey.survey_key),
                tenant_id: &survey.tenant_id,
                event_type: zengine_domain::events::EventType::ConversationSurveyCompleted,
                subject: &survey.conversation_id,
                payload: &json!({"rating": survey.rating, "comment": survey.comment}),
            })
            .await?;
        Ok(())
    }

    /// Records a domain event (idempotent by `event_id`).
    #[activity(name = "RecordEvent")]
    pub async fn record_event(
        self: Arc<Self>,
        _ctx: ActivityContext,
        event: EventRecord,
    ) -> Result<(), ActivityError> {
        self.db
            .events()
            .record(NewEvent {
                event_id: &event.event_id,
                tenant_id: &event.tenant_id,
                event_type: event.event_type,
                subject: &event.subject,
                payload: &event.payload,
            })
            .await?;
        Ok(())
    }
}

impl ConversationActivities {
    /// `order.create`: params `{customer, customer_name?, type, items, catalog?, address?,
    /// location?}`. `items` are item objects, or `"sku:quantity"` strings priced from `catalog`
    /// (`{"sku": {"name": .., "price": "28.00"}}`). Idempotent by the step's key.
    async fn order_create(
        &self,
        request: &CommandRequest,
    ) -> Result<CommandOutcome, ActivityError> {
        let p = &request.params;
        let text = |key: &str| {
            p.get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let catalog = p.get("catalog").and_then(Value::as_object);
        let mut items = Vec::new();
        for item in p
            .get("items")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            match item {
                Value::String(line) => {
                    let (sku, qty) = line.split_once(':').unwrap_or((line, "1"));
                    let entry = catalog
                        .and_then(|c| c.get(sku.trim()))
                        .ok_or_else(|| rejected(format!("item `{sku}` is not in the catalog")))?;
                    items.push(zengine_domain::order::ItemRequest {
                        sku: Some(sku.trim().to_owned()),
                        name: entry
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or(sku)
                            .to_owned(),
                        quantity: qty
                            .trim()
                            .parse()
                            .map_err(|_| rejected(format!("bad quantity in `{line}`")))?,
                        unit_price: entry.get("price").cloned().unwrap_or(Value::Null),
                    });
                }
                other => items.push(
                    serde_json::from_value(other.clone())
                        .map_err(|e| rejected(format!("bad item {other}: {e}")))?,
                ),
            }
        }
        let location = p
            .get("location")
            .filter(|l| l.is_object())
            .map(|l| serde_json::from_value(l.clone()))
            .transpose()
            .map_err(|e| rejected(format!("bad location: {e}")))?;
        let order = crate::orders::CreateOrderRequest {
            client_order_key: request.idempotency_key.clone(),
            customer: crate::orders::CustomerRef {
                phone: text("customer").unwrap_or_default().to_owned(),
                name: text("customer_name").map(str::to_owned),
                email: None,
                language: None,
                channel: None,
            },
            order_type: text("type").unwrap_or_default().to_owned(),
            items,
            address: text("address").map(str::to_owned),
            location,
            currency: None,
            delivery_window: None,
            service_minutes: None,
        };
        match crate::orders::create_order(&self.db, &request.tenant_id, &order).await {
            Ok((order, _)) => Ok(CommandOutcome {
                ok: true,
                value: json!({
                    "order_id": order.order_id,
                    "number": order.order_number,
                    "total": order.total.to_string(),
                    "status": order.status,
                    "type": order.order_type,
                }),
                error: None,
            }),
            Err(crate::orders::OrderRequestError::Other(e)) => {
                Err(retryable(format!("order.create: {e}")))
            }
            Err(e) => Err(rejected(format!("order.create: {e}"))),
        }
    }

    async fn http_request(
        &self,
        request: &CommandRequest,
    ) -> Result<CommandOutcome, ActivityError> {
        let params = &request.params;
        let url = params
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| rejected("http_request needs params.url"))?;
        let url = reqwest::Url::parse(url).map_err(|e| rejected(format!("bad url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(rejected("http_request only calls http(s) URLs"));
        }
        let target = origin(&url);
        let host = url.host_str().unwrap_or_default();
        let allowed = self
            .db
            .tenants()
            .allowed_http_hosts(&request.tenant_id)
            .await?;
        if !host_allowed(host, &allowed) {
            return Err(rejected(format!(
                "host `{host}` is not in the tenant's allowed_http_hosts"
            )));
        }
        let method = params
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("GET");
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| rejected(format!("bad method `{method}`")))?;
        let mut call = self
            .http
            .request_url(method, url)
            .map_err(|refused| rejected(format!("http_request: {refused}")))?
            .header("idempotency-key", &request.idempotency_key);
        if let Some(headers) = params.get("headers").and_then(Value::as_object) {
            for (name, value) in headers {
                if let Some(value) = value.as_str() {
                    call = call.header(name.as_str(), value);
                }
            }
        }
        if let Some(body) = params.get("body") {
            call = call.json(body);
        }
        let response =
            call.send()
                .await
                .map_err(|e| match zengine_channels::outbound::refusal(&e) {
                    // The name resolves only inside the platform: no retry will change that.
                    Some(refused) => rejected(format!("http_request: {refused}")),
                    None => retryable(format!(
                        "http_request to {target} failed: {}",
                        zengine_channels::outbound::describe(&e)
                    )),
                })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            retryable(format!(
                "http_request to {target}: reading the body failed: {}",
                zengine_channels::outbound::describe(&e)
            ))
        })?;
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(retryable(format!(
                "http_request to {target} answered {status}"
            )));
        }
        let body = &bytes[..bytes.len().min(MAX_RESPONSE_BYTES)];
        let value = serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        if status.is_success() {
            Ok(CommandOutcome {
                ok: true,
                value: json!({"status": status.as_u16(), "body": value}),
                error: None,
            })
        } else {
            // A 4xx will not change on retry: the flow takes its failure edge.
            Ok(CommandOutcome {
                ok: false,
                value: json!({"status": status.as_u16(), "body": value}),
                error: Some(format!("HTTP {}", status.as_u16())),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn allowed_hosts_match_exactly_or_by_subdomain_wildcard() {
        let allowed = vec!["api.example.com".to_owned(), "*.tenant.pe".to_owned()];
        assert!(host_allowed("API.example.com", &allowed));
        assert!(host_allowed("pedidos.tenant.pe", &allowed));
        assert!(!host_allowed("tenant.pe", &allowed));
        assert!(!host_allowed("api.example.com.evil.io", &allowed));
        assert!(!host_allowed("example.com", &allowed));
        assert!(!host_allowed("anything", &[]));
    }
}
