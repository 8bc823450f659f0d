//! Readiness of a process that needs the domain database and Temporal (the API's `/readyz`),
//! and a worker's own probes: `/healthz` and `/readyz` on `worker.health_addr`, for
//! Kubernetes' liveness and readiness probes (the SDK's metrics endpoint serves only metrics).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use temporalio_client::Client;
use temporalio_client::grpc::WorkflowService;
use temporalio_client::tonic::IntoRequest;
use temporalio_common::protos::temporal::api::workflowservice::v1::GetSystemInfoRequest;
use zengine_storage::Database;

/// Whether each dependency answered (within 2 s).
#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    pub database: bool,
    pub temporal: bool,
}

/// Asks the database (`select 1`) and Temporal's frontend (`GetSystemInfo`), 2 s each.
pub async fn probe(db: &Database, client: &Client) -> Readiness {
    let limit = Duration::from_secs(2);
    let database = matches!(tokio::time::timeout(limit, db.ping()).await, Ok(Ok(())));
    let mut connection = client.connection().clone();
    let system_info =
        WorkflowService::get_system_info(&mut connection, GetSystemInfoRequest {}.into_request());
    let temporal = matches!(tokio::time::timeout(limit, system_info).await, Ok(Ok(_)));
    Readiness { database, temporal }
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.database && self.temporal
    }
}

impl IntoResponse for Readiness {
    /// 200 when ready, else 503; the body names each dependency `ok` or `unavailable`.
    fn into_response(self) -> Response {
        let state = |up: bool| if up { "ok" } else { "unavailable" };
        let body = Json(serde_json::json!({
            "status": if self.ready() { "ready" } else { "not ready" },
            "database": state(self.database),
            "temporal": state(self.temporal),
        }));
        if self.ready() {
            body.into_response()
        } else {
            tracing::warn!(
                database = self.database,
                temporal = self.temporal,
                "Not ready"
            );
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        }
    }
}

/// Binds `addr` and serves `/healthz` (the process runs: 200) and `/readyz` ([`probe`]) until
/// the returned task is aborted.
pub async fn serve(
    addr: SocketAddr,
    db: Database,
    client: Client,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("worker.health_addr {addr}: cannot listen"))?;
    let app = axum::Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/readyz",
            get(move || {
                let (db, client) = (db.clone(), client.clone());
                async move { probe(&db, &client).await }
            }),
        );
    tracing::info!(%addr, "Serving worker probes");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error.message = %e, "worker probes stopped");
        }
    }))
}
