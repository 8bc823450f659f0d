//! Flow validation: every problem, located by node and field.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use super::expr::Expr;
use super::{
    BUILTIN_VARIABLES, Expect, FlowGraph, KNOWN_COMMANDS, NodeKind, SCHEMA_VERSION,
    template_variables,
};

const NODE_TYPES: &[&str] = &[
    "message",
    "question",
    "condition",
    "set_variable",
    "command",
    "wait",
    "handoff",
    "jump",
    "end",
];

/// One problem in a flow.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FlowError {
    /// The node at fault (`None` for the document as a whole).
    pub node: Option<String>,
    /// The field at fault, when one is.
    pub field: Option<String>,
    pub message: String,
}

impl FlowError {
    fn doc(message: impl Into<String>) -> Self {
        Self {
            node: None,
            field: None,
            message: message.into(),
        }
    }

    fn at(node: &str, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            node: Some(node.to_owned()),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.node, &self.field) {
            (Some(n), Some(field)) => write!(f, "node `{n}`, field `{field}`: {}", self.message),
            (Some(n), None) => write!(f, "node `{n}`: {}", self.message),
            (None, Some(field)) => write!(f, "field `{field}`: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for FlowError {}

/// Parses and validates a flow document.
pub fn parse(json: &str) -> Result<FlowGraph, Vec<FlowError>> {
    let doc: Value = serde_json::from_str(json)
        .map_err(|e| vec![FlowError::doc(format!("not valid JSON: {e}"))])?;
    let mut errors = Vec::new();
    // Node-level shape errors first, so each is named by its node id.
    if let Some(nodes) = doc.get("nodes").and_then(Value::as_array) {
        for (index, node) in nodes.iter().enumerate() {
            let id = node
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("#{index}"));
            match node.get("type").and_then(Value::as_str) {
                None => errors.push(FlowError::at(&id, Some("type"), "missing node type")),
                Some(t) if !NODE_TYPES.contains(&t) => errors.push(FlowError::at(
                    &id,
                    Some("type"),
                    format!("unknown node type `{t}` (known: {})", NODE_TYPES.join(", ")),
                )),
                Some(_) => {
                    if node.get("id").and_then(Value::as_str).is_none() {
                        errors.push(FlowError::at(&id, Some("id"), "missing node id"));
                    } else if let Err(e) = serde_json::from_value::<super::Node>(node.clone()) {
                        errors.push(FlowError::at(&id, None, e.to_string()));
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let graph: FlowGraph = serde_json::from_value(doc)
        .map_err(|e| vec![FlowError::doc(format!("invalid flow document: {e}"))])?;
    validate(&graph)?;
    Ok(graph)
}

/// Every problem of an already parsed graph.
pub fn validate(graph: &FlowGraph) -> Result<(), Vec<FlowError>> {
    let mut errors = Vec::new();
    if graph.schema_version != SCHEMA_VERSION {
        errors.push(FlowError {
            node: None,
            field: Some("schema_version".into()),
            message: format!(
                "schema_version {} is not supported (this engine reads {SCHEMA_VERSION})",
                graph.schema_version
            ),
        });
    }
    if graph.id.trim().is_empty() {
        errors.push(FlowError {
            node: None,
            field: Some("id".into()),
            message: "the flow needs an id".into(),
        });
    }
    if graph.nodes.is_empty() {
        errors.push(FlowError::doc("the flow has no nodes"));
        return Err(errors);
    }
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        if index.insert(node.id.as_str(), i).is_some() {
            errors.push(FlowError::at(
                &node.id,
                Some("id"),
                "node id is used more than once",
            ));
        }
    }
    if !index.contains_key(graph.start.as_str()) {
        errors.push(FlowError {
            node: None,
            field: Some("start".into()),
            message: format!("start node `{}` does not exist", graph.start),
        });
    }

    // Variables that something assigns.
    let mut assigned: BTreeSet<String> =
        BUILTIN_VARIABLES.iter().map(|s| (*s).to_owned()).collect();
    for node in &graph.nodes {
        match &node.kind {
            NodeKind::Question { save_as, .. } => {
                assigned.insert(save_as.clone());
            }
            NodeKind::SetVariable { variable, .. } => {
                assigned.insert(variable.clone());
            }
            NodeKind::Command {
                save_as: Some(v), ..
            } => {
                assigned.insert(v.clone());
            }
            _ => {}
        }
    }

    for node in &graph.nodes {
        let id = node.id.as_str();
        for (field, target) in node.kind.edges() {
            if !index.contains_key(target) {
                errors.push(FlowError::at(
                    id,
                    Some(field),
                    format!("points at `{target}`, which does not exist"),
                ));
            }
        }
        let check_template = |field: &str, text: &str, errors: &mut Vec<FlowError>| {
            for var in template_variables(text) {
                if !assigned.contains(&var) {
                    errors.push(FlowError::at(
                        id,
                        Some(field),
                        format!("unknown variable `{var}`"),
                    ));
                }
            }
        };
        match &node.kind {
            NodeKind::Message {
                text,
                media,
                buttons,
                list,
                next,
            } => {
                if text.is_none() && media.is_none() && list.is_none() {
                    errors.push(FlowError::at(
                        id,
                        None,
                        "a message needs text, media or a list",
                    ));
                }
                if let Some(t) = text {
                    check_template("text", t, &mut errors);
                }
                if let Some(m) = media {
                    if !["image", "video", "audio", "document"].contains(&m.kind.as_str()) {
                        errors.push(FlowError::at(
                            id,
                            Some("media.kind"),
                            format!("unknown media kind `{}`", m.kind),
                        ));
                    }
                    if m.url.is_empty() {
                        errors.push(FlowError::at(id, Some("media.url"), "media needs a url"));
                    }
                }
                if buttons.len() > 3 {
                    errors.push(FlowError::at(
                        id,
                        Some("buttons"),
                        "at most 3 buttons (channel limit)",
                    ));
                }
                if let Some(l) = list
                    && l.sections.iter().all(|s| s.rows.is_empty())
                {
                    errors.push(FlowError::at(
                        id,
                        Some("list"),
                        "a list needs at least one row",
                    ));
                }
                if next.is_none() {
                    errors.push(FlowError::at(
                        id,
                        Some("next"),
                        "missing edge: a message must continue (end with an `end` node)",
                    ));
                }
            }
            NodeKind::Question {
                text,
                save_as,
                expects,
                options,
                next,
                reprompt,
                ..
            } => {
                check_template("text", text, &mut errors);
                if let Some(r) = reprompt {
                    check_template("reprompt", r, &mut errors);
                }
                if !is_variable_name(save_as) {
                    errors.push(FlowError::at(
                        id,
                        Some("save_as"),
                        format!("`{save_as}` is not a variable name"),
                    ));
                }
                if *expects == Expect::Option && options.is_empty() {
                    errors.push(FlowError::at(
                        id,
                        Some("options"),
                        "an option question needs options",
                    ));
                }
                if next.is_none() {
                    errors.push(FlowError::at(id, Some("next"), "missing edge"));
                }
            }
            NodeKind::Condition {
                branches,
                otherwise,
            } => {
                if branches.is_empty() {
                    errors.push(FlowError::at(
                        id,
                        Some("branches"),
                        "a condition needs branches",
                    ));
                }
                for (i, b) in branches.iter().enumerate() {
                    let field = format!("branches[{i}].when");
                    match Expr::parse(&b.when) {
                        Ok(e) => {
                            let mut vars = Vec::new();
                            e.variables(&mut vars);
                            for v in vars.into_iter().filter(|v| !assigned.contains(v)) {
                                errors.push(FlowError::at(
                                    id,
                                    Some(&field),
                                    format!("unknown variable `{v}`"),
                                ));
                            }
                        }
                        Err(e) => errors.push(FlowError::at(
                            id,
                            Some(&field),
                            format!("bad expression: {e}"),
                        )),
                    }
                }
                if otherwise.is_none() {
                    errors.push(FlowError::at(
                        id,
                        Some("else"),
                        "missing edge: a condition needs an `else`",
                    ));
                }
            }
            NodeKind::SetVariable {
                variable,
                value,
                next,
            } => {
                if !is_variable_name(variable) {
                    errors.push(FlowError::at(
                        id,
                        Some("variable"),
                        format!("`{variable}` is not a variable name"),
                    ));
                }
                match Expr::parse(value) {
                    Ok(e) => {
                        let mut vars = Vec::new();
                        e.variables(&mut vars);
                        for v in vars.into_iter().filter(|v| !assigned.contains(v)) {
                            errors.push(FlowError::at(
                                id,
                                Some("value"),
                                format!("unknown variable `{v}`"),
                            ));
                        }
                    }
                    Err(e) => errors.push(FlowError::at(
                        id,
                        Some("value"),
                        format!("bad expression: {e}"),
                    )),
                }
                if next.is_none() {
                    errors.push(FlowError::at(id, Some("next"), "missing edge"));
                }
            }
            NodeKind::Command {
                command,
                params,
                save_as,
                next,
                on_failure,
            } => {
                if !KNOWN_COMMANDS.contains(&command.as_str()) {
                    errors.push(FlowError::at(
                        id,
                        Some("command"),
                        format!(
                            "unknown command `{command}` (known: {})",
                            KNOWN_COMMANDS.join(", ")
                        ),
                    ));
                }
                if command == "http_request"
                    && params
                        .get("url")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                {
                    errors.push(FlowError::at(
                        id,
                        Some("params.url"),
                        "http_request needs a url",
                    ));
                }
                for text in strings(params) {
                    check_template("params", text, &mut errors);
                }
                if let Some(v) = save_as
                    && !is_variable_name(v)
                {
                    errors.push(FlowError::at(
                        id,
                        Some("save_as"),
                        format!("`{v}` is not a variable name"),
                    ));
                }
                if next.is_none() {
                    errors.push(FlowError::at(id, Some("next"), "missing edge for success"));
                }
                if on_failure.is_none() {
                    errors.push(FlowError::at(
                        id,
                        Some("on_failure"),
                        "missing edge for failure",
                    ));
                }
            }
            NodeKind::Wait { seconds, next } => {
                if *seconds == 0 {
                    errors.push(FlowError::at(id, Some("seconds"), "must be at least 1"));
                }
                if next.is_none() {
                    errors.push(FlowError::at(id, Some("next"), "missing edge"));
                }
            }
            NodeKind::Handoff { text, .. } => {
                if let Some(t) = text {
                    check_template("text", t, &mut errors);
                }
            }
            NodeKind::Jump { .. } => {}
            NodeKind::End { text, .. } => {
                if let Some(t) = text {
                    check_template("text", t, &mut errors);
                }
            }
        }
    }

    // Reachability from start.
    if let Some(&start) = index.get(graph.start.as_str()) {
        let mut seen = vec![false; graph.nodes.len()];
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            for (_, target) in graph.nodes[i].kind.edges() {
                if let Some(&j) = index.get(target) {
                    stack.push(j);
                }
            }
        }
        for (i, node) in graph.nodes.iter().enumerate() {
            if !seen[i] {
                errors.push(FlowError::at(
                    &node.id,
                    None,
                    "unreachable from the start node",
                ));
            }
        }
    }

    // A cycle made only of nodes that never pause would spin forever.
    let mut color: BTreeMap<usize, u8> = BTreeMap::new();
    for start in 0..graph.nodes.len() {
        if graph.nodes[start].kind.pauses() || color.contains_key(&start) {
            continue;
        }
        if let Some(node) = find_spin(graph, &index, start, &mut color) {
            errors.push(FlowError::at(
                &node,
                None,
                "part of a loop that never waits for input (add a question, wait or end)",
            ));
        }
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Depth-first search over non-pausing nodes; returns a node on a cycle, if any.
fn find_spin(
    graph: &FlowGraph,
    index: &BTreeMap<&str, usize>,
    node: usize,
    color: &mut BTreeMap<usize, u8>,
) -> Option<String> {
    color.insert(node, 1);
    for (_, target) in graph.nodes[node].kind.edges() {
        let Some(&next) = index.get(target) else {
            continue;
        };
        if graph.nodes[next].kind.pauses() {
            continue;
        }
        match color.get(&next) {
            Some(1) => return Some(graph.nodes[next].id.clone()),
            Some(_) => {}
            None => {
                if let Some(found) = find_spin(graph, index, next, color) {
                    return Some(found);
                }
            }
        }
    }
    color.insert(node, 2);
    None
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Every string inside a JSON value.
fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(map) => map.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}
