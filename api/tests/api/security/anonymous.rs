//! Anonymous webchat clients spend within limits: the attack was a loop of made-up
//! `session_id`s (each one starts a conversation workflow) and of 10 MiB uploads to
//! `POST /v1/webchat/media`, neither limited per client nor per tenant.

use reqwest::StatusCode;
use serde_json::json;
use temporalio_client::WorkflowDescribeOptions;
use zengine_api::quota::AnonymousLimits;
use zengine_workflows::ConversationWorkflow;

use crate::helpers::{AppOptions, error_code, spawn_app_with};
use crate::payments::{BOUNDARY, multipart};

#[tokio::test]
async fn an_anonymous_client_cannot_start_workflows_or_store_bytes_without_limit() {
    let mut options = AppOptions::default();
    options.api.anonymous = AnonymousLimits {
        client_session_burst: 3,
        client_sessions_per_minute: 1,
        client_message_burst: 50,
        client_media_bytes_per_hour: 300 * 1024,
        ..AnonymousLimits::default()
    };
    let app = spawn_app_with(options).await;
    let run = uuid::Uuid::new_v4().simple().to_string();

    // The attacker's loop: a new session per request. Three go through, the fourth is 429
    // with Retry-After, and its workflow never starts.
    for i in 0..3 {
        app.say(&format!("flood-{run}-{i}"), &format!("k-{run}-{i}"), "hola")
            .await;
    }
    let refused_session = format!("flood-{run}-3");
    let refused = app
        .post_webchat_raw(
            Some("demo"),
            Some(&format!("k-{run}-3")),
            json!({"session_id": refused_session, "text": "hola"}).to_string(),
        )
        .await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        error_code(refused, StatusCode::TOO_MANY_REQUESTS).await,
        "rate_limited"
    );
    let never_started = app
        .temporal
        .get_workflow_handle::<ConversationWorkflow>(&format!(
            "demo/conversation/webchat/{refused_session}"
        ))
        .describe(WorkflowDescribeOptions::default())
        .await;
    assert!(
        never_started.is_err(),
        "no workflow for the refused session"
    );
    // A session the client already has still talks.
    app.say(
        &format!("flood-{run}-0"),
        &format!("k-{run}-again"),
        "sigo aquí",
    )
    .await;

    // Uploads: 300 KiB an hour for this client. A 200 KiB image is stored; the next one is 429
    // before its body is read, and nothing more is stored.
    let mut image = b"\x89PNG\r\n\x1a\n".to_vec();
    image.resize(200 * 1024, 7);
    let upload = |bytes: Vec<u8>| {
        let app = &app;
        async move {
            app.http
                .post(format!("{}/v1/webchat/media", app.address))
                .header("x-tenant-id", "demo")
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .body(multipart("image", &bytes))
                .send()
                .await
                .unwrap()
        }
    };
    let first = upload(image.clone()).await;
    assert_ne!(first.status(), StatusCode::TOO_MANY_REQUESTS);
    image[100] = 1;
    let second = upload(image).await;
    assert_eq!(
        error_code(second, StatusCode::TOO_MANY_REQUESTS).await,
        "rate_limited"
    );
}
