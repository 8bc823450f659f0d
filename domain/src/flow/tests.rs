//! Tests of the flow model, validator and interpreter: one group per node type, then the
//! validator's error classes, then a property test over random graphs.

use serde_json::json;

use super::*;
use crate::message::{InboundMedia, InboundMessage, Location, Reply};

fn flow(nodes: serde_json::Value) -> FlowGraph {
    let doc = json!({"schema_version": 1, "id": "t", "version": 1, "start": nodes[0]["id"], "nodes": nodes});
    FlowGraph::from_json(&doc.to_string()).unwrap_or_else(|e| panic!("{e:?}"))
}

fn msg(text: &str) -> InboundMessage {
    InboundMessage::text("m", text)
}

fn texts(turn: &Turn) -> Vec<String> {
    turn.replies.iter().map(Reply::plain_text).collect()
}

fn errors(doc: serde_json::Value) -> Vec<String> {
    FlowGraph::from_json(&doc.to_string())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn demo_flow_greets_asks_the_name_uses_it_and_starts_over_after_the_end() {
    let flow = demo_flow();
    let mut s = Session::new("demo", "webchat", "s1");
    assert_eq!(
        texts(&flow.on_message(&mut s, &msg("hola"))),
        ["¡Hola! Soy el asistente virtual de Demo. ¿Cómo te llamas?"]
    );
    assert_eq!(
        texts(&flow.on_message(&mut s, &msg("  Ana "))),
        ["Mucho gusto, Ana. ¿En qué te puedo ayudar hoy?"]
    );
    let third = flow.on_message(&mut s, &msg("quiero pedir"));
    assert_eq!(texts(&third).len(), 2);
    assert!(texts(&third)[0].contains("Ana") && texts(&third)[0].contains("quiero pedir"));
    assert_eq!(s.state, State::Idle);
    let again = flow.on_message(&mut s, &msg("hola otra vez"));
    assert!(texts(&again)[0].contains("¿Cómo te llamas?"));
    assert!(
        !s.vars.contains_key("name"),
        "variables are reset for a new session"
    );
    assert_eq!(s.vars["contact"], json!("s1"), "built-ins survive");
    assert_eq!(s.turns, 4);
}

#[test]
fn message_nodes_render_text_media_buttons_and_lists() {
    let f = flow(json!([
        {"id": "a", "type": "set_variable", "variable": "who", "value": "'Ana'", "next": "b"},
        {"id": "b", "type": "message", "text": "Hola {{who}}", "media": {"kind": "image", "url": "https://x/{{who}}.png", "caption": "menú"}, "next": "c"},
        {"id": "c", "type": "message", "text": "¿Qué deseas?", "buttons": [{"id": "p", "title": "Pizza"}], "next": "d"},
        {"id": "d", "type": "message", "text": "Carta", "list": {"button": "Ver", "sections": [{"title": "Platos", "rows": [{"id": "1", "title": "Lomo"}]}]}, "next": "e"},
        {"id": "e", "type": "end"}
    ]));
    let turn = f.on_message(&mut Session::default(), &msg("hi"));
    assert_eq!(
        turn.replies[0],
        Reply::Media {
            kind: "image".into(),
            url: "https://x/Ana.png".into(),
            caption: Some("menú".into())
        }
    );
    assert_eq!(
        turn.replies[1],
        Reply::Text {
            text: "Hola Ana".into()
        }
    );
    assert!(
        matches!(&turn.replies[2], Reply::Buttons { buttons, .. } if buttons[0].title == "Pizza")
    );
    assert!(matches!(&turn.replies[3], Reply::List { button, .. } if button == "Ver"));
    assert_eq!(turn.effect, None);
}

#[test]
fn questions_validate_each_kind_of_answer() {
    let cases: Vec<(&str, InboundMessage, Option<serde_json::Value>)> = vec![
        ("number", msg("12,5"), Some(json!(12.5))),
        ("number", msg("doce"), None),
        (
            "email",
            msg("Ana@Example.com"),
            Some(json!("ana@example.com")),
        ),
        ("email", msg("ana@"), None),
        ("phone", msg("+51 987-654-321"), Some(json!("+51987654321"))),
        ("phone", msg("12ab"), None),
        ("date", msg("29/02/2024"), Some(json!("2024-02-29"))),
        ("date", msg("2023-02-29"), None),
        ("option", msg("2"), Some(json!("delivery"))),
        ("option", msg("RECOJO"), Some(json!("pickup"))),
        (
            "option",
            InboundMessage {
                reply_id: Some("delivery".into()),
                ..msg("")
            },
            Some(json!("delivery")),
        ),
        ("option", msg("7"), None),
        (
            "image",
            InboundMessage {
                media: Some(InboundMedia {
                    kind: "image".into(),
                    reference: "media-1".into(),
                    mime_type: None,
                }),
                ..msg("")
            },
            Some(json!({"kind": "image", "reference": "media-1"})),
        ),
        ("image", msg("aquí está"), None),
        (
            "location",
            InboundMessage {
                location: Some(Location {
                    lat: -12.05,
                    lon: -77.04,
                }),
                ..msg("")
            },
            Some(json!({"lat": -12.05, "lon": -77.04})),
        ),
        (
            "location",
            msg("-12.05, -77.04"),
            Some(json!({"lat": -12.05, "lon": -77.04})),
        ),
        ("location", msg("en mi casa"), None),
        ("text", msg("   "), None),
    ];
    for (expects, input, expected) in cases {
        let f = flow(json!([
            {"id": "q", "type": "question", "text": "?", "save_as": "v", "expects": expects, "retries": 0,
             "options": [{"id": "pickup", "title": "Recojo"}, {"id": "delivery", "title": "Delivery"}],
             "next": "done", "on_fail": "failed"},
            {"id": "done", "type": "end", "text": "ok"},
            {"id": "failed", "type": "end", "text": "fail"}
        ]));
        let mut s = Session::default();
        f.on_message(&mut s, &msg("start"));
        let turn = f.on_message(&mut s, &input);
        match expected {
            Some(value) => {
                assert_eq!(s.vars.get("v"), Some(&value), "{expects} {input:?}");
                assert_eq!(texts(&turn), ["ok"]);
            }
            None => assert_eq!(
                texts(&turn),
                ["fail"],
                "{expects} {input:?} should be rejected"
            ),
        }
    }
}

#[test]
fn a_question_reprompts_up_to_its_retry_limit_then_follows_on_fail() {
    let f = flow(json!([
        {"id": "q", "type": "question", "text": "¿Cuántas pizzas?", "reprompt": "Solo el número, por favor.", "save_as": "n", "expects": "number", "retries": 2, "next": "ok", "on_fail": "agent"},
        {"id": "ok", "type": "end", "text": "{{n}} pizzas"},
        {"id": "agent", "type": "handoff", "text": "Te paso con una persona.", "next": "ok"}
    ]));
    let mut s = Session::default();
    f.on_message(&mut s, &msg("hola"));
    for attempt in 1..=2 {
        let turn = f.on_message(&mut s, &msg("muchas"));
        assert!(
            texts(&turn)[0].ends_with("Solo el número, por favor."),
            "attempt {attempt}"
        );
        assert_eq!(
            s.state,
            State::AwaitingInput {
                node: "q".into(),
                attempts: attempt
            }
        );
    }
    let turn = f.on_message(&mut s, &msg("todas"));
    assert_eq!(texts(&turn), ["Te paso con una persona."]);
    assert_eq!(s.mode, Mode::AgentHandoff);
}

#[test]
fn a_question_without_on_fail_ends_the_session_after_the_retries() {
    let f = flow(json!([
        {"id": "q", "type": "question", "text": "¿Correo?", "save_as": "e", "expects": "email", "retries": 0, "next": "ok"},
        {"id": "ok", "type": "end"}
    ]));
    let mut s = Session::default();
    f.on_message(&mut s, &msg("hola"));
    let turn = f.on_message(&mut s, &msg("no tengo"));
    assert!(texts(&turn)[0].contains("no pude entender"));
    assert_eq!(s.state, State::Idle);
}

#[test]
fn conditions_pick_the_first_true_branch_else_the_default() {
    let f = flow(json!([
        {"id": "q", "type": "question", "text": "¿Total?", "save_as": "total", "expects": "number", "next": "c"},
        {"id": "c", "type": "condition", "branches": [
            {"when": "total >= 100 and contact matches '^vip-'", "next": "vip"},
            {"when": "total >= 100", "next": "big"}
         ], "else": "small"},
        {"id": "vip", "type": "end", "text": "vip"},
        {"id": "big", "type": "end", "text": "big"},
        {"id": "small", "type": "end", "text": "small"}
    ]));
    for (contact, total, expected) in [
        ("vip-1", "150", "vip"),
        ("ana", "150", "big"),
        ("vip-1", "20", "small"),
    ] {
        let mut s = Session::new("t", "webchat", contact);
        f.on_message(&mut s, &msg("hola"));
        assert_eq!(texts(&f.on_message(&mut s, &msg(total))), [expected]);
    }
}

#[test]
fn set_variable_and_jump_build_a_cart_loop() {
    let f = flow(json!([
        {"id": "init", "type": "set_variable", "variable": "count", "value": "0", "next": "ask"},
        {"id": "ask", "type": "question", "text": "¿Otro producto? (si/no)", "save_as": "more", "next": "check"},
        {"id": "check", "type": "condition", "branches": [{"when": "more == 'no'", "next": "done"}], "else": "add"},
        {"id": "add", "type": "set_variable", "variable": "count", "value": "count + 1", "next": "back"},
        {"id": "back", "type": "jump", "to": "ask"},
        {"id": "done", "type": "end", "text": "Llevas {{count}} productos"}
    ]));
    let mut s = Session::default();
    f.on_message(&mut s, &msg("hola"));
    f.on_message(&mut s, &msg("si"));
    f.on_message(&mut s, &msg("si"));
    assert_eq!(
        texts(&f.on_message(&mut s, &msg("no"))),
        ["Llevas 2 productos"]
    );
}

#[test]
fn commands_pause_for_their_outcome_and_follow_the_success_or_failure_edge() {
    let f = flow(json!([
        {"id": "q", "type": "question", "text": "¿Pedido?", "save_as": "item", "next": "call"},
        {"id": "call", "type": "command", "command": "http_request",
         "params": {"method": "POST", "url": "https://api.example/orders", "body": {"item": "{{item}}"}},
         "save_as": "order", "next": "ok", "on_failure": "ko"},
        {"id": "ok", "type": "end", "text": "Pedido {{order.number}}"},
        {"id": "ko", "type": "end", "text": "Falló: {{last_error}}"}
    ]));
    let mut s = Session::default();
    f.on_message(&mut s, &msg("hola"));
    let turn = f.on_message(&mut s, &msg("pizza"));
    assert_eq!(
        turn.effect,
        Some(Effect::Command {
            node: "call".into(),
            command: "http_request".into(),
            params: json!({"method": "POST", "url": "https://api.example/orders", "body": {"item": "pizza"}}),
        })
    );
    // A message while the command runs is noted, not answered.
    assert!(f.on_message(&mut s, &msg("¿y?")).replies.is_empty());
    let mut failed = s.clone();
    let ok = f.on_command_result(
        &mut s,
        CommandOutcome {
            ok: true,
            value: json!({"number": "A-7"}),
            error: None,
        },
    );
    assert_eq!(texts(&ok), ["Pedido A-7"]);
    let ko = f.on_command_result(
        &mut failed,
        CommandOutcome {
            ok: false,
            value: json!(null),
            error: Some("HTTP 500".into()),
        },
    );
    assert_eq!(texts(&ko), ["Falló: HTTP 500"]);
}

#[test]
fn wait_nodes_pause_until_the_timer_fires() {
    let f = flow(json!([
        {"id": "a", "type": "message", "text": "Te escribo en un minuto", "next": "w"},
        {"id": "w", "type": "wait", "seconds": 60, "next": "b"},
        {"id": "b", "type": "end", "text": "¡Ya!"}
    ]));
    let mut s = Session::default();
    let turn = f.on_message(&mut s, &msg("hola"));
    assert_eq!(
        turn.effect,
        Some(Effect::Wait {
            node: "w".into(),
            seconds: 60
        })
    );
    assert_eq!(texts(&f.on_timer(&mut s)), ["¡Ya!"]);
    assert_eq!(s.state, State::Idle);
}

#[test]
fn handoff_silences_the_bot_until_an_operator_returns_the_conversation() {
    let f = flow(json!([
        {"id": "h", "type": "handoff", "text": "Un asesor te atenderá.", "queue": "ventas", "next": "back"},
        {"id": "back", "type": "end", "text": "Volviste con el bot."}
    ]));
    let mut s = Session::default();
    let turn = f.on_message(&mut s, &msg("quiero hablar con alguien"));
    assert_eq!(
        turn.effect,
        Some(Effect::Handoff {
            node: "h".into(),
            queue: Some("ventas".into())
        })
    );
    assert_eq!(s.mode, Mode::AgentHandoff);
    assert!(f.on_message(&mut s, &msg("¿hola?")).replies.is_empty());
    assert_eq!(texts(&f.on_return_to_bot(&mut s)), ["Volviste con el bot."]);
    assert_eq!(s.mode, Mode::Bot);
}

#[test]
fn end_with_survey_collects_a_rating_and_a_comment() {
    let f = flow(json!([{"id": "e", "type": "end", "text": "Listo.", "survey": true}]));
    let mut s = Session::default();
    let turn = f.on_message(&mut s, &msg("hola"));
    assert_eq!(texts(&turn)[1], SurveyTexts::default().rating);
    assert!(texts(&f.on_message(&mut s, &msg("diez")))[0].contains("del 1 al 5"));
    f.on_message(&mut s, &msg("4"));
    let done = f.on_message(&mut s, &msg("Muy rápido"));
    assert_eq!(
        done.effect,
        Some(Effect::SurveyCompleted(SurveyResult {
            rating: 4,
            comment: Some("Muy rápido".into())
        }))
    );
    assert_eq!(s.state, State::Idle);
}

#[test]
fn render_fills_known_variables_and_blanks_unknown_ones() {
    let vars = std::collections::BTreeMap::from([
        ("name".to_owned(), json!("Ana")),
        ("o".to_owned(), json!({"n": 3})),
    ]);
    assert_eq!(
        render("Hola {{ name }}{{x}} {{o.n}}!", &vars),
        "Hola Ana 3!"
    );
    assert_eq!(
        render("open {{ never closed", &vars),
        "open {{ never closed"
    );
}

#[test]
fn validation_locates_every_kind_of_problem() {
    let unknown = errors(
        json!({"schema_version": 1, "id": "f", "version": 1, "start": "a", "nodes": [
        {"id": "a", "type": "teleport"}]}),
    );
    assert_eq!(
        unknown,
        [
            "node `a`, field `type`: unknown node type `teleport` (known: message, question, condition, set_variable, command, wait, handoff, jump, end)"
        ]
    );

    let missing_config = errors(
        json!({"schema_version": 1, "id": "f", "version": 1, "start": "a", "nodes": [
        {"id": "a", "type": "question", "next": "b"}, {"id": "b", "type": "end"}]}),
    );
    assert!(
        missing_config[0].starts_with("node `a`: missing field `text`"),
        "{missing_config:?}"
    );

    let all = errors(
        json!({"schema_version": 2, "id": "f", "version": 1, "start": "a", "nodes": [
            {"id": "a", "type": "message", "text": "Hola {{nombre}}", "next": "nope"},
            {"id": "b", "type": "condition", "branches": [{"when": "x >", "next": "a"}], "else": "a"},
            {"id": "c", "type": "message", "text": "loop", "next": "d"},
            {"id": "d", "type": "jump", "to": "c"},
            {"id": "e", "type": "command", "command": "rm -rf", "next": "a"},
            {"id": "e", "type": "set_variable", "variable": "1x", "value": "y + 1", "next": "a"}
        ]}),
    );
    let expect = [
        "field `schema_version`: schema_version 2 is not supported (this engine reads 1)",
        "node `e`, field `id`: node id is used more than once",
        "node `a`, field `next`: points at `nope`, which does not exist",
        "node `a`, field `text`: unknown variable `nombre`",
        "node `b`, field `branches[0].when`: bad expression: expression ends too early (at character 4)",
        "node `e`, field `command`: unknown command `rm -rf` (known: http_request, order.create, payment.verify, ai.analyze)",
        "node `e`, field `on_failure`: missing edge for failure",
        "node `e`, field `variable`: `1x` is not a variable name",
        "node `e`, field `value`: unknown variable `y`",
        "node `b`: unreachable from the start node",
        "node `c`: part of a loop that never waits for input (add a question, wait or end)",
    ];
    for e in expect {
        assert!(all.iter().any(|a| a == e), "missing {e:?} in {all:#?}");
    }
    assert!(
        errors(json!({"nodes": 3}))
            .iter()
            .any(|e| e.contains("invalid flow document"))
    );
    assert!(
        errors(json!("{not json"))
            .iter()
            .any(|e| e.contains("invalid flow document"))
    );
}

/// A small deterministic PRNG, so the property test needs no extra crate and is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn random_graph(rng: &mut Rng) -> serde_json::Value {
    let n = 2 + rng.below(10);
    let id = |i: usize| format!("n{i}");
    let mut nodes = Vec::new();
    for i in 0..n {
        let target = |rng: &mut Rng| id(rng.below(n));
        let node = match rng.below(9) {
            0 => json!({"id": id(i), "type": "message", "text": "m{{v}}", "next": target(rng)}),
            1 => {
                json!({"id": id(i), "type": "question", "text": "q", "save_as": "v", "expects": (["text", "number", "option", "date"][rng.below(4)]), "options": [{"id": "a", "title": "A"}], "retries": rng.below(3), "next": target(rng), "on_fail": target(rng)})
            }
            2 => {
                json!({"id": id(i), "type": "condition", "branches": [{"when": "v == 'a' or v > 3", "next": target(rng)}], "else": target(rng)})
            }
            3 => {
                json!({"id": id(i), "type": "set_variable", "variable": "v", "value": "v + 1", "next": target(rng)})
            }
            4 => {
                json!({"id": id(i), "type": "command", "command": "http_request", "params": {"url": "http://x/{{v}}"}, "save_as": "v", "next": target(rng), "on_failure": target(rng)})
            }
            5 => json!({"id": id(i), "type": "wait", "seconds": 1, "next": target(rng)}),
            6 => json!({"id": id(i), "type": "handoff", "next": target(rng)}),
            7 => json!({"id": id(i), "type": "jump", "to": target(rng)}),
            _ => json!({"id": id(i), "type": "end", "survey": rng.below(2) == 0}),
        };
        nodes.push(node);
    }
    json!({"schema_version": 1, "id": "p", "version": 1, "start": "n0", "nodes": nodes})
}

#[test]
fn random_valid_graphs_never_panic_and_always_pause_or_end() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let inputs = ["hola", "a", "5", "2024-01-31", "no", "", "3", "x"];
    let mut valid = 0;
    for _ in 0..3000 {
        let doc = random_graph(&mut rng);
        let Ok(f) = FlowGraph::from_json(&doc.to_string()) else {
            continue;
        };
        valid += 1;
        let mut s = Session::new("t", "webchat", "c");
        for step in 0..20 {
            let turn = match (&s.state, rng.below(4)) {
                (State::AwaitingCommand { .. }, _) => f.on_command_result(
                    &mut s,
                    CommandOutcome {
                        ok: rng.below(2) == 0,
                        value: json!(rng.below(9)),
                        error: None,
                    },
                ),
                (State::Waiting { .. }, _) => f.on_timer(&mut s),
                (State::Handoff { .. }, 0) => f.on_return_to_bot(&mut s),
                _ => f.on_message(&mut s, &msg(inputs[rng.below(inputs.len())])),
            };
            // After every event the session is paused somewhere a later event can resume.
            match (&turn.effect, &s.state) {
                (Some(Effect::Command { .. }), State::AwaitingCommand { .. })
                | (Some(Effect::Wait { .. }), State::Waiting { .. })
                | (Some(Effect::Handoff { .. }), State::Handoff { .. })
                | (Some(Effect::SurveyCompleted(_)), State::Idle)
                | (None, _) => {}
                other => panic!("step {step}: effect/state mismatch {other:?} in {doc}"),
            }
            if let State::AwaitingInput { node, .. } = &s.state {
                assert!(matches!(
                    f.node(node).map(|n| &n.kind),
                    Some(NodeKind::Question { .. })
                ));
            }
        }
    }
    assert!(
        valid > 100,
        "the generator produced too few valid graphs ({valid})"
    );
}
