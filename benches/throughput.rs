//! Throughput with one and with two `zengine worker` processes (issue #9).
//!
//! For N = 1, then N = 2: a fresh Temporal dev server (SQLite), a fresh SQLite domain database
//! (`zengine migrate --seed-demo`), one `zengine api` and N `zengine worker --queues
//! conversations` processes of the release binary. A fixed batch of webchat conversations through
//! the demo flow (`BENCH_TURNS` messages each, the first one starts the conversation workflow by
//! update-with-start) is driven by `BENCH_CONCURRENCY` concurrent clients. Reported per N:
//! conversations/s, round trips/s, p50/p99, and the CPU time of every process over the measured
//! window (utime + stime from /proc/PID/stat), as a Markdown table.
//!
//! Run with `cargo bench --bench throughput` (part of `make bench`). Knobs: `BENCH_CONVERSATIONS`
//! (400), `BENCH_TURNS` (3), `BENCH_CONCURRENCY` (40), `BENCH_WORKERS` (`1,2`),
//! `BENCH_TEMPORAL_DB` (`file`, or `memory` for the dev server's SQLite in memory).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use zengine_workers::devserver::{DevServer, DevServerSettings, free_port};
use zengine_workers::testing::temporal_binary;

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

/// utime + stime of a process, in seconds (clock ticks of 1/100 s on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After ")": field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    (ticks(11) + ticks(12)) / 100.0
}

struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn zengine(dir: &Path, env: &[(String, String)], args: &[&str], log: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zengine"));
    let log = std::fs::File::create(dir.join(log)).unwrap();
    cmd.current_dir(dir)
        .args(args)
        .env_remove("TEMPORAL_ADDRESS")
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env("ZENGINE_WORKER__METRICS_ADDR", "")
        .env("ZENGINE_TELEMETRY__FILTER", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    cmd
}

struct Row {
    workers: usize,
    conversations: usize,
    round_trips: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    cpu: Vec<(String, f64)>,
}

async fn run(workers: usize, conversations: usize, turns: usize, concurrency: usize) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let temporal_port = free_port();
    let server = DevServer::start(&DevServerSettings {
        binary: temporal_binary(),
        port: temporal_port,
        ui_port: None,
        // `BENCH_TEMPORAL_DB=memory`: the dev server keeps its SQLite in memory (no fsync),
        // to tell disk latency from CPU as the limit.
        db_file: (std::env::var("BENCH_TEMPORAL_DB").as_deref() != Ok("memory"))
            .then(|| dir.path().join("temporal.db")),
        log_file: Some(dir.path().join("temporal.log")),
        ..DevServerSettings::default()
    })
    .expect("the Temporal dev server starts");
    tokio::task::block_in_place(|| server.wait_ready(Duration::from_secs(60)))
        .expect("the Temporal dev server is ready");
    let api_port = free_port();
    let env: Vec<(String, String)> = [
        ("TEMPORAL_ADDRESS", server.address().to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/zengine.db", dir.path().display()),
        ),
        ("ZENGINE_API__ADDR", format!("127.0.0.1:{api_port}")),
        ("ZENGINE_API__ANONYMOUS__ENABLED", "false".to_owned()),
        ("ZENGINE_API__WEBCHAT_TIMEOUT_MS", "120000".to_owned()),
        ("ZENGINE_TEMPORAL__CODEC__ALLOW_DEV_KEY", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let status = zengine(dir.path(), &env, &["migrate", "--seed-demo"], "migrate.log")
        .status()
        .unwrap();
    assert!(status.success(), "zengine migrate --seed-demo failed");
    let spawn = |name: String, args: &[&str], log: &str| Proc {
        child: zengine(dir.path(), &env, args, log)
            .spawn()
            .expect("zengine starts"),
        name,
    };
    let api = spawn("api".to_owned(), &["api"], "api.log");
    let worker_procs: Vec<Proc> = (1..=workers)
        .map(|i| {
            spawn(
                format!("worker {i}"),
                &["worker", "--queues", "conversations"],
                &format!("worker-{i}.log"),
            )
        })
        .collect();
    let base = format!("http://127.0.0.1:{api_port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let say = |session: String, turn: usize| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let text = match turn {
                0 => "hola".to_owned(),
                1 => "Ana".to_owned(),
                n => format!("pregunta {n}"),
            };
            let t = Instant::now();
            let response = http
                .post(format!("{base}/v1/webchat/messages"))
                .header("x-tenant-id", "demo")
                .header("x-idempotency-key", format!("{session}-{turn}"))
                .json(&json!({"session_id": session, "text": text}))
                .send()
                .await
                .expect("request");
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            assert!(status.is_success(), "{status}: {body}");
            t.elapsed()
        }
    };
    // Warm-up: every worker has polled and cached; the first workflow task is not measured.
    for i in 0..(2 * workers) {
        say(format!("warm-{i}"), 0).await;
    }

    let processes: Vec<(String, u32)> =
        std::iter::once(("temporal dev server".to_owned(), server.pid()))
            .chain(std::iter::once((api.name.clone(), api.pid())))
            .chain(worker_procs.iter().map(|w| (w.name.clone(), w.pid())))
            .chain(std::iter::once((
                "bench client".to_owned(),
                std::process::id(),
            )))
            .collect();
    let before: Vec<f64> = processes.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let latencies: Vec<Duration> = join_all((0..concurrency).map(|_| {
        let next = next.clone();
        let say = &say;
        async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= conversations {
                    return latencies;
                }
                let session = format!("tp-{workers}-{n}");
                for turn in 0..turns {
                    latencies.push(say(session.clone(), turn).await);
                }
            }
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    let elapsed = started.elapsed();
    let cpu = processes
        .iter()
        .zip(before)
        .map(|((name, pid), before)| (name.clone(), cpu_seconds(*pid) - before))
        .collect();

    for w in worker_procs {
        w.stop();
    }
    api.stop();
    tokio::task::block_in_place(|| server.stop(Duration::from_secs(20))).ok();
    let mut sorted = latencies;
    sorted.sort();
    Row {
        workers,
        conversations,
        round_trips: sorted.len(),
        elapsed,
        p50: percentile(&sorted, 50.0),
        p99: percentile(&sorted, 99.0),
        cpu,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let conversations = env_usize("BENCH_CONVERSATIONS", 400);
    let turns = env_usize("BENCH_TURNS", 3).max(1);
    let concurrency = env_usize("BENCH_CONCURRENCY", 40).max(1);
    let counts: Vec<usize> = std::env::var("BENCH_WORKERS")
        .unwrap_or_else(|_| "1,2".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let temporal_db = std::env::var("BENCH_TEMPORAL_DB").unwrap_or_else(|_| "file".to_owned());
    println!(
        "## Throughput: {conversations} webchat conversations x {turns} turns (demo flow), \
         {concurrency} concurrent clients, dev server SQLite: {temporal_db}; load average \
         before: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut rows = Vec::new();
    for &workers in &counts {
        let row = run(workers, conversations, turns, concurrency).await;
        eprintln!("N = {workers}: done in {:.1} s", row.elapsed.as_secs_f64());
        rows.push(row);
    }
    println!();
    println!(
        "| worker processes | conversations/s | round trips/s | p50 | p99 | CPU s (% of one core) per process |"
    );
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        let secs = row.elapsed.as_secs_f64();
        let cpu = row
            .cpu
            .iter()
            .map(|(name, s)| format!("{name} {s:.1} s ({:.0} %)", 100.0 * s / secs))
            .collect::<Vec<_>>()
            .join("; ");
        let total: f64 = row.cpu.iter().map(|(_, s)| s).sum();
        println!(
            "| {} | {:.1} | {:.1} | {:.0} ms | {:.0} ms | {cpu}; total {total:.1} s ({:.0} % of 2 cores) |",
            row.workers,
            row.conversations as f64 / secs,
            row.round_trips as f64 / secs,
            row.p50.as_secs_f64() * 1e3,
            row.p99.as_secs_f64() * 1e3,
            100.0 * total / secs / 2.0,
        );
    }
}
