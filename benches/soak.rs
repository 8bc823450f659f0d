//! Soak of issue #10: mixed traffic for `SOAK_SECONDS` (default 600) against a real deployment —
//! the Temporal dev server, one `zengine api` and one `zengine worker` process (separate PIDs, so
//! their resident memory is measured separately), SQLite — with loopback fakes only for the
//! providers (a WhatsApp Graph API that records every send).
//!
//! Traffic, each kind on its own open-loop clock (a slow answer does not slow the clock):
//! - webchat: sessions of three turns (`hola`, a name, a need) on the demo flow;
//! - WhatsApp: signed text webhooks, two per contact (`hola`, a name), each answered by exactly
//!   one send at the Graph API fake;
//! - payments: a pickup order and a receipt image from `$ZENGINE_SHARED_DIR/data/ocr/dev`
//!   uploaded through the payments API → OCR → ASSIGNED (order PAID) the first time a receipt is
//!   used (or MANUAL_REVIEW, with its reasons, for a receipt the OCR reads with low confidence),
//!   REJECTED (duplicate operation code) after a use that paid;
//! - routes: eight delivery orders and a two-driver `POST /v1/routes`, polled until `DONE`.
//!
//! At the end (after a drain period) the bench checks: no error (non-2xx, transport error or
//! timeout), nothing lost (every turn answered, every accepted WhatsApp message answered by
//! exactly one send, every payment and route plan in its final state), and the RSS of the API
//! and the worker after warm-up grew by less than 10 %. It prints Markdown tables (latency per
//! kind per minute, RSS over time) for `docs/benchmarks.md`, and exits non-zero if a check failed.
//!
//! Run with `make soak` (`cargo bench --bench soak`). Knobs: `SOAK_SECONDS` (600),
//! `SOAK_WARMUP_SECONDS` (120, at most a third of the run), `SOAK_RATE` (webchat turns and
//! WhatsApp messages per second, each; 2), `SOAK_PAYMENT_RATE` (payments per second, 0.1),
//! `SOAK_ROUTE_RATE` (route plans per second, 0.05), `SOAK_DRAIN_SECONDS` (120),
//! `SOAK_CACHED_WORKFLOWS` (the worker's `max_cached_workflows`; default: the worker's own),
//! `SOAK_KEEP` (keep the working folder with the process logs).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use zengine_domain::TenantId;
use zengine_storage::seed::DEMO_WHATSAPP_PHONE_NUMBER_ID;
use zengine_storage::{ChannelAccount, PaymentSettings};
use zengine_workers::devserver::free_port;
use zengine_workers::testing::{
    start_ephemeral, temporal_binary, whatsapp_signature, whatsapp_text_webhook,
};

const APP_SECRET: &str = "soak-app-secret";
const ADMIN_TOKEN: &str = "soak-admin-token";
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Growth of resident memory after warm-up that fails the soak.
const MAX_GROWTH: f64 = 0.10;

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Results

/// Latency samples and errors, shared by every traffic task.
struct Stats {
    started: Instant,
    samples: Mutex<Vec<(&'static str, u64, Duration)>>,
    errors: Mutex<Vec<(&'static str, String)>>,
}

impl Stats {
    fn minute(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_secs() / 60
    }

    fn record(&self, kind: &'static str, at: Instant, latency: Duration) {
        let minute = self.minute(at);
        self.samples.lock().unwrap().push((kind, minute, latency));
    }

    fn error(&self, kind: &'static str, what: String) {
        self.errors.lock().unwrap().push((kind, what));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.1}")
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A child process killed (SIGTERM, then SIGKILL) when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) -> bool {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `VmRSS` of `pid` in KiB (0 once the process is gone).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The sum of the values of metric `name` (all label sets) in a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in page.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------
// Fakes and payloads

/// What the Graph API fake received: per recipient, the time of each send.
type Sends = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

async fn fake_graph(sends: Sends) -> String {
    let counter = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/{version}/{phone}/messages",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sends = sends.clone();
            let counter = counter.clone();
            async move {
                let to = body["to"].as_str().unwrap_or("?").to_owned();
                sends
                    .lock()
                    .unwrap()
                    .entry(to)
                    .or_default()
                    .push(Instant::now());
                let n = counter.fetch_add(1, Ordering::Relaxed);
                axum::Json(json!({"messaging_product": "whatsapp",
                                  "messages": [{"id": format!("wamid.soak-out-{n}")}]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn multipart_image(bytes: &[u8]) -> (Vec<u8>, String) {
    let boundary = "zengine-soak-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"receipt\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

/// The shared dev receipts: image bytes and the amount printed on them.
fn receipts() -> Vec<(String, Arc<Vec<u8>>, String)> {
    let shared = std::env::var_os("ZENGINE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let dir = shared.join("data/ocr/dev");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("png" | "jpg")))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|image| {
            let truth: Value =
                serde_json::from_slice(&std::fs::read(image.with_extension("json")).unwrap())
                    .unwrap();
            (
                image.file_name().unwrap().to_string_lossy().into_owned(),
                Arc::new(std::fs::read(&image).unwrap()),
                truth["amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Traffic

#[derive(Clone)]
struct Ctx {
    http: reqwest::Client,
    base: String,
    stats: Arc<Stats>,
    /// WhatsApp: per contact, the time each accepted inbound message was posted.
    inbound: Sends,
    /// Units started and completed, by kind.
    done: Arc<Mutex<BTreeMap<&'static str, (u64, u64)>>>,
    /// Set when the load stops: polls give up after it.
    deadline: Arc<Mutex<Option<Instant>>>,
    /// Per receipt image, the decision its first use got (`ASSIGNED`, or `MANUAL_REVIEW` for a
    /// receipt the OCR reads with low confidence).
    receipts: Arc<Mutex<HashMap<String, String>>>,
}

impl Ctx {
    fn begin(&self, kind: &'static str) {
        self.done.lock().unwrap().entry(kind).or_default().0 += 1;
    }

    fn end(&self, kind: &'static str, ok: bool) {
        if ok {
            self.done.lock().unwrap().entry(kind).or_default().1 += 1;
        }
    }

    fn admin(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        r.bearer_auth(ADMIN_TOKEN)
            .header("x-tenant-id", "demo")
            .timeout(REQUEST_TIMEOUT)
    }

    /// Sends `request`; records its latency under `kind` when it answers `expected`, an error
    /// otherwise. Returns the JSON body on success.
    async fn call(
        &self,
        kind: &'static str,
        request: reqwest::RequestBuilder,
        expected: &[u16],
    ) -> Option<Value> {
        let at = Instant::now();
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                if expected.contains(&status) {
                    self.stats.record(kind, at, at.elapsed());
                    Some(serde_json::from_str(&body).unwrap_or(Value::Null))
                } else {
                    self.stats.error(
                        kind,
                        format!("{status}: {}", body.chars().take(300).collect::<String>()),
                    );
                    None
                }
            }
            Err(e) => {
                let what = if e.is_timeout() {
                    "timeout"
                } else {
                    "transport"
                };
                self.stats.error(kind, format!("{what}: {e}"));
                None
            }
        }
    }

    /// Polls `GET path` until `done` holds (or the drain deadline); the latency of the unit
    /// started at `at` is recorded under `kind`.
    async fn poll(
        &self,
        kind: &'static str,
        path: &str,
        at: Instant,
        done: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        loop {
            let body = self
                .call(
                    "status GET",
                    self.admin(self.http.get(format!("{}{path}", self.base))),
                    &[200],
                )
                .await;
            if let Some(body) = body
                && done(&body)
            {
                self.stats.record(kind, at, at.elapsed());
                return Some(body);
            }
            if self
                .deadline
                .lock()
                .unwrap()
                .is_some_and(|d| Instant::now() > d)
            {
                self.stats
                    .error(kind, format!("{path} not final by the drain deadline"));
                return None;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// One webchat session: three turns of the demo flow, each answered in the response.
async fn webchat_session(ctx: Ctx, n: u64) {
    let session = format!("soak-{n}");
    let turns = [
        ("hola", 1, "¿Cómo te llamas?"),
        ("Ana", 1, "Mucho gusto, Ana."),
        ("quiero un pedido", 2, "quiero un pedido"),
    ];
    for (i, (text, replies, expect)) in turns.into_iter().enumerate() {
        ctx.begin("webchat turn");
        let request = ctx
            .http
            .post(format!("{}/v1/webchat/messages", ctx.base))
            .header("x-tenant-id", "demo")
            .header("x-idempotency-key", format!("{session}-{i}"))
            .timeout(REQUEST_TIMEOUT)
            .json(&json!({"session_id": session, "text": text}));
        let ok = match ctx.call("webchat turn", request, &[200]).await {
            Some(body) => {
                let got = body["replies"].as_array().map_or(0, Vec::len);
                let first = body["replies"][0]["text"].as_str().unwrap_or("");
                let right = got == replies && first.contains(expect) && body["turn"] == i + 1;
                if !right {
                    ctx.stats.error(
                        "webchat turn",
                        format!("{session} turn {}: wrong reply {body}", i + 1),
                    );
                }
                right
            }
            None => false,
        };
        ctx.end("webchat turn", ok);
        if !ok {
            return;
        }
    }
}

/// One WhatsApp contact: two text messages, a second apart.
async fn whatsapp_contact(ctx: Ctx, n: u64) {
    let from = format!("5197{n:07}");
    for (i, text) in ["hola", "Ana"].into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let body = whatsapp_text_webhook(
            DEMO_WHATSAPP_PHONE_NUMBER_ID,
            "Soak",
            &from,
            &format!("wamid.soak-{n}-{i}"),
            text,
        );
        let at = Instant::now();
        let request = ctx
            .http
            .post(format!("{}/v1/webhooks/whatsapp", ctx.base))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", whatsapp_signature(APP_SECRET, &body))
            .timeout(REQUEST_TIMEOUT)
            .body(body);
        if let Some(tally) = ctx.call("whatsapp webhook", request, &[200]).await {
            if tally["accepted"] == 1 {
                ctx.inbound
                    .lock()
                    .unwrap()
                    .entry(from.clone())
                    .or_default()
                    .push(at);
            } else {
                ctx.stats
                    .error("whatsapp webhook", format!("{from}: not accepted: {tally}"));
            }
        }
    }
}

/// One payment: a pickup order for the receipt's amount, the receipt uploaded, polled to its
/// decision. `first_use` says whether the receipt's operation code is still unused.
async fn payment(ctx: Ctx, n: u64, receipt: (String, Arc<Vec<u8>>, String), first_use: bool) {
    let (name, image, amount) = receipt;
    ctx.begin("payment settled");
    let order = ctx
        .call(
            "order POST",
            ctx.admin(ctx.http.post(format!("{}/v1/orders", ctx.base)))
                .json(&json!({
                    "client_order_key": format!("soak-pay-{n}"),
                    "customer": {"phone": "+51 999 000 111"},
                    "type": "pickup",
                    "items": [{"name": "Pedido", "quantity": 1, "unit_price": amount}],
                })),
            &[201],
        )
        .await;
    let Some(order_id) = order.and_then(|o| o["order_id"].as_str().map(str::to_owned)) else {
        ctx.end("payment settled", false);
        return;
    };
    let (body, content_type) = multipart_image(&image);
    let at = Instant::now();
    let uploaded = ctx
        .call(
            "receipt POST",
            ctx.admin(
                ctx.http
                    .post(format!("{}/v1/orders/{order_id}/payments", ctx.base)),
            )
            .header("content-type", content_type)
            .body(body),
            &[202],
        )
        .await;
    let Some(payment_id) = uploaded.and_then(|p| p["payment_id"].as_str().map(str::to_owned))
    else {
        ctx.end("payment settled", false);
        return;
    };
    let settled = ctx
        .poll(
            "payment settled",
            &format!("/v1/payments/{payment_id}"),
            at,
            |p| p["status"] != "PENDING",
        )
        .await;
    // A receipt pays at most once. Its first use is ASSIGNED (order PAID), or MANUAL_REVIEW
    // when the OCR reads a key field with low confidence (a correct outcome: an operator
    // decides). A later use of a receipt that paid is REJECTED (duplicate operation code); of
    // one that went to review, REJECTED or MANUAL_REVIEW again. Anything else is wrong.
    let first = ctx.receipts.lock().unwrap().get(&name).cloned();
    let allowed: &[&str] = match (first_use, first.as_deref()) {
        (true, _) => &["ASSIGNED", "MANUAL_REVIEW"],
        (false, Some("ASSIGNED")) => &["REJECTED"],
        (false, _) => &["REJECTED", "MANUAL_REVIEW"],
    };
    let ok = match settled {
        Some(p) if allowed.iter().any(|a| p["status"] == *a) => {
            let status = p["status"].as_str().unwrap_or_default().to_owned();
            let reviewed_with_reasons = p["reasons"].as_array().is_some_and(|r| !r.is_empty());
            if status == "MANUAL_REVIEW" && !reviewed_with_reasons {
                ctx.stats.error(
                    "payment settled",
                    format!("{name} for {order_id}: MANUAL_REVIEW without a reason: {p}"),
                );
            }
            if first_use {
                ctx.receipts
                    .lock()
                    .unwrap()
                    .insert(name.clone(), status.clone());
            }
            if status == "ASSIGNED" {
                let order = ctx
                    .call(
                        "status GET",
                        ctx.admin(ctx.http.get(format!("{}/v1/orders/{order_id}", ctx.base))),
                        &[200],
                    )
                    .await;
                let paid = order.as_ref().is_some_and(|o| o["status"] == "PAID");
                if !paid {
                    ctx.stats
                        .error("payment settled", format!("{order_id} not PAID: {order:?}"));
                }
                paid
            } else {
                status != "MANUAL_REVIEW" || reviewed_with_reasons
            }
        }
        Some(p) => {
            ctx.stats.error(
                "payment settled",
                format!(
                    "{name} for {order_id}: {} instead of one of {allowed:?} (first use: {first:?}): {}",
                    p["status"], p["reasons"]
                ),
            );
            false
        }
        None => false,
    };
    ctx.end("payment settled", ok);
}

/// One route plan: eight delivery orders around Lima's centre, two drivers, polled to `DONE`.
async fn route_plan(ctx: Ctx, n: u64) {
    ctx.begin("route done");
    let mut order_ids = Vec::new();
    for i in 0..8 {
        let angle = (n * 8 + i) as f64 * 0.7;
        let radius = 0.01 + 0.004 * (i % 5) as f64;
        let order = ctx
            .call(
                "order POST",
                ctx.admin(ctx.http.post(format!("{}/v1/orders", ctx.base))).json(&json!({
                    "client_order_key": format!("soak-route-{n}-{i}"),
                    "customer": {"phone": "+51911222333"},
                    "type": "delivery",
                    "items": [{"name": "Caja", "quantity": 1 + i % 3, "unit_price": "10.00"}],
                    "location": {"lat": -12.05 + radius * angle.sin(), "lon": -77.04 + radius * angle.cos()}
                })),
                &[201],
            )
            .await;
        match order.and_then(|o| o["order_id"].as_str().map(str::to_owned)) {
            Some(id) => order_ids.push(id),
            None => {
                ctx.end("route done", false);
                return;
            }
        }
    }
    let at = Instant::now();
    let started = ctx
        .call(
            "route POST",
            ctx.admin(ctx.http.post(format!("{}/v1/routes", ctx.base)))
                .json(&json!({
                    "depot": {"lat": -12.05, "lon": -77.04},
                    "order_ids": order_ids,
                    "drivers": [{"id": "ana", "capacity": 12}, {"id": "beto", "capacity": 12}],
                    "options": {"time_limit_ms": 300, "seed": n}
                })),
            &[202],
        )
        .await;
    let Some(route_id) = started.and_then(|r| r["route_id"].as_str().map(str::to_owned)) else {
        ctx.end("route done", false);
        return;
    };
    let plan = ctx
        .poll("route done", &format!("/v1/routes/{route_id}"), at, |p| {
            p["status"] != "RUNNING" && p["status"] != "PENDING"
        })
        .await;
    let ok = match plan {
        Some(p) if p["status"] == "DONE" && p["result"]["unassigned"] == json!([]) => true,
        Some(p) => {
            ctx.stats.error(
                "route done",
                format!(
                    "{route_id}: {}",
                    p.to_string().chars().take(300).collect::<String>()
                ),
            );
            false
        }
        None => false,
    };
    ctx.end("route done", ok);
}

/// Calls `unit(n)` every `1 / rate` seconds until `until`, each in its own task.
fn clock<F, Fut>(
    rate: f64,
    until: Instant,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    mut unit: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut(u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        if rate <= 0.0 {
            return;
        }
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0;
        loop {
            ticks.tick().await;
            if Instant::now() >= until {
                return;
            }
            let handle = tokio::spawn(unit(n));
            tasks.lock().unwrap().push(handle);
            n += 1;
        }
    })
}

// ---------------------------------------------------------------------------------------------

struct Sample {
    at: Duration,
    api: u64,
    worker: u64,
    temporal: u64,
    sticky: Option<f64>,
    activities: Option<f64>,
}

#[tokio::main]
async fn main() {
    let seconds = env_f64("SOAK_SECONDS", 600.0);
    let warmup = env_f64("SOAK_WARMUP_SECONDS", 120.0).min(seconds / 3.0);
    let rate = env_f64("SOAK_RATE", 2.0);
    let payment_rate = env_f64("SOAK_PAYMENT_RATE", 0.1);
    let route_rate = env_f64("SOAK_ROUTE_RATE", 0.05);
    let drain = Duration::from_secs_f64(env_f64("SOAK_DRAIN_SECONDS", 120.0));
    let keep = std::env::var_os("SOAK_KEEP").is_some();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();

    // The Temporal dev server (in memory), then the deployment on its own SQLite file.
    let temporal = start_ephemeral();
    let api_port = free_port();
    let metrics_port = free_port();
    let db_url = format!("sqlite://{}/zengine.db", root.display());
    let mut env: Vec<(String, String)> = vec![
        ("TEMPORAL_ADDRESS".into(), temporal.address().to_owned()),
        ("DATABASE_URL".into(), db_url.clone()),
        ("ZENGINE_API__ADDR".into(), format!("127.0.0.1:{api_port}")),
        ("ZENGINE_API__ANONYMOUS__ENABLED".into(), "false".into()),
        ("ZENGINE_API__ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
        ("ZENGINE_API__WHATSAPP_APP_SECRET".into(), APP_SECRET.into()),
        ("ZENGINE_API__WEBCHAT_TIMEOUT_MS".into(), "55000".into()),
        (
            "ZENGINE_TEMPORAL__CODEC__ALLOW_DEV_KEY".into(),
            "true".into(),
        ),
        ("ZENGINE_TELEMETRY__FILTER".into(), "warn".into()),
        // The fake Graph API listens on loopback, which the outbound guard refuses by default.
        (
            "ZENGINE_WORKER__OUTBOUND__ALLOW_CIDRS".into(),
            r#"["127.0.0.0/8"]"#.into(),
        ),
        (
            "ZENGINE_WORKER__METRICS_ADDR".into(),
            format!("127.0.0.1:{metrics_port}"),
        ),
        (
            "ZENGINE_DEV_SERVER__BINARY".into(),
            std::fs::canonicalize(temporal_binary())
                .unwrap()
                .display()
                .to_string(),
        ),
    ];
    if let Ok(n) = std::env::var("SOAK_CACHED_WORKFLOWS") {
        env.push(("ZENGINE_WORKER__MAX_CACHED_WORKFLOWS".into(), n));
    }
    let spawn = |name: &'static str, args: &[&str]| {
        let log = root.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_zengine"))
            .args(args)
            .current_dir(&root)
            .env_remove("RUST_LOG")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn zengine {name}: {e}"));
        Proc { child, log }
    };
    let mut migrate = spawn("migrate", &["migrate", "--seed-demo"]);
    assert!(
        migrate.child.wait().unwrap().success(),
        "zengine migrate failed:\n{}",
        migrate.tail(50)
    );

    // Replies go to the Graph API fake; the shared receipts (dated 2025–2026) count as "after
    // the order".
    let sends: Sends = Arc::default();
    let graph = fake_graph(sends.clone()).await;
    let token_file = root.join("wa-token");
    std::fs::write(&token_file, "soak-token").unwrap();
    let demo = TenantId::parse("demo").unwrap();
    {
        let db = zengine_storage::Database::connect(&db_url, 1)
            .await
            .unwrap();
        db.channels()
            .upsert_account(&ChannelAccount {
                strategy: "whatsapp-meta-cloud".into(),
                account_key: DEMO_WHATSAPP_PHONE_NUMBER_ID.into(),
                tenant_id: demo.clone(),
                settings: json!({"api_base": graph, "api_version": "v23.0",
                                 "access_token": format!("file:{}", token_file.display())}),
            })
            .await
            .unwrap();
        db.payments()
            .set_settings(
                &demo,
                &PaymentSettings {
                    window_slack_minutes: 3 * 365 * 24 * 60,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        db.close().await;
    }

    let mut api = spawn("api", &["api"]);
    let mut worker = spawn("worker", &["worker"]);
    let base = format!("http://127.0.0.1:{api_port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let ready_by = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < ready_by,
            "the API did not become ready:\n{}",
            api.tail(50)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One turn end to end before the clock starts: the worker is polling.
    let warm: Value = http
        .post(format!("{base}/v1/webchat/messages"))
        .header("x-tenant-id", "demo")
        .header("x-idempotency-key", "soak-warm")
        .json(&json!({"session_id": "soak-warm", "text": "hola"}))
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(warm["turn"], 1, "{warm}\n{}", worker.tail(50));

    let (api_pid, worker_pid, temporal_pid) = (api.pid(), worker.pid(), temporal.pid());
    println!(
        "soak: {seconds:.0} s (warm-up {warmup:.0} s), {rate}/s webchat turns and {rate}/s WhatsApp \
         messages, {payment_rate}/s payments, {route_rate}/s route plans; api pid {api_pid}, \
         worker pid {worker_pid}, temporal pid {temporal_pid}; folder {}",
        root.display()
    );
    let stats = Arc::new(Stats {
        started: Instant::now(),
        samples: Mutex::default(),
        errors: Mutex::default(),
    });
    let ctx = Ctx {
        http: http.clone(),
        base: base.clone(),
        stats: stats.clone(),
        inbound: Arc::default(),
        done: Arc::default(),
        deadline: Arc::default(),
        receipts: Arc::default(),
    };
    let started = stats.started;
    let until = started + Duration::from_secs_f64(seconds);

    // Memory (and the worker's workflow cache and activity count) every 10 s.
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let sampler = {
        let samples = samples.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(SAMPLE_EVERY);
            loop {
                ticks.tick().await;
                let page = match http
                    .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                samples.lock().unwrap().push(Sample {
                    at: started.elapsed(),
                    api: rss_kib(api_pid),
                    worker: rss_kib(worker_pid),
                    temporal: rss_kib(temporal_pid),
                    sticky: metric(&page, "temporal_sticky_cache_size"),
                    activities: metric(&page, "temporal_activity_task_received_total")
                        .or_else(|| metric(&page, "temporal_activity_task_received")),
                });
            }
        })
    };

    let tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
    let receipts = Arc::new(receipts());
    let clocks = vec![
        clock(rate / 3.0, until, tasks.clone(), {
            let ctx = ctx.clone();
            move |n| webchat_session(ctx.clone(), n)
        }),
        clock(rate / 2.0, until, tasks.clone(), {
            let ctx = ctx.clone();
            move |n| whatsapp_contact(ctx.clone(), n)
        }),
        clock(payment_rate, until, tasks.clone(), {
            let ctx = ctx.clone();
            move |n| {
                let i = n as usize % receipts.len();
                let first_use = (n as usize) < receipts.len();
                payment(ctx.clone(), n, receipts[i].clone(), first_use)
            }
        }),
        clock(route_rate, until, tasks.clone(), {
            let ctx = ctx.clone();
            move |n| route_plan(ctx.clone(), n)
        }),
    ];
    for c in clocks {
        c.await.unwrap();
    }
    // The clocks return at their first tick after `until`; the load itself ended at `until`.
    let load_ended = Duration::from_secs_f64(seconds);
    let drain_started = Instant::now();
    *ctx.deadline.lock().unwrap() = Some(drain_started + drain);
    let handles: Vec<_> = std::mem::take(&mut *tasks.lock().unwrap());
    for h in handles {
        if tokio::time::timeout_at((drain_started + drain + REQUEST_TIMEOUT).into(), h)
            .await
            .is_err()
        {
            stats.error("drain", "a traffic task did not finish".into());
        }
    }
    // Every accepted WhatsApp message is answered by exactly one send: wait for the sends, then
    // a little longer for duplicates.
    let expected: HashMap<String, usize> = ctx
        .inbound
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.len()))
        .collect();
    let total_in: usize = expected.values().sum();
    let sent_now = || -> usize {
        let sends = sends.lock().unwrap();
        expected
            .keys()
            .map(|k| sends.get(k).map_or(0, Vec::len))
            .sum()
    };
    while sent_now() < total_in && drain_started.elapsed() < drain {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained = drain_started.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    sampler.abort();

    // ----- Results ------------------------------------------------------------------------
    let mut failures: Vec<String> = Vec::new();
    {
        let inbound = ctx.inbound.lock().unwrap();
        let sends = sends.lock().unwrap();
        let (mut missing, mut duplicated) = (0, 0);
        for (contact, ins) in inbound.iter() {
            let outs = sends.get(contact).map_or(&[][..], Vec::as_slice);
            if outs.len() < ins.len() {
                missing += ins.len() - outs.len();
            } else {
                duplicated += outs.len() - ins.len();
            }
            let mut outs = outs.to_vec();
            outs.sort();
            for (i, o) in ins.iter().zip(outs.iter()) {
                stats.record("whatsapp reply", *i, o.saturating_duration_since(*i));
            }
        }
        let strays: usize = sends
            .iter()
            .filter(|(k, _)| !inbound.contains_key(*k))
            .map(|(_, v)| v.len())
            .sum();
        if missing > 0 || duplicated > 0 || strays > 0 {
            failures.push(format!(
                "WhatsApp: {total_in} accepted messages, {missing} without a reply, {duplicated} \
                 extra replies, {strays} sends to unknown contacts"
            ));
        }
        println!(
            "\nWhatsApp: {total_in} accepted inbound messages from {} contacts; {} sends at the \
             fake; all answered {:.1} s into the drain",
            inbound.len(),
            sends.values().map(Vec::len).sum::<usize>(),
            drained.as_secs_f64()
        );
    }
    let errors = stats.errors.lock().unwrap().clone();
    if !errors.is_empty() {
        let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
        for (k, _) in &errors {
            *by_kind.entry(k).or_default() += 1;
        }
        failures.push(format!("{} errors: {by_kind:?}", errors.len()));
        println!("\nFirst errors:");
        for (k, e) in errors.iter().take(20) {
            println!("- {k}: {e}");
        }
    }
    for (kind, (started_n, ok)) in ctx.done.lock().unwrap().iter() {
        println!("{kind}: {ok} of {started_n} reached their final effect");
        if ok != started_n {
            failures.push(format!(
                "{kind}: {} of {started_n} lost or wrong",
                started_n - ok
            ));
        }
    }

    // Latency per kind per minute.
    let samples_l = stats.samples.lock().unwrap().clone();
    let kinds = [
        "webchat turn",
        "whatsapp webhook",
        "whatsapp reply",
        "order POST",
        "receipt POST",
        "payment settled",
        "route POST",
        "route done",
        "status GET",
    ];
    let minutes = samples_l.iter().map(|s| s.1).max().unwrap_or(0);
    println!(
        "\n### Latency per minute (ms; count / p50 / p99)\n\n| minute | {} |\n|---|{}",
        kinds.join(" | "),
        "---|".repeat(kinds.len())
    );
    let cell = |kind: &str, minute: Option<u64>| {
        let mut v: Vec<Duration> = samples_l
            .iter()
            .filter(|s| s.0 == kind && minute.is_none_or(|m| s.1 == m))
            .map(|s| s.2)
            .collect();
        if v.is_empty() {
            return "–".to_owned();
        }
        v.sort();
        format!(
            "{} / {} / {}",
            v.len(),
            ms(percentile(&v, 50.0)),
            ms(percentile(&v, 99.0))
        )
    };
    for m in 0..=minutes {
        let row: Vec<String> = kinds.iter().map(|k| cell(k, Some(m))).collect();
        println!("| {} | {} |", m + 1, row.join(" | "));
    }
    let row: Vec<String> = kinds.iter().map(|k| cell(k, None)).collect();
    println!("| all | {} |", row.join(" | "));

    // Memory.
    let samples = samples.lock().unwrap();
    println!(
        "\n### Resident memory (MiB) and worker state every {} s\n\n| t (s) | api | worker | temporal | workflows cached | activity tasks received |\n|---|---|---|---|---|---|",
        SAMPLE_EVERY.as_secs()
    );
    let mib = |k: u64| format!("{:.1}", k as f64 / 1024.0);
    let opt = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0}"));
    for s in samples.iter() {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            s.at.as_secs(),
            mib(s.api),
            mib(s.worker),
            mib(s.temporal),
            opt(s.sticky),
            opt(s.activities)
        );
    }
    let load: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at <= load_ended + SAMPLE_EVERY / 2)
        .collect();
    let after_warmup = load.iter().find(|s| s.at.as_secs_f64() >= warmup).copied();
    match (after_warmup, load.last()) {
        (Some(w), Some(end)) if end.at > w.at => {
            println!(
                "\n| process | after warm-up ({} s) | end of load ({} s) | growth |\n|---|---|---|---|",
                w.at.as_secs(),
                end.at.as_secs()
            );
            for (name, a, b) in [
                ("api", w.api, end.api),
                ("worker", w.worker, end.worker),
                ("temporal (not checked)", w.temporal, end.temporal),
            ] {
                let growth = (b as f64 - a as f64) / a.max(1) as f64;
                println!(
                    "| {name} | {} MiB | {} MiB | {:+.1} % |",
                    mib(a),
                    mib(b),
                    growth * 100.0
                );
                if !name.starts_with("temporal") && growth >= MAX_GROWTH {
                    failures.push(format!(
                        "{name} RSS grew {:.1} % after warm-up ({} → {} MiB)",
                        growth * 100.0,
                        mib(a),
                        mib(b)
                    ));
                }
            }
        }
        _ => failures.push("too few memory samples after warm-up".into()),
    }
    if let (Some(w), Some(end)) = (after_warmup, load.last())
        && let (Some(a), Some(b)) = (w.sticky, end.sticky)
        && b > a
    {
        println!(
            "\nThe worker's workflow caches still grew after warm-up ({a:.0} → {b:.0} workflows; \
             bounded by `worker.max_cached_workflows` per task queue): part of the worker's \
             growth is the cache filling, see SOAK_CACHED_WORKFLOWS."
        );
    }

    let api_ok = api.stop();
    let worker_ok = worker.stop();
    let _ = temporal.stop(Duration::from_secs(20));
    if !api_ok || !worker_ok {
        failures.push(format!(
            "shutdown on SIGTERM: api clean {api_ok}, worker clean {worker_ok}"
        ));
    }
    if failures.is_empty() {
        println!("\nsoak: PASS");
    } else {
        println!("\nsoak: FAIL");
        for f in &failures {
            println!("- {f}");
        }
        println!(
            "\napi log tail:\n{}\n\nworker log tail:\n{}",
            api.tail(20),
            worker.tail(20)
        );
    }
    if keep || !failures.is_empty() {
        let kept = dir.keep();
        println!("logs kept in {}", kept.display());
    }
    std::process::exit(if failures.is_empty() { 0 } else { 1 });
}
