//! Benchmarks of issue #2: `zengine dev` start-up time and the round-trip latency of webchat
//! messages, against the real release binary, Temporal dev server and SQLite.
//!
//! Run with `make bench` (`cargo bench --bench webchat`); results go to `docs/benchmarks.md`.
//! Knobs: `BENCH_MESSAGES` (default 1000), `BENCH_PER_SESSION` (default 10), `BENCH_STARTS` (5).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use zengine_workers::devserver::free_port;
use zengine_workers::testing::temporal_binary;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Dev {
    child: Child,
    base: String,
}

impl Dev {
    fn start(dir: &Path, api_port: u16, temporal_port: u16, ui_port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_zengine"))
            .arg("dev")
            .current_dir(dir)
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
        Self {
            child,
            base: format!("http://127.0.0.1:{api_port}"),
        }
    }

    fn stop(mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Ready = the API answers /healthz *and* a first webchat message is answered by a worker.
async fn time_start(dir: &Path, http: &reqwest::Client) -> (Duration, Duration, Dev) {
    let (a, t, u) = (free_port(), free_port(), free_port());
    let started = Instant::now();
    let dev = Dev::start(dir, a, t, u);
    wait_healthy(http, &dev.base).await;
    let healthy = started.elapsed();
    send(
        http,
        &dev.base,
        &format!("warmup-{}", a),
        &format!("warm-{a}"),
        "hola",
    )
    .await;
    (healthy, started.elapsed(), dev)
}

async fn send(http: &reqwest::Client, base: &str, session: &str, key: &str, text: &str) {
    let response = http
        .post(format!("{base}/v1/webchat/messages"))
        .header("x-tenant-id", "demo")
        .header("x-idempotency-key", key)
        .json(&serde_json::json!({"session_id": session, "text": text}))
        .send()
        .await
        .expect("request");
    assert!(response.status().is_success(), "{}", response.status());
    let _ = response.bytes().await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let messages = env_usize("BENCH_MESSAGES", 1000);
    let per_session = env_usize("BENCH_PER_SESSION", 10).max(1);
    let starts = env_usize("BENCH_STARTS", 5).max(1);
    let http = reqwest::Client::new();

    println!("## zengine dev start-up ({starts} runs each)");
    for fresh in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        if !fresh {
            let (_, _, dev) = time_start(dir.path(), &http).await;
            dev.stop();
        }
        let mut healthy = Vec::new();
        let mut answering = Vec::new();
        for _ in 0..starts {
            // Fresh: an empty folder each time. Existing: the same folder, already initialised.
            let run_dir = tempfile::tempdir().unwrap();
            let path = if fresh { run_dir.path() } else { dir.path() };
            let (h, a, dev) = time_start(path, &http).await;
            dev.stop();
            healthy.push(h);
            answering.push(a);
        }
        healthy.sort();
        answering.sort();
        println!(
            "{}: /healthz median {} (min {}, max {}); first reply median {} (min {}, max {})",
            if fresh {
                "fresh data/"
            } else {
                "existing data/"
            },
            ms(healthy[starts / 2]),
            ms(healthy[0]),
            ms(healthy[starts - 1]),
            ms(answering[starts / 2]),
            ms(answering[0]),
            ms(answering[starts - 1]),
        );
    }

    println!("\n## webchat round trip ({messages} sequential messages, {per_session} per session)");
    let dir = tempfile::tempdir().unwrap();
    let (_, _, dev) = time_start(dir.path(), &http).await;
    let mut all = Vec::with_capacity(messages);
    let mut first = Vec::new();
    let mut later = Vec::new();
    let texts = ["hola", "Ana", "quiero hacer un pedido"];
    for i in 0..messages {
        let session = format!("bench-{}", i / per_session);
        let text = texts[(i % per_session) % texts.len()];
        let started = Instant::now();
        send(&http, &dev.base, &session, &format!("b-{i}"), text).await;
        let took = started.elapsed();
        all.push(took);
        if i % per_session == 0 {
            first.push(took)
        } else {
            later.push(took)
        }
    }
    dev.stop();
    for (name, mut sample) in [
        ("all messages", all),
        ("first of a session (starts the workflow)", first),
        ("later messages (running workflow)", later),
    ] {
        if sample.is_empty() {
            continue;
        }
        sample.sort();
        let mean = sample.iter().sum::<Duration>() / sample.len() as u32;
        println!(
            "{name}: n={} p50 {} p90 {} p99 {} max {} mean {}",
            sample.len(),
            ms(percentile(&sample, 50.0)),
            ms(percentile(&sample, 90.0)),
            ms(percentile(&sample, 99.0)),
            ms(*sample.last().unwrap()),
            ms(mean),
        );
    }
}
