//! Road-network travel matrices: route optimisation on an OSRM table service (a loopback fake
//! that computes its own "road" distances), fetched in blocks below the server's table size,
//! retried when the server fails, and failing clearly (or falling back to haversine when so
//! configured) when the answer is unusable.

use reqwest::StatusCode;
use serde_json::{Value, json};
use zengine_activities::routing::{MatrixProvider, MatrixSettings, haversine_m};
use zengine_domain::Location;

use crate::fakes::{Answer, FakeProvider, Seen};
use crate::helpers::{ADMIN_TOKEN, AppOptions, TestApp, spawn_app_with};
use crate::routes::{call, order_at, wait_done};

/// The fake server's `--max-table-size`.
const MAX_TABLE: usize = 3;

/// The fake's road distance: a detour over the great circle, so routes priced on it differ
/// from haversine ones.
fn road_m(a: Location, b: Location) -> i64 {
    if a == b {
        0
    } else {
        (1.4 * haversine_m(a, b)).round() as i64 + 150
    }
}

fn parse_list(query: &str, key: &str) -> Vec<usize> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .map(|v| v.split(';').map(|i| i.parse().unwrap()).collect())
        .unwrap_or_default()
}

/// `GET /table/v1/driving/{lon,lat;...}?sources=..&destinations=..&annotations=duration,distance`
fn osrm_table(seen: &Seen) -> Answer {
    let (path, query) = seen.path.split_once('?').unwrap_or((&seen.path, ""));
    let coords: Vec<Location> = path
        .trim_start_matches("/table/v1/driving/")
        .split(';')
        .map(|p| {
            let (lon, lat) = p.split_once(',').unwrap();
            Location {
                lat: lat.parse().unwrap(),
                lon: lon.parse().unwrap(),
            }
        })
        .collect();
    assert!(query.contains("annotations=duration,distance"), "{query}");
    let sources = parse_list(query, "sources");
    let destinations = parse_list(query, "destinations");
    if sources.len() > MAX_TABLE || destinations.len() > MAX_TABLE {
        return Answer::json(
            400,
            json!({"code": "TooBig", "message": "Too many table coordinates"}),
        );
    }
    let distances: Vec<Vec<i64>> = sources
        .iter()
        .map(|&s| {
            destinations
                .iter()
                .map(|&d| road_m(coords[s], coords[d]))
                .collect()
        })
        .collect();
    // 8 m/s on the road.
    let durations: Vec<Vec<f64>> = distances
        .iter()
        .map(|row| row.iter().map(|&m| m as f64 / 8.0).collect())
        .collect();
    Answer::json(
        200,
        json!({"code": "Ok", "durations": durations, "distances": distances}),
    )
}

async fn app_on(fake: &FakeProvider, fallback: bool) -> TestApp {
    spawn_app_with(AppOptions {
        routing: MatrixSettings {
            matrix: MatrixProvider::Osrm,
            osrm_url: fake.url.clone(),
            osrm_max_table_size: MAX_TABLE,
            osrm_timeout_ms: 2_000,
            osrm_fallback_to_haversine: fallback,
            ..MatrixSettings::default()
        },
        ..AppOptions::default()
    })
    .await
}

/// Seven orders around the depot; returns (id, location) pairs.
async fn orders(app: &TestApp, prefix: &str) -> Vec<(String, Location)> {
    let mut out = Vec::new();
    for i in 0..7 {
        let angle = i as f64 * 0.9;
        let location = Location {
            lat: -12.05 + 0.012 * angle.sin(),
            lon: -77.04 + 0.012 * angle.cos(),
        };
        let id = order_at(app, &format!("{prefix}-{i}"), 1, location.lat, location.lon).await;
        out.push((id, location));
    }
    out
}

const DEPOT: Location = Location {
    lat: -12.05,
    lon: -77.04,
};

async fn plan(app: &TestApp, orders: &[(String, Location)]) -> Value {
    let (status, started) = call(
        app,
        reqwest::Method::POST,
        "/v1/routes",
        Some(json!({
            "depot": {"lat": DEPOT.lat, "lon": DEPOT.lon},
            "order_ids": orders.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
            "drivers": [{"id": "ana", "capacity": 4}, {"id": "beto", "capacity": 4}],
            "options": {"time_limit_ms": 300}
        })),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    wait_done(app, started["route_id"].as_str().unwrap()).await
}

/// Each route's `distance_m` against `leg` summed depot → stops → depot.
fn check_lengths(
    result: &Value,
    orders: &[(String, Location)],
    leg: fn(Location, Location) -> i64,
) {
    let routes = result["routes"].as_array().unwrap();
    assert!(!routes.is_empty());
    for route in routes {
        let mut points = vec![DEPOT];
        for stop in route["stops"].as_array().unwrap() {
            let id = stop["order_id"].as_str().unwrap();
            points.push(orders.iter().find(|(o, _)| o == id).unwrap().1);
        }
        points.push(DEPOT);
        let expected: i64 = points.windows(2).map(|w| leg(w[0], w[1])).sum();
        assert_eq!(route["distance_m"].as_i64().unwrap(), expected, "{route}");
    }
}

#[tokio::test]
async fn a_road_matrix_from_osrm_is_fetched_in_blocks_retried_and_used_for_the_routes() {
    let fake = FakeProvider::start().await;
    fake.on("GET /table/v1/driving/", |seen, _| osrm_table(seen));
    // The first request finds the server down: the attempt fails and Temporal retries it.
    fake.script(
        "GET /table/v1/driving/",
        [Answer::json(503, json!({"message": "overloaded"}))],
    );
    let app = app_on(&fake, false).await;
    let orders = orders(&app, "osrm").await;
    let plan = plan(&app, &orders).await;
    assert_eq!(plan["status"], "DONE", "{plan}");
    let result = &plan["result"];
    assert_eq!(result["matrix"], "osrm");
    assert_eq!(result["unassigned"], json!([]));
    check_lengths(result, &orders, road_m);
    // 8 points in blocks of 3: 3 × 3 requests, after the one that got the 503.
    let seen = fake.seen("GET /table/v1/driving/");
    assert_eq!(
        seen.len(),
        1 + 9,
        "{:?}",
        seen.iter().map(|s| &s.path).collect::<Vec<_>>()
    );
    for s in &seen[1..] {
        let query = s.path.split_once('?').unwrap().1;
        assert!(parse_list(query, "sources").len() <= MAX_TABLE);
        assert!(parse_list(query, "destinations").len() <= MAX_TABLE);
    }
    app.shutdown().await;
}

fn haversine_leg(a: Location, b: Location) -> i64 {
    haversine_m(a, b).round() as i64
}

#[tokio::test]
async fn an_unusable_osrm_answer_fails_the_plan_clearly_or_falls_back_to_haversine() {
    let fake = FakeProvider::start().await;
    // The documented shape, but a 1 × 1 table and no distances.
    fake.on("GET /table/v1/driving/", |_, _| {
        Answer::json(200, json!({"code": "Ok", "durations": [[0.0]]}))
    });
    let app = app_on(&fake, false).await;
    let orders_a = orders(&app, "bad").await;
    let plan_a = plan(&app, &orders_a).await;
    assert_eq!(plan_a["status"], "FAILED", "{plan_a}");
    let error = plan_a["error"].as_str().unwrap();
    assert!(error.contains("OSRM table unusable"), "{error}");
    // Not retried: one request, one attempt.
    assert_eq!(fake.seen("GET /table/v1/driving/").len(), 1);
    app.shutdown().await;

    let app = app_on(&fake, true).await;
    let orders_b = orders(&app, "fallback").await;
    let plan_b = plan(&app, &orders_b).await;
    assert_eq!(plan_b["status"], "DONE", "{plan_b}");
    assert_eq!(plan_b["result"]["matrix"], "haversine_fallback");
    check_lengths(&plan_b["result"], &orders_b, haversine_leg);
    app.shutdown().await;
}
