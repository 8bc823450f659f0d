//! Payload encryption end to end: the Web UI codec endpoint (auth, CORS, bad bodies, key
//! rotation) and what Temporal stores at rest (raw history, read without the codec).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::future::BoxFuture;
use prost::Message;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use temporalio_client::WorkflowFetchHistoryOptions;
use temporalio_common::data_converters::{
    PayloadCodec, PayloadConversionError, SerializationContextData,
};
use temporalio_common::protos::temporal::api::common::v1::Payload;
use temporalio_common::protos::temporal::api::history::v1::History;
use zengine_workers::{CodecKeySettings, CodecSettings, connect_with_codec};
use zengine_workflows::ConversationWorkflow;

use crate::auth::{call, hs256_options, token};
use crate::helpers::{ADMIN_TOKEN, AppOptions, TestApp, error_code, spawn_app_with};

fn json_payload(value: &Value) -> Value {
    json!({
        "metadata": {"encoding": STANDARD.encode("json/plain")},
        "data": STANDARD.encode(value.to_string()),
    })
}

fn meta(payload: &Value, key: &str) -> String {
    String::from_utf8(
        STANDARD
            .decode(payload["metadata"][key].as_str().unwrap())
            .unwrap(),
    )
    .unwrap()
}

async fn codec_call(
    app: &TestApp,
    direction: &str,
    bearer: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!("{}/codec/{direction}", app.address))
        .header("content-type", "application/json")
        .header("x-namespace", "default")
        .body(body);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    request.send().await.unwrap()
}

async fn codec_json(app: &TestApp, direction: &str, bearer: &str, body: &Value) -> Value {
    let response = codec_call(app, direction, Some(bearer), body.to_string()).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// A keyring of files holding `keys` (id, 32 key bytes), the first primary.
fn keyring(dir: &std::path::Path, keys: &[(&str, u8)]) -> CodecSettings {
    CodecSettings {
        keys: keys
            .iter()
            .map(|(id, byte)| {
                let path = dir.join(id);
                std::fs::write(&path, STANDARD.encode([*byte; 32])).unwrap();
                CodecKeySettings {
                    id: (*id).to_owned(),
                    secret_ref: format!("file:{}", path.display()),
                    primary: false,
                }
            })
            .collect(),
        ..CodecSettings::default()
    }
}

#[tokio::test]
async fn the_codec_endpoint_round_trips_and_refuses_bad_callers_and_bodies() {
    let mut options = hs256_options();
    options.run_worker = false;
    options.api.codec_max_body_bytes = 64 * 1024;
    let app = spawn_app_with(options).await;
    let secret = json!({"text": "mi número es +51 999 000 111"});
    let plain = json!({"payloads": [json_payload(&secret)]});

    // Round trip with the admin token (no tenant header: the Web UI sends none).
    let encoded = codec_json(&app, "encode", ADMIN_TOKEN, &plain).await;
    let sealed = &encoded["payloads"][0];
    assert_eq!(meta(sealed, "encoding"), "binary/encrypted");
    assert_eq!(meta(sealed, "encryption-key-id"), "zengine-dev");
    assert!(!encoded.to_string().contains("999 000 111"));
    assert_eq!(
        codec_json(&app, "decode", ADMIN_TOKEN, &encoded).await,
        plain
    );
    // A tenant's operator: its own payloads round trip; the platform's stay sealed.
    let operator = token("demo", "operator");
    assert_eq!(
        codec_json(&app, "decode", &operator, &encoded).await,
        encoded
    );
    let own = codec_json(&app, "encode", &operator, &plain).await;
    assert_eq!(
        meta(&own["payloads"][0], "encryption-key-id"),
        "zengine-dev@demo"
    );
    assert_eq!(codec_json(&app, "decode", &operator, &own).await, plain);
    // Plain payloads decode to themselves (histories from before encryption).
    assert_eq!(codec_json(&app, "decode", &operator, &plain).await, plain);

    // Missing, wrong and forged credentials: 401. Viewers and API keys: 403.
    for bearer in [None, Some("wrong-token"), Some("not.a.jwt")] {
        let response = codec_call(&app, "decode", bearer, encoded.to_string()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bearer:?}");
    }
    let viewer = token("demo", "viewer");
    let response = codec_call(&app, "decode", Some(&viewer), encoded.to_string()).await;
    assert_eq!(
        error_code(response, StatusCode::FORBIDDEN).await,
        "forbidden"
    );

    // Malformed bodies: 400; a tampered ciphertext or unknown key id: 422; oversized: 413.
    for bad in [
        "not json".to_owned(),
        json!({"payloads": "x"}).to_string(),
        json!({"payloads": [{"metadata": {}, "data": "%%%"}]}).to_string(),
        json!({"payloads": [{"metadata": {"encoding": "!!"}, "data": ""}]}).to_string(),
        json!({"payloads": [], "extra": 1}).to_string(),
    ] {
        let response = codec_call(&app, "decode", Some(ADMIN_TOKEN), bad.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let mut tampered = encoded.clone();
    tampered["payloads"][0]["data"] = json!(STANDARD.encode(b"0123456789abcdef-tampered"));
    let response = codec_call(&app, "decode", Some(ADMIN_TOKEN), tampered.to_string()).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let mut unknown = encoded.clone();
    unknown["payloads"][0]["metadata"]["encryption-key-id"] = json!(STANDARD.encode("retired"));
    let response = codec_call(&app, "decode", Some(ADMIN_TOKEN), unknown.to_string()).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert!(
        body.to_string().contains("unknown key id `retired`"),
        "{body}"
    );
    let huge = json!({"payloads": [json_payload(&json!("x".repeat(70 * 1024)))]});
    let response = codec_call(&app, "encode", Some(ADMIN_TOKEN), huge.to_string()).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let many = json!({"payloads": vec![json!({}); 1001]});
    let response = codec_call(&app, "encode", Some(ADMIN_TOKEN), many.to_string()).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Another namespace: 400.
    let response = app
        .http
        .post(format!("{}/codec/decode", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-namespace", "other")
        .body(encoded.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // The same request twice answers the same (decode is a pure function of the body).
    assert_eq!(
        codec_json(&app, "decode", ADMIN_TOKEN, &encoded).await,
        plain
    );

    // CORS preflight from the Web UI's origin; other origins get no CORS grant.
    let preflight = |origin: &'static str| {
        app.http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/codec/decode", app.address),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,x-namespace",
            )
            .send()
    };
    let response = preflight("http://localhost:8233").await.unwrap();
    assert!(response.status().is_success());
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:8233");
    assert_eq!(h["access-control-allow-credentials"], "true");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for header in ["authorization", "content-type", "x-namespace"] {
        assert!(allowed.contains(header), "{allowed}");
    }
    let response = preflight("http://evil.example").await.unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    app.shutdown().await;
}

/// What the `temporal` CLI and other proto3-JSON clients send: `{}` for an empty list (the CLI's
/// `workflow query` without input), `null`, payloads without metadata or data, and bytes in
/// URL-safe or unpadded base64. Each is accepted and answered as `{"payloads": [...]}`.
#[tokio::test]
async fn every_proto3_json_form_of_payloads_is_accepted() {
    let mut options = hs256_options();
    options.run_worker = false;
    let app = spawn_app_with(options).await;
    let operator = token("demo", "operator");
    for direction in ["encode", "decode"] {
        for empty in [
            json!({}),
            json!({"payloads": null}),
            json!({"payloads": []}),
        ] {
            assert_eq!(
                codec_json(&app, direction, &operator, &empty).await,
                json!({"payloads": []}),
                "{direction} {empty}"
            );
        }
    }
    assert_eq!(
        codec_json(&app, "decode", &operator, &json!({"payloads": [{}]})).await,
        json!({"payloads": [{"metadata": {}, "data": ""}]})
    );
    // `"hi?>"` is `ImhpPz4i` in either alphabet; `"~?"` shows the difference (`In4_Ig` URL-safe
    // unpadded, `In4/Ig==` standard).
    let url_safe = json!({"payloads": [{
        "metadata": {"encoding": "anNvbi9wbGFpbg"},
        "data": "In4_Ig",
    }]});
    let sealed = codec_json(&app, "encode", &operator, &url_safe).await;
    assert_eq!(meta(&sealed["payloads"][0], "encoding"), "binary/encrypted");
    let opened = codec_json(&app, "decode", &operator, &sealed).await;
    assert_eq!(opened["payloads"][0]["data"], "In4/Ig==");
    assert_eq!(meta(&opened["payloads"][0], "encoding"), "json/plain");
    app.shutdown().await;
}

#[tokio::test]
async fn rotated_keys_still_decode_old_payloads_and_new_payloads_use_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let before = spawn_app_with(AppOptions {
        run_worker: false,
        codec: keyring(dir.path(), &[("2026-11", 1)]),
        ..AppOptions::default()
    })
    .await;
    let plain = json!({"payloads": [json_payload(&json!("hola"))]});
    let old = codec_json(&before, "encode", ADMIN_TOKEN, &plain).await;
    assert_eq!(meta(&old["payloads"][0], "encryption-key-id"), "2026-11");
    before.shutdown().await;

    // Rotation: the new key first, the old one kept for decryption.
    let after = spawn_app_with(AppOptions {
        run_worker: false,
        codec: keyring(dir.path(), &[("2026-12", 2), ("2026-11", 1)]),
        ..AppOptions::default()
    })
    .await;
    assert_eq!(codec_json(&after, "decode", ADMIN_TOKEN, &old).await, plain);
    let new = codec_json(&after, "encode", ADMIN_TOKEN, &plain).await;
    assert_eq!(meta(&new["payloads"][0], "encryption-key-id"), "2026-12");
    after.shutdown().await;

    // Once the old key is dropped, its payloads fail clearly.
    let dropped = spawn_app_with(AppOptions {
        run_worker: false,
        codec: keyring(dir.path(), &[("2026-12", 2)]),
        ..AppOptions::default()
    })
    .await;
    let response = codec_call(&dropped, "decode", Some(ADMIN_TOKEN), old.to_string()).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    dropped.shutdown().await;
}

#[tokio::test]
async fn histories_at_rest_hold_no_message_text_or_receipt_image() {
    use crate::payments::{app, order, pay, receipt, settled};
    let app = app().await;
    let raw = connect_with_codec(&app.temporal_settings, "raw-reader", None)
        .await
        .unwrap();

    // A webchat conversation with a distinctive text.
    let session = format!("s-{}", uuid::Uuid::new_v4().simple());
    let text = "texto-secreto-7Q2 mi celular es 51999000111";
    app.say(&session, "k-1", text).await;
    let chat_id = format!("demo/conversation/webchat/{session}");

    // A payment with a receipt image.
    let image = receipt("r03_yape-card_clean.png");
    let order_id = order(&app, "codec-pay-1", "439.00").await;
    let (status, payment) = pay(&app, &order_id, &image).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{payment}");
    let payment_id = payment["payment_id"].as_str().unwrap().to_owned();
    settled(&app, &payment_id).await;
    let tenant = zengine_domain::TenantId::parse("demo").unwrap();
    let payment_wf = zengine_domain::workflow_ids::payment(&tenant, &payment_id);

    // A WhatsApp conversation: the phone number must not appear, not even in the workflow id.
    let (graph, fake) = crate::whatsapp::fake_graph().await;
    crate::whatsapp::use_fake(&app, &graph, None).await;
    let phone = "51987654321";
    let wa_text = "mensaje-wa-secreto-K9";
    let body = crate::whatsapp::text_webhook(
        zengine_storage::seed::DEMO_WHATSAPP_PHONE_NUMBER_ID,
        phone,
        "wamid.codec-1",
        wa_text,
    );
    let response =
        crate::whatsapp::post_webhook(&app, &body, Some(crate::whatsapp::sign(&body))).await;
    assert_eq!(response.status(), StatusCode::OK);
    crate::whatsapp::wait_sends(&fake, 1).await;
    let wa_id = crate::helpers::whatsapp_conversation_id("demo", phone);
    assert!(!wa_id.contains(phone));

    let image_chunk = &image[image.len() / 2..image.len() / 2 + 48];
    let image_b64 = STANDARD.encode(image_chunk);
    for id in [&chat_id, &payment_wf, &wa_id] {
        let events = raw
            .get_workflow_handle::<ConversationWorkflow>(id.as_str())
            .fetch_history(WorkflowFetchHistoryOptions::default())
            .into_events()
            .await
            .unwrap();
        assert!(events.len() > 3, "{id}: {}", events.len());
        let history = History { events };
        let bytes = history.encode_to_vec();
        let lossy = String::from_utf8_lossy(&bytes);
        assert!(
            !lossy.contains("texto-secreto-7Q2"),
            "{id}: message text at rest"
        );
        // Every personal string the test sent, on every channel: the webchat text and the phone
        // number in it, the WhatsApp text and the sender's number.
        for sent in [text, "51999000111", "999 000 111", wa_text, phone] {
            assert!(!lossy.contains(sent), "{id}: `{sent}` at rest");
        }
        assert!(
            !bytes.windows(image_chunk.len()).any(|w| w == image_chunk),
            "{id}: image bytes at rest"
        );
        assert!(!lossy.contains(&image_b64), "{id}: image (base64) at rest");
        assert!(
            lossy.contains("binary/encrypted"),
            "{id}: payloads are encrypted"
        );
        // Everything the API, the workflow and its activities stored is sealed under the
        // tenant's own key (the payment runs OCR and database activities).
        let stored = stored_payloads(&app, id).await;
        assert!(stored.len() >= 3, "{id}: {}", stored.len());
        for payload in &stored {
            assert_eq!(
                meta(payload, "encryption-key-id"),
                "zengine-dev@demo",
                "{id}"
            );
        }
    }

    // The decoding path (the operator history timeline, through the codec) reads the text.
    let response = timeline_of(&app, &chat_id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let timeline = response.text().await.unwrap();
    assert!(timeline.contains("texto-secreto-7Q2"), "{timeline}");
    app.shutdown().await;
}

/// `zengine dev`'s own Web UI decodes without a token: the codec accepts a call carrying the
/// UI's `Origin` from a loopback peer when `zengine dev` named that origin (it does so only
/// while payloads are on the public development key, which decrypts them for anyone anyway).
/// Any other origin, or none, still needs a credential; outside `zengine dev` no origin is
/// trusted.
#[tokio::test]
async fn the_dev_web_ui_decodes_without_a_token_and_nobody_else_does() {
    let sealed = {
        let mut options = hs256_options();
        options.run_worker = false;
        let app = spawn_app_with(options).await;
        let plain = json!({"payloads": [json_payload(&json!({"text": "hola"}))]});
        let sealed = codec_json(&app, "encode", ADMIN_TOKEN, &plain).await;
        app.shutdown().await;
        sealed
    };
    let call = |app: &TestApp, origin: Option<&'static str>| {
        let mut request = app
            .http
            .post(format!("{}/codec/decode", app.address))
            .header("content-type", "application/json")
            .header("x-namespace", "default")
            .body(sealed.to_string());
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };

    let mut options = hs256_options();
    options.run_worker = false;
    options.api.dev_ui_origins = vec!["http://127.0.0.1:8233".to_owned()];
    let dev = spawn_app_with(options).await;
    let response = call(&dev, Some("http://127.0.0.1:8233")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let opened: Value = response.json().await.unwrap();
    assert_eq!(meta(&opened["payloads"][0], "encoding"), "json/plain");
    for origin in [
        None,
        Some("http://evil.example"),
        Some("http://127.0.0.1:8234"),
    ] {
        let response = call(&dev, origin).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{origin:?}");
    }
    dev.shutdown().await;

    let mut options = hs256_options();
    options.run_worker = false;
    let production = spawn_app_with(options).await;
    let response = call(&production, Some("http://127.0.0.1:8233"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    production.shutdown().await;
}

/// The operator history timeline of one of demo's workflows (decoded through the API's codec).
async fn timeline_of(app: &TestApp, workflow_id: &str) -> reqwest::Response {
    let path = format!(
        "/v1/ops/workflows/{}/history",
        workflow_id.replace('/', "%2F")
    );
    crate::channels::admin_get(app, "demo", &path).await
}

/// A codec that decodes nothing and keeps a copy of every payload it is shown.
#[derive(Default)]
struct Collect(std::sync::Mutex<Vec<Payload>>);

impl PayloadCodec for Collect {
    fn encode(
        &self,
        _: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        Box::pin(async move { Ok(payloads) })
    }

    fn decode(
        &self,
        _: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        self.0.lock().unwrap().extend(payloads.iter().cloned());
        Box::pin(async move { Ok(payloads) })
    }
}

/// Every encrypted payload of a workflow's history as Temporal stores it, in the codec
/// endpoint's JSON form (what the Web UI posts to `/codec/decode`).
async fn stored_payloads(app: &TestApp, workflow_id: &str) -> Vec<Value> {
    let raw = connect_with_codec(&app.temporal_settings, "raw-reader", None)
        .await
        .unwrap();
    let events = raw
        .get_workflow_handle::<ConversationWorkflow>(workflow_id)
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await
        .unwrap();
    let mut history = History { events };
    let collect = Collect::default();
    temporalio_common::payload_visitor::decode_payloads(
        &mut history,
        &collect,
        &SerializationContextData::None,
    )
    .await
    .unwrap();
    let payloads = collect.0.into_inner().unwrap();
    payloads
        .into_iter()
        .filter(|p| p.metadata.get("encoding").map(Vec::as_slice) == Some(b"binary/encrypted"))
        .map(|p| {
            json!({
                "metadata": p.metadata.iter()
                    .map(|(k, v)| (k.clone(), json!(STANDARD.encode(v))))
                    .collect::<serde_json::Map<_, _>>(),
                "data": STANDARD.encode(&p.data),
            })
        })
        .collect()
}

/// The decoded texts of a `/codec/decode` answer.
fn plaintexts(answer: &Value) -> String {
    answer["payloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            String::from_utf8_lossy(&STANDARD.decode(p["data"].as_str().unwrap()).unwrap())
                .into_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Attack: an operator of one tenant posts another tenant's history payloads (read from
/// Temporal, as anyone with access to the namespace or the Web UI can) to `/codec/decode`.
/// Payloads are sealed under the tenant's own key (`<key id>@<tenant>`, the key id and tenant
/// bound as associated data), so only that tenant's operators and the platform read them;
/// relabelling a payload as another tenant's does not open it either.
#[tokio::test]
async fn an_operator_decodes_only_their_own_tenants_payloads() {
    let app = spawn_app_with(hs256_options()).await;
    crate::channels::create_tenant(&app, "rival").await;
    let session = format!("s-{}", uuid::Uuid::new_v4().simple());
    let text = "secreto-de-demo-8R4";
    app.say(&session, "k-1", text).await;
    let stored = stored_payloads(&app, &format!("demo/conversation/webchat/{session}")).await;
    // The update's input (the message) and result (the bot's replies), the state at least.
    assert!(stored.len() >= 3, "{stored:?}");
    let body = json!({ "payloads": stored });

    // The rival tenant's operator gets every payload back as it was: sealed.
    let rival = token("rival", "operator");
    let answer = codec_json(&app, "decode", &rival, &body).await;
    assert_eq!(answer, body);
    assert!(!plaintexts(&answer).contains(text));
    for payload in body["payloads"].as_array().unwrap() {
        assert_eq!(meta(payload, "encryption-key-id"), "zengine-dev@demo");
    }
    // Relabelled as the rival's: authentication fails (422), nothing decrypts.
    let mut relabelled = body.clone();
    relabelled["payloads"][0]["metadata"]["encryption-key-id"] =
        json!(STANDARD.encode("zengine-dev@rival"));
    let response = codec_call(&app, "decode", Some(&rival), relabelled.to_string()).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // The tenant's own operator and the platform read them.
    let own = codec_json(&app, "decode", &token("demo", "operator"), &body).await;
    assert!(plaintexts(&own).contains(text));
    let platform = codec_json(&app, "decode", ADMIN_TOKEN, &body).await;
    assert_eq!(platform, own);

    // What a tenant's operator encodes (the Web UI's signal and query inputs) is its own.
    let plain = json!({"payloads": [json_payload(&json!("de rival"))]});
    let sealed = codec_json(&app, "encode", &rival, &plain).await;
    assert_eq!(
        meta(&sealed["payloads"][0], "encryption-key-id"),
        "zengine-dev@rival"
    );
    assert_eq!(codec_json(&app, "decode", &rival, &sealed).await, plain);
    let demo = codec_json(&app, "decode", &token("demo", "operator"), &sealed).await;
    assert_eq!(demo, sealed);
    app.shutdown().await;
}

/// Crypto-shredding, the erasure path of a tenant's histories: with
/// `temporal.codec.tenant_key_secret` set, a tenant's data key also depends on a secret in its
/// own folder of the tenant secret store (`<key id>@<tenant>/<name>`). Removing that file makes
/// every payload sealed under it unreadable — for the platform too, through every path — within
/// `tenant_key_cache_secs`, while other tenants' payloads still open.
#[tokio::test]
async fn removing_a_tenants_payload_key_erases_its_history_payloads() {
    let name = format!("payload-key-{}", uuid::Uuid::new_v4().simple());
    let key = [
        *uuid::Uuid::new_v4().as_bytes(),
        *uuid::Uuid::new_v4().as_bytes(),
    ]
    .concat();
    crate::helpers::put_tenant_secret("demo", &name, &STANDARD.encode(key));
    crate::helpers::put_tenant_secret("rival", &name, &STANDARD.encode([3u8; 32]));
    let mut options = hs256_options();
    options.codec.tenant_key_secret = name.clone();
    options.codec.tenant_key_cache_secs = 1;
    let app = spawn_app_with(options).await;
    crate::channels::create_tenant(&app, "rival").await;
    let session = format!("s-{}", uuid::Uuid::new_v4().simple());
    let text = "para-borrar-3K1";
    app.say(&session, "k-1", text).await;
    let id = format!("demo/conversation/webchat/{session}");
    let stored = stored_payloads(&app, &id).await;
    assert!(stored.len() >= 3, "{stored:?}");
    for payload in &stored {
        assert_eq!(
            meta(payload, "encryption-key-id"),
            format!("zengine-dev@demo/{name}")
        );
    }
    let body = json!({ "payloads": stored });
    assert!(plaintexts(&codec_json(&app, "decode", ADMIN_TOKEN, &body).await).contains(text));
    let other = codec_json(
        &app,
        "encode",
        &token("rival", "operator"),
        &json!({"payloads": [json_payload(&json!("de otro"))]}),
    )
    .await;

    // Erase: the platform removes the tenant's payload key.
    std::fs::remove_file(crate::helpers::tenant_secret_path("demo", &name)).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let response = codec_call(&app, "decode", Some(ADMIN_TOKEN), body.to_string()).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error: Value = response.json().await.unwrap();
    assert!(error.to_string().contains("erased"), "{error}");
    // The operator history timeline cannot read it either.
    let response = timeline_of(&app, &id).await;
    assert!(!response.text().await.unwrap().contains(text));
    // Other tenants are untouched.
    let opened = codec_json(&app, "decode", &token("rival", "operator"), &other).await;
    assert!(plaintexts(&opened).contains("de otro"));
    app.shutdown().await;
}

/// Erasure as an operation, for every tenant: with `temporal.codec.tenant_key_secret` set,
/// creating a tenant provisions its payload key (so no tenant is left on a key only retiring
/// the keyring erases), and `POST /v1/tenants/{t}/erase` on a suspended tenant removes its
/// secrets, so its histories stop decrypting for everyone, the platform included.
#[tokio::test]
async fn a_created_tenant_gets_its_own_payload_key_and_erasing_it_shreds_its_histories() {
    let name = format!("payload-key-{}", uuid::Uuid::new_v4().simple());
    let mut options = hs256_options();
    options.codec.tenant_key_secret = name.clone();
    options.codec.tenant_key_cache_secs = 1;
    let app = spawn_app_with(options).await;
    let tenant = crate::auth::unique_tenant("erase");
    let post = |path: String, bearer: String| {
        let app = &app;
        async move { call(app, Method::POST, &path, Some(&bearer), None, None).await }
    };
    let r = call(
        &app,
        Method::POST,
        "/v1/tenants",
        Some(ADMIN_TOKEN),
        None,
        Some(json!({"tenant_id": tenant, "name": "Erase me"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // Provisioned: 32 random bytes, readable by the process owner only.
    let path = crate::helpers::tenant_secret_path(&tenant, &name);
    let key = std::fs::read_to_string(&path).expect("a created tenant has its payload key");
    assert_eq!(STANDARD.decode(key.trim()).unwrap().len(), 32);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    // Its operator's payloads are sealed under it.
    let text = "borrar-7Q2";
    let sealed = codec_json(
        &app,
        "encode",
        &token(&tenant, "operator"),
        &json!({"payloads": [json_payload(&json!(text))]}),
    )
    .await;
    assert_eq!(
        meta(&sealed["payloads"][0], "encryption-key-id"),
        format!("zengine-dev@{tenant}/{name}")
    );
    let erase = format!("/v1/tenants/{tenant}/erase");

    // Only the platform erases, and only a suspended tenant.
    let r = post(erase.clone(), token(&tenant, "admin")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post(erase.clone(), ADMIN_TOKEN.to_owned()).await;
    assert_eq!(error_code(r, StatusCode::CONFLICT).await, "conflict");
    assert!(path.exists());
    let r = post(
        format!("/v1/tenants/{tenant}/suspend"),
        ADMIN_TOKEN.to_owned(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);

    let r = post(erase.clone(), ADMIN_TOKEN.to_owned()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["tenant"]["status"], "erased", "{body}");
    assert_eq!(body["changed"], true, "{body}");
    assert!(!path.exists());
    assert!(
        !path.parent().unwrap().exists(),
        "the tenant's whole folder"
    );
    // Again: nothing more to do. An erased tenant cannot be resumed.
    let r = post(erase.clone(), ADMIN_TOKEN.to_owned()).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["changed"], false, "{body}");
    let r = post(
        format!("/v1/tenants/{tenant}/resume"),
        ADMIN_TOKEN.to_owned(),
    )
    .await;
    assert_eq!(error_code(r, StatusCode::CONFLICT).await, "conflict");
    // Recorded, with who did it.
    let db = &app.database.as_ref().unwrap().db;
    let id = zengine_domain::TenantId::parse(&tenant).unwrap();
    let events = db.events().list(&id, "Tenant.Erased").await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");

    // Within tenant_key_cache_secs nobody can open its payloads, the platform included.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let response = codec_call(&app, "decode", Some(ADMIN_TOKEN), sealed.to_string()).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.unwrap().contains("erased"));
    app.shutdown().await;
}

/// Without `temporal.codec.tenant_key_secret` a tenant's payloads are sealed under keys derived
/// from the keyring alone: erasing would remove files and still leave its histories readable,
/// so the API refuses instead of claiming an erasure that did not happen.
#[tokio::test]
async fn erasing_without_tenant_payload_keys_is_refused_and_says_why() {
    let app = spawn_app_with(hs256_options()).await;
    let tenant = crate::auth::unique_tenant("noerase");
    crate::auth::add_tenant(&app, &tenant).await;
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/tenants/{tenant}/suspend"),
        Some(ADMIN_TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/tenants/{tenant}/erase"),
        Some(ADMIN_TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body = r.text().await.unwrap();
    assert!(body.contains("temporal.codec.tenant_key_secret"), "{body}");
    app.shutdown().await;
}
