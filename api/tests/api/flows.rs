//! Conversation flows end to end: publishing and versions, every effect kind (commands, waits,
//! handoff, survey) and the three example flows, through the webchat API.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};
use zengine_domain::TenantId;

use crate::helpers::{
    ADMIN_TOKEN, AppOptions, TestApp, error_code, reply_texts, spawn_app, spawn_app_with,
};

pub fn session() -> String {
    format!("f-{}", uuid::Uuid::new_v4().simple())
}

/// Sends `text` in `session` (new conversations run `flow`) and returns the JSON reply.
pub async fn chat(app: &TestApp, session: &str, flow: &str, text: &str) -> Value {
    let key = uuid::Uuid::new_v4().to_string();
    let (status, body) = app
        .post_webchat_json(
            &key,
            json!({"session_id": session, "text": text, "flow": flow}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

pub async fn publish(app: &TestApp, name: &str, flow: Value) -> Value {
    let response = app
        .put_flow("demo", name, "", flow.to_string(), Some(ADMIN_TOKEN))
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

pub fn graph(nodes: Value) -> Value {
    json!({"schema_version": 1, "id": "ignored", "version": 99, "start": nodes[0]["id"], "nodes": nodes})
}

#[tokio::test]
async fn publishing_a_flow_needs_the_token_validates_and_versions() {
    let app = spawn_app().await;
    let good = graph(json!([{"id": "hi", "type": "end", "text": "v"}]));

    let no_token = app
        .put_flow("demo", "promo", "", good.to_string(), None)
        .await;
    assert_eq!(
        error_code(no_token, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let wrong = app
        .put_flow("demo", "promo", "", good.to_string(), Some("nope"))
        .await;
    assert_eq!(
        error_code(wrong, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let unknown = app
        .put_flow("nobody", "promo", "", good.to_string(), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(
        error_code(unknown, StatusCode::NOT_FOUND).await,
        "unknown_tenant"
    );
    let malformed = app
        .put_flow("demo", "promo", "", "{\"nodes\": [", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(
        error_code(malformed, StatusCode::BAD_REQUEST).await,
        "malformed_json"
    );
    let huge = app
        .put_flow(
            "demo",
            "promo",
            "",
            "x".repeat(70 * 1024),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(
        error_code(huge, StatusCode::PAYLOAD_TOO_LARGE).await,
        "payload_too_large"
    );

    let invalid = graph(json!([
        {"id": "a", "type": "message", "text": "Hola {{nombre}}", "next": "b"},
        {"id": "b", "type": "condition", "branches": [{"when": "x ==", "next": "a"}], "else": "zzz"}
    ]));
    let response = app
        .put_flow("demo", "promo", "", invalid.to_string(), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_flow");
    let details: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        details.contains(&"node `a`, field `text`: unknown variable `nombre`"),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("node `b`, field `branches[0].when`: bad expression")),
        "{details:?}"
    );
    assert!(
        details.contains(&"node `b`, field `else`: points at `zzz`, which does not exist"),
        "{details:?}"
    );

    assert_eq!(publish(&app, "promo", good.clone()).await["version"], 1);
    assert_eq!(publish(&app, "promo", good).await["version"], 2);
    let fetched: Value = app
        .http
        .get(format!("{}/v1/tenants/demo/flows/promo", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (fetched["id"].clone(), fetched["version"].clone()),
        (json!("promo"), json!(2))
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_management_api_is_off_without_a_configured_token() {
    let mut options = AppOptions::default();
    options.api.admin_token = String::new().into();
    let app = spawn_app_with(options).await;
    let response = app.put_flow("demo", "x", "", "{}", Some("")).await;
    assert_eq!(
        error_code(response, StatusCode::FORBIDDEN).await,
        "unauthorized"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_running_conversation_keeps_its_flow_version_and_new_ones_get_the_latest() {
    let app = spawn_app().await;
    let version = |text: &str| {
        graph(json!([
            {"id": "q", "type": "question", "text": text, "save_as": "a", "next": "e"},
            {"id": "e", "type": "end", "text": format!("{text} fin")}
        ]))
    };
    publish(&app, "pinned", version("v1")).await;
    let (old, new) = (session(), session());
    assert_eq!(
        reply_texts(&chat(&app, &old, "pinned", "hola").await),
        ["v1"]
    );

    publish(&app, "pinned", version("v2")).await;

    assert_eq!(
        reply_texts(&chat(&app, &old, "pinned", "x").await),
        ["v1 fin"]
    );
    assert_eq!(
        reply_texts(&chat(&app, &new, "pinned", "hola").await),
        ["v2"]
    );
    let (status, body) = app
        .post_webchat_json(
            "nf-1",
            json!({"session_id": session(), "text": "hola", "flow": "no-such-flow"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("no_published_flow"))
    );
    app.shutdown().await;
}

#[tokio::test]
async fn handoff_silences_the_bot_until_an_operator_returns_the_conversation() {
    let app = spawn_app().await;
    publish(&app, "support", graph(json!([
        {"id": "q", "type": "question", "text": "¿Tu nombre?", "save_as": "name", "next": "h"},
        {"id": "h", "type": "handoff", "text": "{{name}}, te paso con un asesor.", "queue": "soporte", "next": "back"},
        {"id": "back", "type": "end", "text": "De vuelta con el bot, {{name}}."}
    ]))).await;
    let s = session();
    chat(&app, &s, "support", "hola").await;

    let handed = chat(&app, &s, "support", "Ana").await;
    assert_eq!(reply_texts(&handed), ["Ana, te paso con un asesor."]);
    assert_eq!(handed["mode"], "AGENT_HANDOFF");
    let silent = chat(&app, &s, "support", "¿hay alguien?").await;
    assert!(reply_texts(&silent).is_empty());
    assert_eq!(silent["mode"], "AGENT_HANDOFF");

    let unauthorized = app.return_to_bot(&s, None).await;
    assert_eq!(
        error_code(unauthorized, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let returned = app.return_to_bot(&s, Some(ADMIN_TOKEN)).await;
    assert_eq!(returned.status(), StatusCode::OK);
    let returned: Value = returned.json().await.unwrap();
    assert_eq!(returned["replies"][0]["text"], "De vuelta con el bot, Ana.");
    let outbox = app.outbox(&s, 0).await;
    assert_eq!(
        outbox["messages"][0]["reply"]["text"],
        "De vuelta con el bot, Ana."
    );
    assert_eq!(
        app.outbox(&s, outbox["messages"][0]["seq"].as_u64().unwrap())
            .await["messages"],
        json!([])
    );

    let again = app.return_to_bot(&s, Some(ADMIN_TOKEN)).await;
    assert_eq!(error_code(again, StatusCode::CONFLICT).await, "conflict");
    let missing = app
        .return_to_bot("no-such-session", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(
        error_code(missing, StatusCode::NOT_FOUND).await,
        "not_found"
    );
    let db = &app.database.as_ref().unwrap().db;
    let events = db
        .events()
        .list(&TenantId::parse("demo").unwrap(), "Conversation.HandedOff")
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].payload["queue"], "soporte");
    app.shutdown().await;
}

/// A loopback stand-in for a tenant's backend (no local peer exists for "any tenant API").
pub async fn fake_backend() -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let record = seen.clone();
    let router = axum::Router::new().route(
        "/orders",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let record = record.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                record.lock().unwrap().push((key, body.clone()));
                (
                    AxumStatus::CREATED,
                    Json(json!({"id": "A-7", "item": body["item"]})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://127.0.0.1:{port}"), seen)
}

#[tokio::test]
async fn http_request_commands_take_the_success_or_the_failure_edge() {
    let app = spawn_app().await;
    let (backend, seen) = fake_backend().await;
    let db = &app.database.as_ref().unwrap().db;
    db.tenants()
        .set_allowed_http_hosts(&TenantId::parse("demo").unwrap(), &["127.0.0.1".into()])
        .await
        .unwrap();
    let flow = |url: String| {
        graph(json!([
            {"id": "q", "type": "question", "text": "¿Qué pides?", "save_as": "item", "next": "call"},
            {"id": "call", "type": "command", "command": "http_request", "save_as": "order",
             "params": {"method": "POST", "url": url, "body": {"item": "{{item}}"}},
             "next": "ok", "on_failure": "ko"},
            {"id": "ok", "type": "end", "text": "Pedido {{order.body.id}} ({{order.body.item}})"},
            {"id": "ko", "type": "end", "text": "Falló: {{last_error}}"}
        ]))
    };
    publish(&app, "orders", flow(format!("{backend}/orders"))).await;
    publish(&app, "missing", flow(format!("{backend}/missing"))).await;
    publish(&app, "forbidden", flow("http://localhost:9/orders".into())).await;

    let s = session();
    chat(&app, &s, "orders", "hola").await;
    assert_eq!(
        reply_texts(&chat(&app, &s, "orders", "pizza").await),
        ["Pedido A-7 (pizza)"]
    );
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0]
            .0
            .starts_with(&format!("demo/conversation/webchat/{s}/effect-")),
        "{calls:?}"
    );
    assert_eq!(calls[0].1, json!({"item": "pizza"}));

    let s = session();
    chat(&app, &s, "missing", "hola").await;
    assert_eq!(
        reply_texts(&chat(&app, &s, "missing", "pizza").await),
        ["Falló: HTTP 404"]
    );

    let s = session();
    chat(&app, &s, "forbidden", "hola").await;
    let denied = reply_texts(&chat(&app, &s, "forbidden", "pizza").await);
    assert!(
        denied[0].contains("not in the tenant's allowed_http_hosts"),
        "{denied:?}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_barber_example_books_waits_durably_and_collects_the_survey() {
    let app = spawn_app().await;
    let s = session();
    let first = chat(&app, &s, "barber", "hola").await;
    assert!(reply_texts(&first)[0].contains("Barbería Don Lucho"));
    chat(&app, &s, "barber", "combo").await;
    chat(&app, &s, "barber", "2").await;
    let bad_date = chat(&app, &s, "barber", "31/02/2031").await;
    assert!(reply_texts(&bad_date)[0].contains("AAAA"), "{bad_date}");
    chat(&app, &s, "barber", "15/03/2031").await;
    chat(&app, &s, "barber", "15:00").await;
    let booked = chat(&app, &s, "barber", "+51 999 888 777").await;
    assert_eq!(
        reply_texts(&booked),
        ["Cita: combo con mario el 2031-03-15 a las 15:00. Te escribiremos al +51999888777."]
    );

    // The 2-second wait runs in the workflow; its replies arrive through the outbox.
    let later = app.wait_outbox(&s, 0, 2).await;
    assert_eq!(
        later[0]["reply"]["text"],
        "Recuerda llegar 5 minutos antes. ¡Te esperamos!"
    );
    assert!(
        later[1]["reply"]["text"]
            .as_str()
            .unwrap()
            .contains("del 1 al 5")
    );
    chat(&app, &s, "barber", "5").await;
    let thanks = chat(&app, &s, "barber", "Excelente corte").await;
    assert_eq!(reply_texts(&thanks), ["¡Gracias por tu opinión!"]);

    let db = &app.database.as_ref().unwrap().db;
    let demo = TenantId::parse("demo").unwrap();
    let events = db
        .events()
        .list(&demo, "Conversation.SurveyCompleted")
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].payload,
        json!({"rating": 5, "comment": "Excelente corte"})
    );
    assert_eq!(
        db.events().survey_summary(&demo).await.unwrap(),
        (1, Some(5.0))
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_hotel_example_reserves_with_validation_and_totals() {
    let app = spawn_app().await;
    let s = session();
    chat(&app, &s, "hotel", "hola").await;
    chat(&app, &s, "hotel", "10/01/2031").await;
    let too_many = chat(&app, &s, "hotel", "45").await;
    assert_eq!(
        reply_texts(&too_many),
        [
            "Reservamos de 1 a 30 noches por este canal.",
            "¿Cuántas noches?"
        ]
    );
    chat(&app, &s, "hotel", "3").await;
    chat(&app, &s, "hotel", "doble").await;
    chat(&app, &s, "hotel", "Ana Torres").await;
    let bad_email = chat(&app, &s, "hotel", "ana-at-example").await;
    assert!(reply_texts(&bad_email)[0].contains("correo"));
    let confirm = chat(&app, &s, "hotel", "ana@example.com").await;
    assert_eq!(
        confirm["replies"][0],
        json!({"type": "buttons", "text": "Ana Torres: habitación doble, 3 noche(s) desde el 2031-01-10. Total S/ 720. ¿Confirmo?",
               "buttons": [{"id": "si", "title": "Confirmar"}, {"id": "no", "title": "Cancelar"}]})
    );
    let booked = chat(&app, &s, "hotel", "Confirmar").await;
    assert!(reply_texts(&booked)[0].contains("¡Listo, Ana Torres!"));
    app.shutdown().await;
}

#[tokio::test]
async fn the_restaurant_example_creates_a_real_order_and_hands_the_payment_to_review() {
    use temporalio_client::WorkflowQueryOptions;
    use zengine_workflows::OrderWorkflow;
    let app = spawn_app().await;
    let s = session();
    let welcome = chat(&app, &s, "restaurant", "hola").await;
    assert_eq!(welcome["replies"][0]["type"], "media");
    assert_eq!(
        welcome["replies"][2]["type"], "list",
        "4 options come as a list: {welcome}"
    );
    chat(&app, &s, "restaurant", "lomo").await;
    let more = chat(&app, &s, "restaurant", "2").await;
    assert!(
        reply_texts(&more)[0].contains("Llevas: 2 x lomo; (S/ 56)"),
        "{more}"
    );
    chat(&app, &s, "restaurant", "si").await;
    chat(&app, &s, "restaurant", "chicha").await;
    chat(&app, &s, "restaurant", "1").await;
    chat(&app, &s, "restaurant", "no").await;
    chat(&app, &s, "restaurant", "delivery").await;
    chat(&app, &s, "restaurant", "-12.12, -77.03").await;
    let summary = chat(&app, &s, "restaurant", "+51 987 654 321").await;
    assert_eq!(
        reply_texts(&summary)[0],
        "Tu pedido: 2 x lomo; 1 x chicha; Total: S/ 62 (delivery)."
    );

    let not_an_image = chat(&app, &s, "restaurant", "ya pagué").await;
    assert!(reply_texts(&not_an_image)[0].contains("Necesito la foto"));
    // A real Yape screenshot of S/ 54 for an order of S/ 62: read by OCR, it does not match,
    // so the payment waits for a person and the flow hands the customer to an agent.
    let upload = app
        .http
        .post(format!("{}/v1/webchat/media", app.address))
        .header("x-tenant-id", "demo")
        .header("content-type", "multipart/form-data; boundary=b0undary")
        .body({
            let shared = std::env::var_os("ZENGINE_SHARED_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| {
                    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared")
                });
            let image = std::fs::read(shared.join("data/ocr/dev/r24_yape-card_clean.png")).unwrap();
            let mut body = b"--b0undary\r\nContent-Disposition: form-data; name=\"image\"; filename=\"y.png\"\r\n\r\n".to_vec();
            body.extend_from_slice(&image);
            body.extend_from_slice(b"\r\n--b0undary--\r\n");
            body
        })
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), StatusCode::CREATED);
    let media: Value = upload.json().await.unwrap();
    let (status, handed) = app
        .post_webchat_json("r-img", json!({"session_id": s, "text": "", "media": {"kind": "image", "reference": media["media_ref"]}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{handed}");
    assert_eq!(handed["mode"], "AGENT_HANDOFF");
    let text = reply_texts(&handed)[0].clone();
    assert!(
        text.starts_with("Pedido N° 1001 registrado (S/ 62.00)"),
        "{text}"
    );

    let db = &app.database.as_ref().unwrap().db;
    let demo = TenantId::parse("demo").unwrap();
    let orders = db.orders().list(&demo, Default::default()).await.unwrap();
    assert!(orders.is_empty(), "limit 0 lists nothing");
    let orders = db
        .orders()
        .list(
            &demo,
            zengine_storage::OrderFilter {
                limit: 5,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(orders.len(), 1);
    let order = &orders[0];
    assert_eq!(
        (order.total.0, order.customer_phone.as_str()),
        (6200, "+51987654321")
    );
    assert_eq!(
        order
            .items
            .iter()
            .map(|l| (l.name.as_str(), l.quantity))
            .collect::<Vec<_>>(),
        [("Lomo saltado", 2), ("Chicha morada", 1)]
    );
    assert_eq!(order.location.unwrap().lat, -12.12);
    let payments = db
        .payments()
        .list_for_order(&demo, &order.order_id)
        .await
        .unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(
        payments[0].status,
        zengine_domain::payment::PaymentStatus::ManualReview
    );
    assert_eq!(payments[0].amount, Some(zengine_domain::money::Cents(5400)));
    // Its lifecycle workflow was started by the conversation and outlives it.
    let view = app
        .temporal
        .get_workflow_handle::<OrderWorkflow>(format!("demo/order/{}", order.order_id))
        .query(OrderWorkflow::status, (), WorkflowQueryOptions::default())
        .await
        .unwrap();
    assert_eq!(view.status, zengine_domain::order::OrderStatus::Pending);
    app.shutdown().await;
}

#[tokio::test]
async fn long_conversations_continue_as_new_without_losing_state() {
    use temporalio_client::{WorkflowDescribeOptions, WorkflowQueryOptions};
    use zengine_workflows::ConversationWorkflow;
    let mut options = AppOptions::default();
    options.api.conversation_history_limit = 25;
    let app = spawn_app_with(options).await;
    publish(&app, "loop", graph(json!([
        {"id": "name", "type": "question", "text": "¿Nombre?", "save_as": "name", "next": "init"},
        {"id": "init", "type": "set_variable", "variable": "n", "value": "0", "next": "ask"},
        {"id": "ask", "type": "question", "text": "{{name}}, van {{n}}. ¿Otro?", "save_as": "x", "next": "inc"},
        {"id": "inc", "type": "set_variable", "variable": "n", "value": "n + 1", "next": "ask"}
    ]))).await;
    let s = session();
    let id = format!("demo/conversation/webchat/{s}");
    chat(&app, &s, "loop", "hola").await;
    chat(&app, &s, "loop", "Ana").await;
    let handle = app
        .temporal
        .get_workflow_handle::<ConversationWorkflow>(&id);
    let first_run = handle
        .describe(WorkflowDescribeOptions::default())
        .await
        .unwrap()
        .raw()
        .workflow_execution_info
        .clone()
        .unwrap()
        .execution
        .unwrap()
        .run_id;

    let mut last = json!(null);
    for i in 0..20 {
        last = chat(&app, &s, "loop", &format!("m{i}")).await;
    }

    assert_eq!(
        reply_texts(&last),
        ["Ana, van 20. ¿Otro?"],
        "state survived continue-as-new"
    );
    assert_eq!(last["turn"], 22);
    let now = handle
        .describe(WorkflowDescribeOptions::default())
        .await
        .unwrap()
        .raw()
        .workflow_execution_info
        .clone()
        .unwrap();
    assert_ne!(
        now.execution.unwrap().run_id,
        first_run,
        "the conversation continued as new"
    );
    assert!(
        now.history_length < 40,
        "history stays bounded: {}",
        now.history_length
    );
    let status = handle
        .query(
            ConversationWorkflow::status,
            (),
            WorkflowQueryOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(status.turns, 22);
    app.shutdown().await;
}

#[tokio::test]
async fn ai_analyze_routes_by_intent_and_sentiment() {
    let app = spawn_app().await;
    publish(&app, "triage", graph(json!([
        {"id": "ask", "type": "question", "text": "¿En qué te ayudo?", "save_as": "need", "next": "analyze"},
        {"id": "analyze", "type": "command", "command": "ai.analyze", "save_as": "analysis",
         "params": {"text": "{{need}}", "intents": {"order": ["pedido", "quiero"], "complaint": ["reclamo", "queja"]}},
         "next": "route", "on_failure": "agent"},
        {"id": "route", "type": "condition", "branches": [
            {"when": "analysis.intent == 'complaint' or analysis.sentiment == 'negative'", "next": "agent"},
            {"when": "analysis.intent == 'order'", "next": "order"}
         ], "else": "other"},
        {"id": "order", "type": "end", "text": "Tomo tu pedido ({{analysis.entities.numbers.0}} unidades)."},
        {"id": "other", "type": "end", "text": "Cuéntame más."},
        {"id": "agent", "type": "handoff", "text": "Te paso con un asesor.", "next": "other"}
    ]))).await;
    let s = session();
    chat(&app, &s, "triage", "hola").await;
    assert_eq!(
        reply_texts(&chat(&app, &s, "triage", "Quiero un pedido de 3 pizzas").await),
        ["Tomo tu pedido (3 unidades)."]
    );
    let s = session();
    chat(&app, &s, "triage", "hola").await;
    let angry = chat(&app, &s, "triage", "Pésimo servicio, llegó tarde").await;
    assert_eq!(
        (reply_texts(&angry), angry["mode"].clone()),
        (
            vec!["Te paso con un asesor.".to_owned()],
            json!("AGENT_HANDOFF")
        )
    );
    app.shutdown().await;
}

/// The flow studio's API: a draft is checked (every problem pinned to its node and field) and
/// previewed with the workflow's interpreter, commands stubbed, without publishing or starting
/// anything; only the tenant's admins may, and bad input gets a clear error.
#[tokio::test]
async fn a_draft_is_validated_and_previewed_without_publishing() {
    use crate::auth::{call, hs256_options, token};
    use reqwest::Method;
    let mut options = hs256_options();
    options.run_worker = false;
    let app = spawn_app_with(options).await;
    let admin = token("demo", "admin");
    let validate = "/v1/tenants/demo/flows/studio/validate";
    let simulate = "/v1/tenants/demo/flows/studio/simulate";

    let broken = graph(json!([
        {"id": "a", "type": "message", "text": "Hola {{nombre}}", "next": "b"},
        {"id": "b", "type": "condition", "branches": [{"when": "x ==", "next": "a"}], "else": "zzz"}
    ]));
    let r = call(
        &app,
        Method::POST,
        validate,
        Some(&admin),
        None,
        Some(broken),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["valid"], false, "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e["node"] == "a"
            && e["field"] == "text"
            && e["message"] == "unknown variable `nombre`"),
        "{body}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e["node"] == "b" && e["field"] == "else"),
        "{body}"
    );

    let draft = graph(json!([
        {"id": "ask", "type": "question", "text": "¿Cuántas pizzas?", "save_as": "n", "next": "order"},
        {"id": "order", "type": "command", "command": "order.create", "save_as": "created",
         "params": {"items": ["pizza:{{n}}"]}, "next": "ok", "on_failure": "sorry"},
        {"id": "ok", "type": "end", "text": "Pedido {{created.order_id}}"},
        {"id": "sorry", "type": "handoff", "text": "Te paso con alguien", "queue": "ventas"}
    ]));
    let r = call(
        &app,
        Method::POST,
        validate,
        Some(&admin),
        None,
        Some(draft.clone()),
    )
    .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"valid": true, "errors": []}));

    // Preview: the command is stubbed as the author says, the path and variables are shown.
    let preview = |stubs: Value| json!({"flow": draft, "inputs": ["hola", "2"], "stubs": stubs});
    let ok = preview(
        json!({"outcomes": {"order.create": {"ok": true, "value": {"order_id": "ORD-9"}}}}),
    );
    let r = call(&app, Method::POST, simulate, Some(&admin), None, Some(ok)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    assert_eq!(
        t["turns"][0]["events"],
        json!([{"kind": "reply", "text": "¿Cuántas pizzas?"}])
    );
    assert_eq!(t["turns"][0]["state"]["node"], "ask", "{t}");
    let second = &t["turns"][1];
    assert_eq!(second["events"][0]["kind"], "command", "{t}");
    assert_eq!(second["events"][0]["node"], "order");
    assert_eq!(second["events"][0]["params"]["items"], json!(["pizza:2"]));
    assert_eq!(
        second["events"][1],
        json!({"kind": "reply", "text": "Pedido ORD-9"})
    );
    assert_eq!(second["vars"]["n"], "2");
    assert_eq!(t["state"]["state"], "idle", "{t}");
    // By default commands fail: the failure edge hands off, the next input is not answered.
    let failing = json!({"flow": draft, "inputs": ["hola", "2", "¿hola?"]});
    let r = call(
        &app,
        Method::POST,
        simulate,
        Some(&admin),
        None,
        Some(failing),
    )
    .await;
    let t: Value = r.json().await.unwrap();
    assert_eq!(
        t["turns"][1]["events"][2],
        json!({"kind": "handoff", "node": "sorry", "queue": "ventas"}),
        "{t}"
    );
    assert_eq!(t["turns"][2]["events"], json!([{"kind": "with_agent"}]));
    assert_eq!(t["mode"], "AGENT_HANDOFF");

    // Nothing was published or started.
    let r = call(
        &app,
        Method::GET,
        "/v1/tenants/demo/flows/studio",
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Without a draft the published flow runs; with none published, 404.
    let published = json!({"inputs": ["hola"]});
    let r = call(
        &app,
        Method::POST,
        simulate,
        Some(&admin),
        None,
        Some(published.clone()),
    )
    .await;
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "not_found");
    let r = call(
        &app,
        Method::POST,
        &format!(
            "/v1/tenants/demo/flows/{}/simulate",
            zengine_domain::flow::demo_flow().id
        ),
        Some(&admin),
        None,
        Some(published.clone()),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    assert!(
        !t["turns"][0]["events"].as_array().unwrap().is_empty(),
        "{t}"
    );

    // Bad input: an invalid draft, no inputs, too many or too long inputs, unknown fields,
    // malformed JSON.
    for (body, status, code) in [
        (
            json!({"flow": graph(json!([{"id": "a", "type": "nope"}])), "inputs": ["x"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_flow",
        ),
        (
            json!({"flow": draft, "inputs": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"flow": draft, "inputs": vec!["x"; 101]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"flow": draft, "inputs": ["x".repeat(4097)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"flow": draft, "inputs": ["x"], "run_for_real": true}),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ] {
        let r = call(&app, Method::POST, simulate, Some(&admin), None, Some(body)).await;
        assert_eq!(error_code(r, status).await, code);
    }
    let r = app
        .http
        .post(format!("{}{validate}", app.address))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"nodes\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(r, StatusCode::BAD_REQUEST).await,
        "malformed_json"
    );

    // Only the tenant's admins: no credential, a viewer, another tenant's admin (a 404, as
    // for every path naming a tenant that is not the caller's).
    crate::auth::add_tenant(&app, "studio-other").await;
    for (bearer, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(token("demo", "viewer")), StatusCode::FORBIDDEN),
        (Some(token("studio-other", "admin")), StatusCode::NOT_FOUND),
    ] {
        for path in [validate, simulate] {
            let r = call(
                &app,
                Method::POST,
                path,
                bearer.as_deref(),
                None,
                Some(json!({"flow": draft, "inputs": ["x"]})),
            )
            .await;
            assert_eq!(r.status(), status, "{path} {bearer:?}");
        }
    }
    app.shutdown().await;
}

/// Before a draft ships, the conversations it would change: the customer messages of the
/// tenant's latest conversations of the flow, read from their (encrypted) histories, replayed
/// through the version each ran and through the draft. Conversations of other flows and of
/// other tenants are not read.
#[tokio::test]
async fn a_draft_is_replayed_against_recent_conversations_before_it_ships() {
    use crate::auth::{call, hs256_options, token};
    use reqwest::Method;
    let app = spawn_app_with(hs256_options()).await;
    let admin = token("demo", "admin");
    let flow = "impact";
    publish(
        &app,
        flow,
        graph(json!([
            {"id": "ask", "type": "question", "text": "¿Tu teléfono?", "save_as": "phone", "next": "done"},
            {"id": "done", "type": "end", "text": "Gracias {{phone}}"}
        ])),
    )
    .await;
    let draft = graph(json!([
        {"id": "ask", "type": "question", "text": "¿Tu teléfono?", "save_as": "phone", "next": "check"},
        {"id": "check", "type": "condition", "branches": [{"when": "phone == '999'", "next": "done"}], "else": "agent"},
        {"id": "done", "type": "end", "text": "Gracias {{phone}}"},
        {"id": "agent", "type": "handoff", "text": "Te paso con un agente"}
    ]));
    for answer in ["999", "123", "555"] {
        let s = session();
        chat(&app, &s, flow, "hola").await;
        chat(&app, &s, flow, answer).await;
    }
    // A conversation of the tenant's main flow is not one of them.
    chat(
        &app,
        &session(),
        &zengine_domain::flow::demo_flow().id,
        "hola",
    )
    .await;

    let path = format!("/v1/tenants/demo/flows/{flow}/impact");
    let mut report = Value::Null;
    // Listing workflows is eventually consistent: wait until all three are visible.
    for _ in 0..50 {
        let r = call(
            &app,
            Method::POST,
            &path,
            Some(&admin),
            None,
            Some(json!({"flow": draft})),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        report = r.json().await.unwrap();
        if report["examined"] == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(report["examined"], 3, "{report}");
    assert_eq!(report["changed"], 2, "{report}");
    assert_eq!(report["by_node"], json!({"ask": 2}), "{report}");
    let changed = report["conversations"].as_array().unwrap();
    let mut inputs: Vec<&str> = changed
        .iter()
        .map(|c| c["input"].as_str().unwrap())
        .collect();
    inputs.sort_unstable();
    assert_eq!(inputs, ["123", "555"]);
    for c in changed {
        assert_eq!(c["turn"], 1);
        assert_eq!(c["version"], 1);
        assert_eq!(c["at_node"], "ask");
        assert_eq!(
            c["published"],
            json!([{"kind": "reply", "text": format!("Gracias {}", c["input"].as_str().unwrap())}])
        );
        assert_eq!(c["draft"][1]["kind"], "handoff", "{c}");
        assert!(
            c["workflow_id"].as_str().unwrap().starts_with("demo/"),
            "{c}"
        );
    }
    // The draft itself is identical to the published graph: nothing would change.
    let same = graph(json!([
        {"id": "ask", "type": "question", "text": "¿Tu teléfono?", "save_as": "phone", "next": "done"},
        {"id": "done", "type": "end", "text": "Gracias {{phone}}"}
    ]));
    let r = call(
        &app,
        Method::POST,
        &path,
        Some(&admin),
        None,
        Some(json!({"flow": same, "limit": 2})),
    )
    .await;
    let same_report: Value = r.json().await.unwrap();
    assert_eq!(same_report["examined"], 2, "{same_report}");
    assert_eq!(same_report["changed"], 0, "{same_report}");

    // Bad input and other callers.
    for (body, status, code) in [
        (
            json!({"flow": draft, "limit": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"flow": draft, "limit": 201}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"flow": graph(json!([{"id": "a", "type": "nope"}]))}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_flow",
        ),
        (
            json!({"draft": draft}),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ] {
        let r = call(&app, Method::POST, &path, Some(&admin), None, Some(body)).await;
        assert_eq!(error_code(r, status).await, code);
    }
    crate::auth::add_tenant(&app, "impact-other").await;
    for (bearer, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(token("demo", "operator")), StatusCode::FORBIDDEN),
        (Some(token("impact-other", "admin")), StatusCode::NOT_FOUND),
    ] {
        let r = call(
            &app,
            Method::POST,
            &path,
            bearer.as_deref(),
            None,
            Some(json!({"flow": draft})),
        )
        .await;
        assert_eq!(r.status(), status, "{bearer:?}");
    }
    // Another tenant's admin asking about its own flow of that name sees none of demo's.
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/tenants/impact-other/flows/{flow}/impact"),
        Some(&token("impact-other", "admin")),
        None,
        Some(json!({"flow": draft})),
    )
    .await;
    let theirs: Value = r.json().await.unwrap();
    assert_eq!(theirs["examined"], 0, "{theirs}");
    app.shutdown().await;
}

/// The flow studio's history: each version keeps who published it, any version can be read
/// back and compared with another node by node, and rolling back is publishing an old one.
#[tokio::test]
async fn versions_keep_their_publisher_compare_node_by_node_and_roll_back() {
    use crate::auth::{call, hs256_options, token};
    use reqwest::Method;
    let mut options = hs256_options();
    options.run_worker = false;
    let app = spawn_app_with(options).await;
    let admin = token("demo", "admin");
    let put = |flow: Value| {
        let admin = admin.clone();
        let app = &app;
        async move {
            let r = call(
                app,
                Method::PUT,
                "/v1/tenants/demo/flows/history",
                Some(&admin),
                None,
                Some(flow),
            )
            .await;
            assert_eq!(r.status(), StatusCode::CREATED);
            r.json::<Value>().await.unwrap()["version"]
                .as_u64()
                .unwrap()
        }
    };
    let v1 = graph(json!([
        {"id": "ask", "type": "question", "text": "¿Nombre?", "save_as": "name", "next": "bye"},
        {"id": "bye", "type": "end", "text": "Chau {{name}}"}
    ]));
    let v2 = graph(json!([
        {"id": "ask", "type": "question", "text": "¿Cómo te llamas?", "save_as": "name", "next": "thanks"},
        {"id": "thanks", "type": "end", "text": "Gracias {{name}}"}
    ]));
    assert_eq!(put(v1).await, 1);
    assert_eq!(put(v2).await, 2);

    let r = call(
        &app,
        Method::GET,
        "/v1/tenants/demo/flows",
        Some(&admin),
        None,
        None,
    )
    .await;
    let flows: Value = r.json().await.unwrap();
    let history = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["flow_id"] == "history")
        .unwrap()
        .clone();
    assert_eq!(
        history["versions"][0]["published_by"], "admin@demo",
        "{history}"
    );
    assert_eq!(history["versions"][1]["version"], 2);

    let r = call(
        &app,
        Method::GET,
        "/v1/tenants/demo/flows/history/versions/1",
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["version"], 1);
    assert_eq!(first["nodes"][1]["id"], "bye");

    let r = call(
        &app,
        Method::GET,
        "/v1/tenants/demo/flows/history/diff?from=1&to=2",
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let diff: Value = r.json().await.unwrap();
    assert_eq!(diff["added"][0]["id"], "thanks", "{diff}");
    assert_eq!(diff["removed"][0]["id"], "bye", "{diff}");
    assert_eq!(diff["changed"][0]["id"], "ask", "{diff}");
    assert_eq!(diff["changed"][0]["from"]["text"], "¿Nombre?");
    assert_eq!(diff["changed"][0]["to"]["next"], "thanks");
    assert_eq!(diff["fields"], json!([]));

    // Roll back: publish version 1 again; it is version 3 and nothing differs from 1.
    assert_eq!(put(first).await, 3);
    let r = call(
        &app,
        Method::GET,
        "/v1/tenants/demo/flows/history/diff?from=1&to=3",
        Some(&admin),
        None,
        None,
    )
    .await;
    let diff: Value = r.json().await.unwrap();
    assert_eq!(
        diff,
        json!({"from": 1, "to": 3, "added": [], "removed": [], "changed": [], "fields": []})
    );

    for (path, status) in [
        (
            "/v1/tenants/demo/flows/history/versions/9",
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/tenants/demo/flows/history/versions/0",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/tenants/demo/flows/history/versions/x",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/tenants/demo/flows/history/diff?from=1&to=9",
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/tenants/demo/flows/history/diff?from=1",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/tenants/demo/flows/history/diff?from=1&to=2&x=1",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/tenants/demo/flows/nothing/versions/1",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let r = call(&app, Method::GET, path, Some(&admin), None, None).await;
        assert_eq!(r.status(), status, "{path}");
    }
    crate::auth::add_tenant(&app, "history-other").await;
    for (bearer, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(token("history-other", "admin")), StatusCode::NOT_FOUND),
        (Some(token("demo", "viewer")), StatusCode::OK),
    ] {
        let r = call(
            &app,
            Method::GET,
            "/v1/tenants/demo/flows/history/versions/1",
            bearer.as_deref(),
            None,
            None,
        )
        .await;
        assert_eq!(r.status(), status, "{bearer:?}");
    }
    app.shutdown().await;
}

/// A flow's draft is saved as written (half done is fine, with its validation in the answer),
/// read back by viewers, replaced, discarded, and never touches the published versions; only
/// the tenant's admins write it, and a flow name must fit a URL and a `main_flow_id`.
#[tokio::test]
async fn a_draft_is_saved_as_written_read_back_and_discarded_without_publishing() {
    use crate::auth::{call, hs256_options, token};
    use reqwest::Method;
    let mut options = hs256_options();
    options.run_worker = false;
    let app = spawn_app_with(options).await;
    let admin = token("demo", "admin");
    let path = "/v1/tenants/demo/flows/drafty/draft";
    let r = call(&app, Method::GET, path, Some(&admin), None, None).await;
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "not_found");

    let half = json!({"schema_version": 1, "start": "a", "nodes": [
        {"id": "a", "type": "message", "text": "Hola {{nombre}}", "next": "b"}
    ]});
    let r = call(
        &app,
        Method::PUT,
        path,
        Some(&admin),
        None,
        Some(half.clone()),
    )
    .await;
    let status = r.status();
    let saved: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["saved_by"], "admin@demo");
    assert_eq!(saved["validation"]["valid"], false, "{saved}");
    assert!(
        saved["validation"]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["node"] == "a" && e["field"] == "next"),
        "{saved}"
    );
    let r = call(
        &app,
        Method::GET,
        path,
        Some(&token("demo", "viewer")),
        None,
        None,
    )
    .await;
    let draft: Value = r.json().await.unwrap();
    assert_eq!(draft["definition"], half, "{draft}");
    assert_eq!(draft["saved_by"], "admin@demo");

    let whole = graph(json!([{"id": "a", "type": "end", "text": "listo"}]));
    let r = call(
        &app,
        Method::PUT,
        path,
        Some(&admin),
        None,
        Some(whole.clone()),
    )
    .await;
    let saved: Value = r.json().await.unwrap();
    assert_eq!(saved["validation"], json!({"valid": true, "errors": []}));
    let r = call(&app, Method::GET, path, Some(&admin), None, None).await;
    assert_eq!(r.json::<Value>().await.unwrap()["definition"], whole);
    // Nothing was published.
    let r = call(
        &app,
        Method::GET,
        "/v1/tenants/demo/flows/drafty",
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Writers are the tenant's admins; other tenants do not see it.
    crate::auth::add_tenant(&app, "drafty-other").await;
    for (bearer, method, status) in [
        (None, Method::PUT, StatusCode::UNAUTHORIZED),
        (
            Some(token("demo", "operator")),
            Method::PUT,
            StatusCode::FORBIDDEN,
        ),
        (
            Some(token("demo", "viewer")),
            Method::DELETE,
            StatusCode::FORBIDDEN,
        ),
        (
            Some(token("drafty-other", "admin")),
            Method::GET,
            StatusCode::NOT_FOUND,
        ),
        (
            Some(token("drafty-other", "admin")),
            Method::PUT,
            StatusCode::NOT_FOUND,
        ),
    ] {
        let r = call(
            &app,
            method.clone(),
            path,
            bearer.as_deref(),
            None,
            Some(whole.clone()),
        )
        .await;
        assert_eq!(r.status(), status, "{method} {bearer:?}");
    }
    let r = call(
        &app,
        Method::GET,
        "/v1/tenants/drafty-other/flows/drafty/draft",
        Some(&token("drafty-other", "admin")),
        None,
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Bad input: not an object, malformed, a name that cannot name a flow (drafts and publish).
    let r = call(
        &app,
        Method::PUT,
        path,
        Some(&admin),
        None,
        Some(json!([1, 2])),
    )
    .await;
    assert_eq!(
        error_code(r, StatusCode::BAD_REQUEST).await,
        "malformed_json"
    );
    let r = app
        .http
        .put(format!("{}{path}", app.address))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"nodes\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(r, StatusCode::BAD_REQUEST).await,
        "malformed_json"
    );
    let long = "x".repeat(65);
    for bad in [
        format!("/v1/tenants/demo/flows/{long}/draft"),
        "/v1/tenants/demo/flows/a%20b/draft".to_owned(),
        format!("/v1/tenants/demo/flows/{long}"),
    ] {
        let r = call(
            &app,
            Method::PUT,
            &bad,
            Some(&admin),
            None,
            Some(whole.clone()),
        )
        .await;
        assert_eq!(
            error_code(r, StatusCode::UNPROCESSABLE_ENTITY).await,
            "invalid_field",
            "{bad}"
        );
    }

    let r = call(&app, Method::DELETE, path, Some(&admin), None, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = call(&app, Method::DELETE, path, Some(&admin), None, None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.shutdown().await;
}
