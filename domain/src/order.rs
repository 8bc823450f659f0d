//! Orders: validation of a new order, totals, and the status state machine.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::message::Location;
use crate::money::Cents;

/// Lifecycle of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Paid,
    Preparing,
    Dispatched,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::Preparing,
        OrderStatus::Dispatched,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Paid => "PAID",
            OrderStatus::Preparing => "PREPARING",
            OrderStatus::Dispatched => "DISPATCHED",
            OrderStatus::Delivered => "DELIVERED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// Whether the order may move from `self` to `next`. PENDING → PAID → PREPARING →
    /// DISPATCHED → DELIVERED (a pickup order may go PREPARING → DELIVERED); CANCELLED from
    /// any state before DISPATCHED.
    pub fn can_become(self, next: OrderStatus, kind: OrderType) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Pending, Paid)
                | (Paid, Preparing)
                | (Preparing, Dispatched)
                | (Dispatched, Delivered)
                | (Pending | Paid | Preparing, Cancelled)
        ) || (kind == OrderType::Pickup && self == Preparing && next == Delivered)
    }

    /// No further change is possible.
    pub fn is_final(self) -> bool {
        matches!(self, OrderStatus::Delivered | OrderStatus::Cancelled)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown order status `{s}`"))
    }
}

/// Pickup at the store, or delivery to an address or location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    Pickup,
    Delivery,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Pickup => "pickup",
            OrderType::Delivery => "delivery",
        }
    }
}

impl FromStr for OrderType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pickup" | "recojo" => Ok(OrderType::Pickup),
            "delivery" => Ok(OrderType::Delivery),
            other => Err(format!("unknown order type `{other}` (pickup or delivery)")),
        }
    }
}

/// One line of an order as requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ItemRequest {
    #[serde(default)]
    pub sku: Option<String>,
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1, max = 200), regex(pattern = r"\S"))
    )]
    pub name: String,
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 1000)))]
    pub quantity: i64,
    /// Unit price as text or a JSON number, e.g. `"28.00"` or `28.5`.
    #[cfg_attr(feature = "schema", schemars(with = "UnitPrice"))]
    pub unit_price: serde_json::Value,
}

/// The schema of [`ItemRequest::unit_price`]: a decimal as text or a JSON number.
#[cfg(feature = "schema")]
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum UnitPrice {
    Text(#[schemars(regex(pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$"))] String),
    Number(#[schemars(range(min = 0))] f64),
}

/// A validated order line with exact amounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: Option<String>,
    pub name: String,
    pub quantity: i64,
    pub unit_price: Cents,
    pub line_total: Cents,
}

/// A problem with a new order, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.message)
    }
}

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Validates the lines and computes the total. Limits: 1–100 lines, quantity 1–1000, prices
/// ≥ 0 with at most 2 decimals.
pub fn price_lines(items: &[ItemRequest]) -> Result<(Vec<OrderLine>, Cents), Vec<FieldError>> {
    let mut errors = Vec::new();
    if items.is_empty() {
        errors.push(err("items", "an order needs at least one item"));
    }
    if items.len() > 100 {
        errors.push(err("items", "at most 100 items"));
    }
    let mut lines = Vec::new();
    let mut total = Cents(0);
    for (i, item) in items.iter().enumerate() {
        let at = |f: &str| format!("items[{i}].{f}");
        if item.name.trim().is_empty() || item.name.len() > 200 {
            errors.push(err(at("name"), "must be 1 to 200 characters"));
        }
        if !(1..=1000).contains(&item.quantity) {
            errors.push(err(at("quantity"), "must be between 1 and 1000"));
        }
        let price = match &item.unit_price {
            serde_json::Value::String(s) => Cents::parse(s).map_err(|e| e.to_string()),
            serde_json::Value::Number(n) => Cents::parse(&n.to_string()).map_err(|e| e.to_string()),
            _ => Err("must be an amount such as \"12.50\"".to_owned()),
        };
        match price {
            Ok(p) if p.0 < 0 => errors.push(err(at("unit_price"), "must not be negative")),
            Ok(p) => {
                let line_total = p.checked_mul(item.quantity).unwrap_or(Cents(i64::MAX));
                total = total.checked_add(line_total).unwrap_or(Cents(i64::MAX));
                lines.push(OrderLine {
                    sku: item.sku.clone(),
                    name: item.name.trim().to_owned(),
                    quantity: item.quantity,
                    unit_price: p,
                    line_total,
                });
            }
            Err(message) => errors.push(err(at("unit_price"), message)),
        }
    }
    if errors.is_empty() {
        Ok((lines, total))
    } else {
        Err(errors)
    }
}

/// Checks the delivery data of an order.
pub fn check_destination(
    kind: OrderType,
    address: Option<&str>,
    location: Option<Location>,
) -> Result<(), FieldError> {
    if let Some(l) = location
        && (!(-90.0..=90.0).contains(&l.lat) || !(-180.0..=180.0).contains(&l.lon))
    {
        return Err(err("location", "latitude or longitude out of range"));
    }
    if kind == OrderType::Delivery
        && address.is_none_or(|a| a.trim().is_empty())
        && location.is_none()
    {
        return Err(err(
            "address",
            "a delivery order needs an address or a location",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(name: &str, quantity: i64, price: serde_json::Value) -> ItemRequest {
        ItemRequest {
            sku: None,
            name: name.into(),
            quantity,
            unit_price: price,
        }
    }

    #[test]
    fn totals_are_exact() {
        let (lines, total) = price_lines(&[
            item("Lomo", 2, json!("28.00")),
            item("Chicha", 3, json!(0.1)),
            item("Agua", 1, json!(0)),
        ])
        .unwrap();
        assert_eq!(total, Cents(5630));
        assert_eq!(lines[1].line_total, Cents(30));
    }

    #[test]
    fn bad_lines_are_named() {
        let errors = price_lines(&[
            item("", 0, json!("-1")),
            item("x", 1, json!("1.234")),
            item("y", 1, json!(true)),
        ])
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "items[0].name",
                "items[0].quantity",
                "items[0].unit_price",
                "items[1].unit_price",
                "items[2].unit_price"
            ]
        );
        assert_eq!(price_lines(&[]).unwrap_err()[0].field, "items");
    }

    #[test]
    fn delivery_needs_a_destination_pickup_does_not() {
        assert!(check_destination(OrderType::Pickup, None, None).is_ok());
        assert!(check_destination(OrderType::Delivery, Some("Av. Larco 123"), None).is_ok());
        assert!(
            check_destination(
                OrderType::Delivery,
                None,
                Some(Location {
                    lat: -12.1,
                    lon: -77.0
                })
            )
            .is_ok()
        );
        assert_eq!(
            check_destination(OrderType::Delivery, Some("  "), None)
                .unwrap_err()
                .field,
            "address"
        );
        assert_eq!(
            check_destination(
                OrderType::Pickup,
                None,
                Some(Location {
                    lat: 99.0,
                    lon: 0.0
                })
            )
            .unwrap_err()
            .field,
            "location"
        );
    }

    #[test]
    fn status_transitions_follow_the_lifecycle() {
        use OrderStatus::*;
        let d = OrderType::Delivery;
        assert!(
            Pending.can_become(Paid, d)
                && Paid.can_become(Preparing, d)
                && Preparing.can_become(Dispatched, d)
                && Dispatched.can_become(Delivered, d)
        );
        assert!(!Pending.can_become(Delivered, d));
        assert!(!Preparing.can_become(Delivered, d));
        assert!(Preparing.can_become(Delivered, OrderType::Pickup));
        assert!(
            Paid.can_become(Cancelled, d)
                && !Dispatched.can_become(Cancelled, d)
                && !Delivered.can_become(Cancelled, d)
        );
        assert_eq!("paid".parse::<OrderStatus>(), Ok(Paid));
        assert!(Delivered.is_final() && Cancelled.is_final() && !Paid.is_final());
    }
}
