//! `zengine workflows …` run as a process against the real Temporal dev server.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use temporalio_client::WorkflowStartOptions;
use temporalio_common::search_attributes::SearchAttributes;
use zengine_domain::TenantId;
use zengine_domain::order::OrderType;
use zengine_workers::testing::shared_dev_server;
use zengine_workers::{TemporalSettings, connect, ensure_search_attributes};
use zengine_workflows::OrderWorkflow;
use zengine_workflows::names::TENANT_ID;
use zengine_workflows::order::OrderInput;

fn zengine(args: &[&str]) -> Output {
    let dir = std::env::temp_dir();
    Command::new(env!("CARGO_BIN_EXE_zengine"))
        .current_dir(dir)
        .args(args)
        .env("TEMPORAL_ADDRESS", shared_dev_server())
        .env_remove("ZENGINE_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run zengine")
}

fn ok_json(args: &[&str]) -> Value {
    let out = zengine(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn workflows_commands_list_show_read_and_close_a_tenants_workflow() {
    // Arrange: an order workflow of a tenant of our own, with no worker, so it stays Running.
    let settings = TemporalSettings {
        address: shared_dev_server().to_owned(),
        ..TemporalSettings::default()
    };
    let client = connect(&settings, "cli-test").await.unwrap();
    ensure_search_attributes(&client, &settings.namespace)
        .await
        .unwrap();
    let tenant = format!("cli-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let workflow_id = format!("{tenant}/order/o-1");
    let input = OrderInput {
        tenant_id: TenantId::parse(tenant.as_str()).unwrap(),
        order_id: "o-1".into(),
        order_type: OrderType::Pickup,
    };
    let options = WorkflowStartOptions::new("cli-test-no-worker", workflow_id.clone())
        .search_attributes(SearchAttributes::new([TENANT_ID.value_set(tenant.clone())]))
        .build();
    client
        .start_workflow(OrderWorkflow::run, input, options)
        .await
        .unwrap();

    // list: JSON and table (visibility catches up within seconds).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = ok_json(&["workflows", "list", "--tenant", &tenant, "--json"]);
        if listed["workflows"].as_array().unwrap().len() == 1 {
            assert_eq!(listed["workflows"][0]["workflow_id"], workflow_id.as_str());
            assert_eq!(listed["workflows"][0]["status"], "Running");
            break;
        }
        assert!(Instant::now() < deadline, "{listed}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let table = text(&zengine(&[
        "workflows",
        "list",
        "--tenant",
        &tenant,
        "--type",
        "Order",
    ]));
    assert!(table.starts_with("WORKFLOW ID"), "{table}");
    assert!(
        table.contains(&workflow_id) && table.contains("Running"),
        "{table}"
    );
    let other = text(&zengine(&["workflows", "list", "--tenant", "someone-else"]));
    assert!(
        other.contains("(no workflows)") && !other.contains(&tenant),
        "{other}"
    );
    let escape = zengine(&[
        "workflows",
        "list",
        "--tenant",
        &tenant,
        "--query",
        "x = 1) OR (TenantId = 'y'",
    ]);
    assert_eq!(escape.status.code(), Some(2), "{}", text(&escape));

    // show: status and type; no worker answers the state query, which is said, not hidden.
    let shown = ok_json(&[
        "workflows",
        "show",
        "--tenant",
        &tenant,
        &workflow_id,
        "--json",
    ]);
    assert_eq!(
        (shown["type"].as_str(), shown["status"].as_str()),
        (Some("Order"), Some("Running"))
    );
    assert!(
        shown["state_error"].as_str().unwrap().contains("worker"),
        "{shown}"
    );
    let readable = text(&zengine(&[
        "workflows",
        "show",
        "--tenant",
        &tenant,
        &workflow_id,
    ]));
    assert!(readable.contains("Status          Running"), "{readable}");
    // Another tenant's workflow does not exist for this tenant.
    let foreign = zengine(&[
        "workflows",
        "show",
        "--tenant",
        "someone-else",
        &workflow_id,
    ]);
    assert_eq!(foreign.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&foreign.stderr).contains("does not exist"));

    // history: the started event with its decoded input.
    let history = ok_json(&[
        "workflows",
        "history",
        "--tenant",
        &tenant,
        &workflow_id,
        "--json",
    ]);
    assert_eq!(
        history["events"][0]["event_type"],
        "WorkflowExecutionStarted"
    );
    assert_eq!(
        history["events"][0]["details"]["input"][0]["order_id"],
        "o-1"
    );
    let timeline = text(&zengine(&[
        "workflows",
        "history",
        "--tenant",
        &tenant,
        &workflow_id,
    ]));
    assert!(
        timeline.contains("WorkflowExecutionStarted") && timeline.contains("o-1"),
        "{timeline}"
    );

    // cancel, then terminate (a reason is required; a closed run cannot be terminated again).
    let cancelled = ok_json(&[
        "workflows",
        "cancel",
        "--tenant",
        &tenant,
        &workflow_id,
        "--reason",
        "cli test",
        "--json",
    ]);
    assert_eq!(cancelled["action"], "cancel");
    let history = ok_json(&[
        "workflows",
        "history",
        "--tenant",
        &tenant,
        &workflow_id,
        "--json",
    ]);
    assert!(
        history
            .to_string()
            .contains("WorkflowExecutionCancelRequested"),
        "{history}"
    );
    let no_reason = zengine(&["workflows", "terminate", "--tenant", &tenant, &workflow_id]);
    assert_eq!(no_reason.status.code(), Some(2));
    let blank = zengine(&[
        "workflows",
        "terminate",
        "--tenant",
        &tenant,
        &workflow_id,
        "--reason",
        " ",
    ]);
    assert_eq!(blank.status.code(), Some(2));
    let done = zengine(&[
        "workflows",
        "terminate",
        "--tenant",
        &tenant,
        &workflow_id,
        "--reason",
        "cli test",
    ]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(text(&done).contains("terminated"), "{}", text(&done));
    let again = zengine(&[
        "workflows",
        "terminate",
        "--tenant",
        &tenant,
        &workflow_id,
        "--reason",
        "again",
    ]);
    assert_eq!(again.status.code(), Some(4));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = ok_json(&[
            "workflows",
            "list",
            "--tenant",
            &tenant,
            "--status",
            "Terminated",
            "--json",
        ]);
        if listed["workflows"].as_array().unwrap().len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{listed}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn zengine_with_db(db_url: &str, args: &[&str]) -> Output {
    let dir = std::env::temp_dir();
    Command::new(env!("CARGO_BIN_EXE_zengine"))
        .current_dir(dir)
        .args(args)
        .env("TEMPORAL_ADDRESS", shared_dev_server())
        .env("DATABASE_URL", db_url)
        .env_remove("ZENGINE_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run zengine")
}

#[tokio::test(flavor = "multi_thread")]
async fn workflows_dead_letters_and_redrive_send_each_dead_letter_once() {
    // Arrange: a database with three dead letters of a tenant of our own, two of them in one
    // conversation.
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}/zengine.db", dir.path().display());
    let db = zengine_storage::DatabaseSettings {
        url: db_url.clone().into(),
        migrate_on_start: true,
        ..Default::default()
    }
    .connect()
    .await
    .unwrap();
    let tenant = format!("clidl-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let id = TenantId::parse(tenant.as_str()).unwrap();
    let flow = zengine_domain::flow::demo_flow();
    db.tenants().upsert(&id, "CLI", &flow.id).await.unwrap();
    let conversation = format!("{tenant}/conversation/whatsapp/51955500001");
    let reply = serde_json::json!({"type": "text", "text": "hola"});
    let ids = [
        format!("{conversation}/out-1"),
        format!("{conversation}/out-2"),
        format!("{tenant}/conversation/whatsapp/51955500002/out-1"),
    ];
    for message in &ids {
        db.channels()
            .begin_send(&id, message, "whatsapp-360dialog", "51955500001", &reply)
            .await
            .unwrap();
        db.channels()
            .mark_dead(&id, message, "(#131026) Message undeliverable")
            .await
            .unwrap();
    }

    // dead-letters: JSON, the conversation filter, the table; another tenant sees none.
    let all = ok_json_with_db(
        &db_url,
        &["workflows", "dead-letters", "--tenant", &tenant, "--json"],
    );
    assert_eq!(all["dead_letters"].as_array().unwrap().len(), 3, "{all}");
    let of_conv = ok_json_with_db(
        &db_url,
        &[
            "workflows",
            "dead-letters",
            "--tenant",
            &tenant,
            "--conversation",
            &conversation,
            "--json",
        ],
    );
    assert_eq!(of_conv["dead_letters"].as_array().unwrap().len(), 2);
    let table = text(&zengine_with_db(
        &db_url,
        &["workflows", "dead-letters", "--tenant", &tenant],
    ));
    assert!(
        table.contains("131026") && table.contains(&ids[2]),
        "{table}"
    );
    let other = ok_json_with_db(
        &db_url,
        &[
            "workflows",
            "dead-letters",
            "--tenant",
            "someone-else",
            "--json",
        ],
    );
    assert_eq!(other["dead_letters"], serde_json::json!([]));

    // redrive one: once; again, or from another tenant: exit 3 (not found).
    let foreign = zengine_with_db(
        &db_url,
        &["workflows", "redrive", "--tenant", "someone-else", &ids[2]],
    );
    assert_eq!(foreign.status.code(), Some(3));
    let one = ok_json_with_db(
        &db_url,
        &[
            "workflows",
            "redrive",
            "--tenant",
            &tenant,
            &ids[2],
            "--json",
        ],
    );
    assert_eq!(one["client_message_id"], ids[2].as_str());
    let again = zengine_with_db(
        &db_url,
        &["workflows", "redrive", "--tenant", &tenant, &ids[2]],
    );
    assert_eq!(again.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&again.stderr).contains("re-driven already"));
    // Neither an id nor --conversation: a usage error.
    let usage = zengine_with_db(&db_url, &["workflows", "redrive", "--tenant", &tenant]);
    assert_eq!(usage.status.code(), Some(2));

    // redrive --conversation: both of its letters, even though Temporal no longer has (here:
    // never had) the conversation; then it has none, and is unknown: exit 3.
    let args = [
        "workflows",
        "redrive",
        "--tenant",
        &tenant,
        "--conversation",
        &conversation,
        "--json",
    ];
    let conv = ok_json_with_db(&db_url, &args);
    assert_eq!(conv["redriven"].as_array().unwrap().len(), 2, "{conv}");
    let again = zengine_with_db(&db_url, &args);
    assert_eq!(again.status.code(), Some(3));
    // Each is PENDING again, waiting for its RedriveOutbound workflow (started in Temporal).
    for message in &ids {
        let record = db.channels().outbound(&id, message).await.unwrap().unwrap();
        assert_eq!(record.state, "PENDING", "{message}");
    }
    let settings = TemporalSettings {
        address: shared_dev_server().to_owned(),
        ..TemporalSettings::default()
    };
    let client = connect(&settings, "cli-test").await.unwrap();
    use temporalio_client::grpc::WorkflowService;
    use temporalio_client::tonic::IntoRequest;
    use temporalio_common::protos::temporal::api::common::v1::WorkflowExecution;
    use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeWorkflowExecutionRequest;
    for message in &ids {
        let request = DescribeWorkflowExecutionRequest {
            namespace: settings.namespace.clone(),
            execution: Some(WorkflowExecution {
                workflow_id: zengine_domain::workflow_ids::redrive(&id, message),
                run_id: String::new(),
            }),
        };
        let described = WorkflowService::describe_workflow_execution(
            &mut client.clone(),
            request.into_request(),
        )
        .await
        .expect("the re-drive workflow was started")
        .into_inner();
        let info = described.workflow_execution_info.unwrap();
        assert_eq!(info.r#type.unwrap().name, "RedriveOutbound");
    }
}

fn ok_json_with_db(db_url: &str, args: &[&str]) -> Value {
    let out = zengine_with_db(db_url, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// nginx terminating TLS in front of the dev server: it requires a client certificate of its
/// CA (mTLS) and the API key `Bearer zengine-test-key`, as Temporal Cloud does either.
struct TlsFrontend {
    child: std::process::Child,
    port: u16,
}

impl Drop for TlsFrontend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsFrontend {
    fn start(
        dir: &std::path::Path,
        server: (&std::path::Path, &std::path::Path),
        ca: &std::path::Path,
    ) -> Self {
        let port = zengine_workers::devserver::free_port();
        let d = dir.display();
        let conf = format!(
            "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/nginx.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {}; ssl_certificate_key {};
    ssl_client_certificate {}; ssl_verify_client on;
    location / {{
      if ($http_authorization != \"Bearer zengine-test-key\") {{ return 401; }}
      grpc_pass grpc://{};
    }}
  }}
}}
",
            server.0.display(),
            server.1.display(),
            ca.display(),
            shared_dev_server(),
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        // Debian installs it outside a normal user's PATH.
        let nginx = Some("/usr/sbin/nginx")
            .filter(|n| std::path::Path::new(n).exists())
            .unwrap_or("nginx");
        let child = Command::new(nginx)
            .args(["-e", &format!("{d}/nginx.log"), "-p", &d.to_string(), "-c"])
            .arg(&path)
            .spawn()
            .expect("nginx (make test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                std::fs::read_to_string(dir.join("nginx.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

/// Temporal behind TLS with client certificates and an API key (self-hosted with mTLS, or
/// Temporal Cloud), configured the way Temporal's own SDKs and CLI are: `TEMPORAL_TLS_*` and
/// `TEMPORAL_API_KEY`. With the right CA, certificate and key, `zengine workflows list` answers;
/// a wrong CA, a missing client certificate, a wrong API key or plaintext each fail with an
/// error that says so.
#[test]
fn temporal_is_reached_over_mtls_with_an_api_key_from_temporals_own_variables() {
    use zengine_storage::testing::TestCa;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca").unwrap();
    let wrong_ca = TestCa::new(dir.path(), "wrong-ca").unwrap();
    let (server_crt, server_key) = ca
        .issue("server", "localhost", Some("DNS:localhost,IP:127.0.0.1"))
        .unwrap();
    let (client_crt, client_key) = ca.issue("client", "zengine-worker", None).unwrap();
    let (expired_crt, expired_key) = ca
        .issue_for_days("expired", "zengine-worker", None, -1)
        .unwrap();
    let frontend = TlsFrontend::start(dir.path(), (&server_crt, &server_key), &ca.pem());

    let run = |env: &[(&str, &std::path::Path)], api_key: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zengine"));
        cmd.current_dir(dir.path())
            .args(["workflows", "list", "--tenant", "tls-check", "--json"])
            .env_remove("ZENGINE_CONFIG")
            .env_remove("RUST_LOG")
            .env("TEMPORAL_ADDRESS", format!("localhost:{}", frontend.port))
            .env("ZENGINE_TEMPORAL__CONNECT_TIMEOUT_SECS", "1");
        if !api_key.is_empty() {
            cmd.env("TEMPORAL_API_KEY", api_key);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let ca_pem = ca.pem();
    let wrong_pem = wrong_ca.pem();
    let full: [(&str, &std::path::Path); 3] = [
        ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", &ca_pem),
        ("TEMPORAL_TLS_CLIENT_CERT_PATH", &client_crt),
        ("TEMPORAL_TLS_CLIENT_KEY_PATH", &client_key),
    ];
    let ok = run(&full, "zengine-test-key");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let listed: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(listed["workflows"], serde_json::json!([]));

    let wrong = [
        ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", wrong_pem.as_path()),
        full[1],
        full[2],
    ];
    let expired: [(&str, &std::path::Path); 3] = [
        full[0],
        ("TEMPORAL_TLS_CLIENT_CERT_PATH", &expired_crt),
        ("TEMPORAL_TLS_CLIENT_KEY_PATH", &expired_key),
    ];
    for (case, env, key, expected) in [
        ("wrong CA", &wrong[..], "zengine-test-key", "UnknownIssuer"),
        // One line naming the setting, not a handshake alert the server words as it likes.
        (
            "expired client certificate",
            &expired[..],
            "zengine-test-key",
            "TEMPORAL_TLS_CLIENT_CERT_PATH: the client certificate (CN=zengine-worker) expired on",
        ),
        (
            "no client certificate",
            &full[..1],
            "zengine-test-key",
            "Failed to connect to Temporal",
        ),
        (
            "wrong API key",
            &full[..],
            "stolen",
            "Failed to connect to Temporal",
        ),
    ] {
        let out = run(env, key);
        let error = String::from_utf8_lossy(&out.stderr);
        eprintln!("{case}: {error}");
        assert!(!out.status.success(), "{case}: it connected");
        assert!(error.contains(expected), "{case}: {error}");
    }
    // Plaintext to a TLS port: refused too.
    let out = run(&[], "");
    assert!(!out.status.success(), "plaintext connected");
}
