//! OTLP trace export (`telemetry.otlp_endpoint`) of real `zengine api` / `zengine worker`
//! processes into a loopback collector that decodes the OTLP/HTTP protobuf requests.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use nix::sys::signal::Signal;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use zengine_workers::devserver::free_port;

use super::{Cluster, Proc, say};

/// One exported span, flattened: its resource's `service.name`, name and string attributes.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    attributes: Vec<(String, String)>,
}

impl Exported {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Collector {
    requests: Arc<Mutex<usize>>,
    spans: Arc<Mutex<Vec<Exported>>>,
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

async fn traces(State(c): State<Collector>, headers: HeaderMap, body: Bytes) -> StatusCode {
    *c.requests.lock().unwrap() += 1;
    if headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v != "application/x-protobuf")
    {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut spans = c.spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| pairs(&r.attributes))
            .unwrap_or_default();
        let service = resource
            .iter()
            .find(|(k, _)| k == "service.name")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(Exported {
                    service: service.clone(),
                    name: span.name,
                    attributes: pairs(&span.attributes),
                });
            }
        }
    }
    StatusCode::OK
}

/// A loopback OTLP/HTTP collector: `POST /v1/traces` with protobuf bodies. It runs on its own
/// thread and runtime: the test blocks its own thread while it waits for processes to exit, and
/// those exits are when the last spans are flushed.
async fn collector() -> (String, Collector) {
    let state = Collector::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(traces))
        .with_state(state.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap()
            })
    });
    (format!("http://{addr}"), state)
}

/// Another `zengine api` of `cluster` on its own port with extra settings.
fn api_with(cluster: &Cluster, log: &str, env: &[(&str, String)]) -> (Proc, String) {
    let port = free_port();
    let mut cmd = cluster.command(log);
    cmd.arg("api")
        .env("ZENGINE_API__ADDR", format!("127.0.0.1:{port}"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    (
        Proc::spawn("zengine api", cmd),
        format!("http://127.0.0.1:{port}"),
    )
}

/// A webchat message to the hotel flow (its correlation id is `corr-{key}`).
async fn say_hotel(base: &str, session: &str, key: &str, text: &str) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/webchat/messages"))
        .header("x-tenant-id", "demo")
        .header("x-idempotency-key", key)
        .header("x-correlation-id", format!("corr-{key}"))
        .json(&serde_json::json!({"session_id": session, "text": text, "flow": "hotel"}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body
}

#[tokio::test]
async fn spans_of_api_and_worker_reach_an_otlp_collector_and_nothing_is_sent_without_one() {
    let (endpoint, exported) = collector().await;
    let (other_endpoint, not_configured) = collector().await;
    // Accepts connections (the kernel backlog) and never answers: every export hangs.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_endpoint = format!("http://{}", silent.local_addr().unwrap());

    // A long batch delay: what the collector gets after SIGTERM was flushed on shutdown.
    let cluster = Cluster::new(
        "otlp",
        &[
            ("ZENGINE_TELEMETRY__OTLP_ENDPOINT", endpoint.as_str()),
            ("ZENGINE_TELEMETRY__OTLP_BATCH_DELAY_MS", "600000"),
        ],
    );
    let api = cluster.api();
    let worker = cluster.worker("worker.log");
    // No endpoint configured; the OpenTelemetry SDK's own variable must not turn export on.
    let (quiet_api, quiet_base) = api_with(
        &cluster,
        "api-quiet.log",
        &[
            ("ZENGINE_TELEMETRY__OTLP_ENDPOINT", String::new()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", other_endpoint.clone()),
        ],
    );
    let (stuck_api, stuck_base) = api_with(
        &cluster,
        "api-stuck.log",
        &[
            ("ZENGINE_TELEMETRY__OTLP_ENDPOINT", silent_endpoint.clone()),
            ("ZENGINE_TELEMETRY__OTLP_BATCH_DELAY_MS", "50".to_owned()),
            ("ZENGINE_TELEMETRY__OTLP_TIMEOUT_MS", "20000".to_owned()),
        ],
    );
    cluster.wait_api().await;
    super::wait_healthy(&quiet_base, "quiet api").await;
    super::wait_healthy(&stuck_base, "stuck api").await;

    // The hotel flow hands an unparseable check-in date to an agent: a `RecordEvent` activity.
    let reply = say_hotel(&cluster.base, "otlp-1", "otlp-1", "hola").await;
    assert_eq!(reply["turn"], 1, "{reply}");
    let mut reply = reply;
    for attempt in 0..5 {
        if reply["mode"] != "BOT" {
            break;
        }
        reply = say_hotel(
            &cluster.base,
            "otlp-1",
            &format!("otlp-1-{attempt}"),
            "no sé",
        )
        .await;
    }
    assert_ne!(reply["mode"], "BOT", "handed off to an agent: {reply}");
    say(&quiet_base, "otlp-2", "otlp-2", "hola").await;

    // The collector that never answers slows nothing down: a warm-up message fills the export
    // queue with hanging requests, then the next round trip is as fast as on the other APIs.
    say(&stuck_base, "otlp-3", "otlp-3a", "hola").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let reply = say(&stuck_base, "otlp-3", "otlp-3b", "Ana").await;
    let stuck_latency = started.elapsed();
    assert_eq!(reply["turn"], 2, "{reply}");
    assert!(
        stuck_latency < Duration::from_secs(5),
        "a hanging collector slowed a round trip to {stuck_latency:?}"
    );
    let started = Instant::now();
    stuck_api.signal(Signal::SIGTERM);
    assert!(stuck_api.wait(Duration::from_secs(40)).success());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "shutdown with a hanging collector took {:?}",
        started.elapsed()
    );

    {
        // (`zengine migrate --seed-demo` of Cluster::new exported and flushed at its exit.)
        let spans = exported.spans.lock().unwrap();
        assert!(
            spans
                .iter()
                .any(|s| s.service == "zengine-migrate" && s.name == "Upsert tenant"),
            "the migrate process flushed its spans at exit"
        );
        let early: Vec<_> = spans
            .iter()
            .filter(|s| s.service != "zengine-migrate")
            .collect();
        assert!(
            early.is_empty(),
            "nothing is exported before the batch delay or shutdown: {} spans {:?}",
            early.len(),
            early.iter().take(5).collect::<Vec<_>>()
        );
    }
    for proc in [api, worker, quiet_api] {
        proc.signal(Signal::SIGTERM);
        assert!(proc.wait(Duration::from_secs(40)).success());
    }

    assert_eq!(
        *not_configured.requests.lock().unwrap(),
        0,
        "an API without telemetry.otlp_endpoint sent traces"
    );
    let spans = exported.spans.lock().unwrap().clone();
    let workflow_id = "demo/conversation/webchat/otlp-1";
    let request = spans
        .iter()
        .find(|s| s.service == "zengine-api" && s.attr("correlation_id") == Some("corr-otlp-1"))
        .unwrap_or_else(|| {
            let log = std::fs::read_to_string(cluster.dir.path().join("api.log")).unwrap();
            let tail: Vec<_> = log.lines().rev().take(8).collect();
            panic!("no API request span in {spans:#?}; api.log ends with {tail:#?}")
        });
    assert_eq!(request.name, "POST /v1/webchat/messages", "{request:?}");
    assert_eq!(request.attr("route"), Some("/v1/webchat/messages"));
    assert_eq!(request.attr("method"), Some("POST"));
    assert_eq!(request.attr("status"), Some("200"));
    assert_eq!(request.attr("tenant_id"), Some("demo"));
    assert_eq!(request.attr("workflow_id"), Some(workflow_id));

    let activities: Vec<_> = spans
        .iter()
        .filter(|s| s.service == "zengine-worker" && s.name.starts_with("RunActivity:"))
        .filter(|s| s.attr("workflow_id") == Some(workflow_id))
        .collect();
    assert!(
        !activities.is_empty(),
        "no activity span of {workflow_id} in {spans:#?}"
    );
    for span in &activities {
        assert_eq!(span.attr("tenant_id"), Some("demo"), "{span:?}");
    }
    assert!(
        spans
            .iter()
            .any(|s| s.service == "zengine-worker" && s.name.starts_with("RunWorkflow:")),
        "no workflow span in {spans:#?}"
    );
    assert!(
        spans
            .iter()
            .filter(|s| s.service == "zengine-api")
            .all(|s| s.attr("workflow_id") != Some("demo/conversation/webchat/otlp-2")),
        "the API without an endpoint exported its request"
    );
    drop(silent);
}
