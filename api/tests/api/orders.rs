//! The orders API and the order workflow.

use reqwest::StatusCode;
use serde_json::{Value, json};
use zengine_domain::TenantId;

use crate::helpers::{ADMIN_TOKEN, TestApp, error_code, spawn_app};

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<String>,
    token: Option<&str>,
    tenant: Option<&str>,
) -> reqwest::Response {
    let mut request = app.http.request(method, format!("{}{path}", app.address));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(tenant) = tenant {
        request = request.header("x-tenant-id", tenant);
    }
    request.send().await.unwrap()
}

async fn post_order(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let response = send(
        app,
        reqwest::Method::POST,
        "/v1/orders",
        Some(body.to_string()),
        Some(ADMIN_TOKEN),
        Some("demo"),
    )
    .await;
    (response.status(), response.json().await.unwrap())
}

fn order(key: &str, phone: &str) -> Value {
    json!({
        "client_order_key": key,
        "customer": {"phone": phone, "name": "Ana"},
        "type": "delivery",
        "items": [
            {"sku": "lomo", "name": "Lomo saltado", "quantity": 2, "unit_price": "28.00"},
            {"name": "Chicha", "quantity": 3, "unit_price": 0.1}
        ],
        "address": "Av. Larco 123, Miraflores"
    })
}

async fn set_status(app: &TestApp, id: &str, status: &str) -> reqwest::Response {
    send(
        app,
        reqwest::Method::POST,
        &format!("/v1/orders/{id}/status"),
        Some(json!({"status": status}).to_string()),
        Some(ADMIN_TOKEN),
        Some("demo"),
    )
    .await
}

#[tokio::test]
async fn orders_are_validated_priced_exactly_and_idempotent() {
    let app = spawn_app().await;
    let (status, created) = post_order(&app, order("o-1", "+51 911 222 333")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["total"], "56.30");
    assert_eq!(created["status"], "PENDING");
    assert_eq!(created["items"][1]["line_total"], "0.30");
    assert_eq!(created["customer"]["phone"], "+51911222333");

    let (status, again) = post_order(&app, order("o-1", "+51 911 222 333")).await;
    assert_eq!((status, again.clone()), (StatusCode::OK, created.clone()));
    let (status, reused) = post_order(&app, order("o-1", "+51 999 999 999")).await;
    assert_eq!(
        (status, reused["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("idempotency_key_reused"))
    );

    let mut bad = order("o-2", "12");
    bad["items"][0]["quantity"] = json!(0);
    bad["items"][1]["unit_price"] = json!("-1");
    bad.as_object_mut().unwrap().remove("address");
    let (status, body) = post_order(&app, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let details: Vec<String> = serde_json::from_value(body["error"]["details"].clone()).unwrap();
    for field in [
        "customer.phone",
        "items[0].quantity",
        "items[1].unit_price",
        "address",
    ] {
        assert!(
            details
                .iter()
                .any(|d| d.starts_with(&format!("field `{field}`"))),
            "{field} in {details:?}"
        );
    }
    let mut pickup = order("o-3", "+51911222333");
    pickup["type"] = json!("pickup");
    pickup.as_object_mut().unwrap().remove("address");
    assert_eq!(
        post_order(&app, pickup).await.0,
        StatusCode::CREATED,
        "pickup needs no address"
    );

    let mut unknown_field = order("o-4", "+51911222333");
    unknown_field["total"] = json!("1.00");
    assert_eq!(
        post_order(&app, unknown_field).await.0,
        StatusCode::BAD_REQUEST,
        "totals are computed server-side"
    );
    let malformed = send(
        &app,
        reqwest::Method::POST,
        "/v1/orders",
        Some(r#"{"items": ["#.into()),
        Some(ADMIN_TOKEN),
        Some("demo"),
    )
    .await;
    assert_eq!(
        error_code(malformed, StatusCode::BAD_REQUEST).await,
        "malformed_json"
    );
    let huge = send(
        &app,
        reqwest::Method::POST,
        "/v1/orders",
        Some("x".repeat(70_000)),
        Some(ADMIN_TOKEN),
        Some("demo"),
    )
    .await;
    assert_eq!(
        error_code(huge, StatusCode::PAYLOAD_TOO_LARGE).await,
        "payload_too_large"
    );
    let anonymous = send(
        &app,
        reqwest::Method::POST,
        "/v1/orders",
        Some(order("o-5", "+51911222333").to_string()),
        None,
        Some("demo"),
    )
    .await;
    assert_eq!(
        error_code(anonymous, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let no_tenant = send(
        &app,
        reqwest::Method::POST,
        "/v1/orders",
        Some(order("o-5", "+51911222333").to_string()),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(
        error_code(no_tenant, StatusCode::BAD_REQUEST).await,
        "missing_header"
    );
    let nobody = send(
        &app,
        reqwest::Method::POST,
        "/v1/orders",
        Some(order("o-5", "+51911222333").to_string()),
        Some(ADMIN_TOKEN),
        Some("nobody"),
    )
    .await;
    assert_eq!(
        error_code(nobody, StatusCode::NOT_FOUND).await,
        "unknown_tenant"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn orders_are_listed_by_customer_and_status_with_pagination() {
    let app = spawn_app().await;
    for i in 0..5 {
        let phone = if i % 2 == 0 {
            "+51911000001"
        } else {
            "+51911000002"
        };
        assert_eq!(
            post_order(&app, order(&format!("p-{i}"), phone)).await.0,
            StatusCode::CREATED
        );
    }
    let get = |path: String| {
        let app = &app;
        async move {
            let r = send(
                app,
                reqwest::Method::GET,
                &path,
                None,
                Some(ADMIN_TOKEN),
                Some("demo"),
            )
            .await;
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (_, page1) = get("/v1/orders?limit=2".into()).await;
    let numbers = |v: &Value| {
        v["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["order_number"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(numbers(&page1), [1005, 1004]);
    let (_, page2) = get(format!(
        "/v1/orders?limit=2&before={}",
        page1["next_before"]
    ))
    .await;
    assert_eq!(numbers(&page2), [1003, 1002]);
    let (_, by_customer) = get("/v1/orders?customer_phone=%2B51911000002".into()).await;
    assert_eq!(numbers(&by_customer), [1004, 1002]);
    let first_id = page1["orders"][0]["order_id"].as_str().unwrap().to_owned();
    assert_eq!(
        set_status(&app, &first_id, "PAID").await.status(),
        StatusCode::OK
    );
    let (_, paid) = get("/v1/orders?status=paid".into()).await;
    assert_eq!(numbers(&paid), [1005]);
    let (status, _) = get("/v1/orders?status=LOST".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get("/v1/orders?limit=1000".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, one) = get(format!("/v1/orders/{first_id}")).await;
    assert_eq!(
        (status, one["status"].clone()),
        (StatusCode::OK, json!("PAID"))
    );
    let (status, _) = get("/v1/orders/ord_nope".into()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.shutdown().await;
}

#[tokio::test]
async fn the_order_workflow_follows_the_lifecycle_and_rejects_invalid_moves() {
    // PostgreSQL as the restricted role: API, activities and events all work under RLS.
    let app = crate::helpers::spawn_app_with(crate::helpers::AppOptions {
        backend: zengine_storage::testing::TestBackend::PostgresRls,
        ..Default::default()
    })
    .await;
    let (_, created) = post_order(&app, order("w-1", "+51911222333")).await;
    let id = created["order_id"].as_str().unwrap().to_owned();

    let skip = set_status(&app, &id, "DELIVERED").await;
    assert_eq!(error_code(skip, StatusCode::CONFLICT).await, "conflict");
    for next in ["PAID", "PREPARING", "DISPATCHED"] {
        let r = set_status(&app, &id, next).await;
        assert_eq!(r.status(), StatusCode::OK, "{next}");
        assert_eq!(r.json::<Value>().await.unwrap()["status"], next);
    }
    let late_cancel = set_status(&app, &id, "CANCELLED").await;
    assert_eq!(
        error_code(late_cancel, StatusCode::CONFLICT).await,
        "conflict"
    );
    let done = set_status(&app, &id, "DELIVERED").await;
    let view: Value = done.json().await.unwrap();
    assert_eq!(view["transitions"].as_array().unwrap().len(), 4);
    let closed = set_status(&app, &id, "CANCELLED").await;
    assert_eq!(error_code(closed, StatusCode::CONFLICT).await, "conflict");
    let bad = set_status(&app, &id, "TELEPORTED").await;
    assert_eq!(
        error_code(bad, StatusCode::BAD_REQUEST).await,
        "invalid_field"
    );

    let db = &app.database.as_ref().unwrap().db;
    let demo = TenantId::parse("demo").unwrap();
    let stored = db.orders().get(&demo, &id).await.unwrap().unwrap();
    assert_eq!(stored.status, zengine_domain::order::OrderStatus::Delivered);
    let events = db
        .events()
        .list(&demo, "Order.StatusChanged")
        .await
        .unwrap();
    assert_eq!(
        events.iter().filter(|e| e.subject == id).count(),
        4,
        "one event per change"
    );
    app.shutdown().await;
}

async fn track(app: &TestApp, body: Value) -> reqwest::Response {
    send(
        app,
        reqwest::Method::PUT,
        "/v1/tracking",
        Some(body.to_string()),
        Some(ADMIN_TOKEN),
        Some("demo"),
    )
    .await
}

/// A payment marks the order PAID in the database, notifies the customer, and only then
/// signals the order workflow. A caller that sees PAID and moves the order on at once reaches
/// the workflow before that signal: the API keeps trying the move (a few seconds) instead of a
/// spurious 409, and it succeeds as soon as the signal lands.
#[tokio::test]
async fn a_move_from_paid_waits_for_the_payments_signal_in_flight() {
    let app = spawn_app().await;
    let (_, created) = post_order(&app, order("t-inflight", "+51911222333")).await;
    let id = created["order_id"].as_str().unwrap().to_owned();
    let demo = zengine_domain::TenantId::parse("demo").unwrap();
    let db = &app.database.as_ref().unwrap().db;
    // The payment's database write, without its signal yet.
    use zengine_domain::order::OrderStatus;
    assert!(
        db.orders()
            .set_status(&demo, &id, OrderStatus::Pending, OrderStatus::Paid)
            .await
            .unwrap()
    );
    let signal = {
        let temporal = app.temporal.clone();
        let workflow_id = zengine_domain::workflow_ids::order(&demo, &id);
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            temporal
                .get_workflow_handle::<zengine_workflows::OrderWorkflow>(workflow_id)
                .signal(
                    zengine_workflows::OrderWorkflow::payment_accepted,
                    zengine_workflows::order::PaymentAccepted {
                        payment_id: "pay_in_flight".into(),
                    },
                    Default::default(),
                )
                .await
                .unwrap();
        }
    };
    let (moved, ()) = tokio::join!(set_status(&app, &id, "PREPARING"), signal);
    let status = moved.status();
    let body: Value = moved.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "PREPARING", "{body}");
    app.shutdown().await;
}

/// The API dies after recording a status event and before the order workflow moved: the
/// carrier retries the same event (same `event_id`, as it must after a timeout) and the order
/// moves then, once. The update carries the event's id, so Temporal applies it at most once
/// however often it is retried.
#[tokio::test]
async fn a_tracking_event_recorded_before_a_crash_moves_the_order_when_retried() {
    let app = spawn_app().await;
    let (_, created) = post_order(&app, order("t-crash", "+51911222333")).await;
    let id = created["order_id"].as_str().unwrap().to_owned();
    assert_eq!(set_status(&app, &id, "PAID").await.status(), StatusCode::OK);
    let demo = zengine_domain::TenantId::parse("demo").unwrap();
    let db = &app.database.as_ref().unwrap().db;
    // What the first attempt left: the event recorded, the workflow never updated.
    let at = "2026-11-25T18:00:00Z";
    db.tracking()
        .record(
            &demo,
            &zengine_storage::TrackingEvent {
                event_id: "crash-1".into(),
                order_id: id.clone(),
                status: "PREPARING".into(),
                location: None,
                occurred_at: chrono::DateTime::parse_from_rfc3339(at)
                    .unwrap()
                    .timestamp_millis(),
            },
        )
        .await
        .unwrap();
    let body =
        json!({"event_id": "crash-1", "order_id": id, "status": "PREPARING", "timestamp": at});
    for _ in 0..2 {
        let retried = track(&app, body.clone()).await;
        assert_eq!(retried.status(), StatusCode::OK);
        let answer: Value = retried.json().await.unwrap();
        assert_eq!(answer["duplicate"], true, "{answer}");
        assert_eq!(answer["order"]["status"], "PREPARING", "{answer}");
    }
    let stored = db.orders().get(&demo, &id).await.unwrap().unwrap();
    assert_eq!(stored.status.as_str(), "PREPARING");
    let changes = db
        .events()
        .list(&demo, "Order.StatusChanged")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.subject == id)
        .count();
    assert_eq!(changes, 2, "PAID, then PREPARING once");
    app.shutdown().await;
}

#[tokio::test]
async fn tracking_events_build_the_timeline_and_move_the_order_once() {
    let app = spawn_app().await;
    let (_, created) = post_order(&app, order("t-1", "+51911222333")).await;
    let id = created["order_id"].as_str().unwrap().to_owned();
    assert_eq!(set_status(&app, &id, "PAID").await.status(), StatusCode::OK);
    let event = |event_id: &str, status: &str, at: &str| {
        json!({"event_id": event_id, "order_id": id, "status": status,
               "location": {"lat": -12.1, "lon": -77.03}, "timestamp": at})
    };

    let first = track(&app, event("e1", "PREPARING", "2026-11-25T18:00:00Z")).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let again = track(&app, event("e1", "PREPARING", "2026-11-25T18:00:00Z")).await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "the same event twice is accepted once"
    );
    assert_eq!(again.json::<Value>().await.unwrap()["duplicate"], true);
    let reused = track(&app, event("e1", "DISPATCHED", "2026-11-25T18:00:00Z")).await;
    assert_eq!(
        error_code(reused, StatusCode::CONFLICT).await,
        "idempotency_key_reused"
    );
    assert_eq!(
        track(&app, event("e2", "LOCATION", "2026-11-25T18:05:00Z"))
            .await
            .status(),
        StatusCode::CREATED
    );
    let late = track(&app, event("e0", "DISPATCHED", "2026-11-25T17:59:00Z")).await;
    assert_eq!(
        error_code(late, StatusCode::CONFLICT).await,
        "conflict",
        "out of order"
    );
    let skip = track(&app, event("e3", "DELIVERED", "2026-11-25T18:06:00Z")).await;
    assert_eq!(
        error_code(skip, StatusCode::CONFLICT).await,
        "conflict",
        "PREPARING cannot jump to DELIVERED for delivery orders"
    );
    assert_eq!(
        track(&app, event("e4", "DISPATCHED", "2026-11-25T18:10:00Z"))
            .await
            .status(),
        StatusCode::CREATED
    );
    let delivered = track(&app, event("e5", "DELIVERED", "2026-11-25T18:30:00Z")).await;
    assert_eq!(delivered.status(), StatusCode::CREATED);
    assert_eq!(
        delivered.json::<Value>().await.unwrap()["order"]["status"],
        "DELIVERED"
    );

    for (body, field) in [
        (
            json!({"event_id": "x", "order_id": id, "status": "FLYING", "timestamp": "2026-11-25T19:00:00Z"}),
            "status",
        ),
        (
            json!({"event_id": "x", "order_id": id, "status": "LOCATION", "timestamp": "2026-11-25T19:00:00Z"}),
            "location",
        ),
        (
            json!({"event_id": "x", "order_id": id, "status": "LOCATION", "location": {"lat": 91, "lon": 0}, "timestamp": "2026-11-25T19:00:00Z"}),
            "location",
        ),
        (
            json!({"event_id": "x", "order_id": id, "status": "LOCATION", "location": {"lat": 1, "lon": 0}, "timestamp": "yesterday"}),
            "timestamp",
        ),
        (
            json!({"event_id": "", "order_id": id, "status": "LOCATION", "location": {"lat": 1, "lon": 0}, "timestamp": "2026-11-25T19:00:00Z"}),
            "event_id",
        ),
    ] {
        let r = track(&app, body).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let msg = r.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(msg.starts_with(&format!("field `{field}`")), "{msg}");
    }
    let unknown = track(&app, json!({"event_id": "y", "order_id": "ord_nope", "status": "DISPATCHED", "timestamp": "2026-11-25T19:00:00Z"})).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let anonymous = send(
        &app,
        reqwest::Method::PUT,
        "/v1/tracking",
        Some("{}".into()),
        None,
        Some("demo"),
    )
    .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let timeline: Value = send(
        &app,
        reqwest::Method::GET,
        &format!("/v1/tracking?order_id={id}"),
        None,
        Some(ADMIN_TOKEN),
        Some("demo"),
    )
    .await
    .json()
    .await
    .unwrap();
    let statuses: Vec<&str> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["PREPARING", "LOCATION", "DISPATCHED", "DELIVERED"],
        "refused changes leave no trace"
    );
    assert_eq!(timeline["status"], "DELIVERED");
    app.shutdown().await;
}
