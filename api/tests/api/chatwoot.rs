//! The agent desk through Chatwoot, against a loopback fake of Chatwoot's application API
//! (contacts search/create, conversations create, messages create, toggle_status; every call
//! must carry the tenant's `api_access_token`) and webhooks shaped like Chatwoot's, signed
//! with `X-Chatwoot-Signature: sha256=HMAC(secret, "{timestamp}.{body}")`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::fakes::{Answer, FakeProvider, Seen};
use crate::flows::{chat, graph, publish, session};
use crate::helpers::{ADMIN_TOKEN, TestApp, spawn_app};

const ACCOUNT: i64 = 7;
const INBOX: i64 = 3;
const TOKEN: &str = "cw-token-1";
const SECRET: &str = "cw-webhook-secret";

/// The fake Chatwoot: its request log, and the ids it handed out.
pub(crate) struct Chatwoot {
    pub fake: FakeProvider,
    contacts: Arc<Mutex<Vec<Value>>>,
    /// Ids of the messages it created, with their bodies.
    messages: Arc<Mutex<Vec<(i64, Value)>>>,
    conversations: Arc<Mutex<Vec<Value>>>,
    /// The next conversation create succeeds but answers 502.
    pub lose_answer: Arc<Mutex<bool>>,
    _files: tempfile::TempDir,
    pub token_ref: String,
    pub secret_ref: String,
}

fn authorized(seen: &Seen) -> bool {
    seen.headers.get("api_access_token").map(String::as_str) == Some(TOKEN)
}

impl Chatwoot {
    /// Starts a fake whose conversation ids start at `first_conversation`.
    pub async fn start(first_conversation: i64) -> Self {
        let fake = FakeProvider::start().await;
        let contacts: Arc<Mutex<Vec<Value>>> = Arc::default();
        let messages: Arc<Mutex<Vec<(i64, Value)>>> = Arc::default();
        let base = format!("/api/v1/accounts/{ACCOUNT}");
        let unauthorized = || Answer::json(401, json!({"errors": ["You need to sign in"]}));
        {
            let contacts = contacts.clone();
            fake.on(&format!("GET {base}/contacts/search"), move |seen, _| {
                if !authorized(seen) {
                    return unauthorized();
                }
                let q = reqwest::Url::parse(&format!("http://x{}", seen.path))
                    .unwrap()
                    .query_pairs()
                    .find(|(k, _)| k == "q")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let hits: Vec<Value> = contacts
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|c| {
                        ["identifier", "phone_number", "email", "name"]
                            .iter()
                            .any(|k| c[*k].as_str().is_some_and(|v| v.contains(&q)))
                    })
                    .cloned()
                    .collect();
                Answer::json(200, json!({"meta": {"count": hits.len()}, "payload": hits}))
            });
        }
        {
            let contacts = contacts.clone();
            fake.on(&format!("POST {base}/contacts"), move |seen, _| {
                if !authorized(seen) {
                    return unauthorized();
                }
                let mut list = contacts.lock().unwrap();
                let id = 100 + list.len() as i64;
                let inbox = json!({"source_id": format!("src-{id}"), "inbox": {"id": seen.body["inbox_id"]}});
                let contact = json!({
                    "id": id, "name": seen.body["name"], "identifier": seen.body["identifier"],
                    "phone_number": seen.body["phone_number"], "email": seen.body["email"],
                    "contact_inboxes": [inbox.clone()],
                });
                list.push(contact.clone());
                Answer::json(200, json!({"payload": {"contact": contact, "contact_inbox": inbox}}))
            });
        }
        let conversations: Arc<Mutex<Vec<Value>>> = Arc::default();
        let lose_answer: Arc<Mutex<bool>> = Arc::default();
        {
            let conversations = conversations.clone();
            fake.on(&format!("GET {base}/contacts/"), move |seen, _| {
                if !authorized(seen) {
                    return unauthorized();
                }
                let list: Vec<Value> = conversations
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|c| {
                        seen.path
                            .contains(&format!("/contacts/{}/", c["contact_id"]))
                    })
                    .cloned()
                    .collect();
                Answer::json(200, json!({"payload": list}))
            });
        }
        {
            let messages = messages.clone();
            let conversations = conversations.clone();
            let next_conversation = Arc::new(Mutex::new(first_conversation));
            let lose = lose_answer.clone();
            fake.on(&format!("POST {base}/conversations"), move |seen, _| {
                if !authorized(seen) {
                    return unauthorized();
                }
                let path = seen.path.clone();
                if path.ends_with("/messages") {
                    let mut list = messages.lock().unwrap();
                    let id = 9000 + list.len() as i64;
                    list.push((id, seen.body.clone()));
                    return Answer::json(200, json!({"id": id, "content": seen.body["content"],
                        "message_type": seen.body["message_type"], "private": seen.body["private"]}));
                }
                if path.ends_with("/toggle_status") {
                    return Answer::json(200, json!({"meta": {}, "payload": {"success": true,
                        "current_status": seen.body["status"]}}));
                }
                let mut next = next_conversation.lock().unwrap();
                let id = *next;
                *next += 1;
                let conversation = json!({"id": id, "account_id": ACCOUNT, "inbox_id": INBOX,
                    "status": "open", "contact_id": seen.body["contact_id"],
                    "additional_attributes": seen.body["additional_attributes"]});
                conversations.lock().unwrap().push(conversation.clone());
                // Told to: created, but the answer is lost (a 502 from a proxy).
                if std::mem::take(&mut *lose.lock().unwrap()) {
                    return Answer::json(502, json!({}));
                }
                Answer::json(200, conversation)
            });
        }
        let files = tempfile::tempdir().unwrap();
        let token = files.path().join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let secret = files.path().join("secret");
        std::fs::write(&secret, SECRET).unwrap();
        Chatwoot {
            fake,
            contacts,
            messages,
            conversations,
            lose_answer,
            token_ref: format!("file:{}", token.display()),
            secret_ref: format!("file:{}", secret.display()),
            _files: files,
        }
    }

    pub fn contacts(&self) -> usize {
        self.contacts.lock().unwrap().len()
    }

    pub fn messages(&self) -> Vec<(i64, Value)> {
        self.messages.lock().unwrap().clone()
    }

    /// Conversations that exist in the fake.
    pub fn conversations(&self) -> usize {
        self.conversations.lock().unwrap().len()
    }

    pub fn conversations_created(&self) -> Vec<Seen> {
        self.fake
            .seen(&format!("POST /api/v1/accounts/{ACCOUNT}/conversations"))
            .into_iter()
            .filter(|s| s.path == format!("/api/v1/accounts/{ACCOUNT}/conversations"))
            .collect()
    }

    /// Polls until `check` holds (30 s).
    pub async fn wait(&self, what: &str, check: impl Fn(&Self) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !check(self) {
            assert!(
                std::time::Instant::now() < deadline,
                "Chatwoot never saw {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub(crate) async fn configure(app: &TestApp, chatwoot: &Chatwoot) {
    let response = put_config(
        app,
        json!({"base_url": chatwoot.fake.url, "account_id": ACCOUNT, "inbox_id": INBOX,
               "api_access_token": chatwoot.token_ref, "webhook_secret": chatwoot.secret_ref}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn put_config(app: &TestApp, body: Value) -> reqwest::Response {
    app.http
        .put(format!("{}/v1/tenants/demo/chatwoot", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts a webhook to the demo tenant, signed with `secret` (`None`: unsigned) at `age`
/// seconds ago.
async fn webhook_raw(
    app: &TestApp,
    body: Vec<u8>,
    secret: Option<&str>,
    age: i64,
) -> (StatusCode, Value) {
    let ts = chrono::Utc::now().timestamp() - age;
    let mut request = app
        .http
        .post(format!("{}/v1/webhooks/chatwoot/demo", app.address))
        .header("content-type", "application/json");
    if let Some(secret) = secret {
        request = request
            .header("x-chatwoot-signature", sign(secret, ts, &body))
            .header("x-chatwoot-timestamp", ts.to_string())
            .header("x-chatwoot-delivery", uuid::Uuid::new_v4().to_string());
    }
    let response = request.body(body).send().await.unwrap();
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

pub(crate) async fn webhook(app: &TestApp, event: Value) -> Value {
    let (status, body) = webhook_raw(app, event.to_string().into_bytes(), Some(SECRET), 0).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// `message_created` as Chatwoot sends it.
pub(crate) fn message_created(
    id: i64,
    conversation: i64,
    message_type: &str,
    private: bool,
    sender_type: &str,
    content: &str,
) -> Value {
    json!({
        "event": "message_created",
        "id": id,
        "content": content,
        "content_type": "text",
        "created_at": "2026-12-02T05:00:00.000Z",
        "message_type": message_type,
        "private": private,
        "source_id": null,
        "sender": {"id": 1, "name": "Agent Smith", "type": sender_type},
        "account": {"id": ACCOUNT, "name": "Demo"},
        "inbox": {"id": INBOX, "name": "ZEngine"},
        "conversation": {"id": conversation, "inbox_id": INBOX, "status": "open",
                          "additional_attributes": {}, "can_reply": true},
    })
}

/// `conversation_status_changed` (the payload is the conversation).
pub(crate) fn resolved(conversation: i64) -> Value {
    json!({
        "event": "conversation_status_changed",
        "id": conversation,
        "status": "resolved",
        "inbox_id": INBOX,
        "account_id": ACCOUNT,
        "meta": {"sender": {"id": 100, "type": "contact"}},
        "changed_attributes": [{"status": {"previous_value": "open", "current_value": "resolved"}}],
    })
}

pub(crate) async fn publish_desk_flow(app: &TestApp) {
    publish(app, "desk", graph(json!([
        {"id": "q", "type": "question", "text": "¿Qué pides?", "save_as": "item", "next": "h"},
        {"id": "h", "type": "handoff", "text": "Te paso con un asesor.", "queue": "ventas", "next": "back"},
        {"id": "back", "type": "end", "text": "De vuelta con el bot."}
    ]))).await;
}

fn texts(entries: &[Value]) -> Vec<String> {
    entries.iter().map(|e| e.to_string()).collect()
}

/// The whole round trip on webchat: handoff mirrored, a customer message forwarded, an agent
/// reply delivered (once, however often the webhook comes), echoes/notes/incoming ignored,
/// resolve → back to the bot. Returns the conversation's workflow id.
pub(crate) async fn round_trip(
    app: &TestApp,
    chatwoot: &Chatwoot,
    first_conversation: i64,
) -> String {
    configure(app, chatwoot).await;
    publish_desk_flow(app).await;
    let s = session();
    chat(app, &s, "desk", "hola").await;
    let handed = chat(app, &s, "desk", "pizza grande").await;
    assert_eq!(handed["mode"], "AGENT_HANDOFF", "{handed}");

    // Mirrored: one contact, one conversation (with the contact inbox's source_id), then the
    // transcript and the handoff note as private notes.
    chatwoot
        .wait("the transcript and the note", |c| c.messages().len() >= 2)
        .await;
    assert_eq!(chatwoot.contacts(), 1);
    let created = chatwoot.conversations_created();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].body["source_id"], "src-100");
    assert_eq!(created[0].body["inbox_id"], INBOX);
    let contact = &chatwoot
        .fake
        .seen(&format!("POST /api/v1/accounts/{ACCOUNT}/contacts"))[0];
    assert_eq!(contact.body["identifier"], format!("zengine:webchat:{s}"));
    let messages = chatwoot.messages();
    let transcript = messages[0].1["content"].as_str().unwrap();
    assert!(
        transcript.contains("Customer: pizza grande"),
        "{transcript}"
    );
    assert!(transcript.contains("Bot: ¿Qué pides?"), "{transcript}");
    assert_eq!(messages[0].1["private"], true);
    let note = messages[1].1["content"].as_str().unwrap();
    assert!(note.contains("`h`") && note.contains("ventas"), "{note}");
    assert_eq!(messages[1].1["private"], true);
    assert!(chatwoot.fake.seen("").iter().all(authorized));

    // A customer message while handed off: the bot is silent, Chatwoot gets it as incoming.
    let waiting = chat(app, &s, "desk", "¿hay alguien?").await;
    assert_eq!(waiting["replies"], json!([]));
    chatwoot
        .wait("the customer message", |c| c.messages().len() >= 3)
        .await;
    let (forwarded_id, forwarded) = chatwoot.messages()[2].clone();
    assert_eq!(forwarded["message_type"], "incoming");
    assert_eq!(forwarded["content"], "¿hay alguien?");
    assert_eq!(forwarded["private"], false);

    let conversation = first_conversation;
    let before = app.outbox(&s, 0).await["messages"]
        .as_array()
        .unwrap()
        .len();
    // Ignored: Chatwoot's webhook about the customer message, a private note, our own echo.
    let incoming = message_created(
        forwarded_id,
        conversation,
        "incoming",
        false,
        "contact",
        "¿hay alguien?",
    );
    assert_eq!(webhook(app, incoming).await["result"], "ignored");
    let note = message_created(7001, conversation, "outgoing", true, "user", "nota interna");
    assert_eq!(webhook(app, note).await["reason"], "private note");
    let echo = message_created(
        forwarded_id,
        conversation,
        "outgoing",
        false,
        "user",
        "¿hay alguien?",
    );
    assert_eq!(webhook(app, echo).await["reason"], "our own message");
    // The agent's reply, delivered 10 times: one message to the customer.
    let reply = message_created(
        7002,
        conversation,
        "outgoing",
        false,
        "user",
        "Hola, soy Ana. ¿En qué te ayudo?",
    );
    let mut results = Vec::new();
    for _ in 0..10 {
        results.push(webhook(app, reply.clone()).await["result"].clone());
    }
    assert_eq!(results[0], "delivered");
    assert!(results[1..].iter().all(|r| r == "duplicate"), "{results:?}");
    let outbox = app.wait_outbox(&s, 0, before + 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outbox_now = app.outbox(&s, 0).await["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(outbox_now.len(), outbox.len());
    let agent: Vec<_> = texts(&outbox_now)
        .into_iter()
        .filter(|t| t.contains("soy Ana"))
        .collect();
    assert_eq!(agent.len(), 1, "{outbox_now:?}");
    // A reply in a conversation ZEngine did not hand off is ignored.
    let stranger = message_created(7003, 999_999, "outgoing", false, "user", "hola");
    assert_eq!(webhook(app, stranger).await["result"], "ignored");

    // Resolved in Chatwoot: back to the bot (once), and the bot answers again.
    assert_eq!(
        webhook(app, resolved(conversation)).await["result"],
        "returned"
    );
    assert_eq!(
        webhook(app, resolved(conversation)).await["result"],
        "ignored"
    );
    let back = app.wait_outbox(&s, 0, outbox_now.len() + 1).await;
    assert!(
        texts(&back)
            .iter()
            .any(|t| t.contains("De vuelta con el bot.")),
        "{back:?}"
    );
    let again = chat(app, &s, "desk", "hola otra vez").await;
    assert_eq!(again["mode"], "BOT");
    assert!(!again["replies"].as_array().unwrap().is_empty(), "{again}");
    format!("demo/conversation/webchat/{s}")
}

#[tokio::test]
async fn chatwoot_handoff_round_trip_on_webchat() {
    let app = spawn_app().await;
    let chatwoot = Chatwoot::start(501).await;
    round_trip(&app, &chatwoot, 501).await;
    app.shutdown().await;
}

#[tokio::test]
async fn chatwoot_down_during_handoff_is_retried_without_duplicates() {
    let app = spawn_app().await;
    let chatwoot = Chatwoot::start(601).await;
    configure(&app, &chatwoot).await;
    publish_desk_flow(&app).await;
    let base = format!("/api/v1/accounts/{ACCOUNT}");
    // Chatwoot answers 503 to the first searches, and to the first message post (after the
    // contact and the conversation exist): the retries create neither twice.
    chatwoot.fake.script(
        &format!("GET {base}/contacts/search"),
        [Answer::json(503, json!({})), Answer::json(502, json!({}))],
    );
    chatwoot.fake.script(
        &format!("POST {base}/conversations/"),
        [Answer::json(500, json!({"error": "boom"}))],
    );
    // And the first conversation create succeeds in Chatwoot but its answer is lost.
    *chatwoot.lose_answer.lock().unwrap() = true;
    let s = session();
    chat(&app, &s, "desk", "hola").await;
    let handed = chat(&app, &s, "desk", "pizza").await;
    assert_eq!(handed["mode"], "AGENT_HANDOFF");
    chatwoot
        .wait("the note after the retries", |c| c.messages().len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(chatwoot.contacts(), 1);
    assert_eq!(
        chatwoot.conversations_created().len(),
        1,
        "no second create"
    );
    assert_eq!(chatwoot.conversations(), 1);
    assert_eq!(chatwoot.messages().len(), 2);
    assert!(
        chatwoot
            .fake
            .seen(&format!("GET {base}/contacts/search"))
            .len()
            >= 3
    );
    // Still with the agent.
    let waiting = chat(&app, &s, "desk", "¿sigues ahí?").await;
    assert_eq!(waiting["mode"], "AGENT_HANDOFF");
    // The console's handoff list links the Chatwoot conversation.
    let handoffs: Value = app
        .http
        .get(format!("{}/v1/conversations/handoffs", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-tenant-id", "demo")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mine = handoffs["handoffs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["workflow_id"] == format!("demo/conversation/webchat/{s}"))
        .unwrap_or_else(|| panic!("{handoffs}"))
        .clone();
    assert_eq!(
        mine["agent_desk_url"],
        format!(
            "{}/app/accounts/{ACCOUNT}/conversations/601",
            chatwoot.fake.url
        )
    );

    // An operator returns it to the bot outside Chatwoot: the Chatwoot conversation is resolved.
    assert_eq!(
        app.return_to_bot(&s, Some(ADMIN_TOKEN)).await.status(),
        StatusCode::OK
    );
    chatwoot
        .wait("toggle_status", |c| {
            !c.fake
                .seen(&format!("POST {base}/conversations/601/toggle_status"))
                .is_empty()
        })
        .await;
    app.shutdown().await;
}

#[tokio::test]
async fn chatwoot_tenants_without_it_keep_the_plain_handoff() {
    let app = spawn_app().await;
    let chatwoot = Chatwoot::start(701).await;
    publish_desk_flow(&app).await;
    let s = session();
    chat(&app, &s, "desk", "hola").await;
    assert_eq!(
        chat(&app, &s, "desk", "pizza").await["mode"],
        "AGENT_HANDOFF"
    );
    assert_eq!(chat(&app, &s, "desk", "¿hola?").await["replies"], json!([]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(chatwoot.fake.seen("").is_empty());
    // Its webhook does not exist.
    let (status, _) =
        webhook_raw(&app, resolved(1).to_string().into_bytes(), Some(SECRET), 0).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.return_to_bot(&s, Some(ADMIN_TOKEN)).await.status(),
        StatusCode::OK
    );
    app.shutdown().await;
}

#[tokio::test]
async fn chatwoot_config_and_webhook_reject_bad_input() {
    let app = spawn_app().await;
    let chatwoot = Chatwoot::start(801).await;
    // Configuration: validated, secrets only as references, never shown as values.
    let good = json!({"base_url": chatwoot.fake.url, "account_id": ACCOUNT, "inbox_id": INBOX,
        "api_access_token": chatwoot.token_ref, "webhook_secret": chatwoot.secret_ref});
    for (field, value, named) in [
        ("base_url", json!("not a url"), "base_url"),
        ("base_url", json!("ftp://chat.example"), "base_url"),
        ("inbox_id", Value::Null, "inbox_id"),
        ("account_id", json!(0), "account_id"),
        (
            "api_access_token",
            json!("plain-token-value"),
            "api_access_token",
        ),
        ("webhook_secret", Value::Null, "webhook_secret"),
    ] {
        let mut body = good.clone();
        body[field] = value;
        let response = put_config(&app, body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}"
        );
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"]["message"].as_str().unwrap().contains(named),
            "{error}"
        );
    }
    let unauthenticated = app
        .http
        .put(format!("{}/v1/tenants/demo/chatwoot", app.address))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    let malformed = app
        .http
        .put(format!("{}/v1/tenants/demo/chatwoot", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    configure(&app, &chatwoot).await;
    let shown: Value = app
        .http
        .get(format!("{}/v1/tenants/demo/chatwoot", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["api_access_token"], chatwoot.token_ref);
    assert!(!shown.to_string().contains(TOKEN) && !shown.to_string().contains(SECRET));

    // Webhooks: nothing unsigned, badly signed, stale, from another secret, malformed or huge.
    publish_desk_flow(&app).await;
    let s = session();
    chat(&app, &s, "desk", "hola").await;
    chat(&app, &s, "desk", "pizza").await;
    chatwoot
        .wait("the handoff", |c| c.messages().len() >= 2)
        .await;
    let reply = message_created(8001, 801, "outgoing", false, "user", "respuesta").to_string();
    let body = reply.clone().into_bytes();
    for (secret, age, expected) in [
        (None, 0, StatusCode::UNAUTHORIZED),
        (Some("wrong-secret"), 0, StatusCode::UNAUTHORIZED),
        // Another tenant's secret (a valid one, just not demo's).
        (Some("other-tenant-secret"), 0, StatusCode::UNAUTHORIZED),
        (Some(SECRET), 301, StatusCode::UNAUTHORIZED),
        (Some(SECRET), -301, StatusCode::UNAUTHORIZED),
    ] {
        let (status, answer) = webhook_raw(&app, body.clone(), secret, age).await;
        assert_eq!(status, expected, "{secret:?} {age}: {answer}");
    }
    // A second tenant with its own Chatwoot and secret: each secret opens only its own tenant.
    let created = app
        .http
        .post(format!("{}/v1/tenants", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"tenant_id": "cw-other", "name": "Other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let other_secret = chatwoot._files.path().join("other-secret");
    std::fs::write(&other_secret, "other-tenant-secret").unwrap();
    let other = app
        .http
        .put(format!("{}/v1/tenants/cw-other/chatwoot", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &json!({"base_url": chatwoot.fake.url, "account_id": ACCOUNT, "inbox_id": INBOX,
                      "api_access_token": chatwoot.token_ref,
                      "webhook_secret": format!("file:{}", other_secret.display())}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    let post_to = |tenant: &'static str, secret: &'static str| {
        let (app, body) = (&app, body.clone());
        async move {
            let ts = chrono::Utc::now().timestamp();
            app.http
                .post(format!("{}/v1/webhooks/chatwoot/{tenant}", app.address))
                .header("content-type", "application/json")
                .header("x-chatwoot-signature", sign(secret, ts, &body))
                .header("x-chatwoot-timestamp", ts.to_string())
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        post_to("cw-other", SECRET).await,
        StatusCode::UNAUTHORIZED,
        "demo's secret must not open another tenant's webhook"
    );
    // Its own secret is accepted (and ignored: that tenant has no such conversation).
    assert_eq!(
        post_to("cw-other", "other-tenant-secret").await,
        StatusCode::OK
    );
    // A tampered body with the original signature.
    let ts = chrono::Utc::now().timestamp();
    let tampered = app
        .http
        .post(format!("{}/v1/webhooks/chatwoot/demo", app.address))
        .header("x-chatwoot-signature", sign(SECRET, ts, &body))
        .header("x-chatwoot-timestamp", ts.to_string())
        .body(reply.replace("respuesta", "otra cosa"))
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = webhook_raw(&app, b"{not json".to_vec(), Some(SECRET), 0).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = webhook_raw(&app, b"[1,2]".to_vec(), Some(SECRET), 0).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let huge = format!(
        "{{\"event\":\"x\",\"pad\":\"{}\"}}",
        "a".repeat(1024 * 1024 + 10)
    );
    let (status, _) = webhook_raw(&app, huge.into_bytes(), Some(SECRET), 0).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let unknown = app
        .http
        .post(format!("{}/v1/webhooks/chatwoot/nobody", app.address))
        .body(reply.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    // None of it reached the customer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outbox = app.outbox(&s, 0).await;
    assert!(!outbox.to_string().contains("respuesta"), "{outbox}");
    // The properly signed one does.
    assert_eq!(
        webhook(&app, serde_json::from_str(&reply).unwrap()).await["result"],
        "delivered"
    );
    let delivered = app.wait_outbox(&s, 0, 1).await.len();
    // A suspended tenant's webhook is answered 2xx and not processed.
    let suspend = app
        .http
        .post(format!("{}/v1/tenants/demo/suspend", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(suspend.status(), StatusCode::OK);
    let later = message_created(8002, 801, "outgoing", false, "user", "¿sigues?");
    assert_eq!(webhook(&app, later).await["reason"], "tenant suspended");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.outbox(&s, 0).await["messages"]
            .as_array()
            .unwrap()
            .len(),
        delivered
    );
    app.shutdown().await;
}

#[tokio::test]
async fn chatwoot_agent_replies_reach_whatsapp_customers_through_the_graph_api() {
    use crate::whatsapp::{fake_graph, post_webhook, sign, text_webhook, use_fake, wait_sends};
    use zengine_storage::seed::DEMO_WHATSAPP_PHONE_NUMBER_ID;
    let app = spawn_app().await;
    let (graph, sends) = fake_graph().await;
    use_fake(&app, &graph, None).await;
    let chatwoot = Chatwoot::start(1001).await;
    configure(&app, &chatwoot).await;
    publish_desk_flow(&app).await;
    // WhatsApp conversations run the tenant's main flow: make it the desk flow.
    let demo = zengine_domain::TenantId::parse("demo").unwrap();
    let db = &app.database.as_ref().unwrap().db;
    db.tenants().upsert(&demo, "Demo", "desk").await.unwrap();
    let phone = format!("519{:08}", uuid::Uuid::new_v4().as_u128() % 100_000_000);
    let say = |n: usize, text: &str| {
        text_webhook(
            DEMO_WHATSAPP_PHONE_NUMBER_ID,
            &phone,
            &format!("wamid.cw-{phone}-{n}"),
            text,
        )
    };
    for (n, text) in ["hola", "pizza"].iter().enumerate() {
        let body = say(n, text);
        assert_eq!(
            post_webhook(&app, &body, Some(sign(&body))).await.status(),
            StatusCode::OK
        );
        wait_sends(&sends, n + 1).await;
    }
    chatwoot
        .wait("the handoff", |c| c.messages().len() >= 2)
        .await;
    let contact = &chatwoot
        .fake
        .seen(&format!("POST /api/v1/accounts/{ACCOUNT}/contacts"))[0];
    assert_eq!(contact.body["phone_number"], format!("+{phone}"));
    assert_eq!(
        contact.body["identifier"],
        format!("zengine:whatsapp:{phone}")
    );
    // While handed off the customer's message goes to Chatwoot, nothing to the customer.
    let body = say(2, "¿me atienden?");
    post_webhook(&app, &body, Some(sign(&body))).await;
    chatwoot
        .wait("the customer message", |c| c.messages().len() >= 3)
        .await;
    assert_eq!(chatwoot.messages()[2].1["content"], "¿me atienden?");
    assert_eq!(sends.lock().unwrap().seen().len(), 2);

    // The agent's reply goes out through the Graph API, once.
    let reply = message_created(
        7100,
        1001,
        "outgoing",
        false,
        "user",
        "Hola, soy Ana del local.",
    );
    for _ in 0..3 {
        webhook(&app, reply.clone()).await;
    }
    let sent = wait_sends(&sends, 3).await;
    assert_eq!(sent[2].body["to"], phone);
    assert_eq!(sent[2].body["text"]["body"], "Hola, soy Ana del local.");
    // Resolved: the bot speaks again, on WhatsApp.
    assert_eq!(webhook(&app, resolved(1001)).await["result"], "returned");
    let sent = wait_sends(&sends, 4).await;
    assert_eq!(sent[3].body["text"]["body"], "De vuelta con el bot.");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(sends.lock().unwrap().seen().len(), 4);
    app.shutdown().await;
}
