//! `zengine replay` run as a process: committed binary histories, proto3 JSON exported by the
//! real `temporal` CLI (and its Web UI PascalCase variant), and a deliberately incompatible
//! history reported with its event id.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use prost::Message;
use temporalio_client::WorkflowStartOptions;
use temporalio_common::protos::temporal::api::common::v1::ActivityType;
use temporalio_common::protos::temporal::api::enums::v1::EventType;
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_common::protos::temporal::api::history::v1::{
    ActivityTaskScheduledEventAttributes, History,
};
use temporalio_common::search_attributes::SearchAttributes;
use zengine_domain::TenantId;
use zengine_domain::order::OrderType;
use zengine_workers::testing::shared_dev_server;
use zengine_workers::{TemporalSettings, connect, ensure_search_attributes};
use zengine_workflows::OrderWorkflow;
use zengine_workflows::names::TENANT_ID;
use zengine_workflows::order::OrderInput;

fn histories() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workflows/tests/histories")
}

fn replay(paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zengine"))
        .current_dir(std::env::temp_dir())
        .arg("replay")
        .args(paths)
        .env_remove("ZENGINE_CONFIG")
        .output()
        .expect("run zengine replay")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_and_cli_exported_json_histories_replay_ok() {
    // A history exported by the real CLI: an order workflow started with no worker.
    let settings = TemporalSettings {
        address: shared_dev_server().to_owned(),
        ..TemporalSettings::default()
    };
    let client = connect(&settings, "replay-test").await.unwrap();
    ensure_search_attributes(&client, &settings.namespace)
        .await
        .unwrap();
    let tenant = format!("rp-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let workflow_id = format!("{tenant}/order/o-1");
    let input = OrderInput {
        tenant_id: TenantId::parse(tenant.as_str()).unwrap(),
        order_id: "o-1".into(),
        order_type: OrderType::Pickup,
    };
    let options = WorkflowStartOptions::new("replay-test-no-worker", workflow_id.clone())
        .search_attributes(SearchAttributes::new([TENANT_ID.value_set(tenant.clone())]))
        .build();
    client
        .start_workflow(OrderWorkflow::run, input, options)
        .await
        .unwrap();
    let temporal = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/temporal");
    let exported = Command::new(temporal)
        .args([
            "workflow",
            "show",
            "--workflow-id",
            &workflow_id,
            "--output",
            "json",
        ])
        .args(["--address", shared_dev_server()])
        .output()
        .unwrap();
    assert!(exported.status.success(), "{exported:?}");
    let dir = tempfile::tempdir().unwrap();
    let cli_json = dir.path().join("cli.json");
    std::fs::write(&cli_json, &exported.stdout).unwrap();
    let text = String::from_utf8(exported.stdout).unwrap();
    assert!(
        text.contains("EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"),
        "{text}"
    );
    // The Web UI's download names event types in PascalCase.
    let ui_json = dir.path().join("ui.json");
    std::fs::write(
        &ui_json,
        text.replace(
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
            "WorkflowExecutionStarted",
        )
        .replace(
            "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
            "WorkflowTaskScheduled",
        ),
    )
    .unwrap();
    let binary = histories().join("conversation__demo_full_flow.binpb");

    let out = replay(&[&binary, &cli_json, &ui_json]);

    assert!(
        out.status.success(),
        "{}\n{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = stdout(&out);
    assert_eq!(report.matches("OK   ").count(), 3, "{report}");
    assert!(report.contains("3 of 3 histories replayed OK"), "{report}");
}

#[test]
fn an_incompatible_history_is_reported_with_its_event_id_and_fails_the_exit_code() {
    let file = histories().join("conversation__demo_full_flow.binpb");
    let mut history = History::decode(std::fs::read(&file).unwrap().as_slice()).unwrap();
    // What an incompatible change looks like: the recorded run scheduled an activity where the
    // current code starts a timer.
    let event = history
        .events
        .iter_mut()
        .find(|e| e.event_type == EventType::TimerStarted as i32)
        .expect("a timer in the conversation history");
    let diverging_id = event.event_id;
    event.event_type = EventType::ActivityTaskScheduled as i32;
    event.attributes = Some(Attributes::ActivityTaskScheduledEventAttributes(
        ActivityTaskScheduledEventAttributes {
            activity_id: "1".into(),
            activity_type: Some(ActivityType {
                name: "SomethingElse".into(),
            }),
            workflow_task_completed_event_id: diverging_id - 1,
            ..Default::default()
        },
    ));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.binpb");
    std::fs::write(&bad, history.encode_to_vec()).unwrap();
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"events\": 7}").unwrap();

    let out = replay(&[&file, &bad, &garbage]);

    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = stdout(&out);
    let line = report
        .lines()
        .find(|l| l.contains("bad.binpb"))
        .expect("a line for the bad history");
    assert!(
        line.starts_with("FAIL") && line.contains("nondeterminism"),
        "{report}"
    );
    assert!(
        line.contains(&format!("at event {diverging_id}")),
        "{report}"
    );
    assert!(
        report.contains("FAIL") && report.contains("garbage.json"),
        "{report}"
    );
    assert!(report.contains("1 of 3 histories replayed OK"), "{report}");
}
