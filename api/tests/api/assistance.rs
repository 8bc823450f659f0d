//! Travel assistance end to end: the REST API, the assistance event and MOK tracking workflows
//! on a real worker and Temporal dev server, SMS through SNS on this binary's moto server.
//!
//! moto's state is shared by every test of the binary: each test texts its own freshly drawn
//! phone numbers and reads back only the SMS sent to them.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use temporalio_client::{WorkflowDescribeOptions, WorkflowGetResultOptions, WorkflowQueryOptions};
use zengine_domain::TenantId;
use zengine_domain::assistance::AssistanceSettings;
use zengine_domain::phone::E164;
use zengine_storage::ChannelAccount;
use zengine_workers::testing::moto_server;
use zengine_workflows::{AssistanceWorkflow, MokWorkflow};

use zengine_storage::testing::TestBackend;

use crate::helpers::{ADMIN_TOKEN, AppOptions, TestApp, error_code, spawn_app_with};
use crate::histories::record;

/// A phone number no other test uses.
pub fn fresh_number() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 10_000_000;
    format!("+1555{n:07}")
}

/// The SMS moto accepted for `number`: their texts, oldest first.
pub async fn sms_to(number: &str) -> Vec<String> {
    let data: Value = reqwest::get(format!("{}/moto-api/data.json", moto_server()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    data["sns"]["SMS"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["phone_number"] == number)
        .map(|m| m["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits until moto holds `count` SMS for `number`.
pub async fn wait_sms(number: &str, count: usize) -> Vec<String> {
    for _ in 0..150 {
        let texts = sms_to(number).await;
        if texts.len() >= count {
            return texts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{number} did not receive {count} SMS: {:?}",
        sms_to(number).await
    );
}

/// Points the demo tenant's `sns-sms` account at `endpoint` with static credentials read from
/// a file (the secret-reference path production uses).
pub async fn use_sns(app: &TestApp, endpoint: &str) {
    let creds = app.files_dir.path().join("aws-test-credential");
    std::fs::write(&creds, "testing\n").unwrap();
    let reference = format!("file:{}", creds.display());
    let db = &app.database.as_ref().unwrap().db;
    db.channels()
        .upsert_account(&ChannelAccount {
            strategy: "sns-sms".into(),
            account_key: "demo".into(),
            tenant_id: demo(),
            settings: json!({"aws": {
                "region": "us-east-1", "endpoint_url": endpoint,
                "access_key_id": reference, "secret_access_key": reference,
            }}),
        })
        .await
        .unwrap();
}

fn demo() -> TenantId {
    TenantId::parse("demo").unwrap()
}

/// A test app whose demo tenant texts fresh numbers through moto, with a short provider SLA.
struct Assist {
    app: TestApp,
    operator: String,
    recipient: String,
}

async fn assist(sla_secs: u64) -> Assist {
    assist_on(TestBackend::Sqlite, sla_secs).await
}

async fn assist_on(backend: TestBackend, sla_secs: u64) -> Assist {
    let app = spawn_app_with(AppOptions {
        backend,
        ..AppOptions::default()
    })
    .await;
    use_sns(&app, moto_server()).await;
    let operator = fresh_number();
    let recipient = fresh_number();
    app.database
        .as_ref()
        .unwrap()
        .db
        .assistance()
        .set_settings(
            &demo(),
            &AssistanceSettings {
                provider_start_sla_secs: sla_secs,
                operator_recipients: vec![E164::parse(operator.clone()).unwrap()],
                mok_recipients: vec![E164::parse(recipient.clone()).unwrap()],
                ..AssistanceSettings::default()
            },
        )
        .await
        .unwrap();
    Assist {
        app,
        operator,
        recipient,
    }
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app
        .http
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-tenant-id", "demo");
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn complete_fields() -> Value {
    json!({
        "category": "MEDICAL", "country": "PE", "city": "Cusco",
        "beneficiary_name": "Ana Quispe", "beneficiary_phone": "+51987654321",
        "voucher_code": "V-2026-0001", "description": "Fiebre alta desde anoche",
        "address": "Hotel Plaza, Cusco",
    })
}

/// A new OPEN event; returns its id.
async fn open_event(app: &TestApp) -> String {
    let (status, draft) = call(
        app,
        Method::POST,
        "/v1/assistances/events/draft",
        Some(complete_fields()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{draft}");
    let id = draft["event_id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        app,
        Method::POST,
        &format!("/v1/assistances/events/{id}/statuses"),
        Some(json!({"status": "OPEN"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id
}

async fn event_state(app: &TestApp, id: &str) -> zengine_workflows::assistance::AssistanceView {
    app.temporal
        .get_workflow_handle::<AssistanceWorkflow>(zengine_domain::workflow_ids::assistance(
            &demo(),
            id,
        ))
        .query(
            AssistanceWorkflow::state,
            (),
            WorkflowQueryOptions::default(),
        )
        .await
        .unwrap()
}

async fn history_len(app: &TestApp, workflow_id: &str) -> usize {
    app.temporal
        .get_workflow_handle::<AssistanceWorkflow>(workflow_id)
        .describe(WorkflowDescribeOptions::default())
        .await
        .unwrap()
        .history_length()
}

#[tokio::test]
async fn a_draft_is_created_once_per_key_edited_and_opened_through_its_workflow() {
    let Assist { app, .. } = assist(1800).await;
    let post = |body: Value, key: &'static str| {
        app.http
            .post(format!("{}/v1/assistances/events/draft", app.address))
            .bearer_auth(ADMIN_TOKEN)
            .header("x-tenant-id", "demo")
            .header("x-idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = post(json!({"category": "MEDICAL"}), "draft-1")
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let draft: Value = first.json().await.unwrap();
    assert_eq!(draft["status"], "DRAFT");
    let id = draft["event_id"].as_str().unwrap().to_owned();
    let again = post(json!({"category": "MEDICAL"}), "draft-1")
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["event_id"], id);
    let reused = post(json!({"category": "DENTAL"}), "draft-1")
        .await
        .unwrap();
    assert_eq!(
        error_code(reused, StatusCode::CONFLICT).await,
        "idempotency_key_reused"
    );

    // The workflow exists from the draft on.
    assert_eq!(event_state(&app, &id).await.status.as_str(), "DRAFT");
    let (status, body) = call(
        &app,
        Method::PUT,
        &format!("/v1/assistances/events/draft/{id}"),
        Some(complete_fields()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        &app,
        Method::GET,
        &format!("/v1/assistances/events/draft/{id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["city"], "Cusco");

    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/v1/assistances/events/{id}/statuses"),
        Some(json!({"status": "OPEN", "reason": "complete"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["workflow"]["status"], "OPEN");
    // Repeating the change is harmless.
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/v1/assistances/events/{id}/statuses"),
        Some(json!({"status": "OPEN"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["duplicate"], true);
    // Once opened, the draft is no longer editable.
    let (status, body) = call(
        &app,
        Method::PUT,
        &format!("/v1/assistances/events/draft/{id}"),
        Some(complete_fields()),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, event) = call(
        &app,
        Method::GET,
        &format!("/v1/assistances/events/{id}"),
        None,
    )
    .await;
    assert_eq!(event["event"]["status"], "OPEN");
    assert_eq!(event["status_changes"].as_array().unwrap().len(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn invalid_transitions_are_refused_with_the_reason_and_record_nothing() {
    let Assist { app, .. } = assist(1800).await;
    let (_, draft) = call(
        &app,
        Method::POST,
        "/v1/assistances/events/draft",
        Some(json!({"city": "Lima"})),
    )
    .await;
    let id = draft["event_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/assistances/events/{id}/statuses");
    let workflow_id = zengine_domain::workflow_ids::assistance(&demo(), &id);
    // Let the workflow's first task finish so the history length is stable.
    event_state(&app, &id).await;
    let before = history_len(&app, &workflow_id).await;

    let (status, body) = call(&app, Method::POST, &path, Some(json!({"status": "OPEN"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing category, country, beneficiary_name, description"),
        "{body}"
    );
    let (status, body) = call(&app, Method::POST, &path, Some(json!({"status": "CLOSED"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body["error"]["message"],
        "an assistance event in DRAFT cannot become CLOSED"
    );
    let (status, body) = call(
        &app,
        Method::POST,
        &path,
        Some(json!({"status": "PROVIDER_ASSIGNED"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("assign a provider")
    );
    let (status, _) = call(
        &app,
        Method::POST,
        &path,
        Some(json!({"status": "FINISHED"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/v1/assistances/events/{id}/providers"),
        Some(json!({"provider_id": "PRV-CUS-001"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("it is DRAFT")
    );
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("/v1/assistances/events/{id}/providers/PRV-CUS-001/start"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The workflow refuses what the API did not see coming too, without a trace in the history.
    let handle = app
        .temporal
        .get_workflow_handle::<AssistanceWorkflow>(&workflow_id);
    let refused = handle
        .execute_update(
            AssistanceWorkflow::change_status,
            zengine_workflows::assistance::StatusRequest {
                to: zengine_domain::assistance::EventStatus::Closed,
                actor: "test".into(),
                reason: None,
            },
            Default::default(),
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(
        history_len(&app, &workflow_id).await,
        before,
        "a refused change left history"
    );
    let (_, event) = call(
        &app,
        Method::GET,
        &format!("/v1/assistances/events/{id}"),
        None,
    )
    .await;
    assert_eq!(event["event"]["status"], "DRAFT");
    assert!(event["status_changes"].as_array().unwrap().is_empty());
    assert!(event["providers"].as_array().unwrap().is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn providers_take_an_event_from_open_to_resolved_and_closing_ends_its_workflow() {
    let Assist { app, operator, .. } = assist(1800).await;
    let id = open_event(&app).await;
    let base = format!("/v1/assistances/events/{id}/providers");
    let (status, body) = call(
        &app,
        Method::POST,
        &base,
        Some(json!({"provider_id": "PRV-CUS-001"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["workflow"]["status"], "PROVIDER_ASSIGNED");
    let (status, body) = call(
        &app,
        Method::POST,
        &base,
        Some(json!({"provider_id": "PRV-CUS-001"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["duplicate"], true);
    let (status, body) = call(
        &app,
        Method::POST,
        &base,
        Some(json!({"provider_id": "PRV-NOPE"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Resolving before starting is a conflict with the provider's state.
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("{base}/PRV-CUS-001/resolve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, body) = call(
        &app,
        Method::POST,
        &format!("{base}/PRV-CUS-001/start"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["workflow"]["status"], "IN_PROGRESS");
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("{base}/PRV-CUS-001/start"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["duplicate"].clone()),
        (StatusCode::OK, json!(true))
    );
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("{base}/PRV-CUS-001/resolve"),
        Some(json!({"note": "alta médica"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["workflow"]["status"], "RESOLVED");
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/v1/assistances/events/{id}/statuses"),
        Some(json!({"status": "CLOSED"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let workflow_id = zengine_domain::workflow_ids::assistance(&demo(), &id);
    let view = tokio::time::timeout(
        Duration::from_secs(20),
        app.temporal
            .get_workflow_handle::<AssistanceWorkflow>(&workflow_id)
            .get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("a closed event's workflow ends")
    .unwrap();
    assert_eq!(view.status.as_str(), "CLOSED");
    assert_eq!(view.escalations, 0);
    let to: Vec<_> = view.transitions.iter().map(|t| t.to.as_str()).collect();
    assert_eq!(
        to,
        [
            "OPEN",
            "PROVIDER_ASSIGNED",
            "IN_PROGRESS",
            "RESOLVED",
            "CLOSED"
        ]
    );
    let (_, event) = call(
        &app,
        Method::GET,
        &format!("/v1/assistances/events/{id}"),
        None,
    )
    .await;
    assert_eq!(event["providers"][0]["status"], "RESOLVED");
    assert_eq!(event["providers"][0]["resolution"], "alta médica");
    assert_eq!(event["status_changes"].as_array().unwrap().len(), 5);
    // No SLA trouble, no page.
    assert!(sms_to(&operator).await.is_empty());
    // A closed event accepts no change.
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("/v1/assistances/events/{id}/statuses"),
        Some(json!({"status": "OPEN"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    record(&app, &workflow_id, "assistance__provider_lifecycle_closed").await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_provider_that_does_not_start_in_time_is_escalated_once_by_sms() {
    let Assist { app, operator, .. } = assist(2).await;
    let id = open_event(&app).await;
    let base = format!("/v1/assistances/events/{id}/providers");
    let (status, _) = call(
        &app,
        Method::POST,
        &base,
        Some(json!({"provider_id": "PRV-CUS-001"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // A second provider starts at once: only the first one is overdue.
    let (status, _) = call(
        &app,
        Method::POST,
        &base,
        Some(json!({"provider_id": "PRV-CUS-002"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("{base}/PRV-CUS-002/start"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let texts = wait_sms(&operator, 1).await;
    assert!(
        texts[0].contains(&id) && texts[0].contains("PRV-CUS-001"),
        "{texts:?}"
    );
    assert!(texts[0].contains("no inició la atención"), "{texts:?}");
    let db = &app.database.as_ref().unwrap().db;
    let mut escalated = Vec::new();
    for _ in 0..50 {
        escalated = db
            .events()
            .list(&demo(), "Assistance.ProviderStartOverdue")
            .await
            .unwrap();
        if !escalated.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(escalated.len(), 1);
    assert_eq!(escalated[0].subject, id);
    assert_eq!(escalated[0].payload["provider_id"], "PRV-CUS-001");
    // The activity records the event and texts the operators before it completes; the
    // workflow marks the provider escalated once it has the activity's result.
    let mut state = event_state(&app, &id).await;
    for _ in 0..100 {
        if state.escalations > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        state = event_state(&app, &id).await;
    }
    assert_eq!(state.escalations, 1);
    assert!(
        state
            .providers
            .iter()
            .any(|p| p.provider_id == "PRV-CUS-001" && p.escalated)
    );

    // Escalated once, however long it waits; starting late is still accepted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sms_to(&operator).await.len(), 1);
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("{base}/PRV-CUS-001/start"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("/v1/assistances/events/{id}/statuses"),
        Some(json!({"status": "CANCELLED", "reason": "test over"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let workflow_id = zengine_domain::workflow_ids::assistance(&demo(), &id);
    tokio::time::timeout(
        Duration::from_secs(20),
        app.temporal
            .get_workflow_handle::<AssistanceWorkflow>(&workflow_id)
            .get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        db.events()
            .list(&demo(), "Assistance.ProviderStartOverdue")
            .await
            .unwrap()
            .len(),
        1
    );
    record(
        &app,
        &workflow_id,
        "assistance__sla_escalated_then_cancelled",
    )
    .await;
    app.shutdown().await;
}

const BOUNDARY: &str = "zengine-assist-boundary";

fn multipart(fields: &[(&str, &str)], file: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some(bytes) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"f\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub async fn post_consultation(
    app: &TestApp,
    body: Vec<u8>,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!(
            "{}/v1/assistances/phone-consultations",
            app.address
        ))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-tenant-id", "demo")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body);
    if let Some(key) = key {
        request = request.header("x-idempotency-key", key);
    }
    request.send().await.unwrap()
}

/// A small but real PDF.
pub const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";

/// Records a phone consultation with a PDF for `event_id` and reads the attachment back.
pub async fn consultation_round_trip(app: &TestApp, event_id: &str) -> Value {
    let fields = [
        ("event_id", event_id),
        ("summary", "Orientación médica: paracetamol y reposo"),
        ("caller_phone", "+51987654321"),
        ("duration_secs", "420"),
    ];
    let response = post_consultation(app, multipart(&fields, Some(PDF)), Some("pc-1")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let consultation: Value = response.json().await.unwrap();
    assert_eq!(
        consultation["attachment"]["content_type"],
        "application/pdf"
    );
    assert_eq!(consultation["attachment"]["size"], PDF.len());
    let again = post_consultation(app, multipart(&fields, Some(PDF)), Some("pc-1")).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        again.json::<Value>().await.unwrap()["consultation_id"],
        consultation["consultation_id"]
    );
    let id = consultation["consultation_id"].as_str().unwrap();
    let file = app
        .http
        .get(format!(
            "{}/v1/assistances/phone-consultations/{id}/attachment",
            app.address
        ))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-tenant-id", "demo")
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.headers()["content-type"], "application/pdf");
    assert_eq!(file.bytes().await.unwrap().as_ref(), PDF);
    consultation
}

#[tokio::test]
async fn notes_and_phone_consultations_are_recorded_once_with_their_attachment() {
    let Assist { app, .. } = assist(1800).await;
    let id = open_event(&app).await;
    let note = |key: &'static str, text: &'static str| {
        app.http
            .post(format!("{}/v1/assistances/notes", app.address))
            .bearer_auth(ADMIN_TOKEN)
            .header("x-tenant-id", "demo")
            .header("x-idempotency-key", key)
            .json(&json!({"event_id": id, "text": text, "author": "ops@demo"}))
            .send()
    };
    assert_eq!(
        note("n-1", "Llamó el hotel").await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(
        note("n-1", "Llamó el hotel").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        error_code(
            note("n-1", "Otra cosa").await.unwrap(),
            StatusCode::CONFLICT
        )
        .await,
        "idempotency_key_reused"
    );
    // The note is the authenticated caller's (the admin token here), whatever `author` the
    // body claims.
    let (_, event) = call(
        &app,
        Method::GET,
        &format!("/v1/assistances/events/{id}"),
        None,
    )
    .await;
    assert_eq!(event["notes"][0]["author"], "admin-token", "{event}");
    let (status, _) = call(
        &app,
        Method::POST,
        "/v1/assistances/notes",
        Some(json!({"event_id": "ase_nope", "text": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        Method::POST,
        "/v1/assistances/notes",
        Some(json!({"event_id": id, "text": "  "})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let consultation = consultation_round_trip(&app, &id).await;
    // The local store keeps it under the data folder, below the tenant's prefix.
    let key = consultation["attachment"]["key"].as_str().unwrap();
    assert!(key.starts_with("demo/phone-consultations/"));
    assert_eq!(std::fs::read(app.files_dir.path().join(key)).unwrap(), PDF);

    // Refused uploads: no file, no row.
    let too_big = vec![b'%'; app_max_bytes() + 1];
    let response = post_consultation(
        &app,
        multipart(&[("event_id", &id), ("summary", "x")], Some(&too_big)),
        None,
    )
    .await;
    assert_eq!(
        error_code(response, StatusCode::PAYLOAD_TOO_LARGE).await,
        "payload_too_large"
    );
    let response = post_consultation(
        &app,
        multipart(
            &[("event_id", &id), ("summary", "x")],
            Some(b"#!/bin/sh\nrm -rf /\n"),
        ),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let response = post_consultation(&app, multipart(&[("event_id", &id)], None), None).await;
    assert_eq!(
        error_code(response, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_field"
    );
    let response = post_consultation(
        &app,
        multipart(
            &[("event_id", &id), ("summary", "x"), ("caller_phone", "987")],
            None,
        ),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = post_consultation(
        &app,
        multipart(&[("event_id", "ase_nope"), ("summary", "x")], None),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = post_consultation(
        &app,
        multipart(&[("event_id", &id), ("summary", "x"), ("extra", "y")], None),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = post_consultation(&app, b"--nope".to_vec(), None).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &app,
        Method::POST,
        "/v1/assistances/phone-consultations",
        Some(json!({"event_id": id})),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (_, event) = call(
        &app,
        Method::GET,
        &format!("/v1/assistances/events/{id}"),
        None,
    )
    .await;
    assert_eq!(event["notes"].as_array().unwrap().len(), 1);
    assert_eq!(event["phone_consultations"].as_array().unwrap().len(), 1);
    app.shutdown().await;
}

fn app_max_bytes() -> usize {
    zengine_channels::files::FileStoreSettings::default().max_bytes
}

#[tokio::test]
async fn catalogues_and_provider_search_answer_from_the_seeded_data() {
    let Assist { app, .. } = assist(1800).await;
    for name in [
        "categories",
        "event-statuses",
        "eventprovider-statuses",
        "voucher-statuses",
        "countries",
    ] {
        let (status, body) = call(&app, Method::GET, &format!("/v1/masters/{name}"), None).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(!body["items"].as_array().unwrap().is_empty(), "{name}");
    }
    let (_, statuses) = call(&app, Method::GET, "/v1/masters/event-statuses", None).await;
    assert_eq!(
        statuses["items"][0],
        json!({"code": "DRAFT", "name": "Borrador"})
    );
    let (status, _) = call(&app, Method::GET, "/v1/masters/planets", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let ids = |body: &Value| {
        body["providers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["provider_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let (_, found) = call(
        &app,
        Method::GET,
        "/v1/providers/search?category=MEDICAL&city=cusco",
        None,
    )
    .await;
    assert_eq!(ids(&found), ["PRV-CUS-001"]);
    let (_, found) = call(
        &app,
        Method::GET,
        "/v1/providers/search?q=clinica%20bogota",
        None,
    )
    .await;
    assert_eq!(ids(&found), ["PRV-BOG-001"]);
    let (_, found) = call(
        &app,
        Method::GET,
        "/v1/providers/search?city=Lima&limit=2",
        None,
    )
    .await;
    assert_eq!(ids(&found).len(), 2);
    let (_, found) = call(
        &app,
        Method::GET,
        "/v1/providers/search?category=REPATRIATION",
        None,
    )
    .await;
    assert!(ids(&found).is_empty());
    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        "q=",
        "city=%20",
        "colour=red",
    ] {
        let (status, body) = call(
            &app,
            Method::GET,
            &format!("/v1/providers/search?{bad}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    app.shutdown().await;
}

/// Every assistance endpoint, with a body where it takes one.
fn endpoints(id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            "/v1/assistances/events/draft".into(),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/v1/assistances/events/draft/{id}"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/assistances/events/draft/{id}"),
            Some(json!({})),
        ),
        (Method::GET, format!("/v1/assistances/events/{id}"), None),
        (
            Method::POST,
            format!("/v1/assistances/events/{id}/statuses"),
            Some(json!({"status": "OPEN"})),
        ),
        (
            Method::POST,
            format!("/v1/assistances/events/{id}/providers"),
            Some(json!({"provider_id": "PRV-CUS-001"})),
        ),
        (
            Method::POST,
            format!("/v1/assistances/events/{id}/providers/PRV-CUS-001/start"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/assistances/events/{id}/providers/PRV-CUS-001/resolve"),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1/assistances/notes".into(),
            Some(json!({"event_id": id, "text": "x"})),
        ),
        (
            Method::POST,
            "/v1/assistances/phone-consultations".into(),
            None,
        ),
        (
            Method::GET,
            "/v1/assistances/phone-consultations/phc_x/attachment".into(),
            None,
        ),
        (Method::GET, "/v1/masters/categories".into(), None),
        (Method::GET, "/v1/providers/search".into(), None),
        (
            Method::POST,
            "/v1/mok/events".into(),
            Some(json!({"event_id": "m", "source_code": "MOK", "action": "NOTE_REGISTER"})),
        ),
        (Method::GET, "/v1/mok/events/m".into(), None),
    ]
}

#[tokio::test]
async fn every_assistance_endpoint_refuses_unauthenticated_malformed_and_oversized_input() {
    let Assist { app, .. } = assist(1800).await;
    let id = open_event(&app).await;
    let db = &app.database.as_ref().unwrap().db;
    let changes_before = db
        .assistance()
        .status_changes(&demo(), &id)
        .await
        .unwrap()
        .len();
    for (method, path, body) in endpoints(&id) {
        let send = |token: Option<&str>, tenant: Option<&str>, body: Option<Vec<u8>>| {
            let mut r = app
                .http
                .request(method.clone(), format!("{}{path}", app.address));
            if let Some(token) = token {
                r = r.bearer_auth(token);
            }
            if let Some(tenant) = tenant {
                r = r.header("x-tenant-id", tenant);
            }
            if let Some(body) = body {
                r = r.header("content-type", "application/json").body(body);
            }
            r.send()
        };
        let json = body.as_ref().map(|b| b.to_string().into_bytes());
        for (token, tenant, status) in [
            (None, Some("demo"), StatusCode::UNAUTHORIZED),
            (Some("wrong-token"), Some("demo"), StatusCode::UNAUTHORIZED),
            (Some(ADMIN_TOKEN), None, StatusCode::BAD_REQUEST),
            (
                Some(ADMIN_TOKEN),
                Some("Not A Tenant"),
                StatusCode::BAD_REQUEST,
            ),
            (Some(ADMIN_TOKEN), Some("ghost"), StatusCode::NOT_FOUND),
        ] {
            let response = send(token, tenant, json.clone()).await.unwrap();
            assert_eq!(
                response.status(),
                status,
                "{method} {path} token={token:?} tenant={tenant:?}"
            );
            let error: Value = response.json().await.unwrap();
            assert!(
                error["error"]["code"].is_string(),
                "{method} {path}: {error}"
            );
        }
        if body.is_some() {
            let response = send(Some(ADMIN_TOKEN), Some("demo"), Some(b"{not json".to_vec()))
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{method} {path} malformed"
            );
            let response = send(Some(ADMIN_TOKEN), Some("demo"), Some(b"[1, 2]".to_vec()))
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{method} {path} not an object"
            );
            let big = format!("{{\"note\": \"{}\"}}", "x".repeat(70 * 1024)).into_bytes();
            let response = send(Some(ADMIN_TOKEN), Some("demo"), Some(big))
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "{method} {path} oversized"
            );
        }
    }
    // Unknown fields are refused rather than ignored.
    let (status, _) = call(
        &app,
        Method::POST,
        "/v1/assistances/events/draft",
        Some(json!({"colour": "red"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("/v1/assistances/events/{id}/statuses"),
        Some(json!({"status": "CLOSED", "by": "me"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &app,
        Method::GET,
        "/v1/assistances/events/..%2F..%2Fetc",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        Method::POST,
        "/v1/assistances/events/draft",
        Some(json!({"country": "Peru", "beneficiary_phone": "123"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // None of it changed the event.
    assert_eq!(
        db.assistance()
            .status_changes(&demo(), &id)
            .await
            .unwrap()
            .len(),
        changes_before
    );
    assert!(
        db.assistance()
            .event_providers(&demo(), &id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        db.assistance()
            .notes(&demo(), &id)
            .await
            .unwrap()
            .is_empty()
    );
    app.shutdown().await;
}

// MOK tracking.

fn mok(
    event_id: &str,
    action: &str,
    assistance_id: &str,
    provider: Option<&str>,
    note: Option<&str>,
) -> Value {
    json!({
        "event_id": event_id, "source_code": "MOK", "action": action,
        "assistance_id": assistance_id, "provider": provider, "note": note,
        "occurred_at": "2026-11-30T15:04:05-05:00",
    })
}

/// Posts a MOK event and waits for its workflow; returns the POST status and the result.
async fn run_mok(
    app: &TestApp,
    body: Value,
) -> (StatusCode, Result<zengine_workflows::mok::MokView, String>) {
    let (status, answer) = call(app, Method::POST, "/v1/mok/events", Some(body.clone())).await;
    assert!(status.is_success(), "{answer}");
    let id = zengine_domain::workflow_ids::mok(&demo(), body["event_id"].as_str().unwrap());
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        app.temporal
            .get_workflow_handle::<MokWorkflow>(&id)
            .get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("the MOK workflow ends");
    (status, result.map_err(|e| format!("{e:?}")))
}

async fn log_steps(app: &TestApp, event_id: &str) -> Vec<(String, String)> {
    app.database
        .as_ref()
        .unwrap()
        .db
        .assistance()
        .log(&demo(), event_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.step, e.outcome))
        .collect()
}

fn steps(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

#[tokio::test]
async fn each_mok_action_is_tracked_texted_and_logged_step_by_step() {
    let Assist {
        app,
        recipient,
        operator,
    } = assist(1800).await;
    let id = open_event(&app).await;
    let create = unique("mok-create");
    let (status, view) = run_mok(
        &app,
        mok(
            &create,
            "EVENT_PROVIDER_CREATE",
            &id,
            Some("PRV-CUS-001"),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let view = view.unwrap();
    assert_eq!(view.status, zengine_workflows::mok::MokStatus::Succeeded);
    assert_eq!(
        log_steps(&app, &create).await,
        steps(&[
            ("Choice", "OK"),
            ("TrackingMok", "OK"),
            ("SnsNotification", "OK"),
            ("Success", "OK")
        ])
    );
    let texts = wait_sms(&recipient, 1).await;
    assert_eq!(
        texts[0],
        format!("Asistencia {id}: proveedor PRV-CUS-001 asignado.")
    );
    assert_eq!(view.messages.len(), 1);
    // The event's workflow followed the change the MOK workflow stored.
    let mut state = event_state(&app, &id).await;
    for _ in 0..50 {
        if state.status.as_str() == "PROVIDER_ASSIGNED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        state = event_state(&app, &id).await;
    }
    assert_eq!(state.status.as_str(), "PROVIDER_ASSIGNED");
    assert_eq!(state.providers[0].provider_id, "PRV-CUS-001");
    record(
        &app,
        &zengine_domain::workflow_ids::mok(&demo(), &create),
        "mok__provider_create_tracked",
    )
    .await;

    let start = unique("mok-start");
    run_mok(
        &app,
        mok(
            &start,
            "EVENT_PROVIDER_START",
            &id,
            Some("PRV-CUS-001"),
            None,
        ),
    )
    .await
    .1
    .unwrap();
    let note = unique("mok-note");
    run_mok(
        &app,
        mok(
            &note,
            "NOTE_REGISTER",
            &id,
            None,
            Some("Paciente estable, en observación"),
        ),
    )
    .await
    .1
    .unwrap();
    let resolve = unique("mok-resolve");
    run_mok(
        &app,
        mok(
            &resolve,
            "EVENT_PROVIDER_RESOLVE",
            &id,
            Some("PRV-CUS-001"),
            Some("Alta médica"),
        ),
    )
    .await
    .1
    .unwrap();
    let texts = wait_sms(&recipient, 4).await;
    assert!(texts[1].contains("inició la atención"), "{texts:?}");
    assert!(
        texts[2].contains("nueva nota. Paciente estable"),
        "{texts:?}"
    );
    assert!(
        texts[3].contains("resolvió la atención. Alta médica"),
        "{texts:?}"
    );
    let (_, event) = call(
        &app,
        Method::GET,
        &format!("/v1/assistances/events/{id}"),
        None,
    )
    .await;
    assert_eq!(event["event"]["status"], "RESOLVED");
    assert_eq!(event["providers"][0]["status"], "RESOLVED");
    assert_eq!(event["providers"][0]["source"], "mok");
    assert_eq!(
        event["notes"][0]["body"],
        "Paciente estable, en observación"
    );
    assert_eq!(event["log"].as_array().unwrap().len(), 16);
    // GET shows the run and its log.
    let (status, got) = call(
        &app,
        Method::GET,
        &format!("/v1/mok/events/{resolve}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["workflow_status"], "COMPLETED");
    assert_eq!(got["log"].as_array().unwrap().len(), 4);
    assert!(
        sms_to(&operator).await.is_empty(),
        "nothing failed, nobody paged"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_tracking_event_from_another_source_is_ignored_without_effect() {
    let Assist { app, recipient, .. } = assist(1800).await;
    let id = open_event(&app).await;
    let event_id = unique("web");
    let mut body = mok(
        &event_id,
        "EVENT_PROVIDER_CREATE",
        &id,
        Some("PRV-CUS-001"),
        None,
    );
    body["source_code"] = json!("WEB");
    let (status, view) = run_mok(&app, body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        view.unwrap().status,
        zengine_workflows::mok::MokStatus::Ignored
    );
    assert_eq!(
        log_steps(&app, &event_id).await,
        steps(&[("Choice", "OK"), ("Ignored", "OK")])
    );
    let db = &app.database.as_ref().unwrap().db;
    assert!(
        db.assistance()
            .event_providers(&demo(), &id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(sms_to(&recipient).await.is_empty());
    record(
        &app,
        &zengine_domain::workflow_ids::mok(&demo(), &event_id),
        "mok__other_source_ignored",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_same_mok_event_twice_has_one_effect() {
    let Assist { app, recipient, .. } = assist(1800).await;
    let id = open_event(&app).await;
    let event_id = unique("dup");
    let body = mok(
        &event_id,
        "EVENT_PROVIDER_CREATE",
        &id,
        Some("PRV-CUS-001"),
        None,
    );
    let (first, answer) = call(&app, Method::POST, "/v1/mok/events", Some(body.clone())).await;
    assert_eq!(first, StatusCode::ACCEPTED, "{answer}");
    let (second, again) = call(&app, Method::POST, "/v1/mok/events", Some(body.clone())).await;
    assert_eq!(second, StatusCode::OK, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["run_id"], answer["run_id"]);
    let (_, view) = run_mok(&app, body.clone()).await;
    view.unwrap();
    // After it finished: still the same run, still one effect.
    let (third, after) = call(&app, Method::POST, "/v1/mok/events", Some(body.clone())).await;
    assert_eq!(third, StatusCode::OK);
    assert_eq!(after["status"], "COMPLETED");
    let mut other = body.clone();
    other["provider"] = json!("PRV-CUS-002");
    let (status, _) = call(&app, Method::POST, "/v1/mok/events", Some(other)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sms_to(&recipient).await.len(), 1);
    let db = &app.database.as_ref().unwrap().db;
    assert_eq!(
        db.assistance()
            .event_providers(&demo(), &id)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(log_steps(&app, &event_id).await.len(), 4);
    app.shutdown().await;
}

#[tokio::test]
async fn an_unknown_or_incomplete_mok_event_is_refused_and_starts_no_workflow() {
    let Assist { app, .. } = assist(1800).await;
    let id = open_event(&app).await;
    let cases = [
        (
            mok(
                &unique("bad"),
                "EVENT_PROVIDER_DELETE",
                &id,
                Some("PRV-CUS-001"),
                None,
            ),
            "field `action`",
        ),
        (
            mok(&unique("bad"), "NOTE_REGISTER", &id, None, None),
            "field `note`",
        ),
        (
            mok(&unique("bad"), "EVENT_PROVIDER_START", &id, None, None),
            "field `provider`",
        ),
        (
            json!({"event_id": unique("bad"), "source_code": "MOK", "action": "NOTE_REGISTER", "note": "x"}),
            "field `assistance_id`",
        ),
        (
            json!({"event_id": "a/b", "source_code": "MOK", "action": "NOTE_REGISTER", "assistance_id": id, "note": "x"}),
            "field `event_id`",
        ),
        (
            {
                let mut b = mok(&unique("bad"), "NOTE_REGISTER", &id, None, Some("x"));
                b["occurred_at"] = json!("yesterday");
                b
            },
            "field `occurred_at`",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = call(&app, Method::POST, "/v1/mok/events", Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(field),
            "{answer}"
        );
        // Temporal has no such workflow.
        if let Some(event_id) = body["event_id"].as_str() {
            let described = app
                .temporal
                .get_workflow_handle::<MokWorkflow>(zengine_domain::workflow_ids::mok(
                    &demo(),
                    event_id,
                ))
                .describe(WorkflowDescribeOptions::default())
                .await;
            assert!(described.is_err(), "a workflow exists for {event_id}");
            assert!(log_steps(&app, event_id).await.is_empty());
        }
    }
    let (status, _) = call(
        &app,
        Method::POST,
        "/v1/mok/events",
        Some(json!({"event_id": "x", "source_code": "MOK", "action": "NOTE_REGISTER", "extra": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(&app, Method::GET, "/v1/mok/events/never-sent", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.shutdown().await;
}

#[tokio::test]
async fn when_sns_fails_the_step_is_retried_then_the_error_branch_records_the_cause() {
    let Assist {
        app,
        recipient,
        operator,
    } = assist(1800).await;
    let id = open_event(&app).await;
    // SNS is unreachable: a closed port.
    let closed = format!(
        "http://127.0.0.1:{}",
        zengine_workers::devserver::free_port()
    );
    use_sns(&app, &closed).await;
    let event_id = unique("sns-down");
    let (_, result) = run_mok(
        &app,
        mok(
            &event_id,
            "EVENT_PROVIDER_CREATE",
            &id,
            Some("PRV-CUS-001"),
            None,
        ),
    )
    .await;
    let error = result.expect_err("the workflow fails in its error branch");
    assert!(
        error.contains("MokTrackingFailed") || error.contains("SnsNotification failed"),
        "{error}"
    );
    assert_eq!(
        log_steps(&app, &event_id).await,
        steps(&[("Choice", "OK"), ("TrackingMok", "OK"), ("Error", "FAILED")])
    );
    let db = &app.database.as_ref().unwrap().db;
    let entry = db
        .assistance()
        .log_entry(&demo(), &event_id, "Error")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.detail["failed_step"], "SnsNotification");
    let cause = entry.detail["cause"].as_str().unwrap();
    assert!(
        cause.contains("attempt 3") && cause.contains("DispatchFailure"),
        "{cause}"
    );
    // The operators could not be texted either (same SNS); that is recorded, and the event is
    // there for other consumers.
    assert_eq!(
        entry.detail["operators_failed"].as_array().unwrap().len(),
        1,
        "{}",
        entry.detail
    );
    let failed = db
        .events()
        .list(&demo(), "Assistance.MokFailed")
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].payload["failed_step"], "SnsNotification");
    // The tracking itself happened, once.
    assert_eq!(
        db.assistance()
            .event_providers(&demo(), &id)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(sms_to(&recipient).await.is_empty() && sms_to(&operator).await.is_empty());
    record(
        &app,
        &zengine_domain::workflow_ids::mok(&demo(), &event_id),
        "mok__sns_unreachable_error_branch",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_tracking_step_the_state_machine_refuses_goes_to_the_error_branch_and_pages_operators() {
    let Assist {
        app,
        recipient,
        operator,
    } = assist(1800).await;
    let id = open_event(&app).await;
    let event_id = unique("refused");
    // Starting a provider that was never assigned.
    let (_, result) = run_mok(
        &app,
        mok(
            &event_id,
            "EVENT_PROVIDER_START",
            &id,
            Some("PRV-CUS-001"),
            None,
        ),
    )
    .await;
    result.expect_err("the workflow fails");
    assert_eq!(
        log_steps(&app, &event_id).await,
        steps(&[("Choice", "OK"), ("Error", "FAILED")])
    );
    let db = &app.database.as_ref().unwrap().db;
    let entry = db
        .assistance()
        .log_entry(&demo(), &event_id, "Error")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.detail["failed_step"], "TrackingMok");
    assert!(
        entry.detail["cause"]
            .as_str()
            .unwrap()
            .contains("is not assigned")
            || entry.detail["cause"]
                .as_str()
                .unwrap()
                .contains("does not exist"),
        "{}",
        entry.detail
    );
    let pages = wait_sms(&operator, 1).await;
    assert_eq!(
        pages[0],
        format!("ERROR MOK {event_id} (EVENT_PROVIDER_START): falló TrackingMok.")
    );
    assert!(sms_to(&recipient).await.is_empty());
    // Permanent: tried once, not five times.
    let history = app
        .temporal
        .get_workflow_handle::<MokWorkflow>(zengine_domain::workflow_ids::mok(&demo(), &event_id))
        .fetch_history(Default::default())
        .into_events()
        .await
        .unwrap();
    use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
    let attempts: Vec<i32> = history
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::ActivityTaskStartedEventAttributes(a)) => Some(a.attempt),
            _ => None,
        })
        .collect();
    assert!(attempts.iter().all(|a| *a == 1), "{attempts:?}");
    record(
        &app,
        &zengine_domain::workflow_ids::mok(&demo(), &event_id),
        "mok__tracking_refused_error_branch",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn assistance_and_mok_tracking_work_as_the_restricted_role_under_row_level_security() {
    let Assist { app, recipient, .. } = assist_on(TestBackend::PostgresRls, 1800).await;
    let id = open_event(&app).await;
    let event_id = unique("rls");
    let (status, view) = run_mok(
        &app,
        mok(
            &event_id,
            "EVENT_PROVIDER_CREATE",
            &id,
            Some("PRV-LIM-001"),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        view.unwrap().status,
        zengine_workflows::mok::MokStatus::Succeeded
    );
    assert_eq!(wait_sms(&recipient, 1).await.len(), 1);
    assert_eq!(log_steps(&app, &event_id).await.len(), 4);
    let (_, found) = call(
        &app,
        Method::GET,
        "/v1/providers/search?city=lima&q=clinica",
        None,
    )
    .await;
    assert_eq!(found["providers"][0]["provider_id"], "PRV-LIM-001");
    let (status, _) = call(&app, Method::GET, "/v1/masters/countries", None).await;
    assert_eq!(status, StatusCode::OK);
    consultation_round_trip(&app, &id).await;
    app.shutdown().await;
}
