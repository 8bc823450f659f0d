//! `POST /v1/webchat/messages` end to end.

use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use temporalio_client::{WorkflowDescribeOptions, WorkflowQueryOptions};
use zengine_storage::testing::TestBackend;
use zengine_workflows::ConversationWorkflow;

use crate::helpers::{AppOptions, error_code, reply_texts, spawn_app, spawn_app_with};

fn body(session: &str, text: &str) -> String {
    serde_json::json!({"session_id": session, "text": text}).to_string()
}

fn session() -> String {
    format!("s-{}", uuid::Uuid::new_v4().simple())
}

async fn two_turns_carry_the_name(backend: TestBackend) {
    let app = spawn_app_with(AppOptions {
        backend,
        ..AppOptions::default()
    })
    .await;
    let s = session();

    let first = app.say(&s, &format!("{s}-1"), "hola").await;
    let second = app.say(&s, &format!("{s}-2"), "Ana").await;

    assert_eq!(
        first["conversation_id"],
        format!("demo/conversation/webchat/{s}")
    );
    assert_eq!(first["turn"], 1);
    assert!(reply_texts(&first)[0].contains("¿Cómo te llamas?"));
    assert_eq!(second["turn"], 2);
    assert_eq!(
        reply_texts(&second),
        ["Mucho gusto, Ana. ¿En qué te puedo ayudar hoy?"]
    );
    // The state lives in the workflow, not in the API.
    let status = app
        .temporal
        .get_workflow_handle::<ConversationWorkflow>(format!("demo/conversation/webchat/{s}"))
        .query(
            ConversationWorkflow::status,
            (),
            WorkflowQueryOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(status.turns, 2);
    assert!(
        status.variables.contains(&"name".to_owned()),
        "{:?}",
        status.variables
    );
    assert_eq!(status.state, "awaiting_input");
    app.shutdown().await;
}

#[tokio::test]
async fn two_messages_in_one_session_get_stateful_replies_on_sqlite() {
    two_turns_carry_the_name(TestBackend::Sqlite).await;
}

#[tokio::test]
async fn two_messages_in_one_session_get_stateful_replies_on_postgres_under_row_level_security() {
    two_turns_carry_the_name(TestBackend::PostgresRls).await;
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_same_replies_and_advances_once() {
    let app = spawn_app().await;
    let s = session();
    app.say(&s, "k-1", "hola").await;

    let first = app.say(&s, "k-2", "Ana").await;
    let repeat = app
        .post_webchat_raw(Some("demo"), Some("k-2"), body(&s, "Ana"))
        .await;
    assert_eq!(repeat.status(), StatusCode::OK);
    assert_eq!(repeat.headers()["idempotent-replayed"], "true");
    let repeat: serde_json::Value = repeat.json().await.unwrap();
    assert_eq!(repeat, first);

    let third = app.say(&s, "k-3", "quiero un pedido").await;
    assert_eq!(
        third["turn"], 3,
        "the repeat must not have advanced the conversation"
    );
    assert!(reply_texts(&third)[0].contains("Ana"));
    app.shutdown().await;
}

#[tokio::test]
async fn concurrent_duplicates_are_delivered_once() {
    let app = spawn_app().await;
    let s = session();
    app.say(&s, "c-1", "hola").await;

    let replies = join_all((0..8).map(|_| app.say(&s, "c-2", "Ana"))).await;

    assert!(replies.iter().all(|r| r == &replies[0]), "{replies:?}");
    assert_eq!(replies[0]["turn"], 2);
    let next = app.say(&s, "c-3", "algo").await;
    assert_eq!(next["turn"], 3);
    app.shutdown().await;
}

#[tokio::test]
async fn reusing_a_key_for_a_different_message_is_rejected() {
    let app = spawn_app().await;
    let s = session();
    app.say(&s, "r-1", "hola").await;

    let response = app
        .post_webchat_raw(Some("demo"), Some("r-1"), body(&s, "otra cosa"))
        .await;

    assert_eq!(
        error_code(response, StatusCode::UNPROCESSABLE_ENTITY).await,
        "idempotency_key_reused"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_never_reaches_temporal() {
    let app = spawn_app().await;
    let s = session();
    let good = body(&s, "hola");
    let long_key = "k".repeat(200);
    // (case, x-tenant-id, x-idempotency-key, body, expected status, expected error code)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        String,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "unknown tenant",
            Some("nobody"),
            Some("b-1"),
            good.clone(),
            StatusCode::NOT_FOUND,
            "unknown_tenant",
        ),
        (
            "missing tenant",
            None,
            Some("b-2"),
            good.clone(),
            StatusCode::BAD_REQUEST,
            "missing_header",
        ),
        (
            "bad tenant",
            Some("Not A Tenant"),
            Some("b-3"),
            good.clone(),
            StatusCode::BAD_REQUEST,
            "invalid_header",
        ),
        (
            "missing key",
            Some("demo"),
            None,
            good.clone(),
            StatusCode::BAD_REQUEST,
            "missing_header",
        ),
        (
            "key too long",
            Some("demo"),
            Some(&long_key),
            good.clone(),
            StatusCode::BAD_REQUEST,
            "invalid_header",
        ),
        (
            "malformed JSON",
            Some("demo"),
            Some("b-4"),
            "{\"session_id\": ".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "not an object",
            Some("demo"),
            Some("b-5"),
            "[1,2]".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "missing text",
            Some("demo"),
            Some("b-6"),
            format!("{{\"session_id\":\"{s}\"}}"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "missing session",
            Some("demo"),
            Some("b-7"),
            "{\"text\":\"hola\"}".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "wrong type",
            Some("demo"),
            Some("b-8"),
            format!("{{\"session_id\":\"{s}\",\"text\":7}}"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "empty text",
            Some("demo"),
            Some("b-9"),
            body(&s, "   "),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "bad session id",
            Some("demo"),
            Some("b-10"),
            body("a/b", "hola"),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "text too long",
            Some("demo"),
            Some("b-11"),
            body(&s, &"x".repeat(5000)),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "body over 64 KiB",
            Some("demo"),
            Some("b-12"),
            body(&s, &"x".repeat(70 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "empty body",
            Some("demo"),
            Some("b-13"),
            String::new(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ];
    for (name, tenant, key, body, status, code) in cases {
        let response = app.post_webchat_raw(tenant, key, body).await;
        assert_eq!(response.status(), status, "{name}");
        assert_eq!(error_code(response, status).await, code, "{name}");
    }

    let describe = app
        .temporal
        .get_workflow_handle::<ConversationWorkflow>(format!("demo/conversation/webchat/{s}"))
        .describe(WorkflowDescribeOptions::default())
        .await;
    assert!(describe.is_err(), "a rejected request started a workflow");
    app.shutdown().await;
}

#[tokio::test]
async fn without_a_worker_the_request_times_out_with_a_retryable_504_then_succeeds() {
    let mut options = AppOptions {
        run_worker: false,
        ..AppOptions::default()
    };
    options.api.webchat_timeout_ms = 1_500;
    let app = spawn_app_with(options).await;
    let s = session();

    let response = app
        .post_webchat_raw(Some("demo"), Some("t-1"), body(&s, "hola"))
        .await;
    assert_eq!(
        error_code(response, StatusCode::GATEWAY_TIMEOUT).await,
        "timeout"
    );

    // A worker comes back: the same key is delivered exactly once.
    let worker = {
        let client = app.temporal.clone();
        let settings = app.temporal_settings.clone();
        let db = app.database.as_ref().unwrap().db.clone();
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let handle = tokio::spawn(async move {
            let worker_settings = zengine_workers::WorkerSettings {
                metrics_addr: String::new(),
                graceful_shutdown_secs: 1,
                ..Default::default()
            };
            zengine_workers::run_workers(client, &settings, &worker_settings, &db, async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
        });
        (tx, handle)
    };
    // The new worker needs a moment to start polling (longer on a loaded machine): a retry
    // with the same key may time out again, and is safe.
    let mut retried = serde_json::Value::Null;
    for _ in 0..20 {
        let response = app
            .post_webchat_raw(Some("demo"), Some("t-1"), body(&s, "hola"))
            .await;
        let status = response.status();
        let json: serde_json::Value = response.json().await.expect("JSON body");
        if status == StatusCode::GATEWAY_TIMEOUT {
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{json}");
        retried = json;
        break;
    }
    assert_eq!(retried["turn"], 1, "{retried}");
    let next = app.say(&s, "t-2", "Ana").await;
    assert_eq!(next["turn"], 2);
    let _ = worker.0.send(true);
    tokio::time::timeout(Duration::from_secs(30), worker.1)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    app.shutdown().await;
}

#[tokio::test]
async fn health_and_metrics_endpoints_answer() {
    let app = spawn_app().await;
    let s = session();
    app.say(&s, "m-1", "hola").await;

    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("zengine_http_requests_total{method=\"POST\",route=\"/v1/webchat/messages\",status=\"200\"}"),
        "{metrics}"
    );
    let missing = app.get("/v1/nothing-here").await;
    assert_eq!(
        error_code(missing, StatusCode::NOT_FOUND).await,
        "not_found"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn responses_carry_the_callers_correlation_id_or_a_new_one() {
    let app = spawn_app().await;
    let given = app
        .http
        .get(format!("{}/healthz", app.address))
        .header("x-correlation-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-correlation-id"], "abc-123");
    let hostile = app
        .http
        .get(format!("{}/healthz", app.address))
        .header("x-correlation-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let generated = hostile.headers()["x-correlation-id"].to_str().unwrap();
    assert_ne!(generated, "bad id with spaces");
    assert!(uuid::Uuid::parse_str(generated).is_ok());
    app.shutdown().await;
}
