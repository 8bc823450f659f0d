//! Connecting to Temporal and preparing the namespace.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use temporalio_client::envconfig::{ClientConfigProfile, LoadClientConfigProfileOptions};
use temporalio_client::grpc::OperatorService;
use temporalio_client::tonic::{Code, IntoRequest};
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions};
use temporalio_common::envconfig::load_client_config_profile;
use temporalio_common::protos::temporal::api::enums::v1::IndexedValueType;
use temporalio_common::protos::temporal::api::operatorservice::v1::{
    AddSearchAttributesRequest, ListSearchAttributesRequest,
};
use zengine_workflows::names::{REQUIRED_SEARCH_ATTRIBUTES, task_queue};

use crate::codec::{CodecSettings, EncryptionCodec};

/// Where Temporal is and how ZEngine names things in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemporalSettings {
    /// Frontend address (`host:port`). Empty: `zengine dev` starts its own dev server.
    /// The `TEMPORAL_ADDRESS` environment variable sets it too.
    pub address: String,
    /// Namespace of every ZEngine workflow.
    pub namespace: String,
    /// Prefix of every task queue name (lets several deployments or tests share a namespace).
    pub task_queue_prefix: String,
    /// How long to keep retrying the first connection.
    pub connect_timeout_secs: u64,
    /// Payload encryption keyring (see `crate::codec`).
    pub codec: CodecSettings,
    /// Set by `zengine dev` when it runs its own dev server: Temporal's client configuration
    /// (`TEMPORAL_TLS_*`, `TEMPORAL_API_KEY`, profile file), meant for a real cluster, is then
    /// not read. Not a setting.
    #[serde(skip)]
    pub embedded: bool,
}

impl Default for TemporalSettings {
    fn default() -> Self {
        Self {
            address: String::new(),
            namespace: "default".to_owned(),
            task_queue_prefix: String::new(),
            connect_timeout_secs: 30,
            codec: CodecSettings::default(),
            embedded: false,
        }
    }
}

impl TemporalSettings {
    /// The concrete name of the task queue `base` (see `zengine_workflows::names::queues`).
    pub fn task_queue(&self, base: &str) -> String {
        task_queue(&self.task_queue_prefix, base)
    }
}

/// Connects to the frontend at `settings.address`, retrying until `connect_timeout_secs`.
///
/// The client (and every worker built on it, which inherits its data converter) encrypts and
/// decrypts payloads with the keyring of `settings.codec`, each workflow's payloads under its
/// tenant's key (`zengine_workflows::codec`).
pub async fn connect(settings: &TemporalSettings, identity: &str) -> anyhow::Result<Client> {
    let codec = crate::codec::from_settings(&settings.codec)?;
    connect_with_codec(settings, identity, Some(codec)).await
}

/// [`connect`] with an explicit codec; `None` gives a client that sees payloads exactly as the
/// server stores them (tests checking what is at rest).
pub async fn connect_with_codec(
    settings: &TemporalSettings,
    identity: &str,
    codec: Option<EncryptionCodec>,
) -> anyhow::Result<Client> {
    let options = connection_options(settings, identity)?;
    let target = options.target.to_string();
    let deadline = Instant::now() + Duration::from_secs(settings.connect_timeout_secs);
    let connection = loop {
        match Connection::connect(options.clone()).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error.message = %e, "Temporal not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e))
                    .with_context(|| format!("Failed to connect to Temporal at {target}"));
            }
        }
    };
    let options = match codec {
        Some(codec) => ClientOptions::new(settings.namespace.clone())
            .data_converter(codec.data_converter())
            .client_interceptors(vec![std::sync::Arc::new(
                zengine_workflows::codec::PayloadScopeInterceptor,
            )])
            .build(),
        None => ClientOptions::new(settings.namespace.clone()).build(),
    };
    Client::new(connection, options).context("Failed to create the Temporal client")
}

/// How to reach the frontend: Temporal's own client configuration (the `TEMPORAL_*` variables —
/// `TEMPORAL_TLS_*`, `TEMPORAL_API_KEY`, `TEMPORAL_GRPC_META_*` — and the profile of
/// `TEMPORAL_CONFIG_FILE` or `~/.config/temporalio/temporal.toml`, as Temporal's SDKs and CLI read
/// them), with `settings.address` as the address. TLS is on when a TLS setting or an API key is
/// given (`TEMPORAL_TLS=false` turns it off).
fn connection_options(
    settings: &TemporalSettings,
    identity: &str,
) -> anyhow::Result<ConnectionOptions> {
    // ConfigError is not Send + Sync (it boxes a plain dyn Error): keep its text.
    let mut profile = if settings.embedded {
        ClientConfigProfile::default()
    } else {
        load_client_config_profile(LoadClientConfigProfileOptions::default(), None).map_err(
            |e| anyhow::anyhow!("Temporal client configuration (TEMPORAL_* variables): {e}"),
        )?
    };
    if !settings.address.is_empty() {
        profile.address = Some(settings.address.clone());
    }
    let mut options = ConnectionOptions::try_from(profile).map_err(|e| {
        anyhow::anyhow!(
            "Temporal client configuration for `{}` (temporal.address, TEMPORAL_TLS_*): {e}",
            settings.address
        )
    })?;
    options.identity = identity.to_owned();
    check_client_certificate(&options)?;
    Ok(options)
}

/// A client certificate outside its validity stops start-up with one line naming it (the server
/// would refuse the handshake with an alert each server words differently, or not at all).
fn check_client_certificate(options: &ConnectionOptions) -> anyhow::Result<()> {
    let Some(client) = options
        .tls_options
        .as_ref()
        .and_then(|tls| tls.client_tls_options.as_ref())
    else {
        return Ok(());
    };
    zengine_storage::certificates::check_valid_now(
        &client.client_cert,
        "TEMPORAL_TLS_CLIENT_CERT_PATH",
    )
}

/// Registers the search attributes ZEngine's workflows use, when they are missing.
pub async fn ensure_search_attributes(client: &Client, namespace: &str) -> anyhow::Result<()> {
    let mut conn = client.connection().clone();
    let existing = OperatorService::list_search_attributes(
        &mut conn,
        ListSearchAttributesRequest {
            namespace: namespace.to_owned(),
        }
        .into_request(),
    )
    .await
    .context("Failed to list search attributes")?
    .into_inner();
    let missing: std::collections::HashMap<String, i32> = REQUIRED_SEARCH_ATTRIBUTES
        .iter()
        .filter(|(name, _)| !existing.custom_attributes.contains_key(*name))
        .map(|(name, kind)| {
            let kind = IndexedValueType::from_str_name(&format!(
                "INDEXED_VALUE_TYPE_{}",
                kind.to_uppercase()
            ))
            .unwrap_or(IndexedValueType::Keyword);
            ((*name).to_owned(), kind as i32)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    tracing::info!(attributes = ?missing.keys().collect::<Vec<_>>(), "Registering search attributes");
    let result = OperatorService::add_search_attributes(
        &mut conn,
        AddSearchAttributesRequest {
            search_attributes: missing,
            namespace: namespace.to_owned(),
        }
        .into_request(),
    )
    .await;
    match result {
        Ok(_) => Ok(()),
        // Another process registered them first.
        Err(status) if status.code() == Code::AlreadyExists => Ok(()),
        Err(status) => Err(anyhow::anyhow!(status)).context("Failed to add search attributes"),
    }
}
