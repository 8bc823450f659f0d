//! Metrics: the API's `/metrics` (webhooks, workflow starts) and the worker's Prometheus
//! endpoint, where the activities' domain metrics (channel sends, circuit state, OCR, route
//! quality) sit beside the SDK's own `temporal_*` metrics.
//!
//! The activities' meter is process-wide (the first worker with a metrics endpoint installs
//! it), so only this test gives its worker one.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use zengine_storage::seed::DEMO_WHATSAPP_PHONE_NUMBER_ID;
use zengine_workers::devserver::free_port;

use crate::helpers::{ADMIN_TOKEN, AppOptions, TestApp, spawn_app_with};
use crate::{payments, routes, whatsapp};

/// The value of the first sample of `name` whose labels contain every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn scrape(app: &TestApp, url: &str) -> String {
    let response = app.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// Scrapes until `ready` holds (metrics of activities arrive as the worker finishes them).
async fn scrape_until(app: &TestApp, url: &str, ready: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..300 {
        text = scrape(app, url).await;
        if ready(&text) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("metrics never showed what was expected:\n{text}");
}

#[tokio::test]
async fn api_and_worker_metrics_count_webhooks_starts_sends_ocr_and_routes() {
    let worker_port = free_port();
    let app = spawn_app_with(AppOptions {
        worker_metrics_addr: format!("127.0.0.1:{worker_port}"),
        ..AppOptions::default()
    })
    .await;
    let worker_metrics = format!("http://127.0.0.1:{worker_port}/metrics");
    let (graph, fake) = whatsapp::fake_graph().await;
    whatsapp::use_fake(&app, &graph, None).await;
    // The first provider call fails with a 503: one retryable outcome, then sent.
    fake.lock()
        .unwrap()
        .plan
        .push_back((503, "{}".to_owned(), None));

    // A signed message, a forged one and an unknown provider.
    let body = whatsapp::text_webhook(
        DEMO_WHATSAPP_PHONE_NUMBER_ID,
        "16505557777",
        "wamid.metrics-1",
        "hola",
    );
    let signature = whatsapp::sign(&body);
    let ok = whatsapp::post_webhook(&app, &body, Some(signature)).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let forged = whatsapp::post_webhook(&app, &body, Some("sha256=00".to_owned())).await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let unknown = app
        .http
        .post(format!("{}/v1/webhooks/no-such-provider", app.address))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    whatsapp::wait_sends(&fake, 2).await;

    // A receipt through OCR and a small route plan.
    let order_id = payments::order(&app, "metrics-pay", "439.00").await;
    let (status, payment) = payments::pay(
        &app,
        &order_id,
        &payments::receipt("r03_yape-card_clean.png"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{payment}");
    payments::settled(&app, payment["payment_id"].as_str().unwrap()).await;
    let mut stops = Vec::new();
    for i in 0..6 {
        let angle = i as f64;
        stops.push(
            routes::order_at(
                &app,
                &format!("metrics-route-{i}"),
                1,
                -12.05 + 0.01 * angle.sin(),
                -77.04 + 0.01 * angle.cos(),
            )
            .await,
        );
    }
    let (status, started) = routes::call(
        &app,
        reqwest::Method::POST,
        "/v1/routes",
        Some(json!({
            "depot": {"lat": -12.05, "lon": -77.04},
            "order_ids": stops,
            "drivers": [{"id": "ana", "capacity": 10}],
            "options": {"time_limit_ms": 200, "seed": 1}
        })),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    routes::wait_done(&app, started["route_id"].as_str().unwrap()).await;

    // The API's metrics.
    let api = scrape(&app, &format!("{}/metrics", app.address)).await;
    let webhooks = |provider: &str, status: &str| {
        sample(
            &api,
            "zengine_webhook_requests_total",
            &[
                &format!("provider=\"{provider}\""),
                &format!("status=\"{status}\""),
            ],
        )
    };
    // Counters are process-wide and other tests of this binary run at the same time: at least
    // this test's own requests are counted.
    let counted = |n: Option<f64>| n.is_some_and(|n| n >= 1.0);
    assert!(counted(webhooks("whatsapp", "200")), "{api}");
    assert!(counted(webhooks("whatsapp", "401")), "{api}");
    assert!(counted(webhooks("unknown", "404")), "{api}");
    assert!(
        !api.contains("no-such-provider"),
        "raw path segments must not become labels"
    );
    assert!(
        sample(
            &api,
            "zengine_webhook_duration_seconds_count",
            &["provider=\"whatsapp\""]
        )
        .is_some(),
        "{api}"
    );
    assert!(
        counted(sample(
            &api,
            "zengine_webhook_events_total",
            &["provider=\"whatsapp-meta-cloud\"", "kind=\"accepted\""]
        )),
        "{api}"
    );
    for workflow in ["Conversation", "Order", "Payment", "RouteOptimisation"] {
        assert!(
            sample(
                &api,
                "zengine_workflow_starts_total",
                &[&format!("workflow=\"{workflow}\""), "outcome=\"ok\""]
            )
            .is_some_and(|n| n >= 1.0),
            "no start counted for {workflow}: {api}"
        );
    }

    // The worker's endpoint: the SDK's metrics and the activities' domain metrics.
    let worker = scrape_until(&app, &worker_metrics, |text| {
        sample(text, "zengine_route_solves", &[]).is_some()
            && sample(text, "zengine_ocr_reads", &[]).is_some()
            && text.contains("temporal_workflow_completed")
    })
    .await;
    let sends = |outcome: &str| {
        sample(
            &worker,
            "zengine_channel_sends",
            &[
                "strategy=\"whatsapp-meta-cloud\"",
                &format!("outcome=\"{outcome}\""),
            ],
        )
    };
    assert!(sends("retryable").is_some_and(|n| n >= 1.0), "{worker}");
    assert!(sends("sent").is_some_and(|n| n >= 1.0), "{worker}");
    assert!(worker.contains("zengine_channel_send_latency"), "{worker}");
    // Other tests move the demo tenant's circuit too: the gauge is there with a state value.
    let state = sample(
        &worker,
        "zengine_channel_circuit_state",
        &["tenant=\"demo\"", "strategy=\"whatsapp-meta-cloud\""],
    );
    assert!(
        state.is_some_and(|v| [0.0, 1.0, 2.0].contains(&v)),
        "{worker}"
    );
    assert!(
        sample(&worker, "zengine_ocr_reads", &["outcome=\"read\""]).is_some_and(|n| n >= 1.0),
        "{worker}"
    );
    assert!(worker.contains("zengine_ocr_latency"), "{worker}");
    assert!(
        sample(&worker, "zengine_route_solves", &["feasible=\"true\""]).is_some_and(|n| n >= 1.0),
        "{worker}"
    );
    // The solution is never worse than the nearest-neighbour construction.
    let ratio_sum = sample(&worker, "zengine_route_cost_ratio_sum", &[]).expect("cost ratio");
    let ratio_count = sample(&worker, "zengine_route_cost_ratio_count", &[]).expect("count");
    assert!(
        ratio_count >= 1.0 && ratio_sum / ratio_count <= 1.0,
        "{worker}"
    );
    assert!(
        worker.contains("temporal_workflow_completed"),
        "the SDK's own metrics share the endpoint: {worker}"
    );
    app.shutdown().await;
}
