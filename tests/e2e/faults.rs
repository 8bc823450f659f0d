//! Fault injection at the process level: the Temporal server restarted under running
//! workflows, the domain database cut off behind a TCP proxy.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use zengine_workers::devserver::{DevServer, DevServerSettings, free_port};
use zengine_workers::testing::temporal_binary;

use temporalio_common::protos::temporal::api::failure::v1::Failure;
use temporalio_common::protos::temporal::api::workflow::v1::PendingActivityInfo;

use super::{Cluster, first_text, say};

/// A webchat message whose answer may be an error (the raw status and body).
async fn try_say(base: &str, session: &str, key: &str, text: &str) -> (u16, Value) {
    let request = reqwest::Client::new()
        .post(format!("{base}/v1/webchat/messages"))
        .header("x-tenant-id", "demo")
        .header("x-idempotency-key", key)
        .json(&json!({"session_id": session, "text": text}))
        .timeout(Duration::from_secs(30));
    answer(request).await
}

/// `GET url`: its status and JSON body.
async fn get_json(url: &str) -> (u16, Value) {
    answer(
        reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(5)),
    )
    .await
}

/// The status and JSON body of `request` (0 and the error when nothing answered).
async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    match request.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!(e.to_string())),
    }
}

async fn readyz(base: &str) -> u16 {
    get_json(&format!("{base}/readyz")).await.0
}

/// Polls `/readyz` until it answers `want`.
async fn wait_readyz(base: &str, want: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = readyz(base).await;
        if got == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "/readyz still answers {got}, not {want}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Temporal dev server of this test only, on a SQLite file (so it can be restarted).
fn temporal_on(db: &Path, port: u16, log: &Path) -> DevServer {
    let settings = DevServerSettings {
        binary: temporal_binary(),
        port,
        ui_port: None,
        db_file: Some(db.to_owned()),
        log_file: Some(log.to_owned()),
        ..DevServerSettings::default()
    };
    let server = DevServer::start(&settings).unwrap();
    server.wait_ready(Duration::from_secs(60)).unwrap();
    server
}

#[tokio::test]
async fn workflows_resume_and_complete_after_the_temporal_server_restarts() {
    let started = Instant::now();
    let temporal_dir = tempfile::tempdir().unwrap();
    let db = temporal_dir.path().join("temporal.db");
    let log = temporal_dir.path().join("temporal.log");
    let port = free_port();
    let temporal = temporal_on(&db, port, &log);
    let address = format!("127.0.0.1:{port}");
    let cluster = Cluster::new(
        "trestart",
        &[
            ("TEMPORAL_ADDRESS", &address),
            ("ZENGINE_API__WEBCHAT_TIMEOUT_MS", "10000"),
            (
                "ZENGINE_WORKER__STICKY_SCHEDULE_TO_START_TIMEOUT_MS",
                "1000",
            ),
        ],
    );
    let base = cluster.base.clone();
    let api = cluster.api();
    let worker = cluster.worker("worker.log");
    cluster.wait_api().await;

    // Five conversations mid-flow: each has answered its first message and waits (with its
    // idle timer running) for the next.
    const N: usize = 5;
    for i in 0..N {
        let reply = say(&base, &format!("tr-{i}"), &format!("tr-{i}-1"), "hola").await;
        assert!(first_text(&reply).contains("¿Cómo te llamas?"), "{reply}");
    }
    // Two of them get their second message while Temporal goes away.
    let in_flight: Vec<_> = (0..2)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(async move {
                try_say(&base, &format!("tr-{i}"), &format!("tr-{i}-2"), "Ana").await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped_at = Instant::now();
    temporal.stop(Duration::from_secs(20)).unwrap();

    // Down: the service says so instead of hanging or crashing.
    wait_readyz(&base, 503, Duration::from_secs(10)).await;
    let (status, body) = try_say(&base, "tr-2", "tr-2-2", "Ana").await;
    assert!(
        [503, 504].contains(&status),
        "a message while Temporal is down: {status} {body}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let down_for = stopped_at.elapsed();

    // Same SQLite file, same port.
    let temporal = temporal_on(&db, port, &log);
    let recovered = wait_readyz(&base, 200, Duration::from_secs(60)).await;

    // Every conversation continues where it was; a message whose answer was lost in the outage
    // is sent again with its idempotency key and counts once.
    for (i, pending) in in_flight.into_iter().enumerate() {
        let (status, body) = pending.await.unwrap();
        eprintln!("in flight during the stop: tr-{i}: {status} {body}");
    }
    for i in 0..N {
        let session = format!("tr-{i}");
        let second = retry_say(&base, &session, &format!("tr-{i}-2"), "Ana").await;
        assert_eq!(second["turn"], 2, "{session}: {second}");
        assert_eq!(
            first_text(&second),
            "Mucho gusto, Ana. ¿En qué te puedo ayudar hoy?",
            "{session}"
        );
        let third = retry_say(&base, &session, &format!("tr-{i}-3"), "un pedido").await;
        assert_eq!(third["turn"], 3, "{session}: {third}");
        let texts: Vec<&str> = third["replies"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["text"].as_str())
            .collect();
        assert!(
            texts
                .iter()
                .any(|t| t.contains("Anoté tu consulta: \"un pedido\"")),
            "{session}: {third}"
        );
        assert!(texts.contains(&"¡Hasta pronto!"), "{session}: {third}");
    }

    worker.signal(Signal::SIGTERM);
    assert!(worker.wait(Duration::from_secs(30)).success());
    api.signal(Signal::SIGTERM);
    assert!(api.wait(Duration::from_secs(30)).success());
    temporal.stop(Duration::from_secs(20)).unwrap();
    eprintln!(
        "Temporal down for {down_for:?}, ready again {recovered:?} after its restart; test took {:?}",
        started.elapsed()
    );
}

/// [`say`], retried while the service is still reconnecting (5xx), with the same key.
async fn retry_say(base: &str, session: &str, key: &str, text: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, body) = try_say(base, session, key, text).await;
        if status == 200 {
            return body;
        }
        assert!(
            (status == 0 || status >= 500) && Instant::now() < deadline,
            "{session}/{key}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A loopback TCP proxy in front of PostgreSQL that the test can cut: every open connection is
/// dropped and new ones are closed as soon as they are accepted, until it is restored.
struct CuttableProxy {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CuttableProxy {
    async fn start(target: &'static str) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Self {
            port,
            cut: Default::default(),
            connections: Default::default(),
        };
        let (cut, connections) = (proxy.cut.clone(), proxy.connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if cut.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
                let mut open = connections.lock().unwrap();
                open.retain(|t| !t.is_finished());
                open.push(task.abort_handle());
            }
        });
        proxy
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

fn psql(sql: &str) {
    let status = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-qAtc",
            sql,
        ])
        .status()
        .expect("psql (PostgreSQL runs on 127.0.0.1:5432, scripts/ensure-postgres.sh)");
    assert!(status.success(), "{sql}");
}

/// The rows of a query on database `db` (straight to PostgreSQL, not through the proxy), one
/// line each.
fn psql_rows(db: &str, sql: &str) -> Vec<String> {
    let out = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qAtc", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// How sqlx reports a PostgreSQL connection that went away: an I/O error on an open connection,
/// or, on a connection the cut proxy closes at once, an empty answer to the TLS probe
/// (`sslmode=prefer`, the default since sqlx is built with TLS).
const DB_GONE: [&str; 2] = [
    "error communicating with database",
    "unexpected response from SSLRequest",
];

/// A failure's message followed by those of its causes.
fn failure_chain(failure: &Failure) -> String {
    let mut text = failure.message.clone();
    let mut cause = failure.cause.as_deref();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.message);
        cause = c.cause.as_deref();
    }
    text
}

/// The pending `activity_type` activity of workflow `workflow_id`, if one is pending.
async fn pending_activity(
    client: &temporalio_client::Client,
    workflow_id: &str,
    activity_type: &str,
) -> Option<PendingActivityInfo> {
    use temporalio_client::grpc::WorkflowService;
    use temporalio_client::tonic::IntoRequest;
    use temporalio_common::protos::temporal::api::common::v1::WorkflowExecution;
    use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeWorkflowExecutionRequest;
    let request = DescribeWorkflowExecutionRequest {
        namespace: "default".to_owned(),
        execution: Some(WorkflowExecution {
            workflow_id: workflow_id.to_owned(),
            run_id: String::new(),
        }),
    };
    let described =
        WorkflowService::describe_workflow_execution(&mut client.clone(), request.into_request())
            .await
            .expect("describe the order workflow")
            .into_inner();
    described.pending_activities.into_iter().find(|a| {
        a.activity_type
            .as_ref()
            .is_some_and(|t| t.name == activity_type)
    })
}

/// Sends a request until it succeeds, as a client would: 5xx and connection errors are retried
/// with the same idempotency key; a 4xx fails the test. Returns the body and the attempts.
async fn until_ok(request: impl Fn() -> reqwest::RequestBuilder) -> (Value, u32) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (status, body) = match request().timeout(Duration::from_secs(30)).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, json!(e.to_string())),
        };
        if (200..300).contains(&status) {
            return (body, attempts);
        }
        assert!(
            (status == 0 || status >= 500) && Instant::now() < deadline,
            "{status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

// Multi-threaded: the proxy must keep running while the test blocks (on `zengine migrate`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_domain_database_gone_for_ten_seconds_loses_nothing_and_recovers_by_itself() {
    use futures::StreamExt;

    let started = Instant::now();
    let name = format!(
        "zengine_test_dbcut_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    psql(&format!("CREATE DATABASE {name}"));
    zengine_storage::testing::ensure_test_roles().await.unwrap();
    let proxy = CuttableProxy::start("127.0.0.1:5432").await;
    let owner = format!("postgres://postgres@127.0.0.1:{}/{name}", proxy.port);
    let url =
        zengine_storage::testing::with_user(&owner, zengine_storage::testing::TEST_RUNTIME_ROLE);
    let cluster = Cluster::new(
        "dbcut",
        &[
            // As in production: migrations as the owner, the processes as a login that is only
            // a member of zengine_app, so row-level security applies.
            ("ZENGINE_DATABASE__MIGRATION_URL", &owner),
            ("DATABASE_URL", &url),
            ("ZENGINE_API__ADMIN_TOKEN", "t0ken"),
            ("ZENGINE_API__WEBCHAT_TIMEOUT_MS", "20000"),
        ],
    );
    let base = cluster.base.clone();
    let api = cluster.api();
    let mut worker_cmd = cluster.command("worker.log");
    // The worker's probes (Kubernetes liveness and readiness) on a port of their own.
    let worker_health = format!(
        "http://127.0.0.1:{}",
        zengine_workers::devserver::free_port()
    );
    worker_cmd
        .args(["worker", "--queues", "conversations,payments"])
        .env(
            "ZENGINE_WORKER__HEALTH_ADDR",
            worker_health.trim_start_matches("http://"),
        );
    let worker = super::Proc::spawn("zengine worker", worker_cmd);
    cluster.wait_api().await;
    wait_readyz(&base, 200, Duration::from_secs(30)).await;
    wait_readyz(&worker_health, 200, Duration::from_secs(30)).await;

    let http = reqwest::Client::new();
    let (h, b) = (http.clone(), base.clone());
    let message = move |session: String, key: String, text: &'static str| {
        let (http, base) = (h.clone(), b.clone());
        move || {
            http.post(format!("{base}/v1/webchat/messages"))
                .header("x-tenant-id", "demo")
                .header("x-idempotency-key", key.clone())
                .json(&json!({"session_id": session, "text": text}))
        }
    };
    let (h, b) = (http.clone(), base.clone());
    let order = move |key: String| {
        let (http, base) = (h.clone(), b.clone());
        move || {
            http.post(format!("{base}/v1/orders"))
                .bearer_auth("t0ken")
                .header("x-tenant-id", "demo")
                .json(&json!({
                    "client_order_key": key,
                    "customer": {"phone": "+51911111111", "name": "Ana"},
                    "type": "pickup",
                    "items": [{"name": "Ceviche", "quantity": 1, "unit_price": "30.00"}],
                }))
        }
    };

    // Orders created before the outage; their cancellation is what the outage interrupts:
    // the order workflow writes each status change with a retried activity.
    const N: usize = 8;
    let mut orders = Vec::new();
    for i in 0..N {
        let (created, _) = until_ok(order(format!("db-order-{i}"))).await;
        orders.push(created["order_id"].as_str().unwrap().to_owned());
    }
    // One more order, moved only once the database is gone: its status write is an activity
    // that must meet the outage. The change goes to the workflow straight through Temporal (the
    // API endpoint reads the order from the database first, so it would only answer 503).
    let (probe, _) = until_ok(order("db-order-probe".to_owned())).await;
    let probe = probe["order_id"].as_str().unwrap().to_owned();
    let probe_workflow = zengine_domain::workflow_ids::order(
        &zengine_domain::TenantId::parse("demo").unwrap(),
        &probe,
    );
    let temporal = zengine_workers::connect(
        &zengine_workers::TemporalSettings {
            address: zengine_workers::testing::shared_dev_server().to_owned(),
            ..Default::default()
        },
        "e2e-dbcut",
    )
    .await
    .unwrap();
    let cancel = |order_id: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut attempts = 0;
            loop {
                attempts += 1;
                let answer = http
                    .post(format!("{base}/v1/orders/{order_id}/status"))
                    .bearer_auth("t0ken")
                    .header("x-tenant-id", "demo")
                    .json(&json!({"status": "CANCELLED", "reason": "outage test"}))
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await;
                let status = answer.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
                match status {
                    200 => return attempts,
                    // An earlier attempt was applied but its answer lost: the order is closed.
                    409 if attempts > 1 => return attempts,
                    s if s == 0 || s >= 500 => {}
                    other => panic!("cancel {order_id}: {other} {answer:?}"),
                }
                assert!(Instant::now() < deadline, "cancel {order_id}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };

    // Traffic: 8 conversations (two messages each) started every 250 ms from 1 s before the
    // cut, and the 8 cancellations fired just before it; every client retries until answered.
    let conversations = tokio::spawn({
        let message = message.clone();
        async move {
            futures::stream::iter(0..N)
                .map(|i| {
                    let first = message(format!("db-{i}"), format!("db-{i}-1"), "hola");
                    let second = message(format!("db-{i}"), format!("db-{i}-2"), "Ana");
                    async move {
                        tokio::time::sleep(Duration::from_millis(250 * i as u64)).await;
                        let (one, a1) = until_ok(first).await;
                        let (two, a2) = until_ok(second).await;
                        (i, one, two, a1 + a2 - 2)
                    }
                })
                .buffer_unordered(N)
                .collect::<Vec<_>>()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(950)).await;
    let cancellations: Vec<_> = orders
        .iter()
        .map(|id| tokio::spawn(cancel(id.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    proxy.cut();
    let cut_at = Instant::now();
    let probe_change = tokio::spawn({
        let handle = temporal
            .get_workflow_handle::<zengine_workflows::OrderWorkflow>(probe_workflow.clone());
        async move {
            handle
                .execute_update(
                    zengine_workflows::OrderWorkflow::change_status,
                    zengine_workflows::order::ChangeStatus {
                        to: zengine_domain::order::OrderStatus::Cancelled,
                        source: "operator".into(),
                        reason: Some("sent during the outage".into()),
                    },
                    Default::default(),
                )
                .await
        }
    });
    let unready_after = wait_readyz(&base, 503, Duration::from_secs(8)).await;
    // The worker says so too, and stays alive (liveness is not readiness).
    wait_readyz(&worker_health, 503, Duration::from_secs(8)).await;
    let (status, body) = get_json(&format!("{worker_health}/readyz")).await;
    assert_eq!(
        (status, &body["database"], &body["temporal"]),
        (503, &json!("unavailable"), &json!("ok")),
        "{body}"
    );
    assert_eq!(get_json(&format!("{worker_health}/healthz")).await.0, 200);
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(cut_at.elapsed())).await;
    // The cut lasts until the probe's status write has failed at least once against it.
    let failed_attempt = loop {
        let pending = pending_activity(&temporal, &probe_workflow, "SetOrderStatus").await;
        if let Some(failure) = pending
            .as_ref()
            .filter(|p| p.attempt > 1)
            .and_then(|p| p.last_failure.as_ref())
        {
            break (pending.as_ref().unwrap().attempt, failure_chain(failure));
        }
        assert!(
            cut_at.elapsed() < Duration::from_secs(40),
            "no failed attempt of the probe's SetOrderStatus during the cut: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let cut_for = cut_at.elapsed();
    proxy.restore();
    let ready_after = wait_readyz(&base, 200, Duration::from_secs(30)).await;
    wait_readyz(&worker_health, 200, Duration::from_secs(30)).await;

    let results = tokio::time::timeout(Duration::from_secs(120), conversations)
        .await
        .expect("all conversations answered")
        .unwrap();
    let mut retried = 0;
    for (i, one, two, retries) in &results {
        retried += retries;
        assert_eq!(one["turn"], 1, "db-{i}: {one}");
        assert_eq!(two["turn"], 2, "db-{i}: {two}");
        assert_eq!(
            first_text(two),
            "Mucho gusto, Ana. ¿En qué te puedo ayudar hoy?",
            "db-{i}"
        );
    }
    for cancellation in cancellations {
        retried += tokio::time::timeout(Duration::from_secs(120), cancellation)
            .await
            .expect("every cancellation answered")
            .unwrap()
            - 1;
    }
    assert!(retried > 0, "the outage was felt by some requests");

    // The probe's change: stored once the database came back, after attempts that met the cut.
    let view = tokio::time::timeout(Duration::from_secs(120), probe_change)
        .await
        .expect("the probe's change answered")
        .unwrap()
        .expect("the probe's change was stored");
    assert_eq!(
        view.status,
        zengine_domain::order::OrderStatus::Cancelled,
        "{view:?}"
    );
    let (started_attempt, started_failure) = {
        use temporalio_client::WorkflowFetchHistoryOptions;
        use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
        let events = temporal
            .get_workflow_handle::<zengine_workflows::OrderWorkflow>(probe_workflow.clone())
            .fetch_history(WorkflowFetchHistoryOptions::default())
            .into_events()
            .await
            .unwrap();
        let scheduled: Vec<i64> = events
            .iter()
            .filter(|e| {
                matches!(&e.attributes, Some(Attributes::ActivityTaskScheduledEventAttributes(a))
                    if a.activity_type.as_ref().is_some_and(|t| t.name == "SetOrderStatus"))
            })
            .map(|e| e.event_id)
            .collect();
        assert_eq!(scheduled.len(), 1, "one status write scheduled");
        let started = events
            .iter()
            .find_map(|e| match &e.attributes {
                Some(Attributes::ActivityTaskStartedEventAttributes(a))
                    if a.scheduled_event_id == scheduled[0] =>
                {
                    Some(a.clone())
                }
                _ => None,
            })
            .expect("the status write started");
        let completed = events.iter().any(|e| {
            matches!(&e.attributes, Some(Attributes::ActivityTaskCompletedEventAttributes(a))
                if a.scheduled_event_id == scheduled[0])
        });
        assert!(completed, "the status write completed");
        (
            started.attempt,
            started
                .last_failure
                .as_ref()
                .map(failure_chain)
                .unwrap_or_default(),
        )
    };
    eprintln!(
        "probe: attempt {} failed during the cut with `{}`; completed at attempt \
         {started_attempt}, last failure `{started_failure}`",
        failed_attempt.0, failed_attempt.1
    );
    assert!(
        started_attempt > 1,
        "the status write was retried: attempt {started_attempt}"
    );
    for failure in [&failed_attempt.1, &started_failure] {
        assert!(
            DB_GONE.iter().any(|gone| failure.contains(gone)),
            "the failure names the database error: {failure}"
        );
    }
    // Its effect, read from PostgreSQL itself: the order cancelled, one status event.
    assert_eq!(
        psql_rows(
            &name,
            &format!("select status from sales_order where order_id = '{probe}'")
        ),
        ["CANCELLED"]
    );
    assert_eq!(
        psql_rows(
            &name,
            &format!(
                "select event_id from domain_event where subject = '{probe}' \
                 and event_type = 'Order.StatusChanged'"
            )
        ),
        [format!("{probe_workflow}/status-1")]
    );

    // Nothing lost, nothing doubled: one order per key, each cancelled in the database.
    let (page, _) = until_ok(|| {
        http.get(format!("{base}/v1/orders?limit=100"))
            .bearer_auth("t0ken")
            .header("x-tenant-id", "demo")
    })
    .await;
    let mut keys: Vec<&str> = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["client_order_key"].as_str())
        .collect();
    keys.sort_unstable();
    let want: Vec<String> = (0..N)
        .map(|i| format!("db-order-{i}"))
        .chain(["db-order-probe".to_owned()])
        .collect();
    assert_eq!(keys, want.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        page["orders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "CANCELLED"),
        "{page}"
    );

    assert!(
        nix::sys::signal::kill(api.pid(), None).is_ok()
            && nix::sys::signal::kill(worker.pid(), None).is_ok(),
        "the API and the worker stayed up"
    );
    worker.signal(Signal::SIGTERM);
    assert!(worker.wait(Duration::from_secs(30)).success());
    api.signal(Signal::SIGTERM);
    assert!(api.wait(Duration::from_secs(30)).success());
    psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    eprintln!(
        "database cut for {cut_for:?}: /readyz 503 after {unready_after:?}, 200 again \
         {ready_after:?} after the restore; {retried} client retries; test took {:?}",
        started.elapsed()
    );
}

/// On PostgreSQL, `zengine api` and `zengine worker` refuse to log in as a role row-level
/// security does not confine: the superuser the tests log in as, the schema's owner (not a
/// superuser, as a production migration role), and a login that could `SET ROLE` to that
/// owner. Tenancy would rest on the queries alone. As a login that is only a member of
/// `zengine_app` they run (the database-outage test above starts a cluster so).
#[tokio::test]
async fn api_and_worker_refuse_a_database_login_that_row_level_security_does_not_confine() {
    use zengine_storage::testing::{TEST_OWNER_ROLE, ensure_test_roles, with_user};
    let name = format!(
        "zengine_test_rls_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    ensure_test_roles().await.unwrap();
    psql(&format!("CREATE DATABASE {name} OWNER {TEST_OWNER_ROLE}"));
    let admin = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let owner = with_user(&admin, TEST_OWNER_ROLE);
    // A login that is not the owner but may become it.
    let climber = format!("zengine_test_climber_{}", &name[17..]);
    psql(&format!(
        "CREATE ROLE {climber} LOGIN IN ROLE zengine_app, {TEST_OWNER_ROLE}"
    ));
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (admin.clone(), "`postgres` is a superuser".to_owned()),
        (
            owner.clone(),
            format!("`{TEST_OWNER_ROLE}` owns the tenant tables"),
        ),
        (
            with_user(&admin, &climber),
            format!("`{climber}` can become `{TEST_OWNER_ROLE}`, which owns the tenant tables"),
        ),
    ];
    for (url, why) in &cases {
        for role in ["api", "worker"] {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_zengine"))
                .current_dir(dir.path())
                .arg(role)
                .env_remove("ZENGINE_CONFIG")
                .env(
                    "TEMPORAL_ADDRESS",
                    zengine_workers::testing::shared_dev_server(),
                )
                .env("ZENGINE_TEMPORAL__CODEC__ALLOW_DEV_KEY", "true")
                .env(
                    "ZENGINE_TEMPORAL__TASK_QUEUE_PREFIX",
                    zengine_workers::testing::unique_prefix("rls"),
                )
                .env("ZENGINE_DATABASE__MIGRATION_URL", &owner)
                .env("DATABASE_URL", url)
                .output()
                .unwrap();
            assert!(!output.status.success(), "{role} ran as {url}");
            let error = String::from_utf8_lossy(&output.stderr);
            assert!(
                error.contains(why.as_str()) && error.contains("database.migration_url"),
                "{role} as {url}: {error}"
            );
        }
    }
    psql(&format!("DROP DATABASE {name} WITH (FORCE)"));
    psql(&format!("DROP ROLE {climber}"));
}
