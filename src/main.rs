//! `zengine`: the one binary of ZEngine. `zengine dev` runs everything in one process on the
//! embedded defaults; `api`, `worker` and `migrate` are the separate production processes.

mod config;
mod flow_cli;
mod flow_docs;
mod ocr_cli;
mod replay_cli;
mod route;
mod scaffold;
mod telemetry;
mod workflows_cli;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use temporalio_client::Client;
use tokio::sync::watch;
use zengine_api::{AppState, Application};
use zengine_storage::Database;
use zengine_storage::DatabaseSettings;
use zengine_storage::seed::seed_demo_tenant;
use zengine_workers::{DevServer, connect, ensure_search_attributes, run_workers};
use zengine_workflows::names::queues;

use crate::config::Settings;

/// `zengine dev`'s WhatsApp app secret and verify token when none are configured.
const DEV_WHATSAPP_APP_SECRET: &str = "dev-app-secret";
const DEV_WHATSAPP_VERIFY_TOKEN: &str = "dev-verify-token";
/// `zengine dev`'s tenant secret store (`secrets.tenant_dir` when none is configured).
const DEV_TENANT_DIR: &str = "data/tenant-secrets";
/// `zengine dev`'s `temporal.codec.tenant_key_secret` when none is configured.
const DEV_TENANT_KEY_SECRET: &str = "payload-key";

#[derive(Parser)]
#[command(
    name = "zengine",
    version,
    about = "Durable workflow orchestration for conversations, orders, routes and assistance"
)]
struct Cli {
    /// Configuration file (TOML). Default: $ZENGINE_CONFIG, else ./zengine.toml if present.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// All in one: Temporal dev server (unless TEMPORAL_ADDRESS is set), migrated SQLite
    /// database, the demo tenant, the API and a worker for every queue.
    Dev,
    /// Serve the HTTP API.
    Api,
    /// Run workers.
    Worker {
        /// Comma-separated task queue base names; default from configuration.
        #[arg(long, value_delimiter = ',')]
        queues: Option<Vec<String>>,
    },
    /// Apply database migrations, then exit.
    Migrate {
        /// Also create (or refresh) the demo tenant.
        #[arg(long)]
        seed_demo: bool,
    },
    /// Print the effective configuration (secrets redacted).
    Config,
    /// Run the checks `zengine api` / `zengine worker` make at start-up (keys and the secrets
    /// they reference, the database login, Temporal) without serving; report every failure and
    /// exit 1 if there is one.
    CheckConfig {
        /// Which process's checks: `api` or `worker`.
        #[arg(long, default_value = "api", value_parser = ["api", "worker"])]
        role: String,
    },
    /// Work with conversation flow files: validate, simulate.
    Flow {
        #[command(subcommand)]
        command: flow_cli::FlowCommand,
    },
    /// Solve or benchmark vehicle-routing instances locally (no Temporal, no database).
    Route {
        #[command(subcommand)]
        command: route::RouteCommand,
    },
    /// Read payment receipts locally (no Temporal, no database).
    Ocr {
        #[command(subcommand)]
        command: ocr_cli::OcrCommand,
    },
    /// Replay recorded histories (binary protobuf, or JSON from `temporal workflow show
    /// --output json` / the Web UI) against this binary's workflow code; non-zero exit on any
    /// nondeterminism.
    Replay {
        /// History files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Scaffold code in a ZEngine checkout: `zengine new workflow NAME`.
    New {
        #[command(subcommand)]
        what: NewCommand,
    },
    /// Inspect and act on a tenant's workflows (list, show, history, cancel, terminate,
    /// dead letters and their re-drive).
    Workflows {
        #[command(subcommand)]
        command: workflows_cli::WorkflowsCommand,
    },
    /// Container healthcheck: GET an `http://` URL (e.g. `http://127.0.0.1:8080/readyz`); exit
    /// 0 on a 2xx answer within the timeout, 1 otherwise (the image has no curl).
    Probe {
        url: String,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
}

#[derive(Subcommand)]
enum NewCommand {
    /// A Rust workflow: module, activities, worker and replayer registration, test.
    Workflow {
        /// Module name, lowercase snake_case (`refund_flow` → `RefundFlowWorkflow`).
        name: String,
        /// The checkout to write into.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The task queue it runs on.
        #[arg(long, default_value = "assistance")]
        queue: String,
    },
}

fn new_workflow(dir: &std::path::Path, name: &str, queue: &str) -> std::process::ExitCode {
    match scaffold::scaffold(dir, name, queue) {
        Ok(done) => {
            for path in &done.created {
                println!("created {}", path.display());
            }
            for path in &done.edited {
                println!("edited  {}", path.display());
            }
            println!("\n{}", done.next_steps);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zengine: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// glibc's allocator, tuned for a long-lived worker (the soak, docs/benchmarks.md). With the
/// defaults, the worker's resident memory crept up by ~30 % in ten minutes of receipts without
/// anything leaking: freeing a large block (decoded receipt images, Tesseract's page buffers)
/// raises glibc's dynamic mmap threshold, so later large blocks come from the heap arenas
/// instead of `mmap`, and those arenas (up to 8 per core, one per thread that allocates at the
/// same time) stay fragmented. Fixed thresholds of 128 KiB (large blocks always `mmap`ed and
/// given back when freed; trimmed heaps) and two arenas keep it flat (+5 % at 4× the receipt
/// rate). Each setting yields to its glibc environment variable (`MALLOC_ARENA_MAX`,
/// `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`), which glibc reads itself.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (variable, param, value) in [
        ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 2),
        ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 128 * 1024),
        ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 128 * 1024),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: called before any other thread exists; mallopt only tunes the allocator.
            unsafe {
                libc::mallopt(param, value);
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    // Tesseract parallelises with OpenMP; on small machines its threads thrash (p95 of seconds
    // instead of ~250 ms). Parallelism comes from the OCR worker pool instead. Set before any
    // thread exists, hence before the runtime starts.
    if std::env::var_os("OMP_THREAD_LIMIT").is_none() {
        // SAFETY: no other thread runs yet.
        unsafe { std::env::set_var("OMP_THREAD_LIMIT", "1") };
    }
    tune_malloc();
    let cli = Cli::parse();
    // Offline tools need neither configuration nor logs.
    let command = match cli.command {
        Command::Flow { command } => return std::process::ExitCode::from(flow_cli::run(command)),
        Command::Ocr { command } => return std::process::ExitCode::from(ocr_cli::run(command)),
        // Operator commands print for a terminal: configuration, but no service logs.
        Command::Workflows { command } => {
            return with_settings(cli.config.as_deref(), |settings| async move {
                std::process::ExitCode::from(workflows_cli::run(&settings, command).await)
            });
        }
        Command::Replay { paths } => {
            return with_settings(cli.config.as_deref(), |settings| async move {
                std::process::ExitCode::from(replay_cli::run(&settings, &paths).await)
            });
        }
        Command::Probe { url, timeout_ms } => return probe(&url, timeout_ms),
        Command::New {
            what: NewCommand::Workflow { name, dir, queue },
        } => return new_workflow(&dir, &name, &queue),
        command => command,
    };
    with_settings(cli.config.as_deref(), |settings| serve(settings, command))
}

/// Loads the settings (a bad file, variable or secret exits 2 with the one-line reason) and
/// runs `run` with them on a multi-threaded runtime.
fn with_settings<F, Fut>(config: Option<&std::path::Path>, run: F) -> std::process::ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = std::process::ExitCode>,
{
    let settings = match Settings::load(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zengine: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(settings)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `zengine probe URL`: one GET, success on 2xx.
fn probe(url: &str, timeout_ms: u64) -> std::process::ExitCode {
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime.block_on(async {
                let client = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_millis(timeout_ms))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()?;
                Ok(client.get(url).send().await?.status())
            })
        });
    match answer {
        Ok(status) if status.is_success() => std::process::ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("zengine probe: {url} answered {status}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("zengine probe: {url}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings, command: Command) -> std::process::ExitCode {
    let process = match command {
        Command::Api => "api",
        Command::Worker { .. } => "worker",
        Command::Dev => "dev",
        Command::Migrate { .. } => "migrate",
        _ => "cli",
    };
    zengine_storage::secrets::set_tenant_dir(match settings.secrets.tenant_dir.as_str() {
        // `zengine dev`'s own store; the CLIs (`zengine replay`) read it too when run beside it.
        "" if process == "dev"
            || (process == "cli" && std::path::Path::new(DEV_TENANT_DIR).is_dir()) =>
        {
            DEV_TENANT_DIR
        }
        "" => zengine_storage::secrets::DEFAULT_TENANT_DIR,
        dir => dir,
    });
    let telemetry = match telemetry::init(&settings.telemetry, process) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("zengine: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Dev => dev(settings).await,
        Command::Api => api(settings).await,
        Command::Worker { queues } => worker(settings, queues).await,
        Command::Migrate { seed_demo } => migrate(settings, seed_demo).await,
        Command::Config => {
            println!("{settings:#?}");
            Ok(())
        }
        Command::CheckConfig { role } => check_config(settings, &role).await,
        Command::Flow { .. }
        | Command::Ocr { .. }
        | Command::Workflows { .. }
        | Command::New { .. }
        | Command::Probe { .. }
        | Command::Replay { .. } => {
            unreachable!("handled before configuration is loaded")
        }
        Command::Route { command } => route::run(command),
    };
    // After SIGTERM the services have stopped: export the spans still queued.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error.cause_chain = ?e, error.message = %e, "zengine failed");
            eprintln!("zengine: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves when SIGINT (Ctrl-C) or SIGTERM arrives; every subscriber sees it.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("can install a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
        let _ = tx.send(true);
    });
    rx
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// The database of `zengine api` and `zengine worker`: connected (and migrated, when configured),
/// and on PostgreSQL refused when row-level security would not apply to its role (unless
/// `database.allow_rls_bypass`).
async fn runtime_database(database: &DatabaseSettings) -> anyhow::Result<Database> {
    let db = database.connect().await?;
    if !database.allow_rls_bypass {
        db.check_row_level_security().await?;
    }
    Ok(db)
}

fn require_temporal_address(settings: &Settings) -> anyhow::Result<()> {
    anyhow::ensure!(
        !settings.temporal.address.is_empty(),
        "no Temporal address: set TEMPORAL_ADDRESS or temporal.address (or use `zengine dev`)"
    );
    Ok(())
}

/// Refuses to run without payload encryption keys unless the public development key is allowed.
fn require_codec_keys(settings: &Settings) -> anyhow::Result<()> {
    let codec = &settings.temporal.codec;
    anyhow::ensure!(
        !codec.keys.is_empty() || codec.allow_dev_key,
        "no payload encryption keys: configure temporal.codec.keys (see docs/operators.md), \
         or set temporal.codec.allow_dev_key = true to run on the public development key"
    );
    Ok(())
}

async fn temporal_client(settings: &Settings, role: &str) -> anyhow::Result<Client> {
    require_temporal_address(settings)?;
    require_codec_keys(settings)?;
    let codec = &settings.temporal.codec;
    if codec.keys.is_empty() {
        tracing::warn!(
            key_id = zengine_workers::codec::DEV_KEY_ID,
            "payloads are encrypted with the PUBLIC development key; not for real data"
        );
    }
    let identity = format!("zengine-{role}@{}", std::process::id());
    let client = connect(&settings.temporal, &identity).await?;
    ensure_search_attributes(&client, &settings.temporal.namespace).await?;
    Ok(client)
}

fn app_state(settings: &Settings, db: Database, client: Client) -> anyhow::Result<AppState> {
    AppState::new(
        db,
        client,
        settings.temporal.task_queue_prefix.clone(),
        settings.api.clone(),
        zengine_workers::codec::from_settings(&settings.temporal.codec)?,
    )
}

async fn dev(mut settings: Settings) -> anyhow::Result<()> {
    let started = Instant::now();
    let shutdown = shutdown_signal();
    let dev_server = if settings.temporal.address.is_empty() {
        if settings.dev_server.ui_codec_endpoint.is_none() {
            settings.dev_server.ui_codec_endpoint =
                Some(format!("http://{}/codec", settings.api.addr));
        }
        let server = DevServer::start(&settings.dev_server)?;
        let ready = tokio::task::block_in_place(|| server.wait_ready(Duration::from_secs(60)));
        if let Err(e) = ready {
            let _ = server.stop(Duration::from_secs(5));
            return Err(e);
        }
        settings.temporal.address = server.address().to_owned();
        settings.temporal.embedded = true;
        // Its Web UI has no sign-in: while payloads are on the public development key (which
        // decrypts them for anyone), the codec decodes for that UI's origin without a token.
        if let (Some(port), true) = (
            settings.dev_server.ui_port,
            settings.temporal.codec.keys.is_empty(),
        ) {
            for host in [settings.dev_server.ip.as_str(), "localhost"] {
                settings
                    .api
                    .dev_ui_origins
                    .push(format!("http://{host}:{port}"));
            }
        }
        Some(server)
    } else {
        None
    };
    // Payloads are encrypted with the public development key unless keys are configured.
    settings.temporal.codec.allow_dev_key = true;
    // Each tenant's payloads also depend on its own key file (data/tenant-secrets/<tenant>/
    // payload-key), so `POST /v1/tenants/{t}/erase` erases its histories.
    if settings.temporal.codec.tenant_key_secret.is_empty() {
        settings.temporal.codec.tenant_key_secret = DEV_TENANT_KEY_SECRET.to_owned();
    }
    // Development credentials of the demo WhatsApp webhook (README); production sets its own.
    if settings.api.whatsapp_app_secret.expose_secret().is_empty() {
        settings.api.whatsapp_app_secret = DEV_WHATSAPP_APP_SECRET.to_owned().into();
    }
    if settings
        .api
        .whatsapp_verify_token
        .expose_secret()
        .is_empty()
    {
        settings.api.whatsapp_verify_token = DEV_WHATSAPP_VERIFY_TOKEN.to_owned().into();
    }
    // The local fakes of a development machine (a tenant backend, a Graph API, Chatwoot) listen
    // on loopback: open it unless outbound ranges are configured. Production opens nothing.
    for (name, outbound) in [
        ("worker", &mut settings.worker.outbound),
        ("api", &mut settings.api.outbound),
    ] {
        if outbound.allow_cidrs.is_empty() {
            *outbound = zengine_channels::outbound::OutboundSettings::loopback();
            tracing::info!(
                allow_cidrs = ?outbound.allow_cidrs,
                "zengine dev: {name}.outbound opens loopback to tenant-steered calls"
            );
        }
    }
    let result = dev_services(&settings, started, shutdown).await;
    if let Some(server) = dev_server {
        tokio::task::block_in_place(|| server.stop(Duration::from_secs(20)))?;
    }
    result
}

async fn dev_services(
    settings: &Settings,
    started: Instant,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client = temporal_client(settings, "dev").await?;
    let mut db_settings = settings.database.clone();
    db_settings.migrate_on_start = true;
    let db = db_settings.connect().await?;
    seed_demo_tenant(&db, &zengine_workflows::flows::examples()).await?;
    let state = app_state(settings, db.clone(), client.clone())?;
    zengine_api::provision_payload_keys(&state).await?;
    let app = Application::build(state).await?;
    let mut worker_settings = settings.worker.clone();
    if worker_settings.queues == zengine_workers::WorkerSettings::default().queues {
        worker_settings.queues = queues::ALL.iter().map(|q| (*q).to_owned()).collect();
    }
    tracing::info!(
        api = %format!("http://{}", settings.api.addr),
        temporal = %settings.temporal.address,
        web_ui = ?settings.dev_server.ui_port.map(|p| format!("http://{}:{p}", settings.dev_server.ip)),
        startup_ms = started.elapsed().as_millis() as u64,
        "zengine dev is ready"
    );
    if settings.dev_server.ui_port.is_some() {
        println!(
            "Web UI codec endpoint: {} (payloads show decoded in this dev server's Web UI while \
             they are on the development key; with temporal.codec.keys, Web UI > Settings > \
             Codec Server with the admin token or an operator JWT)",
            settings
                .dev_server
                .ui_codec_endpoint
                .clone()
                .unwrap_or_else(|| format!("http://{}/codec", settings.api.addr))
        );
    }
    let api = tokio::spawn(app.run_until_stopped(wait_for(shutdown.clone())));
    let workers = run_workers(
        client,
        &settings.temporal,
        &worker_settings,
        &db,
        wait_for(shutdown.clone()),
    );
    let (api_result, worker_result) =
        tokio::join!(async { api.await.context("API task panicked")? }, workers);
    db.close().await;
    report_exit("api", api_result)?;
    report_exit("worker", worker_result)
}

fn report_exit(name: &str, result: anyhow::Result<()>) -> anyhow::Result<()> {
    match &result {
        Ok(()) => tracing::info!(component = name, "stopped"),
        Err(e) => tracing::error!(component = name, error.cause_chain = ?e, "failed"),
    }
    result
}

async fn api(settings: Settings) -> anyhow::Result<()> {
    // Keys first, in this order, before any connection: payload encryption, then the contact-id
    // hash key.
    require_codec_keys(&settings)?;
    settings
        .api
        .check_keys(settings.temporal.codec.allow_dev_key)?;
    let shutdown = shutdown_signal();
    let client = temporal_client(&settings, "api").await?;
    let db = runtime_database(&settings.database).await?;
    let state = app_state(&settings, db.clone(), client)?;
    // Tenants created before `temporal.codec.tenant_key_secret` was set get their key now.
    zengine_api::provision_payload_keys(&state).await?;
    let app = Application::build(state).await?;
    let result = app.run_until_stopped(wait_for(shutdown)).await;
    db.close().await;
    report_exit("api", result)
}

async fn worker(mut settings: Settings, queues: Option<Vec<String>>) -> anyhow::Result<()> {
    if let Some(queues) = queues {
        settings.worker.queues = queues;
    }
    let shutdown = shutdown_signal();
    let client = temporal_client(&settings, "worker").await?;
    let db = runtime_database(&settings.database).await?;
    let result = run_workers(
        client,
        &settings.temporal,
        &settings.worker,
        &db,
        wait_for(shutdown),
    )
    .await;
    db.close().await;
    report_exit("worker", result)
}

/// `zengine check-config`: start-up's checks, each reported, none stopping the others.
async fn check_config(settings: Settings, role: &str) -> anyhow::Result<()> {
    let mut failures = 0;
    let mut report = |check: &str, result: anyhow::Result<()>| match result {
        Ok(()) => println!("ok    {check}"),
        Err(e) => {
            failures += 1;
            println!("FAIL  {check}: {e:#}");
        }
    };
    report(
        "codec keys",
        require_codec_keys(&settings)
            .and_then(|()| zengine_workers::codec::from_settings(&settings.temporal.codec))
            .map(drop),
    );
    if role == "api" {
        report(
            "contact id key",
            settings
                .api
                .check_keys(settings.temporal.codec.allow_dev_key),
        );
    }
    let mut database = settings.database.clone();
    database.migrate_on_start = false;
    let checked = async {
        runtime_database(&database).await?.close().await;
        Ok(())
    };
    report("database", checked.await);
    let identity = format!("zengine-check@{}", std::process::id());
    let temporal = async {
        require_temporal_address(&settings)?;
        // Connectivity only: the keys have their own line above.
        zengine_workers::connect_with_codec(&settings.temporal, &identity, None)
            .await
            .map(drop)
    };
    report("temporal", temporal.await);
    anyhow::ensure!(failures == 0, "{failures} check(s) failed");
    Ok(())
}

async fn migrate(settings: Settings, seed_demo: bool) -> anyhow::Result<()> {
    let mut db_settings = settings.database.clone();
    db_settings.migrate_on_start = true;
    let db = db_settings.connect().await?;
    if seed_demo {
        seed_demo_tenant(&db, &zengine_workflows::flows::examples()).await?;
    }
    db.close().await;
    tracing::info!("migrations applied");
    Ok(())
}
