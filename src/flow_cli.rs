//! `zengine flow validate|simulate`: check a flow file, or run it locally without Temporal using
//! the very interpreter the conversation workflow runs (`zengine_domain::flow`).

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use zengine_domain::flow::simulate::{self as simulation, Event, Stubs};
use zengine_domain::flow::{FlowGraph, State};

#[derive(Subcommand)]
pub enum FlowCommand {
    /// Validate a flow file; exit code 1 with one located error per line when it is invalid.
    Validate {
        /// Flow JSON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a flow locally and print the transcript.
    Simulate {
        file: PathBuf,
        /// A customer message (repeat for several).
        #[arg(long = "input")]
        inputs: Vec<String>,
        /// A file with one customer message per line (`#` starts a comment line).
        #[arg(long)]
        script: Option<PathBuf>,
        /// How simulated commands end: `fail` (default) takes the failure edges, `ok` the success
        /// edges with an empty result.
        #[arg(long, value_enum, default_value_t = Commands::Fail)]
        commands: Commands,
        /// Return handed-off conversations to the bot at the next input.
        #[arg(long)]
        auto_return: bool,
    },
    /// Print the JSON graph reference (Markdown) generated from `docs/flow.schema.json`
    /// (`zengine flow docs > docs/authoring-flows.md`).
    Docs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Commands {
    Ok,
    Fail,
}

/// Runs the subcommand; returns the process exit code.
pub fn run(command: FlowCommand) -> u8 {
    match command {
        FlowCommand::Docs => {
            print!("{}", crate::flow_docs::render());
            0
        }
        FlowCommand::Validate { files } => {
            let mut code = 0;
            for file in files {
                match load(&file) {
                    Ok(graph) => println!("{}: ok ({} nodes)", file.display(), graph.nodes.len()),
                    Err(Failure::Io(e)) => {
                        eprintln!("{}: {e}", file.display());
                        code = code.max(2);
                    }
                    Err(Failure::Invalid(errors)) => {
                        for e in errors {
                            println!("{}: {e}", file.display());
                        }
                        code = code.max(1);
                    }
                }
            }
            code
        }
        FlowCommand::Simulate {
            file,
            mut inputs,
            script,
            commands,
            auto_return,
        } => {
            if let Some(script) = script {
                match std::fs::read_to_string(&script) {
                    Ok(text) => inputs.extend(
                        text.lines()
                            .filter(|l| !l.trim_start().starts_with('#'))
                            .map(str::to_owned),
                    ),
                    Err(e) => {
                        eprintln!("{}: {e}", script.display());
                        return 2;
                    }
                }
            }
            let graph = match load(&file) {
                Ok(g) => g,
                Err(Failure::Io(e)) => {
                    eprintln!("{}: {e}", file.display());
                    return 2;
                }
                Err(Failure::Invalid(errors)) => {
                    for e in errors {
                        eprintln!("{}: {e}", file.display());
                    }
                    return 1;
                }
            };
            print!("{}", simulate(&graph, &inputs, commands, auto_return));
            0
        }
    }
}

enum Failure {
    Io(std::io::Error),
    Invalid(Vec<zengine_domain::flow::FlowError>),
}

fn load(path: &Path) -> Result<FlowGraph, Failure> {
    let text = std::fs::read_to_string(path).map_err(Failure::Io)?;
    FlowGraph::from_json(&text).map_err(Failure::Invalid)
}

/// The transcript of `inputs` fed to `graph`, as text (the engine is
/// `zengine_domain::flow::simulate`, which the flow studio's preview runs too).
pub fn simulate(
    graph: &FlowGraph,
    inputs: &[String],
    commands: Commands,
    auto_return: bool,
) -> String {
    let stubs = Stubs {
        ok_by_default: matches!(commands, Commands::Ok),
        ..Stubs::default()
    };
    let transcript = simulation::simulate(graph, inputs, &stubs, auto_return);
    let mut out = String::new();
    for turn in &transcript.turns {
        out.push_str(&format!("> {}\n", turn.input));
        for event in &turn.events {
            match event {
                Event::Reply { text } => {
                    for (n, line) in text.lines().enumerate() {
                        out.push_str(if n == 0 { "< " } else { "  " });
                        out.push_str(line);
                        out.push('\n');
                    }
                }
                Event::Command {
                    command,
                    params,
                    ok,
                    ..
                } => out.push_str(&format!(
                    "  [command {command} {params} -> {}]\n",
                    if *ok { "ok" } else { "failed" }
                )),
                Event::Wait { seconds, .. } => out.push_str(&format!("  [wait {seconds} s]\n")),
                Event::Handoff { queue, .. } => out.push_str(&format!(
                    "  [handoff to {}; the bot is silent until an operator returns the conversation]\n",
                    queue.as_deref().unwrap_or("the agent queue")
                )),
                Event::Survey { rating, comment } => out.push_str(&format!(
                    "  [survey recorded: rating {rating}, comment {comment:?}]\n"
                )),
                Event::ReturnedToBot => {
                    out.push_str("  [operator returns the conversation to the bot]\n");
                }
                Event::WithAgent => out.push_str("  [to the agent queue; the bot is silent]\n"),
                Event::Stopped { reason } => out.push_str(&format!("  [stopped: {reason}]\n")),
            }
        }
    }
    let state = match &transcript.state {
        State::Idle => "idle".to_owned(),
        other => format!("{other:?}"),
    };
    out.push_str(&format!(
        "-- {} turn(s); state: {state}; mode: {:?}\n",
        transcript.handled, transcript.mode
    ));
    out
}
