//! End-to-end tests of the `zengine` binary as operators run it: real processes, real signals,
//! the real Temporal dev server.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use zengine_workers::devserver::free_port;
use zengine_workers::testing::{shared_dev_server, temporal_binary, unique_prefix};

#[path = "e2e/crash_sends.rs"]
mod crash_sends;
#[path = "e2e/faults.rs"]
mod faults;
#[path = "e2e/otlp.rs"]
mod otlp;
#[path = "e2e/properties.rs"]
mod properties;

/// The number after `label` in a tool's report (`Tested: 62` → 62); 0 when absent.
fn count_after(report: &str, label: &str) -> usize {
    report
        .split(label)
        .nth(1)
        .and_then(|rest| {
            rest.trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// A child process that is killed if the test panics.
struct Proc {
    name: &'static str,
    child: Option<Child>,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: Command) -> Self {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Self {
            name,
            child: Some(child),
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().unwrap().id() as i32)
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    /// Waits for the process to exit by itself within `limit`.
    fn wait(mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{} did not exit within {limit:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn zengine(dir: &Path, log: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zengine"));
    let log = std::fs::File::create(dir.join(log)).unwrap();
    cmd.current_dir(dir)
        .env_remove("TEMPORAL_ADDRESS")
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env("ZENGINE_WORKER__METRICS_ADDR", "")
        .env(
            "ZENGINE_DEV_SERVER__BINARY",
            std::fs::canonicalize(temporal_binary()).unwrap(),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    cmd
}

async fn wait_healthy(base: &str, proc_name: &str) {
    wait_healthy_logged(base, proc_name, None).await
}

/// Like [`wait_healthy`]; on failure the panic shows the process's log.
async fn wait_healthy_logged(base: &str, proc_name: &str, log: Option<&Path>) {
    if let Err(failure) = poll_healthy(base, || None).await {
        let log = log
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        panic!("{proc_name} {failure}; its log:\n{log}");
    }
}

/// Polls `{base}/healthz` for up to 90 s until it answers 2xx. `exited` is asked on every
/// round whether the process has exited (so a dead process fails at once, not after 90 s).
async fn poll_healthy(
    base: &str,
    mut exited: impl FnMut() -> Option<ExitStatus>,
) -> Result<(), NotHealthy> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await
            && r.status().is_success()
        {
            return Ok(());
        }
        if let Some(status) = exited() {
            return Err(NotHealthy::Exited(status));
        }
        if Instant::now() >= deadline {
            return Err(NotHealthy::Timeout(base.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Why [`poll_healthy`] gave up.
enum NotHealthy {
    Exited(ExitStatus),
    Timeout(String),
}

impl std::fmt::Display for NotHealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited(status) => write!(f, "exited ({status}) before it was healthy"),
            Self::Timeout(base) => write!(f, "did not become healthy at {base}"),
        }
    }
}

/// The ports of one `zengine dev` ([`start_dev`]).
struct DevPorts {
    api: u16,
    temporal: u16,
    ui: u16,
}

impl DevPorts {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.api)
    }

    /// `zengine dev` in `dir` on these ports, logging to `dir/log`.
    fn command(&self, dir: &Path, log: &str) -> Command {
        let mut cmd = zengine(dir, log);
        cmd.arg("dev")
            .env("ZENGINE_API__ADDR", format!("127.0.0.1:{}", self.api))
            // Many requests from one address; the limits have their own tests.
            .env("ZENGINE_API__ANONYMOUS__ENABLED", "false")
            .env("ZENGINE_DEV_SERVER__PORT", self.temporal.to_string())
            .env("ZENGINE_DEV_SERVER__UI_PORT", self.ui.to_string());
        cmd
    }
}

/// Starts `zengine dev` in `dir` on fresh ports (`configure` adds settings) and waits until it
/// is healthy. The Temporal dev server picks some of its own ports by binding port 0 and
/// binding the port again a moment later; when another process takes one in between, it dies
/// during start-up, and so does `zengine dev`: such a start is retried on new ports (three
/// attempts). Any other failure panics with the log.
async fn start_dev(dir: &Path, log: &str, configure: impl Fn(&mut Command)) -> (Proc, DevPorts) {
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        let ports = DevPorts {
            api: free_port(),
            temporal: free_port(),
            ui: free_port(),
        };
        let mut cmd = ports.command(dir, log);
        configure(&mut cmd);
        let mut dev = Proc::spawn("zengine dev", cmd);
        let healthy = poll_healthy(&ports.base(), || {
            dev.child.as_mut().unwrap().try_wait().unwrap()
        })
        .await;
        let text = std::fs::read_to_string(dir.join(log)).unwrap_or_default();
        match healthy {
            Ok(()) => return (dev, ports),
            Err(NotHealthy::Exited(_))
                if attempt < ATTEMPTS
                    && text.contains("the Temporal dev server exited during start-up") =>
            {
                eprintln!(
                    "zengine dev: the Temporal dev server died starting (attempt {attempt}); retrying:\n{text}"
                );
            }
            Err(failure) => panic!("zengine dev {failure}; its log:\n{text}"),
        }
    }
    unreachable!("the last attempt returns or panics")
}

async fn say(base: &str, session: &str, key: &str, text: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/webchat/messages"))
        .header("x-tenant-id", "demo")
        .header("x-idempotency-key", key)
        .header("x-correlation-id", format!("corr-{key}"))
        .json(&json!({"session_id": session, "text": text}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body
}

fn first_text(reply: &Value) -> String {
    reply["replies"][0]["text"].as_str().unwrap().to_owned()
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(300),
    )
    .is_ok()
}

#[tokio::test]
async fn dev_runs_everything_stops_cleanly_on_sigterm_and_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (dev, ports) = start_dev(dir.path(), "dev-1.log", |_| {}).await;
    let (api_port, temporal_port, ui_port) = (ports.api, ports.temporal, ports.ui);
    let base = ports.base();

    let first = say(&base, "tour", "tour-1", "hola").await;
    let second = say(&base, "tour", "tour-2", "Ana").await;
    assert!(first_text(&first).contains("¿Cómo te llamas?"));
    assert_eq!(
        first_text(&second),
        "Mucho gusto, Ana. ¿En qué te puedo ayudar hoy?"
    );
    let ui = reqwest::get(format!("http://127.0.0.1:{ui_port}/"))
        .await
        .unwrap();
    assert!(ui.status().is_success(), "Temporal Web UI answers");
    assert!(dir.path().join("data/zengine.db").exists());
    assert!(dir.path().join("data/temporal.db").exists());

    dev.signal(Signal::SIGTERM);
    let status = dev.wait(Duration::from_secs(60));
    assert!(status.success(), "zengine dev exited with {status}");
    assert!(
        !port_open(temporal_port),
        "the Temporal dev server outlived zengine dev"
    );
    assert!(!port_open(api_port));

    // Same folder, same files: the conversation continues where it stopped.
    // The restart reuses the same ports (and so the same addresses for clients).
    let dev = Proc::spawn("zengine dev", ports.command(dir.path(), "dev-2.log"));
    wait_healthy(&base, "zengine dev (restarted)").await;
    let third = say(&base, "tour", "tour-3", "quiero un pedido").await;
    assert_eq!(third["turn"], 3);
    assert!(first_text(&third).contains("Ana"), "{third}");
    // The first run's idempotency record survived the restart too.
    let again = say(&base, "tour", "tour-2", "Ana").await;
    assert_eq!(again, second);

    dev.signal(Signal::SIGINT);
    assert!(dev.wait(Duration::from_secs(60)).success());
    assert!(!port_open(temporal_port));
}

/// A `zengine api` + `zengine worker` deployment on the shared dev server, as operators run it:
/// its own SQLite file, task-queue prefix and API port; migrated and seeded on creation.
struct Cluster {
    dir: tempfile::TempDir,
    base: String,
    db_url: String,
    env: Vec<(String, String)>,
}

impl Cluster {
    /// `extra` settings apply after (and so override) the defaults.
    fn new(name: &str, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let api_port = free_port();
        let db_url = format!("sqlite://{}/zengine.db", dir.path().display());
        let mut env: Vec<(String, String)> = [
            ("TEMPORAL_ADDRESS", shared_dev_server().to_owned()),
            ("DATABASE_URL", db_url.clone()),
            ("ZENGINE_TEMPORAL__TASK_QUEUE_PREFIX", unique_prefix(name)),
            ("ZENGINE_API__ADDR", format!("127.0.0.1:{api_port}")),
            ("ZENGINE_API__ANONYMOUS__ENABLED", "false".to_owned()),
            ("ZENGINE_API__WEBCHAT_TIMEOUT_MS", "60000".to_owned()),
            // Test clusters encrypt payloads with the public development key.
            ("ZENGINE_TEMPORAL__CODEC__ALLOW_DEV_KEY", "true".to_owned()),
            // The fakes of tenant backends and provider APIs listen on loopback, which the
            // outbound guard refuses by default.
            (
                "ZENGINE_WORKER__OUTBOUND__ALLOW_CIDRS",
                r#"["127.0.0.0/8"]"#.to_owned(),
            ),
            (
                "ZENGINE_API__OUTBOUND__ALLOW_CIDRS",
                r#"["127.0.0.0/8"]"#.to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let cluster = Self {
            dir,
            base: format!("http://127.0.0.1:{api_port}"),
            db_url,
            env,
        };
        let status = cluster
            .command("migrate.log")
            .args(["migrate", "--seed-demo"])
            .status()
            .unwrap();
        assert!(status.success());
        cluster
    }

    fn command(&self, log: &str) -> Command {
        let mut cmd = zengine(self.dir.path(), log);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Waits for the API; on failure the panic shows `api.log`.
    async fn wait_api(&self) {
        let log = self.dir.path().join("api.log");
        wait_healthy_logged(&self.base, "zengine api", Some(&log)).await
    }

    fn api(&self) -> Proc {
        let mut cmd = self.command("api.log");
        cmd.arg("api");
        Proc::spawn("zengine api", cmd)
    }

    fn worker(&self, log: &str) -> Proc {
        self.worker_on(log, "conversations", &[])
    }

    /// A worker process on `queues` (comma-separated) with `extra` settings.
    fn worker_on(&self, log: &str, queues: &str, extra: &[(&str, &str)]) -> Proc {
        let mut cmd = self.command(log);
        cmd.args(["worker", "--queues", queues])
            .envs(extra.iter().copied());
        Proc::spawn("zengine worker", cmd)
    }
}

#[tokio::test]
async fn a_worker_killed_between_two_messages_loses_nothing() {
    let cluster = Cluster::new(
        "e2e",
        &[(
            "ZENGINE_WORKER__STICKY_SCHEDULE_TO_START_TIMEOUT_MS",
            "1000",
        )],
    );
    let base = cluster.base.clone();
    let api = cluster.api();
    let start_worker = |log: &str| cluster.worker(log);
    let worker = start_worker("worker-1.log");
    cluster.wait_api().await;
    say(&base, "k", "kill-1", "hola").await;

    worker.signal(Signal::SIGKILL);
    let _ = worker.wait(Duration::from_secs(10));
    let pending = tokio::spawn({
        let base = base.clone();
        async move { say(&base, "k", "kill-2", "Ana").await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !pending.is_finished(),
        "no worker is running, nothing can answer yet"
    );
    let worker = start_worker("worker-2.log");

    let second = tokio::time::timeout(Duration::from_secs(60), pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second["turn"], 2);
    assert_eq!(
        first_text(&second),
        "Mucho gusto, Ana. ¿En qué te puedo ayudar hoy?"
    );

    // Paths that carry a phone number, routed (the contact is a path parameter) and not.
    let http = reqwest::Client::new();
    for (path, correlation) in [
        (
            "/v1/conversations/demo/whatsapp/+5215599887766/return-to-bot",
            "corr-phone-routed",
        ),
        ("/v1/no-such-route/+5215599887766", "corr-phone-unmatched"),
    ] {
        let response = http
            .post(format!("{base}{path}"))
            .header("x-correlation-id", correlation)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{path}");
    }

    worker.signal(Signal::SIGTERM);
    assert!(worker.wait(Duration::from_secs(30)).success());
    api.signal(Signal::SIGTERM);
    assert!(api.wait(Duration::from_secs(30)).success());

    // Request logs name the route template, never the raw path: no phone number in the log.
    let log = std::fs::read_to_string(cluster.dir.path().join("api.log")).unwrap();
    assert!(
        !log.contains("5599887766"),
        "a phone number reached the log"
    );
    for (correlation, route) in [
        (
            "corr-phone-routed",
            "/v1/conversations/{tenant}/{channel}/{contact}/return-to-bot",
        ),
        ("corr-phone-unmatched", "unmatched"),
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(correlation) && l.contains("request finished"))
            .unwrap_or_else(|| panic!("no request log line for {correlation}"));
        let line: Value = serde_json::from_str(line).unwrap();
        assert_eq!(line["span"]["route"], route, "{line}");
    }

    // JSON logs carry the business keys.
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l.to_string().contains("corr-kill-2"))
        .expect("a JSON log line of the second request");
    let text = line.to_string();
    assert!(text.contains("\"tenant_id\":\"demo\""), "{text}");
    assert!(text.contains("demo/conversation/webchat/k"), "{text}");
}

#[test]
fn config_shows_secrets_redacted_and_rejects_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let output = zengine_output(
        dir.path(),
        &[
            ("DATABASE_URL", "postgres://app:hunter2@db/zengine"),
            ("TEMPORAL_NAMESPACE", "zengine-prod.a1b2c"),
        ],
    );
    assert!(output.status.success());
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        shown.contains("REDACTED") && !shown.contains("hunter2"),
        "{shown}"
    );
    assert!(
        shown.contains("namespace: \"zengine-prod.a1b2c\""),
        "{shown}"
    );

    // Test-harness variables share the prefix but are not settings.
    let output = zengine_output(
        dir.path(),
        &[("ZENGINE_SHARED_DIR", "/x"), ("ZENGINE_TEMPORAL_BIN", "/y")],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // So are a user's own variables that name no section (docs/operators.md keeps a JWT key in
    // ZENGINE_JWT_KEY and points a setting at it with `env:`).
    let output = zengine_output(
        dir.path(),
        &[
            ("ZENGINE_JWT_KEY", "k"),
            (
                "ZENGINE_API__AUTH__JWT__HS256_SECRET",
                "env:ZENGINE_JWT_KEY",
            ),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A variable that starts with a section's name is a setting: unknown keys and a single `_`
    // where `__` belongs are refused, not ignored.
    for (variable, named) in [
        ("ZENGINE_API__NO_SUCH_KEY", "no_such_key"),
        ("ZENGINE_API_ADMIN_TOKEN", "api_admin_token"),
        ("ZENGINE_DATABASE", "DATABASE"),
    ] {
        let output = zengine_output(dir.path(), &[(variable, "1")]);
        assert_eq!(output.status.code(), Some(2), "{variable}");
        let error = String::from_utf8_lossy(&output.stderr);
        assert!(error.contains(named), "{variable}: {error}");
    }
    // The operator commands that load settings refuse them the same way, before connecting.
    for args in [
        &["workflows", "list", "--tenant", "demo"][..],
        &["replay", "missing.binpb"][..],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_zengine"))
            .current_dir(dir.path())
            .args(args)
            .env("ZENGINE_API__NO_SUCH_KEY", "1")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let error = String::from_utf8_lossy(&output.stderr);
        assert!(error.contains("no_such_key"), "{args:?}: {error}");
    }
}

#[test]
fn the_api_refuses_to_run_without_a_contact_id_key_outside_development() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("codec.key");
    std::fs::write(&key, "00".repeat(32)).unwrap();
    let config = dir.path().join("zengine.toml");
    std::fs::write(
        &config,
        format!(
            "[[temporal.codec.keys]]\nid = \"k1\"\nsecret_ref = \"file:{}\"\nprimary = true\n",
            key.display()
        ),
    )
    .unwrap();
    let run = |contact_key: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zengine"));
        cmd.current_dir(dir.path())
            .arg("api")
            .env("ZENGINE_CONFIG", &config)
            .env("TEMPORAL_ADDRESS", "127.0.0.1:1")
            .env("ZENGINE_TEMPORAL__CONNECT_TIMEOUT_SECS", "1");
        if let Some(k) = contact_key {
            cmd.env("ZENGINE_API__CONTACT_ID_KEY", k);
        }
        let output = cmd.output().unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let error = run(None);
    assert!(error.contains("api.contact_id_key is not set"), "{error}");
    // With a key the check passes and the next failure is the connection.
    let error = run(Some("a-random-deployment-secret"));
    assert!(!error.contains("contact_id_key"), "{error}");
}

#[test]
fn api_and_worker_refuse_to_run_without_encryption_keys_unless_the_dev_key_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    for role in ["api", "worker"] {
        let output = Command::new(env!("CARGO_BIN_EXE_zengine"))
            .current_dir(dir.path())
            .arg(role)
            .env("TEMPORAL_ADDRESS", "127.0.0.1:1")
            .env("ZENGINE_TEMPORAL__CONNECT_TIMEOUT_SECS", "1")
            .env_remove("ZENGINE_CONFIG")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{role}");
        let error = String::from_utf8_lossy(&output.stderr);
        assert!(
            error.contains("no payload encryption keys"),
            "{role}: {error}"
        );
    }
    // With the dev key allowed the check passes and the next failure is the connection.
    let output = Command::new(env!("CARGO_BIN_EXE_zengine"))
        .current_dir(dir.path())
        .arg("api")
        .env("TEMPORAL_ADDRESS", "127.0.0.1:1")
        .env("ZENGINE_TEMPORAL__CONNECT_TIMEOUT_SECS", "1")
        .env("ZENGINE_TEMPORAL__CODEC__ALLOW_DEV_KEY", "true")
        .env_remove("ZENGINE_CONFIG")
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!error.contains("no payload encryption keys"), "{error}");
    assert!(error.contains("Failed to connect to Temporal"), "{error}");
}

fn zengine_output(dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zengine"));
    cmd.current_dir(dir)
        .arg("config")
        .env_remove("DATABASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn flow_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_zengine"))
        .arg("flow")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn flow_validate_reports_located_errors_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/workflows/flows");
    let ok = flow_cli(&[
        "validate",
        &format!("{examples}/restaurant.json"),
        &format!("{examples}/hotel.json"),
    ]);
    assert_eq!(ok.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("restaurant.json: ok (32 nodes)"));

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"schema_version":1,"id":"x","version":1,"start":"a","nodes":[
            {"id":"a","type":"message","text":"hola {{nombre}}","next":"b"},
            {"id":"b","type":"jump","to":"a"}]}"#,
    )
    .unwrap();
    let invalid = flow_cli(&["validate", bad.to_str().unwrap()]);
    assert_eq!(invalid.status.code(), Some(1));
    let out = String::from_utf8_lossy(&invalid.stdout);
    assert!(
        out.contains("node `a`, field `text`: unknown variable `nombre`"),
        "{out}"
    );
    assert!(
        out.contains("part of a loop that never waits for input"),
        "{out}"
    );

    std::fs::write(&bad, "{ not json").unwrap();
    assert_eq!(
        flow_cli(&["validate", bad.to_str().unwrap()]).status.code(),
        Some(1)
    );
    assert_eq!(
        flow_cli(&["validate", "/no/such/file.json"]).status.code(),
        Some(2)
    );
}

#[test]
fn flow_simulate_prints_the_transcript_of_the_real_interpreter() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.txt");
    std::fs::write(
        &script,
        "# a hotel booking\nhola\n10/01/2031\n2\nsuite\nAna\nana@example.com\nsi\n",
    )
    .unwrap();
    let hotel = concat!(env!("CARGO_MANIFEST_DIR"), "/workflows/flows/hotel.json");
    let out = flow_cli(&["simulate", hotel, "--script", script.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(transcript.contains("> ana@example.com\n< Ana: habitación suite, 2 noche(s) desde el 2031-01-10. Total S/ 840. ¿Confirmo?"), "{transcript}");
    assert!(
        transcript.contains("< ¡Listo, Ana! Tu reserva quedó registrada"),
        "{transcript}"
    );
    assert!(
        transcript.ends_with("-- 7 turn(s); state: SurveyRating; mode: Bot\n"),
        "{transcript}"
    );

    let restaurant = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workflows/flows/restaurant.json"
    );
    let out = flow_cli(&[
        "simulate",
        restaurant,
        "--input",
        "hola",
        "--input",
        "ceviche",
        "--input",
        "1",
        "--input",
        "no",
        "--input",
        "recojo",
        "--input",
        "ya pagué",
        "--input",
        "??",
        "--input",
        "???",
        "--input",
        "hola?",
        "--auto-return",
    ]);
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(transcript.contains("[handoff to pedidos"), "{transcript}");
    assert!(
        transcript.contains("[operator returns the conversation to the bot]"),
        "{transcript}"
    );
}

#[tokio::test]
async fn three_worker_processes_share_300_conversations_losing_and_duplicating_none() {
    use futures::StreamExt;
    use temporalio_client::WorkflowFetchHistoryOptions;
    use temporalio_common::protos::temporal::api::enums::v1::EventType;
    use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
    use zengine_workers::{TemporalSettings, connect};
    use zengine_workflows::ConversationWorkflow;

    let cluster = Cluster::new("scale", &[]);
    let base = cluster.base.clone();
    let temporal = shared_dev_server();
    let api = cluster.api();
    let workers: Vec<Proc> = (0..3)
        .map(|i| cluster.worker(&format!("worker-{i}.log")))
        .collect();
    cluster.wait_api().await;

    let replies: Vec<Value> = futures::stream::iter(0..300)
        .map(|i| {
            let base = base.clone();
            async move {
                say(
                    &base,
                    &format!("scale-{i}"),
                    &format!("scale-{i}-1"),
                    "hola",
                )
                .await
            }
        })
        .buffer_unordered(30)
        .collect()
        .await;
    assert_eq!(replies.len(), 300);
    assert!(
        replies
            .iter()
            .all(|r| r["turn"] == 1 && first_text(r).contains("¿Cómo te llamas?"))
    );

    let client = connect(
        &TemporalSettings {
            address: temporal.to_owned(),
            ..TemporalSettings::default()
        },
        "e2e-scale",
    )
    .await
    .unwrap();
    let mut by_worker = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..300 {
        let events = client
            .get_workflow_handle::<ConversationWorkflow>(format!(
                "demo/conversation/webchat/scale-{i}"
            ))
            .fetch_history(WorkflowFetchHistoryOptions::default())
            .into_events()
            .await
            .unwrap();
        let updates = events
            .iter()
            .filter(|e| e.event_type == EventType::WorkflowExecutionUpdateCompleted as i32)
            .count();
        assert_eq!(
            updates, 1,
            "scale-{i}: the message was handled exactly once"
        );
        let identity = events
            .iter()
            .find_map(|e| match &e.attributes {
                Some(Attributes::WorkflowTaskStartedEventAttributes(a)) => Some(a.identity.clone()),
                _ => None,
            })
            .expect("a workflow task ran");
        *by_worker.entry(identity).or_default() += 1;
    }
    assert_eq!(
        by_worker.len(),
        3,
        "all three workers took work: {by_worker:?}"
    );
    assert!(
        by_worker.values().all(|&n| n >= 30),
        "work is spread: {by_worker:?}"
    );

    for worker in workers {
        worker.signal(Signal::SIGTERM);
        assert!(worker.wait(Duration::from_secs(30)).success());
    }
    api.signal(Signal::SIGTERM);
    assert!(api.wait(Duration::from_secs(30)).success());
}

#[tokio::test]
async fn a_worker_killed_in_the_middle_of_an_activity_is_retried_elsewhere_with_one_side_effect() {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::Json;
    use axum::http::HeaderMap;
    use axum::routing::post;

    // A provider that, like real payment/order APIs, applies each idempotency key once. The first
    // call hangs (the worker handling it is killed meanwhile).
    #[derive(Default)]
    struct Backend {
        calls: Vec<String>,
        applied: HashMap<String, Value>,
    }
    let backend: Arc<Mutex<Backend>> = Arc::default();
    let state = backend.clone();
    let router = axum::Router::new().route(
        "/orders",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let state = state.clone();
            async move {
                let key = headers["idempotency-key"].to_str().unwrap().to_owned();
                let first = {
                    let mut b = state.lock().unwrap();
                    b.calls.push(key.clone());
                    b.calls.len() == 1
                };
                if first {
                    tokio::time::sleep(Duration::from_secs(120)).await;
                }
                let mut b = state.lock().unwrap();
                let n = b.applied.len() + 1;
                let reply = b
                    .applied
                    .entry(key)
                    .or_insert_with(|| json!({"id": format!("A-{n}"), "item": body["item"]}))
                    .clone();
                Json(reply)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let cluster = Cluster::new(
        "killact",
        &[
            (
                "ZENGINE_WORKER__STICKY_SCHEDULE_TO_START_TIMEOUT_MS",
                "1000",
            ),
            ("ZENGINE_API__ADMIN_TOKEN", "t0ken"),
            ("ZENGINE_API__WEBCHAT_TIMEOUT_MS", "90000"),
        ],
    );
    let base = cluster.base.clone();
    let db = zengine_storage::Database::connect(&cluster.db_url, 1)
        .await
        .unwrap();
    let demo = zengine_domain::TenantId::parse("demo").unwrap();
    db.tenants()
        .set_allowed_http_hosts(&demo, &["127.0.0.1".into()])
        .await
        .unwrap();
    db.close().await;

    let api = cluster.api();
    let start_worker = |log: &str| cluster.worker(log);
    let first_worker = start_worker("worker-1.log");
    cluster.wait_api().await;
    let flow = json!({"schema_version": 1, "id": "x", "version": 0, "start": "q", "nodes": [
        {"id": "q", "type": "question", "text": "¿Qué pides?", "save_as": "item", "next": "call"},
        {"id": "call", "type": "command", "command": "http_request", "save_as": "order",
         "params": {"method": "POST", "url": format!("http://127.0.0.1:{backend_port}/orders"), "body": {"item": "{{item}}"}},
         "next": "ok", "on_failure": "ko"},
        {"id": "ok", "type": "end", "text": "Pedido {{order.body.id}}"},
        {"id": "ko", "type": "end", "text": "Falló: {{last_error}}"}
    ]});
    let published = reqwest::Client::new()
        .put(format!("{base}/v1/tenants/demo/flows/orders?main=true"))
        .bearer_auth("t0ken")
        .json(&flow)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), reqwest::StatusCode::CREATED);

    say(&base, "kill-act", "ka-1", "hola").await;
    let pending = tokio::spawn({
        let base = base.clone();
        async move { say(&base, "kill-act", "ka-2", "pizza").await }
    });
    // Wait until the provider holds the first call, then kill the worker running that activity.
    let deadline = Instant::now() + Duration::from_secs(30);
    while backend.lock().unwrap().calls.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the activity never called the provider"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first_worker.signal(Signal::SIGKILL);
    let _ = first_worker.wait(Duration::from_secs(10));
    let second_worker = start_worker("worker-2.log");

    // The activity times out on the dead worker (start-to-close 30 s) and is retried on the new one.
    let reply = tokio::time::timeout(Duration::from_secs(85), pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first_text(&reply), "Pedido A-1", "{reply}");
    let b = backend.lock().unwrap();
    assert_eq!(b.calls.len(), 2, "the activity ran twice: {:?}", b.calls);
    assert_eq!(
        b.calls[0], b.calls[1],
        "both attempts carried the same idempotency key"
    );
    assert_eq!(b.applied.len(), 1, "one side effect");
    drop(b);

    second_worker.signal(Signal::SIGTERM);
    assert!(second_worker.wait(Duration::from_secs(30)).success());
    api.signal(Signal::SIGTERM);
    assert!(api.wait(Duration::from_secs(30)).success());
}

/// Posts a WhatsApp Cloud API webhook body signed with `app_secret` (`X-Hub-Signature-256`).
async fn post_whatsapp(
    http: &reqwest::Client,
    base: &str,
    app_secret: &str,
    body: String,
) -> reqwest::Response {
    let signature = zengine_workers::testing::whatsapp_signature(app_secret, body.as_bytes());
    http.post(format!("{base}/v1/webhooks/whatsapp"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A Graph API fake for the console test: refuses every send (a non-retryable 400, so the
/// reply dead-letters at once) until `accept` is set; counts the sends it accepted.
async fn switchable_graph(
    accept: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> String {
    use std::sync::atomic::Ordering;
    let app = axum::Router::new().route(
        "/{version}/{phone}/messages",
        axum::routing::post(move || {
            let accept = accept.clone();
            let accepted = accepted.clone();
            async move {
                if accept.load(Ordering::SeqCst) {
                    let n = accepted.fetch_add(1, Ordering::SeqCst);
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"messaging_product": "whatsapp",
                                          "messages": [{"id": format!("wamid.console-{n}")}]})),
                    )
                } else {
                    (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(json!({"error": {"message": "(#100) Invalid parameter",
                                                    "type": "OAuthException", "code": 100}})),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn multipart_image(bytes: &[u8]) -> (Vec<u8>, String) {
    let boundary = "zengine-console-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"receipt.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

/// Points the demo tenant's WhatsApp Cloud number at `api_base` (a Graph API fake), its access
/// token read through `token_ref`.
async fn demo_whatsapp_at(db: &zengine_storage::Database, api_base: &str, token_ref: &str) {
    db.channels()
        .upsert_account(&zengine_storage::ChannelAccount {
            strategy: "whatsapp-meta-cloud".into(),
            account_key: zengine_storage::seed::DEMO_WHATSAPP_PHONE_NUMBER_ID.into(),
            tenant_id: zengine_domain::TenantId::parse("demo").unwrap(),
            settings: json!({"api_base": api_base, "api_version": "v23.0",
                             "access_token": token_ref}),
        })
        .await
        .unwrap();
}

/// Polls `GET path` (admin token, demo tenant) until `done` holds for the JSON answer.
async fn poll_admin(base: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let response = reqwest::Client::new()
            .get(format!("{base}{path}"))
            .bearer_auth("console-admin")
            .header("x-tenant-id", "demo")
            .send()
            .await
            .unwrap();
        if response.status().is_success() {
            last = response.json().await.unwrap();
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{path} never showed what was expected; last answer: {last}");
}

#[tokio::test]
async fn operator_console_reviews_a_payment_redrives_a_message_and_opens_a_report() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let console = repo.join("console");
    assert!(
        console.join("dist/index.html").exists(),
        "the console is not built: run `make console` (make test does)"
    );
    check_browser();
    let jwt_key = "console-e2e-hs256-key-0123456789abcdef";
    let idp_port = free_port();
    let app_secret = "console-app-secret";
    let cluster = Cluster::new(
        "console",
        &[
            ("ZENGINE_API__ADMIN_TOKEN", "console-admin"),
            ("CONSOLE_E2E_JWT", jwt_key),
            (
                "ZENGINE_API__AUTH__JWT__HS256_SECRET",
                "env:CONSOLE_E2E_JWT",
            ),
            ("ZENGINE_API__WHATSAPP_APP_SECRET", app_secret),
            ("ZENGINE_API__WHATSAPP_VERIFY_TOKEN", "console-verify"),
            (
                "ZENGINE_API__CONSOLE__DIR",
                console.join("dist").to_str().unwrap(),
            ),
            (
                "ZENGINE_API__CONSOLE__OIDC_AUTHORIZE_URL",
                &format!("http://127.0.0.1:{idp_port}/authorize"),
            ),
            (
                "ZENGINE_API__CONSOLE__OIDC_TOKEN_URL",
                &format!("http://127.0.0.1:{idp_port}/token"),
            ),
            ("ZENGINE_API__CONSOLE__OIDC_CLIENT_ID", "zengine-console"),
            ("CONSOLE_E2E_WA_TOKEN", "console-wa-token"),
        ],
    );
    // The demo tenant's WhatsApp replies go to a fake that refuses them until told otherwise.
    let accept = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let graph = switchable_graph(accept.clone(), accepted.clone()).await;
    {
        let db = zengine_storage::Database::connect(&cluster.db_url, 1)
            .await
            .unwrap();
        demo_whatsapp_at(&db, &graph, "env:CONSOLE_E2E_WA_TOKEN").await;
    }
    let _api = cluster.api();
    let mut worker_cmd = cluster.command("worker.log");
    worker_cmd.arg("worker");
    let _worker = Proc::spawn("zengine worker", worker_cmd);
    cluster.wait_api().await;
    let base = cluster.base.clone();
    let http = reqwest::Client::new();
    let admin =
        |r: reqwest::RequestBuilder| r.bearer_auth("console-admin").header("x-tenant-id", "demo");

    // The page and its config are served; nothing outside the folder is.
    let page = http.get(format!("{base}/console/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("ZEngine console"));
    let config: Value = http
        .get(format!("{base}/console/config.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["oidc"]["client_id"], "zengine-console");
    for escape in [
        "/console/..%2F..%2FCargo.toml",
        "/console/.vite/manifest.json",
    ] {
        let r = http.get(format!("{base}{escape}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{escape}");
    }

    // A payment in review: a receipt whose amount is not the order's total.
    let order: Value = admin(http.post(format!("{base}/v1/orders")))
        .json(
            &json!({"client_order_key": "console-1", "customer": {"phone": "+51 999 000 222"},
                      "type": "pickup",
                      "items": [{"name": "Pedido", "quantity": 1, "unit_price": "12.00"}]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_id = order["order_id"].as_str().expect("order id").to_owned();
    let shared = std::env::var("ZENGINE_SHARED_DIR")
        .unwrap_or_else(|_| repo.join("../shared").display().to_string());
    let image =
        std::fs::read(Path::new(&shared).join("data/ocr/dev/r00_yape-card-inverted_clean.png"))
            .unwrap();
    let (body, content_type) = multipart_image(&image);
    let payment: Value = admin(http.post(format!("{base}/v1/orders/{order_id}/payments")))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payment_id = payment["payment_id"]
        .as_str()
        .expect("payment id")
        .to_owned();
    poll_admin(&base, "/v1/payments?status=MANUAL_REVIEW", |v| {
        v["payments"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["payment_id"] == payment_id.as_str()))
    })
    .await;

    // A dead letter: a WhatsApp message whose reply the provider refuses.
    let hook = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
    "field": "messages",
    "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881",
                     "phone_number_id": zengine_storage::seed::DEMO_WHATSAPP_PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": "Console"}, "wa_id": "51999000333"}],
        "messages": [{"from": "51999000333", "id": "wamid.console-in-1",
                      "timestamp": "1749416383", "type": "text", "text": {"body": "hola"}}]
    }}]}]})
    .to_string();
    let r = post_whatsapp(&http, &base, app_secret, hook).await;
    assert!(r.status().is_success(), "{}", r.status());
    let letters = poll_admin(&base, "/v1/channels/dead-letters", |v| {
        v["dead_letters"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    let dead_letter = letters["dead_letters"][0]["client_message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    accept.store(true, Ordering::SeqCst);

    // A conversation handed off to an agent.
    let flow = json!({"schema_version": 1, "id": "support", "version": 1, "start": "q", "nodes": [
        {"id": "q", "type": "question", "text": "¿Tu nombre?", "save_as": "name", "next": "h"},
        {"id": "h", "type": "handoff", "text": "{{name}}, te paso con un asesor.",
         "queue": "soporte", "next": "back"},
        {"id": "back", "type": "end", "text": "De vuelta con el bot, {{name}}."}]});
    let published = admin(http.put(format!("{base}/v1/tenants/demo/flows/support")))
        .json(&flow)
        .send()
        .await
        .unwrap();
    assert!(
        published.status().is_success(),
        "{}",
        published.text().await.unwrap()
    );
    for (key, text) in [("c-1", "hola"), ("c-2", "Ana")] {
        let r = http
            .post(format!("{base}/v1/webchat/messages"))
            .header("x-tenant-id", "demo")
            .header("x-idempotency-key", key)
            .json(&json!({"session_id": "console-chat", "text": text, "flow": "support"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    let handoffs = poll_admin(&base, "/v1/conversations/handoffs", |v| {
        v["handoffs"].as_array().is_some_and(|h| !h.is_empty())
    })
    .await;
    let handoff = handoffs["handoffs"][0]["workflow_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The browser does the rest.
    let artifacts = run_browser_script(
        "console",
        &[
            ("ZENGINE_E2E_BASE", &base),
            ("ZENGINE_E2E_JWT_KEY", jwt_key),
            ("ZENGINE_E2E_IDP_PORT", &idp_port.to_string()),
            ("ZENGINE_E2E_PAYMENT", &payment_id),
            ("ZENGINE_E2E_DEAD_LETTER", &dead_letter),
            ("ZENGINE_E2E_HANDOFF", &handoff),
            ("ZENGINE_E2E_REPORT", "orders"),
        ],
    );
    for shot in [
        "02-payment-review",
        "04-dead-letter",
        "06-history",
        "07-report",
    ] {
        assert!(artifacts.join(format!("{shot}.png")).exists(), "{shot}");
    }

    // What the operator did in the browser happened.
    let decided = poll_admin(&base, &format!("/v1/payments/{payment_id}"), |v| {
        v["status"] == "ASSIGNED"
    })
    .await;
    assert_eq!(decided["reviewed_by"], "ana@demo");
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the re-driven reply never reached the provider"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    poll_admin(&base, "/v1/channels/dead-letters", |v| {
        v["dead_letters"].as_array().is_some_and(|d| d.is_empty())
    })
    .await;
}

#[tokio::test]
async fn a_worker_killed_while_reading_a_whatsapp_receipt_pays_once_and_confirms_once() {
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path as UrlPath, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use sha2::{Digest, Sha256};

    const PNID: &str = zengine_storage::seed::DEMO_WHATSAPP_PHONE_NUMBER_ID;
    const APP_SECRET: &str = "e2e-app-secret";
    const TOKEN: &str = "e2e-meta-token";
    const MEDIA_ID: &str = "1003383421387256";
    let shared = std::env::var_os("ZENGINE_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let dev = shared.join("data/ocr/dev");
    let image = std::fs::read(dev.join("r01_yape-card_whatsapp.jpg")).unwrap();
    let truth: Value =
        serde_json::from_slice(&std::fs::read(dev.join("r01_yape-card_whatsapp.json")).unwrap())
            .unwrap();

    // A fake Graph API: sends are counted; the first media download hangs (the worker doing
    // it is killed meanwhile), later ones answer.
    #[derive(Default)]
    struct Graph {
        sends: Vec<Value>,
        downloads: usize,
    }
    type Shared = (Arc<Mutex<Graph>>, Arc<Vec<u8>>, String);
    let graph: Arc<Mutex<Graph>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_url = format!("http://{}", listener.local_addr().unwrap());
    let authorized = |headers: &HeaderMap| {
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer e2e-meta-token")
    };
    let router = axum::Router::new()
        .route(
            "/v23.0/{pnid}/messages",
            post(
                |State((g, _, _)): State<Shared>, axum::Json(body): axum::Json<Value>| async move {
                    let mut g = g.lock().unwrap();
                    g.sends.push(body.clone());
                    let n = g.sends.len();
                    axum::Json(json!({"messaging_product": "whatsapp",
                        "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                        "messages": [{"id": format!("wamid.e2e-{n}")}]}))
                },
            ),
        )
        .route(
            "/v23.0/{media}",
            get(
                move |State((_, bytes, url)): State<Shared>,
                      UrlPath(media): UrlPath<String>,
                      headers: HeaderMap| async move {
                    if media != MEDIA_ID || !authorized(&headers) {
                        return (StatusCode::BAD_REQUEST, "{}").into_response();
                    }
                    axum::Json(json!({"messaging_product": "whatsapp",
                        "url": format!("{url}/whatsapp_business/attachments/?mid={MEDIA_ID}&ext=1&hash=x"),
                        "mime_type": "image/jpeg", "sha256": hex::encode(Sha256::digest(&*bytes)),
                        "file_size": bytes.len().to_string(), "id": MEDIA_ID}))
                    .into_response()
                },
            ),
        )
        .route(
            "/whatsapp_business/attachments/",
            get(
                move |State((g, bytes, _)): State<Shared>, headers: HeaderMap| async move {
                    if !authorized(&headers) {
                        return (StatusCode::UNAUTHORIZED, "").into_response();
                    }
                    let first = {
                        let mut g = g.lock().unwrap();
                        g.downloads += 1;
                        g.downloads == 1
                    };
                    if first {
                        tokio::time::sleep(Duration::from_secs(300)).await;
                    }
                    (*bytes).clone().into_response()
                },
            ),
        )
        .with_state((graph.clone(), Arc::new(image.clone()), fake_url.clone()));
    tokio::spawn(async move { axum::serve(listener, router).await });

    let cluster = Cluster::new(
        "killocr",
        &[
            (
                "ZENGINE_WORKER__STICKY_SCHEDULE_TO_START_TIMEOUT_MS",
                "1000",
            ),
            ("ZENGINE_API__ADMIN_TOKEN", "t0ken"),
            ("ZENGINE_API__WHATSAPP_APP_SECRET", APP_SECRET),
        ],
    );
    let base = cluster.base.clone();
    let token_file = cluster.dir.path().join("wa-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let demo = zengine_domain::TenantId::parse("demo").unwrap();
    let db = zengine_storage::Database::connect(&cluster.db_url, 1)
        .await
        .unwrap();
    demo_whatsapp_at(&db, &fake_url, &format!("file:{}", token_file.display())).await;
    // The shared receipts are dated 2025–2026: accept them as "after the order".
    db.payments()
        .set_settings(
            &demo,
            &zengine_storage::PaymentSettings {
                window_slack_minutes: 3 * 365 * 24 * 60,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    db.close().await;

    let api = cluster.api();
    let start_worker = |log: &str| {
        let mut cmd = cluster.command(log);
        cmd.arg("worker");
        Proc::spawn("zengine worker", cmd)
    };
    let first_worker = start_worker("worker-1.log");
    cluster.wait_api().await;
    let http = reqwest::Client::new();
    let flow = json!({"schema_version": 1, "id": "x", "version": 0, "start": "order", "nodes": [
        {"id": "order", "type": "question", "text": "¿Número de pedido?", "save_as": "order_id", "next": "photo"},
        {"id": "photo", "type": "question", "text": "Envía la captura de tu Yape o Plin.",
         "expects": "image", "save_as": "receipt", "next": "verify"},
        {"id": "verify", "type": "command", "command": "payment.verify", "save_as": "payment",
         "params": {"order_id": "{{order_id}}", "image": "{{receipt.reference}}"},
         "next": "paid", "on_failure": "checking"},
        {"id": "paid", "type": "end", "text": "¡Pago confirmado! ({{payment.status}})"},
        {"id": "checking", "type": "end", "text": "Estamos revisando tu pago."}
    ]});
    let published = http
        .put(format!("{base}/v1/tenants/demo/flows/pay?main=true"))
        .bearer_auth("t0ken")
        .json(&flow)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), reqwest::StatusCode::CREATED);
    let order: Value = http
        .post(format!("{base}/v1/orders"))
        .bearer_auth("t0ken")
        .header("x-tenant-id", "demo")
        .json(
            &json!({"client_order_key": "kill-ocr-1", "customer": {"phone": "+51 987 654 321"},
                      "type": "pickup",
                      "items": [{"name": "Pedido", "quantity": 1, "unit_price": truth["amount"]}]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_id = order["order_id"].as_str().unwrap().to_owned();

    let from = "51987654321";
    let webhook = |wamid: &str, message: Value| {
        let mut m = message;
        m["from"] = json!(from);
        m["id"] = json!(wamid);
        m["timestamp"] = json!("1767317400");
        json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
            "contacts": [{"profile": {"name": "Rocío"}, "wa_id": from}], "messages": [m]}}]}]})
        .to_string()
    };
    let post_webhook = |body: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r = post_whatsapp(&http, &base, APP_SECRET, body).await;
            assert_eq!(r.status(), reqwest::StatusCode::OK);
        }
    };
    let wait_sends = |n: usize, secs: u64| {
        let graph = graph.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(secs);
            loop {
                let sends = graph.lock().unwrap().sends.clone();
                if sends.len() >= n {
                    return sends;
                }
                assert!(
                    Instant::now() < deadline,
                    "only {} sends: {sends:?}",
                    sends.len()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    post_webhook(webhook(
        "wamid.k-1",
        json!({"type": "text", "text": {"body": "hola"}}),
    ))
    .await;
    wait_sends(1, 30).await;
    post_webhook(webhook(
        "wamid.k-2",
        json!({"type": "text", "text": {"body": order_id}}),
    ))
    .await;
    wait_sends(2, 30).await;
    post_webhook(webhook(
        "wamid.k-3",
        json!({"type": "image", "image": {"mime_type": "image/jpeg", "id": MEDIA_ID,
                                          "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI="}}),
    ))
    .await;

    // The OCR activity is fetching the receipt: kill its worker, start another.
    let deadline = Instant::now() + Duration::from_secs(60);
    while graph.lock().unwrap().downloads == 0 {
        assert!(Instant::now() < deadline, "the receipt was never fetched");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first_worker.signal(Signal::SIGKILL);
    let _ = first_worker.wait(Duration::from_secs(10));
    let second_worker = start_worker("worker-2.log");

    // The OCR activity times out on the dead worker (start-to-close 60 s) and runs again.
    let sends = wait_sends(3, 150).await;
    assert_eq!(
        sends[2]["text"]["body"], "¡Pago confirmado! (ASSIGNED)",
        "{sends:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    {
        let g = graph.lock().unwrap();
        assert_eq!(g.sends.len(), 3, "exactly one confirmation: {:?}", g.sends);
        assert_eq!(g.downloads, 2, "fetched again by the new worker");
    }
    let payments: Value = http
        .get(format!("{base}/v1/orders/{order_id}/payments"))
        .bearer_auth("t0ken")
        .header("x-tenant-id", "demo")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = payments["payments"].as_array().unwrap();
    assert_eq!(list.len(), 1, "exactly one payment row: {payments}");
    assert_eq!(list[0]["status"], "ASSIGNED");
    assert_eq!(list[0]["operation_code"], truth["op_code"]);
    let order: Value = http
        .get(format!("{base}/v1/orders/{order_id}"))
        .bearer_auth("t0ken")
        .header("x-tenant-id", "demo")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(order["status"], "PAID");

    second_worker.signal(Signal::SIGTERM);
    assert!(second_worker.wait(Duration::from_secs(30)).success());
    api.signal(Signal::SIGTERM);
    assert!(api.wait(Duration::from_secs(30)).success());
}

/// An operator reads and drives a conversation with the `temporal` CLI through the codec
/// endpoint, the way `docs/operators.md` shows: query (the CLI sends `{}` for its empty query
/// arguments), update with input, and the history; without the codec the CLI sees ciphertext,
/// and a wrong token gets nothing decoded.
#[tokio::test]
async fn the_temporal_cli_queries_updates_and_reads_a_conversation_through_the_codec() {
    let dir = tempfile::tempdir().unwrap();
    let (dev, ports) = start_dev(dir.path(), "dev.log", |cmd| {
        cmd.env("ZENGINE_API__ADMIN_TOKEN", "cli-admin")
            // A developer's Temporal Cloud key in the shell: `zengine dev` talks to its own
            // plaintext dev server all the same (Temporal's client configuration is not read).
            .env("TEMPORAL_API_KEY", "a-developers-cloud-key");
    })
    .await;
    let base = ports.base();
    say(&base, "cli", "cli-1", "hola").await;
    let cli = |args: &[&str], codec_token: Option<&str>| {
        let mut cmd = Command::new(temporal_binary());
        cmd.args(args)
            .args(["--address", &format!("127.0.0.1:{}", ports.temporal)])
            .args(["-w", "demo/conversation/webchat/cli"])
            .env_remove("TEMPORAL_ADDRESS")
            .env_remove("TEMPORAL_API_KEY")
            .env_remove("TEMPORAL_CODEC_ENDPOINT")
            .env_remove("TEMPORAL_CODEC_AUTH");
        // As docs/operators.md sets them.
        if let Some(token) = codec_token {
            cmd.env("TEMPORAL_CODEC_ENDPOINT", format!("{base}/codec"))
                .env("TEMPORAL_CODEC_AUTH", format!("Bearer {token}"));
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };

    let (ok, status) = cli(
        &["workflow", "query", "--type", "Status"],
        Some("cli-admin"),
    );
    assert!(ok, "{status}");
    assert!(status.contains(r#""node":"ask_name""#), "{status}");
    let (ok, sealed) = cli(&["workflow", "query", "--type", "Status"], None);
    assert!(ok, "{sealed}");
    assert!(
        !sealed.contains("ask_name") && sealed.contains("encryption-key-id"),
        "{sealed}"
    );
    let (ok, _) = cli(&["workflow", "query", "--type", "Status"], Some("wrong"));
    assert!(!ok, "a wrong codec token decoded the query result");

    let (ok, updated) = cli(
        &[
            "workflow",
            "update",
            "execute",
            "--name",
            "HandleMessage",
            "--input",
            r#"{"message_id": "cli-2", "text": "Ana"}"#,
        ],
        Some("cli-admin"),
    );
    assert!(ok, "{updated}");
    assert!(updated.contains("Mucho gusto, Ana."), "{updated}");

    let (ok, history) = cli(&["workflow", "show", "--detailed"], Some("cli-admin"));
    assert!(ok, "{history}");
    assert!(history.contains("text: Ana"), "{history}");
    let (_, raw) = cli(&["workflow", "show", "--detailed"], None);
    assert!(
        !raw.contains("text: Ana"),
        "the history at rest holds the message"
    );
    dev.signal(Signal::SIGTERM);
    assert!(dev.wait(Duration::from_secs(30)).success());
}

/// `zengine check-config` runs start-up's checks without serving: keys and the secrets they
/// reference, the database login (row-level security), Temporal. A good configuration prints an
/// `ok` line per check and exits 0; a bad one prints every failure, each naming its setting,
/// and exits 1 — all of them at once, where start-up would stop at the first.
#[test]
fn check_config_reports_every_start_up_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = |role: &str, env: &[(&str, String)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zengine"));
        cmd.current_dir(dir.path())
            .args(["check-config", "--role", role])
            .env_remove("ZENGINE_CONFIG")
            .env_remove("RUST_LOG")
            .env_remove("DATABASE_URL")
            .env("ZENGINE_TEMPORAL__CONNECT_TIMEOUT_SECS", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let good = [
        ("TEMPORAL_ADDRESS", shared_dev_server().to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/z.db", dir.path().display()),
        ),
        ("ZENGINE_TEMPORAL__CODEC__ALLOW_DEV_KEY", "true".to_owned()),
    ];
    for role in ["api", "worker"] {
        let (code, report) = run(role, &good);
        assert_eq!(code, Some(0), "{report}");
        for check in ["codec keys", "database", "temporal"] {
            assert!(report.contains(&format!("ok    {check}")), "{report}");
        }
    }

    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[temporal.codec.keys]]\nid = \"k1\"\nsecret_ref = \"file:/nonexistent/k1\"\n",
    )
    .unwrap();
    let bad = [
        ("ZENGINE_CONFIG", config.display().to_string()),
        ("TEMPORAL_ADDRESS", "127.0.0.1:1".to_owned()),
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
        ),
    ];
    let (code, report) = run("api", &bad);
    assert_eq!(code, Some(1), "{report}");
    for failure in [
        "FAIL  codec keys: codec key `k1`",
        "FAIL  contact id key: api.contact_id_key is not set",
        "FAIL  database: the database login `postgres` is a superuser",
        "FAIL  temporal: Failed to connect to Temporal at",
    ] {
        assert!(report.contains(failure), "{failure}\n{report}");
    }
}

/// `make run`'s Temporal Web UI shows a customer's message decoded, with no sign-in and no
/// token: `zengine dev` (on the public development key) lets its own UI's origin call the codec
/// from loopback. Checked in headless Chromium (`console/e2e/webui.e2e.mjs`: the browser's own
/// CORS and codec calls). Another origin still needs a credential, and so does the UI once real
/// payload keys are configured.
#[tokio::test]
async fn the_web_ui_of_zengine_dev_shows_a_customer_message_decoded() {
    check_browser();
    let dir = tempfile::tempdir().unwrap();
    let (dev, ports) = start_dev(dir.path(), "dev.log", |_| {}).await;
    let base = ports.base();
    let message = "quiero reservar una mesa para el viernes";
    say(&base, "webui", "webui-1", message).await;
    let ui = format!("http://127.0.0.1:{}", ports.ui);
    assert_eq!(decode_from(&base, &ui).await, 200);
    let other = format!("http://127.0.0.1:{}", ports.api);
    assert_refused(decode_from(&base, &other).await);

    let workflow = "demo/conversation/webchat/webui";
    let described = Command::new(temporal_binary())
        .args(["workflow", "describe", "-o", "json", "-w", workflow])
        .args(["--address", &format!("127.0.0.1:{}", ports.temporal)])
        .output()
        .unwrap();
    let described: Value = serde_json::from_slice(&described.stdout).unwrap();
    let run = described["workflowExecutionInfo"]["execution"]["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    run_browser_script(
        "webui",
        &[
            ("ZENGINE_E2E_UI", &ui),
            ("ZENGINE_E2E_WORKFLOW", workflow),
            ("ZENGINE_E2E_RUN", &run),
            ("ZENGINE_E2E_TEXT", message),
        ],
    );
    dev.signal(Signal::SIGTERM);
    assert!(dev.wait(Duration::from_secs(30)).success());

    // With real payload keys, `zengine dev` trusts no origin.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("codec.key");
    std::fs::write(&key, "11".repeat(32)).unwrap();
    std::fs::write(
        dir.path().join("zengine.toml"),
        format!(
            "[[temporal.codec.keys]]\nid = \"k1\"\nsecret_ref = \"file:{}\"\n",
            key.display()
        ),
    )
    .unwrap();
    let (dev, ports) = start_dev(dir.path(), "dev.log", |cmd| {
        cmd.env_remove("ZENGINE_CONFIG");
    })
    .await;
    let ui = format!("http://127.0.0.1:{}", ports.ui);
    assert_refused(decode_from(&ports.base(), &ui).await);
    dev.signal(Signal::SIGTERM);
    assert!(dev.wait(Duration::from_secs(30)).success());
}

/// `POST {base}/codec/decode` with no credential, as a browser page of `origin` sends it.
async fn decode_from(base: &str, origin: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/codec/decode"))
        .header("origin", origin)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A codec call without a credential is refused: 401, or 403 where `zengine dev` runs without
/// an admin token or JWT settings (the management API is then disabled altogether).
fn assert_refused(status: u16) {
    assert!(status == 401 || status == 403, "answered {status}");
}

/// Panics early, before a test starts its services, when the browser's parts are missing:
/// playwright-core (`make console`) and Debian's Chromium (`make tools`).
fn check_browser() {
    let console = Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    assert!(
        console.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `make console` (make test does)"
    );
    let chromium = chromium();
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: `make tools` installs Debian's chromium"
    );
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Runs `console/e2e/<name>.e2e.mjs` (playwright-core driving Chromium) with `env`; its
/// screenshots go to `<target>/test-artifacts/<name>` (`ZENGINE_E2E_ARTIFACTS`), which is
/// returned. Panics with the script's output when it fails.
fn run_browser_script(name: &str, env: &[(&str, &str)]) -> std::path::PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let artifacts = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo.join("target"))
        .join("test-artifacts")
        .join(name);
    let output = Command::new("node")
        .arg(format!("e2e/{name}.e2e.mjs"))
        .current_dir(repo.join("console"))
        .envs(env.iter().copied())
        .env("ZENGINE_E2E_ARTIFACTS", &artifacts)
        .env("CHROMIUM", chromium())
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "{name} e2e failed (screenshots in {}):\n{}\n{}",
        artifacts.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    artifacts
}

/// Starts a route optimisation of twelve delivery orders with `time_limit_ms` of search; returns
/// its id once its solve is running (progress has been reported).
async fn running_route(base: &str, token: &str, time_limit_ms: u64, key: &str) -> String {
    let http = reqwest::Client::new();
    let mut order_ids = Vec::new();
    for i in 0..12 {
        let angle = i as f64 * 0.7;
        let radius = 0.01 + 0.004 * (i % 5) as f64;
        let order: Value = http
            .post(format!("{base}/v1/orders"))
            .bearer_auth(token)
            .header("x-tenant-id", "demo")
            .json(&json!({
                "client_order_key": format!("{key}-{i}"),
                "customer": {"phone": "+51911222333"},
                "type": "delivery",
                "items": [{"name": "Caja", "quantity": 1 + i % 3, "unit_price": "10.00"}],
                "location": {"lat": -12.05 + radius * angle.sin(), "lon": -77.04 + radius * angle.cos()}
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        order_ids.push(order["order_id"].as_str().unwrap().to_owned());
    }
    let started: Value = http
        .post(format!("{base}/v1/routes"))
        .bearer_auth(token)
        .header("x-tenant-id", "demo")
        .json(&json!({
            "depot": {"lat": -12.05, "lon": -77.04},
            "order_ids": order_ids,
            "drivers": [{"id": "ana", "capacity": 12}, {"id": "beto", "capacity": 12}],
            "options": {"time_limit_ms": time_limit_ms, "seed": 7}
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["route_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let plan = route(base, token, &id).await;
        if plan["progress"]["elapsed_ms"].is_u64() {
            assert_eq!(plan["status"], "RUNNING", "{plan}");
            return id;
        }
        assert!(Instant::now() < deadline, "the solve never started: {plan}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET {base}{path}` as the demo tenant's admin; the JSON answer.
async fn get_demo_json(base: &str, token: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .header("x-tenant-id", "demo")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn route(base: &str, token: &str, id: &str) -> Value {
    get_demo_json(base, token, &format!("/v1/routes/{id}")).await
}

async fn route_done(base: &str, token: &str, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let plan = route(base, token, id).await;
        if plan["status"] != "RUNNING" {
            return plan;
        }
        assert!(
            Instant::now() < deadline,
            "the route never finished: {plan}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The route workflow's history as the operator timeline shows it (event types in order, and
/// the failures' messages).
async fn route_history(base: &str, token: &str, id: &str) -> Value {
    let path = format!("/v1/ops/workflows/demo%2Froute%2F{id}/history?page_size=200");
    get_demo_json(base, token, &path).await
}

/// SIGTERM with an activity in flight, here a route solve (CPU-bound, minutes long in real use).
/// With time to spare (the solve ends within `worker.graceful_shutdown_secs`) the worker
/// finishes it and only then exits. Without (a solve longer than the grace period), the
/// activity is cancelled and fails as retryable ("the worker is shutting down"), the worker
/// exits, and another worker process solves it again with its whole time budget: a deploy never
/// stores a plan cut short, and nothing is lost.
#[tokio::test]
async fn sigterm_finishes_an_in_flight_solve_or_hands_it_to_another_worker() {
    let token = "t0ken";
    let cluster = Cluster::new("drain", &[("ZENGINE_API__ADMIN_TOKEN", token)]);
    let base = cluster.base.clone();
    let _api = cluster.api();
    cluster.wait_api().await;

    // 1. Within the grace period (20 s): the same worker finishes the 4-second solve.
    let worker = cluster.worker_on("worker-1.log", "routing", &[]);
    let id = running_route(&base, token, 4_000, "drain-a").await;
    let stopping = Instant::now();
    worker.signal(Signal::SIGTERM);
    let status = worker.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let drained = stopping.elapsed();
    // No worker runs any more: the plan is done only if the draining worker finished it.
    let plan = route(&base, token, &id).await;
    assert_eq!(plan["status"], "DONE", "finished before exiting: {plan}");
    assert!(
        drained >= Duration::from_secs(2),
        "it waited for the solve ({drained:?})"
    );

    // 2. Longer than the grace period (1 s): cancelled on the first worker, solved on another.
    let first = cluster.worker_on(
        "worker-2.log",
        "routing",
        &[("ZENGINE_WORKER__GRACEFUL_SHUTDOWN_SECS", "1")],
    );
    let id = running_route(&base, token, 8_000, "drain-b").await;
    let stopping = Instant::now();
    first.signal(Signal::SIGTERM);
    let status = first.wait(Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(
        stopping.elapsed() < Duration::from_secs(7),
        "cancelled, not run to the end"
    );
    let plan = route(&base, token, &id).await;
    assert_eq!(
        plan["status"], "RUNNING",
        "no plan cut short by the shutdown: {plan}"
    );
    let _second = cluster.worker_on("worker-3.log", "routing", &[]);
    let plan = route_done(&base, token, &id, Duration::from_secs(90)).await;
    assert_eq!(plan["status"], "DONE", "{plan}");
    // Retried attempts are not events: the completed attempt's ActivityTaskStarted carries
    // its number and the previous attempt's failure.
    let history = route_history(&base, token, &id).await;
    let started = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "ActivityTaskStarted")
        .unwrap_or_else(|| panic!("{history}"));
    assert_eq!(started["details"]["attempt"], 2, "{started}");
    assert!(
        started.to_string().contains("shutting down"),
        "the first attempt failed as a shutdown: {started}"
    );
}

/// A Graph API fake for the crash tests: it records every send; the first send to each
/// recipient is accepted (recorded) but never answered, as when the worker dies after Meta
/// took the message and before the answer came back; later sends are answered at once.
async fn hanging_graph() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::sync::{Arc, Mutex};
    let sends: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = sends.clone();
    let app = axum::Router::new().route(
        "/{version}/{phone}/messages",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sends = seen.clone();
            async move {
                let first = {
                    let mut sends = sends.lock().unwrap();
                    let first = !sends.iter().any(|s| s["to"] == body["to"]);
                    sends.push(body.clone());
                    first
                };
                if first {
                    tokio::time::sleep(Duration::from_secs(300)).await;
                }
                let n = sends.lock().unwrap().len();
                axum::Json(json!({"messaging_product": "whatsapp",
                                  "messages": [{"id": format!("wamid.crash-{n}")}]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), sends)
}

/// A WhatsApp Cloud webhook body for the demo number: `value` holds `messages` or `statuses`.
fn whatsapp_change(value: Value) -> String {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({"display_phone_number": "15550001111",
        "phone_number_id": zengine_storage::seed::DEMO_WHATSAPP_PHONE_NUMBER_ID});
    json!({"object": "whatsapp_business_account", "entry": [{"id": "waba-crash",
        "changes": [{"field": "messages", "value": value}]}]})
    .to_string()
}

/// What the table of `docs/channels.md` ("What is guaranteed, per strategy") says for WhatsApp,
/// measured: a worker is SIGKILLed after Meta accepted a reply and before the activity heard back.
/// With the message's status webhook (which echoes our id in `biz_opaque_callback_data`)
/// arriving before the retry, the reply is not sent again: Meta counts one send. Without it,
/// the retry waits its 5 s and sends again: Meta counts two — at least once, as documented.
#[tokio::test]
async fn a_worker_killed_after_meta_accepted_a_reply_resends_it_only_without_a_status_webhook() {
    let (graph, sends) = hanging_graph().await;
    let secret = "crash-app-secret";
    let cluster = Cluster::new(
        "crashsend",
        &[
            ("ZENGINE_API__WHATSAPP_APP_SECRET", secret),
            ("CRASH_E2E_WA_TOKEN", "crash-token"),
        ],
    );
    let demo = zengine_domain::TenantId::parse("demo").unwrap();
    let db = zengine_storage::Database::connect(&cluster.db_url, 2)
        .await
        .unwrap();
    demo_whatsapp_at(&db, &graph, "env:CRASH_E2E_WA_TOKEN").await;
    let _api = cluster.api();
    cluster.wait_api().await;
    let base = cluster.base.clone();
    let http = reqwest::Client::new();
    let sends_to = |phone: &str| {
        sends
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s["to"] == phone)
            .cloned()
            .collect::<Vec<_>>()
    };

    for (phone, with_status, expected_sends) in
        [("51900000101", true, 1), ("51900000102", false, 2)]
    {
        let worker = cluster.worker_on(
            &format!("worker-{phone}-1.log"),
            "conversations,channels",
            &[],
        );
        let inbound = whatsapp_change(json!({
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": phone}],
            "messages": [{"from": phone, "id": format!("wamid.in-{phone}"),
                          "timestamp": "1765000000", "type": "text", "text": {"body": "hola"}}]}));
        let response = post_whatsapp(&http, &base, secret, inbound).await;
        assert_eq!(response.status(), 200);
        let deadline = Instant::now() + Duration::from_secs(60);
        while sends_to(phone).len() != 1 {
            assert!(Instant::now() < deadline, "Meta never received the reply");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Meta took it; the worker dies before the answer.
        worker.signal(Signal::SIGKILL);
        let _ = worker.wait(Duration::from_secs(10));
        let client_id = sends_to(phone)[0]["biz_opaque_callback_data"]
            .as_str()
            .unwrap()
            .to_owned();
        if with_status {
            let status = whatsapp_change(json!({"statuses": [{
                "id": format!("wamid.accepted-{phone}"), "status": "sent",
                "timestamp": "1765000001", "recipient_id": phone,
                "biz_opaque_callback_data": client_id}]}));
            let response = post_whatsapp(&http, &base, secret, status).await;
            assert_eq!(response.status(), 200);
        }
        let retry = cluster.worker_on(
            &format!("worker-{phone}-2.log"),
            "conversations,channels",
            &[],
        );
        // The retry runs once the dead attempt's heartbeat timeout (10 s) expires.
        let deadline = Instant::now() + Duration::from_secs(90);
        let record = loop {
            let record = db.channels().outbound(&demo, &client_id).await.unwrap();
            if let Some(r) = record.filter(|r| r.attempts >= 2 && r.state != "PENDING") {
                break r;
            }
            assert!(Instant::now() < deadline, "the reply was never retried");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(record.state, "SENT", "{record:?}");
        assert_eq!(
            sends_to(phone).len(),
            expected_sends,
            "with a status webhook: {with_status}"
        );
        if with_status {
            assert_eq!(
                record.provider_message_id.as_deref(),
                Some(format!("wamid.accepted-{phone}").as_str())
            );
        }
        drop(retry);
    }
}
