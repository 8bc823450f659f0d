//! Benchmark of issue #3: signed WhatsApp text webhooks → 200 at 50 concurrent senders, beside
//! the raw signal-with-start rate of a trivial workflow from a trivial client on the same
//! Temporal server in the same run (the limit the ingress can approach).
//!
//! `zengine dev` runs the API, the worker and the dev server; the demo tenant's WhatsApp account
//! is pointed at a loopback Graph API fake in this process, so every conversation really runs
//! the flow and sends its replies while the webhooks come in.
//!
//! Run with `cargo bench --bench whatsapp`. Knobs: `BENCH_CONCURRENCY` (50),
//! `BENCH_MESSAGES_PER_SENDER` (20), `BENCH_CONTACTS_PER_SENDER` (5).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use temporalio_client::{WorkflowIdConflictPolicy, WorkflowStartOptions};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{SyncWorkflowContext, Worker, WorkerOptions, WorkflowContext, WorkflowResult};
use zengine_domain::TenantId;
use zengine_storage::ChannelAccount;
use zengine_storage::seed::DEMO_WHATSAPP_PHONE_NUMBER_ID;
use zengine_workers::devserver::free_port;
use zengine_workers::testing::{
    WorkerThread, temporal_binary, whatsapp_signature, whatsapp_text_webhook,
};
use zengine_workers::{TemporalSettings, connect};

const APP_SECRET: &str = "dev-app-secret";

/// The cheapest workflow that takes a signal: the limit of the ingress pattern.
#[workflow]
#[derive(Default)]
pub struct SignalSink {
    count: u64,
}

#[workflow_methods]
impl SignalSink {
    #[run(name = "BenchSignalSink")]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<u64> {
        temporalio_sdk::workflows::select! {
            _ = ctx.timer(Duration::from_secs(120)) => (),
            _ = ctx.wait_condition(|s: &Self| s.count >= 1_000_000) => (),
        };
        Ok(ctx.state(|s| s.count))
    }

    #[signal(name = "Inbound")]
    pub fn inbound(&mut self, _ctx: &mut SyncWorkflowContext<Self>, _text: String) {
        self.count += 1;
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
        "{name}: {} requests in {:.2} s = {rate:.1}/s; p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        percentile(&latencies, 50.0).as_secs_f64() * 1e3,
        percentile(&latencies, 90.0).as_secs_f64() * 1e3,
        percentile(&latencies, 99.0).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
    rate
}

/// A Graph API fake that accepts every send.
async fn fake_graph(sent: Arc<AtomicU64>) -> String {
    let app = axum::Router::new().route(
        "/{version}/{phone}/messages",
        axum::routing::post(move || {
            let sent = sent.clone();
            async move {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                axum::Json(json!({"messaging_product": "whatsapp",
                                  "messages": [{"id": format!("wamid.bench-{n}")}]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::main]
async fn main() {
    let concurrency = env_usize("BENCH_CONCURRENCY", 50);
    let per_sender = env_usize("BENCH_MESSAGES_PER_SENDER", 20);
    let contacts_per_sender = env_usize("BENCH_CONTACTS_PER_SENDER", 5).max(1);
    let dir = tempfile::tempdir().unwrap();
    let (api_port, temporal_port, ui_port) = (free_port(), free_port(), free_port());
    let token_file = dir.path().join("wa-token");
    std::fs::write(&token_file, "bench-token").unwrap();
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
    // Replies go to the fake Graph API.
    let sent = Arc::new(AtomicU64::new(0));
    let graph = fake_graph(sent.clone()).await;
    let db = zengine_storage::Database::connect(
        &format!("sqlite://{}/data/zengine.db", dir.path().display()),
        2,
    )
    .await
    .unwrap();
    db.channels()
        .upsert_account(&ChannelAccount {
            strategy: "whatsapp-meta-cloud".into(),
            account_key: DEMO_WHATSAPP_PHONE_NUMBER_ID.into(),
            tenant_id: TenantId::parse("demo").unwrap(),
            settings: json!({"api_base": graph, "api_version": "v23.0",
                             "access_token": format!("file:{}", token_file.display())}),
        })
        .await
        .unwrap();

    // The limit: signal-with-start of a trivial workflow, same pattern (a few contacts per
    // sender, one signal per message), a worker in this process, same server.
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
            WorkerOptions::new("bench-sink")
                .register_workflow::<SignalSink>()
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
            for i in 0..per_sender {
                let id = format!("sink-{task}-{}", i % contacts_per_sender);
                let t = Instant::now();
                let options = WorkflowStartOptions::new("bench-sink", id)
                    .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
                    .build();
                client
                    .signal_with_start_workflow(
                        SignalSink::run,
                        (),
                        SignalSink::inbound,
                        format!("m{i}"),
                        options,
                    )
                    .await
                    .expect("signal-with-start");
                latencies.push(t.elapsed());
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

    // Signed webhooks through the API.
    let started = Instant::now();
    let hooks: Vec<Duration> = join_all((0..concurrency).map(|task| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let mut latencies = Vec::new();
            for i in 0..per_sender {
                let from = format!("519{task:04}{:04}", i % contacts_per_sender);
                let body = whatsapp_text_webhook(
                    DEMO_WHATSAPP_PHONE_NUMBER_ID,
                    "Bench",
                    &from,
                    &format!("wamid.bench-{task}-{i}"),
                    "hola",
                );
                let t = Instant::now();
                let response = http
                    .post(format!("{base}/v1/webhooks/whatsapp"))
                    .header("content-type", "application/json")
                    .header("x-hub-signature-256", whatsapp_signature(APP_SECRET, &body))
                    .body(body)
                    .send()
                    .await
                    .expect("request");
                assert!(response.status().is_success(), "{}", response.status());
                let tally: serde_json::Value = response.json().await.unwrap();
                assert_eq!(tally["accepted"], 1, "{tally}");
                latencies.push(t.elapsed());
            }
            latencies
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    let hooks_elapsed = started.elapsed();
    let total = hooks.len() as u64;

    println!(
        "## {concurrency} concurrent senders, {per_sender} messages each over {contacts_per_sender} contacts"
    );
    let limit = report(
        "raw signal-with-start, trivial workflow (the limit)",
        raw_elapsed,
        raw,
    );
    let rate = report("signed WhatsApp webhooks → 200", hooks_elapsed, hooks);
    println!("ratio: {:.0} % of the limit", 100.0 * rate / limit);
    // Every accepted message is answered: wait for the replies to drain.
    let drain = Instant::now();
    while sent.load(Ordering::Relaxed) < total && drain.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "replies sent to the Graph API fake: {} of {total} messages answered, {:.1} s after the last webhook",
        sent.load(Ordering::Relaxed),
        drain.elapsed().as_secs_f64()
    );

    let _ = kill(Pid::from_raw(dev.id() as i32), Signal::SIGTERM);
    let _ = dev.wait();
}
