//! `spawn_app()`: a real API + worker + database for one test.

use std::sync::LazyLock;

use reqwest::{Response, StatusCode};
use temporalio_client::Client;
use tokio::sync::watch;
use zengine_api::{ApiSettings, AppState, Application};
use zengine_storage::seed::seed_demo_tenant;
use zengine_storage::testing::{TestBackend, TestDatabase};
use zengine_workers::testing::{shared_dev_server, unique_prefix};
use zengine_workers::{
    CodecSettings, QueueTuning, TemporalSettings, WorkerSettings, connect,
    ensure_search_attributes, run_workers,
};
use zengine_workflows::names::queues;

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        tracing_subscriber_init();
    }
});

fn tracing_subscriber_init() {
    let _ = tracing::subscriber::set_global_default(
        tracing_subscriber::fmt().with_env_filter("info").finish(),
    );
}

/// The management token of test apps.
pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const WHATSAPP_APP_SECRET: &str = "test_app_secret";
pub const WHATSAPP_VERIFY_TOKEN: &str = "test-verify-token";

pub struct TestApp {
    pub address: String,
    /// `http://127.0.0.1:port` of the gRPC service, when `api.grpc_addr` was set.
    pub grpc_address: Option<String>,
    pub http: reqwest::Client,
    pub temporal: Client,
    pub temporal_settings: TemporalSettings,
    pub database: Option<TestDatabase>,
    /// Folder of the local attachment store (removed with the app).
    pub files_dir: tempfile::TempDir,
    stop: watch::Sender<bool>,
    api: tokio::task::JoinHandle<anyhow::Result<()>>,
    worker: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Options of [`spawn_app_with`].
pub struct AppOptions {
    pub backend: TestBackend,
    pub run_worker: bool,
    pub api: ApiSettings,
    /// Payload encryption keyring of the app's Temporal client and worker.
    pub codec: CodecSettings,
    /// `worker.metrics_addr` of the in-process worker (none by default).
    pub worker_metrics_addr: String,
    /// `[worker.routing]` of the in-process worker (haversine by default).
    pub routing: zengine_activities::routing::MatrixSettings,
    /// `worker.outbound` and `api.outbound` of the app. Default: loopback open, because the
    /// fakes of provider APIs and tenant backends listen there; `Default::default()` is the
    /// production default (every internal address refused), for the SSRF tests.
    pub outbound: zengine_channels::outbound::OutboundSettings,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            backend: TestBackend::Sqlite,
            run_worker: true,
            worker_metrics_addr: String::new(),
            routing: Default::default(),
            outbound: zengine_channels::outbound::OutboundSettings::loopback(),
            api: ApiSettings {
                addr: "127.0.0.1:0".into(),
                admin_token: ADMIN_TOKEN.to_owned().into(),
                whatsapp_app_secret: WHATSAPP_APP_SECRET.to_owned().into(),
                whatsapp_verify_token: WHATSAPP_VERIFY_TOKEN.to_owned().into(),
                // Every test talks from 127.0.0.1; the limits have their own tests.
                anonymous: zengine_api::quota::AnonymousLimits::unlimited(),
                ..ApiSettings::default()
            },
            codec: CodecSettings::default(),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// The tenant secret store of this test binary (`secrets.tenant_dir`): one folder per tenant.
static TENANT_SECRETS: LazyLock<std::path::PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("zengine-tenant-secrets-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a tenant secret store");
    zengine_storage::secrets::set_tenant_dir(&dir);
    dir
});

/// Puts `value` into `tenant`'s secret store as `name`: what the tenant then references as
/// `secret:<name>`.
pub fn put_tenant_secret(tenant: &str, name: &str, value: &str) {
    std::fs::create_dir_all(TENANT_SECRETS.join(tenant)).expect("a tenant folder");
    std::fs::write(tenant_secret_path(tenant, name), format!("{value}\n"))
        .expect("a tenant secret");
}

/// Where `tenant`'s secret `name` is stored.
pub fn tenant_secret_path(tenant: &str, name: &str) -> std::path::PathBuf {
    TENANT_SECRETS.join(tenant).join(name)
}

pub async fn spawn_app_with(mut options: AppOptions) -> TestApp {
    LazyLock::force(&TRACING);
    LazyLock::force(&TENANT_SECRETS);
    // Attachments of the local backend go to a folder of this app only.
    let files_dir = tempfile::tempdir().expect("a temporary folder");
    if options.api.attachments.backend == "local" {
        options.api.attachments.local_dir = files_dir.path().to_path_buf();
    }
    let temporal_settings = TemporalSettings {
        address: shared_dev_server().to_owned(),
        task_queue_prefix: unique_prefix("api"),
        codec: options.codec.clone(),
        ..TemporalSettings::default()
    };
    let temporal = connect(&temporal_settings, "api-tests")
        .await
        .expect("connect to Temporal");
    ensure_search_attributes(&temporal, &temporal_settings.namespace)
        .await
        .expect("register search attributes");
    let database = TestDatabase::new(options.backend)
        .await
        .expect("fresh database");
    seed_demo_tenant(&database.db, &zengine_workflows::flows::examples())
        .await
        .expect("seed demo tenant");

    let (stop, stop_rx) = watch::channel(false);
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let worker_metrics_addr = options.worker_metrics_addr.clone();
    let routing = options.routing.clone();
    let outbound = options.outbound.clone();
    options.api.outbound = options.outbound.clone();
    let worker = options.run_worker.then(|| {
        let db = database.db.clone();
        let client = temporal.clone();
        let settings = temporal_settings.clone();
        let rx = stop_rx.clone();
        tokio::spawn(async move {
            let worker_settings = WorkerSettings {
                queues: vec![
                    queues::CONVERSATIONS.to_owned(),
                    queues::CHANNELS.to_owned(),
                    queues::PAYMENTS.to_owned(),
                    queues::OCR.to_owned(),
                    queues::ROUTING.to_owned(),
                    queues::ASSISTANCE.to_owned(),
                ],
                // One Tesseract engine per test app is plenty.
                tuning: [(
                    queues::OCR.to_owned(),
                    QueueTuning {
                        activity_slots: Some(1),
                        ..QueueTuning::default()
                    },
                )]
                .into(),
                metrics_addr: worker_metrics_addr,
                routing,
                outbound,
                graceful_shutdown_secs: 1,
                ..WorkerSettings::default()
            };
            run_workers(client, &settings, &worker_settings, &db, wait(rx)).await
        })
    });
    let state = AppState::new(
        database.db.clone(),
        temporal.clone(),
        temporal_settings.task_queue_prefix.clone(),
        options.api,
        zengine_workers::codec::from_settings(&temporal_settings.codec).expect("the codec"),
    )
    .expect("the API state");
    let app = Application::build(state).await.expect("bind the API");
    let address = format!("http://127.0.0.1:{}", app.port());
    let grpc_address = app.grpc_port().map(|p| format!("http://127.0.0.1:{p}"));
    let api = tokio::spawn(app.run_until_stopped(wait(stop_rx)));
    TestApp {
        address,
        grpc_address,
        http: reqwest::Client::new(),
        temporal,
        temporal_settings,
        database: Some(database),
        files_dir,
        stop,
        api,
        worker,
    }
}

impl TestApp {
    /// Posts a webchat message with the given headers (`None` leaves a header out).
    pub async fn post_webchat_raw(
        &self,
        tenant: Option<&str>,
        key: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut request = self
            .http
            .post(format!("{}/v1/webchat/messages", self.address))
            .header("content-type", "application/json")
            .body(body);
        if let Some(tenant) = tenant {
            request = request.header("x-tenant-id", tenant);
        }
        if let Some(key) = key {
            request = request.header("x-idempotency-key", key);
        }
        request.send().await.expect("request sent")
    }

    /// Posts a well-formed webchat message for the demo tenant and returns the JSON reply.
    pub async fn say(&self, session: &str, key: &str, text: &str) -> serde_json::Value {
        let body = serde_json::json!({"session_id": session, "text": text}).to_string();
        let response = self.post_webchat_raw(Some("demo"), Some(key), body).await;
        let status = response.status();
        let json: serde_json::Value = response.json().await.expect("JSON body");
        assert_eq!(status, StatusCode::OK, "{json}");
        json
    }

    /// Posts any JSON body as a webchat message for the demo tenant; returns status and JSON.
    pub async fn post_webchat_json(
        &self,
        key: &str,
        body: serde_json::Value,
    ) -> (StatusCode, serde_json::Value) {
        let response = self
            .post_webchat_raw(Some("demo"), Some(key), body.to_string())
            .await;
        let status = response.status();
        (status, response.json().await.expect("JSON body"))
    }

    /// `PUT /v1/tenants/{tenant}/flows/{name}` with an optional bearer token.
    pub async fn put_flow(
        &self,
        tenant: &str,
        name: &str,
        query: &str,
        body: impl Into<reqwest::Body>,
        token: Option<&str>,
    ) -> Response {
        let mut request = self
            .http
            .put(format!(
                "{}/v1/tenants/{tenant}/flows/{name}{query}",
                self.address
            ))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    /// `POST /v1/conversations/demo/webchat/{session}/return-to-bot`.
    pub async fn return_to_bot(&self, session: &str, token: Option<&str>) -> Response {
        let mut request = self.http.post(format!(
            "{}/v1/conversations/demo/webchat/{session}/return-to-bot",
            self.address
        ));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    /// `GET /v1/webchat/messages?session_id=…&after=…` for the demo tenant.
    pub async fn outbox(&self, session: &str, after: u64) -> serde_json::Value {
        let response = self
            .http
            .get(format!(
                "{}/v1/webchat/messages?session_id={session}&after={after}",
                self.address
            ))
            .header("x-tenant-id", "demo")
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("JSON body")
    }

    /// Polls the outbox until it holds at least `count` entries after `after`.
    pub async fn wait_outbox(
        &self,
        session: &str,
        after: u64,
        count: usize,
    ) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let messages = self.outbox(session, after).await["messages"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "outbox stayed at {messages:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
    }

    /// Stops API and worker and drops the database.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.api
            .await
            .expect("api task")
            .expect("api stopped cleanly");
        if let Some(worker) = self.worker.take() {
            worker
                .await
                .expect("worker task")
                .expect("worker stopped cleanly");
        }
        if let Some(db) = self.database.take() {
            db.drop_db().await.expect("drop test database");
        }
    }
}

/// The text of each reply in a webchat response.
pub fn reply_texts(reply: &serde_json::Value) -> Vec<String> {
    reply["replies"]
        .as_array()
        .expect("replies array")
        .iter()
        .map(|r| r["text"].as_str().expect("text reply").to_owned())
        .collect()
}

/// The `{"error": {"code": …}}` of an error response, after checking its status.
pub async fn error_code(response: Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    let json: serde_json::Value = response.json().await.expect("JSON error body");
    assert!(json["error"]["message"].is_string(), "{json}");
    json["error"]["code"]
        .as_str()
        .expect("error code")
        .to_owned()
}

/// The conversation workflow id of a WhatsApp `phone` of `tenant` in test apps (the contact is
/// a keyed hash under the development `api.contact_id_key`).
pub fn whatsapp_conversation_id(tenant: &str, phone: &str) -> String {
    zengine_domain::ConversationId::new(
        zengine_domain::TenantId::parse(tenant).unwrap(),
        zengine_domain::Channel::Whatsapp,
        zengine_domain::SessionId::parse(phone).unwrap(),
    )
    .temporal_id(zengine_api::DEV_CONTACT_ID_KEY.as_bytes())
}
