//! Records the conversation histories that `workflows/tests/replay.rs` replays, and checks that
//! each freshly recorded history replays against the current code.
//!
//! Regenerate the committed files with
//! `make histories` (the API suite with `ZENGINE_RECORD_HISTORIES=1`; any test that calls
//! [`record`] writes its history when the file does not exist yet).

use std::path::PathBuf;
use std::time::Duration;

use temporalio_client::{WorkflowFetchHistoryOptions, WorkflowGetResultOptions};
use zengine_domain::TenantId;
use zengine_domain::flow::FlowGraph;
use zengine_workflows::ConversationWorkflow;
use zengine_workflows::replay::{encode_history, replay_file, replayer};

use crate::helpers::{TestApp, spawn_app};

pub(crate) async fn record(app: &TestApp, workflow_id: &str, name: &str) {
    let handle = app
        .temporal
        .get_workflow_handle::<ConversationWorkflow>(workflow_id);
    let events = handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await
        .expect("history");
    store(events, name).await;
}

/// Records a closed route optimisation run (recorded by the tests in `routes.rs`).
pub(crate) async fn record_route(app: &TestApp, workflow_id: &str, name: &str) {
    let handle = app
        .temporal
        .get_workflow_handle::<zengine_workflows::RouteOptimisationWorkflow>(workflow_id);
    // The plan row is written by the activity before the workflow closes: wait for the close.
    let _ = handle.get_result(WorkflowGetResultOptions::default()).await;
    let events = handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await
        .expect("history");
    store(events, name).await;
}

async fn store(
    events: Vec<temporalio_common::protos::temporal::api::history::v1::HistoryEvent>,
    name: &str,
) {
    let bytes = encode_history(events);
    let scratch = std::env::temp_dir().join(format!("{name}-{}.binpb", uuid::Uuid::new_v4()));
    std::fs::write(&scratch, &bytes).unwrap();
    replay_file(&replayer().unwrap(), &scratch)
        .await
        .expect("a fresh history replays against the current code");
    std::fs::remove_file(&scratch).unwrap();
    // Committed histories are regression fixtures of *older* code: recording never replaces
    // one unless asked to (`ZENGINE_RECORD_HISTORIES=overwrite`).
    if let Ok(mode) = std::env::var("ZENGINE_RECORD_HISTORIES") {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../workflows/tests/histories")
            .join(format!("{name}.binpb"));
        if !path.exists() || mode == "overwrite" {
            std::fs::write(&path, bytes).unwrap();
            eprintln!("recorded {}", path.display());
        }
    }
}

#[tokio::test]
async fn histories_conversation_full_demo_flow() {
    let app = spawn_app().await;
    let s = format!("h-{}", uuid::Uuid::new_v4().simple());
    for (i, text) in ["hola", "Ana", "quiero hacer un pedido", "hola de nuevo"]
        .iter()
        .enumerate()
    {
        app.say(&s, &format!("{s}-{i}"), text).await;
    }
    record(
        &app,
        &format!("demo/conversation/webchat/{s}"),
        "conversation__demo_full_flow",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn histories_conversation_closes_after_idle_timeout() {
    let app = spawn_app().await;
    let db = &app.database.as_ref().unwrap().db;
    let tenant = TenantId::parse("demo").unwrap();
    let mut flow: FlowGraph = zengine_domain::flow::demo_flow();
    flow.session_timeout_secs = 1;
    db.tenants().publish_flow(&tenant, &flow).await.unwrap();
    let s = format!("h-{}", uuid::Uuid::new_v4().simple());
    app.say(&s, &format!("{s}-0"), "hola").await;
    app.say(&s, &format!("{s}-1"), "Ana").await;

    let workflow_id = format!("demo/conversation/webchat/{s}");
    let summary = tokio::time::timeout(
        Duration::from_secs(20),
        app.temporal
            .get_workflow_handle::<ConversationWorkflow>(&workflow_id)
            .get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("the conversation closes after its idle timeout")
    .unwrap();
    assert_eq!(summary.turns, 2);
    assert_eq!(summary.closed_because, "idle");

    record(&app, &workflow_id, "conversation__idle_timeout").await;

    // A message after the close starts a new run that begins the flow again.
    let again = app.say(&s, &format!("{s}-2"), "hola otra vez").await;
    assert_eq!(again["turn"], 1);
    assert!(crate::helpers::reply_texts(&again)[0].contains("¿Cómo te llamas?"));
    app.shutdown().await;
}

#[tokio::test]
async fn histories_conversation_barber_wait_and_survey() {
    use crate::flows::{chat, session};
    let app = spawn_app().await;
    let s = session();
    for text in ["hola", "corte", "lucho", "01/02/2031", "10:00", "987654321"] {
        chat(&app, &s, "barber", text).await;
    }
    app.wait_outbox(&s, 0, 2).await;
    chat(&app, &s, "barber", "4").await;
    chat(&app, &s, "barber", "no").await;
    record(
        &app,
        &format!("demo/conversation/webchat/{s}"),
        "conversation__barber_wait_and_survey",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn histories_conversation_command_handoff_and_return() {
    use crate::flows::{chat, fake_backend, graph, publish, session};
    use crate::helpers::ADMIN_TOKEN;
    use serde_json::json;
    let app = spawn_app().await;
    let (backend, _) = fake_backend().await;
    let db = &app.database.as_ref().unwrap().db;
    db.tenants()
        .set_allowed_http_hosts(&TenantId::parse("demo").unwrap(), &["127.0.0.1".into()])
        .await
        .unwrap();
    publish(&app, "desk", graph(json!([
        {"id": "q", "type": "question", "text": "¿Qué pides?", "save_as": "item", "next": "call"},
        {"id": "call", "type": "command", "command": "http_request", "save_as": "order",
         "params": {"method": "POST", "url": format!("{backend}/orders"), "body": {"item": "{{item}}"}},
         "next": "h", "on_failure": "h"},
        {"id": "h", "type": "handoff", "text": "Pedido {{order.body.id}}: te paso con un asesor.", "next": "back"},
        {"id": "back", "type": "end", "text": "De vuelta."}
    ]))).await;
    let s = session();
    chat(&app, &s, "desk", "hola").await;
    chat(&app, &s, "desk", "pizza").await;
    chat(&app, &s, "desk", "¿hola?").await;
    assert_eq!(
        app.return_to_bot(&s, Some(ADMIN_TOKEN)).await.status(),
        reqwest::StatusCode::OK
    );
    record(
        &app,
        &format!("demo/conversation/webchat/{s}"),
        "conversation__command_handoff_and_return",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn histories_conversation_chatwoot_handoff_and_resolve() {
    let app = spawn_app().await;
    let chatwoot = crate::chatwoot::Chatwoot::start(901).await;
    let workflow_id = crate::chatwoot::round_trip(&app, &chatwoot, 901).await;
    record(
        &app,
        &workflow_id,
        "conversation__chatwoot_handoff_resolved",
    )
    .await;
    app.shutdown().await;
}
