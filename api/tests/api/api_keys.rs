//! Partner API keys: created once, listed without secrets, revoked, rate limited per key, and
//! confined to their tenant.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::auth::{add_tenant, call};
use crate::helpers::{ADMIN_TOKEN, error_code, spawn_app};

#[tokio::test]
async fn api_keys_are_shown_once_rate_limited_per_key_and_revocable() {
    let app = spawn_app().await;
    add_tenant(&app, "acme").await;
    let keys = "/v1/tenants/demo/api-keys";
    let create = |body: Value| {
        let app = &app;
        async move {
            call(
                app,
                reqwest::Method::POST,
                keys,
                Some(ADMIN_TOKEN),
                None,
                Some(body),
            )
            .await
        }
    };

    // Malformed, invalid and oversized requests create nothing.
    for (body, status, code) in [
        (
            json!({"name": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"name": "x", "role": "admin"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"name": "x", "rate_per_minute": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"name": "x", "burst": 1_000_000}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"name": "x", "colour": "red"}),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            json!({"name": "x".repeat(70 * 1024)}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ] {
        assert_eq!(
            error_code(create(body.clone()).await, status).await,
            code,
            "{body:.80}"
        );
    }
    let anonymous = call(
        &app,
        reqwest::Method::POST,
        keys,
        None,
        None,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(
        error_code(anonymous, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let listed: Value = call(
        &app,
        reqwest::Method::GET,
        keys,
        Some(ADMIN_TOKEN),
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(listed["api_keys"], json!([]));

    // Arrange: an operator key with a bucket of 2 refilling at 1 per second, and a viewer key.
    let response = create(json!({"name": "shop", "rate_per_minute": 60, "burst": 2})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["key_id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("zk_{key_id}_")));
    assert_eq!(created["role"], "operator");
    let viewer: Value = create(json!({"name": "reports", "role": "viewer"}))
        .await
        .json()
        .await
        .unwrap();
    let viewer_key = viewer["key"].as_str().unwrap().to_owned();

    // Listing never shows a key or its hash.
    let listed = call(
        &app,
        reqwest::Method::GET,
        keys,
        Some(ADMIN_TOKEN),
        None,
        None,
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        listed.contains(&key_id) && !listed.contains(&key[20..]),
        "{listed}"
    );
    assert!(!listed.contains("secret"), "{listed}");

    // The key works as a bearer token and as x-api-key, without x-tenant-id (the key names it).
    let orders = call(
        &app,
        reqwest::Method::GET,
        "/v1/orders",
        Some(&key),
        None,
        None,
    )
    .await;
    assert_eq!(orders.status(), StatusCode::OK);
    let by_header = app
        .http
        .get(format!("{}/v1/orders", app.address))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), StatusCode::OK);
    // The bucket is empty now: 429 with Retry-After and a JSON error, then it refills.
    let limited = call(
        &app,
        reqwest::Method::GET,
        "/v1/orders",
        Some(&key),
        None,
        None,
    )
    .await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(
        error_code(limited, StatusCode::TOO_MANY_REQUESTS).await,
        "rate_limited"
    );
    // Other keys have their own bucket.
    let other = call(
        &app,
        reqwest::Method::GET,
        "/v1/orders",
        Some(&viewer_key),
        None,
        None,
    )
    .await;
    assert_eq!(other.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let refilled = call(
        &app,
        reqwest::Method::GET,
        "/v1/orders",
        Some(&key),
        None,
        None,
    )
    .await;
    assert_eq!(refilled.status(), StatusCode::OK);

    // A viewer key cannot write; no key reaches the operator API or manages keys; a key sent
    // with another tenant's header gets 404.
    let write = call(
        &app,
        reqwest::Method::POST,
        "/v1/orders",
        Some(&viewer_key),
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(error_code(write, StatusCode::FORBIDDEN).await, "forbidden");
    let ops = call(
        &app,
        reqwest::Method::GET,
        "/v1/ops/workflows",
        Some(&viewer_key),
        None,
        None,
    )
    .await;
    assert_eq!(error_code(ops, StatusCode::FORBIDDEN).await, "forbidden");
    let manage = call(
        &app,
        reqwest::Method::GET,
        keys,
        Some(&viewer_key),
        None,
        None,
    )
    .await;
    assert_eq!(error_code(manage, StatusCode::FORBIDDEN).await, "forbidden");
    let elsewhere = call(
        &app,
        reqwest::Method::GET,
        "/v1/orders",
        Some(&viewer_key),
        Some("acme"),
        None,
    )
    .await;
    assert_eq!(
        error_code(elsewhere, StatusCode::NOT_FOUND).await,
        "unknown_tenant"
    );
    // A made-up secret for a real key id is refused like any unknown key.
    let forged = format!("zk_{key_id}_{}", "0".repeat(64));
    let response = call(
        &app,
        reqwest::Method::GET,
        "/v1/orders",
        Some(&forged),
        None,
        None,
    )
    .await;
    assert_eq!(
        error_code(response, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );

    // Another tenant's admin cannot see or revoke demo's key.
    let path = format!("/v1/tenants/acme/api-keys/{key_id}");
    let response = call(
        &app,
        reqwest::Method::DELETE,
        &path,
        Some(ADMIN_TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(
        error_code(response, StatusCode::NOT_FOUND).await,
        "not_found"
    );
    let acme: Value = call(
        &app,
        reqwest::Method::GET,
        "/v1/tenants/acme/api-keys",
        Some(ADMIN_TOKEN),
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(acme["api_keys"], json!([]));

    // Revoked: 200 once, 409 again, and the key stops working at once.
    let path = format!("{keys}/{key_id}");
    let revoked = call(
        &app,
        reqwest::Method::DELETE,
        &path,
        Some(ADMIN_TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let revoked: Value = revoked.json().await.unwrap();
    assert!(revoked["revoked_at"].is_i64(), "{revoked}");
    let again = call(
        &app,
        reqwest::Method::DELETE,
        &path,
        Some(ADMIN_TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(error_code(again, StatusCode::CONFLICT).await, "conflict");
    let response = call(
        &app,
        reqwest::Method::GET,
        "/v1/orders",
        Some(&key),
        None,
        None,
    )
    .await;
    assert_eq!(
        error_code(response, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let unknown = call(
        &app,
        reqwest::Method::DELETE,
        &format!("{keys}/nope"),
        Some(ADMIN_TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(
        error_code(unknown, StatusCode::NOT_FOUND).await,
        "not_found"
    );
    app.shutdown().await;
}
