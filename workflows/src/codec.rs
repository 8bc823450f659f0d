//! Payload encryption: an AES-256-GCM [`PayloadCodec`] applied on every Temporal connection.
//!
//! Every payload leaving a ZEngine process (workflow and activity inputs and results, signals,
//! queries, updates, memos, failure details) is serialised to protobuf, encrypted with a fresh
//! random 96-bit nonce and stored as `nonce ‖ ciphertext ‖ tag` with the metadata
//! `encoding: binary/encrypted` and `encryption-key-id: <id>`. Histories at rest therefore hold
//! no plaintext payloads; the operator codec endpoint (`/codec/decode`) and the clients built by
//! `zengine_workers::connect` decrypt them.
//!
//! **Per-tenant keys.** A payload of a tenant's workflow (its id starts with `<tenant>/`) is
//! sealed under that tenant's own data key, derived from the keyring key with HKDF-SHA256
//! (info: the tenant id), and its key id names both: `<key id>@<tenant>`. The key id is the
//! AES-GCM associated data, so a payload relabelled as another tenant's fails to authenticate.
//! Which workflow a payload belongs to comes from the worker (the patched SDK runs every
//! completion's and activity's encoding in `temporalio_sdk::payload_scope`) and from the
//! client ([`PayloadScopeInterceptor`] scopes each call to its target workflow); payloads with
//! no tenant workflow (platform workflows, schedules) use the keyring key itself, as every
//! payload did before per-tenant keys, and those old payloads still decrypt. Decoding for a
//! reader ([`Reader`]) opens only what the reader may see: a tenant's operators get other
//! tenants' and the platform's payloads back sealed.
//!
//! Keys come from configuration as a keyring of `{id, secret_ref}` (secret references resolved
//! by `zengine_storage::secrets`): the key marked `primary` (else the first) encrypts, every
//! key decrypts, so rotation is "add the new key first, keep the old ones until no history needs
//! them". A payload with an unknown key id fails to decode with an error naming the id.
//!
//! The keyring comes from `zengine_workers::codec::CodecSettings`; with no keys configured the
//! built-in **development key** (id [`DEV_KEY_ID`]) is used; it is public (derived from a
//! constant in this file) and `zengine api`/`zengine worker` refuse it unless
//! `temporal.codec.allow_dev_key` is set. The codec lives here, next to the replayer, because
//! replaying recorded (encrypted) histories needs it; it never runs inside workflow code.

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::Context;
use base64::Engine;
use futures::future::BoxFuture;
use prost::Message;
use secrecy::ExposeSecret;
use sha2::Digest;
use temporalio_common::data_converters::{
    DataConverter, DefaultFailureConverter, PayloadCodec, PayloadConversionError, PayloadConverter,
    SerializationContextData,
};
use temporalio_common::protos::temporal::api::common::v1::Payload;
use zengine_domain::TenantId;

/// `encoding` metadata value of an encrypted payload.
pub const ENCRYPTED_ENCODING: &str = "binary/encrypted";
/// Metadata key naming the key that encrypted a payload.
pub const KEY_ID_METADATA: &str = "encryption-key-id";
/// Key id of the built-in development key.
pub const DEV_KEY_ID: &str = "zengine-dev";
/// Seed of the development key. Public on purpose: never use it for real data.
const DEV_KEY_SEED: &str = "zengine development payload key; public, not for production";
const NONCE_LEN: usize = 12;

/// Why a payload could not be encrypted or decrypted.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("payload encrypted with unknown key id `{0}` (not in temporal.codec.keys)")]
    UnknownKey(String),
    #[error("encrypted payload has no `encryption-key-id` metadata")]
    MissingKeyId,
    #[error("encrypted payload with key id `{0}` cannot be decrypted (corrupt or wrong key)")]
    Decrypt(String),
    #[error("decrypted payload is not a protobuf Payload")]
    Corrupt,
    #[error(
        "payload key `{0}` is erased: tenant `{1}` has no `{2}` in its secret store, so its \
         payloads can no longer be decrypted"
    )]
    Erased(String, String, String),
}

struct Key {
    id: String,
    /// The keyring key: the tenant keys are derived from it.
    secret: [u8; 32],
    cipher: Aes256Gcm,
}

/// HKDF salt of the per-tenant data keys (a version label: a new derivation gets a new one).
const TENANT_KEY_SALT: &[u8] = b"zengine payload codec: tenant data key v1";
/// At most this many derived tenant ciphers are kept (then the cache starts over).
const MAX_CACHED_TENANT_KEYS: usize = 10_000;

/// Who reads payloads through [`EncryptionCodec::decrypt_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader<'a> {
    /// The platform (its admin token, platform-admin JWTs, ZEngine's own processes): every
    /// payload.
    Platform,
    /// A tenant's operator: that tenant's payloads only.
    Tenant(&'a TenantId),
}

/// The tenant a workflow belongs to: the first segment of its id, when that is a tenant id
/// (`demo/conversation/webchat/s-1` → `demo`). Platform workflows (reserved ids, see
/// [`TenantId::is_reserved`]) and ids without a tenant segment have none.
pub fn tenant_of_workflow(workflow_id: &str) -> Option<TenantId> {
    let (first, _) = workflow_id.split_once('/')?;
    if TenantId::is_reserved(first) {
        return None;
    }
    TenantId::parse(first).ok()
}

/// The key id of an encrypted payload and the tenant it names (`None` for a payload that
/// is not `binary/encrypted`).
pub fn sealed_by(payload: &Payload) -> Result<Option<(String, Option<TenantId>)>, CodecError> {
    if payload.metadata.get("encoding").map(Vec::as_slice) != Some(ENCRYPTED_ENCODING.as_bytes()) {
        return Ok(None);
    }
    let id = payload
        .metadata
        .get(KEY_ID_METADATA)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .ok_or(CodecError::MissingKeyId)?;
    let tenant = KeyName::parse(&id)?.tenant;
    Ok(Some((id, tenant)))
}

/// Whether `reader` may open `payload`: plain payloads and the platform, always; a tenant, only
/// payloads sealed under its own key.
pub fn readable_by(payload: &Payload, reader: Reader<'_>) -> Result<bool, CodecError> {
    Ok(match (sealed_by(payload)?, reader) {
        (None, _) | (Some(_), Reader::Platform) => true,
        (Some((_, tenant)), Reader::Tenant(own)) => tenant.as_ref() == Some(own),
    })
}

/// The AES-256-GCM codec over a keyring.
#[derive(Clone)]
pub struct EncryptionCodec {
    keys: Arc<Vec<Key>>,
    /// Derived tenant ciphers by full key id, with when they expire (those derived with a
    /// tenant secret are read again after `secret_ttl`, so an erasure takes effect).
    tenant_ciphers: Arc<std::sync::Mutex<std::collections::HashMap<String, CachedCipher>>>,
    /// The tenant secret new tenant keys also derive from (`temporal.codec.tenant_key_secret`).
    tenant_secret: Option<String>,
    secret_ttl: std::time::Duration,
}

#[derive(Clone)]
struct CachedCipher {
    cipher: Aes256Gcm,
    expires: Option<std::time::Instant>,
}

/// What a key id names: the keyring key, and for a tenant key its tenant and tenant secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName {
    pub keyring: String,
    pub tenant: Option<TenantId>,
    pub secret: Option<String>,
}

impl KeyName {
    /// Parses `<key id>`, `<key id>@<tenant>` or `<key id>@<tenant>/<tenant secret name>`.
    pub fn parse(id: &str) -> Result<Self, CodecError> {
        let bad = || CodecError::UnknownKey(id.to_owned());
        let Some((keyring, rest)) = id.split_once('@') else {
            return Ok(Self {
                keyring: id.to_owned(),
                tenant: None,
                secret: None,
            });
        };
        let (tenant, secret) = match rest.split_once('/') {
            Some((tenant, secret)) => {
                if !zengine_storage::secrets::valid_tenant_secret_name(secret) {
                    return Err(bad());
                }
                (tenant, Some(secret.to_owned()))
            }
            None => (rest, None),
        };
        Ok(Self {
            keyring: keyring.to_owned(),
            tenant: Some(TenantId::parse(tenant).map_err(|_| bad())?),
            secret,
        })
    }

    fn id(&self) -> String {
        match (&self.tenant, &self.secret) {
            (None, _) => self.keyring.clone(),
            (Some(t), None) => format!("{}@{t}", self.keyring),
            (Some(t), Some(s)) => format!("{}@{t}/{s}", self.keyring),
        }
    }
}

impl std::fmt::Debug for EncryptionCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionCodec")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

/// Parses a 32-byte key given as base64 or 64 hex digits.
pub fn parse_key(id: &str, value: &str) -> anyhow::Result<[u8; 32]> {
    let value = value.trim();
    let bytes = if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(value).ok()
    } else {
        base64::engine::general_purpose::STANDARD.decode(value).ok()
    };
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .with_context(|| format!("codec key `{id}` is not 32 bytes as base64 or 64 hex digits"))
}

impl EncryptionCodec {
    /// A codec over `(id, 32-byte key)` pairs; the first encrypts.
    pub fn new(keys: Vec<(String, [u8; 32])>) -> anyhow::Result<Self> {
        anyhow::ensure!(!keys.is_empty(), "the codec keyring is empty");
        let mut seen = std::collections::HashSet::new();
        let keys = keys
            .into_iter()
            .map(|(id, key)| {
                anyhow::ensure!(
                    !id.is_empty()
                        && id.len() <= 64
                        && id.chars().all(|c| c.is_ascii_graphic() && c != '@'),
                    "codec key id `{id}` must be 1-64 printable ASCII characters other than `@`"
                );
                anyhow::ensure!(seen.insert(id.clone()), "codec key id `{id}` appears twice");
                Ok(Key {
                    id,
                    secret: key,
                    cipher: Aes256Gcm::new(&key.into()),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            keys: Arc::new(keys),
            tenant_ciphers: Arc::default(),
            tenant_secret: None,
            secret_ttl: std::time::Duration::from_secs(60),
        })
    }

    /// Derives new tenant keys also from the secret `name` of each tenant's folder of the
    /// tenant secret store, re-read after `ttl` (empty `name`: keyring only).
    pub fn with_tenant_secret(
        mut self,
        name: &str,
        ttl: std::time::Duration,
    ) -> anyhow::Result<Self> {
        if !name.is_empty() {
            anyhow::ensure!(
                zengine_storage::secrets::valid_tenant_secret_name(name),
                "temporal.codec.tenant_key_secret `{name}` is not a secret name ([A-Za-z0-9_.-])"
            );
            self.tenant_secret = Some(name.to_owned());
        }
        self.secret_ttl = ttl;
        Ok(self)
    }

    /// The tenant secret tenant keys derive from (`temporal.codec.tenant_key_secret`), if any:
    /// without one, a tenant's payloads cannot be erased by removing its secrets.
    pub fn tenant_key_secret(&self) -> Option<&str> {
        self.tenant_secret.as_deref()
    }

    /// Gives `tenant` its payload key (32 random bytes, base64) in its folder of the tenant
    /// secret store unless it has one. `Ok(false)` when nothing was written (it had one, or no
    /// tenant secret is configured).
    pub fn provision_tenant_key(&self, tenant: &TenantId) -> std::io::Result<bool> {
        use base64::Engine;
        let Some(name) = self.tenant_secret.as_deref() else {
            return Ok(false);
        };
        let key: [u8; 32] = rand::random();
        let value = base64::engine::general_purpose::STANDARD.encode(key);
        zengine_storage::secrets::provision_tenant_secret(tenant, name, &value)
    }

    /// The codec on the public development key.
    pub fn dev() -> Self {
        let key: [u8; 32] = sha2::Sha256::digest(DEV_KEY_SEED.as_bytes()).into();
        Self::new(vec![(DEV_KEY_ID.to_owned(), key)]).expect("the dev key is valid")
    }

    /// Key ids, encrypting key first.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Whether this codec runs on the public development key.
    pub fn is_dev(&self) -> bool {
        self.keys.len() == 1 && self.keys[0].id == DEV_KEY_ID
    }

    /// The cipher of a tenant key: HKDF-SHA256 of the keyring key (and of the tenant's secret
    /// when the key name has one), info the tenant id.
    fn tenant_cipher(
        &self,
        key: &Key,
        tenant: &TenantId,
        secret: Option<&str>,
    ) -> Result<Aes256Gcm, CodecError> {
        let name = KeyName {
            keyring: key.id.clone(),
            tenant: Some(tenant.clone()),
            secret: secret.map(str::to_owned),
        };
        let id = name.id();
        let now = std::time::Instant::now();
        if let Some(cached) = self
            .tenant_ciphers
            .lock()
            .expect("cipher cache poisoned")
            .get(&id)
            .filter(|c| c.expires.is_none_or(|at| now < at))
        {
            return Ok(cached.cipher.clone());
        }
        let mut ikm = key.secret.to_vec();
        if let Some(secret) = secret {
            let erased =
                || CodecError::Erased(id.clone(), tenant.to_string(), format!("secret:{secret}"));
            let value = zengine_storage::secrets::resolve_for(tenant, &format!("secret:{secret}"))
                .map_err(|_| erased())?;
            let bytes = parse_key(secret, value.expose_secret()).map_err(|_| erased())?;
            ikm.extend_from_slice(&bytes);
        }
        let mut derived = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(Some(TENANT_KEY_SALT), &ikm)
            .expand(tenant.as_str().as_bytes(), &mut derived)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let cipher = Aes256Gcm::new(&derived.into());
        let mut cache = self.tenant_ciphers.lock().expect("cipher cache poisoned");
        if cache.len() >= MAX_CACHED_TENANT_KEYS {
            cache.clear();
        }
        cache.insert(
            id,
            CachedCipher {
                cipher: cipher.clone(),
                expires: secret.map(|_| now + self.secret_ttl),
            },
        );
        Ok(cipher)
    }

    /// Encrypts one payload with the primary key: under `tenant`'s derived key when given
    /// (key id `<id>@<tenant>`, or `<id>@<tenant>/<secret>` with a tenant secret configured;
    /// bound as associated data), else under the keyring key itself.
    ///
    /// With a tenant secret configured, a tenant whose secret file is missing (never
    /// provisioned, or erased) is refused with [`CodecError::Erased`]: sealing its payloads
    /// under the keyring alone would put them out of reach of erasure.
    pub fn encrypt(
        &self,
        payload: &Payload,
        tenant: Option<&TenantId>,
    ) -> Result<Payload, CodecError> {
        let key = &self.keys[0];
        let (id, cipher) = match (tenant, self.tenant_secret.as_deref()) {
            (Some(t), Some(s)) => (
                format!("{}@{t}/{s}", key.id),
                self.tenant_cipher(key, t, Some(s))?,
            ),
            (Some(t), None) => (format!("{}@{t}", key.id), self.tenant_cipher(key, t, None)?),
            (None, _) => (key.id.clone(), key.cipher.clone()),
        };
        let aad: &[u8] = if tenant.is_some() { id.as_bytes() } else { &[] };
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let plain = payload.encode_to_vec();
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce_bytes),
                aes_gcm::aead::Payload { msg: &plain, aad },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut data = Vec::with_capacity(NONCE_LEN + sealed.len());
        data.extend_from_slice(&nonce_bytes);
        data.extend_from_slice(&sealed);
        Ok(Payload {
            metadata: [
                (
                    "encoding".to_owned(),
                    ENCRYPTED_ENCODING.as_bytes().to_vec(),
                ),
                (KEY_ID_METADATA.to_owned(), id.into_bytes()),
            ]
            .into(),
            data,
            ..Payload::default()
        })
    }

    /// Encrypts in the payload scope of the calling task: the tenant of the workflow the
    /// worker or the client is encoding for, if any.
    pub fn encrypt_in_scope(&self, payload: &Payload) -> Result<Payload, CodecError> {
        let tenant = temporalio_sdk::payload_scope::current()
            .as_deref()
            .and_then(tenant_of_workflow);
        self.encrypt(payload, tenant.as_ref())
    }

    /// Decrypts one payload; payloads that are not `binary/encrypted` pass through unchanged
    /// (histories recorded before encryption, patch markers, search attributes).
    pub fn decrypt(&self, payload: Payload) -> Result<Payload, CodecError> {
        self.decrypt_for(payload, Reader::Platform)
    }

    /// Decrypts one payload if `reader` may read it; a payload of another tenant, or of no
    /// tenant for a tenant reader, comes back unchanged (still sealed).
    pub fn decrypt_for(&self, payload: Payload, reader: Reader<'_>) -> Result<Payload, CodecError> {
        if !readable_by(&payload, reader)? {
            return Ok(payload);
        }
        let Some((id, tenant)) = sealed_by(&payload)? else {
            return Ok(payload);
        };
        let name = KeyName::parse(&id)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == name.keyring)
            .ok_or_else(|| CodecError::UnknownKey(id.clone()))?;
        if payload.data.len() < NONCE_LEN {
            return Err(CodecError::Decrypt(id));
        }
        let (nonce, sealed) = payload.data.split_at(NONCE_LEN);
        let opened = match &tenant {
            Some(t) => self.tenant_cipher(key, t, name.secret.as_deref())?.decrypt(
                Nonce::from_slice(nonce),
                aes_gcm::aead::Payload {
                    msg: sealed,
                    aad: id.as_bytes(),
                },
            ),
            None => key.cipher.decrypt(Nonce::from_slice(nonce), sealed),
        };
        let plain = opened.map_err(|_| CodecError::Decrypt(id))?;
        Payload::decode(plain.as_slice()).map_err(|_| CodecError::Corrupt)
    }

    /// The data converter of every ZEngine client: JSON payloads and this codec.
    ///
    /// Failure messages stay plaintext (`DefaultFailureConverter::new(false)`): with encoded
    /// failure attributes the SDK hands workflow code the message "Encoded failure" instead of
    /// the activity's error (it does not decode them on the workflow side), which breaks
    /// dead-letter reasons and error branches. Activities therefore keep message texts and
    /// phone numbers out of their error messages.
    pub fn data_converter(&self) -> DataConverter {
        DataConverter::new(
            PayloadConverter::default(),
            DefaultFailureConverter::new(false),
            self.clone(),
        )
    }
}

impl PayloadCodec for EncryptionCodec {
    fn encode(
        &self,
        _context: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        let encoded = payloads
            .iter()
            .map(|p| self.encrypt_in_scope(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PayloadConversionError::EncodingError(Box::new(e)));
        Box::pin(async move { encoded })
    }

    fn decode(
        &self,
        _context: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        let decoded = payloads
            .into_iter()
            .map(|p| self.decrypt(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PayloadConversionError::EncodingError(Box::new(e)));
        Box::pin(async move { decoded })
    }
}

/// Client interceptor running each call's payload encoding in the scope of the workflow it
/// targets, so [`EncryptionCodec`] seals a tenant's inputs, signals, queries and updates under
/// that tenant's key. Installed on every client `zengine_workers::connect` builds.
#[derive(Debug, Default)]
pub struct PayloadScopeInterceptor;

/// Runs `next(input)` in `workflow_id`'s payload scope.
fn scoped<'a, I: 'a, T: 'a>(
    workflow_id: String,
    next: temporalio_client::Next<'a, I, BoxFuture<'a, T>>,
    input: I,
) -> BoxFuture<'a, T> {
    Box::pin(temporalio_sdk::payload_scope::scope(
        workflow_id,
        next.run(input),
    ))
}

/// The interceptor methods: each runs `next` in the scope of the workflow id its input names.
macro_rules! scoped_calls {
    ($($method:ident($input:ident, $output:ty) => |$i:ident| $id:expr;)*) => {
        impl temporalio_client::ClientInterceptor for PayloadScopeInterceptor {
            $(fn $method<'a>(
                &'a self,
                input: temporalio_client::$input,
                next: temporalio_client::Next<'a, temporalio_client::$input, BoxFuture<'a, $output>>,
            ) -> BoxFuture<'a, $output> {
                let $i = &input;
                scoped($id, next, input)
            })*
        }
    };
}

use temporalio_client::errors::{
    WorkflowInteractionError, WorkflowQueryError, WorkflowStartError, WorkflowUpdateError,
    WorkflowUpdateWithStartError,
};

scoped_calls! {
    start_workflow(StartWorkflowInput, Result<temporalio_client::StartWorkflowOutput, WorkflowStartError>)
        => |i| i.options.workflow_id.clone();
    signal_with_start_workflow(SignalWithStartWorkflowInput, Result<temporalio_client::StartWorkflowOutput, WorkflowStartError>)
        => |i| i.options.workflow_id.clone();
    signal_workflow(SignalWorkflowInput, Result<(), WorkflowInteractionError>)
        => |i| i.workflow_id.clone();
    query_workflow(QueryWorkflowInput, Result<temporalio_client::QueryWorkflowOutput, WorkflowQueryError>)
        => |i| i.workflow_id.clone();
    start_workflow_update(StartWorkflowUpdateInput, Result<temporalio_client::StartWorkflowUpdateOutput, WorkflowUpdateError>)
        => |i| i.workflow_id.clone();
    update_with_start_workflow(UpdateWithStartWorkflowInput, Result<temporalio_client::UpdateWithStartWorkflowOutput, WorkflowUpdateWithStartError>)
        => |i| i.options.workflow_id.clone();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_payload(text: &str) -> Payload {
        Payload {
            metadata: [("encoding".to_owned(), b"json/plain".to_vec())].into(),
            data: serde_json::to_vec(text).unwrap(),
            ..Payload::default()
        }
    }

    #[test]
    fn round_trip_hides_the_plaintext_and_names_the_key() {
        let codec = EncryptionCodec::new(vec![("k1".into(), [7; 32])]).unwrap();
        let plain = json_payload("hola +5215512345678");
        let sealed = codec.encrypt(&plain, None).unwrap();
        assert_eq!(sealed.metadata["encoding"], ENCRYPTED_ENCODING.as_bytes());
        assert_eq!(sealed.metadata[KEY_ID_METADATA], b"k1");
        assert!(!String::from_utf8_lossy(&sealed.data).contains("5215512345678"));
        // A fresh nonce per payload: the same plaintext never encrypts the same way twice.
        assert_ne!(sealed.data, codec.encrypt(&plain, None).unwrap().data);
        assert_eq!(codec.decrypt(sealed).unwrap(), plain);
    }

    #[test]
    fn rotation_keeps_old_keys_decrypting_and_unknown_keys_fail_clearly() {
        let old = EncryptionCodec::new(vec![("old".into(), [1; 32])]).unwrap();
        let sealed = old.encrypt(&json_payload("x"), None).unwrap();
        let rotated =
            EncryptionCodec::new(vec![("new".into(), [2; 32]), ("old".into(), [1; 32])]).unwrap();
        assert_eq!(rotated.decrypt(sealed.clone()).unwrap(), json_payload("x"));
        assert_eq!(
            rotated.encrypt(&json_payload("y"), None).unwrap().metadata[KEY_ID_METADATA],
            b"new"
        );
        let other = EncryptionCodec::new(vec![("new".into(), [2; 32])]).unwrap();
        let err = other.decrypt(sealed.clone()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload encrypted with unknown key id `old` (not in temporal.codec.keys)"
        );
        // Same id, different key material: authentication fails, no garbage comes out.
        let forged = EncryptionCodec::new(vec![("old".into(), [9; 32])]).unwrap();
        assert!(matches!(
            forged.decrypt(sealed.clone()),
            Err(CodecError::Decrypt(_))
        ));
        let mut truncated = sealed;
        truncated.data.truncate(5);
        assert!(matches!(
            old.decrypt(truncated),
            Err(CodecError::Decrypt(_))
        ));
        // Plain payloads (old histories, patch markers) pass through.
        assert_eq!(old.decrypt(json_payload("p")).unwrap(), json_payload("p"));
    }

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    #[test]
    fn a_tenants_payloads_open_only_for_that_tenant_and_the_platform() {
        let codec = EncryptionCodec::new(vec![("k1".into(), [7; 32])]).unwrap();
        let (demo, rival) = (tenant("demo"), tenant("rival"));
        let plain = json_payload("hola");
        let sealed = codec.encrypt(&plain, Some(&demo)).unwrap();
        assert_eq!(sealed.metadata[KEY_ID_METADATA], b"k1@demo");
        // Not the keyring key: the key-only payload of the same plaintext is another ciphertext
        // under another key.
        let mut as_keyring = sealed.clone();
        as_keyring
            .metadata
            .insert(KEY_ID_METADATA.into(), b"k1".to_vec());
        assert!(matches!(
            codec.decrypt(as_keyring),
            Err(CodecError::Decrypt(_))
        ));
        assert_eq!(codec.decrypt(sealed.clone()).unwrap(), plain);
        assert_eq!(
            codec
                .decrypt_for(sealed.clone(), Reader::Tenant(&demo))
                .unwrap(),
            plain
        );
        // Another tenant gets it back sealed; relabelling it as theirs fails authentication.
        assert_eq!(
            codec
                .decrypt_for(sealed.clone(), Reader::Tenant(&rival))
                .unwrap(),
            sealed
        );
        let mut relabelled = sealed.clone();
        relabelled
            .metadata
            .insert(KEY_ID_METADATA.into(), b"k1@rival".to_vec());
        assert!(matches!(
            codec.decrypt_for(relabelled, Reader::Tenant(&rival)),
            Err(CodecError::Decrypt(_))
        ));
        // Keyring-key payloads (platform workflows, histories from before tenant keys) open for
        // the platform only.
        let platform = codec.encrypt(&plain, None).unwrap();
        assert_eq!(
            codec
                .decrypt_for(platform.clone(), Reader::Tenant(&demo))
                .unwrap(),
            platform
        );
        assert_eq!(
            codec.decrypt_for(platform, Reader::Platform).unwrap(),
            plain
        );
        // A key id naming no valid tenant is refused, not guessed at.
        let mut bad = sealed;
        bad.metadata
            .insert(KEY_ID_METADATA.into(), b"k1@../x".to_vec());
        assert!(matches!(codec.decrypt(bad), Err(CodecError::UnknownKey(_))));
        // Rotation: a new primary seals new payloads; old tenant payloads still open.
        let old = codec.encrypt(&plain, Some(&demo)).unwrap();
        let rotated =
            EncryptionCodec::new(vec![("k2".into(), [8; 32]), ("k1".into(), [7; 32])]).unwrap();
        assert_eq!(rotated.decrypt(old).unwrap(), plain);
        assert_eq!(
            rotated.encrypt(&plain, Some(&demo)).unwrap().metadata[KEY_ID_METADATA],
            b"k2@demo"
        );
        assert!(EncryptionCodec::new(vec![("a@b".into(), [1; 32])]).is_err());
    }

    /// With `tenant_key_secret` configured, a tenant whose file is missing (never provisioned,
    /// or erased) is refused: sealing its payloads under the keyring alone would put them out
    /// of reach of erasure.
    #[tokio::test]
    async fn with_a_tenant_secret_a_tenant_without_its_file_is_refused_not_sealed_under_the_keyring()
     {
        let dir = std::env::temp_dir().join(format!("zengine-codec-{}", std::process::id()));
        zengine_storage::secrets::set_tenant_dir(&dir);
        std::fs::create_dir_all(dir.join("keyed")).unwrap();
        std::fs::write(dir.join("keyed").join("payload-key"), "07".repeat(32)).unwrap();
        let codec = EncryptionCodec::new(vec![("k1".into(), [7; 32])])
            .unwrap()
            .with_tenant_secret("payload-key", std::time::Duration::ZERO)
            .unwrap();
        let plain = json_payload("hola");
        let sealed = codec.encrypt(&plain, Some(&tenant("keyed"))).unwrap();
        assert_eq!(sealed.metadata[KEY_ID_METADATA], b"k1@keyed/payload-key");
        let err = codec.encrypt(&plain, Some(&tenant("unkeyed"))).unwrap_err();
        assert!(matches!(err, CodecError::Erased(..)), "{err}");
        // Through the SDK's codec too: the task fails instead of writing a shreddable-never
        // payload.
        let context = SerializationContextData::None;
        let refused = temporalio_sdk::payload_scope::scope("unkeyed/order/o-1".to_owned(), async {
            codec.encode(&context, vec![plain.clone()]).await
        })
        .await;
        assert!(refused.is_err());
        // The platform's own payloads need no tenant file.
        assert!(codec.encrypt(&plain, None).is_ok());
        // Erasing the file refuses new payloads as well as old ones.
        std::fs::remove_file(dir.join("keyed").join("payload-key")).unwrap();
        assert!(codec.encrypt(&plain, Some(&tenant("keyed"))).is_err());
        assert!(matches!(codec.decrypt(sealed), Err(CodecError::Erased(..))));
    }

    #[tokio::test]
    async fn the_codec_seals_under_the_tenant_of_the_scoped_workflow() {
        let codec = EncryptionCodec::new(vec![("k1".into(), [7; 32])]).unwrap();
        let key_of = |payloads: Vec<Payload>| {
            String::from_utf8(payloads[0].metadata[KEY_ID_METADATA].clone()).unwrap()
        };
        let context = SerializationContextData::None;
        for (workflow_id, key) in [
            ("demo/conversation/webchat/s-1", "k1@demo"),
            ("acme-2/order/o-1", "k1@acme-2"),
            ("zt-1_system/channel-health", "k1"),
            ("_system/retention", "k1"),
            ("no-tenant-segment", "k1"),
        ] {
            // `encode` reads the scope when called (as the SDK calls it: inside the scope).
            let encoded = temporalio_sdk::payload_scope::scope(workflow_id.to_owned(), async {
                codec.encode(&context, vec![json_payload("x")]).await
            })
            .await
            .unwrap();
            assert_eq!(key_of(encoded), key, "{workflow_id}");
        }
        let unscoped = codec
            .encode(&context, vec![json_payload("x")])
            .await
            .unwrap();
        assert_eq!(key_of(unscoped), "k1");
    }
}
