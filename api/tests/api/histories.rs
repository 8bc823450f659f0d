//! Records the conversation histories that `workflows/tests/replay.rs` replays, and checks that
//! each freshly recorded history replays against the current code.
//!
//! Regenerate the committed files with
//! `ZENGINE_RECORD_HISTORIES=1 cargo test -p zengine-api --test api histories` (`make histories`).

use std::path::PathBuf;
use std::time::Duration;

use temporalio_client::{WorkflowFetchHistoryOptions, WorkflowGetResultOptions};
use zengine_domain::TenantId;
use zengine_domain::flow::FlowGraph;
use zengine_workflows::ConversationWorkflow;
use zengine_workflows::replay::{encode_history, replay_file, replayer};

use crate::helpers::{TestApp, spawn_app};

async fn record(app: &TestApp, workflow_id: &str, name: &str) {
    let handle = app
        .temporal
        .get_workflow_handle::<ConversationWorkflow>(workflow_id);
    let events = handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await
        .expect("history");
    let bytes = encode_history(events);
    let scratch = std::env::temp_dir().join(format!("{name}-{}.binpb", uuid::Uuid::new_v4()));
    std::fs::write(&scratch, &bytes).unwrap();
    replay_file(&replayer().unwrap(), &scratch)
        .await
        .expect("a fresh history replays against the current code");
    std::fs::remove_file(&scratch).unwrap();
    if std::env::var_os("ZENGINE_RECORD_HISTORIES").is_some() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../workflows/tests/histories")
            .join(format!("{name}.binpb"));
        std::fs::write(&path, bytes).unwrap();
        eprintln!("recorded {}", path.display());
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
