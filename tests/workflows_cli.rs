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
