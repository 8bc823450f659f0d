//! `zengine new workflow NAME` run as a process into a temporary copy of the files it edits.

use std::path::Path;
use std::process::{Command, Output};

/// The files the scaffolder edits, copied from this checkout.
const EDITED: &[&str] = &[
    "workflows/src/lib.rs",
    "activities/src/lib.rs",
    "workers/src/worker.rs",
    "workflows/src/replay.rs",
    "api/tests/api/main.rs",
];

fn checkout_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in EDITED {
        let to = dir.path().join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root.join(file), &to).unwrap();
    }
    dir
}

fn new_workflow(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zengine"))
        .args(["new", "workflow"])
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env_remove("ZENGINE_CONFIG")
        .output()
        .expect("run zengine")
}

fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for entry in walk(dir) {
        let text = std::fs::read_to_string(&entry).unwrap();
        files.push((entry.display().to_string(), text));
    }
    files.sort();
    files
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn new_workflow_generates_parsable_modules_registered_once_and_refuses_a_second_run() {
    let dir = checkout_copy();
    let root = dir.path();
    let out = new_workflow(root, &["refund_flow", "--queue", "payments"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Next steps"), "{stdout}");
    assert!(stdout.contains("ZENGINE_RECORD_HISTORIES=1"), "{stdout}");

    // Every generated and edited file is valid Rust.
    let generated = [
        "workflows/src/refund_flow.rs",
        "activities/src/refund_flow.rs",
        "api/tests/api/refund_flow.rs",
    ];
    for file in generated.iter().chain(EDITED) {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        syn::parse_file(&text).unwrap_or_else(|e| panic!("{file} does not parse: {e}"));
    }
    let workflow = std::fs::read_to_string(root.join(generated[0])).unwrap();
    for part in [
        "Determinism rules",
        "pub struct RefundFlowInput",
        "pub struct RefundFlowView",
        "#[signal(name = SIGNAL_ADD)]",
        "#[query(name = QUERY_STATUS)]",
        "execute_activity",
        "queues::PAYMENTS",
        "pub const WORKFLOW_TYPE: &str = \"RefundFlow\";",
    ] {
        assert!(workflow.contains(part), "workflow lacks `{part}`");
    }
    let activities = std::fs::read_to_string(root.join(generated[1])).unwrap();
    assert!(activities.contains("#[activity(name = \"RefundFlowProcess\")]"));
    assert!(activities.contains("#[test]"));
    assert!(!workflow.contains("__") && !activities.contains("__Pascal"));

    // Registered exactly once, in the right places.
    let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap();
    assert_eq!(
        count(&read("workflows/src/lib.rs"), "pub mod refund_flow;"),
        1
    );
    assert_eq!(
        count(
            &read("workflows/src/lib.rs"),
            "pub use refund_flow::RefundFlowWorkflow;"
        ),
        1
    );
    assert_eq!(
        count(&read("activities/src/lib.rs"), "pub mod refund_flow;"),
        1
    );
    assert_eq!(count(&read("api/tests/api/main.rs"), "mod refund_flow;"), 1);
    let worker = read("workers/src/worker.rs");
    assert_eq!(count(&worker, "RefundFlowWorkflow"), 1);
    let arm = &worker[worker.find("queues::PAYMENTS => builder").unwrap()..];
    let arm = &arm[..arm.find("queues::OCR").unwrap()];
    assert!(arm.contains("register_workflow::<zengine_workflows::RefundFlowWorkflow>()?"));
    assert!(arm.contains(
        "register_activities(zengine_activities::refund_flow::RefundFlowActivities::new())"
    ));
    assert_eq!(
        count(&read("workflows/src/replay.rs"), "RefundFlowWorkflow"),
        1
    );

    // A second run refuses and changes nothing.
    let before = snapshot(root);
    let again = new_workflow(root, &["refund_flow", "--queue", "payments"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(snapshot(root), before);
}

#[test]
fn new_workflow_refuses_bad_names_queues_and_checkouts_without_touching_anything() {
    let dir = checkout_copy();
    let root = dir.path();
    let before = snapshot(root);
    for (args, message) in [
        (vec!["Refund"], "lowercase"),
        (vec!["2fa"], "start with a lowercase letter"),
        (vec!["a-b"], "snake_case"),
        (vec!["match"], "keyword"),
        (vec!["refund", "--queue", "ocr"], "unknown queue"),
    ] {
        let out = new_workflow(root, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert_eq!(snapshot(root), before);

    // A checkout whose worker has no such registration point: nothing is written.
    let worker = root.join("workers/src/worker.rs");
    std::fs::write(&worker, "// not the worker\n").unwrap();
    let before = snapshot(root);
    let out = new_workflow(root, &["refund"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was changed"));
    assert_eq!(snapshot(root), before);
}

/// The scaffold compiles as generated: the whole checkout is copied, the scaffolder runs in the
/// copy, and `cargo check` builds the workflow, its activities, the worker that registers them
/// and the API test binary holding the generated tests (reusing this build's target directory,
/// so only the workspace's own crates are checked again: ~20 s).
#[test]
fn a_scaffolded_workflow_compiles_with_its_update_timer_activity_and_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .expect("git ls-files");
    assert!(files.status.success());
    let dir = tempfile::tempdir().unwrap();
    for file in files.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let file = std::str::from_utf8(file).unwrap();
        let to = dir.path().join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        // (A file deleted in the working tree but not yet from the index is skipped.)
        let _ = std::fs::copy(root.join(file), &to);
    }
    let out = new_workflow(dir.path(), &["return_request", "--queue", "payments"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let workflow =
        std::fs::read_to_string(dir.path().join("workflows/src/return_request.rs")).unwrap();
    for part in [
        "#[update(name = UPDATE_CLOSE)]",
        "#[update_validator(close)]",
        "ctx.timer(idle)",
        "execute_activity",
    ] {
        assert!(workflow.contains(part), "workflow lacks `{part}`");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let check = Command::new(cargo)
        .args([
            "check",
            "--quiet",
            "-p",
            "zengine-workflows",
            "-p",
            "zengine-activities",
            "-p",
            "zengine-workers",
            "-p",
            "zengine-api",
            "--tests",
        ])
        .current_dir(dir.path())
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("run cargo check");
    assert!(
        check.status.success(),
        "the scaffold does not compile:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
