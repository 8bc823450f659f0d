//! Route optimisation through the API, against the real routing worker and solver.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp, spawn_app};

pub(crate) async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = app
        .http
        .request(method, format!("{}{path}", app.address))
        .header("x-tenant-id", "demo");
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates a delivery order of `units` items at a point near Lima's centre; returns its id.
pub(crate) async fn order_at(app: &TestApp, key: &str, units: i64, lat: f64, lon: f64) -> String {
    let (status, body) = call(
        app,
        reqwest::Method::POST,
        "/v1/orders",
        Some(json!({
            "client_order_key": key,
            "customer": {"phone": "+51911222333"},
            "type": "delivery",
            "items": [{"name": "Caja", "quantity": units, "unit_price": "10.00"}],
            "location": {"lat": lat, "lon": lon}
        })),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["order_id"].as_str().unwrap().to_owned()
}

pub(crate) async fn wait_done(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = call(
            app,
            reqwest::Method::GET,
            &format!("/v1/routes/{id}"),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        if body["status"] != "RUNNING" {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "the optimisation did not finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn routes_cover_every_order_once_within_capacity_and_drivers_see_theirs() {
    let app = spawn_app().await;
    let mut orders = Vec::new();
    for i in 0..15 {
        let angle = i as f64 * 0.7;
        let radius = 0.01 + 0.004 * (i % 5) as f64;
        let units = 1 + (i % 3);
        orders.push((
            order_at(
                &app,
                &format!("r-{i}"),
                units,
                -12.05 + radius * angle.sin(),
                -77.04 + radius * angle.cos(),
            )
            .await,
            units,
        ));
    }
    let drivers = json!([
        {"id": "ana", "capacity": 12, "shift_start": "2026-11-26T08:00:00Z", "shift_end": "2026-11-26T18:00:00Z"},
        {"id": "beto", "capacity": 12},
        {"id": "caro", "capacity": 12}
    ]);
    let (status, started) = call(
        &app,
        reqwest::Method::POST,
        "/v1/routes",
        Some(json!({
            "depot": {"lat": -12.05, "lon": -77.04},
            "order_ids": orders.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
            "drivers": drivers,
            "options": {"time_limit_ms": 500, "seed": 7}
        })),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let plan = wait_done(&app, started["route_id"].as_str().unwrap()).await;
    assert_eq!(plan["status"], "DONE", "{plan}");
    let result = &plan["result"];
    assert_eq!(result["unassigned"], json!([]));
    assert_eq!(result["feasible"], true);
    let routes = result["routes"].as_array().unwrap();
    assert!(!routes.is_empty() && routes.len() <= 3);
    let mut visited = Vec::new();
    for route in routes {
        let load: i64 = route["stops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["demand"].as_i64().unwrap())
            .sum();
        assert!(load <= 12, "capacity respected: {route}");
        assert!(route["distance_m"].as_i64().unwrap() > 0);
        visited.extend(
            route["stops"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["order_id"].as_str().unwrap().to_owned()),
        );
    }
    visited.sort();
    let mut expected: Vec<String> = orders.iter().map(|(id, _)| id.clone()).collect();
    expected.sort();
    assert_eq!(visited, expected, "every order exactly once");

    let driver = routes[0]["driver_id"].as_str().unwrap();
    let (status, mine) = call(
        &app,
        reqwest::Method::GET,
        &format!("/v1/drivers/{driver}/routes"),
        None,
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["routes"][0]["stops"], routes[0]["stops"]);
    app.shutdown().await;
}

#[tokio::test]
async fn bad_route_requests_are_named_and_impossible_orders_reported_unassigned() {
    let app = spawn_app().await;
    let small = order_at(&app, "b-1", 1, -12.06, -77.03).await;
    let big = order_at(&app, "b-2", 9, -12.07, -77.02).await;
    let body = |orders: Value, drivers: Value| json!({"depot": {"lat": -12.05, "lon": -77.04}, "order_ids": orders, "drivers": drivers, "options": {"time_limit_ms": 300}});
    let one_driver = json!([{"id": "ana", "capacity": 5}]);
    for (request, needle) in [
        (
            body(json!(["ord_nope", small]), one_driver.clone()),
            "order `ord_nope` does not exist",
        ),
        (
            body(json!([small, small]), one_driver.clone()),
            "listed twice",
        ),
        (body(json!([small]), json!([])), "at least one driver"),
        (
            body(
                json!([small]),
                json!([{"id": "ana", "capacity": 3}, {"id": "beto", "capacity": 0}]),
            ),
            "field `drivers[1].capacity`",
        ),
        (
            body(
                json!([small]),
                json!([{"id": "ana", "capacity": 3}, {"id": "ana", "capacity": 4}]),
            ),
            "field `drivers[1].id`: driver `ana` is listed twice",
        ),
        (
            body(
                json!([small]),
                json!([{"id": "ana", "capacity": 3, "shift_start": "at eight"}]),
            ),
            "field `drivers[0].shift_start`",
        ),
        (
            body(
                json!([small]),
                json!([{"id": "ana", "capacity": 5, "shift_start": "2026-11-26T18:00:00Z", "shift_end": "2026-11-26T08:00:00Z"}]),
            ),
            "field `drivers[0].shift_end`: driver `ana`'s shift ends before it starts",
        ),
        (body(json!([]), one_driver.clone()), "1 to 500"),
    ] {
        let (status, error) = call(
            &app,
            reqwest::Method::POST,
            "/v1/routes",
            Some(request),
            Some(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{needle}: {error}"
        );
        assert!(
            error["error"]["message"].as_str().unwrap().contains(needle),
            "{needle}: {error}"
        );
    }
    let (status, _) = call(
        &app,
        reqwest::Method::POST,
        "/v1/routes",
        Some(json!({"depot": 1})),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &app,
        reqwest::Method::POST,
        "/v1/routes",
        Some(body(json!([small]), one_driver.clone())),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &app,
        reqwest::Method::GET,
        "/v1/routes/rte_nope",
        None,
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An order larger than the vehicle is reported, never silently dropped.
    let (status, started) = call(
        &app,
        reqwest::Method::POST,
        "/v1/routes",
        Some(body(json!([small, big]), one_driver)),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let plan = wait_done(&app, started["route_id"].as_str().unwrap()).await;
    assert_eq!(plan["status"], "DONE", "{plan}");
    assert_eq!(
        plan["result"]["unassigned"],
        json!([{"order_id": big, "reason": "capacity", "detail": "demand exceeds vehicle capacity"}])
    );
    assert_eq!(plan["result"]["routes"][0]["stops"][0]["order_id"], small);
    app.shutdown().await;
}

#[tokio::test]
async fn each_driver_keeps_their_own_capacity_and_shift() {
    let app = spawn_app().await;
    // Ten small orders close to the depot (1 to 2 km), one of 6 units (only the truck carries
    // it), one 20 km away (an hour and a half there and back at 25 km/h: only the long shift),
    // and one of 30 units that no driver carries.
    let mut small = Vec::new();
    for i in 0..10 {
        let angle = i as f64 * 0.63;
        let radius = 0.01 + 0.003 * (i % 4) as f64;
        small.push(
            order_at(
                &app,
                &format!("h-{i}"),
                1 + i % 2,
                -12.05 + radius * angle.sin(),
                -77.04 + radius * angle.cos(),
            )
            .await,
        );
    }
    let six = order_at(&app, "h-six", 6, -12.06, -77.05).await;
    let far = order_at(&app, "h-far", 1, -12.05 + 0.18, -77.04).await;
    let huge = order_at(&app, "h-huge", 30, -12.055, -77.035).await;
    let drivers = json!([
        {"id": "van", "capacity": 4, "shift_start": "2026-11-26T08:00:00Z", "shift_end": "2026-11-26T09:00:00Z"},
        {"id": "moto", "capacity": 3, "shift_start": "2026-11-26T12:00:00Z", "shift_end": "2026-11-26T13:00:00Z"},
        {"id": "truck", "capacity": 20, "shift_start": "2026-11-26T08:30:00Z", "shift_end": "2026-11-26T18:00:00Z"}
    ]);
    let mut order_ids = small.clone();
    order_ids.extend([six.clone(), far.clone(), huge.clone()]);
    let (status, started) = call(
        &app,
        reqwest::Method::POST,
        "/v1/routes",
        Some(json!({
            "depot": {"lat": -12.05, "lon": -77.04},
            "order_ids": order_ids,
            "drivers": drivers,
            "options": {"time_limit_ms": 800, "seed": 3}
        })),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let plan = wait_done(&app, started["route_id"].as_str().unwrap()).await;
    assert_eq!(plan["status"], "DONE", "{plan}");
    let result = &plan["result"];
    assert_eq!(result["feasible"], true, "{result}");
    assert_eq!(
        result["unassigned"],
        json!([{"order_id": huge, "reason": "capacity", "detail": "demand exceeds vehicle capacity"}])
    );
    let shift = |id: &str| -> (i64, i64, i64) {
        let d = drivers
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .unwrap();
        let t = |k: &str| {
            chrono::DateTime::parse_from_rfc3339(d[k].as_str().unwrap())
                .unwrap()
                .timestamp()
        };
        (
            d["capacity"].as_i64().unwrap(),
            t("shift_start"),
            t("shift_end"),
        )
    };
    let mut visited = Vec::new();
    let mut on = std::collections::HashMap::new();
    for route in result["routes"].as_array().unwrap() {
        let driver = route["driver_id"].as_str().unwrap();
        let (capacity, start, end) = shift(driver);
        let stops = route["stops"].as_array().unwrap();
        assert!(!stops.is_empty(), "unused drivers get no route: {route}");
        let load: i64 = stops.iter().map(|s| s["demand"].as_i64().unwrap()).sum();
        assert!(load <= capacity, "{driver} carries {load} > {capacity}");
        for stop in stops {
            let eta = chrono::DateTime::parse_from_rfc3339(stop["eta"].as_str().unwrap())
                .unwrap()
                .timestamp();
            assert!(
                start <= eta && eta <= end,
                "{driver}: stop outside the shift: {stop}"
            );
            let id = stop["order_id"].as_str().unwrap().to_owned();
            on.insert(id.clone(), driver.to_owned());
            visited.push(id);
        }
        let back = chrono::DateTime::parse_from_rfc3339(route["returns_at"].as_str().unwrap())
            .unwrap()
            .timestamp();
        assert!(back <= end, "{driver} is back after the shift: {route}");
    }
    visited.sort();
    let mut expected = small.clone();
    expected.extend([six.clone(), far.clone()]);
    expected.sort();
    assert_eq!(visited, expected, "every servable order exactly once");
    assert_eq!(on[&six], "truck", "only the truck carries 6 units");
    assert_eq!(on[&far], "truck", "only the truck's shift is long enough");
    // 15 units of small orders, the 6 and the far one: 22 > 20, so the truck alone
    // cannot do it all; the others take their share within their own limits.
    assert!(on.values().any(|d| d != "truck"), "{result}");
    app.shutdown().await;
}

/// Creates an order with a delivery window (and service minutes); returns the raw response.
async fn windowed_order(app: &TestApp, key: &str, lat: f64, window: Value) -> (StatusCode, Value) {
    call(
        app,
        reqwest::Method::POST,
        "/v1/orders",
        Some(json!({
            "client_order_key": key,
            "customer": {"phone": "+51911222333"},
            "type": "delivery",
            "items": [{"name": "Caja", "quantity": 1, "unit_price": "10.00"}],
            "location": {"lat": lat, "lon": -77.03},
            "delivery_window": window,
            "service_minutes": 10
        })),
        Some(ADMIN_TOKEN),
    )
    .await
}

#[tokio::test]
async fn delivery_windows_are_validated_and_respected_with_etas() {
    let app = spawn_app().await;
    for (window, field) in [
        (
            json!({"start": "2026-11-26T12:00:00Z", "end": "2026-11-26T10:00:00Z"}),
            "delivery_window.end",
        ),
        (
            json!({"start": "tomorrow", "end": "2026-11-26T10:00:00Z"}),
            "delivery_window.start",
        ),
    ] {
        let (status, body) = windowed_order(&app, "w-bad", -12.06, window).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.to_string().contains(field), "{field}: {body}");
    }
    let (status, _) = windowed_order(
        &app,
        "w-bad",
        -12.06,
        json!({"start": "2026-11-26T09:00:00Z", "end": "2026-11-26T10:00:00Z", "tz": 1}),
    )
    .await;
    assert!(status.is_client_error(), "{status}");

    // The far order must be served first (early window), the near one late; one window lies
    // outside the shift and is reported, not dropped.
    let mut ids = Vec::new();
    for (key, lat, start, end) in [
        (
            "w-near",
            -12.055,
            "2026-11-26T11:00:00Z",
            "2026-11-26T11:30:00Z",
        ),
        (
            "w-far",
            -12.10,
            "2026-11-26T08:30:00Z",
            "2026-11-26T09:00:00Z",
        ),
        (
            "w-out",
            -12.06,
            "2026-11-26T20:00:00Z",
            "2026-11-26T21:00:00Z",
        ),
    ] {
        let (status, body) =
            windowed_order(&app, key, lat, json!({"start": start, "end": end})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(
            body["delivery_window"]["start"],
            "2026-11-26T".to_owned() + &start[11..19] + "+00:00"
        );
        ids.push(body["order_id"].as_str().unwrap().to_owned());
    }
    let (status, started) = call(
        &app,
        reqwest::Method::POST,
        "/v1/routes",
        Some(json!({"depot": {"lat": -12.05, "lon": -77.04}, "order_ids": ids,
            "drivers": [{"id": "ana", "capacity": 5, "shift_start": "2026-11-26T08:00:00Z", "shift_end": "2026-11-26T18:00:00Z"}],
            "options": {"time_limit_ms": 300}})),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let plan = wait_done(&app, started["route_id"].as_str().unwrap()).await;
    assert_eq!(plan["status"], "DONE", "{plan}");
    let stops = plan["result"]["routes"][0]["stops"].as_array().unwrap();
    let order: Vec<&str> = stops
        .iter()
        .map(|s| s["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(order, [ids[1].as_str(), ids[0].as_str()], "{plan}");
    let eta = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(stops[i]["eta"].as_str().unwrap())
            .unwrap()
            .timestamp()
    };
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp();
    assert!((at("2026-11-26T08:30:00Z")..=at("2026-11-26T09:00:00Z")).contains(&eta(0)));
    assert!((at("2026-11-26T11:00:00Z")..=at("2026-11-26T11:30:00Z")).contains(&eta(1)));
    assert_eq!(plan["result"]["unassigned"][0]["order_id"], ids[2]);
    assert_eq!(plan["result"]["unassigned"][0]["reason"], "time_window");
    crate::histories::record_route(
        &app,
        &format!("demo/route/{}", started["route_id"].as_str().unwrap()),
        "route__windows_done",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_cancelled_optimisation_keeps_the_best_routes_found() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..60 {
        let angle = i as f64 * 0.37;
        let radius = 0.005 + 0.002 * (i % 11) as f64;
        ids.push(
            order_at(
                &app,
                &format!("c-{i}"),
                1 + (i % 4),
                -12.05 + radius * angle.sin(),
                -77.04 + radius * angle.cos(),
            )
            .await,
        );
    }
    let (status, started) = call(
        &app,
        reqwest::Method::POST,
        "/v1/routes",
        Some(json!({"depot": {"lat": -12.05, "lon": -77.04}, "order_ids": ids,
            "drivers": [{"id": "ana", "capacity": 60}, {"id": "beto", "capacity": 60}, {"id": "caro", "capacity": 60}],
            "options": {"time_limit_ms": 60000}})),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let id = started["route_id"].as_str().unwrap().to_owned();
    // Progress shows up while the search runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    let progress = loop {
        let (_, body) = call(
            &app,
            reqwest::Method::GET,
            &format!("/v1/routes/{id}"),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(body["status"], "RUNNING", "{body}");
        if body["progress"]["best_cost_m"].is_number() {
            break body["progress"].clone();
        }
        assert!(Instant::now() < deadline, "no progress: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let started_at = Instant::now();
    let (status, body) = call(
        &app,
        reqwest::Method::POST,
        &format!("/v1/ops/workflows/demo%2Froute%2F{id}/cancel"),
        Some(json!({"reason": "good enough"})),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert!(status.is_success(), "{status} {body}");
    let plan = wait_done(&app, &id).await;
    assert!(
        started_at.elapsed() < Duration::from_secs(20),
        "the search did not stop"
    );
    assert_eq!(plan["status"], "CANCELLED", "{plan}");
    let result = &plan["result"];
    assert_eq!(result["summary"]["stopped_early"], true, "{plan}");
    assert_eq!(result["summary"]["assigned"], 60, "{plan}");
    assert_eq!(result["feasible"], true, "{plan}");
    // The stored routes are the best found: no worse than the progress seen before cancelling.
    assert!(
        result["summary"]["distance_m"].as_f64().unwrap()
            <= progress["best_cost_m"].as_f64().unwrap(),
        "{progress} {plan}"
    );
    let stops: usize = result["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stops"].as_array().unwrap().len())
        .sum();
    assert_eq!(stops, 60);
    crate::histories::record_route(
        &app,
        &format!("demo/route/{id}"),
        "route__cancelled_best_so_far",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn drivers_with_routes_are_sent_their_stops_once_and_others_nothing() {
    let app = spawn_app().await;
    let (graph, fake) = crate::whatsapp::fake_graph().await;
    crate::whatsapp::use_fake(&app, &graph, None).await;
    let a = order_at(&app, "n-1", 3, -12.06, -77.03).await;
    let b = order_at(&app, "n-2", 3, -12.055, -77.035).await;
    // Only beto and dani carry 3 units; dani's shift is too short for any stop, and dani has
    // no phone anyway. ana and caro get no route, so no message.
    let drivers = json!([
        {"id": "ana", "capacity": 2, "phone": "+51911000001"},
        {"id": "beto", "capacity": 10, "phone": "+51911000002",
         "shift_start": "2026-11-26T08:00:00Z", "shift_end": "2026-11-26T18:00:00Z"},
        {"id": "caro", "capacity": 1, "phone": "+51911000003"},
        {"id": "dani", "capacity": 10,
         "shift_start": "2026-11-26T08:00:00Z", "shift_end": "2026-11-26T08:01:00Z"}
    ]);
    let (status, error) = call(
        &app,
        reqwest::Method::POST,
        "/v1/routes",
        Some(json!({
            "depot": {"lat": -12.05, "lon": -77.04},
            "order_ids": [a, b],
            "drivers": [{"id": "ana", "capacity": 2, "phone": "51911"}],
        })),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("field `drivers[0].phone`"),
        "{error}"
    );
    let (status, started) = call(
        &app,
        reqwest::Method::POST,
        "/v1/routes",
        Some(json!({
            "depot": {"lat": -12.05, "lon": -77.04},
            "order_ids": [a, b],
            "drivers": drivers,
            "options": {"time_limit_ms": 300}
        })),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let plan_id = started["route_id"].as_str().unwrap().to_owned();
    let plan = wait_done(&app, &plan_id).await;
    assert_eq!(plan["status"], "DONE", "{plan}");
    let routes = plan["result"]["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 1, "{plan}");
    assert_eq!(routes[0]["driver_id"], "beto");
    let workflow_id = format!("demo/route/{plan_id}");
    crate::histories::record_route(&app, &workflow_id, "route__notify_drivers").await;
    let sent = crate::whatsapp::wait_sends(&fake, 1).await;
    // Give a duplicate a chance to show up before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent_now = fake.lock().unwrap().seen().to_vec();
    assert_eq!(
        sent_now.len(),
        1,
        "one message per driver with a route: {sent_now:?}"
    );
    let body = &sent[0].body;
    assert_eq!(
        body["to"].as_str().unwrap().trim_start_matches('+'),
        "51911000002"
    );
    let text = body["text"]["body"].as_str().unwrap();
    assert!(
        text.contains(&plan_id) && text.contains(&a) && text.contains(&b),
        "{text}"
    );
    // The send is recorded under the workflow's idempotent id.
    let record = app
        .database
        .as_ref()
        .unwrap()
        .db
        .channels()
        .outbound(
            &zengine_domain::TenantId::parse("demo").unwrap(),
            &format!("{workflow_id}/notify/beto"),
        )
        .await
        .unwrap()
        .expect("an outbound record");
    assert!(record.provider_message_id.is_some());
    app.shutdown().await;
}
