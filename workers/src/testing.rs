//! Test support (feature `test-support`) for the tests and benches of every crate: one real
//! Temporal dev server per test binary, a moto server, and what a provider sends (signed WhatsApp
//! webhooks).
//!
//! The server is the project-local `temporal` binary (`make tools` installs it; override with
//! `ZENGINE_TEMPORAL_BIN`), on a free port, in memory, headless. It is started on first use and
//! dies with the test process (parent-death signal). Tests isolate themselves with their own
//! task-queue prefix and ids rather than their own server.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::devserver::{DevServer, DevServerSettings, free_port};

/// The `temporal` CLI binary tests use.
pub fn temporal_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ZENGINE_TEMPORAL_BIN") {
        return PathBuf::from(path);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workers/ has a parent")
        .to_path_buf();
    root.join(".tools/bin/temporal")
}

/// Settings for a throwaway dev server: free port, in memory, headless, no log.
pub fn ephemeral_settings() -> DevServerSettings {
    DevServerSettings {
        binary: temporal_binary(),
        port: free_port(),
        ui_port: None,
        db_file: None,
        log_file: None,
        ..DevServerSettings::default()
    }
}

/// Address (`127.0.0.1:port`) of this test binary's dev server, started on first call.
pub fn shared_dev_server() -> &'static str {
    // Only the address is kept: the server lives until the test process exits.
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| start_ephemeral().address().to_owned())
}

/// Starts a throwaway dev server ([`ephemeral_settings`]) and waits until it is ready.
///
/// The server picks five of its ports itself, by binding port 0 and binding the port again a
/// moment later; another process can take one in between, and the server then dies during
/// start-up. Such a start is retried (three attempts, each on a new port), and a failure shows
/// the end of the server's log (written to a temporary file, unlinked once it is ready).
pub fn start_ephemeral() -> DevServer {
    const ATTEMPTS: usize = 3;
    let mut failures = Vec::new();
    for _ in 0..ATTEMPTS {
        let mut settings = ephemeral_settings();
        let log = std::env::temp_dir().join(format!(
            "zengine-temporal-{}-{}.log",
            std::process::id(),
            settings.port
        ));
        settings.log_file = Some(log.clone());
        let server = DevServer::start(&settings)
            .expect("the Temporal dev server starts (run `make tools` first)");
        let ready = server.wait_ready(Duration::from_secs(60));
        let _ = std::fs::remove_file(&log);
        match ready {
            Ok(()) => return server,
            Err(e) => {
                let _ = server.stop(Duration::from_secs(5));
                failures.push(format!("{e:#}"));
            }
        }
    }
    panic!(
        "the Temporal dev server did not start in {ATTEMPTS} attempts:\n{}",
        failures.join("\n---\n")
    )
}

/// An SDK [`temporalio_sdk::Worker`] running on its own thread, driven by the current tokio
/// runtime (its run future is not `Send`), for benches and probes that host a worker in process.
pub struct WorkerThread {
    stop: Box<dyn Fn()>,
    thread: std::thread::JoinHandle<()>,
}

impl WorkerThread {
    /// Starts `worker`; call from inside a tokio runtime.
    pub fn spawn(mut worker: temporalio_sdk::Worker) -> Self {
        let stop = Box::new(worker.shutdown_handle());
        let handle = tokio::runtime::Handle::current();
        let thread = std::thread::spawn(move || {
            let _ = handle.block_on(worker.run());
        });
        Self { stop, thread }
    }

    /// Initiates the worker's shutdown and waits for its thread to end.
    pub async fn stop(self) {
        (self.stop)();
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// A unique task-queue prefix for one test.
pub fn unique_prefix(test: &str) -> String {
    format!(
        "test-{test}-{}-",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The `moto_server` script of the project's moto virtualenv (`make tools` installs it;
/// override with `ZENGINE_MOTO_SERVER`).
pub fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ZENGINE_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workers/ has a parent")
        .join(".tools/moto/bin/moto_server")
}

/// Endpoint URL (`http://127.0.0.1:port`) of this test binary's moto server (the local AWS
/// peer for SNS and S3), started on first call on a free port and killed when the test
/// process exits. Its state is global: tests isolate themselves with their own phone numbers
/// and buckets, and read what they sent from `GET /moto-api/data.json`.
pub fn moto_server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| {
        let port = free_port();
        let binary = moto_binary();
        assert!(
            binary.exists(),
            "moto is not installed at {} (run `make tools`)",
            binary.display()
        );
        let mut cmd = std::process::Command::new(&binary);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        start_child(cmd).expect("moto_server starts");
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not listen on {addr} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        format!("http://{addr}")
    })
}

/// Spawns `cmd` bound to this process's life: in its own process group, with a parent-death
/// signal, forked from a thread that lives exactly as long as the child (the signal fires when
/// the forking *thread* exits).
fn start_child(mut cmd: std::process::Command) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("test-child".into())
        .spawn(move || match cmd.spawn() {
            Ok(mut child) => {
                let _ = tx.send(Ok(child.id()));
                let _ = child.wait();
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        })?;
    rx.recv().map_err(std::io::Error::other)?
}

/// The `X-Hub-Signature-256` header Meta sends with a WhatsApp webhook `body`: HMAC-SHA256 with
/// the app secret, hex, after `sha256=`. Written apart from the API's verifier on purpose.
pub fn whatsapp_signature(app_secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A WhatsApp Cloud API webhook as Meta sends it: one text message from `from` (its `wa_id`,
/// contact name `name`) to the business number `phone_number_id`.
pub fn whatsapp_text_webhook(
    phone_number_id: &str,
    name: &str,
    from: &str,
    wamid: &str,
    text: &str,
) -> Vec<u8> {
    serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
    "changes": [{
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": name}, "wa_id": from}],
            "messages": [{"from": from, "id": wamid, "timestamp": "1749416383", "type": "text",
                          "text": {"body": text}}]
        }}]}]})
    .to_string()
    .into_bytes()
}
