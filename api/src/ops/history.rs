//! A workflow history as a readable timeline: event type names instead of numbers, times and
//! durations, payloads decoded (through the client's codec) into JSON, and failures as cause
//! chains.

use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};
use temporalio_common::protos::temporal::api::common::v1::Payload;
use temporalio_common::protos::temporal::api::enums::v1::EventType;
use temporalio_common::protos::temporal::api::history::v1::HistoryEvent;

use super::{FailureCause, Operations};

/// One event of the timeline.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TimelineEvent {
    pub event_id: i64,
    /// E.g. `ActivityTaskScheduled`.
    pub event_type: String,
    /// RFC 3339, milliseconds.
    pub time: Option<String>,
    /// Since the event before it (on the same page).
    pub since_previous_ms: Option<i64>,
    /// Since the event that scheduled or started what this event ends (activity, workflow task,
    /// timer, child workflow), when that event is on the same page.
    pub since_scheduled_ms: Option<i64>,
    /// The event's attributes, payloads decoded to JSON. Enum fields keep Temporal's numbers.
    pub details: Value,
    /// The event's failure, outermost first (failed activities, workflow tasks, workflows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure: Vec<FailureCause>,
}

/// The event type without its `EVENT_TYPE_` prefix, in CamelCase (`ActivityTaskScheduled`).
pub fn event_type_name(event_type: i32) -> String {
    let Ok(kind) = EventType::try_from(event_type) else {
        return event_type.to_string();
    };
    super::enum_words(kind.as_str_name(), "EVENT_TYPE_")
}

fn b64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// A payload as JSON: `json/plain` parsed, `binary/null` as null; anything else (still
/// encoded, e.g. encrypted with a key this process lacks) as its encoding and base64 bytes.
pub fn payload_json(payload: &Payload) -> Value {
    let encoding = payload
        .metadata
        .get("encoding")
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .unwrap_or_default();
    match encoding.as_str() {
        "binary/null" => Value::Null,
        "json/plain" | "json/protobuf" => {
            serde_json::from_slice(&payload.data).unwrap_or_else(|_| opaque(&encoding, payload))
        }
        _ => opaque(&encoding, payload),
    }
}

fn opaque(encoding: &str, payload: &Payload) -> Value {
    serde_json::json!({
        "encoding": encoding,
        "data_base64": base64::engine::general_purpose::STANDARD.encode(&payload.data),
    })
}

/// A pbjson-serialised `Payload` (`{"metadata": {"encoding": <b64>}, "data": <b64>}`) back as
/// a payload.
fn as_payload(value: &Map<String, Value>) -> Option<Payload> {
    let metadata = value.get("metadata")?.as_object()?;
    metadata.get("encoding")?;
    if value
        .keys()
        .any(|k| k != "metadata" && k != "data" && k != "externalPayloads")
    {
        return None;
    }
    let mut decoded = std::collections::HashMap::new();
    for (key, v) in metadata {
        decoded.insert(key.clone(), b64(v.as_str()?)?);
    }
    let data = match value.get("data") {
        Some(d) => b64(d.as_str()?)?,
        None => Vec::new(),
    };
    Some(Payload {
        metadata: decoded,
        data,
        ..Payload::default()
    })
}

/// Collects every payload in `value`, with the JSON pointer where it sits.
fn collect(value: &Value, pointer: String, out: &mut Vec<(String, Payload)>) {
    match value {
        Value::Object(map) => {
            if let Some(payload) = as_payload(map) {
                out.push((pointer, payload));
                return;
            }
            for (key, v) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                collect(v, format!("{pointer}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect(v, format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// `{"payloads": [..]}` (a `Payloads` message) becomes the bare list.
fn flatten_payloads(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.len() == 1
                && let Some(Value::Array(items)) = map.get_mut("payloads")
            {
                let items = std::mem::take(items);
                *value = Value::Array(items);
                if let Value::Array(items) = value {
                    items.iter_mut().for_each(flatten_payloads);
                }
                return;
            }
            map.values_mut().for_each(flatten_payloads);
        }
        Value::Array(items) => items.iter_mut().for_each(flatten_payloads),
        _ => {}
    }
}

/// The chain of a pbjson-serialised failure.
fn failure_chain_json(failure: &Value) -> Vec<FailureCause> {
    let mut chain = Vec::new();
    let mut next = Some(failure);
    while let Some(f) = next.filter(|f| f.is_object()) {
        let text = |key: &str| f.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
        let failure_type = if let Some(info) = f.get("applicationFailureInfo") {
            info.get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        } else {
            [
                ("timeoutFailureInfo", "timeout"),
                ("canceledFailureInfo", "canceled"),
                ("terminatedFailureInfo", "terminated"),
                ("serverFailureInfo", "server"),
                ("activityFailureInfo", "activity"),
                ("childWorkflowExecutionFailureInfo", "child_workflow"),
            ]
            .iter()
            .find(|(key, _)| f.get(*key).is_some())
            .map_or(String::new(), |(_, name)| (*name).to_owned())
        };
        chain.push(FailureCause {
            message: text("message"),
            failure_type,
            source: text("source"),
        });
        next = f.get("cause");
    }
    chain
}

fn millis(event: &HistoryEvent) -> Option<i64> {
    event
        .event_time
        .as_ref()
        .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// Renders a page of events.
pub async fn timeline(ops: &Operations, events: Vec<HistoryEvent>) -> Vec<TimelineEvent> {
    let mut times = std::collections::HashMap::new();
    let mut previous: Option<i64> = None;
    let mut out = Vec::with_capacity(events.len());
    for event in &events {
        let at = millis(event);
        if let Some(at) = at {
            times.insert(event.event_id, at);
        }
        let mut details = serde_json::to_value(&event.attributes)
            .ok()
            .and_then(|v| match v {
                // The oneof serialises as `{"<Kind>EventAttributes": {...}}`.
                Value::Object(map) if map.len() == 1 => map.into_iter().next().map(|(_, v)| v),
                other => Some(other),
            })
            .unwrap_or(Value::Null);
        let mut found = Vec::new();
        collect(&details, String::new(), &mut found);
        if !found.is_empty() {
            let (pointers, payloads): (Vec<_>, Vec<_>) = found.into_iter().unzip();
            let decoded = ops.decode(payloads).await;
            for (pointer, value) in pointers.iter().zip(decoded) {
                if pointer.is_empty() {
                    details = value;
                } else if let Some(slot) = details.pointer_mut(pointer) {
                    *slot = value;
                }
            }
        }
        flatten_payloads(&mut details);
        let failure = details
            .get("failure")
            .map(failure_chain_json)
            .unwrap_or_default();
        let origin = [
            "scheduled_event_id",
            "started_event_id",
            "initiated_event_id",
        ]
        .iter()
        .find_map(|key| details.get(*key).and_then(Value::as_i64))
        .filter(|id| *id > 0 && *id < event.event_id);
        out.push(TimelineEvent {
            event_id: event.event_id,
            event_type: event_type_name(event.event_type),
            time: super::timestamp(&event.event_time),
            since_previous_ms: at.zip(previous).map(|(a, p)| a - p),
            since_scheduled_ms: origin
                .and_then(|id| times.get(&id))
                .zip(at)
                .map(|(o, a)| a - o),
            details,
            failure,
        });
        if at.is_some() {
            previous = at;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_read_as_words() {
        assert_eq!(
            event_type_name(EventType::ActivityTaskScheduled as i32),
            "ActivityTaskScheduled"
        );
        assert_eq!(
            event_type_name(EventType::WorkflowExecutionUpdateAccepted as i32),
            "WorkflowExecutionUpdateAccepted"
        );
    }

    #[test]
    fn payloads_decode_by_encoding() {
        let payload = |encoding: &str, data: &[u8]| Payload {
            metadata: [("encoding".to_owned(), encoding.as_bytes().to_vec())].into(),
            data: data.to_vec(),
            ..Payload::default()
        };
        assert_eq!(
            payload_json(&payload("json/plain", br#"{"a":1}"#)),
            serde_json::json!({"a": 1})
        );
        assert_eq!(payload_json(&payload("binary/null", b"")), Value::Null);
        let opaque = payload_json(&payload("binary/encrypted", b"\x01\x02"));
        assert_eq!(opaque["encoding"], "binary/encrypted");
        assert_eq!(opaque["data_base64"], "AQI=");
    }

    #[test]
    fn failure_chains_follow_causes() {
        let failure = serde_json::json!({
            "message": "activity failed", "source": "", "activityFailureInfo": {},
            "cause": {"message": "boom", "source": "rust", "applicationFailureInfo": {"type": "Fatal"}}
        });
        let chain = failure_chain_json(&failure);
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].failure_type, "activity");
        assert_eq!(
            (chain[1].message.as_str(), chain[1].failure_type.as_str()),
            ("boom", "Fatal")
        );
    }
}
