//! Replays every committed history in `tests/histories/` against the current workflow code.
//!
//! A failure here means a code change would break running workflows: guard the change with
//! `ctx.patched(..)` (see the crate docs). To (re)generate the histories, run
//! `make histories` (the API suite with `ZENGINE_RECORD_HISTORIES=1`), which drives the real
//! API, worker and Temporal dev server; `workflows/README.md` lists which test records which.

// A test, not workflow code: it reads fixtures and the environment.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::PathBuf;

use temporalio_client::WorkflowHistory;
use temporalio_common::protos::temporal::api::common::v1::ActivityType;
use temporalio_common::protos::temporal::api::enums::v1::EventType;
use temporalio_common::protos::temporal::api::history::v1::ActivityTaskScheduledEventAttributes;
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
use zengine_workflows::replay::{decode_history, replay_file, replayer};

fn histories() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/histories");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/histories exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "binpb"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn every_committed_history_replays_against_the_current_code() {
    let files = histories();
    for workflow in [
        "conversation__",
        "payment__",
        "order__",
        "channel_health__",
        "redrive__",
        "assistance__",
        "mok__",
        "route__",
    ] {
        assert!(
            files.iter().any(|f| f
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(workflow)),
            "no committed history for {workflow}"
        );
    }
    let replayer = replayer().unwrap();
    for file in files {
        replay_file(&replayer, &file).await.unwrap();
    }
}

#[tokio::test]
async fn a_history_that_diverges_from_the_code_is_reported_as_nondeterministic() {
    let file = histories()
        .into_iter()
        .find(|f| f.to_string_lossy().contains("conversation__"))
        .expect("a conversation history");
    let mut history = decode_history(&std::fs::read(file).unwrap()).unwrap();
    // Pretend an older version of the code scheduled an activity where the code starts a timer.
    let event = history
        .events
        .iter_mut()
        .find(|e| e.event_type == EventType::TimerStarted as i32)
        .expect("a timer in the conversation history");
    let completed_id = event.event_id - 1;
    event.event_type = EventType::ActivityTaskScheduled as i32;
    event.attributes = Some(Attributes::ActivityTaskScheduledEventAttributes(
        ActivityTaskScheduledEventAttributes {
            activity_id: "1".into(),
            activity_type: Some(ActivityType {
                name: "SomethingElse".into(),
            }),
            workflow_task_completed_event_id: completed_id,
            ..Default::default()
        },
    ));

    let result = replayer()
        .unwrap()
        .replay_workflow(WorkflowHistory::from(history))
        .await;

    let error = format!("{:?}", result.expect_err("divergence must be detected"));
    assert!(error.to_lowercase().contains("nondetermin"), "{error}");
}
