//! `zengine new workflow NAME`: scaffolds a Rust workflow in a ZEngine checkout — the workflow
//! module (determinism rules header, input/output types, a signal, a query, an activity call on
//! a named queue), its activities with a tested body, the worker and replayer registration, an
//! integration test that records its replay history — and prints the next steps.
//!
//! Everything is checked before anything is written: a bad name, a file that already exists or
//! a registration point that cannot be found is an error and leaves the tree untouched, so a
//! second run refuses instead of registering twice.

use std::path::{Path, PathBuf};

const WORKFLOW_TEMPLATE: &str = include_str!("scaffold/workflow.rs.tmpl");
const ACTIVITIES_TEMPLATE: &str = include_str!("scaffold/activities.rs.tmpl");
const TEST_TEMPLATE: &str = include_str!("scaffold/test.rs.tmpl");

/// Queues whose worker arm can take more registrations (`queues::X => builder`).
pub const QUEUES: &[&str] = &[
    "conversations",
    "channels",
    "payments",
    "routing",
    "assistance",
];

/// Names that would clash with Rust or with existing modules of the crates involved.
const RESERVED: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
    "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro", "override",
    "priv", "try", "typeof", "unsized", "virtual", "yield", "lib", "main", "mod", "tests",
    "helpers", "fakes", "names", "replay", "codec", "db", "testing", "std", "core",
];

/// Why scaffolding refused.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("invalid workflow name `{0}`: {1}")]
    BadName(String, String),
    #[error("unknown queue `{0}` (one of: {list})", list = QUEUES.join(", "))]
    BadQueue(String),
    #[error("{0} already exists: workflow `{1}` is scaffolded already (nothing was changed)")]
    Exists(PathBuf, String),
    #[error("{0}: {1} (nothing was changed; is --dir a ZEngine checkout?)")]
    Anchor(PathBuf, String),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// What a run wrote.
#[derive(Debug)]
pub struct Scaffolded {
    pub created: Vec<PathBuf>,
    pub edited: Vec<PathBuf>,
    pub next_steps: String,
}

/// `snake_case` → `PascalCase`.
fn pascal(name: &str) -> String {
    name.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A module name: lowercase snake case, starting with a letter, at most 40 characters, not a
/// keyword or a reserved module name.
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let bad = |why: &str| Err(ScaffoldError::BadName(name.to_owned(), why.to_owned()));
    if name.is_empty() || name.len() > 40 {
        return bad("it must be 1 to 40 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("it must start with a lowercase letter");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return bad("use lowercase snake_case: letters a-z, digits and '_'");
    }
    if name.ends_with('_') || name.contains("__") {
        return bad("no leading, trailing or doubled '_'");
    }
    if RESERVED.contains(&name) {
        return bad("it is a Rust keyword or a reserved module name");
    }
    Ok(())
}

fn render(template: &str, name: &str, queue: &str) -> String {
    let short: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    template
        .replace("__Pascal__", &pascal(name))
        .replace("__QUEUE__", &queue.to_ascii_uppercase())
        .replace("__queue__", queue)
        .replace("__short__", &short)
        .replace("__name__", name)
}

fn read(path: &Path) -> Result<String, ScaffoldError> {
    std::fs::read_to_string(path).map_err(|e| ScaffoldError::Io(path.to_owned(), e))
}

/// Inserts `line` after the last line starting with `after_prefix`.
fn insert_after_last(
    path: &Path,
    text: &str,
    after_prefix: &str,
    line: &str,
) -> Result<String, ScaffoldError> {
    let mut lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .rposition(|l| l.starts_with(after_prefix))
        .ok_or_else(|| {
            ScaffoldError::Anchor(
                path.to_owned(),
                format!("no line starting with `{after_prefix}`"),
            )
        })?;
    lines.insert(at + 1, line);
    Ok(lines.join("\n") + "\n")
}

/// Inserts `insert` right after (or before) the one occurrence of `anchor`.
fn insert_at_anchor(
    path: &Path,
    text: &str,
    anchor: &str,
    insert: &str,
    before: bool,
) -> Result<String, ScaffoldError> {
    let mut found = text.match_indices(anchor);
    let (at, _) = found.next().ok_or_else(|| {
        ScaffoldError::Anchor(path.to_owned(), format!("cannot find `{}`", anchor.trim()))
    })?;
    if found.next().is_some() {
        return Err(ScaffoldError::Anchor(
            path.to_owned(),
            format!("`{}` appears more than once", anchor.trim()),
        ));
    }
    let at = if before { at } else { at + anchor.len() };
    Ok(format!("{}{insert}{}", &text[..at], &text[at..]))
}

/// Scaffolds workflow `name` on `queue` in the checkout at `root`.
pub fn scaffold(root: &Path, name: &str, queue: &str) -> Result<Scaffolded, ScaffoldError> {
    check_name(name)?;
    if !QUEUES.contains(&queue) {
        return Err(ScaffoldError::BadQueue(queue.to_owned()));
    }
    let pascal = pascal(name);
    let workflow_file = root.join(format!("workflows/src/{name}.rs"));
    let activities_file = root.join(format!("activities/src/{name}.rs"));
    let test_file = root.join(format!("api/tests/api/{name}.rs"));
    for file in [&workflow_file, &activities_file, &test_file] {
        if file.exists() {
            return Err(ScaffoldError::Exists(file.clone(), name.to_owned()));
        }
    }
    let workflows_lib = root.join("workflows/src/lib.rs");
    let activities_lib = root.join("activities/src/lib.rs");
    let worker = root.join("workers/src/worker.rs");
    let replay = root.join("workflows/src/replay.rs");
    let tests_main = root.join("api/tests/api/main.rs");

    // Every edit is computed first; nothing is written until all of them succeed.
    let mut edits = Vec::new();
    let text = read(&workflows_lib)?;
    let module_line = format!("pub mod {name};");
    if text.lines().any(|l| l.trim() == module_line) {
        return Err(ScaffoldError::Exists(workflows_lib, name.to_owned()));
    }
    let text = insert_after_last(&workflows_lib, &text, "pub mod ", &module_line)?;
    let text = insert_after_last(
        &workflows_lib,
        &text,
        "pub use ",
        &format!("pub use {name}::{pascal}Workflow;"),
    )?;
    edits.push((workflows_lib, text));

    let text = read(&activities_lib)?;
    if text.lines().any(|l| l.trim() == module_line) {
        return Err(ScaffoldError::Exists(activities_lib, name.to_owned()));
    }
    let text = insert_after_last(&activities_lib, &text, "pub mod ", &module_line)?;
    edits.push((activities_lib, text));

    let text = read(&worker)?;
    let anchor = format!(
        "        queues::{} => builder\n",
        queue.to_ascii_uppercase()
    );
    let registration = format!(
        "            .register_workflow::<zengine_workflows::{pascal}Workflow>()?\n            \
         .register_activities(zengine_activities::{name}::{pascal}Activities::new())\n"
    );
    let text = insert_at_anchor(&worker, &text, &anchor, &registration, false)?;
    edits.push((worker, text));

    let text = read(&replay)?;
    let text = insert_at_anchor(
        &replay,
        &text,
        "        .build();\n    Ok(WorkflowReplayer::new",
        &format!("        .register_workflow::<crate::{pascal}Workflow>()?\n"),
        true,
    )?;
    edits.push((replay, text));

    let text = read(&tests_main)?;
    let text = insert_after_last(&tests_main, &text, "mod ", &format!("mod {name};"))?;
    edits.push((tests_main, text));

    let created = vec![
        (workflow_file, render(WORKFLOW_TEMPLATE, name, queue)),
        (activities_file, render(ACTIVITIES_TEMPLATE, name, queue)),
        (test_file, render(TEST_TEMPLATE, name, queue)),
    ];
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|e| ScaffoldError::Io(path.to_owned(), e))
    };
    for (path, text) in created.iter().chain(&edits) {
        write(path, text)?;
    }
    let next_steps = format!(
        "Next steps:
  1. Replace the example logic in workflows/src/{name}.rs and activities/src/{name}.rs
     (keep the determinism rules at the top of the workflow module).
  2. cargo fmt --all && cargo check -p zengine-workers
  3. cargo test -p zengine-activities --lib {name}
  4. Record the replay history of the test once, then commit it:
     ZENGINE_RECORD_HISTORIES=1 cargo test -p zengine-api --test api {name}::
     (add `crate::histories::record(..)` for {pascal}Workflow to the test; see
     api/tests/api/histories.rs), then cargo test -p zengine-workflows --test replay
  5. Document the stable names ({pascal}, signal Add, update Close, query Status) in docs/api.md and
     docs/operators.md; see docs/authoring-workflows.md."
    );
    Ok(Scaffolded {
        created: created.into_iter().map(|(p, _)| p).collect(),
        edited: edits.into_iter().map(|(p, _)| p).collect(),
        next_steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["invoice", "refund_flow", "step2"] {
            check_name(good).unwrap();
        }
        for bad in [
            "",
            "Invoice",
            "2fa",
            "a-b",
            "with space",
            "match",
            "tests",
            "a__b",
            "x_",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"a".repeat(41)).is_err());
        assert_eq!(pascal("refund_flow2"), "RefundFlow2");
    }
}
