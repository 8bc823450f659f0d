//! The `sns-sms` outbound strategy through the channel activities on a real worker and
//! Temporal dev server, against this binary's moto server: replies become SMS to the right
//! number with the account's sender id, an invalid number is dead-lettered without a retry,
//! an unreachable SNS is retried, and one `client_message_id` is one SMS.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use temporalio_client::{WorkflowGetResultOptions, WorkflowIdReusePolicy, WorkflowStartOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zengine_activities::channels::DeliverReply;
use zengine_domain::{Choice, Reply, TenantId};
use zengine_workers::testing::moto_server;
use zengine_workflows::channels::{RedriveInput, RedriveOutcome, RedriveWorkflow};
use zengine_workflows::names::{queues, task_queue};

use crate::assistance::{fresh_number, sms_to, wait_sms};
use crate::channels::{add_account, create_tenant, file_secret};
use crate::helpers::{TestApp, spawn_app};

/// A loopback TCP proxy to `upstream` that keeps every byte the client sent (moto does not
/// record SMS attributes, so the sender id is checked on the wire).
async fn recording_proxy(upstream: &str) -> (String, Arc<Mutex<Vec<u8>>>) {
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = client_read.read(&mut buf).await {
                        if n == 0 || server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        log.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                };
                let down = tokio::io::copy(&mut server_read, &mut client_write);
                let _ = tokio::join!(up, down);
            });
        }
    });
    (address, seen)
}

async fn sms_tenant(app: &TestApp, tenant: &str, endpoint: &str) -> TenantId {
    let id = create_tenant(app, tenant).await;
    let creds = file_secret("testing");
    add_account(
        app,
        &id,
        "sns-sms",
        tenant,
        json!({"aws": {"region": "us-east-1", "endpoint_url": endpoint,
                       "access_key_id": creds, "secret_access_key": creds, "timeout_ms": 3000},
               "sender_id": "ZEngineSMS", "primary": true}),
    )
    .await;
    id
}

/// Delivers one reply through `sns-sms` in a workflow (the re-drive workflow: the deliver
/// activity with its retry policy, then a dead letter when it fails).
async fn deliver(
    app: &TestApp,
    tenant: &TenantId,
    to: &str,
    client_message_id: &str,
    reply: Reply,
) -> RedriveOutcome {
    deliver_via(app, tenant, "sms", "sns-sms", to, client_message_id, reply).await
}

/// Delivers one reply through `strategy` in a re-drive workflow (also used by the e-mail suite).
pub async fn deliver_via(
    app: &TestApp,
    tenant: &TenantId,
    channel: &str,
    strategy: &str,
    to: &str,
    client_message_id: &str,
    reply: Reply,
) -> RedriveOutcome {
    let input = RedriveInput {
        delivery: DeliverReply {
            tenant_id: tenant.clone(),
            channel: channel.into(),
            recipient: to.into(),
            client_message_id: client_message_id.into(),
            reply,
            strategy: Some(strategy.into()),
        },
    };
    let workflow_id = format!("deliver-test-{}", uuid::Uuid::new_v4());
    let queue = task_queue(&app.temporal_settings.task_queue_prefix, queues::CHANNELS);
    let options = WorkflowStartOptions::new(queue, workflow_id.clone())
        .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicate)
        .build();
    app.temporal
        .start_workflow(RedriveWorkflow::run, input, options)
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        app.temporal
            .get_workflow_handle::<RedriveWorkflow>(&workflow_id)
            .get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("the delivery ends")
    .unwrap()
}

#[tokio::test]
async fn replies_are_texted_once_with_the_sender_id_and_templates_are_refused() {
    let app = spawn_app().await;
    let (proxy, wire) = recording_proxy(moto_server()).await;
    let tenant = sms_tenant(&app, "smsco", &proxy).await;
    let db = &app.database.as_ref().unwrap().db;
    let to = fresh_number();

    let sent = deliver(
        &app,
        &tenant,
        &to,
        "sms-1/out-1",
        Reply::text("Hola desde ZEngine"),
    )
    .await;
    assert!(sent.delivered, "{sent:?}");
    assert_eq!(wait_sms(&to, 1).await, vec!["Hola desde ZEngine"]);
    let wire = String::from_utf8_lossy(&wire.lock().unwrap()).into_owned();
    assert!(wire.contains("AWS.SNS.SMS.SenderID"), "{wire}");
    assert!(wire.contains("ZEngineSMS"), "{wire}");
    assert!(wire.contains("Transactional"), "{wire}");
    let record = db
        .channels()
        .outbound(&tenant, "sms-1/out-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, "SENT");
    assert_eq!(record.provider_message_id, sent.provider_message_id);

    // The same client_message_id again: nothing is sent, the first MessageId is answered.
    let again = deliver(
        &app,
        &tenant,
        &to,
        "sms-1/out-1",
        Reply::text("Hola desde ZEngine"),
    )
    .await;
    assert_eq!(again.provider_message_id, sent.provider_message_id);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sms_to(&to).await.len(), 1, "one SMS per client_message_id");

    // Buttons become numbered lines.
    let buttons = Reply::Buttons {
        text: "¿Confirmas?".into(),
        buttons: vec![
            Choice {
                id: "yes".into(),
                title: "Sí".into(),
            },
            Choice {
                id: "no".into(),
                title: "No".into(),
            },
        ],
    };
    assert!(
        deliver(&app, &tenant, &to, "sms-1/out-2", buttons)
            .await
            .delivered
    );
    assert_eq!(wait_sms(&to, 2).await[1], "¿Confirmas?\n1. Sí\n2. No");

    // A template cannot go out as SMS: refused once, dead-lettered, nothing sent.
    let template = Reply::Template {
        name: "order_ready".into(),
        language: "es".into(),
        parameters: vec![],
        fallback: String::new(),
    };
    let refused = deliver(&app, &tenant, &to, "sms-1/out-3", template).await;
    assert!(!refused.delivered);
    assert!(
        refused
            .error
            .as_deref()
            .unwrap()
            .contains("cannot be sent as SMS"),
        "{refused:?}"
    );
    let dead = db.channels().dead_letters(&tenant).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(sms_to(&to).await.len(), 2);
    app.shutdown().await;
}

#[tokio::test]
async fn invalid_numbers_are_dead_lettered_at_once_and_an_unreachable_sns_is_retried() {
    let app = spawn_app().await;
    let tenant = sms_tenant(&app, "smsbad", moto_server()).await;
    let db = &app.database.as_ref().unwrap().db;

    let outcome = deliver(
        &app,
        &tenant,
        "987654321",
        "bad-1/out-1",
        Reply::text("hola"),
    )
    .await;
    assert!(!outcome.delivered);
    let error = outcome.error.unwrap();
    assert!(error.contains("InvalidRecipient"), "{error}");
    let dead = db.channels().dead_letters(&tenant).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].attempts, 1, "a permanent failure is not retried");
    let failed = db.events().list(&tenant, "Outbound.Failed").await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].payload["strategy"], "sns-sms");

    // SNS unreachable (a closed port): retried by the activity's policy, then dead-lettered.
    let down = create_tenant(&app, "smsdown").await;
    let closed = format!(
        "http://127.0.0.1:{}",
        zengine_workers::devserver::free_port()
    );
    let creds = file_secret("testing");
    add_account(
        &app,
        &down,
        "sns-sms",
        "smsdown",
        json!({"aws": {"region": "us-east-1", "endpoint_url": closed,
                       "access_key_id": creds, "secret_access_key": creds}}),
    )
    .await;
    let to = fresh_number();
    let outcome = deliver(&app, &down, &to, "down-1/out-1", Reply::text("hola")).await;
    assert!(!outcome.delivered);
    let record = db
        .channels()
        .outbound(&down, "down-1/out-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.attempts, 3,
        "retryable: every attempt of the policy ran"
    );
    assert!(
        record
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("DispatchFailure"),
        "{record:?}"
    );
    assert_eq!(record.state, "DEAD");
    assert!(sms_to(&to).await.is_empty());
    app.shutdown().await;
}
