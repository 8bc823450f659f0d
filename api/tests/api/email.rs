//! The `ses-email` outbound strategy through the channel activities on a real worker and
//! Temporal dev server, against this binary's moto server (SES v1 templates): replies become
//! templated e-mail from the tenant's sender with its templates and configuration set, an
//! unverified sender or a missing template is dead-lettered without a retry, throttling and
//! 5xx (a loopback fake speaking SES's query protocol) are retried, one `client_message_id`
//! is one e-mail, tenants do not see each other's templates, and a missing secret fails fast.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_ses::types::Template;
use serde_json::{Value, json};
use zengine_channels::aws::AwsSettings;
use zengine_channels::aws::ses::EmailSender;
use zengine_domain::{Reply, TenantId};
use zengine_workers::testing::moto_server;
use zengine_workflows::channels::RedriveOutcome;

use crate::channels::{add_account, create_tenant, file_secret};
use crate::fakes::{Answer, FakeProvider};
use crate::helpers::{TestApp, spawn_app};
use crate::sms::deliver_via;

/// A fresh address (moto's SES is shared by every test of this binary).
pub fn fresh_address() -> String {
    format!(
        "c-{}@example.pe",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A client of moto's SES.
pub async fn moto_ses() -> EmailSender {
    let creds = file_secret("testing");
    EmailSender::from_settings(&AwsSettings {
        region: "us-east-1".into(),
        endpoint_url: moto_server().into(),
        access_key_id: creds.clone(),
        secret_access_key: creds,
        ..AwsSettings::default()
    })
    .await
    .unwrap()
}

/// Verifies `from` and stores `(name, subject, text)` templates in moto's SES.
pub async fn ses_setup(from: &str, templates: &[(&str, &str, &str)]) {
    let ses = moto_ses().await;
    ses.client()
        .verify_email_identity()
        .email_address(from)
        .send()
        .await
        .unwrap();
    for (name, subject, text) in templates {
        ses.client()
            .create_template()
            .template(
                Template::builder()
                    .template_name(*name)
                    .subject_part(*subject)
                    .text_part(*text)
                    .html_part(format!("<p>{text}</p>"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
}

/// The e-mail moto's SES accepted for `to`, oldest first.
pub async fn emails_to(to: &str) -> Vec<Value> {
    let data: Value = reqwest::get(format!("{}/moto-api/data.json", moto_server()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    data["ses"]["TemplateMessage"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            m["destinations"]["ToAddresses"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == to))
        })
        .collect()
}

/// Waits until moto holds `count` e-mails for `to`.
pub async fn wait_emails(to: &str, count: usize) -> Vec<Value> {
    for _ in 0..150 {
        let emails = emails_to(to).await;
        if emails.len() >= count {
            return emails;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{to} did not receive {count} e-mails: {:?}",
        emails_to(to).await
    );
}

/// What SES renders for a sent message (`TestRenderTemplate` with its template and data).
pub async fn rendered(email: &Value) -> String {
    moto_ses()
        .await
        .client()
        .test_render_template()
        .template_name(email["template"].as_str().unwrap())
        .template_data(email["template_data"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .rendered_template
        .unwrap_or_default()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// A tenant with an `ses-email` account at `endpoint`; `extra` is merged into its settings.
async fn email_tenant(app: &TestApp, tenant: &str, endpoint: &str, extra: Value) -> TenantId {
    let id = create_tenant(app, tenant).await;
    let creds = file_secret("testing");
    // A request timeout well above what a loaded 2-core CI machine needs: a call that times out
    // after the fake counted it is retried, and the tests count the fake's requests exactly
    // (3 000 ms once gave a fourth request under the full suite).
    let mut settings = json!({"aws": {"region": "us-east-1", "endpoint_url": endpoint,
                   "access_key_id": creds, "secret_access_key": creds, "timeout_ms": 20000},
           "primary": true});
    for (k, v) in extra.as_object().unwrap() {
        settings[k] = v.clone();
    }
    add_account(app, &id, "ses-email", tenant, settings).await;
    id
}

async fn deliver(
    app: &TestApp,
    tenant: &TenantId,
    to: &str,
    client_message_id: &str,
    reply: Reply,
) -> RedriveOutcome {
    deliver_via(
        app,
        tenant,
        "email",
        "ses-email",
        to,
        client_message_id,
        reply,
    )
    .await
}

fn status_template(parameters: &[&str], fallback: &str) -> Reply {
    Reply::Template {
        name: "order_status".into(),
        language: "en_US".into(),
        parameters: parameters.iter().map(|p| p.to_string()).collect(),
        fallback: fallback.into(),
    }
}

#[tokio::test]
async fn replies_are_mailed_once_with_the_tenants_templates_and_tenants_do_not_mix() {
    let app = spawn_app().await;
    let (from_a, from_b) = (
        format!("{}@shop-a.pe", unique("bot")),
        format!("{}@shop-b.pe", unique("bot")),
    );
    let (text_a, status_es, status_en, text_b) = (
        unique("text-a"),
        unique("status-es"),
        unique("status-en"),
        unique("text-b"),
    );
    ses_setup(
        &from_a,
        &[
            (&text_a, "Shop A", "{{text}}"),
            (&status_es, "Pedido {{p1}}", "Su pedido {{p1}} está {{p2}}"),
            (&status_en, "Order {{p1}}", "Your order {{p1}} is {{p2}}"),
        ],
    )
    .await;
    ses_setup(&from_b, &[(&text_b, "Shop B", "B says: {{text}}")]).await;
    let a = email_tenant(
        &app,
        "mail-a",
        moto_server(),
        json!({"from": format!("Shop A <{from_a}>"), "text_template": text_a,
               "configuration_set": "shop-a-events",
               "templates": {"order_status": {"es": status_es, "en": status_en}}}),
    )
    .await;
    let b = email_tenant(
        &app,
        "mail-b",
        moto_server(),
        json!({"from": from_b, "text_template": text_b}),
    )
    .await;
    let db = &app.database.as_ref().unwrap().db;
    let to = fresh_address();

    // A text reply: the tenant's text template, from its sender.
    let sent = deliver(
        &app,
        &a,
        &to,
        "mail-1/out-1",
        Reply::text("Hola desde ZEngine"),
    )
    .await;
    assert!(sent.delivered, "{sent:?}");
    let emails = wait_emails(&to, 1).await;
    assert_eq!(emails[0]["template"], text_a.as_str());
    assert_eq!(emails[0]["source"], format!("Shop A <{from_a}>"));
    assert_eq!(
        emails[0]["id"],
        sent.provider_message_id.as_deref().unwrap()
    );
    assert!(rendered(&emails[0]).await.contains("Hola desde ZEngine"));
    let record = db
        .channels()
        .outbound(&a, "mail-1/out-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, "SENT");
    assert_eq!(record.strategy, "ses-email");

    // The same client_message_id again: nothing is sent, the first MessageId is answered.
    let again = deliver(
        &app,
        &a,
        &to,
        "mail-1/out-1",
        Reply::text("Hola desde ZEngine"),
    )
    .await;
    assert_eq!(again.provider_message_id, sent.provider_message_id);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        emails_to(&to).await.len(),
        1,
        "one e-mail per client_message_id"
    );

    // A template reply in en_US: the account's English template, parameters as p1, p2.
    let status = status_template(&["A-17", "DISPATCHED"], "Order A-17 dispatched");
    assert!(
        deliver(&app, &a, &to, "mail-1/out-2", status)
            .await
            .delivered
    );
    let emails = wait_emails(&to, 2).await;
    assert_eq!(emails[1]["template"], status_en.as_str());
    let data: Value = serde_json::from_str(emails[1]["template_data"].as_str().unwrap()).unwrap();
    assert_eq!(data["p1"], "A-17");
    assert_eq!(data["language"], "en_US");
    let text = rendered(&emails[1]).await;
    assert!(text.contains("Your order A-17 is DISPATCHED"), "{text}");

    // Tenant B sends with its own sender and template, even to the same address.
    assert!(
        deliver(&app, &b, &to, "mail-1/out-1", Reply::text("hola"))
            .await
            .delivered
    );
    let emails = wait_emails(&to, 3).await;
    assert_eq!(emails[2]["source"], from_b.as_str());
    assert_eq!(emails[2]["template"], text_b.as_str());
    assert!(rendered(&emails[2]).await.contains("B says: hola"));
    // B has no mapping for `order_status`: its fallback goes out as text.
    let fallback = status_template(&["B-1", "PAID"], "Order B-1 paid");
    assert!(
        deliver(&app, &b, &to, "mail-1/out-2", fallback)
            .await
            .delivered
    );
    let emails = wait_emails(&to, 4).await;
    assert_eq!(emails[3]["template"], text_b.as_str());
    assert!(
        rendered(&emails[3])
            .await
            .contains("B says: Order B-1 paid")
    );
    assert_eq!(db.channels().dead_letters(&a).await.unwrap().len(), 0);
    assert_eq!(db.channels().dead_letters(&b).await.unwrap().len(), 0);
    app.shutdown().await;
}

#[tokio::test]
async fn unverified_senders_missing_templates_and_bad_addresses_are_dead_lettered_at_once() {
    let app = spawn_app().await;
    let from = format!("{}@shop-c.pe", unique("bot"));
    let text = unique("text-c");
    ses_setup(&from, &[(&text, "Shop C", "{{text}}")]).await;
    let c = email_tenant(
        &app,
        "mail-c",
        moto_server(),
        json!({"from": from, "text_template": text,
               "templates": {"order_status": unique("never-created")}}),
    )
    .await;
    let db = &app.database.as_ref().unwrap().db;
    let to = fresh_address();

    let missing = deliver(&app, &c, &to, "c-1/out-1", status_template(&["1"], "x")).await;
    assert!(!missing.delivered);
    assert!(
        missing
            .error
            .as_deref()
            .unwrap()
            .contains("TemplateDoesNotExist"),
        "{missing:?}"
    );

    let bad = deliver(&app, &c, "not-an-address", "c-1/out-2", Reply::text("hola")).await;
    assert!(
        bad.error.as_deref().unwrap().contains("InvalidRecipient"),
        "{bad:?}"
    );

    // A sender moto never verified: SES's sandbox answer, MessageRejected.
    let u = email_tenant(
        &app,
        "mail-u",
        moto_server(),
        json!({"from": format!("{}@unverified.pe", unique("bot")), "text_template": text}),
    )
    .await;
    let rejected = deliver(&app, &u, &to, "u-1/out-1", Reply::text("hola")).await;
    assert!(!rejected.delivered);
    let error = rejected.error.unwrap();
    assert!(error.contains("MessageRejected"), "{error}");
    assert!(error.contains("not verified"), "{error}");

    for (tenant, count) in [(&c, 2), (&u, 1)] {
        let dead = db.channels().dead_letters(tenant).await.unwrap();
        assert_eq!(dead.len(), count, "{dead:?}");
        assert!(
            dead.iter().all(|d| d.attempts == 1),
            "permanent: not retried: {dead:?}"
        );
    }
    let failed = db.events().list(&u, "Outbound.Failed").await.unwrap();
    assert_eq!(failed[0].payload["strategy"], "ses-email");
    assert!(emails_to(&to).await.is_empty());
    app.shutdown().await;
}

/// SES's `GetSendQuota` answer (what the channel health check asks).
fn ses_quota() -> Answer {
    Answer {
        status: 200,
        body: "<GetSendQuotaResponse xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\">\
               <GetSendQuotaResult><SentLast24Hours>0.0</SentLast24Hours>\
               <Max24HourSend>200.0</Max24HourSend><MaxSendRate>1.0</MaxSendRate>\
               </GetSendQuotaResult><ResponseMetadata><RequestId>q-1</RequestId>\
               </ResponseMetadata></GetSendQuotaResponse>"
            .as_bytes()
            .to_vec(),
        headers: vec![("content-type".into(), "text/xml".into())],
    }
}

fn ses_error(status: u16, code: &str, message: &str) -> Answer {
    Answer {
        status,
        body: format!(
            "<ErrorResponse xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\"><Error>\
             <Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>r-1</RequestId></ErrorResponse>"
        )
        .into_bytes(),
        headers: vec![("content-type".into(), "text/xml".into())],
    }
}

#[tokio::test]
async fn throttling_and_5xx_are_retried_and_a_missing_secret_fails_fast() {
    let app = spawn_app().await;
    // A loopback SES: sends are throttled, then unavailable, then accepted. The channel health
    // schedule may call `GetSendQuota` on the same endpoint at any moment, so the script and
    // the counts are about `SendTemplatedEmail` alone (the fake's own script would hand a
    // health check the throttling answer meant for a send).
    let fake = FakeProvider::start().await;
    let sends_seen = Arc::new(AtomicUsize::new(0));
    let counter = sends_seen.clone();
    fake.on("POST /", move |seen, _| {
        let form = seen.body.as_str().unwrap_or_default();
        if !form.contains("Action=SendTemplatedEmail") {
            return ses_quota();
        }
        match counter.fetch_add(1, Ordering::SeqCst) + 1 {
            1 => ses_error(400, "Throttling", "Maximum sending rate exceeded."),
            2 => ses_error(503, "ServiceUnavailable", "Service Unavailable"),
            n => Answer {
                status: 200,
                body: format!(
                    "<SendTemplatedEmailResponse xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\">\
                     <SendTemplatedEmailResult><MessageId>fake-{n}</MessageId></SendTemplatedEmailResult>\
                     <ResponseMetadata><RequestId>r-{n}</RequestId></ResponseMetadata>\
                     </SendTemplatedEmailResponse>"
                )
                .into_bytes(),
                headers: vec![("content-type".into(), "text/xml".into())],
            },
        }
    });
    let sends = |fake: &FakeProvider| {
        fake.seen("POST /")
            .into_iter()
            .filter(|s| {
                s.body
                    .as_str()
                    .is_some_and(|f| f.contains("Action=SendTemplatedEmail"))
            })
            .collect::<Vec<_>>()
    };
    let t = email_tenant(
        &app,
        "mail-t",
        &fake.url,
        json!({"from": "bot@shop-t.pe", "text_template": "t-text",
               "configuration_set": "t-events", "reply_to": ["help@shop-t.pe"]}),
    )
    .await;
    // A health check of this account, as the schedule may send one at any moment (it once
    // landed mid-test on CI and took the throttling answer meant for the first send).
    let creds = file_secret("testing");
    let quota = EmailSender::from_settings(&AwsSettings {
        region: "us-east-1".into(),
        endpoint_url: fake.url.clone(),
        access_key_id: creds.clone(),
        secret_access_key: creds,
        ..AwsSettings::default()
    })
    .await
    .unwrap()
    .quota()
    .await;
    assert!(quota.is_ok(), "{quota:?}");
    let db = &app.database.as_ref().unwrap().db;
    let to = fresh_address();
    let outcome = deliver(&app, &t, &to, "t-1/out-1", Reply::text("hola")).await;
    assert!(outcome.delivered, "{outcome:?}");
    assert_eq!(outcome.provider_message_id.as_deref(), Some("fake-3"));
    let seen = sends(&fake);
    assert_eq!(seen.len(), 3, "throttled, unavailable, accepted");
    let form = seen[2].body.as_str().unwrap();
    for part in [
        "Action=SendTemplatedEmail",
        "Template=t-text",
        "ConfigurationSetName=t-events",
        "Source=bot%40shop-t.pe",
        "help%40shop-t.pe",
    ] {
        assert!(form.contains(part), "{part} in {form}");
    }
    let record = db
        .channels()
        .outbound(&t, "t-1/out-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.attempts, 3);
    assert_eq!(record.state, "SENT");

    // A secret reference that does not resolve: one attempt, no request, the reference named.
    let s = create_tenant(&app, "mail-s").await;
    add_account(
        &app,
        &s,
        "ses-email",
        "mail-s",
        json!({"aws": {"region": "us-east-1", "endpoint_url": fake.url,
                       "access_key_id": "env:ZENGINE_TEST_SURELY_UNSET_SES_KEY",
                       "secret_access_key": "env:ZENGINE_TEST_SURELY_UNSET_SES_KEY"},
               "from": "bot@shop-s.pe", "text_template": "s-text"}),
    )
    .await;
    let outcome = deliver(&app, &s, &to, "s-1/out-1", Reply::text("hola")).await;
    assert!(!outcome.delivered);
    let error = outcome.error.unwrap();
    assert!(
        error.contains("env:ZENGINE_TEST_SURELY_UNSET_SES_KEY"),
        "{error}"
    );
    assert_eq!(sends(&fake).len(), 3, "no request without credentials");
    let dead = db.channels().dead_letters(&s).await.unwrap();
    assert_eq!(dead.len(), 1);
    app.shutdown().await;
}
