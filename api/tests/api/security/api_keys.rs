//! API keys reach the partner endpoints (orders, payments, tracking, routes) and nothing an
//! operator uses: the attack was an operator-role key reading dead letters (recipients' phone
//! numbers, message payloads) through `/v1/channels/dead-letters`, which `/v1/ops/dead-letters`
//! refused.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::call;
use crate::helpers::{ADMIN_TOKEN, error_code, spawn_app};

/// A fresh operator-role key of the demo tenant.
async fn operator_key(app: &crate::helpers::TestApp) -> String {
    let created: Value = call(
        app,
        Method::POST,
        "/v1/tenants/demo/api-keys",
        Some(ADMIN_TOKEN),
        None,
        Some(json!({"name": "partner", "role": "operator", "burst": 1000})),
    )
    .await
    .json()
    .await
    .unwrap();
    created["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_api_key_is_refused_by_every_operator_endpoint_and_accepted_by_partner_ones() {
    let app = spawn_app().await;
    let key = operator_key(&app).await;

    // Everything an operator uses, sent with the key as an attacker holding a leaked partner
    // key would: each one 403, whichever way the key travels.
    let operator_tools: &[(Method, &str, Option<Value>)] = &[
        (Method::GET, "/v1/channels/dead-letters", None),
        (
            Method::POST,
            "/v1/channels/dead-letters/any-message/redrive",
            None,
        ),
        (Method::GET, "/v1/events", None),
        (Method::GET, "/v1/channels/health", None),
        (Method::POST, "/v1/channels/health/check", None),
        (
            Method::POST,
            "/v1/channels/amazon-connect/contacts",
            Some(json!({"contact_id": "c-1", "participant_token": "t"})),
        ),
        (Method::GET, "/v1/channels/360dialog/templates", None),
        (Method::GET, "/v1/conversations/handoffs", None),
        (Method::GET, "/v1/reports/orders", None),
        (Method::GET, "/v1/ops/workflows", None),
        (Method::GET, "/v1/ops/dead-letters", None),
        (Method::GET, "/v1/assistances/events/any", None),
        (Method::GET, "/v1/masters/countries", None),
        (
            Method::POST,
            "/v1/payments/any/review",
            Some(json!({"decision": "approve"})),
        ),
        (Method::GET, "/v1/tenants/demo/channels", None),
        (Method::GET, "/v1/tenants/demo/api-keys", None),
        (Method::POST, "/codec/decode", Some(json!({"payloads": []}))),
    ];
    for (method, path, body) in operator_tools {
        let bearer = call(&app, method.clone(), path, Some(&key), None, body.clone()).await;
        assert_eq!(
            error_code(bearer, StatusCode::FORBIDDEN).await,
            "forbidden",
            "{method} {path} with the key as bearer"
        );
        let mut request = app
            .http
            .request(method.clone(), format!("{}{path}", app.address))
            .header("x-api-key", &key);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let header = request.send().await.unwrap();
        assert_eq!(
            error_code(header, StatusCode::FORBIDDEN).await,
            "forbidden",
            "{method} {path} with x-api-key"
        );
    }

    // The partner endpoints still take it.
    for path in [
        "/v1/orders",
        "/v1/payments?status=MANUAL_REVIEW",
        "/v1/drivers/d-1/routes",
    ] {
        let response = call(&app, Method::GET, path, Some(&key), None, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}
