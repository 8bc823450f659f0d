//! `zengine workflows list|show|history|cancel|terminate|dead-letters|redrive`: the operator API
//! from a terminal, straight against Temporal (the configured address and namespace) and, for
//! dead letters, the configured database, confined to `--tenant` the same way the API is.
//!
//! Exit codes: 0 done; 1 failed (Temporal unavailable, internal); 2 bad input; 3 no such
//! workflow in the tenant; 4 the workflow cannot take the action (e.g. already closed).

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::Value;
use zengine_api::ops::dead_letters::DeadLetters;
use zengine_api::ops::{ListFilter, MAX_PAGE_SIZE, Operations, OpsError, TimelineEvent};
use zengine_domain::TenantId;

use crate::config::Settings;

/// `println!` that ends the process quietly when stdout is closed (`zengine … | head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

/// What every subcommand needs.
#[derive(Args)]
pub struct Common {
    /// The tenant whose workflows to work with (required: nothing crosses tenants).
    #[arg(long)]
    tenant: String,
    /// Print JSON (the REST API's documents) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum WorkflowsCommand {
    /// The tenant's workflows, newest first.
    List {
        #[command(flatten)]
        common: Common,
        /// Workflow type (Conversation, Order, Payment, RouteOptimisation).
        #[arg(long = "type")]
        workflow_type: Option<String>,
        /// Running, Completed, Failed, Canceled, Terminated, ContinuedAsNew, TimedOut.
        #[arg(long)]
        status: Option<String>,
        /// Started at or after (RFC 3339).
        #[arg(long)]
        started_after: Option<String>,
        /// Started at or before (RFC 3339).
        #[arg(long)]
        started_before: Option<String>,
        /// A filter in the subset of Temporal's visibility language of docs/operators.md (no
        /// comments, no `TenantId`), ANDed with the tenant restriction.
        #[arg(long)]
        query: Option<String>,
        /// At most this many workflows.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Status, pending activities and the workflow's own state.
    Show {
        #[command(flatten)]
        common: Common,
        workflow_id: String,
        #[arg(long)]
        run_id: Option<String>,
    },
    /// The history as a timeline, payloads decoded.
    History {
        #[command(flatten)]
        common: Common,
        workflow_id: String,
        #[arg(long)]
        run_id: Option<String>,
    },
    /// Request cancellation.
    Cancel {
        #[command(flatten)]
        common: Common,
        workflow_id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        run_id: Option<String>,
    },
    /// Terminate at once (no cleanup in the workflow).
    Terminate {
        #[command(flatten)]
        common: Common,
        workflow_id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        run_id: Option<String>,
    },
    /// Outbound messages the channels gave up on (newest first).
    DeadLetters {
        #[command(flatten)]
        common: Common,
        /// Only this conversation's (its workflow id).
        #[arg(long)]
        conversation: Option<String>,
    },
    /// Send dead letters again: one by its client message id, or all of `--conversation`.
    /// Each is sent once, however often asked (a second re-drive finds no dead letter).
    Redrive {
        #[command(flatten)]
        common: Common,
        /// The dead letter's `client_message_id`.
        #[arg(
            required_unless_present = "conversation",
            conflicts_with = "conversation"
        )]
        client_message_id: Option<String>,
        /// Every dead letter of this conversation (its workflow id).
        #[arg(long)]
        conversation: Option<String>,
    },
}

/// Runs the command; returns the exit code.
pub async fn run(settings: &Settings, command: WorkflowsCommand) -> u8 {
    match execute(settings, command).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("zengine: {e}");
            match e {
                OpsError::Invalid(_) => 2,
                OpsError::NotFound(_) => 3,
                OpsError::Conflict(_) => 4,
                OpsError::Unavailable(_) | OpsError::Internal(_) => 1,
            }
        }
    }
}

fn print_json<T: Serialize>(value: &T) {
    out!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

async fn execute(settings: &Settings, command: WorkflowsCommand) -> Result<(), OpsError> {
    let common = match &command {
        WorkflowsCommand::List { common, .. }
        | WorkflowsCommand::Show { common, .. }
        | WorkflowsCommand::History { common, .. }
        | WorkflowsCommand::Cancel { common, .. }
        | WorkflowsCommand::Terminate { common, .. }
        | WorkflowsCommand::DeadLetters { common, .. }
        | WorkflowsCommand::Redrive { common, .. } => common,
    };
    let tenant = TenantId::parse(common.tenant.as_str())
        .map_err(|e| OpsError::Invalid(format!("--tenant: {e}")))?;
    let json = common.json;
    if settings.temporal.address.is_empty() {
        return Err(OpsError::Invalid(
            "no Temporal address: set TEMPORAL_ADDRESS or temporal.address".into(),
        ));
    }
    let identity = format!("zengine-cli@{}", std::process::id());
    let client = zengine_workers::connect(&settings.temporal, &identity)
        .await
        .map_err(|e| OpsError::Unavailable(format!("{e:#}")))?;
    if matches!(
        command,
        WorkflowsCommand::DeadLetters { .. } | WorkflowsCommand::Redrive { .. }
    ) {
        return dead_letters(settings, client, &tenant, json, command).await;
    }
    let ops = Operations::new(client);
    match command {
        WorkflowsCommand::List {
            workflow_type,
            status,
            started_after,
            started_before,
            query,
            limit,
            ..
        } => {
            let filter = ListFilter {
                workflow_type,
                status,
                started_after,
                started_before,
                query,
            };
            let mut workflows = Vec::new();
            let mut token: Option<String> = None;
            while workflows.len() < limit {
                let size = (limit - workflows.len()).min(MAX_PAGE_SIZE as usize) as i32;
                let page = ops.list(&tenant, &filter, size, token.as_deref()).await?;
                workflows.extend(page.workflows);
                token = page.next_page_token;
                if token.is_none() {
                    break;
                }
            }
            if json {
                print_json(&serde_json::json!({ "workflows": workflows }));
            } else {
                let rows: Vec<Vec<String>> = workflows
                    .iter()
                    .map(|w| {
                        vec![
                            w.workflow_id.clone(),
                            w.workflow_type.clone(),
                            w.status.clone(),
                            w.start_time.clone().unwrap_or_default(),
                            // Visibility counts events only once a run has closed.
                            if w.history_length == 0 {
                                "-".to_owned()
                            } else {
                                w.history_length.to_string()
                            },
                        ]
                    })
                    .collect();
                print_table(
                    &["WORKFLOW ID", "TYPE", "STATUS", "STARTED", "EVENTS"],
                    &rows,
                );
            }
        }
        WorkflowsCommand::Show {
            workflow_id,
            run_id,
            ..
        } => {
            let d = ops
                .describe(&tenant, &workflow_id, run_id.as_deref())
                .await?;
            if json {
                print_json(&d);
            } else {
                let s = &d.summary;
                let line = |label: &str, value: &str| out!("{label:<16}{value}");
                line("Workflow", &s.workflow_id);
                line("Run", &s.run_id);
                line("Type", &s.workflow_type);
                line("Status", &s.status);
                line("Task queue", &s.task_queue);
                line("Started", s.start_time.as_deref().unwrap_or("-"));
                line("Closed", s.close_time.as_deref().unwrap_or("-"));
                line("History", &format!("{} events", s.history_length));
                if let Some(parent) = &d.parent_workflow_id {
                    line("Parent", parent);
                }
                line(
                    "Actions",
                    &if d.actions.is_empty() {
                        "-".to_owned()
                    } else {
                        d.actions.join(", ")
                    },
                );
                if d.pending_activities.is_empty() {
                    line("Pending", "no activities");
                }
                for a in &d.pending_activities {
                    line(
                        "Pending",
                        &format!(
                            "{} ({}) {} attempt {}/{}",
                            a.activity_type,
                            a.activity_id,
                            a.state,
                            a.attempt,
                            if a.maximum_attempts == 0 {
                                "∞".to_owned()
                            } else {
                                a.maximum_attempts.to_string()
                            }
                        ),
                    );
                    for cause in &a.last_failure {
                        line(
                            "  failure",
                            &format!("{} [{}]", cause.message, cause.failure_type),
                        );
                    }
                }
                match (&d.state, &d.state_error) {
                    (Some(state), _) => {
                        out!("State");
                        out!(
                            "{}",
                            serde_json::to_string_pretty(state).unwrap_or_default()
                        );
                    }
                    (None, Some(error)) => line("State", &format!("unavailable: {error}")),
                    (None, None) => {}
                }
            }
        }
        WorkflowsCommand::History {
            workflow_id,
            run_id,
            ..
        } => {
            let mut events: Vec<TimelineEvent> = Vec::new();
            let mut token: Option<String> = None;
            let mut run = run_id;
            loop {
                let page = ops
                    .history(&tenant, &workflow_id, run.as_deref(), 500, token.as_deref())
                    .await?;
                // Later pages must read the same run even if a reset starts another meanwhile.
                run = Some(page.run_id.clone());
                events.extend(page.events);
                token = page.next_page_token;
                if token.is_none() {
                    break;
                }
            }
            if json {
                print_json(&serde_json::json!({
                    "workflow_id": workflow_id, "run_id": run, "events": events
                }));
            } else {
                for e in &events {
                    let took = match (e.since_scheduled_ms, e.since_previous_ms) {
                        (Some(ms), _) => format!("({ms} ms since scheduled/started)"),
                        (None, Some(ms)) => format!("+{ms} ms"),
                        _ => String::new(),
                    };
                    out!(
                        "{:>5}  {}  {:<40} {}",
                        e.event_id,
                        e.time.as_deref().unwrap_or(""),
                        e.event_type,
                        took
                    );
                    if let Some(summary) = summarise(&e.details) {
                        out!("       {summary}");
                    }
                    for cause in &e.failure {
                        out!("       failure: {} [{}]", cause.message, cause.failure_type);
                    }
                }
            }
        }
        WorkflowsCommand::Cancel {
            workflow_id,
            reason,
            run_id,
            ..
        } => {
            let result = ops
                .cancel(&tenant, &workflow_id, run_id.as_deref(), &reason)
                .await?;
            report(json, &result, "cancellation requested");
        }
        WorkflowsCommand::Terminate {
            workflow_id,
            reason,
            run_id,
            ..
        } => {
            let result = ops
                .terminate(&tenant, &workflow_id, run_id.as_deref(), &reason)
                .await?;
            report(json, &result, "terminated");
        }
        WorkflowsCommand::DeadLetters { .. } | WorkflowsCommand::Redrive { .. } => {
            unreachable!("handled by dead_letters()")
        }
    }
    Ok(())
}

/// `dead-letters` and `redrive`: they need the database as well as Temporal.
async fn dead_letters(
    settings: &Settings,
    client: temporalio_client::Client,
    tenant: &TenantId,
    json: bool,
    command: WorkflowsCommand,
) -> Result<(), OpsError> {
    let db = settings
        .database
        .connect()
        .await
        .map_err(|e| OpsError::Unavailable(format!("the database: {e:#}")))?;
    let registry =
        zengine_channels::Registry::standard(zengine_channels::InboundOptions::default());
    let letters = DeadLetters::new(
        db,
        client,
        std::sync::Arc::new(registry),
        settings.temporal.task_queue_prefix.clone(),
    );
    match command {
        WorkflowsCommand::DeadLetters { conversation, .. } => {
            let list = letters.list(tenant, conversation.as_deref()).await?;
            if json {
                print_json(&serde_json::json!({ "dead_letters": list }));
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|d| {
                        vec![
                            d.client_message_id.clone(),
                            d.strategy.clone(),
                            d.recipient.clone(),
                            d.attempts.to_string(),
                            d.last_error.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "CLIENT MESSAGE ID",
                        "STRATEGY",
                        "RECIPIENT",
                        "ATTEMPTS",
                        "LAST ERROR",
                    ],
                    &rows,
                );
            }
        }
        WorkflowsCommand::Redrive {
            client_message_id: Some(id),
            ..
        } => {
            let redriven = letters.redrive(tenant, &id).await?;
            if json {
                print_json(&redriven);
            } else {
                out!(
                    "{}: re-driven by {}",
                    redriven.client_message_id,
                    redriven.workflow_id
                );
            }
        }
        WorkflowsCommand::Redrive {
            conversation: Some(conversation),
            ..
        } => {
            let result = letters.redrive_conversation(tenant, &conversation).await?;
            if json {
                print_json(&result);
            } else {
                for r in &result.redriven {
                    out!("{}: re-driven by {}", r.client_message_id, r.workflow_id);
                }
                for id in &result.already_redriven {
                    out!("{id}: already re-driven by someone else");
                }
                if result.redriven.is_empty() && result.already_redriven.is_empty() {
                    out!("{conversation}: no dead letters");
                }
            }
        }
        _ => {
            return Err(OpsError::Invalid(
                "give a client message id or --conversation".into(),
            ));
        }
    }
    Ok(())
}

fn report(json: bool, result: &Value, what: &str) {
    if json {
        print_json(result);
    } else {
        out!(
            "{} (run {}): {what}",
            result["workflow_id"].as_str().unwrap_or(""),
            result["run_id"].as_str().unwrap_or("")
        );
    }
}

/// The interesting part of an event's details on one line: its inputs or results, shortened.
fn summarise(details: &Value) -> Option<String> {
    let key = ["input", "result", "activity_type", "reason"]
        .into_iter()
        .find(|k| details.get(*k).is_some_and(|v| !v.is_null()))?;
    let mut text = format!("{key}: {}", details[key]);
    if text.len() > 160 {
        let cut = (0..=157)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    Some(text)
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    if rows.is_empty() {
        out!("(no workflows)");
    }
}
