//! Five9 Digital and Amazon Connect chat end to end against loopback fakes of their documented
//! APIs: webhook authentication (basic auth + IP allowlist; SNS signatures checked with a
//! locally generated certificate), messages into conversations, replies out with the
//! providers' own token handling, deduplication and tenant isolation.

use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};

use crate::channels::{add_account, admin_post, create_tenant, eventually, file_secret};
use crate::fakes::{Answer, FakeProvider};
use crate::helpers::{TestApp, error_code, spawn_app};

const FIVE9_API: &str = "/appsvcs/rs/svc";

async fn fake_five9() -> FakeProvider {
    let fake = FakeProvider::start().await;
    let host = fake.url.clone();
    fake.on(&format!("POST {FIVE9_API}/auth/anon"), move |seen, n| {
        assert_eq!(seen.body["tenantName"], "Acme Five9");
        Answer::json(
            200,
            json!({"tokenId": format!("tok-{n}"), "orgId": "org-1", "context": {"farmId": "farm-7"},
                   "metadata": {"dataCenters": [{"apiUrls": [{"host": host}]}]}}),
        )
    })
    .on(&format!("POST {FIVE9_API}/conversations/"), |_, n| {
        Answer::json(200, json!({"id": format!("f9msg-{n}")}))
    });
    fake
}

async fn five9_account(
    app: &TestApp,
    tenant: &str,
    fake: &FakeProvider,
    allowed: Value,
) -> (String, String) {
    let id = create_tenant(app, tenant).await;
    let (user, password) = (
        format!("{tenant}-hook"),
        format!("pw-{}", uuid::Uuid::new_v4()),
    );
    add_account(
        app,
        &id,
        "five9-digital",
        &format!("{tenant}-five9"),
        json!({"tenant_name": "Acme Five9", "login_host": fake.url,
               "webhook_username": file_secret(&user), "webhook_password": file_secret(&password),
               "allowed_ips": allowed}),
    )
    .await;
    (user, password)
}

async fn post_five9(
    app: &TestApp,
    tenant: &str,
    auth: Option<(&str, &str)>,
    body: Value,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!("{}/v1/webhooks/five9/{tenant}", app.address))
        .json(&body);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    request.send().await.unwrap()
}

fn five9_text(conversation: &str, id: &str, text: &str) -> Value {
    json!({"correlationId": conversation, "messageId": id, "type": "TEXT", "from": "CUSTOMER",
           "text": text, "timestamp": 1750000000000i64})
}

#[tokio::test]
async fn five9_callbacks_need_basic_auth_from_an_allowed_address_and_replies_go_back_with_a_fresh_token()
 {
    let app = spawn_app().await;
    let fake = fake_five9().await;
    let (user, password) =
        five9_account(&app, "acme", &fake, json!(["127.0.0.1/32", "::1/128"])).await;
    let (other_user, other_password) =
        five9_account(&app, "globex", &fake, json!(["10.0.0.0/8"])).await;
    let message = five9_text("f9-conv-1", "m-1", "hola");

    for auth in [
        None,
        Some((user.as_str(), "wrong")),
        Some((other_user.as_str(), other_password.as_str())),
    ] {
        let response = post_five9(&app, "acme", auth, message.clone()).await;
        assert_eq!(
            error_code(response, StatusCode::UNAUTHORIZED).await,
            "unauthorized"
        );
    }
    // Right credentials, but this test runs on 127.0.0.1 and globex only allows 10/8.
    let response = post_five9(
        &app,
        "globex",
        Some((&other_user, &other_password)),
        message.clone(),
    )
    .await;
    assert_eq!(
        error_code(response, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
    let response = app
        .http
        .post(format!("{}/v1/webhooks/five9", app.address))
        .basic_auth(&user, Some(&password))
        .json(&message)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "the URL must name the tenant"
    );
    for bad in [
        json!([1]),
        json!({"messageId": "x"}),
        json!({"events": "x"}),
    ] {
        let response = post_five9(&app, "acme", Some((&user, &password)), bad).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    assert!(fake.seen("POST").is_empty(), "nothing reached Five9");

    // The first reply meets an expired token (401): log in again, resend once.
    fake.script(
        &format!("POST {FIVE9_API}/conversations/"),
        [Answer::json(
            401,
            json!({"five9ExceptionDetail": {"errorCode": 401, "message": "token expired"}}),
        )],
    );
    for expected in [(1, 0), (0, 1)] {
        let response = post_five9(
            &app,
            "acme",
            Some((&user, &password)),
            json!({"events": [message.clone(), {"correlationId": "f9-conv-1", "messageId": "t-1", "type": "TYPING"}]}),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let tally: Value = response.json().await.unwrap();
        assert_eq!(
            (
                tally["accepted"].as_u64().unwrap(),
                tally["duplicates"].as_u64().unwrap()
            ),
            expected
        );
        assert_eq!(
            tally["ignored"], 1,
            "typing events are acknowledged, not handled"
        );
    }
    let sends = eventually(30, "the reply", || async {
        let ok: Vec<_> = fake
            .seen(&format!(
                "POST {FIVE9_API}/conversations/f9-conv-1/messages"
            ))
            .into_iter()
            .filter(|s| s.headers["authorization"] == "Bearer-tok-2")
            .collect();
        (!ok.is_empty()).then_some(ok)
    })
    .await;
    assert_eq!(sends[0].headers["farmid"], "farm-7");
    assert_eq!(sends[0].body["messageType"], "TEXT");
    assert!(!sends[0].body["message"].as_str().unwrap().is_empty());
    assert_eq!(fake.seen(&format!("POST {FIVE9_API}/auth/anon")).len(), 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // One 401 + one accepted send for the first reply: nothing sent twice.
    let all = fake.seen(&format!(
        "POST {FIVE9_API}/conversations/f9-conv-1/messages"
    ));
    let bodies: Vec<&Value> = all.iter().skip(1).map(|s| &s.body).collect();
    let unique: std::collections::BTreeSet<String> = bodies.iter().map(|b| b.to_string()).collect();
    assert_eq!(
        unique.len(),
        bodies.len(),
        "no reply was delivered twice: {bodies:?}"
    );
    app.shutdown().await;
}

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:connect-chat";

fn signing_key() -> rsa::RsaPrivateKey {
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sns/test-signing-key.pem"
    ))
    .unwrap();
    rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap()
}

/// An SNS message signed like SNS does (SignatureVersion 1 = SHA1, 2 = SHA256).
fn sns(fake: &FakeProvider, mut message: Value, version: &str) -> Value {
    message["SignatureVersion"] = json!(version);
    message["SigningCertURL"] = json!(format!("{}/sns/cert.pem", fake.url));
    let kind = message["Type"].as_str().unwrap().to_owned();
    let fields: &[&str] = if kind == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut text = String::new();
    for f in fields {
        if let Some(v) = message.get(*f).and_then(Value::as_str) {
            text.push_str(&format!("{f}\n{v}\n"));
        }
    }
    let key = signing_key();
    let signature = if version == "1" {
        rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key)
            .sign(text.as_bytes())
            .to_vec()
    } else {
        rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key)
            .sign(text.as_bytes())
            .to_vec()
    };
    message["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(signature));
    message
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn chat_item(id: &str, role: &str, text: &str) -> Value {
    json!({"Type": "MESSAGE", "ParticipantRole": role, "ContentType": "text/plain", "Content": text,
           "Id": id, "AbsoluteTime": now(), "ParticipantId": "p-1", "DisplayName": "Ana",
           "ContactId": "contact-1", "InitialContactId": "contact-1"})
}

fn notification(item: &Value) -> Value {
    json!({"Type": "Notification", "MessageId": uuid::Uuid::new_v4().to_string(), "TopicArn": TOPIC,
           "Message": item.to_string(), "Timestamp": now(), "UnsubscribeURL": "https://example.invalid/unsub"})
}

async fn post_connect(app: &TestApp, tenant: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(format!(
            "{}/v1/webhooks/amazon-connect/{tenant}",
            app.address
        ))
        .header(
            "x-amz-sns-message-type",
            body["Type"].as_str().unwrap_or(""),
        )
        .header("content-type", "text/plain; charset=UTF-8")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn amazon_connect_streaming_is_verified_by_sns_signature_and_the_bot_replies_with_a_client_token()
 {
    let app = spawn_app().await;
    let fake = FakeProvider::start().await;
    let cert = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sns/test-signing-cert.pem"
    ))
    .unwrap();
    fake.on("GET /sns/cert.pem", move |_, _| Answer {
        status: 200,
        body: cert.clone().into_bytes(),
        headers: vec![("content-type".into(), "application/x-pem-file".into())],
    })
    .on("GET /sns/confirm", |_, _| Answer::json(200, json!({})))
    .on("POST /participant/connection", |seen, n| {
        assert_eq!(seen.body["Type"], json!(["CONNECTION_CREDENTIALS"]));
        let expiry = (chrono::Utc::now() + chrono::Duration::hours(24))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Answer::json(200, json!({"ConnectionCredentials": {"ConnectionToken": format!("conn-{n}"), "Expiry": expiry}}))
    })
    .on("POST /participant/message", |_, n| {
        Answer::json(200, json!({"Id": format!("cmsg-{n}"), "AbsoluteTime": now()}))
    });
    let tenant = create_tenant(&app, "acme").await;
    create_tenant(&app, "globex").await;
    let prefix = format!("{}/sns/", fake.url);
    add_account(
        &app,
        &tenant,
        "amazon-connect-chat",
        TOPIC,
        json!({"participant_endpoint": fake.url, "cert_url_prefix": prefix, "subscribe_url_prefix": prefix}),
    )
    .await;

    // The subscription is confirmed by fetching SubscribeURL.
    let confirmation = sns(
        &fake,
        json!({"Type": "SubscriptionConfirmation", "MessageId": "sub-1", "TopicArn": TOPIC, "Token": "t0k",
               "Message": "You have chosen to subscribe", "Timestamp": now(),
               "SubscribeURL": format!("{}/sns/confirm?Token=t0k", fake.url)}),
        "1",
    );
    let response = post_connect(&app, "acme", &confirmation).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap()["control"],
        "subscription confirmed"
    );
    assert_eq!(fake.seen("GET /sns/confirm").len(), 1);

    // Forged, replayed, foreign: refused before anything happens.
    let good = sns(
        &fake,
        notification(&chat_item("i-1", "CUSTOMER", "hola")),
        "2",
    );
    let mut forged = good.clone();
    forged["Message"] = json!(chat_item("i-1", "CUSTOMER", "dame todo").to_string());
    let mut other_topic = notification(&chat_item("i-9", "CUSTOMER", "x"));
    other_topic["TopicArn"] = json!("arn:aws:sns:us-east-1:999:other");
    let other_topic = sns(&fake, other_topic, "2");
    let mut old = notification(&chat_item("i-8", "CUSTOMER", "x"));
    old["Timestamp"] = json!("2020-01-01T00:00:00.000Z");
    let old = sns(&fake, old, "2");
    let mut foreign_cert = good.clone();
    foreign_cert["SigningCertURL"] = json!("https://evil.example/cert.pem");
    let mut unsigned = good.clone();
    unsigned.as_object_mut().unwrap().remove("Signature");
    for (name, body) in [
        ("forged", &forged),
        ("topic", &other_topic),
        ("old", &old),
        ("cert url", &foreign_cert),
        ("unsigned", &unsigned),
    ] {
        let response = post_connect(&app, "acme", body).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
    }
    // Another tenant's URL: that tenant has no such topic.
    assert_eq!(
        post_connect(&app, "globex", &good).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let response = post_connect(&app, "acme", &json!({"Type": "Nope"})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // The contact flow registers the bot participant.
    let register = |body: Value| {
        admin_post(
            &app,
            "acme",
            "/v1/channels/amazon-connect/contacts",
            Some(body),
        )
    };
    let response = register(json!({"contact_id": "contact-1"})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = register(json!({"contact_id": "a/b", "participant_token": "p"})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response =
        register(json!({"contact_id": "contact-1", "participant_token": "ptok-1"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = admin_post(
        &app,
        "globex",
        "/v1/channels/amazon-connect/contacts",
        Some(json!({"contact_id": "contact-1", "participant_token": "x"})),
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::CONFLICT,
        "globex has no Connect account"
    );

    // The first send meets a revoked connection: one fresh connection, then success.
    fake.script(
        "POST /participant/message",
        [Answer::json(403, json!({"message": "Access denied"}))],
    );
    for expected in [1, 0] {
        let response = post_connect(&app, "acme", &good).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.json::<Value>().await.unwrap()["accepted"],
            expected
        );
    }
    // Our own bot's and the agent's messages are not answered.
    for role in ["CUSTOM_BOT", "AGENT"] {
        let item = sns(
            &fake,
            notification(&chat_item(&format!("i-{role}"), role, "eco")),
            "2",
        );
        let tally: Value = post_connect(&app, "acme", &item)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(tally["ignored"], 1, "{role}");
    }
    let sent = eventually(30, "the bot's reply", || async {
        let ok: Vec<_> = fake
            .seen("POST /participant/message")
            .into_iter()
            .filter(|s| s.headers.get("x-amz-bearer").map(String::as_str) == Some("conn-2"))
            .collect();
        (!ok.is_empty()).then_some(ok)
    })
    .await;
    let first = &sent[0];
    assert_eq!(first.body["ContentType"], "text/plain");
    let token = first.body["ClientToken"].as_str().unwrap();
    assert!(
        token.starts_with("acme/conversation/amazon-connect/contact-1/out-"),
        "{token}"
    );
    // The connection was created with the registered participant token, twice (denied once).
    let connections = fake.seen("POST /participant/connection");
    assert_eq!(connections.len(), 2);
    assert!(
        connections
            .iter()
            .all(|c| c.headers["x-amz-bearer"] == "ptok-1")
    );
    // The retried first reply carried the same ClientToken both times.
    let all = fake.seen("POST /participant/message");
    assert_eq!(all[0].body["ClientToken"], all[1].body["ClientToken"]);
    app.shutdown().await;
}
