//! The interpreter: a deterministic state machine over a [`FlowGraph`].
//!
//! Each entry point takes one event (a customer message, a command's outcome, a fired timer, an
//! operator returning the conversation to the bot), runs nodes until the flow must pause, and
//! returns the replies plus at most one [`Effect`] for the caller to carry out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::expr::{Expr, truthy};
use super::{Choice, Expect, FlowGraph, MAX_STEPS_PER_TURN, NodeKind, SurveyTexts, render};
use crate::message::{InboundMessage, Reply};

/// Who answers the customer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    #[default]
    Bot,
    AgentHandoff,
}

/// Where the session is paused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// Not started, or ended: the next message starts the flow.
    #[default]
    Idle,
    AwaitingInput {
        node: String,
        attempts: u32,
    },
    AwaitingCommand {
        node: String,
    },
    Waiting {
        node: String,
    },
    Handoff {
        node: String,
    },
    SurveyRating,
    SurveyComment {
        rating: u8,
    },
}

/// The state of one conversation within its flow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Variables (context): answers, command results, cart, address, …
    #[serde(default)]
    pub vars: BTreeMap<String, Value>,
    #[serde(default)]
    pub state: State,
    #[serde(default)]
    pub mode: Mode,
    /// Customer messages handled.
    #[serde(default)]
    pub turns: u64,
}

/// Variables that survive the end of a session.
const KEPT_ON_RESTART: &[&str] = &["contact", "channel", "tenant"];

impl Session {
    /// A new session knowing who it talks to.
    pub fn new(tenant: &str, channel: &str, contact: &str) -> Self {
        let mut vars = BTreeMap::new();
        vars.insert("tenant".into(), json!(tenant));
        vars.insert("channel".into(), json!(channel));
        vars.insert("contact".into(), json!(contact));
        Self {
            vars,
            ..Self::default()
        }
    }
}

/// Something the caller must do for the flow to go on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Run `command` with `params`, then call [`FlowGraph::on_command_result`].
    Command {
        node: String,
        command: String,
        params: Value,
    },
    /// Wait durably, then call [`FlowGraph::on_timer`].
    Wait { node: String, seconds: u64 },
    /// Route the customer to a human agent; [`FlowGraph::on_return_to_bot`] resumes the flow.
    Handoff { node: String, queue: Option<String> },
    /// The customer completed the satisfaction survey: record it.
    SurveyCompleted(SurveyResult),
}

/// A completed satisfaction survey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyResult {
    pub rating: u8,
    pub comment: Option<String>,
}

/// What a command returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CommandOutcome {
    pub ok: bool,
    #[serde(default)]
    pub value: Value,
    #[serde(default)]
    pub error: Option<String>,
}

/// The result of one event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub replies: Vec<Reply>,
    pub effect: Option<Effect>,
}

const FALLBACK_FAIL: &str =
    "Lo siento, no pude entender tu respuesta. Empecemos de nuevo cuando quieras.";

impl FlowGraph {
    /// A customer message.
    pub fn on_message(&self, s: &mut Session, input: &InboundMessage) -> Turn {
        s.turns += 1;
        s.vars.insert("last_input".into(), json!(input.text.trim()));
        let mut turn = Turn::default();
        match s.state.clone() {
            State::Idle => {
                s.vars
                    .retain(|k, _| KEPT_ON_RESTART.contains(&k.as_str()) || k == "last_input");
                self.run(s, Some(self.start.clone()), &mut turn);
            }
            State::AwaitingInput { node, attempts } => {
                let Some(NodeKind::Question {
                    text,
                    save_as,
                    expects,
                    options,
                    retries,
                    reprompt,
                    next,
                    on_fail,
                }) = self.node(&node).map(|n| &n.kind)
                else {
                    // Cannot happen with a pinned version; start over rather than get stuck.
                    s.state = State::Idle;
                    self.run(s, Some(self.start.clone()), &mut turn);
                    return turn;
                };
                match accept(*expects, options, input) {
                    Ok(value) => {
                        s.vars.insert(save_as.clone(), value);
                        self.run(s, next.clone(), &mut turn);
                    }
                    Err(hint) if attempts < *retries => {
                        s.state = State::AwaitingInput {
                            node: node.clone(),
                            attempts: attempts + 1,
                        };
                        let again = reprompt.as_deref().unwrap_or(text);
                        turn.replies
                            .push(Reply::text(format!("{hint} {}", render(again, &s.vars))));
                    }
                    Err(_) => match on_fail {
                        Some(target) => self.run(s, Some(target.clone()), &mut turn),
                        None => {
                            s.state = State::Idle;
                            turn.replies.push(Reply::text(FALLBACK_FAIL));
                        }
                    },
                }
            }
            // The flow is busy (a command or a timer): the message is noted, nothing is said.
            State::AwaitingCommand { .. } | State::Waiting { .. } | State::Handoff { .. } => {}
            State::SurveyRating => {
                let texts = self.survey.clone().unwrap_or_default();
                match input.text.trim().parse::<u8>() {
                    Ok(rating @ 1..=5) => {
                        s.vars.insert("survey_rating".into(), json!(rating));
                        s.state = State::SurveyComment { rating };
                        turn.replies.push(Reply::text(texts.comment));
                    }
                    _ => turn.replies.push(Reply::text(format!(
                        "Por favor responde con un número del 1 al 5. {}",
                        texts.rating
                    ))),
                }
            }
            State::SurveyComment { rating } => {
                let texts = self.survey.clone().unwrap_or_default();
                let text = input.text.trim();
                let comment =
                    (!text.is_empty() && !text.eq_ignore_ascii_case("no")).then(|| text.to_owned());
                if let Some(c) = &comment {
                    s.vars.insert("survey_comment".into(), json!(c));
                }
                s.state = State::Idle;
                turn.replies.push(Reply::text(texts.thanks));
                turn.effect = Some(Effect::SurveyCompleted(SurveyResult { rating, comment }));
            }
        }
        turn
    }

    /// The outcome of the command the flow asked for.
    pub fn on_command_result(&self, s: &mut Session, outcome: CommandOutcome) -> Turn {
        let mut turn = Turn::default();
        let State::AwaitingCommand { node } = s.state.clone() else {
            return turn;
        };
        let Some(NodeKind::Command {
            save_as,
            next,
            on_failure,
            ..
        }) = self.node(&node).map(|n| &n.kind)
        else {
            s.state = State::Idle;
            return turn;
        };
        if outcome.ok {
            if let Some(var) = save_as {
                s.vars.insert(var.clone(), outcome.value);
            }
            s.vars.remove("last_error");
            self.run(s, next.clone(), &mut turn);
        } else {
            s.vars.insert(
                "last_error".into(),
                json!(outcome.error.unwrap_or_else(|| "command failed".into())),
            );
            self.run(s, on_failure.clone(), &mut turn);
        }
        turn
    }

    /// The durable wait the flow asked for has elapsed.
    pub fn on_timer(&self, s: &mut Session) -> Turn {
        let mut turn = Turn::default();
        if let State::Waiting { node } = s.state.clone() {
            let next = match self.node(&node).map(|n| &n.kind) {
                Some(NodeKind::Wait { next, .. }) => next.clone(),
                _ => None,
            };
            self.run(s, next, &mut turn);
        }
        turn
    }

    /// An operator returned the conversation from the agent to the bot.
    pub fn on_return_to_bot(&self, s: &mut Session) -> Turn {
        let mut turn = Turn::default();
        s.mode = super::Mode::Bot;
        if let State::Handoff { node } = s.state.clone() {
            let next = match self.node(&node).map(|n| &n.kind) {
                Some(NodeKind::Handoff { next, .. }) => next.clone(),
                _ => None,
            };
            self.run(s, next, &mut turn);
        }
        turn
    }

    /// Runs nodes from `cursor` until the flow pauses.
    fn run(&self, s: &mut Session, mut cursor: Option<String>, turn: &mut Turn) {
        for _ in 0..MAX_STEPS_PER_TURN {
            let Some(node) = cursor.as_deref().and_then(|id| self.node(id)) else {
                s.state = State::Idle;
                return;
            };
            let id = node.id.clone();
            match &node.kind {
                NodeKind::Message {
                    text,
                    media,
                    buttons,
                    list,
                    next,
                } => {
                    let text = text.as_deref().map(|t| render(t, &s.vars));
                    if let Some(m) = media {
                        turn.replies.push(Reply::Media {
                            kind: m.kind.clone(),
                            url: render(&m.url, &s.vars),
                            caption: m.caption.as_deref().map(|c| render(c, &s.vars)),
                        });
                    }
                    match (text, list) {
                        (Some(text), Some(list)) => turn.replies.push(Reply::List {
                            text,
                            button: list.button.clone(),
                            sections: list.sections.clone(),
                        }),
                        (Some(text), None) if !buttons.is_empty() => {
                            turn.replies.push(Reply::Buttons {
                                text,
                                buttons: buttons.clone(),
                            })
                        }
                        (Some(text), None) => turn.replies.push(Reply::Text { text }),
                        (None, Some(list)) => turn.replies.push(Reply::List {
                            text: String::new(),
                            button: list.button.clone(),
                            sections: list.sections.clone(),
                        }),
                        (None, None) => {}
                    }
                    cursor = next.clone();
                }
                NodeKind::Question {
                    text,
                    expects,
                    options,
                    ..
                } => {
                    let text = render(text, &s.vars);
                    turn.replies.push(match expects {
                        Expect::Option if options.len() <= 3 => Reply::Buttons {
                            text,
                            buttons: options.clone(),
                        },
                        Expect::Option => Reply::List {
                            text,
                            button: "Ver opciones".into(),
                            sections: vec![super::ListSection {
                                title: "Opciones".into(),
                                rows: options.clone(),
                            }],
                        },
                        _ => Reply::Text { text },
                    });
                    s.state = State::AwaitingInput {
                        node: id,
                        attempts: 0,
                    };
                    return;
                }
                NodeKind::Condition {
                    branches,
                    otherwise,
                } => {
                    cursor = branches
                        .iter()
                        .find(|b| Expr::parse(&b.when).is_ok_and(|e| truthy(&e.eval(&s.vars))))
                        .map(|b| b.next.clone())
                        .or_else(|| otherwise.clone());
                }
                NodeKind::SetVariable {
                    variable,
                    value,
                    next,
                } => {
                    let v = Expr::parse(value)
                        .map(|e| e.eval(&s.vars))
                        .unwrap_or(Value::Null);
                    s.vars.insert(variable.clone(), v);
                    cursor = next.clone();
                }
                NodeKind::Command {
                    command, params, ..
                } => {
                    s.state = State::AwaitingCommand { node: id.clone() };
                    turn.effect = Some(Effect::Command {
                        node: id,
                        command: command.clone(),
                        params: render_json(params, &s.vars),
                    });
                    return;
                }
                NodeKind::Wait { seconds, .. } => {
                    s.state = State::Waiting { node: id.clone() };
                    turn.effect = Some(Effect::Wait {
                        node: id,
                        seconds: *seconds,
                    });
                    return;
                }
                NodeKind::Handoff { text, queue, .. } => {
                    if let Some(t) = text {
                        turn.replies.push(Reply::text(render(t, &s.vars)));
                    }
                    s.mode = Mode::AgentHandoff;
                    s.state = State::Handoff { node: id.clone() };
                    turn.effect = Some(Effect::Handoff {
                        node: id,
                        queue: queue.clone(),
                    });
                    return;
                }
                NodeKind::Jump { to } => cursor = Some(to.clone()),
                NodeKind::End { text, survey } => {
                    if let Some(t) = text {
                        turn.replies.push(Reply::text(render(t, &s.vars)));
                    }
                    if *survey {
                        let texts: SurveyTexts = self.survey.clone().unwrap_or_default();
                        turn.replies.push(Reply::text(texts.rating));
                        s.state = State::SurveyRating;
                    } else {
                        s.state = State::Idle;
                    }
                    return;
                }
            }
        }
        // A loop without pauses (the validator rejects these): stop rather than spin.
        s.state = State::Idle;
    }
}

/// Renders `{{variables}}` in every string of a JSON value. A string that is exactly one
/// placeholder (`"{{cart}}"`) becomes the variable's JSON value itself (a list stays a list).
fn render_json(value: &Value, vars: &BTreeMap<String, Value>) -> Value {
    match value {
        Value::String(s) => {
            let trimmed = s.trim();
            let inner = trimmed
                .strip_prefix("{{")
                .and_then(|r| r.strip_suffix("}}"))
                .filter(|r| !r.contains("{{") && !r.contains("}}"));
            match inner {
                Some(path) => {
                    let path: Vec<String> = path.trim().split('.').map(str::to_owned).collect();
                    super::expr::lookup(vars, &path)
                }
                None => Value::String(render(s, vars)),
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| render_json(v, vars)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render_json(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Validates an answer; `Err` carries a short hint for the re-prompt.
pub(crate) fn accept(
    expects: Expect,
    options: &[Choice],
    input: &InboundMessage,
) -> Result<Value, &'static str> {
    let text = input.text.trim();
    match expects {
        Expect::Text => {
            if text.is_empty() {
                Err("Necesito una respuesta en texto.")
            } else {
                Ok(json!(text))
            }
        }
        Expect::Number => text
            .replace(',', ".")
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .and_then(|n| {
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    Some(json!(n as i64))
                } else {
                    serde_json::Number::from_f64(n).map(Value::Number)
                }
            })
            .ok_or("Eso no parece un número."),
        Expect::Email => {
            let ok = text.split_once('@').is_some_and(|(user, domain)| {
                !user.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !text.chars().any(char::is_whitespace)
                    && !domain.contains('@')
            });
            if ok {
                Ok(json!(text.to_lowercase()))
            } else {
                Err("Ese correo no parece válido.")
            }
        }
        Expect::Phone => {
            let plus = text.starts_with('+');
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            let only_phone_chars = text
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c));
            if only_phone_chars && (7..=15).contains(&digits.len()) {
                Ok(json!(if plus { format!("+{digits}") } else { digits }))
            } else {
                Err("Ese número de teléfono no parece válido.")
            }
        }
        Expect::Date => parse_date(text)
            .map(|d| json!(d))
            .ok_or("Escribe la fecha como AAAA-MM-DD o DD/MM/AAAA."),
        Expect::Option => {
            let picked = input
                .reply_id
                .as_deref()
                .and_then(|id| options.iter().find(|o| o.id == id))
                .or_else(|| {
                    options.iter().find(|o| {
                        o.id.eq_ignore_ascii_case(text) || o.title.eq_ignore_ascii_case(text)
                    })
                })
                .or_else(|| {
                    text.parse::<usize>()
                        .ok()
                        .filter(|i| (1..=options.len()).contains(i))
                        .map(|i| &options[i - 1])
                });
            picked
                .map(|o| json!(o.id))
                .ok_or("Elige una de las opciones.")
        }
        Expect::Image => match &input.media {
            Some(m) if m.kind == "image" => Ok(json!({"kind": m.kind, "reference": m.reference})),
            _ => Err("Necesito una imagen."),
        },
        Expect::Location => match input.location {
            Some(l) => Ok(json!({"lat": l.lat, "lon": l.lon})),
            None => {
                let parsed = text.split_once(',').and_then(|(a, b)| {
                    let lat: f64 = a.trim().parse().ok()?;
                    let lon: f64 = b.trim().parse().ok()?;
                    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon))
                        .then_some((lat, lon))
                });
                parsed
                    .map(|(lat, lon)| json!({"lat": lat, "lon": lon}))
                    .ok_or("Comparte tu ubicación.")
            }
        },
    }
}

/// `YYYY-MM-DD`, `DD/MM/YYYY` or `DD-MM-YYYY` → `YYYY-MM-DD`, checking the calendar.
fn parse_date(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split(['-', '/']).collect();
    let [a, b, c] = parts.as_slice() else {
        return None;
    };
    let (y, m, d) = if a.len() == 4 {
        (a, b, c)
    } else if c.len() == 4 {
        (c, b, a)
    } else {
        return None;
    };
    let (y, m, d): (i32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    ((1..=days).contains(&d) && (1900..=2200).contains(&y)).then(|| format!("{y:04}-{m:02}-{d:02}"))
}
