//! Tenant conversation flows: a JSON graph of nodes, and the pure interpreter that walks it.
//!
//! The interpreter is deterministic and free of I/O, so the conversation workflow replays it
//! safely and `zengine flow simulate` (later) runs the very same code without Temporal.
//!
//! This first version knows `message`, `question` and `end` nodes; the full node set of the
//! original platform (conditions, commands, waits, handoff, …) grows here.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::message::Reply;

/// The newest graph format this code understands.
pub const SCHEMA_VERSION: u32 = 1;

/// Upper bound on nodes executed for one inbound message; protects against a graph that loops
/// through non-waiting nodes forever.
pub const MAX_STEPS_PER_TURN: usize = 200;

/// A tenant's published conversation flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowGraph {
    pub schema_version: u32,
    /// Stable name of the flow within the tenant.
    pub id: String,
    /// Published version; a running conversation keeps the version it started with.
    pub version: u32,
    /// Id of the node a new session starts at.
    pub start: String,
    /// How long a conversation may stay idle before its workflow completes.
    #[serde(default = "default_session_timeout_secs")]
    pub session_timeout_secs: u64,
    pub nodes: Vec<Node>,
}

fn default_session_timeout_secs() -> u64 {
    30 * 60
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    #[serde(flatten)]
    pub kind: NodeKind,
}

/// What a node does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeKind {
    /// Says `text` (with `{{variable}}` templating) and moves on to `next`.
    Message { text: String, next: Option<String> },
    /// Says `text`, waits for the customer's answer, saves it as `save_as`, moves on to `next`.
    Question {
        text: String,
        save_as: String,
        next: Option<String>,
    },
    /// Ends the session (optionally saying `text`); the next message starts the flow again.
    End {
        #[serde(default)]
        text: Option<String>,
    },
}

/// A problem found by [`FlowGraph::validate`], located by node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("schema_version {found} is not supported (newest is {SCHEMA_VERSION})")]
    UnsupportedSchema { found: u32 },
    #[error("the flow has no nodes")]
    Empty,
    #[error("start node `{0}` does not exist")]
    MissingStart(String),
    #[error("node id `{0}` is used more than once")]
    DuplicateNode(String),
    #[error("node `{node}`: `next` points at `{target}`, which does not exist")]
    DanglingEdge { node: String, target: String },
    #[error("node `{node}`: {problem}")]
    BadConfig { node: String, problem: String },
    #[error("node `{0}` can never be reached from the start node")]
    Unreachable(String),
}

impl FlowGraph {
    /// Parses a graph from JSON and validates it.
    pub fn from_json(json: &str) -> Result<Self, Vec<FlowError>> {
        let graph: FlowGraph = serde_json::from_str(json).map_err(|e| {
            vec![FlowError::BadConfig {
                node: "<document>".into(),
                problem: e.to_string(),
            }]
        })?;
        graph.validate()?;
        Ok(graph)
    }

    /// Every problem in the graph, or `Ok` when it can be run.
    pub fn validate(&self) -> Result<(), Vec<FlowError>> {
        let mut errors = Vec::new();
        if self.schema_version != SCHEMA_VERSION {
            errors.push(FlowError::UnsupportedSchema {
                found: self.schema_version,
            });
        }
        if self.nodes.is_empty() {
            errors.push(FlowError::Empty);
            return Err(errors);
        }
        let mut seen = HashSet::new();
        for node in &self.nodes {
            if !seen.insert(node.id.as_str()) {
                errors.push(FlowError::DuplicateNode(node.id.clone()));
            }
        }
        if self.node(&self.start).is_none() {
            errors.push(FlowError::MissingStart(self.start.clone()));
        }
        for node in &self.nodes {
            if let Some(target) = node.next()
                && self.node(target).is_none()
            {
                errors.push(FlowError::DanglingEdge {
                    node: node.id.clone(),
                    target: target.to_owned(),
                });
            }
            if let NodeKind::Question { save_as, .. } = &node.kind
                && (save_as.is_empty() || !save_as.chars().all(|c| c.is_alphanumeric() || c == '_'))
            {
                errors.push(FlowError::BadConfig {
                    node: node.id.clone(),
                    problem: format!("save_as `{save_as}` is not a variable name"),
                });
            }
        }
        // Reachability from start.
        let mut reached = HashSet::new();
        let mut cursor = self.node(&self.start);
        while let Some(node) = cursor {
            if !reached.insert(node.id.as_str()) {
                break;
            }
            cursor = node.next().and_then(|n| self.node(n));
        }
        for node in &self.nodes {
            if !reached.contains(node.id.as_str()) && self.node(&self.start).is_some() {
                errors.push(FlowError::Unreachable(node.id.clone()));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Feeds one customer message into the session and returns what the bot says.
    pub fn handle(&self, session: &mut Session, input: &str) -> Vec<Reply> {
        let mut replies = Vec::new();
        session.turns += 1;
        let mut cursor = match session.waiting_at.take() {
            Some(waiting) => match self.node(&waiting).map(|n| &n.kind) {
                Some(NodeKind::Question { save_as, next, .. }) => {
                    session
                        .vars
                        .insert(save_as.clone(), input.trim().to_owned());
                    next.clone()
                }
                // The node vanished (cannot happen with a pinned version); start over.
                _ => Some(self.start.clone()),
            },
            None => {
                session.vars.clear();
                Some(self.start.clone())
            }
        };
        for _ in 0..MAX_STEPS_PER_TURN {
            let Some(node) = cursor.as_deref().and_then(|id| self.node(id)) else {
                return replies;
            };
            match &node.kind {
                NodeKind::Message { text, next } => {
                    replies.push(Reply::text(render(text, &session.vars)));
                    cursor = next.clone();
                }
                NodeKind::Question { text, .. } => {
                    replies.push(Reply::text(render(text, &session.vars)));
                    session.waiting_at = Some(node.id.clone());
                    return replies;
                }
                NodeKind::End { text } => {
                    if let Some(text) = text {
                        replies.push(Reply::text(render(text, &session.vars)));
                    }
                    return replies;
                }
            }
        }
        replies
    }
}

impl Node {
    fn next(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Message { next, .. } | NodeKind::Question { next, .. } => next.as_deref(),
            NodeKind::End { .. } => None,
        }
    }
}

/// The state of one conversation within its flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Variables saved by questions (and, later, set-variable and command nodes).
    pub vars: BTreeMap<String, String>,
    /// The question node waiting for the customer's answer, if any.
    pub waiting_at: Option<String>,
    /// Number of customer messages handled.
    pub turns: u64,
}

/// Replaces `{{name}}` with the variable's value (empty when unset).
pub fn render(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                let name = after[..close].trim();
                out.push_str(vars.get(name).map(String::as_str).unwrap_or(""));
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
mod tests {
    use super::*;

    fn texts(replies: &[Reply]) -> Vec<&str> {
        replies
            .iter()
            .map(|r| match r {
                Reply::Text { text } => text.as_str(),
            })
            .collect()
    }

    #[test]
    fn demo_flow_greets_asks_the_name_and_then_uses_it() {
        let flow = demo_flow();
        let mut s = Session::default();
        let first = flow.handle(&mut s, "hola");
        assert_eq!(
            texts(&first),
            ["¡Hola! Soy el asistente virtual de Demo. ¿Cómo te llamas?"]
        );
        let second = flow.handle(&mut s, "  Ana ");
        assert_eq!(
            texts(&second),
            ["Mucho gusto, Ana. ¿En qué te puedo ayudar hoy?"]
        );
        let third = flow.handle(&mut s, "quiero pedir");
        assert_eq!(texts(&third).len(), 2);
        assert!(texts(&third)[0].contains("Ana") && texts(&third)[0].contains("quiero pedir"));
        assert_eq!(s.waiting_at, None);
        // The session ended: the next message starts over with fresh variables.
        let again = flow.handle(&mut s, "hola otra vez");
        assert!(texts(&again)[0].contains("¿Cómo te llamas?"));
        assert!(s.vars.is_empty());
        assert_eq!(s.turns, 4);
    }

    #[test]
    fn render_fills_known_variables_and_blanks_unknown_ones() {
        let vars = BTreeMap::from([("name".to_owned(), "Ana".to_owned())]);
        assert_eq!(render("Hola {{ name }}{{x}}!", &vars), "Hola Ana!");
        assert_eq!(
            render("open {{ never closed", &vars),
            "open {{ never closed"
        );
        assert_eq!(render("", &vars), "");
    }

    #[test]
    fn validation_locates_every_problem() {
        let graph = FlowGraph {
            schema_version: 9,
            id: "f".into(),
            version: 1,
            start: "a".into(),
            session_timeout_secs: 60,
            nodes: vec![
                Node {
                    id: "a".into(),
                    kind: NodeKind::Message {
                        text: "x".into(),
                        next: Some("nope".into()),
                    },
                },
                Node {
                    id: "b".into(),
                    kind: NodeKind::Question {
                        text: "q".into(),
                        save_as: "bad name".into(),
                        next: None,
                    },
                },
                Node {
                    id: "b".into(),
                    kind: NodeKind::End { text: None },
                },
            ],
        };
        let errors = graph.validate().unwrap_err();
        assert!(errors.contains(&FlowError::UnsupportedSchema { found: 9 }));
        assert!(errors.contains(&FlowError::DuplicateNode("b".into())));
        assert!(errors.contains(&FlowError::DanglingEdge {
            node: "a".into(),
            target: "nope".into()
        }));
        assert!(errors.contains(&FlowError::Unreachable("b".into())));
        assert!(
            errors
                .iter()
                .any(|e| matches!(e, FlowError::BadConfig { node, .. } if node == "b"))
        );
    }

    #[test]
    fn malformed_json_is_a_located_error_not_a_panic() {
        let errors = FlowGraph::from_json("{\"nodes\": 3}").unwrap_err();
        assert!(matches!(&errors[0], FlowError::BadConfig { node, .. } if node == "<document>"));
        let errors = FlowGraph::from_json(
            r#"{"schema_version":1,"id":"f","version":1,"start":"x","nodes":[]}"#,
        )
        .unwrap_err();
        assert_eq!(errors, vec![FlowError::Empty]);
    }

    #[test]
    fn a_loop_without_questions_stops_after_the_step_limit() {
        let graph = FlowGraph::from_json(
            r#"{"schema_version":1,"id":"f","version":1,"start":"a","nodes":[
              {"id":"a","type":"message","text":"a","next":"b"},
              {"id":"b","type":"message","text":"b","next":"a"}]}"#,
        )
        .unwrap();
        let replies = graph.handle(&mut Session::default(), "hi");
        assert_eq!(replies.len(), MAX_STEPS_PER_TURN);
    }
}
