//! `zengine replay PATH...`: replays recorded histories against the workflow code of this
//! binary and reports, per file, OK or the nondeterminism (with the event id).
//!
//! Formats: binary protobuf `temporal.api.history.v1.History` (`.binpb`, the committed
//! fixtures) and proto3 JSON as exported by `temporal workflow show --output json` and the Web
//! UI's download (event types as `EVENT_TYPE_…` or PascalCase). Payloads encrypted by ZEngine's
//! codec are decrypted with the configured keyring (`temporal.codec`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage};
use serde_json::Value;
use temporalio_client::WorkflowHistory;
use temporalio_protos::temporal::api::history::v1::History;
use zengine_workflows::replay::replayer_with;

use crate::config::Settings;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/temporal_descriptors.bin"));

/// `EVENT_TYPE_…`, or PascalCase (`WorkflowExecutionStarted`) turned into it.
fn event_type_name(raw: &str) -> String {
    if raw.starts_with("EVENT_TYPE_") || raw.chars().all(|c| c.is_ascii_digit()) {
        return raw.to_owned();
    }
    let mut name = String::from("EVENT_TYPE_");
    for (i, c) in raw.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// Rewrites the Web UI's PascalCase event types to proto3-JSON enum names.
fn normalise(history: &mut Value) {
    if let Some(events) = history.get_mut("events").and_then(Value::as_array_mut) {
        for event in events {
            for key in ["eventType", "event_type"] {
                if let Some(Value::String(raw)) = event.get(key) {
                    let name = event_type_name(raw);
                    event[key] = Value::String(name);
                }
            }
        }
    }
}

/// Parses a proto3-JSON history (an object with `events`, or a bare array of events).
pub fn history_from_json(text: &str) -> anyhow::Result<History> {
    let mut value: Value = serde_json::from_str(text).context("not JSON")?;
    if value.is_array() {
        value = serde_json::json!({ "events": value });
    }
    anyhow::ensure!(
        value.get("events").is_some_and(Value::is_array),
        "JSON history has no `events` array"
    );
    normalise(&mut value);
    let pool = DescriptorPool::decode(DESCRIPTORS).context("Temporal's descriptors")?;
    let descriptor = pool
        .get_message_by_name("temporal.api.history.v1.History")
        .context("History descriptor")?;
    let message = DynamicMessage::deserialize_with_options(
        descriptor,
        value,
        &DeserializeOptions::new().deny_unknown_fields(false),
    )
    .context("not a proto3-JSON temporal.api.history.v1.History")?;
    let history =
        History::decode(message.encode_to_vec().as_slice()).context("re-encoding the history")?;
    if let Some((i, _)) = history
        .events
        .iter()
        .enumerate()
        .find(|(_, e)| e.event_type == 0)
    {
        anyhow::bail!(
            "event #{} of the JSON history has no known event type",
            i + 1
        );
    }
    Ok(history)
}

/// Reads a history file in either format.
pub fn read_history(path: &Path) -> anyhow::Result<History> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let looks_json = path.extension().is_some_and(|e| e == "json")
        || bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{' || *b == b'[');
    if looks_json {
        let text = std::str::from_utf8(&bytes).context("JSON history is not UTF-8")?;
        history_from_json(text)
    } else {
        zengine_workflows::replay::decode_history(&bytes)
    }
}

/// The first event id named in a replay error (`event id 7`, `event_id: 7`, `EventId(7)`…).
fn event_id_of(message: &str) -> Option<u64> {
    let lower = message.to_lowercase();
    for marker in [
        "historyevent(id: ",
        "event id ",
        "event_id: ",
        "event_id ",
        "eventid(",
        "event #",
        "event ",
    ] {
        let mut rest = lower.as_str();
        while let Some(i) = rest.find(marker) {
            rest = &rest[i + marker.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(id) = digits.parse() {
                return Some(id);
            }
        }
    }
    None
}

/// Replays every file; returns the process exit code (0: all OK, 1: any failure).
pub async fn run(settings: &Settings, paths: &[PathBuf]) -> u8 {
    let codec = match zengine_workers::codec::from_settings(&settings.temporal.codec) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zengine replay: {e:#}");
            return 2;
        }
    };
    let replayer = match replayer_with(codec.data_converter()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zengine replay: {e:#}");
            return 2;
        }
    };
    let mut failed = 0;
    for path in paths {
        let history = match read_history(path) {
            Ok(h) => h,
            Err(e) => {
                println!("FAIL {}: unreadable history: {e:#}", path.display());
                failed += 1;
                continue;
            }
        };
        let events = history.events.len();
        match replayer
            .replay_workflow(WorkflowHistory::from(history))
            .await
        {
            Ok(()) => println!("OK   {} ({events} events)", path.display()),
            Err(e) => {
                failed += 1;
                let message = format!("{e}");
                let detail = format!("{e:?}");
                let kind = if detail.to_lowercase().contains("nondetermin") {
                    "nondeterminism"
                } else {
                    "replay failed"
                };
                let at = event_id_of(&detail)
                    .map(|id| format!(" at event {id}"))
                    .unwrap_or_default();
                println!("FAIL {}: {kind}{at}: {message}", path.display());
            }
        }
    }
    println!(
        "{} of {} histories replayed OK",
        paths.len() - failed,
        paths.len()
    );
    u8::from(failed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pascal_case_event_types_become_enum_names() {
        assert_eq!(
            event_type_name("WorkflowExecutionStarted"),
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"
        );
        assert_eq!(
            event_type_name("EVENT_TYPE_TIMER_FIRED"),
            "EVENT_TYPE_TIMER_FIRED"
        );
    }

    #[test]
    fn malformed_json_histories_are_refused() {
        assert!(history_from_json("nope").is_err());
        assert!(history_from_json("{}").is_err());
        assert!(history_from_json(r#"{"events": [{"eventType": "NoSuchType"}]}"#).is_err());
        let h = history_from_json(
            r#"{"events": [{"eventId": "1", "eventType": "WorkflowExecutionStarted",
                "workflowExecutionStartedEventAttributes": {"workflowType": {"name": "X"}}}]}"#,
        )
        .unwrap();
        assert_eq!(h.events[0].event_id, 1);
    }

    #[test]
    fn event_ids_are_found_in_messages() {
        assert_eq!(event_id_of("Nondeterminism at event id 12: x"), Some(12));
        assert_eq!(
            event_id_of("does not handle this event: HistoryEvent(id: 8, ActivityTaskScheduled)"),
            Some(8)
        );
        assert_eq!(event_id_of("nothing here"), None);
    }
}
