//! Order status notifications end to end: `POST /v1/orders/{id}/status` moves the order
//! workflow, which tells the customer through the tenant's channel — SMS through SNS or
//! templated e-mail through SES, both on moto — exactly once per change, in the customer's
//! language and the tenant's template.

use std::time::Duration;

use serde_json::{Value, json};
use temporalio_client::WorkflowGetResultOptions;
use zengine_domain::TenantId;
use zengine_storage::{NotificationSettings, PaymentSettings};
use zengine_workers::testing::moto_server;
use zengine_workflows::OrderWorkflow;

use crate::assistance::{fresh_number, sms_to, wait_sms};
use crate::channels::{add_account, create_tenant, file_secret};
use crate::email::{emails_to, fresh_address, rendered, ses_setup, wait_emails};
use crate::helpers::{ADMIN_TOKEN, TestApp, spawn_app};

async fn call(app: &TestApp, tenant: &str, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}{path}", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-tenant-id", tenant)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or_default(),
    )
}

fn aws(endpoint: &str) -> Value {
    let creds = file_secret("testing");
    json!({"region": "us-east-1", "endpoint_url": endpoint,
           "access_key_id": creds, "secret_access_key": creds, "timeout_ms": 3000})
}

async fn new_order(app: &TestApp, tenant: &str, customer: Value) -> (String, i64) {
    let (status, created) = call(
        app,
        tenant,
        "/v1/orders",
        json!({"client_order_key": uuid::Uuid::new_v4().to_string(), "customer": customer,
               "type": "pickup", "items": [{"name": "Lomo saltado", "quantity": 1, "unit_price": "28.00"}]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    (
        created["order_id"].as_str().unwrap().to_owned(),
        created["order_number"].as_i64().unwrap(),
    )
}

async fn move_to(app: &TestApp, tenant: &str, order_id: &str, status: &str) {
    let (code, body) = call(
        app,
        tenant,
        &format!("/v1/orders/{order_id}/status"),
        json!({"status": status}),
    )
    .await;
    assert_eq!(code, 200, "{status}: {body}");
}

/// Waits until the order workflow closed (every notice handled).
async fn closed(app: &TestApp, tenant: &TenantId, order_id: &str) -> String {
    let id = zengine_domain::workflow_ids::order(tenant, order_id);
    tokio::time::timeout(
        Duration::from_secs(60),
        app.temporal
            .get_workflow_handle::<OrderWorkflow>(&id)
            .get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("the order workflow closes")
    .unwrap();
    id
}

#[tokio::test]
async fn each_status_change_is_texted_once_in_the_customers_language() {
    let app = spawn_app().await;
    let tenant = create_tenant(&app, "notify-sms").await;
    add_account(
        &app,
        &tenant,
        "sns-sms",
        "notify-sms",
        json!({"aws": aws(moto_server()), "sender_id": "ZEngine"}),
    )
    .await;
    let phone = fresh_number();
    let (order_id, n) = new_order(
        &app,
        "notify-sms",
        json!({"phone": phone, "name": "Ann", "language": "en"}),
    )
    .await;
    for status in ["PAID", "PREPARING", "DELIVERED"] {
        move_to(&app, "notify-sms", &order_id, status).await;
    }
    let id = closed(&app, &tenant, &order_id).await;
    let texts = wait_sms(&phone, 3).await;
    assert_eq!(
        texts,
        vec![
            format!("We received the payment for your order #{n}."),
            format!("We are preparing your order #{n}."),
            format!("Your order #{n} was delivered. Thank you!"),
        ]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sms_to(&phone).await.len(), 3, "exactly one SMS per change");
    let db = &app.database.as_ref().unwrap().db;
    let sent = db
        .channels()
        .outbound(&tenant, &format!("{id}/notify-3"))
        .await
        .unwrap()
        .expect("the third change's message is in the outbound log");
    assert_eq!(sent.state, "SENT");

    // A customer without a language gets the tenant's (Spanish by default); a tenant that
    // turned notifications off sends nothing.
    let other = fresh_number();
    let (order_id, n) = new_order(&app, "notify-sms", json!({"phone": other})).await;
    move_to(&app, "notify-sms", &order_id, "CANCELLED").await;
    closed(&app, &tenant, &order_id).await;
    assert_eq!(
        wait_sms(&other, 1).await,
        vec![format!("Tu pedido #{n} fue cancelado.")]
    );
    db.payments()
        .set_settings(
            &tenant,
            &PaymentSettings {
                notifications: NotificationSettings {
                    enabled: false,
                    ..NotificationSettings::default()
                },
                ..PaymentSettings::default()
            },
        )
        .await
        .unwrap();
    let quiet = fresh_number();
    let (order_id, _) = new_order(&app, "notify-sms", json!({"phone": quiet})).await;
    move_to(&app, "notify-sms", &order_id, "CANCELLED").await;
    closed(&app, &tenant, &order_id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sms_to(&quiet).await.is_empty());
    crate::histories::record(&app, &id, "order__status_notified").await;
    app.shutdown().await;
}

#[tokio::test]
async fn email_customers_get_the_tenants_ses_template_in_their_language() {
    let app = spawn_app().await;
    let tenant = create_tenant(&app, "notify-mail").await;
    let from = format!(
        "pedidos-{}@shop.pe",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (es, en, text) = (
        format!("status-es-{suffix}"),
        format!("status-en-{suffix}"),
        format!("text-{suffix}"),
    );
    ses_setup(
        &from,
        &[
            (&es, "Pedido #{{p1}}", "Hola {{p3}}: {{text}}"),
            (&en, "Order #{{p1}}", "Hi {{p3}}: {{text}} ({{p2}})"),
            (&text, "Aviso", "{{text}}"),
        ],
    )
    .await;
    // The tenant also has SMS: the customer chose e-mail.
    add_account(
        &app,
        &tenant,
        "sns-sms",
        "notify-mail",
        json!({"aws": aws(moto_server())}),
    )
    .await;
    add_account(
        &app,
        &tenant,
        "ses-email",
        "notify-mail",
        json!({"aws": aws(moto_server()), "from": from, "text_template": text,
               "templates": {"order_status": {"es": es, "en": en}}}),
    )
    .await;
    let db = &app.database.as_ref().unwrap().db;
    db.payments()
        .set_settings(
            &tenant,
            &PaymentSettings {
                notifications: NotificationSettings {
                    template: Some("order_status".into()),
                    ..NotificationSettings::default()
                },
                ..PaymentSettings::default()
            },
        )
        .await
        .unwrap();
    let (phone, email) = (fresh_number(), fresh_address());
    let (order_id, n) = new_order(
        &app,
        "notify-mail",
        json!({"phone": phone, "name": "Ann", "email": email, "language": "en_US", "channel": "email"}),
    )
    .await;
    move_to(&app, "notify-mail", &order_id, "PAID").await;
    move_to(&app, "notify-mail", &order_id, "CANCELLED").await;
    closed(&app, &tenant, &order_id).await;
    let emails = wait_emails(&email, 2).await;
    assert!(
        emails
            .iter()
            .all(|e| e["template"] == en.as_str() && e["source"] == from.as_str())
    );
    let last = rendered(&emails[1]).await;
    assert!(last.contains(&format!("Order #{n}")), "{last}");
    assert!(
        last.contains(&format!(
            "Hi Ann: Your order #{n} was cancelled. (CANCELLED)"
        )),
        "{last}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(emails_to(&email).await.len(), 2, "one e-mail per change");
    assert!(sms_to(&phone).await.is_empty(), "not on the other channel");

    // Bad contact details are refused with the field named.
    for (customer, field) in [
        (
            json!({"phone": "+51911000111", "email": "nope"}),
            "customer.email",
        ),
        (
            json!({"phone": "+51911000111", "channel": "fax"}),
            "customer.channel",
        ),
        (
            json!({"phone": "+51911000111", "language": "e"}),
            "customer.language",
        ),
    ] {
        let (code, body) = call(
            &app,
            "notify-mail",
            "/v1/orders",
            json!({"client_order_key": "bad", "customer": customer, "type": "pickup",
                   "items": [{"name": "x", "quantity": 1, "unit_price": "1.00"}]}),
        )
        .await;
        assert_eq!(code, 422, "{body}");
        assert!(body.to_string().contains(field), "{field}: {body}");
    }
    app.shutdown().await;
}
