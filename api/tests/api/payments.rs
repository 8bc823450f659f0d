//! Receipt payments end to end: upload → payment workflow → OCR worker (real Tesseract) →
//! reconciliation → order PAID, or manual review with escalation and an operator's decision.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use zengine_domain::TenantId;
use zengine_storage::PaymentSettings;

use crate::helpers::{ADMIN_TOKEN, AppOptions, TestApp, error_code, spawn_app_with};
use crate::histories::record;

/// Waits for the payment workflow to finish, then records its history (and the order's) for
/// the replay test.
async fn record_payment(app: &TestApp, payment_id: &str, order_id: &str, name: &str) {
    let tenant = TenantId::parse("demo").unwrap();
    let id = zengine_domain::workflow_ids::payment(&tenant, payment_id);
    tokio::time::timeout(
        Duration::from_secs(30),
        app.temporal
            .get_workflow_handle::<zengine_workflows::PaymentWorkflow>(&id)
            .get_result(temporalio_client::WorkflowGetResultOptions::default()),
    )
    .await
    .expect("the payment workflow finishes")
    .unwrap();
    record(app, &id, &format!("payment__{name}")).await;
    let order = zengine_domain::workflow_ids::order(&tenant, order_id);
    record(app, &order, &format!("order__{name}")).await;
}

pub fn receipt(file: &str) -> Vec<u8> {
    let shared = std::env::var_os("ZENGINE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    std::fs::read(shared.join("data/ocr/dev").join(file)).expect("shared receipt images")
}

pub const BOUNDARY: &str = "zengine-test-boundary";

/// A `multipart/form-data` body (boundary [`BOUNDARY`]) with one file field.
pub fn multipart(field: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"r.img\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(
    app: &TestApp,
    order_id: &str,
    body: Vec<u8>,
    content_type: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!("{}/v1/orders/{order_id}/payments", app.address))
        .header("x-tenant-id", "demo")
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

pub async fn pay(app: &TestApp, order_id: &str, image: &[u8]) -> (StatusCode, Value) {
    let response = upload(
        app,
        order_id,
        multipart("image", image),
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        Some(ADMIN_TOKEN),
    )
    .await;
    (response.status(), response.json().await.unwrap())
}

async fn api(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .http
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-tenant-id", "demo");
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// A pickup order with one line of `total`.
pub async fn order(app: &TestApp, key: &str, total: &str) -> String {
    let response = api(
        app,
        reqwest::Method::POST,
        "/v1/orders",
        Some(json!({
            "client_order_key": key,
            "customer": {"phone": "+51 999 000 111"},
            "type": "pickup",
            "items": [{"name": "Pedido", "quantity": 1, "unit_price": total}],
        })),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["order_id"].as_str().unwrap().to_owned()
}

/// Polls the payment until it leaves PENDING.
pub async fn settled(app: &TestApp, payment_id: &str) -> Value {
    for _ in 0..300 {
        let response = api(
            app,
            reqwest::Method::GET,
            &format!("/v1/payments/{payment_id}"),
            None,
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let payment: Value = response.json().await.unwrap();
        if payment["status"] != "PENDING" {
            return payment;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("payment {payment_id} stayed PENDING");
}

async fn order_status(app: &TestApp, order_id: &str) -> String {
    let response = api(
        app,
        reqwest::Method::GET,
        &format!("/v1/orders/{order_id}"),
        None,
    )
    .await;
    let body: Value = response.json().await.unwrap();
    body["status"].as_str().unwrap().to_owned()
}

async fn review(app: &TestApp, payment_id: &str, decision: &str) -> reqwest::Response {
    api(
        app,
        reqwest::Method::POST,
        &format!("/v1/payments/{payment_id}/review"),
        Some(json!({"decision": decision, "reviewer": "ops@demo", "note": "checked the bank app"})),
    )
    .await
}

pub async fn app() -> TestApp {
    let app = spawn_app_with(AppOptions::default()).await;
    // The receipts in the shared set are dated 2025–2026: widen the window so their dates count
    // as "after the order"; escalate quickly.
    let db = &app.database.as_ref().unwrap().db;
    db.payments()
        .set_settings(
            &TenantId::parse("demo").unwrap(),
            &PaymentSettings {
                window_slack_minutes: 3 * 365 * 24 * 60,
                review_timeout_secs: 2,
                ..PaymentSettings::default()
            },
        )
        .await
        .unwrap();
    app
}

#[tokio::test]
async fn a_matching_receipt_pays_the_order_once() {
    let app = app().await;
    // r03: Yape, S/ 439, operation 41381753.
    let image = receipt("r03_yape-card_clean.png");
    let order_id = order(&app, "pay-1", "439.00").await;
    let (status, payment) = pay(&app, &order_id, &image).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{payment}");
    assert_eq!(payment["status"], "PENDING");
    let payment_id = payment["payment_id"].as_str().unwrap().to_owned();

    let payment = settled(&app, &payment_id).await;
    assert_eq!(payment["status"], "ASSIGNED", "{payment}");
    assert_eq!(payment["operation_code"], "41381753");
    assert_eq!(payment["amount"], "439.00");
    assert_eq!(order_status(&app, &order_id).await, "PAID");

    // The order workflow followed: PAID → PREPARING is a valid move for it now.
    let moved = api(
        &app,
        reqwest::Method::POST,
        &format!("/v1/orders/{order_id}/status"),
        Some(json!({"status": "PREPARING"})),
    )
    .await;
    assert_eq!(moved.status(), StatusCode::OK);
    record_payment(&app, &payment_id, &order_id, "receipt_accepted").await;

    // The same image again for the same order: the same payment, no second effect.
    let (status, again) = pay(&app, &order_id, &image).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["payment_id"], payment_id.as_str());
    assert_eq!(again["status"], "ASSIGNED");

    // The same receipt for another order of the same amount: a reused operation code.
    let other = order(&app, "pay-2", "439.00").await;
    let (status, dup) = pay(&app, &other, &image).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let dup = settled(&app, dup["payment_id"].as_str().unwrap()).await;
    assert_eq!(dup["status"], "REJECTED", "{dup}");
    assert!(
        dup["reasons"][0].as_str().unwrap().contains("duplicate"),
        "{dup}"
    );
    assert_eq!(order_status(&app, &other).await, "PENDING");

    let db = &app.database.as_ref().unwrap().db;
    let tenant = TenantId::parse("demo").unwrap();
    let paid = db
        .events()
        .list(&tenant, "Order.StatusChanged")
        .await
        .unwrap();
    assert_eq!(
        paid.iter().filter(|e| e.payload["to"] == "PAID").count(),
        1,
        "exactly one PAID transition"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_doubtful_receipt_waits_for_review_escalates_and_follows_the_decision() {
    let app = app().await;
    // r12: Yape, S/ 108, operation 42498810; the order says 120.00.
    let image = receipt("r12_yape-card_clean.png");
    let order_id = order(&app, "rev-1", "120.00").await;
    let (_, payment) = pay(&app, &order_id, &image).await;
    let payment_id = payment["payment_id"].as_str().unwrap().to_owned();
    let payment = settled(&app, &payment_id).await;
    assert_eq!(payment["status"], "MANUAL_REVIEW", "{payment}");
    assert!(
        payment["reasons"].to_string().contains("amount"),
        "the reason names the amount: {payment}"
    );
    assert!(!payment["raw_ocr"].as_str().unwrap().is_empty());
    assert_eq!(order_status(&app, &order_id).await, "PENDING");

    // The review queue lists it, and its receipt is the uploaded image.
    let queue = api(
        &app,
        reqwest::Method::GET,
        "/v1/payments?status=MANUAL_REVIEW&limit=200",
        None,
    )
    .await;
    assert_eq!(queue.status(), StatusCode::OK);
    let queue: Value = queue.json().await.unwrap();
    assert!(
        queue["payments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["payment_id"] == payment_id.as_str()),
        "{queue}"
    );
    let assigned = api(
        &app,
        reqwest::Method::GET,
        "/v1/payments?status=ASSIGNED&limit=200",
        None,
    )
    .await;
    let assigned: Value = assigned.json().await.unwrap();
    assert!(
        !assigned["payments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["payment_id"] == payment_id.as_str()),
        "{assigned}"
    );
    let shown = api(
        &app,
        reqwest::Method::GET,
        &format!("/v1/payments/{payment_id}/receipt"),
        None,
    )
    .await;
    assert_eq!(shown.status(), StatusCode::OK);
    assert_eq!(shown.headers()["content-type"], "image/png");
    assert_eq!(shown.bytes().await.unwrap().as_ref(), image.as_slice());

    // Nobody decides within the tenant's 2 s: one escalation.
    let db = &app.database.as_ref().unwrap().db;
    let tenant = TenantId::parse("demo").unwrap();
    let mut escalations = Vec::new();
    for _ in 0..100 {
        escalations = db
            .events()
            .list(&tenant, "Payment.ReviewEscalated")
            .await
            .unwrap();
        if !escalations.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(escalations.len(), 1);

    // Bad decisions are refused; approve pays the order.
    let bad = review(&app, &payment_id, "maybe").await;
    assert_eq!(
        error_code(bad, StatusCode::BAD_REQUEST).await,
        "invalid_field"
    );
    let approved = review(&app, &payment_id, "approve").await;
    assert_eq!(approved.status(), StatusCode::OK);
    let view: Value = approved.json().await.unwrap();
    assert_eq!(view["status"], "ASSIGNED", "{view}");
    assert_eq!(order_status(&app, &order_id).await, "PAID");
    record_payment(&app, &payment_id, &order_id, "review_escalated_approved").await;
    // A second decision on a decided payment is a conflict.
    let twice = review(&app, &payment_id, "reject").await;
    assert_eq!(error_code(twice, StatusCode::CONFLICT).await, "conflict");

    // Rejecting releases the operation code: r21 rejected for one order, then accepted for
    // the order it really pays.
    let image = receipt("r21_yape-card_clean.png"); // S/ 117
    let wrong = order(&app, "rev-2", "17.00").await;
    let (_, p) = pay(&app, &wrong, &image).await;
    let p = settled(&app, p["payment_id"].as_str().unwrap()).await;
    assert_eq!(p["status"], "MANUAL_REVIEW", "{p}");
    let rejected = review(&app, p["payment_id"].as_str().unwrap(), "reject").await;
    assert_eq!(rejected.status(), StatusCode::OK);
    assert_eq!(order_status(&app, &wrong).await, "PENDING");
    let right = order(&app, "rev-3", "117.00").await;
    let (_, p) = pay(&app, &right, &image).await;
    let p = settled(&app, p["payment_id"].as_str().unwrap()).await;
    assert_eq!(p["status"], "ASSIGNED", "{p}");
    app.shutdown().await;
}

#[tokio::test]
async fn bad_payment_requests_get_clear_errors_and_change_nothing() {
    let app = spawn_app_with(AppOptions {
        api: zengine_api::ApiSettings {
            max_upload_bytes: 256 * 1024,
            ..AppOptions::default().api
        },
        ..AppOptions::default()
    })
    .await;
    let order_id = order(&app, "bad-1", "10.00").await;
    let image = receipt("r03_yape-card_clean.png");
    let form = format!("multipart/form-data; boundary={BOUNDARY}");

    // Unauthenticated.
    let r = upload(&app, &order_id, multipart("image", &image), &form, None).await;
    assert_eq!(
        error_code(r, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let r = upload(
        &app,
        &order_id,
        multipart("image", &image),
        &form,
        Some("wrong"),
    )
    .await;
    assert_eq!(
        error_code(r, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    // Unknown order.
    let r = upload(
        &app,
        "nope",
        multipart("image", &image),
        &form,
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "not_found");
    // Not an image, wrong field, malformed multipart, wrong content type.
    let r = upload(
        &app,
        &order_id,
        multipart("image", b"%PDF-1.4 hello"),
        &form,
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = upload(
        &app,
        &order_id,
        multipart("photo", &image),
        &form,
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(
        error_code(r, StatusCode::BAD_REQUEST).await,
        "invalid_field"
    );
    let r = upload(
        &app,
        &order_id,
        b"--zengine-test-boundary\r\ngarbage".to_vec(),
        &form,
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(
        error_code(r, StatusCode::BAD_REQUEST).await,
        "invalid_field"
    );
    let r = upload(
        &app,
        &order_id,
        image.clone(),
        "image/png",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Oversized (the limit is 256 KiB here).
    let mut big = image.clone();
    big.resize(300 * 1024, 0);
    let r = upload(
        &app,
        &order_id,
        multipart("image", &big),
        &form,
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(
        error_code(r, StatusCode::PAYLOAD_TOO_LARGE).await,
        "payload_too_large"
    );
    // A media reference that does not exist, or is not one.
    for (body, status) in [
        (
            json!({"media_ref": "upload:med_missing"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"media_ref": "https://evil.example/x.png"}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"media": "upload:x"}), StatusCode::BAD_REQUEST),
    ] {
        let r = api(
            &app,
            reqwest::Method::POST,
            &format!("/v1/orders/{order_id}/payments"),
            Some(body),
        )
        .await;
        assert_eq!(r.status(), status);
    }
    // Nothing was recorded for the order.
    let r = api(
        &app,
        reqwest::Method::GET,
        &format!("/v1/orders/{order_id}/payments"),
        None,
    )
    .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["payments"], json!([]));
    // Reviews of unknown payments, malformed reviews.
    let r = review(&app, "pay_nope", "approve").await;
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "not_found");
    let r = api(
        &app,
        reqwest::Method::POST,
        "/v1/payments/pay_nope/review",
        Some(json!({"note": "no decision"})),
    )
    .await;
    assert_eq!(
        error_code(r, StatusCode::BAD_REQUEST).await,
        "malformed_json"
    );
    let r = api(&app, reqwest::Method::GET, "/v1/payments/pay_nope", None).await;
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "not_found");
    app.shutdown().await;
}

async fn upload_webchat_image(app: &TestApp, image: &[u8]) -> String {
    let response = app
        .http
        .post(format!("{}/v1/webchat/media", app.address))
        .header("x-tenant-id", "demo")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart("image", image))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["media_ref"].as_str().unwrap().to_owned()
}

async fn send_photo(app: &TestApp, session: &str, media_ref: &str) -> Value {
    let (status, body) = app
        .post_webchat_json(
            &uuid::Uuid::new_v4().to_string(),
            json!({"session_id": session, "text": "", "flow": "pay",
                   "media": {"kind": "image", "reference": media_ref}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_conversation_verifies_a_receipt_photo_and_hears_the_review() {
    use crate::flows::{chat, graph, publish, session};
    use crate::helpers::reply_texts;
    let app = app().await;
    publish(&app, "pay", graph(json!([
        {"id": "order", "type": "question", "text": "¿Número de pedido?", "save_as": "order_id", "next": "photo"},
        {"id": "photo", "type": "question", "text": "Envía la captura de tu Yape o Plin.",
         "expects": "image", "save_as": "receipt", "next": "verify"},
        {"id": "verify", "type": "command", "command": "payment.verify", "save_as": "payment",
         "params": {"order_id": "{{order_id}}", "image": "{{receipt.reference}}"},
         "next": "paid", "on_failure": "checking"},
        {"id": "paid", "type": "end", "text": "¡Pago confirmado! ({{payment.status}})"},
        {"id": "checking", "type": "end", "text": "Estamos revisando tu pago."}
    ]))).await;

    // r24: Yape S/ 54 for an order of 54.00 → paid within the conversation turn.
    let order_id = order(&app, "conv-1", "54.00").await;
    let s = session();
    chat(&app, &s, "pay", "hola").await;
    let asked = chat(&app, &s, "pay", &order_id).await;
    assert_eq!(reply_texts(&asked), ["Envía la captura de tu Yape o Plin."]);
    let media_ref = upload_webchat_image(&app, &receipt("r24_yape-card_clean.png")).await;
    let answer = send_photo(&app, &s, &media_ref).await;
    assert_eq!(reply_texts(&answer), ["¡Pago confirmado! (ASSIGNED)"]);
    assert_eq!(order_status(&app, &order_id).await, "PAID");

    // r06: S/ 26.25 for an order of 30.00 → "checking"; the operator approves; the customer
    // hears it through the conversation's outbox.
    let order_id = order(&app, "conv-2", "30.00").await;
    let s = session();
    chat(&app, &s, "pay", "hola").await;
    chat(&app, &s, "pay", &order_id).await;
    let media_ref = upload_webchat_image(&app, &receipt("r06_yape-card_clean.png")).await;
    let answer = send_photo(&app, &s, &media_ref).await;
    assert_eq!(reply_texts(&answer), ["Estamos revisando tu pago."]);
    let payments = api(
        &app,
        reqwest::Method::GET,
        &format!("/v1/orders/{order_id}/payments"),
        None,
    )
    .await;
    let payments: Value = payments.json().await.unwrap();
    let payment = &payments["payments"][0];
    assert_eq!(payment["status"], "MANUAL_REVIEW", "{payment}");
    let approved = review(&app, payment["payment_id"].as_str().unwrap(), "approve").await;
    assert_eq!(approved.status(), StatusCode::OK);
    let told = app.wait_outbox(&s, 0, 1).await;
    let told = told.last().unwrap().to_string();
    assert!(told.contains("fue confirmado"), "{told}");
    assert_eq!(order_status(&app, &order_id).await, "PAID");
    record(
        &app,
        &format!("demo/conversation/webchat/{s}"),
        "conversation__payment_verify_review",
    )
    .await;

    // A non-image upload is refused; an unknown tenant too.
    let r = app
        .http
        .post(format!("{}/v1/webchat/media", app.address))
        .header("x-tenant-id", "ghost")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart("image", &receipt("r24_yape-card_clean.png")))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "unknown_tenant");
    let r = app
        .http
        .post(format!("{}/v1/webchat/media", app.address))
        .header("x-tenant-id", "demo")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart("image", b"GIF89a not allowed"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    app.shutdown().await;
}

#[tokio::test]
async fn the_review_queue_and_receipts_refuse_bad_requests() {
    let app = spawn_app_with(AppOptions::default()).await;
    for (path, code) in [
        ("/v1/payments", StatusCode::BAD_REQUEST),
        ("/v1/payments?status=MAYBE", StatusCode::BAD_REQUEST),
        (
            "/v1/payments?status=MANUAL_REVIEW&limit=0",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/payments?status=MANUAL_REVIEW&limit=201",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/payments?status=MANUAL_REVIEW&limit=ten",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/payments?status=MANUAL_REVIEW&after=yesterday",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/payments?status=MANUAL_REVIEW&after=12.",
            StatusCode::BAD_REQUEST,
        ),
        ("/v1/payments/pay_nope/receipt", StatusCode::NOT_FOUND),
        (
            "/v1/conversations/handoffs?limit=0",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/conversations/handoffs?limit=lots",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/conversations/handoffs?extra=1",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let response = api(&app, reqwest::Method::GET, path, None).await;
        assert_eq!(response.status(), code, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }
    // An empty queue is an empty page, not an error.
    let empty = api(
        &app,
        reqwest::Method::GET,
        "/v1/payments?status=REJECTED",
        None,
    )
    .await;
    assert_eq!(empty.status(), StatusCode::OK);
    let empty: Value = empty.json().await.unwrap();
    assert_eq!(empty["next_after"], Value::Null, "{empty}");
    let handoffs = api(
        &app,
        reqwest::Method::GET,
        "/v1/conversations/handoffs",
        None,
    )
    .await;
    assert_eq!(handoffs.status(), StatusCode::OK);
    // Without a credential: 401, and nothing is told.
    for path in [
        "/v1/payments?status=MANUAL_REVIEW",
        "/v1/payments/pay_nope/receipt",
        "/v1/conversations/handoffs",
    ] {
        let response = app
            .http
            .get(format!("{}{path}", app.address))
            .header("x-tenant-id", "demo")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // The console's files are not built in the test tree: a clear 404, never a 500; no path
    // leaves the folder.
    for path in [
        "/console/",
        "/console/../Cargo.toml",
        "/console/%2e%2e/Cargo.toml",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let config: Value = app.get("/console/config.json").await.json().await.unwrap();
    assert_eq!(config["oidc"], Value::Null);
    app.shutdown().await;
}

/// The review queue shows a payment as soon as its row says MANUAL_REVIEW, a moment before the
/// payment workflow has taken the verification's result in. A review sent in that moment (here
/// sent while the receipt is still being read, which makes the moment as long as the OCR) is
/// held until the verification lands and then applied — not refused with "payment is PENDING".
#[tokio::test]
async fn a_review_sent_while_the_verification_lands_waits_for_it_instead_of_failing() {
    let app = app().await;
    // r21: Yape, S/ 117; the order says 17.00: it goes to review.
    let image = receipt("r21_yape-card_clean.png");
    let order_id = order(&app, "race-1", "17.00").await;
    let (_, payment) = pay(&app, &order_id, &image).await;
    let payment_id = payment["payment_id"].as_str().unwrap().to_owned();
    let tenant = TenantId::parse("demo").unwrap();
    let handle = app
        .temporal
        .get_workflow_handle::<zengine_workflows::PaymentWorkflow>(
            zengine_domain::workflow_ids::payment(&tenant, &payment_id),
        );
    let view = handle
        .execute_update(
            zengine_workflows::PaymentWorkflow::review,
            zengine_workflows::payment::Review {
                approve: false,
                reviewer: "ops@demo".into(),
                note: None,
            },
            temporalio_client::WorkflowExecuteUpdateOptions::default(),
        )
        .await
        .expect("the review waits for the verification, then applies");
    assert_eq!(view.status.to_string(), "REJECTED", "{view:?}");
    let payment = settled(&app, &payment_id).await;
    assert_eq!(payment["status"], "REJECTED", "{payment}");
    assert_eq!(payment["reviewed_by"], "ops@demo", "{payment}");
    assert_eq!(order_status(&app, &order_id).await, "PENDING");
    record_payment(&app, &payment_id, &order_id, "reviewed_while_verifying").await;
    app.shutdown().await;
}
