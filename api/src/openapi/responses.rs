//! Success response schemas of the endpoints whose bodies are built with `json!` (orders,
//! payments, routes, events, dead letters, channel health, assistance, webchat). They name the
//! fields every answer carries and their types; the operator API's schemas are derived from its
//! types instead. `tests/e2e/properties.rs` checks real answers against them (schemathesis
//! `response_schema_conformance`), so a field renamed in a handler fails there.

use serde_json::{Map, Value, json};

fn nullable(kind: &str) -> Value {
    json!({"type": [kind, "null"]})
}

fn string() -> Value {
    json!({"type": "string"})
}

fn integer() -> Value {
    json!({"type": "integer"})
}

/// Milliseconds since the Unix epoch.
fn millis() -> Value {
    json!({"type": "integer", "description": "milliseconds since the Unix epoch"})
}

/// A decimal amount as a string (`"28.00"`).
fn money() -> Value {
    json!({"type": "string", "pattern": "^-?[0-9]+\\.[0-9]{2}$"})
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn array_of(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

/// An object with these properties, all required.
fn object(properties: Value) -> Value {
    let required: Vec<String> = properties
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    json!({"type": "object", "properties": properties, "required": required})
}

fn location() -> Value {
    json!({"type": ["object", "null"], "properties": {
        "lat": {"type": "number"}, "lon": {"type": "number"}}, "required": ["lat", "lon"]})
}

/// The named schemas, for `/components/schemas`.
pub fn components() -> Map<String, Value> {
    let mut c = Map::new();
    c.insert(
        "Order".into(),
        object(json!({
            "order_id": string(),
            "order_number": integer(),
            "client_order_key": nullable("string"),
            "status": {"type": "string", "enum": ["PENDING", "PAID", "PREPARING", "DISPATCHED",
                "DELIVERED", "CANCELLED"]},
            "type": {"type": "string", "enum": ["delivery", "pickup"]},
            "customer": object(json!({"phone": string(), "name": nullable("string")})),
            "items": array_of(object(json!({
                "sku": nullable("string"), "name": string(), "quantity": integer(),
                "unit_price": money(), "line_total": money(),
            }))),
            "total": money(),
            "currency": string(),
            "address": nullable("string"),
            "location": location(),
            "delivery_window": {"type": ["object", "null"]},
            "service_minutes": nullable("integer"),
            "summary": nullable("string"),
            "created_at": millis(),
            "updated_at": millis(),
        })),
    );
    c.insert(
        "OrderPage".into(),
        object(json!({
            "orders": array_of(reference("Order")),
            "next_before": nullable("integer"),
        })),
    );
    c.insert(
        "Payment".into(),
        object(json!({
            "payment_id": string(),
            "order_id": string(),
            "status": {"type": "string",
                "enum": ["PENDING", "ASSIGNED", "MANUAL_REVIEW", "REJECTED"]},
            "operation_code": nullable("string"),
            "amount": {"oneOf": [money(), {"type": "null"}]},
            "sender": nullable("string"),
            "reasons": array_of(string()),
            "extraction": {"type": ["object", "null"]},
            "raw_ocr": nullable("string"),
            "media_ref": nullable("string"),
            "reviewed_by": nullable("string"),
            "reviewed_at": {"type": ["integer", "null"]},
            "created_at": millis(),
            "updated_at": millis(),
        })),
    );
    c.insert(
        "PaymentList".into(),
        object(json!({"payments": array_of(reference("Payment"))})),
    );
    let stop = object(json!({
        "seq": integer(), "order_id": string(), "demand": integer(), "location": location(),
        "service_start_s": integer(), "eta": nullable("string"),
    }));
    c.insert(
        "RouteAccepted".into(),
        object(json!({"route_id": string(), "status": {"const": "RUNNING"}})),
    );
    c.insert(
        "Route".into(),
        object(json!({
            "route_id": string(),
            "status": {"type": "string", "enum": ["RUNNING", "DONE", "CANCELLED", "FAILED"]},
            "progress": {"type": "object"},
            "result": {"oneOf": [{"type": "null"}, object(json!({
                "feasible": {"type": "boolean"},
                "routes": array_of(object(json!({
                    "driver_id": string(), "distance_m": integer(), "stops": array_of(stop.clone()),
                }))),
                "unassigned": array_of(object(json!({
                    "order_id": string(),
                    "reason": {"type": "string",
                        "enum": ["capacity", "time_window", "shift", "no_location"]},
                }))),
                "summary": {"type": "object"},
            }))]},
            "error": {},
            "created_at": millis(),
        })),
    );
    c.insert(
        "DriverRoutes".into(),
        object(json!({
            "driver_id": string(),
            "routes": array_of(object(json!({
                "route_id": string(), "distance_m": integer(), "stops": array_of(stop),
                "created_at": millis(),
            }))),
        })),
    );
    c.insert(
        "EventPage".into(),
        object(json!({
            "events": array_of(object(json!({
                "event_id": string(), "type": string(), "subject": string(), "payload": {},
                "occurred_at": millis(), "seq": integer(),
            }))),
            "next_after": {"type": "string", "pattern": "^[0-9]+$"},
        })),
    );
    c.insert(
        "DeadLetters".into(),
        object(json!({"dead_letters": array_of(object(json!({
            "client_message_id": string(), "strategy": string(), "recipient": string(),
            "state": string(), "reply": {}, "attempts": integer(),
            "last_error": nullable("string"), "created_at": millis(), "updated_at": millis(),
        })))})),
    );
    c.insert(
        "Redrive".into(),
        object(json!({"workflow_id": string(), "client_message_id": string()})),
    );
    c.insert(
        "ChannelHealth".into(),
        object(json!({"accounts": array_of(object(json!({
            "strategy": string(),
            "status": {"type": "string", "enum": ["UP", "DOWN"]},
            "detail": nullable("string"),
            "checked_at": millis(),
            "changed_at": millis(),
        })))})),
    );
    c.insert(
        "AssistanceEventDraft".into(),
        object(json!({
            "event_id": string(), "status": string(), "category": nullable("string"),
            "country": nullable("string"), "city": nullable("string"),
            "beneficiary_name": nullable("string"), "beneficiary_phone": nullable("string"),
            "voucher_code": nullable("string"), "description": nullable("string"),
            "address": nullable("string"), "created_at": millis(), "updated_at": millis(),
        })),
    );
    c.insert(
        "AssistanceEvent".into(),
        object(json!({
            "event": reference("AssistanceEventDraft"),
            "providers": {"type": "array", "items": {"type": "object"}},
            "status_changes": {"type": "array", "items": {"type": "object"}},
            "notes": {"type": "array", "items": {"type": "object"}},
            "phone_consultations": {"type": "array", "items": {"type": "object"}},
            "log": {"type": "array", "items": {"type": "object"}},
        })),
    );
    c.insert(
        "Catalogue".into(),
        object(json!({
            "catalogue": string(),
            "items": array_of(object(json!({"code": string(), "name": string()}))),
        })),
    );
    c.insert(
        "ProviderList".into(),
        object(json!({"providers": array_of(object(json!({
            "provider_id": string(), "name": string(), "category": string(),
            "active": {"type": "boolean"},
        })))})),
    );
    c.insert(
        "WebchatReply".into(),
        object(json!({
            "conversation_id": string(),
            "turn": integer(),
            "replies": array_of(json!({"type": "object", "properties": {"type": string()},
                "required": ["type"]})),
            "mode": string(),
        })),
    );
    c.insert(
        "WebchatOutbox".into(),
        object(json!({"conversation_id": string(), "messages": {"type": "array", "items": {"type": "object"}}})),
    );
    c.insert(
        "TrackingTimeline".into(),
        object(json!({"order_id": string(), "status": string(), "events": {"type": "array", "items": {"type": "object"}}})),
    );
    c.insert(
        "Readiness".into(),
        object(json!({
            "status": {"type": "string", "enum": ["ready", "not ready"]},
            "database": {"type": "string", "enum": ["ok", "unavailable"]},
            "temporal": {"type": "string", "enum": ["ok", "unavailable"]},
        })),
    );
    tenancy(&mut c);
    c
}

/// Tenants, API keys and published flows.
fn tenancy(c: &mut Map<String, Value>) {
    c.insert(
        "TenantRecord".into(),
        object(json!({
            "tenant_id": string(), "name": string(), "main_flow_id": string(),
            "status": {"type": "string", "enum": ["active", "suspended", "erased"]},
            "suspended_at": nullable("integer"), "created_at": millis(), "updated_at": millis(),
        })),
    );
    c.insert(
        "TenantList".into(),
        object(json!({
            "tenants": array_of(reference("TenantRecord")),
            "next_after": nullable("string"),
        })),
    );
    c.insert(
        "TenantStatusChange".into(),
        object(json!({"tenant": reference("TenantRecord"), "changed": {"type": "boolean"}})),
    );
    let key = json!({
        "key_id": string(), "tenant_id": string(), "name": string(),
        "role": {"type": "string", "enum": ["viewer", "operator"]},
        "rate_per_minute": nullable("integer"), "burst": nullable("integer"),
        "created_by": string(), "created_at": millis(), "revoked_at": nullable("integer"),
    });
    c.insert("ApiKey".into(), object(key.clone()));
    let mut created = key;
    created["key"] = json!({"type": "string", "description": "`zk_<id>_<secret>`, shown once"});
    c.insert("ApiKeyCreated".into(), object(created));
    c.insert(
        "ApiKeyList".into(),
        object(json!({"api_keys": array_of(reference("ApiKey"))})),
    );
    c.insert(
        "FlowPublished".into(),
        object(json!({
            "tenant": string(), "flow": string(), "version": integer(),
            "main": {"type": "boolean", "description": "whether it is the tenant's main flow"},
        })),
    );
}
