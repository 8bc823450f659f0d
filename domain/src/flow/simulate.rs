//! Runs a flow without Temporal, with the interpreter the conversation workflow runs: the engine
//! of `zengine flow simulate` (which prints it as text) and of the flow studio's preview
//! (`POST /v1/tenants/{tenant}/flows/{name}/simulate`, which answers it as JSON).
//!
//! Commands do not run: each gets the outcome stubbed for its command name, or the default
//! (every command succeeds with an empty result, or every command fails). Durable waits end at
//! once. A handed-off conversation stays with the agent unless `auto_return` gives it back to
//! the bot at the next input. A graph whose commands lead to commands forever stops after
//! [`MAX_STEPS_PER_TURN`] of them in one turn, with a [`Event::Stopped`] saying so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CommandOutcome, Effect, FlowGraph, MAX_STEPS_PER_TURN, Mode, Session, State, Turn};
use crate::InboundMessage;

/// How the simulation answers the flow's commands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Stubs {
    /// Commands without a stub of their own succeed with an empty result (`true`) or fail
    /// (`false`, the default: the flow's failure edges).
    #[serde(default)]
    pub ok_by_default: bool,
    /// Outcomes by command name (`order.create`, `http_request`, …).
    #[serde(default)]
    pub outcomes: BTreeMap<String, CommandOutcome>,
}

impl Stubs {
    fn outcome(&self, command: &str) -> CommandOutcome {
        self.outcomes
            .get(command)
            .cloned()
            .unwrap_or_else(|| CommandOutcome {
                ok: self.ok_by_default,
                value: Value::Null,
                error: (!self.ok_by_default).then(|| "simulated failure".to_owned()),
            })
    }
}

/// What happened while the flow handled one input, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The bot's reply, as plain text.
    Reply { text: String },
    /// A command node ran (stubbed).
    Command {
        node: String,
        command: String,
        params: Value,
        ok: bool,
    },
    /// A durable wait (skipped).
    Wait { node: String, seconds: u64 },
    /// The conversation went to a human agent.
    Handoff { node: String, queue: Option<String> },
    /// The satisfaction survey was completed.
    Survey { rating: u8, comment: Option<String> },
    /// An operator gave the conversation back to the bot (`auto_return`).
    ReturnedToBot,
    /// The conversation is with an agent: the bot did not answer.
    WithAgent,
    /// The turn ran [`MAX_STEPS_PER_TURN`] commands and waits without waiting for the customer.
    Stopped { reason: String },
}

/// One customer input and what followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TurnRecord {
    pub input: String,
    pub events: Vec<Event>,
    /// Where the conversation stands after the turn: `idle`, or the node it waits at.
    #[cfg_attr(feature = "schema", schemars(with = "Value"))]
    pub state: State,
    /// The variables after the turn.
    pub vars: BTreeMap<String, Value>,
}

/// A whole simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Transcript {
    pub turns: Vec<TurnRecord>,
    /// Customer messages the flow handled (inputs while with an agent do not count).
    pub handled: u64,
    #[cfg_attr(feature = "schema", schemars(with = "Value"))]
    pub state: State,
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub mode: Mode,
}

/// Feeds `inputs` to `graph`, one by one, as a webchat customer.
pub fn simulate(
    graph: &FlowGraph,
    inputs: &[String],
    stubs: &Stubs,
    auto_return: bool,
) -> Transcript {
    let mut session = Session::new("simulation", "webchat", "simulator");
    let mut turns = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let mut events = Vec::new();
        let mut answered = true;
        if session.mode == Mode::AgentHandoff {
            if auto_return {
                events.push(Event::ReturnedToBot);
                let turn = graph.on_return_to_bot(&mut session);
                drive(graph, &mut session, turn, stubs, &mut events);
            } else {
                events.push(Event::WithAgent);
                answered = false;
            }
        }
        if answered {
            let message = InboundMessage::text(format!("sim-{i}"), input.clone());
            let turn = graph.on_message(&mut session, &message);
            drive(graph, &mut session, turn, stubs, &mut events);
        }
        turns.push(TurnRecord {
            input: input.clone(),
            events,
            state: session.state.clone(),
            vars: session.vars.clone(),
        });
    }
    Transcript {
        turns,
        handled: session.turns,
        state: session.state,
        mode: session.mode,
    }
}

fn drive(
    graph: &FlowGraph,
    session: &mut Session,
    mut turn: Turn,
    stubs: &Stubs,
    events: &mut Vec<Event>,
) {
    for _ in 0..MAX_STEPS_PER_TURN {
        events.extend(turn.replies.iter().map(|r| Event::Reply {
            text: r.plain_text(),
        }));
        match turn.effect.take() {
            None => return,
            Some(Effect::Command {
                node,
                command,
                params,
            }) => {
                let outcome = stubs.outcome(&command);
                events.push(Event::Command {
                    node,
                    command,
                    params,
                    ok: outcome.ok,
                });
                turn = graph.on_command_result(session, outcome);
            }
            Some(Effect::Wait { node, seconds }) => {
                events.push(Event::Wait { node, seconds });
                turn = graph.on_timer(session);
            }
            Some(Effect::Handoff { node, queue }) => {
                events.push(Event::Handoff { node, queue });
                return;
            }
            Some(Effect::SurveyCompleted(result)) => {
                events.push(Event::Survey {
                    rating: result.rating,
                    comment: result.comment,
                });
                return;
            }
        }
    }
    events.push(Event::Stopped {
        reason: format!(
            "{MAX_STEPS_PER_TURN} commands and waits in one turn without waiting for the customer"
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn graph(nodes: Value) -> FlowGraph {
        FlowGraph::from_json(
            &json!({"schema_version": 1, "id": "t", "version": 1, "start": "a", "nodes": nodes})
                .to_string(),
        )
        .unwrap()
    }

    #[test]
    fn commands_take_their_stubbed_outcome_and_others_the_default() {
        let g = graph(json!([
            {"id": "a", "type": "command", "command": "ai.analyze", "save_as": "r",
             "next": "b", "on_failure": "f"},
            {"id": "b", "type": "message", "text": "got {{r.intent}}", "next": "end"},
            {"id": "f", "type": "message", "text": "failed", "next": "end"},
            {"id": "end", "type": "end"},
        ]));
        let failing = simulate(&g, &["hola".into()], &Stubs::default(), false);
        assert_eq!(
            failing.turns[0].events.last(),
            Some(&Event::Reply {
                text: "failed".into()
            })
        );
        let mut stubs = Stubs::default();
        stubs.outcomes.insert(
            "ai.analyze".into(),
            CommandOutcome {
                ok: true,
                value: json!({"intent": "order"}),
                error: None,
            },
        );
        let stubbed = simulate(&g, &["hola".into()], &stubs, false);
        let events = &stubbed.turns[0].events;
        assert!(
            matches!(&events[0], Event::Command { node, ok: true, .. } if node == "a"),
            "{events:?}"
        );
        assert_eq!(
            events.last(),
            Some(&Event::Reply {
                text: "got order".into()
            })
        );
        assert_eq!(stubbed.turns[0].vars["r"], json!({"intent": "order"}));
    }

    #[test]
    fn commands_that_lead_to_commands_forever_stop() {
        let g = graph(json!([
            {"id": "a", "type": "command", "command": "ai.analyze", "next": "a",
             "on_failure": "a"},
        ]));
        let t = simulate(&g, &["x".into()], &Stubs::default(), false);
        let events = &t.turns[0].events;
        assert_eq!(events.len(), MAX_STEPS_PER_TURN + 1);
        assert!(matches!(events.last(), Some(Event::Stopped { .. })));
    }
}
