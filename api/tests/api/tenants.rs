//! Tenant administration (`/v1/tenants…`) and suspension: the platform admin manages every
//! tenant, a tenant admin their own; every change is an audited domain event; a suspended
//! tenant's webhooks are answered but not processed and its API calls get 403.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use zengine_domain::TenantId;
use zengine_storage::testing::TestBackend;
use zengine_storage::{Audit, NewApiKey};

use crate::auth::{call, claims, hs256, hs256_options, token};
use crate::helpers::{ADMIN_TOKEN, TestApp, error_code, spawn_app_with};
use crate::whatsapp::{fake_graph, post_webhook, sign, text_webhook, use_fake};

fn platform_token() -> String {
    hs256(&claims(
        "ignored",
        "platform-admin",
        json!({"tenant_id": null, "sub": "ops@platform"}),
    ))
}

async fn json_of(response: reqwest::Response, status: StatusCode) -> Value {
    let got = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

async fn admin_lifecycle(backend: TestBackend) {
    let mut options = hs256_options();
    options.backend = backend;
    options.run_worker = false;
    let app = spawn_app_with(options).await;
    let platform = platform_token();
    let send = |method: Method, path: &'static str, bearer: Option<String>, body: Option<Value>| {
        let app = &app;
        async move { call(app, method, path, bearer.as_deref(), None, body).await }
    };

    // Unauthenticated, a tenant admin, and an API key cannot create or list tenants.
    let create = json!({"tenant_id": "acme", "name": "Acme"});
    let r = send(Method::POST, "/v1/tenants", None, Some(create.clone())).await;
    assert_eq!(
        error_code(r, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let demo_admin = token("demo", "admin");
    let r = send(
        Method::POST,
        "/v1/tenants",
        Some(demo_admin.clone()),
        Some(create.clone()),
    )
    .await;
    assert_eq!(error_code(r, StatusCode::FORBIDDEN).await, "forbidden");
    let r = send(Method::GET, "/v1/tenants", Some(demo_admin.clone()), None).await;
    assert_eq!(error_code(r, StatusCode::FORBIDDEN).await, "forbidden");

    // Bad bodies name the field; nothing is created.
    for (body, status, code) in [
        (
            json!({"tenant_id": "Not Valid!", "name": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"tenant_id": "acme", "name": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"tenant_id": "acme", "name": "A", "main_flow_id": "a b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        // The platform's own workflows run as `_system`: no tenant may take that name.
        (
            json!({"tenant_id": "_system", "name": "Platform"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        // Platform workflow ids may carry a deployment prefix (`zt-1_system/channel-health`),
        // so an id ending in `_system` would be read as the platform's and its payloads sealed
        // under the platform key instead of the tenant's own.
        (
            json!({"tenant_id": "acme_system", "name": "Looks like the platform"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"tenant_id": "acme", "name": "A", "colour": 1}),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ] {
        let r = send(
            Method::POST,
            "/v1/tenants",
            Some(platform.clone()),
            Some(body.clone()),
        )
        .await;
        assert_eq!(error_code(r, status).await, code, "{body}");
    }

    // The platform admin (JWT without a tenant) creates; a duplicate is 409.
    let created = json_of(
        send(
            Method::POST,
            "/v1/tenants",
            Some(platform.clone()),
            Some(create.clone()),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["tenant_id"], "acme");
    assert_eq!(created["status"], "active");
    assert_eq!(created["main_flow_id"], "main");
    let r = send(
        Method::POST,
        "/v1/tenants",
        Some(platform.clone()),
        Some(create.clone()),
    )
    .await;
    assert_eq!(error_code(r, StatusCode::CONFLICT).await, "conflict");

    // Listing sees every tenant (on PostgreSQL through the platform_admin policy), paged.
    let listed = json_of(
        send(Method::GET, "/v1/tenants", Some(platform.clone()), None).await,
        StatusCode::OK,
    )
    .await;
    let ids: Vec<&str> = listed["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "demo"]);
    let page = json_of(
        send(
            Method::GET,
            "/v1/tenants?limit=1",
            Some(platform.clone()),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["tenants"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_after"], "acme");
    let r = send(
        Method::GET,
        "/v1/tenants?limit=0",
        Some(platform.clone()),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A tenant admin reads and updates their own tenant; another tenant is 404; a viewer 403.
    let acme_admin = token("acme", "admin");
    let own = json_of(
        send(
            Method::GET,
            "/v1/tenants/acme",
            Some(acme_admin.clone()),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(own["name"], "Acme");
    assert_eq!(own["settings"]["payment"]["tolerance_cents"], 50);
    let r = send(
        Method::GET,
        "/v1/tenants/demo",
        Some(acme_admin.clone()),
        None,
    )
    .await;
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "unknown_tenant");
    let r = send(
        Method::GET,
        "/v1/tenants/acme",
        Some(token("acme", "viewer")),
        None,
    )
    .await;
    assert_eq!(error_code(r, StatusCode::FORBIDDEN).await, "forbidden");
    let r = send(
        Method::GET,
        "/v1/tenants/nobody",
        Some(platform.clone()),
        None,
    )
    .await;
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "unknown_tenant");
    let updated = json_of(
        send(
            Method::PATCH,
            "/v1/tenants/acme",
            Some(acme_admin.clone()),
            Some(json!({"name": "Acme SAC"})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["name"], "Acme SAC");
    let r = send(
        Method::PATCH,
        "/v1/tenants/acme",
        Some(acme_admin.clone()),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        error_code(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_field"
    );
    // Only the platform admin suspends.
    let r = send(
        Method::POST,
        "/v1/tenants/acme/suspend",
        Some(acme_admin.clone()),
        None,
    )
    .await;
    assert_eq!(error_code(r, StatusCode::FORBIDDEN).await, "forbidden");

    // Settings: field-named 422s, then a partial update that keeps the rest.
    for (body, field) in [
        (
            json!({"allowed_http_hosts": ["bad host"]}),
            "allowed_http_hosts",
        ),
        (
            json!({"cors_origins": ["https://shop.example/path"]}),
            "cors_origins",
        ),
        (
            json!({"payment": {"tolerance_cents": -1}}),
            "payment.tolerance_cents",
        ),
        (
            json!({"payment": {"retention_days": 0}}),
            "payment.retention_days",
        ),
        (
            json!({"payment": {"review_timeout_secs": 5}}),
            "payment.review_timeout_secs",
        ),
    ] {
        let r = send(
            Method::PATCH,
            "/v1/tenants/acme/settings",
            Some(acme_admin.clone()),
            Some(body.clone()),
        )
        .await;
        let error: Value = json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{field}`")),
            "{error}"
        );
    }
    let settings = json_of(
        send(
            Method::PATCH,
            "/v1/tenants/acme/settings",
            Some(acme_admin.clone()),
            Some(json!({
                "allowed_http_hosts": ["api.acme.example", "*.partners.example"],
                "cors_origins": ["https://shop.acme.example"],
                "payment": {"tolerance_cents": 100, "retention_days": 90, "review_timeout_secs": 600},
            })),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(settings["payment"]["tolerance_cents"], 100);
    assert_eq!(
        settings["payment"]["min_confidence"].as_f64().unwrap() as f32,
        0.8f32
    );
    let db = &app.database.as_ref().unwrap().db;
    let acme = TenantId::parse("acme").unwrap();
    assert_eq!(
        db.payments().settings(&acme).await.unwrap().retention_days,
        90
    );
    assert_eq!(
        db.tenants().allowed_http_hosts(&acme).await.unwrap(),
        ["api.acme.example", "*.partners.example"]
    );

    // Channels: secrets only as references, never stored or shown as values.
    let r = send(
        Method::PUT,
        "/v1/tenants/acme/channels/whatsapp-meta-cloud",
        Some(acme_admin.clone()),
        Some(json!({"account_key": "555", "settings": {"access_token": "EAAB-plain-token"}})),
    )
    .await;
    let error = json_of(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("settings.access_token")
    );
    let r = send(
        Method::PUT,
        "/v1/tenants/acme/channels/carrier-pigeon",
        Some(acme_admin.clone()),
        Some(json!({"account_key": "1"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The demo tenant's seeded WhatsApp account cannot be taken over: a tenant admin registers
    // no account keys at all (403), and the platform admin cannot move one to another tenant.
    let demo_key = zengine_storage::seed::DEMO_WHATSAPP_PHONE_NUMBER_ID;
    for (bearer, status, code) in [
        (&acme_admin, StatusCode::FORBIDDEN, "forbidden"),
        (&platform, StatusCode::CONFLICT, "conflict"),
    ] {
        let r = call(
            &app,
            Method::PUT,
            "/v1/tenants/acme/channels/whatsapp-meta-cloud",
            Some(bearer.as_str()),
            None,
            Some(json!({"account_key": demo_key, "settings": {}})),
        )
        .await;
        assert_eq!(error_code(r, status).await, code);
    }
    // The platform admin registers acme's number, with a platform secret reference.
    json_of(
        send(
            Method::PUT,
            "/v1/tenants/acme/channels/whatsapp-meta-cloud",
            Some(platform.clone()),
            Some(json!({"account_key": "555", "settings": {"access_token": "env:ACME_WA_TOKEN", "api_version": "v23.0"}})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let channels = json_of(
        send(
            Method::GET,
            "/v1/tenants/acme/channels",
            Some(platform.clone()),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        channels["channels"],
        json!([{"strategy": "whatsapp-meta-cloud", "account_key": "555",
                "settings": {"access_token": "env:ACME_WA_TOKEN", "api_version": "v23.0"}}])
    );

    // Flows with their versions (demo is seeded with published flows).
    let flows = json_of(
        send(
            Method::GET,
            "/v1/tenants/demo/flows",
            Some(platform.clone()),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let first = &flows["flows"][0];
    assert!(
        first["flow_id"].is_string() && first["versions"][0]["version"] == 1,
        "{flows}"
    );

    // API keys of any tenant under its path, for the platform admin; shown once.
    let key = json_of(
        send(
            Method::POST,
            "/v1/tenants/acme/api-keys",
            Some(platform.clone()),
            Some(json!({"name": "shop"})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert!(key["key"].as_str().unwrap().starts_with("zk_"));
    let keys = json_of(
        send(
            Method::GET,
            "/v1/tenants/acme/api-keys",
            Some(platform.clone()),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(keys["api_keys"].as_array().unwrap().len(), 1);
    assert!(keys["api_keys"][0].get("key").is_none());
    // An API key cannot administer its tenant.
    let r = call(
        &app,
        Method::GET,
        "/v1/tenants/acme",
        Some(key["key"].as_str().unwrap()),
        None,
        None,
    )
    .await;
    assert_eq!(error_code(r, StatusCode::FORBIDDEN).await, "forbidden");
    let path = format!(
        "/v1/tenants/acme/api-keys/{}",
        key["key_id"].as_str().unwrap()
    );
    let r = call(&app, Method::DELETE, &path, Some(&platform), None, None).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Every change is an audited event: who, what, when.
    let mut audited = Vec::new();
    for kind in [
        "Tenant.Created",
        "Tenant.Updated",
        "Tenant.SettingsChanged",
        "Tenant.ChannelConfigured",
        "Tenant.ApiKeyCreated",
        "Tenant.ApiKeyRevoked",
    ] {
        let events = db.events().list(&acme, kind).await.unwrap();
        assert_eq!(events.len(), 1, "{kind}");
        assert!(events[0].occurred_at > 0);
        audited.push((
            kind,
            events[0].payload["actor"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(audited[0].1, "ops@platform");
    assert_eq!(audited[1].1, "admin@acme");
    let settings_event = &db
        .events()
        .list(&acme, "Tenant.SettingsChanged")
        .await
        .unwrap()[0];
    assert_eq!(
        settings_event.payload["change"]["payment"]["tolerance_cents"],
        100
    );
    app.shutdown().await;
}

#[tokio::test]
async fn platform_admin_manages_tenants_and_tenant_admins_their_own_sqlite() {
    admin_lifecycle(TestBackend::Sqlite).await;
}

#[tokio::test]
async fn platform_admin_manages_tenants_and_tenant_admins_their_own_postgres_rls() {
    admin_lifecycle(TestBackend::PostgresRls).await;
}

async fn webchat(app: &TestApp, session: &str, key: &str) -> (StatusCode, Value) {
    app.post_webchat_json(key, json!({"session_id": session, "text": "hola"}))
        .await
}

async fn suspension(backend: TestBackend) {
    let mut options = hs256_options();
    options.backend = backend;
    options.api.tenant_cache_ttl_ms = 300;
    let app = spawn_app_with(options).await;
    let db = app.database.as_ref().unwrap().db.clone();
    let demo = TenantId::parse("demo").unwrap();
    let (graph, fake) = fake_graph().await;
    use_fake(&app, &graph, None).await;
    let (_, api_key) = db
        .api_keys()
        .create(NewApiKey {
            tenant_id: &demo,
            name: "shop",
            role: "operator",
            rate_per_minute: None,
            burst: None,
            created_by: "test",
        })
        .await
        .unwrap();
    let admin = token("demo", "admin");
    let session = format!("s-{}", uuid::Uuid::new_v4().simple());

    // Active: everything is processed.
    let (status, reply) = webchat(&app, &session, "k1").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(
        call(&app, Method::GET, "/v1/orders", Some(&api_key), None, None)
            .await
            .status(),
        StatusCode::OK
    );

    // Suspended through the API: at once in this process.
    let r = call(
        &app,
        Method::POST,
        "/v1/tenants/demo/suspend",
        Some(ADMIN_TOKEN),
        None,
        None,
    )
    .await;
    let body = json_of(r, StatusCode::OK).await;
    assert_eq!(body["tenant"]["status"], "suspended");
    assert_eq!(body["changed"], true);
    let r = call(
        &app,
        Method::POST,
        "/v1/tenants/demo/suspend",
        Some(ADMIN_TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(json_of(r, StatusCode::OK).await["changed"], false);

    // API calls: JWT and API key get 403.
    let r = call(&app, Method::GET, "/v1/orders", Some(&api_key), None, None).await;
    assert_eq!(
        error_code(r, StatusCode::FORBIDDEN).await,
        "tenant_suspended"
    );
    let r = call(
        &app,
        Method::GET,
        "/v1/tenants/demo",
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(
        error_code(r, StatusCode::FORBIDDEN).await,
        "tenant_suspended"
    );
    let r = call(
        &app,
        Method::GET,
        "/v1/ops/workflows",
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(
        error_code(r, StatusCode::FORBIDDEN).await,
        "tenant_suspended"
    );
    // The platform admin still sees it.
    let r = call(
        &app,
        Method::GET,
        "/v1/tenants/demo",
        Some(ADMIN_TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(json_of(r, StatusCode::OK).await["status"], "suspended");

    // Webhooks: answered 2xx, not processed, recorded as suspended.
    let (status, reply) = webchat(&app, &session, "k2").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(reply["suspended"], true);
    let wamid = format!("wamid.{}", uuid::Uuid::new_v4().simple());
    let body = text_webhook(
        zengine_storage::seed::DEMO_WHATSAPP_PHONE_NUMBER_ID,
        "16505551234",
        &wamid,
        "hola",
    );
    let r = post_webhook(&app, &body, Some(sign(&body))).await;
    let answer = json_of(r, StatusCode::OK).await;
    assert_eq!(answer["suspended"], 1, "{answer}");
    assert_eq!(answer["accepted"], 0);
    assert_eq!(db.tenants().suppressed_count(&demo).await.unwrap(), 2);
    // Nothing was signalled: the message is not even marked as received.
    assert!(
        !db.channels()
            .seen(&demo, "whatsapp-meta-cloud", &wamid)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fake.lock().unwrap().seen.is_empty());

    // Resumed: processed again.
    let r = call(
        &app,
        Method::POST,
        "/v1/tenants/demo/resume",
        Some(ADMIN_TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(
        json_of(r, StatusCode::OK).await["tenant"]["status"],
        "active"
    );
    let (status, reply) = webchat(&app, &session, "k3").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(
        call(&app, Method::GET, "/v1/orders", Some(&api_key), None, None)
            .await
            .status(),
        StatusCode::OK
    );

    // Suspended by another replica (straight in the database): this process's cache sees it
    // within api.tenant_cache_ttl_ms, its API calls at once.
    let audit = Audit {
        event_id: "other-replica-suspend",
        event_type: zengine_domain::events::EventType::TenantSuspended,
        actor: "test",
        change: json!({"status": "suspended"}),
    };
    db.tenants()
        .set_suspended(&demo, true, &audit)
        .await
        .unwrap();
    let r = call(&app, Method::GET, "/v1/orders", Some(&api_key), None, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, _) = webchat(&app, &session, "k4").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(db.tenants().suppressed_count(&demo).await.unwrap(), 3);
    let events = db.events().list(&demo, "Tenant.Suspended").await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].payload["actor"], "admin-token");
    app.shutdown().await;
}

#[tokio::test]
async fn a_suspended_tenants_webhooks_are_answered_not_processed_and_its_calls_forbidden_sqlite() {
    suspension(TestBackend::Sqlite).await;
}

#[tokio::test]
async fn a_suspended_tenants_webhooks_are_answered_not_processed_and_its_calls_forbidden_postgres()
{
    suspension(TestBackend::PostgresRls).await;
}

#[tokio::test]
async fn webchat_browser_requests_are_confined_to_the_tenants_cors_origins() {
    let app = spawn_app_with(hs256_options()).await;
    let post = |origin: Option<&'static str>, key: &'static str| {
        let app = &app;
        async move {
            let mut request = app
                .http
                .post(format!("{}/v1/webchat/messages", app.address))
                .header("content-type", "application/json")
                .header("x-tenant-id", "demo")
                .header("x-idempotency-key", key)
                .body(json!({"session_id": format!("cors-{key}-{}", uuid::Uuid::new_v4().simple()), "text": "hola"}).to_string());
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            request.send().await.unwrap()
        }
    };
    // No origins configured: no CORS headers, requests still served (servers send no Origin).
    let r = post(Some("https://shop.example"), "c1").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let r = call(
        &app,
        Method::PATCH,
        "/v1/tenants/demo/settings",
        Some(ADMIN_TOKEN),
        None,
        Some(json!({"cors_origins": ["https://shop.example"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = post(Some("https://shop.example"), "c2").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let r = post(Some("https://evil.example"), "c3").await;
    assert_eq!(error_code(r, StatusCode::FORBIDDEN).await, "forbidden");
    let r = post(None, "c4").await;
    assert_eq!(r.status(), StatusCode::OK);
    // The preflight is answered for the browser to send the real request.
    let r = app
        .http
        .request(
            Method::OPTIONS,
            format!("{}/v1/webchat/messages", app.address),
        )
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(
        r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("x-tenant-id")
    );
    app.shutdown().await;
}

/// Payment rules are patched field by field: admins changing different fields at once each
/// keep their change (the read, the patch and the write were separate steps, so the last
/// writer put back the fields the others had just changed).
#[tokio::test]
async fn payment_settings_patched_at_once_keep_every_change() {
    let app = spawn_app_with(hs256_options()).await;
    let tenant = crate::auth::unique_tenant("patch");
    crate::auth::add_tenant(&app, &tenant).await;
    let admin = token(&tenant, "admin");
    let path = format!("/v1/tenants/{tenant}/settings");
    for round in 0..4_i64 {
        let patches = [
            json!({"tolerance_cents": 100 + round}),
            json!({"review_timeout_secs": 600 + round}),
            json!({"window_slack_minutes": 30 + round}),
            json!({"retention_days": 90 + round}),
            json!({"merchant_name": format!("Tienda {round}")}),
        ];
        let answers = futures::future::join_all(patches.iter().map(|patch| {
            call(
                &app,
                Method::PATCH,
                &path,
                Some(&admin),
                None,
                Some(json!({"payment": patch})),
            )
        }))
        .await;
        for answer in answers {
            assert_eq!(answer.status(), StatusCode::OK);
        }
        let r = call(&app, Method::GET, &path, Some(&admin), None, None).await;
        let payment = json_of(r, StatusCode::OK).await["payment"].clone();
        assert_eq!(payment["tolerance_cents"], 100 + round, "{payment}");
        assert_eq!(payment["review_timeout_secs"], 600 + round, "{payment}");
        assert_eq!(payment["window_slack_minutes"], 30 + round, "{payment}");
        assert_eq!(payment["retention_days"], 90 + round, "{payment}");
        assert_eq!(
            payment["merchant_name"],
            format!("Tienda {round}"),
            "{payment}"
        );
    }
    app.shutdown().await;
}

/// Two tenants claiming one WhatsApp number at once (the platform admin registering both): one
/// gets it, the other a 409 naming the conflict, never a 500, and the number routes to the
/// winner. The API's ownership check reads before either claim commits; the key's unique index
/// decides, and its violation is a conflict, not an internal error.
#[tokio::test]
async fn two_tenants_claiming_one_number_at_once_get_one_owner_and_a_conflict() {
    let mut options = hs256_options();
    options.run_worker = false;
    let app = spawn_app_with(options).await;
    let platform = platform_token();
    let tenants = [
        crate::auth::unique_tenant("claim-a"),
        crate::auth::unique_tenant("claim-b"),
    ];
    for tenant in &tenants {
        crate::auth::add_tenant(&app, tenant).await;
    }
    let db = &app.database.as_ref().unwrap().db;
    for round in 0..10 {
        let number = format!("{}{round}", uuid::Uuid::new_v4().as_u128() % 1_000_000_000);
        let paths: Vec<String> = tenants
            .iter()
            .map(|t| format!("/v1/tenants/{t}/channels/whatsapp-meta-cloud"))
            .collect();
        let answers = futures::future::join_all(paths.iter().map(|path| {
            call(
                &app,
                Method::PUT,
                path,
                Some(&platform),
                None,
                Some(json!({"account_key": number, "settings": {"access_token": "env:CLAIM_WA_TOKEN"}})),
            )
        }))
        .await;
        let mut statuses = Vec::new();
        let mut winner = None;
        for (tenant, answer) in tenants.iter().zip(answers) {
            let status = answer.status();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            statuses.push(status);
            match status {
                StatusCode::OK => winner = Some(tenant.clone()),
                StatusCode::CONFLICT => assert_eq!(body["error"]["code"], "conflict", "{body}"),
                other => panic!("round {round}: {other} {body}"),
            }
        }
        let owner = db
            .channels()
            .route("whatsapp-meta-cloud", &number)
            .await
            .unwrap()
            .expect("the number is routed");
        assert_eq!(
            Some(owner.tenant_id.to_string()),
            winner,
            "round {round}: {statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::OK).count(),
            1,
            "round {round}: {statuses:?}"
        );
    }
    app.shutdown().await;
}
