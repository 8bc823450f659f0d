//! Caller authentication: HS256 and RS256 (JWKS over loopback HTTP and from a file, with key
//! rotation) JWTs, roles, and the tenant boundary.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use zengine_domain::TenantId;

use crate::helpers::{ADMIN_TOKEN, AppOptions, TestApp, error_code, spawn_app_with};

/// The HS256 key of test apps (written to a file; the app reads it through `file:`).
pub const HS256_KEY: &str = "test-hs256-key-of-at-least-32-bytes!";
pub const ISSUER: &str = "https://issuer.test/";
pub const AUDIENCE: &str = "zengine-tests";

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims of a valid token for `tenant` with `role` (override fields with `extra`).
pub fn claims(tenant: &str, role: &str, extra: Value) -> Value {
    let mut claims = json!({
        "sub": format!("{role}@{tenant}"), "tenant_id": tenant, "role": role,
        "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 300,
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(&k);
        } else {
            claims[k] = v;
        }
    }
    claims
}

pub fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(HS256_KEY.as_bytes()),
    )
    .unwrap()
}

/// A viewer/operator/admin HS256 token of `tenant`.
pub fn token(tenant: &str, role: &str) -> String {
    hs256(&claims(tenant, role, json!({})))
}

fn key_file(name: &str) -> String {
    format!("{}/tests/api/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn rs256(key: &str, kid: &str, claims: &Value) -> String {
    let pem = std::fs::read(key_file(&format!("{key}.pem"))).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

fn jwks(keys: &[&str]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| {
            serde_json::from_str(
                &std::fs::read_to_string(key_file(&format!("{k}.jwk.json"))).unwrap(),
            )
            .unwrap()
        })
        .collect();
    json!({ "keys": keys }).to_string()
}

/// Options of an app that accepts HS256 tokens (issuer and audience checked) besides the admin
/// token.
pub fn hs256_options() -> AppOptions {
    let dir = std::env::temp_dir().join(format!("zengine-jwt-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hs256.key");
    std::fs::write(&path, format!("{HS256_KEY}\n")).unwrap();
    let mut options = AppOptions::default();
    options.api.auth.jwt.hs256_secret = format!("file:{}", path.display());
    options.api.auth.jwt.issuer = ISSUER.into();
    options.api.auth.jwt.audience = vec![AUDIENCE.into()];
    options
}

/// Creates `tenant` beside the seeded `demo`, with the demo flow as its main flow.
pub async fn add_tenant(app: &TestApp, tenant: &str) {
    let db = &app.database.as_ref().unwrap().db;
    let id = TenantId::parse(tenant).unwrap();
    let flow = zengine_domain::flow::demo_flow();
    db.tenants().upsert(&id, "Other", &flow.id).await.unwrap();
    db.tenants().publish_flow(&id, &flow).await.unwrap();
}

/// A tenant id no other test uses (they share one Temporal namespace).
pub fn unique_tenant(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

pub async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    tenant: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.http.request(method, format!("{}{path}", app.address));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(tenant) = tenant {
        request = request.header("x-tenant-id", tenant);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    request.send().await.unwrap()
}

fn order(key: &str) -> Value {
    json!({
        "client_order_key": key,
        "customer": {"phone": "+51911222333", "name": "Ana"},
        "type": "pickup",
        "items": [{"sku": "lomo", "name": "Lomo saltado", "quantity": 1, "unit_price": "28.00"}],
    })
}

#[tokio::test]
async fn hs256_tokens_authenticate_and_every_bad_token_is_refused() {
    let app = spawn_app_with(hs256_options()).await;
    add_tenant(&app, "acme").await;
    let get = |token: Option<String>| {
        let app = &app;
        async move {
            call(
                app,
                reqwest::Method::GET,
                "/v1/ops/workflows",
                token.as_deref(),
                None,
                None,
            )
            .await
        }
    };

    assert_eq!(
        get(Some(token("demo", "viewer"))).await.status(),
        StatusCode::OK
    );
    // Cognito-style claims: `custom:tenant_id` and the role as a group list (highest wins).
    let cognito = hs256(&claims(
        "demo",
        "x",
        json!({"tenant_id": null, "role": null, "custom:tenant_id": "demo",
               "cognito:groups": ["viewer", "Operator"]}),
    ));
    assert_eq!(get(Some(cognito)).await.status(), StatusCode::OK);

    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("demo", "admin", json!({})),
        &EncodingKey::from_secret(b"another-key-another-key-another-key"),
    )
    .unwrap();
    let unsigned = {
        use base64::Engine;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&claims("demo", "admin", json!({})))
        )
    };
    let bad = [
        ("missing", None),
        ("garbage", Some("not.a.jwt".to_owned())),
        (
            "expired",
            Some(hs256(&claims("demo", "admin", json!({"exp": now() - 120})))),
        ),
        (
            "not yet valid",
            Some(hs256(&claims("demo", "admin", json!({"nbf": now() + 600})))),
        ),
        (
            "no exp",
            Some(hs256(&claims("demo", "admin", json!({"exp": null})))),
        ),
        (
            "wrong issuer",
            Some(hs256(&claims(
                "demo",
                "admin",
                json!({"iss": "https://evil/"}),
            ))),
        ),
        (
            "wrong audience",
            Some(hs256(&claims("demo", "admin", json!({"aud": "other"})))),
        ),
        ("forged", Some(forged)),
        ("alg none", Some(unsigned)),
    ];
    for (why, token) in bad {
        let response = get(token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(
            error_code(response, StatusCode::UNAUTHORIZED).await,
            "unauthorized"
        );
    }

    // Authenticated but without a ZEngine role or tenant: 403.
    for claims in [
        claims("demo", "superuser", json!({})),
        claims("demo", "viewer", json!({"tenant_id": null})),
    ] {
        let response = get(Some(hs256(&claims))).await;
        assert_eq!(
            error_code(response, StatusCode::FORBIDDEN).await,
            "forbidden"
        );
    }
    // A tenant that does not exist, or a header naming another tenant: 404.
    let response = get(Some(token("ghost", "admin"))).await;
    assert_eq!(
        error_code(response, StatusCode::NOT_FOUND).await,
        "unknown_tenant"
    );
    let response = call(
        &app,
        reqwest::Method::GET,
        "/v1/ops/workflows",
        Some(&token("acme", "admin")),
        Some("demo"),
        None,
    )
    .await;
    assert_eq!(
        error_code(response, StatusCode::NOT_FOUND).await,
        "unknown_tenant"
    );

    // Roles: viewers read, operators act, admins publish flows and manage keys.
    let post_order = |token: String, key: &'static str| {
        let app = &app;
        async move {
            call(
                app,
                reqwest::Method::POST,
                "/v1/orders",
                Some(&token),
                None,
                Some(order(key)),
            )
            .await
        }
    };
    let response = post_order(token("demo", "viewer"), "r-1").await;
    assert_eq!(
        error_code(response, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
    assert_eq!(
        post_order(token("demo", "operator"), "r-1").await.status(),
        StatusCode::CREATED
    );
    let flow = json!({"schema_version": 1, "id": "x", "version": 1, "start": "hi",
                      "nodes": [{"id": "hi", "type": "end", "text": "v"}]});
    let publish = |token: String, tenant: &'static str| {
        let app = &app;
        let flow = flow.clone();
        async move {
            call(
                app,
                reqwest::Method::PUT,
                &format!("/v1/tenants/{tenant}/flows/promo"),
                Some(&token),
                None,
                Some(flow),
            )
            .await
        }
    };
    let response = publish(token("demo", "operator"), "demo").await;
    assert_eq!(
        error_code(response, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
    let response = publish(token("acme", "admin"), "demo").await;
    assert_eq!(
        error_code(response, StatusCode::NOT_FOUND).await,
        "unknown_tenant"
    );
    assert_eq!(
        publish(token("demo", "admin"), "demo").await.status(),
        StatusCode::CREATED
    );
    let response = call(
        &app,
        reqwest::Method::POST,
        "/v1/tenants/demo/api-keys",
        Some(&token("demo", "operator")),
        None,
        Some(json!({"name": "shop"})),
    )
    .await;
    assert_eq!(
        error_code(response, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
    // The admin token still works as the bootstrap credential.
    let response = post_order(ADMIN_TOKEN.to_owned(), "r-2").await;
    assert_eq!(
        error_code(response, StatusCode::BAD_REQUEST).await,
        "missing_header"
    );
    let response = call(
        &app,
        reqwest::Method::POST,
        "/v1/orders",
        Some(ADMIN_TOKEN),
        Some("demo"),
        Some(order("r-2")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    app.shutdown().await;
}

/// A loopback JWKS endpoint whose document the test can change; counts fetches.
struct Jwks {
    url: String,
    document: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

async fn serve_jwks(initial: String) -> Jwks {
    let document = Arc::new(Mutex::new(initial));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (doc, count) = (document.clone(), fetches.clone());
    let router = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let (doc, count) = (doc.clone(), count.clone());
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                doc.lock().unwrap().clone()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    Jwks {
        url,
        document,
        fetches,
    }
}

#[tokio::test]
async fn rs256_tokens_verify_against_a_jwks_url_and_follow_key_rotation() {
    let jwks_server = serve_jwks(jwks(&["one"])).await;
    let mut options = AppOptions::default();
    options.api.auth.jwt.jwks_url = jwks_server.url.clone();
    options.api.auth.jwt.jwks_refetch_min_interval_ms = 0;
    options.api.auth.jwt.issuer = ISSUER.into();
    options.api.auth.jwt.audience = vec![AUDIENCE.into()];
    let app = spawn_app_with(options).await;
    let get = |token: String| {
        let app = &app;
        async move {
            call(
                app,
                reqwest::Method::GET,
                "/v1/ops/workflows",
                Some(&token),
                None,
                None,
            )
            .await
            .status()
        }
    };
    let viewer = claims("demo", "viewer", json!({}));

    assert_eq!(get(rs256("one", "test-one", &viewer)).await, StatusCode::OK);
    assert_eq!(get(rs256("one", "test-one", &viewer)).await, StatusCode::OK);
    assert_eq!(
        jwks_server.fetches.load(Ordering::SeqCst),
        1,
        "keys are cached"
    );

    // A token of key two, which the provider does not publish yet: refetched, still unknown.
    let two = rs256("two", "test-two", &viewer);
    assert_eq!(get(two.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(jwks_server.fetches.load(Ordering::SeqCst), 2);
    // The provider rotates in key two: the unknown kid triggers a refetch and it verifies.
    *jwks_server.document.lock().unwrap() = jwks(&["one", "two"]);
    assert_eq!(get(two).await, StatusCode::OK);
    assert_eq!(jwks_server.fetches.load(Ordering::SeqCst), 3);
    // Key two's signature under key one's kid, an HS256 token (not configured here) and an
    // expired RS256 token are refused.
    assert_eq!(
        get(rs256("two", "test-one", &viewer)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get(token("demo", "viewer")).await, StatusCode::UNAUTHORIZED);
    let expired = claims("demo", "viewer", json!({"exp": now() - 100}));
    assert_eq!(
        get(rs256("one", "test-one", &expired)).await,
        StatusCode::UNAUTHORIZED
    );
    app.shutdown().await;

    // The same from a JWKS file.
    let mut options = AppOptions::default();
    let file = std::env::temp_dir().join(format!("zengine-jwks-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, jwks(&["two"])).unwrap();
    options.api.auth.jwt.jwks_file = file.display().to_string();
    // A JWKS without issuer and audience is refused at start-up.
    assert!(
        zengine_api::auth::authenticator(String::new().into(), &options.api.auth)
            .err()
            .is_some_and(|e| e.to_string().contains("set issuer and audience")),
    );
    options.api.auth.jwt.issuer = ISSUER.into();
    options.api.auth.jwt.audience = vec![AUDIENCE.into()];
    let app = spawn_app_with(options).await;
    let response = call(
        &app,
        reqwest::Method::GET,
        "/v1/ops/workflows",
        Some(&rs256("two", "test-two", &viewer)),
        None,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    app.shutdown().await;
}
