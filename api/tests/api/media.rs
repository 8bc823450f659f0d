//! Receipts sent on WhatsApp: the media download of the channel strategies (Meta's Cloud API
//! and 360dialog) against a loopback fake of their documented media endpoints, then the whole
//! path: a signed image webhook → the conversation's `payment.verify` → media fetched through
//! the strategy → real Tesseract → order PAID → one confirmation message.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use zengine_channels::outbound::OutboundSettings;
use zengine_channels::sdk::{MediaLimits, OutboundConnection, SendError, StrategyEnv};
use zengine_channels::{InboundOptions, Registry};
use zengine_domain::TenantId;
use zengine_storage::ChannelAccount;
use zengine_storage::seed::DEMO_WHATSAPP_PHONE_NUMBER_ID;

use crate::channels::file_secret;
use crate::fakes::{Answer, FakeProvider, MediaApi, serve_media};
use crate::payments::receipt;

const TOKEN: &str = "meta-media-token";
const D360_KEY: &str = "d360-media-key";
const META: MediaApi = MediaApi::Meta {
    version: "v23.0",
    token: TOKEN,
};

fn connection(strategy: &str, settings: Value) -> Box<dyn OutboundConnection> {
    let registry = Registry::standard(InboundOptions::default());
    let account = ChannelAccount {
        strategy: strategy.into(),
        account_key: DEMO_WHATSAPP_PHONE_NUMBER_ID.into(),
        tenant_id: TenantId::parse("demo").unwrap(),
        settings,
    };
    registry
        .outbound(strategy)
        .unwrap()
        // The fake provider listens on loopback, which the harness opens (as `worker.outbound`).
        .configure(
            &account,
            &StrategyEnv::with_guard(OutboundSettings::loopback().guard().unwrap()),
        )
        .unwrap()
}

fn meta(fake: &FakeProvider) -> Box<dyn OutboundConnection> {
    connection(
        "whatsapp-meta-cloud",
        json!({"api_base": fake.url, "api_version": "v23.0", "access_token": file_secret(TOKEN)}),
    )
}

fn limits() -> MediaLimits {
    MediaLimits::receipt_images(2 * 1024 * 1024)
}

fn rejected(result: Result<impl std::fmt::Debug, SendError>, says: &str) {
    match result {
        Err(SendError::Rejected { message, .. }) => {
            assert!(message.contains(says), "{message} (expected: {says})")
        }
        other => panic!("expected a rejection saying `{says}`, got {other:?}"),
    }
}

fn retryable(result: Result<impl std::fmt::Debug, SendError>) -> Option<Duration> {
    match result {
        Err(SendError::Retryable { retry_after, .. }) => retry_after,
        other => panic!("expected a retryable failure, got {other:?}"),
    }
}

#[tokio::test]
async fn meta_media_is_downloaded_with_the_bearer_token_and_checked() {
    let fake = FakeProvider::start().await;
    let image = receipt("r01_yape-card_whatsapp.jpg");
    serve_media(
        &fake,
        META,
        "1003383421387256",
        "image/jpeg",
        &image,
        image.clone(),
    );
    let media = meta(&fake)
        .download_media("1003383421387256", &limits())
        .await
        .unwrap();
    assert_eq!(media.bytes, image);
    assert_eq!(media.mime_type, "image/jpeg");
    {
        use sha2::Digest;
        assert_eq!(media.sha256, hex::encode(sha2::Sha256::digest(&image)));
    }
    let info = fake.seen("GET /v23.0/1003383421387256");
    let download = fake.seen("GET /whatsapp_business/attachments/");
    assert_eq!((info.len(), download.len()), (1, 1));
    for seen in [&info[0], &download[0]] {
        assert_eq!(seen.headers["authorization"], format!("Bearer {TOKEN}"));
    }

    // A wrong token: Graph's 401 (code 190) is final.
    let wrong = connection(
        "whatsapp-meta-cloud",
        json!({"api_base": fake.url, "access_token": file_secret("not-the-token")}),
    );
    rejected(
        wrong.download_media("1003383421387256", &limits()).await,
        "HTTP 401",
    );
    assert_eq!(fake.seen("GET /whatsapp_business/").len(), 1);
}

#[tokio::test]
async fn media_errors_are_classified_and_bad_media_is_refused() {
    let fake = FakeProvider::start().await;
    let image = receipt("r01_yape-card_whatsapp.jpg");
    let png = receipt("r03_yape-card_clean.png");
    serve_media(&fake, META, "111", "image/jpeg", &image, image.clone());
    // Declared an image, but the content is a GIF.
    let gif = b"GIF89a\x01\x00\x01\x00fake".to_vec();
    serve_media(&fake, META, "222", "image/jpeg", &gif, gif.clone());
    // The bytes served are not the ones hashed (corruption / tampering).
    let mut tampered = image.clone();
    tampered[100] ^= 0xFF;
    serve_media(&fake, META, "333", "image/jpeg", &image, tampered);
    serve_media(&fake, META, "444", "image/gif", &gif, gif.clone());
    serve_media(&fake, META, "555", "image/png", &png, png.clone());
    let wa = meta(&fake);

    // Unknown media: Graph's (#100) → final.
    rejected(wa.download_media("999", &limits()).await, "(#100)");
    rejected(
        wa.download_media("222", &limits()).await,
        "content is `image/gif`",
    );
    rejected(
        wa.download_media("333", &limits()).await,
        "does not match its sha256",
    );
    rejected(
        wa.download_media("444", &limits()).await,
        "`image/gif` is not accepted",
    );
    // Too large by its declared size: refused before downloading anything.
    let before = fake.seen("GET /whatsapp_business/").len();
    rejected(
        wa.download_media("555", &MediaLimits::receipt_images(1024))
            .await,
        "larger than the limit of 1024 bytes",
    );
    assert_eq!(fake.seen("GET /whatsapp_business/").len(), before);
    // Not a media id: never reaches a URL.
    let requests = fake.seen("GET").len();
    rejected(
        wa.download_media("../v23.0/me", &limits()).await,
        "not a media id",
    );
    rejected(wa.download_media("", &limits()).await, "not a media id");
    assert_eq!(fake.seen("GET").len(), requests);

    // Throttled (Graph's 429 with Retry-After) and outages of the media host: retryable.
    fake.script(
        "GET /v23.0/111",
        [Answer::graph_error(429, 130429, "Rate limit hit").with_header("retry-after", "7")],
    );
    assert_eq!(
        retryable(wa.download_media("111", &limits()).await),
        Some(Duration::from_secs(7))
    );
    fake.script(
        "GET /whatsapp_business/attachments/?mid=111&",
        [Answer::json(503, json!({"error": "unavailable"}))],
    );
    retryable(wa.download_media("111", &limits()).await);
    fake.script(
        "GET /v23.0/111",
        [Answer::json(
            500,
            json!({"error": {"message": "An unknown error occurred", "code": 1}}),
        )],
    );
    retryable(wa.download_media("111", &limits()).await);
    // And then it works.
    assert_eq!(
        wa.download_media("111", &limits()).await.unwrap().bytes,
        image
    );
}

#[tokio::test]
async fn dialog360_media_goes_through_its_proxy_with_the_api_key() {
    let fake = FakeProvider::start().await;
    let image = receipt("r04_yape-card_whatsapp.jpg");
    serve_media(
        &fake,
        MediaApi::Dialog360 { api_key: D360_KEY },
        "2621233374848975",
        "image/jpeg",
        &image,
        image.clone(),
    );
    let d360 = connection(
        "whatsapp-360dialog",
        json!({"api_base": fake.url, "api_key": file_secret(D360_KEY),
               "webhook_secret": file_secret("x")}),
    );
    let media = d360
        .download_media("2621233374848975", &limits())
        .await
        .unwrap();
    assert_eq!(media.bytes, image);
    // Meta's lookaside host was replaced by 360dialog's; the key went on both calls, no bearer.
    let info = fake.seen("GET /2621233374848975");
    let download = fake.seen("GET /whatsapp_business/attachments/?mid=2621233374848975&");
    assert_eq!((info.len(), download.len()), (1, 1));
    for seen in [&info[0], &download[0]] {
        assert_eq!(seen.headers["d360-api-key"], D360_KEY);
        assert!(!seen.headers.contains_key("authorization"));
    }
    let wrong = connection(
        "whatsapp-360dialog",
        json!({"api_base": fake.url, "api_key": file_secret("wrong-key")}),
    );
    rejected(
        wrong.download_media("2621233374848975", &limits()).await,
        "HTTP 401",
    );
}

// ---------------------------------------------------------------------------------------------
// End to end through the API and the in-process worker.

/// A fake Graph API answering sends and serving `media` (`id → (mime, bytes)`).
pub async fn fake_whatsapp(media: &[(&str, &str, Vec<u8>)]) -> FakeProvider {
    let fake = FakeProvider::start().await;
    fake.on(
        &format!("POST /v23.0/{DEMO_WHATSAPP_PHONE_NUMBER_ID}/messages"),
        |seen, n| {
            Answer::json(
                200,
                zengine_channels::whatsapp::sent_answer(
                    seen.body["to"].as_str().unwrap_or_default(),
                    &format!("wamid.media-{n}"),
                ),
            )
        },
    );
    for (id, mime, bytes) in media {
        serve_media(&fake, META, id, mime, bytes, bytes.clone());
    }
    fake
}

pub fn image_webhook(from: &str, wamid: &str, media_id: &str, mime: &str) -> Vec<u8> {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
    "field": "messages",
    "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": DEMO_WHATSAPP_PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": "Rocío"}, "wa_id": from}],
        "messages": [{"from": from, "id": wamid, "timestamp": "1767317400", "type": "image",
                      "image": {"mime_type": mime, "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
                                "id": media_id}}]
    }}]}]})
    .to_string()
    .into_bytes()
}

/// The flow of the WhatsApp receipt tests: order number, photo, `payment.verify`.
pub fn pay_flow() -> Value {
    crate::flows::graph(json!([
        {"id": "order", "type": "question", "text": "¿Número de pedido?", "save_as": "order_id", "next": "photo"},
        {"id": "photo", "type": "question", "text": "Envía la captura de tu Yape o Plin.",
         "expects": "image", "save_as": "receipt", "next": "verify"},
        {"id": "verify", "type": "command", "command": "payment.verify", "save_as": "payment",
         "params": {"order_id": "{{order_id}}", "image": "{{receipt.reference}}"},
         "next": "paid", "on_failure": "checking"},
        {"id": "paid", "type": "end", "text": "¡Pago confirmado! ({{payment.status}})"},
        {"id": "checking", "type": "end", "text": "Estamos revisando tu pago."}
    ]))
}

/// Waits until the fake saw `n` sends to the customer; returns their texts.
async fn wait_texts(fake: &FakeProvider, n: usize) -> Vec<String> {
    let route = format!("POST /v23.0/{DEMO_WHATSAPP_PHONE_NUMBER_ID}/messages");
    for _ in 0..600 {
        let seen = fake.seen(&route);
        if seen.len() >= n {
            return seen
                .iter()
                .map(|s| {
                    s.body["text"]["body"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the fake saw {:?}", fake.seen(&route));
}

async fn post(app: &crate::helpers::TestApp, body: Vec<u8>) {
    let signature = crate::whatsapp::sign(&body);
    let response = crate::whatsapp::post_webhook(app, &body, Some(signature)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

fn ground_truth(file: &str) -> Value {
    let json = receipt(&file.replace(".jpg", ".json").replace(".png", ".json"));
    serde_json::from_slice(&json).unwrap()
}

#[tokio::test]
async fn a_receipt_sent_on_whatsapp_pays_the_order_and_the_customer_is_told_once() {
    let app = crate::payments::app().await;
    let file = "r01_yape-card_whatsapp.jpg";
    let truth = ground_truth(file);
    let fake = fake_whatsapp(&[("1003383421387256", "image/jpeg", receipt(file))]).await;
    crate::whatsapp::use_fake(&app, &fake.url, Some(file_secret(TOKEN))).await;
    let response = app
        .put_flow(
            "demo",
            "wa-pay",
            "?main=true",
            pay_flow().to_string(),
            Some(crate::helpers::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let total = truth["amount"].as_str().unwrap();
    let order_id = crate::payments::order(&app, "wa-pay-1", total).await;

    // A number no other test uses: conversation workflow ids are per (tenant, contact), and tests
    // share one Temporal namespace.
    let from = "51900000331";
    post(
        &app,
        crate::whatsapp::text_webhook(DEMO_WHATSAPP_PHONE_NUMBER_ID, from, "wamid.in-1", "hola"),
    )
    .await;
    assert_eq!(wait_texts(&fake, 1).await, ["¿Número de pedido?"]);
    post(
        &app,
        crate::whatsapp::text_webhook(DEMO_WHATSAPP_PHONE_NUMBER_ID, from, "wamid.in-2", &order_id),
    )
    .await;
    wait_texts(&fake, 2).await;
    let image = image_webhook(from, "wamid.in-3", "1003383421387256", "image/jpeg");
    post(&app, image.clone()).await;
    // Meta redelivers: no second effect.
    post(&app, image).await;
    let texts = wait_texts(&fake, 3).await;
    assert_eq!(texts[2], "¡Pago confirmado! (ASSIGNED)", "{texts:?}");

    // Exactly one payment, read right (ground truth), the order PAID.
    let payments = app
        .http
        .get(format!("{}/v1/orders/{order_id}/payments", app.address))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .header("x-tenant-id", "demo")
        .send()
        .await
        .unwrap();
    let payments: Value = payments.json().await.unwrap();
    let list = payments["payments"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{payments}");
    assert_eq!(list[0]["status"], "ASSIGNED");
    assert_eq!(list[0]["operation_code"], truth["op_code"]);
    assert_eq!(list[0]["amount"], truth["amount"]);
    assert_eq!(list[0]["media_ref"], "whatsapp:1003383421387256");
    let order = app
        .http
        .get(format!("{}/v1/orders/{order_id}", app.address))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .header("x-tenant-id", "demo")
        .send()
        .await
        .unwrap();
    let order: Value = order.json().await.unwrap();
    assert_eq!(order["status"], "PAID");
    // The media went through the strategy with the tenant's token, once.
    let info = fake.seen("GET /v23.0/1003383421387256");
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].headers["authorization"], format!("Bearer {TOKEN}"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        wait_texts(&fake, 3).await.len(),
        3,
        "exactly one confirmation"
    );
    // The conversation's new shape (the `payment-verify-whatsapp-media` patch) for the replay test.
    crate::histories::record(
        &app,
        &crate::helpers::whatsapp_conversation_id("demo", from),
        "conversation__whatsapp_receipt_paid",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_whatsapp_receipt_that_cannot_be_fetched_goes_to_review_and_the_customer_hears_it() {
    let app = crate::payments::app().await;
    // The media is a GIF: the strategy refuses it, OCR never runs, the payment waits for review.
    let gif = b"GIF89a\x01\x00\x01\x00fake".to_vec();
    let fake = fake_whatsapp(&[("77001", "image/jpeg", gif)]).await;
    crate::whatsapp::use_fake(&app, &fake.url, Some(file_secret(TOKEN))).await;
    let response = app
        .put_flow(
            "demo",
            "wa-pay",
            "?main=true",
            pay_flow().to_string(),
            Some(crate::helpers::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let order_id = crate::payments::order(&app, "wa-pay-2", "20.00").await;
    let from = "51911222333";
    post(
        &app,
        crate::whatsapp::text_webhook(DEMO_WHATSAPP_PHONE_NUMBER_ID, from, "wamid.r-1", "hola"),
    )
    .await;
    wait_texts(&fake, 1).await;
    post(
        &app,
        crate::whatsapp::text_webhook(DEMO_WHATSAPP_PHONE_NUMBER_ID, from, "wamid.r-2", &order_id),
    )
    .await;
    wait_texts(&fake, 2).await;
    post(
        &app,
        image_webhook(from, "wamid.r-3", "77001", "image/jpeg"),
    )
    .await;
    let texts = wait_texts(&fake, 3).await;
    assert_eq!(texts[2], "Estamos revisando tu pago.", "{texts:?}");
    let payments = app
        .http
        .get(format!("{}/v1/orders/{order_id}/payments", app.address))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .header("x-tenant-id", "demo")
        .send()
        .await
        .unwrap();
    let payments: Value = payments.json().await.unwrap();
    let payment = &payments["payments"][0];
    assert_eq!(payment["status"], "MANUAL_REVIEW", "{payment}");
    let reasons = payment["reasons"].to_string();
    assert!(reasons.contains("not an accepted type"), "{reasons}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_doubtful_whatsapp_receipt_is_checked_escalated_to_operators_by_sms_and_confirmed() {
    use zengine_domain::phone::E164;
    use zengine_storage::PaymentSettings;
    let app = crate::payments::app().await;
    crate::assistance::use_sns(&app, zengine_workers::testing::moto_server()).await;
    let operator = crate::assistance::fresh_number();
    app.database
        .as_ref()
        .unwrap()
        .db
        .payments()
        .set_settings(
            &TenantId::parse("demo").unwrap(),
            &PaymentSettings {
                window_slack_minutes: 3 * 365 * 24 * 60,
                review_timeout_secs: 2,
                operator_recipients: vec![E164::parse(operator.clone()).unwrap()],
                ..PaymentSettings::default()
            },
        )
        .await
        .unwrap();
    let file = "r01_yape-card_whatsapp.jpg";
    let fake = fake_whatsapp(&[("88001", "image/jpeg", receipt(file))]).await;
    crate::whatsapp::use_fake(&app, &fake.url, Some(file_secret(TOKEN))).await;
    let response = app
        .put_flow(
            "demo",
            "wa-pay",
            "?main=true",
            pay_flow().to_string(),
            Some(crate::helpers::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    // The receipt says S/ 478 for an order of S/ 30: manual review.
    let order_id = crate::payments::order(&app, "wa-pay-3", "30.00").await;
    let from = "51944555666";
    let text = |wamid: &str, body: &str| {
        crate::whatsapp::text_webhook(DEMO_WHATSAPP_PHONE_NUMBER_ID, from, wamid, body)
    };
    post(&app, text("wamid.e-1", "hola")).await;
    wait_texts(&fake, 1).await;
    post(&app, text("wamid.e-2", &order_id)).await;
    wait_texts(&fake, 2).await;
    post(
        &app,
        image_webhook(from, "wamid.e-3", "88001", "image/jpeg"),
    )
    .await;
    let texts = wait_texts(&fake, 3).await;
    assert_eq!(texts[2], "Estamos revisando tu pago.", "{texts:?}");

    // Nobody reviews within 2 s: the operator gets one SMS.
    let mut sms = Vec::new();
    for _ in 0..150 {
        sms = crate::assistance::sms_to(&operator).await;
        if !sms.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sms.len(), 1, "{sms:?}");
    assert!(
        sms[0].starts_with("ALERTA pago pay_") && sms[0].contains("revisión manual"),
        "{sms:?}"
    );
    let payments: Value = app
        .http
        .get(format!("{}/v1/orders/{order_id}/payments", app.address))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .header("x-tenant-id", "demo")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payment_id = payments["payments"][0]["payment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(payments["payments"][0]["status"], "MANUAL_REVIEW");
    assert!(sms[0].contains(&payment_id), "{sms:?}");

    // The operator approves: the customer is told on WhatsApp, once.
    let approved = app
        .http
        .post(format!("{}/v1/payments/{payment_id}/review", app.address))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .header("x-tenant-id", "demo")
        .json(&json!({"decision": "approve", "reviewer": "ops@demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), StatusCode::OK);
    let texts = wait_texts(&fake, 4).await;
    assert!(texts[3].contains("fue confirmado"), "{texts:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(wait_texts(&fake, 4).await.len(), 4);
    assert_eq!(crate::assistance::sms_to(&operator).await.len(), 1);
    app.shutdown().await;
}

/// A Yape "¡Yapeaste!" screen as a text detector returns it (S/ 23.50, operation 04718822).
const VISION_TEXT: &str = "12:24 4G 87%\n¡Yapeaste!\nS/ 23.50\nRosa Quispe M.\n27 set. 2026 | 09:38 p. m.\n\
    almuerzo\nCÓDIGO DE SEGURIDAD\n(1) (8) (4)\nDATOS DE LA TRANSACCIÓN\n\
    Nro. de celular *** *** 789\nDestino Plin\nNro. de operación 04718822\nCompartir\n";

#[tokio::test]
async fn a_tenant_can_choose_cloud_vision_ocr_and_its_failures_go_to_review() {
    use base64::Engine;
    use zengine_activities::vision::CloudOcrSettings;
    use zengine_storage::PaymentSettings;
    let app = crate::payments::app().await;
    let vision = FakeProvider::start().await;
    vision.on("POST /v1/images:annotate", |seen, _| {
        if seen.headers.get("x-goog-api-key").map(String::as_str) != Some("vision-key") {
            return Answer::json(
                403,
                json!({"error": {"code": 403, "message": "API key not valid.", "status": "PERMISSION_DENIED"}}),
            );
        }
        Answer::json(
            200,
            json!({"responses": [{"textAnnotations": [{"locale": "es", "description": VISION_TEXT}],
                                  "fullTextAnnotation": {"text": VISION_TEXT}}]}),
        )
    });
    let set = |api_key: String| {
        let db = app.database.as_ref().unwrap().db.clone();
        let endpoint = vision.url.clone();
        async move {
            db.payments()
                .set_settings(
                    &TenantId::parse("demo").unwrap(),
                    &PaymentSettings {
                        window_slack_minutes: 3 * 365 * 24 * 60,
                        review_timeout_secs: 600,
                        // One text pass: the extractor gives its amount 0.75 (see docs/payments.md).
                        min_confidence: 0.7,
                        cloud_ocr: Some(CloudOcrSettings {
                            provider: "google-vision".into(),
                            api_key,
                            endpoint: Some(endpoint),
                        }),
                        ..PaymentSettings::default()
                    },
                )
                .await
                .unwrap();
        }
    };
    set(file_secret("vision-key")).await;
    // Tesseract would read S/ 439 on this image; the tenant's provider says S/ 23.50 and wins.
    let image = receipt("r03_yape-card_clean.png");
    let order_id = crate::payments::order(&app, "vision-1", "23.50").await;
    let (status, payment) = crate::payments::pay(&app, &order_id, &image).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{payment}");
    let payment = crate::payments::settled(&app, payment["payment_id"].as_str().unwrap()).await;
    assert_eq!(payment["status"], "ASSIGNED", "{payment}");
    assert_eq!(payment["operation_code"], "04718822");
    assert_eq!(payment["raw_ocr"], VISION_TEXT);
    let seen = vision.seen("POST /v1/images:annotate");
    assert_eq!(seen.len(), 1);
    let request = &seen[0].body["requests"][0];
    assert_eq!(request["features"][0]["type"], "TEXT_DETECTION");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(request["image"]["content"].as_str().unwrap())
            .unwrap(),
        image
    );

    // A refused key: manual review at once, with the reason.
    set(file_secret("wrong-key")).await;
    let order_id = crate::payments::order(&app, "vision-2", "23.50").await;
    let (_, payment) =
        crate::payments::pay(&app, &order_id, &receipt("r06_yape-card_clean.png")).await;
    let payment = crate::payments::settled(&app, payment["payment_id"].as_str().unwrap()).await;
    assert_eq!(payment["status"], "MANUAL_REVIEW", "{payment}");
    assert!(
        payment["reasons"].to_string().contains("HTTP 403"),
        "{payment}"
    );

    // The provider is down: retried (3 attempts), then manual review.
    set(file_secret("vision-key")).await;
    vision.down(
        "POST /v1/images:annotate",
        Answer::json(503, json!({"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}})),
    );
    let before = vision.seen("POST /v1/images:annotate").len();
    let order_id = crate::payments::order(&app, "vision-3", "23.50").await;
    let (_, payment) =
        crate::payments::pay(&app, &order_id, &receipt("r09_yape-card_clean.png")).await;
    let payment = crate::payments::settled(&app, payment["payment_id"].as_str().unwrap()).await;
    assert_eq!(payment["status"], "MANUAL_REVIEW", "{payment}");
    assert_eq!(vision.seen("POST /v1/images:annotate").len() - before, 3);

    // A secret that does not resolve: manual review, naming the reference only.
    vision.up("POST /v1/images:annotate");
    set("env:ZENGINE_TEST_NO_SUCH_VISION_KEY".into()).await;
    let order_id = crate::payments::order(&app, "vision-4", "23.50").await;
    let (_, payment) =
        crate::payments::pay(&app, &order_id, &receipt("r12_yape-card_clean.png")).await;
    let payment = crate::payments::settled(&app, payment["payment_id"].as_str().unwrap()).await;
    assert_eq!(payment["status"], "MANUAL_REVIEW", "{payment}");
    assert!(
        payment["reasons"]
            .to_string()
            .contains("ZENGINE_TEST_NO_SUCH_VISION_KEY"),
        "{payment}"
    );
    app.shutdown().await;
}
