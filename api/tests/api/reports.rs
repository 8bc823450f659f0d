//! Reports: read models projected from the domain events (idempotent by event id), JSON and
//! CSV, tenant-scoped, with 4xx for bad input.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use zengine_domain::TenantId;
use zengine_storage::NewEvent;
use zengine_storage::testing::TestBackend;

use crate::auth::{add_tenant, call, hs256_options, token};
use crate::helpers::{error_code, spawn_app_with};

async fn report(app: &crate::helpers::TestApp, path: &str, bearer: &str) -> Value {
    let r = call(app, Method::GET, path, Some(bearer), None, None).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn reports_from_events(backend: TestBackend) {
    let mut options = hs256_options();
    options.backend = backend;
    let app = spawn_app_with(options).await;
    add_tenant(&app, "acme").await;
    let db = app.database.as_ref().unwrap().db.clone();
    let demo = TenantId::parse("demo").unwrap();

    // Real ingress: two webchat conversations, three messages (a replay counts once).
    let (a, b) = (
        format!("r-{}", uuid::Uuid::new_v4().simple()),
        format!("r-{}", uuid::Uuid::new_v4().simple()),
    );
    app.say(&a, "m1", "hola").await;
    app.say(&a, "m2", "Ana").await;
    app.say(&a, "m2", "Ana").await;
    app.say(&b, "m3", "hola").await;
    let conversation_a = app.say(&a, "m4", "menu").await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The other facts as the workflows and repositories record them.
    let events = [
        (
            "h1",
            "Conversation.HandedOff",
            conversation_a.as_str(),
            json!({"node": "agent", "queue": "sales"}),
        ),
        (
            "h1-back",
            "Conversation.ReturnedToBot",
            conversation_a.as_str(),
            json!({"channel": "webchat"}),
        ),
        (
            "s1",
            "Conversation.SurveyCompleted",
            "c1",
            json!({"rating": 5}),
        ),
        (
            "s2",
            "Conversation.SurveyCompleted",
            "c2",
            json!({"rating": 3}),
        ),
        (
            "o1a",
            "Order.StatusChanged",
            "o1",
            json!({"from": "PENDING", "to": "CONFIRMED"}),
        ),
        (
            "o1b",
            "Order.StatusChanged",
            "o1",
            json!({"from": "CONFIRMED", "to": "PAID"}),
        ),
        (
            "o2a",
            "Order.StatusChanged",
            "o2",
            json!({"from": "PENDING", "to": "CONFIRMED"}),
        ),
        (
            "p1",
            "Payment.Assigned",
            "o1",
            json!({"status": "ASSIGNED"}),
        ),
        (
            "p2",
            "Payment.ManualReview",
            "o2",
            json!({"status": "MANUAL_REVIEW"}),
        ),
        (
            "p3",
            "Payment.Reviewed",
            "o2",
            json!({"status": "REJECTED"}),
        ),
        (
            "p4",
            "Payment.Rejected",
            "o3",
            json!({"status": "REJECTED"}),
        ),
        (
            "d1",
            "Driver.RouteAssigned",
            "drv-1",
            json!({"plan_id": "p", "stops": 3, "distance_m": 4200}),
        ),
        (
            "d2",
            "Driver.RouteAssigned",
            "drv-1",
            json!({"plan_id": "q", "stops": 2, "distance_m": 800}),
        ),
        (
            "a1",
            "Assistance.StatusChanged",
            "ev1",
            json!({"from": "OPEN", "to": "IN_PROGRESS"}),
        ),
        (
            "a2",
            "Assistance.ProviderStartOverdue",
            "ev1",
            json!({"waited_secs": 900}),
        ),
    ];
    for (id, kind, subject, payload) in &events {
        db.events()
            .record(NewEvent {
                event_id: id,
                tenant_id: &demo,
                event_type: kind.parse().unwrap(),
                subject,
                payload,
            })
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let viewer = token("demo", "viewer");
    let today = chrono::Utc::now().date_naive().to_string();
    let range = format!("from={today}&to={today}");
    let conv = report(&app, &format!("/v1/reports/conversations?{range}"), &viewer).await;
    assert_eq!(
        conv["rows"],
        json!([{"day": today, "channel": "webchat", "conversations": 2, "messages": 4}])
    );
    let handoffs = report(&app, &format!("/v1/reports/handoffs?{range}"), &viewer).await;
    assert_eq!(handoffs["rows"][0]["handed_off"], 1);
    assert_eq!(handoffs["rows"][0]["handoff_rate"], 0.5);
    // Both conversations were answered by the bot (the reply is recorded with the turn).
    let response = report(
        &app,
        &format!("/v1/reports/response_times?{range}"),
        &viewer,
    )
    .await;
    let row = &response["rows"][0];
    assert_eq!(
        (row["conversations"].clone(), row["answered"].clone()),
        (json!(2), json!(2)),
        "{response}"
    );
    assert!(row["average_first_response_secs"].as_f64().unwrap() >= 0.0);
    let resolution = report(
        &app,
        &format!("/v1/reports/resolution_times?{range}"),
        &viewer,
    )
    .await;
    assert_eq!(resolution["rows"][0]["handed_off"], 1, "{resolution}");
    assert_eq!(resolution["rows"][0]["resolved"], 1);
    let csat = report(&app, &format!("/v1/reports/csat?{range}"), &viewer).await;
    assert_eq!(csat["rows"][0]["average_rating"], 4.0);
    assert_eq!(csat["rows"][0]["csat"], 0.5);
    let orders = report(&app, "/v1/reports/orders", &viewer).await;
    assert_eq!(
        orders["rows"],
        json!([{"status": "CONFIRMED", "orders": 1}, {"status": "PAID", "orders": 1}])
    );
    let payments = report(&app, "/v1/reports/payments", &viewer).await;
    assert_eq!(
        payments["rows"],
        json!([{"outcome": "auto_approved", "payments": 1}, {"outcome": "manual_review", "payments": 1},
               {"outcome": "rejected", "payments": 1}, {"outcome": "review_rejected", "payments": 1}])
    );
    let routes = report(&app, "/v1/reports/routes", &viewer).await;
    assert_eq!(
        routes["rows"],
        json!([{"driver_id": "drv-1", "routes": 2, "stops": 5, "distance_m": 5000}])
    );
    let assistance = report(&app, "/v1/reports/assistance", &viewer).await;
    assert_eq!(
        assistance["rows"],
        json!([{"status": "IN_PROGRESS", "events": 1}, {"status": "sla_breach", "events": 1}])
    );

    // Idempotent: the same event again, and projecting again, change nothing.
    let (id, kind, subject, payload) = &events[4];
    db.events()
        .record(NewEvent {
            event_id: id,
            tenant_id: &demo,
            event_type: kind.parse().unwrap(),
            subject,
            payload,
        })
        .await
        .unwrap();
    assert_eq!(db.reports().project(&demo, 0).await.unwrap(), 0);
    assert_eq!(
        report(&app, "/v1/reports/orders", &viewer).await["rows"],
        orders["rows"]
    );

    // CSV by Accept header or format.
    for (path, accept) in [
        ("/v1/reports/routes".to_owned(), "text/csv"),
        (
            "/v1/reports/routes?format=csv".to_owned(),
            "application/json",
        ),
    ] {
        let r = app
            .http
            .get(format!("{}{path}", app.address))
            .bearer_auth(&viewer)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        assert_eq!(
            r.text().await.unwrap(),
            "driver_id,routes,stops,distance_m\ndrv-1,2,5,5000\n"
        );
    }

    // Tenant-scoped: another tenant sees none of it.
    let other = report(&app, "/v1/reports/orders", &token("acme", "viewer")).await;
    assert_eq!(other["rows"], json!([]));

    // Bad input.
    for (path, status) in [
        (
            "/v1/reports/orders?from=2026-13-01",
            StatusCode::BAD_REQUEST,
        ),
        ("/v1/reports/orders?from=yesterday", StatusCode::BAD_REQUEST),
        (
            "/v1/reports/orders?from=2026-02-01&to=2026-01-01",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/reports/orders?from=2020-01-01&to=2026-01-01",
            StatusCode::BAD_REQUEST,
        ),
        ("/v1/reports/orders?format=xml", StatusCode::BAD_REQUEST),
        ("/v1/reports/orders?colour=red", StatusCode::BAD_REQUEST),
        ("/v1/reports/revenue", StatusCode::NOT_FOUND),
    ] {
        let r = call(&app, Method::GET, path, Some(&viewer), None, None).await;
        assert_eq!(r.status(), status, "{path}");
    }
    let r = call(&app, Method::GET, "/v1/reports/orders", None, None, None).await;
    assert_eq!(
        error_code(r, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn reports_are_projected_from_domain_events_sqlite() {
    reports_from_events(TestBackend::Sqlite).await;
}

#[tokio::test]
async fn reports_are_projected_from_domain_events_postgres_rls() {
    reports_from_events(TestBackend::PostgresRls).await;
}
