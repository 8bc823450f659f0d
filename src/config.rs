//! Settings of every `zengine` process: defaults ← TOML file ← `ZENGINE_*` environment.
//!
//! The file is `--config PATH`, else `$ZENGINE_CONFIG`, else `zengine.toml` when it exists.
//! Environment variables use `__` between levels: `ZENGINE_API__ADDR=0.0.0.0:8080`. A `ZENGINE_`
//! variable without `__` that does not start with a section's name (`ZENGINE_JWT_KEY`) is not a
//! setting and is left alone.
//! `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE` and `DATABASE_URL` are honoured as the conventional
//! shortcuts; the connection's TLS, client certificate and API key come from Temporal's own
//! `TEMPORAL_TLS_*` / `TEMPORAL_API_KEY` variables or profile file (`zengine_workers::connect`).
//! The full reference is `docs/configuration.md`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;
use zengine_api::ApiSettings;
use zengine_storage::DatabaseSettings;
use zengine_workers::{DevServerSettings, TemporalSettings, WorkerSettings};

/// Log output, and optional OpenTelemetry trace export.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `json` (one object per line, for collectors) or `pretty` (for a terminal).
    pub format: String,
    /// `tracing` filter directives; `RUST_LOG` overrides.
    pub filter: String,
    /// OTLP/HTTP (protobuf) collector base URL, e.g. `http://otel-collector:4318`; spans are
    /// POSTed to `{otlp_endpoint}/v1/traces` (a URL already ending in `/v1/traces` is used as is).
    /// Empty (the default): no trace export.
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans; empty: `zengine-api`, `zengine-worker`,
    /// `zengine-dev` (per subcommand).
    pub service_name: String,
    /// Fraction of new traces sampled, 0.0 to 1.0 (children follow their parent's decision).
    pub sampling_ratio: f64,
    /// Timeout of one export request, in milliseconds.
    pub otlp_timeout_ms: u64,
    /// How long finished spans wait to be batched into one export request, in milliseconds.
    pub otlp_batch_delay_ms: u64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            format: "json".to_owned(),
            filter: "info".to_owned(),
            otlp_endpoint: String::new(),
            service_name: String::new(),
            sampling_ratio: 1.0,
            otlp_timeout_ms: 5_000,
            otlp_batch_delay_ms: 1_000,
        }
    }
}

/// `[secrets]`: where tenants' own secrets live (`docs/security.md`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsSettings {
    /// Root of the tenant secret store: a tenant's `secret:NAME` reference is the file
    /// `<tenant_dir>/<tenant>/NAME`. Empty: `/run/secrets/zengine-tenants` (`data/tenant-secrets`
    /// under `zengine dev`).
    pub tenant_dir: String,
}

/// Everything a process can be told.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub api: ApiSettings,
    pub worker: WorkerSettings,
    pub temporal: TemporalSettings,
    pub dev_server: DevServerSettings,
    pub database: DatabaseSettings,
    pub telemetry: TelemetrySettings,
    pub secrets: SecretsSettings,
}

/// The sections of [`Settings`]: the first part of every `ZENGINE_<SECTION>__<KEY>` variable
/// (only used to refuse `ZENGINE_<SECTION>_<KEY>`, a `_` where `__` belongs).
const SECTIONS: [&str; 7] = [
    "api",
    "worker",
    "temporal",
    "dev_server",
    "database",
    "telemetry",
    "secrets",
];

/// Whether an environment variable (after `ZENGINE_`) starts with a section's name.
fn names_a_section(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECTIONS.iter().any(|section| {
        key.strip_prefix(section)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
    })
}

impl Settings {
    /// Loads the settings (see the module docs for the order).
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Self> {
        let file = explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("ZENGINE_CONFIG").map(PathBuf::from))
            .or_else(|| Some(PathBuf::from("zengine.toml")).filter(|p| p.exists()));
        let mut figment = Figment::new();
        if let Some(file) = &file {
            anyhow::ensure!(
                file.exists(),
                "config file {} does not exist",
                file.display()
            );
            figment = figment.merge(Toml::file(file));
        }
        // A variable is a setting when it has a `__` (`ZENGINE_API__ADDR`) or starts with a
        // section's name (the misspelt `ZENGINE_API_ADDR`, which is then refused, not ignored);
        // others, such as a user's `ZENGINE_JWT_KEY` read through `env:`, are not ours.
        // ZENGINE_CONFIG names the file; the ignored ones are test-harness variables that
        // happen to start with a section's name.
        figment = figment.merge(
            Env::prefixed("ZENGINE_")
                .ignore(&[
                    "config",
                    "shared_dir",
                    "test_postgres_url",
                    "temporal_bin",
                    "record_histories",
                    "moto_server",
                ])
                .filter(|key| key.as_str().contains("__") || names_a_section(key.as_str()))
                .split("__"),
        );
        let mut settings: Settings = figment.extract().context("Invalid configuration")?;
        if let Ok(address) = std::env::var("TEMPORAL_ADDRESS") {
            settings.temporal.address = address;
        }
        if let Ok(namespace) = std::env::var("TEMPORAL_NAMESPACE") {
            settings.temporal.namespace = namespace;
        }
        if let Ok(url) = std::env::var("DATABASE_URL") {
            settings.database.url = url.into();
        }
        settings.resolve_secret_references()?;
        Ok(settings)
    }

    /// Secret settings given as a platform secret reference (`file:/run/secrets/admin_token`,
    /// `env:NAME`; how compose and Kubernetes hand over secrets) become the value they name. A
    /// reference that does not resolve stops start-up naming the setting and the reference.
    fn resolve_secret_references(&mut self) -> anyhow::Result<()> {
        use secrecy::{ExposeSecret, SecretString};
        let fields: [(&str, &mut SecretString); 6] = [
            ("api.admin_token", &mut self.api.admin_token),
            ("api.contact_id_key", &mut self.api.contact_id_key),
            ("api.whatsapp_app_secret", &mut self.api.whatsapp_app_secret),
            (
                "api.whatsapp_verify_token",
                &mut self.api.whatsapp_verify_token,
            ),
            ("database.url", &mut self.database.url),
            ("database.migration_url", &mut self.database.migration_url),
        ];
        for (name, field) in fields {
            let value = field.expose_secret();
            if zengine_storage::secrets::reference_kind(value)
                == Some(zengine_storage::secrets::ReferenceKind::Platform)
            {
                let resolved = zengine_storage::secrets::resolve(value)
                    .with_context(|| format!("{name}: secret reference"))?;
                *field = resolved;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn secret_settings_may_be_secret_references() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin_token");
        std::fs::write(&path, "s3cret\n").unwrap();
        let mut settings = Settings::default();
        settings.api.admin_token = format!("file:{}", path.display()).into();
        settings.api.contact_id_key = "plain-value".to_owned().into();
        settings.resolve_secret_references().unwrap();
        assert_eq!(settings.api.admin_token.expose_secret(), "s3cret");
        assert_eq!(settings.api.contact_id_key.expose_secret(), "plain-value");
        settings.api.contact_id_key = "file:/surely/missing/contact_id_key".to_owned().into();
        let error = format!("{:#}", settings.resolve_secret_references().unwrap_err());
        assert!(error.contains("api.contact_id_key"), "{error}");
        assert!(
            error.contains("file:/surely/missing/contact_id_key"),
            "{error}"
        );
    }
}
