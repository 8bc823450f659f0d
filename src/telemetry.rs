//! Logging: `tracing` to stdout, JSON by default, with span fields (`tenant_id`,
//! `correlation_id`, `workflow_id`) on every line.
//!
//! Optional OpenTelemetry trace export (`telemetry.otlp_endpoint`): the same `tracing` spans
//! (the API's `http` request span, the Temporal SDK's `RunWorkflow`/`RunActivity` spans) go to
//! an OTLP/HTTP collector as protobuf, batched on a background thread, so a slow or unreachable
//! collector never delays a request. [`Telemetry::shutdown`] flushes what is queued.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::prelude::*;

use crate::config::TelemetrySettings;

/// What [`init`] installed; [`Telemetry::shutdown`] flushes the trace export, if any.
#[must_use = "call shutdown() before exiting so the last spans are exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued (bounded by the export timeout) and stops the exporter.
    /// Blocks: call it outside async code or through `spawn_blocking`.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("zengine: flushing the trace export failed: {e}");
        }
    }
}

/// Installs the global subscriber. `process` names the default `service.name`
/// (`zengine-{process}`).
pub fn init(settings: &TelemetrySettings, process: &str) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .map_err(|e| anyhow::anyhow!("telemetry.filter: {e}"))?;
    let fmt = tracing_subscriber::fmt::layer().with_span_events(FmtSpan::NONE);
    let fmt = match settings.format.as_str() {
        "json" => fmt
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .flatten_event(true)
            .with_filter(filter)
            .boxed(),
        "pretty" => fmt.with_filter(filter).boxed(),
        other => anyhow::bail!("telemetry.format `{other}`: expected json or pretty"),
    };
    let provider = tracer_provider(settings, process)?;
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("zengine"))
            .with_filter(exported_spans())
    });
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| anyhow::anyhow!("Failed to install the log subscriber: {e}"))?;
    Ok(Telemetry { provider })
}

/// Spans worth a trace: ZEngine's own and the Temporal SDK's workflow/activity spans, not the
/// SDK core's internals (long-lived poller spans, per-activation plumbing).
fn exported_spans() -> Targets {
    Targets::new()
        .with_target("zengine", LevelFilter::INFO)
        .with_target("zengine_api", LevelFilter::INFO)
        .with_target("zengine_workers", LevelFilter::INFO)
        .with_target("zengine_activities", LevelFilter::INFO)
        .with_target("zengine_workflows", LevelFilter::INFO)
        .with_target("temporalio_sdk", LevelFilter::INFO)
        .with_target("temporalio_sdk_core", LevelFilter::OFF)
}

/// The OTLP endpoint of the traces signal: `{base}/v1/traces` unless `base` already names it.
pub fn traces_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

fn tracer_provider(
    settings: &TelemetrySettings,
    process: &str,
) -> anyhow::Result<Option<SdkTracerProvider>> {
    let endpoint = settings.otlp_endpoint.trim();
    if endpoint.is_empty() {
        return Ok(None);
    }
    anyhow::ensure!(
        endpoint.starts_with("http://") || endpoint.starts_with("https://"),
        "telemetry.otlp_endpoint `{endpoint}`: expected an http:// or https:// URL"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&settings.sampling_ratio),
        "telemetry.sampling_ratio {}: expected 0.0 to 1.0",
        settings.sampling_ratio
    );
    let timeout = Duration::from_millis(settings.otlp_timeout_ms.max(1));
    let client = TokioHttpClient::new(timeout)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .with_timeout(timeout)
        .build()
        .context("telemetry.otlp_endpoint: cannot build the OTLP exporter")?;
    let processor = BatchSpanProcessor::builder(TenantAttributes(exporter))
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(4096)
                .with_scheduled_delay(Duration::from_millis(settings.otlp_batch_delay_ms.max(1)))
                .build(),
        )
        .build();
    let service_name = match settings.service_name.trim() {
        "" => format!("zengine-{process}"),
        name => name.to_owned(),
    };
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_attribute(KeyValue::new("process.pid", i64::from(std::process::id())))
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sampling_ratio,
            ))))
            .with_resource(resource)
            .build(),
    ))
}

/// The Temporal SDK's `RunActivity` span carries `temporalWorkflowID` only. ZEngine workflow ids
/// start with the tenant (`{tenant}/conversation/...`, `{tenant}/order/...`), so the exporter
/// adds `workflow_id` and `tenant_id`: the same attribute names as the API's request span, which
/// is how an API request and the activities it caused are found together.
#[derive(Debug)]
struct TenantAttributes<E>(E);

impl<E: SpanExporter> SpanExporter for TenantAttributes<E> {
    fn export(
        &self,
        mut batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        for span in &mut batch {
            enrich(span);
        }
        self.0.export(batch)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource);
    }
}

fn enrich(span: &mut SpanData) {
    let has = |key: &str| span.attributes.iter().any(|kv| kv.key.as_str() == key);
    if has("workflow_id") || has("tenant_id") {
        return;
    }
    let Some(workflow_id) = span
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "temporalWorkflowID")
        .map(|kv| kv.value.as_str().into_owned())
    else {
        return;
    };
    if let Some((tenant, _)) = workflow_id.split_once('/') {
        span.attributes
            .push(KeyValue::new("tenant_id", tenant.to_owned()));
    }
    span.attributes
        .push(KeyValue::new("workflow_id", workflow_id));
}

/// The batch processor exports from its own thread, outside the Tokio runtime; reqwest's async
/// client needs the runtime, so each request runs as a task on it (the workspace's reqwest 0.12,
/// no second HTTP stack). Export never blocks a runtime thread: the processor thread waits.
struct TokioHttpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl TokioHttpClient {
    fn new(timeout: Duration) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .context("the OTLP exporter needs the Tokio runtime")?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .context("cannot build the OTLP HTTP client")?;
        Ok(Self { client, runtime })
    }
}

impl fmt::Debug for TokioHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokioHttpClient")
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for TokioHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let request = reqwest::Request::try_from(request)?;
        let task = self.runtime.spawn(async move {
            let response = client.execute(request).await?.error_for_status()?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        let (status, body) = task.await??;
        Ok(http::Response::builder().status(status).body(body)?)
    }
}
