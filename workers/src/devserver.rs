//! Supervises the embedded Temporal dev server (`temporal server start-dev`), the real Temporal
//! server backed by a SQLite file, used by `zengine dev` and by the test harness.
//!
//! The child runs in its own process group (a terminal's Ctrl-C reaches only ZEngine, which then
//! stops the server last, after its workers) and is bound to ZEngine's life with
//! `PR_SET_PDEATHSIG`: even if ZEngine is killed with SIGKILL, the server does not outlive it.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use zengine_workflows::names::REQUIRED_SEARCH_ATTRIBUTES;

/// How to run the dev server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevServerSettings {
    /// The `temporal` CLI binary (installed by `make` under `.tools/bin`).
    pub binary: PathBuf,
    /// Address the frontend (gRPC) listens on.
    pub ip: String,
    pub port: u16,
    /// Web UI port; `None` runs headless.
    pub ui_port: Option<u16>,
    /// Remote codec endpoint of the Web UI (`--ui-codec-endpoint`), so it shows decrypted
    /// payloads. `zengine dev` sets it to its own API's `/codec` when unset.
    pub ui_codec_endpoint: Option<String>,
    /// SQLite file holding Temporal's state; `None` keeps it in memory.
    pub db_file: Option<PathBuf>,
    /// Server log output; `None` discards it.
    pub log_file: Option<PathBuf>,
    pub namespace: String,
    pub log_level: String,
}

impl Default for DevServerSettings {
    fn default() -> Self {
        Self {
            binary: PathBuf::from(".tools/bin/temporal"),
            ip: "127.0.0.1".to_owned(),
            port: 7233,
            ui_port: Some(8233),
            ui_codec_endpoint: None,
            db_file: Some(PathBuf::from("data/temporal.db")),
            log_file: Some(PathBuf::from("data/temporal-server.log")),
            namespace: "default".to_owned(),
            log_level: "warn".to_owned(),
        }
    }
}

impl DevServerSettings {
    /// The frontend address clients connect to.
    pub fn address(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

/// A running dev server child process.
pub struct DevServer {
    pid: Pid,
    address: String,
    log_file: Option<PathBuf>,
    exited: mpsc::Receiver<std::io::Result<ExitStatus>>,
    /// Set once the exit status has been received: the pid is reaped and must not be signalled.
    gone: std::sync::OnceLock<String>,
}

impl DevServer {
    /// Starts the server; returns once the process is spawned (see [`DevServer::wait_ready`]).
    pub fn start(settings: &DevServerSettings) -> anyhow::Result<Self> {
        let binary = std::fs::canonicalize(&settings.binary).with_context(|| {
            format!(
                "the Temporal CLI is not at {} (run `make tools`, or set \
                 ZENGINE_DEV_SERVER__BINARY, or TEMPORAL_ADDRESS for an existing server)",
                settings.binary.display()
            )
        })?;
        let mut cmd = Command::new(binary);
        cmd.args(["server", "start-dev", "--ip", &settings.ip])
            .args(["--port", &settings.port.to_string()])
            .args(["--namespace", &settings.namespace])
            .args(["--log-level", &settings.log_level]);
        for (name, kind) in REQUIRED_SEARCH_ATTRIBUTES {
            cmd.args(["--search-attribute", &format!("{name}={kind}")]);
        }
        match settings.ui_port {
            Some(port) => cmd.args(["--ui-port", &port.to_string()]),
            None => cmd.arg("--headless"),
        };
        if let (Some(_), Some(endpoint)) = (settings.ui_port, &settings.ui_codec_endpoint) {
            cmd.args(["--ui-codec-endpoint", endpoint]);
        }
        if let Some(db) = &settings.db_file {
            if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            cmd.arg("--db-filename").arg(db);
        }
        let (stdout, stderr) = match &settings.log_file {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("Failed to open {}", path.display()))?;
                (Stdio::from(file.try_clone()?), Stdio::from(file))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe and touches only the child being set up.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
            });
        }

        // PR_SET_PDEATHSIG fires when the *thread* that forked exits, so fork from a thread that
        // lives exactly as long as the child.
        let (pid_tx, pid_rx) = mpsc::channel();
        let (exit_tx, exit_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("temporal-dev-server".into())
            .spawn(move || match cmd.spawn() {
                Ok(mut child) => {
                    let _ = pid_tx.send(Ok(child.id()));
                    let _ = exit_tx.send(child.wait());
                }
                Err(e) => {
                    let _ = pid_tx.send(Err(e));
                }
            })?;
        let pid = pid_rx
            .recv()
            .context("dev server thread died")?
            .context("Failed to start the Temporal dev server")?;
        tracing::info!(pid, address = %settings.address(), "Started the Temporal dev server");
        Ok(Self {
            pid: Pid::from_raw(pid as i32),
            address: settings.address(),
            log_file: settings.log_file.clone(),
            exited: exit_rx,
            gone: std::sync::OnceLock::new(),
        })
    }

    /// The frontend address (`ip:port`).
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// Waits until the frontend port accepts connections, or fails if the process exits first.
    pub fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let addr: SocketAddr = self.address.parse()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(status) = self.exited.try_recv() {
                let _ = self.gone.set(format!("{status:?}"));
                let log = match &self.log_file {
                    Some(path) => format!(
                        "; the end of its log ({}):\n{}",
                        path.display(),
                        log_tail(path)
                    ),
                    None => "; it was started without a log file".to_owned(),
                };
                anyhow::bail!("the Temporal dev server exited during start-up ({status:?}){log}");
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the Temporal dev server did not listen on {addr} within {timeout:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server: SIGTERM, then SIGKILL after `grace`. Blocks until it has exited.
    pub fn stop(self, grace: Duration) -> anyhow::Result<()> {
        if let Some(status) = self.gone.get() {
            tracing::info!(status, "Temporal dev server had already exited");
            return Ok(());
        }
        let _ = kill(self.pid, Signal::SIGTERM);
        match self.exited.recv_timeout(grace) {
            Ok(status) => {
                tracing::info!(status = ?status, "Temporal dev server stopped");
                Ok(())
            }
            Err(_) => {
                tracing::warn!("Temporal dev server ignored SIGTERM; killing it");
                let _ = kill(self.pid, Signal::SIGKILL);
                self.exited
                    .recv_timeout(Duration::from_secs(5))
                    .map(|_| ())
                    .context("the Temporal dev server did not die")
            }
        }
    }
}

/// The last lines of a log file (what a failed start-up printed), or why it cannot be read.
fn log_tail(path: &std::path::Path) -> String {
    const LINES: usize = 20;
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LINES)..].join("\n")
        }
        Err(e) => format!("(cannot read it: {e})"),
    }
}

/// A free TCP port on 127.0.0.1 (for tests and ephemeral servers), chosen *below* the kernel's
/// ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`).
///
/// A port from `bind(0)` is only free until someone else takes it, and the ephemeral range is
/// where everyone else takes ports: outgoing connections, and the Temporal dev server itself,
/// which picks five more ports (HTTP, metrics, history, matching, worker) with `bind(0)` and
/// binds them a moment later. A port handed out from that range can collide with one of
/// those and the server dies during start-up. Below the range only callers of this function
/// take ports, and one process-wide counter (from a random start) never hands out the same port
/// twice; each candidate is checked by binding it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const SPAN: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    if ephemeral_low < 1_024 + SPAN {
        return std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free port on 127.0.0.1");
    }
    let low = ephemeral_low - SPAN;
    let _ = NEXT.compare_exchange(
        u32::MAX,
        random_start(SPAN),
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (low + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {low}..{ephemeral_low}")
}

/// A start offset in `0..span` that differs between processes (pid and clock; not secret).
fn random_start(span: u32) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (std::process::id().wrapping_mul(2_654_435_761) ^ nanos) % span
}
