//! The connector SDK end to end: 360dialog webhooks in and replies out through a loopback
//! fake of its API, tenant isolation of per-account secrets, the persistent circuit breaker,
//! dead letters and their re-drive, health checks, the event stream and template management.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use zengine_domain::TenantId;
use zengine_domain::channel::breaker::BreakerState;
use zengine_domain::flow::demo_flow;
use zengine_storage::ChannelAccount;

use crate::fakes::{Answer, FakeProvider};
use crate::helpers::{ADMIN_TOKEN, TestApp, error_code, spawn_app};

/// A secret reference to a fresh file holding `value`.
pub fn file_secret(value: &str) -> String {
    let path = std::env::temp_dir().join(format!("zengine-secret-{}", uuid::Uuid::new_v4()));
    std::fs::write(&path, format!("{value}\n")).unwrap();
    format!("file:{}", path.display())
}

/// Creates a tenant running the demo flow.
pub async fn create_tenant(app: &TestApp, tenant: &str) -> TenantId {
    let db = &app.database.as_ref().unwrap().db;
    let id = TenantId::parse(tenant).unwrap();
    let flow = demo_flow();
    db.tenants().upsert(&id, tenant, &flow.id).await.unwrap();
    db.tenants().publish_flow(&id, &flow).await.unwrap();
    id
}

pub async fn add_account(
    app: &TestApp,
    tenant: &TenantId,
    strategy: &str,
    key: &str,
    settings: Value,
) {
    app.database
        .as_ref()
        .unwrap()
        .db
        .channels()
        .upsert_account(&ChannelAccount {
            strategy: strategy.into(),
            account_key: key.into(),
            tenant_id: tenant.clone(),
            settings,
        })
        .await
        .unwrap();
}

/// A fake 360dialog API: `POST /messages` answers a wamid, the config endpoints answer 200.
pub async fn fake_360dialog() -> FakeProvider {
    let fake = FakeProvider::start().await;
    fake.on("POST /messages", |seen, n| {
        Answer::json(
            200,
            json!({"messaging_product": "whatsapp",
                   "contacts": [{"input": seen.body["to"], "wa_id": seen.body["to"]}],
                   "messages": [{"id": format!("wamid.d360-{n}")}]}),
        )
    })
    .on("GET /v1/configs/webhook", |_, _| {
        Answer::json(
            200,
            json!({"url": "https://zengine.example/v1/webhooks/360dialog"}),
        )
    });
    fake
}

/// A tenant with a 360dialog account on `phone` pointing at `fake`; returns (tenant, secret).
pub async fn dialog_tenant(
    app: &TestApp,
    tenant: &str,
    phone: &str,
    fake: &FakeProvider,
    extra: Value,
) -> (TenantId, String) {
    let id = create_tenant(app, tenant).await;
    let secret = format!("whsec-{tenant}-{}", uuid::Uuid::new_v4());
    let mut settings = json!({
        "api_base": fake.url,
        "api_key": file_secret(&format!("d360-key-{tenant}")),
        "webhook_secret": file_secret(&secret),
    });
    if let (Some(s), Some(e)) = (settings.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    add_account(app, &id, "whatsapp-360dialog", phone, settings).await;
    (id, secret)
}

fn meta_envelope(phone: &str, value: Value) -> Vec<u8> {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({"display_phone_number": "15550001111", "phone_number_id": phone});
    json!({"object": "whatsapp_business_account",
           "entry": [{"id": "waba-1", "changes": [{"field": "messages", "value": value}]}]})
    .to_string()
    .into_bytes()
}

pub fn text_message(phone: &str, from: &str, wamid: &str, text: &str) -> Vec<u8> {
    meta_envelope(
        phone,
        json!({"contacts": [{"profile": {"name": "Ana"}, "wa_id": from}],
               "messages": [{"from": from, "id": wamid, "timestamp": "1749416383",
                             "type": "text", "text": {"body": text}}]}),
    )
}

fn status_update(phone: &str, wamid: &str, status: &str, to: &str) -> Vec<u8> {
    meta_envelope(
        phone,
        json!({"statuses": [{"id": wamid, "status": status, "timestamp": "1750030000",
                             "recipient_id": to}]}),
    )
}

pub async fn post_360(app: &TestApp, body: Vec<u8>, secret: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!("{}/v1/webhooks/360dialog", app.address))
        .header("content-type", "application/json")
        .body(body);
    if let Some(secret) = secret {
        request = request.header("x-zengine-webhook-secret", secret);
    }
    request.send().await.unwrap()
}

/// GET with the management token and `x-tenant-id`.
pub async fn admin_get(app: &TestApp, tenant: &str, path: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-tenant-id", tenant)
        .send()
        .await
        .unwrap()
}

pub async fn admin_post(
    app: &TestApp,
    tenant: &str,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!("{}{path}", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-tenant-id", tenant);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every event of a tenant, following the cursor.
pub async fn all_events(app: &TestApp, tenant: &str) -> Vec<Value> {
    let mut after = "0".to_owned();
    let mut events = Vec::new();
    loop {
        let response = admin_get(app, tenant, &format!("/v1/events?after={after}&limit=2")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let page: Value = response.json().await.unwrap();
        let batch = page["events"].as_array().unwrap().clone();
        if batch.is_empty() {
            return events;
        }
        after = page["next_after"].as_str().unwrap().to_owned();
        events.extend(batch);
    }
}

#[tokio::test]
async fn a_360dialog_message_is_authenticated_by_its_accounts_secret_and_answered_once() {
    let app = spawn_app().await;
    let fake = fake_360dialog().await;
    let (_, secret) = dialog_tenant(&app, "acme", "360111", &fake, json!({})).await;
    let (_, other_secret) = dialog_tenant(&app, "globex", "360222", &fake, json!({})).await;
    let body = text_message("360111", "51911111111", "wamid.in-1", "hola");

    // Unauthenticated, wrong secret, another tenant's secret, unknown number: 401, no effect.
    for (secret, body) in [
        (None, body.clone()),
        (Some("nope"), body.clone()),
        (Some(other_secret.as_str()), body.clone()),
        (
            Some(secret.as_str()),
            text_message("360999", "51911111111", "wamid.x", "hola"),
        ),
    ] {
        let response = post_360(&app, body, secret).await;
        assert_eq!(
            error_code(response, StatusCode::UNAUTHORIZED).await,
            "unauthorized"
        );
    }
    // Malformed: not JSON, not a WhatsApp payload.
    let response = post_360(&app, b"{".to_vec(), Some(&secret)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = post_360(&app, br#"{"object":"page"}"#.to_vec(), Some(&secret)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // Oversized.
    let response = post_360(&app, vec![b' '; 1024 * 1024 + 10], Some(&secret)).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(fake.seen("POST /messages").is_empty());

    // Accepted once, delivered ten times = one effect.
    let first = json!({"accepted": 1, "duplicates": 0});
    let repeat = json!({"accepted": 0, "duplicates": 1});
    for expected in std::iter::once(first).chain(std::iter::repeat_n(repeat, 9)) {
        let response = post_360(&app, body.clone(), Some(&secret)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let tally: Value = response.json().await.unwrap();
        assert_eq!(tally["accepted"], expected["accepted"], "{tally}");
        assert_eq!(tally["duplicates"], expected["duplicates"], "{tally}");
    }
    let sent = eventually(30, "the reply", || async {
        let seen = fake.seen("POST /messages");
        (!seen.is_empty()).then_some(seen)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent_now = fake.seen("POST /messages");
    assert_eq!(sent_now.len(), sent.len(), "no second send");
    let first = &sent_now[0];
    assert_eq!(first.headers["d360-api-key"], "d360-key-acme");
    assert_eq!(first.body["to"], "51911111111");
    assert_eq!(first.body["messaging_product"], "whatsapp");
    assert!(
        first.body["biz_opaque_callback_data"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "{}/out-",
                crate::helpers::whatsapp_conversation_id("acme", "51911111111")
            ))
    );

    // A delivery status moves the message forward once and reports it.
    let wamid = "wamid.d360-1";
    for status in ["delivered", "sent", "delivered"] {
        let response = post_360(
            &app,
            status_update("360111", wamid, status, "51911111111"),
            Some(&secret),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let events = eventually(10, "the delivered event", || async {
        let events = all_events(&app, "acme").await;
        events
            .iter()
            .any(|e| e["type"] == "Conversation.MessageDelivered")
            .then_some(events)
    })
    .await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "Conversation.MessageDelivered")
            .count(),
        1
    );
    // Globex sees none of acme's events.
    assert!(all_events(&app, "globex").await.is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn the_circuit_opens_during_an_outage_and_the_backlog_drains_after_recovery() {
    let app = spawn_app().await;
    let fake = fake_360dialog().await;
    let circuit = json!({"circuit": {"failure_threshold": 2, "open_secs": 2, "max_open_secs": 4}});
    let (tenant, secret) = dialog_tenant(&app, "acme", "360111", &fake, circuit).await;
    fake.down(
        "POST /messages",
        Answer::json(503, json!({"error": {"message": "down", "code": 2}}))
            .with_header("retry-after", "1"),
    );

    let contacts = ["51900000001", "51900000002", "51900000003"];
    for (i, from) in contacts.iter().enumerate() {
        let response = post_360(
            &app,
            text_message("360111", from, &format!("wamid.cb-{i}"), "hola"),
            Some(&secret),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let db = &app.database.as_ref().unwrap().db;
    eventually(30, "the circuit to open", || async {
        let b = db
            .channels()
            .breaker(&tenant, "whatsapp-360dialog")
            .await
            .unwrap();
        (b.state != BreakerState::Closed).then_some(())
    })
    .await;
    // While it is down, the provider is not flooded: without the breaker the three replies
    // would make nine calls within a few seconds. The outage lasts 8 s here; `make test-faults`
    // runs it for a minute (ZENGINE_FAULT_OUTAGE_SECS=60). The open circuit admits one trial
    // per open period (2 s doubling to 4 s): at most 6 calls in 8 s, and about one per 4 s
    // after that.
    let outage_secs: u64 = std::env::var("ZENGINE_FAULT_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
        .max(8);
    tokio::time::sleep(Duration::from_secs(outage_secs)).await;
    let during = fake.seen("POST /messages").len();
    let bound = 6 + (outage_secs as usize - 8).div_ceil(2);
    assert!(
        during <= bound,
        "{during} calls in {outage_secs} s to a provider that is down (at most {bound})"
    );

    fake.up("POST /messages");
    // Only what the provider accepted counts: the outage's 503s reached it too.
    assert!(fake.accepted("POST /messages").is_empty());
    eventually(60, "every reply to go out", || async {
        let ok: std::collections::BTreeSet<String> = fake
            .accepted("POST /messages")
            .iter()
            .map(|s| s.body["to"].as_str().unwrap_or("").to_owned())
            .collect();
        contacts.iter().all(|c| ok.contains(*c)).then_some(())
    })
    .await;
    // The successful trial closes the circuit (its record lands just after the call).
    eventually(30, "the circuit to close", || async {
        let b = db
            .channels()
            .breaker(&tenant, "whatsapp-360dialog")
            .await
            .unwrap();
        (b.state == BreakerState::Closed).then_some(())
    })
    .await;
    crate::histories::record(
        &app,
        &crate::helpers::whatsapp_conversation_id("acme", contacts[2]),
        "conversation__circuit_open_wait",
    )
    .await;
    // No dead letters: the replies waited.
    let dead = admin_get(&app, "acme", "/v1/channels/dead-letters").await;
    let dead: Value = dead.json().await.unwrap();
    assert_eq!(dead["dead_letters"], json!([]), "{dead}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_refused_reply_becomes_a_dead_letter_that_an_operator_can_redrive_once() {
    let app = spawn_app().await;
    let fake = fake_360dialog().await;
    let (_, secret) = dialog_tenant(&app, "acme", "360111", &fake, json!({})).await;
    fake.down(
        "POST /messages",
        Answer::json(
            400,
            json!({"error": {"message": "(#131026) Message undeliverable", "code": 131026}}),
        ),
    );
    let response = post_360(
        &app,
        text_message("360111", "51922222222", "wamid.dl-1", "hola"),
        Some(&secret),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let letters = eventually(30, "the dead letter", || async {
        let r: Value = admin_get(&app, "acme", "/v1/channels/dead-letters")
            .await
            .json()
            .await
            .unwrap();
        let letters = r["dead_letters"].as_array().cloned().unwrap_or_default();
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(fake.seen("POST /messages").len(), 1, "a 4xx is not retried");
    assert!(
        letter["last_error"].as_str().unwrap().contains("131026"),
        "{letter}"
    );
    assert_eq!(letter["strategy"], "whatsapp-360dialog");
    let id = letter["client_message_id"].as_str().unwrap().to_owned();
    eventually(10, "the Outbound.Failed event", || async {
        let events = all_events(&app, "acme").await;
        events
            .iter()
            .any(|e| e["type"] == "Outbound.Failed" && e["subject"] == id.as_str())
            .then_some(())
    })
    .await;

    // Auth and bad ids.
    let path = format!("/v1/channels/dead-letters/{}/redrive", urlencode(&id));
    let response = app
        .http
        .post(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = admin_post(&app, "acme", "/v1/channels/dead-letters/nope/redrive", None).await;
    assert_eq!(
        error_code(response, StatusCode::NOT_FOUND).await,
        "not_found"
    );
    // Another tenant cannot re-drive it.
    create_tenant(&app, "globex").await;
    let response = admin_post(&app, "globex", &path, None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    fake.up("POST /messages");
    let response = admin_post(&app, "acme", &path, None).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // Re-driving twice sends once.
    let again = admin_post(&app, "acme", &path, None).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    eventually(30, "the re-driven send", || async {
        (fake.seen("POST /messages").len() == 2).then_some(())
    })
    .await;
    let record = eventually(10, "the message to be sent", || async {
        let r = app
            .database
            .as_ref()
            .unwrap()
            .db
            .channels()
            .outbound(&TenantId::parse("acme").unwrap(), &id)
            .await
            .unwrap()?;
        (r.state == "SENT").then_some(r)
    })
    .await;
    assert_eq!(record.provider_message_id.as_deref(), Some("wamid.d360-2"));
    let r: Value = admin_get(&app, "acme", "/v1/channels/dead-letters")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["dead_letters"], json!([]));
    let redrive_id = zengine_domain::workflow_ids::redrive(&TenantId::parse("acme").unwrap(), &id);
    crate::histories::record(&app, &redrive_id, "redrive__delivered").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.seen("POST /messages").len(), 2);
    app.shutdown().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn health_checks_report_each_status_change_once() {
    let app = spawn_app().await;
    let fake = fake_360dialog().await;
    let (tenant, _) = dialog_tenant(&app, "acme", "360111", &fake, json!({})).await;
    // A second account whose secret is missing: DOWN, naming the reference only.
    add_account(
        &app,
        &tenant,
        "whatsapp-meta-cloud",
        "555000",
        json!({"access_token": "env:ZENGINE_TEST_SURELY_UNSET_TOKEN"}),
    )
    .await;
    let check = || async {
        let response = admin_post(&app, "acme", "/v1/channels/health/check", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let report: Value = response.json().await.unwrap();
        report["accounts"].as_array().unwrap().clone()
    };
    let status_of = |report: &[Value], strategy: &str| {
        report
            .iter()
            .find(|a| a["strategy"] == strategy)
            .map(|a| a["health"]["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let report = check().await;
    assert_eq!(status_of(&report, "whatsapp-360dialog"), "UP");
    assert_eq!(status_of(&report, "whatsapp-meta-cloud"), "DOWN");
    let detail = report
        .iter()
        .find(|a| a["strategy"] == "whatsapp-meta-cloud")
        .unwrap()["health"]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.contains("env:ZENGINE_TEST_SURELY_UNSET_TOKEN"),
        "{detail}"
    );

    fake.down(
        "GET /v1/configs/webhook",
        Answer::json(503, json!({"meta": {"developerMessage": "maintenance"}})),
    );
    assert_eq!(status_of(&check().await, "whatsapp-360dialog"), "DOWN");
    assert_eq!(status_of(&check().await, "whatsapp-360dialog"), "DOWN");
    fake.up("GET /v1/configs/webhook");
    assert_eq!(status_of(&check().await, "whatsapp-360dialog"), "UP");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let changes: Vec<String> = all_events(&app, "acme")
        .await
        .iter()
        .filter(|e| e["type"] == "Channel.HealthChanged" && e["subject"] == "whatsapp-360dialog")
        .map(|e| e["payload"]["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(changes, ["UP", "DOWN", "UP"], "one event per change");
    // The last check's history, found through visibility.
    let query = format!(
        "WorkflowType = 'ChannelHealth' AND TenantId = 'acme' AND TaskQueue = '{}channels'",
        app.temporal_settings.task_queue_prefix
    );
    let run = eventually(10, "the health run in visibility", || async {
        use futures::StreamExt;
        let mut runs = app
            .temporal
            .list_workflows(query.clone(), Default::default());
        runs.next().await.and_then(Result::ok)
    })
    .await;
    crate::histories::record(&app, run.id(), "channel_health__status_changes").await;
    let stored: Value = admin_get(&app, "acme", "/v1/channels/health")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["accounts"].as_array().unwrap().len(), 2, "{stored}");

    // The 5-minute schedule exists for this deployment.
    let id = zengine_domain::workflow_ids::channel_health(&app.temporal_settings.task_queue_prefix);
    let description = app
        .temporal
        .get_schedule_handle(id)
        .describe(Default::default())
        .await
        .expect("the health schedule exists");
    let next = description.future_action_times();
    assert!(next.len() >= 2, "{next:?}");
    let gap = next[1].duration_since(next[0]).unwrap();
    assert_eq!(gap, Duration::from_secs(300));
    app.shutdown().await;
}

#[tokio::test]
async fn the_event_stream_pages_by_cursor_and_checks_its_input() {
    let app = spawn_app().await;
    let tenant = create_tenant(&app, "acme").await;
    let db = &app.database.as_ref().unwrap().db;
    for i in 0..5 {
        db.events()
            .record(zengine_storage::NewEvent {
                event_id: &format!("acme/test/{i}"),
                tenant_id: &tenant,
                event_type: if i % 2 == 0 {
                    zengine_domain::events::EventType::OrderStatusChanged
                } else {
                    zengine_domain::events::EventType::PaymentAssigned
                },
                subject: "s",
                payload: &json!({"i": i}),
            })
            .await
            .unwrap();
    }
    // Held back until settled (1 s), then all five in order, two per page.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let events = all_events(&app, "acme").await;
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "acme/test/0",
            "acme/test/1",
            "acme/test/2",
            "acme/test/3",
            "acme/test/4"
        ]
    );
    let odd: Value = admin_get(&app, "acme", "/v1/events?type=Payment.Assigned")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(odd["events"].as_array().unwrap().len(), 2);
    // The end of the stream returns the same cursor.
    let last: Value = admin_get(
        &app,
        "acme",
        &format!("/v1/events?after={}", events[4]["seq"]),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(last["events"], json!([]));
    assert_eq!(last["next_after"], events[4]["seq"].to_string());

    for query in ["after=-1", "after=abc", "limit=0", "limit=1001", "limit=x"] {
        let response = admin_get(&app, "acme", &format!("/v1/events?{query}")).await;
        assert_eq!(
            error_code(response, StatusCode::BAD_REQUEST).await,
            "invalid_field",
            "{query}"
        );
    }
    let response = app.get("/v1/events").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = admin_get(&app, "nobody", "/v1/events").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.shutdown().await;
}

#[tokio::test]
async fn templates_are_managed_through_360dialog() {
    let app = spawn_app().await;
    let fake = FakeProvider::start().await;
    fake.on("GET /v1/configs/templates", |_, _| {
        Answer::json(200, json!({"count": 1, "waba_templates": [{"name": "order_ready", "language": "es", "status": "approved"}]}))
    })
    .on("POST /v1/configs/templates", |seen, _| {
        Answer::json(201, json!({"id": "tmpl-1", "name": seen.body["name"], "status": "submitted"}))
    })
    .on("DELETE /v1/configs/templates/", |_, _| Answer::json(200, json!({"success": true})));
    let tenant = create_tenant(&app, "acme").await;

    let response = admin_get(&app, "acme", "/v1/channels/360dialog/templates").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "no account yet");
    add_account(
        &app,
        &tenant,
        "360dialog-templates",
        "360111",
        json!({"api_base": fake.url, "api_key": file_secret("tmpl-key")}),
    )
    .await;
    let list: Value = admin_get(&app, "acme", "/v1/channels/360dialog/templates")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["templates"][0]["name"], "order_ready");
    assert_eq!(
        fake.seen("GET /v1/configs/templates")[0].headers["d360-api-key"],
        "tmpl-key"
    );

    let template = json!({"name": "order_shipped", "category": "UTILITY", "language": "es",
        "components": [{"type": "BODY", "text": "Tu pedido {{1}} salió."}]});
    let response = admin_post(
        &app,
        "acme",
        "/v1/channels/360dialog/templates",
        Some(template.clone()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(fake.seen("POST /v1/configs/templates")[0].body, template);
    for (field, value) in [
        ("name", json!("Bad Name")),
        ("category", json!("SPAM")),
        ("components", json!("x")),
    ] {
        let mut bad = template.clone();
        bad[field] = value;
        let response =
            admin_post(&app, "acme", "/v1/channels/360dialog/templates", Some(bad)).await;
        assert_eq!(
            error_code(response, StatusCode::BAD_REQUEST).await,
            "invalid_field",
            "{field}"
        );
    }
    fake.script(
        "POST /v1/configs/templates",
        [Answer::json(
            400,
            json!({"meta": {"developerMessage": "template name exists"}}),
        )],
    );
    let response = admin_post(
        &app,
        "acme",
        "/v1/channels/360dialog/templates",
        Some(template.clone()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    fake.down("GET /v1/configs/templates", Answer::json(503, json!({})));
    let response = admin_get(&app, "acme", "/v1/channels/360dialog/templates").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);

    let response = app
        .http
        .delete(format!(
            "{}/v1/channels/360dialog/templates/order_shipped",
            app.address
        ))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-tenant-id", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        fake.seen("DELETE /v1/configs/templates/")[0].path,
        "/v1/configs/templates/order_shipped"
    );
    app.shutdown().await;
}
