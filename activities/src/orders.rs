//! Order activities and the shared order-creation logic (used by `POST /v1/orders` and by the
//! `order.create` flow command).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use zengine_domain::order::{
    FieldError, ItemRequest, OrderStatus, OrderType, check_destination, price_lines,
};
use zengine_domain::{Location, Reply, TenantId};

use crate::channels::DeliverReply;

use zengine_storage::{CreateOrderError, Database, DeliveryWindow, NewEvent, NewOrder, Order};

/// The channels order notifications can go out on, in the default order of preference.
pub const NOTIFY_CHANNELS: [&str; 3] = ["whatsapp", "sms", "email"];

/// A request to create an order (the body of `POST /v1/orders`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    /// The caller's idempotency key for this order.
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1, max = 128), regex(pattern = r"\S"))
    )]
    pub client_order_key: String,
    pub customer: CustomerRef,
    /// `pickup` or `delivery` (also accepted in any case, and `recojo` for pickup). A delivery
    /// needs an `address` or a `location`.
    #[serde(rename = "type")]
    #[cfg_attr(
        feature = "schema",
        schemars(extend("enum" = ["pickup", "delivery"]))
    )]
    pub order_type: String,
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 100)))]
    pub items: Vec<ItemRequest>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub location: Option<Location>,
    /// ISO 4217; `PEN` when absent.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(regex(pattern = "^[A-Z]{3}$")))]
    pub currency: Option<String>,
    /// When the delivery may arrive (RFC 3339 instants); used by route optimisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_window: Option<WindowRequest>,
    /// Minutes spent at the stop; the route plan's `service_minutes` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 1440)))]
    pub service_minutes: Option<i64>,
}

/// `delivery_window` of [`CreateOrderRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct WindowRequest {
    #[cfg_attr(feature = "schema", schemars(extend("format" = "date-time")))]
    pub start: String,
    /// After `start`.
    #[cfg_attr(feature = "schema", schemars(extend("format" = "date-time")))]
    pub end: String,
}

/// Parses and checks a delivery window (errors name `delivery_window.start`/`.end`).
pub fn check_window(w: &WindowRequest) -> Result<DeliveryWindow, FieldError> {
    let parse = |name: &str, value: &str| {
        chrono::DateTime::parse_from_rfc3339(value)
            .map(|t| t.timestamp())
            .map_err(|e| {
                field(
                    &format!("delivery_window.{name}"),
                    &format!("`{value}` is not an RFC 3339 instant: {e}"),
                )
            })
    };
    let start = parse("start", &w.start)?;
    let end = parse("end", &w.end)?;
    if end < start {
        return Err(field(
            "delivery_window.end",
            "the delivery window ends before it starts",
        ));
    }
    Ok(DeliveryWindow { start, end })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomerRef {
    /// 7 to 15 digits, optionally after `+` (spaces are ignored).
    #[cfg_attr(
        feature = "schema",
        schemars(regex(pattern = r"^\s*\+?(\s*[0-9]){7,15}\s*$"))
    )]
    pub phone: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Where e-mail notifications go (the tenant's `ses-email` account sends them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(email))]
    pub email: Option<String>,
    /// Language of the customer's notifications (`es`, `en`, `en_US`); default: the tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(regex(pattern = "^[A-Za-z_-]{2,8}$")))]
    pub language: Option<String>,
    /// Channel of the customer's notifications (`whatsapp`, `sms`, `email`); default: the
    /// first of these the tenant has an account for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(extend("enum" = ["whatsapp", "sms", "email", null]))
    )]
    pub channel: Option<String>,
}

/// Why an order could not be created.
#[derive(Debug, thiserror::Error)]
pub enum OrderRequestError {
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("client_order_key was already used for a different order")]
    KeyReused,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn field(field: &str, message: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

/// Validates, prices and stores an order (idempotent by `client_order_key`); returns the order
/// and whether this call created it.
pub async fn create_order(
    db: &Database,
    tenant_id: &TenantId,
    request: &CreateOrderRequest,
) -> Result<(Order, bool), OrderRequestError> {
    let mut errors = Vec::new();
    let key = request.client_order_key.trim();
    if key.is_empty() || key.len() > 128 {
        errors.push(field("client_order_key", "must be 1 to 128 characters"));
    }
    let phone: String = request
        .customer
        .phone
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    if !(7..=15).contains(&digits) || !phone.chars().all(|c| c.is_ascii_digit() || c == '+') {
        errors.push(field(
            "customer.phone",
            "must be a phone number (7 to 15 digits, optional +)",
        ));
    }
    let customer = &request.customer;
    if customer
        .email
        .as_deref()
        .is_some_and(|e| !zengine_channels::aws::ses::valid_address(e))
    {
        errors.push(field("customer.email", "must be an e-mail address"));
    }
    if customer.language.as_deref().is_some_and(|l| {
        !(2..=8).contains(&l.len())
            || !l
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'-')
    }) {
        errors.push(field(
            "customer.language",
            "must be a language code such as es or en_US",
        ));
    }
    if customer
        .channel
        .as_deref()
        .is_some_and(|c| !NOTIFY_CHANNELS.contains(&c))
    {
        errors.push(field("customer.channel", "must be whatsapp, sms or email"));
    }
    let mut metadata = serde_json::Map::new();
    for (key, value) in [
        ("email", &customer.email),
        ("language", &customer.language),
        ("channel", &customer.channel),
    ] {
        if let Some(v) = value {
            metadata.insert(key.to_owned(), serde_json::Value::String(v.clone()));
        }
    }
    let metadata = (!metadata.is_empty()).then_some(serde_json::Value::Object(metadata));
    let order_type: Option<OrderType> = match request.order_type.parse() {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(field("type", &e));
            None
        }
    };
    let currency = request.currency.clone().unwrap_or_else(|| "PEN".to_owned());
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        errors.push(field("currency", "must be an ISO 4217 code such as PEN"));
    }
    let priced = match price_lines(&request.items) {
        Ok(p) => Some(p),
        Err(mut e) => {
            errors.append(&mut e);
            None
        }
    };
    if let Some(kind) = order_type
        && let Err(e) = check_destination(kind, request.address.as_deref(), request.location)
    {
        errors.push(e);
    }
    let window = match request
        .delivery_window
        .as_ref()
        .map(check_window)
        .transpose()
    {
        Ok(w) => w,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if request
        .service_minutes
        .is_some_and(|m| !(0..=24 * 60).contains(&m))
    {
        errors.push(field("service_minutes", "must be 0 to 1440"));
    }
    let (Some(order_type), Some((lines, total)), true) = (order_type, priced, errors.is_empty())
    else {
        return Err(OrderRequestError::Invalid(errors));
    };
    let summary = lines
        .iter()
        .map(|l| format!("{} x {}", l.quantity, l.name))
        .collect::<Vec<_>>()
        .join("; ");
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(request).map_err(anyhow::Error::from)?);
    let hash = hex::encode(hasher.finalize());
    db.orders()
        .create(NewOrder {
            tenant_id,
            client_key: key,
            request_hash: &hash,
            customer_phone: &phone,
            customer_name: request.customer.name.as_deref(),
            customer_metadata: metadata.as_ref(),
            order_type,
            lines: &lines,
            total,
            currency: &currency,
            address: request.address.as_deref(),
            location: request.location,
            delivery_window: window,
            service_minutes: request.service_minutes,
            summary: &summary,
        })
        .await
        .map_err(|e| match e {
            CreateOrderError::KeyReused => OrderRequestError::KeyReused,
            CreateOrderError::Other(e) => OrderRequestError::Other(e),
        })
}

/// Input of [`OrderActivities::set_status`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusChange {
    pub tenant_id: TenantId,
    pub order_id: String,
    pub from: OrderStatus,
    pub to: OrderStatus,
    /// Who asked: `operator`, `payment`, `tracking`, …
    pub source: String,
    pub reason: Option<String>,
    /// Deterministic, from the workflow: the event id of this change.
    pub event_id: String,
}

/// Input of [`OrderActivities::status_notice`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusNotice {
    pub tenant_id: TenantId,
    pub order_id: String,
    pub status: OrderStatus,
    /// Derived in the workflow (`{order workflow id}/notify-{n}`).
    pub client_message_id: String,
}

/// The customer's text for an order in `status`, in `language` (Spanish unless English).
pub fn status_text(language: &str, number: i64, status: OrderStatus) -> Option<String> {
    let english = language.split(['_', '-']).next() == Some("en");
    Some(match (status, english) {
        (OrderStatus::Pending, _) => return None,
        (OrderStatus::Paid, false) => format!("Recibimos el pago de tu pedido #{number}."),
        (OrderStatus::Paid, true) => format!("We received the payment for your order #{number}."),
        (OrderStatus::Preparing, false) => format!("Estamos preparando tu pedido #{number}."),
        (OrderStatus::Preparing, true) => format!("We are preparing your order #{number}."),
        (OrderStatus::Dispatched, false) => format!("Tu pedido #{number} está en camino."),
        (OrderStatus::Dispatched, true) => format!("Your order #{number} is on its way."),
        (OrderStatus::Delivered, false) => {
            format!("Tu pedido #{number} fue entregado. ¡Gracias!")
        }
        (OrderStatus::Delivered, true) => format!("Your order #{number} was delivered. Thank you!"),
        (OrderStatus::Cancelled, false) => format!("Tu pedido #{number} fue cancelado."),
        (OrderStatus::Cancelled, true) => format!("Your order #{number} was cancelled."),
    })
}

pub struct OrderActivities {
    db: Database,
    registry: zengine_channels::Registry,
}

impl OrderActivities {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            registry: zengine_channels::Registry::standard(Default::default()),
        }
    }
}

#[activities]
impl OrderActivities {
    /// The message telling the customer about a status change, addressed through the tenant's
    /// account for the customer's channel (their `channel`, else the first of whatsapp, sms,
    /// email the tenant has an account for and the customer an address on); `None` when
    /// notifications are off or the customer cannot be reached.
    #[activity(name = "OrderStatusNotice")]
    pub async fn status_notice(
        self: Arc<Self>,
        _ctx: ActivityContext,
        notice: StatusNotice,
    ) -> Result<Option<DeliverReply>, ActivityError> {
        let settings = self.db.payments().settings(&notice.tenant_id).await?;
        let settings = settings.notifications;
        if !settings.enabled {
            return Ok(None);
        }
        let Some(contact) = self
            .db
            .orders()
            .contact(&notice.tenant_id, &notice.order_id)
            .await?
        else {
            return Ok(None);
        };
        let meta = |key: &str| {
            contact
                .metadata
                .get(key)
                .and_then(serde_json::Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let language = meta("language").unwrap_or(settings.language.clone());
        let Some(text) = status_text(&language, contact.order_number, notice.status) else {
            return Ok(None);
        };
        let accounts = self.db.channels().accounts(&notice.tenant_id).await?;
        let preferred = meta("channel");
        let candidates: Vec<&str> = match preferred.as_deref() {
            Some(c) => vec![c],
            None => NOTIFY_CHANNELS.to_vec(),
        };
        for channel in candidates {
            let Some(account) = self.registry.for_channel(channel, &accounts) else {
                continue;
            };
            let recipient = match channel {
                "whatsapp" => Some(contact.phone.trim_start_matches('+').to_owned()),
                "sms" => Some(contact.phone.clone()),
                "email" => meta("email"),
                _ => None,
            };
            let Some(recipient) = recipient else {
                continue;
            };
            let reply = match (&settings.template, channel) {
                (Some(name), "whatsapp" | "email") => Reply::Template {
                    name: name.clone(),
                    language: language.clone(),
                    parameters: vec![
                        contact.order_number.to_string(),
                        notice.status.to_string(),
                        contact.name.clone().unwrap_or_default(),
                    ],
                    fallback: text.clone(),
                },
                _ => Reply::text(text.clone()),
            };
            return Ok(Some(DeliverReply {
                tenant_id: notice.tenant_id.clone(),
                channel: channel.to_owned(),
                recipient,
                client_message_id: notice.client_message_id.clone(),
                reply,
                strategy: Some(account.strategy.clone()),
            }));
        }
        Ok(None)
    }

    /// Writes a status change (compare-and-set, so a retry after a crash is harmless) and its
    /// `Order.StatusChanged` event.
    #[activity(name = "SetOrderStatus")]
    pub async fn set_status(
        self: Arc<Self>,
        _ctx: ActivityContext,
        change: StatusChange,
    ) -> Result<(), ActivityError> {
        let moved = self
            .db
            .orders()
            .set_status(&change.tenant_id, &change.order_id, change.from, change.to)
            .await?;
        if !moved {
            let current = self
                .db
                .orders()
                .get(&change.tenant_id, &change.order_id)
                .await?;
            match current {
                // A retry of a write that already happened.
                Some(order) if order.status == change.to => {}
                Some(order) => {
                    return Err(ActivityError::application(
                        ApplicationFailure::non_retryable(anyhow::anyhow!(
                            "order {} is {} in the database, expected {}",
                            change.order_id,
                            order.status,
                            change.from
                        )),
                    ));
                }
                None => {
                    return Err(ActivityError::application(
                        ApplicationFailure::non_retryable(anyhow::anyhow!(
                            "order {} does not exist",
                            change.order_id
                        )),
                    ));
                }
            }
        }
        self.db
            .events()
            .record(NewEvent {
                event_id: &change.event_id,
                tenant_id: &change.tenant_id,
                event_type: zengine_domain::events::EventType::OrderStatusChanged,
                subject: &change.order_id,
                payload: &json!({"from": change.from, "to": change.to, "source": change.source, "reason": change.reason}),
            })
            .await?;
        Ok(())
    }
}
