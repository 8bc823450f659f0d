//! Benchmark of issue #4: webchat round trips through the restaurant flow at 50 concurrent
//! sessions, beside the raw update-with-start rate of a no-op workflow on the same Temporal
//! server in the same run (the limit the conversation engine can approach).
//!
//! Run with `make bench-flows` (`cargo bench --bench flows`). Knobs: `BENCH_CONCURRENCY` (50),
//! `BENCH_SESSIONS_PER_TASK` (4).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use temporalio_client::{WorkflowIdConflictPolicy, WorkflowUpdateWithStartOptions};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{SyncWorkflowContext, Worker, WorkerOptions, WorkflowContext, WorkflowResult};
use zengine_workers::devserver::free_port;
use zengine_workers::testing::{WorkerThread, temporal_binary};
use zengine_workers::{TemporalSettings, connect};

/// The cheapest workflow that answers an update: the limit for a request/response workflow.
#[workflow]
#[derive(Default)]
pub struct NoopWorkflow {
    count: u64,
}

#[workflow_methods]
impl NoopWorkflow {
    #[run(name = "BenchNoop")]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<u64> {
        temporalio_sdk::workflows::select! {
            _ = ctx.timer(Duration::from_secs(120)) => (),
            _ = ctx.wait_condition(|s: &Self| s.count >= 1_000_000) => (),
        };
        Ok(ctx.state(|s| s.count))
    }

    #[update(name = "Ping")]
    pub fn ping(&mut self, _ctx: &mut SyncWorkflowContext<Self>, text: String) -> String {
        self.count += 1;
        text
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(name: &str, elapsed: Duration, mut latencies: Vec<Duration>) -> f64 {
    latencies.sort();
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{name}: {} round trips in {:.2} s = {rate:.1}/s; p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        percentile(&latencies, 50.0).as_secs_f64() * 1e3,
        percentile(&latencies, 90.0).as_secs_f64() * 1e3,
        percentile(&latencies, 99.0).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
    rate
}

/// The scripted restaurant conversation: 6 turns, ending in the payment-photo handoff.
fn script(session: &str) -> Vec<serde_json::Value> {
    let text = |t: &str| json!({"session_id": session, "text": t, "flow": "restaurant"});
    vec![
        text("hola"),
        text("lomo"),
        text("2"),
        text("no"),
        text("recojo"),
        json!({"session_id": session, "text": "", "flow": "restaurant",
               "media": {"kind": "image", "reference": "https://cdn.example/yape.jpg"}}),
    ]
}

#[tokio::main]
async fn main() {
    let concurrency = env_usize("BENCH_CONCURRENCY", 50);
    let sessions_per_task = env_usize("BENCH_SESSIONS_PER_TASK", 4);
    let dir = tempfile::tempdir().unwrap();
    let (api_port, temporal_port, ui_port) = (free_port(), free_port(), free_port());
    let mut dev: Child = Command::new(env!("CARGO_BIN_EXE_zengine"))
        .arg("dev")
        .current_dir(dir.path())
        .env_remove("TEMPORAL_ADDRESS")
        .env_remove("DATABASE_URL")
        .env("ZENGINE_API__ADDR", format!("127.0.0.1:{api_port}"))
        .env("ZENGINE_API__ANONYMOUS__ENABLED", "false")
        .env("ZENGINE_DEV_SERVER__PORT", temporal_port.to_string())
        .env("ZENGINE_DEV_SERVER__UI_PORT", ui_port.to_string())
        .env(
            "ZENGINE_DEV_SERVER__BINARY",
            std::fs::canonicalize(temporal_binary()).unwrap(),
        )
        .env("ZENGINE_WORKER__METRICS_ADDR", "")
        .env("ZENGINE_TELEMETRY__FILTER", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("zengine dev starts");
    let base = format!("http://127.0.0.1:{api_port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The limit: update-with-start of a no-op workflow, same pattern (1 start + 5 updates per
    // session), a worker in this process, same server.
    let settings = TemporalSettings {
        address: format!("127.0.0.1:{temporal_port}"),
        ..TemporalSettings::default()
    };
    let client = connect(&settings, "bench").await.unwrap();
    let runtime = temporalio_sdk::Runtime::from_current_tokio(Default::default()).unwrap();
    let worker = WorkerThread::spawn(
        Worker::new(
            &runtime,
            client.clone(),
            WorkerOptions::new("bench-noop")
                .register_workflow::<NoopWorkflow>()
                .unwrap()
                .build(),
        )
        .unwrap(),
    );

    let client = Arc::new(client);
    let started = Instant::now();
    let raw: Vec<Duration> = join_all((0..concurrency).map(|task| {
        let client = client.clone();
        async move {
            let mut latencies = Vec::new();
            for session in 0..sessions_per_task {
                let id = format!("noop-{task}-{session}");
                for turn in 0..6 {
                    let t = Instant::now();
                    let options = WorkflowUpdateWithStartOptions::new(
                        "bench-noop",
                        id.clone(),
                        WorkflowIdConflictPolicy::UseExisting,
                    )
                    .build();
                    client
                        .execute_update_with_start_workflow(
                            NoopWorkflow::run,
                            (),
                            NoopWorkflow::ping,
                            format!("t{turn}"),
                            options,
                        )
                        .await
                        .expect("no-op update");
                    latencies.push(t.elapsed());
                }
            }
            latencies
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    let raw_elapsed = started.elapsed();
    worker.stop().await;

    // The restaurant flow through the HTTP API.
    let started = Instant::now();
    let flow: Vec<Duration> = join_all((0..concurrency).map(|task| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let mut latencies = Vec::new();
            for session in 0..sessions_per_task {
                let session_id = format!("bench-{task}-{session}");
                for (turn, body) in script(&session_id).into_iter().enumerate() {
                    let t = Instant::now();
                    let response = http
                        .post(format!("{base}/v1/webchat/messages"))
                        .header("x-tenant-id", "demo")
                        .header("x-idempotency-key", format!("{session_id}-{turn}"))
                        .json(&body)
                        .send()
                        .await
                        .expect("request");
                    assert!(response.status().is_success(), "{}", response.status());
                    let _ = response.bytes().await;
                    latencies.push(t.elapsed());
                }
            }
            latencies
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    let flow_elapsed = started.elapsed();

    println!(
        "## {concurrency} concurrent sessions, {sessions_per_task} sessions each, 6 turns per session"
    );
    let limit = report(
        "raw update-with-start, no-op workflow (the limit)",
        raw_elapsed,
        raw,
    );
    let rate = report("webchat through the restaurant flow", flow_elapsed, flow);
    println!("ratio: {:.0} % of the limit", 100.0 * rate / limit);

    let _ = kill(Pid::from_raw(dev.id() as i32), Signal::SIGTERM);
    let _ = dev.wait();
}
