//! Tenant conversation flows: a JSON graph of nodes, its validator, and the pure interpreter that
//! walks it.
//!
//! The interpreter is deterministic and free of I/O: the conversation workflow replays it safely,
//! and `zengine flow simulate` runs the very same code without Temporal. Whatever needs the outside
//! world (a command, a durable wait, a human agent) is returned as an [`Effect`] for the caller
//! to carry out and report back.
//!
//! The format is documented in `docs/flows.md` with a JSON Schema in `docs/flow.schema.json`.

pub mod expr;
mod interp;
pub mod simulate;
mod validate;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use interp::{CommandOutcome, Effect, Mode, Session, State, SurveyResult, Turn};
pub use validate::FlowError;

/// Whether `id` may name a flow: 1 to 64 letters, digits, `-`, `_` or `.` (it appears in URL
/// paths and as a tenant's `main_flow_id`).
pub fn is_valid_flow_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The newest graph format this code understands.
pub const SCHEMA_VERSION: u32 = 1;

/// Upper bound on nodes executed for one event; protects against a graph that loops through
/// non-waiting nodes forever (the validator rejects such loops up front).
pub const MAX_STEPS_PER_TURN: usize = 200;

/// Commands a `command` node may call. Each runs as a Temporal activity.
pub const KNOWN_COMMANDS: &[&str] = &[
    "http_request",
    "order.create",
    "payment.verify",
    "ai.analyze",
];

/// Variables every flow can read without assigning them.
pub const BUILTIN_VARIABLES: &[&str] = &[
    "contact",
    "channel",
    "tenant",
    "last_input",
    "last_error",
    "survey_rating",
    "survey_comment",
];

/// A tenant's published conversation flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowGraph {
    pub schema_version: u32,
    /// Stable name of the flow within the tenant.
    pub id: String,
    /// Published version; a running conversation keeps the version it started with.
    pub version: u32,
    /// Id of the node a new session starts at.
    pub start: String,
    /// How long a conversation may stay idle before its session closes.
    #[serde(default = "default_session_timeout_secs")]
    pub session_timeout_secs: u64,
    /// Texts of the satisfaction survey offered by `end` nodes with `survey: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<SurveyTexts>,
    pub nodes: Vec<Node>,
}

fn default_session_timeout_secs() -> u64 {
    30 * 60
}

/// Survey wording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyTexts {
    pub rating: String,
    pub comment: String,
    pub thanks: String,
}

impl Default for SurveyTexts {
    fn default() -> Self {
        Self {
            rating: "¿Cómo calificarías la atención del 1 al 5?".into(),
            comment: "¿Quieres dejarnos un comentario? (escribe \"no\" para omitir)".into(),
            thanks: "¡Gracias por tu opinión!".into(),
        }
    }
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    #[serde(flatten)]
    pub kind: NodeKind,
}

pub use crate::message::{Choice, ListMenu, ListSection, Media};

/// What a question accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    #[default]
    Text,
    Number,
    Email,
    Phone,
    Date,
    Option,
    Image,
    Location,
}

/// One branch of a condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    /// An expression (see [`expr`]).
    pub when: String,
    pub next: String,
}

fn default_retries() -> u32 {
    2
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    v == &T::default()
}

/// What a node does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeKind {
    /// Says something (text with `{{variable}}` templating, media, buttons or a list), then
    /// moves on to `next`.
    Message {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media: Option<Media>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        buttons: Vec<Choice>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        list: Option<ListMenu>,
        next: Option<String>,
    },
    /// Asks, waits for the answer, validates it against `expects` (re-asking up to `retries`
    /// times, then following `on_fail`), saves it as `save_as`, moves on to `next`.
    Question {
        text: String,
        save_as: String,
        #[serde(default, skip_serializing_if = "is_default")]
        expects: Expect,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        options: Vec<Choice>,
        #[serde(default = "default_retries")]
        retries: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reprompt: Option<String>,
        next: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_fail: Option<String>,
    },
    /// Goes to the first branch whose `when` holds, else to `else`.
    Condition {
        branches: Vec<Branch>,
        #[serde(rename = "else")]
        otherwise: Option<String>,
    },
    /// Sets `variable` to the value of the expression `value`.
    SetVariable {
        variable: String,
        value: String,
        next: Option<String>,
    },
    /// Calls a command (an activity) with templated `params`; its result is saved as `save_as`.
    /// Success goes to `next`, failure to `on_failure` (the error text is in `last_error`).
    Command {
        command: String,
        #[serde(default, skip_serializing_if = "Value::is_null")]
        params: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        save_as: Option<String>,
        next: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_failure: Option<String>,
    },
    /// Waits durably for `seconds`, then moves on to `next`.
    Wait { seconds: u64, next: Option<String> },
    /// Hands the conversation to a human agent (mode `AGENT_HANDOFF`: the bot stays silent);
    /// when an operator returns it to the bot, the flow continues at `next`.
    Handoff {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queue: Option<String>,
        next: Option<String>,
    },
    /// Continues at `to`.
    Jump { to: String },
    /// Ends the session (optionally saying `text` and running the survey); the next message
    /// starts the flow again.
    End {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "is_default")]
        survey: bool,
    },
}

impl NodeKind {
    /// The `type` name of the node.
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Message { .. } => "message",
            NodeKind::Question { .. } => "question",
            NodeKind::Condition { .. } => "condition",
            NodeKind::SetVariable { .. } => "set_variable",
            NodeKind::Command { .. } => "command",
            NodeKind::Wait { .. } => "wait",
            NodeKind::Handoff { .. } => "handoff",
            NodeKind::Jump { .. } => "jump",
            NodeKind::End { .. } => "end",
        }
    }

    /// Every edge leaving the node, with the field that holds it.
    pub fn edges(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        fn push<'a>(
            out: &mut Vec<(&'static str, &'a str)>,
            field: &'static str,
            target: &'a Option<String>,
        ) {
            if let Some(t) = target {
                out.push((field, t.as_str()));
            }
        }
        match self {
            NodeKind::Message { next, .. }
            | NodeKind::SetVariable { next, .. }
            | NodeKind::Wait { next, .. }
            | NodeKind::Handoff { next, .. } => push(&mut out, "next", next),
            NodeKind::Question { next, on_fail, .. } => {
                push(&mut out, "next", next);
                push(&mut out, "on_fail", on_fail);
            }
            NodeKind::Command {
                next, on_failure, ..
            } => {
                push(&mut out, "next", next);
                push(&mut out, "on_failure", on_failure);
            }
            NodeKind::Condition {
                branches,
                otherwise,
            } => {
                for b in branches {
                    out.push(("branches.next", b.next.as_str()));
                }
                if let Some(t) = otherwise {
                    out.push(("else", t.as_str()));
                }
            }
            NodeKind::Jump { to } => out.push(("to", to.as_str())),
            NodeKind::End { .. } => {}
        }
        out
    }

    /// Whether executing the node pauses for the outside world (input, a command, a timer, an
    /// agent) or ends the turn: a loop must contain at least one such node.
    pub fn pauses(&self) -> bool {
        matches!(
            self,
            NodeKind::Question { .. }
                | NodeKind::Command { .. }
                | NodeKind::Wait { .. }
                | NodeKind::Handoff { .. }
                | NodeKind::End { .. }
        )
    }
}

impl FlowGraph {
    /// Parses a graph from JSON and validates it; errors are located by node and field.
    pub fn from_json(json: &str) -> Result<Self, Vec<FlowError>> {
        validate::parse(json)
    }

    /// The node with `id`.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// Replaces `{{name}}` / `{{name.field}}` with the variable's text (empty when unset).
pub fn render(template: &str, vars: &std::collections::BTreeMap<String, Value>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                let path: Vec<String> = after[..close]
                    .trim()
                    .split('.')
                    .map(str::to_owned)
                    .collect();
                out.push_str(&expr::to_text(&expr::lookup(vars, &path)));
                rest = &after[close + 2..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Root names of the variables a template reads.
pub fn template_variables(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let name = after[..close].trim();
        out.push(name.split('.').next().unwrap_or("").to_owned());
        rest = &after[close + 2..];
    }
    out
}

/// The flow seeded for the demo tenant: greets, asks the customer's name, then uses it.
pub fn demo_flow() -> FlowGraph {
    FlowGraph::from_json(DEMO_FLOW_JSON).expect("the demo flow is valid")
}

/// JSON source of [`demo_flow`].
pub const DEMO_FLOW_JSON: &str = r#"{
  "schema_version": 1,
  "id": "welcome",
  "version": 1,
  "start": "ask_name",
  "session_timeout_secs": 1800,
  "nodes": [
    {"id": "ask_name", "type": "question", "save_as": "name", "next": "ask_need",
     "text": "¡Hola! Soy el asistente virtual de Demo. ¿Cómo te llamas?"},
    {"id": "ask_need", "type": "question", "save_as": "need", "next": "thanks",
     "text": "Mucho gusto, {{name}}. ¿En qué te puedo ayudar hoy?"},
    {"id": "thanks", "type": "message", "next": "bye",
     "text": "Gracias, {{name}}. Anoté tu consulta: \"{{need}}\". Un asesor te responderá pronto."},
    {"id": "bye", "type": "end", "text": "¡Hasta pronto!"}
  ]
}"#;

#[cfg(test)]
mod tests;
