//! Running workers: one Temporal worker per task queue, each on its own OS thread (the SDK's
//! `Worker::run` future is `!Send`: workflow code of one worker runs on one thread).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use temporalio_client::Client;
use temporalio_common::telemetry::metrics::CoreMeter;
use temporalio_common::telemetry::{
    PrometheusExporterOptions, TelemetryOptions, start_prometheus_metric_exporter,
};
use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
use temporalio_sdk::runtime::{PollerBehavior, RuntimeOptions};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use tokio::sync::oneshot;
use zengine_activities::assistance::AssistanceActivities;
use zengine_activities::channels::ChannelActivities;
use zengine_activities::chatwoot::ChatwootActivities;
use zengine_activities::conversation::ConversationActivities;
use zengine_activities::lifecycle::Drain;
use zengine_activities::orders::OrderActivities;
use zengine_activities::payments::{OcrActivities, PaymentActivities};
use zengine_activities::retention::RetentionActivities;
use zengine_activities::routing::RouteActivities;
use zengine_storage::Database;
use zengine_workflows::names::queues;
use zengine_workflows::{
    AssistanceWorkflow, ChannelHealthWorkflow, ConversationWorkflow, MokWorkflow, OrderWorkflow,
    PaymentWorkflow, RedriveWorkflow, RetentionPurgeWorkflow, RouteOptimisationWorkflow,
};

use crate::temporal::TemporalSettings;

/// Worker process configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Base names of the task queues this process polls (see `zengine_workflows::names::queues`).
    pub queues: Vec<String>,
    /// Workflows kept in the sticky cache per worker.
    pub max_cached_workflows: usize,
    /// After a worker dies, how long a workflow task waits on its sticky queue before any
    /// worker may take it (milliseconds). Lower means faster recovery, more cache misses.
    pub sticky_schedule_to_start_timeout_ms: u64,
    /// On shutdown, how long running activities may finish before they are cancelled.
    pub graceful_shutdown_secs: u64,
    /// Where the SDK's Prometheus worker metrics are served; empty disables them.
    pub metrics_addr: String,
    /// Where `/healthz` (the process runs) and `/readyz` (database and Temporal answer) are
    /// served for liveness and readiness probes (`crate::health`); empty disables them.
    pub health_addr: String,
    /// Per-queue tuning, by queue base name (`[worker.tuning.ocr] activity_slots = 2`).
    pub tuning: BTreeMap<String, QueueTuning>,
    /// How often every channel account's health is checked, in seconds (a Temporal schedule
    /// that a worker of the `channels` queue creates if it is missing). 0 leaves the schedule
    /// alone (neither created nor changed).
    pub channel_health_interval_secs: u64,
    /// How often old orders are purged (each tenant's `retention_days`), in seconds (a Temporal
    /// schedule that a worker of the `payments` queue creates if it is missing). 0 leaves the
    /// schedule alone (neither created nor changed).
    pub retention_interval_secs: u64,
    /// `[worker.routing]`: travel matrix of route optimisation (haversine or OSRM).
    pub routing: zengine_activities::routing::MatrixSettings,
    /// Largest receipt image the `ocr` worker downloads from a channel (WhatsApp media).
    pub max_receipt_bytes: u64,
    /// `[worker.outbound]`: internal address ranges that calls steered by tenants (flow
    /// `http_request`, Chatwoot, channel `api_base`s and endpoints, media, cloud OCR) may reach.
    /// Default: none (see `zengine_channels::outbound`).
    pub outbound: zengine_channels::outbound::OutboundSettings,
}

impl WorkerSettings {
    /// Rejects unknown queue names and nonsensical limits, naming the setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        for queue in &self.queues {
            anyhow::ensure!(
                queues::ALL.contains(&queue.as_str()),
                "worker.queues: unknown task queue `{queue}` (known: {})",
                queues::ALL.join(", ")
            );
        }
        for (queue, t) in &self.tuning {
            anyhow::ensure!(
                queues::ALL.contains(&queue.as_str()),
                "worker.tuning.{queue}: unknown task queue (known: {})",
                queues::ALL.join(", ")
            );
            for (name, value) in [
                ("workflow_slots", t.workflow_slots),
                ("activity_slots", t.activity_slots),
                ("workflow_pollers", t.workflow_pollers),
                ("activity_pollers", t.activity_pollers),
            ] {
                anyhow::ensure!(
                    value != Some(0),
                    "worker.tuning.{queue}.{name} must be at least 1"
                );
            }
            for (name, value) in [
                ("max_activities_per_second", t.max_activities_per_second),
                (
                    "max_task_queue_activities_per_second",
                    t.max_task_queue_activities_per_second,
                ),
            ] {
                anyhow::ensure!(
                    value.is_none_or(|v| v.is_finite() && v > 0.0),
                    "worker.tuning.{queue}.{name} must be a positive number"
                );
            }
        }
        self.routing.validate().map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            self.max_receipt_bytes > 0,
            "worker.max_receipt_bytes must be positive"
        );
        self.outbound
            .guard()
            .map_err(|e| anyhow::anyhow!("worker.{e}"))?;
        Ok(())
    }
}

/// Concurrency and rate limits of one queue's worker. Unset fields keep the SDK defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueTuning {
    /// Workflow tasks processed at once (default 100).
    pub workflow_slots: Option<usize>,
    /// Activities run at once (default 100); keep CPU-bound queues (ocr, routing) near the
    /// number of cores.
    pub activity_slots: Option<usize>,
    /// Concurrent long-polls for workflow tasks.
    pub workflow_pollers: Option<usize>,
    /// Concurrent long-polls for activity tasks.
    pub activity_pollers: Option<usize>,
    /// Activities this worker starts per second at most.
    pub max_activities_per_second: Option<f64>,
    /// Activities started per second on the whole task queue, across all workers (server-side).
    pub max_task_queue_activities_per_second: Option<f64>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            queues: vec![
                queues::CONVERSATIONS.to_owned(),
                queues::CHANNELS.to_owned(),
                queues::PAYMENTS.to_owned(),
                queues::OCR.to_owned(),
                queues::ROUTING.to_owned(),
                queues::ASSISTANCE.to_owned(),
            ],
            max_cached_workflows: 1000,
            sticky_schedule_to_start_timeout_ms: 5_000,
            graceful_shutdown_secs: 20,
            metrics_addr: "127.0.0.1:9464".to_owned(),
            health_addr: String::new(),
            tuning: BTreeMap::new(),
            channel_health_interval_secs: zengine_workflows::channels::HEALTH_INTERVAL.as_secs(),
            retention_interval_secs: zengine_workflows::retention::RETENTION_INTERVAL.as_secs(),
            routing: zengine_activities::routing::MatrixSettings::default(),
            max_receipt_bytes: zengine_activities::payments::DEFAULT_MAX_RECEIPT_BYTES,
            outbound: Default::default(),
        }
    }
}

/// Creates the channel health schedule unless it exists (several workers may race: the loser
/// sees `AlreadyExists`, which is fine).
pub async fn ensure_health_schedule(
    client: &Client,
    temporal: &TemporalSettings,
    interval: Duration,
) -> anyhow::Result<()> {
    use temporalio_client::schedules::{
        CreateScheduleOptions, ScheduleAction, ScheduleOverlapPolicy, ScheduleSpec,
    };

    let id = zengine_domain::workflow_ids::channel_health(&temporal.task_queue_prefix);
    let options = CreateScheduleOptions::builder()
        .action(ScheduleAction::start_workflow(
            ChannelHealthWorkflow::run,
            zengine_workflows::channels::HealthScope::default(),
            temporal.task_queue(queues::CHANNELS),
            // The schedule starts each run under its own id.
            id.clone(),
        ))
        .spec(ScheduleSpec::from_interval(interval))
        .overlap_policy(ScheduleOverlapPolicy::Skip)
        .build();
    match client.create_schedule(id.clone(), options).await {
        Ok(_) => {
            tracing::info!(schedule_id = %id, every_secs = interval.as_secs(), "Channel health schedule created");
            Ok(())
        }
        Err(temporalio_client::schedules::ScheduleError::Rpc(status))
            if status.code() == temporalio_client::tonic::Code::AlreadyExists =>
        {
            Ok(())
        }
        Err(e) => {
            Err(anyhow::Error::new(e).context("Failed to create the channel health schedule"))
        }
    }
}

/// Creates the retention purge schedule unless it exists (several workers may race: the loser
/// sees `AlreadyExists`, which is fine).
pub async fn ensure_retention_schedule(
    client: &Client,
    temporal: &TemporalSettings,
    interval: Duration,
) -> anyhow::Result<()> {
    use temporalio_client::schedules::{
        CreateScheduleOptions, ScheduleAction, ScheduleOverlapPolicy, ScheduleSpec,
    };
    use zengine_workflows::retention::RetentionScope;

    let id = zengine_domain::workflow_ids::retention(&temporal.task_queue_prefix);
    let options = CreateScheduleOptions::builder()
        .action(ScheduleAction::start_workflow(
            RetentionPurgeWorkflow::run,
            RetentionScope::default(),
            temporal.task_queue(queues::PAYMENTS),
            id.clone(),
        ))
        .spec(ScheduleSpec::from_interval(interval))
        .overlap_policy(ScheduleOverlapPolicy::Skip)
        .build();
    match client.create_schedule(id.clone(), options).await {
        Ok(_) => {
            tracing::info!(schedule_id = %id, every_secs = interval.as_secs(), "Retention schedule created");
            Ok(())
        }
        Err(temporalio_client::schedules::ScheduleError::Rpc(status))
            if status.code() == temporalio_client::tonic::Code::AlreadyExists =>
        {
            Ok(())
        }
        Err(e) => Err(anyhow::Error::new(e).context("Failed to create the retention schedule")),
    }
}

/// Builds the worker options for one queue, or `None` when nothing runs on it yet.
fn worker_options(
    base: &str,
    task_queue: String,
    settings: &WorkerSettings,
    db: &Database,
    drain: &Drain,
) -> anyhow::Result<Option<WorkerOptions>> {
    let outbound = settings
        .outbound
        .guard()
        .map_err(|e| anyhow::anyhow!("worker.{e}"))?;
    let builder = WorkerOptions::new(task_queue);
    let builder = match base {
        queues::CONVERSATIONS => builder
            .register_workflow::<ConversationWorkflow>()?
            .register_activities(
                ConversationActivities::new(db.clone()).with_outbound(outbound.clone()),
            )
            .register_activities(ChatwootActivities::new(db.clone()).with_outbound(outbound)),
        queues::CHANNELS => builder
            .register_workflow::<ChannelHealthWorkflow>()?
            .register_workflow::<RedriveWorkflow>()?
            .register_activities(ChannelActivities::new(db.clone()).with_outbound(outbound)),
        queues::PAYMENTS => builder
            .register_workflow::<OrderWorkflow>()?
            .register_workflow::<PaymentWorkflow>()?
            .register_workflow::<RetentionPurgeWorkflow>()?
            .register_activities(OrderActivities::new(db.clone()))
            .register_activities(PaymentActivities::new(db.clone()))
            .register_activities(RetentionActivities::new(db.clone())),
        queues::OCR => {
            // One Tesseract engine per activity slot, created up front (~60 ms each).
            let engines = settings
                .tuning
                .get(base)
                .and_then(|t| t.activity_slots)
                .unwrap_or_else(default_ocr_slots);
            let pool = zengine_activities::payments::EnginePool::new(engines, None, "spa")
                .context("Failed to start the OCR engines for the `ocr` queue")?;
            builder.register_activities(
                OcrActivities::new(db.clone(), Arc::new(pool))
                    .with_max_receipt_bytes(settings.max_receipt_bytes)
                    .with_outbound(outbound),
            )
        }
        queues::ROUTING => builder
            .register_workflow::<RouteOptimisationWorkflow>()?
            .register_activities(
                RouteActivities::new(db.clone())
                    .with_matrix(settings.routing.clone())
                    .with_drain(drain.clone()),
            ),
        queues::ASSISTANCE => builder
            .register_workflow::<AssistanceWorkflow>()?
            .register_workflow::<MokWorkflow>()?
            .register_activities(AssistanceActivities::new(db.clone())),
        other if queues::ALL.contains(&other) => return Ok(None),
        other => anyhow::bail!(
            "unknown task queue `{other}` (known: {})",
            queues::ALL.join(", ")
        ),
    };
    let mut tuning = settings.tuning.get(base).cloned().unwrap_or_default();
    if base == queues::OCR {
        // CPU bound: no more OCR at once than engines (cores, by default).
        tuning.activity_slots = tuning.activity_slots.or_else(|| Some(default_ocr_slots()));
    }
    let slots = |n: Option<usize>| FixedSizeSlotSupplier::new(n.unwrap_or(100));
    let tuner = TunerHolder::builder()
        .workflow_task_slot_supplier(slots(tuning.workflow_slots))
        .activity_task_slot_supplier(slots(tuning.activity_slots))
        .local_activity_task_slot_supplier(slots(None))
        .nexus_task_slot_supplier(slots(None))
        .build();
    Ok(Some(
        builder
            .tuner(tuner)
            .maybe_workflow_task_poller_behavior(
                tuning.workflow_pollers.map(PollerBehavior::SimpleMaximum),
            )
            .maybe_activity_task_poller_behavior(
                tuning.activity_pollers.map(PollerBehavior::SimpleMaximum),
            )
            .maybe_max_worker_activities_per_second(tuning.max_activities_per_second)
            .maybe_max_task_queue_activities_per_second(tuning.max_task_queue_activities_per_second)
            .max_cached_workflows(settings.max_cached_workflows)
            .sticky_queue_schedule_to_start_timeout(Duration::from_millis(
                settings.sticky_schedule_to_start_timeout_ms,
            ))
            .graceful_shutdown_period(Duration::from_secs(settings.graceful_shutdown_secs))
            .build(),
    ))
}

/// OCR engines (and concurrent OCR activities) per worker by default: one per core.
fn default_ocr_slots() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Runs workers for the configured queues until `shutdown` resolves, then drains them.
/// Returns early with an error if a worker fails.
pub async fn run_workers(
    client: Client,
    temporal: &TemporalSettings,
    settings: &WorkerSettings,
    db: &Database,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Kept alive for as long as the workers run: dropping it stops the metrics endpoint.
    let mut prometheus = None;
    if !settings.metrics_addr.is_empty() {
        let addr: SocketAddr = settings
            .metrics_addr
            .parse()
            .context("worker.metrics_addr is not an ip:port")?;
        let server = start_prometheus_metric_exporter(
            PrometheusExporterOptions::builder()
                .socket_addr(addr)
                .build(),
        )
        .context("Failed to serve worker metrics")?;
        tracing::info!(%addr, "Serving worker metrics");
        prometheus = Some(server);
    }
    let meter = prometheus
        .as_ref()
        .map(|server| server.meter.clone() as Arc<dyn CoreMeter>);
    if let Some(meter) = &meter {
        // Domain metrics of the activities share the SDK's endpoint.
        zengine_channels::meter::install(meter.clone());
    }
    let telemetry = TelemetryOptions::builder().maybe_metrics(meter).build();
    let runtime = Runtime::from_current_tokio(
        RuntimeOptions::builder()
            .telemetry_options(telemetry)
            .build()
            .map_err(anyhow::Error::msg)?,
    )?;

    settings.validate()?;
    // Aborted when this function returns, whichever way.
    let _probes = match settings.health_addr.as_str() {
        "" => None,
        addr => {
            let addr: SocketAddr = addr
                .parse()
                .context("worker.health_addr is not an ip:port")?;
            let task = crate::health::serve(addr, db.clone(), client.clone()).await?;
            Some(AbortOnDrop(task))
        }
    };
    let mut running = Vec::new();
    let drain = Drain::default();
    for base in &settings.queues {
        let task_queue = temporal.task_queue(base);
        let Some(options) = worker_options(base, task_queue.clone(), settings, db, &drain)? else {
            tracing::warn!(queue = %base, "Nothing is registered on this task queue yet; not polling it");
            continue;
        };
        let mut worker = Worker::new(&runtime, client.clone(), options)
            .with_context(|| format!("Failed to create the worker for {task_queue}"))?;
        let stop = worker.shutdown_handle();
        let (done_tx, done_rx) = oneshot::channel();
        let handle = tokio::runtime::Handle::current();
        let name = task_queue.clone();
        std::thread::Builder::new()
            .name(format!("worker-{base}"))
            .spawn(move || {
                let result = handle.block_on(worker.run());
                let _ = done_tx.send(result);
            })?;
        tracing::info!(task_queue = %name, "Worker started");
        running.push((name, stop, done_rx));
    }
    if running.is_empty() {
        anyhow::bail!("no worker to run: none of the configured queues has anything registered");
    }
    if settings.queues.iter().any(|q| q == queues::CHANNELS)
        && settings.channel_health_interval_secs > 0
    {
        // Not fatal: health checks are a report, sends do not depend on them.
        if let Err(e) = ensure_health_schedule(
            &client,
            temporal,
            Duration::from_secs(settings.channel_health_interval_secs),
        )
        .await
        {
            tracing::warn!(error.message = %format!("{e:#}"), "Channel health schedule not created");
        }
    }
    if settings.queues.iter().any(|q| q == queues::PAYMENTS) && settings.retention_interval_secs > 0
    {
        // Not fatal: the next worker start tries again; orders are only kept longer.
        if let Err(e) = ensure_retention_schedule(
            &client,
            temporal,
            Duration::from_secs(settings.retention_interval_secs),
        )
        .await
        {
            tracing::warn!(error.message = %format!("{e:#}"), "Retention schedule not created");
        }
    }

    let (names, (stops, mut dones)): (Vec<_>, (Vec<_>, Vec<_>)) =
        running.into_iter().map(|(n, s, d)| (n, (s, d))).unzip();
    let first_exit = futures::future::select_all(dones.iter_mut());
    let early = tokio::select! {
        _ = shutdown => None,
        (result, index, _) = first_exit => Some((index, result)),
    };
    // Activities cancelled from now on are cancelled by the shutdown, not by their workflow.
    drain.begin();
    for stop in &stops {
        stop();
    }
    if let Some((index, result)) = early {
        let name = &names[index];
        return match result {
            Ok(Ok(())) => Err(anyhow::anyhow!("worker {name} stopped unexpectedly")),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context(format!("worker {name} failed"))),
            Err(_) => Err(anyhow::anyhow!("worker {name} thread panicked")),
        };
    }
    for (name, done) in names.iter().zip(dones) {
        match done.await {
            Ok(Ok(())) => tracing::info!(task_queue = %name, "Worker drained"),
            Ok(Err(e)) => {
                tracing::error!(task_queue = %name, error.message = %e, "Worker failed while draining")
            }
            Err(_) => tracing::error!(task_queue = %name, "Worker thread panicked"),
        }
    }
    Ok(())
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_validation_names_the_bad_setting() {
        let mut s = WorkerSettings::default();
        assert!(s.validate().is_ok());
        s.queues.push("fax".into());
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("worker.queues: unknown task queue `fax`")
        );
        s.queues.pop();
        s.tuning.insert(
            "ocr".into(),
            QueueTuning {
                activity_slots: Some(0),
                ..Default::default()
            },
        );
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("worker.tuning.ocr.activity_slots")
        );
        s.tuning.insert(
            "ocr".into(),
            QueueTuning {
                max_activities_per_second: Some(-1.0),
                ..Default::default()
            },
        );
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("max_activities_per_second")
        );
        s.tuning.clear();
        s.tuning.insert("nope".into(), QueueTuning::default());
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("worker.tuning.nope")
        );
    }
}
