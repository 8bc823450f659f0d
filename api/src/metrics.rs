//! Prometheus metrics of the API process (`GET /metrics`).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{Request, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process-wide recorder (installed on first use; one per process).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("_seconds".to_owned()),
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ],
            )
            .expect("valid buckets")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

pub async fn render() -> Response {
    let handle = handle();
    handle.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// Counts requests and their latency by route template (never by raw path: no ids in labels).
pub async fn track(request: Request<axum::body::Body>, next: Next) -> Response {
    handle();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("zengine_http_requests_total", &labels).increment(1);
    metrics::histogram!("zengine_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}

/// One provider webhook: `provider` is the registered name in the URL (e.g. `whatsapp`) or `unknown` (never the
/// raw path segment), `status` the HTTP status answered.
pub fn webhook(provider: &str, status: u16, elapsed: std::time::Duration) {
    let labels = [
        ("provider", provider.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!("zengine_webhook_requests_total", &labels).increment(1);
    metrics::histogram!("zengine_webhook_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// Events a webhook carried, by what became of them (accepted, duplicate, unroutable, status,
/// ignored).
pub fn webhook_events(provider: &str, kind: &'static str, count: usize) {
    if count > 0 {
        metrics::counter!(
            "zengine_webhook_events_total",
            "provider" => provider.to_owned(),
            "kind" => kind
        )
        .increment(count as u64);
    }
}

/// A workflow start (or signal/update-with-start) the API asked Temporal for, by workflow
/// type and outcome (`ok`, `error`).
pub fn workflow_start<T, E>(workflow: &'static str, result: &Result<T, E>) {
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!(
        "zengine_workflow_starts_total",
        "workflow" => workflow,
        "outcome" => outcome
    )
    .increment(1);
}

/// Counts a start request's outcome on its way through: `.await.counted("Order")`.
pub trait Counted: Sized {
    fn counted(self, workflow: &'static str) -> Self;
}

impl<T, E> Counted for Result<T, E> {
    fn counted(self, workflow: &'static str) -> Self {
        workflow_start(workflow, &self);
        self
    }
}
