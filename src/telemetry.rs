//! Logging: `tracing` to stdout, JSON by default, with span fields (`tenant_id`,
//! `correlation_id`, `workflow_id`) on every line.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::TelemetrySettings;

pub fn init(settings: &TelemetrySettings) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .map_err(|e| anyhow::anyhow!("telemetry.filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE);
    match settings.format.as_str() {
        "json" => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .flatten_event(true)
            .try_init(),
        "pretty" => builder.try_init(),
        other => anyhow::bail!("telemetry.format `{other}`: expected json or pretty"),
    }
    .map_err(|e| anyhow::anyhow!("Failed to install the log subscriber: {e}"))
}
