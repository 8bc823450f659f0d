//! WhatsApp Cloud API end to end: Meta's signed webhooks in, the conversation workflow, replies
//! out through a loopback fake of the Graph API (`POST /{version}/{phone_number_id}/messages`)
//! that counts requests and can be told to fail.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use reqwest::StatusCode;
use serde_json::{Value, json};
use zengine_domain::TenantId;
use zengine_storage::ChannelAccount;
use zengine_storage::seed::DEMO_WHATSAPP_PHONE_NUMBER_ID;

use crate::helpers::{TestApp, WHATSAPP_APP_SECRET, WHATSAPP_VERIFY_TOKEN, error_code, spawn_app};

/// What the fake Graph API saw: path, bearer token, JSON body.
#[derive(Clone, Debug)]
pub struct Seen {
    pub(crate) path: String,
    pub(crate) token: String,
    pub(crate) body: Value,
}

#[derive(Default)]
pub struct Fake {
    pub(crate) seen: Vec<Seen>,
    /// Answers to give before succeeding again: (status, body, retry-after).
    pub(crate) plan: VecDeque<(u16, String, Option<&'static str>)>,
}

pub(crate) type Shared = Arc<Mutex<Fake>>;

impl Fake {
    /// Every send so far.
    pub(crate) fn seen(&self) -> &[Seen] {
        &self.seen
    }
}

async fn graph_send(
    State(fake): State<Shared>,
    Path((version, phone)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> axum::response::Response {
    let mut fake = fake.lock().unwrap();
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim_start_matches("Bearer ")
        .to_owned();
    fake.seen.push(Seen {
        path: format!("/{version}/{phone}/messages"),
        token,
        body: body.0.clone(),
    });
    if let Some((status, body, retry_after)) = fake.plan.pop_front() {
        let mut response = (AxumStatus::from_u16(status).unwrap(), body).into_response();
        if let Some(after) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", after.parse().unwrap());
        }
        return response;
    }
    let n = fake.seen.len();
    axum::Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": body.0["to"], "wa_id": body.0["to"]}],
        "messages": [{"id": format!("wamid.fake-{n}")}]
    }))
    .into_response()
}

/// Starts the fake Graph API; returns its base URL and state.
pub async fn fake_graph() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let app = axum::Router::new()
        .route(
            "/{version}/{phone}/messages",
            axum::routing::post(graph_send),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fake)
}

/// Points the demo tenant's WhatsApp account at the fake, with its token in a file.
pub async fn use_fake(app: &TestApp, api_base: &str, token_ref: Option<String>) {
    let token_ref = token_ref.unwrap_or_else(|| {
        let path = std::env::temp_dir().join(format!("wa-token-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "fake-access-token\n").unwrap();
        format!("file:{}", path.display())
    });
    app.database
        .as_ref()
        .unwrap()
        .db
        .channels()
        .upsert_account(&ChannelAccount {
            strategy: "whatsapp-meta-cloud".into(),
            account_key: DEMO_WHATSAPP_PHONE_NUMBER_ID.into(),
            tenant_id: TenantId::parse("demo").unwrap(),
            settings: json!({"api_base": api_base, "api_version": "v23.0", "access_token": token_ref}),
        })
        .await
        .unwrap();
}

pub fn sign(body: &[u8]) -> String {
    zengine_workers::testing::whatsapp_signature(WHATSAPP_APP_SECRET, body)
}

pub async fn post_webhook(
    app: &TestApp,
    body: &[u8],
    signature: Option<String>,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!("{}/v1/webhooks/whatsapp", app.address))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    request.send().await.unwrap()
}

pub fn text_webhook(phone_number_id: &str, from: &str, wamid: &str, text: &str) -> Vec<u8> {
    zengine_workers::testing::whatsapp_text_webhook(
        phone_number_id,
        "Sheena Nelson",
        from,
        wamid,
        text,
    )
}

fn status_webhook(wamid: &str, status: &str, callback: &str) -> Vec<u8> {
    statuses_webhook(&[(wamid, status, callback)])
}

/// One webhook carrying several statuses, (wamid, status, callback data) each, as Meta batches
/// them.
fn statuses_webhook(statuses: &[(&str, &str, &str)]) -> Vec<u8> {
    let statuses: Vec<Value> = statuses
        .iter()
        .map(|(wamid, status, callback)| {
            json!({"id": wamid, "status": status, "timestamp": "1750030000",
                   "recipient_id": "16505551234", "biz_opaque_callback_data": callback})
        })
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": DEMO_WHATSAPP_PHONE_NUMBER_ID},
            "statuses": statuses
        }}]}]})
    .to_string()
    .into_bytes()
}

/// Waits until the fake saw at least `n` sends; returns them.
pub async fn wait_sends(fake: &Shared, n: usize) -> Vec<Seen> {
    for _ in 0..150 {
        let seen = fake.lock().unwrap().seen.clone();
        if seen.len() >= n {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the fake Graph API saw {:?}", fake.lock().unwrap().seen);
}

#[tokio::test]
async fn the_verification_handshake_needs_the_verify_token() {
    let app = spawn_app().await;
    let get = |query: String| {
        let app = &app;
        async move {
            app.http
                .get(format!("{}/v1/webhooks/whatsapp?{query}", app.address))
                .send()
                .await
                .unwrap()
        }
    };
    let ok = get(format!(
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={WHATSAPP_VERIFY_TOKEN}"
    ))
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    for query in [
        "hub.mode=subscribe&hub.challenge=1&hub.verify_token=wrong".to_owned(),
        format!("hub.mode=unsubscribe&hub.challenge=1&hub.verify_token={WHATSAPP_VERIFY_TOKEN}"),
        format!("hub.mode=subscribe&hub.verify_token={WHATSAPP_VERIFY_TOKEN}"),
        String::new(),
    ] {
        assert_eq!(get(query).await.status(), StatusCode::FORBIDDEN);
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_signed_message_is_answered_through_the_graph_api_once() {
    let app = spawn_app().await;
    let (graph, fake) = fake_graph().await;
    use_fake(&app, &graph, None).await;
    let body = text_webhook(
        DEMO_WHATSAPP_PHONE_NUMBER_ID,
        "16505551234",
        "wamid.in-1",
        "hola",
    );
    let response = post_webhook(&app, &body, Some(sign(&body))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tally: Value = response.json().await.unwrap();
    assert_eq!(tally["accepted"], 1, "{tally}");

    let sent = wait_sends(&fake, 1).await;
    let first = &sent[0];
    assert_eq!(
        first.path,
        format!("/v23.0/{DEMO_WHATSAPP_PHONE_NUMBER_ID}/messages")
    );
    assert_eq!(first.token, "fake-access-token");
    assert_eq!(first.body["to"], "16505551234");
    assert_eq!(first.body["messaging_product"], "whatsapp");
    assert_eq!(
        first.body["biz_opaque_callback_data"].as_str().unwrap(),
        format!(
            "{}/out-1",
            crate::helpers::whatsapp_conversation_id("demo", "16505551234")
        )
    );
    assert!(
        !first.body["biz_opaque_callback_data"]
            .as_str()
            .unwrap()
            .contains("16505551234")
    );
    // Let every reply of this turn go out, then count.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let replies = fake.lock().unwrap().seen.len();

    // Meta redelivers the same webhook (10 times, some concurrently): no second effect.
    let redeliveries = (0..10).map(|_| post_webhook(&app, &body, Some(sign(&body))));
    for response in futures::future::join_all(redeliveries).await {
        assert_eq!(response.status(), StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        fake.lock().unwrap().seen.len(),
        replies,
        "a redelivered message was answered again"
    );

    // Delivery statuses move forward only; `delivered` is reported as an event.
    let db = &app.database.as_ref().unwrap().db;
    let tenant = TenantId::parse("demo").unwrap();
    let out = format!(
        "{}/out-1",
        crate::helpers::whatsapp_conversation_id("demo", "16505551234")
    );
    let out = out.as_str();
    let record = db.channels().outbound(&tenant, out).await.unwrap().unwrap();
    assert_eq!(record.state, "SENT");
    let wamid = record.provider_message_id.clone().unwrap();
    for (status, expected) in [
        ("delivered", "DELIVERED"),
        ("sent", "DELIVERED"),
        ("read", "READ"),
        ("delivered", "READ"),
    ] {
        // Each status is delivered ten times (providers redeliver until they see a 200).
        let body = status_webhook(&wamid, status, out);
        for _ in 0..10 {
            assert_eq!(
                post_webhook(&app, &body, Some(sign(&body))).await.status(),
                StatusCode::OK
            );
        }
        let record = db.channels().outbound(&tenant, out).await.unwrap().unwrap();
        assert_eq!(record.state, expected, "after {status}");
    }
    let delivered = db
        .events()
        .list(&tenant, "Conversation.MessageDelivered")
        .await
        .unwrap();
    assert_eq!(
        delivered.len(),
        1,
        "twenty `delivered` webhooks are one delivery: {delivered:?}"
    );

    // A second customer message continues the same conversation.
    let body = text_webhook(
        DEMO_WHATSAPP_PHONE_NUMBER_ID,
        "16505551234",
        "wamid.in-2",
        "Ana",
    );
    assert_eq!(
        post_webhook(&app, &body, Some(sign(&body))).await.status(),
        StatusCode::OK
    );
    let sent = wait_sends(&fake, replies + 1).await;
    assert!(
        sent[replies].body["biz_opaque_callback_data"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "{}/out-",
                crate::helpers::whatsapp_conversation_id("demo", "16505551234")
            ))
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    crate::histories::record(
        &app,
        &crate::helpers::whatsapp_conversation_id("demo", "16505551234"),
        "conversation__whatsapp_signals_and_deliveries",
    )
    .await;
    app.shutdown().await;
}

/// A status storm across many messages at once: six customers are answered, then every reply's
/// `sent`, `delivered` and `read` arrive batched three to a webhook (as Meta batches them, across
/// messages), each webhook delivered three times, the lot shuffled and sent eight at a time.
/// Every webhook is answered 200, every reply ends READ, and each has exactly one
/// `MessageDelivered` event.
#[tokio::test]
async fn a_status_storm_across_many_messages_ends_read_with_one_delivery_each() {
    use futures::StreamExt;
    const CUSTOMERS: usize = 6;
    let app = spawn_app().await;
    let (graph, fake) = fake_graph().await;
    use_fake(&app, &graph, None).await;
    for i in 0..CUSTOMERS {
        let body = text_webhook(
            DEMO_WHATSAPP_PHONE_NUMBER_ID,
            &format!("1650555{:04}", 2100 + i),
            &format!("wamid.storm-in-{i}"),
            "hola",
        );
        assert_eq!(
            post_webhook(&app, &body, Some(sign(&body))).await.status(),
            StatusCode::OK
        );
    }
    wait_sends(&fake, CUSTOMERS).await;
    // Let every reply of these turns go out, then take them all.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let db = &app.database.as_ref().unwrap().db;
    let tenant = TenantId::parse("demo").unwrap();
    let sent = fake.lock().unwrap().seen.clone();
    let mut replies = Vec::new();
    for seen in &sent {
        let client = seen.body["biz_opaque_callback_data"]
            .as_str()
            .unwrap()
            .to_owned();
        let record = db
            .channels()
            .outbound(&tenant, &client)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.state, "SENT", "{client}");
        replies.push((client, record.provider_message_id.unwrap()));
    }
    assert!(replies.len() >= CUSTOMERS, "{replies:?}");

    let mut statuses: Vec<(&str, &str, &str)> = replies
        .iter()
        .flat_map(|(client, wamid)| {
            ["sent", "delivered", "read"].map(|s| (wamid.as_str(), s, client.as_str()))
        })
        .collect();
    // A fixed shuffle (xorshift): statuses of a message arrive in any order, mixed with others'.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut shuffle = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for i in (1..statuses.len()).rev() {
        statuses.swap(i, shuffle(i + 1));
    }
    let mut bodies: Vec<Vec<u8>> = statuses
        .chunks(3)
        .map(statuses_webhook)
        .flat_map(|body| [body.clone(), body.clone(), body])
        .collect();
    for i in (1..bodies.len()).rev() {
        bodies.swap(i, shuffle(i + 1));
    }
    let answers: Vec<StatusCode> = futures::stream::iter(bodies.iter())
        .map(|body| async { post_webhook(&app, body, Some(sign(body))).await.status() })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(
        answers.iter().all(|s| *s == StatusCode::OK),
        "every webhook of the storm is accepted: {answers:?}"
    );

    let delivered = db
        .events()
        .list(&tenant, "Conversation.MessageDelivered")
        .await
        .unwrap();
    for (client, wamid) in &replies {
        let record = db
            .channels()
            .outbound(&tenant, client)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.state, "READ", "{client}");
        let events = delivered
            .iter()
            .filter(|e| e.payload["provider_message_id"] == wamid.as_str())
            .count();
        assert_eq!(events, 1, "{client}: one delivery event, not {events}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn bad_webhooks_are_refused_and_unknown_numbers_are_recorded() {
    let app = spawn_app().await;
    let (graph, fake) = fake_graph().await;
    use_fake(&app, &graph, None).await;
    let body = text_webhook(
        DEMO_WHATSAPP_PHONE_NUMBER_ID,
        "16505551234",
        "wamid.bad-1",
        "hola",
    );
    // Unsigned, wrongly signed, signed for another body.
    let r = post_webhook(&app, &body, None).await;
    assert_eq!(
        error_code(r, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let r = post_webhook(&app, &body, Some("sha256=00".into())).await;
    assert_eq!(
        error_code(r, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let r = post_webhook(&app, &body, Some(sign(b"something else"))).await;
    assert_eq!(
        error_code(r, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    // Signed but not a WhatsApp payload / not JSON.
    for bad in [&b"{\"object\":\"page\",\"entry\":[]}"[..], b"not json", b""] {
        let r = post_webhook(&app, bad, Some(sign(bad))).await;
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Oversized (over 1 MiB).
    let huge = vec![b' '; 1024 * 1024 + 10];
    let r = post_webhook(&app, &huge, Some(sign(&huge))).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A number nobody owns: 200 (Meta must not retry forever), recorded, no conversation.
    let body = text_webhook("999999999", "16505551234", "wamid.stray", "hola");
    let r = post_webhook(&app, &body, Some(sign(&body))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let tally: Value = r.json().await.unwrap();
    assert_eq!(tally["unroutable"], 1);
    let db = &app.database.as_ref().unwrap().db;
    assert_eq!(
        db.channels()
            .unroutable_count("whatsapp-meta-cloud", "999999999")
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fake.lock().unwrap().seen.is_empty(), "nothing was sent");
    app.shutdown().await;
}

#[tokio::test]
async fn provider_errors_are_retried_or_dead_lettered() {
    let app = spawn_app().await;
    let (graph, fake) = fake_graph().await;
    use_fake(&app, &graph, None).await;
    let db = &app.database.as_ref().unwrap().db;
    let tenant = TenantId::parse("demo").unwrap();

    // 503, then 429 with Retry-After: retried, then sent once.
    fake.lock().unwrap().plan.extend([
        (503, "upstream down".to_owned(), None),
        (
            429,
            json!({"error": {"message": "(#130429) Rate limit hit", "code": 130429}}).to_string(),
            Some("1"),
        ),
    ]);
    let body = text_webhook(
        DEMO_WHATSAPP_PHONE_NUMBER_ID,
        "51911000001",
        "wamid.r-1",
        "hola",
    );
    assert_eq!(
        post_webhook(&app, &body, Some(sign(&body))).await.status(),
        StatusCode::OK
    );
    wait_sends(&fake, 3).await;
    let out = format!(
        "{}/out-1",
        crate::helpers::whatsapp_conversation_id("demo", "51911000001")
    );
    let out = out.as_str();
    let mut record = None;
    for _ in 0..50 {
        record = db.channels().outbound(&tenant, out).await.unwrap();
        if record.as_ref().is_some_and(|r| r.state == "SENT") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let record = record.unwrap();
    assert_eq!(record.state, "SENT", "{record:?}");
    assert_eq!(record.attempts, 3);

    // An invalid recipient (131026) is not retried: a dead letter and an Outbound.Failed event.
    fake.lock().unwrap().plan.push_back((
        400,
        json!({"error": {"message": "(#131026) Message undeliverable", "code": 131026}})
            .to_string(),
        None,
    ));
    let before = fake.lock().unwrap().seen.len();
    let body = text_webhook(
        DEMO_WHATSAPP_PHONE_NUMBER_ID,
        "51911000002",
        "wamid.r-2",
        "hola",
    );
    assert_eq!(
        post_webhook(&app, &body, Some(sign(&body))).await.status(),
        StatusCode::OK
    );
    let mut dead = Vec::new();
    for _ in 0..100 {
        dead = db.channels().dead_letters(&tenant).await.unwrap();
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        dead[0].client_message_id,
        format!(
            "{}/out-1",
            crate::helpers::whatsapp_conversation_id("demo", "51911000002")
        )
    );
    assert!(
        dead[0].last_error.as_deref().unwrap().contains("131026"),
        "{dead:?}"
    );
    assert_eq!(dead[0].attempts, 1, "a permanent error is not retried");
    let failed = db.events().list(&tenant, "Outbound.Failed").await.unwrap();
    assert_eq!(failed.len(), 1);
    assert!(fake.lock().unwrap().seen.len() > before);

    // A missing secret fails fast, naming the reference and nothing else.
    use_fake(&app, &graph, Some("env:ZENGINE_TEST_UNSET_WA_TOKEN".into())).await;
    let sends = fake.lock().unwrap().seen.len();
    let body = text_webhook(
        DEMO_WHATSAPP_PHONE_NUMBER_ID,
        "51911000003",
        "wamid.r-3",
        "hola",
    );
    assert_eq!(
        post_webhook(&app, &body, Some(sign(&body))).await.status(),
        StatusCode::OK
    );
    let mut missing = None;
    for _ in 0..100 {
        missing = db
            .channels()
            .dead_letters(&tenant)
            .await
            .unwrap()
            .into_iter()
            .find(|d| {
                d.client_message_id
                    .starts_with(&crate::helpers::whatsapp_conversation_id(
                        "demo",
                        "51911000003",
                    ))
            });
        if missing.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing = missing.expect("a dead letter for the missing secret");
    assert_eq!(
        missing.last_error.as_deref(),
        Some("secret `env:ZENGINE_TEST_UNSET_WA_TOKEN` is not set")
    );
    assert_eq!(
        fake.lock().unwrap().seen.len(),
        sends,
        "nothing sent without a token"
    );
    app.shutdown().await;
}
