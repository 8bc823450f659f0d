//! The payload codec's configuration: the keyring of `[temporal.codec]`, resolved through the
//! secret store into a [`EncryptionCodec`] (`zengine_workflows::codec`).

use anyhow::Context;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
pub use zengine_workflows::codec::{
    DEV_KEY_ID, ENCRYPTED_ENCODING, EncryptionCodec, KEY_ID_METADATA,
};

/// The keyring of the payload codec (`[temporal.codec]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CodecSettings {
    /// Encryption keys. The one marked `primary` (else the first) encrypts; all decrypt.
    /// Empty: the public development key (dev and tests only).
    pub keys: Vec<CodecKeySettings>,
    /// Let `zengine api`/`zengine worker` run on the development key when `keys` is empty.
    /// `zengine dev` sets it. Default: false (production must configure keys).
    pub allow_dev_key: bool,
    /// Name of a secret in each tenant's folder of the tenant secret store
    /// (`<secrets.tenant_dir>/<tenant>/<name>`, 32 bytes as base64 or hex) that each tenant's
    /// data key also depends on. Removing a tenant's file erases its history payloads
    /// (crypto-shredding). Empty (default): tenant keys come from the keyring alone.
    pub tenant_key_secret: String,
    /// How long a process keeps a tenant key derived with `tenant_key_secret` before reading
    /// the file again (so an erasure takes effect within this time). Default: 60.
    pub tenant_key_cache_secs: u64,
}

impl Default for CodecSettings {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            allow_dev_key: false,
            tenant_key_secret: String::new(),
            tenant_key_cache_secs: 60,
        }
    }
}

/// One key of the keyring.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CodecKeySettings {
    /// Stable id written into each payload's `encryption-key-id` (e.g. `2026-12`).
    pub id: String,
    /// Secret reference (`env:NAME`, `file:/path`) holding 32 bytes as base64 or 64 hex digits.
    pub secret_ref: String,
    /// Encrypt with this key (at most one key may be primary).
    pub primary: bool,
}

/// The codec of `settings`, resolving each key's secret reference.
pub fn from_settings(settings: &CodecSettings) -> anyhow::Result<EncryptionCodec> {
    let tenant_secret = |codec: EncryptionCodec| {
        codec.with_tenant_secret(
            &settings.tenant_key_secret,
            std::time::Duration::from_secs(settings.tenant_key_cache_secs),
        )
    };
    if settings.keys.is_empty() {
        return tenant_secret(EncryptionCodec::dev());
    }
    let primaries = settings.keys.iter().filter(|k| k.primary).count();
    anyhow::ensure!(
        primaries <= 1,
        "temporal.codec.keys: at most one key may be primary ({primaries} are)"
    );
    let mut keys = settings
        .keys
        .iter()
        .map(|k| {
            let secret = zengine_storage::secrets::resolve(&k.secret_ref)
                .with_context(|| format!("codec key `{}`", k.id))?;
            Ok((
                k.id.clone(),
                zengine_workflows::codec::parse_key(&k.id, secret.expose_secret())?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(i) = settings.keys.iter().position(|k| k.primary) {
        let primary = keys.remove(i);
        keys.insert(0, primary);
    }
    tenant_secret(EncryptionCodec::new(keys)?)
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    #[test]
    fn settings_resolve_secret_references_and_pick_the_primary() {
        let hex_key = "11".repeat(32);
        let b64_key = base64::engine::general_purpose::STANDARD.encode([2u8; 32]);
        let dir = std::env::temp_dir().join(format!("zengine-codec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a"), format!("{hex_key}\n")).unwrap();
        std::fs::write(dir.join("b"), &b64_key).unwrap();
        std::fs::write(dir.join("short"), "abcd").unwrap();
        let key = |id: &str, file: &str, primary| CodecKeySettings {
            id: id.into(),
            secret_ref: format!("file:{}", dir.join(file).display()),
            primary,
        };
        let settings = CodecSettings {
            keys: vec![key("a", "a", false), key("b", "b", true)],
            ..CodecSettings::default()
        };
        let codec = from_settings(&settings).unwrap();
        assert_eq!(codec.key_ids(), ["b", "a"]);
        assert!(!codec.is_dev());
        let bad = CodecSettings {
            keys: vec![key("s", "short", false)],
            ..CodecSettings::default()
        };
        let err = format!("{:#}", from_settings(&bad).unwrap_err());
        assert!(err.contains("codec key `s` is not 32 bytes"), "{err}");
        let missing = CodecSettings {
            keys: vec![key("m", "nope", false)],
            ..CodecSettings::default()
        };
        let err = format!("{:#}", from_settings(&missing).unwrap_err());
        assert!(
            err.contains("codec key `m`") && err.contains("is not set"),
            "{err}"
        );
        let two = CodecSettings {
            keys: vec![key("a", "a", true), key("b", "b", true)],
            ..CodecSettings::default()
        };
        assert!(from_settings(&two).is_err());
        let dup = CodecSettings {
            keys: vec![key("a", "a", false), key("a", "b", false)],
            ..CodecSettings::default()
        };
        assert!(from_settings(&dup).is_err());
        assert!(from_settings(&CodecSettings::default()).unwrap().is_dev());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
